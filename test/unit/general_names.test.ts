import 'reflect-metadata';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, Name, OtherName } from '@peculiar/asn1-x509';
import { isProblem } from '../../src/errors.js';
import { formatSan, fromGeneralName, normaliseSan, parseSan, toGeneralName, type San } from '../../src/x509/general_names.js';

const hexOf = (g: GeneralName) => Buffer.from(AsnConvert.serialize(g)).toString('hex');
const ascii = (s: string) => Buffer.from(s, 'ascii').toString('hex');

describe('parseSan', () => {
  const ok: Array<{ name: string; in: string; want: San }> = [
    { name: 'ok-dns', in: 'dns:a.example', want: { type: 'dns', value: 'a.example' } },
    { name: 'ok-dns-type-case-insensitive-value-lowercased', in: 'DNS:Sensor-1.Example.COM', want: { type: 'dns', value: 'sensor-1.example.com' } },
    { name: 'ok-dns-single-label', in: 'dns:localhost', want: { type: 'dns', value: 'localhost' } },
    { name: 'ok-dns-wildcard-leftmost', in: 'dns:*.example.com', want: { type: 'dns', value: '*.example.com' } },
    { name: 'ok-dns-63-char-label', in: `dns:${'a'.repeat(63)}.example`, want: { type: 'dns', value: `${'a'.repeat(63)}.example` } },
    { name: 'ok-ipv4', in: 'ip:10.0.0.1', want: { type: 'ip', value: '10.0.0.1' } },
    { name: 'ok-ipv6', in: 'ip:2001:db8::1', want: { type: 'ip', value: '2001:db8::1' } },
    { name: 'ok-ipv6-uppercase', in: 'IP:2001:DB8::A', want: { type: 'ip', value: '2001:db8::a' } },
    { name: 'ok-uri-urn', in: 'uri:urn:example:device:1', want: { type: 'uri', value: 'urn:example:device:1' } },
    { name: 'ok-uri-https', in: 'uri:https://a.example/x?y=1', want: { type: 'uri', value: 'https://a.example/x?y=1' } },
    { name: 'ok-uri-opc', in: 'URI:opc.tcp://plc-1:4840', want: { type: 'uri', value: 'opc.tcp://plc-1:4840' } },
    { name: 'ok-email', in: 'email:ops@example.com', want: { type: 'email', value: 'ops@example.com' } },
  ];
  for (const c of ok) {
    it(c.name, () => {
      const s = parseSan(c.in);
      assert.deepEqual(s, c.want);
      assert.equal(formatSan(s), `${c.want.type}:${c.want.value}`);
    });
  }

  const bad: Array<{ name: string; in: string; why: RegExp }> = [
    { name: 'fail-no-type', in: 'a.example', why: /expected dns:/ },
    { name: 'fail-empty-type', in: ':a.example', why: /expected dns:/ },
    { name: 'fail-unknown-type', in: 'rid:1.2.3', why: /unknown SAN type/ },
    { name: 'fail-dns-empty', in: 'dns:', why: /not a valid DNS name/ },
    { name: 'fail-dns-trailing-dot', in: 'dns:a.example.', why: /not a valid DNS name/ },
    { name: 'fail-dns-underscore', in: 'dns:under_score.example', why: /not a valid DNS name/ },
    { name: 'fail-dns-space', in: 'dns:a b.example', why: /not a valid DNS name/ },
    { name: 'fail-dns-double-wildcard', in: 'dns:*.*.example', why: /not a valid DNS name/ },
    { name: 'fail-dns-partial-wildcard', in: 'dns:a*.example', why: /not a valid DNS name/ },
    { name: 'fail-dns-label-64', in: `dns:${'a'.repeat(64)}.example`, why: /not a valid DNS name/ },
    { name: 'fail-dns-leading-hyphen', in: 'dns:-a.example', why: /not a valid DNS name/ },
    { name: 'fail-dns-too-long', in: `dns:${Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.')}`, why: /not a valid DNS name/ },
    { name: 'fail-dns-unicode', in: 'dns:bücher.example', why: /not a valid DNS name/ },
    { name: 'fail-ip-garbage', in: 'ip:10.0.0', why: /not an IPv4 or IPv6/ },
    { name: 'fail-ip-leading-zero-octet', in: 'ip:10.000.0.1', why: /not an IPv4 or IPv6/ },
    { name: 'fail-ip-with-prefix', in: 'ip:10.0.0.0/8', why: /not an IPv4 or IPv6/ },
    { name: 'fail-uri-relative', in: 'uri:/just/a/path', why: /not an absolute URI/ },
    { name: 'fail-uri-space', in: 'uri:https://a.example/x y', why: /not an absolute URI/ },
    { name: 'fail-uri-non-ascii', in: 'uri:https://bücher.example/', why: /not an absolute URI/ },
    { name: 'fail-email-no-at', in: 'email:ops.example.com', why: /not an ASCII mailbox/ },
    { name: 'fail-email-empty-local', in: 'email:@example.com', why: /not an ASCII mailbox/ },
    { name: 'fail-email-non-ascii', in: 'email:jürgen@example.com', why: /not an ASCII mailbox/ },
  ];
  for (const c of bad) {
    it(c.name, () => assert.throws(() => parseSan(c.in), (e: unknown) => isProblem(e, 'bad_request') && c.why.test(e.detail)));
  }

  it('fail-normaliseSan-unknown-type', () => {
    assert.throws(() => normaliseSan({ type: 'x400' as San['type'], value: 'x' }), (e: unknown) => isProblem(e, 'bad_request'));
  });
});

