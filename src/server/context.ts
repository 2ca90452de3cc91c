/**
 * The composition root: reads a data directory's config and wires the store,
 * key store, authority and operators together. The CLI and the server both
 * start here; nothing below this layer knows about files or environment.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { Authority } from '../authority/authority.js';
import { CrlService } from '../authority/crl.js';
import { resolveProfiles } from '../authority/profiles.js';
import { systemClock, type Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { SoftwareKeyStore, writeFileAtomic } from '../keys/software_key_store.js';
import { Operators } from '../registry/operators.js';
import { Enrollment } from '../registry/enrollment.js';
import { Registry } from '../registry/registry.js';
import { SecretVault } from '../registry/secret_vault.js';
import { openStore } from '../store/open_store.js';
import type { Store } from '../store/store.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import { parseDn, type DnAttribute } from '../x509/names.js';
import { CONFIG_FILE, defaultConfig, loadConfig, saveConfig, validateConfig, type FleetConfig } from './config.js';

export interface FleetContext {
  dir: string;
  config: FleetConfig;
  store: Store;
  keys: SoftwareKeyStore;
  authority: Authority;
  operators: Operators;
  registry: Registry;
  enrollment: Enrollment;
  /** Sealed one-time secrets (CMP MAC protection). */
  vault: SecretVault;
  crls: CrlService;
  clock: Clock;
  close(): Promise<void>;
}

export const PASSPHRASE_ENV = 'FLEETPKI_KEYSTORE_PASSPHRASE';
export const PASSPHRASE_FILE_ENV = 'FLEETPKI_KEYSTORE_PASSPHRASE_FILE';

/** Key store passphrase: environment first, then the file the config names. */
function passphraseSource(dir: string, config: FleetConfig): () => string {
  return () => {
    const fromEnv = process.env[PASSPHRASE_ENV];
    if (fromEnv) return fromEnv;
    const file = process.env[PASSPHRASE_FILE_ENV] ?? (config.keyStore.passphraseFile ? resolve(dir, config.keyStore.passphraseFile) : undefined);
    if (!file) throw new ProblemError('key_unavailable', `the key store is locked: set ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV}`);
    try {
      const p = readFileSync(file, 'utf8').trim();
      if (p) return p;
    } catch {
      /* reported below */
    }
    throw new ProblemError('key_unavailable', `cannot read the key store passphrase from ${file}`);
  };
}

export function storeSpec(dir: string, config: FleetConfig): string {
  return /^postgres(ql)?:\/\//.test(config.store) ? config.store : resolve(dir, config.store);
}

async function wire(dir: string, config: FleetConfig, clock: Clock, store?: Store): Promise<FleetContext> {
  const s = store ?? (await openStore(storeSpec(dir, config), { clock }));
  const keys = new SoftwareKeyStore({ dir: resolve(dir, config.keyStore.dir), passphrase: passphraseSource(dir, config), pbkdf2Iterations: config.keyStore.pbkdf2Iterations });
  const authority = new Authority(s, keys, clock, {
    profiles: resolveProfiles(config.profiles),
    defaultCa: config.defaultCa,
    publicUrl: config.publicUrl,
    backdateSeconds: config.issuance.backdateSeconds,
    deltaCrls: config.crl.deltaValidityHours > 0,
    crlShards: config.crl.shards,
  });
  const crls = new CrlService(s, authority, clock, { ...config.crl, publicUrl: config.publicUrl });
  const vault = new SecretVault(s, keys, clock);
  const registry = new Registry(s, authority, clock, { secretTtlHours: config.registry.secretTtlHours }, vault);
  const enrollment = new Enrollment(s, authority, clock, { org: config.org, manufacturerId: config.registry.manufacturerId, retryAfterSeconds: config.est.retryAfterSeconds });
  return { dir, config, store: s, keys, authority, operators: new Operators(s, clock), registry, enrollment, vault, crls, clock, close: () => s.close() };
}

export async function openContext(dirOpt?: string, opts: { clock?: Clock; storeOverride?: string } = {}): Promise<FleetContext> {
  const dir = resolve(dirOpt ?? process.env.FLEETPKI_DIR ?? './fleetpki-data');
  const config = await loadConfig(dir);
  if (opts.storeOverride) config.store = opts.storeOverride;
  return wire(dir, config, opts.clock ?? systemClock);
}

