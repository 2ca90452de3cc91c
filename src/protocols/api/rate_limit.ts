/**
 * A token bucket per key (an API token): `burst` requests at once, then
 * `perMinute` a minute. In memory, per node: behind a load balancer each
 * node counts on its own, so the fleet-wide limit is the node count times
 * this one (documented in docs/api.md).
 */
import type { Clock } from '../../clock.js';

interface Bucket {
  tokens: number;
  at: number;
}

export type Take = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;

  constructor(
    perMinute: number,
    private readonly burst: number,
    private readonly clock: Clock,
    /** Buckets kept at most; full ones are dropped first (they carry no state). */
    private readonly maxKeys = 10_000,
  ) {
    this.perMs = perMinute / 60_000;
  }

  take(key: string): Take {
    const now = this.clock.now().getTime();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + Math.max(0, now - b.at) * this.perMs);
    b.at = now;
    this.buckets.set(key, b);
    if (this.buckets.size > this.maxKeys) this.prune(now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true, remaining: Math.floor(b.tokens) };
    }
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(k);
  }
}
