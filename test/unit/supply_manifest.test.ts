/**
 * Supply-chain manifests (issue 8): the JSON document and its CMS envelope.
 * Signed by fleetpki and by `openssl cms -sign`; refused when malformed
 * (garbage, truncated, another content type, a bad document), when any one
 * byte is changed, or when the signer is not the named supplier's.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as der from '../../src/asn1/der.js';
import { signAttached, signDetached } from '../../src/firmware/cms.js';
import { readManifest, signManifest, verifyManifest } from '../../src/registry/supply_cms.js';
import { encodeManifest, manifestRefusalOf, parseManifestJson, type ManifestRefusal, type SupplyManifest } from '../../src/registry/supply_manifest.js';
import { makeSupplier, type TestSupplier } from '../helpers/supplier.js';

let NOW = new Date();
const HEX = 'ab'.repeat(32);
let dir: string;
let chipco: TestSupplier;
let other: TestSupplier;

const sample = (over: Partial<SupplyManifest> = {}): SupplyManifest => ({
  supplier: 'ChipCo',
  stage: 'assembly',
  createdAt: new Date('2026-12-02T08:00:00Z'),
  devices: [
    { id: 'chip-0001', certificateSha256: HEX, model: 'sensor-x', batch: 'B7' },
    { id: 'chip-0002', publicKeySha256: 'cd'.repeat(32) },
  ],
  ...over,
});

function refusedWith(reason: ManifestRefusal, fn: () => unknown, detail?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.equal(manifestRefusalOf(e), reason, `expected ${reason}, got ${String(e)}`);
    if (detail) assert.match((e as Error).message, detail);
    return true;
  });
}

const jsonBytes = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));
/** Signs arbitrary content as a manifest would be (bypassing signManifest's own check). */
const signRaw = (content: Uint8Array) => {
  const id = chipco.identity();
  return signAttached({ signer: id.signer, certificate: id.certificate, chain: id.chain, digestAlgorithm: 'sha256', content, signingTime: NOW });
};
const openssl = (args: string[]) => new Uint8Array(execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] }));

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'fleetpki-supply-'));
  chipco = makeSupplier(dir, 'ChipCo');
  other = makeSupplier(dir, 'Other Co');
  NOW = new Date(Date.now() + 1000);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('manifest document', () => {
  it('ok-encode then parse gives the same manifest', () => {
    const m = parseManifestJson(encodeManifest(sample()));
    assert.deepEqual(m, sample());
  });

  const doc = () => JSON.parse(new TextDecoder().decode(encodeManifest(sample())));
  const cases: Array<[string, unknown]> = [
    ['not-json', '{"format": "fleetpki-supply-manifest",'],
    ['not-an-object', [1, 2]],
    ['wrong-format', { ...doc(), format: 'something-else' }],
    ['wrong-version', { ...doc(), version: 2 }],
    ['unknown-field', { ...doc(), extra: true }],
    ['bad-stage', { ...doc(), stage: 'Assembly Line' }],
    ['bad-time', { ...doc(), createdAt: 'yesterday' }],
    ['no-devices', { ...doc(), devices: [] }],
    ['entry-unknown-field', { ...doc(), devices: [{ id: 'a', certificateSha256: HEX, colour: 'red' }] }],
    ['entry-no-hash', { ...doc(), devices: [{ id: 'a' }] }],
    ['entry-both-hashes', { ...doc(), devices: [{ id: 'a', certificateSha256: HEX, publicKeySha256: HEX }] }],
    ['entry-short-hash', { ...doc(), devices: [{ id: 'a', certificateSha256: 'abcd' }] }],
    ['entry-uppercase-hash', { ...doc(), devices: [{ id: 'a', certificateSha256: HEX.toUpperCase() }] }],
    ['entry-bad-id', { ...doc(), devices: [{ id: '-bad id', certificateSha256: HEX }] }],
    ['entry-twice', { ...doc(), devices: [{ id: 'a', certificateSha256: HEX }, { id: 'a', publicKeySha256: HEX }] }],
    ['entry-bad-model', { ...doc(), devices: [{ id: 'a', certificateSha256: HEX, model: 'x\ny' }] }],
  ];
  for (const [name, v] of cases) {
    it(`fail-${name}`, () => refusedWith('bad_content', () => parseManifestJson(jsonBytes(v))));
  }
  it('fail-not-utf8', () => refusedWith('bad_content', () => parseManifestJson(Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d)), /UTF-8/));
});

