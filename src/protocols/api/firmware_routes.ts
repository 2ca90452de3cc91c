/**
 * The firmware signing endpoint for build pipelines (role firmware-signer):
 *
 *   POST /api/v1/firmware/signatures?model=M&version=V[&minVersion&expires&signer&digestAlgorithm]
 *        Content-Type: application/octet-stream, the image as the body
 *   POST /api/v1/firmware/signatures/digest   (JSON: the digest and size instead of the image)
 *   GET  /api/v1/firmware/signers
 *
 * Order of the gates, so an unauthorised or throttled client costs nothing:
 * token and permission, then the per-token rate limit (429 + Retry-After),
 * then Content-Length against firmware.maxImageBytes (413), all before a byte
 * of the body is read. The image is streamed through the hash, never held
 * in memory; a chunked upload that passes the limit is cut off with 413.
 */
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../../errors.js';
import { manifestJson, SIGN_DIGESTS, type SignDigest } from '../../firmware/manifest.js';
import type { SignerStatus, SignResult } from '../../firmware/signers.js';
import type { Permission } from '../../registry/operators.js';
import type { FleetContext } from '../../server/context.js';
import { keyInfoName } from '../../x509/algorithms.js';
import { pemEncode } from '../../x509/pem.js';
import { RateLimiter } from './rate_limit.js';

type Guard = (p: Permission) => (req: FastifyRequest) => Promise<void>;

/** RFC 8551 §3.2.1: the media type of a detached CMS signature. */
export const SIGNATURE_MEDIA_TYPE = 'application/pkcs7-signature';

export function firmwareSignerJson(s: SignerStatus) {
  return {
    name: s.record.name,
    ca: s.record.ca,
    serial: s.record.serial,
    subject: s.cert.subjectText,
    status: s.status,
    keyAlgorithm: keyInfoName(s.cert.key),
    notBefore: s.cert.notBefore.toISOString(),
    notAfter: s.cert.notAfter.toISOString(),
    createdAt: s.record.createdAt.toISOString(),
    certificatePem: pemEncode('CERTIFICATE', s.record.certDer),
  };
}

const versionField = { type: 'string', maxLength: 64, description: 'Semantic version (semver.org), e.g. 1.4.2' } as const;
const signParams = {
  model: { type: 'string', maxLength: 128, description: 'Device model the image is for' },
  version: versionField,
  minVersion: { ...versionField, description: 'Anti-rollback floor: once installed, devices refuse images older than this' },
  expires: { type: 'string', format: 'date-time', description: 'Devices do not install the image after this time' },
  signer: { type: 'string', maxLength: 63, description: 'Firmware signer name; default the newest usable one' },
  digestAlgorithm: { type: 'string', enum: [...SIGN_DIGESTS], description: 'Digest algorithm; default SHA-384 for P-384 signers, SHA-256 otherwise' },
} as const;

interface SignQuery {
  model: string;
  version: string;
  minVersion?: string;
  expires?: string;
  signer?: string;
  digestAlgorithm?: SignDigest;
}
interface DigestBody extends SignQuery {
  /** Hex. */
  imageDigest: string;
  size: number;
}

const signQuery = { type: 'object', additionalProperties: false, required: ['model', 'version'], properties: signParams } as const;
const digestBody = {
  type: 'object',
  additionalProperties: false,
  required: ['model', 'version', 'imageDigest', 'size'],
  properties: {
    model: signParams.model,
    version: signParams.version,
    minVersion: signParams.minVersion,
    expires: signParams.expires,
    signer: signParams.signer,
    digestAlgorithm: signParams.digestAlgorithm,
    imageDigest: { type: 'string', pattern: '^[0-9a-fA-F]{64}([0-9a-fA-F]{32})?$', description: 'The image digest, hex, under digestAlgorithm' },
    size: { type: 'integer', minimum: 0, description: 'The image length in octets' },
  },
} as const;
const signed = {
  type: 'object',
  properties: {
    signature: { type: 'string', description: 'The detached CMS SignedData, DER, base64' },
    manifest: {
      type: 'object',
      properties: {
        model: { type: 'string' },
        version: { type: 'string' },
        size: { type: 'integer' },
        digestAlgorithm: { type: 'string' },
        digest: { type: 'string' },
        minVersion: { type: 'string', nullable: true },
        expires: { type: 'string', format: 'date-time', nullable: true },
      },
    },
    signer: { type: 'object', properties: { name: { type: 'string' }, serial: { type: 'string' } } },
  },
} as const;
const signerList = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      name: { type: 'string' },
      ca: { type: 'string' },
      serial: { type: 'string' },
      subject: { type: 'string' },
      status: { type: 'string', enum: ['good', 'revoked', 'expired', 'not-yet-valid'] },
      keyAlgorithm: { type: 'string' },
      notBefore: { type: 'string', format: 'date-time' },
      notAfter: { type: 'string', format: 'date-time' },
      createdAt: { type: 'string', format: 'date-time' },
      certificatePem: { type: 'string' },
    },
  },
} as const;
const binary = { type: 'string', format: 'binary' } as const;
const refusals = 'Refusals: 401/403 (token, role), 413 (larger than firmware.maxImageBytes), 429 with Retry-After (firmware.signaturesPerMinute per token), 404 (no such signer), 403 policy_violation (signer revoked or expired).';

