/**
 * The synthesized CloudFormation template (bundling skipped): the workflow is the shared ASL
 * file, the functions run Node 22, IAM is scoped to the bucket and the dataset prefixes, S3
 * events reach the trigger through SQS, a daily rule vacuums each literal dataset root, and
 * cdk-nag's AWS Solutions checks pass.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FRAGMENT_EXTENSIONS } from '../../lib/fragments/keys.js';
import { DEFAULT_MAX_CONCURRENCY as LIB_DEFAULT_MAX_CONCURRENCY } from '../../lib/workflow/steps.js';
import { FRAGMENT_SUFFIX_FILTERS } from '../../stacks/dataset-prefixes.js';
import { DEFAULT_VACUUM_OLDER_THAN } from '../../lib/workflow/vacuum.js';
import { STATE_MACHINE_DEFINITION_FILE, VACUUM_OLDER_THAN } from '../../stacks/scalar-index-stack.js';
import { DEFAULT_MAX_CONCURRENCY } from '../../stacks/settings.js';
import { asArray, buildStateMachines, deployedDefinition, flat, iamStatements, resourcesOfType, synthScalarIndexApp, type CfnResourceJson, type SynthesizedApp } from './app-fixture.js';

const SUBSTITUTIONS = ['PlanFunctionArn', 'BuildPartFunctionArn', 'MergeFunctionArn'] as const;

let app: SynthesizedApp; // defaults: a new bucket, datasets/*
let imported: SynthesizedApp; // an existing bucket and two literal dataset roots
let mixed: SynthesizedApp; // a new bucket, one literal root and one wildcard

beforeAll(() => {
  app = synthScalarIndexApp();
  imported = synthScalarIndexApp({ bucketName: 'existing-data-bucket', datasetPrefixes: 'datasets/sales,datasets/web', batchingWindowSeconds: '10' });
  mixed = synthScalarIndexApp({ datasetPrefixes: 'datasets/sales,logs/*' });
});
afterAll(() => {
  app?.cleanup();
  imported?.cleanup();
  mixed?.cleanup();
});

/** The logical id of the stack's resource at construct path `<stack>/<id>/Resource` (CDK's `<id><8 hex>`). */
const logicalId = (s: SynthesizedApp, type: string, id: string): string => {
  const found = Object.entries(s.json.Resources).filter(([lid, r]) => r.Type === type && new RegExp(`^${id}[0-9A-F]{8}$`).test(lid));
  expect(found, `${type} ${id}`).toHaveLength(1);
  return found[0]![0];
};
const fnId = (s: SynthesizedApp, name: string) => logicalId(s, 'AWS::Lambda::Function', name);
const stateMachine = (s: SynthesizedApp) => buildStateMachines(s.json);

