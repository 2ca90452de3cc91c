/**
 * One conformance suite for every Store implementation, run against SQLite
 * (a temp file per test) and PostgreSQL (a fresh database per test in a
 * throwaway cluster), plus what is specific to each backend.
 */
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import pg from 'pg';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { readAuditLog, verifyAuditChain } from '../../src/store/audit_chain.js';
import { KyselyStore, revokedPageQuery, type RevokedQuery, type StoreOptions } from '../../src/store/kysely_store.js';
import { MIGRATIONS, migrateToLatest } from '../../src/store/migrations.js';
import { openStore } from '../../src/store/open_store.js';
import { openPostgresStore } from '../../src/store/postgres_store.js';
import type { Database } from '../../src/store/schema.js';
import { openSqliteStore } from '../../src/store/sqlite_store.js';
import {
  DEVICE_STATES,
  type ApiTokenRecord,
  REVOCATION_REASONS,
  type AuditEntry,
  type AuditInput,
  type CaRecord,
  type CertificateQuery,
  type CertificateRecord,
  type CrlRecord,
  type DevicePatch,
  type DeviceQuery,
  type DeviceRecord,
  type EnrollmentCommit,
  type EnrollmentSecretRecord,
  type FirmwareSignerRecord,
  type OcspSignerRecord,
  type OrderRecord,
  type PendingEnrollmentRecord,
  type ReleasedHold,
  type RevocationReason,
  type RevokedEntry,
  type SealingKeyRecord,
  type CmpTransactionRecord,
  type Store,
  type TrustAnchorRecord,
} from '../../src/store/store.js';
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

const HOUR = 3_600_000;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function deviceRecord(id: string, over: Partial<DeviceRecord> = {}): DeviceRecord {
  return { id, profile: 'device', state: 'registered', sans: [], requireApproval: false, attributes: {}, createdAt: at(10), updatedAt: at(10), ...over };
}

function orderRecord(id: string, over: Partial<OrderRecord> = {}): OrderRecord {
  return { id, profile: 'device', quantity: 3, used: 0, createdAt: at(20), ...over };
}

/** The secret's hash is sha(deviceId) unless overridden. */
function secretRecord(deviceId: string, over: Partial<EnrollmentSecretRecord> = {}): EnrollmentSecretRecord {
  return { deviceId, secretHash: sha(deviceId), createdAt: at(30), expiresAt: at(DAY), ...over };
}

function anchorRecord(name: string, over: Partial<TrustAnchorRecord> = {}): TrustAnchorRecord {
  return { fingerprint: sha(`anchor-${name}`), purpose: 'manufacturer', subject: `CN=${name} Manufacturing CA`, der: Uint8Array.of(0x30, 0x01, name.length), addedAt: at(40), ...over };
}

function pendingRecord(id: string, deviceId: string, over: Partial<PendingEnrollmentRecord> = {}): PendingEnrollmentRecord {
  return { id, deviceId, spkiSha256: 'ab'.repeat(32), csrDer: Uint8Array.of(0x30, 0x02, id.length), status: 'pending', createdAt: at(50), ...over };
}

/** An enrollment of certificate `serial` for `deviceId` at T0 + 1 h, changing nothing else unless told. */
function enrollment(serial: string, deviceId: string, over: Partial<EnrollmentCommit> = {}): EnrollmentCommit {
  return { cert: { ...certRecord(serial), deviceId }, now: at(HOUR), ...over };
}

/** serial n as a fixed-width lowercase hex string, so numeric and text order agree. */
const serialOf = (n: number) => n.toString(16).padStart(32, '0');

/** The fields of a certificate revoked at `revokedAt` for `reason`. */
function revokedAs(reason: RevocationReason, revokedAt: Date, invalidityDate?: Date): Pick<CertificateRecord, 'status' | 'revocation'> {
  return { status: 'revoked', revocation: invalidityDate ? { revokedAt, reason, invalidityDate } : { revokedAt, reason } };
}
const onHold = (revokedAt: Date) => revokedAs('certificateHold', revokedAt);

/** CRL `number` of the root CA: a base of shard 0 unless told, issued `number` hours after T0. */
function crlRecord(number: number, over: Partial<CrlRecord> = {}): CrlRecord {
  return { ca: 'root', shard: 0, kind: 'base', number, thisUpdate: at(number * HOUR), nextUpdate: at(number * HOUR + DAY), entries: number * 10, der: Uint8Array.of(0x30, 0x03, 0x02, 0x01, number), ...over };
}

function firmwareSignerRecord(name: string, serial: string, over: Partial<FirmwareSignerRecord> = {}): FirmwareSignerRecord {
  return { name, ca: 'root', keyRef: `soft:${name}`, serial, certDer: ALL_BYTES, notAfter: at(1095 * DAY), createdAt: at(10), ...over };
}

function signerRecord(keyRef: string, over: Partial<OcspSignerRecord> = {}): OcspSignerRecord {
  return { ca: 'root', keyRef, certDer: Uint8Array.of(0x30, 0x02, keyRef.length, 0xff), notAfter: at(30 * DAY), createdAt: at(HOUR), ...over };
}

/** A CRL entry as listRevoked returns it for a certificate made with revokedAs(). */
function entryOf(serial: string, { revocation }: Pick<CertificateRecord, 'revocation'>): RevokedEntry {
  assert.ok(revocation);
  return { serial, ...revocation };
}

/** Every page of listRevoked, followed by afterSerial. */
async function allRevoked(store: Store, ca: string, q: { shard?: number; revokedSince?: Date; limit?: number } = {}): Promise<RevokedEntry[]> {
  const all: RevokedEntry[] = [];
  for (;;) {
    const page = await store.listRevoked(ca, { ...q, afterSerial: all.at(-1)?.serial });
    assert.ok(page.length <= (q.limit ?? 10_000));
    all.push(...page);
    if (page.length < (q.limit ?? 10_000)) return all;
  }
}

/**
 * `count` certificates of CA `ca` straight into the table, in statements of
 * 500 rows: serialOf(first + i), in shard `shard`, revoked at T0 + i ms for
 * keyCompromise unless `good`.
 */
async function insertCertificateRows(store: Store, ca: string, first: number, count: number, { shard = 0, good = false } = {}): Promise<void> {
  const db = rawDb(store);
  for (let i = 0; i < count; i += 500) {
    const rows = Array.from({ length: Math.min(500, count - i) }, (_, j) => {
      const n = first + i + j;
      return {
        serial: serialOf(n),
        issuer_ca: ca,
        profile: 'device',
        subject: `CN=bulk-${n}`,
        sans: '[]',
        not_before: T0,
        not_after: T0 + DAY,
        spki_sha256: 'ab'.repeat(32),
        der: Buffer.of(0x30, 0x00),
        status: good ? ('good' as const) : ('revoked' as const),
        revoked_at: good ? null : T0 + i + j,
        revocation_reason: good ? null : ('keyCompromise' as const),
        created_at: T0,
        requester: 'test',
        crl_shard: shard,
      };
    });
    await db.insertInto('certificates').values(rows).execute();
  }
}

/** Everything the revocation methods can change, to show that a failure changed nothing. */
async function revocationSnapshot(store: Store): Promise<unknown> {
  const cas = (await store.listCas()).map((c) => c.name);
  return {
    crls: await store.listLatestCrls(),
    signers: await Promise.all(cas.map((ca) => store.getOcspSigner(ca))),
    revoked: await Promise.all(cas.map((ca) => allRevoked(store, ca))),
    released: await Promise.all(cas.map((ca) => store.listReleasedHolds(ca, new Date(0)))),
  };
}

async function expectProblem(p: Promise<unknown>, code: ProblemCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e, code), `expected ProblemError ${code}, got ${String(e)}`);
    return true;
  });
}

/** The whole log, page by page. */
function rawDb(store: Store): Kysely<Database> {
  assert.ok(store instanceof KyselyStore);
  return store.db;
}

async function withRoot(store: Store): Promise<void> {
  await store.insertCa(caRecord('root'), audit('ca.create', 'root'));
}

/**
 * A CA, order o1 (3 certificates), device dev-1 on that order with a secret
 * (hash sha('dev-1')), trust anchor "a", and enrollment p1 of dev-1 pending.
 */
async function withRegistry(store: Store): Promise<void> {
  if (!(await store.getCa('root'))) await withRoot(store);
  await store.insertOrder(orderRecord('o1'), audit('order.create', 'o1'));
  await store.insertDevice(deviceRecord('dev-1', { orderId: 'o1' }), audit('device.register', 'dev-1'));
  await store.putEnrollmentSecret(secretRecord('dev-1'), audit('device.secret', 'dev-1'));
  await store.insertTrustAnchor(anchorRecord('a'), audit('trust.add', 'a'));
  await store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'));
}

/** Everything the registry methods can change, to show that a failure changed nothing. */
async function registrySnapshot(store: Store): Promise<unknown> {
  const devices = await store.listDevices({ limit: 1000 });
  return {
    devices,
    secrets: await Promise.all(devices.map((d) => store.getEnrollmentSecret(d.id))),
    certificates: await store.listCertificates({ limit: 1000 }),
    orders: await store.listOrders(),
    pending: await store.listPendingEnrollments(),
    anchors: await store.listTrustAnchors(),
    audit: await readAuditLog(store),
  };
}

type Open = (options?: StoreOptions) => Promise<Store>;
/** Opens a fresh, empty store without migrating it. */
type OpenUnmigrated = () => Promise<Store>;

// --- the suite every backend passes ---

