/**
 * Firmware signers and the signing endpoint for build pipelines: where a
 * signer may come from, who may sign, the streamed and digest-only routes,
 * the body bound (413), the per-token rate limit (429 + Retry-After), the
 * audit trail and the OpenAPI description. Signatures are checked with
 * `openssl cms -verify`, as in the field.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { parseSignature } from '../../src/firmware/cms.js';
import { decodeManifest } from '../../src/firmware/manifest.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeDataDir, tempDir, type TestDataDir } from '../helpers/data_dir.js';

let d: TestDataDir;
let app: FastifyInstance;
let throttledApp: FastifyInstance;
let work: string;
const tokens: Record<string, string> = {};
const image = randomBytes(200_000);
const MAX = 500_000;
const auth = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });
const keyFiles = () => readdirSync(join(d.dir, 'keys')).length;

function opensslVerify(img: Uint8Array, sig: Uint8Array): { status: number | null; stderr: string } {
  const n = randomBytes(4).toString('hex');
  writeFileSync(join(work, `${n}.bin`), img);
  writeFileSync(join(work, `${n}.sig`), sig);
  const r = spawnSync('openssl', ['cms', '-verify', '-binary', '-content', join(work, `${n}.bin`), '-in', join(work, `${n}.sig`), '-inform', 'DER', '-CAfile', join(work, 'root.pem'), '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

async function lastAudit(action: string) {
  return (await d.ctx.store.listAudit({ action, limit: 1000 })).at(-1);
}

before(async () => {
  d = await makeDataDir();
  d.ctx.config.firmware = { maxImageBytes: MAX, signaturesPerMinute: 60, burst: 100 };
  work = tempDir('fleetpki-fw-api-');
  const root = (await d.ctx.store.getCa('root'))!;
  writeFileSync(join(work, 'root.pem'), pemEncode('CERTIFICATE', root.certDer));
  await d.ctx.authority.createIssuingCa({ name: 'firmware', parent: 'root', subject: [{ type: 'O', value: 'Test Fleet' }, { type: 'CN', value: 'Test Fleet Firmware CA' }], keyAlgorithm: 'ecdsa-p256', validityDays: 1825, actor: 'test' });
  tokens.admin = d.adminToken;
  for (const [name, role] of [['pipeline', 'firmware-signer'], ['pipeline-2', 'firmware-signer'], ['throttled', 'firmware-signer'], ['officer', 'ra-officer'], ['auditor', 'auditor']]) {
    tokens[name] = (await d.ctx.operators.createToken({ name, role, actor: 'test' })).token;
  }
  app = await buildHttpsApp(d.ctx);
  // The rate limit test gets an app of its own with a burst of 3 (the limits are read when the app is built).
  d.ctx.config.firmware = { ...d.ctx.config.firmware, burst: 3 };
  throttledApp = await buildHttpsApp(d.ctx);
});

after(async () => {
  await app.close();
  await throttledApp.close();
  await d.cleanup();
});

describe('firmware signers', () => {
  const refusals: Array<{ name: string; req: Parameters<TestDataDir['ctx']['firmware']['createSigner']>[0]; code: ProblemCode; detail: RegExp }> = [
    { name: 'fail-under-the-root', req: { name: 'x', ca: 'root', actor: 't' }, code: 'policy_violation', detail: /root CA does not certify firmware signers/ },
    { name: 'fail-under-the-device-ca', req: { name: 'x', ca: 'issuing', actor: 't' }, code: 'policy_violation', detail: /issues device certificates.*create-intermediate --name firmware/ },
    { name: 'fail-no-firmware-ca', req: { name: 'x', ca: 'nowhere', actor: 't' }, code: 'not_found', detail: /create-intermediate --name nowhere/ },
    { name: 'fail-bad-name', req: { name: 'Release 1', actor: 't' }, code: 'bad_request', detail: /lowercase/ },
    { name: 'fail-key-the-profile-refuses', req: { name: 'weak', keyAlgorithm: 'rsa-2048', actor: 't' }, code: 'bad_key', detail: /does not allow rsa-2048/ },
  ];
  for (const c of refusals) {
    it(c.name, async () => {
      const keys = keyFiles();
      const certs = (await d.ctx.store.listCertificates({ limit: 1000 })).length;
      await assert.rejects(d.ctx.firmware.createSigner(c.req), (e: unknown) => isProblem(e, c.code) && c.detail.test(e.detail));
      assert.equal(keyFiles(), keys, 'no key left behind');
      assert.equal((await d.ctx.store.listCertificates({ limit: 1000 })).length, certs, 'nothing issued');
      assert.deepEqual((await d.ctx.store.listFirmwareSigners()).map((s) => s.name).filter((n) => n === c.req.name), []);
    });
  }

  it('ok a signer: a key in the key store, a code-signing certificate from the firmware CA, audited', async () => {
    const rec = await d.ctx.firmware.createSigner({ name: 'old', actor: 'cli:test' });
    const rec2 = await d.ctx.firmware.createSigner({ name: 'release', keyAlgorithm: 'ecdsa-p384', actor: 'cli:test' });
    await assert.rejects(d.ctx.firmware.createSigner({ name: 'release', actor: 't' }), (e: unknown) => isProblem(e, 'already_exists'));
    const cert = parseCertificate(rec2.certDer);
    assert.deepEqual(cert.extendedKeyUsage, ['1.3.6.1.5.5.7.3.3']);
    assert.deepEqual(cert.keyUsage, ['digitalSignature']);
    assert.equal(cert.isCa, false);
    assert.equal(cert.issuerText, 'O=Test Fleet, CN=Test Fleet Firmware CA');
    assert.equal(cert.subjectText, 'O=Test Fleet, CN=release firmware signer');
    assert.equal((await d.ctx.store.getCertificate(rec2.serial))!.profile, 'code-signing');
    assert.ok(await d.ctx.keys.has(rec2.keyRef));
    assert.equal((await lastAudit('firmware.signer.create'))!.target, 'release');
    assert.equal(rec.ca, 'firmware');
  });
});

describe('firmware signing API: who may sign', () => {
  const cases: Array<{ name: string; who?: string; status: number; code?: string }> = [
    { name: 'fail-no-token', status: 401, code: 'unauthorized' },
    { name: 'fail-admin (signing is not an admin power)', who: 'admin', status: 403, code: 'forbidden' },
    { name: 'fail-ra-officer', who: 'officer', status: 403, code: 'forbidden' },
    { name: 'fail-auditor', who: 'auditor', status: 403, code: 'forbidden' },
    { name: 'ok-firmware-signer', who: 'pipeline', status: 201 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const signs = (await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length;
      const res = await app.inject({ method: 'POST', url: '/api/v1/firmware/signatures?model=sensor-x&version=1.0.0', headers: { ...(c.who ? auth(c.who) : {}), 'content-type': 'application/octet-stream' }, payload: image });
      assert.equal(res.statusCode, c.status, res.body);
      if (c.code) assert.equal(res.json().code, c.code);
      assert.equal((await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length, signs + (c.status === 201 ? 1 : 0));
    });
  }
  it('fail-the firmware-signer role issues no certificates', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/certificates', headers: auth('pipeline-2'), payload: { csr: 'x', profile: 'code-signing' } });
    assert.equal(res.statusCode, 403);
  });
});

describe('firmware signing API: signing', () => {
  it('ok an image streamed in: a detached signature openssl accepts over it, manifest signed, audited, not cached', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/firmware/signatures?model=sensor-x&version=1.4.2&minVersion=1.3.0&expires=2031-01-01T00:00:00Z', headers: { ...auth('pipeline'), 'content-type': 'application/octet-stream' }, payload: image });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const b = res.json();
    const sig = Buffer.from(b.signature, 'base64');
    assert.deepEqual(b.manifest, { model: 'sensor-x', version: '1.4.2', size: image.length, digestAlgorithm: 'sha384', digest: createHash('sha384').update(image).digest('hex'), minVersion: '1.3.0', expires: '2031-01-01T00:00:00.000Z' });
    assert.equal(b.signer.name, 'release', 'the newest usable signer');
    assert.equal(opensslVerify(image, sig).status, 0);
    assert.notEqual(opensslVerify(Buffer.concat([image, Buffer.of(0)]), sig).status, 0, 'the control: another image fails');
    assert.equal(decodeManifest(parseSignature(sig).manifest!).version, '1.4.2');
    const a = (await lastAudit('firmware.sign'))!;
    assert.equal(a.actor, 'token:pipeline');
    assert.equal(a.details.digest, b.manifest.digest);
    assert.equal(a.details.version, '1.4.2');
    assert.equal(a.details.signer, 'release');
  });

  it('ok Accept: application/pkcs7-signature answers the DER signature itself', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/firmware/signatures?model=sensor-x&version=1.4.3&signer=old', headers: { ...auth('pipeline'), 'content-type': 'application/octet-stream', accept: 'application/pkcs7-signature' }, payload: image });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['content-type'], 'application/pkcs7-signature');
    assert.equal(parseSignature(res.rawPayload).digestAlgorithm, 'sha256', 'the P-256 signer "old"');
    assert.equal(opensslVerify(image, res.rawPayload).status, 0);
  });

  it('ok by digest: the image stays in the pipeline', async () => {
    const digest = createHash('sha256').update(image).digest('hex');
    const res = await app.inject({ method: 'POST', url: '/api/v1/firmware/signatures/digest', headers: auth('pipeline-2'), payload: { model: 'sensor-x', version: '2.0.0', signer: 'old', imageDigest: digest.toUpperCase(), size: image.length } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(opensslVerify(image, Buffer.from(res.json().signature, 'base64')).status, 0);
    assert.equal((await lastAudit('firmware.sign'))!.details.fromDigest, true);
  });

  const bad: Array<{ name: string; url?: string; who?: string; payload?: unknown; contentType?: string; status: number; code: string; detail?: RegExp; refuseAudited?: boolean }> = [
    { name: 'fail-missing-model', url: '/api/v1/firmware/signatures?version=1.0.0', status: 400, code: 'bad_request' },
    { name: 'fail-unknown-parameter', url: '/api/v1/firmware/signatures?model=m&version=1.0.0&evil=1', status: 400, code: 'bad_request' },
    { name: 'fail-not-a-semantic-version', url: '/api/v1/firmware/signatures?model=m&version=v1', status: 400, code: 'bad_request', detail: /not a semantic version/, refuseAudited: true },
    { name: 'fail-min-version-above-version', url: '/api/v1/firmware/signatures?model=m&version=1.0.0&minVersion=2.0.0', status: 400, code: 'bad_request', detail: /above the version/, refuseAudited: true },
    { name: 'fail-expiry-in-the-past', url: '/api/v1/firmware/signatures?model=m&version=1.0.0&expires=2001-01-01T00:00:00Z', status: 400, code: 'bad_request', detail: /not in the future/, refuseAudited: true },
    { name: 'fail-unknown-signer', url: '/api/v1/firmware/signatures?model=m&version=1.0.0&signer=nobody', status: 404, code: 'not_found', refuseAudited: true },
    { name: 'fail-json-to-the-image-route', payload: { image: 'x' }, contentType: 'application/json', status: 415, code: 'unsupported_media_type' },
    { name: 'fail-image-larger-than-maxImageBytes (Content-Length)', payload: randomBytes(MAX + 1), status: 413, code: 'payload_too_large', detail: /firmware\.maxImageBytes/ },
    { name: 'fail-image-larger-than-maxImageBytes (streamed, no length)', payload: 'stream', status: 413, code: 'payload_too_large', refuseAudited: true },
    { name: 'fail-digest-of-the-wrong-length', url: '/api/v1/firmware/signatures/digest', payload: { model: 'm', version: '1.0.0', imageDigest: 'ab'.repeat(48), size: 1, signer: 'old' }, status: 400, code: 'bad_request', detail: /sha256 digest \(32 octets\)/, refuseAudited: true },
    { name: 'fail-digest-not-hex', url: '/api/v1/firmware/signatures/digest', payload: { model: 'm', version: '1.0.0', imageDigest: 'xy'.repeat(32), size: 1 }, status: 400, code: 'bad_request' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      const signs = (await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length;
      const refused = (await d.ctx.store.listAudit({ action: 'firmware.sign.refuse', limit: 1000 })).length;
      const payload = c.payload === 'stream' ? Readable.from((function* () { for (let i = 0; i < 10; i++) yield randomBytes(MAX / 5); })()) : c.payload ?? image;
      const res = await app.inject({ method: 'POST', url: c.url ?? '/api/v1/firmware/signatures?model=m&version=1.0.0', headers: { ...auth(c.who ?? 'pipeline-2'), 'content-type': c.contentType ?? (c.url?.endsWith('/digest') ? 'application/json' : 'application/octet-stream') }, payload: payload as never });
      assert.equal(res.statusCode, c.status, res.body);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(res.json().code, c.code);
      if (c.detail) assert.match(res.json().detail, c.detail);
      assert.equal((await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length, signs, 'nothing signed');
      assert.equal((await d.ctx.store.listAudit({ action: 'firmware.sign.refuse', limit: 1000 })).length, refused + (c.refuseAudited ? 1 : 0));
    });
  }

  it('fail-a revoked signer signs nothing (policy_violation); the default moves to a usable one', async () => {
    const old = (await d.ctx.store.getFirmwareSigner('old'))!;
    await d.ctx.authority.revoke(old.serial, 'keyCompromise', 'test');
    const res = await app.inject({ method: 'POST', url: '/api/v1/firmware/signatures?model=m&version=1.0.0&signer=old', headers: { ...auth('pipeline-2'), 'content-type': 'application/octet-stream' }, payload: image });
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json().code, 'policy_violation');
    assert.match(res.json().detail, /"old" is revoked/);
    assert.equal((await lastAudit('firmware.sign.refuse'))!.details.code, 'policy_violation');
    const list = (await app.inject({ url: '/api/v1/firmware/signers', headers: auth('pipeline-2') })).json();
    assert.deepEqual(list.map((s: { name: string; status: string }) => [s.name, s.status]).sort(), [['old', 'revoked'], ['release', 'good']]);
  });
});

describe('firmware signing API: rate limit', () => {
  it('ok the burst, then 429 with Retry-After for this token only; nothing read, nothing audited', async () => {
    const sign = (authorization: string) => throttledApp.inject({ method: 'POST', url: '/api/v1/firmware/signatures?model=m&version=1.0.0', headers: { authorization, 'content-type': 'application/octet-stream' }, payload: image });
    for (let i = 0; i < 3; i++) assert.equal((await sign(auth('throttled').authorization)).statusCode, 201);
    const signs = (await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length;
    const res = await sign(auth('throttled').authorization);
    assert.equal(res.statusCode, 429, res.body);
    assert.equal(res.json().code, 'rate_limited');
    assert.equal(res.headers['retry-after'], '1');
    assert.match(res.json().detail, /60 images a minute \(burst 3\)/);
    assert.equal((await d.ctx.store.listAudit({ action: 'firmware.sign', limit: 1000 })).length, signs);
    assert.equal((await sign(auth('admin').authorization)).statusCode, 403, 'the role check comes first');
    // Another token, even of the same name and role, has its own bucket.
    const other = await d.ctx.operators.createToken({ name: 'throttled', role: 'firmware-signer', actor: 'test' });
    assert.equal((await sign(`Bearer ${other.token}`)).statusCode, 201);
  });
});

describe('firmware signing API: OpenAPI', () => {
  it('documents both routes, the octet-stream body, the DER answer, the signers list', async () => {
    const doc = (await app.inject({ url: '/api/v1/openapi.json' })).json();
    const post = doc.paths['/api/v1/firmware/signatures'].post;
    assert.deepEqual(post.requestBody.content['application/octet-stream'].schema.format, 'binary');
    assert.ok(post.responses['201'].content['application/pkcs7-signature']);
    assert.ok(post.responses['201'].content['application/json'].schema.properties.signature);
    assert.deepEqual(post.parameters.filter((p: { in: string }) => p.in === 'query').map((p: { name: string }) => p.name).sort(), ['digestAlgorithm', 'expires', 'minVersion', 'model', 'signer', 'version']);
    assert.match(post.description, /429 with Retry-After/);
    assert.ok(doc.paths['/api/v1/firmware/signatures/digest'].post.requestBody.content['application/json'].schema.properties.imageDigest);
    assert.ok(doc.paths['/api/v1/firmware/signers'].get);
  });
});
