/**
 * Revocation: the rr and rp bodies (RFC 4210 §5.3.9-10). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { CertificateList, Extensions } from '@peculiar/asn1-x509';
import { PKIStatusInfo } from './cmp_status.js';
import { CertId, CertTemplate } from './crmf_template.js';

/**
 * ```asn1
 * RevDetails ::= SEQUENCE {
 *     certDetails         CertTemplate,
 *     crlEntryDetails     Extensions{{...}}    OPTIONAL }
 * ```
 */
export class RevDetails {
  @AsnProp({ type: CertTemplate })
  certDetails = new CertTemplate();

  @AsnProp({ type: Extensions, optional: true })
  crlEntryDetails?: Extensions;

  constructor(params: Partial<RevDetails> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * RevReqContent ::= SEQUENCE OF RevDetails
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: RevDetails })
export class RevReqContent extends AsnArray<RevDetails> {
  constructor(items?: RevDetails[]) {
    super(items);
    Object.setPrototypeOf(this, RevReqContent.prototype);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence, itemType: PKIStatusInfo })
export class PKIStatusInfos extends AsnArray<PKIStatusInfo> {
  constructor(items?: PKIStatusInfo[]) {
    super(items);
    Object.setPrototypeOf(this, PKIStatusInfos.prototype);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence, itemType: CertId })
export class CertIds extends AsnArray<CertId> {
  constructor(items?: CertId[]) {
    super(items);
    Object.setPrototypeOf(this, CertIds.prototype);
  }
}

@AsnType({ type: AsnTypeTypes.Sequence, itemType: CertificateList })
export class CertificateLists extends AsnArray<CertificateList> {
  constructor(items?: CertificateList[]) {
    super(items);
    Object.setPrototypeOf(this, CertificateLists.prototype);
  }
}

/**
 * ```asn1
 * RevRepContent ::= SEQUENCE {
 *     status       SEQUENCE SIZE (1..MAX) OF PKIStatusInfo,
 *     revCerts [0] SEQUENCE SIZE (1..MAX) OF CertId OPTIONAL,
 *     crls     [1] SEQUENCE SIZE (1..MAX) OF CertificateList OPTIONAL }
 * ```
 */
export class RevRepContent {
  @AsnProp({ type: PKIStatusInfos })
  status = new PKIStatusInfos();

  @AsnProp({ type: CertIds, context: 0, optional: true })
  revCerts?: CertIds;

  @AsnProp({ type: CertificateLists, context: 1, optional: true })
  crls?: CertificateLists;

  constructor(params: Partial<RevRepContent> = {}) {
    Object.assign(this, params);
  }
}
