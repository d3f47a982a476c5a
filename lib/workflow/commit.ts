/**
 * Step 4 of a build: commit the merged versions into the manifest, then delete the part
 * files (in that order: a failed commit leaves the parts to merge again). If another build
 * changed an index since the merge read it, the merge is redone on top of that version
 * (rebase) before committing.
 */
import { openDataset } from '../dataset.js';
import type { WriterTuning } from '../indexes/kind.js';
import { commitManifest, isLive, type Manifest } from '../manifest/manifest.js';
import { listAll } from '../store/store.js';
import { merge } from './merge.js';
import { readPlan } from './plan.js';
import { buildPrefix, type CommitOutput, type MergeOutput } from './types.js';

class StaleMerge extends Error {}

export async function commit(merged: MergeOutput, tuning?: WriterTuning, maxRebases = 16): Promise<CommitOutput> {
  const { store } = openDataset(merged.dataset);
  const plan = await readPlan(store, merged.buildId);
  let current = merged;
  for (let rebase = 0; ; rebase++) {
    try {
      const result = await commitManifest(store, (latest) => apply(latest, current));
      await store.deleteMany((await listAll(store, buildPrefix(merged.buildId))).map((o) => o.key));
      return summarize(result.manifest, result.committed, plan.fragmentsAdded, current);
    } catch (err) {
      if (!(err instanceof StaleMerge) || rebase >= maxRebases) throw err;
      // Our merged files are unreferenced now; drop them and merge again on the new base.
      await store.deleteMany(current.merged.flatMap((m) => m.files.map((f) => f.key)));
      current = await merge({ dataset: merged.dataset, buildId: merged.buildId }, tuning);
    }
  }
}

function apply(latest: Manifest, merged: MergeOutput): Manifest | null {
  if (merged.merged.length === 0) return null;
  const now = new Date().toISOString();
  const live = new Set(latest.fragments.filter(isLive).map((f) => f.id));
  for (const m of merged.merged) {
    const i = latest.indexes.findIndex((e) => e.name === m.name);
    const baseNow = i >= 0 ? latest.indexes[i]!.files.map((f) => f.key) : [];
    if (JSON.stringify(baseNow) !== JSON.stringify(m.baseFiles)) throw new StaleMerge(m.name);
    // A fragment removed while this build ran is in the new files but no longer counts.
    const stale = m.fragmentIds.filter((id) => !live.has(id));
    const entry = {
      name: m.name,
      column: m.column,
      type: m.type,
      params: m.params,
      valueType: m.valueType,
      files: m.files,
      fragmentIds: m.fragmentIds.filter((id) => live.has(id)),
      ...(stale.length > 0 && { staleFragmentIds: stale }),
      updatedAt: now,
    };
    if (i >= 0) latest.indexes[i] = entry;
    else latest.indexes.push(entry);
  }
  return latest;
}

function summarize(manifest: Manifest, committed: boolean, fragmentsAdded: number, merged: MergeOutput): CommitOutput {
  const touched = new Set(merged.merged.map((m) => m.name));
  return {
    version: manifest.version,
    committed,
    fragmentsAdded,
    indexes: manifest.indexes
      .filter((e) => touched.has(e.name))
      .map((e) => ({ name: e.name, column: e.column, type: e.type, fragmentsCovered: e.fragmentIds.length, bytes: e.files.reduce((n, f) => n + f.size, 0) })),
  };
}
