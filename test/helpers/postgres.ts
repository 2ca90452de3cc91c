/**
 * A throwaway PostgreSQL for tests.
 *
 * With FLEETPKI_TEST_PG_URL set, tests use that server (its role needs
 * CREATEDB). Otherwise, as root on Debian with the postgresql package, a
 * private cluster is created on a free port with durability switched off
 * (fsync=off: it is deleted afterwards anyway) and dropped by stop().
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';
import pg from 'pg';

export interface TestPostgres {
  /** URL of a database the test role owns; the role may create databases. */
  url: string;
  /**
   * A fresh, empty schema, selected by `search_path` in the returned URL, so
   * tests do not see each other's rows. About 1 ms, where CREATE DATABASE
   * takes 300: use this unless the test needs database-wide isolation.
   */
  createTestSchema(): Promise<string>;
  /** A fresh, empty database (advisory locks and all); its URL. */
  createTestDatabase(): Promise<string>;
  /** Drops the cluster (or, on a server from FLEETPKI_TEST_PG_URL, what was created). */
  stop(): Promise<void>;
}

const run = promisify(execFile);

async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd: '/', timeout: 60_000 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

function newestPostgresVersion(): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v));
  if (versions.length === 0) throw new Error('no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)');
  return versions.sort((a, b) => Number(b) - Number(a))[0];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function randomName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

async function waitUntilAccepting(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('select 1');
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL at ${new URL(url).host} did not accept connections: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

interface Created {
  schemas: string[];
  databases: string[];
}

function namespaceCreators(adminUrl: string, created: Created): Pick<TestPostgres, 'createTestSchema' | 'createTestDatabase'> {
  return {
    createTestSchema: async () => {
      const name = randomName('fleetpki_t');
      await withClient(adminUrl, (c) => c.query(`create schema ${name}`));
      created.schemas.push(name);
      const u = new URL(adminUrl);
      u.searchParams.set('options', `-c search_path=${name}`);
      return u.toString();
    },
    createTestDatabase: async () => {
      const name = randomName('fleetpki_t');
      await withClient(adminUrl, (c) => c.query(`create database ${name}`));
      created.databases.push(name);
      const u = new URL(adminUrl);
      u.pathname = `/${name}`;
      return u.toString();
    },
  };
}

function fromEnvironment(url: string): TestPostgres {
  const created: Created = { schemas: [], databases: [] };
  return {
    url,
    ...namespaceCreators(url, created),
    stop: async () => {
      await withClient(url, async (c) => {
        for (const name of created.schemas.splice(0)) await c.query(`drop schema if exists ${name} cascade`);
        for (const name of created.databases.splice(0)) await c.query(`drop database if exists ${name} with (force)`);
      });
    },
  };
}

async function createCluster(version: string, name: string): Promise<number> {
  // The port can be taken between probing and binding: retry with another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      await sh('pg_createcluster', [
        '--start-conf=manual',
        '-p', String(port),
        '-o', 'fsync=off',
        '-o', 'synchronous_commit=off',
        '-o', 'full_page_writes=off',
        version, name, '--', '--no-sync',
      ]);
      await sh('pg_ctlcluster', [version, name, 'start']);
      return port;
    } catch (e) {
      spawnSync('pg_dropcluster', ['--stop', version, name], { stdio: 'ignore' });
      if (attempt >= 3) throw e;
    }
  }
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const fromEnv = process.env.FLEETPKI_TEST_PG_URL;
  if (fromEnv) return fromEnvironment(fromEnv);

  const version = newestPostgresVersion();
  const cluster = randomName('fleetpki_test');
  let dropped = false;
  const dropNow = () => {
    if (dropped) return;
    dropped = true;
    spawnSync('pg_dropcluster', ['--stop', version, cluster], { stdio: 'ignore' });
  };
  // A run that ends without stop() (a failing hook, an uncaught error) still
  // drops the cluster; only a kill by signal leaves one behind.
  process.once('exit', dropNow);

  try {
    const port = await createCluster(version, cluster);
    const password = randomBytes(12).toString('hex');
    await sh('runuser', [
      '-u', 'postgres', '--',
      'psql', '-p', String(port), '-v', 'ON_ERROR_STOP=1', '-qAt',
      '-c', `create role fleetpki_test login createdb password '${password}'`,
      '-c', 'create database fleetpki_test owner fleetpki_test',
    ]);
    const url = `postgres://fleetpki_test:${password}@127.0.0.1:${port}/fleetpki_test`;
    await waitUntilAccepting(url);
    return {
      url,
      ...namespaceCreators(url, { schemas: [], databases: [] }),
      stop: async () => {
        if (dropped) return;
        dropped = true;
        process.removeListener('exit', dropNow);
        await sh('pg_dropcluster', ['--stop', version, cluster]);
      },
    };
  } catch (e) {
    dropNow();
    process.removeListener('exit', dropNow);
    throw e;
  }
}
