/**
 * What a device checks before it installs an update. An image is accepted
 * only if
 *   1. the detached CMS signature verifies with the signer certificate's key
 *      (RFC 5652 §5.6), over signed attributes that name the image digest;
 *   2. the signer's chain leads to a fleet root (RFC 5280 §6.1: signatures,
 *      CA flags, keyCertSign, pathLen, unknown critical extensions), and every
 *      certificate of it was valid at the signing time: an image signed while
 *      its signer was valid stays installable after the signer expires, as
 *      in code signing generally; revocation is the remedy for a stolen key;
 *   3. the signer is for code signing: EKU codeSigning (§4.2.1.12),
 *      digitalSignature, not a CA;
 *   4. no certificate of the chain is on its issuer's CRL (from the caller's
 *      cache; a revoked signer refuses every image it ever signed);
 *   5. the signed manifest names the device's model, a version newer than the
 *      installed one and not below the device's rollback floor, and has not
 *      expired;
 *   6. the image's digest and length are the signed ones.
 * Checks 1-5 need only the signature, so a bad update is refused before a
 * byte of a 1 GiB image is read. Pure: the caller passes the time, the roots
 * and the CRLs, and the image as a stream.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLDistributionPoints, id_ce_cRLDistributionPoints } from '@peculiar/asn1-x509';
import { ProblemError } from '../errors.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { parseSignature, signerCertificate, signerSignatureProblem, type ParsedSignature } from './cms.js';
import { digestStream } from './digest.js';
import { decodeManifest, type FirmwareManifest } from './manifest.js';
import { refuse } from './refusal.js';
import { compareVersions, isVersion, maxVersion } from './version.js';

export const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
const EKU_ANY = '2.5.29.37.0';
/** Extensions this check processes; any other one marked critical refuses the certificate (RFC 5280 §4.2). */
const KNOWN_EXTENSIONS = new Set(['2.5.29.14', '2.5.29.15', '2.5.29.17', '2.5.29.19', '2.5.29.31', '2.5.29.32', '2.5.29.35', '2.5.29.37', '1.3.6.1.5.5.7.1.1']);
const MAX_DEPTH = 6;

/** What the verifier needs of a CRL (the agent's ParsedCrl has it). */
export interface RevocationList {
  nextUpdate?: Date;
  /** Revoked serial numbers, lowercase hex as CertInfo.serial. */
  revoked: Set<string>;
  number?: string;
}

export interface FirmwareTrust {
  /**
   * The fleet's roots. Only these: another organisation's root that an agent
   * trusts for TLS peers must not be able to sign our firmware.
   */
  anchors: readonly CertInfo[];
  /** CA certificates the chain may go through besides those in the signature. */
  intermediates?: readonly CertInfo[];
  /** The CRL covering `cert`, signed by `issuer` (the caller checks the CRL's signature), if one is at hand. */
  crls: (cert: CertInfo, issuer: CertInfo) => RevocationList | undefined;
  /** Which certificates must have a CRL: every one below the root (default) or the signer only. */
  requireCrl?: 'all' | 'leaf';
  /** Accept a CRL this long past its nextUpdate (default 0). */
  crlGraceSeconds?: number;
  now: Date;
}

export interface FirmwareExpectations {
  /** The device's model; undefined: not checked (inspection only, never on a device). */
  model?: string;
  /** The running firmware's version: the image must be newer. */
  installedVersion?: string;
  /** The highest minVersion of images installed so far: the image may not be older. */
  rollbackFloor?: string;
  /**
   * Accept a signature that carries no manifest (made by `openssl cms -sign`
   * or another tool), for this model and version given out of band. Without
   * it such a signature is refused (`no_manifest`): a version that is not
   * signed cannot protect against rollback.
   */
  unbound?: { model: string; version: string };
}

