/**
 * Supply-chain hand-over (issue 8): the suppliers this registry trusts, and
 * the import of their signed manifests. An import registers exactly the
 * devices a manifest lists, for the profile of the receiving stage, or moves
 * devices registered already (by an earlier stage) into it; enrollment
 * (enrollment.ts) then admits each device into the stage only with the
 * certificate or key its entry names. All or nothing: one bad entry and the
 * manifest changes nothing. No I/O of its own: it takes a Store.
 */
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { DevicePatch, DeviceRecord, ManifestEntryRecord, ManifestImport, ManifestRecord, Store, SupplierAnchorRecord } from '../store/store.js';
import { parseCertificate } from '../x509/cert_info.js';
import { pemDecodeAll } from '../x509/pem.js';
import { mayEnroll } from './lifecycle.js';
import type { Registry } from './registry.js';
import { readManifest, verifyManifest, type VerifiedManifest } from './supply_cms.js';
import { manifestRefusalOf, refuseManifest, STAGE_RE } from './supply_manifest.js';

const SUPPLIER_RE = /^[A-Za-z0-9 ._@-]{1,128}$/;

export interface ManifestImportOptions {
  /** The profile the devices enroll under in this stage. */
  profile: string;
  /** The stage the import expects; the manifest must name it (a guard against importing into the wrong stage). */
  stage?: string;
  domain?: string;
  owner?: string;
  /** Their first certificate of the stage waits for an ra-officer. */
  requireApproval?: boolean;
}

export interface ManifestImportResult {
  manifest: ManifestRecord;
  /** Devices the manifest registered. */
  registered: string[];
  /** Devices registered before that moved into the stage. */
  moved: string[];
}

/** One refused entry of a manifest. */
export interface EntryProblem {
  id: string;
  reason: string;
}

