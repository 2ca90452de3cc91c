import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { Operators, PERMISSIONS, authorize, hashToken, isRole, roleAllows, type Permission } from '../../src/registry/operators.js';
import { openStore } from '../../src/store/open_store.js';
import { ROLES, type Role, type Store } from '../../src/store/store.js';

const DAY = 86_400_000;
const problem = (code: ProblemCode) => (e: unknown) => {
  assert.ok(isProblem(e), `expected a ProblemError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return true;
};

/** The permission table, written out: a change to a role's powers must change this test. */
const EXPECTED: Record<Role, Permission[]> = {
  admin: ['ca:read', 'ca:admin', 'cert:read', 'cert:issue', 'cert:revoke', 'token:admin', 'audit:read', 'device:read', 'device:register', 'enrollment:approve', 'trust:admin', 'device:lifecycle', 'webhook:admin'],
  'ra-officer': ['ca:read', 'cert:read', 'cert:issue', 'cert:revoke', 'device:read', 'device:register', 'device:lifecycle', 'enrollment:approve'],
  auditor: ['ca:read', 'cert:read', 'audit:read', 'device:read'],
  'key-recovery': ['ca:read', 'cert:read', 'device:read', 'key:recover'],
  'firmware-signer': ['ca:read', 'firmware:sign'],
};

describe('roles and permissions', () => {
  for (const role of ROLES) {
    for (const p of PERMISSIONS) {
      const allowed = EXPECTED[role].includes(p);
      it(`${allowed ? 'ok' : 'fail'}-${role}-${p}`, () => {
        assert.equal(roleAllows(role, p), allowed);
        const op = { name: 'x', role, actor: 'token:x' };
        if (allowed) authorize(op, p);
        else assert.throws(() => authorize(op, p), problem('forbidden'));
      });
    }
  }
  it('ok-isRole', () => {
    for (const r of ROLES) assert.equal(isRole(r), true);
    for (const r of ['root', 'Admin', '', 'admin ', 'toString']) assert.equal(isRole(r), false, r);
  });
});

describe('Operators (tokens on the SQLite store)', () => {
  let store: Store;
  let clock: FakeClock;
  let ops: Operators;

  before(async () => {
    store = await openStore(':memory:');
  });
  after(async () => {
    await store.close();
  });
  beforeEach(() => {
    clock = new FakeClock('2030-01-01T00:00:00Z');
    ops = new Operators(store, clock);
  });

  it('ok-create-and-authenticate', async () => {
    const { token, record } = await ops.createToken({ name: 'alice', role: 'ra-officer', actor: 'cli:root' });
    assert.match(token, /^fpk_[A-Za-z0-9_-]{43}$/);
    assert.equal(record.tokenHash, createHash('sha256').update(token).digest('hex'));
    assert.equal(record.tokenHash, hashToken(token));
    assert.equal(record.expiresAt, undefined);
    assert.deepEqual(await ops.authenticate(token), { name: 'alice', role: 'ra-officer', actor: 'token:alice', tokenId: record.id });

    // The secret itself is stored nowhere: only its hash.
    const listed = (await ops.listTokens()).find((t) => t.id === record.id);
    assert.ok(listed);
    assert.equal(listed.tokenHash, record.tokenHash);
    assert.ok(!JSON.stringify(await ops.listTokens()).includes(token.slice(4)));
    const audit = await store.listAudit({ action: 'token.create', target: record.id });
    assert.equal(audit.length, 1);
    assert.equal(audit[0].actor, 'cli:root');
    assert.deepEqual(audit[0].details, { name: 'alice', role: 'ra-officer' });
    assert.ok(!JSON.stringify(audit).includes(token.slice(4)));
  });

  it('ok-two-tokens-are-different', async () => {
    const a = await ops.createToken({ name: 'same', role: 'auditor', actor: 't' });
    const b = await ops.createToken({ name: 'same', role: 'auditor', actor: 't' });
    assert.notEqual(a.token, b.token);
    assert.notEqual(a.record.id, b.record.id);
  });

  const badTokens: Array<[string, string | undefined]> = [
    ['fail-missing', undefined],
    ['fail-empty', ''],
    ['fail-no-prefix', 'abcdef'],
    ['fail-unknown', `fpk_${'A'.repeat(43)}`],
    ['fail-too-long', `fpk_${'A'.repeat(300)}`],
  ];
  for (const [name, token] of badTokens) {
    it(`${name}-token-unauthorized`, async () => {
      await assert.rejects(ops.authenticate(token), problem('unauthorized'));
    });
  }

  it('fail-tampered-token-unauthorized', async () => {
    const { token } = await ops.createToken({ name: 'bob', role: 'admin', actor: 't' });
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    await assert.rejects(ops.authenticate(token.slice(0, -1) + last), problem('unauthorized'));
    await assert.rejects(ops.authenticate(token.slice(4)), problem('unauthorized'));
    await assert.rejects(ops.authenticate(`${token} `), problem('unauthorized'));
  });

  it('ok-revoke', async () => {
    const { token, record } = await ops.createToken({ name: 'carol', role: 'admin', actor: 't' });
    await ops.authenticate(token);
    clock.advance(1000);
    await ops.revokeToken(record.id, 'token:admin');
    await assert.rejects(ops.authenticate(token), problem('unauthorized'));
    const listed = (await ops.listTokens()).find((t) => t.id === record.id);
    assert.deepEqual(listed?.revokedAt, new Date('2030-01-01T00:00:01Z'));
    const audit = await store.listAudit({ action: 'token.revoke', target: record.id });
    assert.equal(audit.length, 1);
    assert.equal(audit[0].actor, 'token:admin');
  });

  it('fail-revoke-twice-and-unknown', async () => {
    const { record } = await ops.createToken({ name: 'dave', role: 'auditor', actor: 't' });
    await ops.revokeToken(record.id, 't');
    await assert.rejects(ops.revokeToken(record.id, 't'), problem('already_revoked'));
    await assert.rejects(ops.revokeToken('00000000-0000-4000-8000-000000000000', 't'), problem('not_found'));
    assert.equal((await store.listAudit({ action: 'token.revoke', target: record.id })).length, 1);
  });

  it('ok-expiry', async () => {
    const { token, record } = await ops.createToken({ name: 'erin', role: 'auditor', validDays: 2, actor: 't' });
    assert.deepEqual(record.expiresAt, new Date('2030-01-03T00:00:00Z'));
    clock.advance(2 * DAY - 1);
    assert.equal((await ops.authenticate(token)).name, 'erin');
    clock.advance(1);
    await assert.rejects(ops.authenticate(token), problem('unauthorized'));
    clock.advance(365 * DAY);
    await assert.rejects(ops.authenticate(token), problem('unauthorized'));
  });

  const badCreates: Array<{ name: string; opts: { name: string; role: string; validDays?: number } }> = [
    { name: 'fail-unknown-role', opts: { name: 'x', role: 'superuser' } },
    { name: 'fail-role-prototype-key', opts: { name: 'x', role: 'toString' } },
    { name: 'fail-role-wrong-case', opts: { name: 'x', role: 'Admin' } },
    { name: 'fail-empty-name', opts: { name: '', role: 'admin' } },
    { name: 'fail-name-with-space', opts: { name: 'a b', role: 'admin' } },
    { name: 'fail-name-too-long', opts: { name: 'a'.repeat(65), role: 'admin' } },
    { name: 'fail-validDays-zero', opts: { name: 'x', role: 'admin', validDays: 0 } },
    { name: 'fail-validDays-negative', opts: { name: 'x', role: 'admin', validDays: -3 } },
    { name: 'fail-validDays-fraction', opts: { name: 'x', role: 'admin', validDays: 1.5 } },
  ];
  for (const c of badCreates) {
    it(`${c.name}-bad_request-and-nothing-stored`, async () => {
      const tokens = (await ops.listTokens()).length;
      const audits = (await store.listAudit({ limit: 1000 })).length;
      await assert.rejects(ops.createToken({ ...c.opts, actor: 't' }), problem('bad_request'));
      assert.equal((await ops.listTokens()).length, tokens);
      assert.equal((await store.listAudit({ limit: 1000 })).length, audits);
    });
  }

  it('ok-every-role-can-be-given', async () => {
    for (const role of ROLES) {
      const { token } = await ops.createToken({ name: `r-${role}`, role, actor: 't' });
      assert.equal((await ops.authenticate(token)).role, role);
    }
  });
});
