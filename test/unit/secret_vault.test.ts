/**
 * Sealed one-time secrets (src/registry/secret_vault.ts) on a real data
 * directory: a new secret is sealed next to its hash, only the key store
 * opens it, it is bound to its device, it is wiped when used, and every
 * reason it cannot be used gives one answer.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { isProblem } from '../../src/errors.js';
import { SECRET_DENIED, SecretVault } from '../../src/registry/secret_vault.js';
import { makeDataDir, type TestDataDir } from '../helpers/data_dir.js';
import { makeCsr } from '../helpers/ca_fixture.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
let d: TestDataDir;

before(async () => {
  d = await makeDataDir({ clock });
});
after(async () => {
  await d?.cleanup();
});

async function register(id: string): Promise<string> {
  const { secret } = await d.ctx.registry.register({ id, profile: 'device-tls' }, 'test', true);
  return secret!;
}

async function denied(p: Promise<unknown>, reason: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e, 'unauthorized'), String(e));
    assert.equal(e.detail, SECRET_DENIED, 'one message for every reason');
    assert.match(String(e.extra?.reason), reason);
    return true;
  });
}

describe('secret vault', () => {
  it('ok init made a sealing key; a new secret is sealed, not stored in the clear, and opens to itself', async () => {
    const key = await d.ctx.store.getSealingKey();
    assert.ok(key, 'init creates the sealing key');
    assert.deepEqual(await d.ctx.vault.ensureKey('test'), key, 'ensureKey keeps the existing key');
    const secret = await register('v-1');
    const rec = await d.ctx.store.getEnrollmentSecret('v-1');
    assert.ok(rec?.sealed && rec.sealed.length > 60);
    assert.ok(!Buffer.from(rec.sealed).includes(Buffer.from(secret)), 'the secret is not in the sealed bytes');
    assert.equal(await d.ctx.vault.open('v-1', rec.sealed), secret);
    const usable = await d.ctx.vault.secretFor('v-1');
    assert.equal(usable.secret, secret);
  });

  it('ok two seals of one secret differ (fresh ephemeral key and IV)', async () => {
    const a = await d.ctx.vault.seal('v-x', 'same secret');
    const b = await d.ctx.vault.seal('v-x', 'same secret');
    assert.ok(a && b);
    assert.notDeepEqual(a, b);
  });

  it('fail-a sealed secret of one device does not open as another device', async () => {
    await register('v-2');
    const rec = await d.ctx.store.getEnrollmentSecret('v-2');
    await denied(d.ctx.vault.open('v-3', rec!.sealed!), /does not open/);
  });

  it('fail-tampered sealed bytes do not open', async () => {
    await register('v-4');
    const sealed = (await d.ctx.store.getEnrollmentSecret('v-4'))!.sealed!.slice();
    sealed[sealed.length - 1] ^= 1;
    await denied(d.ctx.vault.open('v-4', sealed), /does not open/);
    await denied(d.ctx.vault.open('v-4', sealed.subarray(0, 5)), /malformed/);
  });

  it('fail-a vault over a store without the sealing key cannot open', async () => {
    await register('v-5');
    const sealed = (await d.ctx.store.getEnrollmentSecret('v-5'))!.sealed!;
    const blank = await makeDataDir({ clock });
    try {
      await denied(new SecretVault(blank.ctx.store, blank.ctx.keys, clock).open('v-5', sealed), /sealing key .* is gone/);
    } finally {
      await blank.cleanup();
    }
  });

  const unusable: [string, () => Promise<string>, RegExp][] = [
    ['fail-unknown device', async () => 'nobody', /no such device/],
    [
      'fail-used secret (the sealed copy is wiped on use)',
      async () => {
        const secret = await register('v-used');
        const { csrPem } = makeCsr({ alg: 'ecdsa-p256', subject: '/CN=v-used' });
        await d.ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'v-used', secret }, csr: csrPem, via: 'test' });
        assert.equal((await d.ctx.store.getEnrollmentSecret('v-used'))?.sealed, undefined);
        return 'v-used';
      },
      /used/,
    ],
    [
      'fail-expired secret',
      async () => {
        await register('v-old');
        clock.advance(169 * 3_600_000);
        return 'v-old';
      },
      /expired/,
    ],
    [
      'fail-a secret made before CMP (hash only)',
      async () => {
        await register('v-legacy');
        const rec = (await d.ctx.store.getEnrollmentSecret('v-legacy'))!;
        await d.ctx.store.putEnrollmentSecret({ ...rec, sealed: undefined }, { actor: 'test', action: 'device.secret.create' });
        return 'v-legacy';
      },
      /before CMP/,
    ],
  ];
  for (const [title, setup, reason] of unusable) {
    it(`secretFor ${title} → unauthorized, one message`, async () => {
      await denied(d.ctx.vault.secretFor(await setup()), reason);
    });
  }
});
