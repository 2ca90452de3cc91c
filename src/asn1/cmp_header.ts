/**
 * The CMP message header (RFC 4210 §5.1.1, RFC 9480 §2.20). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, GeneralName } from '@peculiar/asn1-x509';
import { PKIFreeText } from './cmp_status.js';

/**
 * ```asn1
 * InfoTypeAndValue ::= SEQUENCE {
 *     infoType    OBJECT IDENTIFIER,
 *     infoValue   ANY DEFINED BY infoType  OPTIONAL }
 * ```
 */
export class InfoTypeAndValue {
  @AsnProp({ type: AsnPropTypes.ObjectIdentifier })
  infoType = '';

  @AsnProp({ type: AsnPropTypes.Any, optional: true })
  infoValue?: ArrayBuffer;

  constructor(params: Partial<InfoTypeAndValue> = {}) {
    Object.assign(this, params);
  }
}

/** generalInfo [8] SEQUENCE SIZE (1..MAX) OF InfoTypeAndValue */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: InfoTypeAndValue })
export class InfoTypeAndValues extends AsnArray<InfoTypeAndValue> {
  constructor(items?: InfoTypeAndValue[]) {
    super(items);
    Object.setPrototypeOf(this, InfoTypeAndValues.prototype);
  }
}

/** pvno values (RFC 9480 §2.20). */
export enum PKIVersion {
  cmp1999 = 1,
  cmp2000 = 2,
  cmp2021 = 3,
}

/**
 * ```asn1
 * PKIHeader ::= SEQUENCE {
 *     pvno                INTEGER     { cmp1999(1), cmp2000(2), cmp2021(3) },
 *     sender              GeneralName,
 *     recipient           GeneralName,
 *     messageTime     [0] GeneralizedTime         OPTIONAL,
 *     protectionAlg   [1] AlgorithmIdentifier     OPTIONAL,
 *     senderKID       [2] KeyIdentifier           OPTIONAL,
 *     recipKID        [3] KeyIdentifier           OPTIONAL,
 *     transactionID   [4] OCTET STRING            OPTIONAL,
 *     senderNonce     [5] OCTET STRING            OPTIONAL,
 *     recipNonce      [6] OCTET STRING            OPTIONAL,
 *     freeText        [7] PKIFreeText             OPTIONAL,
 *     generalInfo     [8] SEQUENCE SIZE (1..MAX) OF
 *                         InfoTypeAndValue     OPTIONAL }
 * ```
 */
export class PKIHeader {
  @AsnProp({ type: AsnPropTypes.Integer })
  pvno: PKIVersion = PKIVersion.cmp2000;

  @AsnProp({ type: GeneralName })
  sender = new GeneralName();

  @AsnProp({ type: GeneralName })
  recipient = new GeneralName();

  @AsnProp({ type: AsnPropTypes.GeneralizedTime, context: 0, optional: true })
  messageTime?: Date;

  @AsnProp({ type: AlgorithmIdentifier, context: 1, optional: true })
  protectionAlg?: AlgorithmIdentifier;

  @AsnProp({ type: OctetString, context: 2, optional: true })
  senderKID?: OctetString;

  @AsnProp({ type: OctetString, context: 3, optional: true })
  recipKID?: OctetString;

  @AsnProp({ type: OctetString, context: 4, optional: true })
  transactionID?: OctetString;

  @AsnProp({ type: OctetString, context: 5, optional: true })
  senderNonce?: OctetString;

  @AsnProp({ type: OctetString, context: 6, optional: true })
  recipNonce?: OctetString;

  @AsnProp({ type: PKIFreeText, context: 7, optional: true })
  freeText?: PKIFreeText;

  @AsnProp({ type: InfoTypeAndValues, context: 8, optional: true })
  generalInfo?: InfoTypeAndValues;

  constructor(params: Partial<PKIHeader> = {}) {
    Object.assign(this, params);
  }
}