describe('state machine', () => {
  it('deploys lib/workflow/state-machine.asl.json byte for byte, as a Standard workflow', () => {
    const sms = stateMachine(app);
    expect(sms).toHaveLength(1);
    const [, sm] = sms[0]!;
    expect(sm.Properties.StateMachineType).toBe('STANDARD');
    expect(sm.Properties.DefinitionString).toBeUndefined();
    const staged = path.join(app.outdir, `asset.${flat(sm.Properties.DefinitionS3Location.Key)}`);
    expect(fs.readFileSync(staged)).toEqual(fs.readFileSync(STATE_MACHINE_DEFINITION_FILE));
  });

  it('substitutes exactly the three function ARNs, each with its own function', () => {
    const [[, sm]] = stateMachine(app) as [[string, CfnResourceJson]];
    expect(Object.keys(sm.Properties.DefinitionSubstitutions).sort()).toEqual([...SUBSTITUTIONS].sort());
    expect(sm.Properties.DefinitionSubstitutions).toEqual({
      PlanFunctionArn: { 'Fn::GetAtt': [fnId(app, 'Plan'), 'Arn'] },
      BuildPartFunctionArn: { 'Fn::GetAtt': [fnId(app, 'BuildPart'), 'Arn'] },
      MergeFunctionArn: { 'Fn::GetAtt': [fnId(app, 'Merge'), 'Arn'] },
    });
    // Every ${…} in the file is one of them: nothing is left unsubstituted at deploy time.
    const file = fs.readFileSync(STATE_MACHINE_DEFINITION_FILE, 'utf8');
    expect([...new Set([...file.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1]))].sort()).toEqual([...SUBSTITUTIONS].sort());
  });

  it('resolves to the shared definition with the ARNs filled in', () => {
    const { text, placeholders } = deployedDefinition(app);
    let expected = fs.readFileSync(STATE_MACHINE_DEFINITION_FILE, 'utf8');
    for (const [name, value] of Object.entries(placeholders)) expected = expected.split(`\${${name}}`).join(value);
    expect(JSON.parse(text)).toEqual(JSON.parse(expected));
    expect(text).not.toContain('${');
  });

  it('fans out with a Distributed Map that reads its items from S3, with Retry and Catch on every task', () => {
    const def = JSON.parse(deployedDefinition(app).text);
    const map = def.States.BuildParts;
    expect(map.Type).toBe('Map');
    expect(map.ItemProcessor.ProcessorConfig).toMatchObject({ Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' });
    expect(map.ItemReader.Resource).toBe('arn:aws:states:::s3:getObject');
    expect(map.ItemReader.Parameters).toEqual({ 'Bucket.$': '$.items.bucket', 'Key.$': '$.items.key' });
    expect(map.Catch?.length).toBeGreaterThan(0);
    const tasks = [def.States.Plan, def.States.MergeAndCommit, map.ItemProcessor.States.BuildPart];
    for (const t of tasks) {
      expect(t.Type).toBe('Task');
      expect(t.Resource).toMatch(/^arn:aws:lambda:us-east-1:123456789012:function:/);
      expect(t.Retry?.length).toBeGreaterThan(0);
    }
    expect(def.States.Plan.Catch?.length).toBeGreaterThan(0);
    expect(def.States.MergeAndCommit.Catch?.length).toBeGreaterThan(0);
  });

  it('logs ALL events to CloudWatch with execution data, and traces with X-Ray', () => {
    app.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^StateMachineLogs'), 'Arn'] } } }],
      },
    });
    app.template.hasResourceProperties('AWS::Logs::LogGroup', { LogGroupName: Match.stringLikeRegexp('^/aws/vendedlogs/states/'), RetentionInDays: 30 });
  });

  it('lets its role invoke the three functions, read the item lists, and run its own child executions', () => {
    const [[smId, sm]] = stateMachine(app) as [[string, CfnResourceJson]];
    const roleId = sm.Properties.RoleArn['Fn::GetAtt'][0];
    const policies = iamStatements(app.json).filter(({ policy }) => app.json.Resources[policy]!.Properties.Roles?.some((r: { Ref: string }) => r.Ref === roleId));
    const byAction = (action: string) => policies.filter(({ statement }) => asArray(statement.Action).includes(action)).flatMap(({ statement }) => asArray(statement.Resource).map(flat));

    expect(byAction('lambda:InvokeFunction').filter((r) => !r.endsWith(':*')).sort()).toEqual(
      ['Plan', 'BuildPart', 'Merge'].map((n) => `<${fnId(app, n)}.Arn>`).sort(),
    );
    const bucketId = logicalId(app, 'AWS::S3::Bucket', 'DataBucket');
    expect(byAction('s3:GetObject')).toEqual([`<${bucketId}.Arn>/datasets/*/_index/builds/*`]);
    const smArn = 'arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>';
    const name = sm.Properties.StateMachineName as string;
    expect(name).toBe('ScalarIndex-BuildIndex');
    expect(byAction('states:StartExecution')).toEqual([`${smArn}:stateMachine:${name}`]);
    // Only the Distributed Map's child executions (`<name>/<map run>:<id>`), not the parent's own.
    expect(byAction('states:DescribeExecution')).toEqual([`${smArn}:execution:${name}/*`]);
    expect(byAction('states:StopExecution')).toEqual([`${smArn}:execution:${name}/*`]);

    // No reference from the role's policy back to the state machine: that would be a cycle.
    for (const { policy } of policies) expect(JSON.stringify(app.json.Resources[policy])).not.toContain(`"${smId}"`);
  });
});

