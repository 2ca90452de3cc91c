/**
 * The device lifecycle state machine (issue 3), in one place: which state
 * changes an operator may make, and which states may enroll. The registry
 * checks every change against TRANSITIONS; enrollment (registered or active
 * → active) is the only way into `active` the first time. Lifecycle events
 * (lost, compromised, end of life) are meant to be built on top of this table.
 *
 *   registered → suspended | revoked | retired   (→ active only by enrolling)
 *   active     → suspended | revoked | retired   (→ active again by renewing)
 *   suspended  → active (has a certificate) | registered (has none) | revoked | retired
 *   revoked    → registered (explicit re-registration) | retired
 *   retired    → nothing: terminal, it never enrolls again
 */
import { ProblemError } from '../errors.js';
import type { DeviceRecord, DeviceState } from '../store/store.js';

/** An allowed change and the condition it needs, if any. */
export interface Transition {
  /** 'certificate': only a device with a current certificate; 'none': only one without. */
  needs?: 'certificate' | 'none';
  /**
   * Start over as a new registration: the current certificate is unlinked
   * (kept in the history), the unused enrollment secret is dropped and
   * enrollments waiting for approval are rejected, so nothing granted before
   * the revocation can be used afterwards.
   */
  reregister?: true;
}

/** State changes an operator may make (`device set-state`, PATCH /devices/{id}). */
export const TRANSITIONS: Readonly<Record<DeviceState, Readonly<Partial<Record<DeviceState, Transition>>>>> = {
  registered: {
    suspended: {}, // hold a device back from enrolling
    revoked: {}, // its identity is compromised before it ever enrolled
    retired: {}, // withdrawn before it was put to work
  },
  active: {
    suspended: {}, // temporarily out of service (lost, under investigation)
    revoked: {}, // compromised
    retired: {}, // end of life
  },
  suspended: {
    active: { needs: 'certificate' }, // resume a device that has a certificate
    registered: { needs: 'none' }, // resume a device that never enrolled
    revoked: {}, // compromised
    retired: {}, // end of life
  },
  revoked: {
    registered: { reregister: true }, // explicit re-registration, e.g. after the manufacturer reflashed it
    retired: {}, // end of life
  },
  // Terminal: a retired device never enrolls again.
  retired: {},
};

/** States in which a device may enroll or renew; enrolling makes it active. */
export const ENROLLABLE_STATES: readonly DeviceState[] = ['registered', 'active'];

export function mayEnroll(state: DeviceState): boolean {
  return ENROLLABLE_STATES.includes(state);
}

/** A new enrollment secret is pointless (and refused) for a device that may never enroll again without re-registration. */
export function mayGetSecret(state: DeviceState): boolean {
  return state !== 'revoked' && state !== 'retired';
}

/**
 * Checks an operator's state change; returns the transition, or throws
 * `conflict` naming what is allowed instead. Setting the state a device
 * already has is no transition: the caller leaves the state alone.
 */
export function checkTransition(device: Pick<DeviceRecord, 'id' | 'state' | 'currentSerial'>, to: DeviceState): Transition {
  const from = device.state;
  const t = TRANSITIONS[from][to];
  if (!t) {
    const allowed = Object.keys(TRANSITIONS[from]);
    const how = to === 'active' && from === 'registered' ? '; a device becomes active by enrolling' : '';
    throw new ProblemError('conflict', `device ${device.id} is ${from} and cannot be set ${to} (${allowed.length ? `allowed: ${allowed.join(', ')}` : `${from} is final`})${how}`);
  }
  if (t.needs === 'certificate' && !device.currentSerial) {
    throw new ProblemError('conflict', `device ${device.id} has no certificate and cannot be set active; it becomes active by enrolling (set it registered to resume it)`);
  }
  if (t.needs === 'none' && device.currentSerial) {
    throw new ProblemError('conflict', `device ${device.id} has a certificate (${device.currentSerial}); resume it as active`);
  }
  return t;
}
