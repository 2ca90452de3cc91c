import 'reflect-metadata';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as der from '../../src/asn1/der.js';
import { keyObjectSigner, type Signer } from '../../src/keys/key_store.js';
import { encodeTbs, signCertificate, type CertificateTemplate } from '../../src/x509/cert_builder.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import * as x from '../../src/x509/extensions.js';
import { parseSan, type San } from '../../src/x509/general_names.js';
import { lintCertificate } from '../../src/x509/lint.js';
import { encodeName } from '../../src/x509/names.js';
import { signatureAlgorithmFor } from '../../src/x509/algorithms.js';

const ALL_LINTS = [
  'serial_positive_max_20_octets',
  'validity_ordered',
  'validity_whole_seconds',
  'validity_within_issuer',
  'issuer_matches_issuer_subject',
  'no_duplicate_extensions',
  'empty_subject_needs_critical_san',
  'ca_basic_constraints_critical',
  'key_cert_sign_iff_ca',
  'key_usage_present',
  'path_len_only_for_ca',
  'issuer_path_length',
  'issuer_is_ca',
  'aki_present',
  'aki_matches_issuer_ski',
  'ca_ski_present',
  'ec_key_usage',
  'eddsa_key_usage',
  'ocsp_nocheck_only_for_ocsp_signing',
  'issuer_name_constraints',
];

const sans = (...s: string[]): San[] => s.map(parseSan);
/** Name constraint bases are not SANs (".domain", "10.0.0.0/8"): taken as written. */
const bases = (...s: string[]): San[] => s.map((t) => ({ type: t.slice(0, t.indexOf(':')) as San['type'], value: t.slice(t.indexOf(':') + 1) }));
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';
const EKU_OCSP = '1.3.6.1.5.5.7.3.9';
const T0 = new Date('2030-01-01T00:00:00Z');
const days = (n: number) => new Date(T0.getTime() + n * 86_400_000);

function newSigner(type: 'ec' | 'ed25519' | 'rsa'): Signer {
  const kp =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  return keyObjectSigner(kp.privateKey);
}

interface World {
  caSigner: Signer;
  ca: CertInfo;
  caSubject: Uint8Array;
  leafKey: Signer;
  edKey: Signer;
  rsaKey: Signer;
}

let w: World;
const fired = new Set<string>();

async function build(t: CertificateTemplate, signer: Signer): Promise<CertInfo> {
  return parseCertificate(await signCertificate(t, signer));
}

function caTemplate(signer: Signer, subject: Uint8Array, opts: { pathLen?: number; exts?: x.Ext[] } = {}): CertificateTemplate {
  const ski = x.keyIdentifierOf(signer.spki);
  return {
    serial: Uint8Array.of(0x11, 0x22),
    issuer: subject,
    subject,
    notBefore: days(-1),
    notAfter: days(3650),
    spki: signer.spki,
    extensions: opts.exts ?? [x.basicConstraints(true, opts.pathLen), x.keyUsage(['keyCertSign', 'cRLSign']), x.subjectKeyIdentifier(ski)],
  };
}

/** A good leaf under `w.ca`, with `patch` applied. */
function leafTemplate(patch: Partial<CertificateTemplate> = {}, key: Signer = w.leafKey): CertificateTemplate {
  return {
    serial: Uint8Array.of(0x40, 1, 2, 3, 4, 5, 6, 7, 8),
    issuer: w.caSubject,
    subject: encodeName([{ type: 'CN', value: 'dev-1' }]),
    notBefore: days(0),
    notAfter: days(365),
    spki: key.spki,
    extensions: [
      x.basicConstraints(false),
      x.keyUsage(['digitalSignature']),
      x.extendedKeyUsage([EKU_CLIENT]),
      x.subjectKeyIdentifier(x.keyIdentifierOf(key.spki)),
      x.authorityKeyIdentifier(w.ca.ski!),
      x.subjectAltName(sans('dns:dev-1.example.com'), false),
    ],
    ...patch,
  };
}

/** Replaces (or, with undefined, drops) the extension with `oid` in the good leaf's list. */
function withExt(oid: string, ext?: x.Ext): x.Ext[] {
  const base = leafTemplate().extensions;
  return ext ? base.map((e) => (e.oid === oid ? ext : e)) : base.filter((e) => e.oid !== oid);
}

