/**
 * MAC-based protection (src/protocols/cmp/mac.ts): PasswordBasedMac (RFC
 * 4210 §5.1.3.1) and PBMAC1 (RFC 8018 §A.5, RFC 9481 §6.1.2) against the
 * RFCs' definitions written out here with node:crypto, over the parameters
 * a client may choose; the answer's parameters; what is refused (badAlg).
 * (OpenSSL's own PBM is checked on its real messages in cmp_fixtures.)
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, it } from 'node:test';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { id_alg } from '../../src/asn1/cmp_oids.js';
import { PBKDF2Params, PBMAC1Params, PBMParameter, Pbkdf2Salt } from '../../src/asn1/cmp_pbm.js';
import { isProblem } from '../../src/errors.js';
import { answerMacAlgorithm, computeMac, MAX_ITERATIONS, pbmAlgorithm, pbmac1Algorithm, verifyMac } from '../../src/protocols/cmp/mac.js';

const data = new Uint8Array(Buffer.from('a ProtectedPart, as far as the MAC cares'));
const salt = new Uint8Array(Buffer.from('0123456789abcdef'));
const secret = 'mQ3-one-time-secret';

/** RFC 4210 §5.1.3.1, literally: BASEKEY = H(...H(H(secret || salt))...), iterationCount hashes; MAC = HMAC(BASEKEY, data). */
function rfcPbm(owf: string, mac: string, n: number): Buffer {
  let k = createHash(owf).update(Buffer.concat([Buffer.from(secret), salt])).digest();
  for (let i = 1; i < n; i++) k = createHash(owf).update(k).digest();
  return createHmac(mac, k).update(data).digest();
}

/** RFC 8018 §A.5 with §5.2 PBKDF2. */
function rfcPbmac1(prf: string, mac: string, n: number, len: number): Buffer {
  return createHmac(mac, pbkdf2Sync(secret, salt, n, len, prf)).update(data).digest();
}

describe('PasswordBasedMac', () => {
  const cases: [string, string, string, string, string, number][] = [
    ['OpenSSL default: SHA-256, HMAC-SHA1 (IPsec OID), 500', id_alg.sha256, 'sha256', id_alg.hmacSha1Ipsec, 'sha1', 500],
    ['SHA-1, hmacWithSHA1 (PKCS#5 OID), 1', id_alg.sha1, 'sha1', id_alg.hmacWithSHA1, 'sha1', 1],
    ['SHA-512, HMAC-SHA256, 2', id_alg.sha512, 'sha512', id_alg.hmacWithSHA256, 'sha256', 2],
    ['SHA-384, HMAC-SHA512, 1000', id_alg.sha384, 'sha384', id_alg.hmacWithSHA512, 'sha512', 1000],
  ];
  for (const [title, owfOid, owf, macOid, mac, n] of cases) {
    it(`ok ${title}: the RFC's MAC, which verifies; another secret does not`, () => {
      const alg = pbmAlgorithm({ iterations: n, salt, owf: owfOid, mac: macOid });
      assert.deepEqual(Buffer.from(computeMac(alg, secret, data)), rfcPbm(owf, mac, n));
      assert.ok(verifyMac(alg, secret, data, new Uint8Array(rfcPbm(owf, mac, n))));
      assert.ok(!verifyMac(alg, `${secret}!`, data, new Uint8Array(rfcPbm(owf, mac, n))));
    });
  }
});

describe('PBMAC1', () => {
  const cases: [string, string | undefined, string, string, string, number, number | undefined][] = [
    ['RFC 9481 §6.1.2: PBKDF2-HMAC-SHA256, HMAC-SHA256, 32-octet key', id_alg.hmacWithSHA256, 'sha256', id_alg.hmacWithSHA256, 'sha256', 10_000, 32],
    ['the DEFAULT PRF (absent: hmacWithSHA1)', undefined, 'sha1', id_alg.hmacWithSHA256, 'sha256', 1000, 32],
    ['HMAC-SHA512 with a 64-octet key', id_alg.hmacWithSHA512, 'sha512', id_alg.hmacWithSHA512, 'sha512', 1, 64],
    ['no keyLength: the MAC size', id_alg.hmacWithSHA256, 'sha256', id_alg.hmacWithSHA384, 'sha384', 100, undefined],
  ];
  for (const [title, prfOid, prf, macOid, mac, n, len] of cases) {
    it(`ok ${title}`, () => {
      const kdf = new PBKDF2Params({ salt: new Pbkdf2Salt({ specified: new OctetString(salt) }), iterationCount: n, keyLength: len, prf: prfOid ? new AlgorithmIdentifier({ algorithm: prfOid, parameters: null }) : undefined });
      const p = new PBMAC1Params({ keyDerivationFunc: new AlgorithmIdentifier({ algorithm: id_alg.pbkdf2, parameters: AsnConvert.serialize(kdf) }), messageAuthScheme: new AlgorithmIdentifier({ algorithm: macOid }) });
      const alg = new AlgorithmIdentifier({ algorithm: id_alg.pbmac1, parameters: AsnConvert.serialize(p) });
      const want = rfcPbmac1(prf, mac, n, len ?? createHash(mac).digest().length);
      assert.deepEqual(Buffer.from(computeMac(alg, secret, data)), want);
      assert.ok(verifyMac(alg, secret, data, new Uint8Array(want)));
    });
  }
});

