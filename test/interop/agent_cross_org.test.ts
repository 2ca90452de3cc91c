/**
 * Cross-organisation trust with two real fleetpki servers: ours, and a
 * partner organisation's with its own root, issuing CA and CRLs on its own
 * plain-HTTP listener.
 *   - `fleetpki agent trust add` (another process) reaches a running
 *     `fleetpki agent run` on SIGHUP, and without it on the next refresh;
 *     `trust remove` likewise;
 *   - the daemon fetches the partner's CRLs (--crl-url) from the partner's
 *     server, checks them against the partner's CAs in the trust entry and
 *     caches them; the cache decides: a partner device is accepted for the
 *     listed domain, refused for another, refused once revoked;
 *   - a trust entry with the root alone cannot check the issuing CA's CRL:
 *     the refresh says so and what to add.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Agent } from '../../src/agent/agent.js';
import { authorizePeer, refusalOf } from '../../src/agent/peer.js';
import { FakeClock } from '../../src/clock.js';
import { pemEncode } from '../../src/x509/pem.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';
import { BIN } from '../helpers/data_dir.js';
import { fleetpkiAsync, registerDevice } from '../helpers/est.js';

let ours: AgentEnv;
let partner: AgentEnv;
let daemon: ChildProcess | undefined;
let daemonLog = '';
const partnerChains = new Map<string, Uint8Array[]>();
let bundle = '';
const dir = () => join(ours.work, 'agent-ctl-a');

async function until(what: string, ms: number, fn: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n--- agent daemon ---\n${daemonLog}`);
    await sleep(100);
  }
}

const status = async () => JSON.parse((await fleetpkiAsync(['agent', 'status', '--state', dir(), '--json'], {})).stdout);
const partnerCrl = (name: string) => `${partner.http}/crl/${name}.crl`;

/** What our agent decides about a partner device, from the cache the daemon keeps on disk. */
async function decide(id: string): Promise<string> {
  const a = await Agent.open({ dir: dir(), inspect: true });
  try {
    return `accepted via ${authorizePeer(partnerChains.get(id)!, a.peerPolicy(), 'client').anchor}`;
  } catch (e) {
    return refusalOf(e) ?? String(e);
  }
}

before(async () => {
  ours = await startAgentEnv({ org: 'Our Fleet' });
  partner = await startAgentEnv({ org: 'Partner Org' });
  for (const [id, domain] of [['p-ok', 'plant-a'], ['p-revoked', 'plant-a'], ['p-other-site', 'plant-b']]) {
    const d = await partner.device(id, { domain });
    await d.agent.enroll({ secret: d.secret });
    const me = d.agent.identity();
    partnerChains.set(id, [me.cert.der, ...me.chain.map((c) => c.der)]);
  }
  const issuing = (await partner.ctx.store.listCas()).find((c) => c.name === 'issuing')!;
  bundle = partner.file('partner-root-and-issuing.pem');
  writeFileSync(bundle, partner.rootPemText + pemEncode('CERTIFICATE', issuing.certDer));

  const secret = await registerDevice(ours.ctx, { id: 'ctl-a', domain: 'plant-a' });
  const e = await fleetpkiAsync(['agent', 'enroll', '--state', dir(), '--server', ours.base, '--ca-bundle', ours.rootPem, '--id', 'ctl-a', '--secret-env', 'S'], { S: secret });
  assert.equal(e.status, 0, e.stderr);
  // Refresh once an hour: within the test only SIGHUP makes it look again.
  daemon = spawn(process.execPath, [BIN, 'agent', 'run', '--state', dir(), '--refresh', '3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  daemon.stdout!.on('data', (b) => (daemonLog += b));
  daemon.stderr!.on('data', (b) => (daemonLog += b));
  await until('the daemon to start', 20_000, () => /fleetpki agent for ctl-a/.test(daemonLog));
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.once('close', r));
  }
  await partner?.close();
  await ours?.close();
});

