/**
 * A real SoftHSM2 token in a temporary directory: its own softhsm2.conf
 * (SOFTHSM2_CONF), initialised with softhsm2-util. One per test file; the
 * variable is set in this process too, since SoftHSM reads it at C_Initialize.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './data_dir.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const ENGINE_PKCS11 = '/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so';

export interface TestToken {
  dir: string;
  conf: string;
  label: string;
  pin: string;
  soPin: string;
  module: string;
  /** Environment for child processes (SOFTHSM2_CONF, the PIN variable). */
  env: Record<string, string>;
  pinEnv: string;
  /** Runs pkcs11-tool (OpenSC) against the token (or another token of the same configuration). */
  tool(args: string[], tokenLabel?: string): { status: number | null; stdout: string; stderr: string };
  /** An OpenSSL config that loads libengine-pkcs11-openssl for this module. */
  opensslConf: string;
  /**
   * Another token in the same SoftHSM configuration; `unplug()` moves its
   * files out of the token directory (processes started afterwards no longer
   * see it) and `plug()` puts them back.
   */
  addToken(label: string, pin: string): { unplug(): void; plug(): void };
  cleanup(): void;
}

export function makeToken(label = 'fleet-test', pin = '123456'): TestToken {
  const dir = tempDir('fleetpki-softhsm-');
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  const soPin = '12345678';
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'pipe' });
  const pinEnv = 'FLEETPKI_TEST_TOKEN_PIN';
  process.env[pinEnv] = pin;
  const env = { SOFTHSM2_CONF: conf, [pinEnv]: pin };
  const opensslConf = join(dir, 'openssl-pkcs11.cnf');
  writeFileSync(
    opensslConf,
    [
      'openssl_conf = openssl_init',
      '[openssl_init]',
      'engines = engine_section',
      '[engine_section]',
      'pkcs11 = pkcs11_section',
      '[pkcs11_section]',
      'engine_id = pkcs11',
      `dynamic_path = ${ENGINE_PKCS11}`,
      `MODULE_PATH = ${SOFTHSM_MODULE}`,
      'init = 0',
      '[req]',
      'distinguished_name = dn',
      '[dn]',
      '',
    ].join('\n'),
  );
  return {
    dir,
    conf,
    label,
    pin,
    soPin,
    module: SOFTHSM_MODULE,
    env,
    pinEnv,
    opensslConf,
    tool: (args, tokenLabel = label) => {
      const r = spawnSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', tokenLabel, ...args], { encoding: 'utf8', env: { ...process.env, SOFTHSM2_CONF: conf } });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    addToken: (label, pin) => {
      const before = new Set(readdirSync(tokens));
      execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: 'pipe' });
      const made = readdirSync(tokens).filter((n) => !before.has(n));
      if (made.length !== 1) throw new Error(`expected one new token directory, got ${made.join(', ')}`);
      const [name] = made;
      return {
        unplug: () => renameSync(join(tokens, name), join(dir, `unplugged-${name}`)),
        plug: () => renameSync(join(dir, `unplugged-${name}`), join(tokens, name)),
      };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

type Pkcs11Module = typeof import('pkcs11js');

/**
 * Asks the token itself, through PKCS#11, about the private key with CKA_ID
 * `idHex` on the token labelled `label` (pkcs11-tool cannot read EC private
 * values): `fn` gets the library, a logged-in session and the key handle.
 */
export async function withTokenPrivateKey<T>(module: string, label: string, pin: string, idHex: string, fn: (lib: InstanceType<Pkcs11Module['PKCS11']>, p: Pkcs11Module, session: Buffer, key: Buffer) => T): Promise<T> {
  const p = (await import('pkcs11js')).default as unknown as Pkcs11Module;
  const lib = new p.PKCS11();
  lib.load(module);
  try {
    lib.C_Initialize();
  } catch {
    /* initialised already in this process (a key store opened it) */
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === label);
  if (!slot) throw new Error(`no token labelled ${label}`);
  const s = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  try {
    try {
      lib.C_Login(s, p.CKU_USER, pin);
    } catch {
      /* logged in already */
    }
    lib.C_FindObjectsInit(s, [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, { type: p.CKA_ID, value: Buffer.from(idHex, 'hex') }]);
    const [key] = lib.C_FindObjects(s, 1);
    lib.C_FindObjectsFinal(s);
    if (!key) throw new Error(`no private key with id ${idHex} on ${label}`);
    return fn(lib, p, s, key);
  } finally {
    lib.C_CloseSession(s);
  }
}
