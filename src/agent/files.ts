/**
 * The agent's file-writing seam. Every write goes through `AgentFiles`, so a
 * test can make the disk "full" at any chosen write and check that the old
 * identity is intact. The real implementation writes to a temporary file,
 * fsyncs it and renames it over the target: a reader (or a crash) sees the
 * old file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';

export interface AgentFiles {
  /** Replaces `path` atomically with `data`, created with `mode`. */
  writeAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void>;
  read(path: string): Promise<Buffer>;
  /** undefined when the file does not exist. */
  readIfExists(path: string): Promise<Buffer | undefined>;
  exists(path: string): Promise<boolean>;
  mkdir(path: string, mode: number): Promise<void>;
  remove(path: string): Promise<void>;
  list(dir: string): Promise<string[]>;
  /** Points symlink `path` at `target`, replacing it atomically. */
  symlinkAtomic(target: string, path: string): Promise<void>;
  readlink(path: string): Promise<string | undefined>;
}

async function syncDir(dir: string): Promise<void> {
  // The rename is durable only once the directory entry is on disk.
  const h = await fs.open(dir, 'r').catch(() => undefined);
  if (!h) return;
  await h.sync().catch(() => undefined);
  await h.close();
}

export const nodeFiles: AgentFiles = {
  async writeAtomic(path, data, mode) {
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      const h = await fs.open(tmp, 'wx', mode);
      try {
        await h.writeFile(data);
        await h.sync();
      } finally {
        await h.close();
      }
      await fs.chmod(tmp, mode); // umask must not widen or narrow the mode asked for
      await fs.rename(tmp, path);
    } catch (e) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    await syncDir(dirname(path));
  },
  read: (path) => fs.readFile(path),
  async readIfExists(path) {
    try {
      return await fs.readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  },
  async exists(path) {
    try {
      await fs.lstat(path);
      return true;
    } catch {
      return false;
    }
  },
  async mkdir(path, mode) {
    await fs.mkdir(path, { recursive: true, mode });
  },
  remove: (path) => fs.rm(path, { recursive: true, force: true }),
  async list(dir) {
    try {
      return (await fs.readdir(dir)).sort();
    } catch {
      return [];
    }
  },
  async symlinkAtomic(target, path) {
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    await fs.symlink(target, tmp);
    try {
      await fs.rename(tmp, path);
    } catch (e) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    await syncDir(dirname(path));
  },
  async readlink(path) {
    try {
      return await fs.readlink(path);
    } catch {
      return undefined;
    }
  },
};
