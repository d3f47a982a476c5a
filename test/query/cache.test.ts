/**
 * QueryCache: repeated queries reuse manifests and opened bitmap indexes, yet see every new
 * commit at once, stay exact, and keep within their byte bound. Request counts come from a
 * real S3 server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { QueryCache } from '../../lib/query/cache.js';
import { query } from '../../lib/query/evaluate.js';
import { S3Store } from '../../lib/store/s3.js';
import { build } from '../../lib/workflow/build.js';
import { writeSampleDataset } from '../../scripts/sample-data.js';
import { useS3Server } from '../support/s3-env.js';
import { tempDir } from '../support/tmp.js';

const s3 = useS3Server({ buckets: ['cache'] });

async function s3Dataset(prefix: string, fragments: number, seed = 1): Promise<{ dataset: string; store: S3Store }> {
  const local = tempDir('ssi-cache-');
  writeSampleDataset(local, { fragments, rowsPerFragment: 5_000, seed });
  const store = new S3Store({ bucket: 'cache', prefix });
  for (const f of readdirSync(join(local, 'data'))) await store.put(`data/${f}`, readFileSync(join(local, 'data', f)));
  return { dataset: `s3://cache/${prefix}`, store };
}

describe('QueryCache', () => {
  it('answers a repeated bitmap query with the two LISTs (versions, data/) and no reads, and the same rows', async () => {
    const { dataset } = await s3Dataset('warm', 3);
    await build({ dataset, indexes: [{ column: 'category', type: 'bitmap' }, { column: 'region', type: 'bitmap' }] });
    const cache = new QueryCache();
    const where = "category = 7 AND region = 'APAC'";
    const uncached = await query(dataset, where);

    s3.server.resetLog();
    const first = await query(dataset, where, { cache });
    const firstRequests = s3.server.requests.length;
    s3.server.resetLog();
    const second = await query(dataset, where, { cache });
    const secondRequests = s3.server.requests.map((r) => `${r.method} ${r.key}`);

    expect(first.fragments).toEqual(uncached.fragments);
    expect(second.fragments).toEqual(uncached.fragments);
    expect(second.rows).toBeGreaterThan(0);
    expect(firstRequests).toBeGreaterThan(3);
    // Only the listings: versions (which version is the latest) and data/ (which files the
    // answer must account for). The manifest and both indexes come from the cache.
    expect(secondRequests).toHaveLength(2);
    expect(s3.server.requests.map((r) => [r.query['list-type'], r.query.prefix])).toEqual(
      expect.arrayContaining([
        ['2', 'warm/_index/versions/'],
        ['2', 'warm/data/'],
      ]),
    );
    expect(second.stats.indexReads).toBe(0);
    expect(cache.bytes).toBeGreaterThan(0);
    // Trusting the registered snapshot skips the data/ listing.
    s3.server.resetLog();
    const snapshot = await query(dataset, where, { cache, registeredOnly: true });
    expect(s3.server.requests).toHaveLength(1);
    expect(snapshot).toEqual({ ...second, discovery: 'registered-only' });
  });

  it('sees a new commit at once: new fragments are answered, not the cached version', async () => {
    const { dataset, store } = await s3Dataset('fresh', 2);
    await build({ dataset, indexes: [{ column: 'category', type: 'bitmap' }] });
    const cache = new QueryCache();
    const before = await query(dataset, 'category = 3', { cache });
    // Two more fragments, indexed by a second build.
    const more = tempDir('ssi-cache-more-');
    writeSampleDataset(more, { fragments: 4, rowsPerFragment: 5_000, seed: 9 });
    const files = readdirSync(join(more, 'data')).sort().slice(2);
    for (const f of files) await store.put(`data/z-${f}`, readFileSync(join(more, 'data', f)));
    await build({ dataset });
    const after = await query(dataset, 'category = 3', { cache });
    expect(after.stats.version).toBeGreaterThan(before.stats.version);
    expect(after.fragments.length).toBe(before.fragments.length + 2);
    // The same answer as without a cache; only the index reads differ (the first segment is cached).
    const uncached = await query(dataset, 'category = 3');
    expect(after).toEqual({ ...uncached, stats: { ...uncached.stats, indexReads: after.stats.indexReads } });
    expect(after.stats.indexReads).toBeLessThan(uncached.stats.indexReads);
  });

  it('stays within its byte bound and still answers exactly when everything is evicted', async () => {
    const local = tempDir('ssi-cache-bound-');
    writeSampleDataset(local, { fragments: 4, rowsPerFragment: 20_000 });
    await build({ dataset: local, indexes: [{ column: 'id', type: 'bitmap' }, { column: 'category', type: 'bitmap' }] });
    const small = new QueryCache({ maxBytes: 32 * 1024 });
    for (const where of ['id = 5', 'id IN (7, 60000)', 'category = 2', 'id = 5', 'category >= 3']) {
      const got = await query(local, where, { cache: small });
      expect(got, where).toEqual({ ...(await query(local, where)), stats: got.stats });
      expect(small.bytes, where).toBeLessThanOrEqual(32 * 1024);
    }
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new QueryCache({ maxBytes: 0 })).toThrow(/maxBytes must be a positive integer/);
    expect(() => new QueryCache({ maxBytes: 1.5 })).toThrow(RangeError);
  });
});