describe('trust list changes reach the running daemon; partner CRLs from a second fleetpki server', () => {
  it('fail-before-trust: the partner is unknown', async () => {
    assert.equal(await decide('p-ok'), 'untrusted');
  });

  it('ok-trust-add-then-SIGHUP: the daemon rereads the trust list and fetches the partner CRLs from the partner server', async () => {
    const r = await fleetpkiAsync(['agent', 'trust', 'add', '--state', dir(), '--name', 'partner', '--ca', bundle, '--domains', 'plant-a', '--crl-url', partnerCrl('issuing'), '--crl-url', partnerCrl('root')], {});
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /with 1 CA below it for plant-a; a running agent picks it up on its next refresh, or now on SIGHUP/);
    await sleep(500);
    assert.ok(!(await status()).crls.some((c: { url: string }) => c.url.startsWith(partner.http)), 'nothing fetched before the signal');
    daemon!.kill('SIGHUP');
    await until('the partner CRLs in the cache', 20_000, async () => (await status()).crls.filter((c: { url: string }) => c.url.startsWith(partner.http)).length === 2);
    assert.match(daemonLog, /the trust list changed; reloaded/);
    const st = await status();
    const issuing = st.crls.find((c: { url: string }) => c.url === partnerCrl('issuing'));
    assert.match(issuing.issuer, /Partner Org Issuing CA/);
    assert.equal(st.refresh.lastError, undefined, JSON.stringify(st.refresh.lastError));
  });

  const cases: Array<{ name: string; id: string; want: string }> = [
    { name: 'ok-partner-device-in-a-listed-domain', id: 'p-ok', want: 'accepted via partner' },
    { name: 'ok-another-partner-device', id: 'p-revoked', want: 'accepted via partner' },
    { name: 'fail-partner-device-in-another-domain', id: 'p-other-site', want: 'domain_out_of_scope' },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.want}`, async () => {
      assert.equal(await decide(c.id), c.want);
    });
  }

  it('ok-revocation-at-the-partner: its new CRL, fetched on SIGHUP, refuses the revoked device; the others stay accepted', async () => {
    const number = (await status()).crls.find((c: { url: string }) => c.url === partnerCrl('issuing')).number;
    const serial = (await partner.ctx.store.getDevice('p-revoked'))!.currentSerial!;
    await partner.ctx.authority.revoke(serial, 'keyCompromise', 'test:partner');
    await partner.server.publishCrls();
    daemon!.kill('SIGHUP');
    await until('the new partner CRL', 20_000, async () => BigInt((await status()).crls.find((c: { url: string }) => c.url === partnerCrl('issuing')).number) > BigInt(number));
    assert.equal(await decide('p-revoked'), 'revoked');
    assert.equal(await decide('p-ok'), 'accepted via partner');
  });

  it('ok-trust-remove-then-SIGHUP: the partner is unknown again', async () => {
    const seen = (daemonLog.match(/the trust list changed; reloaded/g) ?? []).length;
    const r = await fleetpkiAsync(['agent', 'trust', 'remove', 'partner', '--state', dir()], {});
    assert.equal(r.status, 0, r.stderr);
    daemon!.kill('SIGHUP');
    await until('the daemon to reload', 20_000, () => (daemonLog.match(/the trust list changed; reloaded/g) ?? []).length > seen);
    assert.equal(await decide('p-ok'), 'untrusted');
  });

  it('ok-next-refresh-without-signal: a library agent rereads the trust list when its refresh is due, and tells the TLS helpers', async () => {
    const clock = new FakeClock(Date.now());
    const d = await ours.device('ctl-b', { domain: 'plant-a', agent: { clock } });
    await d.agent.enroll({ secret: d.secret });
    await d.agent.tick();
    const events: string[] = [];
    d.agent.on('trust', () => events.push('trust'));
    const r = await fleetpkiAsync(['agent', 'trust', 'add', '--state', d.dir, '--name', 'partner', '--ca', bundle, '--domains', 'plant-a', '--crl-url', partnerCrl('issuing'), '--crl-url', partnerCrl('root')], {});
    assert.equal(r.status, 0, r.stderr);
    await d.agent.tick();
    assert.deepEqual(events, [], 'not before the refresh is due');
    clock.set(Date.parse(d.agent.status().refresh.nextAt!) + 1000);
    await d.agent.tick();
    assert.deepEqual(events, ['trust']);
    assert.equal(authorizePeer(partnerChains.get('p-ok')!, { ...d.agent.peerPolicy(), now: new Date() }, 'client').anchor, 'partner');
  });

  it('fail-root-only-entry: the issuing CA CRL cannot be checked; the refresh names the missing certificate', async () => {
    const clock = new FakeClock(Date.now());
    const d = await ours.device('ctl-c', { domain: 'plant-a', agent: { clock } });
    await d.agent.enroll({ secret: d.secret });
    await d.agent.trustList.add('partner', partner.rootPemText, ['plant-a'], [partnerCrl('issuing'), partnerCrl('root')]);
    await d.agent.refresh().catch(() => undefined);
    const st = d.agent.status();
    assert.equal(st.refresh.lastError?.code, 'bad_request');
    assert.match(st.refresh.lastError!.detail, new RegExp(`${partnerCrl('issuing')} is not signed by a CA we trust \\(another organisation's issuing CA: add its certificate to the trust entry`));
    assert.ok(st.crls.some((c) => c.url === partnerCrl('root')), "the root's CRL is checked and cached");
    assert.ok(!st.crls.some((c) => c.url === partnerCrl('issuing')), 'the unverifiable one is not');
  });
});
