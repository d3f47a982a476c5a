/**
 * Arrow IPC *file* I/O for index files, through the store contract:
 * - `IpcFileWriter` streams record batches into a store object (create-only when asked).
 * - `IpcFileReader` opens a file with one ranged read of its tail (footer), then reads each
 *   record batch with one ranged read of exactly that batch's block. That is what keeps a
 *   bitmap point lookup at three reads on a remote store.
 */
import * as arrow from 'apache-arrow';
import { AsyncByteQueue } from 'apache-arrow/io/stream';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { toUint8Array, type ArrayBufferViewInput } from 'apache-arrow/util/buffer';
import { IndexFileError } from '../errors.js';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../store/store.js';

/** Collects the writer's output chunks so they can be handed to the store with backpressure. */
class ChunkSink extends AsyncByteQueue {
  chunks: Uint8Array[] = [];
  override write(value: ArrayBufferViewInput): void {
    const bytes = toUint8Array(value);
    if (bytes.byteLength > 0) this.chunks.push(bytes);
  }
}

export class IpcFileWriter {
  private readonly writer = new arrow.RecordBatchFileWriter();
  private readonly sink = new ChunkSink();
  private bytes = 0;

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
    this.writer.write(batch);
    await this.drain();
  }

  /** Finish the file (footer) and publish it. */
  async close(): Promise<ObjectInfo> {
    this.writer.finish();
    await this.drain();
    return this.out.close();
  }

  async abort(): Promise<void> {
    await this.out.abort();
  }

  private async drain(): Promise<void> {
    const chunks = this.sink.chunks;
    this.sink.chunks = [];
    for (const c of chunks) {
      await this.out.write(c);
      this.bytes += c.byteLength;
    }
  }
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

const TAIL_GUESS = 64 * 1024;
const MAGIC = 'ARROW1';

interface Block {
  offset: number;
  length: number;
}

export class IpcFileReader {
  /** Count of ranged reads issued, for read-budget tests and benchmarks. */
  reads = 0;
  private schemaMessage?: Uint8Array;

  private constructor(
    private readonly store: ObjectStore,
    readonly key: string,
    readonly size: number,
    readonly schema: arrow.Schema,
    private readonly blocks: Block[],
  ) {}

  /** Open with one ranged read of the tail (two if the footer is larger than 64 KiB). */
  static async open(store: ObjectStore, key: string, knownSize?: number): Promise<IpcFileReader> {
    const where = store.describe(key);
    let reads = 0;
    let size = knownSize;
    if (size === undefined) {
      const info = await store.head(key);
      if (!info) throw new IndexFileError(`index file missing: ${where}`);
      size = info.size;
    }
    if (size < 22) throw new IndexFileError(`not an Arrow IPC file (only ${size} bytes): ${where}`);
    const tailStart = Math.max(0, size - TAIL_GUESS);
    let tail = await store.read(key, { start: tailStart, end: size });
    reads++;
    if (tail.byteLength !== size - tailStart) throw new IndexFileError(`short read of ${where}`);
    const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    if (decodeAscii(tail.subarray(tail.byteLength - 6)) !== MAGIC) {
      throw new IndexFileError(`not an Arrow IPC file (bad trailing magic): ${where}`);
    }
    const footerLength = dv.getInt32(tail.byteLength - 10, true);
    const footerStart = size - 10 - footerLength;
    if (footerLength <= 0 || footerStart < 8) throw new IndexFileError(`corrupt Arrow footer (length ${footerLength}): ${where}`);
    let footerBytes: Uint8Array;
    if (footerStart >= tailStart) {
      footerBytes = tail.subarray(footerStart - tailStart, size - 10 - tailStart);
    } else {
      tail = await store.read(key, { start: footerStart, end: size - 10 });
      reads++;
      footerBytes = tail;
    }
    let footer: Footer;
    try {
      footer = Footer.decode(footerBytes);
    } catch (err) {
      throw new IndexFileError(`corrupt Arrow footer: ${where}`, { cause: err });
    }
    if (footer.numDictionaries > 0) throw new IndexFileError(`index files must not hold dictionary batches: ${where}`);
    const blocks: Block[] = [];
    for (let i = 0; i < footer.numRecordBatches; i++) {
      const b = footer.getRecordBatch(i)!;
      const offset = Number(b.offset);
      const length = b.metaDataLength + Number(b.bodyLength);
      if (offset < 8 || offset + length > footerStart) throw new IndexFileError(`corrupt Arrow footer (batch ${i} out of bounds): ${where}`);
      blocks.push({ offset, length });
    }
    const reader = new IpcFileReader(store, key, size, footer.schema, blocks);
    reader.reads = reads;
    // Small files (most zone maps, lookup tables) arrived whole with the tail: serve their
    // batches from it instead of asking the store again.
    if (footerStart >= tailStart && blocks.some((b) => b.offset >= tailStart)) reader.tail = { start: tailStart, bytes: tail };
    return reader;
  }

