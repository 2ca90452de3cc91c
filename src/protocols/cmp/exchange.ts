/**
 * One request/answer round of CMP, and the transaction it belongs to
 * (RFC 4210 §5.1.1, RFC 9483 §3.1, §3.5). Transactions live in the store,
 * so any node of a cluster can take the next message: the transactionID is
 * never reused, and every further message must echo as recipNonce the
 * senderNonce of our previous answer.
 */
import type { InfoTypeAndValue } from '../../asn1/cmp_header.js';
import type { FleetContext } from '../../server/context.js';
import type { CmpTransactionRecord, CmpTransactionState } from '../../store/store.js';
import { cmpProblem } from './failure.js';
import type { ReceivedMessage } from './message.js';
import type { ProtectionVerifier, Verified } from './protection.js';

export type CmpDeps = Pick<FleetContext, 'store' | 'authority' | 'enrollment' | 'vault' | 'clock' | 'config'> & { verifier: ProtectionVerifier };

export interface Exchange {
  req: ReceivedMessage;
  /** The CA that issues and signs answers (the label's, or the default). */
  ca: string;
  /** The profile the label requires, if any. */
  profile?: string;
  remote?: string;
  now: Date;
  /** Our senderNonce for the answer, chosen first: it is stored as the next expected recipNonce. */
  nonce: Uint8Array;
  verified?: Verified;
  /** generalInfo of the answer (implicitConfirm, confirmWaitTime). */
  generalInfo: InfoTypeAndValue[];
  /** Certificates to add to the answer's extraCerts (the chain of a new certificate). */
  extraCerts: Uint8Array[];
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** What a first message needs: a transactionID nobody used (transactionIdInUse otherwise). */
export async function assertNewTransaction(deps: CmpDeps, ex: Exchange): Promise<void> {
  if (await deps.store.getCmpTransaction(ex.req.transactionId!)) {
    throw cmpProblem('conflict', ['transactionIdInUse'], `transaction ID ${ex.req.transactionId} is in use; a new request needs a new transactionID`);
  }
}

/** Records a new transaction as open; a concurrent one with the same ID loses. */
export async function beginTransaction(deps: CmpDeps, ex: Exchange, extra: Partial<CmpTransactionRecord> = {}): Promise<CmpTransactionRecord> {
  const v = ex.verified;
  const rec: CmpTransactionRecord = {
    id: ex.req.transactionId!,
    state: 'open',
    kind: ex.req.type,
    deviceId: v?.kind === 'mac' ? v.deviceId : undefined,
    protection: v?.kind ?? 'none',
    signerSha256: v?.kind === 'signature' ? v.signerSha256 : undefined,
    ca: ex.ca,
    profile: ex.profile,
    implicitConfirm: ex.req.implicitConfirm,
    createdAt: ex.now,
    updatedAt: ex.now,
    expiresAt: new Date(ex.now.getTime() + deps.config.cmp.confirmWaitSeconds * 1000),
    ...extra,
  };
  try {
    await deps.store.insertCmpTransaction(rec);
  } catch (e) {
    if ((e as { code?: string }).code === 'already_exists') throw cmpProblem('conflict', ['transactionIdInUse'], `transaction ID ${rec.id} is in use`);
    throw e;
  }
  return rec;
}

/** Closes a transaction from `state`; a transaction that moved on meanwhile is left alone. */
export async function closeTransaction(deps: CmpDeps, id: string, state: CmpTransactionState, outcome: string, at: Date): Promise<void> {
  await deps.store.updateCmpTransaction(id, { state }, { state: 'closed', outcome, updatedAt: at, expectedNonce: null, sealedSecret: null, requestDer: null }).catch(() => undefined);
}

/**
 * The transaction a further message (certConf, pollReq, error) continues:
 * it must exist, be in one of `states`, carry our last nonce as recipNonce
 * and be protected as its first message was.
 */
export async function continuedTransaction(deps: CmpDeps, ex: Exchange, states: CmpTransactionState[]): Promise<CmpTransactionRecord> {
  const tx = await deps.store.getCmpTransaction(ex.req.transactionId!);
  if (!tx) throw cmpProblem('bad_request', ['badRequest'], `no transaction ${ex.req.transactionId}: a ${ex.req.type} continues a transaction this server began`);
  if (!states.includes(tx.state)) throw cmpProblem('bad_request', ['badRequest'], `transaction ${tx.id} is ${tx.state}${tx.outcome ? ` (${tx.outcome})` : ''}; a ${ex.req.type} is not expected`);
  if (!ex.req.recipNonce || !tx.expectedNonce || hex(ex.req.recipNonce) !== tx.expectedNonce) {
    throw cmpProblem('bad_request', ['badRecipientNonce'], 'recipNonce is not the senderNonce of the last answer in this transaction');
  }
  assertSameProtection(tx, ex.verified);
  return tx;
}

/** A further message is protected by the same secret or certificate as the first (RFC 9483 §3.2). */
function assertSameProtection(tx: CmpTransactionRecord, v: Verified | undefined): void {
  const kind = v?.kind ?? 'none';
  if (kind !== tx.protection) throw cmpProblem('unauthorized', ['wrongIntegrity'], `the transaction began with ${tx.protection} protection, this message has ${kind}`);
  if (v?.kind === 'mac' && v.deviceId !== tx.deviceId) throw cmpProblem('unauthorized', ['badMessageCheck'], 'senderKID names another device than the transaction');
  // certConf after a kur may be signed with the new certificate (checked by the caller).
  if (v?.kind === 'signature' && v.signerSha256 !== tx.signerSha256 && !(tx.state === 'confirming' && tx.certSerial === v.leaf.serial)) {
    throw cmpProblem('unauthorized', ['badMessageCheck'], 'the message is signed with another certificate than the transaction began with');
  }
}
