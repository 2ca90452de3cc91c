/**
 * The Store over Kysely, shared by SQLite and PostgreSQL. What differs between
 * them (how a write transaction starts, how the audit chain is locked) comes in
 * as DialectHooks; everything else is one code path, so both backends behave
 * the same in the conformance suite.
 */
import { CompiledQuery, sql, type Expression, type Insertable, type Kysely, type Selectable } from 'kysely';
import { systemClock, type Clock } from '../clock.js';
import { isProblem, ProblemError, rethrowAs } from '../errors.js';
import { ENROLLABLE_STATES, mayEnroll } from '../registry/lifecycle.js';
import { auditEntryHash, GENESIS_HASH } from './audit_chain.js';
import { CommitQueue, eachUnderSavepoint } from './group_commit.js';
import { migrateToLatest } from './migrations.js';
import type {
  ApiTokenTable,
  AuditLogTable,
  CaTable,
  CertificateTable,
  CmpTransactionTable,
  CrlTable,
  Database,
  DeviceEventTable,
  DeviceIdentityTable,
  DeviceTable,
  EnrollmentSecretTable,
  ExpiryNoticeTable,
  FirmwareSignerTable,
  ManifestEntryTable,
  ManifestTable,
  OcspSignerTable,
  OrderTable,
  PendingEnrollmentTable,
  SealingKeyTable,
  SqlDialect,
  SupplierAnchorTable,
  TrustAnchorTable,
  WebhookTable,
  OperatorCertificateTable,
} from './schema.js';
import {
  DEVICE_STATES,
  REVOCATION_REASONS,
  ROLES,
  type CertificateChange,
  type DayCount,
  type DeviceStateCounts,
  type RevokedColumns,
  type ApiTokenRecord,
  type ConsoleSessionRecord,
  type AuditEntry,
  type AuditInput,
  type AuditQuery,
  type CaRecord,
  type CertificateQuery,
  type CertificateRecord,
  type CmpTransactionPatch,
  type CmpTransactionRecord,
  type CrlRecord,
  type DeviceEventCommit,
  type DeviceEventRecord,
  type DevicePatch,
  type DeviceQuery,
  type DeviceIdentityRecord,
  type DeviceRecord,
  type DeviceUpdateGuard,
  type EnrollmentCommit,
  type EnrollmentSecretRecord,
  type ExpiryNoticeRecord,
  type OcspSignerRecord,
  type OperatorCertificateRecord,
  type StaleDevice,
  type WebhookRecord,
  type EscrowKeyRecord,
  type EscrowedKeyRecord,
  type FirmwareSignerRecord,
  type ManifestEntryRecord,
  type ManifestImport,
  type ManifestRecord,
  type OrderRecord,
  type PendingEnrollmentRecord,
  type PendingStatus,
  type ReleasedHold,
  type Revocation,
  type RevocationReason,
  type RevokedEntry,
  type SealingKeyRecord,
  type Store,
  type SupplierAnchorRecord,
  type TrustAnchorRecord,
} from './store.js';

export type StoreLock = 'audit' | 'migrate';

interface QueuedCertificate {
  cert: CertificateRecord;
  audit: AuditInput;
  resolve: () => void;
  reject: (e: unknown) => void;
}

interface PreparedCertificate {
  q: QueuedCertificate;
  row: Insertable<CertificateTable>;
}

/** `status = 'good'` as a literal, which a partial index `where status = 'good'` can serve (a bound value cannot). */
const GOOD = sql<boolean>`status = 'good'`;

/** Most certificates one group commit writes; more wait for the next. */
const CERT_BATCH = 2000;
/** Most writes one grouped transaction runs (groupedWrite); more wait for the next. */
const WRITE_BATCH = 256;

interface QueuedWrite {
  fn: (trx: Kysely<Database>) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

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
const DAY_MS = 86_400_000;
const MAX_PAGE = 1000;
/**
 * Rows per INSERT in a bulk registration: 13 bound values each stays far
 * below SQLite's (32766) and PostgreSQL's (65535) parameter limits.
 */
const BULK_ROWS = 500;
/** listRevoked pages: a CRL of a million entries is read in a few of them. */
const DEFAULT_REVOKED_PAGE = 10_000;
const MAX_REVOKED_PAGE = 100_000;

export type RevokedQuery = NonNullable<Parameters<Store['listRevoked']>[1]>;

/**
 * One page of listRevoked as rows: only the columns a CRL entry needs, all
 * held by certificates_crl (with a shard) or certificates_crl_all_shards
 * (without), walked in serial order: one index range scan, no sort, no table
 * access.
 */
function revokedRowsQuery(db: Kysely<Database>, ca: string, q: RevokedQuery) {
  let query = db
    .selectFrom('certificates')
    .select(['serial', 'revoked_at', 'revocation_reason', 'invalidity_date'])
    .where('issuer_ca', '=', ca)
    .where('status', '=', 'revoked');
  if (q.shard !== undefined) query = query.where('crl_shard', '=', shardNumber(q.shard, 'shard'));
  if (q.revokedSince !== undefined) query = query.where('revoked_at', '>=', toMs(q.revokedSince, 'revokedSince'));
  if (q.afterSerial !== undefined) query = query.where('serial', '>', q.afterSerial);
  return query.orderBy('serial').limit(pageSize(q.limit, DEFAULT_REVOKED_PAGE, MAX_REVOKED_PAGE));
}

const REASON_CODE_OF_PAGE = sql<number>`case ${sql.ref('page.revocation_reason')} ${sql.join(
  Object.entries(REVOCATION_REASONS).map(([name, code]) => sql`when ${sql.lit(name)} then ${sql.lit(code)}`),
  sql` `,
)} end`;
const REASON_BY_CODE: RevocationReason[] = [];
for (const [name, code] of Object.entries(REVOCATION_REASONS)) REASON_BY_CODE[code] = name as RevocationReason;

/**
 * The statement behind listRevoked: the page of revokedRowsQuery folded into
 * one row of four JSON arrays (serials, revocation times, reasons, invalidity
 * dates). Reading 100,000 rows one by one costs the driver an object, a
 * string and numbers per row and column, built through its native binding;
 * JSON.parse builds the same values in a fraction of that time, which halves
 * the time to read a million-entry CRL. Exported so the conformance suite can
 * check its plan.
 */
export function revokedPageQuery(db: Kysely<Database>, dialect: SqlDialect, ca: string, q: RevokedQuery = {}) {
  const jsonArray = (value: Expression<unknown>) =>
    dialect === 'sqlite'
      ? sql<string>`json_group_array(${value})`
      : // json_agg of no rows is null; as text, so both dialects hand back a string.
        sql<string | null>`json_agg(${value})::text`;
  return db.selectFrom(revokedRowsQuery(db, ca, q).as('page')).select([
    jsonArray(sql.ref('page.serial')).as('serials'),
    jsonArray(sql.ref('page.revoked_at')).as('revoked_at'),
    // Reasons travel as their RFC 5280 codes: numbers, not a string per entry.
    jsonArray(REASON_CODE_OF_PAGE).as('reasons'),
    jsonArray(sql.ref('page.invalidity_date')).as('invalidity_dates'),
  ]);
}

/**
 * The columns of a revokedPageQuery row, or undefined when they are not in
 * ascending serial order. Both databases feed an aggregate the rows of an
 * ordered subquery in that order, but neither promises it; the four arrays
 * always line up (one pass over the same rows).
 */
function revokedPageColumns(row: { serials: string | null; revoked_at: string | null; reasons: string | null; invalidity_dates: string | null }): RevokedColumns | undefined {
  if (row.serials === null) return { serials: [], revokedAt: [], reasons: [], invalidityDates: [] };
  const serials = JSON.parse(row.serials) as string[];
  // JS compares UTF-16 units, the databases bytes: the same for hex serials;
  // anything else that looks out of order takes the row-by-row path.
  for (let i = 1; i < serials.length; i++) if (!(serials[i - 1] < serials[i])) return undefined;
  return {
    serials,
    revokedAt: JSON.parse(row.revoked_at!) as number[],
    reasons: JSON.parse(row.reasons!) as number[],
    invalidityDates: JSON.parse(row.invalidity_dates!) as (number | null)[],
  };
}

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

  /**
   * Group commit: the certificates handed in while a commit is running (or
   * in the same turn of the event loop) wait and are then written together,
   * in one transaction with their audit entries, so many issuances share one
   * durable commit (one fsync on SQLite with synchronous=FULL, one COMMIT on
   * PostgreSQL). Each call still resolves only after the commit that holds
   * its certificate. A member that breaks a constraint (a duplicate serial)
   * is refused alone: the batch is retried one member at a time, each under
   * a savepoint, and the others commit.
   */
  insertCertificate(cert: CertificateRecord, audit: AuditInput): Promise<void> {
    return new Promise((resolve, reject) => this.certQueue.push({ cert, audit, resolve, reject }));
  }

  private readonly certQueue = new CommitQueue<QueuedCertificate>(CERT_BATCH, (batch) => this.commitCertificates(batch));
  /** Group commits of certificates so far, and the certificates they held (tests, benchmarks). */
  readonly certificateCommits = { commits: 0, certificates: 0 };

  /** Commits one batch; settles every member, never throws. */
  private async commitCertificates(batch: QueuedCertificate[]): Promise<void> {
    const items: PreparedCertificate[] = [];
    for (const q of batch) {
      try {
        items.push({ q, row: certificateToRow(q.cert) });
      } catch (e) {
        q.reject(e);
      }
    }
    if (!items.length) return;
    let failed = new Map<PreparedCertificate, unknown>();
    try {
      await this.write(async (trx) => {
        failed = new Map();
        if (items.length === 1) return this.insertCertificateRows(trx, items);
        // All in one bulk insert; if one breaks a constraint, one by one.
        const whole = await eachUnderSavepoint(trx, [items], (all) => this.insertCertificateRows(trx, all));
        if (whole.size) failed = await eachUnderSavepoint(trx, items, (it) => this.insertCertificateRows(trx, [it]));
      });
    } catch (e) {
      for (const it of items) it.q.reject(failed.get(it) ?? e);
      return;
    }
    this.certificateCommits.commits++;
    this.certificateCommits.certificates += items.length - failed.size;
    for (const it of items) {
      const e = failed.get(it);
      if (e === undefined) it.q.resolve();
      else it.q.reject(e);
    }
  }

