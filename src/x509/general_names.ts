/**
 * Subject alternative names as "type:value" strings — dns:, ip:, uri:, email: —
 * the form used by profiles, the CLI, the API and the store.
 */
import { isIP } from 'node:net';
import { GeneralName } from '@peculiar/asn1-x509';
import { ProblemError } from '../errors.js';

export type SanType = 'dns' | 'ip' | 'uri' | 'email';
export const SAN_TYPES: readonly SanType[] = ['dns', 'ip', 'uri', 'email'];

export interface San {
  type: SanType;
  value: string;
}

// RFC 1034 §3.5 preferred name syntax, RFC 5280 §4.2.1.6 (no trailing dot, no
// wildcard except a whole leftmost label).
const DNS_RE = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function parseSan(text: string): San {
  const i = text.indexOf(':');
  if (i <= 0) throw new ProblemError('bad_request', `bad SAN "${text}" (expected dns:, ip:, uri: or email: followed by the value)`);
  const type = text.slice(0, i).toLowerCase();
  const value = text.slice(i + 1);
  return normaliseSan({ type: type as SanType, value });
}

export function normaliseSan(s: San): San {
  const bad = (why: string) => new ProblemError('bad_request', `bad ${s.type} SAN "${s.value}": ${why}`);
  switch (s.type) {
    case 'dns': {
      const v = s.value.toLowerCase();
      if (v.length > 253 || !DNS_RE.test(v)) throw bad('not a valid DNS name');
      return { type: 'dns', value: v };
    }
    case 'ip': {
      // Keep exactly what will be encoded: IPv4 as is, IPv6 in the canonical
      // RFC 5952 form. Zones (fe80::1%eth0) have no meaning in a certificate,
      // and the encoder cannot write IPv6 with an embedded IPv4 part.
      const v = isIP(s.value);
      if (v === 4) return { type: 'ip', value: s.value };
      if (v !== 6 || s.value.includes('%')) throw bad('not an IPv4 or IPv6 address');
      const canonical = new URL(`http://[${s.value}]`).hostname.slice(1, -1);
      if (canonical.includes('.')) throw bad('IPv6 with an embedded IPv4 address is not supported');
      return { type: 'ip', value: canonical };
    }
    case 'uri': {
      // RFC 5280 §4.2.1.6: an absolute URI with a scheme.
      if (!/^[a-z][a-z0-9+.-]*:[^\s]+$/i.test(s.value) || !/^[\x21-\x7e]+$/.test(s.value)) throw bad('not an absolute URI');
      return s;
    }
    case 'email': {
      if (!/^[^\s@]+@[^\s@]+$/.test(s.value) || !/^[\x21-\x7e]+$/.test(s.value)) throw bad('not an ASCII mailbox');
      return s;
    }
    default:
      throw new ProblemError('bad_request', `unknown SAN type "${s.type}" (use dns, ip, uri or email)`);
  }
}

export const formatSan = (s: San) => `${s.type}:${s.value}`;

export function toGeneralName(s: San): GeneralName {
  switch (s.type) {
    case 'dns':
      return new GeneralName({ dNSName: s.value });
    case 'ip':
      return new GeneralName({ iPAddress: s.value });
    case 'uri':
      return new GeneralName({ uniformResourceIdentifier: s.value });
    case 'email':
      return new GeneralName({ rfc822Name: s.value });
  }
}

/** Names of types fleetpki does not issue come back as "other:<kind>". */
export function fromGeneralName(g: GeneralName): San | { type: 'other'; value: string } {
  if (g.dNSName !== undefined) return { type: 'dns', value: g.dNSName };
  if (g.iPAddress !== undefined) return { type: 'ip', value: g.iPAddress };
  if (g.uniformResourceIdentifier !== undefined) return { type: 'uri', value: g.uniformResourceIdentifier };
  if (g.rfc822Name !== undefined) return { type: 'email', value: g.rfc822Name };
  if (g.otherName) return { type: 'other', value: `otherName:${g.otherName.typeId}` };
  if (g.directoryName) return { type: 'other', value: 'directoryName' };
  if (g.registeredID) return { type: 'other', value: `registeredID:${g.registeredID}` };
  return { type: 'other', value: 'unsupported' };
}
