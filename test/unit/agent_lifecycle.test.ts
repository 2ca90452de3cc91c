/**
 * The agent's lifecycle against a real fleetpki server in this process, over
 * EST and HTTP: bootstrap (secret, manufacturer certificate, approval),
 * renewal over a fake clock with a new key, backoff while the CA is down,
 * recovery after expiry, trust and CRL refresh with the cache used offline,
 * hooks, and the bad conditions: a damaged state file and a full disk.
 *
 * The agent's clock is a FakeClock that starts at real time and only moves
 * forward; the server keeps real time, so the TLS layer (which uses real
 * time) accepts every certificate involved.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { nodeFiles, type AgentFiles } from '../../src/agent/files.js';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { FakeClock } from '../../src/clock.js';
import { isProblem } from '../../src/errors.js';
import { certCount, makeManufacturer, type EstEnv } from '../helpers/est.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';

let env: AgentEnv;

before(async () => {
  env = await startAgentEnv({
    config: (c) => {
      c.profiles['device-short'] = { ...DEFAULT_PROFILES['device-tls'], description: 'device-tls for a minute', validitySeconds: 60 };
    },
  });
});
after(async () => {
  await env?.close();
});

const serialOf = (pemPath: string) => new X509Certificate(readFileSync(pemPath)).serialNumber.toLowerCase();
const keyPem = (a: Agent) => readFileSync(a.paths.key, 'utf8');

/** Fixed random numbers: jitter and backoff land exactly in the middle. */
const half = () => 0.5;

describe('bootstrap', () => {
  it('ok-secret: the key is made on the device (0600), the certificate names the device and its domain, files are published', async () => {
    const { agent, secret } = await env.device('boot-1', { domain: 'plant-a' });
    const r = await agent.enroll({ secret });
    assert.equal(r.status, 'issued');
    const st = agent.status();
    assert.equal(st.state, 'enrolled');
    assert.equal(st.identity?.generation, 1);
    assert.deepEqual(st.identity?.domains, ['plant-a']);
    assert.match(st.identity!.subject, /CN=boot-1/);
    assert.equal(statSync(join(agent.dir, 'gen', '1', 'key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(agent.dir).mode & 0o777, 0o700);
    assert.equal(readlinkSync(join(agent.dir, 'current')), join('gen', '1'));
    assert.equal(serialOf(agent.paths.cert), r.status === 'issued' ? r.serial : '');
    // The server certified the key in our key file.
    const cert = new X509Certificate(readFileSync(agent.paths.cert));
    assert.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem(agent))));
    // chain.pem: leaf + issuing CA, verifiable to the root alone.
    const chain = readFileSync(agent.paths.chain, 'utf8').match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    assert.equal(chain.length, 2);
    const record = await env.ctx.store.getDevice('boot-1');
    assert.equal(record?.currentSerial, r.status === 'issued' ? r.serial : '');
  });

  it('fail-used-secret: a second enrollment with the same secret is refused; nothing is written', async () => {
    const { agent, secret } = await env.device('boot-2', { domain: 'plant-a' });
    await agent.enroll({ secret });
    const other = await Agent.open({ dir: env.file('boot-2-copy'), settings: { server: env.base, deviceId: 'boot-2' }, trustPem: env.rootPemText });
    await assert.rejects(other.enroll({ secret }), (e) => isProblem(e, 'unauthorized'));
    assert.equal(other.enrolled, false);
    assert.equal(other.status().lastError?.code, 'unauthorized');
    assert.equal(existsSync(join(other.dir, 'current')), false);
  });

  it('fail-already-enrolled: enroll on an enrolled device is refused (the agent renews instead)', async () => {
    const { agent, secret } = await env.device('boot-3', { domain: 'plant-a' });
    await agent.enroll({ secret });
    await assert.rejects(agent.enroll({ secret: 'x' }), (e) => isProblem(e, 'already_exists'));
  });

  it('ok-approval: pending until approved, then issued for the same key', async () => {
    await env.ctx.registry.register({ id: 'boot-4', profile: 'device-tls', domain: 'plant-a', requireApproval: true }, 'test', false);
    const secret = await env.ctx.registry.newSecret('boot-4', 'test');
    const { agent } = await env.device('boot-4', { register: false });
    const r1 = await agent.enroll({ secret });
    assert.equal(r1.status, 'pending');
    assert.equal(agent.status().state, 'pending-approval');
    const keyBefore = readFileSync(join(agent.dir, 'gen', '1', 'key.pem'), 'utf8');
    const p = (await env.ctx.registry.listPending('pending')).find((x) => x.deviceId === 'boot-4')!;
    await env.ctx.registry.decide(p.id, true, 'test:officer');
    const r2 = await agent.enroll({ secret });
    assert.equal(r2.status, 'issued');
    assert.equal(keyPem(agent), keyBefore, 'the key that waited for approval');
  });
});

