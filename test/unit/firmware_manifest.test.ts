/**
 * The pieces under the firmware signature: SemVer versions, the manifest
 * attribute (its DER and its checks), the CMS layout (RFC 5652 rules a
 * verifier relies on) and the signing endpoint's rate limiter.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as der from '../../src/asn1/der.js';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemError } from '../../src/errors.js';
import { firmwareRefusalOf } from '../../src/firmware/refusal.js';
import { parseSignature } from '../../src/firmware/cms.js';
import { bytesOf, digestStream } from '../../src/firmware/digest.js';
import { decodeManifest, encodeManifest, id_aa_firmwareManifest, type FirmwareManifest } from '../../src/firmware/manifest.js';
import { signFirmware, type SigningIdentity } from '../../src/firmware/sign.js';
import { compareVersions, isVersion, maxVersion } from '../../src/firmware/version.js';
import { keyObjectSigner } from '../../src/keys/key_store.js';
import { RateLimiter } from '../../src/protocols/api/rate_limit.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { pemEncode } from '../../src/x509/pem.js';
import { makeTestCa, OPENSSL, type TestCa } from '../helpers/ca_fixture.js';

describe('firmware versions (SemVer 2.0.0)', () => {
  const valid = ['0.0.0', '1.4.2', '10.20.30', '1.0.0-rc.1', '1.0.0-alpha.beta.1', '1.0.0+build.5', '1.0.0-rc.1+sha.5114f85'];
  const invalid = ['1.4', '1', 'v1.4.2', '=1.4.2', ' 1.4.2', '1.4.2 ', '01.4.2', '1.04.2', '1.4.2-', '1.4.2+', '', 'latest', `1.0.0-${'a'.repeat(70)}`];
  for (const v of valid) it(`ok-${v}`, () => assert.equal(isVersion(v), true));
  for (const v of invalid) it(`fail-${JSON.stringify(v)}`, () => assert.equal(isVersion(v), false));
  const order: Array<[string, string, number]> = [
    ['1.4.2', '1.3.9', 1],
    ['1.10.0', '1.9.9', 1],
    ['1.4.2', '1.4.2-rc.1', 1],
    ['1.4.2-rc.2', '1.4.2-rc.10', -1],
    ['1.4.2-alpha', '1.4.2-alpha.1', -1],
    ['1.4.2+b1', '1.4.2+b2', 0],
    ['2.0.0', '10.0.0', -1],
  ];
  for (const [a, b, want] of order) it(`compare ${a} vs ${b} → ${want}`, () => assert.equal(Math.sign(compareVersions(a, b)), want));
  it('maxVersion keeps the higher, undefined is lowest', () => {
    assert.equal(maxVersion(undefined, '1.0.0'), '1.0.0');
    assert.equal(maxVersion('1.2.0', undefined), '1.2.0');
    assert.equal(maxVersion('1.2.0', '1.10.0'), '1.10.0');
    assert.equal(maxVersion(undefined, undefined), undefined);
  });
});

const M: FirmwareManifest = { model: 'sensor-x', version: '1.4.2', size: 5 * 2 ** 30, digestAlgorithm: 'sha256', digest: 'ab'.repeat(32), minVersion: '1.3.0', expires: new Date('2031-06-30T12:00:00.750Z') };

describe('firmware manifest attribute', () => {
  it('ok round trip; sizes past 4 GiB; expiry in whole seconds, GeneralizedTime', () => {
    const d = encodeManifest(M);
    assert.deepEqual(decodeManifest(d), { ...M, expires: new Date('2031-06-30T12:00:00Z') });
    const parsed = execFileSync(OPENSSL, ['asn1parse', '-inform', 'DER'], { input: d, encoding: 'utf8' });
    assert.match(parsed, /UTF8STRING +:sensor-x/);
    assert.match(parsed, /INTEGER +:0140000000/);
    assert.match(parsed, /OBJECT +:sha256/);
    // [1] IMPLICIT GeneralizedTime "20310630120000Z"
    assert.ok(Buffer.from(d).includes(Buffer.from('810f3230333130363330313230303030', 'hex')));
  });
  it('ok optional fields left out', () => {
    const m: FirmwareManifest = { model: 'm', version: '0.0.1', size: 0, digestAlgorithm: 'sha384', digest: 'cd'.repeat(48) };
    assert.deepEqual(decodeManifest(encodeManifest(m)), { ...m, minVersion: undefined, expires: undefined });
  });
  const bad: Array<[string, Partial<FirmwareManifest>, RegExp]> = [
    ['fail-model-with-space', { model: 'sensor x' }, /model/],
    ['fail-empty-model', { model: '' }, /model/],
    ['fail-version-with-v', { version: 'v1.4.2' }, /not a semantic version/],
    ['fail-min-version-above-version', { minVersion: '1.5.0' }, /above the version/],
    ['fail-short-digest', { digest: 'ab'.repeat(31) }, /64 lowercase hex/],
    ['fail-digest-of-another-algorithm', { digestAlgorithm: 'sha384' }, /96 lowercase hex/],
    ['fail-negative-size', { size: -1 }, /size/],
    ['fail-fractional-size', { size: 1.5 }, /size/],
    ['fail-invalid-expiry', { expires: new Date(NaN) }, /not a date/],
  ];
  for (const [name, change, re] of bad) {
    it(name, () => assert.throws(() => encodeManifest({ ...M, ...change }), (e: unknown) => isProblem(e, 'bad_request') && re.test(e.detail)));
  }
  it('fail-decoding garbage, and a manifest version other than 1', () => {
    assert.throws(() => decodeManifest(Uint8Array.of(1, 2, 3)), (e: unknown) => isProblem(e, 'bad_request'));
    const v2 = encodeManifest(M).slice();
    assert.deepEqual([...v2.subarray(2, 5)], [0x02, 0x01, 0x01]);
    v2[4] = 2;
    assert.throws(() => decodeManifest(v2), (e: unknown) => isProblem(e, 'bad_request') && /version 2/.test(e.detail));
  });
});

describe('firmware signature layout (RFC 5652)', () => {
  let ca: TestCa;
  let id: SigningIdentity;
  let sig: Uint8Array;
  let keyPem: string;
  before(async () => {
    ca = await makeTestCa({ clock: new FakeClock('2030-01-01T00:00:00Z') });
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const signer = keyObjectSigner(privateKey);
    const r = await ca.authority.issue({ serverGeneratedSpki: signer.spki, profile: 'code-signing', subject: [{ type: 'CN', value: 'layout' }], actor: 'test' });
    id = { signer, certificate: parseCertificate(r.der), chain: r.chain.slice(0, -1) };
    sig = (await signFirmware(id, { model: 'sensor-x', version: '1.4.2' }, await digestStream(bytesOf(Buffer.from('image')), 'sha256'), new Date('2030-06-01T00:00:00Z'))).der;
  });
  after(() => ca.cleanup());

  it('ok detached id-data, one SHA-256 signer by issuer and serial, the chain without the root, sorted DER sets', () => {
    const p = parseSignature(sig);
    assert.equal(p.digestAlgorithm, 'sha256');
    assert.ok('serial' in p.sid && p.sid.serial === id.certificate.serial);
    assert.equal(p.certificates.length, 2);
    const sorted = [...p.certificates].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    assert.deepEqual(p.certificates, sorted, 'CertificateSet in DER order');
    assert.ok(p.certificates.some((c) => Buffer.compare(Buffer.from(c), Buffer.from(id.certificate.der)) === 0));
    assert.ok(!p.certificates.some((c) => Buffer.compare(Buffer.from(c), Buffer.from(parseCertificate(ca.rootPem).der)) === 0), 'no root');
    assert.equal(p.signingTime?.toISOString(), '2030-06-01T00:00:00.000Z');
    assert.deepEqual(p.otherAttributes, []);
    assert.ok(p.manifest);
    // The signed attributes: a SET whose elements are in DER order (X.690 §11.6).
    const attrs = der.readChildren(p.signedAttributes, der.readTlv(p.signedAttributes, 0)).map((t) => Buffer.from(der.slice(p.signedAttributes, t)));
    assert.equal(attrs.length, 4);
    assert.deepEqual(attrs, [...attrs].sort(Buffer.compare));
    assert.ok(attrs.some((a) => a.includes(Buffer.from(der.oid(id_aa_firmwareManifest)))));
    const printed = execFileSync(OPENSSL, ['cms', '-cmsout', '-print', '-inform', 'DER'], { input: sig, encoding: 'utf8' });
    assert.match(printed, /eContent: <ABSENT>/);
    assert.match(printed, /version: 1/);
    assert.match(printed, /UTCTIME:Jun  1 00:00:00 2030 GMT/);
    assert.match(printed, /2\.25\.171050690179108723634140212179729089022\.1\.1/);
  });

  it('ok the same signature as PEM (-----BEGIN CMS-----)', () => {
    assert.deepEqual(parseSignature(Buffer.from(pemEncode('CMS', sig))).der, sig);
  });

  it('fail-a signature with the image inside (attached) is not a firmware signature', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-fw-layout-'));
    try {
      writeFileSync(join(dir, 'key.pem'), keyPem);
      writeFileSync(join(dir, 'cert.pem'), pemEncode('CERTIFICATE', id.certificate.der));
      writeFileSync(join(dir, 'fw.bin'), 'image');
      const attached = execFileSync(OPENSSL, ['cms', '-sign', '-nodetach', '-binary', '-in', join(dir, 'fw.bin'), '-signer', join(dir, 'cert.pem'), '-inkey', join(dir, 'key.pem'), '-outform', 'DER']);
      assert.throws(() => parseSignature(attached), (e: unknown) => firmwareRefusalOf(e) === 'malformed_signature' && /attached/.test((e as ProblemError).detail));
      const detached = execFileSync(OPENSSL, ['cms', '-sign', '-binary', '-in', join(dir, 'fw.bin'), '-signer', join(dir, 'cert.pem'), '-inkey', join(dir, 'key.pem'), '-outform', 'DER']);
      assert.equal(parseSignature(detached).manifest, undefined, 'the control: openssl\'s detached signature parses, without a manifest');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('firmware signing rate limit (token bucket)', () => {
  it('ok a burst, then one per interval; each token on its own; Retry-After counts to the next', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter(6, 3, clock); // one every 10 s, 3 at once
    for (let i = 0; i < 3; i++) assert.equal(rl.take('a').ok, true);
    const refused = rl.take('a');
    assert.deepEqual(refused, { ok: false, retryAfterSeconds: 10 });
    assert.equal(rl.take('b').ok, true, 'another token has its own bucket');
    clock.advance(4_000);
    assert.deepEqual(rl.take('a'), { ok: false, retryAfterSeconds: 6 });
    clock.advance(6_000);
    assert.equal(rl.take('a').ok, true);
    assert.equal(rl.take('a').ok, false);
    clock.advance(3_600_000);
    for (let i = 0; i < 3; i++) assert.equal(rl.take('a').ok, true, 'never more than the burst');
    assert.equal(rl.take('a').ok, false);
  });
  it('ok many keys: full buckets are dropped, busy ones kept', () => {
    const clock = new FakeClock();
    const rl = new RateLimiter(60, 1, clock, 10);
    assert.equal(rl.take('busy').ok, true);
    for (let i = 0; i < 20; i++) {
      clock.advance(10);
      rl.take(`k${i}`);
    }
    assert.equal(rl.take('busy').ok, false, 'the busy bucket survived pruning');
  });
});
