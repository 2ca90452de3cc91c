/**
 * The Store over Kysely, shared by SQLite and PostgreSQL. What differs between
 * them (how a write transaction starts, how the audit chain is locked) comes in
 * as DialectHooks; everything else is one code path, so both backends behave
 * the same in the conformance suite.
 */
import { sql, type Kysely, type Selectable } from 'kysely';
import { systemClock, type Clock } from '../clock.js';
import { ProblemError, rethrowAs } from '../errors.js';
import { auditEntryHash, GENESIS_HASH } from './audit_chain.js';
import { migrateToLatest } from './migrations.js';
import type { ApiTokenTable, AuditLogTable, CaTable, CertificateTable, Database, SqlDialect } from './schema.js';
import {
  ROLES,
  type ApiTokenRecord,
  type AuditEntry,
  type AuditInput,
  type AuditQuery,
  type CaRecord,
  type CertificateQuery,
  type CertificateRecord,
  type Revocation,
  type Store,
} from './store.js';

export type StoreLock = 'audit' | 'migrate';

export interface DialectHooks {
  readonly kind: SqlDialect;
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  writeTransaction<T>(db: Kysely<Database>, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Takes `lock` until the transaction ends. A no-op where writeTransaction
   * already excludes every other writer (SQLite's BEGIN IMMEDIATE).
   */
  lock(trx: Kysely<Database>, lock: StoreLock): Promise<void>;
}

export interface StoreOptions {
  /** Stamps audit entries; tests pass a FakeClock. */
  clock?: Clock;
}

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;

export class KyselyStore implements Store {
  readonly kind: SqlDialect;
  private readonly clock: Clock;

  /** `db` is public for maintenance tools and tests; domain code uses the Store methods. */
  constructor(
    readonly db: Kysely<Database>,
    private readonly hooks: DialectHooks,
    options: StoreOptions = {},
  ) {
    this.kind = hooks.kind;
    this.clock = options.clock ?? systemClock;
  }

  async migrate(): Promise<void> {
    await migrateToLatest(this.kind, (fn) =>
      this.write(async (trx) => {
        await this.hooks.lock(trx, 'migrate');
        return fn(trx);
      }),
    );
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }

  // --- certificate authorities ---

  insertCa(ca: CaRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('cas').values(caToRow(ca)).execute(), {
        unique: `a CA named "${ca.name}" exists`,
        foreignKey: `parent CA "${ca.parentName}" is not in the store`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getCa(name: string): Promise<CaRecord | undefined> {
    const row = await this.db.selectFrom('cas').selectAll().where('name', '=', name).executeTakeFirst();
    return row && rowToCa(row);
  }

  async listCas(): Promise<CaRecord[]> {
    const rows = await this.db.selectFrom('cas').selectAll().orderBy('name').execute();
    return rows.map(rowToCa);
  }

  setCaKeyRef(name: string, keyRef: string | undefined, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const r = await trx.updateTable('cas').set({ key_ref: keyRef ?? null }).where('name', '=', name).executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) throw new ProblemError('not_found', `no CA named "${name}"`);
      await this.appendAuditIn(trx, audit);
    });
  }

  // --- certificates ---

  insertCertificate(cert: CertificateRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('certificates').values(certificateToRow(cert)).execute(), {
        unique: `a certificate with serial ${cert.serial} exists`,
        foreignKey: `issuer CA "${cert.issuerCa}" is not in the store`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const row = await this.db.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
    return row && rowToCertificate(row);
  }

  async listCertificates(q: CertificateQuery = {}): Promise<CertificateRecord[]> {
    let query = this.db.selectFrom('certificates').selectAll();
    if (q.issuerCa !== undefined) query = query.where('issuer_ca', '=', q.issuerCa);
    if (q.status !== undefined) query = query.where('status', '=', q.status);
    if (q.profile !== undefined) query = query.where('profile', '=', q.profile);
    if (q.spkiSha256 !== undefined) query = query.where('spki_sha256', '=', q.spkiSha256);
    if (q.subjectContains !== undefined) {
      const pattern = `%${escapeLike(q.subjectContains.toLowerCase())}%`;
      query = query.where(sql<boolean>`lower(subject) like ${pattern} escape '\\'`);
    }
    if (q.afterSerial !== undefined) query = query.where('serial', '>', q.afterSerial);
    const rows = await query.orderBy('serial').limit(pageSize(q.limit)).execute();
    return rows.map(rowToCertificate);
  }

  async listExpiring(before: Date, limit?: number): Promise<CertificateRecord[]> {
    const rows = await this.db
      .selectFrom('certificates')
      .selectAll()
      .where('status', '=', 'good')
      .where('not_after', '<', toMs(before, 'before'))
      .orderBy('not_after')
      .orderBy('serial')
      .limit(pageSize(limit))
      .execute();
    return rows.map(rowToCertificate);
  }

  revokeCertificate(serial: string, revocation: Revocation, audit: AuditInput): Promise<CertificateRecord> {
    return this.write(async (trx) => {
      const row = await trx.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
      if (!row) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
      if (row.status === 'revoked') throw alreadyRevoked(serial);
      const change = {
        status: 'revoked' as const,
        revoked_at: toMs(revocation.revokedAt, 'revokedAt'),
        revocation_reason: revocation.reason,
        invalidity_date: optionalMs(revocation.invalidityDate, 'invalidityDate'),
      };
      const r = await translateConstraintErrors(
        // `status = 'good'` again: on PostgreSQL a concurrent revocation may have committed since the select.
        () => trx.updateTable('certificates').set(change).where('serial', '=', serial).where('status', '=', 'good').executeTakeFirst(),
        { check: `"${revocation.reason}" is not a revocation reason` },
      );
      if (Number(r.numUpdatedRows) === 0) throw alreadyRevoked(serial);
      await this.appendAuditIn(trx, audit);
      return rowToCertificate({ ...row, ...change });
    });
  }

  // --- API tokens ---

  insertToken(token: ApiTokenRecord, audit: AuditInput): Promise<void> {
    if (!ROLES.includes(token.role)) return Promise.reject(new ProblemError('bad_request', `unknown role "${token.role}"`));
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('api_tokens').values(tokenToRow(token)).execute(), {
        unique: `a token with id ${token.id} or the same secret exists`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async findTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined> {
    const row = await this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
    return row && rowToToken(row);
  }

  async listTokens(): Promise<ApiTokenRecord[]> {
    const rows = await this.db.selectFrom('api_tokens').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(rowToToken);
  }

  revokeToken(id: string, at: Date, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const r = await trx
        .updateTable('api_tokens')
        .set({ revoked_at: toMs(at, 'at') })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        const exists = await trx.selectFrom('api_tokens').select('id').where('id', '=', id).executeTakeFirst();
        if (!exists) throw new ProblemError('not_found', `no token with id ${id}`);
        throw new ProblemError('already_revoked', `token ${id} is revoked already`);
      }
      await this.appendAuditIn(trx, audit);
    });
  }

  // --- audit log ---

  appendAudit(entry: AuditInput): Promise<AuditEntry> {
    return this.write((trx) => this.appendAuditIn(trx, entry));
  }

  async listAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    let query = this.db.selectFrom('audit_log').selectAll();
    if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
    if (q.action !== undefined) query = query.where('action', '=', q.action);
    if (q.target !== undefined) query = query.where('target', '=', q.target);
    const rows = await query.orderBy('seq').limit(pageSize(q.limit)).execute();
    return rows.map(rowToAudit);
  }

