/**
 * The real `openssl cmp` client against a running fleetpki server (the EST
 * environment of est.ts: a data directory, config edits, both listeners),
 * and a reader for the answers it saved with -rspout.
 */
import { existsSync, readFileSync } from 'node:fs';
import { bodyTypeOf } from '../../src/asn1/cmp_body.js';
import type { FailureBit } from '../../src/asn1/cmp_status.js';
import { decodeMessage, type ReceivedMessage } from '../../src/protocols/cmp/message.js';
import { ecKey, run, type EstEnv } from './est.js';

export interface CmpRun {
  status: number | null;
  /** stdout and stderr, with the config-file chatter dropped. */
  out: string;
}

/** The CMP URL of the plain-HTTP listener (or the HTTPS one). */
export function cmpUrl(env: EstEnv, o: { https?: boolean; label?: string } = {}): string {
  return `${o.https ? env.server.httpsUrl : env.server.httpUrl}/.well-known/cmp${o.label ? `/p/${o.label}` : ''}`;
}

/** Runs `openssl cmp -server URL args...` without blocking the event loop (the server is in this process). */
export async function opensslCmp(env: EstEnv, args: string[], o: { https?: boolean; label?: string } = {}): Promise<CmpRun> {
  const r = await run('openssl', ['cmp', '-server', cmpUrl(env, o), ...args], '', 60_000);
  const out = `${r.stdout}${r.stderr}`
    .split('\n')
    .filter((l) => !/OpenSSL configuration file|\[cmp\] section/.test(l))
    .join('\n');
  return { status: r.status, out };
}

/** An answer saved with -rspout: its body, status and failure bits. */
export function answerOf(file: string): { msg: ReceivedMessage; body: string; status?: number; failInfo: FailureBit[]; text: string } {
  if (!existsSync(file)) throw new Error(`no answer saved at ${file}`);
  const msg = decodeMessage(new Uint8Array(readFileSync(file)));
  const body = msg.msg.body;
  const info = body.error?.pKIStatusInfo ?? (body.ip ?? body.cp ?? body.kup)?.response[0]?.status ?? body.rp?.status[0];
  return { msg, body: bodyTypeOf(body), status: info?.status, failInfo: info?.failInfo?.names() ?? [], text: (info?.statusString ?? []).join(' ') };
}

/** A fresh P-256 key file in the environment's work folder. */
let n = 0;
export async function newKey(env: EstEnv, name = `k${++n}`): Promise<string> {
  return ecKey(env.file(`${name}-${Date.now().toString(36)}.key`));
}
