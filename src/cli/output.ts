/**
 * How CLI commands print: data on stdout (JSON with --json), messages on
 * stderr, and a failure as one line "fleetpki: <code>: <detail>" with a
 * non-zero exit. Stack traces only with FLEETPKI_DEBUG=1.
 */
import { readFileSync } from 'node:fs';
import { ProblemError } from '../errors.js';

/**
 * Exit status when the reader of stdout went away (`fleetpki cert list | head`):
 * 128 + SIGPIPE, what a shell reports for any program killed by a closed pipe.
 * Node ignores SIGPIPE, so the write fails with EPIPE instead.
 */
export const CLOSED_STDOUT_STATUS = 141;

let stdoutClosed = false;

/**
 * Makes a closed stdout end the command quietly: no 'Unhandled error' stack
 * trace, later output dropped, exit status 141. The work the command started
 * still finishes (a store write commits, the store is closed). A closed
 * stderr is ignored: there is nowhere left to report anything.
 */
export function handleClosedOutput(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    stdoutClosed = true;
    if (e.code === 'EPIPE') {
      process.exitCode = CLOSED_STDOUT_STATUS;
      return;
    }
    process.exitCode = 1;
    note(`fleetpki: cannot write to stdout: ${e.code ?? e.message}`);
  });
  process.stderr.on('error', () => undefined);
}

/** Everything for stdout goes through here. */
export function printRaw(s: string | Uint8Array): void {
  if (!stdoutClosed) process.stdout.write(s);
}

export function printJson(v: unknown): void {
  printRaw(`${JSON.stringify(v, null, 2)}\n`);
}

export function printLine(s = ''): void {
  printRaw(`${s}\n`);
}

export function note(s: string): void {
  if (!process.stderr.destroyed) process.stderr.write(`${s}\n`);
}

/** "name  value" lines, the names padded to one width: a record shown alone. */
export function printFacts(rows: ReadonlyArray<readonly string[]>): void {
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) printLine(`${k.padEnd(w)}  ${v}`);
}

/** Left-aligned columns for list output. */
export function printTable(rows: string[][], header: string[]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  for (const r of all) printLine(r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]))).join('  '));
}

/** Exit status per problem: 2 for input the user can fix, 3 for a refused firmware update, 1 otherwise. */
const USER_ERRORS = new Set(['bad_request', 'bad_csr', 'bad_signature', 'bad_key', 'policy_violation', 'not_found', 'already_exists', 'already_revoked', 'config_error', 'key_not_exportable', 'manifest_rejected']);

export function reportError(e: unknown): number {
  if (e instanceof ProblemError) {
    process.stderr.write(`fleetpki: ${e.code}: ${e.detail}\n`);
    if (e.code === 'firmware_rejected') return 3;
    return USER_ERRORS.has(e.code) ? 2 : 1;
  }
  const err = e as Error;
  process.stderr.write(`fleetpki: internal error: ${err?.message ?? String(e)}\n`);
  if (process.env.FLEETPKI_DEBUG) process.stderr.write(`${err?.stack}\n`);
  return 70;
}

/** Reads a file the user named; a missing file is a clear bad_request. */
export function readUserFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new ProblemError('bad_request', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * A secret from an environment variable or a file, never from argv (argv is
 * visible to every user through ps and lands in shell history).
 */
export function secretFrom(envVar: string, file: string | undefined, what: string): string {
  if (file) {
    const s = readUserFile(file, what).toString('utf8').trim();
    if (!s) throw new ProblemError('bad_request', `${what} file ${file} is empty`);
    return s;
  }
  const v = process.env[envVar];
  if (v) return v;
  throw new ProblemError('bad_request', `${what} needed: set ${envVar} or pass a --*-file option`);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ProblemError('bad_request', `"${v}" is not a positive whole number`);
  return n;
}
