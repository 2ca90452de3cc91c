/**
 * Row types of the store's tables, as Kysely sees them. Both backends share
 * them: times are integer epoch milliseconds, binary columns come back as
 * Buffer (a Uint8Array), `sans`, `attributes` and audit `details` are JSON
 * text, booleans are written as 0/1 (SQLite keeps the integer, PostgreSQL a
 * boolean: read them with Boolean()).
 */
import type { Generated } from 'kysely';
import type { CaKind, CertificateStatus, CmpTransactionState, DeviceEventKind, DeviceIdentityRecord, DeviceState, PendingStatus, RevocationReason, Role, TrustAnchorRecord } from './store.js';

export type SqlDialect = 'sqlite' | 'postgres';

export interface CaTable {
  name: string;
  kind: CaKind;
  parent_name: string | null;
  subject: string;
  cert_der: Uint8Array;
  key_ref: string | null;
  not_before: number;
  not_after: number;
  created_at: number;
}

export interface CertificateTable {
  serial: string;
  issuer_ca: string;
  profile: string;
  subject: string;
  /** JSON array of "type:value" strings. */
  sans: string;
  not_before: number;
  not_after: number;
  spki_sha256: string;
  der: Uint8Array;
  status: CertificateStatus;
  revoked_at: number | null;
  revocation_reason: RevocationReason | null;
  invalidity_date: number | null;
  created_at: number;
  requester: string;
  /** Since migration 2; null for certificates not issued to a registry device. */
  device_id: string | null;
  /** Since migration 3: CRL partition, 0 when unpartitioned (the default). */
  crl_shard: Generated<number>;
  /**
   * Since migration 3: when a certificateHold was last released (the
   * certificate is good again); cleared when it is revoked again.
   */
  released_at: number | null;
  /**
   * Since migration 4: seq of the audit entry of the certificate's last
   * status change (issued, revoked, released): the change feed OCSP
   * responders follow. Null for changes made before migration 4.
   */
  status_seq: number | null;
}

