/**
 * A worker thread of the issuance pool (issuance_pool.ts): reads and checks
 * CSRs and signs certificates with issueFast, so the main thread only
 * dispatches and commits. Plans arrive once, with the first job that needs
 * them, and stay cached.
 */
import { parentPort } from 'node:worker_threads';
import { issueFast, type FastRequest, type FastResult, type IssuancePlan } from './fast_issuance.js';

export interface WorkerJob {
  id: number;
  plan?: IssuancePlan;
  planId: string;
  req: FastRequest;
}

export interface WorkerReply {
  id: number;
  result?: FastResult;
  /** Not a refusal: a fault of the worker (reported as internal). */
  fault?: string;
}

const plans = new Map<string, IssuancePlan>();
const port = parentPort;
if (port) {
  port.on('message', (jobs: WorkerJob[]) => {
    const replies: WorkerReply[] = [];
    for (const job of jobs) {
      if (job.plan) plans.set(job.planId, job.plan);
      const plan = plans.get(job.planId);
      try {
        replies.push(plan ? { id: job.id, result: issueFast(plan, job.req) } : { id: job.id, fault: `unknown plan ${job.planId}` });
      } catch (e) {
        replies.push({ id: job.id, fault: (e as Error)?.stack ?? String(e) });
      }
    }
    port.postMessage(replies);
  });
}
