/**
 * The data directory's config file, fleetpki.json: where the store and keys
 * are, the URLs written into certificates, listener addresses and profile
 * overrides. Validated on load so a typo fails at start, not mid-issuance.
 */
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { ProblemError } from '../errors.js';
import { resolveProfiles, type Profile } from '../authority/profiles.js';
import { writeFileAtomic } from '../keys/software_key_store.js';
import type { ManufacturerIdRule } from '../registry/enrollment.js';
import type { OcspOptions } from '../authority/ocsp.js';
import { isKeyAlgorithm } from '../x509/algorithms.js';

export const CONFIG_FILE = 'fleetpki.json';

export interface FleetConfig {
  version: 1;
  org: string;
  /** SQLite file (relative to the data directory) or a postgres:// URL. */
  store: string;
  /**
   * Where keys live. Software: encrypted PKCS#8 files in `dir`. PKCS#11: a
   * token (`module`, `token` label); the PIN comes from the environment
   * variable `pinEnv` or the file `pinFile`, never from this file itself.
   */
  keyStore: {
    type: 'software' | 'pkcs11';
    dir: string;
    passphraseFile?: string;
    pbkdf2Iterations?: number;
    module?: string;
    token?: string;
    pinEnv?: string;
    pinFile?: string;
    /** Most PKCS#11 sessions open at once (default 4). */
    poolSize?: number;
    /**
     * Further tokens of the same module, each with its own PIN source: e.g. the
     * root's token, connected only for ceremonies (docs/keys.md).
     */
    extraTokens?: Array<{ token: string; pinEnv?: string; pinFile?: string }>;
  };
  defaultCa: string;
  /** Base URL of the plain-HTTP listener as relying parties reach it. */
  publicUrl: string;
  server: {
    listen: string;
    httpListen: string;
    /** DNS names for the HTTPS listener's certificate, besides the listen address. */
    hostnames: string[];
    bodyLimitBytes: number;
    /** Renew the listener certificate when less than this share of its life is left. */
    renewAtRemaining: number;
    /**
     * Cluster: a node publishes CRLs only while it holds the store's
     * "crl-publisher" lease, renewed at every check; a node that dies loses
     * it after this long (at least three CRL check intervals).
     */
    leaseSeconds: number;
  };
  issuance: {
    backdateSeconds: number;
    /**
     * Worker threads that check CSRs and sign certificates (the issuance
     * fast path) once issuances overlap; absent: one per core
     * (os.availableParallelism()), 0: none, the main thread does it.
     */
    workers?: number;
  };
  registry: {
    /** Hours a one-time enrollment secret stays valid. */
    secretTtlHours: number;
    /** Where manufacturer certificates carry the device id. */
    manufacturerId: ManufacturerIdRule;
  };
  est: {
    /** Profile whose key type /csrattrs describes when no label names one. */
    defaultProfile: string;
    /** Seconds a device waits before retrying while its enrollment awaits approval. */
    retryAfterSeconds: number;
    /** /.well-known/est/<label>/...: the CA to issue from and the profile the device must have. */
    labels: Record<string, { ca?: string; profile?: string }>;
  };
  /** CMP server, RFC 9483 (docs/cmp.md). */
  cmp: CmpConfig;
  crl: {
    /** Lifetime of a base CRL. */
    validityHours: number;
    /** Republish this long before nextUpdate, so a published CRL never expires. */
    refreshAheadHours: number;
    /** Lifetime of delta CRLs; 0 (default) publishes none. */
    deltaValidityHours: number;
    /** How often the server checks for revocations to publish (the debounce). */
    checkIntervalSeconds: number;
    /** Cache-Control max-age for CRL downloads: how stale a cache may serve one. */
    httpMaxAgeSeconds: number;
    /**
     * Partitioned CRLs (RFC 5280 §5.2.5): 0 (default) is off; N puts each new
     * certificate in one of N shards whose CRL lists only that shard.
     */
    shards: number;
    /** With shards: start partitioning once a CA's full CRL has more than this many entries (0, default: at once). */
    partitionAbove: number;
  };
  /** OCSP responder (RFC 6960/5019); see OcspOptions for each field. */
  ocsp: OcspOptions;
  /** The firmware signing endpoint (POST /api/v1/firmware/signatures). */
  firmware: {
    /** Largest image the endpoint reads (streamed, never buffered); larger uploads get 413. */
    maxImageBytes: number;
    /** Signatures per minute and per API token (a token bucket, per node); more get 429 with Retry-After. */
    signaturesPerMinute: number;
    /** Signatures a token may make at once before the per-minute rate applies. */
    burst: number;
  };
  /** Lifecycle events, webhooks and the expiry watch (docs/lifecycle.md). */
  lifecycle: {
    /** Largest difference between an inbound webhook delivery's timestamp and the server clock. */
    webhookToleranceSeconds: number;
    /** Largest inbound webhook delivery; larger ones get 413. */
    webhookMaxBytes: number;
    /** A device should have renewed after this share of its certificate's lifetime (the agent's default renewAt). */
    renewAtShare: number;
    /** How often the server sends due expiry notices to outbound webhooks (0: never). */
    expiryCheckSeconds: number;
  };
  profiles: Record<string, Partial<Profile>>;
}

