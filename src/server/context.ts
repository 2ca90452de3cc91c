/**
 * The composition root: reads a data directory's config and wires the store,
 * key store, authority and operators together. The CLI and the server both
 * start here; nothing below this layer knows about files or environment.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { availableParallelism, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { Authority } from '../authority/authority.js';
import { CrlService } from '../authority/crl.js';
import { resolveProfiles } from '../authority/profiles.js';
import { systemClock, type Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { KeyStore } from '../keys/key_store.js';
import { Pkcs11KeyStore } from '../keys/pkcs11_key_store.js';
import { isAdopting, Pkcs11TokenSet } from '../keys/pkcs11_token_set.js';
import { SoftwareKeyStore, writeFileAtomic } from '../keys/software_key_store.js';
import { Operators } from '../registry/operators.js';
import { Enrollment } from '../registry/enrollment.js';
import { FirmwareSigning } from '../firmware/signers.js';
import { KeyCustody } from '../registry/key_custody.js';
import { Registry } from '../registry/registry.js';
import { DeviceLifecycle } from '../registry/device_events.js';
import { ExpiryWatch } from '../registry/expiry_watch.js';
import { Webhooks } from '../registry/webhooks.js';
import { SecretVault } from '../registry/secret_vault.js';
import { SupplyChain } from '../registry/supply_chain.js';
import { openStore } from '../store/open_store.js';
import type { Store } from '../store/store.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import { parseDn, type DnAttribute } from '../x509/names.js';
import { CONFIG_FILE, defaultConfig, loadConfig, resolveDataDir, saveConfig, validateConfig, type FleetConfig } from './config.js';

export interface FleetContext {
  dir: string;
  config: FleetConfig;
  store: Store;
  keys: KeyStore;
  authority: Authority;
  operators: Operators;
  registry: Registry;
  enrollment: Enrollment;
  /** Server-side key generation and key escrow. */
  custody: KeyCustody;
  /** Sealed one-time secrets (CMP MAC protection). */
  vault: SecretVault;
  crls: CrlService;
  /** Firmware signers and signing (issue 9). */
  firmware: FirmwareSigning;
  /** Lifecycle events and transfers (issue 8). */
  lifecycle: DeviceLifecycle;
  /** Inbound and outbound webhooks. */
  webhooks: Webhooks;
  /** Expiry report and notices. */
  expiry: ExpiryWatch;
  /** Trusted suppliers and their manifests (issue 8). */
  supply: SupplyChain;
  clock: Clock;
  close(): Promise<void>;
}

export const PASSPHRASE_ENV = 'FLEETPKI_KEYSTORE_PASSPHRASE';
export const PASSPHRASE_FILE_ENV = 'FLEETPKI_KEYSTORE_PASSPHRASE_FILE';

/**
 * Key store passphrase, first found wins: $FLEETPKI_KEYSTORE_PASSPHRASE, the
 * file named by $FLEETPKI_KEYSTORE_PASSPHRASE_FILE, the file the config names
 * (keyStore.passphraseFile). An empty variable counts as unset. `origin` says
 * which one the passphrase came from, for the error when it is wrong.
 */
function passphraseSource(dir: string, config: FleetConfig): { passphrase: () => string; origin: () => string } {
  const file = () => process.env[PASSPHRASE_FILE_ENV] || (config.keyStore.passphraseFile ? resolve(dir, config.keyStore.passphraseFile) : undefined);
  const origin = () => {
    if (process.env[PASSPHRASE_ENV]) return `$${PASSPHRASE_ENV}`;
    return process.env[PASSPHRASE_FILE_ENV] ? `$${PASSPHRASE_FILE_ENV} ${file()}` : `${file()} (keyStore.passphraseFile)`;
  };
  const passphrase = () => {
    const fromEnv = process.env[PASSPHRASE_ENV];
    if (fromEnv) return fromEnv;
    const f = file();
    if (!f) throw new ProblemError('key_unavailable', `the key store is locked: set ${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV}`);
    try {
      const p = readFileSync(f, 'utf8').trim();
      if (p) return p;
    } catch {
      /* reported below */
    }
    throw new ProblemError('key_unavailable', `cannot read the key store passphrase from ${origin()}: missing, unreadable or empty`);
  };
  return { passphrase, origin };
}

/** The PKCS#11 user PIN: the environment variable or the file the config names. */
function pinSource(dir: string, ks: { pinEnv?: string; pinFile?: string }): () => string {
  return () => {
    if (ks.pinEnv) {
      const v = process.env[ks.pinEnv];
      if (v) return v;
      throw new ProblemError('key_unavailable', `the PKCS#11 token is locked: set $${ks.pinEnv} to its user PIN`, { reason: 'pin_missing' });
    }
    const file = resolve(dir, ks.pinFile!);
    try {
      const p = readFileSync(file, 'utf8').trim();
      if (p) return p;
    } catch {
      /* reported below */
    }
    throw new ProblemError('key_unavailable', `cannot read the PKCS#11 PIN from ${file}`, { reason: 'pin_missing' });
  };
}

