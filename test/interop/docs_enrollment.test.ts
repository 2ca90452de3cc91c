/**
 * docs/enrollment.md can be pasted as it stands: every ```sh block, in order,
 * in one bash (set -euo pipefail) in an empty directory, against the real
 * server the doc itself starts (`npx fleetpki serve &`). `npx fleetpki` and
 * `fleetpki` resolve to this checkout's bin/fleetpki.js through a PATH shim;
 * any other npx call fails, so nothing is fetched from a registry.
 *
 * Two things differ from a reader's terminal, both visible here: the data
 * directory exists already (so the doc's `[ -f ... ] || npx fleetpki init`
 * skips init), made with free ports instead of 8443/8080, and the doc's
 * 127.0.0.1:8443 / 127.0.0.1:8080 are rewritten to those ports, so the test
 * never collides with another server on the machine.
 *
 * A block that cannot run unattended must say so on the line before it with
 * `<!-- doc-test: skip: <reason> -->`; such blocks are listed, never skipped
 * silently, and a shell block in another fence (bash, shell, console) fails.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, fleetpki, REPO, runOpenssl, tempDir } from '../helpers/data_dir.js';

const DOC = join(REPO, 'docs', 'enrollment.md');
const work = tempDir('fleetpki-doc-enroll-');
const file = (...p: string[]) => join(work, ...p);
let bashPid: number | undefined;

interface Block {
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

function runBash(script: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    // Its own process group: the server the doc starts in the background is
    // in it too, and is stopped with it.
    const p = spawn('bash', [script], { cwd: work, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    bashPid = p.pid;
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    const t = setTimeout(() => {
      out += `\n[doc test: timed out after ${timeoutMs} ms]\n`;
      stopGroup();
    }, timeoutMs);
    p.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, out });
    });
  });
}

function stopGroup(): void {
  if (bashPid === undefined) return;
  try {
    process.kill(-bashPid, 'SIGTERM');
  } catch {
    /* already gone */
  }
}

describe('docs/enrollment.md, pasted as it stands', () => {
  let result: { status: number | null; out: string };
  let blocks: Block[];

  before(async () => {
    const md = readFileSync(DOC, 'utf8');
    blocks = fencedBlocks(md);
    const [https, http] = [await freePort(), await freePort()];

    const shims = file('.shims');
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
    const init = fleetpki(['init', '--dir', file('fleetpki-data'), '--org', 'Acme Devices', '--listen', `127.0.0.1:${https}`, '--http-listen', `127.0.0.1:${http}`], env);
    assert.equal(init.status, 0, init.stderr);

    const parts = ['set -euo pipefail'];
    blocks.forEach((b, i) => {
      if (b.lang !== 'sh' || b.skip) return;
      parts.push(`echo '### enrollment.md block ${i + 1}, line ${b.line}' >&2`, b.code.replaceAll('127.0.0.1:8443', `127.0.0.1:${https}`).replaceAll('127.0.0.1:8080', `127.0.0.1:${http}`));
    });
    const script = file('.doc.sh');
    writeFileSync(script, `${parts.join('\n')}\n`);
    result = await runBash(script, env, 240_000);
    stopGroup();
  });

  after(() => {
    stopGroup();
    rmSync(work, { recursive: true, force: true });
  });

  const tail = () => `${result.out.split('\n').slice(-40).join('\n')}\n--- server log ---\n${existsSync(file('fleetpki-serve.log')) ? readFileSync(file('fleetpki-serve.log'), 'utf8').slice(-3000) : '(none)'}`;

  it('has shell blocks only in ```sh fences, and none skipped without a reason', () => {
    const sh = blocks.filter((b) => b.lang === 'sh');
    assert.ok(sh.length >= 10, `${sh.length} sh blocks`);
    for (const b of blocks) assert.ok(!['bash', 'shell', 'console', 'zsh'].includes(b.lang), `line ${b.line}: use \`\`\`sh so the test runs it`);
    for (const b of blocks.filter((x) => x.skip !== undefined)) assert.ok(b.skip!.trim().length > 10, `line ${b.line}: a skip marker needs a reason`);
    assert.deepEqual(blocks.filter((b) => b.skip).map((b) => b.line), [], 'every sh block of enrollment.md runs unattended today');
  });

  it('every block ran to the end, exit 0', () => {
    assert.equal(result.status, 0, tail());
    const ran = blocks.filter((b) => b.lang === 'sh' && !b.skip).length;
    assert.equal((result.out.match(/^### enrollment\.md block /gm) ?? []).length, ran, tail());
  });

  it('the certificates it made verify with openssl against the root it fetched', () => {
    assert.equal(result.status, 0, 'see above');
    const expect: Array<[string, string]> = [
      ['sensor.pem', 'sensor-0001'],
      ['sensor-renewed.pem', 'sensor-0001'],
      ['curl-sensor.pem', 'sensor-0001'],
      ['curl-sensor-renewed.pem', 'sensor-0001'],
      ['ldevid.pem', 'SN-4711'],
      ['sensor-0100.pem', 'sensor-0100'],
    ];
    for (const [f, id] of expect) {
      const v = runOpenssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('root.pem'), '-untrusted', file('issuing.pem'), file(f)]);
      assert.match(v.stdout, /: OK/, `${f}: ${v.stderr}`);
      const subject = runOpenssl(['x509', '-in', file(f), '-noout', '-subject', '-nameopt', 'RFC2253']).stdout.trim();
      assert.equal(subject, `subject=CN=${id},serialNumber=${id},O=Acme Devices`, f);
    }
    assert.equal(readFileSync(file('cacert.pem'), 'utf8').trim(), readFileSync(file('root.pem'), 'utf8').trim(), 'pki --estca: the root');
    assert.match(readFileSync(file('cacerts.pem'), 'utf8'), /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/, 'curl /cacerts: issuing CA and root');
  });

  it('the registry ends as the doc says', () => {
    assert.equal(result.status, 0, 'see above');
    const D = ['--dir', file('fleetpki-data')];
    const show = (id: string) => JSON.parse(fleetpki(['device', 'show', id, '--json', ...D]).stdout);
    const s1 = show('sensor-0001');
    assert.equal(s1.state, 'active', 'suspended, then resumed');
    assert.equal(s1.certificates.length, 4, 'pki enroll and renew, curl enroll and renew');
    assert.equal(show('SN-4711').state, 'retired');
    assert.equal(show('sensor-0100').state, 'active');
    for (const id of ['sensor-0002', 'gateway-01']) assert.equal(show(id).state, 'registered');
    const orders = JSON.parse(fleetpki(['order', 'list', '--json', ...D]).stdout);
    assert.equal(orders.length, 1);
    for (const id of ['th20-0001', 'th20-0002']) assert.equal(show(id).orderId, orders[0].id);
    const approved = JSON.parse(fleetpki(['enrollment', 'list', '--status', 'issued', '--json', ...D]).stdout);
    assert.deepEqual(approved.map((p: { deviceId: string }) => p.deviceId), ['sensor-0100']);
  });
});
