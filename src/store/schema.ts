/**
 * Row types of the store's tables, as Kysely sees them. Both backends share
 * them: times are integer epoch milliseconds, binary columns come back as
 * Buffer (a Uint8Array), `sans` and audit `details` are JSON text.
 */
import type { CaKind, CertificateStatus, RevocationReason, Role } from './store.js';

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
  schema_version: SchemaVersionTable;
}
