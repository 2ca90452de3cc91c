/**
 * Console sessions in the store (migration 12), the contract ConsoleSessions
 * relies on, on SQLite and PostgreSQL: insert, read, touch, delete, and the
 * sweep of idle or too old sessions. Unknown ids are no-ops, not errors.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsoleSessionRecord, Store } from '../../src/store/store.js';
import { onBothStores } from '../helpers/stores.js';

const T0 = Date.parse('2031-02-03T04:05:06.000Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000);
const session = (id: string, created: number, seen = created): ConsoleSessionRecord => ({ idHash: id.repeat(64).slice(0, 64), tokenHash: 'f'.repeat(64), createdAt: at(created), lastSeen: at(seen) });

onBothStores((kind, open) => {
  describe(`console sessions: ${kind}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => store.close());

    it('ok-insert, read back exactly, touch moves last-seen only, delete', async () => {
      const s = session('a', 0);
      await store.insertConsoleSession(s);
      assert.deepEqual(await store.getConsoleSession(s.idHash), s);
      await store.touchConsoleSession(s.idHash, at(5));
      assert.deepEqual(await store.getConsoleSession(s.idHash), { ...s, lastSeen: at(5) });
      await store.deleteConsoleSession(s.idHash);
      assert.equal(await store.getConsoleSession(s.idHash), undefined);
    });

    it('ok-the sweep deletes the idle and the too old, keeps the rest', async () => {
      const idle = session('b', 0, 10);
      const old = session('c', 0, 100);
      const fresh = session('d', 50, 100);
      for (const s of [idle, old, fresh]) await store.insertConsoleSession(s);
      assert.equal(await store.deleteStaleConsoleSessions(at(70), at(30)), 2);
      assert.equal(await store.getConsoleSession(idle.idHash), undefined);
      assert.equal(await store.getConsoleSession(old.idHash), undefined);
      assert.deepEqual(await store.getConsoleSession(fresh.idHash), fresh);
    });

    it('fail-the same session id twice is refused; an unknown id reads as none and touching or deleting it changes nothing', async () => {
      const s = session('e', 0);
      await store.insertConsoleSession(s);
      await assert.rejects(store.insertConsoleSession({ ...s, tokenHash: '0'.repeat(64) }));
      assert.deepEqual(await store.getConsoleSession(s.idHash), s);
      const ghost = 'e'.repeat(63) + '0';
      assert.equal(await store.getConsoleSession(ghost), undefined);
      await store.touchConsoleSession(ghost, at(9));
      await store.deleteConsoleSession(ghost);
      assert.deepEqual(await store.getConsoleSession(s.idHash), s);
    });
  });
});
