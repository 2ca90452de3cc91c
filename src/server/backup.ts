/**
 * Encrypted, restorable backups of a data directory: the config, a consistent
 * snapshot of the SQLite store (SQLite's online backup API, safe while the
 * server runs — a raw copy of a WAL database can miss or tear pages), the
 * software key files (already encrypted under the key store passphrase),
 * the listener's TLS files and, unless excluded, secrets/. Keys inside a
 * PKCS#11 token are not in it: they cannot leave the token.
 *
 * File format (all integers big-endian):
 *   "FLEETPKI-BACKUP\n"  u32 header length  header (JSON)  ciphertext  tag (16)
 * The ciphertext is AES-256-GCM over gzip(records); the magic, length and
 * header are its additional authenticated data, so no field can be changed
 * unnoticed. The key comes from the passphrase through scrypt (RFC 7914); a
 * separate check value tells a wrong passphrase from a damaged file.
 * A record is: u16 path length, path (UTF-8), u32 mode, u64 size, bytes; a
 * zero path length ends the archive.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, fsyncSync, mkdirSync, openSync, promises as fs, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import Database from 'better-sqlite3';
import { ProblemError } from '../errors.js';
import { VERSION } from '../version.js';
import { CONFIG_FILE, loadConfig } from './config.js';

const MAGIC = Buffer.from('FLEETPKI-BACKUP\n', 'ascii');
const TAG_LEN = 16;
/** scrypt cost: 128 MiB and about half a second here; stored in the header so it can grow. */
const SCRYPT = { N: 2 ** 17, r: 8, p: 1 };
export const MIN_BACKUP_PASSPHRASE = 12;

interface Header {
  format: 1;
  fleetpkiVersion: string;
  createdAt: string;
  org: string;
  keyStore: string;
  /** Whether secrets/ (the generated key store passphrase) is inside. */
  secrets: boolean;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: 'aes-256-gcm';
  iv: string;
  /** HMAC-SHA256(check key, "fleetpki backup"): is the passphrase right? */
  check: string;
  files: string[];
}

function scrypt(passphrase: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 };
  return new Promise((res, rej) => scryptCb(passphrase, salt, 64, opts, (e, k) => (e ? rej(e) : res(k))));
}

function checkValue(checkKey: Buffer): Buffer {
  return createHmac('sha256', checkKey).update('fleetpki backup').digest();
}

function checkPassphrase(p: string): void {
  if (p.length < MIN_BACKUP_PASSPHRASE) throw new ProblemError('bad_request', `the backup passphrase must be at least ${MIN_BACKUP_PASSPHRASE} characters`);
}

interface Entry {
  /** Path inside the data directory, with forward slashes. */
  path: string;
  /** Where to read it from now. */
  source: string;
  mode: number;
}

async function listDir(root: string, sub: string): Promise<Entry[]> {
  const out: Entry[] = [];
  const abs = join(root, sub);
  let names: string[];
  try {
    names = (await fs.readdir(abs)).sort();
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(abs, n);
    const st = await fs.stat(p);
    const rel = `${sub}/${n}`;
    if (st.isDirectory()) out.push(...(await listDir(root, rel)));
    else if (st.isFile() && !n.endsWith('.tmp')) out.push({ path: rel, source: p, mode: st.mode & 0o777 });
  }
  return out;
}

export interface BackupResult {
  file: string;
  files: string[];
  bytes: number;
}

