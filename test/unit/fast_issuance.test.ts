/**
 * The issuance fast path (src/authority/fast_issuance.ts, x509/csr_reader.ts)
 * against the library path it shortcuts: for many profiles and requests the
 * TBSCertificate is the same byte for byte (the random serials aside) and
 * the stored record the same; every one-byte mutation of a CSR is refused by
 * both with the same typed error and changes nothing; the certificates
 * verify with `openssl verify` and GnuTLS `certtool --verify-chain`; the
 * worker pool issues the same certificates.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Authority, type AuthorityConfig, type IssueRequest, type IssueResult } from '../../src/authority/authority.js';
import { resolveProfiles } from '../../src/authority/profiles.js';
import { FakeClock } from '../../src/clock.js';
import { isProblem } from '../../src/errors.js';
import { keyObjectSigner } from '../../src/keys/key_store.js';
import type { Store } from '../../src/store/store.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { buildCsr } from '../../src/x509/csr_builder.js';
import { readCsrFast } from '../../src/x509/csr_reader.js';
import type { San } from '../../src/x509/general_names.js';
import type { DnAttribute } from '../../src/x509/names.js';
import { derFromPemOrDer, pemEncode } from '../../src/x509/pem.js';
import { makeCsr, makeTestCa, run, TEST_PUBLIC_URL, type TestCa } from '../helpers/ca_fixture.js';

const PROFILES = resolveProfiles({
  'no-eku': { description: 'no EKU, no revocation info', keyAlgorithms: ['ecdsa-p256'], validityDays: 10, keyUsage: ['digitalSignature'], extendedKeyUsage: [], subject: { allowed: ['CN', 'O', 'C', 'serialNumber', 'emailAddress', 'DC', 'UID'] }, san: { allowed: ['dns', 'ip', 'uri', 'email'], max: 50 }, revocationInfo: false },
  'short-lived': { description: 'seconds', keyAlgorithms: ['ecdsa-p256'], validityDays: 1, validitySeconds: 600, keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'], subject: { allowed: ['CN'] }, san: { allowed: ['dns'], patterns: { dns: ['[a-z0-9-]+\\.fleet\\.example'] } } },
});

async function nodeCsr(subject: DnAttribute[], sans?: San[]): Promise<Uint8Array> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return buildCsr({ subject, sans }, keyObjectSigner(privateKey));
}

interface Case {
  name: string;
  req: Omit<IssueRequest, 'actor'>;
  /** Authority options beyond the defaults. */
  config?: Partial<AuthorityConfig>;
}

async function cases(): Promise<Case[]> {
  const cn = (v: string): DnAttribute[] => [{ type: 'CN', value: v }];
  const opensslCsr = makeCsr({ alg: 'ecdsa-p256', subject: '/C=DE/O=Acme Devices/OU=Line 4/CN=sensor-17', sans: ['DNS:sensor-17.fleet.example', 'IP:10.1.2.3', 'URI:urn:dev:sensor-17'] }).csrPem;
  const utf8 = await nodeCsr([{ type: 'O', value: 'Müller & Söhne' }, { type: 'CN', value: 'Gerät-1' }], [{ type: 'dns', value: 'geraet-1.example' }]);
  return [
    { name: 'device-tls, openssl CSR, PEM', req: { profile: 'device-tls', csr: opensslCsr } },
    { name: 'device-tls, UTF8String subject', req: { profile: 'device-tls', csr: utf8 } },
    { name: 'device-tls, no SAN', req: { profile: 'device-tls', csr: await nodeCsr(cn('plain-1')) } },
    { name: 'device-tls, names from the registry', req: { profile: 'device-tls', csr: await nodeCsr(cn('csr-name')), subject: [{ type: 'O', value: 'Fleet' }, { type: 'CN', value: 'dev-9' }, { type: 'serialNumber', value: 'SN-0009' }], sans: [{ type: 'uri', value: 'urn:fleet:dev-9' }, { type: 'dns', value: 'DEV-9.Fleet.Example' }, { type: 'dns', value: 'dev-9.fleet.example' }] } },
    { name: 'device-tls, validity asked', req: { profile: 'device-tls', csr: await nodeCsr(cn('v-30')), validityDays: 30 } },
    { name: 'server-tls, many names', req: { profile: 'server-tls', csr: await nodeCsr(cn('api'), Array.from({ length: 40 }, (_, i) => ({ type: 'dns' as const, value: `h${i}.api.example` }))) } },
    { name: 'server-tls, empty subject (critical SAN)', req: { profile: 'server-tls', csr: await nodeCsr([], [{ type: 'dns', value: 'only-san.example' }, { type: 'ip', value: '192.0.2.7' }]) } },
    { name: 'code-signing, email and URI', req: { profile: 'code-signing', csr: await nodeCsr([{ type: 'C', value: 'FR' }, { type: 'CN', value: 'Firmware signer' }], [{ type: 'email', value: 'release@acme.example' }, { type: 'uri', value: 'https://acme.example/signer' }]) } },
    { name: 'ocsp-signer (nocheck, no revocation info)', req: { profile: 'ocsp-signer', csr: await nodeCsr(cn('OCSP responder')) } },
    { name: 'no-eku, IA5 attributes', req: { profile: 'no-eku', csr: await nodeCsr([{ type: 'DC', value: 'example' }, { type: 'UID', value: 'u-1' }, { type: 'emailAddress', value: 'ops@example.org' }, { type: 'CN', value: 'x' }]) } },
    { name: 'short-lived (seconds)', req: { profile: 'short-lived', csr: await nodeCsr(cn('t-1'), [{ type: 'dns', value: 'node-1.fleet.example' }]) } },
    { name: 'device-tls with delta CRLs', req: { profile: 'device-tls', csr: await nodeCsr(cn('delta-1')) }, config: { deltaCrls: true } },
    { name: 'device-tls, long subject (long-form lengths)', req: { profile: 'device-tls', csr: await nodeCsr([{ type: 'O', value: 'o'.repeat(64) }, { type: 'OU', value: 'u'.repeat(64) }, { type: 'L', value: 'l'.repeat(128) }, { type: 'CN', value: 'c'.repeat(64) }]) } },
  ];
}

