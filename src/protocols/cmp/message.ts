/**
 * Reading and writing PKIMessages (RFC 4210 §5.1) on the wire: strict DER
 * in, the exact protected bytes kept; answers assembled so the protection
 * covers exactly what is sent.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { GeneralName, Name, type AlgorithmIdentifier } from '@peculiar/asn1-x509';
import * as der from '../../asn1/der.js';
import { bodyTypeOf, type BodyType, type PKIBody } from '../../asn1/cmp_body.js';
import { InfoTypeAndValue, InfoTypeAndValues, PKIHeader, PKIVersion } from '../../asn1/cmp_header.js';
import { PKIMessage } from '../../asn1/cmp_message.js';
import { id_it } from '../../asn1/cmp_oids.js';
import { ProblemError } from '../../errors.js';
import { parseCertificate, type CertInfo } from '../../x509/cert_info.js';
import { cmpProblem } from './failure.js';

/** Larger bodies are refused before parsing (a certificate request with a chain is a few KiB). */
export const CMP_BODY_LIMIT = 256 * 1024;

export interface ReceivedMessage {
  der: Uint8Array;
  msg: PKIMessage;
  type: BodyType;
  /** DER of ProtectedPart ::= SEQUENCE { header, body } over the received bytes. */
  protectedPart: Uint8Array;
  pvno: number;
  /** Lowercase hex. */
  transactionId?: string;
  senderNonce?: Uint8Array;
  recipNonce?: Uint8Array;
  senderKid?: Uint8Array;
  messageTime?: Date;
  /** RFC 4210 §5.1.1.1: the client asks to skip certConf. */
  implicitConfirm: boolean;
  /** extraCerts as received, the protection certificate first (RFC 9483 §3.3). */
  extraCerts: CertInfo[];
  /** DER of the sender Name when the sender is a directoryName. */
  senderName?: Uint8Array;
}

const badFormat = (why: string) => cmpProblem('bad_request', ['badDataFormat'], `not a CMP PKIMessage: ${why}`);
const bytes = (o: OctetString | undefined) => (o ? new Uint8Array(o.buffer) : undefined);

/** Parses a request; throws bad_request with badDataFormat for anything that is not a DER PKIMessage. */
export function decodeMessage(input: Uint8Array): ReceivedMessage {
  let top: der.Tlv;
  let kids: der.Tlv[];
  try {
    top = der.expectSingleTlv(input, 'PKIMessage');
    if (top.tag !== der.TAG.SEQUENCE) throw badFormat('not a SEQUENCE');
    kids = der.readChildren(input, top);
  } catch (e) {
    if (e instanceof ProblemError) throw badFormat(e.detail);
    throw e;
  }
  if (kids.length < 2 || kids.length > 4) throw badFormat(`${kids.length} top-level elements`);
  let msg: PKIMessage;
  try {
    msg = AsnConvert.parse(input, PKIMessage);
  } catch (e) {
    throw badFormat((e as Error).message);
  }
  let type: BodyType;
  try {
    type = bodyTypeOf(msg.body);
  } catch {
    throw badFormat('empty body');
  }
  const h = msg.header;
  // The protection covers the bytes as received, not a re-encoding.
  const protectedPart = der.seq(der.slice(input, kids[0]), der.slice(input, kids[1]));
  const extraCerts: CertInfo[] = [];
  const extra = kids.slice(2).find((k) => k.tag === 0xa1);
  if (extra) {
    const [seq] = der.readChildren(input, extra);
    for (const c of der.readChildren(input, seq)) {
      try {
        extraCerts.push(parseCertificate(der.slice(input, c).slice()));
      } catch (e) {
        throw badFormat(`extraCerts: ${(e as ProblemError).detail ?? (e as Error).message}`);
      }
    }
  }
  return {
    der: input,
    msg,
    type,
    protectedPart,
    pvno: h.pvno,
    transactionId: h.transactionID ? Buffer.from(h.transactionID.buffer).toString('hex') : undefined,
    senderNonce: bytes(h.senderNonce),
    recipNonce: bytes(h.recipNonce),
    senderKid: bytes(h.senderKID),
    messageTime: h.messageTime,
    implicitConfirm: (h.generalInfo ?? []).some((i) => i.infoType === id_it.implicitConfirm),
    extraCerts,
    senderName: h.sender.directoryName ? new Uint8Array(AsnConvert.serialize(h.sender.directoryName)) : undefined,
  };
}

/** GeneralName directoryName from a DER Name; the NULL-DN when none. */
export function directoryName(nameDer?: Uint8Array): GeneralName {
  return new GeneralName({ directoryName: nameDer ? AsnConvert.parse(nameDer, Name) : new Name() });
}

/** How an answer is protected: its protectionAlg, then the protection over ProtectedPart. */
export interface Protector {
  algorithm: AlgorithmIdentifier;
  senderKid?: Uint8Array;
  /** Certificates for extraCerts, the protection certificate first. */
  extraCerts: Uint8Array[];
  protect(protectedPart: Uint8Array): Promise<Uint8Array>;
}

export interface AnswerHeader {
  /** The request, when it could be read: its transactionID, nonce and sender. */
  req?: ReceivedMessage;
  sender: GeneralName;
  now: Date;
  senderNonce: Uint8Array;
  generalInfo?: InfoTypeAndValue[];
  freeText?: string;
}

/** The header of an answer (RFC 9483 §3.1): transactionID and the client's nonce echoed. */
export function answerHeader(a: AnswerHeader, protector?: Protector): PKIHeader {
  const req = a.req;
  const h = new PKIHeader({
    // RFC 9483 §3.1: 3 only where the request used it (EnvelopedData, hashAlg).
    pvno: req?.pvno === PKIVersion.cmp2021 ? PKIVersion.cmp2021 : PKIVersion.cmp2000,
    sender: a.sender,
    recipient: req ? req.msg.header.sender : directoryName(),
    messageTime: new Date(Math.floor(a.now.getTime() / 1000) * 1000),
    senderNonce: new OctetString(new Uint8Array(a.senderNonce)),
  });
  if (protector) h.protectionAlg = protector.algorithm;
  if (protector?.senderKid) h.senderKID = new OctetString(new Uint8Array(protector.senderKid));
  if (req?.transactionId) h.transactionID = new OctetString(Buffer.from(req.transactionId, 'hex'));
  if (req?.senderNonce) h.recipNonce = new OctetString(new Uint8Array(req.senderNonce));
  if (a.generalInfo?.length) h.generalInfo = new InfoTypeAndValues(a.generalInfo);
  return h;
}

/**
 * PKIMessage DER: the header and body encoded once, the protection computed
 * over exactly those bytes (RFC 4210 §5.1.3), then extraCerts.
 */
export async function encodeMessage(header: PKIHeader, body: PKIBody, protector?: Protector): Promise<Uint8Array> {
  const h = new Uint8Array(AsnConvert.serialize(header));
  const b = new Uint8Array(AsnConvert.serialize(body));
  const parts: Uint8Array[] = [h, b];
  if (protector) {
    parts.push(der.ctx(0, true, der.bitString(await protector.protect(der.seq(h, b)))));
    if (protector.extraCerts.length) parts.push(der.ctx(1, true, der.seq(...protector.extraCerts)));
  }
  return der.seq(...parts);
}

/** InfoTypeAndValue without a value (implicitConfirm, or a genp with nothing to say). */
export function itav(infoType: string, valueDer?: Uint8Array): InfoTypeAndValue {
  const i = new InfoTypeAndValue({ infoType });
  if (valueDer) i.infoValue = valueDer.slice().buffer;
  return i;
}

