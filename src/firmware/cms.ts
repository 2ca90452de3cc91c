/**
 * Detached CMS SignedData (RFC 5652 §5) over a firmware image: written with
 * @peculiar/asn1-cms, read with it too. The image is not inside: the
 * encapsulated content is id-data without eContent (§5.2), and the signed
 * attributes carry its digest (messageDigest, §11.2), so
 * `openssl cms -verify -binary -content fw.bin` checks the same signature a
 * device checks.
 *
 * Two places where the library is not enough and DER is handled directly:
 * - signed attributes are signed as the DER of a SET OF, sorted (§5.4,
 *   X.690 §11.6); asn1-cms does not sort them, so they are encoded and
 *   sorted here. To verify, the signed attributes are read from the
 *   signature's own bytes (§5.4: the [0] IMPLICIT field with a SET tag), not
 *   re-encoded: asn1js cannot hold the 128-bit arc of the manifest's
 *   UUID-based OID (it parses it to "2.25" alone), so a re-encoding would
 *   change the bytes;
 * - certificates are taken from the signature byte for byte (a re-encoded
 *   certificate would no longer match its issuer's signature).
 */
import 'reflect-metadata';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  Attribute,
  CertificateChoices,
  CertificateSet,
  ContentInfo,
  DigestAlgorithmIdentifier,
  DigestAlgorithmIdentifiers,
  EncapsulatedContent,
  EncapsulatedContentInfo,
  IssuerAndSerialNumber,
  SignatureAlgorithmIdentifier,
  SignedData,
  SignerIdentifier,
  SignerInfo,
  SignerInfos,
  SigningTime,
  CMSVersion,
  id_contentType,
  id_data,
  id_messageDigest,
  id_signedData,
  id_signingTime,
} from '@peculiar/asn1-cms';
import { Certificate, Name } from '@peculiar/asn1-x509';
import * as der from '../asn1/der.js';
import { ProblemError } from '../errors.js';
import type { Signer } from '../keys/key_store.js';
import { publicKeyFromSpki, verifySignature } from '../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { pemDecodeAll, type PemBlock } from '../x509/pem.js';
import { DIGEST_LENGTH, DIGEST_OIDS, digestNameOf, id_aa_firmwareManifest, type DigestName } from './manifest.js';
import { refuse } from './refusal.js';

const SIG_OID = {
  ecdsa: { sha256: '1.2.840.10045.4.3.2', sha384: '1.2.840.10045.4.3.3', sha512: '1.2.840.10045.4.3.4' },
  rsa: { sha256: '1.2.840.113549.1.1.11', sha384: '1.2.840.113549.1.1.12', sha512: '1.2.840.113549.1.1.13' },
} as const;
const RSA_ENCRYPTION = '1.2.840.113549.1.1.1';

const hex = (b: ArrayBuffer | Uint8Array) => Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString('hex');
const ab = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const sortDer = (items: Uint8Array[]) => [...items].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

/** An extra signed attribute: its type and the DER of each value. */
export interface AttributeInput {
  type: string;
  values: Uint8Array[];
}

export interface DetachedSignInput {
  signer: Signer;
  /** The signer certificate. */
  certificate: CertInfo;
  /** Further certificates to include (the issuing CAs), DER. */
  chain: readonly Uint8Array[];
  digestAlgorithm: DigestName;
  /** Digest of the image under digestAlgorithm. */
  digest: Uint8Array;
  signingTime: Date;
  attributes?: readonly AttributeInput[];
}

/** The DER SET OF the signed attributes (RFC 5652 §5.4: what the signature covers), sorted. */
function signedAttributesDer(attrs: readonly Attribute[]): { set: Uint8Array; ordered: Attribute[] } {
  const encoded = attrs.map((a) => ({ a, d: new Uint8Array(AsnConvert.serialize(a)) }));
  encoded.sort((x, y) => Buffer.compare(Buffer.from(x.d), Buffer.from(y.d)));
  return { set: der.tlv(der.TAG.SET, ...encoded.map((e) => e.d)), ordered: encoded.map((e) => e.a) };
}