describe('functions', () => {
  const names = ['Plan', 'BuildPart', 'Merge', 'Trigger', 'Vacuum', 'Recover', 'Reconcile'];

  it('run on nodejs22.x, x86_64, ESM bundles with a log group each', () => {
    const fns = resourcesOfType(app.json, 'AWS::Lambda::Function').filter(([id]) => names.some((n) => id.startsWith(n)));
    expect(fns).toHaveLength(7);
    for (const [id, fn] of fns) {
      expect(fn.Properties.Runtime, id).toBe('nodejs22.x');
      expect(fn.Properties.Architectures, id).toEqual(['x86_64']);
      expect(fn.Properties.Handler, id).toBe('index.handler');
      expect(flat(fn.Properties.LoggingConfig.LogGroup), id).toMatch(/^<.*Logs/);
      expect(fn.Properties.Environment.Variables).toMatchObject({ POWERTOOLS_SERVICE_NAME: 'scalar-index', POWERTOOLS_METRICS_NAMESPACE: 'ScalarIndex' });
    }
    for (const [, lg] of resourcesOfType(app.json, 'AWS::Logs::LogGroup')) expect(lg.Properties.RetentionInDays).toBe(30);
  });

  it('size build-part big and the trigger small', () => {
    const props = (n: string) => app.json.Resources[fnId(app, n)]!.Properties;
    expect(props('BuildPart')).toMatchObject({ MemorySize: 3008, Timeout: 900 });
    expect(props('Merge')).toMatchObject({ MemorySize: 3008, Timeout: 900 });
    expect(props('Plan').Timeout).toBeLessThanOrEqual(900);
    expect(props('Trigger')).toMatchObject({ MemorySize: 512, Timeout: 60 });
  });

  it('pass the plan its concurrency (and group rows when set), and the trigger its state machine and prefixes', () => {
    expect(DEFAULT_MAX_CONCURRENCY).toBe(LIB_DEFAULT_MAX_CONCURRENCY);
    const env = (s: SynthesizedApp, n: string) => s.json.Resources[fnId(s, n)]!.Properties.Environment.Variables;
    expect(env(app, 'Plan').MAX_CONCURRENCY).toBe('40');
    expect(env(app, 'Plan').GROUP_ROWS).toBeUndefined();
    const [[smId]] = stateMachine(app);
    expect(env(app, 'Trigger')).toMatchObject({ STATE_MACHINE_ARN: { Ref: smId }, DATASET_PREFIXES: 'datasets/*' });
    expect(env(mixed, 'Trigger').DATASET_PREFIXES).toBe('datasets/sales,logs/*');
    expect(env(imported, 'Trigger').DATASET_PREFIXES).toBe('datasets/sales,datasets/web');

    const tuned = synthScalarIndexApp({ maxConcurrency: '250', groupRows: '1000000', buildPartMemoryMb: '6144' });
    try {
      expect(env(tuned, 'Plan')).toMatchObject({ MAX_CONCURRENCY: '250', GROUP_ROWS: '1000000' });
      expect(tuned.json.Resources[fnId(tuned, 'BuildPart')]!.Properties.MemorySize).toBe(6144);
    } finally {
      tuned.cleanup();
    }
  });
});