function expectOnly(c: CertInfo, issuer: CertInfo | undefined, lints: string[]) {
  const got = lintCertificate(c, issuer);
  for (const f of got) fired.add(f.lint);
  assert.deepEqual(
    got.map((f) => f.lint).sort(),
    [...lints].sort(),
    JSON.stringify(got),
  );
  for (const f of got) assert.ok(f.message.length > 0);
}

before(() => {
  const caSigner = newSigner('ec');
  const caSubject = encodeName([
    { type: 'O', value: 'Lint Test' },
    { type: 'CN', value: 'Lint CA' },
  ]);
  w = { caSigner, caSubject, ca: undefined as unknown as CertInfo, leafKey: newSigner('ec'), edKey: newSigner('ed25519'), rsaKey: newSigner('rsa') };
});

describe('lintCertificate', () => {
  before(async () => {
    w.ca = await build(caTemplate(w.caSigner, w.caSubject), w.caSigner);
  });

  describe('silent on good certificates', () => {
    it('ok-self-signed-root', () => expectOnly(w.ca, undefined, []));
    it('ok-ec-leaf', async () => expectOnly(await build(leafTemplate(), w.caSigner), w.ca, []));
    it('ok-rsa-leaf-with-encipherment', async () => {
      const t = leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'keyEncipherment', 'dataEncipherment'])) }, w.rsaKey);
      t.extensions = t.extensions.map((e) => (e.oid === '2.5.29.14' ? x.subjectKeyIdentifier(x.keyIdentifierOf(w.rsaKey.spki)) : e));
      expectOnly(await build(t, w.caSigner), w.ca, []);
    });
    it('ok-ed25519-leaf-signing-only', async () => {
      const t = leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'nonRepudiation'])) }, w.edKey);
      expectOnly(await build(t, w.caSigner), w.ca, []);
    });
    it('ok-empty-subject-with-critical-san', async () => {
      const t = leafTemplate({ subject: encodeName([]), extensions: withExt('2.5.29.17', x.subjectAltName(sans('dns:a.example'), true)) });
      expectOnly(await build(t, w.caSigner), w.ca, []);
    });
    it('ok-ocsp-signer-with-nocheck', async () => {
      const t = leafTemplate({ extensions: [...withExt('2.5.29.37', x.extendedKeyUsage([EKU_OCSP])), x.ocspNoCheck()] });
      expectOnly(await build(t, w.caSigner), w.ca, []);
    });
    it('ok-serial-exactly-20-octets', async () => {
      expectOnly(await build(leafTemplate({ serial: new Uint8Array(20).fill(0x7f) }), w.caSigner), w.ca, []);
    });
    it('ok-sub-ca-below-pathlen-1', async () => {
      const root = await build(caTemplate(w.caSigner, w.caSubject, { pathLen: 1 }), w.caSigner);
      const sub = newSigner('ec');
      const t = caTemplate(sub, encodeName([{ type: 'CN', value: 'Sub' }]), { pathLen: 0 });
      t.issuer = w.caSubject;
      t.extensions.push(x.authorityKeyIdentifier(root.ski!));
      expectOnly(await build(t, w.caSigner), root, []);
    });
    it('ok-notAfter-equal-to-issuer', async () => {
      expectOnly(await build(leafTemplate({ notAfter: w.ca.notAfter }), w.caSigner), w.ca, []);
    });
  });

  describe('each lint fires on a certificate that breaks it', () => {
    const cases: Array<{ name: string; lints: string[]; make: () => Promise<{ c: CertInfo; issuer?: CertInfo | null }> }> = [
      { name: 'fail-serial-21-octets', lints: ['serial_positive_max_20_octets'], make: async () => ({ c: await build(leafTemplate({ serial: new Uint8Array(21).fill(0x01) }), w.caSigner) }) },
      // 20 octets with the top bit set need a 0x00 pad: 21 encoded octets.
      { name: 'fail-serial-20-octets-needing-pad', lints: ['serial_positive_max_20_octets'], make: async () => ({ c: await build(leafTemplate({ serial: new Uint8Array(20).fill(0x80) }), w.caSigner) }) },
      { name: 'fail-serial-zero', lints: ['serial_positive_max_20_octets'], make: async () => ({ c: await build(leafTemplate({ serial: Uint8Array.of(0) }), w.caSigner) }) },
      {
        name: 'fail-serial-negative',
        lints: ['serial_positive_max_20_octets'],
        make: async () => ({ c: { ...(await build(leafTemplate(), w.caSigner)), serial: 'ff01' } }),
      },
      { name: 'fail-validity-reversed', lints: ['validity_ordered'], make: async () => ({ c: await build(leafTemplate({ notBefore: days(10), notAfter: days(9) }), w.caSigner) }) },
      { name: 'fail-validity-zero-length', lints: ['validity_ordered'], make: async () => ({ c: await build(leafTemplate({ notBefore: days(10), notAfter: days(10) }), w.caSigner) }) },
      {
        name: 'fail-validity-fractional-seconds',
        lints: ['validity_whole_seconds'],
        make: async () => {
          const c = await build(leafTemplate(), w.caSigner);
          return { c: { ...c, notAfter: new Date(c.notAfter.getTime() + 500) } };
        },
      },
      { name: 'fail-outlives-issuer', lints: ['validity_within_issuer'], make: async () => ({ c: await build(leafTemplate({ notAfter: new Date(w.ca.notAfter.getTime() + 1000) }), w.caSigner) }) },
      {
        name: 'fail-issuer-name-other-encoding-same-text',
        lints: ['issuer_matches_issuer_subject'],
        make: async () => {
          // Same text, UTF8String instead of PrintableString: not the issuer's subject byte for byte.
          const utf8 = der.seq(
            der.tlv(der.TAG.SET, der.seq(der.oid('2.5.4.10'), der.tlv(der.TAG.UTF8String, new Uint8Array(Buffer.from('Lint Test'))))),
            der.tlv(der.TAG.SET, der.seq(der.oid('2.5.4.3'), der.tlv(der.TAG.UTF8String, new Uint8Array(Buffer.from('Lint CA'))))),
          );
          const c = await build(leafTemplate({ issuer: utf8 }), w.caSigner);
          assert.equal(c.issuerText, w.ca.subjectText);
          return { c };
        },
      },
      {
        name: 'fail-duplicate-extension',
        lints: ['no_duplicate_extensions'],
        make: async () => ({ c: await build(leafTemplate({ extensions: [...leafTemplate().extensions, x.extendedKeyUsage(['1.3.6.1.5.5.7.3.1'])] }), w.caSigner) }),
      },
      { name: 'fail-empty-subject-no-san', lints: ['empty_subject_needs_critical_san'], make: async () => ({ c: await build(leafTemplate({ subject: encodeName([]), extensions: withExt('2.5.29.17') }), w.caSigner) }) },
      { name: 'fail-empty-subject-non-critical-san', lints: ['empty_subject_needs_critical_san'], make: async () => ({ c: await build(leafTemplate({ subject: encodeName([]) }), w.caSigner) }) },
      {
        name: 'fail-ca-basic-constraints-not-critical',
        lints: ['ca_basic_constraints_critical'],
        make: async () => {
          const t = caTemplate(w.caSigner, w.caSubject);
          t.extensions[0] = { ...x.basicConstraints(true), critical: false };
          return { c: await build(t, w.caSigner), issuer: null };
        },
      },
      {
        name: 'fail-ca-without-keyCertSign',
        lints: ['key_cert_sign_iff_ca'],
        make: async () => {
          const t = caTemplate(w.caSigner, w.caSubject);
          t.extensions[1] = x.keyUsage(['cRLSign', 'digitalSignature']);
          return { c: await build(t, w.caSigner), issuer: null };
        },
      },
      { name: 'fail-leaf-with-keyCertSign', lints: ['key_cert_sign_iff_ca'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'keyCertSign'])) }), w.caSigner) }) },
      { name: 'fail-no-key-usage', lints: ['key_usage_present'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15') }), w.caSigner) }) },
      {
        name: 'fail-path-len-without-ca',
        lints: ['path_len_only_for_ca'],
        make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.19', { oid: '2.5.29.19', critical: true, value: der.seq(der.integer(3)) }) }), w.caSigner) }),
      },
      {
        name: 'fail-sub-ca-under-pathlen-0',
        lints: ['issuer_path_length'],
        make: async () => {
          const issuer = await build(caTemplate(w.caSigner, w.caSubject, { pathLen: 0 }), w.caSigner);
          const sub = newSigner('ec');
          const t = caTemplate(sub, encodeName([{ type: 'CN', value: 'Sub' }]));
          t.issuer = w.caSubject;
          t.extensions.push(x.authorityKeyIdentifier(issuer.ski!));
          return { c: await build(t, w.caSigner), issuer };
        },
      },
      {
        name: 'fail-sub-ca-pathlen-not-below-issuer',
        lints: ['issuer_path_length'],
        make: async () => {
          const issuer = await build(caTemplate(w.caSigner, w.caSubject, { pathLen: 1 }), w.caSigner);
          const sub = newSigner('ec');
          const t = caTemplate(sub, encodeName([{ type: 'CN', value: 'Sub' }]), { pathLen: 1 });
          t.issuer = w.caSubject;
          t.extensions.push(x.authorityKeyIdentifier(issuer.ski!));
          return { c: await build(t, w.caSigner), issuer };
        },
      },
      {
        name: 'fail-sub-ca-unbounded-under-bounded-issuer',
        lints: ['issuer_path_length'],
        make: async () => {
          const issuer = await build(caTemplate(w.caSigner, w.caSubject, { pathLen: 2 }), w.caSigner);
          const sub = newSigner('ec');
          const t = caTemplate(sub, encodeName([{ type: 'CN', value: 'Sub' }]));
          t.issuer = w.caSubject;
          t.extensions.push(x.authorityKeyIdentifier(issuer.ski!));
          return { c: await build(t, w.caSigner), issuer };
        },
      },
      {
        name: 'fail-issuer-not-a-ca',
        lints: ['issuer_is_ca'],
        make: async () => {
          const issuer = await build(leafTemplate({ subject: w.caSubject, spki: w.caSigner.spki, extensions: [x.basicConstraints(false), x.keyUsage(['digitalSignature']), x.subjectKeyIdentifier(w.ca.ski!), x.authorityKeyIdentifier(w.ca.ski!)] }), w.caSigner);
          return { c: await build(leafTemplate(), w.caSigner), issuer };
        },
      },
      {
        name: 'fail-issuer-ca-without-keyCertSign',
        lints: ['issuer_is_ca'],
        make: async () => {
          const t = caTemplate(w.caSigner, w.caSubject);
          t.extensions[1] = x.keyUsage(['cRLSign']);
          const issuer = { ...(await build(t, w.caSigner)) };
          return { c: await build(leafTemplate(), w.caSigner), issuer };
        },
      },
      { name: 'fail-no-aki', lints: ['aki_present'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.35') }), w.caSigner) }) },
      { name: 'fail-aki-differs-from-issuer-ski', lints: ['aki_matches_issuer_ski'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.35', x.authorityKeyIdentifier(new Uint8Array(20).fill(9))) }), w.caSigner) }) },
      {
        name: 'fail-ca-without-ski',
        lints: ['ca_ski_present'],
        make: async () => {
          const t = caTemplate(w.caSigner, w.caSubject);
          t.extensions = t.extensions.filter((e) => e.oid !== '2.5.29.14');
          return { c: await build(t, w.caSigner), issuer: null };
        },
      },
      { name: 'fail-ec-key-with-keyEncipherment', lints: ['ec_key_usage'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'keyEncipherment'])) }), w.caSigner) }) },
      { name: 'fail-ec-key-with-dataEncipherment', lints: ['ec_key_usage'], make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['dataEncipherment', 'digitalSignature'])) }), w.caSigner) }) },
      {
        name: 'fail-ed25519-key-with-keyAgreement',
        lints: ['eddsa_key_usage'],
        make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'keyAgreement'])) }, w.edKey), w.caSigner) }),
      },
      {
        name: 'fail-ed25519-key-with-keyEncipherment',
        lints: ['eddsa_key_usage'],
        make: async () => ({ c: await build(leafTemplate({ extensions: withExt('2.5.29.15', x.keyUsage(['digitalSignature', 'keyEncipherment'])) }, w.edKey), w.caSigner) }),
      },
      { name: 'fail-nocheck-without-ocsp-signing', lints: ['ocsp_nocheck_only_for_ocsp_signing'], make: async () => ({ c: await build(leafTemplate({ extensions: [...leafTemplate().extensions, x.ocspNoCheck()] }), w.caSigner) }) },
      { name: 'fail-nocheck-without-eku', lints: ['ocsp_nocheck_only_for_ocsp_signing'], make: async () => ({ c: await build(leafTemplate({ extensions: [...withExt('2.5.29.37'), x.ocspNoCheck()] }), w.caSigner) }) },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        const { c: cert, issuer } = await c.make();
        expectOnly(cert, issuer === null ? undefined : (issuer ?? w.ca), c.lints);
      });
    }
  });

  describe('issuer_name_constraints', () => {
    let constrained: CertInfo;
    before(async () => {
      const t = caTemplate(w.caSigner, w.caSubject);
      t.extensions.push(
        x.nameConstraints({
          permitted: bases('dns:example.com', 'dns:.corp.example', 'ip:10.0.0.0/8', 'ip:fd00::/8', 'email:example.com', 'uri:.example.com'),
          excluded: bases('dns:bad.example.com', 'ip:10.66.0.0/16', 'email:root@example.com'),
        }),
      );
      constrained = await build(t, w.caSigner);
      assert.equal(constrained.nameConstraints?.permitted.length, 6);
      assert.equal(constrained.nameConstraints?.excluded.length, 3);
    });
    const leafWith = (names: string[]) => build(leafTemplate({ extensions: withExt('2.5.29.17', x.subjectAltName(sans(...names), false)) }), w.caSigner);

    const ok = [
      ['dns:example.com'],
      ['dns:a.example.com', 'dns:x.y.example.com'],
      ['dns:host.corp.example'],
      ['ip:10.1.2.3', 'ip:10.255.255.255'],
      ['ip:fd12:3456::1'],
      ['email:ops@example.com'],
      ['uri:https://api.example.com/x'],
      ['dns:EXAMPLE.com'.toLowerCase()],
    ];
    for (const names of ok) it(`ok-inside ${names.join(',')}`, async () => expectOnly(await leafWith(names), constrained, []));

    const bad = [
      ['dns:example.org'],
      ['dns:a.example.com', 'dns:notexample.com'],
      ['dns:corp.example'], // ".corp.example" permits only names below it
      ['dns:bad.example.com'],
      ['dns:x.bad.example.com'],
      ['ip:11.0.0.1'],
      ['ip:10.66.1.1'],
      ['ip:fe80::1'],
      ['email:ops@other.example'],
      ['email:root@example.com'],
      ['uri:https://api.example.org/'],
      ['uri:urn:example:device:1'],
    ];
    for (const names of bad) it(`fail-outside ${names.join(',')}`, async () => expectOnly(await leafWith(names), constrained, ['issuer_name_constraints']));

    it('ok-types-without-permitted-subtrees-are-unconstrained', async () => {
      const t = caTemplate(w.caSigner, w.caSubject);
      t.extensions.push(x.nameConstraints({ permitted: bases('dns:example.com') }));
      const dnsOnly = await build(t, w.caSigner);
      expectOnly(await leafWith(['ip:192.0.2.1', 'email:a@b.example']), dnsOnly, []);
      expectOnly(await leafWith(['dns:other.example']), dnsOnly, ['issuer_name_constraints']);
    });
  });

  it('ok-the-draft-signature-does-not-matter', async () => {
    // The authority lints a draft signed with an empty signature: the lints read the TBS only.
    const t = leafTemplate();
    const alg = signatureAlgorithmFor(w.caSigner.key);
    const draft = der.seq(encodeTbs(t, alg.algorithmIdentifier), alg.algorithmIdentifier, der.bitString(new Uint8Array(0)));
    expectOnly(parseCertificate(draft), w.ca, []);
    expectOnly(parseCertificate(der.seq(encodeTbs({ ...t, serial: Uint8Array.of(0) }, alg.algorithmIdentifier), alg.algorithmIdentifier, der.bitString(new Uint8Array(0)))), w.ca, [
      'serial_positive_max_20_octets',
    ]);
  });

  it('ok-every-lint-has-a-case-that-fires-it', () => {
    assert.deepEqual([...fired].sort(), [...ALL_LINTS].sort());
  });
});
