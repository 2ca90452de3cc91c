/**
 * Operators and their roles: API bearer tokens (stored as SHA-256 hashes; the
 * token itself is shown once) and the permission each role carries. Every API
 * route names one permission; `authorize` is the only gate.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { ROLES, type ApiTokenRecord, type OperatorCertificateRecord, type Role, type Store } from '../store/store.js';

export const PERMISSIONS = ['ca:read', 'ca:admin', 'cert:read', 'cert:issue', 'cert:revoke', 'token:admin', 'audit:read', 'device:read', 'device:register', 'enrollment:approve', 'trust:admin', 'key:recover', 'firmware:sign', 'device:lifecycle', 'webhook:admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  // Key recovery and firmware signing are roles of their own, not admin
  // powers: an admin must create a key-recovery or firmware-signer token
  // (audited) to read an escrowed key or sign an image for the whole fleet.
  admin: PERMISSIONS.filter((p) => p !== 'key:recover' && p !== 'firmware:sign'),
  'ra-officer': ['ca:read', 'cert:read', 'cert:issue', 'cert:revoke', 'device:read', 'device:register', 'device:lifecycle', 'enrollment:approve'],
  auditor: ['ca:read', 'cert:read', 'audit:read', 'device:read'],
  'key-recovery': ['ca:read', 'cert:read', 'device:read', 'key:recover'],
  'firmware-signer': ['ca:read', 'firmware:sign'],
};

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export function roleAllows(role: Role, p: Permission): boolean {
  return ROLE_PERMISSIONS[role].includes(p);
}

/** The identity an adapter hands to the core after authenticating. */
export interface Operator {
  name: string;
  role: Role;
  /** Audit actor string, e.g. "token:alice", "cert:alice". */
  actor: string;
  /** The API token's id (rate limits count per token). */
  tokenId?: string;
}

export function authorize(op: Operator, p: Permission): void {
  if (!roleAllows(op.role, p)) throw new ProblemError('forbidden', `role ${op.role} may not ${p.replace(':', ' ')}`);
}

const TOKEN_PREFIX = 'fpk_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class Operators {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Creates a token; the returned secret is never stored and cannot be shown again. */
  async createToken(opts: { name: string; role: string; validDays?: number; actor: string }): Promise<{ token: string; record: ApiTokenRecord }> {
    if (!isRole(opts.role)) throw new ProblemError('bad_request', `unknown role "${opts.role}" (roles: ${ROLES.join(', ')})`);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(opts.name)) throw new ProblemError('bad_request', 'token names are 1-64 letters, digits, dots, dashes, underscores or @');
    if (opts.validDays !== undefined && !(Number.isInteger(opts.validDays) && opts.validDays > 0)) throw new ProblemError('bad_request', 'validDays must be a positive whole number');
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const record: ApiTokenRecord = {
      id: randomUUID(),
      name: opts.name,
      role: opts.role,
      tokenHash: hashToken(token),
      createdAt: now,
      expiresAt: opts.validDays ? new Date(now.getTime() + opts.validDays * 86_400_000) : undefined,
    };
    await this.store.insertToken(record, { actor: opts.actor, action: 'token.create', target: record.id, details: { name: record.name, role: record.role, expiresAt: record.expiresAt?.toISOString() } });
    return { token, record };
  }

  /** Resolves a bearer token to an operator; throws unauthorized otherwise. */
  async authenticate(token: string | undefined): Promise<Operator> {
    if (!token || !token.startsWith(TOKEN_PREFIX) || token.length > 200) throw new ProblemError('unauthorized', 'a valid bearer token is required');
    return this.authenticateTokenHash(hashToken(token));
  }

  /** The operator of a token known by its hash (a console session keeps only that); throws unauthorized. */
  async authenticateTokenHash(tokenHash: string): Promise<Operator> {
    const rec = await this.store.findTokenByHash(tokenHash);
    const now = this.clock.now();
    if (!rec || rec.revokedAt || (rec.expiresAt && rec.expiresAt <= now)) throw new ProblemError('unauthorized', 'the bearer token is unknown, expired or revoked');
    return { name: rec.name, role: rec.role, actor: `token:${rec.name}`, tokenId: rec.id };
  }

  async revokeToken(id: string, actor: string): Promise<void> {
    await this.store.revokeToken(id, this.clock.now(), { actor, action: 'token.revoke', target: id });
  }

  listTokens(): Promise<ApiTokenRecord[]> {
    return this.store.listTokens();
  }

  /**
   * Lets a certificate of ours sign an operator in (mutual TLS): it must be
   * in the store and good now; it is checked again at every request.
   */
  async addCertificate(o: { serial: string; name: string; role: string; actor: string }): Promise<OperatorCertificateRecord> {
    if (!isRole(o.role)) throw new ProblemError('bad_request', `unknown role "${o.role}" (roles: ${ROLES.join(', ')})`);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(o.name)) throw new ProblemError('bad_request', 'operator names are 1-64 letters, digits, dots, dashes, underscores or @');
    const cert = await this.store.getCertificate(o.serial);
    if (!cert) throw new ProblemError('not_found', `no certificate with serial ${o.serial}`);
    if (cert.status !== 'good') throw new ProblemError('conflict', `certificate ${o.serial} is revoked`);
    if (cert.notAfter <= this.clock.now()) throw new ProblemError('conflict', `certificate ${o.serial} has expired`);
    const rec: OperatorCertificateRecord = { serial: cert.serial, name: o.name, role: o.role, createdAt: this.clock.now() };
    await this.store.insertOperatorCertificate(rec, { actor: o.actor, action: 'operator.cert.add', target: cert.serial, details: { name: rec.name, role: rec.role, subject: cert.subject } });
    return rec;
  }

  listCertificates(): Promise<OperatorCertificateRecord[]> {
    return this.store.listOperatorCertificates();
  }

  async removeCertificate(serial: string, actor: string): Promise<void> {
    await this.store.removeOperatorCertificate(serial, { actor, action: 'operator.cert.remove', target: serial });
  }

  /**
   * Resolves a TLS client certificate (the listener verified its chain to
   * one of our CAs) to an operator: the very certificate must be in the
   * store, good (not revoked or on hold), within its validity and bound to
   * an operator. Throws unauthorized otherwise.
   */
  async authenticateCertificate(leaf: { serial: string; der: Uint8Array }): Promise<Operator> {
    const denied = (why: string) => new ProblemError('unauthorized', `the client certificate does not sign in an operator: ${why}`);
    const cert = await this.store.getCertificate(leaf.serial);
    if (!cert || Buffer.compare(Buffer.from(cert.der), Buffer.from(leaf.der)) !== 0) throw denied('not issued by this CA');
    if (cert.status !== 'good') throw denied(`certificate ${cert.serial} is revoked (${cert.revocation?.reason})`);
    const now = this.clock.now();
    if (cert.notAfter <= now || cert.notBefore > now) throw denied('expired or not yet valid');
    const op = await this.store.getOperatorCertificate(cert.serial);
    if (!op) throw denied(`certificate ${cert.serial} is bound to no operator`);
    return { name: op.name, role: op.role, actor: `cert:${op.name}` };
  }
}
