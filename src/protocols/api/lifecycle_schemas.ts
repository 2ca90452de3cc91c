/** JSON schemas of the lifecycle routes (issue 8): events, transfer, reports, webhooks, operator certificates. */
import { DEVICE_EVENT_KINDS, DEVICE_STATES, ROLES } from '../../store/store.js';
import { REPORTABLE_EVENTS } from '../../registry/device_events.js';
import { cert } from './schemas.js';
import { device } from './registry_schemas.js';

const nullable = (t: object) => ({ ...t, nullable: true });
const date = { type: 'string', format: 'date-time' } as const;
const label = { type: 'string', maxLength: 128 } as const;
const domain = { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,62}$' } as const;
const note = { type: 'string', maxLength: 1024 } as const;

export interface EventBody {
  event: string;
  reason?: string;
  invalidityDate?: string;
  replacedBy?: string;
  note?: string;
}
export const eventBody = {
  type: 'object',
  additionalProperties: false,
  required: ['event'],
  properties: {
    event: { type: 'string', enum: [...REPORTABLE_EVENTS] },
    reason: { type: 'string', enum: ['certificateHold', 'keyCompromise'], description: 'lost or stolen: certificateHold (default) or keyCompromise' },
    invalidityDate: { ...date, description: 'keyCompromise: when the key was (suspected to be) compromised; compromised defaults to now' },
    replacedBy: { type: 'string', maxLength: 64, description: 'replaced: the id of the device that replaces it' },
    note,
  },
} as const;

export const deviceEvent = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: [...DEVICE_EVENT_KINDS] },
    at: date,
    actor: { type: 'string' },
    source: { type: 'string', enum: ['api', 'cli', 'webhook'] },
    fromState: { type: 'string', enum: [...DEVICE_STATES] },
    toState: { type: 'string', enum: [...DEVICE_STATES] },
    reason: nullable({ type: 'string' }),
    revokedSerials: { type: 'array', items: { type: 'string' } },
    details: { type: 'object', additionalProperties: true },
    auditSeq: nullable({ type: 'integer', description: 'the audit entry that recorded it' }),
  },
} as const;
export const eventResult = { type: 'object', properties: { device, event: deviceEvent } } as const;
export const eventList = { type: 'array', items: deviceEvent } as const;

export interface TransferBody {
  owner?: string;
  domain?: string;
  profile?: string;
  secret?: boolean;
  note?: string;
}
export const transferBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { owner: label, domain, profile: { type: 'string', maxLength: 64 }, secret: { type: 'boolean', description: 'also create a one-time enrollment secret for the re-enrollment (shown once)' }, note },
} as const;
export const transferResult = { type: 'object', properties: { device, event: deviceEvent, secret: nullable({ type: 'string', description: 'one-time enrollment secret, shown once' }) } } as const;

export const expiringQuery = { type: 'object', additionalProperties: false, properties: { days: { type: 'integer', minimum: 0, maximum: 3650, default: 30 } } } as const;
const reportCert = { type: 'object', properties: { ...cert.properties, deviceId: nullable({ type: 'string' }) } } as const;
export const expiringReport = {
  type: 'object',
  properties: {
    generatedAt: date,
    days: { type: 'integer' },
    expiring: { type: 'array', items: reportCert, description: 'good certificates expiring within the days, soonest first' },
    expired: { type: 'array', items: reportCert, description: 'good certificates past notAfter' },
    staleDevices: {
      type: 'array',
      description: 'devices past their renewal point (overdue) or whose current certificate expired (expired)',
      items: { type: 'object', properties: { id: { type: 'string' }, state: { type: 'string' }, status: { type: 'string', enum: ['overdue', 'expired'] }, serial: { type: 'string' }, notAfter: date, renewBy: date } },
    },
  },
} as const;

export interface WebhookBody {
  name: string;
  direction: 'inbound' | 'outbound';
  url?: string;
  thresholdsDays?: number[];
}
export const webhookBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'direction'],
  properties: {
    name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' },
    direction: { type: 'string', enum: ['inbound', 'outbound'] },
    url: { type: 'string', maxLength: 2048, description: 'outbound: where expiry notices are POSTed' },
    thresholdsDays: { type: 'array', minItems: 1, maxItems: 10, items: { type: 'integer', minimum: 1, maximum: 3650 }, description: 'outbound: days before expiry (default 30, 7, 1)' },
  },
} as const;
export const webhook = {
  type: 'object',
  properties: { name: { type: 'string' }, direction: { type: 'string', enum: ['inbound', 'outbound'] }, url: nullable({ type: 'string' }), thresholdsDays: { type: 'array', items: { type: 'integer' } }, createdAt: date },
} as const;
export const webhookCreated = { type: 'object', properties: { ...webhook.properties, secret: { type: 'string', description: 'the HMAC-SHA256 secret, shown once' } } } as const;
export const webhookNameParam = { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } }, required: ['name'] } as const;

export const hookHeaders = {
  type: 'object',
  properties: {
    'x-fleetpki-source': { type: 'string', maxLength: 63, description: 'the inbound webhook name' },
    'x-fleetpki-signature': { type: 'string', maxLength: 80, description: 'sha256=<hex HMAC-SHA256 of the raw body under the webhook secret>' },
  },
} as const;
export const hookResult = { type: 'object', properties: { device: { type: 'string' }, state: { type: 'string' }, event: deviceEvent } } as const;

export interface OperatorCertBody {
  serial: string;
  name: string;
  role: string;
}
export const operatorCertBody = {
  type: 'object',
  additionalProperties: false,
  required: ['serial', 'name', 'role'],
  properties: { serial: { type: 'string', maxLength: 64 }, name: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' }, role: { type: 'string', enum: [...ROLES] } },
} as const;
export const operatorCert = { type: 'object', properties: { serial: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' }, createdAt: date } } as const;
