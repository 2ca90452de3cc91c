/**
 * Server-side key generation and key escrow. The device generating its own
 * key is the rule; this is the exception a profile must allow
 * (`serverKeyGen`), for devices that cannot make a good key themselves.
 *
 * Without `keyEscrow` in the profile the key is returned once and the server
 * keeps no copy: it exists only in this process's memory until the caller
 * encrypts it for delivery. With `keyEscrow` it is also stored encrypted to
 * the escrow key, an RSA key held in the KeyStore (a token, where there is
 * one): AES-256-GCM under a fresh key that is wrapped with RSAES-OAEP (RFC
 * 8017 §7.1). Recovery needs an operator with the key-recovery role, decrypts
 * inside the KeyStore and is audited.
 */
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, constants, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import type { Authority, IssueResult } from '../authority/authority.js';
import type { Clock } from '../clock.js';
import { isProblem, ProblemError } from '../errors.js';
import { isDecrypting, type KeyStore } from '../keys/key_store.js';
import type { CertificateRecord, EscrowKeyRecord, Store } from '../store/store.js';
import { isKeyAlgorithm, nodeKeyGenParams, type KeyAlgorithm } from '../x509/algorithms.js';
import type { San } from '../x509/general_names.js';
import type { DnAttribute } from '../x509/names.js';
import { authorize, type Operator } from './operators.js';

/** RSA-3072: 128-bit security, like the P-256 keys it protects (NIST SP 800-57). */
const ESCROW_KEY_ALGORITHM: KeyAlgorithm = 'rsa-3072';

export interface ServerKeyGenRequest {
  profile: string;
  ca?: string;
  subject: DnAttribute[];
  sans?: San[];
  /** Default: the profile's first key algorithm. */
  keyAlgorithm?: string;
  validityDays?: number;
  actor: string;
}

export interface GeneratedKey {
  result: IssueResult;
  /** The new private key; the caller encrypts it for delivery and drops it. */
  privateKey: KeyObject;
  escrowed: boolean;
}

interface Envelope {
  v: 1;
  alg: 'RSAES-OAEP-SHA1+A256GCM';
  /** sha256 of the escrow key's SPKI. */
  kid: string;
  wrappedKey: string;
  iv: string;
  tag: string;
  ciphertext: string;
}

