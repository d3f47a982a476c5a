/**
 * Vacuum, on a schedule: delete orphaned builds, unreferenced index directories and manifest
 * versions past retention (lib/workflow/vacuum.ts says what is kept and why it is safe).
 *
 * The event names the dataset, `{"dataset": "s3://bucket/root"}` (what the stack's daily rule
 * sends, one rule per literal dataset root); without one, every dataset in `VACUUM_DATASETS`
 * (comma-separated `s3://` URIs) is vacuumed in turn. `olderThan`, `keepVersions` and `dryRun`
 * in the event override `VACUUM_OLDER_THAN` (default `7d`) and `VACUUM_KEEP_VERSIONS`
 * (default 10). Other fields, such as those of an EventBridge scheduled event, are ignored.
 */
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import { DEFAULT_KEEP_VERSIONS, DEFAULT_VACUUM_OLDER_THAN, parseDuration, vacuum } from '../lib/workflow/vacuum.js';
import { step } from './shared.js';

export interface VacuumSettings {
  datasets: string[];
  olderThan: string;
  keepVersions: number;
}

const VacuumEventSchema = z.object({
  dataset: z.string().regex(/^s3:\/\/[^/]+/i, 'dataset must be an s3:// URI').optional(),
  olderThan: z.string().optional(),
  keepVersions: z.number().int().min(1).optional(),
  dryRun: z.boolean().optional(),
});

/** One line per dataset: counts, not the lists (a run can delete thousands of objects). */
export interface VacuumSummary {
  dataset: string;
  versions: number;
  indexDirs: number;
  fragmentChunks: number;
  builds: number;
  objects: number;
  bytes: number;
  dryRun: boolean;
}

/**
 * The function's settings. A bad value fails the cold start with a UsageError naming it.
 *
 * @example
 * vacuumSettingsFromEnv({ VACUUM_DATASETS: 's3://b/datasets/sales', VACUUM_OLDER_THAN: '3d' })
 * // { datasets: ['s3://b/datasets/sales'], olderThan: '3d', keepVersions: 10 }
 */
export function vacuumSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): VacuumSettings {
  const datasets = (env.VACUUM_DATASETS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const d of datasets) if (!/^s3:\/\/[^/]+/i.test(d)) throw new UsageError(`invalid environment: VACUUM_DATASETS entry ${JSON.stringify(d)} is not an s3:// URI`);
  const olderThan = env.VACUUM_OLDER_THAN?.trim() || DEFAULT_VACUUM_OLDER_THAN;
  try {
    parseDuration(olderThan);
  } catch (err) {
    throw new UsageError(`invalid environment: VACUUM_OLDER_THAN: ${(err as Error).message}`);
  }
  const keep = env.VACUUM_KEEP_VERSIONS?.trim();
  if (keep && (!/^\d+$/.test(keep) || Number(keep) < 1 || !Number.isSafeInteger(Number(keep)))) {
    throw new UsageError(`invalid environment: VACUUM_KEEP_VERSIONS=${JSON.stringify(keep)}: expected a whole number of at least 1`);
  }
  return { datasets, olderThan, keepVersions: keep ? Number(keep) : DEFAULT_KEEP_VERSIONS };
}

const settings = vacuumSettingsFromEnv();

export const handler = step('vacuum', async (event: unknown, { logger, metrics }): Promise<{ datasets: VacuumSummary[] }> => {
  const parsed = VacuumEventSchema.safeParse(event ?? {});
  if (!parsed.success) throw new UsageError(`invalid vacuum input: ${parsed.error.issues[0]!.path.join('.') || '(input)'}: ${parsed.error.issues[0]!.message}`);
  const input = parsed.data;
  const datasets = input.dataset ? [input.dataset] : settings.datasets;
  if (datasets.length === 0) throw new UsageError('no dataset to vacuum: invoke with {"dataset": "s3://bucket/root"} or set VACUUM_DATASETS');
  const out: VacuumSummary[] = [];
  let failure: unknown;
  // One dataset failing must not keep the others from being vacuumed; the first error is rethrown.
  for (const dataset of datasets) {
    try {
      const r = await vacuum({ dataset, olderThan: input.olderThan ?? settings.olderThan, keepVersions: input.keepVersions ?? settings.keepVersions, dryRun: input.dryRun });
      const summary = { dataset, versions: r.deleted.versions.length, indexDirs: r.deleted.indexDirs.length, fragmentChunks: r.deleted.fragmentChunks.length, builds: r.deleted.builds.length, objects: r.objects, bytes: r.bytes, dryRun: r.dryRun };
      logger.info(r.dryRun ? 'would vacuum' : 'vacuumed', { ...summary, retainedVersions: r.retainedVersions.length });
      out.push(summary);
      metrics.addMetric('ObjectsVacuumed', 'Count', r.dryRun ? 0 : r.objects);
      metrics.addMetric('BytesVacuumed', 'Bytes', r.dryRun ? 0 : r.bytes);
    } catch (err) {
      logger.error('vacuum failed', { dataset, error: err as Error });
      failure ??= err;
    }
  }
  if (failure) throw failure;
  return { datasets: out };
});
