import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import * as der from '../../src/asn1/der.js';
import { isProblem } from '../../src/errors.js';
import { attributeName, decodeName, encodeName, formatDn, nameAttributes, parseDn, type DnAttribute } from '../../src/x509/names.js';
import { derFromPemOrDer } from '../../src/x509/pem.js';

const A = (type: string, value: string): DnAttribute => ({ type, value });

/** [tag, value] of each attribute value in an encoded Name, in order. */
function valueTags(nameDer: Uint8Array): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const rdn of der.readChildren(nameDer, der.readTlv(nameDer))) {
    for (const atv of der.readChildren(nameDer, rdn)) {
      const [, value] = der.readChildren(nameDer, atv);
      out.push([value.tag, Buffer.from(der.content(nameDer, value)).toString('utf8')]);
    }
  }
  return out;
}

describe('parseDn', () => {
  const ok: Array<{ name: string; in: string; want: DnAttribute[] }> = [
    { name: 'ok-comma-form', in: 'O=Acme Devices, CN=sensor-1', want: [A('O', 'Acme Devices'), A('CN', 'sensor-1')] },
    { name: 'ok-slash-form', in: '/O=Acme Devices/CN=sensor-1', want: [A('O', 'Acme Devices'), A('CN', 'sensor-1')] },
    { name: 'ok-empty', in: '', want: [] },
    { name: 'ok-slash-only', in: '/', want: [] },
    { name: 'ok-whitespace-trimmed', in: '  C = DE ,  CN =  x  ', want: [A('C', 'DE'), A('CN', 'x')] },
    { name: 'ok-aliases', in: 'commonName=a, e=b@c, EMAIL=d@e, uid=u1, dc=example, serialnumber=42', want: [A('CN', 'a'), A('emailAddress', 'b@c'), A('emailAddress', 'd@e'), A('UID', 'u1'), A('DC', 'example'), A('serialNumber', '42')] },
    { name: 'ok-oid-known', in: '2.5.4.3=by-oid, 2.5.4.10=Org', want: [A('CN', 'by-oid'), A('O', 'Org')] },
    { name: 'ok-oid-unknown-kept-dotted', in: '2.5.4.97=VATDE-123, CN=x', want: [A('2.5.4.97', 'VATDE-123'), A('CN', 'x')] },
    { name: 'ok-escaped-comma', in: 'O=Acme\\, Inc., CN=x', want: [A('O', 'Acme, Inc.'), A('CN', 'x')] },
    { name: 'ok-slash-form-keeps-commas', in: '/O=Acme, Inc./CN=x', want: [A('O', 'Acme, Inc.'), A('CN', 'x')] },
    { name: 'ok-slash-form-escaped-slash', in: '/CN=a\\/b/O=o', want: [A('CN', 'a/b'), A('O', 'o')] },
    { name: 'ok-value-with-equals', in: 'CN=a=b', want: [A('CN', 'a=b')] },
    { name: 'ok-ub-exact', in: `CN=${'x'.repeat(64)}`, want: [A('CN', 'x'.repeat(64))] },
  ];
  for (const c of ok) it(c.name, () => assert.deepEqual(parseDn(c.in), c.want));

  const bad: Array<{ name: string; in: string; why: RegExp }> = [
    { name: 'fail-no-equals', in: 'CN', why: /expected TYPE=value/ },
    { name: 'fail-empty-type', in: '=x', why: /expected TYPE=value/ },
    { name: 'fail-empty-value', in: 'CN=', why: /empty value/ },
    { name: 'fail-empty-component', in: 'CN=x,,O=y', why: /expected TYPE=value/ },
    { name: 'fail-unknown-type', in: 'XYZ=1', why: /unknown name attribute/ },
    { name: 'fail-country-three-letters', in: 'C=DEU', why: /longer than 2|two-letter/ },
    { name: 'fail-country-lowercase', in: 'C=de', why: /two-letter/ },
    { name: 'fail-cn-over-64', in: `CN=${'x'.repeat(65)}`, why: /longer than 64/ },
    { name: 'fail-o-over-64', in: `/O=${'o'.repeat(65)}`, why: /longer than 64/ },
  ];
  for (const c of bad) {
    it(c.name, () => assert.throws(() => parseDn(c.in), (e: unknown) => isProblem(e, 'bad_request') && c.why.test(e.detail)));
  }
});

describe('attributeName', () => {
  it('ok-canonical-names', () => {
    assert.equal(attributeName('cn'), 'CN');
    assert.equal(attributeName('SERIALNUMBER'), 'serialNumber');
    assert.equal(attributeName('0.9.2342.19200300.100.1.25'), 'DC');
    assert.equal(attributeName('1.2.840.113549.1.9.1'), 'emailAddress');
  });
  it('fail-unknown', () => assert.throws(() => attributeName('nope'), (e: unknown) => isProblem(e, 'bad_request')));
});

