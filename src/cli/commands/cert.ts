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
import { withContext, withDir } from '../context.js';
import { collect, note, positiveInt, printJson, printLine, printRaw, printTable, readUserFile } from '../output.js';

const REASONS = Object.keys(REVOCATION_REASONS).filter((r) => r !== 'removeFromCRL');

function serialArg(s: string): string {
  const n = normaliseSerial(s);
  if (!n) throw new ProblemError('bad_request', `"${s}" is not a serial number (hex, colons allowed)`);
  return n;
}

export function registerCert(program: Command): void {
  const cert = program.command('cert').description('issue, list, show and revoke certificates');

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
