/**
 * Reading a manifest the way tests want to check it: which fragments an index covers, every
 * file its segments name, every registered fragment with its status.
 */
import { allFragments, coverageOf, type FragmentEntry, type IndexEntry, type Manifest } from '../../lib/manifest/manifest.js';
import { idsOf, type IdRanges } from '../../lib/manifest/ranges.js';
import type { ObjectStore } from '../../lib/store/store.js';

/** The fragment ids an index covers, ascending. */
export function coveredIds(ix: IndexEntry): number[] {
  return [...idsOf(coverageOf(ix))];
}

/** The fragment ids whose rows some segment holds but that no longer count, ascending. */
export function staleIds(ix: IndexEntry): number[] {
  return [...new Set(ix.segments.flatMap((s) => [...idsOf(s.stale ?? ([] as IdRanges))]))].sort((a, b) => a - b);
}

/** Every file an index's segments name. */
export function indexFiles(ix: IndexEntry): IndexEntry['segments'][number]['files'] {
  return ix.segments.flatMap((s) => s.files);
}

/** Every registered fragment, with its status. */
export function fragmentsOf(store: ObjectStore, m: Manifest): Promise<FragmentEntry[]> {
  return allFragments(store, m);
}
