/**
 * The ObjectStore contract, run against both adapters: the local directory and S3 (a real
 * s3rver behind a proxy that honours `If-None-Match` the way S3 does). Everything above the
 * store (manifest commits, part files, merges) relies on exactly these behaviours.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset } from '../../lib/dataset.js';
import { AlreadyExistsError, InvalidPathError, NotFoundError } from '../../lib/errors.js';
import { LocalStore } from '../../lib/store/local.js';
import { S3Store } from '../../lib/store/s3.js';
import { listAll, type ObjectStore } from '../../lib/store/store.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';
import { tempDir } from '../support/tmp.js';

let server: S3TestServer;
beforeAll(async () => {
  server = await startS3Server();
  await server.createBucket('contract');
});
afterAll(async () => server?.stop());

let datasets = 0;
const backends: { name: string; open: () => ObjectStore }[] = [
  { name: 'local directory', open: () => new LocalStore(tempDir('ssi-store-')) },
  { name: 'S3 (s3rver)', open: () => new S3Store({ bucket: 'contract', prefix: `datasets/d${datasets++}` }, { env: server.env }) },
  {
    name: 'S3 via openDataset (SDK loaded on first use)',
    open: () => {
      Object.assign(process.env, server.env);
      return openDataset(`s3://contract/datasets/d${datasets++}`).store;
    },
  },
];

const bytes = (n: number) => new Uint8Array(randomBytes(n));
const text = (s: string) => new TextEncoder().encode(s);

describe.each(backends)('ObjectStore contract: $name', ({ open }) => {
  it('reads back what was written, whole and by absolute range', async () => {
    const store = open();
    const body = bytes(1000);
    const info = await store.put('data/a.bin', body);
    expect(info.size).toBe(1000);
    expect(await store.read('data/a.bin')).toEqual(body);
    expect(await store.read('data/a.bin', { start: 10, end: 20 })).toEqual(body.subarray(10, 20));
    expect(await store.read('data/a.bin', { start: 5, end: 5 })).toEqual(new Uint8Array(0));
    const head = await store.head('data/a.bin');
    expect(head?.size).toBe(1000);
    expect(head?.etag).toBeTruthy();
    expect(await store.head('data/none.bin')).toBeUndefined();
  });

  it('reads an empty object as zero bytes', async () => {
    const store = open();
    await store.put('empty', new Uint8Array(0));
    expect(await store.read('empty')).toEqual(new Uint8Array(0));
    expect((await store.head('empty'))?.size).toBe(0);
  });

  it('raises NotFoundError naming the object for a missing key', async () => {
    const store = open();
    const err = await store.read('data/missing.arrow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(String(err)).toContain(store.describe('data/missing.arrow'));
  });

  it('create-only put fails with AlreadyExistsError and keeps the first object', async () => {
    const store = open();
    await store.put('_index/versions/1.json', text('first'), { createOnly: true });
    const err = await store.put('_index/versions/1.json', text('second'), { createOnly: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AlreadyExistsError);
    expect(new TextDecoder().decode(await store.read('_index/versions/1.json'))).toBe('first');
    // A plain put replaces.
    await store.put('_index/versions/1.json', text('third'));
    expect(new TextDecoder().decode(await store.read('_index/versions/1.json'))).toBe('third');
  });

  it('exactly one of 12 concurrent create-only puts to one key wins', async () => {
    const store = open();
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => store.put('race.json', text(`writer ${i}`), { createOnly: true })));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(AlreadyExistsError);
    expect(new TextDecoder().decode(await store.read('race.json'))).toBe(`writer ${won[0]}`);
  });

  it('streams a 20 MiB object through a writer; create-only conflicts surface at close; abort leaves nothing', async () => {
    const store = open();
    const body = bytes(20 * 1024 * 1024 + 17);
    const w = await store.openWriter('big/part_0.arrow', { createOnly: true });
    for (let o = 0; o < body.length; o += 3_000_001) await w.write(body.subarray(o, Math.min(body.length, o + 3_000_001)));
    expect((await w.close()).size).toBe(body.length);
    expect(Buffer.compare(Buffer.from(await store.read('big/part_0.arrow')), Buffer.from(body))).toBe(0);
    expect(await store.read('big/part_0.arrow', { start: 9_000_000, end: 9_000_100 })).toEqual(body.subarray(9_000_000, 9_000_100));

    const again = await store.openWriter('big/part_0.arrow', { createOnly: true });
    await again.write(text('loser'));
    await expect(again.close()).rejects.toBeInstanceOf(AlreadyExistsError);
    expect((await store.head('big/part_0.arrow'))?.size).toBe(body.length);

    const aborted = await store.openWriter('big/aborted.arrow');
    await aborted.write(bytes(1000));
    await aborted.abort();
    expect(await store.head('big/aborted.arrow')).toBeUndefined();
  });

  it('lists by prefix in key order, including partial-segment prefixes, and deletes many', async () => {
    const store = open();
    const keys = ['_index/versions/00000000000000000002.json', '_index/versions/00000000000000000001.json', '_index/builds/b1/plan.json', 'data/x.arrow', 'data/sub/y.parquet'];
    for (const k of keys) await store.put(k, text(k));
    expect((await listAll(store, '_index/versions/')).map((o) => o.key)).toEqual([keys[1], keys[0]]);
    expect((await listAll(store, '_index/versions/0000000000000000000')).map((o) => o.key)).toEqual([keys[1], keys[0]]);
    expect((await listAll(store, 'data/')).map((o) => [o.key, o.size])).toEqual([
      ['data/sub/y.parquet', keys[4]!.length],
      ['data/x.arrow', keys[3]!.length],
    ]);
    expect(await listAll(store, 'nothing/')).toEqual([]);
    await store.deleteMany(['_index/builds/b1/plan.json', 'data/x.arrow', 'data/never-existed']);
    expect((await listAll(store, '')).map((o) => o.key).sort()).toEqual([keys[0], keys[1], keys[4]].sort());
  });

  it.each(['../escape', '/etc/passwd', 'data/../../x', 'data//x', 'data\\x', 'data/\u0000x', './x', ''])('rejects the hostile key %j on every operation', async (key) => {
    const store = open();
    await expect(store.read(key)).rejects.toBeInstanceOf(InvalidPathError);
    await expect(store.put(key, text('x'))).rejects.toBeInstanceOf(InvalidPathError);
    await expect(store.head(key)).rejects.toBeInstanceOf(InvalidPathError);
    await expect(store.deleteMany([key])).rejects.toBeInstanceOf(InvalidPathError);
    await expect(store.openWriter(key)).rejects.toBeInstanceOf(InvalidPathError);
  });
});
