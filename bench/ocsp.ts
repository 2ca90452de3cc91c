/**
 * OCSP on loopback (issues 4 and 11): `fleetpki serve` in a process of its
 * own, driven by wrk with keep-alive connections, next to
 *   - a bare node:http server handing out the same response bytes: the
 *     ceiling for pre-signed answers (a server can do no less work);
 *   - for nonce answers, the floor: node:http and one node:crypto
 *     signature per answer, a process per core (bench/bare_nonce_server.ts);
 *   - the `openssl ocsp -index` responder, which signs every answer.
 * Pre-signed: GET of a request without a nonce (the RFC 5019 path a CDN
 * caches). Nonce-signed: POST with a fresh nonce per request, so every
 * answer is signed on demand.
 *
 * The openssl responder answers HTTP/1.0 and closes every connection, which
 * wrk cannot drive; against it both responders are driven by ApacheBench
 * (ab), one connection per request, the same way.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initDataDir } from '../src/server/context.js';
import { pemEncode } from '../src/x509/pem.js';
import { result, type Result } from './lib/report.js';
import { background, freePort, need, waitFor, type Background } from './lib/proc.js';

const BIN = fileURLToPath(new URL('../bin/fleetpki.js', import.meta.url));
const BARE_NONCE = fileURLToPath(new URL('./bare_nonce_server.ts', import.meta.url));
const CONNECTIONS = 32;
/**
 * openssl's responder serves one connection at a time: more concurrent
 * connections only queue in its backlog (and on a loaded machine ab's own
 * timeout fires while they wait). Both responders get the same one.
 */
const AB_CONCURRENCY = 1;

function sh(cmd: string, args: string[], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

interface WrkRun {
  rps: number;
  errors: number;
}

/** Rounds of the pre-signed scenario, each ours then bare. */
const PRESIGNED_ROUNDS = 3;

/** Ours and a baseline taking turns for `rounds` rounds, so both see the same moments of a shared machine. */
interface Turns {
  ours: WrkRun;
  theirs: WrkRun;
  /** Per-round ratios, for the note. */
  ratios: string;
}

function takingTurns(rounds: number, ours: () => WrkRun, theirs: () => WrkRun): Turns {
  const a: WrkRun[] = [];
  const b: WrkRun[] = [];
  for (let i = 0; i < rounds; i++) {
    a.push(ours());
    b.push(theirs());
  }
  return { ours: meanRun(a), theirs: meanRun(b), ratios: a.map((o, i) => (o.rps / b[i].rps).toFixed(2)).join(', ') };
}

function meanRun(runs: WrkRun[]): WrkRun {
  return { rps: runs.reduce((a, r) => a + r.rps, 0) / runs.length, errors: runs.reduce((a, r) => a + r.errors, 0) };
}

/**
 * wrk with one thread (the server has the other core) for `seconds`.
 * `script` (Lua) may shape the requests. Non-2xx answers and socket errors
 * are counted: a fast wrong answer must not pass for speed.
 */
function wrk(url: string, seconds: number, script?: string): WrkRun {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, ...(script ? ['-s', script] : []), url];
  const out = sh('wrk', args);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk's output:\n${out}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]) : 0);
  return { rps, errors };
}

/**
 * ApacheBench: `n` requests, `concurrency` at a time, a new connection each.
 * Its "Length" failures only mean answers differ in size (ECDSA signatures
 * do); anything else counts as an error.
 */
function ab(url: string, n: number, concurrency: number, post?: { file: string; type: string }): WrkRun {
  const args = ['-q', '-s', '120', '-n', String(n), '-c', String(concurrency), ...(post ? ['-p', post.file, '-T', post.type] : []), url];
  const out = sh('ab', args);
  const rps = Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1]);
  if (!Number.isFinite(rps)) throw new Error(`cannot read ab's output:\n${out}`);
  const f = /\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)/.exec(out);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { rps, errors: non2xx + (f ? Number(f[1]) + Number(f[2]) + Number(f[3]) : 0) };
}

/** A Lua string literal of raw bytes (decimal escapes work in every Lua). */
function luaBytes(b: Uint8Array): string {
  return `"${Array.from(b, (x) => `\\${x}`).join('')}"`;
}

/**
 * A wrk script POSTing `request` (DER OCSPRequest whose last 16 octets are
 * the nonce value, as openssl writes it) with a different nonce each time.
 */
function nonceScript(file: string, request: Uint8Array): string {
  const prefix = request.subarray(0, request.length - 16);
  writeFileSync(
    file,
    `local prefix = ${luaBytes(prefix)}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, prefix .. string.format("%016x", n))
end
`,
  );
  return file;
}

