/**
 * `fleetpki audit verify` against tampering done directly in the SQLite
 * file, with the sqlite3 CLI (and better-sqlite3 where the forger
 * recomputes hashes): an edited entry, an edited entry whose own hash was
 * recomputed, an inserted entry, a deleted entry, the end cut off, and a
 * whole rewrite after a deletion. The last two only an anchor (`audit
 * head`, kept outside the database) can catch; the test shows both sides.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { auditEntryHash, GENESIS_HASH } from '../../src/store/audit_chain.js';
import type { AuditLogTable } from '../../src/store/schema.js';
import { fleetpki, makeDataDir } from '../helpers/data_dir.js';

let base = '';
let work = '';
let entries = 0;

/** A copy of the data directory to tamper with. */
function copy(): string {
  const d = mkdtempSync(join(work, 'case-'));
  cpSync(base, d, { recursive: true });
  return d;
}

function sqlite(dir: string, sqlText: string): void {
  const r = spawnSync('sqlite3', [join(dir, 'fleetpki.db'), sqlText], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function verify(dir: string, ...extra: string[]): { status: number | null; out: { ok: boolean; entries: number; brokenAt?: number; reason?: string } } {
  const r = fleetpki(['audit', 'verify', '--json', '--dir', dir, ...extra]);
  return { status: r.status, out: JSON.parse(r.stdout) };
}

type Row = AuditLogTable;

/** Recomputes every hash from `fromSeq` on, as a forger with write access to the file would. */
function rehashFrom(db: Database.Database, fromSeq: number): void {
  const rows = db.prepare('select * from audit_log order by seq').all() as Row[];
  let prev = rows.find((r) => r.seq === fromSeq - 1)?.hash ?? GENESIS_HASH;
  const upd = db.prepare('update audit_log set prev_hash = ?, hash = ? where seq = ?');
  for (const r of rows.filter((x) => x.seq >= fromSeq)) {
    const hash = auditEntryHash(prev, { seq: r.seq, at: new Date(r.at), actor: r.actor, action: r.action, target: r.target ?? undefined, details: JSON.parse(r.details) });
    upd.run(prev, hash, r.seq);
    prev = hash;
  }
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'fleetpki-audit-verify-'));
  const d = await makeDataDir();
  for (let i = 0; i < 4; i++) await d.ctx.registry.register({ id: `dev-${i}`, profile: 'device-tls' }, 'cli:test');
  await d.ctx.close();
  base = join(work, 'base');
  cpSync(d.dir, base, { recursive: true });
  await d.cleanup();
  const r = verify(base);
  assert.equal(r.status, 0);
  assert.equal(r.out.ok, true);
  entries = r.out.entries;
  assert.ok(entries >= 8, `${entries} entries`);
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('audit verify catches tampering in the SQLite file', () => {
  it('fail-an entry edited with sqlite3 → broken at that entry (edited)', () => {
    const d = copy();
    sqlite(d, `update audit_log set details = '{"profile":"other"}' where seq = 5`);
    const r = verify(d);
    assert.equal(r.status, 1);
    assert.equal(r.out.brokenAt, 5);
    assert.match(r.out.reason!, /edited/);
    const text = fleetpki(['audit', 'verify', '--dir', d]);
    assert.equal(text.status, 1);
    assert.match(text.stdout, /AUDIT LOG BROKEN at entry 5/);
  });

  it('fail-an entry edited with its own hash recomputed → broken at the next entry (prevHash)', () => {
    const d = copy();
    const db = new Database(join(d, 'fleetpki.db'));
    const r5 = db.prepare('select * from audit_log where seq = 5').get() as Row;
    const forged = auditEntryHash(r5.prev_hash, { seq: 5, at: new Date(r5.at), actor: 'cli:mallory', action: r5.action, target: r5.target ?? undefined, details: JSON.parse(r5.details) });
    db.prepare("update audit_log set actor = 'cli:mallory', hash = ? where seq = 5").run(forged);
    db.close();
    const r = verify(d);
    assert.equal(r.status, 1);
    assert.equal(r.out.brokenAt, 6);
    assert.match(r.out.reason!, /prevHash/);
  });

  it('fail-an entry inserted in the middle (later ones renumbered, the new one chained to its predecessor) → broken after it', () => {
    const d = copy();
    const db = new Database(join(d, 'fleetpki.db'));
    db.exec('update audit_log set seq = seq + 1000000 where seq >= 5; update audit_log set seq = seq - 999999 where seq >= 1000000;');
    const prev = (db.prepare('select hash from audit_log where seq = 4').get() as { hash: string }).hash;
    const e = { seq: 5, at: new Date(), actor: 'cli:mallory', action: 'certificate.revoke', target: 'ab', details: {} };
    db.prepare('insert into audit_log (seq, at, actor, action, target, details, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?)').run(5, e.at.getTime(), e.actor, e.action, e.target, '{}', prev, auditEntryHash(prev, e));
    db.close();
    const r = verify(d);
    assert.equal(r.status, 1);
    assert.equal(r.out.brokenAt, 6);
    assert.equal(r.out.entries, 6);
  });

  it('fail-an entry deleted in the middle with sqlite3 → broken where the sequence skips', () => {
    const d = copy();
    sqlite(d, 'delete from audit_log where seq = 5');
    const r = verify(d);
    assert.equal(r.status, 1);
    assert.equal(r.out.brokenAt, 6);
    assert.match(r.out.reason!, /expected entry 5, found 6 \(an entry was deleted or inserted\)/);
  });

  it('fail-the last entries cut off: the chain alone cannot tell, the anchor from audit head can', () => {
    const anchor = fleetpki(['audit', 'head', '--dir', base]).stdout.trim();
    assert.match(anchor, new RegExp(`^${entries}:[0-9a-f]{64}$`));
    const d = copy();
    sqlite(d, `delete from audit_log where seq >= ${entries - 1}`);
    assert.equal(verify(d).status, 0, 'a shorter chain is still a chain');
    const r = verify(d, '--anchor', anchor);
    assert.equal(r.status, 1);
    assert.equal(r.out.brokenAt, entries);
    assert.match(r.out.reason!, /deleted from the end/);
    assert.equal(verify(base, '--anchor', anchor).status, 0, 'the untouched log matches its anchor');
  });

  it('fail-an entry deleted and everything after renumbered and rehashed: only the anchor catches the rewrite', () => {
    const anchor = fleetpki(['audit', 'head', '--dir', base]).stdout.trim();
    const d = copy();
    const db = new Database(join(d, 'fleetpki.db'));
    db.exec('delete from audit_log where seq = 5; update audit_log set seq = seq + 1000000 where seq > 5; update audit_log set seq = seq - 1000001 where seq >= 1000000;');
    rehashFrom(db, 5);
    db.close();
    assert.equal(verify(d).status, 0, 'a complete forgery is a valid chain');
    const r = verify(d, '--anchor', anchor);
    assert.equal(r.status, 1);
    assert.match(r.out.reason!, /deleted from the end|rewritten/);
  });

  it('fail-a malformed anchor → exit 2 with the reason', () => {
    const r = fleetpki(['audit', 'verify', '--dir', base, '--anchor', 'nonsense']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /SEQ:HASH/);
  });
});
