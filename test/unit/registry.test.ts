/**
 * The device registry (src/registry/registry.ts) on a real data directory:
 * validation, registration with one-time secrets, bulk import, orders,
 * manufacturer trust anchors and approval decisions.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { FakeClock } from '../../src/clock.js';
import { isProblem, type ProblemCode } from '../../src/errors.js';
import { hashSecret, type DeviceInput } from '../../src/registry/registry.js';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { makeDataDir, opensslCsr, tempDir, type TestDataDir } from '../helpers/data_dir.js';

const clock = new FakeClock('2030-01-01T00:00:00Z');
let d: TestDataDir;
/**
 * The data directory's context reopened with one more profile, sensor-tls (a
 * copy of device-tls), so tests have a second profile a device can enroll for.
 */
let ctx: FleetContext;
let work: string;

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/**
 * A self-signed certificate made by the openssl CLI with exactly the
 * extensions given (a bare config, so openssl adds no v3_ca defaults);
 * returns the PEM path.
 */
function opensslCert(name: string, ext: string[]): string {
  const pem = join(work, `${name}.pem`);
  const cnf = join(work, 'bare.cnf');
  writeFileSync(cnf, '[req]\ndistinguished_name = dn\n[dn]\n');
  openssl(['req', '-config', cnf, '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, `${name}.key`), '-subj', `/O=Maker/CN=${name}`, '-days', '3650', ...ext.flatMap((e) => ['-addext', e]), '-out', pem]);
  return pem;
}
const CA_EXT = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];

async function rejects(p: Promise<unknown> | (() => unknown), code: ProblemCode, re?: RegExp): Promise<void> {
  await assert.rejects(
    async () => (typeof p === 'function' ? p() : p),
    (e) => {
      assert.ok(isProblem(e), `a ProblemError, got ${String(e)}`);
      assert.equal(e.code, code, e.detail);
      if (re) assert.match(e.detail, re);
      return true;
    },
  );
}

before(async () => {
  d = await makeDataDir({ clock });
  work = tempDir('fleetpki-registry-');
  const file = join(d.dir, 'fleetpki.json');
  const cfg = JSON.parse(readFileSync(file, 'utf8'));
  cfg.profiles = { 'sensor-tls': { ...DEFAULT_PROFILES['device-tls'], description: 'sensors' } };
  writeFileSync(file, JSON.stringify(cfg));
  ctx = await openContext(d.dir, { clock });
});

after(async () => {
  await ctx.close();
  await d.cleanup();
  spawnSync('rm', ['-rf', work]);
});

describe('validateDevice', () => {
  const base: DeviceInput = { id: 'dev-1', profile: 'device-tls' };
  const ok: Array<{ name: string; input: Partial<DeviceInput>; sans?: string[] }> = [
    { name: 'ok-minimal', input: {} },
    { name: 'ok-id-charset', input: { id: 'A0._:-z' } },
    { name: 'ok-id-64-chars', input: { id: `a${'b'.repeat(63)}` } },
    { name: 'ok-domain', input: { domain: 'site-a.plant3' } },
    { name: 'ok-model-owner', input: { model: 'GX 200 rev.B', owner: 'ops@acme-corp' } },
    { name: 'ok-extra-dns-ip', input: { sans: ['dns:Gw1.Example.com', 'ip:10.0.0.1', 'IP:2001:DB8:0::1'] }, sans: ['dns:gw1.example.com', 'ip:10.0.0.1', 'ip:2001:db8::1'] },
  ];
  for (const c of ok) {
    it(c.name, () => {
      const rec = ctx.registry.validateDevice({ ...base, ...c.input });
      assert.equal(rec.state, 'registered');
      assert.equal(rec.requireApproval, false);
      assert.deepEqual(rec.attributes, {});
      assert.deepEqual(rec.createdAt, clock.now());
      if (c.sans) assert.deepEqual(rec.sans, c.sans, 'extra names are normalised');
    });
  }

  const fail: Array<{ name: string; input: Partial<DeviceInput>; code: ProblemCode; re: RegExp }> = [
    { name: 'fail-empty-id', input: { id: '' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-leading-dash', input: { id: '-dev' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-leading-dot', input: { id: '.dev' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-space', input: { id: 'dev 1' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-slash', input: { id: 'a/b' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-comma', input: { id: 'a,b' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-equals', input: { id: 'CN=x' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-non-ascii', input: { id: 'gerät' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-65-chars', input: { id: `a${'b'.repeat(64)}` }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-newline', input: { id: 'dev\n1' }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-id-not-string', input: { id: 42 as unknown as string }, code: 'bad_request', re: /the id must be/ },
    { name: 'fail-unknown-profile', input: { profile: 'nope' }, code: 'not_found', re: /nope/ },
    { name: 'fail-empty-profile', input: { profile: '' }, code: 'not_found', re: /profile/ },
    { name: 'fail-domain-uppercase', input: { domain: 'Site-A' }, code: 'bad_request', re: /domain/ },
    { name: 'fail-domain-underscore', input: { domain: 'site_a' }, code: 'bad_request', re: /domain/ },
    { name: 'fail-domain-empty', input: { domain: '' }, code: 'bad_request', re: /domain/ },
    { name: 'fail-domain-slash', input: { domain: 'a/b' }, code: 'bad_request', re: /domain/ },
    { name: 'fail-domain-too-long', input: { domain: 'a'.repeat(64) }, code: 'bad_request', re: /domain/ },
    { name: 'fail-model-chars', input: { model: 'GX<200>' }, code: 'bad_request', re: /model/ },
    { name: 'fail-owner-empty', input: { owner: '' }, code: 'bad_request', re: /owner/ },
    { name: 'fail-extra-domain-uri', input: { sans: ['uri:urn:fleetpki:domain:other'] }, code: 'bad_request', re: /is a domain name/ },
    { name: 'fail-extra-email', input: { sans: ['email:ops@example.com'] }, code: 'bad_request', re: /extra names are dns:, ip: or uri:/ },
    { name: 'fail-extra-no-type', input: { sans: ['gw1.example.com'] }, code: 'bad_request', re: /bad SAN/ },
    { name: 'fail-extra-bad-dns', input: { sans: ['dns:not a name'] }, code: 'bad_request', re: /DNS/ },
    { name: 'fail-extra-bad-ip', input: { sans: ['ip:10.0.0.256'] }, code: 'bad_request', re: /IPv4 or IPv6/ },
  ];
  for (const c of fail) {
    it(c.name, async () => {
      await rejects(() => ctx.registry.validateDevice({ ...base, ...c.input }), c.code, c.re);
    });
  }
});

describe('profiles and the names the registry gives', () => {
  // The registry's names follow the profile (serialNumber only where it is
  // allowed), and a registration the profile could never certify is refused.
  it('ok-opcua-application: a domain and an applicationUri fit', async () => {
    const { device } = await ctx.registry.register({ id: 'prof-opcua', profile: 'opcua-application', domain: 'site-a', sans: ['uri:urn:acme:plc-1'] }, 'test');
    assert.deepEqual(device.sans, ['uri:urn:acme:plc-1']);
  });
  it('fail-server-tls with a domain: the profile allows no URI names', async () => {
    await rejects(ctx.registry.register({ id: 'prof-srv', profile: 'server-tls', domain: 'site-a' }, 'test'), 'bad_request', /does not allow uri names/);
    assert.equal(await ctx.store.getDevice('prof-srv'), undefined);
  });
  it('fail-code-signing with a dns name: the profile allows no DNS names', async () => {
    await rejects(ctx.registry.register({ id: 'prof-cs', profile: 'code-signing', sans: ['dns:a.example'] }, 'test'), 'bad_request', /does not allow dns names/);
  });
});

describe('register and one-time secrets', () => {
  it('ok-register: stored, audited, no secret unless asked', async () => {
    const { device, secret } = await ctx.registry.register({ id: 'reg-1', profile: 'device-tls', domain: 'site-a', attributes: { rack: 'R1' } }, 'test:alice');
    assert.equal(secret, undefined);
    const stored = await ctx.registry.device('reg-1');
    assert.deepEqual(JSON.parse(JSON.stringify(stored)), JSON.parse(JSON.stringify(device)));
    assert.deepEqual(stored.attributes, { rack: 'R1' });
    assert.equal(await ctx.store.getEnrollmentSecret('reg-1'), undefined);
    const audit = await ctx.store.listAudit({ target: 'reg-1' });
    assert.deepEqual(
      audit.map((a) => [a.action, a.actor]),
      [['device.register', 'test:alice']],
    );
  });

  it('ok-register with secret: only the hash is stored, with the configured expiry', async () => {
    const { secret } = await ctx.registry.register({ id: 'reg-2', profile: 'device-tls' }, 'test:alice', true);
    assert.ok(secret && secret.length >= 20, 'a secret with enough entropy');
    assert.match(secret, /^[A-Za-z0-9_-]+$/, 'safe to paste (base64url)');
    const rec = await ctx.store.getEnrollmentSecret('reg-2');
    assert.ok(rec);
    assert.equal(rec.secretHash, hashSecret(secret));
    assert.notEqual(rec.secretHash, secret);
    assert.equal(rec.usedAt, undefined);
    assert.equal(rec.expiresAt.getTime() - clock.now().getTime(), ctx.config.registry.secretTtlHours * 3_600_000);
    const audit = await ctx.store.listAudit({ target: 'reg-2' });
    assert.deepEqual(
      audit.map((a) => a.action),
      ['device.register', 'device.secret.create'],
    );
    assert.ok(!JSON.stringify(audit).includes(secret), 'the secret is not in the audit log');
    const files = ['fleetpki.db', 'fleetpki.db-wal'].map((f) => join(d.dir, f)).filter(existsSync).map((f) => readFileSync(f));
    assert.ok(files.some((b) => b.includes(rec.secretHash)), 'the search finds the hash, so it looks in the right place');
    assert.ok(!files.some((b) => b.includes(secret)), 'the secret is nowhere in the database files');
  });

  it('ok-newSecret replaces the earlier secret', async () => {
    const first = (await ctx.registry.register({ id: 'reg-3', profile: 'device-tls' }, 'test', true)).secret!;
    const second = await ctx.registry.newSecret('reg-3', 'test');
    assert.notEqual(first, second);
    assert.equal((await ctx.store.getEnrollmentSecret('reg-3'))!.secretHash, hashSecret(second));
  });

  it('fail-register twice: already_exists, the first record unchanged', async () => {
    await rejects(ctx.registry.register({ id: 'reg-1', profile: 'sensor-tls' }, 'test'), 'already_exists', /reg-1/);
    assert.equal((await ctx.registry.device('reg-1')).profile, 'device-tls');
  });

  it('fail-invalid registration stores nothing', async () => {
    await rejects(ctx.registry.register({ id: 'bad id', profile: 'device-tls' }, 'test', true), 'bad_request');
    assert.equal((await ctx.store.listAudit({ target: 'bad id' })).length, 0);
  });

  it('fail-newSecret: unknown device not_found; retired and revoked devices forbidden', async () => {
    await rejects(ctx.registry.newSecret('no-such-device', 'test'), 'not_found');
    for (const state of ['retired', 'revoked'] as const) {
      await ctx.registry.register({ id: `reg-${state}`, profile: 'device-tls' }, 'test');
      await ctx.registry.setState(`reg-${state}`, state, 'test');
      await rejects(ctx.registry.newSecret(`reg-${state}`, 'test'), 'forbidden', new RegExp(state));
    }
  });

  it('fail-device: unknown id is not_found', async () => {
    await rejects(ctx.registry.device('nope'), 'not_found', /no device nope/);
  });
});

describe('updateDevice', () => {
  before(async () => {
    await ctx.registry.register({ id: 'upd-1', profile: 'device-tls', domain: 'site-a', sans: ['dns:upd-1.example'] }, 'test');
  });

  it('ok-patch and state change, audited', async () => {
    const r = await ctx.registry.updateDevice('upd-1', { domain: 'site-b', owner: 'ops' }, 'test:bob');
    assert.equal(r.domain, 'site-b');
    assert.equal(r.owner, 'ops');
    assert.equal((await ctx.registry.setState('upd-1', 'suspended', 'test:bob')).state, 'suspended');
    const actions = (await ctx.store.listAudit({ target: 'upd-1' })).map((a) => a.action);
    assert.deepEqual(actions, ['device.register', 'device.update', 'device.update']);
  });

  it('fail-unknown device: not_found', async () => {
    await rejects(ctx.registry.updateDevice('nope', { owner: 'x' }, 'test'), 'not_found');
  });

  // The same rules as at registration: otherwise a patch can certify names
  // that register() refuses (a second domain URI, an e-mail address, garbage).
  const fail: Array<{ name: string; patch: Record<string, unknown>; re: RegExp }> = [
    { name: 'fail-patch-bad-domain', patch: { domain: 'Site_B' }, re: /domain/ },
    { name: 'fail-patch-extra-domain-uri', patch: { sans: ['uri:urn:fleetpki:domain:other-site'] }, re: /is a domain name/ },
    { name: 'fail-patch-extra-email-name', patch: { sans: ['email:a@example.com'] }, re: /dns:, ip: or uri:/ },
    { name: 'fail-patch-garbage-name', patch: { sans: ['not-a-san'] }, re: /SAN/ },
    { name: 'fail-patch-bad-model', patch: { model: 'x<script>' }, re: /model/ },
  ];
  for (const c of fail) {
    it(c.name, async () => {
      const beforeRec = await ctx.registry.device('upd-1');
      await rejects(ctx.registry.updateDevice('upd-1', c.patch, 'test'), 'bad_request', c.re);
      assert.deepEqual(await ctx.registry.device('upd-1'), beforeRec, 'nothing changed');
    });
  }
});

describe('importDevices', () => {
  it('ok-5000 rows: bad and already registered rows reported, the rest inserted in batches, fast', async () => {
    const total = 5000;
    // 40 registered beforehand.
    for (let i = 0; i < total; i += 125) await ctx.registry.register({ id: `imp-${i}`, profile: 'device-tls' }, 'test');
    const rows: Array<{ line: number; input: DeviceInput }> = [];
    const bad = new Map<number, RegExp>();
    for (let i = 0; i < total; i++) {
      const line = i + 2;
      let input: DeviceInput = { id: `imp-${i}`, profile: 'device-tls', domain: `site-${i % 5}`, sans: [`dns:imp-${i}.example`] };
      if (i % 97 === 3) {
        input = { ...input, id: `imp ${i}` };
        bad.set(line, /the id must be/);
      } else if (i % 211 === 7) {
        input = { ...input, profile: 'no-such-profile' };
        bad.set(line, /no-such-profile/);
      } else if (i % 331 === 11) {
        input = { ...input, sans: ['email:x@example.com'] };
        bad.set(line, /dns:, ip: or uri:/);
      }
      rows.push({ line, input });
    }
    const progress: Array<[number, number]> = [];
    const t0 = performance.now();
    const r = await ctx.registry.importDevices(rows, 'test:import', (done, n) => progress.push([done, n]));
    const ms = performance.now() - t0;

    const preExisting = new Set(Array.from({ length: total / 125 }, (_, k) => `imp-${k * 125}`));
    const badIds = new Set([...bad.keys()].map((line) => rows[line - 2].input.id));
    const expectedExisting = [...preExisting].filter((id) => !badIds.has(id));
    assert.deepEqual(
      r.rejected.map((x) => x.line),
      [...bad.keys()],
    );
    for (const x of r.rejected) assert.match(x.reason, bad.get(x.line)!, `line ${x.line}`);
    assert.deepEqual(r.existing.sort(), expectedExisting.sort());
    assert.equal(r.inserted, total - bad.size - expectedExisting.length);
    assert.deepEqual(progress, [
      [1000, total],
      [2000, total],
      [3000, total],
      [4000, total],
      [5000, total],
    ]);
    assert.ok(ms < 15_000, `5,000 rows took ${Math.round(ms)} ms`);

    const stored = await ctx.registry.device('imp-4999');
    assert.equal(stored.domain, 'site-4');
    assert.deepEqual(stored.sans, ['dns:imp-4999.example']);
    const site1 = rows.filter((x, i) => i % 5 === 1 && !bad.has(x.line) && !preExisting.has(x.input.id)).length;
    assert.equal((await ctx.registry.listDevices({ domain: 'site-1', limit: 1000 })).length, site1);
    const batches = await ctx.store.listAudit({ action: 'device.import', limit: 100 });
    assert.equal(batches.length, 5, 'one audit entry per batch');
    assert.equal(batches[0].actor, 'test:import');
  });

  it('fail-duplicate ids within a file: the first counts, later ones are rejected with their line', async () => {
    const rows = [
      { line: 2, input: { id: 'dup-1', profile: 'device-tls' } },
      { line: 3, input: { id: 'dup-2', profile: 'device-tls' } },
      { line: 4, input: { id: 'dup-1', profile: 'sensor-tls' } },
      { line: 5, input: { id: 'dup-1', profile: 'device-tls' } },
    ];
    const r = await ctx.registry.importDevices(rows, 'test');
    assert.equal(r.inserted, 2);
    assert.deepEqual(r.existing, []);
    assert.deepEqual(
      r.rejected.map((x) => [x.line, x.id]),
      [
        [4, 'dup-1'],
        [5, 'dup-1'],
      ],
    );
    assert.match(r.rejected[0].reason, /appears twice/);
    assert.equal((await ctx.registry.device('dup-1')).profile, 'device-tls');
  });

  it('duplicates across batches are caught too', async () => {
    const rows = [
      { line: 2, input: { id: 'xb-1', profile: 'device-tls' } },
      { line: 3, input: { id: 'xb-2', profile: 'device-tls' } },
      { line: 4, input: { id: 'xb-1', profile: 'device-tls' } },
    ];
    const r = await ctx.registry.importDevices(rows, 'test', undefined, 2);
    assert.equal(r.inserted, 2);
    assert.deepEqual(
      r.rejected.map((x) => x.line),
      [4],
    );
  });

  it('ok-empty import changes nothing', async () => {
    const before = (await ctx.store.listAudit({ limit: 1000 })).length;
    assert.deepEqual(await ctx.registry.importDevices([], 'test'), { inserted: 0, existing: [], rejected: [] });
    assert.equal((await ctx.store.listAudit({ limit: 1000 })).length, before);
  });
});

describe('enrollment orders', () => {
  let order: string;
  before(async () => {
    order = (await ctx.registry.createOrder({ profile: 'device-tls', quantity: 10, model: 'GX', domain: 'site-a', validDays: 30 }, 'test:ops')).id;
  });

  it('ok-create and list', async () => {
    const o = (await ctx.registry.listOrders()).find((x) => x.id === order);
    assert.ok(o);
    assert.equal(o.used, 0);
    assert.equal(o.quantity, 10);
    assert.equal(o.expiresAt!.getTime() - clock.now().getTime(), 30 * 86_400_000);
    assert.equal((await ctx.store.listAudit({ target: order }))[0].action, 'order.create');
  });

  const createFail: Array<{ name: string; o: { profile: string; quantity: number; model?: string; domain?: string }; code: ProblemCode }> = [
    { name: 'fail-order-unknown-profile', o: { profile: 'nope', quantity: 1 }, code: 'not_found' },
    { name: 'fail-order-quantity-0', o: { profile: 'device-tls', quantity: 0 }, code: 'bad_request' },
    { name: 'fail-order-quantity-fraction', o: { profile: 'device-tls', quantity: 1.5 }, code: 'bad_request' },
    { name: 'fail-order-quantity-negative', o: { profile: 'device-tls', quantity: -3 }, code: 'bad_request' },
    { name: 'fail-order-bad-domain', o: { profile: 'device-tls', quantity: 1, domain: 'Site A' }, code: 'bad_request' },
    { name: 'fail-order-bad-model', o: { profile: 'device-tls', quantity: 1, model: 'GX;drop' }, code: 'bad_request' },
  ];
  for (const c of createFail) {
    it(c.name, async () => {
      const n = (await ctx.registry.listOrders()).length;
      await rejects(ctx.registry.createOrder(c.o, 'test'), c.code);
      assert.equal((await ctx.registry.listOrders()).length, n);
    });
  }

  const fit: Array<{ name: string; input: Partial<DeviceInput>; code?: ProblemCode; re?: RegExp }> = [
    { name: 'ok-fits', input: {} },
    { name: 'fail-unknown-order', input: { orderId: 'no-such-order' }, code: 'not_found', re: /no enrollment order/ },
    { name: 'fail-other-profile', input: { profile: 'sensor-tls' }, code: 'policy_violation', re: /for profile device-tls/ },
    { name: 'fail-other-model', input: { model: 'HX' }, code: 'policy_violation', re: /for model GX/ },
    { name: 'fail-no-model', input: { model: undefined }, code: 'policy_violation', re: /for model GX/ },
    { name: 'fail-other-domain', input: { domain: 'site-b' }, code: 'policy_violation', re: /for domain site-a/ },
    { name: 'fail-no-domain', input: { domain: undefined }, code: 'policy_violation', re: /for domain site-a/ },
  ];
  for (const [i, c] of fit.entries()) {
    it(`register ${c.name}`, async () => {
      const input: DeviceInput = { id: `ord-${i}`, profile: 'device-tls', model: 'GX', domain: 'site-a', orderId: order, ...c.input };
      if (!c.code) {
        const { device } = await ctx.registry.register(input, 'test');
        assert.equal(device.orderId, order);
        return;
      }
      await rejects(ctx.registry.register(input, 'test'), c.code, c.re);
      assert.equal(await ctx.store.getDevice(input.id), undefined);
    });
  }

  it('import: rows that do not fit their order are rejected, the others registered', async () => {
    const rows = fit.map((c, i) => ({ line: i + 2, input: { id: `ordimp-${i}`, profile: 'device-tls', model: 'GX', domain: 'site-a', orderId: order, ...c.input } as DeviceInput }));
    const r = await ctx.registry.importDevices(rows, 'test');
    assert.equal(r.inserted, 1);
    assert.deepEqual(
      r.rejected.map((x) => x.id),
      rows.slice(1).map((x) => x.input.id),
    );
  });
});

describe('manufacturer CAs', () => {
  let caPem: string;
  const untrustAll = async () => {
    for (const a of await ctx.registry.listManufacturerCas()) await ctx.registry.removeManufacturerCa(a.fingerprint, 'test');
  };
  before(() => {
    caPem = readFileSync(opensslCert('Maker Root A', CA_EXT), 'utf8');
  });

  it('ok-add, list, remove by fingerprint with colons and upper case', async () => {
    const added = await ctx.registry.addManufacturerCa(caPem, 'test:admin');
    assert.equal(added.length, 1);
    assert.match(added[0].fingerprint, /^[0-9a-f]{64}$/);
    assert.match(added[0].subject, /Maker Root A/);
    const fpOpenssl = spawnSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], { input: caPem, encoding: 'utf8' }).stdout.trim().split('=')[1];
    assert.equal(added[0].fingerprint, fpOpenssl.replace(/:/g, '').toLowerCase(), 'sha256 of the DER, as openssl prints it');
    assert.deepEqual(
      (await ctx.registry.listManufacturerCas()).map((a) => a.fingerprint),
      [added[0].fingerprint],
    );
    await ctx.registry.removeManufacturerCa(fpOpenssl.toUpperCase(), 'test:admin');
    assert.deepEqual(await ctx.registry.listManufacturerCas(), []);
    const actions = (await ctx.store.listAudit({ action: 'trust.add' })).concat(await ctx.store.listAudit({ action: 'trust.remove' }));
    assert.equal(actions.length, 2);
  });

  it('ok-a PEM bundle of two CAs adds both', async () => {
    const other = readFileSync(opensslCert('Maker Root B', CA_EXT), 'utf8');
    const added = await ctx.registry.addManufacturerCa(`some text\n${caPem}\n${other}`, 'test');
    assert.equal(added.length, 2);
    for (const a of added) await ctx.registry.removeManufacturerCa(a.fingerprint, 'test');
  });

  it('fail-duplicate: already_exists', async () => {
    await ctx.registry.addManufacturerCa(caPem, 'test');
    await rejects(ctx.registry.addManufacturerCa(caPem, 'test'), 'already_exists');
    assert.equal((await ctx.registry.listManufacturerCas()).length, 1);
    await ctx.registry.removeManufacturerCa((await ctx.registry.listManufacturerCas())[0].fingerprint, 'test');
  });

  const fail: Array<{ name: string; pem: () => string; re: RegExp }> = [
    { name: 'fail-leaf-certificate', pem: () => readFileSync(opensslCert('Not A CA', ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature']), 'utf8'), re: /is not a CA certificate/ },
    { name: 'fail-ca-without-keyCertSign', pem: () => readFileSync(opensslCert('CA No KeyCertSign', ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature']), 'utf8'), re: /is not a CA certificate/ },
    { name: 'fail-no-basic-constraints', pem: () => readFileSync(opensslCert('No BC', ['keyUsage=critical,keyCertSign']), 'utf8'), re: /is not a CA certificate/ },
    { name: 'fail-garbage-text', pem: () => 'hello, I am a CA, trust me', re: /no PEM CERTIFICATE/ },
    { name: 'fail-empty', pem: () => '', re: /no PEM CERTIFICATE/ },
    { name: 'fail-private-key-only', pem: () => readFileSync(join(work, 'Maker Root A.key'), 'utf8'), re: /no PEM CERTIFICATE/ },
    { name: 'fail-garbage-inside-pem', pem: () => '-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n', re: /certificate/i },
  ];
  for (const c of fail) {
    it(c.name, async () => {
      try {
        await rejects(ctx.registry.addManufacturerCa(c.pem(), 'test'), 'bad_request', c.re);
        assert.deepEqual(await ctx.registry.listManufacturerCas(), []);
      } finally {
        await untrustAll();
      }
    });
  }

  it('fail-a bundle with one non-CA certificate trusts none of it', async () => {
    const leaf = readFileSync(join(work, 'Not A CA.pem'), 'utf8');
    try {
      await rejects(ctx.registry.addManufacturerCa(`${caPem}${leaf}`, 'test'), 'bad_request', /is not a CA certificate/);
      assert.deepEqual(await ctx.registry.listManufacturerCas(), [], 'all or nothing: the valid CA before the leaf is not trusted either');
    } finally {
      await untrustAll();
    }
  });

  it('fail-remove unknown fingerprint: not_found', async () => {
    await rejects(ctx.registry.removeManufacturerCa('ab'.repeat(32), 'test'), 'not_found');
  });
});

describe('approval decisions', () => {
  let pendingId: string;
  let pendingId2: string;
  before(async () => {
    for (const id of ['appr-1', 'appr-2']) {
      const { secret } = await ctx.registry.register({ id, profile: 'device-tls', requireApproval: true }, 'test', true);
      const { csrPem } = opensslCsr(work, id, { subj: `/CN=${id}` });
      const r = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: id, secret: secret! }, csr: csrPem, via: 'test' });
      assert.equal(r.status, 'pending');
      if (id === 'appr-1') pendingId = r.pendingId;
      else pendingId2 = r.pendingId;
    }
  });

  it('ok-list pending', async () => {
    const ids = (await ctx.registry.listPending('pending')).map((p) => p.id);
    assert.ok(ids.includes(pendingId) && ids.includes(pendingId2));
  });

  it('ok-approve, then fail-decide again with conflict (either way)', async () => {
    const p = await ctx.registry.decide(pendingId, true, 'token:officer');
    assert.equal(p.status, 'approved');
    assert.equal(p.decidedBy, 'token:officer');
    assert.deepEqual(p.decidedAt, clock.now());
    await rejects(ctx.registry.decide(pendingId, true, 'token:other'), 'conflict', /approved, not pending/);
    await rejects(ctx.registry.decide(pendingId, false, 'token:other'), 'conflict');
    assert.equal((await ctx.store.getPendingEnrollment(pendingId))!.decidedBy, 'token:officer');
    const audit = await ctx.store.listAudit({ target: pendingId });
    assert.deepEqual(
      audit.map((a) => a.action),
      ['enrollment.pending', 'enrollment.approve'],
    );
  });

  it('ok-reject, then fail-approve with conflict', async () => {
    assert.equal((await ctx.registry.decide(pendingId2, false, 'token:officer')).status, 'rejected');
    await rejects(ctx.registry.decide(pendingId2, true, 'token:officer'), 'conflict');
    assert.deepEqual(
      (await ctx.registry.listPending('rejected')).map((p) => p.id),
      [pendingId2],
    );
  });

  it('fail-decide unknown: not_found', async () => {
    await rejects(ctx.registry.decide('00000000-0000-0000-0000-000000000000', true, 'test'), 'not_found');
  });
});

describe('listDevices', () => {
  it('filters and keyset paging', async () => {
    await ctx.registry.importDevices(
      ['ls-a', 'ls-b', 'ls-c', 'ls-d'].map((id, i) => ({ line: i + 2, input: { id, profile: i % 2 ? 'sensor-tls' : 'device-tls', domain: 'list-site', model: 'LM', owner: i < 2 ? 'alice' : 'bob' } })),
      'test',
    );
    const ids = async (q: Parameters<typeof ctx.registry.listDevices>[0]) => (await ctx.registry.listDevices(q)).map((x) => x.id);
    assert.deepEqual(await ids({ domain: 'list-site' }), ['ls-a', 'ls-b', 'ls-c', 'ls-d']);
    assert.deepEqual(await ids({ domain: 'list-site', profile: 'sensor-tls' }), ['ls-b', 'ls-d']);
    assert.deepEqual(await ids({ model: 'LM', owner: 'bob' }), ['ls-c', 'ls-d']);
    assert.deepEqual(await ids({ domain: 'list-site', limit: 2 }), ['ls-a', 'ls-b']);
    assert.deepEqual(await ids({ domain: 'list-site', afterId: 'ls-b', limit: 2 }), ['ls-c', 'ls-d']);
    await ctx.registry.setState('ls-c', 'retired', 'test');
    assert.deepEqual(await ids({ domain: 'list-site', state: 'retired' }), ['ls-c']);
  });
});
