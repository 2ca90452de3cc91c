import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { normaliseSerial } from '../../authority/serial.js';
import { certJson } from '../../protocols/api/plugin.js';
import { writeFileAtomic } from '../../keys/software_key_store.js';
import { cliActor } from '../../server/context.js';
import { REVOCATION_REASONS, type RevocationReason } from '../../store/store.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { parseCsr } from '../../x509/csr.js';
import { formatSan, parseSan } from '../../x509/general_names.js';
import { parseDn } from '../../x509/names.js';
import { pemEncode } from '../../x509/pem.js';
import { existsSync } from 'node:fs';
import { deliverKey, MIN_DELIVERY_PASSPHRASE, type DeliveryFormat } from '../../keys/key_delivery.js';
import type { FleetContext } from '../../server/context.js';
import { withContext, withDir } from '../context.js';
import { collect, note, positiveInt, printJson, printLine, printRaw, printTable, readUserFile, secretFrom } from '../output.js';

const DELIVERY_ENV = 'FLEETPKI_DELIVERY_PASSPHRASE';
const TOKEN_ENV = 'FLEETPKI_TOKEN';

/**
 * Server-side generation (or, with --recover, recovery from escrow), then one
 * delivery of the key in `format`. Shared by export-p12 and keygen.
 */
async function generateOrRecover(ctx: FleetContext, o: Record<string, string | string[] | number | undefined>, format: DeliveryFormat) {
  for (const f of [o.out, o.outKey].filter((x): x is string => typeof x === 'string')) {
    if (existsSync(f)) throw new ProblemError('already_exists', `${f} exists; refusing to overwrite a key file`);
  }
  const passphrase = secretFrom(DELIVERY_ENV, o.passphraseFile as string | undefined, 'delivery passphrase');
  if (passphrase.length < MIN_DELIVERY_PASSPHRASE) throw new ProblemError('bad_request', `the delivery passphrase must be at least ${MIN_DELIVERY_PASSPHRASE} characters`);
  if (o.recover !== undefined) {
    // Recovery is the key-recovery role's alone, even from the CLI: it names an operator token.
    const op = await ctx.operators.authenticate(secretFrom(TOKEN_ENV, o.tokenFile as string | undefined, 'key-recovery operator token'));
    const r = await ctx.custody.recover(serialArg(o.recover as string), op);
    return { record: r.certificate, escrowed: true, delivery: await deliverKey(r.privateKey, [r.certificate.der], format, passphrase, r.certificate.subject) };
  }
  if (!o.profile || !o.subject) throw new ProblemError('bad_request', 'give --profile and --subject (server-side generation) or --recover SERIAL');
  const g = await ctx.custody.generateAndIssue({
    profile: o.profile as string,
    ca: o.ca as string | undefined,
    subject: parseDn(o.subject as string),
    sans: (o.san as string[]).map(parseSan),
    keyAlgorithm: o.keyAlgorithm as string | undefined,
    validityDays: o.validityDays as number | undefined,
    actor: cliActor(),
  });
  return { record: g.result.record, escrowed: g.escrowed, delivery: await deliverKey(g.privateKey, [g.result.der, ...g.result.chain.slice(0, -1)], format, passphrase, g.result.record.subject) };
}

const KEYGEN_HELP = `
The server generates the key only where the profile allows it
("serverKeyGen": true) and returns it once, encrypted under the passphrase
from $${DELIVERY_ENV} or --passphrase-file (${MIN_DELIVERY_PASSPHRASE}+ characters, never
the command line). Unless the profile sets "keyEscrow": true, the server
keeps no copy. An escrowed key is recovered with --recover SERIAL by an
operator holding a key-recovery token ($${TOKEN_ENV} or --token-file); the
recovery is audited. Keys born on the device are better: see docs/keys.md.`;

function keygenOptions(cmd: ReturnType<typeof withDir>) {
  return cmd
    .option('--profile <name>', 'profile that allows server-side key generation')
    .option('--subject <dn>', 'subject, e.g. "O=Acme, CN=dev-1"')
    .option('--san <name>', 'subject alternative name: dns:..., ip:..., uri:... (repeatable)', collect, [])
    .option('--key-algorithm <alg>', 'key algorithm (default: the profile\'s first)')
    .option('--ca <name>', 'issuing CA (default from the config)')
    .option('--validity-days <n>', 'lifetime in days (default from the profile)', positiveInt)
    .option('--recover <serial>', 'instead: recover the escrowed key of this certificate (key-recovery role)')
    .option('--token-file <file>', `with --recover: file holding the key-recovery operator's API token (else $${TOKEN_ENV})`)
    .option('--passphrase-file <file>', `file holding the passphrase that encrypts the key (else $${DELIVERY_ENV})`)
    .option('--json', 'print the certificate record as JSON')
    .addHelpText('after', KEYGEN_HELP);
}

