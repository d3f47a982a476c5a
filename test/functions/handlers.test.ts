/**
 * The three workflow Lambda handlers, run end to end against a real S3 server the way the state
 * machine runs them: Plan, then BuildPart once per item of the list Plan wrote to S3 (the
 * Distributed Map's ItemReader), then MergeAndCommit with `{dataset, buildId}`. The resulting
 * index must answer like a brute-force scan; errors must keep the names Retry/Catch match.
 */
import type { CommitOutput } from '../../lib/workflow/types.js';
import type { Context } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FragmentReadError, StorePermanentError, UsageError } from '../../lib/errors.js';
import { DEFAULT_RETRY_POLICY } from '../../lib/workflow/recovery.js';
import { query } from '../../lib/query/evaluate.js';
import { parsePredicate } from '../../lib/query/parser.js';
import { printPredicate } from '../../lib/query/print.js';
import { S3Store } from '../../lib/store/s3.js';
import { loadLatestManifest } from '../../lib/manifest/manifest.js';
import { build } from '../../lib/workflow/build.js';
import { handler as buildPart } from '../../functions/build-part.js';
import { handler as merge } from '../../functions/merge.js';
import { handler as plan } from '../../functions/plan.js';
import { reconcileSettingsFromEnv, recoverSettingsFromEnv, stepSettingsFromEnv, summarize } from '../../functions/shared.js';
import { extension, fragmentBytes, type GeneratedDataset } from '../support/dataset.js';
import { evaluateOracle } from '../support/oracle.js';
import { predicateArb } from '../support/predicates.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { expandRanges } from '../support/tmp.js';
import { captureOutput, emfMetrics, fakeContext, setEnv } from './lambda.js';

const BUCKET = 'bucket';
let server: S3TestServer;
let restoreEnv: () => void;
let quiet: ReturnType<typeof captureOutput>;

beforeAll(async () => {
  server = await startS3Server({ buckets: [BUCKET] });
  restoreEnv = setEnv(server.env);
  quiet = captureOutput();
});
afterAll(async () => {
  quiet?.stop();
  restoreEnv?.();
  await server?.stop();
});

const REGIONS = ['EU', 'US', 'APAC', 'é🌍', null];

/** Fragments of (region utf8, price float64, qty int64) with nulls, NaN and -0, in all four formats. */
function salesDataset(fragments: number): GeneratedDataset {
  const formats = ['parquet', 'file', 'stream', 'feather'] as const;
  return {
    columns: [
      { name: 'region', type: 'utf8' },
      { name: 'price', type: 'float64' },
      { name: 'qty', type: 'int64' },
    ],
    fragments: Array.from({ length: fragments }, (_, f) => {
      const n = f === 2 ? 0 : 30 + f * 9;
      const format = formats[f % formats.length]!;
      return {
        name: `part-${String(f).padStart(4, '0')}${extension(format)}`,
        format,
        batchRows: 16,
        rows: {
          region: Array.from({ length: n }, (_, i) => REGIONS[(i * 7 + f) % REGIONS.length]),
          price: Array.from({ length: n }, (_, i) => (i % 11 === 0 ? null : i % 13 === 0 ? Number.NaN : i % 17 === 0 ? -0 : ((i * 37 + f * 101) % 500) - 100)),
          qty: Array.from({ length: n }, (_, i) => (i % 9 === 4 ? null : BigInt((i * 5 + f) % 12) - 3n)),
        },
      };
    }),
  };
}

async function putFragments(prefix: string, ds: GeneratedDataset, from = 0, to = ds.fragments.length): Promise<void> {
  const store = new S3Store({ bucket: BUCKET, prefix });
  for (const f of ds.fragments.slice(from, to)) {
    await store.put(`data/${f.name}`, fragmentBytes(ds.columns, f.rows, { batchRows: f.batchRows, format: f.format }));
  }
}