describe('IAM', () => {
  it('grants nothing with s3:* or *, and no S3 action on every resource', () => {
    for (const s of [app, imported]) {
      for (const { policy, statement } of iamStatements(s.json)) {
        const actions = asArray(statement.Action);
        expect(actions, policy).not.toContain('*');
        expect(actions, policy).not.toContain('s3:*');
        if (actions.some((a: string) => a.startsWith('s3:'))) expect(asArray(statement.Resource), policy).not.toContain('*');
      }
    }
  });

  it('scopes every S3 object permission to <root>/data/ or <root>/_index/ of a configured prefix', () => {
    const roots = ['datasets/sales', 'datasets/web'];
    const bucketArn = 'arn:<AWS::Partition>:s3:::existing-data-bucket';
    for (const { policy, statement } of iamStatements(imported.json)) {
      const actions = asArray(statement.Action) as string[];
      if (!actions.some((a) => a.startsWith('s3:')) || actions.includes('s3:PutBucketNotification')) continue;
      for (const r of asArray(statement.Resource).map(flat)) {
        if (actions.includes('s3:ListBucket')) {
          expect(r, policy).toBe(bucketArn);
          const prefixes = statement.Condition?.StringLike?.['s3:prefix'];
          expect(prefixes, `${policy}: ListBucket needs an s3:prefix condition`).toBeDefined();
          for (const p of asArray(prefixes) as string[]) expect(roots.some((root) => p === `${root}/data/*` || (p.startsWith(`${root}/_index/`) && p.endsWith('/*'))), p).toBe(true);
        } else {
          expect(roots.some((root) => r === `${bucketArn}/${root}/data/*` || r.startsWith(`${bucketArn}/${root}/_index/`)), `${policy}: ${r}`).toBe(true);
        }
      }
    }
  });

  it('gives each step only the access it needs', () => {
    const bucketId = logicalId(app, 'AWS::S3::Bucket', 'DataBucket');
    const grants = (fn: string) => {
      const roleId = app.json.Resources[fnId(app, fn)]!.Properties.Role['Fn::GetAtt'][0];
      const out: Record<string, string[]> = {};
      for (const { policy, statement } of iamStatements(app.json)) {
        if (!app.json.Resources[policy]!.Properties.Roles?.some((r: { Ref: string }) => r.Ref === roleId)) continue;
        for (const a of asArray(statement.Action) as string[]) {
          for (const r of asArray(statement.Resource).map(flat)) (out[a] ??= []).push(r.replace(`<${bucketId}.Arn>`, 'bucket'));
        }
      }
      for (const k of Object.keys(out)) out[k]!.sort();
      return out;
    };
    const logs = (fn: string) => [`<${logicalId(app, 'AWS::Logs::LogGroup', `${fn}Logs`)}.Arn>`];
    expect(grants('Plan')).toEqual({
      'logs:CreateLogStream': logs('Plan'),
      'logs:PutLogEvents': logs('Plan'),
      's3:GetObject': ['bucket/datasets/*/_index/*', 'bucket/datasets/*/data/*'],
      's3:PutObject': ['bucket/datasets/*/_index/*'],
      's3:AbortMultipartUpload': ['bucket/datasets/*/_index/*'],
      's3:ListBucket': ['bucket'],
    });
    // Build-part reads its build's plan, never the manifest or index files.
    expect(grants('BuildPart')).toEqual({
      'logs:CreateLogStream': logs('BuildPart'),
      'logs:PutLogEvents': logs('BuildPart'),
      's3:GetObject': ['bucket/datasets/*/_index/builds/*', 'bucket/datasets/*/data/*'],
      's3:PutObject': ['bucket/datasets/*/_index/builds/*'],
      's3:AbortMultipartUpload': ['bucket/datasets/*/_index/builds/*'],
      's3:ListBucket': ['bucket'],
    });
    expect(grants('Merge')).toEqual({
      'logs:CreateLogStream': logs('Merge'),
      'logs:PutLogEvents': logs('Merge'),
      's3:GetObject': ['bucket/datasets/*/_index/*'],
      's3:PutObject': ['bucket/datasets/*/_index/*'],
      's3:AbortMultipartUpload': ['bucket/datasets/*/_index/*'],
      's3:DeleteObject': ['bucket/datasets/*/_index/*'],
      's3:ListBucket': ['bucket'],
    });
    // Vacuum lists and deletes under _index/ and reads only the manifests: no index file, no fragment, no write.
    expect(grants('Vacuum')).toEqual({
      'logs:CreateLogStream': logs('Vacuum'),
      'logs:PutLogEvents': logs('Vacuum'),
      's3:GetObject': ['bucket/datasets/*/_index/versions/*'],
      's3:DeleteObject': ['bucket/datasets/*/_index/*'],
      's3:ListBucket': ['bucket'],
    });
    const [[smId]] = stateMachine(app);
    const queueId = logicalId(app, 'AWS::SQS::Queue', 'FragmentEvents');
    expect(grants('Trigger')).toEqual({
      'logs:CreateLogStream': logs('Trigger'),
      'logs:PutLogEvents': logs('Trigger'),
      'states:StartExecution': [`<${smId}>`],
      ...Object.fromEntries(
        ['sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:ReceiveMessage'].map((a) => [a, [`<${queueId}.Arn>`]]),
      ),
    });
    // Recover only starts the retry state machine; reconcile lists, reads manifests and starts builds.
    const retryId = logicalId(app, 'AWS::StepFunctions::StateMachine', 'RetryBuild');
    expect(grants('Recover')).toEqual({ 'logs:CreateLogStream': logs('Recover'), 'logs:PutLogEvents': logs('Recover'), 'states:StartExecution': [`<${retryId}>`] });
    expect(grants('Reconcile')).toEqual({
      'logs:CreateLogStream': logs('Reconcile'),
      'logs:PutLogEvents': logs('Reconcile'),
      's3:GetObject': ['bucket/datasets/*/_index/versions/*'],
      's3:ListBucket': ['bucket'],
      'states:StartExecution': [`<${smId}>`],
    });
    const reconcileRole = app.json.Resources[fnId(app, 'Reconcile')]!.Properties.Role['Fn::GetAtt'][0];
    const list = iamStatements(app.json).find(
      ({ policy, statement }) => app.json.Resources[policy]!.Properties.Roles?.some((r: { Ref: string }) => r.Ref === reconcileRole) && asArray(statement.Action).includes('s3:ListBucket'),
    )!;
    // The pattern's base exactly (to find the roots under it), and data/ and _index/ of the roots.
    expect(list.statement.Condition).toEqual({ StringLike: { 's3:prefix': ['datasets/*/data/*', 'datasets/*/_index/*', 'datasets/'] } });
    // The build state machine reads its item list and writes its Map results under _index/builds/ only.
    const smRole = app.json.Resources[smId]!.Properties.RoleArn['Fn::GetAtt'][0];
    const smS3 = iamStatements(app.json)
      .filter(({ policy }) => app.json.Resources[policy]!.Properties.Roles?.some((r: { Ref: string }) => r.Ref === smRole))
      .flatMap(({ statement }) => (asArray(statement.Action) as string[]).filter((a) => a.startsWith('s3:')).flatMap((a) => asArray(statement.Resource).map((r) => [a, flat(r).replace(`<${bucketId}.Arn>`, 'bucket')])))
      .sort();
    expect(smS3).toEqual([
      ['s3:AbortMultipartUpload', 'bucket/datasets/*/_index/builds/*'],
      ['s3:GetObject', 'bucket/datasets/*/_index/builds/*'],
      ['s3:ListMultipartUploadParts', 'bucket/datasets/*/_index/builds/*'],
      ['s3:PutObject', 'bucket/datasets/*/_index/builds/*'],
    ]);
    // The retry state machine may start the build state machine, nothing else (besides its logs and traces).
    const retryRole = app.json.Resources[retryId]!.Properties.RoleArn['Fn::GetAtt'][0];
    const retryGrants = iamStatements(app.json).filter(({ policy }) => app.json.Resources[policy]!.Properties.Roles?.some((r: { Ref: string }) => r.Ref === retryRole));
    expect(retryGrants.filter(({ statement }) => asArray(statement.Action).some((a: string) => a.startsWith('states:'))).map(({ statement }) => [statement.Action, flat(statement.Resource)])).toEqual([
      ['states:StartExecution', `<${smId}>`],
    ]);
  });

  it('uses no AWS managed policy on the project roles', () => {
    for (const [id, role] of resourcesOfType(app.json, 'AWS::IAM::Role')) {
      if (id.startsWith('BucketNotificationsHandler')) continue; // CDK's own deploy-time helper
      expect(role.Properties.ManagedPolicyArns, id).toBeUndefined();
    }
  });
});

