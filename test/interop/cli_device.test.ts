/**
 * The registry commands of `fleetpki` as an operator runs them: real
 * processes on a real data directory. device register/import/list/show,
 * trust, order and enrollment, with a manufacturer CA made by the openssl CLI.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { BIN, fleetpki, opensslCsr, tempDir } from '../helpers/data_dir.js';

const work = tempDir('fleetpki-cli-device-');
const dir = join(work, 'data');
const D = ['--dir', dir];
const fixture = (name: string) => new URL(`../fixtures/devices/${name}`, import.meta.url).pathname;
const file = (name: string) => join(work, name);

type Run = ReturnType<typeof fleetpki>;
const ok = (r: Run): Run => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r;
};
const json = (r: Run) => JSON.parse(ok(r).stdout);
/** A failed command: exit status and the one-line "fleetpki: code: detail" on stderr. */
function failed(r: Run, status: number, code: string, re?: RegExp): void {
  assert.equal(r.status, status, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^fleetpki: ${code}: `, 'm'));
  if (re) assert.match(r.stderr, re);
  assert.ok(!/\n\s+at /.test(r.stderr), 'no stack trace');
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

before(() => {
  ok(fleetpki(['init', ...D, '--org', 'CLI Device Test', '--json']));
});

after(() => {
  spawnSync('rm', ['-rf', work]);
});

describe('fleetpki device register', () => {
  it('--secret prints the one-time secret alone on stdout; it enrolls the device', async () => {
    const r = ok(fleetpki(['device', 'register', ...D, '--id', 'cli-1', '--profile', 'device-tls', '--domain', 'site-a', '--san', 'dns:cli-1.example', '--san', 'ip:10.0.0.1', '--secret']));
    assert.match(r.stdout, /^[A-Za-z0-9_-]{20,}\n$/, 'the secret and a newline, nothing else');
    assert.match(r.stderr, /registered device cli-1 \(profile device-tls, domain site-a\)/);
    assert.match(r.stderr, /one-time enrollment secret \(valid 168 h, shown once\)/);
    const secret = r.stdout.trim();
    const ctx = await openContext(dir);
    try {
      const e = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'cli-1', secret }, csr: opensslCsr(work, 'cli-1').csrPem, via: 'test' });
      assert.equal(e.status, 'issued');
    } finally {
      await ctx.close();
    }
    const show = ok(fleetpki(['device', 'show', 'cli-1', ...D]));
    assert.ok(!show.stdout.includes(secret), 'the secret is never shown again');
    assert.match(show.stdout, /^state\s+active$/m);
    assert.match(show.stdout, /^secret\s+used$/m);
    assert.match(show.stdout, /^extra names\s+dns:cli-1\.example, ip:10\.0\.0\.1$/m);
    assert.match(show.stdout, /^certificate\s+[0-9a-f]+ good until \S+ \(current\)$/m);
  });

  it('without --secret: nothing on stdout; --json prints the record with secret null', () => {
    const r = ok(fleetpki(['device', 'register', ...D, '--id', 'cli-2', '--profile', 'device-tls']));
    assert.equal(r.stdout, '');
    const j = json(fleetpki(['device', 'register', ...D, '--id', 'cli-3', '--profile', 'device-tls', '--model', 'GX', '--owner', 'ops', '--approval', '--json']));
    assert.equal(j.id, 'cli-3');
    assert.equal(j.secret, null);
    assert.equal(j.requireApproval, true);
    assert.equal(j.model, 'GX');
  });

  it('device secret: a new secret alone on stdout', () => {
    const r = ok(fleetpki(['device', 'secret', 'cli-2', ...D]));
    assert.match(r.stdout, /^[A-Za-z0-9_-]{20,}\n$/);
  });

  it('device secret --json: id, secret and lifetime, as the API answers; the secret enrolls and replaces the old one', async () => {
    const old = ok(fleetpki(['device', 'register', '--id', 'cli-sec', '--profile', 'device-tls', '--secret', ...D])).stdout.trim();
    const j = json(fleetpki(['device', 'secret', 'cli-sec', '--json', ...D]));
    assert.deepEqual(Object.keys(j).sort(), ['expiresInHours', 'id', 'secret']);
    assert.equal(j.id, 'cli-sec');
    assert.equal(j.expiresInHours, 168);
    assert.match(j.secret, /^[A-Za-z0-9_-]{20,}$/);
    assert.notEqual(j.secret, old);
    const ctx = await openContext(dir);
    try {
      const csr = opensslCsr(work, 'cli-sec').csrPem;
      await assert.rejects(ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'cli-sec', secret: old }, csr, via: 'test' }), /unauthorized/);
      const e = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'cli-sec', secret: j.secret }, csr, via: 'test' });
      assert.equal(e.status, 'issued');
    } finally {
      await ctx.close();
    }
  });

  it('fail-device secret for an unknown device: exit 2, nothing on stdout (also with --json)', () => {
    for (const extra of [[], ['--json']]) {
      const r = fleetpki(['device', 'secret', 'nope', ...extra, ...D]);
      failed(r, 2, 'not_found');
      assert.equal(r.stdout, '');
    }
  });

  const bad: Array<{ name: string; args: string[]; status: number; code: string; re?: RegExp }> = [
    { name: 'fail-bad-id', args: ['--id', 'bad id', '--profile', 'device-tls'], status: 2, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-unknown-profile', args: ['--id', 'cli-x', '--profile', 'nope'], status: 2, code: 'not_found' },
    { name: 'fail-duplicate', args: ['--id', 'cli-1', '--profile', 'device-tls'], status: 2, code: 'already_exists' },
    { name: 'fail-bad-san', args: ['--id', 'cli-y', '--profile', 'device-tls', '--san', 'email:a@example.com'], status: 2, code: 'bad_request', re: /dns:, ip: or uri:/ },
    { name: 'fail-unknown-order', args: ['--id', 'cli-z', '--profile', 'device-tls', '--order', 'nope'], status: 2, code: 'not_found' },
  ];
  for (const c of bad) {
    it(c.name, () => {
      const r = fleetpki(['device', 'register', ...D, ...c.args, '--secret']);
      failed(r, c.status, c.code, c.re);
      assert.equal(r.stdout, '', 'no secret printed');
    });
  }

  it('fail-missing --profile is a usage error', () => {
    const r = fleetpki(['device', 'register', ...D, '--id', 'cli-q']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--profile/);
  });
});

describe('fleetpki device import', () => {
  const TOTAL = 5000;
  const bad = new Map<number, string>(); // line → id
  before(() => {
    // Three already registered, so they come back as "already registered".
    for (const i of [10, 20, 30]) ok(fleetpki(['device', 'register', ...D, '--id', `bulk-${String(i).padStart(5, '0')}`, '--profile', 'device-tls']));
    const lines = ['\uFEFFid,profile,domain,sans,site'];
    for (let i = 0; i < TOTAL; i++) {
      const id = `bulk-${String(i).padStart(5, '0')}`;
      const line = lines.length + 1;
      if (i % 90 === 45) {
        lines.push(`bulk ${i},device-tls,site-${i % 3},,Berlin`);
        bad.set(line, `bulk ${i}`);
      } else if (i === 4001) {
        lines.push(`${id},device-tls`); // too few fields
        bad.set(line, id);
      } else {
        lines.push(`${id},device-tls,site-${i % 3},"dns:${id}.example;ip:10.${i >> 8}.${i & 255}.1",Berlin`);
      }
    }
    writeFileSync(file('devices.csv'), `${lines.join('\r\n')}\r\n`);
    assert.ok(bad.size > 50, 'more than 50 bad rows: the summary is truncated');
  });

  it('5,000 rows with bad ones: exit 3, summary and rejected rows with line numbers on stderr', () => {
    const t0 = Date.now();
    const r = fleetpki(['device', 'import', file('devices.csv'), ...D]);
    const ms = Date.now() - t0;
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, '');
    const registered = TOTAL - bad.size - 3;
    assert.match(r.stderr, new RegExp(`^${registered} registered, 3 already registered, ${bad.size} rejected$`, 'm'));
    const lines = [...bad.entries()];
    for (const [line, id] of lines.slice(0, 50)) {
      // A row the parser cannot read (wrong field count) is reported by line alone.
      const label = id === 'bulk-04001' ? '' : ` \\(${id}\\)`;
      assert.match(r.stderr, new RegExp(`^  line ${line}${label}: `, 'm'));
    }
    assert.match(r.stderr, /^  line \d+: 2 fields, the header has 5$/m);
    assert.match(r.stderr, new RegExp(`^  \\.\\.\\. and ${bad.size - 50} more \\(use --json for all\\)$`, 'm'));
    assert.ok(!r.stderr.includes('\r['), 'no progress bar when stderr is not a terminal');
    assert.ok(ms < 30_000, `took ${ms} ms`);
    const dev = json(fleetpki(['device', 'show', 'bulk-04999', '--json', ...D]));
    assert.equal(dev.domain, 'site-1');
    assert.deepEqual(dev.sans, ['dns:bulk-04999.example', 'ip:10.19.135.1']);
    assert.deepEqual(dev.attributes, { site: 'Berlin' });
  });

  it('on a terminal (a pty from script(1)): the progress bar is redrawn once per batch of 1000 and ends at the total', () => {
    const rows = ['id,profile', ...Array.from({ length: 2500 }, (_, i) => `pty-${i},device-tls`)];
    writeFileSync(file('pty.csv'), `${rows.join('\n')}\n`);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const r = spawnSync('script', ['-q', '-e', '-c', [process.execPath, BIN, 'device', 'import', file('pty.csv'), ...D].map(q).join(' '), '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    // stdout and stderr share the terminal; it turns "\n" into "\r\n".
    const bar = (n: number) => `[${'#'.repeat(n)}${'.'.repeat(30 - n)}]`;
    assert.equal(r.stdout, `\r${bar(12)} 1000/2500\r${bar(24)} 2000/2500\r${bar(30)} 2500/2500\r\n2500 registered, 0 already registered, 0 rejected\r\n`);
    assert.equal(json(fleetpki(['device', 'show', 'pty-2499', '--json', ...D])).state, 'registered');
  });

  it('--json: every rejected row in the JSON summary; importing again finds them registered', () => {
    const r = fleetpki(['device', 'import', file('devices.csv'), '--json', ...D]);
    const s = JSON.parse(r.stdout);
    assert.equal(s.registered, 0);
    assert.equal(s.alreadyRegistered.length, TOTAL - bad.size);
    assert.deepEqual(
      s.rejected.map((x: { line: number }) => x.line),
      [...bad.keys()],
    );
    const tooFew = s.rejected.find((x: { line: number }) => x.line === [...bad.entries()].find(([, id]) => id === 'bulk-04001')![0]);
    assert.equal(tooFew.reason, '2 fields, the header has 5');
  });

  it('--json keeps exit status 3 when rows were rejected (the format must not change the outcome)', () => {
    const r = fleetpki(['device', 'import', file('devices.csv'), '--json', ...D]);
    assert.equal(r.status, 3);
  });

  it('a JSON file ({"devices": [...]}) with bad elements', () => {
    const r = fleetpki(['device', 'import', fixture('devices.json'), '--json', ...D]);
    const s = JSON.parse(r.stdout);
    assert.equal(s.registered, 2);
    assert.deepEqual(
      s.rejected.map((x: { line: number }) => x.line),
      [3, 4, 5],
    );
    const js = json(fleetpki(['device', 'show', 'js-0001', '--json', ...D]));
    assert.equal(js.requireApproval, true);
    assert.deepEqual(js.sans, ['dns:js1.example', 'ip:10.1.0.1']);
    ok(fleetpki(['device', 'show', '12345', ...D]));
  });

  it('defaults for rows that name none: --profile, --domain, --model; --format json for another extension', () => {
    writeFileSync(file('plain.txt'), JSON.stringify([{ id: 'def-1' }, { id: 'def-2', domain: 'own-site' }]));
    ok(fleetpki(['device', 'import', file('plain.txt'), '--format', 'json', '--profile', 'device-tls', '--domain', 'default-site', '--model', 'DM', ...D]));
    const list = json(fleetpki(['device', 'list', '--model', 'DM', '--json', ...D]));
    assert.deepEqual(
      list.map((x: { id: string; domain: string; profile: string }) => [x.id, x.domain, x.profile]),
      [
        ['def-1', 'default-site', 'device-tls'],
        ['def-2', 'own-site', 'device-tls'],
      ],
    );
  });

  it('the tricky CSV fixture (BOM, CRLF, quotes, embedded newline): each row judged on its content', () => {
    const r = fleetpki(['device', 'import', fixture('tricky.csv'), '--json', ...D]);
    const s = JSON.parse(r.stdout);
    assert.equal(s.registered, 0);
    const reasons = Object.fromEntries(s.rejected.filter((x: { id?: string }) => x.id).map((x: { id: string; reason: string }) => [x.id, x.reason]));
    // Parsed correctly, then refused by the registry: quotes are not allowed in a model label.
    assert.match(reasons['sn-0001'], /model may hold/);
    assert.match(reasons['sn-0002'], /no profile ""/);
    assert.equal(s.rejected.length, 4, 'plus the short row and the bad approval value');
    assert.ok(s.rejected.some((x: { reason: string }) => x.reason === '4 fields, the header has 10'));
    assert.ok(s.rejected.some((x: { reason: string }) => /approval must be true or false, got "maybe"/.test(x.reason)));
  });

  const fatal: Array<{ name: string; args: string[]; re: RegExp }> = [
    { name: 'fail-missing-file', args: [join(work, 'nope.csv')], re: /cannot read device file/ },
    { name: 'fail-bad-format', args: [fixture('tricky.csv'), '--format', 'xml'], re: /--format is csv or json/ },
    { name: 'fail-no-id-column', args: [fixture('README.md'), '--format', 'csv'], re: /"id" column/ },
    { name: 'fail-invalid-json', args: [fixture('tricky.csv'), '--format', 'json'], re: /not valid JSON/ },
  ];
  for (const c of fatal) {
    it(c.name, () => failed(fleetpki(['device', 'import', ...c.args, ...D]), 2, 'bad_request', c.re));
  }
});

describe('fleetpki device list / show / set-state', () => {
  it('list --json with filters and paging', () => {
    const site1 = json(fleetpki(['device', 'list', '--domain', 'site-1', '--limit', '1000', '--json', ...D]));
    assert.ok(site1.length > 1000 / 2 && site1.every((x: { domain: string }) => x.domain === 'site-1'));
    const page = json(fleetpki(['device', 'list', '--domain', 'site-1', '--limit', '2', '--json', ...D]));
    assert.equal(page.length, 2);
    const next = json(fleetpki(['device', 'list', '--domain', 'site-1', '--limit', '2', '--after', page[1].id, '--json', ...D]));
    assert.ok(next[0].id > page[1].id);
    const active = json(fleetpki(['device', 'list', '--state', 'active', '--json', ...D]));
    assert.deepEqual(
      active.map((x: { id: string }) => x.id),
      ['cli-1', 'cli-sec'],
    );
  });

  it('list as a table', () => {
    const r = ok(fleetpki(['device', 'list', '--state', 'active', ...D]));
    const [header, row, row2, ...more] = r.stdout.trim().split('\n');
    assert.match(row2, /^cli-sec\s+active\s/);
    assert.deepEqual(more, []);
    assert.match(header, /^ID\s+STATE\s+PROFILE\s+DOMAIN\s+MODEL\s+CURRENT CERTIFICATE$/);
    assert.match(row, /^cli-1\s+active\s+device-tls\s+site-a\s+-\s+[0-9a-f]+$/);
  });

  it('set-state, then list --state', () => {
    const r = ok(fleetpki(['device', 'set-state', 'cli-2', 'suspended', ...D]));
    assert.match(r.stderr, /device cli-2 is now suspended/);
    assert.deepEqual(
      json(fleetpki(['device', 'list', '--state', 'suspended', '--json', ...D])).map((x: { id: string }) => x.id),
      ['cli-2'],
    );
  });

  it('set-state follows the lifecycle: resume, retire; refused changes exit 1 with one line and change nothing', () => {
    ok(fleetpki(['device', 'register', '--id', 'cli-lc', '--profile', 'device-tls', ...D]));
    const steps: Array<{ to: string; status: number; re: RegExp }> = [
      { to: 'active', status: 1, re: /^fleetpki: conflict: device cli-lc is registered and cannot be set active .*becomes active by enrolling\n$/ },
      { to: 'suspended', status: 0, re: /device cli-lc is now suspended/ },
      { to: 'active', status: 1, re: /^fleetpki: conflict: device cli-lc has no certificate/ },
      { to: 'registered', status: 0, re: /device cli-lc is now registered/ },
      { to: 'retired', status: 0, re: /device cli-lc is now retired/ },
      { to: 'registered', status: 1, re: /^fleetpki: conflict: device cli-lc is retired and cannot be set registered \(retired is final\)/ },
      { to: 'active', status: 1, re: /retired is final/ },
    ];
    for (const s of steps) {
      const before = json(fleetpki(['device', 'show', 'cli-lc', '--json', ...D]));
      const r = fleetpki(['device', 'set-state', 'cli-lc', s.to, ...D]);
      assert.equal(r.status, s.status, `${before.state} → ${s.to}: ${r.stderr}`);
      assert.match(r.stderr, s.re);
      const after = json(fleetpki(['device', 'show', 'cli-lc', '--json', ...D]));
      assert.equal(after.state, s.status === 0 ? s.to : before.state);
    }
  });

  it('set-state --help lists the allowed changes', () => {
    const r = ok(fleetpki(['device', 'set-state', '--help']));
    assert.match(r.stdout, /^ {2}suspended +→ active \(has a certificate\), registered \(has none\), revoked, retired$/m);
    assert.match(r.stdout, /^ {2}retired +→ nothing: final$/m);
  });

  it('show --json: record, secret status and certificates', () => {
    const j = json(fleetpki(['device', 'show', 'cli-1', '--json', ...D]));
    assert.equal(j.state, 'active');
    assert.equal(j.secret.used, true);
    assert.equal(j.certificates.length, 1);
    assert.equal(j.certificates[0].current, true);
    assert.equal(j.certificates[0].serial, j.currentSerial);
    const fresh = json(fleetpki(['device', 'show', 'cli-2', '--json', ...D]));
    assert.equal(fresh.secret.used, false);
    assert.deepEqual(fresh.certificates, []);
  });

  const bad: Array<{ name: string; args: string[]; status: number; code: string }> = [
    { name: 'fail-show-unknown', args: ['show', 'nope'], status: 2, code: 'not_found' },
    { name: 'fail-list-bad-state', args: ['list', '--state', 'sleeping'], status: 2, code: 'bad_request' },
    { name: 'fail-list-bad-limit', args: ['list', '--limit', '0'], status: 2, code: 'bad_request' },
    { name: 'fail-set-state-bad', args: ['set-state', 'cli-2', 'sleeping'], status: 2, code: 'bad_request' },
    { name: 'fail-set-state-unknown', args: ['set-state', 'nope', 'retired'], status: 2, code: 'not_found' },
  ];
  for (const c of bad) it(c.name, () => failed(fleetpki(['device', ...c.args, ...D]), c.status, c.code));
});

describe('fleetpki trust', () => {
  let fp = '';
  before(() => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('mfr.key'), '-subj', '/O=Maker/CN=Maker Root CA', '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', file('mfr-root.pem')]);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('leaf.key'), '-subj', '/CN=just a device', '-days', '3650', '-addext', 'basicConstraints=critical,CA:FALSE', '-out', file('leaf.pem')]);
    fp = spawnSync('openssl', ['x509', '-in', file('mfr-root.pem'), '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }).stdout.trim().split('=')[1].replace(/:/g, '').toLowerCase();
  });

  it('add-manufacturer --ca, list, list --json', () => {
    const r = ok(fleetpki(['trust', 'add-manufacturer', '--ca', file('mfr-root.pem'), ...D]));
    assert.match(r.stderr, new RegExp(`trusted manufacturer CA O=Maker, CN=Maker Root CA \\(sha256 ${fp}\\)`));
    const list = json(fleetpki(['trust', 'list', '--json', ...D]));
    assert.deepEqual(
      list.map((a: { fingerprint: string; purpose: string }) => [a.fingerprint, a.purpose]),
      [[fp, 'manufacturer']],
    );
    const table = ok(fleetpki(['trust', 'list', ...D])).stdout;
    assert.match(table, /^SHA-256\s+NOT AFTER\s+SUBJECT$/m);
    assert.match(table, new RegExp(`^${fp.slice(0, 16)}\\s+\\d{4}-\\d\\d-\\d\\d\\s+O=Maker, CN=Maker Root CA$`, 'm'));
  });

  const bad: Array<{ name: string; args: () => string[]; status: number; code: string; re?: RegExp }> = [
    { name: 'fail-add-again', args: () => ['add-manufacturer', '--ca', file('mfr-root.pem')], status: 2, code: 'already_exists' },
    { name: 'fail-add-not-a-ca', args: () => ['add-manufacturer', '--ca', file('leaf.pem')], status: 2, code: 'bad_request', re: /not a CA certificate/ },
    { name: 'fail-add-private-key', args: () => ['add-manufacturer', '--ca', file('mfr.key')], status: 2, code: 'bad_request', re: /no PEM CERTIFICATE/ },
    { name: 'fail-add-missing-file', args: () => ['add-manufacturer', '--ca', file('nope.pem')], status: 2, code: 'bad_request', re: /cannot read CA file/ },
    { name: 'fail-remove-unknown', args: () => ['remove', 'ffff'], status: 2, code: 'not_found' },
  ];
  for (const c of bad) {
    it(c.name, () => {
      failed(fleetpki(['trust', ...c.args(), ...D]), c.status, c.code, c.re);
      assert.equal(json(fleetpki(['trust', 'list', '--json', ...D])).length, 1);
    });
  }

  it('remove by a fingerprint prefix (with colons)', () => {
    const prefix = fp.slice(0, 8).toUpperCase().match(/../g)!.join(':');
    const r = ok(fleetpki(['trust', 'remove', prefix, ...D]));
    assert.match(r.stderr, /no longer trusted: O=Maker, CN=Maker Root CA/);
    assert.deepEqual(json(fleetpki(['trust', 'list', '--json', ...D])), []);
  });
});

describe('fleetpki order', () => {
  let id = '';
  it('create prints the order id alone on stdout', () => {
    const r = ok(fleetpki(['order', 'create', '--profile', 'device-tls', '--quantity', '25', '--model', 'GX', '--domain', 'site-a', '--valid-days', '30', ...D]));
    assert.match(r.stdout, /^[0-9a-f-]{36}\n$/);
    assert.match(r.stderr, /: 25 x device-tls for model GX in site-a/);
    id = r.stdout.trim();
  });

  it('create --json, list --json and as a table', () => {
    const j = json(fleetpki(['order', 'create', '--profile', 'device-tls', '--quantity', '1', '--json', ...D]));
    assert.equal(j.quantity, 1);
    assert.equal(j.expiresAt, null);
    const list = json(fleetpki(['order', 'list', '--json', ...D]));
    assert.deepEqual(list.map((o: { id: string }) => o.id).sort(), [id, j.id].sort());
    const table = ok(fleetpki(['order', 'list', ...D])).stdout;
    assert.match(table, /^ID\s+PROFILE\s+USED\s+MODEL\s+DOMAIN\s+EXPIRES$/m);
    assert.match(table, new RegExp(`^${id}\\s+device-tls\\s+0/25\\s+GX\\s+site-a\\s+\\d{4}-\\d\\d-\\d\\d$`, 'm'));
    assert.match(table, new RegExp(`^${j.id}\\s+device-tls\\s+0/1\\s+-\\s+-\\s+never$`, 'm'));
  });

  it('a device registered on the order that does not fit it is refused', () => {
    failed(fleetpki(['device', 'register', '--id', 'ord-misfit', '--profile', 'device-tls', '--model', 'HX', '--domain', 'site-a', '--order', id, ...D]), 2, 'policy_violation', /for model GX/);
    ok(fleetpki(['device', 'register', '--id', 'ord-fit', '--profile', 'device-tls', '--model', 'GX', '--domain', 'site-a', '--order', id, ...D]));
  });

  const bad: Array<{ name: string; args: string[]; code: string }> = [
    { name: 'fail-quantity-0', args: ['--profile', 'device-tls', '--quantity', '0'], code: 'bad_request' },
    { name: 'fail-quantity-text', args: ['--profile', 'device-tls', '--quantity', 'many'], code: 'bad_request' },
    { name: 'fail-unknown-profile', args: ['--profile', 'nope', '--quantity', '1'], code: 'not_found' },
    { name: 'fail-bad-domain', args: ['--profile', 'device-tls', '--quantity', '1', '--domain', 'Site A'], code: 'bad_request' },
  ];
  for (const c of bad) it(c.name, () => failed(fleetpki(['order', 'create', ...c.args, ...D]), 2, c.code));
});

describe('fleetpki enrollment', () => {
  let ctx: FleetContext;
  const pending: string[] = [];
  before(async () => {
    ctx = await openContext(dir);
    for (const id of ['wait-1', 'wait-2']) {
      const secret = ok(fleetpki(['device', 'register', '--id', id, '--profile', 'device-tls', '--approval', '--secret', ...D])).stdout.trim();
      const r = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret }, csr: opensslCsr(work, id).csrPem, via: 'test' });
      assert.ok(r.status === 'pending');
      pending.push(r.pendingId);
    }
  });
  after(async () => {
    await ctx?.close();
  });

  it('list (pending by default), --json and as a table', () => {
    const list = json(fleetpki(['enrollment', 'list', '--json', ...D]));
    assert.deepEqual(
      list.map((p: { id: string; deviceId: string; status: string }) => [p.id, p.deviceId, p.status]),
      [
        [pending[0], 'wait-1', 'pending'],
        [pending[1], 'wait-2', 'pending'],
      ],
    );
    const table = ok(fleetpki(['enrollment', 'list', ...D])).stdout;
    assert.match(table, /^ID\s+DEVICE\s+STATUS\s+REQUESTED$/m);
    assert.match(table, new RegExp(`^${pending[0]}\\s+wait-1\\s+pending\\s+\\d{4}-`, 'm'));
  });

  it('approve one, reject the other; the device retry is issued or refused', async () => {
    assert.match(ok(fleetpki(['enrollment', 'approve', pending[0], ...D])).stderr, new RegExp(`enrollment ${pending[0]} of device wait-1: approved`));
    assert.match(ok(fleetpki(['enrollment', 'reject', pending[1], ...D])).stderr, new RegExp(`enrollment ${pending[1]} of device wait-2: rejected`));
    assert.deepEqual(json(fleetpki(['enrollment', 'list', '--json', ...D])), []);
    assert.deepEqual(
      json(fleetpki(['enrollment', 'list', '--status', 'approved', '--json', ...D])).map((p: { id: string }) => p.id),
      [pending[0]],
    );
    const p = (await ctx.store.getPendingEnrollment(pending[0]))!;
    const secret = (await ctx.registry.newSecret('wait-1', 'test'));
    const r = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'wait-1', secret }, csr: p.csrDer, via: 'test' });
    assert.equal(r.status, 'issued');
    assert.equal(json(fleetpki(['device', 'show', 'wait-1', '--json', ...D])).state, 'active');
  });

  it('fail-deciding twice is a conflict (exit 1); unknown id not_found (exit 2)', () => {
    failed(fleetpki(['enrollment', 'approve', pending[1], ...D]), 1, 'conflict', /rejected, not pending/);
    failed(fleetpki(['enrollment', 'reject', pending[0], ...D]), 1, 'conflict');
    failed(fleetpki(['enrollment', 'approve', '00000000-0000-0000-0000-000000000000', ...D]), 2, 'not_found');
  });
});

describe('--help for every registry command', () => {
  const commands: Array<{ cmd: string[]; expect: RegExp[] }> = [
    { cmd: ['device'], expect: [/register/, /import/, /list/, /show/, /secret/, /set-state/] },
    { cmd: ['device', 'register'], expect: [/--id <id>/, /--profile <name>/, /--domain <domain>/, /--san <name>/, /--order <id>/, /--approval/, /--secret/, /--json/] },
    { cmd: ['device', 'secret'], expect: [/<id>/, /--json/] },
    { cmd: ['device', 'import'], expect: [/<file>/, /--profile <name>/, /--format <format>/, /--json/, /CSV: a header row/] },
    { cmd: ['device', 'list'], expect: [/--state <state>/, /--domain <domain>/, /--after <id>/, /--limit <n>/] },
    { cmd: ['device', 'show'], expect: [/<id>/, /--json/] },
    { cmd: ['device', 'set-state'], expect: [/<state>/] },
    { cmd: ['trust'], expect: [/add-manufacturer/, /list/, /remove/] },
    { cmd: ['trust', 'add-manufacturer'], expect: [/--ca <file>/, /serialNumber/] },
    { cmd: ['trust', 'list'], expect: [/--json/] },
    { cmd: ['trust', 'remove'], expect: [/<fingerprint>/] },
    { cmd: ['order'], expect: [/create/, /list/] },
    { cmd: ['order', 'create'], expect: [/--profile <name>/, /--quantity <n>/, /--model <model>/, /--domain <domain>/, /--valid-days <n>/] },
    { cmd: ['order', 'list'], expect: [/--json/] },
    { cmd: ['enrollment'], expect: [/list/, /approve/, /reject/] },
    { cmd: ['enrollment', 'list'], expect: [/--status <status>/] },
    { cmd: ['enrollment', 'approve'], expect: [/<id>/] },
    { cmd: ['enrollment', 'reject'], expect: [/<id>/] },
  ];
  for (const c of commands) {
    it(c.cmd.join(' '), () => {
      const r = fleetpki([...c.cmd, '--help']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: fleetpki ${c.cmd.join(' ')} `));
      for (const re of c.expect) assert.match(r.stdout, re);
    });
  }
});

describe('audit', () => {
  it('registry commands are attributed to the CLI user', async () => {
    const ctx = await openContext(dir);
    try {
      const actions = new Set((await ctx.store.listAudit({ limit: 1000 })).filter((a) => a.actor.startsWith('cli:')).map((a) => a.action));
      for (const a of ['device.register', 'device.secret.create', 'device.import', 'device.update', 'trust.add', 'trust.remove', 'order.create', 'enrollment.approve', 'enrollment.reject']) assert.ok(actions.has(a), a);
    } finally {
      await ctx.close();
    }
  });
});
