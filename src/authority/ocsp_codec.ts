/**
 * OCSP on the wire (RFC 6960 §4, RFC 8954): reads an OCSPRequest strictly and
 * writes OCSPResponses. Anything but a request is a `bad_request`, which the
 * responder answers with malformedRequest.
 *
 * Two readers: the common shape (no version, requestor name, signature or
 * per-certificate extensions; what OpenSSL, GnuTLS, NSS and browsers send)
 * is read straight from the DER in a few microseconds; anything else goes
 * through @peculiar/asn1-ocsp, which costs some hundreds (too slow for a
 * responder that signs nonce answers by the ten thousand). Because the
 * library is lenient (it ignores trailing data and unknown trailing
 * elements), that request is first walked as DER and the parsed TBSRequest
 * must re-encode to exactly the bytes received. Responses are written
 * directly as DER too; test/unit/ocsp_codec.test.ts checks both readers
 * agree and that responses match the library's encoding byte for byte.
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import type { Extension } from '@peculiar/asn1-x509';
import { OCSPRequest, id_pkix_ocsp_basic, id_pkix_ocsp_nonce } from '@peculiar/asn1-ocsp';
import * as der from '../asn1/der.js';
import { ProblemError } from '../errors.js';
import { REVOCATION_REASONS, type RevocationReason } from '../store/store.js';

/** RFC 6960 §4.2.1 OCSPResponseStatus (4 is unused). */
export const OCSP_RESPONSE_STATUS = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;
export type OcspResponseStatus = keyof typeof OCSP_RESPONSE_STATUS;

/** CertID hash algorithms the responder understands (RFC 6960 §4.1.1, RFC 5019 §2.1.1). */
export const CERT_ID_HASHES = { '1.3.14.3.2.26': 'sha1', '2.16.840.1.101.3.4.2.1': 'sha256' } as const;
export type CertIdHash = (typeof CERT_ID_HASHES)[keyof typeof CERT_ID_HASHES];
const DIGEST_LENGTH: Record<CertIdHash, number> = { sha1: 20, sha256: 32 };

export const OID_NONCE = id_pkix_ocsp_nonce;
/** RFC 8954 §2.1: Nonce ::= OCTET STRING (SIZE(1..32)). */
export const NONCE_MAX_OCTETS = 32;
/** RFC 5019 §2.1.1 asks for one; RFC 6960 allows a list. Bound the work per request. */
export const MAX_REQUESTS_PER_MESSAGE = 10;
/** Largest request we read at all; the HTTP adapter enforces the same. */
export const MAX_REQUEST_OCTETS = 10 * 1024;

export interface RequestedCert {
  hash: CertIdHash;
  issuerNameHash: Uint8Array;
  issuerKeyHash: Uint8Array;
  /** Lowercase hex of the INTEGER content octets, as the store keeps serials. */
  serial: string;
  /** The CertID's DER, the request's own bytes: echoed unchanged in the SingleResponse. */
  certIdDer: Uint8Array;
}

export interface ParsedOcspRequest {
  certs: RequestedCert[];
  /** The nonce extension's extnValue, echoed unchanged (RFC 8954 §2.1). */
  nonce?: Uint8Array;
}

const bad = (why: string) => new ProblemError('bad_request', `malformed OCSP request: ${why}`);

