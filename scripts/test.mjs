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
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePeers } from './peers.mjs';

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
  ['script', 'bsdutils'],
  // The benchmark harness's smoke test (test/interop/bench_smoke.test.ts).
  ['wrk', 'wrk'],
  ['ab', 'apache2-utils'],
  ['/usr/bin/time', 'time'],
  // Key custody: a PKCS#11 token, OpenSC's pkcs11-tool, and OpenSSL's pkcs11 engine.
  ['softhsm2-util', 'softhsm2'],
  ['/usr/lib/softhsm/libsofthsm2.so', 'softhsm2'],
  ['pkcs11-tool', 'opensc'],
  ['/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so', 'libengine-pkcs11-openssl'],
  // The web console's browser test: Debian's Chromium, driven by playwright-core.
  ['/usr/bin/chromium', 'chromium'],
];

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

ensurePeers(PEERS, 'fleetpki tests');
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
