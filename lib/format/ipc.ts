/**
 * Arrow IPC *file* I/O for index files, through the store contract:
 * - `IpcFileWriter` streams record batches into a store object (create-only when asked), and
 *   checksums what it streams: the whole file, each record batch's block and the footer
 *   (CRC32C, see crc32c.ts), so nothing is read back to checksum it.
 * - `IpcFileReader` opens a file with one ranged read of its tail (footer), then reads each
 *   record batch with one ranged read of exactly that batch's block. That is what keeps a
 *   bitmap point lookup at three reads on a remote store. Given the checksums the writer
 *   recorded, it verifies what it reads: the whole file when it holds all of it (a small file
 *   arrives whole with the tail read; `batches()` reads every byte anyway), else the footer
 *   and each batch it fetches.
 */
import * as arrow from 'apache-arrow';
import { AsyncByteQueue } from 'apache-arrow/io/stream';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { toUint8Array, type ArrayBufferViewInput } from 'apache-arrow/util/buffer';
import { IndexFileError } from '../errors.js';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../store/store.js';
import { checksumMismatch, crc32c, crc32cCombine, decodeCrc32c, encodeCrc32c, isChecksumMismatch } from './crc32c.js';
import { checkFooterMetadata, checkMessageMetadata, MESSAGE_RECORD_BATCH } from './ipc-metadata.js';

/** Collects the writer's output chunks (so they can be handed to the store with backpressure), checksumming them. */
class ChunkSink extends AsyncByteQueue {
  chunks: Uint8Array[] = [];
  /** CRC32C and length of the bytes since the last `cut()`. */
  crc = 0;
  length = 0;
  /** Keep the bytes of the current segment (the trailer) as well. */
  keep?: Uint8Array[];
  override write(value: ArrayBufferViewInput): void {
    const bytes = toUint8Array(value);
    if (bytes.byteLength === 0) return;
    this.chunks.push(bytes);
    this.keep?.push(bytes);
    this.crc = crc32c(bytes, this.crc);
    this.length += bytes.byteLength;
  }
  /** End the current segment, returning its checksum and length. */
  cut(): { crc: number; length: number } {
    const seg = { crc: this.crc, length: this.length };
    this.crc = 0;
    this.length = 0;
    return seg;
  }
}

/** A record batch's block as written: its byte range in the file and its CRC32C. */
export interface WrittenBlock {
  offset: number;
  length: number;
  crc32c: number;
}

/** A published file and the checksums computed while it was streamed out. */
export interface WrittenFile extends ObjectInfo {
  /** CRC32C of the whole file, in S3's encoding (base64 of the big-endian 4 bytes). */
  crc32c: string;
  /** Every record batch's block, in file order. */
  blocks: WrittenBlock[];
  /** CRC32C of the footer: the footer flatbuffer, its length and the trailing magic. */
  footerCrc32c: number;
}

export class IpcFileWriter {
  private readonly writer = new arrow.RecordBatchFileWriter();
  private readonly sink = new ChunkSink();
  private bytes = 0;
  /** Position and CRC32C of everything before the current sink segment. */
  private position = 0;
  private crc = 0;
  private readonly blocks: WrittenBlock[] = [];

  private constructor(
    private readonly out: ObjectWriter,
    readonly schema: arrow.Schema,
  ) {
    this.writer.reset(this.sink as never, schema);
  }

  static async create(store: ObjectStore, key: string, schema: arrow.Schema, createOnly = true): Promise<IpcFileWriter> {
    return new IpcFileWriter(await store.openWriter(key, { createOnly }), schema);
  }

  get bytesWritten(): number {
    return this.bytes;
  }

  async write(batch: arrow.RecordBatch): Promise<void> {
    this.fold(); // the leading magic, before the first batch
    this.writer.write(batch);
    const block = this.fold();
    if (block.length > 0) this.blocks.push({ offset: block.offset, length: block.length, crc32c: block.crc });
    await this.drain();
  }

