#!/usr/bin/env node
// Bundles the CLI into dist/cli.mjs with esbuild, and the web console (below): one file loads in a fraction
// of the time of several hundred ESM modules through a TypeScript loader.
// Native addons stay external. bin/fleetpki.js uses the bundle only while it
// is newer than every source file, so a stale bundle never runs.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// The issuance worker thread (src/authority/issuance_pool.ts) loads
// dist/issuance_worker.mjs, the second entry, from beside the bundle.
await build({
  entryPoints: { cli: `${root}src/cli/main.ts`, issuance_worker: `${root}src/authority/issuance_worker.ts` },
  outdir: `${root}dist`,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: ['better-sqlite3', 'pg-native', 'pkcs11js'],
  // CommonJS dependencies bundled into ESM still call require().
  banner: { js: "import { createRequire as __fleetpkiCreateRequire } from 'node:module'; const require = __fleetpkiCreateRequire(import.meta.url);" },
});

// The web console (src/console/app, Preact) into dist/console, which the
// HTTPS listener serves under /console (src/console/plugin.ts).
const { build: viteBuild } = await import('vite');
await viteBuild({
  configFile: false,
  root: `${root}src/console/app`,
  base: '/console/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: `${root}dist/console`,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // The CSP allows no inline script: never inline the module-preload helper or small assets.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
});
