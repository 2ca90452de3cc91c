/**
 * Lifecycle events, transfer, the inbound webhook and the expiry report
 * (issue 8) through the admin API with app.inject: each event's state and
 * revocation reason, the device history and its audit entries, refusals
 * that change nothing, HMAC-signed deliveries with replay protection.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { FakeClock } from '../../src/clock.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { makeDataDir, opensslCsr, tempDir, type TestDataDir } from '../helpers/data_dir.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
const DAY = 86_400_000;
let d: TestDataDir;
let app: FastifyInstance;
let work: string;
let officer = '';
let auditor = '';

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const call = (token: string | undefined, method: Method, url: string, payload?: unknown) =>
  app.inject({ method, url, headers: token ? { authorization: `Bearer ${token}` } : {}, payload: payload as object | undefined });

/** Registers a device and enrolls it with a one-time secret; returns its certificate serial. */
async function enrolled(id: string, extra: { domain?: string; owner?: string } = {}): Promise<string> {
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls', ...extra }, 'test', true);
  const r = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: secret! }, csr: opensslCsr(work, `${id}-${Date.now()}`).csrPem, via: 'test' });
  assert.ok(r.status === 'issued');
  return r.result.record.serial;
}

async function head(): Promise<number> {
  return d.ctx.store.lastAuditSeq();
}

/** Asserts a refusal that wrote nothing: no audit entry, the device and its certificates as before. */
async function refusedUnchanged(id: string, run: () => Promise<{ statusCode: number; body: string }>, status: number, code: string): Promise<void> {
  const seq = await head();
  const before = await d.ctx.store.getDevice(id);
  const certs = before ? await d.ctx.store.listCertificates({ deviceId: id }) : [];
  const res = await run();
  assert.equal(res.statusCode, status, res.body);
  assert.equal(JSON.parse(res.body).code, code, res.body);
  assert.equal(await head(), seq, 'no audit entry');
  assert.deepEqual(await d.ctx.store.getDevice(id), before);
  assert.deepEqual(await d.ctx.store.listCertificates({ deviceId: id }), certs);
}

before(async () => {
  d = await makeDataDir({ clock });
  app = await buildHttpsApp(d.ctx);
  work = tempDir('fleetpki-lifecycle-');
  officer = (await d.ctx.operators.createToken({ name: 'olga', role: 'ra-officer', actor: 'test' })).token;
  auditor = (await d.ctx.operators.createToken({ name: 'aud', role: 'auditor', actor: 'test' })).token;
});

after(async () => {
  await app.close();
  await d.cleanup();
  spawnSync('rm', ['-rf', work]);
});

