/**
 * Answering a predicate from the indexes (index-format.md "Combining answers").
 *
 * 1. The predicate is put in negation normal form (normalize.ts): NOT pushed down to the
 *    leaves, lists kept as one `in` leaf.
 * 2. Each leaf is answered by the best index on its column (bitmap, else zone map), or is
 *    "every row, inexact" when the column has no index.
 * 3. AND and OR fold their children's answers one at a time, so a query holds one
 *    accumulated answer plus the child being evaluated, however long the chain.
 * 4. The answer covers the whole dataset, which is the files under `data/`: unless told to
 *    trust the registered snapshot (`registeredOnly`), the query lists `data/` and compares
 *    it with the manifest (discover.ts). Fragments no used index covers, failed ones, files
 *    rewritten since they were registered and files not registered yet are never pruned:
 *    they come back in `unindexedFragments` for the caller to scan. Files deleted since they
 *    were registered are left out of the answer altogether.
 */
import { openDataset } from '../dataset.js';
import type { ColumnType } from '../format/column-type.js';
import { RoaringBitmap32, type RowSet } from '../format/rowset.js';
import type { Condition, IndexSearcher, IndexType } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { discover, listFragmentFiles } from '../manifest/discover.js';
import { emptyManifest, listVersions, loadLatestManifest, readManifest, versionKey, type IndexEntry, type Manifest } from '../manifest/manifest.js';
import type { ObjectStore } from '../store/store.js';
import type { Predicate } from './ast.js';
import { coerceComparison, coerceList, columnTypeFromSignature } from './coerce.js';
import type { QueryCache } from './cache.js';
import { leafColumns, normalize, type Leaf, type Normalized } from './normalize.js';
import { parsePredicate } from './parser.js';

export { normalize, type Normalized } from './normalize.js';

/** Why a fragment must be scanned in full by the caller. */
export type UnindexedReason = 'unregistered' | 'failed' | 'changed' | 'not covered';

export interface QueryResult {
  exact: boolean;
  rows: number;
  fragments: { id: number; path: string; ranges: [number, number][] }[];
  /**
   * Fragments the answer says nothing about, to scan in full: `id` is null for a file under
   * `data/` that is not registered yet.
   */
  unindexedFragments: { id: number | null; path: string; reason: UnindexedReason }[];
  indexesUsed: string[];
  /** The manifest version the answer was read from (0: none yet). */
  version: number;
  /**
   * `listed`: `data/` was listed, so the answer accounts for every file there;
   * `registered-only`: only the fragments that version registers were considered.
   */
  discovery: 'listed' | 'registered-only';
  /** Ranged reads of index files. */
  stats: { version: number; indexReads: number };
}

interface UsedIndex {
  entry: IndexEntry;
  ct: ColumnType;
  exact: boolean;
  searcher?: Promise<IndexSearcher>;
}

export interface QueryOptions {
  /** Only use indexes of these types (default: all; a bitmap is preferred over a zone map). */
  use?: readonly IndexType[];
  /** Reuse manifests and opened indexes across queries (see QueryCache). */
  cache?: QueryCache;
  /**
   * Answer over the fragments the latest version registers, without listing `data/`: files
   * added, deleted or rewritten since the last build are not accounted for. Saves the listing
   * (one LIST request per 1,000 fragment files on S3).
   */
  registeredOnly?: boolean;
}

/** The latest manifest; with a cache, a version already parsed is not read again (versions never change). */
async function latestManifest(store: ObjectStore, cache: QueryCache | undefined): Promise<Manifest> {
  if (!cache) return loadLatestManifest(store);
  const versions = await listVersions(store);
  const latest = versions[versions.length - 1];
  if (latest === undefined) return emptyManifest();
  const key = `manifest|${store.describe(versionKey(latest))}`;
  let manifest = cache.get<Manifest>(key);
  if (!manifest) {
    manifest = await readManifest(store, latest);
    cache.set(key, manifest, 1024 + 200 * manifest.fragments.length + 200 * manifest.indexes.reduce((n, e) => n + e.fragmentIds.length + 8, 0));
  }
  return manifest;
}

/**
 * Which rows of a dataset may satisfy `where`.
 *
 * @example
 * const r = await query('s3://sales-data/datasets/2026', "region = 'APAC' AND price < 20");
 * // r.fragments: [{ id: 0, path: 'data/part-0.arrow', ranges: [[0, 120], …] }, …]; scan r.unindexedFragments in full
 */
