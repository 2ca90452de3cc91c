/**
 * Signed firmware with the real `fleetpki` command and the OpenSSL CLI, both
 * ways: `openssl cms -verify -binary -content IMAGE -CAfile root.pem
 * -purpose any` accepts what `fleetpki firmware sign` writes, and
 * `fleetpki firmware verify` accepts what `openssl cms -sign` makes with a
 * code-signing certificate of our CA (without a manifest: only when told the
 * version out of band). Every refusal reaches the shell as exit status 3.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, fleetpki, makeDataDir, tempDir, type TestDataDir } from '../helpers/data_dir.js';

let d: TestDataDir;
let work: string;
const f = (n: string) => join(work, n);
const cli = (args: string[], env: Record<string, string | undefined> = {}) => fleetpki([...args, '--dir', d.dir], env);
const nodir = (args: string[], env: Record<string, string | undefined> = {}) => fleetpki(args, env);

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
const ok = (r: { status: number | null; stderr?: string; out?: string }, what: string) => assert.equal(r.status, 0, `${what}: ${r.stderr ?? r.out}`);
const opensslVerify = (img: string, sig: string, form = 'DER') => openssl(['cms', '-verify', '-binary', '-content', f(img), '-in', f(sig), '-inform', form, '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
/** Our verifier with the CA's own CRLs. */
const verify = (img: string, sig: string, extra: string[] = []) => nodir(['firmware', 'verify', '--in', f(img), '--sig', f(sig), '--ca-file', f('root.pem'), '--crl', f('firmware.crl'), '--crl', f('root.crl'), ...extra]);

before(async () => {
  d = await makeDataDir({ org: 'Acme Devices' });
  work = tempDir('fleetpki-fw-openssl-');
  writeFileSync(f('fw.bin'), randomBytes(3 * 1024 * 1024 + 17));
  ok(cli(['ca', 'create-intermediate', '--name', 'firmware']), 'create-intermediate');
  ok(cli(['firmware', 'signer', 'create', '--name', 'release']), 'signer create');
  ok(cli(['firmware', 'signer', 'create', '--name', 'rsa', '--key-algorithm', 'rsa-3072']), 'signer create rsa');
  writeFileSync(f('root.pem'), cli(['ca', 'cert', '--root']).stdout);
  writeFileSync(f('chain.pem'), cli(['ca', 'cert', '--ca', 'firmware']).stdout);
  ok(cli(['crl', '--ca', 'firmware', '--out', f('firmware.crl')]), 'crl firmware');
  ok(cli(['crl', '--ca', 'root', '--out', f('root.crl')]), 'crl root');
  // A code-signing certificate from our CA for a key openssl made.
  ok(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('cs.key'), '-subj', '/O=Acme Devices/CN=Build Server', '-out', f('cs.csr')]), 'openssl req');
  ok(cli(['cert', 'issue', '--csr', f('cs.csr'), '--profile', 'code-signing', '--ca', 'firmware', '--out', f('cs.pem')]), 'cert issue');
  ok(cli(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'sensor-x', '--version', '1.4.2', '--min-version', '1.3.0', '--expires', '365d', '--signer', 'release', '--out', f('fw.sig')]), 'firmware sign');
});

after(async () => {
  await d.cleanup();
});

describe('openssl cms -verify accepts fleetpki signatures', () => {
  it('ok ECDSA P-256 (DER); the control: a changed image fails', () => {
    ok(opensslVerify('fw.bin', 'fw.sig'), 'openssl cms -verify');
    const img = readFileSync(f('fw.bin'));
    img[img.length - 1] ^= 1;
    writeFileSync(f('fw-changed.bin'), img);
    assert.notEqual(opensslVerify('fw-changed.bin', 'fw.sig').status, 0);
  });

  it('ok RSA-3072 signer, PEM output', () => {
    ok(cli(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'sensor-x', '--version', '1.4.2', '--signer', 'rsa', '--pem', '--out', f('fw-rsa.pem')]), 'sign');
    assert.match(readFileSync(f('fw-rsa.pem'), 'utf8'), /^-----BEGIN CMS-----/);
    ok(opensslVerify('fw.bin', 'fw-rsa.pem', 'PEM'), 'openssl cms -verify');
    ok(verify('fw.bin', 'fw-rsa.pem', ['--model', 'sensor-x']), 'fleetpki firmware verify');
  });

  it('ok signed with a key file (--key/--cert/--chain), no data directory', () => {
    ok(nodir(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'sensor-x', '--version', '1.5.0', '--key', f('cs.key'), '--cert', f('cs.pem'), '--chain', f('chain.pem'), '--out', f('fw-keyfile.sig')]), 'sign --key');
    ok(opensslVerify('fw.bin', 'fw-keyfile.sig'), 'openssl');
    const r = verify('fw.bin', 'fw-keyfile.sig', ['--model', 'sensor-x', '--installed-version', '1.4.2', '--json']);
    ok(r, 'verify');
    assert.equal(JSON.parse(r.stdout).signer.subject, 'O=Acme Devices, CN=Build Server');
  });
});

