/**
 * Column projection for Arrow IPC files: read the footer, then each record batch's metadata
 * and only the body bytes of the wanted columns. A build-part step indexing one column of a
 * four-column fragment reads a quarter of it, and never decodes or checks the others.
 *
 * Only files whose every top-level column is a flat type (one field node, two or three
 * buffers: integers, floats, bools, dates, times, timestamps, decimals, strings, binaries) and
 * whose batches are uncompressed are projected; `loadArrowFileColumns` returns `undefined`
 * for anything else and the caller reads the whole file. The footer fingerprint
 * (`arrowFileFingerprint`) is what makes this safe to use after registration: it covers the
 * file's size, schema and batch layout, which registration recorded from the whole file.
 */
import { createHash } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { VectorLoader } from 'apache-arrow/visitor/vectorloader';
import { FragmentReadError } from '../errors.js';
import { checkFooterMetadata, checkMessageMetadata, MESSAGE_RECORD_BATCH } from '../format/ipc-metadata.js';
import type { ObjectStore } from '../store/store.js';
import { checkBatch } from './check.js';

const MAGIC = 'ARROW1';
/**
 * A first read from the end that fits a typical footer (a few hundred bytes per column and 24
 * per batch) and stays a small share of the file: about 1/256 of it, between 2 KiB and
 * 16 KiB. A larger footer costs one more request. `FOOTER_READ_DEFAULTS.tailBytes` is the
 * fixed 64 KiB for callers that care only about requests.
 *
 * @example
 * await readFragmentFooter(store, key, size, { tailBytes: footerTailBytes(size) }); // lib/fragments/footer.ts
 */
export function footerTailBytes(size: number): number {
  return Math.min(16 * 1024, Math.max(2 * 1024, Math.floor(size / 256)));
}

/** Batches whose metadata and column bytes are fetched at once. */
const CONCURRENCY = 8;
/** A file this small is fetched in one request (request count matters more than bytes on S3). */
const WHOLE_FILE_BYTES = 4 * 1024 * 1024;
/** Wanted columns of one batch whose bytes are this close are fetched in one request. */
const COALESCE_GAP = 1024 * 1024;

/** Where an Arrow file's footer is, given the file's last bytes; undefined when it is not an Arrow file. */
function footerRange(tail: Uint8Array, size: number): { start: number; end: number } | undefined {
  const n = tail.byteLength;
  if (size < 22 || n < 10 || String.fromCharCode(...tail.subarray(n - 6)) !== MAGIC) return undefined;
  const length = new DataView(tail.buffer, tail.byteOffset, n).getInt32(n - 10, true);
  const start = size - 10 - length;
  if (!(length > 0 && start >= 8)) return undefined;
  return { start, end: size - 10 };
}

/**
 * The fingerprint of an Arrow IPC file: its size and a hash of its footer (schema, and the
 * offset and length of every batch). Registration computes it from the whole file; a
 * projected read recomputes it from the footer alone. A file rewritten with a different size,
 * schema or batch layout no longer matches; one rewritten byte for byte in the same layout
 * does (fragments are immutable: contract.md).
 */
export function arrowFileFingerprint(size: number, footerWithTrailer: Uint8Array): string {
  const h = createHash('sha256').update(`${size}\n`).update(footerWithTrailer).digest('hex');
  return `arrowfile:${size}:${h.slice(0, 32)}`;
}

/** The fingerprint of a whole Arrow file in memory, or undefined when it has no valid footer. */
export function arrowFileFingerprintOf(bytes: Uint8Array): string | undefined {
  if (bytes.byteLength < 22 || String.fromCharCode(...bytes.subarray(0, 6)) !== MAGIC) return undefined;
  const r = footerRange(bytes.subarray(Math.max(0, bytes.byteLength - 10)), bytes.byteLength);
  return r ? arrowFileFingerprint(bytes.byteLength, bytes.subarray(r.start)) : undefined;
}

/** Buffers each flat type has in a record batch; undefined for types this reader does not project. */
function flatBufferCount(type: arrow.DataType): number | undefined {
  const D = arrow.DataType;
  if (D.isUtf8(type) || D.isLargeUtf8(type) || D.isBinary(type) || D.isLargeBinary(type)) return 3;
  if (D.isInt(type) || D.isFloat(type) || D.isBool(type) || D.isDate(type) || D.isTime(type) || D.isTimestamp(type) || D.isDecimal(type) || D.isFixedSizeBinary(type)) {
    return 2;
  }
  return undefined;
}

export interface ProjectedFragment {
  size: number;
  fingerprint: string;
  /** The file's whole schema (for type checks and messages). */
  schema: arrow.Schema;
  /** Record batches holding only the wanted columns that exist, in file order. */
  batches: arrow.RecordBatch[];
  rows: number;
}