export interface ApiTokenTable {
  id: string;
  name: string;
  role: Role;
  token_hash: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

export interface AuditLogTable {
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string | null;
  /** JSON object. */
  details: string;
  prev_hash: string;
  hash: string;
}

export interface DeviceTable {
  id: string;
  profile: string;
  model: string | null;
  domain: string | null;
  owner: string | null;
  state: DeviceState;
  /** JSON array of "type:value" strings. */
  sans: string;
  order_id: string | null;
  /** Written 0/1; read back as 0/1 (SQLite) or false/true (PostgreSQL). */
  require_approval: number | boolean;
  current_serial: string | null;
  /** JSON object of string values. */
  attributes: string;
  /** Since migration 9: the supply-chain stage a manifest handed it over to. */
  stage: string | null;
  created_at: number;
  updated_at: number;
}

export interface EnrollmentSecretTable {
  device_id: string;
  secret_hash: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /** Since migration 7: the secret sealed for CMP; null once used. */
  sealed: Uint8Array | null;
}

/** Since migration 7: keys one-time secrets are sealed to (public half; the key store has the rest). */
export interface SealingKeyTable {
  id: string;
  key_ref: string;
  spki: Uint8Array;
  created_at: number;
}

/** Since migration 7: CMP transactions (transactionID, nonces, certConf and polling state). */
export interface CmpTransactionTable {
  id: string;
  state: CmpTransactionState;
  kind: string;
  device_id: string | null;
  expected_nonce: string | null;
  protection: string | null;
  signer_sha256: string | null;
  sealed_secret: Uint8Array | null;
  request_der: Uint8Array | null;
  /** 0/1 (SQLite) or false/true (PostgreSQL). */
  implicit_confirm: number | boolean;
  cert_req_id: number | null;
  ca: string | null;
  profile: string | null;
  cert_serial: string | null;
  previous_serial: string | null;
  outcome: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number;
}

export interface TrustAnchorTable {
  fingerprint: string;
  purpose: TrustAnchorRecord['purpose'];
  subject: string;
  der: Uint8Array;
  added_at: number;
}

export interface OrderTable {
  id: string;
  profile: string;
  model: string | null;
  domain: string | null;
  quantity: number;
  used: number;
  expires_at: number | null;
  created_at: number;
}

export interface PendingEnrollmentTable {
  id: string;
  device_id: string;
  spki_sha256: string;
  csr_der: Uint8Array;
  status: PendingStatus;
  created_at: number;
  decided_at: number | null;
  decided_by: string | null;
}

/** Since migration 3: the last cRLNumber taken per CA. */
export interface CrlCounterTable {
  ca: string;
  last_number: number;
}

/** Since migration 3: every published CRL (history is kept; the highest number is served). */
export interface CrlTable {
  ca: string;
  shard: number;
  kind: 'base' | 'delta';
  number: number;
  /** Set for a delta CRL only. */
  base_number: number | null;
  this_update: number;
  next_update: number;
  entries: number;
  der: Uint8Array;
}

/** Since migration 3: delegated OCSP signers; the newest (created_at, then id) is used. */
export interface OcspSignerTable {
  /** Assigned by the database, in insertion order: breaks created_at ties. */
  id: Generated<number>;
  ca: string;
  key_ref: string;
  cert_der: Uint8Array;
  not_after: number;
  created_at: number;
}

/** Since migration 4: escrow keys (the newest is used) and escrowed keys. */
export interface EscrowKeyTable {
  key_ref: string;
  spki: Uint8Array;
  created_at: number;
}

export interface EscrowedKeyTable {
  serial: string;
  escrow_key_ref: string;
  envelope: Uint8Array;
  created_at: number;
}

/** Since migration 6: firmware signers (code-signing keys and their certificates). */
export interface FirmwareSignerTable {
  name: string;
  ca: string;
  key_ref: string;
  serial: string;
  cert_der: Uint8Array;
  not_after: number;
  created_at: number;
}

/** Since migration 9: supplier CAs, imported manifests, their entries, device identities. */
export interface SupplierAnchorTable {
  fingerprint: string;
  supplier: string;
  subject: string;
  der: Uint8Array;
  added_at: number;
}

export interface ManifestTable {
  digest: string;
  cms_sha256: string;
  supplier: string;
  stage: string;
  profile: string;
  domain: string | null;
  owner: string | null;
  signer_subject: string;
  signer_fingerprint: string;
  signed_at: number | null;
  created_at: number;
  imported_at: number;
  imported_by: string;
  device_count: number;
  cms: Uint8Array;
}

export interface ManifestEntryTable {
  device_id: string;
  stage: string;
  manifest_digest: string;
  certificate_sha256: string | null;
  public_key_sha256: string | null;
  model: string | null;
  batch: string | null;
  used_at: number | null;
  used_serial: string | null;
}

export interface DeviceIdentityTable {
  device_id: string;
  kind: DeviceIdentityRecord['kind'];
  fingerprint: string;
  stage: string | null;
  serial: string;
  subject: string;
  issuer: string;
  not_before: number;
  not_after: number;
  der: Uint8Array | null;
  recorded_at: number;
}

export interface SchemaVersionTable {
  version: number;
  name: string;
  applied_at: number;
}

export interface Database {
  cas: CaTable;
  certificates: CertificateTable;
  api_tokens: ApiTokenTable;
  audit_log: AuditLogTable;
  devices: DeviceTable;
  enrollment_secrets: EnrollmentSecretTable;
  trust_anchors: TrustAnchorTable;
  orders: OrderTable;
  pending_enrollments: PendingEnrollmentTable;
  crl_counters: CrlCounterTable;
  crls: CrlTable;
  ocsp_signers: OcspSignerTable;
  escrow_keys: EscrowKeyTable;
  escrowed_keys: EscrowedKeyTable;
  leases: LeaseTable;
  sealing_keys: SealingKeyTable;
  cmp_transactions: CmpTransactionTable;
  firmware_signers: FirmwareSignerTable;
  device_events: DeviceEventTable;
  webhooks: WebhookTable;
  webhook_deliveries: WebhookDeliveryTable;
  expiry_notices: ExpiryNoticeTable;
  operator_certificates: OperatorCertificateTable;
  supplier_anchors: SupplierAnchorTable;
  manifests: ManifestTable;
  manifest_entries: ManifestEntryTable;
  device_identities: DeviceIdentityTable;
  console_sessions: ConsoleSessionTable;
  schema_version: SchemaVersionTable;
}

/** Since migration 12: web console sessions, shared by every node. */
export interface ConsoleSessionTable {
  id_hash: string;
  token_hash: string;
  created_at: number;
  last_seen: number;
}

/** Since migration 6: who runs a cluster-wide job (CRL publication) until when. */
export interface LeaseTable {
  name: string;
  holder: string;
  expires_at: number;
}

/** Since migration 10: each device's history of lifecycle events. */
export interface DeviceEventTable {
  id: string;
  device_id: string;
  kind: DeviceEventKind;
  at: number;
  actor: string;
  source: string;
  from_state: DeviceState;
  to_state: DeviceState;
  reason: RevocationReason | null;
  /** JSON array of serials. */
  revoked_serials: string;
  /** JSON object. */
  details: string;
  audit_seq: number;
}

/** Since migration 10: inbound and outbound webhooks with their sealed HMAC secrets. */
export interface WebhookTable {
  name: string;
  direction: 'inbound' | 'outbound';
  url: string | null;
  /** JSON array of days. */
  thresholds_days: string;
  sealed_secret: Uint8Array;
  created_at: number;
}

/** Since migration 10: delivery ids of inbound webhooks already received (replay protection). */
export interface WebhookDeliveryTable {
  source: string;
  delivery_id: string;
  received_at: number;
}

/** Since migration 10: expiry notices sent, one per webhook, certificate and threshold. */
export interface ExpiryNoticeTable {
  webhook: string;
  serial: string;
  threshold_days: number;
  sent_at: number;
}

/** Since migration 10: client certificates that authenticate operators. */
export interface OperatorCertificateTable {
  serial: string;
  name: string;
  role: Role;
  created_at: number;
}
