/**
 * The Store methods of migration 10 (issue 8: device events, webhooks and
 * their deliveries, expiry notices, stale devices, operator certificates),
 * one suite run against SQLite and PostgreSQL, and the upgrade of a
 * database made at version 8 (9, supplier manifests, may be there or not).
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { readAuditLog, verifyAuditChain } from '../../src/store/audit_chain.js';
import { KyselyStore } from '../../src/store/kysely_store.js';
import { MIGRATIONS, migrateToLatest } from '../../src/store/migrations.js';
import type { Database } from '../../src/store/schema.js';
import type { AuditInput, CertificateRecord, DeviceEventCommit, DeviceEventRecord, DeviceRecord, Store, WebhookRecord } from '../../src/store/store.js';
import { onBothStores } from '../helpers/stores.js';

const T0 = Date.parse('2031-02-03T04:05:06.789Z');
const at = (ms: number) => new Date(T0 + ms);
const DAY = 86_400_000;
const audit = (action: string, target?: string): AuditInput => ({ actor: 'cli:test', action, target });

function certRecord(serial: string, over: Partial<CertificateRecord> = {}): CertificateRecord {
  return { serial, issuerCa: 'root', profile: 'device', subject: `CN=${serial}`, sans: [], notBefore: at(0), notAfter: at(300 * DAY), spkiSha256: 'ab'.repeat(32), der: Uint8Array.of(0x30, 0x00, serial.length), status: 'good', createdAt: at(1), requester: 'cli:test', ...over };
}

function deviceRecord(id: string, over: Partial<DeviceRecord> = {}): DeviceRecord {
  return { id, profile: 'device', state: 'registered', sans: [], requireApproval: false, attributes: {}, createdAt: at(10), updatedAt: at(10), ...over };
}

function eventRecord(deviceId: string, over: Partial<DeviceEventRecord> = {}): DeviceEventRecord {
  return { id: `e-${Math.random().toString(36).slice(2)}`, deviceId, kind: 'lost', at: at(DAY), actor: 'token:olga', source: 'api', fromState: 'active', toState: 'suspended', reason: 'certificateHold', revokedSerials: [], details: { note: 'n' }, ...over };
}

function webhookRecord(name: string, over: Partial<WebhookRecord> = {}): WebhookRecord {
  return { name, direction: 'outbound', url: 'http://127.0.0.1:9/x', thresholdsDays: [30, 7], sealedSecret: Uint8Array.of(1, 2, 3), createdAt: at(5), ...over };
}

async function expectProblem(p: Promise<unknown>, code: ProblemCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e, code), `expected ProblemError ${code}, got ${String(e)}`);
    return true;
  });
}

function rawDb(store: Store): Kysely<Database> {
  assert.ok(store instanceof KyselyStore);
  return store.db;
}

/** A device with certificates c1 (good, current), c2 (good, older) and c3 (revoked keyCompromise). */
async function activeDevice(store: Store, id = 'dev-1'): Promise<void> {
  await store.insertCa({ name: 'root', kind: 'root', subject: 'CN=root', certDer: Uint8Array.of(0x30, 0), notBefore: at(0), notAfter: at(3650 * DAY), createdAt: at(0) }, audit('ca.create', 'root'));
  await store.insertDevice(deviceRecord(id), audit('device.register', id));
  await store.recordEnrollment({ cert: { ...certRecord('c2'), deviceId: id }, now: at(HOUR) }, audit('certificate.enroll', 'c2'));
  await store.recordEnrollment({ cert: { ...certRecord('c1'), deviceId: id }, replacesSerial: 'c2', now: at(2 * HOUR) }, audit('certificate.enroll', 'c1'));
  await store.insertCertificate({ ...certRecord('c3'), deviceId: id }, audit('certificate.issue', 'c3'));
  await store.revokeCertificate('c3', { revokedAt: at(3 * HOUR), reason: 'keyCompromise' }, audit('certificate.revoke', 'c3'));
  await store.insertCertificate(certRecord('other'), audit('certificate.issue', 'other'));
}
const HOUR = 3_600_000;

function commit(over: Partial<DeviceEventCommit> = {}): DeviceEventCommit {
  return { event: eventRecord('dev-1'), ifState: 'active', ifCurrentSerial: 'c1', revocation: { revokedAt: at(DAY), reason: 'certificateHold' }, patch: { state: 'suspended' }, ...over };
}

type Open = () => Promise<Store>;

