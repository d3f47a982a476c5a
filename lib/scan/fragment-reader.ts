/**
 * Reading the candidate rows' batches of one fragment for a scan, with as little I/O as the
 * format allows, and checking that the file is still the one registered:
 *
 * - Arrow IPC files (flat columns, uncompressed): the footer, then each batch's metadata up to
 *   the last candidate row (a batch's row count is only in its metadata), then only the
 *   wanted columns of the batches that hold candidates, by ranged reads. The footer
 *   fingerprint (size, schema, batch layout) is compared before any batch is read.
 * - Parquet: the footer, then only the wanted column chunks of the row groups that hold
 *   candidates (parquet-wasm's async reader). A Parquet fingerprint is a hash of the whole
 *   file, so a file of at most 4 MiB is read whole and checked exactly; a larger one is
 *   checked by size (a HEAD) and its footer's row count.
 * - Anything else (Arrow streams, dictionary, nested or compressed Arrow files, small
 *   Parquet files): read whole and checked against the full fingerprint.
 *
 * Memory stays bounded by a few batches (or row groups) at a time, except for fragments that
 * must be read whole.
 */
import type * as arrow from 'apache-arrow';
import { FragmentChangedError, FragmentReadError } from '../errors.js';
import { ArrowFileColumns, isShortRead } from '../fragments/arrow-columns.js';
import { openParquetRowGroups, type ParquetRowGroups } from '../fragments/parquet.js';
import { fingerprintAsRegistered } from '../fragments/footer.js';
import { decodeFragment, type LoadedFragment } from '../fragments/reader.js';
import type { ObjectStore } from '../store/store.js';
import { selectColumns } from './columns.js';

export interface ScanTuning {
  /** Files up to this size are read whole (default WHOLE_FILE_BYTES; tests set 0 to force ranged reads). */
  wholeFileBytes?: number;
}

/** One fragment file to scan, as a query answer names it. */
export interface FragmentTarget {
  /** Registered id, or null for a file under data/ the manifest does not register yet. */
  id: number | null;
  path: string;
  /** Candidate rows, sorted non-overlapping [start, end); undefined: every row. */
  ranges?: readonly [number, number][];
  /** What registration recorded, checked before rows are trusted (each optional). */
  size?: number;
  rows?: number;
  fingerprint?: string;
  etag?: string;
}

/** Rows [rowStart, rowStart + batch.numRows) of the fragment. */
export interface FragmentBatch {
  rowStart: number;
  batch: arrow.RecordBatch;
}

export interface OpenedFragment {
  /** The fragment's whole schema. */
  schema: arrow.Schema;
  /**
   * Batches holding candidate rows, in row order, with only `columns` (all present in
   * `schema`). Batches without candidates are not read.
   */
  batches(columns: readonly string[]): AsyncGenerator<FragmentBatch>;
  close(): void;
}

/**
 * Files up to this size are read whole, in one read (as the build's projection does): fewer
 * requests than footer + metadata + columns, and the whole fingerprint is checked.
 */
export const WHOLE_FILE_BYTES = 4 * 1024 * 1024;
/** Batch metadata reads in flight ahead of the batch being decided on. */
const HEADERS_AHEAD = 8;
/** Candidate batches (or row groups) loaded ahead of the one being handed out. */
const BATCHES_AHEAD = 2;

/** Which candidate rows fall into consecutive row spans (spans must come in ascending order). */
export class RangeCursor {
  private i = 0;
  constructor(private readonly ranges: readonly (readonly [number, number])[] | undefined) {}

  /** Past this row there are no candidates. */
  get end(): number {
    if (!this.ranges) return Infinity;
    return this.ranges.length ? this.ranges[this.ranges.length - 1]![1] : 0;
  }

  /** Whether rows [start, end) hold a candidate. */
  overlaps(start: number, end: number): boolean {
    if (!this.ranges) return end > start;
    while (this.i < this.ranges.length && this.ranges[this.i]![1] <= start) this.i++;
    return this.i < this.ranges.length && this.ranges[this.i]![0] < end;
  }

