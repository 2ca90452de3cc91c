/**
 * OCSP on the wire (RFC 6960 §4, RFC 8954): reads an OCSPRequest strictly and
 * writes OCSPResponses. Parsing uses @peculiar/asn1-ocsp; because the library
 * is lenient (it ignores trailing data and unknown trailing elements), the
 * request is first walked as DER and the parsed TBSRequest must re-encode to
 * exactly the bytes received. Anything else is a `bad_request`, which the
 * responder answers with malformedRequest.
 */
import { createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { CRLReason, Extension } from '@peculiar/asn1-x509';
import {
  CertID,
  CertStatus,
  KeyHash,
  OCSPRequest,
  ResponderID,
  ResponseData,
  RevokedInfo,
  SingleResponse,
  id_pkix_ocsp_basic,
  id_pkix_ocsp_nonce,
} from '@peculiar/asn1-ocsp';
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
  /** The CertID as parsed; echoed unchanged in the SingleResponse. */
  certId: CertID;
  /** Its DER (the request's own bytes: the request re-encodes exactly). */
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
    return { hash, issuerNameHash: nameHash, issuerKeyHash: keyHash, serial: Buffer.from(serial).toString('hex'), certId: id, certIdDer: new Uint8Array(AsnConvert.serialize(id)) };
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
  certId: CertID;
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

function certStatus(s: CertState): CertStatus {
  if (s.kind === 'good') return new CertStatus({ good: null });
  if (s.kind === 'unknown') return new CertStatus({ unknown: null });
  // RFC 5280 §5.3.1: unspecified is expressed by leaving the reason out.
  const code = REVOCATION_REASONS[s.reason];
  return new CertStatus({ revoked: new RevokedInfo({ revocationTime: wholeSeconds(s.revokedAt), revocationReason: code ? new CRLReason(code) : undefined }) });
}

/** GeneralizedTime without fractions (RFC 5280 §4.1.2.5.2, which RFC 6960 follows). */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** DER of the ResponseData: the bytes the signature covers. */
export function encodeResponseData(r: ResponseToSign): Uint8Array {
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new KeyHash(keyHash(r.signerSpki, 'sha1')) }),
    producedAt: wholeSeconds(r.producedAt),
    responses: r.answers.map(
      (a) => new SingleResponse({ certID: a.certId, certStatus: certStatus(a.state), thisUpdate: wholeSeconds(a.thisUpdate), nextUpdate: wholeSeconds(a.nextUpdate) }),
    ),
    responseExtensions: r.nonce ? [new Extension({ extnID: OID_NONCE, critical: false, extnValue: new OctetString(r.nonce) })] : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(data));
}

/**
 * BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm,
 * signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL },
 * wrapped in a successful OCSPResponse. Assembled around the exact signed
 * bytes, so what was signed is what is sent.
 */
export function encodeSuccessfulResponse(tbsResponseData: Uint8Array, signatureAlgorithm: Uint8Array, signature: Uint8Array, certs: readonly Uint8Array[]): Uint8Array {
  const basic = der.seq(tbsResponseData, signatureAlgorithm, der.bitString(signature), ...(certs.length ? [der.ctx(0, true, der.seq(...certs))] : []));
  return der.seq(der.tlv(der.TAG.ENUMERATED, Uint8Array.of(OCSP_RESPONSE_STATUS.successful)), der.ctx(0, true, der.seq(der.oid(id_pkix_ocsp_basic), der.octets(basic))));
}

/** An OCSPResponse carrying only an error status (RFC 6960 §4.2.1: no responseBytes). */
export function encodeErrorResponse(status: Exclude<OcspResponseStatus, 'successful'>): Uint8Array {
  return der.seq(der.tlv(der.TAG.ENUMERATED, Uint8Array.of(OCSP_RESPONSE_STATUS[status])));
}
