import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { defaultWorkerThreads, isReadyMessage, isServeProcess, parseProcesses, RestartPolicy } from '../../src/server/cluster.js';

describe('serve --processes', () => {
  it('ok-takes-a-whole-number-or-auto', () => {
    assert.equal(parseProcesses('1'), 1);
    assert.equal(parseProcesses('4'), 4);
    assert.equal(parseProcesses('auto'), availableParallelism());
  });

  it('fail-refuses-anything-else-as-bad-request', () => {
    for (const v of ['0', '-1', '1.5', 'two', '', '257', '1e3x']) {
      assert.throws(() => parseProcesses(v), (e: unknown) => isProblem(e, 'bad_request') && /--processes/.test((e as Error).message), v);
    }
  });

  it('ok-worker-threads-share-the-cores-among-processes', () => {
    assert.equal(defaultWorkerThreads(1, 2), 2, 'one process: a thread per core, as without --processes');
    assert.equal(defaultWorkerThreads(2, 2), 0, 'a process per core: each signs on its main thread');
    assert.equal(defaultWorkerThreads(4, 2), 0);
    assert.equal(defaultWorkerThreads(2, 8), 3, 'each its main thread and three of its four cores');
    assert.equal(defaultWorkerThreads(3, 8), 1);
  });

  it('ok-a-process-that-dies-now-and-then-is-replaced-after-a-growing-delay', () => {
    const p = new RestartPolicy(5, 60_000);
    assert.equal(p.onDeath(0), 1000);
    assert.equal(p.onDeath(10_000), 2000);
    assert.equal(p.onDeath(20_000), 4000);
    // Deaths more than the window ago are forgotten.
    assert.equal(p.onDeath(200_000), 1000);
    const slow = new RestartPolicy(100, 3_600_000);
    const delays = Array.from({ length: 8 }, (_, i) => slow.onDeath(i));
    assert.equal(delays.at(-1), 30_000, 'at most 30 s');
  });

  it('fail-a-crash-loop-stops-the-server', () => {
    const p = new RestartPolicy(5, 60_000);
    for (let i = 0; i < 4; i++) assert.notEqual(p.onDeath(i * 1000), undefined);
    assert.equal(p.onDeath(5000), undefined, 'the fifth exit within a minute: stop');
  });

  it('ok-a-process-is-ours-only-with-the-primarys-mark', () => {
    assert.equal(isServeProcess(), false, 'the test runner is no cluster worker of ours');
  });

  it('ok-knows-a-ready-message-from-other-messages', () => {
    assert.ok(isReadyMessage({ fleetpki: 'ready', httpsUrl: 'https://x', httpUrl: 'http://x' }));
    for (const m of [null, undefined, 'ready', { fleetpki: 'other' }, {}]) assert.ok(!isReadyMessage(m));
  });
});
