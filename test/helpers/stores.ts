/**
 * A store contract run on both backends: SQLite (a fresh file per open) and
 * PostgreSQL (a fresh schema per open, one cluster for the file, started as
 * soon as the file loads so it boots while the SQLite half runs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { openStore } from '../../src/store/open_store.js';
import { openPostgresStore } from '../../src/store/postgres_store.js';
import { openSqliteStore } from '../../src/store/sqlite_store.js';
import type { Store } from '../../src/store/store.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

/** `open` gives a migrated store, `openUnmigrated` one at schema version 0 (for upgrade tests). */
export type StoreContract = (kind: 'sqlite' | 'postgres', open: () => Promise<Store>, openUnmigrated: () => Promise<Store>) => void;

export function onBothStores(contract: StoreContract): void {
  describe('SQLite', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fleetpki-store-'));
    let n = 0;
    const fresh = () => join(dir, `s-${++n}.db`);
    after(() => rmSync(dir, { recursive: true, force: true }));
    contract('sqlite', () => openStore(fresh()), () => openSqliteStore(fresh()));
  });

  describe('PostgreSQL', () => {
    const starting = startTestPostgres();
    starting.catch(() => undefined); // reported by before(), not as an unhandled rejection
    let server: TestPostgres;
    before(async () => {
      server = await starting;
    });
    after(async () => {
      await (await starting.catch(() => undefined))?.stop();
    });
    contract('postgres', async () => openStore(await server.createTestSchema()), async () => openPostgresStore(await server.createTestSchema()));
  });
}
