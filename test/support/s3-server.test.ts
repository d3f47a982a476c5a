// The S3 test harness, exercised with the real AWS SDK over HTTP (no mocks).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startS3Server, type S3TestServer } from './s3-server.js';

const BUCKET = 'harness';
let s3: S3TestServer;
let client: S3Client;

beforeAll(async () => {
  s3 = await startS3Server({ buckets: [BUCKET] });
  client = s3.client();
});
afterAll(() => s3?.stop());
beforeEach(() => {
  s3.clearFaults();
  s3.resetLog();
});

async function put(key: string, body: string | Uint8Array, extra: { IfNoneMatch?: string; IfMatch?: string } = {}) {
  return client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ...extra }));
}
async function get(key: string, range?: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
  return Buffer.from(await r.Body!.transformToByteArray());
}
/** The rejection of `p`, which must reject. */
async function failure(p: Promise<unknown>): Promise<{ name: string; Code?: string; Condition?: string; $metadata: { httpStatusCode?: number; attempts?: number } }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as never;
}
async function* chunks(total: number, seed: Buffer): AsyncGenerator<Buffer> {
  for (let off = 0; off < total; off += seed.length) yield seed.subarray(0, Math.min(seed.length, total - off));
}

describe('S3 test server: basic object API', () => {
  it('puts, heads and gets objects, logging each request', async () => {
    await put('dir/hello world.txt', 'hello');
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'dir/hello world.txt' }));
    expect(head.ContentLength).toBe(5);
    expect((await get('dir/hello world.txt')).toString()).toBe('hello');
    expect(s3.requests.map((r) => [r.method, r.bucket, r.key, r.status, r.bytesOut])).toEqual([
      ['PUT', BUCKET, 'dir/hello world.txt', 200, 0],
      ['HEAD', BUCKET, 'dir/hello world.txt', 200, 0],
      ['GET', BUCKET, 'dir/hello world.txt', 200, 5],
    ]);
    expect(s3.count({ method: 'GET' })).toBe(1);
    expect(s3.count((r) => r.key.startsWith('dir/'))).toBe(3);
    const missing = await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'nope' })));
    expect([missing.name, missing.$metadata.httpStatusCode]).toEqual(['NoSuchKey', 404]);
  });

  it('serves absolute, open-ended, suffix and 0-0 ranges like S3, logging range and bytes', async () => {
    const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await put('ranges', data);
    s3.resetLog();
    expect(await get('ranges', 'bytes=10-19')).toEqual(data.subarray(10, 20));
    expect(await get('ranges', 'bytes=250-')).toEqual(data.subarray(250));
    expect(await get('ranges', 'bytes=-16')).toEqual(data.subarray(240)); // the proxy rewrites it for s3rver
    const first = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'ranges', Range: 'bytes=0-0' }));
    expect(first.ContentRange).toBe('bytes 0-0/256');
    expect(Buffer.from(await first.Body!.transformToByteArray())).toEqual(data.subarray(0, 1));
    expect(s3.requests.map((r) => [r.range, r.status, r.bytesOut])).toEqual([
      ['bytes=10-19', 206, 10],
      ['bytes=250-', 206, 6],
      ['bytes=-16', 206, 16],
      ['bytes=0-0', 206, 1],
    ]);
    const bad = await failure(get('ranges', 'bytes=300-400'));
    expect([bad.name, bad.$metadata.httpStatusCode]).toEqual(['InvalidRange', 416]);
  });

  it('documents why the proxy fixes ranges: s3rver alone reads bytes=-N as 0-N and 0-0 as everything', async () => {
    const direct = (range: string) => fetch(`${s3.directEndpoint}/${BUCKET}/ranges`, { headers: { range } }).then(async (r) => Buffer.from(await r.arrayBuffer()));
    expect((await direct('bytes=-16')).length).toBe(17);
    expect((await direct('bytes=0-0')).length).toBe(256);
  });

  it('lists with continuation tokens (needs the legacy OpenSSL provider in the child)', async () => {
    for (let i = 0; i < 5; i++) await put(`list/${i}`, String(i));
    s3.resetLog();
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client, pageSize: 2 }, { Bucket: BUCKET, Prefix: 'list/' })) {
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    }
    expect(keys).toEqual(['list/0', 'list/1', 'list/2', 'list/3', 'list/4']);
    expect(s3.requests.map((r) => [r.method, r.key, r.status, 'continuation-token' in r.query])).toEqual([
      ['GET', '', 200, false],
      ['GET', '', 200, true],
      ['GET', '', 200, true],
    ]);
  });

  it('creates buckets idempotently', async () => {
    await s3.createBucket('second-bucket');
    await s3.createBucket('second-bucket');
    await client.send(new PutObjectCommand({ Bucket: 'second-bucket', Key: 'k', Body: 'v' }));
    expect(s3.count()).toBe(1); // createBucket bypasses the log
  });
});

