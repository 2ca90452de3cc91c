/**
 * The certificate authority core: creates CAs, issues certificates under
 * profiles and revokes them. It takes a Store and a KeyStore and does no I/O
 * of its own; every protocol adapter calls these methods, so policy is decided
 * once, here.
 */
import type { Clock } from '../clock.js';
import { isProblem, ProblemError } from '../errors.js';
import { isExportable, isThreadShared, type KeyStore, type Signer } from '../keys/key_store.js';
import type { AuditInput, CaRecord, CertificateRecord, RevocationReason, Store } from '../store/store.js';
import { REVOCATION_REASONS } from '../store/store.js';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { keyInfoName, keyInfoOf, publicKeyFromSpki, signatureAlgorithmFor, type KeyAlgorithm } from '../x509/algorithms.js';
import * as der from '../asn1/der.js';
import { encodeTbs, signCertificate, type CertificateTemplate } from '../x509/cert_builder.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { isParsedCsr, parseCsr, type ParsedCsr } from '../x509/csr.js';
import * as x from '../x509/extensions.js';
import { formatSan, normaliseSan, type San } from '../x509/general_names.js';
import { lintCertificate } from '../x509/lint.js';
import { encodeName, type DnAttribute } from '../x509/names.js';
import { derFromPemOrDer, pemEncode } from '../x509/pem.js';
import { assembleCertificate, issueFast, type FastRequest, type FastResult, type IssuancePlan } from './fast_issuance.js';
import { IssuancePool } from './issuance_pool.js';
import { checkKey, checkSans, checkSubject, dedupeSans, usagesFor } from './policy.js';
import { ekuOid, type Profile, type ProfileSet } from './profiles.js';
import { newSerial } from './serial.js';

export interface AuthorityConfig {
  profiles: ProfileSet;
  /** The issuing CA used when a request names none. */
  defaultCa: string;
  /** Base URL of the plain-HTTP listener, for CRL distribution point and AIA URLs. */
  publicUrl: string;
  /** notBefore is set this far in the past to tolerate relying-party clock skew. */
  backdateSeconds: number;
  /** Delta CRLs are published: certificates name them in freshestCRL (RFC 5280 §4.2.1.15). */
  deltaCrls?: boolean;
  /** Partitioned CRLs: number of shards new end-entity certificates are spread over (0: off). */
  crlShards?: number;
  /**
   * Partition only once a CA's full CRL has more than this many entries
   * (0: from the first certificate). Certificates issued before keep
   * pointing at the full CRL, which stays complete.
   */
  crlPartitionAbove?: number;
  /**
   * The issuance fast path (fast_issuance.ts) for P-256 CSRs under end-entity
   * profiles; anything else takes the library path. Default true.
   */
  fastPath?: boolean;
  /**
   * Worker threads that check CSRs and sign on the fast path once issuances
   * overlap (0 or absent: the calling thread does it).
   */
  issuanceWorkers?: number;
}

/** How often at most issuance asks the store whether a CA's CRL passed crlPartitionAbove. */
const PARTITION_CHECK_MS = 60_000;

/**
 * The CRL shard of a new certificate: from the random octets at the end of
 * its serial (serial.ts), so it needs no counter or coordination between
 * nodes. CA certificates stay in the full CRL.
 */
export function crlShardOf(serial: Uint8Array, shards: number): number {
  if (!shards) return 0;
  const n = serial.length;
  const v = ((serial[n - 4] << 24) | (serial[n - 3] << 16) | (serial[n - 2] << 8) | serial[n - 1]) >>> 0;
  return 1 + (v % shards);
}

export interface IssueRequest {
  /**
   * PKCS#10 request, PEM or DER: the requester proves possession of the key.
   * Or a request parsed and checked already (CMP's CRMF, x509/crmf_request.ts).
   */
  csr?: Uint8Array | string | ParsedCsr;
  /**
   * Instead of a CSR, the DER SubjectPublicKeyInfo of a key this server
   * generated itself (its own TLS listener, server-side key generation).
   */
  serverGeneratedSpki?: Uint8Array;
  profile: string;
  /** Issuing CA name; default `defaultCa`. */
  ca?: string;
  /** Subject to certify; default the CSR's. */
  subject?: DnAttribute[];
  /** SANs to certify (authoritative when given); default the CSR's. */
  sans?: San[];
  validityDays?: number;
  actor: string;
}