describe('vacuum', () => {
  const rules = (s: SynthesizedApp) =>
    resourcesOfType(s.json, 'AWS::Events::Rule').filter(([, r]) => r.Properties.Targets?.some((t: { Arn: unknown }) => flat(t.Arn) === `<${fnId(s, 'Vacuum')}.Arn>`));
  const env = (s: SynthesizedApp) => s.json.Resources[fnId(s, 'Vacuum')]!.Properties.Environment.Variables;

  it('runs daily for each literal dataset root, with that dataset as the input, and retries a failed run', () => {
    const found = rules(imported);
    expect(found).toHaveLength(2);
    const inputs = found.map(([, r]) => {
      expect(r.Properties.ScheduleExpression).toBe('rate(1 day)');
      expect(r.Properties.State).toBe('ENABLED');
      expect(r.Properties.Targets).toHaveLength(1);
      const [target] = r.Properties.Targets;
      expect(target.Arn).toEqual({ 'Fn::GetAtt': [fnId(imported, 'Vacuum'), 'Arn'] });
      expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 6 * 3600 });
      return JSON.parse(target.Input);
    });
    expect(inputs).toEqual([{ dataset: 's3://existing-data-bucket/datasets/sales' }, { dataset: 's3://existing-data-bucket/datasets/web' }]);
    // EventBridge may invoke the function, and only from these rules.
    const permissions = resourcesOfType(imported.json, 'AWS::Lambda::Permission').filter(
      ([, p]) => p.Properties.Principal === 'events.amazonaws.com' && flat(p.Properties.FunctionName) === `<${fnId(imported, 'Vacuum')}.Arn>`,
    );
    expect(permissions.map(([, p]) => [flat(p.Properties.FunctionName), flat(p.Properties.SourceArn)]).sort()).toEqual(
      found.map(([id]) => [`<${fnId(imported, 'Vacuum')}.Arn>`, `<${id}.Arn>`]).sort(),
    );
  });

  it('gets no rule for a wildcard prefix (no dataset to name), and names a new bucket by reference', () => {
    expect(rules(app)).toEqual([]);
    expect(env(app)).toMatchObject({ VACUUM_DATASETS: '', VACUUM_OLDER_THAN: '7d' });
    const found = rules(mixed);
    expect(found).toHaveLength(1);
    const bucketId = logicalId(mixed, 'AWS::S3::Bucket', 'DataBucket');
    expect(flat(found[0]![1].Properties.Targets[0].Input)).toBe(`{"dataset":"s3://<${bucketId}>/datasets/sales"}`);
    expect(flat(env(mixed).VACUUM_DATASETS)).toBe(`s3://<${bucketId}>/datasets/sales`);
  });

  it('keeps builds in flight safe with the library default age threshold, and lists the literal roots for a bare invocation', () => {
    expect(VACUUM_OLDER_THAN).toBe(DEFAULT_VACUUM_OLDER_THAN);
    expect(env(imported)).toMatchObject({
      VACUUM_OLDER_THAN: '7d',
      VACUUM_DATASETS: 's3://existing-data-bucket/datasets/sales,s3://existing-data-bucket/datasets/web',
      POWERTOOLS_SERVICE_NAME: 'scalar-index',
    });
    expect(imported.json.Resources[fnId(imported, 'Vacuum')]!.Properties).toMatchObject({ Timeout: 900, MemorySize: 1024, Runtime: 'nodejs22.x' });
  });
});

