/**
 * cdk-nag (v3) acknowledgments. cdk-nag v3 reads CDK's `Validations.of(c).acknowledge()`
 * metadata on a resource or any of its parents; a rule with several findings (IAM5 wildcards)
 * needs each finding acknowledged by its full id, `AwsSolutions-IAM5[Resource::…]`.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Acknowledge rule ids (or finding ids) on a construct, each with its reason.
 *
 * @example
 * acknowledgeFindings(accessLogBucket, { 'AwsSolutions-S1': 'This is the access log bucket itself.' });
 */
export function acknowledgeFindings(construct: IConstruct, reasons: Record<string, string>): void {
  for (const [id, reason] of Object.entries(reasons)) {
    if (reason.trim().length < 20) throw new Error(`cdk-nag acknowledgment ${id} needs a real reason`);
    Validations.of(construct).acknowledge({ id, reason });
  }
}

/**
 * How cdk-nag prints a resource or action in a finding id: tokens resolved, `Fn::GetAtt` as
 * `<LogicalId.Attr>`, `Ref` as `<LogicalId>` (or `<AWS::Partition>`), `Fn::Join` joined.
 *
 * @example
 * nagResource(stack, bucket.arnForObjects('datasets/*' + '/data/*')) // '<DataBucketE3889A50.Arn>/datasets/*' + '/data/*'
 */
export function nagResource(scope: IConstruct, value: string): string {
  return flatten(Stack.of(scope).resolve(value));
}

function flatten(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (Array.isArray(o['Fn::Join'])) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(sep);
    }
    if (Array.isArray(o['Fn::GetAtt'])) return `<${(o['Fn::GetAtt'] as string[]).join('.')}>`;
    if (typeof o.Ref === 'string') return `<${o.Ref}>`;
  }
  throw new Error(`cannot flatten ${JSON.stringify(v)} for a cdk-nag finding id`);
}