describe('S3 test server: uploads', () => {
  it('stores a > 5 MiB multipart Upload byte for byte', async () => {
    const data = randomBytes(11 * 1024 * 1024 + 7);
    await new Upload({ client, params: { Bucket: BUCKET, Key: 'big', Body: data }, partSize: 5 * 1024 * 1024 }).done();
    expect((await get('big')).equals(data)).toBe(true);
    expect(s3.count((r) => r.method === 'POST' && 'uploads' in r.query)).toBe(1);
    expect(s3.count((r) => r.method === 'PUT' && 'partNumber' in r.query)).toBe(3);
    expect(s3.count((r) => r.method === 'POST' && 'uploadId' in r.query)).toBe(1);
  });

  it('stores streamed bodies of unknown length without aws-chunked framing', async () => {
    const seed = randomBytes(64 * 1024);
    for (const [key, size] of [
      ['stream-small', 100_000], // single PutObject
      ['stream-big', 6 * 1024 * 1024 + 123], // multipart
    ] as const) {
      await new Upload({ client, params: { Bucket: BUCKET, Key: key, Body: Readable.from(chunks(size, seed)) } }).done();
      const expected = Buffer.concat(Array.from({ length: Math.ceil(size / seed.length) }, () => seed)).subarray(0, size);
      // Read from s3rver directly: what it stored, not what the proxy shows.
      const stored = Buffer.from(await (await fetch(`${s3.directEndpoint}/${BUCKET}/${key}`)).arrayBuffer());
      expect(stored.equals(expected)).toBe(true);
    }
  });

  it('decodes aws-chunked bodies from a client with default checksum settings, as S3 does', async () => {
    const sdkDefaults = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    let encoding: unknown;
    s3.inject({ times: 1, match: (r) => ((encoding = r.headers['content-encoding']), false) }); // peek at headers only
    const body = randomBytes(300_000);
    await sdkDefaults.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'chunked', Body: Readable.from([body.subarray(0, 1000), body.subarray(1000)]), ContentLength: body.length }));
    sdkDefaults.destroy();
    expect(encoding).toContain('aws-chunked');
    expect((await get('chunked')).equals(body)).toBe(true);
  });
});

describe('S3 test server: conditional writes', () => {
  it('answers a second create-only PUT with 412 PreconditionFailed', async () => {
    await put('once', 'first', { IfNoneMatch: '*' });
    const err = await failure(put('once', 'second', { IfNoneMatch: '*' }));
    expect(err).toMatchObject({ name: 'PreconditionFailed', Code: 'PreconditionFailed', Condition: 'If-None-Match', $metadata: { httpStatusCode: 412, attempts: 1 } });
    expect((await get('once')).toString()).toBe('first');
    expect(s3.requests.map((r) => [r.method, r.status])).toEqual([
      ['PUT', 200],
      ['PUT', 412],
      ['GET', 200],
    ]);
  });

  it('lets exactly one of 20 concurrent create-only PUTs to one key win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => put('race', `writer-${i}`, { IfNoneMatch: '*' })));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as Error).name).toBe('PreconditionFailed');
    expect((await get('race')).toString()).toBe(`writer-${won[0]}`);
    expect(s3.count({ method: 'PUT', status: 412 })).toBe(19);
  });

  it('honours If-Match on PUT (412 on a stale ETag, 404 without an object) and on GET', async () => {
    const { ETag } = await put('cas', 'v1');
    const stale = (await put('cas', 'v2', { IfMatch: ETag })).ETag;
    const err = await failure(put('cas', 'v3', { IfMatch: ETag }));
    expect([err.name, err.$metadata.httpStatusCode, err.Condition]).toEqual(['PreconditionFailed', 412, 'If-Match']);
    const absent = await failure(put('cas-missing', 'v1', { IfMatch: ETag }));
    expect([absent.name, absent.$metadata.httpStatusCode]).toEqual(['NoSuchKey', 404]);
    expect((await get('cas')).toString()).toBe('v2');
    const read = await failure(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cas', IfMatch: ETag })));
    expect([read.name, read.$metadata.httpStatusCode]).toEqual(['PreconditionFailed', 412]);
    const ok = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cas', IfMatch: stale }));
    expect(await ok.Body!.transformToString()).toBe('v2');
  });

  it('honours If-None-Match on CompleteMultipartUpload', async () => {
    await put('mpu-target', 'exists');
    const complete = async (key: string) => {
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
      const { ETag } = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: 'part' }));
      return client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId, IfNoneMatch: '*', MultipartUpload: { Parts: [{ PartNumber: 1, ETag }] } }));
    };
    const err = await failure(complete('mpu-target'));
    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['PreconditionFailed', 412]);
    expect((await get('mpu-target')).toString()).toBe('exists');
    await complete('mpu-new');
    expect((await get('mpu-new')).toString()).toBe('part');
  });
  it('makes a multipart Upload with IfNoneMatch create-only (checked at CompleteMultipartUpload)', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 1);
    const upload = () => new Upload({ client, params: { Bucket: BUCKET, Key: 'big-once', Body: data, IfNoneMatch: '*' } }).done();
    await upload();
    const err = await failure(upload());
    expect([err.name, err.$metadata.httpStatusCode]).toEqual(['PreconditionFailed', 412]);
    expect(s3.count((r) => r.method === 'POST' && 'uploadId' in r.query)).toBe(2);
    expect((await get('big-once')).equals(data)).toBe(true);
  });
});

