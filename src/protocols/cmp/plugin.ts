/**
 * CMP over HTTP (RFC 6712, RFC 9811) on both listeners: CMP protects its
 * messages itself, so plain HTTP is as good as HTTPS for it.
 *
 *   POST /.well-known/cmp              application/pkixcmp
 *   POST /.well-known/cmp/p/<label>    application/pkixcmp
 *
 * A CMP client can only read a PKIMessage, so every answer is one, refusals
 * included: a body that is too large, of another type or not DER gets an
 * error message with badDataFormat.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CMP_BODY_LIMIT } from './message.js';
import type { CmpServer } from './server.js';
import { cmpProblem } from './failure.js';

export const CMP_CONTENT_TYPE = 'application/pkixcmp';

export async function cmpPlugin(app: FastifyInstance, opts: { cmp: CmpServer }): Promise<void> {
  const { cmp } = opts;

  // This scope reads every body as bytes; the handler decides what it is.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: CMP_BODY_LIMIT }, (_req, body, done) => done(null, body));

  const send = (reply: FastifyReply, a: { status: number; der: Uint8Array }) =>
    reply.code(a.status).type(CMP_CONTENT_TYPE).header('cache-control', 'no-store').send(Buffer.from(a.der.buffer, a.der.byteOffset, a.der.byteLength));

  // Limits and parser errors still answer in CMP (the error message of an unreadable request).
  app.setErrorHandler(async (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const tooLarge = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE';
    req.log.info({ code: err.code, detail: err.message }, 'CMP request refused');
    const p = cmpProblem('bad_request', ['badDataFormat'], tooLarge ? `the request is larger than ${CMP_BODY_LIMIT} octets` : `unreadable request: ${err.message}`);
    const a = await cmp.handle(new Uint8Array(0), { remote: req.ip, log: req.log, refuse: p });
    return send(reply, { ...a, status: tooLarge ? 413 : 400 });
  });

  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const label = (req.params as { label?: string }).label;
    const body = Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : new Uint8Array(0);
    const refuse = type === CMP_CONTENT_TYPE ? undefined : cmpProblem('unsupported_media_type', ['badDataFormat'], `CMP requests are ${CMP_CONTENT_TYPE} (RFC 6712 §3.4), not "${type}"`);
    const a = await cmp.handle(body, { label, remote: req.ip, log: req.log, refuse });
    return send(reply, refuse ? { ...a, status: 415 } : a);
  };
  app.post('/.well-known/cmp', handle);
  app.post('/.well-known/cmp/p/:label', handle);
}