export async function query(dataset: string, where: string | Predicate, options: QueryOptions = {}): Promise<QueryResult> {
  const predicate = typeof where === 'string' ? parsePredicate(where) : where;
  const { store } = openDataset(dataset);
  // The listing starts with the manifest read: both are needed, neither waits for the other.
  const [manifest, files] = await Promise.all([latestManifest(store, options.cache), options.registeredOnly ? undefined : listFragmentFiles(store)]);
  const tree = normalize(predicate);
  const rowsOf = new Map(manifest.fragments.map((f) => [f.id, f.rows]));

  // Best index per column: exact (bitmap) before AtMost (zone map).
  const used = new Map<string, UsedIndex>();
  for (const column of leafColumns(tree)) {
    const candidates = manifest.indexes.filter((e) => e.column === column && (!options.use || options.use.includes(e.type)));
    const entry = candidates.find((e) => indexKind(e.type).exact) ?? candidates[0];
    if (entry) used.set(column, { entry, ct: columnTypeFromSignature(entry.valueType), exact: indexKind(entry.type).exact });
  }

  // The fragments the answer is about: registered, not removed, and (when listed) still there.
  const found = files ? discover(manifest, files) : undefined;
  const gone = new Set(found?.missing.map((f) => f.id));
  const changed = new Set(found?.changed.map((c) => c.entry.id));
  const present = manifest.fragments.filter((f) => f.removed === undefined && !gone.has(f.id));
  const unindexed = new Map<number, UnindexedReason>();
  for (const f of present) {
    if (f.failed !== undefined) unindexed.set(f.id, 'failed');
    else if (changed.has(f.id)) unindexed.set(f.id, 'changed');
  }
  for (const u of used.values()) {
    const covered = new Set(u.entry.fragmentIds);
    for (const f of present) if (!covered.has(f.id) && !unindexed.has(f.id)) unindexed.set(f.id, 'not covered');
  }
  const universe = present.filter((f) => !unindexed.has(f.id)).map((f) => f.id);
  const inUniverse = new Set(universe);

  const full = (): RowSet => {
    const out: RowSet = new Map();
    for (const id of universe) {
      const rows = rowsOf.get(id)!;
      if (rows > 0) out.set(id, RoaringBitmap32.fromRange(0, rows));
    }
    return out;
  };

  const evalLeaf = async (leaf: Leaf): Promise<{ set: RowSet; exact: boolean }> => {
    if (leaf.kind === 'unknown') return { set: new Map(), exact: true };
    const u = used.get(leaf.column);
    if (!u) return { set: full(), exact: false };
    let cond: Condition;
    if (leaf.kind === 'cmp') cond = coerceComparison(u.ct, leaf.column, leaf.op, leaf.value);
    else if (leaf.kind === 'in') cond = coerceList(u.ct, leaf.column, leaf.values, leaf.negated);
    else cond = { kind: leaf.kind };
    if (cond.kind === 'none') return { set: new Map(), exact: true };
    u.searcher ??= indexKind(u.entry.type).open(
      store,
      u.ct,
      u.entry.files,
      { fragmentIds: u.entry.fragmentIds.filter((id) => inUniverse.has(id)), rows: (id) => rowsOf.get(id) },
      options.cache,
    );
    const set = await (await u.searcher).search(cond);
    // Index files may still hold rows of fragments that no longer count (removed, rewritten).
    for (const id of set.keys()) if (!inUniverse.has(id)) set.delete(id);
    return { set, exact: u.exact };
  };

  const evaluate = async (n: Normalized): Promise<{ set: RowSet; exact: boolean }> => {
    if (n.kind === 'leaf') return evalLeaf(n.leaf);
    let acc: { set: RowSet; exact: boolean } | undefined;
    for (const c of n.children) {
      const next = await evaluate(c);
      if (!acc) acc = next;
      else {
        combine(n.kind, acc.set, next.set);
        acc.exact &&= next.exact;
      }
      // Nothing can match: exactly nothing, whatever the rest says (an AtMost answer that is
      // empty is exact too).
      if (n.kind === 'and' && isEmpty(acc.set)) return { set: acc.set, exact: true };
    }
    return acc ?? { set: new Map(), exact: true };
  };

  const { set, exact } = await evaluate(tree);
  let rows = 0;
  const fragments: QueryResult['fragments'] = [];
  for (const f of present) {
    const bm = set.get(f.id);
    if (!bm || bm.size === 0) continue;
    rows += bm.size;
    fragments.push({ id: f.id, path: f.path, ranges: toRanges(bm) });
  }
  const unindexedFragments: QueryResult['unindexedFragments'] = [
    ...present.filter((f) => unindexed.has(f.id)).map((f) => ({ id: f.id, path: f.path, reason: unindexed.get(f.id)! })),
    ...(found?.unregistered ?? []).map((o) => ({ id: null, path: o.key, reason: 'unregistered' as const })),
  ];
  return {
    // No candidate row: exactly none, whichever index said so.
    exact: exact || rows === 0,
    rows,
    fragments,
    unindexedFragments,
    indexesUsed: [...new Set([...used.values()].map((u) => u.entry.name))],
    version: manifest.version,
    discovery: files ? 'listed' : 'registered-only',
    stats: { version: manifest.version, indexReads: await countReads(used) },
  };
}

/** `into` AND/OR `other`, in place (`other` is consumed). */
function combine(kind: 'and' | 'or', into: RowSet, other: RowSet): void {
  if (kind === 'and') {
    for (const [id, bm] of into) {
      const o = other.get(id);
      if (o) bm.andInPlace(o);
      if (!o || bm.size === 0) into.delete(id);
    }
  } else {
    for (const [id, bm] of other) {
      const have = into.get(id);
      if (have) have.orInPlace(bm);
      else into.set(id, bm);
    }
  }
}

function isEmpty(set: RowSet): boolean {
  for (const bm of set.values()) if (bm.size > 0) return false;
  return true;
}

async function countReads(used: Map<string, UsedIndex>): Promise<number> {
  let n = 0;
  for (const u of used.values()) if (u.searcher) n += (await u.searcher).reads;
  return n;
}

/** Sorted, non-overlapping [start, end) runs of a bitmap. */
export function toRanges(bm: InstanceType<typeof RoaringBitmap32>): [number, number][] {
  const out: [number, number][] = [];
  const values = bm.toUint32Array();
  let i = 0;
  while (i < values.length) {
    const start = values[i]!;
    let end = start + 1;
    i++;
    while (i < values.length && values[i] === end) {
      end++;
      i++;
    }
    out.push([start, end]);
  }
  return out;
}
