/**
 * Expiry watch (issue 8): which certificates expire soon, which devices
 * stopped renewing, and the notices outbound webhooks get before a
 * certificate expires. Pure: the server sends the notices (it owns the
 * HTTP client and the timer) through the `post` function it passes in.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { CertificateRecord, StaleDevice, Store, WebhookRecord } from '../store/store.js';
import { signBody } from './webhooks.js';

const DAY = 86_400_000;
export const REPORT_LIMIT = 1000;

export interface ExpiryWatchConfig {
  /** Share of a certificate's lifetime after which its device should have renewed (the agent's default is 2/3). */
  renewAtShare: number;
}

export interface ExpiryReport {
  generatedAt: Date;
  days: number;
  /** Good certificates whose notAfter is within the next `days` days, soonest first. */
  expiring: CertificateRecord[];
  /** Good certificates already past notAfter (never revoked, never replaced). */
  expired: CertificateRecord[];
  /** Devices past their renewal point ('overdue') or whose current certificate expired ('expired'). */
  stale: Array<StaleDevice & { status: 'overdue' | 'expired' }>;
}

/** What the server's HTTP client does with a notice; resolves to the response status. */
export type PostJson = (url: string, body: string, headers: Record<string, string>) => Promise<number>;

export interface NoticeResult {
  webhook: string;
  thresholdDays: number;
  serials: string[];
  status: number | 'failed';
  error?: string;
}

export class ExpiryWatch {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly config: ExpiryWatchConfig,
    private readonly secretOf: (w: WebhookRecord) => Promise<string>,
  ) {}

  async report(days: number): Promise<ExpiryReport> {
    if (!(Number.isInteger(days) && days >= 0 && days <= 3650)) throw new ProblemError('bad_request', 'days is a whole number from 0 to 3650');
    const now = this.clock.now();
    const certs = await this.store.listExpiring(new Date(now.getTime() + days * DAY), REPORT_LIMIT);
    const stale = await this.store.listStaleDevices(now, this.config.renewAtShare, REPORT_LIMIT);
    return {
      generatedAt: now,
      days,
      expiring: certs.filter((c) => c.notAfter > now),
      expired: certs.filter((c) => c.notAfter <= now),
      stale: stale.map((s) => ({ ...s, status: s.certificate.notAfter <= now ? 'expired' : 'overdue' })),
    };
  }

  /**
   * Sends what is due to every outbound webhook: each good certificate that
   * crossed a threshold gets one notice for the smallest threshold it
   * crossed (the larger ones count as sent: a 30-day warning is no news
   * 5 days before expiry). A notice is recorded only after a 2xx answer,
   * so a failed one is sent again at the next run.
   */
  async notify(post: PostJson): Promise<NoticeResult[]> {
    const out: NoticeResult[] = [];
    for (const w of await this.store.listWebhooks('outbound')) {
      const now = this.clock.now();
      const ascending = [...w.thresholdsDays].sort((a, b) => a - b);
      const horizon = ascending[ascending.length - 1];
      const certs = (await this.store.listExpiring(new Date(now.getTime() + horizon * DAY), REPORT_LIMIT)).filter((c) => c.notAfter > now);
      if (certs.length === 0) continue;
      const sent = new Set((await this.store.listExpiryNotices(w.name, certs.map((c) => c.serial))).map((n) => `${n.serial}/${n.thresholdDays}`));
      const due = new Map<number, CertificateRecord[]>();
      for (const c of certs) {
        const t = ascending.find((d) => c.notAfter.getTime() - now.getTime() <= d * DAY)!;
        if (sent.has(`${c.serial}/${t}`)) continue;
        due.set(t, [...(due.get(t) ?? []), c]);
      }
      const secret = due.size ? await this.secretOf(w) : '';
      for (const [t, list] of [...due].sort((a, b) => a[0] - b[0])) {
        const body = JSON.stringify({
          id: randomUUID(),
          timestamp: Math.floor(now.getTime() / 1000),
          type: 'certificate.expiring',
          webhook: w.name,
          thresholdDays: t,
          certificates: list.map((c) => ({ serial: c.serial, subject: c.subject, deviceId: c.deviceId ?? null, issuerCa: c.issuerCa, profile: c.profile, notAfter: c.notAfter.toISOString() })),
        });
        const serials = list.map((c) => c.serial);
        try {
          const status = await post(w.url!, body, { 'content-type': 'application/json', 'x-fleetpki-signature': signBody(secret, body), 'x-fleetpki-source': 'fleetpki' });
          if (status >= 200 && status < 300) {
            const sentAt = this.clock.now();
            await this.store.recordExpiryNotices(list.flatMap((c) => ascending.filter((d) => d >= t).map((d) => ({ webhook: w.name, serial: c.serial, thresholdDays: d, sentAt }))));
          }
          out.push({ webhook: w.name, thresholdDays: t, serials, status });
        } catch (e) {
          out.push({ webhook: w.name, thresholdDays: t, serials, status: 'failed', error: (e as Error).message });
        }
      }
    }
    return out;
  }
}
