/**
 * Several PKCS#11 tokens behind one KeyStore: the main token, where keys are
 * generated, and others named by label (an offline root's token). A key
 * reference names its token (RFC 7512 `token=`), so every call goes to the
 * token that holds the key; a token that is not connected answers
 * key_unavailable (token_missing) for its own keys only, and the others go
 * on signing. That is how a root key stays offline in its own token between
 * ceremonies while the issuing CA signs from the online one.
 */
import { ProblemError } from '../errors.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import type { DecryptingKeyStore, GenerateOptions, KeyStore, Signer } from './key_store.js';
import { Pkcs11KeyStore } from './pkcs11_key_store.js';
import { parsePkcs11Uri } from './pkcs11_uri.js';

/** Capability: take over a key that already exists in the store (a token key made by other tools). */
export interface AdoptingKeyStore extends KeyStore {
  adopt(uri: string): Promise<string>;
}

export function isAdopting(k: KeyStore): k is AdoptingKeyStore {
  return typeof (k as Partial<AdoptingKeyStore>).adopt === 'function';
}

export class Pkcs11TokenSet implements DecryptingKeyStore, AdoptingKeyStore {
  readonly kind = 'pkcs11' as const;
  private readonly byLabel = new Map<string, Pkcs11KeyStore>();

  constructor(private readonly main: Pkcs11KeyStore, others: Pkcs11KeyStore[]) {
    for (const t of [main, ...others]) {
      if (this.byLabel.has(t.tokenLabel)) throw new ProblemError('config_error', `PKCS#11 token "${t.tokenLabel}" is configured twice`);
      this.byLabel.set(t.tokenLabel, t);
    }
  }

  get reconnects(): number {
    return [...this.byLabel.values()].reduce((n, t) => n + t.reconnects, 0);
  }

  private route(ref: string): Pkcs11KeyStore {
    let token: string | undefined;
    try {
      token = parsePkcs11Uri(ref).token;
    } catch {
      return this.main; // the main store reports the bad reference
    }
    if (token === undefined) return this.main;
    const t = this.byLabel.get(token);
    if (!t) throw new ProblemError('key_unavailable', `key ${ref} is in PKCS#11 token "${token}", which the key store is not configured for (keyStore.extraTokens)`, { reason: 'key_missing' });
    return t;
  }

  generate(algorithm: KeyAlgorithm, label: string, opts: GenerateOptions = {}): Promise<string> {
    const t = opts.token === undefined ? this.main : this.byLabel.get(opts.token);
    if (!t) throw new ProblemError('config_error', `PKCS#11 token "${opts.token}" is not configured`);
    return t.generate(algorithm, label, { ...opts, token: undefined });
  }

  signer(ref: string): Promise<Signer> {
    return this.route(ref).signer(ref);
  }

  adopt(uri: string): Promise<string> {
    return this.route(uri).adopt(uri);
  }

  decryptOaep(ref: string, ciphertext: Uint8Array): Promise<Uint8Array> {
    return this.route(ref).decryptOaep(ref, ciphertext);
  }

  async has(ref: string): Promise<boolean> {
    try {
      return await this.route(ref).has(ref);
    } catch {
      return false;
    }
  }

  remove(ref: string): Promise<void> {
    return this.route(ref).remove(ref);
  }

  async close(): Promise<void> {
    await Promise.all([...this.byLabel.values()].map((t) => t.close()));
  }
}
