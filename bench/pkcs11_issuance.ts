/**
 * Issuance rate with the CA key in a PKCS#11 token (SoftHSM2) against the
 * same CA set-up with software keys, in one run on one machine, and their
 * ratio. Each issuance is the full path: CSR check, lint, signature, commit
 * to an in-memory SQLite store.
 *
 *   node --import tsx bench/pkcs11_issuance.ts [--count 400] [--concurrency 8] [--alg ecdsa-p256] [--pool 4] [--json]
 *
 * Needs softhsm2 (softhsm2-util, libsofthsm2.so) and openssl; makes a
 * throwaway token in a temporary directory. Numbers, not assertions: the
 * ratio is what to compare between machines and versions (bench/README.md).
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Authority } from '../src/authority/authority.js';
import { resolveProfiles } from '../src/authority/profiles.js';
import { systemClock } from '../src/clock.js';
import type { KeyStore } from '../src/keys/key_store.js';
import { Pkcs11KeyStore } from '../src/keys/pkcs11_key_store.js';
import { SoftwareKeyStore } from '../src/keys/software_key_store.js';
import { openStore } from '../src/store/open_store.js';
import { isKeyAlgorithm, type KeyAlgorithm } from '../src/x509/algorithms.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '400' },
    concurrency: { type: 'string', default: '8' },
    alg: { type: 'string', default: 'ecdsa-p256' },
    pool: { type: 'string', default: '4' },
    json: { type: 'boolean', default: false },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const alg = values.alg!;
if (!isKeyAlgorithm(alg)) throw new Error(`unknown --alg ${alg}`);

const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-p11-'));
const conf = join(work, 'softhsm2.conf');
mkdirSync(join(work, 'tokens'));
writeFileSync(conf, `directories.tokendir = ${join(work, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
process.env.SOFTHSM2_CONF = conf;
execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'bench', '--so-pin', '12345678', '--pin', '123456'], { stdio: 'pipe' });
execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'dev.key'), '-subj', '/CN=bench-device', '-out', join(work, 'dev.csr')], { stdio: 'pipe' });
const csr = readFileSync(join(work, 'dev.csr'), 'utf8');

async function measure(name: string, keys: KeyStore, algorithm: KeyAlgorithm): Promise<{ name: string; perSecond: number; ms: number }> {
  const store = await openStore(':memory:');
  const authority = new Authority(store, keys, systemClock, { profiles: resolveProfiles({}), defaultCa: 'issuing', publicUrl: 'http://bench.example', backdateSeconds: 0 });
  const subject = (cn: string) => [{ type: 'CN', value: cn }];
  await authority.createRootCa({ name: 'root', subject: subject(`${name} root`), keyAlgorithm: algorithm, validityDays: 3650, actor: 'bench' });
  await authority.createIssuingCa({ name: 'issuing', parent: 'root', subject: subject(`${name} issuing`), keyAlgorithm: algorithm, validityDays: 1825, actor: 'bench' });
  // Warm-up: key handles, sessions, JIT.
  for (let i = 0; i < 20; i++) await authority.issue({ csr, profile: 'device-tls', actor: 'bench' });
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < count) await authority.issue({ csr, profile: 'device-tls', actor: 'bench' });
    }),
  );
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  await store.close();
  await keys.close?.();
  return { name, perSecond: (count / ms) * 1000, ms };
}

try {
  const soft = await measure('software', new SoftwareKeyStore({ dir: join(work, 'keys'), passphrase: () => 'bench passphrase', pbkdf2Iterations: 1000 }), alg);
  const token = await measure('pkcs11', new Pkcs11KeyStore({ module: '/usr/lib/softhsm/libsofthsm2.so', token: 'bench', pin: () => '123456', poolSize: Number(values.pool) }), alg);
  const result = { alg, count, concurrency, pool: Number(values.pool), software: soft.perSecond, pkcs11: token.perSecond, ratio: token.perSecond / soft.perSecond, node: process.version };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`issuance, ${alg} CA keys, ${count} certificates, ${concurrency} in flight (token session pool ${result.pool})`);
    console.log(`  software key store  ${soft.perSecond.toFixed(0).padStart(6)} /s`);
    console.log(`  PKCS#11 (SoftHSM2)  ${token.perSecond.toFixed(0).padStart(6)} /s`);
    console.log(`  ratio pkcs11/software  ${result.ratio.toFixed(2)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
