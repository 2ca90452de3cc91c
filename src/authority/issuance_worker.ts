/**
 * A worker thread of the issuance pool (issuance_pool.ts): reads and checks
 * CSRs and signs certificates with issueFast, so the main thread only
 * dispatches and commits; and signs bytes with a key it was handed (OCSP
 * answers). Plans and keys arrive once, with the first job that needs
 * them, and stay cached.
 */
import { sign, type KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { HashName } from '../x509/algorithms.js';
import { issueFast, type FastRequest, type FastResult, type IssuancePlan } from './fast_issuance.js';

export type WorkerJob =
  | { id: number; plan?: IssuancePlan; planId: string; req: FastRequest }
  | { id: number; key?: KeyObject; keyId: number; hash: HashName | null; data: Uint8Array };

export interface WorkerReply {
  id: number;
  result?: FastResult;
  signature?: Uint8Array;
  /** Not a refusal: a fault of the worker (reported as internal). */
  fault?: string;
}

const plans = new Map<string, IssuancePlan>();
const keys = new Map<number, KeyObject>();

function run(job: WorkerJob): WorkerReply {
  if ('keyId' in job) {
    if (job.key) keys.set(job.keyId, job.key);
    const key = keys.get(job.keyId);
    // ECDSA signatures DER-encoded (Ecdsa-Sig-Value), as key_store's signers make them.
    return key ? { id: job.id, signature: sign(job.hash, job.data, { key, dsaEncoding: 'der' }) } : { id: job.id, fault: `unknown key ${job.keyId}` };
  }
  if (job.plan) plans.set(job.planId, job.plan);
  const plan = plans.get(job.planId);
  return plan ? { id: job.id, result: issueFast(plan, job.req) } : { id: job.id, fault: `unknown plan ${job.planId}` };
}

const port = parentPort;
if (port) {
  port.on('message', (jobs: WorkerJob[]) => {
    const replies: WorkerReply[] = [];
    for (const job of jobs) {
      try {
        replies.push(run(job));
      } catch (e) {
        replies.push({ id: job.id, fault: (e as Error)?.stack ?? String(e) });
      }
    }
    port.postMessage(replies);
  });
}
