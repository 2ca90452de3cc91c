/**
 * Read-only aggregate routes, made for the web console but plain API routes
 * like the others (bearer token or console session, one permission each):
 * the fleet overview, CRL health, the audit chain check, a device's audit trail
 * and a certificate decoded for people.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { normaliseSerial } from '../../authority/serial.js';
import { ProblemError } from '../../errors.js';
import { authorize, type Permission } from '../../registry/operators.js';
import type { FleetContext } from '../../server/context.js';
import { verifyStoredAuditChain } from '../../store/audit_chain.js';
import type { AuditEntry, CrlRecord, DayCount } from '../../store/store.js';
import { decodeCertificate } from '../../x509/cert_decode.js';
import * as S from './overview_schemas.js';
import { deviceIdParam } from './registry_schemas.js';
import { serialParam } from './schemas.js';

type Guard = (p: Permission) => (req: FastifyRequest) => Promise<void>;

const DAY = 86_400_000;

/** Counts per day summed into buckets of `size` days from `start`, every bucket present (0 when empty). */
export function bucket(counts: DayCount[], start: number, size: number, buckets: number): Array<{ start: string; count: number }> {
  const out = Array.from({ length: buckets }, (_, i) => ({ start: new Date(start + i * size * DAY).toISOString(), count: 0 }));
  for (const c of counts) {
    const i = Math.floor((c.day - start) / (size * DAY));
    if (i >= 0 && i < buckets) out[i].count += c.count;
  }
  return out;
}

export function crlHealthJson(c: CrlRecord, now: Date) {
  return { ca: c.ca, shard: c.shard, kind: c.kind, number: c.number, thisUpdate: c.thisUpdate.toISOString(), nextUpdate: c.nextUpdate.toISOString(), entries: c.entries, status: c.nextUpdate <= now ? 'overdue' : 'current' };
}

const auditJson = (e: AuditEntry) => ({ ...e, target: e.target ?? null, at: e.at.toISOString() });

export function overviewRoutes(app: FastifyInstance, ctx: FleetContext, guard: Guard): void {
  app.get<{ Querystring: S.OverviewQuery }>(
    '/api/v1/overview',
    { onRequest: guard('device:read'), schema: { tags: ['Overview'], summary: 'The fleet at a glance: devices per state, certificates expiring per week, enrollments per day, recent revocations, CA and CRL health (device:read and cert:read)', querystring: S.overviewQuery, response: { 200: S.overview } } },
    async (req) => {
      authorize(req.operator!, 'cert:read');
      const now = ctx.clock.now();
      const today = Math.floor(now.getTime() / DAY) * DAY;
      const weeks = req.query.weeks ?? 12;
      const days = req.query.days ?? 30;
      const [devices, expiring, enrolled, revoked, cas, crls] = await Promise.all([
        ctx.store.countDevicesByState(),
        ctx.store.countCertificatesPerDay({ by: 'notAfter', from: now, to: new Date(today + weeks * 7 * DAY) }),
        ctx.store.countCertificatesPerDay({ by: 'createdAt', from: new Date(today - (days - 1) * DAY), to: new Date(today + DAY), devicesOnly: true }),
        ctx.store.listRecentRevocations(10),
        ctx.store.listCas(),
        ctx.store.listLatestCrls(),
      ]);
      return {
        generatedAt: now.toISOString(),
        devices,
        expiringPerWeek: bucket(expiring, today, 7, weeks),
        enrollmentsPerDay: bucket(enrolled, today - (days - 1) * DAY, 1, days),
        recentRevocations: revoked.map((c) => ({ serial: c.serial, subject: c.subject, issuerCa: c.issuerCa, revokedAt: c.revocation!.revokedAt.toISOString(), reason: c.revocation!.reason, deviceId: c.deviceId ?? null })),
        cas: cas.map((c) => ({ name: c.name, kind: c.kind, parent: c.parentName ?? null, subject: c.subject, notAfter: c.notAfter.toISOString(), keyOnline: !!c.keyRef })),
        crls: crls.map((c) => crlHealthJson(c, now)),
      };
    },
  );

  app.get('/api/v1/crls', { onRequest: guard('ca:read'), schema: { tags: ['CAs'], summary: 'The newest CRL of every CA, partition and kind, with its next update', response: { 200: { type: 'array', items: S.crlHealth } } } }, async () => {
    const now = ctx.clock.now();
    return (await ctx.store.listLatestCrls()).map((c) => crlHealthJson(c, now));
  });

  app.get('/api/v1/audit/verify', { onRequest: guard('audit:read'), schema: { tags: ['Audit'], summary: 'Check the hash chain of the whole audit log (as fleetpki audit verify)', response: { 200: S.auditCheck } } }, async () => {
    const r = await verifyStoredAuditChain(ctx.store);
    return { ok: r.ok, entries: r.entries, brokenAt: r.brokenAt ?? null, reason: r.reason ?? null, checkedAt: ctx.clock.now().toISOString() };
  });

  app.get<{ Params: { id: string } }>(
    '/api/v1/devices/:id/audit',
    { onRequest: guard('device:read'), schema: { tags: ['Devices'], summary: "A device's lifecycle events: the audit entries about it and its certificates, oldest first", params: deviceIdParam, response: { 200: S.deviceEvents } } },
    async (req) => (await ctx.registry.auditTrail(req.params.id)).map(auditJson),
  );

  app.get<{ Params: { serial: string } }>(
    '/api/v1/certificates/:serial/decoded',
    { onRequest: guard('cert:read'), schema: { tags: ['Certificates'], summary: 'One certificate decoded: every extension by name, and the whole certificate as text', params: serialParam, response: { 200: S.decodedCert } } },
    async (req) => {
      const serial = normaliseSerial(req.params.serial);
      if (!serial) throw new ProblemError('bad_request', `"${req.params.serial}" is not a serial number (hex)`);
      const c = await ctx.store.getCertificate(serial);
      if (!c) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
      return { serial, ...decodeCertificate(c.der) };
    },
  );
}