function suite(name: string, open: Open, openUnmigrated: Open): void {
  describe(`Store lifecycle (migration 10): ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('recordDeviceEvent', () => {
      it('ok a hold: every good certificate of the device on hold, the device suspended, one audit entry, the event in its history', async () => {
        await activeDevice(store);
        const seq = await store.lastAuditSeq();
        const r = await store.recordDeviceEvent(commit(), { actor: 'token:olga', action: 'device.event.lost', target: 'dev-1' });
        assert.equal(r.device.state, 'suspended');
        assert.equal(r.device.currentSerial, 'c1');
        assert.deepEqual(r.event.revokedSerials, ['c1', 'c2']);
        for (const s of ['c1', 'c2']) assert.deepEqual((await store.getCertificate(s))?.revocation, { revokedAt: at(DAY), reason: 'certificateHold' });
        assert.equal((await store.getCertificate('c3'))?.revocation?.reason, 'keyCompromise');
        assert.equal((await store.getCertificate('other'))?.status, 'good');
        const log = await store.listAudit({ afterSeq: seq });
        assert.equal(log.length, 1);
        assert.deepEqual(log[0].details.revoked, ['c1', 'c2']);
        assert.equal(r.event.auditSeq, log[0].seq);
        // The OCSP change feed sees both revocations at that entry.
        assert.deepEqual((await store.listCertificateChanges(seq)).map((c) => c.serial).sort(), ['c1', 'c2']);
        assert.deepEqual(await store.listDeviceEvents('dev-1'), [r.event]);
        assert.ok(verifyAuditChain(await readAuditLog(store)).ok);
      });

      it('ok a permanent reason turns holds into it, not other revocations; re-registration unlinks and drops the secret', async () => {
        await activeDevice(store);
        await store.recordDeviceEvent(commit(), audit('device.event.lost', 'dev-1'));
        await store.putEnrollmentSecret({ deviceId: 'dev-1', secretHash: 'ab'.repeat(32), createdAt: at(0), expiresAt: at(DAY * 9) }, audit('device.secret', 'dev-1'));
        const r = await store.recordDeviceEvent(
          commit({ event: eventRecord('dev-1', { kind: 'transferred', fromState: 'suspended', toState: 'registered', reason: 'affiliationChanged' }), ifState: 'suspended', revocation: { revokedAt: at(2 * DAY), reason: 'affiliationChanged' }, patch: { state: 'registered', owner: 'Globex', domain: 'plant-b' }, reregister: true }),
          audit('device.transfer', 'dev-1'),
        );
        assert.deepEqual(r.event.revokedSerials, ['c1', 'c2']);
        assert.equal((await store.getCertificate('c1'))?.revocation?.reason, 'affiliationChanged');
        assert.equal((await store.getCertificate('c3'))?.revocation?.reason, 'keyCompromise');
        assert.equal(r.device.currentSerial, undefined);
        assert.equal(r.device.owner, 'Globex');
        assert.equal(r.device.domain, 'plant-b');
        assert.equal(await store.getEnrollmentSecret('dev-1'), undefined);
        assert.deepEqual((await store.listDeviceEvents('dev-1')).map((e) => e.kind), ['lost', 'transferred']);
      });

      const fails: Array<[string, (s: Store) => Promise<unknown>, ProblemCode]> = [
        ['fail-unknown device → not_found', (s) => s.recordDeviceEvent(commit({ event: eventRecord('ghost') }), audit('device.event.lost', 'ghost')), 'not_found'],
        ['fail-the device moved on (state) → conflict', (s) => s.recordDeviceEvent(commit({ ifState: 'registered' }), audit('device.event.lost', 'dev-1')), 'conflict'],
        ['fail-the device moved on (certificate) → conflict', (s) => s.recordDeviceEvent(commit({ ifCurrentSerial: 'c2' }), audit('device.event.lost', 'dev-1')), 'conflict'],
        ['fail-bad event kind → bad_request', (s) => s.recordDeviceEvent(commit({ event: eventRecord('dev-1', { kind: 'exploded' as never }) }), audit('device.event', 'dev-1')), 'bad_request'],
        ['fail-an audit entry that cannot be written', (s) => s.recordDeviceEvent(commit(), { actor: 'x', action: 'y', details: { n: 1n } }), 'bad_request'],
      ];
      for (const [title, run, code] of fails) {
        it(`${title}, and nothing changes`, async () => {
          await activeDevice(store);
          const log = await readAuditLog(store);
          const certs = await store.listCertificates();
          await expectProblem(run(store), code);
          assert.deepEqual(await readAuditLog(store), log);
          assert.deepEqual(await store.listCertificates(), certs);
          assert.equal((await store.getDevice('dev-1'))?.state, 'active');
          assert.deepEqual(await store.listDeviceEvents('dev-1'), []);
        });
      }

      it('ok a delivery id is spent once per source; a replay → conflict and changes nothing; pruning forgets old ones', async () => {
        await activeDevice(store);
        await store.recordDeviceEvent(commit({ delivery: { source: 'crm', id: 'd-1', receivedAt: at(DAY) } }), audit('device.event.lost', 'dev-1'));
        const log = await readAuditLog(store);
        await expectProblem(store.recordDeviceEvent(commit({ ifState: 'suspended', patch: {}, delivery: { source: 'crm', id: 'd-1', receivedAt: at(DAY + 1) } }), audit('device.event.lost', 'dev-1')), 'conflict');
        assert.deepEqual(await readAuditLog(store), log);
        await store.recordDeviceEvent(commit({ ifState: 'suspended', patch: {}, delivery: { source: 'mdm', id: 'd-1', receivedAt: at(DAY + 2) } }), audit('device.event.lost', 'dev-1'));
        assert.equal(await store.pruneWebhookDeliveries(at(DAY + 1)), 1);
        await store.recordDeviceEvent(commit({ ifState: 'suspended', patch: {}, delivery: { source: 'crm', id: 'd-1', receivedAt: at(DAY + 3) } }), audit('device.event.lost', 'dev-1'));
        assert.equal((await store.listDeviceEvents('dev-1')).length, 3);
      });

      it('ok concurrent events on one device: exactly one applies', async () => {
        await activeDevice(store);
        const results = await Promise.allSettled(Array.from({ length: 4 }, () => store.recordDeviceEvent(commit({ event: eventRecord('dev-1') }), audit('device.event.lost', 'dev-1'))));
        // The others find the device suspended already (conflict), on either backend.
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        assert.equal((await store.listDeviceEvents('dev-1')).length, 1);
      });
    });

    describe('webhooks and expiry notices', () => {
      it('ok insert, get, list by direction, remove (its notices go too), audited', async () => {
        const out = webhookRecord('ops');
        const { url: _url, ...inbound } = webhookRecord('crm', { direction: 'inbound', thresholdsDays: [] });
        const inn: WebhookRecord = inbound;
        await store.insertWebhook(out, audit('webhook.create', 'ops'));
        await store.insertWebhook(inn, audit('webhook.create', 'crm'));
        assert.deepEqual(await store.getWebhook('ops'), out);
        assert.deepEqual(await store.listWebhooks(), [inn, out]);
        assert.deepEqual(await store.listWebhooks('inbound'), [inn]);
        await store.recordExpiryNotices([{ webhook: 'ops', serial: 's1', thresholdDays: 30, sentAt: at(1) }, { webhook: 'ops', serial: 's1', thresholdDays: 7, sentAt: at(1) }]);
        await store.recordExpiryNotices([{ webhook: 'ops', serial: 's1', thresholdDays: 30, sentAt: at(2) }]);
        assert.deepEqual((await store.listExpiryNotices('ops', ['s1', 's2'])).map((n) => `${n.serial}/${n.thresholdDays}/${n.sentAt.getTime() - T0}`).sort(), ['s1/30/1', 's1/7/1']);
        await store.removeWebhook('ops', audit('webhook.remove', 'ops'));
        assert.deepEqual(await store.listExpiryNotices('ops', ['s1']), []);
        assert.deepEqual((await readAuditLog(store)).map((e) => e.action), ['webhook.create', 'webhook.create', 'webhook.remove']);
      });

      const fails: Array<[string, (s: Store) => Promise<unknown>, ProblemCode]> = [
        ['fail-taken name → already_exists', (s) => s.insertWebhook(webhookRecord('ops'), audit('webhook.create')), 'already_exists'],
        ['fail-outbound without URL → bad_request', (s) => s.insertWebhook(webhookRecord('x', { url: undefined }), audit('webhook.create')), 'bad_request'],
        ['fail-inbound with a URL → bad_request', (s) => s.insertWebhook(webhookRecord('y', { direction: 'inbound' }), audit('webhook.create')), 'bad_request'],
        ['fail-remove unknown → not_found', (s) => s.removeWebhook('ghost', audit('webhook.remove')), 'not_found'],
        ['fail-notice for an unknown webhook → not_found', (s) => s.recordExpiryNotices([{ webhook: 'ghost', serial: 's', thresholdDays: 1, sentAt: at(0) }]), 'not_found'],
      ];
      for (const [title, run, code] of fails) {
        it(`${title}, and nothing changes`, async () => {
          await store.insertWebhook(webhookRecord('ops'), audit('webhook.create', 'ops'));
          const log = await readAuditLog(store);
          await expectProblem(run(store), code);
          assert.deepEqual(await readAuditLog(store), log);
          assert.deepEqual((await store.listWebhooks()).map((w) => w.name), ['ops']);
        });
      }
    });

    describe('listStaleDevices', () => {
      it('ok devices past their renewal point, soonest expiry first; renewed, retired and revoked ones are not', async () => {
        await store.insertCa({ name: 'root', kind: 'root', subject: 'CN=root', certDer: Uint8Array.of(0x30, 0), notBefore: at(0), notAfter: at(3650 * DAY), createdAt: at(0) }, audit('ca.create', 'root'));
        // 300-day certificates: 2/3 of the lifetime is day 200.
        const mk = async (id: string, notBeforeDay: number, state: DeviceRecord['state'] = 'active') => {
          await store.insertDevice(deviceRecord(id), audit('device.register', id));
          await store.recordEnrollment({ cert: { ...certRecord(`s-${id}`, { notBefore: at(notBeforeDay * DAY), notAfter: at((notBeforeDay + 300) * DAY) }), deviceId: id }, now: at(HOUR) }, audit('certificate.enroll', id));
          if (state !== 'active') await store.updateDevice(id, { state }, at(HOUR), audit('device.update', id));
        };
        await mk('late', 0);
        await mk('later', -50);
        await mk('fresh', 100);
        await mk('gone', -50, 'retired');
        await mk('bad', -50, 'revoked');
        const stale = await store.listStaleDevices(at(210 * DAY), 2 / 3);
        assert.deepEqual(stale.map((s) => `${s.device.id}:${s.certificate.serial}`), ['later:s-later', 'late:s-late']);
        assert.deepEqual((await store.listStaleDevices(at(160 * DAY), 2 / 3)).map((s) => s.device.id), ['later']);
        assert.deepEqual((await store.listStaleDevices(at(210 * DAY), 2 / 3, 1)).map((s) => s.device.id), ['later']);
        await expectProblem(store.listStaleDevices(at(0), 0), 'bad_request');
      });
    });

    describe('operator certificates', () => {
      it('ok insert, get, list, remove, audited; fail cases change nothing', async () => {
        await store.insertCa({ name: 'root', kind: 'root', subject: 'CN=root', certDer: Uint8Array.of(0x30, 0), notBefore: at(0), notAfter: at(3650 * DAY), createdAt: at(0) }, audit('ca.create', 'root'));
        await store.insertCertificate(certRecord('op1'), audit('certificate.issue', 'op1'));
        const rec = { serial: 'op1', name: 'alice', role: 'auditor' as const, createdAt: at(7) };
        await store.insertOperatorCertificate(rec, audit('operator.cert.add', 'op1'));
        assert.deepEqual(await store.getOperatorCertificate('op1'), rec);
        assert.deepEqual(await store.listOperatorCertificates(), [rec]);
        const log = await readAuditLog(store);
        await expectProblem(store.insertOperatorCertificate(rec, audit('operator.cert.add', 'op1')), 'already_exists');
        await expectProblem(store.insertOperatorCertificate({ ...rec, serial: 'ghost' }, audit('operator.cert.add', 'ghost')), 'not_found');
        await expectProblem(store.insertOperatorCertificate({ ...rec, serial: 'op1', role: 'root' as never }, audit('operator.cert.add', 'op1')), 'bad_request');
        await expectProblem(store.removeOperatorCertificate('ghost', audit('operator.cert.remove', 'ghost')), 'not_found');
        assert.deepEqual(await readAuditLog(store), log);
        await store.removeOperatorCertificate('op1', audit('operator.cert.remove', 'op1'));
        assert.equal(await store.getOperatorCertificate('op1'), undefined);
      });
    });

    describe('schema: version 10 (lifecycle)', () => {
      it('ok migrating a database created at version 9 (before lifecycle) keeps its devices; events work on it', async () => {
        const old = await openUnmigrated();
        try {
          const db = rawDb(old);
          assert.deepEqual(await migrateToLatest(old.kind, (fn) => db.transaction().execute(fn), MIGRATIONS.filter((m) => m.version <= 9)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
          await activeDevice(old);
          await old.migrate();
          const versions = await db.selectFrom('schema_version').select('version').orderBy('version').execute();
          assert.deepEqual(versions.map((v) => Number(v.version)), MIGRATIONS.map((m) => m.version));
          assert.equal((await old.getDevice('dev-1'))?.currentSerial, 'c1');
          const r = await old.recordDeviceEvent(commit(), audit('device.event.lost', 'dev-1'));
          assert.deepEqual(r.event.revokedSerials, ['c1', 'c2']);
          assert.ok(verifyAuditChain(await readAuditLog(old)).ok);
        } finally {
          await old.close();
        }
      });
    });
  });
}

onBothStores(suite);
