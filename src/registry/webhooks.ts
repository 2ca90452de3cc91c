/**
 * Webhooks (issue 8). Inbound: a device-management or CRM system reports
 * lifecycle events, each delivery a JSON document signed with HMAC-SHA256
 * over its raw bytes under a secret shared with fleetpki; the document
 * carries its own delivery id and timestamp, so both are covered by the
 * signature. Outbound: expiry notices signed the same way (expiry_watch.ts).
 *
 * Secrets are made here, shown once and stored sealed to the registry's
 * sealing key (SecretVault), like the one-time enrollment secrets CMP needs:
 * the database alone does not give them away. Checks, in order: the source
 * is an inbound webhook, the signature matches (else nothing is written),
 * the document is well formed, its timestamp is within the tolerance, and
 * its delivery id is new (spent in the same transaction as the event).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { DeviceEventRecord, DeviceRecord, Store, WebhookRecord } from '../store/store.js';
import type { DeviceLifecycle } from './device_events.js';
import type { SecretVault } from './secret_vault.js';

export const WEBHOOK_NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const DELIVERY_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
export const SIGNATURE_HEADER = 'x-fleetpki-signature';
export const SOURCE_HEADER = 'x-fleetpki-source';

export interface WebhookConfig {
  /** Largest difference between a delivery's timestamp and the server clock. */
  toleranceSeconds: number;
}

