/**
 * The registry routes of the admin API (src/protocols/api/registry_routes.ts)
 * through app.inject: devices, import, secrets, patches, manufacturer trust,
 * orders and approvals; roles, validation and the OpenAPI document.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { FakeClock } from '../../src/clock.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { makeDataDir, opensslCsr, tempDir, type TestDataDir } from '../helpers/data_dir.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
let d: TestDataDir;
let app: FastifyInstance;
let work: string;
let caPem: string;
let leafPem: string;
const tokens: Record<string, string> = {};
type Role = 'admin' | 'ra-officer' | 'auditor' | 'key-recovery' | 'firmware-signer';
const ROLES: Role[] = ['admin', 'ra-officer', 'auditor', 'key-recovery', 'firmware-signer'];

const auth = (role: Role) => ({ authorization: `Bearer ${tokens[role]}` });

function call(role: Role | undefined, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  return app.inject({ method, url, headers: role ? auth(role) : {}, payload: payload as object | undefined });
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** Asserts a problem+json answer. */
function problem(res: Awaited<ReturnType<typeof call>>, status: number, code: string, re?: RegExp): void {
  assert.equal(res.statusCode, status, res.body);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
  const b = res.json();
  assert.equal(b.code, code);
  assert.equal(b.status, status);
  if (re) assert.match(b.detail, re);
  assert.ok(!/at .*\.ts:\d+/.test(res.body), 'no stack trace');
}

async function pendingEnrollment(id: string): Promise<string> {
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls', requireApproval: true }, 'test', true);
  const r = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: secret! }, csr: opensslCsr(work, id).csrPem, via: 'test' });
  assert.ok(r.status === 'pending');
  return r.pendingId;
}

before(async () => {
  d = await makeDataDir({ clock });
  app = await buildHttpsApp(d.ctx);
  work = tempDir('fleetpki-api-registry-');
  tokens.admin = d.adminToken;
  for (const role of ROLES.slice(1)) tokens[role] = (await d.ctx.operators.createToken({ name: role, role, actor: 'test' })).token;
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'mfr.key'), '-subj', '/O=Maker/CN=Maker Root', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', join(work, 'mfr.pem')]);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'leaf.key'), '-subj', '/CN=not a ca', '-days', '3650', '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature', '-out', join(work, 'leaf.pem')]);
  caPem = readFileSync(join(work, 'mfr.pem'), 'utf8');
  leafPem = readFileSync(join(work, 'leaf.pem'), 'utf8');
});

after(async () => {
  await app.close();
  await d.cleanup();
  spawnSync('rm', ['-rf', work]);
});

describe('roles: who may call which registry route', () => {
  // Requests a permitted role would get a 400/404 for (empty or invalid
  // bodies, unknown ids): the matrix checks the gate without changing data.
  const routes: Array<{ method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; payload?: unknown; allowed: Role[] }> = [
    { method: 'GET', url: '/api/v1/devices', allowed: ['admin', 'ra-officer', 'auditor', 'key-recovery'] },
    { method: 'GET', url: '/api/v1/devices/no-such-device', allowed: ['admin', 'ra-officer', 'auditor', 'key-recovery'] },
    { method: 'POST', url: '/api/v1/devices', payload: {}, allowed: ['admin', 'ra-officer'] },
    { method: 'POST', url: '/api/v1/devices/import', payload: {}, allowed: ['admin', 'ra-officer'] },
    { method: 'POST', url: '/api/v1/devices/no-such-device/secret', allowed: ['admin', 'ra-officer'] },
    { method: 'PATCH', url: '/api/v1/devices/no-such-device', payload: {}, allowed: ['admin', 'ra-officer'] },
    { method: 'GET', url: '/api/v1/trust/manufacturers', allowed: ['admin', 'ra-officer', 'auditor', 'key-recovery'] },
    { method: 'POST', url: '/api/v1/trust/manufacturers', payload: {}, allowed: ['admin'] },
    { method: 'DELETE', url: `/api/v1/trust/manufacturers/${'ab'.repeat(32)}`, allowed: ['admin'] },
    { method: 'GET', url: '/api/v1/orders', allowed: ['admin', 'ra-officer', 'auditor', 'key-recovery'] },
    { method: 'POST', url: '/api/v1/orders', payload: {}, allowed: ['admin', 'ra-officer'] },
    { method: 'GET', url: '/api/v1/enrollments', allowed: ['admin', 'ra-officer', 'auditor', 'key-recovery'] },
    { method: 'POST', url: '/api/v1/enrollments/no-such-enrollment/approve', allowed: ['admin', 'ra-officer'] },
    { method: 'POST', url: '/api/v1/enrollments/no-such-enrollment/reject', allowed: ['admin', 'ra-officer'] },
  ];
  for (const r of routes) {
    it(`${r.method} ${r.url}: ${r.allowed.join(', ')}`, async () => {
      for (const role of ROLES) {
        const res = await call(role, r.method, r.url, r.payload);
        if (r.allowed.includes(role)) assert.notEqual(res.statusCode, 403, `${role}: ${res.body}`);
        else problem(res, 403, 'forbidden', new RegExp(`role ${role} may not`));
      }
      problem(await call(undefined, r.method, r.url, r.payload), 401, 'unauthorized');
    });
  }
});

