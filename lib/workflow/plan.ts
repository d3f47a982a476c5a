/**
 * Step 1 of a build: register new fragments (a manifest commit, so their ids are fixed before
 * any row address is written) from their footers alone: row counts, schema (an indexed column
 * missing or of another type fails here) and fingerprint, never the column data, which
 * build-part reads and checks anyway, decide which fragments each index still needs, and pack those
 * fragments into groups of about `groupRows` rows, one worker each.
 */
import { randomBytes } from 'node:crypto';
import * as arrow from 'apache-arrow';
import { openDataset } from '../dataset.js';
import { ColumnTypeError, FragmentChangedError, FragmentReadError, IndexFileError, IndexParamsError, InvalidPathError, MissingColumnError, ScalarIndexError, UsageError } from '../errors.js';
import { describeColumnType } from '../format/column-type.js';
import { verifyContentChecksum, withContentChecksum } from '../format/json-checksum.js';
import { footerTailBytes, readFragmentFooter, type FragmentFooter } from '../fragments/footer.js';
import { columnIndex, FRAGMENT_EXTENSIONS } from '../fragments/reader.js';
import { indexKind } from '../indexes/registry.js';
import { discover, listFragmentFiles } from '../manifest/discover.js';
import { allFragments, commitManifest, coverageOf, liveRanges, loadLatestManifest, type Manifest } from '../manifest/manifest.js';
import { has, idsOf, intersect, rangesOf, subtract, union, type IdRanges } from '../manifest/ranges.js';
import { checkKey, type ObjectStore } from '../store/store.js';
import { itemsKey, planKey, PlanInputSchema, type Plan, type PlanGroup, type PlanInput, type PlannedIndex, type PlanOutput } from './types.js';

/** About 4M rows: a group's codes, offsets and serialized bitmaps stay well under 2 GB. */
export const DEFAULT_GROUP_ROWS = 4 * 1024 * 1024;
/**
 * New fragments registered at once. Each holds at most a few of its footer's reads in flight
 * (and a few hundred KiB: its footer and headers, or a small file whole), so this bounds
 * requests in flight rather than memory.
 */
export const PLAN_READ_CONCURRENCY = 16;
/** Smallest group the automatic split makes: below this a worker costs more than it saves. */
const MIN_AUTO_GROUP_ROWS = 256 * 1024;

export interface Progress {
  (event: { step: string; done?: number; total?: number; detail?: string }): void;
}

export function indexName(column: string, type: string): string {
  return `${column}_${type}`;
}

