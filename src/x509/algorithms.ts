/**
 * Key and signature algorithms: what fleetpki generates, what it accepts in a
 * CSR, and how each maps onto node:crypto and onto X.509 AlgorithmIdentifiers.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { RsaSaPssParams } from '@peculiar/asn1-rsa';
import * as der from '../asn1/der.js';
import { ProblemError, rethrowAs } from '../errors.js';

export const KEY_ALGORITHMS = ['ecdsa-p256', 'ecdsa-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export function isKeyAlgorithm(s: string): s is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(s);
}

/** What a public key is, independent of encoding. */
export type KeyInfo =
  | { type: 'ec'; curve: 'P-256' | 'P-384' | 'P-521' }
  | { type: 'rsa'; bits: number }
  | { type: 'ed25519' }
  | { type: 'ed448' };

/** "ecdsa-p256", "rsa-2048", "ed25519": the names profiles and the CLI use. */
export function keyInfoName(k: KeyInfo): string {
  switch (k.type) {
    case 'ec':
      return `ecdsa-${k.curve.toLowerCase().replace('-', '')}`;
    case 'rsa':
      return `rsa-${k.bits}`;
    default:
      return k.type;
  }
}

export function nodeKeyGenParams(alg: KeyAlgorithm): { type: 'ec' | 'rsa' | 'ed25519'; options: Record<string, unknown> } {
  switch (alg) {
    case 'ecdsa-p256':
      return { type: 'ec', options: { namedCurve: 'P-256' } };
    case 'ecdsa-p384':
      return { type: 'ec', options: { namedCurve: 'P-384' } };
    case 'ed25519':
      return { type: 'ed25519', options: {} };
    default:
      return { type: 'rsa', options: { modulusLength: Number(alg.slice(4)), publicExponent: 0x10001 } };
  }
}

const CURVES: Record<string, 'P-256' | 'P-384' | 'P-521'> = {
  prime256v1: 'P-256',
  'P-256': 'P-256',
  secp384r1: 'P-384',
  'P-384': 'P-384',
  secp521r1: 'P-521',
  'P-521': 'P-521',
};

export function keyInfoOf(key: KeyObject): KeyInfo {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = CURVES[d.namedCurve ?? ''];
      if (!curve) throw new ProblemError('bad_key', `unsupported EC curve ${d.namedCurve}`);
      return { type: 'ec', curve };
    }
    case 'rsa':
      return { type: 'rsa', bits: d.modulusLength ?? 0 };
    case 'ed25519':
      return { type: 'ed25519' };
    case 'ed448':
      return { type: 'ed448' };
    default:
      throw new ProblemError('bad_key', `unsupported key type ${key.asymmetricKeyType}`);
  }
}

/** Parses a SubjectPublicKeyInfo; throws bad_key for anything node cannot load. */
export function publicKeyFromSpki(spki: Uint8Array): KeyObject {
  return rethrowAs('bad_key', 'cannot read the public key', () =>
    createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength), format: 'der', type: 'spki' }),
  );
}

export type HashName = 'sha256' | 'sha384' | 'sha512';

/** How a CA key signs: the AlgorithmIdentifier to write and the digest node uses. */
export interface SignatureAlgorithm {
  /** DER of the AlgorithmIdentifier. */
  algorithmIdentifier: Uint8Array;
  oid: string;
  /** null for Ed25519 (pure EdDSA). */
  hash: HashName | null;
}

const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  rsaSha256: '1.2.840.113549.1.1.11',
  rsaSha384: '1.2.840.113549.1.1.12',
  rsaSha512: '1.2.840.113549.1.1.13',
  rsaPss: '1.2.840.113549.1.1.10',
  ed25519: '1.3.101.112',
  ed448: '1.3.101.113',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
} as const;

/**
 * The signature algorithm a CA key of this kind uses. RFC 5758 §3.2: ECDSA
 * AlgorithmIdentifiers omit parameters; RFC 4055 §5: RSA PKCS#1 v1.5 ones carry
 * NULL; RFC 8410 §3: Ed25519 has no parameters.
 */
