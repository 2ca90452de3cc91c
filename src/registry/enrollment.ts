/**
 * Enrollment: a device asks for a certificate with some credential. The
 * registry decides whether it may (registration, state, order, approval),
 * which names it gets (from the registry, never blindly from the CSR) and
 * commits everything in one transaction. Every protocol (EST now, CMP later)
 * calls `enroll`; none decides policy itself.
 */
import { createHash, generateKeyPairSync, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Authority, IssueResult } from '../authority/authority.js';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { Profile } from '../authority/profiles.js';
import type { CertificateRecord, DeviceIdentityRecord, DeviceRecord, EnrollmentSecretRecord, RevocationReason, Store } from '../store/store.js';
import { isKeyAlgorithm, keyInfoName, nodeKeyGenParams } from '../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { isParsedCsr, parseCsr, type ParsedCsr } from '../x509/csr.js';
import { readCsrFast } from '../x509/csr_reader.js';
import { formatSan, parseSan, type San } from '../x509/general_names.js';
import type { DnAttribute } from '../x509/names.js';
import { pemEncode } from '../x509/pem.js';
import type { KeyCustody } from './key_custody.js';
import { mayEnroll } from './lifecycle.js';
import { domainUri, hashSecret } from './registry.js';

/** How the device proved who it is. The transport (TLS, HTTP auth) checked the cryptography. */
export type EnrollmentCredential =
  /** HTTP Basic: username = device id, password = the one-time secret. */
  | { kind: 'secret'; deviceId: string; secret: string }
  /**
   * A client certificate whose chain the TLS layer verified to `anchor` (sha256
   * of the anchor DER): a manufacturer CA (bootstrap) or one of our CAs.
   */
  | { kind: 'certificate'; leaf: CertInfo; anchor: string };

/** Where in the certificate a manufacturer puts the device serial number. */
export type ManufacturerIdRule = { from: 'serialNumber' } | { from: 'cn' } | { from: 'uri'; prefix: string };

export interface EnrollmentConfig {
  org: string;
  manufacturerId: ManufacturerIdRule;
  /** Seconds a device should wait before asking again while approval is pending. */
  retryAfterSeconds: number;
}

export interface EnrollRequest {
  credential: EnrollmentCredential;
  /** PKCS#10 (PEM or DER), or a CRMF request the CMP adapter parsed and checked (proof of possession). */
  csr: Uint8Array | string | ParsedCsr;
  /** simplereenroll: the current certificate, same subject (RFC 7030 §4.2.2). */
  reenroll?: boolean;
  /** CMP kur: only the device's current certificate may ask (RFC 9483 §4.1.3). */
  renewal?: boolean;
  /**
   * Runs after the certificate is signed and before it is committed. CMP
   * records here the transaction that must see a certConf, so a crash
   * between commit and answer still leaves the certificate to be confirmed
   * or abandoned (abandon()). A throw stops the enrollment.
   */
  beforeCommit?: (p: { result: IssueResult; device: DeviceRecord }) => Promise<void>;
  /** Server-side key generation: the CSR's key is ignored, a new key of its type is made. */
  serverKeyGen?: boolean;
  /** From an EST label: the CA to issue from and the profile the device must be registered for. */
  ca?: string;
  profile?: string;
  /** For the audit log: the transport ("est", "cmp") and the peer address. */
  via: string;
  remote?: string;
}

export type EnrollResult =
  | { status: 'issued'; device: DeviceRecord; result: IssueResult; privateKey?: KeyObject }
  | { status: 'pending'; device: DeviceRecord; pendingId: string; retryAfterSeconds: number };

interface Authenticated {
  device: DeviceRecord;
  method: 'secret' | 'manufacturer' | 'certificate';
  secretHash?: string;
  /** A one-time secret that was used already: only a retry of that enrollment may pass (retryOf). */
  usedSecret?: EnrollmentSecretRecord;
  /** The certificate presented for re-enrollment. */
  current?: CertInfo;
  /** The client certificate presented (manufacturer or ours), for a supply-chain stage's check. */
  presented?: CertInfo;
}

const sha = (s: string) => Buffer.from(s, 'hex');

export class Enrollment {
  constructor(
    private readonly store: Store,
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly config: EnrollmentConfig,
    /** Escrows server-generated keys where the profile says so. */
    private readonly custody?: KeyCustody,
  ) {}