export interface CmpConfig {
  /** /.well-known/cmp/p/<label> (RFC 9811): the CA to issue from and the profile the device must have. */
  labels: Record<string, { ca?: string; profile?: string }>;
  /** Seconds to wait for certConf; then the certificate is revoked (RFC 9483 §4.1.1). */
  confirmWaitSeconds: number;
  /** Largest difference between a request's messageTime and the server clock (badTime otherwise). */
  messageTimeSkewSeconds: number;
  /** Grant implicitConfirm when a client asks for it. */
  implicitConfirm: boolean;
  /** A waiting enrollment (approval) is dropped when no pollReq comes for this long. */
  pollTimeoutSeconds: number;
  /** Days a finished transaction is kept, so its transactionID cannot be used again. */
  transactionRetentionDays: number;
}

export function defaultConfig(org: string): FleetConfig {
  return {
    version: 1,
    org,
    store: 'fleetpki.db',
    keyStore: { type: 'software', dir: 'keys' },
    defaultCa: 'issuing',
    publicUrl: 'http://127.0.0.1:8080',
    server: { listen: '127.0.0.1:8443', httpListen: '127.0.0.1:8080', hostnames: ['localhost'], bodyLimitBytes: 64 * 1024, renewAtRemaining: 1 / 3, leaseSeconds: 30 },
    issuance: { backdateSeconds: 300 },
    registry: { secretTtlHours: 168, manufacturerId: { from: 'serialNumber' } },
    est: { defaultProfile: 'device-tls', retryAfterSeconds: 60, labels: {} },
    cmp: { labels: {}, confirmWaitSeconds: 300, messageTimeSkewSeconds: 300, implicitConfirm: true, pollTimeoutSeconds: 86_400, transactionRetentionDays: 30 },
    crl: { validityHours: 24, refreshAheadHours: 12, deltaValidityHours: 0, checkIntervalSeconds: 5, httpMaxAgeSeconds: 60, shards: 0, partitionAbove: 0 },
    ocsp: { validitySeconds: 3600 },
    firmware: { maxImageBytes: 2 * 1024 ** 3, signaturesPerMinute: 30, burst: 10 },
    lifecycle: { webhookToleranceSeconds: 300, webhookMaxBytes: 16 * 1024, renewAtShare: 2 / 3, expiryCheckSeconds: 3600 },
    profiles: {},
  };
}

/** --dir, else $FLEETPKI_DIR (an empty value counts as unset), else ./fleetpki-data in the working directory. */
export function resolveDataDir(dir?: string): string {
  return resolve(dir || process.env.FLEETPKI_DIR || './fleetpki-data');
}

