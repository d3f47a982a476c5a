/**
 * The workflow's three task steps, exactly as the state machine runs them: the Lambda
 * handlers in `functions/` and the local engine both call these, so the two engines differ
 * only in who invokes them. Inputs are validated here; outputs stay small (the 256 KiB
 * Step Functions payload limit), with bulky data left in the store.
 */
import { z } from 'zod';
import { UsageError } from '../errors.js';
import type { WriterTuning } from '../indexes/kind.js';
import { parseS3Uri } from '../store/s3-uri.js';
import { buildPart } from './build-part.js';
import { commit } from './commit.js';
import { merge } from './merge.js';
import { plan, type Progress } from './plan.js';
import { compact } from './compact.js';
import { buildPrefix, BuildPartInputSchema, IndexRequestSchema, type BuildPartOutput, type CommitOutput, type CompactionTask } from './types.js';

/** Settings a deployment fixes (Lambda environment, CLI flags), not the execution input. */
export interface StepSettings {
  /** Rows per fragment group, i.e. per build-part invocation. */
  groupRows?: number;
  /** Distributed Map concurrency the plan step hands to the state machine. */
  maxConcurrency?: number;
  /** Default for the input's skipBadFragments (the Lambda sets it from SKIP_BAD_FRAGMENTS). */
  skipBadFragments?: boolean;
  /** Without a group size, split new rows into at least this many groups (local engine). */
  minGroups?: number;
  /** ...but only from this much work on (rows × indexes; local engine: where workers start). */
  minGroupsFromWorkRows?: number;
  tuning?: WriterTuning;
  progress?: Progress;
  /**
   * Refuse datasets that are not `s3://` URIs (the Lambda handlers: a local path there would
   * name the function's own file system, which nothing else can see).
   */
  s3Only?: boolean;
}

export const DEFAULT_MAX_CONCURRENCY = 40;

/** The state machine input (contract.md): what a person types in the console. */
export const WorkflowInputSchema = z.object({
  dataset: z.string().min(1, 'dataset must not be empty'),
  indexes: z.array(IndexRequestSchema).optional(),
  groupRows: z.number().int().positive().optional(),
  /** Record bad fragments as failed instead of failing the build. */
  skipBadFragments: z.boolean().optional(),
});
export type WorkflowInput = z.infer<typeof WorkflowInputSchema>;

/** What the plan task returns to the state machine. */
export interface PlanStepOutput {
  dataset: string;
  buildId: string;
  hasWork: boolean;
  groupCount: number;
  fragmentsAdded: number;
  /** Fragments registered as failed by this build (skipBadFragments), with the reason. */
  fragmentsFailed: { path: string; reason: string }[];
  /** Fragments whose files are gone, recorded as removed by this build. */
  fragmentsRemoved: { id: number; path: string }[];
  /** Fragments whose files were rewritten: removed, and registered again under a new id. */
  fragmentsReplaced: { id: number; path: string; reason: string }[];
  baseVersion: number;
  maxConcurrency: number;
  /** The Distributed Map's ItemReader source: the group list in S3 (null for a local dataset). */
  items: { bucket: string; key: string } | null;
  /** Where the Distributed Map's ResultWriter puts the child results, under the build's prefix (null for a local dataset). */
  results: { bucket: string; prefix: string } | null;
  /** The group list's dataset-relative key (what the local engine reads). */
  itemsKey: string;
}

export const MergeStepInputSchema = z.object({ dataset: z.string().min(1), buildId: z.string().min(1) });