describe('POST /api/v1/devices/{id}/events', () => {
  const cases: Array<{ title: string; event: string; body?: Record<string, unknown>; state: string; reason: string }> = [
    { title: 'ok-lost → suspended, certificateHold', event: 'lost', state: 'suspended', reason: 'certificateHold' },
    { title: 'ok-stolen with keyCompromise → revoked', event: 'stolen', body: { reason: 'keyCompromise' }, state: 'revoked', reason: 'keyCompromise' },
    { title: 'ok-compromised → revoked, keyCompromise', event: 'compromised', state: 'revoked', reason: 'keyCompromise' },
    { title: 'ok-decommissioned → retired, cessationOfOperation', event: 'decommissioned', state: 'retired', reason: 'cessationOfOperation' },
    { title: 'ok-retired → retired, cessationOfOperation', event: 'retired', state: 'retired', reason: 'cessationOfOperation' },
    { title: 'ok-replaced → retired, superseded', event: 'replaced', body: { replacedBy: 'ev-new-unit' }, state: 'retired', reason: 'superseded' },
  ];
  for (const [i, c] of cases.entries()) {
    it(c.title, async () => {
      const id = `ev-${i}`;
      const serial = await enrolled(id);
      const seq = await head();
      const res = await call(officer, 'POST', `/api/v1/devices/${id}/events`, { event: c.event, note: 'reported by phone', ...c.body });
      assert.equal(res.statusCode, 201, res.body);
      const b = res.json();
      assert.equal(b.device.state, c.state);
      assert.equal(b.event.kind, c.event);
      assert.equal(b.event.reason, c.reason);
      assert.deepEqual(b.event.revokedSerials, [serial]);
      assert.equal(b.event.actor, 'token:olga');
      assert.equal(b.event.source, 'api');
      assert.equal(b.event.details.note, 'reported by phone');
      const cert = await d.ctx.store.getCertificate(serial);
      assert.equal(cert?.status, 'revoked');
      assert.equal(cert?.revocation?.reason, c.reason);
      // One audit entry names the operator, the event and the revoked certificate.
      const entries = await d.ctx.store.listAudit({ afterSeq: seq });
      assert.equal(entries.length, 1);
      assert.equal(entries[0].actor, 'token:olga');
      assert.equal(entries[0].action, `device.event.${c.event}`);
      assert.equal(entries[0].target, id);
      assert.deepEqual(entries[0].details.revoked, [serial]);
      // The history, in the events route and in the device view.
      const hist = (await call(auditor, 'GET', `/api/v1/devices/${id}/events`)).json();
      assert.deepEqual(hist.map((e: { kind: string }) => e.kind), [c.event]);
      const view = (await call(auditor, 'GET', `/api/v1/devices/${id}`)).json();
      assert.equal(view.events.length, 1);
      assert.equal(view.certificates[0].revocationReason, c.reason);
    });
  }

  it('ok-compromised keeps the invalidity date given', async () => {
    const serial = await enrolled('ev-inv');
    const inv = new Date(clock.now().getTime() - 3 * DAY).toISOString();
    const res = await call(officer, 'POST', '/api/v1/devices/ev-inv/events', { event: 'compromised', invalidityDate: inv });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await d.ctx.store.getCertificate(serial))?.revocation?.invalidityDate?.toISOString(), inv);
  });

  it('ok-compromised without a date: the invalidity date is now', async () => {
    const serial = await enrolled('ev-inv-now');
    await call(officer, 'POST', '/api/v1/devices/ev-inv-now/events', { event: 'compromised' });
    assert.equal((await d.ctx.store.getCertificate(serial))?.revocation?.invalidityDate?.toISOString(), clock.now().toISOString());
  });

  it('ok-lost then compromised: the hold becomes keyCompromise; the history has both', async () => {
    const serial = await enrolled('ev-hold');
    assert.equal((await call(officer, 'POST', '/api/v1/devices/ev-hold/events', { event: 'lost' })).statusCode, 201);
    const res = await call(officer, 'POST', '/api/v1/devices/ev-hold/events', { event: 'compromised' });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().event.revokedSerials, [serial]);
    assert.equal((await d.ctx.store.getCertificate(serial))?.revocation?.reason, 'keyCompromise');
    assert.deepEqual((await d.ctx.lifecycle.history('ev-hold')).map((e) => `${e.kind}:${e.fromState}>${e.toState}`), ['lost:active>suspended', 'compromised:suspended>revoked']);
  });

  it('ok-a retired device never enrolls again and gets no new secret', async () => {
    await enrolled('ev-ret');
    await call(officer, 'POST', '/api/v1/devices/ev-ret/events', { event: 'retired' });
    await assert.rejects(d.ctx.registry.newSecret('ev-ret', 'test'), (e: Error & { code?: string }) => e.code === 'forbidden');
    assert.equal((await call(officer, 'POST', '/api/v1/devices/ev-ret/secret')).statusCode, 403);
    assert.equal((await call(officer, 'PATCH', '/api/v1/devices/ev-ret', { state: 'registered' })).statusCode, 409);
  });

  it('ok-an event on a device that never enrolled revokes nothing and is recorded', async () => {
    await d.ctx.registry.register({ id: 'ev-none', profile: 'device-tls' }, 'test');
    const res = await call(officer, 'POST', '/api/v1/devices/ev-none/events', { event: 'decommissioned' });
    assert.equal(res.statusCode, 201, res.body);
    assert.deepEqual(res.json().event.revokedSerials, []);
    assert.equal(res.json().device.state, 'retired');
  });

  describe('refusals change nothing', () => {
    before(async () => {
      await enrolled('ev-keep');
      await enrolled('ev-final');
      await call(officer, 'POST', '/api/v1/devices/ev-final/events', { event: 'retired' });
    });
    const fails: Array<{ title: string; id: string; token?: 'officer' | 'auditor' | 'none'; body: unknown; status: number; code: string }> = [
      { title: 'fail-unknown event → 400', id: 'ev-keep', body: { event: 'exploded' }, status: 400, code: 'bad_request' },
      { title: 'fail-compromised with certificateHold → 400', id: 'ev-keep', body: { event: 'compromised', reason: 'certificateHold' }, status: 400, code: 'bad_request' },
      { title: 'fail-an invalidity date with a hold → 400', id: 'ev-keep', body: { event: 'lost', invalidityDate: '2029-01-01T00:00:00Z' }, status: 400, code: 'bad_request' },
      { title: 'fail-invalidity date in the future → 400', id: 'ev-keep', body: { event: 'compromised', invalidityDate: '2031-01-01T00:00:00Z' }, status: 400, code: 'bad_request' },
      { title: 'fail-replacedBy on a lost event → 400', id: 'ev-keep', body: { event: 'lost', replacedBy: 'x' }, status: 400, code: 'bad_request' },
      { title: 'fail-unknown field → 400', id: 'ev-keep', body: { event: 'lost', colour: 'red' }, status: 400, code: 'bad_request' },
      { title: 'fail-unknown device → 404', id: 'ev-ghost', body: { event: 'lost' }, status: 404, code: 'not_found' },
      { title: 'fail-a retired device cannot be lost → 409', id: 'ev-final', body: { event: 'lost' }, status: 409, code: 'conflict' },
      { title: 'fail-auditor → 403', id: 'ev-keep', token: 'auditor', body: { event: 'lost' }, status: 403, code: 'forbidden' },
      { title: 'fail-no token → 401', id: 'ev-keep', token: 'none', body: { event: 'lost' }, status: 401, code: 'unauthorized' },
    ];
    for (const f of fails) {
      it(f.title, async () => {
        const token = f.token === 'auditor' ? auditor : f.token === 'none' ? undefined : officer;
        await refusedUnchanged(f.id, () => call(token, 'POST', `/api/v1/devices/${f.id}/events`, f.body), f.status, f.code);
      });
    }
  });
});

