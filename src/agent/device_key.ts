/**
 * Device key custody. The key is generated on the device and never leaves
 * it; the agent only asks for a signature (the CSR's proof of possession) and
 * for what node:tls needs to present it. `DeviceKeyStore` is the seam a
 * PKCS#11 token plugs into: its `tls()` answers with an OpenSSL engine key
 * (privateKeyEngine / privateKeyIdentifier) instead of a PEM.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { keyObjectSigner, type Signer } from '../keys/key_store.js';
import { nodeKeyGenParams, type KeyAlgorithm } from '../x509/algorithms.js';
import type { AgentFiles } from './files.js';

/** How node:tls presents the key: a PEM, or a key that stays in an engine (token). */
export type TlsKey = { key: string } | { privateKeyEngine: string; privateKeyIdentifier: string };

export interface DeviceKey extends Signer {
  /** Where the key is, as stored in the state file: "file:gen/3/key.pem", "pkcs11:...". */
  readonly ref: string;
  tls(): TlsKey;
}

export interface DeviceKeyStore {
  /**
   * A new key for identity generation `generation` (a number that grows with
   * every renewal), durable before this returns.
   */
  generate(algorithm: KeyAlgorithm, generation: number): Promise<DeviceKey>;
  /** The same key, made available for generation `generation` (renewal without a new key). */
  adopt(key: DeviceKey, generation: number): Promise<DeviceKey>;
  load(ref: string): Promise<DeviceKey>;
  /** Destroys the key (an old generation's, after a renewal). */
  remove(ref: string): Promise<void>;
}

/** The generation folder inside the state directory. */
export const genDir = (generation: number) => join('gen', String(generation));

function fileKey(ref: string, privateKey: KeyObject): DeviceKey {
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  return { ...keyObjectSigner(privateKey), ref, tls: () => ({ key: pem }) };
}

/**
 * Software keys: unencrypted PKCS#8 PEM files with mode 0600 in the
 * generation folder (the state directory is 0700). An unencrypted file is
 * what TLS consumers on the device (Mosquitto, nginx) read; protect the
 * device, or use a token.
 */
export class FileKeyStore implements DeviceKeyStore {
  constructor(
    private readonly stateDir: string,
    private readonly files: AgentFiles,
  ) {}

  private path(ref: string): string {
    if (!ref.startsWith('file:') || ref.includes('..')) throw new ProblemError('corrupt_state', `key reference "${ref}" is not a file in the state directory`);
    return join(this.stateDir, ref.slice('file:'.length));
  }

  async generate(algorithm: KeyAlgorithm, generation: number): Promise<DeviceKey> {
    const { type, options } = nodeKeyGenParams(algorithm);
    const { privateKey } = generateKeyPairSync(type as 'ec', options as never) as unknown as { privateKey: KeyObject };
    return this.write(privateKey, generation);
  }

  async adopt(key: DeviceKey, generation: number): Promise<DeviceKey> {
    const tls = key.tls();
    if (!('key' in tls)) throw new ProblemError('config_error', 'a file key store cannot adopt a token key');
    return this.write(createPrivateKey(tls.key), generation);
  }

  private async write(privateKey: KeyObject, generation: number): Promise<DeviceKey> {
    const ref = `file:${genDir(generation)}/key.pem`;
    await this.files.mkdir(join(this.stateDir, genDir(generation)), 0o700);
    await this.files.writeAtomic(this.path(ref), privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
    return fileKey(ref, privateKey);
  }

  async load(ref: string): Promise<DeviceKey> {
    const path = this.path(ref);
    const pem = await this.files.readIfExists(path);
    if (!pem) throw new ProblemError('corrupt_state', `the device key ${path} is missing`);
    try {
      return fileKey(ref, createPrivateKey(pem));
    } catch (e) {
      throw new ProblemError('corrupt_state', `the device key ${path} cannot be read: ${(e as Error).message}`);
    }
  }

  async remove(ref: string): Promise<void> {
    await this.files.remove(this.path(ref));
  }
}
