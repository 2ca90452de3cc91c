/**
 * Certificates issued by the Authority, validated by two independent path
 * validators: OpenSSL 3 (`openssl verify -x509_strict`) and GnuTLS
 * (`certtool --verify-chain`). Every CA key algorithm x every leaf profile; a
 * tampered leaf and a wrong purpose must be refused by the same tools, so the
 * test can fail.
 */
import 'reflect-metadata';
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyAlgorithm } from '../../src/x509/algorithms.js';
import { keyObjectSigner, loadPrivateKey } from '../../src/keys/key_store.js';
import { signCertificate } from '../../src/x509/cert_builder.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import * as x from '../../src/x509/extensions.js';
import { encodeName } from '../../src/x509/names.js';
import { pemEncode } from '../../src/x509/pem.js';
import { newSerial } from '../../src/authority/serial.js';
import { makeCsr, makeTestCa, run, OPENSSL, TEST_PUBLIC_URL, type CsrAlgorithm, type TestCa } from '../helpers/ca_fixture.js';

const CERTTOOL = 'certtool';
const EKU = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', codeSigning: '1.3.6.1.5.5.7.3.3', OCSPSigning: '1.3.6.1.5.5.7.3.9' };

const CA_ALGORITHMS: KeyAlgorithm[] = ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa-2048'];

interface ProfileCase {
  profile: string;
  /** Leaf key; 'ca' = the same algorithm as the CA. */
  leaf: CsrAlgorithm | 'ca';
  subject: string;
  sans?: string[];
  /** openssl verify -purpose values that must pass. */
  purposes: string[];
  /** An openssl purpose the certificate must NOT pass. */
  wrongPurpose: string;
  /** EKU OID certtool must accept (--verify-purpose) and one it must refuse. */
  eku: string;
  wrongEku: string;
}

const PROFILES: ProfileCase[] = [
  { profile: 'device-tls', leaf: 'ca', subject: '/O=Acme Devices/CN=dev-0042', sans: ['DNS:dev-0042.devices.example', 'IP:10.0.0.42', 'URI:urn:acme:device:0042'], purposes: ['sslclient', 'sslserver'], wrongPurpose: 'smimesign', eku: EKU.clientAuth, wrongEku: EKU.codeSigning },
  { profile: 'server-tls', leaf: 'ecdsa-p384', subject: '/O=Acme/CN=mqtt.example', sans: ['DNS:mqtt.example', 'IP:192.0.2.10'], purposes: ['sslserver'], wrongPurpose: 'sslclient', eku: EKU.serverAuth, wrongEku: EKU.clientAuth },
  { profile: 'opcua-application', leaf: 'rsa-2048', subject: '/O=Acme/CN=plc-7', sans: ['URI:urn:acme:plc-7', 'DNS:plc-7.example'], purposes: ['sslserver', 'sslclient'], wrongPurpose: 'smimesign', eku: EKU.serverAuth, wrongEku: EKU.codeSigning },
  { profile: 'code-signing', leaf: 'ecdsa-p256', subject: '/O=Acme/CN=Firmware Release Signing', sans: ['email:release@acme.example'], purposes: [], wrongPurpose: 'sslserver', eku: EKU.codeSigning, wrongEku: EKU.serverAuth },
  { profile: 'ocsp-signer', leaf: 'ed25519', subject: '/O=Acme/CN=OCSP Responder', purposes: ['ocsphelper'], wrongPurpose: 'sslserver', eku: EKU.OCSPSigning, wrongEku: EKU.serverAuth },
];

let dir: string;
/** One key per leaf algorithm (RSA keygen is slow): CSRs for each profile reuse it. */
const leafKeys = new Map<CsrAlgorithm, string>();

function leafKey(alg: CsrAlgorithm): string {
  let k = leafKeys.get(alg);
  if (!k) {
    k = makeCsr({ alg, subject: '/CN=keygen' }).keyPem;
    leafKeys.set(alg, k);
  }
  return k;
}

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function opensslVerify(rootFile: string, issuingFile: string, leafFile: string, purpose?: string) {
  const args = ['verify', '-x509_strict', '-CAfile', rootFile, '-untrusted', issuingFile];
  if (purpose) args.push('-purpose', purpose);
  return run(OPENSSL, [...args, leafFile]);
}