describe('POST /api/v1/devices', () => {
  it('ok-register: 201, no secret unless asked, attributed to the token', async () => {
    const res = await call('ra-officer', 'POST', '/api/v1/devices', { id: 'api-1', profile: 'device-tls', domain: 'site-a', model: 'GX', sans: ['dns:api-1.example'], attributes: { rack: 'R1' } });
    assert.equal(res.statusCode, 201, res.body);
    const b = res.json();
    assert.equal(b.id, 'api-1');
    assert.equal(b.state, 'registered');
    assert.equal(b.secret, null);
    assert.deepEqual(b.attributes, { rack: 'R1' });
    assert.deepEqual(b.sans, ['dns:api-1.example']);
    assert.equal(b.createdAt, '2030-01-01T00:00:00.000Z');
    const audit = await d.ctx.store.listAudit({ target: 'api-1' });
    assert.deepEqual(
      audit.map((a) => [a.action, a.actor]),
      [['device.register', 'token:ra-officer']],
    );
  });

  it('ok-register with "secret": true returns the one-time secret once', async () => {
    const res = await call('admin', 'POST', '/api/v1/devices', { id: 'api-2', profile: 'device-tls', secret: true });
    assert.equal(res.statusCode, 201, res.body);
    const { secret } = res.json();
    assert.match(secret, /^[A-Za-z0-9_-]{20,}$/);
    const show = await call('admin', 'GET', '/api/v1/devices/api-2');
    assert.ok(!show.body.includes(secret), 'never shown again');
  });

  const bad: Array<{ name: string; payload: unknown; status: number; code: string; re?: RegExp }> = [
    { name: 'fail-duplicate', payload: { id: 'api-1', profile: 'device-tls' }, status: 409, code: 'already_exists' },
    { name: 'fail-unknown-field', payload: { id: 'api-x1', profile: 'device-tls', colour: 'red' }, status: 400, code: 'bad_request', re: /additional properties/i },
    { name: 'fail-state-is-not-settable-at-registration', payload: { id: 'api-x2', profile: 'device-tls', state: 'active' }, status: 400, code: 'bad_request' },
    { name: 'fail-bad-id-pattern', payload: { id: 'bad id', profile: 'device-tls' }, status: 400, code: 'bad_request', re: /pattern/ },
    { name: 'fail-id-too-long', payload: { id: `a${'b'.repeat(64)}`, profile: 'device-tls' }, status: 400, code: 'bad_request' },
    { name: 'fail-missing-profile', payload: { id: 'api-x3' }, status: 400, code: 'bad_request', re: /profile/ },
    { name: 'fail-unknown-profile', payload: { id: 'api-x4', profile: 'nope' }, status: 404, code: 'not_found' },
    { name: 'fail-bad-domain', payload: { id: 'api-x5', profile: 'device-tls', domain: 'Site A' }, status: 400, code: 'bad_request' },
    { name: 'fail-extra-domain-uri', payload: { id: 'api-x6', profile: 'device-tls', sans: ['uri:urn:fleetpki:domain:x'] }, status: 400, code: 'bad_request', re: /is a domain name/ },
    { name: 'fail-attribute-not-string', payload: { id: 'api-x7', profile: 'device-tls', attributes: { n: { nested: true } } }, status: 400, code: 'bad_request' },
    { name: 'fail-unknown-order', payload: { id: 'api-x8', profile: 'device-tls', orderId: 'nope' }, status: 404, code: 'not_found' },
    { name: 'fail-not-an-object', payload: [{ id: 'api-x9', profile: 'device-tls' }], status: 400, code: 'bad_request' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      const res = await call('admin', 'POST', '/api/v1/devices', c.payload);
      problem(res, c.status, c.code, c.re);
      const id = (c.payload as { id?: string }).id;
      if (id && id !== 'api-1') assert.equal(await d.ctx.store.getDevice(id), undefined, 'nothing stored');
    });
  }
});

