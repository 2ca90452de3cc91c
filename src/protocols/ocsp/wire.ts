/**
 * OCSP over HTTP (RFC 6960 Appendix A, RFC 5019 §5-6): the GET request
 * encoding and the caching headers of answers a CDN may keep.
 */
import { createHash } from 'node:crypto';

export const OCSP_REQUEST_TYPE = 'application/ocsp-request';
export const OCSP_RESPONSE_TYPE = 'application/ocsp-response';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The DER request of `GET {url}/{url-encoding of base-64 encoding of the DER
 * OCSPRequest}`. The path part after the prefix is taken raw, so '/' and '+'
 * work whether the client percent-encoded them or not. Some clients send
 * '+' as a space or use the base64url alphabet: both are accepted. Returns
 * undefined when it is not base64.
 */
export function decodeGetRequest(rawPath: string): Uint8Array | undefined {
  let text: string;
  try {
    text = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  text = text.replace(/ /g, '+').replace(/-/g, '+').replace(/_/g, '/').replace(/\s+/g, '');
  if (!text || !BASE64.test(text)) return undefined;
  const unpadded = text.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return undefined;
  return new Uint8Array(Buffer.from(unpadded, 'base64'));
}

/** Base64 then percent-encoding: the GET form of a request (tests, clients). */
export function encodeGetRequest(requestDer: Uint8Array): string {
  return encodeURIComponent(Buffer.from(requestDer).toString('base64'));
}

/**
 * What the headers of a pre-signed answer say that never changes, by
 * identity: hashed and formatted once per answer, not once per request.
 */
const fixed = new WeakMap<Uint8Array, { etag: string; lastModified: string; expires: string; thisUpdate: number; nextUpdate: number }>();
// The ETag is a strong one: the SHA-256 of the response bytes.

function fixedHeaders(der: Uint8Array, thisUpdate: Date, nextUpdate: Date) {
  let f = fixed.get(der);
  if (!f || f.thisUpdate !== thisUpdate.getTime() || f.nextUpdate !== nextUpdate.getTime()) {
    f = { etag: f?.etag ?? `"${createHash('sha256').update(der).digest('base64url')}"`, lastModified: thisUpdate.toUTCString(), expires: nextUpdate.toUTCString(), thisUpdate: thisUpdate.getTime(), nextUpdate: nextUpdate.getTime() };
    fixed.set(der, f);
  }
  return f;
}

/**
 * RFC 5019 §6.2 headers of a cacheable answer: Last-Modified is thisUpdate,
 * Expires is nextUpdate, max-age never reaches past nextUpdate.
 */
export function cachingHeaders(der: Uint8Array, thisUpdate: Date, nextUpdate: Date, now: Date): Record<string, string> {
  const f = fixedHeaders(der, thisUpdate, nextUpdate);
  const maxAge = Math.max(0, Math.floor((f.nextUpdate - now.getTime()) / 1000));
  return {
    'last-modified': f.lastModified,
    expires: f.expires,
    'cache-control': `max-age=${maxAge}, public, no-transform, must-revalidate`,
    etag: f.etag,
  };
}

/** Whether an If-None-Match header names this ETag (RFC 9110 §13.1.2, weak comparison). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}