/** An OCSP request for `cert` from openssl; with a nonce, its last 16 octets are the nonce value (checked). */
function opensslRequest(work: string, name: string, issuerPem: string, certPem: string, nonce: boolean): Uint8Array {
  const out = join(work, `${name}.req`);
  sh('openssl', ['ocsp', '-issuer', issuerPem, '-cert', certPem, nonce ? '-nonce' : '-no_nonce', '-reqout', out]);
  const der = new Uint8Array(readFileSync(out));
  if (nonce) {
    const text = sh('openssl', ['ocsp', '-reqin', out, '-req_text']);
    const hex = Buffer.from(der.subarray(der.length - 16)).toString('hex').toUpperCase();
    if (!text.replace(/[\s:]/g, '').toUpperCase().includes(hex)) throw new Error('the nonce is not the last 16 octets of the request');
  }
  return der;
}

const getUrl = (base: string, der: Uint8Array) => `${base}/ocsp/${encodeURIComponent(Buffer.from(der).toString('base64'))}`;

async function ocspAnswer(url: string, init?: RequestInit): Promise<{ status: string; der: Uint8Array; headers: Headers }> {
  const res = await fetch(url, init);
  const der = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`OCSP answered HTTP ${res.status}`);
  return { status: res.headers.get('content-type') ?? '', der, headers: res.headers };
}