describe('manifest CMS', () => {
  it('ok-signed by fleetpki: verifies against the supplier root, names the supplier and the digest', async () => {
    const content = encodeManifest(sample());
    const cms = await signManifest(chipco.identity(), content, NOW);
    const v = verifyManifest(cms, [other.anchor(), chipco.anchor()], NOW);
    assert.equal(v.supplier, 'ChipCo');
    assert.deepEqual(v.manifest, sample());
    assert.equal(v.path.length, 3);
    assert.equal(v.digest, (await import('node:crypto')).createHash('sha256').update(content).digest('hex'));
    assert.equal(readManifest(cms).digest, v.digest);
  });

  it('ok-signed by openssl cms -sign -nodetach (the signing CA in -certfile)', () => {
    const f = join(dir, 'm.json');
    writeFileSync(f, encodeManifest(sample()));
    const cms = openssl(['cms', '-sign', '-nodetach', '-binary', '-in', f, '-signer', chipco.certPem, '-inkey', chipco.keyPem, '-certfile', chipco.chainPem, '-outform', 'DER']);
    assert.equal(verifyManifest(cms, [chipco.anchor()], NOW).manifest.devices.length, 2);
    const pem = openssl(['cms', '-sign', '-nodetach', '-binary', '-in', f, '-signer', chipco.certPem, '-inkey', chipco.keyPem, '-certfile', chipco.chainPem, '-outform', 'PEM']);
    assert.equal(verifyManifest(pem, [chipco.anchor()], NOW).supplier, 'ChipCo');
  });

  it('fail-signManifest refuses to sign an invalid document', async () => {
    await assert.rejects(signManifest(chipco.identity(), jsonBytes({ format: 'x' }), NOW), (e: unknown) => manifestRefusalOf(e) === 'bad_content');
  });

  it('fail-garbage', () => {
    for (const g of [new Uint8Array(0), jsonBytes('hello'), Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff), Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x01)]) {
      refusedWith('malformed', () => verifyManifest(g, [chipco.anchor()], NOW));
    }
  });

  it('fail-truncated at every tenth length', async () => {
    const cms = await signManifest(chipco.identity(), encodeManifest(sample()), NOW);
    for (let n = 0; n < cms.length; n += 10) refusedWith('malformed', () => verifyManifest(cms.slice(0, n), [chipco.anchor()], NOW));
  });

  it('fail-trailing bytes', async () => {
    const cms = await signManifest(chipco.identity(), encodeManifest(sample()), NOW);
    refusedWith('malformed', () => verifyManifest(new Uint8Array([...cms, 0]), [chipco.anchor()], NOW));
  });

  it('fail-wrong content type: openssl -econtent_type, and a CMS that is not SignedData', () => {
    const f = join(dir, 'm2.json');
    writeFileSync(f, encodeManifest(sample()));
    const typed = openssl(['cms', '-sign', '-nodetach', '-binary', '-econtent_type', '1.2.840.113549.1.9.16.1.4', '-in', f, '-signer', chipco.certPem, '-inkey', chipco.keyPem, '-certfile', chipco.chainPem, '-outform', 'DER']);
    refusedWith('wrong_content_type', () => verifyManifest(typed, [chipco.anchor()], NOW));
    const data = openssl(['cms', '-data_create', '-binary', '-in', f, '-outform', 'DER']);
    refusedWith('malformed', () => verifyManifest(data, [chipco.anchor()], NOW), /not signedData/);
  });

  it('fail-detached signature (no content inside)', async () => {
    const id = chipco.identity();
    const det = await signDetached({ signer: id.signer, certificate: id.certificate, chain: id.chain, digestAlgorithm: 'sha256', digest: new Uint8Array(32), signingTime: NOW });
    refusedWith('malformed', () => verifyManifest(det, [chipco.anchor()], NOW), /no content/);
  });

  it('fail-signed content that is not a manifest document', async () => {
    const cms = await signRaw(jsonBytes({ hello: 'world' }));
    refusedWith('bad_content', () => verifyManifest(cms, [chipco.anchor()], NOW));
  });

  it('fail-untrusted signer: another supplier, or no supplier at all', async () => {
    const cms = await signManifest(chipco.identity(), encodeManifest(sample()), NOW);
    refusedWith('untrusted_supplier', () => verifyManifest(cms, [other.anchor()], NOW));
    refusedWith('untrusted_supplier', () => verifyManifest(cms, [], NOW));
  });

  it('fail-signed under another supplier\'s CA than the one it names', async () => {
    const cms = await signManifest(other.identity(), encodeManifest(sample()), NOW);
    refusedWith('wrong_supplier', () => verifyManifest(cms, [chipco.anchor(), other.anchor()], NOW), /Other Co/);
  });

  it('fail-the supplier CA is not valid at import time', async () => {
    const cms = await signManifest(chipco.identity(), encodeManifest(sample()), NOW);
    refusedWith('untrusted_supplier', () => verifyManifest(cms, [chipco.anchor()], new Date(NOW.getTime() + 20 * 365 * 86_400_000)));
  });

  it('fail-a certificate that is not on the signer\'s path', () => {
    const f = join(dir, 'm3.json');
    writeFileSync(f, encodeManifest(sample()));
    const extra = join(dir, 'extra.pem');
    writeFileSync(extra, `${readText(chipco.chainPem)}${readText(other.caPem)}`);
    const cms = openssl(['cms', '-sign', '-nodetach', '-binary', '-in', f, '-signer', chipco.certPem, '-inkey', chipco.keyPem, '-certfile', extra, '-outform', 'DER']);
    refusedWith('malformed', () => verifyManifest(cms, [chipco.anchor()], NOW), /not on the signer's path/);
  });

  it('fail-any one byte changed: at every position outside the certificates, every 10th inside', async () => {
    const cms = await signManifest(chipco.identity(), encodeManifest(sample()), NOW);
    const anchors = [chipco.anchor()];
    verifyManifest(cms, anchors, NOW);
    // The certificates are covered by their issuers' signatures; everything else is swept byte by byte.
    const sd = der.readChildren(cms, der.readChildren(cms, der.readChildren(cms, der.readTlv(cms, 0))[1])[0]);
    const certs = sd.find((t) => t.tag === 0xa0)!;
    const passed: number[] = [];
    let tried = 0;
    for (let i = 0; i < cms.length; i++) {
      if (i >= certs.start && i < certs.end && i % 10 !== 0) continue;
      tried++;
      const bad = cms.slice();
      bad[i] ^= 0x01;
      try {
        verifyManifest(bad, anchors, NOW);
        passed.push(i);
      } catch (e) {
        assert.ok(manifestRefusalOf(e), `byte ${i}: ${String(e)}`);
      }
    }
    assert.deepEqual(passed, [], 'every changed byte is refused');
    assert.ok(tried > 500, `${tried} positions tried`);
  });
});

function readText(p: string): string {
  return execFileSync('cat', [p], { encoding: 'utf8' });
}