function signatureAlgorithmOf(signer: Signer, hash: DigestName): SignatureAlgorithmIdentifier {
  // RFC 5754 §3.2: sha*WithRSAEncryption with NULL parameters; RFC 5758 §3.2 / RFC 5753 §2.1.1: ECDSA with none.
  if (signer.key.type === 'rsa') return new SignatureAlgorithmIdentifier({ algorithm: SIG_OID.rsa[hash], parameters: der.nullValue().slice().buffer });
  if (signer.key.type === 'ec') return new SignatureAlgorithmIdentifier({ algorithm: SIG_OID.ecdsa[hash] });
  throw new ProblemError('bad_key', `firmware is signed with ECDSA or RSA keys (the code-signing profile's), not ${signer.key.type}`);
}

/** What an attached signature needs: the content itself instead of its digest. */
export interface AttachedSignInput extends Omit<DetachedSignInput, 'digest'> {
  /** The content, carried inside the signature as id-data eContent (RFC 5652 §5.2). */
  content: Uint8Array;
}

/** Builds the detached SignedData (ContentInfo, DER). */
export async function signDetached(i: DetachedSignInput): Promise<Uint8Array> {
  return buildSignedData(i, i.digest);
}

/**
 * Builds an attached SignedData (ContentInfo, DER): the content is inside,
 * as `openssl cms -sign -nodetach` writes it, and the messageDigest is
 * computed here. Supply-chain manifests travel this way.
 */
export async function signAttached(i: AttachedSignInput): Promise<Uint8Array> {
  return buildSignedData(i, new Uint8Array(createHash(i.digestAlgorithm).update(i.content).digest()), i.content);
}

async function buildSignedData(i: Omit<DetachedSignInput, 'digest'>, digest: Uint8Array, eContent?: Uint8Array): Promise<Uint8Array> {
  if (digest.length !== DIGEST_LENGTH[i.digestAlgorithm]) throw new ProblemError('internal', `a ${i.digestAlgorithm} digest has ${DIGEST_LENGTH[i.digestAlgorithm]} octets`);
  if (Buffer.compare(Buffer.from(i.signer.spki), Buffer.from(i.certificate.spki)) !== 0) throw new ProblemError('bad_key', 'the signing key does not belong to the signer certificate');
  const attrs = [
    // RFC 5652 §11.1: contentType, the same as eContentType.
    new Attribute({ attrType: id_contentType, attrValues: [ab(der.oid(id_data))] }),
    // §11.3: signingTime, UTCTime through 2049 (the Time CHOICE picks it).
    new Attribute({ attrType: id_signingTime, attrValues: [AsnConvert.serialize(new SigningTime(i.signingTime))] }),
    // §11.2: messageDigest, the digest of the content (detached or not).
    new Attribute({ attrType: id_messageDigest, attrValues: [ab(der.octets(digest))] }),
    ...(i.attributes ?? []).map((a) => new Attribute({ attrType: a.type, attrValues: sortDer(a.values).map(ab) })),
  ];
  const { set, ordered } = signedAttributesDer(attrs);
  const hash = i.digestAlgorithm;
  const signature = await i.signer.sign(set, hash);

  const certDers = [i.certificate.der, ...i.chain.filter((c) => Buffer.compare(Buffer.from(c), Buffer.from(i.certificate.der)) !== 0)];
  const certs = sortDer(certDers).map((d) => {
    const c = AsnConvert.parse(d, Certificate);
    if (Buffer.compare(Buffer.from(AsnConvert.serialize(c)), Buffer.from(d)) !== 0) throw new ProblemError('internal', 'a certificate of the chain does not re-encode byte for byte; it cannot be carried in the signature');
    return new CertificateChoices({ certificate: c });
  });
  const digestAlgorithm = new DigestAlgorithmIdentifier({ algorithm: DIGEST_OIDS[hash] });
  const signerInfo = new SignerInfo({
    // §5.3: version 1 with issuerAndSerialNumber (the widest supported).
    version: CMSVersion.v1,
    sid: new SignerIdentifier({ issuerAndSerialNumber: new IssuerAndSerialNumber({ issuer: AsnConvert.parse(i.certificate.issuerDer, Name), serialNumber: ab(Buffer.from(i.certificate.serial, 'hex')) }) }),
    digestAlgorithm,
    signedAttrs: ordered,
    signatureAlgorithm: signatureAlgorithmOf(i.signer, hash),
    signature: new OctetString(signature),
  });
  const signedData = new SignedData({
    // §5.1: version 1 (id-data, no v2+ certificates or signer infos).
    version: CMSVersion.v1,
    digestAlgorithms: new DigestAlgorithmIdentifiers([digestAlgorithm]),
    encapContentInfo: new EncapsulatedContentInfo({ eContentType: id_data, eContent: eContent ? new EncapsulatedContent({ single: new OctetString(eContent) }) : undefined }),
    certificates: new CertificateSet(certs),
    signerInfos: new SignerInfos([signerInfo]),
  });
  const out = new Uint8Array(AsnConvert.serialize(new ContentInfo({ contentType: id_signedData, content: AsnConvert.serialize(signedData) })));
  // What is signed must be what a verifier reads from the output.
  const back = parseSignedData(out, { content: eContent ? 'attached' : 'detached', fail: (reason, detail) => new ProblemError('internal', `the signature just made does not read back (${reason}): ${detail}`) });
  if (Buffer.compare(Buffer.from(back.signedAttributes), Buffer.from(set)) !== 0) throw new ProblemError('internal', 'the signed attributes did not survive encoding');
  return out;
}