/**
 * Read only `columns` of the Arrow IPC file `key`, whose registered size is `size`.
 * Columns the file lacks are left out (the caller reports them against `schema`).
 *
 * @returns undefined when the file cannot be projected (not an Arrow file at that size,
 *   dictionary or nested columns, compressed batches): read it whole instead
 * @throws FragmentReadError naming the file when its metadata or buffers are out of bounds
 */
export async function loadArrowFileColumns(store: ObjectStore, key: string, size: number, columns: readonly string[]): Promise<ProjectedFragment | undefined> {
  try {
    const file = await ArrowFileColumns.open(store, key, size, columns);
    if (!file) return undefined;
    const batches: arrow.RecordBatch[] = new Array(file.batchCount);
    let compressed = false;
    for (let k = 0; k < file.batchCount; k += CONCURRENCY) {
      await Promise.all(
        Array.from({ length: Math.min(CONCURRENCY, file.batchCount - k) }, async (_, j) => {
          const batch = await file.loadBatch(k + j);
          if (batch) batches[k + j] = batch;
          else compressed = true;
        }),
      );
      if (compressed) return undefined;
    }
    const rows = batches.reduce((n, b) => n + b.numRows, 0);
    return { size, fingerprint: file.fingerprint, schema: file.schema, batches, rows };
  } catch (err) {
    // Shorter than its registered size: not this file any more. The whole-file read that
    // follows reports it (its fingerprint no longer matches).
    if (err instanceof ShortRead) return undefined;
    throw err;
  }
}

/** The store had fewer bytes than the registered size promised. */
class ShortRead extends Error {}

/**
 * True when a projected read failed because the file is shorter than the size it was opened
 * at: it is not the registered file any more, and a whole-file read (whose fingerprint check
 * names it) should follow.
 */
export function isShortRead(err: unknown): boolean {
  return err instanceof ShortRead;
}

interface BatchHeader {
  header: RecordBatchHeader;
  bodyStart: number;
}

/**
 * An opened Arrow IPC file for reading some columns of some batches: the footer is read at
 * open, each batch's metadata when it is first asked for (one small ranged read; the row count
 * of a batch is only in its metadata), and a batch's wanted column bytes when it is loaded.
 * `loadArrowFileColumns` reads every batch through it; a scan reads only the metadata up to
 * its last candidate row and the bodies of the batches holding candidates.
 */
export class ArrowFileColumns {
  private constructor(
    private readonly read: (start: number, end: number) => Promise<Uint8Array>,
    private readonly where: string,
    readonly size: number,
    /** Size and footer hash (`arrowFileFingerprint`), comparable with the registered one. */
    readonly fingerprint: string,
    /** The file's whole schema (for type checks and messages). */
    readonly schema: arrow.Schema,
    /** The wanted columns the file has, in file order. */
    readonly projected: arrow.Schema,
    private readonly footerVersion: arrow.MetadataVersion,
    private readonly blocks: readonly { offset: number; metaDataLength: number; bodyLength: number }[],
    private readonly bodiesEnd: number,
    private readonly wanted: readonly number[],
    private readonly firstBuffer: readonly number[],
    private readonly bufferCount: number,
    /** Batch metadata by batch, read once (shared with `select`ed copies). */
    private readonly headers = new Map<number, Promise<BatchHeader>>(),
  ) {}

  /**
   * The same file, reading `columns` instead (names the file lacks are left out). Batch
   * metadata already read is shared, not read again.
   */
  select(columns: readonly string[]): ArrowFileColumns {
    const wanted = [...new Set(columns)]
      .map((name) => this.schema.fields.findIndex((f) => f.name === name))
      .filter((i) => i >= 0)
      .sort((a, b) => a - b);
    const projected = new arrow.Schema(wanted.map((i) => this.schema.fields[i]!), this.schema.metadata);
    return new ArrowFileColumns(this.read, this.where, this.size, this.fingerprint, this.schema, projected, this.footerVersion, this.blocks, this.bodiesEnd, wanted, this.firstBuffer, this.bufferCount, this.headers);
  }

  /** Record batches the footer lists. */
  get batchCount(): number {
    return this.blocks.length;
  }

