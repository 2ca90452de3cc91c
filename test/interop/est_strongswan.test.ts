/**
 * EST with strongSwan's `pki` as the client (RFC 7030): CA certificates,
 * enrollment with HTTP Basic (one-time secret), re-enrollment with the
 * current certificate, approval (202 + Retry-After, pki polls) and bootstrap
 * with a manufacturer certificate. Results checked with openssl and the store.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { pemDecodeAll } from '../../src/x509/pem.js';
import {
  auditHead,
  auditSince,
  certCount,
  certOfPem,
  fleetpkiAsync,
  makeManufacturer,
  pki,
  registerDevice,
  registrySubject,
  spkiOf,
  startEstEnv,
  verifyClientCert,
  type EstEnv,
} from '../helpers/est.js';

let env: EstEnv;

/** A P-256 key and a CSR for it, both made by pki. */
async function pkiKeyAndReq(name: string, dn: string): Promise<{ key: string; req: string }> {
  const key = env.file(`${name}.key`);
  const req = env.file(`${name}.req.pem`);
  const g = await pki(['--gen', '--type', 'ecdsa', '--size', '256', '--outform', 'pem']);
  assert.equal(g.status, 0, g.stderr);
  writeFileSync(key, g.stdout);
  const r = await pki(['--req', '--type', 'priv', '--in', key, '--dn', dn, '--outform', 'pem']);
  assert.equal(r.status, 0, r.stderr);
  writeFileSync(req, r.stdout);
  return { key, req };
}

const estArgs = () => ['--est', '--url', env.base, '--cacert', env.rootPem, '--cacert', env.issuingPem, '--outform', 'pem'];

before(async () => {
  // pki polls at the server's Retry-After (it overrides --interval): keep it short.
  env = await startEstEnv({ org: 'Swan Fleet', config: (c) => void (c.est.retryAfterSeconds = 1) });
});

after(async () => {
  await env?.close();
});

