/**
 * Cross-organisation trust: trust.json lists other organisations' roots (or
 * CAs), each with the operational domains it may speak for. A peer that
 * chains to such an entry is accepted only for those domains, so a partner
 * that runs its own PKI can reach our devices at the one site we share, and
 * nowhere else. The fleet's own roots (trust.pem) speak for every domain.
 *
 * An entry may carry the organisation's issuing CAs with its root: the agent
 * needs them to check the signatures of their CRLs before it caches one (a
 * peer sends its chain in the handshake, a CRL distribution point does not),
 * and the CRL URLs to keep fresh for it. The agent rereads the file on every
 * refresh, so a running daemon picks up `agent trust add/remove`.
 */
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { pemEncode } from '../x509/pem.js';
import { certsOfPem, issuedBy, isSelfIssued, sameBytes } from './certs.js';
import type { AgentFiles } from './files.js';

export interface TrustEntry {
  name: string;
  /** The anchor: the organisation's root (or the CA it chose to be trusted at). */
  cert: CertInfo;
  /** Its CAs below the anchor, each issued by the anchor or by one before it. */
  intermediates: CertInfo[];
  domains: string[];
  /** CRLs of this organisation's CAs to keep fresh. */
  crlUrls: string[];
}

interface TrustFile {
  version: 1;
  anchors: Array<{ name: string; pem: string; domains: string[]; chain?: string[]; crlUrls?: string[] }>;
}

/**
 * Splits a PEM bundle into the anchor and CAs below it: the anchor is the one
 * certificate no other in the bundle issued; every other one must chain to it.
 */
function anchorAndChain(pem: string): { anchor: CertInfo; chain: CertInfo[] } {
  const certs = certsOfPem(pem, 'the CA certificate file');
  if (certs.length === 0) throw new ProblemError('bad_request', 'the CA certificate file holds no certificate');
  for (const c of certs) if (!c.isCa) throw new ProblemError('bad_request', `${c.subjectText} is not a CA certificate`);
  const tops = certs.filter((c) => isSelfIssued(c) || !certs.some((o) => o !== c && issuedBy(c, o)));
  if (tops.length !== 1) throw new ProblemError('bad_request', `the CA certificate file must hold one root (or top CA) and CAs below it; it holds ${tops.length} unrelated tops: ${tops.map((t) => t.subjectText).join('; ')}`);
  const anchor = tops[0];
  const chain: CertInfo[] = [];
  const rest = certs.filter((c) => c !== anchor && !sameBytes(c.der, anchor.der));
  for (let round = 0; round < rest.length; round++) {
    for (const c of rest) if (!chain.includes(c) && [anchor, ...chain].some((p) => issuedBy(c, p))) chain.push(c);
  }
  const loose = rest.filter((c) => !chain.includes(c));
  if (loose.length) throw new ProblemError('bad_request', `${loose.map((c) => c.subjectText).join('; ')} does not chain to ${anchor.subjectText}`);
  return { anchor, chain };
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const DOMAIN_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;

export class TrustList {
  constructor(
    private readonly dir: string,
    private readonly files: AgentFiles,
  ) {}

  private get path(): string {
    return join(this.dir, 'trust.json');
  }

  private async read(): Promise<TrustFile> {
    const buf = await this.files.readIfExists(this.path);
    if (!buf) return { version: 1, anchors: [] };
    let raw: TrustFile;
    try {
      raw = JSON.parse(buf.toString('utf8')) as TrustFile;
    } catch (e) {
      throw new ProblemError('corrupt_state', `${this.path} is damaged (not JSON: ${(e as Error).message})`);
    }
    if (raw?.version !== 1 || !Array.isArray(raw.anchors)) throw new ProblemError('corrupt_state', `${this.path} is damaged (expected {"version":1,"anchors":[...]})`);
    return raw;
  }

  async entries(): Promise<TrustEntry[]> {
    const f = await this.read();
    return f.anchors.map((a) => {
      if (!NAME_RE.test(a.name) || !Array.isArray(a.domains) || !a.domains.every((d) => DOMAIN_RE.test(d))) throw new ProblemError('corrupt_state', `${this.path}: entry "${a.name}" is damaged`);
      if (a.crlUrls !== undefined && (!Array.isArray(a.crlUrls) || !a.crlUrls.every((u) => /^https?:\/\//.test(u)))) throw new ProblemError('corrupt_state', `${this.path}: the CRL URLs of "${a.name}" are damaged`);
      try {
        return { name: a.name, cert: parseCertificate(a.pem), intermediates: (a.chain ?? []).map((p) => parseCertificate(p)), domains: a.domains, crlUrls: a.crlUrls ?? [] };
      } catch (e) {
        throw new ProblemError('corrupt_state', `${this.path}: the certificate of "${a.name}" is damaged: ${(e as Error).message}`);
      }
    });
  }

  /** Adds or replaces the entry `name`: `certPem` holds the anchor, optionally with the CAs below it. */
  async add(name: string, certPem: string, domains: string[], crlUrls: string[] = []): Promise<TrustEntry> {
    if (!NAME_RE.test(name)) throw new ProblemError('bad_request', 'a trust entry name is lowercase letters, digits, dots, dashes and underscores');
    if (name === 'fleet') throw new ProblemError('bad_request', '"fleet" names the fleet\'s own roots (trust.pem)');
    if (domains.length === 0) throw new ProblemError('bad_request', 'name at least one domain the CA may speak for');
    for (const d of domains) if (!DOMAIN_RE.test(d)) throw new ProblemError('bad_request', `"${d}" is not a domain (lowercase letters, digits, dots and dashes)`);
    for (const u of crlUrls) {
      if (!/^https?:\/\/[^/]/.test(u)) throw new ProblemError('bad_request', `"${u}" is not an http(s) CRL URL`);
    }
    const { anchor, chain } = anchorAndChain(certPem);
    const f = await this.read();
    f.anchors = f.anchors.filter((a) => a.name !== name);
    const urls = [...new Set(crlUrls)];
    const sorted = [...new Set(domains)].sort();
    f.anchors.push({ name, pem: pemEncode('CERTIFICATE', anchor.der), domains: sorted, ...(chain.length ? { chain: chain.map((c) => pemEncode('CERTIFICATE', c.der)) } : {}), ...(urls.length ? { crlUrls: urls } : {}) });
    await this.files.writeAtomic(this.path, `${JSON.stringify(f, null, 2)}\n`, 0o644);
    return { name, cert: anchor, intermediates: chain, domains: sorted, crlUrls: urls };
  }

  async remove(name: string): Promise<boolean> {
    const f = await this.read();
    const n = f.anchors.length;
    f.anchors = f.anchors.filter((a) => a.name !== name);
    if (f.anchors.length === n) return false;
    await this.files.writeAtomic(this.path, `${JSON.stringify(f, null, 2)}\n`, 0o644);
    return true;
  }
}
