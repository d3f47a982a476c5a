/**
 * The CLI as installed runs from the esbuild bundle (scripts/bundle-cli.mjs), not from the
 * sources the other CLI tests run: bundled here afresh, it must build, query, inspect, scan and
 * vacuum a local dataset and an S3 one with the same answers as the sources give, and its
 * build-part worker entry must start.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../lib/store/s3.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { runCli } from '../support/run-cli.js';
import { useS3Server } from '../support/s3-env.js';
import { tempDir } from '../support/tmp.js';

const REPO = path.resolve(import.meta.dirname, '..', '..');
// Inside the repository, so the bundle finds the native addons in node_modules.
const OUT = path.join(REPO, '.vitest-tmp', `cli-bundle-${process.pid}`);
const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 's', type: 'utf8' },
];

/** Run the bundled CLI (asynchronously: the S3 test server answers from this process). */
function bundled(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(OUT, 'entry.mjs'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(() => {
  const r = spawnSync(process.execPath, [path.join(REPO, 'scripts', 'bundle-cli.mjs'), OUT], { cwd: REPO, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  fs.writeFileSync(path.join(OUT, 'entry.mjs'), "import { main } from './main.js';\nprocess.exitCode = await main(process.argv.slice(2));\n");
}, 120_000);
afterAll(() => fs.rmSync(OUT, { recursive: true, force: true }));

describe('the bundled CLI', () => {
  it('builds, queries, inspects, scans and vacuums a local dataset as the sources do', async () => {
    const root = tempDir('ssi-bundle-');
    fs.mkdirSync(path.join(root, 'data'));
    for (let f = 0; f < 3; f++) {
      const k = Array.from({ length: 500 }, (_, i) => (i * 7 + f) % 50);
      fs.writeFileSync(path.join(root, 'data', `f${f}.arrow`), fragmentBytes(COLUMNS, { k, s: k.map((x) => `v${x}`) }, { batchRows: 100, format: 'file' }));
    }
    expect((await bundled(['--help'])).stdout).toMatch(/Usage: scalar-index/);
    const built = await bundled(['build', root, '--index', 'k:bitmap', '--index', 's:zonemap', '--json', '--quiet']);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ fragmentsAdded: 3 });
    for (const args of [
      ['query', root, '--where', 'k IN (3, 4) AND s >= \'v3\'', '--json'],
      ['inspect', root, '--json'],
      ['scan', root, '--where', 'k = 3 OR s = \'v40\'', '--format', 'csv'],
      ['vacuum', root, '--dry-run', '--json', '--quiet'],
    ]) {
      const fromBundle = await bundled(args);
      const fromSource = await runCli(args);
      expect(fromBundle.code, `${args[0]}: ${fromBundle.stderr}`).toBe(0);
      expect(fromBundle.stdout, args[0]).toBe(fromSource.stdout);
    }
    const missing = await bundled(['scan', root, '--where', 'nope = 1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^scalar-index: column 'nope' not found in fragment .*f0\.arrow/);
  }, 120_000);

  it('starts its build-part worker', async () => {
    const worker = new Worker(path.join(OUT, 'part-worker.js'));
    try {
      const first = await new Promise<unknown>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(first).toEqual({ ready: true });
    } finally {
      await worker.terminate();
    }
  }, 60_000);
});

describe('the bundled CLI on S3', () => {
  const s3 = useS3Server({ buckets: ['bundle'] });
  it('builds and queries a dataset on the S3 test server (the AWS SDK is in the bundle)', async () => {
    const store = new S3Store({ bucket: 'bundle', prefix: 'ds' });
    const k = Array.from({ length: 300 }, (_, i) => i % 10);
    await store.put('data/a.arrow', fragmentBytes(COLUMNS, { k, s: k.map((x) => `v${x}`) }, { batchRows: 100, format: 'file' }));
    const env = { ...process.env, ...s3.server.env };
    const built = await bundled(['build', 's3://bundle/ds', '--index', 'k:bitmap', '--quiet'], env);
    expect(built.code, built.stderr).toBe(0);
    const q = await bundled(['query', 's3://bundle/ds', '--where', 'k = 3', '--json'], env);
    expect(q.code, q.stderr).toBe(0);
    expect(JSON.parse(q.stdout)).toMatchObject({ exact: true, rows: 30, indexesUsed: ['k_bitmap'] });
    const scanned = await bundled(['scan', 's3://bundle/ds', '--where', 'k = 3', '--columns', 'k', '--limit', '2'], env);
    expect(scanned.stdout).toBe('{"k":3}\n{"k":3}\n');
  }, 120_000);
});
