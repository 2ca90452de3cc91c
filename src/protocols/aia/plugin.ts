/**
 * CA certificates at the AIA caIssuers URL, on the plain-HTTP listener.
 * RFC 5280 §4.2.2.1: a single DER certificate served as application/pkix-cert
 * (RFC 2585 §4.1). Plain HTTP on purpose: fetching it must not need TLS that
 * itself depends on this certificate.
 */
import type { FastifyInstance } from 'fastify';
import { ProblemError } from '../../errors.js';
import type { Authority } from '../../authority/authority.js';
import { pemEncode } from '../../x509/pem.js';

export async function aiaPlugin(app: FastifyInstance, opts: { authority: Authority }): Promise<void> {
  app.get<{ Params: { file: string } }>('/ca/:file', async (req, reply) => {
    const m = /^([a-z0-9][a-z0-9-]{0,62})\.(cer|pem)$/.exec(req.params.file);
    if (!m) throw new ProblemError('not_found', 'CA certificates are at /ca/<name>.cer (DER) or /ca/<name>.pem');
    const { record } = await opts.authority.ca(m[1]);
    // CA certificates change rarely; let caches keep them for an hour.
    reply.header('cache-control', 'public, max-age=3600');
    if (m[2] === 'pem') return reply.type('application/x-pem-file').send(pemEncode('CERTIFICATE', record.certDer));
    return reply.type('application/pkix-cert').send(Buffer.from(record.certDer));
  });
}
