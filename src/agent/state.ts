/**
 * The state directory: settings (agent.json), the identity pointer and status
 * (state.json), and the files consumers read.
 *
 *   agent.json           settings, written by `agent enroll` / the first run
 *   state.json           which generation is current, renewal and refresh status
 *   gen/<n>/key.pem      the device key of generation n (0600), or
 *   gen/<n>/key.uri      its PKCS#11 URI when the key is in a token
 *   gen/<n>/cert.pem     its certificate
 *   gen/<n>/chain.pem    certificate + issuing CAs (what a TLS server presents)
 *   current -> gen/<n>   symlink, swapped atomically after state.json
 *   trust.pem            the fleet's roots (trust anchors)
 *   trust.json           other organisations' roots, each scoped to domains
 *   cacerts.pem          the issuing CAs (from EST /cacerts)
 *   crl/<name>.crl|.pem  cached CRLs (DER and PEM), crl/all.pem every one
 *
 * state.json is the commit point of a renewal: it names the new generation
 * only once that generation's key and certificate are on disk. A damaged or
 * missing state.json next to an identity is an error, never a reason to
 * enroll again: a silent re-bootstrap would spend a one-time secret or hide
 * tampering.
 */
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { isKeyAlgorithm, type KeyAlgorithm } from '../x509/algorithms.js';
import type { AgentFiles } from './files.js';

export interface HookSettings {
  /** Run with /bin/sh -c after a change; FLEETPKI_AGENT_* variables describe it. */
  command?: string;
  /** Send this signal (SIGHUP, ...) to the process whose pid is in pidFile. */
  signal?: string;
  pidFile?: string;
  timeoutSeconds?: number;
}

/** Device keys as files in the state directory (the default). */
export interface FileKeySettings {
  type: 'file';
}

/**
 * Device keys in a PKCS#11 token: the module, the token's label, and where
 * the user PIN comes from (the name of an environment variable or a file,
 * never the PIN). `engine` is OpenSSL's pkcs11 engine for node:tls.
 */
export interface Pkcs11KeySettings {
  type: 'pkcs11';
  module: string;
  token: string;
  pinEnv?: string;
  pinFile?: string;
  engine?: string;
}

export type KeyStoreSettings = FileKeySettings | Pkcs11KeySettings;

export interface AgentSettings {
  version: 1;
  /** https://host:port of the EST server. */
  server: string;
  label?: string;
  deviceId: string;
  keyAlgorithm: KeyAlgorithm;
  /** Where the device key lives (default: files). */
  keyStore?: KeyStoreSettings;
  /** Renew at this share of the lifetime (0..1). */
  renewAt: number;
  /** Move the renewal time by up to ± this share of the lifetime. */
  jitter: number;
  /** A new key on every renewal (recommended), else the key is kept. */
  newKeyOnRenewal: boolean;
  backoff: { initialSeconds: number; maxSeconds: number };
  /** How often to fetch CA certificates and CRLs. */
  refreshSeconds: number;
  /** Manufacturer certificate (IDevID) and key files: bootstrap, and recovery after expiry. */
  manufacturer?: { cert: string; key: string };
  /** Re-bootstrap with the manufacturer certificate when our certificate expired or is refused. */
  recoverWithManufacturer: boolean;
  hooks: HookSettings;
  /** Extra CRLs to keep (other organisations' CAs, partitioned shards). */
  crlUrls: string[];
  requireCrl: 'all' | 'leaf' | 'none';
  crlGraceSeconds: number;
  timeoutSeconds: number;
}

export function defaultSettings(s: Pick<AgentSettings, 'server' | 'deviceId'> & Partial<AgentSettings>): AgentSettings {
  return {
    version: 1,
    keyAlgorithm: 'ecdsa-p256',
    renewAt: 2 / 3,
    jitter: 0.05,
    newKeyOnRenewal: true,
    backoff: { initialSeconds: 30, maxSeconds: 3600 },
    refreshSeconds: 900,
    recoverWithManufacturer: true,
    hooks: {},
    crlUrls: [],
    requireCrl: 'all',
    crlGraceSeconds: 0,
    timeoutSeconds: 30,
    ...s,
  };
}

