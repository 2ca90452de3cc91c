// ESLint: TypeScript rules, plus the project's one architectural rule: the
// core (authority/, registry/) does no I/O of its own, so it may not import
// HTTP, SQL drivers or the file system (../shared/DESIGN.md, "Architecture").
import tseslint from 'typescript-eslint';

const CORE_FORBIDDEN = ['fastify', '@fastify/*', 'node:http', 'node:https', 'http', 'https', 'node:fs', 'node:fs/promises', 'fs', 'fs/promises', 'better-sqlite3', 'pg', 'kysely', 'node:net', 'net', 'node:child_process', 'child_process'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'test-artifacts/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['src/authority/**/*.ts', 'src/registry/**/*.ts', 'src/firmware/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: CORE_FORBIDDEN, message: 'authority/, registry/ and firmware/ are the pure core: no HTTP, SQL or file I/O (take a Store/KeyStore, or a stream, instead).' }],
      }],
    },
  },
  {
    // The agent runs on devices and talks to the server only over the wire
    // (EST, CRL and CA URLs): it may not import the server's modules.
    files: ['src/agent/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/server/*', '**/store/*', '**/registry/*', '**/authority/*', '**/protocols/**', '**/cli/*', 'fastify', 'better-sqlite3', 'pg', 'kysely'], message: 'agent/ uses the server only over the wire (EST/HTTP), never its modules.' }],
      }],
    },
  },
  // The web console runs in the browser and talks to the server only over
  // HTTP (the admin API and /console/session): no server or Node modules,
  // nothing from outside src/console/app.
  ...[['src/console/app/*.{ts,tsx}', '../*'], ['src/console/app/pages/*.{ts,tsx}', '../../*']].map(([files, outside]) => ({
    files: [files],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['node:*', outside, 'fastify', 'better-sqlite3', 'pg', 'kysely'], message: 'console/app/ is browser code: it uses the server only over HTTP.' }],
      }],
    },
  })),
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
