/**
 * CRL production (RFC 5280 §5): per CA, a base CRL and a delta CRL, numbered
 * from one shared counter, signed with the CA key and stored so every node
 * serves the same bytes. What to publish and when is decided here; the
 * server's scheduler only asks `due()` and calls `publish()`.
 */
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { Signer } from '../keys/key_store.js';
import type { CrlRecord, RevokedColumns, Store } from '../store/store.js';
import { encodeCrl } from '../x509/crl_encoder.js';
import { keyIdentifierOf } from '../x509/extensions.js';
import type { Authority } from './authority.js';

export interface CrlConfig {
  /** Lifetime of a base CRL (nextUpdate − thisUpdate). */
  validityHours: number;
  /** Republish when less than this is left before nextUpdate: a published CRL never expires. */
  refreshAheadHours: number;
  /** Lifetime of a delta CRL; 0 turns delta CRLs off. */
  deltaValidityHours: number;
  /** Base URL for distribution points (the plain-HTTP listener). */
  publicUrl: string;
}

const HOUR = 3_600_000;
const PAGE = 50_000;

/**
 * Shard 0 is the CA's full CRL (every revocation of the CA; certificates
 * issued before partitioning point here). Shard k lists only certificates of
 * shard k and says so in a critical issuingDistributionPoint.
 */
export function crlUrl(publicUrl: string, ca: string, kind: 'base' | 'delta' = 'base', shard = 0): string {
  return `${publicUrl.replace(/\/+$/, '')}/crl/${ca}${shard ? `-s${shard}` : ''}${kind === 'delta' ? '-delta' : ''}.crl`;
}

export class CrlService {
  constructor(
    private readonly store: Store,
    private readonly authority: Authority,
    private readonly clock: Clock,
    private readonly config: CrlConfig,
  ) {}

  private async *revoked(ca: string, revokedSince?: Date, shard = 0): AsyncGenerator<RevokedColumns> {
    let afterSerial: string | undefined;
    for (;;) {
      const page = await this.store.listRevokedColumns(ca, { afterSerial, revokedSince, shard: shard || undefined, limit: PAGE });
      const n = page.serials.length;
      if (n) yield page;
      if (n < PAGE) return;
      afterSerial = page.serials[n - 1];
    }
  }

  /**
   * Signs and stores a new CRL of `kind` for CA `name`. `signer` is needed
   * only when the CA key is offline (the root, during a key ceremony).
   */
  async publish(name: string, kind: 'base' | 'delta' = 'base', opts: { signer?: Signer; validityHours?: number; actor?: string; shard?: number } = {}): Promise<CrlRecord> {
    const shard = opts.shard ?? 0;
    if (shard && kind === 'delta') throw new ProblemError('bad_request', 'delta CRLs cover the full CRL only, not shards');
    const ca = await this.authority.ca(name);
    const signer = opts.signer ?? (await this.authority.caSigner(name));
    const now = new Date(Math.floor(this.clock.now().getTime() / 1000) * 1000);
    let base: CrlRecord | undefined;
    if (kind === 'delta') {
      if (!this.config.deltaValidityHours) throw new ProblemError('bad_request', 'delta CRLs are turned off (crl.deltaValidityHours is 0)');
      base = await this.store.getLatestCrl(name, 0, 'base');
      if (!base) throw new ProblemError('conflict', `CA "${name}" has no base CRL for a delta to refer to`);
    }
    const hours = opts.validityHours ?? (kind === 'delta' ? this.config.deltaValidityHours : this.config.validityHours);
    const number = await this.store.nextCrlNumber(name);
    const { der, entries } = await encodeCrl({
      issuer: ca.info.subjectDer,
      issuerKeyId: ca.info.ski ?? keyIdentifierOf(ca.info.spki),
      signer,
      number,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + hours * HOUR),
      // §5.2.4: a delta lists what changed since its base was issued.
      entries: this.revoked(name, base?.thisUpdate, shard),
      delta: base ? { baseNumber: base.number, released: await this.store.listReleasedHolds(name, base.thisUpdate) } : undefined,
      freshestUrl: kind === 'base' && !shard && this.config.deltaValidityHours ? crlUrl(this.config.publicUrl, name, 'delta') : undefined,
      distributionPointUrl: shard ? crlUrl(this.config.publicUrl, name, 'base', shard) : undefined,
    });
    const rec: CrlRecord = { ca: name, shard, kind, number, baseNumber: base?.number, thisUpdate: now, nextUpdate: new Date(now.getTime() + hours * HOUR), entries, der };
    await this.store.putCrl(rec, { actor: opts.actor ?? 'system:crl', action: 'crl.publish', target: name, details: { kind, shard, number, entries, nextUpdate: rec.nextUpdate.toISOString() } });
    return rec;
  }

  /**
   * What a CA needs now: a base CRL when there is none, when it nears its
   * nextUpdate, or when certificates were revoked or released since it; a
   * delta likewise against the newest delta; each shard CRL likewise. CAs
   * whose key is offline are skipped (their CRL comes from a key ceremony).
   */
  async due(name: string): Promise<Array<{ kind: 'base' | 'delta'; shard: number }>> {
    const ca = await this.authority.ca(name);
    if (!ca.record.keyRef) return [];
    const now = this.clock.now().getTime();
    const out: Array<{ kind: 'base' | 'delta'; shard: number }> = [];
    const changedSince = async (t: Date, shard?: number) =>
      (await this.store.listRevoked(name, { revokedSince: t, shard, limit: 1 })).length > 0 || (await this.store.listReleasedHolds(name, t, shard)).length > 0;
    const baseDue = async (shard: number) => {
      const crl = await this.store.getLatestCrl(name, shard, 'base');
      return !crl || crl.nextUpdate.getTime() - now < this.config.refreshAheadHours * HOUR || (await changedSince(crl.thisUpdate, shard || undefined));
    };
    // Some relying parties (Mosquitto, Node) read only base CRLs: keep the
    // base current after every change, with or without deltas.
    if (await baseDue(0)) out.push({ kind: 'base', shard: 0 });
    if (this.config.deltaValidityHours) {
      const base = await this.store.getLatestCrl(name, 0, 'base');
      const delta = await this.store.getLatestCrl(name, 0, 'delta');
      const stale = !delta || !base || delta.baseNumber !== base.number || delta.nextUpdate.getTime() - now < (this.config.deltaValidityHours * HOUR) / 2;
      if (stale || (await changedSince(delta.thisUpdate)) || out.length) out.push({ kind: 'delta', shard: 0 });
    }
    for (const shard of await this.store.listCrlShards(name)) {
      if (shard > 0 && (await baseDue(shard))) out.push({ kind: 'base', shard });
    }
    return out;
  }

  /** Whether any certificate of the CA is in `shard` (shards outlive a lower crl.shards). */
  async hasShard(name: string, shard: number): Promise<boolean> {
    return (await this.store.listCrlShards(name)).includes(shard);
  }

  /** The newest CRL of a CA (or shard), publishing one first if none exists yet. */
  async latest(name: string, kind: 'base' | 'delta' = 'base', shard = 0): Promise<CrlRecord> {
    await this.authority.ca(name); // not_found for an unknown CA
    const have = await this.store.getLatestCrl(name, shard, kind);
    if (have) return have;
    if (kind === 'delta') await this.latest(name, 'base');
    return this.publish(name, kind, { shard });
  }
}
