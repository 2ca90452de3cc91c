import { randomBytes } from 'node:crypto';

/**
 * RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B BR §7.1: at least 64
 * bits from a CSPRNG. 17 octets whose first is 0x40..0x7f carry 134 random
 * bits, are always positive and always 17 octets long (no leading zero to
 * strip), so nodes need no coordination to avoid collisions.
 */
export function newSerial(): Uint8Array {
  const b = new Uint8Array(randomBytes(17));
  b[0] = (b[0] & 0x3f) | 0x40;
  return b;
}

/** Lowercase hex, the form serials take in the store, the CLI and URLs. */
export function normaliseSerial(text: string): string {
  const hex = text.trim().toLowerCase().replace(/^0x/, '').replace(/:/g, '');
  if (!/^[0-9a-f]{1,40}$/.test(hex)) return '';
  // Canonical: even length, no redundant leading zero octets (DER INTEGER).
  let h = hex.length % 2 ? `0${hex}` : hex;
  while (h.length > 2 && h.startsWith('00') && parseInt(h[2], 16) < 8) h = h.slice(2);
  // openssl prints 80FF for the positive INTEGER whose content octets are 00 80 FF.
  if (parseInt(h[0], 16) >= 8) h = `00${h}`;
  return h;
}