const REASONS = Object.keys(REVOCATION_REASONS).filter((r) => r !== 'removeFromCRL');

function serialArg(s: string): string {
  const n = normaliseSerial(s);
  if (!n) throw new ProblemError('bad_request', `"${s}" is not a serial number (hex, colons allowed)`);
  return n;
}

export function registerCert(program: Command): void {
  const cert = program.command('cert').description('issue, list, show and revoke certificates; server-side key generation (export-p12, keygen)');

  withDir(cert.command('issue').description('issue a certificate from a PKCS#10 CSR under a profile'))
    .requiredOption('--csr <file>', 'the CSR, PEM or DER')
    .requiredOption('--profile <name>', 'certificate profile, e.g. device-tls, server-tls, opcua-application')
    .option('--ca <name>', 'issuing CA (default from the config)')
    .option('--subject <dn>', 'certify this subject instead of the CSR\'s, e.g. "O=Acme, CN=dev-1"')
    .option('--san <name>', 'add a subject alternative name: dns:..., ip:..., uri:..., email:... (repeatable)', collect, [])
    .option('--only-sans', 'certify only the --san names, not those in the CSR')
    .option('--validity-days <n>', 'lifetime in days (default and maximum from the profile)', positiveInt)
    .option('--out <file>', 'write the certificate PEM here instead of stdout')
    .option('--chain', 'append the issuing CA chain (without the root) to the PEM')
    .option('--json', 'print the certificate record as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const csrBytes = readUserFile(o.csr, 'CSR');
        const extra = o.san.map(parseSan);
        // --san adds to the CSR's names unless --only-sans; the profile decides what is allowed.
        let sans: ReturnType<typeof parseSan>[] | undefined;
        if (o.onlySans) sans = extra;
        else if (extra.length) {
          const csr = parseCsr(csrBytes);
          // As when the CSR's names are used alone: names fleetpki cannot certify are refused, not dropped.
          if (csr.unsupportedSans.length) throw new ProblemError('policy_violation', `the CSR asks for names fleetpki does not issue: ${csr.unsupportedSans.join(', ')}`);
          sans = [...csr.sans, ...extra];
        }
        const r = await ctx.authority.issue({
          csr: csrBytes,
          profile: o.profile,
          ca: o.ca,
          subject: o.subject !== undefined ? parseDn(o.subject) : undefined,
          sans,
          validityDays: o.validityDays,
          actor: cliActor(),
        });
        const pem = r.pem + (o.chain ? r.chain.slice(0, -1).map((d) => pemEncode('CERTIFICATE', d)).join('') : '');
        if (r.capped) note('note: notAfter was shortened to the issuing CA\'s notAfter');
        if (o.out) {
          await writeFileAtomic(o.out, pem, 0o644);
          note(`issued ${r.record.serial} -> ${o.out}`);
        }
        if (o.json) printJson(certJson(r.record));
        else if (!o.out) printRaw(pem);
      }),
    );

  keygenOptions(withDir(cert.command('export-p12').description('generate a key on the server, issue its certificate and write both (with the chain) as a PKCS#12 file; or recover an escrowed key')))
    .requiredOption('--out <file>', 'the PKCS#12 file to write (must not exist)')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = await generateOrRecover(ctx, o, 'pkcs12');
        if (r.delivery.format !== 'pkcs12') throw new ProblemError('internal', 'unexpected delivery');
        await writeFileAtomic(o.out, r.delivery.pkcs12, 0o600);
        if (o.json) return printJson({ ...certJson(r.record), escrowed: r.escrowed, file: o.out });
        note(`${o.recover ? 'recovered the key of' : 'generated a key for'} ${r.record.serial} (${r.record.subject}) -> ${o.out}${r.escrowed && !o.recover ? ' (a copy is in escrow)' : ''}`);
      }),
    );

  keygenOptions(withDir(cert.command('keygen').description('generate a key on the server and write it as encrypted PKCS#8 beside its certificate; or recover an escrowed key')))
    .requiredOption('--out-key <file>', 'the encrypted PKCS#8 key file to write (must not exist)')
    .requiredOption('--out <file>', 'the certificate (and chain) PEM file to write')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const r = await generateOrRecover(ctx, o, 'pkcs8');
        if (r.delivery.format !== 'pkcs8') throw new ProblemError('internal', 'unexpected delivery');
        await writeFileAtomic(o.outKey, r.delivery.privateKeyPem, 0o600);
        await writeFileAtomic(o.out, r.delivery.certificatePem, 0o644);
        if (o.json) return printJson({ ...certJson(r.record), escrowed: r.escrowed, keyFile: o.outKey, certFile: o.out });
        note(`${o.recover ? 'recovered the key of' : 'generated a key for'} ${r.record.serial} (${r.record.subject}) -> ${o.outKey}, ${o.out}`);
      }),
    );

  withDir(cert.command('list').description('list certificates, newest serials first in keyset pages'))
    .option('--status <status>', 'good or revoked')
    .option('--ca <name>', 'issuing CA')
    .option('--profile <name>', 'profile')
    .option('--subject <text>', 'subject contains (case-insensitive)')
    .option('--after <serial>', 'continue after this serial')
    .option('--limit <n>', 'at most this many (max 1000)', positiveInt, 100)
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (o.status && o.status !== 'good' && o.status !== 'revoked') throw new ProblemError('bad_request', '--status is good or revoked');
        const rows = await ctx.store.listCertificates({ status: o.status, issuerCa: o.ca, profile: o.profile, subjectContains: o.subject, afterSerial: o.after ? serialArg(o.after) : undefined, limit: Math.min(o.limit, 1000) });
        if (o.json) return printJson(rows.map((c) => certJson(c, false)));
        printTable(
          rows.map((c) => [c.serial, c.status === 'good' ? 'good' : `revoked (${c.revocation?.reason})`, c.profile, c.notAfter.toISOString().slice(0, 10), c.subject]),
          ['SERIAL', 'STATUS', 'PROFILE', 'NOT AFTER', 'SUBJECT'],
        );
      }),
    );

  withDir(cert.command('show').description('show one certificate').argument('<serial>', 'serial number (hex)'))
    .option('--pem', 'print only the PEM')
    .option('--json', 'print as JSON')
    .action(async (serial: string, o) =>
      withContext(o.dir, async (ctx) => {
        const s = serialArg(serial);
        const c = await ctx.store.getCertificate(s);
        if (!c) throw new ProblemError('not_found', `no certificate with serial ${s}`);
        if (o.pem) return printRaw(pemEncode('CERTIFICATE', c.der));
        const info = parseCertificate(c.der);
        const j = { ...certJson(c), keyAlgorithm: info.key, keyUsage: info.keyUsage, extendedKeyUsage: info.extendedKeyUsage, fingerprintSha256: info.fingerprintSha256, issuer: info.issuerText };
        if (o.json) return printJson(j);
        const lines: Array<[string, string]> = [
          ['serial', c.serial],
          ['status', c.status + (c.revocation ? ` (${c.revocation.reason}, ${c.revocation.revokedAt.toISOString()})` : '')],
          ['subject', c.subject],
          ['issuer', `${info.issuerText} (CA "${c.issuerCa}")`],
          ['profile', c.profile],
          ['validity', `${c.notBefore.toISOString()} .. ${c.notAfter.toISOString()}`],
          ['SANs', info.sans.map(formatSan).join(', ') || '-'],
          ['key usage', info.keyUsage.join(', ')],
          ['extended key usage', info.extendedKeyUsage.join(', ') || '-'],
          ['SHA-256 fingerprint', info.fingerprintSha256],
          ['requested by', c.requester],
        ];
        for (const [k, v] of lines) printLine(`${k.padEnd(20)} ${v}`);
        printRaw(pemEncode('CERTIFICATE', c.der));
      }),
    );

  withDir(cert.command('revoke').description('revoke a certificate').argument('<serial>', 'serial number (hex)'))
    .requiredOption('--reason <reason>', `RFC 5280 reason: ${REASONS.join(', ')}`)
    .option('--invalidity-date <iso>', 'when the key was (suspected) compromised, ISO 8601')
    .option('--json', 'print the updated record as JSON')
    .action(async (serial: string, o) =>
      withContext(o.dir, async (ctx) => {
        const inv = o.invalidityDate ? new Date(o.invalidityDate) : undefined;
        if (inv && isNaN(inv.getTime())) throw new ProblemError('bad_request', `--invalidity-date "${o.invalidityDate}" is not a date`);
        const c = await ctx.authority.revoke(serialArg(serial), o.reason as RevocationReason, cliActor(), inv);
        if (o.json) return printJson(certJson(c, false));
        note(`revoked ${c.serial} (${o.reason})`);
      }),
    );

  withDir(cert.command('release').description('lift a certificateHold: the certificate is good again').argument('<serial>', 'serial number (hex)'))
    .option('--json', 'print the updated record as JSON')
    .action(async (serial: string, o) =>
      withContext(o.dir, async (ctx) => {
        const c = await ctx.authority.releaseHold(serialArg(serial), cliActor());
        if (o.json) return printJson(certJson(c, false));
        note(`released the hold on ${c.serial}`);
      }),
    );
}