  /**
   * Who a credential belongs to, without enrolling: CMP general messages
   * (a certificate request template for the device) and revocation requests.
   */
  async identify(c: EnrollmentCredential): Promise<{ device: DeviceRecord; method: Authenticated['method'] }> {
    const { device, method } = await this.authenticate(c);
    return { device, method };
  }

  /** Enrolls, or refuses with a ProblemError after writing an audit entry. */
  async enroll(req: EnrollRequest): Promise<EnrollResult> {
    let deviceId: string | undefined = req.credential.kind === 'secret' ? req.credential.deviceId : undefined;
    try {
      const auth = await this.authenticate(req.credential);
      deviceId = auth.device.id;
      return await this.enrollAuthenticated(req, auth);
    } catch (e) {
      if (e instanceof ProblemError) {
        await this.store.appendAudit({
          actor: deviceId ? `device:${deviceId}` : `anonymous:${req.via}`,
          action: 'enrollment.refuse',
          target: deviceId,
          details: { code: e.code, detail: e.detail, via: req.via, remote: req.remote, credential: req.credential.kind, reenroll: !!req.reenroll },
        });
      }
      throw e;
    }
  }

  private async authenticate(c: EnrollmentCredential): Promise<Authenticated> {
    if (c.kind === 'secret') {
      // One answer for every failure: do not reveal which device ids exist.
      const denied = new ProblemError('unauthorized', 'unknown device or wrong, used or expired enrollment secret');
      const device = await this.store.getDevice(c.deviceId);
      const rec = await this.store.getEnrollmentSecret(c.deviceId);
      const given = hashSecret(c.secret);
      if (!device || !rec || !timingSafeEqual(sha(given), sha(rec.secretHash)) || rec.expiresAt <= this.clock.now()) throw denied;
      if (rec.usedAt) return { device, method: 'secret', usedSecret: rec };
      return { device, method: 'secret', secretHash: given };
    }

    const { leaf, anchor } = c;
    const now = this.clock.now();
    if (leaf.notAfter <= now || leaf.notBefore > now) throw new ProblemError('unauthorized', 'the client certificate is expired or not yet valid');
    const ours = (await this.store.listCas()).find((ca) => caFingerprint(ca.certDer) === anchor);
    if (ours) {
      const rec = await this.store.getCertificate(leaf.serial);
      if (!rec || rec.der.length !== leaf.der.length || Buffer.compare(Buffer.from(rec.der), Buffer.from(leaf.der)) !== 0) throw new ProblemError('unauthorized', 'the client certificate is not one this CA issued');
      if (rec.status !== 'good') throw new ProblemError('forbidden', `the client certificate ${rec.serial} is revoked (${rec.revocation?.reason})`);
      if (!rec.deviceId) throw new ProblemError('forbidden', 'the client certificate does not belong to a registered device');
      const device = await this.store.getDevice(rec.deviceId);
      if (!device) throw new ProblemError('forbidden', `device ${rec.deviceId} is no longer registered`);
      // Only the current certificate renews: a superseded one (and its key)
      // must not keep minting certificates for the device.
      if (device.currentSerial !== rec.serial) {
        throw new ProblemError('forbidden', `certificate ${rec.serial} is not the current certificate of device ${device.id} (${device.currentSerial ?? 'none'}); re-enroll with the current one`);
      }
      return { device, method: 'certificate', current: leaf, presented: leaf };
    }
    const trusted = (await this.store.listTrustAnchors('manufacturer')).some((t) => t.fingerprint === anchor);
    if (!trusted) throw new ProblemError('unauthorized', 'the client certificate does not chain to our CA or a trusted manufacturer CA');
    const id = manufacturerDeviceId(leaf, this.config.manufacturerId);
    if (!id) throw new ProblemError('forbidden', `the manufacturer certificate carries no device id (${describeRule(this.config.manufacturerId)})`);
    const device = await this.store.getDevice(id);
    if (!device) throw new ProblemError('forbidden', `device ${id} is not registered`);
    return { device, method: 'manufacturer', presented: leaf };
  }