describe('POST /api/v1/devices/{id}/transfer', () => {
  it('ok-revokes with affiliationChanged, changes owner and domain, and the device re-enrolls with the new secret', async () => {
    const old = await enrolled('tr-1', { domain: 'plant-a', owner: 'Acme' });
    const seq = await head();
    const res = await call(officer, 'POST', '/api/v1/devices/tr-1/transfer', { owner: 'Globex', domain: 'plant-b', secret: true, note: 'sold' });
    assert.equal(res.statusCode, 200, res.body);
    const b = res.json();
    assert.equal(b.device.state, 'registered');
    assert.equal(b.device.owner, 'Globex');
    assert.equal(b.device.domain, 'plant-b');
    assert.equal(b.device.currentSerial, null);
    assert.deepEqual(b.event.revokedSerials, [old]);
    assert.equal(b.event.reason, 'affiliationChanged');
    assert.equal(b.event.details.fromOwner, 'Acme');
    assert.equal(b.event.details.toDomain, 'plant-b');
    assert.match(b.secret, /^[A-Za-z0-9_-]{24}$/);
    assert.equal((await d.ctx.store.getCertificate(old))?.revocation?.reason, 'affiliationChanged');
    const actions = (await d.ctx.store.listAudit({ afterSeq: seq })).map((e) => `${e.actor} ${e.action}`);
    assert.deepEqual(actions, ['token:olga device.transfer', 'token:olga device.secret.create']);
    const r = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'tr-1', secret: b.secret }, csr: opensslCsr(work, 'tr-1-new').csrPem, via: 'test' });
    assert.ok(r.status === 'issued');
    assert.ok(r.result.record.sans.includes('uri:urn:fleetpki:domain:plant-b'), r.result.record.sans.join());
    assert.equal((await d.ctx.store.getDevice('tr-1'))?.currentSerial, r.result.record.serial);
    assert.deepEqual((await d.ctx.lifecycle.history('tr-1')).map((e) => e.kind), ['transferred']);
  });

  it('ok-a suspended device on hold: the hold becomes affiliationChanged', async () => {
    const serial = await enrolled('tr-hold');
    await call(officer, 'POST', '/api/v1/devices/tr-hold/events', { event: 'lost' });
    const res = await call(officer, 'POST', '/api/v1/devices/tr-hold/transfer', { owner: 'Found Ltd' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal((await d.ctx.store.getCertificate(serial))?.revocation?.reason, 'affiliationChanged');
  });

  it('fail-a retired device → 409, nothing changes', async () => {
    await enrolled('tr-ret');
    await call(officer, 'POST', '/api/v1/devices/tr-ret/events', { event: 'retired' });
    await refusedUnchanged('tr-ret', () => call(officer, 'POST', '/api/v1/devices/tr-ret/transfer', { owner: 'x' }), 409, 'conflict');
  });

  it('fail-a bad domain or an unknown profile → 400/404, nothing changes', async () => {
    await enrolled('tr-bad');
    await refusedUnchanged('tr-bad', () => call(officer, 'POST', '/api/v1/devices/tr-bad/transfer', { domain: 'Not A Domain' }), 400, 'bad_request');
    await refusedUnchanged('tr-bad', () => call(officer, 'POST', '/api/v1/devices/tr-bad/transfer', { profile: 'no-such-profile' }), 404, 'not_found');
    await refusedUnchanged('tr-bad', () => call(officer, 'POST', '/api/v1/devices/tr-bad/transfer', {}), 400, 'bad_request');
  });
});

