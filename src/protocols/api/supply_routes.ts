/**
 * Supply-chain routes of the admin API (issue 8): the suppliers this registry
 * trusts, verifying and importing their signed manifests, and a device's
 * chain of identities. The manifest travels as base64 in JSON, so the
 * console and scripts send it like any other body.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ProblemError } from '../../errors.js';
import type { Permission } from '../../registry/operators.js';
import type { FleetContext } from '../../server/context.js';
import * as S from './supply_schemas.js';
import { deviceIdParam } from './registry_schemas.js';
import { deviceIdentitiesJson, manifestEntryJson, manifestImportJson, manifestJson, supplierJson, verifiedManifestJson } from './views.js';

type Guard = (p: Permission) => (req: FastifyRequest) => Promise<void>;

/** 50,000 devices (MAX_MANIFEST_DEVICES) of about 200 octets each, in base64, with room to spare. */
export const MANIFEST_BODY_LIMIT = 16 * 1024 * 1024;

function cmsOf(b64: string): Uint8Array {
  // Buffer.from ignores what is not base64; refuse it instead of importing a prefix.
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}[\r\n]*$/.test(b64)) throw new ProblemError('bad_request', '"cms" is not base64');
  const der = Buffer.from(b64, 'base64');
  if (der.length === 0) throw new ProblemError('bad_request', '"cms" is empty');
  return new Uint8Array(der);
}

export function supplyRoutes(app: FastifyInstance, ctx: FleetContext, guard: Guard): void {
  const actor = (req: FastifyRequest) => req.operator!.actor;
  const tags = ['Supply chain'];

  app.get('/api/v1/suppliers', { onRequest: guard('device:read'), schema: { tags, summary: 'Suppliers whose signed manifests are accepted, with their CAs', response: { 200: { type: 'array', items: S.supplier } } } }, async () =>
    (await ctx.supply.listSuppliers()).map(supplierJson),
  );

  app.post<{ Body: S.SupplierBody }>(
    '/api/v1/suppliers',
    { onRequest: guard('trust:admin'), schema: { tags, summary: 'Trust CA certificates to vouch for the manifest signers of a supplier', body: S.supplierBody, response: { 201: { type: 'array', items: S.supplier } } } },
    async (req, reply) => {
      const added = await ctx.supply.addSupplier(req.body.supplier, req.body.pem, actor(req));
      reply.code(201);
      return added.map(supplierJson);
    },
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/suppliers/:name',
    { onRequest: guard('trust:admin'), schema: { tags, summary: 'Stop accepting a supplier\'s manifests (imported ones stay, as history)', params: S.supplierNameParam } },
    async (req, reply) => {
      await ctx.supply.removeSupplier(req.params.name, actor(req));
      return reply.code(204).send();
    },
  );

  app.post<{ Body: S.VerifyBody }>(
    '/api/v1/manifests/verify',
    { onRequest: guard('device:read'), bodyLimit: MANIFEST_BODY_LIMIT, schema: { tags, summary: 'Check a signed manifest against the trusted suppliers without importing it', body: S.verifyBody, response: { 200: S.verified } } },
    async (req) => verifiedManifestJson(await ctx.supply.verify(cmsOf(req.body.cms))),
  );

  app.post<{ Body: S.ImportBody }>(
    '/api/v1/manifests',
    {
      onRequest: guard('device:register'),
      bodyLimit: MANIFEST_BODY_LIMIT,
      schema: {
        tags,
        summary: 'Import a signed manifest: register exactly its devices for this stage\'s profile, or move registered ones into the stage. All or nothing; once per manifest',
        body: S.importBody,
        response: { 201: S.importResult },
      },
    },
    async (req, reply) => {
      const { cms, ...o } = req.body;
      const r = await ctx.supply.importManifest(cmsOf(cms), o, actor(req));
      reply.code(201);
      return manifestImportJson(r);
    },
  );

  app.get<{ Querystring: S.ManifestQuery }>(
    '/api/v1/manifests',
    { onRequest: guard('device:read'), schema: { tags, summary: 'Imported manifests, newest first', querystring: S.manifestQuery, response: { 200: { type: 'array', items: S.manifest } } } },
    async (req) => (await ctx.supply.listManifests({ supplier: req.query.supplier, limit: req.query.limit ?? 100 })).map(manifestJson),
  );

  app.get<{ Params: { digest: string } }>(
    '/api/v1/manifests/:digest',
    { onRequest: guard('device:read'), schema: { tags, summary: 'One imported manifest: its devices, whether each entered the stage, and the signed manifest as received', params: S.digestParam, response: { 200: S.manifestWithEntries } } },
    async (req) => {
      const { manifest, entries } = await ctx.supply.manifest(req.params.digest);
      return { manifest: manifestJson(manifest), entries: entries.map(manifestEntryJson), cms: Buffer.from(manifest.cms).toString('base64') };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/devices/:id/identities',
    { onRequest: guard('device:read'), schema: { tags, summary: 'A device\'s chain of identities: manufacturer certificate, first certificate of each stage; and the manifest entries that admitted it', params: deviceIdParam, response: { 200: S.identities } } },
    async (req) => deviceIdentitiesJson(await ctx.supply.identities(req.params.id)),
  );
}
