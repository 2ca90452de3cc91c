/**
 * Certificate enrollment over CMP (RFC 9483 §4.1, §4.4): ir/cr/kur/p10cr →
 * ip/cp/kup, certConf → pkiconf, pollReq → pollRep while an enrollment
 * waits for approval. The registry's enrollment core decides, exactly as
 * for EST; this module turns CMP into its request and its answer back.
 *
 * Confirmation: the certificate is committed to the store before it is
 * sent (the project rule). Unless implicitConfirm was asked for and granted,
 * the transaction then waits confirmWaitSeconds for certConf. A rejecting
 * certConf, a wrong certHash, an error message from the client, or no
 * certConf in time, and the certificate is treated as not accepted (RFC 9483
 * §4.1.1): revoked, and the device's previous certificate is current again
 * (Enrollment.abandon).
 */
import { createHash } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { PKIBody } from '../../asn1/cmp_body.js';
import { CertifiedKeyPair, CertOrEncCert, CertRepMessage, CertResponse, CertResponses, CMPCertificates } from '../../asn1/cmp_cert_rep.js';
import { id_alg, id_it, id_regCtrl } from '../../asn1/cmp_oids.js';
import { PollRep, PollRepContent } from '../../asn1/cmp_poll.js';
import { PKIFreeText, PKIStatus, PKIStatusInfo } from '../../asn1/cmp_status.js';
import { CertId } from '../../asn1/crmf_template.js';
import * as der from '../../asn1/der.js';
import { ProblemError } from '../../errors.js';
import type { EnrollmentCredential, EnrollResult } from '../../registry/enrollment.js';
import type { CmpTransactionRecord } from '../../store/store.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { parseCertReqMsg } from '../../x509/crmf_request.js';
import type { ParsedCsr } from '../../x509/csr.js';
import { beginTransaction, closeTransaction, continuedTransaction, hex, type CmpDeps, type Exchange } from './exchange.js';
import { cmpProblem } from './failure.js';
import { itav } from './message.js';

/** The answer body for each request body. */
const ANSWER = { ir: 'ip', cr: 'cp', kur: 'kup', p10cr: 'cp' } as const;
type RequestKind = keyof typeof ANSWER;

/** RFC 9480 §3.4 (p10cr): the CertResponse of a PKCS#10 request has certReqId -1. */
const P10_CERT_REQ_ID = -1;

/** Errors the enrollment core already wrote to the audit log. */
export const audited = new WeakSet<object>();

function credentialOf(ex: Exchange): EnrollmentCredential {
  const v = ex.verified;
  if (v?.kind === 'mac') return { kind: 'secret', deviceId: v.deviceId, secret: v.secret };
  if (v?.kind === 'signature') return { kind: 'certificate', leaf: v.leaf, anchor: v.anchor };
  throw cmpProblem('unauthorized', ['badMessageCheck'], 'a certificate request must be protected: a MAC with the enrollment secret or a signature (RFC 9483 §3.2)');
}

/** The request inside an ir/cr/kur (one CertReqMsg, RFC 9483 §4.1.1) or a p10cr. */
function requestOf(ex: Exchange, kind: RequestKind): { csr: ParsedCsr | Uint8Array; requestDer: Uint8Array; certReqId: number } {
  const body = ex.req.msg.body;
  if (kind === 'p10cr') {
    const requestDer = new Uint8Array(AsnConvert.serialize(body.p10cr!));
    return { csr: requestDer, requestDer, certReqId: P10_CERT_REQ_ID };
  }
  const msgs = body[kind]!;
  if (msgs.length !== 1) throw cmpProblem('bad_request', ['badRequest'], `a ${kind} carries exactly one CertReqMsg (RFC 9483 §4.1.1), not ${msgs.length}`);
  if (!msgs[0].certReq.certTemplate.publicKey) throw cmpProblem('bad_request', ['badCertTemplate'], 'the certificate template has no public key (central key generation is not offered)');
  const requestDer = new Uint8Array(AsnConvert.serialize(msgs[0]));
  const parsed = parseCertReqMsg(requestDer);
  if (kind === 'kur') checkOldCertId(ex, parsed.controls.get(id_regCtrl.oldCertID));
  return { csr: parsed, requestDer, certReqId: parsed.certReqId };
}