  /**
   * Open `key` at its registered `size` for reading `columns` (names the file lacks are left
   * out). A file of at most 4 MiB is fetched in one read and served from memory.
   *
   * @returns undefined when the file cannot be projected (not an Arrow file at that size,
   *   dictionary or nested columns): read it whole instead
   * @throws FragmentReadError naming the file when its footer is damaged; a ShortRead
   *   (`isShortRead`) when the file is shorter than `size`
   */
  static async open(store: ObjectStore, key: string, size: number, columns: readonly string[]): Promise<ArrowFileColumns | undefined> {
    const where = store.describe(key);
    const fail = (why: string, cause?: unknown) => new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
    let whole: Uint8Array | undefined;
    const read = async (start: number, end: number) => {
      if (whole) {
        if (end > whole.byteLength) throw new FragmentReadError(`cannot read fragment ${where}: bytes ${start}-${end} of a ${whole.byteLength}-byte file`);
        return whole.subarray(start, end);
      }
      try {
        const bytes = await store.read(key, { start, end });
        if (bytes.byteLength !== end - start) throw new ShortRead(`read ${bytes.byteLength} of ${end - start} bytes at ${start}`);
        return bytes;
      } catch (err) {
        if (err instanceof FragmentReadError || err instanceof ShortRead) throw err;
        throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
      }
    };

    if (size < 22) return undefined;
    if (size <= WHOLE_FILE_BYTES) whole = await read(0, size);
    // Sized to the file: registration read the same footer, so this is the second time.
    const tailStart = Math.max(0, size - footerTailBytes(size));
    let tail = await read(tailStart, size);
    const range = footerRange(tail, size);
    if (!range) return undefined;
    if (range.start < tailStart) tail = await read(range.start, size);
    const footerWithTrailer = tail.subarray(range.start - (size - tail.byteLength));
    const footerBytes = footerWithTrailer.subarray(0, footerWithTrailer.byteLength - 10);
    let footer: InstanceType<typeof Footer>;
    try {
      checkFooterMetadata(footerBytes, `${where} (footer)`);
      footer = Footer.decode(footerBytes);
    } catch (err) {
      throw fail((err as Error).message, err);
    }
    const schema = footer.schema;
    if (footer.numDictionaries > 0) return undefined;

    // Each column's first field node and buffer, from the flat types before it.
    const firstBuffer: number[] = [];
    let buffers = 0;
    for (const field of schema.fields) {
      const count = flatBufferCount(field.type);
      if (count === undefined) return undefined;
      firstBuffer.push(buffers);
      buffers += count;
    }
    const wanted = [...new Set(columns)]
      .map((name) => schema.fields.findIndex((f) => f.name === name))
      .filter((i) => i >= 0)
      .sort((a, b) => a - b);
    const projected = new arrow.Schema(wanted.map((i) => schema.fields[i]!), schema.metadata);

    let blocks: { offset: number; metaDataLength: number; bodyLength: number }[];
    try {
      // Offsets beyond 2^53 make apache-arrow throw a TypeError here.
      blocks = [...footer.recordBatches()];
    } catch (err) {
      throw fail(`footer blocks: ${(err as Error).message}`, err);
    }
    return new ArrowFileColumns(read, where, size, arrowFileFingerprint(size, footerWithTrailer), schema, projected, footer.version, blocks, range.start, wanted, firstBuffer, buffers);
  }

  private fail(why: string, cause?: unknown): FragmentReadError {
    return new FragmentReadError(`corrupt or truncated fragment ${this.where}: ${why}`, { cause });
  }

  /** Batch `k`'s metadata, checked (read once; later calls share the read). */
  private header(k: number): Promise<BatchHeader> {
    let h = this.headers.get(k);
    if (!h) {
      h = this.readHeader(k);
      this.headers.set(k, h);
    }
    return h;
  }

  private async readHeader(k: number): Promise<BatchHeader> {
    const { schema } = this;
    const block = this.blocks[k]!;
    const bodyStart = block.offset + block.metaDataLength;
    if (!(block.offset >= 8 && block.metaDataLength >= 8 && block.bodyLength >= 0 && bodyStart + block.bodyLength <= this.bodiesEnd)) {
      throw this.fail(`block ${k} (offset ${block.offset}) lies outside the file's batches`);
    }
    const framed = await this.read(block.offset, bodyStart);
    const dv = new DataView(framed.buffer, framed.byteOffset, framed.byteLength);
    const prefix = dv.getInt32(0, true) === -1 ? 8 : 4;
    const length = dv.getInt32(prefix - 4, true);
    if (!(length > 0 && prefix + length <= framed.byteLength)) throw this.fail(`block ${k}: bad metadata length ${length}`);
    const metadata = framed.subarray(prefix, prefix + length);
    let header: RecordBatchHeader;
    try {
      const { kind, bodyLength } = checkMessageMetadata(metadata, `${this.where}: block ${k}`);
      if (kind !== MESSAGE_RECORD_BATCH) throw new Error(`block ${k} does not hold a record batch`);
      if (bodyLength > block.bodyLength) throw new Error(`block ${k}: body of ${bodyLength} bytes overruns its block`);
      header = (Message.decode(metadata) as Message<arrow.MessageHeader.RecordBatch>).header() as RecordBatchHeader;
    } catch (err) {
      throw this.fail((err as Error).message, err);
    }
    if (header.compression != null) return { header, bodyStart };
    if (header.nodes.length !== schema.fields.length || header.buffers.length !== this.bufferCount) {
      throw this.fail(`block ${k}: ${header.nodes.length} field nodes and ${header.buffers.length} buffers for ${schema.fields.length} flat columns`);
    }
    const rows = header.length;
    // Checked before anything is allocated for them: apache-arrow sizes a batch's columns by
    // these lengths (and would quietly pad or cut a column whose length differs).
    if (!(Number.isSafeInteger(rows) && rows >= 0 && (schema.fields.length === 0 || rows <= 8 * block.bodyLength + 64))) {
      throw this.fail(`block ${k}: ${rows} rows cannot fit in a ${block.bodyLength}-byte body`);
    }
    header.nodes.forEach((node, i) => {
      if (node.length !== rows) throw this.fail(`column '${schema.fields[i]!.name}', block ${k}: length ${node.length} != batch length ${rows}`);
      if (!(node.nullCount >= 0 && node.nullCount <= rows)) throw this.fail(`column '${schema.fields[i]!.name}', block ${k}: null count ${node.nullCount} of ${rows} rows`);
    });
    return { header, bodyStart };
  }

