/**
 * Failed event-started builds recover by themselves, end to end, with everything taken from
 * the synthesized template: the trigger starts a build from S3 events; the deployed build
 * definition runs on the local engine with the real handlers against a real S3 server, with a
 * part failure injected; the execution status change goes through the EventBridge rule's
 * pattern to the real recover handler, which starts the retry state machine; its synthesized
 * definition runs locally (back-off shortened) and starts the build again under `<name>-r1`,
 * which covers the fragments. When every attempt fails, retries stop at the cap, the
 * exhausted-retries metric that an alarm watches is emitted, and the periodic reconcile builds
 * the dataset later. The alarms and the dashboard are in the template.
 */
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { StateMachine } from 'aws-local-stepfunctions';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadLatestManifest } from '../../lib/manifest/manifest.js';
import { S3Store } from '../../lib/store/s3.js';
import { build } from '../../lib/workflow/build.js';
import { runLocalWorkflow } from '../../lib/workflow/local-engine.js';
import { needsBuild, reconcileName } from '../../lib/workflow/reconcile.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, fragmentsOf, indexFiles } from '../support/manifest.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { startSfnServer, type SfnTestServer, type StartExecutionCall } from '../support/sfn-server.js';
import { captureOutput, emfMetrics, fakeContext, s3Record, setEnv, sqsEvent } from '../functions/lambda.js';
import { buildStateMachines, deployedDefinition, flat, resourcesOfType, synthScalarIndexApp, type SynthesizedApp } from './app-fixture.js';

const BUCKET = 'data';
const ACCOUNT = 'arn:aws:states:us-east-1:123456789012';
const BUILD_ARN = `${ACCOUNT}:stateMachine:ScalarIndex-BuildIndex`;
const RETRY_ARN = `${ACCOUNT}:stateMachine:ScalarIndex-RetryBuild`;
const COLS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'qty', type: 'int32' },
];
const rows = (f: number) => ({
  region: Array.from({ length: 50 }, (_, i) => (i % 9 === 0 ? null : ['EU', 'US', 'APAC'][(i + f) % 3]!)),
  qty: Array.from({ length: 50 }, (_, i) => (i * 7 + f) % 13),
});

type Handler = (event: unknown, context: ReturnType<typeof fakeContext>) => Promise<unknown>;
type Json = Record<string, unknown>;

let synth: SynthesizedApp;
let s3: S3TestServer;
let sfn: SfnTestServer;
let restoreEnv: () => void;
let output: ReturnType<typeof captureOutput>;
let handlers: Record<'plan' | 'buildPart' | 'merge' | 'trigger' | 'recover' | 'reconcile', Handler>;
let buildDefinition: Json;
let retryDefinition: Json;
let rulePattern: Json;
/** Which build executions (by name) get a failing part. */
let failing: (name: string) => boolean = () => false;
/** Every execution the fake Step Functions ran, in the order they ended. */
const finished: { machine: 'build' | 'retry'; name: string; status: string; input: Json; error?: string }[] = [];
const running: Promise<void>[] = [];

/** `{ Ref: <logical id> }` and `Fn::GetAtt` resolved to what the test stands in for them. */
function resolve(value: unknown, refs: Record<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(v, refs));
  if (value && typeof value === 'object') {
    const o = value as Json;
    if (typeof o.Ref === 'string') {
      if (!(o.Ref in refs)) throw new Error(`no stand-in for Ref ${o.Ref}`);
      return refs[o.Ref];
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, resolve(v, refs)]));
  }
  return value;
}

/** EventBridge pattern matching for what these patterns use: nested objects and lists of exact values. */
function matches(pattern: unknown, event: unknown): boolean {
  if (Array.isArray(pattern)) return pattern.includes(event);
  if (!pattern || typeof pattern !== 'object' || !event || typeof event !== 'object') return false;
  return Object.entries(pattern).every(([k, p]) => matches(p, (event as Json)[k]));
}

/** The "Step Functions Execution Status Change" event AWS sends when an execution ends. */
function statusChange(call: StartExecutionCall & { executionArn: string }, status: string, error?: string) {
  return {
    version: '0',
    id: `evt-${call.name}`,
    'detail-type': 'Step Functions Execution Status Change',
    source: 'aws.states',
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [call.executionArn],
    detail: { executionArn: call.executionArn, stateMachineArn: call.stateMachineArn, name: call.name, status, startDate: Date.now(), stopDate: Date.now(), input: call.input, output: null, error: error ?? null, cause: null },
  };
}