export async function plan(rawInput: PlanInput, progress: Progress = () => {}): Promise<PlanOutput> {
  const input = PlanInputSchema.parse(rawInput);
  const { store } = openDataset(input.dataset);
  const requestedGroupRows = input.groupRows ?? DEFAULT_GROUP_ROWS;
  const buildId = input.buildId ?? newBuildId();

  const requested = normalizeRequests(input.indexes ?? []);
  const before = await loadLatestManifest(store);
  checkRequestsAgainst(before, requested);

  // Fragments: the files under data/, against what the manifest registers.
  const [files, registered] = await Promise.all([listFragmentFiles(store), allFragments(store, before)]);
  if (files.length === 0 && registered.every((f) => f.removed)) {
    throw new FragmentReadError(`no fragment files (${FRAGMENT_EXTENSIONS.join(', ')}) under ${store.describe('data')}`);
  }
  const found = discover(registered, files);
  // A deleted file (by a person or a lifecycle rule) is recorded as removed: its rows leave
  // the answers at once and the indexes at their next merge. Never an error.
  const removed = found.missing.map((f) => ({ id: f.id, path: f.path }));
  // A rewritten file: its old fragment is removed and the file registered again under a new
  // id, so no row address already in an index changes meaning. For a fragment that was
  // indexed, that needs --skip-bad-fragments (contract.md: a changed fragment is an error);
  // a failed one was never indexed, so re-reading it (a fixed upload) is always fine.
  const replaced: { id: number; path: string; reason: string }[] = [];
  for (const { entry, now } of found.changed) {
    const what = `registered fragment ${store.describe(entry.path)} (id ${entry.id}) was rewritten: ${describeChange(entry, now)}`;
    if (entry.failed === undefined && !input.skipBadFragments) {
      throw new FragmentChangedError(`${what}; fragments are immutable (with --skip-bad-fragments it is registered again as a new fragment)`);
    }
    replaced.push({ id: entry.id, path: entry.path, reason: what });
  }
  const fresh = [...found.unregistered, ...found.changed.map((c) => c.now)].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // Register new fragments from their footers and headers (a few ranged reads each, never a
  // body): many at once, since each costs a round trip or three and a few KiB. What the
  // columns hold is checked by build-part, which reads the indexed ones anyway. The array
  // keeps path order, which is the order ids are assigned in.
  const metas: RegisteringFragment[] = new Array(fresh.length);
  let next = 0;
  let done = 0;
  const reader = async () => {
    while (next < fresh.length) {
      const i = next++;
      const { key, size, etag } = fresh[i]!;
      try {
        // A key the store refuses (a backslash, a control character, an empty segment):
        // with skipBadFragments it is recorded as failed like any unreadable file, so it
        // cannot block every later build.
        checkKey(key);
        const { reads: _reads, bytesRead: _bytes, ...meta } = await registerByFooter(store, key, size);
        metas[i] = { ...meta, etag };
      } catch (err) {
        if (!(input.skipBadFragments && (err instanceof FragmentReadError || err instanceof InvalidPathError))) throw err;
        metas[i] = failedFragment(key, size, etag, (err as Error).message);
      }
      progress({ step: 'register', done: ++done, total: fresh.length, detail: key });
    }
  };
  if (fresh.length) progress({ step: 'register', done: 0, total: fresh.length });
  await Promise.all(Array.from({ length: Math.min(PLAN_READ_CONCURRENCY, fresh.length) }, reader));
  const loaded = new Map(fresh.map((f, i) => [f.key, metas[i]!]));

  // Validate every index that will touch the new fragments before anything is committed.
  const targets = requested.length > 0 ? requested : before.indexes.map((e) => ({ column: e.column, type: e.type, params: e.params }));
  const valueTypes = new Map<string, string>();
  for (const t of targets) {
    const existing = before.indexes.find((e) => e.name === indexName(t.column, t.type));
    let expected = existing?.valueType;
    let expectedFrom = existing ? `index ${existing.name}` : undefined;
    for (const [key, meta] of loaded) {
      if (meta.failed) continue;
      const where = store.describe(key);
      try {
        const field = meta.schema.fields[columnIndex(meta.schema, t.column, where)]!;
        let sig: string;
        try {
          sig = describeColumnType(t.column, field.type).signature;
        } catch (err) {
          throw new ColumnTypeError(`${(err as Error).message} (fragment ${where})`);
        }
        if (expected !== undefined && sig !== expected) {
          throw new ColumnTypeError(`column '${t.column}' is ${sig} in fragment ${where} but ${expected} in ${expectedFrom}`);
        }
        expected ??= sig;
        expectedFrom ??= `fragment ${where}`;
      } catch (err) {
        if (!(input.skipBadFragments && (err instanceof MissingColumnError || err instanceof ColumnTypeError))) throw err;
        loaded.set(key, failedFragment(key, meta.size, meta.etag, (err as Error).message));
      }
    }
    if (expected) valueTypes.set(indexName(t.column, t.type), expected);
  }

  // Register the new fragments and record the removed ones (rebasing onto concurrent builds).
  let manifest = before;
  if (fresh.length > 0 || removed.length > 0) {
    const gone = [...removed, ...replaced].map((f) => f.id);
    const result = await commitManifest(store, (latest) => registerFragments(latest, loaded, gone, store));
    manifest = result.manifest;
  }

  // What each index still needs.
  const fragments = await allFragments(store, manifest);
  const fragmentById = new Map(fragments.map((f) => [f.id, f]));
  const live = liveRanges(manifest);
  const indexes: PlannedIndex[] = [];
  const needed = new Set<number>();
  for (const t of targets) {
    const name = indexName(t.column, t.type);
    const existing = manifest.indexes.find((e) => e.name === name);
    const fragmentIds = [...idsOf(subtract(live, existing ? coverageOf(existing) : []))];
    // Nothing to add (or, for a new index, nothing to take its value type from yet).
    if (fragmentIds.length === 0) continue;
    fragmentIds.forEach((id) => needed.add(id));
    indexes.push({
      name,
      column: t.column,
      type: t.type,
      params: t.params,
      valueType: existing?.valueType ?? valueTypes.get(name),
      isNew: !existing,
      fragmentIds,
      groups: [],
    });
  }

  // Pack needed fragments, in id order, into groups of about groupRows rows. Without an
  // explicit size, spread the work over at least `minGroups` groups (the local engine asks
  // for two per core) as long as groups stay big enough to be worth a worker.
  let groupRows = requestedGroupRows;
  const workRows = indexes.reduce((n, ix) => n + ix.fragmentIds.reduce((m, id) => m + fragmentById.get(id)!.rows, 0), 0);
  if (input.groupRows === undefined && input.minGroups && workRows >= (input.minGroupsFromWorkRows ?? 0)) {
    const neededRows = [...needed].reduce((n, id) => n + fragmentById.get(id)!.rows, 0);
    groupRows = Math.min(groupRows, Math.max(MIN_AUTO_GROUP_ROWS, Math.ceil(neededRows / input.minGroups)));
  }
  const groups: PlanGroup[] = [];
  for (const id of [...needed].sort((a, b) => a - b)) {
    const f = fragmentById.get(id)!;
    let g = groups[groups.length - 1];
    if (!g || (g.rows > 0 && g.rows + f.rows > groupRows)) {
      g = { groupId: groups.length, rows: 0, fragments: [] };
      groups.push(g);
    }
    g.fragments.push({ id: f.id, path: f.path, rows: f.rows, size: f.size, fingerprint: f.fingerprint });
    g.rows += f.rows;
  }
  const groupOf = new Map<number, number>();
  for (const g of groups) for (const f of g.fragments) groupOf.set(f.id, g.groupId);
  for (const ix of indexes) ix.groups = [...new Set(ix.fragmentIds.map((id) => groupOf.get(id)!))].sort((a, b) => a - b);

  const thePlan: Plan = {
    dataset: input.dataset,
    buildId,
    createdAt: new Date().toISOString(),
    baseVersion: manifest.version,
    fragmentsAdded: fragments.length - registered.length,
    skipBadFragments: input.skipBadFragments ?? false,
    indexes,
    groups,
  };
  const hasWork = indexes.length > 0;
  if (hasWork) {
    await store.put(planKey(buildId), new TextEncoder().encode(JSON.stringify(withContentChecksum(thePlan))), { createOnly: true });
    const items = groups.map((g) => ({ dataset: input.dataset, buildId, groupId: g.groupId }));
    await store.put(itemsKey(buildId), new TextEncoder().encode(JSON.stringify(items)), { createOnly: true });
  }
  return {
    dataset: input.dataset,
    buildId,
    baseVersion: manifest.version,
    fragmentsAdded: thePlan.fragmentsAdded,
    fragmentsFailed: [...loaded].filter(([, m]) => m.failed).map(([path, m]) => ({ path, reason: m.failed! })),
    fragmentsRemoved: removed,
    fragmentsReplaced: replaced,
    groupCount: groups.length,
    groupIds: groups.map((g) => g.groupId),
    hasWork,
    itemsKey: itemsKey(buildId),
  };
}

