/**
 * The device side of signed firmware: an enrolled agent checks an update
 * with its own caches (fleet roots, CRLs), fetches the firmware CA's CRL the
 * first time it needs it, works offline afterwards, remembers what is
 * installed (firmware.json: anti-rollback), refuses a revoked signer once the
 * new CRL is in, and never lets another organisation's root on its trust
 * list sign firmware. The server is a real fleetpki server in this process.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lockStateDir, type Agent } from '../../src/agent/agent.js';
import { isProblem } from '../../src/errors.js';
import { bytesOf, digestStream } from '../../src/firmware/digest.js';
import { firmwareRefusalOf, type FirmwareRefusal } from '../../src/firmware/refusal.js';
import { signFirmware } from '../../src/firmware/sign.js';
import { keyObjectSigner } from '../../src/keys/key_store.js';
import { parseCertificate } from '../../src/x509/cert_info.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';
import { makeTestCa, type TestCa } from '../helpers/ca_fixture.js';
import { BIN, fleetpki, run } from '../helpers/data_dir.js';

let env: AgentEnv;
let agent: Agent;
let partner: TestCa;
const image = randomBytes(256 * 1024);

async function sign(version: string, o: { signer?: string; minVersion?: string; model?: string } = {}) {
  return (await env.ctx.firmware.sign({ signer: o.signer, model: o.model ?? 'gw-200', version, minVersion: o.minVersion, image: bytesOf(image), actor: 'test' })).der;
}

async function refused(p: Promise<unknown>, reason: FirmwareRefusal): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.equal(firmwareRefusalOf(e), reason, String(e));
    return true;
  });
}

before(async () => {
  env = await startAgentEnv({
    org: 'Gateway Fleet',
    setup: async (ctx) => {
      await ctx.authority.createIssuingCa({ name: 'firmware', parent: 'root', subject: [{ type: 'O', value: 'Gateway Fleet' }, { type: 'CN', value: 'Gateway Fleet Firmware CA' }], keyAlgorithm: 'ecdsa-p256', validityDays: 1825, actor: 'test' });
      await ctx.firmware.createSigner({ name: 'release', actor: 'test' });
      await ctx.firmware.createSigner({ name: 'hotfix', actor: 'test' });
    },
  });
  await env.server.publishCrls();
  const d = await env.device('gw-0001', { domain: 'plant-a' });
  agent = d.agent;
  await agent.enroll({ secret: d.secret });
  await agent.refresh();
  partner = await makeTestCa({ keyAlgorithm: 'ecdsa-p384' });
});

after(async () => {
  await env?.close();
  await partner?.cleanup();
});

describe('agent: firmware updates', () => {
  it('ok the first check fetches the firmware CA\'s CRL (the device\'s own chain does not name it) and caches it', async () => {
    const before = agent.status().crls.map((c) => c.url).sort();
    assert.deepEqual(before, [`${env.http}/crl/issuing.crl`, `${env.http}/crl/root.crl`]);
    const a = await agent.verifyFirmware({ signature: await sign('1.4.2', { signer: 'release', minVersion: '1.3.0' }), image: bytesOf(image), model: 'gw-200', installedVersion: '1.3.9' });
    assert.equal(a.version, '1.4.2');
    assert.equal(a.rollbackFloor, '1.3.0');
    assert.match(a.signer.subject, /CN=release firmware signer/);
    assert.ok(agent.status().crls.some((c) => c.url === `${env.http}/crl/firmware.crl`), 'firmware.crl cached');
  });

  it('ok recording the install: firmware.json; the same image again is a rollback, so is anything below the floor', async () => {
    const sig = await sign('1.4.2', { signer: 'release', minVersion: '1.3.0' });
    const a = await agent.verifyFirmware({ signature: sig, image: bytesOf(image), model: 'gw-200' });
    const st = await agent.recordFirmware(a);
    assert.deepEqual({ model: st.model, installedVersion: st.installedVersion, rollbackFloor: st.rollbackFloor }, { model: 'gw-200', installedVersion: '1.4.2', rollbackFloor: '1.3.0' });
    assert.equal(JSON.parse(readFileSync(join(agent.dir, 'firmware.json'), 'utf8')).installedVersion, '1.4.2');
    await refused(agent.verifyFirmware({ signature: sig, image: bytesOf(image) }), 'rollback');
    // A device that fell back to an old slot reports an old version: the floor still holds.
    await refused(agent.verifyFirmware({ signature: await sign('1.2.0', { signer: 'release' }), image: bytesOf(image), installedVersion: '1.0.0' }), 'rollback');
    // The model comes from firmware.json from now on.
    await refused(agent.verifyFirmware({ signature: await sign('1.5.0', { signer: 'release', model: 'gw-300' }), image: bytesOf(image) }), 'wrong_model');
    await assert.rejects(agent.recordFirmware({ ...a, model: 'gw-300' }), (e: unknown) => isProblem(e, 'conflict'));
  });

  it('ok offline: with the CA down the cached CRLs decide', async () => {
    const sig = await sign('1.5.0', { signer: 'release' });
    await env.stop();
    try {
      const a = await agent.verifyFirmware({ signature: sig, image: bytesOf(image) });
      assert.equal(a.version, '1.5.0');
    } finally {
      await env.start();
    }
  });

  it('fail-a CRL that cannot be had refuses (no_crl), and says why', async () => {
    const d = await env.device('gw-0002', { domain: 'plant-a' });
    await d.agent.enroll({ secret: d.secret });
    await d.agent.refresh();
    const sig = await sign('1.5.0', { signer: 'release' });
    await env.stop();
    try {
      await assert.rejects(d.agent.verifyFirmware({ signature: sig, image: bytesOf(image), model: 'gw-200' }), (e: unknown) => {
        assert.equal(firmwareRefusalOf(e), 'no_crl');
        assert.match((e as Error).message, /crl\/firmware\.crl.*fetching it failed: CRL .* unreachable/);
        return true;
      });
    } finally {
      await env.start();
    }
  });

  it('fail-the signer revoked: refused once the new CRL is in (refresh keeps the fetched CRL fresh)', async () => {
    const sig = await sign('1.6.0', { signer: 'hotfix' });
    assert.equal((await agent.verifyFirmware({ signature: sig, image: bytesOf(image) })).version, '1.6.0');
    const hotfix = (await env.ctx.store.getFirmwareSigner('hotfix'))!;
    await env.ctx.authority.revoke(hotfix.serial, 'keyCompromise', 'test');
    await env.server.publishCrls();
    const r = await agent.refresh();
    assert.ok(r.crls.includes(`${env.http}/crl/firmware.crl`), 'the firmware CRL is refreshed with the others');
    await refused(agent.verifyFirmware({ signature: sig, image: bytesOf(image) }), 'revoked');
  });

  it('fail-another organisation on the trust list may speak for its domains, not sign our firmware', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const signer = keyObjectSigner(privateKey);
    const r = await partner.authority.issue({ serverGeneratedSpki: signer.spki, profile: 'code-signing', subject: [{ type: 'CN', value: 'Partner Release' }], actor: 'test' });
    await agent.trustList.add('partner', partner.rootPem, ['plant-a']);
    await agent.reloadTrust();
    assert.equal(agent.peerPolicy().anchors.length, 2, 'the partner is trusted for TLS peers');
    const { der } = await signFirmware({ signer, certificate: parseCertificate(r.der), chain: r.chain.slice(0, -1) }, { model: 'gw-200', version: '9.0.0' }, await digestStream(bytesOf(image), 'sha256'), new Date());
    await refused(agent.verifyFirmware({ signature: der, image: bytesOf(image) }), 'untrusted');
    await agent.trustList.remove('partner');
    await agent.reloadTrust();
  });

  it('fail-a damaged firmware.json is corrupt_state, never a reset of the floor', async () => {
    const d = await env.device('gw-0003', { domain: 'plant-a' });
    writeFileSync(join(d.dir, 'firmware.json'), '{"installedVersion": "not a version"}');
    await assert.rejects(d.agent.verifyFirmware({ signature: await sign('2.0.0'), image: bytesOf(image), model: 'gw-200' }), (e: unknown) => isProblem(e, 'corrupt_state'));
  });
});

describe('fleetpki firmware verify --state (the agent\'s caches from the command line)', () => {
  it('ok accepted and --record; then the same version is a rollback (exit 3)', async () => {
    const sig = await sign('3.0.0', { signer: 'release', minVersion: '2.0.0' });
    writeFileSync(join(env.work, 'fw.bin'), image);
    writeFileSync(join(env.work, 'fw.sig'), sig);
    const args = ['firmware', 'verify', '--in', join(env.work, 'fw.bin'), '--sig', join(env.work, 'fw.sig'), '--state', agent.dir];
    const r = fleetpki([...args, '--record']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^result +ACCEPTED$/m);
    assert.match(r.stderr, /recorded gw-200 3\.0\.0 as installed \(rollback floor 2\.0\.0\)/);
    assert.equal((await agent.firmwareState()).rollbackFloor, '2.0.0');
    const again = fleetpki(args);
    assert.equal(again.status, 3, again.stderr);
    assert.match(again.stderr, /\(rollback\): version 3\.0\.0 is not newer than the installed 3\.0\.0/);
  });

  it('ok while the agent daemon holds the state directory: checked from the cache, nothing written; --record is refused', async () => {
    const unlock = await lockStateDir(agent.dir);
    try {
      const sig = await sign('4.0.0', { signer: 'release' });
      writeFileSync(join(env.work, 'fw4.sig'), sig);
      const args = ['firmware', 'verify', '--in', join(env.work, 'fw.bin'), '--sig', join(env.work, 'fw4.sig'), '--state', agent.dir];
      const before = readFileSync(join(agent.dir, 'state.json'), 'utf8');
      const r = fleetpki(args);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(join(agent.dir, 'state.json'), 'utf8'), before);
      const rec = fleetpki([...args, '--record']);
      assert.equal(rec.status, 1, rec.stderr);
      assert.match(rec.stderr, /conflict: another agent \(pid \d+\) is running/);
      assert.equal((await agent.firmwareState()).installedVersion, '3.0.0');
    } finally {
      await unlock();
    }
  });

  it('ok without an agent: --ca-file with --fetch-crls downloads the chain\'s CRLs from their distribution points', async () => {
    const base = ['firmware', 'verify', '--in', join(env.work, 'fw.bin'), '--sig', join(env.work, 'fw.sig'), '--ca-file', env.rootPem, '--model', 'gw-200'];
    const without = fleetpki(base);
    assert.equal(without.status, 3);
    assert.match(without.stderr, /\(no_crl\)/);
    // Not spawnSync: the server answering the CRL requests runs in this process.
    const r = await run(process.execPath, [BIN, ...base, '--fetch-crls', '--json']);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).version, '3.0.0');
  });
});
