/**
 * The admin REST API under /api/v1: a thin adapter. Each route authenticates
 * the bearer token, checks one permission, calls one core function and
 * encodes the answer. JSON schemas validate input and feed the OpenAPI
 * document at /api/v1/openapi.json.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProblemError } from '../../errors.js';
import { deliverKey, type Delivery } from '../../keys/key_delivery.js';
import { authorize, type Operator, type Permission } from '../../registry/operators.js';
import type { FleetContext } from '../../server/context.js';
import { normaliseSerial } from '../../authority/serial.js';
import { REVOCATION_REASONS, ROLES, type CertificateRecord, type RevocationReason } from '../../store/store.js';
import { parseSan } from '../../x509/general_names.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { parseDn } from '../../x509/names.js';
import { pemEncode } from '../../x509/pem.js';
import * as S from './schemas.js';
import { caJson, certJson } from './views.js';
import { registryRoutes } from './registry_routes.js';
import { firmwareRoutes } from './firmware_routes.js';
import { lifecycleRoutes } from './lifecycle_routes.js';
import { supplyRoutes } from './supply_routes.js';
import type { TLSSocket } from 'node:tls';
import { overviewRoutes } from './overview_routes.js';
import type { ConsoleSessions } from '../../console/sessions.js';

export { caJson, certJson };

declare module 'fastify' {
  interface FastifyRequest {
    operator?: Operator;
  }
}

export interface ApiOptions {
  ctx: FleetContext;
  version: string;
  /** Web console sessions: a request without an Authorization header may authenticate with a session cookie. */
  sessions?: ConsoleSessions;
}

const bearer = (req: FastifyRequest) => {
  const h = req.headers.authorization;
  return h && /^Bearer /i.test(h) ? h.slice(7).trim() : undefined;
};

/** A delivered key in JSON: PKCS#12 as base64, PKCS#8 as PEM. */
function deliveryJson(d: Delivery) {
  return d.format === 'pkcs12' ? { format: d.format, pkcs12: Buffer.from(d.pkcs12).toString('base64') } : { format: d.format, privateKeyPem: d.privateKeyPem, certificatePem: d.certificatePem };
}

