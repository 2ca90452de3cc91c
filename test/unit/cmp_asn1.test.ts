/**
 * Encoding details of the CMP and CRMF schemas (src/asn1) that a wrong
 * decorator would get wrong while still round-tripping its own output:
 * named-bit PKIFailureInfo in DER, implicit CRMF tags except on CHOICEs,
 * explicit PKIBody tags, an empty SEQUENCE OF inside the PKIBody CHOICE;
 * and the failure bits each ProblemError code maps to.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Name, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { PKIBody } from '../../src/asn1/cmp_body.js';
import { GenMsgContent } from '../../src/asn1/cmp_general.js';
import { FAILURE_BITS, PKIFailureInfo, type FailureBit } from '../../src/asn1/cmp_status.js';
import { CertTemplate, OptionalValidity } from '../../src/asn1/crmf_template.js';
import { ProblemError, type ProblemCode } from '../../src/errors.js';
import { failureBitsOf } from '../../src/protocols/cmp/failure.js';
import { encodeName } from '../../src/x509/names.js';
import { Time } from '@peculiar/asn1-x509';

const hex = (x: ArrayBuffer | Uint8Array) => Buffer.from(x instanceof Uint8Array ? x : new Uint8Array(x)).toString('hex');

describe('PKIFailureInfo (DER named bits, X.690 §11.2.2)', () => {
  const cases: [FailureBit[], string][] = [
    [['badAlg'], '03020780'],
    [['badMessageCheck'], '03020640'],
    [['badAlg', 'badMessageCheck'], '030206c0'],
    [['badPOP'], '0303060040'],
    [['incorrectData'], '03020001'],
    [['transactionIdInUse'], '030402000004'],
    [['duplicateCertReq'], '03050500000020'],
    [[], '030100'],
  ];
  for (const [names, der] of cases) {
    it(`ok [${names.join(', ')}] → ${der} and back`, () => {
      const f = PKIFailureInfo.of(names);
      assert.equal(hex(AsnConvert.serialize(f)), der);
      assert.deepEqual(AsnConvert.parse(Buffer.from(der, 'hex'), PKIFailureInfo).names(), names);
    });
  }
  it('ok every bit on its own survives the round trip', () => {
    for (const b of FAILURE_BITS) assert.deepEqual(AsnConvert.parse(AsnConvert.serialize(PKIFailureInfo.of([b])), PKIFailureInfo).names(), [b]);
  });
});

describe('CRMF tags (IMPLICIT module, explicit on CHOICE types)', () => {
  const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
  const subject = encodeName([{ type: 'CN', value: 'dev' }]);
  const t = new CertTemplate({ subject: AsnConvert.parse(subject, Name), publicKey: AsnConvert.parse(spki, SubjectPublicKeyInfo), validity: new OptionalValidity({ notAfter: new Time(new Date('2031-01-01T00:00:00Z')) }) });
  const der = Buffer.from(AsnConvert.serialize(t));

  it('ok subject [5] Name is explicit: a5 around the SEQUENCE', () => {
    assert.ok(der.includes(Buffer.concat([Buffer.of(0xa5, subject.length), subject])));
  });
  it('ok publicKey [6] SubjectPublicKeyInfo is implicit: a6 replaces its SEQUENCE tag', () => {
    assert.ok(der.includes(Buffer.concat([Buffer.of(0xa6), spki.subarray(1)])));
    assert.ok(!der.includes(Buffer.from(spki)), 'no SEQUENCE-tagged SPKI');
  });
  it('ok validity [4] implicit, notAfter [1] Time explicit (a CHOICE)', () => {
    assert.match(der.toString('hex'), /a411a10f170d3331303130313030303030305a/);
  });
});

describe('PKIBody (EXPLICIT module)', () => {
  it('ok an empty genm is [21] around an empty SEQUENCE, and parses back', () => {
    const der = AsnConvert.serialize(new PKIBody({ genm: new GenMsgContent([]) }));
    assert.equal(hex(der), 'b5023000');
    assert.equal(AsnConvert.parse(der, PKIBody).genm?.length, 0);
  });
  it('ok pkiconf is [19] around NULL', () => {
    assert.equal(hex(AsnConvert.serialize(new PKIBody({ pkiconf: null }))), 'b3020500');
  });
});

describe('ProblemError codes → PKIFailureInfo', () => {
  const cases: [ProblemCode, FailureBit[]][] = [
    ['bad_request', ['badRequest']],
    ['bad_csr', ['badDataFormat']],
    ['bad_signature', ['badPOP']],
    ['bad_key', ['badCertTemplate']],
    ['policy_violation', ['notAuthorized']],
    ['unauthorized', ['notAuthorized']],
    ['forbidden', ['notAuthorized']],
    ['already_revoked', ['certRevoked']],
    ['key_unavailable', ['systemUnavail']],
    ['conflict', ['systemUnavail']],
    ['internal', ['systemFailure']],
  ];
  for (const [code, bits] of cases) {
    it(`ok ${code} → ${bits.join(', ')}`, () => {
      assert.deepEqual(failureBitsOf(new ProblemError(code, 'x')), bits);
    });
  }
  it('ok bits the adapter names win; unknown names are ignored', () => {
    assert.deepEqual(failureBitsOf(new ProblemError('unauthorized', 'x', { failInfo: ['badMessageCheck'] })), ['badMessageCheck']);
    assert.deepEqual(failureBitsOf(new ProblemError('unauthorized', 'x', { failInfo: ['noSuchBit'] })), ['notAuthorized']);
  });
});
