/**
 * Shared setup for the EST interop tests: a real data directory with config
 * edits applied before the context opens, a running server, and async
 * wrappers around the real clients (curl, openssl, strongSwan pki).
 *
 * The server runs in the test process: every client here is spawned with the
 * async `run()`, never spawnSync, or the event loop blocks and the server
 * cannot answer.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Clock } from '../../src/clock.js';
import type { DeviceInput } from '../../src/registry/registry.js';
import { CONFIG_FILE, type FleetConfig } from '../../src/server/config.js';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AuditEntry } from '../../src/store/store.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { pemDecodeAll, pemEncode } from '../../src/x509/pem.js';
import { BIN, makeDataDir, tempDir } from './data_dir.js';

/**
 * Runs a command without blocking the event loop (like data_dir.ts `run`),
 * and tolerates a child that exits without reading all of its stdin (curl
 * after an early 413), which would otherwise raise EPIPE in the test.
 */
/** `env`: variables added to this process's (an undefined value unsets one). */
export function run(cmd: string, args: string[], input = '', timeoutMs = 30_000, env?: Record<string, string | undefined>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { timeout: timeoutMs, env: env && withEnv(env) });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    p.stdin.on('error', () => undefined);
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr }));
    p.stdin.end(input);
  });
}

/**
 * A clock that follows real time at an adjustable offset: unlike a frozen
 * FakeClock, certificates made meanwhile by other tools (openssl, at real
 * time) are never "not yet valid" to the server.
 */
export class OffsetClock implements Clock {
  constructor(public offsetMs = 0) {}
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}

export interface EstEnv {
  dir: string;
  ctx: FleetContext;
  server: RunningServer;
  /** https://127.0.0.1:PORT */
  base: string;
  /** https://127.0.0.1:PORT/.well-known/est */
  est: string;
  /** Scratch folder for keys, CSRs and certificates. */
  work: string;
  /** PEM files of our root and default issuing CA. */
  rootPem: string;
  issuingPem: string;
  org: string;
  file(name: string): string;
  close(): Promise<void>;
}

export interface EstEnvOptions {
  clock?: Clock;
  org?: string;
  /** Edits fleetpki.json before the context is opened (labels, profiles, registry). */
  config?: (c: FleetConfig) => void;
  /** Runs on the opened context before the server starts (extra CAs, trust). */
  setup?: (ctx: FleetContext) => Promise<void>;
}

export async function startEstEnv(o: EstEnvOptions = {}): Promise<EstEnv> {
  const org = o.org ?? 'Test Fleet';
  const d = await makeDataDir({ clock: o.clock, org });
  await d.ctx.close();
  const cfgPath = join(d.dir, CONFIG_FILE);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as FleetConfig;
  o.config?.(cfg);
  writeFileSync(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  const ctx = await openContext(d.dir, { clock: o.clock });
  let server: RunningServer;
  try {
    await o.setup?.(ctx);
    // Tests reload client trust themselves (server.refreshTrust()), so the
    // 10-second timer cannot change it under them on a slow machine.
    server = await startServer(ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0', trustRefreshMs: 3_600_000 });
  } catch (e) {
    await ctx.close().catch(() => undefined);
    await d.cleanup();
    throw e;
  }
  const work = tempDir('fleetpki-est-');
  const file = (name: string) => join(work, name);
  const cas = await ctx.store.listCas();
  writeFileSync(file('root.pem'), pemEncode('CERTIFICATE', cas.find((c) => c.name === 'root')!.certDer));
  writeFileSync(file('issuing.pem'), pemEncode('CERTIFICATE', cas.find((c) => c.name === ctx.config.defaultCa)!.certDer));
  return {
    dir: d.dir,
    ctx,
    server,
    base: server.httpsUrl,
    est: `${server.httpsUrl}/.well-known/est`,
    work,
    rootPem: file('root.pem'),
    issuingPem: file('issuing.pem'),
    org,
    file,
    async close() {
      await server.close();
      await ctx.close().catch(() => undefined);
      await d.cleanup();
      await run('rm', ['-rf', work]);
    },
  };
}

// ------------------------------------------------------------------ registry

/** Registers a device through the registry (as the CLI/API would); returns its one-time secret. */
export async function registerDevice(ctx: FleetContext, input: Partial<DeviceInput> & { id: string }, withSecret = true): Promise<string> {
  const { secret } = await ctx.registry.register({ profile: 'device-tls', ...input }, 'test:operator', withSecret);
  return secret ?? '';
}

/** Runs the real `fleetpki` CLI without blocking the event loop. */
export function fleetpkiAsync(args: string[], env?: Record<string, string | undefined>) {
  return run(process.execPath, [BIN, ...args], '', 60_000, env);
}

function withEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const e: Record<string, string | undefined> = { ...process.env, ...extra };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return e as NodeJS.ProcessEnv;
}

/** Number of certificates in the store (all pages). */
export async function certCount(ctx: FleetContext): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const page = await ctx.store.listCertificates({ limit: 1000, afterSerial: after });
    n += page.length;
    if (page.length < 1000) return n;
    after = page[page.length - 1].serial;
  }
}

