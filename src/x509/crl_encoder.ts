/**
 * CRL encoding (RFC 5280 §5) with a fast path for the revoked-entry list.
 * @peculiar/x509's generator builds an object per entry and re-encodes the
 * whole list repeatedly (16 s for 20,000 entries here); a fleet CA may carry
 * a million. Entries are written straight into one growing buffer, page by
 * page as they come from the store, so memory stays close to the size of the
 * CRL itself. test/unit/crl_encoder.test.ts checks the output against the
 * library's parser and `openssl crl -verify`.
 */
import * as der from '../asn1/der.js';
import type { Signer } from '../keys/key_store.js';
import type { ReleasedHold, RevocationReason, RevokedColumns, RevokedEntry } from '../store/store.js';
import { REVOCATION_REASONS } from '../store/store.js';
import { signatureAlgorithmFor } from './algorithms.js';
import { encodeTime } from './cert_builder.js';
import { authorityKeyIdentifier, encodeExtension, type Ext } from './extensions.js';

const OID = {
  cRLNumber: '2.5.29.20',
  deltaCRLIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  freshestCRL: '2.5.29.46',
};

/** Grows by doubling; the entry list is written here without per-entry allocations. */
class ByteSink {
  buf: Buffer;
  len = 0;
  constructor(initial = 1 << 16) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

/**
 * Entry extensions per reason, precomputed (RFC 5280 §5.3.1): reasonCode is
 * left out for `unspecified`, as the RFC asks.
 */
const REASON_EXT: Record<string, Uint8Array> = Object.fromEntries(
  Object.entries(REVOCATION_REASONS).map(([name, code]) => [
    name,
    code === 0 ? new Uint8Array(0) : encodeExtension({ oid: '2.5.29.21', critical: false, value: der.tlv(der.TAG.ENUMERATED, Uint8Array.of(code)) }),
  ]),
);

/** Two decimal digits of `n` at `at` (a plain function: closures cost per call on this hot path). */
function twoDigits(buf: Buffer, at: number, n: number): void {
  buf[at] = 0x30 + ((n / 10) | 0);
  buf[at + 1] = 0x30 + (n % 10);
}

/** Writes `d` as UTCTime "YYMMDDHHMMSSZ" (13 octets) at `off`; years 1950-2049 only. */
function writeUtcTime(buf: Buffer, off: number, d: Date): void {
  buf[off] = der.TAG.UTCTime;
  buf[off + 1] = 13;
  twoDigits(buf, off + 2, d.getUTCFullYear() % 100);
  twoDigits(buf, off + 4, d.getUTCMonth() + 1);
  twoDigits(buf, off + 6, d.getUTCDate());
  twoDigits(buf, off + 8, d.getUTCHours());
  twoDigits(buf, off + 10, d.getUTCMinutes());
  twoDigits(buf, off + 12, d.getUTCSeconds());
  buf[off + 14] = 0x5a; // 'Z'
}

/** Hex digit values by char code; -1 for anything else. */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** Decodes lowercase/uppercase hex into `buf` at `off` (Buffer.write('hex') is slow for 17 bytes). */
function writeHex(buf: Buffer, off: number, hex: string): number {
  const n = hex.length >> 1;
  for (let i = 0; i < n; i++) {
    const hi = HEX[hex.charCodeAt(2 * i)];
    const lo = HEX[hex.charCodeAt(2 * i + 1)];
    if (hi < 0 || lo < 0) throw new RangeError(`bad serial ${hex}`);
    buf[off + i] = (hi << 4) | lo;
  }
  return n;
}

/** Copies a few bytes; TypedArray.set has a high fixed cost for tiny arrays. */
function copySmall(buf: Buffer, off: number, src: Uint8Array): number {
  for (let i = 0; i < src.length; i++) buf[off + i] = src[i];
  return src.length;
}

/**
 * RFC 5280 §5.3.2: invalidityDate is always GeneralizedTime. The extension is
 * fixed-size for years 0000-9999: SEQUENCE { OID 2.5.29.24, OCTET STRING {
 * GeneralizedTime "YYYYMMDDHHMMSSZ" } }, 26 octets, written in place.
 */
const INVALIDITY_PREFIX = Uint8Array.of(0x30, 24, 0x06, 0x03, 0x55, 0x1d, 0x18, 0x04, 17, der.TAG.GeneralizedTime, 15);
const INVALIDITY_EXT_LEN = INVALIDITY_PREFIX.length + 15;

function writeInvalidityDate(buf: Buffer, off: number, d: Date): void {
  const y = d.getUTCFullYear();
  if (!(y >= 0 && y <= 9999)) throw new RangeError(`invalidity date out of range: ${d.toISOString()}`);
  copySmall(buf, off, INVALIDITY_PREFIX);
  const t = off + INVALIDITY_PREFIX.length;
  twoDigits(buf, t, (y / 100) | 0);
  twoDigits(buf, t + 2, y % 100);
  twoDigits(buf, t + 4, d.getUTCMonth() + 1);
  twoDigits(buf, t + 6, d.getUTCDate());
  twoDigits(buf, t + 8, d.getUTCHours());
  twoDigits(buf, t + 10, d.getUTCMinutes());
  twoDigits(buf, t + 12, d.getUTCSeconds());
  buf[t + 14] = 0x5a; // 'Z'
}

/** The invalidityDate extension as bytes (the general path). */
function invalidityDateExt(d: Date): Uint8Array {
  const b = Buffer.alloc(INVALIDITY_EXT_LEN);
  writeInvalidityDate(b, 0, d);
  return b;
}

/** Entry extensions by reason code. */
const REASON_EXT_BY_CODE: Uint8Array[] = [];
for (const [name, code] of Object.entries(REVOCATION_REASONS)) REASON_EXT_BY_CODE[code] = REASON_EXT[name];

/** Reused for every entry: a Date per entry is what a million-entry CRL spends its time collecting. */
const scratchRevoked = new Date(0);
const scratchInvalidity = new Date(0);

/** Appends one revokedCertificates element; times in ms, the invalidity date null when none. */
function writeEntryMs(sink: ByteSink, serialHex: string, revokedAtMs: number, reasonCode: number, invalidityMs: number | null): void {
  const reasonExt = REASON_EXT_BY_CODE[reasonCode];
  if (!reasonExt) throw new RangeError(`unknown reason code ${reasonCode}`);
  scratchRevoked.setTime(revokedAtMs);
  let invalidityDate: Date | undefined;
  if (invalidityMs !== null) {
    scratchInvalidity.setTime(invalidityMs);
    invalidityDate = scratchInvalidity;
  }
  writeEntryWith(sink, serialHex, scratchRevoked, reasonExt, invalidityDate);
}

/** Appends one revokedCertificates element. */
function writeEntry(sink: ByteSink, serialHex: string, revokedAt: Date, reason: RevocationReason, invalidityDate?: Date): void {
  writeEntryWith(sink, serialHex, revokedAt, REASON_EXT[reason], invalidityDate);
}

function writeEntryWith(sink: ByteSink, serialHex: string, revokedAt: Date, reasonExt: Uint8Array, invalidityDate: Date | undefined): void {
  const serialLen = serialHex.length >> 1;
  const extsLen = reasonExt.length + (invalidityDate ? INVALIDITY_EXT_LEN : 0);
  const year = revokedAt.getUTCFullYear();
  const utc = year >= 1950 && year < 2050;
  const timeLen = utc ? 15 : encodeTime(revokedAt).length;
  const extsTotal = extsLen ? 2 + extsLen : 0; // SEQUENCE header (short: < 128)
  const body = 2 + serialLen + timeLen + extsTotal;
  if (serialLen > 20 || extsLen > 127 || body > 127) {
    // Unusual shapes take the general path.
    const parts = [der.tlv(der.TAG.INTEGER, new Uint8Array(Buffer.from(serialHex, 'hex'))), encodeTime(revokedAt)];
    if (extsLen) parts.push(der.seq(reasonExt, ...(invalidityDate ? [invalidityDateExt(invalidityDate)] : [])));
    sink.bytes(der.seq(...parts));
    return;
  }
  sink.reserve(2 + body);
  const b = sink.buf;
  let o = sink.len;
  b[o++] = der.TAG.SEQUENCE;
  b[o++] = body;
  b[o++] = der.TAG.INTEGER;
  b[o++] = serialLen;
  o += writeHex(b, o, serialHex);
  if (utc) {
    writeUtcTime(b, o, revokedAt);
    o += 15;
  } else {
    const t = encodeTime(revokedAt);
    b.set(t, o);
    o += t.length;
  }
  if (extsLen) {
    b[o++] = der.TAG.SEQUENCE;
    b[o++] = extsLen;
    o += copySmall(b, o, reasonExt);
    if (invalidityDate) {
      writeInvalidityDate(b, o, invalidityDate);
      o += INVALIDITY_EXT_LEN;
    }
  }
  sink.len = o;
}

export interface CrlInput {
  /** DER Name of the issuer: the CA certificate's subject, exactly. */
  issuer: Uint8Array;
  /** The CA's subject key identifier, for the AKI extension. */
  issuerKeyId: Uint8Array;
  signer: Signer;
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Revoked entries in pages, as the store hands them out (objects, or columns: see RevokedColumns). */
  entries: AsyncIterable<RevokedEntry[] | RevokedColumns> | Iterable<RevokedEntry[] | RevokedColumns>;
  /** Delta CRL (§5.2.4): the base it applies to, and holds released since it (removeFromCRL). */
  delta?: { baseNumber: number; released: ReleasedHold[] };
  /** Base CRL: where the delta CRL is (§5.2.6 freshestCRL). */
  freshestUrl?: string;
  /** Partitioned CRL: this shard's URL in a critical issuingDistributionPoint (§5.2.5). */
  distributionPointUrl?: string;
}

function uriDistributionPointName(url: string): Uint8Array {
  // DistributionPointName [0] { fullName [0] GeneralNames { uniformResourceIdentifier [6] } }
  return der.ctx(0, true, der.ctx(0, true, der.ctx(6, false, new Uint8Array(Buffer.from(url, 'ascii')))));
}

function crlExtensions(i: CrlInput): Ext[] {
  const exts: Ext[] = [authorityKeyIdentifier(i.issuerKeyId), { oid: OID.cRLNumber, critical: false, value: der.integer(i.number) }];
  if (i.delta) exts.push({ oid: OID.deltaCRLIndicator, critical: true, value: der.integer(i.delta.baseNumber) });
  if (i.distributionPointUrl) {
    // IssuingDistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName, onlyContainsUserCerts [1] BOOLEAN ... }
    exts.push({ oid: OID.issuingDistributionPoint, critical: true, value: der.seq(uriDistributionPointName(i.distributionPointUrl), der.ctx(1, false, Uint8Array.of(0xff))) });
  }
  if (i.freshestUrl && !i.delta) {
    // FreshestCRL ::= CRLDistributionPoints: SEQUENCE OF DistributionPoint { distributionPoint [0] }
    exts.push({ oid: OID.freshestCRL, critical: false, value: der.seq(der.seq(uriDistributionPointName(i.freshestUrl))) });
  }
  return exts;
}

/** Tag and DER length octets for `n` content octets. */
function header(tag: number, n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(tag, n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(tag, 0x80 | bytes.length, ...bytes);
}

/** Room for a tag and the longest DER length this encoder writes (2^32 octets). */
const MAX_HEADER = 6;

/**
 * Builds and signs a CRL; returns its DER and the number of entries. The
 * whole CRL is assembled in one buffer: room for the outer and TBS headers
 * and the fixed fields is left in front of the entry list and filled in once
 * its length is known, so a million entries are never copied.
 */
export async function encodeCrl(i: CrlInput): Promise<{ der: Uint8Array; entries: number }> {
  const alg = signatureAlgorithmFor(i.signer.key);
  const head = der.concat([der.integer(1), alg.algorithmIdentifier, i.issuer, encodeTime(i.thisUpdate), encodeTime(i.nextUpdate)]);
  const front = 2 * MAX_HEADER + head.length + MAX_HEADER;
  const sink = new ByteSink(front + (1 << 16));
  sink.len = front;
  let entries = 0;
  for await (const page of i.entries) {
    if (Array.isArray(page)) {
      for (const e of page) writeEntry(sink, e.serial, e.revokedAt, e.reason, e.invalidityDate);
      entries += page.length;
    } else {
      const { serials, revokedAt, reasons, invalidityDates } = page;
      for (let k = 0; k < serials.length; k++) writeEntryMs(sink, serials[k], revokedAt[k], reasons[k], invalidityDates[k]);
      entries += serials.length;
    }
  }
  for (const r of i.delta?.released ?? []) {
    // §5.3.1: removeFromCRL marks a hold released since the base CRL.
    writeEntry(sink, r.serial, r.releasedAt, 'removeFromCRL');
    entries++;
  }
  const listLen = sink.len - front;
  sink.bytes(der.ctx(0, true, der.seq(...crlExtensions(i).map(encodeExtension))));
  const b = sink.buf;
  // Fill in, backwards from the first entry: the list header (§5.1.2.6: with
  // no revoked certificates the list is absent, not empty), the fixed
  // fields, the TBS header.
  let start = front;
  if (entries) start = putBefore(b, start, header(der.TAG.SEQUENCE, listLen));
  start = putBefore(b, start, head);
  const tbsStart = putBefore(b, start, header(der.TAG.SEQUENCE, sink.len - start));
  const tbs = b.subarray(tbsStart, sink.len);
  const signature = await i.signer.sign(tbs, alg.hash);
  sink.bytes(alg.algorithmIdentifier);
  sink.bytes(der.bitString(signature));
  // sink.bytes may have moved the buffer; offsets stay valid.
  const crlStart = putBefore(sink.buf, tbsStart, header(der.TAG.SEQUENCE, sink.len - tbsStart));
  return { der: sink.buf.subarray(crlStart, sink.len), entries };
}

/** Writes `part` to end at `end`; returns where it starts. */
function putBefore(buf: Buffer, end: number, part: Uint8Array): number {
  buf.set(part, end - part.length);
  return end - part.length;
}
