/**
 * The OCSP fast paths against the library (@peculiar/asn1-ocsp):
 * - readCommonRequest (the direct DER reader) gives exactly what the library
 *   reader gives, for real client requests and for every one-byte change and
 *   truncation of them; where it is unsure it defers, and it never accepts
 *   what the library refuses;
 * - encodeResponseData writes the library's ResponseData encoding byte for byte.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { CRLReason, Extension } from '@peculiar/asn1-x509';
import { CertID, CertStatus, KeyHash, ResponderID, ResponseData, RevokedInfo, SingleResponse } from '@peculiar/asn1-ocsp';
import { encodeResponseData, keyHash, OID_NONCE, parseOcspRequest, parseWithLibrary, readCommonRequest, wholeSeconds, type CertState, type ParsedOcspRequest } from '../../src/authority/ocsp_codec.js';
import { REVOCATION_REASONS, type RevocationReason } from '../../src/store/store.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/ocsp/', import.meta.url));
const requests = readdirSync(FIXTURES)
  .filter((n) => n.endsWith('.der'))
  .map((n) => ({ name: n, der: new Uint8Array(readFileSync(FIXTURES + n)) }));

const view = (p: ParsedOcspRequest) => ({
  certs: p.certs.map((c) => ({ ...c, issuerNameHash: Buffer.from(c.issuerNameHash).toString('hex'), issuerKeyHash: Buffer.from(c.issuerKeyHash).toString('hex'), certIdDer: Buffer.from(c.certIdDer).toString('hex') })),
  nonce: p.nonce && Buffer.from(p.nonce).toString('hex'),
});

function libraryResult(der: Uint8Array): ReturnType<typeof view> | string {
  try {
    return view(parseWithLibrary(der));
  } catch (e) {
    return `refused: ${(e as Error).message}`;
  }
}

describe('readCommonRequest against the library reader', () => {
  it('ok-real-client-requests: the same result (signed ones are left to the library)', () => {
    assert.ok(requests.length >= 6);
    for (const r of requests) {
      const fast = readCommonRequest(r.der);
      if (r.name.startsWith('signed')) {
        assert.equal(fast, undefined, r.name);
        continue;
      }
      assert.ok(fast, `${r.name} should take the direct path`);
      assert.deepEqual(view(fast), libraryResult(r.der), r.name);
      assert.deepEqual(view(parseOcspRequest(r.der)), view(fast));
    }
  });

  it('ok-every-one-byte-change-and-truncation: never accepts what the library refuses, never disagrees', () => {
    let direct = 0;
    let mutants = 0;
    for (const r of requests) {
      const variants: Uint8Array[] = [];
      for (let i = 0; i < r.der.length; i++) {
        for (const x of [0x01, 0x80, 0xff]) {
          const m = r.der.slice();
          m[i] ^= x;
          variants.push(m);
        }
        variants.push(r.der.slice(0, i));
      }
      variants.push(Uint8Array.from([...r.der, 0]));
      for (const m of variants) {
        mutants++;
        const fast = readCommonRequest(m);
        if (!fast) continue;
        direct++;
        assert.deepEqual(view(fast), libraryResult(m), `${r.name} mutant ${Buffer.from(m).toString('hex')}`);
      }
    }
    assert.ok(mutants > 5000 && direct > 100, `${direct} of ${mutants} mutants took the direct path`);
  });
});

/** The ResponseData as the library writes it (what the project used before the direct encoder). */
function libraryResponseData(spki: Uint8Array, producedAt: Date, answers: Array<{ certIdDer: Uint8Array; state: CertState; thisUpdate: Date; nextUpdate: Date }>, nonce?: Uint8Array): Uint8Array {
  const status = (s: CertState) => {
    if (s.kind === 'good') return new CertStatus({ good: null });
    if (s.kind === 'unknown') return new CertStatus({ unknown: null });
    const code = REVOCATION_REASONS[s.reason];
    return new CertStatus({ revoked: new RevokedInfo({ revocationTime: wholeSeconds(s.revokedAt), revocationReason: code ? new CRLReason(code) : undefined }) });
  };
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new KeyHash(keyHash(spki, 'sha1')) }),
    producedAt: wholeSeconds(producedAt),
    responses: answers.map((a) => new SingleResponse({ certID: AsnConvert.parse(a.certIdDer, CertID), certStatus: status(a.state), thisUpdate: wholeSeconds(a.thisUpdate), nextUpdate: wholeSeconds(a.nextUpdate) })),
    responseExtensions: nonce ? [new Extension({ extnID: OID_NONCE, critical: false, extnValue: new OctetString(nonce) })] : undefined,
  });
  return new Uint8Array(AsnConvert.serialize(data));
}

describe('encodeResponseData against the library', () => {
  const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' }));
  const ids = requests.filter((r) => !r.name.startsWith('signed')).flatMap((r) => parseOcspRequest(r.der).certs.map((c) => c.certIdDer));
  const states: CertState[] = [
    { kind: 'good' },
    { kind: 'unknown' },
    ...(Object.keys(REVOCATION_REASONS) as RevocationReason[]).map((reason, i): CertState => ({ kind: 'revoked', reason, revokedAt: new Date(Date.UTC(2030 + i * 3, i, 1 + i, i, i, i, 999)) })),
  ];
  const t = new Date('2031-07-04T05:06:07.890Z');
  const cases: Array<[string, Parameters<typeof encodeResponseData>[0]]> = [
    ...states.map((state, i): [string, Parameters<typeof encodeResponseData>[0]] => [`${state.kind}${state.kind === 'revoked' ? ` ${state.reason}` : ''}`, { signerSpki: spki, producedAt: t, answers: [{ certIdDer: ids[i % ids.length], state, thisUpdate: t, nextUpdate: new Date(t.getTime() + 3_600_000) }] }]),
    ['three answers and a 32-octet nonce', { signerSpki: spki, producedAt: t, answers: states.slice(0, 3).map((state, i) => ({ certIdDer: ids[i % ids.length], state, thisUpdate: t, nextUpdate: new Date('2099-12-31T23:59:59Z') })), nonce: Uint8Array.of(0x04, 32, ...randomBytes(32)) }],
    ['a 1-octet nonce', { signerSpki: spki, producedAt: t, answers: [{ certIdDer: ids[0], state: states[0], thisUpdate: t, nextUpdate: t }], nonce: Uint8Array.of(0x04, 1, 7) }],
  ];
  for (const [title, r] of cases) {
    it(`ok-${title}: byte for byte`, () => {
      assert.equal(Buffer.from(encodeResponseData(r)).toString('hex'), Buffer.from(libraryResponseData(r.signerSpki, r.producedAt, r.answers, r.nonce)).toString('hex'));
    });
  }
});
