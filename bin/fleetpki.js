#!/usr/bin/env node
// Entry point of the `fleetpki` command. Runs the esbuild bundle
// (dist/cli.mjs, made by `npm run build`, also on npm install) when it is
// newer than every file under src/; otherwise the TypeScript sources through
// tsx, so an edit is never shadowed by an old bundle.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = `${root}dist/cli.mjs`;

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const fresh = existsSync(bundle) && (!existsSync(`${root}src`) || statSync(bundle).mtimeMs >= newestSource(`${root}src`));
if (fresh) {
  await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  // The project's tsconfig wherever the command runs from: tsx would
  // otherwise look for one in the working directory, and without it compile
  // the ASN.1 classes' decorators the TC39 way instead of the legacy way.
  register({ tsconfig: `${root}tsconfig.json` });
  await import('../src/cli/main.ts');
}