function parseExpiry(s: string | undefined): Date | undefined {
  if (s === undefined) return undefined;
  const d = new Date(s);
  if (isNaN(d.getTime())) throw new ProblemError('bad_request', `expires "${s}" is not a date`);
  return d;
}

function answer(req: FastifyRequest, reply: FastifyReply, r: SignResult) {
  reply.code(201).header('cache-control', 'no-store');
  if ((req.headers.accept ?? '').includes(SIGNATURE_MEDIA_TYPE)) return reply.type(SIGNATURE_MEDIA_TYPE).send(Buffer.from(r.der));
  return { signature: Buffer.from(r.der).toString('base64'), manifest: manifestJson(r.manifest), signer: { name: r.signer.name, serial: r.signer.serial } };
}

export function firmwareRoutes(app: FastifyInstance, ctx: FleetContext, guard: Guard): void {
  const tags = ['Firmware'];
  const { maxImageBytes, signaturesPerMinute, burst } = ctx.config.firmware;
  const limiter = new RateLimiter(signaturesPerMinute, burst, ctx.clock);
  const actor = (req: FastifyRequest) => req.operator!.actor;

  /** After the guard: one signature costs one token of the operator's bucket. */
  const rateLimit = async (req: FastifyRequest) => {
    const op = req.operator!;
    const r = limiter.take(op.tokenId ?? op.actor);
    if (!r.ok) {
      req.log.warn({ actor: op.actor }, 'firmware signing rate limit reached');
      throw new ProblemError('rate_limited', `token ${op.name} may sign ${signaturesPerMinute} images a minute (burst ${burst}); retry in ${r.retryAfterSeconds} s`, { retryAfterSeconds: r.retryAfterSeconds });
    }
  };

  app.get('/api/v1/firmware/signers', { onRequest: guard('firmware:sign'), schema: { tags, summary: 'Firmware signers (code-signing keys) and their status', response: { 200: signerList } } }, async () =>
    (await ctx.firmware.listSigners()).map(firmwareSignerJson),
  );

  app.post<{ Body: DigestBody }>(
    '/api/v1/firmware/signatures/digest',
    {
      onRequest: [guard('firmware:sign'), rateLimit],
      schema: { tags, summary: 'Sign an image by its digest (the image stays in the pipeline); audited', description: `The digest must be under the signer's digest algorithm. ${refusals} Accept: ${SIGNATURE_MEDIA_TYPE} returns the DER signature itself.`, body: digestBody, response: { 201: signed } },
    },
    async (req, reply) => {
      const b = req.body;
      const r = await ctx.firmware.sign({
        signer: b.signer,
        model: b.model,
        version: b.version,
        minVersion: b.minVersion,
        expires: parseExpiry(b.expires),
        digestAlgorithm: b.digestAlgorithm,
        image: { digest: new Uint8Array(Buffer.from(b.imageDigest.toLowerCase(), 'hex')), size: b.size },
        actor: actor(req),
      });
      return answer(req, reply, r);
    },
  );

  // The image route parses its body as a stream: an encapsulated scope keeps
  // that parser away from every other route.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
    scope.post<{ Querystring: SignQuery }>(
      '/api/v1/firmware/signatures',
      {
        onRequest: [
          guard('firmware:sign'),
          rateLimit,
          async (req) => {
            const len = Number(req.headers['content-length']);
            if (Number.isFinite(len) && len > maxImageBytes) throw new ProblemError('payload_too_large', `the image (${len} octets) is larger than ${maxImageBytes} (firmware.maxImageBytes)`);
          },
        ],
        schema: {
          tags,
          summary: 'Sign a firmware image (the body, application/octet-stream, streamed); audited',
          description: `Writes a detached CMS signature with the signed update manifest. ${refusals} Accept: ${SIGNATURE_MEDIA_TYPE} returns the DER signature itself.`,
          querystring: signQuery,
          response: { 201: signed },
        },
        // The body is a stream, so it is documented here rather than validated.
        config: {
          swaggerTransform: ({ schema, url }: { schema: object; url: string }) => ({
            url,
            schema: {
              ...schema,
              body: { content: { 'application/octet-stream': { schema: { ...binary, description: `The image, at most firmware.maxImageBytes (${maxImageBytes}) octets` } } } },
              response: { 201: { description: 'The signature', content: { 'application/json': { schema: signed }, [SIGNATURE_MEDIA_TYPE]: { schema: binary } } } },
            },
          }),
        },
      },
      async (req, reply) => {
        const body = req.body as Readable | undefined;
        if (!body || typeof (body as Readable).on !== 'function') throw new ProblemError('unsupported_media_type', 'send the image as application/octet-stream');
        const q = req.query;
        const r = await ctx.firmware.sign({
          signer: q.signer,
          model: q.model,
          version: q.version,
          minVersion: q.minVersion,
          expires: parseExpiry(q.expires),
          digestAlgorithm: q.digestAlgorithm,
          image: body,
          maxImageBytes,
          actor: actor(req),
        });
        return answer(req, reply, r);
      },
    );
  });
}
