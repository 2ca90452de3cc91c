/**
 * General messages: the genm and genp bodies (RFC 4210 §5.3.19-20) and the
 * values of the info types the Lightweight CMP Profile uses (RFC 9480
 * §2.3-2.6, RFC 9483 §4.3). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { Certificate, DistributionPointName, GeneralNames, Time } from '@peculiar/asn1-x509';
import { InfoTypeAndValue } from './cmp_header.js';
import { CertTemplate, Controls } from './crmf_template.js';

/**
 * ```asn1
 * GenMsgContent ::= SEQUENCE OF InfoTypeAndValue
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: InfoTypeAndValue })
export class GenMsgContent extends AsnArray<InfoTypeAndValue> {
  constructor(items?: InfoTypeAndValue[]) {
    super(items);
    Object.setPrototypeOf(this, GenMsgContent.prototype);
  }
}

/**
 * ```asn1
 * GenRepContent ::= SEQUENCE OF InfoTypeAndValue
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: InfoTypeAndValue })
export class GenRepContent extends AsnArray<InfoTypeAndValue> {
  constructor(items?: InfoTypeAndValue[]) {
    super(items);
    Object.setPrototypeOf(this, GenRepContent.prototype);
  }
}

/**
 * ```asn1
 * RootCaKeyUpdateContent ::= SEQUENCE {
 *     newWithNew              CMPCertificate,
 *     newWithOld          [0] CMPCertificate OPTIONAL,
 *     oldWithNew          [1] CMPCertificate OPTIONAL }
 * ```
 */
export class RootCaKeyUpdateContent {
  @AsnProp({ type: Certificate })
  newWithNew = new Certificate();

  @AsnProp({ type: Certificate, context: 0, optional: true })
  newWithOld?: Certificate;

  @AsnProp({ type: Certificate, context: 1, optional: true })
  oldWithNew?: Certificate;

  constructor(params: Partial<RootCaKeyUpdateContent> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CertReqTemplateContent ::= SEQUENCE {
 *     certTemplate           CertTemplate,
 *     keySpec                Controls OPTIONAL }
 * ```
 */
export class CertReqTemplateContent {
  @AsnProp({ type: CertTemplate })
  certTemplate = new CertTemplate();

  @AsnProp({ type: Controls, optional: true })
  keySpec?: Controls;

  constructor(params: Partial<CertReqTemplateContent> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CRLSource ::= CHOICE {
 *     dpn          [0] DistributionPointName,
 *     issuer       [1] GeneralNames }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class CRLSource {
  @AsnProp({ type: DistributionPointName, context: 0 })
  dpn?: DistributionPointName;

  @AsnProp({ type: GeneralNames, context: 1 })
  issuer?: GeneralNames;

  constructor(params: Partial<CRLSource> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CRLStatus ::= SEQUENCE {
 *     source       CRLSource,
 *     thisUpdate   Time OPTIONAL }
 * ```
 */
export class CRLStatus {
  @AsnProp({ type: CRLSource })
  source = new CRLSource();

  @AsnProp({ type: Time, optional: true })
  thisUpdate?: Time;

  constructor(params: Partial<CRLStatus> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CRLStatusListValue ::= SEQUENCE SIZE (1..MAX) OF CRLStatus
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: CRLStatus })
export class CRLStatusListValue extends AsnArray<CRLStatus> {
  constructor(items?: CRLStatus[]) {
    super(items);
    Object.setPrototypeOf(this, CRLStatusListValue.prototype);
  }
}
