/**
 * Group commit, the mechanism both the certificate inserts and the grouped
 * writes of kysely_store.ts use: what is handed in while a commit runs (or
 * in the same turn of the event loop) waits and is committed with the rest,
 * so many writers share one durable commit (one fsync on SQLite with
 * synchronous=FULL). Batches commit one at a time, in order.
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from './schema.js';

export class CommitQueue<T> {
  private readonly queue: T[] = [];
  private flushing = false;

  /** `commit` settles every member of its batch and never throws. */
  constructor(
    private readonly maxBatch: number,
    private readonly commit: (batch: T[]) => Promise<void>,
  ) {}

  push(item: T): void {
    this.queue.push(item);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length) await this.commit(this.queue.splice(0, this.maxBatch));
    } finally {
      this.flushing = false;
    }
  }
}

/**
 * Runs `fn` for each item inside `trx`, each under a savepoint of its own:
 * one that throws is rolled back alone and the others stay. Returns what
 * each failed one threw.
 */
export async function eachUnderSavepoint<T>(trx: Kysely<Database>, items: readonly T[], fn: (item: T) => Promise<void>): Promise<Map<T, unknown>> {
  const failed = new Map<T, unknown>();
  for (const it of items) {
    await sql`savepoint group_member`.execute(trx);
    try {
      await fn(it);
    } catch (e) {
      await sql`rollback to savepoint group_member`.execute(trx);
      failed.set(it, e);
    }
    await sql`release savepoint group_member`.execute(trx);
  }
  return failed;
}