export function validateSettings(s: AgentSettings, where = 'agent settings'): AgentSettings {
  const bad = (why: string) => new ProblemError('config_error', `${where}: ${why}`);
  if (s.version !== 1) throw bad(`unsupported version ${String(s.version)}`);
  try {
    if (new URL(s.server).protocol !== 'https:') throw new Error();
  } catch {
    throw bad(`the server must be an https:// URL (got ${String(s.server)})`);
  }
  if (typeof s.deviceId !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(s.deviceId)) throw bad('the device id is 1-64 letters, digits, dots, colons, dashes or underscores');
  if (!isKeyAlgorithm(s.keyAlgorithm)) throw bad(`unknown key algorithm ${String(s.keyAlgorithm)}`);
  if (!(s.renewAt > 0 && s.renewAt < 1)) throw bad('renewAt is a share of the lifetime between 0 and 1');
  if (!(s.jitter >= 0 && s.jitter < Math.min(s.renewAt, 1 - s.renewAt))) throw bad('jitter must be at least 0 and less than the distance of renewAt from 0 and from 1');
  if (!(s.backoff?.initialSeconds > 0 && s.backoff.maxSeconds >= s.backoff.initialSeconds)) throw bad('backoff needs 0 < initialSeconds <= maxSeconds');
  if (!(s.refreshSeconds > 0)) throw bad('refreshSeconds must be positive');
  if (!['all', 'leaf', 'none'].includes(s.requireCrl)) throw bad('requireCrl is all, leaf or none');
  if (!(s.crlGraceSeconds >= 0) || !(s.timeoutSeconds > 0)) throw bad('crlGraceSeconds >= 0 and timeoutSeconds > 0');
  if (s.hooks?.signal && !/^SIG[A-Z0-9]+$/.test(s.hooks.signal)) throw bad(`signal "${s.hooks.signal}" is not a signal name such as SIGHUP`);
  if (s.hooks?.signal && !s.hooks.pidFile) throw bad('a hook signal needs a pid file');
  checkKeyStore(s, bad);
  return s;
}

function checkKeyStore(s: AgentSettings, bad: (why: string) => ProblemError): void {
  const ks = s.keyStore;
  if (ks === undefined || ks.type === 'file') return;
  if (ks.type !== 'pkcs11') throw bad(`keyStore.type is file or pkcs11, not ${String((ks as { type?: unknown }).type)}`);
  if ('pin' in (ks as object)) throw bad('keyStore.pin: the PIN may not be in the settings; use pinEnv or pinFile');
  if (typeof ks.module !== 'string' || !ks.module.startsWith('/')) throw bad('keyStore.module is the absolute path of the PKCS#11 module');
  if (typeof ks.token !== 'string' || !ks.token || ks.token.length > 32) throw bad('keyStore.token is the label of the token (1-32 characters)');
  if (!ks.pinEnv === !ks.pinFile) throw bad('a PKCS#11 key store needs exactly one of keyStore.pinEnv (a variable name) and keyStore.pinFile');
  if (ks.pinEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(ks.pinEnv)) throw bad('keyStore.pinEnv is the name of an environment variable, not the PIN');
  if (ks.pinFile !== undefined && !ks.pinFile.startsWith('/')) throw bad('keyStore.pinFile is an absolute path');
  if (ks.engine !== undefined && !ks.engine.startsWith('/')) throw bad('keyStore.engine is the absolute path of the OpenSSL pkcs11 engine');
  // What the token key store makes (PKCS#11 CKM_EC_KEY_PAIR_GEN / CKM_RSA_PKCS_KEY_PAIR_GEN).
  if (s.keyAlgorithm === 'ed25519') throw bad('token keys are ecdsa-p256, ecdsa-p384 or rsa-*; ed25519 keys are software-only');
}

export interface Identity {
  generation: number;
  serial: string;
  keyRef: string;
  subject: string;
  domains: string[];
  notBefore: string;
  notAfter: string;
  /** When the agent stored it: the start of the lifetime for renewal. */
  obtainedAt: string;
  renewAt: string;
  /** How it was obtained. */
  via: 'secret' | 'manufacturer' | 'renewal' | 'recovery';
}

export interface CrlMeta {
  url: string;
  /** File name under crl/ (without extension). */
  file: string;
  issuer: string;
  thisUpdate: string;
  nextUpdate?: string;
  number?: string;
  fetchedAt: string;
}

export interface AgentError {
  at: string;
  during: 'bootstrap' | 'renewal' | 'refresh' | 'hook';
  code: string;
  /** The problem's extra.reason, when it has one (key_unavailable: pin_incorrect, token_missing, ...). */
  reason?: string;
  detail: string;
}

