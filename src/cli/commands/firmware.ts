/**
 * `fleetpki firmware`: signers (code-signing keys in the key store), signing
 * an image, verifying one as a device does, and showing a signature.
 * docs/firmware.md has the pipeline and what a device checks.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Agent, lockStateDir } from '../../agent/agent.js';
import { certsOfPem, crlSignedBy, parseCrl, type ParsedCrl } from '../../agent/certs.js';
import type { AgentFiles } from '../../agent/files.js';
import { nodeFiles } from '../../agent/files.js';
import { ProblemError } from '../../errors.js';
import { parseSignature, signerCertificate } from '../../firmware/cms.js';
import { digestStream } from '../../firmware/digest.js';
import { decodeManifest, manifestJson, SIGN_DIGESTS, type ManifestJson, type SignDigest } from '../../firmware/manifest.js';
import { firmwareRefusalOf } from '../../firmware/refusal.js';
import { digestAlgorithmFor, signFirmware } from '../../firmware/sign.js';
import { DEFAULT_FIRMWARE_CA } from '../../firmware/signers.js';
import { checkImage, checkSigner, type AcceptedFirmware, type FirmwareExpectations, type FirmwareTrust, type SignerCheck } from '../../firmware/verify.js';
import { isAdopting } from '../../keys/pkcs11_token_set.js';
import { writeFileAtomic } from '../../keys/software_key_store.js';
import { firmwareSignerJson } from '../../protocols/api/firmware_routes.js';
import { cliActor } from '../../server/context.js';
import { KEY_ALGORITHMS, isKeyAlgorithm } from '../../x509/algorithms.js';
import { parseCertificate, type CertInfo } from '../../x509/cert_info.js';
import { parseDn } from '../../x509/names.js';
import { pemDecodeAll, pemEncode } from '../../x509/pem.js';
import { withContext, withDir } from '../context.js';
import { SIGNING_KEY_PASSPHRASE_ENV, signingIdentityFromFiles } from '../signing_files.js';
import { collect, note, positiveInt, printFacts, printJson, printRaw, printTable, readUserFile } from '../output.js';

const STATE_HELP = 'agent state directory: its fleet roots, issuing CAs, cached CRLs and firmware.json (installed version, model, rollback floor)';

/**
 * The image in 1 MiB chunks read into one reused buffer: memory stays flat
 * whatever its size (a fresh Buffer per chunk would leave the garbage
 * collector tens of MB behind on a 1 GiB image). Each chunk is valid until
 * the next is asked for; the digest consumes it at once.
 */
async function* imageStream(path: string): AsyncIterable<Uint8Array> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new ProblemError('bad_request', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      yield buf.subarray(0, bytesRead);
    }
  } catch (e) {
    throw new ProblemError('bad_request', `cannot read image ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    await fh.close();
  }
}

/** `--expires`: an ISO date or date-time, or a duration from now: 90d, 12h. */
export function parseExpires(s: string | undefined, now = new Date()): Date | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)([dh])$/.exec(s);
  if (m) return new Date(now.getTime() + Number(m[1]) * (m[2] === 'd' ? 86_400_000 : 3_600_000));
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T23:59:59Z` : s);
  if (isNaN(d.getTime())) throw new ProblemError('bad_request', `--expires "${s}" is not a date (2027-06-30, 2027-06-30T12:00:00Z) or a duration (90d, 12h)`);
  return d;
}

function digestOption(v: string | undefined): SignDigest | undefined {
  if (v === undefined) return undefined;
  if (!(SIGN_DIGESTS as readonly string[]).includes(v)) throw new ProblemError('bad_request', `--digest is ${SIGN_DIGESTS.join(' or ')}`);
  return v as SignDigest;
}

/** Every CRL in a file: DER, or PEM with one or more X509 CRL blocks. */
function crlsOfFile(path: string): ParsedCrl[] {
  const buf = readUserFile(path, 'CRL');
  if (buf[0] === 0x30) return [parseCrl(buf)];
  const blocks = pemDecodeAll(buf.toString('latin1')).filter((b) => b.label === 'X509 CRL');
  if (!blocks.length) throw new ProblemError('bad_request', `${path} holds no CRL (DER or PEM "X509 CRL")`);
  return blocks.map((b) => parseCrl(b.der));
}