function certtoolVerify(chainFile: string, purposeOid?: string) {
  const args = ['--verify-chain', '--infile', chainFile];
  if (purposeOid) args.push(`--verify-purpose=${purposeOid}`);
  return run(CERTTOOL, args);
}

const CERTTOOL_OK = /Chain verification output: Verified\. The certificate is trusted\./;

function assertOpensslOk(r: { status: number; out: string }, what: string) {
  assert.equal(r.status, 0, `${what}: ${r.out}`);
  assert.match(r.out, /: OK\s*$/, what);
}
function assertOpensslRefused(r: { status: number; out: string }, what: string) {
  assert.notEqual(r.status, 0, `${what} should be refused: ${r.out}`);
  assert.doesNotMatch(r.out, /: OK\s*$/, what);
}
function assertCerttoolOk(r: { status: number; out: string }, what: string) {
  assert.equal(r.status, 0, `${what}: ${r.out}`);
  assert.match(r.out, CERTTOOL_OK, `${what}: ${r.out}`);
}
function assertCerttoolRefused(r: { status: number; out: string }, what: string) {
  assert.doesNotMatch(r.out, CERTTOOL_OK, `${what} should not verify: ${r.out}`);
  assert.match(r.out, /Not verified/, `${what}: ${r.out}`);
  assert.notEqual(r.status, 0, what);
}

