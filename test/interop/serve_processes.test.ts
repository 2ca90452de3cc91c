/**
 * `fleetpki serve --processes 2` on the embedded store (issue 11: one node
 * on both cores): two server processes on the same listeners and the same
 * SQLite file, under one supervising primary. Enrollments over new
 * connections are spread over both and each gets its own serial; one
 * process publishes CRLs; a process killed amid enrollments is replaced
 * and the devices' retries succeed, once each; SIGTERM stops them all; a
 * process that cannot start stops the server with its error, and so does
 * a crash loop.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { keyObjectSigner } from '../../src/keys/key_store.js';
import { openContext } from '../../src/server/context.js';
import { buildCsr } from '../../src/x509/csr_builder.js';
import { pemEncode } from '../../src/x509/pem.js';
import { BIN, fleetpki, opensslCsr, run, tempDir } from '../helpers/data_dir.js';
import { simpleEnroll, type SecretDevice } from '../helpers/est.js';

interface Server {
  proc: ChildProcess;
  httpUrl: string;
  httpsUrl: string;
  log: () => string;
}

function spawnServe(dir: string, extra: string[] = []): { proc: ChildProcess; log: () => string } {
  const proc = spawn(process.execPath, [BIN, 'serve', '--dir', dir, '--processes', '2', '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'warn', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  return { proc, log: () => err };
}

async function startServe(dir: string): Promise<Server> {
  const { proc, log } = spawnServe(dir);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const http = /CA certs\s+(http:\/\/\S+)\/ca\//.exec(log());
    const https = /admin API\s+(https:\/\/\S+)\/api\/v1/.exec(log());
    if (http && https) return { proc, httpUrl: http[1], httpsUrl: https[1], log };
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start: ${log()}`);
    await sleep(50);
  }
}

/** The server processes under the primary. */
function children(primary: ChildProcess): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(primary.pid), '-o', 'pid='], { encoding: 'utf8' }).split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

