/**
 * Signed firmware (issue 9): `fleetpki firmware sign` and `fleetpki firmware
 * verify` on a 1 GiB image (8 MiB with --quick), each as the process users
 * run, beside `openssl cms -sign` / `openssl cms -verify` on the same file
 * with the same key and certificates. Every process is timed from spawn to
 * exit (startup included: 1 GiB makes it small) and its peak RSS comes from
 * GNU time (`/usr/bin/time -f %M`), the same way for both sides. `openssl dgst -sha256` on the file is the hashing floor (in the
 * note), and our peak RSS on a 1 MiB image shows that memory does not grow
 * with the image (the digest is streamed).
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomFillSync } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyObjectSigner } from '../src/keys/key_store.js';
import { initDataDir } from '../src/server/context.js';
import { pemEncode } from '../src/x509/pem.js';
import { need } from './lib/proc.js';
import { result, type Result } from './lib/report.js';

const BIN = fileURLToPath(new URL('../bin/fleetpki.js', import.meta.url));
const MiB = 1024 * 1024;

interface Run {
  ms: number;
  maxRssMB: number;
}

/**
 * One process: wall time measured here (GNU time's %e has 10 ms steps),
 * peak RSS from GNU time (%M, the child's maxrss); throws with its output
 * unless it exits 0.
 */
function timed(cmd: string, args: string[]): Run {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 * MiB });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  const m = /(\d+)\s*$/.exec(r.stderr);
  if (!m) throw new Error(`no peak RSS from /usr/bin/time: ${r.stderr}`);
  return { ms, maxRssMB: Number(m[1]) / 1024 };
}

/** The fastest of n runs, with the highest peak RSS seen. */
function best(n: number, fn: () => Run): Run {
  let b: Run | undefined;
  for (let i = 0; i < n; i++) {
    const r = fn();
    b = !b ? r : { ms: Math.min(b.ms, r.ms), maxRssMB: Math.max(b.maxRssMB, r.maxRssMB) };
  }
  return b!;
}

function writeImage(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    const chunk = Buffer.alloc(16 * MiB);
    for (let left = size; left > 0; left -= chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(left, chunk.length));
  } finally {
    closeSync(fd);
  }
}

export async function firmwareScenarios(quick: boolean): Promise<Result[]> {
  need('/usr/bin/time', 'time');
  need('openssl', 'openssl');
  const size = quick ? 8 * MiB : 1024 * MiB;
  const label = quick ? '8mib' : '1gib';
  const runs = quick ? 1 : 2;
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-fw-'));
  const f = (n: string) => join(work, n);
  try {
    // A fleet: root → firmware CA → a code-signing certificate for a P-256 key both tools sign with.
    const { ctx } = await initDataDir({ dir: f('data'), org: 'Bench', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825 });
    try {
      await ctx.authority.createIssuingCa({ name: 'firmware', parent: 'root', subject: [{ type: 'O', value: 'Bench' }, { type: 'CN', value: 'Bench Firmware CA' }], keyAlgorithm: 'ecdsa-p256', validityDays: 1825, actor: 'bench' });
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const issued = await ctx.authority.issue({ serverGeneratedSpki: keyObjectSigner(privateKey).spki, profile: 'code-signing', ca: 'firmware', subject: [{ type: 'CN', value: 'Bench Release' }], actor: 'bench' });
      writeFileSync(f('cs.key'), privateKey.export({ format: 'pem', type: 'pkcs8' }));
      writeFileSync(f('cs.pem'), issued.pem);
      writeFileSync(f('chain.pem'), issued.chain.slice(0, -1).map((d) => pemEncode('CERTIFICATE', d)).join(''));
      writeFileSync(f('root.pem'), pemEncode('CERTIFICATE', issued.chain.at(-1)!));
      writeFileSync(f('firmware.crl'), (await ctx.crls.publish('firmware')).der);
      writeFileSync(f('root.crl'), (await ctx.crls.publish('root')).der);
    } finally {
      await ctx.close();
    }
    writeImage(f('fw.bin'), size);
    writeImage(f('small.bin'), MiB);

    const oursSign = (img: string, out: string) => timed(process.execPath, [BIN, 'firmware', 'sign', '--in', f(img), '--model', 'bench', '--version', '1.0.0', '--key', f('cs.key'), '--cert', f('cs.pem'), '--chain', f('chain.pem'), '--out', f(out)]);
    const oursVerify = (img: string, sig: string) => timed(process.execPath, [BIN, 'firmware', 'verify', '--in', f(img), '--sig', f(sig), '--ca-file', f('root.pem'), '--crl', f('firmware.crl'), '--crl', f('root.crl'), '--model', 'bench']);
    const sslSign = () => timed('openssl', ['cms', '-sign', '-binary', '-in', f('fw.bin'), '-signer', f('cs.pem'), '-inkey', f('cs.key'), '-certfile', f('chain.pem'), '-md', 'sha256', '-outform', 'DER', '-out', f('openssl.sig')]);
    const sslVerify = (sig: string) => timed('openssl', ['cms', '-verify', '-binary', '-content', f('fw.bin'), '-in', f(sig), '-inform', 'DER', '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);

    // Warm the page cache so neither side pays the first read of the file.
    timed('openssl', ['dgst', '-sha256', f('fw.bin')]);
    const sign = best(runs, () => oursSign('fw.bin', 'fw.sig'));
    const sslS = best(runs, sslSign);
    const verify = best(runs, () => oursVerify('fw.bin', 'fw.sig'));
    const sslV = best(runs, () => sslVerify('fw.sig'));
    const dgst = best(runs, () => timed('openssl', ['dgst', '-sha256', f('fw.bin')]));
    // Correctness of both sides, each checked by the other tool.
    sslVerify('fw.sig');
    timed(process.execPath, [BIN, 'firmware', 'verify', '--in', f('fw.bin'), '--sig', f('openssl.sig'), '--ca-file', f('root.pem'), '--crl', f('firmware.crl'), '--crl', f('root.crl'), '--model', 'bench', '--allow-unbound', '--version', '1.0.0']);
    // The same commands on 1 MiB: peak memory of the process with next to no image.
    const smallSign = oursSign('small.bin', 'small.sig');
    const smallVerify = oursVerify('small.bin', 'small.sig');

    const mb = (x: number) => `${Math.round(x)} MB`;
    return [
      result(`firmware-sign-${label}`, sign.ms, 'ms', 'lower', 'openssl cms -sign -binary', sslS.ms, `openssl dgst -sha256 alone: ${Math.round(dgst.ms)} ms; peak RSS ${mb(sign.maxRssMB)} (openssl ${mb(sslS.maxRssMB)})`),
      result(`firmware-verify-${label}`, verify.ms, 'ms', 'lower', 'openssl cms -verify -binary -content', sslV.ms, `chain, EKU, CRLs, manifest and digest; peak RSS ${mb(verify.maxRssMB)} (openssl ${mb(sslV.maxRssMB)})`),
      result(`firmware-sign-${label}-peak-rss`, sign.maxRssMB, 'MB', 'lower', 'openssl cms -sign -binary', sslS.maxRssMB, `the same command on 1 MiB: ${mb(smallSign.maxRssMB)} (Node's own footprint); the image is streamed`),
      result(`firmware-verify-${label}-peak-rss`, verify.maxRssMB, 'MB', 'lower', 'openssl cms -verify -binary -content', sslV.maxRssMB, `on 1 MiB: ${mb(smallVerify.maxRssMB)}`),
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
