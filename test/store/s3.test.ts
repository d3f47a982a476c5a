/**
 * What only the S3 adapter does: ranged and concurrent reads, request counts, retries on
 * throttling and network errors, no retries on errors that cannot succeed, clear errors for
 * unreachable endpoints and missing buckets, and URI validation. Against a real s3rver.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InvalidPathError, NotFoundError, StoreError, StorePermanentError } from '../../lib/errors.js';
import { openDataset } from '../../lib/dataset.js';
import { parseS3Uri, S3_CHUNK_BYTES, S3Store, s3ClientConfigFromEnv } from '../../lib/store/s3.js';
import { startS3Server, type S3TestServer } from '../support/s3-server.js';

let server: S3TestServer;
beforeAll(async () => {
  server = await startS3Server({ buckets: ['bkt'] });
});
afterAll(async () => server?.stop());
beforeEach(() => {
  server.clearFaults();
  server.resetLog();
});

let n = 0;
const fresh = (env: Record<string, string> = {}) => new S3Store({ bucket: 'bkt', prefix: `s3test/${n++}` }, { env: { ...server.env, ...env } });

describe('S3 store reads', () => {
  it('a small object costs one GET; a ranged read one ranged GET', async () => {
    const store = fresh();
    await store.put('m.json', new Uint8Array(100));
    server.resetLog();
    await store.read('m.json');
    await store.read('m.json', { start: 10, end: 20 });
    expect(server.requests.map((r) => [r.method, r.range])).toEqual([
      ['GET', undefined],
      ['GET', 'bytes=10-19'],
    ]);
  });

  it('a large object is read as concurrent 8 MiB ranges after the first response', async () => {
    const store = fresh();
    const size = 5 * S3_CHUNK_BYTES + 123;
    const body = new Uint8Array(randomBytes(size));
    await store.put('big.arrow', body);
    server.resetLog();
    const back = await store.read('big.arrow');
    expect(Buffer.compare(Buffer.from(back), Buffer.from(body))).toBe(0);
    const gets = server.requests.filter((r) => r.method === 'GET');
    // One plain GET (its first 8 MiB are used) plus one ranged GET per further chunk.
    expect(gets.map((r) => r.range)).toEqual([undefined, ...[1, 2, 3, 4, 5].map((i) => `bytes=${i * S3_CHUNK_BYTES}-${Math.min(size, (i + 1) * S3_CHUNK_BYTES) - 1}`)]);
    // The plain GET is abandoned after its first chunk, so far fewer bytes cross the wire than 2× the object.
    const sent = gets.reduce((t, r) => t + r.bytesOut, 0);
    expect(sent).toBeLessThan(size * 1.5);
  });
});

describe('S3 store retries', () => {
  it('retries 503 SlowDown with back-off and then succeeds', async () => {
    const store = fresh();
    await store.put('x', new Uint8Array([1, 2, 3]));
    server.resetLog();
    server.inject({ times: 2, status: 503, code: 'SlowDown', match: (r) => r.method === 'GET' });
    expect(await store.read('x')).toEqual(new Uint8Array([1, 2, 3]));
    expect(server.requests.map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('retries a reset connection and a 500', async () => {
    const store = fresh();
    await store.put('y', new Uint8Array([4]));
    server.resetLog();
    server.inject({ times: 1, reset: true, match: (r) => r.method === 'GET' });
    server.inject({ times: 1, status: 500, match: (r) => r.method === 'GET' });
    expect(await store.read('y')).toEqual(new Uint8Array([4]));
    expect(server.count({ method: 'GET' })).toBe(3);
  });

  it('does not retry 403 AccessDenied, names the object, and calls it permanent (StorePermanentError, which the workflow does not retry)', async () => {
    const store = fresh();
    server.inject({ times: 5, status: 403, code: 'AccessDenied' });
    const err = await store.read('secret.arrow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorePermanentError);
    expect((err as Error).name).toBe('StorePermanentError');
    expect(String(err)).toMatch(/AccessDenied.*|.*403/);
    expect(String(err)).toContain(store.describe('secret.arrow'));
    expect(server.count()).toBe(1);
  });

  it.each([
    [403, 'AccessDenied', true],
    [403, 'InvalidObjectState', true],
    [400, 'KMS.DisabledException', true],
    [403, 'RequestTimeTooSkewed', false],
    [503, 'SlowDown', false],
    [500, 'InternalError', false],
  ])('an HTTP %i %s is permanent: %s', async (status, code, permanent) => {
    const store = fresh({ AWS_MAX_ATTEMPTS: '1' });
    server.inject({ times: 1, status, code });
    const err = await store.read('x.arrow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).name).toBe(permanent ? 'StorePermanentError' : 'StoreError');
    expect(String(err)).toContain(code);
  });

  it('gives up after AWS_MAX_ATTEMPTS on persistent throttling, with a clear error', async () => {
    const store = fresh({ AWS_MAX_ATTEMPTS: '3' });
    server.inject({ times: 10, status: 503, code: 'SlowDown' });
    const err = await store.head('busy.arrow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(String(err)).toContain(store.describe('busy.arrow'));
    expect(server.count()).toBe(3);
  });
});

describe('S3 store errors and configuration', () => {
  it('an unreachable endpoint is one clear error naming the object and the endpoint', async () => {
    const store = new S3Store({ bucket: 'bkt', prefix: 'p' }, { env: { ...server.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', AWS_MAX_ATTEMPTS: '2' } });
    const err = await store.read('data/a.arrow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toBe('S3 error while reading s3://bkt/p/data/a.arrow: cannot reach http://127.0.0.1:9: ECONNREFUSED');
  });

  it('a missing bucket is named as such, and is permanent', async () => {
    const store = new S3Store({ bucket: 'no-such-bucket', prefix: '' }, { env: server.env });
    const err = await store.read('x').catch((e: unknown) => e);
    expect(String(err)).toContain("bucket 'no-such-bucket' does not exist");
    expect(err).toBeInstanceOf(StorePermanentError);
  });

  it('a missing key is NotFoundError, not a retry loop', async () => {
    const store = fresh();
    await expect(store.read('nope')).rejects.toBeInstanceOf(NotFoundError);
    expect(server.count()).toBe(1);
  });

  it('parses and validates s3:// URIs', () => {
    expect(parseS3Uri('s3://sales-data/datasets/2026/')).toEqual({ bucket: 'sales-data', prefix: 'datasets/2026' });
    expect(parseS3Uri('s3://bkt')).toEqual({ bucket: 'bkt', prefix: '' });
    for (const bad of ['s3://Bad_Bucket/x', 's3://bk/x', 's3:///x', 's3://bkt/../other', 's3://bkt/a//b', 's3://bkt/a/./b']) {
      expect(() => parseS3Uri(bad), bad).toThrow(InvalidPathError);
    }
    expect(() => openDataset('s3://bkt/a/../../etc')).toThrow(/'\.\.' segments are not allowed/);
  });

  it('uses path style and on-demand checksums only with an endpoint override', () => {
    const custom = s3ClientConfigFromEnv({ AWS_ENDPOINT_URL_S3: 'http://localhost:9000', AWS_REGION: 'eu-west-1' });
    expect(custom).toMatchObject({ endpoint: 'http://localhost:9000', forcePathStyle: true, region: 'eu-west-1', requestChecksumCalculation: 'WHEN_REQUIRED' });
    const generic = s3ClientConfigFromEnv({ AWS_ENDPOINT_URL: 'http://localhost:9001' });
    expect(generic.endpoint).toBe('http://localhost:9001');
    const aws = s3ClientConfigFromEnv({});
    expect(aws.endpoint).toBeUndefined();
    expect(aws.forcePathStyle).toBeUndefined();
  });
});
