#!/usr/bin/env node
// `npm test`: make sure the real peers the tests drive are installed, then run
// every test file under test/ with node's test runner (TypeScript through tsx).
//
//   npm test                      the whole suite
//   npm test -- test/unit/x.test.ts   some files only
//
// Debian packages are installed with apt-get when running as root; otherwise
// the script stops and prints the exact command to run.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);

/**
 * What the tests run -> the Debian package that provides it. A path is a
 * file that must exist: strongSwan's pki needs its openssl plugin for ECDSA
 * keys, which lives in a separate package.
 */
const PEERS = [
  ['openssl', 'openssl'],
  ['certtool', 'gnutls-bin'],
  ['pg_createcluster', 'postgresql'],
  ['pg_ctlcluster', 'postgresql'],
  ['curl', 'curl'],
  // By path: node-opcua-pki puts a `pki` of its own into node_modules/.bin.
  ['/usr/bin/pki', 'strongswan-pki'],
  ['/usr/lib/ipsec/plugins/libstrongswan-openssl.so', 'libstrongswan-standard-plugins'],
  ['/usr/lib/ipsec/plugins/libstrongswan-curl.so', 'libstrongswan-extra-plugins'],
  ['mosquitto', 'mosquitto'],
  ['mosquitto_pub', 'mosquitto-clients'],
  ['ocsptool', 'gnutls-bin'],
];

function have(cmd) {
  if (cmd.startsWith('/')) return existsSync(cmd);
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function ensurePeers() {
  const missing = [...new Set(PEERS.filter(([cmd]) => !have(cmd)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) {
    console.error(`fleetpki tests need Debian packages that are not installed: ${missing.join(', ')}`);
    console.error(`Run as root:\n  sudo sh -c '${cmd}'`);
    process.exit(2);
  }
  console.log(`installing test peers: ${missing.join(' ')}`);
  const r = spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) {
    console.error('apt-get failed; the tests cannot run without these packages');
    process.exit(2);
  }
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

ensurePeers();
// Tests run the `fleetpki` command as users do: through the fresh bundle.
const b = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
const files = process.argv.slice(2).length ? process.argv.slice(2) : findTests('test');
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...files],
  { stdio: 'inherit', env: { ...process.env, FLEETPKI_TEST: '1' } },
);
process.exit(r.status ?? 1);