function conformance(name: string, open: Open, openUnmigrated: OpenUnmigrated): void {
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
        const versions = await rawDb(store).selectFrom('schema_version').select('version').orderBy('version').execute();
        assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
      });

      it('ok an empty store: lastAuditSeq 0, no certificate changes', async () => {
        assert.equal(await store.lastAuditSeq(), 0);
        assert.deepEqual(await store.listCertificateChanges(0), []);
      });

      it('ok migrating a database created at version 1 keeps its rows, which have no deviceId', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 1)), [1]);
          await withRoot(old);
          // As fleetpki 0.1 wrote it: version 1 has no device_id column.
          const v1 = certRecord('0001');
          await db
            .insertInto('certificates')
            .values({
              serial: v1.serial,
              issuer_ca: v1.issuerCa,
              profile: v1.profile,
              subject: v1.subject,
              sans: JSON.stringify(v1.sans),
              not_before: v1.notBefore.getTime(),
              not_after: v1.notAfter.getTime(),
              spki_sha256: v1.spkiSha256,
              der: Buffer.from(v1.der),
              status: 'good',
              revoked_at: null,
              revocation_reason: null,
              invalidity_date: null,
              created_at: v1.createdAt.getTime(),
              requester: v1.requester,
            })
            .execute();
          await old.migrate();
          const versions = await db.selectFrom('schema_version').select('version').orderBy('version').execute();
          assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
          const cert = await old.getCertificate('0001');
          assert.deepEqual(cert, v1);
          assert.ok(cert && !('deviceId' in cert));
          assert.deepEqual((await old.listCertificates({ deviceId: 'dev-1' })).length, 0);
          // The new tables work on the upgraded database.
          await old.insertDevice(deviceRecord('dev-1'), audit('device.register', 'dev-1'));
          await old.recordEnrollment(enrollment('0002', 'dev-1'), audit('certificate.enroll', '0002'));
          assert.deepEqual((await old.listCertificates()).map((c) => [c.serial, c.deviceId]), [['0001', undefined], ['0002', 'dev-1']]);
          assert.deepEqual(verifyAuditChain(await readAuditLog(old)), { ok: true, entries: 3 });
        } finally {
          await old.close();
        }
      });
    });

    describe('schema: version 5 (key escrow)', () => {
      it('ok migrating a database created at version 4 keeps its certificates; escrow works on it', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 4)), [1, 2, 3, 4]);
          await withRoot(old);
          await old.insertCertificate(certRecord('0001'), audit('certificate.issue', '0001'));
          await old.migrate();
          assert.deepEqual(await old.listCertificates(), [certRecord('0001')]);
          await old.putEscrowKey({ keyRef: 'k1', spki: ALL_BYTES, createdAt: at(0) }, audit('key.escrow.create'));
          await old.putEscrowedKey({ serial: '0001', escrowKeyRef: 'k1', envelope: ALL_BYTES, createdAt: at(1) }, audit('key.escrow', '0001'));
          assert.deepEqual(await old.getEscrowedKey('0001'), { serial: '0001', escrowKeyRef: 'k1', envelope: ALL_BYTES, createdAt: at(1) });
        } finally {
          await old.close();
        }
      });
    });

    describe('schema: version 8 (firmware signers)', () => {
      it('ok migrating a database created at version 7 keeps its certificates; firmware signers work on it', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 7)), [1, 2, 3, 4, 5, 6, 7]);
          await withRoot(old);
          await old.insertCertificate(certRecord('0001'), audit('certificate.issue', '0001'));
          await old.migrate();
          const versions = await db.selectFrom('schema_version').select('version').orderBy('version').execute();
          assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
          assert.deepEqual(await old.listCertificates(), [certRecord('0001')]);
          await old.insertFirmwareSigner(firmwareSignerRecord('release', '0001'), audit('firmware.signer.create', 'release'));
          assert.deepEqual(await old.getFirmwareSigner('release'), firmwareSignerRecord('release', '0001'));
        } finally {
          await old.close();
        }
      });
    });

    describe('schema: version 3 (revocation)', () => {
      it('ok migrating a database created at version 2 keeps its rows, in CRL shard 0 with no release', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 2)), [1, 2]);
          await withRoot(old);
          // As fleetpki 0.2 wrote them: no crl_shard, no released_at.
          const v2 = [certRecord('0001', { deviceId: 'dev-1' }), certRecord('0002', onHold(at(10))), certRecord('0003', revokedAs('keyCompromise', at(20), at(15)))];
          for (const c of v2) {
            await db
              .insertInto('certificates')
              .values({
                serial: c.serial,
                issuer_ca: c.issuerCa,
                profile: c.profile,
                subject: c.subject,
                sans: JSON.stringify(c.sans),
                not_before: c.notBefore.getTime(),
                not_after: c.notAfter.getTime(),
                spki_sha256: c.spkiSha256,
                der: Buffer.from(c.der),
                status: c.status,
                revoked_at: c.revocation?.revokedAt.getTime() ?? null,
                revocation_reason: c.revocation?.reason ?? null,
                invalidity_date: c.revocation?.invalidityDate?.getTime() ?? null,
                created_at: c.createdAt.getTime(),
                requester: c.requester,
                device_id: c.deviceId ?? null,
              })
              .execute();
          }
          await old.migrate();
          const versions = await db.selectFrom('schema_version').select('version').orderBy('version').execute();
          assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
          const raw = await db.selectFrom('certificates').select(['serial', 'crl_shard', 'released_at']).orderBy('serial').execute();
          assert.deepEqual(raw.map((r) => [r.serial, Number(r.crl_shard), r.released_at]), [['0001', 0, null], ['0002', 0, null], ['0003', 0, null]]);
          assert.deepEqual(await old.listCertificates(), v2);
          assert.deepEqual(await old.listCertificates({ issuerCa: 'root', status: 'revoked' }), v2.slice(1));
          assert.deepEqual(await old.listRevoked('root', { shard: 0 }), [entryOf('0002', v2[1]), entryOf('0003', v2[2])]);
          assert.deepEqual(await old.listCrlShards('root'), [0]);
          assert.equal(await old.countInShard('root', 0), 3);
          // The new tables and columns work on the upgraded database.
          await old.releaseHold('0002', at(30), audit('certificate.release', '0002'));
          assert.deepEqual(await old.listReleasedHolds('root', at(0)), [{ serial: '0002', releasedAt: at(30) }]);
          assert.equal(await old.nextCrlNumber('root'), 1);
          await old.putCrl(crlRecord(1), audit('crl.publish', 'root'));
          await old.putOcspSigner(signerRecord('k1'), audit('ocsp.signer.create', 'root'));
          assert.deepEqual(await old.getLatestCrl('root', 0, 'base'), crlRecord(1));
          assert.deepEqual(verifyAuditChain(await readAuditLog(old)), { ok: true, entries: 4 });
        } finally {
          await old.close();
        }
      });

      it('ok crlShard 0 is the default: it reads back as no crlShard member', async () => {
        await withRoot(store);
        await store.insertCertificate(certRecord('01', { crlShard: 0 }), audit('certificate.issue', '01'));
        await store.insertCertificate(certRecord('02'), audit('certificate.issue', '02'));
        for (const c of await store.listCertificates()) assert.ok(!('crlShard' in c), c.serial);
        assert.equal(await store.countInShard('root', 0), 2);
      });

      const badShards: [string, number][] = [
        ['fail-crlShard -1', -1],
        ['fail-crlShard 1.5', 1.5],
      ];
      for (const [title, crlShard] of badShards) {
        it(`insertCertificate ${title} → bad_request, and writes nothing`, async () => {
          await withRoot(store);
          await expectProblem(store.insertCertificate(certRecord('01', { crlShard }), audit('certificate.issue', '01')), 'bad_request');
          assert.deepEqual(await store.listCertificates(), []);
          assert.equal((await readAuditLog(store)).length, 1);
        });
      }
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
        ['ok linked to a registry device', certRecord('0a1f', { deviceId: 'dev-1' })],
        ['ok in CRL shard 3', certRecord('0a20', { crlShard: 3 })],
        ['ok revoked on hold in CRL shard 12', certRecord('0a21', { crlShard: 12, status: 'revoked', revocation: { revokedAt: at(9), reason: 'certificateHold' } })],
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

      it('insertCertificate ok concurrent calls share one durable commit; each resolves with its certificate stored and its audit entry chained', async () => {
        const commits = (store as KyselyStore).certificateCommits;
        const before = { ...commits };
        const serials = Array.from({ length: 120 }, (_, i) => `7a${i.toString(16).padStart(4, '0')}`);
        await Promise.all(
          serials.map(async (serial) => {
            await store.insertCertificate(certRecord(serial), audit('certificate.issue', serial));
            // Resolved only after its commit: visible at once, with its change recorded.
            assert.deepEqual(await store.getCertificate(serial), certRecord(serial));
          }),
        );
        assert.equal(commits.certificates - before.certificates, 120);
        assert.ok(commits.commits - before.commits <= 2, `${commits.commits - before.commits} commits for 120 concurrent certificates`);
        const log = await readAuditLog(store);
        assert.deepEqual(verifyAuditChain(log), { ok: true, entries: 121 });
        assert.deepEqual(log.slice(1).map((e) => e.target), serials);
        const changes = await store.listCertificateChanges(0, 1000);
        assert.deepEqual(changes.map((c) => c.serial).sort(), [...serials].sort());
      });

      it('insertCertificate fail-members of a batch that break a constraint are refused alone; the others commit once each', async () => {
        await store.insertCertificate(certRecord('0b00'), audit('certificate.issue', '0b00'));
        const good = Array.from({ length: 30 }, (_, i) => `0c${i.toString(16).padStart(2, '0')}`);
        const outcomes = await Promise.allSettled([
          ...good.slice(0, 10).map((s) => store.insertCertificate(certRecord(s), audit('certificate.issue', s))),
          store.insertCertificate(certRecord('0b00', { subject: 'CN=impostor' }), audit('certificate.issue', '0b00')),
          ...good.slice(10, 20).map((s) => store.insertCertificate(certRecord(s), audit('certificate.issue', s))),
          store.insertCertificate(certRecord('0b01', { issuerCa: 'ghost' }), audit('certificate.issue', '0b01')),
          store.insertCertificate(certRecord('0b02'), audit('certificate.issue', '0b02')),
          store.insertCertificate(certRecord('0b02', { subject: 'CN=twin' }), audit('certificate.issue', '0b02')),
          store.insertCertificate(certRecord('0b03', { notAfter: new Date(NaN) }), audit('certificate.issue', '0b03')),
          ...good.slice(20).map((s) => store.insertCertificate(certRecord(s), audit('certificate.issue', s))),
        ]);
        const code = (r: PromiseSettledResult<void>) => (r.status === 'fulfilled' ? 'ok' : isProblem(r.reason) ? r.reason.code : String(r.reason));
        const codes = outcomes.map(code);
        assert.deepEqual(codes.slice(0, 10), Array(10).fill('ok'));
        assert.equal(codes[10], 'already_exists');
        assert.deepEqual(codes.slice(11, 21), Array(10).fill('ok'));
        assert.equal(codes[21], 'not_found');
        assert.deepEqual([codes[22], codes[23]].sort(), ['already_exists', 'ok']);
        assert.equal(codes[24], 'bad_request');
        assert.deepEqual(codes.slice(25), Array(10).fill('ok'));
        assert.deepEqual(await store.getCertificate('0b00'), certRecord('0b00'));
        assert.equal(await store.getCertificate('0b01'), undefined);
        assert.equal(await store.getCertificate('0b03'), undefined);
        for (const s of good) assert.deepEqual(await store.getCertificate(s), certRecord(s));
        const log = await readAuditLog(store);
        assert.deepEqual(verifyAuditChain(log), { ok: true, entries: 1 + 1 + 30 + 1 });
        const targets = log.map((e) => e.target);
        for (const s of [...good, '0b02']) assert.equal(targets.filter((t) => t === s).length, 1, `${s} recorded once`);
        assert.equal(targets.filter((t) => t === '0b00').length, 1);
        assert.ok(!targets.includes('0b01') && !targets.includes('0b03'));
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
            certRecord('a1', { issuerCa: 'root', profile: 'device', subject: 'CN=Pump 1, O=Acme', deviceId: 'dev-1' }),
            certRecord('a2', { issuerCa: 'issuing', profile: 'device', subject: 'CN=pump 2, O=ACME', spkiSha256: 'cd'.repeat(32), deviceId: 'dev-1' }),
            certRecord('a3', { issuerCa: 'issuing', profile: 'server', subject: 'CN=broker, O=Acme', deviceId: 'dev-2' }),
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
          ['ok deviceId', { deviceId: 'dev-1' }, ['a1', 'a2']],
          ['ok deviceId + status', { deviceId: 'dev-1', status: 'good' }, ['a1']],
          ['ok deviceId with no certificates', { deviceId: 'dev-9' }, []],
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

    describe('console aggregates (issue 10)', () => {
      it('ok countDevicesByState: every state, 0 where none', async () => {
        assert.deepEqual(await store.countDevicesByState(), { registered: 0, active: 0, suspended: 0, revoked: 0, retired: 0 });
        await store.insertDevice(deviceRecord('d1'), audit('device.register', 'd1'));
        await store.insertDevice(deviceRecord('d2'), audit('device.register', 'd2'));
        await store.insertDevice(deviceRecord('d3', { state: 'suspended' }), audit('device.register', 'd3'));
        assert.deepEqual(await store.countDevicesByState(), { registered: 2, active: 0, suspended: 1, revoked: 0, retired: 0 });
      });

      it('ok countCertificatesPerDay by notAfter (good only) and by createdAt (devices only), per UTC day', async () => {
        await withRoot(store);
        await store.insertDevice(deviceRecord('d1'), audit('device.register', 'd1'));
        const day0 = Math.floor(T0 / DAY) * DAY;
        const certs = [
          certRecord('c1', { notAfter: new Date(day0 + 2 * DAY + 5), createdAt: new Date(day0 + 1), deviceId: 'd1' }),
          certRecord('c2', { notAfter: new Date(day0 + 2 * DAY + DAY - 1), createdAt: new Date(day0 + DAY - 1), deviceId: 'd1' }),
          certRecord('c3', { notAfter: new Date(day0 + 9 * DAY), createdAt: new Date(day0 + DAY) }),
          certRecord('c4', { notAfter: new Date(day0 + 9 * DAY), createdAt: new Date(day0 + DAY), deviceId: 'd1' }),
          certRecord('c5', { notAfter: new Date(day0 + 40 * DAY), createdAt: new Date(day0 - DAY) }),
        ];
        for (const c of certs) await store.insertCertificate(c, audit('certificate.issue', c.serial));
        await store.revokeCertificate('c4', { revokedAt: at(1), reason: 'keyCompromise' }, audit('certificate.revoke', 'c4'));
        assert.deepEqual(await store.countCertificatesPerDay({ by: 'notAfter', from: new Date(day0), to: new Date(day0 + 30 * DAY) }), [
          { day: day0 + 2 * DAY, count: 2 },
          { day: day0 + 9 * DAY, count: 1 },
        ]);
        assert.deepEqual(await store.countCertificatesPerDay({ by: 'createdAt', from: new Date(day0), to: new Date(day0 + 7 * DAY), devicesOnly: true }), [
          { day: day0, count: 2 },
          { day: day0 + DAY, count: 1 },
        ]);
        assert.deepEqual(await store.countCertificatesPerDay({ by: 'createdAt', from: new Date(day0 + 5 * DAY), to: new Date(day0 + 7 * DAY) }), []);
      });

      it('ok listRecentRevocations: most recently revoked first, limit', async () => {
        await withRoot(store);
        for (const s of ['r1', 'r2', 'r3']) await store.insertCertificate(certRecord(s), audit('certificate.issue', s));
        await store.revokeCertificate('r2', { revokedAt: at(10), reason: 'superseded' }, audit('certificate.revoke', 'r2'));
        await store.revokeCertificate('r1', { revokedAt: at(20), reason: 'keyCompromise' }, audit('certificate.revoke', 'r1'));
        assert.deepEqual((await store.listRecentRevocations()).map((c) => [c.serial, c.revocation?.reason]), [['r1', 'keyCompromise'], ['r2', 'superseded']]);
        assert.deepEqual((await store.listRecentRevocations(1)).map((c) => c.serial), ['r1']);
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

    describe('schema: version 7 (cmp)', () => {
      it('ok migrating a database created at version 6 keeps its secrets, with no sealed copy', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 6)), [1, 2, 3, 4, 5, 6]);
          await withRoot(old);
          // As fleetpki before CMP wrote them (later migrations add device columns, so not through insertDevice).
          await db.insertInto('devices').values({ id: 'dev-1', profile: 'device', model: null, domain: null, owner: null, state: 'registered', sans: '[]', order_id: null, require_approval: 0, current_serial: null, attributes: '{}', created_at: T0, updated_at: T0 } as never).execute();
          // No sealed column.
          await db.insertInto('enrollment_secrets').values({ device_id: 'dev-1', secret_hash: sha('dev-1'), created_at: T0 + 30, expires_at: T0 + DAY, used_at: null } as never).execute();
          await old.migrate();
          const versions = await db.selectFrom('schema_version').select('version').orderBy('version').execute();
          assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
          assert.deepEqual(await old.getEnrollmentSecret('dev-1'), secretRecord('dev-1'));
          // The new tables work on the upgraded database.
          await old.putSealingKey(sealingKeyRecord('k1'), audit('registry.sealing-key.create', 'k1'));
          await old.insertCmpTransaction(cmpRecord('aa'.repeat(16)));
          assert.equal((await old.getCmpTransaction('aa'.repeat(16)))?.state, 'open');
          // withRoot and the sealing key; the device was written raw, as an old version did.
          assert.deepEqual(verifyAuditChain(await readAuditLog(old)), { ok: true, entries: 2 });
        } finally {
          await old.close();
        }
      });
    });

    registryConformance(() => store);
    revocationConformance(() => store);
    escrowConformance(() => store);
    cmpConformance(() => store);
    firmwareConformance(() => store);

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
          ['order.create', () => store.insertOrder(orderRecord('o1'), audit('order.create', 'o1'))],
          ['device.register', () => store.insertDevice(deviceRecord('dev-1', { orderId: 'o1' }), audit('device.register', 'dev-1'))],
          ['device.import', () => store.insertDevices([deviceRecord('dev-1'), deviceRecord('dev-2'), deviceRecord('dev-3')], audit('device.import'))],
          ['device.update', () => store.updateDevice('dev-2', { owner: 'acme' }, at(5), audit('device.update', 'dev-2'))],
          ['device.secret', () => store.putEnrollmentSecret(secretRecord('dev-1'), audit('device.secret', 'dev-1'))],
          ['trust.add', () => store.insertTrustAnchor(anchorRecord('a'), audit('trust.add', 'a'))],
          ['trust.remove', () => store.removeTrustAnchor(anchorRecord('a').fingerprint, audit('trust.remove', 'a'))],
          ['enrollment.wait', () => store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'))],
          ['enrollment.approve', () => store.decidePendingEnrollment('p1', 'approved', 'token:officer', at(6), audit('enrollment.approve', 'p1'))],
          [
            'certificate.enroll',
            () => store.recordEnrollment(enrollment('c2', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1', pendingId: 'p1' }), audit('certificate.enroll', 'c2')),
          ],
          ['certificate.hold', () => store.revokeCertificate('c2', { revokedAt: at(7), reason: 'certificateHold' }, audit('certificate.hold', 'c2'))],
          ['certificate.release', () => store.releaseHold('c2', at(8), audit('certificate.release', 'c2'))],
          ['crl.publish', () => store.putCrl(crlRecord(1), audit('crl.publish', 'root'))],
          ['ocsp.signer.create', () => store.putOcspSigner(signerRecord('k1'), audit('ocsp.signer.create', 'root'))],
        ];
        for (const [, step] of steps) await step();
        const log = await readAuditLog(store);
        assert.deepEqual(log.map((e) => e.action), steps.map(([a]) => a));
        assert.deepEqual(log.map((e) => e.seq), Array.from({ length: steps.length }, (_, i) => i + 1));
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
        ['insertDevice', (s) => s.insertDevice(deviceRecord('dev-9'), unwritable)],
        ['insertDevices', (s) => s.insertDevices([deviceRecord('dev-1'), deviceRecord('dev-9')], unwritable)],
        ['updateDevice', (s) => s.updateDevice('dev-1', { state: 'suspended' }, at(9), unwritable)],
        ['putEnrollmentSecret', (s) => s.putEnrollmentSecret(secretRecord('dev-1', { secretHash: sha('other') }), unwritable)],
        ['insertTrustAnchor', (s) => s.insertTrustAnchor(anchorRecord('b'), unwritable)],
        ['removeTrustAnchor', (s) => s.removeTrustAnchor(anchorRecord('a').fingerprint, unwritable)],
        ['insertOrder', (s) => s.insertOrder(orderRecord('o2'), unwritable)],
        ['insertPendingEnrollment', (s) => s.insertPendingEnrollment(pendingRecord('p2', 'dev-1'), unwritable)],
        ['decidePendingEnrollment', (s) => s.decidePendingEnrollment('p1', 'approved', 'x', at(9), unwritable)],
        ['recordEnrollment', (s) => s.recordEnrollment(enrollment('r3', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1' }), unwritable)],
        ['releaseHold', (s) => s.releaseHold('h1', at(9), unwritable)],
        ['putCrl', (s) => s.putCrl(crlRecord(1), unwritable)],
        ['putOcspSigner', (s) => s.putOcspSigner(signerRecord('k1'), unwritable)],
      ];
      for (const [method, call] of calls) {
        it(`fail-${method} → bad_request, and nothing changes`, async () => {
          await withRoot(store);
          await store.insertCertificate(certRecord('r1'), audit('certificate.issue', 'r1'));
          await store.insertToken(tokenRecord('t1'), audit('token.create', 't1'));
          await withRegistry(store);
          await store.insertCertificate(certRecord('h1', onHold(at(5))), audit('certificate.issue', 'h1'));
          const snapshot = async () => [await store.listCas(), await store.listTokens(), await registrySnapshot(store), await revocationSnapshot(store)];
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

// --- the CMP part of the suite ---

function sealingKeyRecord(id: string, over: Partial<SealingKeyRecord> = {}): SealingKeyRecord {
  return { id, keyRef: `soft:sealing-${id}`, spki: Uint8Array.of(0x30, 0x01, id.length), createdAt: at(HOUR), ...over };
}

function cmpRecord(id: string, over: Partial<CmpTransactionRecord> = {}): CmpTransactionRecord {
  return { id, state: 'open', kind: 'ir', implicitConfirm: false, createdAt: at(HOUR), updatedAt: at(HOUR), expiresAt: at(2 * HOUR), ...over };
}

function cmpConformance(current: () => Store): void {
  describe('cmp: sealed secrets and sealing keys', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRegistry(store);
    });

    it('ok a sealed copy is kept with the secret and wiped when the enrollment consumes it', async () => {
      const sealed = secretRecord('dev-1', { sealed: ALL_BYTES });
      await store.putEnrollmentSecret(sealed, audit('device.secret', 'dev-1'));
      assert.deepEqual(await store.getEnrollmentSecret('dev-1'), sealed);
      await store.recordEnrollment(enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1') }), audit('certificate.enroll', 'e1'));
      assert.deepEqual(await store.getEnrollmentSecret('dev-1'), secretRecord('dev-1', { usedAt: at(HOUR) }));
    });

    it('ok a failed enrollment keeps the sealed copy', async () => {
      await store.putEnrollmentSecret(secretRecord('dev-1', { sealed: ALL_BYTES }), audit('device.secret', 'dev-1'));
      await expectProblem(store.recordEnrollment(enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'ghost' }), audit('certificate.enroll', 'e1')), 'policy_violation');
      assert.deepEqual((await store.getEnrollmentSecret('dev-1'))?.sealed, ALL_BYTES);
    });

    it('ok sealing keys: the newest without an id, any by id; a taken id → already_exists', async () => {
      assert.equal(await store.getSealingKey(), undefined);
      await store.putSealingKey(sealingKeyRecord('k1'), audit('registry.sealing-key.create', 'k1'));
      await store.putSealingKey(sealingKeyRecord('k2', { createdAt: at(2 * HOUR) }), audit('registry.sealing-key.create', 'k2'));
      assert.deepEqual(await store.getSealingKey(), sealingKeyRecord('k2', { createdAt: at(2 * HOUR) }));
      assert.deepEqual(await store.getSealingKey('k1'), sealingKeyRecord('k1'));
      assert.equal(await store.getSealingKey('nope'), undefined);
      await expectProblem(store.putSealingKey(sealingKeyRecord('k1'), audit('x')), 'already_exists');
      assert.equal((await store.listAudit({ action: 'registry.sealing-key.create' })).length, 2);
    });
  });

  describe('cmp: abandonCertificate', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRegistry(store);
      await store.recordEnrollment(enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1') }), audit('certificate.enroll', 'e1'));
      await store.recordEnrollment(enrollment('e2', 'dev-1', { replacesSerial: 'e1', now: at(2 * HOUR) }), audit('certificate.enroll', 'e2'));
    });
    const revocation = { revokedAt: at(3 * HOUR), reason: 'cessationOfOperation' as const };

    it('ok revokes the certificate and makes the previous one current again, one audit entry', async () => {
      assert.equal(await store.abandonCertificate('e2', revocation, 'e1', audit('certificate.abandon', 'e2')), true);
      assert.deepEqual(await store.getCertificate('e2'), { ...certRecord('e2'), deviceId: 'dev-1', ...revokedAs('cessationOfOperation', at(3 * HOUR)) });
      const d = await store.getDevice('dev-1');
      assert.deepEqual([d?.state, d?.currentSerial], ['active', 'e1']);
      assert.equal((await store.listAudit({ action: 'certificate.abandon' })).length, 1);
    });

    it('ok with no previous certificate the device is registered again', async () => {
      await store.abandonCertificate('e2', revocation, 'e1', audit('certificate.abandon', 'e2'));
      await store.abandonCertificate('e1', revocation, undefined, audit('certificate.abandon', 'e1'));
      const d = await store.getDevice('dev-1');
      assert.deepEqual([d?.state, d?.currentSerial], ['registered', undefined]);
    });

    it('ok twice changes nothing the second time and writes no second audit entry', async () => {
      await store.abandonCertificate('e2', revocation, 'e1', audit('certificate.abandon', 'e2'));
      const before = await registrySnapshot(store);
      assert.equal(await store.abandonCertificate('e2', { ...revocation, revokedAt: at(4 * HOUR) }, 'e1', audit('certificate.abandon', 'e2')), false);
      assert.deepEqual(await registrySnapshot(store), before);
    });

    it('ok a certificate that is no longer current is revoked, the device keeps its current one', async () => {
      await store.abandonCertificate('e1', revocation, undefined, audit('certificate.abandon', 'e1'));
      const d = await store.getDevice('dev-1');
      assert.deepEqual([d?.state, d?.currentSerial], ['active', 'e2']);
      assert.equal((await store.getCertificate('e1'))?.status, 'revoked');
    });

    it('fail-unknown serial → not_found, and nothing changes', async () => {
      const before = await registrySnapshot(store);
      await expectProblem(store.abandonCertificate('nope', revocation, 'e1', audit('certificate.abandon', 'nope')), 'not_found');
      assert.deepEqual(await registrySnapshot(store), before);
    });
  });

  describe('cmp: transactions', () => {
    let store: Store;
    const id = 'ab'.repeat(16);
    beforeEach(async () => {
      store = current();
    });

    it('ok insert and read back every field', async () => {
      const full = cmpRecord(id, {
        state: 'confirming',
        deviceId: 'dev-1',
        expectedNonce: 'cd'.repeat(16),
        protection: 'mac',
        signerSha256: 'ef'.repeat(32),
        sealedSecret: ALL_BYTES,
        requestDer: Uint8Array.of(0x30, 0x00),
        implicitConfirm: true,
        certReqId: -1,
        ca: 'issuing',
        profile: 'device-tls',
        certSerial: '01ab',
        previousSerial: '01aa',
        outcome: 'none yet',
      });
      await store.insertCmpTransaction(full);
      assert.deepEqual(await store.getCmpTransaction(id), full);
      assert.equal(await store.getCmpTransaction('00'.repeat(16)), undefined);
    });

    it('fail-a used transactionID → already_exists, the first stays', async () => {
      await store.insertCmpTransaction(cmpRecord(id));
      await expectProblem(store.insertCmpTransaction(cmpRecord(id, { kind: 'cr' })), 'already_exists');
      assert.equal((await store.getCmpTransaction(id))?.kind, 'ir');
    });

    it('ok update is a compare-and-set on state and nonce; null clears a field', async () => {
      await store.insertCmpTransaction(cmpRecord(id, { sealedSecret: ALL_BYTES, expectedNonce: 'n1' }));
      const next = await store.updateCmpTransaction(id, { state: 'open', expectedNonce: 'n1' }, { state: 'confirming', expectedNonce: 'n2', certSerial: 'c1', updatedAt: at(3 * HOUR) });
      assert.deepEqual(next, cmpRecord(id, { state: 'confirming', expectedNonce: 'n2', certSerial: 'c1', sealedSecret: ALL_BYTES, updatedAt: at(3 * HOUR) }));
      // A replay of the message that moved it: the nonce is no longer the expected one.
      await expectProblem(store.updateCmpTransaction(id, { state: 'confirming', expectedNonce: 'n1' }, { state: 'closed', updatedAt: at(4 * HOUR) }), 'conflict');
      await expectProblem(store.updateCmpTransaction(id, { state: 'open' }, { state: 'closed', updatedAt: at(4 * HOUR) }), 'conflict');
      const closed = await store.updateCmpTransaction(id, { state: 'confirming', expectedNonce: 'n2' }, { state: 'closed', outcome: 'accepted', expectedNonce: null, sealedSecret: null, updatedAt: at(4 * HOUR) });
      assert.deepEqual(closed, cmpRecord(id, { state: 'closed', outcome: 'accepted', certSerial: 'c1', updatedAt: at(4 * HOUR) }));
      await expectProblem(store.updateCmpTransaction('00'.repeat(16), { state: 'open' }, { updatedAt: at(0) }), 'not_found');
    });

    it('ok two concurrent updates from the same state: exactly one wins', async () => {
      await store.insertCmpTransaction(cmpRecord(id, { expectedNonce: 'n1' }));
      const tries = await Promise.allSettled([1, 2, 3].map((n) => store.updateCmpTransaction(id, { state: 'open', expectedNonce: 'n1' }, { state: 'closed', outcome: `w${n}`, updatedAt: at(3 * HOUR) })));
      assert.equal(tries.filter((t) => t.status === 'fulfilled').length, 1);
      assert.ok(tries.filter((t) => t.status === 'rejected').every((t) => isProblem((t as PromiseRejectedResult).reason, 'conflict')));
    });

    it('ok listDueCmpTransactions: not closed, deadline passed, oldest deadline first; prune drops old closed ones', async () => {
      await store.insertCmpTransaction(cmpRecord('01', { expiresAt: at(5 * HOUR) }));
      await store.insertCmpTransaction(cmpRecord('02', { state: 'waiting', expiresAt: at(2 * HOUR) }));
      await store.insertCmpTransaction(cmpRecord('03', { state: 'closed', expiresAt: at(HOUR), updatedAt: at(HOUR) }));
      await store.insertCmpTransaction(cmpRecord('04', { state: 'confirming', expiresAt: at(3 * HOUR) }));
      await store.insertCmpTransaction(cmpRecord('05', { state: 'closed', expiresAt: at(HOUR), updatedAt: at(10 * HOUR) }));
      assert.deepEqual((await store.listDueCmpTransactions(at(4 * HOUR))).map((t) => t.id), ['02', '04']);
      assert.deepEqual((await store.listDueCmpTransactions(at(4 * HOUR), 1)).map((t) => t.id), ['02']);
      assert.equal(await store.pruneCmpTransactions(at(5 * HOUR)), 1);
      assert.deepEqual(await Promise.all(['01', '03', '05'].map(async (i) => !!(await store.getCmpTransaction(i)))), [true, false, true]);
    });

    it('fail-a state outside the schema → bad_request', async () => {
      await expectProblem(store.insertCmpTransaction(cmpRecord(id, { state: 'lost' as never })), 'bad_request');
    });
  });
}

// --- the registry part of the suite ---

function registryConformance(current: () => Store): void {
  describe('registry: devices', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });

    const roundTrips: [string, DeviceRecord, boolean][] = [
      ['ok minimal device', deviceRecord('dev-1'), false],
      [
        'ok every optional field, unicode attributes',
        deviceRecord('dev-2', {
          model: 'PX-200',
          domain: 'plant-7.example',
          owner: 'Müller GmbH',
          sans: ['dns:dev-2.plant-7.example', 'ip:10.0.0.7'],
          orderId: 'o1',
          requireApproval: true,
          currentSerial: '0abc',
          attributes: { line: '3', note: 'Gerät "7" ✓' },
        }),
        true,
      ],
      ...DEVICE_STATES.map((state): [string, DeviceRecord, boolean] => [`ok state ${state}`, deviceRecord(`dev-${state}`, { state }), false]),
    ];
    for (const [title, d, needsOrder] of roundTrips) {
      it(`insertDevice ${title} round-trips`, async () => {
        if (needsOrder) await store.insertOrder(orderRecord('o1'), audit('order.create', 'o1'));
        await store.insertDevice(d, audit('device.register', d.id));
        assert.deepEqual(await store.getDevice(d.id), d);
        assert.deepEqual(await store.listDevices(), [d]);
        assert.deepEqual((await readAuditLog(store)).at(-1)?.target, d.id);
      });
    }

    it('insertDevice leaves absent optional fields absent', async () => {
      await store.insertDevice({ ...deviceRecord('dev-1'), model: undefined, orderId: undefined }, audit('device.register', 'dev-1'));
      const d = await store.getDevice('dev-1');
      assert.ok(d);
      for (const k of ['model', 'domain', 'owner', 'orderId', 'currentSerial']) assert.ok(!(k in d), `${k} is absent`);
    });

    it('getDevice of an unknown id is undefined', async () => {
      assert.equal(await store.getDevice('nope'), undefined);
    });

    const failures: [string, DeviceRecord, ProblemCode][] = [
      ['fail-duplicate id', deviceRecord('dev-1', { model: 'other' }), 'already_exists'],
      ['fail-unknown enrollment order', deviceRecord('dev-2', { orderId: 'ghost' }), 'not_found'],
      ['fail-unknown state', deviceRecord('dev-3', { state: 'lost' as DeviceRecord['state'] }), 'bad_request'],
      ['fail-attributes that are not JSON', deviceRecord('dev-4', { attributes: { n: 1n } as unknown as Record<string, string> }), 'bad_request'],
      ['fail-invalid date', deviceRecord('dev-5', { createdAt: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, d, code] of failures) {
      it(`insertDevice ${title} → ${code}, and writes nothing`, async () => {
        await store.insertDevice(deviceRecord('dev-1'), audit('device.register', 'dev-1'));
        await expectProblem(store.insertDevice(d, audit('device.register', d.id)), code);
        assert.deepEqual(await store.listDevices(), [deviceRecord('dev-1')]);
        assert.equal((await readAuditLog(store)).length, 1);
      });
    }

    describe('insertDevices', () => {
      it('ok inserts the new, skips and reports the existing (and repeats within the batch), one audit entry', async () => {
        await store.insertDevice(deviceRecord('dev-2', { owner: 'first' }), audit('device.register', 'dev-2'));
        const batch = [deviceRecord('dev-1'), deviceRecord('dev-2', { owner: 'second' }), deviceRecord('dev-3'), deviceRecord('dev-1', { owner: 'again' })];
        assert.deepEqual(await store.insertDevices(batch, audit('device.import', undefined, { count: 4 })), { inserted: 2, existing: ['dev-2', 'dev-1'] });
        assert.deepEqual(await store.listDevices(), [deviceRecord('dev-1'), deviceRecord('dev-2', { owner: 'first' }), deviceRecord('dev-3')]);
        assert.deepEqual((await readAuditLog(store)).map((e) => [e.action, e.details]), [
          ['device.register', {}],
          ['device.import', { count: 4 }],
        ]);
      });

      it('ok an empty batch inserts nothing and is still audited', async () => {
        assert.deepEqual(await store.insertDevices([], audit('device.import')), { inserted: 0, existing: [] });
        assert.equal((await readAuditLog(store)).length, 1);
      });

      it('ok 5,000 devices in one call, quickly', async () => {
        const ds = Array.from({ length: 5000 }, (_, i) => deviceRecord(`bulk-${String(i).padStart(5, '0')}`, { model: 'PX-200', sans: [`dns:d${i}.example`], attributes: { i: String(i) } }));
        const started = performance.now();
        assert.deepEqual(await store.insertDevices(ds, audit('device.import')), { inserted: 5000, existing: [] });
        const ms = performance.now() - started;
        assert.ok(ms < 2000, `5,000 devices took ${Math.round(ms)} ms`);
        assert.equal((await store.listDevices({ limit: 1000, afterId: 'bulk-03999' })).length, 1000);
        assert.deepEqual(await store.getDevice('bulk-04321'), ds[4321]);
        assert.deepEqual(await store.insertDevices(ds.slice(0, 3), audit('device.import')), { inserted: 0, existing: ['bulk-00000', 'bulk-00001', 'bulk-00002'] });
      });

      const batchFailures: [string, DeviceRecord, ProblemCode][] = [
        ['fail-unknown enrollment order', deviceRecord('dev-9', { orderId: 'ghost' }), 'not_found'],
        ['fail-unknown state', deviceRecord('dev-9', { state: 'lost' as DeviceRecord['state'] }), 'bad_request'],
        ['fail-invalid date', deviceRecord('dev-9', { updatedAt: new Date(NaN) }), 'bad_request'],
      ];
      for (const [title, bad, code] of batchFailures) {
        it(`${title} anywhere in the batch → ${code}, and nothing of the batch is stored`, async () => {
          const batch = [...Array.from({ length: 700 }, (_, i) => deviceRecord(`ok-${String(i).padStart(3, '0')}`)), bad];
          await expectProblem(store.insertDevices(batch, audit('device.import')), code);
          assert.deepEqual(await store.listDevices(), []);
          assert.equal((await readAuditLog(store)).length, 0);
        });
      }
    });

    describe('listDevices', () => {
      beforeEach(async () => {
        await store.insertDevices(
          [
            deviceRecord('d1', { model: 'PX-200', domain: 'plant-1', owner: 'acme', state: 'active' }),
            deviceRecord('d2', { model: 'PX-200', domain: 'plant-2', owner: 'acme' }),
            deviceRecord('d3', { model: 'GW-1', domain: 'plant-1', profile: 'gateway', state: 'active' }),
            deviceRecord('d4', { model: 'PX-300', owner: 'other', state: 'retired' }),
            deviceRecord('D0', { model: 'PX-200', domain: 'plant-1' }),
          ],
          audit('device.import'),
        );
      });

      const filters: [string, DeviceQuery, string[]][] = [
        ['ok no filter: all, sorted by id bytewise', {}, ['D0', 'd1', 'd2', 'd3', 'd4']],
        ['ok state', { state: 'active' }, ['d1', 'd3']],
        ['ok domain', { domain: 'plant-1' }, ['D0', 'd1', 'd3']],
        ['ok model', { model: 'PX-200' }, ['D0', 'd1', 'd2']],
        ['ok profile', { profile: 'gateway' }, ['d3']],
        ['ok owner', { owner: 'acme' }, ['d1', 'd2']],
        ['ok combined', { model: 'PX-200', domain: 'plant-1', state: 'registered' }, ['D0']],
        ['ok afterId', { afterId: 'd2' }, ['d3', 'd4']],
        ['ok afterId + filter + limit', { afterId: 'D0', domain: 'plant-1', limit: 1 }, ['d1']],
        ['ok limit', { limit: 2 }, ['D0', 'd1']],
        ['ok no match', { state: 'suspended' }, []],
      ];
      for (const [title, q, ids] of filters) {
        it(title, async () => {
          assert.deepEqual((await store.listDevices(q)).map((d) => d.id), ids);
        });
      }

      for (const limit of [0, -1, 2.5]) {
        it(`fail-limit ${limit} → bad_request`, async () => {
          await expectProblem(store.listDevices({ limit }), 'bad_request');
        });
      }
    });

    it('listDevices returns 100 by default, caps limit at 1000, and keyset paging visits every device once', async () => {
      await store.insertDevices(Array.from({ length: 1005 }, (_, i) => deviceRecord(serialOf(i))), audit('device.import'));
      assert.equal((await store.listDevices()).length, 100);
      assert.equal((await store.listDevices({ limit: 5000 })).length, 1000);
      const seen: string[] = [];
      for (let page = await store.listDevices({ limit: 333 }); page.length > 0; page = await store.listDevices({ limit: 333, afterId: seen.at(-1) })) {
        seen.push(...page.map((d) => d.id));
      }
      assert.deepEqual(seen, Array.from({ length: 1005 }, (_, i) => serialOf(i)));
    });

    describe('updateDevice', () => {
      const full = deviceRecord('dev-1', { model: 'PX-200', domain: 'plant-1', owner: 'acme', sans: ['dns:a.example'], attributes: { k: 'v' } });
      const patches: [string, DevicePatch, Partial<DeviceRecord>][] = [
        ['ok state', { state: 'suspended' }, { state: 'suspended' }],
        ['ok set domain, owner, model, profile', { domain: 'plant-2', owner: 'other', model: 'PX-300', profile: 'gateway' }, { domain: 'plant-2', owner: 'other', model: 'PX-300', profile: 'gateway' }],
        ['ok null clears domain, owner and model', { domain: null, owner: null, model: null }, { domain: undefined, owner: undefined, model: undefined }],
        ['ok sans, requireApproval, attributes', { sans: [], requireApproval: true, attributes: { a: '1', b: '2' } }, { sans: [], requireApproval: true, attributes: { a: '1', b: '2' } }],
        ['ok requireApproval back to false', { requireApproval: false }, {}],
        ['ok empty patch only moves updatedAt', {}, {}],
      ];
      for (const [title, patch, change] of patches) {
        it(title, async () => {
          await store.insertDevice(full, audit('device.register', 'dev-1'));
          const updated = await store.updateDevice('dev-1', patch, at(DAY), audit('device.update', 'dev-1', { patch: 1 }));
          const expected = compactRecord({ ...full, ...change, updatedAt: at(DAY) });
          assert.deepEqual(updated, expected);
          assert.deepEqual(await store.getDevice('dev-1'), expected);
          assert.deepEqual((await readAuditLog(store)).map((e) => e.action), ['device.register', 'device.update']);
        });
      }

      const failures: [string, string, DevicePatch, ProblemCode][] = [
        ['fail-unknown device', 'nope', { state: 'active' }, 'not_found'],
        ['fail-unknown state', 'dev-1', { state: 'lost' as DeviceRecord['state'], owner: 'x' }, 'bad_request'],
        ['fail-attributes that are not JSON', 'dev-1', { attributes: { n: 1n } as unknown as Record<string, string> }, 'bad_request'],
      ];
      for (const [title, id, patch, code] of failures) {
        it(`${title} → ${code}, and nothing changes`, async () => {
          await store.insertDevice(full, audit('device.register', 'dev-1'));
          await expectProblem(store.updateDevice(id, patch, at(DAY), audit('device.update', id)), code);
          assert.deepEqual(await store.listDevices(), [full]);
          assert.equal((await readAuditLog(store)).length, 1);
        });
      }

      // The registry checks a lifecycle transition against the state it read;
      // the guard makes the write conditional on that state.
      it('ok ifState that holds: applied', async () => {
        await store.insertDevice(full, audit('device.register', 'dev-1'));
        const r = await store.updateDevice('dev-1', { state: 'suspended' }, at(DAY), audit('device.update', 'dev-1'), { ifState: 'registered' });
        assert.equal(r.state, 'suspended');
      });

      it('fail-ifState that no longer holds → conflict, and nothing changes', async () => {
        await withRegistry(store);
        await store.updateDevice('dev-1', { state: 'retired' }, at(DAY), audit('device.update', 'dev-1'));
        const before = await registrySnapshot(store);
        await expectProblem(store.updateDevice('dev-1', { state: 'suspended', owner: 'x' }, at(2 * DAY), audit('device.update', 'dev-1'), { ifState: 'active' }), 'conflict');
        assert.deepEqual(await registrySnapshot(store), before);
        await expectProblem(store.updateDevice('ghost', { state: 'suspended' }, at(2 * DAY), audit('device.update', 'ghost'), { ifState: 'active' }), 'not_found');
      });

      it('ok reregister: current certificate unlinked, secret deleted, pending and approved enrollments rejected, decided ones kept', async () => {
        await withRegistry(store);
        await store.decidePendingEnrollment('p1', 'approved', 'token:officer', at(60), audit('enrollment.approve', 'p1'));
        await store.recordEnrollment(enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), pendingId: 'p1' }), audit('certificate.enroll', 'e1'));
        await store.insertPendingEnrollment(pendingRecord('p2', 'dev-1', { spkiSha256: 'cd'.repeat(32) }), audit('enrollment.wait', 'p2'));
        await store.insertPendingEnrollment(pendingRecord('p3', 'dev-1', { spkiSha256: 'ef'.repeat(32) }), audit('enrollment.wait', 'p3'));
        await store.decidePendingEnrollment('p3', 'approved', 'token:officer', at(61), audit('enrollment.approve', 'p3'));
        await store.insertDevice(deviceRecord('dev-2'), audit('device.register', 'dev-2'));
        await store.putEnrollmentSecret(secretRecord('dev-2'), audit('device.secret', 'dev-2'));
        await store.insertPendingEnrollment(pendingRecord('q1', 'dev-2'), audit('enrollment.wait', 'q1'));
        await store.updateDevice('dev-1', { state: 'revoked' }, at(DAY), audit('device.update', 'dev-1'));
        assert.equal((await store.getDevice('dev-1'))!.currentSerial, 'e1');

        const r = await store.updateDevice('dev-1', { state: 'registered' }, at(2 * DAY), audit('device.update', 'dev-1'), { ifState: 'revoked', reregister: true });
        assert.equal(r.state, 'registered');
        assert.equal(r.currentSerial, undefined);
        assert.deepEqual(await store.getDevice('dev-1'), r);
        assert.equal((await store.getCertificate('e1'))!.deviceId, 'dev-1', 'the certificate keeps its device');
        assert.equal(await store.getEnrollmentSecret('dev-1'), undefined);
        const status = Object.fromEntries((await store.listPendingEnrollments()).map((p) => [p.id, [p.status, p.decidedBy, p.decidedAt?.getTime()]]));
        assert.deepEqual(status, {
          p1: ['issued', 'token:officer', at(60).getTime()],
          p2: ['rejected', 'cli:test', at(2 * DAY).getTime()],
          p3: ['rejected', 'cli:test', at(2 * DAY).getTime()],
          q1: ['pending', undefined, undefined],
        });
        assert.ok(await store.getEnrollmentSecret('dev-2'), 'other devices are untouched');
      });
    });
  });

  describe('registry: enrollment secrets', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await store.insertDevice(deviceRecord('dev-1'), audit('device.register', 'dev-1'));
    });

    it('ok put, get, and replace (a new secret is unused again)', async () => {
      assert.equal(await store.getEnrollmentSecret('dev-1'), undefined);
      const first = secretRecord('dev-1', { usedAt: at(HOUR) });
      await store.putEnrollmentSecret(first, audit('device.secret', 'dev-1'));
      assert.deepEqual(await store.getEnrollmentSecret('dev-1'), first);
      const second = secretRecord('dev-1', { secretHash: sha('second'), createdAt: at(2 * HOUR), expiresAt: at(2 * DAY) });
      await store.putEnrollmentSecret(second, audit('device.secret', 'dev-1'));
      assert.deepEqual(await store.getEnrollmentSecret('dev-1'), second);
      assert.equal((await store.listAudit({ action: 'device.secret' })).length, 2);
    });

    const failures: [string, EnrollmentSecretRecord, ProblemCode][] = [
      ['fail-unknown device', secretRecord('nope'), 'not_found'],
      ['fail-invalid date', secretRecord('dev-1', { expiresAt: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, secret, code] of failures) {
      it(`putEnrollmentSecret ${title} → ${code}, and writes nothing`, async () => {
        await expectProblem(store.putEnrollmentSecret(secret, audit('device.secret', secret.deviceId)), code);
        assert.equal(await store.getEnrollmentSecret(secret.deviceId), undefined);
        assert.equal((await readAuditLog(store)).length, 1);
      });
    }
  });

  describe('registry: trust anchors', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });

    it('ok insert, list (by addedAt, then fingerprint), filter by purpose, remove', async () => {
      const a = anchorRecord('a', { addedAt: at(2), der: ALL_BYTES });
      const b = anchorRecord('b', { addedAt: at(1) });
      const c = anchorRecord('c', { addedAt: at(2) });
      for (const t of [a, b, c]) await store.insertTrustAnchor(t, audit('trust.add', t.fingerprint));
      const byTime = [b, ...[a, c].sort((x, y) => (x.fingerprint < y.fingerprint ? -1 : 1))];
      assert.deepEqual(await store.listTrustAnchors(), byTime);
      assert.deepEqual(await store.listTrustAnchors('manufacturer'), byTime);
      await store.removeTrustAnchor(a.fingerprint, audit('trust.remove', a.fingerprint));
      assert.deepEqual(await store.listTrustAnchors(), byTime.filter((t) => t !== a));
      assert.deepEqual((await readAuditLog(store)).map((e) => e.action), ['trust.add', 'trust.add', 'trust.add', 'trust.remove']);
    });

    const failures: [string, TrustAnchorRecord, ProblemCode][] = [
      ['fail-duplicate fingerprint and purpose', anchorRecord('a', { subject: 'CN=other', addedAt: at(99) }), 'already_exists'],
      ['fail-unknown purpose', anchorRecord('b', { purpose: 'tls' as TrustAnchorRecord['purpose'] }), 'bad_request'],
    ];
    for (const [title, t, code] of failures) {
      it(`insertTrustAnchor ${title} → ${code}, and writes nothing`, async () => {
        await store.insertTrustAnchor(anchorRecord('a'), audit('trust.add'));
        await expectProblem(store.insertTrustAnchor(t, audit('trust.add')), code);
        assert.deepEqual(await store.listTrustAnchors(), [anchorRecord('a')]);
        assert.equal((await readAuditLog(store)).length, 1);
      });
    }

    it('removeTrustAnchor fail-unknown fingerprint → not_found, and writes nothing', async () => {
      await store.insertTrustAnchor(anchorRecord('a'), audit('trust.add'));
      await expectProblem(store.removeTrustAnchor(sha('nope'), audit('trust.remove')), 'not_found');
      assert.deepEqual(await store.listTrustAnchors(), [anchorRecord('a')]);
      assert.equal((await readAuditLog(store)).length, 1);
    });
  });

  describe('registry: orders', () => {
    let store: Store;
    beforeEach(() => {
      store = current();
    });

    it('ok insert, get, list (by createdAt, then id)', async () => {
      const orders = [
        orderRecord('o3', { createdAt: at(1) }),
        orderRecord('o2', { createdAt: at(2), model: 'PX-200', domain: 'plant-1', quantity: 1_000_000, used: 999_999, expiresAt: at(DAY) }),
        orderRecord('o1', { createdAt: at(2) }),
      ];
      for (const o of orders) await store.insertOrder(o, audit('order.create', o.id));
      assert.deepEqual(await store.getOrder('o2'), orders[1]);
      assert.equal(await store.getOrder('nope'), undefined);
      assert.deepEqual(await store.listOrders(), [orders[0], orders[2], orders[1]]);
      assert.equal((await readAuditLog(store)).length, 3);
    });

    const failures: [string, OrderRecord, ProblemCode][] = [
      ['fail-duplicate id', orderRecord('o1', { quantity: 9 }), 'already_exists'],
      ['fail-quantity 0', orderRecord('o2', { quantity: 0 }), 'bad_request'],
      ['fail-used above quantity', orderRecord('o2', { quantity: 2, used: 3 }), 'bad_request'],
      ['fail-negative used', orderRecord('o2', { used: -1 }), 'bad_request'],
      ['fail-fractional quantity', orderRecord('o2', { quantity: 2.5 }), 'bad_request'],
    ];
    for (const [title, o, code] of failures) {
      it(`insertOrder ${title} → ${code}, and writes nothing`, async () => {
        await store.insertOrder(orderRecord('o1'), audit('order.create', 'o1'));
        await expectProblem(store.insertOrder(o, audit('order.create', o.id)), code);
        assert.deepEqual(await store.listOrders(), [orderRecord('o1')]);
        assert.equal((await readAuditLog(store)).length, 1);
      });
    }
  });

  describe('registry: pending enrollments', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await store.insertDevices([deviceRecord('dev-1'), deviceRecord('dev-2')], audit('device.import'));
    });

    it('ok insert, get, list by createdAt and by status, find the newest open one for a key', async () => {
      const key = 'cd'.repeat(32);
      const ps = [
        pendingRecord('p1', 'dev-1', { spkiSha256: key, createdAt: at(1), status: 'rejected', decidedAt: at(2), decidedBy: 'token:officer' }),
        pendingRecord('p2', 'dev-1', { spkiSha256: key, createdAt: at(3), csrDer: ALL_BYTES }),
        pendingRecord('p3', 'dev-1', { spkiSha256: key, createdAt: at(5), status: 'issued' }),
        pendingRecord('p4', 'dev-2', { spkiSha256: key, createdAt: at(4), status: 'approved', decidedAt: at(6), decidedBy: 'token:officer' }),
      ];
      for (const p of ps) await store.insertPendingEnrollment(p, audit('enrollment.wait', p.id));
      assert.deepEqual(await store.getPendingEnrollment('p2'), ps[1]);
      assert.deepEqual(await store.getPendingEnrollment('p1'), ps[0]);
      assert.equal(await store.getPendingEnrollment('nope'), undefined);
      assert.deepEqual(await store.listPendingEnrollments(), [ps[0], ps[1], ps[3], ps[2]]);
      assert.deepEqual(await store.listPendingEnrollments('pending'), [ps[1]]);
      assert.deepEqual(await store.listPendingEnrollments('issued'), [ps[2]]);
      // p3 is newer but issued: done, not open.
      assert.deepEqual(await store.findPendingEnrollment('dev-1', key), ps[1]);
      assert.deepEqual(await store.findPendingEnrollment('dev-2', key), ps[3]);
      assert.equal(await store.findPendingEnrollment('dev-1', 'ef'.repeat(32)), undefined);
    });

    it('ok decide: pending → approved or rejected, recorded with who and when; deciding again → conflict', async () => {
      await store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'));
      await store.insertPendingEnrollment(pendingRecord('p2', 'dev-2'), audit('enrollment.wait', 'p2'));
      const approved = await store.decidePendingEnrollment('p1', 'approved', 'token:alice', at(HOUR), audit('enrollment.approve', 'p1'));
      const rejected = await store.decidePendingEnrollment('p2', 'rejected', 'token:bob', at(2 * HOUR), audit('enrollment.reject', 'p2'));
      assert.deepEqual(approved, pendingRecord('p1', 'dev-1', { status: 'approved', decidedAt: at(HOUR), decidedBy: 'token:alice' }));
      assert.deepEqual(rejected, pendingRecord('p2', 'dev-2', { status: 'rejected', decidedAt: at(2 * HOUR), decidedBy: 'token:bob' }));
      assert.deepEqual(await store.getPendingEnrollment('p1'), approved);
      const logBefore = await readAuditLog(store);
      for (const [id, status] of [['p1', 'rejected'], ['p1', 'approved'], ['p2', 'approved']] as const) {
        await expectProblem(store.decidePendingEnrollment(id, status, 'token:mallory', at(DAY), audit('enrollment.decide', id)), 'conflict');
      }
      assert.deepEqual(await store.getPendingEnrollment('p1'), approved);
      assert.deepEqual(await store.getPendingEnrollment('p2'), rejected);
      assert.deepEqual(await readAuditLog(store), logBefore);
    });

    it('concurrent decisions on one enrollment: exactly one wins', async () => {
      await store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'));
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => store.decidePendingEnrollment('p1', i % 2 ? 'approved' : 'rejected', `token:${i}`, at(i), audit('enrollment.decide', 'p1'))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'conflict'), String(r.reason));
      assert.equal((await store.listAudit({ action: 'enrollment.decide' })).length, 1);
    });

    const decideFailures: [string, string, string, ProblemCode][] = [
      ['fail-unknown id', 'nope', 'approved', 'not_found'],
      ['fail-not a decision', 'p1', 'issued', 'bad_request'],
    ];
    for (const [title, id, status, code] of decideFailures) {
      it(`decidePendingEnrollment ${title} → ${code}, and nothing changes`, async () => {
        await store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'));
        await expectProblem(store.decidePendingEnrollment(id, status as 'approved', 'token:x', at(1), audit('enrollment.decide', id)), code);
        assert.deepEqual(await store.listPendingEnrollments(), [pendingRecord('p1', 'dev-1')]);
        assert.equal((await readAuditLog(store)).length, 2);
      });
    }

    const insertFailures: [string, PendingEnrollmentRecord, ProblemCode][] = [
      ['fail-duplicate id', pendingRecord('p1', 'dev-2'), 'already_exists'],
      ['fail-unknown device', pendingRecord('p2', 'nope'), 'not_found'],
      ['fail-unknown status', pendingRecord('p3', 'dev-1', { status: 'waiting' as PendingEnrollmentRecord['status'] }), 'bad_request'],
    ];
    for (const [title, p, code] of insertFailures) {
      it(`insertPendingEnrollment ${title} → ${code}, and writes nothing`, async () => {
        await store.insertPendingEnrollment(pendingRecord('p1', 'dev-1'), audit('enrollment.wait', 'p1'));
        await expectProblem(store.insertPendingEnrollment(p, audit('enrollment.wait', p.id)), code);
        assert.deepEqual(await store.listPendingEnrollments(), [pendingRecord('p1', 'dev-1')]);
        assert.equal((await readAuditLog(store)).length, 2);
      });
    }
  });

  describe('registry: recordEnrollment', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRegistry(store);
    });

    it('ok consumes the secret, redeems the order, links the certificate, activates the device, completes the approval — one audit entry', async () => {
      await store.decidePendingEnrollment('p1', 'approved', 'token:officer', at(60), audit('enrollment.approve', 'p1'));
      const c = enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1', pendingId: 'p1' });
      const logBefore = await readAuditLog(store);
      await store.recordEnrollment(c, audit('certificate.enroll', 'e1', { device: 'dev-1' }));
      assert.deepEqual(await store.getCertificate('e1'), c.cert);
      assert.deepEqual(await store.listCertificates({ deviceId: 'dev-1' }), [c.cert]);
      assert.deepEqual(await store.getDevice('dev-1'), deviceRecord('dev-1', { orderId: 'o1', state: 'active', currentSerial: 'e1', updatedAt: c.now }));
      assert.deepEqual(await store.getEnrollmentSecret('dev-1'), secretRecord('dev-1', { usedAt: c.now }));
      assert.deepEqual(await store.getOrder('o1'), orderRecord('o1', { used: 1 }));
      assert.equal((await store.getPendingEnrollment('p1'))?.status, 'issued');
      const log = await readAuditLog(store);
      assert.deepEqual(log.slice(0, -1), logBefore);
      assert.deepEqual([log.at(-1)?.action, log.at(-1)?.target, log.at(-1)?.details], ['certificate.enroll', 'e1', { device: 'dev-1' }]);
      assert.ok(verifyAuditChain(log).ok);
    });

    it('ok re-enrollment of an active device with nothing to consume replaces its current certificate', async () => {
      await store.recordEnrollment(enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1') }), audit('certificate.enroll', 'e1'));
      const later = at(2 * HOUR);
      await store.recordEnrollment(enrollment('e2', 'dev-1', { replacesSerial: 'e1', now: later }), audit('certificate.enroll', 'e2'));
      const device = await store.getDevice('dev-1');
      assert.equal(device?.state, 'active');
      assert.equal(device?.currentSerial, 'e2');
      assert.deepEqual(device?.updatedAt, later);
      assert.deepEqual((await store.listCertificates({ deviceId: 'dev-1' })).map((c) => [c.serial, c.status]), [['e1', 'good'], ['e2', 'good']]);
      assert.deepEqual(await store.getOrder('o1'), orderRecord('o1'), 'no order redeemed');
    });

    const failures: [string, (s: Store) => Promise<unknown>, EnrollmentCommit, ProblemCode][] = [
      ['fail-wrong secret', async () => undefined, enrollment('e1', 'dev-1', { consumeSecretHash: sha('guess'), redeemOrderId: 'o1' }), 'unauthorized'],
      ['fail-secret of another device', (s) => s.insertDevice(deviceRecord('dev-2'), audit('device.register', 'dev-2')), enrollment('e1', 'dev-2', { consumeSecretHash: sha('dev-1') }), 'unauthorized'],
      ['fail-no secret at all', (s) => s.insertDevice(deviceRecord('dev-2'), audit('device.register', 'dev-2')), enrollment('e1', 'dev-2', { consumeSecretHash: sha('dev-2') }), 'unauthorized'],
      ['fail-expired secret', async () => undefined, enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), now: at(DAY) }), 'unauthorized'],
      [
        'fail-used secret',
        (s) => s.recordEnrollment(enrollment('e0', 'dev-1', { consumeSecretHash: sha('dev-1') }), audit('certificate.enroll', 'e0')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1') }),
        'unauthorized',
      ],
      ['fail-unknown order', async () => undefined, enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'ghost' }), 'policy_violation'],
      [
        'fail-exhausted order',
        (s) => s.insertOrder(orderRecord('o2', { quantity: 2, used: 2 }), audit('order.create', 'o2')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o2' }),
        'policy_violation',
      ],
      [
        'fail-expired order',
        (s) => s.insertOrder(orderRecord('o2', { expiresAt: at(HOUR) }), audit('order.create', 'o2')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o2' }),
        'policy_violation',
      ],
      [
        'fail-duplicate serial',
        (s) => s.insertCertificate(certRecord('e1'), audit('certificate.issue', 'e1')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1' }),
        'already_exists',
      ],
      ['fail-unknown issuer', async () => undefined, { ...enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1') }), cert: { ...certRecord('e1', { issuerCa: 'ghost' }), deviceId: 'dev-1' } }, 'not_found'],
      ['fail-unknown device', async () => undefined, enrollment('e1', 'ghost', { redeemOrderId: 'o1' }), 'not_found'],
      ...(['suspended', 'revoked', 'retired'] as const).map((state): [string, (s: Store) => Promise<unknown>, EnrollmentCommit, ProblemCode] => [
        `fail-${state} device`,
        (s) => s.updateDevice('dev-1', { state }, at(70), audit('device.update', 'dev-1')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1' }),
        'forbidden',
      ]),
      ['fail-enrollment still pending', async () => undefined, enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1', pendingId: 'p1' }), 'conflict'],
      [
        'fail-enrollment rejected',
        (s) => s.decidePendingEnrollment('p1', 'rejected', 'token:officer', at(60), audit('enrollment.reject', 'p1')),
        enrollment('e1', 'dev-1', { consumeSecretHash: sha('dev-1'), pendingId: 'p1' }),
        'conflict',
      ],
      [
        'fail-enrollment issued already',
        async (s) => {
          await s.decidePendingEnrollment('p1', 'approved', 'token:officer', at(60), audit('enrollment.approve', 'p1'));
          await s.recordEnrollment(enrollment('e0', 'dev-1', { pendingId: 'p1' }), audit('certificate.enroll', 'e0'));
        },
        enrollment('e1', 'dev-1', { pendingId: 'p1' }),
        'conflict',
      ],
      [
        'fail-approved enrollment of another device',
        async (s) => {
          await s.insertDevice(deviceRecord('dev-2'), audit('device.register', 'dev-2'));
          await s.decidePendingEnrollment('p1', 'approved', 'token:officer', at(60), audit('enrollment.approve', 'p1'));
        },
        enrollment('e1', 'dev-2', { pendingId: 'p1' }),
        'conflict',
      ],
      ['fail-unknown pending enrollment', async () => undefined, enrollment('e1', 'dev-1', { pendingId: 'nope' }), 'not_found'],
      ['fail-invalid date', async () => undefined, enrollment('e1', 'dev-1', { now: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, setUp, commit, code] of failures) {
      it(`${title} → ${code}, and nothing is stored`, async () => {
        await setUp(store);
        const before = await registrySnapshot(store);
        await expectProblem(store.recordEnrollment(commit, audit('certificate.enroll', commit.cert.serial)), code);
        assert.deepEqual(await registrySnapshot(store), before);
      });
    }

    it('10 concurrent enrollments with one secret: exactly one succeeds, the others are unauthorized and store nothing', async () => {
      const serials = Array.from({ length: 10 }, (_, i) => `race-${i}`);
      const results = await Promise.allSettled(
        serials.map((serial) => store.recordEnrollment(enrollment(serial, 'dev-1', { consumeSecretHash: sha('dev-1'), redeemOrderId: 'o1' }), audit('certificate.enroll', serial))),
      );
      const winners = serials.filter((_, i) => results[i].status === 'fulfilled');
      assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'unauthorized'), String(r.reason));
      assert.deepEqual((await store.listCertificates({ deviceId: 'dev-1' })).map((c) => c.serial), winners);
      assert.equal((await store.getDevice('dev-1'))?.currentSerial, winners[0]);
      assert.equal((await store.getOrder('o1'))?.used, 1);
      assert.deepEqual((await store.listAudit({ action: 'certificate.enroll' })).map((e) => e.target), winners);
      assert.ok(verifyAuditChain(await readAuditLog(store)).ok);
    });

    it('racing enrollments of one device without a secret: one wins, the rest conflict (no double order redemption)', async () => {
      const serials = Array.from({ length: 5 }, (_, i) => `nosecret-${i}`);
      const results = await Promise.allSettled(
        serials.map((serial) => store.recordEnrollment(enrollment(serial, 'dev-1', { redeemOrderId: 'o1' }), audit('certificate.enroll', serial))),
      );
      const winners = serials.filter((_, i) => results[i].status === 'fulfilled');
      assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'conflict'), String(r.reason));
      assert.equal((await store.getOrder('o1'))?.used, 1);
      // A renewal that saw the winner's certificate commits; one that saw none conflicts.
      await store.recordEnrollment(enrollment('renewed', 'dev-1', { replacesSerial: winners[0] }), audit('certificate.enroll', 'renewed'));
      await expectProblem(store.recordEnrollment(enrollment('stale', 'dev-1', { replacesSerial: winners[0] }), audit('certificate.enroll', 'stale')), 'conflict');
      assert.equal((await store.getDevice('dev-1'))?.currentSerial, 'renewed');
    });

    it('10 devices redeeming an order of 3 at once: exactly 3 succeed, the others fail policy_violation and store nothing', async () => {
      await store.insertOrder(orderRecord('o3', { quantity: 3 }), audit('order.create', 'o3'));
      const ids = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
      await store.insertDevices(ids.map((id) => deviceRecord(id, { orderId: 'o3' })), audit('device.import'));
      for (const id of ids) await store.putEnrollmentSecret(secretRecord(id), audit('device.secret', id));
      const results = await Promise.allSettled(
        ids.map((id) => store.recordEnrollment(enrollment(`s-${id}`, id, { consumeSecretHash: sha(id), redeemOrderId: 'o3' }), audit('certificate.enroll', `s-${id}`))),
      );
      const winners = ids.filter((_, i) => results[i].status === 'fulfilled');
      assert.equal(winners.length, 3, `winners: ${winners.join(', ')}`);
      for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'policy_violation'), String(r.reason));
      assert.equal((await store.getOrder('o3'))?.used, 3);
      for (const id of ids) {
        const won = winners.includes(id);
        const device = await store.getDevice(id);
        assert.equal(device?.state, won ? 'active' : 'registered', id);
        assert.equal(device?.currentSerial, won ? `s-${id}` : undefined, id);
        // A loser's secret was consumed inside its transaction, and that was rolled back.
        assert.equal((await store.getEnrollmentSecret(id))?.usedAt?.getTime(), won ? at(HOUR).getTime() : undefined, id);
        assert.equal((await store.listCertificates({ deviceId: id })).length, won ? 1 : 0, id);
      }
      assert.deepEqual((await store.listAudit({ action: 'certificate.enroll' })).map((e) => e.target).sort(), winners.map((id) => `s-${id}`).sort());
      assert.ok(verifyAuditChain(await readAuditLog(store)).ok);
    });
  });
}

