/**
 * The fast path of parseCertificate (cert_info.ts): a direct walk over the
 * DER of the certificates a fleet sees on every request (a device's TLS
 * client certificate, the certificate just issued): X.509 v3, an EC P-256
 * or P-384 key, names of single-valued RDNs in Printable/UTF8/IA5 strings,
 * UTCTime or GeneralizedTime in Z, and the usual extensions. It returns
 * undefined for anything else, and parseCertificate reads it with the
 * ASN.1 library, which knows every other shape and every error message.
 * The library takes about a millisecond per certificate here; this walk a
 * few microseconds. test/unit/cert_reader.test.ts checks it gives the same
 * CertInfo as the library for every certificate of the test fixtures.
 *
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
 * TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature, issuer,
 *   validity, subject, subjectPublicKeyInfo, [1]?, [2]?, [3] extensions }
 */
import { createHash } from 'node:crypto';
import type { CertInfo } from './cert_info.js';
import { expect, readName, readSans, tlv, Unusual, type T } from './der_walk.js';
import { formatDn } from './names.js';

const hex = (b: Buffer, t: T) => b.toString('hex', t.content, t.end);

/** id-ecPublicKey (1.2.840.10045.2.1) and the named curves (RFC 5480 §2.1.1.1), content octets as hex. */
const EC_PUBLIC_KEY = '2a8648ce3d0201';
/**
 * The curves taken here, short Weierstrass with a = -3 (FIPS 186-4 D.1.2):
 * a key is accepted only if its point is on the curve, as OpenSSL checks
 * when it loads one.
 */
const CURVES: Record<string, { name: 'P-256' | 'P-384'; bytes: number; p: bigint; b: bigint }> = {
  '2a8648ce3d030107': {
    name: 'P-256',
    bytes: 32,
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  },
  '2b81040022': {
    name: 'P-384',
    bytes: 48,
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
  },
};

const OID = {
  basicConstraints: '551d13',
  keyUsage: '551d0f',
  extKeyUsage: '551d25',
  subjectAltName: '551d11',
  subjectKeyIdentifier: '551d0e',
  authorityKeyIdentifier: '551d23',
  nameConstraints: '551d1e',
};

/** Key usage bits (RFC 5280 §4.2.1.3) in the order the library lists them, with RFC 5280's names. */
const KEY_USAGE_ORDER: Array<[string, number]> = [
  ['cRLSign', 6],
  ['dataEncipherment', 3],
  ['decipherOnly', 8],
  ['digitalSignature', 0],
  ['encipherOnly', 7],
  ['keyAgreement', 4],
  ['keyCertSign', 5],
  ['keyEncipherment', 2],
  ['nonRepudiation', 1],
];