// ------------------------------------------------------------------ reading

export interface ParsedSignature {
  der: Uint8Array;
  /** Certificates carried in the signature, byte for byte. */
  certificates: Uint8Array[];
  sid: { issuer: Uint8Array; serial: string } | { ski: string };
  digestAlgorithm: DigestName;
  signatureAlgorithm: { oid: string; params?: Uint8Array };
  signature: Uint8Array;
  /** The DER SET OF the signed attributes: the bytes the signature covers. */
  signedAttributes: Uint8Array;
  messageDigest: Uint8Array;
  signingTime?: Date;
  /** DER of the fleetpki manifest attribute's value, if present. */
  manifest?: Uint8Array;
  /** Other signed attribute types, for display. */
  otherAttributes: string[];
}

/**
 * How a caller names a refusal: firmware refuses with `firmware_rejected`,
 * supply-chain manifests with `manifest_rejected`. `malformed`: not a
 * readable SignedData of the expected shape.
 */
export type CmsFailure = (reason: 'malformed' | 'unsupported_algorithm', detail: string) => ProblemError;

export interface ParseOptions {
  /** detached: no eContent allowed (firmware); attached: eContent required (manifests). */
  content: 'detached' | 'attached';
  fail: CmsFailure;
}

/** A SignedData read with parseSignedData: the signature parts, and the content when attached. */
export interface ParsedSignedData extends ParsedSignature {
  /** Dotted eContentType (id-data for everything fleetpki signs). */
  eContentType: string;
  /** The encapsulated content, for an attached signature. */
  eContent?: Uint8Array;
  /** SignedData and SignerInfo versions (RFC 5652 §5.1, §5.3). */
  versions: { signedData: number; signerInfo: number };
  /** Dotted OIDs of SignedData.digestAlgorithms. */
  digestAlgorithms: string[];
  /** Whether the signer carries unsigned attributes or SignedData carries CRLs. */
  unsigned: { attributes: boolean; crls: boolean };
}

/** DER, or PEM labelled CMS or PKCS7 (what `openssl cms -outform PEM` writes). */
function derOf(input: Uint8Array, fail: CmsFailure): Uint8Array {
  if (input.length > 0 && input[0] === 0x30) return input;
  let blocks: PemBlock[];
  try {
    blocks = pemDecodeAll(Buffer.from(input).toString('latin1'));
  } catch {
    blocks = [];
  }
  const b = blocks.find((x) => x.label === 'CMS' || x.label === 'PKCS7');
  if (!b) throw fail('malformed', 'the signature file is neither DER nor PEM CMS');
  return b.der;
}
/**
 * The parts of SignedData taken byte for byte: the certificates ([0]
 * IMPLICIT CertificateSet after encapContentInfo) and the signer's signed
 * attributes (SignerInfo's [0] IMPLICIT field).
 */
