/**
 * `scan`: the rows that match a predicate, as Arrow record batches, for the whole dataset.
 *
 * 1. `query()` answers from the indexes: candidate row ranges per covered fragment, and the
 *    fragments no used index covers (including files under `data/` not registered yet).
 * 2. Each candidate fragment is read for its candidate ranges only (fragment-reader.ts: the
 *    batches or row groups that hold them, only the needed columns); each unindexed fragment
 *    is read in full.
 * 3. The predicate is applied to every candidate row (rows.ts, the indexes' semantics), so
 *    zone-map candidates become exact rows, and every matching row is returned once.
 *
 * Fragments are scanned one after another (candidate fragments in id order, then the
 * unindexed ones as the answer lists them), rows in fragment order. Memory is bounded by a
 * few batches at a time whatever the result size (fragments that must be read whole, such
 * as Arrow streams, are held one at a time); `limit` stops reading as soon as it is reached.
 */
import type * as arrow from 'apache-arrow';
import { openDataset } from '../dataset.js';
import { MissingColumnError, UsageError } from '../errors.js';
import { takeRows } from '../format/take.js';
import { predicateColumns, type Predicate } from '../query/ast.js';
import { normalize, query, type QueryOptions, type QueryResult } from '../query/evaluate.js';
import { parsePredicate } from '../query/parser.js';
import { compileRowPredicate, type RowPredicate } from '../query/rows.js';
import { CountingStore } from '../store/counting.js';
import type { Progress } from '../workflow/plan.js';
import { pickSchema, selectColumns } from './columns.js';
import { openFragment, RangeCursor, type FragmentTarget, type ScanTuning } from './fragment-reader.js';

export interface ScanOptions extends QueryOptions {
  /** Columns to return, in this order (default: every column of each fragment, in its order). */
  columns?: readonly string[];
  /** Stop after this many rows (reading stops too). */
  limit?: number;
  /** Called as fragments are started and rows found: `{ step: 'scan', done: fragments done, total, detail }`. */
  progress?: Progress;
  /** The index answer to follow, when the caller has it already (default: `query()` is asked). */
  answer?: QueryResult;
  tuning?: ScanTuning;
}

/** Matching rows of one batch of one fragment. */
export interface ScanChunk {
  fragment: { id: number | null; path: string };
  /** Row offset in the fragment of each row of `batch`, ascending. */
  offsets: Uint32Array;
  batch: arrow.RecordBatch;
}

export interface ScanStats {
  /** Fragments to scan: candidates of the index answer plus unindexed ones. */
  fragments: number;
  /** Fragments opened (fewer when `limit` stopped the scan). */
  fragmentsRead: number;
  /** Record batches read (Arrow batches, or Parquet batches of the row groups read). */
  batchesRead: number;
  /** Rows in the batches read. */
  rowsRead: number;
  /** Candidate rows the predicate was applied to. */
  candidateRows: number;
  /** Rows returned. */
  rowsMatched: number;
  /** Fragment bytes read, read calls and HEADs (index reads are in `query.stats`). */
  bytesRead: number;
  reads: number;
  heads: number;
}

/**
 * The rows of `dataset` that match `where`, as Arrow record batches (iterate once).
 *
 * @example
 * const s = scan('s3://sales-data/datasets/2026', "region = 'APAC' AND price < 20", { columns: ['id', 'price'] });
 * for await (const batch of s) console.log(batch.numRows);
 * console.log(s.stats.bytesRead, s.query?.indexesUsed);
 */
export function scan(dataset: string, where: string | Predicate, options: ScanOptions = {}): Scan {
  return new Scan(dataset, where, options);
}

export class Scan implements AsyncIterable<arrow.RecordBatch> {
  readonly stats: ScanStats = { fragments: 0, fragmentsRead: 0, batchesRead: 0, rowsRead: 0, candidateRows: 0, rowsMatched: 0, bytesRead: 0, reads: 0, heads: 0 };
  /** The index answer the scan follows (set once the scan has started). */
  query?: QueryResult;
  /** Columns of the first fragment opened, as returned (for writers that need a schema before any row). */
  schema?: arrow.Schema;

