/**
 * CRMF certificate requests (RFC 4211) as the enrollment core takes them:
 * the same ParsedCsr a PKCS#10 request gives, once the proof of possession
 * is checked. Only signature POP is accepted, without poposkInput (RFC 9483
 * §4.1.1): the signature covers the DER of certReq, made with the key of the
 * template (RFC 4211 §4.1).
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { SubjectAlternativeName, id_ce_subjectAltName } from '@peculiar/asn1-x509';
import { CertReqMsg } from '../asn1/crmf_request.js';
import { isProblem, ProblemError, rethrowAs } from '../errors.js';
import { keyInfoOf, publicKeyFromSpki, verifySignature } from './algorithms.js';
import type { ParsedCsr } from './csr.js';
import { fromGeneralName, type San } from './general_names.js';
import { nameAttributes } from './names.js';

/** What a CertReqMsg asks for, beyond what ParsedCsr holds. */
export interface CrmfRequest extends ParsedCsr {
  certReqId: number;
  /** Controls of the request (oldCertID for kur, ...): OID -> DER value. */
  controls: Map<string, Uint8Array>;
}

/**
 * Parses one CertReqMsg (DER) and verifies its POP. Throws bad_csr for a
 * malformed request or a template without subject or key, bad_signature
 * when the POP is missing, of another kind, or does not verify.
 */
export function parseCertReqMsg(msgDer: Uint8Array): CrmfRequest {
  const msg = rethrowAs('bad_csr', 'not a valid CRMF CertReqMsg', () => AsnConvert.parse(msgDer, CertReqMsg));
  const t = msg.certReq.certTemplate;
  if (!t.publicKey) throw new ProblemError('bad_csr', 'the certificate template has no public key (server-side key generation is not offered over CMP)');
  const spki = new Uint8Array(AsnConvert.serialize(t.publicKey));
  const publicKey = publicKeyFromSpki(spki);

  const popo = msg.popo;
  if (!popo) throw new ProblemError('bad_signature', 'the request has no proof of possession');
  if (popo.raVerified !== undefined) throw new ProblemError('bad_signature', 'raVerified proof of possession is for an RA; this server verifies the signature itself');
  if (!popo.signature) throw new ProblemError('bad_signature', 'only signature-based proof of possession is accepted (RFC 9483 §4.1.1)');
  const sig = popo.signature;
  // RFC 4211 §4.1: with subject and public key in the template the signature
  // covers certReq itself; RFC 9483 §4.1.1 says poposkInput MUST be absent.
  if (sig.poposkInput) throw new ProblemError('bad_signature', 'POPOSigningKey with poposkInput is not accepted (RFC 9483 §4.1.1)');
  if (!msg.certReqRaw) throw new ProblemError('bad_csr', 'certReq bytes are missing');
  const params = sig.algorithmIdentifier.parameters ? new Uint8Array(sig.algorithmIdentifier.parameters) : undefined;
  let ok: boolean;
  try {
    ok = verifySignature(sig.algorithmIdentifier.algorithm, params, publicKey, new Uint8Array(msg.certReqRaw), new Uint8Array(sig.signature));
  } catch (e) {
    if (isProblem(e)) throw e;
    ok = false;
  }
  if (!ok) throw new ProblemError('bad_signature', 'the proof of possession does not verify with the template\'s public key');

  const sans: San[] = [];
  const unsupportedSans: string[] = [];
  for (const ext of t.extensions ?? []) {
    if (ext.extnID !== id_ce_subjectAltName) continue;
    const names = rethrowAs('bad_csr', 'bad subjectAltName in the template', () => AsnConvert.parse(ext.extnValue, SubjectAlternativeName));
    for (const g of names) {
      const s = fromGeneralName(g);
      if (s.type === 'other') unsupportedSans.push(s.value);
      else sans.push(s);
    }
  }
  const controls = new Map<string, Uint8Array>();
  for (const c of msg.certReq.controls ?? []) controls.set(c.type, new Uint8Array(c.value));

  return {
    der: msgDer,
    subject: t.subject ? nameAttributes(t.subject) : [],
    spki,
    spkiSha256: createHash('sha256').update(spki).digest('hex'),
    publicKey,
    key: keyInfoOf(publicKey),
    sans,
    unsupportedSans,
    certReqId: msg.certReq.certReqId,
    controls,
  };
}
