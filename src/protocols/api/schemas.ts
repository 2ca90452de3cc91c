/** JSON schemas of the admin API: request validation and OpenAPI in one place. */
import { REVOCATION_REASONS, ROLES } from '../../store/store.js';

const str = { type: 'string' } as const;
const nullableStr = { type: 'string', nullable: true } as const;
const date = { type: 'string', format: 'date-time' } as const;
const nullableDate = { type: 'string', format: 'date-time', nullable: true } as const;

export const nameParam = { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' } }, required: ['name'] } as const;
export const serialParam = { type: 'object', properties: { serial: { type: 'string', maxLength: 64 } }, required: ['serial'] } as const;
export const idParam = { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'] } as const;

export const ca = {
  type: 'object',
  properties: {
    name: str,
    kind: { type: 'string', enum: ['root', 'issuing'] },
    parent: nullableStr,
    subject: str,
    serial: str,
    notBefore: date,
    notAfter: date,
    keyOnline: { type: 'boolean' },
    keyUri: nullableStr,
    keyAlgorithm: str,
    pathLen: { type: 'integer', nullable: true },
    fingerprintSha256: str,
    pem: str,
  },
} as const;
export const caWithChain = { ...ca, properties: { ...ca.properties, chainPem: { type: 'string', description: 'This CA and its issuers up to the root, PEM' } } } as const;

const certProps = {
  serial: { type: 'string', description: 'lowercase hex' },
  issuerCa: str,
  profile: str,
  subject: str,
  sans: { type: 'array', items: { type: 'string', description: 'type:value, e.g. dns:a.example' } },
  notBefore: date,
  notAfter: date,
  status: { type: 'string', enum: ['good', 'revoked'] },
  revokedAt: nullableDate,
  revocationReason: nullableStr,
  invalidityDate: nullableDate,
  requester: str,
  createdAt: date,
  pem: str,
} as const;
export const cert = { type: 'object', properties: certProps } as const;
export const issued = { type: 'object', properties: { ...certProps, chainPem: { type: 'string', description: 'Issuing CA chain without the root, PEM' }, capped: { type: 'boolean', description: 'notAfter was shortened to the issuer notAfter' } } } as const;
export const certList = { type: 'object', properties: { items: { type: 'array', items: cert }, next: { ...nullableStr, description: 'pass as "after" for the next page' } } } as const;

export interface IssueBody {
  csr: string;
  profile: string;
  ca?: string;
  subject?: string;
  sans?: string[];
  validityDays?: number;
}
export const issueBody = {
  type: 'object',
  additionalProperties: false,
  required: ['csr', 'profile'],
  properties: {
    csr: { type: 'string', maxLength: 32768, description: 'PKCS#10 request, PEM' },
    profile: { type: 'string', maxLength: 64 },
    ca: { type: 'string', maxLength: 64, description: 'Issuing CA; default from the config' },
    subject: { type: 'string', maxLength: 1024, description: 'Subject to certify instead of the CSR\'s, e.g. "O=Acme, CN=dev-1"' },
    sans: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 1024 }, description: 'SANs to certify instead of the CSR\'s (dns:, ip:, uri:, email:)' },
    validityDays: { type: 'integer', minimum: 1, maximum: 36500 },
  },
} as const;

export interface ListQuery {
  status?: 'good' | 'revoked';
  ca?: string;
  profile?: string;
  subject?: string;
  after?: string;
  limit?: number;
}
export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['good', 'revoked'] },
    ca: { type: 'string', maxLength: 64 },
    profile: { type: 'string', maxLength: 64 },
    subject: { type: 'string', maxLength: 256, description: 'case-insensitive substring' },
    after: { type: 'string', maxLength: 64 },
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
  },
} as const;

export interface RevokeBody {
  reason: string;
  invalidityDate?: string;
}
export const revokeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['reason'],
  properties: {
    reason: { type: 'string', enum: Object.keys(REVOCATION_REASONS).filter((r) => r !== 'removeFromCRL') },
    invalidityDate: { type: 'string', format: 'date-time', description: 'RFC 5280 §5.3.2: when the key was (suspected) compromised' },
  },
} as const;

export const token = { type: 'object', properties: { id: str, name: str, role: str, createdAt: date, expiresAt: nullableDate, revokedAt: nullableDate } } as const;
export const tokenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role'],
  properties: { name: { type: 'string', maxLength: 64 }, role: { type: 'string', enum: [...ROLES] }, validDays: { type: 'integer', minimum: 1, maximum: 3650 } },
} as const;
export const tokenCreated = { type: 'object', properties: { id: str, name: str, role: str, token: { type: 'string', description: 'shown once' }, expiresAt: nullableDate } } as const;

export const auditQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { after: { type: 'integer', minimum: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000 }, action: { type: 'string', maxLength: 64 }, target: { type: 'string', maxLength: 128 } },
} as const;

export interface KeygenBody {
  profile: string;
  subject: string;
  sans?: string[];
  keyAlgorithm?: string;
  ca?: string;
  validityDays?: number;
  format?: 'pkcs12' | 'pkcs8';
  passphrase: string;
}
export const keygenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['profile', 'subject', 'passphrase'],
  properties: {
    profile: { type: 'string', maxLength: 64, description: 'A profile with "serverKeyGen": true' },
    subject: { type: 'string', maxLength: 1024, description: 'Subject, e.g. "O=Acme, CN=dev-1"' },
    sans: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 1024 } },
    keyAlgorithm: { type: 'string', maxLength: 32, description: 'Default: the profile\'s first key algorithm' },
    ca: { type: 'string', maxLength: 64 },
    validityDays: { type: 'integer', minimum: 1, maximum: 36500 },
    format: { type: 'string', enum: ['pkcs12', 'pkcs8'], default: 'pkcs12' },
    passphrase: { type: 'string', minLength: 12, maxLength: 1024, description: 'Encrypts the delivered key; never stored' },
  },
} as const;

export interface RecoverBody {
  format?: 'pkcs12' | 'pkcs8';
  passphrase: string;
}
export const recoverBody = {
  type: 'object',
  additionalProperties: false,
  required: ['passphrase'],
  properties: {
    format: { type: 'string', enum: ['pkcs12', 'pkcs8'], default: 'pkcs12' },
    passphrase: { type: 'string', minLength: 12, maxLength: 1024 },
  },
} as const;
