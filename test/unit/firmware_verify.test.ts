/**
 * What a device checks before installing an update (src/firmware/verify.ts):
 * every refusal, and what is accepted. Signers are certified by a real
 * fleetpki CA (root → firmware CA → code-signing certificate), CRLs are the
 * CA's own; the odd signatures (other key, wrong purpose, expired signer)
 * are made with the CMS writer directly, bypassing the signing side's checks.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { crlSignedBy, parseCrl, type ParsedCrl } from '../../src/agent/certs.js';
import { CrlService } from '../../src/authority/crl.js';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { FakeClock } from '../../src/clock.js';
import { ProblemError } from '../../src/errors.js';
import { signDetached } from '../../src/firmware/cms.js';
import { bytesOf, digestStream } from '../../src/firmware/digest.js';
import { encodeManifest, id_aa_firmwareManifest, type SignDigest } from '../../src/firmware/manifest.js';
import { firmwareRefusalOf, type FirmwareRefusal } from '../../src/firmware/refusal.js';
import { signFirmware, type FirmwareSignRequest, type SigningIdentity } from '../../src/firmware/sign.js';
import { verifyFirmware, type FirmwareExpectations, type FirmwareTrust } from '../../src/firmware/verify.js';
import { keyObjectSigner, type Signer } from '../../src/keys/key_store.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { makeTestCa, TEST_PUBLIC_URL, type TestCa } from '../helpers/ca_fixture.js';

const T0 = new Date('2030-01-01T00:00:00Z');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const clock = new FakeClock(T0);
let fleet: TestCa;
let partner: TestCa;
let root: CertInfo;
const image = new Uint8Array(randomBytes(64 * 1024));
const ids: Record<string, SigningIdentity> = {};
let crls: ParsedCrl[] = [];

/** A code-signing (or other) certificate from `caName` for a fresh key. */
async function identity(ca: TestCa, caName: string, o: { profile?: string; alg?: 'P-256' | 'P-384' | 'rsa' } = {}): Promise<SigningIdentity> {
  const { privateKey } = o.alg === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 3072 }) : generateKeyPairSync('ec', { namedCurve: o.alg ?? 'P-256' });
  const signer = keyObjectSigner(privateKey);
  const r = await ca.authority.issue({ serverGeneratedSpki: signer.spki, profile: o.profile ?? 'code-signing', ca: caName, subject: [{ type: 'O', value: 'Fleetpki Test' }, { type: 'CN', value: `${o.profile ?? 'code-signing'} ${o.alg ?? 'P-256'}` }], actor: 'test' });
  return { signer, certificate: parseCertificate(r.der), chain: r.chain.slice(0, -1) };
}

async function publish(ca: TestCa, name: string): Promise<ParsedCrl> {
  const svc = new CrlService(ca.store, ca.authority, clock, { validityHours: 10 * 24, refreshAheadHours: 12, deltaValidityHours: 0, publicUrl: TEST_PUBLIC_URL });
  return parseCrl((await svc.publish(name)).der);
}

const trust = (o: Partial<FirmwareTrust> = {}): FirmwareTrust => ({
  anchors: [root],
  crls: (_c, issuer) => crls.find((x) => Buffer.compare(Buffer.from(x.issuerDer), Buffer.from(issuer.subjectDer)) === 0 && crlSignedBy(x, issuer)),
  now: clock.now(),
  ...o,
});

const REQ: FirmwareSignRequest = { model: 'sensor-x', version: '1.4.2', minVersion: '1.3.0' };
const EXP: FirmwareExpectations = { model: 'sensor-x', installedVersion: '1.3.9' };

async function sign(id: SigningIdentity, req: Partial<FirmwareSignRequest> = {}, img = image): Promise<Uint8Array> {
  const r = { ...REQ, ...req };
  const alg: SignDigest = r.digestAlgorithm ?? (id.signer.key.type === 'ec' && id.signer.key.curve === 'P-384' ? 'sha384' : 'sha256');
  return (await signFirmware(id, r, await digestStream(bytesOf(img), alg), clock.now())).der;
}

/** Signs below the signing side's checks (a CA key, a TLS certificate, a signing time of our choosing). */
async function signRaw(id: SigningIdentity, o: { signingTime?: Date; signer?: Signer } = {}): Promise<Uint8Array> {
  const { digest, size } = await digestStream(bytesOf(image), 'sha256');
  const manifest = encodeManifest({ model: REQ.model, version: REQ.version, minVersion: REQ.minVersion, size, digestAlgorithm: 'sha256', digest: Buffer.from(digest).toString('hex') });
  return signDetached({ signer: o.signer ?? id.signer, certificate: id.certificate, chain: id.chain, digestAlgorithm: 'sha256', digest, signingTime: o.signingTime ?? clock.now(), attributes: [{ type: id_aa_firmwareManifest, values: [manifest] }] });
}

