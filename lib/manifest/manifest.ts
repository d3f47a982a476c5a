/**
 * The dataset manifest: `<root>/_index/versions/<20-digit version>.json`, a small head object
 * per version, plus the fragment table it points at (fragment-table.ts).
 *
 * The head holds what every reader needs and nothing that grows with each fragment:
 * - the fragment table's chunks (key, size, checksums, id range), and the fragments' statuses
 *   as id ranges: failed, removed (failure reasons found after registration in a short list);
 * - per index, its segments: files (with checksums), the fragment ids each covers (ranges),
 *   the ids whose rows a segment still holds but that no longer count (`stale`), rows, bytes.
 * A commit appends: a new table chunk for what it registers, a new segment for what it
 * indexes; a compaction replaces exactly the segments (or chunks) it merged.
 *
 * Every commit writes the next version create-only; a commit that finds its version taken
 * reloads the latest and re-applies its change (rebase), so racing writers all land, one
 * after the other. Heads and every file they name carry CRC32Cs, verified on read; on top of
 * them, every head read and written is checked against the invariants (`checkInvariants`).
 *
 * Heads of format 1 (the fragment list and one file set per index, inline) are still read:
 * as one segment per index and one not-yet-written table chunk, written out by the next
 * commit in format 2.
 */
import { randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { QueryCache } from '../cache.js';
import { AlreadyExistsError, CommitConflictError, IndexFileError } from '../errors.js';
import { columnTypeFromSignature } from '../format/column-type.js';
import { indexKind } from '../indexes/registry.js';
import { verifyContentChecksum, withContentChecksum } from '../format/json-checksum.js';
import { checkKey, type ObjectStore } from '../store/store.js';
import { chunkOf, readChunk, readChunkRows, writeFragmentChunks, type FragmentChunkRef, type FragmentRow } from './fragment-table.js';
import { countOf, has, idsOf, rangesOf, subtract, union, type IdRanges } from './ranges.js';
import type { IndexEntry, StoredManifest } from './schema.js';
import { checkManifestShape, MANIFEST_FORMAT, MANIFEST_FORMAT_V1 } from './shape.js';

export type { FragmentChunkRef, FragmentRow } from './fragment-table.js';
export type { IndexEntry, IndexFile, SegmentEntry } from './schema.js';
export { MANIFEST_FORMAT, MANIFEST_FORMAT_V1 };

export const VERSIONS_PREFIX = '_index/versions/';

// The head's schema is in schema.ts (zod), loaded only to commit and to read a format-1
// head; every other read checks it with shape.ts, which accepts the same heads without zod.

/**
 * A manifest version in memory. `unwritten` holds fragment rows registered by a change (or
 * carried over from a format-1 head) that are in no table chunk yet: the commit writes them
 * as chunks before the head. They always continue the id sequence.
 */
export interface Manifest extends StoredManifest {
  unwritten?: FragmentRow[];
}

/** A registered fragment with its status, as most code wants it. */
export interface FragmentEntry extends FragmentRow {
  /** Set when it cannot be indexed: why. */
  failed?: string;
  /** True when its file is gone (deleted, or replaced by a rewrite registered anew). */
  removed?: boolean;
}

export function emptyManifest(): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: 0,
    createdAt: new Date(0).toISOString(),
    nextFragmentId: 0,
    fragments: { chunks: [], failed: [], removed: [], failures: [] },
    indexes: [],
  };
}

export function versionKey(version: number): string {
  return `${VERSIONS_PREFIX}${String(version).padStart(20, '0')}.json`;
}

/**
 * The version a key under `_index/versions/` names, or undefined for anything else: only
 * the names `versionKey` writes count (exactly 20 digits), so a stray `7.json` or a
 * 21-digit name next to them is ignored rather than sending every reader to a file that was
 * never written.
 */
export function versionOfKey(key: string): number | undefined {
  const m = /^_index\/versions\/(\d{20})\.json$/.exec(key);
  if (!m) return undefined;
  const version = Number(m[1]);
  return Number.isSafeInteger(version) && versionKey(version) === key ? version : undefined;
}

/** Versions present, ascending (parsed as integers, never compared as text). */
export async function listVersions(store: ObjectStore): Promise<number[]> {
  const versions: number[] = [];
  for await (const o of store.list(VERSIONS_PREFIX)) {
    const v = versionOfKey(o.key);
    if (v !== undefined) versions.push(v);
  }
  return versions.sort((a, b) => a - b);
}

