/**
 * `fleetpki demo`: the whole system in half a minute, on the embedded
 * default (SQLite, software keys) in a temporary directory. A server, and a
 * fleet of agents in this process that talk to it only over EST and HTTP:
 * they enroll, talk over mutual TLS within their domain, refuse a peer of the
 * other domain, renew their short-lived certificates, and stop accepting a
 * device once it is revoked.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Agent } from '../agent/agent.js';
import { refusalOf } from '../agent/peer.js';
import { clientTlsOptions, connectPeer, protectServer, serverTlsOptions } from '../agent/tls.js';
import { DEFAULT_PROFILES } from '../authority/profiles.js';
import { ProblemError } from '../errors.js';
import { CONFIG_FILE, type FleetConfig } from '../server/config.js';
import { initDataDir, openContext, type FleetContext } from '../server/context.js';
import { startServer, type RunningServer } from '../server/server.js';
import { pemEncode } from '../x509/pem.js';

export interface DemoOptions {
  keep?: boolean;
  devices?: number;
  /** Certificate lifetime in seconds (the demo waits for one renewal). */
  lifetimeSeconds?: number;
  out?: (line: string) => void;
}

export interface DemoResult {
  dir: string;
  httpsUrl: string;
  httpUrl: string;
  /** With keep: stops the server and removes the directory. */
  close(): Promise<void>;
}

interface Device {
  id: string;
  domain: string;
  agent: Agent;
  secret: string;
}

