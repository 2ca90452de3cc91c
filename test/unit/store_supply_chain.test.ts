/**
 * The supply-chain part of the Store contract (migration 9, issue 8), run
 * against SQLite and PostgreSQL alike: supplier anchors, manifest imports
 * (atomic, never twice), manifest entries consumed by the first enrollment
 * of a stage, and the device's chain of identities. Kept beside
 * store_conformance.test.ts, with the same fixtures' shape.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { verifyAuditChain } from '../../src/store/audit_chain.js';
import { MIGRATIONS, migrateToLatest } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';
import type { AuditInput, CertificateRecord, DeviceIdentityRecord, DeviceRecord, ManifestEntryRecord, ManifestImport, ManifestRecord, Store, SupplierAnchorRecord } from '../../src/store/store.js';
import { onBothStores } from '../helpers/stores.js';

const T0 = Date.parse('2031-02-03T04:05:06.789Z');
const at = (ms: number) => new Date(T0 + ms);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const audit = (action: string, target?: string): AuditInput => ({ actor: 'cli:test', action, target });

const anchor = (supplier: string, n = 1): SupplierAnchorRecord => ({ fingerprint: sha(`${supplier}-${n}`), supplier, subject: `CN=${supplier} CA ${n}`, der: Uint8Array.of(0x30, 0x01, n), addedAt: at(n) });
const device = (id: string, over: Partial<DeviceRecord> = {}): DeviceRecord => ({ id, profile: 'device', state: 'registered', sans: [], requireApproval: false, attributes: {}, createdAt: at(10), updatedAt: at(10), ...over });
const manifest = (digest: string, over: Partial<ManifestRecord> = {}): ManifestRecord => ({
  digest,
  cmsSha256: sha(`cms-${digest}`),
  supplier: 'ChipCo',
  stage: 'assembly',
  profile: 'device',
  signerSubject: 'CN=ChipCo Signer',
  signerFingerprint: sha('signer'),
  signedAt: at(20),
  createdAt: at(19),
  importedAt: at(30),
  importedBy: 'token:officer',
  deviceCount: 2,
  cms: Uint8Array.of(0x30, 0x03, 1, 2, 3),
  ...over,
});
const entry = (deviceId: string, digest: string, over: Partial<ManifestEntryRecord> = {}): ManifestEntryRecord => ({ deviceId, stage: 'assembly', manifestDigest: digest, certificateSha256: sha(`idevid-${deviceId}`), model: 'sensor-x', batch: 'B1', ...over });
const cert = (serial: string, deviceId?: string): CertificateRecord => ({
  serial, issuerCa: 'root', profile: 'device', subject: `CN=${deviceId}`, sans: [], notBefore: at(0), notAfter: at(1e10), spkiSha256: sha(serial), der: Uint8Array.of(0x30, 0x00, serial.length), status: 'good', createdAt: at(40), requester: 'device', ...(deviceId ? { deviceId } : {}),
});
const identity = (deviceId: string, kind: DeviceIdentityRecord['kind'], serial: string, over: Partial<DeviceIdentityRecord> = {}): DeviceIdentityRecord => ({
  deviceId, kind, fingerprint: sha(`${kind}-${serial}`), serial, subject: `CN=${deviceId}`, issuer: 'CN=issuer', notBefore: at(0), notAfter: at(1e10), recordedAt: at(50), ...over,
});

/** The import of `digest` registering a and b for stage assembly. */
function importOf(digest: string, ids = ['a', 'b'], over: Partial<ManifestImport> = {}): ManifestImport {
  return { manifest: manifest(digest, { deviceCount: ids.length }), entries: ids.map((id) => entry(id, digest)), newDevices: ids.map((id) => device(id, { stage: 'assembly', model: 'sensor-x' })), movedDevices: [], now: at(30), ...over };
}

async function expectProblem(p: Promise<unknown>, code: ProblemCode, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e, code), `expected ProblemError ${code}, got ${String(e)}`);
    if (detail) assert.match((e as Error).message, detail);
    return true;
  });
}

async function auditActions(store: Store): Promise<string[]> {
  return (await store.listAudit({ limit: 1000 })).map((e) => e.action);
}

const rawDb = (s: Store) => (s as unknown as { db: Kysely<Database> }).db;

async function withRoot(store: Store): Promise<void> {
  await store.insertCa({ name: 'root', kind: 'root', subject: 'CN=root', certDer: Uint8Array.of(0x30, 0), notBefore: at(0), notAfter: at(1e11), createdAt: at(0) }, audit('ca.create', 'root'));
}

