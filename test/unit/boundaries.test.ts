/**
 * The core (authority/, registry/, firmware/) does no I/O: the ESLint rule in
 * eslint.config.js forbids HTTP, SQL and file-system imports there. Checks
 * that the rule fires on such imports and that the tree obeys it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';
import { REPO } from '../helpers/data_dir.js';

const eslint = new ESLint({ cwd: REPO });

async function forbidden(code: string, filePath: string): Promise<string[]> {
  const [res] = await eslint.lintText(code, { filePath: `${REPO}/${filePath}` });
  return res.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('core import boundaries', () => {
  const banned = ['fastify', 'node:http', 'node:https', 'node:fs', 'fs/promises', 'better-sqlite3', 'pg', 'kysely'];
  for (const mod of banned) {
    for (const where of ['src/authority/x.ts', 'src/registry/x.ts', 'src/firmware/x.ts']) {
      it(`fail-${where.split('/')[1]}-imports-${mod}`, async () => {
        const msgs = await forbidden(`import * as m from '${mod}';\nexport const x = m;\n`, where);
        assert.equal(msgs.length, 1, `${mod} must be refused in ${where}`);
        assert.match(msgs[0], /pure core/);
      });
    }
  }
  it('ok-adapters may import them', async () => {
    assert.deepEqual(await forbidden("import * as m from 'fastify';\nexport const x = m;\n", 'src/protocols/api/x.ts'), []);
  });
  for (const mod of ['../server/server.js', '../registry/registry.js', '../store/store.js', '../authority/authority.js', '../protocols/est/plugin.js', 'fastify']) {
    it(`fail-agent-imports-${mod}`, async () => {
      const msgs = await forbidden(`import * as m from '${mod}';\nexport const x = m;\n`, 'src/agent/x.ts');
      assert.equal(msgs.length, 1, `${mod} must be refused in src/agent`);
      assert.match(msgs[0], /over the wire/);
    });
  }
  for (const [where, mod] of [
    ['src/console/app/x.tsx', 'node:fs'],
    ['src/console/app/x.tsx', '../sessions.js'],
    ['src/console/app/x.tsx', 'fastify'],
    ['src/console/app/pages/x.tsx', '../../../server/server.js'],
    ['src/console/app/pages/x.tsx', '../../plugin.js'],
  ]) {
    it(`fail-console-app-imports-${mod}`, async () => {
      const msgs = await forbidden(`import * as m from '${mod}';\nexport const x = m;\n`, where);
      assert.equal(msgs.length, 1, `${mod} must be refused in ${where}`);
      assert.match(msgs[0], /browser code/);
    });
  }
  it('ok-console pages may import the app and preact', async () => {
    assert.deepEqual(await forbidden("import * as a from '../api.js';\nimport { h } from 'preact';\nexport const x = [a, h];\n", 'src/console/app/pages/x.tsx'), []);
  });
  it('ok-the agent may import the shared x509 and key interfaces, and the firmware verifier', async () => {
    assert.deepEqual(await forbidden("import * as m from '../x509/cert_info.js';\nimport * as k from '../keys/key_store.js';\nimport * as f from '../firmware/verify.js';\nexport const x = [m, k, f];\n", 'src/agent/x.ts'), []);
  });
  it('ok-the agent obeys its rule', async () => {
    const results = await eslint.lintFiles(['src/agent/**/*.ts']);
    const hits = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => `${r.filePath}: ${m.message}`));
    assert.deepEqual(hits, []);
    assert.ok(results.length >= 8, 'agent files were linted');
  });
  it('ok-the tree obeys the rule', async () => {
    const results = await eslint.lintFiles(['src/authority/**/*.ts', 'src/registry/**/*.ts', 'src/firmware/**/*.ts']);
    const hits = results.flatMap((r) => r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => `${r.filePath}: ${m.message}`));
    assert.deepEqual(hits, []);
    assert.ok(results.length >= 4, 'core files were linted');
  });
});
