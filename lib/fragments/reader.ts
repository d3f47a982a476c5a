/**
 * Reading fragment files (Arrow IPC file `.arrow`/`.feather`, stream `.arrows`, and Parquet
 * `.parquet`) batch by batch. Index trainers get the raw `arrow.Data` of one column per batch
 * and walk its typed arrays themselves; nothing here creates per-row objects.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { FragmentReadError, MissingColumnError } from '../errors.js';
import { checkIpcMetadata } from '../format/ipc-metadata.js';
import type { ObjectStore } from '../store/store.js';
import { decodeParquet, hasParquetMagic } from './parquet.js';

export { FRAGMENT_EXTENSIONS, isFragmentKey } from './keys.js';

export interface LoadedFragment {
  key: string;
  size: number;
  fingerprint: string;
  schema: arrow.Schema;
  batches: arrow.RecordBatch[];
  rows: number;
}

/** Content fingerprint recorded at registration and checked whenever the fragment is read. */
export function fingerprintBytes(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}`;
}

/**
 * Read a whole fragment and decode its batches. Any failure, including a truncated file or
 * a reader that yields fewer rows than the batch headers promise, becomes a
 * FragmentReadError naming the file.
 */
export async function loadFragment(store: ObjectStore, key: string): Promise<LoadedFragment> {
  const where = store.describe(key);
  let bytes: Uint8Array;
  try {
    bytes = await store.read(key);
  } catch (err) {
    throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
  }
  return decodeFragment(key, where, bytes);
}

/**
 * Decode a whole fragment held in memory. The format comes from the content (Parquet's `PAR1`
 * magic) and the name: a `.parquet` key must hold Parquet, anything else is read as Arrow IPC.
 *
 * @throws FragmentReadError naming `where` when the bytes are not a readable fragment
 */
export function decodeFragment(key: string, where: string, bytes: Uint8Array): LoadedFragment {
  const fail = (why: string, cause?: unknown) => new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
  if (hasParquetMagic(bytes) || key.toLowerCase().endsWith('.parquet')) {
    const { schema, batches, decodedBytes } = decodeParquet(where, bytes);
    try {
      for (const batch of batches) checkBatch(batch, decodedBytes);
    } catch (err) {
      throw fail((err as Error).message ?? String(err), err);
    }
    return loaded(key, bytes, schema, batches);
  }
  const isFileFormat = bytes.byteLength >= 6 && String.fromCharCode(...bytes.subarray(0, 6)) === 'ARROW1';
  if (isFileFormat) {
    if (bytes.byteLength < 22 || String.fromCharCode(...bytes.subarray(bytes.byteLength - 6)) !== 'ARROW1') {
      throw fail('missing Arrow file footer');
    }
  } else if (key.toLowerCase().endsWith('.arrow') || key.toLowerCase().endsWith('.feather')) {
    // Files named .arrow are sometimes streams; accept them, but only if they look like one.
    if (bytes.byteLength < 8) throw fail('not an Arrow file');
  }
  const batches: arrow.RecordBatch[] = [];
  let schema: arrow.Schema;
  try {
    // apache-arrow trusts IPC metadata; damaged metadata can make it loop forever.
    checkIpcMetadata(bytes);
    const reader = arrow.RecordBatchReader.from(bytes);
    reader.open();
    schema = reader.schema;
    if (!schema) throw new Error('no schema');
    const take = (batch: arrow.RecordBatch) => {
      checkBatch(batch, bytes.byteLength);
      batches.push(batch);
    };
    if (reader.isFile()) {
      // By index, as the footer lists them: the file reader's own iteration re-reads a block
      // that holds anything but a record batch, forever.
      for (let i = 0; i < reader.numRecordBatches; i++) {
        const batch = reader.readRecordBatch(i);
        if (!batch) throw new Error(`record batch ${i} is missing`);
        take(batch);
      }
    } else {
      for (const batch of reader) take(batch);
    }
  } catch (err) {
    if (err instanceof FragmentReadError) throw err;
    throw fail((err as Error).message ?? String(err), err);
  }
  return loaded(key, bytes, schema, batches);
}

function loaded(key: string, bytes: Uint8Array, schema: arrow.Schema, batches: arrow.RecordBatch[]): LoadedFragment {
  const rows = batches.reduce((n, b) => n + b.numRows, 0);
  return { key, size: bytes.byteLength, fingerprint: fingerprintBytes(bytes), schema, batches, rows };
}

/**
 * Arrow JS trusts buffer lengths and offsets; check them so a damaged file fails here, not
 * later (an out-of-order offset once sent a trainer into an endless loop), and so that what
 * gets indexed is valid Arrow data: offsets in order and in bounds, string values valid
 * UTF-8, dictionary codes inside the dictionary. `bufferBytes` bounds every value offset: the
 * size of the buffer the batch's data lives in.
 */
function checkBatch(batch: arrow.RecordBatch, bufferBytes: number): void {
  batch.data.children.forEach((child, i) => {
    try {
      checkData(child, batch.numRows, bufferBytes);
    } catch (err) {
      throw new Error(`column '${batch.schema.fields[i]?.name}': ${(err as Error).message}`);
    }
  });
}

function checkData(data: arrow.Data, expectedLength: number, bufferBytes: number): void {
  const n = data.length;
  const off = data.offset;
  if (n !== expectedLength) throw new Error(`column length ${n} != batch length ${expectedLength}`);
  const t = data.type;
  const D = arrow.DataType;
  if (data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 && data.nullBitmap.length * 8 < off + n) {
    throw new Error('validity bitmap too short');
  }
  const v = data.values as ArrayLike<number | bigint> | undefined;
  if (D.isUtf8(t) || D.isLargeUtf8(t) || D.isBinary(t) || D.isLargeBinary(t)) {
    if (n === 0) return;
    const offsets = data.valueOffsets as Int32Array | BigInt64Array | undefined;
    if (!offsets || offsets.length < off + n + 1) throw new Error('offsets buffer too short');
    const bytes = (data.values as Uint8Array | undefined) ?? new Uint8Array(0);
    let prev = Number(offsets[off]!);
    if (prev < 0) throw new Error('value offsets out of bounds');
    for (let i = off + 1; i <= off + n; i++) {
      const o = Number(offsets[i]!);
      if (o < prev) throw new Error(`value offsets out of order at row ${i - off - 1}`);
      prev = o;
    }
    if (prev > bytes.length || prev > bufferBytes) throw new Error('value offsets out of bounds');
    if (D.isUtf8(t) || D.isLargeUtf8(t)) checkUtf8(data, offsets, bytes);
  } else if (D.isBool(t)) {
    if (n > 0 && (!v || v.length * 8 < off + n)) throw new Error('values buffer too short');
  } else if (D.isDictionary(t)) {
    const dict = data.dictionary;
    if (!dict) throw new Error('dictionary missing');
    for (const d of dict.data) checkData(d, d.length, bufferBytes);
    if (n > 0 && (!v || v.length < off + n)) throw new Error('dictionary codes buffer too short');
    const nulls = data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
    for (let i = off; i < off + n; i++) {
      if (nulls && ((nulls[i >> 3]! >> (i & 7)) & 1) === 0) continue;
      const code = Number(v![i]!);
      if (!(code >= 0 && code < dict.length)) throw new Error(`dictionary code ${code} at row ${i - off} is outside the dictionary of ${dict.length} entries`);
    }
  } else if (isFixedWidth(t)) {
    if (n > 0 && (!v || v.length < (off + n) * data.stride)) throw new Error('values buffer too short');
  }
}

/**
 * Every non-null value of a string column must be valid UTF-8 (the Arrow spec requires it,
 * and strings are indexed and compared by their bytes). Fast path: the whole value range is
 * valid and no value starts inside a character; otherwise each non-null value is checked.
 */
function checkUtf8(data: arrow.Data, offsets: Int32Array | BigInt64Array, bytes: Uint8Array): void {
  const off = data.offset;
  const n = data.length;
  const start = Number(offsets[off]!);
  const end = Number(offsets[off + n]!);
  if (isUtf8(bytes.subarray(start, end))) {
    let split = false;
    for (let i = off + 1; i < off + n && !split; i++) {
      const o = Number(offsets[i]!);
      if (o < end && (bytes[o]! & 0xc0) === 0x80) split = true;
    }
    if (!split) return;
  }
  const nulls = data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
  for (let i = off; i < off + n; i++) {
    if (nulls && ((nulls[i >> 3]! >> (i & 7)) & 1) === 0) continue;
    if (!isUtf8(bytes.subarray(Number(offsets[i]!), Number(offsets[i + 1]!)))) throw new Error(`invalid UTF-8 in row ${i - off}`);
  }
}

function isFixedWidth(t: arrow.DataType): boolean {
  const D = arrow.DataType;
  return D.isInt(t) || D.isFloat(t) || D.isDate(t) || D.isTimestamp(t) || D.isTime(t);
}

/** Find a column by name, or throw MissingColumnError naming the fragment and the columns it has. */
export function columnIndex(schema: arrow.Schema, column: string, where: string): number {
  const i = schema.fields.findIndex((f) => f.name === column);
  if (i < 0) {
    const have = schema.fields.map((f) => f.name).join(', ') || '(none)';
    throw new MissingColumnError(`column '${column}' not found in fragment ${where} (columns: ${have})`);
  }
  return i;
}
