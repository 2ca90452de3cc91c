/**
 * The CMP server (src/protocols/cmp) on a real data directory with a fake
 * clock, with the requests openssl cannot be made to send: every malformed,
 * mis-protected, replayed or out-of-order message gets an error message with
 * the right failure bits, never a crash; PBMAC1 end to end; certConf checks
 * (nonce, hash, deadline, rejection); the sweep; the HTTP edge (content type,
 * size, label).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { DistributionPointName, GeneralName, GeneralNames, Name, Time } from '@peculiar/asn1-x509';
import type { FastifyInstance } from 'fastify';
import { PKIBody } from '../../src/asn1/cmp_body.js';
import { ErrorMsgContent } from '../../src/asn1/cmp_error.js';
import { CRLSource, CRLStatus, CRLStatusListValue, GenMsgContent } from '../../src/asn1/cmp_general.js';
import { InfoTypeAndValue } from '../../src/asn1/cmp_header.js';
import { id_alg, id_it } from '../../src/asn1/cmp_oids.js';
import { PollReq, PollReqContent } from '../../src/asn1/cmp_poll.js';
import { RevDetails, RevReqContent } from '../../src/asn1/cmp_revocation.js';
import { PKIFreeText, PKIStatus, PKIStatusInfo } from '../../src/asn1/cmp_status.js';
import { CertTemplate } from '../../src/asn1/crmf_template.js';
import { FakeClock } from '../../src/clock.js';
import { pbmAlgorithm, pbmac1Algorithm, verifyMac } from '../../src/protocols/cmp/mac.js';
import { CMP_BODY_LIMIT } from '../../src/protocols/cmp/message.js';
import { CmpServer } from '../../src/protocols/cmp/server.js';
import { buildHttpApp } from '../../src/server/server.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { encodeName } from '../../src/x509/names.js';
import { answerOf, buildRequest, certConf, certReqMessages, type RequestOptions } from '../helpers/cmp.js';
import { makeDataDir, REPO, type TestDataDir } from '../helpers/data_dir.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
let d: TestDataDir;
let cmp: CmpServer;
let app: FastifyInstance;

before(async () => {
  d = await makeDataDir({ clock });
  cmp = new CmpServer(d.ctx);
  app = await buildHttpApp(d.ctx, { cmp });
});
after(async () => {
  await app?.close();
  await d?.cleanup();
});

// ------------------------------------------------------------------ helpers

const newKey = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const pbm = () => pbmAlgorithm({ iterations: 500 });

async function device(id: string, extra: { requireApproval?: boolean } = {}): Promise<string> {
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls', ...extra }, 'test', true);
  return secret!;
}

async function send(o: RequestOptions) {
  const der = await buildRequest(o, clock.now());
  const a = await cmp.handle(der);
  return { ...answerOf(a.der), http: a.status, der: a.der, request: der };
}

/** Sends and expects an error message with exactly `bits`. */
async function refused(o: RequestOptions, bits: string[], text?: RegExp) {
  const a = await send(o);
  assert.equal(a.body, 'error', `expected an error message, got ${a.body}`);
  assert.equal(a.status, PKIStatus.rejection);
  assert.deepEqual(a.failInfo, bits, a.text);
  if (text) assert.match(a.text, text);
  return a;
}

const macOf = (secret: string, kid: string, alg = pbm()) => ({ mac: alg, secret, kid });

/** ir with the secret; returns the answer, the key and the certificate (not yet confirmed). */
async function irWithSecret(id: string, secret: string, o: Partial<RequestOptions> & { alg?: ReturnType<typeof pbm> } = {}) {
  const key = newKey();
  const a = await send({ body: new PKIBody({ ir: certReqMessages(key) }), protection: macOf(secret, id, o.alg), ...o });
  assert.equal(a.body, 'ip', a.text);
  const cert = new Uint8Array(AsnConvert.serialize(a.msg.msg.body.ip!.response[0].certifiedKeyPair!.certOrEncCert.certificate!));
  return { a, key, cert, serial: parseCertificate(cert).serial, tid: a.msg.transactionId! };
}

