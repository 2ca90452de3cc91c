/**
 * Issuance (issue 11): the issuance core, CSR in, checked, signed and
 * committed, with a P-256 issuing CA in a real data directory (SQLite in WAL
 * mode, synchronous=FULL), many requests in flight so the worker threads and
 * the group commit have work; measured beside, in the same run:
 *   - the floor: node:crypto decoding each CSR's public key, verifying its
 *     signature and signing, on as many threads as the core uses;
 *   - @peculiar/x509 parsing and verifying the CSR and building and signing
 *     the certificate with the same extensions (one thread: it is async
 *     WebCrypto on the main thread, as a server would run it);
 *   - fleetpki's own library path (fastPath off), the way it issued before.
 */
import 'reflect-metadata';
import { generateKeyPairSync, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import * as x509 from '@peculiar/x509';
import { sql } from 'kysely';
import * as der from '../src/asn1/der.js';
import { Authority, type IssueRequest } from '../src/authority/authority.js';
import { resolveProfiles } from '../src/authority/profiles.js';
import { keyObjectSigner } from '../src/keys/key_store.js';
import { initDataDir, type FleetContext } from '../src/server/context.js';
import type { KyselyStore } from '../src/store/kysely_store.js';
import { buildCsr } from '../src/x509/csr_builder.js';
import { result, type Result } from './lib/report.js';

/** Requests in flight at once: what many devices enrolling together look like to the core. */
const IN_FLIGHT = 256;

async function makeCsrs(n: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    out.push(await buildCsr({ subject: [{ type: 'O', value: 'Bench Fleet' }, { type: 'CN', value: `dev-${i}` }], sans: [{ type: 'dns', value: `dev-${i}.fleet.example` }] }, keyObjectSigner(privateKey)));
  }
  return out;
}

/** Issues every CSR through `authority` with IN_FLIGHT requests at a time; certificates per second. */
async function drive(authority: Authority, csrs: Uint8Array[]): Promise<{ rate: number; ms: number; certs: Uint8Array[] }> {
  const certs: Uint8Array[] = new Array(csrs.length);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(IN_FLIGHT, csrs.length) }, async () => {
      for (let i = next++; i < csrs.length; i = next++) {
        const req: IssueRequest = { profile: 'device-tls', csr: csrs[i], actor: 'bench' };
        certs[i] = (await authority.issue(req)).der;
      }
    }),
  );
  const ms = performance.now() - t0;
  return { rate: (csrs.length * 1000) / ms, ms, certs };
}

function startFloorWorker(): Promise<Worker> {
  const w = new Worker(new URL('./issuance_floor_worker.mjs', import.meta.url));
  return new Promise((resolve, reject) => {
    w.once('message', () => resolve(w));
    w.once('error', reject);
  });
}

/** A job of a floor thread (bench/issuance_floor_worker.mjs). */
interface FloorJob {
  items: Array<{ spki: Uint8Array; info: Uint8Array; sig: Uint8Array }>;
  tbs: Uint8Array;
  key: KeyObject;
}

/** The floor on `threads` threads: certificates per second. */
async function floor(csrs: Uint8Array[], tbs: Uint8Array, threads: number): Promise<number> {
  const items = csrs.map((c) => {
    const outer = der.readTlv(c, 0);
    const [info, , sig] = der.readChildren(c, outer);
    const kids = der.readChildren(c, info);
    return { spki: der.slice(c, kids[2]).slice(), info: der.slice(c, info).slice(), sig: der.content(c, sig).slice(1) };
  });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const workers = await Promise.all(Array.from({ length: threads }, startFloorWorker));
  try {
    const share = Math.ceil(items.length / threads);
    const t0 = performance.now();
    const done = await Promise.all(
      workers.map(
        (w, i) =>
          new Promise<{ done: number; bad: number }>((resolve) => {
            w.once('message', resolve);
            const job: FloorJob = { items: items.slice(i * share, (i + 1) * share), tbs, key: privateKey };
            w.postMessage(job);
          }),
      ),
    );
    const ms = performance.now() - t0;
    if (done.some((d) => d.bad)) throw new Error('floor: a CSR signature did not verify');
    return (items.length * 1000) / ms;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

/** @peculiar/x509: parse + verify the CSR, build + sign a certificate of the same profile. Certificates per second. */
async function peculiar(csrs: Uint8Array[], issuerPem: string): Promise<number> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, false, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const issuer = new x509.X509Certificate(issuerPem);
  const aki = await x509.AuthorityKeyIdentifierExtension.create(issuer, false);
  const t0 = performance.now();
  for (const c of csrs) {
    const csr = new x509.Pkcs10CertificateRequest(c);
    if (!(await csr.verify())) throw new Error('peculiar: CSR does not verify');
    const publicKey = await csr.publicKey.export(alg, ['verify']);
    const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension => e instanceof x509.SubjectAlternativeNameExtension);
    await x509.X509CertificateGenerator.create({
      serialNumber: '4' + Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString('hex'),
      subject: csr.subject,
      issuer: issuer.subject,
      notBefore: new Date(Math.floor(Date.now() / 1000) * 1000 - 300_000),
      notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 365 * 86_400_000),
      signingAlgorithm: alg,
      publicKey,
      signingKey: keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(['1.3.6.1.5.5.7.3.2', '1.3.6.1.5.5.7.3.1']),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        aki,
        ...(san ? [new x509.SubjectAlternativeNameExtension(san.names.toJSON())] : []),
        new x509.CRLDistributionPointsExtension(['http://127.0.0.1:8080/crl/issuing.crl']),
        new x509.AuthorityInfoAccessExtension({ ocsp: ['http://127.0.0.1:8080/ocsp'], caIssuers: ['http://127.0.0.1:8080/ca/issuing.cer'] }),
      ],
    });
  }
  return (csrs.length * 1000) / (performance.now() - t0);
}

