/**
 * The CMP message body (RFC 4210 §5.1.2, RFC 9480). EXPLICIT TAGS: each
 * alternative is wrapped in its own [n] tag. Bodies fleetpki never reads
 * (key recovery, announcements, nested messages, POP challenges) are kept
 * as opaque DER, so every message still parses and re-encodes.
 */
import { AsnProp, AsnPropTypes, AsnType, AsnTypeTypes } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { CertRepMessage } from './cmp_cert_rep.js';
import { CertConfirmContent } from './cmp_confirm.js';
import { ErrorMsgContent } from './cmp_error.js';
import { GenMsgContent, GenRepContent } from './cmp_general.js';
import { PollRepContent, PollReqContent } from './cmp_poll.js';
import { RevRepContent, RevReqContent } from './cmp_revocation.js';
import { CertReqMessages } from './crmf_request.js';

/**
 * ```asn1
 * PKIBody ::= CHOICE {
 *     ir       [0]  CertReqMessages,        --Initialization Req
 *     ip       [1]  CertRepMessage,         --Initialization Resp
 *     cr       [2]  CertReqMessages,        --Certification Req
 *     cp       [3]  CertRepMessage,         --Certification Resp
 *     p10cr    [4]  CertificationRequest,   --PKCS #10 Cert.  Req.
 *     popdecc  [5]  POPODecKeyChallContent  --pop Challenge
 *     popdecr  [6]  POPODecKeyRespContent,  --pop Response
 *     kur      [7]  CertReqMessages,        --Key Update Request
 *     kup      [8]  CertRepMessage,         --Key Update Response
 *     krr      [9]  CertReqMessages,        --Key Recovery Req
 *     krp      [10] KeyRecRepContent,       --Key Recovery Resp
 *     rr       [11] RevReqContent,          --Revocation Request
 *     rp       [12] RevRepContent,          --Revocation Response
 *     ccr      [13] CertReqMessages,        --Cross-Cert.  Request
 *     ccp      [14] CertRepMessage,         --Cross-Cert.  Resp
 *     ckuann   [15] CAKeyUpdAnnContent,     --CA Key Update Ann.
 *     cann     [16] CertAnnContent,         --Certificate Ann.
 *     rann     [17] RevAnnContent,          --Revocation Ann.
 *     crlann   [18] CRLAnnContent,          --CRL Announcement
 *     pkiconf  [19] PKIConfirmContent,      --Confirmation
 *     nested   [20] NestedMessageContent,   --Nested Message
 *     genm     [21] GenMsgContent,          --General Message
 *     genp     [22] GenRepContent,          --General Response
 *     error    [23] ErrorMsgContent,        --Error Message
 *     certConf [24] CertConfirmContent,     --Certificate confirm
 *     pollReq  [25] PollReqContent,         --Polling request
 *     pollRep  [26] PollRepContent          --Polling response
 * }
 * ```
 */
@AsnType({ type: AsnTypeTypes.Choice })
export class PKIBody {
  @AsnProp({ type: CertReqMessages, context: 0 })
  ir?: CertReqMessages;

  @AsnProp({ type: CertRepMessage, context: 1 })
  ip?: CertRepMessage;

  @AsnProp({ type: CertReqMessages, context: 2 })
  cr?: CertReqMessages;

  @AsnProp({ type: CertRepMessage, context: 3 })
  cp?: CertRepMessage;

  @AsnProp({ type: CertificationRequest, context: 4 })
  p10cr?: CertificationRequest;

  @AsnProp({ type: AsnPropTypes.Any, context: 5 })
  popdecc?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Any, context: 6 })
  popdecr?: ArrayBuffer;

  @AsnProp({ type: CertReqMessages, context: 7 })
  kur?: CertReqMessages;

  @AsnProp({ type: CertRepMessage, context: 8 })
  kup?: CertRepMessage;

  @AsnProp({ type: CertReqMessages, context: 9 })
  krr?: CertReqMessages;

  @AsnProp({ type: AsnPropTypes.Any, context: 10 })
  krp?: ArrayBuffer;

  @AsnProp({ type: RevReqContent, context: 11 })
  rr?: RevReqContent;

  @AsnProp({ type: RevRepContent, context: 12 })
  rp?: RevRepContent;

  @AsnProp({ type: CertReqMessages, context: 13 })
  ccr?: CertReqMessages;

  @AsnProp({ type: CertRepMessage, context: 14 })
  ccp?: CertRepMessage;

  @AsnProp({ type: AsnPropTypes.Any, context: 15 })
  ckuann?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Any, context: 16 })
  cann?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Any, context: 17 })
  rann?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Any, context: 18 })
  crlann?: ArrayBuffer;

  @AsnProp({ type: AsnPropTypes.Null, context: 19 })
  pkiconf?: null;

  @AsnProp({ type: AsnPropTypes.Any, context: 20 })
  nested?: ArrayBuffer;

  @AsnProp({ type: GenMsgContent, context: 21 })
  genm?: GenMsgContent;

  @AsnProp({ type: GenRepContent, context: 22 })
  genp?: GenRepContent;

  @AsnProp({ type: ErrorMsgContent, context: 23 })
  error?: ErrorMsgContent;

  @AsnProp({ type: CertConfirmContent, context: 24 })
  certConf?: CertConfirmContent;

  @AsnProp({ type: PollReqContent, context: 25 })
  pollReq?: PollReqContent;

  @AsnProp({ type: PollRepContent, context: 26 })
  pollRep?: PollRepContent;

  constructor(params: Partial<PKIBody> = {}) {
    Object.assign(this, params);
  }
}

/** The PKIBody alternatives by name, in tag order. */
export const BODY_TYPES = [
  'ir', 'ip', 'cr', 'cp', 'p10cr', 'popdecc', 'popdecr', 'kur', 'kup', 'krr', 'krp', 'rr', 'rp', 'ccr', 'ccp',
  'ckuann', 'cann', 'rann', 'crlann', 'pkiconf', 'nested', 'genm', 'genp', 'error', 'certConf', 'pollReq', 'pollRep',
] as const;
export type BodyType = (typeof BODY_TYPES)[number];

/** Which alternative a parsed body holds (the only property set). */
export function bodyTypeOf(body: PKIBody): BodyType {
  const t = BODY_TYPES.find((k) => body[k] !== undefined);
  if (!t) throw new TypeError('PKIBody has no alternative set');
  return t;
}
