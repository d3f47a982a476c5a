/**
 * The S3-event trigger function end to end: an SQS batch of S3 notifications in, StartExecution
 * calls to a fake Step Functions endpoint (the real SDK client, pointed there by
 * AWS_ENDPOINT_URL_SFN), an SQS partial batch response out.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { build } from 'esbuild';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startSfnServer, type SfnTestServer } from '../support/sfn-server.js';
import { tempDir } from '../support/tmp.js';
import { captureOutput, emfMetrics, fakeContext, s3Record, setEnv, sqsEvent, type RecordSpec } from './lambda.js';

const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndexBuild';
type TriggerHandler = (event: SQSEvent, context: ReturnType<typeof fakeContext>) => Promise<SQSBatchResponse>;

let sfn: SfnTestServer;
let restoreEnv: () => void;
let output: ReturnType<typeof captureOutput>;

beforeAll(async () => {
  sfn = await startSfnServer();
  restoreEnv = setEnv({ ...sfn.env, STATE_MACHINE_ARN: ARN, DATASET_PREFIXES: undefined });
  output = captureOutput();
});
afterAll(async () => {
  output?.stop();
  restoreEnv?.();
  await sfn?.stop();
});
beforeEach(() => {
  sfn.reset();
  output.lines.length = 0;
});

/** The trigger module as a cold start with these extra settings sees it. */
async function loadTrigger(env: Record<string, string | undefined> = {}): Promise<TriggerHandler> {
  const restore = setEnv(env);
  try {
    vi.resetModules();
    return (await import('../../functions/trigger.js')).handler as TriggerHandler;
  } finally {
    restore();
  }
}

const msg = (messageId: string, ...records: RecordSpec[]) => ({ messageId, body: JSON.stringify({ Records: records.map(s3Record) }) });
const inputs = () => sfn.started.map((c) => JSON.parse(c.input) as unknown).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/** Two datasets, a duplicate delivery, an _index/ write, a text file under data/ and a test event. */
const BATCH = [
  msg('m1', { key: 'datasets/sales/data/part-0001.parquet', sequencer: '0A' }),
  msg('m2', { key: 'datasets/sales/data/part-0001.parquet', sequencer: '0A' }),
  msg('m3', { key: 'datasets/sales/data/part-0002.arrow', sequencer: '0B' }, { key: 'datasets/sales/_index/versions/00000000000000000002.json' }),
  msg('m4', { key: 'datasets/web/data/day=01/clicks 1.arrows', sequencer: '0C' }),
  msg('m5', { key: 'datasets/web/data/readme.txt' }),
  { messageId: 'm6', body: JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'bucket' }) },
];

