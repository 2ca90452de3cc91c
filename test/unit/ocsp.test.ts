/**
 * The OCSP responder core (src/authority/ocsp.ts) against a real data
 * directory with a fake clock: statuses, malformed input, the answer cache,
 * delegated signer renewal, and signatures checked with node:crypto.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, randomBytes, verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertID, OCSPRequest, OCSPResponse, Request, TBSRequest, id_pkix_ocsp_basic } from '@peculiar/asn1-ocsp';
import * as der from '../../src/asn1/der.js';
import { OcspResponder, type OcspOptions } from '../../src/authority/ocsp.js';
import { keyHash, OID_NONCE } from '../../src/authority/ocsp_codec.js';
import { FakeClock } from '../../src/clock.js';
import { verifySignature } from '../../src/x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';

const DAY = 86_400_000;
const SHA1 = '1.3.14.3.2.26';
const SHA256 = '2.16.840.1.101.3.4.2.1';
const HASH_OID: Record<string, string> = { sha1: SHA1, sha256: SHA256 };

// ---------------------------------------------------------------- requests

interface ReqSpec {
  issuer: CertInfo;
  serial: string;
  hash?: 'sha1' | 'sha256';
  /** Raw extnValue of the nonce extension; `nonce` builds a proper one of n octets. */
  nonceValue?: Uint8Array;
  nonce?: number;
  version?: number;
  hashOid?: string;
  more?: Array<{ issuer: CertInfo; serial: string }>;
  extensions?: Extension[];
}

function certId(issuer: CertInfo, serial: string, hash: 'sha1' | 'sha256' = 'sha1', hashOid?: string): CertID {
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: hashOid ?? HASH_OID[hash], parameters: null }),
    issuerNameHash: new OctetString(createHash(hash).update(issuer.subjectDer).digest()),
    issuerKeyHash: new OctetString(keyHash(issuer.spki, hash)),
    serialNumber: new Uint8Array(Buffer.from(serial, 'hex')).buffer,
  });
}

