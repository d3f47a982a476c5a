/**
 * What every Lambda entry point shares: middy with Powertools logging and metrics around one
 * call into `lib/`, and the settings a deployment puts in the environment.
 *
 * - Errors leave the handler as they were thrown. Step Functions matches `error.name`
 *   (`StoreError`, `FragmentReadError`, `UsageError`, …) in Retry and Catch.
 * - middy's early timeout is off: a Lambda timeout must surface as `Sandbox.Timedout`, which
 *   the workflow retries, not as a `TimeoutError` it would not recognise.
 * - Only a summary of each event is logged (ids and sizes, never whole payloads).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { UsageError } from '../lib/errors.js';
import { useThroughputGc } from '../lib/runtime.js';
import { DEFAULT_RETRY_POLICY, MAX_RETRIES, type RetryPolicy } from '../lib/workflow/recovery.js';
import type { StepSettings } from '../lib/workflow/steps.js';
import { parseDatasetPrefixes, type DatasetRoot } from '../lib/workflow/trigger.js';

// Every handler builds or merges index files: V8 setting for that, once per sandbox (lib/runtime.ts).
useThroughputGc('always');

export const DEFAULT_METRICS_NAMESPACE = 'ScalarIndex';
export const DEFAULT_SERVICE_NAME = 'scalar-index';

/** What a wrapped function gets besides its event. */
export interface StepTools {
  logger: Logger;
  metrics: Metrics;
  context: Context;
}

/** The Lambda handler `step` returns. */
export type StepHandler<E, R> = (event: E, context: Context) => Promise<R>;

/**
 * Wrap one call into `lib/` as a Lambda handler: Powertools Logger (Lambda context, a
 * one-line summary of the event and result), Metrics (cold start, `StepDuration` in ms with a
 * `step` dimension, `StepErrors` on failure), flushed even when the call throws.
 *
 * @example
 * // functions/plan.ts
 * const settings = stepSettingsFromEnv();
 * export const handler = step('plan', (event) => planStep(event, settings));
 */
export function step<E = unknown, R = unknown>(name: string, fn: (event: E, tools: StepTools) => Promise<R>): StepHandler<E, R> {
  const env = process.env;
  const logger = new Logger({ serviceName: env.POWERTOOLS_SERVICE_NAME || DEFAULT_SERVICE_NAME, persistentKeys: { step: name } });
  const metrics = new Metrics({
    namespace: env.POWERTOOLS_METRICS_NAMESPACE || DEFAULT_METRICS_NAMESPACE,
    serviceName: env.POWERTOOLS_SERVICE_NAME || DEFAULT_SERVICE_NAME,
    defaultDimensions: { step: name },
  });

  const run = async (event: E, context: Context): Promise<R> => {
    logger.info(`${name} start`, { event: summarize(event) });
    const started = performance.now();
    try {
      const result = await fn(event, { logger, metrics, context });
      logger.info(`${name} done`, { result: summarize(result), ms: Math.round(performance.now() - started) });
      return result;
    } catch (err) {
      metrics.addMetric('StepErrors', MetricUnit.Count, 1);
      logger.error(`${name} failed`, err as Error);
      throw err; // unchanged: its name is what Step Functions matches
    } finally {
      metrics.addMetric('StepDuration', MetricUnit.Milliseconds, performance.now() - started);
    }
  };

  return middy(run, { timeoutEarlyInMillis: 0 })
    .use(injectLambdaContext(logger, { logEvent: false, resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true })) as unknown as StepHandler<E, R>;
}

const MAX_SUMMARY_STRING = 200;

/**
 * A loggable summary of an event or result: top-level strings (cut to 200 characters), numbers
 * and booleans as they are, arrays as their length, nested objects as their key count.
 *
 * @example
 * summarize({ dataset: 's3://b/x', buildId: 'b1', indexes: [{ column: 'a', type: 'bitmap' }] })
 * // { dataset: 's3://b/x', buildId: 'b1', indexes: 1 }
 */