export interface SignerCheck {
  sig: ParsedSignature;
  /** Signer first, root last. */
  path: CertInfo[];
  signingTime: Date;
  /** The signed manifest; undefined when accepted unbound. */
  manifest?: FirmwareManifest;
  model: string;
  version: string;
  /** Rollback floor to record once the image is installed. */
  rollbackFloor?: string;
}

export interface AcceptedFirmware {
  model: string;
  version: string;
  size: number;
  digestAlgorithm: FirmwareManifest['digestAlgorithm'];
  digest: string;
  /** The manifest was signed (false: accepted unbound, model and version given by the caller). */
  bound: boolean;
  manifest?: FirmwareManifest;
  signingTime: Date;
  signer: { subject: string; serial: string; issuer: string; notAfter: Date; fingerprintSha256: string };
  /** Record this as the device's rollback floor once the image is installed. */
  rollbackFloor?: string;
  path: CertInfo[];
}

function issuedBy(child: CertInfo, issuer: CertInfo): boolean {
  if (Buffer.compare(Buffer.from(child.issuerDer), Buffer.from(issuer.subjectDer)) !== 0) return false;
  try {
    return new X509Certificate(Buffer.from(child.der)).verify(createPublicKey({ key: Buffer.from(issuer.spki), format: 'der', type: 'spki' }));
  } catch {
    return false;
  }
}

const same = (a: CertInfo, b: CertInfo) => a.fingerprintSha256 === b.fingerprintSha256;
const selfIssued = (c: CertInfo) => Buffer.compare(Buffer.from(c.subjectDer), Buffer.from(c.issuerDer)) === 0;

function buildPath(leaf: CertInfo, pool: CertInfo[], anchors: readonly CertInfo[]): CertInfo[] {
  const path = [leaf];
  let cur = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    // A root carried in the signature is trusted only as one of ours.
    const anchor = anchors.find((a) => issuedBy(cur, a));
    if (anchor) return same(anchor, cur) ? path : [...path, anchor];
    const next = pool.find((c) => !path.some((p) => same(p, c)) && !selfIssued(c) && issuedBy(cur, c));
    if (!next) break;
    path.push(next);
    cur = next;
  }
  throw refuse('untrusted', `the signer ${leaf.subjectText} (serial ${leaf.serial}) does not chain to a fleet root (issuer ${cur.issuerText})`);
}

