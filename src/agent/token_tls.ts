/**
 * TLS with a device key that lives in a PKCS#11 token. node:tls cannot take
 * a token key as a PEM, but it can take a private key from an OpenSSL engine
 * (`privateKeyEngine` / `privateKeyIdentifier`): OpenSSL's pkcs11 engine
 * (libp11, Debian `libengine-pkcs11-openssl`) loads the key by its RFC 7512
 * URI and the token signs each handshake. The agent uses it for EST
 * re-enrollment (the current certificate authenticates the renewal) and
 * the mutual-TLS helpers use it as they use a PEM key.
 *
 * What this rests on, and how it is kept sound:
 * - Node's own OpenSSL loads the engine (a shared library built against the
 *   system's libcrypto 3; it binds to the OpenSSL symbols Node exports).
 *   Node documents the option (deprecated with engines in OpenSSL 3,
 *   DEP0183, documentation-only). Tested with Node 20 (OpenSSL 3.0) and
 *   libp11 0.4.12 on Debian 12. Where it does not load, the key is refused
 *   here with key_unavailable (engine_unavailable), never at a handshake.
 * - The engine is found by id through OPENSSL_ENGINES and reads its PKCS#11
 *   module from PKCS11_MODULE_PATH. Loading it by id (not by path) keeps one
 *   engine for the process; loading it by path binds a fresh engine each
 *   time, and the second one fails to initialise.
 * - The engine and the agent's pkcs11js share the module and its login
 *   (PKCS#11 logs in an application, not a session). The engine therefore
 *   gets no PIN: the agent logs in first, and the PIN never goes into a
 *   string the engine prints in its error messages.
 * - The first context made with the engine is kept for the life of the
 *   process: when an engine's last context goes, libp11 finalises the
 *   module (C_Finalize), which would close every session of the process.
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ProblemError } from '../errors.js';

const ENGINE_ID = 'pkcs11';

/** Where Debian and Ubuntu put the engine (libengine-pkcs11-openssl), per architecture. */
const MULTIARCH: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', arm: 'arm-linux-gnueabihf', ia32: 'i386-linux-gnu', riscv64: 'riscv64-linux-gnu', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu' };

export function defaultEnginePath(): string {
  return `/usr/lib/${MULTIARCH[process.arch] ?? `${process.arch}-linux-gnu`}/engines-3/pkcs11.so`;
}

/** The engine's part of node:tls options. */
export interface EngineKey {
  privateKeyEngine: string;
  privateKeyIdentifier: string;
}

let moduleInUse: string | undefined;
/** Keeps the engine initialised (see the file comment). */
let keepAlive: SecureContext | undefined;
const probed = new Set<string>();

function unavailable(detail: string): ProblemError {
  return new ProblemError('key_unavailable', detail, { reason: 'engine_unavailable' });
}

/**
 * node:tls options that present the token key `uri`. Checks once per key
 * that OpenSSL's engine can load it, so a missing engine or key is a typed
 * error here; the caller makes sure the token is logged in first.
 */
export function engineKey(o: { module: string; engine?: string; uri: string }): EngineKey {
  const engine = o.engine ?? defaultEnginePath();
  if (!existsSync(engine)) throw unavailable(`OpenSSL's pkcs11 engine is not at ${engine}: node:tls needs it to use a token key (Debian: apt-get install libengine-pkcs11-openssl; or --pkcs11-engine PATH)`);
  if (moduleInUse !== undefined && moduleInUse !== o.module) {
    throw new ProblemError('config_error', `this process already uses PKCS#11 module ${moduleInUse} for TLS; OpenSSL's engine takes one module per process, not also ${o.module}`);
  }
  const envModule = process.env.PKCS11_MODULE_PATH;
  if (envModule !== undefined && envModule !== o.module) {
    throw new ProblemError('config_error', `PKCS11_MODULE_PATH is ${envModule}, but the device key is in a token of ${o.module}: unset it or make them agree`);
  }
  // The engine reads both when it is first loaded; the process keeps them (child processes such as hooks see them too).
  process.env.PKCS11_MODULE_PATH = o.module;
  process.env.OPENSSL_ENGINES ??= dirname(engine);
  moduleInUse = o.module;
  const key: EngineKey = { privateKeyEngine: ENGINE_ID, privateKeyIdentifier: o.uri };
  if (!probed.has(o.uri)) {
    let ctx: SecureContext;
    try {
      ctx = createSecureContext(key);
    } catch (e) {
      const m = (e as Error).message;
      if (/object not found|not found/i.test(m)) throw new ProblemError('key_unavailable', `OpenSSL's pkcs11 engine finds no key ${o.uri}: ${m}`, { reason: 'key_missing' });
      throw unavailable(`OpenSSL's pkcs11 engine (${engine}, module ${o.module}) cannot load ${o.uri} for node:tls: ${m}`);
    }
    keepAlive ??= ctx;
    probed.add(o.uri);
  }
  return key;
}

/** Forget a removed key (a later key with the same URI is checked again). */
export function forgetEngineKey(uri: string): void {
  probed.delete(uri);
}
