/**
 * Builds the device's PKCS#10 request (RFC 2986) with any Signer, so a token
 * key signs it as easily as a file key. The registry decides the names, so
 * the request carries only a subject: CN=<device id> for a first enrollment,
 * and for a renewal the exact subject of the certificate being renewed
 * (RFC 7030 §4.2.2), copied byte for byte.
 */
import * as der from '../asn1/der.js';
import type { Signer } from '../keys/key_store.js';
import { signatureAlgorithmFor } from '../x509/algorithms.js';
import { encodeName } from '../x509/names.js';

export async function buildCsr(signer: Signer, subject: { der: Uint8Array } | { cn: string }): Promise<Uint8Array> {
  const name = 'der' in subject ? subject.der : encodeName([{ type: 'CN', value: subject.cn }]);
  // RFC 2986 §4.1: version 0, subject, SPKI, attributes [0] (empty here).
  const info = der.seq(der.integer(0), name, signer.spki, der.ctx(0, true, new Uint8Array(0)));
  const alg = signatureAlgorithmFor(signer.key);
  const signature = await signer.sign(info, alg.hash);
  return der.seq(info, alg.algorithmIdentifier, der.bitString(signature));
}
