/**
 * `fleetpki init` options through the real CLI, with the resulting CA
 * certificates read by the openssl CLI: key algorithm, subjects, validity,
 * where the data directory goes without --dir, and the key store passphrase
 * sources and their precedence (docs/data-directory.md).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';

const work = tempDir('fleetpki-init-');
const file = (...p: string[]) => join(work, ...p);
const DAY = 86_400_000;

type Run = ReturnType<typeof fleetpki>;
const ok = (r: Run): Run => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r;
};
const json = (r: Run) => JSON.parse(ok(r).stdout);
/** A failed command: the exit status and one line "fleetpki: code: detail", no stack trace. */
function failed(r: Run, status: number, code: string, re?: RegExp): void {
  assert.equal(r.status, status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^fleetpki: ${code}: [^\\n]+\\n$`));
  if (re) assert.match(r.stderr, re);
}

/** No passphrase variables from the environment the tests run in. */
const NO_PASS = { FLEETPKI_KEYSTORE_PASSPHRASE: undefined, FLEETPKI_KEYSTORE_PASSPHRASE_FILE: undefined };

/** `init` into a new directory; returns the directory and the PEM files of both CAs. */
function init(name: string, args: string[] = [], env: Record<string, string | undefined> = {}): { dir: string; root: string; issuing: string; out: Record<string, unknown> } {
  const dir = file(name);
  const out = json(fleetpki(['init', '--dir', dir, '--org', 'Init Test', '--json', ...args], { ...NO_PASS, ...env }));
  const root = file(`${name}-root.pem`);
  const issuing = file(`${name}-issuing.pem`);
  writeFileSync(root, ok(fleetpki(['ca', 'cert', '--root', '--dir', dir])).stdout);
  writeFileSync(issuing, ok(fleetpki(['ca', 'cert', '--dir', dir])).stdout);
  return { dir, root, issuing, out };
}

function x509(pem: string, ...args: string[]): string {
  const r = runOpenssl(['x509', '-in', pem, '-noout', ...args]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** notBefore and notAfter as openssl reads them. */
function dates(pem: string): { notBefore: number; notAfter: number } {
  const out = x509(pem, '-dates', '-dateopt', 'iso_8601');
  const get = (k: string) => Date.parse(new RegExp(`${k}=(\\S+ \\S+)`).exec(out)![1].replace(' ', 'T'));
  return { notBefore: get('notBefore'), notAfter: get('notAfter') };
}

const subject = (pem: string, which: 'subject' | 'issuer' = 'subject') => x509(pem, `-${which}`, '-nameopt', 'RFC2253').trim().replace(/^\w+=/, '');

before(() => {
  mkdirSync(file('cwd'), { recursive: true });
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('init --key-algorithm', () => {
  const algs: Array<{ alg: string; key: RegExp; sig: RegExp }> = [
    { alg: 'ecdsa-p384', key: /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-384/, sig: /Signature Algorithm: ecdsa-with-SHA384/ },
    { alg: 'rsa-3072', key: /Public Key Algorithm: rsaEncryption[\s\S]*Public-Key: \(3072 bit\)/, sig: /Signature Algorithm: sha256WithRSAEncryption/ },
    { alg: 'rsa-4096', key: /Public Key Algorithm: rsaEncryption[\s\S]*Public-Key: \(4096 bit\)/, sig: /Signature Algorithm: sha256WithRSAEncryption/ },
    { alg: 'ed25519', key: /Public Key Algorithm: ED25519/, sig: /Signature Algorithm: ED25519/ },
  ];
  for (const c of algs) {
    it(`ok-${c.alg}: both CA keys and signatures of that type; openssl verifies the chain; the key file is that key`, () => {
      const t = init(`alg-${c.alg}`, ['--key-algorithm', c.alg]);
      for (const pem of [t.root, t.issuing]) {
        const text = x509(pem, '-text');
        assert.match(text, c.key);
        assert.match(text, c.sig);
      }
      const v = runOpenssl(['verify', '-x509_strict', '-CAfile', t.root, t.issuing]);
      assert.match(v.stdout, /: OK/, v.stderr);
      // The encrypted PKCS#8 in the key store holds the root's key.
      const rootKey = readdirSync(join(t.dir, 'keys')).find((f) => f.startsWith('root-ca-'))!;
      const pub = runOpenssl(['pkey', '-in', join(t.dir, 'keys', rootKey), '-passin', `file:${join(t.dir, 'secrets', 'keystore-passphrase')}`, '-pubout']);
      assert.equal(pub.status, 0, pub.stderr);
      assert.equal(pub.stdout, x509(t.root, '-pubkey'));
      const cas = json(fleetpki(['ca', 'list', '--json', '--dir', t.dir]));
      assert.deepEqual(cas.map((x: { keyAlgorithm: string }) => x.keyAlgorithm), [c.alg, c.alg]);
    });
  }

  it('ok-without the option: ecdsa-p256', () => {
    const t = init('alg-default');
    assert.match(x509(t.root, '-text'), /NIST CURVE: P-256/);
    assert.match(x509(t.issuing, '-text'), /Signature Algorithm: ecdsa-with-SHA256/);
  });
});

describe('init --root-subject, --issuing-subject, --*-validity-days', () => {
  let t: ReturnType<typeof init>;
  let started: number;
  before(() => {
    started = Date.now();
    t = init('named', ['--root-subject', 'O=Acme Devices, OU=PKI, CN=Acme Root R1', '--issuing-subject', '/O=Acme Devices/OU=Sensors/CN=Acme Sensors CA 1', '--root-validity-days', '9000', '--issuing-validity-days', '400']);
  });

  it('ok-the subjects as given, most significant first; the issuing CA names the root as issuer', () => {
    // RFC 2253 prints the most significant attribute last.
    assert.equal(subject(t.root), 'CN=Acme Root R1,OU=PKI,O=Acme Devices');
    assert.equal(subject(t.root, 'issuer'), 'CN=Acme Root R1,OU=PKI,O=Acme Devices');
    assert.equal(subject(t.issuing), 'CN=Acme Sensors CA 1,OU=Sensors,O=Acme Devices');
    assert.equal(subject(t.issuing, 'issuer'), subject(t.root));
    assert.deepEqual(Object.fromEntries((t.out.cas as Array<{ kind: string; subject: string }>).map((c) => [c.kind, c.subject])), {
      root: 'O=Acme Devices, OU=PKI, CN=Acme Root R1',
      issuing: 'O=Acme Devices, OU=Sensors, CN=Acme Sensors CA 1',
    });
  });

  it('ok-the lifetimes asked for, from now (notBefore backdated 5 minutes)', () => {
    for (const [pem, days] of [
      [t.root, 9000],
      [t.issuing, 400],
    ] as const) {
      const { notBefore, notAfter } = dates(pem);
      assert.equal(notAfter - notBefore, days * DAY + 300_000, pem);
      assert.ok(Math.abs(notAfter - (started + days * DAY)) < 120_000, `${pem} notAfter ${new Date(notAfter).toISOString()}`);
    }
  });

  it('ok-the root, valid past 2050, has notAfter as GeneralizedTime; the issuing CA UTCTime (RFC 5280 §4.1.2.5)', () => {
    assert.ok(new Date(dates(t.root).notAfter).getUTCFullYear() >= 2050);
    const root = runOpenssl(['asn1parse', '-in', t.root]).stdout;
    assert.match(root, /prim: UTCTIME\s+:\d{12}Z\n.*prim: GENERALIZEDTIME\s+:20[5-9]\d{11}Z/);
    const issuing = runOpenssl(['asn1parse', '-in', t.issuing]).stdout;
    assert.match(issuing, /prim: UTCTIME\s+:\d{12}Z\n.*prim: UTCTIME\s+:\d{12}Z/);
    assert.doesNotMatch(issuing, /GENERALIZEDTIME/);
    assert.match(runOpenssl(['verify', '-x509_strict', '-CAfile', t.root, t.issuing]).stdout, /: OK/);
  });

  it('ok-an issuing CA asked to outlive the root ends with the root', () => {
    const c = init('capped', ['--root-validity-days', '30', '--issuing-validity-days', '3650']);
    assert.equal(dates(c.issuing).notAfter, dates(c.root).notAfter);
  });

  const bad: Array<{ name: string; args: string[]; re: RegExp }> = [
    { name: 'fail-unknown key algorithm', args: ['--key-algorithm', 'rsa-1024'], re: /unknown key algorithm "rsa-1024"/ },
    { name: 'fail-validity 0', args: ['--root-validity-days', '0'], re: /not a positive whole number/ },
    { name: 'fail-validity not a number', args: ['--issuing-validity-days', 'ten'], re: /not a positive whole number/ },
    { name: 'fail-subject without TYPE=value', args: ['--root-subject', 'Acme Root'], re: /expected TYPE=value/ },
    { name: 'fail-unknown subject attribute', args: ['--issuing-subject', 'O=Acme, XX=1, CN=CA'], re: /unknown name attribute "XX"/ },
  ];
  for (const c of bad) {
    it(`${c.name}: exit 2, nothing created`, () => {
      const dir = file(`bad-${c.name.replace(/\W+/g, '-')}`);
      failed(fleetpki(['init', '--dir', dir, '--org', 'X', ...c.args], NO_PASS), 2, 'bad_request', c.re);
      assert.equal(existsSync(dir), false);
    });
  }
});

describe('docs/data-directory.md', () => {
  const doc = readFileSync(new URL('../../docs/data-directory.md', import.meta.url), 'utf8');
  const section = doc.slice(doc.indexOf('## fleetpki.json'));

  it('ok-its fleetpki.json is exactly what init --org "Acme Devices" writes', () => {
    const sample = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(section)![1]);
    const t = init('doc-sample', [], {});
    const written = JSON.parse(readFileSync(join(t.dir, 'fleetpki.json'), 'utf8'));
    assert.deepEqual(sample, { ...written, org: 'Acme Devices' });
  });

  it('ok-its table explains every key of it', () => {
    const sample = JSON.parse(/```json\n([\s\S]*?)\n```/.exec(section)![1]) as Record<string, unknown>;
    const rows = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
    const explained = (k: string) => rows.some((r) => r === k || r === `${k.split('.')[0]}.*`);
    for (const [k, v] of Object.entries(sample)) {
      if (['version', 'org'].includes(k)) continue;
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length && k !== 'profiles') {
        for (const sub of Object.keys(v)) if (!(k === 'keyStore' && sub === 'type')) assert.ok(explained(`${k}.${sub}`), `${k}.${sub} is in the table`);
      } else assert.ok(explained(k), `${k} is in the table`);
    }
  });
});

describe('where init puts the data directory', () => {
  const cases: Array<{ name: string; cwd: string; env: Record<string, string | undefined>; dirArg?: string; expect: string; notThere?: string[] }> = [
    { name: 'ok-$FLEETPKI_DIR without --dir', cwd: 'cwd-env', env: { FLEETPKI_DIR: file('from-env') }, expect: file('from-env'), notThere: [file('cwd-env', 'fleetpki-data')] },
    { name: 'ok-./fleetpki-data in the working directory without either', cwd: 'cwd-none', env: { FLEETPKI_DIR: undefined }, expect: file('cwd-none', 'fleetpki-data') },
    { name: 'ok-an empty $FLEETPKI_DIR counts as unset', cwd: 'cwd-empty', env: { FLEETPKI_DIR: '' }, expect: file('cwd-empty', 'fleetpki-data') },
    { name: 'ok---dir wins over $FLEETPKI_DIR', cwd: 'cwd-arg', env: { FLEETPKI_DIR: file('not-this') }, dirArg: file('from-arg'), expect: file('from-arg'), notThere: [file('not-this'), file('cwd-arg', 'fleetpki-data')] },
    { name: 'ok-a relative --dir is relative to the working directory', cwd: 'cwd-rel', env: { FLEETPKI_DIR: undefined }, dirArg: 'sub/pki', expect: file('cwd-rel', 'sub', 'pki') },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const cwd = file(c.cwd);
      mkdirSync(cwd, { recursive: true });
      const env = { ...NO_PASS, ...c.env };
      const out = json(fleetpki(['init', '--org', 'Where', '--json', ...(c.dirArg ? ['--dir', c.dirArg] : [])], env, undefined, cwd));
      assert.equal(out.dir, c.expect);
      assert.ok(existsSync(join(c.expect, 'fleetpki.json')));
      for (const p of c.notThere ?? []) assert.equal(existsSync(p), false, `${p} is not created`);
      // Later commands find it the same way.
      const cas = json(fleetpki(['ca', 'list', '--json', ...(c.dirArg ? ['--dir', c.dirArg] : [])], env, undefined, cwd));
      assert.equal(cas.length, 2);
    });
  }

  it('fail-a command without a data directory says where it looked', () => {
    const cwd = file('cwd-nothing');
    mkdirSync(cwd, { recursive: true });
    failed(fleetpki(['ca', 'list'], { FLEETPKI_DIR: undefined }, undefined, cwd), 2, 'not_found', new RegExp(`no fleetpki data directory at ${file('cwd-nothing', 'fleetpki-data')}`));
  });
});

describe('the key store passphrase', () => {
  /** Issues one certificate: the issuing CA key must be decrypted. */
  const issue = (dir: string, env: Record<string, string | undefined>) => fleetpki(['cert', 'issue', '--dir', dir, '--csr', opensslCsr(work, 'pp').csrPath, '--profile', 'device-tls', '--json'], { ...NO_PASS, ...env });
  const count = (dir: string) => json(fleetpki(['cert', 'list', '--json', '--dir', dir])).length;
  const keyFile = (dir: string) => join(dir, 'keys', readdirSync(join(dir, 'keys')).find((f) => f.startsWith('issuing-ca-'))!);

  describe('from $FLEETPKI_KEYSTORE_PASSPHRASE', () => {
    const PASS = 'env passphrase for the key store';
    let dir = '';
    before(() => {
      const t = init('pass-env', [], { FLEETPKI_KEYSTORE_PASSPHRASE: PASS });
      dir = t.dir;
      assert.equal(t.out.passphraseFile, null);
    });

    it('ok-init writes no passphrase file; openssl opens the keys with it; it signs', () => {
      assert.equal(existsSync(join(dir, 'secrets')), false);
      assert.equal(JSON.parse(readFileSync(join(dir, 'fleetpki.json'), 'utf8')).keyStore.passphraseFile, undefined);
      assert.equal(runOpenssl(['pkey', '-in', keyFile(dir), '-passin', `pass:${PASS}`, '-noout']).status, 0);
      ok(issue(dir, { FLEETPKI_KEYSTORE_PASSPHRASE: PASS }));
    });

    const refused: Array<{ name: string; env: Record<string, string | undefined>; re: RegExp }> = [
      { name: 'fail-wrong passphrase', env: { FLEETPKI_KEYSTORE_PASSPHRASE: 'not it' }, re: /cannot decrypt key soft:issuing-ca-[0-9a-f]+: wrong key store passphrase \(from \$FLEETPKI_KEYSTORE_PASSPHRASE\)\?/ },
      { name: 'fail-none at all', env: {}, re: /the key store is locked: set FLEETPKI_KEYSTORE_PASSPHRASE or FLEETPKI_KEYSTORE_PASSPHRASE_FILE/ },
      { name: 'fail-an empty variable is no passphrase', env: { FLEETPKI_KEYSTORE_PASSPHRASE: '' }, re: /the key store is locked/ },
    ];
    for (const c of refused) {
      it(`${c.name}: key_unavailable, exit 1, nothing issued`, () => {
        const before = count(dir);
        failed(issue(dir, c.env), 1, 'key_unavailable', c.re);
        assert.equal(count(dir), before);
      });
    }
  });

  describe('from the file named by $FLEETPKI_KEYSTORE_PASSPHRASE_FILE', () => {
    let dir = '';
    const passFile = file('pass.txt');
    before(() => {
      writeFileSync(passFile, 'file passphrase for the key store\n', { mode: 0o600 });
      dir = init('pass-file', [], { FLEETPKI_KEYSTORE_PASSPHRASE_FILE: passFile }).dir;
    });

    it('ok-init writes no passphrase file of its own; the trailing newline is not part of it; it signs', () => {
      assert.equal(existsSync(join(dir, 'secrets')), false);
      assert.equal(runOpenssl(['pkey', '-in', keyFile(dir), '-passin', 'pass:file passphrase for the key store', '-noout']).status, 0);
      ok(issue(dir, { FLEETPKI_KEYSTORE_PASSPHRASE_FILE: passFile }));
    });

    it('fail-a file with another passphrase, a missing file, an empty file: key_unavailable naming the file, nothing issued', () => {
      writeFileSync(file('wrong.txt'), 'some other passphrase\n');
      writeFileSync(file('empty.txt'), '\n');
      const cases: Array<[string, RegExp]> = [
        [file('wrong.txt'), new RegExp(`wrong key store passphrase \\(from \\$FLEETPKI_KEYSTORE_PASSPHRASE_FILE ${file('wrong.txt')}\\)`)],
        [file('missing.txt'), new RegExp(`cannot read the key store passphrase from \\$FLEETPKI_KEYSTORE_PASSPHRASE_FILE ${file('missing.txt')}`)],
        [file('empty.txt'), /missing, unreadable or empty/],
      ];
      const before = count(dir);
      for (const [f, re] of cases) failed(issue(dir, { FLEETPKI_KEYSTORE_PASSPHRASE_FILE: f }), 1, 'key_unavailable', re);
      assert.equal(count(dir), before);
    });
  });

  describe('precedence: the variable, then the variable naming a file, then keyStore.passphraseFile', () => {
    let dir = '';
    let generated = '';
    const right = file('right.txt');
    const wrong = file('wrong-p.txt');
    before(() => {
      dir = init('pass-order').dir; // no variables: init generates secrets/keystore-passphrase
      generated = readFileSync(join(dir, 'secrets', 'keystore-passphrase'), 'utf8').trim();
      writeFileSync(right, `${generated}\n`);
      writeFileSync(wrong, 'not the passphrase\n');
    });

    const cases: Array<{ name: string; env: () => Record<string, string>; signs: boolean; re?: RegExp }> = [
      { name: 'ok-neither variable: the config file (secrets/keystore-passphrase)', env: () => ({}), signs: true },
      { name: 'fail-a wrong variable beats a right config file', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE: 'wrong' }), signs: false, re: /\(from \$FLEETPKI_KEYSTORE_PASSPHRASE\)/ },
      { name: 'fail-a wrong variable file beats a right config file', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE_FILE: wrong }), signs: false, re: /\(from \$FLEETPKI_KEYSTORE_PASSPHRASE_FILE / },
      { name: 'ok-a right variable beats a wrong variable file', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE: generated, FLEETPKI_KEYSTORE_PASSPHRASE_FILE: wrong }), signs: true },
      { name: 'fail-a wrong variable beats a right variable file', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE: 'wrong', FLEETPKI_KEYSTORE_PASSPHRASE_FILE: right }), signs: false, re: /\(from \$FLEETPKI_KEYSTORE_PASSPHRASE\)/ },
      { name: 'ok-a right variable file, config file ignored', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE_FILE: right }), signs: true },
      { name: 'fail-a missing variable file does not fall back to the config file', env: () => ({ FLEETPKI_KEYSTORE_PASSPHRASE_FILE: file('nope.txt') }), signs: false, re: /cannot read the key store passphrase/ },
    ];
    for (const c of cases) {
      it(c.name, () => {
        const before = count(dir);
        const r = issue(dir, c.env());
        if (c.signs) {
          ok(r);
          assert.equal(count(dir), before + 1);
        } else {
          failed(r, 1, 'key_unavailable', c.re);
          assert.equal(count(dir), before);
        }
      });
    }

    it('fail-with the config file gone and no variable: locked', () => {
      const cfgFile = join(dir, 'fleetpki.json');
      const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
      delete cfg.keyStore.passphraseFile;
      writeFileSync(cfgFile, JSON.stringify(cfg));
      failed(issue(dir, {}), 1, 'key_unavailable', /the key store is locked/);
      ok(issue(dir, { FLEETPKI_KEYSTORE_PASSPHRASE: generated }));
    });
  });
});
