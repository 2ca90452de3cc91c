/**
 * The agent daemon in front of a real Mosquitto broker (Debian, 2.0), mutual
 * TLS with a CRL, everything from fleetpki over the wire:
 *   - the broker host runs `fleetpki agent run`; its hook copies the
 *     certificate, key, CA bundle and the issuing CA's CRL into the broker's
 *     folder and the agent sends SIGHUP (Mosquitto rereads them);
 *   - two devices enroll with `fleetpki agent enroll` and publish/subscribe
 *     with the agent's files;
 *   - the broker's certificate lives 60 s: the daemon renews it at 2/3 of
 *     its life with a new key, the hook reloads the broker, clients go on;
 *   - a device is revoked: the daemon fetches the new CRL, the hook delivers
 *     it, the broker refuses the device and keeps serving the other.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { BIN, tempDir } from '../helpers/data_dir.js';
import { fleetpkiAsync, registerDevice, run } from '../helpers/est.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';
import { startMosquitto, type RunningMosquitto } from '../helpers/mosquitto.js';

const TOPIC = 'plant-a/readings';
let env: AgentEnv;
let broker: RunningMosquitto | undefined;
let daemon: ChildProcess | undefined;
let daemonLog = '';
let bdir = '';
const agentDir = (id: string) => join(env.work, `agent-${id}`);

async function until(what: string, ms: number, fn: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}\n--- agent daemon ---\n${daemonLog}\n--- broker ---\n${broker?.log() ?? ''}`);
    await sleep(100);
  }
}

const tls = (id: string) => ['--cafile', env.rootPem, '--cert', join(agentDir(id), 'current', 'cert.pem'), '--key', join(agentDir(id), 'current', 'key.pem'), '-h', '127.0.0.1', '-p', String(broker!.port)];
const publish = (id: string, m: string) => run('mosquitto_pub', [...tls(id), '-t', TOPIC, '-m', m, '-q', '1'], '', 10_000);

async function roundTrip(from: string, to: string, n: number): Promise<void> {
  const clientId = `sub-${to}-${n}`;
  const sub = spawn('mosquitto_sub', [...tls(to), '-i', clientId, '-t', TOPIC, '-C', '1', '-W', '10', '-q', '1']);
  let out = '';
  sub.stdout.on('data', (b) => (out += b));
  sub.stderr.on('data', (b) => (out += b));
  const done = new Promise<number | null>((r) => sub.on('close', r));
  await until(`${to} to subscribe`, 10_000, () => broker!.log().includes(`Sending SUBACK to ${clientId}`));
  const m = `reading ${n} from ${from}`;
  const p = await publish(from, m);
  assert.equal(p.status, 0, `${from} could not publish: ${p.stderr}\n${broker!.log().slice(-2000)}`);
  assert.equal(await done, 0, out);
  assert.ok(out.split('\n').includes(m), out);
}

/** The serial of the certificate the broker presents now (openssl s_client). */
async function brokerSerial(): Promise<string> {
  const r = await run('sh', ['-c', `openssl s_client -connect 127.0.0.1:${broker!.port} -CAfile ${env.rootPem} -cert ${join(agentDir('dev-b'), 'current', 'cert.pem')} -key ${join(agentDir('dev-b'), 'current', 'key.pem')} </dev/null 2>/dev/null | openssl x509 -noout -serial`], '', 15_000);
  return r.stdout.trim().replace(/^serial=/, '').toLowerCase();
}

before(async () => {
  env = await startAgentEnv({
    config: (c) => {
      c.profiles['broker-short'] = { ...DEFAULT_PROFILES['device-tls'], description: 'broker identity, 60 s', validitySeconds: 60 };
      c.crl.checkIntervalSeconds = 1;
    },
  });
  // Its own temp folder: the broker, run as `mosquitto`, must be able to reach it (/tmp/x, not a 0700 parent).
  bdir = tempDir('fleetpki-agent-broker-');
  const hook = join(env.work, 'broker-hook.sh');
  // What a deployment's hook does: hand the broker its files (readable by the user it runs as).
  writeFileSync(
    hook,
    `#!/bin/sh
set -e
B=${bdir}
cp "$FLEETPKI_AGENT_CHAIN" "$B/cert.pem.new"; mv "$B/cert.pem.new" "$B/cert.pem"
(umask 077; cp "$FLEETPKI_AGENT_KEY" "$B/key.pem.new"); mv "$B/key.pem.new" "$B/key.pem"
cat "$FLEETPKI_AGENT_TRUST" "$FLEETPKI_AGENT_CACERTS" > "$B/ca.pem.new"; mv "$B/ca.pem.new" "$B/ca.pem"
if [ -n "$FLEETPKI_AGENT_CRL" ] && [ -f "$FLEETPKI_AGENT_CRL" ]; then cp "$FLEETPKI_AGENT_CRL" "$B/crl.pem.new"; mv "$B/crl.pem.new" "$B/crl.pem"; fi
if [ "$(id -u)" = 0 ]; then chown mosquitto:mosquitto "$B"/*.pem; fi
echo "$FLEETPKI_AGENT_EVENT $FLEETPKI_AGENT_SERIAL" >> "$B/hook.log"
`,
    { mode: 0o755 },
  );

  for (const id of ['dev-a', 'dev-b']) {
    const secret = await registerDevice(env.ctx, { id, domain: 'plant-a' });
    const r = await fleetpkiAsync(['agent', 'enroll', '--state', agentDir(id), '--server', env.base, '--ca-bundle', env.rootPem, '--id', id, '--secret-env', 'DEV_SECRET'], { DEV_SECRET: secret });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /state\s+enrolled/);
  }

  const secret = await registerDevice(env.ctx, { id: 'broker-1', profile: 'broker-short', domain: 'plant-a', sans: ['dns:localhost', 'ip:127.0.0.1'] });
  daemon = spawn(
    process.execPath,
    [BIN, 'agent', 'run', '--state', agentDir('broker-1'), '--server', env.base, '--ca-bundle', env.rootPem, '--id', 'broker-1', '--secret-env', 'BROKER_SECRET',
      '--refresh', '1', '--backoff-initial', '1', '--backoff-max', '5', '--hook', hook, '--signal', 'SIGHUP', '--pid-file', join(bdir, 'mosquitto.pid')],
    { env: { ...process.env, BROKER_SECRET: secret }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  daemon.stdout!.on('data', (b) => (daemonLog += b));
  daemon.stderr!.on('data', (b) => (daemonLog += b));
  await until('the hook to deliver the broker its files and CRL', 20_000, () => existsSync(join(bdir, 'crl.pem')) && existsSync(join(bdir, 'key.pem')));
  broker = await startMosquitto(bdir, { cafile: join(bdir, 'ca.pem'), certfile: join(bdir, 'cert.pem'), keyfile: join(bdir, 'key.pem'), crlfile: join(bdir, 'crl.pem') });
  writeFileSync(join(bdir, 'mosquitto.pid'), `${broker.pid}\n`);
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon!.once('close', r));
  }
  await broker?.stop();
  await env?.close();
  if (bdir) rmSync(bdir, { recursive: true, force: true });
});