  /**
   * Finish the file (footer) and publish it. `beforePublish` runs once every byte is written
   * and checksummed but before the object becomes visible: a part's checksum record is
   * written there, so no part is ever visible without one.
   */
  async close(beforePublish?: (file: Omit<WrittenFile, 'key' | 'etag'>) => Promise<void>): Promise<WrittenFile> {
    this.fold();
    const trailer: Uint8Array[] = [];
    this.sink.keep = trailer;
    this.writer.finish();
    this.sink.keep = undefined;
    this.fold();
    await this.drain();
    await this.inflight;
    const footerCrc32c = this.checkFooter(concat(trailer));
    const sums = { size: this.position, crc32c: encodeCrc32c(this.crc), blocks: this.blocks, footerCrc32c };
    if (beforePublish) await beforePublish(sums);
    const info = await this.out.close();
    return { ...info, ...sums, size: info.size };
  }

  async abort(): Promise<void> {
    await this.inflight.catch(() => undefined);
    await this.out.abort();
  }

  /** Fold the sink's current segment into the file's checksum; returns where it was. */
  private fold(): { offset: number; length: number; crc: number } {
    const { crc, length } = this.sink.cut();
    const offset = this.position;
    this.crc = crc32cCombine(this.crc, crc, length);
    this.position += length;
    return { offset, length, crc };
  }

  /**
   * The footer's CRC32C, after checking that the footer Arrow wrote lists exactly the blocks
   * checksummed here (so a change in how apache-arrow lays out files cannot go unnoticed).
   */
  private checkFooter(trailer: Uint8Array): number {
    const n = trailer.byteLength;
    const footerLength = n >= 10 ? new DataView(trailer.buffer, trailer.byteOffset, n).getInt32(n - 10, true) : -1;
    if (footerLength <= 0 || footerLength + 10 > n) throw new IndexFileError('internal: unexpected Arrow file trailer layout');
    const footer = Footer.decode(trailer.subarray(n - 10 - footerLength, n - 10));
    const listed = [...footer.recordBatches()].map((b) => `${Number(b.offset)}+${b.metaDataLength + Number(b.bodyLength)}`).join(',');
    const ours = this.blocks.map((b) => `${b.offset}+${b.length}`).join(',');
    if (listed !== ours) throw new IndexFileError(`internal: Arrow footer lists blocks [${listed}], the writer checksummed [${ours}]`);
    return crc32c(trailer.subarray(n - 10 - footerLength));
  }

  /**
   * Hand what Arrow wrote to the store. Write-behind by one batch: this batch's chunks are
   * written while the caller builds the next one; the call waits only for the previous
   * batch's writes (so at most one batch is in flight, in order). A failed write surfaces at
   * the next `write`, `close` or here.
   */
  private async drain(): Promise<void> {
    const chunks = this.sink.chunks;
    this.sink.chunks = [];
    await this.inflight;
    if (chunks.length === 0) return;
    const writing = (async () => {
      for (const c of chunks) {
        await this.out.write(c);
        this.bytes += c.byteLength;
      }
    })();
    writing.catch(() => undefined);
    this.inflight = writing;
  }
  private inflight: Promise<void> = Promise.resolve();
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}

/** Make a record batch whose schema (and so metadata) is exactly `schema`. */
export function makeBatch(schema: arrow.Schema, columns: arrow.Data[]): arrow.RecordBatch {
  const length = columns[0]?.length ?? 0;
  const struct = arrow.makeData({
    type: new arrow.Struct(schema.fields),
    length,
    nullCount: 0,
    children: columns,
  });
  return new arrow.RecordBatch(schema, struct);
}

const MAGIC = 'ARROW1';

interface Block {
  offset: number;
  length: number;
}

export interface OpenOptions {
  /** The file's size, from the manifest or a listing: saves a HEAD request. */
  size?: number;
  /** CRC32C of the whole file in S3's encoding, as recorded when it was written. */
  crc32c?: string;
  /** Bytes of the first tail read, when the caller knows the footer is small (default `IpcFileReader.tailBytes`). */
  tailBytes?: number;
}