function rawParts(buf: Uint8Array): { certificates: Uint8Array[]; signedAttrs?: { tlv: der.Tlv; items: der.Tlv[] } } {
  const top = der.expectSingleTlv(buf, 'ContentInfo');
  const [, explicit] = der.readChildren(buf, top);
  const [sd] = der.readChildren(buf, explicit);
  const parts = der.readChildren(buf, sd);
  const set = parts.find((t) => t.tag === 0xa0);
  // Certificate is a SEQUENCE; other CertificateChoices are context-tagged and skipped.
  const certificates = set ? der.readChildren(buf, set).filter((t) => t.tag === der.TAG.SEQUENCE).map((t) => der.slice(buf, t).slice()) : [];
  const signerInfos = parts[parts.length - 1];
  const [si] = der.readChildren(buf, signerInfos);
  // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT OPTIONAL, ... }
  const attrs = si ? der.readChildren(buf, si)[3] : undefined;
  return { certificates, signedAttrs: attrs?.tag === 0xa0 ? { tlv: attrs, items: der.readChildren(buf, attrs) } : undefined };
}

interface RawAttribute {
  /** DER of the attribute type OID. */
  type: Uint8Array;
  values: Uint8Array[];
}

/** Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF AttributeValue } */
function rawAttribute(buf: Uint8Array, t: der.Tlv): RawAttribute {
  const [type, values, ...rest] = der.readChildren(buf, t);
  if (t.tag !== der.TAG.SEQUENCE || type?.tag !== der.TAG.OID || values?.tag !== der.TAG.SET || rest.length) throw new Error('an attribute is not SEQUENCE { OID, SET }');
  return { type: der.slice(buf, type), values: der.readChildren(buf, values).map((v) => der.slice(buf, v)) };
}

function single(a: RawAttribute, what: string, fail: CmsFailure): Uint8Array {
  // RFC 5652 §11: contentType, messageDigest and signingTime have exactly one value.
  if (a.values.length !== 1) throw fail('malformed', `the ${what} attribute has ${a.values.length} values, not one`);
  return a.values[0];
}

const OID_DER = {
  contentType: hex(der.oid(id_contentType)),
  messageDigest: hex(der.oid(id_messageDigest)),
  signingTime: hex(der.oid(id_signingTime)),
  manifest: hex(der.oid(id_aa_firmwareManifest)),
};

/** Dotted text of an OID's DER, for display (arcs of any size). */
function oidText(d: Uint8Array): string {
  const t = der.readTlv(d, 0);
  const arcs: bigint[] = [];
  let v = 0n;
  for (const x of der.content(d, t)) {
    v = (v << 7n) | BigInt(x & 0x7f);
    if (!(x & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80n ? v / 40n : 2n, v < 80n ? v % 40n : v - 80n);
      else arcs.push(v);
      v = 0n;
    }
  }
  return arcs.join('.');
}

/** Reads a detached firmware signature. Every failure is a `malformed_signature` (or `unsupported_algorithm`) refusal. */
export function parseSignature(input: Uint8Array): ParsedSignature {
  return parseSignedData(input, { content: 'detached', fail: (reason, detail) => refuse(reason === 'malformed' ? 'malformed_signature' : reason, detail) });
}

/**
 * Reads a CMS SignedData with exactly one signer and signed attributes;
 * every failure goes through `o.fail`. Verifying the signature and the
 * signer is the caller's business (the rules differ by purpose).
 */
