/**
 * The agent with its device key in a PKCS#11 token (SoftHSM2), driven as a
 * device drives it: `fleetpki agent enroll|renew|run|status` against a real
 * fleetpki server over EST.
 *   - the key is generated inside the token (sensitive, never extractable);
 *     the CSR the server received passes `openssl req -verify` and carries
 *     the token key; nothing of the key is on disk;
 *   - the renewal makes a new token key, authenticates with the old one
 *     (mutual TLS through OpenSSL's pkcs11 engine) and removes the old key
 *     only after the commit; --keep-key keeps it;
 *   - OpenSSL signs with the device key by its URI (current/key.uri);
 *   - the node:tls helpers do mutual TLS with the token key;
 *   - a wrong PIN or a missing token is a typed error that changes nothing.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { Agent } from '../../src/agent/agent.js';
import { connectPeer, protectServer, serverTlsOptions } from '../../src/agent/tls.js';
import { FakeClock } from '../../src/clock.js';
import { isProblem } from '../../src/errors.js';
import { DeviceTokenKeys } from '../../src/keys/device_key.js';
import { parsePkcs11Uri } from '../../src/keys/pkcs11_uri.js';
import { parseCsr } from '../../src/x509/csr.js';
import { pemEncode } from '../../src/x509/pem.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';
import { fleetpkiAsync, registerDevice } from '../helpers/est.js';
import { makeToken, withTokenPrivateKey, type TestToken } from '../helpers/softhsm.js';

// A PIN nobody would mistake for anything else: the state directory is searched for it.
const PIN = 'dev-PIN-4711';
const ENROLL = 'ENROLL_SECRET';
let token: TestToken;
let spare: { unplug(): void; plug(): void };
let env: AgentEnv;

before(async () => {
  token = makeToken('device', PIN);
  // Not 'device-…': pkcs11-tool's --token-label matches a prefix, and would pick either token.
  spare = token.addToken('spare', PIN);
  env = await startAgentEnv();
});
after(async () => {
  await env?.close();
  token?.cleanup();
});

const dirOf = (id: string) => join(env.work, `p11-${id}`);
const p11 = (label = 'device') => ['--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', label, '--pkcs11-pin-env', token.pinEnv];
const enrollArgs = (id: string, label = 'device', more: string[] = []) => ['agent', 'enroll', '--state', dirOf(id), '--server', env.base, '--ca-bundle', env.rootPem, '--id', id, '--secret-env', ENROLL, ...p11(label), ...more];

interface TokenObject {
  label: string;
  id: string;
  usage: string;
  access: string;
}

/** The token's private keys as OpenSC's pkcs11-tool lists them. */
function privateKeys(label = 'device'): TokenObject[] {
  const r = token.tool(['--login', '--pin', PIN, '--list-objects', '--type', 'privkey'], label);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout
    .split(/(?=Private Key Object)/)
    .filter((s) => s.startsWith('Private Key Object'))
    .map((o) => ({ label: /label:\s+(.*)/.exec(o)?.[1].trim() ?? '', id: /ID:\s+([0-9a-f]+)/.exec(o)?.[1] ?? '', usage: /Usage:\s+(.*)/.exec(o)?.[1].trim() ?? '', access: /Access:\s+(.*)/.exec(o)?.[1].trim() ?? '' }));
}

/** The DER SubjectPublicKeyInfo of the token's public key object with CKA_ID `id` (pkcs11-tool --read-object). */
function tokenPublicKey(id: string, label = 'device'): Buffer | undefined {
  const out = join(token.dir, `pub-${id}.der`);
  const r = token.tool(['--read-object', '--type', 'pubkey', '--id', id, '-o', out], label);
  return r.status === 0 && existsSync(out) ? readFileSync(out) : undefined;
}