/** Checks 1-5: everything but the image bytes. */
export function checkSigner(sigInput: Uint8Array | ParsedSignature, trust: FirmwareTrust, exp: FirmwareExpectations = {}): SignerCheck {
  const sig = sigInput instanceof Uint8Array ? parseSignature(sigInput) : sigInput;
  const carried: CertInfo[] = [];
  for (const d of sig.certificates) {
    try {
      carried.push(parseCertificate(d));
    } catch {
      throw refuse('malformed_signature', 'a certificate in the signature cannot be read');
    }
  }
  const leaf = signerCertificate(sig, trust.intermediates ?? []);
  if (!leaf) throw refuse('malformed_signature', 'the signer certificate is not in the signature');
  const who = `${leaf.subjectText} (serial ${leaf.serial})`;

  // 1. The signature over the signed attributes (RFC 5652 §5.4).
  const bad = signerSignatureProblem(sig, leaf);
  if (bad) throw refuse(bad.reason, bad.detail);

  // 2. The chain, at the signing time.
  if (!sig.signingTime) throw refuse('no_signing_time', 'the signature names no signing time, so the signer\'s validity cannot be checked');
  const at = sig.signingTime.getTime();
  const path = buildPath(leaf, [...carried, ...(trust.intermediates ?? [])], trust.anchors);
  for (const [i, c] of path.entries()) {
    const name = i === 0 ? `the signer ${who}` : c.subjectText;
    if (c.notBefore.getTime() > at) throw refuse('signer_not_yet_valid', `${name} was not yet valid at the signing time ${sig.signingTime.toISOString()} (valid from ${c.notBefore.toISOString()})`);
    if (c.notAfter.getTime() < at) throw refuse('signer_expired', `${name} had expired at the signing time ${sig.signingTime.toISOString()} (valid until ${c.notAfter.toISOString()})`);
    const unknown = c.extensions.find((e) => e.critical && !KNOWN_EXTENSIONS.has(e.oid));
    if (unknown) throw refuse('unknown_critical_extension', `${name} has a critical extension ${unknown.oid} this check does not process`);
    if (i > 0) {
      if (!c.isCa || (c.keyUsage.length > 0 && !c.keyUsage.includes('keyCertSign'))) throw refuse('bad_chain', `${c.subjectText} signed ${path[i - 1].subjectText} but is not a CA`);
      const below = path.slice(1, i).filter((x) => !selfIssued(x)).length;
      if (c.pathLen !== undefined && below > c.pathLen) throw refuse('bad_chain', `${c.subjectText} allows ${c.pathLen} intermediate CAs below it, the chain has ${below}`);
      // A CA restricted to other purposes may not vouch for a code signer.
      if (c.extendedKeyUsage.length > 0 && !c.extendedKeyUsage.includes(EKU_CODE_SIGNING) && !c.extendedKeyUsage.includes(EKU_ANY)) throw refuse('wrong_purpose', `${c.subjectText} is restricted to other purposes than code signing`);
    }
  }

  // 3. Purpose: RFC 5280 §4.2.1.12 id-kp-codeSigning, explicitly.
  if (leaf.isCa) throw refuse('wrong_purpose', `the signer ${who} is a CA certificate; firmware is signed by a code-signing certificate, never a CA key`);
  if (!leaf.extendedKeyUsage.includes(EKU_CODE_SIGNING)) throw refuse('wrong_purpose', `the signer ${who} is not a code-signing certificate (extendedKeyUsage ${leaf.extendedKeyUsage.length ? leaf.extendedKeyUsage.join(', ') : 'absent'}, codeSigning needed)`);
  if (leaf.keyUsage.length > 0 && !leaf.keyUsage.includes('digitalSignature')) throw refuse('wrong_purpose', `the signer ${who} may not sign (keyUsage lacks digitalSignature)`);

  // 4. Revocation (RFC 5280 §6.3), with the CRLs the caller has.
  const now = trust.now.getTime();
  const grace = (trust.crlGraceSeconds ?? 0) * 1000;
  for (let i = 0; i < path.length - 1; i++) {
    const c = path[i];
    const name = i === 0 ? `the signer ${who}` : c.subjectText;
    const crl = trust.crls(c, path[i + 1]);
    const required = (trust.requireCrl ?? 'all') === 'all' || i === 0;
    const urls = crlUrlsOf(c);
    const where = urls.length ? ` (distribution point ${urls.join(', ')})` : '';
    if (!crl) {
      if (required) throw refuse('no_crl', `no CRL of ${path[i + 1].subjectText} is at hand to check ${name}${where}`, { crlUrls: urls, crlIssuer: path[i + 1] });
      continue;
    }
    if (crl.nextUpdate && crl.nextUpdate.getTime() + grace < now) {
      if (required) throw refuse('crl_expired', `the CRL of ${path[i + 1].subjectText} expired at ${crl.nextUpdate.toISOString()}${where}`, { crlUrls: urls, crlIssuer: path[i + 1] });
      continue;
    }
    if (crl.revoked.has(c.serial)) throw refuse('revoked', `${name} is revoked (CRL ${crl.number ?? '?'} of ${path[i + 1].subjectText})`);
  }

  // 5. The manifest.
  let manifest: FirmwareManifest | undefined;
  let model: string;
  let version: string;
  if (sig.manifest) {
    try {
      manifest = decodeManifest(sig.manifest);
    } catch (e) {
      throw refuse('bad_manifest', (e as ProblemError).detail ?? String(e));
    }
    if (manifest.digestAlgorithm !== sig.digestAlgorithm || manifest.digest !== Buffer.from(sig.messageDigest).toString('hex')) {
      throw refuse('bad_manifest', 'the manifest names another image digest than the signature');
    }
    model = manifest.model;
    version = manifest.version;
  } else {
    if (!exp.unbound) throw refuse('no_manifest', 'the signature carries no update manifest (model, version); it was not made by fleetpki firmware sign');
    if (!isVersion(exp.unbound.version)) throw new ProblemError('bad_request', `"${exp.unbound.version}" is not a semantic version`);
    model = exp.unbound.model;
    version = exp.unbound.version;
  }
  if (exp.model !== undefined && model !== exp.model) throw refuse('wrong_model', `the update is for model ${model}, this device is ${exp.model}`);
  if (exp.installedVersion !== undefined) {
    if (!isVersion(exp.installedVersion)) throw new ProblemError('bad_request', `the installed version "${exp.installedVersion}" is not a semantic version`);
    if (compareVersions(version, exp.installedVersion) <= 0) throw refuse('rollback', `version ${version} is not newer than the installed ${exp.installedVersion}`);
  }
  if (exp.rollbackFloor !== undefined && compareVersions(version, exp.rollbackFloor) < 0) {
    throw refuse('rollback', `version ${version} is below the rollback floor ${exp.rollbackFloor} an earlier update set`);
  }
  if (manifest?.expires && manifest.expires.getTime() < now) throw refuse('manifest_expired', `the update expired at ${manifest.expires.toISOString()}`);
  return { sig, path, signingTime: sig.signingTime, manifest, model, version, rollbackFloor: maxVersion(exp.rollbackFloor, manifest?.minVersion) };
}

