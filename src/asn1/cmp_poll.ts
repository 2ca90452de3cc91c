/**
 * Polling while a request waits (RFC 4210 §5.3.22, RFC 9483 §4.4).
 * EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { PKIFreeText } from './cmp_status.js';

/** One entry of PollReqContent: SEQUENCE { certReqId INTEGER } */
export class PollReq {
  @AsnProp({ type: AsnPropTypes.Integer })
  certReqId = 0;

  constructor(params: Partial<PollReq> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * PollReqContent ::= SEQUENCE OF SEQUENCE {
 *     certReqId              INTEGER }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: PollReq })
export class PollReqContent extends AsnArray<PollReq> {
  constructor(items?: PollReq[]) {
    super(items);
    Object.setPrototypeOf(this, PollReqContent.prototype);
  }
}

/** One entry of PollRepContent. */
export class PollRep {
  @AsnProp({ type: AsnPropTypes.Integer })
  certReqId = 0;

  @AsnProp({ type: AsnPropTypes.Integer })
  checkAfter = 0;

  @AsnProp({ type: PKIFreeText, optional: true })
  reason?: PKIFreeText;

  constructor(params: Partial<PollRep> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * PollRepContent ::= SEQUENCE OF SEQUENCE {
 *     certReqId              INTEGER,
 *     checkAfter             INTEGER,  -- time in seconds
 *     reason                 PKIFreeText OPTIONAL }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: PollRep })
export class PollRepContent extends AsnArray<PollRep> {
  constructor(items?: PollRep[]) {
    super(items);
    Object.setPrototypeOf(this, PollRepContent.prototype);
  }
}
