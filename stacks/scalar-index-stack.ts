/**
 * The serverless deployment: new fragments in S3 → SQS → trigger Lambda → a Standard Step
 * Functions execution of `lib/workflow/state-machine.asl.json` (the same file the local engine
 * runs) → plan / build-part (Distributed Map) / merge Lambdas, which read `<root>/data/` and
 * write `<root>/_index/` of the data bucket.
 *
 * Around it: a failed automatic build is started again under a new name after a back-off
 * (EventBridge → recover Lambda → a small delayed-start state machine), a periodic reconcile
 * starts a build for any dataset with fragments no build took care of, alarms watch failed
 * builds, the dead-letter queue and exhausted retries, and a dashboard shows the builds. A
 * vacuum Lambda, run daily by one EventBridge rule per literal dataset root, deletes what no
 * retained index version references.
 */
import * as path from 'node:path';
import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { SqsDestination } from 'aws-cdk-lib/aws-s3-notifications';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct, IConstruct } from 'constructs';
import { exampleDatasetRoot, FRAGMENT_SUFFIX_FILTERS, lambdaDatasetPrefixes, parseDatasetPrefixes, type DatasetPrefix } from './dataset-prefixes.js';
import { NATIVE_MODULES, PROJECT_ROOT, scalarIndexFunction } from './lambda-function.js';
import { Monitoring } from './monitoring.js';
import { resolveSettings, type ResolvedSettings, type ScalarIndexSettings } from './settings.js';
import { acknowledgeFindings, nagResource } from './nag.js';

export interface ScalarIndexStackProps extends StackProps, ScalarIndexSettings {}

/** The workflow definition, deployed unchanged (CDK only substitutes the three ARNs). */
export const STATE_MACHINE_DEFINITION_FILE = path.join(PROJECT_ROOT, 'lib', 'workflow', 'state-machine.asl.json');

export const SERVICE_NAME = 'scalar-index';
export const METRICS_NAMESPACE = 'ScalarIndex';

/**
 * Packages installed beside each function's bundle. The workflow steps load parquet-wasm
 * (Parquet fragments) and the native CRC32C (they checksum every index file they write and
 * read). Bitmaps travel serialized through plan, build-part and merge, so roaring is not
 * shipped (lib/format/roaring.ts). The trigger only routes keys (lib/fragments/keys.ts) and
 * needs none; test/stacks/bundle.test.ts runs every bundle under Node 22.
 */
export const FUNCTION_NODE_MODULES = {
  plan: [NATIVE_MODULES.parquetWasm, NATIVE_MODULES.crc32],
  buildPart: [NATIVE_MODULES.parquetWasm, NATIVE_MODULES.crc32],
  // Merge reads part and index files (Arrow IPC), never a fragment: no parquet-wasm.
  merge: [NATIVE_MODULES.crc32],
  trigger: [],
  // Lists, reads manifests (zod, a CRC32C of a few kB: the JavaScript one) and deletes.
  vacuum: [],
  // Decides and starts executions; no S3.
  recover: [],
  // Lists and reads manifests, like vacuum.
  reconcile: [],
} as const satisfies Record<string, readonly string[]>;

const TRIGGER_TIMEOUT = Duration.seconds(60);
/** The reconcile leaves fragments younger than this (or its interval, if longer) to the build their upload started. */
export const RECONCILE_MIN_SETTLE_MINUTES = 60;
/** How often each literal dataset root is vacuumed. */
export const VACUUM_SCHEDULE = events.Schedule.rate(Duration.days(1));
/** Vacuum's age threshold (`VACUUM_OLDER_THAN`): nothing younger is deleted, so builds in flight are safe. */
export const VACUUM_OLDER_THAN = '7d';
/** Receives before a message that keeps failing moves to the dead-letter queue. */
const MAX_RECEIVE_COUNT = 5;

/** S3 read/write levels a function gets on each dataset root. */
interface DatasetAccess {
  /** `s3:GetObject` on `<root>/data/*`. */
  readonly readData: boolean;
  /** `s3:GetObject` (and listing) under `<root>/<readIndex>`: `_index/*`, or `_index/builds/*` for build-part. */
  readonly readIndex: string;
  /** `s3:PutObject` + `s3:AbortMultipartUpload` under `<root>/<writeIndex>` (e.g. `_index/*`). */
  readonly writeIndex?: string;
  /** `s3:DeleteObject` on `<root>/_index/*`. */
  readonly deleteIndex: boolean;
}