/** A CRL lookup over a list: a full, base CRL of the issuer that it signed. */
function crlLookup(crls: ParsedCrl[]): FirmwareTrust['crls'] {
  return (_cert, issuer) => crls.find((c) => !c.delta && !c.scopeUrls && Buffer.compare(Buffer.from(c.issuerDer), Buffer.from(issuer.subjectDer)) === 0 && crlSignedBy(c, issuer));
}

async function fetchCrl(url: string): Promise<ParsedCrl> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) }).catch((e: Error) => {
    throw new ProblemError('unavailable', `CRL ${url} unreachable: ${(e.cause as Error)?.message ?? e.message}`);
  });
  if (res.status !== 200) throw new ProblemError('unavailable', `CRL ${url}: HTTP ${res.status}`);
  return parseCrl(new Uint8Array(await res.arrayBuffer()));
}

/** A view of the agent's files that writes nothing (another agent process owns the state directory). */
function readOnly(files: AgentFiles): AgentFiles {
  return {
    ...files,
    writeAtomic: async () => {
      throw new ProblemError('conflict', 'the agent daemon owns the state directory; add the firmware CA\'s CRL to its --crl-url so it keeps it fresh');
    },
    remove: async () => undefined,
    mkdir: async () => undefined,
    symlinkAtomic: async () => undefined,
  };
}

function printAccepted(a: AcceptedFirmware, modelChecked: boolean): void {
  const rows: string[][] = [
    ['result', 'ACCEPTED'],
    ['model', `${a.model}${modelChecked ? '' : ' (not checked: no --model)'}`],
    ['version', a.version],
    ['manifest', a.bound ? 'signed' : 'none: model and version given on the command line (--allow-unbound)'],
    ['size', `${a.size} octets`],
    ['digest', `${a.digestAlgorithm}:${a.digest}`],
    ['signed at', a.signingTime.toISOString()],
    ['signer', `${a.signer.subject} (serial ${a.signer.serial})`],
    ['issuer', a.signer.issuer],
  ];
  if (a.manifest?.minVersion) rows.push(['min version', a.manifest.minVersion]);
  if (a.manifest?.expires) rows.push(['expires', a.manifest.expires.toISOString()]);
  if (a.rollbackFloor) rows.push(['rollback floor', `${a.rollbackFloor} (once installed)`]);
  printFacts(rows);
}

function acceptedJson(a: AcceptedFirmware) {
  return {
    accepted: true,
    model: a.model,
    version: a.version,
    bound: a.bound,
    size: a.size,
    digestAlgorithm: a.digestAlgorithm,
    digest: a.digest,
    signingTime: a.signingTime.toISOString(),
    signer: { ...a.signer, notAfter: a.signer.notAfter.toISOString() },
    manifest: a.manifest ? manifestJson(a.manifest) : null,
    rollbackFloor: a.rollbackFloor ?? null,
    chain: a.path.map((c) => c.subjectText),
  };
}

