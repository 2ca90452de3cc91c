/**
 * Firmware signers on the CA side: a code-signing key made in the KeyStore
 * (software or PKCS#11) with its certificate from a CA of its own (never the
 * root, never the device CA), and signing with it for the CLI and the API.
 * Every signature and every refusal is audited. No I/O of its own: it takes
 * a Store, a KeyStore and the Authority.
 */
import type { Authority } from '../authority/authority.js';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { KeyStore } from '../keys/key_store.js';
import type { AuditInput, FirmwareSignerRecord, Store } from '../store/store.js';
import type { KeyAlgorithm } from '../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import type { DnAttribute } from '../x509/names.js';
import { digestStream, type ImageDigest } from './digest.js';
import { manifestJson, type FirmwareManifest } from './manifest.js';
import { digestAlgorithmFor, signFirmware, type FirmwareSignRequest, type SigningIdentity } from './sign.js';

export const DEFAULT_FIRMWARE_CA = 'firmware';
const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export interface CreateSignerRequest {
  name: string;
  /** The issuing CA of the signer certificate; default "firmware". */
  ca?: string;
  keyAlgorithm?: KeyAlgorithm;
  /** An adopted key (PKCS#11 URI turned reference) instead of a new one. */
  keyRef?: string;
  subject?: DnAttribute[];
  validityDays?: number;
  actor: string;
}

export interface SignWithStoredKeyRequest extends FirmwareSignRequest {
  /** The signer's name; default the newest usable one. */
  signer?: string;
  /** The image as a stream (hashed here), or its digest and size computed elsewhere. */
  image: AsyncIterable<Uint8Array> | ImageDigest;
  /** Refuse a streamed image larger than this. */
  maxImageBytes?: number;
  actor: string;
}

export interface SignerStatus {
  record: FirmwareSignerRecord;
  cert: CertInfo;
  status: 'good' | 'revoked' | 'expired' | 'not-yet-valid';
}

export interface SignResult {
  der: Uint8Array;
  manifest: FirmwareManifest;
  signer: FirmwareSignerRecord;
}

