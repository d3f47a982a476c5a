/**
 * A whole build on this machine: the shared state machine definition run by the local
 * engine (plan → build parts on every core → merge and commit), the same steps and the same
 * definition Step Functions runs with Lambdas.
 */
import os from 'node:os';
import { openDataset } from '../dataset.js';
import type { WriterTuning } from '../indexes/kind.js';
import { loadLatestManifest } from '../manifest/manifest.js';
import { indexSummary } from './commit.js';
import { runLocalWorkflow, WORKER_MIN_WORK_ROWS, type LocalRunOptions } from './local-engine.js';
import type { Progress } from './plan.js';
import type { IndexRequest } from './types.js';

export interface BuildOptions {
  dataset: string;
  indexes?: IndexRequest[];
  groupRows?: number;
  /** Parts built at once (default: one per core). */
  concurrency?: number;
  progress?: Progress;
  tuning?: WriterTuning;
  /** Record unreadable or mismatched fragments as failed instead of failing the build. */
  skipBadFragments?: boolean;
  /** Replace workflow steps (fault injection in tests). */
  overrideStep?: LocalRunOptions['overrideStep'];
  /** False: leave the compactions the policy asks for to a later `compact` (default: run them after the commit). */
  compact?: boolean;
}

/** The `build --json` summary (contract.md). */
export interface BuildSummary {
  version: number;
  fragmentsAdded: number;
  /** Fragments this build registered as failed (with skipBadFragments). */
  fragmentsFailed: { path: string; reason: string }[];
  /** Registered fragments whose files were gone from data/: recorded as removed. */
  fragmentsRemoved: { id: number; path: string }[];
  /** Registered fragments whose files were rewritten (with skipBadFragments): removed, and registered again. */
  fragmentsReplaced: { id: number; path: string; reason: string }[];
  /** Fragments found bad while their parts were built (with skipBadFragments), recorded as failed. */
  fragmentsFailedLater: { id: number; path: string; reason: string }[];
  indexes: { name: string; column: string; type: string; fragmentsCovered: number; segments: number; bytes: number }[];
  /** Compactions the build ran after its commit (committed, and given up because another run got there first). */
  compaction: { committed: number; gaveUp: number; bytesWritten: number; error?: string };
  /** False when there was nothing to do. */
  changed: boolean;
}

/**
 * @example
 * const summary = await build({ dataset: 's3://sales-data/datasets/2026', indexes: [{ column: 'region', type: 'bitmap' }] });
 */
export async function build(options: BuildOptions): Promise<BuildSummary> {
  const progress = options.progress ?? (() => {});
  const concurrency = Math.max(1, options.concurrency ?? os.availableParallelism());
  let parts = 0;
  let groups = 0;
  const result = await runLocalWorkflow(
    { dataset: options.dataset, indexes: options.indexes, groupRows: options.groupRows, skipBadFragments: options.skipBadFragments },
    {
      concurrency,
      // Two groups per core, but only where the parts go to worker threads: below that, fewer
      // and larger groups (fewer part files) build faster in one thread.
      minGroups: 2 * concurrency,
      minGroupsFromWorkRows: WORKER_MIN_WORK_ROWS,
      tuning: options.tuning,
      progress,
      overrideStep: options.overrideStep,
      compact: options.compact,
      onStep: (e) => {
        if (e.step === 'Plan') {
          groups = e.output.groupCount;
          if (e.output.hasWork) progress({ step: 'parts', done: 0, total: groups });
        } else if (e.step === 'BuildPart') {
          progress({ step: 'parts', done: ++parts, total: groups });
          if (parts === groups) progress({ step: 'merge and commit' });
        } else progress({ step: `compacted ${e.output.index ?? 'the fragment table'}` });
      },
    },
  );
  const { store } = openDataset(options.dataset);
  const manifest = await loadLatestManifest(store);
  const wanted = options.indexes?.length ? new Set(options.indexes.map((r) => `${r.column}_${r.type}`)) : undefined;
  const hasWork = result.kind === 'committed';
  const compacted = result.kind === 'committed' ? result.compacted : [];
  return {
    version: manifest.version,
    fragmentsAdded: result.plan.fragmentsAdded,
    fragmentsFailed: result.plan.fragmentsFailed,
    fragmentsRemoved: result.plan.fragmentsRemoved,
    fragmentsReplaced: result.plan.fragmentsReplaced,
    fragmentsFailedLater: result.kind === 'committed' ? result.commit.fragmentsFailedLater : [],
    changed: hasWork || result.plan.fragmentsAdded > 0 || result.plan.fragmentsRemoved.length > 0,
    indexes: manifest.indexes.filter((e) => !wanted || wanted.has(e.name)).map(indexSummary),
    compaction: {
      committed: compacted.reduce((n, c) => n + c.committed, 0),
      gaveUp: compacted.reduce((n, c) => n + c.gaveUp, 0),
      bytesWritten: compacted.reduce((n, c) => n + c.bytesWritten, 0),
      ...(result.kind === 'committed' && result.compactionError && { error: `${result.compactionError.Error}: ${result.compactionError.Cause}` }),
    },
  };
}
