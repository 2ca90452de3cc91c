/**
 * The web console's server side (issue 10) with fastify inject: security
 * headers and CSP, the session cookie, CSRF on state-changing requests,
 * bearer tokens unchanged, session expiry, and the aggregate API routes.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../../src/clock.js';
import { CONTENT_SECURITY_POLICY } from '../../src/console/plugin.js';
import { ConsoleSessions, readCookie, SESSION_COOKIE } from '../../src/console/sessions.js';
import { bucket } from '../../src/protocols/api/overview_routes.js';
import { openContext } from '../../src/server/context.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { KyselyStore } from '../../src/store/kysely_store.js';
import { makeDataDir, opensslCsr, tempDir, type TestDataDir } from '../helpers/data_dir.js';

class StepClock implements Clock {
  offset = 0;
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
}

let d: TestDataDir;
let app: FastifyInstance;
let assets: string;
const clock = new StepClock();
const tokens: Record<string, string> = {};

/** A built console stand-in: the real build is exercised by test/interop/console_chromium.test.ts. */
function fakeAssets(): string {
  const dir = tempDir('fleetpki-console-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><html lang="en"><head><script type="module" src="/console/assets/index-abc.js"></script></head><body><div id="app"></div></body></html>');
  writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
  return dir;
}

async function signIn(role: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await app.inject({ method: 'POST', url: '/console/session', payload: { token: tokens[role] } });
  assert.equal(res.statusCode, 200, res.body);
  const setCookie = String(res.headers['set-cookie']);
  const id = readCookie(setCookie.split(';')[0], SESSION_COOKIE)!;
  return { cookie: `${SESSION_COOKIE}=${id}`, csrf: res.json().csrf, setCookie };
}

const deviceCount = async () => (await d.ctx.store.listDevices({ limit: 1000 })).length;

before(async () => {
  d = await makeDataDir();
  assets = fakeAssets();
  app = await buildHttpsApp(d.ctx, { consoleDir: assets, sessions: new ConsoleSessions(d.ctx.store, d.ctx.operators, clock, { idleMinutes: 30, maxHours: 8 }) });
  tokens.admin = d.adminToken;
  for (const role of ['ra-officer', 'auditor']) tokens[role] = (await d.ctx.operators.createToken({ name: role, role, actor: 'test' })).token;
});

after(async () => {
  await app.close();
  await d.cleanup();
});