export function parseSignedData(input: Uint8Array, o: ParseOptions): ParsedSignedData {
  const { fail } = o;
  const ours = new WeakSet<object>();
  const failing: CmsFailure = (reason, detail) => {
    const e = fail(reason, detail);
    ours.add(e);
    return e;
  };
  const buf = derOf(input, failing);
  let sd: SignedData;
  let raw: ReturnType<typeof rawParts>;
  try {
    der.expectSingleTlv(buf, 'the signature');
    const ci = AsnConvert.parse(buf, ContentInfo);
    if (ci.contentType !== id_signedData) throw new Error(`content type ${ci.contentType} is not signedData`);
    sd = AsnConvert.parse(ci.content, SignedData);
    raw = rawParts(buf);
  } catch (e) {
    if (e instanceof ProblemError && ours.has(e)) throw e;
    throw failing('malformed', `the signature file is not a CMS SignedData: ${(e as ProblemError).detail ?? (e as Error).message}`);
  }
  let eContent: Uint8Array | undefined;
  const ec = sd.encapContentInfo.eContent;
  if (o.content === 'detached' && ec) throw failing('malformed', 'the signature carries the image inside (attached); firmware signatures are detached');
  if (o.content === 'attached') {
    // DER has the primitive OCTET STRING; a constructed (BER) one is not DER.
    if (!ec?.single) throw failing('malformed', 'the signature carries no content (detached, or not a DER OCTET STRING)');
    eContent = new Uint8Array(ec.single.buffer);
  }
  if (sd.signerInfos.length !== 1) throw failing('malformed', `the signature has ${sd.signerInfos.length} signers, not exactly one`);
  const si = sd.signerInfos[0];
  const digestAlgorithm = digestNameOf(si.digestAlgorithm.algorithm);
  if (!digestAlgorithm) throw failing('unsupported_algorithm', `digest algorithm ${si.digestAlgorithm.algorithm} is not accepted (SHA-256, SHA-384, SHA-512 are)`);
  let sid: ParsedSignature['sid'];
  if (si.sid.issuerAndSerialNumber) sid = { issuer: new Uint8Array(AsnConvert.serialize(si.sid.issuerAndSerialNumber.issuer)), serial: hex(si.sid.issuerAndSerialNumber.serialNumber) };
  else if (si.sid.subjectKeyIdentifier) sid = { ski: hex(si.sid.subjectKeyIdentifier.buffer) };
  else throw failing('malformed', 'the signer is not identified');
  // §5.3: without signed attributes the signature would be over the content
  // alone, with no signing time and no manifest: not a firmware signature.
  if (!raw.signedAttrs || raw.signedAttrs.items.length === 0) throw failing('malformed', 'the signature has no signed attributes (contentType, messageDigest, signingTime)');
  const seen = new Set<string>();
  let contentType: string | undefined;
  let messageDigest: Uint8Array | undefined;
  let signingTime: Date | undefined;
  let manifest: Uint8Array | undefined;
  const otherAttributes: string[] = [];
  try {
    for (const t of raw.signedAttrs.items) {
      const a = rawAttribute(buf, t);
      const type = hex(a.type);
      if (seen.has(type)) throw failing('malformed', `signed attribute ${oidText(a.type)} appears twice`);
      seen.add(type);
      if (type === OID_DER.contentType) {
        const v = single(a, 'contentType', failing);
        if (der.expectSingleTlv(v, 'contentType').tag !== der.TAG.OID) throw new Error('contentType is not an OID');
        contentType = hex(v);
      } else if (type === OID_DER.messageDigest) {
        messageDigest = new Uint8Array(AsnConvert.parse(single(a, 'messageDigest', failing), OctetString).buffer);
      } else if (type === OID_DER.signingTime) {
        signingTime = AsnConvert.parse(single(a, 'signingTime', failing), SigningTime).getTime();
      } else if (type === OID_DER.manifest) {
        manifest = single(a, 'firmware manifest', failing).slice();
      } else otherAttributes.push(oidText(a.type));
    }
  } catch (e) {
    if (e instanceof ProblemError && ours.has(e)) throw e;
    throw failing('malformed', `a signed attribute cannot be read: ${(e as Error).message}`);
  }
  // §11.1: contentType must be present and equal eContentType.
  if (contentType !== hex(der.oid(sd.encapContentInfo.eContentType))) throw failing('malformed', 'the contentType attribute is missing or differs from the encapsulated content type');
  if (!messageDigest) throw failing('malformed', 'the signature has no messageDigest attribute');
  if (messageDigest.length !== DIGEST_LENGTH[digestAlgorithm]) throw failing('malformed', `the messageDigest has ${messageDigest.length} octets; ${digestAlgorithm} has ${DIGEST_LENGTH[digestAlgorithm]}`);
  const params = si.signatureAlgorithm.parameters ? new Uint8Array(si.signatureAlgorithm.parameters) : undefined;
  return {
    der: buf,
    certificates: raw.certificates,
    sid,
    digestAlgorithm,
    signatureAlgorithm: { oid: si.signatureAlgorithm.algorithm, params: params && !(params.length === 2 && params[0] === der.TAG.NULL) ? params : undefined },
    signature: new Uint8Array(si.signature.buffer),
    // §5.4: the DER of the SET OF, i.e. the [0] field's content under a SET tag.
    signedAttributes: der.tlv(der.TAG.SET, der.content(buf, raw.signedAttrs.tlv)),
    messageDigest,
    signingTime,
    manifest,
    otherAttributes,
    eContentType: sd.encapContentInfo.eContentType,
    eContent,
    versions: { signedData: sd.version, signerInfo: si.version },
    digestAlgorithms: sd.digestAlgorithms.map((d) => d.algorithm),
    unsigned: { attributes: !!si.unsignedAttrs?.length, crls: !!sd.crls?.length },
  };
}