export async function readManifest(store: ObjectStore, version: number): Promise<Manifest> {
  const key = versionKey(version);
  const where = `manifest ${store.describe(key)}`;
  const bytes = await store.read(key);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new IndexFileError(`${where} is not valid JSON`, { cause: err });
  }
  verifyContentChecksum(json, where);
  const format = (json as { format?: unknown } | null)?.format;
  const manifest = format === MANIFEST_FORMAT_V1 ? await fromV1(json, where) : checked(json, where);
  if (manifest.version !== version) throw new IndexFileError(`${where} claims version ${manifest.version}`);
  checkInvariants(manifest, where);
  return manifest;
}

function checked(json: unknown, where: string): Manifest {
  const parsed = checkManifestShape(json);
  if (!parsed.success) throw new IndexFileError(`${where} is malformed: ${parsed.path || '(root)'}: ${parsed.message}`);
  return parsed.data;
}

// ---------------------------------------------------------------------------------------------
// Format 1 (read only)

/** A format-1 head as format 2: its fragments as unwritten rows, each index as one segment. */
async function fromV1(json: unknown, where: string): Promise<Manifest> {
  const { V1Schema, parseWith } = await import('./schema.js');
  const v1 = parseWith(V1Schema, json, where, (m) => new IndexFileError(m));
  const fragments = [...v1.fragments].sort((a, b) => a.id - b.id);
  for (let i = 1; i < fragments.length; i++) {
    if (fragments[i]!.id === fragments[i - 1]!.id) throw new IndexFileError(`${where} is inconsistent: fragment id ${fragments[i]!.id} is registered twice`);
  }
  const rows = fragments.map(({ id, path, size, rows, fingerprint, etag, failed }): FragmentRow => ({ id, path, size, rows, fingerprint, ...(etag && { etag }), ...(failed !== undefined && { failed }) }));
  return {
    format: MANIFEST_FORMAT,
    version: v1.version,
    createdAt: v1.createdAt,
    nextFragmentId: v1.nextFragmentId,
    fragments: {
      chunks: [],
      failed: rangesOf(fragments.filter((f) => f.failed !== undefined && f.removed === undefined).map((f) => f.id)),
      removed: rangesOf(fragments.filter((f) => f.removed !== undefined).map((f) => f.id)),
      failures: [],
    },
    indexes: v1.indexes.map((ix) => ({
      name: ix.name,
      column: ix.column,
      type: ix.type,
      params: ix.params,
      valueType: ix.valueType,
      updatedAt: ix.updatedAt,
      segments: ix.files.length === 0 ? [] : [
        {
          // Stable across reads of the same version: derived from the files' directory.
          id: `v1-${(ix.files[0]!.key.split('/').at(-2) ?? 'x').toLowerCase().replace(/[^0-9a-z-]/g, '').slice(0, 48) || 'x'}`,
          fragments: rangesOf(ix.fragmentIds),
          ...(ix.staleFragmentIds?.length && { stale: rangesOf(ix.staleFragmentIds) }),
          rows: ix.fragmentIds.reduce((n, id) => n + (fragments.find((f) => f.id === id)?.rows ?? 0), 0),
          bytes: ix.files.reduce((n, f) => n + f.size, 0),
          files: ix.files,
          createdAt: ix.updatedAt,
        },
      ],
    })),
    unwritten: rows,
  };
}

// ---------------------------------------------------------------------------------------------
// Invariants

/** Ids registered: those of the table chunks and of the rows not written yet. */
export function registeredRanges(m: Manifest): IdRanges {
  return union(
    m.fragments.chunks.map((c): [number, number] => [c.firstId, c.firstId + c.count]).sort((a, b) => a[0] - b[0]).reduce<IdRanges>((acc, r) => union(acc, [r]), []),
    rangesOf((m.unwritten ?? []).map((r) => r.id)),
  );
}

/** Ids some index may cover: registered, not failed, not removed. */
export function liveRanges(m: Manifest): IdRanges {
  return subtract(subtract(registeredRanges(m), m.fragments.failed), m.fragments.removed);
}

/** The fragments an index covers: the union of its segments'. */
export function coverageOf(ix: IndexEntry): IdRanges {
  return ix.segments.reduce<IdRanges>((acc, s) => union(acc, s.fragments), []);
}

/**
 * The rules every manifest this project writes keeps, checked on every read and before every
 * commit (what needs the table's rows, paths, is checked where they are read):
 * - table chunks hold disjoint id ranges below `nextFragmentId`; every failed or removed id is
 *   registered; nothing is both failed and removed; every listed failure is a failed id;
 * - index names are unique; segment ids are unique within an index; segments cover disjoint,
 *   live fragments; a segment's stale ids are not among the ones it covers; files lie under
 *   `_index/indexes/`; chunks under `_index/fragments/`.
 *
 * @throws IndexFileError naming `what` and the first rule broken
 */
