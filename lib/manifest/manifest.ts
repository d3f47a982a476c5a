/**
 * The dataset manifest under `<root>/_index/versions/<20-digit version>.json`: registered
 * fragments and defined indexes. Every commit writes the next version create-only; a commit
 * that finds its version taken reloads the latest and re-applies its change (rebase), so two
 * builds racing on one dataset both land, one after the other.
 *
 * Integrity: each version carries `crc32c`, the CRC32C of its canonical JSON without that
 * field (json-checksum.ts), and each index file entry the file's CRC32C, computed as the file
 * was written; readers verify what they read against them. Both are required: a manifest
 * whose checksums were stripped cannot be told from a tampered one. On top of the checksums,
 * every manifest read is checked against the invariants a writer keeps (`checkInvariants`),
 * so even content with a valid checksum cannot name a path outside `data/`, reuse an id or
 * cover a fragment that is not registered.
 */
import { z } from 'zod';
import { AlreadyExistsError, CommitConflictError, IndexFileError } from '../errors.js';
import { columnTypeFromSignature } from '../format/column-type.js';
import { isEncodedCrc32c } from '../format/crc32c.js';
import { indexKind } from '../indexes/registry.js';
import { verifyContentChecksum, withContentChecksum } from '../format/json-checksum.js';
import { checkKey, type ObjectStore } from '../store/store.js';

export const MANIFEST_FORMAT = 'serverless-scalar-index/manifest/1';
export const VERSIONS_PREFIX = '_index/versions/';

const FragmentEntrySchema = z.object({
  id: z.number().int().min(0).max(0xffffffff),
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  fingerprint: z.string().min(1),
  /**
   * What the store said of the object when it was registered: S3's ETag, or the local
   * store's size-and-modification-time tag. A listing that reports another tag for the path
   * means the file was rewritten (absent in manifests written before it was recorded).
   */
  etag: z.string().min(1).optional(),
  /**
   * Set when the fragment could not be indexed and the build was told to skip bad fragments:
   * why. A failed fragment is registered (its id is never reused) but no index covers it, so
   * every query lists it in `unindexedFragments`.
   */
  failed: z.string().optional(),
  /**
   * Set (to the time it was noticed) when the file is gone from `data/` (deleted by a person
   * or a lifecycle rule). The id stays reserved; no index covers it any more, queries never
   * return it, and merges drop its rows. A new file at the same path is a new fragment.
   */
  removed: z.string().optional(),
});

const IndexFileSchema = z.object({
  name: z.string(),
  key: z.string(),
  size: z.number().int().nonnegative(),
  /** CRC32C of the whole file, base64 of the big-endian 4 bytes (as S3 encodes it). */
  crc32c: z.string().refine(isEncodedCrc32c, 'not a base64 CRC32C'),
});

const IndexEntrySchema = z.object({
  name: z.string().min(1),
  column: z.string().min(1),
  type: z.enum(['zonemap', 'bitmap']),
  params: z.object({ rowsPerZone: z.number().int().positive().optional() }),
  /** Column type signature (column-type.ts), fixed when the index is first built. */
  valueType: z.string(),
  files: z.array(IndexFileSchema),
  /** Covered fragment ids, ascending. */
  fragmentIds: z.array(z.number().int().min(0)),
  /**
   * Fragments whose rows the files still hold but that no longer count (removed or
   * rewritten since they were indexed), ascending: readers ignore them, the next merge of the
   * index drops them.
   */
  staleFragmentIds: z.array(z.number().int().min(0)).optional(),
  updatedAt: z.string(),
});

const ManifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  version: z.number().int().nonnegative(),
  createdAt: z.string(),
  nextFragmentId: z.number().int().min(0).max(2 ** 32),
  fragments: z.array(FragmentEntrySchema),
  indexes: z.array(IndexEntrySchema),
});

export type FragmentEntry = z.infer<typeof FragmentEntrySchema>;
export type IndexEntry = z.infer<typeof IndexEntrySchema>;
export type Manifest = z.infer<typeof ManifestSchema>;