describe('renewal over a fake clock', () => {
  it('ok-due-at-two-thirds: nothing before, a new certificate and a new key after; the old generation is gone; the hook runs', async () => {
    const clock = new FakeClock(Date.now());
    const hookLog = env.file('hook-renew.log');
    const { agent, secret } = await env.device('ren-1', {
      domain: 'plant-a',
      agent: { clock, random: half },
      settings: { hooks: { command: `echo "$FLEETPKI_AGENT_EVENT $FLEETPKI_AGENT_SERIAL $(cat "$FLEETPKI_AGENT_CERT" | head -1)" >> ${hookLog}` } },
    });
    const issued = await agent.enroll({ secret });
    assert.equal(issued.status, 'issued');
    const id1 = agent.status().identity!;
    // random 0.5: no jitter; the lifetime starts at receipt (notBefore is backdated 5 minutes).
    const expected = Date.parse(id1.obtainedAt) + (2 / 3) * (Date.parse(id1.notAfter) - Date.parse(id1.obtainedAt));
    assert.ok(Math.abs(Date.parse(id1.renewAt) - expected) < 1000, `${id1.renewAt} vs ${new Date(expected).toISOString()}`);
    const key1 = keyPem(agent);

    const n0 = await certCount(env.ctx);
    clock.set(Date.parse(id1.renewAt) - 60_000);
    await agent.tick();
    assert.equal(agent.status().identity?.serial, id1.serial, 'not due yet');
    assert.equal(await certCount(env.ctx), n0, 'nothing requested');

    clock.set(Date.parse(id1.renewAt) + 1000);
    const renewed = new Promise((resolve) => agent.once('renewed', resolve));
    await agent.tick();
    await renewed;
    const id2 = agent.status().identity!;
    assert.notEqual(id2.serial, id1.serial);
    assert.equal(id2.generation, 2);
    assert.equal(id2.via, 'renewal');
    assert.notEqual(keyPem(agent), key1, 'a new key on renewal');
    assert.equal(existsSync(join(agent.dir, 'gen', '1')), false, 'the old key is destroyed');
    assert.equal(readlinkSync(join(agent.dir, 'current')), join('gen', '2'));
    assert.equal(serialOf(agent.paths.cert), id2.serial);
    assert.equal((await env.ctx.store.getDevice('ren-1'))?.currentSerial, id2.serial);
    // The hook saw each event with the files already in place (the CRLs were fetched on the first tick).
    const lines = readFileSync(hookLog, 'utf8').trim().split('\n');
    assert.deepEqual(lines.filter((l) => !l.startsWith('crl ')), [`enrolled ${id1.serial} -----BEGIN CERTIFICATE-----`, `renewed ${id2.serial} -----BEGIN CERTIFICATE-----`]);
    assert.ok(lines.includes(`crl ${id1.serial} -----BEGIN CERTIFICATE-----`), lines.join('\n'));
    // The renewal keeps the subject (RFC 7030 §4.2.2) and the domain.
    assert.equal(id2.subject, id1.subject);
    assert.deepEqual(id2.domains, ['plant-a']);
  });

  it('ok-keep-key: with newKeyOnRenewal false the key stays', async () => {
    const clock = new FakeClock(Date.now());
    const { agent, secret } = await env.device('ren-2', { domain: 'plant-a', agent: { clock }, settings: { newKeyOnRenewal: false } });
    await agent.enroll({ secret });
    const key1 = keyPem(agent);
    clock.set(Date.parse(agent.status().identity!.renewAt) + 1);
    await agent.tick();
    assert.equal(agent.status().identity?.generation, 2);
    assert.equal(keyPem(agent), key1);
  });

  it('ok-ca-down: exponential backoff with a cap, the working certificate kept; renewal succeeds once the CA is back', async () => {
    const clock = new FakeClock(Date.now());
    const { agent, secret } = await env.device('ren-3', { domain: 'plant-a', agent: { clock, random: () => 0.999999 }, settings: { backoff: { initialSeconds: 10, maxSeconds: 40 } } });
    await agent.enroll({ secret });
    const id1 = agent.status().identity!;
    const cert1 = readFileSync(agent.paths.cert, 'utf8');
    const key1 = keyPem(agent);
    clock.set(Date.parse(id1.renewAt) + 1);
    await env.stop();
    try {
      const waits: number[] = [];
      for (let i = 0; i < 4; i++) {
        const at = clock.now().getTime();
        await agent.tick();
        const st = agent.status();
        assert.equal(st.renewal.failures, i + 1);
        assert.equal(st.renewal.lastError?.code, 'unavailable');
        assert.match(st.renewal.lastError!.detail, /unreachable: ECONNREFUSED/);
        waits.push(Date.parse(st.renewal.nextAttemptAt!) - at);
        // A tick before the next attempt does not try.
        clock.advance(1000);
        const attempts = st.renewal.lastAttemptAt;
        await agent.tick();
        assert.equal(agent.status().renewal.lastAttemptAt, attempts, 'no attempt before the backoff ends');
        clock.set(Date.parse(st.renewal.nextAttemptAt!));
      }
      // 10 s, 20 s, 40 s, then capped at 40 s (random ~1: the full ceiling).
      assert.deepEqual(waits.map((w) => Math.round(w / 1000)), [10, 20, 40, 40]);
      assert.equal(readFileSync(agent.paths.cert, 'utf8'), cert1, 'the working certificate is untouched');
      assert.equal(keyPem(agent), key1);
      assert.equal(agent.status().identity?.serial, id1.serial);
      assert.deepEqual((await import('node:fs')).readdirSync(join(agent.dir, 'gen')), ['1'], 'no half-made generation left behind');
      assert.equal(agent.status().nextRenewal, agent.status().renewal.nextAttemptAt, 'status shows the next attempt');
    } finally {
      await env.start();
    }
    await agent.tick();
    const st = agent.status();
    assert.notEqual(st.identity?.serial, id1.serial);
    assert.equal(st.renewal.failures, 0);
    assert.equal(st.renewal.lastError, undefined);
  });

  it('ok-recovery: offline past expiry, the device comes back with its manufacturer certificate', async () => {
    const mfr = await makeManufacturer({ file: env.file } as unknown as EstEnv, 'Agent Mfr');
    await env.ctx.registry.addManufacturerCa(readFileSync(mfr.rootPem, 'utf8'), 'test:operator');
    await env.server.refreshTrust();
    const idev = await mfr.idevid('rec-1');
    // The first certificate lives a minute, so the fake clock can pass its expiry and stay
    // within the lifetime of the next one (the server keeps real time).
    await env.ctx.registry.register({ id: 'rec-1', profile: 'device-short', domain: 'plant-b' }, 'test', false);
    const clock = new FakeClock(Date.now());
    const { agent } = await env.device('rec-1', { register: false, agent: { clock }, settings: { manufacturer: { cert: idev.cert, key: idev.key } } });
    const r = await agent.enroll({ manufacturer: true });
    assert.equal(r.status, 'issued');
    assert.equal(agent.status().identity?.via, 'manufacturer');
    const serial1 = agent.status().identity!.serial;
    await env.ctx.registry.updateDevice('rec-1', { profile: 'device-tls' }, 'test');
    clock.set(Date.parse(agent.status().identity!.notAfter) + 1000);
    assert.equal(agent.status().state, 'expired');
    await agent.tick();
    const st = agent.status();
    assert.equal(st.state, 'enrolled', `recovery failed: ${JSON.stringify(st.lastError)}`);
    assert.equal(st.identity?.via, 'recovery');
    assert.notEqual(st.identity?.serial, serial1);
    assert.equal((await env.ctx.store.getDevice('rec-1'))?.currentSerial, st.identity?.serial);
  });

  it('fail-expired-without-manufacturer: a clear error naming the way out, nothing requested', async () => {
    const clock = new FakeClock(Date.now());
    const { agent, secret } = await env.device('rec-2', { domain: 'plant-a', agent: { clock } });
    await agent.enroll({ secret });
    clock.set(Date.parse(agent.status().identity!.notAfter) + 1);
    const n = await certCount(env.ctx);
    await agent.tick();
    const st = agent.status();
    assert.equal(st.renewal.lastError?.code, 'unauthorized');
    assert.match(st.renewal.lastError!.detail, /fleetpki device secret rec-2/);
    assert.equal(await certCount(env.ctx), n);
  });
});