  private async enrollAuthenticated(req: EnrollRequest, auth: Authenticated): Promise<EnrollResult> {
    const { device } = auth;
    // The lifecycle (lifecycle.ts): suspended, revoked and retired devices do not enroll.
    if (!mayEnroll(device.state)) throw new ProblemError('forbidden', `device ${device.id} is ${device.state} and may not enroll`);
    if (req.profile && req.profile !== device.profile) throw new ProblemError('forbidden', `device ${device.id} is registered for profile ${device.profile}, not ${req.profile}`);
    // simplereenroll renews a certificate of ours. With a manufacturer
    // certificate it is a bootstrap (strongSwan's pki sends any --cert
    // request there), so the same-subject rule and approval apply as for a
    // first enrollment. With only a secret there is nothing to renew.
    if (req.reenroll && auth.method === 'secret') throw new ProblemError('unauthorized', 're-enrollment needs the current certificate as the TLS client certificate');
    if (req.renewal && auth.method !== 'certificate') throw new ProblemError('unauthorized', 'a key update needs the device\'s current certificate from this CA');
    const profile = this.authority.profile(device.profile);

    // Proof of possession (even for serverkeygen, RFC 7030 §4.4.1). The common
    // shape (a P-256 PKCS#10 in DER) is read without the ASN.1 library, and
    // then handed to the authority as DER, so its fast path checks and signs
    // it on a worker thread (authority.ts prepareFast).
    const fast = req.csr instanceof Uint8Array ? readCsrFast(req.csr) : undefined;
    const csr = isParsedCsr(req.csr) ? req.csr : (fast ?? parseCsr(req.csr));
    if (auth.usedSecret) return this.retryOf(auth.device, auth.usedSecret, csr.spkiSha256, req);
    // Entering a supply-chain stage is a first enrollment, even with the
    // previous stage's certificate of ours: approval and names as for one.
    const admission = await this.stageAdmission(device, auth, csr, profile);
    const renewal = auth.method === 'certificate' && !admission;
    if (req.reenroll && renewal && auth.current && !sameSubject(csr.subject, auth.current.subject)) {
      throw new ProblemError('bad_request', 'RFC 7030 §4.2.2: the CSR subject must be the subject of the certificate being renewed');
    }

    const { subject, sans } = this.namesFor(device);
    checkCsrNames(csr, device, subject, sans, profile.csrNames ?? 'trim');

    let privateKey: KeyObject | undefined;
    let spkiForIssue: Uint8Array | undefined;
    if (req.serverKeyGen) {
      if (!profile.serverKeyGen) throw new ProblemError('forbidden', `profile ${device.profile} does not allow server-side key generation`);
      // The escrow key must exist before a certificate is issued whose key it is to hold.
      if (profile.keyEscrow) {
        if (!this.custody) throw new ProblemError('config_error', `profile ${device.profile} escrows keys but no key custody is configured`);
        await this.custody.escrowKey(`device:${device.id}`);
      }
      const alg = keyInfoName(csr.key);
      if (!isKeyAlgorithm(alg) || !(profile.keyAlgorithms as string[]).includes(alg)) throw new ProblemError('bad_key', `profile ${device.profile} does not allow ${alg} keys`);
      const { type, options } = nodeKeyGenParams(alg);
      const pair = generateKeyPairSync(type as 'ec', options as never) as unknown as { privateKey: KeyObject; publicKey: KeyObject };
      privateKey = pair.privateKey;
      spkiForIssue = new Uint8Array(pair.publicKey.export({ format: 'der', type: 'spki' }));
    } else {
      await this.refuseKeyOfAnotherDevice(csr, device);
    }

    // Approval gates first enrollments; renewing a certificate the device holds does not wait.
    let pendingId: string | undefined;
    if (device.requireApproval && !renewal) {
      const p = await this.store.findPendingEnrollment(device.id, csr.spkiSha256);
      if (!p || p.status === 'issued') {
        const id = randomUUID();
        await this.store.insertPendingEnrollment(
          { id, deviceId: device.id, spkiSha256: csr.spkiSha256, csrDer: csr.der, status: 'pending', createdAt: this.clock.now() },
          { actor: `device:${device.id}`, action: 'enrollment.pending', target: id, details: { via: req.via, method: auth.method } },
        );
        return { status: 'pending', device, pendingId: id, retryAfterSeconds: this.config.retryAfterSeconds };
      }
      if (p.status === 'pending') return { status: 'pending', device, pendingId: p.id, retryAfterSeconds: this.config.retryAfterSeconds };
      if (p.status === 'rejected') throw new ProblemError('forbidden', `the enrollment of device ${device.id} was rejected by ${p.decidedBy}`);
      pendingId = p.id;
    }

    // Orders are quotas for first certificates; renewals do not spend them.
    const redeemOrderId = device.orderId && !device.currentSerial ? device.orderId : undefined;
    if (redeemOrderId) {
      const o = await this.store.getOrder(redeemOrderId);
      const now = this.clock.now();
      if (!o || o.used >= o.quantity || (o.expiresAt && o.expiresAt <= now)) throw new ProblemError('policy_violation', `enrollment order ${redeemOrderId} is exhausted or expired`);
    }

    const actor = `device:${device.id}`;
    const result = await this.authority.prepare({
      csr: spkiForIssue ? undefined : fast ? fast.der : csr,
      serverGeneratedSpki: spkiForIssue,
      profile: device.profile,
      ca: req.ca,
      subject,
      sans,
      actor,
    });
    await req.beforeCommit?.({ result, device });
    await this.store.recordEnrollment(
      {
        cert: { ...result.record, deviceId: device.id },
        consumeSecretHash: auth.secretHash,
        redeemOrderId,
        pendingId,
        replacesSerial: device.currentSerial,
        admitStage: admission?.stage,
        identities: this.identitiesOf(device, auth, result, !!admission),
        now: this.clock.now(),
      },
      this.authority.issueAudit(result, actor, { deviceId: device.id, via: req.via, method: auth.method, renewal, serverKeyGen: !!req.serverKeyGen, replaces: device.currentSerial, ...(admission ? { stage: admission.stage, manifest: admission.manifest } : {}) }),
    );
    if (privateKey && profile.keyEscrow) await this.custody!.escrow(result.record.serial, privateKey, actor);
    const updated = await this.store.getDevice(device.id);
    return { status: 'issued', device: updated ?? device, result: { ...result, record: { ...result.record, deviceId: device.id } }, privateKey };
  }

