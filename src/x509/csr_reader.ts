/**
 * The issuance fast path's PKCS#10 reader (RFC 2986): a direct walk over the
 * DER of the one shape devices send almost always (an ECDSA P-256 key, an
 * ecdsa-with-SHA256 signature, a subject of single-valued RDNs in
 * Printable/UTF8/IA5 strings, at most an extensionRequest attribute). It
 * returns undefined for anything else, and the caller parses with the
 * library (csr.ts), which knows every other shape and every error message.
 * It throws only bad_signature, after the whole request has been read: a
 * request whose structure csr.ts would refuse never gets that far.
 *
 * CertificationRequest ::= SEQUENCE {
 *   certificationRequestInfo  SEQUENCE {
 *     version       INTEGER { v1(0) },
 *     subject       Name,
 *     subjectPKInfo SubjectPublicKeyInfo,
 *     attributes    [0] IMPLICIT SET OF Attribute },
 *   signatureAlgorithm AlgorithmIdentifier,
 *   signature          BIT STRING }
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { ProblemError } from '../errors.js';
import type { ParsedCsr } from './csr.js';
import { expect, readName, readSans, tlv, Unusual, type T } from './der_walk.js';
import type { San } from './general_names.js';

/** SubjectPublicKeyInfo of a P-256 key up to the point: SEQ { SEQ { ecPublicKey, prime256v1 }, BIT STRING 00 04 ... }. */
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
/** AlgorithmIdentifier ecdsa-with-SHA256 (RFC 5758 §3.2: no parameters). */
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
/** OID 1.2.840.113549.1.9.14 pkcs-9-at-extensionRequest, content octets. */
const EXTENSION_REQUEST = Buffer.from('2a864886f70d01090e', 'hex');
/** OID 2.5.29.17 subjectAltName, content octets. */
const SAN_OID = Buffer.from('551d11', 'hex');

function readAttributes(b: Buffer, attrs: T, sans: San[]): void {
  for (let p = attrs.content; p < attrs.end; ) {
    const attr = expect(b, p, attrs.end, 0x30);
    const oid = expect(b, attr.content, attr.end, 0x06);
    if (!b.subarray(oid.content, oid.end).equals(EXTENSION_REQUEST)) throw new Unusual();
    const values = expect(b, oid.end, attr.end, 0x31);
    if (values.end !== attr.end) throw new Unusual();
    for (let q = values.content; q < values.end; ) {
      const exts = expect(b, q, values.end, 0x30);
      for (let r = exts.content; r < exts.end; ) {
        const ext = expect(b, r, exts.end, 0x30);
        const id = expect(b, ext.content, ext.end, 0x06);
        let next = id.end;
        const maybeCritical = tlv(b, next, ext.end);
        if (maybeCritical.tag === 0x01) {
          if (maybeCritical.end - maybeCritical.content !== 1 || b[maybeCritical.content] !== 0xff) throw new Unusual();
          next = maybeCritical.end;
        }
        const value = expect(b, next, ext.end, 0x04);
        if (value.end !== ext.end) throw new Unusual();
        if (b.subarray(id.content, id.end).equals(SAN_OID)) {
          const gns = expect(b, value.content, value.end, 0x30);
          if (gns.end !== value.end) throw new Unusual();
          readSans(b, gns, sans);
        }
        r = ext.end;
      }
      q = exts.end;
    }
    p = attr.end;
  }
}

/**
 * The public key of an uncompressed P-256 point, imported as a JWK: OpenSSL
 * 3.0 builds the key from its coordinates (checking the point is on the
 * curve) in half the time its DER decoder takes for the same SPKI.
 */
function p256Key(b: Buffer, point: number): KeyObject {
  try {
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: b.toString('base64url', point + 1, point + 33), y: b.toString('base64url', point + 33, point + 65) },
      format: 'jwk',
    });
  } catch {
    throw new Unusual();
  }
}

/**
 * Reads and verifies a DER CSR of the narrow shape; undefined when it is any
 * other shape (the caller then uses parseCsr). Throws bad_signature when
 * the proof of possession fails.
 */
export function readCsrFast(input: Uint8Array): ParsedCsr | undefined {
  const b = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  try {
    const outer = expect(b, 0, b.length, 0x30);
    if (outer.end !== b.length) throw new Unusual();
    const info = expect(b, outer.content, outer.end, 0x30);
    const version = expect(b, info.content, info.end, 0x02);
    if (version.end - version.content !== 1 || b[version.content] !== 0) throw new Unusual();
    const subject = expect(b, version.end, info.end, 0x30);
    const spki = expect(b, subject.end, info.end, 0x30);
    if (spki.end - spki.start !== 91 || !b.subarray(spki.start, spki.start + 26).equals(P256_SPKI_PREFIX) || b[spki.start + 26] !== 0x04) throw new Unusual();
    const sans: San[] = [];
    if (spki.end !== info.end) {
      const attrs = expect(b, spki.end, info.end, 0xa0);
      if (attrs.end !== info.end) throw new Unusual();
      readAttributes(b, attrs, sans);
    }
    const alg = expect(b, info.end, outer.end, 0x30);
    if (!b.subarray(alg.start, alg.end).equals(ECDSA_SHA256)) throw new Unusual();
    const sig = expect(b, alg.end, outer.end, 0x03);
    if (sig.end !== outer.end || sig.end - sig.content < 2 || b[sig.content] !== 0) throw new Unusual();
    const attributes = readName(b, subject);
    const publicKey = p256Key(b, spki.start + 26);
    let ok: boolean;
    try {
      ok = cryptoVerify('sha256', b.subarray(info.start, info.end), { key: publicKey, dsaEncoding: 'der' }, b.subarray(sig.content + 1, sig.end));
    } catch {
      throw new Unusual();
    }
    if (!ok) throw new ProblemError('bad_signature', 'the CSR signature does not verify with its public key (no proof of possession)');
    const spkiDer = new Uint8Array(b.subarray(spki.start, spki.end));
    return {
      der: input,
      subject: attributes,
      spki: spkiDer,
      spkiSha256: createHash('sha256').update(spkiDer).digest('hex'),
      publicKey,
      key: { type: 'ec', curve: 'P-256' },
      sans,
      unsupportedSans: [],
    };
  } catch (e) {
    if (e instanceof Unusual) return undefined;
    throw e;
  }
}
