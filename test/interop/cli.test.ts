/**
 * The `fleetpki` command end to end, as a user runs it: real processes, a
 * real data directory, CSRs from the openssl CLI, results checked with
 * openssl and GnuTLS certtool.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { BIN, fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';

const work = tempDir('fleetpki-cli-');
const dir = join(work, 'data');
const D = ['--dir', dir];
let adminToken = '';

const json = (r: ReturnType<typeof fleetpki>) => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
};
const certCount = () => json(fleetpki(['cert', 'list', '--json', '--limit', '1000', ...D])).length;
const file = (name: string) => join(work, name);

function certtoolVerify(chainPems: string[]): string {
  const f = file(`chain-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(f, chainPems.join(''));
  return spawnSync('certtool', ['--verify-chain', '--infile', f], { encoding: 'utf8' }).stdout;
}

before(() => {
  const r = fleetpki(['init', ...D, '--org', 'CLI Test Devices', '--json', '--http-listen', '127.0.0.1:18099']);
  adminToken = json(r).adminToken;
});

after(() => {
  spawnSync('rm', ['-rf', work]);
});

describe('fleetpki init', () => {
  it('creates config, store, encrypted keys and a passphrase file, owner-only', () => {
    for (const f of ['fleetpki.json', 'fleetpki.db', 'secrets/keystore-passphrase']) {
      assert.equal(statSync(join(dir, f)).mode & 0o077, 0, `${f} is owner-only`);
    }
    const cfg = JSON.parse(readFileSync(join(dir, 'fleetpki.json'), 'utf8'));
    assert.equal(cfg.org, 'CLI Test Devices');
    assert.equal(cfg.publicUrl, 'http://127.0.0.1:18099');
    assert.match(adminToken, /^fpk_/);
    const keys = spawnSync('ls', [join(dir, 'keys')], { encoding: 'utf8' }).stdout.trim().split('\n');
    // The two CA keys and the key one-time secrets are sealed to (CMP).
    assert.deepEqual(keys.map((k) => k.replace(/-[0-9a-f]{12}\.p8$/, '')).sort(), ['issuing-ca', 'root-ca', 'secret-sealing']);
    for (const k of keys) assert.match(readFileSync(join(dir, 'keys', k), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
  });

  it('fail-again: refuses to overwrite an existing data directory', () => {
    const r = fleetpki(['init', ...D, '--org', 'Other']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^fleetpki: already_exists: /);
  });

  it('fail-bad-algorithm: nothing is created', () => {
    const other = file('never');
    const r = fleetpki(['init', '--dir', other, '--org', 'X', '--key-algorithm', 'dsa-1024']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown key algorithm/);
    assert.equal(existsSync(other), false);
  });

  it('the root and issuing CA verify with openssl and certtool', () => {
    const root = fleetpki(['ca', 'cert', '--root', ...D]).stdout;
    const chain = fleetpki(['ca', 'cert', '--chain', ...D]).stdout;
    writeFileSync(file('root.pem'), root);
    writeFileSync(file('issuing.pem'), fleetpki(['ca', 'cert', ...D]).stdout);
    assert.match(runOpenssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('issuing.pem')]).stdout, /OK/);
    assert.match(certtoolVerify([chain]), /Chain verification output: Verified/);
    const cas = json(fleetpki(['ca', 'list', '--json', ...D]));
    assert.deepEqual(cas.map((c: { name: string }) => c.name).sort(), ['issuing', 'root']);
  });
});

describe('fleetpki cert', () => {
  let serial = '';

  it('issue from an openssl CSR; openssl and certtool accept it for TLS client auth', () => {
    const { csrPath } = opensslCsr(work, 'sensor-1', { subj: '/CN=sensor-1/serialNumber=SN-1', san: 'DNS:sensor-1.plant-a.example,URI:urn:fleetpki:domain:plant-a' });
    const r = json(fleetpki(['cert', 'issue', ...D, '--csr', csrPath, '--profile', 'device-tls', '--out', file('sensor-1.pem'), '--json']));
    serial = r.serial;
    assert.equal(r.subject, 'CN=sensor-1, serialNumber=SN-1');
    const v = runOpenssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', file('root.pem'), '-untrusted', file('issuing.pem'), file('sensor-1.pem')]);
    assert.match(v.stdout, /OK/, v.stderr);
    assert.match(certtoolVerify([readFileSync(file('sensor-1.pem'), 'utf8'), readFileSync(file('issuing.pem'), 'utf8'), readFileSync(file('root.pem'), 'utf8')]), /Chain verification output: Verified/);
  });

  it('show and list find it', () => {
    const shown = json(fleetpki(['cert', 'show', serial, '--json', ...D]));
    assert.equal(shown.serial, serial);
    assert.deepEqual(shown.extendedKeyUsage.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const pem = fleetpki(['cert', 'show', serial, '--pem', ...D]).stdout;
    assert.equal(pem, readFileSync(file('sensor-1.pem'), 'utf8'));
    const listed = json(fleetpki(['cert', 'list', '--json', '--profile', 'device-tls', ...D]));
    assert.ok(listed.some((c: { serial: string }) => c.serial === serial));
  });

  const refusals: Array<{ name: string; args: () => string[]; code: string }> = [
    { name: 'fail-garbage-csr', args: () => (writeFileSync(file('garbage.csr'), 'hello'), ['--csr', file('garbage.csr'), '--profile', 'device-tls']), code: 'bad_csr' },
    {
      name: 'fail-wrong-signature',
      args: () => {
        const { csrPath } = opensslCsr(work, 'tampered');
        const der = runOpenssl(['req', '-in', csrPath, '-outform', 'DER']);
        const bytes = Buffer.from(spawnSync('openssl', ['req', '-in', csrPath, '-outform', 'DER'], { encoding: 'buffer' }).stdout);
        assert.equal(der.status, 0);
        bytes[bytes.length - 5] ^= 0x01; // inside the signature value
        writeFileSync(file('tampered.der'), bytes);
        return ['--csr', file('tampered.der'), '--profile', 'device-tls'];
      },
      code: 'bad_signature',
    },
    { name: 'fail-rsa-1024', args: () => ['--csr', opensslCsr(work, 'small', { newkey: ['-newkey', 'rsa:1024'] }).csrPath, '--profile', 'device-tls'], code: 'bad_key' },
    { name: 'fail-ed25519-for-opcua', args: () => ['--csr', opensslCsr(work, 'ed', { newkey: ['-newkey', 'ed25519'] }).csrPath, '--profile', 'opcua-application', '--san', 'uri:urn:x'], code: 'bad_key' },
    { name: 'fail-san-outside-profile', args: () => ['--csr', opensslCsr(work, 'mail', { san: 'email:a@example.com' }).csrPath, '--profile', 'device-tls'], code: 'policy_violation' },
    { name: 'fail-otherName in the CSR', args: () => ['--csr', opensslCsr(work, 'other', { san: 'otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev@example' }).csrPath, '--profile', 'device-tls'], code: 'policy_violation' },
    // --san adds to the CSR's names: the otherName is refused there too, not silently dropped.
    { name: 'fail-otherName in the CSR with --san', args: () => ['--csr', opensslCsr(work, 'other2', { san: 'DNS:a.example,otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev@example' }).csrPath, '--profile', 'device-tls', '--san', 'dns:b.example'], code: 'policy_violation' },
    { name: 'fail-too-long', args: () => ['--csr', opensslCsr(work, 'long').csrPath, '--profile', 'device-tls', '--validity-days', '3000'], code: 'policy_violation' },
    { name: 'fail-missing-file', args: () => ['--csr', file('does-not-exist.csr'), '--profile', 'device-tls'], code: 'bad_request' },
  ];
  for (const c of refusals) {
    it(`${c.name}: exit 2, one clear line, nothing issued`, () => {
      const before = certCount();
      const r = fleetpki(['cert', 'issue', ...D, ...c.args()]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^fleetpki: ${c.code}: `));
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
      assert.equal(certCount(), before);
    });
  }

  it('ok---only-sans replaces the CSR\'s names, an otherName included', () => {
    const { csrPath } = opensslCsr(work, 'other3', { san: 'otherName:1.3.6.1.4.1.311.20.2.3;UTF8:dev@example' });
    const r = json(fleetpki(['cert', 'issue', ...D, '--csr', csrPath, '--profile', 'device-tls', '--only-sans', '--san', 'dns:only.example', '--json']));
    assert.deepEqual(r.sans, ['dns:only.example']);
  });

  it('revoke, then refuse to revoke twice', () => {
    const r = json(fleetpki(['cert', 'revoke', serial, '--reason', 'keyCompromise', '--invalidity-date', '2026-01-01T00:00:00Z', '--json', ...D]));
    assert.equal(r.status, 'revoked');
    assert.equal(r.invalidityDate, '2026-01-01T00:00:00.000Z');
    const again = fleetpki(['cert', 'revoke', serial, '--reason', 'superseded', ...D]);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already_revoked/);
    const bad = fleetpki(['cert', 'revoke', 'ffee', '--reason', 'superseded', ...D]);
    assert.match(bad.stderr, /not_found/);
    const reason = fleetpki(['cert', 'revoke', serial, '--reason', 'whatever', ...D]);
    assert.match(reason.stderr, /bad_request: "whatever" is not a revocation reason/);
  });
});

describe('a closed stdout (fleetpki cert list | head -3)', () => {
  /**
   * Runs the command with a stdout pipe whose reading end is closed before
   * the child can write, as `head` does once it has its lines (a real
   * `| head` only fails when the writer outlives it, so it is racy as a test).
   */
  function withClosedStdout(args: string[]): Promise<{ status: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      p.stdout.destroy();
      let stderr = '';
      p.stderr.on('data', (b) => (stderr += b));
      p.on('close', (status, signal) => resolve({ status, signal, stderr }));
    });
  }

  const commands: Array<[string, string[]]> = [
    ['cert list (a table, printLine)', ['cert', 'list']],
    ['cert list --json (printJson)', ['cert', 'list', '--json']],
    ['ca cert --chain (PEM)', ['ca', 'cert', '--chain']],
    ['audit list', ['audit', 'list']],
  ];
  for (const [name, args] of commands) {
    it(`${name}: exit 141 (128 + SIGPIPE), nothing on stderr`, async () => {
      const r = await withClosedStdout([...args, ...D]);
      assert.equal(r.signal, null);
      assert.equal(r.stderr, '', 'no EPIPE stack trace');
      assert.equal(r.status, 141);
    });
  }

  it('ok-an open stdout still gets everything and exit 0', () => {
    const r = fleetpki(['cert', 'list', ...D]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^SERIAL\s+STATUS/);
  });
});

