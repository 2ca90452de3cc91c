/**
 * X.509 v3 extension values (RFC 5280 §4.2), encoded with @peculiar/asn1-x509.
 * Each builder returns an `Ext`; `encodeExtension` wraps it as the DER of an
 * Extension SEQUENCE.
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AccessDescription,
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CRLDistributionPoints,
  DistributionPoint,
  DistributionPointName,
  ExtendedKeyUsage,
  GeneralName,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  id_ad_caIssuers,
  id_ad_ocsp,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
} from '@peculiar/asn1-x509';
import * as der from '../asn1/der.js';
import { ProblemError } from '../errors.js';
import { toGeneralName, type San } from './general_names.js';

export interface Ext {
  oid: string;
  critical: boolean;
  /** DER of the extension value (the content of extnValue's OCTET STRING). */
  value: Uint8Array;
}

const ser = (v: unknown) => new Uint8Array(AsnConvert.serialize(v));

export function encodeExtension(e: Ext): Uint8Array {
  return e.critical
    ? der.seq(der.oid(e.oid), Uint8Array.of(der.TAG.BOOLEAN, 1, 0xff), der.octets(e.value))
    : der.seq(der.oid(e.oid), der.octets(e.value));
}

/** RFC 5280 §4.2.1.9: critical in CA certificates. */
export function basicConstraints(ca: boolean, pathLen?: number): Ext {
  return { oid: id_ce_basicConstraints, critical: true, value: ser(new BasicConstraints(ca ? { cA: true, pathLenConstraint: pathLen } : {})) };
}

/** RFC 5280 §4.2.1.3: SHOULD be critical. */
export function keyUsage(usages: readonly string[]): Ext {
  let flags = 0;
  for (const u of usages) flags |= KeyUsageFlags[u as keyof typeof KeyUsageFlags];
  return { oid: id_ce_keyUsage, critical: true, value: ser(new KeyUsage(flags)) };
}

export function extendedKeyUsage(oids: readonly string[]): Ext {
  return { oid: id_ce_extKeyUsage, critical: false, value: ser(new ExtendedKeyUsage([...oids])) };
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifierOf(spki: Uint8Array): Uint8Array {
  const outer = der.readTlv(spki, 0);
  const [, bits] = der.readChildren(spki, outer);
  const keyBits = spki.subarray(bits.contentStart + 1, bits.end);
  return new Uint8Array(createHash('sha1').update(keyBits).digest());
}

export function subjectKeyIdentifier(ski: Uint8Array): Ext {
  return { oid: id_ce_subjectKeyIdentifier, critical: false, value: ser(new SubjectKeyIdentifier(ski)) };
}

export function authorityKeyIdentifier(issuerSki: Uint8Array): Ext {
  return { oid: id_ce_authorityKeyIdentifier, critical: false, value: ser(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuerSki) })) };
}

/** RFC 5280 §4.2.1.6: critical when the subject is empty. */
export function subjectAltName(sans: readonly San[], critical: boolean): Ext {
  return { oid: id_ce_subjectAltName, critical, value: ser(new SubjectAlternativeName(sans.map(toGeneralName))) };
}

export function crlDistributionPoints(urls: readonly string[]): Ext {
  const points = urls.map((u) => new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: u })] }) }));
  return { oid: id_ce_cRLDistributionPoints, critical: false, value: ser(new CRLDistributionPoints(points)) };
}

/** RFC 5280 §4.2.1.15: where delta CRLs are; same syntax as CRL distribution points. */
export function freshestCrl(urls: readonly string[]): Ext {
  return { ...crlDistributionPoints(urls), oid: '2.5.29.46' };
}

export function authorityInfoAccess(ocspUrls: readonly string[], caIssuersUrls: readonly string[]): Ext {
  const items = [
    ...ocspUrls.map((u) => new AccessDescription({ accessMethod: id_ad_ocsp, accessLocation: new GeneralName({ uniformResourceIdentifier: u }) })),
    ...caIssuersUrls.map((u) => new AccessDescription({ accessMethod: id_ad_caIssuers, accessLocation: new GeneralName({ uniformResourceIdentifier: u }) })),
  ];
  return { oid: id_pe_authorityInfoAccess, critical: false, value: ser(new AuthorityInfoAccessSyntax(items)) };
}

/** RFC 6960 §4.2.2.2.1: the value is NULL. */
export function ocspNoCheck(): Ext {
  return { oid: '1.3.6.1.5.5.7.48.1.5', critical: false, value: der.nullValue() };
}

export interface NameConstraintSpec {
  permitted?: San[];
  excluded?: San[];
}

/**
 * RFC 5280 §4.2.1.10 (MUST be critical). Written in plain DER because the
 * library cannot encode an iPAddress constraint (address followed by mask).
 * "ip:" entries are "address/prefix"; "dns:" a domain; "email:" a mailbox,
 * host or ".domain"; "uri:" a host or ".domain".
 */
export function nameConstraints(spec: NameConstraintSpec): Ext {
  const subtrees = (tag: number, list?: San[]) =>
    list && list.length ? [der.ctx(tag, true, ...list.map((s) => der.seq(constraintBase(s))))] : [];
  return {
    oid: id_ce_nameConstraints,
    critical: true,
    value: der.seq(...subtrees(0, spec.permitted), ...subtrees(1, spec.excluded)),
  };
}

const ascii = (s: string) => new Uint8Array(Buffer.from(s, 'ascii'));

/** GeneralName CHOICE, IMPLICIT tags: rfc822Name [1], dNSName [2], URI [6], iPAddress [7]. */
function constraintBase(s: San): Uint8Array {
  switch (s.type) {
    case 'email':
      return der.ctx(1, false, ascii(s.value));
    case 'dns':
      return der.ctx(2, false, ascii(s.value));
    case 'uri':
      return der.ctx(6, false, ascii(s.value));
    case 'ip': {
      const { address, prefix } = parseCidr(s.value);
      const mask = address.map((_, i) => {
        const bits = Math.max(0, Math.min(8, prefix - i * 8));
        return (0xff00 >> bits) & 0xff;
      });
      return der.ctx(7, false, address, mask);
    }
  }
}

export function parseCidr(text: string): { address: Uint8Array; prefix: number } {
  const [addr, pfx] = text.split('/');
  const v4 = addr.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  let address: Uint8Array;
  if (v4) {
    if (v4.slice(1).some((o) => Number(o) > 255)) throw new ProblemError('bad_request', `bad IPv4 address ${addr}`);
    address = Uint8Array.from(v4.slice(1).map(Number));
  } else {
    address = ipv6Bytes(addr);
  }
  const max = address.length * 8;
  const prefix = pfx === undefined ? max : Number(pfx);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new ProblemError('bad_request', `bad prefix length in ${text}`);
  return { address, prefix };
}

function ipv6Bytes(addr: string): Uint8Array {
  const [head, tail] = addr.split('::');
  const parse = (s: string | undefined) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) throw new ProblemError('bad_request', `bad IPv6 address ${addr}`);
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}
