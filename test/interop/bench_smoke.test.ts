/**
 * The benchmark harness keeps working: `bench/run.ts --quick` runs every
 * scenario at small sizes (its own correctness checks included: openssl
 * verifies the published CRL and the OCSP answers, a failed request under
 * load fails the run) and writes results in the documented shape. No
 * timing is asserted here: speed is what `npm run bench` reports.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../helpers/data_dir.js';

describe('bench/run.ts --quick', () => {
  it('runs every scenario beside its baseline and writes bench/results/quick.json', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick'], { cwd: REPO, encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(readFileSync(join(REPO, 'bench', 'results', 'quick.json'), 'utf8')) as { machine: Record<string, unknown>; results: Array<Record<string, unknown>> };
    assert.equal(typeof out.machine.cores, 'number');
    const byName = new Map(out.results.map((x) => [x.scenario as string, x]));
    for (const name of ['crl-encode-1k', 'crl-encode-20k', 'crl-publish-from-sqlite-20k', 'ocsp-presigned-get', 'ocsp-nonce-post', 'ocsp-presigned-get-processes', 'ocsp-nonce-post-processes', 'ocsp-post-per-connection', 'ocsp-nonce-post-per-connection', 'est-simpleenroll-new-tls', 'est-simplereenroll-resumed-tls', 'firmware-sign-8mib', 'firmware-verify-8mib', 'firmware-sign-8mib-peak-rss', 'firmware-verify-8mib-peak-rss', 'issuance-core', 'issuance-core-vs-peculiar', 'issuance-core-vs-library-path', 'store-100k-get-by-serial-median', 'store-100k-expiring-30d-count']) {
      const x = byName.get(name);
      assert.ok(x, `${name} missing from ${[...byName.keys()].join(', ')}`);
      assert.deepEqual(Object.keys(x).filter((k) => k !== 'note').sort(), ['baseline', 'baselineValue', 'ratio', 'scenario', 'unit', 'value']);
      assert.ok(typeof x.value === 'number' && x.value > 0, `${name}: ${JSON.stringify(x)}`);
      assert.equal(typeof x.baseline, 'string');
    }
    // Side by side: the library and the other responders really ran.
    for (const name of ['crl-encode-1k', 'ocsp-presigned-get', 'ocsp-post-per-connection', 'ocsp-nonce-post-per-connection', 'est-simpleenroll-new-tls', 'est-simplereenroll-resumed-tls', 'firmware-sign-8mib', 'firmware-verify-8mib', 'firmware-sign-8mib-peak-rss', 'issuance-core', 'issuance-core-vs-peculiar', 'issuance-core-vs-library-path']) {
      const x = byName.get(name)!;
      assert.ok(typeof x.baselineValue === 'number' && x.baselineValue > 0 && typeof x.ratio === 'number', `${name}: ${JSON.stringify(x)}`);
    }
    assert.match(r.stdout, /\| scenario +\| fleetpki/);
  });
});
