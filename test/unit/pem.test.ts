import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isProblem } from '../../src/errors.js';
import { derFromPemOrDer, pemDecodeAll, pemEncode } from '../../src/x509/pem.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/csr/', import.meta.url));
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('pemEncode', () => {
  const sizes = [0, 1, 47, 48, 49, 96, 1000];
  for (const n of sizes) {
    it(`ok-${n}-bytes-64-columns-and-back`, () => {
      const der = bytes(n);
      const pem = pemEncode('TEST DATA', der);
      const lines = pem.split('\n');
      assert.equal(lines[0], '-----BEGIN TEST DATA-----');
      assert.equal(lines.at(-2), '-----END TEST DATA-----');
      assert.equal(lines.at(-1), '', 'ends with a newline');
      for (const l of lines.slice(1, -2)) assert.ok(l.length <= 64, `line of ${l.length} columns`);
      assert.ok(lines.slice(1, -3).every((l) => l.length === 64), 'all lines but the last are full');
      assert.deepEqual(pemDecodeAll(pem), [{ label: 'TEST DATA', der }]);
    });
  }

  it('ok-byte-identical-to-openssl-output', () => {
    // OpenSSL writes RFC 7468 "strict" PEM; re-encoding its DER must reproduce the file.
    for (const f of readdirSync(FIXTURES).filter((n) => n.endsWith('.csr'))) {
      const text = readFileSync(join(FIXTURES, f), 'utf8');
      const [block] = pemDecodeAll(text);
      assert.equal(pemEncode('CERTIFICATE REQUEST', block.der), text, f);
    }
  });
});

describe('pemDecodeAll', () => {
  it('ok-several-blocks-in-order-with-text-between', () => {
    const text = `junk before\n${pemEncode('CERTIFICATE', bytes(10, 1))}comment\n${pemEncode('X509 CRL', bytes(70, 2))}${pemEncode('CERTIFICATE', bytes(3, 3))}trailer`;
    assert.deepEqual(pemDecodeAll(text), [
      { label: 'CERTIFICATE', der: bytes(10, 1) },
      { label: 'X509 CRL', der: bytes(70, 2) },
      { label: 'CERTIFICATE', der: bytes(3, 3) },
    ]);
  });

  it('ok-crlf-and-odd-wrapping', () => {
    const b64 = Buffer.from(bytes(100)).toString('base64');
    const text = `-----BEGIN CERTIFICATE-----\r\n${b64.slice(0, 10)}\r\n  ${b64.slice(10, 77)}\r\n${b64.slice(77)}\r\n-----END CERTIFICATE-----\r\n`;
    assert.deepEqual(pemDecodeAll(text), [{ label: 'CERTIFICATE', der: bytes(100) }]);
  });

  it('ok-none', () => assert.deepEqual(pemDecodeAll('no pem here'), []));

  it('ok-mismatched-end-label-is-not-a-block', () => {
    assert.deepEqual(pemDecodeAll('-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n'), []);
  });

  it('fail-invalid-base64', () => {
    assert.throws(
      () => pemDecodeAll('-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n'),
      (e: unknown) => isProblem(e, 'bad_request') && /not valid base64/.test(e.detail),
    );
    assert.throws(() => pemDecodeAll('-----BEGIN CERTIFICATE-----\nAA=A\n-----END CERTIFICATE-----\n'), (e: unknown) => isProblem(e, 'bad_request'));
  });

  it('fail-rfc1421-headers-are-not-base64', () => {
    const text = '-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n';
    assert.throws(() => pemDecodeAll(text), (e: unknown) => isProblem(e, 'bad_request'));
  });
});

describe('derFromPemOrDer', () => {
  const der = Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x05);
  const cases: Array<{ name: string; in: Uint8Array | string; labels: string[]; want: Uint8Array }> = [
    { name: 'ok-der-passthrough', in: der, labels: ['CERTIFICATE'], want: der },
    { name: 'ok-pem-string', in: pemEncode('CERTIFICATE', der), labels: ['CERTIFICATE'], want: der },
    { name: 'ok-pem-in-bytes', in: new Uint8Array(Buffer.from(pemEncode('CERTIFICATE', der))), labels: ['CERTIFICATE'], want: der },
    { name: 'ok-second-label-accepted', in: pemEncode('NEW CERTIFICATE REQUEST', der), labels: ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], want: der },
    { name: 'ok-first-matching-block-wins', in: pemEncode('PRIVATE KEY', bytes(5)) + pemEncode('CERTIFICATE', der) + pemEncode('CERTIFICATE', bytes(7)), labels: ['CERTIFICATE'], want: der },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(derFromPemOrDer(c.in, c.labels), c.want));

  it('fail-wrong-label-names-what-was-found', () => {
    assert.throws(
      () => derFromPemOrDer(pemEncode('PRIVATE KEY', der), ['CERTIFICATE']),
      (e: unknown) => isProblem(e, 'bad_request') && /expected PEM CERTIFICATE/.test(e.detail) && /found PRIVATE KEY/.test(e.detail),
    );
  });
  it('fail-wrong-label-with-caller-code', () => {
    assert.throws(() => derFromPemOrDer(pemEncode('CERTIFICATE', der), ['CERTIFICATE REQUEST'], 'bad_csr'), (e: unknown) => isProblem(e, 'bad_csr'));
  });
  it('fail-empty-and-garbage', () => {
    for (const input of ['', new Uint8Array(0), Uint8Array.of(0xde, 0xad, 0xbe, 0xef), 'hello']) {
      assert.throws(() => derFromPemOrDer(input, ['CERTIFICATE']), (e: unknown) => isProblem(e, 'bad_request') && /no PEM block found/.test(e.detail));
    }
  });
});