describe('S3 events → SQS → trigger', () => {
  const queueConfigs = (s: SynthesizedApp) => {
    const [[, n]] = resourcesOfType(s.json, 'Custom::S3BucketNotifications') as [[string, CfnResourceJson]];
    return n.Properties.NotificationConfiguration.QueueConfigurations as {
      Events: string[];
      Filter: { Key: { FilterRules: { Name: string; Value: string }[] } };
      QueueArn: unknown;
    }[];
  };
  const filters = (s: SynthesizedApp) =>
    queueConfigs(s)
      .map((c) => {
        const rule = (name: string) => c.Filter.Key.FilterRules.find((r) => r.Name === name)?.Value;
        return `${rule('prefix')}*${rule('suffix')}`;
      })
      .sort();

  it('notifies the queue of new fragment files under each dataset prefix, whatever the case of their extension', () => {
    const queueId = logicalId(app, 'AWS::SQS::Queue', 'FragmentEvents');
    for (const c of queueConfigs(app)) {
      expect(c.Events).toEqual(['s3:ObjectCreated:*']);
      expect(c.QueueArn).toEqual({ 'Fn::GetAtt': [queueId, 'Arn'] });
    }
    // A wildcard prefix cannot be an S3 filter: the trigger drops keys outside <root>/data/.
    expect(filters(app)).toEqual(FRAGMENT_SUFFIX_FILTERS.map((s) => `datasets/*${s}`).sort());
    expect(filters(imported)).toEqual(
      ['datasets/sales/data/', 'datasets/web/data/'].flatMap((p) => FRAGMENT_SUFFIX_FILTERS.map((s) => `${p}*${s}`)).sort(),
    );
    expect(FRAGMENT_SUFFIX_FILTERS).toHaveLength(8);
    // S3 compares suffixes case-sensitively; every spelling of every extension passes some filter…
    const passes = (key: string) => FRAGMENT_SUFFIX_FILTERS.some((suffix) => key.endsWith(suffix));
    fc.assert(
      fc.property(fc.constantFrom(...FRAGMENT_EXTENSIONS), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), (ext, upper) => {
        const spelled = [...ext].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join('');
        expect(passes(`datasets/sales/data/part${spelled}`), spelled).toBe(true);
      }),
    );
    // …and under a pattern's base, none of the manifests, plans and checksum records a build writes does.
    for (const key of ['datasets/x/_index/versions/00000000000000000001.json', 'datasets/x/_index/builds/b/plan.json', 'datasets/x/_index/builds/b/k/part_0_bitmap.arrow.crc32c']) {
      expect(passes(key), key).toBe(false);
    }
    // Literal roots: nothing under _index/ can reach the queue.
    for (const c of queueConfigs(imported)) expect(c.Filter.Key.FilterRules.find((r) => r.Name === 'prefix')!.Value).toMatch(/\/data\/$/);
    const [[, n]] = resourcesOfType(imported.json, 'Custom::S3BucketNotifications') as [[string, CfnResourceJson]];
    expect(n.Properties.BucketName).toBe('existing-data-bucket');
  });

  it('queues events encrypted, TLS-only, with a dead-letter queue and a visibility timeout of at least 6× the trigger timeout', () => {
    const queueId = logicalId(app, 'AWS::SQS::Queue', 'FragmentEvents');
    const dlqId = logicalId(app, 'AWS::SQS::Queue', 'FragmentEventsDlq');
    const queue = app.json.Resources[queueId]!.Properties;
    expect(queue.SqsManagedSseEnabled).toBe(true);
    expect(queue.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': [dlqId, 'Arn'] }, maxReceiveCount: 5 });
    const triggerTimeout = app.json.Resources[fnId(app, 'Trigger')]!.Properties.Timeout as number;
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * triggerTimeout);
    expect(app.json.Resources[dlqId]!.Properties.SqsManagedSseEnabled).toBe(true);

    for (const id of [queueId, dlqId]) {
      const [[, policy]] = resourcesOfType(app.json, 'AWS::SQS::QueuePolicy').filter(([, p]) => JSON.stringify(p.Properties.Queues).includes(id)) as [
        [string, CfnResourceJson],
      ];
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
    // Only S3, and only for this bucket, may send.
    app.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 's3.amazonaws.com' },
            Action: Match.arrayWith(['sqs:SendMessage']),
            Condition: { ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(app, 'AWS::S3::Bucket', 'DataBucket'), 'Arn'] } } },
          }),
        ]),
      },
    });
  });

  it('invokes the trigger in batches, with a batching window and partial batch failures', () => {
    const queueId = logicalId(app, 'AWS::SQS::Queue', 'FragmentEvents');
    app.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [queueId, 'Arn'] },
      FunctionName: { Ref: fnId(app, 'Trigger') },
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 30,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    imported.template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { MaximumBatchingWindowInSeconds: 10 });
    const queue = imported.json.Resources[logicalId(imported, 'AWS::SQS::Queue', 'FragmentEvents')]!.Properties;
    expect(queue.VisibilityTimeout).toBe(6 * 60 + 10);
  });
});

