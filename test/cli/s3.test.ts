/**
 * The CLI on `s3://` datasets, in real child processes whose only settings are the endpoint
 * and credentials, against a real S3 server. Answers must equal the same build on a local
 * directory; bad input must fail with one line naming the culprit and commit nothing.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listVersions } from '../../lib/manifest/manifest.js';
import { S3Store } from '../../lib/store/s3.js';
import { fragmentBytes, writeFragment, type ColumnSpec } from '../support/dataset.js';
import { runCli, spawnCli } from '../support/run-cli.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tempDir } from '../support/tmp.js';

const COLS: ColumnSpec[] = [
  { name: 'region', type: 'utf8' },
  { name: 'price', type: 'float64' },
];
const REGIONS = ['EU', 'US', 'APAC', 'é🌍', null];
const fragmentRows = (f: number) => {
  const n = 50 + f * 7;
  return {
    region: Array.from({ length: n }, (_, i) => REGIONS[(i * 7 + f) % REGIONS.length]),
    price: Array.from({ length: n }, (_, i) => i % 11 === 0 ? null : i % 13 === 0 ? Number.NaN : ((i * 37 + f * 101) % 500) - 100),
  };
};

let server: S3TestServer;
let env: Record<string, string>;
const store = (prefix: string) => new S3Store({ bucket: 'cli', prefix }, { env });

beforeAll(async () => {
  server = await startS3Server({ buckets: ['cli'] });
  // Only the endpoint and credentials: no region, no path-style flag, nothing else.
  env = { AWS_ENDPOINT_URL_S3: server.env.AWS_ENDPOINT_URL_S3!, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
});
afterAll(async () => server?.stop());

async function seed(prefix: string, fragments: number): Promise<string> {
  const local = tempDir('ssi-cli-s3-');
  const s = store(prefix);
  for (let f = 0; f < fragments; f++) {
    const bytes = fragmentBytes(COLS, fragmentRows(f), { batchRows: 20, format: f % 2 ? 'stream' : 'file' });
    const name = `data/part-${f}.${f % 2 ? 'arrows' : 'arrow'}`;
    await s.put(name, bytes);
    await writeFragment(path.join(local, name), COLS, fragmentRows(f), { batchRows: 20, format: f % 2 ? 'stream' : 'file' });
  }
  return local;
}

describe('scalar-index on s3:// datasets', () => {
  it('build, query and inspect work with only AWS_ENDPOINT_URL_S3 and credentials set, and agree with a local build', async () => {
    const local = await seed('sales', 4);
    const uri = 's3://cli/sales';
    const built = await spawnCli(['build', uri, '--index', 'region:bitmap', '--index', 'price:zonemap', '--rows-per-zone', '16', '--json'], { env });
    expect(built.stderr).not.toMatch(/error/i);
    expect(built.code).toBe(0);
    const summary = JSON.parse(built.stdout);
    expect(summary).toMatchObject({ version: 2, fragmentsAdded: 4 });
    expect(summary.indexes.map((i: { name: string; fragmentsCovered: number }) => [i.name, i.fragmentsCovered])).toEqual([
      ['region_bitmap', 4],
      ['price_zonemap', 4],
    ]);
    expect((await runCli(['build', local, '--index', 'region:bitmap', '--index', 'price:zonemap', '--rows-per-zone', '16', '--quiet'])).code).toBe(0);

    for (const where of ["region = 'é🌍'", "region IN ('EU', 'US') AND price > 200", 'price IS NULL OR region IS NULL', 'price = NaN']) {
      const remote = await spawnCli(['query', uri, '--where', where, '--json'], { env });
      expect(remote.code, remote.stderr).toBe(0);
      const here = await runCli(['query', local, '--where', where, '--json']);
      expect(JSON.parse(remote.stdout), where).toEqual(JSON.parse(here.stdout));
    }

    const inspected = await spawnCli(['inspect', uri, '--json'], { env });
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.stdout).fragments.rows).toBe([0, 1, 2, 3].reduce((t, f) => t + 50 + f * 7, 0));

    // A second build finds nothing new and commits nothing.
    const again = await spawnCli(['build', uri, '--json'], { env });
    expect(JSON.parse(again.stdout)).toMatchObject({ version: 2, fragmentsAdded: 0 });
    expect(await listVersions(store('sales'))).toEqual([1, 2]);
  });

  it('a dataset URI with a .. segment is refused before any request', async () => {
    server.resetLog();
    const r = await spawnCli(['build', 's3://cli/sales/../other', '--index', 'region:bitmap'], { env });
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/s3:\/\/cli\/sales\/\.\.\/other.*'\.\.' segments are not allowed/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(server.count()).toBe(0);
  });

  it('an unreachable endpoint is one line naming the object and the endpoint', async () => {
    const r = await spawnCli(['query', 's3://cli/sales', '--where', "region = 'EU'"], { env: { ...env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', AWS_MAX_ATTEMPTS: '2' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    // The manifest read and the data/ listing start together: either one names itself.
    expect(r.stderr).toMatch(/s3:\/\/cli\/sales\/(_index\/versions|data)\/.*cannot reach http:\/\/127\.0\.0\.1:9: ECONNREFUSED/);
  });

  it('a corrupt fragment on S3 is named and nothing is committed', async () => {
    await seed('broken', 2);
    const s = store('broken');
    expect((await spawnCli(['build', 's3://cli/broken', '--index', 'region:bitmap', '--quiet'], { env })).code).toBe(0);
    const good = fragmentBytes(COLS, fragmentRows(9), { batchRows: 20, format: 'file' });
    await s.put('data/zz-cut.arrow', good.subarray(0, good.length - 40));
    const before = await listVersions(s);
    const r = await spawnCli(['build', 's3://cli/broken'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('s3://cli/broken/data/zz-cut.arrow');
    expect(await listVersions(s)).toEqual(before);
    const q = await spawnCli(['query', 's3://cli/broken', '--where', "region = 'EU'", '--json'], { env });
    expect(q.code).toBe(0);
    expect(JSON.parse(q.stdout).rows).toBeGreaterThan(0);
  });
});
