/**
 * Inputs and outputs of the four build steps. Each is plain JSON so it can be a Lambda
 * payload; the bulky plan lives in the store (`_index/builds/<buildId>/plan.json`) and steps
 * pass only the dataset, the build id and a group id.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const IndexRequestSchema = z.object({
  column: z.string().min(1, 'column name must not be empty'),
  type: z.enum(['zonemap', 'bitmap']),
  rowsPerZone: z.number().int().optional(),
});
export type IndexRequest = z.infer<typeof IndexRequestSchema>;

export const PlanInputSchema = z.object({
  dataset: z.string().min(1),
  indexes: z.array(IndexRequestSchema).optional(),
  groupRows: z.number().int().positive().optional(),
  /**
   * Record unreadable fragments, and fragments lacking an indexed column or holding it with
   * another type, as failed (with the reason) instead of failing the build.
   */
  skipBadFragments: z.boolean().optional(),
  /** When groupRows is not given: split into at least this many groups if rows allow. */
  minGroups: z.number().int().positive().optional(),
  /**
   * Apply minGroups only when the build reads at least this many rows (rows × indexes that
   * need them): below it, the local engine builds parts in one thread, where fewer, larger
   * groups mean fewer part files to write, read and merge.
   */
  minGroupsFromWorkRows: z.number().int().nonnegative().optional(),
  buildId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/).optional(),
});
export type PlanInput = z.infer<typeof PlanInputSchema>;

export interface PlannedFragment {
  id: number;
  path: string;
  rows: number;
  size: number;
  fingerprint: string;
}

export interface PlanGroup {
  groupId: number;
  rows: number;
  fragments: PlannedFragment[];
}

export interface PlannedIndex {
  name: string;
  column: string;
  type: 'zonemap' | 'bitmap';
  params: { rowsPerZone?: number };
  /** Known when the index exists or new fragments were read in planning. */
  valueType?: string;
  /** True when this build defines the index. */
  isNew: boolean;
  /** Fragments this build adds to the index. */
  fragmentIds: number[];
  /** Groups holding any of those fragments. */
  groups: number[];
}

export interface Plan {
  dataset: string;
  buildId: string;
  createdAt: string;
  /** Manifest version after fragment registration. */
  baseVersion: number;
  fragmentsAdded: number;
  /**
   * Fragments whose content turns out bad while parts are built (registration reads only
   * footers) are left out of their part and recorded as failed at commit, instead of failing
   * the build.
   */
  skipBadFragments: boolean;
  indexes: PlannedIndex[];
  groups: PlanGroup[];
}

/** What the plan step returns (the full plan is in the store). */
export interface PlanOutput {
  dataset: string;
  buildId: string;
  baseVersion: number;
  fragmentsAdded: number;
  groupCount: number;
  /** Group ids, the items of the fan-out. */
  groupIds: number[];
  /** Fragments this build registered as failed (skipBadFragments), with the reason. */
  fragmentsFailed: { path: string; reason: string }[];
  /** Registered fragments whose files are gone from data/, now recorded as removed. */
  fragmentsRemoved: { id: number; path: string }[];
  /** Registered fragments whose files were rewritten: removed, and the file registered again under a new id. */
  fragmentsReplaced: { id: number; path: string; reason: string }[];
  /** False when nothing needs building: the workflow can skip to the end. */
  hasWork: boolean;
  /** Store key of the item list for a Distributed Map ItemReader. */
  itemsKey: string;
}

export const BuildPartInputSchema = z.object({
  dataset: z.string().min(1),
  buildId: z.string().min(1),
  groupId: z.number().int().nonnegative(),
});
export type BuildPartInput = z.infer<typeof BuildPartInputSchema>;

export interface BuildPartOutput {
  groupId: number;
  rows: number;
  parts: number;
  /** Set by the local engine's worker threads: which thread built the part. */
  threadId?: number;
}

