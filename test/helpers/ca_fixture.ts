/**
 * Test fixtures: a working two-level CA (root + issuing) on the real SQLite
 * store and software key store, and CSRs made by the real `openssl req` CLI —
 * requests from a real client, never from fleetpki's own encoder.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authority } from '../../src/authority/authority.js';
import { resolveProfiles, type Profile } from '../../src/authority/profiles.js';
import { systemClock, type Clock } from '../../src/clock.js';
import { SoftwareKeyStore } from '../../src/keys/software_key_store.js';
import { openStore } from '../../src/store/open_store.js';
import type { Store } from '../../src/store/store.js';
import type { KeyAlgorithm } from '../../src/x509/algorithms.js';
import type { NameConstraintSpec } from '../../src/x509/extensions.js';
import { pemEncode } from '../../src/x509/pem.js';

export const OPENSSL = '/usr/bin/openssl';
export const TEST_PASSPHRASE = 'fleetpki-test-passphrase';
export const TEST_PUBLIC_URL = 'http://pki.test.example:8080';

export interface TestCa {
  authority: Authority;
  store: Store;
  keys: SoftwareKeyStore;
  dir: string;
  clock: Clock;
  rootPem: string;
  issuingPem: string;
  cleanup(): Promise<void>;
}

export interface TestCaOptions {
  keyAlgorithm?: KeyAlgorithm;
  /** Name constraints written into the issuing CA certificate. */
  nameConstraints?: NameConstraintSpec;
  clock?: Clock;
  /** Profile overrides, as in the config file. */
  profiles?: Record<string, Partial<Profile>>;
  rootValidityDays?: number;
  issuingValidityDays?: number;
}

/** A root 'root' and an issuing CA 'issuing' under it, in a fresh temp dir and an in-memory store. */
export async function makeTestCa(opts: TestCaOptions = {}): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-ca-'));
  const store = await openStore(':memory:');
  const keys = new SoftwareKeyStore({ dir: join(dir, 'keys'), passphrase: () => TEST_PASSPHRASE, pbkdf2Iterations: 1000 });
  const clock = opts.clock ?? systemClock;
  const authority = new Authority(store, keys, clock, {
    profiles: resolveProfiles(opts.profiles ?? {}),
    defaultCa: 'issuing',
    publicUrl: TEST_PUBLIC_URL,
    backdateSeconds: 300,
  });
  const keyAlgorithm = opts.keyAlgorithm ?? 'ecdsa-p256';
  try {
    const root = await authority.createRootCa({
      name: 'root',
      subject: [
        { type: 'O', value: 'Fleetpki Test' },
        { type: 'CN', value: `Test Root CA ${keyAlgorithm}` },
      ],
      keyAlgorithm,
      validityDays: opts.rootValidityDays ?? 3650,
      actor: 'test',
    });
    const issuing = await authority.createIssuingCa({
      name: 'issuing',
      parent: 'root',
      subject: [
        { type: 'O', value: 'Fleetpki Test' },
        { type: 'CN', value: `Test Issuing CA ${keyAlgorithm}` },
      ],
      keyAlgorithm,
      validityDays: opts.issuingValidityDays ?? 1825,
      nameConstraints: opts.nameConstraints,
      actor: 'test',
    });
    return {
      authority,
      store,
      keys,
      dir,
      clock,
      rootPem: pemEncode('CERTIFICATE', root.certDer),
      issuingPem: pemEncode('CERTIFICATE', issuing.certDer),
      async cleanup() {
        await store.close().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export type CsrAlgorithm = 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-p521' | 'ed25519' | 'ed448' | 'rsa-1024' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

export interface CsrOptions {
  alg: CsrAlgorithm;
  /** openssl -subj form, e.g. "/O=Acme/CN=dev-1"; default "/CN=device-<alg>". */
  subject?: string;
  /** openssl subjectAltName values, e.g. ['DNS:a.example', 'IP:10.0.0.1', 'URI:urn:x']. */
  sans?: string[];
  /** Digest for the self-signature (ignored for EdDSA); default sha256. */
  digest?: 'sha1' | 'sha256' | 'sha384' | 'sha512';
  /** An existing private key (PEM) to reuse instead of generating one. */
  keyPem?: string;
}

function newkeyArgs(alg: CsrAlgorithm): string[] {
  switch (alg) {
    case 'ecdsa-p256':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
    case 'ecdsa-p384':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
    case 'ecdsa-p521':
      return ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'];
    case 'ed25519':
    case 'ed448':
      return ['-newkey', alg];
    default:
      return ['-newkey', `rsa:${alg.slice(4)}`];
  }
}

/** Generates a key and a CSR with the real `openssl req`; returns both as PEM. */
export function makeCsr(opts: CsrOptions): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-csr-'));
  try {
    const keyFile = join(dir, 'key.pem');
    const csrFile = join(dir, 'req.csr');
    const args = ['req', '-new', '-batch', '-subj', opts.subject ?? `/CN=device-${opts.alg}`, '-out', csrFile];
    if (opts.keyPem) {
      writeFileSync(keyFile, opts.keyPem, { mode: 0o600 });
      args.push('-key', keyFile);
    } else {
      args.push(...newkeyArgs(opts.alg), '-nodes', '-keyout', keyFile);
    }
    if (!opts.alg.startsWith('ed')) args.push(`-${opts.digest ?? 'sha256'}`);
    if (opts.sans?.length) args.push('-addext', `subjectAltName=${opts.sans.join(',')}`);
    execFileSync(OPENSSL, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    return { csrPem: readFileSync(csrFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a CLI and returns its status and combined output, without throwing on failure. */
export function run(cmd: string, args: string[], input?: string): { status: number; out: string } {
  try {
    const out = execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    return { status: 0, out };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { status: err.status ?? 1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}
