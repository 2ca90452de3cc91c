/**
 * Certificate profiles: what a certificate of each kind may contain. Policy is
 * data here; the issuer applies it once for every protocol (CLI, API, EST, CMP).
 * Operators override or add profiles in the config's "profiles" object; a
 * partial override is merged over the shipped default of the same name.
 */
import { ProblemError } from '../errors.js';
import { KEY_ALGORITHMS, isKeyAlgorithm, type KeyAlgorithm } from '../x509/algorithms.js';
import { SAN_TYPES, type SanType } from '../x509/general_names.js';
import { DN_ATTRIBUTES } from '../x509/names.js';

export const KEY_USAGES = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign'] as const;
export type KeyUsageName = (typeof KEY_USAGES)[number];

export const EKU_OIDS: Record<string, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
};

export interface SanRules {
  /** SAN types the profile may carry. */
  allowed: SanType[];
  /** Minimum number of SANs (0: none needed). */
  min?: number;
  max?: number;
  /** Per type, regular expressions of which each value must match one (anchored). */
  patterns?: Partial<Record<SanType, string[]>>;
}

export interface SubjectRules {
  /** Attribute short names allowed in the subject (CN, O, OU, serialNumber, ...). */
  allowed: string[];
  required?: string[];
}

export interface Profile {
  description: string;
  keyAlgorithms: KeyAlgorithm[];
  /** Default lifetime; also the most a request may ask for unless maxValidityDays is set. */
  validityDays: number;
  maxValidityDays?: number;
  /**
   * Short-lived certificates (tests, demos, devices that renew often): when
   * set, certificates live this many seconds and validityDays is ignored.
   */
  validitySeconds?: number;
  keyUsage: KeyUsageName[];
  /** Names from EKU_OIDS or dotted OIDs; empty: no EKU extension. */
  extendedKeyUsage: string[];
  /** Present: a CA certificate (basicConstraints cA=TRUE) with this path length. */
  ca?: { pathLen?: number };
  subject: SubjectRules;
  san: SanRules;
  /** RFC 6960 §4.2.2.2.1 id-pkix-ocsp-nocheck, for delegated OCSP signers. */
  ocspNoCheck?: boolean;
  /** Write CRL distribution point and AIA (OCSP, caIssuers) URLs. Default true. */
  revocationInfo?: boolean;
  /**
   * Enrollment (EST, CMP): the registry decides the names. A CSR that asks
   * for names the registry did not give is trimmed to the registry's
   * ('trim', default) or refused ('refuse').
   */
  csrNames?: 'trim' | 'refuse';
  /** Allow server-side key generation (EST serverkeygen, the API, cert export-p12). Default false. */
  serverKeyGen?: boolean;
  /**
   * Keep server-generated keys in escrow, encrypted to the escrow key held in
   * the KeyStore, for recovery by a key-recovery operator. Needs serverKeyGen.
   * Default false: the server keeps no copy of a key it generated.
   */
  keyEscrow?: boolean;
  /**
   * Supply-chain stages (issue 8): a device enrolls under this profile only
   * if an imported supplier manifest handed it over, and its first
   * certificate here only with the certificate or key the manifest lists.
   * Default false.
   */
  requireManifest?: boolean;
}

const ALL_KEYS: KeyAlgorithm[] = [...KEY_ALGORITHMS];
const RSA_KEYS: KeyAlgorithm[] = ['rsa-2048', 'rsa-3072', 'rsa-4096'];
const DEVICE_SUBJECT = ['CN', 'serialNumber', 'O', 'OU', 'L', 'ST', 'C', 'DC', 'UID'];

export const DEFAULT_PROFILES: Record<string, Profile> = {
  'device-tls': {
    description: 'Device identity for mutual TLS (MQTT, HTTPS, VPN): client and server authentication',
    keyAlgorithms: ALL_KEYS,
    validityDays: 365,
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: ['clientAuth', 'serverAuth'],
    subject: { allowed: DEVICE_SUBJECT, required: ['CN'] },
    san: { allowed: ['dns', 'ip', 'uri'], max: 20 },
  },
  'server-tls': {
    description: 'TLS server (brokers, APIs, the fleetpki listener itself)',
    keyAlgorithms: ALL_KEYS,
    validityDays: 90,
    maxValidityDays: 397,
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extendedKeyUsage: ['serverAuth'],
    subject: { allowed: ['CN', 'O', 'OU', 'L', 'ST', 'C'] },
    san: { allowed: ['dns', 'ip'], min: 1, max: 100 },
  },
  'opcua-application': {
    description: 'OPC UA application instance certificate (OPC 10000-6 §6.2.2): RSA, applicationUri as URI SAN',
    keyAlgorithms: RSA_KEYS,
    validityDays: 730,
    keyUsage: ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment'],
    extendedKeyUsage: ['serverAuth', 'clientAuth'],
    subject: { allowed: ['CN', 'O', 'OU', 'L', 'ST', 'C', 'DC'], required: ['CN'] },
    san: { allowed: ['uri', 'dns', 'ip'], min: 1, max: 20, patterns: { uri: ['urn:.+', 'https?://.+', 'opc\\.tcp://.+'] } },
  },
  'code-signing': {
    description: 'Signs firmware images and update manifests',
    keyAlgorithms: ['ecdsa-p256', 'ecdsa-p384', 'rsa-3072', 'rsa-4096'],
    validityDays: 1095,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['codeSigning'],
    subject: { allowed: ['CN', 'O', 'OU', 'C'], required: ['CN'] },
    san: { allowed: ['email', 'uri'], max: 5 },
  },
  'ocsp-signer': {
    description: 'Delegated OCSP response signer (RFC 6960 §4.2.2.2)',
    keyAlgorithms: ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa-2048', 'rsa-3072'],
    validityDays: 30,
    keyUsage: ['digitalSignature'],
    extendedKeyUsage: ['OCSPSigning'],
    subject: { allowed: ['CN', 'O', 'OU', 'C'], required: ['CN'] },
    san: { allowed: [], max: 0 },
    ocspNoCheck: true,
    revocationInfo: false,
  },
  'sub-ca': {
    description: 'Issuing (intermediate) CA signed by the root; may not certify further CAs',
    keyAlgorithms: ALL_KEYS,
    validityDays: 3650,
    keyUsage: ['keyCertSign', 'cRLSign', 'digitalSignature'],
    extendedKeyUsage: [],
    ca: { pathLen: 0 },
    subject: { allowed: ['CN', 'O', 'OU', 'L', 'ST', 'C', 'DC', 'serialNumber'], required: ['CN'] },
    san: { allowed: [], max: 0 },
  },
};

