import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { defaultWorkerThreads, isReadyMessage, parseProcesses } from '../../src/server/cluster.js';

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

  it('ok-knows-a-ready-message-from-other-messages', () => {
    assert.ok(isReadyMessage({ fleetpki: 'ready', httpsUrl: 'https://x', httpUrl: 'http://x' }));
    for (const m of [null, undefined, 'ready', { fleetpki: 'other' }, {}]) assert.ok(!isReadyMessage(m));
  });
});
