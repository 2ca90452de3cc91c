/**
 * The store at fleet scale (issue 11): a SQLite store holding millions of
 * certificates, written straight into the file by one INSERT ... SELECT
 * (indexes dropped for the fill and built afterwards, as a bulk import
 * would), then read through the Store as the server reads it:
 *   - getCertificate by serial, random serials: median and 99th percentile;
 *   - listExpiring(now + 30 days), the first page (1,000, the most a page
 *     holds), and COUNT(*) of every good certificate expiring by then, the
 *     whole set the renewal reminders walk.
 * 10 million rows take minutes to write: `FLEETPKI_BENCH_STORE_ROWS=10000000
 * npm run bench -- store` runs that size; by default 1 million (100,000 with
 * --quick).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { initDataDir, storeSpec } from '../src/server/context.js';
import type { KyselyStore } from '../src/store/kysely_store.js';
import { openSqliteStore } from '../src/store/sqlite_store.js';
import { result, type Result } from './lib/report.js';

const DAY = 86_400_000;
const LOOKUPS = 2000;

/** `n` certificates of `ca`, expiring 1 to 365 days from `now`, 1 % revoked; about 350 bytes a row with a 200-byte DER. */
function fill(file: string, ca: string, n: number, now: number): void {
  const db = new SQLite(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = off');
    db.pragma('cache_size = -262144');
    const indexes = db.prepare(`select name, sql from sqlite_master where type = 'index' and tbl_name = 'certificates' and sql is not null`).all() as Array<{ name: string; sql: string }>;
    for (const i of indexes) db.exec(`drop index "${i.name}"`);
    db.prepare(
      `with recursive k(i) as (select 0 union all select i + 1 from k where i < @n - 1)
       insert into certificates (serial, issuer_ca, profile, subject, sans, not_before, not_after, spki_sha256, der, status,
                                 revoked_at, revocation_reason, created_at, requester, crl_shard)
       select printf('4%06x%027x', (i * 2654435761) % 16777216, i), @ca, 'device-tls', 'CN=dev-' || i, '["dns:dev-' || i || '.fleet.example"]',
              @now - 300000, @now + @day + ((i * 2654435761) % 31449600) * 1000, printf('%064x', i * 40503), zeroblob(200),
              case when i % 100 = 0 then 'revoked' else 'good' end,
              case when i % 100 = 0 then @now - i end, case when i % 100 = 0 then 'superseded' end, @now - 300000, 'bench', 0
       from k`,
    ).run({ n, ca, now, day: DAY });
    for (const i of indexes) db.exec(i.sql);
    db.exec('analyze');
  } finally {
    db.close();
  }
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

export async function storeScenarios(quick: boolean): Promise<Result[]> {
  const n = quick ? 100_000 : Number(process.env.FLEETPKI_BENCH_STORE_ROWS ?? 1_000_000);
  const label = n >= 1_000_000 ? `${n / 1_000_000}m` : `${n / 1000}k`;
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-store-'));
  try {
    const { ctx } = await initDataDir({ dir: join(work, 'data'), org: 'Bench', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825 });
    const file = storeSpec(join(work, 'data'), ctx.config);
    const ca = ctx.config.defaultCa;
    await ctx.close();
    const now = Date.now();
    const t0 = performance.now();
    fill(file, ca, n, now);
    const fillS = (performance.now() - t0) / 1000;
    const store = await openSqliteStore(file);
    try {
      const load = loadavg()[0];
      // Serials that exist, spread over the whole table; read once to warm the statement cache.
      const serials = Array.from({ length: LOOKUPS }, (_, j) => {
        const i = Math.floor(((j + 0.5) / LOOKUPS) * n);
        // SQLite multiplied in 64-bit integers; a JS number loses digits above 2^53 (i over 3.4 million).
        return `4${Number((BigInt(i) * 2654435761n) % 16777216n).toString(16).padStart(6, '0')}${i.toString(16).padStart(27, '0')}`;
      });
      if (!(await store.getCertificate(serials[0]))) throw new Error('store bench: a filled serial is not found');
      const lookups: number[] = [];
      for (const s of serials) {
        const t = performance.now();
        const c = await store.getCertificate(s);
        lookups.push(performance.now() - t);
        if (!c) throw new Error(`store bench: serial ${s} not found`);
      }
      const before = new Date(now + 30 * DAY);
      const pages: number[] = [];
      let page = 0;
      for (let k = 0; k < 5; k++) {
        const t = performance.now();
        page = (await store.listExpiring(before, 1000)).length;
        pages.push(performance.now() - t);
      }
      const counts: number[] = [];
      let expiring = 0;
      for (let k = 0; k < 3; k++) {
        const t = performance.now();
        const r = await sql<{ n: number }>`select count(*) as n from certificates where status = 'good' and not_after < ${before.getTime()}`.execute((store as KyselyStore).db);
        counts.push(performance.now() - t);
        expiring = Number(r.rows[0].n);
      }
      const size = `${(statSync(file).size / 2 ** 30).toFixed(1)} GiB`;
      const note = `${n.toLocaleString('en')} rows (${size}, filled in ${fillS.toFixed(0)} s); 1-min load average ${load.toFixed(2)}`;
      return [
        result(`store-${label}-get-by-serial-median`, pct(lookups, 0.5) * 1000, 'µs', 'lower', 'target < 1 ms', 1000, `${LOOKUPS} serials spread over the table, through Store.getCertificate; ${note}`),
        result(`store-${label}-get-by-serial-p99`, pct(lookups, 0.99) * 1000, 'µs', 'lower', 'target < 1 ms', 1000),
        result(`store-${label}-expiring-30d-first-page`, Math.min(...pages), 'ms', 'lower', 'target < 1 s', 1000, `listExpiring(now + 30 days, 1000): ${page} rows`),
        result(`store-${label}-expiring-30d-count`, Math.min(...counts), 'ms', 'lower', 'target < 1 s', 1000, `all ${expiring.toLocaleString('en')} good certificates expiring within 30 days, counted over the index of good certificates by notAfter (migration 11)`),
      ];
    } finally {
      await store.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
