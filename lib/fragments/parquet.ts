/**
 * Parquet fragments. parquet-wasm (arrow-rs compiled to WebAssembly) decodes the whole file
 * into Arrow and hands it over as one IPC stream, which apache-arrow reads into the same
 * `Schema` + `RecordBatch[]` shape an Arrow IPC fragment has, so index trainers never know
 * which format a fragment was. hyparquet (pure JS) reads footers alone, over ranged reads.
 *
 * What comes out, measured with parquet-wasm 0.8.0:
 * - Files written from Arrow carry the Arrow schema (`ARROW:schema`) and every indexable type
 *   comes back as it went in: LargeUtf8, Dictionary, Float16, Date64, Timestamp zones, NaN
 *   payloads and -0.0 included.
 * - Files without that hint get the Parquet logical type's default: LargeUtf8 and dictionaries
 *   read as Utf8, and Date64 (plain INT64 in Parquet) reads as Int64.
 * - Utf8View/BinaryView never come out, even when the hint asks for them: strings read as
 *   Utf8/Binary. Should a later version return them, describeColumnType refuses the column
 *   with a ColumnTypeError naming the type, rather than anything misreading it.
 */
import { createRequire } from 'node:module';
import * as arrow from 'apache-arrow';
import type { AsyncBuffer } from 'hyparquet';
import { FragmentReadError } from '../errors.js';
import { checkBatch } from './check.js';

/**
 * parquet-wasm (its wasm module is compiled at import, ~70 ms) is loaded on the first Parquet
 * fragment, not by every process and build worker that only ever sees Arrow files. Its Node
 * build is CommonJS, so it loads synchronously and `decodeParquet` stays synchronous.
 */
let parquetWasm: typeof import('parquet-wasm/node') | undefined;
const loadParquetWasm = () => (parquetWasm ??= createRequire(import.meta.url)('parquet-wasm/node') as typeof import('parquet-wasm/node'));

/**
 * Rows per decoded batch. arrow-rs defaults to 1024, which made a 1M-row int32+utf8 file
 * 2–4× slower to decode here: per-batch overhead in wasm, in the IPC hand-over and in
 * apache-arrow dominates at that size.
 */
export const PARQUET_BATCH_ROWS = 65_536;

/** Bytes fetched from the end of a file to find its footer; most footers fit in one read. */
const FOOTER_FETCH_BYTES = 64 * 1024;

const MAGIC = [0x50, 0x41, 0x52, 0x31]; // "PAR1"

/** True when `bytes` starts with the Parquet magic `PAR1`. */
export function hasParquetMagic(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && MAGIC.every((b, i) => bytes[i] === b);
}

export interface DecodedParquet {
  schema: arrow.Schema;
  batches: arrow.RecordBatch[];
  /**
   * Size of the decoded Arrow buffer the batches are views into: the bound for their buffer
   * offsets (decoded data can be far larger than the compressed file).
   */
  decodedBytes: number;
}

/**
 * Decode a whole Parquet file into Arrow.
 *
 * @param where - how to name the file in errors (a path or URI)
 * @param bytes - the entire file
 * @param batchRows - rows per batch; only tests should need anything but the default
 * @throws FragmentReadError on any failure (truncated file, bad magic, corrupt page,
 *   unsupported codec…), as one line naming `where` and giving parquet-wasm's reason
 */
export function decodeParquet(where: string, bytes: Uint8Array, batchRows = PARQUET_BATCH_ROWS): DecodedParquet {
  const fail = (why: string, cause?: unknown) => new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
  if (!hasParquetMagic(bytes)) throw fail('not a Parquet file (no PAR1 magic at the start)');
  // Checked here because parquet-wasm's own words for a cut-off file vary with where it was cut.
  if (bytes.byteLength < 12 || !MAGIC.every((b, i) => bytes[bytes.byteLength - 4 + i] === b)) {
    throw fail('missing Parquet footer (no PAR1 magic at the end; truncated?)');
  }
  let ipc: Uint8Array;
  try {
    // intoIPCStream consumes the wasm table, freeing its memory; readParquet frees its copy of
    // the input. Nothing else here holds wasm memory, so there is nothing to free().
    ipc = loadParquetWasm().readParquet(bytes, { batchSize: batchRows }).intoIPCStream();
  } catch (err) {
    throw fail(wasmReason(err), err);
  }
  try {
    const reader = arrow.RecordBatchReader.from(ipc);
    reader.open();
    const schema = reader.schema;
    if (!schema) throw new Error('no schema');
    const batches = [...reader];
    return { schema, batches, decodedBytes: ipc.byteLength };
  } catch (err) {
    throw fail(`cannot read parquet-wasm's Arrow output: ${oneLine(String((err as Error)?.message ?? err))}`, err);
  }
}