/** A device with a confirmed certificate: its key and certificate DER. */
async function enrolled(id: string): Promise<{ key: KeyObject; cert: Uint8Array; serial: string }> {
  const secret = await device(id);
  const r = await irWithSecret(id, secret, { implicitConfirm: true });
  return { key: r.key, cert: r.cert, serial: r.serial };
}

const signedBy = (e: { key: KeyObject; cert: Uint8Array }) => ({ protection: { key: e.key, certs: [e.cert] }, sender: parseCertificate(e.cert).subjectDer });

const tidBytes = (hex: string) => new Uint8Array(Buffer.from(hex, 'hex'));

// -------------------------------------------------------------- the edge

describe('CMP over HTTP', () => {
  const post = (body: Buffer, type = 'application/pkixcmp', url = '/.well-known/cmp') => app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload: body });
  const bitsOf = (raw: Buffer) => answerOf(new Uint8Array(raw)).failInfo;

  it('ok a request on the plain-HTTP listener gets application/pkixcmp', async () => {
    const r = await post(Buffer.from(await buildRequest({ body: new PKIBody({ genm: new GenMsgContent([new InfoTypeAndValue({ infoType: id_it.caCerts })]) }) }, clock.now())));
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['content-type'], 'application/pkixcmp');
    assert.equal(answerOf(new Uint8Array(r.rawPayload)).body, 'genp');
  });

  const edge: [string, () => Promise<{ statusCode: number; rawPayload: Buffer }>, number, string[]][] = [
    ['fail-another content type → 415', () => post(Buffer.from('0\x00'), 'application/octet-stream'), 415, ['badDataFormat']],
    ['fail-a body over the limit → 413', () => post(Buffer.alloc(CMP_BODY_LIMIT + 1, 0x30)), 413, ['badDataFormat']],
    ['fail-an empty body', () => post(Buffer.alloc(0)), 200, ['badDataFormat']],
    ['fail-an unknown label → 404', () => post(Buffer.from('0\x00'), 'application/pkixcmp', '/.well-known/cmp/p/nope'), 404, ['badRequest']],
  ];
  for (const [title, req, status, bits] of edge) {
    it(`${title}, answered with a CMP error message`, async () => {
      const r = await req();
      assert.equal(r.statusCode, status);
      assert.deepEqual(bitsOf(r.rawPayload), bits);
    });
  }
});

describe('CMP: what is not a PKIMessage', () => {
  const valid = () => new Uint8Array(readFileSync(join(REPO, 'test/fixtures/cmp/mac-ir.der')));
  const cases: [string, () => Uint8Array][] = [
    ['fail-random bytes', () => new Uint8Array(randomBytes(64))],
    ['fail-trailing bytes after the message', () => Uint8Array.from([...valid(), 0])],
    ['fail-truncated', () => valid().subarray(0, 100)],
    ['fail-a certificate instead', () => new Uint8Array(parseCertificate(readFileSync(join(REPO, 'test/fixtures/cmp/fleetpki-root.pem'), 'utf8')).der)],
    ['fail-indefinite length (BER)', () => Uint8Array.from([0x30, 0x80, 0x00, 0x00])],
    ['fail-nesting 2000 deep', () => Uint8Array.from([...Array(2000).fill([0x30, 0x81]).flat()])],
  ];
  for (const [title, bytes] of cases) {
    it(`${title} → badDataFormat`, async () => {
      const a = await cmp.handle(bytes());
      assert.deepEqual(answerOf(a.der).failInfo, ['badDataFormat']);
    });
  }

  it('ok 300 random mutations of a real request each get an error message, none throws', async () => {
    const base = valid();
    for (let i = 0; i < 300; i++) {
      const m = base.slice();
      for (let k = 0; k < 1 + (i % 4); k++) m[(i * 7919 + k * 104729) % m.length] ^= 1 + ((i + k) % 255);
      const a = await cmp.handle(m);
      assert.equal(answerOf(a.der).body, 'error', `mutation ${i}`);
    }
  });
});

