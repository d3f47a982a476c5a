/**
 * Retry decisions for failed automatic builds (lib/workflow/recovery.ts): which executions are
 * retried, under which names, after how long, and when it stops.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_POLICY, parseAutomaticName, planRetry, retryDelaySeconds, retryName, type RetryPolicy } from '../../lib/workflow/recovery.js';
import { reconcileName } from '../../lib/workflow/reconcile.js';
import { executionName } from '../../lib/workflow/trigger.js';

const DATASET = 's3://bucket/datasets/sales';
const NAME = executionName(DATASET, [{ key: 'datasets/sales/data/a.parquet', version: '01' }]);
const input = JSON.stringify({ dataset: DATASET });
const policy: RetryPolicy = { maxRetries: 3, baseDelaySeconds: 120, factor: 4, maxDelaySeconds: 3600 };

describe('planRetry', () => {
  it.each(['FAILED', 'TIMED_OUT', 'ABORTED'])('retries a %s trigger build under <name>-r1 after the base delay', (status) => {
    expect(planRetry({ name: NAME, status, input }, policy)).toEqual({ action: 'retry', dataset: DATASET, name: `${NAME}-r1`, attempt: 1, waitSeconds: 120 });
  });

  it('counts retries in the name, backs off by the factor, and gives up at the cap', () => {
    expect(planRetry({ name: `${NAME}-r1`, status: 'FAILED', input }, policy)).toMatchObject({ action: 'retry', name: `${NAME}-r2`, attempt: 2, waitSeconds: 480 });
    expect(planRetry({ name: `${NAME}-r2`, status: 'TIMED_OUT', input }, policy)).toMatchObject({ action: 'retry', name: `${NAME}-r3`, attempt: 3, waitSeconds: 1920 });
    expect(planRetry({ name: `${NAME}-r3`, status: 'FAILED', input }, policy)).toMatchObject({ action: 'give-up', dataset: DATASET, attempt: 3, reason: expect.stringMatching(/after 3 retries/) });
    expect(planRetry({ name: NAME, status: 'FAILED', input }, { ...policy, maxRetries: 0 })).toMatchObject({ action: 'give-up', attempt: 0 });
  });

  it('retries reconcile builds the same way', () => {
    const name = reconcileName(DATASET, new Date('2026-11-02T10:00:00Z'));
    expect(planRetry({ name, status: 'FAILED', input }, policy)).toMatchObject({ action: 'retry', name: `${name}-r1` });
  });

  it('leaves alone successes, executions started by hand, and inputs other than {"dataset"}', () => {
    expect(planRetry({ name: NAME, status: 'SUCCEEDED', input }, policy)).toMatchObject({ action: 'ignore', reason: expect.stringMatching(/SUCCEEDED/) });
    expect(planRetry({ name: 'f2b1c1de-5d4e-4c0a-9f1e-1c2b3a4d5e6f', status: 'FAILED', input }, policy)).toMatchObject({ action: 'ignore', reason: expect.stringMatching(/not started by the trigger/) });
    expect(planRetry({ name: 'my-manual-build', status: 'FAILED', input }, policy)).toMatchObject({ action: 'ignore' });
    const withIndexes = JSON.stringify({ dataset: DATASET, indexes: [{ column: 'a', type: 'bitmap' }] });
    expect(planRetry({ name: NAME, status: 'FAILED', input: withIndexes }, policy)).toMatchObject({ action: 'ignore', reason: expect.stringMatching(/not \{"dataset"/) });
    expect(planRetry({ name: NAME, status: 'FAILED', input: null }, policy)).toMatchObject({ action: 'ignore', reason: expect.stringMatching(/no readable input/) });
    expect(planRetry({ name: NAME, status: 'FAILED', input: '{"dataset":"/local/path"}' }, policy)).toMatchObject({ action: 'ignore' });
  });

  it('gives valid execution names for every retry of any trigger name, and never the same name twice', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.integer({ min: 1, max: 10 }), (path, retries) => {
        const first = executionName(`s3://bucket/${path}`, [{ key: 'k', version: 'v' }]);
        const names = [first];
        let name = first;
        for (;;) {
          const d = planRetry({ name, status: 'FAILED', input }, { ...policy, maxRetries: retries });
          if (d.action !== 'retry') {
            expect(d.action).toBe('give-up');
            break;
          }
          expect(d.name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
          names.push((name = d.name));
        }
        expect(names).toHaveLength(retries + 1);
        expect(new Set(names).size).toBe(names.length);
      }),
    );
  });
});

describe('names and delays', () => {
  it('parse automatic names and their retry count', () => {
    expect(parseAutomaticName(NAME)).toEqual({ base: NAME, attempt: 0 });
    expect(parseAutomaticName(`${NAME}-r12`)).toEqual({ base: NAME, attempt: 12 });
    expect(parseAutomaticName(`${NAME}-r0`)).toBeUndefined();
    expect(parseAutomaticName('0123456789abcdef0123456789abcdef')).toBeUndefined();
    expect(() => retryName(NAME, 100)).toThrow(RangeError);
  });

  it('grow by the factor up to the maximum', () => {
    expect([1, 2, 3, 4, 5].map((a) => retryDelaySeconds(a, DEFAULT_RETRY_POLICY))).toEqual([120, 480, 1920, 3600, 3600]);
  });
});
