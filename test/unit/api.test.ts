import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildHttpApp, buildHttpsApp } from '../../src/server/server.js';
import { encodeErrorResponse } from '../../src/authority/ocsp_codec.js';
import { makeDataDir, opensslCsr, tempDir, type TestDataDir } from '../helpers/data_dir.js';

let d: TestDataDir;
let app: FastifyInstance;
let http: FastifyInstance;
let csrPem: string;
const tokens: Record<string, string> = {};

const auth = (role: string) => ({ authorization: `Bearer ${tokens[role]}` });

async function countCerts(): Promise<number> {
  return (await d.ctx.store.listCertificates({ limit: 1000 })).length;
}

before(async () => {
  d = await makeDataDir();
  app = await buildHttpsApp(d.ctx);
  http = await buildHttpApp(d.ctx);
  tokens.admin = d.adminToken;
  for (const role of ['ra-officer', 'auditor']) tokens[role] = (await d.ctx.operators.createToken({ name: role, role, actor: 'test' })).token;
  csrPem = opensslCsr(tempDir(), 'dev-1', { subj: '/CN=dev-1', san: 'DNS:dev-1.example.com' }).csrPem;
});

after(async () => {
  await app.close();
  await http.close();
  await d.cleanup();
});

describe('admin API: authentication and roles', () => {
  const cases: Array<{ name: string; headers: Record<string, string>; method: 'GET' | 'POST'; url: string; status: number; code?: string }> = [
    { name: 'fail-no-token', headers: {}, method: 'GET', url: '/api/v1/cas', status: 401, code: 'unauthorized' },
    { name: 'fail-wrong-token', headers: { authorization: 'Bearer fpk_not-a-real-token' }, method: 'GET', url: '/api/v1/cas', status: 401, code: 'unauthorized' },
    { name: 'fail-basic-scheme', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' }, method: 'GET', url: '/api/v1/cas', status: 401, code: 'unauthorized' },
    { name: 'fail-auditor-issues', headers: {}, method: 'POST', url: '/api/v1/certificates', status: 403, code: 'forbidden' },
    { name: 'fail-ra-officer-tokens', headers: {}, method: 'GET', url: '/api/v1/tokens', status: 403, code: 'forbidden' },
    { name: 'fail-ra-officer-audit', headers: {}, method: 'GET', url: '/api/v1/audit', status: 403, code: 'forbidden' },
    { name: 'ok-auditor-reads-cas', headers: {}, method: 'GET', url: '/api/v1/cas', status: 200 },
    { name: 'ok-auditor-reads-audit', headers: {}, method: 'GET', url: '/api/v1/audit', status: 200 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const role = c.name.includes('auditor') ? 'auditor' : c.name.includes('ra-officer') ? 'ra-officer' : undefined;
      const headers = role ? auth(role) : c.headers;
      const before = await countCerts();
      const res = await app.inject({ method: c.method, url: c.url, headers, payload: c.method === 'POST' ? { csr: csrPem, profile: 'device-tls' } : undefined });
      assert.equal(res.statusCode, c.status, res.body);
      if (c.code) {
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(res.json().code, c.code);
        if (c.status === 401) assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      }
      assert.equal(await countCerts(), before, 'a refused request stores nothing');
    });
  }

  it('a revoked token stops working', async () => {
    const { token, record } = await d.ctx.operators.createToken({ name: 'temp', role: 'auditor', actor: 'test' });
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { authorization: `Bearer ${token}` } })).statusCode, 200);
    const del = await app.inject({ method: 'DELETE', url: `/api/v1/tokens/${record.id}`, headers: auth('admin') });
    assert.equal(del.statusCode, 204);
    assert.equal((await app.inject({ url: '/api/v1/cas', headers: { authorization: `Bearer ${token}` } })).statusCode, 401);
  });
});

