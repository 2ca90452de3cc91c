/**
 * The default key store: one encrypted PKCS#8 file per key in a directory
 * (mode 0700, files 0600), passphrase from the environment or a file — never
 * from the command line. Decrypted keys are cached in memory for the life of
 * the process: PBKDF2 is deliberately slow.
 */
import { constants, generateKeyPairSync, privateDecrypt, randomBytes, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { nodeKeyGenParams, type KeyAlgorithm } from '../x509/algorithms.js';
import { keyObjectSigner, loadPrivateKey, type DecryptingKeyStore, type ExportableKeyStore, type Signer } from './key_store.js';
import { encryptPkcs8, DEFAULT_PBKDF2_ITERATIONS } from './pkcs8_encrypt.js';

const REF_PREFIX = 'soft:';

export interface SoftwareKeyStoreOptions {
  dir: string;
  /** Resolves the passphrase lazily, so commands that sign nothing need none. */
  passphrase: () => string;
  /** Where the passphrase came from ("$FLEETPKI_KEYSTORE_PASSPHRASE", a file), for a wrong-passphrase error. */
  passphraseOrigin?: () => string;
  pbkdf2Iterations?: number;
}

export class SoftwareKeyStore implements ExportableKeyStore, DecryptingKeyStore {
  readonly kind = 'software' as const;
  private readonly signers = new Map<string, Signer>();

  constructor(private readonly opts: SoftwareKeyStoreOptions) {}

  private fileOf(ref: string): string {
    if (!ref.startsWith(REF_PREFIX) || !/^[a-z0-9-]+$/.test(ref.slice(REF_PREFIX.length))) {
      throw new ProblemError('key_unavailable', `"${ref}" is not a software key reference`);
    }
    return join(this.opts.dir, `${ref.slice(REF_PREFIX.length)}.p8`);
  }

  async generate(algorithm: KeyAlgorithm, label: string): Promise<string> {
    const { type, options } = nodeKeyGenParams(algorithm);
    const { privateKey } = generateKeyPairSync(type as 'ec', options as never) as unknown as { privateKey: KeyObject };
    const safeLabel = label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'key';
    const ref = `${REF_PREFIX}${safeLabel}-${randomBytes(6).toString('hex')}`;
    await fs.mkdir(this.opts.dir, { recursive: true, mode: 0o700 });
    const pem = encryptPkcs8(privateKey, this.opts.passphrase(), this.opts.pbkdf2Iterations ?? DEFAULT_PBKDF2_ITERATIONS);
    await writeFileAtomic(this.fileOf(ref), pem);
    this.signers.set(ref, keyObjectSigner(privateKey));
    return ref;
  }

  private async load(ref: string): Promise<KeyObject> {
    let pem: string;
    try {
      pem = await fs.readFile(this.fileOf(ref), 'utf8');
    } catch {
      throw new ProblemError('key_unavailable', `key ${ref} is not in the key store (offline or deleted)`);
    }
    try {
      return loadPrivateKey(pem, this.opts.passphrase());
    } catch (e) {
      if (e instanceof ProblemError) throw e;
      const origin = this.opts.passphraseOrigin?.();
      throw new ProblemError('key_unavailable', `cannot decrypt key ${ref}: wrong key store passphrase${origin ? ` (from ${origin})` : ''}?`);
    }
  }

  async signer(ref: string): Promise<Signer> {
    let s = this.signers.get(ref);
    if (!s) {
      s = keyObjectSigner(await this.load(ref));
      this.signers.set(ref, s);
    }
    return s;
  }

  async has(ref: string): Promise<boolean> {
    try {
      await fs.access(this.fileOf(ref));
      return true;
    } catch {
      return false;
    }
  }

  async remove(ref: string): Promise<void> {
    const file = this.fileOf(ref);
    // Overwrite before unlinking: a best effort against casual recovery; the
    // real protection is that the file only ever held ciphertext.
    try {
      const { size } = await fs.stat(file);
      await fs.writeFile(file, randomBytes(size));
    } catch {
      throw new ProblemError('not_found', `key ${ref} is not in the key store`);
    }
    await fs.unlink(file);
    this.signers.delete(ref);
  }

  async decryptOaep(ref: string, ciphertext: Uint8Array): Promise<Uint8Array> {
    const key = await this.load(ref);
    try {
      return new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, ciphertext));
    } catch {
      throw new ProblemError('bad_request', `key ${ref} cannot decrypt this data`);
    }
  }

  async exportEncrypted(ref: string, passphrase: string): Promise<string> {
    if (passphrase.length < 12) throw new ProblemError('bad_request', 'the export passphrase must be at least 12 characters');
    return encryptPkcs8(await this.load(ref), passphrase, this.opts.pbkdf2Iterations ?? DEFAULT_PBKDF2_ITERATIONS);
  }
}

/** Write to a temporary file and rename: a reader never sees half a key. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
}
