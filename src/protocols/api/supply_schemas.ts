/** JSON schemas of the supply-chain routes (issue 8): suppliers, manifests, a device's identities. */
const nullable = (t: object) => ({ ...t, nullable: true });
const date = { type: 'string', format: 'date-time' } as const;
const hex64 = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const str = { type: 'string' } as const;

export const supplierNameParam = { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 128 } } } as const;
export const digestParam = { type: 'object', required: ['digest'], properties: { digest: { type: 'string', pattern: '^[0-9a-fA-F]{64}$', description: 'SHA-256 of the signed manifest document' } } } as const;

export interface SupplierBody {
  supplier: string;
  pem: string;
}
export const supplierBody = {
  type: 'object',
  additionalProperties: false,
  required: ['supplier', 'pem'],
  properties: {
    supplier: { type: 'string', maxLength: 128, description: 'the supplier name its manifests carry' },
    pem: { type: 'string', maxLength: 262_144, description: 'PEM CA certificate(s) that vouch for the supplier\'s manifest signers; all must be CAs' },
  },
} as const;
export const supplier = { type: 'object', properties: { supplier: str, fingerprint: hex64, subject: str, notAfter: date, addedAt: date } } as const;

const cms = { type: 'string', maxLength: 16 * 1024 * 1024, description: 'the signed manifest (CMS SignedData, DER), base64' } as const;

export interface VerifyBody {
  cms: string;
}
export const verifyBody = { type: 'object', additionalProperties: false, required: ['cms'], properties: { cms } } as const;

export interface ImportBody extends VerifyBody {
  profile: string;
  stage?: string;
  domain?: string;
  owner?: string;
  requireApproval?: boolean;
}
export const importBody = {
  type: 'object',
  additionalProperties: false,
  required: ['cms', 'profile'],
  properties: {
    cms,
    profile: { type: 'string', maxLength: 64, description: 'the profile the devices enroll under in this stage' },
    stage: { type: 'string', maxLength: 63, description: 'refuse the manifest unless it hands the devices over to this stage' },
    domain: { type: 'string', pattern: '^[a-z0-9][a-z0-9.-]{0,62}$' },
    owner: { type: 'string', maxLength: 128 },
    requireApproval: { type: 'boolean', description: 'their first certificate of the stage waits for an ra-officer' },
  },
} as const;

const manifestEntryIn = { type: 'object', properties: { id: str, certificateSha256: nullable(hex64), publicKeySha256: nullable(hex64), model: nullable(str), batch: nullable(str) } } as const;
export const verified = {
  type: 'object',
  properties: { digest: hex64, supplier: str, stage: str, createdAt: date, signedAt: nullable(date), signer: str, chain: { type: 'array', items: str }, devices: { type: 'array', items: manifestEntryIn } },
} as const;

export const manifest = {
  type: 'object',
  properties: {
    digest: hex64,
    cmsSha256: hex64,
    supplier: str,
    stage: str,
    profile: str,
    domain: nullable(str),
    owner: nullable(str),
    signer: str,
    signerFingerprint: hex64,
    signedAt: nullable(date),
    createdAt: date,
    importedAt: date,
    importedBy: str,
    devices: { type: 'integer' },
  },
} as const;
export const importResult = { type: 'object', properties: { manifest, registered: { type: 'array', items: str }, moved: { type: 'array', items: str } } } as const;

export const manifestEntry = {
  type: 'object',
  properties: { deviceId: str, stage: str, manifest: hex64, certificateSha256: nullable(hex64), publicKeySha256: nullable(hex64), model: nullable(str), batch: nullable(str), usedAt: nullable(date), usedSerial: nullable(str) },
} as const;
export const manifestWithEntries = { type: 'object', properties: { manifest, entries: { type: 'array', items: manifestEntry }, cms: { type: 'string', description: 'the signed manifest as received (the evidence), base64' } } } as const;

export interface ManifestQuery {
  supplier?: string;
  limit?: number;
}
export const manifestQuery = { type: 'object', additionalProperties: false, properties: { supplier: { type: 'string', maxLength: 128 }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } as const;

const identity = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['manufacturer', 'certificate'] },
    stage: nullable(str),
    serial: str,
    fingerprintSha256: hex64,
    subject: str,
    issuer: str,
    notBefore: date,
    notAfter: date,
    recordedAt: date,
    current: { type: 'boolean' },
    pem: { type: 'string', description: 'a manufacturer certificate, kept whole' },
  },
} as const;
export const identities = {
  type: 'object',
  properties: { device: str, stage: nullable(str), currentSerial: nullable(str), identities: { type: 'array', items: identity }, entries: { type: 'array', items: manifestEntry } },
} as const;
