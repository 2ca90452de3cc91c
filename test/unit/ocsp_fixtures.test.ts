/**
 * Requests written by the real `openssl ocsp -reqout` (test/fixtures/ocsp/,
 * see its README): parsed strictly, with the CertID hashes fleetpki computes
 * for the fixture CA equal to OpenSSL's.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { keyHash, parseOcspRequest } from '../../src/authority/ocsp_codec.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { REPO } from '../helpers/data_dir.js';

const dir = join(REPO, 'test', 'fixtures', 'ocsp');
const read = (f: string) => new Uint8Array(readFileSync(join(dir, f)));
const ca = parseCertificate(readFileSync(join(dir, 'ca.pem'), 'utf8'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const cases = [
  { file: 'sha1-no-nonce.der', hash: 'sha1', serials: ['0123456789abcdef'], nonce: false },
  { file: 'sha1-nonce.der', hash: 'sha1', serials: ['0123456789abcdef'], nonce: true },
  { file: 'sha256-no-nonce.der', hash: 'sha256', serials: ['0123456789abcdef'], nonce: false },
  { file: 'sha256-nonce.der', hash: 'sha256', serials: ['0123456789abcdef'], nonce: true },
  { file: 'sha1-two-serials.der', hash: 'sha1', serials: ['01', '00ff'], nonce: false },
  { file: 'signed-sha1.der', hash: 'sha1', serials: ['0123456789abcdef'], nonce: false },
] as const;

describe('openssl ocsp request fixtures', () => {
  for (const c of cases) {
    it(`ok-${c.file}`, () => {
      const der = read(c.file);
      const req = parseOcspRequest(der);
      assert.deepEqual(req.certs.map((r) => r.serial), [...c.serials]);
      for (const r of req.certs) {
        assert.equal(r.hash, c.hash);
        assert.equal(hex(r.issuerNameHash), createHash(c.hash).update(ca.subjectDer).digest('hex'), 'issuer name hash as OpenSSL computes it');
        assert.equal(hex(r.issuerKeyHash), hex(keyHash(ca.spki, c.hash)), 'issuer key hash as OpenSSL computes it');
        // The CertID we echo is the client's own bytes.
        assert.ok(Buffer.from(der).includes(Buffer.from(r.certIdDer)));
      }
      if (c.nonce) {
        assert.ok(req.nonce);
        // OpenSSL sends a 16-octet nonce wrapped in an OCTET STRING (RFC 8954 §2.1).
        assert.equal(req.nonce[0], 0x04);
        assert.equal(req.nonce[1], 16);
        assert.equal(req.nonce.length, 18);
      } else {
        assert.equal(req.nonce, undefined);
      }
    });
  }

  it('fail-every-fixture-with-a-trailing-byte', () => {
    for (const c of cases) {
      const der = read(c.file);
      assert.throws(() => parseOcspRequest(new Uint8Array([...der, 0])), /malformed OCSP request/, c.file);
    }
  });
});
