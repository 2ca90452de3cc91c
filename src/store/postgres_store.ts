/**
 * PostgreSQL, for several stateless fleetpki nodes sharing one database.
 */
import pg from 'pg';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { ProblemError } from '../errors.js';
import { KyselyStore, type DialectHooks, type StoreLock, type StoreOptions } from './kysely_store.js';
import type { Database } from './schema.js';
import type { Store } from './store.js';

/**
 * Advisory lock keys taken by the store ("fl" + n). Other modules that take
 * advisory locks on the same database (CRL publication) must use other keys.
 */
export const PG_ADVISORY_LOCKS: Readonly<Record<StoreLock, number>> = {
  audit: 0x666c0001,
  migrate: 0x666c0002,
};

/** int8 as a JS number, for this pool only: every int8 the store keeps (ms times, seq) is far below 2^53. */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new ProblemError('internal', `int8 value ${text} does not fit a JS number`);
  return n;
}

const int8AsNumber: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === pg.types.builtins.INT8 && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

const postgresHooks: DialectHooks = {
  kind: 'postgres',
  writeTransaction: (db, fn) => db.transaction().execute(fn),
  lock: async (trx, lock) => {
    await sql`select pg_advisory_xact_lock(${sql.lit(PG_ADVISORY_LOCKS[lock])})`.execute(trx);
  },
};

export interface PostgresStoreOptions extends StoreOptions {
  /** Connections in the pool (default 10). */
  poolSize?: number;
}

/** Connects (failing fast with config_error when it cannot) but does not migrate; openStore does. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 10, types: int8AsNumber });
  // An idle client whose server went away emits 'error'; unhandled, it would
  // kill the process. The pool drops that client and the next query reconnects.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (e) {
    await db.destroy();
    throw new ProblemError('config_error', `cannot connect to PostgreSQL: ${(e as Error).message}`);
  }
  return new KyselyStore(db, postgresHooks, options);
}
