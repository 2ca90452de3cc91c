/**
 * The OCSP responder core (RFC 6960, RFC 5019 lightweight profile, RFC 8954
 * nonces): request bytes in, OCSPResponse bytes out, no HTTP.
 *
 * Response statuses, decided here once:
 * - malformedRequest: anything that is not exactly one DER OCSPRequest
 *   (garbage, truncated, trailing bytes, BER, unexpected elements), version
 *   other than v1, no or more than 10 CertIDs, a CertID hash other than SHA-1
 *   or SHA-256 (the CertID cannot be interpreted, so the request is not
 *   understood; unauthorized would send the client to look for another
 *   responder, internalError would invite a retry), a nonce outside 1..32
 *   octets (RFC 8954 §2.1), a duplicated or unknown critical extension
 *   (RFC 6960 §4.4).
 * - unauthorized (RFC 6960 §2.3, RFC 5019 §2.2.3): a CertID whose issuer is
 *   none of our CAs; CertIDs of different CAs in one request (one response
 *   has one signer, and each CA has its own); a CA that needs a new delegated
 *   signer while its key is offline.
 * - internalError: anything unexpected (store or key store failure). Never a
 *   throw: every input gets an OCSPResponse.
 * Requests are not required to be signed (sigRequired is never sent) and a
 * request signature is not checked: OCSP status is public information.
 *
 * Caching: answers to single-CertID requests without a nonce are signed once
 * and kept in memory (bounded) until nextUpdate − refreshAhead, and found
 * again by the request's exact bytes, so a repeated request costs a map
 * lookup: no parsing, no store, no signature. What keeps them true is the
 * store's change feed (listCertificateChanges: every issuance, revocation
 * and release, from any process or node, in commit order), read at most
 * every `statusPollSeconds` (default 1 s): an answer whose certificate
 * changed since its status was read is answered afresh. So a revocation
 * reaches every node's answers within that time. A timer of the server's
 * (refreshDue) re-signs answers before their refresh point, so clients get
 * pre-signed answers. Nonce requests are signed on demand, never cached;
 * the status they carry comes from a per-serial memory of the store's
 * records kept true by the same change feed, so a nonce answer reads the
 * store only when its certificate changed, and is signed on the worker
 * threads when the key allows it (signBytes).
 *
 * Signing: by default with a delegated OCSP signer per CA (RFC 6960
 * §4.2.2.2: id-kp-OCSPSigning, id-pkix-ocsp-nocheck), issued from the CA on
 * first use and renewed when less than a third of its life is left, recorded
 * in the store so restarts and other nodes reuse it. Two nodes may race to
 * create one; both certificates are valid and each node uses one.
 */
import type { Clock } from '../clock.js';
import { isProblem, ProblemError } from '../errors.js';
import { isThreadShared, type KeyStore, type Signer } from '../keys/key_store.js';
import type { CertificateRecord, OcspSignerRecord, Store } from '../store/store.js';
import { createHash } from 'node:crypto';
import { keyInfoName, signatureAlgorithmFor, type HashName, type KeyAlgorithm, type KeyInfo } from '../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import type { DnAttribute } from '../x509/names.js';
import type { Authority } from './authority.js';
import {
  encodeErrorResponse,
  encodeResponseData,
  encodeSuccessfulResponse,
  keyHash,
  parseOcspRequest,
  stateKey,
  wholeSeconds,
  type CertIdHash,
  type CertState,
  type OcspResponseStatus,
  type ParsedOcspRequest,
  type RequestedCert,
} from './ocsp_codec.js';

export interface OcspOptions {
  /** nextUpdate − thisUpdate of every answer; default 3600. */
  validitySeconds?: number;
  /** A cached answer is re-signed this long before its nextUpdate; default a quarter of the validity. */
  refreshAheadSeconds?: number;
  /** Sign with the CA key instead of a delegated OCSP signer. */
  signWithCaKey?: boolean;
  /** Key algorithm of delegated signers; default the CA's (RSA-4096 CAs get RSA-3072, which the profile allows). */
  signerKeyAlgorithm?: KeyAlgorithm;
  /** Cached answers kept at most; default 10,000 (least recently used go first). */
  maxCacheEntries?: number;
  /** How often a node looks at the store for a newer or revoked signer; default 60 s. */
  signerCheckSeconds?: number;
  /** How often at most an unknown issuer makes the CA list reload; default 5 s. */
  caReloadSeconds?: number;
  /** How often the store's change feed is read (how stale a cached status may be); 0: before every answer; default 1 s. */
  statusPollSeconds?: number;
}