// --- the revocation part of the suite ---

function escrowConformance(current: () => Store): void {
  describe('key custody: escrow keys and escrowed keys', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCertificate(certRecord('0a'), audit('certificate.issue', '0a'));
    });

    it('ok the newest escrow key is current; escrowed keys round-trip byte for byte', async () => {
      assert.equal(await store.getEscrowKey(), undefined);
      const k1 = { keyRef: 'pkcs11:token=t;id=%01', spki: ALL_BYTES, createdAt: at(HOUR) };
      await store.putEscrowKey(k1, audit('key.escrow.create', k1.keyRef));
      const k2 = { keyRef: 'soft:escrow-2', spki: Uint8Array.of(1, 2), createdAt: at(2 * HOUR) };
      await store.putEscrowKey(k2, audit('key.escrow.create', k2.keyRef));
      assert.deepEqual(await store.getEscrowKey(), k2);
      const e = { serial: '0a', escrowKeyRef: k1.keyRef, envelope: ALL_BYTES, createdAt: at(3 * HOUR) };
      await store.putEscrowedKey(e, audit('key.escrow', '0a'));
      assert.deepEqual(await store.getEscrowedKey('0a'), e);
      assert.equal(await store.getEscrowedKey('0b'), undefined);
      assert.deepEqual((await readAuditLog(store)).map((a) => a.action).slice(-3), ['key.escrow.create', 'key.escrow.create', 'key.escrow']);
    });

    const failures: [string, () => Promise<unknown>, ProblemCode][] = [
      ['fail-same escrow key twice', () => store.putEscrowKey({ keyRef: 'k1', spki: ALL_BYTES, createdAt: at(0) }, audit('key.escrow.create')), 'already_exists'],
      ['fail-second escrowed key for a certificate', () => store.putEscrowedKey({ serial: '0a', escrowKeyRef: 'k1', envelope: ALL_BYTES, createdAt: at(0) }, audit('key.escrow')), 'already_exists'],
      ['fail-unknown certificate', () => store.putEscrowedKey({ serial: 'ff', escrowKeyRef: 'k1', envelope: ALL_BYTES, createdAt: at(0) }, audit('key.escrow')), 'not_found'],
      ['fail-unknown escrow key', () => store.putEscrowedKey({ serial: '0a', escrowKeyRef: 'nope', envelope: ALL_BYTES, createdAt: at(0) }, audit('key.escrow')), 'not_found'],
    ];
    for (const [title, call, code] of failures) {
      it(`${title} → ${code}, and nothing changes`, async () => {
        await store.putEscrowKey({ keyRef: 'k1', spki: ALL_BYTES, createdAt: at(0) }, audit('key.escrow.create'));
        if (title.includes('second')) await store.putEscrowedKey({ serial: '0a', escrowKeyRef: 'k1', envelope: Uint8Array.of(7), createdAt: at(0) }, audit('key.escrow'));
        const before = [await store.getEscrowKey(), await store.getEscrowedKey('0a'), await readAuditLog(store)];
        await expectProblem(call(), code);
        assert.deepEqual([await store.getEscrowKey(), await store.getEscrowedKey('0a'), await readAuditLog(store)], before);
      });
    }
  });
}

