/**
 * One conformance suite for every Store implementation, run against SQLite
 * (a temp file per test) and PostgreSQL (a fresh database per test in a
 * throwaway cluster), plus what is specific to each backend.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { verifyAuditChain } from '../../src/store/audit_chain.js';
import { KyselyStore, type StoreOptions } from '../../src/store/kysely_store.js';
import { openStore } from '../../src/store/open_store.js';
import { openPostgresStore } from '../../src/store/postgres_store.js';
import type { Database } from '../../src/store/schema.js';
import { openSqliteStore } from '../../src/store/sqlite_store.js';
import type { ApiTokenRecord, AuditEntry, AuditInput, CaRecord, CertificateQuery, CertificateRecord, Store } from '../../src/store/store.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

// --- fixtures ---

const T0 = Date.parse('2031-02-03T04:05:06.789Z');
const at = (offsetMs: number) => new Date(T0 + offsetMs);
const DAY = 86_400_000;
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i);

function caRecord(name: string, over: Partial<CaRecord> = {}): CaRecord {
  return { name, kind: 'root', subject: `CN=${name}`, certDer: Uint8Array.of(0x30, 0x03, 0x02, 0x01, name.length), notBefore: at(0), notAfter: at(3650 * DAY), createdAt: at(1), ...over };
}

function certRecord(serial: string, over: Partial<CertificateRecord> = {}): CertificateRecord {
  return {
    serial,
    issuerCa: 'root',
    profile: 'device',
    subject: `CN=device-${serial}`,
    sans: [`dns:${serial}.example`],
    notBefore: at(0),
    notAfter: at(365 * DAY),
    spkiSha256: 'ab'.repeat(32),
    der: Uint8Array.of(0x30, 0x00, serial.length),
    status: 'good',
    createdAt: at(2),
    requester: 'cli:test',
    ...over,
  };
}

function tokenRecord(id: string, over: Partial<ApiTokenRecord> = {}): ApiTokenRecord {
  return { id, name: `token-${id}`, role: 'ra-officer', tokenHash: `${id}`.padEnd(64, '0'), createdAt: at(5), ...over };
}

const audit = (action: string, target?: string, details?: Record<string, unknown>): AuditInput => ({ actor: 'cli:test', action, target, details });

/** serial n as a fixed-width lowercase hex string, so numeric and text order agree. */
const serialOf = (n: number) => n.toString(16).padStart(32, '0');

async function expectProblem(p: Promise<unknown>, code: ProblemCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e, code), `expected ProblemError ${code}, got ${String(e)}`);
    return true;
  });
}

/** The whole log, page by page. */
async function readAuditLog(store: Store): Promise<AuditEntry[]> {
  const all: AuditEntry[] = [];
  for (;;) {
    const page = await store.listAudit({ afterSeq: all.at(-1)?.seq ?? 0, limit: 1000 });
    if (page.length === 0) return all;
    all.push(...page);
  }
}

function rawDb(store: Store): Kysely<Database> {
  assert.ok(store instanceof KyselyStore);
  return store.db;
}

async function withRoot(store: Store): Promise<void> {
  await store.insertCa(caRecord('root'), audit('ca.create', 'root'));
}

type Open = (options?: StoreOptions) => Promise<Store>;

// --- the suite every backend passes ---

