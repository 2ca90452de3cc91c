/**
 * Lifecycle events (issue 8): what happened to a device drives what happens
 * to its certificates. One table says, for each event, the state the device
 * goes to and the revocation reason (RFC 5280 §5.3.1); `report` applies it
 * in one store transaction (revocations, device change, history entry,
 * audit entry), whoever reported it: an operator over the API or the CLI, or
 * a device-management system over the signed webhook.
 *
 *   lost | stolen            → suspended, certificateHold (or revoked, keyCompromise)
 *   compromised              → revoked, keyCompromise with an invalidity date
 *   decommissioned | retired → retired, cessationOfOperation (never enrolls again)
 *   replaced                 → retired, superseded
 *   transferred              → registered for the new owner/domain, affiliationChanged
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { DEVICE_EVENT_KINDS, type DeviceEventKind, type DeviceEventRecord, type DevicePatch, type DeviceRecord, type DeviceState, type RevocationReason, type Store } from '../store/store.js';
import { checkTransition } from './lifecycle.js';
import type { Registry } from './registry.js';

/** Events a device-management system or an operator reports (transfer has its own call). */
export const REPORTABLE_EVENTS = DEVICE_EVENT_KINDS.filter((k) => k !== 'transferred');
export type ReportableEvent = Exclude<DeviceEventKind, 'transferred'>;

interface EventRule {
  /** The state the device goes to, by revocation reason. */
  state: (reason: RevocationReason) => DeviceState;
  defaultReason: RevocationReason;
  /** Reasons the reporter may choose instead of the default. */
  reasons: readonly RevocationReason[];
}

const lostRule: EventRule = { state: (r) => (r === 'certificateHold' ? 'suspended' : 'revoked'), defaultReason: 'certificateHold', reasons: ['certificateHold', 'keyCompromise'] };

export const EVENT_RULES: Readonly<Record<ReportableEvent, EventRule>> = {
  lost: lostRule,
  stolen: lostRule,
  compromised: { state: () => 'revoked', defaultReason: 'keyCompromise', reasons: ['keyCompromise'] },
  decommissioned: { state: () => 'retired', defaultReason: 'cessationOfOperation', reasons: ['cessationOfOperation'] },
  retired: { state: () => 'retired', defaultReason: 'cessationOfOperation', reasons: ['cessationOfOperation'] },
  replaced: { state: () => 'retired', defaultReason: 'superseded', reasons: ['superseded'] },
};

export function isReportableEvent(s: unknown): s is ReportableEvent {
  return typeof s === 'string' && (REPORTABLE_EVENTS as readonly string[]).includes(s);
}

export interface EventReport {
  deviceId: string;
  event: string;
  /** lost/stolen: keyCompromise instead of certificateHold. */
  reason?: string;
  /** compromised: when the key was (suspected to be) compromised; default now. */
  invalidityDate?: Date;
  /** replaced: the id of the device that replaces it. */
  replacedBy?: string;
  note?: string;
  actor: string;
  source: DeviceEventRecord['source'];
  /** A webhook's delivery, spent in the same transaction (replay protection). */
  delivery?: { source: string; id: string };
}

export interface TransferRequest {
  deviceId: string;
  owner?: string;
  domain?: string;
  /** A new profile for the new owner; default: the current one. */
  profile?: string;
  /** Also make a one-time enrollment secret for the re-enrollment (returned once). */
  secret?: boolean;
  note?: string;
  actor: string;
  source: DeviceEventRecord['source'];
}

const NOTE_MAX = 1024;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/** States a device can be transferred from: not revoked (re-register it first) nor retired. */
const TRANSFERABLE: readonly DeviceState[] = ['registered', 'active', 'suspended'];

