/**
 * Runs a doc's ```sh blocks as they stand: in order, in one bash
 * (set -euo pipefail) in an empty directory, against the real server the doc
 * itself starts (`npx fleetpki serve &`). `npx fleetpki` and `fleetpki`
 * resolve to this checkout's bin/fleetpki.js through a PATH shim; any other
 * npx call fails, so nothing is fetched from a registry.
 *
 * Two things differ from a reader's terminal, both visible here: the data
 * directory exists already (so a doc's `[ -f ... ] || npx fleetpki init`
 * skips init), made with free ports instead of 8443/8080, and the doc's
 * 127.0.0.1:8443 / 127.0.0.1:8080 are rewritten to those ports, so the test
 * never collides with another server on the machine.
 *
 * A block that cannot run unattended must say so on the line before it with
 * `<!-- doc-test: skip: <reason> -->`; such blocks are listed, never skipped
 * silently, and a shell block in another fence (bash, shell, console) fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, join } from 'node:path';
import { BIN, fleetpki } from './data_dir.js';

export interface Block {
  line: number;
  lang: string;
  code: string;
  skip?: string;
}

/** Fenced blocks of a Markdown text, with the line they start on and a skip marker on the line before. */
export function fencedBlocks(md: string): Block[] {
  const lines = md.split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    assert.ok(end > i, `unclosed code fence at line ${i + 1}`);
    const marker = /^<!-- doc-test: skip: (.+?) -->$/.exec(lines[i - 1] ?? '');
    out.push({ line: i + 1, lang: open[1], code: lines.slice(i + 1, end).join('\n'), skip: marker?.[1] });
    i = end;
  }
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface DocRun {
  blocks: Block[];
  status: number | null;
  /** stdout and stderr of the script, interleaved. */
  out: string;
  /** The last lines of the output and of the doc's server log, for a failure message. */
  tail(): string;
  /** Stops the script's process group (the server it started in the background). */
  stop(): void;
}

/**
 * Runs the doc at `docPath` in `work`, after `fleetpki init --dir
 * work/fleetpki-data --org <org>` on free ports.
 */
export async function runDocScript(docPath: string, work: string, o: { org: string; timeoutMs?: number }): Promise<DocRun> {
  const name = basename(docPath);
  const blocks = fencedBlocks(readFileSync(docPath, 'utf8'));
  const [https, http] = [await freePort(), await freePort()];

  const shims = join(work, '.shims');
  mkdirSync(shims);
  const node = process.execPath;
  writeFileSync(join(shims, 'fleetpki'), `#!/bin/sh\nexec '${node}' '${BIN}' "$@"\n`);
  writeFileSync(
    join(shims, 'npx'),
    `#!/bin/sh\nif [ "$1" = fleetpki ]; then shift; exec '${node}' '${BIN}' "$@"; fi\necho "doc test: only 'npx fleetpki' is allowed here, not: npx $*" >&2\nexit 127\n`,
  );
  for (const s of ['fleetpki', 'npx']) chmodSync(join(shims, s), 0o755);

  // npm puts node_modules/.bin first on PATH, where node-opcua's own `pki`
  // would hide strongSwan's: a reader's shell has neither.
  const userPath = (process.env.PATH ?? '').split(':').filter((p) => !/node_modules[\\/]\.bin/.test(p)).join(':');
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${shims}:${userPath}` };
  for (const k of ['FLEETPKI_DIR', 'FLEETPKI_KEYSTORE_PASSPHRASE', 'FLEETPKI_KEYSTORE_PASSPHRASE_FILE']) delete env[k];
  const init = fleetpki(['init', '--dir', join(work, 'fleetpki-data'), '--org', o.org, '--listen', `127.0.0.1:${https}`, '--http-listen', `127.0.0.1:${http}`], env);
  assert.equal(init.status, 0, init.stderr);

  const parts = ['set -euo pipefail'];
  blocks.forEach((b, i) => {
    if (b.lang !== 'sh' || b.skip) return;
    parts.push(`echo '### ${name} block ${i + 1}, line ${b.line}' >&2`, b.code.replaceAll('127.0.0.1:8443', `127.0.0.1:${https}`).replaceAll('127.0.0.1:8080', `127.0.0.1:${http}`));
  });
  const script = join(work, '.doc.sh');
  writeFileSync(script, `${parts.join('\n')}\n`);

  let pid: number | undefined;
  const stop = () => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  };
  const timeoutMs = o.timeoutMs ?? 240_000;
  const { status, out } = await new Promise<{ status: number | null; out: string }>((resolve) => {
    // Its own process group: the server the doc starts in the background is
    // in it too, and is stopped with it.
    const p = spawn('bash', [script], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    pid = p.pid;
    let text = '';
    p.stdout.on('data', (b) => (text += b));
    p.stderr.on('data', (b) => (text += b));
    const t = setTimeout(() => {
      text += `\n[doc test: timed out after ${timeoutMs} ms]\n`;
      stop();
    }, timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ status: code, out: text });
    });
  });
  stop();
  const log = join(work, 'fleetpki-serve.log');
  return {
    blocks,
    status,
    out,
    stop,
    tail: () => `${out.split('\n').slice(-40).join('\n')}\n--- server log ---\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-3000) : '(none)'}`,
  };
}

/** The checks every pasteable doc passes: only ```sh shell fences, skips with reasons, every block ran. */
export function assertDocRan(run: DocRun, o: { minBlocks: number; skipped?: number[] }): void {
  const name = /### (\S+) block/.exec(run.out)?.[1] ?? 'the doc';
  const sh = run.blocks.filter((b) => b.lang === 'sh');
  assert.ok(sh.length >= o.minBlocks, `${sh.length} sh blocks`);
  for (const b of run.blocks) assert.ok(!['bash', 'shell', 'console', 'zsh'].includes(b.lang), `line ${b.line}: use \`\`\`sh so the test runs it`);
  for (const b of run.blocks.filter((x) => x.skip !== undefined)) assert.ok(b.skip!.trim().length > 10, `line ${b.line}: a skip marker needs a reason`);
  assert.deepEqual(run.blocks.filter((b) => b.skip).map((b) => b.line), o.skipped ?? [], `the skipped blocks of ${name}`);
  assert.equal(run.status, 0, run.tail());
  const ran = sh.filter((b) => !b.skip).length;
  assert.equal((run.out.match(/^### \S+ block /gm) ?? []).length, ran, run.tail());
}
