/**
 * The one I/O contract every index, the manifest and the workflow go through. Keys are
 * `/`-separated paths relative to the dataset root (`data/a.arrow`, `_index/versions/…`).
 * Adapters: `local.ts` (a directory); an S3 adapter implements the same interface.
 */
import { InvalidPathError } from '../errors.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** Changes whenever the bytes change (S3 ETag; local: mtime+size based). */
  etag?: string;
  /** When the object was last written (S3 LastModified; local: mtime), when the store knows. */
  lastModified?: Date;
}

export interface WriteOptions {
  /** Fail with AlreadyExistsError instead of replacing an existing object. */
  createOnly?: boolean;
}

/** A streaming write: chunks are accepted with backpressure; nothing is visible before close. */
export interface ObjectWriter {
  write(chunk: Uint8Array): Promise<void>;
  /** Publish the object atomically. Throws AlreadyExistsError for a taken create-only key. */
  close(): Promise<ObjectInfo>;
  /** Discard everything written; the key is left untouched. */
  abort(): Promise<void>;
}

export interface ObjectStore {
  /** Human-readable URI of a key, for messages (`/data/x/data/a.arrow`, `s3://b/p/data/a.arrow`). */
  describe(key: string): string;
  /** Size and version tag, or undefined when absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Whole object, or bytes [start, end) of it. Throws NotFoundError when absent. */
  read(key: string, range?: { start: number; end: number }): Promise<Uint8Array>;
  put(key: string, body: Uint8Array, options?: WriteOptions): Promise<ObjectInfo>;
  openWriter(key: string, options?: WriteOptions): Promise<ObjectWriter>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Delete keys; absent keys are not an error. */
  deleteMany(keys: readonly string[]): Promise<void>;
}

/**
 * Validate a dataset-relative key: no absolute paths, no `..` or `.` segments, no empty
 * segments, no backslashes or control characters. Hostile paths never reach a store.
 */
export function checkKey(key: string): string {
  const bad = (why: string) => new InvalidPathError(`invalid object key ${JSON.stringify(key)}: ${why}`);
  if (key.length === 0) throw bad('empty');
  if (key.length > 1024) throw bad('longer than 1024 characters');
  if (key.startsWith('/')) throw bad('absolute paths are not allowed');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) throw bad('control characters and backslashes are not allowed');
  for (const segment of key.split('/')) {
    if (segment === '..' || segment === '.') throw bad(`'${segment}' segments are not allowed`);
    if (segment === '') throw bad('empty path segments are not allowed');
  }
  return key;
}

/** Collect an async iterable of objects into an array. */
export async function listAll(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of store.list(prefix)) out.push(o);
  return out;
}