export class IpcFileReader {
  /**
   * Bytes read from the end of a file to find its footer: 64 KiB, so that most footers, and
   * small files whole, arrive in one read. Tests lower it to take small files through the
   * ranged-read paths.
   */
  static tailBytes = 64 * 1024;
  /** Count of ranged reads issued, for read-budget tests and benchmarks. */
  reads = 0;
  private schemaMessage?: Uint8Array;
  /** Expected CRC32C of the whole file, when known. */
  private readonly expectedCrc?: number;
  /** True once the whole file's bytes matched `expectedCrc`. */
  private wholeVerified = false;
  /** Expected CRC32C of each record batch's block, when known (see `expectBatchChecksums`). */
  private blockCrcs?: ArrayLike<number>;

  private constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    readonly size: number,
    readonly schema: arrow.Schema,
    private readonly blocks: Block[],
    /** Bytes [trailer.start, size): the tail read, plus the rest of a footer larger than it. */
    private readonly trailer: { start: number; bytes: Uint8Array },
    private readonly footerStart: number,
    expectedCrc: number | undefined,
  ) {
    this.expectedCrc = expectedCrc;
  }

  /**
   * Open with one ranged read of the tail (two if the footer is larger than 64 KiB). With a
   * recorded checksum and a file small enough to arrive whole in that read, the whole file
   * is verified here, before anything in it is trusted.
   *
   * @param options - the size (or an options object with the size and the file's CRC32C)
   * @throws IndexFileError naming the file: missing, truncated, not Arrow, corrupt footer,
   *   or a checksum mismatch
   */
  static async open(store: ObjectStore, key: string, options: OpenOptions | number = {}): Promise<IpcFileReader> {
    const { size: knownSize, crc32c: expected, tailBytes = IpcFileReader.tailBytes } = typeof options === 'number' ? { size: options } : options;
    const where = store.describe(key);
    const expectedCrc = expected === undefined ? undefined : decodeCrc32c(expected);
    let reads = 0;
    let size = knownSize;
    if (size === undefined) {
      const info = await store.head(key);
      if (!info) throw new IndexFileError(`index file missing: ${where}`);
      size = info.size;
    }
    if (size < 22) throw new IndexFileError(`not an Arrow IPC file (only ${size} bytes): ${where}`);
    const tailStart = Math.max(0, size - Math.max(10, tailBytes));
    let tail = await store.read(key, { start: tailStart, end: size });
    reads++;
    if (tail.byteLength !== size - tailStart) {
      throw new IndexFileError(`short read of ${where}: ${tail.byteLength + tailStart} bytes where ${size} were expected (truncated?)`);
    }
    // Verify first: a damaged file should be reported as damaged, not as whatever its
    // damaged footer happens to look like.
    let wholeVerified = false;
    if (expectedCrc !== undefined && tailStart === 0) {
      const actual = crc32c(tail);
      if (actual !== expectedCrc) throw checksumMismatch(where, expectedCrc, actual);
      wholeVerified = true;
    }
    const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    if (decodeAscii(tail.subarray(tail.byteLength - 6)) !== MAGIC) {
      throw new IndexFileError(`not an Arrow IPC file (bad trailing magic): ${where}`);
    }
    const footerLength = dv.getInt32(tail.byteLength - 10, true);
    const footerStart = size - 10 - footerLength;
    if (footerLength <= 0 || footerStart < 8) throw new IndexFileError(`corrupt Arrow footer (length ${footerLength}): ${where}`);
    let trailerStart = tailStart;
    if (footerStart < tailStart) {
      const rest = await store.read(key, { start: footerStart, end: tailStart });
      reads++;
      if (rest.byteLength !== tailStart - footerStart) throw new IndexFileError(`short read of ${where} (footer)`);
      tail = concat([rest, tail]);
      trailerStart = footerStart;
    }
    const footerBytes = tail.subarray(footerStart - trailerStart, size - 10 - trailerStart);
    let footer: Footer;
    const blocks: Block[] = [];
    try {
      checkFooterMetadata(footerBytes);
      footer = Footer.decode(footerBytes);
      if (!footer.schema) throw new Error('no schema');
      if (footer.numDictionaries > 0) throw new IndexFileError(`index files must not hold dictionary batches: ${where}`);
      for (let i = 0; i < footer.numRecordBatches; i++) {
        const b = footer.getRecordBatch(i);
        const offset = Number(b?.offset);
        const length = Number(b?.metaDataLength) + Number(b?.bodyLength);
        // In file order, without overlaps, as every writer lays them out.
        const previousEnd = blocks.length > 0 ? blocks[blocks.length - 1]!.offset + blocks[blocks.length - 1]!.length : 8;
        if (!b || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < previousEnd || length <= 0 || offset + length > footerStart) {
          throw new IndexFileError(`corrupt Arrow footer (batch ${i} out of bounds): ${where}`);
        }
        blocks.push({ offset, length });
      }
    } catch (err) {
      if (err instanceof IndexFileError) throw err;
      throw new IndexFileError(`corrupt Arrow footer: ${where}: ${oneLine(err)}`, { cause: err });
    }
    const reader = new IpcFileReader(store, key, size, footer.schema, blocks, { start: trailerStart, bytes: tail }, footerStart, expectedCrc);
    reader.reads = reads;
    reader.wholeVerified = wholeVerified;
    return reader;
  }

  /** The file, as the store names it in messages. */
  get where(): string {
    return this.store.describe(this.key);
  }

  get numBatches(): number {
    return this.blocks.length;
  }

  get metadata(): Map<string, string> {
    return this.schema.metadata;
  }

  /** True once every byte of the file matched its recorded checksum. */
  get verified(): boolean {
    return this.wholeVerified;
  }

  /** CRC32C of the footer region (footer flatbuffer, its length, the magic), as `WrittenFile.footerCrc32c`. */
  get footerCrc32c(): number {
    return crc32c(this.trailer.bytes.subarray(this.footerStart - this.trailer.start));
  }

  /** Check the footer against the CRC32C recorded for it elsewhere (a bitmap's lookup table). */
  verifyFooter(expected: number): void {
    const actual = this.footerCrc32c;
    if (actual !== expected) throw checksumMismatch(`the footer of ${this.store.describe(this.key)}`, expected, actual);
  }

  /**
   * From now on, check every record batch read against these CRC32Cs (one per batch, in
   * order), as recorded when the file was written.
   */
  expectBatchChecksums(crcs: ArrayLike<number>): void {
    if (crcs.length !== this.blocks.length) {
      throw new IndexFileError(`${this.store.describe(this.key)} has ${this.blocks.length} record batches, its checksums list ${crcs.length}`);
    }
    this.blockCrcs = crcs;
  }

  /** Bytes [start, end) of the file: from the kept tail when it covers them, else one read. */
  private async fetch(start: number, end: number): Promise<Uint8Array> {
    const t = this.trailer;
    if (start >= t.start && end <= t.start + t.bytes.byteLength) return t.bytes.subarray(start - t.start, end - t.start);
    this.reads++;
    const bytes = await this.store.read(this.key, { start, end });
    if (bytes.byteLength !== end - start) {
      throw new IndexFileError(`short read of ${this.store.describe(this.key)}: bytes ${start}-${end} of ${this.size} (truncated?)`);
    }
    return bytes;
  }

  /** Read one record batch with a single ranged read (none if the tail read covered it). */
  async readBatch(index: number): Promise<arrow.RecordBatch> {
    const block = this.blocks[index];
    if (!block) throw new IndexFileError(`batch ${index} out of range (${this.blocks.length} batches): ${this.store.describe(this.key)}`);
    const bytes = await this.fetch(block.offset, block.offset + block.length);
    this.verifyBlock(bytes, index);
    return this.decode(bytes, index);
  }

  /**
   * Every batch in order; consecutive batches are fetched in ranges of up to `rangeBytes`.
   * With a recorded checksum, the ranges also take in the bytes between batches, and the
   * whole file is verified once the last batch is consumed, before the iteration ends: a
   * caller that reads everything (a zone map query, a merge) learns of any damage before
   * it answers or publishes anything.
   */
  async *batches(rangeBytes = 16 * 1024 * 1024): AsyncGenerator<arrow.RecordBatch> {
    const verifying = this.expectedCrc !== undefined && !this.wholeVerified;
    let crc = 0;
    let pos = 0;
    let i = 0;
    while (i < this.blocks.length) {
      const first = this.blocks[i]!;
      let j = i + 1;
      while (j < this.blocks.length && this.blocks[j]!.offset + this.blocks[j]!.length - first.offset <= rangeBytes) j++;
      const last = this.blocks[j - 1]!;
      // Verifying, the range also takes in the bytes before the batch (magic, padding).
      const from = verifying ? pos : first.offset;
      const bytes = await this.fetch(from, last.offset + last.length);
      if (verifying) {
        crc = crc32c(bytes, crc);
        pos = last.offset + last.length;
      }
      for (let k = i; k < j; k++) {
        const b = this.blocks[k]!;
        const block = bytes.subarray(b.offset - from, b.offset - from + b.length);
        this.verifyBlock(block, k);
        yield this.decode(block, k);
      }
      i = j;
    }
    if (verifying) {
      const rest = pos >= this.trailer.start ? this.trailer.bytes.subarray(pos - this.trailer.start) : concat([await this.fetch(pos, this.trailer.start), this.trailer.bytes]);
      crc = crc32c(rest, crc);
      if (crc !== this.expectedCrc) throw checksumMismatch(this.store.describe(this.key), this.expectedCrc!, crc);
      this.wholeVerified = true;
    }
  }

  /**
   * Check the whole file against its recorded checksum, unless that is done already (or
   * there is none): a full read, for error paths (`explainFailure`).
   */
  async verifyWhole(): Promise<void> {
    if (this.expectedCrc === undefined || this.wholeVerified) return;
    const chunk = 8 * 1024 * 1024;
    let crc = 0;
    for (let pos = 0; pos < this.trailer.start; pos += chunk) crc = crc32c(await this.fetch(pos, Math.min(pos + chunk, this.trailer.start)), crc);
    crc = crc32c(this.trailer.bytes, crc);
    if (crc !== this.expectedCrc) throw checksumMismatch(this.store.describe(this.key), this.expectedCrc, crc);
    this.wholeVerified = true;
  }

  private verifyBlock(block: Uint8Array, index: number): void {
    const expected = this.blockCrcs?.[index];
    if (expected === undefined) return;
    const actual = crc32c(block);
    if (actual !== expected) throw checksumMismatch(`record batch ${index} of ${this.store.describe(this.key)}`, expected, actual);
  }

  private decode(block: Uint8Array, index: number): arrow.RecordBatch {
    // A one-batch IPC stream (schema message + this batch's block + end marker) is decoded
    // by Arrow's own reader, so no IPC internals are re-implemented here.
    try {
      this.schemaMessage ??= schemaMessageBytes(this.schema);
    } catch (err) {
      throw new IndexFileError(`corrupt schema in the footer of ${this.store.describe(this.key)}: ${oneLine(err)}`, { cause: err });
    }
    try {
      checkBlockFraming(block);
      // Handed over as three chunks, not one concatenated copy: Arrow's reader then makes the
      // batch's buffers views into `block` (no copy of the batch's bytes).
      const reader = arrow.RecordBatchReader.from([this.schemaMessage, block, EOS] as never) as arrow.RecordBatchStreamReader;
      const batch = reader.next().value as arrow.RecordBatch | undefined;
      if (!batch || block.byteLength === 0) throw new Error('no record batch in block');
      checkBatchBuffers(batch, block.byteLength);
      return batch;
    } catch (err) {
      throw new IndexFileError(`corrupt record batch ${index} in ${this.store.describe(this.key)}: ${oneLine(err)}`, { cause: err });
    }
  }
}

