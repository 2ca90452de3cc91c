/**
 * `fleetpki supplier` and `fleetpki manifest`: the supply-chain hand-over of
 * issue 8. The supplier side (`manifest create`, `manifest sign`) needs no
 * data directory: a supplier runs it with its own PKI. The receiving side
 * (`supplier add`, `manifest verify`, `manifest import`) works on the data
 * directory. docs/supply-chain.md walks through three stages.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { writeFileAtomic } from '../../keys/software_key_store.js';
import { manifestEntryJson, manifestImportJson, manifestJson, supplierJson, verifiedManifestJson } from '../../protocols/api/views.js';
import { parseCsvRecords } from '../../registry/device_file.js';
import { signManifest } from '../../registry/supply_cms.js';
import { encodeManifest, type SupplyManifest, type SupplyManifestEntry } from '../../registry/supply_manifest.js';
import { cliActor } from '../../server/context.js';
import { parseCertificate, type CertInfo } from '../../x509/cert_info.js';
import { parseCsr } from '../../x509/csr.js';
import { pemDecodeAll, pemEncode } from '../../x509/pem.js';
import { withContext, withDir } from '../context.js';
import { collect, note, positiveInt, printFacts, printJson, printLine, printRaw, printTable, readUserFile } from '../output.js';
import { SIGNING_KEY_PASSPHRASE_ENV, signingIdentityFromFiles } from '../signing_files.js';

type Pin = 'certificate' | 'public-key';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * What a manifest entry pins for a device, from a file: a certificate (its
 * SHA-256, or its key's with --pin public-key), or a public key or CSR (the
 * SHA-256 of the SubjectPublicKeyInfo). PEM or DER.
 */
export function pinOfFile(path: string, pin: Pin): Pick<SupplyManifestEntry, 'certificateSha256' | 'publicKeySha256'> {
  const buf = readUserFile(path, 'device file');
  const text = buf.toString('latin1');
  const pem = text.includes('-----BEGIN ') ? pemDecodeAll(text)[0] : undefined;
  const label = pem?.label;
  const der = pem?.der ?? new Uint8Array(buf);
  const fail = (why: string) => new ProblemError('bad_request', `${path}: ${why}`);
  const cert = label === 'CERTIFICATE' || label === undefined ? certificateOrUndefined(der) : undefined;
  if (cert) return pin === 'certificate' ? { certificateSha256: cert.fingerprintSha256 } : { publicKeySha256: cert.spkiSha256 };
  if (label === 'CERTIFICATE') throw fail('is not a valid X.509 certificate');
  if (pin === 'certificate') throw fail(`holds ${label ? `a ${label}` : 'no certificate'}; a certificate is pinned with --pin certificate (use --pin public-key for keys and CSRs)`);
  if (label === 'CERTIFICATE REQUEST' || label === 'NEW CERTIFICATE REQUEST') return { publicKeySha256: parseCsr(der).spkiSha256 };
  if (label === undefined || label === 'PUBLIC KEY') {
    try {
      const spki = new Uint8Array(createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }).export({ format: 'der', type: 'spki' }));
      return { publicKeySha256: sha256(spki) };
    } catch {
      throw fail('is not a certificate, a CSR or a public key (PEM or DER)');
    }
  }
  throw fail(`holds a ${label}, not a certificate, a CSR or a public key`);
}

function certificateOrUndefined(der: Uint8Array): CertInfo | undefined {
  try {
    return parseCertificate(der);
  } catch {
    return undefined;
  }
}

/**
 * Devices from a CSV file (RFC 4180, as `device import` reads it): a header
 * naming id and file, and optionally model and batch, then one device per
 * record. Files are relative to the CSV.
 */