export function summarize(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return typeof value === 'string' ? cut(value) : value;
  if (Array.isArray(value)) return { length: value.length };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, 20)) {
    if (typeof v === 'string') out[k] = cut(v);
    else if (typeof v === 'number' || typeof v === 'boolean' || v === null) out[k] = v;
    else if (Array.isArray(v)) out[k] = v.length;
    else if (typeof v === 'object') out[k] = `{${Object.keys(v).length} keys}`;
  }
  return out;
}

const cut = (s: string) => (s.length > MAX_SUMMARY_STRING ? `${s.slice(0, MAX_SUMMARY_STRING)}…` : s);

/** An optional integer variable: unset or empty means the default. */
function intVar(name: string, min: number, max: number) {
  return z
    .string()
    .trim()
    .optional()
    .transform((s, ctx) => {
      if (s === undefined || s === '') return undefined;
      const n = /^\d+$/.test(s) ? Number(s) : NaN;
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `${name}=${JSON.stringify(s)}: expected an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });
}

const StepEnvSchema = z.object({
  GROUP_ROWS: intVar('GROUP_ROWS', 1, Number.MAX_SAFE_INTEGER),
  MAX_CONCURRENCY: intVar('MAX_CONCURRENCY', 1, 10_000),
  SKIP_BAD_FRAGMENTS: z.enum(['true', 'false'], { error: (i) => `SKIP_BAD_FRAGMENTS=${JSON.stringify(i.input)}: expected true or false` }).optional(),
});

/** A required state machine ARN variable. */
function stateMachineArnVar(name: string) {
  return z
    .string({ error: `${name} is not set` })
    .trim()
    .regex(/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/, `${name} is not a state machine ARN (arn:aws:states:<region>:<account>:stateMachine:<name>)`);
}

const TriggerEnvSchema = z.object({
  STATE_MACHINE_ARN: stateMachineArnVar('STATE_MACHINE_ARN'),
  DATASET_PREFIXES: z.string().optional(),
});

const RecoverEnvSchema = z.object({
  RETRY_STATE_MACHINE_ARN: stateMachineArnVar('RETRY_STATE_MACHINE_ARN'),
  BUILD_RETRIES: intVar('BUILD_RETRIES', 0, MAX_RETRIES),
  RETRY_BASE_SECONDS: intVar('RETRY_BASE_SECONDS', 1, 86_400),
});

const ReconcileEnvSchema = z.object({
  STATE_MACHINE_ARN: stateMachineArnVar('STATE_MACHINE_ARN'),
  BUCKET_NAME: z
    .string({ error: 'BUCKET_NAME is not set' })
    .trim()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'BUCKET_NAME is not an S3 bucket name'),
  DATASET_PREFIXES: z.string({ error: 'DATASET_PREFIXES is not set' }).trim().min(1, 'DATASET_PREFIXES is empty: the reconcile needs the dataset roots or patterns to check'),
  RECONCILE_SETTLE_MINUTES: intVar('RECONCILE_SETTLE_MINUTES', 0, 7 * 24 * 60),
});

/** Parse env with a one-line UsageError that names the variable. */
function parseEnv<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const r = schema.safeParse(env);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new UsageError(`invalid environment: ${issue.message}`);
}

/**
 * The step settings a deployment sets: `GROUP_ROWS` (rows per build-part group; the execution
 * input's `groupRows` wins), `MAX_CONCURRENCY` (Distributed Map concurrency, 1–10000) and
 * `SKIP_BAD_FRAGMENTS` (`true`: record unreadable fragments as failed instead of failing the
 * build, so one bad file cannot block a bucket; the input's `skipBadFragments` wins).
 * Called at module load, so a bad value fails the cold start with a UsageError naming it.
 *
 * @example
 * stepSettingsFromEnv({ GROUP_ROWS: '1000000', MAX_CONCURRENCY: '100' }) // { groupRows: 1000000, maxConcurrency: 100 }
 * stepSettingsFromEnv({ GROUP_ROWS: 'lots' }) // throws UsageError: invalid environment: GROUP_ROWS="lots": expected …
 */
export function stepSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): StepSettings {
  const { GROUP_ROWS, MAX_CONCURRENCY, SKIP_BAD_FRAGMENTS } = parseEnv(StepEnvSchema, env);
  return {
    ...(GROUP_ROWS !== undefined && { groupRows: GROUP_ROWS }),
    ...(MAX_CONCURRENCY !== undefined && { maxConcurrency: MAX_CONCURRENCY }),
    ...(SKIP_BAD_FRAGMENTS !== undefined && { skipBadFragments: SKIP_BAD_FRAGMENTS === 'true' }),
  };
}

export interface TriggerSettings {
  stateMachineArn: string;
  /** Empty: infer each dataset root from the key (the part before `data/`). */
  datasetRoots: DatasetRoot[];
}

/**
 * The trigger's settings: `STATE_MACHINE_ARN` (required) and `DATASET_PREFIXES`
 * (comma-separated dataset roots, optional). A bad value fails the cold start.
 *
 * @example
 * triggerSettingsFromEnv({ STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Build', DATASET_PREFIXES: 'datasets/sales' })
 * // { stateMachineArn: 'arn:aws:states:…', datasetRoots: [{ prefix: 'datasets/sales' }] }
 */
export function triggerSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): TriggerSettings {
  const { STATE_MACHINE_ARN, DATASET_PREFIXES } = parseEnv(TriggerEnvSchema, env);
  return { stateMachineArn: STATE_MACHINE_ARN, datasetRoots: parseDatasetPrefixes(DATASET_PREFIXES) };
}

export interface RecoverSettings {
  retryStateMachineArn: string;
  policy: RetryPolicy;
}

/**
 * The recover function's settings: `RETRY_STATE_MACHINE_ARN` (the delayed-start state
 * machine, required), `BUILD_RETRIES` (retries per failed build, 0–99, default 3) and
 * `RETRY_BASE_SECONDS` (the first back-off, default 120; each later one is 4× longer, at most
 * an hour). A bad value fails the cold start.
 *
 * @example
 * recoverSettingsFromEnv({ RETRY_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Retry', BUILD_RETRIES: '5' }).policy.maxRetries // 5
 */
export function recoverSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): RecoverSettings {
  const { RETRY_STATE_MACHINE_ARN, BUILD_RETRIES, RETRY_BASE_SECONDS } = parseEnv(RecoverEnvSchema, env);
  return {
    retryStateMachineArn: RETRY_STATE_MACHINE_ARN,
    policy: { ...DEFAULT_RETRY_POLICY, ...(BUILD_RETRIES !== undefined && { maxRetries: BUILD_RETRIES }), ...(RETRY_BASE_SECONDS !== undefined && { baseDelaySeconds: RETRY_BASE_SECONDS }) },
  };
}

export interface ReconcileSettings {
  stateMachineArn: string;
  bucket: string;
  datasetRoots: DatasetRoot[];
  /** Fragments younger than this are left to the build their upload started. */
  settleMinutes: number;
}

export const DEFAULT_RECONCILE_SETTLE_MINUTES = 60;

/**
 * The reconcile function's settings: `STATE_MACHINE_ARN`, `BUCKET_NAME` (the bucket of roots
 * that name none), `DATASET_PREFIXES` (roots and patterns, as the trigger reads them) and
 * `RECONCILE_SETTLE_MINUTES` (default 60). A bad value fails the cold start.
 *
 * @example
 * reconcileSettingsFromEnv({ STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Build', BUCKET_NAME: 'data', DATASET_PREFIXES: 'datasets/*' })
 * // { stateMachineArn: 'arn:…', bucket: 'data', datasetRoots: [{ prefix: 'datasets', wildcard: true }], settleMinutes: 60 }
 */
export function reconcileSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ReconcileSettings {
  const { STATE_MACHINE_ARN, BUCKET_NAME, DATASET_PREFIXES, RECONCILE_SETTLE_MINUTES } = parseEnv(ReconcileEnvSchema, env);
  return {
    stateMachineArn: STATE_MACHINE_ARN,
    bucket: BUCKET_NAME,
    datasetRoots: parseDatasetPrefixes(DATASET_PREFIXES),
    settleMinutes: RECONCILE_SETTLE_MINUTES ?? DEFAULT_RECONCILE_SETTLE_MINUTES,
  };
}
