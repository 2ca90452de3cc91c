import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as der from '../../src/asn1/der.js';
import { isProblem } from '../../src/errors.js';
import { keyObjectSigner, loadPrivateKey } from '../../src/keys/key_store.js';
import { DEFAULT_PBKDF2_ITERATIONS, encryptPkcs8 } from '../../src/keys/pkcs8_encrypt.js';
import { SoftwareKeyStore } from '../../src/keys/software_key_store.js';
import { pemDecodeAll } from '../../src/x509/pem.js';
import { run, OPENSSL } from '../helpers/ca_fixture.js';

const PASS = 'correct horse battery staple';
const spkiHex = (k: KeyObject) => createPublicKey(k).export({ format: 'der', type: 'spki' }).toString('hex');

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pkcs8-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** PBKDF2 iteration count, PRF and cipher OIDs read back from the envelope. */
function envelope(pem: string) {
  const [block] = pemDecodeAll(pem);
  assert.equal(block.label, 'ENCRYPTED PRIVATE KEY');
  const d = block.der;
  const oidText = (t: der.Tlv) => {
    // Decode an OID's content octets to dotted form (small test helper).
    const c = der.content(d, t);
    const arcs: number[] = [];
    let v = 0;
    for (const b of c) {
      v = v * 128 + (b & 0x7f);
      if (!(b & 0x80)) {
        arcs.push(v);
        v = 0;
      }
    }
    const first = arcs.shift()!;
    return [Math.min(2, Math.floor(first / 40)), first - Math.min(2, Math.floor(first / 40)) * 40, ...arcs].join('.');
  };
  const [alg] = der.readChildren(d, der.readTlv(d));
  const [pbes2Oid, pbes2Params] = der.readChildren(d, alg);
  const [kdf, enc] = der.readChildren(d, pbes2Params);
  const [kdfOid, kdfParams] = der.readChildren(d, kdf);
  const [salt, iter, keyLen, prf] = der.readChildren(d, kdfParams);
  const [encOid, iv] = der.readChildren(d, enc);
  return {
    pbes2: oidText(pbes2Oid),
    kdf: oidText(kdfOid),
    saltLen: salt.end - salt.contentStart,
    iterations: parseInt(Buffer.from(der.content(d, iter)).toString('hex'), 16),
    keyLen: parseInt(Buffer.from(der.content(d, keyLen)).toString('hex'), 16),
    prf: oidText(der.readChildren(d, prf)[0]),
    cipher: oidText(encOid),
    ivLen: iv.end - iv.contentStart,
  };
}

describe('encryptPkcs8', () => {
  const keys: Array<{ name: string; make: () => KeyObject }> = [
    { name: 'ecdsa-p256', make: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey },
    { name: 'ecdsa-p384', make: () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey },
    { name: 'ed25519', make: () => generateKeyPairSync('ed25519').privateKey },
    { name: 'rsa-2048', make: () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey },
  ];
  for (const k of keys) {
    it(`ok-openssl-pkcs8-opens-${k.name}`, () => {
      const key = k.make();
      const file = join(dir, `${k.name}.p8`);
      writeFileSync(file, encryptPkcs8(key, PASS, 1000));
      const opened = run(OPENSSL, ['pkcs8', '-in', file, '-passin', `pass:${PASS}`]);
      assert.equal(opened.status, 0, opened.out);
      assert.match(opened.out, /-----BEGIN PRIVATE KEY-----/);
      // The key OpenSSL decrypted is the key we encrypted.
      const pub = run(OPENSSL, ['pkey', '-pubout', '-outform', 'DER'], opened.out);
      assert.equal(pub.status, 0);
      assert.equal(spkiHex(loadPrivateKey(opened.out)), spkiHex(key));
      // And node reads our envelope the same way.
      assert.equal(spkiHex(loadPrivateKey(readFileSync(file, 'utf8'), PASS)), spkiHex(key));
    });
  }

  it('fail-openssl-wrong-passphrase', () => {
    const file = join(dir, 'wrong.p8');
    writeFileSync(file, encryptPkcs8(generateKeyPairSync('ed25519').privateKey, PASS, 1000));
    const r = run(OPENSSL, ['pkcs8', '-in', file, '-passin', 'pass:not the passphrase']);
    assert.notEqual(r.status, 0);
    assert.doesNotMatch(r.out, /BEGIN PRIVATE KEY/);
    assert.throws(() => loadPrivateKey(readFileSync(file, 'utf8'), 'not the passphrase'));
  });

  it('ok-envelope-is-pbes2-pbkdf2-hmac-sha256-aes-256-cbc', () => {
    const e = envelope(encryptPkcs8(generateKeyPairSync('ed25519').privateKey, PASS, 1234));
    assert.deepEqual(e, {
      pbes2: '1.2.840.113549.1.5.13',
      kdf: '1.2.840.113549.1.5.12',
      saltLen: 16,
      iterations: 1234,
      keyLen: 32,
      prf: '1.2.840.113549.2.9',
      cipher: '2.16.840.1.101.3.4.1.42',
      ivLen: 16,
    });
    const file = join(dir, 'params.p8');
    writeFileSync(file, encryptPkcs8(generateKeyPairSync('ed25519').privateKey, PASS, 1234));
    const parsed = run(OPENSSL, ['asn1parse', '-in', file]);
    assert.match(parsed.out, /PBES2/);
    assert.match(parsed.out, /PBKDF2/);
    assert.match(parsed.out, /hmacWithSHA256/);
    assert.match(parsed.out, /aes-256-cbc/);
    assert.match(parsed.out, /INTEGER\s+:04D2/);
  });

  it('ok-default-iterations-are-600000', () => {
    assert.equal(DEFAULT_PBKDF2_ITERATIONS, 600_000);
    assert.equal(envelope(encryptPkcs8(generateKeyPairSync('ed25519').privateKey, PASS)).iterations, 600_000);
  });

  it('ok-fresh-salt-and-iv-each-time', () => {
    const key = generateKeyPairSync('ed25519').privateKey;
    const a = encryptPkcs8(key, PASS, 1000);
    const b = encryptPkcs8(key, PASS, 1000);
    assert.notEqual(a, b);
  });

  it('fail-empty-passphrase', () => {
    assert.throws(() => encryptPkcs8(generateKeyPairSync('ed25519').privateKey, '', 1000), RangeError);
  });
});

