/**
 * Distinguished names: a compact text form for the CLI, config and logs, and
 * its encoding. Text lists RDNs in encoding order, most significant first, as
 * OpenSSL's `-subj` does: "O=Acme Devices, CN=sensor-1" or "/O=Acme/CN=sensor-1".
 */
import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { ProblemError, rethrowAs } from '../errors.js';

/** Attribute short names fleetpki reads and writes (RFC 4519, RFC 5280 App. A). */
export const DN_ATTRIBUTES: Record<string, string> = {
  CN: '2.5.4.3',
  SN: '2.5.4.4',
  serialNumber: '2.5.4.5',
  C: '2.5.4.6',
  L: '2.5.4.7',
  ST: '2.5.4.8',
  street: '2.5.4.9',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  title: '2.5.4.12',
  GN: '2.5.4.42',
  DC: '0.9.2342.19200300.100.1.25',
  UID: '0.9.2342.19200300.100.1.1',
  emailAddress: '1.2.840.113549.1.9.1',
};
const NAME_BY_OID = Object.fromEntries(Object.entries(DN_ATTRIBUTES).map(([k, v]) => [v, k]));
const ALIASES: Record<string, string> = { commonname: 'CN', serialnumber: 'serialNumber', e: 'emailAddress', email: 'emailAddress', uid: 'UID', dc: 'DC', c: 'C', o: 'O', ou: 'OU', l: 'L', st: 'ST', cn: 'CN', title: 'title', gn: 'GN', street: 'street', sn: 'SN', emailaddress: 'emailAddress' };

/** Upper bounds from RFC 5280 Appendix A (ub-*). */
const UPPER_BOUNDS: Record<string, number> = { CN: 64, O: 64, OU: 64, L: 128, ST: 128, C: 2, serialNumber: 64, title: 64, emailAddress: 255 };

export type DnAttribute = { type: string; value: string };

export function attributeName(typeOrOid: string): string {
  const canon = ALIASES[typeOrOid.toLowerCase()];
  if (canon) return canon;
  if (/^\d+(\.\d+)+$/.test(typeOrOid)) return NAME_BY_OID[typeOrOid] ?? typeOrOid;
  throw new ProblemError('bad_request', `unknown name attribute "${typeOrOid}"`);
}

/** Splits on unescaped separators. */
function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) {
      cur += s[i] + s[i + 1];
      i++;
    } else if (s[i] === sep) {
      out.push(cur);
      cur = '';
    } else cur += s[i];
  }
  out.push(cur);
  return out;
}

export function parseDn(text: string): DnAttribute[] {
  const t = text.trim();
  if (t === '' || t === '/') return [];
  const parts = t.startsWith('/') ? splitEscaped(t.slice(1), '/') : splitEscaped(t, ',');
  return parts.map((p) => {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new ProblemError('bad_request', `bad name component "${p.trim()}" in "${text}" (expected TYPE=value)`);
    const type = attributeName(p.slice(0, eq).trim());
    const value = p.slice(eq + 1).trim().replace(/\\(.)/g, '$1');
    if (value === '') throw new ProblemError('bad_request', `empty value for ${type} in "${text}"`);
    const ub = UPPER_BOUNDS[type];
    if (ub && value.length > ub) throw new ProblemError('bad_request', `${type} is longer than ${ub} characters (RFC 5280 upper bound)`);
    if (type === 'C' && !/^[A-Z]{2}$/.test(value)) throw new ProblemError('bad_request', `C must be a two-letter ISO 3166 code, got "${value}"`);
    return { type, value };
  });
}

const escapeValue = (v: string) => v.replace(/([,\\+"<>;=/])/g, '\\$1');

export function formatDn(attrs: readonly DnAttribute[]): string {
  return attrs.map((a) => `${a.type}=${escapeValue(a.value)}`).join(', ');
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * RFC 5280 §4.1.2.4: DirectoryString as PrintableString where it fits, else
 * UTF8String; countryName and serialNumber are PrintableString (X.520);
 * emailAddress and DC are IA5String.
 */
function encodeAttribute(a: DnAttribute): AttributeTypeAndValue {
  const type = DN_ATTRIBUTES[a.type] ?? a.type;
  const atv = new AttributeTypeAndValue({ type });
  if (a.type === 'emailAddress' || a.type === 'DC') {
    if (!/^[\x00-\x7f]*$/.test(a.value)) throw new ProblemError('bad_request', `${a.type} must be ASCII`);
    atv.value.ia5String = a.value;
  } else if (a.type === 'C' || a.type === 'serialNumber') {
    if (!PRINTABLE.test(a.value)) throw new ProblemError('bad_request', `${a.type} may hold only PrintableString characters`);
    atv.value.printableString = a.value;
  } else if (PRINTABLE.test(a.value)) {
    atv.value.printableString = a.value;
  } else {
    atv.value.utf8String = a.value;
  }
  return atv;
}

export function buildName(attrs: readonly DnAttribute[]): Name {
  return new Name(attrs.map((a) => new RelativeDistinguishedName([encodeAttribute(a)])));
}

export function encodeName(attrs: readonly DnAttribute[]): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(buildName(attrs)));
}

/** Reads a Name; multi-valued RDNs are flattened in order. */
export function nameAttributes(name: Name): DnAttribute[] {
  const out: DnAttribute[] = [];
  for (const rdn of name) {
    for (const atv of rdn) {
      const v = atv.value;
      const value = v.printableString ?? v.utf8String ?? v.ia5String ?? v.teletexString ?? v.bmpString ?? v.universalString ?? (v.anyValue ? `#${Buffer.from(v.anyValue).toString('hex')}` : '');
      out.push({ type: NAME_BY_OID[atv.type] ?? atv.type, value: String(value) });
    }
  }
  return out;
}

export function decodeName(nameDer: Uint8Array): DnAttribute[] {
  return nameAttributes(rethrowAs('bad_request', 'bad Name', () => AsnConvert.parse(nameDer, Name)));
}
