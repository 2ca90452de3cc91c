/**
 * The OCSP responder as relying parties use it: a running server asked by
 * the real `openssl ocsp` client (POST, SHA-1 and SHA-256 CertIDs, with and
 * without nonce, delegated signer verified up to the root), by curl with the
 * GET form and its caching headers, and by GnuTLS `ocsptool` as a second
 * validator. A revocation made by the CLI in another process shows in the
 * next cached (no-nonce) answer.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { ocspPlugin } from '../../src/protocols/ocsp/plugin.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { BIN, makeDataDir, opensslCsr, run, tempDir, type TestDataDir } from '../helpers/data_dir.js';

const hasOcsptool = spawnSync('ocsptool', ['--version'], { encoding: 'utf8' }).status === 0;

describe('OCSP responder with openssl ocsp, curl and GnuTLS ocsptool', () => {
  let d: TestDataDir;
  let server: RunningServer;
  let caSigned: FastifyInstance | undefined;
  let url = '';
  const work = tempDir('fleetpki-ocsp-interop-');
  const f = (n: string) => join(work, n);

  /** Issues a device certificate in this process; returns its serial. */
  async function issue(name: string): Promise<string> {
    const { csrPem } = opensslCsr(work, name);
    const r = await d.ctx.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'test' });
    writeFileSync(f(`${name}.pem`), r.pem);
    return r.record.serial;
  }

  /** `openssl ocsp` against the server; stdout holds the statuses, stderr "Response verify OK". */
  async function ocsp(args: string[], at = url): Promise<{ ok: boolean; out: string }> {
    const r = await run('openssl', ['ocsp', '-url', `${at}/ocsp`, '-CAfile', f('root.pem'), ...args]);
    const out = r.stdout + r.stderr;
    return { ok: r.status === 0 && /Response verify OK/.test(r.stderr), out };
  }

  before(async () => {
    d = await makeDataDir();
    server = await startServer(d.ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    url = server.httpUrl;
    writeFileSync(f('root.pem'), pemEncode('CERTIFICATE', (await d.ctx.store.getCa('root'))!.certDer));
    writeFileSync(f('issuing.pem'), pemEncode('CERTIFICATE', (await d.ctx.store.getCa('issuing'))!.certDer));
  });

  after(async () => {
    await caSigned?.close();
    await server?.close();
    await d?.cleanup();
    await run('rm', ['-rf', work]);
  });

  it('ok-good-with-nonce-delegated-signer-verifies-to-the-root', async () => {
    await issue('good-1');
    const r = await ocsp(['-issuer', f('issuing.pem'), '-cert', f('good-1.pem'), '-resp_text']);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /good-1\.pem: good/);
    assert.match(r.out, /OCSP Nonce/, 'the nonce comes back');
    assert.doesNotMatch(r.out, /WARNING/);
    assert.match(r.out, /Subject: O ?= ?Test Fleet, CN ?= ?issuing OCSP Responder/);
    assert.match(r.out, /OCSP Signing/);
    assert.match(r.out, /OCSP No Check/);
    const m = /This Update: (.+)\n\s*Next Update: (.+)/.exec(r.out);
    assert.ok(m, r.out);
    assert.equal(Date.parse(m[2]) - Date.parse(m[1]), 3600_000);
  });

  it('ok-good-without-nonce-and-sha256-certid', async () => {
    await issue('good-2');
    const plain = await ocsp(['-issuer', f('issuing.pem'), '-cert', f('good-2.pem'), '-no_nonce']);
    assert.ok(plain.ok, plain.out);
    assert.match(plain.out, /good-2\.pem: good/);
    // -sha256 must come before -cert.
    const sha256 = await ocsp(['-sha256', '-issuer', f('issuing.pem'), '-cert', f('good-2.pem'), '-resp_text']);
    assert.ok(sha256.ok, sha256.out);
    assert.match(sha256.out, /Hash Algorithm: sha256/);
    assert.match(sha256.out, /good-2\.pem: good/);
  });

  it('ok-revoked-with-reason-and-time', async () => {
    const serial = await issue('revoked-1');
    const rec = await d.ctx.authority.revoke(serial, 'keyCompromise', 'test');
    const r = await ocsp(['-issuer', f('issuing.pem'), '-cert', f('revoked-1.pem')]);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /revoked-1\.pem: revoked/);
    assert.match(r.out, /Reason: keyCompromise/);
    const t = /Revocation Time: (.+)/.exec(r.out)?.[1];
    assert.equal(Date.parse(t!), Math.floor(rec.revocation!.revokedAt.getTime() / 1000) * 1000);
  });

  it('ok-unknown-serial', async () => {
    const r = await ocsp(['-issuer', f('issuing.pem'), '-serial', '0x1234']);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /0x1234: unknown/);
  });

  it('ok-cli-revocation-in-another-process-reaches-the-cached-answer', async () => {
    const serial = await issue('cli-revoke');
    const args = ['-issuer', f('issuing.pem'), '-cert', f('cli-revoke.pem'), '-no_nonce', '-respout', f('cli-1.der')];
    const first = await ocsp(args);
    assert.match(first.out, /cli-revoke\.pem: good/);
    const second = await ocsp([...args.slice(0, -1), f('cli-2.der')]);
    assert.match(second.out, /cli-revoke\.pem: good/);
    assert.deepEqual(readFileSync(f('cli-2.der')), readFileSync(f('cli-1.der')), 'the no-nonce answer is served from the cache');
    const rv = await run(process.execPath, [BIN, 'cert', 'revoke', '--dir', d.dir, serial, '--reason', 'affiliationChanged']);
    assert.equal(rv.status, 0, rv.stderr);
    const revokedAt = Date.now();
    // The change feed is read every ocsp.statusPollSeconds (1 s): the
    // cached answer gives way within that, not at the next refresh.
    let after = await ocsp(args);
    while (!/: revoked/.test(after.out) && Date.now() - revokedAt < 3000) {
      await new Promise((r) => setTimeout(r, 100));
      after = await ocsp(args);
    }
    assert.ok(Date.now() - revokedAt < 3000);
    assert.ok(after.ok, after.out);
    assert.match(after.out, /cli-revoke\.pem: revoked/);
    assert.match(after.out, /Reason: affiliationChanged/);
  });

  it('ok-get-with-curl-and-rfc5019-caching-headers', async () => {
    await issue('get-1');
    const req = await run('openssl', ['ocsp', '-issuer', f('issuing.pem'), '-cert', f('get-1.pem'), '-no_nonce', '-reqout', f('get-1.req')]);
    assert.equal(req.status, 0, req.stderr);
    const path = encodeURIComponent(readFileSync(f('get-1.req')).toString('base64'));
    const res = await run('curl', ['-sS', '-D', f('get-1.headers'), '-o', f('get-1.resp'), `${url}/ocsp/${path}`]);
    assert.equal(res.status, 0, res.stderr);
    const headers = readFileSync(f('get-1.headers'), 'utf8');
    assert.match(headers, /^HTTP\/1\.1 200/);
    assert.match(headers, /content-type: application\/ocsp-response/i);
    const maxAge = Number(/cache-control: max-age=(\d+), public, no-transform, must-revalidate/i.exec(headers)?.[1]);
    assert.ok(maxAge > 3500 && maxAge <= 3600, headers);
    const lastModified = Date.parse(/last-modified: (.+)/i.exec(headers)![1]);
    const expires = Date.parse(/expires: (.+)/i.exec(headers)![1]);
    assert.equal(expires - lastModified, 3600_000);
    const etag = /etag: (".+")/i.exec(headers)?.[1];
    assert.ok(etag);
    // The body is a valid answer for that certificate.
    const v = await run('openssl', ['ocsp', '-respin', f('get-1.resp'), '-issuer', f('issuing.pem'), '-cert', f('get-1.pem'), '-CAfile', f('root.pem'), '-no_nonce']);
    assert.match(v.stdout, /get-1\.pem: good/);
    assert.match(v.stderr, /Response verify OK/);
    // A cache revalidating with the ETag gets 304.
    const again = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: ${etag}`, `${url}/ocsp/${path}`]);
    assert.equal(again.stdout, '304');
    // Unencoded base64 ('/' and '+' raw) works too.
    const raw = await run('curl', ['-sS', '-o', f('get-raw.resp'), `${url}/ocsp/${readFileSync(f('get-1.req')).toString('base64')}`]);
    assert.equal(raw.status, 0, raw.stderr);
    assert.deepEqual(readFileSync(f('get-raw.resp')), readFileSync(f('get-1.resp')));
  });

  it('ok-nonce-answers-carry-no-caching-headers', async () => {
    await run('openssl', ['ocsp', '-issuer', f('issuing.pem'), '-cert', f('get-1.pem'), '-reqout', f('nonce.req')]);
    const res = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${f('nonce.req')}`, `${url}/ocsp`]);
    assert.match(res.stdout, /cache-control: no-store/i);
    assert.doesNotMatch(res.stdout, /etag|expires|last-modified/i);
  });

  it('ok-garbage-gets-malformed-request', async () => {
    writeFileSync(f('garbage.req'), 'not an OCSP request at all');
    const res = await run('curl', ['-sS', '-o', f('garbage.resp'), '-w', '%{http_code}', '-H', 'Content-Type: application/ocsp-request', '--data-binary', `@${f('garbage.req')}`, `${url}/ocsp`]);
    assert.equal(res.stdout, '200');
    // OCSPResponse { responseStatus malformedRequest (1) }, no responseBytes.
    assert.equal(readFileSync(f('garbage.resp')).toString('hex'), '30030a0101');
  });

  it('ok-gnutls-ocsptool-validates-delegated-answers', { skip: !hasOcsptool && 'ocsptool (gnutls-bin) is not installed' }, async () => {
    await issue('gnutls-1');
    // --load-signer: the issuer that must have signed or delegated the answer.
    const good = await run('ocsptool', [`--ask=${url}/ocsp`, `--load-issuer=${f('issuing.pem')}`, `--load-cert=${f('gnutls-1.pem')}`, `--load-signer=${f('issuing.pem')}`, '--nonce']);
    const out = good.stdout + good.stderr;
    assert.match(out, /Certificate Status: good/, out);
    assert.match(out, /Nonce: [0-9a-f]+/);
    assert.match(out, /Verifying OCSP Response: Success/);
    // Answer from the openssl test above, read from a file: revoked.
    const rv = await run('openssl', ['ocsp', '-url', `${url}/ocsp`, '-issuer', f('issuing.pem'), '-cert', f('revoked-1.pem'), '-no_nonce', '-respout', f('revoked-1.resp'), '-noverify']);
    assert.equal(rv.status, 0, rv.stderr);
    const fromFile = await run('ocsptool', ['-e', `--load-signer=${f('issuing.pem')}`, `--infile=${f('revoked-1.resp')}`]);
    assert.match(fromFile.stdout + fromFile.stderr, /Verifying OCSP Response: Success/);
    const info = await run('ocsptool', ['-j', `--infile=${f('revoked-1.resp')}`]);
    assert.match(info.stdout, /Certificate Status: revoked/);
  });

  it('ok-sign-with-ca-key-mode-verifies', async () => {
    caSigned = Fastify();
    await caSigned.register(ocspPlugin, { ctx: d.ctx, options: { signWithCaKey: true } });
    await caSigned.listen({ host: '127.0.0.1', port: 0 });
    const addr = caSigned.server.address();
    assert.ok(addr && typeof addr === 'object');
    const at = `http://127.0.0.1:${addr.port}`;
    await issue('ca-signed');
    const r = await ocsp(['-issuer', f('issuing.pem'), '-cert', f('ca-signed.pem'), '-resp_text'], at);
    assert.ok(r.ok, r.out);
    assert.match(r.out, /ca-signed\.pem: good/);
    assert.doesNotMatch(r.out, /Certificate:/, 'no signer certificate: the CA signs');
    const rv = await ocsp(['-issuer', f('issuing.pem'), '-cert', f('revoked-1.pem'), '-no_nonce'], at);
    assert.ok(rv.ok, rv.out);
    assert.match(rv.out, /Reason: keyCompromise/);
    if (hasOcsptool) {
      const g = await run('ocsptool', [`--ask=${at}/ocsp`, `--load-issuer=${f('issuing.pem')}`, `--load-cert=${f('ca-signed.pem')}`, `--load-signer=${f('issuing.pem')}`]);
      assert.match(g.stdout + g.stderr, /Verifying OCSP Response: Success/);
    }
  });
});
