/**
 * A firmware signer whose key lives in a PKCS#11 token (SoftHSM2): the key
 * is generated inside it (sensitive, never extractable, sign only, as
 * pkcs11-tool shows), the token signs the CMS signed attributes, and
 * `openssl cms -verify` accepts the result over the image.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetpki, tempDir } from '../helpers/data_dir.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

const work = tempDir('fleetpki-fw-p11-');
const f = (n: string) => join(work, n);
const dir = join(work, 'data');
let token: TestToken;
const cli = (args: string[]) => fleetpki([...args, '--dir', dir], token.env);
const ok = (r: ReturnType<typeof fleetpki>, what: string) => {
  assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  return r;
};

before(() => {
  token = makeToken('fleet-fw');
  ok(fleetpki(['init', '--dir', dir, '--org', 'Token Fleet', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv, '--json'], token.env), 'init');
  ok(cli(['ca', 'create-intermediate', '--name', 'firmware']), 'create-intermediate');
  writeFileSync(f('root.pem'), cli(['ca', 'cert', '--root']).stdout);
  writeFileSync(f('fw.bin'), randomBytes(1024 * 1024));
});

after(() => {
  token?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('firmware signer in a PKCS#11 token', () => {
  // RSA token keys sign through the same Signer (a DigestInfo over CKM_RSA_PKCS): the PKCS#11 suite covers them.
  for (const alg of ['ecdsa-p384']) {
    it(`ok ${alg}: the key is made in the token, the token signs, openssl accepts`, () => {
      const name = `hsm-${alg.replace(/[^a-z0-9]/g, '')}`;
      const s = JSON.parse(ok(cli(['firmware', 'signer', 'create', '--name', name, '--key-algorithm', alg, '--json']), 'signer create').stdout);
      assert.equal(s.keyAlgorithm, alg);
      const objects = token.tool(['--login', '--pin', token.pin, '--list-objects', '--type', 'privkey']);
      assert.equal(objects.status, 0, objects.stderr);
      const mine = objects.stdout.split(/(?=Private Key Object)/).find((o) => o.includes(`firmware-${name}`));
      assert.ok(mine, objects.stdout);
      assert.match(mine, /Access:\s+sensitive, always sensitive, never extractable, local/);
      ok(cli(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'plc-9', '--version', '2.1.0', '--signer', name, '--out', f(`${name}.sig`)]), 'sign');
      const v = spawnSync('openssl', ['cms', '-verify', '-binary', '-content', f('fw.bin'), '-in', f(`${name}.sig`), '-inform', 'DER', '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null'], { encoding: 'utf8' });
      assert.equal(v.status, 0, v.stderr);
      ok(cli(['crl', '--ca', 'firmware', '--out', f('firmware.crl')]), 'crl');
      ok(cli(['crl', '--ca', 'root', '--out', f('root.crl')]), 'crl');
      ok(fleetpki(['firmware', 'verify', '--in', f('fw.bin'), '--sig', f(`${name}.sig`), '--ca-file', f('root.pem'), '--crl', f('firmware.crl'), '--crl', f('root.crl'), '--model', 'plc-9']), 'verify');
    });
  }
});
