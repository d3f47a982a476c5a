/**
 * The dataset is the fragment files under `data/`, not the manifest: this module compares the
 * two. Builds use it to register new files and to notice deleted and rewritten ones; queries
 * use it (unless told to trust the registered snapshot) so that no answer is exact over an
 * incomplete view.
 *
 * Cost: one listing of `data/` (on S3, one LIST request per 1,000 keys), no reads.
 */
import { isFragmentKey } from '../fragments/keys.js';
import type { ObjectInfo, ObjectStore } from '../store/store.js';
import type { FragmentEntry } from './manifest.js';

/** Every fragment file under `data/`, in key order. */
export async function listFragmentFiles(store: ObjectStore): Promise<ObjectInfo[]> {
  const files: ObjectInfo[] = [];
  for await (const o of store.list('data/')) if (isFragmentKey(o.key)) files.push(o);
  return files;
}

export interface Discovery {
  /** Fragment files the manifest does not register (or registers only as removed), in key order. */
  unregistered: ObjectInfo[];
  /** Registered fragments (not removed) whose file is gone from `data/`. */
  missing: FragmentEntry[];
  /** Registered fragments (not removed) whose file now has another size or store tag. */
  changed: { entry: FragmentEntry; now: ObjectInfo }[];
}

/**
 * Whether the file a listing shows is still the one that was registered: same size, and the
 * same store tag where both are known (S3's ETag; locally size and modification time).
 * Manifests written before tags were recorded compare sizes only.
 */
export function sameObject(entry: FragmentEntry, now: ObjectInfo): boolean {
  if (now.size !== entry.size) return false;
  return entry.etag === undefined || now.etag === undefined || now.etag === entry.etag;
}

/** Compare the registered fragments (manifest.ts `allFragments`) with a listing of `data/` (from {@link listFragmentFiles}). */
export function discover(fragments: readonly FragmentEntry[], files: readonly ObjectInfo[]): Discovery {
  const listed = new Map(files.map((f) => [f.key, f]));
  const registered = new Set<string>();
  const missing: FragmentEntry[] = [];
  const changed: Discovery['changed'] = [];
  for (const f of fragments) {
    if (f.removed) continue;
    registered.add(f.path);
    const now = listed.get(f.path);
    if (!now) missing.push(f);
    else if (!sameObject(f, now)) changed.push({ entry: f, now });
  }
  return { unregistered: files.filter((f) => !registered.has(f.key)), missing, changed };
}
