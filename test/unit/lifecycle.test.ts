/**
 * The device lifecycle (src/registry/lifecycle.ts) through the registry on a
 * real data directory: every state change from every state, with and without
 * a certificate, allowed or refused; a refused one changes nothing and writes
 * no audit entry. Then what each state means for enrollment, re-registration,
 * and a state that changed between the check and the write.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { caFingerprint, type EnrollResult } from '../../src/registry/enrollment.js';
import { checkTransition, TRANSITIONS } from '../../src/registry/lifecycle.js';
import { hashSecret } from '../../src/registry/registry.js';
import { DEVICE_STATES, type DeviceRecord, type DeviceState } from '../../src/store/store.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { makeCsr } from '../helpers/ca_fixture.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
let d: TestDataDir;
let rootAnchor: string;
let n = 0;

async function rejects(p: Promise<unknown>, code: ProblemCode, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isProblem(e), `a ProblemError, got ${String(e)}`);
    assert.equal(e.code, code, e.detail);
    if (re) assert.match(e.detail, re);
    return true;
  });
}

const csr = (id: string, subject = `/CN=${id}`) => makeCsr({ alg: 'ecdsa-p256', subject }).csrPem;

async function enroll(id: string, secret: string): Promise<Extract<EnrollResult, { status: 'issued' }>> {
  const r = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret }, csr: csr(id), via: 'test' });
  assert.equal(r.status, 'issued');
  return r as Extract<EnrollResult, { status: 'issued' }>;
}

/** How a test device reaches its starting state, by allowed steps only. */
type Start = 'registered' | 'active' | 'suspended+cert' | 'suspended' | 'revoked+cert' | 'revoked' | 'retired+cert' | 'retired';
const PATH: Record<Start, { enroll: boolean; then: DeviceState[] }> = {
  registered: { enroll: false, then: [] },
  active: { enroll: true, then: [] },
  'suspended+cert': { enroll: true, then: ['suspended'] },
  suspended: { enroll: false, then: ['suspended'] },
  'revoked+cert': { enroll: true, then: ['revoked'] },
  revoked: { enroll: false, then: ['revoked'] },
  'retired+cert': { enroll: true, then: ['retired'] },
  retired: { enroll: false, then: ['retired'] },
};

async function deviceIn(start: Start): Promise<DeviceRecord> {
  const id = `lc-${++n}`;
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls' }, 'test', true);
  if (PATH[start].enroll) await enroll(id, secret!);
  for (const s of PATH[start].then) await d.ctx.registry.setState(id, s, 'test');
  const dev = await d.ctx.registry.device(id);
  assert.equal(dev.state, start.replace('+cert', ''));
  assert.equal(!!dev.currentSerial, start === 'active' || start.endsWith('+cert'));
  return dev;
}

before(async () => {
  d = await makeDataDir({ clock });
  rootAnchor = caFingerprint((await d.ctx.store.listCas()).find((c) => c.kind === 'root')!.certDer);
});

after(async () => {
  await d.cleanup();
});

describe('every transition an operator may ask for', () => {
  // Written out rather than derived from TRANSITIONS, so a change to the
  // table shows up here. ok: the state changes; same: already in it, nothing
  // written; conflict: refused, nothing written.
  type Outcome = 'ok' | 'same' | 'conflict';
  const expected: Record<Start, Record<DeviceState, Outcome>> = {
    registered: { registered: 'same', active: 'conflict', suspended: 'ok', revoked: 'ok', retired: 'ok' },
    active: { registered: 'conflict', active: 'same', suspended: 'ok', revoked: 'ok', retired: 'ok' },
    'suspended+cert': { registered: 'conflict', active: 'ok', suspended: 'same', revoked: 'ok', retired: 'ok' },
    suspended: { registered: 'ok', active: 'conflict', suspended: 'same', revoked: 'ok', retired: 'ok' },
    'revoked+cert': { registered: 'ok', active: 'conflict', suspended: 'conflict', revoked: 'same', retired: 'ok' },
    revoked: { registered: 'ok', active: 'conflict', suspended: 'conflict', revoked: 'same', retired: 'ok' },
    'retired+cert': { registered: 'conflict', active: 'conflict', suspended: 'conflict', revoked: 'conflict', retired: 'same' },
    retired: { registered: 'conflict', active: 'conflict', suspended: 'conflict', revoked: 'conflict', retired: 'same' },
  };

  for (const [start, row] of Object.entries(expected) as Array<[Start, Record<DeviceState, Outcome>]>) {
    for (const [to, outcome] of Object.entries(row) as Array<[DeviceState, Outcome]>) {
      const name = `${outcome === 'conflict' ? 'fail' : 'ok'}-${start} → ${to}${outcome === 'same' ? ' (no change)' : ''}`;
      it(name, async () => {
        const before = await deviceIn(start);
        const auditBefore = await d.ctx.store.listAudit({ target: before.id, limit: 100 });
        if (outcome === 'conflict') {
          await rejects(d.ctx.registry.setState(before.id, to, 'test:op'), 'conflict', new RegExp(`device ${before.id} `));
        } else {
          const r = await d.ctx.registry.setState(before.id, to, 'test:op');
          assert.equal(r.state, to);
        }
        const after = await d.ctx.registry.device(before.id);
        const auditAfter = await d.ctx.store.listAudit({ target: before.id, limit: 100 });
        if (outcome === 'ok') {
          assert.equal(after.state, to);
          assert.equal(auditAfter.length, auditBefore.length + 1);
          const entry = auditAfter[auditAfter.length - 1];
          assert.equal(entry.action, 'device.update');
          assert.equal(entry.actor, 'test:op');
          assert.deepEqual([entry.details.from, entry.details.state], [before.state, to]);
          // Re-registration unlinks the certificate; no other change touches it.
          assert.equal(after.currentSerial, start.startsWith('revoked') && to === 'registered' ? undefined : before.currentSerial);
        } else {
          assert.deepEqual(after, before, 'nothing changed');
          assert.equal(auditAfter.length, auditBefore.length, 'nothing audited');
        }
      });
    }
  }

  it('the table above covers every pair of states', () => {
    for (const s of DEVICE_STATES) assert.ok(Object.keys(TRANSITIONS).includes(s), s);
    assert.deepEqual(Object.keys(TRANSITIONS.retired), [], 'retired is terminal');
  });
});

