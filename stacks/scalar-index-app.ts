/**
 * The CDK app: one ScalarIndexStack, settings from context, cdk-nag's AWS Solutions checks.
 * `stacks/app.ts` runs it for the CLI; tests build it the same way.
 */
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ScalarIndexStack } from './scalar-index-stack.js';
import { settingsFromContext } from './settings.js';

export const DEFAULT_STACK_NAME = 'ScalarIndex';

export interface ScalarIndexApp {
  app: App;
  stack: ScalarIndexStack;
  nag: AwsSolutionsChecks;
}

/**
 * Build the app. Context `stackName` renames the stack; the ScalarIndexSettings keys
 * (`bucketName`, `datasetPrefixes`, …) configure it.
 *
 * @example
 * const { app } = createScalarIndexApp();
 * app.synth();
 */
export function createScalarIndexApp(props: AppProps = {}): ScalarIndexApp {
  const app = new App(props);
  const stackName = String(app.node.tryGetContext('stackName') || DEFAULT_STACK_NAME);
  // No env: the stack is environment-agnostic, so synth needs no credentials and no lookups.
  const stack = new ScalarIndexStack(app, stackName, settingsFromContext(app.node));
  const nag = new AwsSolutionsChecks(app, { verbose: true });
  Validations.of(app).addPlugins(nag);
  return { app, stack, nag };
}
