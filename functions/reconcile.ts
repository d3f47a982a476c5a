/**
 * The periodic reconcile, on a schedule: start a build for every configured dataset (patterns
 * expanded) whose `data/` holds fragments that are unregistered or not covered by every
 * defined index, and that were written at least `RECONCILE_SETTLE_MINUTES` ago (younger ones
 * belong to the build their upload started). Execution names come from the dataset and the
 * scheduled time (lib/workflow/reconcile.ts), so a redelivered schedule starts nothing new,
 * and a failed reconcile build is retried like an event-started one.
 *
 * One dataset failing to be checked or started does not keep the others from it; the first
 * error is thrown at the end, so the invocation counts as failed.
 */
import { checkDatasets, reconcileName } from '../lib/workflow/reconcile.js';
import { sfnClientFromEnv, startBuilds } from '../lib/workflow/starter.js';
import { reconcileSettingsFromEnv, step } from './shared.js';

const settings = reconcileSettingsFromEnv();
const client = sfnClientFromEnv();

export interface ReconcileSummary {
  checked: number;
  started: string[];
  alreadyStarted: string[];
  errors: number;
}

export const handler = step('reconcile', async (event: { time?: string } | undefined, { logger, metrics }): Promise<ReconcileSummary> => {
  const scheduled = event?.time ? new Date(event.time) : new Date();
  const at = Number.isNaN(scheduled.getTime()) ? new Date() : scheduled;
  const checks = await checkDatasets({ bucket: settings.bucket, roots: settings.datasetRoots, settledBefore: new Date(at.getTime() - settings.settleMinutes * 60_000) });

  let failure: Error | undefined;
  const due: { dataset: string; name: string }[] = [];
  for (const c of checks) {
    if ('error' in c) {
      logger.error('could not check dataset', { dataset: c.dataset, error: c.error });
      failure ??= c.error;
    } else if (c.unregistered + c.uncovered + c.gone > 0) {
      logger.info('dataset needs a build', { dataset: c.dataset, unregistered: c.unregistered, uncovered: c.uncovered, gone: c.gone });
      due.push({ dataset: c.dataset, name: reconcileName(c.dataset, at) });
    }
  }
  const results = await startBuilds(client, settings.stateMachineArn, due);
  for (const r of results) {
    if (r.status === 'failed') {
      logger.error('could not start build', { dataset: r.build.dataset, name: r.build.name, error: r.error });
      failure ??= r.error;
    } else {
      logger.info(r.status === 'started' ? 'started build' : 'build already started', { dataset: r.build.dataset, name: r.build.name });
    }
  }
  const of = (status: string) => results.filter((r) => r.status === status).map((r) => r.build.dataset);
  const summary = { checked: checks.length, started: of('started'), alreadyStarted: of('already-started'), errors: checks.filter((c) => 'error' in c).length + of('failed').length };
  metrics.addMetric('DatasetsChecked', 'Count', summary.checked);
  metrics.addMetric('ReconcileBuildsStarted', 'Count', summary.started.length);
  metrics.addMetric('ReconcileErrors', 'Count', summary.errors);
  if (failure) throw failure;
  return summary;
});
