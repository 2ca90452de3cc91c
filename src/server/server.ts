/**
 * Wires the protocol adapters into two listeners: HTTPS (admin API, later EST
 * and CMP) with a certificate from the fleet's own CA, and plain HTTP (AIA,
 * later CRL and OCSP). `buildApps` makes the Fastify instances without
 * sockets, so tests can use inject(); `startServer` listens and keeps the
 * HTTPS certificate fresh.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Server as HttpsServer } from 'node:https';
import { VERSION } from '../version.js';
import { aiaPlugin } from '../protocols/aia/plugin.js';
import { apiPlugin } from '../protocols/api/plugin.js';
import { installProblemHandlers } from './http_errors.js';
import { parseHostPort } from './config.js';
import type { FleetContext } from './context.js';
import { ensureTlsIdentity, type TlsIdentity } from './tls_identity.js';


export interface BuildOptions {
  logger?: FastifyServerOptions['logger'];
  tls?: TlsIdentity;
}

export async function buildHttpsApp(ctx: FleetContext, o: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: ctx.config.server.bodyLimitBytes,
    // Refuse unknown fields instead of silently dropping them: a typo in a
    // request must not turn into a certificate issued without it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    ...(o.tls ? { https: { key: o.tls.keyPem, cert: o.tls.certPem, minVersion: 'TLSv1.2' as const } } : {}),
  }) as unknown as FastifyInstance;
  installProblemHandlers(app);
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
  await app.register(apiPlugin, { ctx, version: VERSION });
  return app;
}

export async function buildHttpApp(ctx: FleetContext, o: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: o.logger ?? false, bodyLimit: ctx.config.server.bodyLimitBytes });
  installProblemHandlers(app);
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(aiaPlugin, { authority: ctx.authority });
  return app;
}

export interface RunningServer {
  httpsUrl: string;
  httpUrl: string;
  close(): Promise<void>;
  /** Checks the listener certificate now and swaps it in if it was renewed. */
  renewTlsIfDue(): Promise<boolean>;
}

export interface StartOptions {
  listen?: string;
  httpListen?: string;
  logger?: FastifyServerOptions['logger'];
  /** How often to check the listener certificate; default hourly. */
  renewCheckMs?: number;
}

export async function startServer(ctx: FleetContext, o: StartOptions = {}): Promise<RunningServer> {
  const { identity } = await ensureTlsIdentity(ctx);
  const https = await buildHttpsApp(ctx, { logger: o.logger, tls: identity });
  const http = await buildHttpApp(ctx, { logger: o.logger });
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

  const renewTlsIfDue = async () => {
    const { identity: id, renewed } = await ensureTlsIdentity(ctx);
    // New connections get the new certificate; open ones keep theirs.
    if (renewed) (https.server as unknown as HttpsServer).setSecureContext({ key: id.keyPem, cert: id.certPem, minVersion: 'TLSv1.2' });
    return renewed;
  };
  const timer = setInterval(() => {
    renewTlsIfDue().catch((err) => https.log.error({ err }, 'listener certificate renewal failed; will retry'));
  }, o.renewCheckMs ?? 3_600_000);
  timer.unref();

  return {
    httpsUrl: `https://${addr(https)}`,
    httpUrl: `http://${addr(http)}`,
    renewTlsIfDue,
    async close() {
      clearInterval(timer);
      await Promise.allSettled([https.close(), http.close()]);
    },
  };
}
