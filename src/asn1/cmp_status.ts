/**
 * PKIStatusInfo and its parts (RFC 4210 §5.2.3, RFC 9480 §2.x), in the
 * @peculiar/asn1-schema style of @peculiar/asn1-ocsp. The CMP module uses
 * EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes, BitString } from '@peculiar/asn1-schema';

/**
 * ```asn1
 * PKIStatus ::= INTEGER {
 *     accepted                (0),
 *     grantedWithMods         (1),
 *     rejection               (2),
 *     waiting                 (3),
 *     revocationWarning       (4),
 *     revocationNotification  (5),
 *     keyUpdateWarning        (6) }
 * ```
 */
export enum PKIStatus {
  accepted = 0,
  grantedWithMods = 1,
  rejection = 2,
  waiting = 3,
  revocationWarning = 4,
  revocationNotification = 5,
  keyUpdateWarning = 6,
}

/**
 * ```asn1
 * PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: AsnPropTypes.Utf8String })
export class PKIFreeText extends AsnArray<string> {
  constructor(items?: string[]) {
    super(items);
    Object.setPrototypeOf(this, PKIFreeText.prototype);
  }
}

/** The named bits of PKIFailureInfo, in bit order. */
export const FAILURE_BITS = [
  'badAlg',
  'badMessageCheck',
  'badRequest',
  'badTime',
  'badCertId',
  'badDataFormat',
  'wrongAuthority',
  'incorrectData',
  'missingTimeStamp',
  'badPOP',
  'certRevoked',
  'certConfirmed',
  'wrongIntegrity',
  'badRecipientNonce',
  'timeNotAvailable',
  'unacceptedPolicy',
  'unacceptedExtension',
  'addInfoNotAvailable',
  'badSenderNonce',
  'badCertTemplate',
  'signerNotTrusted',
  'transactionIdInUse',
  'unsupportedVersion',
  'notAuthorized',
  'systemUnavail',
  'systemFailure',
  'duplicateCertReq',
] as const;
export type FailureBit = (typeof FAILURE_BITS)[number];

/**
 * ```asn1
 * PKIFailureInfo ::= BIT STRING {
 *     badAlg              (0),  badMessageCheck     (1),
 *     badRequest          (2),  badTime             (3),
 *     badCertId           (4),  badDataFormat       (5),
 *     wrongAuthority      (6),  incorrectData       (7),
 *     missingTimeStamp    (8),  badPOP              (9),
 *     certRevoked         (10), certConfirmed       (11),
 *     wrongIntegrity      (12), badRecipientNonce   (13),
 *     timeNotAvailable    (14), unacceptedPolicy    (15),
 *     unacceptedExtension (16), addInfoNotAvailable (17),
 *     badSenderNonce      (18), badCertTemplate     (19),
 *     signerNotTrusted    (20), transactionIdInUse  (21),
 *     unsupportedVersion  (22), notAuthorized       (23),
 *     systemUnavail       (24), systemFailure       (25),
 *     duplicateCertReq    (26) }
 * ```
 * A named-bit list: bit 0 is the high bit of the first octet, and DER drops
 * trailing zero bits (X.690 §11.2.2), so the unused-bits count is kept as read.
 */
export class PKIFailureInfo extends BitString {
  static of(names: readonly FailureBit[]): PKIFailureInfo {
    const idx = [...new Set(names.map((n) => FAILURE_BITS.indexOf(n)))].filter((i) => i >= 0);
    const f = new PKIFailureInfo();
    if (idx.length === 0) return f;
    const top = Math.max(...idx);
    const octets = new Uint8Array((top >> 3) + 1);
    for (const i of idx) octets[i >> 3] |= 0x80 >> (i & 7);
    f.value = octets.buffer;
    f.unusedBits = 7 - (top & 7);
    return f;
  }

  names(): FailureBit[] {
    const v = new Uint8Array(this.value);
    const out: FailureBit[] = [];
    const total = v.length * 8 - this.unusedBits;
    for (let i = 0; i < total && i < FAILURE_BITS.length; i++) if (v[i >> 3] & (0x80 >> (i & 7))) out.push(FAILURE_BITS[i]);
    return out;
  }
}

/**
 * ```asn1
 * PKIStatusInfo ::= SEQUENCE {
 *     status        PKIStatus,
 *     statusString  PKIFreeText     OPTIONAL,
 *     failInfo      PKIFailureInfo  OPTIONAL }
 * ```
 */
export class PKIStatusInfo {
  @AsnProp({ type: AsnPropTypes.Integer })
  status: PKIStatus = PKIStatus.accepted;

  @AsnProp({ type: PKIFreeText, optional: true })
  statusString?: PKIFreeText;

  @AsnProp({ type: PKIFailureInfo, optional: true })
  failInfo?: PKIFailureInfo;

  constructor(params: Partial<PKIStatusInfo> = {}) {
    Object.assign(this, params);
  }
}
