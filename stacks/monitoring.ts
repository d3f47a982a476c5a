/**
 * Alarms and a dashboard for the build workflow, from what AWS already measures (Step
 * Functions executions, SQS queue depth, Lambda errors) and the Powertools metrics the
 * functions emit (namespace `ScalarIndex`, dimensions `service` and `step`).
 *
 * Alarms, each with the optional SNS topic (`-c alarmEmail=`) as its action:
 * - a build failed, timed out or was aborted (the recover function may still retry it);
 * - events are waiting in the dead-letter queue (the trigger failed on them five times);
 * - retries of a build are exhausted (the reconcile is now the last resort);
 * - the recover or reconcile function itself failed;
 * - a compaction failed (the build it followed is committed; segments may pile up).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';

export interface MonitoringProps {
  readonly stateMachine: sfn.StateMachine;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  /** The recover and (if any) reconcile functions. */
  readonly recoveryFunctions: readonly lambda.IFunction[];
  /** Powertools metrics namespace and service name (the functions' POWERTOOLS_* settings). */
  readonly namespace: string;
  readonly service: string;
  readonly alarmEmail?: string;
}

const PERIOD = Duration.minutes(5);

export class Monitoring extends Construct {
  readonly alarms: { buildFailures: cloudwatch.Alarm; deadLetters: cloudwatch.Alarm; retriesExhausted: cloudwatch.Alarm; recoveryErrors: cloudwatch.Alarm; compactionFailures: cloudwatch.Alarm };
  readonly dashboard: cloudwatch.Dashboard;
  /** Only with `alarmEmail`. */
  readonly topic?: sns.Topic;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    const sm = props.stateMachine;
    /** A Powertools metric of one step (function). */
    const stepMetric = (step: string, metricName: string, statistic = 'Sum', label?: string) =>
      new cloudwatch.Metric({ namespace: props.namespace, metricName, dimensionsMap: { service: props.service, step }, statistic, period: PERIOD, label: label ?? `${metricName} (${step})` });

    const failed = new cloudwatch.MathExpression({
      expression: 'failed + timedOut + aborted',
      usingMetrics: { failed: sm.metricFailed({ period: PERIOD }), timedOut: sm.metricTimedOut({ period: PERIOD }), aborted: sm.metricAborted({ period: PERIOD }) },
      label: 'Builds failed, timed out or aborted',
      period: PERIOD,
    });
    const alarm = (alarmId: string, metric: cloudwatch.IMetric, description: string) =>
      new cloudwatch.Alarm(this, alarmId, {
        metric,
        alarmDescription: description,
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    const recoveryErrors =
      props.recoveryFunctions.length === 1
        ? props.recoveryFunctions[0]!.metricErrors({ period: PERIOD, statistic: 'Sum' })
        : new cloudwatch.MathExpression({
            expression: props.recoveryFunctions.map((_, i) => `e${i}`).join(' + '),
            usingMetrics: Object.fromEntries(props.recoveryFunctions.map((fn, i) => [`e${i}`, fn.metricErrors({ period: PERIOD, statistic: 'Sum' })])),
            label: 'Recover and reconcile errors',
            period: PERIOD,
          });
    this.alarms = {
      buildFailures: alarm(
        'BuildFailures',
        failed,
        'A build execution failed, timed out or was aborted. Automatic builds are retried under <name>-r<n> (see the RetryBuild state machine); the execution history names the error.',
      ),
      deadLetters: alarm(
        'DeadLetters',
        props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum' }),
        'S3 fragment events are in the dead-letter queue: the trigger failed on them repeatedly. The reconcile still builds their datasets; inspect, then purge or redrive the queue.',
      ),
      retriesExhausted: alarm(
        'RetriesExhausted',
        stepMetric('recover', 'BuildRetriesExhausted'),
        'A failed automatic build was retried as often as buildRetries allows and failed again. The reconcile will try once more at its next run; the failing execution names the error.',
      ),
      recoveryErrors: alarm('RecoveryErrors', recoveryErrors, 'The recover or reconcile function failed: failed builds may not be retried, or datasets not reconciled. See their logs.'),
      compactionFailures: alarm(
        'CompactionFailures',
        stepMetric('merge', 'CompactionsFailed'),
        'A compaction failed after its build committed (builds keep succeeding): the next build tries again, but while it keeps failing segments pile up and queries read more files. The merge function log names the error; `scalar-index compact <dataset>` runs it by hand.',
      ),
    };

    if (props.alarmEmail) {
      this.topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'scalar-index alarms', enforceSSL: true });
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
      for (const a of Object.values(this.alarms)) {
        a.addAlarmAction(new actions.SnsAction(this.topic));
        a.addOkAction(new actions.SnsAction(this.topic));
      }
    }

