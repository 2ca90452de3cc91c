/**
 * Worker threads for the issuance fast path, so one node signs on every core:
 * the main thread keeps the policy that needs the store (the CA record, the
 * commit), the workers read and check CSRs and sign (issuance_worker.ts).
 * They also sign OCSP answers with in-memory keys (sign()).
 *
 * Jobs are sent at the end of the event-loop turn that handed them in:
 * those of one turn travel to a worker as one message, which keeps the
 * per-job messaging cost small. A turn's only job, with no other job on a
 * worker, runs on this thread instead: nothing overlaps it, and the trip to
 * a thread and back would only add latency. Node runs every ready socket's
 * handler in a turn before the check phase (setImmediate), so under load a
 * turn brings many jobs, even when each handler runs to its job without any
 * I/O (a nonce OCSP answer); a request alone is answered here. The threads
 * start when the first job goes to one.
 */
import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { HashName } from '../x509/algorithms.js';
import { ProblemError } from '../errors.js';
import { issueFast, type FastRequest, type FastResult, type IssuancePlan } from './fast_issuance.js';
import type { WorkerJob, WorkerReply } from './issuance_worker.js';

interface Slot {
  /** Started with the first job sent to it. */
  worker?: Worker;
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

/** A job handed in this turn: how to make it for a worker, and how to run it here. */
interface Queued {
  make: (slot: Slot, id: number) => WorkerJob;
  here: () => WorkerReply;
  resolve: (r: Ran) => void;
  reject: (e: unknown) => void;
}

/** A job's reply and where it ran. */
interface Ran {
  reply: WorkerReply;
  onWorker: boolean;
}

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
  /** Jobs handed in this turn, sent (or run here) at its end. */
  private queued: Queued[] = [];
  private nextId = 1;
  private closed = false;
  /** Set by close() while it waits for the jobs in flight. */
  private onDrained?: () => void;
  /** Jobs run since start, by where (metrics, tests). */
  readonly ran = { here: 0, onWorkers: 0 };

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new ProblemError('config_error', `the issuance worker pool needs at least one thread (got ${size})`);
    for (let i = 0; i < size; i++) this.slots.push({ inFlight: 0, plans: new Set(), keys: new Set(), outbox: [] });
  }

  /** Runs issueFast(plan, req) on the least busy worker (or here: see above). */
  async run(plan: IssuancePlan, req: FastRequest): Promise<FastResult> {
    const ran = await this.submit(
      (slot, id) => {
        const job: WorkerJob = { id, planId: plan.id, req };
        if (!slot.plans.has(plan.id)) {
          job.plan = plan;
          slot.plans.add(plan.id);
        }
        return job;
      },
      () => ({ id: 0, result: issueFast(plan, req) }),
    );
    return ran.reply.result!;
  }

  /**
   * Signs `data` with an in-memory key on the least busy worker (or here:
   * see above); ECDSA signatures DER-encoded, as key_store's signers make them.
   */
  async sign(key: KeyObject, hash: HashName | null, data: Uint8Array): Promise<{ signature: Uint8Array; onWorker: boolean }> {
    let keyId = keyIds.get(key);
    if (keyId === undefined) keyIds.set(key, (keyId = nextKeyId++));
    const { reply, onWorker } = await this.submit(
      (slot, id) => {
        if (slot.keys.has(keyId)) return { id, keyId, hash, data };
        slot.keys.add(keyId);
        return { id, keyId, key, hash, data };
      },
      () => ({ id: 0, signature: cryptoSign(hash, data, { key, dsaEncoding: 'der' }) }),
    );
    const sig = reply.signature!;
    return { signature: new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength), onWorker };
  }

  private submit(make: Queued['make'], here: Queued['here']): Promise<Ran> {
    if (this.closed) return Promise.reject(new ProblemError('unavailable', 'the issuance worker pool is closed'));
    return new Promise((resolve, reject) => {
      if (this.queued.push({ make, here, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  /** The end of a turn: its only job runs here if no other is on a worker; else each goes to the least busy worker. */
  private flush(): void {
    const jobs = this.queued;
    this.queued = [];
    if (jobs.length === 1 && this.pending.size === 0) {
      const [job] = jobs;
      this.ran.here++;
      try {
        job.resolve({ reply: job.here(), onWorker: false });
      } catch (e) {
        job.reject(e);
      }
      return;
    }
    if (this.closed) {
      for (const job of jobs) job.reject(new ProblemError('unavailable', 'the issuance worker pool is closed'));
      return;
    }
    for (const job of jobs) {
      let slot: Slot | undefined;
      let worker: Worker | undefined;
      // A slot whose thread cannot start leaves the pool; try the next.
      while ((slot = this.leastBusy()) && !(worker = this.workerOf(slot)));
      if (!slot || !worker) {
        // No thread could be started: the caller signs on its own thread.
        job.reject(new ProblemError('unavailable', 'no issuance worker thread could be started'));
        continue;
      }
      const id = this.nextId++;
      if (slot.inFlight++ === 0) worker.ref();
      this.pending.set(id, { resolve: (reply) => job.resolve({ reply, onWorker: true }), reject: job.reject, slot });
      slot.outbox.push(job.make(slot, id));
    }
    for (const s of this.slots) {
      if (!s.outbox.length) continue;
      const out = s.outbox;
      s.outbox = [];
      try {
        s.worker!.postMessage(out);
        this.ran.onWorkers += out.length;
      } catch (e) {
        // A job that cannot be sent (not cloneable) fails alone; the thread is fine.
        for (const job of out) this.settleFailed(s, job.id, e);
      }
    }
  }

  private leastBusy(): Slot | undefined {
    let slot = this.slots[0];
    for (const s of this.slots) if (s.inFlight < slot.inFlight) slot = s;
    return slot;
  }

  private settleFailed(slot: Slot, id: number, e: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (--slot.inFlight === 0) slot.worker?.unref();
    p.reject(new ProblemError('internal', `issuance worker job not sent: ${(e as Error)?.message ?? String(e)}`));
    if (!this.pending.size) this.onDrained?.();
  }

  /** The slot's thread, started now if need be; undefined (and the slot gone) if it cannot start. */
  private workerOf(slot: Slot): Worker | undefined {
    if (slot.worker) return slot.worker;
    let worker: Worker;
    try {
      worker = slot.worker = startWorker();
    } catch (e) {
      this.failSlot(slot, e as Error);
      return undefined;
    }
    worker.on('message', (replies: WorkerReply[]) => this.onReplies(slot, replies));
    worker.on('error', (e) => this.failSlot(slot, e));
    worker.on('exit', (code) => this.failSlot(slot, new Error(`issuance worker exited with code ${code}`)));
    // Idle workers do not keep the process alive; a job in flight does (ref in flush).
    worker.unref();
    return worker;
  }

  private onReplies(slot: Slot, replies: WorkerReply[]): void {
    for (const r of replies) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (--slot.inFlight === 0) slot.worker?.unref();
      if (r.fault === undefined) p.resolve(r);
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
    const started = this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    for (const w of started) w.ref();
    await Promise.all(started.map((w) => w.terminate()));
  }
}
