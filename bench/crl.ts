/**
 * CRL production (issue 4): our streaming encoder against @peculiar/x509's
 * X509CrlGenerator (the library path) at the sizes the library can still
 * finish, then alone at 100k and 1M entries against the issue's target
 * (1,000,000 entries signed in under 2 s), and end to end from the store
 * (CrlService.publish over a SQLite file holding a million revoked
 * certificates) in a child process, so its peak memory is its own.
 */
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as x509 from '@peculiar/x509';
import SQLite from 'better-sqlite3';
import { keyObjectSigner } from '../src/keys/key_store.js';
import { initDataDir, storeSpec } from '../src/server/context.js';
import type { RevocationReason, RevokedEntry } from '../src/store/store.js';
import { encodeCrl } from '../src/x509/crl_encoder.js';
import { encodeName } from '../src/x509/names.js';
import { pemEncode } from '../src/x509/pem.js';
import { result, type Result } from './lib/report.js';
import { bestOf } from './lib/timing.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const REASONS: RevocationReason[] = ['keyCompromise', 'cessationOfOperation', 'superseded', 'affiliationChanged', 'certificateHold', 'unspecified'];
const TARGET_1M_MS = 2000;

/** n entries as the store hands them out: pages of 50,000, 17-octet serials, a third with an invalidity date. */
export function revokedPages(n: number): RevokedEntry[][] {
  const pages: RevokedEntry[][] = [];
  for (let i = 0; i < n; i += 50_000) {
    const page: RevokedEntry[] = [];
    for (let j = i; j < Math.min(n, i + 50_000); j++) {
      const e: RevokedEntry = { serial: `4${j.toString(16).padStart(33, '0')}`, revokedAt: new Date(T0 + j * 1000), reason: REASONS[j % REASONS.length] };
      if (j % 3 === 0) e.invalidityDate = new Date(T0 + j * 1000 - 3_600_000);
      page.push(e);
    }
    pages.push(page);
  }
  return pages;
}

const LIB_REASON: Record<RevocationReason, x509.X509CrlReason> = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  cACompromise: x509.X509CrlReason.cACompromise,
  affiliationChanged: x509.X509CrlReason.affiliationChanged,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
  certificateHold: x509.X509CrlReason.certificateHold,
  removeFromCRL: x509.X509CrlReason.removeFromCRL,
  privilegeWithdrawn: x509.X509CrlReason.privilegeWithdrawn,
  aACompromise: x509.X509CrlReason.aACompromise,
};

export async function crlScenarios(quick: boolean): Promise<Result[]> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const out: Result[] = [];
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signer = keyObjectSigner(privateKey);
  const issuer = encodeName([{ type: 'O', value: 'Bench' }, { type: 'CN', value: 'Bench Issuing CA' }]);
  const libKey = await webcrypto.subtle.importKey('pkcs8', privateKey.export({ format: 'der', type: 'pkcs8' }), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const ours = async (pages: RevokedEntry[][]) =>
    encodeCrl({ issuer, issuerKeyId: new Uint8Array(20).fill(7), signer, number: 1, thisUpdate: new Date(T0), nextUpdate: new Date(T0 + 86_400_000), entries: pages });
  const library = async (pages: RevokedEntry[][]) =>
    x509.X509CrlGenerator.create({
      issuer: new x509.Name(issuer).toString(),
      thisUpdate: new Date(T0),
      nextUpdate: new Date(T0 + 86_400_000),
      entries: pages.flat().map((e) => ({ serialNumber: e.serial, revocationDate: e.revokedAt, reason: LIB_REASON[e.reason], invalidity: e.invalidityDate })),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      signingKey: libKey as unknown as x509.X509CrlCreateParams['signingKey'],
    });

  // Side by side where the library finishes in seconds (it grows quadratically).
  for (const n of quick ? [1000] : [2000, 5000, 10_000]) {
    const pages = revokedPages(n);
    const a = await bestOf(3, () => ours(pages));
    const b = await bestOf(1, () => library(pages));
    out.push(result(`crl-encode-${n / 1000}k`, a.ms, 'ms', 'lower', '@peculiar/x509 X509CrlGenerator', b.ms));
  }
  for (const n of quick ? [20_000] : [100_000, 1_000_000]) {
    const pages = revokedPages(n);
    const a = await bestOf(n >= 1_000_000 ? 2 : 3, () => ours(pages));
    const note = `${(a.value.der.length / 1e6).toFixed(1)} MB CRL`;
    if (n >= 1_000_000) out.push(result('crl-encode-1M', a.ms, 'ms', 'lower', 'target (issue 4)', TARGET_1M_MS, note));
    else out.push(result(`crl-encode-${n / 1000}k`, a.ms, 'ms', 'lower', 'library, not run (quadratic)', null, note));
  }
  out.push(...(await publishFromStore(quick ? 20_000 : 1_000_000)));
  return out;
}

