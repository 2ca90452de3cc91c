/** JSON schemas of the read-only aggregate routes (the web console's overview, CRL health, audit check). */
import { DEVICE_STATES } from '../../store/store.js';

const date = { type: 'string', format: 'date-time' } as const;
const nullable = (t: object) => ({ ...t, nullable: true });
const dayCount = { type: 'object', properties: { start: date, count: { type: 'integer' } } } as const;

export const crlHealth = {
  type: 'object',
  properties: {
    ca: { type: 'string' },
    shard: { type: 'integer' },
    kind: { type: 'string', enum: ['base', 'delta'] },
    number: { type: 'integer' },
    thisUpdate: date,
    nextUpdate: date,
    entries: { type: 'integer' },
    status: { type: 'string', enum: ['current', 'overdue'], description: 'overdue: nextUpdate has passed (strict relying parties reject everyone)' },
  },
} as const;

export interface OverviewQuery {
  weeks?: number;
  days?: number;
}
export const overviewQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    weeks: { type: 'integer', minimum: 1, maximum: 104, default: 12, description: 'weeks of expiring certificates, from now' },
    days: { type: 'integer', minimum: 1, maximum: 366, default: 30, description: 'days of enrollments, up to today' },
  },
} as const;

export const overview = {
  type: 'object',
  properties: {
    generatedAt: date,
    devices: { type: 'object', properties: Object.fromEntries(DEVICE_STATES.map((s) => [s, { type: 'integer' }])) },
    expiringPerWeek: { type: 'array', items: dayCount, description: 'good certificates whose notAfter falls in the week starting at `start`' },
    enrollmentsPerDay: { type: 'array', items: dayCount, description: 'certificates issued to registry devices on the UTC day starting at `start` (first enrollments and renewals)' },
    recentRevocations: {
      type: 'array',
      items: { type: 'object', properties: { serial: { type: 'string' }, subject: { type: 'string' }, issuerCa: { type: 'string' }, revokedAt: date, reason: { type: 'string' }, deviceId: nullable({ type: 'string' }) } },
    },
    cas: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, kind: { type: 'string' }, parent: nullable({ type: 'string' }), subject: { type: 'string' }, notAfter: date, keyOnline: { type: 'boolean' } } },
    },
    crls: { type: 'array', items: crlHealth },
  },
} as const;

export const auditCheck = {
  type: 'object',
  properties: {
    ok: { type: 'boolean' },
    entries: { type: 'integer' },
    brokenAt: nullable({ type: 'integer' }),
    reason: nullable({ type: 'string' }),
    checkedAt: date,
  },
} as const;

const auditEntry = {
  type: 'object',
  properties: {
    seq: { type: 'integer' },
    at: date,
    actor: { type: 'string' },
    action: { type: 'string' },
    target: nullable({ type: 'string' }),
    details: { type: 'object', additionalProperties: true },
  },
} as const;
export const deviceEvents = { type: 'array', items: auditEntry } as const;

export const decodedCert = {
  type: 'object',
  properties: {
    serial: { type: 'string' },
    version: { type: 'integer' },
    signatureAlgorithm: { type: 'string' },
    extensions: {
      type: 'array',
      items: { type: 'object', properties: { oid: { type: 'string' }, name: { type: 'string' }, critical: { type: 'boolean' }, lines: { type: 'array', items: { type: 'string' } } } },
    },
    text: { type: 'string', description: 'the whole certificate as text' },
  },
} as const;