const sfnClient = () => new SFNClient({ endpoint: sfn.endpoint, region: 'us-east-1', credentials: sfn.credentials });

/** What Step Functions does with a started execution: run it, then tell EventBridge how it ended. */
async function runExecution(call: StartExecutionCall & { executionArn: string }): Promise<void> {
  const input = JSON.parse(call.input) as Json;
  if (call.stateMachineArn === BUILD_ARN) {
    const invoke = (h: Handler, name: string) => (event: unknown) => h(event, fakeContext(name));
    const fail = failing(call.name);
    let status = 'SUCCEEDED';
    let error: string | undefined;
    try {
      await runLocalWorkflow(input as never, {
        definition: buildDefinition,
        overrideStep: {
          Plan: invoke(handlers.plan, 'plan'),
          BuildPart: fail
            ? async () => {
                throw Object.assign(new Error('injected part failure'), { name: 'InjectedPartFailure' });
              }
            : invoke(handlers.buildPart, 'build-part'),
          MergeAndCommit: invoke(handlers.merge, 'merge'),
        },
      });
    } catch (err) {
      status = 'FAILED';
      error = (err as Error).name;
    }
    finished.push({ machine: 'build', name: call.name, status, input, ...(error && { error }) });
    const event = statusChange(call, status, error);
    if (matches(rulePattern, event)) await handlers.recover(event, fakeContext('recover'));
  } else if (call.stateMachineArn === RETRY_ARN) {
    const machine = new StateMachine(retryDefinition as never, { validationOptions: { checkPaths: true, checkArn: false } });
    const execution = machine.run(input as never, {
      overrides: {
        waitTimeOverrides: { RetryBackoff: 0 },
        taskResourceLocalHandlers: {
          // The optimized states:startExecution integration, and its error names.
          StartRetry: async (params: { StateMachineArn: string; Name: string; Input: Json }) => {
            try {
              return await sfnClient().send(new StartExecutionCommand({ stateMachineArn: params.StateMachineArn, name: params.Name, input: JSON.stringify(params.Input) }));
            } catch (err) {
              const name = (err as Error).name === 'ExecutionAlreadyExists' ? 'ExecutionAlreadyExistsException' : (err as Error).name;
              throw Object.assign(new Error((err as Error).message), { name: `StepFunctions.${name}` });
            }
          },
        } as never,
      },
    });
    await execution.result;
    finished.push({ machine: 'retry', name: call.name, status: 'SUCCEEDED', input });
  } else {
    throw new Error(`unexpected state machine ${call.stateMachineArn}`);
  }
}

/** Wait until every execution started so far, and every one they started, has ended. */
async function settle(): Promise<void> {
  while (running.length > 0) await Promise.all(running.splice(0));
}

function functionEnv(name: string, refs: Record<string, string>): Record<string, string> {
  const [[, fn]] = resourcesOfType(synth.json, 'AWS::Lambda::Function').filter(([id]) => new RegExp(`^${name}[0-9A-F]{8}$`).test(id));
  const { NODE_OPTIONS: _, ...vars } = resolve(fn!.Properties.Environment.Variables, refs) as Record<string, string>;
  return vars;
}

const MODULES = {
  plan: () => import('../../functions/plan.js'),
  'build-part': () => import('../../functions/build-part.js'),
  merge: () => import('../../functions/merge.js'),
  trigger: () => import('../../functions/trigger.js'),
  recover: () => import('../../functions/recover.js'),
  reconcile: () => import('../../functions/reconcile.js'),
};

/** A handler module as its cold start sees it: settings read from this environment at import. */
async function loadHandler(file: keyof typeof MODULES, env: Record<string, string>): Promise<Handler> {
  const restore = setEnv(env);
  try {
    return (await MODULES[file]()).handler as unknown as Handler;
  } finally {
    restore();
  }
}

