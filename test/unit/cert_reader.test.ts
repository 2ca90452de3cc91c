/**
 * The certificate fast path (src/x509/cert_reader.ts) against the ASN.1
 * library's reading (parseCertificateWithLibrary): the same CertInfo for
 * every certificate of the test fixtures and for certificates of many shapes
 * made by openssl and by fleetpki, undefined (the library reads it) for the
 * shapes it does not take, and never a certificate the library refuses:
 * every one-byte change of a certificate is either read the same by both or
 * refused by both.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseCertificate, parseCertificateWithLibrary } from '../../src/x509/cert_info.js';
import { readCertificateFast } from '../../src/x509/cert_reader.js';
import { pemDecodeAll } from '../../src/x509/pem.js';
import { makeDataDir, REPO, tempDir, type TestDataDir } from '../helpers/data_dir.js';

let work: string;
let d: TestDataDir;
const f = (n: string) => join(work, n);
const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** Every CERTIFICATE in the PEM files under test/fixtures, and every DER file there that is a certificate. */
function fixtureCertificates(): Array<{ name: string; der: Uint8Array }> {
  const out: Array<{ name: string; der: Uint8Array }> = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(pem|crt)$/.test(e)) pemDecodeAll(readFileSync(p, 'latin1')).filter((b) => b.label === 'CERTIFICATE').forEach((b, i) => out.push({ name: `${e}#${i}`, der: b.der }));
    }
  };
  walk(join(REPO, 'test', 'fixtures'));
  return out;
}

/** A self-signed openssl certificate with `key` (an openssl -newkey value) and -addext lines. */
function opensslCert(name: string, newkey: string[], subj: string, exts: string[], days = '30'): Uint8Array {
  openssl(['req', '-x509', ...newkey, '-nodes', '-keyout', f(`${name}.key`), '-subj', subj, '-days', days, '-out', f(`${name}.pem`), ...exts.flatMap((e) => ['-addext', e])]);
  return pemDecodeAll(readFileSync(f(`${name}.pem`), 'latin1'))[0].der;
}

const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
const P384 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'];
const shapes: Array<{ name: string; der: () => Uint8Array; fast: boolean }> = [];

function same(der: Uint8Array, what: string): void {
  assert.deepEqual(parseCertificate(der), parseCertificateWithLibrary(der), what);
}