/**
 * The Arrow schema `decodeParquet` gives a file, from its footer alone. arrow-rs itself
 * (parquet-wasm's `readSchema`) converts the Parquet schema, applying the file's `ARROW:schema`
 * hint only where arrow-rs accepts it, so the types agree with a whole read by construction
 * rather than by a second copy of arrow-rs's mapping rules. arrow-rs reads only the end of
 * what it is given (the footer length and the footer), so the footer with its 8-byte trailer
 * is enough.
 *
 * @param where - how to name the file in errors
 * @param footer - the file's last bytes: at least the footer, its length and `PAR1`
 * @throws FragmentReadError naming `where` when arrow-rs refuses the footer
 */
export function parquetFooterSchema(where: string, footer: Uint8Array): arrow.Schema {
  const fail = (why: string, cause?: unknown) => new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
  let ipc: Uint8Array;
  try {
    ipc = loadParquetWasm().readSchema(footer).intoIPCStream();
  } catch (err) {
    throw fail(wasmReason(err), err);
  }
  try {
    const reader = arrow.RecordBatchReader.from(ipc);
    reader.open();
    if (!reader.schema) throw new Error('no schema');
    return reader.schema;
  } catch (err) {
    throw fail(`cannot read parquet-wasm's Arrow schema: ${oneLine(String((err as Error)?.message ?? err))}`, err);
  }
}

/** parquet-wasm's reason as one short line; a Rust panic surfaces as a bare wasm trap. */
function wasmReason(err: unknown): string {
  // WebAssembly.RuntimeError, which @types/node does not declare as a value.
  if (err instanceof Error && err.name === 'RuntimeError') return `the Parquet decoder crashed (${err.message}); the file is most likely corrupt`;
  return oneLine(String((err as Error)?.message ?? err));
}

function oneLine(s: string, max = 300): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

export interface ParquetFooter {
  rows: number;
  /** Top-level column names, in file order. */
  columns: string[];
}

/**
 * Read only a Parquet file's footer: its row count and top-level column names. Takes one
 * ranged read for footers up to about 64 KiB, two for larger ones.
 *
 * @param read - fetches bytes [start, end) of the file
 * @param size - the file's size in bytes (from a HEAD or a listing)
 * @param where - how to name the file in errors
 * @throws FragmentReadError when the footer is missing or malformed; errors from `read`
 *   itself propagate unchanged
 */
export async function readParquetFooter(read: (start: number, end: number) => Promise<Uint8Array>, size: number, where = 'Parquet file'): Promise<ParquetFooter> {
  const readErrors = new WeakSet<object>();
  const buffer: AsyncBuffer = {
    byteLength: size,
    async slice(start, end = size) {
      try {
        const bytes = await read(start, end);
        // hyparquet wants ArrayBuffers; copy only when the view does not cover its buffer.
        return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
          ? (bytes.buffer as ArrayBuffer)
          : (bytes.slice().buffer as ArrayBuffer);
      } catch (err) {
        if (typeof err === 'object' && err !== null) readErrors.add(err);
        throw err;
      }
    },
  };
  try {
    if (size < 12) throw new Error(`${size} bytes is too small for a Parquet file`);
    const { parquetMetadataAsync, parquetSchema } = await import('hyparquet');
    const metadata = await parquetMetadataAsync(buffer, { initialFetchSize: FOOTER_FETCH_BYTES, geoparquet: false });
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    return { rows: Number(metadata.num_rows), columns };
  } catch (err) {
    if (typeof err === 'object' && err !== null && readErrors.has(err)) throw err;
    throw new FragmentReadError(`corrupt or truncated fragment ${where}: ${oneLine(String((err as Error)?.message ?? err))}`, { cause: err });
  }
}

/**
 * A Parquet file opened for reading some row groups and columns by ranged reads: parquet-wasm's
 * async reader (arrow-rs) fetches the footer, then only the column chunks of the row groups
 * asked for, and decodes them with the same Arrow types the whole-file decode gives (so a scan
 * sees exactly what the indexes were built from). Pages are not skipped inside a row group.
 */
