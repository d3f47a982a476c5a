/**
 * The fragment table: every registered fragment's path, size, rows, fingerprint and store tag,
 * in Arrow IPC files under `_index/fragments/` that the manifest lists ("chunks"). A
 * registration writes one new chunk holding only what it adds; nothing already written is
 * rewritten (a compaction may later merge small chunks into one).
 *
 * A chunk holds the contiguous ids `[firstId, firstId + count)`, in id order, in record batches
 * of `batchRows` rows, so the batch holding an id is `(id - firstId) / batchRows`. The manifest
 * records each batch's CRC32C: a query that needs the paths of the ten fragments its answer
 * names reads the footer and those batches (verified), not the table.
 */
import { randomBytes } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { IndexFileError } from '../errors.js';
import { explainFailure, IpcFileReader, IpcFileWriter, makeBatch } from '../format/ipc.js';
import type { QueryCache } from '../cache.js';
import type { ObjectStore } from '../store/store.js';

export const FRAGMENTS_PREFIX = '_index/fragments/';
/** Rows per record batch: a batch of paths is a few KiB, the unit a query reads. */
export const FRAGMENT_BATCH_ROWS = 128;
/** Rows per chunk file: registrations larger than this write several chunks. */
export const FRAGMENT_CHUNK_ROWS = 16_384;
/** A chunk's footer (schema and at most 128 blocks) fits in this: the first read of a chunk. */
const CHUNK_TAIL_BYTES = 16 * 1024;

/** One registered fragment, as stored (statuses set later live in the manifest). */
export interface FragmentRow {
  id: number;
  path: string;
  size: number;
  rows: number;
  fingerprint: string;
  /** The store's tag when it was registered (S3 ETag; locally size and mtime). */
  etag?: string;
  /** Why it could not be registered for indexing, when that was known at registration. */
  failed?: string;
}

/** A chunk file as the manifest lists it. */
export interface FragmentChunkRef {
  key: string;
  size: number;
  crc32c: string;
  firstId: number;
  count: number;
  batchRows: number;
  /** CRC32C of each record batch's block, as little-endian u32s, base64. */
  batchCrc32c: string;
}

const FORMAT = 'serverless-scalar-index/fragments/1';

function schema(firstId: number, batchRows: number): arrow.Schema {
  return new arrow.Schema(
    [
      new arrow.Field('id', new arrow.Uint32(), false),
      new arrow.Field('path', new arrow.Utf8(), false),
      new arrow.Field('size', new arrow.Uint64(), false),
      new arrow.Field('rows', new arrow.Uint64(), false),
      new arrow.Field('fingerprint', new arrow.Utf8(), false),
      new arrow.Field('etag', new arrow.Utf8(), true),
      new arrow.Field('failed', new arrow.Utf8(), true),
    ],
    new Map([
      ['format', FORMAT],
      ['first_id', String(firstId)],
      ['batch_rows', String(batchRows)],
    ]),
  );
}

function utf8Data(values: readonly (string | undefined)[], nullable: boolean): arrow.Data {
  const enc = new TextEncoder();
  const parts = values.map((v) => (v === undefined ? new Uint8Array(0) : enc.encode(v)));
  const offsets = new Int32Array(values.length + 1);
  let total = 0;
  parts.forEach((p, i) => {
    total += p.byteLength;
    offsets[i + 1] = total;
  });
  const data = new Uint8Array(total);
  parts.forEach((p, i) => data.set(p, offsets[i]!));
  let nullCount = 0;
  let nullBitmap: Uint8Array | undefined;
  if (nullable) {
    nullBitmap = new Uint8Array(((values.length + 63) >> 6) << 3);
    values.forEach((v, i) => {
      if (v === undefined) nullCount++;
      else nullBitmap![i >> 3]! |= 1 << (i & 7);
    });
  }
  return arrow.makeData({ type: new arrow.Utf8(), length: values.length, nullCount, nullBitmap: nullCount > 0 ? nullBitmap : undefined, valueOffsets: offsets, data });
}

const u64 = (values: number[]) => arrow.makeData({ type: new arrow.Uint64(), length: values.length, nullCount: 0, data: BigUint64Array.from(values, (v) => BigInt(v)) });

/**
 * Write rows (contiguous ids, ascending) as chunk files of at most FRAGMENT_CHUNK_ROWS rows,
 * create-only under fresh names.
 */
export async function writeFragmentChunks(store: ObjectStore, rows: readonly FragmentRow[]): Promise<FragmentChunkRef[]> {
  const out: FragmentChunkRef[] = [];
  for (let i = 0; i < rows.length; i += FRAGMENT_CHUNK_ROWS) out.push(await writeChunk(store, rows.slice(i, i + FRAGMENT_CHUNK_ROWS)));
  return out;
}

async function writeChunk(store: ObjectStore, rows: readonly FragmentRow[]): Promise<FragmentChunkRef> {
  const firstId = rows[0]!.id;
  rows.forEach((r, i) => {
    if (r.id !== firstId + i) throw new IndexFileError(`internal: fragment rows not contiguous (${r.id} at position ${i} after ${firstId})`);
  });
  const key = `${FRAGMENTS_PREFIX}${Date.now().toString(36)}-${randomBytes(6).toString('hex')}.arrow`;
  const s = schema(firstId, FRAGMENT_BATCH_ROWS);
  const w = await IpcFileWriter.create(store, key, s);
  try {
    for (let i = 0; i < rows.length; i += FRAGMENT_BATCH_ROWS) {
      const b = rows.slice(i, i + FRAGMENT_BATCH_ROWS);
      await w.write(
        makeBatch(s, [
          arrow.makeData({ type: new arrow.Uint32(), length: b.length, nullCount: 0, data: Uint32Array.from(b, (r) => r.id) }),
          utf8Data(b.map((r) => r.path), false),
          u64(b.map((r) => r.size)),
          u64(b.map((r) => r.rows)),
          utf8Data(b.map((r) => r.fingerprint), false),
          utf8Data(b.map((r) => r.etag), true),
          utf8Data(b.map((r) => r.failed), true),
        ]),
      );
    }
    const written = await w.close();
    const crcs = Uint32Array.from(written.blocks, (b) => b.crc32c);
    return {
      key,
      size: written.size,
      crc32c: written.crc32c,
      firstId,
      count: rows.length,
      batchRows: FRAGMENT_BATCH_ROWS,
      batchCrc32c: Buffer.from(crcs.buffer, crcs.byteOffset, crcs.byteLength).toString('base64'),
    };
  } catch (err) {
    await w.abort().catch(() => undefined);
    throw err;
  }
}

