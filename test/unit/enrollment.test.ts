/**
 * Enrollment policy (src/registry/enrollment.ts) through `enroll` directly,
 * with CSRs from the real openssl CLI: credentials (one-time secret, our
 * certificate, manufacturer certificate), device state, names from the
 * registry, approval, orders, key reuse and server-side key generation. Every
 * refusal must write an 'enrollment.refuse' audit entry and store nothing.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode, type ProblemError } from '../../src/errors.js';
import { caFingerprint, type EnrollmentCredential, type EnrollRequest, type EnrollResult, type Enrollment } from '../../src/registry/enrollment.js';
import type { DeviceInput } from '../../src/registry/registry.js';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { formatSan } from '../../src/x509/general_names.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeCsr, type CsrAlgorithm } from '../helpers/ca_fixture.js';
import { makeDataDir, tempDir, type TestDataDir } from '../helpers/data_dir.js';

const START = '2030-01-01T00:00:00Z';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const clock = new FakeClock(START);
let d: TestDataDir;
let work: string;
let rootAnchor: string;
let issuingAnchor: string;
let rootPem: string;
let issuingPem: string;
/** Contexts on the same data directory with a changed config (profiles, manufacturer id rule). */
let refuseNames: FleetContext;
let keyGen: FleetContext;
let byCn: FleetContext;
let byUri: FleetContext;
let refusals = 0;

// ------------------------------------------------------------------ helpers

function openssl(args: string[], input?: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function csr(subject: string, opts: { sans?: string[]; keyPem?: string; alg?: CsrAlgorithm } = {}): { csrPem: string; keyPem: string } {
  return makeCsr({ alg: opts.alg ?? 'ecdsa-p256', subject, sans: opts.sans, keyPem: opts.keyPem });
}

/** The subject the registry gives a device, in openssl -subj form (for same-subject re-enrollment). */
const registrySubj = (id: string) => `/O=Test Fleet/serialNumber=${id}/CN=${id}`;

async function register(id: string, extra: Partial<DeviceInput> = {}): Promise<string> {
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls', ...extra }, 'test', true);
  return secret!;
}

const bySecret = (deviceId: string, secret: string): EnrollmentCredential => ({ kind: 'secret', deviceId, secret });
const byCert = (der: Uint8Array, anchor = rootAnchor): EnrollmentCredential => ({ kind: 'certificate', leaf: parseCertificate(der), anchor });

async function issued(req: Omit<EnrollRequest, 'via'>, enrollment: Enrollment = d.ctx.enrollment): Promise<Extract<EnrollResult, { status: 'issued' }>> {
  const r = await enrollment.enroll({ via: 'test', ...req });
  assert.equal(r.status, 'issued');
  return r as Extract<EnrollResult, { status: 'issued' }>;
}

/** Bootstrap with a fresh secret; returns the result and the key. */
async function enrollNew(id: string, extra: Partial<DeviceInput> = {}): Promise<{ r: Extract<EnrollResult, { status: 'issued' }>; keyPem: string }> {
  const secret = await register(id, extra);
  const c = csr(`/CN=${id}`);
  return { r: await issued({ credential: bySecret(id, secret), csr: c.csrPem }), keyPem: c.keyPem };
}

async function certCount(): Promise<number> {
  return (await d.ctx.store.listCertificates({ limit: 1000 })).length;
}
async function refuseEntries() {
  return d.ctx.store.listAudit({ action: 'enrollment.refuse', limit: 1000 });
}

/**
 * Expects a refusal with `code`: nothing stored, the device and its secret
 * unchanged, one new 'enrollment.refuse' audit entry naming the code.
 */
async function refused(req: Omit<EnrollRequest, 'via'>, code: ProblemCode, re?: RegExp, enrollment: Enrollment = d.ctx.enrollment): Promise<ProblemError> {
  const certsBefore = await certCount();
  const auditBefore = await refuseEntries();
  const deviceId = req.credential.kind === 'secret' ? req.credential.deviceId : undefined;
  const deviceBefore = deviceId ? await d.ctx.store.getDevice(deviceId) : undefined;
  const secretBefore = deviceId ? await d.ctx.store.getEnrollmentSecret(deviceId) : undefined;
  let err: ProblemError | undefined;
  await assert.rejects(
    () => enrollment.enroll({ via: 'test', remote: '192.0.2.7', ...req }),
    (e) => {
      assert.ok(isProblem(e), `a ProblemError, got ${String(e)}`);
      assert.equal(e.code, code, e.detail);
      if (re) assert.match(e.detail, re);
      err = e;
      return true;
    },
  );
  refusals++;
  assert.equal(await certCount(), certsBefore, 'a refusal stores no certificate');
  const auditAfter = await refuseEntries();
  assert.equal(auditAfter.length, auditBefore.length + 1, 'one enrollment.refuse audit entry');
  const entry = auditAfter[auditAfter.length - 1];
  assert.equal(entry.details.code, code);
  assert.equal(entry.details.detail, err!.detail);
  assert.equal(entry.details.via, 'test');
  assert.equal(entry.details.remote, '192.0.2.7');
  assert.equal(entry.details.credential, req.credential.kind);
  if (deviceId) {
    assert.deepEqual(await d.ctx.store.getDevice(deviceId), deviceBefore, 'the device record is unchanged');
    assert.deepEqual(await d.ctx.store.getEnrollmentSecret(deviceId), secretBefore, 'the secret is not consumed');
  }
  return err!;
}

/** Opens a second context on the data directory with a changed config file. */
async function variant(change: (cfg: Record<string, any>) => void): Promise<FleetContext> {
  const file = join(d.dir, 'fleetpki.json');
  const original = readFileSync(file, 'utf8');
  const cfg = JSON.parse(original);
  change(cfg);
  writeFileSync(file, JSON.stringify(cfg));
  try {
    return await openContext(d.dir, { clock });
  } finally {
    writeFileSync(file, original);
  }
}

/** A CA made with the openssl CLI (a manufacturer) and IDevIDs it signs. */
class OpensslCa {
  readonly pem: string;
  readonly anchor: string;
  constructor(readonly name: string) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.file('key'), '-subj', `/O=${name}/CN=${name} Root`, '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', this.file('pem')]);
    this.pem = readFileSync(this.file('pem'), 'utf8');
    this.anchor = caFingerprint(parseCertificate(this.pem).der);
  }
  private file(ext: string, base = 'ca'): string {
    return join(work, `${this.name}-${base}.${ext}`);
  }
  /** An IDevID leaf; returns its DER. */
  idevid(leaf: string, subj: string, opts: { sanUri?: string; days?: number } = {}): Uint8Array {
    const req = spawnSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', this.file('key', leaf), '-subj', subj, ...(opts.sanUri ? ['-addext', `subjectAltName=URI:${opts.sanUri}`] : []), '-out', this.file('csr', leaf)], { encoding: 'utf8' });
    if (req.status !== 0) throw new Error(req.stderr);
    openssl(['x509', '-req', '-in', this.file('csr', leaf), '-CA', this.file('pem'), '-CAkey', this.file('key'), '-days', String(opts.days ?? 3650), '-copy_extensions', 'copy', '-out', this.file('pem', leaf)]);
    return parseCertificate(readFileSync(this.file('pem', leaf), 'utf8')).der;
  }
}

