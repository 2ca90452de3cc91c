/**
 * The signed update manifest: what a device needs to decide whether an image
 * is meant for it and newer than what it runs. It travels inside the CMS
 * signature as a signed attribute (RFC 5652 §5.3 signedAttrs), so it is
 * covered by the same signature as the image digest and the detached
 * signature stays an ordinary one that `openssl cms -verify` accepts.
 *
 * RFC 4108 (CMS firmware wrapper) has attributes of this kind, but names
 * hardware by OID and versions by integers; fleetpki fleets name models by
 * string and versions by SemVer, so the manifest is one attribute of its own.
 */
import 'reflect-metadata';
import { AsnConvert, AsnIntegerBigIntConverter, AsnProp, AsnPropTypes, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { ProblemError } from '../errors.js';
import { checkVersion, compareVersions } from './version.js';

/**
 * fleetpki's OID arc: a UUID-derived OID (ITU-T X.667, joint-iso-itu-t(2)
 * uuid(25)), which needs no registration. Children:
 *   .1 firmware
 *   .1.1 id-aa-fleetpkiFirmwareManifest (the signed attribute below)
 */
export const FLEETPKI_ARC = '2.25.171050690179108723634140212179729089022';
export const id_aa_firmwareManifest = `${FLEETPKI_ARC}.1.1`;

export const DIGEST_OIDS = { sha256: '2.16.840.1.101.3.4.2.1', sha384: '2.16.840.1.101.3.4.2.2', sha512: '2.16.840.1.101.3.4.2.3' } as const;
export type DigestName = keyof typeof DIGEST_OIDS;
/** What `firmware sign` writes; sha512 is accepted on verify (openssl -md sha512). */
export const SIGN_DIGESTS = ['sha256', 'sha384'] as const;
export type SignDigest = (typeof SIGN_DIGESTS)[number];
export const DIGEST_LENGTH: Record<DigestName, number> = { sha256: 32, sha384: 48, sha512: 64 };

export function digestNameOf(oid: string): DigestName | undefined {
  return (Object.keys(DIGEST_OIDS) as DigestName[]).find((k) => DIGEST_OIDS[k] === oid);
}

/**
 * ```asn
 * FirmwareManifest ::= SEQUENCE {
 *   version          INTEGER { v1(1) },
 *   model            UTF8String (SIZE (1..128)),
 *   firmwareVersion  UTF8String,                -- SemVer 2.0.0
 *   size             INTEGER (0..MAX),          -- octets in the image
 *   digestAlgorithm  AlgorithmIdentifier,       -- = SignerInfo.digestAlgorithm
 *   digest           OCTET STRING,              -- = the messageDigest attribute
 *   minVersion   [0] IMPLICIT UTF8String OPTIONAL,     -- rollback floor once installed
 *   notAfter     [1] IMPLICIT GeneralizedTime OPTIONAL -- not to be installed after
 * }
 * ```
 */
export class FirmwareManifestAsn {
  @AsnProp({ type: AsnPropTypes.Integer })
  version = 1;

  @AsnProp({ type: AsnPropTypes.Utf8String })
  model = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  firmwareVersion = '';

  @AsnProp({ type: AsnPropTypes.Integer, converter: AsnIntegerBigIntConverter })
  size = 0n;

  @AsnProp({ type: AlgorithmIdentifier })
  digestAlgorithm = new AlgorithmIdentifier();

  @AsnProp({ type: OctetString })
  digest = new OctetString();

  @AsnProp({ type: AsnPropTypes.Utf8String, context: 0, implicit: true, optional: true })
  minVersion?: string;

  @AsnProp({ type: AsnPropTypes.GeneralizedTime, context: 1, implicit: true, optional: true })
  notAfter?: Date;

  constructor(params: Partial<FirmwareManifestAsn> = {}) {
    Object.assign(this, params);
  }
}

/** The manifest as the rest of fleetpki sees it. */
export interface FirmwareManifest {
  model: string;
  version: string;
  size: number;
  digestAlgorithm: DigestName;
  /** Lowercase hex. */
  digest: string;
  /** Once this image is installed, the device refuses anything older than this (anti-rollback floor). */
  minVersion?: string;
  /** The image is not installed after this time. */
  expires?: Date;
}

const MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}$/;

