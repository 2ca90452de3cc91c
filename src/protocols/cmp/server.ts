/**
 * The CMP server (RFC 4210 with RFC 9480, profiled by RFC 9483): takes the
 * DER of a request, answers with the DER of a PKIMessage, always. A thin
 * adapter: it checks the header and the protection, hands certificate and
 * revocation requests to the registry's enrollment core, and encodes the
 * answer. Every refusal is an error message whose PKIStatusInfo carries the
 * failure bits (failure.ts); none is a crash.
 *
 * Checks on every request (RFC 9483 §3.1, §3.5):
 *   pvno 2 or 3 (unsupportedVersion); transactionID and senderNonce of at
 *   least 128 bits (badRequest, badSenderNonce); messageTime within
 *   cmp.messageTimeSkewSeconds (badTime); a first message with a used
 *   transactionID is a replay (transactionIdInUse); a further one must echo
 *   our last senderNonce (badRecipientNonce) with the same protection.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { PKIBody } from '../../asn1/cmp_body.js';
import { ErrorMsgContent } from '../../asn1/cmp_error.js';
import { PKIVersion } from '../../asn1/cmp_header.js';
import { PKIFailureInfo, PKIFreeText, PKIStatus, PKIStatusInfo } from '../../asn1/cmp_status.js';
import { ProblemError } from '../../errors.js';
import { audited, beginEnrollment, clientError, confirm, poll } from './enroll.js';
import { assertNewTransaction, type CmpDeps, type Exchange } from './exchange.js';
import { cmpProblem, failureBitsOf } from './failure.js';
import { general } from './general.js';
import { answerHeader, decodeMessage, directoryName, encodeMessage, type Protector, type ReceivedMessage } from './message.js';
import { caProtector, macProtector, ProtectionVerifier } from './protection.js';
import { revoke } from './revoke.js';

export interface CmpAnswer {
  /** HTTP status: 200 for every CMP answer, error messages included; 404 for an unknown label. */
  status: number;
  der: Uint8Array;
}

export interface CmpRequestInfo {
  /** The <label> of /.well-known/cmp/p/<label> (RFC 9811). */
  label?: string;
  remote?: string;
  log?: FastifyBaseLogger;
  /** Refused at the transport (size, content type): answered with this error. */
  refuse?: ProblemError;
}

const FIRST = new Set(['ir', 'cr', 'kur', 'p10cr', 'rr', 'genm']);
const NONCE_MIN = 16;

export class CmpServer {
  private readonly deps: CmpDeps;

  constructor(ctx: Omit<CmpDeps, 'verifier'>) {
    this.deps = { ...ctx, verifier: new ProtectionVerifier(ctx.store, ctx.vault) };
  }

  async handle(input: Uint8Array, info: CmpRequestInfo = {}): Promise<CmpAnswer> {
    const now = this.deps.clock.now();
    const ex: Partial<Exchange> & { now: Date; nonce: Uint8Array } = { now, nonce: randomBytes(16), remote: info.remote, generalInfo: [], extraCerts: [], ca: this.deps.config.defaultCa };
    let status = 200;
    try {
      if (info.label !== undefined) {
        const l = this.deps.config.cmp.labels[info.label];
        if (!l) {
          status = 404;
          throw cmpProblem('not_found', ['badRequest'], `no CMP label "${info.label}"`);
        }
        ex.ca = l.ca ?? ex.ca;
        ex.profile = l.profile;
      }
      if (info.refuse) throw info.refuse;
      ex.req = decodeMessage(input);
      this.checkHeader(ex.req, now);
      const body = await this.dispatch(ex as Exchange);
      return { status, der: await this.encode(ex as Exchange, body) };
    } catch (e) {
      const p = e instanceof ProblemError ? e : undefined;
      if (!p) info.log?.error({ err: e }, 'CMP internal error');
      const problem = p ?? new ProblemError('internal', 'internal error; the server log has the details');
      info.log?.info({ code: problem.code, detail: problem.detail, reason: problem.extra?.reason }, 'CMP request refused');
      if (!audited.has(problem)) await this.auditRefusal(ex, problem);
      return { status, der: await this.errorAnswer(ex, problem) };
    }
  }

