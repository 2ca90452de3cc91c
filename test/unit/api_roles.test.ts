/**
 * Every route of the HTTPS listener is checked against a role (issue 8).
 * The routes are enumerated from Fastify as they are added, so a new route
 * is covered the day it is written: under /api/v1 it must carry a guard
 * with a permission (or be one of the few routes listed here that
 * authenticate otherwise), and for each one every role lacking that
 * permission is refused with 403, and no credential with 401, before the
 * body is read. Outside /api/v1 only the device protocols (EST, CMP) and
 * the health check may exist.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { FakeClock } from '../../src/clock.js';
import { LIFECYCLE_HOOK_PATH } from '../../src/protocols/api/lifecycle_routes.js';
import { PERMISSIONS, roleAllows, type Permission } from '../../src/registry/operators.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { ROLES, type Role } from '../../src/store/store.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';

/** /api/v1 routes that do not take an operator credential, and why. */
const NOT_OPERATOR_ROUTES: Record<string, string> = {
  'GET /api/v1/openapi.json': 'the API description is public',
  [`POST ${LIFECYCLE_HOOK_PATH}`]: 'authenticated by the HMAC signature of its body (webhook secret)',
};
/** Routes outside /api/v1: the device protocols authenticate devices themselves. */
const DEVICE_PREFIXES = ['/.well-known/est', '/.well-known/cmp', '/healthz'];
/**
 * The console's own routes: static files, and the sign-in that takes an API
 * token (checked like a bearer token; test/unit/console.test.ts). Its pages
 * call the API routes above, so every action is still checked there.
 */
const CONSOLE_ROUTES = ['GET /console', 'GET /console/', 'GET /console/assets/:file', 'POST /console/session', 'GET /console/session', 'DELETE /console/session'];

interface Route {
  method: string;
  url: string;
  permission?: Permission;
}

const routes: Route[] = [];
let d: TestDataDir;
let app: FastifyInstance;
const tokens = {} as Record<Role, string>;

function permissionOf(r: RouteOptions): Permission | undefined {
  const hooks = r.onRequest === undefined ? [] : Array.isArray(r.onRequest) ? r.onRequest : [r.onRequest];
  const found = hooks.map((h) => (h as { permission?: Permission }).permission).filter((p): p is Permission => !!p);
  assert.ok(found.length <= 1, `${String(r.method)} ${r.url} has more than one guard`);
  return found[0];
}

/** Any value for each path parameter: the guard answers before the parameters are validated. */
const concrete = (url: string) => url.replace(/:([A-Za-z]+)/g, (_m, name: string) => (name === 'fingerprint' ? 'ab'.repeat(32) : name === 'serial' ? '0abc' : 'no-such-thing'));

before(async () => {
  d = await makeDataDir({ clock: new FakeClock('2030-01-01T00:00:00Z') });
  app = await buildHttpsApp(d.ctx, {
    onRoute: (r) => {
      for (const method of [r.method].flat()) {
        if (method === 'HEAD') continue; // Fastify's automatic HEAD shares the GET route's hooks
        routes.push({ method, url: r.url, permission: permissionOf(r) });
      }
    },
  });
  await app.ready();
  tokens.admin = d.adminToken;
  for (const role of ROLES.filter((r) => r !== 'admin')) tokens[role] = (await d.ctx.operators.createToken({ name: role, role, actor: 'test' })).token;
});

after(async () => {
  await app?.close();
  await d?.cleanup();
});

