/**
 * A store that counts what passes through it to another: reads (calls and bytes) and HEADs.
 * Scans report their I/O with it; tests and benchmarks compare it between strategies.
 */
import type { ObjectInfo, ObjectStore, ObjectWriter, WriteOptions } from './store.js';

export interface ReadCounts {
  /** Calls to `read` (each is one request on S3, or one ranged request per 8 MiB of a whole-object read). */
  reads: number;
  /** Bytes those reads returned. */
  bytes: number;
  /** Calls to `head`. */
  heads: number;
}

export class CountingStore implements ObjectStore {
  readonly counts: ReadCounts = { reads: 0, bytes: 0, heads: 0 };

  constructor(readonly inner: ObjectStore) {}

  describe(key: string): string {
    return this.inner.describe(key);
  }
  head(key: string): Promise<ObjectInfo | undefined> {
    this.counts.heads++;
    return this.inner.head(key);
  }
  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    this.counts.reads++;
    const bytes = await this.inner.read(key, range);
    this.counts.bytes += bytes.byteLength;
    return bytes;
  }
  put(key: string, body: Uint8Array, options?: WriteOptions): Promise<ObjectInfo> {
    return this.inner.put(key, body, options);
  }
  openWriter(key: string, options?: WriteOptions): Promise<ObjectWriter> {
    return this.inner.openWriter(key, options);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }
  deleteMany(keys: readonly string[]): Promise<void> {
    return this.inner.deleteMany(keys);
  }
}
