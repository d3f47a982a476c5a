/**
 * Step 4 of a build: commit each index's new segment into the manifest, record the fragments
 * found bad as failed, then delete what the build no longer needs (its prefix, and the part
 * directories a merge replaced). In that order: a failed commit leaves everything to try again.
 *
 * Segments cover disjoint fragments. If another build covered some of the same fragments
 * first (two builds racing on new files), or some were removed or found bad meanwhile, this
 * segment still lands: those fragments are listed as stale in it (its files hold their rows,
 * they do not count) and a compaction drops them. No rebase ever re-reads or rewrites data.
 */
import { openDataset } from '../dataset.js';
import { IndexParamsError } from '../errors.js';
import { commitManifest, coverageOf, liveRanges, newSegmentId, type IndexEntry, type Manifest } from '../manifest/manifest.js';
import { countOf, intersect, rangesOf, subtract } from '../manifest/ranges.js';
import { listAll, type ObjectStore } from '../store/store.js';
import { compactionTasks } from './compaction-policy.js';
import { markGone, readPlan } from './plan.js';
import { buildPrefix, type CommitOutput, type MergeOutput } from './types.js';

export async function commit(merged: MergeOutput): Promise<CommitOutput> {
  const { store } = openDataset(merged.dataset);
  const dropped: string[] = [];
  const result = await commitManifest(store, (latest) => apply(latest, merged, dropped));
  const fragmentsAdded = await registeredBy(store, merged.buildId);
  // The parts a merge replaced, and any segment that ended up covering nothing.
  const unreferenced = [...merged.segments.flatMap((s) => s.partDirs), ...dropped];
  const leftovers = (await Promise.all(unreferenced.map((d) => listAll(store, d)))).flat().map((o) => o.key);
  await store.deleteMany([...(await listAll(store, buildPrefix(merged.buildId))).map((o) => o.key), ...leftovers]);
  return summarize(result.manifest, result.committed, fragmentsAdded, merged);
}

async function registeredBy(store: ObjectStore, buildId: string): Promise<number> {
  return (await readPlan(store, buildId)).fragmentsAdded;
}

function apply(latest: Manifest, merged: MergeOutput, dropped: string[]): Manifest | null {
  dropped.length = 0;
  let changed = false;
  // Fragments a part found bad: failed from now on (unless already gone).
  const bad = subtract(rangesOf(merged.failed.map((f) => f.id)), latest.fragments.removed);
  const newlyBad = subtract(bad, latest.fragments.failed);
  if (newlyBad.length > 0) {
    markGone(latest, newlyBad, 'failed');
    const reasons = new Map(merged.failed.map((f) => [f.id, f.reason.slice(0, 500)]));
    for (const [s, e] of newlyBad) for (let id = s; id < e; id++) latest.fragments.failures.push({ id, reason: reasons.get(id)! });
    latest.fragments.failures.sort((a, b) => a.id - b.id);
    changed = true;
  }
  const live = liveRanges(latest);
  const now = new Date().toISOString();
  for (const s of merged.segments) {
    let ix = latest.indexes.find((e) => e.name === s.name);
    if (!ix) {
      ix = { name: s.name, column: s.column, type: s.type, params: s.params, valueType: s.valueType, segments: [], updatedAt: now };
      latest.indexes.push(ix);
    } else if (JSON.stringify(ix.params) !== JSON.stringify(s.params) || ix.valueType !== s.valueType) {
      throw new IndexParamsError(`index ${s.name} was defined meanwhile with ${JSON.stringify(ix.params)} (${ix.valueType}); this build made it with ${JSON.stringify(s.params)} (${s.valueType})`);
    }
    const held = rangesOf(s.fragmentIds);
    // What still counts: live, and not covered by a segment committed meanwhile.
    const fragments = intersect(subtract(held, coverageOf(ix)), live);
    if (fragments.length === 0) {
      dropped.push(s.files[0]!.key.slice(0, s.files[0]!.key.lastIndexOf('/') + 1));
      continue;
    }
    const stale = subtract(held, fragments);
    ix.segments.push({
      id: newSegmentId(),
      fragments,
      ...(stale.length > 0 && { stale }),
      rows: s.rows,
      bytes: s.files.reduce((n, f) => n + f.size, 0),
      files: s.files,
      createdAt: now,
    });
    ix.updatedAt = now;
    changed = true;
  }
  return changed ? latest : null;
}

async function summarize(manifest: Manifest, committed: boolean, fragmentsAdded: number, merged: MergeOutput): Promise<CommitOutput> {
  const touched = new Set(merged.segments.map((s) => s.name));
  const tasks = compactionTasks(manifest);
  return {
    version: manifest.version,
    committed,
    fragmentsAdded,
    indexes: manifest.indexes.filter((e) => touched.has(e.name)).map(indexSummary),
    fragmentsFailedLater: merged.failed.slice(0, 20).map((f) => ({ ...f, reason: f.reason.slice(0, 300) })),
    compaction: { needed: tasks.length > 0, tasks },
  };
}

/** What a build reports of one index: what it covers, in how many segments, how many bytes. */
export function indexSummary(e: IndexEntry): { name: string; column: string; type: string; fragmentsCovered: number; segments: number; bytes: number } {
  return { name: e.name, column: e.column, type: e.type, fragmentsCovered: countOf(coverageOf(e)), segments: e.segments.length, bytes: e.segments.reduce((n, s) => n + s.bytes, 0) };
}
