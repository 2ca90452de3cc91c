/**
 * Opens the store a `--store` spec names and brings its schema up to date.
 */
import { openPostgresStore } from './postgres_store.js';
import { openSqliteStore } from './sqlite_store.js';
import type { StoreOptions } from './kysely_store.js';
import type { Store } from './store.js';

/**
 * `spec` is `postgres://...` / `postgresql://...`, `sqlite:PATH`, `:memory:`,
 * or a plain filesystem path to a SQLite file.
 */
export async function openStore(spec: string, options: StoreOptions = {}): Promise<Store> {
  const store = /^postgres(ql)?:\/\//i.test(spec)
    ? await openPostgresStore(spec, options)
    : await openSqliteStore(spec.startsWith('sqlite:') ? spec.slice('sqlite:'.length) : spec, options);
  try {
    await store.migrate();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}