beforeAll(async () => {
  synth = synthScalarIndexApp({ bucketName: BUCKET });
  const smId = buildStateMachines(synth.json)[0]![0];
  const [[retryId, retrySm]] = resourcesOfType(synth.json, 'AWS::StepFunctions::StateMachine').filter(([id]) => /^RetryBuild[0-9A-F]{8}$/.test(id));
  const refs = { [smId]: BUILD_ARN, [retryId!]: RETRY_ARN };
  buildDefinition = JSON.parse(deployedDefinition(synth).text) as Json;
  retryDefinition = JSON.parse(flat(retrySm!.Properties.DefinitionString).replaceAll(`<${smId}>`, BUILD_ARN).replaceAll('<AWS::Partition>', 'aws')) as Json;
  const [[, rule]] = resourcesOfType(synth.json, 'AWS::Events::Rule').filter(([id]) => id.startsWith('BuildFailedRule'));
  rulePattern = resolve(rule!.Properties.EventPattern, refs) as Json;

  [s3, sfn] = await Promise.all([startS3Server({ buckets: [BUCKET] }), startSfnServer({ onStart: (call) => running.push(runExecution(call)) })]);
  // One set of credentials for both: the fake Step Functions ignores them, s3rver does not.
  restoreEnv = setEnv({ ...s3.env, AWS_ENDPOINT_URL_SFN: sfn.endpoint, POWERTOOLS_LOG_LEVEL: 'WARN' });
  output = captureOutput();
  vi.resetModules();
  handlers = {
    plan: await loadHandler('plan', functionEnv('Plan', refs)),
    buildPart: await loadHandler('build-part', functionEnv('BuildPart', refs)),
    merge: await loadHandler('merge', functionEnv('Merge', refs)),
    trigger: await loadHandler('trigger', functionEnv('Trigger', refs)),
    recover: await loadHandler('recover', functionEnv('Recover', refs)),
    reconcile: await loadHandler('reconcile', functionEnv('Reconcile', refs)),
  };
});
afterAll(async () => {
  output?.stop();
  restoreEnv?.();
  await Promise.all([s3?.stop(), sfn?.stop()]);
  synth?.cleanup();
});
beforeEach(() => {
  sfn.reset();
  finished.length = 0;
  output.lines.length = 0;
  failing = () => false;
});

/** A dataset with an index over two fragments, then two more fragments uploaded, and the S3 events for them. */
async function datasetWithNewFragments(root: string): Promise<{ store: S3Store; event: SQSEvent }> {
  const store = new S3Store({ bucket: BUCKET, prefix: root });
  for (const f of [0, 1]) await store.put(`data/f${f}.arrow`, fragmentBytes(COLS, rows(f), { batchRows: 16, format: 'file' }));
  await build({ dataset: `s3://${BUCKET}/${root}`, indexes: [{ column: 'region', type: 'bitmap' }, { column: 'qty', type: 'zonemap' }], concurrency: 1 });
  await store.put('data/f2.arrow', fragmentBytes(COLS, rows(2), { batchRows: 16, format: 'file' }));
  await store.put('data/F3.PARQUET', fragmentBytes(COLS, rows(3), { batchRows: 16, format: 'parquet' }));
  const event = sqsEvent([
    { messageId: 'm1', body: JSON.stringify({ Records: [s3Record({ bucket: BUCKET, key: `${root}/data/f2.arrow`, sequencer: '0A' })] }) },
    { messageId: 'm2', body: JSON.stringify({ Records: [s3Record({ bucket: BUCKET, key: `${root}/data/F3.PARQUET`, sequencer: '0B' })] }) },
  ]);
  return { store, event };
}

async function coverage(store: S3Store): Promise<{ fragments: number; covered: number[][] }> {
  const m = await loadLatestManifest(store);
  return { fragments: (await fragmentsOf(store, m)).length, covered: m.indexes.map(coveredIds) };
}