/** Encoded once per algorithm: signers ask for it per signature (OCSP answers, certificates). */
const SIGNATURE_ALGORITHMS = new Map<string, SignatureAlgorithm>();
function make(oid: string, hash: HashName | null, withNull: boolean): SignatureAlgorithm {
  let a = SIGNATURE_ALGORITHMS.get(oid);
  if (!a) {
    a = Object.freeze({ oid, hash, algorithmIdentifier: withNull ? der.seq(der.oid(oid), der.nullValue()) : der.seq(der.oid(oid)) });
    SIGNATURE_ALGORITHMS.set(oid, a);
  }
  return a;
}

export function signatureAlgorithmFor(key: KeyInfo): SignatureAlgorithm {
  switch (key.type) {
    case 'ec':
      if (key.curve === 'P-256') return make(OID.ecdsaSha256, 'sha256', false);
      if (key.curve === 'P-384') return make(OID.ecdsaSha384, 'sha384', false);
      return make(OID.ecdsaSha512, 'sha512', false);
    case 'rsa':
      return make(OID.rsaSha256, 'sha256', true);
    case 'ed25519':
      return make(OID.ed25519, null, false);
    default:
      throw new ProblemError('bad_key', `fleetpki cannot sign with ${key.type} keys`);
  }
}

const HASH_BY_OID: Record<string, HashName> = { [OID.sha256]: 'sha256', [OID.sha384]: 'sha384', [OID.sha512]: 'sha512' };

/**
 * Verifies a signature made by `publicKey` under the given AlgorithmIdentifier
 * (OID + DER parameters). SHA-1 based and unknown algorithms are refused.
 */
export function verifySignature(
  algOid: string,
  algParams: Uint8Array | undefined,
  publicKey: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
): boolean {
  const kt = publicKey.asymmetricKeyType;
  const want = (type: string) => {
    if (kt !== type) throw new ProblemError('bad_signature', `signature algorithm ${algOid} does not match a ${kt} key`);
  };
  switch (algOid) {
    case OID.ecdsaSha256:
    case OID.ecdsaSha384:
    case OID.ecdsaSha512: {
      want('ec');
      const hash = algOid === OID.ecdsaSha256 ? 'sha256' : algOid === OID.ecdsaSha384 ? 'sha384' : 'sha512';
      return cryptoVerify(hash, data, { key: publicKey, dsaEncoding: 'der' }, signature);
    }
    case OID.rsaSha256:
    case OID.rsaSha384:
    case OID.rsaSha512: {
      want('rsa');
      const hash = algOid === OID.rsaSha256 ? 'sha256' : algOid === OID.rsaSha384 ? 'sha384' : 'sha512';
      return cryptoVerify(hash, data, publicKey, signature);
    }
    case OID.rsaPss: {
      if (kt !== 'rsa' && kt !== 'rsa-pss') want('rsa');
      if (!algParams) throw new ProblemError('bad_signature', 'RSASSA-PSS without parameters (SHA-1 default) is not accepted');
      const p = rethrowAs('bad_signature', 'bad RSASSA-PSS parameters', () => AsnConvert.parse(algParams, RsaSaPssParams));
      const hash = HASH_BY_OID[p.hashAlgorithm.algorithm];
      if (!hash) throw new ProblemError('bad_signature', `RSASSA-PSS hash ${p.hashAlgorithm.algorithm} is not accepted`);
      return cryptoVerify(hash, data, { key: publicKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: p.saltLength }, signature);
    }
    case OID.ed25519:
      want('ed25519');
      return cryptoVerify(null, data, publicKey, signature);
    case OID.ed448:
      want('ed448');
      return cryptoVerify(null, data, publicKey, signature);
    default:
      throw new ProblemError('bad_signature', `signature algorithm ${algOid} is not accepted (SHA-1 and unknown algorithms are refused)`);
  }
}