async function countCertificates(ctx: FleetContext): Promise<number> {
  const r = await sql<{ n: number }>`select count(*) as n from certificates`.execute((ctx.store as KyselyStore).db);
  return Number(r.rows[0].n);
}

export async function issuanceScenarios(quick: boolean): Promise<Result[]> {
  const n = quick ? 1500 : 20_000;
  const threads = availableParallelism();
  const work = mkdtempSync(join(tmpdir(), 'fleetpki-bench-issue-'));
  try {
    const { ctx } = await initDataDir({ dir: join(work, 'data'), org: 'Bench', keyAlgorithm: 'ecdsa-p256', rootValidityDays: 3650, issuingValidityDays: 1825 });
    try {
      const csrs = await makeCsrs(n + 300);
      const warm = csrs.slice(n);
      const main = csrs.slice(0, n);
      const issuerDer = (await ctx.store.getCa(ctx.config.defaultCa))!.certDer;
      const issuerPem = new X509Certificate(Buffer.from(issuerDer)).toString();

      // Warm-up: starts the worker threads and compiles the hot code.
      await drive(ctx.authority, warm);
      const store = ctx.store as KyselyStore;
      const before = { ...store.certificateCommits };
      const load = loadavg()[0];
      const ours = await drive(ctx.authority, main);
      const commits = store.certificateCommits.commits - before.commits;
      if ((await countCertificates(ctx)) < n + 300) throw new Error('not every issued certificate is in the store');
      const issuer = new X509Certificate(Buffer.from(issuerDer));
      for (let i = 0; i < main.length; i += Math.ceil(main.length / 50)) {
        if (!new X509Certificate(Buffer.from(ours.certs[i])).verify(issuer.publicKey)) throw new Error(`certificate ${i} does not verify`);
      }
      const tbs = der.slice(ours.certs[0], der.readChildren(ours.certs[0], der.readTlv(ours.certs[0], 0))[0]);
      const floorRate = await floor(main, tbs, threads);
      const pec = await peculiar(main.slice(0, quick ? 150 : 1000), issuerPem);
      const library = new Authority(ctx.store, ctx.keys, ctx.clock, {
        profiles: resolveProfiles(ctx.config.profiles),
        defaultCa: ctx.config.defaultCa,
        publicUrl: ctx.config.publicUrl,
        backdateSeconds: ctx.config.issuance.backdateSeconds,
        fastPath: false,
      });
      const lib = await drive(library, csrs.slice(0, quick ? 150 : 1000).map((c) => c));
      if (ctx.authority.issuedBy.library !== 0) throw new Error(`${ctx.authority.issuedBy.library} certificates took the library path`);
      const note = `${n} certs, ${IN_FLIGHT} in flight, ${threads} worker threads, SQLite synchronous=FULL, ${commits} group commits (${(n / commits).toFixed(0)} certs each); 1-min load average ${load.toFixed(2)} at start; target ≥ 8,000/s and ≥ 0.7 of the floor`;
      return [
        result('issuance-core', ours.rate, 'certs/s', 'higher', `floor: node:crypto decode CSR key + verify CSR + sign, ${threads} threads`, floorRate, note),
        result('issuance-core-vs-peculiar', ours.rate, 'certs/s', 'higher', '@peculiar/x509: parse + verify CSR, build + sign certificate (one thread, no store)', pec),
        result('issuance-core-vs-library-path', ours.rate, 'certs/s', 'higher', 'fleetpki library path (fastPath off, same store)', lib.rate),
      ];
    } finally {
      await ctx.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