/** Parse with a one-line error that names the step and the offending field. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, step: string, settings: StepSettings = {}): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const at = issue.path.length ? issue.path.join('.') : '(input)';
    throw new UsageError(`invalid ${step} input: ${at}: ${issue.message}`);
  }
  const dataset = (r.data as { dataset?: unknown }).dataset;
  if (settings.s3Only && typeof dataset === 'string' && !/^s3:\/\//i.test(dataset)) {
    throw new UsageError(`invalid ${step} input: dataset: ${JSON.stringify(dataset)} is not an s3:// URI (this function reads and writes only S3)`);
  }
  return r.data;
}

export async function planStep(input: unknown, settings: StepSettings = {}): Promise<PlanStepOutput> {
  const { dataset, indexes, groupRows, skipBadFragments } = parseInput(WorkflowInputSchema, input, 'workflow', settings);
  const out = await plan(
    { dataset, indexes, groupRows: groupRows ?? settings.groupRows, minGroups: settings.minGroups, minGroupsFromWorkRows: settings.minGroupsFromWorkRows, skipBadFragments: skipBadFragments ?? settings.skipBadFragments },
    settings.progress,
  );
  let items: PlanStepOutput['items'] = null;
  let results: PlanStepOutput['results'] = null;
  if (/^s3:\/\//i.test(dataset)) {
    const { bucket, prefix } = parseS3Uri(dataset);
    const at = (key: string) => (prefix ? `${prefix}/${key}` : key);
    items = { bucket, key: at(out.itemsKey) };
    results = { bucket, prefix: at(`${buildPrefix(out.buildId)}map-results`) };
  }
  return {
    dataset,
    buildId: out.buildId,
    hasWork: out.hasWork,
    groupCount: out.groupCount,
    fragmentsAdded: out.fragmentsAdded,
    // Reasons are one line each; keep the payload small however many files were bad.
    fragmentsFailed: out.fragmentsFailed.slice(0, 20).map((f) => ({ path: f.path, reason: f.reason.slice(0, 300) })),
    fragmentsRemoved: out.fragmentsRemoved.slice(0, 20),
    fragmentsReplaced: out.fragmentsReplaced.slice(0, 20).map((f) => ({ ...f, reason: f.reason.slice(0, 300) })),
    baseVersion: out.baseVersion,
    maxConcurrency: Math.max(1, Math.min(10_000, settings.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY)),
    items,
    results,
    itemsKey: out.itemsKey,
  };
}

export async function buildPartStep(input: unknown, settings: StepSettings = {}): Promise<BuildPartOutput> {
  return buildPart(parseInput(BuildPartInputSchema, input, 'build-part', settings), settings.tuning);
}

/** Make each index's new segment from its parts and commit them (rebasing if another build won). */
export async function mergeAndCommitStep(input: unknown, settings: StepSettings = {}): Promise<CommitOutput> {
  const { dataset, buildId } = parseInput(MergeStepInputSchema, input, 'merge', settings);
  const merged = await merge({ dataset, buildId }, settings.tuning);
  return commit(merged);
}

export const CompactStepInputSchema = z.object({
  dataset: z.string().min(1),
  task: z.object({ index: z.string().min(1).nullable(), inputs: z.array(z.string().min(1)).min(1).max(1000) }),
});

/** What a compaction step returns to the state machine. */
export interface CompactStepOutput {
  index: string | null;
  /** Compactions run and committed, and ones given up (inputs already compacted elsewhere). */
  committed: number;
  gaveUp: number;
  bytesWritten: number;
  version: number;
}

/** Compactions one step runs at most, following the policy on the same index (a cascade through tiers). */
export const MAX_COMPACTIONS_PER_STEP = 8;

/**
 * Run a compaction task, then whatever the policy asks for next on the same index (or table),
 * until it asks for nothing, another run got there first, or MAX_COMPACTIONS_PER_STEP ran.
 */
export async function compactStep(input: unknown, settings: StepSettings = {}): Promise<CompactStepOutput> {
  const { dataset, task } = parseInput(CompactStepInputSchema, input, 'compact', settings);
  const out: CompactStepOutput = { index: task.index, committed: 0, gaveUp: 0, bytesWritten: 0, version: 0 };
  let next: CompactionTask | undefined = task;
  for (let i = 0; next && i < MAX_COMPACTIONS_PER_STEP; i++) {
    const r = await compact(dataset, next, settings.tuning);
    out.version = r.version;
    if (!r.committed) {
      out.gaveUp++;
      break;
    }
    out.committed++;
    out.bytesWritten += r.bytesWritten;
    next = r.next;
  }
  return out;
}
