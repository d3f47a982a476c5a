/**
 * Vacuum: delete what no reader or build will ask for again, so `<root>/_index/` stays bounded.
 *
 * Three kinds of garbage accumulate under `_index/`:
 *
 * - **Orphaned builds** `_index/builds/<buildId>/` (plan, item list, part files): a build that
 *   crashed or was stopped after planning never reaches the commit that deletes its prefix.
 * - **Unreferenced index directories** `_index/indexes/<name>/<dir>/`: every merge writes a
 *   fresh directory and every commit makes the previous one unreferenced; a rebase or a crash
 *   between merge and commit leaves one that was never referenced at all.
 * - **Old manifest versions** `_index/versions/<20 digits>.json`: one or two per build, forever.
 *
 * ## What is kept
 *
 * `now - olderThan` is the *cutoff*. A manifest version is **retained** when any of these holds:
 * it is the latest; it is among the `keepVersions` most recent; or it was still the latest
 * after the cutoff (its successor was written after the cutoff; this includes every version
 * written after the cutoff). Everything older than the oldest retained version is deleted, so
 * the versions left are always an unbroken tail of the history, and they are deleted
 * oldest-first. An index directory is deleted when no retained version references any file in
 * it **and** its newest object is older than the cutoff. A build prefix is deleted when its
 * newest object is older than the cutoff. An object whose store reports no modification time
 * counts as new (kept).
 *
 * ## Why a concurrent build cannot lose data
 *
 * A build in flight refers to exactly three things: its own build prefix (plan, items, parts),
 * the files of the index versions it merges onto (read from the manifest that was the latest
 * when its merge started), and the directory its merge is writing, which becomes referenced
 * only when its commit lands. Each one is protected as long as no step of a build takes longer
 * than `olderThan` (the default, 7 days, is far beyond the 15-minute Lambda limit and the
 * workflow's retries):
 *
 * - **Its build prefix** gets new objects while it runs (plan, items, then parts); vacuum only
 *   deletes a prefix whose newest object is older than the cutoff.
 * - **The base files** were referenced by the version that was the latest when the merge read
 *   it. That version stays retained until its successor is older than the cutoff, i.e. until
 *   the merge started more than `olderThan` ago. (If another build commits first, the commit
 *   rebases anyway: it never commits on top of a base that has changed.)
 * - **Its new directory** is unreferenced until the commit, and is protected by its age alone.
 *   Vacuum also lists the versions once more right before deleting directories, and keeps any
 *   directory a version committed meanwhile references.
 * - **Its commit** writes `latest + 1` create-only. Vacuum never deletes the latest version, so
 *   version numbers are never reused: a commit that raced with another one still gets its
 *   `AlreadyExistsError`, reloads and re-applies. A commit's own list-then-put takes
 *   milliseconds; the versions it saw stay retained for `olderThan`.
 *
 * Ages compare the store's timestamps (S3 `LastModified`, whole seconds; local mtime) with this
 * machine's clock, so `olderThan` must also be well above any clock skew between the two.
 *
 * `olderThan: 0` (`--older-than 0s`) drops the age protection: it is for tests and for
 * datasets nobody is building. Even then vacuum never deletes the latest version nor anything
 * it (or any retained version) references, so queries answer exactly as before.
 *
 * **Readers.** A query lists versions, reads the latest and then its index files, typically
 * within a second. A reader that holds an *old* manifest (loaded before a version past
 * retention was deleted) can get a `NotFoundError` for an index file that vacuum removed. That
 * is accepted for versions past retention: readers must reload the latest manifest, and the
 * retention window says how long an old version stays readable. On a versioned bucket (the
 * stack creates one) the deleted objects also stay recoverable as noncurrent versions until
 * the bucket's lifecycle rule expires them.
 *
 * Deletes go in batches through `store.deleteMany` (one `DeleteObjects` per 1,000 keys on S3):
 * versions first (oldest first), then index directories, then builds. A vacuum that crashes
 * midway leaves only unreferenced objects, which the next run deletes.
 */
