/**
 * The supply-chain manifest (issue 8): what a supplier declares when it hands
 * devices over to the next stage. A JSON document, signed as the content of a
 * CMS SignedData (supply_cms.ts):
 *
 *   {
 *     "format": "fleetpki-supply-manifest",
 *     "version": 1,
 *     "supplier": "ChipCo",              the name a trusted supplier is registered under
 *     "stage": "assembly",               the stage the devices are handed over to
 *     "createdAt": "2026-12-02T08:00:00Z",
 *     "devices": [
 *       { "id": "chip-0001", "certificateSha256": "<64 hex>", "model": "sensor-x", "batch": "B7" },
 *       { "id": "chip-0002", "publicKeySha256": "<64 hex>" }
 *     ]
 *   }
 *
 * certificateSha256 is the SHA-256 of the DER certificate the device will
 * present (its manufacturer certificate, or the certificate of the previous
 * stage); publicKeySha256 the SHA-256 of a DER SubjectPublicKeyInfo (that
 * certificate's key, or the key the device will enroll). Exactly one of them
 * per device. The schema is closed: an unknown field is refused, not
 * ignored, so a supplier's typo cannot silently drop a constraint.
 */
import { ProblemError } from '../errors.js';

export const MANIFEST_FORMAT = 'fleetpki-supply-manifest';
export const MANIFEST_VERSION = 1;
/** One import is one transaction: this keeps it to seconds on either backend. */
export const MAX_MANIFEST_DEVICES = 50_000;

export interface SupplyManifestEntry {
  id: string;
  certificateSha256?: string;
  publicKeySha256?: string;
  model?: string;
  batch?: string;
}

export interface SupplyManifest {
  supplier: string;
  stage: string;
  createdAt: Date;
  devices: SupplyManifestEntry[];
}

/** Why a manifest is refused; `extra.reason` of a manifest_rejected error. */
export type ManifestRefusal =
  /** Not a CMS SignedData fleetpki can read, or one with parts a manifest never has. */
  | 'malformed'
  | 'unsupported_algorithm'
  /** The encapsulated content is not id-data. */
  | 'wrong_content_type'
  /** The content is not a valid manifest document (JSON, schema). */
  | 'bad_content'
  /** The signature does not verify with the signer's key. */
  | 'bad_signature'
  /** The content is not the one signed: changed after signing. */
  | 'digest_mismatch'
  /** The signer does not chain to a trusted supplier CA (or a certificate of the chain is not valid now). */
  | 'untrusted_supplier'
  /** The signer chains to another supplier than the manifest names. */
  | 'wrong_supplier'
  /** The signer certificate may not sign documents (a CA, no digitalSignature). */
  | 'wrong_purpose'
  /** The manifest's stage is not the one the import names. */
  | 'wrong_stage'
  /** Devices of the manifest cannot enter the stage (profile, state, already there); extra.entries lists them. */
  | 'bad_entries';

export function refuseManifest(reason: ManifestRefusal, detail: string): ProblemError {
  return new ProblemError('manifest_rejected', `manifest refused (${reason}): ${detail}`, { reason });
}

export function manifestRefusalOf(e: unknown): ManifestRefusal | undefined {
  return e instanceof ProblemError && e.code === 'manifest_rejected' ? (e.extra?.reason as ManifestRefusal | undefined) : undefined;
}

// The same rules as the registry's (registry.ts): ids become PrintableString serialNumbers.
const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const LABEL_RE = /^[A-Za-z0-9 ._@-]{1,128}$/;
export const STAGE_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;
// RFC 3339 §5.6 date-time, in UTC.
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/;

const TOP_KEYS = new Set(['format', 'version', 'supplier', 'stage', 'createdAt', 'devices']);
const ENTRY_KEYS = new Set(['id', 'certificateSha256', 'publicKeySha256', 'model', 'batch']);

const bad = (why: string) => refuseManifest('bad_content', why);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function label(v: unknown, what: string): string {
  if (typeof v !== 'string' || !LABEL_RE.test(v)) throw bad(`${what} must be 1-128 letters, digits, spaces and ._@-`);
  return v;
}

