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

/** The build state machine (`BuildIndex`), leaving out the recovery's delayed-start one. */
export function buildStateMachines(json: SynthesizedApp['json']): [string, CfnResourceJson][] {
  return resourcesOfType(json, 'AWS::StepFunctions::StateMachine').filter(([id]) => /^BuildIndex[0-9A-F]{8}$/.test(id));
}

/**
 * The deployed definition: the staged definition asset with the template's
 * DefinitionSubstitutions applied, each function ARN a fake one naming its logical id.
 */
export function deployedDefinition(s: SynthesizedApp): { text: string; placeholders: Record<string, string> } {
  const machines = buildStateMachines(s.json);
  if (machines.length !== 1) throw new Error(`expected one build state machine, found ${machines.length}`);
  const [, sm] = machines[0]!;
  const staged = path.join(s.outdir, `asset.${flat(sm.Properties.DefinitionS3Location.Key)}`);
  if (!fs.existsSync(staged)) throw new Error(`staged definition ${staged} is missing`);
  const placeholders: Record<string, string> = {};
  for (const [name, value] of Object.entries(sm.Properties.DefinitionSubstitutions as Record<string, unknown>)) {
    // {"Fn::GetAtt": ["PlanDAF4E53A", "Arn"]} → a fake ARN naming the logical id.
    placeholders[name] = `arn:aws:lambda:us-east-1:123456789012:function:${flat(value).replace(/^<|\.Arn>$/g, '')}`;
  }
  let text = fs.readFileSync(staged, 'utf8');
  for (const [name, value] of Object.entries(placeholders)) text = text.split(`\${${name}}`).join(value);
  return { text, placeholders };
}