/**
 * Arrow JS trusts the lengths in a batch's metadata. Check that every column holds as many
 * values as the batch has rows, within its buffers, so damage fails here as IndexFileError
 * rather than as a RangeError (or silently wrong values) wherever the columns are read.
 */
function checkBatchBuffers(batch: arrow.RecordBatch, blockBytes: number): void {
  for (const child of batch.data.children) checkData(child, batch.numRows, blockBytes);
}

function checkData(data: arrow.Data, rows: number, blockBytes: number): void {
  if (data.length !== rows || data.offset !== 0) throw new Error(`column length ${data.length} != batch length ${rows}`);
  const t = data.type;
  if (data.nullCount < 0 || data.nullCount > rows) throw new Error(`null count ${data.nullCount} out of range`);
  if (data.nullCount > 0 && (!data.nullBitmap || data.nullBitmap.byteLength * 8 < rows)) throw new Error('validity bitmap too short');
  if (arrow.DataType.isBinary(t) || arrow.DataType.isUtf8(t) || arrow.DataType.isLargeBinary(t) || arrow.DataType.isLargeUtf8(t)) {
    const offsets = data.valueOffsets as Int32Array | BigInt64Array | undefined;
    if (!offsets || offsets.length < rows + 1) throw new Error('offsets buffer too short');
    const values = data.values as Uint8Array | undefined;
    const limit = Math.min(values?.byteLength ?? 0, blockBytes);
    let prev = Number(offsets[0]!);
    if (prev < 0) throw new Error('value offsets out of bounds');
    for (let i = 1; i <= rows; i++) {
      const o = Number(offsets[i]!);
      if (o < prev) throw new Error('value offsets not ascending');
      prev = o;
    }
    if (prev > limit) throw new Error('value offsets out of bounds');
  } else if (arrow.DataType.isBool(t)) {
    if (((data.values as Uint8Array | undefined)?.byteLength ?? 0) * 8 < rows) throw new Error('values buffer too short');
  } else if (arrow.DataType.isDictionary(t) || arrow.DataType.isStruct(t) || arrow.DataType.isList(t)) {
    throw new Error(`unexpected column type ${String(t)}`);
  } else {
    const values = data.values as ArrayLike<unknown> | undefined;
    const stride = (data as { stride?: number }).stride ?? 1;
    if (!values || values.length < rows * stride) throw new Error('values buffer too short');
  }
}

