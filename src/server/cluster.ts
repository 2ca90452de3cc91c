/**
 * `fleetpki serve --processes N`: N server processes on one data directory
 * and the same listeners (node:cluster: the primary accepts connections and
 * hands each to a process in turn). Each process is a whole node: nothing
 * is shared in memory, and what they must agree on goes through the store
 * as between nodes on PostgreSQL (serials, CRL numbers, the CRL and expiry
 * leases, the status feed OCSP answers follow).
 *
 * The primary only supervises: it waits until every process listens, says
 * where once, replaces a process that dies after it started, and stops them
 * all on SIGINT/SIGTERM. A process that fails to start stops the whole
 * server: its error is a configuration error, and restarting would repeat it.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { ProblemError } from '../errors.js';

/** What a server process tells the primary once it listens. */
export interface ReadyMessage {
  fleetpki: 'ready';
  httpsUrl: string;
  httpUrl: string;
}

export function isReadyMessage(m: unknown): m is ReadyMessage {
  return typeof m === 'object' && m !== null && (m as ReadyMessage).fleetpki === 'ready';
}

/** `--processes`: a whole number ≥ 1, or `auto` for one per core. */
export function parseProcesses(v: string): number {
  if (v === 'auto') return availableParallelism();
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new ProblemError('bad_request', `--processes takes a whole number from 1 to 256 or "auto" (got "${v}")`);
  return n;
}

/**
 * Issuance worker threads per process when the config leaves
 * `issuance.workers` out: one process alone gets one per core; N processes
 * share the cores, each its main thread and the threads left over. On 2
 * cores 2 processes get none: each signs on its main thread, which measured
 * faster than handing work to threads on cores the other process needs.
 */
export function defaultWorkerThreads(processes: number, cores = availableParallelism()): number {
  return processes <= 1 ? cores : Math.max(0, Math.floor(cores / processes) - 1);
}

/** How long the primary waits for its processes to stop before it kills them. */
const STOP_MS = 10_000;
/** A process that dies this soon after the one before it is not replaced again at once. */
const RESTART_DELAY_MS = 1000;

export interface SuperviseOptions {
  processes: number;
  /** Called once, when every process listens. */
  onReady(ready: ReadyMessage): void;
  note(line: string): void;
}

/**
 * Runs in the primary: forks the processes (each runs the same command) and
 * supervises them. Resolves with the exit code when the server stops: 0
 * when asked to, else that of the process that failed to start.
 */
export function supervise(o: SuperviseOptions): Promise<number> {
  return new Promise((resolve) => {
    const started = new Set<Worker>();
    let ready = false;
    let stopping = false;
    let lastRestart = 0;

    const stopAll = (code: number) => {
      if (stopping) return;
      stopping = true;
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
      if (!alive.length) return resolve(code);
      let left = alive.length;
      const kill = setTimeout(() => alive.forEach((w) => w.isDead() || w.process.kill('SIGKILL')), STOP_MS);
      for (const w of alive) {
        w.once('exit', () => {
          if (--left === 0) {
            clearTimeout(kill);
            resolve(code);
          }
        });
        w.process.kill('SIGTERM');
      }
    };

    const fork = () => {
      const w = cluster.fork();
      w.on('message', (m: unknown) => {
        if (!isReadyMessage(m)) return;
        started.add(w);
        if (!ready && started.size === o.processes) {
          ready = true;
          o.onReady(m);
        }
      });
      w.once('exit', (code, signal) => {
        if (stopping) return;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        if (!started.has(w)) {
          o.note(`a server process (pid ${w.process.pid}) stopped before it listened (${how}): stopping`);
          return stopAll(code || 1);
        }
        started.delete(w);
        const wait = Math.max(0, lastRestart + RESTART_DELAY_MS - Date.now());
        lastRestart = Date.now() + wait;
        o.note(`server process ${w.process.pid} exited (${how}); starting another`);
        setTimeout(() => stopping || fork(), wait);
      });
    };

    for (let i = 0; i < o.processes; i++) fork();
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        o.note(`${sig}: stopping ${o.processes} processes`);
        stopAll(0);
      });
    }
  });
}
