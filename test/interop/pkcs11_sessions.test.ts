/**
 * The PKCS#11 key store under load and after trouble, on a real SoftHSM2
 * token: concurrent signatures through a small session pool, and recovery
 * when the token's sessions are closed, the user is logged out or the
 * library is finalised underneath it (what a token reset or re-plug does).
 * The trouble is made through the PKCS#11 API itself, from a second handle
 * on the same module, as another component of the process would.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pkcs11js from 'pkcs11js';
import { isProblem } from '../../src/errors.js';
import { Pkcs11KeyStore } from '../../src/keys/pkcs11_key_store.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

let token: TestToken;
let ks: Pkcs11KeyStore;
let ref = '';
const other = new pkcs11js.PKCS11();

function otherSlot(): Buffer {
  try {
    other.C_Initialize();
  } catch {
    /* already initialised in this process */
  }
  return other.C_GetSlotList(true).find((s) => other.C_GetTokenInfo(s).label.trim() === token.label)!;
}

async function signsAndVerifies(store = ks, keyRef = ref): Promise<void> {
  const s = await store.signer(keyRef);
  const data = Buffer.from(`data ${Math.random()}`);
  const sig = await s.sign(data, 'sha256');
  const pub = createPublicKey({ key: Buffer.from(s.spki), format: 'der', type: 'spki' });
  assert.ok(verify('sha256', data, { key: pub, dsaEncoding: 'der' }, sig), 'the signature verifies');
}

before(async () => {
  token = makeToken('fleet-pool');
  other.load(token.module);
  ks = new Pkcs11KeyStore({ module: token.module, token: token.label, pin: () => token.pin, poolSize: 3 });
  ref = await ks.generate('ecdsa-p256', 'pool test');
});

after(async () => {
  await ks?.close();
  token?.cleanup();
});

describe('PKCS#11 session pool and recovery', () => {
  it('200 concurrent signatures through 3 sessions all verify', async () => {
    const s = await ks.signer(ref);
    const pub = createPublicKey({ key: Buffer.from(s.spki), format: 'der', type: 'spki' });
    const sigs = await Promise.all(Array.from({ length: 200 }, (_, i) => s.sign(Buffer.from(`m${i}`), 'sha256').then((sig) => ({ i, sig }))));
    for (const { i, sig } of sigs) assert.ok(verify('sha256', Buffer.from(`m${i}`), { key: pub, dsaEncoding: 'der' }, sig));
  });

  const troubles: Array<{ name: string; cause: () => void }> = [
    { name: 'ok-after-sessions-closed (C_CloseAllSessions)', cause: () => other.C_CloseAllSessions(otherSlot()) },
    {
      name: 'ok-after-logout (C_Logout)',
      cause: () => {
        const s = other.C_OpenSession(otherSlot(), pkcs11js.CKF_SERIAL_SESSION);
        other.C_Logout(s); // logs out every session of the application
        other.C_CloseSession(s);
      },
    },
    { name: 'ok-after-library-finalised (C_Finalize)', cause: () => other.C_Finalize() },
  ];
  for (const t of troubles) {
    it(`${t.name}: the next signature reconnects, logs in again and succeeds`, async () => {
      await signsAndVerifies();
      const before = ks.reconnects;
      t.cause();
      await Promise.all([signsAndVerifies(), signsAndVerifies(), signsAndVerifies()]);
      assert.ok(ks.reconnects > before, 'it reconnected');
    });
  }

  it('ok-reset-while-requests-wait: 60 signatures queued on 3 sessions, the sessions closed mid-way; all complete and verify', async () => {
    const s = await ks.signer(ref);
    const pub = createPublicKey({ key: Buffer.from(s.spki), format: 'der', type: 'spki' });
    const before = ks.reconnects;
    const all = Array.from({ length: 60 }, (_, i) => s.sign(Buffer.from(`q${i}`), 'sha256').then((sig) => ({ i, sig })));
    await new Promise((r) => setImmediate(r));
    other.C_CloseAllSessions(otherSlot());
    for (const { i, sig } of await Promise.all(all)) assert.ok(verify('sha256', Buffer.from(`q${i}`), { key: pub, dsaEncoding: 'der' }, sig));
    assert.ok(ks.reconnects > before, 'the sessions were lost while requests waited');
  });

  it('fail-wrong-pin: key_unavailable (pin_incorrect), and the PIN is not tried again', async () => {
    let tries = 0;
    const bad = new Pkcs11KeyStore({ module: token.module, token: token.label, pin: () => (tries++, '000000') });
    // The good store's login is shared by the process; log out so the bad PIN is really presented.
    other.C_CloseAllSessions(otherSlot());
    for (let i = 0; i < 3; i++) {
      await assert.rejects(bad.signer(ref), (e) => isProblem(e, 'key_unavailable') && e.extra?.reason === 'pin_incorrect');
    }
    assert.equal(tries, 1, 'one failed login, not one per call');
    await bad.close();
    await signsAndVerifies(); // the good store recovers
  });

  const missing: Array<{ name: string; opts: { module: string; token: string }; reason: string }> = [
    { name: 'fail-module-missing', opts: { module: '/usr/lib/none/libnone.so', token: 'x' }, reason: 'module_missing' },
    { name: 'fail-token-missing', opts: { module: '/usr/lib/softhsm/libsofthsm2.so', token: 'no-such-token' }, reason: 'token_missing' },
  ];
  for (const m of missing) {
    it(`${m.name}: key_unavailable with reason ${m.reason}`, async () => {
      const s = new Pkcs11KeyStore({ ...m.opts, pin: () => token.pin });
      await assert.rejects(s.generate('ecdsa-p256', 'x'), (e) => isProblem(e, 'key_unavailable') && e.extra?.reason === m.reason);
      await s.close();
    });
  }

  it('fail-unknown-key: key_unavailable (key_missing) for a URI with no object, a foreign token or a non-URI', async () => {
    for (const r of ['pkcs11:token=fleet-pool;object=nothing', 'pkcs11:token=other;object=x', 'soft:root-ca-1234']) {
      await assert.rejects(ks.signer(r), (e) => isProblem(e, 'key_unavailable') && e.extra?.reason === 'key_missing', r);
    }
    assert.equal(await ks.has('pkcs11:token=fleet-pool;object=nothing'), false);
  });

  it('remove deletes both halves; the key is gone', async () => {
    const r = await ks.generate('rsa-2048', 'to remove');
    await signsAndVerifiesRsa(r);
    await ks.remove(r);
    assert.equal(await ks.has(r), false);
    await assert.rejects(ks.signer(r), (e) => isProblem(e, 'key_unavailable'));
  });
});

async function signsAndVerifiesRsa(keyRef: string): Promise<void> {
  const s = await ks.signer(keyRef);
  const sig = await s.sign(Buffer.from('rsa'), 'sha256');
  assert.ok(verify('sha256', Buffer.from('rsa'), createPublicKey({ key: Buffer.from(s.spki), format: 'der', type: 'spki' }), sig));
}
