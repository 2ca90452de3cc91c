/**
 * Registry routes of the admin API: devices, manufacturer trust, orders and
 * approvals. Same shape as the certificate routes: authenticate, check one
 * permission, call the registry once, encode.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Permission } from '../../registry/operators.js';
import { parseDeviceFile } from '../../registry/device_file.js';
import type { FleetContext } from '../../server/context.js';
import type { DeviceState } from '../../store/store.js';
import * as S from './registry_schemas.js';
import { anchorJson, deviceEventJson, deviceJson, orderJson, pendingJson } from './views.js';

type Guard = (p: Permission) => (req: FastifyRequest) => Promise<void>;

export const IMPORT_BODY_LIMIT = 8 * 1024 * 1024;

export function registryRoutes(app: FastifyInstance, ctx: FleetContext, guard: Guard): void {
  const actor = (req: FastifyRequest) => req.operator!.actor;
  const tags = ['Devices'];

  app.post<{ Body: S.DeviceBody & { secret?: boolean } }>(
    '/api/v1/devices',
    { onRequest: guard('device:register'), schema: { tags, summary: 'Register a device; with "secret": true the answer carries a one-time enrollment secret (shown once)', body: S.deviceBody, response: { 201: S.deviceWithSecret } } },
    async (req, reply) => {
      const { secret: wantSecret, ...input } = req.body;
      const { device, secret } = await ctx.registry.register(input, actor(req), !!wantSecret);
      reply.code(201);
      return { ...deviceJson(device), secret: secret ?? null };
    },
  );

  app.post<{ Body: { devices: unknown[] } }>(
    '/api/v1/devices/import',
    // Thousands of devices exceed the server-wide body limit: this route has its own.
    { onRequest: guard('device:register'), bodyLimit: IMPORT_BODY_LIMIT, schema: { tags, summary: 'Register many devices (JSON, up to 10,000 and 8 MiB); invalid and existing ones are reported', body: S.importBody, response: { 200: S.importResult } } },
    async (req) => {
      const parsed = parseDeviceFile(JSON.stringify(req.body.devices), 'json');
      const r = await ctx.registry.importDevices(parsed.rows, actor(req));
      return { registered: r.inserted, alreadyRegistered: r.existing, rejected: [...parsed.rejected, ...r.rejected].sort((a, b) => a.line - b.line) };
    },
  );

  app.get<{ Querystring: S.DeviceQuery }>(
    '/api/v1/devices',
    { onRequest: guard('device:read'), schema: { tags, summary: 'Search devices (keyset paging with "after")', querystring: S.deviceQuery, response: { 200: S.deviceList } } },
    async (req) => {
      const q = req.query;
      const limit = q.limit ?? 100;
      const items = await ctx.registry.listDevices({ state: q.state as DeviceState | undefined, domain: q.domain, model: q.model, profile: q.profile, owner: q.owner, afterId: q.after, limit });
      return { items: items.map(deviceJson), next: items.length === limit ? items[items.length - 1].id : null };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/devices/:id',
    { onRequest: guard('device:read'), schema: { tags, summary: 'One device with its certificates and its history of lifecycle events', params: S.deviceIdParam } },
    async (req) => {
      const d = await ctx.registry.device(req.params.id);
      const certs = await ctx.store.listCertificates({ deviceId: d.id, limit: 1000 });
      const events = await ctx.lifecycle.history(d.id);
      return {
        ...deviceJson(d),
        certificates: certs.map((c) => ({ serial: c.serial, status: c.status, revocationReason: c.revocation?.reason ?? null, notAfter: c.notAfter.toISOString(), current: c.serial === d.currentSerial })),
        events: events.map(deviceEventJson),
      };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/devices/:id/secret',
    { onRequest: guard('device:register'), schema: { tags, summary: 'A new one-time enrollment secret (replaces the old one; shown once)', params: S.deviceIdParam } },
    async (req, reply) => {
      const secret = await ctx.registry.newSecret(req.params.id, actor(req));
      reply.code(201);
      return { id: req.params.id, secret, expiresInHours: ctx.config.registry.secretTtlHours };
    },
  );

  app.patch<{ Params: { id: string }; Body: S.DevicePatchBody }>(
    '/api/v1/devices/:id',
    { onRequest: guard('device:register'), schema: { tags, summary: 'Change a device record or its lifecycle state', params: S.deviceIdParam, body: S.devicePatch } },
    async (req) => deviceJson(await ctx.registry.updateDevice(req.params.id, req.body as never, actor(req))),
  );

  app.get('/api/v1/trust/manufacturers', { onRequest: guard('device:read'), schema: { tags: ['Trust'], summary: 'Trusted manufacturer CAs' } }, async () =>
    (await ctx.registry.listManufacturerCas()).map(anchorJson),
  );

  app.post<{ Body: { pem: string } }>(
    '/api/v1/trust/manufacturers',
    { onRequest: guard('trust:admin'), schema: { tags: ['Trust'], summary: 'Trust manufacturer CA certificates (PEM)', body: S.trustBody } },
    async (req, reply) => {
      reply.code(201);
      return (await ctx.registry.addManufacturerCa(req.body.pem, actor(req))).map(anchorJson);
    },
  );

  app.delete<{ Params: { fingerprint: string } }>(
    '/api/v1/trust/manufacturers/:fingerprint',
    { onRequest: guard('trust:admin'), schema: { tags: ['Trust'], summary: 'Stop trusting a manufacturer CA', params: S.fingerprintParam } },
    async (req, reply) => {
      await ctx.registry.removeManufacturerCa(req.params.fingerprint, actor(req));
      return reply.code(204).send();
    },
  );

  app.get('/api/v1/orders', { onRequest: guard('device:read'), schema: { tags: ['Orders'], summary: 'Enrollment orders' } }, async () => (await ctx.registry.listOrders()).map(orderJson));

  app.post<{ Body: S.OrderBody }>(
    '/api/v1/orders',
    { onRequest: guard('device:register'), schema: { tags: ['Orders'], summary: 'Create an enrollment order', body: S.orderBody } },
    async (req, reply) => {
      reply.code(201);
      return orderJson(await ctx.registry.createOrder(req.body, actor(req)));
    },
  );

  app.get<{ Querystring: { status?: 'pending' | 'approved' | 'rejected' | 'issued' } }>(
    '/api/v1/enrollments',
    { onRequest: guard('device:read'), schema: { tags: ['Enrollments'], summary: 'Enrollments waiting for approval (or by status)', querystring: S.enrollmentQuery } },
    async (req) => (await ctx.registry.listPending(req.query.status ?? 'pending')).map(pendingJson),
  );

  for (const [verb, approve] of [['approve', true], ['reject', false]] as const) {
    app.post<{ Params: { id: string } }>(
      `/api/v1/enrollments/:id/${verb}`,
      { onRequest: guard('enrollment:approve'), schema: { tags: ['Enrollments'], summary: `${verb[0].toUpperCase()}${verb.slice(1)} a pending enrollment`, params: S.enrollmentIdParam } },
      async (req) => pendingJson(await ctx.registry.decide(req.params.id, approve, actor(req))),
    );
  }
}
