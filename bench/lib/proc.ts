/** Child processes and ports for benchmarks: servers in processes of their own, a load generator beside them. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Background {
  proc: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts a server in the background. Its output goes to `logFile`, not a
 * pipe: the benchmark blocks in spawnSync while a load generator runs, and
 * a chatty server (openssl ocsp logs every request) would fill a pipe and stall.
 */
export function background(cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): Background {
  const fd = openSync(logFile, 'a');
  const proc = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return {
    proc,
    output: () => {
      try {
        return readFileSync(logFile, 'utf8').slice(-(1 << 15));
      } catch {
        return '';
      }
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, sleep(5000).then(() => proc.kill('SIGKILL'))]);
    },
  };
}

/** Waits until `probe` resolves true, or fails with the process output after `ms`. */
export async function waitFor(what: string, probe: () => Promise<boolean>, bg?: Background, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (bg && (bg.proc.exitCode !== null || bg.proc.signalCode !== null)) throw new Error(`${what} exited:\n${bg.output()}`);
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms:\n${bg?.output() ?? ''}`);
    await sleep(100);
  }
}

export function need(cmd: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0) return;
  throw new Error(`the benchmark needs ${cmd}: apt-get install -y ${pkg} (npm run bench installs it when run as root)`);
}
