/**
 * The supply-chain routes of the admin API (src/protocols/api/supply_routes.ts)
 * through app.inject, with suppliers made by the openssl CLI: trusting a
 * supplier, verifying and importing its signed manifests, listing them and a
 * device's identities. Every refusal is a problem+json with the reason, is
 * audited, and changes nothing.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { FakeClock } from '../../src/clock.js';
import { signManifest } from '../../src/registry/supply_cms.js';
import { encodeManifest, type SupplyManifest } from '../../src/registry/supply_manifest.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { makeDataDir, tempDir, type TestDataDir } from '../helpers/data_dir.js';
import { makeSupplier, type TestSupplier } from '../helpers/supplier.js';
import { rmSync } from 'node:fs';

const clock = new FakeClock(Date.now());
let d: TestDataDir;
let app: FastifyInstance;
let work: string;
let chipco: TestSupplier;
let other: TestSupplier;
const tokens: Record<string, string> = {};

const hex = (c: string) => c.repeat(64);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

function call(role: string | undefined, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown) {
  return app.inject({ method, url, headers: role ? { authorization: `Bearer ${tokens[role]}` } : {}, payload: payload as object | undefined });
}

function problem(res: Awaited<ReturnType<typeof call>>, status: number, code: string, reason?: string, re?: RegExp) {
  assert.equal(res.statusCode, status, res.body);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  const b = res.json();
  assert.equal(b.code, code);
  if (reason) assert.equal(b.reason, reason, res.body);
  if (re) assert.match(b.detail, re);
  return b;
}

const manifestOf = (over: Partial<SupplyManifest> = {}): SupplyManifest => ({
  supplier: 'ChipCo',
  stage: 'assembly',
  createdAt: new Date('2026-12-01T08:00:00Z'),
  devices: [
    { id: 'chip-1', certificateSha256: hex('a'), model: 'sensor-x', batch: 'B7' },
    { id: 'chip-2', publicKeySha256: hex('b') },
  ],
  ...over,
});

const signed = async (m: SupplyManifest, s = chipco) => signManifest(s.identity(), encodeManifest(m), clock.now());

/** What a refusal must leave unchanged. */
async function snapshot() {
  return { devices: (await d.ctx.store.listDevices({ limit: 1000 })).map((x) => `${x.id}:${x.stage ?? ''}:${x.profile}`), manifests: (await d.ctx.store.listManifests({})).length };
}

async function lastAudit() {
  const all = await d.ctx.store.listAudit({ limit: 10_000 });
  return all[all.length - 1];
}

before(async () => {
  d = await makeDataDir({ clock });
  app = await buildHttpsApp(d.ctx);
  work = tempDir('fleetpki-api-supply-');
  tokens.admin = d.adminToken;
  for (const role of ['ra-officer', 'auditor', 'firmware-signer']) tokens[role] = (await d.ctx.operators.createToken({ name: role, role, actor: 'test' })).token;
  chipco = makeSupplier(work, 'ChipCo');
  other = makeSupplier(work, 'Other Co');
  // The supplier certificates start now (openssl's clock): sign and import after that.
  clock.set(Date.now() + 1000);
});