import { UsageError } from '../errors.js';
import { openDataset } from '../dataset.js';
import { readManifest, versionOfKey, VERSIONS_PREFIX, type Manifest } from '../manifest/manifest.js';
import { FRAGMENTS_PREFIX } from '../manifest/fragment-table.js';
import { LOCAL_TEMP_PREFIX } from '../store/local.js';
import type { ObjectInfo, ObjectStore } from '../store/store.js';
import type { Progress } from './plan.js';
import { DEFAULT_KEEP_VERSIONS, DEFAULT_VACUUM_OLDER_THAN, parseDuration } from './vacuum-settings.js';

export { DEFAULT_KEEP_VERSIONS, DEFAULT_VACUUM_OLDER_THAN, parseDuration };

export const INDEXES_PREFIX = '_index/indexes/';
export const BUILDS_PREFIX = '_index/builds/';
/**
 * Where the local store stages writes (store/local.ts), and the name earlier releases gave a
 * staged file beside its target (`…/x.json.tmp-<12 hex>`): what a killed writer leaves.
 */
export const TEMP_PREFIX = LOCAL_TEMP_PREFIX;
const LEGACY_TEMP_NAME = /\.tmp-[0-9a-f]{12}$/;

/** Keys per `deleteMany` call (S3's DeleteObjects limit). */
export const VACUUM_DELETE_BATCH = 1000;
/** Manifests read at once. */
const READ_CONCURRENCY = 8;

export interface VacuumOptions {
  /** Dataset URI: a local path, `file://…` or `s3://bucket/prefix`. */
  dataset: string;
  /**
   * Nothing younger than this is deleted, in milliseconds, or a duration such as `7d`, `12h`,
   * `30m`, `0s` (see {@link parseDuration}). Default 7 days.
   */
  olderThan?: number | string;
  /** Always keep at least this many of the most recent versions (at least 1). Default 10. */
  keepVersions?: number;
  /** Work out what would go, delete nothing. */
  dryRun?: boolean;
  /** The clock, in epoch milliseconds (tests move it; S3 objects cannot be back-dated). */
  now?: () => number;
  /** Progress for long runs (the CLI shows it on stderr). */
  progress?: Progress;
  /** Keys per deleteMany call. Default 1000. */
  batchSize?: number;
}

/** What vacuum deleted (or, with `dryRun`, would delete): the `vacuum --json` output. */
export interface VacuumResult {
  deleted: {
    /** Manifest version numbers, ascending. */
    versions: number[];
    /** Dataset-relative prefixes `_index/indexes/<name>/<dir>/`, sorted. */
    indexDirs: string[];
    /** Dataset-relative prefixes `_index/builds/<buildId>/`, sorted. */
    builds: string[];
    /** Fragment table chunks no retained version references (`_index/fragments/…`), sorted. */
    fragmentChunks: string[];
    /** Staged files a killed writer left (`_index/tmp/…`), sorted. */
    temp: string[];
  };
  /** Objects deleted, all kinds together. */
  objects: number;
  /** Their total size. */
  bytes: number;
  dryRun: boolean;
  /** The versions left, ascending (the latest is always among them). */
  retainedVersions: number[];
}

interface Group {
  prefix: string;
  keys: string[];
  bytes: number;
  /** Newest modification time in the group; undefined when any object lacks one. */
  newest: number | undefined;
}

interface VersionObject {
  version: number;
  key: string;
  size: number;
  modified: number | undefined;
}

/**
 * Delete orphaned builds, unreferenced index directories and manifest versions past
 * retention (the module comment explains what is kept and why that is safe).
 *
 * @example
 * const r = await vacuum({ dataset: 's3://sales-data/datasets/2026', olderThan: '7d', keepVersions: 10 });
 * console.log(`${r.objects} objects, ${r.bytes} bytes; versions left: ${r.retainedVersions.join(', ')}`);
 */