describe('console: pages and security headers', () => {
  for (const url of ['/console/', '/console/assets/index-abc.js']) {
    it(`ok ${url}: strict CSP, no framing, nosniff`, async () => {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 200);
      const csp = String(res.headers['content-security-policy']);
      assert.equal(csp, CONTENT_SECURITY_POLICY);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    });
  }

  it('ok /console redirects to /console/', async () => {
    const res = await app.inject({ url: '/console' });
    assert.equal(res.statusCode, 301);
    assert.equal(res.headers.location, '/console/');
  });

  for (const url of ['/console/assets/..%2f..%2findex.html', '/console/assets/.hidden', '/console/assets/missing.js']) {
    it(`fail ${url}: 404`, async () => {
      assert.equal((await app.inject({ url })).statusCode, 404);
    });
  }

  it('ok the API is not under the console headers (its own answers unchanged)', async () => {
    const res = await app.inject({ url: '/api/v1/cas', headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-security-policy'], undefined);
  });
});

describe('console: sign-in and session cookie', () => {
  it('fail a wrong token: 401, no cookie', async () => {
    const res = await app.inject({ method: 'POST', url: '/console/session', payload: { token: 'fpk_wrong' } });
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['set-cookie'], undefined);
  });

  it('ok sign-in: HttpOnly, Secure, SameSite=Strict cookie, CSRF token, role and permissions', async () => {
    const res = await app.inject({ method: 'POST', url: '/console/session', payload: { token: tokens['ra-officer'] } });
    assert.equal(res.statusCode, 200);
    const c = String(res.headers['set-cookie']);
    for (const attr of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) assert.ok(c.split('; ').includes(attr), `${attr} in ${c}`);
    assert.ok(!c.includes(tokens['ra-officer']), 'the cookie is a session id, not the token');
    const body = res.json();
    assert.equal(body.operator.role, 'ra-officer');
    assert.ok(body.operator.permissions.includes('device:register'));
    assert.ok(!body.operator.permissions.includes('token:admin'));
    assert.ok(body.csrf.length >= 40);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  it('fail sign-in from another site (login CSRF): 403 by Origin, 415 for a form post', async () => {
    const cross = await app.inject({ method: 'POST', url: '/console/session', headers: { origin: 'https://evil.example', host: 'pki.example:8443' }, payload: { token: tokens.admin } });
    assert.equal(cross.statusCode, 403);
    assert.equal(cross.headers['set-cookie'], undefined);
    const form = await app.inject({ method: 'POST', url: '/console/session', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${tokens.admin}` });
    assert.equal(form.statusCode, 415);
    assert.equal(form.headers['set-cookie'], undefined);
  });

  it('ok GET /console/session answers the same operator and CSRF token', async () => {
    const s = await signIn('auditor');
    const res = await app.inject({ url: '/console/session', headers: { cookie: s.cookie } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().csrf, s.csrf);
    assert.equal(res.json().operator.name, 'auditor');
  });

  it('fail a forged session id: 401', async () => {
    const res = await app.inject({ url: '/api/v1/cas', headers: { cookie: `${SESSION_COOKIE}=forged` } });
    assert.equal(res.statusCode, 401);
  });
});

describe('console: CSRF on state-changing requests', () => {
  const body = (id: string) => ({ id, profile: 'device-tls' });
  const cases: Array<{ name: string; role: string; headers: (s: { cookie: string; csrf: string }) => Record<string, string>; status: number; code?: string }> = [
    { name: 'fail-no-csrf-header', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie }), status: 403, code: 'forbidden' },
    { name: 'fail-wrong-csrf', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': `${s.csrf.slice(0, -2)}xx` }), status: 403, code: 'forbidden' },
    { name: 'fail-cross-origin', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'https://evil.example', host: 'pki.example:8443' }), status: 403, code: 'forbidden' },
    { name: 'fail-null-origin', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'null', host: 'pki.example:8443' }), status: 403, code: 'forbidden' },
    { name: 'fail-role-auditor', role: 'auditor', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': s.csrf }), status: 403, code: 'forbidden' },
    { name: 'ok-same-origin', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'https://pki.example:8443', host: 'pki.example:8443' }), status: 201 },
    { name: 'ok-no-origin-header', role: 'ra-officer', headers: (s) => ({ cookie: s.cookie, 'x-csrf-token': s.csrf }), status: 201 },
  ];
  for (const [i, c] of cases.entries()) {
    it(c.name, async () => {
      const s = await signIn(c.role);
      const before = await deviceCount();
      const res = await app.inject({ method: 'POST', url: '/api/v1/devices', headers: c.headers(s), payload: body(`csrf-${i}`) });
      assert.equal(res.statusCode, c.status, res.body);
      if (c.code) {
        assert.equal(res.json().code, c.code);
        assert.equal(await deviceCount(), before, 'a refused request changes nothing');
      } else {
        assert.equal((await d.ctx.store.listAudit({ target: `csrf-${i}` }))[0].actor, 'token:ra-officer');
      }
    });
  }

  it('ok a GET with the session needs no CSRF token', async () => {
    const s = await signIn('auditor');
    const res = await app.inject({ url: '/api/v1/devices', headers: { cookie: s.cookie } });
    assert.equal(res.statusCode, 200);
  });

  it('ok bearer tokens work as before: no cookie, no CSRF token', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/devices', headers: { authorization: `Bearer ${tokens['ra-officer']}` }, payload: body('bearer-1') });
    assert.equal(res.statusCode, 201, res.body);
  });

  it('ok an Authorization header wins over a session cookie (a bad bearer is refused even with a good session)', async () => {
    const s = await signIn('admin');
    const res = await app.inject({ url: '/api/v1/devices', headers: { cookie: s.cookie, authorization: 'Bearer fpk_wrong' } });
    assert.equal(res.statusCode, 401);
  });
});

describe('console: the session ends', () => {
  it('ok sign-out needs the CSRF token, clears the cookie and ends the session', async () => {
    const s = await signIn('admin');
    assert.equal((await app.inject({ method: 'DELETE', url: '/console/session', headers: { cookie: s.cookie } })).statusCode, 403);
    const out = await app.inject({ method: 'DELETE', url: '/console/session', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers['set-cookie']), new RegExp(`^${SESSION_COOKIE}=; .*Max-Age=0`));
    assert.equal((await app.inject({ url: '/console/session', headers: { cookie: s.cookie } })).statusCode, 401);
  });

  it('ok revoking the token ends its sessions at once', async () => {
    const { token, record } = await d.ctx.operators.createToken({ name: 'short', role: 'auditor', actor: 'test' });
    tokens.short = token;
    const s = await signIn('short');
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } })).statusCode, 200);
    await d.ctx.operators.revokeToken(record.id, 'test');
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } })).statusCode, 401);
  });

  it('ok idle for 30 minutes: the session ends; a request before keeps it alive', async () => {
    const s = await signIn('auditor');
    clock.offset += 29 * 60_000;
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } })).statusCode, 200);
    clock.offset += 29 * 60_000;
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } })).statusCode, 200);
    clock.offset += 30 * 60_000;
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } })).statusCode, 401);
  });

  it('ok after 8 hours the session ends however busy', async () => {
    const s = await signIn('auditor');
    for (let i = 0; i < 17; i++) {
      clock.offset += 29 * 60_000;
      const res = await app.inject({ url: '/api/v1/cas', headers: { cookie: s.cookie } });
      assert.equal(res.statusCode, i < 16 ? 200 : 401, `after ${(i + 1) * 29} minutes`);
    }
  });
});

describe('console: sessions shared by every node (the store holds them)', () => {
  it('ok signed in on one node, served by another; signed out there, ended on the first; the store keeps only hashes', async () => {
    const other = await openContext(d.dir);
    const nodeB = await buildHttpsApp(other, { consoleDir: assets, sessions: new ConsoleSessions(other.store, other.operators, clock, { idleMinutes: 30, maxHours: 8 }) });
    try {
      const s = await signIn('ra-officer');
      const viaB = await nodeB.inject({ url: '/console/session', headers: { cookie: s.cookie } });
      assert.equal(viaB.statusCode, 200, viaB.body);
      assert.equal(viaB.json().csrf, s.csrf, 'the same CSRF token on every node');
      const reg = await nodeB.inject({ method: 'POST', url: '/api/v1/devices', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, payload: { id: 'node-b-1', profile: 'device-tls' } });
      assert.equal(reg.statusCode, 201, reg.body);

      const rows = await (d.ctx.store as KyselyStore).db.selectFrom('console_sessions').selectAll().execute();
      const dump = JSON.stringify(rows);
      assert.ok(rows.length >= 1);
      assert.ok(!dump.includes(s.cookie.split('=')[1]) && !dump.includes(tokens['ra-officer']) && !dump.includes(s.csrf), 'no session id, token or CSRF token in the store');

      assert.equal((await nodeB.inject({ method: 'DELETE', url: '/console/session', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).statusCode, 204);
      assert.equal((await app.inject({ url: '/console/session', headers: { cookie: s.cookie } })).statusCode, 401);
    } finally {
      await nodeB.close();
      await other.close();
    }
  });

  it('fail an overlong or garbage session cookie: 401, nothing written', async () => {
    const sessionRows = async () => (await (d.ctx.store as KyselyStore).db.selectFrom('console_sessions').selectAll().execute()).map((r) => `${r.id_hash}:${r.last_seen}`).sort();
    const before = await sessionRows();
    for (const v of ['x'.repeat(5000), '%00%ff', '']) {
      assert.equal((await app.inject({ url: '/console/session', headers: { cookie: `${SESSION_COOKIE}=${v}` } })).statusCode, 401);
      assert.equal((await app.inject({ method: 'POST', url: '/api/v1/devices', headers: { cookie: `${SESSION_COOKIE}=${v}`, 'x-csrf-token': 'x' }, payload: { id: 'never', profile: 'device-tls' } })).statusCode, 401);
    }
    assert.deepEqual(await sessionRows(), before);
    assert.equal(await d.ctx.store.getDevice('never'), undefined);
  });
});

describe('console: aggregate API routes', () => {
  let serial: string;
  before(async () => {
    await d.ctx.registry.register({ id: 'agg-1', profile: 'device-tls', domain: 'plant-a' }, 'test', false);
    const csr = opensslCsr(tempDir(), 'agg-1', { subj: '/CN=agg-1', san: 'DNS:agg-1.example' });
    const res = await app.inject({ method: 'POST', url: '/api/v1/certificates', headers: { authorization: `Bearer ${tokens.admin}` }, payload: { csr: csr.csrPem, profile: 'device-tls' } });
    assert.equal(res.statusCode, 201, res.body);
    serial = res.json().serial;
  });

  it('ok overview: devices per state, 12 weeks, 30 days, CAs', async () => {
    const res = await app.inject({ url: '/api/v1/overview', headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 200, res.body);
    const o = res.json();
    assert.ok(o.devices.registered >= 1);
    assert.equal(o.expiringPerWeek.length, 12);
    assert.equal(o.enrollmentsPerDay.length, 30);
    assert.deepEqual(o.cas.map((c: { name: string }) => c.name).sort(), ['issuing', 'root']);
  });

  it('fail overview for a role without device:read (firmware-signer)', async () => {
    const { token } = await d.ctx.operators.createToken({ name: 'fw', role: 'firmware-signer', actor: 'test' });
    const res = await app.inject({ url: '/api/v1/overview', headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.statusCode, 403);
  });

  it('ok audit verify: the chain is intact', async () => {
    const res = await app.inject({ url: '/api/v1/audit/verify', headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().ok, true);
    assert.ok(res.json().entries > 5);
  });

  it('fail audit verify for ra-officer (no audit:read)', async () => {
    assert.equal((await app.inject({ url: '/api/v1/audit/verify', headers: { authorization: `Bearer ${tokens['ra-officer']}` } })).statusCode, 403);
  });

  it('ok decoded certificate: every extension by name', async () => {
    const res = await app.inject({ url: `/api/v1/certificates/${serial}/decoded`, headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 200, res.body);
    const names = res.json().extensions.map((e: { name: string }) => e.name);
    for (const n of ['Subject Alternative Name', 'Key Usages', 'Basic Constraints', 'Authority Key Identifier']) assert.ok(names.includes(n), `${n} in ${names}`);
    assert.match(res.json().text, /DNS: agg-1\.example/);
    assert.deepEqual(res.json().extensions.find((e: { name: string }) => e.name === 'Basic Constraints').lines, ['CA: false']);
  });

  it('ok device audit trail: its registration', async () => {
    const res = await app.inject({ url: '/api/v1/devices/agg-1/audit', headers: { authorization: `Bearer ${tokens['ra-officer']}` } });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().map((e: { action: string }) => e.action), ['device.register']);
  });

  it('ok CRL health lists the published CRLs with their status', async () => {
    await d.ctx.crls.publish('issuing', 'base', { actor: 'test' });
    const res = await app.inject({ url: '/api/v1/crls', headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 200);
    const crl = res.json().find((c: { ca: string }) => c.ca === 'issuing');
    assert.equal(crl.status, 'current');
  });

  it('fail out-of-range or malformed overview windows → 400', async () => {
    for (const q of ['weeks=0', 'weeks=105', 'days=0', 'days=367', 'days=many', 'extra=1']) {
      const res = await app.inject({ url: `/api/v1/overview?${q}`, headers: { authorization: `Bearer ${tokens.auditor}` } });
      assert.equal(res.statusCode, 400, `${q}: ${res.body}`);
    }
  });

  it('fail decoded view of an unknown serial → 404, of a malformed one → 400', async () => {
    const get = (s: string) => app.inject({ url: `/api/v1/certificates/${s}/decoded`, headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal((await get('7f'.repeat(16))).statusCode, 404);
    assert.equal((await get('not-hex')).statusCode, 400);
  });

  it('fail the audit trail of an unknown device → 404', async () => {
    const res = await app.inject({ url: '/api/v1/devices/no-such-device/audit', headers: { authorization: `Bearer ${tokens.auditor}` } });
    assert.equal(res.statusCode, 404, res.body);
  });

  it('fail audit verify reports an entry edited in the database (and intact again once restored)', async () => {
    assert.ok(d.ctx.store instanceof KyselyStore);
    const db = d.ctx.store.db;
    const entry = await db.selectFrom('audit_log').selectAll().where('action', '=', 'device.register').where('target', '=', 'agg-1').executeTakeFirstOrThrow();
    const verify = async () => (await app.inject({ url: '/api/v1/audit/verify', headers: { authorization: `Bearer ${tokens.auditor}` } })).json();
    try {
      await db.updateTable('audit_log').set({ actor: 'someone-else' }).where('seq', '=', entry.seq).execute();
      const broken = await verify();
      assert.equal(broken.ok, false);
      assert.equal(Number(broken.brokenAt), Number(entry.seq));
    } finally {
      await db.updateTable('audit_log').set({ actor: entry.actor }).where('seq', '=', entry.seq).execute();
    }
    assert.equal((await verify()).ok, true);
  });

  it('ok the new routes are in the OpenAPI document', async () => {
    const paths = Object.keys((await app.inject({ url: '/api/v1/openapi.json' })).json().paths);
    for (const p of ['/api/v1/overview', '/api/v1/crls', '/api/v1/audit/verify', '/api/v1/devices/{id}/audit', '/api/v1/certificates/{serial}/decoded']) assert.ok(paths.includes(p), p);
  });
});

describe('console: helpers', () => {
  const cookies: Array<[string, string | undefined]> = [
    ['a=1; fleetpki_session=abc; b=2', 'abc'],
    ['fleetpki_session=abc', 'abc'],
    ['xfleetpki_session=abc', undefined],
    ['', undefined],
  ];
  for (const [header, want] of cookies) {
    it(`readCookie ${JSON.stringify(header)}`, () => assert.equal(readCookie(header, SESSION_COOKIE), want));
  }

  it('bucket sums days into weeks and keeps empty ones', () => {
    const DAY = 86_400_000;
    const out = bucket([{ day: 0, count: 2 }, { day: 6 * DAY, count: 1 }, { day: 7 * DAY, count: 4 }, { day: 30 * DAY, count: 9 }], 0, 7, 3);
    assert.deepEqual(out.map((b) => b.count), [3, 4, 0]);
  });
});
