/**
 * When CRLs are published (RFC 5280 §5.1.2.5: a relying party rejects a CRL
 * past nextUpdate): CrlService.due() over a fake clock, as the server's
 * timer calls it. A base CRL is republished after a change and ahead of
 * nextUpdate, so over days of simulated time a current CRL always exists.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';

const HOUR = 3_600_000;

describe('CrlService: what is due, and when', () => {
  const clock = new FakeClock('2031-03-01T00:00:00Z');
  let d: TestDataDir;
  before(async () => {
    d = await makeDataDir({ clock });
  });
  after(async () => d.cleanup());

  const publishDue = async () => {
    const done: string[] = [];
    for (const { kind, shard } of await d.ctx.crls.due('issuing')) done.push(`${kind}:${(await d.ctx.crls.publish('issuing', kind, { shard })).number}`);
    return done;
  };

  it('ok-a-first-CRL-is-due-then-nothing-until-a-change', async () => {
    assert.deepEqual(await d.ctx.crls.due('issuing'), [{ kind: 'base', shard: 0 }]);
    assert.equal((await publishDue()).length, 1);
    clock.advance(HOUR);
    assert.deepEqual(await d.ctx.crls.due('issuing'), []);
  });

  it('ok-a-revocation-makes-the-base-due', async () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const r = await d.ctx.authority.issue({ serverGeneratedSpki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })), profile: 'device-tls', subject: [{ type: 'CN', value: 'x' }], actor: 't' });
    clock.advance(1000);
    await d.ctx.authority.revoke(r.record.serial, 'keyCompromise', 't');
    assert.deepEqual(await d.ctx.crls.due('issuing'), [{ kind: 'base', shard: 0 }]);
    await publishDue();
    const crl = await d.ctx.store.getLatestCrl('issuing', 0, 'base');
    assert.equal(crl?.entries, 1);
    // thisUpdate has whole seconds: a revocation in the same second as the
    // CRL may have come after it, so one more CRL follows a second later.
    clock.advance(1000);
    assert.equal((await publishDue()).length, 1);
    clock.advance(1000);
    assert.deepEqual(await d.ctx.crls.due('issuing'), []);
  });

  it('ok-republished-refreshAheadHours-before-nextUpdate-so-it-never-expires', async () => {
    const { validityHours, refreshAheadHours } = d.ctx.config.crl;
    const before = (await d.ctx.store.getLatestCrl('issuing', 0, 'base'))!;
    // Just outside the refresh window: not due. Just inside: due.
    clock.set(before.nextUpdate.getTime() - refreshAheadHours * HOUR - 1000);
    assert.deepEqual(await d.ctx.crls.due('issuing'), []);
    clock.advance(2000);
    assert.deepEqual(await d.ctx.crls.due('issuing'), [{ kind: 'base', shard: 0 }]);
    // Three days of a timer that ticks every 10 minutes: a current CRL at every tick.
    for (let t = 0; t < 72 * 6; t++) {
      await publishDue();
      const latest = (await d.ctx.store.getLatestCrl('issuing', 0, 'base'))!;
      assert.ok(latest.nextUpdate.getTime() - clock.now().getTime() >= (refreshAheadHours * HOUR) - 600_000, `at ${clock.now().toISOString()} the CRL ends ${latest.nextUpdate.toISOString()}`);
      assert.ok(latest.nextUpdate > clock.now());
      clock.advance(600_000);
    }
    const published = (await d.ctx.store.listAudit({ action: 'crl.publish' })).length;
    // One per refresh cycle (validity − refreshAhead), not one per tick.
    assert.ok(published <= 3 + Math.ceil(72 / (validityHours - refreshAheadHours)) + 1, String(published));
  });
});
