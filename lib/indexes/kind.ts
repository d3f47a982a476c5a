/**
 * The contract every index kind implements (zone map, bitmap; a bloom filter would be a third
 * file and one registry line). Index code never knows where files live: it only sees the
 * store contract and dataset-relative keys.
 */
import type { QueryCache } from '../query/cache.js';
import type * as arrow from 'apache-arrow';
import type { ColumnType, KeyValue } from '../format/column-type.js';
import type { IpcFileReader, WrittenFile } from '../format/ipc.js';
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
  | { kind: 'isNull' }
  | { kind: 'notNull' }
  | { kind: 'none' };

/** A file of an index version, as recorded in the manifest. */
export interface IndexFile {
  name: string;
  key: string;
  size: number;
  /**
   * CRC32C of the whole file in S3's encoding (base64 of the big-endian 4 bytes), computed
   * as it was written. Absent in manifests written before checksums were recorded.
   */
  crc32c?: string;
}

/** Where a merge reads from and writes to. */
export interface MergeInput {
  store: ObjectStore;
  ct: ColumnType;
  params: IndexParams;
  column: string;
  /** Part files, opened and validated against the plan, sorted by group id as integers. */
  parts: { groupId: number; reader: IpcFileReader }[];
  /** The index's files in the version being updated, if any. */
  previous?: IndexFile[];
  /** Fragments to take from the parts; others are dropped (already covered by `previous`). */
  keepPartFragment: (fragmentId: number) => boolean;
  /** Fresh directory key (no trailing slash) for the final files. */
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
}

export interface Trainer {
  /** Start a fragment; rows are then fed in order through addBatch. */
  startFragment(fragmentId: number, rows: number): void;
  addBatch(data: arrow.Data): void;
  endFragment(): void;
  /**
   * Write the part file (create-only) and return what was written, with its checksums.
   * `beforePublish` runs once the bytes are written and checksummed, before the part becomes
   * visible (build-part records the part's checksum there).
   */
  writePart(store: ObjectStore, key: string, metadata: Map<string, string>, options?: WritePartOptions): Promise<WrittenFile>;
}

export interface WritePartOptions {
  beforePublish?: (file: Omit<WrittenFile, 'key' | 'etag'>) => Promise<void>;
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
  /** Stream the parts (and the previous version) into a new version's files. */
  merge(input: MergeInput): Promise<MergeOutput>;
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
