/**
 * Child of bench/crl.ts: opens the data directory the parent filled and
 * times one CrlService.publish of its issuing CA (store pages, encoder,
 * signature, commit), its key already unlocked as in a running server. A process of its own, so its peak RSS is the
 * publication's. Prints one JSON line.
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { openContext } from '../src/server/context.js';

const [dir, crlFile] = process.argv.slice(2);
const ctx = await openContext(dir);
const ca = ctx.config.defaultCa;
await ctx.store.getCa(ca); // warm: open the database before the clock starts
// A running server unlocks the CA key once (the key store keeps its signer);
// decrypting it (scrypt, about 0.2 s) is not part of publishing a CRL.
await ctx.authority.caSigner(ca);
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
const crl = await ctx.crls.publish(ca);
const ms = performance.now() - started;
const maxRss = process.resourceUsage().maxRSS * 1024;
writeFileSync(crlFile, crl.der);
await ctx.close();
console.log(JSON.stringify({ ms, entries: crl.entries, bytes: crl.der.length, rssBeforeMB: rssBefore / 1e6, maxRssMB: maxRss / 1e6 }));
