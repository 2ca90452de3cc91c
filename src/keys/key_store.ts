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

export interface KeyStore {
  readonly kind: 'software' | 'pkcs11';
  /** Creates a key pair inside the store; returns its reference. */
  generate(algorithm: KeyAlgorithm, label: string): Promise<string>;
  /** A signer for a stored key; throws key_unavailable if it is not there. */
  signer(ref: string): Promise<Signer>;
  /** Deletes the key from the store. */
  remove(ref: string): Promise<void>;
  /** Whether the key is present. */
  has(ref: string): Promise<boolean>;
}

/** Optional capability: keys that may leave the store, encrypted (offline root). */
export interface ExportableKeyStore extends KeyStore {
  /** Encrypted PKCS#8 PEM of the key under `passphrase`. */
  exportEncrypted(ref: string, passphrase: string): Promise<string>;
}

export function isExportable(k: KeyStore): k is ExportableKeyStore {
  return typeof (k as Partial<ExportableKeyStore>).exportEncrypted === 'function';
}

/**
 * Optional capability: ECDH with a stored EC key. The registry seals
 * one-time enrollment secrets to such a key (ECIES), and only the server,
 * which can unlock the store, opens them for CMP's MAC-based protection.
 */
export interface KeyAgreementKeyStore extends KeyStore {
  /** The raw ECDH shared secret of the stored key and `peerSpki` (DER SubjectPublicKeyInfo, same curve). */
  agree(ref: string, peerSpki: Uint8Array): Promise<Uint8Array>;
}

export function canAgree(k: KeyStore): k is KeyAgreementKeyStore {
  return typeof (k as Partial<KeyAgreementKeyStore>).agree === 'function';
}

/** A signer over an in-memory private key (software keys, an offline root loaded for a ceremony). */
export function keyObjectSigner(privateKey: KeyObject): Signer {
  const pub = createPublicKey(privateKey);
  const spki = new Uint8Array(pub.export({ format: 'der', type: 'spki' }));
  const key = keyInfoOf(pub);
  return {
    spki,
    key,
    async sign(data, hash) {
      return new Uint8Array(cryptoSign(hash, data, { key: privateKey, dsaEncoding: 'der' }));
    },
  };
}

/** Loads an encrypted (or plain) PKCS#8 PEM/DER private key. */
export function loadPrivateKey(pem: string | Uint8Array, passphrase?: string): KeyObject {
  const key = typeof pem === 'string' ? pem : Buffer.from(pem);
  return createPrivateKey(typeof key === 'string' ? { key, format: 'pem', passphrase } : { key, format: 'der', type: 'pkcs8', passphrase });
}
