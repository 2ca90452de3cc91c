/**
 * When to renew and when to try again: pure functions of times and a random
 * source, so a fake clock tests them exactly.
 */

/** Random numbers in [0, 1); tests pass a fixed sequence. */
export type Random = () => number;

/**
 * The renewal time: `share` of the lifetime after it started, moved by up to
 * ±`jitter` of the lifetime so that a fleet enrolled in one afternoon does not
 * renew in one minute. The lifetime starts at notBefore, or when the agent
 * received the certificate if that is later: a CA that backdates notBefore
 * (clock skew allowance) would otherwise make a short-lived certificate look
 * half used on arrival. Never before `obtainedAt`, never after the expiry
 * less 1% of the lifetime.
 */
export function renewalTime(cert: { notBefore: Date; notAfter: Date }, obtainedAt: Date, share: number, jitter: number, random: Random): Date {
  const start = Math.max(cert.notBefore.getTime(), Math.min(obtainedAt.getTime(), cert.notAfter.getTime()));
  const end = cert.notAfter.getTime();
  const life = Math.max(0, end - start);
  const offset = (random() * 2 - 1) * jitter * life;
  const t = start + share * life + offset;
  return new Date(Math.round(Math.min(Math.max(t, start), end - life * 0.01)));
}

/**
 * Exponential backoff with a cap and "equal jitter": the n-th consecutive
 * failure (n >= 1) waits between half and all of min(cap, initial * 2^(n-1)).
 * The jitter keeps a fleet that lost its CA together from coming back at once.
 */
export function backoffMs(failures: number, initialMs: number, capMs: number, random: Random): number {
  const n = Math.max(1, failures);
  const ceiling = Math.min(capMs, initialMs * 2 ** Math.min(n - 1, 40));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
