/**
 * The definition CDK deploys, taken from the synthesized template, runs end to end on the
 * local engine against a real S3 server, with the real Lambda handlers from functions/, and
 * produces the same index files, byte for byte, as `scalar-index build` on the same data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLatestManifest } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { listAll } from '../../lib/store/store.js';
import { runLocalWorkflow } from '../../lib/workflow/local-engine.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { coveredIds, fragmentsOf, indexFiles } from '../support/manifest.js';
import { spawnCli } from '../support/run-cli.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { fakeContext } from '../functions/lambda.js';
import { deployedDefinition, synthScalarIndexApp } from './app-fixture.js';

const COLS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'qty', type: 'int64' },
  { name: 'price', type: 'float64' },
];
const REGIONS = ['EU', 'US', 'APAC', null, 'LATAM', '東京'];
const rows = (f: number) => {
  const n = 40 + 13 * f;
  return {
    region: Array.from({ length: n }, (_, i) => REGIONS[(i * 5 + f) % REGIONS.length]),
    qty: Array.from({ length: n }, (_, i) => (i % 9 === 0 ? null : BigInt((i * 31 + f * 7) % 50) - 10n)),
    price: Array.from({ length: n }, (_, i) => (i % 17 === 0 ? Number.NaN : i % 7 === 0 ? null : ((i * 13 + f) % 100) / 4)),
  };
};

let server: S3TestServer;
const saved = { ...process.env };

beforeAll(async () => {
  server = await startS3Server({ buckets: ['wfx'] });
  Object.assign(process.env, server.env, { POWERTOOLS_LOG_LEVEL: 'SILENT', POWERTOOLS_METRICS_DISABLED: 'true' });
  for (const prefix of ['lambda', 'cli']) {
    const store = new S3Store({ bucket: 'wfx', prefix });
    for (let f = 0; f < 6; f++) {
      const format = f % 3 === 0 ? 'parquet' : f % 3 === 1 ? 'file' : 'stream';
      const ext = format === 'parquet' ? 'parquet' : format === 'file' ? 'arrow' : 'arrows';
      await store.put(`data/f${f}.${ext}`, fragmentBytes(COLS, rows(f), { batchRows: 16, format }));
    }
  }
});
afterAll(async () => {
  process.env = saved;
  await server?.stop();
});

describe('the deployed state machine definition', () => {
  it('runs locally with the real handlers and builds the same index files as scalar-index build', async () => {
    const synth = synthScalarIndexApp();
    const definition = JSON.parse(deployedDefinition(synth).text);
    synth.cleanup();
    expect(definition.States.BuildParts.ItemReader.Resource).toBe('arn:aws:states:::s3:getObject');

    // The handlers read their settings from the environment when loaded, as on Lambda.
    const [plan, buildPart, merge] = await Promise.all([import('../../functions/plan.js'), import('../../functions/build-part.js'), import('../../functions/merge.js')]);
    const invoke = (handler: (e: unknown, c: ReturnType<typeof fakeContext>) => Promise<unknown>, name: string) => (event: unknown) => handler(event, fakeContext(name));
    const input = {
      dataset: 's3://wfx/lambda',
      indexes: [
        { column: 'region', type: 'bitmap' as const },
        { column: 'qty', type: 'bitmap' as const },
        { column: 'price', type: 'zonemap' as const, rowsPerZone: 16 },
      ],
      groupRows: 100,
    };
    const viaLambdas = await runLocalWorkflow(input, {
      definition,
      overrideStep: { Plan: invoke(plan.handler, 'plan'), BuildPart: invoke(buildPart.handler, 'build-part'), MergeAndCommit: invoke(merge.handler, 'merge') },
    });
    expect(viaLambdas.kind).toBe('committed');
    expect(viaLambdas.plan.groupCount).toBeGreaterThan(2);

    // The same data, built by the CLI in a child process with different group sizes.
    const cli = await spawnCli(['build', 's3://wfx/cli', '--index', 'region:bitmap', '--index', 'qty:bitmap', '--index', 'price:zonemap', '--rows-per-zone', '16', '--group-rows', '250', '--quiet'], {
      env: server.env as Record<string, string>,
    });
    expect(cli.code, cli.stderr).toBe(0);

    const a = new S3Store({ bucket: 'wfx', prefix: 'lambda' });
    const b = new S3Store({ bucket: 'wfx', prefix: 'cli' });
    const [ma, mb] = await Promise.all([loadLatestManifest(a), loadLatestManifest(b)]);
    const [fa, fb] = await Promise.all([fragmentsOf(a, ma), fragmentsOf(b, mb)]);
    expect(fa.map((f) => [f.id, f.path, f.rows])).toEqual(fb.map((f) => [f.id, f.path, f.rows]));
    expect(ma.indexes.map((e) => e.name).sort()).toEqual(mb.indexes.map((e) => e.name).sort());
    for (const ea of ma.indexes) {
      const eb = mb.indexes.find((e) => e.name === ea.name)!;
      expect(coveredIds(ea)).toEqual(coveredIds(eb));
      expect(ea.segments).toHaveLength(eb.segments.length);
      for (const file of indexFiles(ea)) {
        const other = indexFiles(eb).find((f) => f.name === file.name)!;
        expect(Buffer.compare(Buffer.from(await a.read(file.key)), Buffer.from(await b.read(other.key))), `${ea.name}/${file.name}`).toBe(0);
      }
    }
    for (const where of ["region = '東京'", 'qty BETWEEN -3 AND 4 AND price > 10', 'price = NaN OR region IS NULL']) {
      const x = await query('s3://wfx/lambda', where);
      const y = await query('s3://wfx/cli', where);
      expect(x.fragments, where).toEqual(y.fragments);
      expect(x.rows, where).toBeGreaterThan(0);
    }
    // Both builds cleaned up after themselves.
    expect(await listAll(a, '_index/builds/')).toEqual([]);
    expect(await listAll(b, '_index/builds/')).toEqual([]);
  });
});
