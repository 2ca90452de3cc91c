import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as der from '../../src/asn1/der.js';
import { newSerial, normaliseSerial, SERIAL_RANDOM_OCTETS } from '../../src/authority/serial.js';
import { serialHex } from '../../src/x509/cert_info.js';

describe('newSerial', () => {
  const N = 5000;
  const serials = Array.from({ length: N }, () => newSerial());

  it('ok-17-octets-positive-no-leading-zero', () => {
    for (const s of serials) {
      assert.equal(s.length, 17);
      assert.ok(s[0] >= 0x40 && s[0] <= 0x7f, `first octet ${s[0].toString(16)}`);
      // Encoded as a DER INTEGER it keeps all 17 octets: no pad, nothing stripped.
      const enc = der.integer(s);
      const t = der.readTlv(enc);
      assert.equal(t.end - t.contentStart, 17);
      assert.deepEqual(der.content(enc, t), s);
    }
  });

  it('ok-unique', () => {
    assert.equal(new Set(serials.map(serialHex)).size, N);
  });

  it('ok-every-random-bit-varies: 96 bits from the CSPRNG (CA/B BR §7.1 asks for 64)', () => {
    const seen = Array.from({ length: SERIAL_RANDOM_OCTETS * 8 }, () => new Set<number>());
    for (const s of serials) for (let i = 0; i < seen.length; i++) seen[i].add((s[5 + (i >> 3)] >> (7 - (i & 7))) & 1);
    for (let i = 0; i < seen.length; i++) assert.equal(seen[i].size, 2, `random bit ${i} never changes`);
  });

  it('ok-0x40 then the issuance second: serials ascend in time, in hex order too', () => {
    const t = Date.UTC(2026, 11, 2, 14, 0, 0);
    const a = newSerial(t);
    const b = newSerial(t + 1000);
    assert.equal(a[0], 0x40);
    assert.equal(new DataView(a.buffer).getUint32(1), t / 1000);
    assert.ok(serialHex(a) < serialHex(b));
    for (const s of serials) assert.ok(Math.abs(new DataView(s.buffer).getUint32(1) - Date.now() / 1000) < 120);
  });

  it('ok-normalised-form-is-fixed-point', () => {
    for (const s of serials.slice(0, 200)) assert.equal(normaliseSerial(serialHex(s)), serialHex(s));
  });
});

describe('normaliseSerial', () => {
  const cases: Array<{ name: string; in: string; want: string }> = [
    { name: 'ok-lowercase', in: '7f01', want: '7f01' },
    { name: 'ok-uppercase', in: '7F0A', want: '7f0a' },
    { name: 'ok-0x-prefix', in: '0x7F0A', want: '7f0a' },
    { name: 'ok-colons-openssl-style', in: '7F:0A:11', want: '7f0a11' },
    { name: 'ok-whitespace', in: '  7f0a\n', want: '7f0a' },
    { name: 'ok-odd-length-padded', in: 'abc', want: '0abc' },
    { name: 'ok-single-digit', in: '5', want: '05' },
    { name: 'ok-zero', in: '0', want: '00' },
    { name: 'ok-zeros', in: '0000', want: '00' },
    { name: 'ok-redundant-leading-zero-stripped', in: '0001', want: '01' },
    { name: 'ok-many-redundant-zeros', in: '0000007f', want: '7f' },
    { name: 'ok-needed-zero-kept', in: '00ff', want: '00ff' },
    { name: 'ok-needed-zero-kept-after-strip', in: '000080', want: '0080' },
    // openssl x509 -serial prints the value ("80FF"); the store holds the DER content octets ("0080ff").
    { name: 'ok-high-bit-value-gets-its-sign-octet', in: '80FF', want: '0080ff' },
    { name: 'ok-40-hex-digits', in: '7'.repeat(40), want: '7'.repeat(40) },
    { name: 'fail-empty', in: '', want: '' },
    { name: 'fail-not-hex', in: 'xyz', want: '' },
    { name: 'fail-41-hex-digits', in: '7'.repeat(41), want: '' },
    { name: 'fail-negative', in: '-7f', want: '' },
    { name: 'fail-inner-space', in: '7f 0a', want: '' },
    { name: 'fail-only-prefix', in: '0x', want: '' },
  ];
  for (const c of cases) it(c.name, () => assert.equal(normaliseSerial(c.in), c.want));

  it('ok-matches-the-der-integer-content', () => {
    // The normalised form is exactly the hex of the DER INTEGER content octets, as stored.
    for (const v of [1n, 127n, 128n, 255n, 256n, 2n ** 63n, 2n ** 159n - 1n, 0xdeadbeefn]) {
      const enc = der.integer(v);
      const content = serialHex(der.content(enc, der.readTlv(enc)));
      assert.equal(normaliseSerial(v.toString(16)), content, `${v}`);
    }
  });
});