/** CrlService.publish over a store of `n` revoked certificates, in a child process; checked with `openssl crl -verify`. */
async function publishFromStore(n: number): Promise<Result[]> {
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-crl-'));
  try {
    const dir = join(work, 'data');
    const { ctx } = await initDataDir({ dir, org: 'Bench', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825 });
    const ca = ctx.config.defaultCa;
    const caFile = join(work, 'chain.pem');
    writeFileSync(caFile, pemEncode('CERTIFICATE', (await ctx.store.getCa(ca))!.certDer) + pemEncode('CERTIFICATE', (await ctx.store.getCa('root'))!.certDer));
    const dbFile = storeSpec(dir, ctx.config);
    await ctx.close();
    fillRevoked(dbFile, ca, n);
    const crlFile = join(work, 'crl.der');
    const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./crl_publish_child.ts', import.meta.url)), dir, crlFile], { encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`crl_publish_child failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { ms: number; entries: number; bytes: number; rssBeforeMB: number; maxRssMB: number };
    if (r.entries !== n) throw new Error(`published ${r.entries} entries, expected ${n}`);
    const v = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-CAfile', caFile, '-noout'], { encoding: 'utf8' });
    if (!/verify OK/.test(v.stdout + v.stderr)) throw new Error(`openssl does not verify the published CRL: ${v.stdout}${v.stderr}`);
    const label = n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`;
    const note = `openssl verify OK; ${(r.bytes / 1e6).toFixed(1)} MB; peak RSS +${Math.round(r.maxRssMB - r.rssBeforeMB)} MB over ${Math.round(r.rssBeforeMB)} MB`;
    return [result(`crl-publish-from-sqlite-${label}`, r.ms, 'ms', 'lower', 'target (issues 4, 11)', TARGET_1M_MS, note)];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `n` revoked certificates of CA `ca`, written straight into SQLite by one statement (no WAL, no fsync: nobody else has it open). */
function fillRevoked(dbFile: string, ca: string, n: number): void {
  const t0 = Date.now() - 86_400_000;
  const db = new SQLite(dbFile);
  try {
    db.pragma('synchronous = off');
    db.prepare(
      `with recursive k(i) as (select 0 union all select i + 1 from k where i < @n - 1)
       insert into certificates (serial, issuer_ca, profile, subject, sans, not_before, not_after, spki_sha256, der, status,
                                 revoked_at, revocation_reason, invalidity_date, created_at, requester)
       select printf('4%033x', i), @ca, 'device-tls', 'CN=bench', '[]', @t0, @t0 + 31536000000, 'ab', x'3000', 'revoked',
              @t0 + i, case i % 3 when 0 then 'keyCompromise' when 1 then 'cessationOfOperation' else 'superseded' end,
              case when i % 3 = 0 then @t0 - i end, @t0, 'bench'
       from k`,
    ).run({ n, ca, t0 });
  } finally {
    db.close();
  }
}
