/**
 * CA keys in a real PKCS#11 token (SoftHSM2), checked with the tools other
 * people use: OpenSC's pkcs11-tool sees the keys sensitive and never
 * extractable and cannot read them; openssl verifies the certificates, CRLs
 * and OCSP responses signed through the token; OpenSSL's pkcs11 engine
 * (libengine-pkcs11-openssl) signs with the same key by its RFC 7512 URI.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initDataDir, type FleetContext } from '../../src/server/context.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { pemEncode } from '../../src/x509/pem.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { fleetpki, opensslCsr, run, tempDir } from '../helpers/data_dir.js';
import { makeToken, withTokenPrivateKey, type TestToken } from '../helpers/softhsm.js';

const work = tempDir('fleetpki-p11-');
const f = (n: string) => join(work, n);
let token: TestToken;
const dir = join(work, 'data');
const D = ['--dir', dir];

const json = (r: ReturnType<typeof fleetpki>) => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const p11Init = (d: string, extra: string[] = [], env: Record<string, string> = {}) =>
  fleetpki(['init', '--dir', d, '--org', 'Token Fleet', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv, '--json', ...extra], { ...token.env, ...env });
const cli = (args: string[], env: Record<string, string> = {}) => fleetpki([...args, ...D], { ...token.env, ...env });

interface CaRow { name: string; keyUri: string | null; keyAlgorithm: string }
let cas: CaRow[] = [];
const uriOf = (name: string) => cas.find((c) => c.name === name)!.keyUri!;
/** CKA_ID as hex, as pkcs11-tool --id wants it. */
const idOf = (uri: string) => /id=([^;]+)/.exec(uri)![1].replace(/%/g, '');

before(() => {
  token = makeToken('fleet-ca');
  json(p11Init(dir));
  cas = json(cli(['ca', 'list', '--json']));
  writeFileSync(f('root.pem'), cli(['ca', 'cert', '--root']).stdout);
  writeFileSync(f('issuing.pem'), cli(['ca', 'cert']).stdout);
});

after(() => {
  token?.cleanup();
  void run('rm', ['-rf', work]);
});

