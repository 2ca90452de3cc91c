/**
 * The device registry (RA): which devices may get which certificate. Devices,
 * one-time enrollment secrets, manufacturer trust anchors, enrollment orders
 * and approvals. No I/O of its own: it takes a Store.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Authority } from '../authority/authority.js';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { DEVICE_STATES, type AuditEntry, type AuditInput, type DevicePatch, type DeviceQuery, type DeviceRecord, type DeviceState, type DeviceUpdateGuard, type OrderRecord, type PendingEnrollmentRecord, type Store, type TrustAnchorRecord } from '../store/store.js';
import { checkTransition, mayGetSecret } from './lifecycle.js';
import { parseCertificate } from '../x509/cert_info.js';
import { formatSan, parseSan } from '../x509/general_names.js';
import { pemDecodeAll } from '../x509/pem.js';
import type { SecretVault } from './secret_vault.js';

export interface RegistryConfig {
  /** Hours a one-time enrollment secret stays valid. */
  secretTtlHours: number;
}

/** What an operator (or an import row) gives to register a device. */
export interface DeviceInput {
  id: string;
  profile: string;
  model?: string;
  domain?: string;
  owner?: string;
  /** Extra names: "dns:..." / "ip:..." */
  sans?: string[];
  orderId?: string;
  requireApproval?: boolean;
  attributes?: Record<string, string>;
}

// serialNumber is a PrintableString (X.520): keep ids to a safe subset.
const DEVICE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const DOMAIN_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const LABEL_RE = /^[A-Za-z0-9 ._@-]{1,128}$/;

export const DOMAIN_URI_PREFIX = 'urn:fleetpki:domain:';

export function domainUri(domain: string): string {
  return `${DOMAIN_URI_PREFIX}${domain}`;
}

export const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

function checkLabels(v: { model?: string; owner?: string }, bad: (why: string) => ProblemError): void {
  for (const [k, x] of [['model', v.model], ['owner', v.owner]] as const) {
    if (x !== undefined && !LABEL_RE.test(x)) throw bad(`${k} may hold letters, digits, spaces and ._@- (1-128)`);
  }
}

/**
 * Extra names certified for a device: dns:, ip: and uri: (an OPC UA
 * applicationUri, say). A URI in the domain namespace is refused: the domain
 * is certified from the record's domain alone, or a device could claim a
 * second domain.
 */
function normaliseExtraNames(names: string[], bad: (why: string) => ProblemError): string[] {
  return names.map((s) => {
    const san = parseSan(s);
    if (san.type === 'email') throw bad(`extra names are dns:, ip: or uri:; got ${s}`);
    if (san.type === 'uri' && san.value.toLowerCase().startsWith(DOMAIN_URI_PREFIX)) throw bad(`${s} is a domain name; set the device's domain instead`);
    return formatSan(san);
  });
}

export class Registry {
  constructor(
    private readonly store: Store,
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly config: RegistryConfig,
    /** Seals new secrets for CMP; without one, secrets serve EST only. */
    private readonly vault?: SecretVault,
  ) {}

  /** Validates and normalises a registration; throws bad_request / not_found. */
  validateDevice(input: DeviceInput): DeviceRecord {
    const bad = (why: string) => new ProblemError('bad_request', `device "${input.id ?? ''}": ${why}`);
    if (typeof input.id !== 'string' || !DEVICE_ID_RE.test(input.id)) throw bad('the id must be 1-64 letters, digits, dots, colons, dashes or underscores, starting with a letter or digit');
    if (input.domain !== undefined && !DOMAIN_RE.test(input.domain)) throw bad('the domain must be lowercase letters, digits, dots and dashes');
    checkLabels(input, bad);
    const sans = normaliseExtraNames(input.sans ?? [], bad);
    this.checkProfileFits(input.profile, input.domain, sans, bad);
    const now = this.clock.now();
    return {
      id: input.id,
      profile: input.profile,
      model: input.model,
      domain: input.domain,
      owner: input.owner,
      state: 'registered',
      sans,
      orderId: input.orderId,
      requireApproval: input.requireApproval ?? false,
      attributes: input.attributes ?? {},
      createdAt: now,
      updatedAt: now,
    };
  }

