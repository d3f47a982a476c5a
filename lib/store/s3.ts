/**
 * The S3 store: the same ObjectStore contract as the local directory, over one bucket and
 * prefix. This is the only module in `lib/` that imports the AWS SDK.
 *
 * - Create-only writes send `If-None-Match: *`. S3 answers 412 when the key is taken, and
 *   that becomes AlreadyExistsError, the same error the local store raises, so the manifest
 *   commit protocol is identical on both stores.
 * - Reads are ranged. A whole-object read fetches the first 8 MiB range. For a larger object
 *   it then fetches the rest as concurrent 8 MiB ranges pinned to the first response's ETag.
 * - Throttling (503 SlowDown), 5xx and network errors are retried with back-off by the
 *   SDK's standard retry strategy. Client errors (4xx) that cannot succeed are not retried.
 */
import { PassThrough, type Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AlreadyExistsError, NotFoundError, ScalarIndexError, StoreError, StorePermanentError } from '../errors.js';
import type { S3Location } from './s3-uri.js';
import { checkKey, type ObjectInfo, type ObjectStore, type ObjectWriter, type WriteOptions } from './store.js';

/** Size of one ranged GET of a whole-object read, and of one multipart upload part. */
export const S3_CHUNK_BYTES = 8 * 1024 * 1024;
/** Concurrent ranged GETs (or part uploads) per object. */
export const S3_CONCURRENCY = 4;
/** S3 deletes at most this many keys per DeleteObjects request. */
const DELETE_BATCH = 1000;

export { parseS3Uri, type S3Location } from './s3-uri.js';

/**
 * The S3 client settings for this process: the standard SDK chain (credentials,
 * `AWS_REGION`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`). With an
 * endpoint override, path-style addressing is used and checksums are only sent where the API
 * requires them, as S3-compatible servers need.
 */
export function s3ClientConfigFromEnv(env: NodeJS.ProcessEnv = process.env): S3ClientConfig {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const config: S3ClientConfig = {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    followRegionRedirects: true,
    maxAttempts: Number(env.AWS_MAX_ATTEMPTS) || 6,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
  };
  // An explicit env (tests, tools) must win over the process's credential chain.
  if (env !== process.env && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    config.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN };
  }
  if (endpoint) {
    config.endpoint = endpoint;
    config.forcePathStyle = true;
    config.requestChecksumCalculation = 'WHEN_REQUIRED';
    config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  return config;
}

const clients = new Map<string, S3Client>();

/** One shared client per configuration, so connections are reused across stores. */
export function sharedS3Client(env: NodeJS.ProcessEnv = process.env): S3Client {
  const config = s3ClientConfigFromEnv(env);
  const id = JSON.stringify([config.endpoint, config.region, config.maxAttempts, env.AWS_ACCESS_KEY_ID, env.AWS_PROFILE]);
  let client = clients.get(id);
  if (!client) {
    client = new S3Client(config);
    clients.set(id, client);
  }
  return client;
}

export class S3Store implements ObjectStore {
  readonly bucket: string;
  readonly prefix: string;

  readonly client: S3Client;
  /** Where requests go, for error messages. */
  private readonly endpoint: string;

  constructor(location: S3Location, options: { client?: S3Client; env?: NodeJS.ProcessEnv } = {}) {
    const env = options.env ?? process.env;
    this.bucket = location.bucket;
    this.prefix = location.prefix;
    this.client = options.client ?? sharedS3Client(env);
    this.endpoint = s3ClientConfigFromEnv(env).endpoint?.toString() ?? 'AWS S3';
  }

  describe(key: string): string {
    return `s3://${this.bucket}/${this.fullKey(key, false)}`;
  }

  private fullKey(key: string, check = true): string {
    if (check) checkKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
      return { key, size: res.ContentLength ?? 0, etag: res.ETag, lastModified: res.LastModified };
    } catch (err) {
      if (statusOf(err) === 404 && !isNoSuchBucket(err)) return undefined;
      throw this.wrap(err, 'reading', key);
    }
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Uint8Array> {
    if (range) {
      if (range.end <= range.start) return new Uint8Array(0);
      return (await this.get(key, range.start, range.end)).bytes;
    }
    // One plain GET: small objects (manifests, plans) cost a single request. A large object
    // keeps streaming its first chunk from that response while the rest arrives as
    // concurrent ranged GETs pinned to the same ETag.
    let res;
    try {
      res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    } catch (err) {
      throw this.wrap(err, 'reading', key);
    }
    const total = res.ContentLength ?? 0;
    const body = res.Body as (Readable & { transformToByteArray(): Promise<Uint8Array> }) | undefined;
    try {
      if (!body) return new Uint8Array(0);
      if (total <= 2 * S3_CHUNK_BYTES) return await body.transformToByteArray();
      const out = new Uint8Array(total);
      const starts: number[] = [];
      for (let s = S3_CHUNK_BYTES; s < total; s += S3_CHUNK_BYTES) starts.push(s);
      let next = 0;
      const worker = async () => {
        while (next < starts.length) {
          const start = starts[next++]!;
          const end = Math.min(total, start + S3_CHUNK_BYTES);
          const part = await this.get(key, start, end, res.ETag);
          if (part.bytes.byteLength !== end - start) {
            throw new StoreError(`short read of ${this.describe(key)}: bytes ${start}-${end} returned ${part.bytes.byteLength}`);
          }
          out.set(part.bytes, start);
        }
      };
      const workers = Array.from({ length: Math.min(S3_CONCURRENCY - 1, starts.length) }, worker);
      await Promise.all([readPrefixInto(body, out, S3_CHUNK_BYTES), ...workers]);
      return out;
    } catch (err) {
      body?.destroy();
      throw this.wrap(err, 'reading', key);
    }
  }