export function checkInvariants(m: Manifest, what: string): void {
  const bad = (why: string) => new IndexFileError(`${what} is inconsistent: ${why}`);
  const chunks = [...m.fragments.chunks].sort((a, b) => a.firstId - b.firstId);
  for (let i = 0; i < chunks.length; i++) {
    const c = chunks[i]!;
    if (i > 0 && c.firstId < chunks[i - 1]!.firstId + chunks[i - 1]!.count) throw bad(`fragment table chunks overlap at id ${c.firstId}`);
    if (c.firstId + c.count > m.nextFragmentId) throw bad(`fragment id ${c.firstId + c.count - 1} is not below nextFragmentId ${m.nextFragmentId}`);
    checkKeyUnder(c.key, '_index/fragments/', bad);
  }
  const unwritten = m.unwritten ?? [];
  for (let i = 0; i < unwritten.length; i++) {
    const r = unwritten[i]!;
    if (i > 0 && r.id <= unwritten[i - 1]!.id) throw bad(`fragment id ${r.id} is registered twice`);
    if (r.id >= m.nextFragmentId) throw bad(`fragment id ${r.id} is not below nextFragmentId ${m.nextFragmentId}`);
    if (chunkOf(chunks, r.id)) throw bad(`fragment id ${r.id} is registered twice`);
    checkRow(r, bad);
  }
  const registered = registeredRanges(m);
  const { failed, removed } = m.fragments;
  if (subtract(failed, registered).length) throw bad(`failed fragment ${subtract(failed, registered)[0]![0]} is not registered`);
  if (subtract(removed, registered).length) throw bad(`removed fragment ${subtract(removed, registered)[0]![0]} is not registered`);
  const both = subtract(failed, subtract(failed, removed));
  if (both.length) throw bad(`fragment ${both[0]![0]} is both failed and removed`);
  for (const f of m.fragments.failures) if (!has(failed, f.id)) throw bad(`a failure is recorded for fragment ${f.id}, which is not failed`);
  const live = liveRanges(m);
  const names = new Set<string>();
  for (const ix of m.indexes) {
    if (names.has(ix.name)) throw bad(`index ${ix.name} is defined twice`);
    names.add(ix.name);
    checkIndexDefinition(ix, bad);
    const ids = new Set<string>();
    let covered: IdRanges = [];
    for (const s of ix.segments) {
      if (ids.has(s.id)) throw bad(`index ${ix.name} has segment ${s.id} twice`);
      ids.add(s.id);
      const notLive = subtract(s.fragments, live);
      if (notLive.length) {
        const id = notLive[0]![0];
        const state = has(removed, id) ? 'removed' : has(failed, id) ? 'failed' : 'not registered';
        throw bad(`index ${ix.name} covers fragment ${id}, which is ${state}`);
      }
      const twice = subtract(s.fragments, subtract(s.fragments, covered));
      if (twice.length) throw bad(`index ${ix.name} covers fragment ${twice[0]![0]} in two segments`);
      covered = union(covered, s.fragments);
      const staleCovered = subtract(s.stale ?? [], subtract(s.stale ?? [], s.fragments));
      if (staleCovered.length) throw bad(`index ${ix.name} segment ${s.id} lists fragment ${staleCovered[0]![0]} as both covered and stale`);
      for (const f of s.files) checkKeyUnder(f.key, '_index/indexes/', (why) => bad(`index ${ix.name}: ${why}`));
      const fileNames = s.files.map((f) => f.name).sort();
      const expected = [...indexKind(ix.type).fileNames].sort();
      if (fileNames.join('\n') !== expected.join('\n')) throw bad(`index ${ix.name} segment ${s.id} has files ${JSON.stringify(fileNames)}, a ${ix.type} segment has ${JSON.stringify(expected)}`);
    }
  }
}

/** An index's value type and parameters must be ones its kind accepts. */
function checkIndexDefinition(ix: IndexEntry, bad: (why: string) => Error): void {
  try {
    columnTypeFromSignature(ix.valueType);
  } catch (err) {
    throw bad(`index ${ix.name}: ${(err as Error).message}`);
  }
  let params;
  try {
    params = indexKind(ix.type).normalizeParams(ix.params);
  } catch (err) {
    throw bad(`index ${ix.name}: ${(err as Error).message}`);
  }
  if (JSON.stringify(params) !== JSON.stringify(ix.params)) throw bad(`index ${ix.name} has parameters ${JSON.stringify(ix.params)}, its kind makes them ${JSON.stringify(params)}`);
}

