/** PKCS#11 URIs (RFC 7512): parsing, formatting, and what is refused. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { formatPkcs11Uri, parsePkcs11Uri } from '../../src/keys/pkcs11_uri.js';

describe('PKCS#11 URI', () => {
  const ok: Array<[string, string, object]> = [
    ['ok-token-object-id-type', 'pkcs11:token=fleet-ca;object=root-ca;id=%01%a2;type=private', { token: 'fleet-ca', object: 'root-ca', id: Uint8Array.of(1, 0xa2), type: 'private' }],
    ['ok-rfc7512-example', 'pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91', { token: 'The Software PKCS#11 Softtoken', object: 'my-certificate', type: 'cert', id: Uint8Array.from([0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91]) }],
    ['ok-id-as-plain-text', 'pkcs11:id=ab', { id: Uint8Array.from(Buffer.from('ab')) }],
    ['ok-empty-path', 'pkcs11:', {}],
  ];
  for (const [name, uri, want] of ok) {
    it(name, () => assert.deepEqual(parsePkcs11Uri(uri), want));
  }

  const fail: Array<[string, string, RegExp]> = [
    ['fail-not-a-uri', 'soft:root', /not a PKCS#11 URI/],
    ['fail-pin-value', 'pkcs11:token=a;object=b?pin-value=1234', /PIN may not be part of the URI/],
    ['fail-pin-source', 'pkcs11:token=a?module-path=/x&pin-source=file:/p', /PIN may not/],
    ['fail-bad-percent', 'pkcs11:object=%zz', /percent-encoding/],
    ['fail-unknown-attribute', 'pkcs11:colour=blue', /unknown path attribute "colour"/],
    ['fail-unknown-type', 'pkcs11:type=banana', /unknown type/],
    ['fail-no-equals', 'pkcs11:token', /not attribute=value/],
  ];
  for (const [name, uri, detail] of fail) {
    it(name, () => assert.throws(() => parsePkcs11Uri(uri), (e) => isProblem(e, 'bad_request') && detail.test(e.detail)));
  }

  it('format and parse round-trip; the id is always percent-encoded, unreserved characters stay readable', () => {
    const u = { token: 'Fleet CA #1', object: 'root-ca_1.x~', id: Uint8Array.of(0, 255, 65), type: 'private' as const };
    const s = formatPkcs11Uri(u);
    assert.equal(s, 'pkcs11:token=Fleet%20CA%20%231;object=root-ca_1.x~;id=%00%ff%41;type=private');
    assert.deepEqual(parsePkcs11Uri(s), u);
  });
});