const certSpki = (dir: string) => new X509Certificate(readFileSync(join(dir, 'current', 'cert.pem'))).publicKey.export({ type: 'spki', format: 'der' });
const idOfRef = (ref: string) => Buffer.from(parsePkcs11Uri(ref).id!).toString('hex');
const statusOf = async (id: string, extra: Record<string, string | undefined> = {}) => {
  const r = await fleetpkiAsync(['agent', 'status', '--state', dirOf(id), '--json'], extra);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
};

/** Every file under `dir`, recursively (symlinks not followed). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : [];
  });
}

/** What must not change when a command fails: the state, the identity files, the token's keys. */
function snapshot(id: string, label = 'device') {
  const d = dirOf(id);
  return { state: readFileSync(join(d, 'state.json'), 'utf8'), cert: readFileSync(join(d, 'current', 'cert.pem'), 'utf8'), gens: readdirSync(join(d, 'gen')), keys: privateKeys(label) };
}

describe('the device key is born in the token and never leaves it', () => {
  it('ok-enroll: the token makes the key and signs the CSR (openssl req -verify); the certificate carries the token key; nothing of it on disk', async () => {
    await env.ctx.registry.register({ id: 'tok-1', profile: 'device-tls', domain: 'plant-a', requireApproval: true }, 'test', false);
    const secret = await env.ctx.registry.newSecret('tok-1', 'test');
    const first = await fleetpkiAsync(enrollArgs('tok-1'), { [ENROLL]: secret });
    assert.equal(first.status, 4, `awaits approval\n${first.stderr}`);

    const keys = privateKeys();
    assert.equal(keys.length, 1, JSON.stringify(keys));
    assert.equal(keys[0].access, 'sensitive, always sensitive, never extractable, local');
    assert.equal(keys[0].usage, 'sign', 'a signing key and nothing else');
    assert.match(keys[0].label, /^tok-1-[0-9a-f]{8}-g1-[0-9a-f]{8}$/);

    // The request exactly as the server received it.
    const pending = (await env.ctx.registry.listPending('pending')).find((p) => p.deviceId === 'tok-1')!;
    const csrFile = join(env.work, 'tok-1.csr');
    writeFileSync(csrFile, pemEncode('CERTIFICATE REQUEST', pending.csrDer));
    const v = spawnText('openssl', ['req', '-verify', '-noout', '-in', csrFile]);
    assert.equal(v.status, 0, v.out);
    assert.match(v.out, /verify OK/);
    const tokenSpki = tokenPublicKey(keys[0].id);
    assert.ok(tokenSpki, 'the token holds the public half');
    assert.deepEqual(Buffer.from(parseCsr(pending.csrDer).spki), tokenSpki, 'the CSR names the token key');

    await env.ctx.registry.decide(pending.id, true, 'test:officer');
    const second = await fleetpkiAsync(['agent', 'enroll', '--state', dirOf('tok-1'), '--secret-env', ENROLL], { [ENROLL]: secret });
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(privateKeys(), keys, 'the key that waited for approval, no other');
    assert.deepEqual(certSpki(dirOf('tok-1')), tokenSpki, "the certificate's public key is the token key's");

    // Status needs no PIN: it reads the certificate, not the token.
    const st = await statusOf('tok-1', { [token.pinEnv]: undefined });
    assert.equal(st.state, 'enrolled');
    assert.equal(st.key.store, 'pkcs11');
    assert.equal(idOfRef(st.key.ref), keys[0].id);
    assert.equal(st.files.key, join(dirOf('tok-1'), 'current', 'key.uri'));
    assert.equal(readFileSync(st.files.key, 'utf8').trim(), st.key.ref);
    assert.equal((await env.ctx.store.getDevice('tok-1'))?.currentSerial, st.identity.serial);

    const settings = JSON.parse(readFileSync(join(dirOf('tok-1'), 'agent.json'), 'utf8'));
    assert.deepEqual(settings.keyStore, { type: 'pkcs11', module: token.module, token: 'device', pinEnv: token.pinEnv });
    for (const f of filesUnder(dirOf('tok-1'))) {
      const text = readFileSync(f, 'latin1');
      assert.doesNotMatch(text, /PRIVATE KEY/, `${f} holds a private key`);
      assert.ok(!text.includes(PIN), `${f} holds the PIN`);
    }
    assert.equal(existsSync(join(dirOf('tok-1'), 'gen', '1', 'key.pem')), false);
  });

  it('fail-read-private-value: the token refuses to reveal (CKA_VALUE) or export the device key', async () => {
    await withTokenPrivateKey(token.module, 'device', PIN, privateKeys()[0].id, (lib, p, s, key) => {
      assert.throws(() => lib.C_GetAttributeValue(s, key, [{ type: p.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/);
      const a = lib.C_GetAttributeValue(s, key, [{ type: p.CKA_SENSITIVE }, { type: p.CKA_EXTRACTABLE }, { type: p.CKA_NEVER_EXTRACTABLE }, { type: p.CKA_ALWAYS_SENSITIVE }]);
      assert.deepEqual(a.map((x) => x.value[0]), [1, 0, 1, 1]);
    });
  });

  it("ok-openssl-engine: OpenSSL signs with the device key by its URI (current/key.uri); the signature verifies with the device's certificate", () => {
    const d = dirOf('tok-1');
    const uri = readFileSync(join(d, 'current', 'key.uri'), 'utf8').trim();
    const msg = join(env.work, 'tok-1.msg');
    writeFileSync(msg, 'a reading signed inside the token\n');
    const sig = spawnText('openssl', ['dgst', '-sha256', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', uri, '-passin', `env:${token.pinEnv}`, '-out', `${msg}.sig`, msg], { OPENSSL_CONF: token.opensslConf });
    assert.equal(sig.status, 0, sig.out);
    writeFileSync(`${msg}.pub`, new X509Certificate(readFileSync(join(d, 'current', 'cert.pem'))).publicKey.export({ type: 'spki', format: 'pem' }));
    const ver = spawnText('openssl', ['dgst', '-sha256', '-verify', `${msg}.pub`, '-signature', `${msg}.sig`, msg]);
    assert.match(ver.out, /Verified OK/);
  });

  it('ok-renew-new-key: a new token key; the old certificate authenticates the request through the token (TLS via the engine); the old key goes after the commit', async () => {
    const d = dirOf('tok-1');
    const [old] = privateKeys();
    const before = (await statusOf('tok-1')).identity;
    const r = await fleetpkiAsync(['agent', 'renew', '--state', d, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const st = JSON.parse(r.stdout);
    assert.equal(st.identity.generation, 2);
    assert.notEqual(st.identity.serial, before.serial);
    assert.equal(st.identity.via, 'renewal');
    const keys = privateKeys();
    assert.equal(keys.length, 1, `only the new key is left: ${JSON.stringify(keys)}`);
    assert.notEqual(keys[0].id, old.id);
    assert.match(keys[0].label, /-g2-[0-9a-f]{8}$/);
    assert.equal(keys[0].access, 'sensitive, always sensitive, never extractable, local');
    assert.equal(tokenPublicKey(old.id), undefined, 'the old public key object is gone too');
    assert.deepEqual(certSpki(d), tokenPublicKey(keys[0].id));
    assert.equal(idOfRef(st.key.ref), keys[0].id);
    assert.deepEqual(readdirSync(join(d, 'gen')), ['2']);
    assert.equal((await env.ctx.store.getDevice('tok-1'))?.currentSerial, st.identity.serial);
  });

  it('ok-keep-key: with --keep-key the renewal certifies the same token key again', async () => {
    const secret = await registerDevice(env.ctx, { id: 'tok-2', domain: 'plant-a' });
    const r = await fleetpkiAsync(enrollArgs('tok-2', 'device', ['--keep-key']), { [ENROLL]: secret });
    assert.equal(r.status, 0, r.stderr);
    const mine = () => privateKeys().filter((k) => k.label.startsWith('tok-2-'));
    const [k1] = mine();
    const s1 = (await statusOf('tok-2')).identity.serial;
    const again = await fleetpkiAsync(['agent', 'renew', '--state', dirOf('tok-2'), '--json']);
    assert.equal(again.status, 0, again.stderr);
    const st = JSON.parse(again.stdout);
    assert.notEqual(st.identity.serial, s1);
    assert.deepEqual(mine(), [k1], 'the same key, no other');
    assert.deepEqual(certSpki(dirOf('tok-2')), tokenPublicKey(k1.id));
    assert.equal(readFileSync(join(dirOf('tok-2'), 'current', 'key.uri'), 'utf8').trim(), st.key.ref);
  });

  it('ok-move-to-a-token: a file-key device renews into the token; the key file is gone; --keep-key cannot carry a file key into it', async () => {
    const secret = await registerDevice(env.ctx, { id: 'tok-6', domain: 'plant-a' });
    const d = dirOf('tok-6');
    const r = await fleetpkiAsync(['agent', 'enroll', '--state', d, '--server', env.base, '--ca-bundle', env.rootPem, '--id', 'tok-6', '--secret-env', ENROLL], { [ENROLL]: secret });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(d, 'gen', '1', 'key.pem')));
    const keyStore = { type: 'pkcs11' as const, module: token.module, token: 'device', pinEnv: token.pinEnv };

    // Keeping the key cannot move it: a token key is born in the token. A typed error; nothing changes.
    const keep = await Agent.open({ dir: d, settings: { keyStore, newKeyOnRenewal: false } });
    const before = snapshot('tok-6');
    await assert.rejects(keep.renew(), (e) => isProblem(e, 'config_error') && /a file key cannot move into the token/.test(e.detail));
    assert.deepEqual({ ...snapshot('tok-6'), state: before.state }, before);
    assert.equal(keep.status().identity?.generation, 1);
    await keep.close();

    const a = await Agent.open({ dir: d, settings: { keyStore }, saveSettings: true });
    try {
      await a.renew();
      const st = a.status();
      assert.equal(st.identity?.generation, 2);
      assert.equal(st.key?.store, 'pkcs11');
      assert.equal(existsSync(join(d, 'gen', '1')), false, 'the key file went with its generation');
      assert.equal(existsSync(join(d, 'gen', '2', 'key.pem')), false);
      const mine = privateKeys().filter((k) => k.label.startsWith('tok-6-'));
      assert.equal(mine.length, 1);
      assert.deepEqual(certSpki(d), tokenPublicKey(mine[0].id));
    } finally {
      await a.close();
    }
  });

  it('ok-sweep: a token key of an interrupted attempt is removed at the next start; keys of others in the token stay', async () => {
    const d = dirOf('tok-1');
    const tag = JSON.parse(readFileSync(join(d, 'state.json'), 'utf8')).keyTag as string;
    const keys = new DeviceTokenKeys({ module: token.module, token: 'device', pin: () => PIN });
    try {
      // What a crash between "key generated" and "state.json committed" leaves behind, and a key of another program.
      await keys.generate('ecdsa-p256', `tok-1 ${tag} g3`);
      const foreign = token.tool(['--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--id', 'f00d', '--label', 'someone-else', '--usage-sign']);
      assert.equal(foreign.status, 0, foreign.stderr);
    } finally {
      await keys.close();
    }
    const before = privateKeys().map((k) => k.label);
    assert.ok(before.some((l) => l.includes(`-${tag}-g3-`)));
    const r = await fleetpkiAsync(['agent', 'run', '--once', '--state', d]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /a key of an attempt that did not complete/);
    const after = privateKeys().map((k) => k.label);
    assert.ok(!after.some((l) => l.includes(`-${tag}-g3-`)), 'the leftover is gone');
    assert.ok(after.includes('someone-else'), 'a key the agent did not make stays');
    assert.ok(after.some((l) => l.startsWith('tok-2-')), "another agent's key stays");
    assert.ok(after.some((l) => l.includes(`-${tag}-g2-`)), 'the current key stays');
  });
});

/** Waits (at most 5 s) for the other end of a connection to have decided. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Like spawnText, without blocking the event loop (a server of this process answers the command). */
function runAsync(cmd: string, args: string[], input: string, extra: Record<string, string> = {}): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...extra }, timeout: 30_000 });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('close', (status) => resolve({ status, out }));
    p.stdin.on('error', () => undefined);
    p.stdin.end(input);
  });
}

