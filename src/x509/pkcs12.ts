/**
 * PKCS#12 (RFC 7292) for delivering a server-generated key with its
 * certificate and chain, built with pkijs: the key in a PKCS8ShroudedKeyBag
 * and the certificates in an encrypted SafeContents, both PBES2 (PBKDF2 with
 * HMAC-SHA-256, AES-256-CBC; RFC 8018), and password integrity with an
 * HMAC-SHA-256 MAC (RFC 7292 §4, appendix B key derivation). These are the
 * defaults of OpenSSL 3's `pkcs12 -export`, which opens them, as do Windows
 * and Java's keytool.
 */
import { webcrypto } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { ProblemError } from '../errors.js';

const OID_PKCS8_SHROUDED_KEY_BAG = '1.2.840.113549.1.12.10.1.2';
const OID_CERT_BAG = '1.2.840.113549.1.12.10.1.3';
const OID_X509_CERT = '1.2.840.113549.1.9.22.1';
const OID_FRIENDLY_NAME = '1.2.840.113549.1.9.20';
const OID_LOCAL_KEY_ID = '1.2.840.113549.1.9.21';
export const PKCS12_ITERATIONS = 100_000;

let engineSet = false;
function engine(): void {
  if (engineSet) return;
  pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as never }));
  engineSet = true;
}

const ab = (u: Uint8Array): ArrayBuffer => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;

function fromDer<T>(der: Uint8Array, make: (schema: asn1js.AsnType) => T): T {
  const parsed = asn1js.fromBER(ab(der));
  if (parsed.offset === -1) throw new ProblemError('bad_request', 'not DER');
  return make(parsed.result);
}

export interface Pkcs12Input {
  /** Unencrypted PKCS#8 PrivateKeyInfo DER (kept in memory only). */
  pkcs8: Uint8Array;
  /** The certificate of the key, then its issuers (DER). */
  certificates: Uint8Array[];
  friendlyName: string;
  passphrase: string;
  iterations?: number;
}

/** DER of a password-protected PFX. */
export async function buildPkcs12(i: Pkcs12Input): Promise<Uint8Array> {
  engine();
  if (!i.passphrase) throw new ProblemError('bad_request', 'a PKCS#12 file needs a passphrase');
  const password = ab(new TextEncoder().encode(i.passphrase));
  const iterationCount = i.iterations ?? PKCS12_ITERATIONS;
  const pbes2 = { password, contentEncryptionAlgorithm: { name: 'AES-CBC', length: 256 } as never, hmacHashAlgorithm: 'SHA-256', iterationCount };
  // localKeyId ties the key to its certificate (RFC 7292 §4.2, PKCS#9 §5.5.2).
  const localKeyId = new Uint8Array(await webcrypto.subtle.digest('SHA-1', ab(i.certificates[0])));
  const attrs = () => [
    new pkijs.Attribute({ type: OID_FRIENDLY_NAME, values: [new asn1js.BmpString({ value: i.friendlyName })] }),
    new pkijs.Attribute({ type: OID_LOCAL_KEY_ID, values: [new asn1js.OctetString({ valueHex: ab(localKeyId) })] }),
  ];

  const keyBag = new pkijs.PKCS8ShroudedKeyBag({ parsedValue: fromDer(i.pkcs8, (schema) => new pkijs.PrivateKeyInfo({ schema })) });
  await keyBag.makeInternalValues(pbes2);
  const certBags = i.certificates.map(
    (der, n) =>
      new pkijs.SafeBag({
        bagId: OID_CERT_BAG,
        bagValue: new pkijs.CertBag({ certId: OID_X509_CERT, certValue: new asn1js.OctetString({ valueHex: ab(der) }) }),
        bagAttributes: n === 0 ? attrs() : undefined,
      }),
  );

  const pfx = new pkijs.PFX({
    parsedValue: {
      integrityMode: 0, // password-based integrity
      authenticatedSafe: new pkijs.AuthenticatedSafe({
        parsedValue: {
          safeContents: [
            { privacyMode: 0, value: new pkijs.SafeContents({ safeBags: [new pkijs.SafeBag({ bagId: OID_PKCS8_SHROUDED_KEY_BAG, bagValue: keyBag, bagAttributes: attrs() })] }) },
            { privacyMode: 1, value: new pkijs.SafeContents({ safeBags: certBags }) },
          ],
        },
      }),
    },
  });
  await pfx.parsedValue!.authenticatedSafe!.makeInternalValues({ safeContents: [{}, pbes2] });
  await pfx.makeInternalValues({ password, iterations: iterationCount, pbkdf2HashAlgorithm: 'SHA-256' as never, hmacHashAlgorithm: 'SHA-256' });
  return new Uint8Array(pfx.toSchema().toBER(false));
}
