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
  /** The registry device this certificate was issued to, if any. */
  deviceId?: string;
  /** CRL partition the certificate's distribution point names (0: unpartitioned). */
  crlShard?: number;
}

export interface CertificateQuery {
  issuerCa?: string;
  status?: CertificateStatus;
  profile?: string;
  /** Case-insensitive substring of the subject. */
  subjectContains?: string;
  spkiSha256?: string;
  deviceId?: string;
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

/** A web console session (migration 12): what the cookie's id opens. */
export interface ConsoleSessionRecord {
  /** sha256 (hex) of the session id in the cookie; the id itself is never stored. */
  idHash: string;
  /** sha256 (hex) of the operator's API token, as api_tokens keeps it: checked again at every request. */
  tokenHash: string;
  createdAt: Date;
  lastSeen: Date;
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

/** A count for one UTC day: `day` is the day's start in ms since the epoch. */
export interface DayCount {
  day: number;
  count: number;
}

/** A certificate whose status changed, with the seq of the audit entry that recorded it. */
export interface CertificateChange {
  seq: number;
  serial: string;
}


// ---------------------------------------------------------------- registry

/** Lifecycle (issue 3): registered → active → suspended | revoked | retired. */
export type DeviceState = 'registered' | 'active' | 'suspended' | 'revoked' | 'retired';
export const DEVICE_STATES: readonly DeviceState[] = ['registered', 'active', 'suspended', 'revoked', 'retired'];

export interface DeviceRecord {
  /** The device serial number: unique, becomes CN and serialNumber. */
  id: string;
  profile: string;
  model?: string;
  /** Operational domain (site, building, tenant): becomes a URI SAN. */
  domain?: string;
  owner?: string;
  state: DeviceState;
  /** Extra names certified for the device: "dns:..." / "ip:..." strings. */
  sans: string[];
  /** Enrollment order whose quota the device's first enrollment redeems. */
  orderId?: string;
  /** Enrollments wait for an ra-officer's approval. */
  requireApproval: boolean;
  /** Serial of the device's current certificate. */
  currentSerial?: string;
  attributes: Record<string, string>;
  /**
   * The supply-chain stage a signed manifest handed the device over to
   * (migration 9); undefined for a device no manifest listed.
   */
  stage?: string;
  createdAt: Date;
  updatedAt: Date;
}

/** How many devices are in each lifecycle state (every state present, 0 if none). */
export type DeviceStateCounts = Record<DeviceState, number>;

export interface DeviceQuery {
  state?: DeviceState;
  domain?: string;
  model?: string;
  profile?: string;
  owner?: string;
  /** Keyset paging: ids sorting after this one. */
  afterId?: string;
  /** Default 100, at most 1000. */
  limit?: number;
}

export interface DevicePatch {
  state?: DeviceState;
  domain?: string | null;
  owner?: string | null;
  model?: string | null;
  profile?: string;
  sans?: string[];
  requireApproval?: boolean;
  attributes?: Record<string, string>;
}

export interface DeviceUpdateGuard {
  /** Apply only if the device is in this state; otherwise `conflict`. */
  ifState?: DeviceState;
  /**
   * Re-registration, in the same transaction: unlink the current certificate
   * (it stays in the device's history), delete the enrollment secret and
   * reject enrollments still pending or approved.
   */
  reregister?: boolean;
}

/** A one-time enrollment secret: its hash, and a sealed copy for CMP (see SecretVault). */
export interface EnrollmentSecretRecord {
  deviceId: string;
  /** sha256 (hex) of the secret. */
  secretHash: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt?: Date;
  /**
   * The secret sealed to the registry's sealing key (migration 7): CMP's
   * MAC-based protection needs the secret itself, a hash cannot verify a
   * MAC. Wiped when the secret is used. Absent for secrets made before.
   */
  sealed?: Uint8Array;
}

/**
 * The public half of the key one-time secrets are sealed to; the private
 * half is in the KeyStore (only the server, which can unlock it, opens them).
 */
export interface SealingKeyRecord {
  id: string;
  keyRef: string;
  /** DER SubjectPublicKeyInfo (P-256). */
  spki: Uint8Array;
  createdAt: Date;
}

/** A CA trusted for one purpose, e.g. manufacturer (IDevID) bootstrap. */
export interface TrustAnchorRecord {
  /** sha256 (hex) of the certificate DER. */
  fingerprint: string;
  purpose: 'manufacturer';
  subject: string;
  der: Uint8Array;
  addedAt: Date;
}

/** An entitlement: N certificates of a profile for a model and/or domain. */
export interface OrderRecord {
  id: string;
  profile: string;
  model?: string;
  domain?: string;
  quantity: number;
  used: number;
  expiresAt?: Date;
  createdAt: Date;
}

export type PendingStatus = 'pending' | 'approved' | 'rejected' | 'issued';

/** An enrollment waiting for approval (EST answers 202 + Retry-After meanwhile). */
export interface PendingEnrollmentRecord {
  id: string;
  deviceId: string;
  /** sha256 (hex) of the requested key's SPKI: the retry must carry the same key. */
  spkiSha256: string;
  csrDer: Uint8Array;
  status: PendingStatus;
  createdAt: Date;
  decidedAt?: Date;
  decidedBy?: string;
}

/** Everything one enrollment changes, committed together or not at all. */
export interface EnrollmentCommit {
  cert: CertificateRecord & { deviceId: string };
  /**
   * Mark the device's one-time secret used. Fails with `unauthorized` if it is
   * already used, expired, or its hash is not this one (a replay or a race).
   */
  consumeSecretHash?: string;
  /** Take one from this order; fails with `policy_violation` if none is left or it expired. */
  redeemOrderId?: string;
  /** The approved pending enrollment this completes; set to 'issued'. */
  pendingId?: string;
  /**
   * The device's first certificate of this supply-chain stage: its manifest
   * entry (deviceId, stage) is marked used with this certificate. Fails with
   * `conflict` if the entry is used already (a racing enrollment won).
   */
  admitStage?: string;
  /** Identities to add to the device's chain (kept if already there). */
  identities?: DeviceIdentityRecord[];
  /**
   * The device's current certificate as the enrollment read it (undefined:
   * none). The commit fails with `conflict` if the device's current
   * certificate changed meanwhile. Nothing is revoked here.
   */
  replacesSerial?: string;
  now: Date;
}


// ---------------------------------------------------------------- CMP

/**
 * Where a CMP transaction is (RFC 4210 §5.1.1, RFC 9483 §3.1, §4.4):
 * open (request being handled), waiting (approval pending, the client polls),
 * confirming (certificate issued, certConf expected), closed.
 */
export type CmpTransactionState = 'open' | 'waiting' | 'confirming' | 'closed';
export const CMP_TRANSACTION_STATES: readonly CmpTransactionState[] = ['open', 'waiting', 'confirming', 'closed'];

/**
 * A CMP transaction, shared by every node: the transactionID is never
 * reused, and each further message must echo the last senderNonce we sent.
 */
export interface CmpTransactionRecord {
  /** Lowercase hex of the transactionID. */
  id: string;
  state: CmpTransactionState;
  /** The body that began it: ir, cr, kur, p10cr, rr, genm. */
  kind: string;
  deviceId?: string;
  /** Hex of our last senderNonce: the next request's recipNonce. */
  expectedNonce?: string;
  /** How the first request was protected; later ones must match. */
  protection?: 'mac' | 'signature' | 'none';
  /** sha256 (hex) of the protection certificate, for signature protection. */
  signerSha256?: string;
  /** MAC transactions: the secret, sealed, until the transaction closes (the registry's copy is wiped on use). */
  sealedSecret?: Uint8Array;
  /** The request to replay after approval: DER CertReqMsg or PKCS#10. */
  requestDer?: Uint8Array;
  /** The client asked for implicitConfirm (kept for the answer after polling). */
  implicitConfirm?: boolean;
  certReqId?: number;
  /** From the URL label: the CA and profile. */
  ca?: string;
  profile?: string;
  /** The certificate issued and awaiting certConf, and the one it replaced. */
  certSerial?: string;
  previousSerial?: string;
  /** accepted, rejected, expired, refused, ... once closed. */
  outcome?: string;
  createdAt: Date;
  updatedAt: Date;
  /** Deadline for the next message (confirmWaitTime, polling window). */
  expiresAt: Date;
}

/** What a step of a transaction changes; null clears a field. */
export interface CmpTransactionPatch {
  state?: CmpTransactionState;
  deviceId?: string;
  expectedNonce?: string | null;
  sealedSecret?: Uint8Array | null;
  requestDer?: Uint8Array | null;
  certReqId?: number;
  certSerial?: string | null;
  previousSerial?: string | null;
  outcome?: string;
  updatedAt: Date;
  expiresAt?: Date;
}

// ---------------------------------------------------------------- revocation

/** One CRL entry as the CRL encoder needs it. */
export interface RevokedEntry {
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
  invalidityDate?: Date;
}

/**
 * A page of revoked entries as columns, index i of each array one entry:
 * what a million-entry CRL is built from, without an object and two Dates
 * per entry. Times in ms since the epoch; reasons as RFC 5280 §5.3.1 codes;
 * invalidityDates[i] is null where none was given.
 */
export interface RevokedColumns {
  serials: string[];
  revokedAt: number[];
  reasons: number[];
  invalidityDates: (number | null)[];
}

/** A certificate whose certificateHold was released (RFC 5280 §5.3.1 removeFromCRL in delta CRLs). */
export interface ReleasedHold {
  serial: string;
  releasedAt: Date;
}

/** A signed CRL as published: every node serves these exact bytes. */
export interface CrlRecord {
  ca: string;
  /** Partition (issuing distribution point); 0 when the CA is not partitioned. */
  shard: number;
  kind: 'base' | 'delta';
  /** RFC 5280 §5.2.3 cRLNumber, shared by base and delta CRLs of a CA. */
  number: number;
  /** For a delta CRL: the cRLNumber of the base it applies to (§5.2.4). */
  baseNumber?: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  der: Uint8Array;
}

/** The delegated OCSP signer of one CA (RFC 6960 §4.2.2.2). */
export interface OcspSignerRecord {
  ca: string;
  /** KeyStore reference of the signer key. */
  keyRef: string;
  certDer: Uint8Array;
  notAfter: Date;
  createdAt: Date;
}

// ---------------------------------------------------------------- key custody

/** The key that escrowed keys are encrypted to (RSA, in the KeyStore); the newest is used. */
export interface EscrowKeyRecord {
  keyRef: string;
  /** DER SubjectPublicKeyInfo: escrowing needs only the public half. */
  spki: Uint8Array;
  createdAt: Date;
}

/** A server-generated private key kept in escrow for one certificate. */
export interface EscrowedKeyRecord {
  serial: string;
  /** The escrow key it is encrypted to. */
  escrowKeyRef: string;
  /** The encrypted key (see registry/key_custody.ts for the format). */
  envelope: Uint8Array;
  createdAt: Date;
}

// ---------------------------------------------------------------- firmware

/**
 * A firmware signer (issue 9): a code-signing key in the KeyStore and its
 * certificate, issued under a CA of its own. Build pipelines sign with it.
 */
export interface FirmwareSignerRecord {
  /** Lowercase letters, digits and dashes; unique. */
  name: string;
  /** The issuing CA of its certificate. */
  ca: string;
  /** KeyStore reference of the signing key. */
  keyRef: string;
  /** Serial of its certificate (in the certificates table: revoked there like any other). */
  serial: string;
  certDer: Uint8Array;
  notAfter: Date;
  createdAt: Date;
}

// ---------------------------------------------------------------- lifecycle (issue 8)

/** What happened to a device, as an operator or a device-management system reports it. */
export const DEVICE_EVENT_KINDS = ['lost', 'stolen', 'compromised', 'decommissioned', 'retired', 'replaced', 'transferred'] as const;
export type DeviceEventKind = (typeof DEVICE_EVENT_KINDS)[number];

/** One entry of a device's history (migration 10). */
export interface DeviceEventRecord {
  id: string;
  deviceId: string;
  kind: DeviceEventKind;
  at: Date;
  /** Audit actor: "token:alice", "cert:alice", "cli:root", "hook:crm". */
  actor: string;
  /** How it was reported: api, cli or webhook. */
  source: 'api' | 'cli' | 'webhook';
  /** The device's state before and after. */
  fromState: DeviceState;
  toState: DeviceState;
  /** Reason of the revocations it made, if any. */
  reason?: RevocationReason;
  /** Certificates it revoked. */
  revokedSerials: string[];
  /** Free details: note, invalidityDate, replacedBy, from/to owner and domain, deliveryId. */
  details: Record<string, unknown>;
  /** Seq of the audit entry that recorded it (set by the store). */
  auditSeq?: number;
}

/**
 * Everything a lifecycle event changes, in one transaction with its audit
 * entry: the device's good certificates (and, for a permanent reason, one
 * on hold) are revoked, the device record changes, the event is added to
 * its history and a webhook delivery id is spent.
 */
export interface DeviceEventCommit {
  event: DeviceEventRecord;
  /** Applies only while the device is still in this state with this current certificate (else conflict). */
  ifState: DeviceState;
  ifCurrentSerial?: string;
  /** The revocation applied to every good certificate of the device; a hold becomes this reason too when it is not certificateHold. */
  revocation?: Revocation;
  /** The device change (state, owner, domain, profile). */
  patch: DevicePatch;
  /** Start over as a new registration (current certificate unlinked, secret dropped, pending enrollments rejected). */
  reregister?: boolean;
  /** A webhook delivery: refused with conflict (nothing changed) if the id was used before. */
  delivery?: { source: string; id: string; receivedAt: Date };
}

/** A webhook: inbound (a device-management system reports events) or outbound (expiry notices to `url`). */
export interface WebhookRecord {
  name: string;
  direction: 'inbound' | 'outbound';
  url?: string;
  /** Outbound: notify this many days before expiry (descending). */
  thresholdsDays: number[];
  /** The shared HMAC secret, sealed to the registry's sealing key (SecretVault). */
  sealedSecret: Uint8Array;
  createdAt: Date;
}

/** An expiry notice sent: once per webhook, certificate and threshold. */
export interface ExpiryNoticeRecord {
  webhook: string;
  serial: string;
  thresholdDays: number;
  sentAt: Date;
}

/** A device whose current certificate is past its renewal point or expired. */
export interface StaleDevice {
  device: DeviceRecord;
  certificate: CertificateRecord;
}

/** An operator who authenticates with a client certificate this CA issued. */
export interface OperatorCertificateRecord {
  serial: string;
  name: string;
  role: Role;
  createdAt: Date;
}

// ---------------------------------------------------------------- supply chain

/** A CA trusted to vouch for the manifest signers of one supplier (issue 8). */
export interface SupplierAnchorRecord {
  /** sha256 (hex) of the certificate DER. */
  fingerprint: string;
  /** The supplier name manifests signed under this CA must carry. */
  supplier: string;
  subject: string;
  der: Uint8Array;
  addedAt: Date;
}

/** A supply-chain manifest that was imported: the evidence, kept whole. */
export interface ManifestRecord {
  /** sha256 (hex) of the signed JSON content: a manifest is imported once. */
  digest: string;
  /** sha256 (hex) of the CMS as received. */
  cmsSha256: string;
  supplier: string;
  stage: string;
  /** What the import registered the devices for. */
  profile: string;
  domain?: string;
  owner?: string;
  signerSubject: string;
  /** sha256 (hex) of the signer certificate DER. */
  signerFingerprint: string;
  signedAt?: Date;
  /** The manifest's own createdAt. */
  createdAt: Date;
  importedAt: Date;
  importedBy: string;
  deviceCount: number;
  cms: Uint8Array;
}

/** One device of an imported manifest: what it must present to enter the stage. */
export interface ManifestEntryRecord {
  deviceId: string;
  stage: string;
  manifestDigest: string;
  /** sha256 (hex) of the certificate the device presents. Exactly one of the two hashes. */
  certificateSha256?: string;
  /** sha256 (hex) of a SubjectPublicKeyInfo: of that certificate or of the enrolled key. */
  publicKeySha256?: string;
  model?: string;
  batch?: string;
  /** When the device got its first certificate of the stage, and its serial. */
  usedAt?: Date;
  usedSerial?: string;
}

/**
 * One identity in a device's chain: its manufacturer certificate (IDevID)
 * as presented, and the first certificate of each stage from this CA (the
 * last one is the operational identity). Renewals are in the certificates.
 */
export interface DeviceIdentityRecord {
  deviceId: string;
  kind: 'manufacturer' | 'certificate';
  /** sha256 (hex) of the certificate DER. */
  fingerprint: string;
  stage?: string;
  serial: string;
  subject: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
  /** A manufacturer certificate is kept whole (it is in no table of ours). */
  der?: Uint8Array;
  recordedAt: Date;
}

/** Everything one manifest import changes, committed together or not at all. */
export interface ManifestImport {
  manifest: ManifestRecord;
  entries: ManifestEntryRecord[];
  /** Devices the manifest registers. Fails with `conflict` if one was registered meanwhile. */
  newDevices: DeviceRecord[];
  /** Registered devices that move into the stage; applied only while still in `ifState` and `ifStage` (else `conflict`). */
  movedDevices: Array<{ id: string; patch: DevicePatch; ifState: DeviceState; ifStage?: string }>;
  now: Date;
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
   * Certificates per UTC day (ms since the epoch of the day's start), for the
   * console's charts: by `notAfter` (good certificates expiring in
   * [from, to)) or by `createdAt` (certificates issued in [from, to),
   * `devicesOnly`: those issued to a registry device, i.e. enrollments).
   * Days without certificates are left out; ascending.
   */
  countCertificatesPerDay(q: { by: 'notAfter' | 'createdAt'; from: Date; to: Date; devicesOnly?: boolean }): Promise<DayCount[]>;
  /** Revoked certificates, most recently revoked first. */
  listRecentRevocations(limit?: number): Promise<CertificateRecord[]>;
  /**
   * Marks a good certificate revoked. Throws not_found for an unknown serial
   * and already_revoked when it is revoked already; nothing changes then.
   */
  revokeCertificate(serial: string, revocation: Revocation, audit: AuditInput): Promise<CertificateRecord>;