export const MergeInputSchema = z.object({ dataset: z.string().min(1), buildId: z.string().min(1) });
export type MergeStepInput = z.infer<typeof MergeInputSchema>;

/** A file of a segment (or of a part, which is a complete segment of one group). */
export interface SegmentFile {
  name: string;
  key: string;
  size: number;
  crc32c: string;
}

/**
 * What build-part records for an index's part once its files are written
 * (`_index/builds/<buildId>/parts/<index dir>/<groupId>.json`, create-only): the part's files
 * with their checksums, the fragments it covers, and the fragments of its group it left out
 * because their content was bad (skipBadFragments).
 */
export interface PartRecord {
  groupId: number;
  files: SegmentFile[];
  fragmentIds: number[];
  rows: number;
  failed: { id: number; path: string; reason: string }[];
}

/** The new segment a build made for one index: a part as it is, or the merge of its parts. */
export interface NewSegment {
  name: string;
  column: string;
  type: 'zonemap' | 'bitmap';
  params: { rowsPerZone?: number };
  valueType: string;
  files: SegmentFile[];
  /** Fragments the segment's files hold. */
  fragmentIds: number[];
  rows: number;
  /** Part directories the merge read and the commit no longer needs (empty when a part became the segment). */
  partDirs: string[];
  peakHeldBytes: number;
}

export interface MergeOutput {
  dataset: string;
  buildId: string;
  segments: NewSegment[];
  /** Fragments found bad while building parts, to record as failed. */
  failed: { id: number; path: string; reason: string }[];
}

/** One compaction to run: merge these segments of an index (or these fragment table chunks). */
export interface CompactionTask {
  /** An index name, or `null` for the fragment table. */
  index: string | null;
  /** Segment ids (or chunk keys) to merge. */
  inputs: string[];
}

export interface CommitOutput {
  version: number;
  committed: boolean;
  fragmentsAdded: number;
  indexes: { name: string; column: string; type: string; fragmentsCovered: number; segments: number; bytes: number }[];
  /** Fragments found bad while their parts were built, now recorded as failed (at most 20, for the state payload). */
  fragmentsFailedLater: { id: number; path: string; reason: string }[];
  /** What the compaction policy asks for after this commit (the workflow runs it next). */
  compaction: { needed: boolean; tasks: CompactionTask[] };
}

export const buildPrefix = (buildId: string) => `_index/builds/${buildId}/`;
export const planKey = (buildId: string) => `${buildPrefix(buildId)}plan.json`;
export const itemsKey = (buildId: string) => `${buildPrefix(buildId)}items.json`;

/**
 * The one path segment an index's files live under (`_index/indexes/<dir>/…`, and its parts
 * under a build): the index name itself when it is a plain name, else a readable stem and a
 * hash of the name, so that a column called `a/b`, `..` or `x\ny` cannot add folders, escape,
 * or be refused as a key, and two names never share a segment.
 */
export function indexDirName(name: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/.test(name)) return name;
  const stem = name.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 60);
  return `${stem}-${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** Where build-part writes an index's part for a group: a segment directory of its own. */
export const partDir = (buildId: string, index: string, groupId: number) => `${indexFilesPrefix(index)}${buildId}-g${groupId}/`;
/** Where build-part records a finished part. */
export const partRecordsPrefix = (buildId: string, index: string) => `${buildPrefix(buildId)}parts/${indexDirName(index)}/`;
export const partRecordKey = (buildId: string, index: string, groupId: number) => `${partRecordsPrefix(buildId, index)}${groupId}.json`;
/** The name of a part record under partRecordsPrefix: its group id. */
export const PART_RECORD_NAME = /^(0|[1-9][0-9]{0,9})\.json$/;
/** Where a merge or compaction writes an index's files: a fresh directory each time. */
export const indexFilesPrefix = (index: string) => `_index/indexes/${indexDirName(index)}/`;
