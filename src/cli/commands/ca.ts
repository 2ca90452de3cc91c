import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { keyObjectSigner, loadPrivateKey } from '../../keys/key_store.js';
import { isAdopting } from '../../keys/pkcs11_token_set.js';
import { writeFileAtomic } from '../../keys/software_key_store.js';
import { caJson } from '../../protocols/api/plugin.js';
import { KEY_ALGORITHMS, isKeyAlgorithm } from '../../x509/algorithms.js';
import { parseSan } from '../../x509/general_names.js';
import { parseDn } from '../../x509/names.js';
import { pemEncode } from '../../x509/pem.js';
import { cliActor } from '../../server/context.js';
import { withContext, withDir } from '../context.js';
import { collect, note, positiveInt, printJson, printLine, printRaw, printTable, readUserFile, secretFrom } from '../output.js';

export function registerCa(program: Command): void {
  const ca = program.command('ca').description('certificate authorities: list, print, key ceremonies');

  withDir(ca.command('list').description('list the CAs'))
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const cas = (await ctx.store.listCas()).map(caJson);
        if (o.json) return printJson(cas.map(({ pem: _pem, ...rest }) => rest));
        printTable(
          cas.map((c) => [c.name, c.kind, c.parent ?? '-', c.keyOnline ? 'online' : 'OFFLINE', c.keyAlgorithm, c.notAfter.slice(0, 10), c.subject]),
          ['NAME', 'KIND', 'PARENT', 'KEY', 'ALGORITHM', 'NOT AFTER', 'SUBJECT'],
        );
      }),
    );

  withDir(ca.command('cert').description('print the PEM certificate of the issuing CA (default), the root or a named CA'))
    .option('--root', 'the root CA')
    .option('--ca <name>', 'a CA by name')
    .option('--chain', 'also print its issuers up to the root')
    .option('--json', 'print the CA record as JSON (with --chain: a "chain" array of PEMs, the CA first)')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (o.root && o.ca) throw new ProblemError('bad_request', '--root and --ca name different CAs; give one');
        let name: string = o.ca ?? ctx.config.defaultCa;
        if (o.root) {
          const root = (await ctx.store.listCas()).find((c) => c.kind === 'root');
          if (!root) throw new ProblemError('not_found', 'no root CA');
          name = root.name;
        }
        const chain = await ctx.authority.chain(name);
        const pems = (o.chain ? chain : chain.slice(0, 1)).map((d) => pemEncode('CERTIFICATE', d));
        if (o.json) {
          const rec = (await ctx.store.listCas()).find((c) => c.name === name)!;
          return printJson({ ...caJson(rec), ...(o.chain ? { chain: pems } : {}) });
        }
        printRaw(pems.join(''));
      }),
    );

  withDir(ca.command('export-root-key').description('take the root CA offline: write its key encrypted to a file and delete it from the key store'))
    .requiredOption('--out <file>', 'where to write the encrypted PKCS#8 key (must not exist)')
    .option('--ca <name>', 'the CA whose key to export', 'root')
    .option('--passphrase-file <file>', 'file holding the export passphrase (else $FLEETPKI_EXPORT_PASSPHRASE)')
    .option('--crl-validity-days <n>', 'before the key leaves, sign a CRL of this CA valid this long', positiveInt, 365)
    .addHelpText('after', `
The export passphrase (12+ characters) comes from $FLEETPKI_EXPORT_PASSPHRASE
or --passphrase-file, never the command line. The file is an encrypted PKCS#8
key (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC) that openssl pkcs8 can open.
Keep it offline; 'fleetpki ca create-intermediate --root-key FILE' uses it.
Before the key leaves, a CRL of the CA valid --crl-validity-days is signed and
published, since relying parties that check the whole chain need one; renew it
in a ceremony with 'fleetpki crl --ca root --new --root-key FILE'.`)
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (existsSync(o.out)) throw new ProblemError('already_exists', `${o.out} exists; refusing to overwrite a key file`);
        const passphrase = secretFrom('FLEETPKI_EXPORT_PASSPHRASE', o.passphraseFile, 'export passphrase');
        const actor = cliActor();
        const pem = await ctx.authority.exportCaKey(o.ca, passphrase, actor);
        await writeFileAtomic(o.out, pem, 0o600);
        // Read the file back and prove it holds the CA key before deleting the online copy.
        const back = keyObjectSigner(loadPrivateKey(readUserFile(o.out, 'exported key').toString('utf8'), passphrase));
        const caInfo = await ctx.authority.ca(o.ca);
        if (Buffer.compare(Buffer.from(back.spki), Buffer.from(caInfo.info.spki)) !== 0) throw new ProblemError('internal', 'the exported key does not match the CA certificate; the online key was kept');
        const crl = await ctx.crls.publish(o.ca, 'base', { validityHours: o.crlValidityDays * 24, actor });
        await ctx.authority.takeCaKeyOffline(o.ca, actor);
        note(`The key of CA "${o.ca}" is now only in ${o.out}; it was removed from the online key store.`);
        note(`Its CRL ${crl.number} is valid until ${crl.nextUpdate.toISOString()}: sign the next one before then (fleetpki crl --ca ${o.ca} --new --root-key ${o.out}).`);
      }),
    );

  withDir(ca.command('create-intermediate').description('create a further issuing CA signed by the root (a key ceremony when the root is offline)'))
    .requiredOption('--name <name>', 'name of the new CA (lowercase, digits, dashes)')
    .option('--subject <dn>', 'subject, e.g. "O=Acme, CN=Acme Sensors CA" (default: O=<org>, CN=<org> <name>)')
    .option('--parent <name>', 'the signing CA', 'root')
    .option('--root-key <file>', 'the offline root key file written by export-root-key')
    .option('--root-key-passphrase-file <file>', 'file holding its passphrase (else $FLEETPKI_ROOT_KEY_PASSPHRASE)')
    .option('--key-algorithm <alg>', `key algorithm of the new CA: ${KEY_ALGORITHMS.join(', ')}`, 'ecdsa-p256')
    .option('--key-uri <uri>', 'adopt an existing key in the PKCS#11 token (RFC 7512 URI) as the new CA\'s key instead of generating one')
    .option('--validity-days <n>', 'lifetime in days (capped at the parent\'s)', positiveInt, 3650)
    .option('--permit <name>', 'name constraint, permitted subtree: dns:example.com, ip:10.0.0.0/8, email:example.com, uri:.example.com (repeatable)', collect, [])
    .option('--exclude <name>', 'name constraint, excluded subtree (repeatable)', collect, [])
    .option('--json', 'print as JSON')
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        if (!isKeyAlgorithm(o.keyAlgorithm)) throw new ProblemError('bad_request', `unknown key algorithm "${o.keyAlgorithm}"`);
        const parentSigner = o.rootKey
          ? keyObjectSigner(decryptKeyFile(o.rootKey, secretFrom('FLEETPKI_ROOT_KEY_PASSPHRASE', o.rootKeyPassphraseFile, 'root key passphrase')))
          : undefined;
        const constraint = (s: string) => {
          const i = s.indexOf(':');
          const type = s.slice(0, i);
          // IP constraints are address/prefix, which parseSan would refuse.
          return type === 'ip' ? { type: 'ip' as const, value: s.slice(i + 1) } : parseSan(s);
        };
        if (o.keyUri && !isAdopting(ctx.keys)) throw new ProblemError('bad_request', '--key-uri needs the pkcs11 key store');
        const keyRef = o.keyUri && isAdopting(ctx.keys) ? await ctx.keys.adopt(o.keyUri) : undefined;
        const rec = await ctx.authority.createIssuingCa({
          name: o.name,
          keyRef,
          parent: o.parent,
          parentSigner,
          subject: o.subject ? parseDn(o.subject) : [{ type: 'O', value: ctx.config.org }, { type: 'CN', value: `${ctx.config.org} ${o.name}` }],
          keyAlgorithm: o.keyAlgorithm,
          validityDays: o.validityDays,
          nameConstraints: { permitted: o.permit.map(constraint), excluded: o.exclude.map(constraint) },
          actor: cliActor(),
        });
        if (o.json) return printJson(caJson(rec));
        note(`Created issuing CA "${rec.name}": ${rec.subject}`);
        printLine(pemEncode('CERTIFICATE', rec.certDer).trimEnd());
      }),
    );
}

function decryptKeyFile(file: string, passphrase: string) {
  const pem = readUserFile(file, 'root key').toString('utf8');
  try {
    return loadPrivateKey(pem, passphrase);
  } catch {
    throw new ProblemError('key_unavailable', `cannot decrypt ${file}: wrong passphrase or not a private key`);
  }
}