describe('refusals say why', () => {
  const cases: Array<{ name: string; start: Start; to: DeviceState; re: RegExp }> = [
    { name: 'fail-active by hand without a certificate', start: 'registered', to: 'active', re: /is registered and cannot be set active .*becomes active by enrolling/ },
    { name: 'fail-resume to active without a certificate', start: 'suspended', to: 'active', re: /has no certificate and cannot be set active/ },
    { name: 'fail-resume to registered with a certificate', start: 'suspended+cert', to: 'registered', re: /has a certificate .*resume it as active/ },
    { name: 'fail-out of retired', start: 'retired', to: 'registered', re: /is retired and cannot be set registered \(retired is final\)/ },
    { name: 'fail-revoked to suspended', start: 'revoked', to: 'suspended', re: /allowed: registered, retired/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dev = await deviceIn(c.start);
      await rejects(d.ctx.registry.setState(dev.id, c.to, 'test'), 'conflict', c.re);
    });
  }

  it('fail-a state that does not exist: bad_request, nothing changed', async () => {
    const dev = await deviceIn('active');
    await rejects(d.ctx.registry.setState(dev.id, 'lost' as DeviceState, 'test'), 'bad_request', /the state is one of/);
    assert.deepEqual(await d.ctx.registry.device(dev.id), dev);
  });

  it('fail-unknown device: not_found', async () => {
    await rejects(d.ctx.registry.setState('no-such-device', 'retired', 'test'), 'not_found');
  });

  it('fail-a refused state in a patch with other fields: nothing of the patch is applied', async () => {
    const dev = await deviceIn('retired');
    await rejects(d.ctx.registry.updateDevice(dev.id, { owner: 'someone', state: 'active' }, 'test'), 'conflict');
    assert.deepEqual(await d.ctx.registry.device(dev.id), dev);
  });

  it('ok-a patch with the current state and other fields applies the fields only', async () => {
    const dev = await deviceIn('suspended');
    const r = await d.ctx.registry.updateDevice(dev.id, { owner: 'ops', state: 'suspended' }, 'test');
    assert.equal(r.owner, 'ops');
    const entry = (await d.ctx.store.listAudit({ target: dev.id, limit: 100 })).at(-1)!;
    assert.deepEqual(entry.details, { owner: 'ops' });
  });

  it('checkTransition alone: the same answers without a store', () => {
    assert.equal(checkTransition({ id: 'x', state: 'revoked' }, 'registered').reregister, true);
    assert.equal(checkTransition({ id: 'x', state: 'suspended', currentSerial: 'ab' }, 'active').reregister, undefined);
    assert.throws(() => checkTransition({ id: 'x', state: 'retired' }, 'active'), (e) => isProblem(e, 'conflict'));
  });
});