describe('SoftwareKeyStore (encrypted PKCS#8 files)', () => {
  let keysDir: string;
  let store: SoftwareKeyStore;
  before(() => {
    keysDir = join(dir, 'store');
    store = new SoftwareKeyStore({ dir: keysDir, passphrase: () => PASS, pbkdf2Iterations: 1000 });
  });

  it('ok-generate-sign-and-openssl-opens-the-file', async () => {
    const ref = await store.generate('ecdsa-p256', 'Root CA!');
    assert.match(ref, /^soft:root-ca-[0-9a-f]{12}$/);
    assert.equal(await store.has(ref), true);
    const signer = await store.signer(ref);
    assert.deepEqual(signer.key, { type: 'ec', curve: 'P-256' });
    const sig = await signer.sign(new Uint8Array([1, 2, 3]), 'sha256');
    assert.ok(cryptoVerify('sha256', new Uint8Array([1, 2, 3]), { key: createPublicKey({ key: Buffer.from(signer.spki), format: 'der', type: 'spki' }), dsaEncoding: 'der' }, sig));

    const [file] = readdirSync(keysDir).filter((f) => f.endsWith('.p8'));
    assert.equal(statSync(join(keysDir, file)).mode & 0o077, 0, 'key file is private to its owner');
    assert.equal(statSync(keysDir).mode & 0o077, 0, 'key directory is private to its owner');
    const opened = run(OPENSSL, ['pkcs8', '-in', join(keysDir, file), '-passin', `pass:${PASS}`]);
    assert.equal(opened.status, 0, opened.out);
    assert.equal(spkiHex(loadPrivateKey(opened.out)), Buffer.from(signer.spki).toString('hex'));
  });

  it('ok-a-second-instance-reads-the-key', async () => {
    const ref = await store.generate('ed25519', 'again');
    const other = new SoftwareKeyStore({ dir: keysDir, passphrase: () => PASS, pbkdf2Iterations: 1000 });
    assert.deepEqual((await other.signer(ref)).spki, (await store.signer(ref)).spki);
  });

  it('fail-wrong-passphrase-is-key_unavailable', async () => {
    const ref = await store.generate('ed25519', 'locked');
    const other = new SoftwareKeyStore({ dir: keysDir, passphrase: () => 'wrong passphrase', pbkdf2Iterations: 1000 });
    await assert.rejects(other.signer(ref), (e: unknown) => isProblem(e, 'key_unavailable'));
  });

  it('ok-remove-then-key_unavailable', async () => {
    const ref = await store.generate('ecdsa-p384', 'gone');
    await store.remove(ref);
    assert.equal(await store.has(ref), false);
    await assert.rejects(store.signer(ref), (e: unknown) => isProblem(e, 'key_unavailable'));
    await assert.rejects(store.remove(ref), (e: unknown) => isProblem(e, 'not_found'));
  });

  it('fail-bad-references', async () => {
    for (const ref of ['pkcs11:x', 'soft:../../etc/passwd', 'soft:', 'soft:A']) {
      await assert.rejects(store.signer(ref), (e: unknown) => isProblem(e, 'key_unavailable'), ref);
    }
    assert.equal(await store.has('soft:../x'), false);
  });

  it('ok-export-opens-with-the-export-passphrase-only', async () => {
    const ref = await store.generate('ecdsa-p256', 'export');
    await assert.rejects(store.exportEncrypted(ref, 'short'), (e: unknown) => isProblem(e, 'bad_request'));
    const pem = await store.exportEncrypted(ref, 'a long export passphrase');
    const file = join(dir, 'exported.p8');
    writeFileSync(file, pem);
    assert.equal(run(OPENSSL, ['pkcs8', '-in', file, '-passin', 'pass:a long export passphrase']).status, 0);
    assert.notEqual(run(OPENSSL, ['pkcs8', '-in', file, '-passin', `pass:${PASS}`]).status, 0);
    const signer = keyObjectSigner(loadPrivateKey(pem, 'a long export passphrase'));
    assert.deepEqual(signer.spki, (await store.signer(ref)).spki);
  });
});
