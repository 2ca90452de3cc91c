/**
 * The OCSP HTTP adapter (src/protocols/ocsp/) through Fastify inject: POST
 * and GET forms (RFC 6960 Appendix A), always HTTP 200 with an OCSPResponse,
 * and the RFC 5019 §6 caching headers only on cacheable answers.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertID, OCSPRequest, OCSPResponse, Request, TBSRequest } from '@peculiar/asn1-ocsp';
import * as der from '../../src/asn1/der.js';
import { keyHash, MAX_REQUEST_OCTETS, OID_NONCE } from '../../src/authority/ocsp_codec.js';
import { FakeClock } from '../../src/clock.js';
import { ocspFastPath, ocspPlugin, type OcspFastPath } from '../../src/protocols/ocsp/plugin.js';
import { OcspResponder } from '../../src/authority/ocsp.js';
import { decodeGetRequest, encodeGetRequest, matchesEtag } from '../../src/protocols/ocsp/wire.js';
import { buildHttpApp } from '../../src/server/server.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';

function request(issuer: CertInfo, serial: string, nonce = false): Uint8Array {
  const id = new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: '1.3.14.3.2.26', parameters: null }),
    issuerNameHash: new OctetString(createHash('sha1').update(issuer.subjectDer).digest()),
    issuerKeyHash: new OctetString(keyHash(issuer.spki, 'sha1')),
    serialNumber: new Uint8Array(Buffer.from(serial, 'hex')).buffer,
  });
  const exts = nonce ? [new Extension({ extnID: OID_NONCE, extnValue: new OctetString(der.octets(randomBytes(16))) })] : undefined;
  return new Uint8Array(AsnConvert.serialize(new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: id })], requestExtensions: exts }) })));
}

const statusOf = (body: Buffer) => AsnConvert.parse(body, OCSPResponse).responseStatus;
/** The one SingleResponse of a successful answer. */
const single = (body: Buffer) => AsnConvert.parse(AsnConvert.parse(body, OCSPResponse).responseBytes!.response.buffer, BasicOCSPResponse).tbsResponseData.responses[0];

