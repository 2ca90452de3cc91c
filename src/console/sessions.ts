/**
 * Web console sessions. An operator signs in once with an API token; the
 * server answers with a random session id in a cookie the page's scripts
 * cannot read (HttpOnly, Secure, SameSite=Strict) and a CSRF token that the
 * page sends back in a header on every state-changing request.
 *
 * Sessions live in the store (migration 12), so every node behind a load
 * balancer serves every session and a sign-out anywhere ends it everywhere.
 * The store keeps hashes only: of the session id, and of the operator's
 * token, which is authenticated again on every request, so revoking or
 * expiring the token ends its sessions at once. The CSRF token is derived
 * from the session id (only the cookie's holder can know it). Sessions end
 * after `idleMinutes` without a request, after `maxHours` in any case, and
 * at sign-out; the last-seen time is written at most once a minute.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import { hashToken, type Operator, type Operators } from '../registry/operators.js';
import type { ConsoleSessionRecord, Store } from '../store/store.js';

export const SESSION_COOKIE = 'fleetpki_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface SessionOptions {
  idleMinutes: number;
  maxHours: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { idleMinutes: 30, maxHours: 8 };

/** How stale the stored last-seen time may get before a request writes it again. */
const TOUCH_EVERY_MS = 60_000;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const csrfOf = (id: string) => createHash('sha256').update(`fleetpki-console-csrf\0${id}`).digest('base64url');

/** What the request looks like to the session check: its headers and method. */
export interface SessionRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The value of one cookie in a Cookie header (RFC 6265 §5.4), or undefined. */
export function readCookie(header: string | string[] | undefined, name: string): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : header;
  if (!text) return undefined;
  for (const part of text.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The host:port of an Origin header; undefined for "null" or a malformed one. */
function originHost(origin: string): string | undefined {
  try {
    return new URL(origin).host || undefined;
  } catch {
    return undefined;
  }
}

function header(req: SessionRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Refuses a request whose Origin header (browsers send one with every POST)
 * names another site than this host: a second line behind SameSite=Strict
 * and the CSRF token, and the only one for sign-in, which has no session yet.
 */
export function checkOrigin(req: SessionRequest): void {
  const origin = header(req, 'origin');
  const host = header(req, 'host');
  if (origin !== undefined && (!host || originHost(origin) !== host)) throw new ProblemError('forbidden', `cross-origin request from ${origin} refused`);
}

export class ConsoleSessions {
  constructor(
    private readonly store: Store,
    private readonly operators: Operators,
    private readonly clock: Clock,
    private readonly opts: SessionOptions = DEFAULT_SESSION_OPTIONS,
  ) {}

  get maxAgeSeconds(): number {
    return this.opts.maxHours * 3600;
  }

  /** Checks the token and opens a session; throws unauthorized for a bad token. */
  async signIn(token: string): Promise<{ id: string; csrf: string; operator: Operator }> {
    const operator = await this.operators.authenticate(token);
    const now = this.clock.now();
    await this.store.deleteStaleConsoleSessions(new Date(now.getTime() - this.opts.idleMinutes * 60_000), new Date(now.getTime() - this.opts.maxHours * 3_600_000));
    const id = randomBytes(32).toString('base64url');
    await this.store.insertConsoleSession({ idHash: sha256(id), tokenHash: hashToken(token), createdAt: now, lastSeen: now });
    return { id, csrf: csrfOf(id), operator };
  }

  /** True when the request carries a session cookie (valid or not). */
  carriesSession(req: SessionRequest): boolean {
    return readCookie(req.headers.cookie, SESSION_COOKIE) !== undefined;
  }

  /**
   * The operator of the request's session. State-changing methods must carry
   * the session's CSRF token and, when the browser sends one, an Origin of
   * this host. Throws unauthorized (no or ended session) or forbidden (CSRF).
   */
  async authenticate(req: SessionRequest): Promise<{ operator: Operator; csrf: string; id: string }> {
    const id = readCookie(req.headers.cookie, SESSION_COOKIE);
    const s = id && id.length <= 100 ? await this.live(id) : undefined;
    if (!id || !s) throw new ProblemError('unauthorized', 'no console session, or it has ended: sign in again');
    const csrf = csrfOf(id);
    if (!SAFE_METHODS.has(req.method.toUpperCase())) {
      const sent = header(req, CSRF_HEADER);
      if (!sent || !sameText(sent, csrf)) throw new ProblemError('forbidden', `a state-changing request needs the session's CSRF token in the ${CSRF_HEADER} header`);
      checkOrigin(req);
    }
    let operator: Operator;
    try {
      operator = await this.operators.authenticateTokenHash(s.tokenHash);
    } catch (e) {
      await this.store.deleteConsoleSession(s.idHash);
      throw e;
    }
    const now = this.clock.now();
    if (now.getTime() - s.lastSeen.getTime() >= TOUCH_EVERY_MS) await this.store.touchConsoleSession(s.idHash, now);
    return { operator, csrf, id };
  }

  async signOut(id: string): Promise<void> {
    await this.store.deleteConsoleSession(sha256(id));
  }

  private async live(id: string): Promise<ConsoleSessionRecord | undefined> {
    const s = await this.store.getConsoleSession(sha256(id));
    if (!s) return undefined;
    const now = this.clock.now().getTime();
    if (now - s.lastSeen.getTime() >= this.opts.idleMinutes * 60_000 || now - s.createdAt.getTime() >= this.opts.maxHours * 3_600_000) {
      await this.store.deleteConsoleSession(s.idHash);
      return undefined;
    }
    return s;
  }
}