export function registerFirmware(program: Command): void {
  const fw = program
    .command('firmware')
    .description('signed firmware updates: code-signing keys, signing images, checking them as a device does')
    .addHelpText('after', `
Signatures are detached CMS SignedData (RFC 5652) over the image, with the
update manifest (model, version, size, digest, minimum version, expiry) as a
signed attribute; openssl cms -verify -binary -content IMAGE accepts them.
Set up once:  fleetpki ca create-intermediate --name ${DEFAULT_FIRMWARE_CA}
              fleetpki firmware signer create --name release
See docs/firmware.md.`);

  const signer = fw.command('signer').description('firmware signers: code-signing keys in the key store and their certificates');
  withDir(signer.command('create').description(`make a code-signing key in the key store and certify it under the firmware CA (default "${DEFAULT_FIRMWARE_CA}")`))
    .requiredOption('--name <name>', 'signer name (lowercase letters, digits, dashes)')
    .option('--ca <name>', `issuing CA of its certificate: an intermediate of its own, not the root or the device CA (default ${DEFAULT_FIRMWARE_CA})`)
    .option('--key-algorithm <alg>', 'ecdsa-p256 (default), ecdsa-p384, rsa-3072, rsa-4096 (the code-signing profile\'s)')
    .option('--key-uri <uri>', 'adopt an existing key in the PKCS#11 token (RFC 7512 URI) instead of generating one')
    .option('--subject <dn>', 'subject (default: O=<the CA\'s O>, CN=<name> firmware signer)')
    .option('--validity-days <n>', 'lifetime in days (default: the code-signing profile\'s, 1095)', positiveInt)
    .option('--json', 'print as JSON')
    .addHelpText('after', `
With the pkcs11 key store the key is generated in the token and never leaves
it. Revoke a signer with fleetpki cert revoke SERIAL: devices then refuse
every image it signed, so re-sign current images with a new signer first.`)
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (o.keyAlgorithm && !isKeyAlgorithm(o.keyAlgorithm)) throw new ProblemError('bad_request', `unknown key algorithm "${o.keyAlgorithm}" (known: ${KEY_ALGORITHMS.join(', ')})`);
        if (o.keyUri && !isAdopting(ctx.keys)) throw new ProblemError('bad_request', '--key-uri needs the pkcs11 key store');
        const keyRef = o.keyUri && isAdopting(ctx.keys) ? await ctx.keys.adopt(o.keyUri) : undefined;
        const rec = await ctx.firmware.createSigner({ name: o.name, ca: o.ca, keyAlgorithm: o.keyAlgorithm, keyRef, subject: o.subject ? parseDn(o.subject) : undefined, validityDays: o.validityDays, actor: cliActor() });
        const st = (await ctx.firmware.listSigners()).find((s) => s.record.name === rec.name)!;
        if (o.json) return printJson(firmwareSignerJson(st));
        note(`Created firmware signer "${rec.name}": ${st.cert.subjectText}, serial ${rec.serial}, until ${rec.notAfter.toISOString()}`);
        printRaw(pemEncode('CERTIFICATE', rec.certDer));
      }),
    );

  withDir(signer.command('list').description('list firmware signers and their status'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const list = (await ctx.firmware.listSigners()).map(firmwareSignerJson);
        if (o.json) return printJson(list);
        printTable(list.map((s) => [s.name, s.status, s.ca, s.keyAlgorithm, s.notAfter.slice(0, 10), s.serial, s.subject]), ['NAME', 'STATUS', 'CA', 'ALGORITHM', 'NOT AFTER', 'SERIAL', 'SUBJECT']);
      }),
    );

  withDir(fw.command('sign').description('sign a firmware image: write a detached CMS signature with the signed update manifest'))
    .requiredOption('--in <file>', 'the image')
    .requiredOption('--model <model>', 'device model the image is for')
    .requiredOption('--version <version>', 'its version (semantic version, e.g. 1.4.2)')
    .requiredOption('--out <file>', 'where to write the signature (DER; PEM with --pem)')
    .option('--min-version <version>', 'anti-rollback floor: once installed, devices refuse images older than this')
    .option('--expires <when>', 'devices do not install it after this: 2027-06-30, an ISO date-time, or 90d / 12h from now')
    .option('--signer <name>', 'firmware signer (default: the newest usable one)')
    .option('--digest <alg>', `${SIGN_DIGESTS.join(' or ')} (default: sha384 for P-384 keys, else sha256)`)
    .option('--key <file>', 'instead of a signer in the data directory: a code-signing key file (PKCS#8 PEM; encrypted: passphrase from $' + SIGNING_KEY_PASSPHRASE_ENV + ')')
    .option('--cert <file>', 'with --key: its code-signing certificate')
    .option('--chain <file>', 'with --key: the issuing CA certificates to include (PEM)')
    .option('--pem', 'write the signature as PEM (-----BEGIN CMS-----)')
    .option('--json', 'print the manifest and signer as JSON')
    .addHelpText('after', `
The image is read as a stream (1 GiB costs a few MiB of memory). Signing
with a signer from the data directory is audited (firmware.sign). Check the
result with: openssl cms -verify -binary -content IMAGE -in SIG -inform DER \\
  -CAfile root.pem -purpose any -out /dev/null`)
    .action(async (o) => {
      const expires = parseExpires(o.expires);
      const digest = digestOption(o.digest);
      let der: Uint8Array;
      let manifest;
      let signerName: string;
      if (o.key || o.cert) {
        if (!o.key || !o.cert) throw new ProblemError('bad_request', '--key and --cert go together');
        if (o.signer) throw new ProblemError('bad_request', '--signer names a signer in the data directory; with --key, give no --signer');
        const id = signingIdentityFromFiles({ key: o.key, cert: o.cert, chain: o.chain });
        const { certificate } = id;
        const alg = digestAlgorithmFor(id, { digestAlgorithm: digest });
        const r = await signFirmware(id, { model: o.model, version: o.version, minVersion: o.minVersion, expires, digestAlgorithm: alg }, await digestStream(imageStream(o.in), alg), new Date());
        der = r.der;
        manifest = r.manifest;
        signerName = certificate.subjectText;
      } else {
        const r = await withContext(o.dir, (ctx) =>
          ctx.firmware.sign({ signer: o.signer, model: o.model, version: o.version, minVersion: o.minVersion, expires, digestAlgorithm: digest, image: imageStream(o.in), actor: cliActor() }),
        );
        der = r.der;
        manifest = r.manifest;
        signerName = r.signer.name;
      }
      await writeFileAtomic(o.out, o.pem ? pemEncode('CMS', der) : der, 0o644);
      if (o.json) return printJson({ out: resolve(o.out), signer: signerName, manifest: manifestJson(manifest) });
      note(`Signed ${o.in}: ${manifest.model} ${manifest.version}, ${manifest.size} octets, ${manifest.digestAlgorithm}:${manifest.digest} (signer ${signerName}) -> ${o.out}`);
    });

  fw.command('verify')
    .description('check an image and its signature as a device does before installing it')
    .requiredOption('--in <file>', 'the image')
    .requiredOption('--sig <file>', 'its detached signature (DER or PEM)')
    .option('--model <model>', "this device's model (default: the agent's firmware.json with --state; else not checked)")
    .option('--installed-version <version>', 'the running firmware version: the image must be newer (default: firmware.json with --state)')
    .option('--rollback-floor <version>', 'refuse images older than this (raised to firmware.json\'s floor with --state)')
    .option('--state <dir>', STATE_HELP)
    .option('--record', 'with --state: record the image as installed in firmware.json (after installing it)')
    .option('--ca-file <file>', 'without --state: the fleet root certificate(s), PEM (trust anchors; non-self-signed CA certificates in it count as intermediates)')
    .option('--crl <file>', 'without --state: a CRL to check the chain with, DER or PEM (repeatable)', collect, [])
    .option('--fetch-crls', 'without --state: download CRLs the chain needs and --crl does not give, from its distribution points')
    .option('--allow-unbound', 'accept a signature without update manifest (e.g. made by openssl cms -sign), for the --version given')
    .option('--version <version>', 'with --allow-unbound: the version the image is known to have')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Accepted only if: the signature verifies; the signer chains to a fleet root
