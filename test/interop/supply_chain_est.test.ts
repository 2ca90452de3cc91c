/**
 * Supply-chain stages end to end (issue 8), with the real clients: three
 * identities per device (manufacturer → assembly → operation), manifests
 * made with the `fleetpki manifest` CLI and with `openssl cms -sign`,
 * checked with `openssl cms -verify`, imported with the CLI into a running
 * server, and devices enrolling over EST with curl + openssl.
 *
 *   ChipCo makes the chips: each has an IDevID from the Chip Mfr CA, and
 *   ChipCo's manifest hands them over to stage "assembly".
 *   AssemblyCo builds them into gateways: its manifest (signed with openssl)
 *   hands them over to stage "operation", pinning the assembly certificates.
 *
 * Both stage profiles require a manifest: a device no manifest lists cannot
 * enroll, even with a valid manufacturer certificate; a listed device only
 * with exactly what its entry pins.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PROFILES } from '../../src/authority/profiles.js';
import { pemDecodeAll } from '../../src/x509/pem.js';
import {
  certOfPem,
  certsOfPkcs7,
  curl,
  ecKey,
  estRefused,
  fleetpkiAsync,
  makeManufacturer,
  openssl,
  opensslCsrB64,
  startEstEnv,
  verifyClientCert,
  type EstEnv,
  type HttpAnswer,
} from '../helpers/est.js';
import { makeSupplier, type TestSupplier } from '../helpers/supplier.js';

const ORG = 'Stage Fleet';
let env: EstEnv;
let chipco: TestSupplier;
let assembler: TestSupplier;
let mfr: Awaited<ReturnType<typeof makeManufacturer>>;
const idevid: Record<string, { cert: string; key: string }> = {};
const assembly: Record<string, string> = {};
const assemblyKey: Record<string, string> = {};
const operational: Record<string, { cert: string; key: string }> = {};

const cli = async (args: string[]) => {
  const r = await fleetpkiAsync([...args.slice(0, 2), '--dir', env.dir, ...args.slice(2)]);
  assert.equal(r.status, 0, `fleetpki ${args.join(' ')}: ${r.stderr}`);
  return r;
};
/** The supplier side runs without a data directory. */
const supplierCli = async (args: string[]) => {
  const r = await fleetpkiAsync(args, { FLEETPKI_DIR: undefined });
  assert.equal(r.status, 0, `fleetpki ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const ok = async (p: ReturnType<typeof openssl>, what: string) => {
  const r = await p;
  assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  return r;
};

/** A new key, its CSR and an EST request with `cred` as the TLS client certificate. */
async function estRequest(id: string, cred: { cert: string; key: string }, name: string, op = 'simpleenroll'): Promise<{ answer: HttpAnswer; key: string }> {
  const key = await ecKey(env.file(`${name}.key`));
  // RFC 7030 §4.2.2: a re-enrollment repeats the subject of the certificate it renews.
  const subj = op === 'simplereenroll' ? `/O=${ORG}/serialNumber=${id}/CN=${id}` : `/CN=${id}`;
  const csr = await opensslCsrB64(env, name, key, subj);
  return { answer: await curl(env, `/.well-known/est/${op}`, { dataFile: csr.b64, contentType: 'application/pkcs10', cert: cred.cert, key: cred.key }), key };
}

let n = 0;
const enroll = async (id: string, cred: { cert: string; key: string }) => (await estRequest(id, cred, `${id}-${++n}`)).answer;
const refused = (send: () => Promise<HttpAnswer>, status: number, reason: RegExp) => estRefused(env, send, status, 'forbidden', reason);

/** Enrolls and keeps the new key next to the certificate (the next stage presents both). */
async function enrollKeeping(id: string, cred: { cert: string; key: string }, name: string, op = 'simpleenroll') {
  const { answer, key } = await estRequest(id, cred, name, op);
  assert.equal(answer.status, 200, answer.body);
  const [pem] = await certsOfPkcs7(env, answer.body);
  writeFileSync(env.file(`${name}.pem`), pem);
  return { cert: env.file(`${name}.pem`), key, serial: certOfPem(pem).serial };
}

const sha256OfPem = (file: string) => createHash('sha256').update(pemDecodeAll(readFileSync(file, 'utf8'))[0].der).digest('hex');

before(async () => {
  const base = DEFAULT_PROFILES['device-tls'];
  env = await startEstEnv({
    org: ORG,
    config: (c) => {
      c.profiles = {
        'assembly-line': { ...base, description: 'stage assembly: line test and provisioning', validityDays: 30, requireManifest: true },
        'device-tls': { requireManifest: true },
      };
    },
  });
  chipco = makeSupplier(env.work, 'ChipCo');
  assembler = makeSupplier(env.work, 'AssemblyCo');
  mfr = await makeManufacturer(env, 'Chip Mfr');
  for (const id of ['G-1', 'G-2', 'G-3']) {
    // idevid() reuses its file names per device: keep each under its own.
    const c = await mfr.idevid(id);
    idevid[id] = { cert: env.file(`${id}-idevid.pem`), key: env.file(`${id}-idevid.key`) };
    writeFileSync(idevid[id].cert, readFileSync(c.cert));
    writeFileSync(idevid[id].key, readFileSync(c.key), { mode: 0o600 });
  }
  await new Promise((r) => setTimeout(r, 1100)); // the supplier certificates start now, to the second
});

after(async () => {
  await env?.close();
});

describe('three stages: manufacturer → assembly → operation', () => {
  it('ok-the receiver trusts the manufacturer and both suppliers (CLI)', async () => {
    await cli(['trust', 'add-manufacturer', '--ca', mfr.rootPem]);
    await cli(['supplier', 'add', 'ChipCo', '--ca', chipco.rootPem]);
    await cli(['supplier', 'add', 'AssemblyCo', '--ca', assembler.rootPem]);
    assert.equal(await env.server.refreshTrust(), true);
    const list = JSON.parse((await cli(['supplier', 'list', '--json'])).stdout);
    assert.deepEqual(list.map((s: { supplier: string }) => s.supplier), ['ChipCo', 'AssemblyCo']);
  });

  it('ok-ChipCo writes and signs its manifest with fleetpki; openssl cms -verify accepts it; the receiver imports it', async () => {
    // G-1 and G-2 are handed over; G-3 has a valid IDevID too but is not listed.
    writeFileSync(env.file('chips.csv'), `id,file,batch\nG-1,${idevid['G-1'].cert}\nG-2,${idevid['G-2'].cert},B2\n`);
    await supplierCli(['manifest', 'create', '--supplier', 'ChipCo', '--stage', 'assembly', '--devices', env.file('chips.csv'), '--model', 'gw-100', '--out', env.file('m1.json')]);
    const doc = JSON.parse(readFileSync(env.file('m1.json'), 'utf8'));
    assert.deepEqual(doc.devices, [
      { id: 'G-1', certificateSha256: sha256OfPem(idevid['G-1'].cert), model: 'gw-100' },
      { id: 'G-2', certificateSha256: sha256OfPem(idevid['G-2'].cert), model: 'gw-100', batch: 'B2' },
    ]);
    await supplierCli(['manifest', 'sign', '--in', env.file('m1.json'), '--key', chipco.keyPem, '--cert', chipco.certPem, '--chain', chipco.chainPem, '--out', env.file('m1.cms')]);

    const v = await ok(openssl(['cms', '-verify', '-inform', 'DER', '-in', env.file('m1.cms'), '-CAfile', chipco.rootPem, '-purpose', 'any', '-out', env.file('m1.out')]), 'openssl cms -verify');
    assert.match(v.stderr, /Verification successful/);
    assert.deepEqual(readFileSync(env.file('m1.out')), readFileSync(env.file('m1.json')), 'openssl recovers the document byte for byte');
    // ...and refuses it against another supplier's root.
    assert.notEqual((await openssl(['cms', '-verify', '-inform', 'DER', '-in', env.file('m1.cms'), '-CAfile', assembler.rootPem, '-purpose', 'any', '-out', '/dev/null'])).status, 0);

    const checked = JSON.parse((await cli(['manifest', 'verify', '--in', env.file('m1.cms'), '--json'])).stdout);
    assert.equal(checked.supplier, 'ChipCo');
    const r = JSON.parse((await cli(['manifest', 'import', '--in', env.file('m1.cms'), '--profile', 'assembly-line', '--stage', 'assembly', '--json'])).stdout);
    assert.deepEqual(r.registered, ['G-1', 'G-2']);
  });

  it('fail-a device no manifest lists cannot enroll, even with a valid manufacturer certificate', async () => {
    await cli(['device', 'register', '--id', 'G-3', '--profile', 'assembly-line']);
    await refused(() => enroll('G-3', idevid['G-3']), 403, /listed in no imported supplier manifest/);
  });

  it('fail-a listed device with another manufacturer certificate than the one pinned', async () => {
    const reissued = await mfr.idevid('G-2'); // same manufacturer, same serial number, another certificate
    await refused(() => enroll('G-2', reissued), 403, /enters stage assembly only with what manifest/);
  });

  it('ok-listed devices get their assembly certificate with the pinned IDevID; the entry is used once', async () => {
    for (const id of ['G-1', 'G-2']) {
      const c = await enrollKeeping(id, idevid[id], `${id}-assembly`);
      assembly[id] = c.cert;
      assemblyKey[id] = c.key;
      await verifyClientCert(env, readFileSync(c.cert, 'utf8'));
      const dev = await env.ctx.registry.device(id);
      assert.equal(dev.state, 'active');
      assert.equal(dev.stage, 'assembly');
      assert.equal(dev.currentSerial, c.serial);
    }
    const [m1] = JSON.parse((await cli(['manifest', 'list', '--json'])).stdout);
    const shown = JSON.parse((await cli(['manifest', 'show', m1.digest, '--json'])).stdout);
    assert.deepEqual(shown.entries.map((e: { deviceId: string; usedSerial: string }) => [e.deviceId, e.usedSerial]), [['G-1', certOfPem(readFileSync(assembly['G-1'], 'utf8')).serial], ['G-2', certOfPem(readFileSync(assembly['G-2'], 'utf8')).serial]]);
  });

  it('ok-AssemblyCo signs its manifest with openssl cms -sign, pinning the assembly certificates; the receiver imports it', async () => {
    await supplierCli(['manifest', 'create', '--supplier', 'AssemblyCo', '--stage', 'operation', '--device', `G-1=${assembly['G-1']}`, '--device', `G-2=${assembly['G-2']}`, '--out', env.file('m2.json')]);
    await ok(openssl(['cms', '-sign', '-nodetach', '-binary', '-in', env.file('m2.json'), '-signer', assembler.certPem, '-inkey', assembler.keyPem, '-certfile', assembler.chainPem, '-outform', 'PEM', '-out', env.file('m2.pem')]), 'openssl cms -sign');
    // The wrong stage is refused before anything changes.
    const wrong = await fleetpkiAsync(['manifest', 'import', '--dir', env.dir, '--in', env.file('m2.pem'), '--profile', 'device-tls', '--stage', 'assembly']);
    assert.equal(wrong.status, 2);
    assert.match(wrong.stderr, /manifest_rejected: manifest refused \(wrong_stage\)/);
    const r = JSON.parse((await cli(['manifest', 'import', '--in', env.file('m2.pem'), '--profile', 'device-tls', '--domain', 'plant-a', '--owner', 'Acme Utilities', '--json'])).stdout);
    assert.deepEqual(r.moved, ['G-1', 'G-2']);
    assert.equal((await env.ctx.registry.device('G-1')).stage, 'operation');
    // A second import of the same document is a replay.
    const again = await fleetpkiAsync(['manifest', 'import', '--dir', env.dir, '--in', env.file('m2.pem'), '--profile', 'device-tls']);
    assert.equal(again.status, 2);
    assert.match(again.stderr, /already_exists: manifest [0-9a-f]{64} was imported/);
  });

  it('fail-entering the operation stage with the manufacturer certificate instead of the pinned assembly certificate', async () => {
    await refused(() => enroll('G-2', idevid['G-2']), 403, /enters stage operation only with what manifest/);
  });

  it('ok-the pinned assembly certificate gets the operational certificate: domain and owner from the import', async () => {
    for (const id of ['G-1', 'G-2']) {
      const c = await enrollKeeping(id, { cert: assembly[id], key: assemblyKey[id] }, `${id}-op`);
      operational[id] = { cert: c.cert, key: c.key };
      const info = certOfPem(readFileSync(c.cert, 'utf8'));
      assert.ok(info.sans.some((s) => s.type === 'uri' && s.value === 'urn:fleetpki:domain:plant-a'), JSON.stringify(info.sans));
      await verifyClientCert(env, readFileSync(c.cert, 'utf8'));
    }
    assert.equal((await env.ctx.registry.device('G-2')).owner, 'Acme Utilities');
  });

  it('ok-renewal in the stage follows the usual rules (simplereenroll with the operational certificate)', async () => {
    const c = await enrollKeeping('G-1', operational['G-1'], 'G-1-renewed', 'simplereenroll');
    operational['G-1'] = { cert: c.cert, key: c.key };
    assert.equal((await env.ctx.registry.device('G-1')).currentSerial, c.serial);
  });

  it('fail-the old assembly certificate no longer enrolls', async () => {
    await refused(() => enroll('G-2', { cert: assembly['G-2'], key: assemblyKey['G-2'] }), 403, /not the current certificate/);
  });

  it('ok-the registry keeps each device\'s chain of identities: manufacturer → assembly → operation', async () => {
    const j = JSON.parse((await cli(['device', 'identities', 'G-1', '--json'])).stdout);
    assert.deepEqual(j.identities.map((i: { kind: string; stage: string | null }) => `${i.kind}:${i.stage ?? ''}`), ['manufacturer:', 'certificate:assembly', 'certificate:operation']);
    assert.equal(j.identities[0].fingerprintSha256, sha256OfPem(idevid['G-1'].cert));
    assert.equal(j.identities[0].pem.replace(/\s+/g, ''), readFileSync(idevid['G-1'].cert, 'utf8').replace(/\s+/g, ''));
    assert.equal(j.identities[1].fingerprintSha256, sha256OfPem(assembly['G-1']));
    assert.equal(j.currentSerial, certOfPem(readFileSync(operational['G-1'].cert, 'utf8')).serial, 'the renewal is the current certificate');
    assert.deepEqual(j.entries.map((e: { stage: string }) => e.stage), ['assembly', 'operation']);
    const text = (await cli(['device', 'identities', 'G-1'])).stdout;
    assert.match(text, /manufacturer .*Chip Mfr Sensor/);
  });

  it('fail-a retired gateway never enrolls again, whatever it presents', async () => {
    await cli(['device', 'event', 'G-2', 'retired', '--note', 'scrapped']);
    await refused(() => enroll('G-2', operational['G-2']), 403, /revoked|retired/);
    await refused(() => enroll('G-2', idevid['G-2']), 403, /retired/);
  });

  it('fail-a manifest listing the retired gateway is refused whole: the CLI names the device and why, nothing moves', async () => {
    await supplierCli(['manifest', 'create', '--supplier', 'AssemblyCo', '--stage', 'field', '--device', `G-1=${operational['G-1'].cert}`, '--device', `G-2=${operational['G-2'].cert}`, '--out', env.file('m3.json')]);
    await supplierCli(['manifest', 'sign', '--in', env.file('m3.json'), '--key', assembler.keyPem, '--cert', assembler.certPem, '--chain', assembler.chainPem, '--out', env.file('m3.cms')]);
    const r = await fleetpkiAsync(['manifest', 'import', '--dir', env.dir, '--in', env.file('m3.cms'), '--profile', 'device-tls']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /manifest_rejected: manifest refused \(bad_entries\): 1 of 2 devices/);
    assert.match(r.stdout, /^DEVICE +REFUSED BECAUSE\nG-2 +it is retired/m);
    assert.equal((await env.ctx.registry.device('G-1')).stage, 'operation');
    assert.equal(JSON.parse((await cli(['manifest', 'list', '--json'])).stdout).length, 2);
  });
});
