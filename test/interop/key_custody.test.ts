/**
 * Server-side key generation, delivery and escrow, as operators and openssl
 * see them: `cert export-p12` files that `openssl pkcs12 -info` opens, PKCS#8
 * that `openssl pkey` opens; without escrow no trace of the key in the data
 * directory; with escrow only ciphertext, recoverable by a key-recovery
 * operator (audited) and by no one else; the escrow key in a SoftHSM2 token.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openContext, type FleetContext } from '../../src/server/context.js';
import { buildHttpsApp } from '../../src/server/server.js';
import { fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { makeToken, type TestToken } from '../helpers/softhsm.js';

const work = tempDir('fleetpki-custody-');
const f = (n: string) => join(work, n);
const dir = f('data');
const D = ['--dir', dir];
const PASS = 'a delivery passphrase';
const ENV = { FLEETPKI_DELIVERY_PASSPHRASE: PASS };
let token: TestToken | undefined;

const ok = (r: ReturnType<typeof fleetpki>) => {
  assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
  return r;
};
const json = (r: ReturnType<typeof fleetpki>) => JSON.parse(ok(r).stdout);

function addProfiles(d: string): void {
  const cfgFile = join(d, 'fleetpki.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  const base = { description: 'device with a server-made key', keyAlgorithms: ['ecdsa-p256', 'rsa-2048'], validityDays: 365, keyUsage: ['digitalSignature'], extendedKeyUsage: ['clientAuth'], subject: { allowed: ['CN', 'O', 'serialNumber'], required: ['CN'] }, san: { allowed: ['dns', 'uri'] } };
  cfg.profiles = { 'device-keygen': { ...base, serverKeyGen: true }, 'device-escrow': { ...base, serverKeyGen: true, keyEscrow: true } };
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
}

/** The private key inside a PKCS#12 file, through openssl. */
function keyOfP12(file: string) {
  const r = runOpenssl(['pkcs12', '-in', file, '-nocerts', '-nodes', '-passin', `pass:${PASS}`]);
  assert.equal(r.status, 0, r.stderr);
  return createPrivateKey(r.stdout);
}

/** Every byte under a directory, to look for a key in it. */
function allBytes(d: string): Buffer {
  const parts: Buffer[] = [];
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) parts.push(allBytes(p));
    else parts.push(readFileSync(p));
  }
  return Buffer.concat(parts);
}

function assertNoTraceOf(key: ReturnType<typeof createPrivateKey>, d: string): void {
  const bytes = allBytes(d);
  const scalar = Buffer.from(key.export({ format: 'jwk' }).d!, 'base64url');
  assert.equal(bytes.includes(scalar), false, 'the private scalar is nowhere in the data directory');
  assert.equal(bytes.includes(key.export({ format: 'der', type: 'pkcs8' })), false, 'the PKCS#8 key is nowhere in the data directory');
}

const escrowedRows = (d: string) => {
  const db = new Database(join(d, 'fleetpki.db'), { readonly: true });
  try {
    return (db.prepare('select count(*) n from escrowed_keys').get() as { n: number }).n;
  } finally {
    db.close();
  }
};
const certCount = () => json(fleetpki(['cert', 'list', '--json', '--limit', '1000', ...D])).length;

let recoveryToken = '';
let adminToken = '';

before(() => {
  adminToken = json(fleetpki(['init', ...D, '--org', 'Custody Fleet', '--json'])).adminToken;
  addProfiles(dir);
  recoveryToken = ok(fleetpki(['token', 'create', '--role', 'key-recovery', '--name', 'kr-alice', ...D])).stdout.trim();
  writeFileSync(f('root.pem'), ok(fleetpki(['ca', 'cert', '--root', ...D])).stdout);
  writeFileSync(f('issuing.pem'), ok(fleetpki(['ca', 'cert', ...D])).stdout);
});

