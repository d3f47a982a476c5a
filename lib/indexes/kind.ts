/**
 * The contract every index kind implements (zone map, bitmap; a bloom filter would be a third
 * file and one registry line). Index code never knows where files live: it only sees the
 * store contract and dataset-relative keys.
 */
import type { QueryCache } from '../cache.js';
import type * as arrow from 'apache-arrow';
import type { ColumnType, KeyValue } from '../format/column-type.js';
import type { IpcFileReader } from '../format/ipc.js';
import type { RowSet } from '../format/rowset.js';
import type { ObjectStore } from '../store/store.js';

export type IndexType = 'zonemap' | 'bitmap';

/** Every index type, here rather than in the registry so that naming them loads no index code. */
export const INDEX_TYPES: readonly IndexType[] = ['zonemap', 'bitmap'];

export interface IndexParams {
  /** Zone map only: rows per zone, > 0. */
  rowsPerZone?: number;
}

/** A leaf of a normalised predicate, already coerced to the column's value domain. */
export type Condition =
  | { kind: 'cmp'; op: '=' | '!=' | '<' | '<=' | '>' | '>='; value: KeyValue }
  /**
   * Equal to one of `values` (distinct, non-null, canonical), or with `negated`, non-null and
   * equal to none of them. Never empty: an empty list is `none` (or `notNull`, negated).
   */
  | { kind: 'in'; values: KeyValue[]; negated: boolean }
  | { kind: 'isNull' }
  | { kind: 'notNull' }
  | { kind: 'none' };

/** A file of an index version, as recorded in the manifest. */
export interface IndexFile {
  name: string;
  key: string;
  size: number;
  /** CRC32C of the whole file in S3's encoding (base64 of the big-endian 4 bytes), computed as it was written. */
  crc32c: string;
}

/** One input of a merge: a part, or a segment being compacted. */
export interface MergeSource {
  /** The input's main file, opened and verified against its recorded checksum as it streams. */
  reader: IpcFileReader;
  /** Fragments to keep from this input; undefined keeps every row (unchanged data passes through). */
  keep?: (fragmentId: number) => boolean;
}

/** Where a merge reads from and writes to. */
export interface MergeInput {
  store: ObjectStore;
  ct: ColumnType;
  params: IndexParams;
  column: string;
  /** Parts or segments, sorted so that equal keys come in fragment order; their fragments are disjoint. */
  inputs: MergeSource[];
  /** Directory key (with trailing slash) for the merged files. */
  outDir: string;
  tuning?: WriterTuning;
}

export interface MergeOutput {
  files: IndexFile[];
  /** Peak bytes of record batches held at once by the merge (inputs + output buffer). */
  peakHeldBytes: number;
  /** Largest single input batch seen, for the memory bound check. */
  maxInputBatchBytes: number;
}

export interface WriterTuning {
  /** Flush a bitmap batch once its row-set bytes reach this (≤ 32 MiB). */
  batchBytes?: number;
  /** Flush a batch once it holds this many keys or zones. */
  batchKeys?: number;
  /** Bytes a bitmap part may hold for its distinct values (default: half the V8 heap limit). */
  partMemoryBytes?: number;
}

export interface Trainer {
  /** Start a fragment; rows are then fed in order through addBatch. */
  startFragment(fragmentId: number, rows: number): void;
  addBatch(data: arrow.Data): void;
  endFragment(): void;
  /**
   * Write what was trained as a complete segment: every file of the kind, create-only, under
   * `dir` (with trailing slash), with `metadata` on each main file's schema. Returns the files
   * with their sizes and CRC32Cs, computed as they were written.
   */
  writeSegment(store: ObjectStore, dir: string, metadata: Map<string, string>): Promise<IndexFile[]>;
}

export interface IndexSearcher {
  /** Rows of the covered fragments that may (zone map) or do (bitmap) satisfy `cond`. */
  search(cond: Condition): Promise<RowSet>;
  /** Ranged reads issued so far. */
  readonly reads: number;
}

export interface IndexKind {
  readonly type: IndexType;
  /** True when answers are exact (bitmap), false when they must be re-checked (zone map). */
  readonly exact: boolean;
  /** Check and complete parameters; throws IndexParamsError. */
  normalizeParams(params: IndexParams): IndexParams;
  createTrainer(ct: ColumnType, params: IndexParams, tuning?: WriterTuning): Trainer;
  /** Stream parts or segments into one segment's files. */
  merge(input: MergeInput): Promise<MergeOutput>;
  /** The file a merge streams from each input (the others, like a lookup table, are rebuilt). */
  readonly mainFile: string;
  /** The names of the files every segment of this kind holds, exactly these, once each. */
  readonly fileNames: readonly string[];
  /** Open a version's files for searching; with `cache`, what is immutable may be reused across queries. */
  open(store: ObjectStore, ct: ColumnType, files: IndexFile[], coverage: Coverage, cache?: QueryCache): Promise<IndexSearcher>;
}

/** The fragments an index version covers, with their row counts. */
export interface Coverage {
  fragmentIds: readonly number[];
  rows(fragmentId: number): number | undefined;
}

/** Schema metadata keys written into index and part files. */
export const META = {
  indexType: 'index_type',
  column: 'column',
  rowsPerZone: 'rows_per_zone',
  fragmentIds: 'fragment_ids',
} as const;