describe('data bucket', () => {
  it('is encrypted, TLS-only, private, versioned and access-logged', () => {
    const bucketId = logicalId(app, 'AWS::S3::Bucket', 'DataBucket');
    const logsId = logicalId(app, 'AWS::S3::Bucket', 'AccessLogs');
    app.template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        VersioningConfiguration: { Status: 'Enabled' },
        LoggingConfiguration: { DestinationBucketName: { Ref: logsId }, LogFilePrefix: 'data-bucket/' },
      }),
    });
    for (const id of [bucketId, logsId]) {
      const bucket = app.json.Resources[id]!.Properties;
      expect(bucket.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
      expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
      const [[, policy]] = resourcesOfType(app.json, 'AWS::S3::BucketPolicy').filter(([, p]) => p.Properties.Bucket.Ref === id) as [[string, CfnResourceJson]];
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
  });

  it('is not created when an existing bucket is named', () => {
    expect(resourcesOfType(imported.json, 'AWS::S3::Bucket')).toHaveLength(0);
    expect(flat(imported.json.Outputs.BucketName!.Value)).toBe('existing-data-bucket');
  });
});

describe('outputs', () => {
  it('name the bucket, the state machine, the queue, and a ready-to-run start-execution command', () => {
    const [[smId]] = stateMachine(app);
    expect(flat(app.json.Outputs.StateMachineArn!.Value)).toBe(`<${smId}>`);
    expect(flat(app.json.Outputs.QueueUrl!.Value)).toBe(`<${logicalId(app, 'AWS::SQS::Queue', 'FragmentEvents')}>`);
    expect(flat(app.json.Outputs.BucketName!.Value)).toBe(`<${logicalId(app, 'AWS::S3::Bucket', 'DataBucket')}>`);
    const example = flat(imported.json.Outputs.StartExecutionExample!.Value);
    const [[importedSm]] = stateMachine(imported);
    expect(example).toMatch(new RegExp(`^aws stepfunctions start-execution --state-machine-arn <${importedSm}> --input '(.*)'$`));
    const input = JSON.parse(/--input '(.*)'$/.exec(example)![1]!);
    expect(input).toEqual({ dataset: 's3://existing-data-bucket/datasets/sales', indexes: [{ column: 'region', type: 'bitmap' }] });
    expect(flat(app.json.Outputs.StartExecutionExample!.Value)).toContain('"dataset":"s3://<');
  });
});

