/**
 * Cross-organisation trust: trust.json lists other organisations' roots (or
 * CAs), each with the operational domains it may speak for. A peer that
 * chains to such an entry is accepted only for those domains, so a partner
 * that runs its own PKI can reach our devices at the one site we share, and
 * nowhere else. The fleet's own roots (trust.pem) speak for every domain.
 */
import { join } from 'node:path';
import { ProblemError } from '../errors.js';
import { parseCertificate, type CertInfo } from '../x509/cert_info.js';
import { pemEncode } from '../x509/pem.js';
import type { AgentFiles } from './files.js';

export interface TrustEntry {
  name: string;
  cert: CertInfo;
  domains: string[];
}

interface TrustFile {
  version: 1;
  anchors: Array<{ name: string; pem: string; domains: string[] }>;
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
      try {
        return { name: a.name, cert: parseCertificate(a.pem), domains: a.domains };
      } catch (e) {
        throw new ProblemError('corrupt_state', `${this.path}: the certificate of "${a.name}" is damaged: ${(e as Error).message}`);
      }
    });
  }

  /** Adds or replaces the entry `name`. */
  async add(name: string, certPem: string, domains: string[]): Promise<TrustEntry> {
    if (!NAME_RE.test(name)) throw new ProblemError('bad_request', 'a trust entry name is lowercase letters, digits, dots, dashes and underscores');
    if (name === 'fleet') throw new ProblemError('bad_request', '"fleet" names the fleet\'s own roots (trust.pem)');
    if (domains.length === 0) throw new ProblemError('bad_request', 'name at least one domain the CA may speak for');
    for (const d of domains) if (!DOMAIN_RE.test(d)) throw new ProblemError('bad_request', `"${d}" is not a domain (lowercase letters, digits, dots and dashes)`);
    const cert = parseCertificate(certPem);
    if (!cert.isCa) throw new ProblemError('bad_request', `${cert.subjectText} is not a CA certificate`);
    const f = await this.read();
    f.anchors = f.anchors.filter((a) => a.name !== name);
    f.anchors.push({ name, pem: pemEncode('CERTIFICATE', cert.der), domains: [...new Set(domains)].sort() });
    await this.files.writeAtomic(this.path, `${JSON.stringify(f, null, 2)}\n`, 0o644);
    return { name, cert, domains };
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
