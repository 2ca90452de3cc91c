/**
 * Wires the protocol adapters into two listeners: HTTPS (admin API, EST and
 * CMP) with a certificate from the fleet's own CA, and plain HTTP (AIA, CRL,
 * OCSP and CMP). `buildApps` makes the Fastify instances without
 * sockets, so tests can use inject(); `startServer` listens and keeps the
 * HTTPS certificate fresh.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import { createServer, type Server as HttpServer } from 'node:http';
import { VERSION } from '../version.js';
import { aiaPlugin } from '../protocols/aia/plugin.js';
import { crlPlugin } from '../protocols/crl/plugin.js';
import { ocspFastPath, ocspFrameworkError, ocspPlugin, type OcspFastPath } from '../protocols/ocsp/plugin.js';
import { OcspResponder } from '../authority/ocsp.js';
import { apiPlugin } from '../protocols/api/plugin.js';
import { estPlugin } from '../protocols/est/plugin.js';
import { cmpPlugin } from '../protocols/cmp/plugin.js';
import { CmpServer } from '../protocols/cmp/server.js';
import { pemEncode } from '../x509/pem.js';
import { consolePlugin } from '../console/plugin.js';
import { ConsoleSessions } from '../console/sessions.js';
import { frameworkErrorHandler, installProblemHandlers } from './http_errors.js';
import { parseHostPort } from './config.js';
import type { FleetContext } from './context.js';
import type { NoticeResult } from '../registry/expiry_watch.js';
import { ensureTlsIdentity, type TlsIdentity } from './tls_identity.js';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

const CRL_LEASE = 'crl-publisher';
const EXPIRY_LEASE = 'expiry-watch';
const TLS_LEASE = 'tls-listener';

/** Sends one expiry notice: the HTTP client the (pure) expiry watch is given. */
async function postJson(url: string, body: string, headers: Record<string, string>): Promise<number> {
  const r = await fetch(url, { method: 'POST', body, headers, redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  await r.arrayBuffer().catch(() => undefined);
  return r.status;
}


export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
  tls?: TlsIdentity;
  /** PEM certificates client certificates may chain to (our CAs, manufacturer CAs). */
  clientTrust?: string[];
  /** The OCSP responder (its cache is refreshed by startServer); one from ctx otherwise. */
  ocsp?: OcspResponder;
  /** The listener's OCSP fast path, made for `ocsp` (tests read its count); one for it otherwise. */
  ocspFastPath?: OcspFastPath;
  /** The CMP server both listeners share; made from ctx when not given. */
  cmp?: CmpServer;
  /** Called for every route as it is added (the role test enumerates the API with it). */
  onRoute?: (route: RouteOptions) => void;
  /** Web console sessions; a fresh set when not given. */
  sessions?: ConsoleSessions;
  /** The built console (default: consoleAssetsDir()). */
  consoleDir?: string;
}

/**
 * Certificates a TLS client certificate may chain to: every CA of ours
 * (re-enrollment, operators) and every trusted manufacturer CA (bootstrap).
 * Issuing CAs are included so a client that sends only its leaf still chains.
 */
export async function clientTrustPems(ctx: FleetContext): Promise<string[]> {
  const ours = (await ctx.store.listCas()).map((c) => pemEncode('CERTIFICATE', c.certDer));
  const mfr = (await ctx.store.listTrustAnchors('manufacturer')).map((t) => pemEncode('CERTIFICATE', t.der));
  return [...ours, ...mfr];
}

function secureContext(id: TlsIdentity, clientTrust: string[]) {
  return { key: id.keyPem, cert: id.certPem, ca: clientTrust.length ? clientTrust : undefined, minVersion: 'TLSv1.2' as const };
}

export async function buildHttpsApp(ctx: FleetContext, o: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: ctx.config.server.bodyLimitBytes,
    // Refuse unknown fields instead of silently dropping them: a typo in a
    // request must not turn into a certificate issued without it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    frameworkErrors: frameworkErrorHandler(),
    // Ask for a client certificate without requiring one (RFC 7030 §3.3.2):
    // EST devices may use HTTP Basic instead. The application decides.
    ...(o.tls ? { https: { ...secureContext(o.tls, o.clientTrust ?? []), requestCert: true, rejectUnauthorized: false } } : {}),
  }) as unknown as FastifyInstance;
  if (o.onRoute) app.addHook('onRoute', o.onRoute);
  installProblemHandlers(app);
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  const sessions = o.sessions ?? new ConsoleSessions(ctx.store, ctx.operators, ctx.clock);
  await app.register(apiPlugin, { ctx, version: VERSION, sessions });
  await app.register(consolePlugin, { sessions, assetsDir: o.consoleDir });
  await app.register(estPlugin, { ctx });
  await app.register(cmpPlugin, { cmp: o.cmp ?? new CmpServer(ctx) });
  return app;
}