describe('PKCS#11 key store: CA keys in SoftHSM2', () => {
  it('init names each CA key by a PKCS#11 URI in the token; the config holds the PIN variable name, never the PIN', () => {
    for (const c of cas) assert.match(c.keyUri ?? '', /^pkcs11:token=fleet-ca;object=[a-z]+-ca-[0-9a-f]{8};id=(%[0-9a-f]{2}){16};type=private$/);
    const cfg = readFileSync(join(dir, 'fleetpki.json'), 'utf8');
    assert.equal(JSON.parse(cfg).keyStore.pinEnv, token.pinEnv);
    assert.ok(!cfg.includes(token.pin), 'the PIN is not in the config');
    assert.equal(existsSync(join(dir, 'keys')), false, 'no software key files');
    assert.equal(existsSync(join(dir, 'secrets')), false, 'no software key store passphrase');
  });

  it('pkcs11-tool lists the CA keys as sensitive, never extractable, sign-only (and the CMP secret sealing key decrypt-only)', () => {
    const r = token.tool(['--login', '--pin', token.pin, '--list-objects', '--type', 'privkey']);
    assert.equal(r.status, 0, r.stderr);
    const objects = r.stdout.split(/(?=Private Key Object)/).filter((s) => s.startsWith('Private Key Object'));
    const sealing = objects.filter((o) => /label:\s+secret-sealing-/.test(o));
    const ca = objects.filter((o) => !sealing.includes(o));
    assert.equal(ca.length, 2, r.stdout);
    assert.equal(sealing.length, 1, r.stdout);
    for (const o of objects) assert.match(o, /Access:\s+sensitive, always sensitive, never extractable, local/);
    for (const o of ca) assert.match(o, /Usage:\s+sign\s*$/m);
    assert.match(sealing[0], /Usage:\s+decrypt\s*$/m);
  });

  it('fail-read-private-value: the token refuses to reveal (CKA_VALUE) or wrap out the CA key', async () => {
    // pkcs11-tool has no private-key read for EC keys, so ask the token itself through PKCS#11.
    await withTokenPrivateKey(token.module, token.label, token.pin, idOf(uriOf('root')), (lib, p, s, key) => {
      assert.throws(() => lib.C_GetAttributeValue(s, key, [{ type: p.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
      const attrs = lib.C_GetAttributeValue(s, key, [{ type: p.CKA_SENSITIVE }, { type: p.CKA_EXTRACTABLE }, { type: p.CKA_NEVER_EXTRACTABLE }]);
      assert.deepEqual(attrs.map((a) => a.value[0]), [1, 0, 1]);
      const wrapping = lib.C_GenerateKey(s, { mechanism: p.CKM_AES_KEY_GEN }, [{ type: p.CKA_VALUE_LEN, value: 32 }, { type: p.CKA_WRAP, value: true }, { type: p.CKA_TOKEN, value: false }]);
      assert.throws(() => lib.C_WrapKey(s, { mechanism: p.CKM_AES_KEY_WRAP_PAD }, wrapping, key, Buffer.alloc(4096)), /CKR_KEY_UNEXTRACTABLE/);
    });
  });

  it('certificates signed through the token verify with openssl (chain, strict)', () => {
    assert.match(run2(['verify', '-x509_strict', '-CAfile', f('root.pem'), f('issuing.pem')]), /OK/);
    const { csrPath } = opensslCsr(work, 'dev-1', { san: 'DNS:dev-1.example' });
    json(cli(['cert', 'issue', '--csr', csrPath, '--profile', 'device-tls', '--out', f('dev-1.pem'), '--json']));
    assert.match(run2(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), f('dev-1.pem')]), /dev-1.pem: OK/);
  });

  it('CRLs signed through the token verify with openssl', () => {
    const { csrPath } = opensslCsr(work, 'dev-2');
    const serial = json(cli(['cert', 'issue', '--csr', csrPath, '--profile', 'device-tls', '--out', f('dev-2.pem'), '--json'])).serial;
    assert.equal(cli(['cert', 'revoke', serial, '--reason', 'keyCompromise']).status, 0);
    assert.equal(cli(['crl', '--ca', 'issuing', '--new', '--out', f('issuing.crl')]).status, 0);
    assert.equal(cli(['crl', '--ca', 'root', '--new', '--out', f('root.crl')]).status, 0);
    for (const [crl, ca] of [['issuing.crl', 'issuing.pem'], ['root.crl', 'root.pem']]) {
      assert.match(run2(['crl', '-inform', 'DER', '-in', f(crl), '-CAfile', f(ca), '-noout']), /verify OK/);
    }
    const chain = f('crl-chain.pem');
    writeFileSync(chain, readFileSync(f('root.pem'), 'utf8') + readFileSync(f('issuing.pem'), 'utf8'));
    run2(['crl', '-inform', 'DER', '-in', f('issuing.crl'), '-out', f('issuing.crl.pem')]);
    run2(['crl', '-inform', 'DER', '-in', f('root.crl'), '-out', f('root.crl.pem')]);
    const v = run2(['verify', '-crl_check_all', '-CAfile', chain, '-CRLfile', f('issuing.crl.pem'), '-CRLfile', f('root.crl.pem'), f('dev-2.pem')]);
    assert.match(v, /certificate revoked/);
  });

  it('OpenSSL signs with the same token key through libengine-pkcs11-openssl; the signature verifies with the CA certificate', () => {
    const uri = uriOf('issuing');
    writeFileSync(f('msg.txt'), 'signed by the issuing CA key, through the OpenSSL engine\n');
    const sig = spawn2('openssl', ['dgst', '-sha256', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', uri, '-passin', `env:${token.pinEnv}`, '-out', f('msg.sig'), f('msg.txt')], { OPENSSL_CONF: token.opensslConf });
    assert.equal(sig.status, 0, sig.out);
    run2(['x509', '-in', f('issuing.pem'), '-pubkey', '-noout', '-out', f('issuing.pub')]);
    assert.match(run2(['dgst', '-sha256', '-verify', f('issuing.pub'), '-signature', f('msg.sig'), f('msg.txt')]), /Verified OK/);
  });

  it('fail-export-root-key: a token key cannot leave the token; a typed error, the key stays online', () => {
    const r = cli(['ca', 'export-root-key', '--out', f('root.p8')], { FLEETPKI_EXPORT_PASSPHRASE: 'a long enough passphrase' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^fleetpki: key_not_exportable: .*token/);
    assert.equal(existsSync(f('root.p8')), false);
    assert.equal(json(cli(['ca', 'list', '--json'])).find((c: CaRow & { keyOnline: boolean }) => c.name === 'root').keyOnline, true);
  });

  it('adopts an existing token key with --key-uri: the root certificate carries that key', () => {
    const gen = token.tool(['--login', '--pin', token.pin, '--keypairgen', '--key-type', 'EC:secp384r1', '--id', 'a1b2', '--label', 'adopted-root', '--usage-sign']);
    assert.equal(gen.status, 0, gen.stderr);
    const d2 = join(work, 'adopted');
    json(p11Init(d2, ['--key-uri', `pkcs11:token=${token.label};id=%a1%b2`, '--key-algorithm', 'ecdsa-p256']));
    const root = json(fleetpki(['ca', 'list', '--json', '--dir', d2], token.env)).find((c: CaRow) => c.name === 'root');
    assert.equal(root.keyAlgorithm, 'ecdsa-p384', 'the adopted P-384 key, not a new P-256 one');
    assert.match(root.keyUri, /id=%a1%b2;type=private$/);
    // pkcs11-tool lists every public key object; pick the one with our CKA_ID.
    const listed = token.tool(['--list-objects', '--type', 'pubkey']);
    const block = listed.stdout.split(/(?=Public Key Object)/).find((b) => /ID:\s+a1b2\b/.test(b));
    assert.ok(block, listed.stdout);
    const point = /EC_POINT:\s+([0-9a-f]+)/.exec(block)![1];
    const rootPem = fleetpki(['ca', 'cert', '--root', '--dir', d2], token.env).stdout;
    const spki = Buffer.from(parseCertificate(rootPem).spki).toString('hex');
    assert.ok(point.endsWith(spki.slice(-194)), 'the root certificate carries the public key of the token object');
  });

  it('create-intermediate --key-uri adopts an RSA key made by pkcs11-tool; certificates under it verify', () => {
    const gen = token.tool(['--login', '--pin', token.pin, '--keypairgen', '--key-type', 'rsa:2048', '--id', 'c3d4', '--label', 'line-ca', '--usage-sign']);
    assert.equal(gen.status, 0, gen.stderr);
    const ca = json(cli(['ca', 'create-intermediate', '--name', 'line-ca', '--key-uri', `pkcs11:token=${token.label};object=line-ca`, '--json']));
    assert.equal(ca.keyAlgorithm, 'rsa-2048');
    assert.match(ca.keyUri, /object=line-ca;type=private$/);
    writeFileSync(f('line-ca.pem'), ca.pem);
    const { csrPath } = opensslCsr(work, 'line-dev');
    json(cli(['cert', 'issue', '--ca', 'line-ca', '--csr', csrPath, '--profile', 'device-tls', '--out', f('line-dev.pem'), '--json']));
    assert.match(run2(['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('line-ca.pem'), f('line-dev.pem')]), /line-dev.pem: OK/);
  });

  const refusals: Array<{ name: string; args: string[]; env?: Record<string, string>; code: string; detail: RegExp }> = [
    { name: 'fail-wrong-pin', args: [], env: { [`FLEETPKI_TEST_TOKEN_PIN`]: '999999' }, code: 'key_unavailable', detail: /PIN .* is wrong/ },
    { name: 'fail-missing-token', args: ['--pkcs11-token', 'no-such-token'], code: 'key_unavailable', detail: /no PKCS#11 token labelled "no-such-token"/ },
    { name: 'fail-missing-module', args: ['--pkcs11-module', '/usr/lib/nowhere/libnothing.so'], code: 'key_unavailable', detail: /PKCS#11 module .* does not exist/ },
    { name: 'fail-unset-pin-variable', args: ['--pkcs11-pin-env', 'FLEETPKI_NO_SUCH_PIN_VAR'], code: 'bad_request', detail: /is not set/ },
    { name: 'fail-ed25519-in-token', args: ['--key-algorithm', 'ed25519'], code: 'bad_key', detail: /ECDSA P-256\/P-384 and RSA/ },
    { name: 'fail-adopt-missing-key', args: ['--key-uri', 'pkcs11:token=fleet-ca;object=nothing-here'], code: 'key_unavailable', detail: /no private key/ },
    { name: 'fail-pin-in-uri', args: ['--key-uri', 'pkcs11:token=fleet-ca;object=x?pin-value=123456'], code: 'key_unavailable', detail: /PIN may not be part of the URI/ },
  ];
  for (const c of refusals) {
    it(`${c.name}: one clear line, no data directory, no key left in the token`, () => {
      const before = token.tool(['--login', '--pin', token.pin, '--list-objects', '--type', 'privkey']).stdout;
      const d3 = join(work, c.name);
      const base = ['init', '--dir', d3, '--org', 'X', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv];
      const r = fleetpki([...base, ...c.args], { ...token.env, ...c.env });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, new RegExp(`^fleetpki: ${c.code}: `));
      assert.match(r.stderr, c.detail);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(!r.stderr.includes(token.pin) || c.name === 'fail-pin-in-uri', 'the PIN is not printed');
      assert.equal(existsSync(d3), false);
      assert.equal(token.tool(['--login', '--pin', token.pin, '--list-objects', '--type', 'privkey']).stdout, before);
    });
  }
});

describe('PKCS#11 key store: OCSP responses and RSA / P-384 CA keys', () => {
  let ctx: FleetContext;
  let server: RunningServer;

  before(async () => {
    const r = await initDataDir({ dir: join(work, 'rsa'), org: 'RSA Token Fleet', keyAlgorithm: 'rsa-2048', rootValidityDays: 3650, issuingValidityDays: 1825, listen: '127.0.0.1:0', httpListen: '127.0.0.1:0', pkcs11: { module: token.module, token: token.label, pinEnv: token.pinEnv } });
    ctx = r.ctx;
    server = await startServer(ctx, { listen: '127.0.0.1:0', httpListen: '127.0.0.1:0' });
    writeFileSync(f('rsa-root.pem'), pemEncode('CERTIFICATE', (await ctx.store.getCa('root'))!.certDer));
    writeFileSync(f('rsa-issuing.pem'), pemEncode('CERTIFICATE', (await ctx.store.getCa('issuing'))!.certDer));
  });

  after(async () => {
    await server?.close();
    await ctx?.close();
  });

  it('RSA-2048 CA keys in the token: certificates verify with openssl', async () => {
    const { csrPem } = opensslCsr(work, 'rsa-dev');
    const r = await ctx.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'test' });
    writeFileSync(f('rsa-dev.pem'), r.pem);
    assert.equal(parseCertificate((await ctx.store.getCa('issuing'))!.certDer).key.type, 'rsa');
    const v = await run('openssl', ['verify', '-x509_strict', '-CAfile', f('rsa-root.pem'), '-untrusted', f('rsa-issuing.pem'), f('rsa-dev.pem')]);
    assert.match(v.stdout, /OK/, v.stderr);
  });

  it('OCSP responses signed by a delegated signer whose key is in the token verify with openssl ocsp', async () => {
    const res = await run('openssl', ['ocsp', '-url', `${server.httpUrl}/ocsp`, '-CAfile', f('rsa-root.pem'), '-issuer', f('rsa-issuing.pem'), '-cert', f('rsa-dev.pem')]);
    assert.match(res.stderr, /Response verify OK/, res.stdout + res.stderr);
    assert.match(res.stdout, /rsa-dev.pem: good/);
    const signer = await ctx.store.getOcspSigner('issuing');
    assert.match(signer!.keyRef, /^pkcs11:token=fleet-ca;object=issuing-ocsp-/);
  });

  it('ECDSA P-384 CA keys in the token', async () => {
    const r = await initDataDir({ dir: join(work, 'p384'), org: 'P384 Fleet', keyAlgorithm: 'ecdsa-p384', rootValidityDays: 3650, issuingValidityDays: 1825, pkcs11: { module: token.module, token: token.label, pinEnv: token.pinEnv } });
    try {
      const { csrPem } = opensslCsr(work, 'p384-dev');
      const c = await r.ctx.authority.issue({ csr: csrPem, profile: 'device-tls', actor: 'test' });
      writeFileSync(f('p384-dev.pem'), c.pem);
      writeFileSync(f('p384-chain.pem'), (await r.ctx.authority.chain('issuing')).map((d) => pemEncode('CERTIFICATE', d)).join(''));
      const v = await run('openssl', ['verify', '-x509_strict', '-CAfile', f('p384-chain.pem'), f('p384-dev.pem')]);
      assert.match(v.stdout, /OK/, v.stderr);
      assert.match(parseCertificate(c.der).signatureAlgorithm, /1\.2\.840\.10045\.4\.3\.3|SHA384/i);
    } finally {
      await r.ctx.close();
    }
  });
});

function run2(args: string[]): string {
  const r = spawn2('openssl', args);
  return r.out;
}

function spawn2(cmd: string, args: string[], env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...token.env, ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
