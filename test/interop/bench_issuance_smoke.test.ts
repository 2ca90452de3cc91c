/**
 * The issuance and store benchmarks keep working (issue 11): `bench/run.ts
 * --quick issuance store` issues through the fast path beside the floor,
 * @peculiar/x509 and the library path (each checks its own output: every
 * certificate is in the store, a sample verifies, none took the library
 * path), and reads a bulk-filled store. No timing is asserted here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/data_dir.js';

describe('bench/run.ts --quick issuance store', () => {
  it('writes the issuance and store scenarios with their baselines', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', 'issuance', 'store'], { cwd: REPO, encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(readFileSync(join(REPO, 'bench', 'results', 'quick.json'), 'utf8')) as { results: Array<Record<string, unknown>> };
    const byName = new Map(out.results.map((x) => [x.scenario as string, x]));
    for (const name of ['issuance-core', 'issuance-core-vs-peculiar', 'issuance-core-vs-library-path', 'store-100k-get-by-serial-median', 'store-100k-get-by-serial-p99', 'store-100k-expiring-30d-first-page', 'store-100k-expiring-30d-count']) {
      const x = byName.get(name);
      assert.ok(x, `${name} missing from ${[...byName.keys()].join(', ')}`);
      assert.ok(typeof x.value === 'number' && x.value > 0, `${name}: ${JSON.stringify(x)}`);
      assert.ok(typeof x.baselineValue === 'number' && x.baselineValue > 0 && typeof x.ratio === 'number', `${name}: ${JSON.stringify(x)}`);
    }
  });
});
