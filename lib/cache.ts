/**
 * An in-process cache for repeated queries over the same datasets, the counterpart of the
 * index cache a LanceDB table handle keeps. It holds only what never changes once written:
 * manifests by version (versions are written create-only), fragment table batches by chunk
 * (chunks are written once), and opened index segments by file and checksum (index files are
 * written once, under a fresh directory each), with the batches already read and verified.
 * Every query still lists the versions, so a new commit is seen at once. Bounded by bytes
 * (least recently used goes first).
 *
 * It lives below the index kinds, the manifest and the query code, which all put into it.
 *
 * @example
 * const cache = new QueryCache();
 * for (const where of filters) await query('s3://sales/2026', where, { cache });
 */
import { LRUCache } from 'lru-cache';

/** Default bound: enough for the lookup tables and hot batches of many indexes. */
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

interface Held {
  value: unknown;
  bytes: number;
}

export class QueryCache {
  private readonly lru: LRUCache<string, Held>;

  constructor(options: { maxBytes?: number } = {}) {
    const maxSize = options.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!(Number.isSafeInteger(maxSize) && maxSize > 0)) throw new RangeError(`QueryCache maxBytes must be a positive integer, not ${maxSize}`);
    this.lru = new LRUCache<string, Held>({ maxSize, sizeCalculation: (h) => Math.max(1, h.bytes) });
  }

  get<T>(key: string): T | undefined {
    return this.lru.get(key)?.value as T | undefined;
  }

  /** Store (or re-store with a new size) `value`, accounted as `bytes`. Larger than the bound: not kept. */
  set(key: string, value: unknown, bytes: number): void {
    if (bytes > this.lru.maxSize) {
      this.lru.delete(key);
      return;
    }
    this.lru.set(key, { value, bytes });
  }

  /** Bytes held, as accounted. */
  get bytes(): number {
    return this.lru.calculatedSize;
  }
}
