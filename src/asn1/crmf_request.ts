/**
 * Certificate request messages of CRMF (RFC 4211 §3, §5), carried in the
 * ir, cr and kur bodies of CMP.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, CertTemplate, Controls } from './crmf_template.js';
import { ProofOfPossession } from './crmf_pop.js';

/**
 * ```asn1
 * CertRequest ::= SEQUENCE {
 *     certReqId     INTEGER,
 *     certTemplate  CertTemplate,
 *     controls      Controls OPTIONAL }
 * ```
 */
export class CertRequest {
  @AsnProp({ type: AsnPropTypes.Integer })
  certReqId = 0;

  @AsnProp({ type: CertTemplate })
  certTemplate = new CertTemplate();

  @AsnProp({ type: Controls, optional: true })
  controls?: Controls;

  constructor(params: Partial<CertRequest> = {}) {
    Object.assign(this, params);
  }
}

/** regInfo ::= SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: AttributeTypeAndValue })
export class RegInfo extends AsnArray<AttributeTypeAndValue> {
  constructor(items?: AttributeTypeAndValue[]) {
    super(items);
    Object.setPrototypeOf(this, RegInfo.prototype);
  }
}

/**
 * ```asn1
 * CertReqMsg ::= SEQUENCE {
 *     certReq   CertRequest,
 *     popo      ProofOfPossession  OPTIONAL,
 *     regInfo   SEQUENCE SIZE(1..MAX) OF AttributeTypeAndValue OPTIONAL }
 * ```
 * `certReqRaw` keeps the received bytes of certReq: a POPOSigningKey without
 * poposkInput signs exactly them (RFC 4211 §4.1).
 */
export class CertReqMsg {
  @AsnProp({ type: CertRequest, raw: true })
  certReq = new CertRequest();

  certReqRaw?: ArrayBuffer;

  @AsnProp({ type: ProofOfPossession, optional: true })
  popo?: ProofOfPossession;

  @AsnProp({ type: RegInfo, optional: true })
  regInfo?: RegInfo;

  constructor(params: Partial<CertReqMsg> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * CertReqMessages ::= SEQUENCE SIZE (1..MAX) OF CertReqMsg
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: CertReqMsg })
export class CertReqMessages extends AsnArray<CertReqMsg> {
  constructor(items?: CertReqMsg[]) {
    super(items);
    Object.setPrototypeOf(this, CertReqMessages.prototype);
  }
}