function request(s: ReqSpec): Uint8Array {
  const nonceValue = s.nonceValue ?? (s.nonce !== undefined ? der.octets(randomBytes(s.nonce)) : undefined);
  const exts = [...(s.extensions ?? []), ...(nonceValue ? [new Extension({ extnID: OID_NONCE, extnValue: new OctetString(nonceValue) })] : [])];
  const tbs = new TBSRequest({
    version: s.version ?? 0,
    requestList: [{ issuer: s.issuer, serial: s.serial }, ...(s.more ?? [])].map((r) => new Request({ reqCert: certId(r.issuer, r.serial, s.hash, s.hashOid) })),
    requestExtensions: exts.length ? exts : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(new OCSPRequest({ tbsRequest: tbs })));
}

// ---------------------------------------------------------------- responses

interface Parsed {
  status: number;
  basic?: BasicOCSPResponse;
  tbs?: Uint8Array;
}

function parse(respDer: Uint8Array): Parsed {
  const r = AsnConvert.parse(respDer, OCSPResponse);
  if (!r.responseBytes) return { status: r.responseStatus };
  assert.equal(r.responseBytes.responseType, id_pkix_ocsp_basic);
  const basicDer = new Uint8Array(r.responseBytes.response.buffer);
  const basic = AsnConvert.parse(basicDer, BasicOCSPResponse);
  // The signed bytes: the first element of the BasicOCSPResponse.
  const outer = der.readTlv(basicDer, 0);
  const tbs = der.slice(basicDer, der.readChildren(basicDer, outer)[0]);
  return { status: r.responseStatus, basic, tbs };
}

/** Verifies the response signature with node:crypto against `signer` (or the embedded certificate). */
function verifyResponse(p: Parsed, signer?: CertInfo): CertInfo {
  const b = p.basic!;
  const cert = signer ?? parseCertificate(new Uint8Array(AsnConvert.serialize(b.certs![0])));
  const key = createPublicKey({ key: Buffer.from(cert.spki), format: 'der', type: 'spki' });
  assert.ok(verifySignature(b.signatureAlgorithm.algorithm, undefined, key, p.tbs!, new Uint8Array(b.signature)), 'response signature verifies');
  // Independently of fleetpki's helper: ECDSA over SHA-256, DER signature.
  assert.ok(verify('sha256', p.tbs!, { key, dsaEncoding: 'der' }, new Uint8Array(b.signature)));
  // ResponderID byKey: SHA-1 of the signer's public key bits (RFC 6960 §4.2.1).
  assert.deepEqual(Buffer.from(b.tbsResponseData.responderID.byKey!.buffer), Buffer.from(keyHash(cert.spki, 'sha1')));
  return cert;
}

function single(p: Parsed, i = 0) {
  return p.basic!.tbsResponseData.responses[i];
}

const MALFORMED = Buffer.from('30030a0101', 'hex');
const UNAUTHORIZED = Buffer.from('30030a0106', 'hex');

describe('OCSP responder', () => {
  let d: TestDataDir;
  const clock = new FakeClock('2030-01-01T00:00:00Z');
  let issuing: CertInfo;
  let root: CertInfo;
  let responder: OcspResponder;
  const make = (o: OcspOptions = {}) => new OcspResponder(d.ctx.store, d.ctx.keys, d.ctx.authority, clock, o);

  async function leaf(cn: string): Promise<string> {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const r = await d.ctx.authority.issue({ serverGeneratedSpki: spki, profile: 'device-tls', subject: [{ type: 'CN', value: cn }], actor: 'test' });
    return r.record.serial;
  }

  before(async () => {
    d = await makeDataDir({ clock });
    issuing = parseCertificate((await d.ctx.store.getCa('issuing'))!.certDer);
    root = parseCertificate((await d.ctx.store.getCa('root'))!.certDer);
    responder = make();
  });
  after(async () => d?.cleanup());

  describe('malformed requests get malformedRequest, never a throw', () => {
    const good = () => request({ issuer: issuing, serial: '01' });
    const cases: Array<[string, () => Uint8Array]> = [
      ['fail-empty', () => new Uint8Array(0)],
      ['fail-garbage', () => new Uint8Array(randomBytes(64))],
      ['fail-text', () => new TextEncoder().encode('GET /ocsp HTTP/1.1\r\n')],
      ['fail-truncated', () => good().subarray(0, good().length - 5)],
      ['fail-trailing-bytes', () => der.concat([good(), Uint8Array.of(0, 0)])],
      ['fail-two-requests-concatenated', () => der.concat([good(), good()])],
      ['fail-not-a-sequence', () => der.integer(5)],
      ['fail-empty-sequence', () => der.seq()],
      ['fail-wrong-version', () => request({ issuer: issuing, serial: '01', version: 1 })],
      ['fail-no-certificates', () => der.seq(der.seq(der.seq()))],
      ['fail-eleven-certificates', () => request({ issuer: issuing, serial: '01', more: Array.from({ length: 10 }, (_, i) => ({ issuer: issuing, serial: (i + 2).toString(16).padStart(2, '0') })) })],
      ['fail-oversized-nonce', () => request({ issuer: issuing, serial: '01', nonce: 33 })],
      ['fail-empty-nonce', () => request({ issuer: issuing, serial: '01', nonceValue: der.octets(new Uint8Array(0)) })],
      ['fail-nonce-not-an-octet-string', () => request({ issuer: issuing, serial: '01', nonceValue: new Uint8Array(randomBytes(16)).map((b) => b | 0x80) })],
      ['fail-unsupported-hash-sha384', () => request({ issuer: issuing, serial: '01', hashOid: '2.16.840.1.101.3.4.2.2' })],
      ['fail-unsupported-hash-md5', () => request({ issuer: issuing, serial: '01', hashOid: '1.2.840.113549.2.5' })],
      ['fail-sha256-oid-with-sha1-lengths', () => request({ issuer: issuing, serial: '01', hashOid: SHA256 })],
      ['fail-unknown-critical-extension', () => request({ issuer: issuing, serial: '01', extensions: [new Extension({ extnID: '1.2.3.4', critical: true, extnValue: new OctetString(der.nullValue()) })] })],
      ['fail-duplicate-nonce', () => request({ issuer: issuing, serial: '01', nonce: 16, extensions: [new Extension({ extnID: OID_NONCE, extnValue: new OctetString(der.octets(randomBytes(16))) })] })],
      [
        'fail-ber-indefinite-length',
        () => {
          const g = good();
          const inner = der.content(g, der.readTlv(g, 0));
          return der.concat([Uint8Array.of(0x30, 0x80), inner, Uint8Array.of(0, 0)]);
        },
      ],
      [
        'fail-extra-element-in-tbsrequest',
        () => {
          const g = good();
          const tbs = der.readChildren(g, der.readTlv(g, 0))[0];
          return der.seq(der.tlv(der.TAG.SEQUENCE, der.content(g, tbs), der.integer(7)));
        },
      ],
    ];
    for (const [name, input] of cases) {
      it(name, async () => {
        const r = await responder.respond(input());
        assert.equal(r.status, 'malformedRequest', String(r.error));
        assert.deepEqual(Buffer.from(r.der), MALFORMED);
        assert.equal(r.cacheable, false);
      });
    }

    it('fail-fuzz-never-throws', async () => {
      const base = request({ issuer: issuing, serial: '01', nonce: 16 });
      for (let i = 0; i < 300; i++) {
        const m = new Uint8Array(base);
        // Flip 1-3 random bytes of a valid request, or cut it short.
        for (let k = 0; k <= i % 3; k++) m[(i * 7919 + k * 104729) % m.length] ^= 1 + ((i + k) % 255);
        const input = i % 10 === 0 ? m.subarray(0, i % m.length) : m;
        const r = await responder.respond(input);
        assert.ok(['successful', 'malformedRequest', 'unauthorized'].includes(r.status), `${r.status}: ${String(r.error)}`);
        AsnConvert.parse(r.der, OCSPResponse);
      }
    });
  });

  describe('statuses', () => {
    it('ok-good-with-delegated-signer', async () => {
      const serial = await leaf('good-1');
      const reqDer = request({ issuer: issuing, serial });
      const r = await responder.respond(reqDer);
      assert.equal(r.status, 'successful', String(r.error));
      assert.equal(r.cacheable, true);
      const p = parse(r.der);
      const signer = verifyResponse(p);
      const s = single(p);
      assert.equal(s.certStatus.good, null);
      // The CertID comes back exactly as asked.
      assert.deepEqual(Buffer.from(AsnConvert.serialize(s.certID)), Buffer.from(AsnConvert.serialize(AsnConvert.parse(reqDer, OCSPRequest).tbsRequest.requestList[0].reqCert)));
      assert.equal(s.thisUpdate.getTime(), clock.now().getTime());
      assert.equal(s.nextUpdate!.getTime() - s.thisUpdate.getTime(), 3600_000);
      assert.equal(p.basic!.tbsResponseData.producedAt.getTime(), s.thisUpdate.getTime());
      assert.equal(p.basic!.tbsResponseData.responseExtensions, undefined);
      // The delegated signer: issued by the CA, OCSPSigning, nocheck, 30 days.
      assert.equal(signer.issuerText, issuing.subjectText);
      assert.deepEqual(signer.extendedKeyUsage, ['1.3.6.1.5.5.7.3.9']);
      assert.ok(signer.extensions.some((e) => e.oid === '1.3.6.1.5.5.7.48.1.5'));
      assert.match(signer.subjectText, /CN=issuing OCSP Responder/);
      assert.match(signer.subjectText, /O=Test Fleet/);
      const caKey = createPublicKey({ key: Buffer.from(issuing.spki), format: 'der', type: 'spki' });
      assert.ok(verifySignature(signer.signatureAlgorithm, undefined, caKey, signer.tbs, signer.signature), 'signer certificate signed by the CA');
      const rec = await d.ctx.store.getOcspSigner('issuing');
      assert.equal(rec && parseCertificate(rec.certDer).serial, signer.serial, 'the signer is recorded in the store');
      assert.equal((await d.ctx.store.getCertificate(signer.serial))?.profile, 'ocsp-signer');
    });

    it('ok-sha256-certid', async () => {
      const serial = await leaf('good-sha256');
      const p = parse((await responder.respond(request({ issuer: issuing, serial, hash: 'sha256' }))).der);
      verifyResponse(p);
      assert.equal(single(p).certID.hashAlgorithm.algorithm, SHA256);
      assert.equal(single(p).certStatus.good, null);
    });

    it('ok-revoked-with-time-and-reason', async () => {
      const serial = await leaf('revoked-1');
      clock.advance(5000);
      const revokedAt = clock.now();
      await d.ctx.authority.revoke(serial, 'keyCompromise', 'test');
      const p = parse((await responder.respond(request({ issuer: issuing, serial }))).der);
      verifyResponse(p);
      const rev = single(p).certStatus.revoked!;
      assert.equal(rev.revocationTime.getTime(), Math.floor(revokedAt.getTime() / 1000) * 1000);
      assert.equal(rev.revocationReason?.reason, 1);
    });

    it('ok-unspecified-reason-is-left-out', async () => {
      const serial = await leaf('revoked-unspec');
      await d.ctx.authority.revoke(serial, 'unspecified', 'test');
      const p = parse((await responder.respond(request({ issuer: issuing, serial }))).der);
      assert.ok(single(p).certStatus.revoked);
      assert.equal(single(p).certStatus.revoked!.revocationReason, undefined);
    });

    it('ok-unknown-serial', async () => {
      const p = parse((await responder.respond(request({ issuer: issuing, serial: '1234' }))).der);
      verifyResponse(p);
      assert.equal(single(p).certStatus.unknown, null);
    });

    it('ok-serial-of-another-ca-is-unknown', async () => {
      // The issuing CA's own certificate was issued by the root, not by itself.
      const p = parse((await responder.respond(request({ issuer: issuing, serial: issuing.serial }))).der);
      assert.equal(single(p).certStatus.unknown, null);
      const q = parse((await responder.respond(request({ issuer: root, serial: issuing.serial }))).der);
      const signer = verifyResponse(q);
      assert.equal(signer.issuerText, root.subjectText, 'the root has its own delegated signer');
      assert.equal(single(q).certStatus.good, null);
    });

    it('fail-unknown-issuer-is-unauthorized', async () => {
      const other = await makeDataDir({ org: 'Other Fleet' });
      try {
        const stranger = parseCertificate((await other.ctx.store.getCa('issuing'))!.certDer);
        const r = await responder.respond(request({ issuer: stranger, serial: '01' }));
        assert.equal(r.status, 'unauthorized');
        assert.deepEqual(Buffer.from(r.der), UNAUTHORIZED);
        // Same name as ours, other key: still not ours.
        const fake = { ...issuing, spki: stranger.spki };
        assert.equal((await responder.respond(request({ issuer: fake, serial: '01' }))).status, 'unauthorized');
      } finally {
        await other.cleanup();
      }
    });

    it('ok-several-certificates-of-one-ca', async () => {
      const a = await leaf('multi-a');
      const b = await leaf('multi-b');
      await d.ctx.authority.revoke(b, 'superseded', 'test');
      const p = parse((await responder.respond(request({ issuer: issuing, serial: a, more: [{ issuer: issuing, serial: b }, { issuer: issuing, serial: '77' }] }))).der);
      verifyResponse(p);
      assert.equal(single(p, 0).certStatus.good, null);
      assert.equal(single(p, 1).certStatus.revoked?.revocationReason?.reason, 4);
      assert.equal(single(p, 2).certStatus.unknown, null);
    });

    it('fail-certificates-of-two-cas-in-one-request', async () => {
      const a = await leaf('mixed-a');
      const r = await responder.respond(request({ issuer: issuing, serial: a, more: [{ issuer: root, serial: issuing.serial }] }));
      assert.equal(r.status, 'unauthorized');
    });
  });

  describe('nonce and cache', () => {
    it('ok-nonce-echoed-and-never-cached', async () => {
      const serial = await leaf('nonce-1');
      const nonceValue = der.octets(randomBytes(32));
      const before = responder.cacheSize;
      const r1 = await responder.respond(request({ issuer: issuing, serial, nonceValue }));
      assert.equal(r1.cacheable, false);
      const p = parse(r1.der);
      verifyResponse(p);
      const ext = p.basic!.tbsResponseData.responseExtensions!;
      assert.equal(ext.length, 1);
      assert.equal(ext[0].extnID, OID_NONCE);
      assert.deepEqual(Buffer.from(ext[0].extnValue.buffer), Buffer.from(nonceValue));
      const r2 = await responder.respond(request({ issuer: issuing, serial, nonce: 16 }));
      assert.notDeepEqual(Buffer.from(r2.der), Buffer.from(r1.der), 'every nonce answer is signed anew');
      const one = await responder.respond(request({ issuer: issuing, serial, nonce: 1 }));
      assert.equal(one.status, 'successful', 'RFC 8954: 1 octet is the minimum');
      assert.equal(responder.cacheSize, before, 'nonce answers stay out of the cache');
    });

    it('ok-same-bytes-until-refresh-then-re-signed', async () => {
      const r = make({ validitySeconds: 3600, refreshAheadSeconds: 600 });
      const serial = await leaf('cache-1');
      const req = request({ issuer: issuing, serial });
      const a = await r.respond(req);
      clock.advance(1000);
      const b = await r.respond(req);
      assert.deepEqual(Buffer.from(b.der), Buffer.from(a.der), 'cached answer served');
      assert.equal(b.thisUpdate?.getTime(), a.thisUpdate?.getTime());
      // Just before nextUpdate − refreshAhead: still cached; after: re-signed.
      clock.set(a.nextUpdate!.getTime() - 600_000 - 1000);
      assert.deepEqual(Buffer.from((await r.respond(req)).der), Buffer.from(a.der));
      clock.advance(1000);
      const c = await r.respond(req);
      assert.notDeepEqual(Buffer.from(c.der), Buffer.from(a.der));
      assert.equal(c.thisUpdate?.getTime(), clock.now().getTime());
      assert.ok(c.nextUpdate! > a.nextUpdate!, 'the new answer outlives the old one: never served stale');
    });

    it('ok-a-revocation-from-another-process-reaches-the-cached-answer-within-statusPollSeconds', async () => {
      const r = make({ statusPollSeconds: 2 });
      const serial = await leaf('cache-revoke');
      const req = request({ issuer: issuing, serial });
      const a = await r.respond(req);
      assert.equal(single(parse(a.der)).certStatus.good, null);
      assert.deepEqual(Buffer.from((await r.respond(req)).der), Buffer.from(a.der));
      // Revoked behind the responder's back, straight in the store (as another process would).
      await d.ctx.store.revokeCertificate(serial, { revokedAt: clock.now(), reason: 'certificateHold' }, { actor: 'test', action: 'certificate.revoke', target: serial });
      clock.advance(1999);
      assert.deepEqual(Buffer.from((await r.respond(req)).der), Buffer.from(a.der), 'until the feed is read again, the cached answer stands');
      clock.advance(1);
      const b = await r.respond(req);
      assert.equal(single(parse(b.der)).certStatus.revoked?.revocationReason?.reason, 6);
      assert.deepEqual(Buffer.from((await r.respond(req)).der), Buffer.from(b.der), 'the new answer is cached in turn');
      // Releasing the hold makes it good again, as soon as the feed is read.
      await d.ctx.authority.releaseHold(serial, 'test');
      clock.advance(2000);
      assert.equal(single(parse((await r.respond(req)).der)).certStatus.good, null);
    });

    it('ok-cachedResult-answers-without-waiting-only-while-the-feed-and-the-answer-are-current', async () => {
      const r = make({ statusPollSeconds: 2 });
      const serial = await leaf('cache-sync');
      const req = request({ issuer: issuing, serial });
      assert.equal(r.cachedResult(req), undefined, 'nothing cached yet');
      const a = await r.respond(req);
      assert.equal(r.cachedResult(req), a, 'the pre-signed answer, as respond() gives it');
      assert.equal(r.cachedResult(request({ issuer: issuing, serial, nonce: 16 })), undefined, 'a nonce request is never answered from the cache');
      await d.ctx.store.revokeCertificate(serial, { revokedAt: clock.now(), reason: 'keyCompromise' }, { actor: 'test', action: 'certificate.revoke', target: serial });
      clock.advance(2000);
      // The feed is due: only respond() may read it, so the cache stands back.
      assert.equal(r.cachedResult(req), undefined, 'the change feed is due: no answer without reading it');
      const b = await r.respond(req);
      assert.equal(single(parse(b.der)).certStatus.revoked?.revocationReason?.reason, 1);
      assert.equal(r.cachedResult(req), b, 'the revoked answer is the cached one now');
      assert.equal(make({ maxCacheEntries: 0 }).cachedResult(req), undefined, 'no cache, no cached answer');
    });

    it('ok-nonce-answers-read-the-status-once-and-still-follow-a-revocation-and-an-issuance', async () => {
      // Counts the store's reads of each serial, through the real store.
      const reads = new Map<string, number>();
      const store = new Proxy(d.ctx.store, {
        get(target, prop, recv) {
          if (prop === 'getCertificate') return (serial: string) => (reads.set(serial, (reads.get(serial) ?? 0) + 1), target.getCertificate(serial));
          const v = Reflect.get(target, prop, recv);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const r = new OcspResponder(store, d.ctx.keys, d.ctx.authority, clock, { statusPollSeconds: 2 });
      const serial = await leaf('nonce-status');
      const other = await leaf('nonce-status-other');
      const unissued = `${other.slice(0, -2)}${other.endsWith('00') ? '01' : '00'}`;
      for (let i = 0; i < 5; i++) {
        const p = parse((await r.respond(request({ issuer: issuing, serial, nonce: 16 }))).der);
        verifyResponse(p);
        assert.equal(single(p).certStatus.good, null);
        assert.ok('unknown' in single(parse((await r.respond(request({ issuer: issuing, serial: unissued, nonce: 16 }))).der)).certStatus);
      }
      assert.equal(reads.get(serial), 1, 'five nonce answers, one read of the status');
      assert.equal(reads.get(unissued), 1, 'an unknown serial is remembered as unknown too');
      await d.ctx.store.revokeCertificate(serial, { revokedAt: clock.now(), reason: 'keyCompromise' }, { actor: 'test', action: 'certificate.revoke', target: serial });
      const rec = await d.ctx.store.getCertificate(other);
      await d.ctx.store.insertCertificate({ ...rec!, serial: unissued }, { actor: 'test', action: 'certificate.issue', target: unissued });
      clock.advance(2000);
      assert.equal(single(parse((await r.respond(request({ issuer: issuing, serial, nonce: 16 }))).der)).certStatus.revoked?.revocationReason?.reason, 1);
      assert.equal(single(parse((await r.respond(request({ issuer: issuing, serial: unissued, nonce: 16 }))).der)).certStatus.good, null);
      assert.equal(reads.get(serial), 2, 'the revocation made it read the status again');
      // Without a cache there is no memory of statuses either: every answer reads the store.
      const uncached = new OcspResponder(store, d.ctx.keys, d.ctx.authority, clock, { maxCacheEntries: 0 });
      await uncached.respond(request({ issuer: issuing, serial, nonce: 16 }));
      await uncached.respond(request({ issuer: issuing, serial, nonce: 16 }));
      assert.equal(reads.get(serial), 4);
    });

    it('ok-concurrent-nonce-answers-are-signed-on-the-worker-threads-each-echoing-its-own-nonce', async () => {
      const r = make();
      const serial = await leaf('nonce-workers');
      const reqs = Array.from({ length: 24 }, () => request({ issuer: issuing, serial, nonce: 20 }));
      const answers = await Promise.all(reqs.map((q) => r.respond(q)));
      for (const [i, a] of answers.entries()) {
        assert.equal(a.status, 'successful');
        const p = parse(a.der);
        verifyResponse(p);
        const echoed = p.basic!.tbsResponseData.responseExtensions!.find((e) => e.extnID === OID_NONCE)!;
        const sent = AsnConvert.parse(reqs[i], OCSPRequest).tbsRequest.requestExtensions!.find((e) => e.extnID === OID_NONCE)!;
        assert.deepEqual(Buffer.from(echoed.extnValue.buffer), Buffer.from(sent.extnValue.buffer), `answer ${i} echoes its own nonce`);
      }
      assert.equal(r.signedBy.workers + r.signedBy.here, 24, 'every answer signed once');
      assert.ok(r.signedBy.workers >= 20, `signed on the workers: ${JSON.stringify(r.signedBy)}`);
    });

    it('ok-statusPollSeconds-0-reads-the-feed-before-every-answer', async () => {
      const r = make({ statusPollSeconds: 0 });
      const serial = await leaf('cache-revoke-0');
      const req = request({ issuer: issuing, serial });
      assert.equal(single(parse((await r.respond(req)).der)).certStatus.good, null);
      await d.ctx.store.revokeCertificate(serial, { revokedAt: clock.now(), reason: 'keyCompromise' }, { actor: 'test', action: 'certificate.revoke', target: serial });
      assert.equal(single(parse((await r.respond(req)).der)).certStatus.revoked?.revocationReason?.reason, 1);
    });

    it('ok-an-unknown-serial-becomes-good-once-issued', async () => {
      const r = make({ statusPollSeconds: 0 });
      const other = await leaf('cache-unknown-other');
      // A serial of this CA that is not issued yet: unknown, cached.
      const serial = `${other.slice(0, -2)}${other.endsWith('00') ? '01' : '00'}`;
      const req = request({ issuer: issuing, serial });
      assert.ok('unknown' in single(parse((await r.respond(req)).der)).certStatus);
      const rec = await d.ctx.store.getCertificate(other);
      await d.ctx.store.insertCertificate({ ...rec!, serial }, { actor: 'test', action: 'certificate.issue', target: serial });
      assert.equal(single(parse((await r.respond(req)).der)).certStatus.good, null);
    });

    it('ok-refreshDue-re-signs-answers-before-they-are-due-and-reads-their-status-afresh', async () => {
      const r = make({ validitySeconds: 3600, refreshAheadSeconds: 600, statusPollSeconds: 3600 });
      const good = await leaf('pre-good');
      const revoked = await leaf('pre-revoked');
      const a = await r.respond(request({ issuer: issuing, serial: good }));
      await r.respond(request({ issuer: issuing, serial: revoked }));
      assert.equal(await r.refreshDue(), 0, 'nothing is due yet');
      await d.ctx.store.revokeCertificate(revoked, { revokedAt: clock.now(), reason: 'superseded' }, { actor: 'test', action: 'certificate.revoke', target: revoked });
      // Within one refresh interval of the refresh point: both are re-signed now.
      clock.set(a.nextUpdate!.getTime() - 600_000 - r.refreshIntervalMs + 1000);
      assert.equal(await r.refreshDue(), 2);
      const b = await r.respond(request({ issuer: issuing, serial: good }));
      assert.notDeepEqual(Buffer.from(b.der), Buffer.from(a.der));
      assert.equal(b.thisUpdate?.getTime(), Math.floor(clock.now().getTime() / 1000) * 1000, 'signed by refreshDue, not by the request');
      assert.equal(single(parse((await r.respond(request({ issuer: issuing, serial: revoked }))).der)).certStatus.revoked?.revocationReason?.reason, 4);
      assert.equal(await r.refreshDue(), 0);
    });

    it('ok-sha1-and-sha256-answers-are-cached-apart', async () => {
      const r = make();
      const serial = await leaf('cache-hashes');
      const a = await r.respond(request({ issuer: issuing, serial, hash: 'sha1' }));
      const b = await r.respond(request({ issuer: issuing, serial, hash: 'sha256' }));
      assert.equal(single(parse(a.der)).certID.hashAlgorithm.algorithm, SHA1);
      assert.equal(single(parse(b.der)).certID.hashAlgorithm.algorithm, SHA256);
      assert.equal(r.cacheSize, 2);
    });

    it('ok-cache-is-bounded', async () => {
      const r = make({ maxCacheEntries: 3 });
      const serials = await Promise.all([1, 2, 3, 4, 5].map((i) => leaf(`bounded-${i}`)));
      const first = await r.respond(request({ issuer: issuing, serial: serials[0] }));
      for (const s of serials.slice(1)) await r.respond(request({ issuer: issuing, serial: s }));
      assert.equal(r.cacheSize, 3);
      clock.advance(1000);
      // The least recently used (the first) was dropped: it is signed again.
      const again = await r.respond(request({ issuer: issuing, serial: serials[0] }));
      assert.notDeepEqual(Buffer.from(again.der), Buffer.from(first.der));
    });

    it('ok-concurrent-misses-share-one-signature', async () => {
      const r = make();
      const serial = await leaf('concurrent');
      const req = request({ issuer: issuing, serial });
      const all = await Promise.all(Array.from({ length: 8 }, () => r.respond(req)));
      for (const x of all) assert.deepEqual(Buffer.from(x.der), Buffer.from(all[0].der));
    });
  });

  describe('signers', () => {
    it('ok-sign-with-ca-key', async () => {
      const r = make({ signWithCaKey: true });
      const serial = await leaf('ca-signed');
      const p = parse((await r.respond(request({ issuer: issuing, serial }))).der);
      assert.equal(p.basic!.certs, undefined, 'no certificates: the CA itself signs');
      verifyResponse(p, issuing);
      assert.equal(single(p).certStatus.good, null);
    });

    it('ok-renewed-when-a-third-of-its-life-is-left-and-reused-after-restart', async () => {
      const c = new FakeClock('2030-01-01T00:00:00Z');
      const dd = await makeDataDir({ clock: c });
      try {
        const ca = parseCertificate((await dd.ctx.store.getCa('issuing'))!.certDer);
        const r = new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c);
        const signerOf = async (resp: OcspResponder) => verifyResponse(parse((await resp.respond(request({ issuer: ca, serial: '42' }))).der));
        const s1 = await signerOf(r);
        c.advance(19 * DAY);
        assert.equal((await signerOf(r)).serial, s1.serial, 'two thirds of its life not yet over');
        // A restarted node reuses the stored signer instead of issuing another.
        const restarted = new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c);
        assert.equal((await signerOf(restarted)).serial, s1.serial);
        c.advance(2 * DAY);
        const s2 = await signerOf(r);
        assert.notEqual(s2.serial, s1.serial, 'renewed with less than a third of 30 days left');
        assert.ok(s2.notAfter.getTime() - c.now().getTime() > 29 * DAY);
        // The restarted node sees the renewal in the store and uses it too.
        assert.equal((await signerOf(restarted)).serial, s2.serial);
        const issued = await dd.ctx.store.listCertificates({ profile: 'ocsp-signer' });
        assert.equal(issued.length, 2);
        const audit = await dd.ctx.store.listAudit({ action: 'ocsp.signer.create' });
        assert.deepEqual(audit.map((a) => a.details.serial), [s1.serial, s2.serial], 'each new signer is audited');
      } finally {
        await dd.cleanup();
      }
    });

    it('ok-racing-responders-both-answer', async () => {
      const c = new FakeClock('2030-01-01T00:00:00Z');
      const dd = await makeDataDir({ clock: c });
      try {
        const ca = parseCertificate((await dd.ctx.store.getCa('issuing'))!.certDer);
        const a = new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c);
        const b = new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c);
        const req = request({ issuer: ca, serial: '42' });
        const [ra, rb] = await Promise.all([a.respond(req), b.respond(req)]);
        verifyResponse(parse(ra.der));
        verifyResponse(parse(rb.der));
        assert.ok((await dd.ctx.store.listCertificates({ profile: 'ocsp-signer' })).length <= 2);
      } finally {
        await dd.cleanup();
      }
    });

    it('ok-a-revoked-signer-is-replaced', async () => {
      const r = make({ signerCheckSeconds: 10 });
      const serial = await leaf('signer-revoked');
      const req = request({ issuer: issuing, serial });
      const s1 = verifyResponse(parse((await r.respond(req)).der));
      await d.ctx.authority.revoke(s1.serial, 'keyCompromise', 'test');
      clock.advance(11_000);
      const s2 = verifyResponse(parse((await r.respond(req)).der));
      assert.notEqual(s2.serial, s1.serial);
    });

    it('fail-offline-ca-key-without-a-signer-is-unauthorized', async () => {
      const c = new FakeClock('2030-01-01T00:00:00Z');
      const dd = await makeDataDir({ clock: c });
      try {
        const rootCa = parseCertificate((await dd.ctx.store.getCa('root'))!.certDer);
        const issuingCa = parseCertificate((await dd.ctx.store.getCa('issuing'))!.certDer);
        await dd.ctx.authority.takeCaKeyOffline('root', 'test');
        const r = new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c);
        assert.equal((await r.respond(request({ issuer: rootCa, serial: issuingCa.serial }))).status, 'unauthorized');
        assert.equal((await new OcspResponder(dd.ctx.store, dd.ctx.keys, dd.ctx.authority, c, { signWithCaKey: true }).respond(request({ issuer: rootCa, serial: issuingCa.serial }))).status, 'unauthorized');
        // The issuing CA still answers.
        assert.equal((await r.respond(request({ issuer: issuingCa, serial: '01' }))).status, 'successful');
      } finally {
        await dd.cleanup();
      }
    });
  });
});