describe('the state decides whether a device may enroll', () => {
  const may: Array<{ start: Start; enrolls: boolean }> = [
    { start: 'registered', enrolls: true },
    { start: 'active', enrolls: true },
    { start: 'suspended', enrolls: false },
    { start: 'suspended+cert', enrolls: false },
    { start: 'revoked', enrolls: false },
    { start: 'revoked+cert', enrolls: false },
    { start: 'retired', enrolls: false },
    { start: 'retired+cert', enrolls: false },
  ];
  for (const c of may) {
    it(`${c.enrolls ? 'ok' : 'fail'}-${c.start} device with a valid secret${c.enrolls ? '' : ': forbidden, nothing issued'}`, async () => {
      const dev = await deviceIn(c.start);
      // Secrets are refused for revoked and retired devices; put one in the store directly.
      const secret = `s-${dev.id}-${'x'.repeat(20)}`;
      const now = clock.now();
      await d.ctx.store.putEnrollmentSecret({ deviceId: dev.id, secretHash: hashSecret(secret), createdAt: now, expiresAt: new Date(now.getTime() + 3_600_000) }, { actor: 'test', action: 'device.secret.create', target: dev.id });
      const p = d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: dev.id, secret }, csr: csr(dev.id), via: 'test' });
      if (c.enrolls) {
        const r = await p;
        assert.equal(r.status, 'issued');
        assert.equal(r.device.state, 'active', 'enrolling makes it active');
      } else {
        await rejects(p, 'forbidden', new RegExp(`is ${dev.state} and may not enroll`));
        assert.deepEqual(await d.ctx.registry.device(dev.id), dev);
      }
    });
  }

  it('fail-a retired device never enrolls again, not even with its own current certificate', async () => {
    const dev = await deviceIn('retired+cert');
    const cert = (await d.ctx.store.getCertificate(dev.currentSerial!))!;
    await rejects(
      d.ctx.enrollment.enroll({ credential: { kind: 'certificate', leaf: parseCertificate(cert.der), anchor: rootAnchor }, csr: csr(dev.id, `/O=Test Fleet/serialNumber=${dev.id}/CN=${dev.id}`), reenroll: true, via: 'test' }),
      'forbidden',
      /retired/,
    );
  });

  it('ok-a resumed device renews with its certificate again', async () => {
    const dev = await deviceIn('suspended+cert');
    await d.ctx.registry.setState(dev.id, 'active', 'test');
    const cert = (await d.ctx.store.getCertificate(dev.currentSerial!))!;
    const r = await d.ctx.enrollment.enroll({ credential: { kind: 'certificate', leaf: parseCertificate(cert.der), anchor: rootAnchor }, csr: csr(dev.id, `/O=Test Fleet/serialNumber=${dev.id}/CN=${dev.id}`), reenroll: true, via: 'test' });
    assert.equal(r.status, 'issued');
  });
});

describe('re-registration (revoked → registered)', () => {
  it('ok-starts over: the certificate is unlinked but kept, the old secret and a waiting approval are void, a new secret enrolls', async () => {
    const id = 'rereg-1';
    const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls', requireApproval: true }, 'test', true);
    // Approved once, issued, then a second key waits for approval.
    const first = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: secret! }, csr: csr(id), via: 'test' });
    assert.ok(first.status === 'pending');
    await d.ctx.registry.decide(first.pendingId, true, 'test:officer');
    const p = (await d.ctx.store.getPendingEnrollment(first.pendingId))!;
    const issued = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: secret! }, csr: p.csrDer, via: 'test' });
    assert.ok(issued.status === 'issued');
    const unused = await d.ctx.registry.newSecret(id, 'test');
    const waiting = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: unused }, csr: csr(id), via: 'test' });
    assert.ok(waiting.status === 'pending');

    await d.ctx.registry.setState(id, 'revoked', 'test');
    const r = await d.ctx.registry.setState(id, 'registered', 'test:op');
    assert.equal(r.state, 'registered');
    assert.equal(r.currentSerial, undefined);
    const history = await d.ctx.store.listCertificates({ deviceId: id });
    assert.deepEqual(history.map((c) => c.serial), [issued.result.record.serial], 'the old certificate stays in the history');
    assert.equal(await d.ctx.store.getEnrollmentSecret(id), undefined, 'the unused secret is gone');
    const w = (await d.ctx.store.getPendingEnrollment(waiting.pendingId))!;
    assert.deepEqual([w.status, w.decidedBy], ['rejected', 'test:op']);
    const entry = (await d.ctx.store.listAudit({ target: id, limit: 100 })).at(-1)!;
    assert.deepEqual([entry.details.from, entry.details.state, entry.details.reregister], ['revoked', 'registered', true]);

    await rejects(d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: unused }, csr: csr(id), via: 'test' }), 'unauthorized');
    const old = parseCertificate((await d.ctx.store.getCertificate(issued.result.record.serial))!.der);
    await rejects(d.ctx.enrollment.enroll({ credential: { kind: 'certificate', leaf: old, anchor: rootAnchor }, csr: csr(id, `/O=Test Fleet/serialNumber=${id}/CN=${id}`), reenroll: true, via: 'test' }), 'forbidden', /not the current certificate/);
    // A new enrollment starts from the beginning: approval again, then active.
    const again = await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: await d.ctx.registry.newSecret(id, 'test') }, csr: csr(id), via: 'test' });
    assert.equal(again.status, 'pending');
  });
});

describe('a state that changes between the check and the write', () => {
  it('fail-the store applies a transition only in the state it was checked against: conflict, nothing changed', async () => {
    const dev = await deviceIn('active');
    // What a concurrent retirement does to a suspension checked against 'active'.
    await d.ctx.registry.setState(dev.id, 'retired', 'test');
    const retired = await d.ctx.registry.device(dev.id);
    await rejects(d.ctx.store.updateDevice(dev.id, { state: 'suspended' }, clock.now(), { actor: 'test', action: 'device.update', target: dev.id }, { ifState: 'active' }), 'conflict', /became retired meanwhile/);
    assert.deepEqual(await d.ctx.registry.device(dev.id), retired);
  });
});
