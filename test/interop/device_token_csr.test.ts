/**
 * The device side: a key born in the device's token (SoftHSM2 here) signs
 * the device's PKCS#10 request, which `openssl req -verify` accepts and the
 * CA certifies; the key never exists outside the token.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateTokenKey, openTokenKey } from '../../src/keys/device_key.js';
import { keyObjectSigner, type Signer } from '../../src/keys/key_store.js';
import { buildCsr } from '../../src/x509/csr_builder.js';
import { parseCsr } from '../../src/x509/csr.js';
import { pemEncode } from '../../src/x509/pem.js';
import type { KeyAlgorithm } from '../../src/x509/algorithms.js';
import { makeTestCa, run, type TestCa } from '../helpers/ca_fixture.js';
import { tempDir } from '../helpers/data_dir.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

let token: TestToken;
let ca: TestCa;
const work = tempDir('fleetpki-device-csr-');
const opts = () => ({ module: token.module, token: token.label, pin: () => token.pin });

before(async () => {
  token = makeToken('device');
  ca = await makeTestCa();
});

after(async () => {
  await ca?.cleanup();
  token?.cleanup();
  await run('rm', ['-rf', work]);
});

async function checkCsr(name: string, signer: Signer): Promise<string> {
  const csr = await buildCsr({ subject: [{ type: 'CN', value: name }, { type: 'serialNumber', value: `SN-${name}` }], sans: [{ type: 'dns', value: `${name}.plant-a.example` }, { type: 'uri', value: 'urn:fleetpki:domain:plant-a' }] }, signer);
  const file = join(work, `${name}.csr`);
  writeFileSync(file, pemEncode('CERTIFICATE REQUEST', csr));
  const v = spawnSync('openssl', ['req', '-verify', '-noout', '-text', '-in', file], { encoding: 'utf8' });
  const out = v.stdout + v.stderr;
  assert.equal(v.status, 0, out);
  assert.match(v.stderr, /self-signature verify OK/);
  assert.match(out, new RegExp(`DNS:${name}\\.plant-a\\.example, URI:urn:fleetpki:domain:plant-a`));
  const parsed = parseCsr(csr);
  assert.deepEqual(Buffer.from(parsed.spki), Buffer.from(signer.spki));
  const issued = await ca.authority.issue({ csr, profile: 'device-tls', actor: 'test' });
  assert.equal(issued.record.subject, `CN=${name}, serialNumber=SN-${name}`);
  return file;
}

describe('device keys born in a PKCS#11 token sign their own CSR', () => {
  const algs: KeyAlgorithm[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048'];
  for (const alg of algs) {
    it(`ok-${alg}: openssl req -verify accepts the CSR; the CA certifies it`, async () => {
      const key = await generateTokenKey(opts(), alg, `device ${alg}`);
      try {
        assert.match(key.uri, /^pkcs11:token=device;object=device-/);
        await checkCsr(`dev-${alg}`, key.signer);
      } finally {
        await key.close();
      }
    });
  }

  it('ok-reopen-by-uri: the device finds its key again after a restart and signs with the same public key', async () => {
    const first = await generateTokenKey(opts(), 'ecdsa-p256', 'persistent');
    const spki = Buffer.from(first.signer.spki);
    await first.close();
    const again = await openTokenKey(opts(), first.uri);
    try {
      assert.deepEqual(Buffer.from(again.signer.spki), spki);
      await checkCsr('dev-reopened', again.signer);
      const next = await again.rotate('persistent next');
      assert.notDeepEqual(Buffer.from(next.signer.spki), spki, 'rotation makes a new key');
      await again.remove();
      await assert.rejects(openTokenKey(opts(), first.uri), /no private key/);
    } finally {
      await again.close();
    }
  });

  it('ok-software-signer: the same builder with a key in memory (ed25519)', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    await checkCsr('dev-soft', keyObjectSigner(privateKey));
  });

  it('fail-wrong-pin: key_unavailable, no key made', async () => {
    await assert.rejects(generateTokenKey({ ...opts(), pin: () => '000000' }, 'ecdsa-p256', 'never'), (e: Error & { code?: string }) => e.code === 'key_unavailable' || /PIN/.test(e.message));
  });
});
