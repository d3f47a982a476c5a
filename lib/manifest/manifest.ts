/**
 * The dataset manifest under `<root>/_index/versions/<20-digit version>.json`: registered
 * fragments and defined indexes. Every commit writes the next version create-only; a commit
 * that finds its version taken reloads the latest and re-applies its change (rebase), so two
 * builds racing on one dataset both land, one after the other.
 *
 * Integrity: each version carries `crc32c`, the CRC32C of its canonical JSON without that
 * field (json-checksum.ts), verified on every read, so a damaged manifest is an error, never
 * a different answer. Each index file entry carries the file's CRC32C, computed as the file
 * was written; readers verify what they read against it. Both fields are optional: versions
 * written before them are read (unverified) as before.
 */
import { AlreadyExistsError, CommitConflictError, IndexFileError } from '../errors.js';
import { CONTENT_CHECKSUM_FIELD, verifyContentChecksum, withContentChecksum } from '../format/json-checksum.js';
import type { ObjectStore } from '../store/store.js';
import type { Manifest } from './schema.js';
import { checkManifestShape, MANIFEST_FORMAT } from './shape.js';

export { MANIFEST_FORMAT };
export const VERSIONS_PREFIX = '_index/versions/';

export type { FragmentEntry, IndexEntry, Manifest } from './schema.js';

export function emptyManifest(): Manifest {
  return { format: MANIFEST_FORMAT, version: 0, createdAt: new Date(0).toISOString(), nextFragmentId: 0, fragments: [], indexes: [] };
}

export function versionKey(version: number): string {
  return `${VERSIONS_PREFIX}${String(version).padStart(20, '0')}.json`;
}

/** Versions present, ascending (parsed as integers, never compared as text). */
export async function listVersions(store: ObjectStore): Promise<number[]> {
  const versions: number[] = [];
  for await (const o of store.list(VERSIONS_PREFIX)) {
    const m = /^_index\/versions\/(\d{1,20})\.json$/.exec(o.key);
    if (m) versions.push(Number(m[1]));
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
  const parsed = checkManifestShape(json);
  if (!parsed.success) throw new IndexFileError(`manifest ${store.describe(key)} is malformed: ${parsed.path || '(root)'}: ${parsed.message}`);
  // A version that records file checksums was written with its own: if that is gone (a
  // damaged field name), the content cannot be trusted.
  if (!(CONTENT_CHECKSUM_FIELD in (json as object)) && parsed.data.indexes.some((e) => e.files.some((f) => f.crc32c !== undefined))) {
    throw new IndexFileError(`manifest ${store.describe(key)} records file checksums but lacks its own ${CONTENT_CHECKSUM_FIELD} field`);
  }
  if (parsed.data.version !== version) throw new IndexFileError(`manifest ${store.describe(key)} claims version ${parsed.data.version}`);
  return parsed.data;
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
    // zod (about 0.5 MB of code) is loaded only by writers; readers check with shape.ts.
    const { ManifestSchema } = await import('./schema.js');
    ManifestSchema.parse(content);
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
