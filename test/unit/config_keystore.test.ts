/** The keyStore block of fleetpki.json: software or pkcs11, and what is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { defaultConfig, validateConfig } from '../../src/server/config.js';

const withKeyStore = (keyStore: Record<string, unknown>) => ({ ...defaultConfig('Acme'), keyStore: { dir: 'keys', ...keyStore } });
const P11 = { type: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', token: 'fleet-ca' };

describe('config: keyStore', () => {
  const ok: Array<[string, Record<string, unknown>]> = [
    ['ok-software', { type: 'software' }],
    ['ok-pkcs11-pin-env', { ...P11, pinEnv: 'FLEET_PIN' }],
    ['ok-pkcs11-pin-file', { ...P11, pinFile: '/run/secrets/pin', poolSize: 8 }],
    ['ok-pkcs11-root-token', { ...P11, pinEnv: 'P', extraTokens: [{ token: 'fleet-root', pinEnv: 'ROOT_PIN' }] }],
  ];
  for (const [name, ks] of ok) it(name, () => assert.equal(validateConfig(withKeyStore(ks)).keyStore.type, ks.type));

  const fail: Array<[string, Record<string, unknown>, RegExp]> = [
    ['fail-unknown-type', { type: 'tpm' }, /not supported/],
    ['fail-pkcs11-no-module', { type: 'pkcs11', token: 't', pinEnv: 'P' }, /needs keyStore.module and keyStore.token/],
    ['fail-pkcs11-no-pin-source', { ...P11 }, /exactly one of keyStore.pinEnv/],
    ['fail-pkcs11-two-pin-sources', { ...P11, pinEnv: 'P', pinFile: '/p' }, /exactly one of/],
    ['fail-pkcs11-pin-in-pinEnv', { ...P11, pinEnv: '1234 5678' }, /name of an environment variable, not the PIN/],
    ['fail-pkcs11-pin-in-config', { ...P11, pinEnv: 'P', pin: '1234' }, /PIN may not be in the config/],
    ['fail-pkcs11-pool-size', { ...P11, pinEnv: 'P', poolSize: 0 }, /poolSize is 1..64/],
    ['fail-extra-token-twice', { ...P11, pinEnv: 'P', extraTokens: [{ token: 'fleet-ca', pinEnv: 'X' }] }, /configured twice/],
    ['fail-extra-token-no-pin', { ...P11, pinEnv: 'P', extraTokens: [{ token: 'root' }] }, /exactly one of pinEnv and pinFile/],
    ['fail-extra-token-pin-in-config', { ...P11, pinEnv: 'P', extraTokens: [{ token: 'root', pinEnv: 'R', pin: '1' }] }, /PIN may not be in the config/],
    ['fail-extra-tokens-not-a-list', { ...P11, pinEnv: 'P', extraTokens: 'root' }, /is a list/],
  ];
  for (const [name, ks, why] of fail) {
    it(name, () => assert.throws(() => validateConfig(withKeyStore(ks)), (e) => isProblem(e, 'config_error') && why.test(e.detail)));
  }
});