after(async () => {
  await app.close();
  await d.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('suppliers', () => {
  it('ok-admin trusts a supplier root; everyone who reads devices lists it', async () => {
    const res = await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'ChipCo', pem: readFileSync(chipco.rootPem, 'utf8') });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json()[0].subject, 'O=ChipCo, CN=ChipCo Supplier Root');
    assert.equal((await lastAudit()).action, 'supplier.add');
    for (const role of ['admin', 'ra-officer', 'auditor']) assert.deepEqual((await call(role, 'GET', '/api/v1/suppliers')).json().map((s: { supplier: string }) => s.supplier), ['ChipCo']);
  });

  it('fail-an ra-officer may not trust a supplier (403); nothing is trusted', async () => {
    problem(await call('ra-officer', 'POST', '/api/v1/suppliers', { supplier: 'Other Co', pem: readFileSync(other.rootPem, 'utf8') }), 403, 'forbidden');
    assert.equal((await call('admin', 'GET', '/api/v1/suppliers')).json().length, 1);
  });

  it('fail-a certificate that is not a CA, no PEM, a bad name, the same CA again → 4xx; nothing is trusted', async () => {
    problem(await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'Other Co', pem: readFileSync(other.certPem, 'utf8') }), 400, 'bad_request', undefined, /not a CA certificate/);
    problem(await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'Other Co', pem: 'garbage' }), 400, 'bad_request', undefined, /no PEM CERTIFICATE/);
    problem(await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'bad/name', pem: readFileSync(other.rootPem, 'utf8') }), 400, 'bad_request', undefined, /supplier name/);
    problem(await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'Again', pem: readFileSync(chipco.rootPem, 'utf8') }), 409, 'already_exists');
    problem(await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'X', pem: readFileSync(other.rootPem, 'utf8'), extra: 1 }), 400, 'bad_request');
    assert.equal((await call('admin', 'GET', '/api/v1/suppliers')).json().length, 1);
  });

  it('fail-removing an unknown supplier → 404', async () => {
    problem(await call('admin', 'DELETE', '/api/v1/suppliers/Nobody'), 404, 'not_found');
  });
});

