/**
 * The cross-organisation trust list: what `agent trust add --ca FILE` accepts
 * (a root or CA, optionally with the CAs below it, in any order), what it
 * refuses, and that entries round-trip through trust.json.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nodeFiles } from '../../src/agent/files.js';
import { TrustList } from '../../src/agent/trust_list.js';
import { isProblem } from '../../src/errors.js';
import { makeTestCa, type TestCa } from '../helpers/ca_fixture.js';
import { tempDir } from '../helpers/data_dir.js';

let a: TestCa;
let b: TestCa;
let leafPem = '';
const dir = tempDir('fleetpki-trust-list-');
const sub = (name: string) => {
  mkdirSync(join(dir, name));
  return join(dir, name);
};

before(async () => {
  a = await makeTestCa();
  b = await makeTestCa();
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'l.key'), '-subj', '/CN=leaf', '-out', join(dir, 'l.csr')], { stdio: 'pipe' });
  const issued = await a.authority.issue({ csr: readFileSync(join(dir, 'l.csr')), profile: 'device-tls', actor: 'test' });
  leafPem = issued.pem;
});
after(async () => {
  await a?.cleanup();
  await b?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('trust list entries', () => {
  const ok: Array<{ name: string; pem: () => string; anchor: () => string; below: number }> = [
    { name: 'ok-root-alone', pem: () => a.rootPem, anchor: () => a.rootPem, below: 0 },
    { name: 'ok-root-and-issuing', pem: () => a.rootPem + a.issuingPem, anchor: () => a.rootPem, below: 1 },
    { name: 'ok-issuing-before-root', pem: () => a.issuingPem + a.rootPem, anchor: () => a.rootPem, below: 1 },
    { name: 'ok-issuing-ca-as-the-anchor', pem: () => a.issuingPem, anchor: () => a.issuingPem, below: 0 },
  ];
  for (const c of ok) {
    it(c.name, async () => {
      const list = new TrustList(sub(c.name), nodeFiles);
      const e = await list.add('partner', c.pem(), ['plant-a', 'plant-a'], ['http://pki.partner.example/crl/issuing.crl']);
      const [back] = await list.entries();
      for (const x of [e, back]) {
        assert.equal(x.cert.fingerprintSha256, new X509Certificate(c.anchor()).fingerprint256.replace(/:/g, '').toLowerCase());
        assert.equal(x.intermediates.length, c.below);
        assert.deepEqual(x.domains, ['plant-a']);
        assert.deepEqual(x.crlUrls, ['http://pki.partner.example/crl/issuing.crl']);
      }
    });
  }

  const fail: Array<{ name: string; pem: () => string; crl?: string; detail: RegExp }> = [
    { name: 'fail-two-unrelated-roots', pem: () => a.rootPem + b.rootPem, detail: /one root \(or top CA\).*2 unrelated tops/ },
    { name: 'fail-ca-of-another-root', pem: () => a.rootPem + b.issuingPem, detail: /unrelated tops/ },
    { name: 'fail-not-a-ca', pem: () => a.rootPem + leafPem, detail: /CN=leaf is not a CA certificate/ },
    { name: 'fail-no-certificate', pem: () => 'nothing here', detail: /holds no certificate/ },
    { name: 'fail-crl-url-not-http', pem: () => a.rootPem, crl: 'ldap://dir.example/cn=crl', detail: /not an http\(s\) CRL URL/ },
  ];
  for (const c of fail) {
    it(c.name, async () => {
      const list = new TrustList(sub(c.name), nodeFiles);
      await assert.rejects(list.add('partner', c.pem(), ['plant-a'], c.crl ? [c.crl] : []), (e) => isProblem(e, 'bad_request') && c.detail.test(e.detail));
      assert.deepEqual(await list.entries(), [], 'nothing written');
    });
  }
});