/** RFC 9483 §4.1.3: oldCertID, when given, names the certificate that signs the kur. */
function checkOldCertId(ex: Exchange, value: Uint8Array | undefined): void {
  const v = ex.verified;
  if (!value || v?.kind !== 'signature') return;
  const id = AsnConvert.parse(value, CertId);
  const serial = Buffer.from(id.serialNumber).toString('hex');
  const issuer = id.issuer.directoryName ? new Uint8Array(AsnConvert.serialize(id.issuer.directoryName)) : undefined;
  const sameIssuer = issuer && Buffer.compare(Buffer.from(issuer), Buffer.from(v.leaf.issuerDer)) === 0;
  if (serial !== v.leaf.serial || !sameIssuer) throw cmpProblem('bad_request', ['badCertId'], `oldCertID (serial ${serial}) is not the certificate that signs the request (${v.leaf.serial})`);
}

function statusInfo(status: PKIStatus, text?: string): PKIStatusInfo {
  return new PKIStatusInfo({ status, statusString: text ? new PKIFreeText([text]) : undefined });
}

function answerBody(kind: RequestKind, rep: CertRepMessage): PKIBody {
  return new PKIBody({ [ANSWER[kind]]: rep });
}

/** Runs the enrollment core and keeps the transaction in step with it. */
async function enroll(deps: CmpDeps, ex: Exchange, tx: CmpTransactionRecord, kind: RequestKind, csr: ParsedCsr | Uint8Array, certReqId: number, from: 'open' | 'waiting'): Promise<EnrollResult> {
  const implicit = tx.implicitConfirm === true && deps.config.cmp.implicitConfirm;
  const v = ex.verified;
  try {
    return await deps.enrollment.enroll({
      credential: credentialOf(ex),
      csr,
      renewal: kind === 'kur',
      ca: tx.ca,
      profile: tx.profile,
      via: 'cmp',
      remote: ex.remote,
      // Before the commit: the transaction already names the certificate, so
      // whatever happens next it is confirmed or abandoned, never forgotten.
      beforeCommit: implicit
        ? undefined
        : async ({ result, device }) => {
            await deps.store.updateCmpTransaction(tx.id, { state: from, expectedNonce: from === 'waiting' ? tx.expectedNonce : undefined }, {
              state: 'confirming',
              deviceId: device.id,
              expectedNonce: hex(ex.nonce),
              certSerial: result.record.serial,
              previousSerial: device.currentSerial ?? null,
              certReqId,
              // The registry wipes its copy on use; certConf still needs the secret.
              sealedSecret: v?.kind === 'mac' ? v.sealed : null,
              requestDer: null,
              updatedAt: ex.now,
              expiresAt: new Date(ex.now.getTime() + deps.config.cmp.confirmWaitSeconds * 1000),
            });
          },
    });
  } catch (e) {
    if (e instanceof ProblemError) audited.add(e);
    // Closed from where it is: `from`, or confirming if the hook ran and the commit then failed
    // (the certificate named was never stored).
    const outcome = `refused: ${e instanceof ProblemError ? e.code : 'internal'}`;
    await closeTransaction(deps, tx.id, from, outcome, ex.now);
    await closeTransaction(deps, tx.id, 'confirming', outcome, ex.now);
    throw e;
  }
}

