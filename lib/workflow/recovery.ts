/**
 * Recovery of failed automatic builds, as pure decisions: when an execution the trigger or the
 * reconcile started ends FAILED, TIMED_OUT or ABORTED, start the same build again under a new
 * name (`<name>-r1`, `-r2`, …), after a back-off, up to a cap.
 *
 * - A new name is needed: execution names are idempotency keys, so the failed name can never
 *   run again. The retry is a fresh build of the dataset (input `{"dataset"}`), which picks up
 *   every unindexed fragment, not only the ones that woke the first attempt.
 * - Only automatic builds are retried: their names end in 32 hex digits (trigger.ts), and
 *   their input is `{"dataset"}` alone. Executions started by hand are left to whoever
 *   started them.
 * - The attempt number lives in the name, so the decision needs no state of its own, and a
 *   redelivered status-change event asks for the same retry name (started once).
 * - Whatever the cap leaves behind, the periodic reconcile (reconcile.ts) finds later.
 */
import { z } from 'zod';

/** Execution statuses that ask for a retry (EventBridge "Step Functions Execution Status Change"). */
export const RETRIED_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

export interface RetryPolicy {
  /** Retries after the first attempt; 0 turns retrying off. */
  maxRetries: number;
  /** Wait before the first retry. */
  baseDelaySeconds: number;
  /** Each later retry waits this many times longer… */
  factor: number;
  /** …up to this. */
  maxDelaySeconds: number;
}

/** 2 min, 8 min, 32 min: a throttling storm or a deploy in progress has time to pass. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 3, baseDelaySeconds: 120, factor: 4, maxDelaySeconds: 3600 };

/** The highest retry count a name can carry (trigger.ts keeps room for `-r99`). */
export const MAX_RETRIES = 99;

/** The part of an execution status change this module reads (the event's `detail`). */
export interface ExecutionStatusChange {
  name: string;
  status: string;
  /** The execution input as JSON text; EventBridge leaves it out when it is too large. */
  input?: string | null;
  executionArn?: string;
}

export type RetryDecision =
  | { action: 'retry'; dataset: string; name: string; attempt: number; waitSeconds: number }
  | { action: 'give-up'; dataset: string; attempt: number; reason: string }
  | { action: 'ignore'; reason: string };

const AUTOMATIC_NAME = /^(.+-[0-9a-f]{32})(?:-r([1-9][0-9]?))?$/;

/**
 * Split an automatic execution name into its first name and retry count (0 for the first
 * attempt), or undefined for a name the trigger and reconcile never give.
 *
 * @example
 * parseAutomaticName('bucket-datasets-sales-0123456789abcdef0123456789abcdef-r2') // { base: 'bucket-…cdef', attempt: 2 }
 * parseAutomaticName('7c0a7f1e-2b7b-4d0c-9a55-5b1c3f7c1e2a') // undefined (a console start)
 */
export function parseAutomaticName(name: string): { base: string; attempt: number } | undefined {
  const m = AUTOMATIC_NAME.exec(name);
  return m ? { base: m[1]!, attempt: m[2] ? Number(m[2]) : 0 } : undefined;
}

/**
 * The name of retry `attempt` (1-based) of an automatic build.
 *
 * @example
 * retryName('bucket-datasets-sales-0123456789abcdef0123456789abcdef', 1) // '…cdef-r1'
 */
export function retryName(base: string, attempt: number): string {
  if (!Number.isInteger(attempt) || attempt < 1 || attempt > MAX_RETRIES) throw new RangeError(`retry attempt ${attempt} is outside 1..${MAX_RETRIES}`);
  return `${base}-r${attempt}`;
}

/**
 * Seconds to wait before retry `attempt` (1-based): `base × factor^(attempt-1)`, capped.
 *
 * @example
 * retryDelaySeconds(3, DEFAULT_RETRY_POLICY) // 1920 (32 min)
 */
export function retryDelaySeconds(attempt: number, policy: RetryPolicy): number {
  return Math.min(policy.maxDelaySeconds, Math.round(policy.baseDelaySeconds * policy.factor ** (attempt - 1)));
}

const AutomaticInputSchema = z.object({ dataset: z.string().regex(/^s3:\/\/[^/]+/i) }).strict();

/**
 * Decide what to do about an execution that changed status.
 *
 * @example
 * planRetry({ name: 'b-datasets-sales-0123456789abcdef0123456789abcdef', status: 'FAILED', input: '{"dataset":"s3://b/datasets/sales"}' }, DEFAULT_RETRY_POLICY)
 * // { action: 'retry', dataset: 's3://b/datasets/sales', name: 'b-datasets-sales-…cdef-r1', attempt: 1, waitSeconds: 120 }
 */
export function planRetry(change: ExecutionStatusChange, policy: RetryPolicy): RetryDecision {
  if (!(RETRIED_STATUSES as readonly string[]).includes(change.status)) return { action: 'ignore', reason: `status ${change.status} needs no retry` };
  const parsed = parseAutomaticName(change.name);
  if (!parsed) return { action: 'ignore', reason: `execution ${change.name} was not started by the trigger or the reconcile` };
  let input: unknown;
  try {
    input = JSON.parse(change.input ?? '');
  } catch {
    return { action: 'ignore', reason: `execution ${change.name}: the event carries no readable input` };
  }
  const checked = AutomaticInputSchema.safeParse(input);
  if (!checked.success) return { action: 'ignore', reason: `execution ${change.name}: input is not {"dataset": "s3://…"} alone, so it was not started automatically` };
  const { dataset } = checked.data;
  const attempt = parsed.attempt + 1;
  if (parsed.attempt >= Math.min(policy.maxRetries, MAX_RETRIES)) {
    return { action: 'give-up', dataset, attempt: parsed.attempt, reason: `${change.name} ended ${change.status} after ${parsed.attempt} retries (the cap is ${policy.maxRetries}); the reconcile will pick its fragments up` };
  }
  return { action: 'retry', dataset, name: retryName(parsed.base, attempt), attempt, waitSeconds: retryDelaySeconds(attempt, policy) };
}