/** The TBS of `b` with its serial replaced by `a`'s: both serials are 17 octets at the same place. */
function tbsWithSerialOf(a: Uint8Array, b: Uint8Array): Buffer {
  const ia = parseCertificate(a);
  const ib = parseCertificate(b);
  const tbs = Buffer.from(ib.tbs);
  const at = tbs.indexOf(Buffer.from(ib.serial, 'hex'));
  Buffer.from(ia.serial, 'hex').copy(tbs, at);
  return tbs;
}

function withoutSerial(r: IssueResult) {
  const { serial: _s, der: _d, createdAt: _c, ...rest } = r.record;
  return rest;
}

describe('issuance fast path', () => {
  let t: TestCa;
  let clock: FakeClock;
  let dir: string;
  const authorities = new Map<string, { fast: Authority; library: Authority }>();

  function pair(config: Partial<AuthorityConfig> = {}) {
    const key = JSON.stringify(config);
    let p = authorities.get(key);
    if (!p) {
      const base: AuthorityConfig = { profiles: PROFILES, defaultCa: 'issuing', publicUrl: TEST_PUBLIC_URL, backdateSeconds: 300, ...config };
      p = { fast: new Authority(t.store, t.keys, clock, base), library: new Authority(t.store, t.keys, clock, { ...base, fastPath: false }) };
      authorities.set(key, p);
    }
    return p;
  }

  async function snapshot(store: Store) {
    return { certs: (await store.listCertificates({ limit: 1000 })).map((c) => c.serial), audit: (await store.listAudit({ limit: 1000 })).length };
  }

  before(async () => {
    clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000 + 123);
    t = await makeTestCa({ clock });
    dir = mkdtempSync(join(tmpdir(), 'fleetpki-fast-'));
  });
  after(async () => {
    for (const p of authorities.values()) await p.fast.close();
    await t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes the TBSCertificate and the record of the library path, byte for byte', async () => {
    const issuer = new X509Certificate(t.issuingPem);
    for (const c of await cases()) {
      const { fast, library } = pair(c.config);
      const before = fast.issuedBy.fastPath;
      const a = await fast.prepare({ ...c.req, actor: 'test' });
      assert.equal(fast.issuedBy.fastPath, before + 1, `${c.name}: took the fast path`);
      const b = await library.prepare({ ...c.req, actor: 'test' });
      assert.equal(library.issuedBy.fastPath, 0);
      assert.deepEqual(Buffer.from(parseCertificate(a.der).tbs).toString('hex'), tbsWithSerialOf(a.der, b.der).toString('hex'), `${c.name}: same TBS`);
      assert.deepEqual(withoutSerial(a), withoutSerial(b), `${c.name}: same record`);
      assert.equal(a.record.serial, parseCertificate(a.der).serial);
      assert.equal(a.capped, b.capped);
      assert.deepEqual(a.chain, b.chain);
      assert.ok(new X509Certificate(Buffer.from(a.der)).verify(issuer.publicKey), `${c.name}: signature verifies`);
    }
  });

  it('leaves other shapes to the library path (RSA, P-384, Ed25519 keys, IPv6 names, SHA-384 signature)', async () => {
    const { fast } = pair();
    const others = [
      makeCsr({ alg: 'rsa-2048' }).csrPem,
      makeCsr({ alg: 'ecdsa-p384' }).csrPem,
      makeCsr({ alg: 'ed25519' }).csrPem,
      makeCsr({ alg: 'ecdsa-p256', sans: ['IP:2001:db8::1'] }).csrPem,
      makeCsr({ alg: 'ecdsa-p256', digest: 'sha384' }).csrPem,
    ];
    for (const csr of others) {
      const lib = fast.issuedBy.library;
      const r = await fast.prepare({ profile: 'device-tls', csr, actor: 'test' });
      assert.equal(fast.issuedBy.library, lib + 1);
      assert.ok(r.der.length > 0);
    }
    assert.equal(readCsrFast(derFromPemOrDer(others[0], ['CERTIFICATE REQUEST'])), undefined);
  });

  it('refuses every one-byte mutation of a CSR with the same typed error as the library path, and stores nothing', async () => {
    const { fast, library } = pair();
    const csr = derFromPemOrDer(makeCsr({ alg: 'ecdsa-p256', subject: '/O=Acme/CN=mut-1', sans: ['DNS:mut-1.example', 'IP:10.9.8.7'] }).csrPem, ['CERTIFICATE REQUEST']);
    const before = await snapshot(t.store);
    let refused = 0;
    for (let i = 0; i < csr.length; i++) {
      for (const mask of [0x01, 0x80]) {
        const m = new Uint8Array(csr);
        m[i] ^= mask;
        const codes: string[] = [];
        for (const a of [fast, library]) {
          try {
            await a.issue({ profile: 'device-tls', csr: m, actor: 'test' });
            codes.push('accepted');
          } catch (e) {
            assert.ok(isProblem(e), `byte ${i} ^ ${mask}: ${String(e)}`);
            codes.push(e.code);
          }
        }
        assert.equal(codes[0], codes[1], `byte ${i} ^ ${mask}: fast ${codes[0]}, library ${codes[1]}`);
        assert.notEqual(codes[0], 'accepted', `byte ${i} ^ ${mask} was accepted`);
        refused++;
      }
    }
    assert.equal(refused, csr.length * 2);
    assert.deepEqual(await snapshot(t.store), before, 'nothing stored');
  });

  it('refuses what the profile refuses, with the library path errors', async () => {
    const { fast, library } = pair();
    const bad: Array<Omit<IssueRequest, 'actor'>> = [
      { profile: 'server-tls', csr: await nodeCsr([{ type: 'CN', value: 'no-san' }]) },
      { profile: 'device-tls', csr: await nodeCsr([{ type: 'O', value: 'no CN' }]) },
      { profile: 'device-tls', csr: await nodeCsr([{ type: 'CN', value: 'x' }, { type: 'title', value: 'boss' }]) },
      { profile: 'short-lived', csr: await nodeCsr([{ type: 'CN', value: 'x' }], [{ type: 'dns', value: 'evil.example' }]) },
      { profile: 'short-lived', csr: await nodeCsr([{ type: 'CN', value: 'x' }]), validityDays: 1 },
      { profile: 'device-tls', csr: await nodeCsr([{ type: 'CN', value: 'x' }]), validityDays: 999 },
      { profile: 'device-tls', csr: await nodeCsr([{ type: 'CN', value: 'x' }], [{ type: 'dns', value: 'bad_name!' }]) },
      { profile: 'opcua-application', csr: await nodeCsr([{ type: 'CN', value: 'x' }], [{ type: 'uri', value: 'urn:x' }]) },
      { profile: 'device-tls', csr: await nodeCsr([]) },
    ];
    for (const req of bad) {
      const errs: string[] = [];
      for (const a of [fast, library]) {
        await assert.rejects(a.issue({ ...req, actor: 'test' }), (e) => {
          assert.ok(isProblem(e), String(e));
          errs.push(`${e.code}: ${e.detail}`);
          return true;
        });
      }
      assert.equal(errs[0], errs[1]);
    }
  });

  it('issues certificates that openssl verify and GnuTLS certtool accept', async () => {
    const { fast } = pair();
    const root = join(dir, 'root.pem');
    const issuing = join(dir, 'issuing.pem');
    writeFileSync(root, t.rootPem);
    writeFileSync(issuing, t.issuingPem);
    for (const c of (await cases()).filter((x) => !x.config && x.req.profile !== 'ocsp-signer')) {
      const r = await fast.issue({ ...c.req, actor: 'test' });
      const leaf = join(dir, 'leaf.pem');
      writeFileSync(leaf, r.pem);
      const o = run('openssl', ['verify', '-x509_strict', '-CAfile', root, '-untrusted', issuing, leaf]);
      assert.equal(o.status, 0, `${c.name}: ${o.out}`);
      const chain = join(dir, 'chain.pem');
      writeFileSync(chain, r.pem + t.issuingPem);
      const g = run('certtool', ['--verify', '--load-ca-certificate', root, '--infile', chain]);
      assert.equal(g.status, 0, `${c.name}: ${g.out}`);
      assert.match(g.out, /Chain verification output: Verified/);
      writeFileSync(chain, r.pem + t.issuingPem + t.rootPem);
      const w = run('certtool', ['--verify-chain', '--infile', chain]);
      assert.equal(w.status, 0, `${c.name}: ${w.out}`);
      assert.match(w.out, /Chain verification output: Verified/);
      assert.deepEqual((await t.store.getCertificate(r.record.serial))?.der, r.der);
    }
  });

  it('issues through worker threads the same certificates, and every one is committed', async () => {
    const a = new Authority(t.store, t.keys, clock, { profiles: PROFILES, defaultCa: 'issuing', publicUrl: TEST_PUBLIC_URL, backdateSeconds: 300, issuanceWorkers: 2 });
    const { library } = pair();
    try {
      const csrs = await Promise.all(Array.from({ length: 40 }, (_, i) => nodeCsr([{ type: 'CN', value: `pool-${i}` }], [{ type: 'dns', value: `pool-${i}.example` }])));
      const lone = await a.issue({ profile: 'device-tls', csr: csrs[0], actor: 'test' });
      assert.deepEqual(a.workerPool()!.ran, { here: 1, onWorkers: 0 }, 'an issuance alone is checked and signed on this thread');
      assert.ok(new X509Certificate(Buffer.from(lone.der)).verify(new X509Certificate(t.issuingPem).publicKey));
      const results = await Promise.all(csrs.map((csr) => a.issue({ profile: 'device-tls', csr, actor: 'test' })));
      assert.equal(a.issuedBy.fastPath, 41);
      assert.ok(a.workerPool()!.ran.onWorkers >= 30, `40 at once go to the workers: ${JSON.stringify(a.workerPool()!.ran)}`);
      const issuer = new X509Certificate(t.issuingPem);
      for (const [i, r] of results.entries()) {
        assert.ok(new X509Certificate(Buffer.from(r.der)).verify(issuer.publicKey));
        assert.deepEqual((await t.store.getCertificate(r.record.serial))?.der, r.der, 'committed before it was returned');
        const b = await library.prepare({ profile: 'device-tls', csr: csrs[i], actor: 'test' });
        assert.equal(Buffer.from(parseCertificate(r.der).tbs).toString('hex'), tbsWithSerialOf(r.der, b.der).toString('hex'));
      }
      // A refusal from a worker is the same typed error.
      const m = new Uint8Array(csrs[0]);
      m[m.length - 3] ^= 1;
      await assert.rejects(Promise.all([a.issue({ profile: 'device-tls', csr: m, actor: 'test' }), a.issue({ profile: 'device-tls', csr: csrs[1], actor: 'test' })]), (e) => isProblem(e, 'bad_signature'));
    } finally {
      await a.close();
    }
  });

  it('keeps the CA key check of the library path: a CA whose key went offline issues nothing', async () => {
    const u = await makeTestCa({ clock });
    try {
      const csr = pemEncode('CERTIFICATE REQUEST', await nodeCsr([{ type: 'CN', value: 'k' }]));
      await u.authority.issue({ profile: 'device-tls', csr, actor: 'test' });
      await u.authority.exportCaKey('issuing', 'pass phrase for the test', 'test');
      await u.authority.takeCaKeyOffline('issuing', 'test');
      await assert.rejects(u.authority.issue({ profile: 'device-tls', csr, actor: 'test' }), (e) => isProblem(e, 'key_unavailable'));
    } finally {
      await u.cleanup();
    }
  });
});