export interface ParquetRowGroups {
  /** The Arrow schema the file decodes to. */
  schema: arrow.Schema;
  /** Rows of each row group, in file order. */
  rowGroupRows: number[];
  /** Rows in the file (the footer's count). */
  rows: number;
  /**
   * Decode row group `index`, only `columns` (names of `schema`); its batches in order.
   *
   * @throws FragmentReadError naming the file
   */
  readRowGroup(index: number, columns: readonly string[]): Promise<arrow.RecordBatch[]>;
  /** Release the decoder's memory. */
  close(): void;
}

/** A Blob as far as parquet-wasm's async reader uses one: `size`, `slice`, `arrayBuffer`. */
class RangedBlob {
  constructor(
    private readonly read: (start: number, end: number) => Promise<Uint8Array>,
    private readonly start: number,
    private readonly end: number,
  ) {}
  get size(): number {
    return this.end - this.start;
  }
  slice(from = 0, to = this.size): RangedBlob {
    // Blob semantics: negative positions count from the end; out-of-range ones are clamped.
    const at = (p: number) => Math.min(this.size, Math.max(0, p < 0 ? this.size + p : p));
    const a = at(from);
    return new RangedBlob(this.read, this.start + a, this.start + Math.max(a, at(to)));
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.read(this.start, this.end);
    return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? (bytes.buffer as ArrayBuffer) : (bytes.slice().buffer as ArrayBuffer);
  }
}

/**
 * Open a Parquet file of `size` bytes for row-group reads through `read` (bytes [start, end)).
 *
 * @param where - how to name the file in errors
 * @throws FragmentReadError naming `where` when the footer cannot be read; errors from
 *   `read` itself propagate unchanged
 */
export async function openParquetRowGroups(read: (start: number, end: number) => Promise<Uint8Array>, size: number, where: string): Promise<ParquetRowGroups> {
  const fail = (why: string, cause?: unknown) => new FragmentReadError(`corrupt or truncated fragment ${where}: ${why}`, { cause });
  // The reader's own errors cross the wasm boundary as strings; keep the original.
  let readError: unknown;
  const tracked = async (start: number, end: number) => {
    try {
      return await read(start, end);
    } catch (err) {
      readError ??= err;
      throw err;
    }
  };
  const rethrow = (err: unknown, what: string): never => {
    if (readError !== undefined) throw readError;
    throw fail(`${what}${wasmReason(err)}`, err);
  };
  if (size < 12) throw fail(`${size} bytes is too small for a Parquet file`);
  const wasm = loadParquetWasm();
  let file: import('parquet-wasm/node').ParquetFile;
  try {
    file = await wasm.ParquetFile.fromFile(new RangedBlob(tracked, 0, size) as unknown as Blob);
  } catch (err) {
    return rethrow(err, '');
  }
  let schema: arrow.Schema;
  let rowGroupRows: number[];
  let rows: number;
  try {
    const reader = arrow.RecordBatchReader.from(file.schema().intoIPCStream());
    reader.open();
    if (!reader.schema) throw new Error('no schema');
    schema = reader.schema;
    // Metadata objects hold wasm memory until freed.
    const metadata = file.metadata();
    const groups = metadata.rowGroups();
    rowGroupRows = groups.map((g) => g.numRows());
    for (const g of groups) g.free();
    const fileMetadata = metadata.fileMetadata();
    rows = fileMetadata.numRows();
    fileMetadata.free();
    metadata.free();
  } catch (err) {
    file.free();
    throw fail(`cannot read its metadata: ${wasmReason(err)}`, err);
  }
  let closed = false;
  return {
    schema,
    rowGroupRows,
    rows,
    async readRowGroup(index, columns) {
      let ipc: Uint8Array;
      try {
        const table = await file.read({ rowGroups: [index], columns: [...columns], batchSize: PARQUET_BATCH_ROWS });
        ipc = table.intoIPCStream();
      } catch (err) {
        return rethrow(err, `row group ${index}: `);
      }
      try {
        const reader = arrow.RecordBatchReader.from(ipc);
        reader.open();
        const batches = [...reader];
        for (const batch of batches) checkBatch(batch, ipc.byteLength);
        return batches;
      } catch (err) {
        throw fail(`row group ${index}: ${oneLine(String((err as Error)?.message ?? err))}`, err);
      }
    },
    close() {
      if (!closed) file.free();
      closed = true;
    },
  };
}