function conformance(name: string, open: Open): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('schema', () => {
      it('migrate() again, even twice at once, is harmless', async () => {
        await withRoot(store);
        await store.migrate();
        await Promise.all([store.migrate(), store.migrate()]);
        assert.equal((await store.listCas()).length, 1);
        assert.equal((await readAuditLog(store)).length, 1);
        assert.equal(store.kind, name);
      });
    });

    describe('certificate authorities', () => {
      const cases: [string, CaRecord][] = [
        ['ok root with no optional fields', caRecord('root')],
        ['ok issuing CA with parent and key', caRecord('issuing-1', { kind: 'issuing', parentName: 'root', keyRef: 'soft:issuing-1', certDer: ALL_BYTES })],
      ];
      for (const [title, ca] of cases) {
        it(`insertCa ${title} round-trips`, async () => {
          if (ca.parentName) await withRoot(store);
          await store.insertCa(ca, audit('ca.create', ca.name));
          assert.deepEqual(await store.getCa(ca.name), ca);
          assert.deepEqual((await store.listCas()).find((c) => c.name === ca.name), ca);
        });
      }

      it('getCa of an unknown name is undefined; listCas is sorted by name', async () => {
        assert.equal(await store.getCa('nope'), undefined);
        for (const n of ['zeta', 'alpha', 'mid-1']) await store.insertCa(caRecord(n), audit('ca.create', n));
        assert.deepEqual((await store.listCas()).map((c) => c.name), ['alpha', 'mid-1', 'zeta']);
      });

      const failures: [string, CaRecord, ProblemCode][] = [
        ['fail-duplicate name', caRecord('root', { subject: 'CN=other' }), 'already_exists'],
        ['fail-unknown parent', caRecord('orphan', { kind: 'issuing', parentName: 'missing' }), 'not_found'],
      ];
      for (const [title, ca, code] of failures) {
        it(`insertCa ${title} → ${code}, and writes nothing`, async () => {
          await withRoot(store);
          await expectProblem(store.insertCa(ca, audit('ca.create', ca.name)), code);
          assert.deepEqual(await store.listCas(), [caRecord('root')]);
          assert.equal((await readAuditLog(store)).length, 1);
        });
      }

      it('setCaKeyRef sets and clears the key reference, audited', async () => {
        await withRoot(store);
        await store.setCaKeyRef('root', 'pkcs11:token=ca;object=root', audit('ca.key.online', 'root'));
        assert.equal((await store.getCa('root'))?.keyRef, 'pkcs11:token=ca;object=root');
        await store.setCaKeyRef('root', undefined, audit('ca.key.offline', 'root'));
        const ca = await store.getCa('root');
        assert.ok(ca && !('keyRef' in ca), 'an offline key leaves no keyRef member');
        assert.deepEqual((await readAuditLog(store)).map((e) => e.action), ['ca.create', 'ca.key.online', 'ca.key.offline']);
      });

      it('setCaKeyRef fail-unknown CA → not_found, and writes no audit entry', async () => {
        await expectProblem(store.setCaKeyRef('nope', 'x', audit('ca.key.online', 'nope')), 'not_found');
        assert.equal((await readAuditLog(store)).length, 0);
      });
    });

    describe('certificates', () => {
      beforeEach(async () => {
        await withRoot(store);
      });

      const roundTrips: [string, CertificateRecord][] = [
        ['ok good certificate', certRecord('0a1b')],
        ['ok no SANs, binary DER with every byte value', certRecord('0a1c', { sans: [], der: ALL_BYTES })],
        ['ok unicode subject and SANs', certRecord('0a1d', { subject: 'CN=Gerät "7", O=Müller', sans: ['dns:a.example', 'uri:urn:x:ü', 'ip:2001:db8::1'] })],
        ['ok inserted revoked with invalidity date', certRecord('0a1e', { status: 'revoked', revocation: { revokedAt: at(9), reason: 'keyCompromise', invalidityDate: at(7) } })],
      ];
      for (const [title, cert] of roundTrips) {
        it(`insertCertificate ${title} round-trips`, async () => {
          await store.insertCertificate(cert, audit('certificate.issue', cert.serial));
          assert.deepEqual(await store.getCertificate(cert.serial), cert);
        });
      }

      it('getCertificate of an unknown serial is undefined', async () => {
        assert.equal(await store.getCertificate('ffff'), undefined);
      });

      it('insertCertificate fail-duplicate serial → already_exists; the first record and the log are untouched', async () => {
        await store.insertCertificate(certRecord('01'), audit('certificate.issue', '01'));
        const before = await readAuditLog(store);
        await expectProblem(store.insertCertificate(certRecord('01', { subject: 'CN=impostor' }), audit('certificate.issue', '01', { try: 2 })), 'already_exists');
        assert.deepEqual(await store.getCertificate('01'), certRecord('01'));
        assert.deepEqual(await readAuditLog(store), before);
      });

      it('insertCertificate fail-unknown issuer → not_found, and writes nothing', async () => {
        await expectProblem(store.insertCertificate(certRecord('02', { issuerCa: 'ghost' }), audit('certificate.issue', '02')), 'not_found');
        assert.equal(await store.getCertificate('02'), undefined);
        assert.equal((await readAuditLog(store)).length, 1);
      });

      describe('revokeCertificate', () => {
        const revocations = [
          { title: 'ok without invalidity date', revocation: { revokedAt: at(DAY), reason: 'superseded' as const } },
          { title: 'ok with invalidity date', revocation: { revokedAt: at(DAY), reason: 'keyCompromise' as const, invalidityDate: at(DAY - 3600_000) } },
        ];
        for (const { title, revocation } of revocations) {
          it(title, async () => {
            await store.insertCertificate(certRecord('10'), audit('certificate.issue', '10'));
            const revoked = await store.revokeCertificate('10', revocation, audit('certificate.revoke', '10', { reason: revocation.reason }));
            const expected = certRecord('10', { status: 'revoked', revocation });
            assert.deepEqual(revoked, expected);
            assert.deepEqual(await store.getCertificate('10'), expected);
            const last = (await readAuditLog(store)).at(-1);
            assert.equal(last?.action, 'certificate.revoke');
            assert.deepEqual(last?.details, { reason: revocation.reason });
          });
        }

        const failures: [string, () => Promise<void>, string, ProblemCode][] = [
          ['fail-unknown serial', async () => undefined, '99', 'not_found'],
          [
            'fail-revoked twice',
            async () => {
              await store.revokeCertificate('10', { revokedAt: at(1000), reason: 'cessationOfOperation' }, audit('certificate.revoke', '10'));
            },
            '10',
            'already_revoked',
          ],
        ];
        for (const [title, setUp, serial, code] of failures) {
          it(`${title} → ${code}, and nothing changes`, async () => {
            await store.insertCertificate(certRecord('10'), audit('certificate.issue', '10'));
            await setUp();
            const certsBefore = await store.listCertificates();
            const logBefore = await readAuditLog(store);
            await expectProblem(store.revokeCertificate(serial, { revokedAt: at(2000), reason: 'keyCompromise' }, audit('certificate.revoke', serial)), code);
            assert.deepEqual(await store.listCertificates(), certsBefore);
            assert.deepEqual(await readAuditLog(store), logBefore);
          });
        }

        it('concurrent revocations of one certificate: exactly one succeeds', async () => {
          await store.insertCertificate(certRecord('11'), audit('certificate.issue', '11'));
          const results = await Promise.allSettled(
            Array.from({ length: 5 }, (_, i) => store.revokeCertificate('11', { revokedAt: at(i), reason: 'unspecified' }, audit('certificate.revoke', '11'))),
          );
          assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
          for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'already_revoked'));
          assert.equal((await store.listAudit({ action: 'certificate.revoke' })).length, 1);
        });
      });

      describe('listCertificates', () => {
        beforeEach(async () => {
          await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
          const certs = [
            certRecord('a1', { issuerCa: 'root', profile: 'device', subject: 'CN=Pump 1, O=Acme' }),
            certRecord('a2', { issuerCa: 'issuing', profile: 'device', subject: 'CN=pump 2, O=ACME', spkiSha256: 'cd'.repeat(32) }),
            certRecord('a3', { issuerCa: 'issuing', profile: 'server', subject: 'CN=broker, O=Acme' }),
            certRecord('a4', { issuerCa: 'issuing', profile: 'device', subject: 'CN=valve_100%, O=Other' }),
            certRecord('a5', { issuerCa: 'root', profile: 'server', subject: 'CN=valve 1000, O=Other' }),
          ];
          for (const c of certs) await store.insertCertificate(c, audit('certificate.issue', c.serial));
          await store.revokeCertificate('a2', { revokedAt: at(5), reason: 'keyCompromise' }, audit('certificate.revoke', 'a2'));
        });

        const filters: [string, CertificateQuery, string[]][] = [
          ['ok no filter: all, sorted by serial', {}, ['a1', 'a2', 'a3', 'a4', 'a5']],
          ['ok issuerCa', { issuerCa: 'issuing' }, ['a2', 'a3', 'a4']],
          ['ok status good', { status: 'good' }, ['a1', 'a3', 'a4', 'a5']],
          ['ok status revoked', { status: 'revoked' }, ['a2']],
          ['ok profile', { profile: 'server' }, ['a3', 'a5']],
          ['ok subjectContains is case-insensitive', { subjectContains: 'PUMP' }, ['a1', 'a2']],
          ['ok subjectContains treats % and _ literally', { subjectContains: 'valve_100%' }, ['a4']],
          ['ok spkiSha256', { spkiSha256: 'cd'.repeat(32) }, ['a2']],
          ['ok combined issuerCa + status + profile', { issuerCa: 'issuing', status: 'good', profile: 'device' }, ['a4']],
          ['ok afterSerial', { afterSerial: 'a3' }, ['a4', 'a5']],
          ['ok limit', { limit: 2 }, ['a1', 'a2']],
          ['ok no match', { issuerCa: 'nope' }, []],
        ];
        for (const [title, q, serials] of filters) {
          it(title, async () => {
            assert.deepEqual((await store.listCertificates(q)).map((c) => c.serial), serials);
          });
        }

        it('keyset paging with afterSerial + limit visits every certificate once', async () => {
          for (let i = 0; i < 23; i++) await store.insertCertificate(certRecord(`b${i.toString().padStart(2, '0')}`), audit('certificate.issue'));
          const seen: string[] = [];
          for (let page = await store.listCertificates({ limit: 7 }); page.length > 0; page = await store.listCertificates({ limit: 7, afterSerial: seen.at(-1) })) {
            assert.ok(page.length <= 7);
            seen.push(...page.map((c) => c.serial));
          }
          assert.equal(seen.length, 28);
          assert.deepEqual(seen, [...seen].sort());
          assert.equal(new Set(seen).size, seen.length);
        });

        for (const limit of [0, -1, 2.5]) {
          it(`fail-limit ${limit} → bad_request`, async () => {
            await expectProblem(store.listCertificates({ limit }), 'bad_request');
          });
        }
      });

      it('listCertificates returns 100 by default and caps limit at 1000', async () => {
        await Promise.all(Array.from({ length: 1005 }, (_, i) => store.insertCertificate(certRecord(serialOf(i)), audit('certificate.issue'))));
        assert.equal((await store.listCertificates()).length, 100);
        assert.equal((await store.listCertificates({ limit: 5000 })).length, 1000);
        const rest = await store.listCertificates({ limit: 5000, afterSerial: serialOf(999) });
        assert.deepEqual(rest.map((c) => c.serial), [1000, 1001, 1002, 1003, 1004].map(serialOf));
      });

      describe('listExpiring', () => {
        beforeEach(async () => {
          const certs = [
            certRecord('e1', { notAfter: at(30 * DAY) }),
            certRecord('e2', { notAfter: at(10 * DAY) }),
            certRecord('e3', { notAfter: at(20 * DAY) }),
            certRecord('e4', { notAfter: at(5 * DAY) }),
            certRecord('e5', { notAfter: at(90 * DAY) }),
            certRecord('e6', { notAfter: at(10 * DAY) }),
          ];
          for (const c of certs) await store.insertCertificate(c, audit('certificate.issue', c.serial));
          await store.revokeCertificate('e4', { revokedAt: at(1), reason: 'superseded' }, audit('certificate.revoke', 'e4'));
        });

        const cases: [string, Date, number | undefined, string[]][] = [
          ['ok soonest first, revoked excluded, ties by serial', at(31 * DAY), undefined, ['e2', 'e6', 'e3', 'e1']],
          ['ok `before` is exclusive', at(20 * DAY), undefined, ['e2', 'e6']],
          ['ok limit', at(365 * DAY), 2, ['e2', 'e6']],
          ['ok none due', at(DAY), undefined, []],
        ];
        for (const [title, before, limit, serials] of cases) {
          it(title, async () => {
            assert.deepEqual((await store.listExpiring(before, limit)).map((c) => c.serial), serials);
          });
        }
      });
    });

    describe('API tokens', () => {
      it('ok insert, find by hash, list, revoke', async () => {
        const a = tokenRecord('t1', { role: 'admin', expiresAt: at(DAY) });
        const b = tokenRecord('t2', { createdAt: at(6) });
        await store.insertToken(a, audit('token.create', 't1'));
        await store.insertToken(b, audit('token.create', 't2'));
        assert.deepEqual(await store.findTokenByHash(a.tokenHash), a);
        assert.equal(await store.findTokenByHash('f'.repeat(64)), undefined);
        assert.deepEqual(await store.listTokens(), [a, b]);
        await store.revokeToken('t1', at(100), audit('token.revoke', 't1'));
        assert.deepEqual(await store.findTokenByHash(a.tokenHash), { ...a, revokedAt: at(100) });
        assert.deepEqual((await readAuditLog(store)).map((e) => [e.action, e.target]), [
          ['token.create', 't1'],
          ['token.create', 't2'],
          ['token.revoke', 't1'],
        ]);
      });

      const insertFailures: [string, ApiTokenRecord, ProblemCode][] = [
        ['fail-duplicate id', tokenRecord('t1', { tokenHash: 'e'.repeat(64) }), 'already_exists'],
        ['fail-duplicate hash', tokenRecord('t9', { tokenHash: tokenRecord('t1').tokenHash }), 'already_exists'],
        ['fail-unknown role', tokenRecord('t8', { role: 'root' as ApiTokenRecord['role'] }), 'bad_request'],
      ];
      for (const [title, token, code] of insertFailures) {
        it(`insertToken ${title} → ${code}, and writes nothing`, async () => {
          await store.insertToken(tokenRecord('t1'), audit('token.create', 't1'));
          await expectProblem(store.insertToken(token, audit('token.create', token.id)), code);
          assert.deepEqual(await store.listTokens(), [tokenRecord('t1')]);
          assert.equal((await readAuditLog(store)).length, 1);
        });
      }

      const revokeFailures: [string, string, ProblemCode][] = [
        ['fail-unknown id', 'nope', 'not_found'],
        ['fail-revoked twice', 't1', 'already_revoked'],
      ];
      for (const [title, id, code] of revokeFailures) {
        it(`revokeToken ${title} → ${code}, and nothing changes`, async () => {
          await store.insertToken(tokenRecord('t1'), audit('token.create', 't1'));
          await store.revokeToken('t1', at(50), audit('token.revoke', 't1'));
          await expectProblem(store.revokeToken(id, at(60), audit('token.revoke', id)), code);
          assert.deepEqual(await store.listTokens(), [tokenRecord('t1', { revokedAt: at(50) })]);
          assert.equal((await readAuditLog(store)).length, 2);
        });
      }
    });

    describe('audit log', () => {
      it('seq starts at 1 and increments; entries chain and match what listAudit returns', async () => {
        const clock = new FakeClock(at(0));
        const s = await open({ clock });
        try {
          const appended: AuditEntry[] = [];
          appended.push(await s.appendAudit({ actor: 'system', action: 'server.start' }));
          clock.advance(1);
          appended.push(await s.appendAudit({ actor: 'token:ops', action: 'device.register', target: 'dev-1', details: { nested: { b: [1, 'x', null], a: true }, n: 1.5 } }));
          clock.advance(1);
          appended.push(await s.appendAudit({ actor: 'cli:root', action: 'backup.create', details: { dropped: undefined, kept: 0 } }));
          assert.deepEqual(appended.map((e) => e.seq), [1, 2, 3]);
          assert.deepEqual(appended.map((e) => e.at), [at(0), at(1), at(2)]);
          assert.equal(appended[0].prevHash, '0'.repeat(64));
          assert.equal(appended[1].prevHash, appended[0].hash);
          assert.ok(!('target' in appended[0]), 'no target leaves no target member');
          assert.deepEqual(appended[0].details, {});
          assert.deepEqual(appended[2].details, { kept: 0 });
          assert.deepEqual(await readAuditLog(s), appended);
          assert.deepEqual(verifyAuditChain(await readAuditLog(s)), { ok: true, entries: 3 });
        } finally {
          await s.close();
        }
      });

      it('every mutating method writes exactly one entry with its action and target', async () => {
        const steps: [string, () => Promise<unknown>][] = [
          ['ca.create', () => store.insertCa(caRecord('root'), audit('ca.create', 'root'))],
          ['ca.key', () => store.setCaKeyRef('root', 'k', audit('ca.key', 'root'))],
          ['certificate.issue', () => store.insertCertificate(certRecord('c1'), audit('certificate.issue', 'c1'))],
          ['certificate.revoke', () => store.revokeCertificate('c1', { revokedAt: at(3), reason: 'unspecified' }, audit('certificate.revoke', 'c1'))],
          ['token.create', () => store.insertToken(tokenRecord('t1'), audit('token.create', 't1'))],
          ['token.revoke', () => store.revokeToken('t1', at(4), audit('token.revoke', 't1'))],
          ['operator.note', () => store.appendAudit(audit('operator.note', 'x'))],
        ];
        for (const [, step] of steps) await step();
        const log = await readAuditLog(store);
        assert.deepEqual(log.map((e) => e.action), steps.map(([a]) => a));
        assert.deepEqual(log.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
        assert.ok(verifyAuditChain(log).ok);
      });

      it('listAudit filters by afterSeq, action, target and limit', async () => {
        for (let i = 1; i <= 6; i++) await store.appendAudit(audit(i % 2 ? 'odd' : 'even', `t${i % 3}`));
        const seqs = async (q: Parameters<Store['listAudit']>[0]) => (await store.listAudit(q)).map((e) => e.seq);
        assert.deepEqual(await seqs({}), [1, 2, 3, 4, 5, 6]);
        assert.deepEqual(await seqs({ afterSeq: 4 }), [5, 6]);
        assert.deepEqual(await seqs({ action: 'even' }), [2, 4, 6]);
        assert.deepEqual(await seqs({ target: 't0' }), [3, 6]);
        assert.deepEqual(await seqs({ action: 'odd', target: 't1', afterSeq: 1 }), [] as number[]);
        assert.deepEqual(await seqs({ limit: 2, afterSeq: 2 }), [3, 4]);
        await expectProblem(store.listAudit({ limit: 0 }), 'bad_request');
      });

      it('concurrent appends from many promises keep one valid chain', async () => {
        await withRoot(store);
        await Promise.all([
          ...Array.from({ length: 60 }, (_, i) => store.appendAudit(audit('test.parallel', String(i)))),
          ...Array.from({ length: 20 }, (_, i) => store.insertCertificate(certRecord(`p${i}`), audit('certificate.issue', `p${i}`))),
          // A failing write in the middle must not break the chain.
          expectProblem(store.insertCertificate(certRecord('p0'), audit('certificate.issue', 'p0')), 'already_exists'),
        ]);
        const log = await readAuditLog(store);
        assert.deepEqual(log.map((e) => e.seq), Array.from({ length: 81 }, (_, i) => i + 1));
        assert.deepEqual(verifyAuditChain(log), { ok: true, entries: 81 });
      });

      const tampering: [string, (db: Kysely<Database>) => Promise<unknown>, number][] = [
        ['edited actor', (db) => db.updateTable('audit_log').set({ actor: 'mallory' }).where('seq', '=', 2).execute(), 2],
        ['edited details', (db) => db.updateTable('audit_log').set({ details: '{"serial":"forged"}' }).where('seq', '=', 3).execute(), 3],
        ['edited time', (db) => db.updateTable('audit_log').set({ at: 0 }).where('seq', '=', 1).execute(), 1],
        ['deleted entry', (db) => db.deleteFrom('audit_log').where('seq', '=', 2).execute(), 3],
        ['rehashed entry without its successor', (db) => db.updateTable('audit_log').set({ hash: 'f'.repeat(64) }).where('seq', '=', 2).execute(), 2],
      ];
      for (const [title, tamper, brokenAt] of tampering) {
        it(`verifyAuditChain fails after a row is ${title}`, async () => {
          for (let i = 0; i < 4; i++) await store.appendAudit(audit('test.entry', String(i), { serial: `s${i}` }));
          assert.ok(verifyAuditChain(await readAuditLog(store)).ok);
          await tamper(rawDb(store));
          const check = verifyAuditChain(await readAuditLog(store));
          assert.equal(check.ok, false);
          assert.equal(check.brokenAt, brokenAt);
        });
      }
    });

    describe('atomicity: an audit entry that cannot be written rolls back the change', () => {
      // BigInt has no JSON form: the store rejects the entry after the change is made.
      const unwritable: AuditInput = { actor: 'cli:test', action: 'broken', details: { n: 1n } };
      const calls: [string, (s: Store) => Promise<unknown>][] = [
        ['insertCa', (s) => s.insertCa(caRecord('other'), unwritable)],
        ['setCaKeyRef', (s) => s.setCaKeyRef('root', 'k2', unwritable)],
        ['insertCertificate', (s) => s.insertCertificate(certRecord('r2'), unwritable)],
        ['revokeCertificate', (s) => s.revokeCertificate('r1', { revokedAt: at(9), reason: 'superseded' }, unwritable)],
        ['insertToken', (s) => s.insertToken(tokenRecord('t2'), unwritable)],
        ['revokeToken', (s) => s.revokeToken('t1', at(9), unwritable)],
      ];
      for (const [method, call] of calls) {
        it(`fail-${method} → bad_request, and nothing changes`, async () => {
          await withRoot(store);
          await store.insertCertificate(certRecord('r1'), audit('certificate.issue', 'r1'));
          await store.insertToken(tokenRecord('t1'), audit('token.create', 't1'));
          const snapshot = async () => [await store.listCas(), await store.listCertificates(), await store.listTokens(), await readAuditLog(store)];
          const before = await snapshot();
          await expectProblem(call(store), 'bad_request');
          assert.deepEqual(await snapshot(), before);
        });
      }
    });

    describe('values', () => {
      const dates: [string, Date][] = [
        ['ok millisecond precision', new Date('2031-02-03T04:05:06.789Z')],
        ['ok last millisecond of 9999', new Date('9999-12-31T23:59:59.999Z')],
        ['ok before 1970', new Date('1950-06-01T00:00:00.001Z')],
      ];
      for (const [title, d] of dates) {
        it(`Dates round-trip exactly: ${title}`, async () => {
          await store.insertCa(caRecord('root', { notBefore: d, notAfter: d, createdAt: d }), audit('ca.create'));
          const ca = await store.getCa('root');
          assert.ok(ca);
          for (const v of [ca.notBefore, ca.notAfter, ca.createdAt]) assert.equal(v.getTime(), d.getTime());
        });
      }

      it('Uint8Array views into larger buffers store only their own bytes and come back as Uint8Array', async () => {
        const backing = Uint8Array.from({ length: 64 }, (_, i) => 255 - i);
        const view = backing.subarray(10, 20);
        await store.insertCa(caRecord('root', { certDer: view }), audit('ca.create'));
        const ca = await store.getCa('root');
        assert.ok(ca);
        assert.equal(Object.getPrototypeOf(ca.certDer), Uint8Array.prototype);
        assert.deepEqual(ca.certDer, Uint8Array.from(view));
      });

      it('fail-invalid Date → bad_request, and writes nothing', async () => {
        await expectProblem(store.insertCa(caRecord('root', { notAfter: new Date(NaN) }), audit('ca.create')), 'bad_request');
        assert.equal((await readAuditLog(store)).length, 0);
      });
    });
  });
}