/** A command's exit status with stdout and stderr together. */
function spawnText(cmd: string, args: string[], extra: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...extra } });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the command line', () => {
  const M = ['--pkcs11-module', '/usr/lib/softhsm/libsofthsm2.so'];
  const cases: Array<{ name: string; args: string[]; detail: RegExp }> = [
    { name: 'fail-pkcs11-options-without-key-store', args: ['--pkcs11-token', 'device'], detail: /^fleetpki: bad_request: --pkcs11-\* options need --key-store pkcs11/m },
    { name: 'fail-unknown-key-store', args: ['--key-store', 'tpm'], detail: /^fleetpki: bad_request: --key-store is file or pkcs11, not "tpm"/m },
    { name: 'fail-no-token', args: ['--key-store', 'pkcs11', ...M], detail: /^fleetpki: bad_request: --key-store pkcs11 needs --pkcs11-module and --pkcs11-token/m },
    { name: 'fail-no-pin-source', args: ['--key-store', 'pkcs11', ...M, '--pkcs11-token', 'device'], detail: /^fleetpki: bad_request: give the PIN source: exactly one of/m },
    { name: 'fail-ed25519-in-a-token', args: [...p11(), '--key-algorithm', 'ed25519'], detail: /^fleetpki: config_error: .*ed25519 keys are software-only/m },
  ];
  for (const c of cases) {
    it(`${c.name}: refused before anything is made`, async () => {
      const keys = privateKeys();
      const r = await fleetpkiAsync(['agent', 'enroll', '--state', dirOf(c.name), '--server', env.base, '--ca-bundle', env.rootPem, '--id', 'cli-x', '--secret-env', ENROLL, ...c.args], { [ENROLL]: 'unused' });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, c.detail);
      assert.deepEqual(privateKeys(), keys);
      assert.equal(existsSync(join(dirOf(c.name), 'agent.json')), false);
    });
  }

  it('ok-help-names-the-options', async () => {
    const r = await fleetpkiAsync(['agent', 'enroll', '--help']);
    for (const o of ['--key-store <type>', '--pkcs11-module <path>', '--pkcs11-token <label>', '--pkcs11-pin-env <var>', '--pkcs11-pin-file <file>', '--pkcs11-engine <path>']) assert.ok(r.stdout.includes(o), o);
    const top = await fleetpkiAsync(['agent', '--help']);
    assert.match(top.stdout, /--key-store pkcs11 --pkcs11-module M --pkcs11-token LABEL/);
  });
});