describe('CMP: header and protection checks', () => {
  const genm = () => new PKIBody({ genm: new GenMsgContent([new InfoTypeAndValue({ infoType: id_it.caCerts })]) });
  const cases: [string, Partial<RequestOptions>, string[]][] = [
    ['fail-pvno 1', { pvno: 1 }, ['unsupportedVersion']],
    ['fail-no transactionID', { transactionId: null }, ['badRequest']],
    ['fail-a 4-octet transactionID', { transactionId: Uint8Array.of(1, 2, 3, 4) }, ['badRequest']],
    ['fail-no senderNonce', { senderNonce: null }, ['badSenderNonce']],
    ['fail-an 8-octet senderNonce', { senderNonce: new Uint8Array(8) }, ['badSenderNonce']],
    ['fail-messageTime 10 minutes ahead', { messageTime: new Date(Date.parse('2030-01-01T00:10:00Z')) }, ['badTime']],
    ['fail-protectionAlg without protection', { protection: macOf('x', 'nobody'), breakProtection: 'noBits' }, ['badMessageCheck']],
    ['fail-protection without protectionAlg', { protection: macOf('x', 'nobody'), breakProtection: 'noAlg' }, ['badMessageCheck']],
    ['fail-a MAC without senderKID (the device id)', { protection: macOf('x', '') }, ['badMessageCheck']],
    // An unknown device costs no key derivation: refused before the MAC.
    ['fail-a MAC by an unknown device, even with 1,000,000 iterations', { protection: { mac: pbmAlgorithm({ iterations: 1_000_000 }), secret: 'x', kid: 'nobody' } }, ['badMessageCheck']],
    ['fail-an ip sent to the server', { body: new PKIBody({ pkiconf: null }) }, ['badRequest']],
  ];
  for (const [title, o, bits] of cases) {
    it(`${title} → ${bits.join(', ')}`, async () => {
      await refused({ body: genm(), ...o }, bits);
    });
  }

  it('fail-an unprotected ir → badMessageCheck, nothing issued', async () => {
    const before = (await d.ctx.store.listCertificates({ limit: 1000 })).length;
    await refused({ body: new PKIBody({ ir: certReqMessages(newKey()) }) }, ['badMessageCheck'], /must be protected/);
    assert.equal((await d.ctx.store.listCertificates({ limit: 1000 })).length, before);
  });

  const macAlgs: [string, () => ReturnType<typeof pbm>, string[]][] = [
    ['fail-PBM with an unknown owf', () => pbmAlgorithm({ iterations: 500, owf: '1.2.3.4' }), ['badAlg']],
    ['fail-PBM with 1,000,000 iterations', () => pbmAlgorithm({ iterations: 1_000_000 }), ['badAlg']],
    ['fail-PBMAC1 with an unknown PRF', () => pbmac1Algorithm({ iterations: 1000, prf: '1.2.3.4' }), ['badAlg']],
    ['fail-PBMAC1 with a 100-octet key', () => pbmac1Algorithm({ iterations: 1000, keyLength: 100 }), ['badAlg']],
  ];
  for (const [title, alg, bits] of macAlgs) {
    it(`${title} (a registered device) → ${bits.join(', ')}`, async () => {
      const id = `alg-${Math.random().toString(36).slice(2, 8)}`;
      const secret = await device(id);
      await refused({ body: new PKIBody({ ir: certReqMessages(newKey()) }), protection: macOf(secret, id, alg()) }, bits);
    });
  }
});

