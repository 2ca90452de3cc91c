import type { Command } from 'commander';
import { createBackup, restoreBackup, MIN_BACKUP_PASSPHRASE } from '../../server/backup.js';
import { resolveDataDir } from '../../server/config.js';
import { openContext } from '../../server/context.js';
import { DIR_HELP } from '../context.js';
import { note, printJson, secretFrom } from '../output.js';

const PASS_ENV = 'FLEETPKI_BACKUP_PASSPHRASE';

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('write an encrypted, restorable backup of the data directory (store, config, software keys)')
    .option('--dir <dir>', DIR_HELP)
    .requiredOption('--out <file>', 'the backup file to write (must not exist)')
    .option('--passphrase-file <file>', `file holding the backup passphrase (else $${PASS_ENV})`)
    .option('--no-secrets', 'leave out DIR/secrets/ (the generated key store passphrase): restoring then needs the passphrase from elsewhere')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
The backup passphrase (${MIN_BACKUP_PASSPHRASE}+ characters) comes from $${PASS_ENV} or
--passphrase-file, never the command line. The SQLite store is copied with
SQLite's online backup, so this is safe while 'fleetpki serve' runs. Keys in
a PKCS#11 token are not in the backup (they cannot leave the token); keep the
token, or its own backup mechanism, with the backup. PostgreSQL stores are
backed up with pg_dump. Trade-offs and off-site storage: docs/keys.md.`)
    .action(async (o) => {
      const dir = resolveDataDir(o.dir);
      const passphrase = secretFrom(PASS_ENV, o.passphraseFile, 'backup passphrase');
      const r = await createBackup(dir, o.out, passphrase, { secrets: o.secrets });
      if (o.json) return printJson(r);
      note(`Backed up ${dir} to ${r.file} (${r.bytes} bytes, ${r.files.length} files, encrypted).`);
    });

  program
    .command('restore')
    .description('restore a backup made by fleetpki backup into a new data directory')
    .option('--dir <dir>', `where to restore (must be new or empty; ${DIR_HELP})`)
    .requiredOption('--in <file>', 'the backup file')
    .option('--passphrase-file <file>', `file holding the backup passphrase (else $${PASS_ENV})`)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Nothing is written unless the whole backup decrypts and authenticates: a
wrong passphrase or a damaged file is refused and leaves no directory behind.`)
    .action(async (o) => {
      const dir = resolveDataDir(o.dir);
      const passphrase = secretFrom(PASS_ENV, o.passphraseFile, 'backup passphrase');
      const r = await restoreBackup(o.in, dir, passphrase);
      // Open it once: config valid, store readable, migrations applied.
      const ctx = await openContext(dir);
      const cas = await ctx.store.listCas().finally(() => ctx.close());
      if (o.json) return printJson({ ...r, cas: cas.map((c) => ({ name: c.name, kind: c.kind, keyOnline: !!c.keyRef })) });
      note(`Restored ${r.files.length} files into ${r.dir} (backup of ${r.createdAt}, ${r.keyStore} key store).`);
      for (const c of cas) note(`  CA "${c.name}" (${c.kind}), key ${c.keyRef ? 'online' : 'OFFLINE'}`);
      if (!r.secrets) note('  secrets/ was not in the backup: provide the key store passphrase ($FLEETPKI_KEYSTORE_PASSPHRASE).');
    });
}