  /**
   * A certificate its holder did not accept (RFC 9483 §4.1.1: a rejecting
   * certConf, or none before the confirmation deadline). The certificate
   * was committed before it was sent, so it is revoked now
   * (cessationOfOperation: never put to use) and the device's previous
   * certificate becomes current again, so a key update can be retried with
   * it. A one-time secret or order unit spent on it stays spent.
   */
  async abandon(serial: string, restoreSerial: string | undefined, why: string, actor: string): Promise<void> {
    await this.store.abandonCertificate(serial, { revokedAt: this.clock.now(), reason: 'cessationOfOperation' }, restoreSerial, {
      actor,
      action: 'certificate.abandon',
      target: serial,
      details: { why, restores: restoreSerial ?? null, reason: 'cessationOfOperation' },
    });
  }

  /**
   * A device revokes one of its own certificates (CMP rr, RFC 9483 §4.2):
   * the request is signed with the key of that very certificate, which this
   * CA issued to a registered device. Holding the key is the authority; the
   * device's state does not matter (a suspended device may report a lost
   * key). Refusals are audited as `revocation.refuse`.
   */
  async revokeOwn(req: { credential: EnrollmentCredential; serial: string; reason: RevocationReason; invalidityDate?: Date; via: string; remote?: string }): Promise<CertificateRecord> {
    let deviceId: string | undefined;
    try {
      const c = req.credential;
      if (c.kind !== 'certificate') throw new ProblemError('unauthorized', 'a revocation request is signed with the certificate it revokes');
      const ours = (await this.store.listCas()).some((ca) => caFingerprint(ca.certDer) === c.anchor);
      const rec = ours ? await this.store.getCertificate(c.leaf.serial) : undefined;
      if (!rec || Buffer.compare(Buffer.from(rec.der), Buffer.from(c.leaf.der)) !== 0) throw new ProblemError('unauthorized', 'the signing certificate is not one this CA issued');
      deviceId = rec.deviceId;
      if (!rec.deviceId) throw new ProblemError('forbidden', 'the signing certificate does not belong to a registered device');
      if (rec.serial !== req.serial.toLowerCase()) throw new ProblemError('forbidden', `a device revokes the certificate it signs with (${rec.serial}), not ${req.serial}`);
      if (rec.status !== 'good') throw new ProblemError('already_revoked', `certificate ${rec.serial} is revoked already (${rec.revocation?.reason})`);
      return await this.authority.revoke(rec.serial, req.reason, `device:${rec.deviceId}`, req.invalidityDate);
    } catch (e) {
      if (e instanceof ProblemError) {
        await this.store.appendAudit({
          actor: deviceId ? `device:${deviceId}` : `anonymous:${req.via}`,
          action: 'revocation.refuse',
          target: req.serial,
          details: { code: e.code, detail: e.detail, via: req.via, remote: req.remote },
        });
      }
      throw e;
    }
  }

