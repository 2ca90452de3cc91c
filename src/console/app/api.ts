/**
 * The console's only way to the server: the admin API and the session
 * routes, same origin, with the session cookie. State-changing requests carry
 * the session's CSRF token; refusals come back as ApiError with the API's
 * problem code and detail.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(detail);
  }
}

export interface Operator {
  name: string;
  role: string;
  permissions: string[];
}

let csrf = '';

export function setCsrf(token: string): void {
  csrf = token;
}

export async function call<T>(method: string, path: string, body?: unknown, accept = 'application/json'): Promise<T> {
  const headers: Record<string, string> = { accept };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  if (!res.ok) {
    if (type.includes('json')) {
      const p = (await res.json()) as { code?: string; detail?: string };
      throw new ApiError(res.status, p.code ?? 'error', p.detail ?? res.statusText);
    }
    throw new ApiError(res.status, 'error', res.statusText);
  }
  return (type.includes('json') ? res.json() : res.text()) as Promise<T>;
}

export const get = <T>(path: string) => call<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => call<T>('POST', path, body ?? {});

/** A query string from the set values of `q`. */
export function qs(q: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

// The JSON shapes of the API (docs/api.md, /api/v1/openapi.json).
export interface Device {
  id: string;
  state: string;
  profile: string;
  model: string | null;
  domain: string | null;
  owner: string | null;
  sans: string[];
  requireApproval: boolean;
  currentSerial: string | null;
  createdAt: string;
  updatedAt: string;
}
export interface Cert {
  serial: string;
  issuerCa: string;
  profile: string;
  subject: string;
  sans: string[];
  notBefore: string;
  notAfter: string;
  status: 'good' | 'revoked';
  revokedAt: string | null;
  revocationReason: string | null;
  requester: string;
  createdAt: string;
  pem?: string;
}
export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
}
export interface CrlHealth {
  ca: string;
  shard: number;
  kind: string;
  number: number;
  thisUpdate: string;
  nextUpdate: string;
  entries: number;
  status: 'current' | 'overdue';
}
export interface Ca {
  name: string;
  kind: string;
  parent: string | null;
  subject: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  keyOnline: boolean;
  keyAlgorithm: string;
  fingerprintSha256: string;
}
export interface Bucket {
  start: string;
  count: number;
}
export interface Overview {
  generatedAt: string;
  devices: Record<string, number>;
  expiringPerWeek: Bucket[];
  enrollmentsPerDay: Bucket[];
  recentRevocations: Array<{ serial: string; subject: string; issuerCa: string; revokedAt: string; reason: string; deviceId: string | null }>;
  cas: Array<{ name: string; kind: string; parent: string | null; subject: string; notAfter: string; keyOnline: boolean }>;
  crls: CrlHealth[];
}

export const DEVICE_STATES = ['registered', 'active', 'suspended', 'revoked', 'retired'];
export const REVOCATION_REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn', 'aACompromise'];
