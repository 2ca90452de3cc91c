/**
 * The EST load generator of bench/est.ts, in a process of its own: many
 * devices, each on a TLS connection of its own (no keep-alive, no shared
 * agent), `concurrency` at a time. The same client drives fleetpki and the
 * bare baseline server, so only the server differs.
 *
 *   node --import tsx bench/est_client.ts JOB.json
 *
 * The job names the phase:
 *   enroll   POST {base}/simpleenroll with the device's bootstrap
 *            certificate: a full mutual-TLS handshake per device;
 *   resume   first (not timed) a full handshake per device with its
 *            operational certificate, keeping the TLS session; then, timed,
 *            POST {base}/simplereenroll on a new connection that resumes
 *            that session (RFC 8446 §2.2, RFC 5077): no certificate is sent
 *            or verified again.
 * Prints one JSON line: {rate, ok, failed, resumed, firstError}; with
 * `saveTo`, the answers' bodies (base64 certs-only) by device.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { ConnectionOptions } from 'node:tls';

export interface EstJobDevice {
  id: string;
  /** PEM: the leaf and its issuing CA. */
  cert: string;
  key: string;
  /** The request body: base64 of the DER CSR (RFC 8951). */
  csr: string;
}

export interface EstJob {
  phase: 'enroll' | 'resume';
  /** https://127.0.0.1:PORT/.well-known/est */
  base: string;
  ca: string;
  concurrency: number;
  devices: EstJobDevice[];
  saveTo?: string;
}

interface Answer {
  status: number;
  body: string;
  resumed: boolean;
  session?: Buffer;
}

function call(job: EstJob, d: EstJobDevice, method: 'GET' | 'POST', path: string, session?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const req = request(
      `${job.base}${path}`,
      <RequestOptions>{
        method,
        agent: false,
        ca: job.ca,
        cert: d.cert,
        key: d.key,
        // Passed on to tls.connect by the agent (agent: false makes one per request).
        ...({ session } as ConnectionOptions),
        headers: method === 'POST' ? { 'content-type': 'application/pkcs10', 'content-length': Buffer.byteLength(d.csr) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const socket = res.socket as import('node:tls').TLSSocket;
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1'), resumed: socket.isSessionReused(), session: ticket ?? socket.getSession() });
        });
        res.on('error', reject);
      },
    );
    // TLS 1.3 tickets arrive after the handshake, as 'session' events.
    req.on('socket', (s) => s.on('session', (t: Buffer) => (ticket = t)));
    req.on('error', reject);
    req.end(method === 'POST' ? d.csr : undefined);
  });
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i]);
    }),
  );
}

async function main(): Promise<void> {
  const job = JSON.parse(readFileSync(process.argv[2], 'utf8')) as EstJob;
  const sessions = new Map<string, Buffer>();
  if (job.phase === 'resume') {
    await pool(job.devices, job.concurrency, async (d) => {
      const a = await call(job, d, 'GET', '/cacerts');
      if (a.status !== 200 || !a.session) throw new Error(`${d.id}: the handshake for a session got HTTP ${a.status}`);
      sessions.set(d.id, a.session);
    });
  }
  const op = job.phase === 'enroll' ? '/simpleenroll' : '/simplereenroll';
  const saved: Record<string, string> = {};
  let ok = 0;
  let failed = 0;
  let resumed = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  await pool(job.devices, job.concurrency, async (d) => {
    try {
      const a = await call(job, d, 'POST', op, sessions.get(d.id));
      if (a.resumed) resumed++;
      if (a.status === 200) {
        ok++;
        if (job.saveTo) saved[d.id] = a.body;
      } else {
        failed++;
        firstError ??= `${d.id}: HTTP ${a.status} ${a.body.slice(0, 200)}`;
      }
    } catch (e) {
      failed++;
      firstError ??= `${d.id}: ${(e as Error).message}`;
    }
  });
  const ms = performance.now() - t0;
  if (job.saveTo) writeFileSync(job.saveTo, JSON.stringify(saved));
  process.stdout.write(`${JSON.stringify({ rate: (ok * 1000) / ms, ok, failed, resumed, firstError })}\n`);
}

await main();