describe('fleetpki firmware verify (the real command)', () => {
  it('ok accepted: exit 0, what was checked, and --json', () => {
    const r = verify('fw.bin', 'fw.sig', ['--model', 'sensor-x', '--installed-version', '1.3.9']);
    ok(r, 'verify');
    assert.match(r.stdout, /^result +ACCEPTED$/m);
    assert.match(r.stdout, /^rollback floor +1\.3\.0/m);
    const j = JSON.parse(verify('fw.bin', 'fw.sig', ['--model', 'sensor-x', '--json']).stdout);
    assert.equal(j.accepted, true);
    assert.equal(j.manifest.size, 3 * 1024 * 1024 + 17);
    assert.deepEqual(j.chain, ['O=Acme Devices, CN=release firmware signer', 'O=Acme Devices, CN=Acme Devices firmware', 'O=Acme Devices, CN=Acme Devices Root CA']);
  });

  it('ok without --model it says the model was not checked', () => {
    const r = verify('fw.bin', 'fw.sig');
    ok(r, 'verify');
    assert.match(r.stderr, /the model was not checked/);
  });

  const refusals: Array<{ name: string; img?: string; sig?: string; extra?: string[]; reason: string; prepare?: () => void }> = [
    { name: 'fail-changed-image', img: 'fw-changed.bin', reason: 'digest_mismatch' },
    { name: 'fail-rollback', extra: ['--installed-version', '1.4.2'], reason: 'rollback' },
    { name: 'fail-below-a-rollback-floor', extra: ['--installed-version', '1.0.0', '--rollback-floor', '2.0.0'], reason: 'rollback' },
    { name: 'fail-wrong-model', extra: ['--model', 'sensor-y'], reason: 'wrong_model' },
    { name: 'fail-no-crl', extra: ['--model', 'sensor-x'], reason: 'no_crl', sig: 'fw.sig' },
    { name: 'fail-garbage-signature', sig: 'garbage.sig', reason: 'malformed_signature', prepare: () => writeFileSync(f('garbage.sig'), randomBytes(900)) },
    { name: 'fail-truncated-signature', sig: 'short.sig', reason: 'malformed_signature', prepare: () => writeFileSync(f('short.sig'), readFileSync(f('fw.sig')).subarray(0, 500)) },
  ];
  for (const c of refusals) {
    it(`${c.name}: exit 3, firmware_rejected (${c.reason})`, () => {
      c.prepare?.();
      const r =
        c.reason === 'no_crl'
          ? nodir(['firmware', 'verify', '--in', f('fw.bin'), '--sig', f('fw.sig'), '--ca-file', f('root.pem'), ...(c.extra ?? [])])
          : verify(c.img ?? 'fw.bin', c.sig ?? 'fw.sig', c.extra ?? ['--model', 'sensor-x']);
      assert.equal(r.status, 3, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^fleetpki: firmware_rejected: firmware refused \\(${c.reason}\\): `));
    });
  }

  it('fail-bad arguments are exit 2, not a refusal', () => {
    const r = nodir(['firmware', 'verify', '--in', f('fw.bin'), '--sig', f('fw.sig')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--ca-file/);
  });
});

describe('fleetpki accepts signatures made by openssl cms -sign', () => {
  const osign = (out: string, extra: string[] = []) =>
    openssl(['cms', '-sign', '-binary', '-in', f('fw.bin'), '-signer', f('cs.pem'), '-inkey', f('cs.key'), '-certfile', f('chain.pem'), '-outform', 'DER', '-out', f(out), ...extra]);

  it('fail-without a manifest it is refused by default (no_manifest)', () => {
    ok(osign('os.sig'), 'openssl cms -sign');
    const r = verify('fw.bin', 'os.sig', ['--model', 'sensor-x']);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /\(no_manifest\)/);
  });

  it('ok --allow-unbound with the version given: accepted, said to be unbound; the other checks still apply', () => {
    const r = verify('fw.bin', 'os.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2', '--installed-version', '1.3.0']);
    ok(r, 'verify');
    assert.match(r.stdout, /^manifest +none: model and version given on the command line/m);
    const rollback = verify('fw.bin', 'os.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2', '--installed-version', '1.4.2']);
    assert.equal(rollback.status, 3);
    assert.match(rollback.stderr, /\(rollback\)/);
    const changed = verify('fw-changed.bin', 'os.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']);
    assert.equal(changed.status, 3);
    assert.match(changed.stderr, /\(digest_mismatch\)/);
  });

  it('ok -md sha384', () => {
    ok(osign('os384.sig', ['-md', 'sha384']), 'openssl');
    ok(verify('fw.bin', 'os384.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']), 'verify');
  });

  it('fail--md sha1 (unsupported_algorithm)', () => {
    ok(osign('os1.sig', ['-md', 'sha1']), 'openssl');
    const r = verify('fw.bin', 'os1.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /\(unsupported_algorithm\)/);
  });

  it('fail--noattr: no signed attributes, no signing time (malformed_signature)', () => {
    ok(osign('osnoattr.sig', ['-noattr']), 'openssl');
    const r = verify('fw.bin', 'osnoattr.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /\(malformed_signature\).*no signed attributes/);
  });

  it('fail-a self-made code-signing certificate (other key, other CA): untrusted', () => {
    ok(openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('self.key'), '-subj', '/CN=Mallory', '-days', '30', '-addext', 'extendedKeyUsage=codeSigning', '-out', f('self.pem')]), 'req -x509');
    ok(openssl(['cms', '-sign', '-binary', '-in', f('fw.bin'), '-signer', f('self.pem'), '-inkey', f('self.key'), '-outform', 'DER', '-out', f('self.sig')]), 'cms -sign');
    const r = verify('fw.bin', 'self.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /\(untrusted\)/);
  });

  it('fail-a TLS certificate of our CA (wrong EKU): wrong_purpose', () => {
    ok(openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('tls.key'), '-subj', '/CN=dev-1', '-out', f('tls.csr')]), 'req');
    ok(cli(['cert', 'issue', '--csr', f('tls.csr'), '--profile', 'device-tls', '--ca', 'firmware', '--out', f('tls.pem')]), 'issue');
    ok(openssl(['cms', '-sign', '-binary', '-in', f('fw.bin'), '-signer', f('tls.pem'), '-inkey', f('tls.key'), '-certfile', f('chain.pem'), '-outform', 'DER', '-out', f('tls.sig')]), 'cms -sign');
    const r = verify('fw.bin', 'tls.sig', ['--model', 'sensor-x', '--allow-unbound', '--version', '1.4.2']);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /\(wrong_purpose\)/);
    // fleetpki refuses to sign with it too.
    const s = nodir(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'sensor-x', '--version', '1.0.0', '--key', f('tls.key'), '--cert', f('tls.pem'), '--out', f('never.sig')]);
    assert.equal(s.status, 2);
    assert.match(s.stderr, /not a code-signing certificate/);
  });
});

describe('a revoked signer', () => {
  it('fail-after revocation and a new CRL every image it signed is refused; it signs no more', () => {
    const list = JSON.parse(cli(['firmware', 'signer', 'list', '--json']).stdout) as Array<{ name: string; serial: string }>;
    const serial = list.find((s) => s.name === 'release')!.serial;
    ok(cli(['cert', 'revoke', serial, '--reason', 'keyCompromise']), 'revoke');
    ok(cli(['crl', '--ca', 'firmware', '--new', '--out', f('firmware-2.crl')]), 'crl');
    const r = nodir(['firmware', 'verify', '--in', f('fw.bin'), '--sig', f('fw.sig'), '--ca-file', f('root.pem'), '--crl', f('firmware-2.crl'), '--crl', f('root.crl'), '--model', 'sensor-x']);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /\(revoked\)/);
    const s = cli(['firmware', 'sign', '--in', f('fw.bin'), '--model', 'sensor-x', '--version', '9.0.0', '--signer', 'release', '--out', f('never.sig')]);
    assert.equal(s.status, 2, s.stderr);
    assert.match(s.stderr, /policy_violation: firmware signer "release" is revoked/);
    assert.match(cli(['firmware', 'signer', 'list']).stdout, /^release +revoked/m);
  });
});

describe('--help', () => {
  for (const cmd of [['firmware'], ['firmware', 'signer'], ['firmware', 'signer', 'create'], ['firmware', 'signer', 'list'], ['firmware', 'sign'], ['firmware', 'verify'], ['firmware', 'show']]) {
    it(`fleetpki ${cmd.join(' ')} --help`, () => {
      const r = spawnSync(process.execPath, [BIN, ...cmd, '--help'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: fleetpki ${cmd.join(' ')} `));
    });
  }
  it('fleetpki firmware show prints the manifest and says it checked nothing', () => {
    const r = nodir(['firmware', 'show', '--sig', f('fw.sig')]);
    ok(r, 'show');
    assert.match(r.stderr, /NOT VERIFIED/);
    assert.match(r.stdout, /^version +1\.4\.2$/m);
    assert.match(r.stdout, /^min version +1\.3\.0$/m);
  });
});