function revocationConformance(current: () => Store): void {
  describe('revocation: listRevoked, countRevoked, shards', () => {
    let store: Store;
    // root: r01 (shard 0, with invalidity date), r03 (shard 1), r04 (shard 0,
    // on hold, expired), r06 (shard 2, revoked through revokeCertificate);
    // good: r02 (shard 0), r07 (shard 2), r08 (shard 7). issuing: r05.
    const certs = {
      r01: certRecord('r01', revokedAs('keyCompromise', at(10), at(5))),
      r02: certRecord('r02'),
      r03: certRecord('r03', { crlShard: 1, ...revokedAs('superseded', at(20)) }),
      r04: certRecord('r04', { notBefore: at(-3 * DAY), notAfter: at(-DAY), ...onHold(at(30)) }),
      r05: certRecord('r05', { issuerCa: 'issuing', ...revokedAs('keyCompromise', at(15)) }),
      r06: certRecord('r06', { crlShard: 2 }),
      r07: certRecord('r07', { crlShard: 2 }),
      r08: certRecord('r08', { crlShard: 7 }),
    };
    const r06 = revokedAs('cessationOfOperation', at(40));
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
      // Not in serial order, so the order of the answers is the store's doing.
      for (const c of [certs.r06, certs.r03, certs.r08, certs.r01, certs.r05, certs.r02, certs.r07, certs.r04]) await store.insertCertificate(c, audit('certificate.issue', c.serial));
      await store.revokeCertificate('r06', r06.revocation!, audit('certificate.revoke', 'r06'));
    });

    it('ok entries carry revokedAt, reason and invalidityDate (only when set), in serial order', async () => {
      assert.deepEqual(await store.listRevoked('root'), [entryOf('r01', certs.r01), entryOf('r03', certs.r03), entryOf('r04', certs.r04), entryOf('r06', r06)]);
      const [r01, r03] = await store.listRevoked('root');
      assert.ok(r01.invalidityDate instanceof Date && r01.revokedAt instanceof Date);
      assert.ok(!('invalidityDate' in r03), 'no invalidity date leaves no invalidityDate member');
    });

    const filters: [string, Parameters<Store['listRevoked']>[1], string[]][] = [
      ['ok no filter: the CA\'s revoked, expired included, good and other CAs\' excluded', {}, ['r01', 'r03', 'r04', 'r06']],
      ['ok shard 0', { shard: 0 }, ['r01', 'r04']],
      ['ok shard 1', { shard: 1 }, ['r03']],
      ['ok shard with only good certificates', { shard: 7 }, []],
      ['ok shard with no certificates', { shard: 5 }, []],
      ['ok revokedSince is inclusive', { revokedSince: at(20) }, ['r03', 'r04', 'r06']],
      ['ok revokedSince after every revocation', { revokedSince: at(41) }, []],
      ['ok revokedSince + shard', { revokedSince: at(20), shard: 0 }, ['r04']],
      ['ok afterSerial', { afterSerial: 'r03' }, ['r04', 'r06']],
      ['ok afterSerial between serials', { afterSerial: 'r02' }, ['r03', 'r04', 'r06']],
      ['ok limit', { limit: 2 }, ['r01', 'r03']],
      ['ok afterSerial + limit + shard', { afterSerial: 'r01', limit: 1, shard: 0 }, ['r04']],
    ];
    for (const [title, q, serials] of filters) {
      it(`listRevoked ${title}`, async () => {
        assert.deepEqual((await store.listRevoked('root', q)).map((e) => e.serial), serials);
      });
    }

    it('listRevoked of another CA, and of an unknown one', async () => {
      assert.deepEqual(await store.listRevoked('issuing'), [entryOf('r05', certs.r05)]);
      assert.deepEqual(await store.listRevoked('ghost'), []);
    });

    const failures: [string, Parameters<Store['listRevoked']>[1]][] = [
      ['fail-limit 0', { limit: 0 }],
      ['fail-limit -1', { limit: -1 }],
      ['fail-limit 2.5', { limit: 2.5 }],
      ['fail-shard -1', { shard: -1 }],
      ['fail-shard 1.5', { shard: 1.5 }],
      ['fail-invalid revokedSince', { revokedSince: new Date(NaN) }],
    ];
    for (const [title, q] of failures) {
      it(`listRevoked ${title} → bad_request`, async () => {
        await expectProblem(store.listRevoked('root', q), 'bad_request');
      });
    }

    it('ok listRevoked returns 10,000 by default, and keyset paging visits every entry once, in order', async () => {
      await insertCertificateRows(store, 'issuing', 0, 10_005);
      const firstPage = await store.listRevoked('issuing');
      assert.equal(firstPage.length, 10_000);
      assert.deepEqual(firstPage[0], { serial: serialOf(0), revokedAt: at(0), reason: 'keyCompromise' });
      const expected = [...Array.from({ length: 10_005 }, (_, i) => serialOf(i)), 'r05'];
      assert.deepEqual((await allRevoked(store, 'issuing', { limit: 3000 })).map((e) => e.serial), expected);
      assert.deepEqual((await allRevoked(store, 'issuing')).map((e) => e.serial), expected);
      assert.equal(await store.countRevoked('issuing'), 10_006);
    });

    it('ok listRevoked keeps the database\'s (bytewise) serial order for serials JavaScript orders otherwise', async () => {
      // Not hex, which the store does not enforce: UTF-8 puts U+FF61 before
      // U+1F600, UTF-16 (JavaScript's <) the other way round.
      const odd = ['\u{ff61}', '\u{1f600}', 'a'];
      for (const serial of odd) await store.insertCertificate(certRecord(serial, { issuerCa: 'issuing', ...revokedAs('unspecified', at(1)) }), audit('certificate.issue'));
      const bytewise = [...odd, 'r05'].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      assert.deepEqual(bytewise, ['a', 'r05', '\u{ff61}', '\u{1f600}']);
      assert.deepEqual((await store.listRevoked('issuing')).map((e) => e.serial), bytewise);
      assert.deepEqual((await allRevoked(store, 'issuing', { limit: 1 })).map((e) => e.serial), bytewise);
    });

    const counts: [string, string, number | undefined, number][] = [
      ['ok every shard', 'root', undefined, 4],
      ['ok shard 0', 'root', 0, 2],
      ['ok shard 2', 'root', 2, 1],
      ['ok shard with only good certificates', 'root', 7, 0],
      ['ok another CA', 'issuing', undefined, 1],
      ['ok unknown CA', 'ghost', undefined, 0],
    ];
    for (const [title, ca, shard, n] of counts) {
      it(`countRevoked ${title}`, async () => {
        assert.equal(await store.countRevoked(ca, shard), n);
      });
    }

    it('listCrlShards: shards holding any certificate of the CA, ascending', async () => {
      assert.deepEqual(await store.listCrlShards('root'), [0, 1, 2, 7]);
      assert.deepEqual(await store.listCrlShards('issuing'), [0]);
      assert.deepEqual(await store.listCrlShards('ghost'), []);
    });

    const inShard: [string, number, number][] = [
      ['ok good and revoked', 0, 3],
      ['ok revoked only', 1, 1],
      ['ok good only', 7, 1],
      ['ok empty', 3, 0],
    ];
    for (const [title, shard, n] of inShard) {
      it(`countInShard ${title}`, async () => {
        assert.equal(await store.countInShard('root', shard), n);
      });
    }

    it('fail-countRevoked, countInShard and listReleasedHolds of shard -1 → bad_request', async () => {
      await expectProblem(store.countRevoked('root', -1), 'bad_request');
      await expectProblem(store.countInShard('root', -1), 'bad_request');
      await expectProblem(store.listReleasedHolds('root', at(0), -1), 'bad_request');
    });

    it('ok recordEnrollment stores the certificate\'s crlShard', async () => {
      await store.insertDevice(deviceRecord('dev-1'), audit('device.register', 'dev-1'));
      const c = enrollment('e1', 'dev-1');
      c.cert.crlShard = 4;
      await store.recordEnrollment(c, audit('certificate.enroll', 'e1'));
      assert.deepEqual(await store.getCertificate('e1'), c.cert);
      assert.deepEqual(await store.listCertificates({ deviceId: 'dev-1' }), [c.cert]);
      assert.deepEqual(await store.listCrlShards('root'), [0, 1, 2, 4, 7]);
      assert.equal(await store.countInShard('root', 4), 1);
    });

    it('the CRL queries are index range scans in serial order (no sort, no table rows)', async () => {
      const db = rawDb(store);
      // Most certificates good, several CAs, a few shards: what PostgreSQL's
      // statistics should see to plan as it would in production (SQLite
      // keeps none unless told).
      for (let shard = 0; shard < 4; shard++) {
        await insertCertificateRows(store, 'root', shard * 2000, 1000, { shard, good: true });
        await insertCertificateRows(store, 'root', shard * 2000 + 1000, 100, { shard });
        await insertCertificateRows(store, 'issuing', shard * 2000 + 1100, 900, { shard, good: true });
      }
      if (store.kind === 'postgres') await sql`vacuum analyze certificates`.execute(db);
      const plans: [RevokedQuery, string][] = [
        [{ shard: 3, afterSerial: serialOf(10), revokedSince: at(1), limit: 100_000 }, 'certificates_crl'],
        [{ afterSerial: serialOf(10), revokedSince: at(1), limit: 100_000 }, 'certificates_crl_all_shards'],
      ];
      for (const [q, index] of plans) {
        const compiled = revokedPageQuery(db, store.kind, 'root', q).compile();
        if (store.kind === 'sqlite') {
          const plan = (await db.executeQuery(CompiledQuery.raw(`explain query plan ${compiled.sql}`, [...compiled.parameters]))).rows.map((r) => (r as { detail: string }).detail);
          assert.ok(plan.some((d) => d.startsWith(`SEARCH certificates USING COVERING INDEX ${index} `)), plan.join('\n'));
          assert.ok(!plan.some((d) => d.includes('TEMP B-TREE')), plan.join('\n'));
        } else {
          // On a table this small the planner may rather sort a bitmap scan's
          // few rows; with those plans off, what is left shows whether the
          // index alone can serve the query in serial order, as it must for
          // a million-entry CRL.
          const rows = await db.transaction().execute(async (trx) => {
            await sql`set local enable_bitmapscan = off`.execute(trx);
            await sql`set local enable_seqscan = off`.execute(trx);
            return (await trx.executeQuery(CompiledQuery.raw(`explain ${compiled.sql}`, [...compiled.parameters]))).rows;
          });
          const plan = rows.map((r) => Object.values(r as object)[0] as string);
          assert.ok(plan.some((d) => d.includes(`Index Only Scan using ${index} on certificates`)), plan.join('\n'));
          assert.ok(!plan.some((d) => /\bSort\b/.test(d)), plan.join('\n'));
        }
      }
    });
  });

  describe('revocation: releaseHold, listReleasedHolds', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
      await store.insertCertificate(certRecord('h1', onHold(at(10))), audit('certificate.issue', 'h1'));
    });

    it('ok on hold → good again: revocation cleared, release recorded, one audit entry; revoked again → listed again, release cleared', async () => {
      const logBefore = await readAuditLog(store);
      const released = await store.releaseHold('h1', at(50), audit('certificate.release', 'h1', { by: 'test' }));
      assert.deepEqual(released, certRecord('h1'));
      assert.deepEqual(await store.getCertificate('h1'), certRecord('h1'));
      assert.deepEqual(await store.listRevoked('root'), []);
      assert.equal(await store.countRevoked('root'), 0);
      assert.deepEqual(await store.listReleasedHolds('root', at(50)), [{ serial: 'h1', releasedAt: at(50) }]);
      const log = await readAuditLog(store);
      assert.deepEqual(log.slice(0, -1), logBefore);
      assert.deepEqual([log.at(-1)?.action, log.at(-1)?.target, log.at(-1)?.details], ['certificate.release', 'h1', { by: 'test' }]);

      // Held and released once more: the newest release counts.
      await store.revokeCertificate('h1', { revokedAt: at(60), reason: 'certificateHold' }, audit('certificate.hold', 'h1'));
      assert.deepEqual(await store.listReleasedHolds('root', at(0)), []);
      assert.deepEqual(await store.listRevoked('root'), [{ serial: 'h1', revokedAt: at(60), reason: 'certificateHold' }]);
      await store.releaseHold('h1', at(70), audit('certificate.release', 'h1'));
      assert.deepEqual(await store.listReleasedHolds('root', at(0)), [{ serial: 'h1', releasedAt: at(70) }]);

      // Revoked for good: in the CRL again, no longer a released hold.
      const revocation = { revokedAt: at(80), reason: 'keyCompromise' as const, invalidityDate: at(75) };
      await store.revokeCertificate('h1', revocation, audit('certificate.revoke', 'h1'));
      assert.deepEqual(await store.listRevoked('root'), [{ serial: 'h1', ...revocation }]);
      assert.deepEqual(await store.listReleasedHolds('root', at(0)), []);
      assert.deepEqual(await store.getCertificate('h1'), certRecord('h1', { status: 'revoked', revocation }));
      assert.ok(verifyAuditChain(await readAuditLog(store)).ok);
    });

    const failures: [string, (s: Store) => Promise<unknown>, string, Date, ProblemCode][] = [
      ['fail-unknown serial', async () => undefined, 'nope', at(99), 'not_found'],
      ['fail-good certificate', (s) => s.insertCertificate(certRecord('g1'), audit('certificate.issue', 'g1')), 'g1', at(99), 'conflict'],
      ['fail-revoked for another reason', (s) => s.insertCertificate(certRecord('k1', revokedAs('keyCompromise', at(5))), audit('certificate.issue', 'k1')), 'k1', at(99), 'conflict'],
      ['fail-released already', (s) => s.releaseHold('h1', at(20), audit('certificate.release', 'h1')), 'h1', at(99), 'conflict'],
      ['fail-invalid date', async () => undefined, 'h1', new Date(NaN), 'bad_request'],
    ];
    for (const [title, setUp, serial, when, code] of failures) {
      it(`releaseHold ${title} → ${code}, and nothing changes`, async () => {
        await setUp(store);
        const before = [await store.listCertificates(), await revocationSnapshot(store), await readAuditLog(store)];
        await expectProblem(store.releaseHold(serial, when, audit('certificate.release', serial)), code);
        assert.deepEqual([await store.listCertificates(), await revocationSnapshot(store), await readAuditLog(store)], before);
      });
    }

    it('concurrent releases of one hold: exactly one succeeds, the others conflict', async () => {
      const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.releaseHold('h1', at(100 + i), audit('certificate.release', 'h1'))));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(isProblem(r.reason, 'conflict'), String(r.reason));
      assert.equal((await store.listAudit({ action: 'certificate.release' })).length, 1);
      assert.equal((await store.listReleasedHolds('root', at(0))).length, 1);
    });

    it('listReleasedHolds: releases at or after `since`, of one CA (and shard), in serial order', async () => {
      const held: [string, string, number, number][] = [
        // serial, CA, shard, released at
        ['h3', 'root', 1, 60],
        ['h2', 'root', 0, 55],
        ['h4', 'issuing', 0, 58],
      ];
      for (const [serial, ca, crlShard] of held) await store.insertCertificate(certRecord(serial, { issuerCa: ca, crlShard, ...onHold(at(1)) }), audit('certificate.issue', serial));
      await store.releaseHold('h1', at(50), audit('certificate.release', 'h1'));
      for (const [serial, , , t] of held) await store.releaseHold(serial, at(t), audit('certificate.release', serial));
      const cases: [string, Date, number | undefined, ReleasedHold[]][] = [
        ['root', at(0), undefined, [{ serial: 'h1', releasedAt: at(50) }, { serial: 'h2', releasedAt: at(55) }, { serial: 'h3', releasedAt: at(60) }]],
        ['root', at(55), undefined, [{ serial: 'h2', releasedAt: at(55) }, { serial: 'h3', releasedAt: at(60) }]],
        ['root', at(61), undefined, []],
        ['root', at(0), 0, [{ serial: 'h1', releasedAt: at(50) }, { serial: 'h2', releasedAt: at(55) }]],
        ['root', at(0), 1, [{ serial: 'h3', releasedAt: at(60) }]],
        ['root', at(0), 9, []],
        ['issuing', at(0), undefined, [{ serial: 'h4', releasedAt: at(58) }]],
        ['ghost', at(0), undefined, []],
      ];
      for (const [ca, since, shard, expected] of cases) assert.deepEqual(await store.listReleasedHolds(ca, since, shard), expected, `${ca} ${since.toISOString()} ${shard}`);
      await expectProblem(store.listReleasedHolds('root', new Date(NaN)), 'bad_request');
    });
  });

  describe('revocation: nextCrlNumber', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
    });

    it('ok 1, 2, 3 per CA, each CA counting on its own, writing no audit entry', async () => {
      const logBefore = await readAuditLog(store);
      assert.deepEqual([await store.nextCrlNumber('root'), await store.nextCrlNumber('root'), await store.nextCrlNumber('issuing'), await store.nextCrlNumber('root')], [1, 2, 1, 3]);
      assert.deepEqual(await readAuditLog(store), logBefore);
    });

    it('10 concurrent calls get 10 distinct, consecutive numbers', async () => {
      await store.nextCrlNumber('root');
      const numbers = await Promise.all(Array.from({ length: 10 }, () => store.nextCrlNumber('root')));
      assert.deepEqual([...numbers].sort((a, b) => a - b), [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      assert.equal(await store.nextCrlNumber('root'), 12);
    });

    it('10 concurrent first calls for a CA (the counter is created by one of them) get 1 to 10', async () => {
      const numbers = await Promise.all(Array.from({ length: 10 }, () => store.nextCrlNumber('issuing')));
      assert.deepEqual([...numbers].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });

    it('fail-unknown CA → not_found, and counts nothing', async () => {
      await expectProblem(store.nextCrlNumber('ghost'), 'not_found');
      assert.equal(await store.nextCrlNumber('root'), 1);
    });
  });

  describe('revocation: CRLs', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
    });

    const roundTrips: [string, CrlRecord][] = [
      ['ok base CRL', crlRecord(1)],
      ['ok delta CRL with its base number, binary DER with every byte value', crlRecord(2, { kind: 'delta', baseNumber: 1, der: ALL_BYTES })],
      ['ok shard 3, no entries, a large number', crlRecord(2 ** 40, { shard: 3, entries: 0, thisUpdate: at(0), nextUpdate: at(DAY) })],
    ];
    for (const [title, crl] of roundTrips) {
      it(`putCrl ${title} round-trips through getLatestCrl and listLatestCrls, audited`, async () => {
        await store.putCrl(crl, audit('crl.publish', crl.ca, { number: crl.number }));
        assert.deepEqual(await store.getLatestCrl(crl.ca, crl.shard, crl.kind), crl);
        assert.deepEqual(await store.listLatestCrls(), [crl]);
        assert.deepEqual((await readAuditLog(store)).at(-1)?.details, { number: crl.number });
      });
    }

    it('ok a base CRL has no baseNumber member', async () => {
      await store.putCrl(crlRecord(1), audit('crl.publish', 'root'));
      const crl = await store.getLatestCrl('root', 0, 'base');
      assert.ok(crl && !('baseNumber' in crl));
    });

    it('ok history is kept, the highest number is the latest whatever the order of storing', async () => {
      for (const n of [3, 5, 4]) await store.putCrl(crlRecord(n), audit('crl.publish', 'root'));
      assert.deepEqual(await store.getLatestCrl('root', 0, 'base'), crlRecord(5));
      const stored = await rawDb(store).selectFrom('crls').select('number').orderBy('number').execute();
      assert.deepEqual(stored.map((r) => Number(r.number)), [3, 4, 5]);
    });

    it('ok getLatestCrl keeps CAs, shards and kinds apart; undefined when there is none', async () => {
      const crls = [
        crlRecord(1),
        crlRecord(2, { kind: 'delta', baseNumber: 1 }),
        crlRecord(3),
        crlRecord(4, { shard: 1 }),
        crlRecord(1, { ca: 'issuing' }),
      ];
      for (const c of crls) await store.putCrl(c, audit('crl.publish', c.ca));
      assert.deepEqual(await store.getLatestCrl('root', 0, 'base'), crls[2]);
      assert.deepEqual(await store.getLatestCrl('root', 0, 'delta'), crls[1]);
      assert.deepEqual(await store.getLatestCrl('root', 1, 'base'), crls[3]);
      assert.deepEqual(await store.getLatestCrl('issuing', 0, 'base'), crls[4]);
      assert.equal(await store.getLatestCrl('root', 1, 'delta'), undefined);
      assert.equal(await store.getLatestCrl('root', 2, 'base'), undefined);
      assert.equal(await store.getLatestCrl('ghost', 0, 'base'), undefined);
    });

    it('ok listLatestCrls: the newest of every (ca, shard, kind), ordered by them', async () => {
      assert.deepEqual(await store.listLatestCrls(), []);
      const crls = [
        crlRecord(1, { ca: 'root' }),
        crlRecord(1, { ca: 'issuing' }),
        crlRecord(2, { ca: 'issuing', kind: 'delta', baseNumber: 1 }),
        crlRecord(3, { ca: 'issuing', kind: 'delta', baseNumber: 1 }),
        crlRecord(4, { ca: 'issuing', shard: 2 }),
        crlRecord(5, { ca: 'issuing', shard: 1 }),
        crlRecord(6, { ca: 'issuing', shard: 1 }),
        crlRecord(2, { ca: 'root' }),
      ];
      for (const c of crls) await store.putCrl(c, audit('crl.publish', c.ca));
      const latest = await store.listLatestCrls();
      assert.deepEqual(latest.map((c) => [c.ca, c.shard, c.kind, c.number]), [
        ['issuing', 0, 'base', 1],
        ['issuing', 0, 'delta', 3],
        ['issuing', 1, 'base', 6],
        ['issuing', 2, 'base', 4],
        ['root', 0, 'base', 2],
      ]);
      assert.deepEqual(latest, [crls[1], crls[3], crls[6], crls[4], crls[7]]);
    });

    it('ok the same number in another shard or of another kind is another CRL', async () => {
      await store.putCrl(crlRecord(7), audit('crl.publish', 'root'));
      await store.putCrl(crlRecord(7, { shard: 1 }), audit('crl.publish', 'root'));
      await store.putCrl(crlRecord(7, { kind: 'delta', baseNumber: 6 }), audit('crl.publish', 'root'));
      await store.putCrl(crlRecord(7, { ca: 'issuing' }), audit('crl.publish', 'issuing'));
      assert.equal((await store.listLatestCrls()).length, 4);
    });

    const failures: [string, CrlRecord, ProblemCode][] = [
      ['fail-same CA, shard, kind and number', crlRecord(1, { der: Uint8Array.of(1), entries: 99 }), 'already_exists'],
      ['fail-unknown CA', crlRecord(2, { ca: 'ghost' }), 'not_found'],
      ['fail-unknown kind', crlRecord(2, { kind: 'full' as CrlRecord['kind'] }), 'bad_request'],
      ['fail-delta without baseNumber', crlRecord(2, { kind: 'delta' }), 'bad_request'],
      ['fail-base with a baseNumber', crlRecord(2, { baseNumber: 1 }), 'bad_request'],
      ['fail-number 0', crlRecord(0), 'bad_request'],
      ['fail-fractional number', crlRecord(2.5), 'bad_request'],
      ['fail-shard -1', crlRecord(2, { shard: -1 }), 'bad_request'],
      ['fail-negative entries', crlRecord(2, { entries: -1 }), 'bad_request'],
      ['fail-invalid nextUpdate', crlRecord(2, { nextUpdate: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, crl, code] of failures) {
      it(`putCrl ${title} → ${code}, and nothing is stored`, async () => {
        await store.putCrl(crlRecord(1), audit('crl.publish', 'root'));
        const before = [await revocationSnapshot(store), await readAuditLog(store)];
        await expectProblem(store.putCrl(crl, audit('crl.publish', crl.ca)), code);
        assert.deepEqual([await revocationSnapshot(store), await readAuditLog(store)], before);
        assert.equal(Number((await rawDb(store).selectFrom('crls').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n), 1);
      });
    }
  });

  describe('revocation: listRevokedColumns', () => {
    it('ok the same page as listRevoked, as columns (reason codes, ms, null without invalidity date)', async () => {
      const store = current();
      await withRoot(store);
      const recs = [
        certRecord('a01', revokedAs('keyCompromise', at(5), at(2))),
        certRecord('a02', revokedAs('unspecified', at(6))),
        certRecord('a03'),
        certRecord('a04', revokedAs('certificateHold', at(7))),
      ];
      for (const r of recs) await store.insertCertificate(r, audit('certificate.issue', r.serial));
      for (const q of [{}, { limit: 2 }, { afterSerial: 'a01' }, { revokedSince: at(6) }]) {
        const rows = await store.listRevoked('root', q);
        const cols = await store.listRevokedColumns('root', q);
        assert.deepEqual(cols, {
          serials: rows.map((e) => e.serial),
          revokedAt: rows.map((e) => e.revokedAt.getTime()),
          reasons: rows.map((e) => REVOCATION_REASONS[e.reason]),
          invalidityDates: rows.map((e) => e.invalidityDate?.getTime() ?? null),
        }, JSON.stringify(q));
      }
      assert.deepEqual(await store.listRevokedColumns('ghost'), { serials: [], revokedAt: [], reasons: [], invalidityDates: [] });
    });
  });

  describe('cluster: leases', () => {
    it('ok taken when free, renewed by its holder, refused to others until it expires, released', async () => {
      const store = current();
      assert.equal(await store.acquireLease('crl', 'node-a', at(30_000), at(0)), true);
      assert.equal(await store.acquireLease('crl', 'node-b', at(40_000), at(10_000)), false, 'a running lease is not taken');
      assert.equal(await store.acquireLease('crl', 'node-a', at(60_000), at(20_000)), true, 'renewed');
      assert.equal(await store.acquireLease('crl', 'node-b', at(70_000), at(59_999)), false);
      assert.equal(await store.acquireLease('crl', 'node-b', at(90_000), at(60_000)), true, 'taken over once expired');
      assert.equal(await store.acquireLease('crl', 'node-a', at(95_000), at(61_000)), false, 'the old holder lost it');
      assert.equal(await store.acquireLease('other', 'node-a', at(95_000), at(61_000)), true, 'leases are per name');
      await store.releaseLease('crl', 'node-a'); // not its lease: nothing happens
      assert.equal(await store.acquireLease('crl', 'node-a', at(95_000), at(62_000)), false);
      await store.releaseLease('crl', 'node-b');
      assert.equal(await store.acquireLease('crl', 'node-a', at(95_000), at(62_000)), true, 'free at once after a release');
    });

    it('ok of many holders racing for a free or an expired lease, exactly one wins', async () => {
      const store = current();
      const free = await Promise.all(Array.from({ length: 8 }, (_, i) => store.acquireLease('race', `n${i}`, at(10_000), at(0))));
      assert.equal(free.filter(Boolean).length, 1);
      const expired = await Promise.all(Array.from({ length: 8 }, (_, i) => store.acquireLease('race', `m${i}`, at(30_000), at(20_000))));
      assert.equal(expired.filter(Boolean).length, 1);
    });
  });

  describe('certificate change feed (OCSP caches)', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
    });
    const seqOfLast = async () => (await readAuditLog(store)).at(-1)!.seq;

    it('ok every status change is on the feed under its audit seq, each certificate once, at its last change', async () => {
      const start = await store.lastAuditSeq();
      assert.equal(start, await seqOfLast());
      assert.deepEqual(await store.listCertificateChanges(start), []);
      await store.insertCertificate(certRecord('a1'), audit('certificate.issue', 'a1'));
      const issuedA1 = await seqOfLast();
      await store.appendAudit(audit('token.create', 't1')); // not a status change
      await store.insertDevice(deviceRecord('dev-1'), audit('device.register', 'dev-1'));
      await store.recordEnrollment(enrollment('e1', 'dev-1'), audit('certificate.enroll', 'e1'));
      const enrolledE1 = await seqOfLast();
      await store.insertCertificate(certRecord('h1'), audit('certificate.issue', 'h1'));
      await store.revokeCertificate('h1', { revokedAt: at(5), reason: 'certificateHold' }, audit('certificate.hold', 'h1'));
      const heldH1 = await seqOfLast();
      assert.deepEqual(await store.listCertificateChanges(start), [
        { seq: issuedA1, serial: 'a1' },
        { seq: enrolledE1, serial: 'e1' },
        { seq: heldH1, serial: 'h1' },
      ]);
      await store.releaseHold('h1', at(6), audit('certificate.release', 'h1'));
      const releasedH1 = await seqOfLast();
      await store.revokeCertificate('a1', { revokedAt: at(7), reason: 'superseded' }, audit('certificate.revoke', 'a1'));
      const revokedA1 = await seqOfLast();
      assert.deepEqual(await store.listCertificateChanges(enrolledE1), [
        { seq: releasedH1, serial: 'h1' },
        { seq: revokedA1, serial: 'a1' },
      ]);
      assert.deepEqual(await store.listCertificateChanges(revokedA1), []);
      assert.equal(await store.lastAuditSeq(), revokedA1);
    });

    it('ok pages in seq order with limit', async () => {
      const start = await store.lastAuditSeq();
      for (let i = 0; i < 7; i++) await store.insertCertificate(certRecord(serialOf(i)), audit('certificate.issue', serialOf(i)));
      const seen: string[] = [];
      for (let after = start; ; ) {
        const page = await store.listCertificateChanges(after, 3);
        assert.ok(page.length <= 3);
        seen.push(...page.map((c) => c.serial));
        if (page.length < 3) break;
        after = page.at(-1)!.seq;
      }
      assert.deepEqual(seen, Array.from({ length: 7 }, (_, i) => serialOf(i)));
    });

    it('ok a refused change leaves the feed as it was', async () => {
      await store.insertCertificate(certRecord('r1', revokedAs('keyCompromise', at(1))), audit('certificate.issue', 'r1'));
      const before = await store.listCertificateChanges(0);
      await expectProblem(store.revokeCertificate('r1', { revokedAt: at(2), reason: 'superseded' }, audit('certificate.revoke', 'r1')), 'already_revoked');
      await expectProblem(store.releaseHold('r1', at(3), audit('certificate.release', 'r1')), 'conflict');
      await expectProblem(store.insertCertificate(certRecord('r1'), audit('certificate.issue', 'r1')), 'already_exists');
      assert.deepEqual(await store.listCertificateChanges(0), before);
    });

  });

  describe('revocation: OCSP signers', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      await store.insertCa(caRecord('issuing', { kind: 'issuing', parentName: 'root' }), audit('ca.create', 'issuing'));
    });

    it('ok the newest by createdAt wins; of two stored in the same millisecond, the later', async () => {
      assert.equal(await store.getOcspSigner('root'), undefined);
      const s1 = signerRecord('k1', { createdAt: at(HOUR), certDer: ALL_BYTES });
      await store.putOcspSigner(s1, audit('ocsp.signer.create', 'root'));
      assert.deepEqual(await store.getOcspSigner('root'), s1);
      const s2 = signerRecord('k2', { createdAt: at(2 * HOUR), notAfter: at(60 * DAY) });
      await store.putOcspSigner(s2, audit('ocsp.signer.create', 'root'));
      assert.deepEqual(await store.getOcspSigner('root'), s2);
      // Stored later but created earlier (another node's clock): not the newest.
      await store.putOcspSigner(signerRecord('k0', { createdAt: at(0) }), audit('ocsp.signer.create', 'root'));
      assert.deepEqual(await store.getOcspSigner('root'), s2);
      const s3 = signerRecord('k3', { createdAt: s2.createdAt });
      await store.putOcspSigner(s3, audit('ocsp.signer.create', 'root'));
      assert.deepEqual(await store.getOcspSigner('root'), s3);
      // Other CAs keep their own.
      assert.equal(await store.getOcspSigner('issuing'), undefined);
      const other = signerRecord('k9', { ca: 'issuing', createdAt: at(0) });
      await store.putOcspSigner(other, audit('ocsp.signer.create', 'issuing'));
      assert.deepEqual(await store.getOcspSigner('issuing'), other);
      assert.deepEqual(await store.getOcspSigner('root'), s3);
      assert.equal((await store.listAudit({ action: 'ocsp.signer.create' })).length, 5);
    });

    const failures: [string, OcspSignerRecord, ProblemCode][] = [
      ['fail-unknown CA', signerRecord('k1', { ca: 'ghost' }), 'not_found'],
      ['fail-invalid notAfter', signerRecord('k1', { notAfter: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, signer, code] of failures) {
      it(`putOcspSigner ${title} → ${code}, and nothing is stored`, async () => {
        const logBefore = await readAuditLog(store);
        await expectProblem(store.putOcspSigner(signer, audit('ocsp.signer.create', signer.ca)), code);
        assert.equal(await store.getOcspSigner('root'), undefined);
        assert.deepEqual(await readAuditLog(store), logBefore);
      });
    }
  });
}