export interface OcspResult {
  /** A DER OCSPResponse, always. */
  der: Uint8Array;
  status: OcspResponseStatus;
  thisUpdate?: Date;
  nextUpdate?: Date;
  /** May be kept by HTTP caches until nextUpdate (no nonce, successful). */
  cacheable: boolean;
  /** For the adapter's log: why the answer is not successful. */
  error?: unknown;
}

interface CaKeys {
  name: string;
  info: CertInfo;
}

interface ActiveSigner {
  signer: Signer;
  /** Certificate sent in `certs`: the delegated signer's, none when the CA signs. */
  certs: Uint8Array[];
  certSerial?: string;
  notAfter?: Date;
  renewAt?: number;
  keyRef?: string;
  checkedAt: number;
  /** Changes whenever a CA's signer changes: cached answers of an older one are re-signed. */
  generation: number;
}

/** A signed answer; refreshDue() updates it in place, so every map that holds it sees the new one. */
interface CachedAnswer {
  ca: string;
  rc: RequestedCert;
  der: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  refreshAt: number;
  state: string;
  generation: number;
  /** The change feed's position when the status was read: a later change of `rc.serial` makes it stale. */
  seq: number;
  result: OcspResult;
}

const CERT_ID_HASHES: readonly CertIdHash[] = ['sha1', 'sha256'];

/** A delegated signer is renewed when less than this share of its life is left. */
const RENEW_AT_REMAINING = 1 / 3;

export class OcspResponder {
  private readonly validityMs: number;
  private readonly refreshAheadMs: number;
  private readonly maxCache: number;
  private readonly signerCheckMs: number;
  private readonly caReloadMs: number;

  private caIndex = new Map<string, CaKeys[]>();
  private caLoadedAt = Number.NEGATIVE_INFINITY;
  private caLoading?: Promise<void>;

  private readonly signers = new Map<string, ActiveSigner>();
  private readonly signerLoading = new Map<string, Promise<ActiveSigner>>();
  private generationCounter = 0;

  private readonly cache = new Map<string, CachedAnswer>();
  private readonly signing = new Map<string, Promise<CachedAnswer>>();
  /** Request bytes (latin1) → its answer in `cache`. */
  private readonly byRequest = new Map<string, CachedAnswer>();

