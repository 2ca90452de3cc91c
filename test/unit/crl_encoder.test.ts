/**
 * The CRL fast path against independent readers: @peculiar/asn1-x509's
 * CertificateList parser (the library path), @peculiar/x509, and
 * `openssl crl -verify`.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import * as der from '../../src/asn1/der.js';
import { keyObjectSigner, type Signer } from '../../src/keys/key_store.js';
import type { RevokedEntry } from '../../src/store/store.js';
import { signCertificate } from '../../src/x509/cert_builder.js';
import { encodeCrl, type CrlInput } from '../../src/x509/crl_encoder.js';
import * as x from '../../src/x509/extensions.js';
import { encodeName } from '../../src/x509/names.js';
import { pemEncode } from '../../src/x509/pem.js';
import { runOpenssl, tempDir } from '../helpers/data_dir.js';

const work = tempDir('fleetpki-crl-');
after(() => rmSync(work, { recursive: true, force: true }));

const NOW = new Date('2030-05-01T12:00:00Z');
const name = encodeName([{ type: 'O', value: 'Test' }, { type: 'CN', value: 'CRL Test CA' }]);

async function makeCa(kind: 'ec' | 'rsa' | 'ed25519'): Promise<{ signer: Signer; ski: Uint8Array; pemFile: string }> {
  const { privateKey } =
    kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  const signer = keyObjectSigner(privateKey);
  const ski = x.keyIdentifierOf(signer.spki);
  const cert = await signCertificate(
    { serial: Uint8Array.of(1), issuer: name, subject: name, notBefore: new Date('2030-01-01T00:00:00Z'), notAfter: new Date('2031-01-01T00:00:00Z'), spki: signer.spki, extensions: [x.basicConstraints(true), x.keyUsage(['keyCertSign', 'cRLSign']), x.subjectKeyIdentifier(ski)] },
    signer,
  );
  const pemFile = join(work, `ca-${kind}.pem`);
  writeFileSync(pemFile, pemEncode('CERTIFICATE', cert));
  return { signer, ski, pemFile };
}

function input(ca: { signer: Signer; ski: Uint8Array }, entries: CrlInput["entries"], over: Partial<CrlInput> = {}): CrlInput {
  return { issuer: name, issuerKeyId: ca.ski, signer: ca.signer, number: 42, thisUpdate: NOW, nextUpdate: new Date(NOW.getTime() + 86_400_000), entries, ...over };
}

function opensslVerify(der: Uint8Array, caPem: string, extra: string[] = []): { ok: boolean; text: string } {
  const f = join(work, `crl-${Math.random().toString(36).slice(2)}.der`);
  writeFileSync(f, der);
  const r = runOpenssl(['crl', '-inform', 'DER', '-in', f, '-CAfile', caPem, '-noout', ...extra]);
  return { ok: /verify OK/.test(r.stderr + r.stdout), text: r.stdout + r.stderr };
}

const sample: RevokedEntry[] = [
  { serial: '40a1', revokedAt: new Date('2030-04-01T10:00:00Z'), reason: 'keyCompromise', invalidityDate: new Date('2030-03-31T08:00:00Z') },
  { serial: '40a2', revokedAt: new Date('2030-04-02T10:00:00Z'), reason: 'unspecified' },
  { serial: '40a3', revokedAt: new Date('2030-04-03T10:00:00Z'), reason: 'certificateHold' },
  { serial: '0080ff', revokedAt: new Date('2030-04-04T10:00:00Z'), reason: 'cessationOfOperation' },
  { serial: '7f'.repeat(20), revokedAt: new Date('2051-06-01T00:00:00Z'), reason: 'superseded' },
];

describe('CRL encoder', () => {
  for (const kind of ['ec', 'rsa', 'ed25519'] as const) {
    it(`ok-${kind}: openssl verifies it and the library reads every entry back`, async () => {
      const ca = await makeCa(kind);
      const { der, entries } = await encodeCrl(input(ca, [sample.slice(0, 2), sample.slice(2)]));
      assert.equal(entries, sample.length);
      assert.ok(opensslVerify(der, ca.pemFile).ok);
      const list = AsnConvert.parse(der, CertificateList);
      assert.equal(list.tbsCertList.version, 1, 'v2');
      const got = list.tbsCertList.revokedCertificates!.map((e) => ({
        serial: Buffer.from(e.userCertificate).toString('hex'),
        at: e.revocationDate.getTime().toISOString(),
        exts: (e.crlEntryExtensions ?? []).map((ext) => ext.extnID),
      }));
      assert.deepEqual(
        got.map((g) => [g.serial, g.at]),
        sample.map((s) => [s.serial, s.revokedAt.toISOString()]),
      );
      // §5.3.1: no reasonCode for unspecified; §5.3.2: invalidityDate present where given.
      assert.deepEqual(got[0].exts, ['2.5.29.21', '2.5.29.24']);
      assert.deepEqual(got[1].exts, []);
    });
  }

  it('matches @peculiar/x509 on reasons, dates and extensions', async () => {
    const ca = await makeCa('ec');
    const { der } = await encodeCrl(input(ca, [sample]));
    const crl = new x509.X509Crl(der);
    assert.equal(crl.thisUpdate.toISOString(), NOW.toISOString());
    assert.deepEqual(
      crl.entries.map((e) => [e.serialNumber, e.reason ?? 0, e.invalidity?.toISOString() ?? null]),
      sample.map((s) => [s.serial.replace(/^00/, ''), { unspecified: 0, keyCompromise: 1, certificateHold: 6, cessationOfOperation: 5, superseded: 4 }[s.reason as string], s.invalidityDate?.toISOString() ?? null]),
    );
    const ext = (oid: string) => crl.extensions.find((e) => e.type === oid);
    assert.ok(ext('2.5.29.35'), 'authorityKeyIdentifier');
    assert.ok(ext('2.5.29.20'), 'cRLNumber');
  });

  it("writes the revoked-entry list byte for byte as @peculiar/x509's X509CrlGenerator does", async () => {
    const ca = await makeCa('ec');
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    const key = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const reasonCode: Record<string, x509.X509CrlReason> = { unspecified: 0, keyCompromise: 1, superseded: 4, cessationOfOperation: 5, certificateHold: 6, affiliationChanged: 3, cACompromise: 2, privilegeWithdrawn: 9 };
    // Every reason, with and without invalidity dates, serials of 1..20 octets, dates on both sides of 2050.
    const entries: RevokedEntry[] = Object.keys(reasonCode).flatMap((reason, i) => [
      { serial: (0x10 + i).toString(16), revokedAt: new Date(Date.UTC(2030, i, 1 + i, i, 2 * i, 3 * i)), reason: reason as RevokedEntry['reason'] },
      { serial: `${(0x40 + i).toString(16)}${'a5'.repeat(i + 1)}`, revokedAt: new Date(Date.UTC(2049 + (i % 3), 11, 31, 23, 59, 59)), reason: reason as RevokedEntry['reason'], invalidityDate: new Date(Date.UTC(2029 + i * 3, 0, 2, 3, 4, 5)) },
    ]);
    entries.push({ serial: '7f'.repeat(20), revokedAt: new Date('2099-06-01T00:00:00Z'), reason: 'keyCompromise', invalidityDate: new Date('2099-05-31T00:00:00Z') });
    const ours = (await encodeCrl(input(ca, [entries]))).der;
    const library = await x509.X509CrlGenerator.create({
      issuer: new x509.Name(name).toString(),
      thisUpdate: NOW,
      nextUpdate: new Date(NOW.getTime() + 86_400_000),
      entries: entries.map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt, reason: reasonCode[e.reason], invalidity: e.invalidityDate })),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      signingKey: key.privateKey as unknown as x509.X509CrlCreateParams['signingKey'],
    });
    // TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, revokedCertificates, ...
    const revokedEntries = (crl: Uint8Array) => {
      const tbs = der.readChildren(crl, der.readTlv(crl, 0))[0];
      const list = der.readChildren(crl, tbs)[5];
      return der.readChildren(crl, list).map((e) => Buffer.from(der.slice(crl, e)).toString('hex'));
    };
    const mine = revokedEntries(ours);
    const theirs = revokedEntries(new Uint8Array(library.rawData));
    assert.equal(mine.length, entries.length);
    assert.equal(theirs.length, entries.length);
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (e.reason === 'unspecified' && !e.invalidityDate) {
        // The one difference: with nothing to say the library writes an
        // empty crlEntryExtensions (30 00), which RFC 5280 §4.1 forbids
        // (Extensions ::= SEQUENCE SIZE (1..MAX)); we leave it out.
        assert.equal(theirs[i], `${(parseInt(mine[i].slice(2, 4), 16) + 2).toString(16).padStart(2, '0')}`.replace(/^/, '30') + mine[i].slice(4) + '3000', `entry ${i}`);
      } else {
        assert.equal(mine[i], theirs[i], `entry ${i} (${e.reason}${e.invalidityDate ? ', invalidityDate' : ''})`);
      }
    }
  });

  it('column pages (the store path) give the same CRL as entry pages (Ed25519: the signature is deterministic)', async () => {
    const ca = await makeCa('ed25519');
    const entries = [...sample, { serial: '4abc', revokedAt: new Date('2030-04-05T00:00:00Z'), reason: 'removeFromCRL' as const }];
    const columns = {
      serials: entries.map((e) => e.serial),
      revokedAt: entries.map((e) => e.revokedAt.getTime()),
      reasons: entries.map((e) => ({ unspecified: 0, keyCompromise: 1, superseded: 4, cessationOfOperation: 5, certificateHold: 6, removeFromCRL: 8 })[e.reason as string]!),
      invalidityDates: entries.map((e) => ('invalidityDate' in e && e.invalidityDate ? e.invalidityDate.getTime() : null)),
    };
    const a = await encodeCrl(input(ca, [entries.slice(0, 3), entries.slice(3)]));
    const b = await encodeCrl(input(ca, [{ serials: columns.serials.slice(0, 2), revokedAt: columns.revokedAt.slice(0, 2), reasons: columns.reasons.slice(0, 2), invalidityDates: columns.invalidityDates.slice(0, 2) }, { serials: columns.serials.slice(2), revokedAt: columns.revokedAt.slice(2), reasons: columns.reasons.slice(2), invalidityDates: columns.invalidityDates.slice(2) }]));
    assert.equal(b.entries, entries.length);
    assert.equal(Buffer.from(b.der).toString('hex'), Buffer.from(a.der).toString('hex'));
  });

  it('uses GeneralizedTime from 2050 and UTCTime before (§5.1.2.4, §5.1.2.6)', async () => {
    const ca = await makeCa('ec');
    const { der } = await encodeCrl(input(ca, [sample]));
    const list = AsnConvert.parse(der, CertificateList);
    const times = list.tbsCertList.revokedCertificates!.map((e) => (e.revocationDate.utcTime ? 'utc' : 'gen'));
    assert.deepEqual(times, ['utc', 'utc', 'utc', 'utc', 'gen']);
  });

  it('omits the revoked list entirely when there are no entries (§5.1.2.6)', async () => {
    const ca = await makeCa('ec');
    const { der, entries } = await encodeCrl(input(ca, []));
    assert.equal(entries, 0);
    assert.equal(AsnConvert.parse(der, CertificateList).tbsCertList.revokedCertificates, undefined);
    assert.ok(opensslVerify(der, ca.pemFile).ok);
  });

  it('delta CRL: critical deltaCRLIndicator with the base number, removeFromCRL for released holds', async () => {
    const ca = await makeCa('ec');
    const { der } = await encodeCrl(input(ca, [sample.slice(0, 1)], { number: 43, delta: { baseNumber: 42, released: [{ serial: '40a3', releasedAt: new Date('2030-04-05T00:00:00Z') }] } }));
    const text = opensslVerify(der, ca.pemFile, ['-text']).text;
    assert.match(text, /X509v3 Delta CRL Indicator: critical\s+42/);
    assert.match(text, /Serial Number: 40A3[\s\S]*?Remove From CRL/);
    assert.ok(opensslVerify(der, ca.pemFile).ok);
  });

  it('base CRL names its delta in freshestCRL; a shard names itself in a critical issuingDistributionPoint', async () => {
    const ca = await makeCa('ec');
    const base = await encodeCrl(input(ca, [sample], { freshestUrl: 'http://pki.example/crl/ca-delta.crl' }));
    assert.match(opensslVerify(base.der, ca.pemFile, ['-text']).text, /Freshest CRL:[\s\S]*URI:http:\/\/pki\.example\/crl\/ca-delta\.crl/);
    const shard = await encodeCrl(input(ca, [sample], { distributionPointUrl: 'http://pki.example/crl/ca-3.crl' }));
    const t = opensslVerify(shard.der, ca.pemFile, ['-text']).text;
    assert.match(t, /Issuing Distribution Point: critical[\s\S]*URI:http:\/\/pki\.example\/crl\/ca-3\.crl[\s\S]*Only User Certificates/);
  });

  it('a tampered CRL fails openssl verification (the check can fail)', async () => {
    const ca = await makeCa('ec');
    const { der } = await encodeCrl(input(ca, [sample]));
    const bad = new Uint8Array(der);
    bad[120] ^= 0x01;
    assert.equal(opensslVerify(bad, ca.pemFile).ok, false);
  });

  it('100,000 entries: openssl verifies the signature and counts every entry', async () => {
    const ca = await makeCa('ec');
    const page: RevokedEntry[] = Array.from({ length: 100_000 }, (_, i) => ({ serial: `40${i.toString(16).padStart(32, '0')}`, revokedAt: new Date(NOW.getTime() - i * 1000), reason: i % 2 ? 'keyCompromise' : 'superseded' }));
    const { der, entries } = await encodeCrl(input(ca, [page.slice(0, 60_000), page.slice(60_000)]));
    assert.equal(entries, 100_000);
    const f = join(work, 'big.der');
    writeFileSync(f, der);
    const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', f, '-CAfile', ca.pemFile, '-noout', '-text'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    assert.match(r.stderr + r.stdout, /verify OK/);
    assert.equal((r.stdout.match(/Serial Number:/g) ?? []).length, 100_000);
  });
});
