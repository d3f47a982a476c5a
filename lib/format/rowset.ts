/**
 * The serialized row set stored in `bitmap.arrow`'s `bitmaps` column, byte-compatible with
 * Lance's `RowIdTreeMap::serialize_into`:
 *
 *   u32le entry_count, then per entry in ascending fragment id:
 *   u32le fragment_id, u32le byte_len, `byte_len` bytes of a portable 32-bit roaring bitmap.
 *
 * `byte_len == 0` means "every row of the fragment"; it is accepted when reading (Lance writes
 * it) and never written here.
 */
import roaring from './roaring.js';
import { IndexFileError } from '../errors.js';

const { RoaringBitmap32 } = roaring;
export type Bitmap = InstanceType<typeof RoaringBitmap32>;
export { RoaringBitmap32 };

/** Row offsets per fragment id. */
export type RowSet = Map<number, Bitmap>;

/** One already-serialized entry: the unit the k-way merge moves around without decoding. */
export interface RowSetEntry {
  fragmentId: number;
  bytes: Uint8Array;
}

/** Serialize entries (any order; empty bitmaps skipped) into the row-set format. */
export function encodeRowSet(set: RowSet): Uint8Array {
  const entries: RowSetEntry[] = [];
  for (const [fragmentId, bitmap] of set) {
    if (bitmap.size === 0) continue;
    entries.push({ fragmentId, bytes: bitmap.serialize('portable') });
  }
  entries.sort((a, b) => a.fragmentId - b.fragmentId);
  return encodeEntries(entries);
}

/** Serialize entries that are already sorted by fragment id and hold disjoint fragments. */
export function encodeEntries(entries: readonly RowSetEntry[]): Uint8Array {
  const out = new Uint8Array(encodedSize(entries));
  encodeEntriesInto(entries, out, 0);
  return out;
}

/** Bytes `encodeEntries(entries)` takes. */
export function encodedSize(entries: readonly RowSetEntry[]): number {
  let size = 4;
  for (const e of entries) size += 8 + e.bytes.byteLength;
  return size;
}

/**
 * Write `encodeEntries(entries)` into `out` at `pos` (which must have `encodedSize(entries)`
 * bytes free), so a writer can put a row set straight into a batch's buffer; returns the end.
 */
export function encodeEntriesInto(entries: readonly RowSetEntry[], out: Uint8Array, pos: number): number {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(pos, entries.length, true);
  pos += 4;
  let previous = -1;
  for (const e of entries) {
    if (e.fragmentId <= previous) {
      throw new IndexFileError(`row set entries out of order: fragment ${e.fragmentId} after ${previous}`);
    }
    previous = e.fragmentId;
    view.setUint32(pos, e.fragmentId, true);
    view.setUint32(pos + 4, e.bytes.byteLength, true);
    out.set(e.bytes, pos + 8);
    pos += 8 + e.bytes.byteLength;
  }
  return pos;
}

/**
 * Split serialized row-set bytes into entries without decoding roaring. The returned byte
 * arrays are views into `bytes`.
 */
export function splitEntries(bytes: Uint8Array, what = 'row set'): RowSetEntry[] {
  if (bytes.byteLength < 4) throw new IndexFileError(`${what}: truncated (${bytes.byteLength} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  const entries: RowSetEntry[] = [];
  let pos = 4;
  let previous = -1;
  for (let i = 0; i < count; i++) {
    if (pos + 8 > bytes.byteLength) throw new IndexFileError(`${what}: truncated at entry ${i}`);
    const fragmentId = view.getUint32(pos, true);
    const len = view.getUint32(pos + 4, true);
    pos += 8;
    if (pos + len > bytes.byteLength) throw new IndexFileError(`${what}: entry ${i} runs past the end`);
    if (fragmentId <= previous) throw new IndexFileError(`${what}: fragment ids not ascending at entry ${i}`);
    previous = fragmentId;
    entries.push({ fragmentId, bytes: bytes.subarray(pos, pos + len) });
    pos += len;
  }
  if (pos !== bytes.byteLength) throw new IndexFileError(`${what}: ${bytes.byteLength - pos} trailing bytes`);
  return entries;
}

/**
 * Decode a row set. `fragmentRows` resolves the "whole fragment" entries (byte_len 0) that
 * Lance may write; without it such an entry is an error.
 */
export function decodeRowSet(bytes: Uint8Array, fragmentRows?: (id: number) => number | undefined): RowSet {
  const out: RowSet = new Map();
  for (const e of splitEntries(bytes)) out.set(e.fragmentId, decodeEntry(e, fragmentRows));
  return out;
}

export function decodeEntry(e: RowSetEntry, fragmentRows?: (id: number) => number | undefined): Bitmap {
  if (e.bytes.byteLength === 0) {
    const rows = fragmentRows?.(e.fragmentId);
    if (rows === undefined) throw new IndexFileError(`row set: whole-fragment entry for unknown fragment ${e.fragmentId}`);
    return RoaringBitmap32.fromRange(0, rows);
  }
  try {
    return RoaringBitmap32.deserialize(Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength), 'portable');
  } catch (err) {
    throw new IndexFileError(`row set: corrupt roaring bitmap for fragment ${e.fragmentId}`, { cause: err });
  }
}
