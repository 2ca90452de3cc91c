/**
 * An offline root in a token of its own: `init --root-pkcs11-token` makes the
 * root key in one SoftHSM2 token and the issuing CA key in another. With the
 * root token unplugged the issuing CA goes on signing, and everything that
 * needs the root is refused with a clear key_unavailable; plugged back in
 * for a ceremony, the root signs a new issuing CA and its CRL.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

const work = tempDir('fleetpki-p11-root-');
const f = (n: string) => join(work, n);
const dir = f('data');
const D = ['--dir', dir];
const ROOT_PIN = '654321';
let token: TestToken;
let root: { unplug(): void; plug(): void };
let env: Record<string, string>;

const ok = (r: ReturnType<typeof fleetpki>) => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r;
};
const cli = (args: string[], extra: Record<string, string> = {}) => fleetpki([...args, ...D], { ...env, ...extra });

before(() => {
  token = makeToken('fleet-ca');
  root = token.addToken('fleet-root', ROOT_PIN);
  env = { ...token.env, ROOT_PIN };
  ok(fleetpki(['init', ...D, '--org', 'Offline Root Fleet', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv, '--root-pkcs11-token', 'fleet-root', '--root-pkcs11-pin-env', 'ROOT_PIN'], env));
  writeFileSync(f('root.pem'), ok(cli(['ca', 'cert', '--root'])).stdout);
  writeFileSync(f('issuing.pem'), ok(cli(['ca', 'cert'])).stdout);
});

after(() => {
  token?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('an offline root in a PKCS#11 token of its own', () => {
  it('the root key is in the root token, the issuing key in the online token; the config names the root PIN variable only', () => {
    const cas = JSON.parse(ok(cli(['ca', 'list', '--json'])).stdout) as Array<{ name: string; keyUri: string }>;
    assert.match(cas.find((c) => c.name === 'root')!.keyUri, /^pkcs11:token=fleet-root;/);
    assert.match(cas.find((c) => c.name === 'issuing')!.keyUri, /^pkcs11:token=fleet-ca;/);
    const cfg = readFileSync(join(dir, 'fleetpki.json'), 'utf8');
    assert.deepEqual(JSON.parse(cfg).keyStore.extraTokens, [{ token: 'fleet-root', pinEnv: 'ROOT_PIN' }]);
    assert.ok(!cfg.includes(ROOT_PIN));
    const inRoot = (label: string) => spawnTool(label, label === 'fleet-root' ? ROOT_PIN : token.pin);
    assert.match(inRoot('fleet-root'), /label:\s+root-ca-/);
    assert.doesNotMatch(inRoot('fleet-root'), /issuing-ca-/);
    assert.doesNotMatch(inRoot('fleet-ca'), /root-ca-/);
  });

  it('before the root goes offline, it signs a long-lived CRL', () => {
    ok(cli(['crl', '--ca', 'root', '--new', '--validity-days', '365', '--out', f('root.crl')]));
    const v = runOpenssl(['crl', '-inform', 'DER', '-in', f('root.crl'), '-CAfile', f('root.pem'), '-noout']);
    assert.match(v.stdout + v.stderr, /verify OK/);
  });

  it('root token unplugged, no root PIN: the issuing CA still issues; the chain verifies with the root CRL', () => {
    root.unplug();
    const { csrPath } = opensslCsr(work, 'dev-1');
    ok(cli(['cert', 'issue', '--csr', csrPath, '--profile', 'device-tls', '--out', f('dev-1.pem')], { ROOT_PIN: '' }));
    ok(cli(['crl', '--ca', 'issuing', '--new', '--out', f('issuing.crl')], { ROOT_PIN: '' }));
    for (const c of ['root', 'issuing']) runOpenssl(['crl', '-inform', 'DER', '-in', f(`${c}.crl`), '-out', f(`${c}.crl.pem`)]);
    const v = runOpenssl(['verify', '-crl_check_all', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), '-CRLfile', f('root.crl.pem'), '-CRLfile', f('issuing.crl.pem'), f('dev-1.pem')]);
    assert.match(v.stdout, /dev-1.pem: OK/, v.stderr);
  });

  const refused: Array<[string, string[]]> = [
    ['fail-root-crl-while-offline', ['crl', '--ca', 'root', '--new']],
    ['fail-new-issuing-ca-while-offline', ['ca', 'create-intermediate', '--name', 'line-1']],
  ];
  for (const [name, args] of refused) {
    it(`${name}: key_unavailable naming the missing root token; nothing changes`, () => {
      const before = ok(cli(['ca', 'list', '--json'])).stdout;
      const r = cli(args);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^fleetpki: key_unavailable: no PKCS#11 token labelled "fleet-root"/);
      assert.equal(ok(cli(['ca', 'list', '--json'])).stdout, before);
    });
  }

  it('ceremony: the root token plugged back in signs a new issuing CA, whose certificates verify', () => {
    root.plug();
    const ca = JSON.parse(ok(cli(['ca', 'create-intermediate', '--name', 'line-1', '--json'])).stdout);
    assert.match(ca.keyUri, /^pkcs11:token=fleet-ca;/, 'the new issuing key is online');
    writeFileSync(f('line-1.pem'), ca.pem);
    root.unplug();
    const { csrPath } = opensslCsr(work, 'dev-2');
    ok(cli(['cert', 'issue', '--ca', 'line-1', '--csr', csrPath, '--profile', 'device-tls', '--out', f('dev-2.pem')], { ROOT_PIN: '' }));
    assert.match(runOpenssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('line-1.pem'), f('dev-2.pem')]).stdout, /dev-2.pem: OK/);
    root.plug();
  });

  it('fail-root-pin-source-missing: init refuses --root-pkcs11-token without a PIN source, creates nothing', () => {
    const d = f('no-pin');
    const r = fleetpki(['init', '--dir', d, '--org', 'X', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv, '--root-pkcs11-token', 'fleet-root'], env);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^fleetpki: bad_request: give the root token's PIN source/);
  });
});

function spawnTool(label: string, pin: string): string {
  return token.tool(['--login', '--pin', pin, '--list-objects', '--type', 'privkey'], label).stdout;
}
