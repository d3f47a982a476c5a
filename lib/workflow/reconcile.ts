/**
 * The periodic reconcile: which datasets hold fragments that no build has taken care of, so
 * that a build is started for them even when every event-started attempt failed, an event was
 * lost, or a fragment landed while a build was running.
 *
 * `needsBuild` is the one place that reads the manifest for this decision: the latest
 * manifest's fragments and coverage against a listing of `data/` (discover.ts).
 */
import { openDataset } from '../dataset.js';
import { isFragmentKey } from '../fragments/keys.js';
import { discover, listFragmentFiles } from '../manifest/discover.js';
import { allFragments, coverageOf, loadLatestManifest } from '../manifest/manifest.js';
import { has } from '../manifest/ranges.js';
import type { ObjectStore } from '../store/store.js';
import { datasetRootOf, executionName, type DatasetRoot } from './trigger.js';

export interface BuildNeed {
  /** Fragment files under `data/` that no manifest version registers (or that were rewritten since). */
  unregistered: number;
  /**
   * Registered fragments (not failed, not removed) that some defined index does not cover: a
   * build registered them and then failed, or is still running.
   */
  uncovered: number;
  /** Registered fragments whose files are gone: a build records them as removed. */
  gone: number;
}

export interface NeedsBuildOptions {
  /**
   * Count only fragments last written before this time: younger ones are most likely being
   * built right now by the build their upload started.
   */
  settledBefore?: Date;
}

/**
 * Whether a dataset has fragments that a build would register, index or record as removed.
 *
 * @example
 * const { store } = openDataset('s3://bucket/datasets/sales');
 * await needsBuild(store) // { unregistered: 2, uncovered: 0, gone: 0 }: two new files under data/
 */
export async function needsBuild(store: ObjectStore, options: NeedsBuildOptions = {}): Promise<BuildNeed> {
  const manifest = await loadLatestManifest(store);
  const settled = (o: { lastModified?: Date }) => !options.settledBefore || !o.lastModified || o.lastModified < options.settledBefore;
  const [files, fragments] = await Promise.all([listFragmentFiles(store), allFragments(store, manifest)]);
  const found = discover(fragments, files);
  const unregistered = [...found.unregistered, ...found.changed.map((c) => c.now)].filter(settled).length;
  const changed = new Set(found.changed.map((c) => c.entry.id));
  const gone = new Set(found.missing.map((f) => f.id));
  const coverage = manifest.indexes.map(coverageOf);
  const listed = new Map(files.map((o) => [o.key, o]));
  let uncovered = 0;
  for (const f of fragments) {
    if (f.failed !== undefined || f.removed || changed.has(f.id) || gone.has(f.id)) continue;
    // A young one is most likely being indexed by the build that registered it.
    if (!settled(listed.get(f.path) ?? {})) continue;
    if (coverage.some((c) => !has(c, f.id))) uncovered++;
  }
  return { unregistered, uncovered, gone: gone.size };
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