describe('trust and revocation refresh', () => {
  it('ok-refresh: CA certificates and the CRLs of the chain are cached with their nextUpdate and used offline', async () => {
    const { agent, secret } = await env.device('crl-1', { domain: 'plant-a' });
    await agent.enroll({ secret });
    const hits: string[] = [];
    agent.on('crl', (e: { urls: string[] }) => hits.push(...e.urls));
    const r = await agent.refresh();
    assert.deepEqual(r.crls.sort(), [`${env.http}/crl/issuing.crl`, `${env.http}/crl/root.crl`]);
    assert.deepEqual(hits.sort(), r.crls.sort());
    const st = agent.status();
    assert.equal(st.crls.length, 2);
    for (const c of st.crls) assert.ok(c.nextUpdate && Date.parse(c.nextUpdate) > Date.now(), 'nextUpdate kept');
    assert.ok(existsSync(join(agent.dir, 'crl', 'issuing.pem')) && existsSync(agent.paths.crls));
    assert.match(readFileSync(join(agent.dir, 'crl', 'issuing.pem'), 'utf8'), /^-----BEGIN X509 CRL-----/);
    // Unchanged CRLs are not news.
    assert.deepEqual((await agent.refresh()).crls, []);

    // Revoke, publish: the next refresh brings the new CRL.
    const other = await env.device('crl-2', { domain: 'plant-a' });
    const r2 = await other.agent.enroll({ secret: other.secret });
    await env.ctx.authority.revoke(r2.status === 'issued' ? r2.serial : '', 'keyCompromise', 'test');
    await env.server.publishCrls();
    const r3 = await agent.refresh();
    assert.deepEqual(r3.crls, [`${env.http}/crl/issuing.crl`]);

    // Offline: the CA is down, the cache still answers; a new process reads it from disk.
    await env.stop();
    try {
      await assert.rejects(agent.refresh(), (e) => isProblem(e, 'unavailable'));
      assert.equal(agent.status().refresh.failures, 1);
      const reopened = await Agent.open({ dir: agent.dir });
      const policy = reopened.peerPolicy();
      const issuing = reopened.identity().chain[0];
      const crl = policy.crls(reopened.identity().cert, issuing);
      assert.ok(crl, 'the cached CRL, read back from disk');
      assert.ok(crl.revoked.has(r2.status === 'issued' ? r2.serial : ''));
    } finally {
      await env.start();
    }
  });

  it('fail-rollback: an older CRL never replaces a newer cached one (cRLNumber only grows, RFC 5280 §5.2.3)', async () => {
    const { agent, secret } = await env.device('crl-3', { domain: 'plant-a' });
    await agent.enroll({ secret });
    const older = (await env.ctx.crls.latest('issuing', 'base', 0)).der;
    const newer = (await env.ctx.crls.publish('issuing', 'base', {})).der;
    // A distribution point whose answer the test controls (a stale cache, a replay).
    let serve = older;
    const { createServer } = await import('node:http');
    const srv = createServer((_q, res) => res.end(Buffer.from(serve)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}/mirror/issuing.crl`;
    try {
      agent.settings.crlUrls = [url];
      await agent.refresh();
      const n1 = agent.status().crls.find((c) => c.url === url)!.number!;
      serve = newer;
      assert.deepEqual((await agent.refresh()).crls, [url]);
      const n2 = agent.status().crls.find((c) => c.url === url)!.number!;
      assert.ok(BigInt(n2) > BigInt(n1));
      serve = older;
      await agent.refresh().catch(() => undefined);
      assert.match(agent.status().lastError?.detail ?? '', /older than the cached one/);
      assert.equal(agent.status().crls.find((c) => c.url === url)!.number, n2, 'the newer CRL stays');
    } finally {
      srv.close();
      agent.settings.crlUrls = [];
    }
  });
});

describe('bad conditions', () => {
  it('fail-corrupt-state: a damaged state.json is a corrupt_state error, never a new enrollment', async () => {
    const { agent, secret, dir } = await env.device('bad-1', { domain: 'plant-a' });
    await agent.enroll({ secret });
    const good = readFileSync(join(dir, 'state.json'), 'utf8');
    const cases: Array<[string, string | null]> = [
      ['truncated', good.slice(0, good.length / 2)],
      ['not-an-object', '[1,2,3]'],
      ['wrong-serial-type', good.replace(/"serial": "[0-9a-f]+"/, '"serial": 42')],
      ['serial-of-another-certificate', good.replace(/"serial": "([0-9a-f]+)"/, (_m, s: string) => `"serial": "${s.slice(0, -1)}${s.endsWith('0') ? '1' : '0'}"`)],
      ['missing', null],
    ];
    const n = await certCount(env.ctx);
    for (const [name, text] of cases) {
      if (text === null) (await import('node:fs')).rmSync(join(dir, 'state.json'));
      else writeFileSync(join(dir, 'state.json'), text);
      await assert.rejects(Agent.open({ dir }), (e) => isProblem(e, 'corrupt_state') && /state\.json/.test(e.detail), name);
    }
    assert.equal(await certCount(env.ctx), n, 'nothing re-enrolled');
    assert.equal(serialOf(join(dir, 'current', 'cert.pem')), agent.status().identity?.serial, 'the identity files are untouched');
    writeFileSync(join(dir, 'state.json'), good);
    assert.equal((await Agent.open({ dir })).status().state, 'enrolled', 'restoring the file restores the agent');
  });

  it('fail-corrupt-certificate: a damaged certificate file is reported as such', async () => {
    const { agent, secret, dir } = await env.device('bad-2', { domain: 'plant-a' });
    await agent.enroll({ secret });
    writeFileSync(join(dir, 'gen', '1', 'cert.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await assert.rejects(Agent.open({ dir }), (e) => isProblem(e, 'corrupt_state') && /cert\.pem/.test(e.detail));
  });

  it('ok-disk-full: a write failure during renewal leaves the old certificate intact; the certificate received is written on the next try without a new request', async () => {
    const clock = new FakeClock(Date.now());
    let full = false;
    const files: AgentFiles = {
      ...nodeFiles,
      async writeAtomic(path, data, mode) {
        // ENOSPC as the kernel reports it, for the certificate and everything after it.
        if (full && /gen\/2\/(cert|chain)\.pem$|state\.json$/.test(path)) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC' });
        return nodeFiles.writeAtomic(path, data, mode);
      },
    };
    const { agent, secret } = await env.device('bad-3', { domain: 'plant-a', agent: { clock, files } });
    await agent.enroll({ secret });
    const id1 = agent.status().identity!;
    const cert1 = readFileSync(agent.paths.cert, 'utf8');
    const key1 = keyPem(agent);
    clock.set(Date.parse(id1.renewAt) + 1);
    full = true;
    const n = await certCount(env.ctx);
    await agent.tick();
    assert.equal(await certCount(env.ctx), n + 1, 'the CA issued the renewal');
    assert.equal(agent.status().lastError?.detail.includes('ENOSPC'), true);
    assert.equal(readFileSync(agent.paths.cert, 'utf8'), cert1, 'old certificate intact');
    assert.equal(keyPem(agent), key1, 'old key intact');
    assert.equal(JSON.parse(readFileSync(join(agent.dir, 'state.json'), 'utf8')).identity.serial, id1.serial, 'state.json still names the old one');

    full = false;
    clock.set(Date.parse(agent.status().renewal.nextAttemptAt!));
    await agent.tick();
    assert.equal(await certCount(env.ctx), n + 1, 'no second request: the received certificate was kept');
    const id2 = agent.status().identity!;
    assert.equal(id2.generation, 2);
    assert.equal(id2.serial, (await env.ctx.store.getDevice('bad-3'))?.currentSerial);
    assert.equal(serialOf(agent.paths.cert), id2.serial);
  });
});
