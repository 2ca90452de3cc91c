/**
 * The JSON shapes of records, shared by the API and the CLI's --json output so
 * both always print the same fields.
 */
import type { CaRecord, CertificateRecord, DeviceEventRecord, DeviceIdentityRecord, DeviceRecord, ManifestEntryRecord, ManifestRecord, OperatorCertificateRecord, OrderRecord, PendingEnrollmentRecord, StaleDevice, SupplierAnchorRecord, TrustAnchorRecord, WebhookRecord } from '../../store/store.js';
import type { VerifiedManifest } from '../../registry/supply_cms.js';
import type { ManifestImportResult } from '../../registry/supply_chain.js';
import { keyInfoName } from '../../x509/algorithms.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { pemEncode } from '../../x509/pem.js';

export function caJson(ca: CaRecord) {
  const info = parseCertificate(ca.certDer);
  return {
    name: ca.name,
    kind: ca.kind,
    parent: ca.parentName ?? null,
    subject: ca.subject,
    serial: info.serial,
    notBefore: ca.notBefore.toISOString(),
    notAfter: ca.notAfter.toISOString(),
    keyOnline: !!ca.keyRef,
    /** RFC 7512 URI of a token key, for other software (OpenSSL's pkcs11 engine) to use it too. */
    keyUri: ca.keyRef?.startsWith('pkcs11:') ? ca.keyRef : null,
    keyAlgorithm: keyInfoName(info.key),
    pathLen: info.pathLen ?? null,
    fingerprintSha256: info.fingerprintSha256,
    pem: pemEncode('CERTIFICATE', ca.certDer),
  };
}

export function certJson(c: CertificateRecord, withPem = true) {
  return {
    serial: c.serial,
    issuerCa: c.issuerCa,
    profile: c.profile,
    subject: c.subject,
    sans: c.sans,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    status: c.status,
    revokedAt: c.revocation?.revokedAt.toISOString() ?? null,
    revocationReason: c.revocation?.reason ?? null,
    invalidityDate: c.revocation?.invalidityDate?.toISOString() ?? null,
    requester: c.requester,
    createdAt: c.createdAt.toISOString(),
    ...(withPem ? { pem: pemEncode('CERTIFICATE', c.der) } : {}),
  };
}