/** What the state machine does with the three functions. */
async function runWorkflow(input: unknown) {
  const planned = await plan(input, fakeContext('plan'));
  if (!planned.hasWork) return { planned };
  expect(planned.items).not.toBeNull();
  const items = JSON.parse(new TextDecoder().decode(await new S3Store({ bucket: planned.items!.bucket, prefix: '' }).read(planned.items!.key))) as unknown[];
  expect(items).toHaveLength(planned.groupCount);
  for (const item of items) await buildPart(item, fakeContext('build-part'));
  const committed = (await merge({ dataset: planned.dataset, buildId: planned.buildId }, fakeContext('merge'))) as CommitOutput;
  return { planned, items, committed };
}

function answerByFragment(ds: GeneratedDataset, r: Awaited<ReturnType<typeof query>>): number[][] {
  const out: number[][] = ds.fragments.map(() => []);
  for (const f of r.fragments) out[f.id] = expandRanges(f.ranges);
  return out;
}

describe('plan → build-part → merge handlers on an S3 dataset', () => {
  it('build an index that answers like a brute-force scan, then update it incrementally from {"dataset"} alone', async () => {
    const ds = salesDataset(6);
    const dataset = `s3://${BUCKET}/datasets/e2e`;
    await putFragments('datasets/e2e', ds, 0, 4);
    const first = await runWorkflow({
      dataset,
      indexes: [
        { column: 'region', type: 'bitmap' },
        { column: 'price', type: 'bitmap' },
        { column: 'price', type: 'zonemap', rowsPerZone: 8 },
        { column: 'qty', type: 'bitmap' },
      ],
      groupRows: 50,
    });
    expect(first.planned).toMatchObject({ dataset, hasWork: true, fragmentsAdded: 4, maxConcurrency: 40, items: { bucket: BUCKET } });
    expect(first.planned.groupCount).toBeGreaterThan(1);
    expect(first.committed).toMatchObject({ committed: true, fragmentsAdded: 4 });

    // New fragments arrive; the S3 trigger's input names only the dataset.
    await putFragments('datasets/e2e', ds, 4);
    const second = await runWorkflow({ dataset, groupRows: 50 });
    expect(second.planned).toMatchObject({ hasWork: true, fragmentsAdded: 2 });
    expect(second.committed!.indexes.map((i) => [i.name, i.fragmentsCovered])).toEqual([
      ['region_bitmap', 6],
      ['price_bitmap', 6],
      ['price_zonemap', 6],
      ['qty_bitmap', 6],
    ]);

    // Nothing new: the plan says so and the workflow skips to the end.
    const third = await runWorkflow({ dataset });
    expect(third.planned).toMatchObject({ hasWork: false, groupCount: 0, fragmentsAdded: 0 });

    const written = [
      "region = 'é🌍'",
      "region IN ('EU', 'US') AND price > 200",
      'price IS NULL OR region IS NULL',
      'price = NaN',
      'NOT (price BETWEEN 0 AND 100)',
      'price = 0 AND qty >= 2',
      "region != 'APAC' OR qty IN (-3, 8)",
    ].map(parsePredicate);
    const random = fc.sample(predicateArb(ds), { numRuns: 25, seed: 4242 });
    for (const p of [...written, ...random]) {
      const text = printPredicate(p);
      const expected = evaluateOracle(ds, p);
      const exact = await query(dataset, p, { use: ['bitmap'] });
      expect(exact.exact, text).toBe(true);
      expect(exact.unindexedFragments).toEqual([]);
      expect(answerByFragment(ds, exact), text).toEqual(expected);
      if (!text.includes('qty') && !text.includes('region')) {
        const zones = answerByFragment(ds, await query(dataset, p, { use: ['zonemap'] }));
        expected.forEach((rows, f) => rows.forEach((r) => expect(zones[f], `${text}: zone map dropped fragment ${f} row ${r}`).toContain(r)));
      }
    }
  });
});

