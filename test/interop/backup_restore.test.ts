/**
 * `fleetpki backup` and `restore` as an operator runs them: a backup taken
 * while another connection holds a write transaction, the directory wiped,
 * restored, and the CA issuing again with its old certificates still
 * verifying (openssl); wrong passphrases and damaged files refused with
 * nothing written; a PKCS#11 data directory backs up without its token keys.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

const work = tempDir('fleetpki-backup-');
const f = (n: string) => join(work, n);
const dir = f('data');
const PASS = { FLEETPKI_BACKUP_PASSPHRASE: 'correct horse battery staple' };
const ok = (r: ReturnType<typeof fleetpki>) => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r;
};
const issue = (d: string, name: string, env: Record<string, string> = {}) => {
  const { csrPath } = opensslCsr(work, name);
  return ok(fleetpki(['cert', 'issue', '--dir', d, '--csr', csrPath, '--profile', 'device-tls', '--out', f(`${name}.pem`), '--json'], env));
};

let token: TestToken | undefined;

before(() => {
  ok(fleetpki(['init', '--dir', dir, '--org', 'Backup Fleet']));
  writeFileSync(f('root.pem'), ok(fleetpki(['ca', 'cert', '--root', '--dir', dir])).stdout);
  writeFileSync(f('issuing.pem'), ok(fleetpki(['ca', 'cert', '--dir', dir])).stdout);
  issue(dir, 'before-backup');
});

after(() => {
  token?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('fleetpki backup and restore', () => {
  it('backs up online while another connection holds an open write transaction; the file is encrypted', () => {
    const db = new Database(join(dir, 'fleetpki.db'));
    db.pragma('busy_timeout = 5000');
    db.exec('begin immediate');
    db.prepare("insert into audit_log (seq, at, actor, action, details, prev_hash, hash) values (999999, 0, 'test', 'uncommitted', '{}', '', '')").run();
    try {
      ok(fleetpki(['backup', '--dir', dir, '--out', f('b1.fpb')], PASS));
    } finally {
      db.exec('rollback');
      db.close();
    }
    const bytes = readFileSync(f('b1.fpb'));
    assert.equal(bytes.subarray(0, 16).toString(), 'FLEETPKI-BACKUP\n');
    for (const needle of ['BEGIN ENCRYPTED PRIVATE KEY', 'SQLite format 3', 'Backup Fleet Root CA']) assert.equal(bytes.includes(Buffer.from(needle)), false, `${needle} is not in clear`);
    assert.match(fleetpki(['backup', '--dir', dir, '--out', f('b1.fpb')], PASS).stderr, /already_exists/);
  });

  it('wipe, restore: the CA issues again, old certificates verify, the audit chain is intact, the uncommitted write is absent', () => {
    rmSync(dir, { recursive: true, force: true });
    const r = JSON.parse(ok(fleetpki(['restore', '--dir', dir, '--in', f('b1.fpb'), '--json'], PASS)).stdout);
    assert.deepEqual(r.cas.map((c: { name: string }) => c.name).sort(), ['issuing', 'root']);
    assert.ok(r.files.includes('fleetpki.db') && r.files.includes('fleetpki.json') && r.files.some((p: string) => p.startsWith('keys/')));
    assert.equal(ok(fleetpki(['ca', 'cert', '--root', '--dir', dir])).stdout, readFileSync(f('root.pem'), 'utf8'));
    const chainArgs = ['verify', '-x509_strict', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem')];
    assert.match(runOpenssl([...chainArgs, f('before-backup.pem')]).stdout, /OK/);
    issue(dir, 'after-restore');
    assert.match(runOpenssl([...chainArgs, f('after-restore.pem')]).stdout, /OK/);
    ok(fleetpki(['audit', 'verify', '--dir', dir]));
    const db = new Database(join(dir, 'fleetpki.db'), { readonly: true });
    assert.equal((db.prepare("select count(*) n from audit_log where action = 'uncommitted'").get() as { n: number }).n, 0);
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    db.close();
  });

  const refusals: Array<{ name: string; args: () => string[]; env?: Record<string, string>; code: string; exit: number; detail: RegExp }> = [
    { name: 'fail-wrong-passphrase', args: () => ['--in', f('b1.fpb')], env: { FLEETPKI_BACKUP_PASSPHRASE: 'not the right passphrase' }, code: 'unauthorized', exit: 1, detail: /wrong backup passphrase/ },
    {
      name: 'fail-damaged-file',
      args: () => {
        const b = readFileSync(f('b1.fpb'));
        b[b.length - 100] ^= 1;
        writeFileSync(f('damaged.fpb'), b);
        return ['--in', f('damaged.fpb')];
      },
      code: 'bad_request',
      exit: 2,
      detail: /damaged/,
    },
    { name: 'fail-not-a-backup', args: () => (writeFileSync(f('junk.fpb'), 'hello world, this is not a backup at all'), ['--in', f('junk.fpb')]), code: 'bad_request', exit: 2, detail: /not a fleetpki backup/ },
    { name: 'fail-missing-file', args: () => ['--in', f('nothing.fpb')], code: 'bad_request', exit: 2, detail: /cannot read the backup/ },
    { name: 'fail-short-passphrase', args: () => ['--in', f('b1.fpb')], env: { FLEETPKI_BACKUP_PASSPHRASE: 'short' }, code: 'unauthorized', exit: 1, detail: /wrong backup passphrase/ },
  ];
  for (const c of refusals) {
    it(`${c.name}: refused with one line, nothing restored`, () => {
      const target = f(`restore-${c.name}`);
      const r = fleetpki(['restore', '--dir', target, ...c.args()], c.env ?? PASS);
      assert.equal(r.status, c.exit, r.stderr);
      assert.match(r.stderr, new RegExp(`^fleetpki: ${c.code}: `));
      assert.match(r.stderr, c.detail);
      assert.equal(r.stderr.trim().split('\n').length, 1);
      assert.equal(existsSync(target), false);
      assert.deepEqual(readdirSync(work).filter((n) => n.startsWith('.fleetpki-restore-')), [], 'no staging left behind');
    });
  }

  it('fail-restore-over-a-data-directory: already_exists, the directory is untouched', () => {
    const before = readFileSync(join(dir, 'fleetpki.db'));
    const r = fleetpki(['restore', '--dir', dir, '--in', f('b1.fpb')], PASS);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already_exists/);
    assert.deepEqual(readFileSync(join(dir, 'fleetpki.db')), before);
  });

  it('--no-secrets leaves the key store passphrase out: the restored CA signs only once it is given', () => {
    ok(fleetpki(['backup', '--dir', dir, '--out', f('b2.fpb'), '--no-secrets'], PASS));
    const d2 = f('restored-no-secrets');
    ok(fleetpki(['restore', '--dir', d2, '--in', f('b2.fpb')], PASS));
    assert.equal(existsSync(join(d2, 'secrets')), false);
    const { csrPath } = opensslCsr(work, 'no-secret');
    const r = fleetpki(['cert', 'issue', '--dir', d2, '--csr', csrPath, '--profile', 'device-tls']);
    assert.match(r.stderr, /key_unavailable/);
    issue(d2, 'with-passphrase', { FLEETPKI_KEYSTORE_PASSPHRASE_FILE: join(dir, 'secrets', 'keystore-passphrase') });
  });

  it('a PKCS#11 data directory: the backup holds no key; restored, it signs with the keys still in the token', () => {
    token = makeToken('backup-token');
    const d = f('p11');
    ok(fleetpki(['init', '--dir', d, '--org', 'Token Backup', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv], token.env));
    const r = JSON.parse(ok(fleetpki(['backup', '--dir', d, '--out', f('p11.fpb'), '--json'], { ...token.env, ...PASS })).stdout);
    assert.deepEqual(r.files.sort(), ['fleetpki.db', 'fleetpki.json']);
    rmSync(d, { recursive: true, force: true });
    ok(fleetpki(['restore', '--dir', d, '--in', f('p11.fpb')], { ...token.env, ...PASS }));
    issue(d, 'p11-after-restore', token.env);
  });
});
