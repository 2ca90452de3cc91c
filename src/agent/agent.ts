/**
 * The device agent: keeps one device identity alive with no person in the
 * loop. It bootstraps over EST with a one-time secret or the manufacturer
 * certificate, renews at a share of the lifetime with a new key, backs off
 * while the CA is unreachable, keeps the CA certificates and CRLs cached for
 * offline use, and runs hooks so the consumers reload. It talks to the
 * server only over the wire (EST on HTTPS, CRLs on plain HTTP).
 *
 * Every step that changes the identity follows one order: new key on disk,
 * request, new certificate on disk, state.json names the new generation (the
 * commit), `current` symlink swapped, old generation removed, hooks run. A
 * failure before the commit leaves the old identity in force; a certificate
 * received but not yet written is kept in memory and written on the next
 * attempt, because the CA already counts it as the device's current one
 * (and only the current certificate may renew).
 *
 * The key is a file or lives in a PKCS#11 token (device_key.ts); either
 * way the old key is destroyed only after the commit. Opened with `inspect`
 * (status, trust edits) the agent never touches the key, so reading the
 * status needs no token and no PIN.
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { pemEncode } from '../x509/pem.js';
import { buildCsr } from './csr.js';
import { certsOfPem, crlSignedBy, crlUrlsOf, domainsOf, isSelfIssued, issuedBy, parseCrl, pemOfCerts, sameBytes, type ParsedCrl } from './certs.js';
import { detachedKey, DeviceKeys, genDir, isTokenRef, newKeyTag, type DeviceKey, type DeviceKeyStore, type TlsKey } from './device_key.js';
import { EstClient, type ClientCredentials, type EnrollAnswer } from './est_client.js';
import { nodeFiles, type AgentFiles } from './files.js';
import { runHooks, type AgentEvent } from './hooks.js';
import type { AcceptedFirmware, FirmwareTrust } from '../firmware/verify.js';
import { readFirmwareState, recordInstalled, verifyUpdate, type FirmwareState, type VerifyUpdateOptions } from './firmware.js';
import type { CrlLookup, PeerPolicy, TrustAnchor } from './peer.js';
import { backoffMs, renewalTime, type Random } from './policy.js';
import { TrustList } from './trust_list.js';
import {
  defaultSettings,
  emptyState,
  loadSettings,
  loadState,
  SETTINGS_FILE,
  STATE_FILE,
  validateSettings,
  type AgentError,
  type AgentSettings,
  type AgentState,
  type CrlMeta,
  type Identity,
} from './state.js';

/** How a first enrollment proves the device: a one-time secret, or the manufacturer certificate in the settings. */
export type BootstrapCredential = { secret: string } | { manufacturer: true };

export interface AgentOptions {
  /** The state directory (created 0700 if missing). */
  dir: string;
  /** Settings for a new state directory, or overrides of the saved ones (saved with `save: true`). */
  settings?: Partial<AgentSettings>;
  /** Replace agent.json with the merged settings. */
  saveSettings?: boolean;
  /** PEM of the fleet's root certificate(s): required for a new directory, replaces trust.pem when given. */
  trustPem?: string;
  clock?: Clock;
  random?: Random;
  files?: AgentFiles;
  /** Key custody; default: what settings.keyStore names (files in the state directory, or a PKCS#11 token). */
  keys?: (dir: string, files: AgentFiles, o: { settings: AgentSettings; keyTag?: string }) => DeviceKeyStore;
  /**
   * Open to read (status) or to edit the trust list, never to use the key:
   * no token, no PIN, no cleanup of other generations (a running daemon may
   * be in the middle of a renewal).
   */
  inspect?: boolean;
  log?: (line: string) => void;
}

interface Current {
  identity: Identity;
  key: DeviceKey;
  cert: CertInfo;
  /** Issuing CAs from the leaf's issuer upwards, without the anchor. */
  chain: CertInfo[];
}

export interface AgentStatus {
  state: 'not-enrolled' | 'pending-approval' | 'enrolled' | 'expired';
  deviceId: string;
  server: string;
  identity?: Identity & { issuer: string; daysLeft: number };
  nextRenewal?: string;
  renewal: AgentState['renewal'];
  refresh: AgentState['refresh'];
  crls: CrlMeta[];
  lastCrl?: CrlMeta;
  lastError?: AgentError;
  /** Where the current key is: a file, or a token key by its PKCS#11 URI. */
  key?: { store: 'file' | 'pkcs11'; ref: string };
  /** `key` is the key file, or for a token key the file holding its URI (key.uri). */
  files: Record<'cert' | 'key' | 'chain' | 'trust' | 'crls', string>;
}

const DAY = 86_400_000;

export class Agent extends EventEmitter {
  readonly dir: string;
  settings: AgentSettings;
  private state: AgentState;
  private current?: Current;
  private anchors: TrustAnchor[] = [];
  private intermediates: CertInfo[] = [];
  /** Other organisations' CAs below their anchors (trust.json), to check their CRLs and chains. */
  private partnerCas: CertInfo[] = [];
  /** CRL URLs the trust list names. */
  private trustCrlUrls: string[] = [];
  /** What trust.pem and trust.json held when last read: a change is news for the TLS contexts. */
  private trustSeen = '';
  private readonly inspect: boolean;
  private crls = new Map<string, ParsedCrl>();
  private readonly wantedCrls = new Set<string>();
  /** CAs that may sign a wanted CRL besides ours: a firmware signer's CA, from a chain the verifier validated. */
  private readonly crlIssuers = new Map<string, CertInfo[]>();
  private signedMemo = new WeakMap<ParsedCrl, Set<string>>();
  private uncommitted?: { generation: number; key: DeviceKey; certDer: Uint8Array; via: Identity['via'] };
  private readonly files: AgentFiles;
  private readonly keys: DeviceKeyStore;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly log: (line: string) => void;
  readonly trustList: TrustList;
  private wake?: () => void;

