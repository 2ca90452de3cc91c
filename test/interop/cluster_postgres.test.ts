/**
 * Scale-out (issue 11): two `fleetpki serve` processes, stateless, sharing
 * one PostgreSQL database and one key store (a copy of the data directory,
 * as a deployment would share an HSM or key files). One node at a time
 * publishes CRLs (the store's lease); both serve the same CRL bytes; when
 * the publishing node is killed, the other takes over within the lease. A
 * node killed in the middle of enrollments leaves no certificate without a
 * record, and every device's retry on the other node succeeds with the
 * certificate that was committed for it (never a second one).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { generateKeyPairSync } from 'node:crypto';
import { request } from 'node:https';
import { keyObjectSigner } from '../../src/keys/key_store.js';
import { openContext } from '../../src/server/context.js';
import { openStore } from '../../src/store/open_store.js';
import { buildCsr } from '../../src/x509/csr_builder.js';
import { pemEncode } from '../../src/x509/pem.js';
import type { Store } from '../../src/store/store.js';
import { BIN, fleetpki, opensslCsr, run, tempDir } from '../helpers/data_dir.js';
import { simpleEnroll } from '../helpers/est.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

interface Node {
  proc: ChildProcess;
  httpUrl: string;
  httpsUrl: string;
  log: () => string;
}

async function startNode(dir: string): Promise<Node> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const http = /CA certs\s+(http:\/\/\S+)\/ca\//.exec(err);
    const https = /admin API\s+(https:\/\/\S+)\/api\/v1/.exec(err);
    if (http && https) return { proc, httpUrl: http[1], httpsUrl: https[1], log: () => err };
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`node did not start: ${err}`);
    await sleep(50);
  }
}

describe('two fleetpki nodes on one PostgreSQL', () => {
  let pg: TestPostgres;
  let store: Store;
  const work = tempDir('fleetpki-cluster-');
  const f = (n: string) => join(work, n);
  const dirs = [f('node-a'), f('node-b')];
  const nodes: Node[] = [];
  const D = ['--dir', dirs[0]];

  const crlOf = async (n: Node) => Buffer.from(await (await fetch(`${n.httpUrl}/crl/issuing.crl`)).arrayBuffer());
  const lists = async (crl: Buffer, serial: string) => {
    writeFileSync(f('probe.crl'), crl);
    const text = (await run('openssl', ['crl', '-inform', 'DER', '-in', f('probe.crl'), '-noout', '-text'])).stdout;
    return text.includes(`Serial Number: ${serial.toUpperCase()}`);
  };
  /** Who published CRLs since audit entry `afterSeq`: the pids in their actors (system:crl@host:pid:nonce). */
  const publishers = async (afterSeq: number) =>
    new Set((await store.listAudit({ afterSeq, action: 'crl.publish', limit: 1000 })).map((e) => Number(e.actor.split(':')[2])));
  function issueAndRevoke(name: string): string {
    const { csrPath } = opensslCsr(work, name);
    const issued = fleetpki(['cert', 'issue', ...D, '--csr', csrPath, '--profile', 'device-tls', '--json']);
    assert.equal(issued.status, 0, issued.stderr);
    const serial = JSON.parse(issued.stdout).serial as string;
    const r = fleetpki(['cert', 'revoke', serial, '--reason', 'keyCompromise', ...D]);
    assert.equal(r.status, 0, r.stderr);
    return serial;
  }

  before(async () => {
    pg = await startTestPostgres();
    const url = await pg.createTestDatabase();
    const init = fleetpki(['init', ...D, '--org', 'Cluster Fleet', '--store', url]);
    assert.equal(init.status, 0, init.stderr);
    const cfgFile = join(dirs[0], 'fleetpki.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    cfg.crl = { ...cfg.crl, checkIntervalSeconds: 1 };
    cfg.server = { ...cfg.server, leaseSeconds: 3 };
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    cpSync(dirs[0], dirs[1], { recursive: true });
    store = await openStore(url);
    nodes.push(await startNode(dirs[0]), await startNode(dirs[1]));
  });
  after(async () => {
    for (const n of nodes) n.proc.kill('SIGKILL');
    await store?.close();
    await pg?.stop();
    await run('rm', ['-rf', work]);
  });

  it('one node publishes; both serve the same CRL bytes, with a revocation made by the CLI', async () => {
    const since = await store.lastAuditSeq();
    const serial = issueAndRevoke('dev-1');
    const deadline = Date.now() + 20_000;
    let a = Buffer.alloc(0);
    let b = Buffer.alloc(0);
    while (Date.now() < deadline) {
      [a, b] = [await crlOf(nodes[0]), await crlOf(nodes[1])];
      if ((await lists(a, serial)) && a.equals(b)) break;
      await sleep(200);
    }
    assert.ok(await lists(a, serial), 'the revocation reached the CRL');
    assert.ok(a.equals(b), 'both nodes serve the same bytes');
    const who = await publishers(since);
    assert.equal(who.size, 1, `one publisher, not ${[...who].join(', ')}`);
    assert.ok(nodes.some((n) => who.has(n.proc.pid!)));
  });

  it('a console session opened on one node is served by the other; signing out there ends it on both', async () => {
    const root = pemEncode('CERTIFICATE', (await store.getCa('root'))!.certDer);
    const ctx = await openContext(dirs[0]);
    let token: string;
    try {
      token = (await ctx.operators.createToken({ name: 'console-op', role: 'ra-officer', actor: 'test' })).token;
    } finally {
      await ctx.close();
    }
    const call = (n: Node, method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
      new Promise<{ status: number; body: string; setCookie?: string }>((resolve, reject) => {
        const u = new URL(`${n.httpsUrl}${path}`);
        const req = request({ host: u.hostname, port: u.port, path: u.pathname, method, ca: root, agent: false, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
          let text = '';
          res.on('data', (b) => (text += b));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, setCookie: res.headers['set-cookie']?.[0] }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(body);
      });
    const signIn = await call(nodes[0], 'POST', '/console/session', {}, JSON.stringify({ token }));
    assert.equal(signIn.status, 200, signIn.body);
    const cookie = signIn.setCookie!.split(';')[0];
    const { csrf } = JSON.parse(signIn.body) as { csrf: string };
    const onB = await call(nodes[1], 'GET', '/api/v1/devices', { cookie });
    assert.equal(onB.status, 200, onB.body);
    assert.equal((await call(nodes[1], 'DELETE', '/console/session', { cookie, 'x-csrf-token': csrf })).status, 204);
    assert.equal((await call(nodes[0], 'GET', '/api/v1/devices', { cookie })).status, 401);
  });

  it('the publishing node is killed: the other takes over within the lease and publishes the next revocation', async () => {
    const since0 = (await store.listAudit({ action: 'crl.publish', limit: 1000 })).at(-1)!.seq - 1;
    const leader = [...(await publishers(since0))][0];
    const dead = nodes.find((n) => n.proc.pid === leader)!;
    const survivor = nodes.find((n) => n !== dead)!;
    dead.proc.kill('SIGKILL');
    const since = await store.lastAuditSeq();
    const serial = issueAndRevoke('dev-2');
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !(await lists(await crlOf(survivor), serial))) await sleep(200);
    assert.ok(await lists(await crlOf(survivor), serial), `the survivor published the revocation\n${survivor.log()}`);
    assert.deepEqual([...(await publishers(since))], [survivor.proc.pid]);
  });

  it('a node killed amid 30 enrollments: every certificate is recorded, and each device retrying on the other node gets its own, once', async (t) => {
    // A node for the first dir again (the previous test killed one of the two).
    for (const [i, n] of nodes.entries()) if (n.proc.exitCode !== null || n.proc.signalCode !== null) nodes[i] = await startNode(dirs[i]);
    const [victim, other] = nodes;
    const root = pemEncode('CERTIFICATE', (await store.getCa('root'))!.certDer);
    const ctx = await openContext(dirs[0]);
    const devices: Array<{ id: string; secret: string; csr: Buffer }> = [];
    try {
      for (let i = 0; i < 30; i++) {
        const id = `kill-${i}`;
        const { secret } = await ctx.registry.register({ id, profile: 'device-tls' }, 'test', true);
        const signer = keyObjectSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
        devices.push({ id, secret: secret!, csr: Buffer.from(await buildCsr({ subject: [{ type: 'CN', value: id }] }, signer)) });
      }
    } finally {
      await ctx.close();
    }
    const enroll = (n: Node, d: (typeof devices)[number]) => simpleEnroll(n.httpsUrl, root, d);
    const first = devices.map((d) => enroll(victim, d));
    // Kill it while the enrollments run: some answered, some committed but not answered, some not begun.
    await Promise.race([first[0], sleep(3000)]);
    victim.proc.kill('SIGKILL');
    const answers = await Promise.all(first);
    const lost = devices.filter((_, i) => answers[i].status !== 200);
    assert.ok(lost.length > 0, 'the kill cut some enrollments off');
    // Every certificate in the store belongs to a device of this test and is its current one.
    const certs = (await store.listCertificates({ profile: 'device-tls', limit: 1000 })).filter((c) => c.deviceId?.startsWith('kill-'));
    for (const c of certs) assert.equal((await store.getDevice(c.deviceId!))?.currentSerial, c.serial);
    const committedUnanswered = lost.filter((d) => certs.some((c) => c.deviceId === d.id)).length;
    t.diagnostic(`${devices.length - lost.length} answered, ${committedUnanswered} committed but unanswered, ${lost.length - committedUnanswered} not committed`);
    // The lost ones retry on the other node, with the same secret and key.
    for (const d of lost) {
      const r = await enroll(other, d);
      assert.equal(r.status, 200, `${d.id}: ${r.body}`);
    }
    const after = (await store.listCertificates({ profile: 'device-tls', limit: 1000 })).filter((c) => c.deviceId?.startsWith('kill-'));
    assert.equal(after.length, devices.length, 'one certificate per device: retries of committed enrollments got the same one');
    for (const d of devices) assert.ok((await store.getDevice(d.id))?.currentSerial);
  });
});