/** X.690 §8.19 content octets to dotted form. */
function dotted(b: Buffer, t: T): string {
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.content; i < t.end; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new Unusual();
    if (!(b[i] & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY < 50 is 20YY), GeneralizedTime YYYYMMDDHHMMSSZ. */
function time(b: Buffer, t: T): Date {
  const s = b.toString('latin1', t.content, t.end);
  let m: RegExpExecArray | null;
  let year: number;
  if (t.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) year = Number(m[1]) < 50 ? 2000 + Number(m[1]) : 1900 + Number(m[1]);
  else if (t.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) year = Number(m[1]);
  else throw new Unusual();
  const [mo, d, h, mi, se] = m.slice(2).map(Number);
  const ms = Date.UTC(year, mo - 1, d, h, mi, se);
  const back = new Date(ms);
  // No 31 February: the fields must be what they say.
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59 || se > 59) throw new Unusual();
  return back;
}

/** y² = x³ - 3x + b (mod p), with x, y < p. */
function onCurve(c: (typeof CURVES)[string], b: Buffer, at: number): boolean {
  const x = BigInt(`0x${b.toString('hex', at, at + c.bytes)}`);
  const y = BigInt(`0x${b.toString('hex', at + c.bytes, at + 2 * c.bytes)}`);
  const { p } = c;
  if (x >= p || y >= p) return false;
  return (y * y - (x * x * x - 3n * x + c.b)) % p === 0n;
}

function boolTrue(b: Buffer, t: T): void {
  // DER (X.690 §11.1): TRUE is FF; FALSE of a DEFAULT FALSE is never encoded.
  if (t.tag !== 0x01 || t.end - t.content !== 1 || b[t.content] !== 0xff) throw new Unusual();
}

function smallInteger(b: Buffer, t: T): number {
  const n = t.end - t.content;
  if (t.tag !== 0x02 || n < 1 || n > 4 || b[t.content] & 0x80 || (n > 1 && b[t.content] === 0 && !(b[t.content + 1] & 0x80))) throw new Unusual();
  let v = 0;
  for (let i = t.content; i < t.end; i++) v = v * 256 + b[i];
  return v;
}

/** What the extensions say, in CertInfo's terms; `all` is CertInfo.extensions. */
type Extensions = Pick<CertInfo, 'isCa' | 'pathLen' | 'keyUsage' | 'extendedKeyUsage' | 'sans' | 'ski' | 'aki'> & { all: CertInfo['extensions'] };

function readExtensions(b: Buffer, list: T): Extensions {
  const out: Extensions = { isCa: false, keyUsage: [], extendedKeyUsage: [], sans: [], all: [] };
  const seen = new Set<string>();
  for (let p = list.content; p < list.end; ) {
    const ext = expect(b, p, list.end, 0x30);
    const id = expect(b, ext.content, ext.end, 0x06);
    const idHex = hex(b, id);
    if (seen.has(idHex)) throw new Unusual();
    seen.add(idHex);
    let next = id.end;
    let critical = false;
    const maybe = tlv(b, next, ext.end);
    if (maybe.tag === 0x01) {
      boolTrue(b, maybe);
      critical = true;
      next = maybe.end;
    }
    const value = expect(b, next, ext.end, 0x04);
    if (value.end !== ext.end) throw new Unusual();
    const v = () => {
      const t = tlv(b, value.content, value.end);
      if (t.end !== value.end) throw new Unusual();
      return t;
    };
    switch (idHex) {
      case OID.basicConstraints: {
        const seq = v();
        if (seq.tag !== 0x30) throw new Unusual();
        let q = seq.content;
        if (q < seq.end && b[q] === 0x01) {
          const ca = tlv(b, q, seq.end);
          boolTrue(b, ca);
          out.isCa = true;
          q = ca.end;
        }
        if (q < seq.end) {
          const pl = tlv(b, q, seq.end);
          out.pathLen = smallInteger(b, pl);
          q = pl.end;
        }
        if (q !== seq.end) throw new Unusual();
        break;
      }
      case OID.keyUsage: {
        const bits = v();
        const n = bits.end - bits.content;
        if (bits.tag !== 0x03 || n < 2 || n > 3 || b[bits.content] > 7) throw new Unusual();
        const bit = (i: number) => (b[bits.content + 1 + (i >> 3)] & (0x80 >> (i & 7))) !== 0;
        const used = (n - 1) * 8 - b[bits.content];
        // X.690 §11.2.1: the unused bits are zero.
        for (let i = used; i < (n - 1) * 8; i++) if (bit(i)) throw new Unusual();
        const set = (i: number) => i < used && bit(i);
        out.keyUsage = KEY_USAGE_ORDER.filter(([, i]) => set(i)).map(([name]) => name);
        break;
      }
      case OID.extKeyUsage: {
        const seq = v();
        if (seq.tag !== 0x30) throw new Unusual();
        for (let q = seq.content; q < seq.end; ) {
          const o = expect(b, q, seq.end, 0x06);
          out.extendedKeyUsage.push(dotted(b, o));
          q = o.end;
        }
        break;
      }
      case OID.subjectAltName: {
        const seq = v();
        if (seq.tag !== 0x30) throw new Unusual();
        readSans(b, seq, out.sans);
        break;
      }
      case OID.subjectKeyIdentifier: {
        const os = v();
        if (os.tag !== 0x04) throw new Unusual();
        out.ski = new Uint8Array(b.subarray(os.content, os.end));
        break;
      }
      case OID.authorityKeyIdentifier: {
        const seq = v();
        if (seq.tag !== 0x30) throw new Unusual();
        // Only the keyIdentifier form; authorityCertIssuer and serial go to the library.
        if (seq.content < seq.end) {
          const kid = tlv(b, seq.content, seq.end);
          if (kid.tag !== 0x80 || kid.end !== seq.end) throw new Unusual();
          out.aki = new Uint8Array(b.subarray(kid.content, kid.end));
        }
        break;
      }
      case OID.nameConstraints:
        throw new Unusual();
    }
    out.all.push({ oid: dotted(b, id), critical, value: new Uint8Array(b.subarray(value.content, value.end)) });
    p = ext.end;
  }
  return out;
}

/** The CertInfo of a certificate of the common shape, or undefined (the library reads it). */
export function readCertificateFast(input: Uint8Array): CertInfo | undefined {
  const b = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  try {
    const outer = expect(b, 0, b.length, 0x30);
    if (outer.end !== b.length) throw new Unusual();
    const tbs = expect(b, outer.content, outer.end, 0x30);
    const sigAlg = expect(b, tbs.end, outer.end, 0x30);
    const sig = expect(b, sigAlg.end, outer.end, 0x03);
    if (sig.end !== outer.end || sig.end - sig.content < 2 || b[sig.content] !== 0) throw new Unusual();
    const sigOid = expect(b, sigAlg.content, sigAlg.end, 0x06);

    const version = expect(b, tbs.content, tbs.end, 0xa0);
    const vInt = expect(b, version.content, version.end, 0x02);
    if (vInt.end !== version.end || vInt.end - vInt.content !== 1 || b[vInt.content] !== 2) throw new Unusual();
    const serial = expect(b, version.end, tbs.end, 0x02);
    if (serial.end === serial.content) throw new Unusual();
    const sigInner = expect(b, serial.end, tbs.end, 0x30);
    expect(b, sigInner.content, sigInner.end, 0x06);
    const issuer = expect(b, sigInner.end, tbs.end, 0x30);
    const validity = expect(b, issuer.end, tbs.end, 0x30);
    const nb = tlv(b, validity.content, validity.end);
    const na = tlv(b, nb.end, validity.end);
    if (na.end !== validity.end) throw new Unusual();
    const subject = expect(b, validity.end, tbs.end, 0x30);
    const spki = expect(b, subject.end, tbs.end, 0x30);
    let exts: Extensions = { isCa: false, keyUsage: [], extendedKeyUsage: [], sans: [], all: [] };
    if (spki.end !== tbs.end) {
      const wrapper = expect(b, spki.end, tbs.end, 0xa3);
      if (wrapper.end !== tbs.end) throw new Unusual();
      const list = expect(b, wrapper.content, wrapper.end, 0x30);
      if (list.end !== wrapper.end || list.end === list.content) throw new Unusual();
      exts = readExtensions(b, list);
    }

    // SubjectPublicKeyInfo: an uncompressed point on P-256 or P-384.
    const alg = expect(b, spki.content, spki.end, 0x30);
    const algOid = expect(b, alg.content, alg.end, 0x06);
    const curveOid = expect(b, algOid.end, alg.end, 0x06);
    if (curveOid.end !== alg.end || hex(b, algOid) !== EC_PUBLIC_KEY) throw new Unusual();
    const curve = CURVES[hex(b, curveOid)];
    const point = expect(b, alg.end, spki.end, 0x03);
    if (!curve || point.end !== spki.end || point.end - point.content !== 2 + 2 * curve.bytes || b[point.content] !== 0 || b[point.content + 1] !== 0x04) throw new Unusual();
    if (!onCurve(curve, b, point.content + 2)) throw new Unusual();

    const subjectAttrs = readName(b, subject);
    const spkiDer = new Uint8Array(b.subarray(spki.start, spki.end));
    return {
      der: input,
      serial: hex(b, serial),
      subject: subjectAttrs,
      subjectText: formatDn(subjectAttrs),
      issuerText: formatDn(readName(b, issuer)),
      subjectDer: new Uint8Array(b.subarray(subject.start, subject.end)),
      issuerDer: new Uint8Array(b.subarray(issuer.start, issuer.end)),
      spki: spkiDer,
      spkiSha256: createHash('sha256').update(spkiDer).digest('hex'),
      key: { type: 'ec', curve: curve.name },
      notBefore: time(b, nb),
      notAfter: time(b, na),
      isCa: exts.isCa,
      pathLen: exts.pathLen,
      keyUsage: exts.keyUsage,
      extendedKeyUsage: exts.extendedKeyUsage,
      sans: exts.sans,
      ski: exts.ski,
      aki: exts.aki,
      nameConstraints: undefined,
      signatureAlgorithm: dotted(b, sigOid),
      fingerprintSha256: createHash('sha256').update(b).digest('hex'),
      extensions: exts.all,
      tbs: new Uint8Array(b.subarray(tbs.start, tbs.end)),
      signature: new Uint8Array(b.subarray(sig.content + 1, sig.end)),
    };
  } catch (e) {
    if (e instanceof Unusual) return undefined;
    throw e;
  }
}
