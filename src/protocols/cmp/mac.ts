/**
 * MAC-based protection of CMP messages with a shared secret (RFC 9481 §6.1):
 * PasswordBasedMac (RFC 4210 §5.1.3.1) and PBMAC1 with PBKDF2 (RFC 8018
 * §A.5, §A.2). The client picks salt, iteration count and algorithms; the
 * answer uses the same algorithms and count with a fresh salt.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { id_alg } from '../../asn1/cmp_oids.js';
import { PBKDF2Params, PBMAC1Params, PBMParameter, Pbkdf2Salt } from '../../asn1/cmp_pbm.js';
import { ProblemError } from '../../errors.js';

/**
 * Iteration counts above this are refused (badAlg): a request must not make
 * the server spend seconds deriving a key. OpenSSL's own ceiling for PBM.
 */
export const MAX_ITERATIONS = 100_000;

type Hash = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

const OWF: Record<string, Hash> = {
  [id_alg.sha1]: 'sha1',
  [id_alg.sha224]: 'sha224',
  [id_alg.sha256]: 'sha256',
  [id_alg.sha384]: 'sha384',
  [id_alg.sha512]: 'sha512',
};

const HMAC: Record<string, Hash> = {
  [id_alg.hmacWithSHA1]: 'sha1',
  [id_alg.hmacSha1Ipsec]: 'sha1',
  [id_alg.hmacWithSHA224]: 'sha224',
  [id_alg.hmacWithSHA256]: 'sha256',
  [id_alg.hmacWithSHA384]: 'sha384',
  [id_alg.hmacWithSHA512]: 'sha512',
};

const badAlg = (why: string) => new ProblemError('bad_request', why, { failInfo: ['badAlg'] });

function hashOf(table: Record<string, Hash>, alg: AlgorithmIdentifier, what: string): Hash {
  const h = table[alg.algorithm];
  if (!h) throw badAlg(`${what} ${alg.algorithm} is not supported`);
  return h;
}

function checkIterations(n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_ITERATIONS) throw badAlg(`iteration count ${n} is outside 1..${MAX_ITERATIONS}`);
}

/** The protection algorithm is MAC-based (as opposed to a signature). */
export function isMacAlgorithm(alg: AlgorithmIdentifier): boolean {
  return alg.algorithm === id_alg.passwordBasedMac || alg.algorithm === id_alg.pbmac1;
}

function params<T>(alg: AlgorithmIdentifier, type: new () => T, what: string): T {
  if (!alg.parameters) throw badAlg(`${what} without parameters`);
  try {
    return AsnConvert.parse(alg.parameters, type);
  } catch (e) {
    throw badAlg(`bad ${what} parameters: ${(e as Error).message}`);
  }
}

/**
 * RFC 4210 §5.1.3.1: BASEKEY = OWF^iterationCount(secret || salt), then
 * MAC = HMAC(BASEKEY, data). The first hash is over secret and salt; each
 * further one over the previous result.
 */
function passwordBasedMac(secret: Uint8Array, p: PBMParameter, data: Uint8Array): Uint8Array {
  const owf = hashOf(OWF, p.owf, 'PasswordBasedMac owf');
  const mac = hashOf(HMAC, p.mac, 'PasswordBasedMac mac');
  checkIterations(p.iterationCount);
  let key = createHash(owf).update(secret).update(new Uint8Array(p.salt.buffer)).digest();
  for (let i = 1; i < p.iterationCount; i++) key = createHash(owf).update(key).digest();
  return new Uint8Array(createHmac(mac, key).update(data).digest());
}

/** RFC 8018 §A.5: PBMAC1 = the MAC scheme keyed with PBKDF2(secret, salt, count, keyLength). */
function pbmac1(secret: Uint8Array, p: PBMAC1Params, data: Uint8Array): Uint8Array {
  if (p.keyDerivationFunc.algorithm !== id_alg.pbkdf2) throw badAlg(`PBMAC1 key derivation ${p.keyDerivationFunc.algorithm} is not PBKDF2`);
  const kdf = params(p.keyDerivationFunc, PBKDF2Params, 'PBKDF2');
  const mac = hashOf(HMAC, p.messageAuthScheme, 'PBMAC1 MAC');
  const prf = kdf.prf ? hashOf(HMAC, kdf.prf, 'PBKDF2 PRF') : 'sha1';
  if (!kdf.salt.specified) throw badAlg('PBKDF2 salt must be specified');
  checkIterations(kdf.iterationCount);
  // RFC 9481 §6.1.2: keyLength MUST be present; without it, the MAC's size.
  const keyLength = kdf.keyLength ?? createHash(mac).digest().length;
  if (!Number.isSafeInteger(keyLength) || keyLength < 1 || keyLength > 64) throw badAlg(`PBKDF2 key length ${keyLength} is outside 1..64`);
  const key = pbkdf2Sync(secret, new Uint8Array(kdf.salt.specified.buffer), kdf.iterationCount, keyLength, prf);
  return new Uint8Array(createHmac(mac, key).update(data).digest());
}