  // --- API tokens ---
  insertToken(token: ApiTokenRecord, audit: AuditInput): Promise<void>;
  findTokenByHash(tokenHash: string): Promise<ApiTokenRecord | undefined>;
  listTokens(): Promise<ApiTokenRecord[]>;
  /** Console sessions (not audited: sign-in is checked like any token use). */
  insertConsoleSession(s: ConsoleSessionRecord): Promise<void>;
  getConsoleSession(idHash: string): Promise<ConsoleSessionRecord | undefined>;
  touchConsoleSession(idHash: string, at: Date): Promise<void>;
  deleteConsoleSession(idHash: string): Promise<void>;
  /** Deletes sessions idle since before `idleBefore` or created before `createdBefore`; returns how many. */
  deleteStaleConsoleSessions(idleBefore: Date, createdBefore: Date): Promise<number>;
  revokeToken(id: string, at: Date, audit: AuditInput): Promise<void>;

  // --- audit log ---
  /** Appends an entry on its own (actions with no other record). */
  appendAudit(entry: AuditInput): Promise<AuditEntry>;
  listAudit(q?: AuditQuery): Promise<AuditEntry[]>;
  /**
   * The change feed: certificates whose status changed (issued, revoked,
   * hold released) after audit entry `afterSeq`, oldest first, at most
   * `limit` (default 1,000); a certificate changed twice appears once, at
   * its last change. Audit entries are numbered in commit order (the chain
   * is appended under a lock), so a reader that remembers the last seq it
   * saw misses no change, whichever node or process made it.
   */
  listCertificateChanges(afterSeq: number, limit?: number): Promise<CertificateChange[]>;
  /** The newest audit seq, 0 for an empty log: where a reader of changes starts. */
  lastAuditSeq(): Promise<number>;