/** `sha256=<hex>` of HMAC-SHA256(secret, body). */
export function signBody(secret: string, body: Uint8Array | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Constant-time check of a `sha256=<hex>` signature. */
export function signatureMatches(secret: string, body: Uint8Array, header: string | undefined): boolean {
  const m = /^sha256=([0-9a-f]{64})$/i.exec(header?.trim() ?? '');
  if (!m) return false;
  const want = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(want, Buffer.from(m[1], 'hex'));
}

const vaultId = (name: string) => `webhook:${name}`;

export class Webhooks {
  /** Opened secrets by webhook name and sealed bytes (opening decrypts in the key store). */
  private readonly opened = new Map<string, { sealed: string; secret: string }>();

  constructor(
    private readonly store: Store,
    private readonly vault: SecretVault,
    private readonly lifecycle: DeviceLifecycle,
    private readonly clock: Clock,
    private readonly config: WebhookConfig,
  ) {}

  /** Creates a webhook; the returned secret is shown once. */
  async create(o: { name: string; direction: WebhookRecord['direction']; url?: string; thresholdsDays?: number[]; actor: string }): Promise<{ webhook: WebhookRecord; secret: string }> {
    const bad = (why: string) => new ProblemError('bad_request', why);
    if (typeof o.name !== 'string' || !WEBHOOK_NAME_RE.test(o.name)) throw bad('webhook names are lowercase letters, digits and dashes (1-63)');
    if (o.direction !== 'inbound' && o.direction !== 'outbound') throw bad('a webhook is inbound or outbound');
    let thresholds: number[] = [];
    if (o.direction === 'outbound') {
      if (!o.url) throw bad('an outbound webhook needs a URL');
      let u: URL;
      try {
        u = new URL(o.url);
      } catch {
        throw bad(`"${o.url}" is not a URL`);
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw bad('an outbound webhook URL is http: or https:');
      if (u.username || u.password) throw bad('an outbound webhook URL carries no credentials (the HMAC signature authenticates)');
      thresholds = [...new Set(o.thresholdsDays ?? [30, 7, 1])].sort((a, b) => b - a);
      if (thresholds.length === 0 || thresholds.length > 10 || !thresholds.every((d) => Number.isInteger(d) && d >= 1 && d <= 3650)) throw bad('thresholds are 1-10 whole numbers of days, 1-3650');
    } else if (o.url !== undefined || o.thresholdsDays !== undefined) throw bad('an inbound webhook has no URL or thresholds');
    const secret = randomBytes(32).toString('base64url');
    const sealed = await this.vault.seal(vaultId(o.name), secret);
    if (!sealed) throw new ProblemError('config_error', 'no sealing key yet: start the server once (fleetpki serve) so it creates one');
    const webhook: WebhookRecord = { name: o.name, direction: o.direction, url: o.direction === 'outbound' ? o.url : undefined, thresholdsDays: thresholds, sealedSecret: sealed, createdAt: this.clock.now() };
    await this.store.insertWebhook(webhook, { actor: o.actor, action: 'webhook.create', target: o.name, details: { direction: o.direction, url: webhook.url, thresholdsDays: thresholds } });
    return { webhook, secret };
  }

  list(direction?: WebhookRecord['direction']): Promise<WebhookRecord[]> {
    return this.store.listWebhooks(direction);
  }

  async remove(name: string, actor: string): Promise<void> {
    await this.store.removeWebhook(name, { actor, action: 'webhook.remove', target: name });
    this.opened.delete(name);
  }

  /** The webhook's secret (server side: opens the sealed copy in the key store once). */
  async secretOf(w: WebhookRecord): Promise<string> {
    const sealed = Buffer.from(w.sealedSecret).toString('base64');
    const c = this.opened.get(w.name);
    if (c && c.sealed === sealed) return c.secret;
    const secret = await this.vault.open(vaultId(w.name), w.sealedSecret);
    this.opened.set(w.name, { sealed, secret });
    return secret;
  }

  /**
   * One inbound delivery: `body` exactly as received. Refusals are typed
   * (unauthorized: unknown source, bad signature or stale timestamp;
   * bad_request: malformed document; conflict: replayed delivery id) and
   * change nothing.
   */
  async receive(source: string | undefined, signature: string | undefined, body: Uint8Array): Promise<{ device: DeviceRecord; event: DeviceEventRecord }> {
    const denied = new ProblemError('unauthorized', 'unknown webhook source or bad signature');
    if (!source || !WEBHOOK_NAME_RE.test(source)) throw denied;
    const w = await this.store.getWebhook(source);
    if (!w || w.direction !== 'inbound') throw denied;
    let secret: string;
    try {
      secret = await this.secretOf(w);
    } catch (e) {
      if (e instanceof ProblemError && e.code === 'key_unavailable') throw e;
      throw denied;
    }
    if (!signatureMatches(secret, body, signature)) throw denied;

    const bad = (why: string) => new ProblemError('bad_request', `webhook delivery: ${why}`);
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(Buffer.from(body).toString('utf8')) as Record<string, unknown>;
    } catch {
      throw bad('the body is not JSON');
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw bad('the body is a JSON object');
    const allowed = new Set(['id', 'timestamp', 'device', 'event', 'reason', 'invalidityDate', 'replacedBy', 'note']);
    const unknown = Object.keys(doc).filter((k) => !allowed.has(k));
    if (unknown.length) throw bad(`unknown fields: ${unknown.join(', ')}`);
    if (typeof doc.id !== 'string' || !DELIVERY_ID_RE.test(doc.id)) throw bad('"id" is the delivery id: 1-128 letters, digits and ._:-');
    if (typeof doc.timestamp !== 'number' || !Number.isInteger(doc.timestamp)) throw bad('"timestamp" is the time of sending in whole seconds since 1970');
    if (typeof doc.device !== 'string') throw bad('"device" is the device id');
    if (typeof doc.event !== 'string') throw bad('"event" is the lifecycle event');
    for (const k of ['reason', 'invalidityDate', 'replacedBy', 'note'] as const) if (doc[k] !== undefined && typeof doc[k] !== 'string') throw bad(`"${k}" is a string`);
    const now = this.clock.now().getTime();
    const skew = Math.abs(now - doc.timestamp * 1000);
    if (skew > this.config.toleranceSeconds * 1000) throw new ProblemError('unauthorized', `the delivery timestamp is ${Math.round(skew / 1000)} s away from the server clock (at most ${this.config.toleranceSeconds} s): too old, or a replay`);
    // Ids older than twice the tolerance are refused by their timestamp already.
    await this.store.pruneWebhookDeliveries(new Date(now - 2 * this.config.toleranceSeconds * 1000));
    const inv = doc.invalidityDate === undefined ? undefined : new Date(doc.invalidityDate as string);
    return this.lifecycle.report({
      deviceId: doc.device,
      event: doc.event,
      reason: doc.reason as string | undefined,
      invalidityDate: inv,
      replacedBy: doc.replacedBy as string | undefined,
      note: doc.note as string | undefined,
      actor: `hook:${w.name}`,
      source: 'webhook',
      delivery: { source: w.name, id: doc.id },
    });
  }
}
