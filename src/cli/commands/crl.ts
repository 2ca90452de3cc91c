import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ProblemError } from '../../errors.js';
import { keyObjectSigner, loadPrivateKey } from '../../keys/key_store.js';
import { cliActor } from '../../server/context.js';
import { pemEncode } from '../../x509/pem.js';
import { withContext, withDir } from '../context.js';
import { note, positiveInt, printJson, printRaw, readUserFile, secretFrom } from '../output.js';

export function registerCrl(program: Command): void {
  withDir(program.command('crl').description('write a CA\'s current CRL (publishing one if there is none), or publish a new one'))
    .requiredOption('--ca <name>', 'the CA')
    .option('--out <file>', 'write the CRL here (DER) instead of PEM on stdout')
    .option('--delta', 'the delta CRL instead of the base CRL')
    .option('--shard <n>', 'a partition\'s CRL (partitioned CRLs, crl.shards)', (v) => Number(v))
    .option('--new', 'sign and publish a new CRL now')
    .option('--root-key <file>', 'with --new: the offline key of the CA (export-root-key), for a CA whose key is offline')
    .option('--root-key-passphrase-file <file>', 'its passphrase (else $FLEETPKI_ROOT_KEY_PASSPHRASE)')
    .option('--validity-days <n>', 'with --new: nextUpdate this many days ahead (for an offline root, e.g. 365)', positiveInt)
    .option('--json', 'print the CRL\'s metadata as JSON')
    .addHelpText('after', `
The server publishes CRLs of online CAs by itself (after revocations and before
nextUpdate). A CA whose key is offline, like the root, gets its CRL in a key
ceremony:  fleetpki crl --ca root --new --root-key root-key.p8 --validity-days 365`)
    .action(async (o) =>
      withContext(o.dir, async (ctx) => {
        const kind = o.delta ? 'delta' : 'base';
        if (o.shard !== undefined && !(Number.isInteger(o.shard) && o.shard >= 0)) throw new ProblemError('bad_request', '--shard is a whole number');
        let signer;
        if (o.rootKey) {
          if (!o.new) throw new ProblemError('bad_request', '--root-key goes with --new');
          const pass = secretFrom('FLEETPKI_ROOT_KEY_PASSPHRASE', o.rootKeyPassphraseFile, 'root key passphrase');
          try {
            signer = keyObjectSigner(loadPrivateKey(readUserFile(o.rootKey, 'root key').toString('utf8'), pass));
          } catch (e) {
            if (e instanceof ProblemError) throw e;
            throw new ProblemError('key_unavailable', `cannot decrypt ${o.rootKey}: wrong passphrase or not a private key`);
          }
          const ca = await ctx.authority.ca(o.ca);
          if (Buffer.compare(Buffer.from(signer.spki), Buffer.from(ca.info.spki)) !== 0) throw new ProblemError('key_unavailable', `${o.rootKey} is not the key of CA "${o.ca}"`);
        }
        const crl = o.new
          ? await ctx.crls.publish(o.ca, kind, { signer, validityHours: o.validityDays ? o.validityDays * 24 : undefined, actor: cliActor(), shard: o.shard })
          : await ctx.crls.latest(o.ca, kind, o.shard ?? 0);
        if (o.out) writeFileSync(o.out, crl.der);
        if (o.json) printJson({ ca: crl.ca, kind: crl.kind, shard: crl.shard, number: crl.number, baseNumber: crl.baseNumber ?? null, entries: crl.entries, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate.toISOString() });
        else if (!o.out) printRaw(pemEncode('X509 CRL', crl.der));
        else note(`CRL ${crl.number} of ${crl.ca} (${crl.entries} entries, next update ${crl.nextUpdate.toISOString()}) -> ${o.out}`);
      }),
    );
}