  /**
   * A device is only registered for a profile it can enroll under: the
   * profile must allow a CN subject, a URI name when the device has a domain,
   * and the type of each extra name. (Refusing now beats failing every
   * enrollment later.)
   */
  private checkProfileFits(profileName: string, domain: string | undefined, sans: string[], bad: (why: string) => ProblemError): void {
    const profile = this.authority.profile(profileName); // not_found for an unknown profile
    if (!profile.subject.allowed.includes('CN')) throw bad(`profile ${profileName} does not allow a CN, which device certificates carry`);
    const types = new Set(sans.map((n) => n.slice(0, n.indexOf(':'))));
    if (domain) types.add('uri');
    for (const t of types) if (!profile.san.allowed.includes(t as never)) throw bad(`profile ${profileName} does not allow ${t} names${t === 'uri' && domain ? ' (the domain is certified as a URI)' : ''}`);
  }

  private async checkOrderFits(d: DeviceRecord): Promise<void> {
    if (!d.orderId) return;
    const o = await this.store.getOrder(d.orderId);
    if (!o) throw new ProblemError('not_found', `no enrollment order ${d.orderId}`);
    if (o.profile !== d.profile) throw new ProblemError('policy_violation', `order ${o.id} is for profile ${o.profile}, not ${d.profile}`);
    if (o.model && o.model !== d.model) throw new ProblemError('policy_violation', `order ${o.id} is for model ${o.model}`);
    if (o.domain && o.domain !== d.domain) throw new ProblemError('policy_violation', `order ${o.id} is for domain ${o.domain}`);
  }

  /** Registers one device; with `withSecret`, returns a one-time enrollment secret (shown once). */
  async register(input: DeviceInput, actor: string, withSecret = false): Promise<{ device: DeviceRecord; secret?: string }> {
    const device = this.validateDevice(input);
    await this.checkOrderFits(device);
    await this.store.insertDevice(device, { actor, action: 'device.register', target: device.id, details: { profile: device.profile, model: device.model, domain: device.domain, owner: device.owner } });
    const secret = withSecret ? await this.newSecret(device.id, actor) : undefined;
    return { device, secret };
  }

  /**
   * Registers many devices; bad rows are reported, not fatal. Rows are
   * inserted in batches of `batchSize`, one transaction each.
   */
  async importDevices(
    rows: Array<{ line: number; input: DeviceInput }>,
    actor: string,
    onProgress?: (done: number, total: number) => void,
    batchSize = 1000,
  ): Promise<{ inserted: number; existing: string[]; rejected: Array<{ line: number; id?: string; reason: string }> }> {
    const rejected: Array<{ line: number; id?: string; reason: string }> = [];
    const existing: string[] = [];
    let inserted = 0;
    const seen = new Set<string>();
    for (let i = 0; i < rows.length; i += batchSize) {
      const batch: DeviceRecord[] = [];
      for (const { line, input } of rows.slice(i, i + batchSize)) {
        try {
          const d = this.validateDevice(input);
          if (seen.has(d.id)) throw new ProblemError('bad_request', `device "${d.id}" appears twice in the file`);
          if (d.orderId) await this.checkOrderFits(d);
          seen.add(d.id);
          batch.push(d);
        } catch (e) {
          if (!(e instanceof ProblemError)) throw e;
          rejected.push({ line, id: typeof input?.id === 'string' ? input.id : undefined, reason: e.detail });
        }
      }
      if (batch.length) {
        const r = await this.store.insertDevices(batch, { actor, action: 'device.import', details: { count: batch.length, first: batch[0].id, last: batch[batch.length - 1].id } });
        inserted += r.inserted;
        existing.push(...r.existing);
      }
      onProgress?.(Math.min(i + batchSize, rows.length), rows.length);
    }
    return { inserted, existing, rejected };
  }

