/**
 * Certificate responses: the ip, cp, kup and ccp bodies (RFC 4210 §5.3.4,
 * RFC 9480 §2.7). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { PKIStatusInfo } from './cmp_status.js';

/**
 * ```asn1
 * CMPCertificate ::= CHOICE { x509v3PKCert Certificate, ... }
 * ```
 * A Certificate is the only alternative, so the type is Certificate itself.
 */
export const CMPCertificate = Certificate;
export type CMPCertificate = Certificate;

/** SEQUENCE SIZE (1..MAX) OF CMPCertificate: caPubs, extraCerts, caCerts. */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: Certificate })
export class CMPCertificates extends AsnArray<Certificate> {
  constructor(items?: Certificate[]) {
    super(items);
    Object.setPrototypeOf(this, CMPCertificates.prototype);
  }
}

/**
 * ```asn1
 * CertOrEncCert ::= CHOICE {
 *     certificate     [0] CMPCertificate,
 *     encryptedCert   [1] EncryptedKey }
 * ```
 * EncryptedKey (an EncryptedValue or EnvelopedData) is kept as opaque DER:
 * fleetpki never encrypts certificates.
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class CertOrEncCert {
  @AsnProp({ type: Certificate, context: 0 })
  certificate?: Certificate;

  @AsnProp({ type: AsnPropTypes.Any, context: 1 })
  encryptedCert?: ArrayBuffer;

  constructor(params: Partial<CertOrEncCert> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CertifiedKeyPair ::= SEQUENCE {
 *     certOrEncCert       CertOrEncCert,
 *     privateKey      [0] EncryptedKey      OPTIONAL,
 *     publicationInfo [1] PKIPublicationInfo OPTIONAL }
 * ```
 */
export class CertifiedKeyPair {
  @AsnProp({ type: CertOrEncCert })
  certOrEncCert = new CertOrEncCert();

  @AsnProp({ type: AsnPropTypes.Any, context: 0, optional: true })
  privateKey?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Any, context: 1, optional: true })
  publicationInfo?: ArrayBuffer;

  constructor(params: Partial<CertifiedKeyPair> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CertResponse ::= SEQUENCE {
 *     certReqId           INTEGER,
 *     status              PKIStatusInfo,
 *     certifiedKeyPair    CertifiedKeyPair    OPTIONAL,
 *     rspInfo             OCTET STRING        OPTIONAL }
 * ```
 */
export class CertResponse {
  @AsnProp({ type: AsnPropTypes.Integer })
  certReqId = 0;

  @AsnProp({ type: PKIStatusInfo })
  status = new PKIStatusInfo();

  @AsnProp({ type: CertifiedKeyPair, optional: true })
  certifiedKeyPair?: CertifiedKeyPair;

  @AsnProp({ type: OctetString, optional: true })
  rspInfo?: OctetString;

  constructor(params: Partial<CertResponse> = {}) {
    Object.assign(this, params);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence, itemType: CertResponse })
export class CertResponses extends AsnArray<CertResponse> {
  constructor(items?: CertResponse[]) {
    super(items);
    Object.setPrototypeOf(this, CertResponses.prototype);
  }
}

/**
 * ```asn1
 * CertRepMessage ::= SEQUENCE {
 *     caPubs          [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate
 *                         OPTIONAL,
 *     response            SEQUENCE OF CertResponse }
 * ```
 */
export class CertRepMessage {
  @AsnProp({ type: CMPCertificates, context: 1, optional: true })
  caPubs?: CMPCertificates;

  @AsnProp({ type: CertResponses })
  response = new CertResponses();

  constructor(params: Partial<CertRepMessage> = {}) {
    Object.assign(this, params);
  }
}