describe('POST /api/v1/hooks/lifecycle (HMAC-signed webhook)', () => {
  let secret = '';
  const deliver = (body: string, o: { sig?: string; source?: string; type?: string } = {}) =>
    app.inject({
      method: 'POST',
      url: '/api/v1/hooks/lifecycle',
      headers: { 'content-type': o.type ?? 'application/json', 'x-fleetpki-source': o.source ?? 'crm', 'x-fleetpki-signature': o.sig ?? `sha256=${createHmac('sha256', secret).update(body).digest('hex')}` },
      payload: body,
    });
  const doc = (over: Record<string, unknown> = {}) => JSON.stringify({ id: `dlv-${Math.random().toString(36).slice(2)}`, timestamp: Math.floor(clock.now().getTime() / 1000), device: 'wh-1', event: 'lost', ...over });

  before(async () => {
    const res = await call(d.adminToken, 'POST', '/api/v1/webhooks', { name: 'crm', direction: 'inbound' });
    assert.equal(res.statusCode, 201, res.body);
    secret = res.json().secret;
    await enrolled('wh-1');
    await enrolled('wh-2');
  });

  it('fail-a wrong signature, unknown source, a body not signed as sent → 401, nothing changes', async () => {
    const body = doc();
    await refusedUnchanged('wh-1', () => deliver(body, { sig: `sha256=${'0'.repeat(64)}` }), 401, 'unauthorized');
    await refusedUnchanged('wh-1', () => deliver(body, { sig: 'not-a-signature' }), 401, 'unauthorized');
    await refusedUnchanged('wh-1', () => deliver(body, { source: 'other' }), 401, 'unauthorized');
    const sig = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
    await refusedUnchanged('wh-1', () => deliver(body.replace('"lost"', '"retired"'), { sig }), 401, 'unauthorized');
  });

  it('fail-a timestamp older than the tolerance → 401, nothing changes', async () => {
    const old = Math.floor(clock.now().getTime() / 1000) - 301;
    await refusedUnchanged('wh-1', () => deliver(doc({ timestamp: old })), 401, 'unauthorized');
  });

  it('fail-malformed documents → 400, nothing changes', async () => {
    await refusedUnchanged('wh-1', () => deliver(doc({ extra: 1 })), 400, 'bad_request');
    await refusedUnchanged('wh-1', () => deliver(doc({ id: 'bad id with spaces' })), 400, 'bad_request');
    await refusedUnchanged('wh-1', () => deliver(doc({ event: 'exploded' })), 400, 'bad_request');
    await refusedUnchanged('wh-1', () => deliver('[1,2]'), 400, 'bad_request');
  });

  it('fail-an oversized body → 413, nothing changes', async () => {
    await refusedUnchanged('wh-1', () => deliver(doc({ note: 'x'.repeat(20_000) })), 413, 'payload_too_large');
  });

  it('ok-a signed delivery applies the event as hook:crm; its replay → 409 and changes nothing', async () => {
    const body = doc({ device: 'wh-2', event: 'stolen', reason: 'keyCompromise', note: 'CRM ticket 42' });
    const res = await deliver(body);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().state, 'revoked');
    const [e] = await d.ctx.lifecycle.history('wh-2');
    assert.equal(e.actor, 'hook:crm');
    assert.equal(e.source, 'webhook');
    assert.equal(e.reason, 'keyCompromise');
    assert.equal(e.details.deliveryId, JSON.parse(body).id);
    await refusedUnchanged('wh-2', () => deliver(body), 409, 'conflict');
  });

  it('ok-the same delivery id from another source is another delivery; the webhook list never shows secrets', async () => {
    const list = await call(d.adminToken, 'GET', '/api/v1/webhooks');
    assert.equal(list.statusCode, 200);
    assert.ok(!list.body.includes(secret));
    assert.equal((await call(officer, 'GET', '/api/v1/webhooks')).statusCode, 403);
  });
});