  /** A new one-time enrollment secret for a device; replaces any earlier one. */
  async newSecret(deviceId: string, actor: string): Promise<string> {
    const device = await this.device(deviceId);
    if (!mayGetSecret(device.state)) throw new ProblemError('forbidden', `device ${deviceId} is ${device.state}`);
    const secret = randomBytes(18).toString('base64url');
    const now = this.clock.now();
    const sealed = await this.vault?.seal(deviceId, secret);
    await this.store.putEnrollmentSecret(
      { deviceId, secretHash: hashSecret(secret), createdAt: now, expiresAt: new Date(now.getTime() + this.config.secretTtlHours * 3_600_000), sealed },
      { actor, action: 'device.secret.create', target: deviceId, details: { expiresInHours: this.config.secretTtlHours } },
    );
    return secret;
  }

  async device(id: string): Promise<DeviceRecord> {
    const d = await this.store.getDevice(id);
    if (!d) throw new ProblemError('not_found', `no device ${id}`);
    return d;
  }

  /** The audit entries about a device and about each of its certificates, oldest first (the console's device history). */
  async auditTrail(id: string): Promise<AuditEntry[]> {
    const d = await this.device(id);
    const certs = await this.store.listCertificates({ deviceId: d.id, limit: 1000 });
    const pages = await Promise.all([d.id, ...certs.map((c) => c.serial)].map((target) => this.store.listAudit({ target, limit: 1000 })));
    const bySeq = new Map<number, AuditEntry>();
    for (const e of pages.flat()) bySeq.set(e.seq, e);
    return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  }

  listDevices(q: DeviceQuery): Promise<DeviceRecord[]> {
    return this.store.listDevices(q);
  }

  /**
   * Changes a device record. A state change must be a transition of the
   * lifecycle (lifecycle.ts), checked against the state read here and
   * applied only if the device is still in it; otherwise `conflict` and
   * nothing changes. Setting the state the device already has changes nothing.
   */
  async updateDevice(id: string, patch: DevicePatch, actor: string): Promise<DeviceRecord> {
    const bad = (why: string) => new ProblemError('bad_request', `device "${id}": ${why}`);
    if (patch.state !== undefined && !DEVICE_STATES.includes(patch.state)) throw bad(`the state is one of ${DEVICE_STATES.join(', ')}`);
    if (patch.domain && !DOMAIN_RE.test(patch.domain)) throw bad('the domain must be lowercase letters, digits, dots and dashes');
    checkLabels({ model: patch.model ?? undefined, owner: patch.owner ?? undefined }, bad);
    const clean: DevicePatch = { ...patch, sans: patch.sans ? normaliseExtraNames(patch.sans, bad) : undefined };
    if (clean.sans === undefined) delete clean.sans;
    const d = await this.device(id);
    if (patch.profile !== undefined || patch.domain !== undefined || patch.sans !== undefined) {
      this.checkProfileFits(patch.profile ?? d.profile, patch.domain === null ? undefined : (patch.domain ?? d.domain), clean.sans ?? d.sans, bad);
    }
    let guard: DeviceUpdateGuard | undefined;
    if (clean.state === d.state) delete clean.state;
    else if (clean.state !== undefined) guard = { ifState: d.state, reregister: !!checkTransition(d, clean.state).reregister };
    if (Object.keys(patch).length > 0 && Object.keys(clean).length === 0) return d; // only the state it already has
    const details: Record<string, unknown> = { ...clean, ...(guard ? { from: d.state } : {}), ...(guard?.reregister ? { reregister: true } : {}) };
    return this.store.updateDevice(id, clean, this.clock.now(), { actor, action: 'device.update', target: id, details }, guard);
  }

  /**
   * Checks the names and profile of a record change against the device as
   * it is (bad_request, not_found for an unknown profile), without applying
   * it: for changes made by another path (a transfer).
   */
  checkPatch(d: DeviceRecord, patch: DevicePatch): void {
    const bad = (why: string) => new ProblemError('bad_request', `device "${d.id}": ${why}`);
    if (patch.domain && !DOMAIN_RE.test(patch.domain)) throw bad('the domain must be lowercase letters, digits, dots and dashes');
    checkLabels({ model: patch.model ?? undefined, owner: patch.owner ?? undefined }, bad);
    if (patch.profile !== undefined || patch.domain !== undefined) {
      this.checkProfileFits(patch.profile ?? d.profile, patch.domain === null ? undefined : (patch.domain ?? d.domain), d.sans, bad);
    }
  }