describe('bad conditions change nothing', () => {
  before(async () => {
    // tok-4 keeps its key in a token of its own, which the tests unplug.
    const secret = await registerDevice(env.ctx, { id: 'tok-4', domain: 'plant-a' });
    const r = await fleetpkiAsync(enrollArgs('tok-4', 'spare'), { [ENROLL]: secret });
    assert.equal(r.status, 0, r.stderr);
  });

  it('fail-wrong-pin-enroll: key_unavailable, no key made, the one-time secret not spent', async () => {
    const secret = await registerDevice(env.ctx, { id: 'tok-3', domain: 'plant-a' });
    const keys = privateKeys();
    const r = await fleetpkiAsync(enrollArgs('tok-3'), { [ENROLL]: secret, [token.pinEnv]: 'wrong-PIN' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /^fleetpki: key_unavailable: the PIN of PKCS#11 token "device" is wrong/m);
    assert.ok(!r.stderr.includes('wrong-PIN'), 'the PIN is never printed');
    assert.deepEqual(privateKeys(), keys, 'no key made');
    assert.equal(existsSync(join(dirOf('tok-3'), 'gen')), false);
    assert.equal((await env.ctx.store.getDevice('tok-3'))?.currentSerial, undefined);
    assert.equal((await statusOf('tok-3')).state, 'not-enrolled');
    const ok = await fleetpkiAsync(enrollArgs('tok-3'), { [ENROLL]: secret });
    assert.equal(ok.status, 0, `the same secret still works: ${ok.stderr}`);
  });

  const refusals: Array<{ name: string; id: string; label: string; env?: Record<string, string>; unplug?: boolean; detail: RegExp }> = [
    { name: 'fail-wrong-pin-renew', id: 'tok-1', label: 'device', env: { FLEETPKI_TEST_TOKEN_PIN: 'wrong-PIN' }, detail: /^fleetpki: key_unavailable: the PIN of PKCS#11 token "device" is wrong/m },
    { name: 'fail-pin-unset-renew', id: 'tok-1', label: 'device', env: { FLEETPKI_TEST_TOKEN_PIN: '' }, detail: /^fleetpki: key_unavailable: the PKCS#11 token is locked: set \$FLEETPKI_TEST_TOKEN_PIN/m },
    { name: 'fail-token-missing-renew', id: 'tok-4', label: 'spare', unplug: true, detail: /^fleetpki: key_unavailable: no PKCS#11 token labelled "spare"/m },
  ];
  for (const c of refusals) {
    for (const cmd of [['agent', 'renew'], ['agent', 'run', '--once']]) {
      it(`${c.name} (${cmd.slice(1).join(' ')}): a typed error; state, certificate and token keys untouched; the identity still works after`, async () => {
        const before = snapshot(c.id, c.label);
        const serial = (await env.ctx.store.getDevice(c.id))?.currentSerial;
        if (c.unplug) spare.unplug();
        try {
          const r = await fleetpkiAsync([...cmd, '--state', dirOf(c.id)], c.env);
          assert.notEqual(r.status, 0, r.stdout);
          assert.match(r.stderr, c.detail);
          // Status works without the token or its PIN, and shows the working identity.
          const st = await statusOf(c.id, c.env);
          assert.equal(st.state, 'enrolled');
          assert.equal(st.identity.serial, serial);
        } finally {
          if (c.unplug) spare.plug();
        }
        assert.deepEqual(snapshot(c.id, c.label), before);
        assert.equal((await env.ctx.store.getDevice(c.id))?.currentSerial, serial, 'nothing requested');
        // Back to normal conditions: the same identity renews.
        const r = await fleetpkiAsync(['agent', 'renew', '--state', dirOf(c.id), '--json']);
        assert.equal(r.status, 0, r.stderr);
        assert.notEqual(JSON.parse(r.stdout).identity.serial, serial);
      });
    }
  }
});

describe('node:tls with a token key (OpenSSL engine)', () => {
  it('ok-mutual-tls: a token-key agent serves and connects with mutual TLS and peer authorisation; after a renewal (new token key) the server presents the new certificate', async () => {
    const clock = new FakeClock(Date.now());
    const hookLog = join(env.work, 'tok-5-hook.log');
    const keyStore = { type: 'pkcs11' as const, module: token.module, token: 'device', pinEnv: token.pinEnv };
    const t = await env.device('tok-5', { domain: 'plant-a', agent: { clock, random: () => 0.5 }, settings: { keyStore, hooks: { command: `echo "$FLEETPKI_AGENT_EVENT key=[$FLEETPKI_AGENT_KEY] uri=[$FLEETPKI_AGENT_KEY_URI]" >> ${hookLog}` } } });
    const peer = await env.device('peer-5', { domain: 'plant-a' });
    try {
      await t.agent.enroll({ secret: t.secret });
      await peer.agent.enroll({ secret: peer.secret });
      await t.agent.refresh();
      await peer.agent.refresh();
      const id = t.agent.identity();
      assert.equal(id.keyStore, 'pkcs11');
      assert.ok(!('key' in id.key), 'no PEM for a token key');

      // The token agent as the client, the file-key agent as the server (before the fake clock moves on).
      const back = createServer(serverTlsOptions(peer.agent), (_q, res) => res.end('ok'));
      const seen: string[] = [];
      protectServer(back, peer.agent, { onAccepted: (p) => seen.push(`${p.id} ${p.serial}`) });
      await new Promise<void>((r) => back.listen(0, '127.0.0.1', r));
      try {
        const c3 = await connectPeer(t.agent, { host: '127.0.0.1', port: (back.address() as AddressInfo).port });
        assert.equal(c3.peer.id, 'peer-5');
        c3.socket.end();
        await until(() => seen.length > 0);
        assert.deepEqual(seen, [`tok-5 ${id.cert.serial}`]);
        // Other software presents the same identity by the key's URI: OpenSSL's client through its pkcs11 engine.
        const chainFile = join(env.work, 'tok-5-chain.pem');
        writeFileSync(chainFile, id.chainPem);
        const uri = readFileSync(join(t.dir, 'current', 'key.uri'), 'utf8').trim();
        const ossl = await runAsync('openssl', ['s_client', '-connect', `127.0.0.1:${(back.address() as AddressInfo).port}`, '-engine', 'pkcs11', '-keyform', 'engine', '-key', uri, '-pass', `env:${token.pinEnv}`, '-cert', chainFile, '-CAfile', env.rootPem, '-ign_eof'], 'GET / HTTP/1.0\r\n\r\n', { OPENSSL_CONF: token.opensslConf });
        assert.match(ossl.out, /HTTP\/1\.[01] 200 OK[\s\S]*\r\n\r\nok/, ossl.out);
        await until(() => seen.length > 1);
        assert.deepEqual(seen, [`tok-5 ${id.cert.serial}`, `tok-5 ${id.cert.serial}`], 'the authoriser accepted the OpenSSL client as the token device');
      } finally {
        back.close();
      }

      // The token agent as the server, the file-key agent as the client.
      const accepted: string[] = [];
      const server = createServer(serverTlsOptions(t.agent), (_q, res) => res.end('ok'));
      protectServer(server, t.agent, { onAccepted: (p) => accepted.push(p.id), onRefused: (e) => accepted.push(`refused: ${e.detail}`) });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      try {
        const c1 = await connectPeer(peer.agent, { host: '127.0.0.1', port });
        assert.equal(c1.peer.id, 'tok-5');
        assert.equal(c1.peer.serial, id.cert.serial);
        c1.socket.end();
        await until(() => accepted.length > 0);
        assert.deepEqual(accepted, ['peer-5']);

        // Renewal with a new token key; the hook sees the URI, no key file.
        clock.set(Date.parse(t.agent.status().identity!.renewAt) + 1000);
        const renewed = new Promise((r) => t.agent.once('renewed', r));
        await t.agent.tick();
        await renewed;
        const id2 = t.agent.identity();
        assert.notEqual(id2.keyRef, id.keyRef);
        assert.ok(!privateKeys().some((k) => k.id === idOfRef(id.keyRef)), 'the old key is gone from the token');
        const c2 = await connectPeer(peer.agent, { host: '127.0.0.1', port });
        assert.equal(c2.peer.serial, id2.cert.serial, 'the server reloaded: new certificate, new token key');
        c2.socket.end();
        const lines = readFileSync(hookLog, 'utf8').trim().split('\n').filter((l) => !l.startsWith('crl '));
        assert.deepEqual(lines, [`enrolled key=[] uri=[${id.keyRef}]`, `renewed key=[] uri=[${id2.keyRef}]`]);
      } finally {
        server.close();
      }
    } finally {
      await t.agent.close();
    }
  });
});