describe('POST /api/v1/devices/import', () => {
  it('ok-a mix of good, invalid, duplicate and existing rows', async () => {
    const devices = [
      { id: 'imp-1', profile: 'device-tls', domain: 'site-i' },
      { id: 'imp 2', profile: 'device-tls' },
      { id: 'imp-3', profile: 'device-tls', sans: ['dns:imp-3.example', 'ip:10.9.0.3'], rack: 'R9' },
      { id: 'api-1', profile: 'device-tls' },
      { id: 'imp-5', profile: 'nope' },
      { id: 'imp-1', profile: 'device-tls' },
      { id: 'imp-7', profile: 'device-tls', approval: 'perhaps' },
      { id: 'imp-8', profile: 'device-tls', approval: 'yes' },
    ];
    const res = await call('ra-officer', 'POST', '/api/v1/devices/import', { devices });
    assert.equal(res.statusCode, 200, res.body);
    const b = res.json();
    assert.equal(b.registered, 3);
    assert.deepEqual(b.alreadyRegistered, ['api-1']);
    assert.deepEqual(
      b.rejected.map((r: { line: number }) => r.line),
      [2, 5, 6, 7],
      'element numbers, in order',
    );
    assert.match(b.rejected[0].reason, /the id must be/);
    assert.match(b.rejected[1].reason, /nope/);
    assert.match(b.rejected[2].reason, /appears twice/);
    assert.match(b.rejected[3].reason, /approval must be true or false/);
    const imp3 = (await call('auditor', 'GET', '/api/v1/devices/imp-3')).json();
    assert.deepEqual(imp3.sans, ['dns:imp-3.example', 'ip:10.9.0.3']);
    assert.deepEqual(imp3.attributes, { rack: 'R9' });
    assert.equal((await call('auditor', 'GET', '/api/v1/devices/imp-8')).json().requireApproval, true);
    const audit = await d.ctx.store.listAudit({ action: 'device.import' });
    assert.equal(audit[audit.length - 1].actor, 'token:ra-officer');
  });

  it('fail-body shape: missing devices, not an array, unknown top-level field', async () => {
    for (const payload of [{}, { devices: {} }, { devices: [], extra: 1 }]) problem(await call('admin', 'POST', '/api/v1/devices/import', payload), 400, 'bad_request');
  });

  it('ok-the API field names keep their meaning: requireApproval, orderId, attributes', async () => {
    const order = (await call('admin', 'POST', '/api/v1/orders', { profile: 'device-tls', quantity: 5 })).json();
    const res = await call('admin', 'POST', '/api/v1/devices/import', { devices: [{ id: 'imp-api-names', profile: 'device-tls', requireApproval: true, orderId: order.id, attributes: { rack: 'R2' } }] });
    assert.equal(res.statusCode, 200, res.body);
    const dev = (await call('admin', 'GET', '/api/v1/devices/imp-api-names')).json();
    assert.equal(dev.requireApproval, true, 'an approval requirement is not silently dropped');
    assert.equal(dev.orderId, order.id, 'an order binding is not silently dropped');
    assert.deepEqual(dev.attributes, { rack: 'R2' });
  });

  it('ok-thousands at once (5,000 devices in one request)', async () => {
    const devices = Array.from({ length: 5000 }, (_, i) => ({ id: `bulk-${i}`, profile: 'device-tls', domain: 'bulk' }));
    const res = await call('admin', 'POST', '/api/v1/devices/import', { devices });
    assert.equal(res.statusCode, 200, res.body.slice(0, 300));
    assert.equal(res.json().registered, 5000);
  });
});

