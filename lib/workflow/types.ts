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

export interface MergedIndex {
  name: string;
  column: string;
  type: 'zonemap' | 'bitmap';
  params: { rowsPerZone?: number };
  valueType: string;
  /** Keys of the files the merge started from (empty for a new index). */
  baseFiles: string[];
  /** The new version's files, with the CRC32C computed as each was written. */
  files: { name: string; key: string; size: number; crc32c: string }[];
  fragmentIds: number[];
  peakHeldBytes: number;
}

export interface MergeOutput {
  dataset: string;
  buildId: string;
  merged: MergedIndex[];
}

export interface CommitOutput {
  version: number;
  committed: boolean;
  fragmentsAdded: number;
  indexes: { name: string; column: string; type: string; fragmentsCovered: number; bytes: number }[];
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

export const partKey = (buildId: string, index: string, groupId: number, type: string) =>
  `${buildPrefix(buildId)}${indexDirName(index)}/part_${groupId}_${type}.arrow`;
export const partsPrefix = (buildId: string, index: string) => `${buildPrefix(buildId)}${indexDirName(index)}/`;
/** Where a merge writes an index's new files: a fresh directory per merge. */
export const indexFilesPrefix = (index: string) => `_index/indexes/${indexDirName(index)}/`;
export const PART_NAME = /^part_(0|[1-9][0-9]{0,9})_(zonemap|bitmap)\.arrow$/;
/**
 * A part's checksum record, `<part key>.crc32c`: JSON `{"size": n, "crc32c": "<base64>"}`,
 * written create-only by build-part after the part's bytes are checksummed and before the
 * part is published, so every visible part has one. The merge verifies the part against it.
 */
export const PART_CHECKSUM_SUFFIX = '.crc32c';
export const partChecksumKey = (partKey: string) => `${partKey}${PART_CHECKSUM_SUFFIX}`;
