/**
 * Synthesize the CDK app the way `cdk synth` does (cdk.json context, cdk-nag registered), into
 * a temporary directory, with bundling skipped unless asked for.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { PROJECT_ROOT } from '../../stacks/lambda-function.js';
import { createScalarIndexApp, type ScalarIndexApp } from '../../stacks/scalar-index-app.js';

/** The `context` of cdk.json: feature flags and defaults the CLI would pass. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')).context;
}

export interface SynthesizedApp extends ScalarIndexApp {
  assembly: CloudAssembly;
  template: Template;
  /** The raw template JSON. */
  json: { Resources: Record<string, CfnResourceJson>; Outputs: Record<string, { Value: unknown }> };
  outdir: string;
  /** Remove the output directory. */
  cleanup(): void;
}

export interface CfnResourceJson {
  Type: string;
  Properties: Record<string, any>;
  DependsOn?: string[];
}

/** Synthesize once (about 1–2 s plus cdk-nag without bundling). */
export function synthScalarIndexApp(context: Record<string, unknown> = {}): SynthesizedApp {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-test-'));
  const built = createScalarIndexApp({ outdir, context: { ...cdkJsonContext(), 'aws:cdk:bundling-stacks': [], ...context } });
  const assembly = built.app.synth();
  const json = assembly.getStackByName(built.stack.stackName).template;
  return {
    ...built,
    assembly,
    json,
    template: Template.fromJSON(json),
    outdir,
    cleanup: () => fs.rmSync(outdir, { recursive: true, force: true }),
  };
}

/** Resources of one type, by logical id. */
export function resourcesOfType(json: SynthesizedApp['json'], type: string): [string, CfnResourceJson][] {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type);
}

/** Every IAM statement of every AWS::IAM::Policy and inline role policy, with the policy's logical id. */
export function iamStatements(json: SynthesizedApp['json']): { policy: string; statement: Record<string, any> }[] {
  const out: { policy: string; statement: Record<string, any> }[] = [];
  for (const [id, r] of Object.entries(json.Resources)) {
    const docs =
      r.Type === 'AWS::IAM::Policy'
        ? [r.Properties.PolicyDocument]
        : r.Type === 'AWS::IAM::Role'
          ? (r.Properties.Policies ?? []).map((p: { PolicyDocument: unknown }) => p.PolicyDocument)
          : [];
    for (const doc of docs) for (const statement of doc.Statement) out.push({ policy: id, statement });
  }
  return out;
}

export const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** `Fn::Join`/`Fn::GetAtt`/`Ref` flattened to text: `<Logical.Arn>/datasets/*`, `<AWS::Partition>`. */
export function flat(v: unknown): string {
  if (typeof v === 'string') return v;
  const o = v as Record<string, any>;
  if (o['Fn::Join']) return (o['Fn::Join'][1] as unknown[]).map(flat).join(o['Fn::Join'][0]);
  if (o['Fn::GetAtt']) return `<${o['Fn::GetAtt'].join('.')}>`;
  if (o.Ref) return `<${o.Ref}>`;
  return JSON.stringify(v);
}
