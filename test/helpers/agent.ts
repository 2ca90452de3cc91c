/**
 * Agent test setup: a real fleetpki server in this process and agents on
 * state directories in a scratch folder, talking to it over EST and HTTP like
 * a device does.
 *
 * Unlike startEstEnv, the plain-HTTP port is chosen before `init`, so the CRL
 * distribution points and AIA URLs written into the CA certificates (and
 * every certificate after) are URLs the agents can fetch.
 */
import 'reflect-metadata';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type AgentOptions } from '../../src/agent/agent.js';
import type { AgentSettings } from '../../src/agent/state.js';
import type { Clock } from '../../src/clock.js';
import { CONFIG_FILE, type FleetConfig } from '../../src/server/config.js';
import { initDataDir, openContext, type FleetContext } from '../../src/server/context.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { tempDir } from './data_dir.js';
import { registerDevice } from './est.js';
import { freePort } from './mosquitto.js';

export interface AgentEnv {
  dir: string;
  ctx: FleetContext;
  server: RunningServer;
  /** https://127.0.0.1:PORT (EST, API) */
  base: string;
  /** http://127.0.0.1:PORT (CRLs, CA certificates) */
  http: string;
  work: string;
  rootPem: string;
  rootPemText: string;
  file(name: string): string;
  /** Stops the server (the CA "goes down"); `start()` brings it back on the same ports. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Registers `id` and opens an agent for it; returns the agent and its one-time secret. */
  device(id: string, o?: DeviceOptions): Promise<{ agent: Agent; secret: string; dir: string }>;
  close(): Promise<void>;
}

export interface DeviceOptions {
  domain?: string;
  profile?: string;
  sans?: string[];
  settings?: Partial<AgentSettings>;
  agent?: Partial<AgentOptions>;
  /** false: do not register (the device is registered some other way). */
  register?: boolean;
}

export interface AgentEnvOptions {
  clock?: Clock;
  org?: string;
  config?: (c: FleetConfig) => void;
  setup?: (ctx: FleetContext) => Promise<void>;
}

export async function startAgentEnv(o: AgentEnvOptions = {}): Promise<AgentEnv> {
  const parent = tempDir('fleetpki-agent-');
  const dir = join(parent, 'data');
  const work = join(parent, 'work');
  const httpPort = await freePort();
  const httpsPort = await freePort();
  const init = await initDataDir({
    dir,
    org: o.org ?? 'Agent Fleet',
    keyAlgorithm: 'ecdsa-p256',
    rootValidityDays: 3650,
    issuingValidityDays: 1825,
    listen: `127.0.0.1:${httpsPort}`,
    httpListen: `127.0.0.1:${httpPort}`,
    clock: o.clock,
  });
  await init.ctx.close();
  const cfgPath = join(dir, CONFIG_FILE);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as FleetConfig;
  // CRLs are published on demand in these tests (server.publishCrls()).
  cfg.crl.checkIntervalSeconds = 3600;
  o.config?.(cfg);
  writeFileSync(cfgPath, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  const ctx = await openContext(dir, { clock: o.clock });
  await o.setup?.(ctx);
  let server = await startServer(ctx);
  const root = (await ctx.store.listCas()).find((c) => c.name === 'root')!;
  const rootPemText = pemEncode('CERTIFICATE', root.certDer);
  mkdirSync(work, { recursive: true });
  const file = (n: string) => join(work, n);
  writeFileSync(file('root.pem'), rootPemText);
  let running = true;
  const env: AgentEnv = {
    dir,
    ctx,
    server,
    base: server.httpsUrl,
    http: server.httpUrl,
    work,
    rootPem: file('root.pem'),
    rootPemText,
    file,
    async stop() {
      if (running) await server.close();
      running = false;
    },
    async start() {
      if (running) return;
      server = await startServer(ctx);
      env.server = server;
      running = true;
    },
    async device(id, d = {}) {
      const secret = d.register === false ? '' : await registerDevice(ctx, { id, profile: d.profile ?? 'device-tls', domain: d.domain, sans: d.sans });
      const adir = join(work, `agent-${id}`);
      const agent = await Agent.open({ dir: adir, settings: { server: env.base, deviceId: id, ...d.settings }, trustPem: rootPemText, ...d.agent });
      return { agent, secret, dir: adir };
    },
    async close() {
      await env.stop();
      await ctx.close().catch(() => undefined);
      rmSync(parent, { recursive: true, force: true });
    },
  };
  return env;
}
