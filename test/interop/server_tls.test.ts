/**
 * The HTTPS listener presents a certificate from the fleet's own CA, which
 * clients verify with only the root (openssl s_client, GnuTLS certtool), and
 * the server renews it before expiry without a restart.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeDataDir, run, tempDir, type TestDataDir } from '../helpers/data_dir.js';

/** Serial of the certificate a fresh TLS connection is served. */
function servedSerial(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), servername: 'localhost', rejectUnauthorized: false }, () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase();
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

describe('HTTPS listener identity', () => {
  let d: TestDataDir;
  let server: RunningServer;
  const clock = new FakeClock(new Date());
  const work = tempDir('fleetpki-tls-');
  let rootFile = '';

  before(async () => {
    d = await makeDataDir({ clock });
    server = await startServer(d.ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    const root = (await d.ctx.store.listCas()).find((c) => c.kind === 'root')!;
    rootFile = join(work, 'root.pem');
    writeFileSync(rootFile, pemEncode('CERTIFICATE', root.certDer));
  });

  after(async () => {
    await server.close();
    await d.cleanup();
    spawnSync('rm', ['-rf', work]);
  });

  it('openssl s_client verifies the chain with only the root, by name and by IP', async () => {
    const port = new URL(server.httpsUrl).port;
    for (const [name, verifyArg] of [['localhost', ['-verify_hostname', 'localhost']], ['127.0.0.1', ['-verify_ip', '127.0.0.1']]] as const) {
      const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-CAfile', rootFile, '-verify_return_error', ...verifyArg]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
    }
  });

  it('GnuTLS certtool verifies the presented chain against the root', async () => {
    const port = new URL(server.httpsUrl).port;
    const shown = (await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-showcerts'])).stdout;
    const chain = shown.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
    assert.equal(chain.length, 2, 'leaf and issuing CA are sent; the root is not');
    const f = join(work, 'presented.pem');
    writeFileSync(f, chain.join(''));
    const r = await run('certtool', ['--verify', '--load-ca-certificate', rootFile, '--infile', f]);
    assert.match(r.stdout, /Chain verification output: Verified/, r.stdout + r.stderr);
  });

  it('the listener certificate is recorded in the store under server-tls', async () => {
    const serial = await servedSerial(server.httpsUrl);
    const rec = await d.ctx.store.getCertificate(serial.replace(/^0+(?=..)/, ''));
    assert.ok(rec, `served certificate ${serial} is in the store`);
    assert.equal(rec.profile, 'server-tls');
    assert.equal(rec.requester, 'system:tls-listener');
  });

  it('is not renewed early, is renewed when two thirds of its life have passed, and new connections get the new one', async () => {
    const first = await servedSerial(server.httpsUrl);
    assert.equal(await server.renewTlsIfDue(), false, 'fresh certificate is kept');
    clock.advance(50 * 86_400_000); // 40 of 90 days left: still more than a third
    assert.equal(await server.renewTlsIfDue(), false);
    clock.advance(15 * 86_400_000); // 25 days left: renew
    assert.equal(await server.renewTlsIfDue(), true);
    const second = await servedSerial(server.httpsUrl);
    assert.notEqual(second, first, 'a new certificate is served without a restart');
  });

  it('a revoked listener certificate is replaced at the next check', async () => {
    const current = (await servedSerial(server.httpsUrl)).replace(/^0+(?=..)/, '');
    await d.ctx.authority.revoke(current, 'superseded', 'test');
    assert.equal(await server.renewTlsIfDue(), true);
    assert.notEqual(await servedSerial(server.httpsUrl), current);
  });

  it('two servers of one data directory (serve --processes): one renews a due pair, the other takes the new pair at its next check', async () => {
    const other = await startServer(d.ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    try {
      const old = await servedSerial(server.httpsUrl);
      assert.equal(await servedSerial(other.httpsUrl), old, 'the second server starts from the pair on disk');
      const issued = async () => (await d.ctx.store.listCertificates({ profile: 'server-tls', limit: 1000 })).length;
      const before = await issued();
      clock.advance(61 * 86_400_000); // the pair made by the previous test is due
      const renewed = await Promise.all([server.renewTlsIfDue(), other.renewTlsIfDue()]);
      assert.deepEqual(renewed.sort(), [false, true], 'one of them renewed (it held the lease), the other did not');
      assert.equal(await issued(), before + 1, 'one new listener certificate, not two');
      // The other one finds the new pair on disk and serves it.
      assert.equal((await Promise.all([server.renewTlsIfDue(), other.renewTlsIfDue()])).filter(Boolean).length, 1);
      const now = await servedSerial(server.httpsUrl);
      assert.notEqual(now, old);
      assert.equal(await servedSerial(other.httpsUrl), now);
      assert.deepEqual(await Promise.all([server.renewTlsIfDue(), other.renewTlsIfDue()]), [false, false]);
      // A revoked pair: one replaces it; the one turned away keeps serving
      // what it has, then takes the new pair.
      await d.ctx.authority.revoke(now.replace(/^0+(?=..)/, ''), 'superseded', 'test');
      const afterRevoke = await issued();
      assert.deepEqual((await Promise.all([server.renewTlsIfDue(), other.renewTlsIfDue()])).sort(), [false, true]);
      assert.equal(await issued(), afterRevoke + 1, 'one replacement, not two');
      assert.equal((await Promise.all([server.renewTlsIfDue(), other.renewTlsIfDue()])).filter(Boolean).length, 1);
      const replaced = await servedSerial(server.httpsUrl);
      assert.notEqual(replaced, now);
      assert.equal(await servedSerial(other.httpsUrl), replaced);
    } finally {
      await other.close();
    }
  });
});