/** What S3 asks of a bucket's KMS key, per use (SSE-KMS). */
const KMS_READ = ['kms:Decrypt'];
const KMS_WRITE = ['kms:Decrypt', 'kms:GenerateDataKey'];

export class ScalarIndexStack extends Stack {
  readonly settings: ResolvedSettings;
  readonly datasetPrefixes: readonly DatasetPrefix[];
  readonly bucket: s3.IBucket;
  readonly stateMachine: sfn.StateMachine;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly functions: {
    plan: NodejsFunction;
    buildPart: NodejsFunction;
    merge: NodejsFunction;
    trigger: NodejsFunction;
    vacuum: NodejsFunction;
    recover: NodejsFunction;
    reconcile?: NodejsFunction;
  };
  /** One daily rule per literal dataset root (none for wildcard prefixes), keyed by root. */
  readonly vacuumSchedules: ReadonlyMap<string, events.Rule>;
  /** Waits, then starts the build again under its retry name (started by the recover function). */
  readonly retryStateMachine: sfn.StateMachine;
  /** Failed, timed-out and aborted builds → the recover function. */
  readonly buildFailedRule: events.Rule;
  /** The reconcile's schedule, unless `reconcileIntervalMinutes` is 0. */
  readonly reconcileSchedule?: events.Rule;
  readonly monitoring: Monitoring;
  /** The existing bucket's SSE-KMS key (`bucketKmsKeyArn`), if any. */
  readonly bucketKey?: kms.IKey;