  private constructor(dir: string, settings: AgentSettings, state: AgentState, o: AgentOptions, files: AgentFiles) {
    super();
    this.dir = dir;
    this.settings = settings;
    this.state = state;
    this.files = files;
    this.inspect = !!o.inspect;
    this.keys = (o.keys ?? ((d, f, k) => new DeviceKeys(d, f, k.settings.keyStore, { deviceId: k.settings.deviceId, tag: k.keyTag })))(dir, files, { settings, keyTag: state.keyTag });
    this.clock = o.clock ?? systemClock;
    this.random = o.random ?? Math.random;
    this.log = o.log ?? (() => undefined);
    this.trustList = new TrustList(dir, files);
  }

  /** Opens (or creates) a state directory. Throws corrupt_state for damaged files, never starts over. */
  static async open(o: AgentOptions): Promise<Agent> {
    const files = o.files ?? nodeFiles;
    const dir = o.dir;
    await files.mkdir(dir, 0o700);
    const saved = await loadSettings(files, dir);
    const merged = saved ? { ...saved, ...definedOnly(o.settings ?? {}) } : o.settings;
    if (!merged?.server || !merged.deviceId) {
      throw new ProblemError('bad_request', `${dir} is not an agent state directory yet: give the EST server URL and the device id`);
    }
    const settings = validateSettings(saved ? (merged as AgentSettings) : defaultSettings(merged as AgentSettings));
    if (!saved || o.saveSettings) await files.writeAtomic(join(dir, SETTINGS_FILE), `${JSON.stringify(settings, null, 2)}\n`, 0o600);
    const state = (await loadState(files, dir)) ?? emptyState();
    if (settings.keyStore?.type === 'pkcs11' && !state.keyTag) {
      // Saved before any token key is made, so a key of an interrupted attempt can always be found again.
      state.keyTag = newKeyTag();
      if (!o.inspect) await files.writeAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, 0o600);
    }
    const agent = new Agent(dir, settings, state, o, files);
    if (o.trustPem !== undefined) await agent.setTrust(o.trustPem);
    await agent.load();
    return agent;
  }

  // ------------------------------------------------------------ paths

  path(...p: string[]): string {
    return join(this.dir, ...p);
  }

  /** Whether the device key is (or, before enrollment, will be) in a token. */
  private get tokenKey(): boolean {
    return this.current ? this.current.key.store === 'pkcs11' : this.settings.keyStore?.type === 'pkcs11';
  }

  get paths() {
    return {
      cert: this.path('current', 'cert.pem'),
      key: this.path('current', this.tokenKey ? 'key.uri' : 'key.pem'),
      chain: this.path('current', 'chain.pem'),
      trust: this.path('trust.pem'),
      cacerts: this.path('cacerts.pem'),
      crls: this.path('crl', 'all.pem'),
      crlDir: this.path('crl'),
    };
  }

  // ------------------------------------------------------------ loading

  private async setTrust(pem: string): Promise<void> {
    const certs = certsOfPem(pem, 'the CA bundle');
    if (certs.length === 0) throw new ProblemError('bad_request', 'the CA bundle holds no certificate');
    for (const c of certs) if (!c.isCa) throw new ProblemError('bad_request', `the CA bundle holds ${c.subjectText}, which is not a CA certificate`);
    await this.files.writeAtomic(this.paths.trust, pemOfCerts(certs.map((c) => c.der)), 0o644);
  }

  /**
   * Reads trust.pem and trust.json; returns whether they changed since the
   * last read. Throws on damage, leaving the trust in memory as it was.
   */
  private async loadTrust(): Promise<boolean> {
    const trust = await this.files.readIfExists(this.paths.trust);
    if (!trust) throw new ProblemError('bad_request', `no trust anchor in ${this.dir}: give the fleet's root certificate (--ca-bundle)`);
    const anchors: TrustAnchor[] = certsOfPem(trust.toString('utf8'), this.paths.trust).map((cert) => ({ name: 'fleet', cert, domains: '*' as const }));
    const entries = await this.trustList.entries();
    for (const e of entries) anchors.push({ name: e.name, cert: e.cert, domains: e.domains });
    const seen = JSON.stringify([anchors.map((a) => [a.name, a.cert.fingerprintSha256, a.domains]), entries.map((e) => [e.intermediates.map((c) => c.fingerprintSha256), e.crlUrls])]);
    if (seen === this.trustSeen) return false;
    this.anchors = anchors;
    this.partnerCas = entries.flatMap((e) => e.intermediates);
    this.trustCrlUrls = [...new Set(entries.flatMap((e) => e.crlUrls))];
    const changed = this.trustSeen !== '';
    this.trustSeen = seen;
    if (this.current) this.current.chain = this.chainOf(this.current.cert);
    return changed;
  }

  private async load(): Promise<void> {
    await this.loadTrust();
    const cacerts = await this.files.readIfExists(this.paths.cacerts);
    this.intermediates = cacerts ? certsOfPem(cacerts.toString('utf8'), this.paths.cacerts) : [];

    for (const m of Object.values(this.state.crls)) {
      const buf = await this.files.readIfExists(this.path('crl', `${m.file}.crl`));
      try {
        if (buf) this.crls.set(m.url, parseCrl(buf));
      } catch {
        this.log(`cached CRL ${m.file}.crl is unreadable; it will be fetched again`);
      }
    }

    const id = this.state.identity;
    if (id) {
      const certPath = this.path(genDir(id.generation), 'cert.pem');
      const certPem = await this.files.readIfExists(certPath);
      if (!certPem) throw new ProblemError('corrupt_state', `${certPath} is missing (state.json names generation ${id.generation}); restore it or bootstrap anew`);
      let cert: CertInfo;
      try {
        cert = parseCertificate(certPem.toString('utf8'));
      } catch (e) {
        throw new ProblemError('corrupt_state', `${certPath} is damaged: ${(e as Error).message}`);
      }
      // Reading the status needs no token (and no PIN): the certificate says which key it is.
      const key = this.inspect && isTokenRef(id.keyRef) ? detachedKey(id.keyRef, cert.spki, cert.key) : await this.keys.load(id.keyRef);
      if (cert.serial !== id.serial || !sameBytes(cert.spki, key.spki)) throw new ProblemError('corrupt_state', `${certPath} is not the certificate state.json names (serial ${id.serial}) or does not match its key`);
      this.current = { identity: id, key, cert, chain: this.chainOf(cert) };
      if (!this.inspect) await this.publishCurrent(id.generation);
    }
    if (this.inspect) return;
    // Generations other than the current and a pending one are leftovers of failed attempts.
    const keep = new Set([id?.generation, this.state.pending?.generation].filter((g) => g !== undefined).map(String));
    for (const g of await this.files.list(this.path('gen'))) if (!keep.has(g)) await this.files.remove(this.path('gen', g));
    // So are token keys this directory made that state.json does not name (a crash between key and commit).
    const swept = (await this.keys.sweep?.([id?.keyRef, this.state.pending?.keyRef].filter((r): r is string => !!r))) ?? [];
    for (const r of swept) this.log(`removed ${r} from the token: a key of an attempt that did not complete`);
  }

  /** Releases the token's sessions (a token key store); the agent is not used afterwards. */
  async close(): Promise<void> {
    await this.keys.close?.();
  }

  /** The issuing CAs from `cert` up to (not including) an anchor, from what we know. */
  private chainOf(cert: CertInfo): CertInfo[] {
    const out: CertInfo[] = [];
    let cur = cert;
    for (let i = 0; i < 6; i++) {
      if (this.anchors.some((a) => issuedBy(cur, a.cert))) return out;
      const next = this.intermediates.find((c) => !out.includes(c) && issuedBy(cur, c));
      if (!next) return out;
      out.push(next);
      cur = next;
    }
    return out;
  }

  private chainsToAnchor(cert: CertInfo): boolean {
    const chain = this.chainOf(cert);
    const top = chain[chain.length - 1] ?? cert;
    return this.anchors.some((a) => a.domains === '*' && issuedBy(top, a.cert));
  }

  private async publishCurrent(generation: number): Promise<void> {
    const target = genDir(generation);
    if ((await this.files.readlink(this.path('current'))) !== target) await this.files.symlinkAtomic(target, this.path('current'));
  }

  private async saveState(): Promise<void> {
    await this.files.writeAtomic(this.path(STATE_FILE), `${JSON.stringify(this.state, null, 2)}\n`, 0o600);
  }

  /** Status writes are best effort: a full disk must not turn into a crash loop. */
  private async saveStateQuietly(): Promise<void> {
    await this.saveState().catch((e) => this.log(`cannot write state.json: ${(e as Error).message}`));
  }

  private recordError(during: AgentError['during'], e: unknown): ProblemError {
    const p = e instanceof ProblemError ? e : new ProblemError('internal', (e as Error)?.message ?? String(e));
    const reason = typeof p.extra?.reason === 'string' ? p.extra.reason : undefined;
    const err: AgentError = { at: this.clock.now().toISOString(), during, code: p.code, ...(reason ? { reason } : {}), detail: p.detail };
    this.state.lastError = err;
    if (during === 'refresh') this.state.refresh.lastError = err;
    else if (during !== 'hook') this.state.renewal.lastError = err;
    this.log(`${during} failed: ${p.code}${reason ? ` (${reason})` : ''}: ${p.detail}`);
    this.emit('failure', { during, error: p });
    return p;
  }

  // ------------------------------------------------------------ identity

  get enrolled(): boolean {
    return !!this.current;
  }

  /**
   * The current certificate, key and chain, for TLS. A token key comes as
   * OpenSSL engine options (privateKeyEngine/privateKeyIdentifier), which
   * node:tls accepts where it accepts `key`.
   */
  identity(): { cert: CertInfo; chain: CertInfo[]; key: TlsKey; keyRef: string; keyStore: 'file' | 'pkcs11'; certPem: string; chainPem: string; domains: string[] } {
    const c = this.current;
    if (!c) throw new ProblemError('not_found', `device ${this.settings.deviceId} is not enrolled yet`);
    return { cert: c.cert, chain: c.chain, key: c.key.tls(), keyRef: c.key.ref, keyStore: c.key.store, certPem: pemEncode('CERTIFICATE', c.cert.der), chainPem: pemOfCerts([c.cert.der, ...c.chain.map((x) => x.der)]), domains: domainsOf(c.cert) };
  }

  private est(): EstClient {
    return new EstClient({ server: this.settings.server, label: this.settings.label, trust: this.anchors.filter((a) => a.domains === '*').map((a) => pemEncode('CERTIFICATE', a.cert.der)), timeoutMs: this.settings.timeoutSeconds * 1000 });
  }

  private async manufacturerCredentials(): Promise<ClientCredentials> {
    const m = this.settings.manufacturer;
    if (!m) throw new ProblemError('config_error', 'no manufacturer certificate is configured (--bootstrap-cert/--bootstrap-key)');
    const [cert, key] = await Promise.all([this.files.readIfExists(m.cert), this.files.readIfExists(m.key)]);
    if (!cert || !key) throw new ProblemError('config_error', `cannot read the manufacturer certificate ${m.cert} or key ${m.key}`);
    return { certPem: cert.toString('utf8'), key: { key: key.toString('utf8') } };
  }

  /**
   * First enrollment (or a new start after expiry with a fresh secret).
   * Refused while a valid identity exists unless `force`.
   */
  async enroll(cred: BootstrapCredential, o: { force?: boolean } = {}): Promise<{ status: 'issued'; serial: string } | { status: 'pending'; retryAfterSeconds: number }> {
    const now = this.clock.now();
    if (this.current && this.current.cert.notAfter > now && !o.force) {
      throw new ProblemError('already_exists', `device ${this.settings.deviceId} is enrolled (certificate ${this.current.cert.serial}, valid until ${this.current.cert.notAfter.toISOString()}); the agent renews it`);
    }
    try {
      return await this.bootstrap(cred, this.current ? 'recovery' : 'secret' in cred ? 'secret' : 'manufacturer');
    } catch (e) {
      throw this.recordError('bootstrap', e);
    } finally {
      await this.saveStateQuietly();
    }
  }

  private async bootstrap(cred: BootstrapCredential, via: Identity['via']): Promise<{ status: 'issued'; serial: string } | { status: 'pending'; retryAfterSeconds: number }> {
    if (this.uncommitted) return this.commitUncommitted();
    const generation = this.state.pending?.generation ?? (this.current?.identity.generation ?? 0) + 1;
    // A pending (approval) enrollment is matched by its key: send the same one again.
    const key = this.state.pending ? await this.keys.load(this.state.pending.keyRef) : await this.keys.generate(this.settings.keyAlgorithm, generation);
    const kind = 'secret' in cred ? 'secret' : 'manufacturer';
    if (!this.state.pending) {
      this.state.pending = { generation, keyRef: key.ref, since: this.clock.now().toISOString(), via: kind };
      await this.saveState();
    }
    const csr = await buildCsr(key, { cn: this.settings.deviceId });
    const auth = 'secret' in cred ? { basic: { user: this.settings.deviceId, password: cred.secret } } : { client: await this.manufacturerCredentials() };
    const answer = await this.est().simpleenroll(csr, auth);
    if (answer.status === 'pending') {
      this.state.renewal.nextAttemptAt = new Date(this.clock.now().getTime() + answer.retryAfterSeconds * 1000).toISOString();
      this.log(`enrollment of ${this.settings.deviceId} awaits approval; asking again in ${answer.retryAfterSeconds} s`);
      return { status: 'pending', retryAfterSeconds: answer.retryAfterSeconds };
    }
    return this.commit(generation, key, answer.cert, via);
  }

  private async commitUncommitted(): Promise<{ status: 'issued'; serial: string }> {
    const u = this.uncommitted!;
    return this.commit(u.generation, u.key, u.certDer, u.via);
  }

  /** Writes a received certificate and makes it current (the order in the file comment). */
  private async commit(generation: number, key: DeviceKey, certDer: Uint8Array, via: Identity['via']): Promise<{ status: 'issued'; serial: string }> {
    const cert = parseCertificate(certDer);
    if (!sameBytes(cert.spki, key.spki)) throw new ProblemError('bad_request', 'the CA certified a key other than the one in our request');
    if (!this.chainsToAnchor(cert)) {
      await this.refreshCaCerts().catch(() => undefined);
      if (!this.chainsToAnchor(cert)) throw new ProblemError('bad_request', `the certificate issued (${cert.issuerText}) does not chain to the fleet's root`);
    }
    // From here on the CA counts this certificate as ours: never lose it.
    this.uncommitted = { generation, key, certDer, via };
    const chain = this.chainOf(cert);
    const g = genDir(generation);
    await this.files.mkdir(this.path(g), 0o700);
    await this.files.writeAtomic(this.path(g, 'cert.pem'), pemEncode('CERTIFICATE', cert.der), 0o644);
    await this.files.writeAtomic(this.path(g, 'chain.pem'), pemOfCerts([cert.der, ...chain.map((c) => c.der)]), 0o644);
    const now = this.clock.now();
    const identity: Identity = {
      generation,
      serial: cert.serial,
      keyRef: key.ref,
      subject: cert.subjectText,
      domains: domainsOf(cert),
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      obtainedAt: now.toISOString(),
      renewAt: renewalTime(cert, now, this.settings.renewAt, this.settings.jitter, this.random).toISOString(),
      via,
    };
    const previous = this.current;
    const next: AgentState = { ...this.state, identity, pending: undefined, renewal: { failures: 0, lastAttemptAt: now.toISOString(), lastSuccessAt: now.toISOString() } };
    if (this.state.lastError?.during === 'renewal' || this.state.lastError?.during === 'bootstrap') next.lastError = undefined;
    const before = this.state;
    this.state = next;
    try {
      await this.saveState(); // the commit point
    } catch (e) {
      this.state = { ...before, renewal: { ...before.renewal } };
      throw e;
    }
    this.uncommitted = undefined;
    this.current = { identity, key, cert, chain };
    await this.publishCurrent(generation).catch((e) => this.log(`cannot swap the current symlink (fixed on the next start): ${(e as Error).message}`));
    if (previous && previous.identity.generation !== generation) {
      if (previous.key.ref !== key.ref) await this.keys.remove(previous.key.ref).catch((e) => this.log(`cannot remove the old key ${previous.key.ref} (removed on the next start): ${(e as Error).message}`));
      await this.files.remove(this.path(genDir(previous.identity.generation))).catch(() => undefined);
    }
    const event: AgentEvent = previous ? 'renewed' : 'enrolled';
    this.log(`${event}: ${cert.subjectText}, serial ${cert.serial}, valid until ${cert.notAfter.toISOString()}, renewal at ${identity.renewAt}`);
    this.emit(event, { serial: cert.serial, previous: previous?.cert.serial, notAfter: cert.notAfter, via });
    await this.hook(event);
    // A new certificate may point to other CRLs: fetch them soon.
    this.state.refresh.nextAt = now.toISOString();
    return { status: 'issued', serial: cert.serial };
  }

  private hookEnv(): Record<string, string> {
    const p = this.paths;
    const own = this.current ? crlUrlsOf(this.current.cert).map((u) => this.state.crls[u]).find(Boolean) : undefined;
    return {
      FLEETPKI_AGENT_STATE: this.dir,
      FLEETPKI_AGENT_DEVICE_ID: this.settings.deviceId,
      FLEETPKI_AGENT_CERT: p.cert,
      // A token key has no file: consumers that take token keys get its PKCS#11 URI.
      FLEETPKI_AGENT_KEY: this.tokenKey ? '' : p.key,
      FLEETPKI_AGENT_KEY_URI: this.current?.key.store === 'pkcs11' ? this.current.key.ref : '',
      FLEETPKI_AGENT_CHAIN: p.chain,
      FLEETPKI_AGENT_TRUST: p.trust,
      FLEETPKI_AGENT_CACERTS: p.cacerts,
      FLEETPKI_AGENT_CRLS: p.crls,
      FLEETPKI_AGENT_CRL: own ? this.path('crl', `${own.file}.pem`) : '',
      FLEETPKI_AGENT_SERIAL: this.current?.cert.serial ?? '',
      FLEETPKI_AGENT_NOT_AFTER: this.current?.cert.notAfter.toISOString() ?? '',
    };
  }

  private async hook(event: AgentEvent): Promise<void> {
    if (!this.settings.hooks.command && !this.settings.hooks.signal) return;
    try {
      await runHooks(this.settings.hooks, event, this.hookEnv());
    } catch (e) {
      this.recordError('hook', e);
      await this.saveStateQuietly();
    }
  }

  /** Whether the current certificate is due for renewal (or a received one still needs writing). */
  renewalDue(now = this.clock.now()): boolean {
    if (this.uncommitted) return true;
    return !!this.current && now.getTime() >= Date.parse(this.current.identity.renewAt);
  }

  /**
   * Renews now (the daemon calls it when due). With the current certificate
   * over simplereenroll; once it has expired, or when the CA refuses it, with
   * the manufacturer certificate if the settings allow (RFC 7030 §4.2.1: a
   * first enrollment again, under the registry's policy).
   */
  async renew(): Promise<{ status: 'issued'; serial: string } | { status: 'pending'; retryAfterSeconds: number }> {
    const now = this.clock.now();
    this.state.renewal.lastAttemptAt = now.toISOString();
    try {
      if (this.uncommitted) return await this.commitUncommitted();
      const cur = this.current;
      if (!cur) throw new ProblemError('not_found', `device ${this.settings.deviceId} is not enrolled yet`);
      if (cur.cert.notAfter <= now) {
        if (this.canRecover()) return await this.bootstrap({ manufacturer: true }, 'recovery');
        throw new ProblemError('unauthorized', `the certificate ${cur.cert.serial} expired at ${cur.cert.notAfter.toISOString()} and no manufacturer certificate may recover it: register a new one-time secret (fleetpki device secret ${this.settings.deviceId}) and run fleetpki agent enroll`);
      }
      const generation = cur.identity.generation + 1;
      const key = this.settings.newKeyOnRenewal ? await this.keys.generate(this.settings.keyAlgorithm, generation) : await this.keys.adopt(cur.key, generation);
      let answer: EnrollAnswer;
      try {
        const csr = await buildCsr(key, { der: cur.cert.subjectDer });
        await this.keys.ready?.(cur.key); // a token key: logged in before OpenSSL's engine signs the handshake
        answer = await this.est().simplereenroll(csr, { key: cur.key.tls(), certPem: pemOfCerts([cur.cert.der, ...cur.chain.map((c) => c.der)]) });
      } catch (e) {
        if (key.ref !== cur.key.ref) await this.keys.remove(key.ref).catch(() => undefined);
        await this.files.remove(this.path(genDir(generation))).catch(() => undefined);
        // Refused (superseded, revoked, unknown to the CA): the manufacturer certificate may still speak for the device.
        if (e instanceof ProblemError && (e.code === 'forbidden' || e.code === 'unauthorized') && this.canRecover()) {
          this.log(`renewal refused (${e.detail}); recovering with the manufacturer certificate`);
          return await this.bootstrap({ manufacturer: true }, 'recovery');
        }
        throw e;
      }
      if (answer.status === 'pending') throw new ProblemError('unavailable', `the CA has not issued the renewal yet: ${answer.message}`);
      return await this.commit(generation, key, answer.cert, 'renewal');
    } catch (e) {
      const p = this.recordError('renewal', e);
      this.state.renewal.failures += 1;
      const wait = backoffMs(this.state.renewal.failures, this.settings.backoff.initialSeconds * 1000, this.settings.backoff.maxSeconds * 1000, this.random);
      this.state.renewal.nextAttemptAt = new Date(now.getTime() + wait).toISOString();
      throw p;
    } finally {
      await this.saveStateQuietly();
    }
  }

  private canRecover(): boolean {
    return !!this.settings.manufacturer && this.settings.recoverWithManufacturer;
  }

  // ------------------------------------------------------------ trust and revocation

  /** EST /cacerts: the issuing CAs that chain to our anchors (RFC 7030 §4.1.3). */
  async refreshCaCerts(): Promise<boolean> {
    const ders = await this.est().cacerts();
    const certs = ders.map((d) => parseCertificate(d));
    const accepted: CertInfo[] = [];
    // Keep only CAs that chain to a fleet anchor: the answer is not a trust decision.
    for (let round = 0; round < 6; round++) {
      for (const c of certs) {
        if (!c.isCa || isSelfIssued(c) || accepted.includes(c)) continue;
        if (this.anchors.some((a) => a.domains === '*' && issuedBy(c, a.cert)) || accepted.some((p) => issuedBy(c, p))) accepted.push(c);
      }
    }
    const pem = pemOfCerts(accepted.map((c) => c.der));
    const old = pemOfCerts(this.intermediates.map((c) => c.der));
    if (pem === old) return false;
    await this.files.writeAtomic(this.paths.cacerts, pem, 0o644);
    this.intermediates = accepted;
    if (this.current) this.current.chain = this.chainOf(this.current.cert);
    return true;
  }

  /** The CRL URLs to keep fresh: our chain's distribution points, configured ones, and those peers needed. */
  crlUrls(): string[] {
    const urls = new Set<string>();
    if (this.current) for (const c of [this.current.cert, ...this.current.chain]) for (const u of crlUrlsOf(c)) urls.add(u);
    for (const u of this.settings.crlUrls) urls.add(u);
    for (const u of this.trustCrlUrls) urls.add(u);
    for (const u of this.wantedCrls) urls.add(u);
    return [...urls];
  }

  /** A peer needed these CRLs: fetch them on the next refresh, which is made due now. */
  requestCrls(urls: string[]): void {
    let added = false;
    for (const u of urls) {
      if (/^https?:\/\//.test(u) && !this.crlUrls().includes(u)) {
        this.wantedCrls.add(u);
        added = true;
      }
    }
    if (added) {
      this.state.refresh.nextAt = this.clock.now().toISOString();
      this.wake?.();
    }
  }

  private async fetchCrl(url: string): Promise<boolean> {
    const res = await fetch(url, { signal: AbortSignal.timeout(this.settings.timeoutSeconds * 1000) }).catch((e: Error) => {
      throw new ProblemError('unavailable', `CRL ${url} unreachable: ${(e.cause as Error)?.message ?? e.message}`);
    });
    if (res.status !== 200) throw new ProblemError(res.status >= 500 ? 'unavailable' : 'not_found', `CRL ${url}: HTTP ${res.status}`);
    const crl = parseCrl(new Uint8Array(await res.arrayBuffer()));
    if (crl.delta) throw new ProblemError('bad_request', `${url} is a delta CRL; the agent keeps base CRLs`);
    const issuer = [...this.caCerts(), ...(this.crlIssuers.get(url) ?? [])].find((c) => crlSignedBy(crl, c));
    if (!issuer) throw new ProblemError('bad_request', `the CRL at ${url} is not signed by a CA we trust (another organisation's issuing CA: add its certificate to the trust entry with the root, agent trust add --ca root-and-issuing.pem)`);
    const cached = this.crls.get(url);
    const meta = this.state.crls[url];
    if (cached && sameBytes(cached.der, crl.der)) {
      if (meta) meta.fetchedAt = this.clock.now().toISOString();
      return false;
    }
    // RFC 5280 §5.2.3: cRLNumber only grows; an older CRL is a replay or a stale cache.
    if (cached && ((cached.number && crl.number && BigInt(crl.number) < BigInt(cached.number)) || crl.thisUpdate < cached.thisUpdate)) {
      throw new ProblemError('bad_request', `the CRL at ${url} (number ${crl.number}) is older than the cached one (${cached.number}); keeping the cached one`);
    }
    const file = meta?.file ?? this.crlFileName(url);
    await this.files.mkdir(this.paths.crlDir, 0o755);
    await this.files.writeAtomic(this.path('crl', `${file}.crl`), crl.der, 0o644);
    await this.files.writeAtomic(this.path('crl', `${file}.pem`), pemEncode('X509 CRL', crl.der), 0o644);
    this.crls.set(url, crl);
    this.signedMemo.set(crl, new Set([issuer.fingerprintSha256]));
    this.state.crls[url] = { url, file, issuer: issuer.subjectText, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString(), number: crl.number, fetchedAt: this.clock.now().toISOString() };
    return true;
  }

  private crlFileName(url: string): string {
    const base = (new URL(url).pathname.split('/').pop() ?? 'crl').replace(/\.crl$/i, '').replace(/[^a-z0-9._-]/gi, '_') || 'crl';
    const taken = new Set(Object.values(this.state.crls).map((m) => m.file));
    return taken.has(base) ? `${base}-${createHash('sha256').update(url).digest('hex').slice(0, 8)}` : base;
  }

  private caCerts(): CertInfo[] {
    return [...this.anchors.map((a) => a.cert), ...this.intermediates, ...this.partnerCas, ...(this.current?.chain ?? [])];
  }

  /**
   * Fetches CA certificates and every CRL we keep. Works on with the cache
   * when the network is down: failures are recorded, the next attempt backs
   * off, cached CRLs stay in force until their nextUpdate.
   */
  async refresh(): Promise<{ crls: string[]; trust: boolean }> {
    const now = this.clock.now();
    this.state.refresh.lastAt = now.toISOString();
    const errors: ProblemError[] = [];
    let trust = false;
    // The trust list first: `agent trust add/remove` in another process takes effect here, without a restart.
    try {
      trust = await this.loadTrust();
      if (trust) this.log('the trust list changed; reloaded');
    } catch (e) {
      errors.push(e instanceof ProblemError ? e : new ProblemError('internal', (e as Error).message));
    }
    try {
      trust = (await this.refreshCaCerts()) || trust;
    } catch (e) {
      errors.push(e instanceof ProblemError ? e : new ProblemError('internal', (e as Error).message));
    }
    const changed: string[] = [];
    for (const url of this.crlUrls()) {
      try {
        if (await this.fetchCrl(url)) changed.push(url);
      } catch (e) {
        errors.push(e instanceof ProblemError ? e : new ProblemError('internal', (e as Error).message));
      }
    }
    if (changed.length) await this.writeCrlBundle();
    const refresh = this.state.refresh;
    if (errors.length) {
      this.recordError('refresh', new ProblemError(errors[0].code, errors.map((e) => e.detail).join('; ')));
      refresh.failures += 1;
      const wait = Math.min(this.settings.refreshSeconds * 1000, backoffMs(refresh.failures, this.settings.backoff.initialSeconds * 1000, this.settings.backoff.maxSeconds * 1000, this.random));
      refresh.nextAt = new Date(now.getTime() + wait).toISOString();
    } else {
      refresh.failures = 0;
      refresh.lastSuccessAt = now.toISOString();
      if (this.state.lastError?.during === 'refresh') this.state.lastError = undefined;
      refresh.nextAt = new Date(this.nextRefreshTime(now)).toISOString();
    }
    await this.saveStateQuietly();
    if (trust) {
      this.emit('trust', {});
      await this.hook('trust');
    }
    if (changed.length) {
      this.log(`new CRL${changed.length > 1 ? 's' : ''}: ${changed.map((u) => `${u} #${this.state.crls[u]?.number}`).join(', ')}`);
      this.emit('crl', { urls: changed });
      await this.hook('crl');
    }
    if (errors.length && changed.length === 0 && !trust) throw new ProblemError(errors[0].code, errors.map((e) => e.detail).join('; '));
    return { crls: changed, trust };
  }

  /** Every refreshSeconds, and well before a cached CRL runs out (half way from thisUpdate to nextUpdate, at the latest). */
  private nextRefreshTime(now: Date): number {
    let t = now.getTime() + this.settings.refreshSeconds * 1000;
    for (const c of this.crls.values()) {
      if (!c.nextUpdate) continue;
      const half = c.thisUpdate.getTime() + (c.nextUpdate.getTime() - c.thisUpdate.getTime()) / 2;
      if (half > now.getTime()) t = Math.min(t, half);
    }
    return Math.max(t, now.getTime() + 1000);
  }

  private async writeCrlBundle(): Promise<void> {
    const pem = [...this.crls.values()].map((c) => pemEncode('X509 CRL', c.der)).join('');
    await this.files.writeAtomic(this.paths.crls, pem, 0o644);
  }

  // ------------------------------------------------------------ peers

  /** The cached CRL that covers `cert`, verified to be signed by `issuer`. */
  private readonly crlLookup: CrlLookup = (cert, issuer) => {
    for (const u of crlUrlsOf(cert)) {
      const c = this.crls.get(u);
      if (c && this.crlVerified(c, issuer)) return c;
    }
    // A full CRL of the same issuer covers every certificate (RFC 5280 §5.2.5: no IDP, full scope).
    for (const c of this.crls.values()) if (!c.scopeUrls && !c.delta && sameBytes(c.issuerDer, issuer.subjectDer) && this.crlVerified(c, issuer)) return c;
    return undefined;
  };

  /** Everything authorizePeer needs, as of now. */
  peerPolicy(): PeerPolicy {
    return {
      anchors: this.anchors,
      intermediates: [...this.intermediates, ...this.partnerCas],
      crls: this.crlLookup,
      domains: this.current ? domainsOf(this.current.cert) : [],
      now: this.clock.now(),
      requireCrl: this.settings.requireCrl,
      crlGraceSeconds: this.settings.crlGraceSeconds,
    };
  }

  /**
   * What the firmware verifier needs (src/agent/firmware.ts): the fleet's own
   * roots only (another organisation on the trust list may authenticate TLS
   * peers for its domains, never sign our firmware), our issuing CAs, the
   * cached CRLs, and a CRL for every certificate of the signer's chain
   * unless the settings say the leaf only ('none' counts as 'leaf' here).
   */
  firmwareTrust(): FirmwareTrust {
    return {
      anchors: this.anchors.filter((a) => a.domains === '*').map((a) => a.cert),
      intermediates: this.intermediates,
      crls: this.crlLookup,
      requireCrl: this.settings.requireCrl === 'all' ? 'all' : 'leaf',
      crlGraceSeconds: this.settings.crlGraceSeconds,
      now: this.clock.now(),
    };
  }

  /**
   * Fetches these CRLs now (a firmware signer's, which our own chain does not
   * name) and keeps them fresh from then on. `issuer` is the CA expected to
   * sign them when it is none of ours (the firmware CA, validated up to a
   * fleet root by the caller). Returns the URLs that failed.
   */
  async fetchCrls(urls: string[], issuer?: CertInfo): Promise<Array<{ url: string; error: ProblemError }>> {
    const failed: Array<{ url: string; error: ProblemError }> = [];
    let changed = false;
    for (const url of urls) {
      if (!/^https?:\/\//.test(url)) continue;
      this.wantedCrls.add(url);
      if (issuer && !this.caCerts().some((c) => sameBytes(c.der, issuer.der))) this.crlIssuers.set(url, [issuer]);
      try {
        changed = (await this.fetchCrl(url)) || changed;
      } catch (e) {
        failed.push({ url, error: e instanceof ProblemError ? e : new ProblemError('unavailable', (e as Error).message) });
      }
    }
    if (changed) {
      await this.writeCrlBundle();
      await this.saveStateQuietly();
      this.emit('crl', { urls });
    }
    return failed;
  }

  /**
   * Checks a firmware update as a device must before installing it
   * (src/firmware/verify.ts): signature, chain to a fleet root, codeSigning,
   * revocation from the cached CRLs (fetching a missing one), model, newer
   * than installed, rollback floor, expiry, digest. Throws
   * `firmware_rejected` with `extra.reason`.
   */
  async verifyFirmware(o: VerifyUpdateOptions): Promise<AcceptedFirmware> {
    const accepted = await verifyUpdate(this, this.files, o);
    this.log(`firmware ${accepted.model} ${accepted.version} accepted (signed by ${accepted.signer.subject}, serial ${accepted.signer.serial})`);
    return accepted;
  }

  /** Records an update as installed (once it runs): later updates must be newer, and never below its minVersion. */
  async recordFirmware(accepted: Parameters<typeof recordInstalled>[2]): Promise<FirmwareState> {
    const s = await recordInstalled(this, this.files, accepted, this.clock.now());
    this.emit('firmware', s);
    return s;
  }

  /** What firmware.json says is installed. */
  firmwareState(): Promise<FirmwareState> {
    return readFirmwareState(this.files, this.dir);
  }

  private crlVerified(c: ParsedCrl, issuer: CertInfo): boolean {
    let ok = this.signedMemo.get(c);
    if (!ok) this.signedMemo.set(c, (ok = new Set()));
    if (ok.has(issuer.fingerprintSha256)) return true;
    if (!crlSignedBy(c, issuer)) return false;
    ok.add(issuer.fingerprintSha256);
    return true;
  }

  /** PEM of every CA a peer may chain to (TLS `ca`): our roots, other organisations' roots, our issuing CAs. */
  tlsCa(): string[] {
    return [...this.anchors.map((a) => a.cert), ...this.intermediates, ...this.partnerCas].map((c) => pemEncode('CERTIFICATE', c.der));
  }

  /** Rereads the trust list now (refresh does it too); emits 'trust' and returns true if it changed. */
  async reloadTrust(): Promise<boolean> {
    const changed = await this.loadTrust();
    if (changed) this.emit('trust', {});
    return changed;
  }

  // ------------------------------------------------------------ the daemon

  /**
   * Does whatever is due now: bootstrap (with `cred`), renewal, refresh.
   * Returns when the next thing is due. Errors are recorded, never thrown,
   * except corrupt_state and missing credentials for a first enrollment.
   */
  async tick(cred?: BootstrapCredential): Promise<Date> {
    const now = this.clock.now();
    const nextAttempt = this.state.renewal.nextAttemptAt ? Date.parse(this.state.renewal.nextAttemptAt) : 0;
    if (!this.current || (this.current.cert.notAfter <= now && !this.canRecover() && cred)) {
      if (!cred) throw new ProblemError('bad_request', `device ${this.settings.deviceId} is not enrolled: give a one-time secret or a manufacturer certificate`);
      if (now.getTime() >= nextAttempt) {
        try {
          await this.bootstrap(cred, this.current ? 'recovery' : 'secret' in cred ? 'secret' : 'manufacturer');
        } catch (e) {
          this.recordError('bootstrap', e);
          this.state.renewal.failures += 1;
          this.state.renewal.nextAttemptAt = new Date(now.getTime() + backoffMs(this.state.renewal.failures, this.settings.backoff.initialSeconds * 1000, this.settings.backoff.maxSeconds * 1000, this.random)).toISOString();
          await this.saveStateQuietly();
          // A refused secret will not start working by itself.
          if (e instanceof ProblemError && (e.code === 'unauthorized' || e.code === 'forbidden') && !this.current) throw e;
        }
      }
    } else if (this.renewalDue(now) && now.getTime() >= nextAttempt) {
      await this.renew().catch(() => undefined); // recorded, with backoff
    }
    if (this.current && now.getTime() >= (this.state.refresh.nextAt ? Date.parse(this.state.refresh.nextAt) : 0)) {
      await this.refresh().catch(() => undefined);
    }
    return this.nextWake();
  }

  nextWake(): Date {
    const times: number[] = [];
    const retry = this.state.renewal.nextAttemptAt ? Date.parse(this.state.renewal.nextAttemptAt) : 0;
    if (!this.current) times.push(retry);
    else times.push(Math.max(this.uncommitted ? 0 : Date.parse(this.current.identity.renewAt), retry));
    if (this.current) times.push(this.state.refresh.nextAt ? Date.parse(this.state.refresh.nextAt) : 0);
    return new Date(Math.min(...times));
  }

  /** Runs until `signal` aborts: tick, sleep until the next thing is due (at most a minute, so clock jumps are noticed). */
  async run(signal: AbortSignal, cred?: BootstrapCredential): Promise<void> {
    while (!signal.aborted) {
      const next = await this.tick(cred);
      const wait = Math.max(200, Math.min(60_000, next.getTime() - this.clock.now().getTime()));
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, wait);
        function done() {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        }
        this.wake = done;
        signal.addEventListener('abort', done, { once: true });
      });
      this.wake = undefined;
    }
  }

  /** Makes the running daemon look again now (a signal, a peer that needed a CRL). */
  poke(): void {
    this.state.refresh.nextAt = this.clock.now().toISOString();
    this.wake?.();
  }

  status(): AgentStatus {
    const now = this.clock.now();
    const id = this.current?.identity;
    const crls = Object.values(this.state.crls).sort((a, b) => a.url.localeCompare(b.url));
    // The CRL that covers our own certificate; else the one fetched last.
    const own = this.current ? crlUrlsOf(this.current.cert).map((u) => this.state.crls[u]).find(Boolean) : undefined;
    const lastCrl = own ?? [...crls].sort((a, b) => b.fetchedAt.localeCompare(a.fetchedAt))[0];
    let state: AgentStatus['state'] = 'not-enrolled';
    if (this.current) state = this.current.cert.notAfter <= now ? 'expired' : 'enrolled';
    else if (this.state.pending) state = 'pending-approval';
    const retry = this.state.renewal.nextAttemptAt;
    return {
      state,
      deviceId: this.settings.deviceId,
      server: this.settings.server,
      identity: id && this.current ? { ...id, issuer: this.current.cert.issuerText, daysLeft: Math.round(((this.current.cert.notAfter.getTime() - now.getTime()) / DAY) * 100) / 100 } : undefined,
      nextRenewal: id ? (this.state.renewal.failures > 0 && retry ? retry : id.renewAt) : retry,
      renewal: this.state.renewal,
      refresh: this.state.refresh,
      crls,
      lastCrl,
      lastError: this.state.lastError,
      key: this.current ? { store: this.current.key.store, ref: this.current.key.ref } : undefined,
      files: { cert: this.paths.cert, key: this.paths.key, chain: this.paths.chain, trust: this.paths.trust, crls: this.paths.crls },
    };
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Reads status without opening for writing (no lock, no settings change): `fleetpki agent status`. */
export async function readStatus(dir: string, files: AgentFiles = nodeFiles): Promise<AgentStatus> {
  const agent = await Agent.open({ dir, files: readOnly(files), inspect: true });
  return agent.status();
}

/** A view of the files that refuses to write: status must never change the state. */
function readOnly(files: AgentFiles): AgentFiles {
  const no = async () => {
    throw new ProblemError('forbidden', 'read-only');
  };
  return { ...files, writeAtomic: no, remove: async () => undefined, mkdir: async () => undefined, symlinkAtomic: async () => undefined };
}

/**
 * One agent per state directory: agent.lock holds the pid of the process
 * that owns it. A lock whose process is gone is taken over.
 */
export async function lockStateDir(dir: string): Promise<() => Promise<void>> {
  const { open, readFile, rm, mkdir } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'agent.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const h = await open(path, 'wx', 0o600);
      await h.writeFile(`${process.pid}\n`);
      await h.close();
      return async () => {
        await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      let alive = false;
      try {
        alive = pid > 0 && pid !== process.pid && process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (alive) throw new ProblemError('conflict', `another agent (pid ${pid}) is running on ${dir}`);
      await rm(path, { force: true });
    }
  }
  throw new ProblemError('conflict', `cannot take the lock ${path}`);
}
