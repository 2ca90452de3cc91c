/**
 * The OCSP responder at the AIA OCSP URL on the plain-HTTP listener
 * (RFC 6960 Appendix A, RFC 5019 §5-6). Plain HTTP on purpose: checking a
 * certificate must not need TLS that itself needs a check.
 *
 *   POST /ocsp               body: DER OCSPRequest, Content-Type application/ocsp-request
 *   GET  /ocsp/<url-encoded base64 of the DER OCSPRequest>
 *
 * An OCSP client can only read an OCSPResponse, so every answer is HTTP 200
 * with one: a body that is not a request (wrong or missing Content-Type,
 * too large, not base64, not DER) gets malformedRequest, a failure inside
 * the server internalError. Cacheable answers (no nonce) carry the RFC 5019
 * §6.2 headers and an ETag, and a matching If-None-Match gets 304; nonce
 * answers carry none and `Cache-Control: no-store`.
 */
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../clock.js';
import { encodeErrorResponse, MAX_REQUEST_OCTETS } from '../../authority/ocsp_codec.js';
import { OcspResponder, type OcspOptions, type OcspResult } from '../../authority/ocsp.js';
import type { FleetContext } from '../../server/context.js';
import { cachingHeaders, decodeGetRequest, matchesEtag, OCSP_REQUEST_TYPE, OCSP_RESPONSE_TYPE } from './wire.js';

export interface OcspPluginOptions {
  ctx: Pick<FleetContext, 'store' | 'keys' | 'authority' | 'clock' | 'config'>;
  /** Overrides the `ocsp` section of the config (tests: signWithCaKey). */
  options?: OcspOptions;
  /** An existing responder (shares its cache); built from ctx otherwise. */
  responder?: OcspResponder;
  /** The listener's fast path (ocspFastPath) for this responder: the plugin shares its decoded GET paths. */
  fastPath?: OcspFastPath;
}

/**
 * OCSP requests answered by the listener before Fastify sees them
 * (server.ts, serverFactory): for the common requests routing, hooks and
 * the reply object cost more than the answer itself.
 *   - GET /ocsp/<base64> without query, body or If-None-Match, whose answer
 *     is cached and still true: most requests repeat (RFC 5019 §2.1, CDNs
 *     and clients ask for the same certificate until nextUpdate).
 *   - POST /ocsp with Content-Type application/ocsp-request and a
 *     Content-Length within the request limit: the body is read here and
 *     answered by the responder (nonce answers are signed per request).
 * The bytes and headers are those the plugin's routes send
 * (test/unit/ocsp_plugin.test.ts compares them); everything else (chunked
 * bodies, other types, too large, conditional requests) goes to Fastify.
 */
export interface OcspFastPath {
  /** True when it took the request; false: hand it to Fastify. */
  (req: IncomingMessage, res: ServerResponse): boolean;
  /** GET path → DER request (undefined: not base64), shared with the plugin's route. */
  readonly decoded: Map<string, Uint8Array | undefined>;
  /** Requests it answered (metrics, tests). */
  readonly answered: number;
  /** Where refused requests and internal errors are logged (the app's logger, set by buildHttpApp). */
  logger?: ResultLogger;
}

/** The part of a Fastify/pino logger that OCSP outcomes are written to. */
export type ResultLogger = Pick<FastifyBaseLogger, 'info' | 'error'>;