  private checkHeader(m: ReceivedMessage, now: Date): void {
    if (m.pvno !== PKIVersion.cmp2000 && m.pvno !== PKIVersion.cmp2021) throw cmpProblem('bad_request', ['unsupportedVersion'], `pvno ${m.pvno}: this server speaks CMP 2 and 3`);
    if (!m.transactionId || m.transactionId.length < NONCE_MIN * 2 || m.transactionId.length > 128) throw cmpProblem('bad_request', ['badRequest'], 'transactionID must be present, 16 to 64 octets (RFC 9483 §3.1)');
    if (!m.senderNonce || m.senderNonce.length < NONCE_MIN) throw cmpProblem('bad_request', ['badSenderNonce'], 'senderNonce must be present, at least 16 octets (RFC 9483 §3.1)');
    if (m.messageTime) {
      const skew = Math.abs(m.messageTime.getTime() - now.getTime()) / 1000;
      if (skew > this.deps.config.cmp.messageTimeSkewSeconds) throw cmpProblem('bad_request', ['badTime'], `messageTime ${m.messageTime.toISOString()} is ${Math.round(skew)} s from the server clock (at most ${this.deps.config.cmp.messageTimeSkewSeconds})`);
    }
  }

  private async dispatch(ex: Exchange): Promise<PKIBody> {
    const type = ex.req.type;
    if (FIRST.has(type)) {
      // Before the protection check: a replay is named as such, even when its
      // one-time secret is used up and the MAC can no longer be checked.
      await assertNewTransaction(this.deps, ex);
      ex.verified = await this.deps.verifier.verify(ex.req, { now: ex.now });
    } else if (type === 'certConf' || type === 'pollReq' || type === 'error') {
      const tx = await this.deps.store.getCmpTransaction(ex.req.transactionId!);
      // A message for a finished transaction is a replay, whatever its protection
      // (a MAC can no longer be checked once the secret's copy is wiped).
      if (!tx || tx.state === 'closed') {
        throw cmpProblem('bad_request', ['badRequest'], tx ? `transaction ${tx.id} is closed (${tx.outcome ?? 'done'}); a ${type} is not expected` : `no transaction ${ex.req.transactionId}: a ${type} continues a transaction this server began`);
      }
      const sealed = tx?.sealedSecret && tx.deviceId ? { deviceId: tx.deviceId, sealed: tx.sealedSecret } : undefined;
      ex.verified = await this.deps.verifier.verify(ex.req, { now: ex.now, sealed });
    } else {
      throw cmpProblem('bad_request', ['badRequest'], `a ${type} is not a request this server takes (ir, cr, kur, p10cr, certConf, pollReq, rr, genm, error)`);
    }
    switch (type) {
      case 'ir':
      case 'cr':
      case 'kur':
      case 'p10cr':
        return beginEnrollment(this.deps, ex);
      case 'certConf':
        return confirm(this.deps, ex);
      case 'pollReq':
        return poll(this.deps, ex);
      case 'rr':
        return revoke(this.deps, ex);
      case 'genm':
        return general(this.deps, ex);
      default:
        return clientError(this.deps, ex);
    }
  }

  /** The protector of an answer: the request's secret when its MAC verified, else the CA's signature. */
  private async protector(ex: Partial<Exchange>): Promise<Protector | undefined> {
    if (ex.verified?.kind === 'mac') return macProtector(ex.verified);
    return caProtector(this.deps.authority, ex.ca ?? this.deps.config.defaultCa);
  }

