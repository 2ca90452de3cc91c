/**
 * Partitioned CRLs (RFC 5280 §5.2.5): with crl.shards set, each certificate
 * names its shard's CRL, which lists only that shard and carries a critical
 * issuingDistributionPoint; the full CRL still lists everything. OpenSSL
 * checks the scope: a shard CRL covers only its own certificates.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeDataDir, opensslCsr, run, tempDir, type TestDataDir } from '../helpers/data_dir.js';

describe('partitioned CRLs', () => {
  let d: TestDataDir;
  let ctx: FleetContext;
  let server: RunningServer;
  const work = tempDir('fleetpki-shards-');
  const f = (n: string) => join(work, n);
  const certs: Array<{ serial: string; shard: number; file: string; cdp: string }> = [];

  async function fetchPem(path: string, file: string): Promise<number> {
    const res = await fetch(`${server.httpUrl}${path}`);
    if (res.status === 200) writeFileSync(file, pemEncode('X509 CRL', new Uint8Array(await res.arrayBuffer())));
    return res.status;
  }

  before(async () => {
    d = await makeDataDir();
    const cfgFile = join(d.dir, 'fleetpki.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    cfg.crl = { shards: 4, checkIntervalSeconds: 3600 };
    writeFileSync(cfgFile, JSON.stringify(cfg));
    await d.ctx.close();
    ctx = await openContext(d.dir);
    d.ctx = ctx;
    server = await startServer(ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    writeFileSync(f('root.pem'), pemEncode('CERTIFICATE', (await ctx.authority.ca('root')).record.certDer));
    writeFileSync(f('issuing.pem'), pemEncode('CERTIFICATE', (await ctx.authority.ca('issuing')).record.certDer));
    await ctx.crls.publish('root', 'base');
    await fetchPem('/crl/root.crl', f('root.crl.pem'));
    // Issue until at least two shards are used.
    for (let i = 0; i < 12 && new Set(certs.map((c) => c.shard)).size < 2; i++) {
      const r = await ctx.authority.issue({ csr: opensslCsr(work, `d${i}`).csrPem, profile: 'device-tls', actor: 'test' });
      const info = parseCertificate(r.der);
      const cdp = /https?:\/\/\S+?\.crl/.exec(Buffer.from(info.extensions.find((e) => e.oid === '2.5.29.31')!.value).toString('latin1'))![0];
      const file = f(`d${i}.pem`);
      writeFileSync(file, r.pem);
      certs.push({ serial: r.record.serial, shard: r.record.crlShard ?? 0, file, cdp });
    }
  });

  after(async () => {
    await server?.close();
    await d?.cleanup();
    await run('rm', ['-rf', work]);
  });

  it('spreads certificates over shards named in their distribution points', () => {
    assert.ok(new Set(certs.map((c) => c.shard)).size >= 2, 'at least two shards in use');
    for (const c of certs) {
      assert.ok(c.shard >= 1 && c.shard <= 4, `shard ${c.shard}`);
      assert.match(c.cdp, new RegExp(`/crl/issuing-s${c.shard}\\.crl$`));
    }
  });

  it('a shard CRL lists only its shard, with a critical issuingDistributionPoint; the full CRL lists all', async () => {
    const [a, b] = [certs[0], certs.find((c) => c.shard !== certs[0].shard)!];
    await ctx.authority.revoke(a.serial, 'keyCompromise', 'test');
    await ctx.authority.revoke(b.serial, 'superseded', 'test');
    const published = await server.publishCrls();
    assert.ok(published.some((p) => p.startsWith(`issuing-s${a.shard}:base`)), published.join());
    assert.equal(await fetchPem(`/crl/issuing-s${a.shard}.crl`, f('shard-a.crl.pem')), 200);
    const text = (await run('openssl', ['crl', '-in', f('shard-a.crl.pem'), '-noout', '-text'])).stdout;
    assert.match(text, /Issuing Distribution Point: critical/);
    assert.match(text, new RegExp(`issuing-s${a.shard}\\.crl`));
    assert.match(text, new RegExp(a.serial.toUpperCase()));
    assert.doesNotMatch(text, new RegExp(b.serial.toUpperCase()), 'the other shard is not listed');
    await fetchPem('/crl/issuing.crl', f('full.crl.pem'));
    const full = (await run('openssl', ['crl', '-in', f('full.crl.pem'), '-noout', '-text'])).stdout;
    assert.match(full, new RegExp(a.serial.toUpperCase()));
    assert.match(full, new RegExp(b.serial.toUpperCase()));
  });

  it("openssl honours the scope: the right shard CRL revokes, another shard's CRL cannot vouch", async () => {
    const a = certs[0];
    const b = certs.find((c) => c.shard !== a.shard)!;
    const good = certs.find((c) => c.shard === a.shard && c !== a);
    const verify = (leaf: string, crl: string) =>
      run('openssl', ['verify', '-crl_check', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), '-CRLfile', crl, leaf]);
    const revoked = await verify(a.file, f('shard-a.crl.pem'));
    assert.notEqual(revoked.status, 0);
    assert.match(revoked.stdout + revoked.stderr, /certificate revoked/);
    if (good) {
      const ok = await verify(good.file, f('shard-a.crl.pem'));
      assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    }
    const wrongScope = await verify(b.file, f('shard-a.crl.pem'));
    assert.notEqual(wrongScope.status, 0, 'a shard CRL does not cover another shard');
    assert.match(wrongScope.stdout + wrongScope.stderr, /different CRL scope/);
  });

  it('fail-shards that do not exist are 404, not signed on demand', async () => {
    const res = await fetch(`${server.httpUrl}/crl/issuing-s999.crl`);
    assert.equal(res.status, 404);
  });
});
