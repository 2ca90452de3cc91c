/**
 * EST wire formats (RFC 7030 with the RFC 8951 clarifications): base64 bodies
 * in and out, the certs-only and multipart responses, CSR attributes.
 */
import { randomBytes } from 'node:crypto';
import * as der from '../../asn1/der.js';
import { ProblemError } from '../../errors.js';
import type { Profile } from '../../authority/profiles.js';

/**
 * RFC 8951 §3.2: bodies are base64 (RFC 4648 §4), possibly folded across
 * lines; any other byte is an error, never silently skipped.
 */
export function decodeBase64Body(body: string | Buffer | undefined, what: string): Uint8Array {
  const text = (Buffer.isBuffer(body) ? body.toString('latin1') : body ?? '').replace(/[\r\n\t ]+/g, '');
  if (text.length === 0) throw new ProblemError('bad_request', `empty ${what}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 === 1) throw new ProblemError('bad_request', `${what} must be base64 (RFC 8951 §3.2)`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/**
 * base64 on one line, no trailing newline. RFC 8951 §3.2 lets a server fold
 * it, but strongSwan's EST client (5.9) decodes the body without skipping
 * line breaks and fails on folded bodies; unfolded suits every client.
 */
export function base64Body(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

/** RFC 7030 §4.4.2: the key and the certificate as a two-part multipart/mixed. */
export function serverKeygenBody(pkcs8: Uint8Array, certsOnlyDer: Uint8Array): { contentType: string; body: string } {
  const boundary = `fleetpki-${randomBytes(12).toString('hex')}`;
  const part = (type: string, bytes: Uint8Array) => `--${boundary}\r\nContent-Type: ${type}\r\nContent-Transfer-Encoding: base64\r\n\r\n${base64Body(bytes)}\r\n`;
  const body = part('application/pkcs8', pkcs8) + part('application/pkcs7-mime; smime-type=certs-only', certsOnlyDer) + `--${boundary}--\r\n`;
  return { contentType: `multipart/mixed; boundary=${boundary}`, body };
}

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  rsaEncryption: '1.2.840.113549.1.1.1',
  ed25519: '1.3.101.112',
  secp256r1: '1.2.840.10045.3.1.7',
  secp384r1: '1.3.132.0.34',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  rsaSha256: '1.2.840.113549.1.1.11',
  serialNumber: '2.5.4.5',
};

/**
 * RFC 7030 §4.5.2 CsrAttrs ::= SEQUENCE OF AttrOrOID. Tells clients the key
 * type and signature algorithm of the profile's first key algorithm, and that
 * the registry fills in serialNumber.
 */
export function csrAttrs(profile: Profile): Uint8Array {
  const items: Uint8Array[] = [];
  const alg = profile.keyAlgorithms[0];
  if (alg === 'ecdsa-p256' || alg === 'ecdsa-p384') {
    const curve = alg === 'ecdsa-p256' ? OID.secp256r1 : OID.secp384r1;
    items.push(der.seq(der.oid(OID.ecPublicKey), der.tlv(der.TAG.SET, der.oid(curve))));
    items.push(der.oid(alg === 'ecdsa-p256' ? OID.ecdsaSha256 : OID.ecdsaSha384));
  } else if (alg === 'ed25519') {
    items.push(der.oid(OID.ed25519));
  } else {
    // Attribute rsaEncryption { INTEGER modulus bits }, as in RFC 8951 §3.4 examples.
    items.push(der.seq(der.oid(OID.rsaEncryption), der.tlv(der.TAG.SET, der.integer(Number(alg.slice(4))))));
    items.push(der.oid(OID.rsaSha256));
  }
  items.push(der.oid(OID.serialNumber));
  return der.seq(...items);
}