describe('recovery of failed event-started builds', () => {
  it('an event-started build fails (injected); the recovery starts it again under <name>-r1 after a back-off, and that build covers the fragments', async () => {
    const { store, event } = await datasetWithNewFragments('datasets/sales');
    failing = (name) => !/-r\d+$/.test(name);
    expect(await handlers.trigger(event, fakeContext('trigger'))).toEqual({ batchItemFailures: [] });
    await settle();

    const [first] = sfn.started;
    expect(first).toMatchObject({ stateMachineArn: BUILD_ARN, input: JSON.stringify({ dataset: `s3://${BUCKET}/datasets/sales` }) });
    expect(first!.name).toMatch(/^data-datasets-sales-[0-9a-f]{32}$/);
    expect(sfn.started.map((c) => [c.stateMachineArn, c.name])).toEqual([
      [BUILD_ARN, first!.name],
      [RETRY_ARN, `${first!.name}-r1`],
      [BUILD_ARN, `${first!.name}-r1`],
    ]);
    // The retry machine was asked to wait the first back-off (shortened here) before starting.
    expect(JSON.parse(sfn.started[1]!.input)).toEqual({ dataset: `s3://${BUCKET}/datasets/sales`, name: `${first!.name}-r1`, waitSeconds: 120 });
    expect(finished.filter((f) => f.machine === 'build').map((f) => [f.name, f.status, f.error])).toEqual([
      [first!.name, 'FAILED', 'InjectedPartFailure'],
      [`${first!.name}-r1`, 'SUCCEEDED', undefined],
    ]);
    // The success event did not match the rule: nothing else was started.
    expect(sfn.started).toHaveLength(3);

    expect(await coverage(store)).toEqual({ fragments: 4, covered: [[0, 1, 2, 3], [0, 1, 2, 3]] });
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
  });

  it('a redelivered failure event schedules nothing new, and an execution started by hand is not retried', async () => {
    await handlers.recover(statusChange({ stateMachineArn: BUILD_ARN, name: 'x-0123456789abcdef0123456789abcdef', input: JSON.stringify({ dataset: `s3://${BUCKET}/nothing` }), outcome: 'started', executionArn: `${ACCOUNT}:execution:ScalarIndex-BuildIndex:x` }, 'FAILED'), fakeContext('recover'));
    await handlers.recover(statusChange({ stateMachineArn: BUILD_ARN, name: 'x-0123456789abcdef0123456789abcdef', input: JSON.stringify({ dataset: `s3://${BUCKET}/nothing` }), outcome: 'started', executionArn: `${ACCOUNT}:execution:ScalarIndex-BuildIndex:x` }, 'FAILED'), fakeContext('recover'));
    const manual = { stateMachineArn: BUILD_ARN, name: '5f0c2f9e-7a51-4d1e-bb0e-0a4f3e2d1c0b', input: JSON.stringify({ dataset: `s3://${BUCKET}/nothing` }), outcome: 'started' as const, executionArn: `${ACCOUNT}:execution:ScalarIndex-BuildIndex:m` };
    expect(await handlers.recover(statusChange(manual, 'FAILED'), fakeContext('recover'))).toMatchObject({ action: 'ignore' });
    expect(sfn.calls.filter((c) => c.stateMachineArn === RETRY_ARN).map((c) => [c.name, c.outcome])).toEqual([
      ['x-0123456789abcdef0123456789abcdef-r1', 'started'],
      ['x-0123456789abcdef0123456789abcdef-r1', 'ExecutionAlreadyExists'],
    ]);
    // The one retry scheduled runs once (and fails: the dataset has no fragments).
    await settle();
    expect(finished.filter((f) => f.machine === 'build').map((f) => f.name)[0]).toBe('x-0123456789abcdef0123456789abcdef-r1');
  });

  it('stops at buildRetries, emits the metric the exhausted-retries alarm watches, and the reconcile builds the dataset later', async () => {
    const { store, event } = await datasetWithNewFragments('datasets/web');
    failing = () => true;
    await handlers.trigger(event, fakeContext('trigger'));
    await settle();
    const builds = finished.filter((f) => f.machine === 'build');
    const base = builds[0]!.name;
    expect(builds.map((b) => [b.name, b.status])).toEqual([
      [base, 'FAILED'],
      [`${base}-r1`, 'FAILED'],
      [`${base}-r2`, 'FAILED'],
      [`${base}-r3`, 'FAILED'],
    ]);
    expect(sfn.started.filter((c) => c.stateMachineArn === RETRY_ARN).map((c) => JSON.parse(c.input).waitSeconds)).toEqual([120, 480, 1920]);
    const exhausted = emfMetrics(output.lines).filter((m) => m.metrics.includes('BuildRetriesExhausted'));
    expect(exhausted).toHaveLength(1);
    expect(exhausted[0]).toMatchObject({ namespace: 'ScalarIndex', dims: { service: 'scalar-index', step: 'recover' } });
    expect(exhausted[0]!.line.BuildRetriesExhausted).toBe(1);
    // The plan step registered the new fragments; no index covers them.
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 2, gone: 0 });

    // The fault is gone. A reconcile run finds the fragments too young (their build may still
    // be running), and one an hour later starts a build that covers them.
    failing = () => false;
    sfn.reset();
    const now = new Date();
    expect(await handlers.reconcile({ time: now.toISOString() }, fakeContext('reconcile'))).toMatchObject({ started: [] });
    const later = new Date(now.getTime() + 2 * 3600_000);
    const summary = await handlers.reconcile({ 'detail-type': 'Scheduled Event', source: 'aws.events', time: later.toISOString(), detail: {} }, fakeContext('reconcile'));
    expect(summary).toMatchObject({ started: [`s3://${BUCKET}/datasets/web`], errors: 0 });
    await settle();
    expect(sfn.started.map((c) => c.name)).toEqual([reconcileName(`s3://${BUCKET}/datasets/web`, later)]);
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
    expect(await coverage(store)).toEqual({ fragments: 4, covered: [[0, 1, 2, 3], [0, 1, 2, 3]] });
    // The same scheduled event again (EventBridge retries) starts nothing new.
    await handlers.reconcile({ time: later.toISOString() }, fakeContext('reconcile'));
    expect(sfn.started).toHaveLength(1);
  });

  it('the template has the failure rule, the alarms and the dashboard this test relies on', () => {
    expect(rulePattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { stateMachineArn: [BUILD_ARN], status: ['FAILED', 'TIMED_OUT', 'ABORTED'] },
    });
    const smId = buildStateMachines(synth.json)[0]![0];
    const alarms = resourcesOfType(synth.json, 'AWS::CloudWatch::Alarm').map(([id, a]) => [id.replace(/[0-9A-F]{8}$/, ''), JSON.stringify(a.Properties)] as const);
    const alarm = (id: string) => alarms.find(([a]) => a === id)?.[1] ?? '';
    for (const metric of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted']) expect(alarm('MonitoringBuildFailures')).toContain(`"MetricName":"${metric}"`);
    expect(alarm('MonitoringBuildFailures')).toContain(`{"Name":"StateMachineArn","Value":{"Ref":"${smId}"}}`);
    const dlqId = resourcesOfType(synth.json, 'AWS::SQS::Queue').find(([id]) => id.startsWith('FragmentEventsDlq'))![0];
    expect(alarm('MonitoringDeadLetters')).toContain('"MetricName":"ApproximateNumberOfMessagesVisible"');
    expect(alarm('MonitoringDeadLetters')).toContain(`"QueueName","Value":{"Fn::GetAtt":["${dlqId}","QueueName"]}`);
    // The dimensions Powertools gives the recover function's metric (seen in the test above).
    expect(JSON.parse(alarm('MonitoringRetriesExhausted'))).toMatchObject({
      Metrics: [
        {
          MetricStat: {
            Metric: { Namespace: 'ScalarIndex', MetricName: 'BuildRetriesExhausted', Dimensions: [{ Name: 'service', Value: 'scalar-index' }, { Name: 'step', Value: 'recover' }] },
            Stat: 'Sum',
          },
        },
      ],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });

    expect(JSON.parse(alarm('MonitoringCompactionFailures'))).toMatchObject({
      Metrics: [{ MetricStat: { Metric: { Namespace: 'ScalarIndex', MetricName: 'CompactionsFailed', Dimensions: [{ Name: 'service', Value: 'scalar-index' }, { Name: 'step', Value: 'merge' }] }, Stat: 'Sum' } }],
      Threshold: 1,
    });

    const [[, dashboard]] = resourcesOfType(synth.json, 'AWS::CloudWatch::Dashboard');
    const body = JSON.parse(flat(dashboard!.Properties.DashboardBody)) as { widgets: { properties: { title: string; metrics?: unknown[][] } }[] };
    const titles = body.widgets.map((w) => w.properties.title);
    expect(titles).toEqual(expect.arrayContaining(['Builds', 'Build duration', 'Fragments indexed', 'Index bytes written', 'Automatic builds and retries', 'Alarms']));
    const metricsOf = (title: string) => JSON.stringify(body.widgets.find((w) => w.properties.title === title)!.properties.metrics);
    for (const m of ['ExecutionsStarted', 'ExecutionsSucceeded', 'ExecutionsFailed']) expect(metricsOf('Builds')).toContain(m);
    expect(metricsOf('Build duration')).toContain('StepDuration');
    expect(metricsOf('Fragments indexed')).toContain('FragmentsIndexed');
    expect(metricsOf('Index bytes written')).toContain('IndexBytesWritten');
  });

  it('the handlers emit the metrics the dashboard plots (fragments indexed, bytes written)', async () => {
    const { store, event } = await datasetWithNewFragments('datasets/metrics');
    await handlers.trigger(event, fakeContext('trigger'));
    await settle();
    expect(await needsBuild(store)).toEqual({ unregistered: 0, uncovered: 0, gone: 0 });
    const values = (name: string) => emfMetrics(output.lines).filter((m) => m.metrics.includes(name)).map((m) => m.line[name]);
    expect(values('FragmentsRegistered')).toEqual([2]);
    expect(values('FragmentsIndexed')).toEqual([2]);
    const m = await loadLatestManifest(store);
    expect(values('IndexBytesWritten')).toEqual([m.indexes.reduce((n, ix) => n + indexFiles(ix).reduce((k, f) => k + f.size, 0), 0)]);
    expect(values('BuildsStarted')).toEqual([1]);
  });
});