export class DeviceLifecycle {
  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly clock: Clock,
  ) {}

  /** Applies a reported event; returns the device as it is now and its history entry. */
  async report(r: EventReport): Promise<{ device: DeviceRecord; event: DeviceEventRecord }> {
    const bad = (why: string) => new ProblemError('bad_request', why);
    if (!isReportableEvent(r.event)) throw bad(`"${r.event}" is not a lifecycle event (events: ${REPORTABLE_EVENTS.join(', ')})`);
    const rule = EVENT_RULES[r.event];
    const reason = (r.reason ?? rule.defaultReason) as RevocationReason;
    if (!rule.reasons.includes(reason)) throw bad(`a ${r.event} device is revoked with ${rule.reasons.join(' or ')}, not ${r.reason}`);
    if (r.note !== undefined && (typeof r.note !== 'string' || r.note.length > NOTE_MAX)) throw bad(`a note is text of at most ${NOTE_MAX} characters`);
    if (r.replacedBy !== undefined && (r.event !== 'replaced' || !ID_RE.test(r.replacedBy))) throw bad('replacedBy names a device id, for a replaced event only');
    const now = this.clock.now();
    let invalidityDate: Date | undefined;
    if (r.invalidityDate !== undefined) {
      if (reason !== 'keyCompromise') throw bad('an invalidity date is given with keyCompromise only');
      if (isNaN(r.invalidityDate.getTime())) throw bad('invalidityDate is not a date');
      if (r.invalidityDate > now) throw bad('invalidityDate is in the future');
      invalidityDate = r.invalidityDate;
    } else if (r.event === 'compromised') invalidityDate = now;

    const device = await this.registry.device(r.deviceId);
    const to = rule.state(reason);
    // Reporting the state a device is in already (lost twice) changes no state but still revokes and is recorded.
    if (to !== device.state) checkTransition(device, to);
    const details: Record<string, unknown> = { note: r.note, replacedBy: r.replacedBy, invalidityDate: invalidityDate?.toISOString(), deliveryId: r.delivery?.id };
    const event: DeviceEventRecord = { id: randomUUID(), deviceId: device.id, kind: r.event, at: now, actor: r.actor, source: r.source, fromState: device.state, toState: to, reason, revokedSerials: [], details: compact(details) };
    return this.store.recordDeviceEvent(
      {
        event,
        ifState: device.state,
        ifCurrentSerial: device.currentSerial,
        revocation: { revokedAt: now, reason, invalidityDate },
        patch: to !== device.state ? { state: to } : {},
        // A retired device's secret and waiting enrollments are of no use any more.
        reregister: false,
        delivery: r.delivery ? { ...r.delivery, receivedAt: now } : undefined,
      },
      { actor: r.actor, action: `device.event.${r.event}`, target: device.id, details: { from: device.state, to, reason, source: r.source, ...compact(details) } },
    );
  }

  /**
   * A change of owner or operational domain: the device's certificates are
   * revoked (affiliationChanged), the record gets the new owner/domain and
   * starts over as registered, so it re-enrolls (EST, CMP) for its new
   * owner: with a new one-time secret, its manufacturer certificate, or
   * after approval, as its policy says.
   */
  async transfer(t: TransferRequest): Promise<{ device: DeviceRecord; event: DeviceEventRecord; secret?: string }> {
    if (t.owner === undefined && t.domain === undefined && t.profile === undefined) throw new ProblemError('bad_request', 'a transfer names a new owner, domain or profile');
    if (t.note !== undefined && (typeof t.note !== 'string' || t.note.length > NOTE_MAX)) throw new ProblemError('bad_request', `a note is text of at most ${NOTE_MAX} characters`);
    const device = await this.registry.device(t.deviceId);
    if (!TRANSFERABLE.includes(device.state)) throw new ProblemError('conflict', `device ${device.id} is ${device.state} and cannot be transferred (${device.state === 'retired' ? 'retired is final' : 're-register it first'})`);
    const patch: DevicePatch = { state: 'registered' };
    if (t.owner !== undefined) patch.owner = t.owner;
    if (t.domain !== undefined) patch.domain = t.domain;
    if (t.profile !== undefined) patch.profile = t.profile;
    // Same checks as any record change (names, profile fit), without applying it.
    this.registry.checkPatch(device, patch);
    const now = this.clock.now();
    const details = compact({ fromOwner: device.owner ?? null, toOwner: t.owner ?? device.owner ?? null, fromDomain: device.domain ?? null, toDomain: t.domain ?? device.domain ?? null, fromProfile: device.profile, toProfile: t.profile ?? device.profile, note: t.note });
    const event: DeviceEventRecord = { id: randomUUID(), deviceId: device.id, kind: 'transferred', at: now, actor: t.actor, source: t.source, fromState: device.state, toState: 'registered', reason: 'affiliationChanged', revokedSerials: [], details };
    const r = await this.store.recordDeviceEvent(
      { event, ifState: device.state, ifCurrentSerial: device.currentSerial, revocation: { revokedAt: now, reason: 'affiliationChanged' }, patch, reregister: true },
      { actor: t.actor, action: 'device.transfer', target: device.id, details: { from: device.state, source: t.source, ...details } },
    );
    const secret = t.secret ? await this.registry.newSecret(device.id, t.actor) : undefined;
    return { ...r, secret };
  }

  history(deviceId: string): Promise<DeviceEventRecord[]> {
    return this.store.listDeviceEvents(deviceId);
  }
}

function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}
