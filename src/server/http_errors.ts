/**
 * ProblemError codes → HTTP status and RFC 9457 problem details. Internal
 * faults reach the client as a generic 500 and the log in full.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { ProblemError, type ProblemCode } from '../errors.js';

export const STATUS_OF: Record<ProblemCode, number> = {
  bad_request: 400,
  bad_csr: 400,
  bad_signature: 400,
  bad_key: 400,
  policy_violation: 403,
  not_found: 404,
  already_exists: 409,
  already_revoked: 409,
  conflict: 409,
  unauthorized: 401,
  forbidden: 403,
  payload_too_large: 413,
  unsupported_media_type: 415,
  key_unavailable: 503,
  key_not_exportable: 409,
  config_error: 500,
  unavailable: 503,
  corrupt_state: 500,
  firmware_rejected: 422,
  manifest_rejected: 422,
  rate_limited: 429,
  internal: 500,
};

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  /** RFC 9457 §3.2 extension: which check refused it (firmware_rejected, manifest_rejected, ...). */
  reason?: string;
  /** Extension: the refused items of a batch (a manifest's devices), at most 100. */
  entries?: unknown[];
}

export function problemBody(e: ProblemError): ProblemBody {
  const status = STATUS_OF[e.code];
  const body: ProblemBody = { type: `urn:fleetpki:problem:${e.code}`, title: e.code.replace(/_/g, ' '), status, detail: e.detail, code: e.code };
  if (typeof e.extra?.reason === 'string') body.reason = e.extra.reason;
  if (Array.isArray(e.extra?.entries)) body.entries = e.extra.entries.slice(0, 100);
  return body;
}

/** Maps Fastify's own errors (parsing, validation, limits) onto ProblemErrors. */
export function toProblem(err: FastifyError | Error): ProblemError | undefined {
  if (err instanceof ProblemError) return err;
  const fe = err as FastifyError;
  if (fe.validation) return new ProblemError('bad_request', `invalid request: ${fe.message}`);
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ProblemError('payload_too_large', 'the request body is larger than this endpoint accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ProblemError('unsupported_media_type', 'unsupported content type');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ProblemError('bad_request', 'the request body is not valid JSON');
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new ProblemError('bad_request', fe.message);
  return undefined;
}

export function sendProblem(reply: FastifyReply, e: ProblemError): FastifyReply {
  const body = problemBody(e);
  if (e.code === 'unauthorized') reply.header('www-authenticate', 'Bearer realm="fleetpki"');
  // RFC 6585 §4: a 429 may say how long to wait; RFC 9110 §10.2.3 delay-seconds.
  const retry = e.extra?.retryAfterSeconds;
  if (e.code === 'rate_limited' && typeof retry === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retry))));
  return reply.code(body.status).type('application/problem+json').send(body);
}

type FrameworkErrors = NonNullable<FastifyServerOptions['frameworkErrors']>;

/**
 * Fastify's `frameworkErrors` option for every listener: errors before any
 * route runs (a URL the router cannot decode) answer as problem details too,
 * not as Fastify's own JSON. `special` may answer first in a protocol's own
 * format (OCSP: protocols/ocsp/plugin.ts).
 */
export function frameworkErrorHandler(special?: (req: FastifyRequest, reply: FastifyReply) => FastifyReply | undefined): FrameworkErrors {
  return (err, req, res) => {
    const reply = res as unknown as FastifyReply;
    return special?.(req as FastifyRequest, reply) ?? sendProblem(reply, toProblem(err) ?? new ProblemError('bad_request', err.message));
  };
}

/** Installs the error and not-found handlers every fleetpki listener uses. */
export function installProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const p = toProblem(err);
    if (p) {
      req.log.info({ code: p.code, detail: p.detail }, 'request refused');
      return sendProblem(reply, p);
    }
    req.log.error({ err }, 'internal error');
    return sendProblem(reply, new ProblemError('internal', 'internal error; the server log has the details'));
  });
  app.setNotFoundHandler((req, reply) => sendProblem(reply, new ProblemError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));
}