// --- SQLite ---

describe('SQLite store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-store-'));
  let n = 0;
  const freshPath = () => join(dir, `store-${++n}.db`);
  after(() => rmSync(dir, { recursive: true, force: true }));

  conformance('sqlite', (options) => openStore(freshPath(), options));

  it('sets WAL, synchronous=FULL, busy_timeout and foreign keys', async () => {
    const store = await openStore(freshPath());
    try {
      const pragma = async (name: string) => Object.values((await sql.raw(`pragma ${name}`).execute(rawDb(store))).rows[0] as object)[0];
      assert.equal(await pragma('journal_mode'), 'wal');
      assert.equal(await pragma('synchronous'), 2);
      assert.equal(await pragma('busy_timeout'), 10000);
      assert.equal(await pragma('foreign_keys'), 1);
    } finally {
      await store.close();
    }
  });

  it('openStore accepts a path, sqlite:PATH and :memory:', async () => {
    const path = freshPath();
    const a = await openStore(path);
    await a.appendAudit(audit('via.path'));
    await a.close();
    assert.ok(existsSync(path));
    const b = await openStore(`sqlite:${path}`);
    assert.deepEqual((await b.listAudit()).map((e) => e.action), ['via.path']);
    await b.close();
    const m = await openStore(':memory:');
    assert.equal(m.kind, 'sqlite');
    await withRoot(m);
    assert.equal((await m.listCas()).length, 1);
    await m.close();
  });

  it('two Store instances on one file (two processes) both write without SQLITE_BUSY', async () => {
    const path = freshPath();
    // Opened and migrated at the same time, as a CLI started with the server would be.
    const [a, b] = await Promise.all([openStore(path), openStore(path)]);
    try {
      await withRoot(a);
      await Promise.all([
        ...Array.from({ length: 50 }, (_, i) => a.appendAudit(audit('from.a', String(i)))),
        ...Array.from({ length: 50 }, (_, i) => b.appendAudit(audit('from.b', String(i)))),
        ...Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).insertCertificate(certRecord(`d${i}`), audit('certificate.issue', `d${i}`))),
      ]);
      assert.equal((await a.listCertificates()).length, 20);
      assert.equal((await b.listCertificates()).length, 20);
      const log = await readAuditLog(b);
      assert.deepEqual(verifyAuditChain(log), { ok: true, entries: 121 });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('another OS process appending at the same time keeps one valid chain', async () => {
    const path = freshPath();
    const store = await openSqliteStore(path);
    await store.migrate();
    const moduleUrl = new URL('../../src/store/open_store.ts', import.meta.url).href;
    const childCode = `
      const { openStore } = await import(${JSON.stringify(moduleUrl)});
      const store = await openStore(${JSON.stringify(path)});
      process.stdout.write('ready\\n');
      for (let i = 0; i < 150; i++) await store.appendAudit({ actor: 'child', action: 'from.child', target: String(i) });
      await store.close();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', childCode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
        child.on('exit', () => reject(new Error(`child exited before it was ready: ${stderr}`)));
      });
      for (let i = 0; i < 150; i++) await store.appendAudit(audit('from.parent', String(i)));
      assert.equal(await exited, 0, stderr);
      const log = await readAuditLog(store);
      assert.deepEqual(verifyAuditChain(log), { ok: true, entries: 300 });
      assert.equal((await store.listAudit({ action: 'from.child', limit: 1000 })).length, 150);
    } finally {
      child.kill();
      await store.close();
    }
  });
});

// --- PostgreSQL ---

describe('PostgreSQL store', () => {
  // Started now, so the cluster boots while the SQLite tests run.
  const starting = startTestPostgres();
  starting.catch(() => undefined); // reported by before(), not as an unhandled rejection
  let server: TestPostgres;
  before(async () => {
    server = await starting;
  });
  after(async () => {
    await (await starting.catch(() => undefined))?.stop();
  });

  conformance('postgres', async (options) => openStore(await server.createTestSchema(), options));

  it('openStore accepts postgresql:// and a database of its own, and int8 comes back as number without touching pg\'s global parsers', async () => {
    const url = (await server.createTestDatabase()).replace(/^postgres:/, 'postgresql:');
    const store = await openStore(url);
    try {
      assert.equal(store.kind, 'postgres');
      const e = await store.appendAudit(audit('x'));
      assert.equal(typeof (await store.listAudit())[0].seq, 'number');
      assert.equal(e.seq, 1);
      assert.equal(pg.types.getTypeParser(pg.types.builtins.INT8)('12'), '12');
    } finally {
      await store.close();
    }
  });

  it('two stores (two fleetpki nodes) appending at once keep one valid chain', async () => {
    const url = await server.createTestSchema();
    const [a, b] = await Promise.all([openStore(url), openStore(url)]);
    try {
      await Promise.all([
        ...Array.from({ length: 60 }, (_, i) => a.appendAudit(audit('from.a', String(i)))),
        ...Array.from({ length: 60 }, (_, i) => b.appendAudit(audit('from.b', String(i)))),
      ]);
      assert.deepEqual(verifyAuditChain(await readAuditLog(a)), { ok: true, entries: 120 });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('fail-unreachable server → config_error', async () => {
    await expectProblem(openPostgresStore('postgres://nobody:x@127.0.0.1:1/none'), 'config_error');
  });
});
