/**
 * A failed automatic build, retried: EventBridge delivers the build state machine's
 * "Step Functions Execution Status Change" events for FAILED, TIMED_OUT and ABORTED
 * executions, and this function starts the delayed-start state machine (a Wait, then
 * StartExecution of the build under `<name>-r<n>`) when lib/workflow/recovery.ts says so.
 *
 * Throws only when the delayed start itself could not be started, so that EventBridge retries
 * the invocation; the retry name makes a repeated start a no-op.
 */
import type { EventBridgeEvent } from 'aws-lambda';
import { planRetry, type ExecutionStatusChange, type RetryDecision } from '../lib/workflow/recovery.js';
import { sfnClientFromEnv, startBuilds } from '../lib/workflow/starter.js';
import { recoverSettingsFromEnv, step } from './shared.js';

const settings = recoverSettingsFromEnv();
const client = sfnClientFromEnv();

type StatusChangeEvent = EventBridgeEvent<'Step Functions Execution Status Change', Partial<ExecutionStatusChange>>;

export const handler = step('recover', async (event: StatusChangeEvent, { logger, metrics }): Promise<RetryDecision & { started?: boolean }> => {
  const detail = event?.detail ?? {};
  const decision: RetryDecision =
    typeof detail.name === 'string' && typeof detail.status === 'string'
      ? planRetry({ name: detail.name, status: detail.status, input: detail.input, executionArn: detail.executionArn }, settings.policy)
      : { action: 'ignore', reason: 'not an execution status change (no detail.name and detail.status)' };
  const about = { execution: detail.executionArn ?? detail.name, status: detail.status };
  if (decision.action === 'ignore') {
    logger.info('not retried', { ...about, reason: decision.reason });
    return decision;
  }
  if (decision.action === 'give-up') {
    logger.warn('retries exhausted', { ...about, dataset: decision.dataset, reason: decision.reason });
    metrics.addMetric('BuildRetriesExhausted', 'Count', 1);
    return decision;
  }
  const { dataset, name, waitSeconds } = decision;
  const [result] = await startBuilds(client, settings.retryStateMachineArn, [{ dataset, name, input: { dataset, name, waitSeconds } }]);
  if (result!.status === 'failed') throw result!.error;
  logger.info(result!.status === 'started' ? 'retry scheduled' : 'retry already scheduled', { ...about, dataset, retry: name, waitSeconds });
  metrics.addMetric('BuildRetriesScheduled', 'Count', result!.status === 'started' ? 1 : 0);
  return { ...decision, started: result!.status === 'started' };
});