  /** A lifecycle state change (see lifecycle.ts for the allowed ones). */
  async setState(id: string, state: DeviceState, actor: string): Promise<DeviceRecord> {
    return this.updateDevice(id, { state }, actor);
  }

  /**
   * Trusts the CA certificates in `pem` to vouch for devices (IDevID
   * bootstrap). Every certificate must be a CA; returns the anchors added.
   */
  async addManufacturerCa(pem: string, actor: string): Promise<TrustAnchorRecord[]> {
    const blocks = pemDecodeAll(pem).filter((b) => b.label === 'CERTIFICATE');
    if (blocks.length === 0) throw new ProblemError('bad_request', 'no PEM CERTIFICATE in the file');
    // Check the whole bundle first: it is trusted entirely or not at all.
    const infos = blocks.map((b) => parseCertificate(b.der));
    for (const info of infos) {
      if (!info.isCa || !info.keyUsage.includes('keyCertSign')) throw new ProblemError('bad_request', `${info.subjectText} is not a CA certificate (basicConstraints cA and keyCertSign); nothing was trusted`);
    }
    const out: TrustAnchorRecord[] = [];
    for (const info of infos) {
      const rec: TrustAnchorRecord = { fingerprint: info.fingerprintSha256, purpose: 'manufacturer', subject: info.subjectText, der: info.der, addedAt: this.clock.now() };
      await this.store.insertTrustAnchor(rec, { actor, action: 'trust.add', target: rec.fingerprint, details: { purpose: 'manufacturer', subject: rec.subject, notAfter: info.notAfter.toISOString() } });
      out.push(rec);
    }
    return out;
  }

  listManufacturerCas(): Promise<TrustAnchorRecord[]> {
    return this.store.listTrustAnchors('manufacturer');
  }

  async removeManufacturerCa(fingerprint: string, actor: string): Promise<void> {
    await this.store.removeTrustAnchor(fingerprint.toLowerCase().replace(/:/g, ''), { actor, action: 'trust.remove', target: fingerprint });
  }

  async createOrder(o: { profile: string; quantity: number; model?: string; domain?: string; validDays?: number }, actor: string): Promise<OrderRecord> {
    this.authority.profile(o.profile);
    if (!Number.isInteger(o.quantity) || o.quantity < 1) throw new ProblemError('bad_request', 'quantity must be a positive whole number');
    if (o.domain !== undefined && !DOMAIN_RE.test(o.domain)) throw new ProblemError('bad_request', 'bad domain');
    if (o.model !== undefined && !LABEL_RE.test(o.model)) throw new ProblemError('bad_request', 'bad model');
    const now = this.clock.now();
    const rec: OrderRecord = {
      id: randomUUID(),
      profile: o.profile,
      model: o.model,
      domain: o.domain,
      quantity: o.quantity,
      used: 0,
      expiresAt: o.validDays ? new Date(now.getTime() + o.validDays * 86_400_000) : undefined,
      createdAt: now,
    };
    await this.store.insertOrder(rec, { actor, action: 'order.create', target: rec.id, details: { profile: rec.profile, quantity: rec.quantity, model: rec.model, domain: rec.domain } });
    return rec;
  }

  listOrders(): Promise<OrderRecord[]> {
    return this.store.listOrders();
  }

  listPending(status?: PendingEnrollmentRecord['status']): Promise<PendingEnrollmentRecord[]> {
    return this.store.listPendingEnrollments(status);
  }

  /** An ra-officer's decision on a waiting enrollment; the device's next retry is issued (or refused). */
  decide(id: string, approve: boolean, actor: string): Promise<PendingEnrollmentRecord> {
    const status = approve ? 'approved' : 'rejected';
    const audit: AuditInput = { actor, action: `enrollment.${approve ? 'approve' : 'reject'}`, target: id };
    return this.store.decidePendingEnrollment(id, status, actor, this.clock.now(), audit);
  }
}
