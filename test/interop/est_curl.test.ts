/**
 * EST (RFC 7030 / RFC 8951) with curl + openssl as the client, every
 * endpoint: cacerts, csrattrs, simpleenroll, simplereenroll, serverkeygen,
 * labelled paths; approval; manufacturer bootstrap; and bad input, each with
 * its HTTP status, nothing issued and an `enrollment.refuse` audit entry.
 *
 * The CAs are made three days in the past (an OffsetClock), so a test can
 * step back to issue a certificate from a 1-day profile that is already
 * expired for the TLS layer, which uses real time.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { hashSecret } from '../../src/registry/registry.js';
import { pemEncode } from '../../src/x509/pem.js';
import {
  auditHead,
  auditSince,
  certCount,
  certOfPem,
  certsOfPkcs7,
  curl,
  ecKey,
  estRefused,
  makeManufacturer,
  OffsetClock,
  openssl,
  opensslCsrB64,
  registerDevice,
  registrySubject,
  spkiOf,
  startEstEnv,
  verifyClientCert,
  type CurlOptions,
  type EstEnv,
  type HttpAnswer,
} from '../helpers/est.js';

const DAY = 86_400_000;
const ORG = 'Curl Fleet';
const CERTS_ONLY = /^application\/pkcs7-mime; ?smime-type=certs-only/;
const clock = new OffsetClock(-3 * DAY);
let env: EstEnv;
/** A valid CSR body for refusals where the CSR itself is not the point. */
let anyCsr: { b64: string };

const base = DEFAULT_PROFILES['device-tls'];

before(async () => {
  env = await startEstEnv({
    org: ORG,
    clock,
    config: (c) => {
      c.est.retryAfterSeconds = 7;
      c.est.labels = { line2: { ca: 'issuing-2' }, opcua: { profile: 'opcua-application' } };
      c.profiles = {
        'device-keygen': { ...base, description: 'device-tls with server-side key generation', serverKeyGen: true },
        'device-strict': { ...base, description: 'device-tls refusing CSR names', csrNames: 'refuse' },
        'device-short': { ...base, description: 'device-tls for one day', validityDays: 1 },
      };
    },
    setup: async (ctx) => {
      await ctx.authority.createIssuingCa({ name: 'issuing-2', parent: 'root', subject: [{ type: 'O', value: ORG }, { type: 'CN', value: 'Line 2 Issuing CA' }], keyAlgorithm: 'ecdsa-p256', validityDays: 1000, actor: 'test' });
    },
  });
  clock.offsetMs = 0; // the present, from here on
  anyCsr = await newCsr('/CN=any-device');
});

after(async () => {
  await env?.close();
});

// ------------------------------------------------------------------ helpers

let n = 0;
/** A fresh P-256 key and an openssl CSR for it (base64 body file for curl). */
async function newCsr(subj: string, san?: string, keyPath?: string): Promise<{ key: string; der: string; b64: string }> {
  const name = `c${++n}`;
  const key = keyPath ?? (await ecKey(env.file(`${name}.key`)));
  const { der, b64 } = await opensslCsrB64(env, name, key, subj, san);
  return { key, der, b64 };
}

const P10 = 'application/pkcs10';

async function post(op: string, body: { b64: string }, o: Omit<CurlOptions, 'dataFile'> = {}): Promise<HttpAnswer> {
  return curl(env, `/.well-known/est/${op}`, { dataFile: body.b64, contentType: P10, ...o });
}

/** Expects a certs-only answer with one certificate; writes it to a file. */
async function issuedCert(r: HttpAnswer, name: string): Promise<{ pem: string; file: string; info: ReturnType<typeof certOfPem> }> {
  assert.equal(r.status, 200, r.body);
  assert.match(r.headers['content-type'], CERTS_ONLY);
  const certs = await certsOfPkcs7(env, r.body);
  assert.equal(certs.length, 1, 'the certificate alone (RFC 7030 §4.2.3)');
  const file = env.file(`${name}.pem`);
  writeFileSync(file, certs[0]);
  return { pem: certs[0], file, info: certOfPem(certs[0]) };
}

const refused = (send: () => Promise<HttpAnswer>, status: number, code: string, reason?: RegExp) => estRefused(env, send, status, code, reason);

