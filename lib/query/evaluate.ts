/**
 * Answering a predicate from the indexes (index-format.md "Combining answers").
 *
 * 1. NOT is pushed down to the leaves (De Morgan), where it becomes the complementary
 *    comparison. Under SQL three-valued logic that is exact: a NULL value fails both `x < v`
 *    and `NOT (x < v)`, and on non-null values the float order is total (NaN above all).
 * 2. Each leaf is answered by the best index on its column (bitmap, else zone map), or is
 *    "every row, inexact" when the column has no index.
 * 3. Fragments that any used index does not cover are never pruned: they are listed in
 *    `unindexedFragments` for the caller to scan in full.
 */
import { openDataset } from '../dataset.js';
import type { ColumnType } from '../format/column-type.js';
import { RoaringBitmap32, type RowSet } from '../format/rowset.js';
import type { Condition, IndexSearcher, IndexType } from '../indexes/kind.js';
import { indexKind } from '../indexes/registry.js';
import { emptyManifest, listVersions, loadLatestManifest, readManifest, versionKey, type IndexEntry, type Manifest } from '../manifest/manifest.js';
import type { ObjectStore } from '../store/store.js';
import type { CompareOp, Predicate } from './ast.js';
import { coerceComparison, columnTypeFromSignature } from './coerce.js';
import type { QueryCache } from './cache.js';
import { parsePredicate } from './parser.js';

/** A leaf after NOT push-down; `unknown` is a comparison with NULL (never true, either way). */
type Leaf =
  | { kind: 'cmp'; column: string; op: CompareOp; value: Exclude<Extract<Predicate, { kind: 'compare' }>['value'], { kind: 'null' }> }
  | { kind: 'isNull'; column: string }
  | { kind: 'notNull'; column: string }
  | { kind: 'unknown'; column: string };

export type Normalized = { kind: 'and' | 'or'; children: Normalized[] } | { kind: 'leaf'; leaf: Leaf };

const COMPLEMENT: Record<CompareOp, CompareOp> = { '=': '!=', '!=': '=', '<': '>=', '<=': '>', '>': '<=', '>=': '<' };

/** Negation normal form: only AND/OR over leaves. Iterative over AND/OR chains. */
export function normalize(p: Predicate, negate = false): Normalized {
  switch (p.kind) {
    case 'not':
      return normalize(p.operand, !negate);
    case 'and':
    case 'or': {
      // De Morgan: NOT (a AND b) = NOT a OR NOT b.
      const kind = (p.kind === 'and') !== negate ? 'and' : 'or';
      const children: Normalized[] = [];
      const stack: Predicate[] = [p];
      while (stack.length > 0) {
        const q = stack.pop()!;
        if (q.kind === p.kind) stack.push(q.right, q.left);
        else children.push(normalize(q, negate));
      }
      return { kind, children };
    }
    case 'compare': {
      if (p.value.kind === 'null') return { kind: 'leaf', leaf: { kind: 'unknown', column: p.column } };
      return { kind: 'leaf', leaf: { kind: 'cmp', column: p.column, op: negate ? COMPLEMENT[p.op] : p.op, value: p.value } };
    }
    case 'between':
      return normalize(
        {
          kind: 'and',
          left: { kind: 'compare', column: p.column, op: '>=', value: p.low },
          right: { kind: 'compare', column: p.column, op: '<=', value: p.high },
        },
        negate !== p.negated,
      );
    case 'in': {
      const [first, ...rest] = p.values.map((value): Predicate => ({ kind: 'compare', column: p.column, op: '=', value }));
      const ors = rest.reduce<Predicate>((acc, q) => ({ kind: 'or', left: acc, right: q }), first!);
      return normalize(ors, negate !== p.negated);
    }
    case 'isNull':
      return { kind: 'leaf', leaf: { kind: negate !== p.negated ? 'notNull' : 'isNull', column: p.column } };
  }
}

/**
 * What the manifest registered about a fragment file, for readers that check it is still the
 * same file (`scan` does).
 */
export interface RegisteredFile {
  size: number;
  rows: number;
  fingerprint: string;
}

