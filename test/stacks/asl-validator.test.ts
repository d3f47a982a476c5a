/**
 * Both engines' definitions pass asl-validator (the Amazon States Language JSON schemas, path
 * syntax, ARN shapes): the shared file the local engine runs, the build definition CDK
 * deploys, and the recovery's delayed-start definition CDK generates.
 */
import aslValidator from 'asl-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localFunctionArns, sharedDefinition, substitute } from '../../lib/workflow/local-engine.js';
import { deployedDefinition, flat, resourcesOfType, synthScalarIndexApp, type SynthesizedApp } from './app-fixture.js';

const validate = (definition: unknown, options?: { checkArn?: boolean; checkPaths?: boolean }) => {
  const { isValid, errorsText } = aslValidator(definition, options);
  return isValid ? 'valid' : errorsText('\n');
};

let synth: SynthesizedApp;
beforeAll(() => {
  synth = synthScalarIndexApp();
});
afterAll(() => synth?.cleanup());

describe('asl-validator', () => {
  it('accepts the shared definition with its function ARNs filled in (the `${…}` placeholders are not ASL yet)', () => {
    expect(validate(substitute(sharedDefinition(), localFunctionArns()), { checkArn: true, checkPaths: true })).toBe('valid');
  });

  it('accepts the build definition the stack deploys', () => {
    expect(validate(JSON.parse(deployedDefinition(synth).text), { checkArn: true, checkPaths: true })).toBe('valid');
  });

  it("accepts the recovery's delayed-start definition the stack generates", () => {
    const [[, retry]] = resourcesOfType(synth.json, 'AWS::StepFunctions::StateMachine').filter(([id]) => id.startsWith('RetryBuild'));
    const text = flat(retry!.Properties.DefinitionString)
      .replaceAll('<AWS::Partition>', 'aws')
      .replace(/<BuildIndex[0-9A-F]{8}>/g, 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndex-BuildIndex');
    expect(validate(JSON.parse(text), { checkArn: true, checkPaths: true })).toBe('valid');
  });

  it('rejects a broken definition (so the checks above can fail)', () => {
    const broken = structuredClone(substitute(sharedDefinition(), localFunctionArns())) as { States: Record<string, Record<string, unknown>> };
    broken.States.Plan!.Retry = [{ ErrorEquals: 'StoreError', MaxAttempts: -1 }];
    expect(validate(broken, { checkArn: true, checkPaths: true })).not.toBe('valid');
  });
});