describe('admin API: certificates', () => {
  let serial = '';

  it('ok-issue: 201 with PEM and chain, committed before the answer', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/certificates', headers: auth('ra-officer'), payload: { csr: csrPem, profile: 'device-tls' } });
    assert.equal(res.statusCode, 201, res.body);
    const b = res.json();
    assert.match(b.serial, /^[0-9a-f]{34}$/);
    assert.match(b.pem, /^-----BEGIN CERTIFICATE-----/);
    assert.match(b.chainPem, /^-----BEGIN CERTIFICATE-----/);
    assert.deepEqual(b.sans, ['dns:dev-1.example.com']);
    assert.equal(b.requester, 'token:ra-officer');
    serial = b.serial;
    const stored = await d.ctx.store.getCertificate(serial);
    assert.ok(stored, 'the certificate is in the store');
    const audit = await d.ctx.store.listAudit({ target: serial });
    assert.equal(audit[0].action, 'certificate.issue');
    assert.equal(audit[0].actor, 'token:ra-officer');
  });

  it('ok-show: JSON and PEM by Accept header', async () => {
    const j = await app.inject({ url: `/api/v1/certificates/${serial}`, headers: auth('auditor') });
    assert.equal(j.json().serial, serial);
    const p = await app.inject({ url: `/api/v1/certificates/${serial.toUpperCase()}`, headers: { ...auth('auditor'), accept: 'application/pem-certificate-chain' } });
    assert.equal(p.headers['content-type'], 'application/pem-certificate-chain');
    assert.match(p.body, /^-----BEGIN CERTIFICATE-----/);
  });

  it('ok-list with keyset paging', async () => {
    const first = await app.inject({ url: '/api/v1/certificates?limit=1', headers: auth('auditor') });
    assert.equal(first.statusCode, 200);
    const page1 = first.json();
    assert.equal(page1.items.length, 1);
    assert.ok(page1.next);
    const second = await app.inject({ url: `/api/v1/certificates?limit=1&after=${page1.next}`, headers: auth('auditor') });
    assert.notEqual(second.json().items[0].serial, page1.items[0].serial);
    const filtered = await app.inject({ url: '/api/v1/certificates?profile=device-tls', headers: auth('auditor') });
    assert.ok(filtered.json().items.every((c: { profile: string }) => c.profile === 'device-tls'));
  });

  it('ok-revoke, then fail-revoke-twice with 409 and nothing changed', async () => {
    const r = await app.inject({ method: 'POST', url: `/api/v1/certificates/${serial}/revoke`, headers: auth('ra-officer'), payload: { reason: 'keyCompromise', invalidityDate: '2020-01-01T00:00:00Z' } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal(r.json().status, 'revoked');
    assert.equal(r.json().revocationReason, 'keyCompromise');
    const again = await app.inject({ method: 'POST', url: `/api/v1/certificates/${serial}/revoke`, headers: auth('ra-officer'), payload: { reason: 'superseded' } });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'already_revoked');
    assert.equal((await d.ctx.store.getCertificate(serial))!.revocation!.reason, 'keyCompromise');
  });

  const bad: Array<{ name: string; payload?: unknown; raw?: string; contentType?: string; url?: string; method?: 'POST' | 'GET'; status: number; code: string }> = [
    { name: 'fail-garbage-csr', payload: { csr: 'garbage', profile: 'device-tls' }, status: 400, code: 'bad_csr' },
    { name: 'fail-unknown-profile', payload: { csr: '', profile: 'nope' }, status: 404, code: 'not_found' },
    { name: 'fail-unknown-field', payload: { csr: 'x', profile: 'device-tls', evil: true }, status: 400, code: 'bad_request' },
    { name: 'fail-missing-profile', payload: { csr: 'x' }, status: 400, code: 'bad_request' },
    { name: 'fail-bad-json', raw: '{not json', contentType: 'application/json', status: 400, code: 'bad_request' },
    { name: 'fail-wrong-content-type', raw: 'csr=x', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'unsupported_media_type' },
    { name: 'fail-oversized-body', raw: JSON.stringify({ csr: 'A'.repeat(200_000), profile: 'device-tls' }), contentType: 'application/json', status: 413, code: 'payload_too_large' },
    { name: 'fail-san-outside-profile', payload: { csr: '', profile: 'device-tls', sans: ['email:a@example.com'] }, status: 403, code: 'policy_violation' },
    { name: 'fail-bad-san-syntax', payload: { csr: '', profile: 'device-tls', sans: ['dns:not a name'] }, status: 400, code: 'bad_request' },
    { name: 'fail-unknown-serial', method: 'GET', url: '/api/v1/certificates/abcdef', status: 404, code: 'not_found' },
    { name: 'fail-not-a-serial', method: 'GET', url: '/api/v1/certificates/zz-top', status: 400, code: 'bad_request' },
    { name: 'fail-bad-reason', url: '/api/v1/certificates/abcdef/revoke', payload: { reason: 'because' }, status: 400, code: 'bad_request' },
    { name: 'fail-revoke-unknown', url: '/api/v1/certificates/abcdef/revoke', payload: { reason: 'superseded' }, status: 404, code: 'not_found' },
    { name: 'fail-unknown-route', method: 'GET', url: '/api/v1/nothing-here', status: 404, code: 'not_found' },
  ];
  for (const c of bad) {
    it(c.name, async () => {
      const before = await countCerts();
      const payload = c.payload && typeof c.payload === 'object' && 'csr' in c.payload && (c.payload as { csr: string }).csr === '' ? { ...c.payload, csr: csrPem } : c.payload;
      const res = await app.inject({
        method: c.method ?? 'POST',
        url: c.url ?? '/api/v1/certificates',
        headers: { ...auth('admin'), ...(c.contentType ? { 'content-type': c.contentType } : {}) },
        payload: c.raw ?? (payload as object | undefined),
      });
      assert.equal(res.statusCode, c.status, res.body);
      const body = res.json();
      assert.equal(body.code, c.code);
      assert.equal(body.status, c.status);
      assert.ok(!/at .*\.ts:\d+/.test(res.body), 'no stack trace reaches the client');
      assert.equal(await countCerts(), before, 'nothing stored');
    });
  }
});

