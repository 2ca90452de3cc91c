/**
 * EST server (RFC 7030, RFC 8951) on the HTTPS listener: a thin adapter. It
 * decodes the wire format, turns the TLS client certificate or HTTP Basic
 * credentials into an EnrollmentCredential, calls the registry's enrollment
 * once, and encodes the answer. Policy lives in src/registry/enrollment.ts.
 *
 *   GET  /.well-known/est[/<label>]/cacerts
 *   POST /.well-known/est[/<label>]/simpleenroll      application/pkcs10
 *   POST /.well-known/est[/<label>]/simplereenroll    application/pkcs10
 *   GET  /.well-known/est[/<label>]/csrattrs
 *   POST /.well-known/est[/<label>]/serverkeygen      application/pkcs10
 */
import { createHash } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../../errors.js';
import type { EnrollmentCredential, EnrollResult } from '../../registry/enrollment.js';
import type { FleetContext } from '../../server/context.js';
import { STATUS_OF, toProblem } from '../../server/http_errors.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { certsOnly } from '../../x509/pkcs7.js';
import { base64Body, csrAttrs, decodeBase64Body, serverKeygenBody } from './wire.js';

const CERTS_ONLY = 'application/pkcs7-mime; smime-type=certs-only';
export const EST_BODY_LIMIT = 32 * 1024;

type EstOp = 'simpleenroll' | 'simplereenroll' | 'serverkeygen';

/** Errors the enrollment service already wrote to the audit log. */
const audited = new WeakSet<object>();

export async function estPlugin(app: FastifyInstance, opts: { ctx: FleetContext }): Promise<void> {
  const { ctx } = opts;

  // RFC 8951 §3.2: the CSR arrives base64; keep it as text and decode strictly.
  app.addContentTypeParser('application/pkcs10', { parseAs: 'string', bodyLimit: EST_BODY_LIMIT }, (_req, body, done) => done(null, body));

  app.setErrorHandler(async (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const p = toProblem(err);
    if (!p) {
      req.log.error({ err }, 'EST internal error');
      return reply.code(500).type('text/plain').send('internal error; the server log has the details\n');
    }
    if (!audited.has(p)) {
      await ctx.store.appendAudit({ actor: 'anonymous:est', action: 'enrollment.refuse', details: { code: p.code, detail: p.detail, via: 'est', path: req.url, remote: req.ip } }).catch(() => undefined);
    }
    if (p.code === 'unauthorized') reply.header('www-authenticate', 'Basic realm="fleetpki EST", charset="UTF-8"');
    // RFC 7030 §4.2.3: an error carries a human-readable text/plain explanation.
    return reply.code(STATUS_OF[p.code]).type('text/plain; charset=utf-8').send(`${p.detail}\n`);
  });

  const label = (req: FastifyRequest) => {
    const l = (req.params as { label?: string }).label;
    if (l === undefined) return {};
    const found = ctx.config.est.labels[l];
    if (!found) throw new ProblemError('not_found', `no EST label "${l}"`);
    return found;
  };

  const cacerts = async (req: FastifyRequest, reply: FastifyReply) => {
    const { ca } = label(req);
    const chain = await ctx.authority.chain(ca ?? ctx.config.defaultCa);
    // RFC 7030 §4.1.3: the issuing chain and the current root, certs-only.
    return reply.type('application/pkcs7-mime').header('content-transfer-encoding', 'base64').send(base64Body(certsOnly(chain)));
  };

  const csrattrs = async (req: FastifyRequest, reply: FastifyReply) => {
    const { profile } = label(req);
    const body = csrAttrs(ctx.authority.profile(profile ?? ctx.config.est.defaultProfile));
    return reply.type('application/csrattrs').header('content-transfer-encoding', 'base64').send(base64Body(body));
  };

  const enroll = (op: EstOp) => async (req: FastifyRequest, reply: FastifyReply) => {
    const l = label(req);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/pkcs10') throw new ProblemError('unsupported_media_type', 'EST requests carry application/pkcs10 (RFC 7030 §4.2.1)');
    const csr = decodeBase64Body(req.body as string, 'CSR');
    const credential = credentialOf(req);

    let result: EnrollResult;
    try {
      result = await ctx.enrollment.enroll({ credential, csr, reenroll: op === 'simplereenroll', serverKeyGen: op === 'serverkeygen', ca: l.ca, profile: l.profile, via: 'est', remote: req.ip });
    } catch (e) {
      if (e instanceof ProblemError) audited.add(e);
      throw e;
    }
    if (result.status === 'pending') {
      // RFC 7030 §4.2.3: accepted, not yet issued; the client retries the same request.
      return reply.code(202).header('retry-after', String(result.retryAfterSeconds)).type('text/plain').send(`enrollment of ${result.device.id} awaits approval\n`);
    }
    const p7 = certsOnly([result.result.der]);
    if (op === 'serverkeygen' && result.privateKey) {
      const key = new Uint8Array(result.privateKey.export({ format: 'der', type: 'pkcs8' }));
      const { contentType, body } = serverKeygenBody(key, p7);
      return reply.type(contentType).header('cache-control', 'no-store').send(body);
    }
    return reply.type(CERTS_ONLY).header('content-transfer-encoding', 'base64').send(base64Body(p7));
  };

  for (const prefix of ['/.well-known/est', '/.well-known/est/:label']) {
    app.get(`${prefix}/cacerts`, cacerts);
    app.get(`${prefix}/csrattrs`, csrattrs);
    app.post(`${prefix}/simpleenroll`, enroll('simpleenroll'));
    app.post(`${prefix}/simplereenroll`, enroll('simplereenroll'));
    app.post(`${prefix}/serverkeygen`, enroll('serverkeygen'));
  }
}

/**
 * The client's credential: a TLS client certificate that the listener
 * verified, else HTTP Basic (RFC 7030 §3.2.3). An unverifiable certificate
 * with no Basic credentials is refused with the TLS layer's reason.
 */
function credentialOf(req: FastifyRequest): EnrollmentCredential {
  const sock = req.raw.socket as Partial<TLSSocket>;
  const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate(true) : undefined;
  const hasCert = !!peer && !!peer.raw;
  if (hasCert && sock.authorized) {
    return { kind: 'certificate', leaf: parseCertificate(new Uint8Array(peer.raw)), anchor: anchorOf(peer) };
  }
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const text = Buffer.from(basic[1], 'base64').toString('utf8');
    const i = text.indexOf(':');
    if (i > 0) return { kind: 'secret', deviceId: text.slice(0, i), secret: text.slice(i + 1) };
  }
  if (hasCert) throw new ProblemError('unauthorized', `the client certificate was not accepted: ${sock.authorizationError ?? 'unknown issuer'}`);
  throw new ProblemError('unauthorized', 'authenticate with a client certificate or HTTP Basic (device id and enrollment secret)');
}

/** sha256 of the self-signed certificate at the top of the verified chain. */
function anchorOf(peer: PeerCertificate & { issuerCertificate?: PeerCertificate }): string {
  let c = peer;
  for (let i = 0; i < 10 && c.issuerCertificate && c.issuerCertificate !== c && c.issuerCertificate.raw; i++) {
    if (c.issuerCertificate.fingerprint256 === c.fingerprint256) break;
    c = c.issuerCertificate;
  }
  return createHash('sha256').update(c.raw).digest('hex');
}