/** The key store the config names. */
export function openKeyStore(dir: string, config: FleetConfig): KeyStore {
  const ks = config.keyStore;
  if (ks.type === 'pkcs11') {
    const main = new Pkcs11KeyStore({ module: ks.module!, token: ks.token!, pin: pinSource(dir, ks), poolSize: ks.poolSize });
    if (!ks.extraTokens?.length) return main;
    return new Pkcs11TokenSet(main, ks.extraTokens.map((t) => new Pkcs11KeyStore({ module: ks.module!, token: t.token, pin: pinSource(dir, t), poolSize: ks.poolSize })));
  }
  const pass = passphraseSource(dir, config);
  return new SoftwareKeyStore({ dir: resolve(dir, ks.dir), passphrase: pass.passphrase, passphraseOrigin: pass.origin, pbkdf2Iterations: ks.pbkdf2Iterations });
}

export function storeSpec(dir: string, config: FleetConfig): string {
  return /^postgres(ql)?:\/\//.test(config.store) ? config.store : resolve(dir, config.store);
}

async function wire(dir: string, config: FleetConfig, clock: Clock, store?: Store, defaultIssuanceWorkers = availableParallelism()): Promise<FleetContext> {
  const s = store ?? (await openStore(storeSpec(dir, config), { clock }));
  const keys = openKeyStore(dir, config);
  const authority = new Authority(s, keys, clock, {
    profiles: resolveProfiles(config.profiles),
    defaultCa: config.defaultCa,
    publicUrl: config.publicUrl,
    backdateSeconds: config.issuance.backdateSeconds,
    deltaCrls: config.crl.deltaValidityHours > 0,
    crlShards: config.crl.shards,
    crlPartitionAbove: config.crl.partitionAbove,
    issuanceWorkers: config.issuance.workers ?? defaultIssuanceWorkers,
  });
  const crls = new CrlService(s, authority, clock, { ...config.crl, publicUrl: config.publicUrl });
  const vault = new SecretVault(s, keys, clock);
  const registry = new Registry(s, authority, clock, { secretTtlHours: config.registry.secretTtlHours }, vault);
  const custody = new KeyCustody(s, keys, authority, clock);
  const enrollment = new Enrollment(s, authority, clock, { org: config.org, manufacturerId: config.registry.manufacturerId, retryAfterSeconds: config.est.retryAfterSeconds }, custody);
  const close = async () => {
    await authority.close();
    await keys.close?.();
    await s.close();
  };
  const deviceCas = [config.defaultCa, ...Object.values(config.est.labels).map((l) => l.ca).filter((c): c is string => !!c)];
  const firmware = new FirmwareSigning(s, keys, authority, clock, deviceCas);
  const lifecycle = new DeviceLifecycle(s, registry, clock);
  const webhooks = new Webhooks(s, vault, lifecycle, clock, { toleranceSeconds: config.lifecycle.webhookToleranceSeconds });
  const expiry = new ExpiryWatch(s, clock, { renewAtShare: config.lifecycle.renewAtShare }, (w) => webhooks.secretOf(w));
  const supply = new SupplyChain(s, registry, clock);
  return { dir, config, store: s, keys, authority, operators: new Operators(s, clock), registry, enrollment, custody, vault, crls, firmware, lifecycle, webhooks, expiry, supply, clock, close };
}

export interface OpenOptions {
  clock?: Clock;
  storeOverride?: string;
  /** Issuance worker threads when the config sets none (`issuance.workers`); default one per core. */
  defaultIssuanceWorkers?: number;
}