describe('fleetpki token and audit', () => {
  it('token create prints the secret alone on stdout; list never shows it', () => {
    const r = fleetpki(['token', 'create', '--role', 'auditor', '--name', 'alice', ...D]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^fpk_[A-Za-z0-9_-]{43}\n$/);
    const list = fleetpki(['token', 'list', '--json', ...D]);
    assert.ok(!list.stdout.includes(r.stdout.trim()));
    assert.equal(fleetpki(['token', 'create', '--role', 'root', ...D]).status, 2);
  });

  it('audit verify passes, then catches an entry edited in the SQLite file', () => {
    const ok = json(fleetpki(['audit', 'verify', '--json', ...D]));
    assert.equal(ok.ok, true);
    assert.ok(ok.entries >= 6);
    const db = new Database(join(dir, 'fleetpki.db'));
    db.prepare("UPDATE audit_log SET actor = 'cli:mallory' WHERE seq = 3").run();
    db.close();
    const broken = fleetpki(['audit', 'verify', ...D]);
    assert.equal(broken.status, 1);
    assert.match(broken.stdout, /AUDIT LOG BROKEN at entry 3/);
  });
});

describe('key ceremony: offline root', () => {
  const env = { FLEETPKI_EXPORT_PASSPHRASE: 'a long export passphrase', FLEETPKI_ROOT_KEY_PASSPHRASE: 'a long export passphrase' };
  const keyFile = file('root-key.p8');

  it('export-root-key writes a key openssl opens and takes the root offline', () => {
    assert.match(fleetpki(['ca', 'export-root-key', '--out', file('short.p8'), ...D], { FLEETPKI_EXPORT_PASSPHRASE: 'short' }).stderr, /at least 12/);
    const r = fleetpki(['ca', 'export-root-key', '--out', keyFile, ...D], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(keyFile).mode & 0o077, 0);
    const pub = runOpenssl(['pkey', '-in', keyFile, '-passin', `pass:${env.FLEETPKI_EXPORT_PASSPHRASE}`, '-pubout']);
    assert.equal(pub.status, 0, pub.stderr);
    const rootPub = runOpenssl(['x509', '-in', file('root.pem'), '-noout', '-pubkey']).stdout;
    assert.equal(pub.stdout, rootPub, 'the exported key is the root key');
    const root = json(fleetpki(['ca', 'list', '--json', ...D])).find((c: { kind: string }) => c.kind === 'root');
    assert.equal(root.keyOnline, false);
    const left = spawnSync('ls', [join(dir, 'keys')], { encoding: 'utf8' }).stdout.trim().split('\n');
    assert.deepEqual(left.map((k) => k.replace(/-[0-9a-f]{12}\.p8$/, '')).sort(), ['issuing-ca', 'secret-sealing'], 'the root key is gone');
    const again = fleetpki(['ca', 'export-root-key', '--out', file('again.p8'), ...D], env);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /key_unavailable/);
  });

  it('create-intermediate needs the offline key and its passphrase', () => {
    const none = fleetpki(['ca', 'create-intermediate', '--name', 'sensors', ...D]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /key_unavailable: the key of CA "root" is offline/);
    const wrong = fleetpki(['ca', 'create-intermediate', '--name', 'sensors', '--root-key', keyFile, ...D], { FLEETPKI_ROOT_KEY_PASSPHRASE: 'not the passphrase' });
    assert.match(wrong.stderr, /cannot decrypt/);
    const ok = fleetpki(['ca', 'create-intermediate', '--name', 'sensors', '--root-key', keyFile, '--permit', 'dns:sensors.example.com', '--permit', 'ip:10.0.0.0/8', '--json', ...D], env);
    const ca = json(ok);
    assert.equal(ca.parent, 'root');
    writeFileSync(file('sensors.pem'), ca.pem);
    const text = runOpenssl(['x509', '-in', file('sensors.pem'), '-noout', '-text']).stdout;
    assert.match(text, /X509v3 Name Constraints: critical/);
    assert.match(text, /DNS:sensors\.example\.com/);
    assert.match(text, /IP:10\.0\.0\.0\/255\.0\.0\.0/);
    assert.match(runOpenssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('sensors.pem')]).stdout, /OK/);
  });

  it('ca cert --ca NAME prints that CA; --chain adds its issuers; --json the record', () => {
    const pem = fleetpki(['ca', 'cert', '--ca', 'sensors', ...D]);
    assert.equal(pem.status, 0, pem.stderr);
    assert.equal(pem.stdout, readFileSync(file('sensors.pem'), 'utf8'));
    assert.match(runOpenssl(['x509', '-noout', '-subject'], pem.stdout).stdout, /CN ?= ?CLI Test Devices sensors/);
    const chain = fleetpki(['ca', 'cert', '--ca', 'sensors', '--chain', ...D]).stdout;
    assert.equal(chain, pem.stdout + readFileSync(file('root.pem'), 'utf8'));
    const j = json(fleetpki(['ca', 'cert', '--ca', 'sensors', '--chain', '--json', ...D]));
    assert.equal(j.name, 'sensors');
    assert.equal(j.parent, 'root');
    assert.equal(j.pem, pem.stdout);
    assert.deepEqual(j.chain, [pem.stdout, readFileSync(file('root.pem'), 'utf8')]);
    assert.equal(json(fleetpki(['ca', 'cert', '--json', ...D])).name, 'issuing', 'without --ca: the default issuing CA');
    assert.equal(json(fleetpki(['ca', 'cert', '--root', '--json', ...D])).kind, 'root');
  });

  const badCaCert: Array<[string, string[], string]> = [
    ['fail-unknown CA', ['--ca', 'nope'], 'not_found'],
    ['fail---root with --ca', ['--root', '--ca', 'sensors'], 'bad_request'],
  ];
  for (const [name, args, code] of badCaCert) {
    it(`ca cert ${name}: exit 2, one line, nothing on stdout`, () => {
      const r = fleetpki(['ca', 'cert', ...args, ...D]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^fleetpki: ${code}: [^\n]+\n$`));
      assert.equal(r.stdout, '');
    });
  }

  it('the new CA issues inside its name constraints and refuses outside', () => {
    const inside = opensslCsr(work, 'in', { san: 'DNS:t1.sensors.example.com,IP:10.1.2.3' });
    const r = fleetpki(['cert', 'issue', ...D, '--csr', inside.csrPath, '--profile', 'device-tls', '--ca', 'sensors', '--out', file('in.pem')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(runOpenssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), '-untrusted', file('sensors.pem'), file('in.pem')]).stdout, /OK/);
    assert.match(certtoolVerify([readFileSync(file('in.pem'), 'utf8'), readFileSync(file('sensors.pem'), 'utf8'), readFileSync(file('root.pem'), 'utf8')]), /Chain verification output: Verified/);
    const outside = opensslCsr(work, 'out', { san: 'DNS:evil.example.org' });
    const bad = fleetpki(['cert', 'issue', ...D, '--csr', outside.csrPath, '--profile', 'device-tls', '--ca', 'sensors']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /issuer_name_constraints/);
  });
});

describe('--help', () => {
  const commands = [[], ['init'], ['serve'], ['ca'], ['ca', 'list'], ['ca', 'cert'], ['ca', 'export-root-key'], ['ca', 'create-intermediate'], ['cert'], ['cert', 'issue'], ['cert', 'list'], ['cert', 'show'], ['cert', 'revoke'], ['token'], ['token', 'create'], ['token', 'list'], ['token', 'revoke'], ['audit'], ['audit', 'list'], ['audit', 'verify']];
  it('every command explains itself and exits 0', () => {
    for (const c of commands) {
      const r = fleetpki([...c, '--help']);
      assert.equal(r.status, 0, `${c.join(' ')} --help`);
      assert.match(r.stdout, /^Usage: fleetpki/, c.join(' '));
    }
  });
  it('an unknown command fails with usage', () => {
    const r = fleetpki(['frobnicate']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /unknown command/);
  });
});

describe('the CLI keeps working while the server runs', () => {
  it('issues from the CLI while the API issues concurrently', async () => {
    const server = spawn(process.execPath, [BIN, 'serve', ...D, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      const url = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
        server.stderr.on('data', (b) => {
          err += b;
          const m = /admin API\s+(https:\/\/\S+)\/api\/v1/.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(m[1]);
          }
        });
      });
      const csr = opensslCsr(work, 'api-dev');
      const api = (async () => {
        const { request } = await import('node:https');
        return new Promise<number>((resolve, reject) => {
          const req = request(`${url}/api/v1/certificates`, { method: 'POST', ca: readFileSync(file('root.pem')), headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          });
          req.on('error', reject);
          req.end(JSON.stringify({ csr: csr.csrPem, profile: 'device-tls' }));
        });
      })();
      const cli = new Promise<number>((resolve) => {
        const p = spawn(process.execPath, [BIN, 'cert', 'issue', ...D, '--csr', opensslCsr(work, 'cli-dev').csrPath, '--profile', 'device-tls', '--out', file('cli-dev.pem')]);
        p.on('exit', (code) => resolve(code ?? -1));
      });
      const [apiStatus, cliStatus] = await Promise.all([api, cli]);
      assert.equal(apiStatus, 201, 'the API issued over HTTPS verified with only the root certificate');
      assert.equal(cliStatus, 0);
    } finally {
      server.kill('SIGTERM');
    }
  });
});