/** What Fastify sets on the servers it makes itself (fastify/lib/server.js), for a server of ours. */
function withFastifyTimeouts<S extends HttpServer>(server: S, o: FastifyServerOptions & { http?: object }): S {
  if (o.keepAliveTimeout !== undefined) server.keepAliveTimeout = o.keepAliveTimeout;
  if (o.requestTimeout !== undefined) server.requestTimeout = o.requestTimeout;
  if (o.connectionTimeout !== undefined) server.setTimeout(o.connectionTimeout);
  if (o.maxRequestsPerSocket) server.maxRequestsPerSocket = o.maxRequestsPerSocket;
  return server;
}

export async function buildHttpApp(ctx: FleetContext, o: BuildOptions = {}): Promise<FastifyInstance> {
  // Public, high-volume, read-only traffic (OCSP, CRLs, CA certificates):
  // no log line per request; refusals and failures are logged by the plugins.
  const ocsp = o.ocsp ?? new OcspResponder(ctx.store, ctx.keys, ctx.authority, ctx.clock, ctx.config.ocsp);
  if (o.ocspFastPath && !o.ocsp) throw new Error('buildHttpApp: an OCSP fast path needs the responder it was made for');
  const fastPath = o.ocspFastPath ?? ocspFastPath(ocsp, ctx.clock);
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: ctx.config.server.bodyLimitBytes,
    logController: new LogController({ disableRequestLogging: true }),
    // An OCSP client can only read an OCSPResponse (RFC 6960 §2.3), even for a URL the router cannot read.
    frameworkErrors: frameworkErrorHandler(ocspFrameworkError),
    // Common OCSP requests are answered before routing (plugin.ts, ocspFastPath).
    serverFactory: (handler, opts) => withFastifyTimeouts(createServer(opts.http ?? {}, (req, res) => fastPath(req, res) || handler(req, res)), opts),
  });
  fastPath.logger = app.log;
  installProblemHandlers(app);
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(aiaPlugin, { authority: ctx.authority });
  await app.register(crlPlugin, { crls: ctx.crls, maxAgeSeconds: ctx.config.crl.httpMaxAgeSeconds, shards: ctx.config.crl.shards });
  await app.register(ocspPlugin, { ctx, responder: ocsp, fastPath });
  // CMP protects its messages itself (RFC 9483 §3.2): served on plain HTTP too.
  await app.register(cmpPlugin, { cmp: o.cmp ?? new CmpServer(ctx) });
  return app;
}

export interface RunningServer {
  httpsUrl: string;
  httpUrl: string;
  close(): Promise<void>;
  /** Checks the listener certificate now and swaps it in if it was renewed. */
  renewTlsIfDue(): Promise<boolean>;
  /** Reloads the CAs client certificates may chain to; true if they changed. */
  refreshTrust(): Promise<boolean>;
  /** Publishes the CRLs that are due now; returns "ca:kind:number" of each. */
  publishCrls(): Promise<string[]>;
  /** Abandons CMP certificates whose certConf did not come in time; closes stale transactions. */
  sweepCmp(): Promise<{ abandoned: number; expired: number; pruned: number }>;
  /** Sends the expiry notices that are due to outbound webhooks now (one node of a cluster at a time). */
  notifyExpiring(): Promise<NoticeResult[]>;
}