  /**
   * A used one-time secret again: the device's answer was lost (a node died
   * between the commit and the reply, the connection broke) and it asks
   * again with the same secret and the same key. It gets the certificate
   * that enrollment committed, not a second one; anything else is refused
   * as a used secret. Only a certificate is handed out, useless without the
   * private key the CSR just proved; server-generated keys are never resent.
   */
  private async retryOf(device: DeviceRecord, secret: EnrollmentSecretRecord, spkiSha256: string, req: EnrollRequest): Promise<EnrollResult> {
    const denied = new ProblemError('unauthorized', 'unknown device or wrong, used or expired enrollment secret');
    if (req.serverKeyGen || !device.currentSerial) throw denied;
    const cert = await this.store.getCertificate(device.currentSerial);
    if (!cert || cert.status !== 'good' || cert.spkiSha256 !== spkiSha256 || cert.createdAt < secret.createdAt || (secret.usedAt && cert.createdAt > secret.usedAt)) throw denied;
    await this.store.appendAudit({ actor: `device:${device.id}`, action: 'enrollment.retry', target: cert.serial, details: { via: req.via, remote: req.remote } });
    const chain = await this.authority.chain(cert.issuerCa);
    return { status: 'issued', device, result: { record: cert, der: cert.der, pem: pemEncode('CERTIFICATE', cert.der), chain, capped: false } };
  }

  /**
   * Supply-chain stages (issue 8). A device a manifest handed over to a
   * stage gets its first certificate of that stage only with what the
   * manifest lists: the certificate it presents (certificateSha256), or that
   * certificate's or the CSR's public key (publicKeySha256). Once admitted,
   * renewals follow the usual rules. A profile with requireManifest admits
   * no device that no manifest listed, whatever its credential (a valid
   * manufacturer certificate included). Returns the stage being entered.
   */
  private async stageAdmission(device: DeviceRecord, auth: Authenticated, csr: ParsedCsr, profile: Profile): Promise<{ stage: string; manifest: string } | undefined> {
    if (!device.stage) {
      if (profile.requireManifest) throw new ProblemError('forbidden', `device ${device.id} is listed in no imported supplier manifest; profile ${device.profile} admits only devices a trusted supplier's manifest hands over`);
      return undefined;
    }
    const entry = await this.store.getManifestEntry(device.id, device.stage);
    if (!entry) throw new ProblemError('forbidden', `device ${device.id} is in stage ${device.stage} but no imported manifest lists it there`);
    if (entry.usedAt) return undefined;
    const p = auth.presented;
    const ok = entry.certificateSha256 ? p?.fingerprintSha256 === entry.certificateSha256 : p?.spkiSha256 === entry.publicKeySha256 || csr.spkiSha256 === entry.publicKeySha256;
    if (!ok) {
      const wants = entry.certificateSha256 ? `the certificate with SHA-256 ${entry.certificateSha256}` : `a certificate or CSR with the public key of SHA-256 ${entry.publicKeySha256}`;
      throw new ProblemError('forbidden', `device ${device.id} enters stage ${device.stage} only with what manifest ${entry.manifestDigest.slice(0, 16)} lists: ${wants}${p ? `, not ${p.subjectText} (SHA-256 ${p.fingerprintSha256})` : ''}`);
    }
    return { stage: device.stage, manifest: entry.manifestDigest };
  }

