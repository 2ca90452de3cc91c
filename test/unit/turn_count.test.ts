// TurnCount: callers in one event-loop turn learn how many came together.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TurnCount } from '../../src/authority/turn_count.js';

describe('TurnCount', () => {
  it('ok-callers-in-one-turn-see-their-number-and-a-caller-alone-sees-1', async () => {
    const t = new TurnCount();
    assert.deepEqual(await Promise.all([t.count(), t.count(), t.count()]), [3, 3, 3]);
    assert.equal(await t.count(), 1);
    assert.equal(await t.count(), 1, 'a caller after the turn ended starts a new one');
  });

  it('ok-callers-from-separate-io-callbacks-in-the-same-poll-phase-are-counted-together', async () => {
    const t = new TurnCount();
    // Two timers due at once run in the same timers phase, before the check phase.
    const counts = await new Promise<number[]>((resolve) => {
      const seen: number[] = [];
      const done = (n: number) => seen.push(n) === 2 && resolve(seen);
      setTimeout(() => void t.count().then(done), 1);
      setTimeout(() => void t.count().then(done), 1);
    });
    assert.deepEqual(counts, [2, 2]);
  });
});