  /** Mark in `out` (one byte per row from `start`) the candidates among rows [start, start + out.length). */
  mark(start: number, out: Uint8Array): number {
    const end = start + out.length;
    if (!this.ranges) {
      out.fill(1);
      return out.length;
    }
    let count = 0;
    this.overlaps(start, end);
    for (let k = this.i; k < this.ranges.length && this.ranges[k]![0] < end; k++) {
      const a = Math.max(start, this.ranges[k]![0]);
      const b = Math.min(end, this.ranges[k]![1]);
      if (b > a) {
        out.fill(1, a - start, b - start);
        count += b - a;
      }
    }
    return count;
  }
}

/**
 * Open `target` for reading its candidate batches.
 *
 * @throws FragmentChangedError naming the file when it is not the file registered (size,
 *   fingerprint or row count differ); FragmentReadError when it cannot be read
 */
export async function openFragment(store: ObjectStore, target: FragmentTarget, tuning: ScanTuning = {}): Promise<OpenedFragment> {
  const wholeFileBytes = tuning.wholeFileBytes ?? WHOLE_FILE_BYTES;
  const where = store.describe(target.path);
  const changed = () =>
    new FragmentChangedError(`fragment ${where}${target.id !== null ? ` (id ${target.id})` : ''} changed after it was registered; fragments are immutable`);
  const headSize = async () => {
    let info;
    try {
      info = await store.head(target.path);
    } catch (err) {
      throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
    }
    if (!info) throw new FragmentReadError(`cannot read fragment ${where}: it is gone`);
    if (target.size !== undefined && info.size !== target.size) throw changed();
    if (target.etag !== undefined && info.etag !== undefined && info.etag !== target.etag) throw changed();
    return info.size;
  };

  const whole = async (skipBefore = 0): Promise<OpenedFragment> => {
    let bytes: Uint8Array;
    try {
      bytes = await store.read(target.path);
    } catch (err) {
      throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
    }
    // Compared before decoding, so a replaced file is reported as changed, not as corrupt.
    if (target.fingerprint !== undefined && fingerprintAsRegistered(target.fingerprint, target.path, bytes) !== target.fingerprint) throw changed();
    const f = decodeFragment(target.path, where, bytes);
    if (target.rows !== undefined && f.rows !== target.rows) throw changed();
    return wholeFragment(f, target.ranges, skipBefore);
  };

  // Small files (and Arrow streams) are read whole, in one read: cheaper than the footer and
  // metadata reads a projection takes, and their full fingerprint can be checked.
  const parquet = target.path.toLowerCase().endsWith('.parquet');
  if (!parquet && target.path.toLowerCase().endsWith('.arrows')) return whole();
  const size = target.size ?? (await headSize());
  if (size <= wholeFileBytes) return whole();

  if (parquet) {
    // Only a hash of the whole file would prove it unchanged; its size (and ETag, when
    // recorded) and its footer's row count are what can be checked without reading it all.
    if (target.size !== undefined) await headSize();
    const read = async (start: number, end: number) => {
      try {
        return await store.read(target.path, { start, end });
      } catch (err) {
        throw new FragmentReadError(`cannot read fragment ${where}: ${(err as Error).message}`, { cause: err });
      }
    };
    const file = await openParquetRowGroups(read, size, where);
    if (target.rows !== undefined && file.rows !== target.rows) {
      file.close();
      throw changed();
    }
    return parquetFragment(file, target.ranges);
  }

  // An Arrow file is projected when it can be (flat, uncompressed columns); otherwise read whole.
  let file: ArrowFileColumns | undefined;
  try {
    file = await ArrowFileColumns.open(store, target.path, size, []);
  } catch (err) {
    if (!isShortRead(err)) throw err;
  }
  if (!file) return whole();
  if (target.fingerprint !== undefined && file.fingerprint !== target.fingerprint) throw changed();
  return arrowFileFragment(file, target.ranges, whole);
}

