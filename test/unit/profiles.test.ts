import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PROFILES, EKU_OIDS, ekuOid, resolveProfiles, validateProfile, type Profile } from '../../src/authority/profiles.js';
import { isProblem } from '../../src/errors.js';

const NAMES = ['device-tls', 'server-tls', 'opcua-application', 'code-signing', 'ocsp-signer', 'sub-ca'];

const full: Profile = {
  description: 'Gateway uplink',
  keyAlgorithms: ['ecdsa-p256'],
  validityDays: 30,
  keyUsage: ['digitalSignature'],
  extendedKeyUsage: ['clientAuth', '1.3.6.1.4.1.99999.1'],
  subject: { allowed: ['CN'], required: ['CN'] },
  san: { allowed: ['dns'], max: 1 },
};

const configError = (why?: RegExp) => (e: unknown) => {
  assert.ok(isProblem(e), `expected a ProblemError, got ${String(e)}`);
  assert.equal(e.code, 'config_error', e.message);
  if (why) assert.match(e.detail, why);
  return true;
};

describe('DEFAULT_PROFILES', () => {
  it('ok-the-six-shipped-profiles-validate', () => {
    assert.deepEqual(Object.keys(DEFAULT_PROFILES).sort(), [...NAMES].sort());
    for (const [name, p] of Object.entries(DEFAULT_PROFILES)) validateProfile(name, p);
  });
  it('ok-shape-of-the-defaults', () => {
    assert.deepEqual(DEFAULT_PROFILES['sub-ca'].ca, { pathLen: 0 });
    assert.ok(DEFAULT_PROFILES['opcua-application'].keyAlgorithms.every((k) => k.startsWith('rsa-')));
    assert.equal(DEFAULT_PROFILES['ocsp-signer'].ocspNoCheck, true);
    assert.equal(DEFAULT_PROFILES['ocsp-signer'].revocationInfo, false);
    for (const n of NAMES.filter((n) => n !== 'sub-ca')) assert.equal(DEFAULT_PROFILES[n].ca, undefined, n);
  });
  it('ok-ekuOid', () => {
    assert.equal(ekuOid('serverAuth'), '1.3.6.1.5.5.7.3.1');
    assert.equal(ekuOid('OCSPSigning'), EKU_OIDS.OCSPSigning);
    assert.equal(ekuOid('1.2.3.4'), '1.2.3.4');
  });
});

