/**
 * EST over mutual TLS (issue 11): `fleetpki serve` in a process of its own,
 * driven by bench/est_client.ts (another process) with a new TLS connection
 * per device, beside a bare node:https server that asks for and verifies
 * the same client certificates, with the same server key and certificate,
 * and answers every request with a fixed EST body: the ceiling for a server
 * that must do a mutual-TLS handshake per device.
 *
 *   est-simpleenroll-new-tls       devices bootstrap with a manufacturer
 *                                  certificate (IDevID) over a full handshake
 *                                  each; fleetpki checks, issues and commits
 *   est-simplereenroll-resumed-tls devices renew with their operational
 *                                  certificate on a connection that resumes
 *                                  an earlier TLS session
 *
 * Every answer must be 200, every resumed connection must really resume,
 * and the certificates issued must be in the store and verify.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCertsOnly } from '../src/agent/est_client.js';
import { keyObjectSigner } from '../src/keys/key_store.js';
import { parseDeviceFile } from '../src/registry/device_file.js';
import { initDataDir } from '../src/server/context.js';
import { ensureTlsIdentity } from '../src/server/tls_identity.js';
import { buildCsr } from '../src/x509/csr_builder.js';
import type { DnAttribute } from '../src/x509/names.js';
import { pemEncode } from '../src/x509/pem.js';
import type { EstJob, EstJobDevice } from './est_client.js';
import { result, type Result } from './lib/report.js';
import { background, freePort, waitFor, type Background } from './lib/proc.js';

const BIN = fileURLToPath(new URL('../bin/fleetpki.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('./est_client.ts', import.meta.url));
/** Devices enrolling at once. */
const CONCURRENCY = 16;
const ORG = 'Bench Fleet';

interface Device {
  id: string;
  idevid: { cert: string; key: string };
  enrollCsr: string;
  /** The key of enrollCsr: the operational certificate's. */
  enrollKey: string;
  renewCsr: string;
  operational?: { cert: string; key: string };
}

interface ClientRun {
  rate: number;
  ok: number;
  failed: number;
  resumed: number;
  firstError?: string;
}

const keyPem = (k: ReturnType<typeof generateKeyPairSync>['privateKey']) => k.export({ format: 'pem', type: 'pkcs8' }) as string;

async function csrB64(subject: DnAttribute[]): Promise<{ b64: string; key: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await buildCsr({ subject }, keyObjectSigner(privateKey));
  return { b64: Buffer.from(der).toString('base64'), key: keyPem(privateKey) };
}