function wholeFragment(f: LoadedFragment, ranges: FragmentTarget['ranges'], skipBefore: number): OpenedFragment {
  return {
    schema: f.schema,
    async *batches(columns) {
      const cursor = new RangeCursor(ranges);
      let rowStart = 0;
      for (const batch of f.batches) {
        const start = rowStart;
        rowStart += batch.numRows;
        if (rowStart <= skipBefore || !cursor.overlaps(Math.max(start, skipBefore), rowStart)) continue;
        if (start < skipBefore) {
          // Rows before `skipBefore` were already handed out by a reader that gave up.
          yield { rowStart: skipBefore, batch: selectColumns(batch.slice(skipBefore - start), columns) };
        } else yield { rowStart: start, batch: selectColumns(batch, columns) };
        if (rowStart >= cursor.end) break;
      }
    },
    close() {},
  };
}

function arrowFileFragment(file: ArrowFileColumns, ranges: FragmentTarget['ranges'], whole: (skipBefore: number) => Promise<OpenedFragment>): OpenedFragment {
  return {
    schema: file.schema,
    async *batches(columns) {
      const projection = file.select(columns);
      const cursor = new RangeCursor(ranges);
      const last = cursor.end;
      const pending: { rowStart: number; batch: Promise<arrow.RecordBatch | undefined> }[] = [];
      // Rows before this one have been handed out.
      let emitted = 0;
      // Where a whole-file read must take over (a compressed batch).
      let resumeAt: number | undefined;
      const next = async (): Promise<FragmentBatch> => {
        const p = pending.shift()!;
        const batch = (await p.batch)!;
        emitted = p.rowStart + batch.numRows;
        return { rowStart: p.rowStart, batch };
      };
      try {
        let rowStart = 0;
        for (let k = 0; k < projection.batchCount && rowStart < last; k++) {
          // The metadata of the next batches is fetched while this one is decided on.
          for (let a = k + 1; a < Math.min(projection.batchCount, k + 1 + HEADERS_AHEAD); a++) projection.batchRows(a).catch(() => undefined);
          const rows = await projection.batchRows(k);
          if (rows === undefined) {
            resumeAt = rowStart;
            break;
          }
          if (rows > 0 && cursor.overlaps(rowStart, rowStart + rows)) {
            // A batch whose metadata says it is uncompressed always loads (never undefined).
            const batch = projection.loadBatch(k);
            batch.catch(() => undefined);
            pending.push({ rowStart, batch });
          }
          projection.release(k);
          rowStart += rows;
          while (pending.length > BATCHES_AHEAD) yield await next();
        }
        while (pending.length > 0) yield await next();
      } catch (err) {
        // Shorter than registered: not this file any more (the whole read's fingerprint says so).
        if (!isShortRead(err)) throw err;
        resumeAt = emitted;
      }
      if (resumeAt !== undefined) yield* (await whole(resumeAt)).batches(columns);
    },
    close() {},
  };
}

function parquetFragment(file: ParquetRowGroups, ranges: FragmentTarget['ranges']): OpenedFragment {
  return {
    schema: file.schema,
    async *batches(columns) {
      const candidates: { index: number; rowStart: number }[] = [];
      const plan = new RangeCursor(ranges);
      let rowStart = 0;
      for (let g = 0; g < file.rowGroupRows.length && rowStart < plan.end; g++) {
        const rows = file.rowGroupRows[g]!;
        if (rows > 0 && plan.overlaps(rowStart, rowStart + rows)) candidates.push({ index: g, rowStart });
        rowStart += rows;
      }
      // Row groups are decoded ahead of the one being handed out.
      const loads: (Promise<arrow.RecordBatch[]> | undefined)[] = [];
      const load = (i: number) => {
        if (i >= candidates.length || loads[i]) return;
        const p = file.readRowGroup(candidates[i]!.index, columns);
        p.catch(() => undefined);
        loads[i] = p;
      };
      const cursor = new RangeCursor(ranges);
      for (let i = 0; i < candidates.length; i++) {
        for (let a = i; a < i + BATCHES_AHEAD; a++) load(a);
        const batches = await loads[i]!;
        loads[i] = undefined;
        let at = candidates[i]!.rowStart;
        for (const batch of batches) {
          if (batch.numRows > 0 && cursor.overlaps(at, at + batch.numRows)) yield { rowStart: at, batch };
          at += batch.numRows;
        }
      }
    },
    close() {
      file.close();
    },
  };
}