after(() => {
  token?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('server-side key generation and delivery', () => {
  it('cert export-p12: openssl pkcs12 -info opens it; key, certificate and chain belong together; the server keeps no copy', () => {
    const r = json(fleetpki(['cert', 'export-p12', ...D, '--profile', 'device-keygen', '--subject', 'O=Custody Fleet, CN=kg-1', '--san', 'dns:kg-1.example', '--out', f('kg-1.p12'), '--json'], ENV));
    assert.equal(r.escrowed, false);
    const info = runOpenssl(['pkcs12', '-info', '-in', f('kg-1.p12'), '-passin', `pass:${PASS}`, '-nodes']);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stderr, /MAC: sha256/);
    assert.match(info.stderr, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
    assert.equal((info.stdout.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'the certificate and the issuing CA');
    const certs = runOpenssl(['pkcs12', '-in', f('kg-1.p12'), '-nokeys', '-clcerts', '-passin', `pass:${PASS}`]).stdout;
    writeFileSync(f('kg-1.pem'), certs);
    assert.match(runOpenssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('issuing.pem'), f('kg-1.pem')]).stdout, /OK/);
    const key = keyOfP12(f('kg-1.p12'));
    assert.deepEqual(createPublicKey(key).export({ format: 'der', type: 'spki' }), createPublicKey(certs).export({ format: 'der', type: 'spki' }));
    assert.equal(statSync(f('kg-1.p12')).mode & 0o077, 0, 'the file is owner-only');
    assertNoTraceOf(key, dir);
    assert.equal(escrowedRows(dir), 0);
    assert.match(runOpenssl(['pkcs12', '-info', '-in', f('kg-1.p12'), '-passin', 'pass:wrong passphrase!', '-noout']).stderr, /mac verify (failure|error)/i);
  });

  it('cert keygen: encrypted PKCS#8 that openssl pkey opens with the passphrase, and the certificate', () => {
    ok(fleetpki(['cert', 'keygen', ...D, '--profile', 'device-keygen', '--subject', 'CN=kg-2', '--key-algorithm', 'rsa-2048', '--out-key', f('kg-2.p8'), '--out', f('kg-2.pem')], ENV));
    assert.match(readFileSync(f('kg-2.p8'), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    const pkey = runOpenssl(['pkey', '-in', f('kg-2.p8'), '-passin', `pass:${PASS}`, '-pubout']);
    assert.equal(pkey.status, 0, pkey.stderr);
    assert.equal(pkey.stdout, runOpenssl(['x509', '-in', f('kg-2.pem'), '-pubkey', '-noout']).stdout);
    assertNoTraceOf(createPrivateKey({ key: readFileSync(f('kg-2.p8'), 'utf8'), passphrase: PASS }), dir);
  });

  const refusals: Array<{ name: string; args: string[]; env?: Record<string, string>; code: string }> = [
    { name: 'fail-profile-without-serverKeyGen', args: ['--profile', 'device-tls', '--subject', 'CN=x'], code: 'forbidden' },
    { name: 'fail-algorithm-outside-profile', args: ['--profile', 'device-keygen', '--subject', 'CN=x', '--key-algorithm', 'ed25519'], code: 'bad_key' },
    { name: 'fail-short-passphrase', args: ['--profile', 'device-keygen', '--subject', 'CN=x'], env: { FLEETPKI_DELIVERY_PASSPHRASE: 'short' }, code: 'bad_request' },
    { name: 'fail-no-passphrase', args: ['--profile', 'device-keygen', '--subject', 'CN=x'], env: { FLEETPKI_DELIVERY_PASSPHRASE: '' }, code: 'bad_request' },
    { name: 'fail-existing-file', args: ['--profile', 'device-keygen', '--subject', 'CN=x', '--out', 'EXISTING'], code: 'already_exists' },
    { name: 'fail-no-subject', args: ['--profile', 'device-keygen'], code: 'bad_request' },
  ];
  for (const c of refusals) {
    it(`${c.name}: refused, nothing issued, no file written`, () => {
      writeFileSync(f('existing.p12'), 'keep me');
      const out = f(`${c.name}.p12`);
      const args = c.args.includes('EXISTING') ? c.args.map((a) => (a === 'EXISTING' ? f('existing.p12') : a)) : [...c.args, '--out', out];
      const before = certCount();
      const r = fleetpki(['cert', 'export-p12', ...D, ...args], { ...ENV, ...c.env });
      assert.equal(r.status, c.code === 'forbidden' ? 1 : 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^fleetpki: ${c.code}: `));
      assert.equal(certCount(), before);
      assert.equal(existsSync(out), false);
      assert.equal(readFileSync(f('existing.p12'), 'utf8'), 'keep me');
    });
  }
});

describe('key escrow', () => {
  let escrowed: ReturnType<typeof createPrivateKey>;
  let serial = '';

  it('a profile with keyEscrow keeps the key encrypted to the escrow key: no plaintext in the data directory', () => {
    const r = json(fleetpki(['cert', 'export-p12', ...D, '--profile', 'device-escrow', '--subject', 'CN=esc-1', '--out', f('esc-1.p12'), '--json'], ENV));
    assert.equal(r.escrowed, true);
    serial = r.serial;
    escrowed = keyOfP12(f('esc-1.p12'));
    assert.equal(escrowedRows(dir), 1);
    assertNoTraceOf(escrowed, dir);
  });

  it('fail-recover-as-admin: forbidden, and the refusal is audited', () => {
    const r = fleetpki(['cert', 'export-p12', ...D, '--recover', serial, '--out', f('by-admin.p12')], { ...ENV, FLEETPKI_TOKEN: adminToken });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^fleetpki: forbidden: role admin may not key recover/);
    assert.equal(existsSync(f('by-admin.p12')), false);
    const audit = json(fleetpki(['audit', 'list', '--action', 'key.recover.refuse', '--json', ...D]));
    assert.equal(audit.at(-1).actor, 'token:admin');
  });

  it('fail-recover-without-token: bad_request, nothing written', () => {
    const r = fleetpki(['cert', 'export-p12', ...D, '--recover', serial, '--out', f('no-token.p12')], { ...ENV, FLEETPKI_TOKEN: '' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /key-recovery operator token needed/);
  });

  it('a key-recovery operator recovers the same key; the recovery is audited with the operator', () => {
    const tokenFile = f('kr.token');
    writeFileSync(tokenFile, recoveryToken, { mode: 0o600 });
    ok(fleetpki(['cert', 'export-p12', ...D, '--recover', serial, '--token-file', tokenFile, '--out', f('recovered.p12')], ENV));
    const back = keyOfP12(f('recovered.p12'));
    assert.deepEqual(back.export({ format: 'der', type: 'pkcs8' }), escrowed.export({ format: 'der', type: 'pkcs8' }));
    const audit = json(fleetpki(['audit', 'list', '--action', 'key.recover', '--json', ...D]));
    assert.equal(audit.at(-1).actor, 'token:kr-alice');
    assert.equal(audit.at(-1).target, serial);
    ok(fleetpki(['audit', 'verify', ...D]));
  });

  it('fail-recover-unescrowed: not_found for a certificate whose key was not escrowed', () => {
    const s = json(fleetpki(['cert', 'list', '--json', '--subject', 'kg-1', ...D]))[0].serial;
    const r = fleetpki(['cert', 'export-p12', ...D, '--recover', s, '--out', f('none.p12')], { ...ENV, FLEETPKI_TOKEN: recoveryToken });
    assert.match(r.stderr, /^fleetpki: not_found: .*no escrowed key/);
  });
});

describe('key custody over the API and EST enrollment', () => {
  let ctx: FleetContext;
  let app: Awaited<ReturnType<typeof buildHttpsApp>>;
  before(async () => {
    ctx = await openContext(dir);
    app = await buildHttpsApp(ctx);
  });
  after(async () => {
    await app?.close();
    await ctx?.close();
  });

  it('POST /api/v1/keygen (ra-officer) returns the key once as PKCS#8; recover-key needs the key-recovery role', async () => {
    const officer = (await ctx.operators.createToken({ name: 'ra-1', role: 'ra-officer', actor: 'test' })).token;
    const res = await app.inject({ method: 'POST', url: '/api/v1/keygen', headers: { authorization: `Bearer ${officer}` }, payload: { profile: 'device-escrow', subject: 'CN=api-1', format: 'pkcs8', passphrase: PASS } });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    const body = res.json();
    assert.equal(body.escrowed, true);
    writeFileSync(f('api-1.p8'), body.privateKeyPem);
    assert.equal(runOpenssl(['pkey', '-in', f('api-1.p8'), '-passin', `pass:${PASS}`, '-noout']).status, 0);
    const denied = await app.inject({ method: 'POST', url: `/api/v1/certificates/${body.serial}/recover-key`, headers: { authorization: `Bearer ${officer}` }, payload: { passphrase: PASS } });
    assert.equal(denied.statusCode, 403);
    const rec = await app.inject({ method: 'POST', url: `/api/v1/certificates/${body.serial}/recover-key`, headers: { authorization: `Bearer ${recoveryToken}` }, payload: { passphrase: PASS } });
    assert.equal(rec.statusCode, 200, rec.body);
    writeFileSync(f('api-1.p12'), Buffer.from(rec.json().pkcs12, 'base64'));
    assert.equal(keyOfP12(f('api-1.p12')).export({ format: 'pem', type: 'pkcs8' }), createPrivateKey({ key: body.privateKeyPem, passphrase: PASS }).export({ format: 'pem', type: 'pkcs8' }));
    const bad = await app.inject({ method: 'POST', url: '/api/v1/keygen', headers: { authorization: `Bearer ${officer}` }, payload: { profile: 'device-tls', subject: 'CN=api-2', passphrase: PASS } });
    assert.equal(bad.statusCode, 403);
  });

  it('EST serverkeygen on an escrow profile escrows the key it returns', async () => {
    const { secret } = await ctx.registry.register({ id: 'est-esc-1', profile: 'device-escrow' }, 'test', true);
    const { csrPem } = opensslCsr(work, 'est-esc-1');
    const r = await ctx.enrollment.enroll({ credential: { kind: 'secret', deviceId: 'est-esc-1', secret: secret! }, csr: csrPem, serverKeyGen: true, via: 'test' });
    assert.equal(r.status, 'issued');
    if (r.status !== 'issued') return;
    assert.ok(await ctx.store.getEscrowedKey(r.result.record.serial));
    const back = await ctx.custody.recover(r.result.record.serial, await ctx.operators.authenticate(recoveryToken));
    assert.deepEqual(back.privateKey.export({ format: 'der', type: 'pkcs8' }), r.privateKey!.export({ format: 'der', type: 'pkcs8' }));
  });
});

describe('key escrow with the escrow key in a PKCS#11 token', () => {
  it('the escrow key is made in the token (sensitive, decrypt-only); escrow and recovery work through it', () => {
    token = makeToken('escrow-token');
    const d = f('p11');
    const env = { ...token.env, ...ENV };
    const admin = json(fleetpki(['init', '--dir', d, '--org', 'Token Custody', '--key-store', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-env', token.pinEnv, '--json'], env)).adminToken;
    assert.ok(admin);
    addProfiles(d);
    const r = json(fleetpki(['cert', 'export-p12', '--dir', d, '--profile', 'device-escrow', '--subject', 'CN=tok-esc', '--out', f('tok-esc.p12'), '--json'], env));
    const listed = token.tool(['--login', '--pin', token.pin, '--list-objects', '--type', 'privkey']).stdout;
    assert.match(listed, /label:\s+key-escrow-[0-9a-f]+\n\s+ID:\s+[0-9a-f]+\n\s+Usage:\s+decrypt\n\s+Access:\s+sensitive, always sensitive, never extractable, local/);
    const kr = ok(fleetpki(['token', 'create', '--role', 'key-recovery', '--name', 'kr', '--dir', d], env)).stdout.trim();
    ok(fleetpki(['cert', 'export-p12', '--dir', d, '--recover', r.serial, '--out', f('tok-rec.p12')], { ...env, FLEETPKI_TOKEN: kr }));
    assert.deepEqual(keyOfP12(f('tok-rec.p12')).export({ format: 'der', type: 'pkcs8' }), keyOfP12(f('tok-esc.p12')).export({ format: 'der', type: 'pkcs8' }));
  });
});