  // --- cluster ---
  /**
   * Takes or renews the lease `name` for `holder` until `until`: true when
   * `holder` now holds it (it was free, expired at `now`, or already its
   * own), false when another holder's lease runs. Two nodes racing for an
   * expired lease: exactly one wins. Not audited (it is renewed every few
   * seconds); the jobs it guards are.
   */
  acquireLease(name: string, holder: string, until: Date, now: Date): Promise<boolean>;
  /** Gives the lease up if `holder` has it (a clean shutdown), so another node takes over at once. */
  releaseLease(name: string, holder: string): Promise<void>;

  // --- devices (registry) ---
  /** Throws already_exists for a taken id. */
  insertDevice(d: DeviceRecord, audit: AuditInput): Promise<void>;
  /**
   * Bulk registration in one transaction: devices whose id exists already are
   * skipped and returned; the rest are inserted. One audit entry for the batch.
   */
  insertDevices(ds: DeviceRecord[], audit: AuditInput): Promise<{ inserted: number; existing: string[] }>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  countDevicesByState(): Promise<DeviceStateCounts>;
  listDevices(q?: DeviceQuery): Promise<DeviceRecord[]>;
  /**
   * Throws not_found; sets updatedAt to `at`. With `guard.ifState`, the
   * update applies only while the device is still in that state (else
   * `conflict`, nothing changed): the registry checks a lifecycle transition
   * against the state it read, and a concurrent change must not slip between.
   */
  updateDevice(id: string, patch: DevicePatch, at: Date, audit: AuditInput, guard?: DeviceUpdateGuard): Promise<DeviceRecord>;