/** Checks a manifest object (from JSON or from `manifest create`) and returns it normalised. */
export function validateManifest(doc: unknown): SupplyManifest {
  if (!isObject(doc)) throw bad('the document is not a JSON object');
  for (const k of Object.keys(doc)) if (!TOP_KEYS.has(k)) throw bad(`unknown field "${k}"`);
  if (doc.format !== MANIFEST_FORMAT) throw bad(`"format" must be "${MANIFEST_FORMAT}"`);
  if (doc.version !== MANIFEST_VERSION) throw bad(`"version" must be ${MANIFEST_VERSION}`);
  const supplier = label(doc.supplier, '"supplier"');
  if (typeof doc.stage !== 'string' || !STAGE_RE.test(doc.stage)) throw bad('"stage" must be lowercase letters, digits and dashes (1-63)');
  if (typeof doc.createdAt !== 'string' || !TIME_RE.test(doc.createdAt) || isNaN(Date.parse(doc.createdAt))) throw bad('"createdAt" must be an RFC 3339 UTC time such as 2026-12-02T08:00:00Z');
  if (!Array.isArray(doc.devices) || doc.devices.length === 0) throw bad('"devices" must be a non-empty list');
  if (doc.devices.length > MAX_MANIFEST_DEVICES) throw bad(`"devices" lists ${doc.devices.length} devices; at most ${MAX_MANIFEST_DEVICES} per manifest`);
  const seen = new Set<string>();
  const devices = doc.devices.map((e, i): SupplyManifestEntry => {
    const at = `devices[${i}]`;
    if (!isObject(e)) throw bad(`${at} is not an object`);
    for (const k of Object.keys(e)) if (!ENTRY_KEYS.has(k)) throw bad(`${at}: unknown field "${k}"`);
    if (typeof e.id !== 'string' || !DEVICE_ID_RE.test(e.id)) throw bad(`${at}: "id" must be 1-64 letters, digits, dots, colons, dashes or underscores, starting with a letter or digit`);
    if (seen.has(e.id)) throw bad(`${at}: device ${e.id} is listed twice`);
    seen.add(e.id);
    const hashes = (['certificateSha256', 'publicKeySha256'] as const).filter((k) => e[k] !== undefined);
    if (hashes.length !== 1) throw bad(`${at} (${e.id}): give exactly one of "certificateSha256" and "publicKeySha256"`);
    const h = e[hashes[0]];
    if (typeof h !== 'string' || !HEX64_RE.test(h)) throw bad(`${at} (${e.id}): "${hashes[0]}" must be 64 lowercase hex digits (SHA-256)`);
    const out: SupplyManifestEntry = { id: e.id, [hashes[0]]: h };
    if (e.model !== undefined) out.model = label(e.model, `${at} (${e.id}): "model"`);
    if (e.batch !== undefined) out.batch = label(e.batch, `${at} (${e.id}): "batch"`);
    return out;
  });
  return { supplier, stage: doc.stage, createdAt: new Date(doc.createdAt), devices };
}

/** Reads the signed content: UTF-8 JSON (RFC 8259 §8.1), then validateManifest. */
export function parseManifestJson(content: Uint8Array): SupplyManifest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    throw bad('the content is not UTF-8 text');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`the content is not JSON: ${(e as Error).message}`);
  }
  return validateManifest(doc);
}

/** The document `manifest create` writes: fixed field order, one device per line. */
export function encodeManifest(m: SupplyManifest): Uint8Array {
  const checked = validateManifest(toJson(m));
  const head = JSON.stringify({ format: MANIFEST_FORMAT, version: MANIFEST_VERSION, supplier: checked.supplier, stage: checked.stage, createdAt: checked.createdAt.toISOString() }, null, 2);
  const rows = checked.devices.map((d) => `    ${JSON.stringify(d)}`).join(',\n');
  return new TextEncoder().encode(`${head.slice(0, -2)},\n  "devices": [\n${rows}\n  ]\n}\n`);
}

function toJson(m: SupplyManifest): Record<string, unknown> {
  return { format: MANIFEST_FORMAT, version: MANIFEST_VERSION, supplier: m.supplier, stage: m.stage, createdAt: m.createdAt.toISOString(), devices: m.devices };
}