  private write<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.hooks.writeTransaction(this.db, fn);
  }

  /**
   * Chains an entry onto the log inside the caller's transaction. The lock is
   * taken last, just before reading the chain's head, so it is held only for
   * the append and the commit; seq = head + 1 cannot collide while it is held.
   */
  private async appendAuditIn(trx: Kysely<Database>, input: AuditInput): Promise<AuditEntry> {
    const details = rethrowAs('bad_request', 'audit details must be JSON', () => JSON.parse(JSON.stringify(input.details ?? {})) as Record<string, unknown>);
    await this.hooks.lock(trx, 'audit');
    const head = await trx.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    const seq = head ? Number(head.seq) + 1 : 1;
    const at = this.clock.now();
    const prevHash = head?.hash ?? GENESIS_HASH;
    const hash = auditEntryHash(prevHash, { seq, at, actor: input.actor, action: input.action, target: input.target, details });
    const row: AuditLogTable = {
      seq,
      at: toMs(at, 'clock'),
      actor: input.actor,
      action: input.action,
      target: input.target ?? null,
      details: JSON.stringify(details),
      prev_hash: prevHash,
      hash,
    };
    await trx.insertInto('audit_log').values(row).execute();
    return rowToAudit(row);
  }
}

// --- errors ---

function alreadyRevoked(serial: string): ProblemError {
  return new ProblemError('already_revoked', `certificate ${serial} is revoked already`);
}

type ConstraintKind = 'unique' | 'foreignKey' | 'check';

/** better-sqlite3 (SQLITE_CONSTRAINT_*) and pg (SQLSTATE) codes for the constraints the schema has. */
function constraintKind(e: unknown): ConstraintKind | undefined {
  const code = (e as { code?: unknown })?.code;
  switch (code) {
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case '23505':
      return 'unique';
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
    case '23503':
      return 'foreignKey';
    case 'SQLITE_CONSTRAINT_CHECK':
    case '23514':
      return 'check';
    default:
      return undefined;
  }
}

const PROBLEM_FOR: Record<ConstraintKind, 'already_exists' | 'not_found' | 'bad_request'> = {
  unique: 'already_exists',
  foreignKey: 'not_found',
  check: 'bad_request',
};

