/**
 * One list of schema migrations for both backends, and the runner that
 * applies the missing ones.
 *
 * Not Kysely's Migrator: on SQLite it takes no lock and runs DDL outside a
 * transaction, so two processes opening a fresh file at once (the server and a
 * CLI) could both apply the same migration. Here every pending migration, and
 * the bookkeeping row that records it, runs inside one write transaction that
 * holds the store's migration lock (BEGIN IMMEDIATE on SQLite, an advisory
 * lock on PostgreSQL); both dialects have transactional DDL.
 */
import { sql, type ColumnDataType, type Expression, type Kysely } from 'kysely';
import { ProblemError } from '../errors.js';
import type { Database, SqlDialect } from './schema.js';
import { CMP_TRANSACTION_STATES, DEVICE_EVENT_KINDS, DEVICE_STATES, REVOCATION_REASONS, ROLES, type PendingStatus } from './store.js';

export interface Migration {
  version: number;
  name: string;
  /** Uses the schema builder only: table types in schema.ts describe the latest version. */
  up(db: Kysely<Database>, dialect: SqlDialect): Promise<void>;
}

/** Runs `fn` in a write transaction that holds the migration lock. */
export type LockedWrite = <T>(fn: (trx: Kysely<Database>) => Promise<T>) => Promise<T>;

type ColumnType = ColumnDataType | Expression<unknown>;

/** Column types that differ between the dialects. */
function columnTypes(dialect: SqlDialect): { int64: ColumnType; bytes: ColumnType; key: ColumnType; bool: ColumnType } {
  if (dialect === 'postgres') {
    // Keys sort bytewise ("C") so keyset paging and listings order the same
    // way as SQLite's BINARY collation, whatever the database locale.
    return { int64: 'bigint', bytes: 'bytea', key: sql`text collate "C"`, bool: 'boolean' };
  }
  // SQLite has no boolean type: 0/1, checked.
  return { int64: 'integer', bytes: 'blob', key: 'text', bool: 'integer' };
}

function quotedList(values: readonly string[]): Expression<unknown> {
  return sql.join(values.map((v) => sql.lit(v)));
}

