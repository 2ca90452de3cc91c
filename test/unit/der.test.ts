import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as der from '../../src/asn1/der.js';
import { isProblem } from '../../src/errors.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

describe('der.integer', () => {
  const cases: Array<{ name: string; in: number | bigint | Uint8Array; want: string }> = [
    { name: 'ok-zero', in: 0, want: '020100' },
    { name: 'ok-one', in: 1, want: '020101' },
    { name: 'ok-127', in: 127, want: '02017f' },
    { name: 'ok-128-needs-pad', in: 128, want: '02020080' },
    { name: 'ok-255', in: 255, want: '020200ff' },
    { name: 'ok-256', in: 256, want: '02020100' },
    { name: 'ok-600000', in: 600_000, want: '02030927c0' },
    { name: 'ok-2^64', in: 2n ** 64n, want: '0209010000000000000000' },
    { name: 'ok-2^63-high-bit', in: 2n ** 63n, want: '0209008000000000000000' },
    { name: 'ok-bytes-plain', in: bytes('0102'), want: '02020102' },
    { name: 'ok-bytes-high-bit-padded', in: bytes('80'), want: '02020080' },
    { name: 'ok-bytes-redundant-zeros-stripped', in: bytes('00000001'), want: '020101' },
    { name: 'ok-bytes-keeps-needed-zero', in: bytes('000080'), want: '02020080' },
    { name: 'ok-bytes-all-zero', in: bytes('0000'), want: '020100' },
    { name: 'ok-bytes-empty', in: new Uint8Array(0), want: '020100' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(hex(der.integer(c.in)), c.want));
  }
  it('fail-negative', () => {
    assert.throws(() => der.integer(-1), RangeError);
    assert.throws(() => der.integer(-5n), RangeError);
  });
});

describe('der.oid', () => {
  const cases = [
    { name: 'ok-rsaEncryption-prefix', in: '1.2.840.113549', want: '06062a864886f70d' },
    { name: 'ok-subjectAltName', in: '2.5.29.17', want: '0603551d11' },
    { name: 'ok-ecdsa-with-sha256', in: '1.2.840.10045.4.3.2', want: '06082a8648ce3d040302' },
    { name: 'ok-ed25519', in: '1.3.101.112', want: '06032b6570' },
    { name: 'ok-first-arc-2-large-second', in: '2.999.3', want: '0603883703' },
    { name: 'ok-arc-beyond-2^32', in: '1.2.4294967296', want: '06062a9080808000' },
  ];
  for (const c of cases) it(c.name, () => assert.equal(hex(der.oid(c.in)), c.want));
  it('fail-single-arc', () => assert.throws(() => der.oid('1'), RangeError));
});

describe('der.tlv lengths', () => {
  const cases = [
    { name: 'ok-0', len: 0, head: '0400' },
    { name: 'ok-127-short-form', len: 127, head: '047f' },
    { name: 'ok-128-long-form-1', len: 128, head: '048180' },
    { name: 'ok-255', len: 255, head: '0481ff' },
    { name: 'ok-256-long-form-2', len: 256, head: '04820100' },
    { name: 'ok-65536-long-form-3', len: 65536, head: '0483010000' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const enc = der.octets(new Uint8Array(c.len).fill(7));
      assert.equal(hex(enc.subarray(0, c.head.length / 2)), c.head);
      assert.equal(enc.length, c.head.length / 2 + c.len);
      const t = der.readTlv(enc);
      assert.deepEqual(t, { tag: 0x04, start: 0, contentStart: c.head.length / 2, end: enc.length });
    });
  }
});