before(async () => {
  fleet = await makeTestCa({ clock, profiles: { 'cs-short': { ...DEFAULT_PROFILES['code-signing'], description: 'one day', validityDays: 1 } } });
  partner = await makeTestCa({ clock, keyAlgorithm: 'ecdsa-p384' });
  root = parseCertificate(fleet.rootPem);
  const sub = (name: string) => fleet.authority.createIssuingCa({ name, parent: 'root', subject: [{ type: 'O', value: 'Fleetpki Test' }, { type: 'CN', value: `Test ${name} CA` }], keyAlgorithm: 'ecdsa-p256', validityDays: 1825, actor: 'test' });
  await sub('firmware');
  await sub('firmware-b');
  ids.p256 = await identity(fleet, 'firmware');
  ids.p384 = await identity(fleet, 'firmware', { alg: 'P-384' });
  ids.rsa = await identity(fleet, 'firmware', { alg: 'rsa' });
  ids.short = await identity(fleet, 'firmware', { profile: 'cs-short' });
  ids.tls = await identity(fleet, 'firmware', { profile: 'device-tls' });
  ids.revoked = await identity(fleet, 'firmware');
  ids.underRevokedCa = await identity(fleet, 'firmware-b');
  ids.partner = await identity(partner, 'issuing');
  const fwCa = (await fleet.store.getCa('firmware'))!;
  ids.caKey = { signer: await fleet.keys.signer(fwCa.keyRef!), certificate: parseCertificate(fwCa.certDer), chain: [] };
  await fleet.authority.revoke(ids.revoked.certificate.serial, 'keyCompromise', 'test');
  await fleet.authority.revoke(parseCertificate((await fleet.store.getCa('firmware-b'))!.certDer).serial, 'cACompromise', 'test');
  crls = [await publish(fleet, 'firmware'), await publish(fleet, 'firmware-b'), await publish(fleet, 'root')];
});

after(async () => {
  await fleet.cleanup();
  await partner.cleanup();
});

interface Case {
  name: string;
  /** Makes the signature (and the image, the trust, the expectations) after the clock is set. */
  make: () => Promise<{ sig: Uint8Array; img?: Uint8Array; trust?: FirmwareTrust; exp?: FirmwareExpectations }>;
  /** Verify this long after T0 (signing happens at T0 unless make moves the clock). */
  verifyAfterMs?: number;
  refusal?: FirmwareRefusal;
  detail?: RegExp;
  /** For accepted cases. */
  expect?: { version: string; digestAlgorithm?: string; rollbackFloor?: string };
}

const flip = (b: Uint8Array, at: number) => {
  const c = b.slice();
  c[at] ^= 0x01;
  return c;
};