  private readonly pollMs: number;
  /** Last change-feed seq read; -1 before the first read. */
  private feedSeq = -1;
  private nextPollAt = Number.NEGATIVE_INFINITY;
  private polling?: Promise<boolean>;
  /** serial → seq of its newest change and when it was read, oldest first; kept one answer lifetime. */
  private readonly changed = new Map<string, { seq: number; seenAt: number }>();
  /** serial → its record as read at feed position `seq` (none: not in the store), least recently used first. */
  private readonly statuses = new Map<string, { record?: CertificateRecord; seq: number; readAt: number }>();
  /** Answers under way (respond()): their signatures may go to the worker threads. */
  private answering = 0;
  /** Signatures made since start, by where (metrics, tests, benchmarks). */
  readonly signedBy = { workers: 0, here: 0 };

  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly opts: OcspOptions = {},
  ) {
    const validity = opts.validitySeconds ?? 3600;
    const ahead = opts.refreshAheadSeconds ?? validity / 4;
    if (!(validity >= 60)) throw new ProblemError('config_error', 'ocsp.validitySeconds must be at least 60');
    if (!(ahead >= 0 && ahead < validity)) throw new ProblemError('config_error', 'ocsp.refreshAheadSeconds must be 0 or more and less than ocsp.validitySeconds');
    this.validityMs = validity * 1000;
    this.refreshAheadMs = ahead * 1000;
    this.maxCache = Math.max(0, opts.maxCacheEntries ?? 10_000);
    this.signerCheckMs = (opts.signerCheckSeconds ?? 60) * 1000;
    this.caReloadMs = (opts.caReloadSeconds ?? 5) * 1000;
    this.pollMs = Math.max(0, opts.statusPollSeconds ?? 1) * 1000;
  }

  /** Number of answers in the cache (tests, metrics). */
  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * The pre-signed answer to these exact request bytes, without waiting:
   * undefined unless one is cached, still true, and the change feed was
   * read within statusPollSeconds. The hot path of a responder behind
   * which most requests repeat (RFC 5019 §2.1); respond() does the rest.
   */
  cachedResult(requestDer: Uint8Array): OcspResult | undefined {
    if (this.maxCache === 0) return undefined;
    const now = this.clock.now().getTime();
    if (now >= this.nextPollAt) return undefined;
    const hit = this.byRequest.get(requestKey(requestDer));
    return hit && this.stillTrue(hit, now) ? hit.result : undefined;
  }

  /** Answers one OCSPRequest. Never throws: failures become an error status. */
  async respond(requestDer: Uint8Array): Promise<OcspResult> {
    const key = this.maxCache > 0 ? requestKey(requestDer) : undefined;
    if (key !== undefined && (await this.feedCurrent())) {
      const hit = this.byRequest.get(key);
      if (hit && this.stillTrue(hit, this.clock.now().getTime())) return hit.result;
    }
    let req: ParsedOcspRequest;
    try {
      req = parseOcspRequest(requestDer);
    } catch (e) {
      return failure('malformedRequest', e);
    }
    this.answering++;
    try {
      return await this.answer(req, key);
    } catch (e) {
      if (isProblem(e, 'unauthorized')) return failure('unauthorized', e);
      if (isProblem(e, 'bad_request')) return failure('malformedRequest', e);
      return failure('internalError', e);
    } finally {
      this.answering--;
    }
  }

  private async answer(req: ParsedOcspRequest, requestKey: string | undefined): Promise<OcspResult> {
    // The feed position before the statuses are read: a change committed
    // after it shows up in the feed with a higher seq.
    const seq = this.feedSeq;
    // Resolve every CertID to its CA before anything is signed.
    const resolved: Array<{ rc: RequestedCert; ca: string; record?: CertificateRecord }> = [];
    for (const rc of req.certs) {
      const cas = await this.issuersOf(rc);
      if (!cas.length) throw new ProblemError('unauthorized', `no CA of this responder has the issuer name and key hashes of serial ${rc.serial}`);
      const record = await this.statusOf(rc.serial);
      const owner = record && cas.find((c) => c.name === record.issuerCa);
      resolved.push({ rc, ca: owner?.name ?? cas[0].name, record: owner ? record : undefined });
    }
    const ca = resolved[0].ca;
    if (resolved.some((r) => r.ca !== ca)) throw new ProblemError('unauthorized', 'certificates of different CAs in one request; ask for each CA separately');

    if (!req.nonce && resolved.length === 1) {
      const { rc, record } = resolved[0];
      const a = await this.cachedAnswer(ca, rc, stateOf(record), seq);
      if (requestKey !== undefined && this.maxCache > 0) {
        this.byRequest.set(requestKey, a);
        while (this.byRequest.size > this.maxCache) this.byRequest.delete(this.byRequest.keys().next().value as string);
      }
      return a.result;
    }
    const signed = await this.sign(ca, resolved.map((r) => ({ rc: r.rc, state: stateOf(r.record) })), req.nonce);
    return { der: signed.der, status: 'successful', thisUpdate: signed.thisUpdate, nextUpdate: signed.nextUpdate, cacheable: !req.nonce };
  }

  // ------------------------------------------------------------ issuers

  private async issuersOf(rc: RequestedCert): Promise<CaKeys[]> {
    const key = indexKey(rc.hash, rc.issuerNameHash, rc.issuerKeyHash);
    let hit = this.caIndex.get(key);
    // A CA created since (by the CLI, another node) is found after a reload;
    // the reload is rate-limited so unknown issuers cannot hammer the store.
    if (!hit && this.clock.now().getTime() - this.caLoadedAt >= this.caReloadMs) {
      await this.loadCas();
      hit = this.caIndex.get(key);
    }
    return hit ?? [];
  }

  private async loadCas(): Promise<void> {
    this.caLoading ??= (async () => {
      try {
        const index = new Map<string, CaKeys[]>();
        for (const rec of await this.store.listCas()) {
          const info = parseCertificate(rec.certDer);
          // RFC 6960 §4.1.1: issuerNameHash over the DER of the issuer Name,
          // issuerKeyHash over the subjectPublicKey BIT STRING value.
          for (const h of CERT_ID_HASHES) {
            const k = indexKey(h, createHash(h).update(info.subjectDer).digest(), keyHash(info.spki, h));
            index.set(k, [...(index.get(k) ?? []), { name: rec.name, info }]);
          }
        }
        this.caIndex = index;
        this.caLoadedAt = this.clock.now().getTime();
      } finally {
        this.caLoading = undefined;
      }
    })();
    return this.caLoading;
  }

  // ------------------------------------------------------------ change feed

  /**
   * Reads the change feed if it is due; false when it cannot be read (the
   * store is down): then no cached answer is trusted without the store.
   */
  private async feedCurrent(): Promise<boolean> {
    if (this.clock.now().getTime() < this.nextPollAt) return true;
    this.polling ??= this.pollChanges().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async pollChanges(): Promise<boolean> {
    const started = this.clock.now().getTime();
    try {
      if (this.feedSeq < 0) {
        // Nothing is cached yet: start at the end of the feed.
        this.feedSeq = await this.store.lastAuditSeq();
      } else {
        for (;;) {
          const page = await this.store.listCertificateChanges(this.feedSeq, 1000);
          for (const c of page) {
            this.changed.delete(c.serial);
            this.changed.set(c.serial, { seq: c.seq, seenAt: started });
          }
          if (page.length) this.feedSeq = page[page.length - 1].seq;
          if (page.length < 1000) break;
        }
      }
    } catch {
      this.nextPollAt = Number.NEGATIVE_INFINITY;
      return false;
    }
    // An answer lives at most validityMs: a change seen before that can no longer matter.
    for (const [serial, c] of this.changed) {
      if (c.seenAt >= started - this.validityMs) break;
      this.changed.delete(serial);
    }
    this.nextPollAt = started + this.pollMs;
    return true;
  }

  /**
   * A certificate's record, from the store or, when the change feed is
   * current and shows no change of it since it was read, from memory: a
   * nonce answer is signed anew each time, but its status need not be read
   * anew. Entries live half an answer lifetime, well within the time the
   * feed's changes are remembered.
   */
  private async statusOf(serial: string): Promise<CertificateRecord | undefined> {
    if (this.maxCache === 0 || !(await this.feedCurrent())) return this.store.getCertificate(serial);
    const now = this.clock.now().getTime();
    const hit = this.statuses.get(serial);
    const c = this.changed.get(serial);
    if (hit && now - hit.readAt < this.validityMs / 2 && (!c || c.seq <= hit.seq)) return hit.record;
    const seq = this.feedSeq;
    const record = await this.store.getCertificate(serial);
    this.statuses.delete(serial);
    this.statuses.set(serial, { record, seq, readAt: now });
    while (this.statuses.size > this.maxCache) this.statuses.delete(this.statuses.keys().next().value as string);
    return record;
  }

  /** A cached answer that may be sent again as it is: not due for refresh, same signer, no change since its status was read. */
  private stillTrue(a: CachedAnswer, now: number): boolean {
    if (now >= a.refreshAt) return false;
    const signer = this.signers.get(a.ca);
    if (!signer || signer.generation !== a.generation || this.signerNeedsCheck(signer, now)) return false;
    const c = this.changed.get(a.rc.serial);
    return !c || c.seq <= a.seq;
  }

  // ------------------------------------------------------------ cache

  /** How often the server should call refreshDue(). */
  get refreshIntervalMs(): number {
    return Math.max(1000, Math.min(60_000, this.refreshAheadMs / 2));
  }

  /**
   * Re-signs, in the background, every cached answer that reaches its
   * refresh point within the next refresh interval, reading its status
   * afresh: requests keep finding pre-signed answers. Returns how many.
   */
  async refreshDue(): Promise<number> {
    const horizon = this.clock.now().getTime() + this.refreshIntervalMs;
    let n = 0;
    for (const a of [...this.cache.values()]) {
      if (a.refreshAt > horizon) continue;
      const seq = this.feedSeq;
      const record = await this.store.getCertificate(a.rc.serial);
      const state = stateOf(record && record.issuerCa === a.ca ? record : undefined);
      const signed = await this.sign(a.ca, [{ rc: a.rc, state }]);
      this.fill(a, signed, stateKey(state), seq);
      n++;
    }
    return n;
  }

  private fill(a: CachedAnswer, signed: { der: Uint8Array; thisUpdate: Date; nextUpdate: Date; generation: number }, state: string, seq: number): void {
    a.der = signed.der;
    a.thisUpdate = signed.thisUpdate;
    a.nextUpdate = signed.nextUpdate;
    a.generation = signed.generation;
    a.refreshAt = signed.nextUpdate.getTime() - this.refreshAheadMs;
    a.state = state;
    a.seq = seq;
    a.result = { der: signed.der, status: 'successful', thisUpdate: signed.thisUpdate, nextUpdate: signed.nextUpdate, cacheable: true };
  }

  private async cachedAnswer(ca: string, rc: RequestedCert, state: CertState, seq: number): Promise<CachedAnswer> {
    const key = `${ca}|${Buffer.from(rc.certIdDer).toString('hex')}`;
    const sk = stateKey(state);
    const now = this.clock.now().getTime();
    // A map lookup unless the signer is due for its periodic check.
    const signer = await this.signerFor(ca);
    const hit = this.cache.get(key);
    if (hit && hit.state === sk && now < hit.refreshAt && hit.generation === signer.generation) {
      // The status was just read again and is unchanged: true as of `seq`.
      hit.seq = Math.max(hit.seq, seq);
      // Least recently used goes first: move the hit to the end.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    // Concurrent misses for the same answer wait for one signature.
    const flightKey = `${key}|${sk}`;
    let p = this.signing.get(flightKey);
    if (!p) {
      p = (async () => {
        try {
          const signed = await this.sign(ca, [{ rc, state }]);
          // Updated in place: byRequest may hold the same object.
          const entry = hit ?? ({ ca, rc } as CachedAnswer);
          this.fill(entry, signed, sk, seq);
          if (this.maxCache > 0) {
            this.cache.delete(key);
            this.cache.set(key, entry);
            while (this.cache.size > this.maxCache) this.cache.delete(this.cache.keys().next().value as string);
          }
          return entry;
        } finally {
          this.signing.delete(flightKey);
        }
      })();
      this.signing.set(flightKey, p);
    }
    return p;
  }

  // ------------------------------------------------------------ signing

  private async sign(
    ca: string,
    items: Array<{ rc: RequestedCert; state: CertState }>,
    nonce?: Uint8Array,
  ): Promise<{ der: Uint8Array; thisUpdate: Date; nextUpdate: Date; generation: number }> {
    const active = await this.signerFor(ca);
    const thisUpdate = wholeSeconds(this.clock.now());
    let nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
    // An answer never outlives the certificate that vouches for its signature.
    if (active.notAfter && nextUpdate > active.notAfter) nextUpdate = wholeSeconds(active.notAfter);
    const tbs = encodeResponseData({
      signerSpki: active.signer.spki,
      producedAt: thisUpdate,
      answers: items.map((i) => ({ certIdDer: i.rc.certIdDer, state: i.state, thisUpdate, nextUpdate })),
      nonce,
    });
    const alg = signatureAlgorithmFor(active.signer.key);
    const signature = await this.signBytes(active.signer, tbs, alg.hash);
    return { der: encodeSuccessfulResponse(tbs, alg.algorithmIdentifier, signature, active.certs), thisUpdate, nextUpdate, generation: active.generation };
  }

  /**
   * Once answers overlap (nonce requests under load), they are signed on
   * the worker threads when the key is in this process's memory (software
   * keys): the main thread keeps HTTP and the encoding, and both cores
   * sign. An answer alone is signed here: the worker pool runs a turn's
   * only job on this thread when no other is on a worker (issuance_pool.ts).
   * Token keys, background re-signing (refreshDue) and a process without
   * workers sign here.
   */
  private async signBytes(signer: Signer, tbs: Uint8Array, hash: HashName | null): Promise<Uint8Array> {
    const pool = this.answering > 0 ? this.authority.workerPool() : undefined;
    if (pool && isThreadShared(signer)) {
      try {
        const { signature, onWorker } = await pool.sign(signer.threadKey, hash, tbs);
        this.signedBy[onWorker ? 'workers' : 'here']++;
        return signature;
      } catch (e) {
        // Every worker gone: sign here.
        if (!isProblem(e, 'unavailable')) throw e;
      }
    }
    this.signedBy.here++;
    return signer.sign(tbs, hash);
  }

  private signerNeedsCheck(s: ActiveSigner, now: number): boolean {
    if (this.opts.signWithCaKey) return false;
    return now - s.checkedAt >= this.signerCheckMs || (s.renewAt !== undefined && now >= s.renewAt);
  }

  /** The signer of a CA's answers; loads, checks or renews the delegated signer as needed. */
  private async signerFor(ca: string): Promise<ActiveSigner> {
    const current = this.signers.get(ca);
    if (current && !this.signerNeedsCheck(current, this.clock.now().getTime())) return current;
    let p = this.signerLoading.get(ca);
    if (!p) {
      p = (async () => {
        try {
          const next = this.opts.signWithCaKey ? await this.caKeySigner(ca) : await this.delegatedSigner(ca, current);
          if (next !== current) this.signers.set(ca, next);
          return next;
        } finally {
          this.signerLoading.delete(ca);
        }
      })();
      this.signerLoading.set(ca, p);
    }
    return p;
  }

  private async caKeySigner(ca: string): Promise<ActiveSigner> {
    const loaded = await this.authority.ca(ca);
    if (!loaded.record.keyRef) throw new ProblemError('unauthorized', `the key of CA "${ca}" is offline and OCSP is configured to sign with CA keys`);
    return { signer: await this.authority.caSigner(ca), certs: [], checkedAt: this.clock.now().getTime(), generation: ++this.generationCounter };
  }

  /**
   * Prefers the newest signer in the store (another node may have renewed
   * it), keeps the current one while it is usable (the store's newest may
   * hold a key this node does not have), and issues a new one otherwise.
   */
  private async delegatedSigner(ca: string, current: ActiveSigner | undefined): Promise<ActiveSigner> {
    const now = this.clock.now().getTime();
    const stored = await this.store.getOcspSigner(ca);
    if (stored && current && stored.keyRef === current.keyRef) {
      if (await this.usable(current, now)) {
        current.checkedAt = now;
        return current;
      }
    } else {
      const fromStore = stored ? await this.load(stored, now) : undefined;
      if (fromStore) return fromStore;
      if (current && (await this.usable(current, now))) {
        current.checkedAt = now;
        return current;
      }
    }
    return this.createSigner(ca, now);
  }

  /** Still within the first two thirds of its life, not revoked. */
  private async usable(s: Pick<ActiveSigner, 'renewAt' | 'certSerial'>, now: number): Promise<boolean> {
    if (s.renewAt === undefined || now >= s.renewAt) return false;
    const rec = s.certSerial ? await this.store.getCertificate(s.certSerial) : undefined;
    return !rec || rec.status === 'good';
  }

  private async load(rec: OcspSignerRecord, now: number): Promise<ActiveSigner | undefined> {
    let info: CertInfo;
    try {
      info = parseCertificate(rec.certDer);
    } catch {
      return undefined;
    }
    const life = { certSerial: info.serial, renewAt: renewAt(info) };
    if (!(await this.usable(life, now))) return undefined;
    // The newest signer may hold a key only another node has (separate key stores).
    if (!(await this.keys.has(rec.keyRef))) return undefined;
    const signer = await this.keys.signer(rec.keyRef);
    if (Buffer.compare(Buffer.from(signer.spki), Buffer.from(info.spki)) !== 0) return undefined;
    return { ...life, signer, certs: [rec.certDer], notAfter: info.notAfter, keyRef: rec.keyRef, checkedAt: now, generation: ++this.generationCounter };
  }

  private async createSigner(ca: string, now: number): Promise<ActiveSigner> {
    const loaded = await this.authority.ca(ca);
    if (!loaded.record.keyRef) throw new ProblemError('unauthorized', `CA "${ca}" needs a new OCSP signer but its key is offline`);
    const alg = this.opts.signerKeyAlgorithm ?? defaultSignerAlgorithm(loaded.info.key);
    const keyRef = await this.keys.generate(alg, `${ca}-ocsp`);
    try {
      const signer = await this.keys.signer(keyRef);
      const issued = await this.authority.issue({
        serverGeneratedSpki: signer.spki,
        profile: 'ocsp-signer',
        ca,
        subject: signerSubject(ca, loaded.info.subject),
        actor: 'system:ocsp',
      });
      const info = parseCertificate(issued.der);
      await this.store.putOcspSigner(
        { ca, keyRef, certDer: issued.der, notAfter: info.notAfter, createdAt: this.clock.now() },
        { actor: 'system:ocsp', action: 'ocsp.signer.create', target: ca, details: { serial: info.serial, notAfter: info.notAfter.toISOString(), keyAlgorithm: alg } },
      );
      return { signer, certs: [issued.der], certSerial: info.serial, notAfter: info.notAfter, renewAt: renewAt(info), keyRef, checkedAt: now, generation: ++this.generationCounter };
    } catch (e) {
      await this.keys.remove(keyRef).catch(() => undefined);
      throw e;
    }
  }
}

function failure(status: Exclude<OcspResponseStatus, 'successful'>, error: unknown): OcspResult {
  return { der: encodeErrorResponse(status), status, cacheable: false, error };
}

/** A request's exact bytes as a map key. */
function requestKey(der: Uint8Array): string {
  return Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('latin1');
}

function indexKey(hash: CertIdHash, nameHash: Uint8Array, keyHashBytes: Uint8Array): string {
  return `${hash}:${Buffer.from(nameHash).toString('hex')}:${Buffer.from(keyHashBytes).toString('hex')}`;
}

/** good / revoked from the store; unknown when the CA never issued the serial. */
function stateOf(record: CertificateRecord | undefined): CertState {
  if (!record) return { kind: 'unknown' };
  if (record.status === 'revoked' && record.revocation) return { kind: 'revoked', revokedAt: record.revocation.revokedAt, reason: record.revocation.reason };
  return { kind: 'good' };
}

function renewAt(info: CertInfo): number {
  const life = info.notAfter.getTime() - info.notBefore.getTime();
  return info.notAfter.getTime() - life * RENEW_AT_REMAINING;
}

/** The CA's own algorithm where the ocsp-signer profile allows it. */
export function defaultSignerAlgorithm(caKey: KeyInfo): KeyAlgorithm {
  if (caKey.type === 'rsa') return caKey.bits > 2048 ? 'rsa-3072' : 'rsa-2048';
  const name = keyInfoName(caKey);
  return name === 'ecdsa-p256' || name === 'ecdsa-p384' || name === 'ed25519' ? name : 'ecdsa-p256';
}

/** "O=<the CA's O>, CN=<CA name> OCSP Responder", within the 64-character CN bound. */
function signerSubject(ca: string, caSubject: DnAttribute[]): DnAttribute[] {
  const org = caSubject.find((a) => a.type === 'O');
  const cn = `${ca.slice(0, 64 - ' OCSP Responder'.length)} OCSP Responder`;
  return [...(org ? [{ type: 'O', value: org.value }] : []), { type: 'CN', value: cn }];
}
