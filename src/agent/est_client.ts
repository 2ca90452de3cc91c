/**
 * The EST client (RFC 7030 with the RFC 8951 clarifications) the agent uses:
 * /cacerts, /simpleenroll (HTTP Basic with the one-time secret, or a
 * manufacturer certificate as TLS client certificate) and /simplereenroll
 * (the current certificate). Talks to the server only over the wire.
 *
 * Failures become ProblemErrors: the server's refusals keep their meaning
 * (401 unauthorized, 403 forbidden, 400 bad_request), and anything that says
 * "not now" (no connection, a timeout, 5xx) is `unavailable`, which the
 * agent retries with backoff.
 */
import { request } from 'node:https';
import * as der from '../asn1/der.js';
import { ProblemError, type ProblemCode } from '../errors.js';
import type { TlsKey } from './device_key.js';

export interface EstClientOptions {
  /** https://host:port of the EST server. */
  server: string;
  /** EST label (RFC 7030 §3.2.2): /.well-known/est/<label>/... */
  label?: string;
  /** PEM certificates the server's TLS certificate must chain to. */
  trust: string[];
  timeoutMs?: number;
}

/** TLS client credentials: a key and its certificate chain (PEM). */
export interface ClientCredentials {
  key: TlsKey;
  certPem: string;
}

export type EnrollAnswer = { status: 'issued'; cert: Uint8Array } | { status: 'pending'; retryAfterSeconds: number; message: string };

const STATUS_CODES: Record<number, ProblemCode> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 413: 'payload_too_large', 415: 'unsupported_media_type' };

export class EstClient {
  constructor(private readonly o: EstClientOptions) {}

  private url(op: string): URL {
    const base = new URL(this.o.server);
    if (base.protocol !== 'https:') throw new ProblemError('config_error', `the EST server URL must be https:// (got ${this.o.server})`);
    const prefix = base.pathname.replace(/\/+$/, '');
    return new URL(`${prefix}/.well-known/est${this.o.label ? `/${this.o.label}` : ''}/${op}`, base);
  }

  /** RFC 7030 §4.1: the issuing chain and the root, certs-only. */
  async cacerts(): Promise<Uint8Array[]> {
    const r = await this.send('GET', 'cacerts');
    if (r.status !== 200) throw refusal(r, 'cacerts');
    return parseCertsOnly(decodeB64(r.body, 'cacerts'));
  }

  /** First enrollment (RFC 7030 §4.2.1) with a secret or a manufacturer certificate. */
  async simpleenroll(csr: Uint8Array, auth: { basic: { user: string; password: string } } | { client: ClientCredentials }): Promise<EnrollAnswer> {
    return this.enroll('simpleenroll', csr, auth);
  }

  /** Renewal (RFC 7030 §4.2.2) with the current certificate. */
  async simplereenroll(csr: Uint8Array, client: ClientCredentials): Promise<EnrollAnswer> {
    return this.enroll('simplereenroll', csr, { client });
  }

  private async enroll(op: string, csr: Uint8Array, auth: { basic: { user: string; password: string } } | { client: ClientCredentials }): Promise<EnrollAnswer> {
    const body = Buffer.from(csr).toString('base64'); // RFC 8951 §3.2: base64 bodies
    const r = await this.send('POST', op, body, auth);
    if (r.status === 202) {
      // §4.2.3: accepted, not issued yet; retry the same request later.
      const after = Number(r.headers['retry-after']);
      return { status: 'pending', retryAfterSeconds: Number.isFinite(after) && after > 0 ? after : 60, message: r.body.trim() };
    }
    if (r.status !== 200) throw refusal(r, op);
    const certs = parseCertsOnly(decodeB64(r.body, op));
    if (certs.length < 1) throw new ProblemError('bad_request', `${op}: the answer holds no certificate`);
    return { status: 'issued', cert: certs[0] };
  }

  private send(method: 'GET' | 'POST', op: string, body?: string, auth?: { basic: { user: string; password: string } } | { client: ClientCredentials }) {
    const url = this.url(op);
    const headers: Record<string, string> = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/pkcs10';
      headers['content-transfer-encoding'] = 'base64';
    }
    if (auth && 'basic' in auth) headers.authorization = `Basic ${Buffer.from(`${auth.basic.user}:${auth.basic.password}`).toString('base64')}`;
    const client = auth && 'client' in auth ? { ...auth.client.key, cert: auth.client.certPem } : {};
    return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const req = request(
        url,
        // No connection reuse: each request presents its own client certificate.
        { method, headers, ca: this.o.trust, agent: false, minVersion: 'TLSv1.2', timeout: this.o.timeoutMs ?? 30_000, ...client },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > 1 << 20) req.destroy(new Error('answer larger than 1 MiB'));
            else chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('latin1') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.o.timeoutMs ?? 30_000} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(new ProblemError('unavailable', `EST server ${url.origin} unreachable: ${e.code ?? e.message}${e.code && e.message && !e.message.includes(e.code) ? ` (${e.message})` : ''}`)));
      req.end(body);
    });
  }
}

function refusal(r: { status: number; body: string }, op: string): ProblemError {
  const text = r.body.trim().split('\n')[0]?.slice(0, 300) || `HTTP ${r.status}`;
  const code = STATUS_CODES[r.status] ?? (r.status >= 500 || r.status === 429 ? 'unavailable' : 'bad_request');
  return new ProblemError(code, `EST ${op} refused (HTTP ${r.status}): ${text}`, { httpStatus: r.status });
}

function decodeB64(body: string, what: string): Uint8Array {
  const t = body.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) throw new ProblemError('bad_request', `EST ${what}: the answer is not base64 (RFC 8951 §3.2)`);
  return new Uint8Array(Buffer.from(t, 'base64'));
}

/**
 * The certificates of a certs-only CMS SignedData (RFC 5652 §5.1, RFC 8551
 * §3.2.2): ContentInfo { signedData, [0] SignedData { version,
 * digestAlgorithms, encapContentInfo, [0] IMPLICIT certificates, ... } }.
 */
export function parseCertsOnly(p7: Uint8Array): Uint8Array[] {
  try {
    const ci = der.expectSingleTlv(p7, 'PKCS#7');
    const [oid, wrapped] = der.readChildren(p7, ci);
    if (!oid || oid.tag !== der.TAG.OID || Buffer.from(der.slice(p7, oid)).toString('hex') !== '06092a864886f70d010702' || !wrapped || wrapped.tag !== 0xa0) {
      throw new ProblemError('bad_request', 'not a CMS SignedData');
    }
    const [sd] = der.readChildren(p7, wrapped);
    const certsField = der.readChildren(p7, sd).find((t) => t.tag === 0xa0);
    if (!certsField) return [];
    return der.readChildren(p7, certsField).filter((t) => t.tag === der.TAG.SEQUENCE).map((t) => der.slice(p7, t).slice());
  } catch (e) {
    if (e instanceof ProblemError) throw new ProblemError('bad_request', `EST answer: ${e.detail}`);
    throw e;
  }
}