/** The ip/cp/kup for an enrollment result; moves the transaction on. */
async function certAnswer(deps: CmpDeps, ex: Exchange, tx: CmpTransactionRecord, kind: RequestKind, r: EnrollResult, certReqId: number, requestDer: Uint8Array, from: 'open' | 'waiting'): Promise<PKIBody> {
  if (r.status === 'pending') {
    // RFC 9483 §4.4: status waiting; the client polls with pollReq.
    await deps.store.updateCmpTransaction(tx.id, { state: from, expectedNonce: from === 'waiting' ? tx.expectedNonce : undefined }, {
      state: 'waiting',
      deviceId: r.device.id,
      requestDer,
      certReqId,
      expectedNonce: hex(ex.nonce),
      updatedAt: ex.now,
      expiresAt: new Date(ex.now.getTime() + deps.config.cmp.pollTimeoutSeconds * 1000),
    });
    if (from === 'waiting') {
      return new PKIBody({ pollRep: new PollRepContent([new PollRep({ certReqId, checkAfter: r.retryAfterSeconds, reason: new PKIFreeText([`enrollment of ${r.device.id} awaits approval`]) })]) });
    }
    const waiting = new CertResponse({ certReqId, status: statusInfo(PKIStatus.waiting, `enrollment of ${r.device.id} awaits approval`) });
    return answerBody(kind, new CertRepMessage({ response: new CertResponses([waiting]) }));
  }

  const implicit = tx.implicitConfirm === true && deps.config.cmp.implicitConfirm;
  if (implicit) {
    await closeTransaction(deps, tx.id, from, 'accepted (implicitConfirm)', ex.now);
    ex.generalInfo.push(itav(id_it.implicitConfirm, der.nullValue()));
  } else {
    const until = new Date(ex.now.getTime() + deps.config.cmp.confirmWaitSeconds * 1000);
    ex.generalInfo.push(itav(id_it.confirmWaitTime, der.tlv(der.TAG.GeneralizedTime, Buffer.from(generalizedTime(until), 'ascii'))));
  }
  const chain = r.result.chain;
  // The issuing chain for the client to build the path; the root in caPubs
  // when only the shared secret vouches for this answer (RFC 9483 §4.1.1).
  ex.extraCerts.push(...chain.slice(0, Math.max(1, chain.length - 1)));
  const caPubs = ex.verified?.kind === 'mac' ? new CMPCertificates([AsnConvert.parse(chain[chain.length - 1], Certificate)]) : undefined;
  const issued = new CertResponse({
    certReqId,
    status: statusInfo(PKIStatus.accepted),
    certifiedKeyPair: new CertifiedKeyPair({ certOrEncCert: new CertOrEncCert({ certificate: AsnConvert.parse(r.result.der, Certificate) }) }),
  });
  return answerBody(kind, new CertRepMessage({ caPubs, response: new CertResponses([issued]) }));
}