export function ocspFastPath(responder: OcspResponder, clock: Clock): OcspFastPath {
  const decoded = new BoundedMap<string, Uint8Array | undefined>(GET_PATHS_KEPT);
  const headersFor = answerHeaders(clock);
  const counts = { answered: 0 };

  const sendResult = (res: ServerResponse, r: OcspResult): void => {
    res.writeHead(200, headersFor(r));
    res.end(r.der);
    counts.answered++;
  };

  const get = (url: string, req: IncomingMessage, res: ServerResponse): boolean => {
    if (url.includes('?')) return false;
    const h = req.headers;
    if (h['if-none-match'] !== undefined || h['content-length'] !== undefined || h['transfer-encoding'] !== undefined) return false;
    const der = decoded.get(url.slice('/ocsp/'.length));
    const hit = der && responder.cachedResult(der);
    if (!hit || !hit.cacheable) return false;
    sendResult(res, hit);
    return true;
  };

  const post = (req: IncomingMessage, res: ServerResponse): boolean => {
    const h = req.headers;
    const length = Number(h['content-length']);
    if (h['transfer-encoding'] !== undefined || !(length > 0 && length <= MAX_REQUEST_OCTETS) || mediaType(h['content-type']) !== OCSP_REQUEST_TYPE) return false;
    // Node's parser delivers exactly Content-Length octets, then 'end'.
    const body = Buffer.allocUnsafe(length);
    let at = 0;
    req.on('data', (chunk: Buffer) => {
      at += chunk.copy(body, at);
    });
    req.on('end', () => {
      const der = new Uint8Array(body.buffer, body.byteOffset, at);
      const hit = responder.cachedResult(der);
      if (hit) return sendResult(res, hit);
      responder.respond(der).then(
        (r) => {
          if (fast.logger) logResult(fast.logger, r);
          sendResult(res, r);
        },
        (err: unknown) => {
          // respond() turns failures into answers; this is a bug, still answered in OCSP.
          fast.logger?.error({ err }, 'OCSP internal error');
          sendResult(res, { status: 'internalError', der: encodeErrorResponse('internalError'), cacheable: false });
        },
      );
    });
    return true;
  };

  const fast = ((req: IncomingMessage, res: ServerResponse): boolean => {
    const url = req.url;
    if (!url) return false;
    if (req.method === 'GET') return url.startsWith('/ocsp/') && get(url, req, res);
    if (req.method === 'POST') return url === '/ocsp' && post(req, res);
    return false;
  }) as OcspFastPath;
  return Object.defineProperties(fast, { decoded: { value: decoded }, answered: { get: () => counts.answered } });
}

/**
 * The headers of an answer, the same from the route and the fast path:
 * Content-Type and Content-Length, and for a cacheable answer the RFC 5019
 * §6.2 caching headers with an ETag, else `Cache-Control: no-store`.
 * max-age counts down by the second, so a cacheable answer's headers are
 * made once a second, as of the second's last millisecond: max-age never
 * reaches past nextUpdate.
 */
type AnswerHeaders = Readonly<Record<string, string | number>> & { readonly etag?: string };

function answerHeaders(clock: Clock): (r: OcspResult) => AnswerHeaders {
  const made = new WeakMap<Uint8Array, { second: number; headers: AnswerHeaders }>();
  return (r) => {
    if (!r.cacheable || !r.thisUpdate || !r.nextUpdate) return { 'content-type': OCSP_RESPONSE_TYPE, 'cache-control': 'no-store', 'content-length': r.der.byteLength };
    const second = Math.floor(clock.now().getTime() / 1000);
    let h = made.get(r.der);
    if (!h || h.second !== second) {
      h = { second, headers: { 'content-type': OCSP_RESPONSE_TYPE, ...cachingHeaders(r.der, r.thisUpdate, r.nextUpdate, new Date(second * 1000 + 999)), 'content-length': r.der.byteLength } };
      made.set(r.der, h);
    }
    return h.headers;
  };
}

/** The media type of a Content-Type header, lower case, without parameters. */
function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0].trim().toLowerCase();
}