/** CPU time (user + system) of a process so far, in clock ticks (proc(5)). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

async function exited(proc: ChildProcess, ms: number): Promise<number | null> {
  const deadline = Date.now() + ms;
  while (proc.exitCode === null && proc.signalCode === null && Date.now() < deadline) await sleep(50);
  return proc.exitCode;
}

describe('fleetpki serve --processes 2 on the embedded store', () => {
  const work = tempDir('fleetpki-processes-');
  const dir = join(work, 'data');
  let server: Server;
  let root: string;
  type Device = SecretDevice;

  async function devices(prefix: string, n: number): Promise<Device[]> {
    const ctx = await openContext(dir);
    try {
      const out: Device[] = [];
      for (let i = 0; i < n; i++) {
        const id = `${prefix}-${i}`;
        const { secret } = await ctx.registry.register({ id, profile: 'device-tls' }, 'test', true);
        const signer = keyObjectSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
        out.push({ id, secret: secret!, csr: Buffer.from(await buildCsr({ subject: [{ type: 'CN', value: id }] }, signer)) });
      }
      return out;
    } finally {
      await ctx.close();
    }
  }

  const enroll = (d: Device) => simpleEnroll(server.httpsUrl, root, d, 5000);

  /** Certificates of the store by device, through a context of its own. */
  async function certsOf(prefix: string): Promise<Array<{ serial: string; deviceId?: string; current: boolean }>> {
    const ctx = await openContext(dir);
    try {
      const certs = (await ctx.store.listCertificates({ profile: 'device-tls', limit: 1000 })).filter((c) => c.deviceId?.startsWith(`${prefix}-`));
      return await Promise.all(certs.map(async (c) => ({ serial: c.serial, deviceId: c.deviceId, current: (await ctx.store.getDevice(c.deviceId!))?.currentSerial === c.serial })));
    } finally {
      await ctx.close();
    }
  }

  before(async () => {
    const init = fleetpki(['init', '--dir', dir, '--org', 'Processes Fleet']);
    assert.equal(init.status, 0, init.stderr);
    const cfgFile = join(dir, 'fleetpki.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    cfg.crl = { ...cfg.crl, checkIntervalSeconds: 1 };
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    server = await startServe(dir);
    const ctx = await openContext(dir);
    try {
      root = pemEncode('CERTIFICATE', (await ctx.store.getCa('root'))!.certDer);
    } finally {
      await ctx.close();
    }
  });
  after(async () => {
    if (server?.proc.exitCode === null) server.proc.kill('SIGKILL');
    for (const pid of server ? children(server.proc) : []) process.kill(pid, 'SIGKILL');
    await run('rm', ['-rf', work]);
  });

  it('says where once, for two processes under the primary', () => {
    assert.equal(server.log().match(/fleetpki serving/g)?.length, 1, server.log());
    assert.match(server.log(), /\(2 processes\)/);
    assert.equal(children(server.proc).length, 2);
  });

  it('30 enrollments at once, each on a new connection: spread over both processes, 30 serials, each its device\'s own', async () => {
    const ds = await devices('spread', 30);
    const pids = children(server.proc);
    const before = pids.map(cpuTicks);
    const answers = await Promise.all(ds.map(enroll));
    for (const [i, a] of answers.entries()) assert.equal(a.status, 200, `${ds[i].id}: ${a.body}`);
    // Each process spent CPU on them (TLS handshakes, checks, signatures): the connections were shared out.
    const spent = pids.map((p, i) => cpuTicks(p) - before[i]);
    for (const s of spent) assert.ok(s >= 2, `CPU ticks per process: ${spent.join(', ')}`);
    const certs = await certsOf('spread');
    assert.equal(certs.length, 30);
    assert.equal(new Set(certs.map((c) => c.serial)).size, 30, 'no serial twice');
    for (const c of certs) assert.ok(c.current, `${c.deviceId}: the recorded certificate is the device's current one`);
  });

  it('a revocation by the CLI reaches the CRL, published by one process', async () => {
    const { csrPath } = opensslCsr(work, 'crl-dev');
    const issued = fleetpki(['cert', 'issue', '--dir', dir, '--csr', csrPath, '--profile', 'device-tls', '--json']);
    assert.equal(issued.status, 0, issued.stderr);
    const serial = JSON.parse(issued.stdout).serial as string;
    const ctx = await openContext(dir);
    const since = await ctx.store.lastAuditSeq();
    await ctx.close();
    assert.equal(fleetpki(['cert', 'revoke', serial, '--reason', 'keyCompromise', '--dir', dir]).status, 0);
    const crlFile = join(work, 'probe.crl');
    const deadline = Date.now() + 20_000;
    let listed = false;
    while (!listed && Date.now() < deadline) {
      writeFileSync(crlFile, Buffer.from(await (await fetch(`${server.httpUrl}/crl/issuing.crl`)).arrayBuffer()));
      listed = (await run('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text'])).stdout.includes(`Serial Number: ${serial.toUpperCase()}`);
      if (!listed) await sleep(200);
    }
    assert.ok(listed, 'the revocation reached the CRL');
    const check = await openContext(dir);
    try {
      const publishers = new Set((await check.store.listAudit({ afterSeq: since, action: 'crl.publish', limit: 1000 })).map((e) => Number(e.actor.split(':')[2])));
      assert.equal(publishers.size, 1, `one publisher, not ${[...publishers].join(', ')}`);
      assert.ok(children(server.proc).includes([...publishers][0]), 'a process of this server published it');
    } finally {
      await check.close();
    }
  });

  it('a process killed amid 30 enrollments is replaced; every device retrying gets its certificate, once', async (t) => {
    const ds = await devices('kill', 30);
    const [victim] = children(server.proc);
    const first = ds.map(enroll);
    await Promise.race([first[0], sleep(3000)]);
    process.kill(victim, 'SIGKILL');
    const answers = await Promise.all(first);
    const lost = ds.filter((_, i) => answers[i].status !== 200);
    t.diagnostic(`${ds.length - lost.length} answered before and despite the kill, ${lost.length} cut off: ${[...new Set(answers.map((a) => a.body.slice(0, 40)).filter((b) => !b.startsWith('MII')))].join(' | ')}`);
    // The primary starts another process in the victim's place.
    const deadline = Date.now() + 30_000;
    let now = children(server.proc);
    while ((now.length !== 2 || now.includes(victim)) && Date.now() < deadline) {
      await sleep(100);
      now = children(server.proc);
    }
    assert.equal(now.length, 2, server.log());
    assert.ok(!now.includes(victim));
    assert.match(server.log(), new RegExp(`server process ${victim} exited \\(signal SIGKILL\\); starting another`));
    for (const d of lost) {
      const r = await enroll(d);
      assert.equal(r.status, 200, `${d.id}: ${r.body}`);
    }
    const certs = await certsOf('kill');
    assert.equal(certs.length, ds.length, 'one certificate per device: retries of committed enrollments got the same one');
    for (const c of certs) assert.ok(c.current);
  });

  it('a second server on the same listeners cannot start: it stops with the error, leaving no process behind', async () => {
    const port = new URL(server.httpUrl).port;
    const { proc, log } = spawnServe(dir, ['--http-listen', `127.0.0.1:${port}`]);
    const code = await exited(proc, 60_000);
    assert.notEqual(code, 0, log());
    assert.notEqual(code, null, `still running: ${log()}`);
    assert.match(log(), /EADDRINUSE/);
    assert.match(log(), /stopped before it listened/);
    // Orphans would no longer be the primary's children: look for them by their arguments.
    await sleep(500);
    const left = await run('pgrep', ['-f', '--', `--http-listen 127.0.0.1:${port}`]);
    assert.equal(left.status, 1, `no process of the failed server is left: ${left.stdout}${left.stderr}`);
  });

  it('a crash loop: the fifth process to die within a minute stops the server with exit code 1', async () => {
    const other = await startServe(dir);
    const killed = new Set<number>();
    try {
      const deadline = Date.now() + 90_000;
      // Every process, the first two and each replacement, is killed as soon as it is there.
      while (other.proc.exitCode === null && Date.now() < deadline) {
        for (const pid of children(other.proc)) {
          if (killed.has(pid)) continue;
          killed.add(pid);
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        await sleep(100);
      }
      assert.equal(other.proc.exitCode, 1, other.log());
      assert.match(other.log(), /starting another in 1 s/);
      assert.match(other.log(), /starting another in 8 s/, 'the delay doubles');
      assert.match(other.log(), /too many exits in a short time: stopping/);
      assert.equal(killed.size, 5, `five processes died: ${[...killed].join(', ')}`);
    } finally {
      if (other.proc.exitCode === null) other.proc.kill('SIGKILL');
    }
  });

  it('SIGTERM stops every process, and the primary exits 0', async () => {
    const pids = children(server.proc);
    server.proc.kill('SIGTERM');
    assert.equal(await exited(server.proc, 30_000), 0, server.log());
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `process ${pid} is gone`);
    assert.match(server.log(), /SIGTERM: stopping 2 processes/);
  });
});