/** The leaf with one bit of its signature flipped, as PEM. */
function tampered(der: Uint8Array): string {
  const d = der.slice();
  d[d.length - 1] ^= 0x01;
  return pemEncode('CERTIFICATE', d);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-interop-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

for (const caAlg of CA_ALGORITHMS) {
  describe(`CA ${caAlg}`, () => {
    let t: TestCa;
    let rootFile: string;
    let issuingFile: string;
    before(async () => {
      t = await makeTestCa({ keyAlgorithm: caAlg });
      rootFile = write(`${caAlg}-root.pem`, t.rootPem);
      issuingFile = write(`${caAlg}-issuing.pem`, t.issuingPem);
    });
    after(() => t.cleanup());

    it('ok-issuing-ca-verifies-against-root', () => {
      assertOpensslOk(run(OPENSSL, ['verify', '-x509_strict', '-CAfile', rootFile, issuingFile]), 'openssl issuing');
      assertCerttoolOk(certtoolVerify(write(`${caAlg}-ca-chain.pem`, t.issuingPem + t.rootPem)), 'certtool issuing');
    });

    for (const pc of PROFILES) {
      it(`ok-${pc.profile}`, async () => {
        const alg = pc.leaf === 'ca' ? (caAlg as CsrAlgorithm) : pc.leaf;
        const { csrPem } = makeCsr({ alg, subject: pc.subject, sans: pc.sans, keyPem: leafKey(alg) });
        const r = await t.authority.issue({ csr: csrPem, profile: pc.profile, actor: 'interop' });
        const base = `${caAlg}-${pc.profile}`;
        const leafFile = write(`${base}.pem`, r.pem);
        const chainFile = write(`${base}-chain.pem`, r.pem + t.issuingPem + t.rootPem);

        assertOpensslOk(opensslVerify(rootFile, issuingFile, leafFile), `${base} openssl`);
        for (const p of pc.purposes) assertOpensslOk(opensslVerify(rootFile, issuingFile, leafFile, p), `${base} openssl -purpose ${p}`);
        assertCerttoolOk(certtoolVerify(chainFile), `${base} certtool`);
        assertCerttoolOk(certtoolVerify(chainFile, pc.eku), `${base} certtool purpose ${pc.eku}`);

        // The same tools refuse what they should: so this test can fail.
        assertOpensslRefused(opensslVerify(rootFile, issuingFile, leafFile, pc.wrongPurpose), `${base} openssl -purpose ${pc.wrongPurpose}`);
        assertCerttoolRefused(certtoolVerify(chainFile, pc.wrongEku), `${base} certtool purpose ${pc.wrongEku}`);
        const badLeaf = tampered(r.der);
        assertOpensslRefused(opensslVerify(rootFile, issuingFile, write(`${base}-tampered.pem`, badLeaf)), `${base} tampered openssl`);
        assertCerttoolRefused(certtoolVerify(write(`${base}-tampered-chain.pem`, badLeaf + t.issuingPem + t.rootPem)), `${base} tampered certtool`);
      });
    }
  });
}

describe('openssl x509 -text shows the profile extensions', () => {
  let t: TestCa;
  before(async () => {
    t = await makeTestCa({ keyAlgorithm: 'ecdsa-p256' });
  });
  after(() => t.cleanup());

  async function text(pc: ProfileCase): Promise<string> {
    const alg = pc.leaf === 'ca' ? 'ecdsa-p256' : pc.leaf;
    const { csrPem } = makeCsr({ alg, subject: pc.subject, sans: pc.sans, keyPem: leafKey(alg) });
    const r = await t.authority.issue({ csr: csrPem, profile: pc.profile, actor: 'interop' });
    const out = run(OPENSSL, ['x509', '-noout', '-text'], r.pem);
    assert.equal(out.status, 0, out.out);
    return out.out;
  }

  const issuingCrl = `URI:${TEST_PUBLIC_URL}/crl/issuing.crl`;
  const aia = [`OCSP - URI:${TEST_PUBLIC_URL}/ocsp`, `CA Issuers - URI:${TEST_PUBLIC_URL}/ca/issuing.cer`];
  const expected: Record<string, { has: Array<string | RegExp>; hasNot: Array<string | RegExp> }> = {
    'device-tls': {
      has: ['X509v3 Basic Constraints: critical', 'CA:FALSE', /X509v3 Key Usage: critical\s+Digital Signature\s/, 'TLS Web Client Authentication, TLS Web Server Authentication', 'DNS:dev-0042.devices.example, IP Address:10.0.0.42, URI:urn:acme:device:0042', issuingCrl, ...aia],
      hasNot: ['Key Encipherment', 'OCSP No Check', 'X509v3 Subject Alternative Name: critical'],
    },
    'server-tls': {
      has: [/X509v3 Key Usage: critical\s+Digital Signature\s/, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication\s/, 'DNS:mqtt.example, IP Address:192.0.2.10', issuingCrl, ...aia],
      hasNot: ['TLS Web Client Authentication', 'OCSP No Check'],
    },
    'opcua-application': {
      has: [/X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation, Key Encipherment, Data Encipherment\s/, 'TLS Web Server Authentication, TLS Web Client Authentication', 'URI:urn:acme:plc-7, DNS:plc-7.example', 'Public-Key: (2048 bit)', issuingCrl, ...aia],
      hasNot: ['OCSP No Check'],
    },
    'code-signing': {
      has: [/X509v3 Key Usage: critical\s+Digital Signature\s/, /X509v3 Extended Key Usage:\s+Code Signing\s/, 'email:release@acme.example', issuingCrl, ...aia],
      hasNot: ['TLS Web', 'OCSP No Check'],
    },
    'ocsp-signer': {
      has: [/X509v3 Key Usage: critical\s+Digital Signature\s/, /X509v3 Extended Key Usage:\s+OCSP Signing\s/, 'OCSP No Check'],
      hasNot: ['CRL Distribution Points', 'Authority Information Access', 'Subject Alternative Name'],
    },
  };

  for (const pc of PROFILES) {
    it(`ok-${pc.profile}`, async () => {
      const out = await text(pc);
      // Common to every profile: key identifiers, v3, issuer = the issuing CA.
      for (const s of ['Version: 3 (0x2)', 'X509v3 Subject Key Identifier', 'X509v3 Authority Key Identifier', 'Issuer: O = Fleetpki Test, CN = Test Issuing CA ecdsa-p256', 'X509v3 Basic Constraints: critical']) {
        assert.ok(out.includes(s), `${pc.profile}: missing "${s}"\n${out}`);
      }
      for (const s of expected[pc.profile].has) {
        if (typeof s === 'string') assert.ok(out.includes(s), `${pc.profile}: missing "${s}"\n${out}`);
        else assert.match(out, s, `${pc.profile}\n${out}`);
      }
      for (const s of expected[pc.profile].hasNot) {
        if (typeof s === 'string') assert.ok(!out.includes(s), `${pc.profile}: unexpected "${s}"\n${out}`);
        else assert.doesNotMatch(out, s);
      }
      // SKI of the leaf = AKI of... the issuing CA's SKI.
      const issuingSki = run(OPENSSL, ['x509', '-noout', '-ext', 'subjectKeyIdentifier'], t.issuingPem).out.split('\n')[1].trim();
      assert.ok(out.includes(issuingSki), `AKI ${issuingSki} in ${pc.profile}`);
    });
  }
});

describe('name constraints as OpenSSL and GnuTLS read them', () => {
  const PASS = 'name constraints test passphrase';
  let t: TestCa;
  let rootFile: string;
  let issuingFile: string;
  before(async () => {
    t = await makeTestCa({
      keyAlgorithm: 'ecdsa-p256',
      nameConstraints: {
        permitted: [
          { type: 'dns', value: 'plant1.example' },
          { type: 'ip', value: '10.20.0.0/16' },
          { type: 'ip', value: 'fd00:20::/32' },
        ],
        excluded: [{ type: 'dns', value: 'scada.plant1.example' }],
      },
    });
    rootFile = write('nc-root.pem', t.rootPem);
    issuingFile = write('nc-issuing.pem', t.issuingPem);
  });
  after(() => t.cleanup());

  it('ok-the-extension-text', () => {
    const out = run(OPENSSL, ['x509', '-noout', '-text'], t.issuingPem).out;
    assert.match(out, /X509v3 Name Constraints: critical/);
    assert.match(out, /Permitted:\s+DNS:plant1\.example\s+IP:10\.20\.0\.0\/255\.255\.0\.0\s+IP:FD00:20:0:0:0:0:0:0\/FFFF:FFFF:0:0:0:0:0:0\s+Excluded:\s+DNS:scada\.plant1\.example/);
  });

  it('ok-inside-verifies', async () => {
    const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=m1', sans: ['DNS:m1.plant1.example', 'IP:10.20.1.2', 'IP:fd00:20::9'] });
    const r = await t.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'interop' });
    assertOpensslOk(opensslVerify(rootFile, issuingFile, write('nc-in.pem', r.pem)), 'openssl inside');
    assertCerttoolOk(certtoolVerify(write('nc-in-chain.pem', r.pem + t.issuingPem + t.rootPem)), 'certtool inside');
  });

  // The Authority refuses these itself; signed here directly with the issuing
  // key to check that the DER fleetpki writes makes other validators refuse them too.
  for (const [name, san] of [
    ['dns-outside', 'dns:m1.plant2.example'],
    ['dns-excluded', 'dns:hmi.scada.plant1.example'],
    ['ipv4-outside', 'ip:10.21.0.1'],
    ['ipv6-outside', 'ip:fd00:21::1'],
  ] as const) {
    it(`fail-${name}-refused-by-both`, async () => {
      const issuing = parseCertificate(t.issuingPem);
      const ref = (await t.store.getCa('issuing'))!.keyRef!;
      const signer = keyObjectSigner(loadPrivateKey(await t.keys.exportEncrypted(ref, PASS), PASS));
      const leafKeyPem = leafKey('ecdsa-p256');
      const spki = keyObjectSigner(loadPrivateKey(leafKeyPem)).spki;
      const now = Math.floor(Date.now() / 1000) * 1000;
      const [type, value] = [san.slice(0, san.indexOf(':')), san.slice(san.indexOf(':') + 1)] as ['dns' | 'ip', string];
      const der = await signCertificate(
        {
          serial: newSerial(),
          issuer: issuing.subjectDer,
          subject: encodeName([{ type: 'CN', value: 'forged' }]),
          notBefore: new Date(now - 60_000),
          notAfter: new Date(now + 86_400_000),
          spki,
          extensions: [x.basicConstraints(false), x.keyUsage(['digitalSignature']), x.subjectKeyIdentifier(x.keyIdentifierOf(spki)), x.authorityKeyIdentifier(issuing.ski!), x.subjectAltName([{ type, value }], false)],
        },
        signer,
      );
      const pem = pemEncode('CERTIFICATE', der);
      const o = opensslVerify(rootFile, issuingFile, write(`nc-${name}.pem`, pem));
      assertOpensslRefused(o, `openssl ${san}`);
      assert.match(o.out, /subtree violation/, o.out);
      assertCerttoolRefused(certtoolVerify(write(`nc-${name}-chain.pem`, pem + t.issuingPem + t.rootPem)), `certtool ${san}`);
    });
  }
});
