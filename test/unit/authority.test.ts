import 'reflect-metadata';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { keyObjectSigner, loadPrivateKey } from '../../src/keys/key_store.js';
import type { Store } from '../../src/store/store.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { parseCsr } from '../../src/x509/csr.js';
import { derFromPemOrDer, pemEncode } from '../../src/x509/pem.js';
import { makeCsr, makeTestCa, TEST_PUBLIC_URL, type TestCa } from '../helpers/ca_fixture.js';
import { Authority, type IssueRequest } from '../../src/authority/authority.js';
import { resolveProfiles } from '../../src/authority/profiles.js';

const DAY = 86_400_000;
const FIXTURES = fileURLToPath(new URL('../fixtures/csr/', import.meta.url));
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', codeSigning: '1.3.6.1.5.5.7.3.3', OCSPSigning: '1.3.6.1.5.5.7.3.9' };
const OID = { cdp: '2.5.29.31', aia: '1.3.6.1.5.5.7.1.1', nocheck: '1.3.6.1.5.5.7.48.1.5', san: '2.5.29.17', bc: '2.5.29.19', ku: '2.5.29.15', nc: '2.5.29.30' };

const problem = (codes: ProblemCode | ProblemCode[], why?: RegExp) => (e: unknown) => {
  const want = Array.isArray(codes) ? codes : [codes];
  assert.ok(isProblem(e), `expected a ProblemError (${want.join('|')}), got ${String(e)}`);
  assert.ok(want.includes(e.code), `expected ${want.join('|')}, got ${e.code}: ${e.detail}`);
  if (why) assert.match(e.detail, why);
  return true;
};

interface Snapshot {
  certs: string[];
  audit: number;
  cas: string[];
}
async function snapshot(store: Store): Promise<Snapshot> {
  return {
    certs: (await store.listCertificates({ limit: 1000 })).map((c) => `${c.serial}:${c.status}`),
    audit: (await store.listAudit({ limit: 1000 })).length,
    cas: (await store.listCas()).map((c) => c.name),
  };
}

/** Signature and issuer name checked by OpenSSL through node's X509Certificate. */
function assertIssuedBy(certDer: Uint8Array, issuerDer: Uint8Array) {
  const cert = new X509Certificate(Buffer.from(certDer));
  const issuer = new X509Certificate(Buffer.from(issuerDer));
  assert.ok(cert.checkIssued(issuer), 'issuer name / key identifiers match');
  assert.ok(cert.verify(issuer.publicKey), 'signature verifies with the issuer key');
}

const ext = (c: CertInfo, oid: string) => c.extensions.find((e) => e.oid === oid);

