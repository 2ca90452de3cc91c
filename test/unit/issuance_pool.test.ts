/**
 * The worker pool's rule (issuance_pool.ts): a turn's only job, with none
 * on a worker, runs on this thread; a turn's many go to the threads; a job
 * that fails fails alone; a closed pool refuses with `unavailable`, which
 * callers take as "sign here".
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, verify } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { IssuancePool } from '../../src/authority/issuance_pool.js';
import { isProblem } from '../../src/errors.js';

describe('IssuancePool', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pool = new IssuancePool(2);
  after(() => pool.close());
  const data = (i: number) => new TextEncoder().encode(`answer ${i}`);
  const valid = (i: number, sig: Uint8Array) => verify('sha256', data(i), { key: publicKey, dsaEncoding: 'der' }, sig);

  it('ok-a-lone-job-runs-here-without-starting-a-thread', async () => {
    const r = await pool.sign(privateKey, 'sha256', data(0));
    assert.equal(r.onWorker, false);
    assert.ok(valid(0, r.signature));
    assert.deepEqual(pool.ran, { here: 1, onWorkers: 0 });
  });

  it('ok-a-turns-many-jobs-go-to-the-threads-and-sign-the-same', async () => {
    const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.sign(privateKey, 'sha256', data(i))));
    assert.ok(rs.every((r) => r.onWorker), 'every one on a thread');
    rs.forEach((r, i) => assert.ok(valid(i, r.signature), `signature ${i}`));
    assert.equal(pool.ran.onWorkers, 12);
  });

  it('fail-a-job-that-throws-fails-alone-here-and-on-a-thread', async () => {
    // An unknown digest: node:crypto throws, on this thread or on a worker.
    await assert.rejects(pool.sign(privateKey, 'no-such-hash' as 'sha256', data(0)));
    const mixed = await Promise.allSettled([pool.sign(privateKey, 'no-such-hash' as 'sha256', data(1)), pool.sign(privateKey, 'sha256', data(2))]);
    assert.equal(mixed[0].status, 'rejected');
    assert.ok(mixed[0].status === 'rejected' && isProblem(mixed[0].reason, 'internal'), 'a worker fault is internal');
    assert.ok(mixed[1].status === 'fulfilled' && valid(2, mixed[1].value.signature), 'the other job of the turn is signed');
    assert.ok((await pool.sign(privateKey, 'sha256', data(3))).signature.length > 0, 'the pool carries on');
  });

  it('fail-a-closed-pool-refuses-with-unavailable', async () => {
    const own = new IssuancePool(1);
    await own.close();
    await assert.rejects(own.sign(privateKey, 'sha256', data(0)), (e) => isProblem(e, 'unavailable'));
  });
});
