import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as der from '../../src/asn1/der.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { parseCsr } from '../../src/x509/csr.js';
import type { KeyInfo } from '../../src/x509/algorithms.js';
import { encodeName } from '../../src/x509/names.js';
import { derFromPemOrDer, pemEncode } from '../../src/x509/pem.js';
import { makeCsr } from '../helpers/ca_fixture.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/csr/', import.meta.url));
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');
const fixtureDer = (name: string) => derFromPemOrDer(fixture(name), ['CERTIFICATE REQUEST']);

const problem = (code: ProblemCode, why?: RegExp) => (e: unknown) => {
  assert.ok(isProblem(e), `expected a ProblemError, got ${String(e)}`);
  assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.detail}`);
  if (why) assert.match(e.detail, why);
  return true;
};

/** sha256 of the SPKI DER as OpenSSL extracts it from the request. */
function opensslSpkiSha256(file: string): string {
  const pub = execFileSync('/usr/bin/openssl', ['req', '-in', join(FIXTURES, file), '-noout', '-pubkey'], { encoding: 'utf8' });
  const spki = execFileSync('/usr/bin/openssl', ['pkey', '-pubin', '-outform', 'DER'], { input: pub });
  return createHash('sha256').update(spki).digest('hex');
}

describe('parseCsr: fixtures made by openssl req', () => {
  const cases: Array<{ file: string; key: KeyInfo; cn: string; sans?: string[]; unsupported?: string[] }> = [
    { file: 'p256.csr', key: { type: 'ec', curve: 'P-256' }, cn: 'sensor-p256' },
    { file: 'p384.csr', key: { type: 'ec', curve: 'P-384' }, cn: 'sensor-p384' },
    { file: 'ed25519.csr', key: { type: 'ed25519' }, cn: 'sensor-ed25519' },
    { file: 'ed448.csr', key: { type: 'ed448' }, cn: 'sensor-ed448' },
    { file: 'rsa2048.csr', key: { type: 'rsa', bits: 2048 }, cn: 'sensor-rsa2048' },
    { file: 'rsa-pss.csr', key: { type: 'rsa', bits: 2048 }, cn: 'sensor-rsa-pss' },
    {
      file: 'sans-all.csr',
      key: { type: 'ec', curve: 'P-256' },
      cn: 'sensor-sans',
      sans: ['dns:a.example', 'ip:10.0.0.1', 'ip:2001:db8::1', 'uri:urn:example:device:1', 'email:ops@example.com'],
    },
    { file: 'othername.csr', key: { type: 'ec', curve: 'P-256' }, cn: 'sensor-othername', sans: ['dns:b.example'], unsupported: ['otherName:1.3.6.1.4.1.311.20.2.3'] },
  ];
  for (const c of cases) {
    it(`ok-${c.file}`, () => {
      const csr = parseCsr(fixture(c.file));
      assert.deepEqual(csr.key, c.key);
      assert.deepEqual(csr.subject, [
        { type: 'O', value: 'Acme Devices' },
        { type: 'CN', value: c.cn },
      ]);
      assert.deepEqual(
        csr.sans.map((s) => `${s.type}:${s.value}`),
        c.sans ?? [],
      );
      assert.deepEqual(csr.unsupportedSans, c.unsupported ?? []);
      assert.equal(csr.spkiSha256, opensslSpkiSha256(c.file));
      assert.equal(createHash('sha256').update(csr.spki).digest('hex'), csr.spkiSha256);
      assert.deepEqual(csr.der, fixtureDer(c.file));
      assert.equal(csr.publicKey.type, 'public');
    });
  }

  it('ok-der-input-and-new-certificate-request-label', () => {
    const d = fixtureDer('p256.csr');
    assert.equal(parseCsr(d).spkiSha256, parseCsr(fixture('p256.csr')).spkiSha256);
    assert.equal(parseCsr(pemEncode('NEW CERTIFICATE REQUEST', d)).spkiSha256, parseCsr(d).spkiSha256);
    assert.equal(parseCsr(new Uint8Array(Buffer.from(fixture('p256.csr')))).spkiSha256, parseCsr(d).spkiSha256);
  });

  it('ok-made-now-by-openssl-with-ipv6-and-uppercase-dns', () => {
    const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=dyn', sans: ['DNS:dyn.example', 'IP:fd00::5', 'URI:https://dyn.example/id'] });
    assert.deepEqual(
      parseCsr(csrPem).sans.map((s) => `${s.type}:${s.value}`),
      ['dns:dyn.example', 'ip:fd00::5', 'uri:https://dyn.example/id'],
    );
  });
});

describe('parseCsr: refusals', () => {
  it('fail-sha1-signature-refused', () => {
    assert.throws(() => parseCsr(fixture('sha1-rsa.csr')), problem('bad_signature', /not accepted/));
  });

  it('fail-dsa-key-refused', () => {
    assert.throws(() => parseCsr(fixture('dsa.csr')), problem('bad_key', /dsa/));
  });

  it('fail-unsupported-curve-secp256k1', () => {
    const { csrPem } = makeCsr({ alg: 'ecdsa-p256', keyPem: execFileSync('/usr/bin/openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], { encoding: 'utf8' }) });
    assert.throws(() => parseCsr(csrPem), problem('bad_key', /curve/));
  });

  const garbage: Array<{ name: string; in: () => Uint8Array | string; code: ProblemCode }> = [
    { name: 'fail-empty-string', in: () => '', code: 'bad_csr' },
    { name: 'fail-empty-bytes', in: () => new Uint8Array(0), code: 'bad_csr' },
    { name: 'fail-random-text', in: () => 'this is not a CSR', code: 'bad_csr' },
    { name: 'fail-random-bytes', in: () => Uint8Array.from({ length: 64 }, (_, i) => (i * 73 + 11) & 0xff), code: 'bad_csr' },
    { name: 'fail-pem-wrong-label', in: () => pemEncode('CERTIFICATE', fixtureDer('p256.csr')), code: 'bad_csr' },
    { name: 'fail-pem-invalid-base64', in: () => '-----BEGIN CERTIFICATE REQUEST-----\nMII*\n-----END CERTIFICATE REQUEST-----\n', code: 'bad_csr' },
    { name: 'fail-pem-of-garbage', in: () => pemEncode('CERTIFICATE REQUEST', Uint8Array.of(1, 2, 3, 4)), code: 'bad_csr' },
    { name: 'fail-sequence-of-garbage', in: () => der.seq(der.integer(1), der.integer(2), der.integer(3)), code: 'bad_csr' },
    { name: 'fail-empty-sequence', in: () => der.seq(), code: 'bad_csr' },
    // DER framing errors must be reported as a bad CSR, like any other malformed request.
    { name: 'fail-truncated-der', in: () => fixtureDer('p256.csr').subarray(0, fixtureDer('p256.csr').length - 10), code: 'bad_csr' },
    { name: 'fail-truncated-to-header', in: () => fixtureDer('p256.csr').subarray(0, 4), code: 'bad_csr' },
    { name: 'fail-trailing-bytes', in: () => der.concat([fixtureDer('p256.csr'), Uint8Array.of(0, 0)]), code: 'bad_csr' },
    { name: 'fail-trailing-bytes-in-pem', in: () => pemEncode('CERTIFICATE REQUEST', der.concat([fixtureDer('p256.csr'), Uint8Array.of(0x05, 0x00)])), code: 'bad_csr' },
    {
      name: 'fail-indefinite-length',
      in: () => {
        const d = fixtureDer('p256.csr').slice();
        d[1] = 0x80;
        return d;
      },
      code: 'bad_csr',
    },
  ];
  for (const c of garbage) {
    it(c.name, () => assert.throws(() => parseCsr(c.in()), problem(c.code)));
  }

  const signed = ['p256.csr', 'p384.csr', 'ed25519.csr', 'ed448.csr', 'rsa2048.csr', 'rsa-pss.csr', 'sans-all.csr'];
  for (const f of signed) {
    it(`fail-signature-byte-flipped ${f}`, () => {
      const d = fixtureDer(f).slice();
      d[d.length - 1] ^= 0x01;
      assert.throws(() => parseCsr(d), problem('bad_signature', /does not verify/));
    });
    it(`fail-subject-byte-changed ${f}`, () => {
      const d = fixtureDer(f).slice();
      const at = Buffer.from(d).indexOf(Buffer.from('sensor-'));
      assert.ok(at > 0);
      d[at] = 'S'.charCodeAt(0); // still a valid PrintableString/UTF8String, different name
      assert.throws(() => parseCsr(d), problem('bad_signature'));
    });
  }

  it('fail-san-byte-changed', () => {
    const d = fixtureDer('sans-all.csr').slice();
    const at = Buffer.from(d).indexOf(Buffer.from('a.example'));
    d[at] = 'z'.charCodeAt(0);
    assert.throws(() => parseCsr(d), problem('bad_signature'));
  });

  it('fail-public-key-swapped', () => {
    // The P-256 fixtures share a key; swap in the P-384 request's key: the signature no longer matches.
    const a = fixtureDer('p256.csr');
    const b = fixtureDer('p384.csr');
    const spkiOf = (d: Uint8Array) => {
      const [info] = der.readChildren(d, der.readTlv(d));
      return der.slice(d, der.readChildren(d, info)[2]);
    };
    const csrA = parseCsr(a);
    const [infoA, algA, sigA] = der.readChildren(a, der.readTlv(a));
    const kids = der.readChildren(a, infoA).map((k) => der.slice(a, k));
    kids[2] = spkiOf(b);
    const forged = der.seq(der.seq(...kids), der.slice(a, algA), der.slice(a, sigA));
    assert.notEqual(csrA.spkiSha256, createHash('sha256').update(spkiOf(b)).digest('hex'));
    assert.throws(() => parseCsr(forged), problem('bad_signature'));
  });
});

/** A PKCS#10 request built by hand, to reach what openssl will not produce. */
function craftCsr(o: { key: KeyObject; pub: KeyObject; version?: number; algId: Uint8Array; hash: string | null; padding?: { padding: number; saltLength: number }; extraOuter?: Uint8Array; extraInfo?: Uint8Array }): Uint8Array {
  const spki = new Uint8Array(o.pub.export({ format: 'der', type: 'spki' }));
  const info = der.seq(der.integer(o.version ?? 0), encodeName([{ type: 'CN', value: 'crafted' }]), spki, der.ctx(0, true), ...(o.extraInfo ? [o.extraInfo] : []));
  const sig = cryptoSign(o.hash, info, o.padding ? { key: o.key, ...o.padding } : { key: o.key, dsaEncoding: 'der' });
  return der.seq(info, o.algId, der.bitString(new Uint8Array(sig)), ...(o.extraOuter ? [o.extraOuter] : []));
}

describe('parseCsr: crafted requests', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ECDSA_SHA256 = der.seq(der.oid('1.2.840.10045.4.3.2'));
  const RSA_SHA256 = der.seq(der.oid('1.2.840.113549.1.1.11'), der.nullValue());
  const pssParams = (hashOid: string, salt: number) =>
    der.seq(
      der.ctx(0, true, der.seq(der.oid(hashOid))),
      der.ctx(1, true, der.seq(der.oid('1.2.840.113549.1.1.8'), der.seq(der.oid(hashOid)))),
      der.ctx(2, true, der.integer(salt)),
    );
  const PSS = '1.2.840.113549.1.1.10';
  const SHA256 = '2.16.840.1.101.3.4.2.1';
  const SHA1 = '1.3.14.3.2.26';

  it('ok-crafted-baseline', () => {
    const csr = parseCsr(craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: ECDSA_SHA256, hash: 'sha256' }));
    assert.deepEqual(csr.subject, [{ type: 'CN', value: 'crafted' }]);
  });

  it('ok-crafted-rsa-pss-sha256', () => {
    const algId = der.seq(der.oid(PSS), pssParams(SHA256, 32));
    const csr = parseCsr(craftCsr({ key: rsa.privateKey, pub: rsa.publicKey, algId, hash: 'sha256', padding: { padding: 6, saltLength: 32 } }));
    assert.deepEqual(csr.key, { type: 'rsa', bits: 2048 });
  });

  const bad: Array<{ name: string; make: () => Uint8Array; code: ProblemCode; why?: RegExp }> = [
    { name: 'fail-version-1', make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, version: 1, algId: ECDSA_SHA256, hash: 'sha256' }), code: 'bad_csr', why: /version/ },
    { name: 'fail-ecdsa-oid-with-rsa-key', make: () => craftCsr({ key: rsa.privateKey, pub: rsa.publicKey, algId: ECDSA_SHA256, hash: 'sha256' }), code: 'bad_signature', why: /does not match/ },
    { name: 'fail-rsa-oid-with-ec-key', make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: RSA_SHA256, hash: 'sha256' }), code: 'bad_signature', why: /does not match/ },
    { name: 'fail-ecdsa-with-sha1', make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: der.seq(der.oid('1.2.840.10045.4.1')), hash: 'sha1' }), code: 'bad_signature', why: /not accepted/ },
    {
      name: 'fail-pss-without-parameters',
      make: () => craftCsr({ key: rsa.privateKey, pub: rsa.publicKey, algId: der.seq(der.oid(PSS)), hash: 'sha1', padding: { padding: 6, saltLength: 20 } }),
      code: 'bad_signature',
      why: /without parameters/,
    },
    {
      name: 'fail-pss-with-sha1',
      make: () => craftCsr({ key: rsa.privateKey, pub: rsa.publicKey, algId: der.seq(der.oid(PSS), pssParams(SHA1, 20)), hash: 'sha1', padding: { padding: 6, saltLength: 20 } }),
      code: 'bad_signature',
      why: /not accepted/,
    },
    {
      name: 'fail-pss-wrong-salt-length-claimed',
      make: () => craftCsr({ key: rsa.privateKey, pub: rsa.publicKey, algId: der.seq(der.oid(PSS), pssParams(SHA256, 20)), hash: 'sha256', padding: { padding: 6, saltLength: 32 } }),
      code: 'bad_signature',
    },
    { name: 'fail-unknown-signature-oid', make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: der.seq(der.oid('1.2.3.4')), hash: 'sha256' }), code: 'bad_signature', why: /not accepted/ },
    {
      name: 'fail-extra-element-after-signature',
      make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: ECDSA_SHA256, hash: 'sha256', extraOuter: der.integer(1) }),
      code: 'bad_csr',
    },
    {
      // RFC 2986 §4.1: CertificationRequestInfo has exactly four components.
      name: 'fail-extra-element-in-request-info',
      make: () => craftCsr({ key: ec.privateKey, pub: ec.publicKey, algId: ECDSA_SHA256, hash: 'sha256', extraInfo: der.octets(Uint8Array.of(1, 2, 3)) }),
      code: 'bad_csr',
    },
  ];
  for (const c of bad) {
    it(c.name, () => assert.throws(() => parseCsr(c.make()), problem(c.code, c.why)));
  }
});
