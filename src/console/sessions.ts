/**
 * Web console sessions. An operator signs in once with an API token; the
 * server answers with a random session id in a cookie the page's scripts
 * cannot read (HttpOnly, Secure, SameSite=Strict) and a CSRF token that the
 * page sends back in a header on every state-changing request.
 *
 * The session keeps the operator's token in this process's memory only and
 * authenticates it again on every request, so revoking or expiring the token
 * ends its sessions at once. Sessions end after `idleMinutes` without a
 * request, after `maxHours` in any case, and at sign-out. They are per node:
 * behind a load balancer, route a console user to one node (docs/console.md).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock.js';
import { ProblemError } from '../errors.js';
import type { Operator, Operators } from '../registry/operators.js';

export const SESSION_COOKIE = 'fleetpki_session';
export const CSRF_HEADER = 'x-csrf-token';

export interface SessionOptions {
  idleMinutes: number;
  maxHours: number;
  /** Sessions kept at most; the oldest is dropped first. */
  maxSessions: number;
}

export const DEFAULT_SESSION_OPTIONS: SessionOptions = { idleMinutes: 30, maxHours: 8, maxSessions: 10_000 };

interface Session {
  token: string;
  csrf: string;
  createdAt: number;
  lastSeen: number;
}

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
  private readonly sessions = new Map<string, Session>();

  constructor(
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
    this.sweep();
    while (this.sessions.size >= this.opts.maxSessions) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const now = this.clock.now().getTime();
    this.sessions.set(id, { token, csrf, createdAt: now, lastSeen: now });
    return { id, csrf, operator };
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
    const s = id ? this.live(id) : undefined;
    if (!id || !s) throw new ProblemError('unauthorized', 'no console session, or it has ended: sign in again');
    if (!SAFE_METHODS.has(req.method.toUpperCase())) {
      const sent = header(req, CSRF_HEADER);
      if (!sent || !sameText(sent, s.csrf)) throw new ProblemError('forbidden', `a state-changing request needs the session's CSRF token in the ${CSRF_HEADER} header`);
      checkOrigin(req);
    }
    let operator: Operator;
    try {
      operator = await this.operators.authenticate(s.token);
    } catch (e) {
      this.sessions.delete(id);
      throw e;
    }
    s.lastSeen = this.clock.now().getTime();
    return { operator, csrf: s.csrf, id };
  }

  signOut(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }

  private live(id: string): Session | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (this.expired(s, this.clock.now().getTime())) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  private expired(s: Session, now: number): boolean {
    return now - s.lastSeen >= this.opts.idleMinutes * 60_000 || now - s.createdAt >= this.opts.maxHours * 3_600_000;
  }

  private sweep(): void {
    const now = this.clock.now().getTime();
    for (const [id, s] of this.sessions) if (this.expired(s, now)) this.sessions.delete(id);
  }
}
