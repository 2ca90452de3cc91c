/**
 * The Store: every durable record of fleetpki, shaped by domain operations
 * rather than tables. Two implementations (SQLite, PostgreSQL) pass one
 * conformance suite (test/unit/store_conformance.test.ts).
 *
 * Rules every implementation keeps:
 * - A mutating call that takes an `audit` entry writes the change and the
 *   audit entry in one transaction: both or neither.
 * - The audit log is hash-chained: entry n stores sha256 over entry n-1's hash
 *   and its own canonical content (see audit_chain.ts), so editing, inserting
 *   or deleting an entry is detectable.
 * - Times are JS Dates at the interface, integer epoch milliseconds inside.
 * - Serial numbers are lowercase hex of the DER INTEGER content octets.
 */

export type CaKind = 'root' | 'issuing';

export interface CaRecord {
  name: string;
  kind: CaKind;
  /** Name of the CA that signed this one; undefined for a self-signed root. */
  parentName?: string;
  subject: string;
  /** DER of the CA certificate. */
  certDer: Uint8Array;
  /** KeyStore reference of the CA key; undefined while the key is offline. */
  keyRef?: string;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
}

export type CertificateStatus = 'good' | 'revoked';

/** RFC 5280 §5.3.1 CRLReason values (7 is unused). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export interface Revocation {
  revokedAt: Date;
  reason: RevocationReason;
  /** RFC 5280 §5.3.2: when the key is known or suspected to have been compromised. */
  invalidityDate?: Date;
}

export interface CertificateRecord {
  serial: string;
  issuerCa: string;
  profile: string;
  subject: string;
  /** Subject alternative names as "type:value" strings, e.g. "dns:a.example". */
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  /** sha256 (hex) of the SubjectPublicKeyInfo DER: finds reuse of a key. */
  spkiSha256: string;
  der: Uint8Array;
  status: CertificateStatus;
  revocation?: Revocation;
  createdAt: Date;
  /** Who asked: operator token name, device id, "cli:<user>". */
  requester: string;
}

export interface CertificateQuery {
  issuerCa?: string;
  status?: CertificateStatus;
  profile?: string;
  /** Case-insensitive substring of the subject. */
  subjectContains?: string;
  spkiSha256?: string;
  /** Return certificates whose serial sorts after this one (keyset paging). */
  afterSerial?: string;
  /** Default 100, at most 1000. */
  limit?: number;
}

export type Role = 'admin' | 'ra-officer' | 'auditor' | 'key-recovery' | 'firmware-signer';
export const ROLES: readonly Role[] = ['admin', 'ra-officer', 'auditor', 'key-recovery', 'firmware-signer'];

export interface ApiTokenRecord {
  id: string;
  name: string;
  role: Role;
  /** sha256 (hex) of the secret token; the token itself is never stored. */
  tokenHash: string;
  createdAt: Date;
  expiresAt?: Date;
  revokedAt?: Date;
}

export interface AuditInput {
  /** Who did it: "token:<name>", "cli:<user>", "system", "device:<id>". */
  actor: string;
  /** Dotted verb, e.g. "certificate.issue", "ca.create", "token.create". */
  action: string;
  /** What it was done to: a serial, a CA name, a token id. */
  target?: string;
  details?: Record<string, unknown>;
}

export interface AuditEntry extends Required<Omit<AuditInput, 'details' | 'target'>> {
  seq: number;
  at: Date;
  target?: string;
  details: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  afterSeq?: number;
  action?: string;
  target?: string;
  limit?: number;
}

export interface Store {
  /** Creates or upgrades the schema; idempotent. */
  migrate(): Promise<void>;
  close(): Promise<void>;
  readonly kind: 'sqlite' | 'postgres';

  // --- certificate authorities ---
  /** Throws ProblemError already_exists if the name is taken. */
  insertCa(ca: CaRecord, audit: AuditInput): Promise<void>;
  getCa(name: string): Promise<CaRecord | undefined>;
  listCas(): Promise<CaRecord[]>;
  /** Sets or clears (undefined) the CA's key reference: taking a root offline. */
  setCaKeyRef(name: string, keyRef: string | undefined, audit: AuditInput): Promise<void>;

  // --- certificates ---
  /**
   * Durably records an issued certificate (and its audit entry) before it is
   * returned to anyone. Throws already_exists on a duplicate serial.
   */
  insertCertificate(cert: CertificateRecord, audit: AuditInput): Promise<void>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  listCertificates(q?: CertificateQuery): Promise<CertificateRecord[]>;
  /** Good certificates whose notAfter is before `before`, soonest first. */
  listExpiring(before: Date, limit?: number): Promise<CertificateRecord[]>;
  /**
   * Marks a good certificate revoked. Throws not_found for an unknown serial
   * and already_revoked when it is revoked already; nothing changes then.
   */
  revokeCertificate(serial: string, revocation: Revocation, audit: AuditInput): Promise<CertificateRecord>;

  // --- API tokens ---
  insertToken(token: ApiTokenRecord, audit: AuditInput): Promise<void>;
  findTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined>;
  listTokens(): Promise<ApiTokenRecord[]>;
  revokeToken(id: string, at: Date, audit: AuditInput): Promise<void>;

  // --- audit log ---
  /** Appends an entry on its own (actions with no other record). */
  appendAudit(entry: AuditInput): Promise<AuditEntry>;
  listAudit(q?: AuditQuery): Promise<AuditEntry[]>;
}
