/**
 * The CMP message (RFC 4210 §5.1, §5.1.3). EXPLICIT TAGS.
 */
import { AsnArray, AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { CMPCertificates } from './cmp_cert_rep.js';
import { PKIBody } from './cmp_body.js';
import { PKIHeader } from './cmp_header.js';

/**
 * ```asn1
 * PKIMessage ::= SEQUENCE {
 *     header           PKIHeader,
 *     body             PKIBody,
 *     protection   [0] PKIProtection OPTIONAL,
 *     extraCerts   [1] SEQUENCE SIZE (1..MAX) OF CMPCertificate
 *                      OPTIONAL }
 *
 * PKIProtection ::= BIT STRING
 * ```
 * `headerRaw` and `bodyRaw` keep the received bytes: the protection covers
 * them exactly (ProtectedPart, below).
 */
export class PKIMessage {
  @AsnProp({ type: PKIHeader, raw: true })
  header = new PKIHeader();

  headerRaw?: ArrayBuffer;

  @AsnProp({ type: PKIBody, raw: true })
  body = new PKIBody();

  bodyRaw?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.BitString, context: 0, optional: true })
  protection?: ArrayBuffer;

  @AsnProp({ type: CMPCertificates, context: 1, optional: true })
  extraCerts?: CMPCertificates;

  constructor(params: Partial<PKIMessage> = {}) {
    Object.assign(this, params);
  }
}

/**
 * ```asn1
 * PKIMessages ::= SEQUENCE SIZE (1..MAX) OF PKIMessage
 * ```
 */
@AsnType({ type: AsnTypeTypes.Sequence, itemType: PKIMessage })
export class PKIMessages extends AsnArray<PKIMessage> {
  constructor(items?: PKIMessage[]) {
    super(items);
    Object.setPrototypeOf(this, PKIMessages.prototype);
  }
}

/**
 * ```asn1
 * ProtectedPart ::= SEQUENCE {
 *     header    PKIHeader,
 *     body      PKIBody }
 * ```
 */
export class ProtectedPart {
  @AsnProp({ type: PKIHeader })
  header = new PKIHeader();

  @AsnProp({ type: PKIBody })
  body = new PKIBody();

  constructor(params: Partial<ProtectedPart> = {}) {
    Object.assign(this, params);
  }
}