async function createInitialSchema(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  const reasons = quotedList(Object.keys(REVOCATION_REASONS));

  await db.schema
    .createTable('cas')
    .addColumn('name', t.key, (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('root', 'issuing')`))
    .addColumn('parent_name', t.key, (c) => c.references('cas.name'))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('cert_der', t.bytes, (c) => c.notNull())
    .addColumn('key_ref', 'text')
    .addColumn('not_before', t.int64, (c) => c.notNull())
    .addColumn('not_after', t.int64, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('certificates')
    .addColumn('serial', t.key, (c) => c.primaryKey())
    .addColumn('issuer_ca', t.key, (c) => c.notNull().references('cas.name'))
    .addColumn('profile', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('sans', 'text', (c) => c.notNull())
    .addColumn('not_before', t.int64, (c) => c.notNull())
    .addColumn('not_after', t.int64, (c) => c.notNull())
    .addColumn('spki_sha256', 'text', (c) => c.notNull())
    .addColumn('der', t.bytes, (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('revoked_at', t.int64)
    .addColumn('revocation_reason', 'text')
    .addColumn('invalidity_date', t.int64)
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('requester', 'text', (c) => c.notNull())
    // A certificate is either good with no revocation data, or revoked with it.
    .addCheckConstraint(
      'certificates_revocation_consistent',
      sql`(status = 'good' and revoked_at is null and revocation_reason is null and invalidity_date is null)
        or (status = 'revoked' and revoked_at is not null and revocation_reason in (${reasons}))`,
    )
    .execute();
  await db.schema.createIndex('certificates_issuer_status_serial').on('certificates').columns(['issuer_ca', 'status', 'serial']).execute();
  await db.schema.createIndex('certificates_not_after').on('certificates').columns(['not_after', 'serial']).execute();
  await db.schema.createIndex('certificates_spki_sha256').on('certificates').column('spki_sha256').execute();

  await db.schema
    .createTable('api_tokens')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('expires_at', t.int64)
    .addColumn('revoked_at', t.int64)
    .execute();

  await db.schema
    .createTable('audit_log')
    // SQLite: "integer primary key" makes seq the rowid, no extra index.
    .addColumn('seq', t.int64, (c) => c.primaryKey())
    .addColumn('at', t.int64, (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('audit_log_action').on('audit_log').columns(['action', 'seq']).execute();
  await db.schema.createIndex('audit_log_target').on('audit_log').columns(['target', 'seq']).execute();
}

const PENDING_STATUSES: readonly PendingStatus[] = ['pending', 'approved', 'rejected', 'issued'];

/**
 * The device registry: devices, their one-time enrollment secrets, trust
 * anchors, enrollment orders and enrollments waiting for approval; and the
 * link from a certificate to the device it was issued to.
 */
async function createRegistry(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);

  await db.schema
    .createTable('orders')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('profile', 'text', (c) => c.notNull())
    .addColumn('model', 'text')
    .addColumn('domain', 'text')
    .addColumn('quantity', 'integer', (c) => c.notNull())
    .addColumn('used', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('expires_at', t.int64)
    .addColumn('created_at', t.int64, (c) => c.notNull())
    // Redemption is `used = used + 1 where used < quantity`: this check is the backstop.
    .addCheckConstraint('orders_quantity_used', sql`quantity > 0 and used >= 0 and used <= quantity`)
    .execute();

  await db.schema
    .createTable('devices')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('profile', 'text', (c) => c.notNull())
    .addColumn('model', 'text')
    .addColumn('domain', 'text')
    .addColumn('owner', 'text')
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in (${quotedList(DEVICE_STATES)})`))
    .addColumn('sans', 'text', (c) => c.notNull())
    .addColumn('order_id', t.key, (c) => c.references('orders.id'))
    .addColumn('require_approval', t.bool, (c) =>
      dialect === 'postgres' ? c.notNull() : c.notNull().check(sql`require_approval in (0, 1)`),
    )
    .addColumn('current_serial', t.key)
    .addColumn('attributes', 'text', (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('updated_at', t.int64, (c) => c.notNull())
    .execute();
  // id last: a filtered listing pages by id along the index.
  await db.schema.createIndex('devices_state').on('devices').columns(['state', 'id']).execute();
  await db.schema.createIndex('devices_domain').on('devices').columns(['domain', 'id']).execute();
  await db.schema.createIndex('devices_model').on('devices').columns(['model', 'id']).execute();

  await db.schema
    .createTable('enrollment_secrets')
    .addColumn('device_id', t.key, (c) => c.primaryKey().references('devices.id').onDelete('cascade'))
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('expires_at', t.int64, (c) => c.notNull())
    .addColumn('used_at', t.int64)
    .execute();

  await db.schema
    .createTable('trust_anchors')
    .addColumn('fingerprint', t.key, (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull().check(sql`purpose in ('manufacturer')`))
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('der', t.bytes, (c) => c.notNull())
    .addColumn('added_at', t.int64, (c) => c.notNull())
    .addPrimaryKeyConstraint('trust_anchors_pk', ['fingerprint', 'purpose'])
    .execute();

  await db.schema
    .createTable('pending_enrollments')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('device_id', t.key, (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('spki_sha256', 'text', (c) => c.notNull())
    .addColumn('csr_der', t.bytes, (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in (${quotedList(PENDING_STATUSES)})`))
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('decided_at', t.int64)
    .addColumn('decided_by', 'text')
    .execute();
  await db.schema.createIndex('pending_enrollments_device_spki').on('pending_enrollments').columns(['device_id', 'spki_sha256', 'created_at']).execute();
  await db.schema.createIndex('pending_enrollments_status').on('pending_enrollments').columns(['status', 'created_at']).execute();

  // Nullable, no default: existing certificates keep device_id null. No foreign
  // key, so a certificate may name a device the registry does not hold.
  await db.schema.alterTable('certificates').addColumn('device_id', t.key).execute();
  await db.schema.createIndex('certificates_device_id').on('certificates').columns(['device_id', 'serial']).execute();
}

/**
 * Revocation (issue 4): CRL partitions and released holds on certificates,
 * the per-CA cRLNumber counter, published CRLs (all kept; the highest number
 * of each (ca, shard, kind) is served) and delegated OCSP signers.
 */
async function createRevocation(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);

  // Existing certificates are unpartitioned: shard 0.
  await db.schema
    .alterTable('certificates')
    .addColumn('crl_shard', 'integer', (c) => c.notNull().defaultTo(0).check(sql`crl_shard >= 0`))
    .execute();
  await db.schema.alterTable('certificates').addColumn('released_at', t.int64).execute();
  // The CRL path pages through one CA's revoked certificates in serial order:
  // an index range scan. The columns of a CRL entry ride along in the index
  // (null, so nearly free, for good certificates), so a million-entry CRL is
  // read from the index alone and never touches the wide table rows (DER).
  // With a shard; it also serves countInShard and listCrlShards:
  const entry = ['revoked_at', 'revocation_reason', 'invalidity_date'];
  await db.schema.createIndex('certificates_crl').on('certificates').columns(['issuer_ca', 'status', 'crl_shard', 'serial', ...entry]).execute();
  // Without a shard. Replaces version 1's certificates_issuer_status_serial,
  // a prefix of it (listCertificates by issuer and status uses this one now).
  await db.schema.dropIndex('certificates_issuer_status_serial').execute();
  await db.schema.createIndex('certificates_crl_all_shards').on('certificates').columns(['issuer_ca', 'status', 'serial', ...entry]).execute();
  // Released holds are few: a partial index holds only them.
  await db.schema
    .createIndex('certificates_released')
    .on('certificates')
    .columns(['issuer_ca', 'released_at'])
    .where(sql<boolean>`released_at is not null`)
    .execute();

  await db.schema
    .createTable('crl_counters')
    .addColumn('ca', t.key, (c) => c.primaryKey().references('cas.name'))
    .addColumn('last_number', t.int64, (c) => c.notNull().check(sql`last_number > 0`))
    .execute();

  await db.schema
    .createTable('crls')
    .addColumn('ca', t.key, (c) => c.notNull().references('cas.name'))
    .addColumn('shard', 'integer', (c) => c.notNull().check(sql`shard >= 0`))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('base', 'delta')`))
    .addColumn('number', t.int64, (c) => c.notNull().check(sql`number > 0`))
    .addColumn('base_number', t.int64)
    .addColumn('this_update', t.int64, (c) => c.notNull())
    .addColumn('next_update', t.int64, (c) => c.notNull())
    .addColumn('entries', t.int64, (c) => c.notNull().check(sql`entries >= 0`))
    .addColumn('der', t.bytes, (c) => c.notNull())
    // The primary key's index, read backwards, finds the newest of a (ca, shard, kind).
    .addPrimaryKeyConstraint('crls_pk', ['ca', 'shard', 'kind', 'number'])
    // RFC 5280 §5.2.4: a delta names its base; a base names none.
    .addCheckConstraint('crls_base_number', sql`(kind = 'base' and base_number is null) or (kind = 'delta' and base_number is not null)`)
    .execute();

  await db.schema
    .createTable('ocsp_signers')
    // Insertion order breaks created_at ties: of two signers stored in the same
    // millisecond, the later one is the newest.
    .addColumn('id', t.int64, (c) => (dialect === 'postgres' ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey()))
    .addColumn('ca', t.key, (c) => c.notNull().references('cas.name'))
    .addColumn('key_ref', 'text', (c) => c.notNull())
    .addColumn('cert_der', t.bytes, (c) => c.notNull())
    .addColumn('not_after', t.int64, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ocsp_signers_ca_created').on('ocsp_signers').columns(['ca', 'created_at', 'id']).execute();
}

/**
 * certificates.status_seq: the audit seq of each certificate's last status
 * change, indexed, so OCSP responders on any node can ask "what changed
 * after seq N" (listCertificateChanges) instead of reading every status on
 * every request. Audit entries are numbered under a lock held to commit, so
 * the seqs become visible in order and a reader never skips one.
 */
async function createChangeFeed(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema.alterTable('certificates').addColumn('status_seq', t.int64).execute();
  await db.schema
    .createIndex('certificates_status_seq')
    .on('certificates')
    .columns(['status_seq', 'serial'])
    .where(sql<boolean>`status_seq is not null`)
    .execute();
}

/** Key custody: the escrow key and the server-generated keys escrowed to it. */
async function createKeyEscrow(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema
    .createTable('escrow_keys')
    .addColumn('key_ref', t.key, (c) => c.primaryKey())
    .addColumn('spki', t.bytes, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('escrowed_keys')
    .addColumn('serial', t.key, (c) => c.primaryKey().references('certificates.serial'))
    .addColumn('escrow_key_ref', t.key, (c) => c.notNull().references('escrow_keys.key_ref'))
    .addColumn('envelope', t.bytes, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();
}

/**
 * Leases: one row per cluster-wide job (CRL publication), naming the node
 * that runs it until its lease expires. A node that dies stops renewing; the
 * next one takes over after the expiry.
 */
async function createLeases(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema
    .createTable('leases')
    .addColumn('name', t.key, (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_at', t.int64, (c) => c.notNull())
    .execute();
}

/**
 * CMP (issue 7): a sealed copy of each one-time secret (MAC-based protection
 * needs the secret, not a hash), the keys they are sealed to, and CMP
 * transactions shared by every node (transactionID reuse, nonces, certConf
 * deadlines, polling).
 */
async function createCmp(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  // Existing secrets keep null: they work for EST; CMP asks for a new one.
  await db.schema.alterTable('enrollment_secrets').addColumn('sealed', t.bytes).execute();

  await db.schema
    .createTable('sealing_keys')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('key_ref', 'text', (c) => c.notNull())
    .addColumn('spki', t.bytes, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('cmp_transactions')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in (${quotedList(CMP_TRANSACTION_STATES)})`))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('device_id', t.key)
    .addColumn('expected_nonce', 'text')
    .addColumn('protection', 'text')
    .addColumn('signer_sha256', 'text')
    .addColumn('sealed_secret', t.bytes)
    .addColumn('request_der', t.bytes)
    .addColumn('implicit_confirm', t.bool, (c) => (dialect === 'postgres' ? c.notNull() : c.notNull().check(sql`implicit_confirm in (0, 1)`)))
    .addColumn('cert_req_id', t.int64)
    .addColumn('ca', 'text')
    .addColumn('profile', 'text')
    .addColumn('cert_serial', t.key)
    .addColumn('previous_serial', t.key)
    .addColumn('outcome', 'text')
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('updated_at', t.int64, (c) => c.notNull())
    .addColumn('expires_at', t.int64, (c) => c.notNull())
    .execute();
  // The sweeper reads open transactions by deadline; pruning reads closed ones by age.
  await db.schema.createIndex('cmp_transactions_due').on('cmp_transactions').columns(['state', 'expires_at']).execute();
  await db.schema.createIndex('cmp_transactions_updated').on('cmp_transactions').columns(['state', 'updated_at']).execute();
}

/** Firmware signers (issue 9): a code-signing key in the KeyStore and its certificate, by name. */
async function createFirmwareSigners(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema
    .createTable('firmware_signers')
    .addColumn('name', t.key, (c) => c.primaryKey())
    .addColumn('ca', t.key, (c) => c.notNull().references('cas.name'))
    .addColumn('key_ref', 'text', (c) => c.notNull())
    // The certificate itself lives in certificates, revoked there like any other.
    .addColumn('serial', t.key, (c) => c.notNull().unique().references('certificates.serial'))
    .addColumn('cert_der', t.bytes, (c) => c.notNull())
    .addColumn('not_after', t.int64, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();
}


/**
 * Lifecycle (issue 8): each device's history of events (lost, compromised,
 * retired, transferred, ...), webhooks in and out with their sealed HMAC
 * secrets, the delivery ids inbound webhooks spent (replay protection), the
 * expiry notices sent, and the client certificates operators sign in with.
 */
async function createLifecycle(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema
    .createTable('device_events')
    .addColumn('id', t.key, (c) => c.primaryKey())
    .addColumn('device_id', t.key, (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in (${quotedList(DEVICE_EVENT_KINDS)})`))
    .addColumn('at', t.int64, (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('api', 'cli', 'webhook')`))
    .addColumn('from_state', 'text', (c) => c.notNull())
    .addColumn('to_state', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.check(sql`reason is null or reason in (${quotedList(Object.keys(REVOCATION_REASONS))})`))
    .addColumn('revoked_serials', 'text', (c) => c.notNull())
    .addColumn('details', 'text', (c) => c.notNull())
    // The audit entry that recorded it: orders the history and links it to the log.
    .addColumn('audit_seq', t.int64, (c) => c.notNull().unique())
    .execute();
  await db.schema.createIndex('device_events_device').on('device_events').columns(['device_id', 'audit_seq']).execute();

  await db.schema
    .createTable('webhooks')
    .addColumn('name', t.key, (c) => c.primaryKey())
    .addColumn('direction', 'text', (c) => c.notNull().check(sql`direction in ('inbound', 'outbound')`))
    .addColumn('url', 'text')
    .addColumn('thresholds_days', 'text', (c) => c.notNull())
    .addColumn('sealed_secret', t.bytes, (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addCheckConstraint('webhooks_outbound_url', sql`(direction = 'outbound') = (url is not null)`)
    .execute();

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('source', t.key, (c) => c.notNull())
    .addColumn('delivery_id', t.key, (c) => c.notNull())
    .addColumn('received_at', t.int64, (c) => c.notNull())
    .addPrimaryKeyConstraint('webhook_deliveries_pk', ['source', 'delivery_id'])
    .execute();
  await db.schema.createIndex('webhook_deliveries_received').on('webhook_deliveries').column('received_at').execute();

  await db.schema
    .createTable('expiry_notices')
    .addColumn('webhook', t.key, (c) => c.notNull().references('webhooks.name').onDelete('cascade'))
    .addColumn('serial', t.key, (c) => c.notNull())
    .addColumn('threshold_days', 'integer', (c) => c.notNull())
    .addColumn('sent_at', t.int64, (c) => c.notNull())
    .addPrimaryKeyConstraint('expiry_notices_pk', ['webhook', 'serial', 'threshold_days'])
    .execute();

  await db.schema
    .createTable('operator_certificates')
    .addColumn('serial', t.key, (c) => c.primaryKey().references('certificates.serial'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in (${quotedList(ROLES)})`))
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .execute();
}

/**
 * The supply chain (issue 8): CAs trusted for each supplier's manifest
 * signers, imported manifests (kept whole: the evidence of a hand-over),
 * one entry per device and stage naming what the device must present, the
 * device's current stage, and its chain of identities (manufacturer
 * certificate, then the first certificate of each stage).
 */
async function createSupplyChain(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  // Existing devices keep null: no manifest listed them.
  await db.schema.alterTable('devices').addColumn('stage', t.key).execute();

  await db.schema
    .createTable('supplier_anchors')
    .addColumn('fingerprint', t.key, (c) => c.primaryKey())
    .addColumn('supplier', t.key, (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('der', t.bytes, (c) => c.notNull())
    .addColumn('added_at', t.int64, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('supplier_anchors_supplier').on('supplier_anchors').columns(['supplier', 'added_at']).execute();

  await db.schema
    .createTable('manifests')
    // The replay key: the same content is never imported twice.
    .addColumn('digest', t.key, (c) => c.primaryKey())
    .addColumn('cms_sha256', t.key, (c) => c.notNull().unique())
    .addColumn('supplier', t.key, (c) => c.notNull())
    .addColumn('stage', t.key, (c) => c.notNull())
    .addColumn('profile', 'text', (c) => c.notNull())
    .addColumn('domain', 'text')
    .addColumn('owner', 'text')
    .addColumn('signer_subject', 'text', (c) => c.notNull())
    .addColumn('signer_fingerprint', 'text', (c) => c.notNull())
    .addColumn('signed_at', t.int64)
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('imported_at', t.int64, (c) => c.notNull())
    .addColumn('imported_by', 'text', (c) => c.notNull())
    .addColumn('device_count', 'integer', (c) => c.notNull())
    .addColumn('cms', t.bytes, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('manifests_imported').on('manifests').columns(['imported_at', 'digest']).execute();

  await db.schema
    .createTable('manifest_entries')
    .addColumn('device_id', t.key, (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('stage', t.key, (c) => c.notNull())
    .addColumn('manifest_digest', t.key, (c) => c.notNull().references('manifests.digest'))
    .addColumn('certificate_sha256', 'text')
    .addColumn('public_key_sha256', 'text')
    .addColumn('model', 'text')
    .addColumn('batch', 'text')
    .addColumn('used_at', t.int64)
    .addColumn('used_serial', t.key)
    // A device enters each stage once, on one manifest's word.
    .addPrimaryKeyConstraint('manifest_entries_pk', ['device_id', 'stage'])
    .addCheckConstraint('manifest_entries_one_hash', sql`(certificate_sha256 is null) <> (public_key_sha256 is null)`)
    .execute();
  await db.schema.createIndex('manifest_entries_manifest').on('manifest_entries').columns(['manifest_digest', 'device_id']).execute();

  await db.schema
    .createTable('device_identities')
    .addColumn('device_id', t.key, (c) => c.notNull().references('devices.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('manufacturer', 'certificate')`))
    .addColumn('fingerprint', t.key, (c) => c.notNull())
    .addColumn('stage', t.key)
    .addColumn('serial', t.key, (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('issuer', 'text', (c) => c.notNull())
    .addColumn('not_before', t.int64, (c) => c.notNull())
    .addColumn('not_after', t.int64, (c) => c.notNull())
    .addColumn('der', t.bytes)
    .addColumn('recorded_at', t.int64, (c) => c.notNull())
    .addPrimaryKeyConstraint('device_identities_pk', ['device_id', 'fingerprint'])
    .execute();
  await db.schema.createIndex('device_identities_recorded').on('device_identities').columns(['device_id', 'recorded_at']).execute();
}

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', up: createInitialSchema },
  { version: 2, name: 'device registry', up: createRegistry },
  { version: 3, name: 'revocation', up: createRevocation },
  { version: 4, name: 'certificate change feed', up: createChangeFeed },
  { version: 5, name: 'key escrow', up: createKeyEscrow },
  { version: 6, name: 'leases', up: createLeases },
  { version: 7, name: 'cmp', up: createCmp },
  { version: 8, name: 'firmware signers', up: createFirmwareSigners },
  { version: 9, name: 'supply chain', up: createSupplyChain },
  { version: 10, name: 'lifecycle', up: createLifecycle },
  { version: 11, name: 'expiry index', up: createExpiryIndex },
  { version: 12, name: 'console sessions', up: createConsoleSessions },
];

/**
 * The expiry queries (the report, the console's chart, the API) ask only for
 * good certificates by notAfter: an index of exactly those, ordered by
 * notAfter, answers them from the index alone, so counting the 800,000 of
 * 10 million certificates that expire within 30 days does not read 800,000
 * table rows. It replaces version 1's index of every certificate by
 * notAfter, which nothing else used; revoked certificates leave it.
 */
async function createExpiryIndex(db: Kysely<Database>): Promise<void> {
  await db.schema.dropIndex('certificates_not_after').execute();
  await db.schema
    .createIndex('certificates_good_not_after')
    .on('certificates')
    .columns(['not_after', 'serial'])
    .where(sql<boolean>`status = 'good'`)
    .execute();
}

/**
 * Web console sessions in the store, so any node behind a load balancer
 * serves any session and a sign-out on one ends it on all. Only hashes: the
 * cookie's session id and the operator's API token (as api_tokens keeps it).
 */
async function createConsoleSessions(db: Kysely<Database>, dialect: SqlDialect): Promise<void> {
  const t = columnTypes(dialect);
  await db.schema
    .createTable('console_sessions')
    .addColumn('id_hash', t.key, (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', t.int64, (c) => c.notNull())
    .addColumn('last_seen', t.int64, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('console_sessions_last_seen').on('console_sessions').column('last_seen').execute();
}

/**
 * Applies every migration newer than the database's version, in order, in one
 * locked transaction. Returns the versions applied (none when up to date).
 * Refuses a database written by a newer fleetpki.
 */
export async function migrateToLatest(dialect: SqlDialect, lockedWrite: LockedWrite, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return lockedWrite(async (trx) => {
    await trx.schema
      .createTable('schema_version')
      .ifNotExists()
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('applied_at', columnTypes(dialect).int64, (c) => c.notNull())
      .execute();
    const rows = await trx.selectFrom('schema_version').select('version').execute();
    const have = new Set(rows.map((r) => Number(r.version)));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...have].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      throw new ProblemError('config_error', `the database has schema version ${Math.max(...unknown)}, newer than this fleetpki knows; upgrade fleetpki`);
    }
    const applied: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (have.has(m.version)) continue;
      await m.up(trx, dialect);
      await trx.insertInto('schema_version').values({ version: m.version, name: m.name, applied_at: Date.now() }).execute();
      applied.push(m.version);
    }
    return applied;
  });
}
