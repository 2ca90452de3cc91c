/**
 * Certificate confirmation: the certConf and pkiconf bodies (RFC 4210
 * §5.3.17-18, RFC 9480 §2.10 adds hashAlg). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { PKIStatusInfo } from './cmp_status.js';

/**
 * ```asn1
 * CertStatus ::= SEQUENCE {
 *     certHash    OCTET STRING,
 *     certReqId   INTEGER,
 *     statusInfo  PKIStatusInfo OPTIONAL,
 *     hashAlg [0] AlgorithmIdentifier{DIGEST-ALGORITHM, {...}} OPTIONAL }
 * ```
 */
export class CertStatus {
  @AsnProp({ type: OctetString })
  certHash = new OctetString();

  @AsnProp({ type: AsnPropTypes.Integer })
  certReqId = 0;

  @AsnProp({ type: PKIStatusInfo, optional: true })
  statusInfo?: PKIStatusInfo;

  @AsnProp({ type: AlgorithmIdentifier, context: 0, optional: true })
  hashAlg?: AlgorithmIdentifier;

  constructor(params: Partial<CertStatus> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CertConfirmContent ::= SEQUENCE OF CertStatus
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: CertStatus })
export class CertConfirmContent extends AsnArray<CertStatus> {
  constructor(items?: CertStatus[]) {
    super(items);
    Object.setPrototypeOf(this, CertConfirmContent.prototype);
  }
}

/**
 * ```asn1
 * PKIConfirmContent ::= NULL
 * ```
 * Appears in PKIBody as `pkiconf [19] PKIConfirmContent`: an explicit [19]
 * around a NULL.
 */
export type PKIConfirmContent = null;
