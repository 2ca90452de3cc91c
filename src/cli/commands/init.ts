import type { Command } from 'commander';
import { KEY_ALGORITHMS, isKeyAlgorithm } from '../../x509/algorithms.js';
import { ProblemError } from '../../errors.js';
import { resolve } from 'node:path';
import { initDataDir, type InitOptions } from '../../server/context.js';
import { resolveDataDir } from '../../server/config.js';
import { parseCertificate } from '../../x509/cert_info.js';
import { DIR_HELP } from '../context.js';
import { collect, note, positiveInt, printJson, printLine } from '../output.js';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('create a data directory: config, embedded store, key store, a root CA, an issuing CA and an admin token')
    .option('--dir <dir>', DIR_HELP)
    .requiredOption('--org <name>', 'organisation name, used in the CA subjects')
    .option('--key-algorithm <alg>', `CA key algorithm: ${KEY_ALGORITHMS.join(', ')}`, 'ecdsa-p256')
    .option('--root-validity-days <n>', 'root CA lifetime in days', positiveInt, 7300)
    .option('--issuing-validity-days <n>', 'issuing CA lifetime in days', positiveInt, 3650)
    .option('--root-subject <dn>', 'root CA subject, e.g. "O=Acme, CN=Acme Root CA" (default from --org)')
    .option('--issuing-subject <dn>', 'issuing CA subject (default from --org)')
    .option('--public-url <url>', 'base URL of the plain-HTTP listener written into certificates (CRL, OCSP, CA issuers)')
    .option('--listen <host:port>', 'HTTPS listener address', '127.0.0.1:8443')
    .option('--http-listen <host:port>', 'plain-HTTP listener address', '127.0.0.1:8080')
    .option('--hostname <name>', 'DNS name of the HTTPS listener (repeatable)', collect, [])
    .option('--store <spec>', 'SQLite file in the data directory (default fleetpki.db) or postgres://... URL')
    .option('--key-store <type>', 'where CA keys live: soft (encrypted files, default) or pkcs11 (a token or HSM)', 'soft')
    .option('--pkcs11-module <path>', 'PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so')
    .option('--pkcs11-token <label>', 'label of the token that holds the CA keys')
    .option('--pkcs11-pin-env <var>', 'name of the environment variable that holds the user PIN (the name is stored, never the PIN)')
    .option('--pkcs11-pin-file <file>', 'file that holds the user PIN (instead of --pkcs11-pin-env)')
    .option('--root-pkcs11-token <label>', 'generate the root CA key in this token of its own (same module), to keep it offline between ceremonies')
    .option('--root-pkcs11-pin-env <var>', 'name of the environment variable that holds the root token\'s PIN')
    .option('--root-pkcs11-pin-file <file>', 'file that holds the root token\'s PIN')
    .option('--key-uri <uri>', 'adopt an existing token key as the root CA key (PKCS#11 URI, RFC 7512) instead of generating one')
    .option('--issuing-key-uri <uri>', 'adopt an existing token key as the issuing CA key')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
The key store passphrase comes from $FLEETPKI_KEYSTORE_PASSPHRASE or the file
named by $FLEETPKI_KEYSTORE_PASSPHRASE_FILE. If neither is set, init generates
one into DIR/secrets/keystore-passphrase (mode 0600).

With --key-store pkcs11 the CA keys are generated inside the token as
sensitive, non-extractable objects (ECDSA P-256/P-384 or RSA) and named by
PKCS#11 URIs; the PIN is read from the variable --pkcs11-pin-env names or
from --pkcs11-pin-file, never from the command line. See docs/keys.md.