export async function ocspPlugin(app: FastifyInstance, opts: OcspPluginOptions): Promise<void> {
  const { ctx } = opts;
  const responder = opts.responder ?? new OcspResponder(ctx.store, ctx.keys, ctx.authority, ctx.clock, { ...ctx.config.ocsp, ...opts.options });
  const clock: Clock = ctx.clock;
  if (opts.fastPath && !opts.responder) throw new Error('ocspPlugin: a fast path needs the responder it was made for');

  // This scope reads every body as bytes; the handler decides what it is.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_REQUEST_OCTETS }, (_req, body, done) => done(null, body));

  // Body limits and parser errors still answer in OCSP.
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const client = !!err.statusCode && err.statusCode < 500;
    if (client) req.log.info({ code: err.code, detail: err.message }, 'OCSP request refused');
    else req.log.error({ err }, 'OCSP internal error');
    return sendOcsp(reply, encodeErrorResponse(client ? 'malformedRequest' : 'internalError'));
  });

  const headersFor = answerHeaders(clock);
  const send = (req: FastifyRequest, reply: FastifyReply, r: OcspResult): FastifyReply => {
    const headers = headersFor(r);
    if (req.method === 'GET' && headers.etag && matchesEtag(req.headers['if-none-match'], headers.etag)) {
      const { 'content-length': _length, ...rest } = headers;
      return reply.code(304).headers(rest).send();
    }
    return reply.code(200).headers(headers).send(Buffer.from(r.der.buffer, r.der.byteOffset, r.der.byteLength));
  };

  const answer = async (req: FastifyRequest, reply: FastifyReply, der: Uint8Array | undefined): Promise<FastifyReply> => {
    if (!der) {
      req.log.info('OCSP request refused: not an OCSP request');
      return sendOcsp(reply, encodeErrorResponse('malformedRequest'));
    }
    const r = await responder.respond(der);
    logResult(req.log, r);
    return send(req, reply, r);
  };

  // Most requests repeat (RFC 5019 §2.1: CDNs and clients ask for the same
  // certificate until nextUpdate): a pre-signed answer is sent within the
  // handler's turn, without a promise, and a GET path is decoded once.
  const decoded = opts.fastPath?.decoded ?? new BoundedMap<string, Uint8Array | undefined>(GET_PATHS_KEPT);
  const fastOrAnswer = (req: FastifyRequest, reply: FastifyReply, der: Uint8Array | undefined): Promise<FastifyReply> | undefined => {
    const hit = der && responder.cachedResult(der);
    if (!hit) return answer(req, reply, der);
    send(req, reply, hit);
    return undefined;
  };

  // Handlers that return a promise only when they wait: Fastify sends
  // what a handler returns, so the synchronous path returns undefined.
  app.post('/ocsp', (req, reply) => {
    const body = req.body;
    return fastOrAnswer(req, reply, mediaType(req.headers['content-type']) === OCSP_REQUEST_TYPE && Buffer.isBuffer(body) ? new Uint8Array(body) : undefined);
  });

  // RFC 6960 A.1.1: GET {url}/{url-encoding of base-64 encoding of the DER}.
  // The raw URL is read, not the router's decoded parameter, because the
  // base64 itself may contain '/'.
  app.get('/ocsp/*', (req, reply) => {
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const at = path.indexOf('/ocsp/');
    if (at < 0) return answer(req, reply, undefined);
    const encoded = path.slice(at + '/ocsp/'.length);
    let der = decoded.get(encoded);
    if (der === undefined && !decoded.has(encoded)) decoded.set(encoded, (der = decodeGetRequest(encoded)));
    return fastOrAnswer(req, reply, der);
  });
  app.get('/ocsp', async (req, reply) => answer(req, reply, undefined));
}

/**
 * For the listener's `frameworkErrors` (server/http_errors.ts): a request
 * under /ocsp that never reached a route (its URL cannot be decoded) still
 * gets an OCSPResponse, malformedRequest; anything else is not OCSP's.
 */
/** GET paths whose decoding is remembered (a few hundred bytes each). */
const GET_PATHS_KEPT = 10_000;

/** A Map that forgets its oldest entries beyond `max`. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly max: number) {
    super();
  }
  override set(k: K, v: V): this {
    super.set(k, v);
    if (this.size > this.max) this.delete(this.keys().next().value as K);
    return this;
  }
}

export function ocspFrameworkError(req: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  return req.url.startsWith('/ocsp') ? sendOcsp(reply, encodeErrorResponse('malformedRequest')) : undefined;
}

function sendOcsp(reply: FastifyReply, der: Uint8Array): FastifyReply {
  // An error answer is unsigned and says nothing of any certificate: never cached.
  return reply.code(200).type(OCSP_RESPONSE_TYPE).header('cache-control', 'no-store').send(Buffer.from(der.buffer, der.byteOffset, der.byteLength));
}

function logResult(log: ResultLogger, r: OcspResult): void {
  if (r.status === 'successful') return;
  const detail = r.error instanceof Error ? r.error.message : String(r.error);
  if (r.status === 'internalError') log.error({ err: r.error }, 'OCSP internal error');
  else log.info({ status: r.status, detail }, 'OCSP request refused');
}
