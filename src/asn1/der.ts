/**
 * A minimal DER writer and TLV reader (X.690). Used where the ASN.1 library is
 * too slow or has no schema: assembling signed structures around an encoded
 * TBS, PKCS#8 encryption parameters, and later the issuance/CRL fast paths.
 */
import { ProblemError } from '../errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8String: 0x0c,
  PrintableString: 0x13,
  IA5String: 0x16,
  UTCTime: 0x17,
  GeneralizedTime: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

function lengthOctets(len: number): Uint8Array {
  if (len < 0x80) return Uint8Array.of(len);
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = content.length === 1 ? content[0] : concat(content);
  return concat([Uint8Array.of(tag), lengthOctets(body.length), body]);
}

export const seq = (...items: Uint8Array[]) => tlv(TAG.SEQUENCE, ...items);
export const octets = (b: Uint8Array) => tlv(TAG.OCTET_STRING, b);
export const nullValue = () => Uint8Array.of(TAG.NULL, 0);
/** BIT STRING with no unused bits: signatures and public keys. */
export const bitString = (b: Uint8Array) => tlv(TAG.BIT_STRING, Uint8Array.of(0), b);
/** Context-specific tag [n], constructed (explicit) or primitive (implicit). */
export const ctx = (n: number, constructed: boolean, ...content: Uint8Array[]) =>
  tlv(0x80 | (constructed ? 0x20 : 0) | n, ...content);

/** INTEGER from a non-negative number, bigint or big-endian unsigned bytes. */
export function integer(v: number | bigint | Uint8Array): Uint8Array {
  let bytes: Uint8Array;
  if (v instanceof Uint8Array) {
    bytes = v;
  } else {
    let n = BigInt(v);
    if (n < 0n) throw new RangeError('negative INTEGER not supported');
    const arr: number[] = [];
    do {
      arr.unshift(Number(n & 0xffn));
      n >>= 8n;
    } while (n > 0n);
    bytes = Uint8Array.from(arr);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1] & 0x80) === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Uint8Array.of(0);
  if (bytes[0] & 0x80) bytes = concat([Uint8Array.of(0), bytes]);
  return tlv(TAG.INTEGER, bytes);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs.length < 2) throw new RangeError(`bad OID ${dotted}`);
  const out: number[] = [];
  const push = (n: bigint) => {
    const groups: number[] = [Number(n & 0x7fn)];
    for (n >>= 7n; n > 0n; n >>= 7n) groups.unshift(Number(n & 0x7fn) | 0x80);
    out.push(...groups);
  };
  push(arcs[0] * 40n + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Uint8Array.from(out));
}

export interface Tlv {
  tag: number;
  /** Offset of the tag octet in the input. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the last content octet. */
  end: number;
}

// A plain function, not a closure per call: readTlv runs per TLV of every request.
function fail(why: string): ProblemError {
  return new ProblemError('bad_request', `malformed DER: ${why}`);
}

/** Reads one TLV at `offset`; throws bad_request on truncated or non-DER lengths. */
export function readTlv(buf: Uint8Array, offset = 0): Tlv {
  if (offset + 2 > buf.length) throw fail('truncated');
  const tag = buf[offset];
  if ((tag & 0x1f) === 0x1f) throw fail('multi-byte tags are not supported');
  let len = buf[offset + 1];
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw fail('indefinite length');
    if (n > 4) throw fail('length too large');
    if (p + n > buf.length) throw fail('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    if (len < 0x80 || (n > 1 && buf[p] === 0)) throw fail('non-minimal length');
    p += n;
  }
  if (p + len > buf.length) throw fail('truncated content');
  return { tag, start: offset, contentStart: p, end: p + len };
}

/** The children of a constructed TLV. */
export function readChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const t = readTlv(buf, p);
    if (t.end > parent.end) throw new ProblemError('bad_request', 'malformed DER: child overruns parent');
    out.push(t);
    p = t.end;
  }
  return out;
}

/** Checks that `buf` is exactly one TLV with nothing after it. */
export function expectSingleTlv(buf: Uint8Array, what: string): Tlv {
  const t = readTlv(buf, 0);
  if (t.end !== buf.length) throw new ProblemError('bad_request', `${what}: ${buf.length - t.end} bytes of trailing data`);
  return t;
}

export const slice = (buf: Uint8Array, t: Tlv) => buf.subarray(t.start, t.end);
export const content = (buf: Uint8Array, t: Tlv) => buf.subarray(t.contentStart, t.end);

// ------------------------------------------------------------ tree writer

/**
 * A constructed TLV whose parts are encoded bytes or further nodes.
 * encodeTree writes a whole tree into one allocation: the helpers above
 * copy every part once per level and allocate per TLV, which is most of
 * the cost of a small structure built per request (an OCSP response).
 */
export interface DerNode {
  readonly tag: number;
  readonly parts: readonly DerPart[];
  /** Content length, filled in by encodeTree. */
  len?: number;
}
export type DerPart = Uint8Array | DerNode;

export const node = (tag: number, ...parts: DerPart[]): DerNode => ({ tag, parts });

function headerSize(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
}

function measure(p: DerPart): number {
  if (p instanceof Uint8Array) return p.length;
  let len = 0;
  for (const c of p.parts) len += measure(c);
  p.len = len;
  return headerSize(len) + len;
}

function writeHeader(out: Uint8Array, off: number, tag: number, len: number): number {
  out[off++] = tag;
  if (len < 0x80) {
    out[off++] = len;
    return off;
  }
  const n = headerSize(len) - 2;
  out[off++] = 0x80 | n;
  for (let i = n - 1; i >= 0; i--) out[off++] = (len >>> (8 * i)) & 0xff;
  return off;
}

function write(out: Uint8Array, off: number, p: DerPart): number {
  if (p instanceof Uint8Array) {
    out.set(p, off);
    return off + p.length;
  }
  off = writeHeader(out, off, p.tag, p.len!);
  for (const c of p.parts) off = write(out, off, c);
  return off;
}

/** The DER of a tree of nodes and encoded parts, in one allocation. */
export function encodeTree(root: DerPart): Uint8Array {
  const out = new Uint8Array(measure(root));
  write(out, 0, root);
  return out;
}