describe('formatDn', () => {
  it('ok-plain', () => assert.equal(formatDn([A('O', 'Acme'), A('CN', 'x')]), 'O=Acme, CN=x'));
  it('ok-empty', () => assert.equal(formatDn([]), ''));
  const tricky = ['Acme, Inc.', 'a+b', 'x=y', 'back\\slash', 'quote"d', '<tag>;', 'a/b', 'plain'];
  for (const v of tricky) {
    it(`ok-roundtrip ${JSON.stringify(v)}`, () => {
      const attrs = [A('O', v), A('CN', 'dev')];
      assert.deepEqual(parseDn(formatDn(attrs)), attrs);
    });
  }
});

describe('encodeName / decodeName', () => {
  const PRINTABLE = 0x13;
  const UTF8 = 0x0c;
  const IA5 = 0x16;
  const cases: Array<{ name: string; attrs: DnAttribute[]; tags: number[] }> = [
    { name: 'ok-printable', attrs: [A('C', 'DE'), A('O', "Acme (Test) Ltd. +1-2/3:4=5?'"), A('CN', 'sensor-1')], tags: [PRINTABLE, PRINTABLE, PRINTABLE] },
    { name: 'ok-utf8-for-non-printable', attrs: [A('O', 'Müller GmbH'), A('CN', 'a@b'), A('OU', 'a&b'), A('L', 'a_b')], tags: [UTF8, UTF8, UTF8, UTF8] },
    { name: 'ok-ia5-email-and-dc', attrs: [A('DC', 'example'), A('emailAddress', 'ops@example.com')], tags: [IA5, IA5] },
    { name: 'ok-serialNumber-printable', attrs: [A('serialNumber', 'SN 0042'), A('CN', 'x')], tags: [PRINTABLE, PRINTABLE] },
    { name: 'ok-unknown-oid', attrs: [A('2.5.4.97', 'VATDE-123')], tags: [PRINTABLE] },
    { name: 'ok-empty', attrs: [], tags: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const enc = encodeName(c.attrs);
      assert.deepEqual(
        valueTags(enc).map(([t]) => t),
        c.tags,
      );
      assert.deepEqual(decodeName(enc), c.attrs);
    });
  }

  const bad: Array<{ name: string; attrs: DnAttribute[]; why: RegExp }> = [
    { name: 'fail-email-non-ascii', attrs: [A('emailAddress', 'jürgen@example.com')], why: /must be ASCII/ },
    { name: 'fail-dc-non-ascii', attrs: [A('DC', 'bücher')], why: /must be ASCII/ },
    { name: 'fail-serialNumber-not-printable', attrs: [A('serialNumber', 'SN@1')], why: /PrintableString/ },
    { name: 'fail-country-not-printable', attrs: [A('C', 'Ü')], why: /PrintableString/ },
  ];
  for (const c of bad) {
    it(c.name, () => assert.throws(() => encodeName(c.attrs), (e: unknown) => isProblem(e, 'bad_request') && c.why.test(e.detail)));
  }

  it('fail-decode-garbage', () => {
    assert.throws(() => decodeName(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00)), (e: unknown) => isProblem(e, 'bad_request'));
    assert.throws(() => decodeName(Uint8Array.of(0xde, 0xad)), (e: unknown) => isProblem(e, 'bad_request'));
  });

  it('ok-multi-valued-rdn-flattened-in-order', () => {
    const rdn = new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: 'dev' }) }),
      new AttributeTypeAndValue({ type: '2.5.4.5', value: new AttributeValue({ printableString: '42' }) }),
    ]);
    const name = new Name([new RelativeDistinguishedName([new AttributeTypeAndValue({ type: '2.5.4.10', value: new AttributeValue({ printableString: 'Acme' }) })]), rdn]);
    assert.deepEqual(nameAttributes(name), [A('O', 'Acme'), A('CN', 'dev'), A('serialNumber', '42')]);
  });

  it('ok-same-bytes-as-openssl-req-with-string_mask-default', () => {
    // With string_mask=default OpenSSL picks PrintableString where it fits and
    // IA5String for emailAddress/DC: the encoding RFC 5280 prefers and fleetpki writes.
    const dir = mkdtempSync(join(tmpdir(), 'names-'));
    try {
      const cnf = join(dir, 'req.cnf');
      writeFileSync(cnf, '[req]\ndistinguished_name=dn\nstring_mask=default\n[dn]\n');
      const subj = '/C=DE/ST=Bayern/L=Munich/O=Acme Devices/OU=Line 1/DC=example/CN=sensor-1/emailAddress=ops@example.com';
      execFileSync('/usr/bin/openssl', ['req', '-new', '-config', cnf, '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-subj', subj, '-out', join(dir, 'r.csr')], { stdio: 'pipe' });
      const csr = derFromPemOrDer(readFileSync(join(dir, 'r.csr'), 'utf8'), ['CERTIFICATE REQUEST']);
      const [info] = der.readChildren(csr, der.readTlv(csr));
      const [, subjectTlv] = der.readChildren(csr, info);
      const opensslSubject = Buffer.from(der.slice(csr, subjectTlv)).toString('hex');
      assert.equal(Buffer.from(encodeName(parseDn(subj))).toString('hex'), opensslSubject);
      assert.equal(formatDn(decodeName(der.slice(csr, subjectTlv))), 'C=DE, ST=Bayern, L=Munich, O=Acme Devices, OU=Line 1, DC=example, CN=sensor-1, emailAddress=ops@example.com');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
