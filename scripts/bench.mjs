#!/usr/bin/env node
// `npm run bench [-- --quick] [scenario ...]`: installs the load generators,
// then runs bench/run.ts (see there and docs/performance.md).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensurePeers } from './peers.mjs';

export const BENCH_PEERS = [
  ['openssl', 'openssl'],
  ['wrk', 'wrk'],
  ['ab', 'apache2-utils'],
  // GNU time: time and peak RSS of each firmware signing/verifying process.
  ['/usr/bin/time', 'time'],
];

const root = fileURLToPath(new URL('..', import.meta.url));
ensurePeers(BENCH_PEERS, 'the benchmarks');
// The server under test runs as users run it: from the fresh bundle.
const b = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
if (b.status !== 0) process.exit(b.status ?? 1);
const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