before(async () => {
  d = await makeDataDir({ clock });
  work = tempDir('fleetpki-enroll-');
  const cas = await d.ctx.store.listCas();
  const root = cas.find((c) => c.name === 'root')!;
  const issuing = cas.find((c) => c.name === 'issuing')!;
  rootAnchor = caFingerprint(root.certDer);
  issuingAnchor = caFingerprint(issuing.certDer);
  rootPem = pemEncode('CERTIFICATE', root.certDer);
  issuingPem = pemEncode('CERTIFICATE', issuing.certDer);
  refuseNames = await variant((c) => (c.profiles = { 'device-tls': { csrNames: 'refuse' } }));
  keyGen = await variant((c) => (c.profiles = { 'device-tls': { serverKeyGen: true }, 'p256-only': { description: 'P-256 devices', keyAlgorithms: ['ecdsa-p256'], validityDays: 365, keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'], subject: { allowed: ['CN', 'serialNumber', 'O'] }, san: { allowed: ['dns', 'ip', 'uri'] }, serverKeyGen: true } }));
  byCn = await variant((c) => (c.registry = { ...c.registry, manufacturerId: { from: 'cn' } }));
  byUri = await variant((c) => (c.registry = { ...c.registry, manufacturerId: { from: 'uri', prefix: 'urn:maker:sn:' } }));
});

after(async () => {
  for (const c of [refuseNames, keyGen, byCn, byUri]) await c?.close().catch(() => undefined);
  await d.cleanup();
  spawnSync('rm', ['-rf', work]);
});

// ------------------------------------------------------------------ tests

describe('one-time secret', () => {
  it('ok-issued: device active, current serial, certificate linked, names from the registry (CSR names trimmed)', async () => {
    const secret = await register('sec-ok', { domain: 'site-a', sans: ['dns:sec-ok.example', 'ip:10.0.0.5'] });
    const c = csr('/O=Evil Corp/CN=someone-else', { sans: ['DNS:evil.example', 'URI:urn:fleetpki:domain:other-site', 'IP:192.0.2.1'] });
    const r = await issued({ credential: bySecret('sec-ok', secret), csr: c.csrPem });
    assert.equal(r.device.state, 'active');
    assert.equal(r.device.currentSerial, r.result.record.serial);
    assert.equal(r.result.record.deviceId, 'sec-ok');
    assert.equal(r.privateKey, undefined);
    const stored = await d.ctx.store.getCertificate(r.result.record.serial);
    assert.equal(stored!.deviceId, 'sec-ok');
    assert.equal((await d.ctx.registry.device('sec-ok')).currentSerial, r.result.record.serial);

    const cert = parseCertificate(r.result.der);
    assert.deepEqual(cert.subject, [
      { type: 'O', value: 'Test Fleet' },
      { type: 'serialNumber', value: 'sec-ok' },
      { type: 'CN', value: 'sec-ok' },
    ]);
    assert.deepEqual(cert.sans.map(formatSan), ['uri:urn:fleetpki:domain:site-a', 'dns:sec-ok.example', 'ip:10.0.0.5']);
    // The key is the CSR's, and openssl agrees with names and chain.
    const csrPub = openssl(['req', '-noout', '-pubkey'], c.csrPem);
    const certPub = openssl(['x509', '-noout', '-pubkey'], r.result.pem);
    assert.equal(certPub, csrPub);
    writeFileSync(join(work, 'root.pem'), rootPem);
    writeFileSync(join(work, 'issuing.pem'), issuingPem);
    assert.match(openssl(['verify', '-x509_strict', '-attime', String(Date.parse(START) / 1000 + 60), '-CAfile', join(work, 'root.pem'), '-untrusted', join(work, 'issuing.pem')], r.result.pem), /OK/);
    const text = openssl(['x509', '-noout', '-subject', '-ext', 'subjectAltName', '-nameopt', 'RFC2253'], r.result.pem);
    assert.match(text, /subject=CN=sec-ok,serialNumber=sec-ok,O=Test Fleet/);
    assert.ok(!/evil|other-site|192\.0\.2\.1/.test(text), 'nothing from the CSR besides the key');

    const secretRec = await d.ctx.store.getEnrollmentSecret('sec-ok');
    assert.deepEqual(secretRec!.usedAt, clock.now(), 'the secret is used up');
    const audit = (await d.ctx.store.listAudit({ target: r.result.record.serial }))[0];
    assert.equal(audit.action, 'certificate.issue');
    assert.equal(audit.actor, 'device:sec-ok');
    assert.equal(audit.details.method, 'secret');
    assert.equal(audit.details.deviceId, 'sec-ok');
  });

  it('fail-secret is single use', async () => {
    const secret = await register('sec-once');
    await issued({ credential: bySecret('sec-once', secret), csr: csr('/CN=sec-once').csrPem });
    await refused({ credential: bySecret('sec-once', secret), csr: csr('/CN=sec-once').csrPem }, 'unauthorized');
  });

  it('ok-a lost answer is asked again with the same secret and key: the same certificate, not a second one', async () => {
    const secret = await register('sec-retry');
    const c = csr('/CN=sec-retry');
    const first = await issued({ credential: bySecret('sec-retry', secret), csr: c.csrPem });
    const before = await certCount();
    const again = await issued({ credential: bySecret('sec-retry', secret), csr: csr('/CN=sec-retry', { keyPem: c.keyPem }).csrPem });
    assert.equal(again.result.record.serial, first.result.record.serial);
    assert.deepEqual(Buffer.from(again.result.der), Buffer.from(first.result.der));
    assert.deepEqual(again.result.chain.map((x) => Buffer.from(x).toString('hex')), first.result.chain.map((x) => Buffer.from(x).toString('hex')));
    assert.equal(await certCount(), before, 'nothing new issued');
    const audit = (await d.ctx.store.listAudit({ action: 'enrollment.retry', limit: 1000 })).at(-1);
    assert.equal(audit?.target, first.result.record.serial);
  });

  it('fail-a used secret with another key, after a renewal, for serverkeygen, or once expired: unauthorized', async () => {
    const secret = await register('sec-retry-2');
    const c = csr('/CN=sec-retry-2');
    const first = await issued({ credential: bySecret('sec-retry-2', secret), csr: c.csrPem });
    await refused({ credential: bySecret('sec-retry-2', secret), csr: csr('/CN=sec-retry-2').csrPem }, 'unauthorized');
    await refused({ credential: bySecret('sec-retry-2', secret), csr: c.csrPem, serverKeyGen: true }, 'unauthorized');
    // Renewed since: the secret's certificate is no longer the current one.
    clock.advance(1000);
    try {
      await issued({ credential: byCert(first.result.der), csr: csr(registrySubj('sec-retry-2')).csrPem, reenroll: true });
      await refused({ credential: bySecret('sec-retry-2', secret), csr: c.csrPem }, 'unauthorized');
    } finally {
      clock.set(START);
    }
    const s2 = await register('sec-retry-3');
    const c2 = csr('/CN=sec-retry-3');
    await issued({ credential: bySecret('sec-retry-3', s2), csr: c2.csrPem });
    clock.advance(d.ctx.config.registry.secretTtlHours * HOUR);
    try {
      await refused({ credential: bySecret('sec-retry-3', s2), csr: c2.csrPem }, 'unauthorized');
    } finally {
      clock.set(START);
    }
  });

  it('ok-secret valid until just before it expires; fail-expired at the expiry', async () => {
    const ttl = d.ctx.config.registry.secretTtlHours * HOUR;
    const s1 = await register('sec-late');
    const s2 = await register('sec-expired');
    try {
      clock.advance(ttl - 1000);
      await issued({ credential: bySecret('sec-late', s1), csr: csr('/CN=sec-late').csrPem });
      clock.advance(1000);
      await refused({ credential: bySecret('sec-expired', s2), csr: csr('/CN=sec-expired').csrPem }, 'unauthorized');
    } finally {
      clock.set(START);
    }
  });

  it('fail-unknown device, wrong secret, no secret, used, expired: one and the same answer', async () => {
    const good = await register('sec-same');
    await d.ctx.registry.register({ id: 'sec-none', profile: 'device-tls' }, 'test');
    const used = await register('sec-used');
    await issued({ credential: bySecret('sec-used', used), csr: csr('/CN=sec-used').csrPem });
    const exp = await register('sec-exp');
    const details = new Set<string>();
    const cases: Array<[string, string]> = [
      ['no-such-device', good],
      ['sec-same', `${good.slice(0, -1)}${good.endsWith('A') ? 'B' : 'A'}`],
      ['sec-same', ''],
      ['sec-none', good],
      ['sec-used', used],
    ];
    for (const [id, s] of cases) details.add((await refused({ credential: bySecret(id, s), csr: csr(`/CN=${id}`).csrPem }, 'unauthorized')).detail);
    clock.advance(d.ctx.config.registry.secretTtlHours * HOUR + 1);
    try {
      details.add((await refused({ credential: bySecret('sec-exp', exp), csr: csr('/CN=sec-exp').csrPem }, 'unauthorized')).detail);
    } finally {
      clock.set(START);
    }
    assert.equal(details.size, 1, `one message for every case: ${[...details].join(' | ')}`);
    // The right secret still works after all that.
    await issued({ credential: bySecret('sec-same', good), csr: csr('/CN=sec-same').csrPem });
  });

  it('fail-a secret cannot re-enroll (there is nothing to renew)', async () => {
    const s = await register('sec-reenroll');
    await refused({ credential: bySecret('sec-reenroll', s), csr: csr(registrySubj('sec-reenroll')).csrPem, reenroll: true }, 'unauthorized', /re-enrollment needs the current certificate/);
  });

  it('fail-bad CSRs are refused and audited', async () => {
    const s = await register('sec-badcsr');
    await refused({ credential: bySecret('sec-badcsr', s), csr: 'not a CSR' }, 'bad_csr');
    // Flip one bit in the signature: the proof of possession fails.
    const der = Buffer.from(csr('/CN=sec-badcsr').csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] ^= 0x01;
    await refused({ credential: bySecret('sec-badcsr', s), csr: new Uint8Array(der) }, 'bad_signature');
  });
});

describe('device state and label profile', () => {
  for (const state of ['suspended', 'retired', 'revoked'] as const) {
    it(`fail-${state} device is forbidden`, async () => {
      const s = await register(`state-${state}`);
      await d.ctx.registry.setState(`state-${state}`, state, 'test');
      await refused({ credential: bySecret(`state-${state}`, s), csr: csr(`/CN=state-${state}`).csrPem }, 'forbidden', new RegExp(`is ${state} and may not enroll`));
    });
  }

  it('ok-an active device may bootstrap again with a new secret (new certificate becomes current)', async () => {
    const { r } = await enrollNew('state-active');
    const s = await d.ctx.registry.newSecret('state-active', 'test');
    const again = await issued({ credential: bySecret('state-active', s), csr: csr('/CN=state-active').csrPem });
    assert.equal(again.device.currentSerial, again.result.record.serial);
    assert.notEqual(again.result.record.serial, r.result.record.serial);
    assert.equal((await d.ctx.store.getCertificate(r.result.record.serial))!.status, 'good', 'nothing is revoked by an enrollment');
  });

  it('fail-label profile other than the device profile is forbidden; ok-its own profile', async () => {
    const s = await register('label-1');
    await refused({ credential: bySecret('label-1', s), csr: csr('/CN=label-1').csrPem, profile: 'server-tls' }, 'forbidden', /registered for profile device-tls, not server-tls/);
    const r = await issued({ credential: bySecret('label-1', s), csr: csr('/CN=label-1').csrPem, profile: 'device-tls', ca: 'issuing' });
    assert.equal(r.result.record.profile, 'device-tls');
    assert.equal(r.result.record.issuerCa, 'issuing');
  });
});

describe("CSR names: 'trim' (default) and 'refuse' (profile override)", () => {
  it('ok-trim: an unsupported otherName in the CSR is dropped', async () => {
    const s = await register('names-trim', { domain: 'site-a' });
    const c = csr('/CN=names-trim', { sans: ['otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@example.com', 'DNS:b.example'] });
    const r = await issued({ credential: bySecret('names-trim', s), csr: c.csrPem });
    assert.deepEqual(parseCertificate(r.result.der).sans.map(formatSan), ['uri:urn:fleetpki:domain:site-a']);
  });

  const ok: Array<{ name: string; subj: (id: string) => string; sans?: (id: string) => string[] }> = [
    { name: 'ok-refuse-only-the-cn', subj: (id) => `/CN=${id}` },
    { name: 'ok-refuse-exactly-the-registry-names', subj: registrySubj, sans: (id) => [`DNS:${id}.example`, 'URI:urn:fleetpki:domain:site-a'] },
    { name: 'ok-refuse-fewer-names', subj: (id) => `/O=Test Fleet/CN=${id}`, sans: (id) => [`DNS:${id}.example`] },
  ];
  for (const [i, c] of ok.entries()) {
    it(c.name, async () => {
      const id = `names-ok-${i}`;
      const s = await register(id, { domain: 'site-a', sans: [`dns:${id}.example`] });
      const r = await issued({ credential: bySecret(id, s), csr: csr(c.subj(id), { sans: c.sans?.(id) }).csrPem }, refuseNames.enrollment);
      assert.deepEqual(parseCertificate(r.result.der).sans.map(formatSan), ['uri:urn:fleetpki:domain:site-a', `dns:${id}.example`], 'the registry names, whatever the CSR asked');
    });
  }

  const fail: Array<{ name: string; subj: (id: string) => string; sans?: string[]; re: RegExp }> = [
    { name: 'fail-refuse-other-cn', subj: () => '/CN=someone-else', re: /CN=someone-else/ },
    { name: 'fail-refuse-other-org', subj: (id) => `/O=Evil Corp/CN=${id}`, re: /O=Evil Corp/ },
    { name: 'fail-refuse-other-serialNumber', subj: (id) => `/serialNumber=other-${id}/CN=${id}`, re: /serialNumber=other/ },
    { name: 'fail-refuse-extra-ou', subj: (id) => `/OU=Admins/CN=${id}`, re: /OU=Admins/ },
    { name: 'fail-refuse-extra-dns', subj: (id) => `/CN=${id}`, sans: ['DNS:evil.example'], re: /dns:evil\.example/ },
    { name: 'fail-refuse-other-domain-uri', subj: (id) => `/CN=${id}`, sans: ['URI:urn:fleetpki:domain:other-site'], re: /urn:fleetpki:domain:other-site/ },
    { name: 'fail-refuse-extra-ip', subj: (id) => `/CN=${id}`, sans: ['IP:192.0.2.1'], re: /192\.0\.2\.1/ },
    { name: 'fail-refuse-otherName', subj: (id) => `/CN=${id}`, sans: ['otherName:1.3.6.1.4.1.311.20.2.3;UTF8:upn@example.com'], re: /otherName/ },
  ];
  for (const [i, c] of fail.entries()) {
    it(c.name, async () => {
      const id = `names-fail-${i}`;
      const s = await register(id, { domain: 'site-a', sans: [`dns:${id}.example`] });
      await refused({ credential: bySecret(id, s), csr: csr(c.subj(id), { sans: c.sans }).csrPem }, 'policy_violation', c.re, refuseNames.enrollment);
    });
  }
});

describe('re-enrollment with our certificate', () => {
  let first: Extract<EnrollResult, { status: 'issued' }>;
  let firstKey: string;
  before(async () => {
    ({ r: first, keyPem: firstKey } = await enrollNew('re-1', { domain: 'site-r' }));
  });

  it('ok-reenroll with a new key (the default): new current certificate, old one untouched', async () => {
    const r = await issued({ credential: byCert(first.result.der), csr: csr(registrySubj('re-1')).csrPem, reenroll: true });
    assert.equal(r.device.currentSerial, r.result.record.serial);
    assert.notEqual(r.result.record.serial, first.result.record.serial);
    assert.notEqual(parseCertificate(r.result.der).spkiSha256, parseCertificate(first.result.der).spkiSha256);
    assert.equal((await d.ctx.store.getCertificate(first.result.record.serial))!.status, 'good');
    const audit = (await d.ctx.store.listAudit({ target: r.result.record.serial }))[0];
    assert.equal(audit.details.method, 'certificate');
    assert.equal(audit.details.renewal, true);
    assert.equal(audit.details.replaces, first.result.record.serial);
    first = r;
  });

  it('ok-reenroll keeping its own key, anchored at the issuing CA', async () => {
    const r0 = await issued({ credential: byCert(first.result.der, issuingAnchor), csr: csr(registrySubj('re-1')).csrPem, reenroll: true });
    // Back to the very first key: the device's own key, certified before, is no reuse.
    const r = await issued({ credential: byCert(r0.result.der), csr: csr(registrySubj('re-1'), { keyPem: firstKey }).csrPem, reenroll: true });
    assert.equal(r.device.currentSerial, r.result.record.serial);
    first = r;
  });

  it('ok-simpleenroll (not reenroll) with our certificate is a renewal without the subject rule', async () => {
    const r = await issued({ credential: byCert(first.result.der), csr: csr('/CN=whatever').csrPem });
    assert.deepEqual(parseCertificate(r.result.der).subject.map((a) => a.value), ['Test Fleet', 're-1', 're-1']);
    first = r;
  });

  it('fail-reenroll with another subject: bad_request (RFC 7030 §4.2.2)', async () => {
    for (const subj of ['/CN=re-1', '/O=Test Fleet/CN=re-1/serialNumber=re-1', '/O=Test Fleet/serialNumber=re-2/CN=re-1']) {
      await refused({ credential: byCert(first.result.der), csr: csr(subj).csrPem, reenroll: true }, 'bad_request', /§4\.2\.2/);
    }
  });

  it('fail-anchor that is neither ours nor a trusted manufacturer CA: unauthorized', async () => {
    await refused({ credential: byCert(first.result.der, 'ab'.repeat(32)), csr: csr(registrySubj('re-1')).csrPem, reenroll: true }, 'unauthorized', /does not chain to our CA or a trusted manufacturer CA/);
  });

  it('fail-not the exact stored certificate: unauthorized', async () => {
    const other = (await enrollNew('re-other')).r;
    // The serial of re-1's certificate with other bytes: not what the CA issued.
    const leaf = { ...parseCertificate(first.result.der), der: other.result.der };
    await refused({ credential: { kind: 'certificate', leaf, anchor: rootAnchor }, csr: csr(registrySubj('re-1')).csrPem, reenroll: true }, 'unauthorized', /not one this CA issued/);
    // A serial the CA never issued.
    const forged = { ...parseCertificate(first.result.der), serial: '7f'.repeat(16) };
    await refused({ credential: { kind: 'certificate', leaf: forged, anchor: rootAnchor }, csr: csr(registrySubj('re-1')).csrPem, reenroll: true }, 'unauthorized', /not one this CA issued/);
  });

  // Issue 3: re-enrollment authenticates with "its current certificate from
  // our CA". After a renewal the superseded certificate (and its possibly
  // leaked key) must not renew the device again, with either EST operation,
  // and must not be able to race the current one.
  it('fail-a superseded certificate (not the device\'s current one): forbidden, on simplereenroll and simpleenroll', async () => {
    const { r: old } = await enrollNew('re-superseded');
    const current = await issued({ credential: byCert(old.result.der), csr: csr(registrySubj('re-superseded')).csrPem, reenroll: true });
    assert.equal((await d.ctx.registry.device('re-superseded')).currentSerial, current.result.record.serial);
    for (const reenroll of [true, false]) {
      const e = await refused({ credential: byCert(old.result.der), csr: csr(registrySubj('re-superseded')).csrPem, reenroll }, 'forbidden', /is not the current certificate of device re-superseded/);
      assert.ok(e.detail.includes(old.result.record.serial) && e.detail.includes(current.result.record.serial), e.detail);
    }
    assert.equal((await d.ctx.registry.device('re-superseded')).currentSerial, current.result.record.serial, 'the current certificate is unchanged');
    assert.equal((await d.ctx.store.getCertificate(old.result.record.serial))!.status, 'good', 'refusing revokes nothing');
    // The current certificate still renews.
    await issued({ credential: byCert(current.result.der), csr: csr(registrySubj('re-superseded')).csrPem, reenroll: true });
  });

  it('fail-a certificate of ours that belongs to no device: forbidden', async () => {
    const c = csr('/CN=operator-issued');
    const r = await d.ctx.authority.issue({ csr: c.csrPem, profile: 'device-tls', actor: 'test' });
    await refused({ credential: byCert(r.der), csr: csr('/CN=operator-issued').csrPem, reenroll: true }, 'forbidden', /does not belong to a registered device/);
  });

  it('fail-revoked certificate: forbidden (also on hold)', async () => {
    for (const [id, reason] of [
      ['re-revoked', 'keyCompromise'],
      ['re-hold', 'certificateHold'],
    ] as const) {
      const { r } = await enrollNew(id);
      await d.ctx.authority.revoke(r.result.record.serial, reason, 'test');
      await refused({ credential: byCert(r.result.der), csr: csr(registrySubj(id)).csrPem, reenroll: true }, 'forbidden', /revoked/);
    }
  });

  it('fail-expired or not yet valid certificate: unauthorized', async () => {
    const { r } = await enrollNew('re-expired');
    const cert = parseCertificate(r.result.der);
    try {
      clock.set(cert.notAfter.getTime() - 1000);
      // One second before notAfter it still renews...
      await issued({ credential: byCert(r.result.der), csr: csr(registrySubj('re-expired')).csrPem, reenroll: true });
      // ...at notAfter it no longer does.
      clock.set(cert.notAfter);
      await refused({ credential: byCert(cert.der), csr: csr(registrySubj('re-expired')).csrPem, reenroll: true }, 'unauthorized', /expired or not yet valid/);
      clock.set(cert.notBefore.getTime() - 1000);
      await refused({ credential: byCert(cert.der), csr: csr(registrySubj('re-expired')).csrPem, reenroll: true }, 'unauthorized', /expired or not yet valid/);
    } finally {
      clock.set(START);
    }
  });

  it('fail-device suspended or retired after it got its certificate: forbidden', async () => {
    for (const state of ['suspended', 'retired'] as const) {
      const { r } = await enrollNew(`re-${state}`);
      await d.ctx.registry.setState(`re-${state}`, state, 'test');
      await refused({ credential: byCert(r.result.der), csr: csr(registrySubj(`re-${state}`)).csrPem, reenroll: true }, 'forbidden', new RegExp(state));
    }
  });

  it('ok-a suspended device that is reactivated may renew again', async () => {
    const { r } = await enrollNew('re-resumed');
    await d.ctx.registry.setState('re-resumed', 'suspended', 'test');
    await d.ctx.registry.setState('re-resumed', 'active', 'test');
    await issued({ credential: byCert(r.result.der), csr: csr(registrySubj('re-resumed')).csrPem, reenroll: true });
  });
});

describe('manufacturer certificate (IDevID) bootstrap', () => {
  let maker: OpensslCa;
  let untrusted: OpensslCa;
  let idevid: Uint8Array;
  before(async () => {
    maker = new OpensslCa('Maker');
    untrusted = new OpensslCa('Counterfeit');
    await d.ctx.registry.addManufacturerCa(maker.pem, 'test');
    // serialNumber → mfr-sn-1, CN → mfr-cn-1, URI SAN → mfr-uri-1
    idevid = maker.idevid('leaf-1', '/O=Maker/serialNumber=mfr-sn-1/CN=mfr-cn-1', { sanUri: 'urn:maker:sn:mfr-uri-1' });
    for (const id of ['mfr-sn-1', 'mfr-cn-1', 'mfr-uri-1']) await d.ctx.registry.register({ id, profile: 'device-tls', domain: 'plant-1' }, 'test');
  });
  const mfr = (der: Uint8Array, anchor: string): EnrollmentCredential => ({ kind: 'certificate', leaf: parseCertificate(der), anchor });

  it('ok-device id from the subject serialNumber (default); the names are the registry names', async () => {
    const r = await issued({ credential: mfr(idevid, maker.anchor), csr: csr('/CN=factory-name').csrPem });
    assert.equal(r.device.id, 'mfr-sn-1');
    const cert = parseCertificate(r.result.der);
    assert.equal(cert.subjectText, 'O=Test Fleet, serialNumber=mfr-sn-1, CN=mfr-sn-1');
    assert.deepEqual(cert.sans.map(formatSan), ['uri:urn:fleetpki:domain:plant-1']);
    const audit = (await d.ctx.store.listAudit({ target: r.result.record.serial }))[0];
    assert.equal(audit.details.method, 'manufacturer');
    assert.equal(audit.details.renewal, false);
  });

  it('ok-simplereenroll with an IDevID is a bootstrap (strongSwan pki): no same-subject rule', async () => {
    const r = await issued({ credential: mfr(idevid, maker.anchor), csr: csr('/O=Maker/CN=anything').csrPem, reenroll: true });
    assert.equal(r.device.id, 'mfr-sn-1');
  });

  it("ok-'cn' rule (config registry.manufacturerId)", async () => {
    const r = await issued({ credential: mfr(idevid, maker.anchor), csr: csr('/CN=x').csrPem }, byCn.enrollment);
    assert.equal(r.device.id, 'mfr-cn-1');
  });

  it("ok-'uri' rule with a prefix (config registry.manufacturerId)", async () => {
    const r = await issued({ credential: mfr(idevid, maker.anchor), csr: csr('/CN=x').csrPem }, byUri.enrollment);
    assert.equal(r.device.id, 'mfr-uri-1');
  });

  it('fail-certificate without the configured id: forbidden', async () => {
    const noSerial = maker.idevid('leaf-noserial', '/O=Maker/CN=mfr-sn-1');
    await refused({ credential: mfr(noSerial, maker.anchor), csr: csr('/CN=x').csrPem }, 'forbidden', /carries no device id \(expected the subject serialNumber\)/);
    await refused({ credential: mfr(noSerial, maker.anchor), csr: csr('/CN=x').csrPem }, 'forbidden', /carries no device id \(expected a URI SAN starting urn:maker:sn:\)/, byUri.enrollment);
    // The prefix alone is no id.
    const emptyUri = maker.idevid('leaf-emptyuri', '/O=Maker/CN=y', { sanUri: 'urn:maker:sn:' });
    await refused({ credential: mfr(emptyUri, maker.anchor), csr: csr('/CN=x').csrPem }, 'forbidden', /carries no device id/, byUri.enrollment);
  });

  it('fail-unregistered device: forbidden', async () => {
    const unknown = maker.idevid('leaf-unknown', '/O=Maker/serialNumber=mfr-not-registered/CN=z');
    await refused({ credential: mfr(unknown, maker.anchor), csr: csr('/CN=x').csrPem }, 'forbidden', /device mfr-not-registered is not registered/);
  });

  it('fail-manufacturer CA not trusted (or no longer trusted): unauthorized', async () => {
    const fake = untrusted.idevid('leaf-fake', '/O=Maker/serialNumber=mfr-sn-1/CN=mfr-cn-1');
    await refused({ credential: mfr(fake, untrusted.anchor), csr: csr('/CN=x').csrPem }, 'unauthorized', /does not chain/);
    await d.ctx.registry.removeManufacturerCa(maker.anchor, 'test');
    try {
      await refused({ credential: mfr(idevid, maker.anchor), csr: csr('/CN=x').csrPem }, 'unauthorized', /does not chain/);
    } finally {
      await d.ctx.registry.addManufacturerCa(maker.pem, 'test');
    }
  });

  it('fail-expired IDevID: unauthorized', async () => {
    // openssl signs from the real time now; the fake clock is in 2030.
    const shortLived = maker.idevid('leaf-expired', '/O=Maker/serialNumber=mfr-sn-1/CN=mfr-cn-1', { days: 1 });
    assert.ok(parseCertificate(shortLived).notAfter < clock.now());
    await refused({ credential: mfr(shortLived, maker.anchor), csr: csr('/CN=x').csrPem }, 'unauthorized', /expired/);
  });

  it('fail-retired device with a valid IDevID: forbidden', async () => {
    await d.ctx.registry.register({ id: 'mfr-retired', profile: 'device-tls' }, 'test');
    await d.ctx.registry.setState('mfr-retired', 'retired', 'test');
    const leaf = maker.idevid('leaf-retired', '/O=Maker/serialNumber=mfr-retired/CN=r');
    await refused({ credential: mfr(leaf, maker.anchor), csr: csr('/CN=x').csrPem }, 'forbidden', /is retired/);
  });
});

describe('manual approval', () => {
  it('ok-pending → approve → issued on retry with the same key', async () => {
    const s = await register('appr-ok', { requireApproval: true });
    const c = csr('/CN=appr-ok');
    const certsBefore = await certCount();
    const p1 = await d.ctx.enrollment.enroll({ credential: bySecret('appr-ok', s), csr: c.csrPem, via: 'test' });
    assert.equal(p1.status, 'pending');
    assert.ok(p1.status === 'pending');
    assert.equal(p1.retryAfterSeconds, d.ctx.config.est.retryAfterSeconds);
    assert.equal(await certCount(), certsBefore, 'nothing issued while pending');
    assert.equal((await d.ctx.store.getEnrollmentSecret('appr-ok'))!.usedAt, undefined, 'the secret is kept for the retry');
    assert.equal((await d.ctx.registry.device('appr-ok')).state, 'registered');
    const rec = await d.ctx.store.getPendingEnrollment(p1.pendingId);
    assert.equal(rec!.status, 'pending');
    assert.equal((await d.ctx.store.listAudit({ target: p1.pendingId }))[0].action, 'enrollment.pending');

    // Asking again before a decision: the same pending enrollment, not a new one.
    const p2 = await d.ctx.enrollment.enroll({ credential: bySecret('appr-ok', s), csr: csr('/CN=appr-ok', { keyPem: c.keyPem }).csrPem, via: 'test' });
    assert.ok(p2.status === 'pending');
    assert.equal(p2.pendingId, p1.pendingId);

    await d.ctx.registry.decide(p1.pendingId, true, 'token:officer');
    const r = await issued({ credential: bySecret('appr-ok', s), csr: c.csrPem });
    assert.equal(r.device.state, 'active');
    assert.equal((await d.ctx.store.getPendingEnrollment(p1.pendingId))!.status, 'issued');
    assert.ok((await d.ctx.store.getEnrollmentSecret('appr-ok'))!.usedAt);
  });

  it('ok-an approval covers one key: another key waits again', async () => {
    const s = await register('appr-key', { requireApproval: true });
    const p = await d.ctx.enrollment.enroll({ credential: bySecret('appr-key', s), csr: csr('/CN=appr-key').csrPem, via: 'test' });
    assert.ok(p.status === 'pending');
    await d.ctx.registry.decide(p.pendingId, true, 'token:officer');
    const other = await d.ctx.enrollment.enroll({ credential: bySecret('appr-key', s), csr: csr('/CN=appr-key').csrPem, via: 'test' });
    assert.ok(other.status === 'pending');
    assert.notEqual(other.pendingId, p.pendingId);
  });

  it('fail-rejected: the retry is forbidden, nothing issued', async () => {
    const s = await register('appr-no', { requireApproval: true });
    const c = csr('/CN=appr-no');
    const p = await d.ctx.enrollment.enroll({ credential: bySecret('appr-no', s), csr: c.csrPem, via: 'test' });
    assert.ok(p.status === 'pending');
    await d.ctx.registry.decide(p.pendingId, false, 'token:officer');
    await refused({ credential: bySecret('appr-no', s), csr: c.csrPem }, 'forbidden', /rejected by token:officer/);
  });

  it('ok-renewal of an approved device does not wait', async () => {
    const s = await register('appr-renew', { requireApproval: true });
    const c = csr('/CN=appr-renew');
    const p = await d.ctx.enrollment.enroll({ credential: bySecret('appr-renew', s), csr: c.csrPem, via: 'test' });
    assert.ok(p.status === 'pending');
    await d.ctx.registry.decide(p.pendingId, true, 'test');
    const r = await issued({ credential: bySecret('appr-renew', s), csr: c.csrPem });
    await issued({ credential: byCert(r.result.der), csr: csr(registrySubj('appr-renew')).csrPem, reenroll: true });
  });
});

describe('enrollment orders', () => {
  it('ok-quantity 1: the first device redeems it, the second is refused; renewals redeem nothing', async () => {
    const order = await d.ctx.registry.createOrder({ profile: 'device-tls', quantity: 1, domain: 'ord-site' }, 'test');
    const { r } = await enrollNew('ord-1', { orderId: order.id, domain: 'ord-site' });
    assert.equal((await d.ctx.store.getOrder(order.id))!.used, 1);
    const s2 = await register('ord-2', { orderId: order.id, domain: 'ord-site' });
    await refused({ credential: bySecret('ord-2', s2), csr: csr('/CN=ord-2').csrPem }, 'policy_violation', new RegExp(`enrollment order ${order.id} is exhausted`));
    // Renewal and a second bootstrap of the device that holds a certificate: free.
    const renewed = await issued({ credential: byCert(r.result.der), csr: csr(registrySubj('ord-1')).csrPem, reenroll: true });
    const s1 = await d.ctx.registry.newSecret('ord-1', 'test');
    await issued({ credential: bySecret('ord-1', s1), csr: csr('/CN=ord-1').csrPem });
    assert.ok(renewed);
    assert.equal((await d.ctx.store.getOrder(order.id))!.used, 1);
  });

  it('fail-expired order', async () => {
    const order = await d.ctx.registry.createOrder({ profile: 'device-tls', quantity: 5, validDays: 1 }, 'test');
    const s = await register('ord-late', { orderId: order.id });
    clock.advance(DAY);
    try {
      await refused({ credential: bySecret('ord-late', s), csr: csr('/CN=ord-late').csrPem }, 'policy_violation', /exhausted or expired/);
    } finally {
      clock.set(START);
    }
    await issued({ credential: bySecret('ord-late', s), csr: csr('/CN=ord-late').csrPem });
    assert.equal((await d.ctx.store.getOrder(order.id))!.used, 1);
  });
});

describe('key reuse', () => {
  it('fail-a key certified for another device: bad_key', async () => {
    const { keyPem } = await enrollNew('key-a');
    const s = await register('key-b');
    await refused({ credential: bySecret('key-b', s), csr: csr('/CN=key-b', { keyPem }).csrPem }, 'bad_key', /already certified for device key-a/);
  });

  it('fail-a key certified outside the registry (operator-issued): bad_key', async () => {
    const c = csr('/CN=operator-key');
    await d.ctx.authority.issue({ csr: c.csrPem, profile: 'device-tls', actor: 'test' });
    const s = await register('key-c');
    await refused({ credential: bySecret('key-c', s), csr: csr('/CN=key-c', { keyPem: c.keyPem }).csrPem }, 'bad_key', /already certified for another subject/);
  });

  it('ok-the same device may present its own key again', async () => {
    const { keyPem } = await enrollNew('key-d');
    const s = await d.ctx.registry.newSecret('key-d', 'test');
    await issued({ credential: bySecret('key-d', s), csr: csr('/CN=key-d', { keyPem }).csrPem });
  });
});

describe('server-side key generation', () => {
  it('fail-profile without serverKeyGen: forbidden', async () => {
    const s = await register('skg-no');
    await refused({ credential: bySecret('skg-no', s), csr: csr('/CN=skg-no').csrPem, serverKeyGen: true }, 'forbidden', /does not allow server-side key generation/);
  });

  for (const [alg, check] of [
    ['ecdsa-p256', (k: ReturnType<typeof createPublicKey>) => k.asymmetricKeyDetails?.namedCurve === 'prime256v1'],
    ['ed25519', (k: ReturnType<typeof createPublicKey>) => k.asymmetricKeyType === 'ed25519'],
  ] as const) {
    it(`ok-${alg}: a new key of the CSR's type, returned once, matching the certificate`, async () => {
      const id = `skg-${alg}`;
      const s = await register(id);
      const c = csr(`/CN=${id}`, { alg });
      const r = await issued({ credential: bySecret(id, s), csr: c.csrPem, serverKeyGen: true }, keyGen.enrollment);
      assert.ok(r.privateKey, 'the private key is returned');
      const pub = createPublicKey(r.privateKey);
      assert.ok(check(pub));
      const spki = pub.export({ format: 'der', type: 'spki' });
      const cert = parseCertificate(r.result.der);
      assert.deepEqual(new Uint8Array(spki), new Uint8Array(cert.spki), 'the certificate certifies the generated key');
      const csrSpki = openssl(['req', '-noout', '-pubkey'], c.csrPem);
      assert.notEqual(openssl(['x509', '-noout', '-pubkey'], r.result.pem), csrSpki, 'not the CSR key');
      // openssl agrees that key and certificate belong together.
      const keyFile = join(work, `${id}.key`);
      writeFileSync(keyFile, r.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 });
      assert.equal(openssl(['pkey', '-in', keyFile, '-pubout']), openssl(['x509', '-noout', '-pubkey'], r.result.pem));
      const audit = (await d.ctx.store.listAudit({ target: r.result.record.serial }))[0];
      assert.equal(audit.details.serverKeyGen, true);
    });
  }

  it("fail-a CSR key type the profile does not allow: bad_key", async () => {
    // Only the variant context knows the profile p256-only.
    const s = (await keyGen.registry.register({ id: 'skg-rsa', profile: 'p256-only' }, 'test', true)).secret!;
    await refused({ credential: bySecret('skg-rsa', s), csr: csr('/CN=skg-rsa', { alg: 'rsa-2048' }).csrPem, serverKeyGen: true }, 'bad_key', /does not allow rsa-2048/, keyGen.enrollment);
  });
});

describe('audit of refusals', () => {
  it('every refusal in this file wrote exactly one enrollment.refuse entry', async () => {
    const entries = await refuseEntries();
    assert.equal(entries.length, refusals);
    for (const e of entries) {
      assert.match(e.actor, /^(device:|anonymous:test$)/);
      assert.ok(typeof e.details.code === 'string');
    }
    // A certificate credential whose device is unknown is logged as anonymous.
    assert.ok(entries.some((e) => e.actor === 'anonymous:test'));
  });
});