export function checkModel(model: string, what = 'model'): string {
  if (typeof model !== 'string' || !MODEL_RE.test(model)) throw new ProblemError('bad_request', `${what} "${model}" must be 1-128 letters, digits and . _ : / + -, starting with a letter or digit`);
  return model;
}

/** Checks a manifest before it is signed: a signer never signs one a device would have to refuse as malformed. */
export function validateManifest(m: FirmwareManifest): FirmwareManifest {
  checkModel(m.model);
  checkVersion(m.version, 'version');
  if (!Number.isSafeInteger(m.size) || m.size < 0) throw new ProblemError('bad_request', `size ${m.size} is not a whole number of octets`);
  if (!digestNameOf(DIGEST_OIDS[m.digestAlgorithm] ?? '')) throw new ProblemError('bad_request', `unknown digest algorithm ${m.digestAlgorithm}`);
  if (!new RegExp(`^[0-9a-f]{${DIGEST_LENGTH[m.digestAlgorithm] * 2}}$`).test(m.digest)) throw new ProblemError('bad_request', `the digest must be ${DIGEST_LENGTH[m.digestAlgorithm] * 2} lowercase hex digits for ${m.digestAlgorithm}`);
  if (m.minVersion !== undefined) {
    checkVersion(m.minVersion, 'minimum version');
    // A floor above the image itself would make the device refuse the image it just installed.
    if (compareVersions(m.minVersion, m.version) > 0) throw new ProblemError('bad_request', `the minimum version ${m.minVersion} is above the version ${m.version} itself`);
  }
  if (m.expires !== undefined && isNaN(m.expires.getTime())) throw new ProblemError('bad_request', 'the expiry is not a date');
  return m;
}

export function encodeManifest(m: FirmwareManifest): Uint8Array {
  validateManifest(m);
  const asn = new FirmwareManifestAsn({
    model: m.model,
    firmwareVersion: m.version,
    size: BigInt(m.size),
    // RFC 5754 §2: SHA-2 AlgorithmIdentifiers omit the parameters.
    digestAlgorithm: new AlgorithmIdentifier({ algorithm: DIGEST_OIDS[m.digestAlgorithm] }),
    digest: new OctetString(Buffer.from(m.digest, 'hex')),
    minVersion: m.minVersion,
    // Whole seconds: RFC 5280 §4.1.2.5.2 style GeneralizedTime, no fraction.
    notAfter: m.expires ? new Date(Math.floor(m.expires.getTime() / 1000) * 1000) : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(asn));
}

/** Reads a manifest attribute value; throws bad_request (the verifier turns it into a refusal) when it is not one. */
export function decodeManifest(der: Uint8Array): FirmwareManifest {
  let asn: FirmwareManifestAsn;
  try {
    asn = AsnConvert.parse(der, FirmwareManifestAsn);
  } catch (e) {
    throw new ProblemError('bad_request', `the firmware manifest is not valid DER: ${(e as Error).message}`);
  }
  if (asn.version !== 1) throw new ProblemError('bad_request', `firmware manifest version ${asn.version} is not known (1 is)`);
  const digestAlgorithm = digestNameOf(asn.digestAlgorithm.algorithm);
  if (!digestAlgorithm) throw new ProblemError('bad_request', `the manifest names digest algorithm ${asn.digestAlgorithm.algorithm}, which is not accepted`);
  if (asn.size > BigInt(Number.MAX_SAFE_INTEGER) || asn.size < 0n) throw new ProblemError('bad_request', `the manifest size ${asn.size} is out of range`);
  return validateManifest({
    model: asn.model,
    version: asn.firmwareVersion,
    size: Number(asn.size),
    digestAlgorithm,
    digest: Buffer.from(asn.digest.buffer).toString('hex'),
    minVersion: asn.minVersion,
    expires: asn.notAfter,
  });
}

export interface ManifestJson {
  model: string;
  version: string;
  size: number;
  digestAlgorithm: DigestName;
  digest: string;
  minVersion: string | null;
  expires: string | null;
}

/** The manifest as JSON (CLI --json, the API). */
export function manifestJson(m: FirmwareManifest): ManifestJson {
  return { model: m.model, version: m.version, size: m.size, digestAlgorithm: m.digestAlgorithm, digest: m.digest, minVersion: m.minVersion ?? null, expires: m.expires?.toISOString() ?? null };
}
