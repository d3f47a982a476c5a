/**
 * A whole build in one process: plan → build parts (several at once) → merge → commit, the
 * same four steps the Step Functions workflow runs as Lambdas.
 */
import { openDataset } from '../dataset.js';
import type { WriterTuning } from '../indexes/kind.js';
import { loadLatestManifest } from '../manifest/manifest.js';
import { buildPart } from './build-part.js';
import { commit } from './commit.js';
import { merge } from './merge.js';
import { plan, type Progress } from './plan.js';
import type { IndexRequest } from './types.js';

export interface BuildOptions {
  dataset: string;
  indexes?: IndexRequest[];
  groupRows?: number;
  /** Parts built at once. */
  concurrency?: number;
  progress?: Progress;
  tuning?: WriterTuning;
}

/** The `build --json` summary (contract.md). */
export interface BuildSummary {
  version: number;
  fragmentsAdded: number;
  indexes: { name: string; column: string; type: string; fragmentsCovered: number; bytes: number }[];
  /** False when there was nothing to do. */
  changed: boolean;
}

export async function build(options: BuildOptions): Promise<BuildSummary> {
  const progress = options.progress ?? (() => {});
  const planned = await plan({ dataset: options.dataset, indexes: options.indexes, groupRows: options.groupRows }, progress);
  if (planned.hasWork) {
    const queue = [...planned.groupIds];
    let done = 0;
    progress({ step: 'parts', done, total: queue.length });
    const worker = async () => {
      for (let g = queue.shift(); g !== undefined; g = queue.shift()) {
        await buildPart({ dataset: options.dataset, buildId: planned.buildId, groupId: g }, options.tuning);
        progress({ step: 'parts', done: ++done, total: planned.groupCount });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));
    progress({ step: 'merge' });
    const merged = await merge({ dataset: options.dataset, buildId: planned.buildId }, options.tuning);
    progress({ step: 'commit' });
    await commit(merged, options.tuning);
  }
  const { store } = openDataset(options.dataset);
  const manifest = await loadLatestManifest(store);
  const wanted = options.indexes?.length ? new Set(options.indexes.map((r) => `${r.column}_${r.type}`)) : undefined;
  return {
    version: manifest.version,
    fragmentsAdded: planned.fragmentsAdded,
    changed: planned.hasWork || planned.fragmentsAdded > 0,
    indexes: manifest.indexes
      .filter((e) => !wanted || wanted.has(e.name))
      .map((e) => ({ name: e.name, column: e.column, type: e.type, fragmentsCovered: e.fragmentIds.length, bytes: e.files.reduce((n, f) => n + f.size, 0) })),
  };
}