function generalizedTime(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`;
}

/** ir, cr, kur, p10cr. */
export async function beginEnrollment(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const kind = ex.req.type as RequestKind;
  credentialOf(ex); // unprotected requests stop here
  const { csr, requestDer, certReqId } = requestOf(ex, kind);
  const tx = await beginTransaction(deps, ex);
  const r = await enroll(deps, ex, tx, kind, csr, certReqId, 'open');
  return certAnswer(deps, ex, tx, kind, r, certReqId, requestDer, 'open');
}

/** pollReq: the enrollment is tried again with the request kept from the first message. */
export async function poll(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const tx = await continuedTransaction(deps, ex, ['waiting']);
  const ids = ex.req.msg.body.pollReq!.map((p) => p.certReqId);
  if (ids.length !== 1 || ids[0] !== tx.certReqId) throw cmpProblem('bad_request', ['badRequest'], `pollReq asks for certReqId ${ids.join(', ')}; this transaction has ${tx.certReqId}`);
  const kind = tx.kind as RequestKind;
  if (!tx.requestDer || !(kind in ANSWER)) throw cmpProblem('internal', ['systemFailure'], `transaction ${tx.id} has no request to poll for`);
  const csr = kind === 'p10cr' ? tx.requestDer : parseCertReqMsg(tx.requestDer);
  // Same device: continuedTransaction checked the secret or certificate is the first message's.
  const r = await enroll(deps, ex, tx, kind, csr, tx.certReqId!, 'waiting');
  return certAnswer(deps, ex, tx, kind, r, tx.certReqId!, tx.requestDer, 'waiting');
}

/**
 * RFC 4210 §5.3.18 / RFC 9483 §4.1.1: certHash is over the certificate DER
 * with hashAlg if given (CMP v3), else the hash of the certificate's
 * signature algorithm (SHA-512 for Ed25519, RFC 9481 §3.3).
 */
function certHash(certDer: Uint8Array, hashAlg?: string): Buffer {
  const byOid: Record<string, string> = { [id_alg.sha256]: 'sha256', [id_alg.sha384]: 'sha384', [id_alg.sha512]: 'sha512', [id_alg.sha224]: 'sha224' };
  let hash = hashAlg ? byOid[hashAlg] : undefined;
  if (hashAlg && !hash) throw cmpProblem('bad_request', ['badAlg'], `certConf hashAlg ${hashAlg} is not supported`);
  if (!hash) {
    const sig = parseCertificate(certDer).signatureAlgorithm;
    hash = { '1.2.840.10045.4.3.3': 'sha384', '1.2.840.10045.4.3.4': 'sha512', '1.2.840.113549.1.1.12': 'sha384', '1.2.840.113549.1.1.13': 'sha512', '1.3.101.112': 'sha512' }[sig] ?? 'sha256';
  }
  return createHash(hash).update(certDer).digest();
}

/** certConf: accepted, or the certificate is abandoned. Answers pkiconf. */
export async function confirm(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const tx = await continuedTransaction(deps, ex, ['confirming']);
  const serial = tx.certSerial!;
  const rec = await deps.store.getCertificate(serial);
  const claim = { state: 'confirming' as const, expectedNonce: tx.expectedNonce };
  const close = (outcome: string) => deps.store.updateCmpTransaction(tx.id, claim, { state: 'closed', outcome, expectedNonce: null, sealedSecret: null, updatedAt: ex.now });
  const abandon = async (why: string) => {
    if (rec) await deps.enrollment.abandon(serial, tx.previousSerial, why, tx.deviceId ? `device:${tx.deviceId}` : 'system:cmp');
    await close(`rejected: ${why}`);
  };
  if (tx.expiresAt < ex.now) {
    await abandon('certConf after confirmWaitTime');
    throw cmpProblem('bad_request', ['badTime'], `certConf came after the confirmation deadline ${tx.expiresAt.toISOString()}; certificate ${serial} is revoked`);
  }
  if (!rec) {
    await close('refused: the certificate was not committed');
    throw cmpProblem('internal', ['systemFailure'], `certificate ${serial} of this transaction is not in the store`);
  }
  const status = ex.req.msg.body.certConf!.find((s) => s.certReqId === tx.certReqId);
  // RFC 4210 §5.3.18: a certificate without a CertStatus is not accepted.
  if (!status) {
    await abandon('certConf without a status for the certificate');
    return new PKIBody({ pkiconf: null });
  }
  if (status.statusInfo && status.statusInfo.status !== PKIStatus.accepted && status.statusInfo.status !== PKIStatus.grantedWithMods) {
    await abandon(`rejected by the client: ${(status.statusInfo.statusString ?? []).join('; ') || 'no reason given'}`);
    return new PKIBody({ pkiconf: null });
  }
  const want = certHash(rec.der, status.hashAlg?.algorithm);
  if (!want.equals(Buffer.from(new Uint8Array(status.certHash.buffer)))) {
    await abandon('certHash does not match the certificate');
    throw cmpProblem('bad_request', ['badCertId'], `certHash is not the hash of certificate ${serial}; it is revoked`);
  }
  await close('accepted');
  return new PKIBody({ pkiconf: null });
}

/** An error message from the client ends its transaction (RFC 9483 §3.6.4); a waiting certificate is abandoned. */
export async function clientError(deps: CmpDeps, ex: Exchange): Promise<PKIBody> {
  const tx = await continuedTransaction(deps, ex, ['open', 'waiting', 'confirming']);
  const info = ex.req.msg.body.error!.pKIStatusInfo;
  const why = `error from the client: ${(info.statusString ?? []).join('; ') || (info.failInfo?.names() ?? []).join(', ') || 'no reason'}`;
  if (tx.state === 'confirming' && tx.certSerial && (await deps.store.getCertificate(tx.certSerial))) {
    await deps.enrollment.abandon(tx.certSerial, tx.previousSerial, why, tx.deviceId ? `device:${tx.deviceId}` : 'system:cmp');
  }
  await closeTransaction(deps, tx.id, tx.state, why, ex.now);
  return new PKIBody({ pkiconf: null });
}