  /** Replaces the device's secret (at most one per device). Throws not_found for an unknown device. */
  putEnrollmentSecret(s: EnrollmentSecretRecord, audit: AuditInput): Promise<void>;
  getEnrollmentSecret(deviceId: string): Promise<EnrollmentSecretRecord | undefined>;

  /** Throws already_exists for the same fingerprint and purpose. */
  insertTrustAnchor(t: TrustAnchorRecord, audit: AuditInput): Promise<void>;
  listTrustAnchors(purpose?: TrustAnchorRecord['purpose']): Promise<TrustAnchorRecord[]>;
  removeTrustAnchor(fingerprint: string, audit: AuditInput): Promise<void>;

  insertOrder(o: OrderRecord, audit: AuditInput): Promise<void>;
  getOrder(id: string): Promise<OrderRecord | undefined>;
  listOrders(): Promise<OrderRecord[]>;

  insertPendingEnrollment(p: PendingEnrollmentRecord, audit: AuditInput): Promise<void>;
  /** The newest pending/approved/rejected enrollment of a device for this key. */
  findPendingEnrollment(deviceId: string, spkiSha256: string): Promise<PendingEnrollmentRecord | undefined>;
  getPendingEnrollment(id: string): Promise<PendingEnrollmentRecord | undefined>;
  listPendingEnrollments(status?: PendingStatus): Promise<PendingEnrollmentRecord[]>;
  /** pending → approved | rejected; throws conflict if it is not pending. */
  decidePendingEnrollment(id: string, status: 'approved' | 'rejected', by: string, at: Date, audit: AuditInput): Promise<PendingEnrollmentRecord>;

