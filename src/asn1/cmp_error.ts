/**
 * The error body (RFC 4210 §5.3.21). EXPLICIT TAGS.
 */
import { AsnProp, AsnPropTypes } from '@peculiar/asn1-schema';
import { PKIFreeText, PKIStatusInfo } from './cmp_status.js';

/**
 * ```asn1
 * ErrorMsgContent ::= SEQUENCE {
 *     pKIStatusInfo          PKIStatusInfo,
 *     errorCode              INTEGER           OPTIONAL,
 *     errorDetails           PKIFreeText       OPTIONAL }
 * ```
 */
export class ErrorMsgContent {
  @AsnProp({ type: PKIStatusInfo })
  pKIStatusInfo = new PKIStatusInfo();

  @AsnProp({ type: AsnPropTypes.Integer, optional: true })
  errorCode?: number;

  @AsnProp({ type: PKIFreeText, optional: true })
  errorDetails?: PKIFreeText;

  constructor(params: Partial<ErrorMsgContent> = {}) {
    Object.assign(this, params);
  }
}