export type ProfileSet = Record<string, Profile>;

/** Merges config overrides over the shipped defaults and validates the result. */
export function resolveProfiles(overrides: Record<string, Partial<Profile>> = {}): ProfileSet {
  const out: ProfileSet = { ...DEFAULT_PROFILES };
  for (const [name, o] of Object.entries(overrides)) {
    const base = DEFAULT_PROFILES[name];
    const merged = (base ? { ...base, ...o, subject: { ...base.subject, ...o.subject }, san: { ...base.san, ...o.san } } : o) as Profile;
    validateProfile(name, merged);
    out[name] = merged;
  }
  return out;
}

export function validateProfile(name: string, p: Profile): void {
  const bad = (why: string) => new ProblemError('config_error', `profile "${name}": ${why}`);
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) throw bad('names are lowercase letters, digits and dashes');
  if (typeof p.description !== 'string') throw bad('description is required');
  if (!Array.isArray(p.keyAlgorithms) || p.keyAlgorithms.length === 0) throw bad('keyAlgorithms must list at least one algorithm');
  for (const k of p.keyAlgorithms) if (!isKeyAlgorithm(k)) throw bad(`unknown key algorithm "${k}" (known: ${KEY_ALGORITHMS.join(', ')})`);
  if (!Number.isInteger(p.validityDays) || p.validityDays < 1) throw bad('validityDays must be a positive whole number');
  if (p.validitySeconds !== undefined && (!Number.isInteger(p.validitySeconds) || p.validitySeconds < 10 || p.validitySeconds > 86400 * 36500)) throw bad('validitySeconds must be a whole number of seconds, at least 10');
  if (p.maxValidityDays !== undefined && (!Number.isInteger(p.maxValidityDays) || p.maxValidityDays < p.validityDays)) throw bad('maxValidityDays must be >= validityDays');
  if (!Array.isArray(p.keyUsage)) throw bad('keyUsage must be a list');
  if (!Array.isArray(p.extendedKeyUsage)) throw bad('extendedKeyUsage must be a list (empty for none)');
  if (!p.subject || !Array.isArray(p.subject.allowed)) throw bad('subject.allowed must list the subject attributes');
  if (p.subject.required !== undefined && !Array.isArray(p.subject.required)) throw bad('subject.required must be a list');
  if (!p.san || !Array.isArray(p.san.allowed)) throw bad('san.allowed must list the SAN types (empty for none)');
  for (const u of p.keyUsage ?? []) if (!(KEY_USAGES as readonly string[]).includes(u)) throw bad(`unknown keyUsage "${u}"`);
  for (const e of p.extendedKeyUsage ?? []) if (!EKU_OIDS[e] && !/^\d+(\.\d+)+$/.test(e)) throw bad(`unknown extendedKeyUsage "${e}"`);
  if (!p.ca && p.keyUsage.includes('keyCertSign')) throw bad('keyCertSign is only for CA profiles (RFC 5280 §4.2.1.3)');
  if (p.ca && !p.keyUsage.includes('keyCertSign')) throw bad('a CA profile needs keyCertSign');
  for (const a of [...(p.subject?.allowed ?? []), ...(p.subject?.required ?? [])]) if (!DN_ATTRIBUTES[a]) throw bad(`unknown subject attribute "${a}"`);
  for (const t of p.san?.allowed ?? []) if (!SAN_TYPES.includes(t)) throw bad(`unknown SAN type "${t}"`);
  if (p.csrNames !== undefined && p.csrNames !== 'trim' && p.csrNames !== 'refuse') throw bad('csrNames is "trim" or "refuse"');
  if (p.serverKeyGen !== undefined && typeof p.serverKeyGen !== 'boolean') throw bad('serverKeyGen is true or false');
  if (p.keyEscrow !== undefined && typeof p.keyEscrow !== 'boolean') throw bad('keyEscrow is true or false');
  if (p.keyEscrow && !p.serverKeyGen) throw bad('keyEscrow needs serverKeyGen: only keys the server generates can be escrowed');
  if (p.requireManifest !== undefined && typeof p.requireManifest !== 'boolean') throw bad('requireManifest is true or false');
  for (const [t, pats] of Object.entries(p.san?.patterns ?? {})) {
    for (const pat of pats ?? []) {
      try {
        new RegExp(pat);
      } catch {
        throw bad(`SAN pattern for ${t} is not a valid regular expression: ${pat}`);
      }
    }
  }
}

export function ekuOid(nameOrOid: string): string {
  return EKU_OIDS[nameOrOid] ?? nameOrOid;
}