  /**
   * Commits an enrollment: consumes the secret, redeems the order, inserts the
   * certificate linked to the device, sets the device active with this
   * certificate as current, completes the pending enrollment — one
   * transaction with its audit entry. Any refusal changes nothing.
   */
  recordEnrollment(c: EnrollmentCommit, audit: AuditInput): Promise<void>;

  /**
   * A certificate its holder did not accept (RFC 9483 §4.1.1: CMP certConf
   * rejection or no certConf in time): revokes it and, while it is still
   * the device's current certificate, makes `restoreSerial` current again
   * (none: the device goes back to registered). One transaction with its
   * audit entry. Throws not_found for an unknown serial; a certificate
   * revoked already is left as it is (the device part still applies).
   * Returns false, writing no audit entry, when there was nothing left to do.
   */
  abandonCertificate(serial: string, revocation: Revocation, restoreSerial: string | undefined, audit: AuditInput): Promise<boolean>;

  /** Adds a sealing key; the newest one seals new secrets. */
  putSealingKey(k: SealingKeyRecord, audit: AuditInput): Promise<void>;
  /** The sealing key with this id, or the newest one. */
  getSealingKey(id?: string): Promise<SealingKeyRecord | undefined>;

  // --- CMP transactions ---
  /** Throws already_exists when the transactionID was used before (CMP transactionIdInUse). */
  insertCmpTransaction(t: CmpTransactionRecord): Promise<void>;
  getCmpTransaction(id: string): Promise<CmpTransactionRecord | undefined>;
  /**
   * Compare-and-set: applies `patch` only while the transaction is still in
   * state `from.state` with expected nonce `from.expectedNonce` (when
   * given), so a replayed or concurrent message cannot advance it twice.
   * Throws not_found, or conflict when it moved on.
   */
  updateCmpTransaction(id: string, from: { state: CmpTransactionState; expectedNonce?: string }, patch: CmpTransactionPatch): Promise<CmpTransactionRecord>;
  /** Transactions not closed whose deadline is before `now`, oldest deadline first. */
  listDueCmpTransactions(now: Date, limit?: number): Promise<CmpTransactionRecord[]>;
  /** Deletes closed transactions last updated before `before`; returns how many. */
  pruneCmpTransactions(before: Date): Promise<number>;

