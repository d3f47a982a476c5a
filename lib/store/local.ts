/**
 * The local-directory store. Writes go to a temporary file under `<root>/_index/tmp/` and are
 * published with `link()` (create-only: fails if the target exists) or `rename()` (replace),
 * so a reader never sees a half-written object and a create-only commit is atomic.
 *
 * Temporary files live in their own directory, not beside their targets: a listing then
 * needs no name filter (a filter on a marker such as `.tmp-` once hid a user's fragment
 * `a.tmp-1.arrow`), and vacuum finds what a killed writer left (`LOCAL_TEMP_PREFIX`).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { AlreadyExistsError, NotFoundError } from '../errors.js';
import { checkKey, type ObjectInfo, type ObjectStore, type ObjectWriter, type WriteOptions } from './store.js';

/** Where writers stage their bytes before publishing (dataset-relative; vacuum cleans it). */
export const LOCAL_TEMP_PREFIX = '_index/tmp/';

export class LocalStore implements ObjectStore {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  describe(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  private file(key: string): string {
    return path.join(this.root, ...checkKey(key).split('/'));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return infoOf(key, this.file(key));
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    const file = this.file(key);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(file, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) throw new NotFoundError(this.describe(key));
      throw err;
    }
    try {
      if (!range) return new Uint8Array(await handle.readFile());
      const length = Math.max(0, range.end - range.start);
      // Not zero-filled (the reads below overwrite it; a short read returns only what was
      // read): zeroing a 4 MB column read first cost about 0.5 ms. Its own ArrayBuffer (never
      // Node's shared pool), seen as a plain Uint8Array (whose slice() copies).
      const unfilled = Buffer.allocUnsafeSlow(length);
      const buf = new Uint8Array(unfilled.buffer, unfilled.byteOffset, length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, range.start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done === length ? buf : buf.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async put(key: string, body: Uint8Array, options: WriteOptions = {}): Promise<ObjectInfo> {
    const w = await this.openWriter(key, options);
    try {
      await w.write(body);
    } catch (err) {
      await w.abort();
      throw err;
    }
    return w.close();
  }

  async openWriter(key: string, options: WriteOptions = {}): Promise<ObjectWriter> {
    const target = this.file(key);
    const tempDir = path.join(this.root, ...LOCAL_TEMP_PREFIX.split('/').filter(Boolean));
    await Promise.all([fs.mkdir(path.dirname(target), { recursive: true }), fs.mkdir(tempDir, { recursive: true })]);
    // The target's name (cut short) after a random part, so a leftover says what it was.
    const temp = path.join(tempDir, `${randomBytes(6).toString('hex')}-${path.basename(target).slice(0, 80)}`);
    const handle = await fs.open(temp, 'wx');
    let size = 0;
    let finished = false;
    const discard = async () => {
      finished = true;
      await handle.close().catch(() => undefined);
      await fs.rm(temp, { force: true });
    };
    return {
      write: async (chunk) => {
        let done = 0;
        while (done < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
          done += bytesWritten;
        }
        size += chunk.byteLength;
      },
      close: async () => {
        if (finished) throw new Error(`writer for ${key} already closed`);
        finished = true;
        await handle.close();
        try {
          if (options.createOnly) {
            await fs.link(temp, target);
          } else {
            await fs.rename(temp, target);
          }
        } catch (err) {
          if (isErrno(err, 'EEXIST')) throw new AlreadyExistsError(this.describe(key));
          throw err;
        } finally {
          await fs.rm(temp, { force: true });
        }
        const info = await this.head(key);
        return info ?? { key, size };
      },
      abort: discard,
    };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the directory that can hold the prefix, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    if (dirKey) checkKey(dirKey);
    const files: { key: string; file: string }[] = [];
    await walk(path.join(this.root, ...dirKey.split('/').filter(Boolean)), dirKey, files, new Set());
    files.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    // Listed as they are, even names no key may have (a backslash, a newline): the listing
    // reports what is there, and it is the reader that refuses such a key, by name.
    for (const { key, file } of files) {
      if (!key.startsWith(prefix)) continue;
      const info = await infoOf(key, file);
      if (info) yield info;
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((k) => fs.rm(this.file(k), { force: true })));
    // Leave no empty directories behind under _index/ so listings stay small.
    const dirs = new Set(keys.map((k) => path.dirname(this.file(k))));
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
      let d = dir;
      while (d.startsWith(this.root) && d !== this.root) {
        try {
          await fs.rmdir(d);
        } catch {
          break;
        }
        d = path.dirname(d);
      }
    }
  }
}

/**
 * Collect the keys of the files under `dir`. Symbolic links are followed (a symlinked
 * fragment is a fragment, as it is to every other program reading the directory); a link
 * to a directory already being walked, or a dangling link, is left out.
 */
async function infoOf(key: string, file: string): Promise<ObjectInfo | undefined> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) return undefined;
    // Milliseconds: what copies that keep times (cp -p, rsync -a, tar, Node's fs.cp) preserve.
    return { key, size: st.size, etag: `${st.size}-${Math.trunc(st.mtimeMs)}`, lastModified: st.mtime };
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

async function walk(dir: string, keyPrefix: string, out: { key: string; file: string }[], ancestors: Set<string>): Promise<void> {
  let entries: import('node:fs').Dirent[];
  let id: string;
  try {
    const st = await fs.stat(dir);
    id = `${st.dev}:${st.ino}`;
    if (ancestors.has(id)) return; // a link cycle
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
    throw err;
  }
  ancestors.add(id);
  for (const e of entries) {
    const key = keyPrefix ? `${keyPrefix}/${e.name}` : e.name;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
      isDir = st?.isDirectory() ?? false;
      isFile = st?.isFile() ?? false;
    }
    if (isDir) await walk(path.join(dir, e.name), key, out, ancestors);
    else if (isFile) out.push({ key, file: path.join(dir, e.name) });
  }
  ancestors.delete(id);
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === code;
}