    const automatic = [
      stepMetric('trigger', 'BuildsStarted', 'Sum', 'Started by S3 events'),
      stepMetric('trigger', 'BuildStartFailures', 'Sum', 'Trigger start failures'),
      stepMetric('recover', 'BuildRetriesScheduled', 'Sum', 'Retries scheduled'),
      stepMetric('recover', 'BuildRetriesExhausted', 'Sum', 'Retries exhausted'),
      stepMetric('reconcile', 'ReconcileBuildsStarted', 'Sum', 'Started by the reconcile'),
    ];
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${sanitize(Stack.of(scope).stackName)}-scalar-index`,
      defaultInterval: Duration.days(1),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Builds',
            width: 12,
            left: [
              sm.metricStarted({ period: PERIOD, label: 'Started' }),
              sm.metricSucceeded({ period: PERIOD, label: 'Succeeded' }),
              sm.metricFailed({ period: PERIOD, label: 'Failed' }),
              sm.metricTimedOut({ period: PERIOD, label: 'Timed out' }),
              sm.metricAborted({ period: PERIOD, label: 'Aborted' }),
            ],
          }),
          new cloudwatch.GraphWidget({ title: 'Automatic builds and retries', width: 12, left: automatic }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Build duration',
            width: 12,
            left: [sm.metricTime({ period: PERIOD, statistic: 'p50', label: 'Execution p50' }), sm.metricTime({ period: PERIOD, statistic: 'Maximum', label: 'Execution max' })],
            right: ['plan', 'build-part', 'merge'].map((step) => stepMetric(step, 'StepDuration', 'p90', `${step} p90`)),
            leftYAxis: { label: 'ms', showUnits: false },
            rightYAxis: { label: 'ms', showUnits: false },
          }),
          new cloudwatch.GraphWidget({
            title: 'Fragments indexed',
            width: 12,
            left: [stepMetric('plan', 'FragmentsRegistered', 'Sum', 'Registered'), stepMetric('merge', 'FragmentsIndexed', 'Sum', 'Indexed (committed)')],
            right: [stepMetric('build-part', 'RowsIndexed', 'Sum', 'Rows read by parts')],
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: 'Index bytes written', width: 8, left: [stepMetric('merge', 'IndexBytesWritten', 'Sum', 'Bytes committed')] }),
          new cloudwatch.GraphWidget({
            title: 'Step errors',
            width: 8,
            left: ['plan', 'build-part', 'merge', 'trigger', 'recover', 'reconcile'].map((step) => stepMetric(step, 'StepErrors', 'Sum', step)),
          }),
          new cloudwatch.GraphWidget({
            title: 'Fragment events',
            width: 8,
            left: [
              props.queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum', label: 'Queued' }),
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum', label: 'Dead letters' }),
            ],
          }),
        ],
        [new cloudwatch.AlarmStatusWidget({ title: 'Alarms', width: 24, alarms: Object.values(this.alarms) })],
      ],
    });
  }
}

/** Dashboard names allow letters, digits, `-` and `_`. */
function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]+/g, '-');
}