before(async () => {
  work = tempDir('fleetpki-cert-reader-');
  d = await makeDataDir();
  const add = (name: string, fast: boolean, der: () => Uint8Array) => shapes.push({ name, der, fast });
  add('P-256 device: SAN dns/ip/uri/email, EKU, KU, SKI/AKI', true, () =>
    opensslCert('dev', P256, '/O=Acme/serialNumber=SN-1/CN=dev-1', ['subjectAltName=DNS:a.example,IP:10.1.2.3,URI:urn:x:y,email:a@b.example', 'extendedKeyUsage=clientAuth,serverAuth,1.3.6.1.4.1.99999.1', 'keyUsage=critical,digitalSignature,keyAgreement', 'basicConstraints=critical,CA:FALSE']),
  );
  add('P-384 CA with pathlen', true, () => opensslCert('ca', P384, '/C=DE/O=Acme/OU=PKI/CN=Acme CA', ['basicConstraints=critical,CA:TRUE,pathlen:2', 'keyUsage=critical,keyCertSign,cRLSign']));
  add('UTF-8 and IA5 names, GeneralizedTime after 2049', true, () => opensslCert('utf8', P256, '/CN=Gerät Überwachung/DC=example/emailAddress=ops@example.com', ['keyUsage=nonRepudiation,dataEncipherment,encipherOnly,decipherOnly'], '9500'));
  add('empty subject with a critical SAN', true, () => opensslCert('empty', P256, '/', ['subjectAltName=critical,DNS:only.example']));
  add('extensions the reader keeps raw (CRL DP, AIA, policies)', true, () =>
    opensslCert('raw', P256, '/CN=raw', ['crlDistributionPoints=URI:http://crl.example/x.crl', 'authorityInfoAccess=OCSP;URI:http://ocsp.example', 'certificatePolicies=1.2.3.4']),
  );
  add('RSA key', false, () => opensslCert('rsa', ['-newkey', 'rsa:2048'], '/CN=rsa', []));
  add('IPv6 SAN', false, () => opensslCert('v6', P256, '/CN=v6', ['subjectAltName=IP:2001:db8::1']));
  add('multi-valued RDN', false, () => opensslCert('mv', P256, '/CN=a+OU=b', [], '30'));
  add('name constraints', false, () => opensslCert('nc', P256, '/CN=nc', ['basicConstraints=critical,CA:TRUE', 'nameConstraints=critical,permitted;DNS:.example.com']));
  add('AKI with issuer and serial', false, () => opensslCert('akis', P256, '/CN=akis', ['authorityKeyIdentifier=keyid:always,issuer:always']));
  add('P-521 key', false, () => opensslCert('p521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], '/CN=p521', []));
  add('Ed25519 key', false, () => opensslCert('ed', ['-newkey', 'ed25519'], '/CN=ed', []));
  const issued = await d.ctx.authority.issue({ csr: readFileSync(join(REPO, 'test', 'fixtures', 'csr', 'p256.csr')), profile: 'device-tls', actor: 'test', subject: [{ type: 'O', value: 'Test Fleet' }, { type: 'CN', value: 'issued-1' }] });
  add('issued by fleetpki (device-tls)', true, () => issued.der);
  for (const ca of await d.ctx.store.listCas()) add(`fleetpki CA ${ca.name}`, true, () => ca.certDer);
});

after(async () => {
  await d?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('cert_reader: the same reading as the library', () => {
  it('ok-every certificate of the test fixtures', () => {
    const all = fixtureCertificates();
    assert.ok(all.length >= 3, `${all.length} fixture certificates`);
    for (const c of all) same(c.der, c.name);
  });

  it('ok-certificates of many shapes: read fast where the shape is common, by the library otherwise, the same either way', () => {
    assert.ok(shapes.length >= 14);
    for (const s of shapes) {
      const der = s.der();
      assert.equal(readCertificateFast(der) !== undefined, s.fast, `${s.name}: fast path ${s.fast ? 'expected' : 'not expected'}`);
      same(der, s.name);
    }
  });

  for (const which of ['P-256 device: SAN dns/ip/uri/email, EKU, KU, SKI/AKI', 'issued by fleetpki (device-tls)', 'P-384 CA with pathlen']) {
    it(`fail-any one byte changed (${which}): read the same by both, or refused by both (never accepted by the fast path alone)`, () => {
    const der = shapes.find((s) => s.name === which)!.der();
    let refused = 0;
    for (let i = 0; i < der.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const m = Uint8Array.from(der);
        m[i] ^= x;
        let lib: unknown;
        let libError: unknown;
        try {
          lib = parseCertificateWithLibrary(m);
        } catch (e) {
          libError = e;
        }
        if (libError) {
          assert.throws(() => parseCertificate(m), `byte ${i} ^ ${x}: the library refuses it, so must parseCertificate`);
          refused++;
        } else assert.deepEqual(parseCertificate(m), lib, `byte ${i} ^ ${x}`);
      }
    }
    assert.ok(refused > der.length, `${refused} of ${der.length * 3} changes refused`);
    });
  }

  it('fail-a point off the curve, trailing bytes, garbage: refused with bad_request or bad_key', () => {
    const der = shapes[0].der();
    const info = parseCertificate(der);
    const at = Buffer.from(der).indexOf(Buffer.from(info.spki.subarray(info.spki.length - 8)));
    const off = Uint8Array.from(der);
    off[at + 7] ^= 1; // the last octet of Y
    assert.equal(readCertificateFast(off), undefined);
    assert.throws(() => parseCertificate(off), /public key|certificate/);
    assert.throws(() => parseCertificate(Uint8Array.from([...der, 0])), /certificate|DER/);
    assert.throws(() => parseCertificate(Uint8Array.of(0x30, 0x03, 2, 1, 1)), /certificate|DER/);
  });
});
