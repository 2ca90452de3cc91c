/**
 * A direct walk over DER for the narrow shapes the fast readers take
 * (csr_reader.ts, cert_reader.ts): X.690 DER lengths, names of
 * single-valued RDNs in Printable/UTF8/IA5 strings, the common
 * GeneralNames. Anything else throws Unusual, and the caller hands the
 * input to the ASN.1 library, which knows every other shape and every
 * error message.
 */
import { content, oid, readTlv } from '../asn1/der.js';
import type { San } from './general_names.js';
import { DN_ATTRIBUTES, type DnAttribute } from './names.js';

const NAME_BY_OID_HEX = new Map<string, string>();
for (const [name, dotted] of Object.entries(DN_ATTRIBUTES)) NAME_BY_OID_HEX.set(oidContentHex(dotted), name);

function oidContentHex(dotted: string): string {
  const o = oid(dotted);
  return Buffer.from(content(o, readTlv(o))).toString('hex');
}

/** Not the narrow shape: the library reads it. */
export class Unusual extends Error {}

export interface T {
  tag: number;
  start: number;
  content: number;
  end: number;
}

/** One TLV inside [p, limit): der.readTlv's DER length rules; anything it refuses is not the narrow shape. */
export function tlv(b: Buffer, p: number, limit: number): T {
  let t;
  try {
    t = readTlv(b, p);
  } catch {
    throw new Unusual();
  }
  if (t.end > limit) throw new Unusual();
  return { tag: t.tag, start: t.start, content: t.contentStart, end: t.end };
}

export function expect(b: Buffer, p: number, limit: number, tag: number): T {
  const t = tlv(b, p, limit);
  if (t.tag !== tag) throw new Unusual();
  if (tag === 0x06) checkOid(b, t);
  return t;
}

/** X.690 §8.19: base-128 subidentifiers, minimal (no leading 0x80), the last octet without the continuation bit. */
function checkOid(b: Buffer, t: T): void {
  if (t.end === t.content || b[t.end - 1] & 0x80) throw new Unusual();
  for (let i = t.content; i < t.end; i++) if (b[i] === 0x80 && (i === t.content || !(b[i - 1] & 0x80))) throw new Unusual();
}

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function readName(b: Buffer, name: T): DnAttribute[] {
  const out: DnAttribute[] = [];
  for (let p = name.content; p < name.end; ) {
    const rdn = expect(b, p, name.end, 0x31);
    const atv = expect(b, rdn.content, rdn.end, 0x30);
    // Multi-valued RDNs are unusual.
    if (atv.end !== rdn.end) throw new Unusual();
    const oid = expect(b, atv.content, atv.end, 0x06);
    const type = NAME_BY_OID_HEX.get(b.toString('hex', oid.content, oid.end));
    if (!type) throw new Unusual();
    const v = tlv(b, oid.end, atv.end);
    if (v.end !== atv.end) throw new Unusual();
    let value: string;
    if (v.tag === 0x13) {
      value = b.toString('latin1', v.content, v.end);
      if (!PRINTABLE.test(value)) throw new Unusual();
    } else if (v.tag === 0x0c) {
      try {
        value = utf8.decode(b.subarray(v.content, v.end));
      } catch {
        throw new Unusual();
      }
    } else if (v.tag === 0x16) {
      value = b.toString('latin1', v.content, v.end);
      if (!/^[\x00-\x7f]*$/.test(value)) throw new Unusual();
    } else {
      throw new Unusual();
    }
    out.push({ type, value });
    p = rdn.end;
  }
  return out;
}

/** GeneralNames of the requested subjectAltName: dNSName, iPAddress (IPv4), URI, rfc822Name. */
export function readSans(b: Buffer, gns: T, sans: San[]): void {
  for (let p = gns.content; p < gns.end; ) {
    const g = tlv(b, p, gns.end);
    const ascii = () => {
      const s = b.toString('latin1', g.content, g.end);
      if (!/^[\x00-\x7f]*$/.test(s)) throw new Unusual();
      return s;
    };
    switch (g.tag) {
      case 0x81:
        sans.push({ type: 'email', value: ascii() });
        break;
      case 0x82:
        sans.push({ type: 'dns', value: ascii() });
        break;
      case 0x86:
        sans.push({ type: 'uri', value: ascii() });
        break;
      case 0x87:
        if (g.end - g.content !== 4) throw new Unusual();
        sans.push({ type: 'ip', value: `${b[g.content]}.${b[g.content + 1]}.${b[g.content + 2]}.${b[g.content + 3]}` });
        break;
      default:
        throw new Unusual();
    }
    p = g.end;
  }
}

