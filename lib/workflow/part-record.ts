/**
 * A part's record, `_index/builds/<buildId>/parts/<index dir>/<groupId>.json`: what build-part
 * wrote for one index and one group (each file with its size and CRC32C, computed as it was
 * written), the fragments the part covers, and the fragments it left out as bad. Written
 * create-only after the part's files, so a part with a record is complete; the merge trusts
 * nothing in a part before verifying it against its record. The record carries a content
 * checksum (format.md) like the manifest and the plan: a flipped file name or size is the
 * record's error, named as such, not a mystery about the part.
 */
import { IndexFileError, NotFoundError } from '../errors.js';
import { isEncodedCrc32c } from '../format/crc32c.js';
import { verifyContentChecksum, withContentChecksum } from '../format/json-checksum.js';
import type { ObjectStore } from '../store/store.js';
import type { PartRecord } from './types.js';

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * Read and check a part record.
 *
 * @throws IndexFileError naming the record when it is missing or malformed
 */
export async function readPartRecord(store: ObjectStore, key: string): Promise<PartRecord> {
  const where = store.describe(key);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await store.read(key)));
  } catch (err) {
    if (err instanceof NotFoundError) throw new IndexFileError(`part record ${where} is missing`);
    throw new IndexFileError(`part record ${where} is not valid JSON`, { cause: err });
  }
  verifyContentChecksum(json, `part record ${where}`);
  const r = json as Partial<PartRecord> | null;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    isCount(r.groupId) &&
    isCount(r.rows) &&
    Array.isArray(r.files) &&
    r.files.every((f) => typeof f?.name === 'string' && typeof f.key === 'string' && isCount(f.size) && typeof f.crc32c === 'string' && isEncodedCrc32c(f.crc32c)) &&
    Array.isArray(r.fragmentIds) &&
    r.fragmentIds.every(isCount) &&
    Array.isArray(r.failed) &&
    r.failed.every((f) => isCount(f?.id) && typeof f.path === 'string' && typeof f.reason === 'string');
  if (!ok) throw new IndexFileError(`part record ${where} is malformed`);
  const { crc32c: _checksum, ...record } = r as PartRecord & { crc32c: string };
  return record;
}

/** A record's bytes as written: JSON with its content checksum. */
export function encodePartRecord(record: PartRecord): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(withContentChecksum(record))}\n`);
}
