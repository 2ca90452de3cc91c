/**
 * CRLs at the distribution point URLs, on the plain-HTTP listener (RFC 5280
 * §4.2.1.13: DER, application/pkix-crl per RFC 2585 §4.2). Plain HTTP on
 * purpose: revocation checking must not depend on TLS that itself needs a
 * revocation check.
 *
 *   GET /crl/<ca>.crl         the newest full base CRL
 *   GET /crl/<ca>-delta.crl   the newest delta CRL
 *   GET /crl/<ca>-s<n>.crl    the newest CRL of shard n (partitioned CRLs)
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { CrlService } from '../../authority/crl.js';
import { ProblemError } from '../../errors.js';

export async function crlPlugin(app: FastifyInstance, opts: { crls: CrlService; maxAgeSeconds: number; shards: number }): Promise<void> {
  app.get<{ Params: { file: string } }>('/crl/:file', async (req, reply) => {
    const m = /^([a-z0-9][a-z0-9-]{0,62}?)(?:-s(\d{1,4}))?(-delta)?\.crl$/.exec(req.params.file);
    if (!m || (m[2] && m[3])) throw new ProblemError('not_found', 'CRLs are at /crl/<ca>.crl, /crl/<ca>-delta.crl and /crl/<ca>-s<n>.crl');
    const shard = m[2] ? Number(m[2]) : 0;
    // Only shards that exist: an arbitrary number must not make the server sign CRLs on demand.
    if (shard > opts.shards && !(await opts.crls.hasShard(m[1], shard))) throw new ProblemError('not_found', `CA ${m[1]} has no CRL shard ${shard}`);
    const crl = await opts.crls.latest(m[1], m[3] ? 'delta' : 'base', shard);
    // Short max-age: a cache may hide a revocation for at most this long.
    const untilNext = Math.max(0, Math.floor((crl.nextUpdate.getTime() - Date.now()) / 1000));
    reply
      .type('application/pkix-crl')
      .header('last-modified', crl.thisUpdate.toUTCString())
      .header('expires', crl.nextUpdate.toUTCString())
      .header('cache-control', `public, max-age=${Math.min(opts.maxAgeSeconds, untilNext)}, no-transform`)
      .header('etag', `"${createHash('sha256').update(crl.der).digest('hex').slice(0, 32)}"`);
    return reply.send(Buffer.from(crl.der));
  });
}