describe('cdk-nag', () => {
  it('finds nothing unacknowledged in the AWS Solutions pack, for a new or an existing bucket, with or without vacuum schedules', () => {
    for (const s of [app, imported, mixed]) {
      const report = s.nag.validateScope(s.app);
      expect(report.violations.map((v) => `${v.ruleName} @ ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
      expect(report.success).toBe(true);
    }
  });

  it('gives every acknowledgment a specific written reason', () => {
    const acks: { path: string; id: string; reason: string }[] = [];
    const visit = (c: SynthesizedApp['app']['node']['root']) => {
      for (const m of c.node.metadata) {
        if (m.type !== 'aws:cdk:acknowledged-rules') continue;
        for (const [id, reason] of Object.entries(m.data as Record<string, unknown>)) acks.push({ path: c.node.path, id, reason: String((reason as { reason?: string })?.reason ?? reason) });
      }
      for (const child of c.node.children) visit(child);
    };
    visit(app.app);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(a.id, a.path).toMatch(/AwsSolutions-(IAM4|IAM5|L1|S1)/);
      expect(a.reason.length, `${a.path} ${a.id}`).toBeGreaterThan(60);
    }
    // IAM5 wildcards are acknowledged only for dataset-prefix objects, invoke qualifiers,
    // this state machine's executions, and CDK's tracing/logging statement.
    for (const a of acks.filter((x) => x.id.includes('IAM5'))) {
      expect(a.id).toMatch(/IAM5\[Resource::(<DataBucket\w+\.Arn>\/datasets\/\*\/(data|_index)\/|<\w+\.Arn>:\*\]|arn:<AWS::Partition>:states:.*:execution:ScalarIndex-BuildIndex[/:]\*\]|\*\])/);
    }
  });
});