describe('trigger handler', () => {
  it('starts exactly one execution per dataset with input {"dataset"}, and a replay of the batch starts none', async () => {
    const handler = await loadTrigger();
    expect(await handler(sqsEvent(BATCH), fakeContext('trigger'))).toEqual({ batchItemFailures: [] });
    expect(inputs()).toEqual([{ dataset: 's3://bucket/datasets/sales' }, { dataset: 's3://bucket/datasets/web' }]);
    for (const c of sfn.started) {
      expect(c.stateMachineArn).toBe(ARN);
      expect(c.name).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    }

    // SQS redelivers the batch; S3 repeats an event in a new message; the order changes.
    const replay = [...BATCH, { ...BATCH[0]!, messageId: 'm7' }].reverse();
    expect(await handler(sqsEvent(replay), fakeContext('trigger'))).toEqual({ batchItemFailures: [] });
    expect(sfn.started).toHaveLength(2);
    expect(sfn.calls.filter((c) => c.outcome === 'ExecutionAlreadyExists')).toHaveLength(2);

    // A fragment the first batch did not have is a new build of that dataset.
    await handler(sqsEvent([msg('m8', { key: 'datasets/sales/data/part-0003.parquet', sequencer: '0D' })]), fakeContext('trigger'));
    expect(sfn.started).toHaveLength(3);
    expect(JSON.parse(sfn.started[2]!.input)).toEqual({ dataset: 's3://bucket/datasets/sales' });
  });

  it('reports only the messages behind a failed start as batch item failures, and drops malformed messages with a warning', async () => {
    const handler = await loadTrigger();
    sfn.inject({ times: 1, match: (c) => c.input.includes('datasets/web'), type: 'StateMachineDoesNotExist' });
    const batch = [...BATCH, msg('m9', { key: 'datasets/web/data/late.feather' }), { messageId: 'bad', body: '{"Records": [' }];
    const res = await handler(sqsEvent(batch), fakeContext('trigger'));
    expect(res).toEqual({ batchItemFailures: [{ itemIdentifier: 'm4' }, { itemIdentifier: 'm9' }] });
    expect(inputs()).toEqual([{ dataset: 's3://bucket/datasets/sales' }]);

    expect(output.lines.find((l) => l.message === 'dropping malformed message')).toMatchObject({ level: 'WARN', messageId: 'bad', reason: expect.stringMatching(/not JSON/) });
    expect(output.lines.find((l) => l.message === 'could not start build')).toMatchObject({
      level: 'ERROR',
      dataset: 's3://bucket/datasets/web',
      messageIds: ['m4', 'm9'],
      error: { name: 'StateMachineDoesNotExist' },
    });
    expect(output.lines.find((l) => l.message === 'skipped records')).toMatchObject({ count: 3 });
    const counts = emfMetrics(output.lines).find((m) => m.metrics.includes('BuildsStarted'))!;
    expect(counts.dims).toMatchObject({ step: 'trigger' });
    expect(counts.line).toMatchObject({ BuildsStarted: 1, BuildsAlreadyStarted: 0, BuildStartFailures: 1, RecordsSkipped: 3, MessagesMalformed: 1 });

    // The retried messages start their build once the service accepts it.
    const retried = await handler(sqsEvent(batch.filter((m) => ['m4', 'm9'].includes(m.messageId))), fakeContext('trigger'));
    expect(retried).toEqual({ batchItemFailures: [] });
    expect(inputs()).toEqual([{ dataset: 's3://bucket/datasets/sales' }, { dataset: 's3://bucket/datasets/web' }]);
  });

  it('with DATASET_PREFIXES set, only keys under those dataset roots start builds', async () => {
    const handler = await loadTrigger({ DATASET_PREFIXES: 'datasets/sales' });
    await handler(sqsEvent(BATCH), fakeContext('trigger'));
    expect(inputs()).toEqual([{ dataset: 's3://bucket/datasets/sales' }]);
  });

  it('a missing or malformed STATE_MACHINE_ARN, or a bad DATASET_PREFIXES, fails the cold start naming the variable', async () => {
    for (const [env, name] of [
      [{ STATE_MACHINE_ARN: undefined }, 'STATE_MACHINE_ARN'],
      [{ STATE_MACHINE_ARN: 'ScalarIndexBuild' }, 'STATE_MACHINE_ARN'],
      [{ DATASET_PREFIXES: 'datasets/../etc' }, 'DATASET_PREFIXES'],
    ] as const) {
      const err = await loadTrigger(env).catch((e: unknown) => e);
      expect(err, JSON.stringify(env)).toMatchObject({ name: 'UsageError', message: expect.stringContaining(name) });
    }
  });
});

describe('trigger bundle', () => {
  it('bundles without the S3 SDK, Arrow or parquet-wasm, and the bundle alone starts builds on plain Node', async () => {
    const dir = tempDir('ssi-trigger-bundle-');
    const outfile = path.join(dir, 'index.mjs');
    const result = await build({
      entryPoints: [path.join(import.meta.dirname, '../../functions/trigger.ts')],
      bundle: true,
      platform: 'node',
      target: 'node22',
      format: 'esm',
      outfile,
      metafile: true,
      logLevel: 'silent',
      // CommonJS dependencies (the SDK) call require() for Node built-ins.
      banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    });
    const heavy = Object.keys(result.metafile.inputs).filter((f) => /node_modules\/(parquet-wasm|apache-arrow|hyparquet|@aws-sdk\/client-s3|@aws-sdk\/lib-storage)\//.test(f));
    expect(heavy).toEqual([]);

    const script = `
      const { handler } = await import(${JSON.stringify(outfile)});
      const context = { functionName: 'trigger', awsRequestId: 'r1', memoryLimitInMB: '256', invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:trigger', getRemainingTimeInMillis: () => 60000 };
      const res = await handler(JSON.parse(process.env.EVENT), context);
      process.stdout.write('RESULT ' + JSON.stringify(res) + '\\n');`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, ...sfn.env, STATE_MACHINE_ARN: ARN, EVENT: JSON.stringify(sqsEvent(BATCH)) },
    });
    expect(stdout.split('\n').find((l) => l.startsWith('RESULT '))).toBe('RESULT {"batchItemFailures":[]}');
    expect(inputs()).toEqual([{ dataset: 's3://bucket/datasets/sales' }, { dataset: 's3://bucket/datasets/web' }]);
  });
});
