/**
 * The one error type that crosses every internal boundary. The core throws it
 * with a stable `code`; each adapter maps the code to its wire form (HTTP
 * status + problem JSON, CLI exit line, later CMP PKIFailureInfo / OCSP status).
 * Anything that is not a ProblemError is an internal fault: clients see a
 * generic message, the log gets the details.
 */
export type ProblemCode =
  | 'bad_request' // malformed input the client can fix
  | 'bad_csr' // CSR is not valid DER / PKCS#10
  | 'bad_signature' // a signature (CSR proof of possession, ...) does not verify
  | 'bad_key' // key type or size not allowed
  | 'policy_violation' // request breaks the profile or RFC 5280 rules
  | 'not_found'
  | 'already_exists'
  | 'already_revoked'
  | 'unauthorized' // no or invalid credentials
  | 'forbidden' // valid credentials, role not allowed
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'key_unavailable' // CA key not online (offline root) or key store locked
  | 'key_not_exportable' // the key lives in a token (PKCS#11) and cannot leave it
  | 'config_error'
  | 'unavailable' // a remote service (the CA, a CRL URL) cannot be reached now; retry later
  | 'corrupt_state' // a local state file is damaged; never silently recreated
  | 'conflict'
  | 'firmware_rejected' // a firmware image or its signature fails a device's check; extra.reason says which
  | 'manifest_rejected' // a supply-chain manifest fails import (signature, supplier, content); extra.reason says which
  | 'rate_limited' // too many requests for this credential; extra.retryAfterSeconds says when to come back
  | 'internal';

export class ProblemError extends Error {
  readonly code: ProblemCode;
  readonly detail: string;
  readonly extra?: Record<string, unknown>;

  constructor(code: ProblemCode, detail: string, extra?: Record<string, unknown>) {
    super(`${code}: ${detail}`);
    this.name = 'ProblemError';
    this.code = code;
    this.detail = detail;
    this.extra = extra;
  }
}

export function isProblem(e: unknown, code?: ProblemCode): e is ProblemError {
  return e instanceof ProblemError && (code === undefined || e.code === code);
}

/** Runs `fn` and turns any non-ProblemError thrown by a parser into `code`. */
export function rethrowAs<T>(code: ProblemCode, detail: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ProblemError) throw e;
    throw new ProblemError(code, `${detail}: ${(e as Error)?.message ?? String(e)}`);
  }
}
