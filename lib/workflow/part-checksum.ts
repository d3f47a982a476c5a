/**
 * A part file's checksum record, `<part key>.crc32c` beside the part: its size and CRC32C as
 * build-part wrote it. A part cannot hold its own whole-file checksum, and the merge must not
 * trust anything inside a part before verifying it, so the record lives outside the part; it
 * is written before the part is published, so every visible part has one.
 */
import { AlreadyExistsError, IndexFileError, NotFoundError } from '../errors.js';
import { isEncodedCrc32c } from '../format/crc32c.js';
import type { ObjectStore } from '../store/store.js';
import { partChecksumKey } from './types.js';

/** A part's size and CRC32C, as build-part recorded them in `<part>.crc32c`. */
export interface PartChecksum {
  size: number;
  crc32c: string;
}

/**
 * Record a part's checksum, create-only, before the part is published. A retried worker
 * writes the same bytes (training is deterministic), so finding a record is fine when it
 * matches; one that differs means the part's inputs changed or the record is damaged.
 */
export async function recordPartChecksum(store: ObjectStore, key: string, file: PartChecksum): Promise<void> {
  const sumKey = partChecksumKey(key);
  const body: PartChecksum = { size: file.size, crc32c: file.crc32c };
  try {
    await store.put(sumKey, new TextEncoder().encode(`${JSON.stringify(body)}\n`), { createOnly: true });
  } catch (err) {
    if (!(err instanceof AlreadyExistsError)) throw err;
    const prior = await readPartChecksum(store, key);
    if (prior.size !== body.size || prior.crc32c !== body.crc32c) {
      throw new IndexFileError(
        `part ${store.describe(key)} was already recorded as ${prior.size} bytes with CRC32C ${prior.crc32c}; this attempt wrote ${body.size} bytes with ${body.crc32c}`,
      );
    }
  }
}

/**
 * Read the checksum record of the part at `key`.
 *
 * @throws IndexFileError naming the record when it is missing or malformed
 */
export async function readPartChecksum(store: ObjectStore, key: string): Promise<PartChecksum> {
  const sumKey = partChecksumKey(key);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await store.read(sumKey));
  } catch (err) {
    if (err instanceof NotFoundError) throw new IndexFileError(`part ${store.describe(key)} has no checksum record (${store.describe(sumKey)} is missing)`);
    if (err instanceof TypeError) throw new IndexFileError(`checksum record ${store.describe(sumKey)} is not UTF-8`, { cause: err });
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new IndexFileError(`checksum record ${store.describe(sumKey)} is not valid JSON`, { cause: err });
  }
  const r = json as Partial<PartChecksum> | null;
  if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r.size) || r.size! < 0 || typeof r.crc32c !== 'string' || !isEncodedCrc32c(r.crc32c)) {
    throw new IndexFileError(`checksum record ${store.describe(sumKey)} is malformed: ${text.slice(0, 100)}`);
  }
  return { size: r.size!, crc32c: r.crc32c };
}