export function emptyManifest(): Manifest {
  return { format: MANIFEST_FORMAT, version: 0, createdAt: new Date(0).toISOString(), nextFragmentId: 0, fragments: [], indexes: [] };
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
  const bytes = await store.read(key);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new IndexFileError(`manifest ${store.describe(key)} is not valid JSON`, { cause: err });
  }
  verifyContentChecksum(json, `manifest ${store.describe(key)}`);
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IndexFileError(`manifest ${store.describe(key)} is malformed: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`);
  }
  if (parsed.data.version !== version) throw new IndexFileError(`manifest ${store.describe(key)} claims version ${parsed.data.version}`);
  checkInvariants(parsed.data, `manifest ${store.describe(key)}`);
  return parsed.data;
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

/** True for a fragment some index may cover: registered, not failed, not removed. */
export function isLive(f: FragmentEntry): boolean {
  return f.failed === undefined && f.removed === undefined;
}

/**
 * The rules every manifest this project writes keeps, checked on every read and before
 * every commit:
 * - fragment ids are unique and below `nextFragmentId`; paths of fragments not removed are
 *   unique;
 * - every path lies under `data/` and is a valid key (a failed fragment may carry a key the
 *   store refused: it was recorded so that it cannot block builds, and is never read);
 * - index names are unique; each index covers, in ascending order, only fragments that are
 *   registered, not failed and not removed; its files lie under `_index/indexes/`.
 *
 * @throws IndexFileError naming `what` and the first rule broken
 */
export function checkInvariants(m: Manifest, what: string): void {
  const bad = (why: string) => new IndexFileError(`${what} is inconsistent: ${why}`);
  const byId = new Map<number, FragmentEntry>();
  const livePaths = new Set<string>();
  for (const f of m.fragments) {
    if (byId.has(f.id)) throw bad(`fragment id ${f.id} is registered twice`);
    byId.set(f.id, f);
    if (f.id >= m.nextFragmentId) throw bad(`fragment id ${f.id} is not below nextFragmentId ${m.nextFragmentId}`);
    if (!f.path.startsWith('data/') || f.path.length <= 5) throw bad(`fragment ${f.id} has path ${JSON.stringify(f.path)}, outside data/`);
    if (f.failed === undefined) {
      try {
        checkKey(f.path);
      } catch (err) {
        throw bad(`fragment ${f.id}: ${(err as Error).message}`);
      }
    }
    if (f.removed === undefined) {
      if (livePaths.has(f.path)) throw bad(`path ${JSON.stringify(f.path)} is registered twice`);
      livePaths.add(f.path);
    }
  }
  const names = new Set<string>();
  for (const ix of m.indexes) {
    if (names.has(ix.name)) throw bad(`index ${ix.name} is defined twice`);
    names.add(ix.name);
    checkIndexDefinition(ix, bad);
    let previous = -1;
    for (const id of ix.fragmentIds) {
      if (id <= previous) throw bad(`index ${ix.name} lists fragment ids out of order (${id} after ${previous})`);
      previous = id;
      const f = byId.get(id);
      if (!f) throw bad(`index ${ix.name} covers fragment ${id}, which is not registered`);
      if (!isLive(f)) throw bad(`index ${ix.name} covers fragment ${id}, which is ${f.removed !== undefined ? 'removed' : 'failed'}`);
    }
    const covered = new Set(ix.fragmentIds);
    for (const id of ix.staleFragmentIds ?? []) if (covered.has(id)) throw bad(`index ${ix.name} lists fragment ${id} as both covered and stale`);
    for (const file of ix.files) {
      if (!file.key.startsWith('_index/indexes/')) throw bad(`index ${ix.name} names a file outside _index/indexes/: ${JSON.stringify(file.key)}`);
      try {
        checkKey(file.key);
      } catch (err) {
        throw bad(`index ${ix.name}: ${(err as Error).message}`);
      }
    }
  }
}

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
 * commit. On a lost race it is re-applied to the new latest version.
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
    ManifestSchema.parse(content);
    checkInvariants(content, `the manifest about to be committed as version ${version}`);
    try {
      const body = `${JSON.stringify(withContentChecksum(content), null, 1)}\n`;
      await store.put(versionKey(version), new TextEncoder().encode(body), { createOnly: true });
      return { manifest: content, committed: true, attempts: attempt };
    } catch (err) {
      if (!(err instanceof AlreadyExistsError)) throw err;
      // Another writer took this version: back off a little, reload, re-apply.
      await new Promise((r) => setTimeout(r, Math.min(200, 2 ** attempt) * Math.random()));
    }
  }
  throw new CommitConflictError(`could not commit to ${store.describe(VERSIONS_PREFIX)} after ${maxAttempts} attempts: too many concurrent writers`);
}