export async function loadConfig(dir: string): Promise<FleetConfig> {
  let text: string;
  try {
    text = await fs.readFile(join(dir, CONFIG_FILE), 'utf8');
  } catch {
    throw new ProblemError('not_found', `no fleetpki data directory at ${dir} (run: fleetpki init --dir ${dir} --org NAME)`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ProblemError('config_error', `${join(dir, CONFIG_FILE)} is not valid JSON: ${(e as Error).message}`);
  }
  return validateConfig(raw);
}

export function validateConfig(raw: unknown): FleetConfig {
  const bad = (why: string) => new ProblemError('config_error', `${CONFIG_FILE}: ${why}`);
  if (!raw || typeof raw !== 'object') throw bad('must be a JSON object');
  const c = raw as FleetConfig;
  const base = defaultConfig(typeof c.org === 'string' ? c.org : '');
  const merged: FleetConfig = {
    ...base,
    ...c,
    keyStore: { ...base.keyStore, ...c.keyStore },
    server: { ...base.server, ...c.server },
    issuance: { ...base.issuance, ...c.issuance },
    registry: { ...base.registry, ...c.registry },
    est: { ...base.est, ...c.est, labels: { ...c.est?.labels } },
    cmp: { ...base.cmp, ...c.cmp, labels: { ...c.cmp?.labels } },
    crl: { ...base.crl, ...c.crl },
    ocsp: { ...base.ocsp, ...c.ocsp },
    firmware: { ...base.firmware, ...c.firmware },
    lifecycle: { ...base.lifecycle, ...c.lifecycle },
    profiles: c.profiles ?? {},
  };
  if (merged.version !== 1) throw bad(`unsupported version ${String(merged.version)}`);
  if (!merged.org) throw bad('"org" is required');
  const ks = merged.keyStore;
  if (ks.type !== 'software' && ks.type !== 'pkcs11') throw bad(`key store type "${ks.type}" is not supported (software or pkcs11)`);
  if (ks.type === 'pkcs11') {
    if (!ks.module || !ks.token) throw bad('a pkcs11 key store needs keyStore.module and keyStore.token');
    if (!ks.pinEnv === !ks.pinFile) throw bad('a pkcs11 key store needs exactly one of keyStore.pinEnv (a variable name) and keyStore.pinFile');
    if (ks.pinEnv && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(ks.pinEnv)) throw bad('keyStore.pinEnv is the name of an environment variable, not the PIN');
    if (ks.poolSize !== undefined && !(Number.isInteger(ks.poolSize) && ks.poolSize >= 1 && ks.poolSize <= 64)) throw bad('keyStore.poolSize is 1..64');
    if ('pin' in (ks as object)) throw bad('keyStore.pin: the PIN may not be in the config; use pinEnv or pinFile');
    if (ks.extraTokens !== undefined && !Array.isArray(ks.extraTokens)) throw bad('keyStore.extraTokens is a list of {token, pinEnv | pinFile}');
    const labels = new Set([ks.token]);
    for (const t of ks.extraTokens ?? []) {
      if (!t || typeof t.token !== 'string' || !t.token) throw bad('each keyStore.extraTokens entry needs a token label');
      if (labels.has(t.token)) throw bad(`PKCS#11 token "${t.token}" is configured twice`);
      labels.add(t.token);
      if (!t.pinEnv === !t.pinFile) throw bad(`keyStore.extraTokens "${t.token}" needs exactly one of pinEnv and pinFile`);
      if (t.pinEnv && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(t.pinEnv)) throw bad(`keyStore.extraTokens "${t.token}": pinEnv is the name of an environment variable, not the PIN`);
      if ('pin' in (t as object)) throw bad('a PIN may not be in the config; use pinEnv or pinFile');
    }
  }
  try {
    new URL(merged.publicUrl);
  } catch {
    throw bad(`publicUrl "${merged.publicUrl}" is not a URL`);
  }
  parseHostPort(merged.server.listen);
  parseHostPort(merged.server.httpListen);
  if (!(merged.server.bodyLimitBytes > 0)) throw bad('server.bodyLimitBytes must be positive');
  if (!(merged.server.renewAtRemaining > 0 && merged.server.renewAtRemaining < 1)) throw bad('server.renewAtRemaining must be between 0 and 1');
  if (!(Number.isInteger(merged.server.leaseSeconds) && merged.server.leaseSeconds >= 1)) throw bad('server.leaseSeconds is a whole number of seconds, 1 or more');
  if (!(merged.issuance.backdateSeconds >= 0 && merged.issuance.backdateSeconds <= 86400)) throw bad('issuance.backdateSeconds must be 0..86400');
  const w = merged.issuance.workers;
  if (w !== undefined && !(Number.isInteger(w) && w >= 0 && w <= 256)) throw bad('issuance.workers is a whole number of threads, 0..256');
  const profiles = resolveProfiles(merged.profiles); // throws config_error on a bad profile
  if (!(merged.registry.secretTtlHours > 0)) throw bad('registry.secretTtlHours must be positive');
  const rule = merged.registry.manufacturerId;
  if (!rule || !['serialNumber', 'cn', 'uri'].includes(rule.from) || (rule.from === 'uri' && !rule.prefix)) throw bad('registry.manufacturerId is {"from":"serialNumber"}, {"from":"cn"} or {"from":"uri","prefix":"..."}');
  if (!profiles[merged.est.defaultProfile]) throw bad(`est.defaultProfile "${merged.est.defaultProfile}" is not a profile`);
  if (!(merged.est.retryAfterSeconds > 0)) throw bad('est.retryAfterSeconds must be positive');
  const o = merged.ocsp;
  for (const k of ['validitySeconds', 'refreshAheadSeconds', 'maxCacheEntries', 'signerCheckSeconds', 'caReloadSeconds'] as const) {
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && (o[k] as number) > 0)) throw bad(`ocsp.${k} must be a positive whole number`);
  }
  if (o.refreshAheadSeconds !== undefined && o.refreshAheadSeconds >= (o.validitySeconds ?? 3600)) throw bad('ocsp.refreshAheadSeconds must be below ocsp.validitySeconds');
  if (o.statusPollSeconds !== undefined && !(typeof o.statusPollSeconds === 'number' && o.statusPollSeconds >= 0 && o.statusPollSeconds <= 3600)) throw bad('ocsp.statusPollSeconds is a number of seconds from 0 (read before every answer) to 3600');
  if (o.signWithCaKey !== undefined && typeof o.signWithCaKey !== 'boolean') throw bad('ocsp.signWithCaKey is true or false');
  if (o.signerKeyAlgorithm !== undefined && !isKeyAlgorithm(o.signerKeyAlgorithm)) throw bad(`ocsp.signerKeyAlgorithm "${o.signerKeyAlgorithm}" is not a key algorithm`);
  const fw = merged.firmware;
  if (!(Number.isSafeInteger(fw.maxImageBytes) && fw.maxImageBytes > 0)) throw bad('firmware.maxImageBytes must be a positive whole number of octets');
  if (!(fw.signaturesPerMinute > 0 && fw.signaturesPerMinute <= 60_000)) throw bad('firmware.signaturesPerMinute must be above 0 (at most 60000)');
  if (!(Number.isInteger(fw.burst) && fw.burst >= 1)) throw bad('firmware.burst must be a whole number, at least 1');
  const lc = merged.lifecycle;
  if (!(Number.isInteger(lc.webhookToleranceSeconds) && lc.webhookToleranceSeconds >= 1 && lc.webhookToleranceSeconds <= 86_400)) throw bad('lifecycle.webhookToleranceSeconds is a whole number of seconds, 1-86400');
  if (!(Number.isInteger(lc.webhookMaxBytes) && lc.webhookMaxBytes >= 256 && lc.webhookMaxBytes <= 1024 * 1024)) throw bad('lifecycle.webhookMaxBytes is a whole number of octets, 256-1048576');
  if (!(typeof lc.renewAtShare === 'number' && lc.renewAtShare > 0 && lc.renewAtShare <= 1)) throw bad('lifecycle.renewAtShare is a number above 0 and at most 1');
  if (!(Number.isInteger(lc.expiryCheckSeconds) && lc.expiryCheckSeconds >= 0)) throw bad('lifecycle.expiryCheckSeconds is a whole number of seconds (0: no notices)');
  const crl = merged.crl;
  if (!(crl.validityHours > 0) || !(crl.refreshAheadHours > 0) || crl.refreshAheadHours >= crl.validityHours) throw bad('crl.validityHours must be positive and larger than crl.refreshAheadHours');
  if (!(Number.isInteger(crl.shards) && crl.shards >= 0 && crl.shards <= 1024)) throw bad('crl.shards is a whole number from 0 (off) to 1024');
  if (!(Number.isInteger(crl.partitionAbove) && crl.partitionAbove >= 0)) throw bad('crl.partitionAbove is a whole number of CRL entries, 0 (partition at once) or more');
  if (!(crl.deltaValidityHours >= 0) || !(crl.checkIntervalSeconds > 0) || !(crl.httpMaxAgeSeconds >= 0)) throw bad('crl.deltaValidityHours >= 0, crl.checkIntervalSeconds > 0, crl.httpMaxAgeSeconds >= 0');
  for (const [label, l] of Object.entries(merged.est.labels)) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(label) || ['cacerts', 'simpleenroll', 'simplereenroll', 'csrattrs', 'serverkeygen', 'fullcmc'].includes(label)) throw bad(`est label "${label}" must be lowercase letters, digits and dashes, and not an EST operation name`);
    if (l.profile && !profiles[l.profile]) throw bad(`est label "${label}": no profile "${l.profile}"`);
  }
  const cmp = merged.cmp;
  for (const k of ['confirmWaitSeconds', 'messageTimeSkewSeconds', 'pollTimeoutSeconds', 'transactionRetentionDays'] as const) {
    if (!(Number.isInteger(cmp[k]) && cmp[k] > 0)) throw bad(`cmp.${k} must be a positive whole number`);
  }
  if (typeof cmp.implicitConfirm !== 'boolean') throw bad('cmp.implicitConfirm is true or false');
  for (const [label, l] of Object.entries(cmp.labels)) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(label)) throw bad(`cmp label "${label}" must be lowercase letters, digits and dashes`);
    if (l.profile && !profiles[l.profile]) throw bad(`cmp label "${label}": no profile "${l.profile}"`);
  }
  return merged;
}

export async function saveConfig(dir: string, config: FleetConfig): Promise<void> {
  await writeFileAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`, 0o600);
}

export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ProblemError('config_error', `"${s}" is not HOST:PORT`);
  return { host: m[1] ?? m[2], port };
}