export class SupplyChain {
  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly clock: Clock,
  ) {}

  /**
   * Trusts the CA certificates in `pem` to vouch for the manifest signers of
   * `supplier`. All of them must be CAs; the bundle is trusted entirely or
   * not at all.
   */
  async addSupplier(supplier: string, pem: string, actor: string): Promise<SupplierAnchorRecord[]> {
    if (typeof supplier !== 'string' || !SUPPLIER_RE.test(supplier)) throw new ProblemError('bad_request', 'a supplier name is 1-128 letters, digits, spaces and ._@- (as its manifests name it)');
    const blocks = pemDecodeAll(pem).filter((b) => b.label === 'CERTIFICATE');
    if (blocks.length === 0) throw new ProblemError('bad_request', 'no PEM CERTIFICATE in the file');
    const infos = blocks.map((b) => parseCertificate(b.der));
    for (const info of infos) {
      if (!info.isCa || (info.keyUsage.length > 0 && !info.keyUsage.includes('keyCertSign'))) throw new ProblemError('bad_request', `${info.subjectText} is not a CA certificate (basicConstraints cA and keyCertSign); nothing was trusted`);
    }
    const out: SupplierAnchorRecord[] = [];
    for (const info of infos) {
      const rec: SupplierAnchorRecord = { fingerprint: info.fingerprintSha256, supplier, subject: info.subjectText, der: info.der, addedAt: this.clock.now() };
      await this.store.insertSupplierAnchor(rec, { actor, action: 'supplier.add', target: supplier, details: { fingerprint: rec.fingerprint, subject: rec.subject, notAfter: info.notAfter.toISOString() } });
      out.push(rec);
    }
    return out;
  }

  listSuppliers(): Promise<SupplierAnchorRecord[]> {
    return this.store.listSupplierAnchors();
  }

  /** Stops trusting a supplier; manifests imported from it stay (they are history). */
  removeSupplier(supplier: string, actor: string): Promise<number> {
    return this.store.removeSupplier(supplier, { actor, action: 'supplier.remove', target: supplier });
  }

  /** Verifies a manifest without importing it: what `import` would check first. */
  async verify(cms: Uint8Array): Promise<VerifiedManifest> {
    const anchors = (await this.store.listSupplierAnchors()).map((a) => ({ supplier: a.supplier, certificate: parseCertificate(a.der) }));
    return verifyManifest(cms, anchors, this.clock.now());
  }

  /**
   * Imports a signed manifest: verified against the trusted suppliers, never
   * twice (already_exists), and every entry valid for the stage's profile,
   * or nothing changes. A refusal is audited as `manifest.refuse`.
   */
  async importManifest(cms: Uint8Array, o: ManifestImportOptions, actor: string): Promise<ManifestImportResult> {
    try {
      return await this.importVerified(cms, o, actor);
    } catch (e) {
      if (e instanceof ProblemError) {
        let cmsSha256: string | undefined;
        try {
          cmsSha256 = readManifest(cms).cmsSha256;
        } catch {
          /* unreadable: no digest to record */
        }
        await this.store.appendAudit({ actor, action: 'manifest.refuse', target: cmsSha256, details: { code: e.code, reason: manifestRefusalOf(e) ?? e.extra?.reason, detail: e.detail, profile: o.profile, stage: o.stage } });
      }
      throw e;
    }
  }

  private async importVerified(cms: Uint8Array, o: ManifestImportOptions, actor: string): Promise<ManifestImportResult> {
    if (o.stage !== undefined && !STAGE_RE.test(o.stage)) throw new ProblemError('bad_request', 'a stage is lowercase letters, digits and dashes (1-63)');
    const v = await this.verify(cms);
    const m = v.manifest;
    if (o.stage !== undefined && o.stage !== m.stage) throw refuseManifest('wrong_stage', `the manifest hands devices over to stage "${m.stage}", not "${o.stage}"`);
    const seen = await this.store.getManifest(v.digest);
    if (seen) throw new ProblemError('already_exists', `manifest ${v.digest} was imported on ${seen.importedAt.toISOString()} by ${seen.importedBy}; a manifest is imported once`, { reason: 'replayed' });

    const now = this.clock.now();
    const problems: EntryProblem[] = [];
    const newDevices: DeviceRecord[] = [];
    const movedDevices: ManifestImport['movedDevices'] = [];
    const entries: ManifestEntryRecord[] = [];
    for (const e of m.devices) {
      const attributes: Record<string, string> = e.batch !== undefined ? { batch: e.batch } : {};
      try {
        const existing = await this.store.getDevice(e.id);
        if (!existing) {
          const d = this.registry.validateDevice({ id: e.id, profile: o.profile, model: e.model, domain: o.domain, owner: o.owner, requireApproval: o.requireApproval, attributes });
          newDevices.push({ ...d, stage: m.stage });
        } else {
          if (!mayEnroll(existing.state)) throw new ProblemError('conflict', `it is ${existing.state}`);
          if (existing.stage === m.stage) throw new ProblemError('conflict', `it is in stage ${m.stage} already`);
          // The same checks as a registration, on what the device becomes.
          this.registry.validateDevice({ id: e.id, profile: o.profile, model: e.model ?? existing.model, domain: o.domain ?? existing.domain, owner: o.owner ?? existing.owner, sans: existing.sans });
          const patch: DevicePatch = { profile: o.profile, attributes: { ...existing.attributes, ...attributes } };
          if (e.model !== undefined) patch.model = e.model;
          if (o.domain !== undefined) patch.domain = o.domain;
          if (o.owner !== undefined) patch.owner = o.owner;
          if (o.requireApproval !== undefined) patch.requireApproval = o.requireApproval;
          movedDevices.push({ id: e.id, patch, ifState: existing.state, ifStage: existing.stage });
        }
        entries.push({ deviceId: e.id, stage: m.stage, manifestDigest: v.digest, certificateSha256: e.certificateSha256, publicKeySha256: e.publicKeySha256, model: e.model, batch: e.batch });
      } catch (err) {
        if (!(err instanceof ProblemError)) throw err;
        problems.push({ id: e.id, reason: err.detail.replace(/^device "[^"]*": /, '') });
      }
    }
    if (problems.length) {
      const shown = problems.slice(0, 5).map((p) => `${p.id}: ${p.reason}`).join('; ');
      throw new ProblemError('manifest_rejected', `manifest refused (bad_entries): ${problems.length} of ${m.devices.length} devices cannot enter stage ${m.stage} under profile ${o.profile}; nothing was imported (${shown}${problems.length > 5 ? '; ...' : ''})`, { reason: 'bad_entries', entries: problems });
    }

    const record: ManifestRecord = {
      digest: v.digest,
      cmsSha256: v.cmsSha256,
      supplier: v.supplier,
      stage: m.stage,
      profile: o.profile,
      domain: o.domain,
      owner: o.owner,
      signerSubject: v.signer.subjectText,
      signerFingerprint: v.signer.fingerprintSha256,
      signedAt: v.signingTime,
      createdAt: m.createdAt,
      importedAt: now,
      importedBy: actor,
      deviceCount: m.devices.length,
      cms: v.sig.der,
    };
    await this.store.importManifest(
      { manifest: record, entries, newDevices, movedDevices, now },
      {
        actor,
        action: 'manifest.import',
        target: v.digest,
        details: { supplier: v.supplier, stage: m.stage, profile: o.profile, domain: o.domain, owner: o.owner, devices: m.devices.length, registered: newDevices.length, moved: movedDevices.length, signer: v.signer.subjectText, signerFingerprint: v.signer.fingerprintSha256 },
      },
    );
    return { manifest: record, registered: newDevices.map((d) => d.id), moved: movedDevices.map((d) => d.id) };
  }

  async manifest(digest: string): Promise<{ manifest: ManifestRecord; entries: ManifestEntryRecord[] }> {
    const rec = await this.store.getManifest(digest.toLowerCase());
    if (!rec) throw new ProblemError('not_found', `no imported manifest ${digest}`);
    return { manifest: rec, entries: await this.store.listManifestEntries({ manifestDigest: rec.digest }) };
  }

  listManifests(q: { supplier?: string; limit?: number } = {}): Promise<ManifestRecord[]> {
    return this.store.listManifests(q);
  }

  /** A device's chain of identities and the manifest entries that admitted it. */
  async identities(deviceId: string) {
    const device = await this.registry.device(deviceId);
    return { device, identities: await this.store.listDeviceIdentities(device.id), entries: await this.store.listManifestEntries({ deviceId: device.id }) };
  }
}