export async function openContext(dirOpt?: string, opts: OpenOptions = {}): Promise<FleetContext> {
  const dir = resolveDataDir(dirOpt);
  const config = await loadConfig(dir);
  if (opts.storeOverride) config.store = opts.storeOverride;
  return wire(dir, config, opts.clock ?? systemClock, undefined, opts.defaultIssuanceWorkers);
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
  /** A PKCS#11 token instead of the software key store. */
  pkcs11?: {
    module: string;
    token: string;
    pinEnv?: string;
    pinFile?: string;
    /** The root key goes into this token of its own (kept offline between ceremonies). */
    rootToken?: { token: string; pinEnv?: string; pinFile?: string };
  };
  /** Adopt existing token keys (PKCS#11 URIs) instead of generating the CA keys. */
  rootKeyUri?: string;
  issuingKeyUri?: string;
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
  const config = defaultConfig(o.org);
  if (o.publicUrl) config.publicUrl = o.publicUrl;
  if (o.listen) config.server.listen = o.listen;
  if (o.httpListen) {
    config.server.httpListen = o.httpListen;
    if (!o.publicUrl) config.publicUrl = `http://${o.httpListen}`;
  }
  if (o.hostnames?.length) config.server.hostnames = o.hostnames;
  if (o.store) config.store = o.store;
  if (o.pkcs11) {
    config.keyStore = { ...config.keyStore, type: 'pkcs11', module: o.pkcs11.module, token: o.pkcs11.token, pinEnv: o.pkcs11.pinEnv, pinFile: o.pkcs11.pinFile };
    if (o.pkcs11.rootToken) config.keyStore.extraTokens = [o.pkcs11.rootToken];
  }
  if (o.pkcs11?.rootToken && o.rootKeyUri) throw new ProblemError('bad_request', 'give either a root token (the root key is generated there) or --key-uri, not both');
  if ((o.rootKeyUri || o.issuingKeyUri) && !o.pkcs11) throw new ProblemError('bad_request', 'adopting a key by PKCS#11 URI needs the pkcs11 key store (--key-store pkcs11)');
  validateConfig(config);
  if (o.pkcs11 && !existsSync(o.pkcs11.module)) throw new ProblemError('key_unavailable', `the PKCS#11 module ${o.pkcs11.module} does not exist`, { reason: 'module_missing' });
  // Everything checkable is checked before the first file is written.
  const created = !existsSync(dir);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });

  let passphraseFile: string | undefined;
  if (!o.pkcs11 && !process.env[PASSPHRASE_ENV] && !process.env[PASSPHRASE_FILE_ENV]) {
    // No passphrase given: generate one into a 0600 file so the embedded
    // default works unattended. Operators who want more move it elsewhere.
    config.keyStore.passphraseFile = 'secrets/keystore-passphrase';
    passphraseFile = join(dir, config.keyStore.passphraseFile);
    await fs.mkdir(join(dir, 'secrets'), { recursive: true, mode: 0o700 });
    await writeFileAtomic(passphraseFile, `${randomBytes(32).toString('base64url')}\n`, 0o600);
  }

  const actor = cliActor();
  let ctx: FleetContext | undefined;
  const adopted = new Set<string>();
  let generatedRoot: string | undefined;
  try {
    ctx = await wire(dir, config, o.clock ?? systemClock);
    const keys = ctx.keys;
    const adopt = async (uri: string | undefined) => {
      if (!uri || !isAdopting(keys)) return undefined;
      const ref = await keys.adopt(uri);
      adopted.add(ref);
      return ref;
    };
    const rootToken = o.pkcs11?.rootToken?.token;
    // A root in a token of its own: generate it there; init's clean-up removes it on failure.
    const rootKeyRef = rootToken ? (generatedRoot = await keys.generate(o.keyAlgorithm, 'root-ca', { token: rootToken })) : await adopt(o.rootKeyUri);
    const issuingKeyRef = await adopt(o.issuingKeyUri);
    const orgAttr: DnAttribute = { type: 'O', value: o.org };
    const rootSubject = o.rootSubject ? parseDn(o.rootSubject) : [orgAttr, { type: 'CN', value: `${o.org} Root CA` }];
    const issuingSubject = o.issuingSubject ? parseDn(o.issuingSubject) : [orgAttr, { type: 'CN', value: `${o.org} Issuing CA 1` }];
    await ctx.authority.createRootCa({ name: 'root', subject: rootSubject, keyAlgorithm: o.keyAlgorithm, keyRef: rootKeyRef, validityDays: o.rootValidityDays, actor });
    await ctx.authority.createIssuingCa({ name: config.defaultCa, parent: 'root', subject: issuingSubject, keyAlgorithm: o.keyAlgorithm, keyRef: issuingKeyRef, validityDays: o.issuingValidityDays, actor });
    // The key one-time secrets are sealed to for CMP (secret_vault.ts), so
    // devices registered before the first `serve` can use CMP too.
    await ctx.vault.ensureKey(actor);
    const { token } = await ctx.operators.createToken({ name: 'admin', role: 'admin', actor });
    await saveConfig(dir, config);
    // The store holds token hashes and the audit log: owner-only, like the keys.
    if (!/^postgres/.test(config.store)) await fs.chmod(storeSpec(dir, config), 0o600);
    return { ctx, adminToken: token, passphraseFile };
  } catch (e) {
    if (ctx && o.pkcs11) {
      // Token keys outlive the directory: delete those this init generated (never adopted ones).
      const refs = new Set((await ctx.store.listCas().catch(() => [])).map((ca) => ca.keyRef));
      if (generatedRoot) refs.add(generatedRoot);
      for (const ref of refs) if (ref && !adopted.has(ref)) await ctx.keys.remove(ref).catch(() => undefined);
    }
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
