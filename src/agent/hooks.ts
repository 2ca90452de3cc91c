/**
 * Hooks tell the consumers of the certificate and CRLs (a broker, a web
 * server, an OPC UA stack) to reload: a shell command, a signal to a process
 * named by a pid file, or both. They run after the change is on disk, never
 * before, and a failing hook is reported without undoing the change.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ProblemError } from '../errors.js';
import type { HookSettings } from './state.js';

export type AgentEvent = 'enrolled' | 'renewed' | 'crl' | 'trust';

export async function runHooks(h: HookSettings, event: AgentEvent, env: Record<string, string>): Promise<void> {
  const failures: string[] = [];
  if (h.command) {
    const r = await runCommand(h.command, { ...env, FLEETPKI_AGENT_EVENT: event }, (h.timeoutSeconds ?? 60) * 1000);
    if (r) failures.push(r);
  }
  if (h.signal && h.pidFile) {
    try {
      const pid = Number((await readFile(h.pidFile, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 1) throw new Error(`${h.pidFile} holds no pid`);
      process.kill(pid, h.signal as NodeJS.Signals);
    } catch (e) {
      failures.push(`signal ${h.signal}: ${(e as Error).message}`);
    }
  }
  if (failures.length) throw new ProblemError('internal', `hook after "${event}" failed: ${failures.join('; ')}`);
}

/** Runs `command` with /bin/sh; resolves to an error text, or undefined on success. */
function runCommand(command: string, env: Record<string, string>, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const p = spawn('/bin/sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let out = '';
    p.stdout.on('data', (b) => (out = (out + b).slice(-2000)));
    p.stderr.on('data', (b) => (out = (out + b).slice(-2000)));
    p.on('error', (e) => resolve(`command: ${e.message}`));
    p.on('close', (code, signal) => resolve(code === 0 ? undefined : `command exited ${code ?? signal}: ${out.trim().split('\n').slice(-3).join(' | ')}`));
  });
}
