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
import { allFragments, coverageOf, emptyManifest, listVersions, loadLatestManifest, readManifest, registeredRanges, someFragments, versionKey, type IndexEntry, type Manifest } from '../manifest/manifest.js';
import { has, idsOf, intersect, rangesOf, subtract, union, type IdRanges } from '../manifest/ranges.js';
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
  /**
   * Ranged reads of index files, and what the manifest registered about the fragments whose
   * rows the answer vouches for (candidates, and registered ones no used index covers), by
   * id: readers of those rows check the file is still that one (not part of the CLI's JSON).
   */
  stats: { version: number; indexReads: number; files: Map<number, RegisteredFile> };
}

/**
 * What the manifest registered about a fragment file, for readers that check it is still the
 * same file (`scan` does).
 */
export interface RegisteredFile {
  size: number;
  rows: number;
  fingerprint: string;
  /** The store's tag at registration, when recorded. */
  etag?: string;
}

interface UsedIndex {
  entry: IndexEntry;
  ct: ColumnType;
  exact: boolean;
  /** One searcher per segment that covers part of the answer's universe. */
  searchers?: Promise<IndexSearcher[]>;
}

export interface QueryOptions {
  /** Only use indexes of these types (default: all; a bitmap is preferred over a zone map). */
  use?: readonly IndexType[];
  /** Reuse manifests and opened indexes across queries (see QueryCache). */
  cache?: QueryCache;
  /**
   * Answer over the fragments the latest version registers, without listing `data/`: files
   * added, deleted or rewritten since the last build are not accounted for. Saves the listing
   * (one LIST request per 1,000 fragment files on S3) and the read of the whole fragment
   * table that comparing with it takes: only the table rows the answer names are read.
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
    cache.set(key, manifest, 4096 + JSON.stringify(manifest).length);
  }
  return manifest;
}

/** Whether answering `cond` needs every covered row (a complement), so the fragments' row counts. */
function needsRows(cond: Condition | undefined): boolean {
  if (!cond) return true; // no index: every row, inexact
  return cond.kind === 'notNull' || (cond.kind === 'cmp' && cond.op === '!=') || (cond.kind === 'in' && cond.negated);
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

  // Best index per column: exact (bitmap) before AtMost (zone map).
  const used = new Map<string, UsedIndex>();
  for (const column of leafColumns(tree)) {
    const candidates = manifest.indexes.filter((e) => e.column === column && (!options.use || options.use.includes(e.type)));
    const entry = candidates.find((e) => indexKind(e.type).exact) ?? candidates[0];
    if (entry) used.set(column, { entry, ct: columnTypeFromSignature(entry.valueType), exact: indexKind(entry.type).exact });
  }

  // The fragments the answer is about: registered, not removed, and (when listed) still there.
  // Comparing with the listing needs the whole table; the registered snapshot needs only ranges.
  const all = files ? await allFragments(store, manifest) : undefined;
  const found = files ? discover(all!, files) : undefined;
  const gone = rangesOf(found?.missing.map((f) => f.id) ?? []);
  const changed = rangesOf(found?.changed.map((c) => c.entry.id) ?? []);
  const present = subtract(subtract(registeredRanges(manifest), manifest.fragments.removed), gone);
  const failed = intersect(present, manifest.fragments.failed);
  const changedHere = subtract(intersect(present, changed), failed);
  const answerable = subtract(subtract(present, failed), changedHere);
  let notCovered: IdRanges = [];
  for (const u of used.values()) notCovered = union(notCovered, subtract(answerable, coverageOf(u.entry)));
  const universe = subtract(answerable, notCovered);
  const inUniverse = (id: number) => has(universe, id);

  // Row counts of the universe's fragments, read only when an answer needs every row.
  let rowsOf: Map<number, number> | undefined;
  const ensureRows = async (): Promise<Map<number, number>> => {
    if (!rowsOf) {
      const entries = all ?? [...(await someFragments(store, manifest, idsOf(universe), options.cache)).values()];
      rowsOf = new Map(entries.filter((f) => inUniverse(f.id)).map((f) => [f.id, f.rows]));
    }
    return rowsOf;
  };
  const rowsFor = (id: number) => rowsOf?.get(id);

  const full = (rows: Map<number, number>): RowSet => {
    const out: RowSet = new Map();
    for (const [id, n] of rows) if (n > 0) out.set(id, RoaringBitmap32.fromRange(0, n));
    return out;
  };

  const searchersOf = (u: UsedIndex): Promise<IndexSearcher[]> =>
    (u.searchers ??= Promise.all(
      u.entry.segments
        .map((seg) => ({ seg, ids: intersect(seg.fragments, universe) }))
        .filter(({ ids }) => ids.length > 0)
        .map(({ seg, ids }) => indexKind(u.entry.type).open(store, u.ct, seg.files, { fragmentIds: [...idsOf(ids)], rows: rowsFor }, options.cache)),
    ));

  const evalLeaf = async (leaf: Leaf): Promise<{ set: RowSet; exact: boolean }> => {
    if (leaf.kind === 'unknown') return { set: new Map(), exact: true };
    const u = used.get(leaf.column);
    if (!u) return { set: full(await ensureRows()), exact: false };
    let cond: Condition;
    if (leaf.kind === 'cmp') cond = coerceComparison(u.ct, leaf.column, leaf.op, leaf.value);
    else if (leaf.kind === 'in') cond = coerceList(u.ct, leaf.column, leaf.values, leaf.negated);
    else cond = { kind: leaf.kind };
    if (cond.kind === 'none') return { set: new Map(), exact: true };
    if (needsRows(cond)) await ensureRows();
    // Segments cover disjoint fragments: their answers add up.
    const set: RowSet = new Map();
    for (const searcher of await searchersOf(u)) {
      for (const [id, bm] of await searcher.search(cond)) {
        // Index files may still hold rows of fragments that no longer count (removed, rewritten).
        if (inUniverse(id)) set.set(id, bm);
      }
    }
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
  const answered = [...set].filter(([, bm]) => bm.size > 0).sort((a, b) => a[0] - b[0]);
  const toScan = union(union(failed, changedHere), notCovered);
  // The table rows the answer names: only those are read (unless the listing read them all).
  const named = all ? new Map(all.map((f) => [f.id, f])) : await someFragments(store, manifest, [...answered.map(([id]) => id), ...idsOf(toScan)], options.cache);
  let rows = 0;
  const fragments: QueryResult['fragments'] = [];
  for (const [id, bm] of answered) {
    rows += bm.size;
    fragments.push({ id, path: named.get(id)!.path, ranges: toRanges(bm) });
  }
  // Failed and changed fragments are read as they are now: what was registered says nothing of them.
  const registeredFiles = new Map<number, RegisteredFile>();
  for (const id of [...answered.map(([id]) => id), ...idsOf(notCovered)]) {
    const f = named.get(id)!;
    registeredFiles.set(id, { size: f.size, rows: f.rows, fingerprint: f.fingerprint, ...(f.etag !== undefined && { etag: f.etag }) });
  }
  const reasonOf = (id: number): UnindexedReason => (has(failed, id) ? 'failed' : has(changedHere, id) ? 'changed' : 'not covered');
  const unindexedFragments: QueryResult['unindexedFragments'] = [
    ...[...idsOf(toScan)].map((id) => ({ id, path: named.get(id)!.path, reason: reasonOf(id) })),
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
    stats: { version: manifest.version, indexReads: await countReads(used), files: registeredFiles },
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
  for (const u of used.values()) if (u.searchers) for (const s of await u.searchers) n += s.reads;
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
