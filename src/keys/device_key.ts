/**
 * The device side of key custody: the device's own key is generated inside
 * its token (a secure element, a TPM's or a dongle's PKCS#11 interface,
 * SoftHSM on a gateway) and never leaves it; the agent gets a Signer for it
 * and builds its CSR with src/x509/csr_builder.ts. The same Pkcs11KeyStore
 * the CA uses, so one code path is tested for both.
 */
import { ProblemError } from '../errors.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import type { Signer } from './key_store.js';
import { Pkcs11KeyStore, type Pkcs11KeyStoreOptions } from './pkcs11_key_store.js';

export type TokenKeyOptions = Pkcs11KeyStoreOptions;

export interface TokenKey {
  /** RFC 7512 URI of the private key: keep it in the device's state. */
  uri: string;
  signer: Signer;
  /** Makes a new key in the same token (renewal with a new key); the old one stays until removed. */
  rotate(label: string): Promise<TokenKey>;
  /** Deletes this key from the token (after its successor is certified). */
  remove(): Promise<void>;
  /** Closes the token sessions. */
  close(): Promise<void>;
}

function tokenKey(store: Pkcs11KeyStore, uri: string, signer: Signer, algorithm: KeyAlgorithm | undefined): TokenKey {
  return {
    uri,
    signer,
    rotate: async (label) => {
      const alg = algorithm ?? (signer.key.type === 'ec' ? (signer.key.curve === 'P-384' ? 'ecdsa-p384' : 'ecdsa-p256') : signer.key.type === 'rsa' ? (`rsa-${signer.key.bits}` as KeyAlgorithm) : undefined);
      if (!alg) throw new ProblemError('bad_key', `cannot make another ${signer.key.type} key in the token`);
      const next = await store.generate(alg, label);
      return tokenKey(store, next, await store.signer(next), alg);
    },
    remove: () => store.remove(uri),
    close: () => store.close(),
  };
}

/** Generates a new sensitive, non-extractable key pair in the token. */
export async function generateTokenKey(opts: TokenKeyOptions, algorithm: KeyAlgorithm, label: string): Promise<TokenKey> {
  const store = new Pkcs11KeyStore(opts);
  try {
    const uri = await store.generate(algorithm, label);
    return tokenKey(store, uri, await store.signer(uri), algorithm);
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Opens a key the device made earlier (its URI from the device's state). */
export async function openTokenKey(opts: TokenKeyOptions, uri: string): Promise<TokenKey> {
  const store = new Pkcs11KeyStore(opts);
  try {
    const ref = await store.adopt(uri);
    return tokenKey(store, ref, await store.signer(ref), undefined);
  } catch (e) {
    await store.close();
    throw e;
  }
}