describe('S3 test server: fault injection', () => {
  it('injects 503 SlowDown, which the SDK retries', async () => {
    const fault = s3.inject({ times: 1, match: (r) => r.method === 'PUT' && r.key === 'slow' });
    await put('slow', 'x');
    expect(fault.remaining).toBe(0);
    expect(s3.count({ key: 'slow' })).toBe(2);
    expect(s3.requests.map((r) => [r.status, r.injected])).toEqual([
      [503, 'status'],
      [200, undefined],
    ]);
  });

  it('injects connection resets, which the SDK retries', async () => {
    await put('flaky', 'payload');
    s3.resetLog();
    s3.inject({ times: 1, reset: true, match: (r) => r.method === 'GET' });
    expect((await get('flaky')).toString()).toBe('payload');
    expect(s3.requests.map((r) => [r.method, r.status, r.injected])).toEqual([
      ['GET', 0, 'reset'],
      ['GET', 200, undefined],
    ]);
  });

  it('surfaces a persistent 500 InternalError once retries run out', async () => {
    const twoTries = s3.client({ maxAttempts: 2 });
    s3.inject({ times: 5, status: 500 });
    const err = await failure(twoTries.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'flaky' }))); // HEAD errors have no body to name them
    expect([err.name, err.$metadata.httpStatusCode, err.$metadata.attempts]).toEqual(['InternalError', 500, 2]);
    expect(s3.count({ injected: 'status' })).toBe(2);
  });

  it('delays requests and then forwards them', async () => {
    await put('later', 'x');
    s3.inject({ times: 1, delayMs: 150 });
    const t0 = performance.now();
    await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'later' }));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(s3.requests.at(-1)).toMatchObject({ method: 'HEAD', status: 200, injected: 'delay' });
  });
});

describe('S3 test server: lifecycle', () => {
  it('exposes an environment for spawned CLIs', () => {
    expect(s3.env).toEqual({ AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' });
  });

  it('stop() ends the child and removes its directory', async () => {
    const other = await startS3Server();
    expect(fs.existsSync(other.directory)).toBe(true);
    await other.stop();
    await other.stop(); // idempotent
    expect(alive(other.pid)).toBe(false);
    expect(fs.existsSync(other.directory)).toBe(false);
  });

  it('the child exits and cleans up when its parent is killed', async () => {
    // A parent that forks the child as the harness does, then dies by SIGKILL: no cleanup code runs.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-orphan-'));
    const script = `
      const c = require('node:child_process').fork(process.argv[1], [process.argv[2]], { execArgv: ['--openssl-legacy-provider'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      c.once('message', () => { console.log(c.pid); process.kill(process.pid, 'SIGKILL'); });`;
    const parent = spawn(process.execPath, ['-e', script, path.join(import.meta.dirname, 's3rver-child.mjs'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (d) => (out += d));
    await new Promise((resolve) => parent.once('close', resolve));
    const pid = Number(out.trim());
    expect(pid).toBeGreaterThan(0);
    for (let i = 0; i < 100 && (alive(pid) || fs.existsSync(dir)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(alive(pid)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
  });
});

/** Whether `pid` is a running process (a zombie awaiting its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
