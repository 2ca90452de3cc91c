/**
 * One-time enrollment secrets, sealed so CMP can use them.
 *
 * EST checks a secret against its stored hash. CMP's MAC-based protection
 * (PasswordBasedMac and PBMAC1, RFC 9481 §6.1) keys an HMAC with a key
 * derived from the secret and a salt and iteration count that the client
 * picks for each message, so the server needs the secret itself: neither a
 * hash nor a key derived at registration can verify such a MAC.
 *
 * So each new secret is also sealed (ECIES: an ephemeral P-256 key, ECDH with
 * the sealing key, HKDF-SHA256, AES-256-GCM bound to the device id) to a
 * sealing key whose private half lives in the key store, like the CA keys.
 * Registering a device needs only the public half, so `fleetpki device
 * register` does not unlock the key store; opening needs the key store, which
 * only the server unlocks. The database alone (a dump, a backup) yields
 * neither the secret nor a way to test guesses faster than the hash allows.
 * The registry wipes the sealed copy when the secret is used.
 */
import { createCipheriv, createDecipheriv, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { canAgree, type KeyStore } from '../keys/key_store.js';
import type { SealingKeyRecord, Store } from '../store/store.js';
import { hashSecret } from './registry.js';

const VERSION = 1;
const INFO = Buffer.from('fleetpki enrollment secret v1');
/** One answer for every reason a secret cannot be used: do not reveal which device ids exist. */
export const SECRET_DENIED = 'unknown device or wrong, used or expired enrollment secret';

export class SecretVault {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
  ) {}

  /**
   * The sealing key, created when there is none (by `init`, or by the server
   * at start on a data directory made before CMP). Needs the key store.
   */
  async ensureKey(actor: string): Promise<SealingKeyRecord> {
    const have = await this.store.getSealingKey();
    if (have) return have;
    if (!canAgree(this.keys)) throw new ProblemError('key_unavailable', `the ${this.keys.kind} key store cannot hold the secret sealing key (no ECDH)`);
    const keyRef = await this.keys.generate('ecdsa-p256', 'secret-sealing');
    const signer = await this.keys.signer(keyRef);
    const rec: SealingKeyRecord = { id: randomUUID(), keyRef, spki: signer.spki, createdAt: this.clock.now() };
    await this.store.putSealingKey(rec, { actor, action: 'registry.sealing-key.create', target: rec.id, details: { keyRef } });
    return rec;
  }

  /** Seals a new secret; undefined when no sealing key exists yet (the secret then serves EST only). */
  async seal(deviceId: string, secret: string): Promise<Uint8Array | undefined> {
    const key = await this.store.getSealingKey();
    if (!key) return undefined;
    const eph = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ephSpki = new Uint8Array(eph.publicKey.export({ format: 'der', type: 'spki' }));
    const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' }) });
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', contentKey(shared, ephSpki), iv);
    cipher.setAAD(aad(deviceId, key.id));
    const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return encodeBlob({ keyId: key.id, ephSpki, iv, ct, tag: cipher.getAuthTag() });
  }

  /** Opens a sealed secret of `deviceId`. Throws unauthorized when it does not open. */
  async open(deviceId: string, sealed: Uint8Array): Promise<string> {
    const blob = decodeBlob(sealed);
    const key = await this.store.getSealingKey(blob.keyId);
    if (!key) throw new ProblemError('unauthorized', SECRET_DENIED, { reason: `sealing key ${blob.keyId} is gone` });
    if (!canAgree(this.keys)) throw new ProblemError('key_unavailable', `the ${this.keys.kind} key store cannot open sealed secrets (no ECDH)`);
    const shared = await this.keys.agree(key.keyRef, blob.ephSpki);
    try {
      const decipher = createDecipheriv('aes-256-gcm', contentKey(shared, blob.ephSpki), blob.iv);
      decipher.setAAD(aad(deviceId, key.id));
      decipher.setAuthTag(blob.tag);
      return Buffer.concat([decipher.update(blob.ct), decipher.final()]).toString('utf8');
    } catch {
      throw new ProblemError('unauthorized', SECRET_DENIED, { reason: 'the sealed secret does not open (wrong device or tampered)' });
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
    if (!rec.sealed) throw denied('the secret was made before CMP support (no sealed copy); issue a new one');
    const secret = await this.open(deviceId, rec.sealed);
    // The hash is what EST and the enrollment check: the two copies must agree.
    if (!timingSafeEqual(Buffer.from(hashSecret(secret), 'hex'), Buffer.from(rec.secretHash, 'hex'))) throw denied('the sealed copy does not match the hash');
    return { secret, sealed: rec.sealed };
  }
}

function contentKey(shared: Uint8Array, ephSpki: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, ephSpki, INFO, 32));
}

function aad(deviceId: string, keyId: string): Buffer {
  return Buffer.from(`${deviceId}\0${keyId}`, 'utf8');
}

interface Blob {
  keyId: string;
  ephSpki: Uint8Array;
  iv: Uint8Array;
  ct: Uint8Array;
  tag: Uint8Array;
}

/** version(1) | len(1) keyId | len(1) ephemeral SPKI | iv(12) | tag(16) | ciphertext */
function encodeBlob(b: Blob): Uint8Array {
  const id = Buffer.from(b.keyId, 'utf8');
  return new Uint8Array(Buffer.concat([Buffer.of(VERSION, id.length), id, Buffer.of(b.ephSpki.length), b.ephSpki, b.iv, b.tag, b.ct]));
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
  const ephSpki = new Uint8Array(take(take(1)[0]));
  const iv = take(12);
  const tag = take(16);
  const ct = buf.subarray(p);
  return { keyId, ephSpki, iv, ct, tag };
}