export class FirmwareSigning {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyStore,
    private readonly authority: Authority,
    private readonly clock: Clock,
    /** The CAs devices get their identities from (the default CA, EST labels'): they do not issue code-signing certificates. */
    private readonly deviceCas: readonly string[],
  ) {}

  async createSigner(req: CreateSignerRequest): Promise<FirmwareSignerRecord> {
    if (!NAME_RE.test(req.name)) throw new ProblemError('bad_request', `firmware signer names are lowercase letters, digits and dashes (got "${req.name}")`);
    if (await this.store.getFirmwareSigner(req.name)) throw new ProblemError('already_exists', `a firmware signer named "${req.name}" exists`);
    const caName = req.ca ?? DEFAULT_FIRMWARE_CA;
    const ca = await this.store.getCa(caName);
    const create = `fleetpki ca create-intermediate --name ${this.deviceCas.includes(caName) || ca?.kind === 'root' ? DEFAULT_FIRMWARE_CA : caName}`;
    if (!ca) throw new ProblemError('not_found', `no CA "${caName}": code-signing certificates come from an intermediate of their own; create it first (${create})`);
    // A key that signs firmware for the whole fleet gets a CA of its own, so
    // that revoking or rotating it touches neither device identities nor the root.
    if (ca.kind === 'root') throw new ProblemError('policy_violation', `the root CA does not certify firmware signers; use an intermediate of their own (${create})`);
    if (this.deviceCas.includes(caName)) throw new ProblemError('policy_violation', `"${caName}" issues device certificates; code-signing certificates come from an intermediate of their own (${create})`);
    const keyRef = req.keyRef ?? (await this.keys.generate(req.keyAlgorithm ?? 'ecdsa-p256', `firmware-${req.name}`));
    try {
      const signer = await this.keys.signer(keyRef);
      const caInfo = parseCertificate(ca.certDer);
      const org = caInfo.subject.find((a) => a.type === 'O');
      const subject = req.subject ?? [...(org ? [{ type: 'O', value: org.value }] : []), { type: 'CN', value: `${req.name} firmware signer`.slice(0, 64) }];
      const issued = await this.authority.issue({ serverGeneratedSpki: signer.spki, profile: 'code-signing', ca: caName, subject, validityDays: req.validityDays, actor: req.actor });
      const record: FirmwareSignerRecord = { name: req.name, ca: caName, keyRef, serial: issued.record.serial, certDer: issued.der, notAfter: issued.record.notAfter, createdAt: this.clock.now() };
      await this.store.insertFirmwareSigner(record, {
        actor: req.actor,
        action: 'firmware.signer.create',
        target: req.name,
        details: { ca: caName, serial: record.serial, subject: issued.record.subject, notAfter: record.notAfter.toISOString(), keyStore: this.keys.kind, keyRef, adopted: !!req.keyRef },
      });
      return record;
    } catch (e) {
      if (!req.keyRef) await this.keys.remove(keyRef).catch(() => undefined);
      throw e;
    }
  }

  async listSigners(): Promise<SignerStatus[]> {
    const out: SignerStatus[] = [];
    for (const record of await this.store.listFirmwareSigners()) out.push(await this.statusOf(record));
    return out;
  }

  private async statusOf(record: FirmwareSignerRecord): Promise<SignerStatus> {
    const cert = parseCertificate(record.certDer);
    const now = this.clock.now();
    const stored = await this.store.getCertificate(record.serial);
    let status: SignerStatus['status'] = 'good';
    if (!stored || stored.status === 'revoked') status = 'revoked';
    else if (cert.notAfter < now) status = 'expired';
    else if (cert.notBefore > now) status = 'not-yet-valid';
    return { record, cert, status };
  }

  /** The signer to use: the named one, else the newest usable one. Refuses a revoked or expired one. */
  async identity(name?: string): Promise<SigningIdentity & { record: FirmwareSignerRecord }> {
    let chosen: SignerStatus | undefined;
    if (name !== undefined) {
      const rec = await this.store.getFirmwareSigner(name);
      if (!rec) throw new ProblemError('not_found', `no firmware signer named "${name}" (fleetpki firmware signer list)`);
      chosen = await this.statusOf(rec);
      if (chosen.status !== 'good') throw new ProblemError('policy_violation', `firmware signer "${name}" is ${chosen.status}; create a new one (fleetpki firmware signer create)`);
    } else {
      chosen = (await this.listSigners()).find((s) => s.status === 'good');
      if (!chosen) throw new ProblemError('not_found', 'no usable firmware signer: create one with fleetpki firmware signer create --name NAME');
    }
    const { record, cert } = chosen;
    const chain = await this.authority.chain(record.ca);
    // The issuing CAs travel with the signature; the root is what devices already hold.
    return { record, signer: await this.keys.signer(record.keyRef), certificate: cert, chain: chain.slice(0, -1) };
  }

  /** Signs an image (streamed and hashed here, or given by its digest); audited as firmware.sign, refusals as firmware.sign.refuse. */
  async sign(req: SignWithStoredKeyRequest): Promise<SignResult> {
    const what = { signer: req.signer, model: req.model, version: req.version, minVersion: req.minVersion, expires: req.expires?.toISOString() };
    try {
      const id = await this.identity(req.signer);
      const alg = digestAlgorithmFor(id, req);
      let image: ImageDigest;
      if (isDigest(req.image)) {
        image = req.image;
        if (image.digest.length !== (alg === 'sha384' ? 48 : 32)) throw new ProblemError('bad_request', `the digest must be a ${alg} digest (${alg === 'sha384' ? 48 : 32} octets) for signer "${id.record.name}"`);
      } else image = await digestStream(req.image, alg, { maxBytes: req.maxImageBytes });
      const { der, manifest } = await signFirmware(id, { ...req, digestAlgorithm: alg }, image, this.clock.now());
      await this.store.appendAudit(this.audit(req.actor, 'firmware.sign', id.record.name, { ...manifestJson(manifest), signer: id.record.name, serial: id.record.serial, fromDigest: isDigest(req.image) }));
      return { der, manifest, signer: id.record };
    } catch (e) {
      if (e instanceof ProblemError) await this.store.appendAudit(this.audit(req.actor, 'firmware.sign.refuse', req.signer, { ...what, code: e.code, detail: e.detail })).catch(() => undefined);
      throw e;
    }
  }

  private audit(actor: string, action: string, target: string | undefined, details: Record<string, unknown>): AuditInput {
    return { actor, action, target, details: Object.fromEntries(Object.entries(details).filter(([, v]) => v !== undefined)) };
  }
}

function isDigest(x: SignWithStoredKeyRequest['image']): x is ImageDigest {
  return (x as ImageDigest).digest instanceof Uint8Array && typeof (x as ImageDigest).size === 'number';
}