and every certificate was valid at the signing time; the signer has
extendedKeyUsage codeSigning; no certificate of the chain is revoked (a CRL
for each is needed: cached by the agent, --crl or --fetch-crls); the model
matches; the version is newer than the installed one and not below the
rollback floor; the manifest has not expired; and the image's digest and size
are the signed ones. Exit status: 0 accepted, 3 refused (the reason is
printed: firmware_rejected (reason): ...), 2 for bad arguments.`)
    .action(async (o) => {
      const sigBytes = readUserFile(o.sig, 'signature');
      if (o.record && !o.state) throw new ProblemError('bad_request', '--record needs --state');
      if (o.version && !o.allowUnbound) throw new ProblemError('bad_request', '--version goes with --allow-unbound (a signed manifest carries its own version)');
      if (o.allowUnbound && (!o.version || (!o.model && !o.state))) throw new ProblemError('bad_request', '--allow-unbound needs --version and the model (--model, or firmware.json with --state)');
      let accepted: AcceptedFirmware;
      let modelChecked = o.model !== undefined;
      if (o.state) {
        if (o.caFile || o.crl.length || o.fetchCrls) throw new ProblemError('bad_request', '--state uses the agent\'s trust and CRLs; --ca-file, --crl and --fetch-crls are for use without it');
        const dir = resolve(o.state);
        let unlock: (() => Promise<void>) | undefined;
        try {
          unlock = await lockStateDir(dir);
        } catch (e) {
          if (!(e instanceof ProblemError && e.code === 'conflict')) throw e;
          if (o.record) throw e;
        }
        try {
          const agent = await Agent.open({ dir, files: unlock ? nodeFiles : readOnly(nodeFiles) });
          // The model is always checked on a device: given, or firmware.json's (else bad_request).
          modelChecked = true;
          accepted = await agent.verifyFirmware({ signature: sigBytes, image: imageStream(o.in), model: o.model, installedVersion: o.installedVersion, rollbackFloor: o.rollbackFloor, unboundVersion: o.allowUnbound ? o.version : undefined, fetchCrls: !!unlock });
          if (o.record) {
            const s = await agent.recordFirmware(accepted);
            note(`recorded ${s.model} ${s.installedVersion} as installed${s.rollbackFloor ? ` (rollback floor ${s.rollbackFloor})` : ''} in ${dir}/firmware.json`);
          }
        } finally {
          await unlock?.();
        }
      } else {
        if (!o.caFile) throw new ProblemError('bad_request', 'give the fleet root with --ca-file FILE, or an agent state directory with --state DIR');
        const certs = certsOfPem(readUserFile(o.caFile, 'CA file').toString('utf8'), o.caFile);
        const selfSigned = (c: CertInfo) => Buffer.compare(Buffer.from(c.subjectDer), Buffer.from(c.issuerDer)) === 0;
        const anchors = certs.filter((c) => c.isCa && selfSigned(c));
        if (!anchors.length) throw new ProblemError('bad_request', `${o.caFile} holds no self-signed CA certificate (the fleet root)`);
        const crls = (o.crl as string[]).flatMap(crlsOfFile);
        const exp: FirmwareExpectations = { model: o.model, installedVersion: o.installedVersion, rollbackFloor: o.rollbackFloor, unbound: o.allowUnbound ? { model: o.model, version: o.version } : undefined };
        const sig = parseSignature(sigBytes);
        const trust = (): FirmwareTrust => ({ anchors, intermediates: certs.filter((c) => c.isCa && !selfSigned(c)), crls: crlLookup(crls), now: new Date() });
        const tried = new Set<string>();
        let checked: SignerCheck | undefined;
        while (!checked) {
          try {
            checked = checkSigner(sig, trust(), exp);
          } catch (e) {
            const reason = firmwareRefusalOf(e);
            const urls = (((e as ProblemError).extra?.crlUrls as string[] | undefined) ?? []).filter((u) => !tried.has(u));
            if (!o.fetchCrls || (reason !== 'no_crl' && reason !== 'crl_expired') || !urls.length) throw e;
            for (const u of urls) {
              tried.add(u);
              crls.unshift(await fetchCrl(u));
            }
          }
        }
        accepted = checkImage(checked, await digestStream(imageStream(o.in), sig.digestAlgorithm));
      }
      if (!modelChecked) note('warning: the model was not checked (no --model); a device always checks it');
      if (o.json) return printJson(acceptedJson(accepted));
      printAccepted(accepted, modelChecked);
    });

  fw.command('show')
    .description('print the manifest and signer of a signature, without checking anything')
    .requiredOption('--sig <file>', 'the signature (DER or PEM)')
    .option('--json', 'print as JSON')
    .action(async (o) => {
      const sig = parseSignature(readUserFile(o.sig, 'signature'));
      let manifest: ManifestJson | null = null;
      let manifestError: string | undefined;
      if (sig.manifest) {
        try {
          manifest = manifestJson(decodeManifest(sig.manifest));
        } catch (e) {
          manifestError = (e as ProblemError).detail ?? String(e);
        }
      }
      const leaf = signerCertificate(sig);
      const out = {
        verified: false,
        digestAlgorithm: sig.digestAlgorithm,
        messageDigest: Buffer.from(sig.messageDigest).toString('hex'),
        signingTime: sig.signingTime?.toISOString() ?? null,
        manifest,
        ...(manifestError ? { manifestError } : {}),
        signer: leaf ? { subject: leaf.subjectText, serial: leaf.serial, issuer: leaf.issuerText, notBefore: leaf.notBefore.toISOString(), notAfter: leaf.notAfter.toISOString() } : null,
        certificates: sig.certificates.map((d) => parseCertificate(d).subjectText),
        otherSignedAttributes: sig.otherAttributes,
      };
      if (o.json) return printJson(out);
      note('NOT VERIFIED: this only prints what the signature says (fleetpki firmware verify checks it)');
      const rows: string[][] = [
        ['model', manifest?.model ?? (manifestError ? `(bad manifest: ${manifestError})` : '(no manifest)')],
        ['version', manifest?.version ?? '-'],
        ['size', manifest ? String(manifest.size) : '-'],
        ['digest', `${out.digestAlgorithm}:${out.messageDigest}`],
        ['min version', manifest?.minVersion ?? '-'],
        ['expires', manifest?.expires ?? '-'],
        ['signed at', out.signingTime ?? '-'],
        ['signer', out.signer ? `${out.signer.subject} (serial ${out.signer.serial})` : '(not in the signature)'],
        ['certificates', out.certificates.join('; ')],
      ];
      printFacts(rows);
    });
}
