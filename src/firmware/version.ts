/**
 * Firmware versions are Semantic Versioning 2.0.0 strings (semver.org):
 * MAJOR.MINOR.PATCH, an optional pre-release and build metadata. Precedence
 * (§11) is the npm `semver` package's; it is the reference implementation,
 * so a device and a build pipeline in any language that follows the spec
 * agree on which image is newer.
 */
import semver from 'semver';
import { ProblemError } from '../errors.js';

/**
 * Only the canonical form: the parser also takes "v1.2.3", "=1.2.3" and
 * padding, which a signed manifest must not carry ambiguously. Build
 * metadata (+...) is allowed and ignored for precedence.
 */
export function isVersion(v: unknown): v is string {
  if (typeof v !== 'string' || v.length > 64) return false;
  const p = semver.parse(v);
  return !!p && v === `${p.version}${p.build.length ? `+${p.build.join('.')}` : ''}`;
}

export function checkVersion(v: string, what: string): string {
  if (!isVersion(v)) throw new ProblemError('bad_request', `${what} "${v}" is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.2 or 2.0.0-rc.1)`);
  return v;
}

/** < 0, 0 or > 0 as `a` has lower, equal or higher precedence than `b`; build metadata is ignored (SemVer §10). */
export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}

/** The higher of two versions (undefined counts as lowest). */
export function maxVersion(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareVersions(a, b) >= 0 ? a : b;
}
