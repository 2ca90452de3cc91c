/**
 * Signing an update: the manifest is built from the request and the image
 * digest, checked, and signed together with the digest in one detached CMS
 * signature. Pure: the key is a Signer (a KeyStore key, software or PKCS#11,
 * or a key file), the image arrives as its digest.
 */
import { ProblemError } from '../errors.js';
import type { Signer } from '../keys/key_store.js';
import type { CertInfo } from '../x509/cert_info.js';
import { signDetached } from './cms.js';
import type { ImageDigest } from './digest.js';
import { encodeManifest, id_aa_firmwareManifest, SIGN_DIGESTS, validateManifest, type FirmwareManifest, type SignDigest } from './manifest.js';
import { EKU_CODE_SIGNING } from './verify.js';

export interface SigningIdentity {
  signer: Signer;
  certificate: CertInfo;
  /** The issuing CAs, DER, carried in the signature so a device can build the chain. */
  chain: readonly Uint8Array[];
}

export interface FirmwareSignRequest {
  model: string;
  version: string;
  /** Anti-rollback floor: once installed, the device refuses images older than this. */
  minVersion?: string;
  expires?: Date;
  /** Default: SHA-384 for P-384 keys, SHA-256 otherwise. */
  digestAlgorithm?: SignDigest;
}

export function digestAlgorithmFor(id: Pick<SigningIdentity, 'signer'>, req: Pick<FirmwareSignRequest, 'digestAlgorithm'>): SignDigest {
  const d = req.digestAlgorithm;
  if (d !== undefined && !(SIGN_DIGESTS as readonly string[]).includes(d)) throw new ProblemError('bad_request', `the digest is ${SIGN_DIGESTS.join(' or ')}, not ${String(d)}`);
  // RFC 5753 §7: SHA-384 goes with P-384.
  return d ?? (id.signer.key.type === 'ec' && id.signer.key.curve === 'P-384' ? 'sha384' : 'sha256');
}

/**
 * Refuses to sign what a device would refuse: a certificate that is not for
 * code signing, or not valid now. The root key never signs firmware, and
 * neither does any CA key.
 */
export function checkSigningIdentity(id: SigningIdentity, now: Date): void {
  const c = id.certificate;
  if (Buffer.compare(Buffer.from(id.signer.spki), Buffer.from(c.spki)) !== 0) throw new ProblemError('bad_key', 'the signing key does not belong to the signer certificate');
  if (c.isCa) throw new ProblemError('policy_violation', `${c.subjectText} is a CA certificate: firmware is signed with a code-signing certificate, never a CA key`);
  if (!c.extendedKeyUsage.includes(EKU_CODE_SIGNING)) throw new ProblemError('policy_violation', `${c.subjectText} is not a code-signing certificate (no extendedKeyUsage codeSigning)`);
  if (c.notBefore > now || c.notAfter < now) throw new ProblemError('policy_violation', `the signer certificate ${c.subjectText} is not valid now (${c.notBefore.toISOString()} to ${c.notAfter.toISOString()})`);
}

export async function signFirmware(id: SigningIdentity, req: FirmwareSignRequest, image: ImageDigest, now: Date): Promise<{ der: Uint8Array; manifest: FirmwareManifest }> {
  checkSigningIdentity(id, now);
  const digestAlgorithm = digestAlgorithmFor(id, req);
  if (req.expires && req.expires <= now) throw new ProblemError('bad_request', `the expiry ${req.expires.toISOString()} is not in the future`);
  const manifest = validateManifest({
    model: req.model,
    version: req.version,
    size: image.size,
    digestAlgorithm,
    digest: Buffer.from(image.digest).toString('hex'),
    minVersion: req.minVersion,
    expires: req.expires,
  });
  const der = await signDetached({
    signer: id.signer,
    certificate: id.certificate,
    chain: id.chain,
    digestAlgorithm,
    digest: image.digest,
    signingTime: now,
    attributes: [{ type: id_aa_firmwareManifest, values: [encodeManifest(manifest)] }],
  });
  return { der, manifest };
}
