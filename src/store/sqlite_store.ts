/**
 * The embedded default: one SQLite file in WAL mode, shared by the server and
 * any CLI run at the same time (separate OS processes).
 */
import { realpathSync } from 'node:fs';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect, sql, type SqliteDatabase } from 'kysely';
import { ProblemError } from '../errors.js';
import { KyselyStore, type DialectHooks, type StoreOptions } from './kysely_store.js';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/** Serialises async work, in call order. */
class AsyncMutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

/**
 * better-sqlite3 waits for a busy lock synchronously, blocking the event loop.
 * Two connections to one file in the same process would deadlock: the waiter
 * blocks the loop that the lock holder needs to commit. So writers in one
 * process queue here first; the busy timeout only ever waits for other processes.
 */
const writersByFile = new Map<string, AsyncMutex>();

function writerQueueFor(file: string | undefined): AsyncMutex {
  if (file === undefined) return new AsyncMutex();
  let m = writersByFile.get(file);
  if (!m) writersByFile.set(file, (m = new AsyncMutex()));
  return m;
}

function sqliteHooks(writers: AsyncMutex): DialectHooks {
  return {
    kind: 'sqlite',
    writeTransaction: (db, fn) =>
      writers.run(() =>
        db.connection().execute(async (conn) => {
          // IMMEDIATE takes the write lock now; a deferred BEGIN that upgrades
          // later fails with SQLITE_BUSY at once instead of waiting.
          await sql`begin immediate`.execute(conn);
          try {
            const result = await fn(conn);
            await sql`commit`.execute(conn);
            return result;
          } catch (e) {
            // SQLite may have rolled back already (e.g. disk full); keep the first error.
            await sql`rollback`.execute(conn).catch(() => undefined);
            throw e;
          }
        }),
      ),
    // BEGIN IMMEDIATE already excludes every other writer of the file.
    lock: async () => undefined,
  };
}

/**
 * better-sqlite3 compiles SQL on every prepare(), and Kysely prepares every
 * query anew: for a lookup by key the compile costs several times the
 * query. The store runs the same few dozen statements over and over, so
 * they are kept, compiled, by their text (bounded; least recently used go
 * first). Kysely only runs them with all()/run() (streaming would need a
 * statement of its own per iteration; the store does not stream).
 */
function withStatementCache(raw: SQLite.Database, max = 512): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    prepare(source: string) {
      let stmt = cache.get(source);
      if (stmt) {
        cache.delete(source);
      } else {
        stmt = raw.prepare(source);
        if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      }
      cache.set(source, stmt);
      return stmt;
    },
    close() {
      cache.clear();
      raw.close();
    },
  };
}

/** `path` is a file (created if missing) or ":memory:". Does not migrate; openStore does. */
export async function openSqliteStore(path: string, options: StoreOptions = {}): Promise<Store> {
  let raw: SQLite.Database;
  try {
    raw = new SQLite(path);
  } catch (e) {
    throw new ProblemError('config_error', `cannot open SQLite database ${path}: ${(e as Error).message}`);
  }
  // busy_timeout first, so switching to WAL waits for another process's lock.
  raw.pragma('busy_timeout = 10000');
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.pragma('foreign_keys = ON');
  const file = path === ':memory:' || path === '' ? undefined : realpathSync(path);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  return new KyselyStore(db, sqliteHooks(writerQueueFor(file)), options);
}