  /**
   * What an enrollment adds to the device's chain of identities: the
   * manufacturer certificate it bootstrapped with, and the certificate
   * issued when it is the device's first, or its first of a stage.
   */
  private identitiesOf(device: DeviceRecord, auth: Authenticated, result: IssueResult, admission: boolean): DeviceIdentityRecord[] {
    const now = this.clock.now();
    const out: DeviceIdentityRecord[] = [];
    const idOf = (c: CertInfo, kind: DeviceIdentityRecord['kind'], stage?: string): DeviceIdentityRecord => ({
      deviceId: device.id, kind, fingerprint: c.fingerprintSha256, stage, serial: c.serial, subject: c.subjectText, issuer: c.issuerText, notBefore: c.notBefore, notAfter: c.notAfter, recordedAt: now,
    });
    if (auth.method === 'manufacturer' && auth.presented) out.push({ ...idOf(auth.presented, 'manufacturer'), der: auth.presented.der });
    if (admission || !device.currentSerial) out.push(idOf(parseCertificate(result.der), 'certificate', device.stage));
    return out;
  }

  /**
   * The names a device gets: from its registry record, never from the CSR.
   * O and serialNumber go in where the profile allows them (OPC UA's does not
   * allow serialNumber); CN is always the device id.
   */
  namesFor(device: DeviceRecord): { subject: DnAttribute[]; sans: San[] } {
    const allowed = new Set(this.authority.profile(device.profile).subject.allowed);
    const subject: DnAttribute[] = [];
    if (allowed.has('O')) subject.push({ type: 'O', value: this.config.org });
    if (allowed.has('serialNumber')) subject.push({ type: 'serialNumber', value: device.id });
    subject.push({ type: 'CN', value: device.id });
    const sans: San[] = device.sans.map(parseSan);
    if (device.domain) sans.unshift({ type: 'uri', value: domainUri(device.domain) });
    return { subject, sans };
  }

  private async refuseKeyOfAnotherDevice(csr: ParsedCsr, device: DeviceRecord): Promise<void> {
    const holders = await this.store.listCertificates({ spkiSha256: csr.spkiSha256, limit: 10 });
    const other = holders.find((c) => c.deviceId !== device.id);
    if (other) throw new ProblemError('bad_key', `this public key is already certified for ${other.deviceId ? `device ${other.deviceId}` : 'another subject'} (certificate ${other.serial})`);
  }
}

/** sha256 of a certificate's DER: how anchors are named between TLS and the core. */
export function caFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

function sameSubject(a: DnAttribute[], b: DnAttribute[]): boolean {
  return a.length === b.length && a.every((x, i) => x.type === b[i].type && x.value === b[i].value);
}

export function manufacturerDeviceId(leaf: CertInfo, rule: ManufacturerIdRule): string | undefined {
  switch (rule.from) {
    case 'serialNumber':
      return leaf.subject.find((a) => a.type === 'serialNumber')?.value;
    case 'cn':
      return leaf.subject.find((a) => a.type === 'CN')?.value;
    case 'uri':
      return leaf.sans.find((s) => s.type === 'uri' && s.value.startsWith(rule.prefix))?.value.slice(rule.prefix.length) || undefined;
  }
}

function describeRule(r: ManufacturerIdRule): string {
  return r.from === 'uri' ? `expected a URI SAN starting ${r.prefix}` : `expected the subject ${r.from}`;
}

/**
 * A CSR may ask for fewer names than the registry gives, never others. With
 * 'trim' the extra names are dropped; with 'refuse' the request fails.
 */
function checkCsrNames(csr: ParsedCsr, device: DeviceRecord, subject: DnAttribute[], sans: San[], policy: 'trim' | 'refuse'): void {
  if (policy === 'trim') return;
  const allowed = new Set(sans.map(formatSan));
  const extra = csr.sans.map(formatSan).filter((s) => !allowed.has(s));
  extra.push(...csr.unsupportedSans);
  const cn = csr.subject.find((a) => a.type === 'CN')?.value;
  if (cn !== undefined && cn !== device.id) extra.push(`CN=${cn}`);
  const otherAttrs = csr.subject.filter((a) => !subject.some((s) => s.type === a.type && s.value === a.value) && a.type !== 'CN');
  extra.push(...otherAttrs.map((a) => `${a.type}=${a.value}`));
  if (extra.length) throw new ProblemError('policy_violation', `the CSR asks for names the registry does not give device ${device.id}: ${extra.join(', ')}`);
}