describe('Authority', () => {
  let t: TestCa;
  let clock: FakeClock;
  let issuingInfo: CertInfo;
  let rootInfo: CertInfo;

  /** Asserts `req` is refused with `code` and that the store did not change at all. */
  async function refused(req: Partial<IssueRequest>, codes: ProblemCode | ProblemCode[], why?: RegExp) {
    const before = await snapshot(t.store);
    await assert.rejects(t.authority.issue({ profile: 'device-tls', actor: 'test', ...req }), problem(codes, why));
    assert.deepEqual(await snapshot(t.store), before, 'nothing stored');
  }

  before(async () => {
    clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    t = await makeTestCa({ clock });
    issuingInfo = parseCertificate(t.issuingPem);
    rootInfo = parseCertificate(t.rootPem);
  });
  after(async () => {
    await t.cleanup();
  });

  describe('CA creation', () => {
    it('ok-root-and-issuing', async () => {
      assertIssuedBy(rootInfo.der, rootInfo.der);
      assertIssuedBy(issuingInfo.der, rootInfo.der);
      assert.equal(rootInfo.isCa, true);
      assert.equal(rootInfo.pathLen, undefined);
      assert.equal(issuingInfo.isCa, true);
      assert.equal(issuingInfo.pathLen, 0);
      assert.deepEqual(issuingInfo.aki, rootInfo.ski);
      assert.deepEqual([...issuingInfo.keyUsage].sort(), ['cRLSign', 'digitalSignature', 'keyCertSign']);
      const cas = await t.store.listCas();
      assert.deepEqual(cas.map((c) => [c.name, c.kind, c.parentName]).sort(), [
        ['issuing', 'issuing', 'root'],
        ['root', 'root', undefined],
      ]);
      // The issuing CA certificate is itself a recorded certificate of the root.
      const rec = await t.store.getCertificate(issuingInfo.serial);
      assert.equal(rec?.issuerCa, 'root');
      assert.equal(rec?.profile, 'sub-ca');
      assert.equal((await t.store.listAudit({ action: 'ca.create' })).length, 2);
      assert.deepEqual(await t.authority.chain('issuing'), [issuingInfo.der, rootInfo.der]);
    });

    it('fail-duplicate-and-bad-names', async () => {
      const before = await snapshot(t.store);
      await assert.rejects(t.authority.createRootCa({ name: 'root', subject: [{ type: 'CN', value: 'x' }], keyAlgorithm: 'ecdsa-p256', validityDays: 10, actor: 't' }), problem('already_exists'));
      await assert.rejects(t.authority.createRootCa({ name: 'Bad Name', subject: [{ type: 'CN', value: 'x' }], keyAlgorithm: 'ecdsa-p256', validityDays: 10, actor: 't' }), problem('bad_request'));
      await assert.rejects(t.authority.createIssuingCa({ name: 'issuing', parent: 'root', subject: [{ type: 'CN', value: 'x' }], keyAlgorithm: 'ecdsa-p256', validityDays: 10, actor: 't' }), problem('already_exists'));
      await assert.rejects(t.authority.createIssuingCa({ name: 'orphan', parent: 'nope', subject: [{ type: 'CN', value: 'x' }], keyAlgorithm: 'ecdsa-p256', validityDays: 10, actor: 't' }), problem('not_found'));
      assert.deepEqual(await snapshot(t.store), before);
    });

    it('fail-issuing-ca-under-pathlen-0-and-its-key-is-removed', async () => {
      const keysBefore = readdirSync(join(t.dir, 'keys')).sort();
      const before = await snapshot(t.store);
      await assert.rejects(
        t.authority.createIssuingCa({ name: 'third-level', parent: 'issuing', subject: [{ type: 'CN', value: 'Third' }], keyAlgorithm: 'ecdsa-p256', validityDays: 100, actor: 't' }),
        problem('policy_violation', /path/i),
      );
      assert.deepEqual(await snapshot(t.store), before);
      assert.deepEqual(readdirSync(join(t.dir, 'keys')).sort(), keysBefore, 'the generated key was removed');
    });

    it('ok-issuing-ca-validity-capped-at-root', async () => {
      const rec = await t.authority.createIssuingCa({ name: 'long-lived', parent: 'root', subject: [{ type: 'CN', value: 'Long' }], keyAlgorithm: 'ecdsa-p256', validityDays: 100_000, actor: 't' });
      assert.equal(rec.notAfter.getTime(), rootInfo.notAfter.getTime());
    });
  });

  describe('issue: happy paths per profile', () => {
    it('ok-device-tls-ecdsa', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/O=Acme Devices/CN=dev-0001', sans: ['DNS:dev-0001.example', 'IP:10.0.0.1', 'IP:2001:db8::7', 'URI:urn:acme:dev:0001'] });
      const before = (await t.store.listAudit({ limit: 1000 })).length;
      const r = await t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'token:alice' });
      const c = parseCertificate(r.der);
      assertIssuedBy(r.der, issuingInfo.der);
      assert.equal(r.pem, pemEncode('CERTIFICATE', r.der));
      assert.deepEqual(r.chain, [issuingInfo.der, rootInfo.der]);
      assert.equal(r.capped, false);
      assert.equal(c.subjectText, 'O=Acme Devices, CN=dev-0001');
      assert.deepEqual(c.issuerDer, issuingInfo.subjectDer);
      assert.deepEqual(
        c.sans.map((s) => `${s.type}:${s.value}`),
        ['dns:dev-0001.example', 'ip:10.0.0.1', 'ip:2001:db8::7', 'uri:urn:acme:dev:0001'],
      );
      assert.equal(c.isCa, false);
      assert.deepEqual(c.keyUsage, ['digitalSignature'], 'no keyEncipherment for an EC key (RFC 8813)');
      assert.deepEqual(c.extendedKeyUsage, [EKU.clientAuth, EKU.serverAuth]);
      assert.equal(ext(c, OID.ku)?.critical, true);
      assert.equal(ext(c, OID.bc)?.critical, true);
      assert.equal(ext(c, OID.san)?.critical, false);
      assert.ok(ext(c, OID.cdp) && ext(c, OID.aia));
      assert.ok(Buffer.from(ext(c, OID.cdp)!.value).includes(`${TEST_PUBLIC_URL}/crl/issuing.crl`));
      assert.ok(Buffer.from(ext(c, OID.aia)!.value).includes(`${TEST_PUBLIC_URL}/ocsp`));
      assert.deepEqual(c.aki, issuingInfo.ski);
      assert.equal(c.spkiSha256, parseCsr(csrPem).spkiSha256);
      assert.equal(c.notBefore.getTime(), clock.now().getTime() - 300_000, 'backdated 300 s');
      assert.equal(c.notAfter.getTime(), clock.now().getTime() + 365 * DAY);
      assert.equal(c.notAfter.getUTCMilliseconds(), 0);

      // Committed before it was returned, with its audit entry.
      const stored = await t.store.getCertificate(r.record.serial);
      assert.ok(stored);
      assert.deepEqual(stored.der, r.der);
      assert.equal(stored.status, 'good');
      assert.equal(stored.issuerCa, 'issuing');
      assert.equal(stored.profile, 'device-tls');
      assert.equal(stored.requester, 'token:alice');
      assert.deepEqual(stored.sans, ['dns:dev-0001.example', 'ip:10.0.0.1', 'ip:2001:db8::7', 'uri:urn:acme:dev:0001']);
      assert.equal(stored.serial, c.serial);
      const audit = await t.store.listAudit({ action: 'certificate.issue', target: r.record.serial });
      assert.equal(audit.length, 1);
      assert.equal(audit[0].actor, 'token:alice');
      assert.equal(audit[0].details.profile, 'device-tls');
      assert.equal(audit[0].details.ca, 'issuing');
      assert.equal((await t.store.listAudit({ limit: 1000 })).length, before + 1);
    });

    it('ok-device-tls-rsa-keeps-keyEncipherment', async () => {
      const r = await t.authority.issue({ csr: fixture('rsa2048.csr'), profile: 'device-tls', actor: 't' });
      assert.deepEqual([...parseCertificate(r.der).keyUsage].sort(), ['digitalSignature', 'keyEncipherment']);
    });

    it('ok-device-tls-ed25519-and-p384-and-pss-signed-csr', async () => {
      for (const f of ['ed25519.csr', 'p384.csr', 'rsa-pss.csr']) {
        const r = await t.authority.issue({ csr: fixture(f), profile: 'device-tls', actor: 't' });
        assertIssuedBy(r.der, issuingInfo.der);
        assert.equal(parseCertificate(r.der).spkiSha256, parseCsr(fixture(f)).spkiSha256);
      }
    });

    it('ok-server-tls-default-and-max-validity', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=broker.example', sans: ['DNS:broker.example'] });
      const r = await t.authority.issue({ csr: csrPem, profile: 'server-tls', actor: 't' });
      const c = parseCertificate(r.der);
      assert.equal(c.notAfter.getTime(), clock.now().getTime() + 90 * DAY);
      assert.deepEqual(c.extendedKeyUsage, [EKU.serverAuth]);
      const r2 = await t.authority.issue({ csr: csrPem, profile: 'server-tls', validityDays: 397, actor: 't' });
      assert.equal(parseCertificate(r2.der).notAfter.getTime(), clock.now().getTime() + 397 * DAY);
    });

    it('ok-opcua-application-rsa', async () => {
      const { csrPem } = makeCsr({ alg: 'rsa-2048', subject: '/O=Acme/CN=plc-1', sans: ['URI:urn:acme:plc-1', 'DNS:plc-1.example'] });
      const r = await t.authority.issue({ csr: csrPem, profile: 'opcua-application', actor: 't' });
      const c = parseCertificate(r.der);
      assert.deepEqual([...c.keyUsage].sort(), ['dataEncipherment', 'digitalSignature', 'keyEncipherment', 'nonRepudiation']);
      assert.deepEqual(c.extendedKeyUsage, [EKU.serverAuth, EKU.clientAuth]);
      assert.equal(c.notAfter.getTime(), clock.now().getTime() + 730 * DAY);
    });

    it('ok-code-signing', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p384', subject: '/O=Acme/CN=Firmware Signing 1', sans: ['email:release@acme.example'] });
      const c = parseCertificate((await t.authority.issue({ csr: csrPem, profile: 'code-signing', actor: 't' })).der);
      assert.deepEqual(c.keyUsage, ['digitalSignature']);
      assert.deepEqual(c.extendedKeyUsage, [EKU.codeSigning]);
      assert.deepEqual(c.sans, [{ type: 'email', value: 'release@acme.example' }]);
    });

    it('ok-ocsp-signer-nocheck-no-revocation-info', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=OCSP Responder' });
      const c = parseCertificate((await t.authority.issue({ csr: csrPem, profile: 'ocsp-signer', actor: 't' })).der);
      assert.deepEqual(c.extendedKeyUsage, [EKU.OCSPSigning]);
      assert.ok(ext(c, OID.nocheck));
      assert.equal(ext(c, OID.cdp), undefined);
      assert.equal(ext(c, OID.aia), undefined);
      assert.equal(ext(c, OID.san), undefined);
      assert.equal(c.notAfter.getTime(), clock.now().getTime() + 30 * DAY);
    });

    it('ok-sub-ca-from-the-root', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/O=Acme/CN=Partner Issuing CA' });
      const r = await t.authority.issue({ csr: csrPem, profile: 'sub-ca', ca: 'root', actor: 't' });
      const c = parseCertificate(r.der);
      assertIssuedBy(r.der, rootInfo.der);
      assert.equal(c.isCa, true);
      assert.equal(c.pathLen, 0);
      assert.deepEqual(r.chain, [rootInfo.der]);
    });

    it('ok-request-subject-and-sans-override-the-csr', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=whatever', sans: ['DNS:ignored.example', 'otherName:1.3.6.1.4.1.311.20.2.3;UTF8:u@x'] });
      const r = await t.authority.issue({ csr: csrPem, profile: 'device-tls', subject: [{ type: 'CN', value: 'assigned-7' }], sans: [{ type: 'dns', value: 'assigned-7.example' }], actor: 't' });
      const c = parseCertificate(r.der);
      assert.equal(c.subjectText, 'CN=assigned-7');
      assert.deepEqual(c.sans, [{ type: 'dns', value: 'assigned-7.example' }]);
    });

    it('ok-duplicate-sans-are-written-once', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=dup', sans: ['DNS:dup.example', 'DNS:dup.example', 'IP:10.1.1.1'] });
      const c = parseCertificate((await t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 't' })).der);
      assert.deepEqual(c.sans.map((s) => s.value), ['dup.example', '10.1.1.1']);
    });

    it('ok-empty-subject-gets-a-critical-san', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/', sans: ['DNS:nameless.example'] });
      const c = parseCertificate((await t.authority.issue({ csr: csrPem, profile: 'server-tls', actor: 't' })).der);
      assert.deepEqual(c.subject, []);
      assert.equal(ext(c, OID.san)?.critical, true);
    });

    it('ok-server-generated-key', async () => {
      const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
      const r = await t.authority.issue({ serverGeneratedSpki: spki, profile: 'server-tls', subject: [{ type: 'CN', value: 'localhost' }], sans: [{ type: 'dns', value: 'localhost' }], actor: 'system' });
      assert.deepEqual(parseCertificate(r.der).spki, spki);
    });

    it('ok-serials-unique-17-octets-positive', async () => {
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=many' });
      const serials: string[] = [];
      for (let i = 0; i < 25; i++) serials.push((await t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 't' })).record.serial);
      assert.equal(new Set(serials).size, serials.length);
      for (const s of serials) {
        assert.match(s, /^[0-9a-f]{34}$/);
        assert.ok(parseInt(s.slice(0, 2), 16) >= 0x40 && parseInt(s.slice(0, 2), 16) <= 0x7f, s);
        assert.ok(await t.store.getCertificate(s));
      }
    });
  });

  describe('issue: refusals are typed and store nothing', () => {
    it('fail-garbage-csr', () => refused({ csr: 'not a csr' }, 'bad_csr'));
    it('fail-garbage-der-csr', () => refused({ csr: Uint8Array.of(0x30, 0x03, 0x02, 0x01) }, 'bad_csr'));
    it('fail-wrong-signature-csr', () => {
      const d = derFromPemOrDer(fixture('p256.csr'), ['CERTIFICATE REQUEST']).slice();
      d[d.length - 2] ^= 0x40;
      return refused({ csr: d }, 'bad_signature');
    });
    it('fail-sha1-csr', () => refused({ csr: fixture('sha1-rsa.csr') }, 'bad_signature'));
    it('fail-dsa-csr', () => refused({ csr: fixture('dsa.csr') }, 'bad_key'));
    it('fail-no-csr-and-no-key', () => refused({}, 'bad_request'));
    it('fail-csr-and-server-key-both', () => refused({ csr: fixture('p256.csr'), serverGeneratedSpki: parseCsr(fixture('p384.csr')).spki }, 'bad_request'));
    it('fail-rsa-1024-too-small', () => refused({ csr: makeCsr({ alg: 'rsa-1024', subject: '/CN=small' }).csrPem }, 'bad_key', /rsa-1024/));
    it('fail-ed25519-for-opcua', () => refused({ csr: fixture('ed25519.csr'), profile: 'opcua-application', sans: [{ type: 'uri', value: 'urn:x:1' }] }, 'bad_key', /ed25519/));
    it('fail-ecdsa-for-opcua', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=plc', sans: ['URI:urn:x:1'] }).csrPem, profile: 'opcua-application' }, 'bad_key'));
    it('fail-rsa-2048-for-code-signing', () => refused({ csr: fixture('rsa2048.csr'), profile: 'code-signing' }, 'bad_key'));
    it('fail-ed448-any-profile', () => refused({ csr: fixture('ed448.csr') }, 'bad_key'));
    it('fail-p521-not-offered', () => refused({ csr: makeCsr({ alg: 'ecdsa-p521', subject: '/CN=p521' }).csrPem }, 'bad_key'));
    it('fail-csr-with-the-ca-own-key', async () => {
      const ref = (await t.store.getCa('issuing'))!.keyRef!;
      const keyPem = loadPrivateKey(await t.keys.exportEncrypted(ref, 'a long test passphrase'), 'a long test passphrase').export({ format: 'pem', type: 'pkcs8' }).toString();
      await refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=evil', keyPem }).csrPem }, 'bad_key', /own public key/);
    });
    it('fail-email-san-in-device-tls', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=d', sans: ['email:d@example.com'] }).csrPem }, 'policy_violation', /email/));
    it('fail-uri-san-in-server-tls', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=s', sans: ['DNS:s.example', 'URI:urn:x'] }).csrPem, profile: 'server-tls' }, 'policy_violation'));
    it('fail-othername-san-in-csr', () => refused({ csr: fixture('othername.csr') }, 'policy_violation', /otherName/));
    it('fail-san-on-ocsp-signer', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=o', sans: ['DNS:o.example'] }).csrPem, profile: 'ocsp-signer' }, 'policy_violation'));
    it('fail-server-tls-needs-a-san', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=nosan' }).csrPem, profile: 'server-tls' }, 'policy_violation', /at least 1/));
    it('fail-opcua-uri-outside-patterns', () => refused({ csr: makeCsr({ alg: 'rsa-2048', subject: '/CN=plc', sans: ['URI:ftp://plc.example/'] }).csrPem, profile: 'opcua-application' }, 'policy_violation', /pattern/));
    it('fail-too-many-sans', () => {
      const sans = Array.from({ length: 21 }, (_, i) => `DNS:n${i}.example`);
      return refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=many', sans }).csrPem }, 'policy_violation', /at most 20/);
    });
    it('fail-subject-attribute-not-allowed', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=d/emailAddress=d@example.com' }).csrPem }, 'policy_violation', /emailAddress/));
    it('fail-subject-title-on-server-tls', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=s/title=boss', sans: ['DNS:s.example'] }).csrPem, profile: 'server-tls' }, 'policy_violation', /title/));
    it('fail-required-cn-missing', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/O=Acme', sans: ['DNS:x.example'] }).csrPem }, 'policy_violation', /requires CN/));
    for (const [profile, days] of [
      ['device-tls', 366],
      ['server-tls', 398],
      ['device-tls', 0],
      ['device-tls', -1],
      ['device-tls', 1.5],
    ] as const) {
      it(`fail-validity-${days}-days-${profile}`, () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=v', sans: ['DNS:v.example'] }).csrPem, profile, validityDays: days }, 'policy_violation', /validity/));
    }
    it('fail-unknown-profile', () => refused({ csr: fixture('p256.csr'), profile: 'no-such-profile' }, 'not_found', /profile/));
    it('fail-unknown-ca', () => refused({ csr: fixture('p256.csr'), ca: 'no-such-ca' }, 'not_found', /CA/));
    it('fail-sub-ca-from-pathlen-0-issuer', () => refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=Sub Sub CA' }).csrPem, profile: 'sub-ca', ca: 'issuing' }, 'policy_violation', /pathLenConstraint 0/));

    // A SAN taken from the CSR must pass the same syntax checks as one given by
    // an operator (parseSan/normaliseSan): otherwise a device can get names
    // certified that the API itself would refuse.
    for (const san of ['DNS:under_score.example', 'DNS:*.*.example', 'DNS:bad name.example', 'email:not an address', 'URI:no-scheme']) {
      it(`fail-malformed-san-from-csr ${san}`, () => {
        const profile = san.startsWith('email') ? 'code-signing' : 'device-tls';
        return refused({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=m', sans: [san] }).csrPem, profile }, ['bad_request', 'policy_violation']);
      });
    }
  });

  describe('revoke', () => {
    let serial: string;
    before(async () => {
      serial = (await t.authority.issue({ csr: fixture('p256.csr'), profile: 'device-tls', actor: 't' })).record.serial;
    });

    it('fail-unknown-serial', async () => {
      const before = await snapshot(t.store);
      await assert.rejects(t.authority.revoke('7f'.repeat(17), 'keyCompromise', 't'), problem('not_found'));
      assert.deepEqual(await snapshot(t.store), before);
    });

    for (const reason of ['notAReason', 'removeFromCRL', 'toString', '__proto__', '']) {
      it(`fail-bad-reason ${JSON.stringify(reason)}`, async () => {
        const before = await snapshot(t.store);
        await assert.rejects(t.authority.revoke(serial, reason as never, 't'), problem('bad_request'));
        assert.deepEqual(await snapshot(t.store), before);
        assert.equal((await t.store.getCertificate(serial))?.status, 'good');
      });
    }

    it('fail-invalidity-date-in-the-future', async () => {
      const before = await snapshot(t.store);
      await assert.rejects(t.authority.revoke(serial, 'keyCompromise', 't', new Date(clock.now().getTime() + 60_000)), problem('bad_request'));
      assert.deepEqual(await snapshot(t.store), before);
    });

    it('ok-revoke-then-already_revoked', async () => {
      const inv = new Date(clock.now().getTime() - DAY);
      const rec = await t.authority.revoke(serial, 'keyCompromise', 'token:ops', inv);
      assert.equal(rec.status, 'revoked');
      assert.equal(rec.revocation?.reason, 'keyCompromise');
      assert.deepEqual(rec.revocation?.invalidityDate, inv);
      assert.deepEqual(rec.revocation?.revokedAt, clock.now());
      const stored = await t.store.getCertificate(serial);
      assert.equal(stored?.status, 'revoked');
      assert.equal(stored?.revocation?.reason, 'keyCompromise');

      const before = await snapshot(t.store);
      await assert.rejects(t.authority.revoke(serial, 'superseded', 't'), problem('already_revoked'));
      assert.deepEqual(await snapshot(t.store), before);
      assert.equal((await t.store.getCertificate(serial))?.revocation?.reason, 'keyCompromise');
      const audit = await t.store.listAudit({ action: 'certificate.revoke', target: serial });
      assert.equal(audit.length, 1);
      assert.equal(audit[0].actor, 'token:ops');
    });
  });
});

describe('Authority: validity capped at the issuer', () => {
  it('ok-leaf-notAfter-capped', async () => {
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const t = await makeTestCa({ clock, issuingValidityDays: 100 });
    try {
      const issuing = parseCertificate(t.issuingPem);
      const r = await t.authority.issue({ csr: fixture('p256.csr'), profile: 'device-tls', actor: 't' });
      assert.equal(r.capped, true);
      assert.equal(parseCertificate(r.der).notAfter.getTime(), issuing.notAfter.getTime());
      assert.equal(r.record.notAfter.getTime(), issuing.notAfter.getTime());
      const r2 = await t.authority.issue({ csr: fixture('p256.csr'), profile: 'device-tls', validityDays: 99, actor: 't' });
      assert.equal(r2.capped, false);
      assert.equal(parseCertificate(r2.der).notAfter.getTime(), clock.now().getTime() + 99 * DAY);
    } finally {
      await t.cleanup();
    }
  });
});

describe('Authority: name constraints on the issuing CA', () => {
  let t: TestCa;
  before(async () => {
    t = await makeTestCa({
      nameConstraints: {
        permitted: [
          { type: 'dns', value: 'plant1.example' },
          { type: 'ip', value: '10.20.0.0/16' },
        ],
        excluded: [{ type: 'dns', value: 'scada.plant1.example' }],
      },
    });
  });
  after(() => t.cleanup());

  it('ok-the-constraint-is-critical-in-the-ca-certificate', () => {
    const issuing = parseCertificate(t.issuingPem);
    assert.equal(ext(issuing, OID.nc)?.critical, true);
    assert.equal(issuing.nameConstraints?.permitted.length, 2);
    assert.equal(issuing.nameConstraints?.excluded.length, 1);
  });

  it('ok-inside', async () => {
    const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=m1', sans: ['DNS:m1.plant1.example', 'IP:10.20.3.4'] });
    const r = await t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 't' });
    assertIssuedBy(r.der, parseCertificate(t.issuingPem).der);
  });

  for (const sans of [['DNS:m1.plant2.example'], ['DNS:ok.plant1.example', 'IP:10.21.0.1'], ['DNS:hmi.scada.plant1.example']]) {
    it(`fail-outside ${sans.join(',')}`, async () => {
      const before = await snapshot(t.store);
      const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=m2', sans });
      await assert.rejects(t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 't' }), problem('policy_violation', /issuer_name_constraints/));
      assert.deepEqual(await snapshot(t.store), before);
    });
  }
});

describe('Authority: offline root', () => {
  const CEREMONY = 'offline root ceremony passphrase';
  let t: TestCa;
  let rootPem: string;
  before(async () => {
    t = await makeTestCa();
    const ref = (await t.store.getCa('root'))!.keyRef!;
    rootPem = await t.keys.exportEncrypted(ref, CEREMONY);
    await t.keys.remove(ref);
  });
  after(() => t.cleanup());

  const req = (name: string) => ({ name, parent: 'root', subject: [{ type: 'CN', value: `CA ${name}` }], keyAlgorithm: 'ecdsa-p256' as const, validityDays: 365, actor: 'ceremony' });

  it('fail-without-parent-signer-key_unavailable', async () => {
    const before = await snapshot(t.store);
    const keysBefore = readdirSync(join(t.dir, 'keys')).sort();
    await assert.rejects(t.authority.createIssuingCa(req('line-2')), problem('key_unavailable'));
    assert.deepEqual(await snapshot(t.store), before);
    assert.deepEqual(readdirSync(join(t.dir, 'keys')).sort(), keysBefore);
  });

  it('fail-leaf-from-the-offline-root-key_unavailable', async () => {
    const before = await snapshot(t.store);
    await assert.rejects(t.authority.issue({ csr: fixture('p256.csr'), profile: 'sub-ca', ca: 'root', actor: 't' }), problem('key_unavailable'));
    assert.deepEqual(await snapshot(t.store), before);
  });

  it('fail-parent-signer-with-the-wrong-key', async () => {
    const before = await snapshot(t.store);
    const wrong = keyObjectSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    await assert.rejects(t.authority.createIssuingCa({ ...req('line-3'), parentSigner: wrong }), problem('key_unavailable', /does not belong/));
    assert.deepEqual(await snapshot(t.store), before);
  });

  it('fail-wrong-ceremony-passphrase-never-reaches-the-authority', () => {
    assert.throws(() => loadPrivateKey(rootPem, 'not the ceremony passphrase'));
  });

  it('ok-with-parent-signer-from-the-exported-key', async () => {
    const parentSigner = keyObjectSigner(loadPrivateKey(rootPem, CEREMONY));
    const rec = await t.authority.createIssuingCa({ ...req('line-4'), parentSigner });
    assert.equal(rec.kind, 'issuing');
    assert.equal(rec.parentName, 'root');
    assertIssuedBy(rec.certDer, parseCertificate(t.rootPem).der);
    assert.ok(await t.store.getCa('line-4'));
    // The new CA's own key is online: it issues.
    const r = await t.authority.issue({ csr: fixture('p384.csr'), profile: 'device-tls', ca: 'line-4', actor: 't' });
    assertIssuedBy(r.der, rec.certDer);
    assert.deepEqual(r.chain.length, 2);
  });

  it('ok-the-online-issuing-ca-still-issues', async () => {
    const r = await t.authority.issue({ csr: fixture('p256.csr'), profile: 'device-tls', actor: 't' });
    assertIssuedBy(r.der, parseCertificate(t.issuingPem).der);
    assert.equal(createHash('sha256').update(r.der).digest('hex'), parseCertificate(r.der).fingerprintSha256);
  });
});

describe('Authority: CRL partitioning once a CA passes crl.partitionAbove', () => {
  it('ok-unpartitioned-until-the-full-CRL-passes-the-size-then-sharded-for-good', async () => {
    const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000);
    const t = await makeTestCa({ clock });
    try {
      const a = new Authority(t.store, t.keys, clock, { profiles: resolveProfiles({}), defaultCa: 'issuing', publicUrl: TEST_PUBLIC_URL, backdateSeconds: 300, crlShards: 4, crlPartitionAbove: 2 });
      const issue = async () => (await a.issue({ serverGeneratedSpki: spkiOfNewKey(), profile: 'device-tls', subject: [{ type: 'CN', value: 'd' }], actor: 't' })).record;
      const first = await Promise.all([issue(), issue(), issue()]);
      for (const c of first) assert.equal(c.crlShard, undefined, 'no shard while the CRL is small');
      await a.revoke(first[0].serial, 'keyCompromise', 't');
      await a.revoke(first[1].serial, 'superseded', 't');
      await a.revoke(first[2].serial, 'superseded', 't');
      // Three entries now, but the store is asked at most once a minute.
      assert.equal((await issue()).crlShard, undefined);
      clock.advance(60_000);
      const sharded = [await issue(), await issue(), await issue(), await issue()];
      for (const c of sharded) assert.ok(c.crlShard! >= 1 && c.crlShard! <= 4, String(c.crlShard));
      const cdp = parseCertificate((await t.store.getCertificate(sharded[0].serial))!.der).extensions.find((e) => e.oid === '2.5.29.31')!;
      assert.match(Buffer.from(cdp.value).toString('latin1'), new RegExp(`/crl/issuing-s${sharded[0].crlShard}\\.crl`));
    } finally {
      await t.cleanup();
    }
  });
});

function spkiOfNewKey(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
}