  private async encode(ex: Exchange, body: PKIBody): Promise<Uint8Array> {
    const protector = await this.protector(ex);
    const sender = directoryName((await this.deps.authority.ca(ex.ca)).info.subjectDer);
    const header = answerHeader({ req: ex.req, sender, now: ex.now, senderNonce: ex.nonce, generalInfo: ex.generalInfo }, protector);
    if (protector && ex.extraCerts.length) {
      const have = new Set(protector.extraCerts.map((c) => Buffer.from(c).toString('base64')));
      protector.extraCerts = [...protector.extraCerts, ...ex.extraCerts.filter((c) => !have.has(Buffer.from(c).toString('base64')))];
    }
    return encodeMessage(header, body, protector);
  }

  /**
   * RFC 9483 §3.6.4: an error message with PKIStatusInfo rejection, the
   * failure bits and the reason. Protected like any answer; if even the CA
   * cannot sign (its key offline), sent unprotected rather than not at all.
   */
  private async errorAnswer(ex: Partial<Exchange> & { now: Date; nonce: Uint8Array }, p: ProblemError): Promise<Uint8Array> {
    const info = new PKIStatusInfo({ status: PKIStatus.rejection, statusString: new PKIFreeText([p.detail]), failInfo: PKIFailureInfo.of(failureBitsOf(p)) });
    const body = new PKIBody({ error: new ErrorMsgContent({ pKIStatusInfo: info }) });
    let protector: Protector | undefined;
    let sender = directoryName();
    try {
      protector = await this.protector(ex);
      sender = directoryName((await this.deps.authority.ca(ex.ca ?? this.deps.config.defaultCa)).info.subjectDer);
    } catch {
      protector = undefined;
    }
    const header = answerHeader({ req: ex.req, sender, now: ex.now, senderNonce: ex.nonce }, protector);
    return encodeMessage(header, body, protector);
  }

  private async auditRefusal(ex: Partial<Exchange>, p: ProblemError): Promise<void> {
    const v = ex.verified;
    const deviceId = v?.kind === 'mac' ? v.deviceId : undefined;
    await this.deps.store
      .appendAudit({
        actor: deviceId ? `device:${deviceId}` : 'anonymous:cmp',
        action: ex.req && ['ir', 'cr', 'kur', 'p10cr', 'certConf', 'pollReq'].includes(ex.req.type) ? 'enrollment.refuse' : 'cmp.refuse',
        target: deviceId,
        details: { code: p.code, detail: p.detail, reason: p.extra?.reason, failInfo: failureBitsOf(p), via: 'cmp', body: ex.req?.type, transactionId: ex.req?.transactionId, remote: ex.remote },
      })
      .catch(() => undefined);
  }

  /**
   * Closes transactions past their deadline: a certificate still waiting
   * for certConf is abandoned (revoked, the previous one current again,
   * RFC 9483 §4.1.1); waiting enrollments are dropped. Then forgets closed
   * transactions older than cmp.transactionRetentionDays. Any node may run
   * it: abandoning is idempotent, closing is a compare-and-set.
   */
  async sweep(): Promise<{ abandoned: number; expired: number; pruned: number }> {
    const { store, clock, enrollment, config } = this.deps;
    const now = clock.now();
    let abandoned = 0;
    let expired = 0;
    for (const tx of await store.listDueCmpTransactions(now, 500)) {
      if (tx.state === 'confirming' && tx.certSerial && (await store.getCertificate(tx.certSerial))) {
        await enrollment.abandon(tx.certSerial, tx.previousSerial, `no certConf before ${tx.expiresAt.toISOString()}`, 'system:cmp');
        abandoned++;
      }
      const done = await store
        .updateCmpTransaction(tx.id, { state: tx.state, expectedNonce: tx.expectedNonce }, { state: 'closed', outcome: 'expired', expectedNonce: null, sealedSecret: null, requestDer: null, updatedAt: now })
        .then(() => true)
        .catch(() => false);
      if (done) expired++;
    }
    const pruned = await store.pruneCmpTransactions(new Date(now.getTime() - config.cmp.transactionRetentionDays * 86_400_000));
    return { abandoned, expired, pruned };
  }
}