The admin API token is printed once; store it now.`)
    .action(async (o) => {
      if (!isKeyAlgorithm(o.keyAlgorithm)) throw new ProblemError('bad_request', `unknown key algorithm "${o.keyAlgorithm}" (use ${KEY_ALGORITHMS.join(', ')})`);
      const pkcs11 = pkcs11Options(o);
      const dir = resolveDataDir(o.dir);
      const r = await initDataDir({
        dir,
        org: o.org,
        keyAlgorithm: o.keyAlgorithm,
        rootValidityDays: o.rootValidityDays,
        issuingValidityDays: o.issuingValidityDays,
        rootSubject: o.rootSubject,
        issuingSubject: o.issuingSubject,
        publicUrl: o.publicUrl,
        listen: o.listen,
        httpListen: o.httpListen,
        hostnames: o.hostname.length ? o.hostname : undefined,
        store: o.store,
        pkcs11,
        rootKeyUri: o.keyUri,
        issuingKeyUri: o.issuingKeyUri,
      });
      try {
        const cas = await r.ctx.store.listCas();
        const root = parseCertificate(cas.find((c) => c.kind === 'root')!.certDer);
        if (o.json) {
          printJson({ dir, adminToken: r.adminToken, passphraseFile: r.passphraseFile ?? null, cas: cas.map((c) => ({ name: c.name, kind: c.kind, subject: c.subject })), rootFingerprintSha256: root.fingerprintSha256 });
          return;
        }
        note(`Created fleetpki data directory ${dir}`);
        for (const c of cas) note(`  ${c.kind.padEnd(8)} CA "${c.name}": ${c.subject}`);
        note(`  root fingerprint (SHA-256): ${root.fingerprintSha256}`);
        if (r.passphraseFile) note(`  key store passphrase generated into ${r.passphraseFile} (mode 0600); see docs/data-directory.md`);
        note('Admin API token (shown once, store it now):');
        printLine(r.adminToken);
      } finally {
        await r.ctx.close();
      }
    });
}

function pkcs11Options(o: Record<string, string | undefined>): InitOptions['pkcs11'] {
  const p11Flags = ['pkcs11Module', 'pkcs11Token', 'pkcs11PinEnv', 'pkcs11PinFile', 'rootPkcs11Token', 'rootPkcs11PinEnv', 'rootPkcs11PinFile'].filter((k) => o[k] !== undefined);
  if (o.keyStore === 'soft' || o.keyStore === 'software') {
    if (p11Flags.length) throw new ProblemError('bad_request', '--pkcs11-* options need --key-store pkcs11');
    return undefined;
  }
  if (o.keyStore !== 'pkcs11') throw new ProblemError('bad_request', `--key-store is soft or pkcs11, not "${o.keyStore}"`);
  if (!o.pkcs11Module || !o.pkcs11Token) throw new ProblemError('bad_request', '--key-store pkcs11 needs --pkcs11-module and --pkcs11-token');
  if (!o.pkcs11PinEnv === !o.pkcs11PinFile) throw new ProblemError('bad_request', 'give the PIN source: exactly one of --pkcs11-pin-env VAR and --pkcs11-pin-file FILE');
  if (o.pkcs11PinEnv && !process.env[o.pkcs11PinEnv]) throw new ProblemError('bad_request', `$${o.pkcs11PinEnv} is not set (--pkcs11-pin-env names the variable that holds the PIN)`);
  let rootToken: { token: string; pinEnv?: string; pinFile?: string } | undefined;
  if (o.rootPkcs11Token) {
    if (!o.rootPkcs11PinEnv === !o.rootPkcs11PinFile) throw new ProblemError('bad_request', 'give the root token\'s PIN source: exactly one of --root-pkcs11-pin-env VAR and --root-pkcs11-pin-file FILE');
    if (o.rootPkcs11PinEnv && !process.env[o.rootPkcs11PinEnv]) throw new ProblemError('bad_request', `$${o.rootPkcs11PinEnv} is not set (--root-pkcs11-pin-env names the variable that holds the root token's PIN)`);
    rootToken = { token: o.rootPkcs11Token, pinEnv: o.rootPkcs11PinEnv, pinFile: o.rootPkcs11PinFile ? resolve(o.rootPkcs11PinFile) : undefined };
  } else if (o.rootPkcs11PinEnv || o.rootPkcs11PinFile) throw new ProblemError('bad_request', '--root-pkcs11-pin-* need --root-pkcs11-token');
  return { module: o.pkcs11Module, token: o.pkcs11Token, pinEnv: o.pkcs11PinEnv, pinFile: o.pkcs11PinFile ? resolve(o.pkcs11PinFile) : undefined, rootToken };
}
