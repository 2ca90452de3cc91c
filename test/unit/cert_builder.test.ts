/**
 * Validity encoding (src/x509/cert_builder.ts, RFC 5280 §4.1.2.5): UTCTime for
 * dates through 2049, GeneralizedTime from 2050, Zulu and whole seconds. The
 * encoder alone at the boundaries, then a certificate issued across 2050,
 * read back with @peculiar/asn1-x509 and with the openssl CLI.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { FakeClock } from '../../src/clock.js';
import * as der from '../../src/asn1/der.js';
import { encodeTime } from '../../src/x509/cert_builder.js';
import { makeCsr, makeTestCa, run, type TestCa } from '../helpers/ca_fixture.js';
import { tempDir } from '../helpers/data_dir.js';

describe('encodeTime', () => {
  const cases: Array<[string, string, number, string]> = [
    ['ok-first UTCTime year', '1950-01-01T00:00:00Z', der.TAG.UTCTime, '500101000000Z'],
    ['ok-last UTCTime second', '2049-12-31T23:59:59Z', der.TAG.UTCTime, '491231235959Z'],
    ['ok-first GeneralizedTime second', '2050-01-01T00:00:00Z', der.TAG.GeneralizedTime, '20500101000000Z'],
    ['ok-before 1950 is GeneralizedTime too', '1949-12-31T23:59:59Z', der.TAG.GeneralizedTime, '19491231235959Z'],
    ['ok-no well-defined expiration (§4.1.2.5)', '9999-12-31T23:59:59Z', der.TAG.GeneralizedTime, '99991231235959Z'],
    ['ok-milliseconds are dropped, never a fraction', '2051-06-30T12:34:56.789Z', der.TAG.GeneralizedTime, '20510630123456Z'],
  ];
  for (const [name, iso, tag, text] of cases) {
    it(`${name}: ${iso}`, () => {
      const t = encodeTime(new Date(iso));
      assert.equal(t[0], tag);
      assert.equal(t[1], text.length);
      assert.equal(Buffer.from(t.subarray(2)).toString('ascii'), text);
    });
  }
});

describe('a certificate valid into 2050', () => {
  // Issued in mid-2049 for a year: notBefore is UTCTime, notAfter GeneralizedTime.
  const clock = new FakeClock('2049-06-01T00:00:00Z');
  let ca: TestCa;
  let work: string;
  let certDer: Uint8Array;
  const file = (n: string) => join(work, n);

  before(async () => {
    ca = await makeTestCa({ clock });
    work = tempDir('fleetpki-2050-');
    const r = await ca.authority.issue({ csr: makeCsr({ alg: 'ecdsa-p256', subject: '/CN=dev-2050' }).csrPem, profile: 'device-tls', actor: 'test' });
    certDer = r.der;
    writeFileSync(file('leaf.pem'), r.pem);
    writeFileSync(file('root.pem'), ca.rootPem);
    writeFileSync(file('issuing.pem'), ca.issuingPem);
  });
  after(async () => {
    await ca.cleanup();
    run('rm', ['-rf', work]);
  });

  it('ok-parsed DER: notBefore UTCTime, notAfter GeneralizedTime, the instants exact', () => {
    const v = AsnConvert.parse(certDer, Certificate).tbsCertificate.validity;
    assert.ok(v.notBefore.utcTime && !v.notBefore.generalTime, 'notBefore in 2049 is UTCTime');
    assert.ok(v.notAfter.generalTime && !v.notAfter.utcTime, 'notAfter in 2050 is GeneralizedTime');
    assert.equal(v.notBefore.getTime().toISOString(), '2049-05-31T23:55:00.000Z', 'backdated 300 s');
    assert.equal(v.notAfter.getTime().toISOString(), '2050-06-01T00:00:00.000Z');
  });

  it('ok-the CA certificates issued in 2049 for 5 and 10 years are GeneralizedTime too', () => {
    for (const pem of [ca.rootPem, ca.issuingPem]) {
      const asn1 = run('openssl', ['asn1parse'], pem).out;
      assert.match(asn1, /prim: UTCTIME\s+:490531235500Z/);
      assert.match(asn1, /prim: GENERALIZEDTIME\s+:20(54|59)05\d{8}Z/);
    }
  });

  it('ok-openssl reads the same: asn1parse shows both types, x509 the dates', () => {
    const asn1 = run('openssl', ['asn1parse', '-in', file('leaf.pem')]);
    assert.equal(asn1.status, 0, asn1.out);
    assert.match(asn1.out, /prim: UTCTIME\s+:490531235500Z/);
    assert.match(asn1.out, /prim: GENERALIZEDTIME\s+:20500601000000Z/);
    const dates = run('openssl', ['x509', '-in', file('leaf.pem'), '-noout', '-startdate', '-enddate']).out;
    assert.match(dates, /notBefore=May 31 23:55:00 2049 GMT/);
    assert.match(dates, /notAfter=Jun {2}1 00:00:00 2050 GMT/);
  });

  // openssl verify -attime proves it takes the GeneralizedTime as the instant
  // it names: valid in 2050 up to notAfter, expired a second after it.
  const at: Array<[string, string, RegExp]> = [
    ['ok-valid in March 2050', '2050-03-01T00:00:00Z', /: OK/],
    // (OpenSSL counts notAfter itself as expired, X509_cmp_time; RFC 5280 includes it.)
    ['ok-valid a second before notAfter', '2050-05-31T23:59:59Z', /: OK/],
    ['fail-expired one second later', '2050-06-01T00:00:01Z', /certificate has expired/],
  ];
  for (const [name, iso, re] of at) {
    it(`${name}: openssl verify -attime`, () => {
      const r = run('openssl', ['verify', '-x509_strict', '-attime', String(Date.parse(iso) / 1000), '-CAfile', file('root.pem'), '-untrusted', file('issuing.pem'), file('leaf.pem')]);
      assert.match(r.out, re);
    });
  }
});