describe('strongSwan pki against the EST server', () => {
  let dev1Cert = '';
  let dev1Key = '';
  let dev1Secret = '';

  it('pki --estca fetches the CA certificates: our root and issuing CA, byte for byte', async () => {
    const out = env.file('ca.pem');
    const r = await pki(['--estca', '--url', env.base, '--cacert', env.rootPem, '--caout', out, '--outform', 'pem', '--force']);
    assert.equal(r.status, 0, r.stderr);
    const got = [readFileSync(out, 'utf8'), readFileSync(env.file('ca-1.pem'), 'utf8')].map((p) => Buffer.from(pemDecodeAll(p)[0].der).toString('hex'));
    const cas = await env.ctx.store.listCas();
    const root = Buffer.from(cas.find((c) => c.name === 'root')!.certDer).toString('hex');
    const issuing = Buffer.from(cas.find((c) => c.name === 'issuing')!.certDer).toString('hex');
    assert.equal(got[0], root, 'ca.pem is the root');
    assert.equal(got[1], issuing, 'ca-1.pem is the issuing CA');
  });

  it('pki --est --userpass enrolls a registered device with its one-time secret', async () => {
    dev1Secret = await registerDevice(env.ctx, { id: 'dev-1', domain: 'plant-a' });
    const { key, req } = await pkiKeyAndReq('dev-1', 'CN=dev-1');
    const seq = await auditHead(env.ctx);
    const r = await pki([...estArgs(), '--in', req, '--userpass', `dev-1:${dev1Secret}`]);
    assert.equal(r.status, 0, r.stderr);
    dev1Cert = env.file('dev-1.pem');
    dev1Key = key;
    writeFileSync(dev1Cert, r.stdout);

    await verifyClientCert(env, r.stdout);
    const info = certOfPem(r.stdout);
    assert.deepEqual(info.subject, registrySubject('Swan Fleet', 'dev-1'));
    assert.deepEqual(info.sans, [{ type: 'uri', value: 'urn:fleetpki:domain:plant-a' }]);
    assert.equal(await spkiOf(dev1Cert, 'cert'), await spkiOf(key, 'key'), 'certifies the key pki generated');

    const device = await env.ctx.registry.device('dev-1');
    assert.equal(device.state, 'active');
    assert.equal(device.currentSerial, info.serial);
    const rec = await env.ctx.store.getCertificate(info.serial);
    assert.equal(rec?.deviceId, 'dev-1');
    assert.equal(rec?.profile, 'device-tls');
    const issued = (await auditSince(env.ctx, seq, 'certificate.issue')).filter((a) => a.target === info.serial);
    assert.equal(issued.length, 1);
    assert.equal(issued[0].actor, 'device:dev-1');
    assert.equal(issued[0].details.via, 'est');
    assert.equal(issued[0].details.method, 'secret');
  });

  it('the same secret again is refused (HTTP 401) and nothing is issued', async () => {
    const before = await certCount(env.ctx);
    const seq = await auditHead(env.ctx);
    const { req } = await pkiKeyAndReq('dev-1-again', 'CN=dev-1');
    assert.ok((await env.ctx.store.getEnrollmentSecret('dev-1'))?.usedAt, 'the secret is marked used');
    const r = await pki([...estArgs(), '--in', req, '--userpass', `dev-1:${dev1Secret}`]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /HTTP 401/);
    assert.equal(await certCount(env.ctx), before);
    const refusals = await auditSince(env.ctx, seq, 'enrollment.refuse');
    assert.ok(refusals.length >= 1);
    assert.equal(refusals[0].details.code, 'unauthorized');
  });

  it('pki --est --cert/--key re-enrolls with a new key and gets a new serial', async () => {
    const old = certOfPem(readFileSync(dev1Cert, 'utf8'));
    const { key, req } = await pkiKeyAndReq('dev-1-renew', 'O=Swan Fleet, serialNumber=dev-1, CN=dev-1');
    const seq = await auditHead(env.ctx);
    const r = await pki([...estArgs(), '--in', req, '--cert', dev1Cert, '--key', dev1Key]);
    assert.equal(r.status, 0, r.stderr);
    const renewed = env.file('dev-1-renewed.pem');
    writeFileSync(renewed, r.stdout);
    await verifyClientCert(env, r.stdout);
    const info = certOfPem(r.stdout);
    assert.notEqual(info.serial, old.serial);
    assert.deepEqual(info.subject, old.subject);
    assert.equal(await spkiOf(renewed, 'cert'), await spkiOf(key, 'key'), 'the new key is certified');
    assert.notEqual(info.spkiSha256, old.spkiSha256);
    const device = await env.ctx.registry.device('dev-1');
    assert.equal(device.currentSerial, info.serial);
    const issued = (await auditSince(env.ctx, seq, 'certificate.issue')).find((a) => a.target === info.serial);
    assert.equal(issued?.details.method, 'certificate');
    assert.equal(issued?.details.renewal, true);
    assert.equal(issued?.details.replaces, old.serial);
  });

  it('an enrollment that needs approval: pki polls on 202, an ra-officer approves, pki gets the certificate', async () => {
    const secret = await registerDevice(env.ctx, { id: 'dev-appr', domain: 'plant-a', requireApproval: true });
    const { req } = await pkiKeyAndReq('dev-appr', 'CN=dev-appr');
    const before = await certCount(env.ctx);
    const polling = pki([...estArgs(), '--in', req, '--userpass', `dev-appr:${secret}`, '--interval', '1', '--maxpolltime', '20']);

    // Wait for the enrollment to show up as pending; nothing is issued meanwhile.
    let pendingId: string | undefined;
    for (let i = 0; i < 100 && !pendingId; i++) {
      pendingId = (await env.ctx.registry.listPending('pending')).find((p) => p.deviceId === 'dev-appr')?.id;
      if (!pendingId) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(pendingId, 'the enrollment waits for approval');
    await new Promise((res) => setTimeout(res, 1500)); // let pki poll at least once more
    assert.equal(await certCount(env.ctx), before, 'nothing issued before approval');

    // The ra-officer approves with the real CLI, in another process.
    const a = await fleetpkiAsync(['enrollment', 'approve', pendingId, '--dir', env.dir]);
    assert.equal(a.status, 0, a.stderr);

    const r = await polling;
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /EST request pending, polling every 1 seconds/, 'pki saw 202 with Retry-After: 1');
    await verifyClientCert(env, r.stdout);
    const info = certOfPem(r.stdout);
    assert.deepEqual(info.subject, registrySubject('Swan Fleet', 'dev-appr'));
    const p = await env.ctx.store.getPendingEnrollment(pendingId);
    assert.equal(p?.status, 'issued');
    const trail = (await auditSince(env.ctx, 0)).filter((a) => a.target === pendingId).map((a) => a.action);
    assert.deepEqual(trail, ['enrollment.pending', 'enrollment.approve']);
    assert.equal((await env.ctx.registry.device('dev-appr')).currentSerial, info.serial);
  });

  it('bootstrap with a manufacturer certificate (IDevID): trust add-manufacturer, refreshTrust, pki --est --cert', async () => {
    const mfr = await makeManufacturer(env, 'Acme Mfr');
    const idevid = await mfr.idevid('SN-4711');
    await registerDevice(env.ctx, { id: 'SN-4711', domain: 'plant-b' }, false);

    // Untrusted yet: refused, nothing issued.
    const { key, req } = await pkiKeyAndReq('sn4711', 'CN=SN-4711');
    const before = await certCount(env.ctx);
    const refused = await pki([...estArgs(), '--in', req, '--cert', idevid.cert, '--key', idevid.key]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /HTTP 401/);
    assert.equal(await certCount(env.ctx), before);
    const seqTrust = await auditHead(env.ctx);

    const t = await fleetpkiAsync(['trust', 'add-manufacturer', '--ca', mfr.rootPem, '--dir', env.dir]);
    assert.equal(t.status, 0, t.stderr);
    assert.equal((await auditSince(env.ctx, seqTrust, 'trust.add')).length, 1);
    // The listener picks up the new anchor: now, or already by its own
    // 10-second timer, which may have run since the CLI added it (then
    // there is nothing left to change). The enrollment below proves it.
    await env.server.refreshTrust();
    assert.equal(await env.server.refreshTrust(), false, 'nothing more to pick up');

    const seq = await auditHead(env.ctx);
    const r = await pki([...estArgs(), '--in', req, '--cert', idevid.cert, '--key', idevid.key]);
    assert.equal(r.status, 0, r.stderr);
    const ldevid = env.file('sn4711.pem');
    writeFileSync(ldevid, r.stdout);
    await verifyClientCert(env, r.stdout);
    const info = certOfPem(r.stdout);
    assert.deepEqual(info.subject, registrySubject('Swan Fleet', 'SN-4711'));
    assert.deepEqual(info.sans, [{ type: 'uri', value: 'urn:fleetpki:domain:plant-b' }]);
    assert.equal(await spkiOf(ldevid, 'cert'), await spkiOf(key, 'key'), 'the operational key, not the factory key');
    const device = await env.ctx.registry.device('SN-4711');
    assert.equal(device.state, 'active');
    assert.equal(device.currentSerial, info.serial);
    const issued = (await auditSince(env.ctx, seq, 'certificate.issue')).find((a) => a.target === info.serial);
    assert.equal(issued?.details.method, 'manufacturer');
    assert.equal(issued?.details.renewal, false);
  });
});
