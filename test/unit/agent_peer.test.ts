/**
 * Peer authorisation: every way a peer is refused, and the ways it is
 * accepted. Fleet certificates come from a real fleetpki CA, another
 * organisation's from a second one (p384), odd chains from the openssl CLI.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crlSignedBy, parseCrl, type ParsedCrl } from '../../src/agent/certs.js';
import { authorizePeer, refusalOf, type PeerPolicy, type PeerRefusal, type TrustAnchor } from '../../src/agent/peer.js';
import { CrlService } from '../../src/authority/crl.js';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { parseCertificate, type CertInfo } from '../../src/x509/cert_info.js';
import { makeCsr, makeTestCa, OPENSSL, type TestCa } from '../helpers/ca_fixture.js';

const HOUR = 3_600_000;
let fleet: TestCa;
let partner: TestCa;
const work = mkdtempSync(join(tmpdir(), 'fleetpki-peer-'));
const f = (n: string) => join(work, n);

const certs: Record<string, CertInfo> = {};
let fleetRoot: CertInfo, fleetIssuing: CertInfo, partnerRoot: CertInfo, partnerIssuing: CertInfo;
const crlsByIssuer = new Map<string, ParsedCrl>();
let fleetIssuingCrl: ParsedCrl;

async function issue(ca: TestCa, name: string, o: { domains?: string[]; profile?: string; alg?: 'ecdsa-p256' | 'rsa-2048' } = {}): Promise<CertInfo> {
  const { csrPem } = makeCsr({ alg: o.alg ?? 'ecdsa-p256', subject: `/CN=${name}` });
  const sans = (o.domains ?? []).map((d) => ({ type: 'uri' as const, value: `urn:fleetpki:domain:${d}` }));
  const r = await ca.authority.issue({ csr: csrPem, profile: o.profile ?? 'device-tls', sans: sans.length ? sans : [{ type: 'dns', value: `${name}.example` }], actor: 'test' });
  return (certs[name] = parseCertificate(r.der));
}

async function publishCrl(ca: TestCa, caName: string): Promise<ParsedCrl> {
  const svc = new CrlService(ca.store, ca.authority, ca.clock, { validityHours: 24, refreshAheadHours: 12, deltaValidityHours: 0, publicUrl: 'http://pki.test.example:8080' });
  const crl = parseCrl((await svc.publish(caName)).der);
  const issuer = parseCertificate((await ca.store.getCa(caName))!.certDer);
  assert.ok(crlSignedBy(crl, issuer));
  crlsByIssuer.set(issuer.fingerprintSha256, crl);
  return crl;
}

function openssl(args: string[]): void {
  execFileSync(OPENSSL, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** A certificate made by the openssl CLI: self-signed (no issuer) or signed by `issuer`. */
function osslCert(name: string, o: { issuer?: string; ext: string; days?: number }): CertInfo {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(`${name}.key`)]);
  writeFileSync(f(`${name}.ext`), `${o.ext}\n`);
  if (!o.issuer) {
    openssl(['req', '-x509', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${name}`, '-days', String(o.days ?? 30), '-out', f(`${name}.pem`), '-extensions', 'v3', '-config', f(`${name}.cnf`)].filter(Boolean));
  } else {
    openssl(['req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${name}`, '-out', f(`${name}.csr`)]);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${o.issuer}.pem`), '-CAkey', f(`${o.issuer}.key`), '-CAcreateserial', '-days', String(o.days ?? 30), '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`)]);
  }
  return (certs[name] = parseCertificate(readFileSync(f(`${name}.pem`), 'utf8')));
}

function osslRoot(name: string, ext: string): CertInfo {
  writeFileSync(f(`${name}.cnf`), `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${ext.split('\n').join('\n')}\n`);
  return osslCert(name, { ext });
}