export function entriesOfCsv(path: string, pin: Pin): SupplyManifestEntry[] {
  const text = readUserFile(path, 'device list').toString('utf8').replace(/^\uFEFF/, '');
  const records = parseCsvRecords(text).filter((r) => r.cells.some((c) => c.trim() !== ''));
  const header = (records.shift()?.cells ?? []).map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  if (col('id') < 0 || col('file') < 0 || header.some((h) => !['id', 'file', 'model', 'batch'].includes(h))) {
    throw new ProblemError('bad_request', `${path}: the first line is a header naming the columns id,file and optionally model,batch`);
  }
  const base = dirname(resolve(path));
  return records.map(({ line, cells }) => {
    const get = (name: string) => cells[col(name)]?.trim() || undefined;
    const id = get('id');
    const file = get('file');
    if (!id || !file) throw new ProblemError('bad_request', `${path} line ${line}: id and file are required`);
    const e: SupplyManifestEntry = { id, ...pinOfFile(resolve(base, file), pin) };
    const model = get('model');
    const batch = get('batch');
    if (model !== undefined) e.model = model;
    if (batch !== undefined) e.batch = batch;
    return e;
  });
}

function pinOption(v: string): Pin {
  if (v !== 'certificate' && v !== 'public-key') throw new ProblemError('bad_request', '--pin is certificate or public-key');
  return v;
}

function deviceOption(v: string, previous: string[] = []): string[] {
  if (!/^[^=]+=.+$/.test(v)) throw new ProblemError('bad_request', `--device "${v}" is ID=FILE`);
  return collect(v, previous);
}

/** The CMS of a manifest file: DER, or PEM (CMS or PKCS7). */
function readCms(path: string): Uint8Array {
  return new Uint8Array(readUserFile(path, 'manifest'));
}

function printManifest(m: ReturnType<typeof manifestJson>): void {
  const rows: Array<[string, string]> = [
    ['digest', m.digest],
    ['supplier', m.supplier],
    ['stage', m.stage],
    ['profile', m.profile],
    ['devices', String(m.devices)],
    ['signer', `${m.signer} (sha256 ${m.signerFingerprint.slice(0, 16)})`],
    ['signed at', m.signedAt ?? '-'],
    ['imported', `${m.importedAt} by ${m.importedBy}`],
  ];
  if (m.domain) rows.push(['domain', m.domain]);
  if (m.owner) rows.push(['owner', m.owner]);
  printFacts(rows);
}

