/**
 * PKCS#10 certification requests (RFC 2986): parse strictly and check the
 * self-signature, which is the requester's proof of possession of the key.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { Extensions, SubjectAlternativeName, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import * as der from '../asn1/der.js';
import { isProblem, ProblemError, rethrowAs } from '../errors.js';
import { keyInfoOf, publicKeyFromSpki, verifySignature, type KeyInfo } from './algorithms.js';
import { fromGeneralName, type San } from './general_names.js';
import { nameAttributes, type DnAttribute } from './names.js';
import { derFromPemOrDer } from './pem.js';

const id_extensionRequest = '1.2.840.113549.1.9.14';

export interface ParsedCsr {
  der: Uint8Array;
  subject: DnAttribute[];
  /** DER of the SubjectPublicKeyInfo, copied into the certificate as is. */
  spki: Uint8Array;
  spkiSha256: string;
  publicKey: KeyObject;
  key: KeyInfo;
  /** SANs requested through the extensionRequest attribute. */
  sans: San[];
  /** Requested names fleetpki does not issue (otherName, directoryName, ...). */
  unsupportedSans: string[];
}

/** A request already parsed and verified (a CRMF CertReqMsg from CMP), as opposed to PKCS#10 bytes. */
export function isParsedCsr(x: Uint8Array | string | ParsedCsr | undefined): x is ParsedCsr {
  return typeof x === 'object' && !(x instanceof Uint8Array);
}

/**
 * Parses a PEM or DER CSR and verifies its signature. Throws bad_csr for
 * anything malformed and bad_signature when the proof of possession fails.
 */
export function parseCsr(input: Uint8Array | string): ParsedCsr {
  try {
    const csrDer = derFromPemOrDer(input, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'bad_csr');
    return rethrowAs('bad_csr', 'not a valid PKCS#10 request', () => parseCsrDer(csrDer));
  } catch (e) {
    // The shared DER/PEM readers say bad_request; for a CSR the answer is bad_csr.
    if (isProblem(e, 'bad_request')) throw new ProblemError('bad_csr', `not a valid PKCS#10 request: ${e.detail}`);
    throw e;
  }
}

function parseCsrDer(csrDer: Uint8Array): ParsedCsr {
  // Raw slices first: the signature covers the exact bytes of the request info.
  const outer = der.expectSingleTlv(csrDer, 'CSR');
  const outerChildren = der.readChildren(csrDer, outer);
  const [infoTlv, algTlv, sigTlv] = outerChildren;
  // RFC 2986 §4.2: exactly SEQUENCE (info), SEQUENCE (algorithm), BIT STRING.
  if (outer.tag !== der.TAG.SEQUENCE || outerChildren.length !== 3 || infoTlv.tag !== der.TAG.SEQUENCE || algTlv.tag !== der.TAG.SEQUENCE || sigTlv.tag !== der.TAG.BIT_STRING) {
    throw new ProblemError('bad_csr', 'CSR is not a CertificationRequest (SEQUENCE of info, algorithm, signature)');
  }
  // A signature is a whole number of octets: a BIT STRING with unused bits is not one (the library would ignore them).
  if (sigTlv.end === sigTlv.contentStart || csrDer[sigTlv.contentStart] !== 0) throw new ProblemError('bad_csr', 'the CSR signature BIT STRING has unused bits');
  const infoChildren = der.readChildren(csrDer, infoTlv);
  // §4.1: version, subject, subjectPKInfo, [0] attributes — nothing more.
  if (infoChildren.length > 4) throw new ProblemError('bad_csr', 'CertificationRequestInfo has extra elements');
  const spkiTlv = infoChildren[2];
  if (!spkiTlv || spkiTlv.tag !== der.TAG.SEQUENCE) throw new ProblemError('bad_csr', 'CSR has no SubjectPublicKeyInfo');

  const req = AsnConvert.parse(csrDer, CertificationRequest);
  const info = req.certificationRequestInfo;
  if (info.version !== 0) throw new ProblemError('bad_csr', `CSR version ${info.version} is not v1 (0)`);

  const spki = csrDer.slice(spkiTlv.start, spkiTlv.end);
  const publicKey = publicKeyFromSpki(spki);
  const key = keyInfoOf(publicKey);

  const params = req.signatureAlgorithm.parameters ? new Uint8Array(req.signatureAlgorithm.parameters) : undefined;
  const ok = verifySignature(req.signatureAlgorithm.algorithm, params, publicKey, der.slice(csrDer, infoTlv), new Uint8Array(req.signature));
  if (!ok) throw new ProblemError('bad_signature', 'the CSR signature does not verify with its public key (no proof of possession)');

  const sans: San[] = [];
  const unsupportedSans: string[] = [];
  for (const attr of info.attributes ?? []) {
    if (attr.type !== id_extensionRequest) continue;
    for (const value of attr.values) {
      const exts = AsnConvert.parse(value, Extensions);
      for (const ext of exts) {
        if (ext.extnID !== id_ce_subjectAltName) continue;
        for (const g of AsnConvert.parse(ext.extnValue, SubjectAlternativeName)) {
          const s = fromGeneralName(g);
          if (s.type === 'other') unsupportedSans.push(s.value);
          else sans.push(s);
        }
      }
    }
  }

  return {
    der: csrDer,
    subject: nameAttributes(info.subject),
    spki,
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
    publicKey,
    key,
    sans,
    unsupportedSans,
  };
}
