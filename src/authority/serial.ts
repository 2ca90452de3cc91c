import { randomBytes } from 'node:crypto';

/** Octets of a serial: 0x40, the issuance second (4 octets), 12 random octets. */
export const SERIAL_OCTETS = 17;
export const SERIAL_RANDOM_OCTETS = 12;

/**
 * RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B BR §7.1: at least 64
 * bits from a CSPRNG. 17 octets: 0x40 (always positive, never a leading zero
 * to strip), the Unix second of issuance, big-endian, then 96 bits from the
 * CSPRNG, so nodes need no coordination to avoid collisions. The time prefix
 * makes serials ascend: every index keyed by serial (the primary key, the
 * CRL indexes, the audit target) takes new rows at its right edge, so a
 * group commit writes a few hot pages instead of one random page per
 * certificate per index. It says nothing notBefore does not.
 */
export function newSerial(now = Date.now()): Uint8Array {
  const b = new Uint8Array(SERIAL_OCTETS);
  b[0] = 0x40;
  new DataView(b.buffer).setUint32(1, Math.floor(now / 1000) >>> 0);
  b.set(randomBytes(SERIAL_RANDOM_OCTETS), SERIAL_OCTETS - SERIAL_RANDOM_OCTETS);
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