/** Finds the signer's certificate among those carried (and any others given). */
export function signerCertificate(sig: ParsedSignature, extra: readonly CertInfo[] = []): CertInfo | undefined {
  const pool: CertInfo[] = [];
  for (const d of sig.certificates) {
    try {
      pool.push(parseCertificate(d));
    } catch {
      /* an unreadable extra certificate cannot be the signer */
    }
  }
  pool.push(...extra);
  const sid = sig.sid;
  return pool.find((c) => {
    if ('ski' in sid) return !!c.ski && hex(c.ski) === sid.ski;
    if (c.serial !== sid.serial) return false;
    // Both sides through the same encoder, so equal names compare equal.
    try {
      return Buffer.compare(Buffer.from(AsnConvert.serialize(AsnConvert.parse(c.issuerDer, Name))), Buffer.from(sid.issuer)) === 0;
    } catch {
      return false;
    }
  });
}

/**
 * The signature algorithm to verify with: RFC 5754 §3.2 lets RSA signers
 * name rsaEncryption, the hash then being the digest algorithm's (OpenSSL
 * does this).
 */
export function verificationAlgorithm(sig: ParsedSignature): { oid: string; params?: Uint8Array } {
  if (sig.signatureAlgorithm.oid === RSA_ENCRYPTION) return { oid: SIG_OID.rsa[sig.digestAlgorithm] };
  return sig.signatureAlgorithm;
}

/**
 * RFC 5652 §5.4: checks the signature over the DER SET OF signed attributes
 * with the signer's key. Undefined when it verifies; otherwise why not, for
 * the caller's own refusal (firmware, supply-chain manifests).
 */
export function signerSignatureProblem(sig: ParsedSignature, signer: CertInfo): { reason: 'unsupported_algorithm' | 'bad_signature'; detail: string } | undefined {
  const who = `${signer.subjectText} (serial ${signer.serial})`;
  const alg = verificationAlgorithm(sig);
  try {
    if (verifySignature(alg.oid, alg.params, publicKeyFromSpki(signer.spki), sig.signedAttributes, sig.signature)) return undefined;
  } catch (e) {
    if (e instanceof ProblemError && /not accepted/.test(e.detail)) return { reason: 'unsupported_algorithm', detail: e.detail };
    return { reason: 'bad_signature', detail: `the signature does not verify with the key of ${who}: ${(e as Error).message}` };
  }
  return { reason: 'bad_signature', detail: `the signature does not verify with the key of ${who}: signed with another key, or the signed attributes were changed` };
}