export interface StartOptions {
  listen?: string;
  httpListen?: string;
  logger?: FastifyServerOptions['logger'];
  /** How often to check the listener certificate; default hourly. */
  renewCheckMs?: number;
  /** How often to reload client trust anchors; default 10 s. */
  trustRefreshMs?: number;
  /** How often to look for CMP transactions past their deadline; default 15 s. */
  cmpSweepMs?: number;
  /** How often to send due expiry notices; default lifecycle.expiryCheckSeconds (0: never). */
  expiryCheckMs?: number;
}

export async function startServer(ctx: FleetContext, o: StartOptions = {}): Promise<RunningServer> {
  // This process among the nodes of a cluster and the processes of one data directory (leases).
  const holder = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // Processes of this data directory on this host take turns at its
  // listener pair (nodes elsewhere have their own); the lease ends with the
  // renewal, and the others take the new pair at their next check.
  const tlsLease = `${TLS_LEASE}:${hostname()}:${ctx.dir}`;
  const ensureIdentity = async (): Promise<TlsIdentity | undefined> => {
    let leased = false;
    const takeTurn = async () => {
      const now = ctx.clock.now();
      return (leased = await ctx.store.acquireLease(tlsLease, holder, new Date(now.getTime() + 60_000), now));
    };
    try {
      return await ensureTlsIdentity(ctx, takeTurn);
    } finally {
      if (leased) await ctx.store.releaseLease(tlsLease, holder).catch(() => undefined);
    }
  };
  // At start there is nothing to keep serving: without a turn, make one of our own.
  let identity = (await ensureIdentity()) ?? (await ensureTlsIdentity(ctx));
  let trust = await clientTrustPems(ctx);
  // Data directories made before CMP get their secret sealing key here.
  await ctx.vault.ensureKey('system');
  const cmp = new CmpServer(ctx);
  const https = await buildHttpsApp(ctx, { logger: o.logger, tls: identity, clientTrust: trust, cmp });
  const ocsp = new OcspResponder(ctx.store, ctx.keys, ctx.authority, ctx.clock, ctx.config.ocsp);
  const http = await buildHttpApp(ctx, { logger: o.logger, ocsp, cmp });
  const l = parseHostPort(o.listen ?? ctx.config.server.listen);
  const h = parseHostPort(o.httpListen ?? ctx.config.server.httpListen);
  await https.listen({ host: l.host, port: l.port });
  try {
    await http.listen({ host: h.host, port: h.port });
  } catch (e) {
    await https.close();
    throw e;
  }
  const addr = (app: FastifyInstance) => {
    const a = app.server.address();
    if (!a || typeof a === 'string') return String(a);
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  };

  // New connections get the new context; open ones keep theirs.
  const applyContext = () => (https.server as unknown as HttpsServer).setSecureContext(secureContext(identity, trust));
  const renewTlsIfDue = async () => {
    const next = await ensureIdentity();
    // Renewed here, or by another process of this data directory.
    if (!next || next.serial === identity.serial) return false;
    identity = next;
    applyContext();
    return true;
  };
  /** CAs and manufacturer anchors may change from another process (the CLI). */
  const refreshTrust = async () => {
    const next = await clientTrustPems(ctx);
    if (next.join() === trust.join()) return false;
    trust = next;
    applyContext();
    return true;
  };
  // One node of a cluster publishes CRLs at a time: the holder of the
  // store's lease (the others would only add CRL numbers with the same content).
  const leaseMs = Math.max(ctx.config.server.leaseSeconds, 3 * ctx.config.crl.checkIntervalSeconds) * 1000;
  /** Publishes every CRL that is due: after revocations (debounced by the interval) and before nextUpdate. */
  let publishing = false;
  const publishCrls = async () => {
    if (publishing) return [];
    publishing = true;
    const done: string[] = [];
    try {
      const now = ctx.clock.now();
      if (!(await ctx.store.acquireLease(CRL_LEASE, holder, new Date(now.getTime() + leaseMs), now))) return [];
      for (const ca of await ctx.store.listCas()) {
        // Base before delta: a delta refers to the newest base.
        for (const { kind, shard } of await ctx.crls.due(ca.name)) {
          const rec = await ctx.crls.publish(ca.name, kind, { shard, actor: `system:crl@${holder}` });
          done.push(`${ca.name}${shard ? `-s${shard}` : ''}:${kind}:${rec.number}`);
        }
      }
    } finally {
      publishing = false;
    }
    return done;
  };
  // A CRL that cannot be published now must not keep EST and the API down:
  // log it; the timer below tries again.
  await publishCrls().catch((err) => http.log.error({ err }, 'CRL publication at start failed; will retry'));
  const crlTimer = setInterval(() => {
    publishCrls().catch((err) => http.log.error({ err }, 'CRL publication failed; will retry'));
  }, ctx.config.crl.checkIntervalSeconds * 1000);
  crlTimer.unref();
  // Cached OCSP answers are re-signed before they are due: clients get pre-signed ones.
  const ocspTimer = setInterval(() => {
    ocsp.refreshDue().catch((err) => http.log.error({ err }, 'refreshing OCSP answers failed; will retry'));
  }, ocsp.refreshIntervalMs);
  ocspTimer.unref();
  const timer = setInterval(() => {
    renewTlsIfDue().catch((err) => https.log.error({ err }, 'listener certificate renewal failed; will retry'));
  }, o.renewCheckMs ?? 3_600_000);
  const trustTimer = setInterval(() => {
    refreshTrust().catch((err) => https.log.error({ err }, 'reloading client trust failed; will retry'));
  }, o.trustRefreshMs ?? 10_000);
  const cmpTimer = setInterval(() => {
    cmp.sweep().catch((err) => http.log.error({ err }, 'CMP transaction sweep failed; will retry'));
  }, o.cmpSweepMs ?? 15_000);
  timer.unref();
  trustTimer.unref();
  cmpTimer.unref();
  // Expiry notices: one node at a time, like CRL publication (a notice is
  // recorded after its delivery, so two nodes would send it twice).
  let notifying = false;
  const notifyExpiring = async (): Promise<NoticeResult[]> => {
    if (notifying) return [];
    notifying = true;
    try {
      const now = ctx.clock.now();
      const every = o.expiryCheckMs ?? ctx.config.lifecycle.expiryCheckSeconds * 1000;
      if (!(await ctx.store.acquireLease(EXPIRY_LEASE, holder, new Date(now.getTime() + Math.max(leaseMs, 3 * every)), now))) return [];
      const sent = await ctx.expiry.notify(postJson);
      for (const n of sent) if (n.status === 'failed' || n.status >= 300) https.log.warn({ webhook: n.webhook, thresholdDays: n.thresholdDays, status: n.status, error: n.error }, 'expiry notice not delivered; will retry');
      return sent;
    } finally {
      notifying = false;
    }
  };
  const expiryEvery = o.expiryCheckMs ?? ctx.config.lifecycle.expiryCheckSeconds * 1000;
  const expiryTimer = expiryEvery > 0
    ? setInterval(() => {
        notifyExpiring().catch((err) => https.log.error({ err }, 'expiry notices failed; will retry'));
      }, expiryEvery)
    : undefined;
  expiryTimer?.unref();

  return {
    httpsUrl: `https://${addr(https)}`,
    httpUrl: `http://${addr(http)}`,
    renewTlsIfDue,
    refreshTrust,
    publishCrls,
    sweepCmp: () => cmp.sweep(),
    notifyExpiring,
    async close() {
      clearInterval(expiryTimer);
      clearInterval(cmpTimer);
      clearInterval(timer);
      clearInterval(trustTimer);
      clearInterval(crlTimer);
      clearInterval(ocspTimer);
      // A clean stop hands CRL publication over at once.
      await ctx.store.releaseLease(CRL_LEASE, holder).catch(() => undefined);
      await ctx.store.releaseLease(EXPIRY_LEASE, holder).catch(() => undefined);
      await Promise.allSettled([https.close(), http.close()]);
    },
  };
}