/** A record batch block: continuation marker, metadata length, a RecordBatch message, its body, nothing more. */
function checkBlockFraming(block: Uint8Array): void {
  const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
  if (block.byteLength < 8 || dv.getInt32(0, true) !== -1) throw new Error('no message at the start of the block');
  const length = dv.getInt32(4, true);
  if (length <= 0 || 8 + length > block.byteLength) throw new Error(`message length ${length} does not fit the block`);
  const { kind, bodyLength } = checkMessageMetadata(block.subarray(8, 8 + length), 'record batch message');
  if (kind !== MESSAGE_RECORD_BATCH) throw new Error('the block does not hold a record batch');
  if (8 + length + bodyLength !== block.byteLength) throw new Error(`message body of ${bodyLength} bytes does not fill the block`);
}

/**
 * `err` happened while reading `readers` (a merge's inputs, say). When one of those files is
 * damaged, that is the cause worth reporting, whatever symptom it produced first (keys out of
 * order, a batch that does not decode): check each file not yet verified against its recorded
 * checksum and return the first mismatch, with `err` as its cause; else `err` itself.
 */
export async function explainFailure(err: unknown, readers: Iterable<IpcFileReader>): Promise<unknown> {
  if (isChecksumMismatch(err)) return err;
  for (const r of readers) {
    try {
      await r.verifyWhole();
    } catch (mismatch) {
      if (!isChecksumMismatch(mismatch)) continue;
      (mismatch as Error).cause ??= err;
      return mismatch;
    }
  }
  return err;
}

const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

function schemaMessageBytes(schema: arrow.Schema): Uint8Array {
  const w = new arrow.RecordBatchStreamWriter();
  w.reset(undefined, schema);
  const bytes = w.finish().toUint8Array(true);
  return bytes.subarray(0, bytes.byteLength - 8);
}

function decodeAscii(b: Uint8Array): string {
  return String.fromCharCode(...b);
}

function oneLine(err: unknown, max = 300): string {
  const t = String((err as Error)?.message ?? err).replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}