  /** The rows of `items` and their audit entries, each certificate's status_seq its entry's seq. */
  private async insertCertificateRows(trx: Kysely<Database>, items: PreparedCertificate[]): Promise<void> {
    const entries = await this.appendAuditsIn(trx, items.map((it) => it.q.audit));
    const rows = items.map((it, i) => ({ ...it.row, status_seq: entries[i].seq }));
    const one = items.length === 1 ? items[0].q.cert : undefined;
    for (let i = 0; i < rows.length; i += BULK_ROWS) {
      const chunk = rows.slice(i, i + BULK_ROWS);
      await translateConstraintErrors(() => trx.executeQuery(bulkInsert(this.kind, 'certificates', chunk)), {
        unique: one ? `a certificate with serial ${one.serial} exists` : 'a certificate of the batch has a serial that exists',
        foreignKey: one ? `issuer CA "${one.issuerCa}" is not in the store` : 'a certificate of the batch names an issuer CA that is not in the store',
      });
    }
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
    if (q.deviceId !== undefined) query = query.where('device_id', '=', q.deviceId);
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
      // A literal, not a bound value: the planner matches it to the partial index (migration 11).
      .where(GOOD)
      .where('not_after', '<', toMs(before, 'before'))
      .orderBy('not_after')
      .orderBy('serial')
      .limit(pageSize(limit))
      .execute();
    return rows.map(rowToCertificate);
  }

  async countCertificatesPerDay(q: { by: 'notAfter' | 'createdAt'; from: Date; to: Date; devicesOnly?: boolean }): Promise<DayCount[]> {
    const col = q.by === 'notAfter' ? 'not_after' : 'created_at';
    // Integer division of integer epoch milliseconds: the same day number in SQLite and PostgreSQL.
    const day = sql<number>`${sql.ref(col)} / ${sql.lit(DAY_MS)}`;
    let query = this.db
      .selectFrom('certificates')
      .select([day.as('day'), (e) => e.fn.countAll<number>().as('n')])
      .where(col, '>=', toMs(q.from, 'from'))
      .where(col, '<', toMs(q.to, 'to'));
    if (q.by === 'notAfter') query = query.where(GOOD);
    if (q.devicesOnly) query = query.where('device_id', 'is not', null);
    const rows = await query.groupBy(day).orderBy(day).execute();
    return rows.map((r) => ({ day: Number(r.day) * DAY_MS, count: Number(r.n) }));
  }

  async listRecentRevocations(limit?: number): Promise<CertificateRecord[]> {
    const rows = await this.db.selectFrom('certificates').selectAll().where('status', '=', 'revoked').orderBy('revoked_at', 'desc').orderBy('serial').limit(pageSize(limit, 20)).execute();
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
        // A released hold that is revoked again is no longer "released".
        released_at: null,
      };
      const r = await translateConstraintErrors(
        // `status = 'good'` again: on PostgreSQL a concurrent revocation may have committed since the select.
        () => trx.updateTable('certificates').set(change).where('serial', '=', serial).where('status', '=', 'good').executeTakeFirst(),
        { check: `"${revocation.reason}" is not a revocation reason` },
      );
      if (Number(r.numUpdatedRows) === 0) throw alreadyRevoked(serial);
      await this.statusChanged(trx, serial, await this.appendAuditIn(trx, audit));
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

  // --- console sessions ---

  insertConsoleSession(c: ConsoleSessionRecord): Promise<void> {
    return this.write(async (trx) => {
      await trx.insertInto('console_sessions').values({ id_hash: c.idHash, token_hash: c.tokenHash, created_at: toMs(c.createdAt, 'createdAt'), last_seen: toMs(c.lastSeen, 'lastSeen') }).execute();
    });
  }

