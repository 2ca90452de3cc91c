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

/** ETags of cached answers, by identity: a pre-signed answer is hashed once, not per request. */
const etags = new WeakMap<Uint8Array, string>();

/** A strong ETag of the response bytes. */
export function etagOf(der: Uint8Array): string {
  let tag = etags.get(der);
  if (!tag) etags.set(der, (tag = `"${createHash('sha256').update(der).digest('base64url')}"`));
  return tag;
}

/**
 * RFC 5019 §6.2 headers of a cacheable answer: Last-Modified is thisUpdate,
 * Expires is nextUpdate, max-age never reaches past nextUpdate.
 */
export function cachingHeaders(der: Uint8Array, thisUpdate: Date, nextUpdate: Date, now: Date): Record<string, string> {
  const maxAge = Math.max(0, Math.floor((nextUpdate.getTime() - now.getTime()) / 1000));
  return {
    'last-modified': thisUpdate.toUTCString(),
    expires: nextUpdate.toUTCString(),
    'cache-control': `max-age=${maxAge}, public, no-transform, must-revalidate`,
    etag: etagOf(der),
  };
}

/** Whether an If-None-Match header names this ETag (RFC 9110 §13.1.2, weak comparison). */
export function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}
