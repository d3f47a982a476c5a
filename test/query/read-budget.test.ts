/**
 * The remote read budget, counted at a real S3 server: a bitmap point query costs the
 * manifest read, one LIST page of `data/` per 1,000 fragment files (discovery), plus at most
 * 3 ranged GETs whatever the index size, and a zone-map range query reads the zone-map file
 * only, never a fragment.
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

async function measured(where: string, use?: ('bitmap' | 'zonemap')[], registeredOnly = false, on = dataset) {
  server.resetLog();
  const result = await query(on, where, { use, registeredOnly });
  const requests = [...server.requests];
  const isList = (r: S3RequestRecord) => r.query['list-type'] === '2';
  const manifest = requests.filter((r) => (isList(r) && String(r.query.prefix).endsWith('/_index/versions/')) || r.key.includes('/_index/versions/'));
  const discovery = requests.filter((r) => isList(r) && String(r.query.prefix).endsWith('/data/'));
  const index = requests.filter((r) => !manifest.includes(r) && !discovery.includes(r));
  console.log(
    `${where}: ${requests.length} requests (${manifest.length} for the manifest, ${discovery.length} listing data/, ${index.length} for the index)\n    ${describeRequests(requests)}`,
  );
  return { result, requests, manifest, discovery, index };
}

describe('remote read budget (requests counted at the S3 server)', () => {
  it.each(['id = 123456', 'category = 42', "id IN (7, 250000)"])('bitmap point query %s: manifest read + at most 3 GETs per value', async (where) => {
    const { result, manifest, index, requests, discovery } = await measured(where);
    expect(result.indexesUsed.every((n) => n.endsWith('_bitmap'))).toBe(true);
    expect(result.rows).toBeGreaterThan(0);
    // The manifest read is one LIST of _index/versions/ and one GET of the newest version.
    expect(manifest.map((r) => r.method)).toEqual(['GET', 'GET']);
    // Discovery: one LIST page of data/ (six fragments), no reads of fragments.
    expect(discovery).toHaveLength(1);
    expect(result.discovery).toBe('listed');
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

  it('--registered-only skips the data/ listing and says so; the answer is the same', async () => {
    const listed = await measured('category = 42');
    const snapshot = await measured('category = 42', undefined, true);
    expect(snapshot.discovery).toHaveLength(0);
    expect(snapshot.requests).toHaveLength(listed.requests.length - 1);
    expect(snapshot.result.discovery).toBe('registered-only');
    expect({ ...snapshot.result, discovery: 'listed' }).toEqual(listed.result);
  });

  it('discovery costs one LIST page per 1,000 fragment files, and lists every unregistered one', async () => {
    const many = 's3://budget/many';
    const store = new S3Store({ bucket: 'budget', prefix: 'many' });
    const local = tempDir('ssi-budget-many-');
    writeSampleDataset(local, { fragments: 1, rowsPerFragment: 1_000 });
    const [file] = readdirSync(join(local, 'data'));
    await store.put(`data/${file}`, readFileSync(join(local, 'data', file!)));
    await build({ dataset: many, indexes: [{ column: 'category', type: 'bitmap' }] });
    // 1,400 files land after the build: 1,401 fragment keys in all, two LIST pages.
    const body = new Uint8Array(16);
    for (let i = 0; i < 1_400; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => store.put(`data/late/${String(i + k).padStart(5, '0')}.arrow`, body)));
    const { discovery, result } = await measured('category = 3', undefined, false, many);
    expect(discovery).toHaveLength(2);
    expect(result.unindexedFragments).toHaveLength(1_400);
    expect(result.unindexedFragments.every((f) => f.id === null && f.reason === 'unregistered')).toBe(true);
    expect(result.exact).toBe(true);
    expect(result.fragments.map((f) => f.path)).toEqual([`data/${file}`]);
  });

  it('point-query cost does not grow with index size: id (300k keys) costs the same as category', async () => {
    const big = await measured('id = 99');
    const small = await measured('category = 3');
    expect(big.index.length).toBe(small.index.length);
  });
});