/** Check 6: the image is the one signed. */
export function checkImage(s: SignerCheck, image: { digest: Uint8Array; size: number }): AcceptedFirmware {
  const digest = Buffer.from(image.digest).toString('hex');
  if (s.manifest && image.size !== s.manifest.size) throw refuse('size_mismatch', `the image has ${image.size} octets, the signed manifest says ${s.manifest.size}`);
  if (digest !== Buffer.from(s.sig.messageDigest).toString('hex')) throw refuse('digest_mismatch', `the image's ${s.sig.digestAlgorithm} digest is not the signed one: the image was changed or is another image`);
  const leaf = s.path[0];
  return {
    model: s.model,
    version: s.version,
    size: image.size,
    digestAlgorithm: s.sig.digestAlgorithm,
    digest,
    bound: !!s.manifest,
    manifest: s.manifest,
    signingTime: s.signingTime,
    signer: { subject: leaf.subjectText, serial: leaf.serial, issuer: leaf.issuerText, notAfter: leaf.notAfter, fingerprintSha256: leaf.fingerprintSha256 },
    rollbackFloor: s.rollbackFloor,
    path: s.path,
  };
}

/** Every check, the image read once as a stream. */
export async function verifyFirmware(signature: Uint8Array | ParsedSignature, image: AsyncIterable<Uint8Array>, trust: FirmwareTrust, exp: FirmwareExpectations = {}): Promise<AcceptedFirmware> {
  const s = checkSigner(signature, trust, exp);
  return checkImage(s, await digestStream(image, s.sig.digestAlgorithm));
}

/** RFC 5280 §4.2.1.13: the http(s) CRL distribution points, for a caller that fetches missing CRLs. */
function crlUrlsOf(c: CertInfo): string[] {
  const ext = c.extensions.find((e) => e.oid === id_ce_cRLDistributionPoints);
  if (!ext) return [];
  try {
    return AsnConvert.parse(ext.value, CRLDistributionPoints)
      .flatMap((dp) => dp.distributionPoint?.fullName ?? [])
      .map((gn) => gn.uniformResourceIdentifier)
      .filter((u): u is string => !!u && /^https?:\/\//i.test(u));
  } catch {
    return [];
  }
}