describe('CMP: certificate requests', () => {
  it('ok PBMAC1 (RFC 9481 §6.1.2): ir → ip protected with PBMAC1 and a fresh salt, certConf → pkiconf', async () => {
    const secret = await device('p1-dev');
    const alg = pbmac1Algorithm({ iterations: 2000 });
    const r = await irWithSecret('p1-dev', secret, { alg });
    const h = r.a.msg.msg.header;
    assert.equal(h.protectionAlg?.algorithm, id_alg.pbmac1);
    assert.notDeepEqual(h.protectionAlg?.parameters, alg.parameters, 'a fresh salt');
    assert.ok(verifyMac(h.protectionAlg!, secret, r.a.msg.protectedPart, new Uint8Array(r.a.msg.msg.protection!)), 'the answer MAC verifies with the secret');
    assert.ok((h.generalInfo ?? []).some((i) => i.infoType === id_it.confirmWaitTime));
    const c = await send({ body: certConf(r.cert), transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce, protection: macOf(secret, 'p1-dev', pbmac1Algorithm({ iterations: 2000 })) });
    assert.equal(c.body, 'pkiconf', c.text);
    assert.equal((await d.ctx.store.getCmpTransaction(r.tid))?.outcome, 'accepted');
  });

  it('ok an error answer to a request whose MAC verified is MAC-protected with the same secret', async () => {
    const secret = await device('mac-err');
    const a = await refused({ body: new PKIBody({ ir: certReqMessages(newKey(), { badPop: true }) }), protection: macOf(secret, 'mac-err') }, ['badPOP']);
    assert.equal(a.msg.msg.header.protectionAlg?.algorithm, id_alg.passwordBasedMac);
    assert.ok(verifyMac(a.msg.msg.header.protectionAlg!, secret, a.msg.protectedPart, new Uint8Array(a.msg.msg.protection!)));
  });

  const bad: [string, (key: KeyObject) => PKIBody, string[]][] = [
    ['fail-two CertReqMsgs in one ir', (k) => new PKIBody({ ir: certReqMessages(k, { count: 2 }) }), ['badRequest']],
    ['fail-a template without public key', (k) => new PKIBody({ ir: certReqMessages(k, { noPublicKey: true }) }), ['badCertTemplate']],
    ['fail-a POP that does not verify', (k) => new PKIBody({ ir: certReqMessages(k, { badPop: true }) }), ['badPOP']],
    ['fail-raVerified POP', (k) => new PKIBody({ ir: certReqMessages(k, { raVerified: true }) }), ['badPOP']],
    ['fail-kur with a MAC (a key update needs the current certificate)', (k) => new PKIBody({ kur: certReqMessages(k) }), ['notAuthorized']],
  ];
  for (const [title, body, bits] of bad) {
    it(`${title} → ${bits.join(', ')}, the secret not spent`, async () => {
      const id = `bad-${Math.random().toString(36).slice(2, 8)}`;
      const secret = await device(id);
      await refused({ body: body(newKey()), protection: macOf(secret, id) }, bits);
      assert.equal((await d.ctx.store.getEnrollmentSecret(id))?.usedAt, undefined);
    });
  }
});

