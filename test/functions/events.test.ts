/**
 * The sample events in events/ are what people copy into the console and the CLI, so each one
 * is run here through the function it is for, against a real S3 server and a fake Step
 * Functions endpoint. The console input builds the indexes. The S3 put goes through the
 * trigger, whose execution input is plan.json. build-part.json and merge.json then finish that
 * build.
 */
import type { CommitOutput } from '../../lib/workflow/types.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { handler as buildPart } from '../../functions/build-part.js';
import { handler as merge } from '../../functions/merge.js';
import { handler as plan } from '../../functions/plan.js';
import { listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { MergeStepInputSchema, WorkflowInputSchema, type PlanStepOutput } from '../../lib/workflow/steps.js';
import { reconcileName } from '../../lib/workflow/reconcile.js';
import { planTriggeredBuilds } from '../../lib/workflow/trigger.js';
import { BuildPartInputSchema } from '../../lib/workflow/types.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { startSfnServer, type SfnTestServer } from '../support/sfn-server.js';
import { captureOutput, fakeContext, setEnv, sqsEvent } from './lambda.js';

const EVENTS = path.join(import.meta.dirname, '../../events');
const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndexBuild';
const RETRY_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndexRetryBuild';
const SALES = 's3://bucket/datasets/sales';

const used = new Set<string>();
/** Read a sample event, and note that a test ran it. */
function sample<T = unknown>(name: string): T {
  used.add(name);
  return JSON.parse(fs.readFileSync(path.join(EVENTS, name), 'utf8')) as T;
}

let s3: S3TestServer;
let sfn: SfnTestServer;
let restoreEnv: () => void;
let output: ReturnType<typeof captureOutput>;
let trigger: (event: SQSEvent, context: ReturnType<typeof fakeContext>) => Promise<SQSBatchResponse>;

beforeAll(async () => {
  [s3, sfn] = await Promise.all([startS3Server({ buckets: ['bucket'] }), startSfnServer()]);
  // One set of credentials for both: the fake Step Functions ignores them, s3rver does not.
  restoreEnv = setEnv({ ...s3.env, AWS_ENDPOINT_URL_SFN: sfn.endpoint, STATE_MACHINE_ARN: ARN, DATASET_PREFIXES: undefined });
  vi.resetModules();
  trigger = (await import('../../functions/trigger.js')).handler;
  output = captureOutput();
});
afterAll(async () => {
  output?.stop();
  restoreEnv?.();
  await Promise.all([s3?.stop(), sfn?.stop()]);
});

const COLUMNS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'price', type: 'float64' },
];
const REGIONS = ['EU', 'US', 'APAC', null];
async function putFragment(key: string, seed: number, format: 'parquet' | 'file') {
  const n = 40 + seed;
  const rows = {
    region: Array.from({ length: n }, (_, i) => REGIONS[(i + seed) % REGIONS.length]),
    price: Array.from({ length: n }, (_, i) => (i % 7 === 0 ? null : (i * 13 + seed) % 100)),
  };
  await new S3Store({ bucket: 'bucket', prefix: 'datasets/sales' }).put(key, fragmentBytes(COLUMNS, rows, { batchRows: 16, format }));
}

/** BuildPart for every item of the plan's list in S3, as the Distributed Map would. */
async function buildAllParts(planned: PlanStepOutput, itemTemplate: Record<string, unknown>) {
  const items = JSON.parse(new TextDecoder().decode(await new S3Store({ bucket: planned.items!.bucket, prefix: '' }).read(planned.items!.key))) as { groupId: number }[];
  expect(items.map((i) => Object.keys(i).sort())).toEqual(items.map(() => Object.keys(itemTemplate).sort()));
  for (const item of items) await buildPart({ ...itemTemplate, ...item }, fakeContext('build-part'));
  return items;
}