export async function vacuum(options: VacuumOptions): Promise<VacuumResult> {
  const olderThan = typeof options.olderThan === 'string' ? parseDuration(options.olderThan) : (options.olderThan ?? parseDuration(DEFAULT_VACUUM_OLDER_THAN));
  if (!Number.isSafeInteger(olderThan) || olderThan < 0) throw new UsageError(`olderThan must be a whole number of milliseconds of at least 0, got ${olderThan}`);
  const keepVersions = options.keepVersions ?? DEFAULT_KEEP_VERSIONS;
  if (!Number.isSafeInteger(keepVersions) || keepVersions < 1) throw new UsageError(`keepVersions must be a whole number of at least 1, got ${keepVersions}`);
  const batchSize = Math.max(1, Math.min(VACUUM_DELETE_BATCH, options.batchSize ?? VACUUM_DELETE_BATCH));
  const progress = options.progress ?? (() => {});
  const dryRun = options.dryRun ?? false;
  const { store } = openDataset(options.dataset);
  const cutoff = (options.now ?? Date.now)() - olderThan;
  const isOld = (modified: number | undefined) => modified !== undefined && modified < cutoff;

  // 1. Versions: which are retained, and everything they reference.
  progress({ step: 'listing versions' });
  const versions = await listVersionObjects(store);
  const retained = retainedVersions(versions, keepVersions, cutoff);
  const expired = versions.filter((v) => v.version < (retained[0]?.version ?? 0));
  const referenced = new Set<string>();
  await readReferences(store, retained, referenced, progress);

  // 2. Index directories and builds, grouped by their prefix.
  progress({ step: 'listing index files and builds' });
  const dirs = groupBy(await listAllInfo(store, INDEXES_PREFIX), INDEXES_PREFIX, 2);
  const builds = groupBy(await listAllInfo(store, BUILDS_PREFIX), BUILDS_PREFIX, 1);
  const referencedDirs = new Set([...referenced].map((k) => dirOf(k)).filter((d): d is string => d !== undefined));
  let staleDirs = dirs.filter((d) => isOld(d.newest) && !referencedDirs.has(d.prefix) && !d.keys.some((k) => referenced.has(k)));
  const staleBuilds = builds.filter((b) => isOld(b.newest));
  // Fragment table chunks: each is referenced, or was written by a registration that lost its race.
  let staleChunks = (await listAllInfo(store, FRAGMENTS_PREFIX)).filter((o) => isOld(o.lastModified?.getTime()) && !referenced.has(o.key));
  // A writer publishes within seconds of staging; one staged before the cutoff was killed.
  const staleTemp = [...(await listAllInfo(store, TEMP_PREFIX)), ...versionDirLeftovers(await listAllInfo(store, VERSIONS_PREFIX))].filter((o) =>
    isOld(o.lastModified?.getTime()),
  );

  // A commit that landed while we looked may reference a directory we are about to delete.
  const latest = versions[versions.length - 1]?.version ?? -1;
  const newer = (await listVersionObjects(store)).filter((v) => v.version > latest);
  if (newer.length > 0) {
    await readReferences(store, newer, referenced, progress);
    for (const k of referenced) {
      const d = dirOf(k);
      if (d !== undefined) referencedDirs.add(d);
    }
    staleDirs = staleDirs.filter((d) => !referencedDirs.has(d.prefix) && !d.keys.some((k) => referenced.has(k)));
    staleChunks = staleChunks.filter((o) => !referenced.has(o.key));
  }

  const result: VacuumResult = {
    deleted: {
      versions: expired.map((v) => v.version),
      indexDirs: staleDirs.map((d) => d.prefix),
      builds: staleBuilds.map((b) => b.prefix),
      fragmentChunks: staleChunks.map((o) => o.key).sort(),
      temp: staleTemp.map((o) => o.key).sort(),
    },
    objects: expired.length + staleDirs.reduce((n, d) => n + d.keys.length, 0) + staleBuilds.reduce((n, b) => n + b.keys.length, 0) + staleChunks.length + staleTemp.length,
    bytes:
      expired.reduce((n, v) => n + v.size, 0) +
      staleDirs.reduce((n, d) => n + d.bytes, 0) +
      staleBuilds.reduce((n, b) => n + b.bytes, 0) +
      staleChunks.reduce((n, o) => n + o.size, 0) +
      staleTemp.reduce((n, o) => n + o.size, 0),
    dryRun,
    retainedVersions: [...retained.map((v) => v.version), ...newer.map((v) => v.version)],
  };
  if (dryRun) return result;

  // 3. Delete: versions oldest-first, then directories, then builds.
  const keys = [...expired.map((v) => v.key), ...staleDirs.flatMap((d) => d.keys), ...staleBuilds.flatMap((b) => b.keys), ...staleChunks.map((o) => o.key), ...staleTemp.map((o) => o.key)];
  let done = 0;
  if (keys.length > 0) progress({ step: 'deleting', done, total: keys.length });
  for (let i = 0; i < keys.length; i += batchSize) {
    const batch = keys.slice(i, i + batchSize);
    await store.deleteMany(batch);
    done += batch.length;
    progress({ step: 'deleting', done, total: keys.length });
  }
  return result;
}

