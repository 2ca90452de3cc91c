/**
 * Worker threads for the issuance fast path, so one node signs on every core:
 * the main thread keeps the policy that needs the store (the CA record, the
 * commit), the workers read and check CSRs and sign (issuance_worker.ts).
 * They also sign OCSP answers with in-memory keys (sign()).
 * Jobs handed in within one turn of the event loop travel to a worker as one
 * message, which keeps the per-certificate messaging cost small.
 */
import type { KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { HashName } from '../x509/algorithms.js';
import { ProblemError } from '../errors.js';
import type { FastRequest, FastResult, IssuancePlan } from './fast_issuance.js';
import type { WorkerJob, WorkerReply } from './issuance_worker.js';

interface Slot {
  worker: Worker;
  inFlight: number;
  /** Plan ids this worker has been sent. */
  plans: Set<string>;
  /** Key ids this worker has been sent. */
  keys: Set<number>;
  outbox: WorkerJob[];
}

/** How long close() waits for the jobs in flight. */
const DRAIN_MS = 5000;

type Pending = { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void; slot: Slot };

/** Ids of the keys handed to workers: a key travels to each worker once. */
const keyIds = new WeakMap<KeyObject, number>();
let nextKeyId = 1;

/**
 * Where the worker's code is: beside this module when it runs from the
 * TypeScript sources (through tsx, which the worker then loads too), or the
 * bundle's second entry beside dist/cli.mjs (scripts/build.mjs).
 */
function startWorker(): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./issuance_worker.mjs', here));
  const entry = JSON.stringify(new URL('./issuance_worker.ts', here).href);
  // The TypeScript loader must be registered in the thread before the worker's module loads.
  return new Worker(`import('tsx/esm/api').then((m) => { m.register(); return import(${entry}); })`, { eval: true });
}

export class IssuancePool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private flushScheduled = false;
  private closed = false;
  /** Set by close() while it waits for the jobs in flight. */
  private onDrained?: () => void;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new ProblemError('config_error', `the issuance worker pool needs at least one thread (got ${size})`);
    for (let i = 0; i < size; i++) {
      const worker = startWorker();
      const slot: Slot = { worker, inFlight: 0, plans: new Set(), keys: new Set(), outbox: [] };
      worker.on('message', (replies: WorkerReply[]) => this.onReplies(slot, replies));
      worker.on('error', (e) => this.failSlot(slot, e));
      worker.on('exit', (code) => this.failSlot(slot, new Error(`issuance worker exited with code ${code}`)));
      // Idle workers do not keep the process alive; a job in flight does (ref below).
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** Runs issueFast(plan, req) on the least busy worker. */
  async run(plan: IssuancePlan, req: FastRequest): Promise<FastResult> {
    return (await this.submit((slot, id) => {
      const job: WorkerJob = { id, planId: plan.id, req };
      if (!slot.plans.has(plan.id)) {
        job.plan = plan;
        slot.plans.add(plan.id);
      }
      return job;
    })).result!;
  }

  /** Signs `data` with an in-memory key on the least busy worker; ECDSA signatures DER-encoded. */
  async sign(key: KeyObject, hash: HashName | null, data: Uint8Array): Promise<Uint8Array> {
    let keyId = keyIds.get(key);
    if (keyId === undefined) keyIds.set(key, (keyId = nextKeyId++));
    const reply = await this.submit((slot, id) => {
      if (slot.keys.has(keyId)) return { id, keyId, hash, data };
      slot.keys.add(keyId);
      return { id, keyId, key, hash, data };
    });
    return new Uint8Array(reply.signature!.buffer, reply.signature!.byteOffset, reply.signature!.byteLength);
  }

  /** Jobs handed in within one turn travel to their worker as one message. */
  private submit(makeJob: (slot: Slot, id: number) => WorkerJob): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new ProblemError('unavailable', 'the issuance worker pool is closed'));
    let slot = this.slots[0];
    for (const s of this.slots) if (s.inFlight < slot.inFlight) slot = s;
    const id = this.nextId++;
    if (slot.inFlight++ === 0) slot.worker.ref();
    slot.outbox.push(makeJob(slot, id));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, slot }));
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const s of this.slots) {
      if (!s.outbox.length) continue;
      const jobs = s.outbox;
      s.outbox = [];
      s.worker.postMessage(jobs);
    }
  }

  private onReplies(slot: Slot, replies: WorkerReply[]): void {
    for (const r of replies) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (--slot.inFlight === 0) slot.worker.unref();
      if (r.result || r.signature) p.resolve(r);
      else p.reject(new ProblemError('internal', `issuance worker failed: ${r.fault}`));
    }
    if (!this.pending.size) this.onDrained?.();
  }

  private failSlot(slot: Slot, e: Error): void {
    for (const [id, p] of this.pending) {
      if (p.slot !== slot) continue;
      this.pending.delete(id);
      p.reject(new ProblemError('internal', `issuance worker failed: ${e.message}`));
    }
    slot.inFlight = 0;
    if (!this.pending.size) this.onDrained?.();
    // A dead worker leaves the pool; the others carry on. With none left the
    // pool is closed, and the authority checks and signs on its own thread.
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    if (!this.slots.length) this.closed = true;
  }

  /**
   * Stops the threads once the jobs in flight are answered (at most
   * DRAIN_MS): an issuance half done would fail for nothing, and a thread
   * terminated in the middle of a job can fail to exit where its module
   * loader waits on another thread (tsx, in tests).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.pending.size) {
      const drained = new Promise<void>((resolve) => (this.onDrained = resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((resolve) => (timer = setTimeout(resolve, DRAIN_MS)))]);
      clearTimeout(timer);
    }
    // An idle worker is unref'd: without a ref the event loop may end before
    // its exit is reported, and terminate()'s promise would never settle.
    for (const s of this.slots) s.worker.ref();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