function checkKeyUnder(key: string, prefix: string, bad: (why: string) => Error): void {
  if (!key.startsWith(prefix)) throw bad(`names a file outside ${prefix}: ${JSON.stringify(key)}`);
  try {
    checkKey(key);
  } catch (err) {
    throw bad((err as Error).message);
  }
}

/** A table row's own rules: a path under data/, a valid key unless it failed (that may be why). */
function checkRow(r: FragmentRow, bad: (why: string) => Error): void {
  if (!r.path.startsWith('data/') || r.path.length <= 5) throw bad(`fragment ${r.id} has path ${JSON.stringify(r.path)}, outside data/`);
  if (r.failed === undefined) {
    try {
      checkKey(r.path);
    } catch (err) {
      throw bad(`fragment ${r.id}: ${(err as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading fragments

/**
 * Fragment table chunks read whole, by key and checksum: immutable, so shared by every reader
 * in the process (a build reads the table at plan and again at commit), within a byte bound.
 */
const chunkCache = new LRUCache<string, Promise<FragmentRow[]>>({ maxSize: 64 * 1024 * 1024, sizeCalculation: (_v, key) => Number(key.slice(key.lastIndexOf('|') + 1)) || 1 });

/** The entry's key ends with its size estimate: rows of about 200 bytes held as objects. */
function chunkCacheKey(store: ObjectStore, ref: FragmentChunkRef): string {
  return `${store.describe(ref.key)}|${ref.crc32c}|${ref.count * 200}`;
}

function cachedChunk(store: ObjectStore, ref: FragmentChunkRef): Promise<FragmentRow[]> {
  const id = chunkCacheKey(store, ref);
  let p = chunkCache.get(id);
  if (!p) {
    p = readChunk(store, ref);
    p.catch(() => chunkCache.delete(id));
    chunkCache.set(id, p);
  }
  return p;
}

function withStatus(m: Manifest, r: FragmentRow): FragmentEntry {
  if (has(m.fragments.removed, r.id)) return { ...r, removed: true };
  if (has(m.fragments.failed, r.id)) return { ...r, failed: r.failed ?? m.fragments.failures.find((f) => f.id === r.id)?.reason ?? 'failed' };
  const { failed: _failed, ...rest } = r;
  return rest;
}

/**
 * Every registered fragment, in id order, with its status. Reads every table chunk (cached
 * per process), and checks what needs them all: paths under data/, unique among live ones.
 */
export async function allFragments(store: ObjectStore, m: Manifest): Promise<FragmentEntry[]> {
  const chunks = await Promise.all(m.fragments.chunks.map((c) => cachedChunk(store, c)));
  const rows: [FragmentRow, string][] = [];
  chunks.forEach((list, i) => {
    const where = tableWhere(store, m, m.fragments.chunks[i]!);
    for (const r of list) rows.push([r, where]);
  });
  for (const r of m.unwritten ?? []) rows.push([r, `manifest version ${m.version}`]);
  rows.sort((a, b) => a[0].id - b[0].id);
  const out: FragmentEntry[] = [];
  const live = new Map<string, number>();
  for (const [r, where] of rows) {
    const bad = (why: string) => new IndexFileError(`${where} is inconsistent: ${why}`);
    const f = withStatus(m, r);
    checkRow(f, bad);
    out.push(f);
    if (f.removed) continue;
    const other = live.get(f.path);
    if (other !== undefined) throw bad(`path ${JSON.stringify(f.path)} is registered twice (fragments ${other} and ${f.id})`);
    live.set(f.path, f.id);
  }
  return out;
}

/** Names a table chunk in errors: the file, and the manifest version that points at it. */
function tableWhere(store: ObjectStore, m: Manifest, c: FragmentChunkRef): string {
  return `fragment table ${store.describe(c.key)} (of manifest version ${m.version})`;
}

/**
 * The fragments `ids` (registered ones; others are left out), with their status: only the
 * table batches that hold them are read.
 */
export async function someFragments(store: ObjectStore, m: Manifest, ids: Iterable<number>, cache?: QueryCache): Promise<Map<number, FragmentEntry>> {
  const out = new Map<number, FragmentEntry>();
  const byChunk = new Map<FragmentChunkRef, number[]>();
  const unwritten = new Map((m.unwritten ?? []).map((r) => [r.id, r]));
  for (const id of ids) {
    const u = unwritten.get(id);
    if (u) {
      out.set(id, withStatus(m, u));
      continue;
    }
    const c = chunkOf(m.fragments.chunks, id);
    if (!c) continue;
    const list = byChunk.get(c);
    if (list) list.push(id);
    else byChunk.set(c, [id]);
  }
  await Promise.all(
    [...byChunk].map(async ([c, list]) => {
      // A chunk this process already holds whole (a build's plan, a listed query) costs nothing.
      const whole = chunkCache.get(chunkCacheKey(store, c));
      const wanted = whole && new Set(list);
      const rows = whole ? (await whole).filter((r) => wanted!.has(r.id)) : await readChunkRows(store, c, list, cache);
      for (const r of rows) {
        checkRow(r, (why) => new IndexFileError(`${tableWhere(store, m, c)} is inconsistent: ${why}`));
        out.set(r.id, withStatus(m, r));
      }
    }),
  );
  // Among the fragments read, as allFragments checks among all: one live fragment per path.
  const live = new Map<string, number>();
  for (const f of [...out.values()].sort((a, b) => a.id - b.id)) {
    if (f.removed) continue;
    const other = live.get(f.path);
    if (other !== undefined) {
      const c = chunkOf(m.fragments.chunks, f.id);
      throw new IndexFileError(`${c ? tableWhere(store, m, c) : `manifest version ${m.version}`} is inconsistent: path ${JSON.stringify(f.path)} is registered twice (fragments ${other} and ${f.id})`);
    }
    live.set(f.path, f.id);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Committing

/** The latest committed manifest, or an empty version-0 manifest for a new dataset. */
export async function loadLatestManifest(store: ObjectStore): Promise<Manifest> {
  const versions = await listVersions(store);
  const latest = versions[versions.length - 1];
  return latest === undefined ? emptyManifest() : readManifest(store, latest);
}

export interface CommitResult {
  manifest: Manifest;
  committed: boolean;
  attempts: number;
}

/**
 * Apply `change` to the latest manifest and write it as the next version, create-only.
 * `change` gets a deep copy and returns the new content, or null when there is nothing to
 * commit. On a lost race it is re-applied to the new latest version. Rows registered by the
 * change (`unwritten`) are written as table chunks first; if the head then loses the race,
 * those chunks are left unreferenced (vacuum removes them).
 */
export async function commitManifest(
  store: ObjectStore,
  change: (latest: Manifest) => Manifest | null | Promise<Manifest | null>,
  options: { maxAttempts?: number } = {},
): Promise<CommitResult> {
  const maxAttempts = options.maxAttempts ?? 64;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const latest = await loadLatestManifest(store);
    const next = await change(structuredClone(latest));
    if (next === null) return { manifest: latest, committed: false, attempts: attempt };
    const version = latest.version + 1;
    const content: Manifest = { ...next, format: MANIFEST_FORMAT, version, createdAt: new Date().toISOString() };
    checkInvariants(content, `the manifest about to be committed as version ${version}`);
    const written = await writeUnwritten(store, content);
    const { ManifestSchema, parseWith } = await import('./schema.js');
    const stored = parseWith(ManifestSchema, written, `the manifest about to be committed as version ${version}`, (m) => new IndexFileError(m));
    try {
      const body = `${JSON.stringify(withContentChecksum(stored), null, 1)}\n`;
      await store.put(versionKey(version), new TextEncoder().encode(body), { createOnly: true });
      return { manifest: stored, committed: true, attempts: attempt };
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      // Another writer took this version: back off a little, reload, re-apply.
      await new Promise((r) => setTimeout(r, Math.min(200, 2 ** attempt) * Math.random()));
    }
  }
  throw new CommitConflictError(`could not commit to ${store.describe(VERSIONS_PREFIX)} after ${maxAttempts} attempts: too many concurrent writers`);
}

/** The manifest with its unwritten rows written out as table chunks (one per contiguous run). */
async function writeUnwritten(store: ObjectStore, m: Manifest): Promise<Manifest> {
  const { unwritten, ...rest } = m;
  if (!unwritten?.length) return rest;
  const runs: FragmentRow[][] = [];
  for (const r of [...unwritten].sort((a, b) => a.id - b.id)) {
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1]!.id + 1 === r.id) last.push(r);
    else runs.push([r]);
  }
  const chunks = [...rest.fragments.chunks];
  for (const run of runs) chunks.push(...(await writeFragmentChunks(store, run)));
  chunks.sort((a, b) => a.firstId - b.firstId);
  return { ...rest, fragments: { ...rest.fragments, chunks } };
}

/** A fresh id for a segment: base-36 time and 12 random hex digits. */
export function newSegmentId(): string {
  return `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
}

export { idsOf };