export interface QueryResult {
  exact: boolean;
  rows: number;
  fragments: { id: number; path: string; ranges: [number, number][] }[];
  unindexedFragments: { id: number; path: string }[];
  indexesUsed: string[];
  /**
   * Manifest version answered from, ranged reads of index files, and what the manifest
   * registered about each fragment the answer names, by id (not part of the CLI's JSON).
   */
  stats: { version: number; indexReads: number; files: Map<number, RegisteredFile> };
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

export async function query(dataset: string, where: string | Predicate, options: QueryOptions = {}): Promise<QueryResult> {
  const predicate = typeof where === 'string' ? parsePredicate(where) : where;
  const { store } = openDataset(dataset);
  const manifest = await latestManifest(store, options.cache);
  const tree = normalize(predicate);
  const rowsOf = new Map(manifest.fragments.map((f) => [f.id, f.rows]));

  // Best index per column: exact (bitmap) before AtMost (zone map).
  const used = new Map<string, UsedIndex>();
  for (const column of leafColumns(tree)) {
    const candidates = manifest.indexes.filter((e) => e.column === column && (!options.use || options.use.includes(e.type)));
    const entry = candidates.find((e) => indexKind(e.type).exact) ?? candidates[0];
    if (entry) used.set(column, { entry, ct: columnTypeFromSignature(entry.valueType), exact: indexKind(entry.type).exact });
  }

  const unindexed = new Set<number>();
  for (const u of used.values()) {
    const covered = new Set(u.entry.fragmentIds);
    for (const f of manifest.fragments) if (!covered.has(f.id)) unindexed.add(f.id);
  }
  const universe = manifest.fragments.filter((f) => !unindexed.has(f.id)).map((f) => f.id);

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
    else cond = { kind: leaf.kind };
    if (cond.kind === 'none') return { set: new Map(), exact: true };
    u.searcher ??= indexKind(u.entry.type).open(store, u.ct, u.entry.files, {
      fragmentIds: u.entry.fragmentIds.filter((id) => !unindexed.has(id)),
      rows: (id) => rowsOf.get(id),
    }, options.cache);
    const set = await (await u.searcher).search(cond);
    for (const id of set.keys()) if (unindexed.has(id)) set.delete(id);
    return { set, exact: u.exact };
  };

  const evaluate = async (n: Normalized): Promise<{ set: RowSet; exact: boolean }> => {
    if (n.kind === 'leaf') return evalLeaf(n.leaf);
    const parts = [];
    for (const c of n.children) parts.push(await evaluate(c));
    const exact = parts.every((p) => p.exact);
    const [first, ...rest] = parts.map((p) => p.set);
    const set = first ?? new Map();
    for (const other of rest) {
      if (n.kind === 'and') {
        for (const [id, bm] of set) {
          const o = other.get(id);
          if (o) bm.andInPlace(o);
          else set.delete(id);
        }
      } else {
        for (const [id, bm] of other) {
          const have = set.get(id);
          if (have) have.orInPlace(bm);
          else set.set(id, bm);
        }
      }
    }
    return { set, exact };
  };

  const { set, exact } = await evaluate(tree);
  return {
    exact,
    ...shape(manifest, set, unindexed),
    indexesUsed: [...new Set([...used.values()].map((u) => u.entry.name))],
    stats: { version: manifest.version, indexReads: await countReads(used), files: registeredFiles(manifest, set, unindexed) },
  };
}

function leafColumns(n: Normalized, out = new Set<string>()): Set<string> {
  if (n.kind === 'leaf') out.add(n.leaf.column);
  else for (const c of n.children) leafColumns(c, out);
  return out;
}

async function countReads(used: Map<string, UsedIndex>): Promise<number> {
  let n = 0;
  for (const u of used.values()) if (u.searcher) n += (await u.searcher).reads;
  return n;
}

function shape(manifest: Manifest, set: RowSet, unindexed: Set<number>) {
  let rows = 0;
  const fragments: QueryResult['fragments'] = [];
  for (const f of manifest.fragments) {
    const bm = set.get(f.id);
    if (!bm || bm.size === 0) continue;
    rows += bm.size;
    fragments.push({ id: f.id, path: f.path, ranges: toRanges(bm) });
  }
  const unindexedFragments = manifest.fragments.filter((f) => unindexed.has(f.id)).map((f) => ({ id: f.id, path: f.path }));
  return { rows, fragments, unindexedFragments };
}

function registeredFiles(manifest: Manifest, set: RowSet, unindexed: Set<number>): Map<number, RegisteredFile> {
  const files = new Map<number, RegisteredFile>();
  for (const f of manifest.fragments) {
    if (unindexed.has(f.id) || (set.get(f.id)?.size ?? 0) > 0) files.set(f.id, { size: f.size, rows: f.rows, fingerprint: f.fingerprint });
  }
  return files;
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