/** openssl's view of a response: "good"/"revoked"/... and whether it verified. */
function checkResponse(work: string, name: string, der: Uint8Array, issuer: string, cert: string, trust: string, nonceReq?: string): string {
  const f = join(work, `${name}.resp`);
  writeFileSync(f, der);
  // With -reqin openssl checks the nonce against that request; -issuer and
  // -cert would make it build a new request with a nonce of its own.
  const args = ['ocsp', '-respin', f, '-CAfile', trust, ...(nonceReq ? ['-reqin', nonceReq] : ['-issuer', issuer, '-cert', cert, '-no_nonce'])];
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (!/Response verify OK/.test(r.stderr + r.stdout)) throw new Error(`openssl does not verify the ${name} response: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function ocspScenarios(quick: boolean): Promise<Result[]> {
  need('wrk', 'wrk');
  need('ab', 'apache2-utils');
  need('openssl', 'openssl');
  const seconds = quick ? 1 : 5;
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-ocsp-'));
  const f = (n: string) => join(work, n);
  const running: Background[] = [];
  try {
    // --- fleetpki: a data directory, one device certificate, the server.
    const [httpsPort, httpPort, barePort, floorPort, opensslPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const dir = f('data');
    const { ctx } = await initDataDir({ dir, org: 'Bench', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825, listen: `127.0.0.1:${httpsPort}`, httpListen: `127.0.0.1:${httpPort}` });
    sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('dev.key'), '-subj', '/CN=bench-device', '-out', f('dev.csr')]);
    const issued = await ctx.authority.issue({ csr: readFileSync(f('dev.csr'), 'utf8'), profile: 'device-tls', actor: 'bench' });
    writeFileSync(f('dev.pem'), issued.pem);
    writeFileSync(f('issuing.pem'), pemEncode('CERTIFICATE', (await ctx.store.getCa(issued.record.issuerCa))!.certDer));
    writeFileSync(f('root.pem'), pemEncode('CERTIFICATE', (await ctx.store.getCa('root'))!.certDer));
    writeFileSync(f('chain.pem'), readFileSync(f('issuing.pem'), 'utf8') + readFileSync(f('root.pem'), 'utf8'));
    await ctx.close();
    const server = background(process.execPath, [BIN, 'serve', '--dir', dir, '--log-level', 'warn'], f('serve.log'));
    running.push(server);
    const base = `http://127.0.0.1:${httpPort}`;
    await waitFor('fleetpki serve', async () => (await fetch(`${base}/healthz`)).ok, server);

    const plainReq = opensslRequest(work, 'plain', f('issuing.pem'), f('dev.pem'), false);
    const nonceReq = opensslRequest(work, 'nonce', f('issuing.pem'), f('dev.pem'), true);
    const url = getUrl(base, plainReq);
    const first = await ocspAnswer(url); // signs and caches it
    if (!/: good/.test(checkResponse(work, 'fleetpki-plain', first.der, f('issuing.pem'), f('dev.pem'), f('root.pem')))) throw new Error('fleetpki does not say good');
    const nonceAnswer = await ocspAnswer(`${base}/ocsp`, { method: 'POST', body: nonceReq, headers: { 'content-type': 'application/ocsp-request' } });
    checkResponse(work, 'fleetpki-nonce', nonceAnswer.der, f('issuing.pem'), f('dev.pem'), f('chain.pem'), f('nonce.req'));

    // --- the ceiling: node:http handing out the same bytes and headers.
    writeFileSync(f('answer.der'), first.der);
    const headers = Object.fromEntries(['content-type', 'cache-control', 'etag', 'last-modified', 'expires'].map((h) => [h, first.headers.get(h) ?? '']));
    // With `processes` > 1, one per process on the same port (node:cluster), as `serve --processes`.
    const bareCode = (processes: number) => `const cluster = require('cluster');
      if (${processes} > 1 && cluster.isPrimary) { for (let i = 0; i < ${processes}; i++) cluster.fork(); } else {
      const body = require('fs').readFileSync(${JSON.stringify(f('answer.der'))}); const headers = ${JSON.stringify(headers)};
      require('http').createServer((req, res) => { req.resume(); res.writeHead(200, headers); res.end(body); }).listen(${barePort}, '127.0.0.1'); }`;
    // A file, not -e: cluster.fork() starts the same script again.
    const bareServer = (processes: number) => {
      writeFileSync(f(`bare-${processes}.cjs`), bareCode(processes));
      return background(process.execPath, [f(`bare-${processes}.cjs`)], f(`bare-${processes}.log`));
    };
    const bare = bareServer(1);
    running.push(bare);
    await waitFor('bare node:http', async () => (await fetch(`http://127.0.0.1:${barePort}/`)).ok, bare);
    // Rounds taking turns, so both see the same moments of a shared machine.
    const rounds = quick ? 1 : PRESIGNED_ROUNDS;
    const presigned = takingTurns(rounds, () => wrk(url, seconds), () => wrk(getUrl(`http://127.0.0.1:${barePort}`, plainReq), seconds));
    await bare.stop();

    // --- the nonce floor: node:http + one node:crypto signature per answer,
    // a process per core (node:cluster), taking turns with ours.
    const floorKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    writeFileSync(f('floor.key'), floorKey.export({ format: 'der', type: 'pkcs8' }));
    writeFileSync(f('nonce-answer.der'), nonceAnswer.der);
    const cores = availableParallelism();
    const floor = background(process.execPath, ['--import', 'tsx', BARE_NONCE, String(floorPort), f('floor.key'), f('nonce-answer.der'), String(cores)], f('floor.log'));
    running.push(floor);
    const floorUrl = `http://127.0.0.1:${floorPort}/ocsp`;
    await waitFor('bare nonce signer', async () => (await fetch(floorUrl, { method: 'POST', body: nonceReq })).ok, floor);
    const nonceLua = nonceScript(f('nonce.lua'), nonceReq);
    const nonce = takingTurns(rounds, () => wrk(`${base}/ocsp`, seconds, nonceLua), () => wrk(floorUrl, seconds, nonceLua));
    const abRequests = quick ? 300 : 3000;
    const post = { file: f('nonce.req'), type: 'application/ocsp-request' };
    const oursAbPlain = ab(`${base}/ocsp`, abRequests, AB_CONCURRENCY, { file: f('plain.req'), type: 'application/ocsp-request' });
    const oursAbNonce = ab(`${base}/ocsp`, abRequests, AB_CONCURRENCY, post);
    await server.stop();

    // --- `serve --processes <cores>`: a process per core on the same
    // listeners, against bare node:http on as many processes (pre-signed)
    // and the floor (nonce), taking turns.
    const cluster = background(process.execPath, [BIN, 'serve', '--dir', dir, '--log-level', 'warn', '--processes', String(cores)], f('serve-processes.log'));
    running.push(cluster);
    await waitFor('fleetpki serve --processes', async () => (await fetch(`${base}/healthz`)).ok, cluster);
    await ocspAnswer(url); // a process signs the answer at its first request, then serves it pre-signed
    const bareCluster = bareServer(cores);
    running.push(bareCluster);
    await waitFor('bare node:http cluster', async () => (await fetch(`http://127.0.0.1:${barePort}/`)).ok, bareCluster);
    const clusterPresigned = takingTurns(rounds, () => wrk(url, seconds), () => wrk(getUrl(`http://127.0.0.1:${barePort}`, plainReq), seconds));
    const clusterNonce = takingTurns(rounds, () => wrk(`${base}/ocsp`, seconds, nonceLua), () => wrk(floorUrl, seconds, nonceLua));
    await Promise.all([cluster.stop(), bareCluster.stop(), floor.stop()]);

    // --- openssl ocsp -index: its own small CA, signing every answer.
    sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('o-ca.key'), '-subj', '/CN=OpenSSL Bench CA', '-days', '30', '-out', f('o-ca.pem'), '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
    sh('openssl', ['x509', '-req', '-in', f('dev.csr'), '-CA', f('o-ca.pem'), '-CAkey', f('o-ca.key'), '-set_serial', '0x4A11', '-days', '30', '-out', f('o-dev.pem')]);
    writeFileSync(f('index.txt'), `V\t${'301231235959Z'}\t\t4A11\tunknown\t/CN=bench-device\n`);
    const ossl = background('openssl', ['ocsp', '-index', f('index.txt'), '-port', String(opensslPort), '-rsigner', f('o-ca.pem'), '-rkey', f('o-ca.key'), '-CA', f('o-ca.pem'), '-ignore_err'], f('openssl-ocsp.log'));
    running.push(ossl);
    opensslRequest(work, 'o-plain', f('o-ca.pem'), f('o-dev.pem'), false);
    opensslRequest(work, 'o-nonce', f('o-ca.pem'), f('o-dev.pem'), true);
    const oBase = `http://127.0.0.1:${opensslPort}`;
    // curl, not fetch: the responder serves one connection at a time, and
    // fetch would keep its connection open (and the responder waiting).
    const curlPost = (reqFile: string, out: string) =>
      spawnSync('curl', ['-sf', '-m', '2', '--data-binary', `@${reqFile}`, '-H', 'Content-Type: application/ocsp-request', '-o', out, `${oBase}/`]).status === 0;
    await waitFor('openssl ocsp', async () => curlPost(f('o-plain.req'), f('o-plain.resp')), ossl);
    if (!/: good/.test(checkResponse(work, 'openssl-plain', readFileSync(f('o-plain.resp')), f('o-ca.pem'), f('o-dev.pem'), f('o-ca.pem')))) throw new Error('openssl ocsp does not say good');
    const opensslAbPlain = ab(`${oBase}/`, abRequests, AB_CONCURRENCY, { file: f('o-plain.req'), type: 'application/ocsp-request' });
    const opensslAbNonce = ab(`${oBase}/`, abRequests, AB_CONCURRENCY, { file: f('o-nonce.req'), type: 'application/ocsp-request' });
    await ossl.stop();

    const runs = { oursPresigned: presigned.ours, bare: presigned.theirs, oursNonce: nonce.ours, floor: nonce.theirs, oursCluster: clusterPresigned.ours, bareCluster: clusterPresigned.theirs, oursClusterNonce: clusterNonce.ours, floorAgain: clusterNonce.theirs };
    for (const [what, r] of Object.entries({ ...runs, oursAbPlain, oursAbNonce, opensslAbPlain, opensslAbNonce })) {
      if (r.errors > 0) throw new Error(`${what}: ${r.errors} failed requests under load`);
    }
    const conns = `wrk -t1 -c${CONNECTIONS}, ${seconds} s, keep-alive`;
    const perConn = `ab -c${AB_CONCURRENCY}, ${abRequests} requests, a connection each`;
    return [
      result('ocsp-presigned-get', presigned.ours.rps, 'req/s', 'higher', 'bare node:http, same bytes', presigned.theirs.rps, `${conns}; mean of ${rounds} rounds taking turns with bare (ratios ${presigned.ratios}); target 50,000/s and ≥0.8 of bare`),
      result('ocsp-nonce-post', nonce.ours.rps, 'req/s', 'higher', `floor: node:http + node:crypto sign per answer, ${cores} processes`, nonce.theirs.rps, `${conns}; a fresh nonce per request; mean of ${rounds} rounds taking turns with the floor (ratios ${nonce.ratios}); target 15,000/s`),
      result('ocsp-presigned-get-processes', clusterPresigned.ours.rps, 'req/s', 'higher', `bare node:http, same bytes, ${cores} processes`, clusterPresigned.theirs.rps, `serve --processes ${cores}; ${conns}; mean of ${rounds} rounds taking turns (ratios ${clusterPresigned.ratios}); against one bare process: ${(clusterPresigned.ours.rps / presigned.theirs.rps).toFixed(2)}×`),
      result('ocsp-nonce-post-processes', clusterNonce.ours.rps, 'req/s', 'higher', `floor: node:http + node:crypto sign per answer, ${cores} processes`, clusterNonce.theirs.rps, `serve --processes ${cores} (no worker threads); ${conns}; mean of ${rounds} rounds taking turns (ratios ${clusterNonce.ratios})`),
      result('ocsp-post-per-connection', oursAbPlain.rps, 'req/s', 'higher', 'openssl ocsp -index', opensslAbPlain.rps, `${perConn}; no nonce: pre-signed here, signed each time by openssl`),
      result('ocsp-nonce-post-per-connection', oursAbNonce.rps, 'req/s', 'higher', 'openssl ocsp -index', opensslAbNonce.rps, perConn),
    ];
  } finally {
    await Promise.all(running.map((b) => b.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}
