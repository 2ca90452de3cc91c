/** A real fleetpki data directory in a temp folder, made by initDataDir. */
import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Clock } from '../../src/clock.js';
import { initDataDir, type FleetContext } from '../../src/server/context.js';
import type { KeyAlgorithm } from '../../src/x509/algorithms.js';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(REPO, 'bin', 'fleetpki.js');

export interface TestDataDir {
  dir: string;
  ctx: FleetContext;
  adminToken: string;
  cleanup(): Promise<void>;
}

export function tempDir(prefix = 'fleetpki-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function makeDataDir(opts: { keyAlgorithm?: KeyAlgorithm; clock?: Clock; org?: string } = {}): Promise<TestDataDir> {
  const parent = tempDir();
  const dir = join(parent, 'data');
  const { ctx, adminToken } = await initDataDir({
    dir,
    org: opts.org ?? 'Test Fleet',
    keyAlgorithm: opts.keyAlgorithm ?? 'ecdsa-p256',
    rootValidityDays: 3650,
    issuingValidityDays: 1825,
    listen: '127.0.0.1:0',
    httpListen: '127.0.0.1:0',
    clock: opts.clock,
  });
  return {
    dir,
    ctx,
    adminToken,
    async cleanup() {
      await ctx.close().catch(() => undefined);
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** Runs the real `fleetpki` command; an env value of undefined removes that variable. */
export function fleetpki(args: string[], env: Record<string, string | undefined> = {}, input?: string, cwd?: string): SpawnSyncReturns<string> {
  const merged: Record<string, string | undefined> = { ...process.env, ...env };
  for (const k of Object.keys(merged)) if (merged[k] === undefined) delete merged[k];
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: merged, input, cwd, timeout: 60_000 });
}

/** Generates a key and CSR with the real openssl CLI. */
export function opensslCsr(dir: string, name: string, opts: { subj?: string; san?: string; newkey?: string[] } = {}): { csrPath: string; keyPath: string; csrPem: string } {
  const keyPath = join(dir, `${name}.key`);
  const csrPath = join(dir, `${name}.csr`);
  const args = ['req', '-new', ...(opts.newkey ?? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']), '-nodes', '-keyout', keyPath, '-subj', opts.subj ?? `/CN=${name}`, '-out', csrPath];
  if (opts.san) args.push('-addext', `subjectAltName=${opts.san}`);
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  return { csrPath, keyPath, csrPem: spawnSync('cat', [csrPath], { encoding: 'utf8' }).stdout };
}

export function runOpenssl(args: string[], input?: string): SpawnSyncReturns<string> {
  return spawnSync('openssl', args, { encoding: 'utf8', input });
}

/**
 * Runs a command without blocking the event loop: needed when the server under
 * test runs in this same process.
 */
export function run(cmd: string, args: string[], input = '', timeoutMs = 30_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    p.on('close', (status) => resolve({ status, stdout, stderr }));
    // A child that exits without reading stdin must not crash the test (EPIPE).
    p.stdin.on('error', () => undefined);
    p.stdin.end(input);
  });
}