  /** One GET, optionally of bytes [start, end) and pinned to an ETag. */
  private async get(key: string, start?: number, end?: number, ifMatch?: string): Promise<{ bytes: Uint8Array; total?: number; etag?: string }> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.fullKey(key),
          // Absolute ranges only: suffix ranges are not portable across S3-compatible servers.
          Range: start === undefined ? undefined : `bytes=${start}-${end! - 1}`,
          IfMatch: ifMatch,
        }),
      );
      const bytes = res.Body ? await res.Body.transformToByteArray() : new Uint8Array(0);
      if (ifMatch && res.ETag && res.ETag !== ifMatch) throw new StoreError(`${this.describe(key)} changed while it was being read`);
      const total = res.ContentRange ? Number(/\/(\d+)$/.exec(res.ContentRange)?.[1]) : undefined;
      return { bytes, total: Number.isFinite(total) ? total : undefined, etag: res.ETag };
    } catch (err) {
      if (statusOf(err) === 412) throw new StoreError(`${this.describe(key)} changed while it was being read`, { cause: err });
      throw this.wrap(err, 'reading', key);
    }
  }

  async put(key: string, body: Uint8Array, options: WriteOptions = {}): Promise<ObjectInfo> {
    try {
      const res = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.fullKey(key),
          Body: body,
          ContentLength: body.byteLength,
          IfNoneMatch: options.createOnly ? '*' : undefined,
        }),
      );
      return { key, size: body.byteLength, etag: res.ETag };
    } catch (err) {
      throw this.wrap(err, 'writing', key, options.createOnly);
    }
  }

  async openWriter(key: string, options: WriteOptions = {}): Promise<ObjectWriter> {
    // lib-storage sends one PutObject when the body fits one part, multipart otherwise, and
    // forwards If-None-Match to the PutObject or CompleteMultipartUpload that publishes it.
    const body = new PassThrough({ highWaterMark: S3_CHUNK_BYTES });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.fullKey(key), Body: body, IfNoneMatch: options.createOnly ? '*' : undefined },
      partSize: S3_CHUNK_BYTES,
      queueSize: S3_CONCURRENCY,
      leavePartsOnError: false,
    });
    let failure: unknown;
    const done = upload.done().then(
      (res) => res,
      (err: unknown) => {
        failure = err;
        throw err;
      },
    );
    done.catch(() => undefined); // observed in close/abort; never an unhandled rejection
    let size = 0;
    let state: 'open' | 'closed' | 'aborted' = 'open';
    return {
      write: async (chunk) => {
        if (state !== 'open') throw new Error(`writer for ${this.describe(key)} is ${state}`);
        if (failure) throw this.wrap(failure, 'writing', key, options.createOnly);
        size += chunk.byteLength;
        if (!body.write(chunk)) {
          await new Promise<void>((resolve) => {
            const settle = () => {
              body.off('drain', settle);
              resolve();
            };
            body.once('drain', settle);
            done.then(settle, settle);
          });
        }
        if (failure) throw this.wrap(failure, 'writing', key, options.createOnly);
      },
      close: async () => {
        if (state !== 'open') throw new Error(`writer for ${this.describe(key)} is ${state}`);
        state = 'closed';
        body.end();
        try {
          const res = await done;
          return { key, size, etag: res.ETag };
        } catch (err) {
          throw this.wrap(err, 'writing', key, options.createOnly);
        }
      },
      abort: async () => {
        if (state !== 'open') return;
        state = 'aborted';
        await upload.abort().catch(() => undefined);
        body.destroy();
        await done.catch(() => undefined);
      },
    };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (prefix) checkPrefix(prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    try {
      // Keys URL-encoded in the response: a key may hold characters XML 1.0 cannot carry (a
      // control character), and one such object must not make the whole listing unreadable.
      for await (const page of paginateListObjectsV2({ client: this.client, pageSize: 1000 }, { Bucket: this.bucket, Prefix: base + prefix, EncodingType: 'url' })) {
        // Only decode what the server says it encoded (some S3-compatible servers ignore the request).
        const decode = page.EncodingType === 'url' ? (k: string) => decodeURIComponent(k.replace(/\+/g, ' ')) : (k: string) => k;
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined) continue;
          const key = decode(o.Key);
          if (!key.startsWith(base)) continue;
          yield { key: key.slice(base.length), size: o.Size ?? 0, etag: o.ETag, lastModified: o.LastModified };
        }
      }
    } catch (err) {
      throw this.wrap(err, 'listing', prefix);
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      let res;
      try {
        res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.fullKey(k) })), Quiet: true },
          }),
        );
      } catch (err) {
        throw this.wrap(err, 'deleting', batch[0]!);
      }
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const e = failed[0]!;
        throw new StoreError(`cannot delete s3://${this.bucket}/${e.Key}: ${e.Code} ${e.Message ?? ''}`.trim() + (failed.length > 1 ? ` (and ${failed.length - 1} more)` : ''));
      }
    }
  }

  /** Turn an SDK failure into a named error that says which object and what went wrong. */
  private wrap(err: unknown, doing: string, key: string, createOnly = false): Error {
    if (err instanceof ScalarIndexError) return err;
    const where = this.describe(key);
    const status = statusOf(err);
    if (createOnly && (status === 412 || status === 409)) {
      // 409 ConditionalRequestConflict: a concurrent conditional write to the same key is in
      // flight. Callers treat both as "taken" and re-read, which is correct either way.
      return new AlreadyExistsError(where);
    }
    if (isNoSuchBucket(err)) return new StorePermanentError(`bucket '${this.bucket}' does not exist (while ${doing} ${where})`, { cause: err });
    if (status === 404) return new NotFoundError(where);
    const code = (err as { name?: string; Code?: string })?.name ?? 'Error';
    const detail = err instanceof S3ServiceException ? `${code} (HTTP ${status})${err.message && err.message !== code ? `: ${err.message}` : ''}` : describeNetworkError(err, this.endpoint);
    if (err instanceof S3ServiceException && isPermanent(code, status)) return new StorePermanentError(`S3 refused ${doing} ${where}: ${detail}`, { cause: err });
    return new StoreError(`S3 error while ${doing} ${where}: ${detail}`, { cause: err });
  }
}