describe('GET /api/v1/devices and /api/v1/devices/{id}', () => {
  before(async () => {
    await d.ctx.registry.importDevices(
      ['q-a', 'q-b', 'q-c'].map((id, i) => ({ line: i + 1, input: { id, profile: 'device-tls', domain: 'q-site', model: i === 1 ? 'QX' : 'QY', owner: 'q-owner' } })),
      'test',
    );
    await d.ctx.registry.setState('q-c', 'suspended', 'test');
  });

  it('ok-filters and keyset paging', async () => {
    const ids = async (qs: string) => {
      const res = await call('auditor', 'GET', `/api/v1/devices?${qs}`);
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    };
    assert.deepEqual(
      (await ids('domain=q-site')).items.map((x: { id: string }) => x.id),
      ['q-a', 'q-b', 'q-c'],
    );
    assert.deepEqual(
      (await ids('domain=q-site&model=QX')).items.map((x: { id: string }) => x.id),
      ['q-b'],
    );
    assert.deepEqual(
      (await ids('owner=q-owner&state=suspended')).items.map((x: { id: string }) => x.id),
      ['q-c'],
    );
    const p1 = await ids('domain=q-site&limit=2');
    assert.equal(p1.next, 'q-b');
    const p2 = await ids(`domain=q-site&limit=2&after=${p1.next}`);
    assert.deepEqual(
      p2.items.map((x: { id: string }) => x.id),
      ['q-c'],
    );
    assert.equal(p2.next, null);
  });

  const badQueries = ['state=sleeping', 'limit=0', 'limit=1001', 'colour=red', 'limit=abc'];
  for (const qs of badQueries) {
    it(`fail-query ${qs}`, async () => problem(await call('auditor', 'GET', `/api/v1/devices?${qs}`), 400, 'bad_request'));
  }

  it('ok-one device with its certificates (current marked)', async () => {
    const { secret } = await d.ctx.registry.register({ id: 'show-1', profile: 'device-tls' }, 'test', true);
    const r = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'show-1', secret: secret! }, csr: opensslCsr(work, 'show-1').csrPem, via: 'test' });
    assert.ok(r.status === 'issued');
    const res = await call('key-recovery', 'GET', '/api/v1/devices/show-1');
    assert.equal(res.statusCode, 200, res.body);
    const b = res.json();
    assert.equal(b.state, 'active');
    assert.equal(b.currentSerial, r.result.record.serial);
    assert.deepEqual(b.certificates, [{ serial: r.result.record.serial, status: 'good', revocationReason: null, notAfter: r.result.record.notAfter.toISOString(), current: true }]);
  });

  it('fail-unknown device 404; id outside the pattern 400', async () => {
    problem(await call('auditor', 'GET', '/api/v1/devices/nope'), 404, 'not_found');
    problem(await call('auditor', 'GET', `/api/v1/devices/${encodeURIComponent('bad id')}`), 400, 'bad_request');
    problem(await call('auditor', 'GET', `/api/v1/devices/${'a'.repeat(65)}`), 400, 'bad_request');
  });
});

describe('POST /api/v1/devices/{id}/secret', () => {
  it('ok-a new secret, 201', async () => {
    const res = await call('ra-officer', 'POST', '/api/v1/devices/api-1/secret');
    assert.equal(res.statusCode, 201, res.body);
    const b = res.json();
    assert.equal(b.id, 'api-1');
    assert.match(b.secret, /^[A-Za-z0-9_-]{20,}$/);
    assert.equal(b.expiresInHours, d.ctx.config.registry.secretTtlHours);
  });
  it('fail-unknown device 404, retired device 403', async () => {
    problem(await call('ra-officer', 'POST', '/api/v1/devices/nope/secret'), 404, 'not_found');
    await d.ctx.registry.register({ id: 'api-retired', profile: 'device-tls' }, 'test');
    await d.ctx.registry.setState('api-retired', 'retired', 'test');
    problem(await call('ra-officer', 'POST', '/api/v1/devices/api-retired/secret'), 403, 'forbidden');
  });
});