describe('the answer\'s MAC parameters', () => {
  for (const [title, alg] of [
    ['PasswordBasedMac', pbmAlgorithm({ iterations: 777, salt })],
    ['PBMAC1', pbmac1Algorithm({ iterations: 4321, keyLength: 48, salt, prf: id_alg.hmacWithSHA384, mac: id_alg.hmacWithSHA512 })],
  ] as const) {
    it(`ok ${title}: the same algorithms and count, a fresh 16-octet salt`, () => {
      const next = answerMacAlgorithm(alg);
      assert.equal(next.algorithm, alg.algorithm);
      if (alg.algorithm === id_alg.passwordBasedMac) {
        const [a, b] = [alg, next].map((x) => AsnConvert.parse(x.parameters!, PBMParameter));
        assert.deepEqual([b.owf, b.mac, b.iterationCount], [a.owf, a.mac, a.iterationCount]);
        assert.equal(b.salt.byteLength, 16);
        assert.notDeepEqual(new Uint8Array(b.salt.buffer), new Uint8Array(a.salt.buffer));
      } else {
        const [a, b] = [alg, next].map((x) => AsnConvert.parse(x.parameters!, PBMAC1Params));
        const [ka, kb] = [a, b].map((x) => AsnConvert.parse(x.keyDerivationFunc.parameters!, PBKDF2Params));
        assert.deepEqual([kb.iterationCount, kb.keyLength, kb.prf?.algorithm, b.messageAuthScheme.algorithm], [ka.iterationCount, ka.keyLength, ka.prf?.algorithm, a.messageAuthScheme.algorithm]);
        assert.equal(kb.salt.specified?.byteLength, 16);
        assert.notDeepEqual(new Uint8Array(kb.salt.specified!.buffer), salt);
      }
      // It works as a MAC: the server computes with it, the client checks.
      assert.ok(verifyMac(next, secret, data, computeMac(next, secret, data)));
    });
  }
});

describe('refused MAC parameters → badAlg', () => {
  const pbkdf2 = (o: Partial<PBKDF2Params>) =>
    new AlgorithmIdentifier({
      algorithm: id_alg.pbmac1,
      parameters: AsnConvert.serialize(
        new PBMAC1Params({
          keyDerivationFunc: new AlgorithmIdentifier({ algorithm: id_alg.pbkdf2, parameters: AsnConvert.serialize(new PBKDF2Params({ salt: new Pbkdf2Salt({ specified: new OctetString(salt) }), iterationCount: 10, keyLength: 32, ...o })) }),
          messageAuthScheme: new AlgorithmIdentifier({ algorithm: id_alg.hmacWithSHA256 }),
        }),
      ),
    });
  const cases: [string, AlgorithmIdentifier][] = [
    ['fail-PBM with 0 iterations', pbmAlgorithm({ iterations: 0 })],
    [`fail-PBM with ${MAX_ITERATIONS + 1} iterations`, pbmAlgorithm({ iterations: MAX_ITERATIONS + 1 })],
    ['fail-PBM with MD5 as owf', pbmAlgorithm({ iterations: 10, owf: '1.2.840.113549.2.5' })],
    ['fail-PBM with an unknown MAC', pbmAlgorithm({ iterations: 10, mac: '1.2.3.4' })],
    ['fail-PBM without parameters', new AlgorithmIdentifier({ algorithm: id_alg.passwordBasedMac })],
    ['fail-PBM with parameters that are not PBMParameter', new AlgorithmIdentifier({ algorithm: id_alg.passwordBasedMac, parameters: Uint8Array.of(5, 0).buffer })],
    ['fail-PBMAC1 with a KDF that is not PBKDF2', new AlgorithmIdentifier({ algorithm: id_alg.pbmac1, parameters: AsnConvert.serialize(new PBMAC1Params({ keyDerivationFunc: new AlgorithmIdentifier({ algorithm: '1.3.6.1.4.1.11591.4.11' }), messageAuthScheme: new AlgorithmIdentifier({ algorithm: id_alg.hmacWithSHA256 }) })) })],
    ['fail-PBMAC1 with a salt from another source', pbkdf2({ salt: new Pbkdf2Salt({ otherSource: new AlgorithmIdentifier({ algorithm: '1.2.3' }) }) })],
    [`fail-PBMAC1 with ${MAX_ITERATIONS + 1} iterations`, pbkdf2({ iterationCount: MAX_ITERATIONS + 1 })],
    ['fail-PBMAC1 with a 0-octet key', pbkdf2({ keyLength: 0 })],
    ['fail-a signature algorithm', new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' })],
  ];
  for (const [title, alg] of cases) {
    it(title, () => {
      assert.throws(
        () => computeMac(alg, secret, data),
        (e: unknown) => isProblem(e, 'bad_request') && Array.isArray(e.extra?.failInfo) && e.extra.failInfo.includes('badAlg'),
      );
    });
  }
});