describe('sample events', () => {
  it('state-machine-input.json (the console input) builds the indexes it names through plan → build-part → merge', async () => {
    const input = sample('state-machine-input.json');
    expect(WorkflowInputSchema.parse(input)).toEqual(input);
    await putFragment('data/part-0000.parquet', 0, 'parquet');
    const planned = await plan(input, fakeContext('plan'));
    expect(planned).toMatchObject({ dataset: SALES, hasWork: true, fragmentsAdded: 1 });
    await buildAllParts(planned, { dataset: SALES, buildId: planned.buildId, groupId: 0 });
    const committed = (await merge({ dataset: planned.dataset, buildId: planned.buildId }, fakeContext('merge'))) as CommitOutput;
    expect(committed.indexes.map((i) => i.name)).toEqual(['region_bitmap', 'price_zonemap']);
  });

  it('s3-put.json, queued, makes the trigger start one build whose input is plan.json; build-part.json and merge.json finish it', async () => {
    await putFragment('data/part-0001.parquet', 1, 'parquet'); // the object the event announces
    const put = sample<{ Records: { s3: { object: { key: string } } }[] }>('s3-put.json');
    expect(put.Records[0]!.s3.object.key).toBe('datasets/sales/data/part-0001.parquet');
    const res = await trigger(sqsEvent([{ messageId: 'put-1', body: JSON.stringify(put) }]), fakeContext('trigger'));
    expect(res).toEqual({ batchItemFailures: [] });
    expect(sfn.started).toHaveLength(1);
    const executionInput = JSON.parse(sfn.started[0]!.input) as unknown;
    expect(executionInput).toEqual(sample('plan.json'));

    // The execution the trigger started: plan from {dataset} alone updates the defined indexes.
    const planned = await plan(sample('plan.json'), fakeContext('plan'));
    expect(planned).toMatchObject({ dataset: SALES, hasWork: true, fragmentsAdded: 1, groupCount: 1 });

    const partSample = sample<Record<string, unknown>>('build-part.json');
    expect(BuildPartInputSchema.parse(partSample)).toEqual(partSample);
    expect(partSample.buildId).toMatch(/^b\d{8}T\d{6}Z-[0-9a-f]{8}$/); // shaped like a real build id
    expect(partSample.dataset).toBe(SALES);
    const items = await buildAllParts(planned, { ...partSample, buildId: planned.buildId });
    expect(items.map((i) => i.groupId)).toContain(partSample.groupId);

    const mergeSample = sample<Record<string, unknown>>('merge.json');
    expect(MergeStepInputSchema.parse(mergeSample)).toEqual(mergeSample);
    expect(mergeSample.buildId).toBe(partSample.buildId);
    const committed = (await merge({ ...mergeSample, buildId: planned.buildId }, fakeContext('merge'))) as CommitOutput;
    expect(committed).toMatchObject({ committed: true, fragmentsAdded: 1 });
    expect(committed.indexes.map((i) => [i.name, i.fragmentsCovered])).toEqual([
      ['region_bitmap', 2],
      ['price_zonemap', 2],
    ]);
    const r = await query(SALES, "region = 'EU'");
    expect(r.exact).toBe(true);
    expect(r.fragments.map((f) => f.path)).toEqual(['data/part-0000.parquet', 'data/part-0001.parquet']);

    // The same put delivered again starts nothing.
    await trigger(sqsEvent([{ messageId: 'put-2', body: JSON.stringify(put) }]), fakeContext('trigger'));
    expect(sfn.started).toHaveLength(1);
  });

  it('sqs-s3-batch.json starts one build for datasets/sales and one for datasets/web, and nothing when replayed', async () => {
    sfn.reset();
    const batch = sample<SQSEvent>('sqs-s3-batch.json');
    const planned = planTriggeredBuilds(batch.Records);
    expect(planned.malformed).toEqual([]);
    expect(planned.builds.map((b) => [b.dataset, b.messageIds, b.fragments.map((f) => f.key)])).toEqual([
      [SALES, ['m-0001', 'm-0002', 'm-0003'], ['datasets/sales/data/part-0001.parquet', 'datasets/sales/data/part-0002.arrow']],
      ['s3://bucket/datasets/web', ['m-0004'], ['datasets/web/data/2026/day=01/clicks 0001.arrows']],
    ]);
    expect(planned.skipped.map((s) => s.messageId)).toEqual(['m-0005', 'm-0006', 'm-0007', 'm-0008']);

    expect(await trigger(batch, fakeContext('trigger'))).toEqual({ batchItemFailures: [] });
    expect(sfn.started.map((c) => JSON.parse(c.input))).toEqual([{ dataset: SALES }, { dataset: 's3://bucket/datasets/web' }]);
    expect(sfn.started.map((c) => c.name)).toEqual(planned.builds.map((b) => b.name));
    expect(await trigger(batch, fakeContext('trigger'))).toEqual({ batchItemFailures: [] });
    expect(sfn.started).toHaveLength(2);
  });

  it('vacuum.json makes the vacuum function list what it would delete and delete nothing', async () => {
    const input = sample<Record<string, unknown>>('vacuum.json');
    expect(input).toEqual({ dataset: SALES, dryRun: true });
    const { handler: vacuum } = await import('../../functions/vacuum.js');
    const store = new S3Store({ bucket: 'bucket', prefix: 'datasets/sales' });
    const versions = await listVersions(store);
    expect(versions.length).toBeGreaterThan(1);
    const r = await vacuum({ ...input, olderThan: '0s', keepVersions: 1 }, fakeContext('vacuum'));
    expect(r).toEqual({ datasets: [expect.objectContaining({ dataset: SALES, dryRun: true })] });
    expect(await listVersions(store)).toEqual(versions);
  });

  it('execution-failed.json makes the recover function schedule <name>-r1 on the retry state machine', async () => {
    sfn.reset();
    const event = sample<{ detail: { name: string; input: string } }>('execution-failed.json');
    const restore = setEnv({ RETRY_STATE_MACHINE_ARN: RETRY_ARN, BUILD_RETRIES: '3' });
    let recover;
    try {
      vi.resetModules();
      recover = (await import('../../functions/recover.js')).handler;
    } finally {
      restore();
    }
    const r = await recover(event as never, fakeContext('recover'));
    expect(r).toMatchObject({ action: 'retry', name: `${event.detail.name}-r1`, waitSeconds: 120, started: true });
    expect(sfn.started.map((c) => [c.stateMachineArn, c.name, JSON.parse(c.input)])).toEqual([[RETRY_ARN, `${event.detail.name}-r1`, { dataset: SALES, name: `${event.detail.name}-r1`, waitSeconds: 120 }]]);
  });

  it('reconcile.json makes the reconcile function start a build for a dataset with an unregistered fragment, named by the event time', async () => {
    sfn.reset();
    const event = sample<{ time: string }>('reconcile.json');
    await putFragment('data/part-0009.parquet', 9, 'parquet'); // never announced by an event
    const restore = setEnv({ STATE_MACHINE_ARN: ARN, BUCKET_NAME: 'bucket', DATASET_PREFIXES: 'datasets/*', RECONCILE_SETTLE_MINUTES: '0' });
    let reconcile;
    try {
      vi.resetModules();
      reconcile = (await import('../../functions/reconcile.js')).handler;
    } finally {
      restore();
    }
    // The sample as it is, with a current time (README: "put a recent time in it"): the
    // fragment above was written after the sample's fixed time.
    const time = new Date(Date.now() + 1000).toISOString();
    const r = await reconcile({ ...event, time } as never, fakeContext('reconcile'));
    expect(r).toMatchObject({ started: [SALES], errors: 0 });
    expect(sfn.started.map((c) => [c.name, JSON.parse(c.input)])).toEqual([[reconcileName(SALES, new Date(time)), { dataset: SALES }]]);
  });

  it('every file in events/ is run by a test above, and events/README.md describes each one', () => {
    const files = fs.readdirSync(EVENTS).filter((f) => f !== 'README.md');
    expect(files.sort()).toEqual([...used].sort());
    const readme = fs.readFileSync(path.join(EVENTS, 'README.md'), 'utf8');
    for (const f of files) expect(readme, f).toMatch(new RegExp(`^- \`${f.replace('.', '\\.')}\`: `, 'm'));
  });
});
