/**
 * One-time enrollment secrets, sealed so CMP can use them.
 *
 * EST checks a secret against its stored hash. CMP's MAC-based protection
 * (PasswordBasedMac and PBMAC1, RFC 9481 §6.1) keys an HMAC with a key
 * derived from the secret and a salt and iteration count that the client
 * picks for each message, so the server needs the secret itself: neither a
 * hash nor a key derived at registration can verify such a MAC.
 *
 * So each new secret is also sealed to a sealing key whose private half
 * lives in the key store, like the CA keys (a token, where there is one):
 * AES-256-GCM under a fresh key, bound to the device id, the fresh key
 * wrapped with RSAES-OAEP (RFC 8017 §7.1), the scheme key escrow uses.
 * Sealing needs only the public half (in the store), so `fleetpki device
 * register` does not unlock the key store; opening decrypts inside the key
 * store, which only the server unlocks. The database alone (a dump, a
 * backup) yields neither the secret nor a faster test of guesses than the
 * hash allows. The registry wipes the sealed copy when the secret is used.
 */
import { constants, createCipheriv, createDecipheriv, createPublicKey, publicEncrypt, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { isDecrypting, type KeyStore } from '../keys/key_store.js';
import type { SealingKeyRecord, Store } from '../store/store.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import { hashSecret } from './registry.js';

/** RSA-3072: 128-bit security, as for the escrow key (NIST SP 800-57). */
const SEALING_KEY_ALGORITHM: KeyAlgorithm = 'rsa-3072';
const VERSION = 1;
/** One answer for every reason a secret cannot be used: do not reveal which device ids exist. */
export const SECRET_DENIED = 'unknown device or wrong, used or expired enrollment secret';

export class SecretVault {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
  ) {}

  /**
   * The sealing key, created in the key store when there is none (by `init`,
   * or by the server at start on a data directory made before CMP).
   */
  async ensureKey(actor: string): Promise<SealingKeyRecord> {
    const have = await this.store.getSealingKey();
    if (have) return have;
    if (!isDecrypting(this.keys)) throw new ProblemError('config_error', `the ${this.keys.kind} key store cannot hold the secret sealing key (no RSA decryption)`);
    const keyRef = await this.keys.generate(SEALING_KEY_ALGORITHM, 'secret-sealing', { usage: 'decrypt' });
    const spki = (await this.keys.signer(keyRef)).spki;
    const rec: SealingKeyRecord = { id: randomUUID(), keyRef, spki, createdAt: this.clock.now() };
    await this.store.putSealingKey(rec, { actor, action: 'registry.sealing-key.create', target: rec.id, details: { keyRef, algorithm: SEALING_KEY_ALGORITHM, keyStore: this.keys.kind } });
    return rec;
  }

  /**
   * Seals a new secret to the newest sealing key. Undefined when there is
   * none (a data directory made before CMP that no server has opened yet):
   * the secret then serves EST only, and CMP asks for a new one.
   */
  async seal(deviceId: string, secret: string): Promise<Uint8Array | undefined> {
    const key = await this.store.getSealingKey();
    if (!key) return undefined;
    const contentKey = randomBytes(32);
    const wrapped = publicEncrypt({ key: createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, contentKey);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', contentKey, iv);
    cipher.setAAD(aad(deviceId, key.id));
    const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return encodeBlob({ keyId: key.id, wrapped, iv, tag: cipher.getAuthTag(), ct });
  }

  /** Opens a sealed secret of `deviceId`. Throws unauthorized when it does not open. */
  async open(deviceId: string, sealed: Uint8Array): Promise<string> {
    const denied = (reason: string) => new ProblemError('unauthorized', SECRET_DENIED, { reason });
    const blob = decodeBlob(sealed);
    const key = await this.store.getSealingKey(blob.keyId);
    if (!key) throw denied(`sealing key ${blob.keyId} is gone`);
    const keys = this.keys;
    if (!isDecrypting(keys)) throw new ProblemError('key_unavailable', `the ${keys.kind} key store cannot open sealed secrets (no RSA decryption)`);
    let contentKey: Uint8Array;
    try {
      contentKey = await keys.decryptOaep(key.keyRef, blob.wrapped);
    } catch (e) {
      if (e instanceof ProblemError && e.code === 'key_unavailable') throw e;
      throw denied('the sealed secret does not open (tampered, or sealed to another key)');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', contentKey, blob.iv);
      decipher.setAAD(aad(deviceId, key.id));
      decipher.setAuthTag(blob.tag);
      return Buffer.concat([decipher.update(blob.ct), decipher.final()]).toString('utf8');
    } catch {
      throw denied('the sealed secret does not open (wrong device or tampered)');
    }
  }

  /**
   * The device's usable one-time secret, to verify a CMP MAC with: it must
   * exist, be unused and unexpired, and have a sealed copy. Throws
   * unauthorized with one message for every reason (the reason is in
   * `extra` for the log). Nothing is consumed: the enrollment does that.
   */
  async secretFor(deviceId: string): Promise<{ secret: string; sealed: Uint8Array }> {
    const denied = (reason: string) => new ProblemError('unauthorized', SECRET_DENIED, { reason });
    const [device, rec] = await Promise.all([this.store.getDevice(deviceId), this.store.getEnrollmentSecret(deviceId)]);
    if (!device || !rec) throw denied('no such device or no secret');
    if (rec.usedAt) throw denied('the secret was used');
    if (rec.expiresAt <= this.clock.now()) throw denied('the secret expired');
    if (!rec.sealed) throw denied('the secret has no sealed copy (made before CMP support); issue a new one');
    const secret = await this.open(deviceId, rec.sealed);
    // The hash is what EST and the enrollment check: the two copies must agree.
    if (!timingSafeEqual(Buffer.from(hashSecret(secret), 'hex'), Buffer.from(rec.secretHash, 'hex'))) throw denied('the sealed copy does not match the hash');
    return { secret, sealed: rec.sealed };
  }
}

function aad(deviceId: string, keyId: string): Buffer {
  return Buffer.from(`fleetpki enrollment secret v1\0${deviceId}\0${keyId}`, 'utf8');
}

interface Blob {
  keyId: string;
  wrapped: Uint8Array;
  iv: Uint8Array;
  tag: Uint8Array;
  ct: Uint8Array;
}

/** version(1) | len(1) keyId | len(2) RSA-OAEP wrapped key | iv(12) | tag(16) | ciphertext */
function encodeBlob(b: Blob): Uint8Array {
  const id = Buffer.from(b.keyId, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.wrapped.length);
  return new Uint8Array(Buffer.concat([Buffer.of(VERSION, id.length), id, len, b.wrapped, b.iv, b.tag, b.ct]));
}

function decodeBlob(bytes: Uint8Array): Blob {
  const bad = () => new ProblemError('unauthorized', SECRET_DENIED, { reason: 'malformed sealed secret' });
  const buf = Buffer.from(bytes);
  if (buf.length < 3 || buf[0] !== VERSION) throw bad();
  let p = 1;
  const take = (n: number) => {
    if (p + n > buf.length) throw bad();
    const out = buf.subarray(p, p + n);
    p += n;
    return out;
  };
  const keyId = take(take(1)[0]).toString('utf8');
  const wrapped = new Uint8Array(take(take(2).readUInt16BE(0)));
  const iv = take(12);
  const tag = take(16);
  const ct = buf.subarray(p);
  return { keyId, wrapped, iv, tag, ct };
}
