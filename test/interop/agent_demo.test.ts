/**
 * `fleetpki demo`, run as a user runs it (the README's first command): exits
 * 0 and says in plain words that each step happened.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BIN } from '../helpers/data_dir.js';
import { run } from '../helpers/est.js';

describe('fleetpki demo', () => {
  it('ok-runs-the-story-and-exits-0', async () => {
    const started = Date.now();
    const r = await run(process.execPath, [BIN, 'demo'], '', 90_000);
    const out = r.stdout;
    assert.equal(r.status, 0, `exit ${r.status}\n${out}\n${r.stderr}`);
    const lines = [
      /^1\. server up: EST and admin API on https:\/\/127\.0\.0\.1:\d+/m,
      /^2\. enrolled 20 devices over EST with one-time secrets: 10 in plant-a, 10 in plant-b/m,
      /^3\. mutual TLS within each domain: 18 of 18 sensors delivered readings/m,
      /^4\. refused: sensor-b-01 \(plant-b\) connected to control-a .* is in plant-b, not in our plant-a \(wrong_domain\)$/m,
      /refused: sensor-a-01 \(plant-a\) would not hand its data to control-b .*\(wrong_domain\)$/m,
      /renewed: 20 of 20 devices have a new certificate and a new key/m,
      /^6\. revoked sensor-a-02/m,
      /refused: sensor-a-02 .* is revoked .*\(revoked\)$/m,
      /sensor-a-03 still delivers/m,
      /^demo finished/m,
    ];
    for (const re of lines) assert.match(out, re);
    // The temporary directory is gone afterwards.
    const tmp = /on the embedded default in (\S+)/.exec(out)?.[1];
    assert.ok(tmp && !existsSync(tmp), `${tmp} removed`);
    assert.ok(Date.now() - started < 60_000, 'well under a minute');
  });
});