/** The sequence number of the newest audit entry. */
export async function auditHead(ctx: FleetContext): Promise<number> {
  let seq = 0;
  for (;;) {
    const page = await ctx.store.listAudit({ afterSeq: seq, limit: 1000 });
    if (page.length) seq = page[page.length - 1].seq;
    if (page.length < 1000) return seq;
  }
}

export async function auditSince(ctx: FleetContext, seq: number, action?: string): Promise<AuditEntry[]> {
  return ctx.store.listAudit({ afterSeq: seq, action, limit: 1000 });
}

// ------------------------------------------------------------------- clients

/** A device with a one-time enrollment secret and its CSR (DER). */
export interface SecretDevice {
  id: string;
  secret: string;
  csr: Uint8Array;
}

/**
 * EST /simpleenroll with the device's one-time secret (HTTP Basic), on a
 * connection of its own (agent: false), trusting only `rootPem`. A failed
 * exchange is status 0 with its error, as a device sees it; with
 * `timeoutMs` the device gives up on an answer that does not come.
 */
export function simpleEnroll(httpsUrl: string, rootPem: string, d: SecretDevice, timeoutMs = 0): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const u = new URL(`${httpsUrl}/.well-known/est/simpleenroll`);
    const fail = (e: Error) => resolve({ status: 0, body: e.message });
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', ca: rootPem, agent: false, auth: `${d.id}:${d.secret}`, headers: { 'content-type': 'application/pkcs10' } },
      (res) => {
        let body = '';
        res.on('data', (b) => (body += b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', fail);
      },
    );
    req.on('error', fail);
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.end(Buffer.from(d.csr).toString('base64'));
  });
}

export interface HttpAnswer {
  status: number;
  /** Lowercase header names, of the last response (after any 100 Continue). */
  headers: Record<string, string>;
  body: string;
  stderr: string;
}

export interface CurlOptions {
  method?: 'GET' | 'POST';
  /** Path to a file sent byte for byte (--data-binary @file). */
  dataFile?: string;
  /** Body text sent byte for byte (via stdin). */
  body?: string;
  contentType?: string;
  /** "id:secret" for HTTP Basic. */
  user?: string;
  cert?: string;
  key?: string;
  headers?: string[];
}

/**
 * Sends a bad EST request and checks the refusal: the status, a text/plain
 * reason (RFC 7030 §4.2.3), nothing issued, and exactly one
 * `enrollment.refuse` audit entry with `code`.
 */