export class KeyCustody {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly authority: Authority,
    private readonly clock: Clock,
  ) {}

  /** Generates a key pair for a certificate of `profile`, issues it and escrows the key if the profile says so. */
  async generateAndIssue(req: ServerKeyGenRequest): Promise<GeneratedKey> {
    const profile = this.authority.profile(req.profile);
    if (!profile.serverKeyGen) throw new ProblemError('forbidden', `profile ${req.profile} does not allow server-side key generation (set "serverKeyGen": true)`);
    const alg = req.keyAlgorithm ?? profile.keyAlgorithms[0];
    if (!isKeyAlgorithm(alg)) throw new ProblemError('bad_request', `unknown key algorithm "${alg}"`);
    if (!(profile.keyAlgorithms as string[]).includes(alg)) throw new ProblemError('bad_key', `profile ${req.profile} does not allow ${alg} keys (allowed: ${profile.keyAlgorithms.join(', ')})`);
    // Checked before any key is made, so a failed escrow cannot leave an issued certificate behind.
    const escrowKey = profile.keyEscrow ? await this.escrowKey(req.actor) : undefined;
    const { privateKey, publicKey } = generate(alg);
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const result = await this.authority.prepare({ serverGeneratedSpki: spki, profile: req.profile, ca: req.ca, subject: req.subject, sans: req.sans, validityDays: req.validityDays, actor: req.actor });
    await this.store.insertCertificate(result.record, this.authority.issueAudit(result, req.actor, { serverKeyGen: true, keyEscrow: !!escrowKey }));
    if (escrowKey) await this.escrow(result.record.serial, privateKey, req.actor, escrowKey);
    return { result, privateKey, escrowed: !!escrowKey };
  }

  /** Puts `privateKey` (of certificate `serial`) in escrow. */
  async escrow(serial: string, privateKey: KeyObject, actor: string, key?: EscrowKeyRecord): Promise<void> {
    const k = key ?? (await this.escrowKey(actor));
    const envelope = seal(privateKey, k);
    await this.store.putEscrowedKey(
      { serial, escrowKeyRef: k.keyRef, envelope, createdAt: this.clock.now() },
      { actor, action: 'key.escrow', target: serial, details: { escrowKey: k.keyRef } },
    );
  }

  /** The current escrow key, created in the KeyStore on first use. */
  async escrowKey(actor: string): Promise<EscrowKeyRecord> {
    const have = await this.store.getEscrowKey();
    if (have) return have;
    if (!isDecrypting(this.keys)) throw new ProblemError('config_error', `the ${this.keys.kind} key store cannot hold an escrow key`);
    const keyRef = await this.keys.generate(ESCROW_KEY_ALGORITHM, 'key-escrow', { usage: 'decrypt' });
    const spki = (await this.keys.signer(keyRef)).spki;
    const rec = { keyRef, spki, createdAt: this.clock.now() };
    try {
      await this.store.putEscrowKey(rec, { actor, action: 'key.escrow.create', target: keyRef, details: { algorithm: ESCROW_KEY_ALGORITHM, keyStore: this.keys.kind } });
      return rec;
    } catch (e) {
      await this.keys.remove(keyRef).catch(() => undefined);
      // Another node made one at the same moment: use the one that is stored.
      const other = isProblem(e, 'already_exists') ? await this.store.getEscrowKey() : undefined;
      if (other) return other;
      throw e;
    }
  }

  /**
   * Recovers the escrowed key of a certificate. Only a key-recovery operator
   * may; every attempt is audited, refused ones too.
   */
  async recover(serial: string, op: Operator): Promise<{ privateKey: KeyObject; certificate: CertificateRecord }> {
    try {
      authorize(op, 'key:recover');
      const cert = await this.store.getCertificate(serial);
      if (!cert) throw new ProblemError('not_found', `no certificate with serial ${serial}`);
      const rec = await this.store.getEscrowedKey(serial);
      if (!rec) throw new ProblemError('not_found', `certificate ${serial} has no escrowed key (its profile did not escrow, or the key was generated by the device)`);
      const keys = this.keys;
      if (!isDecrypting(keys)) throw new ProblemError('key_unavailable', 'the key store cannot decrypt escrowed keys');
      const privateKey = await open(rec.envelope, (wrapped) => keys.decryptOaep(rec.escrowKeyRef, wrapped));
      if (createHash('sha256').update(createPublicKey(privateKey).export({ format: 'der', type: 'spki' })).digest('hex') !== cert.spkiSha256) {
        throw new ProblemError('internal', `the escrowed key of ${serial} does not match its certificate`);
      }
      await this.store.appendAudit({ actor: op.actor, action: 'key.recover', target: serial, details: { role: op.role, escrowKey: rec.escrowKeyRef, subject: cert.subject } });
      return { privateKey, certificate: cert };
    } catch (e) {
      if (e instanceof ProblemError) {
        await this.store.appendAudit({ actor: op.actor, action: 'key.recover.refuse', target: serial, details: { role: op.role, code: e.code, detail: e.detail } });
      }
      throw e;
    }
  }
}

function generate(alg: KeyAlgorithm): { privateKey: KeyObject; publicKey: KeyObject } {
  const { type, options } = nodeKeyGenParams(alg);
  return generateKeyPairSync(type as 'ec', options as never) as unknown as { privateKey: KeyObject; publicKey: KeyObject };
}

function seal(privateKey: KeyObject, k: EscrowKeyRecord): Uint8Array {
  const cek = randomBytes(32);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', cek, iv);
  const kid = createHash('sha256').update(k.spki).digest('hex');
  cipher.setAAD(Buffer.from(kid));
  const ciphertext = Buffer.concat([cipher.update(privateKey.export({ format: 'der', type: 'pkcs8' })), cipher.final()]);
  const pub = createPublicKey({ key: Buffer.from(k.spki), format: 'der', type: 'spki' });
  const wrappedKey = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, cek);
  cek.fill(0);
  const env: Envelope = { v: 1, alg: 'RSAES-OAEP-SHA1+A256GCM', kid, wrappedKey: wrappedKey.toString('base64'), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
  return new Uint8Array(Buffer.from(JSON.stringify(env)));
}

async function open(envelope: Uint8Array, unwrap: (wrapped: Uint8Array) => Promise<Uint8Array>): Promise<KeyObject> {
  const env = JSON.parse(Buffer.from(envelope).toString('utf8')) as Envelope;
  if (env.v !== 1 || env.alg !== 'RSAES-OAEP-SHA1+A256GCM') throw new ProblemError('internal', `unknown escrow envelope ${env.alg}`);
  const cek = Buffer.from(await unwrap(new Uint8Array(Buffer.from(env.wrappedKey, 'base64'))));
  try {
    const d = createDecipheriv('aes-256-gcm', cek, Buffer.from(env.iv, 'base64'));
    d.setAAD(Buffer.from(env.kid));
    d.setAuthTag(Buffer.from(env.tag, 'base64'));
    const der = Buffer.concat([d.update(Buffer.from(env.ciphertext, 'base64')), d.final()]);
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    cek.fill(0);
  }
}
