/**
 * Replays the EST request bodies real clients sent (test/fixtures/est: strongSwan
 * pki, openssl req + curl; one line or folded base64; P-256, P-384, Ed25519)
 * byte for byte, with the headers they sent, and expects each to be parsed and
 * issued for the registered device it names.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashSecret } from '../../src/registry/registry.js';
import { REPO } from '../helpers/data_dir.js';
import {
  certOfPem,
  certsOfPkcs7,
  curl,
  ecKey,
  openssl,
  opensslCsrB64,
  registerDevice,
  registrySubject,
  spkiOf,
  startEstEnv,
  verifyClientCert,
  type EstEnv,
  type HttpAnswer,
} from '../helpers/est.js';

interface Fixture {
  file: string;
  client: string;
  path: string;
  headers: Record<string, string>;
  csrSubject: string;
  csrSans?: string[];
  key: string;
  deviceId: string;
}

const DIR = join(REPO, 'test', 'fixtures', 'est');
const fixtures = JSON.parse(readFileSync(join(DIR, 'requests.json'), 'utf8')) as Fixture[];
// The org of the data directory equals the O= in the re-enrollment fixture's subject.
const ORG = 'Fixture Fleet';
let env: EstEnv;

before(async () => {
  env = await startEstEnv({ org: ORG });
});

after(async () => {
  await env?.close();
});

/** The recorded password ("secret") becomes the device's one-time secret. */
async function registerWithSecret(id: string, secret: string): Promise<void> {
  await registerDevice(env.ctx, { id, domain: 'fixtures' }, false);
  const now = env.ctx.clock.now();
  await env.ctx.store.putEnrollmentSecret({ deviceId: id, secretHash: hashSecret(secret), createdAt: now, expiresAt: new Date(now.getTime() + 3_600_000) }, { actor: 'test', action: 'device.secret.create', target: id });
}

async function expectIssued(r: HttpAnswer, fx: Fixture): Promise<void> {
  assert.equal(r.status, 200, `${fx.file}: ${r.status} ${r.body}`);
  const certs = await certsOfPkcs7(env, r.body);
  assert.equal(certs.length, 1);
  await verifyClientCert(env, certs[0]);
  const info = certOfPem(certs[0]);
  assert.deepEqual(info.subject, registrySubject(ORG, fx.deviceId));
  assert.deepEqual(info.sans, [{ type: 'uri', value: 'urn:fleetpki:domain:fixtures' }], 'names from the registry; CSR names trimmed');
  // The certified key is the CSR's: compare with openssl's reading of the fixture.
  const der = env.file(`${fx.file}.der`);
  writeFileSync(der, Buffer.from(readFileSync(join(DIR, fx.file), 'latin1').replace(/\s+/g, ''), 'base64'));
  const csrKey = await openssl(['req', '-inform', 'DER', '-in', der, '-noout', '-pubkey']);
  assert.equal(csrKey.status, 0, csrKey.stderr);
  const certFile = env.file(`${fx.file}.pem`);
  writeFileSync(certFile, certs[0]);
  assert.equal(await spkiOf(certFile, 'cert'), csrKey.stdout.replace(/-----[^-]+-----|\s+/g, ''));
  const d = await env.ctx.registry.device(fx.deviceId);
  assert.equal(d.state, 'active');
  assert.equal(d.currentSerial, info.serial);
}

describe('EST request fixtures from real clients', () => {
  it('every fixture is a valid base64 DER CSR as recorded (openssl verifies its signature)', async () => {
    assert.ok(fixtures.length >= 6);
    for (const fx of fixtures) {
      const body = readFileSync(join(DIR, fx.file), 'latin1');
      assert.match(body, /^[A-Za-z0-9+/=\n]+$/, `${fx.file} is base64 text`);
      if (fx.headers['content-length']) assert.equal(String(body.length), fx.headers['content-length'], `${fx.file} is the body as sent`);
      const der = env.file(`${fx.file}.check.der`);
      writeFileSync(der, Buffer.from(body.replace(/\s+/g, ''), 'base64'));
      const v = await openssl(['req', '-inform', 'DER', '-in', der, '-noout', '-verify']);
      assert.equal(v.status, 0, `${fx.file}: ${v.stderr}`);
    }
  });

  for (const fx of fixtures.filter((f) => f.path.endsWith('/simpleenroll'))) {
    it(`${fx.file} (${fx.client}) is issued on ${fx.path}`, async () => {
      const auth = fx.headers.authorization;
      const password = auth ? Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString('utf8').split(':').slice(1).join(':') : 'fixture-secret';
      await registerWithSecret(fx.deviceId, password);
      const headers = auth ? [`Authorization: ${auth}`] : [];
      const user = auth ? undefined : `${fx.deviceId}:${password}`;
      const r = await curl(env, fx.path, { dataFile: join(DIR, fx.file), contentType: fx.headers['content-type'], headers, user });
      await expectIssued(r, fx);
    });
  }

  it('pki-p256.simplereenroll.b64 (pki --est --cert/--key) renews on /simplereenroll: its subject is the current certificate\'s', async () => {
    const fx = fixtures.find((f) => f.path.endsWith('/simplereenroll'))!;
    // The device's current certificate, enrolled with a secret.
    await registerWithSecret(fx.deviceId, 'first-secret');
    const key = await ecKey(env.file('reenroll-current.key'));
    const csr = await opensslCsrB64(env, 'reenroll-current', key, `/CN=${fx.deviceId}`);
    const first = await curl(env, '/.well-known/est/simpleenroll', { dataFile: csr.b64, contentType: 'application/pkcs10', user: `${fx.deviceId}:first-secret` });
    assert.equal(first.status, 200, first.body);
    const current = env.file('reenroll-current.pem');
    writeFileSync(current, (await certsOfPkcs7(env, first.body))[0]);
    assert.equal(fx.csrSubject, `O=${ORG}, serialNumber=${fx.deviceId}, CN=${fx.deviceId}`);

    const r = await curl(env, fx.path, { dataFile: join(DIR, fx.file), contentType: fx.headers['content-type'], cert: current, key });
    await expectIssued(r, fx);
  });
});
