/**
 * Reading fragment files (Arrow IPC file `.arrow`/`.feather`, stream `.arrows`, and Parquet
 * `.parquet`) batch by batch. Index trainers get the raw `arrow.Data` of one column per batch
 * and walk its typed arrays themselves; nothing here creates per-row objects.
 */
import { createHash } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { ColumnTypeError, FragmentReadError, MissingColumnError } from '../errors.js';
import { checkIpcMetadata } from '../format/ipc-metadata.js';
import type { ObjectStore } from '../store/store.js';
import { arrowFileFingerprintOf } from './arrow-columns.js';
import { checkBatch } from './check.js';
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

/**
 * Fingerprint recorded at registration and checked whenever the fragment is read. An Arrow
 * IPC file's covers its size and footer (`arrowfile:`), so a build can check it after reading
 * only the columns it needs; any other fragment's is a hash of its whole content (`sha256:`).
 */
export function fingerprintBytes(bytes: Uint8Array): string {
  return arrowFileFingerprintOf(bytes) ?? `sha256:${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}`;
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
    const twice = duplicateName(schema);
    if (twice) throw new FragmentReadError(`fragment ${where} has ${twice.count} columns named '${twice.name}'; column names must be unique`);
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
    // apache-arrow cannot read such a file reliably (two columns of different types under one
    // name fail inside it with a TypeError), and no index could say which column it describes.
    const twice = duplicateName(schema);
    if (twice) throw new FragmentReadError(`fragment ${where} has ${twice.count} columns named '${twice.name}'; column names must be unique`);
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

/** The first column name a schema holds more than once, and how often. */
export function duplicateName(schema: arrow.Schema): { name: string; count: number } | undefined {
  const counts = new Map<string, number>();
  for (const f of schema.fields) counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
  for (const [name, count] of counts) if (count > 1) return { name, count };
  return undefined;
}

function loaded(key: string, bytes: Uint8Array, schema: arrow.Schema, batches: arrow.RecordBatch[]): LoadedFragment {
  const rows = batches.reduce((n, b) => n + b.numRows, 0);
  return { key, size: bytes.byteLength, fingerprint: fingerprintBytes(bytes), schema, batches, rows };
}

/**
 * Find a column by name, or throw MissingColumnError naming the fragment and the columns it
 * has. A name that appears more than once is ambiguous (which one would the index describe?)
 * and is refused with a ColumnTypeError.
 */
export function columnIndex(schema: arrow.Schema, column: string, where: string): number {
  const i = schema.fields.findIndex((f) => f.name === column);
  if (i < 0) {
    const have = schema.fields.map((f) => f.name).join(', ') || '(none)';
    throw new MissingColumnError(`column '${column}' not found in fragment ${where} (columns: ${have})`);
  }
  const count = schema.fields.reduce((n, f) => n + (f.name === column ? 1 : 0), 0);
  if (count > 1) throw new ColumnTypeError(`column '${column}' appears ${count} times in fragment ${where}; a column to index must have a unique name`);
  return i;
}