describe('CMP: certConf and the transaction', () => {
  it('fail-certConf with another recipNonce → badRecipientNonce; the right one is still accepted', async () => {
    const secret = await device('cc-nonce');
    const r = await irWithSecret('cc-nonce', secret);
    const base = { body: certConf(r.cert), transactionId: tidBytes(r.tid), protection: macOf(secret, 'cc-nonce') };
    await refused({ ...base, recipNonce: new Uint8Array(16) }, ['badRecipientNonce']);
    assert.equal((await send({ ...base, recipNonce: r.a.msg.senderNonce })).body, 'pkiconf');
  });

  it('fail-certConf for a transaction this server never began → badRequest', async () => {
    await refused({ body: certConf(new Uint8Array(10)), recipNonce: new Uint8Array(16) }, ['badRequest'], /no transaction/);
  });

  it('fail-an unprotected certConf for a MAC transaction → wrongIntegrity', async () => {
    const secret = await device('cc-unprot');
    const r = await irWithSecret('cc-unprot', secret);
    await refused({ body: certConf(r.cert), transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce }, ['wrongIntegrity']);
  });

  it('fail-certConf with another certHash → badCertId; the certificate is revoked', async () => {
    const secret = await device('cc-hash');
    const r = await irWithSecret('cc-hash', secret);
    await refused({ body: certConf(r.cert, { hash: new Uint8Array(32) }), transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce, protection: macOf(secret, 'cc-hash') }, ['badCertId']);
    assert.equal((await d.ctx.store.getCertificate(r.serial))?.status, 'revoked');
  });

  it('ok certConf rejecting the certificate → pkiconf; revoked (cessationOfOperation), the device has none again', async () => {
    const secret = await device('cc-rej');
    const r = await irWithSecret('cc-rej', secret);
    const status = new PKIStatusInfo({ status: PKIStatus.rejection, statusString: new PKIFreeText(['not for me']) });
    const c = await send({ body: certConf(r.cert, { status }), transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce, protection: macOf(secret, 'cc-rej') });
    assert.equal(c.body, 'pkiconf');
    const rec = await d.ctx.store.getCertificate(r.serial);
    assert.deepEqual([rec?.status, rec?.revocation?.reason], ['revoked', 'cessationOfOperation']);
    const dev = await d.ctx.registry.device('cc-rej');
    assert.deepEqual([dev.state, dev.currentSerial], ['registered', undefined]);
    const audit = await d.ctx.store.listAudit({ action: 'certificate.abandon', target: r.serial });
    assert.match(String(audit[0]?.details.why), /not for me/);
  });

  it('fail-certConf after the deadline → badTime; the certificate is revoked', async () => {
    const secret = await device('cc-late');
    const r = await irWithSecret('cc-late', secret);
    clock.advance((d.ctx.config.cmp.confirmWaitSeconds + 1) * 1000);
    await refused({ body: certConf(r.cert), transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce, protection: macOf(secret, 'cc-late') }, ['badTime']);
    assert.equal((await d.ctx.store.getCertificate(r.serial))?.status, 'revoked');
  });

  it('ok an error message from the client ends the transaction: the certificate is abandoned, pkiconf', async () => {
    const secret = await device('cc-abort');
    const r = await irWithSecret('cc-abort', secret);
    const error = new PKIBody({ error: new ErrorMsgContent({ pKIStatusInfo: new PKIStatusInfo({ status: PKIStatus.rejection, statusString: new PKIFreeText(['giving up']) }) }) });
    const c = await send({ body: error, transactionId: tidBytes(r.tid), recipNonce: r.a.msg.senderNonce, protection: macOf(secret, 'cc-abort') });
    assert.equal(c.body, 'pkiconf');
    assert.equal((await d.ctx.store.getCertificate(r.serial))?.status, 'revoked');
    assert.match(String((await d.ctx.store.getCmpTransaction(r.tid))?.outcome), /giving up/);
  });

  it('ok the sweep: no certConf in time → revoked, the previous certificate current again, the transaction closed; twice is harmless', async () => {
    const first = await enrolled('sw-1');
    const kur = await send({ body: new PKIBody({ kur: certReqMessages(newKey()) }), ...signedBy(first) });
    assert.equal(kur.body, 'kup', kur.text);
    const serial = parseCertificate(new Uint8Array(AsnConvert.serialize(kur.msg.msg.body.kup!.response[0].certifiedKeyPair!.certOrEncCert.certificate!))).serial;
    assert.equal((await d.ctx.registry.device('sw-1')).currentSerial, serial);
    await cmp.sweep();
    assert.equal((await d.ctx.store.getCertificate(serial))?.status, 'good', 'not before the deadline');
    clock.advance((d.ctx.config.cmp.confirmWaitSeconds + 1) * 1000);
    assert.ok((await cmp.sweep()).abandoned >= 1);
    assert.equal((await d.ctx.store.getCertificate(serial))?.status, 'revoked');
    assert.equal((await d.ctx.registry.device('sw-1')).currentSerial, first.serial);
    assert.deepEqual(await d.ctx.store.getCmpTransaction(kur.msg.transactionId!).then((t) => [t?.state, t?.outcome]), ['closed', 'expired']);
    const audits = (await d.ctx.store.listAudit({ action: 'certificate.abandon', target: serial })).length;
    await cmp.sweep();
    assert.equal((await d.ctx.store.listAudit({ action: 'certificate.abandon', target: serial })).length, audits);
  });

  it('ok approval: ip waiting, pollReq → pollRep with checkAfter, approved → ip; a pollReq with another certReqId → badRequest', async () => {
    const secret = await device('pl-1', { requireApproval: true });
    const key = newKey();
    const first = await send({ body: new PKIBody({ ir: certReqMessages(key) }), protection: macOf(secret, 'pl-1') });
    assert.equal(first.msg.msg.body.ip!.response[0].status.status, PKIStatus.waiting);
    const poll = (nonce: Uint8Array, certReqId = 0) => send({ body: new PKIBody({ pollReq: new PollReqContent([new PollReq({ certReqId })]) }), transactionId: tidBytes(first.msg.transactionId!), recipNonce: nonce, protection: macOf(secret, 'pl-1') });
    await refused({ body: new PKIBody({ pollReq: new PollReqContent([new PollReq({ certReqId: 7 })]) }), transactionId: tidBytes(first.msg.transactionId!), recipNonce: first.msg.senderNonce, protection: macOf(secret, 'pl-1') }, ['badRequest']);
    const p1 = await poll(first.msg.senderNonce!);
    assert.equal(p1.body, 'pollRep', p1.text);
    assert.equal(p1.msg.msg.body.pollRep![0].checkAfter, d.ctx.config.est.retryAfterSeconds);
    const [pending] = (await d.ctx.registry.listPending('pending')).filter((p) => p.deviceId === 'pl-1');
    await d.ctx.registry.decide(pending.id, true, 'token:officer');
    // The nonce of the first pollRep was used: replaying it is refused.
    await refused({ body: new PKIBody({ pollReq: new PollReqContent([new PollReq({ certReqId: 0 })]) }), transactionId: tidBytes(first.msg.transactionId!), recipNonce: first.msg.senderNonce, protection: macOf(secret, 'pl-1') }, ['badRecipientNonce']);
    const p2 = await poll(p1.msg.senderNonce!);
    assert.equal(p2.body, 'ip', p2.text);
    assert.equal(p2.msg.msg.body.ip!.response[0].status.status, PKIStatus.accepted);
    assert.equal((await d.ctx.store.getCmpTransaction(first.msg.transactionId!))?.state, 'confirming');
  });
});

