/**
 * One Lambda function of the project: a `functions/<name>.ts` handler bundled by esbuild as ESM
 * for `nodejs22.x` on x86_64, with its own log group and a role that may only write to it.
 *
 * Bundling needs Node and npm only, on any OS and CPU: nothing is compiled. Packages that
 * cannot be bundled (parquet-wasm loads its `.wasm` from its own directory; `@node-rs/crc32`
 * is a native addon) are installed beside the bundle by `npm ci`, told to pick the prebuilt
 * linux-x64 (glibc) binaries whatever machine it runs on, with install scripts off. Bitmap
 * decoding (roaring, a V8-API addon) is query-side only and is not shipped: see
 * lib/format/roaring.ts. stacks/bundle-check.ts then checks each bundle and fails the synth
 * if one lacks what it needs.
 */
import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack, type AssetStaging } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, type BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { checkBundle } from './bundle-check.js';
import { acknowledgeFindings } from './nag.js';

/** The repository root (this file is `<root>/stacks/lambda-function.ts`). */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');

export const LAMBDA_RUNTIME = Runtime.NODEJS_22_X;
/** x86_64: the prebuilt binaries npm is told to install are linux-x64 ones. */
export const LAMBDA_ARCHITECTURE = Architecture.X86_64;

/**
 * `require` for CommonJS dependencies inside the ESM bundle (esbuild turns their `require()`
 * calls into `__require`, which needs a real one).
 */
export const ESM_REQUIRE_BANNER = "import { createRequire as __scalarIndexCreateRequire } from 'node:module'; const require = __scalarIndexCreateRequire(import.meta.url);";

/** Packages installed beside the bundle instead of bundled (see REQUIRED_FILES in bundle-check.ts). */
export const NATIVE_MODULES = {
  /** Reads `parquet_wasm_bg.wasm` from `__dirname` at import time. */
  parquetWasm: 'parquet-wasm',
  /**
   * Native CRC32C (N-API, a prebuilt binary per platform, picked by npm at install). Without it
   * lib/format/crc32c.ts falls back to its JavaScript implementation, 15× slower.
   */
  crc32: '@node-rs/crc32',
} as const;

/**
 * npm settings for the `npm ci` beside each bundle: Lambda's platform instead of this
 * machine's for optional platform packages (npm 10.3+), no install scripts (nothing may be
 * compiled here), and the local cache first.
 */
export const LAMBDA_NPM_ENVIRONMENT: Readonly<Record<string, string>> = {
  npm_config_os: 'linux',
  npm_config_cpu: 'x64',
  npm_config_libc: 'glibc',
  npm_config_ignore_scripts: 'true',
  npm_config_prefer_offline: 'true',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
  npm_config_update_notifier: 'false',
};

export interface ScalarIndexFunctionProps {
  /** The handler file, `functions/<entry>.ts`, exporting `handler`. */
  readonly entry: string;
  readonly description: string;
  readonly memorySize: number;
  readonly timeout: Duration;
  readonly environment?: Record<string, string>;
  /** Installed with `npm ci` beside the bundle; see {@link NATIVE_MODULES}. */
  readonly nodeModules: readonly string[];
  /** Default one month. */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Create the function, its log group and its role. The role gets only `logs:CreateLogStream`
 * and `logs:PutLogEvents` on that log group; callers grant the rest.
 *
 * @example
 * const fn = scalarIndexFunction(this, 'BuildPart', {
 *   entry: 'build-part', description: 'Index one fragment group', memorySize: 3008,
 *   timeout: Duration.minutes(15), nodeModules: ['parquet-wasm', '@node-rs/crc32'],
 * });
 */
export function scalarIndexFunction(scope: Construct, id: string, props: ScalarIndexFunctionProps): NodejsFunction {
  const entry = path.join(PROJECT_ROOT, 'functions', `${props.entry}.ts`);
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
    // Operational logs go with the stack; the indexes themselves live in the data bucket.
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, `${id}Role`, {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description: `Runs the ${props.entry} function of ${id}`,
  });
  logGroup.grantWrite(role);

  const fn = new NodejsFunction(scope, id, {
    entry,
    handler: 'handler',
    description: props.description,
    runtime: LAMBDA_RUNTIME,
    architecture: LAMBDA_ARCHITECTURE,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    environment: {
      NODE_OPTIONS: '--enable-source-maps',
      ...props.environment,
    },
    projectRoot: PROJECT_ROOT,
    depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
    bundling: bundlingOptions(props.nodeModules),
  });
  acknowledgeFindings(fn, {
    'AwsSolutions-L1':
      'nodejs22.x on purpose: every function shares one runtime, the one test/stacks/bundle.test.ts runs the bundles on (a Node 22 binary); move them to nodejs24.x together once that test runs them on Node 24.',
  });
  // Bundled while the function was built (unless this stack skips bundling): check it now,
  // so a bundle that could not load on Lambda fails the synth.
  if (Stack.of(fn).bundlingRequired) {
    const staging = fn.node.findChild('Code').node.findChild('Stage') as AssetStaging;
    checkBundle(id, staging.absoluteStagedPath, props.nodeModules);
  }
  return fn;
}

/** esbuild + `npm ci` settings shared by every function. */
export function bundlingOptions(nodeModules: readonly string[]): BundlingOptions {
  return {
    format: OutputFormat.ESM,
    target: 'node22',
    // Prefer packages' ESM builds; CJS-only ones go through the banner's `require`.
    mainFields: ['module', 'main'],
    banner: ESM_REQUIRE_BANNER,
    // Error class names are the Step Functions error names that Retry/Catch match
    // (`this.name = new.target.name`): esbuild must not rename classes.
    keepNames: true,
    minify: false,
    sourceMap: true,
    sourcesContent: false,
    // The SDK version the project pins and tests with, not whatever the runtime ships.
    bundleAwsSDK: true,
    // Empty means none: CDK would otherwise still run `npm ci` for an empty package.json.
    nodeModules: nodeModules.length > 0 ? [...nodeModules] : undefined,
    environment: { ...LAMBDA_NPM_ENVIRONMENT },
  };
}