/** Every length definite and minimal, every constructed value exactly filled by its children. */
function checkDerStructure(buf: Uint8Array, t: der.Tlv, depth: number): void {
  if (depth > 24) throw bad('nested too deeply');
  if (!(buf[t.start] & 0x20)) return;
  for (const child of der.readChildren(buf, t)) checkDerStructure(buf, child, depth + 1);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Extensions a request may mark critical because we understand them. */
const UNDERSTOOD_REQUEST_EXTENSIONS = new Set<string>([OID_NONCE]);

function checkExtensions(exts: readonly Extension[] | undefined, where: string): void {
  const seen = new Set<string>();
  for (const e of exts ?? []) {
    // RFC 5280 §4.2 (which RFC 6960 §4.4 builds on): one instance per extension.
    if (seen.has(e.extnID)) throw bad(`${where} extension ${e.extnID} appears twice`);
    seen.add(e.extnID);
    // RFC 6960 §4.4: unrecognized extensions are ignored unless critical.
    if (e.critical && !UNDERSTOOD_REQUEST_EXTENSIONS.has(e.extnID)) throw bad(`unsupported critical ${where} extension ${e.extnID}`);
  }
}

/**
 * RFC 8954 §2.1: the extnValue holds a DER OCTET STRING of 1..32 octets. The
 * whole extnValue is echoed, so clients that compare bytes see their own.
 */
function readNonce(ext: Extension): Uint8Array {
  const value = new Uint8Array(ext.extnValue.buffer);
  let inner: der.Tlv;
  try {
    inner = der.expectSingleTlv(value, 'nonce');
  } catch {
    throw bad('the nonce is not a DER OCTET STRING');
  }
  if (inner.tag !== der.TAG.OCTET_STRING) throw bad('the nonce is not a DER OCTET STRING');
  const len = inner.end - inner.contentStart;
  if (len < 1 || len > NONCE_MAX_OCTETS) throw bad(`a nonce of ${len} octets is outside 1..${NONCE_MAX_OCTETS} (RFC 8954)`);
  return value.slice();
}

/** Parses one DER OCSPRequest; throws ProblemError bad_request for anything not exactly that. */
export function parseOcspRequest(input: Uint8Array): ParsedOcspRequest {
  if (input.length === 0) throw bad('empty');
  if (input.length > MAX_REQUEST_OCTETS) throw bad(`${input.length} octets is more than ${MAX_REQUEST_OCTETS}`);
  return readCommonRequest(input) ?? parseWithLibrary(input);
}

const OID_TLV = (dotted: string) => Buffer.from(der.oid(dotted));
const NONCE_OID_TLV = OID_TLV(OID_NONCE);
const HASH_BY_OID_TLV = new Map<string, CertIdHash>(Object.entries(CERT_ID_HASHES).map(([oid, h]) => [OID_TLV(oid).toString('latin1'), h]));

/**
 * The common request shape, read directly (every length checked by
 * der.readTlv: definite, minimal, inside its parent):
 *   OCSPRequest SEQUENCE { TBSRequest SEQUENCE { requestList SEQUENCE OF
 *     Request SEQUENCE { CertID SEQUENCE { AlgorithmIdentifier SEQUENCE {
 *     OID [NULL] }, OCTET STRING, OCTET STRING, INTEGER } },
 *     [2] { Extensions SEQUENCE OF Extension SEQUENCE { OID, BOOLEAN?, OCTET STRING } } } }
 * Returns undefined for anything else, or anything this reader cannot vouch
 * for (then the library path decides); throws only what both readers refuse
 * alike with the same detail.
 */
export function readCommonRequest(input: Uint8Array): ParsedOcspRequest | undefined {
  try {
    const outer = der.readTlv(input, 0);
    if (outer.tag !== der.TAG.SEQUENCE || outer.end !== input.length) return undefined;
    const tbs = der.readTlv(input, outer.contentStart);
    if (tbs.tag !== der.TAG.SEQUENCE || tbs.end !== outer.end) return undefined; // a signature follows, or junk
    const list = der.readTlv(input, tbs.contentStart);
    if (list.tag !== der.TAG.SEQUENCE) return undefined; // version or requestorName first
    const certs: RequestedCert[] = [];
    for (let p = list.contentStart; p < list.end; ) {
      const request = der.readTlv(input, p);
      if (request.tag !== der.TAG.SEQUENCE || request.end > list.end) return undefined;
      const id = der.readTlv(input, request.contentStart);
      if (id.tag !== der.TAG.SEQUENCE || id.end !== request.end) return undefined; // singleRequestExtensions
      const cert = readCertId(input, id);
      if (!cert) return undefined;
      certs.push(cert);
      if (certs.length > MAX_REQUESTS_PER_MESSAGE) return undefined;
      p = request.end;
    }
    if (certs.length === 0) return undefined;
    let nonce: Uint8Array | undefined;
    if (list.end !== tbs.end) {
      const exts = der.readTlv(input, list.end);
      if (exts.tag !== 0xa2 || exts.end !== tbs.end) return undefined;
      const seq = der.readTlv(input, exts.contentStart);
      if (seq.tag !== der.TAG.SEQUENCE || seq.end !== exts.end || seq.end === seq.contentStart) return undefined;
      for (let p = seq.contentStart; p < seq.end; ) {
        const ext = der.readTlv(input, p);
        if (ext.tag !== der.TAG.SEQUENCE || ext.end > seq.end) return undefined;
        const oid = der.readTlv(input, ext.contentStart);
        if (oid.tag !== der.TAG.OID || !wellFormedOid(input, oid)) return undefined;
        let at = oid.end;
        let critical = false;
        const next = der.readTlv(input, at);
        if (next.tag === der.TAG.BOOLEAN) {
          // DER: TRUE is FF, and FALSE (the default) is never written.
          if (next.end - next.contentStart !== 1 || input[next.contentStart] !== 0xff) return undefined;
          critical = true;
          at = next.end;
        }
        const value = der.readTlv(input, at);
        if (value.tag !== der.TAG.OCTET_STRING || value.end !== ext.end) return undefined;
        const isNonce = sameBytes(der.slice(input, oid), NONCE_OID_TLV);
        // Duplicates, unknown critical ones and bad nonces: the library path words the refusal.
        if (!isNonce) {
          if (critical) return undefined;
        } else {
          if (nonce) return undefined;
          const inner = der.readTlv(input, value.contentStart);
          const len = inner.end - inner.contentStart;
          if (inner.tag !== der.TAG.OCTET_STRING || inner.end !== value.end || len < 1 || len > NONCE_MAX_OCTETS) return undefined;
          nonce = input.slice(value.contentStart, value.end);
        }
        p = ext.end;
      }
      // Another extension twice: let the library path find and word it.
      if (hasDuplicateExtension(input, seq)) return undefined;
    }
    return { certs, nonce };
  } catch {
    return undefined;
  }
}

/** X.690 §8.19: at least one subidentifier, each minimal (no leading 0x80), the last octet ending one. */
function wellFormedOid(input: Uint8Array, t: der.Tlv): boolean {
  if (t.end === t.contentStart || input[t.end - 1] & 0x80) return false;
  for (let i = t.contentStart; i < t.end; i++) {
    const startsSubid = i === t.contentStart || !(input[i - 1] & 0x80);
    if (startsSubid && input[i] === 0x80) return false;
  }
  return true;
}

function hasDuplicateExtension(input: Uint8Array, seq: der.Tlv): boolean {
  const seen = new Set<string>();
  for (const ext of der.readChildren(input, seq)) {
    const oid = Buffer.from(der.slice(input, der.readTlv(input, ext.contentStart))).toString('latin1');
    if (seen.has(oid)) return true;
    seen.add(oid);
  }
  return false;
}

/** CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING, serialNumber INTEGER } */
function readCertId(input: Uint8Array, id: der.Tlv): RequestedCert | undefined {
  const alg = der.readTlv(input, id.contentStart);
  if (alg.tag !== der.TAG.SEQUENCE) return undefined;
  const oid = der.readTlv(input, alg.contentStart);
  if (oid.tag !== der.TAG.OID) return undefined;
  const hash = HASH_BY_OID_TLV.get(Buffer.from(der.slice(input, oid)).toString('latin1'));
  if (!hash) return undefined;
  if (oid.end !== alg.end) {
    const params = der.readTlv(input, oid.end);
    if (params.tag !== der.TAG.NULL || params.contentStart !== params.end || params.end !== alg.end) return undefined;
  }
  const nameHash = der.readTlv(input, alg.end);
  const keyHashTlv = nameHash.tag === der.TAG.OCTET_STRING ? der.readTlv(input, nameHash.end) : undefined;
  const serial = keyHashTlv?.tag === der.TAG.OCTET_STRING ? der.readTlv(input, keyHashTlv.end) : undefined;
  if (!keyHashTlv || !serial || serial.tag !== der.TAG.INTEGER || serial.end !== id.end) return undefined;
  const n = serial.end - serial.contentStart;
  // A minimal INTEGER only (DER); the library path words any refusal.
  if (n === 0 || (n > 1 && ((input[serial.contentStart] === 0 && input[serial.contentStart + 1] < 0x80) || (input[serial.contentStart] === 0xff && input[serial.contentStart + 1] >= 0x80)))) return undefined;
  const issuerNameHash = input.slice(nameHash.contentStart, nameHash.end);
  const issuerKeyHash = input.slice(keyHashTlv.contentStart, keyHashTlv.end);
  if (issuerNameHash.length !== DIGEST_LENGTH[hash] || issuerKeyHash.length !== DIGEST_LENGTH[hash]) return undefined;
  return {
    hash,
    issuerNameHash,
    issuerKeyHash,
    serial: Buffer.from(input.buffer, input.byteOffset + serial.contentStart, n).toString('hex'),
    certIdDer: input.slice(id.start, id.end),
  };
}

/** The library reader: any request shape, strictly checked (exported for the tests that compare the readers). */
export function parseWithLibrary(input: Uint8Array): ParsedOcspRequest {
  let outer: der.Tlv;
  let parts: der.Tlv[];
  try {
    outer = der.expectSingleTlv(input, 'OCSPRequest');
    if (outer.tag !== der.TAG.SEQUENCE) throw bad('not a SEQUENCE');
    checkDerStructure(input, outer, 0);
    parts = der.readChildren(input, outer);
  } catch (e) {
    throw e instanceof ProblemError ? bad(e.detail) : bad(String(e));
  }
  // OCSPRequest ::= SEQUENCE { tbsRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
  if (parts.length < 1 || parts.length > 2 || parts[0].tag !== der.TAG.SEQUENCE || (parts[1] && parts[1].tag !== 0xa0)) throw bad('not an OCSPRequest');

  let req: OCSPRequest;
  let tbsAgain: Uint8Array;
  try {
    req = AsnConvert.parse(input, OCSPRequest);
    tbsAgain = new Uint8Array(AsnConvert.serialize(req.tbsRequest));
  } catch (e) {
    throw bad((e as Error)?.message ?? String(e));
  }
  // The library skips elements it has no field for; a TBSRequest that does
  // not re-encode to the same bytes carried something else (or BER).
  if (!sameBytes(tbsAgain, der.slice(input, parts[0]))) throw bad('the TBSRequest is not DER or has unexpected elements');

  const tbs = req.tbsRequest;
  if (tbs.version !== 0) throw bad(`version ${tbs.version} (only v1 is defined)`);
  if (tbs.requestList.length === 0) throw bad('no certificate is asked about');
  if (tbs.requestList.length > MAX_REQUESTS_PER_MESSAGE) throw bad(`${tbs.requestList.length} certificates in one request (at most ${MAX_REQUESTS_PER_MESSAGE})`);
  checkExtensions(tbs.requestExtensions, 'request');

  const certs = tbs.requestList.map((r): RequestedCert => {
    checkExtensions(r.singleRequestExtensions, 'single request');
    const id = r.reqCert;
    const hash = CERT_ID_HASHES[id.hashAlgorithm.algorithm as keyof typeof CERT_ID_HASHES];
    // An unknown hash makes the CertID uninterpretable: the request cannot be
    // understood at all, which is what malformedRequest says (see ocsp.ts).
    if (!hash) throw bad(`CertID hash algorithm ${id.hashAlgorithm.algorithm} is not supported (SHA-1 or SHA-256)`);
    const params = id.hashAlgorithm.parameters;
    if (params && !sameBytes(new Uint8Array(params), der.nullValue())) throw bad('CertID hash algorithm parameters must be absent or NULL');
    const nameHash = new Uint8Array(id.issuerNameHash.buffer);
    const keyHash = new Uint8Array(id.issuerKeyHash.buffer);
    if (nameHash.length !== DIGEST_LENGTH[hash] || keyHash.length !== DIGEST_LENGTH[hash]) throw bad(`CertID hashes are not ${hash} digests`);
    const serial = new Uint8Array(id.serialNumber);
    if (serial.length === 0) throw bad('empty serial number');
    return { hash, issuerNameHash: nameHash, issuerKeyHash: keyHash, serial: Buffer.from(serial).toString('hex'), certIdDer: new Uint8Array(AsnConvert.serialize(id)) };
  });

  const nonceExt = tbs.requestExtensions?.find((e) => e.extnID === OID_NONCE);
  return { certs, nonce: nonceExt ? readNonce(nonceExt) : undefined };
}

/** The certificate status of one SingleResponse. */
export type CertState = { kind: 'good' } | { kind: 'unknown' } | { kind: 'revoked'; revokedAt: Date; reason: RevocationReason };

/** A stable text form of a state: what the cache compares with the store. */
export function stateKey(s: CertState): string {
  return s.kind === 'revoked' ? `revoked:${s.reason}:${s.revokedAt.getTime()}` : s.kind;
}

export interface SingleAnswer {
  /** DER CertID, as the request had it. */
  certIdDer: Uint8Array;
  state: CertState;
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface ResponseToSign {
  /** DER SubjectPublicKeyInfo of the signing key: responderID byKey. */
  signerSpki: Uint8Array;
  producedAt: Date;
  answers: SingleAnswer[];
  /** extnValue of the request's nonce, echoed (RFC 8954). */
  nonce?: Uint8Array;
}

/** The subjectPublicKey BIT STRING contents without the unused-bits octet (RFC 6960 §4.2.1 KeyHash, CertID issuerKeyHash). */
export function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = der.readTlv(spki, 0);
  const kids = der.readChildren(spki, outer);
  const bits = kids[1];
  if (!bits || bits.tag !== der.TAG.BIT_STRING) throw new ProblemError('bad_key', 'SubjectPublicKeyInfo without a BIT STRING');
  return spki.subarray(bits.contentStart + 1, bits.end);
}

export function keyHash(spki: Uint8Array, hash: CertIdHash = 'sha1'): Uint8Array {
  return new Uint8Array(createHash(hash).update(subjectPublicKeyBits(spki)).digest());
}

/** GeneralizedTime "YYYYMMDDHHMMSSZ" of whole seconds (RFC 5280 §4.1.2.5.2, which RFC 6960 follows). */
function generalizedTime(d: Date): Uint8Array {
  const ms = Math.floor(d.getTime() / 1000) * 1000;
  // Under load thousands of answers a second share their times: encode each second once.
  let t = recentTimes.get(ms);
  if (!t) {
    const w = new Date(ms);
    const digits = [w.getUTCFullYear(), 4, w.getUTCMonth() + 1, 2, w.getUTCDate(), 2, w.getUTCHours(), 2, w.getUTCMinutes(), 2, w.getUTCSeconds(), 2];
    t = new Uint8Array(17);
    t[0] = der.TAG.GeneralizedTime;
    t[1] = 15;
    let at = 2;
    for (let i = 0; i < digits.length; i += 2) {
      const width = digits[i + 1];
      for (let k = width - 1, v = digits[i]; k >= 0; k--, v = Math.floor(v / 10)) t[at + k] = 0x30 + (v % 10);
      at += width;
    }
    t[16] = 0x5a; // 'Z'
    if (recentTimes.size >= RECENT_TIMES) recentTimes.clear();
    recentTimes.set(ms, t);
  }
  return t;
}
const RECENT_TIMES = 64;
const recentTimes = new Map<number, Uint8Array>();

/**
 * CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT
 * RevokedInfo, unknown [2] IMPLICIT NULL }; RevokedInfo ::= SEQUENCE {
 * revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
 */
const GOOD = Uint8Array.of(0x80, 0);
const UNKNOWN = Uint8Array.of(0x82, 0);
function certStatus(s: CertState): Uint8Array {
  if (s.kind === 'good') return GOOD;
  if (s.kind === 'unknown') return UNKNOWN;
  // RFC 5280 §5.3.1: unspecified is expressed by leaving the reason out.
  const code = REVOCATION_REASONS[s.reason];
  const reason = code ? [der.ctx(0, true, der.tlv(der.TAG.ENUMERATED, Uint8Array.of(code)))] : [];
  return der.ctx(1, true, generalizedTime(s.revokedAt), ...reason);
}

/** ResponderID byKey [2] EXPLICIT KeyHash, per signer key (it is the same for every answer). */
const responderIds = new WeakMap<Uint8Array, Uint8Array>();
function responderIdByKey(spki: Uint8Array): Uint8Array {
  let id = responderIds.get(spki);
  if (!id) responderIds.set(spki, (id = der.ctx(2, true, der.octets(keyHash(spki, 'sha1')))));
  return id;
}

const NONCE_EXTENSION_HEAD = der.oid(OID_NONCE);

/** GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2, which RFC 6960 follows). */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/**
 * DER of the ResponseData, the bytes the signature covers:
 *   ResponseData ::= SEQUENCE { version [0] DEFAULT v1 (left out), responderID,
 *     producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse,
 *     responseExtensions [1] EXPLICIT Extensions OPTIONAL }
 *   SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate,
 *     nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL }
 */
export function encodeResponseData(r: ResponseToSign): Uint8Array {
  const responses = r.answers.map((a) =>
    der.node(der.TAG.SEQUENCE, a.certIdDer, certStatus(a.state), generalizedTime(a.thisUpdate), der.node(0xa0, generalizedTime(a.nextUpdate))),
  );
  const exts = r.nonce ? [der.node(0xa1, der.node(der.TAG.SEQUENCE, der.node(der.TAG.SEQUENCE, NONCE_EXTENSION_HEAD, der.node(der.TAG.OCTET_STRING, r.nonce))))] : [];
  return der.encodeTree(der.node(der.TAG.SEQUENCE, responderIdByKey(r.signerSpki), generalizedTime(r.producedAt), der.node(der.TAG.SEQUENCE, ...responses), ...exts));
}

/**
 * BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
 * signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL },
 * wrapped in a successful OCSPResponse. Assembled around the exact signed
 * bytes, so what was signed is what is sent.
 */
export function encodeSuccessfulResponse(tbsResponseData: Uint8Array, signatureAlgorithm: Uint8Array, signature: Uint8Array, certs: readonly Uint8Array[]): Uint8Array {
  const basic = der.node(
    der.TAG.OCTET_STRING,
    der.node(der.TAG.SEQUENCE, tbsResponseData, signatureAlgorithm, der.node(der.TAG.BIT_STRING, NO_UNUSED_BITS, signature), ...(certs.length ? [der.node(0xa0, der.node(der.TAG.SEQUENCE, ...certs))] : [])),
  );
  return der.encodeTree(der.node(der.TAG.SEQUENCE, SUCCESSFUL_STATUS, der.node(0xa0, der.node(der.TAG.SEQUENCE, ID_PKIX_OCSP_BASIC_TLV, basic))));
}
const NO_UNUSED_BITS = Uint8Array.of(0);
const SUCCESSFUL_STATUS = der.tlv(der.TAG.ENUMERATED, Uint8Array.of(OCSP_RESPONSE_STATUS.successful));
const ID_PKIX_OCSP_BASIC_TLV = der.oid(id_pkix_ocsp_basic);

/** An OCSPResponse carrying only an error status (RFC 6960 §4.2.1: no responseBytes). */
export function encodeErrorResponse(status: Exclude<OcspResponseStatus, 'successful'>): Uint8Array {
  return der.seq(der.tlv(der.TAG.ENUMERATED, Uint8Array.of(OCSP_RESPONSE_STATUS[status])));
}