describe('CMP: rr and genm', () => {
  const rrFor = (cert: Uint8Array) => {
    const info = parseCertificate(cert);
    const t = new CertTemplate({ serialNumber: new Uint8Array(Buffer.from(info.serial, 'hex')).buffer, issuer: AsnConvert.parse(info.issuerDer, Name) });
    return new PKIBody({ rr: new RevReqContent([new RevDetails({ certDetails: t })]) });
  };

  it('ok rr signed with the certificate → rp accepted, revoked (unspecified without a reasonCode)', async () => {
    const e = await enrolled('rr-1');
    const a = await send({ body: rrFor(e.cert), ...signedBy(e) });
    assert.equal(a.body, 'rp', a.text);
    assert.equal(a.status, PKIStatus.accepted);
    assert.equal((await d.ctx.store.getCertificate(e.serial))?.revocation?.reason, 'unspecified');
  });

  it('fail-rr protected with a MAC → notAuthorized', async () => {
    const e = await enrolled('rr-2');
    const secret = await d.ctx.registry.newSecret('rr-2', 'test');
    await refused({ body: rrFor(e.cert), protection: macOf(secret, 'rr-2') }, ['notAuthorized']);
  });

  it('fail-rr for another certificate than the signing one → badCertId, nothing revoked', async () => {
    const a = await enrolled('rr-3');
    const b = await enrolled('rr-4');
    await refused({ body: rrFor(b.cert), ...signedBy(a) }, ['badCertId']);
    assert.equal((await d.ctx.store.getCertificate(b.serial))?.status, 'good');
  });

  it('ok an unprotected genm for the CA certificates → genp signed by the CA with the chain', async () => {
    const a = await send({ body: new PKIBody({ genm: new GenMsgContent([new InfoTypeAndValue({ infoType: id_it.caCerts })]) }) });
    assert.equal(a.body, 'genp');
    assert.deepEqual(a.msg.extraCerts[0].der, (await d.ctx.store.getCa('issuing'))!.certDer, 'signed by the issuing CA');
    const value = new Uint8Array(a.msg.msg.body.genp![0].infoValue!);
    for (const c of await d.ctx.authority.chain('issuing')) assert.ok(Buffer.from(value).includes(Buffer.from(c)));
  });

  it('ok certReqTemplate for a device (MAC): its registry subject and its profile key type; unprotected: no subject', async () => {
    const secret = await device('tpl-1');
    const ask = (o: Partial<RequestOptions>) => send({ body: new PKIBody({ genm: new GenMsgContent([new InfoTypeAndValue({ infoType: id_it.certReqTemplate })]) }), ...o });
    const mine = await ask({ protection: macOf(secret, 'tpl-1') });
    const v = Buffer.from(mine.msg.msg.body.genp![0].infoValue!);
    assert.ok(v.includes(Buffer.from(encodeName([{ type: 'CN', value: 'tpl-1' }]).subarray(4))), 'CN=tpl-1 in the template');
    assert.ok(v.includes(Buffer.from('2a8648ce3d030107', 'hex')), 'P-256 in keySpec');
    const anon = Buffer.from((await ask({})).msg.msg.body.genp![0].infoValue!);
    assert.ok(!anon.includes(Buffer.from('tpl-1')));
    assert.equal((await d.ctx.store.getEnrollmentSecret('tpl-1'))?.usedAt, undefined, 'a genm spends no secret');
  });

  it('ok crlStatusList (RFC 9483 §4.3.4): the CRL named by issuer or by distribution point, none when the client has the newest', async () => {
    const crl = await d.ctx.crls.publish('issuing', 'base');
    const issuer = (await d.ctx.authority.ca('issuing')).info.subjectDer;
    const ask = async (source: CRLSource, thisUpdate?: Date) => {
      const list = new CRLStatusListValue([new CRLStatus({ source, thisUpdate: thisUpdate ? new Time(thisUpdate) : undefined })]);
      const a = await send({ body: new PKIBody({ genm: new GenMsgContent([new InfoTypeAndValue({ infoType: id_it.crlStatusList, infoValue: AsnConvert.serialize(list) })]) }) });
      assert.equal(a.body, 'genp', a.text);
      assert.equal(a.msg.msg.body.genp![0].infoType, id_it.crls);
      return a.msg.msg.body.genp![0].infoValue;
    };
    const byIssuer = new CRLSource({ issuer: new GeneralNames([new GeneralName({ directoryName: AsnConvert.parse(issuer, Name) })]) });
    const got = await ask(byIssuer);
    assert.ok(got && Buffer.from(got).includes(Buffer.from(crl.der)), 'the current CRL');
    const dpUrl = `${d.ctx.config.publicUrl.replace(/\/+$/, '')}/crl/issuing.crl`;
    const byDp = new CRLSource({ dpn: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: dpUrl })] }) });
    assert.ok(Buffer.from((await ask(byDp))!).includes(Buffer.from(crl.der)));
    assert.equal(await ask(byIssuer, crl.thisUpdate), undefined, 'up to date: no value');
  });

  const genmFail: [string, InfoTypeAndValue[], string[]][] = [
    ['fail-an unsupported info type', [new InfoTypeAndValue({ infoType: id_it.signKeyPairTypes })], ['badRequest']],
    ['fail-an empty genm', [], ['badRequest']],
  ];
  for (const [title, items, bits] of genmFail) {
    it(`${title} → ${bits.join(', ')}`, async () => {
      await refused({ body: new PKIBody({ genm: new GenMsgContent(items) }) }, bits);
    });
  }
});