export interface InitOptions {
  dir: string;
  org: string;
  keyAlgorithm: KeyAlgorithm;
  rootValidityDays: number;
  issuingValidityDays: number;
  rootSubject?: string;
  issuingSubject?: string;
  publicUrl?: string;
  listen?: string;
  httpListen?: string;
  hostnames?: string[];
  store?: string;
  clock?: Clock;
}

export interface InitResult {
  ctx: FleetContext;
  adminToken: string;
  /** Set when init generated the key store passphrase into a file. */
  passphraseFile?: string;
}

/** Who runs a CLI command, for the audit log. */
export function cliActor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return `cli:${user}`;
}

/**
 * Creates a data directory: config, store, key store, a root CA and an
 * issuing CA, and the first admin token. Removes what it created on failure.
 */
export async function initDataDir(o: InitOptions): Promise<InitResult> {
  const dir = resolve(o.dir);
  if (existsSync(join(dir, CONFIG_FILE))) throw new ProblemError('already_exists', `${dir} already holds a fleetpki data directory`);
  const created = !existsSync(dir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });

  const config = defaultConfig(o.org);
  if (o.publicUrl) config.publicUrl = o.publicUrl;
  if (o.listen) config.server.listen = o.listen;
  if (o.httpListen) {
    config.server.httpListen = o.httpListen;
    if (!o.publicUrl) config.publicUrl = `http://${o.httpListen}`;
  }
  if (o.hostnames?.length) config.server.hostnames = o.hostnames;
  if (o.store) config.store = o.store;
  validateConfig(config);

  let passphraseFile: string | undefined;
  if (!process.env[PASSPHRASE_ENV] && !process.env[PASSPHRASE_FILE_ENV]) {
    // No passphrase given: generate one into a 0600 file so the embedded
    // default works unattended. Operators who want more move it elsewhere.
    config.keyStore.passphraseFile = 'secrets/keystore-passphrase';
    passphraseFile = join(dir, config.keyStore.passphraseFile);
    await fs.mkdir(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
    await writeFileAtomic(passphraseFile, `${randomBytes(32).toString('base64url')}\n`, 0o600);
  }

  const actor = cliActor();
  let ctx: FleetContext | undefined;
  try {
    ctx = await wire(dir, config, o.clock ?? systemClock);
    const orgAttr: DnAttribute = { type: 'O', value: o.org };
    const rootSubject = o.rootSubject ? parseDn(o.rootSubject) : [orgAttr, { type: 'CN', value: `${o.org} Root CA` }];
    const issuingSubject = o.issuingSubject ? parseDn(o.issuingSubject) : [orgAttr, { type: 'CN', value: `${o.org} Issuing CA 1` }];
    await ctx.authority.createRootCa({ name: 'root', subject: rootSubject, keyAlgorithm: o.keyAlgorithm, validityDays: o.rootValidityDays, actor });
    await ctx.authority.createIssuingCa({ name: config.defaultCa, parent: 'root', subject: issuingSubject, keyAlgorithm: o.keyAlgorithm, validityDays: o.issuingValidityDays, actor });
    // The key one-time secrets are sealed to for CMP (see secret_vault.ts).
    await ctx.vault.ensureKey(actor);
    const { token } = await ctx.operators.createToken({ name: 'admin', role: 'admin', actor });
    await saveConfig(dir, config);
    // The store holds token hashes and the audit log: owner-only, like the keys.
    if (!/^postgres/.test(config.store)) await fs.chmod(storeSpec(dir, config), 0o600);
    return { ctx, adminToken: token, passphraseFile };
  } catch (e) {
    await ctx?.close().catch(() => undefined);
    if (created) await fs.rm(dir, { recursive: true, force: true });
    else {
      for (const f of [config.keyStore.dir, 'secrets', config.store, `${config.store}-wal`, `${config.store}-shm`]) {
        if (!/^postgres/.test(f)) await fs.rm(join(dir, f), { recursive: true, force: true });
      }
    }
    throw e;
  }
}