  constructor(
    private readonly dataset: string,
    private readonly where: string | Predicate,
    private readonly options: ScanOptions,
  ) {
    const { limit, columns } = options;
    if (limit !== undefined && !(Number.isSafeInteger(limit) && limit >= 0)) throw new UsageError(`limit must be a whole number of at least 0, got ${limit}`);
    if (columns && columns.some((c) => typeof c !== 'string' || c.length === 0)) throw new UsageError('column names must be non-empty');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<arrow.RecordBatch> {
    for await (const chunk of this.chunks()) yield chunk.batch;
  }

  /** The matching rows with the fragment and row offsets they come from. */
  async *chunks(): AsyncGenerator<ScanChunk> {
    const { options, stats } = this;
    const predicate = typeof this.where === 'string' ? parsePredicate(this.where) : this.where;
    const tree = normalize(predicate);
    const filterColumns = predicateColumns(predicate);
    const limit = options.limit ?? Infinity;
    if (limit === 0) return;
    const result = options.answer ?? (await query(this.dataset, predicate, options));
    this.query = result;
    const store = new CountingStore(openDataset(this.dataset).store);
    // What registration recorded, where the answer vouches for it (unregistered, failed and
    // changed files have nothing: they are read as they are now).
    const registered = (id: number | null) => (id === null ? undefined : result.stats?.files?.get(id));
    const targets: FragmentTarget[] = [
      ...result.fragments.map(({ id, path, ranges }) => ({ id, path, ranges, ...registered(id) })),
      ...result.unindexedFragments.map(({ id, path }) => ({ id, path, ...registered(id) })),
    ];
    stats.fragments = targets.length;
    const progress = options.progress ?? (() => {});
    const sync = () => Object.assign(stats, { bytesRead: store.counts.bytes, reads: store.counts.reads, heads: store.counts.heads });

    try {
      for (const [done, target] of targets.entries()) {
        progress({ step: 'scan', done, total: targets.length, detail: `${stats.rowsMatched} row(s)` });
        const where = store.describe(target.path);
        const fragment = await openFragment(store, target, options.tuning);
        stats.fragmentsRead++;
        try {
          const output = options.columns ?? fragment.schema.fields.map((f) => f.name);
          for (const name of [...output, ...filterColumns]) {
            if (!fragment.schema.fields.some((f) => f.name === name)) {
              throw new MissingColumnError(`column '${name}' not found in fragment ${where} (columns: ${fragment.schema.fields.map((f) => f.name).join(', ') || '(none)'})`);
            }
          }
          const outSchema = pickSchema(fragment.schema, output);
          this.schema ??= outSchema;
          const needed = [...new Set([...output, ...filterColumns])];
          let rowFilter: { names: string; filter: RowPredicate } | undefined;
          const cursor = new RangeCursor(target.ranges);
          for await (const { rowStart, batch } of fragment.batches(needed)) {
            const n = batch.numRows;
            stats.batchesRead++;
            stats.rowsRead += n;
            const selected = new Uint8Array(n);
            const candidates = cursor.mark(rowStart, selected);
            stats.candidateRows += candidates;
            // Bound to the batches' schema (the same for every batch of a fragment).
            const names = batch.schema.fields.map((f) => f.name).join('\u0000');
            if (rowFilter?.names !== names) rowFilter = { names, filter: compileRowPredicate(tree, batch.schema, where) };
            if (candidates === 0) continue;
            let count = rowFilter.filter.filter(batch, selected);
            if (count === 0) continue;
            count = Math.min(count, limit - stats.rowsMatched);
            const indices = new Uint32Array(count);
            for (let i = 0, k = 0; k < count; i++) if (selected[i]) indices[k++] = i;
            const rows = count === n ? selectColumns(batch, output) : takeRows(batch, indices, outSchema);
            const offsets = indices;
            for (let k = 0; k < count; k++) offsets[k]! += rowStart;
            stats.rowsMatched += count;
            sync();
            progress({ step: 'scan', done, total: targets.length, detail: `${stats.rowsMatched} row(s)` });
            yield { fragment: { id: target.id, path: target.path }, offsets, batch: rows };
            if (stats.rowsMatched >= limit) return;
          }
        } finally {
          fragment.close();
          sync();
        }
      }
      progress({ step: 'scan', done: targets.length, total: targets.length, detail: `${stats.rowsMatched} row(s)` });
    } finally {
      sync();
    }
  }
}