export function deviceJson(d: DeviceRecord) {
  return {
    id: d.id,
    state: d.state,
    profile: d.profile,
    model: d.model ?? null,
    domain: d.domain ?? null,
    owner: d.owner ?? null,
    sans: d.sans,
    orderId: d.orderId ?? null,
    requireApproval: d.requireApproval,
    currentSerial: d.currentSerial ?? null,
    stage: d.stage ?? null,
    attributes: d.attributes,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

export function orderJson(o: OrderRecord) {
  return { id: o.id, profile: o.profile, model: o.model ?? null, domain: o.domain ?? null, quantity: o.quantity, used: o.used, expiresAt: o.expiresAt?.toISOString() ?? null, createdAt: o.createdAt.toISOString() };
}

export function pendingJson(p: PendingEnrollmentRecord) {
  return { id: p.id, deviceId: p.deviceId, status: p.status, spkiSha256: p.spkiSha256, createdAt: p.createdAt.toISOString(), decidedAt: p.decidedAt?.toISOString() ?? null, decidedBy: p.decidedBy ?? null };
}

export function anchorJson(t: TrustAnchorRecord) {
  const info = parseCertificate(t.der);
  return { fingerprint: t.fingerprint, purpose: t.purpose, subject: t.subject, notAfter: info.notAfter.toISOString(), addedAt: t.addedAt.toISOString() };
}

export function deviceEventJson(e: DeviceEventRecord) {
  return { id: e.id, kind: e.kind, at: e.at.toISOString(), actor: e.actor, source: e.source, fromState: e.fromState, toState: e.toState, reason: e.reason ?? null, revokedSerials: e.revokedSerials, details: e.details, auditSeq: e.auditSeq ?? null };
}

export function webhookJson(w: WebhookRecord) {
  return { name: w.name, direction: w.direction, url: w.url ?? null, thresholdsDays: w.thresholdsDays, createdAt: w.createdAt.toISOString() };
}

export function operatorCertJson(o: OperatorCertificateRecord) {
  return { serial: o.serial, name: o.name, role: o.role, createdAt: o.createdAt.toISOString() };
}

/** A device that stopped renewing, with the time it should have renewed by. */
export function staleDeviceJson(s: StaleDevice & { status: 'overdue' | 'expired' }, renewAtShare: number) {
  const c = s.certificate;
  const renewBy = new Date(c.notBefore.getTime() + Math.round((c.notAfter.getTime() - c.notBefore.getTime()) * renewAtShare));
  return { id: s.device.id, state: s.device.state, status: s.status, serial: c.serial, notAfter: c.notAfter.toISOString(), renewBy: renewBy.toISOString() };
}

export function supplierJson(a: SupplierAnchorRecord) {
  const info = parseCertificate(a.der);
  return { supplier: a.supplier, fingerprint: a.fingerprint, subject: a.subject, notAfter: info.notAfter.toISOString(), addedAt: a.addedAt.toISOString() };
}

export function manifestJson(m: ManifestRecord) {
  return {
    digest: m.digest,
    cmsSha256: m.cmsSha256,
    supplier: m.supplier,
    stage: m.stage,
    profile: m.profile,
    domain: m.domain ?? null,
    owner: m.owner ?? null,
    signer: m.signerSubject,
    signerFingerprint: m.signerFingerprint,
    signedAt: m.signedAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
    importedAt: m.importedAt.toISOString(),
    importedBy: m.importedBy,
    devices: m.deviceCount,
  };
}

export function manifestEntryJson(e: ManifestEntryRecord) {
  return {
    deviceId: e.deviceId,
    stage: e.stage,
    manifest: e.manifestDigest,
    certificateSha256: e.certificateSha256 ?? null,
    publicKeySha256: e.publicKeySha256 ?? null,
    model: e.model ?? null,
    batch: e.batch ?? null,
    usedAt: e.usedAt?.toISOString() ?? null,
    usedSerial: e.usedSerial ?? null,
  };
}

/** One identity of a device's chain; `current` marks the device's current certificate. */
export function identityJson(i: DeviceIdentityRecord, currentSerial?: string) {
  return {
    kind: i.kind,
    stage: i.stage ?? null,
    serial: i.serial,
    fingerprintSha256: i.fingerprint,
    subject: i.subject,
    issuer: i.issuer,
    notBefore: i.notBefore.toISOString(),
    notAfter: i.notAfter.toISOString(),
    recordedAt: i.recordedAt.toISOString(),
    current: i.kind === 'certificate' && i.serial === currentSerial,
    ...(i.der ? { pem: pemEncode('CERTIFICATE', i.der) } : {}),
  };
}

export function deviceIdentitiesJson(r: { device: DeviceRecord; identities: DeviceIdentityRecord[]; entries: ManifestEntryRecord[] }) {
  return {
    device: r.device.id,
    stage: r.device.stage ?? null,
    currentSerial: r.device.currentSerial ?? null,
    identities: r.identities.map((i) => identityJson(i, r.device.currentSerial)),
    entries: r.entries.map(manifestEntryJson),
  };
}

/** What a manifest check found, before any import. */
export function verifiedManifestJson(v: VerifiedManifest) {
  return {
    digest: v.digest,
    supplier: v.supplier,
    stage: v.manifest.stage,
    createdAt: v.manifest.createdAt.toISOString(),
    signedAt: v.signingTime?.toISOString() ?? null,
    signer: v.signer.subjectText,
    chain: v.path.map((c) => c.subjectText),
    devices: v.manifest.devices.map((d) => ({ id: d.id, certificateSha256: d.certificateSha256 ?? null, publicKeySha256: d.publicKeySha256 ?? null, model: d.model ?? null, batch: d.batch ?? null })),
  };
}

export function manifestImportJson(r: ManifestImportResult) {
  return { manifest: manifestJson(r.manifest), registered: r.registered, moved: r.moved };
}
