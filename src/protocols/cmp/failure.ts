/**
 * ProblemError codes → CMP PKIFailureInfo bits (RFC 4210 §5.2.3, RFC 9483
 * §3.6.4). The adapter tags the errors it raises itself with the precise
 * bits in `extra.failInfo`; errors from the core map by their code.
 */
import { ProblemError, type ProblemCode } from '../../errors.js';
import { FAILURE_BITS, type FailureBit } from '../../asn1/cmp_status.js';

const BY_CODE: Record<ProblemCode, FailureBit[]> = {
  bad_request: ['badRequest'],
  bad_csr: ['badDataFormat'],
  bad_signature: ['badPOP'],
  bad_key: ['badCertTemplate'],
  // Names come from the registry: a refused name or an exhausted order means
  // this device is not entitled to what it asked for.
  policy_violation: ['notAuthorized'],
  not_found: ['badRequest'],
  already_exists: ['badRequest'],
  already_revoked: ['certRevoked'],
  unauthorized: ['notAuthorized'],
  forbidden: ['notAuthorized'],
  payload_too_large: ['badDataFormat'],
  unsupported_media_type: ['badDataFormat'],
  key_unavailable: ['systemUnavail'],
  key_not_exportable: ['systemFailure'],
  unavailable: ['systemUnavail'],
  corrupt_state: ['systemFailure'],
  config_error: ['systemFailure'],
  // The device's certificate changed meanwhile: try again.
  conflict: ['systemUnavail'],
  internal: ['systemFailure'],
  // Firmware codes do not arise in CMP; mapped for completeness.
  firmware_rejected: ['badRequest'],
  manifest_rejected: ['badRequest'],
  rate_limited: ['systemUnavail'],
};

/** A ProblemError carrying the failure bits CMP should report. */
export function cmpProblem(code: ProblemCode, failInfo: FailureBit[], detail: string): ProblemError {
  return new ProblemError(code, detail, { failInfo });
}

export function failureBitsOf(e: ProblemError): FailureBit[] {
  const tagged = e.extra?.failInfo;
  if (Array.isArray(tagged) && tagged.length && tagged.every((b) => (FAILURE_BITS as readonly string[]).includes(b))) return tagged as FailureBit[];
  return BY_CODE[e.code];
}