  get numBatches(): number {
    return this.blocks.length;
  }

  get metadata(): Map<string, string> {
    return this.schema.metadata;
  }

  /** Bytes already fetched with the footer, kept when they cover record batches. */
  private tail?: { start: number; bytes: Uint8Array };

  /** Bytes [start, end) of the file: from the kept tail when it covers them, else one read. */
  private async fetch(start: number, end: number): Promise<Uint8Array> {
    const t = this.tail;
    if (t && start >= t.start && end <= t.start + t.bytes.byteLength) return t.bytes.subarray(start - t.start, end - t.start);
    this.reads++;
    return this.store.read(this.key, { start, end });
  }

  /** Read one record batch with a single ranged read (none if the tail read covered it). */
  async readBatch(index: number): Promise<arrow.RecordBatch> {
    const block = this.blocks[index];
    if (!block) throw new IndexFileError(`batch ${index} out of range (${this.blocks.length} batches): ${this.store.describe(this.key)}`);
    return this.decode(await this.fetch(block.offset, block.offset + block.length), index);
  }

  /** Every batch in order; consecutive batches are fetched in ranges of up to `rangeBytes`. */
  async *batches(rangeBytes = 16 * 1024 * 1024): AsyncGenerator<arrow.RecordBatch> {
    let i = 0;
    while (i < this.blocks.length) {
      const first = this.blocks[i]!;
      let j = i + 1;
      while (j < this.blocks.length && this.blocks[j]!.offset + this.blocks[j]!.length - first.offset <= rangeBytes) j++;
      const last = this.blocks[j - 1]!;
      const bytes = await this.fetch(first.offset, last.offset + last.length);
      for (let k = i; k < j; k++) {
        const b = this.blocks[k]!;
        yield this.decode(bytes.subarray(b.offset - first.offset, b.offset - first.offset + b.length), k);
      }
      i = j;
    }
  }

  private decode(block: Uint8Array, index: number): arrow.RecordBatch {
    // A one-batch IPC stream (schema message + this batch's block + end marker) is decoded
    // by Arrow's own reader, so no IPC internals are re-implemented here.
    this.schemaMessage ??= schemaMessageBytes(this.schema);
    const stream = new Uint8Array(this.schemaMessage.byteLength + block.byteLength + 8);
    stream.set(this.schemaMessage, 0);
    stream.set(block, this.schemaMessage.byteLength);
    stream.set(EOS, this.schemaMessage.byteLength + block.byteLength);
    try {
      const reader = arrow.RecordBatchReader.from(stream);
      const batch = reader.next().value as arrow.RecordBatch | undefined;
      if (!batch || block.byteLength === 0) throw new Error('no record batch in block');
      return batch;
    } catch (err) {
      throw new IndexFileError(`corrupt record batch ${index} in ${this.store.describe(this.key)}: ${(err as Error).message}`, { cause: err });
    }
  }
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
