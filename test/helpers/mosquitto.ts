/**
 * A throwaway Mosquitto broker (Debian's mosquitto 2.0) for interop tests:
 * mutual TLS on a free loopback port, configuration, logs and files in a temp
 * directory, no persistence.
 *
 * Privileges: started as root, Mosquitto 2.0 switches to the `mosquitto` user
 * (`user` option, default "mosquitto") and reads the certificate, key and CRL
 * again as that user on SIGHUP. We keep that production behaviour and make the
 * files readable by it instead of running the broker as root (`user root` is
 * accepted too, with a "should not be run as root" warning, but would hide a
 * permission mistake a real deployment makes): the temp directory is made
 * traversable (mkdtemp makes it 0700) and the files are handed to `mosquitto`,
 * the key with mode 0600. Run as another user, Mosquitto does not switch user
 * and the files are already that user's.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface MosquittoTlsFiles {
  /** CAs client certificates must chain to (PEM bundle). */
  cafile: string;
  /** Broker certificate followed by its issuing chain (PEM). */
  certfile: string;
  keyfile: string;
  /** PEM CRL(s) with the label X509 CRL; Mosquitto checks the leaf issuer's. */
  crlfile: string;
}

export interface RunningMosquitto {
  port: number;
  pid: number;
  confPath: string;
  /** Everything the broker logged so far (log_dest stderr + stdout). */
  log(): string;
  /** SIGHUP: Mosquitto rereads its configuration, certificates and CRL. */
  reload(): void;
  stop(): Promise<void>;
  /** Waits (bounded) until the log written after offset `from` matches `re`; returns that part of the log. */
  waitForLog(re: RegExp, from?: number, timeoutMs?: number): Promise<string>;
}

/** A port the kernel considered free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.setTimeout(500);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

/** uid/gid of the user Mosquitto drops to, when this process is root; otherwise undefined. */
function mosquittoUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root but there is no "mosquitto" user for the broker to switch to');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Makes `files` readable by the broker after it drops privileges. Call it
 * again after rewriting a file that the broker rereads (the CRL): a file
 * written anew by root is root's.
 */
export function shareWithBroker(dir: string, files: string[], secret: string[] = []): void {
  const u = mosquittoUser();
  if (!u) return;
  chmodSync(dir, 0o755);
  for (const f of files) {
    chownSync(f, u.uid, u.gid);
    chmodSync(f, secret.includes(f) ? 0o600 : 0o644);
  }
}

/**
 * Writes mosquitto.conf into `dir` and starts the broker on a free port;
 * resolves once the port accepts connections. Retries on another port if the
 * chosen one was taken in between.
 */
export async function startMosquitto(dir: string, tls: MosquittoTlsFiles, extraConf: string[] = []): Promise<RunningMosquitto> {
  shareWithBroker(dir, [tls.cafile, tls.certfile, tls.keyfile, tls.crlfile], [tls.keyfile]);
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const confPath = join(dir, 'mosquitto.conf');
    writeFileSync(
      confPath,
      [
        'per_listener_settings false',
        'persistence false',
        'log_dest stderr',
        'log_type all',
        'connection_messages true',
        'log_timestamp true',
        `listener ${port} 127.0.0.1`,
        `cafile ${tls.cafile}`,
        `certfile ${tls.certfile}`,
        `keyfile ${tls.keyfile}`,
        `crlfile ${tls.crlfile}`,
        'require_certificate true',
        'use_identity_as_username true',
        'allow_anonymous false',
        ...extraConf,
        '',
      ].join('\n'),
    );
    const proc: ChildProcess = spawn(MOSQUITTO, ['-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    proc.stdout?.on('data', (b) => (log += b));
    proc.stderr?.on('data', (b) => (log += b));
    let exited = false;
    const exit = new Promise<void>((resolve) => proc.once('exit', () => ((exited = true), resolve())));
    proc.once('error', (e) => (log += `spawn error: ${e.message}\n`));
    const deadline = Date.now() + 10_000;
    let up = false;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) {
        up = true;
        break;
      }
      await sleep(50);
    }
    if (up) {
      return {
        port,
        pid: proc.pid ?? -1,
        confPath,
        log: () => log,
        reload: () => void proc.kill('SIGHUP'),
        async waitForLog(re, from = 0, timeoutMs = 5000) {
          const deadline = Date.now() + timeoutMs;
          while (!re.test(log.slice(from)) && Date.now() < deadline) await sleep(25);
          return log.slice(from);
        },
        async stop() {
          if (exited) return;
          proc.kill('SIGTERM');
          const killed = await Promise.race([exit.then(() => true), sleep(3000).then(() => false)]);
          if (!killed) {
            proc.kill('SIGKILL');
            await exit;
          }
        },
      };
    }
    if (!exited) {
      proc.kill('SIGKILL');
      await exit;
    }
    lastLog = log;
    if (!/address already in use/i.test(log)) break;
  }
  throw new Error(`mosquitto did not start:\n${lastLog}`);
}