  constructor(scope: Construct, id: string, props: ScalarIndexStackProps = {}) {
    super(scope, id, { description: 'serverless-scalar-index: zone-map and bitmap indexes over columnar fragments in S3', ...props });
    const settings = (this.settings = resolveSettings(props));
    const prefixes = (this.datasetPrefixes = parseDatasetPrefixes(settings.datasetPrefixes));

    this.bucket = settings.bucketName ? s3.Bucket.fromBucketName(this, 'DataBucket', settings.bucketName) : this.createDataBucket();
    if (settings.bucketKmsKeyArn) this.bucketKey = kms.Key.fromKeyArn(this, 'DataBucketKey', settings.bucketKmsKeyArn);

    // --- The three workflow functions -------------------------------------------------------
    const common = { POWERTOOLS_SERVICE_NAME: SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE };
    const plan = scalarIndexFunction(this, 'Plan', {
      entry: 'plan',
      description: 'scalar-index Plan: register new fragments, write the group list for the Distributed Map',
      memorySize: 1769, // one full vCPU: plan parses the footers and batch headers of new fragments, 16 at a time
      timeout: Duration.minutes(10),
      nodeModules: FUNCTION_NODE_MODULES.plan,
      environment: {
        ...common,
        MAX_CONCURRENCY: String(settings.maxConcurrency),
        // Builds started by S3 events must not be blocked forever by one bad file.
        SKIP_BAD_FRAGMENTS: 'true',
        ...(settings.groupRows !== undefined && { GROUP_ROWS: String(settings.groupRows) }),
      },
    });
    const buildPart = scalarIndexFunction(this, 'BuildPart', {
      entry: 'build-part',
      description: 'scalar-index BuildPart: index one fragment group into part files',
      memorySize: settings.buildPartMemoryMb,
      timeout: Duration.minutes(15),
      nodeModules: FUNCTION_NODE_MODULES.buildPart,
      environment: common,
    });
    const merge = scalarIndexFunction(this, 'Merge', {
      entry: 'merge',
      description: 'scalar-index MergeAndCommit: merge the parts and commit a new index version',
      memorySize: 3008,
      timeout: Duration.minutes(15),
      nodeModules: FUNCTION_NODE_MODULES.merge,
      environment: common,
    });

    // Least privilege per step (see lib/workflow): plan registers fragments and writes the
    // manifest and the build's plan; build-part reads its build's plan and writes only its
    // build's part files; merge reads parts and existing indexes, writes new index files and
    // the manifest, and deletes the build's leftovers. Only plan and build-part read fragments.
    this.grantDatasetAccess(plan, { readData: true, readIndex: '_index/*', writeIndex: '_index/*', deleteIndex: false });
    this.grantDatasetAccess(buildPart, { readData: true, readIndex: '_index/builds/*', writeIndex: '_index/builds/*', deleteIndex: false });
    this.grantDatasetAccess(merge, { readData: false, readIndex: '_index/*', writeIndex: '_index/*', deleteIndex: true });

    // --- The state machine -------------------------------------------------------------------
    // A fixed name lets the role's Distributed Map permissions (start/describe/stop its own
    // child executions) name the state machine's ARN without referring to the resource, which
    // would be a circular dependency (state machine → role policy → state machine).
    const stateMachineName = `${this.stackName}-BuildIndex`.slice(0, 80);
    const stateMachineLogs = new logs.LogGroup(this, 'StateMachineLogs', {
      // The /aws/vendedlogs/ prefix keeps CloudWatch Logs resource policies small.
      logGroupName: `/aws/vendedlogs/states/${stateMachineName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'BuildIndex', {
      stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromFile(STATE_MACHINE_DEFINITION_FILE),
      definitionSubstitutions: {
        PlanFunctionArn: plan.functionArn,
        BuildPartFunctionArn: buildPart.functionArn,
        MergeFunctionArn: merge.functionArn,
      },
      tracingEnabled: true,
      logs: { destination: stateMachineLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    for (const fn of [plan, buildPart, merge]) fn.grantInvoke(this.stateMachine);
    this.grantDistributedMap(stateMachineName);

    // --- S3 events → SQS → trigger -----------------------------------------------------------
    this.deadLetterQueue = new sqs.Queue(this, 'FragmentEventsDlq', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, 'FragmentEvents', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // AWS guidance for Lambda event sources: at least 6× the function timeout, plus the
      // batching window during which received messages wait for the batch to fill.
      visibilityTimeout: Duration.seconds(6 * TRIGGER_TIMEOUT.toSeconds() + settings.batchingWindowSeconds),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
    });
    for (const prefix of prefixes) {
      for (const suffix of FRAGMENT_SUFFIX_FILTERS) {
        this.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, new SqsDestination(this.queue), { prefix: prefix.notificationPrefix, suffix });
      }
    }

    const trigger = scalarIndexFunction(this, 'Trigger', {
      entry: 'trigger',
      description: 'scalar-index Trigger: start one build per dataset with new fragments (S3 events via SQS)',
      memorySize: 512,
      timeout: TRIGGER_TIMEOUT,
      nodeModules: FUNCTION_NODE_MODULES.trigger,
      environment: {
        ...common,
        STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
        DATASET_PREFIXES: lambdaDatasetPrefixes(prefixes),
      },
    });
    this.stateMachine.grantStartExecution(trigger);
    trigger.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: settings.batchSize,
        maxBatchingWindow: Duration.seconds(settings.batchingWindowSeconds),
        reportBatchItemFailures: true,
        // A few concurrent triggers are plenty: execution names dedupe repeated events anyway.
        maxConcurrency: 2,
      }),
    );

    const { fn: vacuum, schedules } = this.createVacuum(prefixes, common);
    this.vacuumSchedules = schedules;

    // --- Recovery: retries of failed automatic builds, and the reconcile ----------------------
    const recovery = this.createRecovery(settings, common);
    this.retryStateMachine = recovery.retryStateMachine;
    this.buildFailedRule = recovery.rule;
    this.reconcileSchedule = recovery.reconcileSchedule;
    this.functions = { plan, buildPart, merge, trigger, vacuum, recover: recovery.recover, ...(recovery.reconcile && { reconcile: recovery.reconcile }) };

    // --- Alarms and dashboard -----------------------------------------------------------------
    this.monitoring = new Monitoring(this, 'Monitoring', {
      stateMachine: this.stateMachine,
      queue: this.queue,
      deadLetterQueue: this.deadLetterQueue,
      recoveryFunctions: [recovery.recover, ...(recovery.reconcile ? [recovery.reconcile] : [])],
      namespace: METRICS_NAMESPACE,
      service: SERVICE_NAME,
      alarmEmail: settings.alarmEmail,
    });

    // SSE-KMS of an existing bucket: whoever reads or writes objects needs the key, and the
    // state machine reads the Distributed Map's item list.
    if (this.bucketKey) {
      for (const fn of [plan, buildPart, merge]) this.grantBucketKey(fn, KMS_WRITE);
      for (const fn of [vacuum, ...(recovery.reconcile ? [recovery.reconcile] : [])]) this.grantBucketKey(fn, KMS_READ);
      this.grantBucketKey(this.stateMachine, KMS_READ);
    }

    this.addOutputs(prefixes);
    this.acknowledgeNagFindings();
  }

  /**
   * Recovery of failed automatic builds (lib/workflow/recovery.ts) and the periodic reconcile
   * (lib/workflow/reconcile.ts), outside the build definition so that it stays the shared file.
   *
   * - EventBridge sends every FAILED, TIMED_OUT or ABORTED execution of the build state machine
   *   to the recover function, which decides (automatic builds only, `buildRetries` at most) and
   *   starts the retry state machine: a Wait for the back-off, then StartExecution of the build
   *   under `<name>-r<n>`. The wait costs nothing while it runs; an execution name per retry
   *   makes every step idempotent.
   * - Every `reconcileIntervalMinutes`, the reconcile function checks each dataset (patterns
   *   expanded) and starts a build where fragments are unregistered or not covered.
   */
  private createRecovery(
    settings: ResolvedSettings,
    common: Record<string, string>,
  ): { retryStateMachine: sfn.StateMachine; recover: NodejsFunction; rule: events.Rule; reconcile?: NodejsFunction; reconcileSchedule?: events.Rule } {
    const retryStateMachineName = `${this.stackName}-RetryBuild`.slice(0, 80);
    const backoff = new sfn.Wait(this, 'RetryBackoff', { comment: 'The back-off the recover function chose', time: sfn.WaitTime.secondsPath('$.waitSeconds') });
    const start = new tasks.StepFunctionsStartExecution(this, 'StartRetry', {
      comment: 'The failed build again, under its retry name, with input {"dataset"} as the trigger gives it',
      stateMachine: this.stateMachine,
      name: sfn.JsonPath.stringAt('$.name'),
      input: sfn.TaskInput.fromObject({ dataset: sfn.JsonPath.stringAt('$.dataset') }),
      integrationPattern: sfn.IntegrationPattern.REQUEST_RESPONSE,
      resultPath: sfn.JsonPath.DISCARD,
    });
    start.addRetry({
      errors: ['StepFunctions.ExecutionLimitExceededException', 'StepFunctions.SdkClientException', 'StepFunctions.AWSStepFunctionsException'],
      interval: Duration.seconds(10),
      maxAttempts: 6,
      backoffRate: 2,
      jitterStrategy: sfn.JitterType.FULL,
    });
    // A repeated start of the same retry (a redelivered event) finds its name taken: done.
    start.addCatch(new sfn.Succeed(this, 'RetryAlreadyStarted'), { errors: ['StepFunctions.ExecutionAlreadyExistsException'] });
    const retryLogs = new logs.LogGroup(this, 'RetryBuildLogs', {
      logGroupName: `/aws/vendedlogs/states/${retryStateMachineName}`,
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const retryStateMachine = new sfn.StateMachine(this, 'RetryBuild', {
      stateMachineName: retryStateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      comment: 'scalar-index: wait out the back-off, then start a failed automatic build again under its retry name',
      definitionBody: sfn.DefinitionBody.fromChainable(backoff.next(start)),
      tracingEnabled: true,
      logs: { destination: retryLogs, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });

    const recover = scalarIndexFunction(this, 'Recover', {
      entry: 'recover',
      description: 'scalar-index Recover: schedule a retry of a failed automatic build under a new execution name',
      memorySize: 256,
      timeout: Duration.seconds(30),
      nodeModules: FUNCTION_NODE_MODULES.recover,
      environment: {
        ...common,
        RETRY_STATE_MACHINE_ARN: retryStateMachine.stateMachineArn,
        BUILD_RETRIES: String(settings.buildRetries),
      },
    });
    retryStateMachine.grantStartExecution(recover);
    const rule = new events.Rule(this, 'BuildFailedRule', {
      description: 'scalar-index: failed, timed-out or aborted builds, for the recover function to retry',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [this.stateMachine.stateMachineArn], status: ['FAILED', 'TIMED_OUT', 'ABORTED'] },
      },
      targets: [new targets.LambdaFunction(recover, { retryAttempts: 8, maxEventAge: Duration.hours(12) })],
    });

    if (settings.reconcileIntervalMinutes === 0) return { retryStateMachine, recover, rule };
    const reconcile = scalarIndexFunction(this, 'Reconcile', {
      entry: 'reconcile',
      description: 'scalar-index Reconcile: start a build for every dataset with unregistered or uncovered fragments',
      memorySize: 512,
      timeout: Duration.minutes(10),
      nodeModules: FUNCTION_NODE_MODULES.reconcile,
      environment: {
        ...common,
        STATE_MACHINE_ARN: this.stateMachine.stateMachineArn,
        BUCKET_NAME: this.bucket.bucketName,
        DATASET_PREFIXES: lambdaDatasetPrefixes(this.datasetPrefixes),
        // A fragment younger than this belongs to the build its upload started.
        RECONCILE_SETTLE_MINUTES: String(Math.max(RECONCILE_MIN_SETTLE_MINUTES, settings.reconcileIntervalMinutes)),
      },
    });
    this.stateMachine.grantStartExecution(reconcile);
    this.grantReconcileAccess(reconcile);
    const reconcileSchedule = new events.Rule(this, 'ReconcileSchedule', {
      description: `scalar-index: every ${settings.reconcileIntervalMinutes} minutes, start a build for each dataset with fragments no build took care of`,
      schedule: events.Schedule.rate(Duration.minutes(settings.reconcileIntervalMinutes)),
      // The whole scheduled event: its `time` names the builds, so a redelivery starts none.
      targets: [new targets.LambdaFunction(reconcile, { retryAttempts: 2, maxEventAge: Duration.minutes(settings.reconcileIntervalMinutes) })],
    });
    return { retryStateMachine, recover, rule, reconcile, reconcileSchedule };
  }

  /**
   * The reconcile's S3 access: list `<root>/data/` and `<root>/_index/`, read the manifests
   * (`_index/versions/*`) and nothing else. A pattern (`datasets/*`) also lists its base
   * (`datasets/`, that exact prefix), to find the roots under it.
   */
  private grantReconcileAccess(fn: NodejsFunction): void {
    const objects = (suffix: string) => this.datasetPrefixes.map((p) => this.bucket.arnForObjects(`${p.root}/${suffix}`));
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: objects('_index/versions/*') }));
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: {
          StringLike: {
            's3:prefix': this.datasetPrefixes.flatMap((p) => [`${p.root}/data/*`, `${p.root}/_index/*`, ...(p.wildcard ? [p.notificationPrefix] : [])]),
          },
        },
      }),
    );
    this.acknowledgeObjectWildcards(fn.role!, ['_index/versions/*']);
  }

  /** The existing bucket's KMS key, for S3's use on this principal's behalf only. */
  private grantBucketKey(grantee: iam.IGrantable, actions: readonly string[]): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [this.bucketKey!.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${this.region}.amazonaws.com` } },
      }),
    );
  }

  /**
   * The vacuum function and its daily schedule. Each literal dataset root gets a rule whose input
   * is `{"dataset": "s3://<bucket>/<root>"}`. A wildcard prefix (`datasets/*`) names no dataset,
   * so it gets no rule: invoke the function with `{"dataset": …}` for a root under it, or add a
   * rule with that input (the function's IAM already covers every root the pattern matches).
   */
  private createVacuum(prefixes: readonly DatasetPrefix[], common: Record<string, string>): { fn: NodejsFunction; schedules: Map<string, events.Rule> } {
    const literal = prefixes.filter((p) => !p.wildcard);
    const datasetOf = (p: DatasetPrefix) => `s3://${this.bucket.bucketName}/${p.root}`;
    const fn = scalarIndexFunction(this, 'Vacuum', {
      entry: 'vacuum',
      description: 'scalar-index Vacuum: delete orphaned builds, unreferenced index files and manifest versions past retention',
      memorySize: 1024,
      timeout: Duration.minutes(15),
      nodeModules: FUNCTION_NODE_MODULES.vacuum,
      environment: {
        ...common,
        VACUUM_OLDER_THAN,
        // What an invocation without a dataset vacuums.
        VACUUM_DATASETS: literal.map(datasetOf).join(','),
      },
    });
    this.grantVacuumAccess(fn);
    const schedules = new Map<string, events.Rule>();
    for (const p of literal) {
      const rule = new events.Rule(this, `VacuumSchedule-${p.root.replace(/[^A-Za-z0-9]+/g, '-')}`, {
        description: `scalar-index: vacuum ${p.root}/_index/ daily`,
        schedule: VACUUM_SCHEDULE,
        targets: [
          new targets.LambdaFunction(fn, {
            event: events.RuleTargetInput.fromObject({ dataset: datasetOf(p) }),
            // Vacuum is idempotent: a failed run is retried, and tomorrow's run catches up anyway.
            retryAttempts: 2,
            maxEventAge: Duration.hours(6),
          }),
        ],
      });
      schedules.set(p.root, rule);
    }
    return { fn, schedules };
  }

  /**
   * Vacuum's S3 access, narrower than merge's: list `<root>/_index/`, read only the manifests
   * (`_index/versions/*`), and delete under `<root>/_index/*`. It never reads index files or
   * fragments and never writes.
   */
  private grantVacuumAccess(fn: NodejsFunction): void {
    const objects = (suffix: string) => this.datasetPrefixes.map((p) => this.bucket.arnForObjects(`${p.root}/${suffix}`));
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: objects('_index/versions/*') }));
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: objects('_index/*') }));
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': this.datasetPrefixes.map((p) => `${p.root}/_index/*`) } },
      }),
    );
    this.acknowledgeObjectWildcards(fn.role!, ['_index/versions/*', '_index/*']);
  }

  /** The data bucket, with an access-log bucket beside it. */
  private createDataBucket(): s3.Bucket {
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeFindings(accessLogs, {
      'AwsSolutions-S1': 'This is the server access log bucket of the data bucket; logging its own access would recurse.',
    });
    return new s3.Bucket(this, 'DataBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'data-bucket/',
      lifecycleRules: [
        // Vacuumed index files and overwritten objects stay recoverable for a while, then go.
        { noncurrentVersionExpiration: Duration.days(30) },
        // A build-part or merge that dies mid-upload leaves its multipart upload behind.
        { abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      // Datasets and their indexes outlive the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** Grant one function S3 access to every dataset root, scoped to `data/` and `_index/`. */
  private grantDatasetAccess(fn: NodejsFunction, access: DatasetAccess): void {
    const objects = (suffix: string) => this.datasetPrefixes.map((p) => this.bucket.arnForObjects(`${p.root}/${suffix}`));
    const statements: iam.PolicyStatement[] = [];
    const readable = [...(access.readData ? objects('data/*') : []), ...objects(access.readIndex)];
    statements.push(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: readable }));
    if (access.writeIndex) {
      statements.push(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: objects(access.writeIndex) }));
    }
    if (access.deleteIndex) statements.push(new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: objects('_index/*') }));
    const patterns = new Set([...(access.readData ? ['data/*'] : []), access.readIndex, ...(access.writeIndex ? [access.writeIndex] : []), ...(access.deleteIndex ? ['_index/*'] : [])]);
    this.acknowledgeObjectWildcards(fn.role!, [...patterns]);
    // Listing: fragment discovery (`<root>/data/`) and what it reads under `<root>/_index/`.
    const listPrefixes = this.datasetPrefixes.flatMap((p) => [...(access.readData ? [`${p.root}/data/*`] : []), `${p.root}/${access.readIndex}`]);
    statements.push(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': listPrefixes } },
      }),
    );
    for (const s of statements) fn.addToRolePolicy(s);
  }

  /**
   * What a Distributed Map needs beyond invoking the functions: read its item list from S3
   * (ItemReader `s3:getObject` of `<root>/_index/builds/<id>/…`), write its children's results
   * there (ResultWriter, in multipart uploads: `<id>/map-results/…`, so the map's own output
   * stays a small pointer however many groups ran), and start, describe and stop its child
   * executions, which run this same state machine.
   */
  private grantDistributedMap(stateMachineName: string): void {
    const role = this.stateMachine.role;
    const builds = this.datasetPrefixes.map((p) => this.bucket.arnForObjects(`${p.root}/_index/builds/*`));
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: builds }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:ListMultipartUploadParts', 's3:AbortMultipartUpload'], resources: builds }));
    const arn = (resource: string, resourceName: string) =>
      this.formatArn({ service: 'states', resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [arn('stateMachine', stateMachineName)] }));
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        // Child executions are `execution:<name>/<map run label>:<id>`: only those.
        resources: [arn('execution', `${stateMachineName}/*`)],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['states:RedriveExecution'], resources: [arn('execution', `${stateMachineName}/*`)] }),
    );
    this.acknowledgeObjectWildcards(this.stateMachine, ['_index/builds/*']);
    acknowledgeFindings(this.stateMachine, {
      [`AwsSolutions-IAM5[Resource::${nagResource(this, arn('execution', `${stateMachineName}/*`))}]`]:
        'Distributed Map child executions get generated names (execution:<state machine>/<map run label>:<id>); the wildcard covers only the child executions of this state machine.',
    });
  }

  /** IAM5: object wildcards under the dataset roots are the design (see grantDatasetAccess). */
  private acknowledgeObjectWildcards(scope: IConstruct, patterns: readonly string[]): void {
    const reasons: Record<string, string> = {};
    for (const p of this.datasetPrefixes) {
      for (const pattern of patterns) {
        const resource = nagResource(this, this.bucket.arnForObjects(`${p.root}/${pattern}`));
        reasons[`AwsSolutions-IAM5[Resource::${resource}]`] =
          `Object keys are only known at run time (fragments are discovered under <root>/data/, index files get generated names under <root>/_index/); the wildcard is confined to ${pattern} of the configured dataset prefix "${p.pattern}".`;
      }
    }
    acknowledgeFindings(scope, reasons);
  }

  private addOutputs(prefixes: readonly DatasetPrefix[]): void {
    new CfnOutput(this, 'BucketName', { value: this.bucket.bucketName, description: 'Data bucket: fragments under <root>/data/, indexes under <root>/_index/' });
    new CfnOutput(this, 'StateMachineArn', { value: this.stateMachine.stateMachineArn, description: 'The build workflow' });
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl, description: 'S3 fragment events waiting for the trigger' });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl, description: 'Fragment events the trigger failed on repeatedly' });
    new CfnOutput(this, 'RetryStateMachineArn', { value: this.retryStateMachine.stateMachineArn, description: 'Delayed restarts of failed automatic builds' });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName, description: 'CloudWatch dashboard: builds, failures, duration, fragments indexed, bytes written' });
    if (this.monitoring.topic) new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn, description: 'Alarm notifications (confirm the email subscription)' });
    const input = JSON.stringify({ dataset: `s3://BUCKET/${exampleDatasetRoot(prefixes[0]!)}`, indexes: [{ column: 'region', type: 'bitmap' }] });
    new CfnOutput(this, 'StartExecutionExample', {
      description: 'Build or update indexes by hand (edit the dataset and indexes)',
      value: `aws stepfunctions start-execution --state-machine-arn ${this.stateMachine.stateMachineArn} --input '${input.replace('BUCKET', this.bucket.bucketName)}'`,
    });
  }

  /** cdk-nag findings that are deliberate, each with its reason. */
  private acknowledgeNagFindings(): void {
    const reasons: Record<string, string> = {
      'AwsSolutions-IAM5[Resource::*]':
        'Added by CDK for state machine tracing and logging: X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs vended log delivery (*LogDelivery, DescribeLogGroups, *ResourcePolicies) do not support resource-level permissions.',
    };
    for (const fn of [this.functions.plan, this.functions.buildPart, this.functions.merge]) {
      reasons[`AwsSolutions-IAM5[Resource::${nagResource(this, fn.functionArn)}:*]`] =
        `Added by grantInvoke: the qualified ARNs (versions and aliases) of the ${fn.node.id} function only, so the workflow may invoke a published version.`;
    }
    acknowledgeFindings(this.stateMachine, reasons);
    acknowledgeFindings(this.retryStateMachine, {
      'AwsSolutions-IAM5[Resource::*]':
        'Added by CDK for state machine tracing and logging: X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs vended log delivery (*LogDelivery, DescribeLogGroups, *ResourcePolicies) do not support resource-level permissions.',
    });

    // CDK's singleton that writes the bucket's notification configuration at deploy time.
    for (const child of this.node.children) {
      if (!child.node.id.startsWith('BucketNotificationsHandler')) continue;
      acknowledgeFindings(child, {
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]':
          'CDK-provided BucketNotificationsHandler (runs only during deployment to put the notification configuration); its role is not configurable through the L2 and the managed policy only allows writing its own logs.',
      });
    }
  }
}
