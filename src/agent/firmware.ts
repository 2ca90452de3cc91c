/**
 * The device's firmware check, on the agent's caches: the fleet roots in
 * trust.pem, the issuing CAs, and the cached CRLs. A CRL the cache lacks
 * (the firmware CA's, which the device's own chain does not name) is fetched
 * from the signer's distribution point once and kept fresh from then on, so
 * a device that has been online once can check updates offline.
 *
 * firmware.json in the state directory remembers what is installed:
 *   { model, installedVersion, rollbackFloor, installedAt, digest, signer }
 * `recordInstalled` writes it after the new image runs; the next update must
 * be newer than installedVersion and not below rollbackFloor (the highest
 * minVersion of every image installed so far).
 */
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { parseSignature } from '../firmware/cms.js';
import { digestStream } from '../firmware/digest.js';
import { checkModel } from '../firmware/manifest.js';
import { firmwareRefusalOf, refuse } from '../firmware/refusal.js';
import { checkImage, checkSigner, type AcceptedFirmware, type FirmwareExpectations, type FirmwareTrust, type SignerCheck } from '../firmware/verify.js';
import { checkVersion, compareVersions, maxVersion } from '../firmware/version.js';
import type { CertInfo } from '../x509/cert_info.js';
import type { AgentFiles } from './files.js';

export const FIRMWARE_FILE = 'firmware.json';

export interface FirmwareState {
  /** The device's model: updates for another model are refused. */
  model?: string;
  installedVersion?: string;
  /** Images older than this are refused, whatever is installed (anti-rollback). */
  rollbackFloor?: string;
  installedAt?: string;
  /** The installed image's digest (algorithm:hex) and signer serial, for status. */
  digest?: string;
  signer?: string;
}

export interface VerifyUpdateOptions {
  /** The detached CMS signature (DER or PEM). */
  signature: Uint8Array;
  /** The image, streamed (it is read once, after every other check passed). */
  image: AsyncIterable<Uint8Array>;
  /** Default: firmware.json's model. One of the two is required. */
  model?: string;
  /** Default: firmware.json's installedVersion. */
  installedVersion?: string;
  /** Raised to firmware.json's floor if that is higher. */
  rollbackFloor?: string;
  /** Accept a signature without manifest for this version (FirmwareExpectations.unbound); the model is the device's. */
  unboundVersion?: string;
  /** Fetch CRLs the cache lacks (default true). */
  fetchCrls?: boolean;
}

/** What of the agent the check uses. */
export interface FirmwareHost {
  readonly dir: string;
  firmwareTrust(): FirmwareTrust;
  fetchCrls(urls: string[], issuer?: CertInfo): Promise<Array<{ url: string; error: ProblemError }>>;
}

export async function readFirmwareState(files: AgentFiles, dir: string): Promise<FirmwareState> {
  const path = join(dir, FIRMWARE_FILE);
  const buf = await files.readIfExists(path);
  if (!buf) return {};
  let s: FirmwareState;
  try {
    s = JSON.parse(buf.toString('utf8')) as FirmwareState;
    if (!s || typeof s !== 'object') throw new Error('not an object');
    if (s.model !== undefined) checkModel(s.model);
    if (s.installedVersion !== undefined) checkVersion(s.installedVersion, 'installedVersion');
    if (s.rollbackFloor !== undefined) checkVersion(s.rollbackFloor, 'rollbackFloor');
  } catch (e) {
    // A damaged anti-rollback record must not quietly reset the floor.
    throw new ProblemError('corrupt_state', `${path} is damaged (${(e as ProblemError).detail ?? (e as Error).message}); restore it or write it again with fleetpki firmware verify --record`);
  }
  return s;
}

export async function writeFirmwareState(files: AgentFiles, dir: string, s: FirmwareState): Promise<void> {
  await files.writeAtomic(join(dir, FIRMWARE_FILE), `${JSON.stringify(s, null, 2)}\n`, 0o600);
}

/** Every check of src/firmware/verify.ts with the agent's trust; a missing CRL is fetched once and the check repeated. */
export async function verifyUpdate(host: FirmwareHost, files: AgentFiles, o: VerifyUpdateOptions): Promise<AcceptedFirmware> {
  const state = await readFirmwareState(files, host.dir);
  const model = o.model ?? state.model;
  if (!model) throw new ProblemError('bad_request', `the device's model is not known: give it (model, --model) or record it in ${FIRMWARE_FILE}`);
  if (o.rollbackFloor !== undefined) checkVersion(o.rollbackFloor, 'rollback floor');
  const exp: FirmwareExpectations = {
    model,
    installedVersion: o.installedVersion ?? state.installedVersion,
    rollbackFloor: maxVersion(state.rollbackFloor, o.rollbackFloor),
    unbound: o.unboundVersion !== undefined ? { model, version: o.unboundVersion } : undefined,
  };
  const sig = parseSignature(o.signature);
  // A missing CRL is fetched and the check repeated, once per URL (the
  // signer's, then maybe its CA's): a CRL that cannot be had refuses.
  const tried = new Set<string>();
  let failures: string[] = [];
  let checked: SignerCheck | undefined;
  while (!checked) {
    try {
      checked = checkSigner(sig, host.firmwareTrust(), exp);
    } catch (e) {
      const reason = firmwareRefusalOf(e);
      const urls = (((e as ProblemError).extra?.crlUrls as string[] | undefined) ?? []).filter((u) => !tried.has(u));
      if ((reason !== 'no_crl' && reason !== 'crl_expired') || o.fetchCrls === false || urls.length === 0) {
        if (failures.length && (reason === 'no_crl' || reason === 'crl_expired')) {
          throw refuse(reason, `${(e as ProblemError).detail.replace(/^firmware refused \([a-z_]+\): /, '')}; fetching it failed: ${failures.join('; ')}`, (e as ProblemError).extra);
        }
        throw e;
      }
      for (const u of urls) tried.add(u);
      // The CA that signs the missing CRL, from the chain the check validated up to a fleet root.
      failures = (await host.fetchCrls(urls, (e as ProblemError).extra?.crlIssuer as CertInfo | undefined)).map((f) => f.error.detail);
    }
  }
  return checkImage(checked, await digestStream(o.image, sig.digestAlgorithm));
}

/**
 * Records an installed update (call it once the new image runs): the next
 * one must be newer, and the floor only ever rises.
 */
export async function recordInstalled(host: Pick<FirmwareHost, 'dir'>, files: AgentFiles, accepted: Pick<AcceptedFirmware, 'model' | 'version' | 'rollbackFloor' | 'digestAlgorithm' | 'digest'> & { signer?: { serial: string } }, now: Date): Promise<FirmwareState> {
  const state = await readFirmwareState(files, host.dir);
  if (state.model !== undefined && state.model !== accepted.model) throw new ProblemError('conflict', `this device is a ${state.model}, the update is for ${accepted.model}`);
  const floor = maxVersion(state.rollbackFloor, accepted.rollbackFloor);
  if (floor !== undefined && compareVersions(accepted.version, floor) < 0) throw new ProblemError('conflict', `version ${accepted.version} is below the rollback floor ${floor}`);
  const next: FirmwareState = {
    model: accepted.model,
    installedVersion: accepted.version,
    rollbackFloor: floor,
    installedAt: now.toISOString(),
    digest: `${accepted.digestAlgorithm}:${accepted.digest}`,
    signer: accepted.signer?.serial,
  };
  await writeFirmwareState(files, host.dir, next);
  return next;
}