function firmwareConformance(current: () => Store): void {
  describe('firmware signers', () => {
    let store: Store;
    beforeEach(async () => {
      store = current();
      await withRoot(store);
      for (const serial of ['f1', 'f2', 'f3']) await store.insertCertificate(certRecord(serial, { profile: 'code-signing' }), audit('certificate.issue', serial));
    });

    it('ok insert, get and list (newest first, then by name), one audit entry each', async () => {
      assert.equal(await store.getFirmwareSigner('release'), undefined);
      assert.deepEqual(await store.listFirmwareSigners(), []);
      const a = firmwareSignerRecord('release', 'f1', { createdAt: at(HOUR) });
      const b = firmwareSignerRecord('beta', 'f2', { createdAt: at(2 * HOUR) });
      const c = firmwareSignerRecord('alpha', 'f3', { createdAt: at(2 * HOUR) });
      for (const r of [a, b, c]) await store.insertFirmwareSigner(r, audit('firmware.signer.create', r.name));
      assert.deepEqual(await store.getFirmwareSigner('release'), a);
      assert.deepEqual(await store.listFirmwareSigners(), [c, b, a]);
      assert.equal((await store.listAudit({ action: 'firmware.signer.create' })).length, 3);
    });

    const failures: [string, FirmwareSignerRecord, ProblemCode][] = [
      ['fail-taken name', firmwareSignerRecord('release', 'f2'), 'already_exists'],
      ['fail-certificate of another signer', firmwareSignerRecord('other', 'f1'), 'already_exists'],
      ['fail-unknown CA', firmwareSignerRecord('other', 'f2', { ca: 'ghost' }), 'not_found'],
      ['fail-unknown certificate', firmwareSignerRecord('other', 'nope'), 'not_found'],
      ['fail-invalid notAfter', firmwareSignerRecord('other', 'f2', { notAfter: new Date(NaN) }), 'bad_request'],
    ];
    for (const [title, rec, code] of failures) {
      it(`insertFirmwareSigner ${title} → ${code}, and nothing is stored`, async () => {
        await store.insertFirmwareSigner(firmwareSignerRecord('release', 'f1'), audit('firmware.signer.create', 'release'));
        const logBefore = await readAuditLog(store);
        await expectProblem(store.insertFirmwareSigner(rec, audit('firmware.signer.create', rec.name)), code);
        assert.deepEqual((await store.listFirmwareSigners()).map((f) => f.name), ['release']);
        assert.deepEqual(await readAuditLog(store), logBefore);
      });
    }

    it('fail-an audit entry that cannot be written rolls the signer back', async () => {
      await expectProblem(store.insertFirmwareSigner(firmwareSignerRecord('release', 'f1'), { actor: 'cli:test', action: 'broken', details: { n: 1n } }), 'bad_request');
      assert.deepEqual(await store.listFirmwareSigners(), []);
    });
  });
}