describe('PATCH /api/v1/devices/{id}', () => {
  before(async () => {
    await d.ctx.registry.register({ id: 'patch-1', profile: 'device-tls', domain: 'site-p', owner: 'alice' }, 'test');
  });

  it('ok-change fields and state; null clears', async () => {
    const res = await call('ra-officer', 'PATCH', '/api/v1/devices/patch-1', { owner: null, model: 'PX', sans: ['dns:patch-1.example'], requireApproval: true });
    assert.equal(res.statusCode, 200, res.body);
    const b = res.json();
    assert.equal(b.owner, null);
    assert.equal(b.model, 'PX');
    assert.deepEqual(b.sans, ['dns:patch-1.example']);
    assert.equal(b.requireApproval, true);
    assert.equal((await call('ra-officer', 'PATCH', '/api/v1/devices/patch-1', { state: 'suspended' })).json().state, 'suspended');
    const audit = await d.ctx.store.listAudit({ target: 'patch-1' });
    assert.equal(audit[audit.length - 1].actor, 'token:ra-officer');
  });

  const bad: Array<{ name: string; payload: unknown; status: number; code: string }> = [
    { name: 'fail-empty-patch', payload: {}, status: 400, code: 'bad_request' },
    { name: 'fail-unknown-field', payload: { colour: 'red' }, status: 400, code: 'bad_request' },
    { name: 'fail-id-not-patchable', payload: { id: 'other' }, status: 400, code: 'bad_request' },
    { name: 'fail-currentSerial-not-patchable', payload: { currentSerial: 'ab' }, status: 400, code: 'bad_request' },
    { name: 'fail-bad-state', payload: { state: 'sleeping' }, status: 400, code: 'bad_request' },
    { name: 'fail-bad-domain', payload: { domain: 'Site P' }, status: 400, code: 'bad_request' },
    // Registration refuses these (extra names are dns:/ip:; the domain gives the URI); a patch must too.
    { name: 'fail-extra-uri-name', payload: { sans: ['uri:urn:fleetpki:domain:other-site'] }, status: 400, code: 'bad_request' },
    { name: 'fail-unparseable-name', payload: { sans: ['not-a-name'] }, status: 400, code: 'bad_request' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      const before = await d.ctx.store.getDevice('patch-1');
      problem(await call('admin', 'PATCH', '/api/v1/devices/patch-1', c.payload), c.status, c.code);
      assert.deepEqual(await d.ctx.store.getDevice('patch-1'), before, 'nothing changed');
    });
  }

  it('fail-unknown device 404', async () => {
    problem(await call('admin', 'PATCH', '/api/v1/devices/nope', { owner: 'x' }), 404, 'not_found');
  });

  // The lifecycle (src/registry/lifecycle.ts) holds for the API as for the CLI.
  const transitions: Array<{ name: string; setup: string[]; patch: Record<string, unknown>; re: RegExp }> = [
    { name: 'fail-registered → active by hand (no certificate)', setup: [], patch: { state: 'active' }, re: /is registered and cannot be set active/ },
    { name: 'fail-out of retired, with other fields', setup: ['retired'], patch: { state: 'suspended', owner: 'bob' }, re: /retired is final/ },
    { name: 'fail-suspended → active without a certificate', setup: ['suspended'], patch: { state: 'active' }, re: /has no certificate/ },
  ];
  for (const [i, c] of transitions.entries()) {
    it(`${c.name}: 409 conflict, nothing changed`, async () => {
      const id = `patch-lc-${i}`;
      await d.ctx.registry.register({ id, profile: 'device-tls' }, 'test');
      for (const s of c.setup) await d.ctx.registry.setState(id, s as 'retired', 'test');
      const before = await d.ctx.store.getDevice(id);
      problem(await call('ra-officer', 'PATCH', `/api/v1/devices/${id}`, c.patch), 409, 'conflict', c.re);
      assert.deepEqual(await d.ctx.store.getDevice(id), before);
    });
  }

  it('ok-resume a suspended device to registered over the API', async () => {
    await d.ctx.registry.register({ id: 'patch-resume', profile: 'device-tls' }, 'test');
    await d.ctx.registry.setState('patch-resume', 'suspended', 'test');
    const res = await call('ra-officer', 'PATCH', '/api/v1/devices/patch-resume', { state: 'registered' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().state, 'registered');
  });
});

