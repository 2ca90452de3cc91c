/**
 * The HTTPS listener's own certificate: issued by the fleet's issuing CA under
 * the server-tls profile, so clients need only the root. Kept in
 * DIR/tls/, reissued when less than `renewAtRemaining` of its life is left.
 */
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { writeFileAtomic } from '../keys/software_key_store.js';
import { parseCertificate } from '../x509/cert_info.js';
import type { San } from '../x509/general_names.js';
import { pemEncode } from '../x509/pem.js';
import type { FleetContext } from './context.js';
import { parseHostPort } from './config.js';

export interface TlsIdentity {
  keyPem: string;
  /** Leaf followed by the issuing CA chain (without the root). */
  certPem: string;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

const files = (dir: string) => ({ key: join(dir, 'tls', 'listener-key.pem'), cert: join(dir, 'tls', 'listener-chain.pem') });

export function listenerNames(ctx: FleetContext): San[] {
  const { host } = parseHostPort(ctx.config.server.listen);
  const names: San[] = ctx.config.server.hostnames.map((h) => ({ type: 'dns' as const, value: h.toLowerCase() }));
  if (isIP(host)) {
    if (host !== '0.0.0.0' && host !== '::') names.push({ type: 'ip', value: host });
  } else if (!names.some((n) => n.value === host.toLowerCase())) names.push({ type: 'dns', value: host.toLowerCase() });
  return names;
}

function needsRenewal(ctx: FleetContext, id: { notBefore: Date; notAfter: Date }): boolean {
  const life = id.notAfter.getTime() - id.notBefore.getTime();
  const left = id.notAfter.getTime() - ctx.clock.now().getTime();
  return left < life * ctx.config.server.renewAtRemaining;
}

async function readExisting(ctx: FleetContext): Promise<TlsIdentity | undefined> {
  const f = files(ctx.dir);
  try {
    const [keyPem, certPem] = await Promise.all([fs.readFile(f.key, 'utf8'), fs.readFile(f.cert, 'utf8')]);
    const info = parseCertificate(certPem);
    // The two files are written one after the other: a crash between them
    // leaves a pair that does not match, which is replaced, never served.
    const keySpki = createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
    if (Buffer.compare(keySpki, Buffer.from(info.spki)) !== 0) return undefined;
    const rec = await ctx.store.getCertificate(info.serial);
    if (!rec || rec.status !== 'good') return undefined; // revoked or unknown: replace it
    return { keyPem, certPem, notBefore: info.notBefore, notAfter: info.notAfter, serial: info.serial };
  } catch {
    return undefined;
  }
}

/**
 * Returns a valid listener identity (the one in the data directory), issuing
 * a new one when there is none, it is due, or it was revoked. Processes
 * sharing the data directory (serve --processes) take turns through
 * `takeTurn` (a lease): only the process it lets through issues, after
 * reading the pair again (another may have just renewed it). A process it
 * turns away gets the current pair if that is still valid, else undefined:
 * it keeps serving what it has and looks again at its next check.
 */
export async function ensureTlsIdentity(ctx: FleetContext): Promise<TlsIdentity>;
export async function ensureTlsIdentity(ctx: FleetContext, takeTurn: () => Promise<boolean>): Promise<TlsIdentity | undefined>;
export async function ensureTlsIdentity(ctx: FleetContext, takeTurn?: () => Promise<boolean>): Promise<TlsIdentity | undefined> {
  const existing = await readExisting(ctx);
  if (existing && !needsRenewal(ctx, existing)) return existing;
  if (takeTurn) {
    if (!(await takeTurn())) return existing && existing.notAfter > ctx.clock.now() ? existing : undefined;
    const again = await readExisting(ctx);
    if (again && !needsRenewal(ctx, again)) return again;
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sans = listenerNames(ctx);
  const result = await ctx.authority.issue({
    serverGeneratedSpki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })),
    profile: 'server-tls',
    subject: [{ type: 'O', value: ctx.config.org }, { type: 'CN', value: sans[0]?.value ?? 'fleetpki' }],
    sans,
    actor: 'system:tls-listener',
  });
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const certPem = [result.der, ...result.chain.slice(0, -1)].map((d) => pemEncode('CERTIFICATE', d)).join('');
  const f = files(ctx.dir);
  await fs.mkdir(join(ctx.dir, 'tls'), { recursive: true, mode: 0o700 });
  await writeFileAtomic(f.key, keyPem, 0o600);
  await writeFileAtomic(f.cert, certPem, 0o644);
  return { keyPem, certPem, notBefore: result.record.notBefore, notAfter: result.record.notAfter, serial: result.record.serial };
}