/** "sensor-b-01 ... is in plant-b, not in our plant-a (wrong_domain)" */
const why = (e: ProblemError) => `${e.detail.replace(/^peer refused \(\w+\): /, '')} (${refusalOf(e)})`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function inBatches<T, R>(items: T[], size: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

function waitFor<T>(what: string, ms: number, fn: (done: (v: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new ProblemError('internal', `demo: timed out waiting for ${what}`)), ms);
    fn((v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/** A control service: a TLS server with the agent's identity that accepts only authorised peers. */
async function controlService(d: Device, refusals: ProblemError[], log: string[]): Promise<{ server: TlsServer; port: number }> {
  const server = createTlsServer(serverTlsOptions(d.agent), (socket) => {
    socket.once('data', (b) => {
      log.push(b.toString('utf8').trim());
      socket.end('ok\n');
    });
  });
  protectServer(server, d.agent, { onRefused: (e) => refusals.push(e) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Connects as `d` to a control service and sends a reading; resolves to the refusal reason, if any. */
async function deliver(d: Device, port: number, o: { checkServer?: boolean } = {}): Promise<{ ok: true; peer: string } | { ok: false; reason: string; detail: string }> {
  try {
    // checkServer false: a device that skips its own check (a rogue one) and relies on the server's.
    const { socket, peer } =
      o.checkServer === false
        ? await new Promise<{ socket: TLSSocket; peer: { id: string } }>((resolve, reject) => {
            const s = tlsConnect({ ...clientTlsOptions(d.agent), checkServerIdentity: () => undefined, host: '127.0.0.1', port });
            s.once('secureConnect', () => resolve({ socket: s, peer: { id: 'the server' } }));
            s.once('error', reject);
          })
        : await connectPeer(d.agent, { host: '127.0.0.1', port });
    const answer = await new Promise<string>((resolve) => {
      let got = '';
      socket.on('data', (b) => (got += b));
      socket.on('close', () => resolve(got));
      socket.on('error', () => resolve(got));
      socket.write(`reading from ${d.id}: ${(20 + Math.random() * 5).toFixed(1)} °C\n`);
    });
    if (!answer.startsWith('ok')) return { ok: false, reason: 'closed', detail: `${peer.id} closed the connection` };
    return { ok: true, peer: peer.id };
  } catch (e) {
    return { ok: false, reason: refusalOf(e) ?? (e as NodeJS.ErrnoException).code ?? 'error', detail: (e as Error).message };
  }
}

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const say = o.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const n = Math.max(6, o.devices ?? 20); // two control services and at least two sensors per domain
  const lifetime = o.lifetimeSeconds ?? 20;
  const parent = mkdtempSync(join(tmpdir(), 'fleetpki-demo-'));
  const dir = join(parent, 'server');
  let ctx: FleetContext | undefined;
  let server: RunningServer | undefined;
  const agents: Device[] = [];
  const stops: Array<() => void | Promise<void>> = [];
  const cleanup = async () => {
    for (const s of stops.reverse()) await s();
    await server?.close();
    await ctx?.close().catch(() => undefined);
    rmSync(parent, { recursive: true, force: true });
  };
  try {
    const t0 = Date.now();
    const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    say(`fleetpki demo: a CA, an EST server and ${n} devices in two domains, on the embedded default in ${parent}`);

    // 1. The server: fleetpki init + serve, with certificates that live seconds instead of a year.
    const httpPort = await freePort();
    const init = await initDataDir({ dir, org: 'Demo Fleet', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825, listen: '127.0.0.1:0', httpListen: `127.0.0.1:${httpPort}` });
    await init.ctx.close();
    const cfg = JSON.parse(readFileSync(join(dir, CONFIG_FILE), 'utf8')) as FleetConfig;
    cfg.profiles['demo-device'] = { ...DEFAULT_PROFILES['device-tls'], description: `device-tls, ${lifetime} seconds (demo)`, validitySeconds: lifetime };
    cfg.issuance.backdateSeconds = 2;
    cfg.crl.checkIntervalSeconds = 1;
    writeFileSync(join(dir, CONFIG_FILE), `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
    ctx = await openContext(dir);
    server = await startServer(ctx);
    const rootPem = pemEncode('CERTIFICATE', (await ctx.store.listCas()).find((c) => c.name === 'root')!.certDer);
    say(`1. server up: EST and admin API on ${server.httpsUrl}, CRLs and CA certificates on ${server.httpUrl}`);

    // 2. Register devices (what an operator does) and let each agent enroll with its one-time secret.
    const half = Math.floor(n / 2);
    for (let i = 0; i < n; i++) {
      const domain = i < half ? 'plant-a' : 'plant-b';
      const k = i < half ? i : i - half;
      const id = k === 0 ? `control-${domain.slice(-1)}` : `sensor-${domain.slice(-1)}-${String(k).padStart(2, '0')}`;
      const { secret } = await ctx.registry.register({ id, profile: 'demo-device', domain }, 'demo:operator', true);
      const agent = await Agent.open({
        dir: join(parent, 'agents', id),
        settings: { server: server.httpsUrl, deviceId: id, refreshSeconds: 2, backoff: { initialSeconds: 1, maxSeconds: 5 } },
        trustPem: rootPem,
      });
      agents.push({ id, domain, agent, secret: secret! });
    }
    await inBatches(agents, 5, (d) => d.agent.enroll({ secret: d.secret }));
    await inBatches(agents, 5, (d) => d.agent.refresh());
    const perDomain = (dom: string) => agents.filter((d) => d.domain === dom).length;
    say(`2. enrolled ${agents.length} devices over EST with one-time secrets: ${perDomain('plant-a')} in plant-a, ${perDomain('plant-b')} in plant-b (${elapsed()})`);
    say(`   each made its own key; its certificate names its domain (urn:fleetpki:domain:plant-a) and lives ${lifetime} s`);

    // 3. Mutual TLS within each domain: sensors deliver readings to their control service.
    const controlA = agents.find((d) => d.id === 'control-a')!;
    const controlB = agents.find((d) => d.id === 'control-b')!;
    const readings: string[] = [];
    const refusalsA: ProblemError[] = [];
    const svcA = await controlService(controlA, refusalsA, readings);
    const svcB = await controlService(controlB, [], readings);
    const refusedByA = async (what: string) => {
      await waitFor<void>(what, 5000, (done) => {
        const t = setInterval(() => refusalsA.length && (clearInterval(t), done()), 20);
      });
      return refusalsA.shift()!;
    };
    stops.push(() => void svcA.server.close(), () => void svcB.server.close());
    const sensors = agents.filter((d) => d.id.startsWith('sensor-'));
    const results = await inBatches(sensors, 5, (d) => deliver(d, d.domain === 'plant-a' ? svcA.port : svcB.port));
    const okCount = results.filter((r) => r.ok).length;
    if (okCount !== sensors.length) throw new ProblemError('internal', `demo: only ${okCount} of ${sensors.length} sensors could deliver: ${JSON.stringify(results.filter((r) => !r.ok))}`);
    say(`3. mutual TLS within each domain: ${okCount} of ${sensors.length} sensors delivered readings to the control service of their own plant`);
    say(`   e.g. control-a received "${readings.find((r) => r.includes('sensor-a'))}"`);

    // 4. Across domains: refused on both sides, from the certificates alone.
    const intruder = agents.find((d) => d.id === 'sensor-b-01')!;
    const cross = await deliver(intruder, svcA.port, { checkServer: false });
    const whyA = await refusedByA('control-a to refuse sensor-b-01');
    if (cross.ok || refusalOf(whyA) !== 'wrong_domain') throw new ProblemError('internal', `demo: sensor-b-01 was not refused by control-a: ${JSON.stringify(cross)} ${whyA?.detail}`);
    say(`4. refused: sensor-b-01 (plant-b) connected to control-a (plant-a) and was cut off before its first byte: ${why(whyA)}`);
    const lost = agents.find((d) => d.id === 'sensor-a-01')!;
    const other = await deliver(lost, svcB.port);
    if (other.ok || other.reason !== 'wrong_domain') throw new ProblemError('internal', `demo: sensor-a-01 accepted control-b: ${JSON.stringify(other)}`);
    say(`   refused: sensor-a-01 (plant-a) would not hand its data to control-b (plant-b): ${other.detail.replace(/^forbidden: peer refused \((\w+)\): (.*)$/, '$2 ($1)')}`);

    // 5. Renewal: the daemons renew at 2/3 of the lifetime, each with a new key.
    const firstSerials = new Map(agents.map((d) => [d.id, d.agent.status().identity!.serial]));
    say(`5. the agents run as daemons now; renewal is due at 2/3 of each ${lifetime}-second lifetime (with jitter)...`);
    const renewed = new Set<string>();
    const allRenewed = waitFor<void>('every device to renew', lifetime * 3000, (done) => {
      for (const d of agents) {
        d.agent.on('renewed', () => {
          renewed.add(d.id);
          if (renewed.size === agents.length) done();
        });
      }
    });
    for (const d of agents) {
      const ctl = new AbortController();
      const running = d.agent.run(ctl.signal).catch(() => undefined);
      stops.push(async () => {
        ctl.abort();
        await running;
      });
    }
    await allRenewed;
    const changed = agents.filter((d) => d.agent.status().identity!.serial !== firstSerials.get(d.id)).length;
    say(`   renewed: ${changed} of ${agents.length} devices have a new certificate and a new key; the old keys are deleted (${elapsed()})`);
    const again = await inBatches(sensors, 5, (d) => deliver(d, d.domain === 'plant-a' ? svcA.port : svcB.port));
    if (again.some((r) => !r.ok)) throw new ProblemError('internal', `demo: after renewal some sensors failed: ${JSON.stringify(again.filter((r) => !r.ok))}`);
    say(`   and they talk as before with the new certificates: ${again.length} readings delivered`);

    // 6. Revocation: a lost sensor is revoked; the control service's agent fetches the new CRL and refuses it.
    const victim = agents.find((d) => d.id === 'sensor-a-02')!;
    const serial = victim.agent.status().identity!.serial;
    const crlSeen = waitFor<void>('control-a to load the new CRL', 20_000, (done) => {
      const onCrl = () => {
        const c = controlA.agent.peerPolicy().crls(victim.agent.identity().cert, victim.agent.identity().chain[0]);
        if (c?.revoked.has(serial)) {
          controlA.agent.off('crl', onCrl);
          done();
        }
      };
      controlA.agent.on('crl', onCrl);
    });
    await ctx.authority.revoke(serial, 'keyCompromise', 'demo:operator');
    say(`6. revoked sensor-a-02 (certificate ${serial}, keyCompromise); the server publishes a new CRL within a second`);
    await crlSeen;
    const refused = await deliver(victim, svcA.port);
    const whyRevoked = await refusedByA('control-a to refuse sensor-a-02');
    if (refused.ok || refusalOf(whyRevoked) !== 'revoked') throw new ProblemError('internal', `demo: the revoked sensor was not refused: ${whyRevoked?.detail}`);
    say(`   refused: sensor-a-02 tried to deliver to control-a, which holds the new CRL: ${why(whyRevoked)}`);
    const plantA = sensors.filter((d) => d.domain === 'plant-a' && d !== victim);
    const witness = plantA.find((d) => d.id !== 'sensor-a-01') ?? plantA[0];
    const still = await deliver(witness, svcA.port);
    if (!still.ok) throw new ProblemError('internal', `demo: ${witness.id} was refused after the revocation: ${JSON.stringify(still)}`);
    say(`   ${witness.id} still delivers (${elapsed()})`);

    say(`demo finished: enroll, mutual TLS by domain, refusal across domains, renewal and revocation all worked (${elapsed()})`);
    if (!o.keep) {
      await cleanup();
      return { dir, httpsUrl: server.httpsUrl, httpUrl: server.httpUrl, close: async () => undefined };
    }
    for (const s of stops.splice(0).reverse()) await s(); // stop the simulated fleet, keep the server
    say('');
    say('the server keeps running (--keep); press Ctrl-C to stop it and remove the directory:');
    say(`  data directory  ${dir}`);
    say(`  EST and API     ${server.httpsUrl}/.well-known/est   ${server.httpsUrl}/api/v1`);
    say(`  CRLs, CA certs  ${server.httpUrl}/crl/issuing.crl   ${server.httpUrl}/ca/root.pem`);
    say(`  try             FLEETPKI_DIR=${dir} npx fleetpki device list`);
    say(`                  npx fleetpki agent status --state ${join(parent, 'agents', witness.id)}`);
    say(`  admin token     ${init.adminToken}`);
    return { dir, httpsUrl: server.httpsUrl, httpUrl: server.httpUrl, close: cleanup };
  } catch (e) {
    await cleanup().catch(() => undefined);
    throw e;
  }
}
