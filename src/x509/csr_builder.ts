/**
 * Builds a PKCS#10 certification request (RFC 2986) and signs it with any
 * Signer: a key in a PKCS#11 token, a software key, whatever the device has.
 * The signature is the proof of possession the CA checks, so a device whose
 * key was born in its token never needs the key outside it.
 */
import * as der from '../asn1/der.js';
import type { Signer } from '../keys/key_store.js';
import { signatureAlgorithmFor } from './algorithms.js';
import { encodeExtension, subjectAltName } from './extensions.js';
import type { San } from './general_names.js';
import { encodeName, type DnAttribute } from './names.js';

const id_extensionRequest = '1.2.840.113549.1.9.14';

export interface CsrRequest {
  subject: DnAttribute[];
  /** Requested subject alternative names (extensionRequest, PKCS#9 §5.4.2). */
  sans?: San[];
}

/** DER of the signed CertificationRequest. */
export async function buildCsr(req: CsrRequest, signer: Signer): Promise<Uint8Array> {
  const attributes: Uint8Array[] = [];
  if (req.sans?.length) {
    // RFC 5280 §4.2.1.6: SAN is critical when the subject is empty.
    const exts = der.seq(encodeExtension(subjectAltName(req.sans, req.subject.length === 0)));
    attributes.push(der.seq(der.oid(id_extensionRequest), der.tlv(der.TAG.SET, exts)));
  }
  // RFC 2986 §4.1: version 0, subject, subjectPKInfo, attributes [0] IMPLICIT SET OF.
  const info = der.seq(der.integer(0), encodeName(req.subject), signer.spki, der.ctx(0, true, ...attributes));
  const alg = signatureAlgorithmFor(signer.key);
  const signature = await signer.sign(info, alg.hash);
  return der.seq(info, alg.algorithmIdentifier, der.bitString(signature));
}