/** The MAC of `data` under `alg` (PasswordBasedMac or PBMAC1) keyed by `secret`. */
export function computeMac(alg: AlgorithmIdentifier, secret: string | Uint8Array, data: Uint8Array): Uint8Array {
  const key = typeof secret === 'string' ? new Uint8Array(Buffer.from(secret, 'utf8')) : secret;
  if (alg.algorithm === id_alg.passwordBasedMac) return passwordBasedMac(key, params(alg, PBMParameter, 'PasswordBasedMac'), data);
  if (alg.algorithm === id_alg.pbmac1) return pbmac1(key, params(alg, PBMAC1Params, 'PBMAC1'), data);
  throw badAlg(`${alg.algorithm} is not a MAC-based protection algorithm`);
}

/** Constant-time check of a received MAC. */
export function verifyMac(alg: AlgorithmIdentifier, secret: string | Uint8Array, data: Uint8Array, mac: Uint8Array): boolean {
  const want = computeMac(alg, secret, data);
  return want.length === mac.length && timingSafeEqual(want, mac);
}

/**
 * The protectionAlg of an answer to a request protected with `alg`: the same
 * algorithms, iteration count and key length, a fresh 16-octet salt.
 */
export function answerMacAlgorithm(alg: AlgorithmIdentifier): AlgorithmIdentifier {
  const salt = new OctetString(randomBytes(16));
  if (alg.algorithm === id_alg.passwordBasedMac) {
    const p = params(alg, PBMParameter, 'PasswordBasedMac');
    const next = new PBMParameter({ salt, owf: p.owf, iterationCount: p.iterationCount, mac: p.mac });
    return new AlgorithmIdentifier({ algorithm: id_alg.passwordBasedMac, parameters: AsnConvert.serialize(next) });
  }
  const p = params(alg, PBMAC1Params, 'PBMAC1');
  const kdf = params(p.keyDerivationFunc, PBKDF2Params, 'PBKDF2');
  const nextKdf = new PBKDF2Params({ salt: new Pbkdf2Salt({ specified: salt }), iterationCount: kdf.iterationCount, keyLength: kdf.keyLength, prf: kdf.prf });
  const next = new PBMAC1Params({
    keyDerivationFunc: new AlgorithmIdentifier({ algorithm: id_alg.pbkdf2, parameters: AsnConvert.serialize(nextKdf) }),
    messageAuthScheme: p.messageAuthScheme,
  });
  return new AlgorithmIdentifier({ algorithm: id_alg.pbmac1, parameters: AsnConvert.serialize(next) });
}

/** PBMAC1 parameters as RFC 9481 §6.1.2 recommends them (tests and examples). */
export function pbmac1Algorithm(o: { iterations: number; keyLength?: number; salt?: Uint8Array; prf?: string; mac?: string }): AlgorithmIdentifier {
  const kdf = new PBKDF2Params({
    salt: new Pbkdf2Salt({ specified: new OctetString(o.salt ?? randomBytes(16)) }),
    iterationCount: o.iterations,
    keyLength: o.keyLength ?? 32,
    prf: new AlgorithmIdentifier({ algorithm: o.prf ?? id_alg.hmacWithSHA256, parameters: null }),
  });
  const p = new PBMAC1Params({
    keyDerivationFunc: new AlgorithmIdentifier({ algorithm: id_alg.pbkdf2, parameters: AsnConvert.serialize(kdf) }),
    // RFC 8018 writes NULL parameters for the PRF; RFC 9481 §6.2.1 none for the MAC.
    messageAuthScheme: new AlgorithmIdentifier({ algorithm: o.mac ?? id_alg.hmacWithSHA256 }),
  });
  return new AlgorithmIdentifier({ algorithm: id_alg.pbmac1, parameters: AsnConvert.serialize(p) });
}

/** PasswordBasedMac parameters as OpenSSL writes them by default (tests and examples). */
export function pbmAlgorithm(o: { iterations: number; salt?: Uint8Array; owf?: string; mac?: string }): AlgorithmIdentifier {
  const p = new PBMParameter({
    salt: new OctetString(o.salt ?? randomBytes(16)),
    owf: new AlgorithmIdentifier({ algorithm: o.owf ?? id_alg.sha256 }),
    iterationCount: o.iterations,
    mac: new AlgorithmIdentifier({ algorithm: o.mac ?? id_alg.hmacSha1Ipsec }),
  });
  return new AlgorithmIdentifier({ algorithm: id_alg.passwordBasedMac, parameters: AsnConvert.serialize(p) });
}