before(async () => {
  fleet = await makeTestCa({ profiles: { 'server-only': { ...DEFAULT_PROFILES['device-tls'], description: 'serverAuth only', extendedKeyUsage: ['serverAuth'] } } });
  partner = await makeTestCa({ keyAlgorithm: 'ecdsa-p384' });
  fleetRoot = parseCertificate(fleet.rootPem);
  fleetIssuing = parseCertificate(fleet.issuingPem);
  partnerRoot = parseCertificate(partner.rootPem);
  partnerIssuing = parseCertificate(partner.issuingPem);

  await issue(fleet, 'peer-a', { domains: ['plant-a'] });
  await issue(fleet, 'peer-a-rsa', { domains: ['plant-a'], alg: 'rsa-2048' });
  await issue(fleet, 'peer-b', { domains: ['plant-b'] });
  await issue(fleet, 'peer-ab', { domains: ['plant-a', 'plant-b'] });
  await issue(fleet, 'no-domain');
  await issue(fleet, 'server-only', { domains: ['plant-a'], profile: 'server-only' });
  const revoked = await issue(fleet, 'revoked-a', { domains: ['plant-a'] });
  await fleet.authority.revoke(revoked.serial, 'keyCompromise', 'test');
  fleetIssuingCrl = await publishCrl(fleet, 'issuing');
  await publishCrl(fleet, 'root');

  await issue(partner, 'partner-a', { domains: ['plant-a'] });
  await issue(partner, 'partner-b', { domains: ['plant-b'] });
  await issue(partner, 'partner-ax', { domains: ['plant-a', 'plant-x'] });
  await publishCrl(partner, 'issuing');
  await publishCrl(partner, 'root');

  const leafExt = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=URI:urn:fleetpki:domain:plant-a';
  osslRoot('stranger-root', 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign');
  osslCert('stranger', { issuer: 'stranger-root', ext: leafExt });
  osslCert('odd-critical', { issuer: 'stranger-root', ext: `${leafExt}\n1.2.3.4.5=critical,ASN1:NULL` });
  osslCert('leaf-signer', { issuer: 'stranger-root', ext: leafExt });
  osslCert('signed-by-leaf', { issuer: 'leaf-signer', ext: leafExt });
  osslRoot('strict-root', 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign');
  osslCert('strict-inter', { issuer: 'strict-root', ext: 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign' });
  osslCert('too-deep', { issuer: 'strict-inter', ext: leafExt });
});

after(async () => {
  await fleet?.cleanup();
  await partner?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

function policy(o: Partial<PeerPolicy> & { extraAnchors?: TrustAnchor[] } = {}): PeerPolicy {
  return {
    anchors: [{ name: 'fleet', cert: fleetRoot, domains: '*' }, { name: 'partner', cert: partnerRoot, domains: ['plant-a'] }, ...(o.extraAnchors ?? [])],
    intermediates: [fleetIssuing],
    crls: (_cert, issuer) => crlsByIssuer.get(issuer.fingerprintSha256),
    domains: ['plant-a'],
    now: new Date(),
    ...o,
  };
}

const strangers = () => ({ name: 'stranger', cert: certs['stranger-root'], domains: ['plant-a'] });
const strict = () => ({ name: 'strict', cert: certs['strict-root'], domains: '*' as const });

type Case = { name: string; chain: () => Array<CertInfo | Uint8Array>; policy?: () => PeerPolicy; role?: 'client' | 'server'; refusal?: PeerRefusal; anchor?: string };

const cases: Case[] = [
  { name: 'ok-same-domain', chain: () => [certs['peer-a']], anchor: 'fleet' },
  { name: 'ok-rsa-peer', chain: () => [certs['peer-a-rsa']], anchor: 'fleet' },
  { name: 'ok-peer-sends-its-chain', chain: () => [certs['peer-a'], fleetIssuing, fleetRoot], policy: () => policy({ intermediates: [] }) },
  { name: 'ok-as-server', chain: () => [certs['peer-a']], role: 'server' },
  { name: 'ok-two-domains-one-shared', chain: () => [certs['peer-ab']] },
  { name: 'ok-cross-org-in-scope', chain: () => [certs['partner-a'], partnerIssuing], anchor: 'partner' },
  { name: 'ok-crl-grace', chain: () => [certs['peer-a']], policy: () => policy({ now: new Date(fleetIssuingCrl.nextUpdate!.getTime() + HOUR), crlGraceSeconds: 7200 }) },
  { name: 'ok-require-crl-leaf-only', chain: () => [certs['peer-a']], policy: () => policy({ requireCrl: 'leaf', crls: (c, i) => (c.isCa ? undefined : crlsByIssuer.get(i.fingerprintSha256)) }) },
  { name: 'ok-require-crl-none', chain: () => [certs['stranger']], policy: () => policy({ requireCrl: 'none', extraAnchors: [strangers()] }), anchor: 'stranger' },

  { name: 'fail-no-certificate', chain: () => [], refusal: 'no_certificate' },
  { name: 'fail-garbage', chain: () => [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])], refusal: 'bad_certificate' },
  { name: 'fail-other-ca', chain: () => [certs['stranger']], refusal: 'untrusted' },
  { name: 'fail-tampered-signature', chain: () => [tamper(certs['peer-a'])], refusal: 'untrusted' },
  { name: 'fail-missing-intermediate', chain: () => [certs['peer-a']], policy: () => policy({ intermediates: [] }), refusal: 'untrusted' },
  { name: 'fail-expired', chain: () => [certs['peer-a']], policy: () => policy({ now: new Date(certs['peer-a'].notAfter.getTime() + HOUR) }), refusal: 'expired' },
  { name: 'fail-not-yet-valid', chain: () => [certs['peer-a']], policy: () => policy({ now: new Date(certs['peer-a'].notBefore.getTime() - HOUR) }), refusal: 'not_yet_valid' },
  { name: 'fail-ca-as-leaf', chain: () => [fleetIssuing], refusal: 'wrong_purpose' },
  { name: 'fail-server-only-cert-as-client', chain: () => [certs['server-only']], role: 'client', refusal: 'wrong_purpose' },
  { name: 'fail-signed-by-a-leaf', chain: () => [certs['signed-by-leaf'], certs['leaf-signer']], policy: () => policy({ requireCrl: 'none', extraAnchors: [strangers()] }), refusal: 'not_a_ca' },
  { name: 'fail-path-too-long', chain: () => [certs['too-deep'], certs['strict-inter']], policy: () => policy({ requireCrl: 'none', extraAnchors: [strict()] }), refusal: 'path_too_long' },
  { name: 'fail-unknown-critical-extension', chain: () => [certs['odd-critical']], policy: () => policy({ requireCrl: 'none', extraAnchors: [strangers()] }), refusal: 'unknown_critical_extension' },
  { name: 'fail-revoked', chain: () => [certs['revoked-a']], refusal: 'revoked' },
  { name: 'fail-no-crl', chain: () => [certs['peer-a']], policy: () => policy({ crls: () => undefined }), refusal: 'no_crl' },
  { name: 'fail-no-crl-for-the-intermediate', chain: () => [certs['peer-a']], policy: () => policy({ crls: (c, i) => (c.isCa ? undefined : crlsByIssuer.get(i.fingerprintSha256)) }), refusal: 'no_crl' },
  { name: 'fail-crl-expired', chain: () => [certs['peer-a']], policy: () => policy({ now: new Date(fleetIssuingCrl.nextUpdate!.getTime() + HOUR) }), refusal: 'crl_expired' },
  { name: 'fail-no-domain', chain: () => [certs['no-domain']], refusal: 'no_domain' },
  { name: 'fail-other-domain', chain: () => [certs['peer-b']], refusal: 'wrong_domain' },
  { name: 'fail-we-have-no-domain', chain: () => [certs['peer-a']], policy: () => policy({ domains: [] }), refusal: 'wrong_domain' },
  { name: 'fail-cross-org-out-of-scope', chain: () => [certs['partner-b'], partnerIssuing], policy: () => policy({ domains: ['plant-a', 'plant-b'] }), refusal: 'domain_out_of_scope' },
  { name: 'fail-cross-org-claims-one-domain-too-many', chain: () => [certs['partner-ax'], partnerIssuing], refusal: 'domain_out_of_scope' },
  { name: 'fail-cross-org-not-on-the-trust-list', chain: () => [certs['partner-a'], partnerIssuing], policy: () => policy({ anchors: [{ name: 'fleet', cert: fleetRoot, domains: '*' }] }), refusal: 'untrusted' },
  { name: 'fail-cross-org-scoped-to-nothing', chain: () => [certs['partner-a'], partnerIssuing], policy: () => policy({ anchors: [{ name: 'fleet', cert: fleetRoot, domains: '*' }, { name: 'partner', cert: partnerRoot, domains: [] }] }), refusal: 'domain_out_of_scope' },
  // A peer that sends our root as its own anchor must still be signed by it.
  { name: 'fail-stranger-sends-our-root', chain: () => [certs['stranger'], fleetRoot], refusal: 'untrusted' },
];

function tamper(c: CertInfo): Uint8Array {
  const der = new Uint8Array(c.der);
  der[der.length - 5] ^= 0x01; // inside the signature
  return der;
}

describe('authorizePeer', () => {
  for (const c of cases) {
    it(c.name, () => {
      const p = (c.policy ?? (() => policy()))();
      if (!c.refusal) {
        const peer = authorizePeer(c.chain(), p, c.role ?? 'client');
        if (c.anchor) assert.equal(peer.anchor, c.anchor);
        assert.ok(peer.sharedDomains.length > 0);
        assert.equal(peer.path[0].serial, (c.chain()[0] as CertInfo).serial);
        return;
      }
      assert.throws(
        () => authorizePeer(c.chain(), p, c.role ?? 'client'),
        (e: unknown) => {
          assert.equal(refusalOf(e), c.refusal, (e as Error).message);
          assert.equal((e as { code: string }).code, 'forbidden');
          return true;
        },
      );
    });
  }
  it('ok-refusal-names-the-crl-to-fetch', () => {
    try {
      authorizePeer([certs['peer-a']], policy({ crls: () => undefined }), 'client');
      assert.fail('accepted');
    } catch (e) {
      assert.deepEqual((e as { extra: { crlUrls: string[] } }).extra.crlUrls, ['http://pki.test.example:8080/crl/issuing.crl']);
    }
  });
});