describe('/api/v1/trust/manufacturers', () => {
  let fingerprint = '';

  it('ok-admin adds a CA (201), everyone with device:read lists it', async () => {
    const res = await call('admin', 'POST', '/api/v1/trust/manufacturers', { pem: caPem });
    assert.equal(res.statusCode, 201, res.body);
    const [a] = res.json();
    assert.match(a.fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(a.purpose, 'manufacturer');
    assert.match(a.subject, /Maker Root/);
    assert.ok(!('der' in a));
    fingerprint = a.fingerprint;
    const list = await call('auditor', 'GET', '/api/v1/trust/manufacturers');
    assert.equal(list.statusCode, 200);
    assert.deepEqual(
      list.json().map((x: { fingerprint: string }) => x.fingerprint),
      [fingerprint],
    );
  });

  it('fail-ra-officer may not change trust; nothing changes', async () => {
    problem(await call('ra-officer', 'POST', '/api/v1/trust/manufacturers', { pem: caPem }), 403, 'forbidden');
    problem(await call('ra-officer', 'DELETE', `/api/v1/trust/manufacturers/${fingerprint}`), 403, 'forbidden');
    assert.equal((await d.ctx.registry.listManufacturerCas()).length, 1);
  });

  const bad: Array<{ name: string; payload: () => unknown; status: number; code: string }> = [
    { name: 'fail-duplicate', payload: () => ({ pem: caPem }), status: 409, code: 'already_exists' },
    { name: 'fail-not-a-ca', payload: () => ({ pem: leafPem }), status: 400, code: 'bad_request' },
    { name: 'fail-garbage', payload: () => ({ pem: 'garbage' }), status: 400, code: 'bad_request' },
    { name: 'fail-missing-pem', payload: () => ({}), status: 400, code: 'bad_request' },
    { name: 'fail-unknown-field', payload: () => ({ pem: caPem, purpose: 'everything' }), status: 400, code: 'bad_request' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      problem(await call('admin', 'POST', '/api/v1/trust/manufacturers', c.payload()), c.status, c.code);
      assert.equal((await d.ctx.registry.listManufacturerCas()).length, 1);
    });
  }

  it('ok-admin removes it by fingerprint (colons accepted), 204; again 404', async () => {
    const colons = fingerprint.toUpperCase().match(/../g)!.join(':');
    const del = await call('admin', 'DELETE', `/api/v1/trust/manufacturers/${colons}`);
    assert.equal(del.statusCode, 204, del.body);
    assert.deepEqual((await call('auditor', 'GET', '/api/v1/trust/manufacturers')).json(), []);
    problem(await call('admin', 'DELETE', `/api/v1/trust/manufacturers/${fingerprint}`), 404, 'not_found');
    problem(await call('admin', 'DELETE', '/api/v1/trust/manufacturers/not-hex'), 400, 'bad_request');
  });
});

describe('/api/v1/orders', () => {
  it('ok-ra-officer creates (201), auditor lists', async () => {
    const res = await call('ra-officer', 'POST', '/api/v1/orders', { profile: 'device-tls', quantity: 100, model: 'GX', domain: 'site-a', validDays: 30 });
    assert.equal(res.statusCode, 201, res.body);
    const o = res.json();
    assert.deepEqual({ ...o, id: undefined }, { id: undefined, profile: 'device-tls', model: 'GX', domain: 'site-a', quantity: 100, used: 0, expiresAt: '2030-01-31T00:00:00.000Z', createdAt: '2030-01-01T00:00:00.000Z' });
    const list = await call('auditor', 'GET', '/api/v1/orders');
    assert.ok(list.json().some((x: { id: string }) => x.id === o.id));
  });

  const bad: Array<{ name: string; payload: unknown; status: number; code: string }> = [
    { name: 'fail-quantity-0', payload: { profile: 'device-tls', quantity: 0 }, status: 400, code: 'bad_request' },
    { name: 'fail-quantity-fraction', payload: { profile: 'device-tls', quantity: 1.5 }, status: 400, code: 'bad_request' },
    { name: 'fail-missing-quantity', payload: { profile: 'device-tls' }, status: 400, code: 'bad_request' },
    { name: 'fail-unknown-field', payload: { profile: 'device-tls', quantity: 1, used: 0 }, status: 400, code: 'bad_request' },
    { name: 'fail-bad-domain', payload: { profile: 'device-tls', quantity: 1, domain: 'A B' }, status: 400, code: 'bad_request' },
    { name: 'fail-unknown-profile', payload: { profile: 'nope', quantity: 1 }, status: 404, code: 'not_found' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      const n = (await d.ctx.registry.listOrders()).length;
      problem(await call('admin', 'POST', '/api/v1/orders', c.payload), c.status, c.code);
      assert.equal((await d.ctx.registry.listOrders()).length, n);
    });
  }
});