  /**
   * Rows of batch `k`, from its metadata; undefined when the batch is compressed (the file
   * must then be read whole).
   */
  async batchRows(k: number): Promise<number | undefined> {
    const { header } = await this.header(k);
    return header.compression != null ? undefined : header.length;
  }

  /** Forget batch `k`'s metadata (a scan that has passed it). */
  release(k: number): void {
    this.headers.delete(k);
  }

  /**
   * Batch `k` with the wanted columns, checked like the whole-file reader's batches;
   * undefined when the batch is compressed (read the file whole instead).
   */
  async loadBatch(k: number): Promise<arrow.RecordBatch | undefined> {
    const { header, bodyStart } = await this.header(k);
    if (header.compression != null) return undefined;
    const { schema, projected } = this;
    const block = this.blocks[k]!;
    const rows = header.length;
    // Each wanted column's buffers are contiguous: [lo, hi) of the body.
    const spans = this.wanted.map((i) => {
      const field = schema.fields[i]!;
      const regions = header.buffers.slice(this.firstBuffer[i]!, this.firstBuffer[i]! + flatBufferCount(field.type)!);
      for (const r of regions) {
        if (!(r.offset >= 0 && r.length >= 0 && r.offset + r.length <= block.bodyLength)) {
          throw this.fail(`column '${field.name}', block ${k}: buffer ${r.offset}+${r.length} lies outside the batch body of ${block.bodyLength} bytes`);
        }
      }
      const lo = Math.min(...regions.map((r) => r.offset));
      return { i, field, regions, lo, hi: Math.max(lo, ...regions.map((r) => r.offset + r.length)) };
    });
    // Nearby columns share a request.
    const reads: { lo: number; hi: number; bytes?: Promise<Uint8Array> }[] = [];
    for (const sp of [...spans].sort((a, b) => a.lo - b.lo)) {
      const last = reads[reads.length - 1];
      if (last && sp.lo - last.hi <= COALESCE_GAP) last.hi = Math.max(last.hi, sp.hi);
      else reads.push({ lo: sp.lo, hi: sp.hi });
    }
    for (const r of reads) r.bytes = r.hi > r.lo ? this.read(bodyStart + r.lo, bodyStart + r.hi) : Promise.resolve(new Uint8Array(0));
    const children = await Promise.all(
      spans.map(async ({ i, field, regions, lo }) => {
        const r = reads.find((x) => x.lo <= lo && lo <= x.hi)!;
        let body = await r.bytes!;
        const base = r.lo;
        // Typed-array views need their element alignment; a store may hand back pooled bytes.
        if ((body.byteOffset + (lo - base)) % 8 !== 0) {
          body = body.slice();
        }
        const rebased = regions.map((x) => ({ offset: x.offset - base, length: x.length }));
        const loader = new VectorLoader(body, [header.nodes[i]!], rebased as typeof header.buffers, new Map(), this.footerVersion);
        try {
          return loader.visit(field.type) as arrow.Data;
        } catch (err) {
          throw this.fail(`column '${field.name}', block ${k}: ${(err as Error).message}`, err);
        }
      }),
    );
    try {
      const batch = new arrow.RecordBatch(projected, arrow.makeData({ type: new arrow.Struct(projected.fields), length: rows, children }));
      // Value offsets are bounded by each column's own bytes (checked against their length).
      checkBatch(batch, Number.MAX_SAFE_INTEGER);
      return batch;
    } catch (err) {
      throw this.fail(`block ${k}: ${(err as Error).message}`, err);
    }
  }
}
