/**
 * The remote read budget, counted at a real S3 server: a bitmap point query costs the
 * manifest read plus at most 3 ranged GETs whatever the index size, and a zone-map range
 * query reads the zone-map file only, never a fragment.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { build } from '../../lib/workflow/build.js';
import { writeSampleDataset } from '../../scripts/sample-data.js';
import { startS3Server, type S3RequestRecord, type S3TestServer } from '../support/s3-server.js';
import { tempDir } from '../support/tmp.js';

let server: S3TestServer;
const dataset = 's3://budget/sales';
const saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  server = await startS3Server({ buckets: ['budget'] });
  // The library reads the standard SDK settings, as the CLI and the Lambdas do.
  for (const [k, v] of Object.entries(server.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  const local = tempDir('ssi-budget-');
  writeSampleDataset(local, { fragments: 6, rowsPerFragment: 50_000 });
  const store = new S3Store({ bucket: 'budget', prefix: 'sales' });
  for (const f of readdirSync(join(local, 'data'))) await store.put(`data/${f}`, readFileSync(join(local, 'data', f)));
  await build({
    dataset,
    indexes: [
      { column: 'id', type: 'bitmap' }, // 300,000 distinct keys: a large bitmap file
      { column: 'category', type: 'bitmap' },
      { column: 'price', type: 'zonemap', rowsPerZone: 1024 },
    ],
  });
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await server?.stop();
});

function describeRequests(rs: readonly S3RequestRecord[]): string {
  return rs.map((r) => `${r.method} ${r.key || '(list)'}${r.range ? ` ${r.range}` : ''} → ${r.status}, ${r.bytesOut} B`).join('\n    ');
}

async function measured(where: string, use?: ('bitmap' | 'zonemap')[]) {
  server.resetLog();
  const result = await query(dataset, where, { use });
  const requests = [...server.requests];
  const manifest = requests.filter((r) => r.key === '' || r.key.includes('/_index/versions/'));
  const index = requests.filter((r) => !manifest.includes(r));
  console.log(`${where}: ${requests.length} requests (${manifest.length} for the manifest, ${index.length} for the index)\n    ${describeRequests(requests)}`);
  return { result, requests, manifest, index };
}

describe('remote read budget (requests counted at the S3 server)', () => {
  it.each(['id = 123456', 'category = 42', "id IN (7, 250000)"])('bitmap point query %s: manifest read + at most 3 GETs per value', async (where) => {
    const { result, manifest, index, requests } = await measured(where);
    expect(result.indexesUsed.every((n) => n.endsWith('_bitmap'))).toBe(true);
    expect(result.rows).toBeGreaterThan(0);
    // The manifest read is one LIST of _index/versions/ and one GET of the newest version.
    expect(manifest.map((r) => r.method)).toEqual(['GET', 'GET']);
    const values = where.includes('IN') ? 2 : 1;
    expect(index.length).toBeLessThanOrEqual(3 * values);
    // Ranged GETs, except that a file smaller than the 64 KiB footer read is fetched whole.
    expect(index.every((r) => r.method === 'GET' && (r.range || r.bytesOut <= 64 * 1024))).toBe(true);
    expect(requests.some((r) => r.key.includes('/data/'))).toBe(false);
  });

  it('zone-map range query reads only the zone-map file, never a fragment', async () => {
    const { result, index, requests } = await measured('price > 250', ['zonemap']);
    expect(result.indexesUsed).toEqual(['price_zonemap']);
    expect(result.exact).toBe(false);
    expect(new Set(index.map((r) => r.key))).toEqual(new Set(['sales/_index/indexes/price_zonemap/' + index[0]!.key.split('/price_zonemap/')[1]]));
    expect(index[0]!.key).toMatch(/\/zonemap\.arrow$/);
    expect(requests.some((r) => r.key.includes('/data/'))).toBe(false);
  });

  it('point-query cost does not grow with index size: id (300k keys) costs the same as category', async () => {
    const big = await measured('id = 99');
    const small = await measured('category = 3');
    expect(big.index.length).toBe(small.index.length);
  });
});