/** Registers a device and enrolls it with its secret; returns the certificate and key files. */
async function enrolled(id: string, extra: Parameters<typeof registerDevice>[1] = { id }): Promise<{ cert: string; key: string; serial: string }> {
  const secret = await registerDevice(env.ctx, { ...extra, id });
  const csr = await newCsr(`/CN=${id}`);
  const c = await issuedCert(await post('simpleenroll', csr, { user: `${id}:${secret}` }), id);
  return { cert: c.file, key: csr.key, serial: c.info.serial };
}

// -------------------------------------------------------------- endpoints

describe('EST endpoints with curl and openssl', () => {
  let c1: { cert: string; key: string; serial: string };

  it('GET /cacerts: base64 certs-only PKCS#7 with the issuing CA and the root', async () => {
    const r = await curl(env, '/.well-known/est/cacerts');
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'], /^application\/pkcs7-mime/);
    assert.match(r.body, /^[A-Za-z0-9+/=\r\n]+$/, 'a base64 body');
    const certs = await certsOfPkcs7(env, r.body);
    const cas = await env.ctx.store.listCas();
    const pemOf = (name: string) => pemEncode('CERTIFICATE', cas.find((c) => c.name === name)!.certDer);
    // A certs-only SignedData holds a SET OF certificates: order is not meaningful.
    assert.deepEqual([...certs].sort(), [pemOf('issuing'), pemOf('root')].sort());
  });

  it('GET /csrattrs: CsrAttrs that openssl asn1parse reads (P-256, ecdsa-with-SHA256, serialNumber)', async () => {
    const r = await curl(env, '/.well-known/est/csrattrs');
    assert.equal(r.status, 200, r.body);
    assert.match(r.headers['content-type'], /^application\/csrattrs/);
    const f = env.file('csrattrs.der');
    writeFileSync(f, Buffer.from(r.body, 'base64'));
    const p = await openssl(['asn1parse', '-inform', 'DER', '-in', f]);
    assert.equal(p.status, 0, p.stderr);
    for (const want of ['id-ecPublicKey', 'prime256v1', 'ecdsa-with-SHA256', 'serialNumber']) assert.match(p.stdout, new RegExp(`:${want}\\s*$`, 'm'), want);
  });

  it('POST /simpleenroll with HTTP Basic: names from the registry, device active, certificate linked', async () => {
    const secret = await registerDevice(env.ctx, { id: 'c-1', domain: 'plant-b', sans: ['dns:c-1.plant-b.example'] });
    const csr = await newCsr('/CN=whatever-the-device-says');
    const seq = await auditHead(env.ctx);
    const r = await post('simpleenroll', csr, { user: `c-1:${secret}` });
    const c = await issuedCert(r, 'c-1');
    assert.equal(r.headers['content-transfer-encoding'], 'base64');
    await verifyClientCert(env, c.pem);
    assert.deepEqual(c.info.subject, registrySubject(ORG, 'c-1'));
    assert.deepEqual(c.info.sans, [
      { type: 'uri', value: 'urn:fleetpki:domain:plant-b' },
      { type: 'dns', value: 'c-1.plant-b.example' },
    ]);
    assert.equal(await spkiOf(c.file, 'cert'), await spkiOf(csr.key, 'key'));
    const d = await env.ctx.registry.device('c-1');
    assert.equal(d.state, 'active');
    assert.equal(d.currentSerial, c.info.serial);
    assert.equal((await env.ctx.store.getCertificate(c.info.serial))?.deviceId, 'c-1');
    assert.ok((await env.ctx.store.getEnrollmentSecret('c-1'))?.usedAt, 'the secret is spent');
    assert.equal((await auditSince(env.ctx, seq, 'certificate.issue')).length, 1);
    c1 = { cert: c.file, key: csr.key, serial: c.info.serial };
  });

  it('POST /simplereenroll with the current certificate (curl --cert/--key): new key, new serial', async () => {
    const csr = await newCsr(`/O=${ORG}/serialNumber=c-1/CN=c-1`);
    const seq = await auditHead(env.ctx);
    const r = await post('simplereenroll', csr, { cert: c1.cert, key: c1.key });
    const c = await issuedCert(r, 'c-1-renewed');
    await verifyClientCert(env, c.pem);
    assert.notEqual(c.info.serial, c1.serial);
    assert.deepEqual(c.info.subject, registrySubject(ORG, 'c-1'));
    assert.equal(await spkiOf(c.file, 'cert'), await spkiOf(csr.key, 'key'));
    assert.equal((await env.ctx.registry.device('c-1')).currentSerial, c.info.serial);
    const a = (await auditSince(env.ctx, seq, 'certificate.issue'))[0];
    assert.equal(a.details.method, 'certificate');
    assert.equal(a.details.replaces, c1.serial);
    c1 = { cert: c.file, key: csr.key, serial: c.info.serial };
  });

  it('simplereenroll with another subject than the current certificate is refused (400)', async () => {
    const csr = await newCsr('/CN=c-1');
    await refused(() => post('simplereenroll', csr, { cert: c1.cert, key: c1.key }), 400, 'bad_request', /subject/);
  });

  it('POST /serverkeygen where the profile allows it: multipart/mixed with the key (application/pkcs8) and its certificate', async () => {
    const secret = await registerDevice(env.ctx, { id: 'kg-1', profile: 'device-keygen' });
    const csr = await newCsr('/CN=kg-1');
    const r = await post('serverkeygen', csr, { user: `kg-1:${secret}` });
    assert.equal(r.status, 200, r.body);
    const m = /^multipart\/mixed;\s*boundary="?([^";]+)"?/.exec(r.headers['content-type']);
    assert.ok(m, `multipart/mixed, got ${r.headers['content-type']}`);
    assert.equal(r.headers['cache-control'], 'no-store');
    const parts = r.body
      .split(`--${m[1]}`)
      .slice(1, -1)
      .map((p) => {
        const [head, ...rest] = p.replace(/^\r\n/, '').split('\r\n\r\n');
        return { head: head.toLowerCase(), body: rest.join('\r\n\r\n').trim() };
      });
    assert.equal(parts.length, 2);
    assert.ok(r.body.trimEnd().endsWith(`--${m[1]}--`), 'closing boundary');
    const keyPart = parts.find((p) => /content-type: application\/pkcs8/.test(p.head));
    const certPart = parts.find((p) => /content-type: application\/pkcs7-mime; ?smime-type=certs-only/.test(p.head));
    assert.ok(keyPart && certPart, 'a pkcs8 part and a certs-only part');
    assert.match(keyPart.head, /content-transfer-encoding: base64/);

    const keyDer = env.file('kg-1.key.der');
    writeFileSync(keyDer, Buffer.from(keyPart.body, 'base64'));
    const k = await openssl(['pkey', '-inform', 'DER', '-in', keyDer, '-noout', '-text']);
    assert.equal(k.status, 0, `openssl pkey opens the key: ${k.stderr}`);
    assert.match(k.stdout, /Private-Key: \(256 bit/);
    const certs = await certsOfPkcs7(env, certPart.body);
    assert.equal(certs.length, 1);
    const certFile = env.file('kg-1.pem');
    writeFileSync(certFile, certs[0]);
    await verifyClientCert(env, certs[0]);
    assert.equal(await spkiOf(certFile, 'cert'), await spkiOf(keyDer, 'der-key'), 'the key matches the certificate');
    assert.notEqual(await spkiOf(certFile, 'cert'), await spkiOf(csr.key, 'key'), 'a new key, not the CSR key');
    assert.deepEqual(certOfPem(certs[0]).subject, registrySubject(ORG, 'kg-1'));
  });

  it('serverkeygen is refused (403) where the profile does not allow it; the secret stays usable', async () => {
    const secret = await registerDevice(env.ctx, { id: 'kg-no' });
    const csr = await newCsr('/CN=kg-no');
    await refused(() => post('serverkeygen', csr, { user: `kg-no:${secret}` }), 403, 'forbidden', /server-side key generation/);
    await issuedCert(await post('simpleenroll', csr, { user: `kg-no:${secret}` }), 'kg-no');
  });

  it('a labelled path selects another issuing CA: /line2/cacerts and /line2/simpleenroll', async () => {
    const ca2 = (await env.ctx.store.getCa('issuing-2'))!;
    const ca2File = env.file('issuing-2.pem');
    writeFileSync(ca2File, pemEncode('CERTIFICATE', ca2.certDer));

    const cacerts = await curl(env, '/.well-known/est/line2/cacerts');
    assert.equal(cacerts.status, 200, cacerts.body);
    const chain = await certsOfPkcs7(env, cacerts.body);
    const root = (await env.ctx.store.getCa('root'))!;
    assert.deepEqual([...chain].sort(), [pemEncode('CERTIFICATE', ca2.certDer), pemEncode('CERTIFICATE', root.certDer)].sort());

    const secret = await registerDevice(env.ctx, { id: 'l2-1' });
    const csr = await newCsr('/CN=l2-1');
    const c = await issuedCert(await curl(env, '/.well-known/est/line2/simpleenroll', { dataFile: csr.b64, contentType: P10, user: `l2-1:${secret}` }), 'l2-1');
    assert.equal(c.info.issuerText, ca2.subject);
    await verifyClientCert(env, c.pem, ca2File);
    assert.equal((await env.ctx.store.getCertificate(c.info.serial))?.issuerCa, 'issuing-2');
  });

  it('an unknown label is 404 (cacerts and simpleenroll), nothing issued', async () => {
    const g = await curl(env, '/.well-known/est/nope/cacerts');
    assert.equal(g.status, 404);
    const secret = await registerDevice(env.ctx, { id: 'nolabel-1' });
    const csr = await newCsr('/CN=nolabel-1');
    await refused(() => curl(env, '/.well-known/est/nope/simpleenroll', { dataFile: csr.b64, contentType: P10, user: `nolabel-1:${secret}` }), 404, 'not_found', /nope/);
  });

  it('approval: 202 with Retry-After until an ra-officer approves; then the same request is issued', async () => {
    const secret = await registerDevice(env.ctx, { id: 'ap-1', requireApproval: true });
    const csr = await newCsr('/CN=ap-1');
    const before = await certCount(env.ctx);
    const r1 = await post('simpleenroll', csr, { user: `ap-1:${secret}` });
    assert.equal(r1.status, 202, r1.body);
    assert.equal(r1.headers['retry-after'], '7');
    const r2 = await post('simpleenroll', csr, { user: `ap-1:${secret}` });
    assert.equal(r2.status, 202, 'still waiting, same pending enrollment');
    const pending = (await env.ctx.registry.listPending('pending')).filter((p) => p.deviceId === 'ap-1');
    assert.equal(pending.length, 1);
    assert.equal(await certCount(env.ctx), before);
    await env.ctx.registry.decide(pending[0].id, true, 'token:officer');
    await issuedCert(await post('simpleenroll', csr, { user: `ap-1:${secret}` }), 'ap-1');
  });

  it('approval rejected: the retry is refused (403)', async () => {
    const secret = await registerDevice(env.ctx, { id: 'ap-2', requireApproval: true });
    const csr = await newCsr('/CN=ap-2');
    assert.equal((await post('simpleenroll', csr, { user: `ap-2:${secret}` })).status, 202);
    const p = (await env.ctx.registry.listPending('pending')).find((x) => x.deviceId === 'ap-2')!;
    await env.ctx.registry.decide(p.id, false, 'token:officer');
    await refused(() => post('simpleenroll', csr, { user: `ap-2:${secret}` }), 403, 'forbidden', /rejected/);
  });

  it('bootstrap with a trusted manufacturer certificate on /simpleenroll (curl --cert, no Basic)', async () => {
    const mfr = await makeManufacturer(env, 'Good Mfr');
    await env.ctx.registry.addManufacturerCa(readFileSync(mfr.rootPem, 'utf8'), 'test:operator');
    assert.equal(await env.server.refreshTrust(), true);
    const idevid = await mfr.idevid('MF-1');
    await registerDevice(env.ctx, { id: 'MF-1', domain: 'plant-m' }, false);
    const csr = await newCsr('/CN=MF-1');
    const c = await issuedCert(await post('simpleenroll', csr, { cert: idevid.cert, key: idevid.key }), 'mf-1');
    assert.deepEqual(c.info.subject, registrySubject(ORG, 'MF-1'));
    assert.equal(await spkiOf(c.file, 'cert'), await spkiOf(csr.key, 'key'));
    assert.equal((await env.ctx.registry.device('MF-1')).state, 'active');

    // Trust withdrawn in the store (as `fleetpki trust remove` from another
    // process) before the listener reloads: the core refuses on its own.
    const anchor = (await env.ctx.registry.listManufacturerCas()).find((t) => /Good Mfr/.test(t.subject))!;
    await env.ctx.registry.removeManufacturerCa(anchor.fingerprint, 'test:operator');
    const idevid2 = await mfr.idevid('MF-2');
    await registerDevice(env.ctx, { id: 'MF-2' }, false);
    await refused(() => post('simpleenroll', csr, { cert: idevid2.cert, key: idevid2.key }), 401, 'unauthorized', /manufacturer/);
    assert.equal(await env.server.refreshTrust(), true);
  });
});