/** A chunk's batch checksums, decoded (and checked against its row count). */
function batchCrcs(ref: FragmentChunkRef, where: string): Uint32Array {
  const bytes = Buffer.from(ref.batchCrc32c, 'base64');
  const expected = Math.ceil(ref.count / ref.batchRows);
  if (bytes.byteLength !== 4 * expected) throw new IndexFileError(`manifest lists ${bytes.byteLength / 4} batch checksums for ${where}, which holds ${expected} batches`);
  return new Uint32Array(new Uint8Array(bytes).buffer);
}

/** Decode one batch of a chunk into rows, checking ids are the ones the manifest says. */
function rowsOfBatch(batch: arrow.RecordBatch, firstId: number, where: string): FragmentRow[] {
  const col = (i: number) => batch.getChildAt(i);
  const ids = col(0)?.toArray() as Uint32Array | undefined;
  if (!ids || batch.schema.fields.map((f) => f.name).join(',') !== 'id,path,size,rows,fingerprint,etag,failed') throw new IndexFileError(`${where} is not a fragment table`);
  const out: FragmentRow[] = [];
  const [path, size, rows, fingerprint, etag, failed] = [1, 2, 3, 4, 5, 6].map(col);
  for (let i = 0; i < batch.numRows; i++) {
    const id = ids[i]!;
    if (id !== firstId + i) throw new IndexFileError(`${where}: row ${i} of a batch holds fragment ${id}, expected ${firstId + i}`);
    const e = etag!.get(i) as string | null;
    const f = failed!.get(i) as string | null;
    out.push({
      id,
      path: path!.get(i) as string,
      size: Number(size!.get(i) as bigint),
      rows: Number(rows!.get(i) as bigint),
      fingerprint: fingerprint!.get(i) as string,
      ...(e !== null && { etag: e }),
      ...(f !== null && { failed: f }),
    });
  }
  return out;
}

/** Every row of a chunk, verified against its whole-file checksum. */
export async function readChunk(store: ObjectStore, ref: FragmentChunkRef): Promise<FragmentRow[]> {
  const where = store.describe(ref.key);
  const file = await IpcFileReader.open(store, ref.key, { size: ref.size, crc32c: ref.crc32c, tailBytes: CHUNK_TAIL_BYTES });
  const out: FragmentRow[] = [];
  try {
    let first = ref.firstId;
    for await (const b of file.batches()) {
      out.push(...rowsOfBatch(b, first, where));
      first += b.numRows;
    }
  } catch (err) {
    throw await explainFailure(err, [file]);
  }
  if (out.length !== ref.count) throw new IndexFileError(`${where} holds ${out.length} fragments, the manifest says ${ref.count}`);
  return out;
}

/**
 * The rows of `ids` (all within the chunk): the footer and only the batches holding them,
 * each verified against its checksum in the manifest.
 */
export async function readChunkRows(store: ObjectStore, ref: FragmentChunkRef, ids: readonly number[], cache?: QueryCache): Promise<FragmentRow[]> {
  const where = store.describe(ref.key);
  const cacheKey = (b: number) => `fragments|${where}|${ref.crc32c}|${b}`;
  let file: Promise<IpcFileReader> | undefined;
  const open = () =>
    (file ??= IpcFileReader.open(store, ref.key, { size: ref.size, crc32c: ref.crc32c, tailBytes: CHUNK_TAIL_BYTES }).then((f) => {
      f.expectBatchChecksums(batchCrcs(ref, where));
      return f;
    }));
  const batches = [...new Set(ids.map((id) => Math.floor((id - ref.firstId) / ref.batchRows)))].sort((a, b) => a - b);
  const wanted = new Set(ids);
  const rows = await Promise.all(
    batches.map(async (b) => {
      let all = cache?.get<FragmentRow[]>(cacheKey(b));
      if (!all) {
        const batch = await (await open()).readBatch(b);
        const expected = Math.min(ref.batchRows, ref.count - b * ref.batchRows);
        if (batch.numRows !== expected) throw new IndexFileError(`${where}: batch ${b} holds ${batch.numRows} fragments, expected ${expected}`);
        all = rowsOfBatch(batch, ref.firstId + b * ref.batchRows, where);
        cache?.set(cacheKey(b), all, all.reduce((n, r) => n + 96 + 2 * (r.path.length + r.fingerprint.length + (r.etag?.length ?? 0)), 0));
      }
      return all.filter((r) => wanted.has(r.id));
    }),
  );
  return rows.flat();
}

/** The chunk holding `id`, by binary search over chunks sorted by firstId. */
export function chunkOf(chunks: readonly FragmentChunkRef[], id: number): FragmentChunkRef | undefined {
  let lo = 0;
  let hi = chunks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const c = chunks[mid]!;
    if (c.firstId + c.count <= id) lo = mid + 1;
    else hi = mid;
  }
  const c = chunks[lo];
  return c && c.firstId <= id ? c : undefined;
}