  // --- revocation: CRLs, holds, OCSP signers ---
  /**
   * Revoked certificates of a CA in serial order, in pages of at most
   * `limit` (default 10,000, at most 100,000): keyset paging with
   * `afterSerial`. `shard` limits to one partition; `revokedSince` to entries
   * revoked at or after it (delta CRLs). Expired certificates are included
   * (RFC 5280 §3.3 lets a CA drop them; fleetpki keeps them until told).
   */
  listRevoked(ca: string, q?: { shard?: number; revokedSince?: Date; afterSerial?: string; limit?: number }): Promise<RevokedEntry[]>;
  /** The same page as listRevoked, as columns (CRL production). */
  listRevokedColumns(ca: string, q?: { shard?: number; revokedSince?: Date; afterSerial?: string; limit?: number }): Promise<RevokedColumns>;
  /** Number of revoked certificates of a CA (one shard if given). */
  countRevoked(ca: string, shard?: number): Promise<number>;
  /**
   * certificateHold → good again. Throws not_found, or conflict when the
   * certificate is not on hold. Records the release for delta CRLs.
   */
  releaseHold(serial: string, at: Date, audit: AuditInput): Promise<CertificateRecord>;
  /** Holds released at or after `since` for a CA's delta CRL. */
  listReleasedHolds(ca: string, since: Date, shard?: number): Promise<ReleasedHold[]>;
  /**
   * Takes the CA's next cRLNumber (1, 2, 3, ...), atomically: two nodes never
   * get the same number (RFC 5280 §5.2.3: monotonically increasing).
   */
  nextCrlNumber(ca: string): Promise<number>;
  /** Stores a signed CRL; the newest of each (ca, shard, kind) is what is served. */
  putCrl(crl: CrlRecord, audit: AuditInput): Promise<void>;
  /** The newest CRL (highest number) of a CA, shard and kind. */
  getLatestCrl(ca: string, shard: number, kind: 'base' | 'delta'): Promise<CrlRecord | undefined>;
  /** The newest CRL of every (ca, shard, kind): publication health. */
  listLatestCrls(): Promise<CrlRecord[]>;
  /** Shards that hold at least one certificate of the CA, ascending. */
  listCrlShards(ca: string): Promise<number[]>;
  /** Count of certificates the CA issued into a shard (to decide when to open the next). */
  countInShard(ca: string, shard: number): Promise<number>;