export async function estRefused(env: EstEnv, send: () => Promise<HttpAnswer>, status: number, code: string, reason?: RegExp): Promise<HttpAnswer> {
  const certsBefore = await certCount(env.ctx);
  const seq = await auditHead(env.ctx);
  const r = await send();
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.body.slice(0, 120)}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain/, 'RFC 7030 §4.2.3: a human-readable reason');
  assert.ok(r.body.trim().length > 0, 'the reason is not empty');
  if (reason) assert.match(r.body, reason);
  assert.equal(await certCount(env.ctx), certsBefore, 'nothing issued');
  assert.equal((await auditSince(env.ctx, seq, 'certificate.issue')).length, 0, 'no issue audit entry');
  const refusals = await auditSince(env.ctx, seq, 'enrollment.refuse');
  assert.equal(refusals.length, 1, `one enrollment.refuse audit entry (got ${refusals.length})`);
  assert.equal(refusals[0].details.code, code);
  return r;
}

/** One HTTPS request with the curl CLI, trusting only our root. */
export async function curl(env: EstEnv, path: string, o: CurlOptions = {}): Promise<HttpAnswer> {
  const tag = Math.random().toString(36).slice(2);
  const bodyFile = env.file(`curl-${tag}.body`);
  const headFile = env.file(`curl-${tag}.head`);
  const url = path.startsWith('https://') ? path : `${env.base}${path}`;
  const args = ['-s', '-S', '--cacert', env.rootPem, '-o', bodyFile, '-D', headFile, '-w', '%{http_code}'];
  const post = o.method === 'POST' || o.dataFile !== undefined || o.body !== undefined;
  if (post) args.push('-X', 'POST');
  if (o.dataFile !== undefined) args.push('--data-binary', `@${o.dataFile}`);
  else if (o.body !== undefined) args.push('--data-binary', '@-');
  if (o.contentType !== undefined) args.push('-H', `Content-Type: ${o.contentType}`);
  if (o.user !== undefined) args.push('--user', o.user);
  if (o.cert) args.push('--cert', o.cert);
  if (o.key) args.push('--key', o.key);
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(url);
  const r = await run('curl', args, o.body ?? '');
  if (r.status === 0 && !/^\d{3}$/.test(r.stdout)) assert.fail(`curl printed no status: ${r.stdout} ${r.stderr}`);
  assert.equal(r.status, 0, `curl failed: ${r.stderr}`);
  const blocks = readFileSync(headFile, 'utf8').split(/\r?\n\r?\n/).filter((b) => b.trim());
  const headers: Record<string, string> = {};
  for (const line of (blocks[blocks.length - 1] ?? '').split(/\r?\n/).slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(r.stdout), headers, body: readFileSync(bodyFile, 'utf8'), stderr: r.stderr };
}

/**
 * strongSwan's pki, by absolute path: under `npm test` node_modules/.bin is
 * first on PATH, and node-opcua-pki installs a `pki` command of its own there.
 */
export const STRONGSWAN_PKI = '/usr/bin/pki';

/** strongSwan pki, with the plugin/TPM noise dropped from stderr. */
export async function pki(args: string[], timeoutMs = 40_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await run(STRONGSWAN_PKI, args, '', timeoutMs);
  const stderr = r.stderr
    .split('\n')
    .filter((l) => l && !/plugin|TPM 2\.0|libtss2|tcti/.test(l))
    .join('\n');
  return { ...r, stderr };
}

export async function openssl(args: string[], input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return run('openssl', args, input);
}

async function ok(p: Promise<{ status: number | null; stdout: string; stderr: string }>, what: string) {
  const r = await p;
  assert.equal(r.status, 0, `${what} failed: ${r.stderr}`);
  return r;
}

