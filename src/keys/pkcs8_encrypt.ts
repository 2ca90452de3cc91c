/**
 * Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) with PBES2 (RFC 8018):
 * PBKDF2-HMAC-SHA256 and AES-256-CBC. node:crypto's own export cannot set the
 * iteration count (OpenSSL's default is 2048, far too few for a CA key at
 * rest), so the envelope is written here; node/OpenSSL decrypt it as usual
 * (`openssl pkcs8 -in key.p8` opens it).
 */
import { createCipheriv, pbkdf2Sync, randomBytes, type KeyObject } from 'node:crypto';
import * as der from '../asn1/der.js';
import { pemEncode } from '../x509/pem.js';

const OID_PBES2 = '1.2.840.113549.1.5.13';
const OID_PBKDF2 = '1.2.840.113549.1.5.12';
const OID_HMAC_SHA256 = '1.2.840.113549.2.9';
const OID_AES256_CBC = '2.16.840.1.101.3.4.1.42';

/** OWASP 2023 guidance for PBKDF2-HMAC-SHA256. */
export const DEFAULT_PBKDF2_ITERATIONS = 600_000;

export function encryptPkcs8(key: KeyObject, passphrase: string, iterations = DEFAULT_PBKDF2_ITERATIONS): string {
  if (passphrase.length === 0) throw new RangeError('empty passphrase');
  const plain = key.export({ format: 'der', type: 'pkcs8' });
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const aesKey = pbkdf2Sync(passphrase, salt, iterations, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', aesKey, iv);
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);

  const pbkdf2Params = der.seq(der.octets(salt), der.integer(iterations), der.integer(32), der.seq(der.oid(OID_HMAC_SHA256), der.nullValue()));
  const pbes2Params = der.seq(der.seq(der.oid(OID_PBKDF2), pbkdf2Params), der.seq(der.oid(OID_AES256_CBC), der.octets(iv)));
  const epki = der.seq(der.seq(der.oid(OID_PBES2), pbes2Params), der.octets(encrypted));
  return pemEncode('ENCRYPTED PRIVATE KEY', epki);
}