const cases: Case[] = [
  { name: 'ok-p256-sha256', make: async () => ({ sig: await sign(ids.p256) }), expect: { version: '1.4.2', digestAlgorithm: 'sha256', rollbackFloor: '1.3.0' } },
  { name: 'ok-p384-sha384', make: async () => ({ sig: await sign(ids.p384) }), expect: { version: '1.4.2', digestAlgorithm: 'sha384' } },
  { name: 'ok-rsa-3072', make: async () => ({ sig: await sign(ids.rsa) }), expect: { version: '1.4.2', digestAlgorithm: 'sha256' } },
  { name: 'ok-p256-with-sha384', make: async () => ({ sig: await sign(ids.p256, { digestAlgorithm: 'sha384' }) }), expect: { version: '1.4.2', digestAlgorithm: 'sha384' } },
  { name: 'ok-release-after-its-pre-release', make: async () => ({ sig: await sign(ids.p256), exp: { ...EXP, installedVersion: '1.4.2-rc.1' } }), expect: { version: '1.4.2' } },
  { name: 'ok-nothing-installed-yet', make: async () => ({ sig: await sign(ids.p256), exp: { model: 'sensor-x' } }), expect: { version: '1.4.2' } },
  { name: 'ok-at-the-rollback-floor', make: async () => ({ sig: await sign(ids.p256), exp: { ...EXP, rollbackFloor: '1.4.2' } }), expect: { version: '1.4.2', rollbackFloor: '1.4.2' } },
  { name: 'ok-empty-image', make: async () => ({ sig: await sign(ids.p256, {}, new Uint8Array(0)), img: new Uint8Array(0) }), expect: { version: '1.4.2' } },
  // Code signing: valid when signed; the signer's later expiry does not matter.
  { name: 'ok-signer-expired-since-but-valid-at-signing', make: async () => ({ sig: await sign(ids.short) }), verifyAfterMs: 3 * DAY, expect: { version: '1.4.2' } },
  { name: 'ok-crl-for-the-signer-only-with-requireCrl-leaf', make: async () => ({ sig: await sign(ids.p256), trust: trust({ requireCrl: 'leaf', crls: (c, i) => (i.isCa && i.subjectText.includes('firmware') ? crls[0] : undefined) }) }), expect: { version: '1.4.2' } },
  { name: 'ok-manifest-before-its-expiry', make: async () => ({ sig: await sign(ids.p256, { expires: new Date(T0.getTime() + 2 * HOUR) }) }), verifyAfterMs: HOUR, expect: { version: '1.4.2' } },

  // Other key: a signature by another key under the signer's certificate; a signer of another PKI.
  {
    name: 'fail-other-key',
    make: async () => {
      const other = keyObjectSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      return { sig: await signRaw(ids.p256, { signer: { spki: ids.p256.signer.spki, key: other.key, sign: other.sign } }) };
    },
    refusal: 'bad_signature',
  },
  { name: 'fail-signer-of-another-pki', make: async () => ({ sig: await sign(ids.partner) }), refusal: 'untrusted', detail: /does not chain to a fleet root/ },
  { name: 'fail-modified-image', make: async () => ({ sig: await sign(ids.p256), img: flip(image, 1000) }), refusal: 'digest_mismatch' },
  { name: 'fail-modified-last-byte', make: async () => ({ sig: await sign(ids.p256), img: flip(image, image.length - 1) }), refusal: 'digest_mismatch' },
  { name: 'fail-truncated-image', make: async () => ({ sig: await sign(ids.p256), img: image.subarray(0, image.length - 1) }), refusal: 'size_mismatch' },
  { name: 'fail-extended-image', make: async () => ({ sig: await sign(ids.p256), img: new Uint8Array([...image, 0]) }), refusal: 'size_mismatch' },
  { name: 'fail-rollback-same-version', make: async () => ({ sig: await sign(ids.p256), exp: { ...EXP, installedVersion: '1.4.2' } }), refusal: 'rollback', detail: /not newer than the installed 1\.4\.2/ },
  { name: 'fail-rollback-same-version-other-build', make: async () => ({ sig: await sign(ids.p256, { version: '1.4.2+build.7' }), exp: { ...EXP, installedVersion: '1.4.2+build.6' } }), refusal: 'rollback' },
  { name: 'fail-rollback-older', make: async () => ({ sig: await sign(ids.p256), exp: { ...EXP, installedVersion: '1.10.0' } }), refusal: 'rollback' },
  { name: 'fail-below-the-rollback-floor', make: async () => ({ sig: await sign(ids.p256, { minVersion: undefined }), exp: { model: 'sensor-x', installedVersion: '1.0.0', rollbackFloor: '1.5.0' } }), refusal: 'rollback', detail: /below the rollback floor 1\.5\.0/ },
  { name: 'fail-revoked-signer', make: async () => ({ sig: await sign(ids.revoked) }), refusal: 'revoked', detail: /is revoked \(CRL 1 of/ },
  { name: 'fail-revoked-firmware-ca', make: async () => ({ sig: await sign(ids.underRevokedCa) }), refusal: 'revoked', detail: /firmware-b CA is revoked/ },
  { name: 'fail-wrong-eku-tls-certificate', make: async () => ({ sig: await signRaw(ids.tls) }), refusal: 'wrong_purpose', detail: /not a code-signing certificate/ },
  { name: 'fail-ca-key-as-signer', make: async () => ({ sig: await signRaw(ids.caKey) }), refusal: 'wrong_purpose', detail: /is a CA certificate/ },
  {
    name: 'fail-expired-signer',
    make: async () => {
      clock.set(T0.getTime() + 2 * DAY); // past the one-day certificate
      return { sig: await signRaw(ids.short) };
    },
    refusal: 'signer_expired',
    detail: /had expired at the signing time/,
  },
  { name: 'fail-signer-not-yet-valid', make: async () => ({ sig: await signRaw(ids.p256, { signingTime: new Date(ids.p256.certificate.notBefore.getTime() - HOUR) }) }), refusal: 'signer_not_yet_valid' },
  { name: 'fail-truncated-signature', make: async () => ({ sig: (await sign(ids.p256)).subarray(0, 300) }), refusal: 'malformed_signature' },
  { name: 'fail-signature-missing-its-last-byte', make: async () => ({ sig: (await sign(ids.p256)).slice(0, -1) }), refusal: 'malformed_signature' },
  { name: 'fail-garbage-signature', make: async () => ({ sig: new Uint8Array(randomBytes(2048)) }), refusal: 'malformed_signature' },
  { name: 'fail-garbage-der-signature', make: async () => ({ sig: Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00) }), refusal: 'malformed_signature' },
  { name: 'fail-empty-signature-file', make: async () => ({ sig: new Uint8Array(0) }), refusal: 'malformed_signature' },
  { name: 'fail-a-certificate-as-signature', make: async () => ({ sig: ids.p256.certificate.der }), refusal: 'malformed_signature' },
  { name: 'fail-wrong-model', make: async () => ({ sig: await sign(ids.p256), exp: { ...EXP, model: 'sensor-y' } }), refusal: 'wrong_model', detail: /for model sensor-x, this device is sensor-y/ },
  { name: 'fail-expired-manifest', make: async () => ({ sig: await sign(ids.p256, { expires: new Date(T0.getTime() + HOUR) }) }), verifyAfterMs: 2 * HOUR, refusal: 'manifest_expired' },
  { name: 'fail-no-crl', make: async () => ({ sig: await sign(ids.p256), trust: trust({ crls: () => undefined }) }), refusal: 'no_crl', detail: /crl\/firmware\.crl/ },
  { name: 'fail-no-crl-for-the-firmware-ca', make: async () => ({ sig: await sign(ids.p256), trust: trust({ crls: (_c, i) => (i.subjectText.includes('Root') ? undefined : crls[0]) }) }), refusal: 'no_crl', detail: /crl\/root\.crl/ },
  { name: 'fail-expired-crl', make: async () => ({ sig: await sign(ids.p256) }), verifyAfterMs: 11 * DAY, refusal: 'crl_expired' },
  {
    name: 'fail-tampered-manifest',
    make: async () => {
      const sig = await sign(ids.p256);
      // "1.4.2" → "1.9.2" inside the signed manifest attribute.
      const at = Buffer.from(sig).indexOf(Buffer.from('0c05312e342e32', 'hex'));
      assert.ok(at > 0);
      const t = sig.slice();
      t[at + 4] = 0x39;
      return { sig: t, exp: { ...EXP, installedVersion: '1.5.0' } };
    },
    refusal: 'bad_signature',
  },
  { name: 'fail-other-root-as-only-anchor', make: async () => ({ sig: await sign(ids.p256), trust: trust({ anchors: [parseCertificate(partner.rootPem)] }) }), refusal: 'untrusted' },
];