/** A new P-256 private key (PEM) at `path`. */
export async function ecKey(path: string, curve = 'P-256'): Promise<string> {
  await ok(openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-out', path]), 'openssl genpkey');
  return path;
}

/**
 * A CSR for `keyPath` with the openssl CLI; returns the paths of the DER and
 * of the body as curl sends it (base64 of the DER, one line).
 */
export async function opensslCsrB64(env: EstEnv, name: string, keyPath: string, subj: string, san?: string): Promise<{ der: string; b64: string }> {
  const der = env.file(`${name}.csr.der`);
  const args = ['req', '-new', '-key', keyPath, '-subj', subj, '-outform', 'DER', '-out', der];
  if (san) args.push('-addext', `subjectAltName=${san}`);
  await ok(openssl(args), 'openssl req');
  const b64 = env.file(`${name}.csr.b64`);
  writeFileSync(b64, readFileSync(der).toString('base64'));
  return { der, b64 };
}

/** The certificates of a base64 certs-only PKCS#7 body, via `openssl pkcs7 -print_certs`, as PEM strings. */
export async function certsOfPkcs7(env: EstEnv, base64Body: string): Promise<string[]> {
  const f = env.file(`p7-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(f, Buffer.from(base64Body.replace(/\s+/g, ''), 'base64'));
  const r = await ok(openssl(['pkcs7', '-inform', 'DER', '-in', f, '-print_certs']), 'openssl pkcs7');
  return r.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];
}

export function certOfPem(pem: string): CertInfo {
  const blocks = pemDecodeAll(pem).filter((b) => b.label === 'CERTIFICATE');
  assert.ok(blocks.length >= 1, 'a PEM certificate');
  return parseCertificate(blocks[0].der);
}

/** `openssl verify -x509_strict -purpose sslclient` against root + an intermediate. */
export async function verifyClientCert(env: EstEnv, certPem: string, issuingPemFile = env.issuingPem): Promise<void> {
  const f = env.file(`verify-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(f, certPem);
  const r = await openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', env.rootPem, '-untrusted', issuingPemFile, f]);
  assert.equal(r.status, 0, `openssl verify: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /: OK/);
}

/** SPKI DER (base64) of a PEM key or certificate, computed by openssl. */
export async function spkiOf(path: string, kind: 'key' | 'cert' | 'der-key'): Promise<string> {
  const args =
    kind === 'cert' ? ['x509', '-in', path, '-noout', '-pubkey'] : kind === 'key' ? ['pkey', '-in', path, '-pubout'] : ['pkey', '-inform', 'DER', '-in', path, '-pubout'];
  const r = await ok(openssl(args), `openssl ${args[0]}`);
  return r.stdout.replace(/-----[^-]+-----|\s+/g, '');
}

/** The registry's subject for a device: O=<org>, serialNumber=<id>, CN=<id>. */
export function registrySubject(org: string, id: string) {
  return [
    { type: 'O', value: org },
    { type: 'serialNumber', value: id },
    { type: 'CN', value: id },
  ];
}

/**
 * A stand-in manufacturer: a self-signed CA and IDevID leaves with the device
 * serial number in the subject, made with the openssl CLI.
 */
export async function makeManufacturer(env: EstEnv, name: string): Promise<{ rootPem: string; idevid(deviceId: string): Promise<{ cert: string; key: string }> }> {
  const key = await ecKey(env.file(`${name}-root.key`));
  const rootPem = env.file(`${name}-root.pem`);
  await ok(
    openssl([
      'req', '-x509', '-new', '-key', key, '-subj', `/O=${name}/CN=${name} Manufacturer Root`, '-days', '3650', '-out', rootPem,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]),
    'openssl req -x509',
  );
  return {
    rootPem,
    async idevid(deviceId: string) {
      const leafKey = await ecKey(env.file(`${name}-${deviceId}.idevid.key`));
      const csr = env.file(`${name}-${deviceId}.idevid.csr`);
      await ok(openssl(['req', '-new', '-key', leafKey, '-subj', `/O=${name}/serialNumber=${deviceId}/CN=${name} Sensor`, '-out', csr]), 'openssl req');
      const ext = env.file(`${name}-idevid.ext`);
      writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      const cert = env.file(`${name}-${deviceId}.idevid.pem`);
      await ok(openssl(['x509', '-req', '-in', csr, '-CA', rootPem, '-CAkey', key, '-CAcreateserial', '-days', '3650', '-extfile', ext, '-out', cert]), 'openssl x509 -req');
      return { cert, key: leafKey };
    },
  };
}