function contract(name: string, open: () => Promise<Store>, openUnmigrated: () => Promise<Store>): void {
  describe(`Store supply chain: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('ok-migrating a version 8 database keeps its devices, with no stage; the supply chain works on it', async () => {
      const old = await openUnmigrated();
      try {
        const db = rawDb(old);
        assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.slice(0, 8)), [1, 2, 3, 4, 5, 6, 7, 8]);
        await db.insertInto('devices').values({ id: 'old-1', profile: 'device', model: null, domain: null, owner: null, state: 'registered', sans: '[]', order_id: null, require_approval: 0, current_serial: null, attributes: '{}', created_at: T0, updated_at: T0 } as never).execute();
        await old.migrate();
        assert.equal((await db.selectFrom('schema_version').select('version').orderBy('version', 'desc').executeTakeFirstOrThrow()).version, MIGRATIONS.at(-1)!.version);
        assert.deepEqual(await old.getDevice('old-1'), device('old-1', { createdAt: at(0), updatedAt: at(0) }));
        await old.importManifest(importOf('m1', ['c']), audit('manifest.import', 'm1'));
        assert.equal((await old.getDevice('c'))?.stage, 'assembly');
      } finally {
        await old.close();
      }
    });

    describe('supplier anchors', () => {
      it('ok-add, list (all or one supplier), remove a supplier with all its anchors; audited', async () => {
        await store.insertSupplierAnchor(anchor('ChipCo', 1), audit('supplier.add', 'ChipCo'));
        await store.insertSupplierAnchor(anchor('ChipCo', 2), audit('supplier.add', 'ChipCo'));
        await store.insertSupplierAnchor(anchor('DevCo', 3), audit('supplier.add', 'DevCo'));
        assert.deepEqual(await store.listSupplierAnchors(), [anchor('ChipCo', 1), anchor('ChipCo', 2), anchor('DevCo', 3)]);
        assert.deepEqual(await store.listSupplierAnchors('DevCo'), [anchor('DevCo', 3)]);
        assert.equal(await store.removeSupplier('ChipCo', audit('supplier.remove', 'ChipCo')), 2);
        assert.deepEqual(await store.listSupplierAnchors(), [anchor('DevCo', 3)]);
        assert.deepEqual(await auditActions(store), ['supplier.add', 'supplier.add', 'supplier.add', 'supplier.remove']);
      });
      it('fail-the same CA twice (even for another supplier) → already_exists; an unknown supplier → not_found', async () => {
        await store.insertSupplierAnchor(anchor('ChipCo'), audit('supplier.add'));
        await expectProblem(store.insertSupplierAnchor({ ...anchor('ChipCo'), supplier: 'Other' }, audit('supplier.add')), 'already_exists');
        await expectProblem(store.removeSupplier('Nobody', audit('supplier.remove')), 'not_found');
        assert.deepEqual(await auditActions(store), ['supplier.add']);
      });
    });

    describe('importManifest', () => {
      it('ok-records the manifest, its entries and the devices, with one audit entry', async () => {
        await store.importManifest(importOf('m1'), audit('manifest.import', 'm1'));
        assert.deepEqual(await store.getManifest('m1'), manifest('m1'));
        assert.deepEqual(await store.listManifests(), [manifest('m1')]);
        assert.deepEqual(await store.listManifestEntries({ manifestDigest: 'm1' }), [entry('a', 'm1'), entry('b', 'm1')]);
        assert.deepEqual(await store.getManifestEntry('a', 'assembly'), entry('a', 'm1'));
        assert.equal(await store.getManifestEntry('a', 'operation'), undefined);
        assert.deepEqual(await store.getDevice('b'), device('b', { stage: 'assembly', model: 'sensor-x' }));
        assert.deepEqual(await auditActions(store), ['manifest.import']);
      });

      it('ok-a second manifest moves registered devices into the next stage; entries per device by import order', async () => {
        await store.importManifest(importOf('m1'), audit('manifest.import', 'm1'));
        const next: ManifestImport = {
          manifest: manifest('m2', { stage: 'operation', supplier: 'DevCo', importedAt: at(60), profile: 'device-tls', domain: 'plant-a' }),
          entries: [entry('a', 'm2', { stage: 'operation', certificateSha256: undefined, publicKeySha256: sha('key-a') })],
          newDevices: [],
          movedDevices: [{ id: 'a', patch: { profile: 'device-tls', domain: 'plant-a' }, ifState: 'registered', ifStage: 'assembly' }],
          now: at(60),
        };
        await store.importManifest(next, audit('manifest.import', 'm2'));
        const a = await store.getDevice('a');
        assert.equal(a?.stage, 'operation');
        assert.equal(a?.profile, 'device-tls');
        assert.equal(a?.domain, 'plant-a');
        assert.deepEqual(a?.updatedAt, at(60));
        assert.deepEqual((await store.listManifestEntries({ deviceId: 'a' })).map((e) => [e.stage, e.manifestDigest]), [['assembly', 'm1'], ['operation', 'm2']]);
        assert.deepEqual((await store.listManifests()).map((m) => m.digest), ['m2', 'm1']);
        assert.deepEqual((await store.listManifests({ supplier: 'ChipCo' })).map((m) => m.digest), ['m1']);
      });

      const refusals: Array<[string, (s: Store) => Promise<ManifestImport>, ProblemCode, RegExp]> = [
        ['the same digest again (a replay)', async () => importOf('m1', ['z']), 'already_exists', /replay/],
        ['a device in the stage already', async () => ({ ...importOf('m9', []), entries: [entry('a', 'm9')], movedDevices: [{ id: 'a', patch: {}, ifState: 'registered', ifStage: 'assembly' }] }), 'conflict', /stage assembly already/],
        ['a new device registered meanwhile', async (s) => {
          await s.insertDevice(device('late'), audit('device.register', 'late'));
          return importOf('m9', ['x', 'late']);
        }, 'conflict', /registered meanwhile/],
        ['a moved device that changed state meanwhile', async () => ({ ...importOf('m9', []), entries: [entry('a', 'm9', { stage: 'operation' })], movedDevices: [{ id: 'a', patch: {}, ifState: 'active', ifStage: 'assembly' }] }), 'conflict', /changed meanwhile/],
        ['an entry with both hashes', async () => ({ ...importOf('m9', ['y']), entries: [entry('y', 'm9', { publicKeySha256: sha('k') })] }), 'bad_request', /exactly one/],
      ];
      for (const [what, make, code, detail] of refusals) {
        it(`fail-${what} → ${code}, nothing changes`, async () => {
          await store.importManifest(importOf('m1'), audit('manifest.import', 'm1'));
          const imp = await make(store);
          const before = { devices: await store.listDevices(), manifests: await store.listManifests(), audit: await auditActions(store), entries: await store.listManifestEntries({ deviceId: 'a' }) };
          await expectProblem(store.importManifest(imp, audit('manifest.import', imp.manifest.digest)), code, detail);
          assert.deepEqual(await store.listDevices(), before.devices);
          assert.deepEqual(await store.listManifests(), before.manifests);
          assert.deepEqual(await store.listManifestEntries({ deviceId: 'a' }), before.entries);
          assert.deepEqual(await auditActions(store), before.audit);
          assert.equal(await store.getManifestEntry('x', 'assembly'), undefined);
        });
      }

      it('ok-a thousand devices in one import (bulk inserts)', async () => {
        const ids = Array.from({ length: 1200 }, (_, i) => `dev-${String(i).padStart(5, '0')}`);
        await store.importManifest(importOf('big', ids), audit('manifest.import', 'big'));
        assert.equal((await store.listManifestEntries({ manifestDigest: 'big' })).length, 1200);
        assert.equal((await store.listDevices({ limit: 1000 })).length, 1000);
      });
    });

    describe('recordEnrollment with a stage admission and identities', () => {
      it('ok-marks the entry used with the serial, records the identities once, in the chain order', async () => {
        await withRoot(store);
        await store.importManifest(importOf('m1'), audit('manifest.import', 'm1'));
        const mfr = identity('a', 'manufacturer', '77', { der: Uint8Array.of(0x30, 0x01, 7), recordedAt: at(100) });
        const first = identity('a', 'certificate', '01', { stage: 'assembly', recordedAt: at(100) });
        await store.recordEnrollment({ cert: { ...cert('01', 'a'), deviceId: 'a' }, admitStage: 'assembly', identities: [mfr, first], now: at(100) }, audit('certificate.issue', '01'));
        assert.deepEqual(await store.getManifestEntry('a', 'assembly'), { ...entry('a', 'm1'), usedAt: at(100), usedSerial: '01' });
        // The manufacturer identity again (a second bootstrap) is kept once.
        await store.recordEnrollment({ cert: { ...cert('02', 'a'), deviceId: 'a' }, replacesSerial: '01', identities: [mfr], now: at(200) }, audit('certificate.issue', '02'));
        assert.deepEqual(await store.listDeviceIdentities('a'), [mfr, first]);
        assert.deepEqual(await store.listDeviceIdentities('b'), []);
        assert.deepEqual(verifyAuditChain(await store.listAudit({ limit: 1000 })), { ok: true, entries: 4 });
      });

      it('fail-an entry used already, or none for that stage → conflict; nothing is issued', async () => {
        await withRoot(store);
        await store.importManifest(importOf('m1'), audit('manifest.import', 'm1'));
        await store.recordEnrollment({ cert: { ...cert('01', 'a'), deviceId: 'a' }, admitStage: 'assembly', now: at(100) }, audit('certificate.issue', '01'));
        await expectProblem(store.recordEnrollment({ cert: { ...cert('02', 'a'), deviceId: 'a' }, replacesSerial: '01', admitStage: 'assembly', now: at(200) }, audit('certificate.issue', '02')), 'conflict', /stage assembly/);
        await expectProblem(store.recordEnrollment({ cert: { ...cert('03', 'b'), deviceId: 'b' }, admitStage: 'operation', identities: [identity('b', 'certificate', '03')], now: at(200) }, audit('certificate.issue', '03')), 'conflict');
        assert.equal(await store.getCertificate('02'), undefined);
        assert.equal(await store.getCertificate('03'), undefined);
        assert.deepEqual(await store.listDeviceIdentities('b'), []);
        assert.equal((await store.getDevice('b'))?.currentSerial, undefined);
      });
    });
  });
}

onBothStores(contract);