  putOcspSigner(s: OcspSignerRecord, audit: AuditInput): Promise<void>;

  // --- key custody (escrow) ---
  /** Stores an escrow key; already_exists for a taken keyRef. */
  putEscrowKey(k: EscrowKeyRecord, audit: AuditInput): Promise<void>;
  /** The newest escrow key. */
  getEscrowKey(): Promise<EscrowKeyRecord | undefined>;
  /** Stores an escrowed key; not_found for an unknown certificate, already_exists for a second one. */
  putEscrowedKey(k: EscrowedKeyRecord, audit: AuditInput): Promise<void>;
  getEscrowedKey(serial: string): Promise<EscrowedKeyRecord | undefined>;
  /** The newest OCSP signer of a CA. */
  getOcspSigner(ca: string): Promise<OcspSignerRecord | undefined>;

  // --- supply chain (issue 8) ---
  /** Throws already_exists for a fingerprint trusted already (for any supplier). */
  insertSupplierAnchor(a: SupplierAnchorRecord, audit: AuditInput): Promise<void>;
  /** Oldest first; one supplier's if named. */
  listSupplierAnchors(supplier?: string): Promise<SupplierAnchorRecord[]>;
  /** Removes every anchor of the supplier; not_found when it has none. Returns how many. */
  removeSupplier(supplier: string, audit: AuditInput): Promise<number>;
  /**
   * Records a manifest, its entries and the devices it registers or moves,
   * in one transaction with its audit entry. already_exists when a manifest
   * with this digest was imported before; conflict when a device is in the
   * stage already, or changed meanwhile. Any refusal changes nothing.
   */
  importManifest(i: ManifestImport, audit: AuditInput): Promise<void>;
  getManifest(digest: string): Promise<ManifestRecord | undefined>;
  /** Newest import first. */
  listManifests(q?: { supplier?: string; limit?: number }): Promise<ManifestRecord[]>;
  getManifestEntry(deviceId: string, stage: string): Promise<ManifestEntryRecord | undefined>;
  /** A device's entries (oldest stage first), or a manifest's (by device id). */
  listManifestEntries(q: { deviceId: string } | { manifestDigest: string }): Promise<ManifestEntryRecord[]>;
  /** The device's chain of identities, oldest first. */
  listDeviceIdentities(deviceId: string): Promise<DeviceIdentityRecord[]>;