/** Runs a statement and turns a constraint violation into the ProblemError the Store documents. */
async function translateConstraintErrors<T>(run: () => Promise<T>, details: Partial<Record<ConstraintKind, string>>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const kind = constraintKind(e);
    if (!kind) throw e;
    throw new ProblemError(PROBLEM_FOR[kind], details[kind] ?? `the record breaks a ${kind} constraint: ${(e as Error).message}`);
  }
}

// --- values ---

function pageSize(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE;
  if (!Number.isInteger(limit) || limit < 1) throw new ProblemError('bad_request', `limit must be a positive integer, got ${limit}`);
  return Math.min(limit, MAX_PAGE);
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function toMs(d: Date, field: string): number {
  const ms = d instanceof Date ? d.getTime() : NaN;
  if (!Number.isFinite(ms)) throw new ProblemError('bad_request', `${field} is not a valid date`);
  return ms;
}

function optionalMs(d: Date | undefined, field: string): number | null {
  return d === undefined ? null : toMs(d, field);
}

function optionalDate(ms: number | null): Date | undefined {
  return ms === null ? undefined : new Date(Number(ms));
}

/** Binds without copying; both drivers take a Buffer. */
function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain Uint8Array copy, so callers get exactly the interface's type. */
function fromBuffer(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** Drops undefined members, so optional fields are absent rather than present-and-undefined. */
function compact<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

// --- rows <-> records ---

function caToRow(ca: CaRecord): CaTable {
  return {
    name: ca.name,
    kind: ca.kind,
    parent_name: ca.parentName ?? null,
    subject: ca.subject,
    cert_der: toBuffer(ca.certDer),
    key_ref: ca.keyRef ?? null,
    not_before: toMs(ca.notBefore, 'notBefore'),
    not_after: toMs(ca.notAfter, 'notAfter'),
    created_at: toMs(ca.createdAt, 'createdAt'),
  };
}

function rowToCa(r: Selectable<CaTable>): CaRecord {
  return compact({
    name: r.name,
    kind: r.kind,
    parentName: r.parent_name ?? undefined,
    subject: r.subject,
    certDer: fromBuffer(r.cert_der),
    keyRef: r.key_ref ?? undefined,
    notBefore: new Date(Number(r.not_before)),
    notAfter: new Date(Number(r.not_after)),
    createdAt: new Date(Number(r.created_at)),
  });
}

function certificateToRow(c: CertificateRecord): CertificateTable {
  return {
    serial: c.serial,
    issuer_ca: c.issuerCa,
    profile: c.profile,
    subject: c.subject,
    sans: JSON.stringify(c.sans),
    not_before: toMs(c.notBefore, 'notBefore'),
    not_after: toMs(c.notAfter, 'notAfter'),
    spki_sha256: c.spkiSha256,
    der: toBuffer(c.der),
    status: c.status,
    revoked_at: c.revocation ? toMs(c.revocation.revokedAt, 'revokedAt') : null,
    revocation_reason: c.revocation?.reason ?? null,
    invalidity_date: optionalMs(c.revocation?.invalidityDate, 'invalidityDate'),
    created_at: toMs(c.createdAt, 'createdAt'),
    requester: c.requester,
  };
}

function rowToCertificate(r: Selectable<CertificateTable>): CertificateRecord {
  const revocation: Revocation | undefined =
    r.status === 'revoked' && r.revoked_at !== null && r.revocation_reason !== null
      ? compact({ revokedAt: new Date(Number(r.revoked_at)), reason: r.revocation_reason, invalidityDate: optionalDate(r.invalidity_date) })
      : undefined;
  return compact({
    serial: r.serial,
    issuerCa: r.issuer_ca,
    profile: r.profile,
    subject: r.subject,
    sans: JSON.parse(r.sans) as string[],
    notBefore: new Date(Number(r.not_before)),
    notAfter: new Date(Number(r.not_after)),
    spkiSha256: r.spki_sha256,
    der: fromBuffer(r.der),
    status: r.status,
    revocation,
    createdAt: new Date(Number(r.created_at)),
    requester: r.requester,
  });
}

function tokenToRow(t: ApiTokenRecord): ApiTokenTable {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    token_hash: t.tokenHash,
    created_at: toMs(t.createdAt, 'createdAt'),
    expires_at: optionalMs(t.expiresAt, 'expiresAt'),
    revoked_at: optionalMs(t.revokedAt, 'revokedAt'),
  };
}

function rowToToken(r: Selectable<ApiTokenTable>): ApiTokenRecord {
  return compact({
    id: r.id,
    name: r.name,
    role: r.role,
    tokenHash: r.token_hash,
    createdAt: new Date(Number(r.created_at)),
    expiresAt: optionalDate(r.expires_at),
    revokedAt: optionalDate(r.revoked_at),
  });
}

function rowToAudit(r: Selectable<AuditLogTable>): AuditEntry {
  return compact({
    seq: Number(r.seq),
    at: new Date(Number(r.at)),
    actor: r.actor,
    action: r.action,
    target: r.target ?? undefined,
    details: JSON.parse(r.details) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  });
}