describe('der builders', () => {
  it('ok-seq-null-bitstring-ctx', () => {
    assert.equal(hex(der.seq(der.nullValue(), der.integer(5))), '30050500020105');
    assert.equal(hex(der.seq()), '3000');
    assert.equal(hex(der.bitString(bytes('abcd'))), '030300abcd');
    assert.equal(hex(der.ctx(0, true, der.integer(2))), 'a003020102');
    assert.equal(hex(der.ctx(2, false, bytes('6162'))), '82026162');
    assert.equal(hex(der.concat([bytes('01'), new Uint8Array(0), bytes('0203')])), '010203');
  });

  it('ok-openssl-asn1parse-reads-our-der', () => {
    const structure = der.seq(
      der.integer(2n ** 70n),
      der.oid('1.2.840.113549.1.1.11'),
      der.octets(new Uint8Array(300).fill(0x41)),
      der.ctx(3, true, der.seq(der.nullValue())),
      der.tlv(der.TAG.UTF8String, new Uint8Array(Buffer.from('grüße', 'utf8'))),
    );
    const dir = mkdtempSync(join(tmpdir(), 'der-'));
    try {
      writeFileSync(join(dir, 'x.der'), structure);
      // -strparse-free parse: asn1parse fails (status != 0) on any malformed TLV.
      const out = execFileSync('/usr/bin/openssl', ['asn1parse', '-inform', 'DER', '-in', join(dir, 'x.der')], { encoding: 'utf8' });
      assert.match(out, /INTEGER\s+:400000000000000000/);
      assert.match(out, /OBJECT\s+:sha256WithRSAEncryption/);
      assert.match(out, /OCTET STRING/);
      assert.match(out, /cont \[ 3 \]/);
      assert.match(out, /UTF8STRING/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('der.readTlv / readChildren / expectSingleTlv', () => {
  const bad: Array<{ name: string; in: string; why: RegExp }> = [
    { name: 'fail-empty', in: '', why: /truncated/ },
    { name: 'fail-one-byte', in: '30', why: /truncated/ },
    { name: 'fail-truncated-content', in: '300501020304', why: /truncated content/ },
    { name: 'fail-truncated-length', in: '3082 01', why: /truncated length/ },
    { name: 'fail-indefinite-length', in: '3080 0000', why: /indefinite/ },
    { name: 'fail-non-minimal-long-form-for-short', in: '3081 05 0102030405', why: /non-minimal/ },
    { name: 'fail-non-minimal-leading-zero', in: '3082 0080' + '00'.repeat(128), why: /non-minimal/ },
    { name: 'fail-length-too-large', in: '3085 0000000001 00', why: /too large/ },
    { name: 'fail-multi-byte-tag', in: '1f2001 00', why: /multi-byte/ },
  ];
  for (const c of bad) {
    it(c.name, () => {
      assert.throws(
        () => der.readTlv(bytes(c.in)),
        (e: unknown) => isProblem(e, 'bad_request') && c.why.test(e.detail),
      );
    });
  }

  it('ok-reads-at-offset', () => {
    const buf = bytes('ff 0402aabb 00');
    assert.deepEqual(der.readTlv(buf, 1), { tag: 4, start: 1, contentStart: 3, end: 5 });
    assert.equal(hex(der.content(buf, der.readTlv(buf, 1))), 'aabb');
    assert.equal(hex(der.slice(buf, der.readTlv(buf, 1))), '0402aabb');
  });

  it('ok-children', () => {
    const buf = der.seq(der.integer(1), der.seq(der.nullValue()), der.octets(bytes('01')));
    const kids = der.readChildren(buf, der.readTlv(buf));
    assert.deepEqual(
      kids.map((k) => k.tag),
      [0x02, 0x30, 0x04],
    );
    assert.equal(kids[2].end, buf.length);
    assert.deepEqual(der.readChildren(bytes('3000'), der.readTlv(bytes('3000'))), []);
  });

  it('fail-child-overruns-parent', () => {
    // Parent says 3 content octets; the child inside claims 3 of its own (5 with header).
    const buf = bytes('3003 0403 010203');
    assert.throws(() => der.readChildren(buf, der.readTlv(buf)), (e: unknown) => isProblem(e, 'bad_request') && /overruns/.test(e.detail));
  });

  it('ok-single-tlv', () => {
    const buf = der.seq(der.integer(7));
    assert.equal(der.expectSingleTlv(buf, 'thing').end, buf.length);
  });

  it('fail-trailing-bytes', () => {
    const buf = der.concat([der.seq(der.integer(7)), bytes('0000')]);
    assert.throws(() => der.expectSingleTlv(buf, 'thing'), (e: unknown) => isProblem(e, 'bad_request') && /thing: 2 bytes of trailing data/.test(e.detail));
  });
});

describe('der.encodeTree', () => {
  // The reference: the per-TLV builders above, checked against openssl asn1parse.
  const blob = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  const cases: Array<[string, der.DerPart, Uint8Array]> = [
    ['ok-a-leaf-as-is', Uint8Array.of(5, 0), Uint8Array.of(5, 0)],
    ['ok-empty-sequence', der.node(der.TAG.SEQUENCE), der.seq()],
    ['ok-nested-short', der.node(der.TAG.SEQUENCE, der.oid('1.2.3'), der.node(0xa0, der.node(der.TAG.OCTET_STRING, blob(3, 1)))), der.seq(der.oid('1.2.3'), der.ctx(0, true, der.octets(blob(3, 1))))],
    ['ok-lengths-127-128-255-256', der.node(der.TAG.SEQUENCE, der.node(4, blob(127, 2)), der.node(4, blob(128, 3)), der.node(4, blob(255, 4)), der.node(4, blob(256, 5))), der.seq(der.octets(blob(127, 2)), der.octets(blob(128, 3)), der.octets(blob(255, 4)), der.octets(blob(256, 5)))],
    ['ok-lengths-65535-65536-and-a-megabyte', der.node(der.TAG.SEQUENCE, der.node(4, blob(65535, 6)), der.node(4, blob(65536, 7)), der.node(3, Uint8Array.of(0), blob(1 << 20, 8))), der.seq(der.octets(blob(65535, 6)), der.octets(blob(65536, 7)), der.bitString(blob(1 << 20, 8)))],
  ];
  for (const [name, tree, want] of cases) it(name, () => assert.equal(hex(der.encodeTree(tree)), hex(want)));

  it('ok-a-tree-can-be-encoded-twice-and-shares-leaves', () => {
    const leaf = der.oid('2.5.4.3');
    const tree = der.node(der.TAG.SEQUENCE, leaf, der.node(der.TAG.SET, leaf));
    assert.equal(hex(der.encodeTree(tree)), hex(der.encodeTree(tree)));
    assert.equal(hex(der.encodeTree(tree)), hex(der.seq(leaf, der.tlv(der.TAG.SET, leaf))));
  });
});
