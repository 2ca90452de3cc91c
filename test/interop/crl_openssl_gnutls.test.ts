/**
 * CRLs as relying parties see them: published by a running server at the
 * distribution point URL written in every certificate, checked with
 * `openssl verify -crl_check_all` and GnuTLS `certtool`. Revocations made by
 * the CLI in another process reach the published CRL without a restart.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { BIN, fleetpki, makeDataDir, opensslCsr, run, tempDir, type TestDataDir } from '../helpers/data_dir.js';

describe('CRL publication and validation', () => {
  let d: TestDataDir;
  let server: RunningServer;
  const work = tempDir('fleetpki-crl-interop-');
  const f = (n: string) => join(work, n);
  const D = () => ['--dir', d.dir];
  let crlBase = '';

  /** Downloads a CRL from the distribution point and writes it as PEM. */
  async function download(name: string, file: string): Promise<Response> {
    const res = await fetch(`${crlBase}/crl/${name}`);
    const der = new Uint8Array(await res.arrayBuffer());
    if (res.status === 200) writeFileSync(file, pemEncode('X509 CRL', der));
    return res;
  }

  async function issue(name: string): Promise<string> {
    const { csrPath } = opensslCsr(work, name);
    const r = await run(process.execPath, [BIN, 'cert', 'issue', ...D(), '--csr', csrPath, '--profile', 'device-tls', '--out', f(`${name}.pem`), '--json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).serial;
  }

  async function verifyWithCrls(leaf: string): Promise<{ ok: boolean; out: string }> {
    const r = await run('openssl', ['verify', '-crl_check_all', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), '-CRLfile', f('root.crl.pem'), '-CRLfile', f('issuing.crl.pem'), f(leaf)]);
    return { ok: r.status === 0 && /: OK/.test(r.stdout), out: r.stdout + r.stderr };
  }

  before(async () => {
    d = await makeDataDir();
    // checkIntervalSeconds is the publication debounce; keep the test quick.
    const cfgFile = join(d.dir, 'fleetpki.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    cfg.crl = { checkIntervalSeconds: 1, deltaValidityHours: 2 };
    writeFileSync(cfgFile, JSON.stringify(cfg));
    await d.ctx.close();
    const { openContext } = await import('../../src/server/context.js');
    d.ctx = await openContext(d.dir);
    server = await startServer(d.ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    crlBase = server.httpUrl;
    writeFileSync(f('root.pem'), fleetpki(['ca', 'cert', '--root', ...D()]).stdout);
    writeFileSync(f('issuing.pem'), fleetpki(['ca', 'cert', ...D()]).stdout);
    // The root's key is online in a fresh data directory: sign its CRL now.
    const root = await d.ctx.crls.publish('root', 'base', { validityHours: 24 * 365 });
    writeFileSync(f('root.crl.pem'), pemEncode('X509 CRL', root.der));
  });

  after(async () => {
    await server?.close();
    await d?.cleanup();
    await run('rm', ['-rf', work]);
  });

  it('serves application/pkix-crl with caching headers at the URL the certificates name', async () => {
    const serial = await issue('good-1');
    const text = (await run('openssl', ['x509', '-in', f('good-1.pem'), '-noout', '-ext', 'crlDistributionPoints,freshestCRL'])).stdout;
    const url = /URI:(\S+\/crl\/issuing\.crl)/.exec(text)?.[1];
    assert.ok(url, text);
    assert.match(text, /Freshest CRL[\s\S]*issuing-delta\.crl/, 'delta CRLs are on in this data directory');
    const res = await download('issuing.crl', f('issuing.crl.pem'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/pkix-crl');
    assert.match(res.headers.get('cache-control') ?? '', /max-age=\d+/);
    assert.ok(res.headers.get('expires') && res.headers.get('last-modified'));
    const v = await verifyWithCrls('good-1.pem');
    assert.ok(v.ok, v.out);
    assert.ok(serial);
  });

  it("the server's own timer publishes a revocation made by the CLI, without being asked (crl.checkIntervalSeconds)", async () => {
    const serial = await issue('timer-1');
    const r = await run(process.execPath, [BIN, 'cert', 'revoke', serial, '--reason', 'superseded', ...D()]);
    assert.equal(r.status, 0, r.stderr);
    const deadline = Date.now() + 15_000;
    let text = '';
    while (Date.now() < deadline) {
      await download('issuing.crl', f('timer.crl.pem'));
      text = (await run('openssl', ['crl', '-in', f('timer.crl.pem'), '-noout', '-text'])).stdout;
      if (text.includes(`Serial Number: ${serial.toUpperCase()}`)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.match(text, new RegExp(`Serial Number: ${serial.toUpperCase()}[\\s\\S]*?Superseded`));
  });

  it('fleetpki crl --ca NAME --out FILE writes the DER the distribution point serves; without --out, PEM', async () => {
    await server.publishCrls();
    const out = await run(process.execPath, [BIN, 'crl', '--ca', 'issuing', '--out', f('cli.crl'), ...D()]);
    assert.equal(out.status, 0, out.stderr);
    const served = Buffer.from(await (await fetch(`${crlBase}/crl/issuing.crl`)).arrayBuffer());
    assert.deepEqual(readFileSync(f('cli.crl')), served);
    const v = await run('openssl', ['crl', '-inform', 'DER', '-in', f('cli.crl'), '-CAfile', f('issuing.pem'), '-noout']);
    assert.match(v.stdout + v.stderr, /verify OK/);
    const pem = await run(process.execPath, [BIN, 'crl', '--ca', 'issuing', ...D()]);
    assert.equal(pem.status, 0, pem.stderr);
    assert.match(pem.stdout, /^-----BEGIN X509 CRL-----/);
    const unknown = await run(process.execPath, [BIN, 'crl', '--ca', 'nope', '--out', f('nope.crl'), ...D()]);
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /nope/);
  });

  it('a revocation by the CLI (another process) is in the next CRL; openssl and certtool then refuse the certificate', async () => {
    const serial = await issue('lost-1');
    const r = await run(process.execPath, [BIN, 'cert', 'revoke', serial, '--reason', 'keyCompromise', ...D()]);
    assert.equal(r.status, 0, r.stderr);
    await server.publishCrls();
    await download('issuing.crl', f('issuing.crl.pem'));
    const crlText = (await run('openssl', ['crl', '-in', f('issuing.crl.pem'), '-noout', '-text'])).stdout;
    assert.match(crlText, new RegExp(`Serial Number: ${serial.toUpperCase()}[\\s\\S]*?Key Compromise`));
    const v = await verifyWithCrls('lost-1.pem');
    assert.equal(v.ok, false);
    assert.match(v.out, /certificate revoked/);
    assert.ok((await verifyWithCrls('good-1.pem')).ok, 'other certificates still verify');

    // GnuTLS: the same chain, CRLs loaded as trust inputs.
    const chain = f('lost-chain.pem');
    writeFileSync(chain, readFileSync(f('lost-1.pem'), 'utf8') + readFileSync(f('issuing.pem'), 'utf8'));
    const caBundle = f('ca-bundle.pem');
    writeFileSync(caBundle, readFileSync(f('root.pem'), 'utf8') + readFileSync(f('issuing.pem'), 'utf8'));
    const crls = f('all-crls.pem');
    writeFileSync(crls, readFileSync(f('root.crl.pem'), 'utf8') + readFileSync(f('issuing.crl.pem'), 'utf8'));
    const bad = await run('certtool', ['--verify', '--load-ca-certificate', f('root.pem'), '--load-crl', crls, '--infile', chain]);
    assert.match(bad.stdout + bad.stderr, /revoked/i);
    const goodChain = f('good-chain.pem');
    writeFileSync(goodChain, readFileSync(f('good-1.pem'), 'utf8') + readFileSync(f('issuing.pem'), 'utf8'));
    const good = await run('certtool', ['--verify', '--load-ca-certificate', f('root.pem'), '--load-crl', crls, '--infile', goodChain]);
    assert.match(good.stdout, /Chain verification output: Verified/, good.stdout + good.stderr);
    // certtool --verify-chain: the whole chain up to the root in one file,
    // with the CRLs in the same file (certtool reads both from it).
    const wholeChain = (leaf: string) => {
      const file = f(`${leaf}-whole.pem`);
      writeFileSync(file, readFileSync(f(`${leaf}.pem`), 'utf8') + readFileSync(f('issuing.pem'), 'utf8') + readFileSync(f('root.pem'), 'utf8') + readFileSync(crls, 'utf8'));
      return file;
    };
    const badChain = await run('certtool', ['--verify-chain', '--infile', wholeChain('lost-1')]);
    assert.notEqual(badChain.status, 0);
    assert.match(badChain.stdout + badChain.stderr, /revoked/i);
    const goodWhole = await run('certtool', ['--verify-chain', '--infile', wholeChain('good-1')]);
    assert.equal(goodWhole.status, 0, goodWhole.stdout + goodWhole.stderr);
    assert.match(goodWhole.stdout, /Chain verification output: Verified/);
  });

  it('certificateHold, then release: the delta CRL says removeFromCRL and the base CRL drops the entry', async () => {
    const serial = await issue('held-1');
    await d.ctx.authority.revoke(serial, 'certificateHold', 'test');
    await server.publishCrls();
    await download('issuing.crl', f('issuing.crl.pem'));
    assert.match((await run('openssl', ['crl', '-in', f('issuing.crl.pem'), '-noout', '-text'])).stdout, /Certificate Hold/);
    await new Promise((r) => setTimeout(r, 1100)); // the release happens after the base CRL's thisUpdate second
    await d.ctx.authority.releaseHold(serial, 'test');
    await server.publishCrls();
    const delta = await download('issuing-delta.crl', f('issuing-delta.crl.pem'));
    assert.equal(delta.status, 200);
    const deltaText = (await run('openssl', ['crl', '-in', f('issuing-delta.crl.pem'), '-noout', '-text'])).stdout;
    assert.match(deltaText, /Delta CRL Indicator: critical/);
    assert.match(deltaText, new RegExp(`Serial Number: ${serial.toUpperCase()}[\\s\\S]*?Remove From CRL`));
    await download('issuing.crl', f('issuing.crl.pem'));
    assert.doesNotMatch((await run('openssl', ['crl', '-in', f('issuing.crl.pem'), '-noout', '-text'])).stdout, new RegExp(serial.toUpperCase()));
    const v = await verifyWithCrls('held-1.pem');
    assert.ok(v.ok, v.out);
  });

  it('an offline root gets its CRL in a key ceremony (fleetpki crl --new --root-key)', async () => {
    const env = { FLEETPKI_EXPORT_PASSPHRASE: 'a long export passphrase', FLEETPKI_ROOT_KEY_PASSPHRASE: 'a long export passphrase' };
    const exp = await run('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, BIN, 'ca', 'export-root-key', '--out', f('root.p8'), ...D()]);
    assert.equal(exp.status, 0, exp.stderr);
    const refused = await run(process.execPath, [BIN, 'crl', '--ca', 'root', '--new', ...D()]);
    assert.match(refused.stderr, /key_unavailable/);
    const made = await run('env', [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, BIN, 'crl', '--ca', 'root', '--new', '--root-key', f('root.p8'), '--validity-days', '365', '--out', f('root2.crl'), '--json', ...D()]);
    assert.equal(made.status, 0, made.stderr);
    const meta = JSON.parse(made.stdout);
    assert.ok(meta.number > 1);
    const res = await download('root.crl', f('root-served.crl.pem'));
    assert.equal(res.status, 200);
    const served = (await run('openssl', ['crl', '-in', f('root-served.crl.pem'), '-noout', '-crlnumber'])).stdout;
    assert.equal(parseInt(/crlNumber=0x([0-9A-F]+)/i.exec(served)?.[1] ?? '', 16), meta.number);
    assert.deepEqual(await server.publishCrls().then((x) => x.filter((s) => s.startsWith('root:'))), [], 'the scheduler never touches an offline CA');
  });

  it('fail-unknown CA and bad names are 404 problems', async () => {
    for (const name of ['nope.crl', 'issuing.pem', '..%2fetc.crl']) {
      const res = await fetch(`${crlBase}/crl/${name}`);
      assert.equal(res.status, 404, name);
    }
  });
});
