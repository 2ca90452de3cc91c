/**
 * Enrollments committed together (kysely_store.ts groupedWrite): many
 * devices enrolling at once share a transaction and its durable commit on
 * SQLite, yet each one succeeds or fails alone, exactly as if it had its own
 * transaction; on PostgreSQL each keeps its own. Run on both stores.
 */
import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isProblem } from '../../src/errors.js';
import { verifyAuditChain } from '../../src/store/audit_chain.js';
import type { KyselyStore } from '../../src/store/kysely_store.js';
import type { AuditInput, CertificateRecord, DeviceRecord, EnrollmentCommit, Store } from '../../src/store/store.js';
import { onBothStores } from '../helpers/stores.js';

const T0 = Date.parse('2031-02-03T04:05:06.789Z');
const at = (ms: number) => new Date(T0 + ms);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const audit = (action: string, target?: string): AuditInput => ({ actor: 'cli:test', action, target });
const device = (id: string): DeviceRecord => ({ id, profile: 'device', state: 'registered', sans: [], requireApproval: false, attributes: {}, createdAt: at(10), updatedAt: at(10) });
const cert = (serial: string, deviceId: string): CertificateRecord & { deviceId: string } => ({
  serial, issuerCa: 'root', profile: 'device', subject: `CN=${deviceId}`, sans: [], notBefore: at(0), notAfter: at(1e10), spkiSha256: sha(serial), der: Uint8Array.of(0x30, 0x00, serial.length), status: 'good', createdAt: at(40), requester: 'device', deviceId,
});
const enrollment = (serial: string, deviceId: string, over: Partial<EnrollmentCommit> = {}): EnrollmentCommit => ({ cert: cert(serial, deviceId), consumeSecretHash: sha(`secret-${deviceId}`), now: at(100), ...over });
const N = 40;
const ids = Array.from({ length: N }, (_, i) => `dev-${String(i).padStart(2, '0')}`);

onBothStores((kind, open) => {
  describe(`grouped enrollment commits: ${kind}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
      await store.insertCa({ name: 'root', kind: 'root', subject: 'CN=root', certDer: Uint8Array.of(0x30, 0), notBefore: at(0), notAfter: at(1e11), createdAt: at(0) }, audit('ca.create', 'root'));
      for (const id of ids) {
        await store.insertDevice(device(id), audit('device.register', id));
        await store.putEnrollmentSecret({ deviceId: id, secretHash: sha(`secret-${id}`), createdAt: at(20), expiresAt: at(1e9) }, audit('device.secret.create', id));
      }
    });
    afterEach(async () => store.close());

    it('ok-many at once: all commit, each with its audit entry, the chain intact; on SQLite in a few shared commits', async () => {
      const before = { ...(store as KyselyStore).groupedCommits };
      await Promise.all(ids.map((id, i) => store.recordEnrollment(enrollment(`c${i}`, id), audit('certificate.enroll', `c${i}`))));
      for (const [i, id] of ids.entries()) assert.equal((await store.getDevice(id))?.currentSerial, `c${i}`);
      const entries = await store.listAudit({ limit: 10_000 });
      assert.equal(entries.filter((e) => e.action === 'certificate.enroll').length, N);
      assert.deepEqual(verifyAuditChain(entries), { ok: true, entries: entries.length });
      const g = (store as KyselyStore).groupedCommits;
      if (kind === 'sqlite') {
        assert.equal(g.writes - before.writes, N);
        assert.ok(g.commits - before.commits <= 3, `${g.commits - before.commits} commits for ${N} enrollments`);
      } else assert.equal(g.commits, before.commits, 'PostgreSQL: one transaction each');
    });

    it('fail-one refused among many (a replayed secret, a duplicate serial) is rolled back alone; the others commit', async () => {
      const jobs = ids.map((id, i) => store.recordEnrollment(enrollment(`c${i}`, id), audit('certificate.enroll', `c${i}`)));
      // Within the same turn: the same device's secret again, and an existing serial for another device.
      const replay = store.recordEnrollment(enrollment('replay', ids[3]), audit('certificate.enroll', 'replay'));
      const dup = store.recordEnrollment(enrollment('c5', ids[7], { consumeSecretHash: undefined, replacesSerial: 'c7' }), audit('certificate.enroll', 'dup'));
      const results = await Promise.allSettled([...jobs, replay, dup]);
      assert.deepEqual(results.slice(0, N).map((r) => r.status), ids.map(() => 'fulfilled'));
      const [r1, r2] = results.slice(N);
      assert.ok(r1.status === 'rejected' && isProblem(r1.reason, 'unauthorized'), String((r1 as PromiseRejectedResult).reason));
      assert.ok(r2.status === 'rejected' && (isProblem(r2.reason, 'already_exists') || isProblem(r2.reason, 'conflict')), String((r2 as PromiseRejectedResult).reason));
      assert.equal(await store.getCertificate('replay'), undefined);
      assert.equal((await store.getCertificate('c5'))?.deviceId, ids[5]);
      assert.equal((await store.getDevice(ids[7]))?.currentSerial, 'c7');
      const entries = await store.listAudit({ limit: 10_000 });
      assert.ok(!entries.some((e) => e.target === 'replay' || e.target === 'dup'), 'a refused write leaves no audit entry');
      assert.deepEqual(verifyAuditChain(entries), { ok: true, entries: entries.length });
    });
  });
});