export async function apiPlugin(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const { ctx } = opts;
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'fleetpki admin API', version: opts.version, description: 'Certificate authority administration. Authenticate with `Authorization: Bearer <token>` (fleetpki token create).' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  /**
   * Authenticates and checks one permission before the body is even read;
   * sets req.operator. A bearer token when there is an Authorization header;
   * otherwise the console's session cookie (with its CSRF check), if any;
   * otherwise a client certificate the listener verified (bound to an
   * operator, checked against the store at every request). The permission
   * is kept on the hook, so the role test can find every route's.
   */
  const { sessions } = opts;
  const authenticate = async (req: FastifyRequest) => {
    if (sessions && req.headers.authorization === undefined && sessions.carriesSession(req)) return (await sessions.authenticate(req)).operator;
    const token = bearer(req);
    const leaf = token ? undefined : verifiedClientCert(req);
    return leaf ? ctx.operators.authenticateCertificate(leaf) : ctx.operators.authenticate(token);
  };
  const guard = (p: Permission) =>
    Object.assign(
      async (req: FastifyRequest) => {
        const op = await authenticate(req);
        authorize(op, p);
        req.operator = op;
      },
      { permission: p },
    );
  const actor = (req: FastifyRequest) => req.operator!.actor;

  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  registryRoutes(app, ctx, guard);
  firmwareRoutes(app, ctx, guard);
  await lifecycleRoutes(app, ctx, guard);
  supplyRoutes(app, ctx, guard);
  overviewRoutes(app, ctx, guard);

  app.get('/api/v1/cas', { onRequest: guard('ca:read'), schema: { tags: ['CAs'], summary: 'List certificate authorities', response: { 200: { type: 'array', items: S.ca } } } }, async () =>
    (await ctx.store.listCas()).map(caJson),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/cas/:name',
    { onRequest: guard('ca:read'), schema: { tags: ['CAs'], summary: 'One CA, with its chain', params: S.nameParam, response: { 200: S.caWithChain } } },
    async (req) => {
      const ca = (await ctx.authority.ca(req.params.name)).record;
      const chain = await ctx.authority.chain(ca.name);
      return { ...caJson(ca), chainPem: chain.map((d) => pemEncode('CERTIFICATE', d)).join('') };
    },
  );

  app.get('/api/v1/profiles', { onRequest: guard('ca:read'), schema: { tags: ['Profiles'], summary: 'Certificate profiles in force' } }, async () => ctx.authority.profiles);

  app.post<{ Body: S.IssueBody }>(
    '/api/v1/certificates',
    { onRequest: guard('cert:issue'), schema: { tags: ['Certificates'], summary: 'Issue a certificate from a PKCS#10 CSR', body: S.issueBody, response: { 201: S.issued } } },
    async (req, reply) => {
      const b = req.body;
      const r = await ctx.authority.issue({
        csr: b.csr,
        profile: b.profile,
        ca: b.ca,
        subject: b.subject !== undefined ? parseDn(b.subject) : undefined,
        sans: b.sans?.map(parseSan),
        validityDays: b.validityDays,
        actor: actor(req),
      });
      reply.code(201);
      return { ...certJson(r.record), chainPem: r.chain.slice(0, -1).map((d) => pemEncode('CERTIFICATE', d)).join(''), capped: r.capped };
    },
  );

  // Server-side key generation where the profile allows it; the key is returned once, encrypted.
  app.post<{ Body: S.KeygenBody }>(
    '/api/v1/keygen',
    { onRequest: guard('cert:issue'), schema: { tags: ['Certificates'], summary: 'Generate a key on the server (profile serverKeyGen), issue its certificate and return both once, encrypted (PKCS#12 or PKCS#8)', body: S.keygenBody } },
    async (req, reply) => {
      const b = req.body;
      const g = await ctx.custody.generateAndIssue({ profile: b.profile, ca: b.ca, subject: parseDn(b.subject), sans: b.sans?.map(parseSan), keyAlgorithm: b.keyAlgorithm, validityDays: b.validityDays, actor: actor(req) });
      const d = await deliverKey(g.privateKey, [g.result.der, ...g.result.chain.slice(0, -1)], b.format ?? 'pkcs12', b.passphrase, g.result.record.subject);
      reply.code(201).header('cache-control', 'no-store');
      return { ...certJson(g.result.record), escrowed: g.escrowed, ...deliveryJson(d) };
    },
  );

  app.post<{ Params: { serial: string }; Body: S.RecoverBody }>(
    '/api/v1/certificates/:serial/recover-key',
    { onRequest: guard('key:recover'), schema: { tags: ['Certificates'], summary: 'Recover an escrowed key (key-recovery role; audited)', body: S.recoverBody } },
    async (req, reply) => {
      const serial = normaliseSerial(req.params.serial);
      if (!serial) throw new ProblemError('bad_request', `"${req.params.serial}" is not a serial number`);
      const r = await ctx.custody.recover(serial, req.operator!);
      const d = await deliverKey(r.privateKey, [r.certificate.der], req.body.format ?? 'pkcs12', req.body.passphrase, r.certificate.subject);
      reply.header('cache-control', 'no-store');
      return { serial, ...deliveryJson(d) };
    },
  );

  app.get<{ Querystring: S.ListQuery }>(
    '/api/v1/certificates',
    { onRequest: guard('cert:read'), schema: { tags: ['Certificates'], summary: 'Search certificates (keyset paging with "after")', querystring: S.listQuery, response: { 200: S.certList } } },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 100;
      const items = await ctx.store.listCertificates({ status: q.status, issuerCa: q.ca, profile: q.profile, subjectContains: q.subject, afterSerial: q.after ? normaliseSerial(q.after) : undefined, limit });
      return { items: items.map((c) => certJson(c, false)), next: items.length === limit ? items[items.length - 1].serial : null };
    },
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/certificates/:serial',
    { onRequest: guard('cert:read'), schema: { tags: ['Certificates'], summary: 'One certificate; Accept: application/pem-certificate-chain for PEM', params: S.serialParam, response: { 200: S.cert } } },
    async (req, reply) => {
      const c = await getCert(ctx, req.params.serial);
      if (/application\/pem-certificate-chain/.test(req.headers.accept ?? '')) {
        return reply.type('application/pem-certificate-chain').send(pemEncode('CERTIFICATE', c.der));
      }
      return certJson(c);
    },
  );

  app.post<{ Params: { serial: string }; Body: S.RevokeBody }>(
    '/api/v1/certificates/:serial/revoke',
    { onRequest: guard('cert:revoke'), schema: { tags: ['Certificates'], summary: 'Revoke a certificate', params: S.serialParam, body: S.revokeBody, response: { 200: S.cert } } },
    async (req) => {
      const serial = normaliseSerial(req.params.serial);
      if (!serial) throw new ProblemError('bad_request', 'not a serial number');
      const inv = req.body.invalidityDate ? new Date(req.body.invalidityDate) : undefined;
      if (inv && isNaN(inv.getTime())) throw new ProblemError('bad_request', 'invalidityDate is not a date');
      return certJson(await ctx.authority.revoke(serial, req.body.reason as RevocationReason, actor(req), inv));
    },
  );

  app.post<{ Params: { serial: string } }>(
    '/api/v1/certificates/:serial/release',
    { onRequest: guard('cert:revoke'), schema: { tags: ['Certificates'], summary: 'Lift a certificateHold', params: S.serialParam, response: { 200: S.cert } } },
    async (req) => {
      const serial = normaliseSerial(req.params.serial);
      if (!serial) throw new ProblemError('bad_request', 'not a serial number');
      return certJson(await ctx.authority.releaseHold(serial, actor(req)));
    },
  );

  app.get('/api/v1/tokens', { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'List API tokens (never the secrets)', response: { 200: { type: 'array', items: S.token } } } }, async () =>
    (await ctx.operators.listTokens()).map((t) => ({ id: t.id, name: t.name, role: t.role, createdAt: t.createdAt.toISOString(), expiresAt: t.expiresAt?.toISOString() ?? null, revokedAt: t.revokedAt?.toISOString() ?? null })),
  );

  app.post<{ Body: { name: string; role: string; validDays?: number } }>(
    '/api/v1/tokens',
    { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'Create an API token; the secret is shown once', body: S.tokenBody, response: { 201: S.tokenCreated } } },
    async (req, reply) => {
      const { token, record } = await ctx.operators.createToken({ ...req.body, actor: actor(req) });
      reply.code(201);
      return { id: record.id, name: record.name, role: record.role, token, expiresAt: record.expiresAt?.toISOString() ?? null };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'Revoke an API token', params: S.idParam } },
    async (req, reply) => {
      await ctx.operators.revokeToken(req.params.id, actor(req));
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { after?: number; limit?: number; action?: string; target?: string } }>(
    '/api/v1/audit',
    { onRequest: guard('audit:read'), schema: { tags: ['Audit'], summary: 'Read the hash-chained audit log', querystring: S.auditQuery } },
    async (req) => {
      const entries = await ctx.store.listAudit({ afterSeq: req.query.after, limit: req.query.limit ?? 100, action: req.query.action, target: req.query.target });
      return entries.map((e) => ({ ...e, at: e.at.toISOString() }));
    },
  );
}

/** The TLS client certificate, when the listener verified its chain (to one of our CAs or a manufacturer CA). */
function verifiedClientCert(req: FastifyRequest): { serial: string; der: Uint8Array } | undefined {
  const sock = req.raw.socket as Partial<TLSSocket>;
  if (typeof sock.getPeerCertificate !== 'function' || !sock.authorized) return undefined;
  const peer = sock.getPeerCertificate();
  if (!peer?.raw) return undefined;
  const der = new Uint8Array(peer.raw);
  return { serial: parseCertificate(der).serial, der };
}

async function getCert(ctx: FleetContext, serialText: string): Promise<CertificateRecord> {
  const serial = normaliseSerial(serialText);
  if (!serial) throw new ProblemError('bad_request', `"${serialText}" is not a serial number (hex)`);
  const c = await ctx.store.getCertificate(serial);
  if (!c) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
  return c;
}

export const API_ROLES = ROLES;
export const API_REASONS = Object.keys(REVOCATION_REASONS).filter((r) => r !== 'removeFromCRL');
