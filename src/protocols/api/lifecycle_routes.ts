/**
 * Lifecycle routes of the admin API (issue 8): device events and history,
 * ownership transfer, the expiry report, webhooks and operator client
 * certificates; and the inbound webhook receiver, which authenticates by
 * HMAC over the raw body instead of an operator credential.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { normaliseSerial } from '../../authority/serial.js';
import { ProblemError } from '../../errors.js';
import type { Permission } from '../../registry/operators.js';
import { SIGNATURE_HEADER, SOURCE_HEADER } from '../../registry/webhooks.js';
import type { FleetContext } from '../../server/context.js';
import * as S from './lifecycle_schemas.js';
import { deviceIdParam } from './registry_schemas.js';
import { certJson, deviceEventJson, deviceJson, operatorCertJson, staleDeviceJson, webhookJson } from './views.js';

type Guard = (p: Permission) => (req: FastifyRequest) => Promise<void>;

/** The receiver's path: listed in the role test as the one route without an operator permission. */
export const LIFECYCLE_HOOK_PATH = '/api/v1/hooks/lifecycle';

export async function lifecycleRoutes(app: FastifyInstance, ctx: FleetContext, guard: Guard): Promise<void> {
  const actor = (req: FastifyRequest) => req.operator!.actor;
  const tags = ['Lifecycle'];

  app.post<{ Params: { id: string }; Body: S.EventBody }>(
    '/api/v1/devices/:id/events',
    {
      onRequest: guard('device:lifecycle'),
      schema: { tags, summary: 'Report a lifecycle event: lost, stolen, compromised, decommissioned, retired or replaced; revokes the device\'s certificates with the matching reason', params: deviceIdParam, body: S.eventBody, response: { 201: S.eventResult } },
    },
    async (req, reply) => {
      const b = req.body;
      const inv = b.invalidityDate !== undefined ? new Date(b.invalidityDate) : undefined;
      const r = await ctx.lifecycle.report({ deviceId: req.params.id, event: b.event, reason: b.reason, invalidityDate: inv, replacedBy: b.replacedBy, note: b.note, actor: actor(req), source: 'api' });
      reply.code(201);
      return { device: deviceJson(r.device), event: deviceEventJson(r.event) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/devices/:id/events',
    { onRequest: guard('device:read'), schema: { tags, summary: 'A device\'s history of lifecycle events, oldest first', params: deviceIdParam, response: { 200: S.eventList } } },
    async (req) => {
      await ctx.registry.device(req.params.id);
      return (await ctx.lifecycle.history(req.params.id)).map(deviceEventJson);
    },
  );

  app.post<{ Params: { id: string }; Body: S.TransferBody }>(
    '/api/v1/devices/:id/transfer',
    {
      onRequest: guard('device:lifecycle'),
      schema: { tags, summary: 'Transfer a device to a new owner or domain: its certificates are revoked (affiliationChanged) and it re-enrolls for the new owner', params: deviceIdParam, body: S.transferBody, response: { 200: S.transferResult } },
    },
    async (req, reply) => {
      const b = req.body;
      const r = await ctx.lifecycle.transfer({ deviceId: req.params.id, owner: b.owner, domain: b.domain, profile: b.profile, secret: b.secret, note: b.note, actor: actor(req), source: 'api' });
      if (r.secret) reply.header('cache-control', 'no-store');
      return { device: deviceJson(r.device), event: deviceEventJson(r.event), secret: r.secret ?? null };
    },
  );

  app.get<{ Querystring: { days?: number } }>(
    '/api/v1/reports/expiring',
    { onRequest: guard('cert:read'), schema: { tags: ['Reports'], summary: 'Certificates expiring within N days (default 30), expired ones, and devices that stopped renewing', querystring: S.expiringQuery, response: { 200: S.expiringReport } } },
    async (req) => expiringJson(ctx, req.query.days ?? 30),
  );

  app.get('/api/v1/webhooks', { onRequest: guard('webhook:admin'), schema: { tags: ['Webhooks'], summary: 'Inbound and outbound webhooks (never the secrets)', response: { 200: { type: 'array', items: S.webhook } } } }, async () =>
    (await ctx.webhooks.list()).map(webhookJson),
  );

  app.post<{ Body: S.WebhookBody }>(
    '/api/v1/webhooks',
    { onRequest: guard('webhook:admin'), schema: { tags: ['Webhooks'], summary: 'Create a webhook: inbound (a device-management system reports events) or outbound (expiry notices); the HMAC secret is shown once', body: S.webhookBody, response: { 201: S.webhookCreated } } },
    async (req, reply) => {
      const { webhook, secret } = await ctx.webhooks.create({ ...req.body, actor: actor(req) });
      reply.code(201).header('cache-control', 'no-store');
      return { ...webhookJson(webhook), secret };
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/webhooks/:name',
    { onRequest: guard('webhook:admin'), schema: { tags: ['Webhooks'], summary: 'Remove a webhook', params: S.webhookNameParam } },
    async (req, reply) => {
      await ctx.webhooks.remove(req.params.name, actor(req));
      return reply.code(204).send();
    },
  );

  app.get('/api/v1/operators/certificates', { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'Client certificates that sign operators in (mutual TLS)', response: { 200: { type: 'array', items: S.operatorCert } } } }, async () =>
    (await ctx.operators.listCertificates()).map(operatorCertJson),
  );

  app.post<{ Body: S.OperatorCertBody }>(
    '/api/v1/operators/certificates',
    { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'Let a certificate this CA issued sign an operator in with a role (mutual TLS)', body: S.operatorCertBody, response: { 201: S.operatorCert } } },
    async (req, reply) => {
      const serial = normaliseSerial(req.body.serial);
      if (!serial) throw new ProblemError('bad_request', `"${req.body.serial}" is not a serial number`);
      reply.code(201);
      return operatorCertJson(await ctx.operators.addCertificate({ ...req.body, serial, actor: actor(req) }));
    },
  );

  app.delete<{ Params: { serial: string } }>(
    '/api/v1/operators/certificates/:serial',
    { onRequest: guard('token:admin'), schema: { tags: ['Tokens'], summary: 'Stop a client certificate signing an operator in', params: { type: 'object', properties: { serial: { type: 'string', maxLength: 64 } }, required: ['serial'] } } },
    async (req, reply) => {
      const serial = normaliseSerial(req.params.serial);
      if (!serial) throw new ProblemError('bad_request', `"${req.params.serial}" is not a serial number`);
      await ctx.operators.removeCertificate(serial, actor(req));
      return reply.code(204).send();
    },
  );

  // The receiver reads the body as raw bytes (the signature covers exactly
  // those), so it lives in a context of its own with its own JSON parser.
  await app.register(async (hook) => {
    hook.removeContentTypeParser('application/json');
    hook.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit: ctx.config.lifecycle.webhookMaxBytes }, (_req, body, done) => done(null, body));
    hook.post(
      LIFECYCLE_HOOK_PATH,
      {
        bodyLimit: ctx.config.lifecycle.webhookMaxBytes,
        schema: {
          tags: ['Webhooks'],
          summary: 'Inbound webhook: a device-management system reports a lifecycle event. Authenticated by HMAC-SHA256 over the raw body (docs/lifecycle.md), not by a bearer token',
          security: [],
          headers: S.hookHeaders,
          body: { type: 'object', description: '{"id": delivery id, "timestamp": unix seconds, "device", "event", "reason"?, "invalidityDate"?, "replacedBy"?, "note"?}' },
          response: { 201: S.hookResult },
        },
        // The schema documents the body; the signature check needs the bytes unparsed.
        validatorCompiler: () => () => true,
      },
      async (req, reply) => {
        const body = req.body;
        if (!Buffer.isBuffer(body)) throw new ProblemError('unsupported_media_type', 'a webhook delivery is application/json');
        const r = await ctx.webhooks.receive(header(req, SOURCE_HEADER), header(req, SIGNATURE_HEADER), body);
        reply.code(201);
        return { device: r.device.id, state: r.device.state, event: deviceEventJson(r.event) };
      },
    );
  });
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The expiry report as JSON (API and CLI --json print the same). */
export async function expiringJson(ctx: FleetContext, days: number) {
  const r = await ctx.expiry.report(days);
  const withDevice = (c: Parameters<typeof certJson>[0]) => ({ ...certJson(c, false), deviceId: c.deviceId ?? null });
  return {
    generatedAt: r.generatedAt.toISOString(),
    days: r.days,
    expiring: r.expiring.map(withDevice),
    expired: r.expired.map(withDevice),
    staleDevices: r.stale.map((s) => staleDeviceJson(s, ctx.config.lifecycle.renewAtShare)),
  };
}
