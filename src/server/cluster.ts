/**
 * `fleetpki serve --processes N`: N server processes on one data directory
 * and the same listeners (node:cluster: the primary accepts connections and
 * hands each to a process in turn). Each process is a whole node: nothing
 * is shared in memory, and what they must agree on goes through the store
 * as between nodes on PostgreSQL (serials, CRL numbers, the CRL and expiry
 * leases, the status feed OCSP answers follow).
 *
 * The primary only supervises: it waits until every process listens, says
 * where once, replaces a process that dies after that (RestartPolicy), and
 * stops them all on SIGINT/SIGTERM. A process that fails before the server
 * is up stops the whole server: its error is a configuration error, and
 * restarting would repeat it. If the primary itself is killed, node:cluster
 * ends the processes at once (their leases lapse after server.leaseSeconds).
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
 * faster than a thread each (the threads compete for the cores the other
 * process's main thread needs).
 */
export function defaultWorkerThreads(processes: number, cores = availableParallelism()): number {
  return processes <= 1 ? cores : Math.max(0, Math.floor(cores / processes) - 1);
}

/** How long the primary waits for its processes to stop before it kills them. */
const STOP_MS = 10_000;

/** Set in the environment of the processes the primary starts (other cluster managers' workers are not ours). */
export const WORKER_ENV = 'FLEETPKI_SERVE_PROCESS';

/** Whether this process is one that `serve --processes` started. */
export function isServeProcess(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1';
}

/**
 * When to start another process in place of one that died after the server
 * was up: after a delay that doubles with each death close to the last
 * (1 s up to 30 s), and not at all once `limit` died within `windowMs`, a
 * crash loop that restarting only hides: the server then stops with an
 * error, for its service manager to see.
 */
export class RestartPolicy {
  private deaths: number[] = [];

  constructor(
    private readonly limit = 5,
    private readonly windowMs = 60_000,
  ) {}

  /** Delay before the replacement, or undefined: stop the server. */
  onDeath(now: number): number | undefined {
    this.deaths = this.deaths.filter((t) => now - t < this.windowMs);
    this.deaths.push(now);
    if (this.deaths.length >= this.limit) return undefined;
    return Math.min(30_000, 1000 * 2 ** (this.deaths.length - 1));
  }
}

export interface SuperviseOptions {
  processes: number;
  /** Called once, when every process listens. */
  onReady(ready: ReadyMessage): void;
  note(line: string): void;
  restarts?: RestartPolicy;
}

/**
 * Runs in the primary: forks the processes (each runs the same command) and
 * supervises them. Resolves with the exit code when the server stops: 0
 * when asked to and every process stopped in time; that of a process that
 * failed to start; 1 after a crash loop or when processes had to be killed.
 */
export function supervise(o: SuperviseOptions): Promise<number> {
  const restarts = o.restarts ?? new RestartPolicy();
  return new Promise((resolve) => {
    /** Processes that said they listen, until all of them have. */
    let listening = 0;
    let ready = false;
    let stopping = false;

    const stopAll = (code: number) => {
      if (stopping) return;
      stopping = true;
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
      if (!alive.length) return resolve(code);
      let left = alive.length;
      let killed = false;
      const kill = setTimeout(() => {
        for (const w of alive) {
          if (w.isDead()) continue;
          killed = true;
          o.note(`server process ${w.process.pid} did not stop in ${STOP_MS / 1000} s: killed`);
          w.process.kill('SIGKILL');
        }
      }, STOP_MS);
      for (const w of alive) {
        w.once('exit', () => {
          if (--left > 0) return;
          clearTimeout(kill);
          resolve(killed && code === 0 ? 1 : code);
        });
        w.process.kill('SIGTERM');
      }
    };

    const fork = () => {
      const w = cluster.fork({ [WORKER_ENV]: '1' });
      w.on('message', (m: unknown) => {
        if (!isReadyMessage(m)) return;
        if (!ready && ++listening === o.processes) {
          ready = true;
          o.onReady(m);
        }
      });
      w.once('exit', (code, signal) => {
        if (stopping) return;
        const how = signal ? `signal ${signal}` : `code ${code}`;
        // Before the server is up, a process that cannot start is a
        // configuration error: restarting would repeat it.
        if (!ready) {
          o.note(`a server process (pid ${w.process.pid}) stopped before it listened (${how}): stopping`);
          return stopAll(code || 1);
        }
        const wait = restarts.onDeath(Date.now());
        if (wait === undefined) {
          o.note(`server process ${w.process.pid} exited (${how}); too many exits in a short time: stopping`);
          return stopAll(1);
        }
        o.note(`server process ${w.process.pid} exited (${how}); starting another in ${wait / 1000} s`);
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