/** Whether something accepts TCP connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function runClient(work: string, name: string, job: EstJob): ClientRun {
  const file = join(work, `${name}.job.json`);
  writeFileSync(file, JSON.stringify(job));
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLIENT, file], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`the EST client (${name}) failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as ClientRun;
  if (out.failed) throw new Error(`${name}: ${out.failed} of ${job.devices.length} requests failed (${out.firstError})`);
  if (job.phase === 'resume' && out.resumed !== job.devices.length) throw new Error(`${name}: only ${out.resumed} of ${job.devices.length} connections resumed their TLS session`);
  return out;
}

export async function estScenarios(quick: boolean): Promise<Result[]> {
  const n = quick ? 150 : 2000;
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-est-'));
  const f = (name: string) => join(work, name);
  const running: Background[] = [];
  try {
    // The manufacturer: a CA of its own that issues one IDevID per device.
    const { ctx: mfr } = await initDataDir({ dir: f('mfr'), org: 'Bench Maker', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825 });
    const mfrIssuing = pemEncode('CERTIFICATE', (await mfr.store.getCa(mfr.config.defaultCa))!.certDer);
    const mfrRoot = pemEncode('CERTIFICATE', (await mfr.store.getCa('root'))!.certDer);
    const devices: Device[] = [];
    for (let i = 0; i < n; i++) {
      const id = `est-${String(i).padStart(5, '0')}`;
      const boot = await csrB64([{ type: 'CN', value: 'bootstrap' }]);
      const idevid = await mfr.authority.issue({ csr: Buffer.from(boot.b64, 'base64'), profile: 'device-tls', subject: [{ type: 'O', value: 'Bench Maker' }, { type: 'serialNumber', value: id }, { type: 'CN', value: 'Bench sensor' }], actor: 'bench' });
      const enroll = await csrB64([{ type: 'CN', value: id }]);
      const renew = await csrB64([{ type: 'O', value: ORG }, { type: 'serialNumber', value: id }, { type: 'CN', value: id }]);
      devices.push({ id, idevid: { cert: idevid.pem + mfrIssuing, key: boot.key }, enrollCsr: enroll.b64, enrollKey: enroll.key, renewCsr: renew.b64 });
    }
    await mfr.close();

    // fleetpki: the devices registered, the manufacturer trusted.
    const [httpsPort, httpPort, barePort] = [await freePort(), await freePort(), await freePort()];
    const { ctx } = await initDataDir({ dir: f('data'), org: ORG, keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825, listen: `127.0.0.1:${httpsPort}`, httpListen: `127.0.0.1:${httpPort}` });
    await ctx.registry.addManufacturerCa(mfrIssuing + mfrRoot, 'bench');
    const csv = `id,profile\n${devices.map((d) => `${d.id},device-tls`).join('\n')}\n`;
    const imported = await ctx.registry.importDevices(parseDeviceFile(csv, 'csv').rows, 'bench');
    if (imported.inserted !== n) throw new Error(`registered ${imported.inserted} of ${n} devices`);
    const identity = await ensureTlsIdentity(ctx);
    const root = pemEncode('CERTIFICATE', (await ctx.store.getCa('root'))!.certDer);
    const issuingDer = (await ctx.store.getCa(ctx.config.defaultCa))!.certDer;
    const issuing = pemEncode('CERTIFICATE', issuingDer);
    await ctx.close();

    const server = background(process.execPath, [BIN, 'serve', '--dir', f('data'), '--log-level', 'warn'], f('serve.log'));
    running.push(server);
    const base = `https://127.0.0.1:${httpsPort}/.well-known/est`;
    await waitFor('fleetpki serve', async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok, server);

    const enrollJob = (url: string, saveTo?: string): EstJob => ({
      phase: 'enroll',
      base: url,
      ca: root,
      concurrency: CONCURRENCY,
      devices: devices.map((d): EstJobDevice => ({ id: d.id, cert: d.idevid.cert, key: d.idevid.key, csr: d.enrollCsr })),
      saveTo,
    });
    const oursEnroll = runClient(work, 'fleetpki-enroll', enrollJob(base, f('enrolled.json')));
    const enrolled = JSON.parse(readFileSync(f('enrolled.json'), 'utf8')) as Record<string, string>;
    const issuer = new X509Certificate(Buffer.from(issuingDer));
    for (const d of devices) {
      const [der] = parseCertsOnly(Buffer.from(enrolled[d.id], 'base64'));
      const cert = new X509Certificate(Buffer.from(der));
      if (!cert.verify(issuer.publicKey) || !cert.subject.includes(`CN=${d.id}`)) throw new Error(`${d.id}: the certificate enrolled does not verify or names another device`);
      d.operational = { cert: cert.toString() + issuing, key: d.enrollKey };
    }
    const renewJob = (url: string): EstJob => ({
      phase: 'resume',
      base: url,
      ca: root,
      concurrency: CONCURRENCY,
      devices: devices.map((d): EstJobDevice => ({ id: d.id, cert: d.operational!.cert, key: d.operational!.key, csr: d.renewCsr })),
    });
    const oursRenew = runClient(work, 'fleetpki-renew', renewJob(base));
    await server.stop();

    // The ceiling: node:https with the same identity and client trust, a fixed answer.
    writeFileSync(f('bare.json'), JSON.stringify({ key: identity.keyPem, cert: identity.certPem, ca: [mfrIssuing, mfrRoot, issuing, root], body: enrolled[devices[0].id] }));
    const bareCode = `const o = JSON.parse(require('fs').readFileSync(${JSON.stringify(f('bare.json'))}, 'utf8'));
      require('https').createServer({ key: o.key, cert: o.cert, ca: o.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (req, res) => {
        req.resume();
        req.on('end', () => { res.writeHead(200, { 'content-type': 'application/pkcs7-mime; smime-type=certs-only', 'content-transfer-encoding': 'base64' }); res.end(o.body); });
      }).listen(${barePort}, '127.0.0.1');`;
    const bare = background(process.execPath, ['-e', bareCode], f('bare.log'));
    running.push(bare);
    const bareBase = `https://127.0.0.1:${barePort}/.well-known/est`;
    await waitFor('bare node:https', () => listening(barePort), bare);
    const bareEnroll = runClient(work, 'bare-enroll', enrollJob(bareBase));
    const bareRenew = runClient(work, 'bare-renew', renewJob(bareBase));
    await bare.stop();

    const note = `${n} devices, ${CONCURRENCY} at a time, client (Node https, a connection each) on the same 2 cores; P-256 certificates; SQLite synchronous=FULL`;
    return [
      result('est-simpleenroll-new-tls', oursEnroll.rate, 'enroll/s', 'higher', 'bare node:https, mutual TLS, fixed answer', bareEnroll.rate, `${note}; target ≥ 0.7 of bare`),
      result('est-simplereenroll-resumed-tls', oursRenew.rate, 'enroll/s', 'higher', 'bare node:https, resumed mutual TLS, fixed answer', bareRenew.rate, `${note}; every connection resumed its TLS session`),
    ];
  } finally {
    await Promise.all(running.map((b) => b.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}