  // --- firmware signers ---
  /** Throws already_exists for a taken name, not_found for an unknown CA or certificate serial. */
  insertFirmwareSigner(s: FirmwareSignerRecord, audit: AuditInput): Promise<void>;
  getFirmwareSigner(name: string): Promise<FirmwareSignerRecord | undefined>;
  /** Every firmware signer, the newest first. */
  listFirmwareSigners(): Promise<FirmwareSignerRecord[]>;

  // --- lifecycle, webhooks, expiry watch, operator certificates (issue 8, migration 10) ---
  /**
   * Applies a lifecycle event (see DeviceEventCommit) in one transaction with
   * its audit entry. not_found for an unknown device; conflict when the
   * device moved on or the delivery id was used; nothing changes then.
   */
  recordDeviceEvent(c: DeviceEventCommit, audit: AuditInput): Promise<{ device: DeviceRecord; event: DeviceEventRecord }>;
  /** A device's history, oldest first. */
  listDeviceEvents(deviceId: string): Promise<DeviceEventRecord[]>;
  /** Forgets webhook delivery ids received before `before` (they are refused by their timestamp then). */
  pruneWebhookDeliveries(before: Date): Promise<number>;

  /** Throws already_exists for a taken name. */
  insertWebhook(w: WebhookRecord, audit: AuditInput): Promise<void>;
  getWebhook(name: string): Promise<WebhookRecord | undefined>;
  listWebhooks(direction?: WebhookRecord['direction']): Promise<WebhookRecord[]>;
  /** Throws not_found. Its expiry notices go with it. */
  removeWebhook(name: string, audit: AuditInput): Promise<void>;
  /** Records sent notices; ones recorded already are left as they are. Not audited (a timer sends them). */
  recordExpiryNotices(n: ExpiryNoticeRecord[]): Promise<void>;
  /** Which of `serials` have a notice for this webhook and threshold. */
  listExpiryNotices(webhook: string, serials: string[]): Promise<ExpiryNoticeRecord[]>;
  /**
   * Devices (not retired or revoked) whose current certificate is past its
   * renewal point: notBefore + share × lifetime before `now`. Soonest notAfter first.
   */
  listStaleDevices(now: Date, share: number, limit?: number): Promise<StaleDevice[]>;

  /** Binds a certificate of ours to an operator; not_found for an unknown serial, already_exists for a bound one. */
  insertOperatorCertificate(o: OperatorCertificateRecord, audit: AuditInput): Promise<void>;
  getOperatorCertificate(serial: string): Promise<OperatorCertificateRecord | undefined>;
  listOperatorCertificates(): Promise<OperatorCertificateRecord[]>;
  /** Throws not_found. */
  removeOperatorCertificate(serial: string, audit: AuditInput): Promise<void>;
}
