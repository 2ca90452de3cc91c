/**
 * The same fleetpki on PostgreSQL instead of the embedded SQLite: init, issue,
 * revoke and serve with `--store postgres://...`, then validate with openssl.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/open_store.js';
import { fleetpki, opensslCsr, runOpenssl, tempDir } from '../helpers/data_dir.js';
import { startTestPostgres, type TestPostgres } from '../helpers/postgres.js';

describe('fleetpki on PostgreSQL', () => {
  let pg: TestPostgres;
  let url = '';
  const work = tempDir('fleetpki-pg-');
  const D = ['--dir', join(work, 'data')];

  before(async () => {
    pg = await startTestPostgres();
    url = await pg.createTestDatabase();
  });
  after(async () => {
    await pg?.stop();
  });

  it('init --store postgres:// keeps every record in PostgreSQL, none in a SQLite file', async () => {
    const r = fleetpki(['init', ...D, '--org', 'PG Fleet', '--store', url, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const cfg = JSON.parse(readFileSync(join(work, 'data', 'fleetpki.json'), 'utf8'));
    assert.equal(cfg.store, url);
    assert.throws(() => readFileSync(join(work, 'data', 'fleetpki.db')), 'no SQLite file is created');
    const store = await openStore(url);
    try {
      assert.deepEqual((await store.listCas()).map((c) => c.name).sort(), ['issuing', 'root']);
    } finally {
      await store.close();
    }
  });

  it('issues, lists, revokes and verifies the audit chain through the CLI', () => {
    const { csrPath } = opensslCsr(work, 'pg-dev', { san: 'DNS:pg-dev.example' });
    const issued = JSON.parse(fleetpki(['cert', 'issue', ...D, '--csr', csrPath, '--profile', 'device-tls', '--out', join(work, 'pg-dev.pem'), '--json']).stdout);
    writeFileSync(join(work, 'root.pem'), fleetpki(['ca', 'cert', '--root', ...D]).stdout);
    writeFileSync(join(work, 'issuing.pem'), fleetpki(['ca', 'cert', ...D]).stdout);
    assert.match(runOpenssl(['verify', '-x509_strict', '-CAfile', join(work, 'root.pem'), '-untrusted', join(work, 'issuing.pem'), join(work, 'pg-dev.pem')]).stdout, /OK/);
    const revoked = fleetpki(['cert', 'revoke', issued.serial, '--reason', 'superseded', ...D]);
    assert.equal(revoked.status, 0, revoked.stderr);
    const list = JSON.parse(fleetpki(['cert', 'list', '--status', 'revoked', '--json', ...D]).stdout);
    assert.deepEqual(list.map((c: { serial: string }) => c.serial), [issued.serial]);
    const audit = JSON.parse(fleetpki(['audit', 'verify', '--json', ...D]).stdout);
    assert.equal(audit.ok, true);
  });

  it('serve --store uses the same PostgreSQL store', async () => {
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/data_dir.js');
    const server = spawn(process.execPath, [BIN, 'serve', ...D, '--listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      let err = '';
      const httpUrl = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30_000);
        server.stderr.on('data', (b) => {
          err += b;
          const m = /CA certs\s+(http:\/\/\S+)\/ca\//.exec(err);
          if (m) {
            clearTimeout(t);
            resolve(m[1]);
          }
        });
      });
      const res = await fetch(`${httpUrl}/ca/issuing.cer`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/pkix-cert');
      const store = await openStore(url);
      try {
        const listener = await store.listCertificates({ profile: 'server-tls' });
        assert.equal(listener.length, 1, 'the HTTPS listener certificate was recorded in PostgreSQL');
      } finally {
        await store.close();
      }
    } finally {
      server.kill('SIGTERM');
    }
  });
});
