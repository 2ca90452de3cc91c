/** Renewal time and backoff: pure functions, exact over fixed random numbers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, renewalTime } from '../../src/agent/policy.js';
import { defaultSettings, validateSettings } from '../../src/agent/state.js';
import { isProblem } from '../../src/errors.js';

const DAY = 86_400_000;
const t0 = Date.parse('2030-01-01T00:00:00Z');
const cert = (startDays: number, endDays: number) => ({ notBefore: new Date(t0 + startDays * DAY), notAfter: new Date(t0 + endDays * DAY) });

describe('renewalTime', () => {
  const cases: Array<[string, { notBefore: Date; notAfter: Date }, number, number, number, number, number]> = [
    // name, cert, obtainedAt (days), share, jitter, random, expected (days)
    ['ok-two-thirds', cert(0, 90), 0, 2 / 3, 0.05, 0.5, 60],
    ['ok-jitter-earliest', cert(0, 90), 0, 2 / 3, 0.05, 0, 60 - 4.5],
    ['ok-jitter-latest', cert(0, 90), 0, 2 / 3, 0.05, 1, 60 + 4.5],
    ['ok-half', cert(0, 100), 0, 0.5, 0, 0.3, 50],
    // A backdated notBefore: the lifetime counts from receipt.
    ['ok-backdated-short-lived', { notBefore: new Date(t0 - 300_000), notAfter: new Date(t0 + 60_000) }, 0, 2 / 3, 0, 0.5, 40_000 / DAY],
    ['ok-received-late', cert(0, 90), 30, 2 / 3, 0, 0.5, 70],
    ['ok-never-after-expiry-less-1%', cert(0, 100), 0, 0.99, 0.009, 1, 99],
    ['ok-received-after-expiry-due-at-once', cert(0, 10), 20, 2 / 3, 0, 0.5, 10],
  ];
  for (const [name, c, got, share, jitter, r, want] of cases) {
    it(name, () => {
      const at = renewalTime(c, new Date(t0 + got * DAY), share, jitter, () => r);
      assert.ok(Math.abs(at.getTime() - (t0 + want * DAY)) <= 1, `${at.toISOString()} vs ${new Date(t0 + want * DAY).toISOString()}`);
    });
  }
  it('ok-jitter-spreads-a-fleet', () => {
    const times = new Set(Array.from({ length: 50 }, () => renewalTime(cert(0, 90), new Date(t0), 2 / 3, 0.05, Math.random).getTime()));
    assert.ok(times.size > 40, 'fifty devices enrolled together renew at different times');
    for (const t of times) assert.ok(t >= t0 + 55.5 * DAY && t <= t0 + 64.5 * DAY);
  });
});

describe('backoffMs', () => {
  const cases: Array<[string, number, number, number, number, number]> = [
    // name, failures, initial, cap, random, expected
    ['ok-first-full', 1, 30_000, 3_600_000, 1, 30_000],
    ['ok-first-half', 1, 30_000, 3_600_000, 0, 15_000],
    ['ok-doubles', 3, 30_000, 3_600_000, 1, 120_000],
    ['ok-capped', 20, 30_000, 3_600_000, 1, 3_600_000],
    ['ok-capped-half', 20, 30_000, 3_600_000, 0, 1_800_000],
    ['ok-huge-failure-count', 10_000, 30_000, 3_600_000, 0.5, 2_700_000],
    ['ok-zero-treated-as-first', 0, 10_000, 60_000, 1, 10_000],
  ];
  for (const [name, n, initial, cap, r, want] of cases) {
    it(name, () => assert.equal(backoffMs(n, initial, cap, () => r), want));
  }
});

describe('settings', () => {
  const base = { server: 'https://ca.example:8443', deviceId: 'dev-1' };
  const p11 = { type: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', token: 'device', pinEnv: 'DEVICE_PIN' };
  const good: Array<[string, object]> = [
    ['ok-file-key-store', { keyStore: { type: 'file' } }],
    ['ok-pkcs11-pin-env', { keyStore: p11 }],
    ['ok-pkcs11-pin-file-and-engine', { keyStore: { type: 'pkcs11', module: p11.module, token: 'device', pinFile: '/run/secrets/pin', engine: '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so' } }],
    ['ok-pkcs11-rsa', { keyStore: p11, keyAlgorithm: 'rsa-2048' }],
  ];
  for (const [name, o] of good) {
    it(name, () => assert.deepEqual(validateSettings(defaultSettings({ ...base, ...o } as never)).keyStore, (o as { keyStore: unknown }).keyStore));
  }
  it('ok-defaults', () => {
    const s = validateSettings(defaultSettings(base));
    assert.equal(s.renewAt, 2 / 3);
    assert.equal(s.newKeyOnRenewal, true);
    assert.equal(s.requireCrl, 'all');
  });
  const bad: Array<[string, object]> = [
    ['fail-http-server', { server: 'http://ca.example' }],
    ['fail-renew-at-1', { renewAt: 1 }],
    ['fail-jitter-too-large', { renewAt: 0.9, jitter: 0.2 }],
    ['fail-device-id', { deviceId: 'a b' }],
    ['fail-key-algorithm', { keyAlgorithm: 'dsa' }],
    ['fail-backoff', { backoff: { initialSeconds: 10, maxSeconds: 5 } }],
    ['fail-signal-without-pid-file', { hooks: { signal: 'SIGHUP' } }],
    ['fail-signal-name', { hooks: { signal: 'HUP', pidFile: '/run/x.pid' } }],
    ['fail-key-store-type', { keyStore: { type: 'tpm' } }],
    ['fail-pkcs11-relative-module', { keyStore: { ...p11, module: 'libsofthsm2.so' } }],
    ['fail-pkcs11-no-token', { keyStore: { ...p11, token: '' } }],
    ['fail-pkcs11-no-pin-source', { keyStore: { type: 'pkcs11', module: p11.module, token: 'device' } }],
    ['fail-pkcs11-two-pin-sources', { keyStore: { ...p11, pinFile: '/run/pin' } }],
    ['fail-pkcs11-pin-in-settings', { keyStore: { ...p11, pin: '1234' } }],
    ['fail-pkcs11-pin-env-is-a-pin', { keyStore: { ...p11, pinEnv: '1234' } }],
    ['fail-pkcs11-relative-pin-file', { keyStore: { type: 'pkcs11', module: p11.module, token: 'device', pinFile: 'pin.txt' } }],
    ['fail-pkcs11-relative-engine', { keyStore: { ...p11, engine: 'pkcs11.so' } }],
    ['fail-pkcs11-ed25519', { keyStore: p11, keyAlgorithm: 'ed25519' }],
  ];
  for (const [name, o] of bad) {
    it(name, () => assert.throws(() => validateSettings(defaultSettings({ ...base, ...o } as never)), (e) => isProblem(e, 'config_error')));
  }
});