describe('admin API: tokens, audit, OpenAPI', () => {
  it('creates a token shown once and never lists its secret', async () => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth('admin'), payload: { name: 'pipeline', role: 'ra-officer', validDays: 30 } });
    assert.equal(res.statusCode, 201);
    const { token } = res.json();
    assert.match(token, /^fpk_/);
    const list = await app.inject({ url: '/api/v1/tokens', headers: auth('admin') });
    assert.ok(!list.body.includes(token));
    assert.ok(!list.body.includes('tokenHash'));
    const bad = await app.inject({ method: 'POST', url: '/api/v1/tokens', headers: auth('admin'), payload: { name: 'x', role: 'superuser' } });
    assert.equal(bad.statusCode, 400);
  });

  it('audit entries are chained and attributable', async () => {
    const res = await app.inject({ url: '/api/v1/audit?limit=1000', headers: auth('auditor') });
    const entries = res.json();
    assert.ok(entries.length >= 5);
    for (let i = 1; i < entries.length; i++) assert.equal(entries[i].prevHash, entries[i - 1].hash);
    assert.ok(entries.some((e: { actor: string; action: string }) => e.actor === 'token:admin' && e.action === 'token.create'));
  });

  it('serves an OpenAPI 3 document that lists every route', async () => {
    const res = await app.inject({ url: '/api/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    const doc = res.json();
    assert.equal(doc.openapi, '3.0.3');
    for (const p of ['/api/v1/cas', '/api/v1/cas/{name}', '/api/v1/certificates', '/api/v1/certificates/{serial}', '/api/v1/certificates/{serial}/revoke', '/api/v1/tokens', '/api/v1/tokens/{id}', '/api/v1/audit', '/api/v1/profiles']) {
      assert.ok(doc.paths[p], `OpenAPI lists ${p}`);
    }
    assert.ok(doc.paths['/api/v1/certificates'].post.requestBody);
  });
});

describe('plain-HTTP listener: AIA caIssuers', () => {
  it('serves each CA certificate as DER application/pkix-cert', async () => {
    for (const ca of await d.ctx.store.listCas()) {
      const res = await http.inject({ url: `/ca/${ca.name}.cer` });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'application/pkix-cert');
      assert.deepEqual(new Uint8Array(res.rawPayload), new Uint8Array(ca.certDer));
    }
  });
  it('fail-unknown CA and bad file names are 404 problems', async () => {
    for (const url of ['/ca/nope.cer', '/ca/..%2fetc%2fpasswd', '/ca/root.exe']) {
      const res = await http.inject({ url });
      assert.equal(res.statusCode, 404, url);
      assert.equal(res.json().code, 'not_found');
    }
  });
});

describe('both listeners: a URL the router cannot decode', () => {
  it('fail-HTTPS (API, EST, console): 400 problem+json, not the framework\'s own JSON', async () => {
    for (const url of ['/api/v1/devices/%%%', '/.well-known/est/%E0%A4%A/cacerts', '/console/assets/%zz']) {
      const res = await app.inject({ url, headers: { authorization: `Bearer ${tokens.admin}` } });
      assert.equal(res.statusCode, 400, url);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', url);
      assert.equal(res.json().code, 'bad_request');
    }
  });

  it('fail-plain HTTP: a problem+json for CRLs and CA certificates, an OCSP malformedRequest under /ocsp', async () => {
    const crl = await http.inject({ url: '/crl/%%%' });
    assert.equal(crl.statusCode, 400);
    assert.equal(crl.headers['content-type'], 'application/problem+json; charset=utf-8');
    const ocsp = await http.inject({ url: '/ocsp/%%%' });
    assert.equal(ocsp.statusCode, 200);
    assert.equal(ocsp.headers['content-type'], 'application/ocsp-response');
    assert.deepEqual(new Uint8Array(ocsp.rawPayload), encodeErrorResponse('malformedRequest'));
  });
});