// --------------------------------------------------------------- bad input

describe('EST refusals: the right status, nothing issued, an audit entry', () => {
  it('unknown device: 401', async () => {
    const csr = await newCsr('/CN=ghost');
    const r = await refused(() => post('simpleenroll', csr, { user: 'ghost-device:some-secret' }), 401, 'unauthorized');
    assert.match(r.headers['www-authenticate'] ?? '', /^Basic /);
  });

  it('used secret: 401', async () => {
    const secret = await registerDevice(env.ctx, { id: 'used-1' });
    await issuedCert(await post('simpleenroll', await newCsr('/CN=used-1'), { user: `used-1:${secret}` }), 'used-1');
    await refused(() => post('simpleenroll', anyCsr, { user: `used-1:${secret}` }), 401, 'unauthorized');
  });

  it('the same secret sent twice at once: one certificate, one 401', async () => {
    const secret = await registerDevice(env.ctx, { id: 'race-1' });
    const [a, b] = [await newCsr('/CN=race-1'), await newCsr('/CN=race-1')];
    const before = await certCount(env.ctx);
    const rs = await Promise.all([post('simpleenroll', a, { user: `race-1:${secret}` }), post('simpleenroll', b, { user: `race-1:${secret}` })]);
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 401], rs.map((r) => r.body).join(' | '));
    assert.equal(await certCount(env.ctx), before + 1);
    assert.equal((await env.ctx.store.listCertificates({ deviceId: 'race-1' })).length, 1);
  });

  it('expired secret: 401', async () => {
    const secret = await registerDevice(env.ctx, { id: 'exp-s' });
    const now = clock.now();
    await env.ctx.store.putEnrollmentSecret(
      { deviceId: 'exp-s', secretHash: hashSecret(secret), createdAt: new Date(now.getTime() - 10 * DAY), expiresAt: new Date(now.getTime() - 1000) },
      { actor: 'test', action: 'device.secret.create', target: 'exp-s' },
    );
    await refused(() => post('simpleenroll', anyCsr, { user: `exp-s:${secret}` }), 401, 'unauthorized');
  });

  it('wrong password: 401 with WWW-Authenticate: Basic; the real secret still works after', async () => {
    const secret = await registerDevice(env.ctx, { id: 'pw-1' });
    const csr = await newCsr('/CN=pw-1');
    const r = await refused(() => post('simpleenroll', csr, { user: 'pw-1:wrong-password' }), 401, 'unauthorized');
    assert.match(r.headers['www-authenticate'] ?? '', /^Basic realm="[^"]+"/);
    await issuedCert(await post('simpleenroll', csr, { user: `pw-1:${secret}` }), 'pw-1');
  });

  it('no credentials at all: 401 with WWW-Authenticate: Basic', async () => {
    const r = await refused(() => post('simpleenroll', anyCsr), 401, 'unauthorized');
    assert.match(r.headers['www-authenticate'] ?? '', /^Basic /);
  });

  it('revoked client certificate on /simplereenroll: 403', async () => {
    const d = await enrolled('rv-1');
    await env.ctx.authority.revoke(d.serial, 'keyCompromise', 'test:operator');
    const csr = await newCsr(`/O=${ORG}/serialNumber=rv-1/CN=rv-1`);
    await refused(() => post('simplereenroll', csr, { cert: d.cert, key: d.key }), 403, 'forbidden', /revoked/);
  });

  it('superseded client certificate (not the device\'s current one) on /simplereenroll: 403, the current one stays', async () => {
    // Issue 3: re-enrollment authenticates with "its current certificate from
    // our CA". After a rekey, the old certificate (and its possibly leaked
    // key) must not renew the device again.
    const d = await enrolled('sup-1');
    const renewal = await newCsr(`/O=${ORG}/serialNumber=sup-1/CN=sup-1`);
    const current = await issuedCert(await post('simplereenroll', renewal, { cert: d.cert, key: d.key }), 'sup-1-current');
    assert.equal((await env.ctx.registry.device('sup-1')).currentSerial, current.info.serial);
    const again = await newCsr(`/O=${ORG}/serialNumber=sup-1/CN=sup-1`);
    await refused(() => post('simplereenroll', again, { cert: d.cert, key: d.key }), 403, 'forbidden', /current/);
    assert.equal((await env.ctx.registry.device('sup-1')).currentSerial, current.info.serial);
  });

  it('expired client certificate on /simplereenroll: 401 (the TLS layer reports CERT_HAS_EXPIRED)', async () => {
    clock.offsetMs = -3 * DAY;
    const d = await enrolled('short-1', { id: 'short-1', profile: 'device-short' }).finally(() => (clock.offsetMs = 0));
    assert.ok(certOfPem(readFileSync(d.cert, 'utf8')).notAfter.getTime() < Date.now(), 'already expired in real time');
    const csr = await newCsr(`/O=${ORG}/serialNumber=short-1/CN=short-1`);
    await refused(() => post('simplereenroll', csr, { cert: d.cert, key: d.key }), 401, 'unauthorized', /CERT_HAS_EXPIRED/);
  });

  it('manufacturer certificate from an untrusted CA: 401', async () => {
    const rogue = await makeManufacturer(env, 'Rogue Mfr');
    const idevid = await rogue.idevid('RG-1');
    await registerDevice(env.ctx, { id: 'RG-1' }, false);
    const csr = await newCsr('/CN=RG-1');
    await refused(() => post('simpleenroll', csr, { cert: idevid.cert, key: idevid.key }), 401, 'unauthorized', /not accepted|issuer/);
  });

  it('CSR with a wrong signature: 400; the secret stays usable', async () => {
    const secret = await registerDevice(env.ctx, { id: 'sig-1' });
    const csr = await newCsr('/CN=sig-1');
    const der = readFileSync(csr.der);
    der[der.length - 1] ^= 0x01; // last byte of the signature value: DER stays valid, the signature does not
    const bad = { b64: env.file('sig-1.bad.b64') };
    writeFileSync(bad.b64, der.toString('base64'));
    await refused(() => post('simpleenroll', bad, { user: `sig-1:${secret}` }), 400, 'bad_signature', /signature/);
    await issuedCert(await post('simpleenroll', csr, { user: `sig-1:${secret}` }), 'sig-1');
  });

  it('key already certified for another device: 400 bad_key', async () => {
    const other = await enrolled('owner-1');
    const secret = await registerDevice(env.ctx, { id: 'thief-1' });
    const csr = await newCsr('/CN=thief-1', undefined, other.key);
    await refused(() => post('simpleenroll', csr, { user: `thief-1:${secret}` }), 400, 'bad_key', /owner-1/);
  });

  it('oversized body: 413', async () => {
    const secret = await registerDevice(env.ctx, { id: 'big-1' });
    const big = env.file('big.b64');
    writeFileSync(big, 'A'.repeat(40 * 1024));
    await refused(() => curl(env, '/.well-known/est/simpleenroll', { dataFile: big, contentType: P10, user: `big-1:${secret}` }), 413, 'payload_too_large');
  });

  it('wrong content type: 415 (text/plain and application/octet-stream)', async () => {
    const secret = await registerDevice(env.ctx, { id: 'ct-1' });
    const csr = await newCsr('/CN=ct-1');
    for (const type of ['text/plain', 'application/octet-stream']) {
      await refused(() => post('simpleenroll', csr, { user: `ct-1:${secret}`, contentType: type }), 415, 'unsupported_media_type');
    }
  });

  it('a body that is not base64: 400', async () => {
    const secret = await registerDevice(env.ctx, { id: 'b64-1' });
    await refused(() => curl(env, '/.well-known/est/simpleenroll', { body: 'this is not base64!', contentType: P10, user: `b64-1:${secret}` }), 400, 'bad_request', /base64/);
  });

  it('exhausted order: 403 for the second device of a quantity-1 order', async () => {
    const order = await env.ctx.registry.createOrder({ profile: 'device-tls', quantity: 1 }, 'test:operator');
    await enrolled('ord-1', { id: 'ord-1', orderId: order.id });
    const secret = await registerDevice(env.ctx, { id: 'ord-2', orderId: order.id });
    await refused(() => post('simpleenroll', anyCsr, { user: `ord-2:${secret}` }), 403, 'policy_violation', /exhausted/);
  });

  it('expired order: 403', async () => {
    const order = await env.ctx.registry.createOrder({ profile: 'device-tls', quantity: 5, validDays: 1 }, 'test:operator');
    const secret = await registerDevice(env.ctx, { id: 'oexp-1', orderId: order.id });
    clock.offsetMs = 2 * DAY;
    try {
      await refused(() => post('simpleenroll', anyCsr, { user: `oexp-1:${secret}` }), 403, 'policy_violation', /expired/);
    } finally {
      clock.offsetMs = 0;
    }
  });

  it('a quantity-1 order raced by two devices at once: one certificate, one 403', async () => {
    const order = await env.ctx.registry.createOrder({ profile: 'device-tls', quantity: 1 }, 'test:operator');
    const s1 = await registerDevice(env.ctx, { id: 'orace-1', orderId: order.id });
    const s2 = await registerDevice(env.ctx, { id: 'orace-2', orderId: order.id });
    const [a, b] = [await newCsr('/CN=orace-1'), await newCsr('/CN=orace-2')];
    const before = await certCount(env.ctx);
    const rs = await Promise.all([post('simpleenroll', a, { user: `orace-1:${s1}` }), post('simpleenroll', b, { user: `orace-2:${s2}` })]);
    assert.deepEqual(rs.map((r) => r.status).sort(), [200, 403], rs.map((r) => r.body).join(' | '));
    assert.equal(await certCount(env.ctx), before + 1);
    assert.equal((await env.ctx.store.getOrder(order.id))?.used, 1);
  });

  it('simplereenroll with only HTTP Basic (no certificate to renew): 401', async () => {
    const secret = await registerDevice(env.ctx, { id: 'rb-1' });
    await refused(() => post('simplereenroll', anyCsr, { user: `rb-1:${secret}` }), 401, 'unauthorized', /current certificate/);
  });

  it('retired device: 403', async () => {
    const secret = await registerDevice(env.ctx, { id: 'ret-1' });
    await env.ctx.registry.setState('ret-1', 'retired', 'test:operator');
    await refused(() => post('simpleenroll', anyCsr, { user: `ret-1:${secret}` }), 403, 'forbidden', /retired/);
  });

  it('device registered for another profile than the label requires: 403', async () => {
    const secret = await registerDevice(env.ctx, { id: 'lp-1' });
    await refused(() => curl(env, '/.well-known/est/opcua/simpleenroll', { dataFile: anyCsr.b64, contentType: P10, user: `lp-1:${secret}` }), 403, 'forbidden', /opcua-application/);
  });

  it('csrNames "refuse": a CSR asking for a DNS name the registry does not give is refused (403)', async () => {
    const secret = await registerDevice(env.ctx, { id: 'strict-1', profile: 'device-strict' });
    const csr = await newCsr('/CN=strict-1', 'DNS:evil.example');
    await refused(() => post('simpleenroll', csr, { user: `strict-1:${secret}` }), 403, 'policy_violation', /evil\.example/);
    // Without the extra name the same device enrolls.
    await issuedCert(await post('simpleenroll', await newCsr('/CN=strict-1'), { user: `strict-1:${secret}` }), 'strict-1');
  });

  it('csrNames "trim" (default): the same CSR is issued without the extra name', async () => {
    const secret = await registerDevice(env.ctx, { id: 'trim-1', domain: 'plant-t' });
    const csr = await newCsr('/CN=trim-1', 'DNS:evil.example');
    const c = await issuedCert(await post('simpleenroll', csr, { user: `trim-1:${secret}` }), 'trim-1');
    assert.deepEqual(c.info.sans, [{ type: 'uri', value: 'urn:fleetpki:domain:plant-t' }]);
    assert.deepEqual(c.info.subject, registrySubject(ORG, 'trim-1'));
  });
});