/**
 * A build's plan, verified against its content checksum: every later step trusts its
 * fragment ids and groups.
 *
 * @throws IndexFileError naming plan.json when it is not JSON or fails its checksum
 */
export async function readPlan(store: ObjectStore, buildId: string): Promise<Plan> {
  const key = planKey(buildId);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await store.read(key)));
  } catch (err) {
    if (err instanceof ScalarIndexError) throw err;
    throw new IndexFileError(`build plan ${store.describe(key)} is not valid JSON`, { cause: err });
  }
  verifyContentChecksum(json, `build plan ${store.describe(key)}`);
  const { crc32c: _checksum, ...plan } = json as Plan & { crc32c?: string };
  return plan;
}

interface NormalizedRequest {
  column: string;
  type: 'zonemap' | 'bitmap';
  params: { rowsPerZone?: number };
}

function normalizeRequests(requests: PlanInput['indexes'] & object): NormalizedRequest[] {
  const out: NormalizedRequest[] = [];
  for (const r of requests) {
    const kind = indexKind(r.type);
    if (r.type !== 'zonemap' && r.rowsPerZone !== undefined) {
      throw new UsageError(`rows per zone applies to zone maps only, not to the ${r.type} index on '${r.column}'`);
    }
    const params = kind.normalizeParams({ rowsPerZone: r.rowsPerZone });
    const dup = out.find((o) => o.column === r.column && o.type === r.type);
    if (dup) {
      if (JSON.stringify(dup.params) !== JSON.stringify(params)) throw new IndexParamsError(`index ${indexName(r.column, r.type)} requested twice with different parameters`);
      continue;
    }
    out.push({ column: r.column, type: r.type, params });
  }
  return out;
}

