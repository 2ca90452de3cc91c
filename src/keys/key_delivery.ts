/**
 * Delivering a server-generated key once: as a PKCS#12 file (key, certificate
 * and chain) or as encrypted PKCS#8 (RFC 5958) beside the certificate, both
 * under a passphrase the recipient chose. The plaintext key is only ever in
 * this process's memory.
 */
import type { KeyObject } from 'node:crypto';
import { ProblemError } from '../errors.js';
import { buildPkcs12 } from '../x509/pkcs12.js';
import { pemEncode } from '../x509/pem.js';
import { encryptPkcs8 } from './pkcs8_encrypt.js';

export const DELIVERY_FORMATS = ['pkcs12', 'pkcs8'] as const;
export type DeliveryFormat = (typeof DELIVERY_FORMATS)[number];
export const MIN_DELIVERY_PASSPHRASE = 12;

export type Delivery =
  | { format: 'pkcs12'; pkcs12: Uint8Array }
  | { format: 'pkcs8'; privateKeyPem: string; certificatePem: string };

/** `certificates`: the key's certificate first, then its issuers. */
export async function deliverKey(privateKey: KeyObject, certificates: Uint8Array[], format: DeliveryFormat, passphrase: string, friendlyName: string): Promise<Delivery> {
  if (passphrase.length < MIN_DELIVERY_PASSPHRASE) throw new ProblemError('bad_request', `the delivery passphrase must be at least ${MIN_DELIVERY_PASSPHRASE} characters`);
  if (format === 'pkcs12') {
    const pkcs8 = new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' }));
    try {
      return { format, pkcs12: await buildPkcs12({ pkcs8, certificates, friendlyName, passphrase }) };
    } finally {
      pkcs8.fill(0);
    }
  }
  if (format === 'pkcs8') return { format, privateKeyPem: encryptPkcs8(privateKey, passphrase), certificatePem: certificates.map((d) => pemEncode('CERTIFICATE', d)).join('') };
  throw new ProblemError('bad_request', `format is ${DELIVERY_FORMATS.join(' or ')}`);
}