describe('/api/v1/enrollments', () => {
  let p1: string;
  let p2: string;
  before(async () => {
    p1 = await pendingEnrollment('wait-1');
    p2 = await pendingEnrollment('wait-2');
  });

  it('ok-list pending (default) and by status', async () => {
    const res = await call('auditor', 'GET', '/api/v1/enrollments');
    assert.equal(res.statusCode, 200, res.body);
    const items = res.json();
    assert.deepEqual(
      items.map((p: { id: string }) => p.id).sort(),
      [p1, p2].sort(),
    );
    assert.equal(items[0].status, 'pending');
    assert.match(items[0].spkiSha256, /^[0-9a-f]{64}$/);
    assert.ok(!('csrDer' in items[0]));
    problem(await call('auditor', 'GET', '/api/v1/enrollments?status=lost'), 400, 'bad_request');
  });

  it('fail-auditor may not approve', async () => {
    problem(await call('auditor', 'POST', `/api/v1/enrollments/${p1}/approve`), 403, 'forbidden');
    assert.equal((await d.ctx.store.getPendingEnrollment(p1))!.status, 'pending');
  });

  it('ok-ra-officer approves one and rejects the other; deciding again is 409', async () => {
    const a = await call('ra-officer', 'POST', `/api/v1/enrollments/${p1}/approve`);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(a.json().status, 'approved');
    assert.equal(a.json().decidedBy, 'token:ra-officer');
    const r = await call('ra-officer', 'POST', `/api/v1/enrollments/${p2}/reject`);
    assert.equal(r.json().status, 'rejected');
    problem(await call('admin', 'POST', `/api/v1/enrollments/${p1}/reject`), 409, 'conflict');
    problem(await call('admin', 'POST', `/api/v1/enrollments/${p2}/approve`), 409, 'conflict');
    assert.deepEqual(
      (await call('auditor', 'GET', '/api/v1/enrollments?status=approved')).json().map((p: { id: string }) => p.id),
      [p1],
    );
    assert.deepEqual((await call('auditor', 'GET', '/api/v1/enrollments')).json(), []);
  });

  it('fail-unknown enrollment 404', async () => {
    problem(await call('admin', 'POST', '/api/v1/enrollments/00000000-0000-0000-0000-000000000000/approve'), 404, 'not_found');
  });
});

describe('OpenAPI', () => {
  it('lists every registry route', async () => {
    const doc = (await app.inject({ url: '/api/v1/openapi.json' })).json();
    const expected: Array<[string, string]> = [
      ['/api/v1/devices', 'get'],
      ['/api/v1/devices', 'post'],
      ['/api/v1/devices/import', 'post'],
      ['/api/v1/devices/{id}', 'get'],
      ['/api/v1/devices/{id}', 'patch'],
      ['/api/v1/devices/{id}/secret', 'post'],
      ['/api/v1/trust/manufacturers', 'get'],
      ['/api/v1/trust/manufacturers', 'post'],
      ['/api/v1/trust/manufacturers/{fingerprint}', 'delete'],
      ['/api/v1/orders', 'get'],
      ['/api/v1/orders', 'post'],
      ['/api/v1/enrollments', 'get'],
      ['/api/v1/enrollments/{id}/approve', 'post'],
      ['/api/v1/enrollments/{id}/reject', 'post'],
    ];
    for (const [path, method] of expected) assert.ok(doc.paths[path]?.[method], `OpenAPI lists ${method.toUpperCase()} ${path}`);
    assert.ok(doc.paths['/api/v1/devices'].post.requestBody, 'the register body is described');
    assert.ok(doc.paths['/api/v1/devices'].post.responses['201'], 'and its answer');
  });
});
