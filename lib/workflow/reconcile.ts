/**
 * The periodic reconcile: which datasets hold fragments that no build has taken care of, so
 * that a build is started for them even when every event-started attempt failed, an event was
 * lost, or a fragment landed while a build was running.
 *
 * `needsBuild` is the one place that reads the manifest for this decision; it uses only the
 * latest manifest's fragment paths, ids and `failed` marks, each index's covered ids, and a
 * listing of `data/`.
 */
import { openDataset } from '../dataset.js';
import { isFragmentKey } from '../fragments/keys.js';
import { loadLatestManifest } from '../manifest/manifest.js';
import type { ObjectStore } from '../store/store.js';
import { datasetRootOf, executionName, type DatasetRoot } from './trigger.js';

export interface BuildNeed {
  /** Fragment files under `data/` that no manifest version registers. */
  unregistered: number;
  /**
   * Registered fragments (not marked failed) that some defined index does not cover: a build
   * registered them and then failed, or is still running.
   */
  uncovered: number;
}

export interface NeedsBuildOptions {
  /**
   * Count only fragments last written before this time: younger ones are most likely being
   * built right now by the build their upload started.
   */
  settledBefore?: Date;
}

/**
 * Whether a dataset has fragments that a build would register or index.
 *
 * @example
 * const { store } = openDataset('s3://bucket/datasets/sales');
 * await needsBuild(store) // { unregistered: 2, uncovered: 0 }: two new files under data/
 */
export async function needsBuild(store: ObjectStore, options: NeedsBuildOptions = {}): Promise<BuildNeed> {
  const manifest = await loadLatestManifest(store);
  const settled = (o: { lastModified?: Date }) => !options.settledBefore || !o.lastModified || o.lastModified < options.settledBefore;
  const listed = new Map<string, { lastModified?: Date }>();
  for await (const o of store.list('data/')) if (isFragmentKey(o.key)) listed.set(o.key, o);

  const registered = new Set(manifest.fragments.map((f) => f.path));
  let unregistered = 0;
  for (const [key, o] of listed) if (!registered.has(key) && settled(o)) unregistered++;

  const covered = manifest.indexes.map((ix) => new Set(ix.fragmentIds));
  let uncovered = 0;
  for (const f of manifest.fragments) {
    if (f.failed) continue;
    const o = listed.get(f.path);
    // A registered fragment that is gone makes every build fail; a build is no help there.
    if (!o || !settled(o)) continue;
    if (covered.some((ids) => !ids.has(f.id))) uncovered++;
  }
  return { unregistered, uncovered };
}

/**
 * The dataset roots under a pattern (`datasets/*`) that hold fragments, found by listing the
 * pattern's base once and routing each fragment key as the trigger does.
 *
 * @example
 * await discoverDatasetRoots('bucket', { prefix: 'datasets', wildcard: true }) // ['datasets/sales', 'datasets/web']
 */
export async function discoverDatasetRoots(bucket: string, pattern: DatasetRoot, open: (uri: string) => ObjectStore = (uri) => openDataset(uri).store): Promise<string[]> {
  if (!pattern.wildcard) return [pattern.prefix];
  const store = open(`s3://${bucket}/${pattern.prefix}`);
  const roots = new Set<string>();
  for await (const o of store.list('')) {
    if (!isFragmentKey(o.key)) continue;
    const found = datasetRootOf(bucket, `${pattern.prefix}/${o.key}`, [pattern]);
    if ('root' in found) roots.add(found.root);
  }
  return [...roots].sort();
}

export type DatasetCheck = ({ dataset: string } & BuildNeed) | { dataset: string; error: Error };

export interface ReconcileOptions {
  /** The bucket of roots that do not name one. */
  bucket: string;
  /** `DATASET_PREFIXES`, parsed (trigger.ts): literal roots and patterns. */
  roots: readonly DatasetRoot[];
  settledBefore?: Date;
  /** How a dataset URI becomes a store (tests); default `openDataset`. */
  open?: (uri: string) => ObjectStore;
}

/**
 * Check every configured dataset (patterns expanded). One dataset failing (a damaged
 * manifest, access denied) is reported in its entry and does not stop the others.
 *
 * @example
 * await checkDatasets({ bucket: 'bucket', roots: parseDatasetPrefixes('datasets/*') })
 * // [{ dataset: 's3://bucket/datasets/sales', unregistered: 0, uncovered: 3 }, …]
 */
export async function checkDatasets(options: ReconcileOptions): Promise<DatasetCheck[]> {
  const open = options.open ?? ((uri: string) => openDataset(uri).store);
  const out: DatasetCheck[] = [];
  const seen = new Set<string>();
  for (const root of options.roots) {
    const bucket = root.bucket ?? options.bucket;
    let prefixes: string[];
    try {
      prefixes = await discoverDatasetRoots(bucket, root, open);
    } catch (err) {
      out.push({ dataset: `s3://${bucket}/${root.prefix}/*`, error: err as Error });
      continue;
    }
    for (const prefix of prefixes) {
      const dataset = prefix ? `s3://${bucket}/${prefix}` : `s3://${bucket}`;
      if (seen.has(dataset)) continue;
      seen.add(dataset);
      try {
        out.push({ dataset, ...(await needsBuild(open(dataset), { settledBefore: options.settledBefore })) });
      } catch (err) {
        out.push({ dataset, error: err as Error });
      }
    }
  }
  return out;
}

/**
 * The execution name of a reconcile-started build: automatic (recovery.ts retries it), and
 * the same for the same dataset and scheduled time, so a redelivered schedule starts nothing
 * new.
 *
 * @example
 * reconcileName('s3://bucket/datasets/sales', new Date('2026-11-02T10:00:00Z')) // 'bucket-datasets-sales-' + 32 hex
 */
export function reconcileName(dataset: string, at: Date): string {
  return executionName(dataset, [{ key: 'reconcile', version: at.toISOString() }]);
}