describe('OCSP HTTP adapter', () => {
  let d: TestDataDir;
  let app: FastifyInstance;
  let issuing: CertInfo;
  const clock = new FakeClock('2030-01-01T00:00:00Z');

  before(async () => {
    d = await makeDataDir({ clock });
    issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    // The plain-HTTP app exactly as the server builds it.
    app = await buildHttpApp(d.ctx);
  });
  after(async () => {
    await app?.close();
    await d?.cleanup();
  });

  it('ok-post-cacheable-answer-has-rfc5019-headers', async () => {
    const res = await app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from(request(issuing, '1234')) });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/ocsp-response');
    assert.equal(statusOf(res.rawPayload), 0);
    assert.equal(res.headers['last-modified'], clock.now().toUTCString());
    assert.equal(res.headers.expires, new Date(clock.now().getTime() + 3600_000).toUTCString());
    // max-age as of the current second's last millisecond (the headers are
    // made once a second): never past nextUpdate, at most a second short.
    assert.equal(res.headers['cache-control'], 'max-age=3599, public, no-transform, must-revalidate');
    assert.equal(Number(res.headers['content-length']), res.rawPayload.length);
    assert.equal(res.headers.etag, `"${createHash('sha256').update(res.rawPayload).digest('base64url')}"`);
  });

  it('ok-nonce-answer-has-no-caching-headers', async () => {
    const res = await app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from(request(issuing, '1234', true)) });
    assert.equal(statusOf(res.rawPayload), 0);
    assert.equal(res.headers['cache-control'], 'no-store');
    for (const h of ['etag', 'expires', 'last-modified']) assert.equal(res.headers[h], undefined, h);
  });

  it('ok-get-base64-with-slash-and-plus-encoded-or-not', async () => {
    // Find serials whose request's base64 holds both '/' and '+'.
    let serial = 0;
    let b64 = '';
    for (; serial < 5000; serial++) {
      b64 = Buffer.from(request(issuing, serial.toString(16).padStart(4, '0'))).toString('base64');
      if (b64.includes('/') && b64.includes('+')) break;
    }
    assert.ok(b64.includes('/') && b64.includes('+'));
    const viaPost = await app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from(b64, 'base64') });
    for (const path of [encodeURIComponent(b64), b64]) {
      const res = await app.inject({ method: 'GET', url: `/ocsp/${path}` });
      assert.equal(res.statusCode, 200, path);
      assert.equal(statusOf(res.rawPayload), 0);
      assert.deepEqual(res.rawPayload, viaPost.rawPayload, 'GET and POST share the cached answer');
      assert.match(String(res.headers['cache-control']), /^max-age=\d+, public, no-transform, must-revalidate$/);
    }
  });

  it('ok-get-long-request', async () => {
    // Two hundred octets of base64 and more: past Fastify's default parameter length.
    const reqDer = request(issuing, 'ab'.repeat(20), true);
    const res = await app.inject({ method: 'GET', url: `/ocsp/${encodeGetRequest(reqDer)}` });
    assert.equal(statusOf(res.rawPayload), 0);
  });

  it('ok-a-repeated-get-is-answered-from-the-cache-and-still-follows-a-revocation', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const r = await d.ctx.authority.issue({ serverGeneratedSpki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), profile: 'device-tls', subject: [{ type: 'CN', value: 'get-repeat' }], actor: 'test' });
    const serial = r.record.serial;
    const url = `/ocsp/${encodeGetRequest(request(issuing, serial))}`;
    const first = await app.inject({ method: 'GET', url });
    const again = await app.inject({ method: 'GET', url });
    assert.deepEqual(again.rawPayload, first.rawPayload, 'the pre-signed answer');
    assert.equal(again.headers.etag, first.headers.etag);
    await d.ctx.authority.revoke(serial, 'keyCompromise', 'test');
    clock.advance(1000); // statusPollSeconds: the change feed is read again
    const after = await app.inject({ method: 'GET', url });
    const basic = AsnConvert.parse(AsnConvert.parse(after.rawPayload, OCSPResponse).responseBytes!.response.buffer, BasicOCSPResponse);
    assert.ok(basic.tbsResponseData.responses[0].certStatus.revoked, 'the repeated GET sees the revocation');
    assert.notEqual(after.headers.etag, first.headers.etag);
    // A path that is not base64 is remembered as such and refused every time.
    for (let i = 0; i < 2; i++) assert.equal(statusOf((await app.inject({ method: 'GET', url: '/ocsp/not*base64' })).rawPayload), 1);
  });

  it('ok-if-none-match-gets-304', async () => {
    const url = `/ocsp/${encodeGetRequest(request(issuing, '5678'))}`;
    const first = await app.inject({ method: 'GET', url });
    const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': String(first.headers.etag) } });
    assert.equal(again.statusCode, 304);
    assert.equal(again.rawPayload.length, 0);
  });

  it('ok-unknown-issuer-is-unauthorized-with-http-200', async () => {
    const stranger = { ...issuing, subjectDer: der.seq() };
    const res = await app.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from(request(stranger, '01')) });
    assert.equal(res.statusCode, 200);
    assert.equal(statusOf(res.rawPayload), 6);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  const malformed: Array<[string, () => InjectOptions]> = [
    ['fail-post-garbage', () => ({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: randomBytes(40) })],
    ['fail-post-empty', () => ({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.alloc(0) })],
    ['fail-post-wrong-content-type', () => ({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/octet-stream' }, payload: Buffer.from(request(issuing, '01')) })],
    ['fail-post-json', () => ({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/json' }, payload: '{"a":1}' })],
    ['fail-post-no-content-type', () => ({ method: 'POST', url: '/ocsp', payload: Buffer.from(request(issuing, '01')) })],
    ['fail-post-too-large', () => ({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.alloc(11 * 1024, 0x30) })],
    ['fail-get-not-base64', () => ({ method: 'GET', url: '/ocsp/not*base64!' })],
    ['fail-get-empty', () => ({ method: 'GET', url: '/ocsp/' })],
    ['fail-get-no-request', () => ({ method: 'GET', url: '/ocsp' })],
    ['fail-get-base64-garbage', () => ({ method: 'GET', url: `/ocsp/${encodeURIComponent(randomBytes(30).toString('base64'))}` })],
  ];
  for (const [name, opts] of malformed) {
    it(name, async () => {
      const res = await app.inject(opts());
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'application/ocsp-response');
      assert.deepEqual(res.rawPayload, Buffer.from('30030a0101', 'hex'));
      assert.equal(res.headers.etag, undefined);
      assert.equal(res.headers['cache-control'], 'no-store', 'an error answer is never cached');
    });
  }

  it('fail-get-bad-percent-encoding-is-refused-by-the-router', async () => {
    // Fastify's router rejects a URL it cannot decode before any route runs
    // (its 400 problem answer); the listener survives it.
    const res = await app.inject({ method: 'GET', url: '/ocsp/%E0%A4%A' });
    assert.ok(res.statusCode === 400 || statusOf(res.rawPayload) === 1, String(res.statusCode));
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });

  it('ok-plugin-options-sign-with-ca-key', async () => {
    const own = Fastify();
    await own.register(ocspPlugin, { ctx: d.ctx, options: { signWithCaKey: true } });
    const res = await own.inject({ method: 'POST', url: '/ocsp', headers: { 'content-type': 'application/ocsp-request' }, payload: Buffer.from(request(issuing, '01')) });
    assert.equal(statusOf(res.rawPayload), 0);
    await own.close();
  });

  describe('wire helpers', () => {
    it('ok-decode-get-forms', () => {
      const bytes = new Uint8Array([0xfb, 0xff, 0xbf, 0x3e, 0x00]);
      const b64 = Buffer.from(bytes).toString('base64'); // "+/+/PgA="
      for (const form of [b64, encodeURIComponent(b64), b64.replace(/=$/, ''), b64.replace(/\+/g, ' '), Buffer.from(bytes).toString('base64url')]) {
        assert.deepEqual(decodeGetRequest(form), bytes, form);
      }
      assert.equal(decodeGetRequest('abc*'), undefined);
      assert.equal(decodeGetRequest('%zz'), undefined);
      assert.equal(decodeGetRequest('a'), undefined);
    });
    it('ok-etag-matching', () => {
      assert.ok(matchesEtag('"x", "y"', '"y"'));
      assert.ok(matchesEtag('W/"y"', '"y"'));
      assert.ok(!matchesEtag('"x"', '"y"'));
      assert.ok(!matchesEtag(undefined, '"y"'));
    });
  });
});

describe('OCSP on a real listener', () => {
  let d: TestDataDir;
  let app: FastifyInstance;
  let base: string;
  let fast: OcspFastPath;
  let ocsp: OcspResponder;

  before(async () => {
    d = await makeDataDir();
    // The feed is read at most every second: a revocation shows within it.
    ocsp = new OcspResponder(d.ctx.store, d.ctx.keys, d.ctx.authority, d.ctx.clock, { ...d.ctx.config.ocsp, statusPollSeconds: 1 });
    fast = ocspFastPath(ocsp, d.ctx.clock);
    app = await buildHttpApp(d.ctx, { ocsp, ocspFastPath: fast });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  });
  after(async () => {
    await app?.close();
    await d?.cleanup();
  });

  it('ok-nonce-posts-one-at-a-time-are-signed-here-and-many-at-once-over-kept-alive-connections-on-the-worker-threads', async () => {
    assert.ok(d.ctx.authority.hasWorkers(), 'the test data directory has worker threads');
    const issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const serial = (await d.ctx.authority.issue({ serverGeneratedSpki: spki, profile: 'device-tls', subject: [{ type: 'CN', value: 'nonce-where' }], actor: 'test' })).record.serial;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    const post = (body: Uint8Array) =>
      new Promise<Buffer>((resolve, reject) => {
        const req = http.request(`${base}/ocsp`, { method: 'POST', agent, headers: { 'content-type': 'application/ocsp-request' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
        });
        req.on('error', reject).end(body);
      });
    const nonceOf = (body: Uint8Array) => {
      const basic = AsnConvert.parse(AsnConvert.parse(body, OCSPResponse).responseBytes!.response.buffer, BasicOCSPResponse);
      assert.equal(basic.tbsResponseData.responses[0].certStatus.good, null);
      return Buffer.from(basic.tbsResponseData.responseExtensions!.find((e) => e.extnID === OID_NONCE)!.extnValue.buffer).toString('hex');
    };
    const sentNonce = (q: Uint8Array) => Buffer.from(AsnConvert.parse(q, OCSPRequest).tbsRequest.requestExtensions!.find((e) => e.extnID === OID_NONCE)!.extnValue.buffer).toString('hex');
    try {
      // Open the 16 connections, then one request at a time: each is alone in its turn.
      await Promise.all(Array.from({ length: 16 }, () => post(request(issuing, serial, true))));
      const alone = { ...ocsp.signedBy };
      for (let i = 0; i < 5; i++) {
        const q = request(issuing, serial, true);
        assert.equal(nonceOf(await post(q)), sentNonce(q));
      }
      assert.deepEqual(ocsp.signedBy, { workers: alone.workers, here: alone.here + 5 }, 'one at a time: signed on the main thread');
      // 16 at once on the kept-alive connections, three times: they come in together.
      const before = { ...ocsp.signedBy };
      for (let round = 0; round < 3; round++) {
        const qs = Array.from({ length: 16 }, () => request(issuing, serial, true));
        const answers = await Promise.all(qs.map(post));
        answers.forEach((a, i) => assert.equal(nonceOf(a), sentNonce(qs[i]), `answer ${i} echoes its own nonce`));
      }
      assert.equal(ocsp.signedBy.workers + ocsp.signedBy.here - before.workers - before.here, 48, 'every answer signed once');
      assert.ok(ocsp.signedBy.workers - before.workers >= 24, `most signed on the workers: ${JSON.stringify(ocsp.signedBy)} from ${JSON.stringify(before)}`);
    } finally {
      agent.destroy();
    }
  });

  /** One raw POST: `chunked` leaves out Content-Length (Node then sends the body chunked). */
  const rawPost = (body: Uint8Array, o: { type?: string; chunked?: boolean; length?: number } = {}) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const headers: Record<string, string | number> = { 'content-type': o.type ?? 'application/ocsp-request' };
      if (!o.chunked) headers['content-length'] = o.length ?? body.length;
      const req = http.request(`${base}/ocsp`, { method: 'POST', agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) })).on('error', reject);
      });
      req.on('error', reject);
      if (o.chunked) req.write(body);
      req.end(o.chunked ? undefined : body);
    });
  const withoutDate = (h: http.IncomingHttpHeaders, drop: string[] = []) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== 'date' && !drop.includes(k)).sort());

  it('ok-a-post-with-content-length-is-answered-before-routing-with-the-routes-bytes-and-headers', async () => {
    const issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const serial = (await d.ctx.authority.issue({ serverGeneratedSpki: spki, profile: 'device-tls', subject: [{ type: 'CN', value: 'fast-post' }], actor: 'test' })).record.serial;
    const plain = request(issuing, serial);
    const before = fast.answered;
    const routed = await rawPost(plain, { chunked: true });
    assert.equal(fast.answered, before, 'a chunked body goes to the route');
    const direct = await rawPost(plain);
    assert.equal(fast.answered, before + 1, 'with Content-Length it is answered before routing');
    assert.equal(direct.status, 200);
    assert.deepEqual(direct.body, routed.body, 'the same pre-signed answer');
    // The route sends the body chunked too: its headers carry no length.
    assert.deepEqual(withoutDate(direct.headers, ['content-length', 'transfer-encoding', 'cache-control']), withoutDate(routed.headers, ['content-length', 'transfer-encoding', 'cache-control']));
    assert.match(String(direct.headers['cache-control']), /^max-age=\d+, public, no-transform, must-revalidate$/);
    assert.equal(Number(direct.headers['content-length']), direct.body.length);

    const q = request(issuing, serial, true);
    const nonceRouted = await rawPost(q, { chunked: true });
    const nonceDirect = await rawPost(q);
    assert.equal(fast.answered, before + 2);
    assert.equal(nonceDirect.headers['cache-control'], 'no-store', 'a nonce answer is not for caches');
    assert.deepEqual(withoutDate(nonceDirect.headers, ['content-length', 'transfer-encoding']), withoutDate(nonceRouted.headers, ['content-length', 'transfer-encoding']));
    assert.equal(single(nonceDirect.body).certStatus.good, null);
  });

  it('fail-posts-the-fast-path-takes-or-leaves-are-all-answered-in-ocsp-and-a-body-cut-short-harms-nothing', async () => {
    const issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    const logged: string[] = [];
    const logger = fast.logger;
    fast.logger = { info: (_o: unknown, msg?: string) => void logged.push(String(msg)), error: (_o: unknown, msg?: string) => void logged.push(String(msg)) } as unknown as typeof fast.logger;
    try {
      const before = fast.answered;
      // Taken: the right type and length, but not DER.
      const junk = await rawPost(new Uint8Array(randomBytes(60)));
      assert.equal(fast.answered, before + 1);
      assert.equal(statusOf(junk.body), 1, 'malformedRequest');
      assert.equal(junk.headers['cache-control'], 'no-store');
      assert.deepEqual(logged, ['OCSP request refused'], 'refusals are logged as on the route');
      // Left to the route: another type, and a body over the limit.
      const wrongType = await rawPost(request(issuing, '1234'), { type: 'application/octet-stream' });
      assert.equal(statusOf(wrongType.body), 1);
      const tooLarge = await rawPost(new Uint8Array(MAX_REQUEST_OCTETS + 1));
      assert.equal(statusOf(tooLarge.body), 1);
      assert.equal(fast.answered, before + 1, 'neither was taken');
    } finally {
      fast.logger = logger;
    }
    // A client that promises 200 octets, sends 10 and goes away.
    await new Promise<void>((resolve) => {
      const sock = net.connect((app.server.address() as { port: number }).port, '127.0.0.1', () => {
        sock.write('POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 200\r\n\r\n0123456789');
        setTimeout(() => sock.destroy(), 50);
      });
      sock.on('close', () => resolve());
      sock.on('error', () => undefined);
    });
    const after = await rawPost(request(issuing, '1234'));
    assert.equal(after.status, 200, 'the listener carries on');
    assert.equal(statusOf(after.body), 0, 'successful (unknown serial)');
  });

  it('fail-a GET the router cannot read (bad percent-encoding) or that is not base64: HTTP 200 with malformedRequest, as for any bad request', async () => {
    for (const path of ['/ocsp/not*base64', '/ocsp/%%%', '/ocsp/%E0%A4%A']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get('content-type'), 'application/ocsp-response');
      assert.equal(statusOf(Buffer.from(await res.arrayBuffer())), 1, `${path}: malformedRequest`);
      assert.equal(res.headers.get('cache-control'), 'no-store', path);
    }
  });

  it('ok-a-repeated-get-is-sent-before-routing-with-the-same-bytes-and-headers-and-follows-a-revocation', async () => {
    const issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const serial = (await d.ctx.authority.issue({ serverGeneratedSpki: spki, profile: 'device-tls', subject: [{ type: 'CN', value: 'fast-get' }], actor: 'test' })).record.serial;
    const url = `${base}/ocsp/${encodeGetRequest(request(issuing, serial))}`;
    const headersOf = (res: Response) => Object.fromEntries([...res.headers].filter(([k]) => k !== 'date' && k !== 'cache-control').sort());
    const before = fast.answered;
    const first = await fetch(url);
    const firstBody = Buffer.from(await first.arrayBuffer());
    assert.equal(fast.answered, before, 'the first request is signed through the route');
    // A repeat is answered before routing once the change feed was read
    // within statusPollSeconds (the first answer may take longer than that).
    let second: Response | undefined;
    for (let i = 0; i < 20 && fast.answered === before; i++) {
      second = await fetch(url);
      assert.equal(second.status, 200);
      assert.deepEqual(Buffer.from(await second.arrayBuffer()), firstBody, 'the same pre-signed bytes');
    }
    assert.equal(fast.answered, before + 1, 'a repeat is answered before routing');
    second = second!;
    assert.deepEqual(headersOf(second), headersOf(first), 'the same headers');
    const maxAge = (res: Response) => Number(/max-age=(\d+)/.exec(res.headers.get('cache-control') ?? '')?.[1]);
    const untilNext = (Date.parse(second.headers.get('expires')!) - Date.now()) / 1000;
    assert.ok(maxAge(second) <= untilNext && maxAge(second) >= untilNext - 2, `max-age ${maxAge(second)} never reaches past nextUpdate (${untilNext} s away)`);
    assert.match(second.headers.get('cache-control')!, /^max-age=\d+, public, no-transform, must-revalidate$/);

    // What the fast path does not take goes to the route, which answers alike.
    const etag = first.headers.get('etag')!;
    const cond = await fetch(url, { headers: { 'if-none-match': etag } });
    assert.equal(cond.status, 304, 'If-None-Match: the route answers 304');
    const withQuery = await fetch(`${url}?x=1`);
    assert.deepEqual(Buffer.from(await withQuery.arrayBuffer()), firstBody, 'a query string: the route answers the same');
    assert.equal(fast.answered, before + 1, 'neither went the fast way');

    await d.ctx.store.revokeCertificate(serial, { revokedAt: new Date(), reason: 'keyCompromise' }, { actor: 'test', action: 'certificate.revoke', target: serial });
    let revoked = false;
    for (let i = 0; i < 50 && !revoked; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const body = Buffer.from(await (await fetch(url)).arrayBuffer());
      const basic = AsnConvert.parse(AsnConvert.parse(body, OCSPResponse).responseBytes!.response.buffer, BasicOCSPResponse);
      revoked = basic.tbsResponseData.responses[0].certStatus.revoked !== undefined;
    }
    assert.ok(revoked, 'the fast path stops sending the good answer once the feed shows the revocation');
  });
});