export interface AgentState {
  version: 1;
  identity?: Identity;
  /** A first enrollment waiting for approval: the key to send again. */
  pending?: { generation: number; keyRef: string; since: string; via: 'secret' | 'manufacturer' };
  renewal: { failures: number; nextAttemptAt?: string; lastAttemptAt?: string; lastSuccessAt?: string; lastError?: AgentError };
  refresh: { failures: number; lastAt?: string; lastSuccessAt?: string; nextAt?: string; lastError?: AgentError };
  crls: Record<string, CrlMeta>;
  lastError?: AgentError;
  /** Marks the token keys this state directory makes (their labels), so a sweep never touches another agent's. */
  keyTag?: string;
}

export const emptyState = (): AgentState => ({ version: 1, renewal: { failures: 0 }, refresh: { failures: 0 }, crls: {} });

export const STATE_FILE = 'state.json';
export const SETTINGS_FILE = 'agent.json';

const isDate = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const optDate = (v: unknown) => v === undefined || isDate(v);

/** Checks a parsed state.json; throws corrupt_state naming what is wrong. */
export function checkState(raw: unknown, path: string): AgentState {
  const bad = (why: string) =>
    new ProblemError('corrupt_state', `${path} is damaged (${why}); the agent stops rather than enroll again: restore the file from a backup, or remove the state directory and bootstrap the device anew`);
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad('not a JSON object');
  const s = raw as AgentState;
  if (s.version !== 1) throw bad(`version ${String(s.version)}`);
  if (!s.renewal || typeof s.renewal.failures !== 'number' || !optDate(s.renewal.nextAttemptAt)) throw bad('renewal');
  if (!s.refresh || typeof s.refresh.failures !== 'number' || !optDate(s.refresh.nextAt)) throw bad('refresh');
  if (!s.crls || typeof s.crls !== 'object') throw bad('crls');
  for (const [url, m] of Object.entries(s.crls)) {
    if (!m || m.url !== url || typeof m.file !== 'string' || !/^[a-z0-9._-]+$/i.test(m.file) || !isDate(m.thisUpdate)) throw bad(`crls["${url}"]`);
  }
  const id = s.identity;
  if (id !== undefined) {
    if (!Number.isInteger(id.generation) || id.generation < 1) throw bad('identity.generation');
    if (typeof id.serial !== 'string' || !/^[0-9a-f]+$/.test(id.serial)) throw bad('identity.serial');
    if (typeof id.keyRef !== 'string' || !id.keyRef) throw bad('identity.keyRef');
    for (const k of ['notBefore', 'notAfter', 'obtainedAt', 'renewAt'] as const) if (!isDate(id[k])) throw bad(`identity.${k}`);
    if (!Array.isArray(id.domains)) throw bad('identity.domains');
  }
  if (s.pending !== undefined && (!Number.isInteger(s.pending.generation) || typeof s.pending.keyRef !== 'string')) throw bad('pending');
  if (s.keyTag !== undefined && (typeof s.keyTag !== 'string' || !/^[0-9a-f]{8}$/.test(s.keyTag))) throw bad('keyTag');
  return s;
}

export async function readJson(files: AgentFiles, path: string): Promise<unknown | undefined> {
  const buf = await files.readIfExists(path);
  if (buf === undefined) return undefined;
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    return new SyntaxError((e as Error).message);
  }
}

export async function loadState(files: AgentFiles, dir: string): Promise<AgentState | undefined> {
  const path = join(dir, STATE_FILE);
  const raw = await readJson(files, path);
  if (raw === undefined) {
    // No state.json: fine for a new directory, damage if an identity is there.
    if ((await files.list(join(dir, 'gen'))).length > 0 || (await files.readlink(join(dir, 'current')))) {
      throw new ProblemError('corrupt_state', `${path} is missing but ${dir} holds device keys (gen/); the agent stops rather than enroll again: restore state.json, or remove the state directory and bootstrap the device anew`);
    }
    return undefined;
  }
  if (raw instanceof SyntaxError) {
    throw new ProblemError('corrupt_state', `${path} is damaged (not JSON: ${raw.message}); the agent stops rather than enroll again: restore the file from a backup, or remove the state directory and bootstrap the device anew`);
  }
  return checkState(raw, path);
}

export async function loadSettings(files: AgentFiles, dir: string): Promise<AgentSettings | undefined> {
  const path = join(dir, SETTINGS_FILE);
  const raw = await readJson(files, path);
  if (raw === undefined) return undefined;
  if (raw instanceof SyntaxError || !raw || typeof raw !== 'object') throw new ProblemError('corrupt_state', `${path} is damaged (not a JSON object)`);
  return validateSettings(raw as AgentSettings, path);
}
