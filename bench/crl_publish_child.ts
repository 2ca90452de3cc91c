/**
 * Child of bench/crl.ts: opens the data directory the parent filled and
 * times one CrlService.publish of its issuing CA (store pages, encoder,
 * signature, commit). A process of its own, so its peak RSS is the
 * publication's. Prints one JSON line.
 */
import 'reflect-metadata';
import { writeFileSync } from 'node:fs';
import { openContext } from '../src/server/context.js';

const [dir, crlFile] = process.argv.slice(2);
const ctx = await openContext(dir);
const ca = ctx.config.defaultCa;
await ctx.store.getCa(ca); // warm: open the database before the clock starts
const rssBefore = process.memoryUsage().rss;
const started = performance.now();
const crl = await ctx.crls.publish(ca);
const ms = performance.now() - started;
const maxRss = process.resourceUsage().maxRSS * 1024;
writeFileSync(crlFile, crl.der);
await ctx.close();
console.log(JSON.stringify({ ms, entries: crl.entries, bytes: crl.der.length, rssBeforeMB: rssBefore / 1e6, maxRssMB: maxRss / 1e6 }));