function checkRequestsAgainst(manifest: Manifest, requested: NormalizedRequest[]): void {
  for (const r of requested) {
    const e = manifest.indexes.find((x) => x.name === indexName(r.column, r.type));
    if (e && JSON.stringify(e.params) !== JSON.stringify(r.params)) {
      throw new IndexParamsError(
        `index ${e.name} already exists with ${JSON.stringify(e.params)}; cannot rebuild it with ${JSON.stringify(r.params)} (drop the index first)`,
      );
    }
  }
}

/** What registration needs of a new fragment: its metadata and store tag, or why it cannot be indexed. */
type RegisteringFragment = Omit<FragmentFooter, 'reads' | 'bytesRead'> & { etag?: string; failed?: string };

/** Requests in flight for one fragment's footer and headers (times PLAN_READ_CONCURRENCY fragments). */
const FOOTER_READS_PER_FRAGMENT = 4;

/**
 * A fragment's rows, schema and fingerprint from its footer and headers. A read the store
 * fails (the file deleted since it was listed, access denied) makes the fragment unreadable,
 * as a whole-file read did: with skipBadFragments it is recorded as failed, not retried by
 * every later build.
 */
async function registerByFooter(store: ObjectStore, key: string, size: number): Promise<FragmentFooter> {
  try {
    return await readFragmentFooter(store, key, size, { concurrency: FOOTER_READS_PER_FRAGMENT, tailBytes: footerTailBytes(size) });
  } catch (err) {
    if (err instanceof FragmentReadError) throw err;
    throw new FragmentReadError(`cannot read fragment ${store.describe(key)}: ${(err as Error).message}`, { cause: err });
  }
}

function failedFragment(key: string, size: number, etag: string | undefined, reason: string): RegisteringFragment {
  // Never read in full, so no content fingerprint: the size and tag are what later builds compare.
  return { key, size, etag, rows: 0, fingerprint: `failed:${size}`, schema: new arrow.Schema([]), failed: reason };
}