/** Writes an encrypted backup of the data directory `dir` to `out` (which must not exist). */
export async function createBackup(dir: string, out: string, passphrase: string, opts: { secrets?: boolean } = {}): Promise<BackupResult> {
  checkPassphrase(passphrase);
  const config = await loadConfig(dir);
  if (/^postgres(ql)?:\/\//.test(config.store)) throw new ProblemError('bad_request', 'the store is PostgreSQL: back it up with pg_dump (or the database\'s own tools); fleetpki backup covers the embedded SQLite store');
  if (isAbsolute(config.store) || normalize(config.store).startsWith('..')) throw new ProblemError('bad_request', `the SQLite store ${config.store} is outside the data directory; fleetpki backup covers a store inside it`);
  if (existsSync(out)) throw new ProblemError('already_exists', `${out} exists; refusing to overwrite it`);
  const withSecrets = opts.secrets ?? true;

  const staging = await fs.mkdtemp(join(dirname(resolve(out)), '.fleetpki-backup-'));
  try {
    // SQLite's online backup: a consistent snapshot while writers may be active.
    const snapshot = join(staging, 'store.db');
    const src = new Database(resolve(dir, config.store), { readonly: true, fileMustExist: true });
    try {
      await src.backup(snapshot);
    } finally {
      src.close();
    }
    const entries: Entry[] = [
      { path: CONFIG_FILE, source: join(dir, CONFIG_FILE), mode: 0o600 },
      { path: config.store.split(sep).join('/'), source: snapshot, mode: 0o600 },
      ...(config.keyStore.type === 'software' ? await listDir(dir, config.keyStore.dir) : []),
      ...(await listDir(dir, 'tls')),
      ...(withSecrets ? await listDir(dir, 'secrets') : []),
    ];

    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const k = await scrypt(passphrase, salt, SCRYPT);
    const header: Header = {
      format: 1,
      fleetpkiVersion: VERSION,
      createdAt: new Date().toISOString(),
      org: config.org,
      keyStore: config.keyStore.type,
      secrets: withSecrets,
      kdf: { name: 'scrypt', ...SCRYPT, salt: salt.toString('base64') },
      cipher: 'aes-256-gcm',
      iv: iv.toString('base64'),
      check: checkValue(k.subarray(32)).toString('base64'),
      files: entries.map((e) => e.path),
    };
    const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
    const lenBytes = Buffer.alloc(4);
    lenBytes.writeUInt32BE(headerBytes.length);
    const cipher = createCipheriv('aes-256-gcm', k.subarray(0, 32), iv);
    cipher.setAAD(Buffer.concat([MAGIC, lenBytes, headerBytes]));

    const tmpOut = join(staging, 'backup.tmp');
    const ws = createWriteStream(tmpOut, { mode: 0o600 });
    ws.write(Buffer.concat([MAGIC, lenBytes, headerBytes]));
    await pipeline(Readable.from(records(entries)), createGzip(), cipher, ws);
    await fs.appendFile(tmpOut, cipher.getAuthTag());
    const fd = openSync(tmpOut, 'r+');
    fsyncSync(fd);
    closeSync(fd);
    await fs.rename(tmpOut, out);
    const { size } = await fs.stat(out);
    return { file: out, files: header.files, bytes: size };
  } finally {
    await fs.rm(staging, { recursive: true, force: true });
  }
}

async function* records(entries: Entry[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const path = Buffer.from(e.path, 'utf8');
    const data = await fs.readFile(e.source);
    const head = Buffer.alloc(2 + path.length + 4 + 8);
    head.writeUInt16BE(path.length, 0);
    path.copy(head, 2);
    head.writeUInt32BE(e.mode, 2 + path.length);
    head.writeBigUInt64BE(BigInt(data.length), 6 + path.length);
    yield head;
    yield data;
  }
  yield Buffer.alloc(2); // end of archive
}

interface OpenedBackup {
  header: Header;
  key: Buffer;
  dataStart: number;
  size: number;
  aad: Buffer;
}

async function openBackup(file: string, passphrase: string): Promise<OpenedBackup> {
  const damaged = (why: string) => new ProblemError('bad_request', `${file} is not a fleetpki backup or is damaged (${why})`);
  let fh;
  try {
    fh = await fs.open(file, 'r');
  } catch (e) {
    throw new ProblemError('bad_request', `cannot read the backup ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const { size } = await fh.stat();
    const start = Buffer.alloc(MAGIC.length + 4);
    await fh.read(start, 0, start.length, 0);
    if (!start.subarray(0, MAGIC.length).equals(MAGIC)) throw damaged('no fleetpki backup header');
    const headerLen = start.readUInt32BE(MAGIC.length);
    if (headerLen > 1024 * 1024 || MAGIC.length + 4 + headerLen + TAG_LEN > size) throw damaged('bad header length');
    const headerBytes = Buffer.alloc(headerLen);
    await fh.read(headerBytes, 0, headerLen, start.length);
    let header: Header;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch {
      throw damaged('unreadable header');
    }
    if (header.format !== 1 || header.kdf?.name !== 'scrypt' || header.cipher !== 'aes-256-gcm') throw damaged(`unsupported format ${String(header.format)}`);
    const { N, r, p } = header.kdf;
    if (![N, r, p].every((v) => Number.isInteger(v) && v > 0) || N > 2 ** 20 || r > 32 || p > 16) throw damaged('bad key derivation parameters');
    const key = await scrypt(passphrase, Buffer.from(header.kdf.salt, 'base64'), { N, r, p });
    const want = Buffer.from(header.check, 'base64');
    const got = checkValue(key.subarray(32));
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw new ProblemError('unauthorized', 'wrong backup passphrase: the backup was not opened and nothing was restored');
    return { header, key, dataStart: start.length + headerLen, size, aad: Buffer.concat([start, headerBytes]) };
  } finally {
    await fh.close();
  }
}

/** Reads the records of an archive stream and writes them under `root`. */
class Extractor extends Writable {
  private buf: Buffer = Buffer.alloc(0);
  private current?: { fd: number; left: bigint };
  readonly files: string[] = [];
  done = false;

  constructor(private readonly root: string) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error) => void): void {
    try {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.drain();
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  private drain(): void {
    for (;;) {
      if (this.current) {
        const n = Number(this.current.left < BigInt(this.buf.length) ? this.current.left : BigInt(this.buf.length));
        if (n > 0) writeSync(this.current.fd, this.buf, 0, n);
        this.buf = this.buf.subarray(n);
        this.current.left -= BigInt(n);
        if (this.current.left > 0n) return;
        fsyncSync(this.current.fd);
        closeSync(this.current.fd);
        this.current = undefined;
      }
      if (this.done || this.buf.length < 2) return;
      const plen = this.buf.readUInt16BE(0);
      if (plen === 0) {
        this.done = true;
        return;
      }
      if (this.buf.length < 2 + plen + 12) return;
      const path = this.buf.subarray(2, 2 + plen).toString('utf8');
      const mode = this.buf.readUInt32BE(2 + plen) & 0o777;
      const size = this.buf.readBigUInt64BE(6 + plen);
      this.buf = this.buf.subarray(2 + plen + 12);
      const target = resolve(this.root, path);
      const rel = relative(this.root, target);
      if (!rel || rel.startsWith('..') || isAbsolute(rel) || path.includes('\0')) throw new ProblemError('bad_request', `the backup holds an unsafe path "${path}"`);
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      this.current = { fd: openSync(target, 'wx', mode), left: size };
      this.files.push(path);
    }
  }

  override _final(cb: (e?: Error) => void): void {
    cb(this.done && !this.current ? undefined : new ProblemError('bad_request', 'the backup ends before its last file'));
  }
}

export interface RestoreResult {
  dir: string;
  files: string[];
  createdAt: string;
  keyStore: string;
  secrets: boolean;
}

/**
 * Restores a backup into `dir`, which must not hold a data directory. Files
 * are written to a sibling staging directory and moved into place only after
 * the whole archive has been authenticated: a wrong passphrase or a damaged
 * file leaves nothing behind.
 */
export async function restoreBackup(file: string, dir: string, passphrase: string): Promise<RestoreResult> {
  const target = resolve(dir);
  if (existsSync(join(target, CONFIG_FILE))) throw new ProblemError('already_exists', `${target} already holds a fleetpki data directory; restore into a new directory`);
  if (existsSync(target) && (await fs.readdir(target)).length > 0) throw new ProblemError('already_exists', `${target} is not empty; restore into a new or empty directory`);
  const b = await openBackup(file, passphrase);
  await fs.mkdir(dirname(target), { recursive: true });
  const staging = await fs.mkdtemp(join(dirname(target), '.fleetpki-restore-'));
  try {
    const decipher = createDecipheriv('aes-256-gcm', b.key.subarray(0, 32), Buffer.from(b.header.iv, 'base64'));
    decipher.setAAD(b.aad);
    const tag = Buffer.alloc(TAG_LEN);
    const fh = await fs.open(file, 'r');
    await fh.read(tag, 0, TAG_LEN, b.size - TAG_LEN);
    await fh.close();
    decipher.setAuthTag(tag);
    const x = new Extractor(staging);
    try {
      await pipeline(createReadStream(file, { start: b.dataStart, end: b.size - TAG_LEN - 1 }), decipher, createGunzip(), x);
    } catch (e) {
      if (e instanceof ProblemError) throw e;
      throw new ProblemError('bad_request', `${file} is damaged: ${(e as Error).message}`);
    }
    if (!x.files.includes(CONFIG_FILE)) throw new ProblemError('bad_request', `${file} holds no ${CONFIG_FILE}`);
    await fs.chmod(staging, 0o700);
    if (existsSync(target)) await fs.rmdir(target); // empty, checked above
    await fs.rename(staging, target);
    return { dir: target, files: x.files, createdAt: b.header.createdAt, keyStore: b.header.keyStore, secrets: b.header.secrets };
  } catch (e) {
    await fs.rm(staging, { recursive: true, force: true });
    throw e;
  }
}
