/** JSON schemas of the registry routes. */
import { DEVICE_STATES } from '../../store/store.js';

const id = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$' } as const;
const label = { type: 'string', maxLength: 128 } as const;
const domain = { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,62}$' } as const;

export interface DeviceBody {
  id: string;
  profile: string;
  model?: string;
  domain?: string;
  owner?: string;
  sans?: string[];
  orderId?: string;
  requireApproval?: boolean;
  attributes?: Record<string, string>;
}
const deviceProps = {
  id,
  profile: { type: 'string', maxLength: 64 },
  model: label,
  domain,
  owner: label,
  sans: { type: 'array', maxItems: 20, items: { type: 'string', maxLength: 256 }, description: 'extra dns:/ip:/uri: names (not domain URIs)' },
  orderId: { type: 'string', maxLength: 64 },
  requireApproval: { type: 'boolean' },
  attributes: { type: 'object', maxProperties: 50, additionalProperties: { type: 'string', maxLength: 1024 } },
} as const;
export const deviceBody = { type: 'object', additionalProperties: false, required: ['id', 'profile'], properties: { ...deviceProps, secret: { type: 'boolean', description: 'also create a one-time enrollment secret' } } } as const;

const nullable = (t: object) => ({ ...t, nullable: true });
export const device = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: [...DEVICE_STATES] },
    profile: { type: 'string' },
    model: nullable({ type: 'string' }),
    domain: nullable({ type: 'string' }),
    owner: nullable({ type: 'string' }),
    sans: { type: 'array', items: { type: 'string' } },
    orderId: nullable({ type: 'string' }),
    requireApproval: { type: 'boolean' },
    currentSerial: nullable({ type: 'string' }),
    stage: nullable({ type: 'string', description: 'the supply-chain stage an imported manifest handed the device over to' }),
    attributes: { type: 'object', additionalProperties: { type: 'string' } },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;
export const deviceWithSecret = { ...device, properties: { ...device.properties, secret: nullable({ type: 'string', description: 'one-time enrollment secret, shown once' }) } } as const;
export const deviceList = { type: 'object', properties: { items: { type: 'array', items: device }, next: nullable({ type: 'string' }) } } as const;

export const importBody = { type: 'object', additionalProperties: false, required: ['devices'], properties: { devices: { type: 'array', maxItems: 10000, items: { type: 'object' } } } } as const;
export const importResult = {
  type: 'object',
  properties: {
    registered: { type: 'integer' },
    alreadyRegistered: { type: 'array', items: { type: 'string' } },
    rejected: { type: 'array', items: { type: 'object', properties: { line: { type: 'integer' }, id: { type: 'string' }, reason: { type: 'string' } } } },
  },
} as const;

export interface DeviceQuery {
  state?: string;
  domain?: string;
  model?: string;
  profile?: string;
  owner?: string;
  after?: string;
  limit?: number;
}
export const deviceQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { state: { type: 'string', enum: [...DEVICE_STATES] }, domain: { type: 'string', maxLength: 64 }, model: label, profile: { type: 'string', maxLength: 64 }, owner: label, after: { type: 'string', maxLength: 64 }, limit: { type: 'integer', minimum: 1, maximum: 1000 } },
} as const;

export interface DevicePatchBody {
  state?: string;
  domain?: string | null;
  owner?: string | null;
  model?: string | null;
  sans?: string[];
  requireApproval?: boolean;
}
export const devicePatch = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { state: { type: 'string', enum: [...DEVICE_STATES] }, domain: nullable(domain), owner: nullable(label), model: nullable(label), sans: deviceProps.sans, requireApproval: { type: 'boolean' } },
} as const;

export const deviceIdParam = { type: 'object', properties: { id }, required: ['id'] } as const;
export const enrollmentIdParam = { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] } as const;
export const fingerprintParam = { type: 'object', properties: { fingerprint: { type: 'string', pattern: '^[0-9a-fA-F:]{64,95}$' } }, required: ['fingerprint'] } as const;
export const trustBody = { type: 'object', additionalProperties: false, required: ['pem'], properties: { pem: { type: 'string', maxLength: 65536 } } } as const;

export interface OrderBody {
  profile: string;
  quantity: number;
  model?: string;
  domain?: string;
  validDays?: number;
}
export const orderBody = {
  type: 'object',
  additionalProperties: false,
  required: ['profile', 'quantity'],
  properties: { profile: { type: 'string', maxLength: 64 }, quantity: { type: 'integer', minimum: 1, maximum: 10000000 }, model: label, domain, validDays: { type: 'integer', minimum: 1, maximum: 3650 } },
} as const;
export const enrollmentQuery = { type: 'object', additionalProperties: false, properties: { status: { type: 'string', enum: ['pending', 'approved', 'rejected', 'issued'] } } } as const;
