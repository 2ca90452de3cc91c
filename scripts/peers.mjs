// The Debian packages that the tests and benchmarks drive: installed with
// apt-get when running as root; otherwise the script stops and prints the
// exact command to run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** A command on PATH, or a file that must exist (a path starting with '/'). */
function have(what) {
  if (what.startsWith('/')) return existsSync(what);
  return spawnSync('sh', ['-c', `command -v ${what}`], { stdio: 'ignore' }).status === 0;
}

/** `peers`: [command or path, Debian package] pairs; `who` names the caller in messages. */
export function ensurePeers(peers, who) {
  const missing = [...new Set(peers.filter(([what]) => !have(what)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`${who} need Debian packages that are not installed: ${missing.join(', ')}`);
    console.error(`Run as root:\n  sudo sh -c '${cmd}'`);
    process.exit(2);
  }
  console.log(`installing: ${missing.join(' ')}`);
  const r = spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    console.error(`apt-get failed; ${who} cannot run without these packages`);
    process.exit(2);
  }
}