/** Drops members that are undefined, as the store's records do. */
function compactRecord<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// --- SQLite ---

describe('SQLite store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetpki-store-'));
  let n = 0;
  const freshPath = () => join(dir, `store-${++n}.db`);
  after(() => rmSync(dir, { recursive: true, force: true }));

  conformance(
    'sqlite',
    (options) => openStore(freshPath(), options),
    () => openSqliteStore(freshPath()),
  );

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

  it('another OS process taking CRL numbers at the same time: every number once, none skipped', async () => {
    const path = freshPath();
    const store = await openStore(path);
    await withRoot(store);
    const moduleUrl = new URL('../../src/store/open_store.ts', import.meta.url).href;
    const childCode = `
      const { openStore } = await import(${JSON.stringify(moduleUrl)});
      const store = await openStore(${JSON.stringify(path)});
      process.stdout.write('ready\\n');
      const got = [];
      for (let i = 0; i < 100; i++) got.push(await store.nextCrlNumber('root'));
      process.stdout.write('numbers ' + JSON.stringify(got) + '\\n');
      await store.close();`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', childCode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          stdout += d;
          if (stdout.includes('ready')) resolve();
        });
        child.on('exit', () => reject(new Error(`child exited before it was ready: ${stderr}`)));
      });
      const mine: number[] = [];
      for (let i = 0; i < 100; i++) mine.push(await store.nextCrlNumber('root'));
      assert.equal(await exited, 0, stderr);
      const theirs = JSON.parse(/numbers (.*)/.exec(stdout)![1]) as number[];
      for (const got of [mine, theirs]) assert.deepEqual(got, [...got].sort((a, b) => a - b), 'each process sees its numbers increase');
      assert.deepEqual([...mine, ...theirs].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
    } finally {
      child.kill();
      await store.close();
    }
  });

  // Speed is npm run bench's (crl-publish-from-sqlite-1M); this checks the paging of a CRL-sized table.
  it('listRevoked pages of 100,000 through a quarter million revoked certificates of one CA, every one once, in order', async (t) => {
    const path = freshPath();
    const setUp = await openStore(path);
    await withRoot(setUp);
    await setUp.insertCa(caRecord('other'), audit('ca.create', 'other'));
    await setUp.close();
    const rows = 255_500;
    // Filled directly, as fast as SQLite goes: no WAL (nobody else has the
    // file open), no fsync, one statement generating the rows. Every third
    // has an invalidity date; every 50th is good, every 1000th belongs to
    // another CA.
    const fill = new SQLite(path);
    try {
      fill.pragma('journal_mode = delete');
      fill.pragma('synchronous = off');
      fill
        .prepare(
          `with recursive n(i) as (select 0 union all select i + 1 from n where i < @rows - 1)
           insert into certificates (serial, issuer_ca, profile, subject, sans, not_before, not_after, spki_sha256, der, status,
                                     revoked_at, revocation_reason, invalidity_date, created_at, requester)
           select printf('%032x', i), case when i % 1000 = 998 then 'other' else 'root' end, 'device', 'CN=d', '[]', @t0, @t0, 'ab', x'3000',
                  case when i % 50 = 49 then 'good' else 'revoked' end,
                  case when i % 50 = 49 then null else @t0 + i end,
                  case when i % 50 = 49 then null when i % 2 = 0 then 'keyCompromise' else 'certificateHold' end,
                  case when i % 50 <> 49 and i % 3 = 0 then @t0 - i end,
                  @t0, 'test'
           from n`,
        )
        .run({ t0: T0, rows });
    } finally {
      fill.close();
    }
    const revokedOf = (ca: string) => Array.from({ length: rows }, (_, i) => i).filter((i) => i % 50 !== 49 && (i % 1000 === 998) === (ca === 'other'));
    const store = await openStore(path);
    try {
      const expected = revokedOf('root').length;
      assert.equal(await store.countRevoked('root'), expected);
      assert.ok(expected >= 250_000, String(expected));
      const started = performance.now();
      let n = 0;
      let last = '';
      for (let after: string | undefined; ; ) {
        const page = await store.listRevoked('root', { afterSerial: after, limit: 100_000 });
        n += page.length;
        assert.ok(page.length === 0 || page[0].serial > last);
        if (page.length < 100_000) break;
        after = last = page[page.length - 1].serial;
      }
      const ms = performance.now() - started;
      t.diagnostic(`listRevoked: ${n} entries in ${Math.round(ms)} ms`);
      assert.equal(n, expected);
      // Spot checks: the entries are right, and a page is at most 100,000.
      assert.deepEqual(await store.listRevoked('root', { limit: 2 }), [
        { serial: serialOf(0), revokedAt: at(0), reason: 'keyCompromise', invalidityDate: at(0) },
        { serial: serialOf(1), revokedAt: at(1), reason: 'certificateHold' },
      ]);
      assert.equal((await store.listRevoked('root', { limit: 1_000_000 })).length, 100_000);
      const other = revokedOf('other').filter((i) => i > 250_000);
      assert.deepEqual((await store.listRevoked('other', { afterSerial: serialOf(250_000), limit: 2 })).map((e) => e.serial), other.slice(0, 2).map(serialOf));
      const since = revokedOf('root').filter((i) => i >= rows - 100);
      assert.deepEqual((await store.listRevoked('root', { revokedSince: at(rows - 100) })).map((e) => e.serial), since.map(serialOf));
    } finally {
      await store.close();
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

  conformance(
    'postgres',
    async (options) => openStore(await server.createTestSchema(), options),
    async () => openPostgresStore(await server.createTestSchema()),
  );

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

  it('several stores (fleetpki nodes) racing for an expired lease: exactly one wins', async () => {
    const url = await server.createTestSchema();
    const stores = await Promise.all(Array.from({ length: 4 }, () => openStore(url)));
    try {
      assert.equal(await stores[0].acquireLease('crl', 'first', at(1000), at(0)), true);
      for (let round = 1; round <= 5; round++) {
        const won = await Promise.all(stores.flatMap((s, i) => [0, 1].map((k) => s.acquireLease('crl', `node-${round}-${i}-${k}`, at(round * 10_000 + 1000), at(round * 10_000)))));
        assert.equal(won.filter(Boolean).length, 1, `round ${round}`);
      }
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('two stores (two fleetpki nodes) taking CRL numbers at once: every number once', async () => {
    const url = await server.createTestSchema();
    const [a, b] = await Promise.all([openStore(url), openStore(url)]);
    try {
      await withRoot(a);
      const numbers = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).nextCrlNumber('root')));
      assert.deepEqual(numbers.sort((x, y) => x - y), Array.from({ length: 40 }, (_, i) => i + 1));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('fail-unreachable server → config_error', async () => {
    await expectProblem(openPostgresStore('postgres://nobody:x@127.0.0.1:1/none'), 'config_error');
  });
});