describe('manifests', () => {
  it('ok-verify reads the manifest without importing it', async () => {
    const res = await call('auditor', 'POST', '/api/v1/manifests/verify', { cms: b64(await signed(manifestOf())) });
    assert.equal(res.statusCode, 200, res.body);
    const v = res.json();
    assert.equal(v.supplier, 'ChipCo');
    assert.equal(v.stage, 'assembly');
    assert.deepEqual(v.chain, ['O=ChipCo, CN=ChipCo Manifest Signer', 'O=ChipCo, CN=ChipCo Manifest CA', 'O=ChipCo, CN=ChipCo Supplier Root']);
    assert.deepEqual(v.devices[0], { id: 'chip-1', certificateSha256: hex('a'), publicKeySha256: null, model: 'sensor-x', batch: 'B7' });
    assert.equal((await snapshot()).manifests, 0);
  });

  it('fail-an auditor may not import (403)', async () => {
    problem(await call('auditor', 'POST', '/api/v1/manifests', { cms: b64(await signed(manifestOf())), profile: 'device-tls' }), 403, 'forbidden');
  });

  it('ok-an ra-officer imports: exactly the listed devices are registered in the stage, audited; the manifest is kept', async () => {
    const cms = await signed(manifestOf());
    const res = await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(cms), profile: 'device-tls', stage: 'assembly', domain: 'plant-a', owner: 'Acme' });
    assert.equal(res.statusCode, 201, res.body);
    const r = res.json();
    assert.deepEqual(r.registered, ['chip-1', 'chip-2']);
    assert.deepEqual(r.moved, []);
    assert.equal(r.manifest.supplier, 'ChipCo');
    assert.equal(r.manifest.importedBy, 'token:ra-officer');
    const dev = (await call('auditor', 'GET', '/api/v1/devices/chip-1')).json();
    assert.equal(dev.domain, 'plant-a');
    assert.equal(dev.model, 'sensor-x');
    const audit = await lastAudit();
    assert.equal(audit.action, 'manifest.import');
    assert.equal(audit.actor, 'token:ra-officer');
    assert.equal(audit.details?.registered, 2);

    const list = (await call('auditor', 'GET', '/api/v1/manifests')).json();
    assert.deepEqual(list.map((m: { digest: string }) => m.digest), [r.manifest.digest]);
    const one = (await call('auditor', 'GET', `/api/v1/manifests/${r.manifest.digest.toUpperCase()}`)).json();
    assert.equal(Buffer.from(one.cms, 'base64').compare(Buffer.from(cms)), 0, 'the signed manifest is kept as received');
    assert.deepEqual(one.entries.map((e: { deviceId: string; usedAt: null }) => [e.deviceId, e.usedAt]), [['chip-1', null], ['chip-2', null]]);

    const ids = (await call('auditor', 'GET', '/api/v1/devices/chip-1/identities')).json();
    assert.equal(ids.stage, 'assembly');
    assert.deepEqual(ids.identities, []);
    assert.equal(ids.entries[0].certificateSha256, hex('a'));
  });

  it('fail-the same manifest again, even re-signed → 409 replayed; nothing changes', async () => {
    const before = await snapshot();
    const b = problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(manifestOf())), profile: 'device-tls' }), 409, 'already_exists', 'replayed', /imported once/);
    assert.ok(b.detail.includes('token:ra-officer'));
    assert.deepEqual(await snapshot(), before);
    const audit = await lastAudit();
    assert.equal(audit.action, 'manifest.refuse');
    assert.equal(audit.details?.reason, 'replayed');
  });

  it('fail-devices that cannot enter the stage → 422 bad_entries listing each; nothing is imported', async () => {
    await d.ctx.registry.register({ id: 'retired-1', profile: 'device-tls' }, 'test');
    await d.ctx.registry.setState('retired-1', 'retired', 'test');
    const before = await snapshot();
    const m = manifestOf({ stage: 'assembly', createdAt: new Date('2026-12-01T09:00:00Z'), devices: [{ id: 'new-1', publicKeySha256: hex('c') }, { id: 'chip-1', certificateSha256: hex('a') }, { id: 'retired-1', publicKeySha256: hex('d') }] });
    const b = problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(m)), profile: 'device-tls' }), 422, 'manifest_rejected', 'bad_entries', /2 of 3 devices/);
    assert.deepEqual(b.entries.map((e: { id: string }) => e.id), ['chip-1', 'retired-1']);
    assert.match(b.entries[0].reason, /in stage assembly already/);
    assert.match(b.entries[1].reason, /retired/);
    assert.deepEqual(await snapshot(), before, 'new-1 was not registered either');
  });

  it('fail-an unknown profile for the stage → 422 bad_entries', async () => {
    const m = manifestOf({ stage: 'test', createdAt: new Date('2026-12-01T10:00:00Z') });
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(m)), profile: 'no-such-profile' }), 422, 'manifest_rejected', 'bad_entries');
  });

  it('fail-the import names another stage than the manifest → 422 wrong_stage', async () => {
    const m = manifestOf({ stage: 'operation', createdAt: new Date('2026-12-01T11:00:00Z') });
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(m)), profile: 'device-tls', stage: 'assembly' }), 422, 'manifest_rejected', 'wrong_stage');
  });

  it('fail-signed by a supplier nobody trusts, or naming another supplier → 422 untrusted_supplier / wrong_supplier', async () => {
    const before = await snapshot();
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(manifestOf({ supplier: 'Other Co' }), other)), profile: 'device-tls' }), 422, 'manifest_rejected', 'untrusted_supplier');
    await call('admin', 'POST', '/api/v1/suppliers', { supplier: 'Other Co', pem: readFileSync(other.rootPem, 'utf8') });
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(manifestOf({ supplier: 'ChipCo', createdAt: new Date('2026-12-01T12:00:00Z') }), other)), profile: 'device-tls' }), 422, 'manifest_rejected', 'wrong_supplier');
    assert.deepEqual(await snapshot(), before);
  });

  it('fail-one changed byte of the signed document → 422 (digest or signature), audited with the CMS digest', async () => {
    const cms = Buffer.from(await signed(manifestOf({ createdAt: new Date('2026-12-01T13:00:00Z') })));
    const at = cms.indexOf('chip-2');
    cms[at + 5] = '3'.charCodeAt(0);
    const b = problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(cms), profile: 'device-tls' }), 422, 'manifest_rejected');
    assert.ok(['digest_mismatch', 'bad_signature'].includes(b.reason), b.reason);
    assert.equal((await d.ctx.store.getDevice('chip-3')), undefined);
    const audit = await lastAudit();
    assert.equal(audit.action, 'manifest.refuse');
    assert.match(String(audit.target), /^[0-9a-f]{64}$/);
  });

  it('fail-not base64, empty, garbage DER → 400 / 422 malformed; nothing changes', async () => {
    const before = await snapshot();
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: 'not base64!', profile: 'device-tls' }), 400, 'bad_request', undefined, /not base64/);
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: '', profile: 'device-tls' }), 400, 'bad_request', undefined, /empty/);
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(Uint8Array.of(0x30, 0x82, 0xff, 0xff, 1)), profile: 'device-tls' }), 422, 'manifest_rejected', 'malformed');
    problem(await call('ra-officer', 'POST', '/api/v1/manifests', { profile: 'device-tls' }), 400, 'bad_request');
    problem(await call('ra-officer', 'POST', '/api/v1/manifests/verify', { cms: b64(Buffer.from('hello')) }), 422, 'manifest_rejected', 'malformed');
    assert.deepEqual(await snapshot(), before);
  });

  it('fail-a body over the manifest limit → 413', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/manifests', headers: { authorization: `Bearer ${tokens['ra-officer']}`, 'content-type': 'application/json' }, payload: `{"profile":"device-tls","cms":"${'A'.repeat(17 * 1024 * 1024)}"}` });
    problem(res, 413, 'payload_too_large');
  });

  it('fail-an unknown manifest or device → 404; a malformed digest → 400', async () => {
    problem(await call('auditor', 'GET', `/api/v1/manifests/${hex('f')}`), 404, 'not_found');
    problem(await call('auditor', 'GET', '/api/v1/manifests/xyz'), 400, 'bad_request');
    problem(await call('auditor', 'GET', '/api/v1/devices/nobody/identities'), 404, 'not_found');
    problem(await call('auditor', 'GET', '/api/v1/manifests?limit=0'), 400, 'bad_request');
    problem(await call('auditor', 'GET', '/api/v1/manifests?limit=5000'), 400, 'bad_request');
    problem(await call('auditor', 'GET', '/api/v1/manifests?colour=red'), 400, 'bad_request');
    problem(await call('admin', 'DELETE', `/api/v1/suppliers/${'x'.repeat(200)}`), 400, 'bad_request');
  });

  it('ok-a second stage moves the registered devices; suppliers can be removed while their manifests stay', async () => {
    const m = manifestOf({ supplier: 'Other Co', stage: 'operation', createdAt: new Date('2026-12-02T08:00:00Z'), devices: [{ id: 'chip-1', publicKeySha256: hex('e') }] });
    const res = await call('ra-officer', 'POST', '/api/v1/manifests', { cms: b64(await signed(m, other)), profile: 'device-tls', owner: 'Buyer' });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().moved, ['chip-1']);
    const dev = await d.ctx.store.getDevice('chip-1');
    assert.equal(dev?.stage, 'operation');
    assert.equal(dev?.owner, 'Buyer');
    assert.equal(dev?.domain, 'plant-a', 'what the import does not name stays');
    assert.deepEqual((await call('auditor', 'GET', '/api/v1/manifests?supplier=Other%20Co')).json().map((x: { stage: string }) => x.stage), ['operation']);
    const ids = (await call('auditor', 'GET', '/api/v1/devices/chip-1/identities')).json();
    assert.deepEqual(ids.entries.map((e: { stage: string }) => e.stage), ['assembly', 'operation']);

    assert.equal((await call('admin', 'DELETE', '/api/v1/suppliers/Other%20Co')).statusCode, 204);
    assert.equal((await call('auditor', 'GET', '/api/v1/manifests')).json().length, 2);
  });

  it('ok-the OpenAPI document describes the supply-chain routes', async () => {
    const doc = (await app.inject({ url: '/api/v1/openapi.json' })).json();
    for (const p of ['/api/v1/suppliers', '/api/v1/suppliers/{name}', '/api/v1/manifests', '/api/v1/manifests/verify', '/api/v1/manifests/{digest}', '/api/v1/devices/{id}/identities']) assert.ok(doc.paths[p], p);
  });
});