describe('every route is checked against a role', () => {
  it('ok-the enumeration found the API (sanity: at least the known routes)', () => {
    const keys = new Set(routes.map((r) => `${r.method} ${r.url}`));
    for (const k of ['GET /api/v1/certificates', 'POST /api/v1/devices/:id/events', 'POST /api/v1/devices/:id/transfer', 'GET /api/v1/reports/expiring', 'POST /api/v1/webhooks', `POST ${LIFECYCLE_HOOK_PATH}`, 'POST /api/v1/operators/certificates']) {
      assert.ok(keys.has(k), `${k} is missing from ${[...keys].join(', ')}`);
    }
    assert.ok(routes.length >= 40, `only ${routes.length} routes`);
  });

  it('fail-an /api/v1 route without a permission (other than the listed ones) fails this test', () => {
    const unguarded = routes.filter((r) => r.url.startsWith('/api/v1') && !r.permission && !NOT_OPERATOR_ROUTES[`${r.method} ${r.url}`]);
    assert.deepEqual(unguarded.map((r) => `${r.method} ${r.url}`), [], 'every API route names a permission');
    const stale = Object.keys(NOT_OPERATOR_ROUTES).filter((k) => !routes.some((r) => `${r.method} ${r.url}` === k));
    assert.deepEqual(stale, [], 'the exceptions list names routes that exist');
  });

  it('fail-a route outside /api/v1 that is not a device protocol fails this test', () => {
    const other = routes.filter((r) => !r.url.startsWith('/api/v1') && !DEVICE_PREFIXES.some((p) => r.url.startsWith(p)) && !CONSOLE_ROUTES.includes(`${r.method} ${r.url}`));
    assert.deepEqual(other.map((r) => `${r.method} ${r.url}`), []);
  });

  it('ok-every permission is held by some role, and admin holds all but key recovery and firmware signing', () => {
    for (const p of PERMISSIONS) assert.ok(ROLES.some((r) => roleAllows(r, p)), `no role has ${p}`);
    for (const p of PERMISSIONS) assert.equal(roleAllows('admin', p), p !== 'key:recover' && p !== 'firmware:sign', p);
  });

  it('fail-for EVERY guarded route: each role without its permission → 403, no credential → 401, a bad token → 401', async () => {
    const failures: string[] = [];
    let checked = 0;
    for (const r of routes.filter((x) => x.permission)) {
      const url = concrete(r.url);
      const send = (headers: Record<string, string>) => app.inject({ method: r.method as 'GET', url, headers: { ...headers, 'content-type': 'application/json' }, payload: r.method === 'GET' || r.method === 'DELETE' ? undefined : '{}' });
      for (const role of ROLES) {
        if (roleAllows(role, r.permission!)) continue;
        const res = await send({ authorization: `Bearer ${tokens[role]}` });
        checked++;
        if (res.statusCode !== 403 || res.json().code !== 'forbidden') failures.push(`${role} ${r.method} ${r.url} → ${res.statusCode} ${res.body.slice(0, 120)}`);
      }
      for (const [what, headers] of [['no credential', {}], ['a bad token', { authorization: 'Bearer fpk_not-a-real-token' }]] as const) {
        const res = await send(headers);
        if (res.statusCode !== 401) failures.push(`${what} ${r.method} ${r.url} → ${res.statusCode}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(checked >= 100, `only ${checked} refusals checked`);
  });

  it('ok-for every guarded GET route, each role with its permission gets past the guard', async () => {
    const failures: string[] = [];
    for (const r of routes.filter((x) => x.permission && x.method === 'GET')) {
      for (const role of ROLES.filter((x) => roleAllows(x, r.permission!))) {
        const res = await app.inject({ method: 'GET', url: concrete(r.url), headers: { authorization: `Bearer ${tokens[role]}` } });
        if (res.statusCode === 401 || (res.statusCode === 403 && res.json().code === 'forbidden')) failures.push(`${role} GET ${r.url} → ${res.statusCode}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it('ok-the lifecycle permissions: ra-officer reports events and transfers; auditor reads; only admin manages webhooks', () => {
    assert.ok(roleAllows('ra-officer', 'device:lifecycle'));
    assert.ok(!roleAllows('auditor', 'device:lifecycle'));
    assert.ok(roleAllows('auditor', 'cert:read'));
    assert.ok(!roleAllows('ra-officer', 'webhook:admin'));
    assert.ok(roleAllows('admin', 'webhook:admin'));
  });
});
