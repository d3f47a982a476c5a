/**
 * Every `-c` setting at the edges of what AWS accepts: the lowest and highest values reach the
 * template where AWS reads them, and a value past either edge (or a combination AWS refuses,
 * such as a batch size above 10 with no batching window) fails the synth with an error naming
 * the setting, before anything is deployed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SettingsError } from '../../stacks/settings.js';
import { createScalarIndexApp } from '../../stacks/scalar-index-app.js';
import { asArray, cdkJsonContext, flat, iamStatements, resourcesOfType, synthScalarIndexApp, type SynthesizedApp } from './app-fixture.js';

const KEY_ARN = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

let low: SynthesizedApp;
let high: SynthesizedApp;

beforeAll(() => {
  low = synthScalarIndexApp({
    buildPartMemoryMb: '128',
    maxConcurrency: '1',
    groupRows: '1',
    batchingWindowSeconds: '0',
    batchSize: '10',
    buildRetries: '0',
    reconcileIntervalMinutes: '0',
  });
  high = synthScalarIndexApp({
    buildPartMemoryMb: '10240',
    maxConcurrency: '10000',
    groupRows: String(Number.MAX_SAFE_INTEGER),
    batchingWindowSeconds: '300',
    batchSize: '10000',
    buildRetries: '10',
    reconcileIntervalMinutes: '1440',
    alarmEmail: 'ops@example.com',
    bucketName: 'existing-data-bucket',
    bucketKmsKeyArn: KEY_ARN,
  });
});
afterAll(() => {
  low?.cleanup();
  high?.cleanup();
});

const fn = (s: SynthesizedApp, name: string) => {
  const found = resourcesOfType(s.json, 'AWS::Lambda::Function').filter(([id]) => new RegExp(`^${name}[0-9A-F]{8}$`).test(id));
  return found[0]?.[1].Properties;
};
const esm = (s: SynthesizedApp) => resourcesOfType(s.json, 'AWS::Lambda::EventSourceMapping')[0]![1].Properties;

describe('settings at their bounds reach the template', () => {
  it('buildPartMemoryMb: 128 and 10240 MB', () => {
    expect(fn(low, 'BuildPart')!.MemorySize).toBe(128);
    expect(fn(high, 'BuildPart')!.MemorySize).toBe(10_240);
  });

  it('maxConcurrency and groupRows: what the plan function hands the Distributed Map', () => {
    expect(fn(low, 'Plan')!.Environment.Variables).toMatchObject({ MAX_CONCURRENCY: '1', GROUP_ROWS: '1' });
    expect(fn(high, 'Plan')!.Environment.Variables).toMatchObject({ MAX_CONCURRENCY: '10000', GROUP_ROWS: String(Number.MAX_SAFE_INTEGER) });
  });

  it('batchingWindowSeconds 0 with batchSize 10 (the most Lambda allows without a window), and 300 with 10000', () => {
    expect(esm(low)).toMatchObject({ BatchSize: 10, MaximumBatchingWindowInSeconds: 0 });
    expect(esm(high)).toMatchObject({ BatchSize: 10_000, MaximumBatchingWindowInSeconds: 300 });
    const visibility = (s: SynthesizedApp) => resourcesOfType(s.json, 'AWS::SQS::Queue').find(([id]) => /^FragmentEvents[0-9A-F]{8}$/.test(id))![1].Properties.VisibilityTimeout;
    expect(visibility(low)).toBe(360);
    expect(visibility(high)).toBe(660);
  });

  it('buildRetries: what the recover function may do (0 still reports exhausted retries)', () => {
    expect(fn(low, 'Recover')!.Environment.Variables.BUILD_RETRIES).toBe('0');
    expect(fn(high, 'Recover')!.Environment.Variables.BUILD_RETRIES).toBe('10');
  });

  it('reconcileIntervalMinutes: 0 leaves the reconcile out; 1440 runs it daily', () => {
    expect(fn(low, 'Reconcile')).toBeUndefined();
    expect(resourcesOfType(low.json, 'AWS::Events::Rule').map(([id]) => id).filter((id) => id.startsWith('Reconcile'))).toEqual([]);
    const [[, rule]] = resourcesOfType(high.json, 'AWS::Events::Rule').filter(([id]) => id.startsWith('ReconcileSchedule'));
    expect(rule!.Properties.ScheduleExpression).toBe('rate(1 day)');
    expect(fn(high, 'Reconcile')!.Environment.Variables.RECONCILE_SETTLE_MINUTES).toBe('1440');
  });

  it('alarmEmail: a TLS-only topic with that email subscription, the action of every alarm', () => {
    expect(resourcesOfType(low.json, 'AWS::SNS::Topic')).toEqual([]);
    const [[topicId]] = resourcesOfType(high.json, 'AWS::SNS::Topic');
    expect(resourcesOfType(high.json, 'AWS::SNS::Subscription').map(([, r]) => [r.Properties.Protocol, r.Properties.Endpoint, r.Properties.TopicArn])).toEqual([
      ['email', 'ops@example.com', { Ref: topicId }],
    ]);
    const alarms = resourcesOfType(high.json, 'AWS::CloudWatch::Alarm');
    expect(alarms.length).toBeGreaterThanOrEqual(3);
    for (const [id, a] of alarms) expect(a.Properties.AlarmActions, id).toEqual([{ Ref: topicId }]);
    for (const [id, a] of resourcesOfType(low.json, 'AWS::CloudWatch::Alarm')) expect(a.Properties.AlarmActions, id).toBeUndefined();
  });

  it("bucketKmsKeyArn: kms:Decrypt (and GenerateDataKey for writers) on that key, through S3 only, for whoever reads or writes the bucket", () => {
    const byPolicy = new Map<string, string[]>();
    for (const { policy, statement } of iamStatements(high.json)) {
      if (!asArray(statement.Action).some((a: string) => a.startsWith('kms:'))) continue;
      expect(asArray(statement.Resource)).toEqual([KEY_ARN]);
      expect(flat(statement.Condition.StringEquals['kms:ViaService'])).toBe('s3.<AWS::Region>.amazonaws.com');
      byPolicy.set(policy.replace(/[0-9A-F]{8}$/, ''), (asArray(statement.Action) as string[]).sort());
    }
    const writers = ['PlanRoleDefaultPolicy', 'BuildPartRoleDefaultPolicy', 'MergeRoleDefaultPolicy'];
    const readers = ['VacuumRoleDefaultPolicy', 'ReconcileRoleDefaultPolicy', 'BuildIndexRoleDefaultPolicy'];
    expect([...byPolicy.keys()].sort()).toEqual([...writers, ...readers].sort());
    for (const p of writers) expect(byPolicy.get(p), p).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    for (const p of readers) expect(byPolicy.get(p), p).toEqual(['kms:Decrypt']);
    // Without the setting, no KMS permission at all.
    expect(iamStatements(low.json).filter(({ statement }) => asArray(statement.Action).some((a: string) => a.startsWith('kms:')))).toEqual([]);
  });

  it('pass cdk-nag at both ends', () => {
    for (const s of [low, high]) expect(s.nag.validateScope(s.app).violations.map((v) => v.ruleName)).toEqual([]);
  });
});

describe('settings past their bounds fail the synth, naming the setting', () => {
  it.each([
    [{ buildPartMemoryMb: '127' }, /buildPartMemoryMb must be an integer from 128 to 10240 \(got 127\)/],
    [{ buildPartMemoryMb: '10241' }, /buildPartMemoryMb must be an integer from 128 to 10240/],
    [{ maxConcurrency: '0' }, /maxConcurrency must be an integer from 1 to 10000/],
    [{ maxConcurrency: '10001' }, /maxConcurrency must be an integer from 1 to 10000/],
    [{ groupRows: '0' }, /groupRows must be an integer from 1/],
    [{ batchingWindowSeconds: '0' }, /batchSize 100 needs batchingWindowSeconds of at least 1/],
    [{ batchingWindowSeconds: '301' }, /batchingWindowSeconds must be an integer from 0 to 300/],
    [{ batchingWindowSeconds: '-1' }, /batchingWindowSeconds="-1" is not an integer/],
    [{ batchSize: '0' }, /batchSize must be an integer from 1 to 10000/],
    [{ batchSize: '10001' }, /batchSize must be an integer from 1 to 10000/],
    [{ batchSize: '11', batchingWindowSeconds: '0' }, /batchSize 11 needs batchingWindowSeconds of at least 1/],
    [{ buildRetries: '11' }, /buildRetries must be an integer from 0 to 10/],
    [{ reconcileIntervalMinutes: '4' }, /reconcileIntervalMinutes must be 0 \(no reconcile\) or an integer from 5 to 1440/],
    [{ reconcileIntervalMinutes: '1441' }, /reconcileIntervalMinutes must be 0 \(no reconcile\) or an integer from 5 to 1440/],
    [{ alarmEmail: 'ops at example' }, /alarmEmail "ops at example" is not an email address/],
    [{ bucketName: 'b-1', bucketKmsKeyArn: 'arn:aws:kms:us-east-1:123456789012:alias/data' }, /bucketKmsKeyArn .* is not a KMS key ARN/],
    [{ bucketKmsKeyArn: KEY_ARN }, /bucketKmsKeyArn is for an existing bucket .*set bucketName too/],
    [{ bucketName: 'Bad_Bucket' }, /bucketName "Bad_Bucket" is not a valid S3 bucket name/],
  ])('%j', (context, message) => {
    const run = () => createScalarIndexApp({ context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...context } });
    expect(run).toThrow(SettingsError);
    expect(run).toThrow(message);
  });
});