describe('toGeneralName / fromGeneralName', () => {
  // GeneralName CHOICE, IMPLICIT tags (RFC 5280 §4.2.1.6): rfc822Name [1], dNSName [2], URI [6], iPAddress [7].
  const cases: Array<{ name: string; san: string; hex: string }> = [
    { name: 'ok-dns', san: 'dns:a.example', hex: `8209${ascii('a.example')}` },
    { name: 'ok-email', san: 'email:ops@example.com', hex: `810f${ascii('ops@example.com')}` },
    { name: 'ok-uri', san: 'uri:urn:x:1', hex: `8607${ascii('urn:x:1')}` },
    { name: 'ok-ipv4', san: 'ip:10.0.0.1', hex: '87040a000001' },
    { name: 'ok-ipv6', san: 'ip:2001:db8::1', hex: '871020010db8000000000000000000000001' },
    { name: 'ok-ipv6-loopback', san: 'ip:::1', hex: '871000000000000000000000000000000001' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const s = parseSan(c.san);
      const g = toGeneralName(s);
      assert.equal(hexOf(g), c.hex);
      assert.deepEqual(fromGeneralName(AsnConvert.parse(AsnConvert.serialize(g), GeneralName)), s);
    });
  }

  // What parseSan accepts and normalises is what the certificate will say:
  // encoding the SAN and reading it back must give the same text. A value that
  // changes on the way (a dropped zone id, a mangled embedded IPv4 address, a
  // non-canonical spelling) certifies something other than what was checked
  // against the profile, the name constraints and the store.
  const roundTrip = [
    'ip:2001:0db8:0000:0000:0000:0000:0000:0001',
    'ip:::ffff:192.0.2.1',
    'ip:64:ff9b::192.0.2.33',
    'ip:fe80::1%eth0',
  ];
  for (const text of roundTrip) {
    it(`ok-accepted-ip-encodes-to-what-was-checked ${text}`, () => {
      let s: San;
      try {
        s = parseSan(text);
      } catch (e) {
        // Refusing the spelling is a correct answer too.
        assert.ok(isProblem(e, 'bad_request'), String(e));
        return;
      }
      const back = fromGeneralName(AsnConvert.parse(AsnConvert.serialize(toGeneralName(s)), GeneralName));
      assert.deepEqual(back, s, `${text} was accepted as ${formatSan(s)} but the certificate would say ${back.type}:${back.value}`);
    });
  }

  it('ok-unsupported-kinds-come-back-as-other', () => {
    assert.deepEqual(fromGeneralName(new GeneralName({ otherName: new OtherName({ typeId: '1.3.6.1.4.1.311.20.2.3', value: new Uint8Array([0x0c, 0x01, 0x61]).buffer }) })), {
      type: 'other',
      value: 'otherName:1.3.6.1.4.1.311.20.2.3',
    });
    assert.deepEqual(fromGeneralName(new GeneralName({ directoryName: new Name([]) })), { type: 'other', value: 'directoryName' });
    assert.deepEqual(fromGeneralName(new GeneralName({ registeredID: '1.2.3.4' })), { type: 'other', value: 'registeredID:1.2.3.4' });
  });
});
