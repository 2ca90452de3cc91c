/**
 * A really full disk: the agent's state directory on a 1 MiB tmpfs, filled
 * to the last byte before the renewal. The renewal fails with ENOSPC, the old
 * certificate, key and state.json are intact and still used; once space is
 * free the next attempt renews. (The injected-failure variant, where the
 * certificate arrives but cannot be written, is in agent_lifecycle.test.ts.)
 * Needs root to mount the tmpfs; skipped otherwise, saying so.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../../src/clock.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';

let env: AgentEnv;
const mnt = mkdtempSync(join(tmpdir(), 'fleetpki-tmpfs-'));
let mounted = false;

before(async () => {
  if (process.getuid?.() === 0) mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', mnt]).status === 0;
  env = await startAgentEnv();
});
after(async () => {
  if (mounted) spawnSync('umount', ['-l', mnt]);
  rmSync(mnt, { recursive: true, force: true });
  await env?.close();
});

/** Writes zeros until the file system says ENOSPC. */
function fill(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096);
  let n = 0;
  try {
    for (;;) n += writeSync(fd, chunk);
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
  return n;
}

describe('agent on a full disk (tmpfs)', () => {
  it('ok-enospc-during-renewal-keeps-the-old-identity', async (t) => {
    // As root (npm test under CI) the tmpfs must work: a failed mount fails the test.
    if (!mounted && process.getuid?.() === 0) assert.fail('running as root but could not mount a tmpfs');
    if (!mounted) return t.skip('needs root to mount a tmpfs');
    const clock = new FakeClock(Date.now());
    const { agent, secret } = await env.device('full-1', { domain: 'plant-a', agent: { dir: join(mnt, 'state'), clock } });
    await agent.enroll({ secret });
    await agent.refresh();
    const id1 = agent.status().identity!;
    const cert1 = readFileSync(agent.paths.cert, 'utf8');
    const key1 = readFileSync(agent.paths.key, 'utf8');
    const state1 = readFileSync(join(agent.dir, 'state.json'), 'utf8');
    assert.ok(fill(join(mnt, 'filler')) > 0);

    clock.set(Date.parse(id1.renewAt) + 1000);
    await agent.tick();
    const st = agent.status();
    assert.equal(st.identity?.serial, id1.serial, 'still the old certificate');
    assert.match(st.renewal.lastError?.detail ?? '', /ENOSPC/);
    assert.equal(readFileSync(agent.paths.cert, 'utf8'), cert1);
    assert.equal(readFileSync(agent.paths.key, 'utf8'), key1);
    assert.equal(readFileSync(join(agent.dir, 'state.json'), 'utf8'), state1, 'state.json untouched (the status could not be saved either)');
    assert.equal(JSON.parse(state1).identity.serial, id1.serial);

    rmSync(join(mnt, 'filler'));
    clock.set(Date.parse(st.renewal.nextAttemptAt!));
    await agent.tick();
    const id2 = agent.status().identity!;
    assert.notEqual(id2.serial, id1.serial, JSON.stringify(agent.status().renewal));
    assert.equal(JSON.parse(readFileSync(join(agent.dir, 'state.json'), 'utf8')).identity.serial, id2.serial);
  });
});