describe('GET /api/v1/reports/expiring', () => {
  it('ok-certificates expiring within N days and devices that stopped renewing', async () => {
    const start = clock.now();
    const serial = await enrolled('ex-1');
    // device-tls certificates live 365 days: at day 250 it is past its renewal point (2/3), within 120 days of expiry.
    clock.advance(250 * DAY);
    try {
      const r = await call(auditor, 'GET', '/api/v1/reports/expiring?days=120');
      assert.equal(r.statusCode, 200, r.body);
      const b = r.json();
      assert.ok(b.expiring.some((c: { serial: string; deviceId: string }) => c.serial === serial && c.deviceId === 'ex-1'));
      const stale = b.staleDevices.find((s: { id: string }) => s.id === 'ex-1');
      assert.equal(stale?.status, 'overdue');
      assert.ok(Date.parse(stale.renewBy) < clock.now().getTime());
      const near = (await call(auditor, 'GET', '/api/v1/reports/expiring?days=10')).json();
      assert.ok(!near.expiring.some((c: { serial: string }) => c.serial === serial));
      clock.advance(200 * DAY);
      const late = (await call(auditor, 'GET', '/api/v1/reports/expiring?days=0')).json();
      assert.ok(late.expired.some((c: { serial: string }) => c.serial === serial));
      assert.equal(late.staleDevices.find((s: { id: string }) => s.id === 'ex-1')?.status, 'expired');
    } finally {
      clock.set(start);
    }
  });

  it('fail-days out of range → 400', async () => {
    assert.equal((await call(auditor, 'GET', '/api/v1/reports/expiring?days=-1')).statusCode, 400);
    assert.equal((await call(auditor, 'GET', '/api/v1/reports/expiring?days=99999')).statusCode, 400);
    assert.equal((await call(undefined, 'GET', '/api/v1/reports/expiring')).statusCode, 401);
  });
});