/** Copy the first `n` bytes of a response body into `out`, then drop the connection. */
async function readPrefixInto(body: Readable, out: Uint8Array, n: number): Promise<void> {
  let got = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    const take = Math.min(chunk.byteLength, n - got);
    out.set(take === chunk.byteLength ? chunk : chunk.subarray(0, take), got);
    got += take;
    if (got >= n) break; // leaving the loop destroys the stream
  }
  if (got < n) throw new StoreError(`response body ended after ${got} of ${n} bytes`);
}

/** List prefixes may end in a partial segment (`_index/versions/0000`), but must not escape. */
function checkPrefix(prefix: string): void {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed) checkKey(trimmed);
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/**
 * S3 error codes no retry can fix. KMS errors reach S3 callers as `KMS.*` codes (a disabled
 * or deleted key, a key policy that refuses the role).
 */
const PERMANENT_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidAccessKeyId',
  'InvalidBucketName',
  'InvalidObjectState',
  'NoSuchBucket',
  'SignatureDoesNotMatch',
  'KMS.DisabledException',
  'KMS.KMSInvalidStateException',
  'KMS.NotFoundException',
  'KMS.AccessDeniedException',
]);
/** 403s that a retry can cure: a clock or a credential that the SDK refreshes. */
const TRANSIENT_403_CODES = new Set(['RequestTimeTooSkewed', 'ExpiredToken', 'RequestExpired', 'TokenRefreshRequired', 'SlowDown']);

/**
 * Whether an S3 error is permanent: a known code, or any other 403 but the few that come from
 * clocks and expiring credentials.
 *
 * @example
 * isPermanent('AccessDenied', 403) // true
 * isPermanent('SlowDown', 503) // false
 */
export function isPermanent(code: string, status: number | undefined): boolean {
  if (PERMANENT_CODES.has(code)) return true;
  return status === 403 && !TRANSIENT_403_CODES.has(code);
}

function isNoSuchBucket(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'NoSuchBucket';
}

function describeNetworkError(err: unknown, endpoint: string): string {
  const e = err as { code?: string; message?: string; name?: string };
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOTFOUND' || e?.code === 'EHOSTUNREACH' || e?.code === 'ETIMEDOUT' || e?.name === 'TimeoutError') {
    return `cannot reach ${endpoint}: ${e.code ?? e.name}`;
  }
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}`;
}