describe('resolveProfiles', () => {
  it('ok-no-overrides-gives-the-defaults', () => {
    const r = resolveProfiles();
    assert.deepEqual(r, DEFAULT_PROFILES);
    assert.notEqual(r, DEFAULT_PROFILES);
    assert.deepEqual(resolveProfiles({}), DEFAULT_PROFILES);
  });

  it('ok-partial-override-merged-over-the-default', () => {
    const before = structuredClone(DEFAULT_PROFILES);
    const r = resolveProfiles({ 'server-tls': { validityDays: 30, maxValidityDays: 60 } });
    assert.deepEqual(r['server-tls'], { ...DEFAULT_PROFILES['server-tls'], validityDays: 30, maxValidityDays: 60 });
    assert.deepEqual(r['device-tls'], DEFAULT_PROFILES['device-tls']);
    assert.deepEqual(DEFAULT_PROFILES, before, 'the shipped defaults are not modified');
  });

  it('ok-override-replaces-lists', () => {
    const r = resolveProfiles({ 'device-tls': { keyAlgorithms: ['ecdsa-p384'], extendedKeyUsage: ['clientAuth'] } });
    assert.deepEqual(r['device-tls'].keyAlgorithms, ['ecdsa-p384']);
    assert.deepEqual(r['device-tls'].extendedKeyUsage, ['clientAuth']);
    assert.deepEqual(r['device-tls'].san, DEFAULT_PROFILES['device-tls'].san);
  });

  it('ok-keyEscrow-with-serverKeyGen', () => {
    const r = resolveProfiles({ 'device-tls': { serverKeyGen: true, keyEscrow: true } });
    assert.equal(r['device-tls'].keyEscrow, true);
  });

  it('ok-new-profile', () => {
    const r = resolveProfiles({ 'gw-uplink': full });
    assert.deepEqual(r['gw-uplink'], full);
    assert.equal(Object.keys(r).length, NAMES.length + 1);
  });

  it('ok-new-ca-profile', () => {
    const r = resolveProfiles({ 'line-ca': { ...full, keyUsage: ['keyCertSign', 'cRLSign'], extendedKeyUsage: [], ca: { pathLen: 0 }, san: { allowed: [], max: 0 } } });
    assert.deepEqual(r['line-ca'].ca, { pathLen: 0 });
  });

  const bad: Array<{ name: string; overrides: Record<string, Partial<Profile>>; why: RegExp }> = [
    { name: 'fail-bad-profile-name', overrides: { Bad_Name: full }, why: /lowercase/ },
    { name: 'fail-keyEscrow-without-serverKeyGen', overrides: { 'device-tls': { keyEscrow: true } }, why: /keyEscrow needs serverKeyGen/ },
    { name: 'fail-keyEscrow-not-boolean', overrides: { 'device-tls': { serverKeyGen: true, keyEscrow: 'yes' as never } }, why: /keyEscrow is true or false/ },
    { name: 'fail-profile-name-leading-dash', overrides: { '-x': full }, why: /lowercase/ },
    { name: 'fail-missing-description', overrides: { 'gw-x': { ...full, description: undefined } }, why: /description/ },
    { name: 'fail-unknown-key-algorithm', overrides: { 'device-tls': { keyAlgorithms: ['rsa-1024' as never] } }, why: /unknown key algorithm "rsa-1024"/ },
    { name: 'fail-empty-key-algorithms', overrides: { 'device-tls': { keyAlgorithms: [] } }, why: /at least one/ },
    { name: 'fail-validity-zero', overrides: { 'device-tls': { validityDays: 0 } }, why: /validityDays/ },
    { name: 'fail-validity-fraction', overrides: { 'device-tls': { validityDays: 1.5 } }, why: /validityDays/ },
    { name: 'fail-validity-string', overrides: { 'device-tls': { validityDays: '30' as never } }, why: /validityDays/ },
    { name: 'fail-max-below-default', overrides: { 'server-tls': { maxValidityDays: 10 } }, why: /maxValidityDays/ },
    { name: 'fail-unknown-key-usage', overrides: { 'device-tls': { keyUsage: ['digitalSignature', 'encipherOnlyish' as never] } }, why: /unknown keyUsage/ },
    { name: 'fail-unknown-eku-name', overrides: { 'device-tls': { extendedKeyUsage: ['fooAuth'] } }, why: /unknown extendedKeyUsage/ },
    { name: 'fail-keyCertSign-outside-ca', overrides: { 'device-tls': { keyUsage: ['digitalSignature', 'keyCertSign'] } }, why: /only for CA/ },
    { name: 'fail-ca-without-keyCertSign', overrides: { 'sub-ca': { keyUsage: ['cRLSign'] } }, why: /needs keyCertSign/ },
    { name: 'fail-unknown-subject-attribute', overrides: { 'device-tls': { subject: { allowed: ['CN', 'favouriteColour'] } } }, why: /unknown subject attribute/ },
    { name: 'fail-unknown-required-attribute', overrides: { 'device-tls': { subject: { allowed: ['CN'], required: ['XX'] } } }, why: /unknown subject attribute/ },
    { name: 'fail-unknown-san-type', overrides: { 'device-tls': { san: { allowed: ['dns', 'x400' as never] } } }, why: /unknown SAN type/ },
    { name: 'fail-bad-san-pattern', overrides: { 'device-tls': { san: { allowed: ['dns'], patterns: { dns: ['(unclosed'] } } } }, why: /not a valid regular expression/ },
    // A profile the issuer would trip over at issuance time must fail here, at start-up, as config_error.
    { name: 'fail-new-profile-without-keyUsage', overrides: { 'gw-x': { ...full, keyUsage: undefined } }, why: /keyUsage/ },
    { name: 'fail-new-profile-without-extendedKeyUsage', overrides: { 'gw-x': { ...full, extendedKeyUsage: undefined } }, why: /extendedKeyUsage/ },
    { name: 'fail-new-profile-without-subject-rules', overrides: { 'gw-x': { ...full, subject: undefined } }, why: /subject/ },
    { name: 'fail-new-profile-without-san-rules', overrides: { 'gw-x': { ...full, san: undefined } }, why: /SAN|san/ },
  ];
  for (const c of bad) {
    it(c.name, () => assert.throws(() => resolveProfiles(c.overrides), configError(c.why)));
  }

  it('ok-or-fail-partial-nested-override-never-yields-a-broken-profile', () => {
    // Overriding only san.max: a deep merge (allowed kept from the default) or
    // a config_error are both fine; a profile with no san.allowed is not (the
    // issuer would throw a TypeError on every request).
    let r: ReturnType<typeof resolveProfiles>;
    try {
      r = resolveProfiles({ 'device-tls': { san: { max: 5 } as never } });
    } catch (e) {
      configError(/san|SAN/)(e);
      return;
    }
    assert.deepEqual(r['device-tls'].san.allowed, DEFAULT_PROFILES['device-tls'].san.allowed);
    assert.equal(r['device-tls'].san.max, 5);
  });

  it('fail-one-bad-override-rejects-the-whole-set', () => {
    assert.throws(() => resolveProfiles({ 'server-tls': { validityDays: 30 }, 'device-tls': { validityDays: -1 } }), configError(/device-tls/));
  });
});

describe('default profile data', () => {
  it('ok-opcua-uri-patterns', () => {
    // Sanity check on the data the issuer uses: which URI SANs the opcua profile pattern admits.
    const pats = DEFAULT_PROFILES['opcua-application'].san.patterns!.uri!;
    const admits = (v: string) => pats.some((p) => new RegExp(`^(?:${p})$`, 'i').test(v));
    assert.ok(admits('urn:acme:plc-1'));
    assert.ok(admits('opc.tcp://plc-1:4840'));
    assert.ok(!admits('ftp://x'));
    assert.ok(!admits('mailto:urn:x'));
  });
});