/**
 * The retained versions, ascending: the latest, the `keep` most recent, and every version
 * that was still the latest after the cutoff. The result is a tail of `versions`.
 */
function retainedVersions(versions: readonly VersionObject[], keep: number, cutoff: number): VersionObject[] {
  let first = Math.max(0, versions.length - keep);
  // Walk back while a version's successor was written after the cutoff (or has no known time).
  while (first > 0) {
    const successor = versions[first]!;
    if (successor.modified !== undefined && successor.modified < cutoff) break;
    first--;
  }
  return versions.slice(first);
}

async function listVersionObjects(store: ObjectStore): Promise<VersionObject[]> {
  const out: VersionObject[] = [];
  for await (const o of store.list(VERSIONS_PREFIX)) {
    // Only canonical names: `versionKey` is what readers and writers use.
    const version = versionOfKey(o.key);
    if (version === undefined) continue;
    out.push({ version, key: o.key, size: o.size, modified: o.lastModified?.getTime() });
  }
  return out.sort((a, b) => a.version - b.version);
}

/** Add every index file key the given versions reference. A version that cannot be read stops the vacuum. */
async function readReferences(store: ObjectStore, versions: readonly VersionObject[], into: Set<string>, progress: Progress): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < versions.length) {
      const v = versions[next++]!;
      const manifest: Manifest = await readManifest(store, v.version);
      for (const ix of manifest.indexes) for (const seg of ix.segments) for (const f of seg.files) into.add(f.key);
      for (const c of manifest.fragments.chunks) into.add(c.key);
      progress({ step: 'reading retained versions', done: ++done, total: versions.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, versions.length) }, worker));
}

/** Files an earlier release's local writer staged beside a version and never published. */
function versionDirLeftovers(objects: readonly ObjectInfo[]): ObjectInfo[] {
  return objects.filter((o) => versionOfKey(o.key) === undefined && LEGACY_TEMP_NAME.test(o.key));
}

async function listAllInfo(store: ObjectStore, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of store.list(prefix)) out.push(o);
  return out;
}

/** The `_index/indexes/<name>/<dir>/` a key lies in, if it does. */
function dirOf(key: string): string | undefined {
  if (!key.startsWith(INDEXES_PREFIX)) return undefined;
  const parts = key.slice(INDEXES_PREFIX.length).split('/');
  return parts.length >= 3 ? `${INDEXES_PREFIX}${parts[0]}/${parts[1]}/` : undefined;
}

/**
 * Group objects by their first `depth` segments under `base`; objects with no further
 * segment after those (files directly under a level vacuum does not manage) are left alone.
 */
function groupBy(objects: readonly ObjectInfo[], base: string, depth: number): Group[] {
  const groups = new Map<string, Group>();
  for (const o of objects) {
    const parts = o.key.slice(base.length).split('/');
    if (parts.length <= depth) continue;
    const prefix = `${base}${parts.slice(0, depth).join('/')}/`;
    let g = groups.get(prefix);
    if (!g) groups.set(prefix, (g = { prefix, keys: [], bytes: 0, newest: -Infinity }));
    g.keys.push(o.key);
    g.bytes += o.size;
    const t = o.lastModified?.getTime();
    g.newest = t === undefined || g.newest === undefined ? undefined : Math.max(g.newest, t);
  }
  return [...groups.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}