describe('handler errors keep their names for Step Functions Retry/Catch', () => {
  it('a corrupt fragment fails the plan with FragmentReadError, the very error lib/ threw', async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/corrupt' });
    await store.put('data/bad.arrow', new TextEncoder().encode('ARROW1 but not really'));
    const err = await plan({ dataset: `s3://${BUCKET}/datasets/corrupt` }, fakeContext('plan')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FragmentReadError);
    expect((err as Error).name).toBe('FragmentReadError');
    expect((err as Error).message).toMatch(/bad\.arrow/);
  });

  it('a missing bucket fails with StorePermanentError, which the workflow does not retry', async () => {
    const err = await plan({ dataset: 's3://no-such-bucket-here/x' }, fakeContext('plan')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorePermanentError);
    expect((err as Error).name).toBe('StorePermanentError');
  });

  it('invalid input is a UsageError naming the step and the field', async () => {
    const cases: [(event: unknown, context: Context) => Promise<unknown>, unknown, RegExp][] = [
      [plan, {}, /invalid workflow input: dataset/],
      [plan, { dataset: 's3://bucket/x', indexes: [{ column: 'a', type: 'btree' }] }, /invalid workflow input: indexes\.0\.type/],
      [plan, { dataset: 's3://bucket/x', groupRows: 0 }, /invalid workflow input: groupRows/],
      [buildPart, { dataset: 's3://bucket/x', buildId: 'b1', groupId: -1 }, /invalid build-part input: groupId/],
      [buildPart, { dataset: 's3://bucket/x', groupId: 0 }, /invalid build-part input: buildId/],
      [merge, { dataset: 's3://bucket/x' }, /invalid merge input: buildId/],
      [merge, 'not an object', /invalid merge input: \(input\)/],
    ];
    for (const [handler, input, message] of cases) {
      const err = await handler(input, fakeContext('h')).catch((e: unknown) => e);
      expect(err, JSON.stringify(input)).toBeInstanceOf(UsageError);
      expect((err as Error).name).toBe('UsageError');
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('logging and metrics', () => {
  it('log a summary of the event and result, and emit StepDuration (and StepErrors on failure) in the ScalarIndex namespace', async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/metrics' });
    await store.put('data/a.arrow', fragmentBytes([{ name: 'k', type: 'int32' }], { k: [1, 2, 3] }, { batchRows: 8, format: 'file' }));
    // Fresh modules, in an environment Lambda initialised on demand: the first call is a cold start.
    const restore = setEnv({ AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand' });
    vi.resetModules();
    const freshPlan = (await import('../../functions/plan.js')).handler;
    const freshMerge = (await import('../../functions/merge.js')).handler;
    restore();
    quiet.stop();
    const out = captureOutput();
    try {
      await freshPlan({ dataset: 's3://bucket/datasets/metrics', indexes: Array.from({ length: 3 }, () => ({ column: 'k', type: 'bitmap' })) }, fakeContext('plan-fn'));
      await freshPlan({ dataset: 's3://bucket/datasets/metrics' }, fakeContext('plan-fn'));
      await freshMerge({ dataset: 's3://bucket/datasets/metrics' }, fakeContext('merge-fn')).catch(() => undefined);
    } finally {
      out.stop();
      quiet = captureOutput();
    }
    const start = out.lines.find((l) => l.message === 'plan start')!;
    expect(start).toMatchObject({ level: 'INFO', step: 'plan', function_name: 'plan-fn', service: 'scalar-index', cold_start: true });
    // A summary: the index list is its length, not the payload.
    expect(start.event).toEqual({ dataset: 's3://bucket/datasets/metrics', indexes: 3 });
    expect(out.lines.find((l) => l.message === 'plan done')).toMatchObject({ result: { hasWork: true, groupCount: 1, items: '{2 keys}' } });
    const failed = out.lines.find((l) => l.message === 'merge failed')!;
    expect(failed).toMatchObject({ level: 'ERROR', step: 'merge', error: { name: 'UsageError' } });

    const metrics = emfMetrics(out.lines);
    const planMetrics = metrics.find((m) => m.dims.step === 'plan' && m.metrics.includes('StepDuration'))!;
    expect(planMetrics).toMatchObject({ namespace: 'ScalarIndex', dims: { service: 'scalar-index', step: 'plan' } });
    expect(planMetrics.line.StepDuration).toBeGreaterThan(0);
    const mergeMetrics = metrics.find((m) => m.dims.step === 'merge' && m.metrics.includes('StepErrors'))!;
    expect(mergeMetrics.metrics).toContain('StepDuration');
    // One cold start per function, on its first call only.
    expect(metrics.filter((m) => m.metrics.includes('ColdStart')).map((m) => m.dims.function_name)).toEqual(['plan-fn', 'merge-fn']);
    expect(out.lines.filter((l) => l.message === 'plan start').map((l) => l.cold_start)).toEqual([true, false]);
  });

  it('a failed compaction emits CompactionsFailed (the state machine catches the error, so the alarm watches this metric)', async () => {
    // Two appends, two segments; then one segment's file goes missing.
    const dataset = `s3://${BUCKET}/datasets/compaction-fails`;
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/compaction-fails' });
    for (const f of [0, 1]) {
      await store.put(`data/f${f}.arrow`, fragmentBytes([{ name: 'k', type: 'int32' }], { k: [f, 2, 3] }, { batchRows: 8, format: 'file' }));
      await build({ dataset, ...(f === 0 && { indexes: [{ column: 'k', type: 'bitmap' }] }), compact: false });
    }
    const [ix] = (await loadLatestManifest(store)).indexes;
    expect(ix!.segments).toHaveLength(2);
    await store.deleteMany([ix!.segments[1]!.files[0]!.key]);
    quiet.stop();
    const out = captureOutput();
    let err: unknown;
    try {
      err = await merge({ dataset, task: { index: ix!.name, inputs: ix!.segments.map((s) => s.id) } }, fakeContext('merge-fn')).catch((e: unknown) => e);
    } finally {
      out.stop();
      quiet = captureOutput();
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(ix!.segments[1]!.files[0]!.key);
    const failed = emfMetrics(out.lines).filter((m) => m.metrics.includes('CompactionsFailed'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ namespace: 'ScalarIndex', dims: { service: 'scalar-index', step: 'merge' } });
    expect(failed[0]!.line.CompactionsFailed).toBe(1);
    expect(emfMetrics(out.lines).some((m) => m.metrics.includes('CompactionsCommitted'))).toBe(false);
  });

  it('summaries keep scalars, cut long strings and reduce arrays and objects to sizes', () => {
    expect(summarize({ a: 'x'.repeat(500), n: 1, b: true, z: null, list: [1, 2], o: { p: 1 }, f: () => 1 })).toEqual({
      a: `${'x'.repeat(200)}…`,
      n: 1,
      b: true,
      z: null,
      list: 2,
      o: '{1 keys}',
    });
    expect(summarize([1, 2, 3])).toEqual({ length: 3 });
    expect(summarize(undefined)).toBeUndefined();
  });
});

describe('settings from the environment', () => {
  it('GROUP_ROWS and MAX_CONCURRENCY are read once at cold start and reach the plan', async () => {
    const ds = salesDataset(3);
    await putFragments('datasets/env', ds);
    const restore = setEnv({ GROUP_ROWS: '1', MAX_CONCURRENCY: '7' });
    try {
      vi.resetModules();
      const fresh = (await import('../../functions/plan.js')).handler;
      const out = await fresh({ dataset: `s3://${BUCKET}/datasets/env`, indexes: [{ column: 'qty', type: 'bitmap' }] }, fakeContext('plan'));
      // One group per fragment, and the Map concurrency.
      expect(out).toMatchObject({ groupCount: 3, maxConcurrency: 7 });
    } finally {
      restore();
    }
  });

  it('a bad GROUP_ROWS or MAX_CONCURRENCY fails the cold start with a UsageError naming the variable', async () => {
    for (const [name, value] of [
      ['GROUP_ROWS', '0'],
      ['GROUP_ROWS', 'lots'],
      ['GROUP_ROWS', '1e6'],
      ['MAX_CONCURRENCY', '10001'],
      ['MAX_CONCURRENCY', '-1'],
    ] as const) {
      const restore = setEnv({ [name]: value });
      try {
        vi.resetModules();
        const err = await import('../../functions/build-part.js').catch((e: unknown) => e);
        expect(err, `${name}=${value}`).toMatchObject({ name: 'UsageError', message: expect.stringContaining(`${name}="${value}"`) });
      } finally {
        restore();
      }
    }
    expect(stepSettingsFromEnv({})).toEqual({});
    expect(stepSettingsFromEnv({ GROUP_ROWS: ' 1000 ', MAX_CONCURRENCY: '' })).toEqual({ groupRows: 1000 });
  });

  it('the recover and reconcile settings: defaults, and a bad value fails the cold start naming the variable', () => {
    const retryArn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:ScalarIndex-RetryBuild';
    const buildArn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:ScalarIndex-BuildIndex';
    expect(recoverSettingsFromEnv({ RETRY_STATE_MACHINE_ARN: retryArn })).toEqual({ retryStateMachineArn: retryArn, policy: DEFAULT_RETRY_POLICY });
    expect(recoverSettingsFromEnv({ RETRY_STATE_MACHINE_ARN: retryArn, BUILD_RETRIES: '0', RETRY_BASE_SECONDS: '5' }).policy).toMatchObject({ maxRetries: 0, baseDelaySeconds: 5 });
    expect(reconcileSettingsFromEnv({ STATE_MACHINE_ARN: buildArn, BUCKET_NAME: 'data', DATASET_PREFIXES: 'datasets/*,logs/web' })).toEqual({
      stateMachineArn: buildArn,
      bucket: 'data',
      datasetRoots: [{ prefix: 'datasets', wildcard: true }, { prefix: 'logs/web' }],
      settleMinutes: 60,
    });
    const bad: [() => unknown, RegExp][] = [
      [() => recoverSettingsFromEnv({}), /RETRY_STATE_MACHINE_ARN is not set/],
      [() => recoverSettingsFromEnv({ RETRY_STATE_MACHINE_ARN: retryArn, BUILD_RETRIES: '100' }), /BUILD_RETRIES="100"/],
      [() => recoverSettingsFromEnv({ RETRY_STATE_MACHINE_ARN: 'arn:aws:lambda:x' }), /RETRY_STATE_MACHINE_ARN is not a state machine ARN/],
      [() => reconcileSettingsFromEnv({ STATE_MACHINE_ARN: buildArn, BUCKET_NAME: 'data', DATASET_PREFIXES: '' }), /DATASET_PREFIXES is empty/],
      [() => reconcileSettingsFromEnv({ STATE_MACHINE_ARN: buildArn, BUCKET_NAME: 'Data_Bucket', DATASET_PREFIXES: 'a' }), /BUCKET_NAME is not an S3 bucket name/],
      [() => reconcileSettingsFromEnv({ STATE_MACHINE_ARN: buildArn, BUCKET_NAME: 'data', DATASET_PREFIXES: 'a/*/b' }), /DATASET_PREFIXES entry "a\/\*\/b"/],
      [() => reconcileSettingsFromEnv({ STATE_MACHINE_ARN: buildArn, BUCKET_NAME: 'data', DATASET_PREFIXES: 'a', RECONCILE_SETTLE_MINUTES: 'soon' }), /RECONCILE_SETTLE_MINUTES="soon"/],
    ];
    for (const [fn, message] of bad) {
      expect(fn).toThrow(UsageError);
      expect(fn).toThrow(message);
    }
  });

  it('recover ignores an event that is not an execution status change, without starting anything', async () => {
    const restore = setEnv({ RETRY_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:Retry', AWS_ENDPOINT_URL_SFN: 'http://127.0.0.1:9' });
    try {
      vi.resetModules();
      const recover = (await import('../../functions/recover.js')).handler;
      expect(await recover({ source: 'aws.events', detail: {} } as never, fakeContext('recover'))).toMatchObject({ action: 'ignore', reason: expect.stringMatching(/not an execution status change/) });
    } finally {
      restore();
    }
  });
});