  async getConsoleSession(idHash: string): Promise<ConsoleSessionRecord | undefined> {
    const r = await this.db.selectFrom('console_sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    return r && { idHash: r.id_hash, tokenHash: r.token_hash, createdAt: new Date(Number(r.created_at)), lastSeen: new Date(Number(r.last_seen)) };
  }

  touchConsoleSession(idHash: string, at: Date): Promise<void> {
    return this.write(async (trx) => {
      await trx.updateTable('console_sessions').set({ last_seen: toMs(at, 'at') }).where('id_hash', '=', idHash).execute();
    });
  }

  deleteConsoleSession(idHash: string): Promise<void> {
    return this.write(async (trx) => {
      await trx.deleteFrom('console_sessions').where('id_hash', '=', idHash).execute();
    });
  }

  deleteStaleConsoleSessions(idleBefore: Date, createdBefore: Date): Promise<number> {
    return this.write(async (trx) => {
      const r = await trx
        .deleteFrom('console_sessions')
        .where((eb) => eb.or([eb('last_seen', '<', toMs(idleBefore, 'idleBefore')), eb('created_at', '<', toMs(createdBefore, 'createdBefore'))]))
        .executeTakeFirst();
      return Number(r.numDeletedRows);
    });
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

  async listCertificateChanges(afterSeq: number, limit = 1000): Promise<CertificateChange[]> {
    const rows = await this.db
      .selectFrom('certificates')
      .select(['serial', 'status_seq'])
      .where('status_seq', 'is not', null)
      .where('status_seq', '>', afterSeq)
      .orderBy('status_seq')
      .limit(pageSize(limit))
      .execute();
    return rows.map((r) => ({ seq: Number(r.status_seq), serial: r.serial }));
  }

  async lastAuditSeq(): Promise<number> {
    const head = await this.db.selectFrom('audit_log').select('seq').orderBy('seq', 'desc').limit(1).executeTakeFirst();
    return head ? Number(head.seq) : 0;
  }

  acquireLease(name: string, holder: string, until: Date, now: Date): Promise<boolean> {
    const expires = toMs(until, 'until');
    const nowMs = toMs(now, 'now');
    return this.write(async (trx) => {
      // The condition is in the UPDATE itself: of two nodes updating an
      // expired lease at once, PostgreSQL re-checks it for the second
      // after the first commits, and it no longer holds.
      const r = await trx
        .updateTable('leases')
        .set({ holder, expires_at: expires })
        .where('name', '=', name)
        .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<=', nowMs)]))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) > 0) return true;
      const ins = await trx.insertInto('leases').values({ name, holder, expires_at: expires }).onConflict((oc) => oc.column('name').doNothing()).executeTakeFirst();
      return Number(ins.numInsertedOrUpdatedRows ?? 0) > 0;
    });
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.write((trx) => trx.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute());
  }

  /** Puts a status change of `serial` on the change feed, under the seq of its audit entry. */
  private async statusChanged(trx: Kysely<Database>, serial: string, entry: AuditEntry): Promise<void> {
    await trx.updateTable('certificates').set({ status_seq: entry.seq }).where('serial', '=', serial).execute();
  }

  // --- devices (registry) ---

  insertDevice(d: DeviceRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = deviceToRow(d);
      await translateConstraintErrors(() => trx.insertInto('devices').values(row).execute(), {
        unique: `a device with id "${d.id}" exists`,
        foreignKey: `enrollment order ${d.orderId} is not in the store`,
        check: `device "${d.id}" has an invalid state "${d.state}"`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  insertDevices(ds: DeviceRecord[], audit: AuditInput): Promise<{ inserted: number; existing: string[] }> {
    return this.write(async (trx) => {
      const rows = ds.map(deviceToRow);
      // ON CONFLICT DO NOTHING rather than select-then-insert: on PostgreSQL a
      // concurrent registration of the same id waits and is then skipped.
      const insertedIds = new Set<string>();
      for (let i = 0; i < rows.length; i += BULK_ROWS) {
        const chunk = rows.slice(i, i + BULK_ROWS);
        const r = await translateConstraintErrors(
          () => trx.insertInto('devices').values(chunk).onConflict((oc) => oc.column('id').doNothing()).returning('id').execute(),
          {
            foreignKey: `an enrollment order named by a device in the batch is not in the store`,
            check: 'a device in the batch has an invalid state',
          },
        );
        for (const { id } of r) insertedIds.add(id);
      }
      // A device is "existing" if its id was taken before, or earlier in this batch.
      const existing: string[] = [];
      const counted = new Set<string>();
      for (const { id } of rows) {
        if (insertedIds.has(id) && !counted.has(id)) counted.add(id);
        else existing.push(id);
      }
      await this.appendAuditIn(trx, audit);
      return { inserted: counted.size, existing };
    });
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = await this.db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToDevice(row);
  }

  async countDevicesByState(): Promise<DeviceStateCounts> {
    const rows = await this.db.selectFrom('devices').select(['state', (e) => e.fn.countAll<number>().as('n')]).groupBy('state').execute();
    const counts = Object.fromEntries(DEVICE_STATES.map((s) => [s, 0])) as DeviceStateCounts;
    for (const r of rows) counts[r.state] = Number(r.n);
    return counts;
  }

  async listDevices(q: DeviceQuery = {}): Promise<DeviceRecord[]> {
    let query = this.db.selectFrom('devices').selectAll();
    if (q.state !== undefined) query = query.where('state', '=', q.state);
    if (q.domain !== undefined) query = query.where('domain', '=', q.domain);
    if (q.model !== undefined) query = query.where('model', '=', q.model);
    if (q.profile !== undefined) query = query.where('profile', '=', q.profile);
    if (q.owner !== undefined) query = query.where('owner', '=', q.owner);
    if (q.afterId !== undefined) query = query.where('id', '>', q.afterId);
    const rows = await query.orderBy('id').limit(pageSize(q.limit)).execute();
    return rows.map(rowToDevice);
  }

  updateDevice(id: string, patch: DevicePatch, at: Date, audit: AuditInput, guard: DeviceUpdateGuard = {}): Promise<DeviceRecord> {
    return this.write(async (trx) => {
      const change: Partial<DeviceTable> = devicePatchToRow(patch, at);
      if (guard.reregister) change.current_serial = null;
      // The state condition is part of the update itself, so a concurrent
      // enrollment or state change either happened before (no row matches)
      // or waits for this one.
      let update = trx.updateTable('devices').set(change).where('id', '=', id);
      if (guard.ifState !== undefined) update = update.where('state', '=', guard.ifState);
      const r = await translateConstraintErrors(() => update.executeTakeFirst(), {
        check: `"${patch.state}" is not a device state`,
      });
      if (Number(r.numUpdatedRows) === 0) {
        const now = await trx.selectFrom('devices').select('state').where('id', '=', id).executeTakeFirst();
        if (!now) throw noDevice(id);
        throw new ProblemError('conflict', `device ${id} became ${now.state} meanwhile (expected ${guard.ifState}); nothing was changed`);
      }
      if (guard.reregister) {
        await trx.deleteFrom('enrollment_secrets').where('device_id', '=', id).execute();
        await trx
          .updateTable('pending_enrollments')
          .set({ status: 'rejected', decided_at: toMs(at, 'at'), decided_by: audit.actor })
          .where('device_id', '=', id)
          .where('status', 'in', ['pending', 'approved'])
          .execute();
      }
      const row = await trx.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await this.appendAuditIn(trx, audit);
      return rowToDevice(row);
    });
  }

  putEnrollmentSecret(s: EnrollmentSecretRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = secretToRow(s);
      await translateConstraintErrors(
        () =>
          trx
            .insertInto('enrollment_secrets')
            .values(row)
            .onConflict((oc) =>
              oc.column('device_id').doUpdateSet({ secret_hash: row.secret_hash, created_at: row.created_at, expires_at: row.expires_at, used_at: row.used_at, sealed: row.sealed }),
            )
            .execute(),
        { foreignKey: `no device with id "${s.deviceId}"` },
      );
      await this.appendAuditIn(trx, audit);
    });
  }

  async getEnrollmentSecret(deviceId: string): Promise<EnrollmentSecretRecord | undefined> {
    const row = await this.db.selectFrom('enrollment_secrets').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
    return row && rowToSecret(row);
  }

  insertTrustAnchor(t: TrustAnchorRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = trustAnchorToRow(t);
      await translateConstraintErrors(() => trx.insertInto('trust_anchors').values(row).execute(), {
        unique: `trust anchor ${t.fingerprint} is trusted for ${t.purpose} already`,
        check: `"${t.purpose}" is not a trust anchor purpose`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async listTrustAnchors(purpose?: TrustAnchorRecord['purpose']): Promise<TrustAnchorRecord[]> {
    let query = this.db.selectFrom('trust_anchors').selectAll();
    if (purpose !== undefined) query = query.where('purpose', '=', purpose);
    const rows = await query.orderBy('added_at').orderBy('fingerprint').orderBy('purpose').execute();
    return rows.map(rowToTrustAnchor);
  }

  /** Removes the anchor for every purpose it is trusted for. */
  removeTrustAnchor(fingerprint: string, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const r = await trx.deleteFrom('trust_anchors').where('fingerprint', '=', fingerprint).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw new ProblemError('not_found', `no trust anchor with fingerprint ${fingerprint}`);
      await this.appendAuditIn(trx, audit);
    });
  }

  insertOrder(o: OrderRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = orderToRow(o);
      await translateConstraintErrors(() => trx.insertInto('orders').values(row).execute(), {
        unique: `an enrollment order with id ${o.id} exists`,
        check: `order ${o.id}: quantity must be positive and used between 0 and quantity`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getOrder(id: string): Promise<OrderRecord | undefined> {
    const row = await this.db.selectFrom('orders').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToOrder(row);
  }

  async listOrders(): Promise<OrderRecord[]> {
    const rows = await this.db.selectFrom('orders').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(rowToOrder);
  }

  insertPendingEnrollment(p: PendingEnrollmentRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = pendingToRow(p);
      await translateConstraintErrors(() => trx.insertInto('pending_enrollments').values(row).execute(), {
        unique: `a pending enrollment with id ${p.id} exists`,
        foreignKey: `no device with id "${p.deviceId}"`,
        check: `"${p.status}" is not a pending enrollment status`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async findPendingEnrollment(deviceId: string, spkiSha256: string): Promise<PendingEnrollmentRecord | undefined> {
    const row = await this.db
      .selectFrom('pending_enrollments')
      .selectAll()
      .where('device_id', '=', deviceId)
      .where('spki_sha256', '=', spkiSha256)
      .where('status', 'in', ['pending', 'approved', 'rejected'])
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && rowToPending(row);
  }

  async getPendingEnrollment(id: string): Promise<PendingEnrollmentRecord | undefined> {
    const row = await this.db.selectFrom('pending_enrollments').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToPending(row);
  }

  async listPendingEnrollments(status?: PendingStatus): Promise<PendingEnrollmentRecord[]> {
    let query = this.db.selectFrom('pending_enrollments').selectAll();
    if (status !== undefined) query = query.where('status', '=', status);
    const rows = await query.orderBy('created_at').orderBy('id').execute();
    return rows.map(rowToPending);
  }

  decidePendingEnrollment(id: string, status: 'approved' | 'rejected', by: string, at: Date, audit: AuditInput): Promise<PendingEnrollmentRecord> {
    if (status !== 'approved' && status !== 'rejected') {
      return Promise.reject(new ProblemError('bad_request', `a decision is "approved" or "rejected", not "${String(status)}"`));
    }
    return this.write(async (trx) => {
      const decidedAt = toMs(at, 'at');
      // `status = 'pending'` in the update itself: two officers deciding at once cannot both win.
      const r = await trx
        .updateTable('pending_enrollments')
        .set({ status, decided_at: decidedAt, decided_by: by })
        .where('id', '=', id)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      const row = await trx.selectFrom('pending_enrollments').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new ProblemError('not_found', `no pending enrollment with id ${id}`);
      if (Number(r.numUpdatedRows) === 0) throw new ProblemError('conflict', `enrollment ${id} is ${row.status}, not pending`);
      await this.appendAuditIn(trx, audit);
      return rowToPending(row);
    });
  }

  /**
   * Every step is a conditional statement whose row count is checked, in a
   * fixed order (secret, order, certificate, device, pending, audit), so two
   * enrollments racing for one secret or the last of an order cannot both
   * commit: on PostgreSQL the loser waits on the row lock and then sees the
   * winner's update; on SQLite writers are serialised. Any throw rolls back.
   */
  recordEnrollment(c: EnrollmentCommit, audit: AuditInput): Promise<void> {
    const { cert } = c;
    const deviceId = cert.deviceId;
    if (typeof deviceId !== 'string') return Promise.reject(new ProblemError('bad_request', 'an enrollment certificate needs a deviceId'));
    // Many devices enroll at once: their commits are shared (groupedWrite).
    return this.groupedWrite(async (trx) => {
      const now = toMs(c.now, 'now');
      const certRow = certificateToRow(cert);
      if (c.consumeSecretHash !== undefined) {
        const r = await trx
          .updateTable('enrollment_secrets')
          // The sealed copy goes with the use: a used secret is never opened again.
          .set({ used_at: now, sealed: null })
          .where('device_id', '=', deviceId)
          .where('secret_hash', '=', c.consumeSecretHash)
          .where('used_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) throw new ProblemError('unauthorized', 'the enrollment secret is unknown, used or expired');
      }

      if (c.redeemOrderId !== undefined) {
        const r = await trx
          .updateTable('orders')
          .set((eb) => ({ used: eb('used', '+', 1) }))
          .where('id', '=', c.redeemOrderId)
          .whereRef('used', '<', 'quantity')
          .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) throw new ProblemError('policy_violation', `enrollment order ${c.redeemOrderId} is exhausted or expired`);
      }

      await translateConstraintErrors(() => trx.insertInto('certificates').values(certRow).execute(), {
        unique: `a certificate with serial ${cert.serial} exists`,
        foreignKey: `issuer CA "${cert.issuerCa}" is not in the store`,
      });

      // Optimistic concurrency: the device must still hold the certificate the
      // enrollment saw, so two racing enrollments cannot both win (and both
      // spend an order's quota on one device).
      const d = await trx
        .updateTable('devices')
        .set({ state: 'active', current_serial: cert.serial, updated_at: now })
        .where('id', '=', deviceId)
        .where('state', 'in', [...ENROLLABLE_STATES])
        .where((eb) => (c.replacesSerial === undefined ? eb('current_serial', 'is', null) : eb('current_serial', '=', c.replacesSerial!)))
        .executeTakeFirst();
      if (Number(d.numUpdatedRows) === 0) {
        const device = await trx.selectFrom('devices').select(['state', 'current_serial']).where('id', '=', deviceId).executeTakeFirst();
        if (!device) throw noDevice(deviceId);
        if (!mayEnroll(device.state)) throw new ProblemError('forbidden', `device ${deviceId} is ${device.state}`);
        throw new ProblemError('conflict', `device ${deviceId} received another certificate meanwhile; retry the enrollment`);
      }

      if (c.pendingId !== undefined) {
        const p = await trx
          .updateTable('pending_enrollments')
          .set({ status: 'issued' })
          .where('id', '=', c.pendingId)
          .where('device_id', '=', deviceId)
          .where('status', '=', 'approved')
          .executeTakeFirst();
        if (Number(p.numUpdatedRows) === 0) {
          const pending = await trx.selectFrom('pending_enrollments').select(['status', 'device_id']).where('id', '=', c.pendingId).executeTakeFirst();
          if (!pending) throw new ProblemError('not_found', `no pending enrollment with id ${c.pendingId}`);
          if (pending.device_id !== deviceId) throw new ProblemError('conflict', `enrollment ${c.pendingId} belongs to device ${pending.device_id}, not ${deviceId}`);
          throw new ProblemError('conflict', `enrollment ${c.pendingId} is ${pending.status}, not approved`);
        }
      }

      if (c.admitStage !== undefined) {
        const e = await trx
          .updateTable('manifest_entries')
          .set({ used_at: now, used_serial: cert.serial })
          .where('device_id', '=', deviceId)
          .where('stage', '=', c.admitStage)
          .where('used_at', 'is', null)
          .executeTakeFirst();
        if (Number(e.numUpdatedRows) === 0) throw new ProblemError('conflict', `device ${deviceId} entered stage ${c.admitStage} meanwhile (or no manifest lists it for that stage); retry the enrollment`);
      }
      for (const id of c.identities ?? []) {
        if (id.deviceId !== deviceId) throw new ProblemError('bad_request', `an identity of device ${id.deviceId} in the enrollment of ${deviceId}`);
        await trx.insertInto('device_identities').values(identityToRow(id)).onConflict((oc) => oc.columns(['device_id', 'fingerprint']).doNothing()).execute();
      }

      await this.statusChanged(trx, c.cert.serial, await this.appendAuditIn(trx, audit));
    });
  }

  abandonCertificate(serial: string, revocation: Revocation, restoreSerial: string | undefined, audit: AuditInput): Promise<boolean> {
    return this.write(async (trx) => {
      const row = await trx.selectFrom('certificates').select(['status', 'device_id']).where('serial', '=', serial).executeTakeFirst();
      if (!row) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
      const revoked = await translateConstraintErrors(
        () =>
          trx
            .updateTable('certificates')
            .set({
              status: 'revoked',
              revoked_at: toMs(revocation.revokedAt, 'revokedAt'),
              revocation_reason: revocation.reason,
              invalidity_date: optionalMs(revocation.invalidityDate, 'invalidityDate'),
              released_at: null,
            })
            .where('serial', '=', serial)
            .where('status', '=', 'good')
            .executeTakeFirst(),
        { check: `"${revocation.reason}" is not a revocation reason` },
      );
      let restored = 0;
      if (row.device_id !== null) {
        // Only while it is still current: a later enrollment must not be undone.
        const r = await trx
          .updateTable('devices')
          .set(restoreSerial === undefined ? { current_serial: null, state: 'registered', updated_at: toMs(revocation.revokedAt, 'revokedAt') } : { current_serial: restoreSerial, updated_at: toMs(revocation.revokedAt, 'revokedAt') })
          .where('id', '=', row.device_id)
          .where('current_serial', '=', serial)
          .where('state', 'in', ['registered', 'active'])
          .executeTakeFirst();
        restored = Number(r.numUpdatedRows);
      }
      // Abandoning twice (two nodes sweeping) changes nothing the second time, and logs nothing.
      if (Number(revoked.numUpdatedRows) === 0 && restored === 0) return false;
      await this.appendAuditIn(trx, audit);
      return true;
    });
  }

  putSealingKey(k: SealingKeyRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('sealing_keys').values(sealingKeyToRow(k)).execute(), { unique: `a sealing key with id ${k.id} exists` });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getSealingKey(id?: string): Promise<SealingKeyRecord | undefined> {
    let q = this.db.selectFrom('sealing_keys').selectAll();
    q = id === undefined ? q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1) : q.where('id', '=', id);
    const row = await q.executeTakeFirst();
    return row && rowToSealingKey(row);
  }

  // --- CMP transactions ---

  async insertCmpTransaction(t: CmpTransactionRecord): Promise<void> {
    const row = cmpTransactionToRow(t);
    await translateConstraintErrors(() => this.db.insertInto('cmp_transactions').values(row).execute(), {
      unique: `transaction ID ${t.id} is in use`,
      check: `"${t.state}" is not a CMP transaction state`,
    });
  }

  async getCmpTransaction(id: string): Promise<CmpTransactionRecord | undefined> {
    const row = await this.db.selectFrom('cmp_transactions').selectAll().where('id', '=', id).executeTakeFirst();
    return row && rowToCmpTransaction(row);
  }

  updateCmpTransaction(id: string, from: { state: CmpTransactionRecord['state']; expectedNonce?: string }, patch: CmpTransactionPatch): Promise<CmpTransactionRecord> {
    return this.write(async (trx) => {
      let q = trx.updateTable('cmp_transactions').set(cmpPatchToRow(patch)).where('id', '=', id).where('state', '=', from.state);
      if (from.expectedNonce !== undefined) q = q.where('expected_nonce', '=', from.expectedNonce);
      const r = await translateConstraintErrors(() => q.executeTakeFirst(), { check: `"${patch.state}" is not a CMP transaction state` });
      const row = await trx.selectFrom('cmp_transactions').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) throw new ProblemError('not_found', `no CMP transaction ${id}`);
      if (Number(r.numUpdatedRows) === 0) throw new ProblemError('conflict', `CMP transaction ${id} is ${row.state}${from.expectedNonce !== undefined && row.expected_nonce !== from.expectedNonce ? ' and expects another nonce' : ''}`);
      return rowToCmpTransaction(row);
    });
  }

  async listDueCmpTransactions(now: Date, limit?: number): Promise<CmpTransactionRecord[]> {
    const rows = await this.db
      .selectFrom('cmp_transactions')
      .selectAll()
      .where('state', 'in', ['open', 'waiting', 'confirming'])
      .where('expires_at', '<', toMs(now, 'now'))
      .orderBy('expires_at')
      .orderBy('id')
      .limit(pageSize(limit))
      .execute();
    return rows.map(rowToCmpTransaction);
  }

  async pruneCmpTransactions(before: Date): Promise<number> {
    const r = await this.db.deleteFrom('cmp_transactions').where('state', '=', 'closed').where('updated_at', '<', toMs(before, 'before')).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  // --- revocation: CRLs, holds, OCSP signers ---

  async listRevoked(ca: string, q: RevokedQuery = {}): Promise<RevokedEntry[]> {
    const c = await this.listRevokedColumns(ca, q);
    const out = new Array<RevokedEntry>(c.serials.length);
    for (let i = 0; i < out.length; i++) {
      const e: RevokedEntry = { serial: c.serials[i], revokedAt: new Date(c.revokedAt[i]), reason: REASON_BY_CODE[c.reasons[i]] };
      const inv = c.invalidityDates[i];
      if (inv !== null) e.invalidityDate = new Date(inv);
      out[i] = e;
    }
    return out;
  }

  async listRevokedColumns(ca: string, q: RevokedQuery = {}): Promise<RevokedColumns> {
    const page = revokedPageColumns(await revokedPageQuery(this.db, this.kind, ca, q).executeTakeFirstOrThrow());
    if (page) return page;
    // The aggregate saw the rows out of order (see revokedPageColumns): read them one by one.
    const rows = await revokedRowsQuery(this.db, ca, q).execute();
    return {
      serials: rows.map((r) => r.serial),
      revokedAt: rows.map((r) => Number(r.revoked_at)),
      reasons: rows.map((r) => REVOCATION_REASONS[r.revocation_reason as RevocationReason]),
      invalidityDates: rows.map((r) => (r.invalidity_date === null ? null : Number(r.invalidity_date))),
    };
  }

  async countRevoked(ca: string, shard?: number): Promise<number> {
    let query = this.db
      .selectFrom('certificates')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('issuer_ca', '=', ca)
      .where('status', '=', 'revoked');
    if (shard !== undefined) query = query.where('crl_shard', '=', shardNumber(shard, 'shard'));
    const row = await query.executeTakeFirstOrThrow();
    return Number(row.n);
  }

  releaseHold(serial: string, at: Date, audit: AuditInput): Promise<CertificateRecord> {
    return this.write(async (trx) => {
      const change = { status: 'good' as const, revoked_at: null, revocation_reason: null, invalidity_date: null, released_at: toMs(at, 'at') };
      const row = await trx.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
      if (!row) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
      if (row.status !== 'revoked' || row.revocation_reason !== 'certificateHold') throw notOnHold(serial, row);
      // The hold again in the update: on PostgreSQL a concurrent release or
      // revocation may have committed since the select.
      const r = await trx
        .updateTable('certificates')
        .set(change)
        .where('serial', '=', serial)
        .where('status', '=', 'revoked')
        .where('revocation_reason', '=', 'certificateHold')
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0) {
        const now = await trx.selectFrom('certificates').select(['status', 'revocation_reason']).where('serial', '=', serial).executeTakeFirstOrThrow();
        throw notOnHold(serial, now);
      }
      await this.statusChanged(trx, serial, await this.appendAuditIn(trx, audit));
      return rowToCertificate({ ...row, ...change });
    });
  }

  /** In serial order; released holds are few, so this is one unpaged list. */
  async listReleasedHolds(ca: string, since: Date, shard?: number): Promise<ReleasedHold[]> {
    let query = this.db
      .selectFrom('certificates')
      .select(['serial', 'released_at'])
      .where('issuer_ca', '=', ca)
      // Spelled out so the partial index certificates_released applies.
      .where('released_at', 'is not', null)
      .where('released_at', '>=', toMs(since, 'since'));
    if (shard !== undefined) query = query.where('crl_shard', '=', shardNumber(shard, 'shard'));
    const rows = await query.orderBy('serial').execute();
    return rows.map((r) => ({ serial: r.serial, releasedAt: new Date(Number(r.released_at)) }));
  }

  /**
   * One upsert that returns the new value: SQLite runs it under BEGIN
   * IMMEDIATE (one writer per file across processes); on PostgreSQL the
   * conflicting row is locked until commit, so concurrent callers on any node
   * queue on it and each sees the previous one's number.
   */
  nextCrlNumber(ca: string): Promise<number> {
    return this.write(async (trx) => {
      const row = await translateConstraintErrors(
        () =>
          trx
            .insertInto('crl_counters')
            .values({ ca, last_number: 1 })
            .onConflict((oc) => oc.column('ca').doUpdateSet((eb) => ({ last_number: eb('crl_counters.last_number', '+', 1) })))
            .returning('last_number')
            .executeTakeFirstOrThrow(),
        { foreignKey: `no CA named "${ca}"` },
      );
      return Number(row.last_number);
    });
  }

  putCrl(crl: CrlRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = crlToRow(crl);
      await translateConstraintErrors(() => trx.insertInto('crls').values(row).execute(), {
        unique: `CA "${crl.ca}" has a ${crl.kind} CRL number ${crl.number} for shard ${crl.shard} already`,
        foreignKey: `no CA named "${crl.ca}"`,
        check: `invalid CRL record: kind is "base" or "delta", number is positive, and a delta CRL (only) has a baseNumber`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getLatestCrl(ca: string, shard: number, kind: 'base' | 'delta'): Promise<CrlRecord | undefined> {
    const row = await this.db
      .selectFrom('crls')
      .selectAll()
      .where('ca', '=', ca)
      .where('shard', '=', shard)
      .where('kind', '=', kind)
      .orderBy('number', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && rowToCrl(row);
  }

  /** Ordered by CA, shard and kind. Reads the DER of the newest CRLs only. */
  async listLatestCrls(): Promise<CrlRecord[]> {
    const rows = await this.db
      .selectFrom('crls as c')
      .innerJoin(
        (eb) =>
          eb
            .selectFrom('crls')
            .select(['ca', 'shard', 'kind'])
            .select((e) => e.fn.max('number').as('number'))
            .groupBy(['ca', 'shard', 'kind'])
            .as('m'),
        (join) => join.onRef('c.ca', '=', 'm.ca').onRef('c.shard', '=', 'm.shard').onRef('c.kind', '=', 'm.kind').onRef('c.number', '=', 'm.number'),
      )
      .selectAll('c')
      .orderBy('c.ca')
      .orderBy('c.shard')
      .orderBy('c.kind')
      .execute();
    return rows.map(rowToCrl);
  }

  /**
   * A loose index scan over certificates_crl: per status (the schema allows
   * only good and revoked), seek the next larger shard until there is none.
   * A handful of index lookups, however many certificates the CA has.
   */
  async listCrlShards(ca: string): Promise<number[]> {
    const shards = new Set<number>();
    for (const status of ['good', 'revoked'] as const) {
      for (let after = -1; ; ) {
        const row = await this.db
          .selectFrom('certificates')
          .select('crl_shard')
          .where('issuer_ca', '=', ca)
          .where('status', '=', status)
          .where('crl_shard', '>', after)
          .orderBy('crl_shard')
          .limit(1)
          .executeTakeFirst();
        if (!row) break;
        after = Number(row.crl_shard);
        shards.add(after);
      }
    }
    return [...shards].sort((a, b) => a - b);
  }

  /** Every status, spelled out so the count walks certificates_crl. */
  async countInShard(ca: string, shard: number): Promise<number> {
    const row = await this.db
      .selectFrom('certificates')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('issuer_ca', '=', ca)
      .where('status', 'in', ['good', 'revoked'])
      .where('crl_shard', '=', shardNumber(shard, 'shard'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  putOcspSigner(s: OcspSignerRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const row = ocspSignerToRow(s);
      await translateConstraintErrors(() => trx.insertInto('ocsp_signers').values(row).execute(), {
        foreignKey: `no CA named "${s.ca}"`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getOcspSigner(ca: string): Promise<OcspSignerRecord | undefined> {
    const row = await this.db
      .selectFrom('ocsp_signers')
      .select(['ca', 'key_ref', 'cert_der', 'not_after', 'created_at'])
      .where('ca', '=', ca)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row && rowToOcspSigner(row);
  }

  putEscrowKey(k: EscrowKeyRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('escrow_keys').values({ key_ref: k.keyRef, spki: toBuffer(k.spki), created_at: toMs(k.createdAt, 'createdAt') }).execute(), {
        unique: `escrow key ${k.keyRef} exists`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getEscrowKey(): Promise<EscrowKeyRecord | undefined> {
    const row = await this.db.selectFrom('escrow_keys').selectAll().orderBy('created_at', 'desc').orderBy('key_ref', 'desc').limit(1).executeTakeFirst();
    return row && { keyRef: row.key_ref, spki: fromBuffer(row.spki), createdAt: new Date(Number(row.created_at)) };
  }

  putEscrowedKey(k: EscrowedKeyRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(
        () => trx.insertInto('escrowed_keys').values({ serial: k.serial, escrow_key_ref: k.escrowKeyRef, envelope: toBuffer(k.envelope), created_at: toMs(k.createdAt, 'createdAt') }).execute(),
        { unique: `certificate ${k.serial} has an escrowed key already`, foreignKey: `no certificate ${k.serial} or escrow key ${k.escrowKeyRef}` },
      );
      await this.appendAuditIn(trx, audit);
    });
  }

  async getEscrowedKey(serial: string): Promise<EscrowedKeyRecord | undefined> {
    const row = await this.db.selectFrom('escrowed_keys').selectAll().where('serial', '=', serial).executeTakeFirst();
    return row && { serial: row.serial, escrowKeyRef: row.escrow_key_ref, envelope: fromBuffer(row.envelope), createdAt: new Date(Number(row.created_at)) };
  }

  // --- supply chain ---

  insertSupplierAnchor(a: SupplierAnchorRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('supplier_anchors').values(supplierAnchorToRow(a)).execute(), {
        unique: `CA ${a.fingerprint} is trusted for a supplier already`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async listSupplierAnchors(supplier?: string): Promise<SupplierAnchorRecord[]> {
    let q = this.db.selectFrom('supplier_anchors').selectAll();
    if (supplier !== undefined) q = q.where('supplier', '=', supplier);
    const rows = await q.orderBy('added_at').orderBy('fingerprint').execute();
    return rows.map(rowToSupplierAnchor);
  }

  removeSupplier(supplier: string, audit: AuditInput): Promise<number> {
    return this.write(async (trx) => {
      const r = await trx.deleteFrom('supplier_anchors').where('supplier', '=', supplier).executeTakeFirst();
      const n = Number(r.numDeletedRows);
      if (n === 0) throw new ProblemError('not_found', `no trusted supplier "${supplier}"`);
      await this.appendAuditIn(trx, audit);
      return n;
    });
  }

  importManifest(i: ManifestImport, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('manifests').values(manifestToRow(i.manifest)).execute(), {
        unique: `manifest ${i.manifest.digest} was imported before (a replay)`,
      });
      const devices = i.newDevices.map(deviceToRow);
      for (let k = 0; k < devices.length; k += BULK_ROWS) {
        const chunk = devices.slice(k, k + BULK_ROWS);
        await asConflict(() => translateConstraintErrors(() => trx.insertInto('devices').values(chunk).execute(), {
          unique: 'a device of the manifest was registered meanwhile; nothing was imported, retry',
          check: 'a device of the manifest has an invalid state',
        }));
      }
      const at = toMs(i.now, 'now');
      for (const m of i.movedDevices) {
        let u = trx
          .updateTable('devices')
          .set({ ...devicePatchToRow(m.patch, i.now), stage: i.manifest.stage, updated_at: at })
          .where('id', '=', m.id)
          .where('state', '=', m.ifState);
        u = m.ifStage === undefined ? u.where('stage', 'is', null) : u.where('stage', '=', m.ifStage);
        const r = await u.executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) throw new ProblemError('conflict', `device ${m.id} changed meanwhile; nothing was imported, retry`);
      }
      const entries = i.entries.map(manifestEntryToRow);
      for (let k = 0; k < entries.length; k += BULK_ROWS) {
        const chunk = entries.slice(k, k + BULK_ROWS);
        await asConflict(() => translateConstraintErrors(() => trx.insertInto('manifest_entries').values(chunk).execute(), {
          unique: `a device of the manifest is in stage ${i.manifest.stage} already (listed by an earlier manifest); nothing was imported`,
          foreignKey: 'a manifest entry names a device that is not registered',
          check: 'a manifest entry needs exactly one of certificateSha256 and publicKeySha256',
        }));
      }
      await this.appendAuditIn(trx, audit);
    });
  }

  async getManifest(digest: string): Promise<ManifestRecord | undefined> {
    const row = await this.db.selectFrom('manifests').selectAll().where('digest', '=', digest).executeTakeFirst();
    return row && rowToManifest(row);
  }

  async listManifests(q: { supplier?: string; limit?: number } = {}): Promise<ManifestRecord[]> {
    let query = this.db.selectFrom('manifests').selectAll();
    if (q.supplier !== undefined) query = query.where('supplier', '=', q.supplier);
    const rows = await query.orderBy('imported_at', 'desc').orderBy('digest').limit(pageSize(q.limit)).execute();
    return rows.map(rowToManifest);
  }

  async getManifestEntry(deviceId: string, stage: string): Promise<ManifestEntryRecord | undefined> {
    const row = await this.db.selectFrom('manifest_entries').selectAll().where('device_id', '=', deviceId).where('stage', '=', stage).executeTakeFirst();
    return row && rowToManifestEntry(row);
  }

  async listManifestEntries(q: { deviceId: string } | { manifestDigest: string }): Promise<ManifestEntryRecord[]> {
    if ('deviceId' in q) {
      const rows = await this.db
        .selectFrom('manifest_entries')
        .innerJoin('manifests', 'manifests.digest', 'manifest_entries.manifest_digest')
        .selectAll('manifest_entries')
        .where('manifest_entries.device_id', '=', q.deviceId)
        .orderBy('manifests.imported_at')
        .orderBy('manifest_entries.stage')
        .execute();
      return rows.map(rowToManifestEntry);
    }
    const rows = await this.db.selectFrom('manifest_entries').selectAll().where('manifest_digest', '=', q.manifestDigest).orderBy('device_id').execute();
    return rows.map(rowToManifestEntry);
  }

  async listDeviceIdentities(deviceId: string): Promise<DeviceIdentityRecord[]> {
    const rows = await this.db.selectFrom('device_identities').selectAll().where('device_id', '=', deviceId).orderBy('recorded_at').orderBy('kind', 'desc').orderBy('fingerprint').execute();
    return rows.map(rowToIdentity);
  }

  insertFirmwareSigner(f: FirmwareSignerRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('firmware_signers').values(firmwareSignerToRow(f)).execute(), {
        unique: `a firmware signer named "${f.name}" (or with certificate ${f.serial}) exists`,
        foreignKey: `no CA "${f.ca}" or no certificate ${f.serial}`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getFirmwareSigner(name: string): Promise<FirmwareSignerRecord | undefined> {
    const row = await this.db.selectFrom('firmware_signers').selectAll().where('name', '=', name).executeTakeFirst();
    return row && rowToFirmwareSigner(row);
  }

  async listFirmwareSigners(): Promise<FirmwareSignerRecord[]> {
    const rows = await this.db.selectFrom('firmware_signers').selectAll().orderBy('created_at', 'desc').orderBy('name').execute();
    return rows.map(rowToFirmwareSigner);
  }

  // --- lifecycle, webhooks, expiry watch, operator certificates ---

  recordDeviceEvent(c: DeviceEventCommit, audit: AuditInput): Promise<{ device: DeviceRecord; event: DeviceEventRecord }> {
    return this.write(async (trx) => {
      const id = c.event.deviceId;
      if (c.delivery) {
        const d = c.delivery;
        const taken = await trx.insertInto('webhook_deliveries').values({ source: d.source, delivery_id: d.id, received_at: toMs(d.receivedAt, 'receivedAt') }).onConflict((oc) => oc.columns(['source', 'delivery_id']).doNothing()).executeTakeFirst();
        if (Number(taken.numInsertedOrUpdatedRows ?? 0) === 0) throw new ProblemError('conflict', `delivery ${d.id} from ${d.source} was received before (a replay); nothing was changed`);
      }
      // The device first, guarded by the state and certificate the caller read:
      // a concurrent event or enrollment either committed before (no row
      // matches: conflict) or waits for this transaction.
      const change: Partial<DeviceTable> = devicePatchToRow(c.patch, c.event.at);
      if (c.reregister) change.current_serial = null;
      let update = trx.updateTable('devices').set(change).where('id', '=', id).where('state', '=', c.ifState);
      update = c.ifCurrentSerial === undefined ? update.where('current_serial', 'is', null) : update.where('current_serial', '=', c.ifCurrentSerial);
      const u = await translateConstraintErrors(() => update.executeTakeFirst(), { check: `"${c.patch.state}" is not a device state` });
      if (Number(u.numUpdatedRows) === 0) {
        const now = await trx.selectFrom('devices').select('state').where('id', '=', id).executeTakeFirst();
        if (!now) throw noDevice(id);
        throw new ProblemError('conflict', `device ${id} changed meanwhile (it is ${now.state}); nothing was changed`);
      }
      const revoked: string[] = [];
      if (c.revocation) {
        const r = c.revocation;
        const rev = { status: 'revoked' as const, revoked_at: toMs(r.revokedAt, 'revokedAt'), revocation_reason: r.reason, invalidity_date: optionalMs(r.invalidityDate, 'invalidityDate'), released_at: null };
        // Good certificates, and (for a permanent reason) those on hold: a hold may become a revocation, never the reverse.
        let q = trx.selectFrom('certificates').select('serial').where('device_id', '=', id);
        q = r.reason === 'certificateHold' ? q.where('status', '=', 'good') : q.where((eb) => eb.or([eb('status', '=', 'good'), eb.and([eb('status', '=', 'revoked'), eb('revocation_reason', '=', 'certificateHold')])]));
        const rows = await q.orderBy('serial').execute();
        for (const { serial } of rows) {
          await translateConstraintErrors(() => trx.updateTable('certificates').set(rev).where('serial', '=', serial).execute(), { check: `"${r.reason}" is not a revocation reason` });
          revoked.push(serial);
        }
      }
      if (c.reregister) {
        await trx.deleteFrom('enrollment_secrets').where('device_id', '=', id).execute();
        await trx
          .updateTable('pending_enrollments')
          .set({ status: 'rejected', decided_at: toMs(c.event.at, 'at'), decided_by: audit.actor })
          .where('device_id', '=', id)
          .where('status', 'in', ['pending', 'approved'])
          .execute();
      }
      const entry = await this.appendAuditIn(trx, { ...audit, details: { ...audit.details, revoked } });
      const event: DeviceEventRecord = { ...c.event, revokedSerials: revoked, auditSeq: entry.seq };
      await translateConstraintErrors(() => trx.insertInto('device_events').values(deviceEventToRow(event)).execute(), { check: `device event "${event.kind}" is not valid`, unique: `device event ${event.id} exists` });
      for (const serial of revoked) await this.statusChanged(trx, serial, entry);
      const row = await trx.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return { device: rowToDevice(row), event };
    });
  }

  async listDeviceEvents(deviceId: string): Promise<DeviceEventRecord[]> {
    const rows = await this.db.selectFrom('device_events').selectAll().where('device_id', '=', deviceId).orderBy('audit_seq').execute();
    return rows.map(rowToDeviceEvent);
  }

  async pruneWebhookDeliveries(before: Date): Promise<number> {
    const r = await this.db.deleteFrom('webhook_deliveries').where('received_at', '<', toMs(before, 'before')).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  insertWebhook(w: WebhookRecord, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('webhooks').values(webhookToRow(w)).execute(), {
        unique: `a webhook named "${w.name}" exists`,
        check: 'an outbound webhook needs a URL, an inbound one has none',
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getWebhook(name: string): Promise<WebhookRecord | undefined> {
    const row = await this.db.selectFrom('webhooks').selectAll().where('name', '=', name).executeTakeFirst();
    return row && rowToWebhook(row);
  }

  async listWebhooks(direction?: WebhookRecord['direction']): Promise<WebhookRecord[]> {
    let q = this.db.selectFrom('webhooks').selectAll();
    if (direction) q = q.where('direction', '=', direction);
    return (await q.orderBy('name').execute()).map(rowToWebhook);
  }

  removeWebhook(name: string, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      await trx.deleteFrom('expiry_notices').where('webhook', '=', name).execute();
      const r = await trx.deleteFrom('webhooks').where('name', '=', name).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw new ProblemError('not_found', `no webhook named "${name}"`);
      await this.appendAuditIn(trx, audit);
    });
  }

  async recordExpiryNotices(n: ExpiryNoticeRecord[]): Promise<void> {
    if (n.length === 0) return;
    const rows: ExpiryNoticeTable[] = n.map((x) => ({ webhook: x.webhook, serial: x.serial, threshold_days: wholeNumber(x.thresholdDays, 'thresholdDays'), sent_at: toMs(x.sentAt, 'sentAt') }));
    await this.write(async (trx) => {
      for (let i = 0; i < rows.length; i += BULK_ROWS) {
        await translateConstraintErrors(() => trx.insertInto('expiry_notices').values(rows.slice(i, i + BULK_ROWS)).onConflict((oc) => oc.columns(['webhook', 'serial', 'threshold_days']).doNothing()).execute(), {
          foreignKey: 'the webhook is not in the store',
        });
      }
    });
  }

  async listExpiryNotices(webhook: string, serials: string[]): Promise<ExpiryNoticeRecord[]> {
    const out: ExpiryNoticeRecord[] = [];
    for (let i = 0; i < serials.length; i += BULK_ROWS) {
      const rows = await this.db.selectFrom('expiry_notices').selectAll().where('webhook', '=', webhook).where('serial', 'in', serials.slice(i, i + BULK_ROWS)).execute();
      out.push(...rows.map((r) => ({ webhook: r.webhook, serial: r.serial, thresholdDays: Number(r.threshold_days), sentAt: new Date(Number(r.sent_at)) })));
    }
    return out;
  }

  async listStaleDevices(now: Date, share: number, limit?: number): Promise<StaleDevice[]> {
    if (!(share > 0 && share <= 1)) throw new ProblemError('bad_request', 'the renewal share is a number above 0 and at most 1');
    const nowMs = toMs(now, 'now');
    // Renewal point = not_before + share * (not_after - not_before), in whole ms; per mille keeps the arithmetic integer on both backends.
    const perMille = Math.round(share * 1000);
    const rows = await this.db
      .selectFrom('devices')
      .innerJoin('certificates', 'certificates.serial', 'devices.current_serial')
      .selectAll('devices')
      .select(['certificates.serial as c_serial'])
      .where('devices.state', 'in', ['active', 'suspended', 'registered'])
      .where(sql<boolean>`certificates.not_before * 1000 + (certificates.not_after - certificates.not_before) * ${perMille} < ${nowMs * 1000}`)
      .orderBy('certificates.not_after')
      .orderBy('devices.id')
      .limit(pageSize(limit))
      .execute();
    const out: StaleDevice[] = [];
    for (const r of rows) {
      const cert = await this.getCertificate(r.c_serial);
      if (cert) out.push({ device: rowToDevice(r), certificate: cert });
    }
    return out;
  }

  insertOperatorCertificate(o: OperatorCertificateRecord, audit: AuditInput): Promise<void> {
    if (!ROLES.includes(o.role)) return Promise.reject(new ProblemError('bad_request', `unknown role "${o.role}"`));
    return this.write(async (trx) => {
      await translateConstraintErrors(() => trx.insertInto('operator_certificates').values({ serial: o.serial, name: o.name, role: o.role, created_at: toMs(o.createdAt, 'createdAt') }).execute(), {
        unique: `certificate ${o.serial} already signs in an operator`,
        foreignKey: `no certificate with serial ${o.serial}`,
        check: `unknown role "${o.role}"`,
      });
      await this.appendAuditIn(trx, audit);
    });
  }

  async getOperatorCertificate(serial: string): Promise<OperatorCertificateRecord | undefined> {
    const row = await this.db.selectFrom('operator_certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
    return row && rowToOperatorCertificate(row);
  }

  async listOperatorCertificates(): Promise<OperatorCertificateRecord[]> {
    return (await this.db.selectFrom('operator_certificates').selectAll().orderBy('name').orderBy('serial').execute()).map(rowToOperatorCertificate);
  }

  removeOperatorCertificate(serial: string, audit: AuditInput): Promise<void> {
    return this.write(async (trx) => {
      const r = await trx.deleteFrom('operator_certificates').where('serial', '=', serial).executeTakeFirst();
      if (Number(r.numDeletedRows) === 0) throw new ProblemError('not_found', `certificate ${serial} signs in no operator`);
      await this.appendAuditIn(trx, audit);
    });
  }

  private write<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    return this.hooks.writeTransaction(this.db, fn);
  }

  /**
   * A write that may share its transaction, and so its durable commit, with
   * others (group commit, as for certificates): on SQLite every COMMIT is an
   * fsync that blocks the event loop, so writes handed in while one runs
   * wait and then run together, each under a savepoint of its own. One that
   * throws is rolled back alone and rejected; the others commit. Each call
   * resolves only after the commit that holds it. On PostgreSQL each write
   * keeps its own transaction: commits there do not block, the server
   * groups WAL flushes itself, and one transaction holding many writes' row
   * locks could deadlock with another node's.
   */
  private groupedWrite<T>(fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
    if (this.kind !== 'sqlite') return this.write(fn);
    return new Promise<T>((resolve, reject) => this.writeQueue.push({ fn, resolve: resolve as (v: unknown) => void, reject }));
  }

  private readonly writeQueue = new CommitQueue<QueuedWrite>(WRITE_BATCH, (batch) => this.commitWrites(batch));
  /** Grouped transactions so far, and the writes they held (tests, benchmarks). */
  readonly groupedCommits = { commits: 0, writes: 0 };

  /** Runs one batch in one transaction; settles every member, never throws. */
  private async commitWrites(batch: QueuedWrite[]): Promise<void> {
    const results = new Map<QueuedWrite, unknown>();
    let failed = new Map<QueuedWrite, unknown>();
    try {
      await this.write(async (trx) => {
        results.clear();
        if (batch.length === 1) {
          results.set(batch[0], await batch[0].fn(trx));
          return;
        }
        failed = await eachUnderSavepoint(trx, batch, async (w) => void results.set(w, await w.fn(trx)));
      });
    } catch (e) {
      // The transaction itself failed (a single write's refusal, disk full): nothing of the batch committed.
      for (const w of batch) w.reject(failed.has(w) ? failed.get(w) : e);
      return;
    }
    this.groupedCommits.commits++;
    for (const w of batch) {
      if (failed.has(w)) w.reject(failed.get(w));
      else {
        this.groupedCommits.writes++;
        w.resolve(results.get(w));
      }
    }
  }

  /**
   * Chains an entry onto the log inside the caller's transaction. The lock is
   * taken last, just before reading the chain's head, so it is held only for
   * the append and the commit; seq = head + 1 cannot collide while it is held.
   */
  private async appendAuditIn(trx: Kysely<Database>, input: AuditInput): Promise<AuditEntry> {
    return (await this.appendAuditsIn(trx, [input]))[0];
  }

  /** appendAuditIn for several entries in order: one read of the head, one INSERT per BULK_ROWS entries. */
  private async appendAuditsIn(trx: Kysely<Database>, inputs: AuditInput[]): Promise<AuditEntry[]> {
    const details = inputs.map((input) => rethrowAs('bad_request', 'audit details must be JSON', () => JSON.parse(JSON.stringify(input.details ?? {})) as Record<string, unknown>));
    await this.hooks.lock(trx, 'audit');
    const head = await trx.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
    let seq = head ? Number(head.seq) + 1 : 1;
    let prevHash = head?.hash ?? GENESIS_HASH;
    const rows: AuditLogTable[] = [];
    for (const [i, input] of inputs.entries()) {
      const at = this.clock.now();
      const hash = auditEntryHash(prevHash, { seq, at, actor: input.actor, action: input.action, target: input.target, details: details[i] });
      rows.push({
        seq,
        at: toMs(at, 'clock'),
        actor: input.actor,
        action: input.action,
        target: input.target ?? null,
        details: JSON.stringify(details[i]),
        prev_hash: prevHash,
        hash,
      });
      prevHash = hash;
      seq++;
    }
    for (let i = 0; i < rows.length; i += BULK_ROWS) await trx.executeQuery(bulkInsert(this.kind, 'audit_log', rows.slice(i, i + BULK_ROWS)));
    return rows.map(rowToAudit);
  }
}

/**
 * One multi-row INSERT of rows that all have the same columns, written
 * straight as SQL: on the group commit path (thousands of rows a second)
 * building and compiling Kysely's query tree for every batch costs more
 * than SQLite takes to insert the rows. Identifiers are the schema's own
 * column names, never input; values are bound parameters.
 */
function bulkInsert<R extends object>(dialect: SqlDialect, table: 'certificates' | 'audit_log', rows: R[]): CompiledQuery {
  const columns = Object.keys(rows[0]);
  const params: unknown[] = [];
  let n = 0;
  const tuples = rows.map((r) => {
    const values = r as Record<string, unknown>;
    const marks = columns.map((c) => {
      params.push(values[c] ?? null);
      n++;
      return dialect === 'postgres' ? `$${n}` : '?';
    });
    return `(${marks.join(', ')})`;
  });
  const cols = columns.map((c) => `"${c}"`).join(', ');
  return CompiledQuery.raw(`insert into "${table}" (${cols}) values ${tuples.join(', ')}`, params);
}

// --- errors ---

function noDevice(id: string): ProblemError {
  return new ProblemError('not_found', `no device with id "${id}"`);
}

function alreadyRevoked(serial: string): ProblemError {
  return new ProblemError('already_revoked', `certificate ${serial} is revoked already`);
}

function notOnHold(serial: string, now: Pick<CertificateTable, 'status' | 'revocation_reason'>): ProblemError {
  const state = now.status === 'revoked' ? `revoked (${now.revocation_reason})` : now.status;
  return new ProblemError('conflict', `certificate ${serial} is not on hold: it is ${state}`);
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

/** A taken key inside a larger change is a conflict with what happened meanwhile, not a duplicate request. */
async function asConflict<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (isProblem(e, 'already_exists')) throw new ProblemError('conflict', e.detail);
    throw e;
  }
}

// --- values ---

function pageSize(limit: number | undefined, defaultPage = DEFAULT_PAGE, maxPage = MAX_PAGE): number {
  if (limit === undefined) return defaultPage;
  if (!Number.isInteger(limit) || limit < 1) throw new ProblemError('bad_request', `limit must be a positive integer, got ${limit}`);
  return Math.min(limit, maxPage);
}

/** A CRL shard: a whole number, 0 or more. */
function shardNumber(n: number, field: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new ProblemError('bad_request', `${field} must be a whole number ≥ 0, got ${n}`);
  return n;
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

function optionalText(v: string | null | undefined): string | null {
  return v ?? null;
}

/** JSON text of a record's structured field; a value JSON cannot hold is a bad request. */
function toJson(value: unknown, field: string): string {
  return rethrowAs('bad_request', `${field} must be JSON`, () => JSON.stringify(value));
}

function wholeNumber(n: number, field: string): number {
  if (!Number.isSafeInteger(n)) throw new ProblemError('bad_request', `${field} must be a whole number, got ${n}`);
  return n;
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

function certificateToRow(c: CertificateRecord): Insertable<CertificateTable> {
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
    device_id: c.deviceId ?? null,
    crl_shard: shardNumber(c.crlShard ?? 0, 'crlShard'),
    released_at: null,
    status_seq: null,
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
    deviceId: r.device_id ?? undefined,
    // Shard 0 (unpartitioned, the default) reads back as no crlShard member.
    crlShard: Number(r.crl_shard) === 0 ? undefined : Number(r.crl_shard),
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

function deviceToRow(d: DeviceRecord): DeviceTable {
  return {
    id: d.id,
    profile: d.profile,
    model: optionalText(d.model),
    domain: optionalText(d.domain),
    owner: optionalText(d.owner),
    state: d.state,
    sans: toJson(d.sans, 'sans'),
    order_id: optionalText(d.orderId),
    require_approval: d.requireApproval ? 1 : 0,
    current_serial: optionalText(d.currentSerial),
    attributes: toJson(d.attributes, 'attributes'),
    stage: optionalText(d.stage),
    created_at: toMs(d.createdAt, 'createdAt'),
    updated_at: toMs(d.updatedAt, 'updatedAt'),
  };
}

/** The columns a patch changes (null clears), always with updated_at. */
function devicePatchToRow(p: DevicePatch, at: Date): Partial<DeviceTable> & { updated_at: number } {
  return compact({
    state: p.state,
    domain: p.domain,
    owner: p.owner,
    model: p.model,
    profile: p.profile,
    sans: p.sans === undefined ? undefined : toJson(p.sans, 'sans'),
    require_approval: p.requireApproval === undefined ? undefined : p.requireApproval ? 1 : 0,
    attributes: p.attributes === undefined ? undefined : toJson(p.attributes, 'attributes'),
    updated_at: toMs(at, 'at'),
  });
}

function rowToDevice(r: Selectable<DeviceTable>): DeviceRecord {
  return compact({
    id: r.id,
    profile: r.profile,
    model: r.model ?? undefined,
    domain: r.domain ?? undefined,
    owner: r.owner ?? undefined,
    state: r.state,
    sans: JSON.parse(r.sans) as string[],
    orderId: r.order_id ?? undefined,
    // 0/1 from SQLite, false/true from PostgreSQL.
    requireApproval: Boolean(r.require_approval),
    currentSerial: r.current_serial ?? undefined,
    attributes: JSON.parse(r.attributes) as Record<string, string>,
    stage: r.stage ?? undefined,
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
  });
}

function secretToRow(s: EnrollmentSecretRecord): EnrollmentSecretTable {
  return {
    device_id: s.deviceId,
    secret_hash: s.secretHash,
    created_at: toMs(s.createdAt, 'createdAt'),
    expires_at: toMs(s.expiresAt, 'expiresAt'),
    used_at: optionalMs(s.usedAt, 'usedAt'),
    sealed: s.sealed ? toBuffer(s.sealed) : null,
  };
}

function rowToSecret(r: Selectable<EnrollmentSecretTable>): EnrollmentSecretRecord {
  return compact({
    deviceId: r.device_id,
    secretHash: r.secret_hash,
    createdAt: new Date(Number(r.created_at)),
    expiresAt: new Date(Number(r.expires_at)),
    usedAt: optionalDate(r.used_at),
    sealed: r.sealed ? fromBuffer(r.sealed) : undefined,
  });
}

function sealingKeyToRow(k: SealingKeyRecord): SealingKeyTable {
  return { id: k.id, key_ref: k.keyRef, spki: toBuffer(k.spki), created_at: toMs(k.createdAt, 'createdAt') };
}

function rowToSealingKey(r: Selectable<SealingKeyTable>): SealingKeyRecord {
  return { id: r.id, keyRef: r.key_ref, spki: fromBuffer(r.spki), createdAt: new Date(Number(r.created_at)) };
}

const optionalBytes = (b: Uint8Array | undefined | null) => (b ? toBuffer(b) : null);

function cmpTransactionToRow(t: CmpTransactionRecord): CmpTransactionTable {
  return {
    id: t.id,
    state: t.state,
    kind: t.kind,
    device_id: t.deviceId ?? null,
    expected_nonce: t.expectedNonce ?? null,
    protection: t.protection ?? null,
    signer_sha256: t.signerSha256 ?? null,
    sealed_secret: optionalBytes(t.sealedSecret),
    request_der: optionalBytes(t.requestDer),
    implicit_confirm: t.implicitConfirm ? 1 : 0,
    cert_req_id: t.certReqId ?? null,
    ca: t.ca ?? null,
    profile: t.profile ?? null,
    cert_serial: t.certSerial ?? null,
    previous_serial: t.previousSerial ?? null,
    outcome: t.outcome ?? null,
    created_at: toMs(t.createdAt, 'createdAt'),
    updated_at: toMs(t.updatedAt, 'updatedAt'),
    expires_at: toMs(t.expiresAt, 'expiresAt'),
  };
}

function rowToCmpTransaction(r: Selectable<CmpTransactionTable>): CmpTransactionRecord {
  return compact({
    id: r.id,
    state: r.state,
    kind: r.kind,
    deviceId: r.device_id ?? undefined,
    expectedNonce: r.expected_nonce ?? undefined,
    protection: (r.protection ?? undefined) as CmpTransactionRecord['protection'],
    signerSha256: r.signer_sha256 ?? undefined,
    sealedSecret: r.sealed_secret ? fromBuffer(r.sealed_secret) : undefined,
    requestDer: r.request_der ? fromBuffer(r.request_der) : undefined,
    implicitConfirm: Boolean(r.implicit_confirm),
    certReqId: r.cert_req_id === null ? undefined : Number(r.cert_req_id),
    ca: r.ca ?? undefined,
    profile: r.profile ?? undefined,
    certSerial: r.cert_serial ?? undefined,
    previousSerial: r.previous_serial ?? undefined,
    outcome: r.outcome ?? undefined,
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
    expiresAt: new Date(Number(r.expires_at)),
  });
}

/** A patch as column values: undefined leaves a column, null clears it. */
function cmpPatchToRow(p: CmpTransactionPatch): Partial<CmpTransactionTable> {
  const row: Partial<CmpTransactionTable> = { updated_at: toMs(p.updatedAt, 'updatedAt') };
  if (p.state !== undefined) row.state = p.state;
  if (p.deviceId !== undefined) row.device_id = p.deviceId;
  if (p.expectedNonce !== undefined) row.expected_nonce = p.expectedNonce;
  if (p.sealedSecret !== undefined) row.sealed_secret = optionalBytes(p.sealedSecret);
  if (p.requestDer !== undefined) row.request_der = optionalBytes(p.requestDer);
  if (p.certReqId !== undefined) row.cert_req_id = p.certReqId;
  if (p.certSerial !== undefined) row.cert_serial = p.certSerial;
  if (p.previousSerial !== undefined) row.previous_serial = p.previousSerial;
  if (p.outcome !== undefined) row.outcome = p.outcome;
  if (p.expiresAt !== undefined) row.expires_at = toMs(p.expiresAt, 'expiresAt');
  return row;
}

function trustAnchorToRow(t: TrustAnchorRecord): TrustAnchorTable {
  return {
    fingerprint: t.fingerprint,
    purpose: t.purpose,
    subject: t.subject,
    der: toBuffer(t.der),
    added_at: toMs(t.addedAt, 'addedAt'),
  };
}

function rowToTrustAnchor(r: Selectable<TrustAnchorTable>): TrustAnchorRecord {
  return {
    fingerprint: r.fingerprint,
    purpose: r.purpose,
    subject: r.subject,
    der: fromBuffer(r.der),
    addedAt: new Date(Number(r.added_at)),
  };
}

function orderToRow(o: OrderRecord): OrderTable {
  return {
    id: o.id,
    profile: o.profile,
    model: optionalText(o.model),
    domain: optionalText(o.domain),
    quantity: wholeNumber(o.quantity, 'quantity'),
    used: wholeNumber(o.used, 'used'),
    expires_at: optionalMs(o.expiresAt, 'expiresAt'),
    created_at: toMs(o.createdAt, 'createdAt'),
  };
}

function rowToOrder(r: Selectable<OrderTable>): OrderRecord {
  return compact({
    id: r.id,
    profile: r.profile,
    model: r.model ?? undefined,
    domain: r.domain ?? undefined,
    quantity: Number(r.quantity),
    used: Number(r.used),
    expiresAt: optionalDate(r.expires_at),
    createdAt: new Date(Number(r.created_at)),
  });
}

function pendingToRow(p: PendingEnrollmentRecord): PendingEnrollmentTable {
  return {
    id: p.id,
    device_id: p.deviceId,
    spki_sha256: p.spkiSha256,
    csr_der: toBuffer(p.csrDer),
    status: p.status,
    created_at: toMs(p.createdAt, 'createdAt'),
    decided_at: optionalMs(p.decidedAt, 'decidedAt'),
    decided_by: optionalText(p.decidedBy),
  };
}

function rowToPending(r: Selectable<PendingEnrollmentTable>): PendingEnrollmentRecord {
  return compact({
    id: r.id,
    deviceId: r.device_id,
    spkiSha256: r.spki_sha256,
    csrDer: fromBuffer(r.csr_der),
    status: r.status,
    createdAt: new Date(Number(r.created_at)),
    decidedAt: optionalDate(r.decided_at),
    decidedBy: r.decided_by ?? undefined,
  });
}

function crlToRow(c: CrlRecord): CrlTable {
  return {
    ca: c.ca,
    shard: shardNumber(c.shard, 'shard'),
    kind: c.kind,
    number: wholeNumber(c.number, 'number'),
    base_number: c.baseNumber === undefined ? null : wholeNumber(c.baseNumber, 'baseNumber'),
    this_update: toMs(c.thisUpdate, 'thisUpdate'),
    next_update: toMs(c.nextUpdate, 'nextUpdate'),
    entries: wholeNumber(c.entries, 'entries'),
    der: toBuffer(c.der),
  };
}

function rowToCrl(r: Selectable<CrlTable>): CrlRecord {
  return compact({
    ca: r.ca,
    shard: Number(r.shard),
    kind: r.kind,
    number: Number(r.number),
    baseNumber: r.base_number === null ? undefined : Number(r.base_number),
    thisUpdate: new Date(Number(r.this_update)),
    nextUpdate: new Date(Number(r.next_update)),
    entries: Number(r.entries),
    der: fromBuffer(r.der),
  });
}

function ocspSignerToRow(s: OcspSignerRecord): Insertable<OcspSignerTable> {
  return {
    ca: s.ca,
    key_ref: s.keyRef,
    cert_der: toBuffer(s.certDer),
    not_after: toMs(s.notAfter, 'notAfter'),
    created_at: toMs(s.createdAt, 'createdAt'),
  };
}

function rowToOcspSigner(r: Omit<Selectable<OcspSignerTable>, 'id'>): OcspSignerRecord {
  return {
    ca: r.ca,
    keyRef: r.key_ref,
    certDer: fromBuffer(r.cert_der),
    notAfter: new Date(Number(r.not_after)),
    createdAt: new Date(Number(r.created_at)),
  };
}

function firmwareSignerToRow(f: FirmwareSignerRecord): FirmwareSignerTable {
  return {
    name: f.name,
    ca: f.ca,
    key_ref: f.keyRef,
    serial: f.serial,
    cert_der: toBuffer(f.certDer),
    not_after: toMs(f.notAfter, 'notAfter'),
    created_at: toMs(f.createdAt, 'createdAt'),
  };
}

function rowToFirmwareSigner(r: Selectable<FirmwareSignerTable>): FirmwareSignerRecord {
  return {
    name: r.name,
    ca: r.ca,
    keyRef: r.key_ref,
    serial: r.serial,
    certDer: fromBuffer(r.cert_der),
    notAfter: new Date(Number(r.not_after)),
    createdAt: new Date(Number(r.created_at)),
  };
}

function deviceEventToRow(e: DeviceEventRecord): DeviceEventTable {
  return {
    id: e.id,
    device_id: e.deviceId,
    kind: e.kind,
    at: toMs(e.at, 'at'),
    actor: e.actor,
    source: e.source,
    from_state: e.fromState,
    to_state: e.toState,
    reason: e.reason ?? null,
    revoked_serials: toJson(e.revokedSerials, 'revokedSerials'),
    details: toJson(e.details, 'details'),
    audit_seq: wholeNumber(e.auditSeq ?? 0, 'auditSeq'),
  };
}

function rowToDeviceEvent(r: Selectable<DeviceEventTable>): DeviceEventRecord {
  return compact({
    id: r.id,
    deviceId: r.device_id,
    kind: r.kind,
    at: new Date(Number(r.at)),
    actor: r.actor,
    source: r.source as DeviceEventRecord['source'],
    fromState: r.from_state,
    toState: r.to_state,
    reason: r.reason ?? undefined,
    revokedSerials: JSON.parse(r.revoked_serials) as string[],
    details: JSON.parse(r.details) as Record<string, unknown>,
    auditSeq: Number(r.audit_seq),
  });
}

function webhookToRow(w: WebhookRecord): WebhookTable {
  return { name: w.name, direction: w.direction, url: w.url ?? null, thresholds_days: toJson(w.thresholdsDays, 'thresholdsDays'), sealed_secret: toBuffer(w.sealedSecret), created_at: toMs(w.createdAt, 'createdAt') };
}

function rowToWebhook(r: Selectable<WebhookTable>): WebhookRecord {
  return compact({
    name: r.name,
    direction: r.direction,
    url: r.url ?? undefined,
    thresholdsDays: JSON.parse(r.thresholds_days) as number[],
    sealedSecret: fromBuffer(r.sealed_secret),
    createdAt: new Date(Number(r.created_at)),
  });
}

function rowToOperatorCertificate(r: Selectable<OperatorCertificateTable>): OperatorCertificateRecord {
  return { serial: r.serial, name: r.name, role: r.role, createdAt: new Date(Number(r.created_at)) };
}
function supplierAnchorToRow(a: SupplierAnchorRecord): SupplierAnchorTable {
  return { fingerprint: a.fingerprint, supplier: a.supplier, subject: a.subject, der: a.der, added_at: toMs(a.addedAt, 'addedAt') };
}

function rowToSupplierAnchor(r: Selectable<SupplierAnchorTable>): SupplierAnchorRecord {
  return { fingerprint: r.fingerprint, supplier: r.supplier, subject: r.subject, der: fromBuffer(r.der), addedAt: new Date(Number(r.added_at)) };
}

function manifestToRow(m: ManifestRecord): ManifestTable {
  return {
    digest: m.digest,
    cms_sha256: m.cmsSha256,
    supplier: m.supplier,
    stage: m.stage,
    profile: m.profile,
    domain: optionalText(m.domain),
    owner: optionalText(m.owner),
    signer_subject: m.signerSubject,
    signer_fingerprint: m.signerFingerprint,
    signed_at: optionalMs(m.signedAt, 'signedAt'),
    created_at: toMs(m.createdAt, 'createdAt'),
    imported_at: toMs(m.importedAt, 'importedAt'),
    imported_by: m.importedBy,
    device_count: m.deviceCount,
    cms: m.cms,
  };
}

function rowToManifest(r: Selectable<ManifestTable>): ManifestRecord {
  return compact({
    digest: r.digest,
    cmsSha256: r.cms_sha256,
    supplier: r.supplier,
    stage: r.stage,
    profile: r.profile,
    domain: r.domain ?? undefined,
    owner: r.owner ?? undefined,
    signerSubject: r.signer_subject,
    signerFingerprint: r.signer_fingerprint,
    signedAt: optionalDate(r.signed_at),
    createdAt: new Date(Number(r.created_at)),
    importedAt: new Date(Number(r.imported_at)),
    importedBy: r.imported_by,
    deviceCount: Number(r.device_count),
    cms: fromBuffer(r.cms),
  });
}

function manifestEntryToRow(e: ManifestEntryRecord): ManifestEntryTable {
  return {
    device_id: e.deviceId,
    stage: e.stage,
    manifest_digest: e.manifestDigest,
    certificate_sha256: optionalText(e.certificateSha256),
    public_key_sha256: optionalText(e.publicKeySha256),
    model: optionalText(e.model),
    batch: optionalText(e.batch),
    used_at: optionalMs(e.usedAt, 'usedAt'),
    used_serial: optionalText(e.usedSerial),
  };
}

function rowToManifestEntry(r: Selectable<ManifestEntryTable>): ManifestEntryRecord {
  return compact({
    deviceId: r.device_id,
    stage: r.stage,
    manifestDigest: r.manifest_digest,
    certificateSha256: r.certificate_sha256 ?? undefined,
    publicKeySha256: r.public_key_sha256 ?? undefined,
    model: r.model ?? undefined,
    batch: r.batch ?? undefined,
    usedAt: optionalDate(r.used_at),
    usedSerial: r.used_serial ?? undefined,
  });
}

function identityToRow(i: DeviceIdentityRecord): DeviceIdentityTable {
  return {
    device_id: i.deviceId,
    kind: i.kind,
    fingerprint: i.fingerprint,
    stage: optionalText(i.stage),
    serial: i.serial,
    subject: i.subject,
    issuer: i.issuer,
    not_before: toMs(i.notBefore, 'notBefore'),
    not_after: toMs(i.notAfter, 'notAfter'),
    der: i.der ?? null,
    recorded_at: toMs(i.recordedAt, 'recordedAt'),
  };
}

function rowToIdentity(r: Selectable<DeviceIdentityTable>): DeviceIdentityRecord {
  return compact({
    deviceId: r.device_id,
    kind: r.kind,
    fingerprint: r.fingerprint,
    stage: r.stage ?? undefined,
    serial: r.serial,
    subject: r.subject,
    issuer: r.issuer,
    notBefore: new Date(Number(r.not_before)),
    notAfter: new Date(Number(r.not_after)),
    der: r.der === null ? undefined : fromBuffer(r.der),
    recordedAt: new Date(Number(r.recorded_at)),
  });
}
