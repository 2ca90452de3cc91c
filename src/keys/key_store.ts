/**
 * Where CA keys live. The interface signs and reveals public keys but never
 * hands out a private key, so a PKCS#11 token can stand behind it unchanged.
 */
import { createPrivateKey, createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { KeyAlgorithm, KeyInfo, HashName } from '../x509/algorithms.js';
import { keyInfoOf } from '../x509/algorithms.js';

/** Something that can sign on behalf of one key. */
export interface Signer {
  /** DER SubjectPublicKeyInfo of the key. */
  readonly spki: Uint8Array;
  readonly key: KeyInfo;
  /**
   * Signs `data`, hashing with `hash` (null: Ed25519, which hashes itself).
   * ECDSA signatures come back DER-encoded (Ecdsa-Sig-Value), as X.509 wants.
   */
  sign(data: Uint8Array, hash: HashName | null): Promise<Uint8Array>;
}

export interface GenerateOptions {
  /** What the key is for (default sign). A token sets CKA_SIGN or CKA_DECRYPT accordingly. */
  usage?: 'sign' | 'decrypt';
  /** PKCS#11: the label of the token to make it in (default: the main token). */
  token?: string;
}

export interface KeyStore {
  readonly kind: 'software' | 'pkcs11';
  /** Creates a key pair inside the store; returns its reference. */
  generate(algorithm: KeyAlgorithm, label: string, opts?: GenerateOptions): Promise<string>;
  /** A signer for a stored key; throws key_unavailable if it is not there. */
  signer(ref: string): Promise<Signer>;
  /** Deletes the key from the store. */
  remove(ref: string): Promise<void>;
  /** Whether the key is present. */
  has(ref: string): Promise<boolean>;
  /** Releases sessions or handles (PKCS#11); optional. */
  close?(): Promise<void>;
}

/**
 * Optional capability: decryption with a stored RSA key (the key escrow key).
 * RSAES-OAEP with SHA-1/MGF1-SHA-1 (RFC 8017 §7.1): OAEP's security does not
 * rest on SHA-1's collision resistance, and it is what PKCS#11 tokens such as
 * SoftHSM 2.6 offer (they refuse OAEP with SHA-256).
 */
export interface DecryptingKeyStore extends KeyStore {
  decryptOaep(ref: string, ciphertext: Uint8Array): Promise<Uint8Array>;
}

export function isDecrypting(k: KeyStore): k is DecryptingKeyStore {
  return typeof (k as Partial<DecryptingKeyStore>).decryptOaep === 'function';
}

/** Optional capability: keys that may leave the store, encrypted (offline root). */
export interface ExportableKeyStore extends KeyStore {
  /** Encrypted PKCS#8 PEM of the key under `passphrase`. */
  exportEncrypted(ref: string, passphrase: string): Promise<string>;
}

export function isExportable(k: KeyStore): k is ExportableKeyStore {
  return typeof (k as Partial<ExportableKeyStore>).exportEncrypted === 'function';
}

/** A signer over an in-memory private key (software keys, an offline root loaded for a ceremony). */
export function keyObjectSigner(privateKey: KeyObject): Signer {
  const pub = createPublicKey(privateKey);
  const spki = new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
  const key = keyInfoOf(pub);
  const signer: ThreadSharedSigner = {
    spki,
    key,
    threadKey: privateKey,
    async sign(data, hash) {
      return new Uint8Array(cryptoSign(hash, data, { key: privateKey, dsaEncoding: 'der' }));
    },
  };
  return signer;
}

/**
 * Optional capability of a Signer over a key held in this process's memory
 * (software keys): worker threads of the process may sign with it too (the
 * issuance pool). A token key has no such capability: it never leaves the
 * token, and the issuer signs through `sign`.
 */
export interface ThreadSharedSigner extends Signer {
  readonly threadKey: KeyObject;
}

export function isThreadShared(s: Signer): s is ThreadSharedSigner {
  return (s as Partial<ThreadSharedSigner>).threadKey !== undefined;
}

/** Loads an encrypted (or plain) PKCS#8 PEM/DER private key. */
export function loadPrivateKey(pem: string | Uint8Array, passphrase?: string): KeyObject {
  const key = typeof pem === 'string' ? pem : Buffer.from(pem);
  return createPrivateKey(typeof key === 'string' ? { key, format: 'pem', passphrase } : { key, format: 'der', type: 'pkcs8', passphrase });
}