describe('agent daemon + Mosquitto (mutual TLS, CRL, SIGHUP)', () => {
  it('ok-devices-publish-and-subscribe-with-agent-certificates', async () => {
    await roundTrip('dev-a', 'dev-b', 1);
    await roundTrip('dev-b', 'dev-a', 2);
    assert.match(broker!.log(), /\bu'dev-a'\)/);
  });

  it('ok-the-daemon-renews-the-60-second-broker-certificate-and-the-broker-reloads', async () => {
    const first = readFileSync(join(bdir, 'hook.log'), 'utf8').split('\n').find((l) => l.startsWith('enrolled '))!.split(' ')[1];
    assert.equal(await brokerSerial(), first);
    const st = JSON.parse((await fleetpkiAsync(['agent', 'status', '--state', agentDir('broker-1'), '--json'])).stdout);
    const renewAt = Date.parse(st.identity.renewAt);
    const life = Date.parse(st.identity.notAfter) - Date.parse(st.identity.obtainedAt);
    assert.ok(Math.abs(renewAt - (Date.parse(st.identity.obtainedAt) + (2 / 3) * life)) <= 0.05 * life + 1000, 'renewal at 2/3 (± jitter)');
    await until('the renewal', 70_000, () => /^renewed /m.test(readFileSync(join(bdir, 'hook.log'), 'utf8')));
    const second = readFileSync(join(bdir, 'hook.log'), 'utf8').split('\n').find((l) => l.startsWith('renewed '))!.split(' ')[1];
    assert.notEqual(second, first);
    assert.ok(Date.now() < Date.parse(st.identity.notAfter), 'renewed before the old certificate expired');
    await until('the broker to present the new certificate', 10_000, async () => (await brokerSerial()) === second);
    await roundTrip('dev-a', 'dev-b', 3);
    assert.match(daemonLog, /renewed: .*broker-1/);
  });

  it('ok-after-revocation-the-hook-delivers-the-crl-and-the-broker-refuses-the-device', async () => {
    const serial = JSON.parse((await fleetpkiAsync(['agent', 'status', '--state', agentDir('dev-a'), '--json'])).stdout).identity.serial;
    const hooksBefore = readFileSync(join(bdir, 'hook.log'), 'utf8').split('\n').filter((l) => l.startsWith('crl ')).length;
    const logFrom = broker!.log().length;
    await env.ctx.authority.revoke(serial, 'keyCompromise', 'test');
    // The server publishes within crl.checkIntervalSeconds (1 s); the daemon fetches every second.
    await until('the daemon to deliver the new CRL', 20_000, () => readFileSync(join(bdir, 'hook.log'), 'utf8').split('\n').filter((l) => l.startsWith('crl ')).length > hooksBefore);
    const crlText = (await run('openssl', ['crl', '-in', join(bdir, 'crl.pem'), '-noout', '-text'])).stdout;
    assert.match(crlText, new RegExp(`Serial Number: ${serial.toUpperCase()}`));
    await broker!.waitForLog(/Reloading config/, logFrom, 10_000);
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      refused = (await publish('dev-a', `revoked? ${i}`)).status !== 0;
      if (!refused) await sleep(250);
    }
    assert.ok(refused, `dev-a still accepted:\n${broker!.log().slice(logFrom)}`);
    // The broker logs the refusal after the client has already seen it: wait for the line.
    await broker!.waitForLog(/certificate verify failed/, logFrom, 10_000);
    await roundTrip('dev-b', 'dev-b', 4);
    const st = JSON.parse((await fleetpkiAsync(['agent', 'status', '--state', agentDir('broker-1'), '--json'])).stdout);
    assert.match(st.lastCrl.url, /\/crl\/issuing\.crl$/);
    assert.ok(Number(st.lastCrl.number) >= 2, JSON.stringify(st.lastCrl));
  });
});
