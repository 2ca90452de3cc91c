/**
 * Why a device refuses an update: one ProblemError code, `firmware_rejected`,
 * and a stable reason in `extra.reason` for logs, metrics and tests (the same
 * shape as the agent's peer refusals).
 */
import { ProblemError } from '../errors.js';

export type FirmwareRefusal =
  /** The signature file is not a CMS SignedData fleetpki can read (garbage, truncated, attached, several signers). */
  | 'malformed_signature'
  /** A digest or signature algorithm that is not accepted (SHA-1, unknown). */
  | 'unsupported_algorithm'
  /** The signature does not verify with the signer certificate's key. */
  | 'bad_signature'
  /** The image's digest is not the one signed: the image was changed. */
  | 'digest_mismatch'
  /** The image's length is not the manifest's. */
  | 'size_mismatch'
  /** The signer's chain does not lead to a fleet root. */
  | 'untrusted'
  /** The signer certificate is not for code signing (no EKU codeSigning, a CA, no digitalSignature). */
  | 'wrong_purpose'
  /** An issuer in the chain is not a CA, or the chain is longer than a pathLenConstraint allows. */
  | 'bad_chain'
  | 'unknown_critical_extension'
  /** The signature names no signing time. */
  | 'no_signing_time'
  /** A certificate of the chain was not yet valid at the signing time. */
  | 'signer_not_yet_valid'
  /** A certificate of the chain had expired at the signing time. */
  | 'signer_expired'
  | 'revoked'
  /** No (fresh) CRL is at hand to check a certificate of the chain. */
  | 'no_crl'
  | 'crl_expired'
  /** The signature carries no update manifest (e.g. made by `openssl cms -sign`) and the caller did not accept that. */
  | 'no_manifest'
  | 'bad_manifest'
  | 'wrong_model'
  /** The image is not newer than the installed firmware, or below the device's rollback floor. */
  | 'rollback'
  | 'manifest_expired';

export function refuse(reason: FirmwareRefusal, detail: string, extra: Record<string, unknown> = {}): ProblemError {
  return new ProblemError('firmware_rejected', `firmware refused (${reason}): ${detail}`, { reason, ...extra });
}

export function firmwareRefusalOf(e: unknown): FirmwareRefusal | undefined {
  return e instanceof ProblemError && e.code === 'firmware_rejected' ? (e.extra?.reason as FirmwareRefusal | undefined) : undefined;
}
