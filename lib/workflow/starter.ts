/**
 * Starting build executions on Step Functions. This is the only module in `lib/` that imports
 * the Step Functions SDK.
 *
 * - Each build is started as `{ name, input: {"dataset": …} }` (contract.md: the S3-event path
 *   passes only the dataset, so every index defined on it is updated); the recovery starts its
 *   delayed-start state machine with an input of its own.
 * - `ExecutionAlreadyExists` means these events were already handled (a redelivery or a replay
 *   reusing the deterministic name): that is success, not an error.
 * - Any other failure is reported per build rather than thrown, after the SDK's own retries of
 *   throttling and 5xx answers, so the caller can fail only the messages that asked for it
 *   (an SQS partial batch response) and let the others go.
 */
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';

/** What a build needs to be started: from `planTriggeredBuilds` (trigger.ts) or by hand. */
export interface BuildStart {
  /** The dataset URI: the whole state machine input unless `input` is given. */
  dataset: string;
  /** The execution name (idempotency key). */
  name: string;
  /** The execution input, when it is more than `{"dataset"}` (the recovery's delayed start). */
  input?: Record<string, unknown>;
}

export type StartOutcome =
  | { status: 'started'; executionArn: string }
  /** The name was taken: this build was started before. */
  | { status: 'already-started' }
  | { status: 'failed'; error: Error };

export type StartResult<B extends BuildStart = BuildStart> = { build: B } & StartOutcome;

/**
 * A Step Functions client from the standard SDK configuration (credentials chain, `AWS_REGION`,
 * `AWS_ENDPOINT_URL_SFN` / `AWS_ENDPOINT_URL`), so callers need not import the SDK themselves.
 *
 * @example
 * const client = sfnClientFromEnv();
 */
export function sfnClientFromEnv(): SFNClient {
  return new SFNClient({});
}

/** StartExecution calls in flight at once; a batch rarely names more than a few datasets. */
const START_CONCURRENCY = 4;

/**
 * Start one execution per build, `concurrency` at a time. Never rejects for a failed start:
 * each result says `started`, `already-started` or `failed` (with the SDK's error).
 *
 * @example
 * const client = new SFNClient({});
 * const results = await startBuilds(client, 'arn:aws:states:eu-west-1:123456789012:stateMachine:ScalarIndexBuild', [
 *   { dataset: 's3://bucket/datasets/sales', name: 'bucket-datasets-sales-0123456789abcdef0123456789abcdef' },
 * ]);
 * // [{ build: {...}, status: 'started', executionArn: 'arn:aws:states:…:execution:ScalarIndexBuild:bucket-datasets-sales-…' }]
 */
export async function startBuilds<B extends BuildStart>(
  client: SFNClient,
  stateMachineArn: string,
  builds: readonly B[],
  options: { concurrency?: number } = {},
): Promise<StartResult<B>[]> {
  const results: StartResult<B>[] = new Array(builds.length);
  let next = 0;
  const worker = async () => {
    while (next < builds.length) {
      const i = next++;
      results[i] = { build: builds[i]!, ...(await startOne(client, stateMachineArn, builds[i]!)) };
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? START_CONCURRENCY, builds.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

async function startOne(client: SFNClient, stateMachineArn: string, build: BuildStart): Promise<StartOutcome> {
  try {
    const input = JSON.stringify(build.input ?? { dataset: build.dataset });
    const res = await client.send(new StartExecutionCommand({ stateMachineArn, name: build.name, input }));
    return { status: 'started', executionArn: res.executionArn ?? '' };
  } catch (err) {
    if (err instanceof ExecutionAlreadyExists || (err as { name?: unknown })?.name === 'ExecutionAlreadyExists') return { status: 'already-started' };
    return { status: 'failed', error: err instanceof Error ? err : new Error(String(err)) };
  }
}

/**
 * The messages to hand back for another try: every message that asked for a build whose start
 * failed, sorted and without duplicates.
 *
 * @example
 * failedMessageIds([{ build: { dataset: 's3://b/x', name: 'n', messageIds: ['m1', 'm2'] }, status: 'failed', error: new Error('throttled') }])
 * // ['m1', 'm2']
 */
export function failedMessageIds(results: readonly StartResult<BuildStart & { messageIds: readonly string[] }>[]): string[] {
  const ids = new Set<string>();
  for (const r of results) if (r.status === 'failed') for (const id of r.build.messageIds) ids.add(id);
  return [...ids].sort();
}