/** How a listed file differs from its registration, for messages. */
function describeChange(entry: { size: number; etag?: string }, now: { size: number; etag?: string }): string {
  if (now.size !== entry.size) return `its size changed from ${entry.size} to ${now.size} bytes`;
  return `its store tag changed from ${entry.etag} to ${now.etag}`;
}

/**
 * Register `loaded` and mark the fragments `gone` (deleted or rewritten) as removed, on top of
 * whatever the latest version holds (this runs again on every rebase). A removed fragment
 * leaves every segment's coverage at once; its rows stay in the segment's files, listed as
 * stale, until a compaction drops them.
 */
async function registerFragments(latest: Manifest, loaded: Map<string, RegisteringFragment>, gone: readonly number[], store: ObjectStore): Promise<Manifest | null> {
  let changed = 0;
  const fragments = await allFragments(store, latest);
  const removing = gone.filter((id) => fragments.some((f) => f.id === id && !f.removed));
  if (removing.length > 0) {
    markGone(latest, rangesOf(removing), 'removed');
    changed += removing.length;
  }
  const have = new Map(fragments.filter((f) => !f.removed && !removing.includes(f.id)).map((f) => [f.path, f]));
  const failed: number[] = [];
  for (const [path, meta] of [...loaded].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const prior = have.get(path);
    if (prior) {
      // A concurrent build registered it first; same bytes or it is an error.
      if (!sameFragment(prior, meta)) {
        throw new FragmentChangedError(`fragment ${store.describe(path)} was registered with different content (fingerprint ${prior.fingerprint})`);
      }
      continue;
    }
    if (latest.nextFragmentId > 0xffffffff) throw new FragmentChangedError('fragment ids exhausted (u32)');
    const id = latest.nextFragmentId++;
    (latest.unwritten ??= []).push({
      id,
      path,
      size: meta.size,
      rows: meta.rows,
      fingerprint: meta.fingerprint,
      ...(meta.etag !== undefined && { etag: meta.etag }),
      ...(meta.failed !== undefined && { failed: meta.failed }),
    });
    if (meta.failed !== undefined) failed.push(id);
    changed++;
  }
  latest.fragments.failed = union(latest.fragments.failed, rangesOf(failed));
  return changed > 0 ? latest : null;
}

/**
 * Record `ids` as removed (their files are gone) or failed (their content is bad), and take
 * them out of every segment's coverage: their rows stay in the files, as stale, until a
 * compaction drops them.
 */
export function markGone(m: Manifest, ids: IdRanges, as: 'removed' | 'failed'): void {
  if (as === 'removed') {
    m.fragments.removed = union(m.fragments.removed, ids);
    m.fragments.failed = subtract(m.fragments.failed, ids);
    m.fragments.failures = m.fragments.failures.filter((f) => !has(ids, f.id));
  } else {
    m.fragments.failed = union(m.fragments.failed, ids);
  }
  for (const ix of m.indexes) {
    for (const seg of ix.segments) {
      const dropped = intersect(seg.fragments, ids);
      if (dropped.length === 0) continue;
      seg.fragments = subtract(seg.fragments, dropped);
      seg.stale = union(seg.stale ?? [], dropped);
    }
    // A segment whose fragments are all gone no longer answers for anything.
    ix.segments = ix.segments.filter((seg) => seg.fragments.length > 0);
  }
}

/**
 * Whether a registered fragment and a freshly read one are the same file. Fingerprints of
 * different schemes (a manifest written before Arrow files were fingerprinted by footer)
 * cannot be compared, so then the sizes must agree.
 */
function sameFragment(prior: { fingerprint: string; size: number }, fresh: { fingerprint: string; size: number }): boolean {
  const scheme = (f: string) => f.slice(0, f.indexOf(':'));
  if (scheme(prior.fingerprint) !== scheme(fresh.fingerprint)) return prior.size === fresh.size;
  return prior.fingerprint === fresh.fingerprint;
}

function newBuildId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `b${t}-${randomBytes(4).toString('hex')}`;
}