describe('firmware verify: what a device accepts and refuses', () => {
  for (const c of cases) {
    it(c.name, async () => {
      clock.set(T0);
      const { sig, img, trust: t, exp } = await c.make();
      clock.set(clock.now().getTime() + (c.verifyAfterMs ?? 0));
      let read = false;
      const stream = (async function* () {
        read = true;
        yield img ?? image;
      })();
      const run = verifyFirmware(sig, stream, t ?? trust(), exp ?? EXP);
      if (c.refusal) {
        const e = await run.then(
          () => assert.fail('accepted'),
          (err: unknown) => err,
        );
        assert.ok(e instanceof ProblemError, String(e));
        assert.equal(e.code, 'firmware_rejected', e.message);
        assert.equal(firmwareRefusalOf(e), c.refusal, e.message);
        assert.match(e.detail, new RegExp(`^firmware refused \\(${c.refusal}\\): `));
        if (c.detail) assert.match(e.detail, c.detail);
        // Refusals about the signer come before a byte of the image is read.
        if (!['digest_mismatch', 'size_mismatch'].includes(c.refusal)) assert.equal(read, false, 'the image was read');
      } else {
        const a = await run;
        assert.equal(a.version, c.expect!.version);
        assert.equal(a.model, 'sensor-x');
        assert.equal(a.bound, true);
        assert.equal(a.size, (img ?? image).length);
        if (c.expect!.digestAlgorithm) assert.equal(a.digestAlgorithm, c.expect!.digestAlgorithm);
        if (c.expect!.rollbackFloor) assert.equal(a.rollbackFloor, c.expect!.rollbackFloor);
        assert.deepEqual(a.path.map((p) => p.subjectText).slice(1), ['O=Fleetpki Test, CN=Test firmware CA', 'O=Fleetpki Test, CN=Test Root CA ecdsa-p256']);
      }
    });
  }
});

describe('firmware verify: streaming', () => {
  it('ok an image in many small chunks is read once, chunk by chunk', async () => {
    clock.set(T0);
    const sig = await sign(ids.p256);
    let chunks = 0;
    const stream = (async function* () {
      for (let i = 0; i < image.length; i += 1000) {
        chunks++;
        yield image.subarray(i, i + 1000);
      }
    })();
    const a = await verifyFirmware(sig, stream, trust(), EXP);
    assert.equal(a.size, image.length);
    assert.equal(chunks, Math.ceil(image.length / 1000));
  });
});
