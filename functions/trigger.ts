/**
 * S3 → SQS → this function: start one build execution per dataset that got new fragments.
 *
 * Returns an SQS partial batch response (the event source mapping needs
 * `ReportBatchItemFailures`): only the messages behind a failed StartExecution are retried.
 * Malformed bodies can never succeed, so they are logged and dropped, not retried.
 */
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { failedMessageIds, sfnClientFromEnv, startBuilds, type StartResult } from '../lib/workflow/starter.js';
import { planTriggeredBuilds, type BuildToStart, type TriggerPlan } from '../lib/workflow/trigger.js';
import { step, triggerSettingsFromEnv, type StepTools } from './shared.js';

const settings = triggerSettingsFromEnv();
const client = sfnClientFromEnv();

export const handler = step('trigger', async (event: SQSEvent, tools): Promise<SQSBatchResponse> => {
  const plan = planTriggeredBuilds(event.Records ?? [], settings.datasetRoots);
  const results = await startBuilds(client, settings.stateMachineArn, plan.builds);
  report(plan, results, tools);
  return { batchItemFailures: failedMessageIds(results).map((itemIdentifier) => ({ itemIdentifier })) };
});

function report(plan: TriggerPlan, results: StartResult<BuildToStart>[], { logger, metrics }: StepTools): void {
  for (const m of plan.malformed) logger.warn('dropping malformed message', { messageId: m.messageId, reason: m.reason });
  // A sample only: a batch can hold thousands of records, and most skips are expected (_index/ writes).
  if (plan.skipped.length > 0) logger.info('skipped records', { count: plan.skipped.length, sample: plan.skipped.slice(0, 10) });
  for (const r of results) {
    const about = { dataset: r.build.dataset, name: r.build.name, fragments: r.build.fragments.length, messageIds: r.build.messageIds };
    if (r.status === 'failed') logger.error('could not start build', { ...about, error: r.error });
    else logger.info(r.status === 'started' ? 'started build' : 'build already started', { ...about, ...(r.status === 'started' && { executionArn: r.executionArn }) });
  }
  const count = (status: string) => results.filter((r) => r.status === status).length;
  metrics.addMetric('BuildsStarted', 'Count', count('started'));
  metrics.addMetric('BuildsAlreadyStarted', 'Count', count('already-started'));
  metrics.addMetric('BuildStartFailures', 'Count', count('failed'));
  metrics.addMetric('RecordsSkipped', 'Count', plan.skipped.length);
  metrics.addMetric('MessagesMalformed', 'Count', plan.malformed.length);
}