export interface IssueResult {
  record: CertificateRecord;
  der: Uint8Array;
  pem: string;
  /** Issuer certificates from the issuing CA up to the root, DER. */
  chain: Uint8Array[];
  /** true when notAfter was shortened to the issuer's notAfter. */
  capped: boolean;
}

export interface CreateCaRequest {
  name: string;
  subject: DnAttribute[];
  keyAlgorithm: KeyAlgorithm;
  /** An existing key in the key store (an adopted token key) instead of a new one of keyAlgorithm. */
  keyRef?: string;
  validityDays: number;
  actor: string;
}

export interface CreateIssuingCaRequest extends CreateCaRequest {
  parent: string;
  /** Signs for the parent when its key is not in the key store (offline root ceremony). */
  parentSigner?: Signer;
  nameConstraints?: x.NameConstraintSpec;
}

const DAY = 86_400_000;
const CA_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

interface LoadedCa {
  record: CaRecord;
  info: CertInfo;
}

export class Authority {
  private readonly cas = new Map<string, LoadedCa>();
  private readonly caReads = new Map<string, Promise<CaRecord | undefined>>();

  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly clock: Clock,
    private readonly config: AuthorityConfig,
  ) {}

  /** CAs whose CRL passed crlPartitionAbove (for good: a CRL only shrinks when certificates expire, and shards stay valid). */
  private readonly partitioned = new Set<string>();
  private readonly partitionCheckedAt = new Map<string, number>();

  /** The shard count new certificates of `ca` are spread over now. */
  private async shardsFor(ca: string): Promise<number> {
    const shards = this.config.crlShards ?? 0;
    const above = this.config.crlPartitionAbove ?? 0;
    if (!shards || !above || this.partitioned.has(ca)) return shards;
    const now = this.clock.now().getTime();
    const checked = this.partitionCheckedAt.get(ca);
    if (checked !== undefined && now - checked < PARTITION_CHECK_MS) return 0;
    this.partitionCheckedAt.set(ca, now);
    if ((await this.store.countRevoked(ca)) <= above) return 0;
    this.partitioned.add(ca);
    return shards;
  }

  get profiles(): ProfileSet {
    return this.config.profiles;
  }

  profile(name: string): Profile {
    const p = this.config.profiles[name];
    if (!p) throw new ProblemError('not_found', `no profile "${name}" (known: ${Object.keys(this.config.profiles).join(', ')})`);
    return p;
  }

  /**
   * The CA as the store has it now. The record is read for every call, not
   * cached: another process may have taken the key offline
   * (export-root-key), and a running server must stop signing with it at
   * once. Calls made while a read of the same CA is in flight share it (256
   * enrollments at once cost one read, not 256). Only the parsed certificate
   * is kept.
   */
  async ca(name: string): Promise<LoadedCa> {
    let read = this.caReads.get(name);
    if (!read) {
      read = this.store.getCa(name).finally(() => this.caReads.delete(name));
      this.caReads.set(name, read);
    }
    const record = await read;
    if (!record) throw new ProblemError('not_found', `no CA named "${name}"`);
    const hit = this.cas.get(name);
    const info = hit && Buffer.compare(Buffer.from(hit.record.certDer), Buffer.from(record.certDer)) === 0 ? hit.info : parseCertificate(record.certDer);
    const loaded = { record, info };
    this.cas.set(name, loaded);
    return loaded;
  }

  /** DER certificates from `name` up to its root. */
  async chain(name: string): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (let ca: LoadedCa | undefined = await this.ca(name); ca; ca = ca.record.parentName ? await this.ca(ca.record.parentName) : undefined) {
      out.push(ca.record.certDer);
      if (out.length > 8) throw new ProblemError('internal', `CA chain of ${name} is longer than 8`);
    }
    return out;
  }

  /** The signer of a CA whose key is online (CRLs, OCSP signed by the CA). */
  async caSigner(name: string): Promise<Signer> {
    return this.signerFor(await this.ca(name));
  }

  private async signerFor(ca: LoadedCa): Promise<Signer> {
    if (!ca.record.keyRef) throw new ProblemError('key_unavailable', `the key of CA "${ca.record.name}" is offline; use a key ceremony (ca create-intermediate --root-key)`);
    return this.keys.signer(ca.record.keyRef);
  }

  private validity(days: number, capAt?: Date): { notBefore: Date; notAfter: Date; capped: boolean } {
    const now = Math.floor(this.clock.now().getTime() / 1000) * 1000;
    const notBefore = new Date(now - this.config.backdateSeconds * 1000);
    let notAfter = new Date(now + Math.round(days * DAY));
    let capped = false;
    if (capAt && notAfter > capAt) {
      notAfter = capAt;
      capped = true;
    }
    return { notBefore, notAfter, capped };
  }

  private urls(caName: string, shard = 0): { crl: string; ocsp: string; caIssuers: string } {
    const base = this.config.publicUrl.replace(/\/+$/, '');
    return { crl: `${base}/crl/${caName}${shard ? `-s${shard}` : ''}.crl`, ocsp: `${base}/ocsp`, caIssuers: `${base}/ca/${caName}.cer` };
  }

  /** Lint the template (signed with a throwaway signature), then sign for real. */
  private async lintAndSign(t: CertificateTemplate, signer: Signer, issuer: CertInfo | undefined): Promise<{ der: Uint8Array; info: CertInfo }> {
    const draft = parseCertificate(await this.draft(t, signer));
    const findings = lintCertificate(draft, issuer);
    if (findings.length) {
      throw new ProblemError('policy_violation', `certificate would break RFC 5280 rules: ${findings.map((f) => `${f.lint}: ${f.message}`).join('; ')}`, { lints: findings });
    }
    const certDer = await signCertificate(t, signer);
    return { der: certDer, info: parseCertificate(certDer) };
  }

  /** The template's TBS with an empty signature: parseable, never valid. */
  private async draft(t: CertificateTemplate, signer: Signer): Promise<Uint8Array> {
    const unsigned: Signer = { spki: signer.spki, key: signer.key, sign: async () => new Uint8Array(0) };
    return signCertificate(t, unsigned);
  }

  async createRootCa(req: CreateCaRequest): Promise<CaRecord> {
    this.checkCaName(req.name);
    if (await this.store.getCa(req.name)) throw new ProblemError('already_exists', `a CA named "${req.name}" exists`);
    const keyRef = req.keyRef ?? (await this.keys.generate(req.keyAlgorithm, `${req.name}-ca`));
    try {
      const signer = await this.keys.signer(keyRef);
      const subject = encodeName(req.subject);
      const ski = x.keyIdentifierOf(signer.spki);
      const { notBefore, notAfter } = this.validity(req.validityDays);
      const template: CertificateTemplate = {
        serial: newSerial(),
        issuer: subject,
        subject,
        notBefore,
        notAfter,
        spki: signer.spki,
        // RFC 5280 §4.2.1.1: AKI may be omitted from a self-signed root.
        extensions: [x.basicConstraints(true), x.keyUsage(['keyCertSign', 'cRLSign', 'digitalSignature']), x.subjectKeyIdentifier(ski)],
      };
      const { der: certDer, info } = await this.lintAndSign(template, signer, undefined);
      const record: CaRecord = { name: req.name, kind: 'root', subject: info.subjectText, certDer, keyRef, notBefore: info.notBefore, notAfter: info.notAfter, createdAt: this.clock.now() };
      await this.store.insertCa(record, this.audit(req.actor, 'ca.create', req.name, { kind: 'root', subject: info.subjectText, keyAlgorithm: keyInfoName(signer.key), keyStore: this.keys.kind, keyRef, adopted: !!req.keyRef, serial: info.serial, fingerprintSha256: info.fingerprintSha256 }));
      return record;
    } catch (e) {
      if (!req.keyRef) await this.keys.remove(keyRef).catch(() => undefined);
      throw e;
    }
  }

  async createIssuingCa(req: CreateIssuingCaRequest): Promise<CaRecord> {
    this.checkCaName(req.name);
    if (await this.store.getCa(req.name)) throw new ProblemError('already_exists', `a CA named "${req.name}" exists`);
    const parent = await this.ca(req.parent);
    const parentSigner = req.parentSigner ?? (await this.signerFor(parent));
    if (Buffer.compare(Buffer.from(parentSigner.spki), Buffer.from(parent.info.spki)) !== 0) {
      throw new ProblemError('key_unavailable', `the key given does not belong to CA "${req.parent}"`);
    }
    const profile = this.profile('sub-ca');
    const keyRef = req.keyRef ?? (await this.keys.generate(req.keyAlgorithm, `${req.name}-ca`));
    try {
      const signer = await this.keys.signer(keyRef);
      const { notBefore, notAfter } = this.validity(req.validityDays, parent.info.notAfter);
      const urls = this.urls(req.parent);
      const exts = [
        x.basicConstraints(true, profile.ca?.pathLen),
        x.keyUsage(usagesFor(profile, signer)),
        x.subjectKeyIdentifier(x.keyIdentifierOf(signer.spki)),
        x.authorityKeyIdentifier(parent.info.ski ?? x.keyIdentifierOf(parent.info.spki)),
        x.crlDistributionPoints([urls.crl]),
        x.authorityInfoAccess([], [urls.caIssuers]),
      ];
      if (req.nameConstraints && (req.nameConstraints.permitted?.length || req.nameConstraints.excluded?.length)) exts.push(x.nameConstraints(req.nameConstraints));
      const template: CertificateTemplate = { serial: newSerial(), issuer: parent.info.subjectDer, subject: encodeName(req.subject), notBefore, notAfter, spki: signer.spki, extensions: exts };
      const { der: certDer, info } = await this.lintAndSign(template, parentSigner, parent.info);
      const record: CaRecord = { name: req.name, kind: 'issuing', parentName: req.parent, subject: info.subjectText, certDer, keyRef, notBefore: info.notBefore, notAfter: info.notAfter, createdAt: this.clock.now() };
      const auditDetails = { kind: 'issuing', parent: req.parent, subject: info.subjectText, keyAlgorithm: keyInfoName(signer.key), keyStore: this.keys.kind, keyRef, adopted: !!req.keyRef, serial: info.serial, nameConstraints: req.nameConstraints ? describeConstraints(req.nameConstraints) : undefined };
      await this.store.insertCa(record, this.audit(req.actor, 'ca.create', req.name, auditDetails));
      await this.store.insertCertificate(this.certRecord(info, req.parent, 'sub-ca', req.actor), this.audit(req.actor, 'certificate.issue', info.serial, { ca: req.parent, profile: 'sub-ca', subject: info.subjectText }));
      return record;
    } catch (e) {
      if (!req.keyRef) await this.keys.remove(keyRef).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Checks a request against the profile and RFC 5280, and signs. Nothing is
   * stored: the caller commits `record` (issue() or the registry's enrollment
   * transaction) before it hands the certificate to anyone.
   */
  async prepare(req: IssueRequest): Promise<IssueResult> {
    const fast = await this.prepareFast(req);
    if (fast) {
      this.issuedBy.fastPath++;
      return fast;
    }
    const r = await this.prepareWithLibrary(req);
    this.issuedBy.library++;
    return r;
  }

  /** The library path: every key type, profile and request shape. */
  async prepareWithLibrary(req: IssueRequest): Promise<IssueResult> {
    const profile = this.profile(req.profile);
    const csr = requestedKey(req);
    const ca = await this.ca(req.ca ?? this.config.defaultCa);
    if (profile.ca && ca.record.kind !== 'root' && ca.info.pathLen === 0) {
      throw new ProblemError('policy_violation', `CA "${ca.record.name}" may not certify further CAs (pathLenConstraint 0)`);
    }
    const signer = await this.signerFor(ca);
    checkKey(profile, req.profile, csr, ca.info.spkiSha256);

    const subject = req.subject ?? csr.subject;
    checkSubject(profile, req.profile, subject);
    if (!req.sans && csr.unsupportedSans.length) {
      throw new ProblemError('policy_violation', `the CSR asks for names fleetpki does not issue: ${csr.unsupportedSans.join(', ')}`);
    }
    // Names from a CSR get the same syntax checks as names an operator types.
    const sans = dedupeSans((req.sans ?? csr.sans).map(normaliseSan));
    checkSans(profile, req.profile, sans);

    const lifetime = lifetimeOf(profile, req);
    if (lifetime.problem) throw lifetime.problem;
    const { notBefore, notAfter, capped } = this.validity(lifetime.ms / DAY, ca.info.notAfter);
    const serial = newSerial();
    const shard = profile.ca ? 0 : crlShardOf(serial, await this.shardsFor(ca.record.name));
    const template: CertificateTemplate = {
      serial,
      issuer: ca.info.subjectDer,
      subject: encodeName(subject),
      notBefore,
      notAfter,
      spki: csr.spki,
      extensions: this.leafExtensions(profile, csr, sans, subject.length === 0, ca, shard),
    };
    const { der: certDer, info } = await this.lintAndSign(template, signer, ca.info);
    const record = { ...this.certRecord(info, ca.record.name, req.profile, req.actor), ...(shard ? { crlShard: shard } : {}) };
    return { record, der: certDer, pem: pemEncode('CERTIFICATE', certDer), chain: await this.chain(ca.record.name), capped };
  }

  /** Plans by (profile, CA certificate, CA key); null: this pair takes the library path. */
  private readonly plans = new Map<string, IssuancePlan | null>();
  private readonly chains = new Map<string, Uint8Array[]>();
  private pool?: IssuancePool;
  /** After close(): no new worker threads. */
  private poolClosed = false;
  /** Certificates prepared by each path since start (metrics, tests, benchmarks). */
  readonly issuedBy = { fastPath: 0, library: 0 };

  /**
   * The fast path (fast_issuance.ts): undefined when the request is of a
   * shape it does not write, and the library path issues it. Refusals are
   * the library path's, in the same order.
   */
  private async prepareFast(req: IssueRequest): Promise<IssueResult | undefined> {
    if (this.config.fastPath === false || this.config.crlShards || req.serverGeneratedSpki !== undefined || req.csr === undefined || isParsedCsr(req.csr)) return undefined;
    const profile = this.config.profiles[req.profile];
    if (!profile || profile.ca) return undefined;
    let csrDer: Uint8Array;
    let ca: LoadedCa;
    let signer: Signer;
    try {
      csrDer = derFromPemOrDer(req.csr, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'bad_csr');
      ca = await this.ca(req.ca ?? this.config.defaultCa);
      signer = await this.signerFor(ca);
    } catch {
      // The library path refuses it, with its own error for the first thing wrong.
      return undefined;
    }
    const plan = this.planFor(req.profile, profile, ca, signer);
    if (!plan) return undefined;
    const lifetime = lifetimeOf(profile, req);
    const { notBefore, notAfter, capped } = this.validity((lifetime.problem ? profile.validityDays * DAY : lifetime.ms) / DAY, ca.info.notAfter);
    if (notBefore >= notAfter) return undefined;
    const fr: FastRequest = { csr: csrDer, subject: req.subject, sans: req.sans, serial: newSerial(), notBefore: notBefore.getTime(), notAfter: notAfter.getTime() };
    if (lifetime.problem) fr.validityProblem = { code: lifetime.problem.code, detail: lifetime.problem.detail };
    const r = await this.runFast(plan, fr);
    if (r.kind === 'fallback') return undefined;
    if (r.kind === 'problem') throw new ProblemError(r.code, r.detail, r.extra);
    const certDer = r.der ?? assembleCertificate(r.tbs!, plan.signatureAlgorithm, await signer.sign(r.tbs!, plan.hash));
    const record: CertificateRecord = {
      serial: r.serial,
      issuerCa: ca.record.name,
      profile: req.profile,
      subject: r.subjectText,
      sans: r.sans,
      notBefore,
      notAfter,
      spkiSha256: r.spkiSha256,
      der: certDer,
      status: 'good',
      createdAt: this.clock.now(),
      requester: req.actor,
    };
    return { record, der: certDer, pem: pemEncode('CERTIFICATE', certDer), chain: await this.cachedChain(ca), capped };
  }

  /**
   * The process's worker threads (`issuance.workers`, started on first
   * use), which other signers of the process share (OCSP answers);
   * undefined when configured without workers or when every worker died.
   */
  workerPool(): IssuancePool | undefined {
    if (!this.hasWorkers()) return undefined;
    this.pool ??= new IssuancePool(this.config.issuanceWorkers ?? 0);
    return this.pool;
  }

  /** Whether workerPool() has, or can start, worker threads. */
  hasWorkers(): boolean {
    return (this.config.issuanceWorkers ?? 0) > 0 && !this.poolClosed;
  }

  /** On a worker once issuances overlap, else here (the pool decides: issuance_pool.ts). */
  private async runFast(plan: IssuancePlan, req: FastRequest): Promise<FastResult> {
    const pool = this.workerPool();
    if (pool) {
      try {
        return await pool.run(plan, req);
      } catch (e) {
        // Every worker gone: carry on on this thread.
        if (!isProblem(e, 'unavailable')) throw e;
      }
    }
    return issueFast(plan, req);
  }

  /** Stops the worker threads, if any were started. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    this.poolClosed = true;
    await pool?.close();
  }

  /** The chain of a CA: CA certificates never change under a name, so it is read once per CA certificate. */
  private async cachedChain(ca: LoadedCa): Promise<Uint8Array[]> {
    const key = `${ca.record.name}|${ca.info.fingerprintSha256}`;
    let chain = this.chains.get(key);
    if (!chain) {
      chain = await this.chain(ca.record.name);
      this.chains.set(key, chain);
    }
    return [...chain];
  }

  /**
   * The constant part of every certificate of `profile` under `ca`, encoded
   * by the library path's own extension builders and linted once, on a
   * draft with a throwaway key: the per-certificate parts the fast path
   * writes (subject, key, SKI, SAN) are checked by the policy functions.
   */
  private planFor(name: string, profile: Profile, ca: LoadedCa, signer: Signer): IssuancePlan | undefined {
    const id = `${name}|${ca.record.name}|${ca.info.fingerprintSha256}|${ca.record.keyRef}`;
    const hit = this.plans.get(id);
    if (hit !== undefined) return hit ?? undefined;
    let plan: IssuancePlan | null = null;
    const alg = signer.key.type === 'ec' || signer.key.type === 'rsa' ? signatureAlgorithmFor(signer.key) : undefined;
    if (alg?.hash && !ca.info.nameConstraints && profile.keyAlgorithms.includes('ecdsa-p256')) {
      const sample = samplePublicKey();
      const exts = this.leafExtensions(profile, sample, [], false, ca, 0);
      const draft = encodeDraft({ serial: newSerial(), issuer: ca.info.subjectDer, subject: encodeName([{ type: 'CN', value: 'plan' }]), notBefore: new Date(0), notAfter: new Date(1000), spki: sample.spki, extensions: exts }, alg.algorithmIdentifier);
      const findings = lintCertificate(parseCertificate(draft), ca.info).filter((f) => f.lint !== 'validity_within_issuer');
      const ski = exts.findIndex((e) => e.oid === '2.5.29.14');
      if (!findings.length && ski > 0 && exts[ski + 1]?.oid === '2.5.29.35') {
        const enc = (list: x.Ext[]) => der.concat(list.map(x.encodeExtension));
        plan = {
          id,
          profileName: name,
          profile,
          caSpkiSha256: ca.info.spkiSha256,
          signatureAlgorithm: alg.algorithmIdentifier,
          hash: alg.hash,
          issuerDer: ca.info.subjectDer,
          extHead: enc(exts.slice(0, ski)),
          akiExt: enc([exts[ski + 1]]),
          extTail: enc(exts.slice(ski + 2)),
          ...(isThreadShared(signer) ? { key: signer.threadKey } : {}),
        };
      }
    }
    this.plans.set(id, plan);
    return plan ?? undefined;
  }

  /** The audit entry of an issuance, shared by every path that commits one. */
  issueAudit(r: IssueResult, actor: string, extra: Record<string, unknown> = {}): AuditInput {
    const rec = r.record;
    return this.audit(actor, 'certificate.issue', rec.serial, { ca: rec.issuerCa, profile: rec.profile, subject: rec.subject, sans: rec.sans, notAfter: rec.notAfter.toISOString(), ...extra });
  }

  /**
   * Issues a certificate from a CSR under a profile. The CSR's signature is
   * its proof of possession; names and key are checked against the profile;
   * the certificate is committed to the store before it is returned.
   */
  async issue(req: IssueRequest): Promise<IssueResult> {
    const r = await this.prepare(req);
    await this.store.insertCertificate(r.record, this.issueAudit(r, req.actor));
    return r;
  }

  private leafExtensions(profile: Profile, csr: ParsedCsr, sans: San[], emptySubject: boolean, ca: LoadedCa, shard: number): x.Ext[] {
    const exts: x.Ext[] = [
      x.basicConstraints(!!profile.ca, profile.ca?.pathLen),
      x.keyUsage(usagesFor(profile, csr)),
    ];
    if (profile.extendedKeyUsage.length) exts.push(x.extendedKeyUsage(profile.extendedKeyUsage.map(ekuOid)));
    exts.push(x.subjectKeyIdentifier(x.keyIdentifierOf(csr.spki)), x.authorityKeyIdentifier(ca.info.ski ?? x.keyIdentifierOf(ca.info.spki)));
    if (sans.length) exts.push(x.subjectAltName(sans, emptySubject));
    if (profile.revocationInfo !== false) {
      const urls = this.urls(ca.record.name, shard);
      exts.push(x.crlDistributionPoints([urls.crl]), x.authorityInfoAccess([urls.ocsp], [urls.caIssuers]));
      // Delta CRLs cover the full CRL; sharded certificates check their shard's base CRL.
      if (this.config.deltaCrls && !shard) exts.push(x.freshestCrl([this.urls(ca.record.name).crl.replace(/\.crl$/, '-delta.crl')]));
    }
    if (profile.ocspNoCheck) exts.push(x.ocspNoCheck());
    return exts;
  }

  /**
   * Key ceremony, step 1: the CA key as encrypted PKCS#8 under `passphrase`.
   * The key stays in the key store until `takeCaKeyOffline`, so a failed write
   * of the export never loses it.
   */
  async exportCaKey(name: string, passphrase: string, actor: string): Promise<string> {
    const ca = await this.ca(name);
    if (!ca.record.keyRef) throw new ProblemError('key_unavailable', `the key of CA "${name}" is already offline`);
    // A token key is non-extractable by construction: the offline root then is
    // a token of its own kept offline (docs/keys.md), not a file.
    if (!isExportable(this.keys)) throw new ProblemError('key_not_exportable', `the key of CA "${name}" is in a ${this.keys.kind} token and cannot leave it; to keep a root offline, keep it on a token of its own and disconnect that token (docs/keys.md)`);
    const pem = await this.keys.exportEncrypted(ca.record.keyRef, passphrase);
    await this.store.appendAudit(this.audit(actor, 'ca.key.export', name, { keyRef: ca.record.keyRef }));
    return pem;
  }

  /** Key ceremony, step 2: delete the CA key from the online key store. */
  async takeCaKeyOffline(name: string, actor: string): Promise<void> {
    const ca = await this.ca(name);
    const ref = ca.record.keyRef;
    if (!ref) throw new ProblemError('key_unavailable', `the key of CA "${name}" is already offline`);
    await this.store.setCaKeyRef(name, undefined, this.audit(actor, 'ca.key.offline', name, { keyRef: ref }));
    this.cas.delete(name);
    await this.keys.remove(ref);
  }

  async revoke(serial: string, reason: RevocationReason, actor: string, invalidityDate?: Date): Promise<CertificateRecord> {
    if (!Object.hasOwn(REVOCATION_REASONS, reason) || reason === 'removeFromCRL') {
      const valid = Object.keys(REVOCATION_REASONS).filter((r) => r !== 'removeFromCRL');
      throw new ProblemError('bad_request', `"${reason}" is not a revocation reason (use one of ${valid.join(', ')})`);
    }
    const at = this.clock.now();
    if (invalidityDate && invalidityDate > at) throw new ProblemError('bad_request', 'invalidityDate is in the future');
    return this.store.revokeCertificate(serial, { revokedAt: at, reason, invalidityDate }, this.audit(actor, 'certificate.revoke', serial, { reason, invalidityDate: invalidityDate?.toISOString() }));
  }

  /** Lifts a certificateHold: the certificate is good again (delta CRLs say removeFromCRL). */
  async releaseHold(serial: string, actor: string): Promise<CertificateRecord> {
    return this.store.releaseHold(serial, this.clock.now(), this.audit(actor, 'certificate.release', serial, {}));
  }

  private certRecord(info: CertInfo, issuerCa: string, profile: string, requester: string): CertificateRecord {
    return {
      serial: info.serial,
      issuerCa,
      profile,
      subject: info.subjectText,
      sans: info.sans.map(formatSan),
      notBefore: info.notBefore,
      notAfter: info.notAfter,
      spkiSha256: info.spkiSha256,
      der: info.der,
      status: 'good',
      createdAt: this.clock.now(),
      requester,
    };
  }

  private audit(actor: string, action: string, target: string, details: Record<string, unknown>): AuditInput {
    return { actor, action, target, details };
  }

  private checkCaName(name: string): void {
    if (!CA_NAME_RE.test(name)) throw new ProblemError('bad_request', `CA name "${name}" must be lowercase letters, digits and dashes`);
  }
}

/** How long a certificate of `profile` lives, or why the request's validity is refused. */
function lifetimeOf(profile: Profile, req: IssueRequest): { ms: number; problem?: ProblemError } {
  const days = req.validityDays ?? profile.validityDays;
  const maxDays = profile.maxValidityDays ?? profile.validityDays;
  if (!Number.isInteger(days) || days < 1 || days > maxDays) {
    return { ms: 0, problem: new ProblemError('policy_violation', `validity of ${days} days is outside profile "${req.profile}" (1..${maxDays})`) };
  }
  // Short-lived profiles count in seconds; a request cannot lengthen them.
  if (profile.validitySeconds !== undefined && req.validityDays !== undefined) {
    return { ms: 0, problem: new ProblemError('policy_violation', `profile "${req.profile}" issues certificates of ${profile.validitySeconds} s; a validity in days cannot be requested`) };
  }
  return { ms: profile.validitySeconds !== undefined ? profile.validitySeconds * 1000 : days * DAY };
}

let sampleKey: ParsedCsr | undefined;

/** A throwaway P-256 key in the shape of a parsed CSR: plans are linted on drafts that carry it. */
function samplePublicKey(): ParsedCsr {
  if (!sampleKey) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    sampleKey = { der: new Uint8Array(0), subject: [], spki, spkiSha256: createHash('sha256').update(spki).digest('hex'), publicKey, key: keyInfoOf(publicKey), sans: [], unsupportedSans: [] };
  }
  return sampleKey;
}

/** A template's certificate with an empty signature: parseable, never valid. */
function encodeDraft(t: CertificateTemplate, algorithmIdentifier: Uint8Array): Uint8Array {
  return der.seq(encodeTbs(t, algorithmIdentifier), algorithmIdentifier, der.bitString(new Uint8Array(0)));
}

function requestedKey(req: IssueRequest): ParsedCsr {
  const csr = req.csr;
  if (csr !== undefined && req.serverGeneratedSpki === undefined) return isParsedCsr(csr) ? csr : parseCsr(csr);
  if (req.serverGeneratedSpki === undefined || req.csr !== undefined) throw new ProblemError('bad_request', 'give either a CSR or a server-generated public key');
  const spki = req.serverGeneratedSpki;
  const publicKey = publicKeyFromSpki(spki);
  return { der: new Uint8Array(0), subject: [], spki, spkiSha256: createHash('sha256').update(spki).digest('hex'), publicKey, key: keyInfoOf(publicKey), sans: [], unsupportedSans: [] };
}

function describeConstraints(nc: x.NameConstraintSpec): Record<string, string[]> {
  return { permitted: (nc.permitted ?? []).map(formatSan), excluded: (nc.excluded ?? []).map(formatSan) };
}