export function registerSupply(program: Command): void {
  const supplier = program.command('supplier').description('suppliers whose signed manifests this registry accepts (supply-chain stages)');
  withDir(supplier.command('add').description('trust CA certificates to vouch for the manifest signers of a supplier').argument('<name>', 'the supplier name its manifests carry'))
    .requiredOption('--ca <file>', 'PEM file with the supplier\'s CA certificate(s): its root, or the CA that issues its manifest signers')
    .option('--json', 'print as JSON')
    .addHelpText('after', '\nA manifest is accepted only if its signer chains to one of these CAs and the\nmanifest names this supplier. Every certificate in the file must be a CA.')
    .action(async (name: string, o) =>
      withContext(o.dir, async (ctx) => {
        const added = await ctx.supply.addSupplier(name, readUserFile(o.ca, 'CA file').toString('utf8'), cliActor());
        if (o.json) return printJson(added.map(supplierJson));
        for (const a of added) note(`supplier ${a.supplier}: trusted ${a.subject} (sha256 ${a.fingerprint})`);
      }),
    );
  withDir(supplier.command('list').description('list trusted suppliers and their CAs'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.supply.listSuppliers()).map(supplierJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((a) => [a.supplier, a.fingerprint.slice(0, 16), a.notAfter.slice(0, 10), a.subject]), ['SUPPLIER', 'SHA-256', 'NOT AFTER', 'CA']);
      }),
    );
  withDir(supplier.command('remove').description('stop accepting a supplier\'s manifests (those imported stay, as history)').argument('<name>', 'supplier name')).action(async (name: string, o) =>
    withContext(o.dir, async (ctx) => {
      const n = await ctx.supply.removeSupplier(name, cliActor());
      note(`supplier ${name} removed (${n} CA${n === 1 ? '' : 's'})`);
    }),
  );

  const manifest = program.command('manifest').description('signed manifests of devices handed over from one supply-chain stage to the next');
  manifest
    .command('create')
    .description('supplier side: write the manifest document (JSON) listing the devices handed over')
    .requiredOption('--supplier <name>', 'your supplier name, as the receiver trusts it')
    .requiredOption('--stage <stage>', 'the stage the devices are handed over to (lowercase, e.g. assembly)')
    .option('--device <id=file>', 'a device and its certificate (or, with --pin public-key, a certificate, CSR or public key); repeatable', deviceOption, [])
    .option('--devices <csv>', 'devices from a CSV file with the header id,file[,model][,batch] (files relative to it)')
    .option('--pin <what>', 'certificate (default): the device presents exactly this certificate; public-key: any certificate or CSR with this key', pinOption, 'certificate')
    .option('--model <model>', 'model of every device (a CSV column overrides it)')
    .option('--batch <batch>', 'batch of every device (a CSV column overrides it)')
    .option('--out <file>', 'write it here (default: stdout)')
    .addHelpText('after', `
The document is checked as the receiver will check it. Sign it with
fleetpki manifest sign, or with openssl:
  openssl cms -sign -nodetach -binary -in manifest.json -signer signer.pem \\
    -inkey signer.key -certfile ca.pem -outform DER -out manifest.cms`)
    .action(async (o) => {
      const devices: SupplyManifestEntry[] = [];
      if (o.devices) devices.push(...entriesOfCsv(o.devices, o.pin));
      for (const d of o.device as string[]) {
        const at = d.indexOf('=');
        devices.push({ id: d.slice(0, at), ...pinOfFile(d.slice(at + 1), o.pin) });
      }
      if (!devices.length) throw new ProblemError('bad_request', 'no devices: give --device ID=FILE or --devices FILE.csv');
      for (const d of devices) {
        if (d.model === undefined && o.model !== undefined) d.model = o.model;
        if (d.batch === undefined && o.batch !== undefined) d.batch = o.batch;
      }
      const m: SupplyManifest = { supplier: o.supplier, stage: o.stage, createdAt: new Date(Math.floor(Date.now() / 1000) * 1000), devices };
      const bytes = encodeManifest(m);
      if (!o.out) return printRaw(bytes);
      await writeFileAtomic(o.out, bytes, 0o644);
      note(`manifest of ${devices.length} device${devices.length === 1 ? '' : 's'} for stage ${o.stage} -> ${o.out}`);
    });

  manifest
    .command('sign')
    .description('supplier side: sign a manifest document as CMS SignedData with your signing certificate')
    .requiredOption('--in <file>', 'the manifest document (from manifest create)')
    .requiredOption('--key <file>', `the signing key (PKCS#8 PEM; encrypted: passphrase from $${SIGNING_KEY_PASSPHRASE_ENV})`)
    .requiredOption('--cert <file>', 'its certificate: an end-entity certificate with digitalSignature, under the CA the receiver trusts')
    .option('--chain <file>', 'the CA certificates between it and that CA (PEM), carried in the manifest')
    .requiredOption('--out <file>', 'where to write the signed manifest (DER; PEM with --pem)')
    .option('--pem', 'write PEM (-----BEGIN CMS-----)')
    .addHelpText('after', '\nCheck the result with: openssl cms -verify -inform DER -in manifest.cms -CAfile supplier-root.pem -purpose any')
    .action(async (o) => {
      const id = signingIdentityFromFiles({ key: o.key, cert: o.cert, chain: o.chain });
      const der = await signManifest(id, new Uint8Array(readUserFile(o.in, 'manifest document')), new Date());
      await writeFileAtomic(o.out, o.pem ? pemEncode('CMS', der) : der, 0o644);
      note(`signed by ${id.certificate.subjectText} -> ${o.out}`);
    });

  withDir(manifest.command('verify').description('check a signed manifest against the trusted suppliers without importing it'))
    .requiredOption('--in <file>', 'the signed manifest (DER or PEM)')
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = verifiedManifestJson(await ctx.supply.verify(readCms(o.in)));
        if (o.json) return printJson(r);
        printLine(`valid: ${r.devices.length} devices from ${r.supplier} for stage ${r.stage}, signed by ${r.signer}${r.signedAt ? ` at ${r.signedAt}` : ''}`);
        printLine(`digest ${r.digest}`);
      }),
    );

  withDir(manifest.command('import').description('receiving side: verify a signed manifest and register exactly its devices for this stage\'s profile'))
    .requiredOption('--in <file>', 'the signed manifest (DER or PEM)')
    .requiredOption('--profile <name>', 'the profile the devices enroll under in this stage')
    .option('--stage <stage>', 'refuse the manifest unless it hands the devices over to this stage')
    .option('--domain <domain>', 'operational domain of the devices')
    .option('--owner <owner>', 'owner of the devices')
    .option('--require-approval', 'their first certificate of the stage waits for an ra-officer')
    .option('--json', 'print as JSON, as POST /api/v1/manifests answers')
    .addHelpText('after', `
All or nothing: if one device cannot enter the stage (unknown profile, retired,
in the stage already), nothing is imported and the refused devices are listed.
A manifest is imported once. Devices registered by an earlier stage move into
this one; each then gets its first certificate of the stage only by presenting
what the manifest pins (its certificate or key).`)
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        let r;
        try {
          r = await ctx.supply.importManifest(readCms(o.in), { profile: o.profile, stage: o.stage, domain: o.domain, owner: o.owner, requireApproval: o.requireApproval }, cliActor());
        } catch (e) {
          const entries = e instanceof ProblemError ? (e.extra?.entries as Array<{ id: string; reason: string }> | undefined) : undefined;
          if (entries && !o.json) printTable(entries.map((x) => [x.id, x.reason]), ['DEVICE', 'REFUSED BECAUSE']);
          throw e;
        }
        if (o.json) return printJson(manifestImportJson(r));
        note(`imported manifest ${r.manifest.digest.slice(0, 16)} from ${r.manifest.supplier}: ${r.registered.length} registered, ${r.moved.length} moved into stage ${r.manifest.stage} (profile ${r.manifest.profile})`);
      }),
    );

  withDir(manifest.command('list').description('list imported manifests, newest first'))
    .option('--supplier <name>', 'one supplier\'s')
    .option('--limit <n>', 'at most this many (default 100)', positiveInt, 100)
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const rows = (await ctx.supply.listManifests({ supplier: o.supplier, limit: o.limit })).map(manifestJson);
        if (o.json) return printJson(rows);
        printTable(rows.map((m) => [m.digest.slice(0, 16), m.importedAt.slice(0, 19), m.supplier, m.stage, m.profile, String(m.devices)]), ['DIGEST', 'IMPORTED', 'SUPPLIER', 'STAGE', 'PROFILE', 'DEVICES']);
      }),
    );

  withDir(manifest.command('show').description('show an imported manifest and its devices').argument('<digest>', 'its digest (from manifest list or import)'))
    .option('--cms-out <file>', 'also write the signed manifest as received (the evidence)')
    .option('--json', 'print as JSON')
    .action(async (digest: string, o) =>
      withContext(o.dir, async (ctx) => {
        const { manifest: m, entries } = await ctx.supply.manifest(digest);
        if (o.cmsOut) await writeFileAtomic(o.cmsOut, m.cms, 0o644);
        if (o.json) return printJson({ manifest: manifestJson(m), entries: entries.map(manifestEntryJson) });
        printManifest(manifestJson(m));
        printLine();
        printTable(entries.map(manifestEntryJson).map((e) => [e.deviceId, e.certificateSha256 ? `cert ${e.certificateSha256.slice(0, 16)}` : `key ${e.publicKeySha256!.slice(0, 16)}`, e.usedSerial ?? '-', e.usedAt?.slice(0, 19) ?? 'not yet']), ['DEVICE', 'PINS', 'ADMITTED AS', 'AT']);
      }),
    );
}
