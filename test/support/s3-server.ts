/**
 * A real S3 HTTP endpoint for tests: s3rver in a child process, fronted by a recording proxy in
 * this process that also fills in the S3 behaviour s3rver lacks (conditional writes, suffix
 * ranges) and injects faults on demand.
 *
 *   const s3 = await startS3Server({ buckets: ['data'] });
 *   const client = s3.client();
 *   ...
 *   expect(s3.count({ method: 'GET', key: 'a.arrow' })).toBe(3);
 *   await s3.stop();
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

/** One request as the proxy saw it. */
export interface S3RequestRecord {
  method: string;
  /** URL-decoded; '' for service-level requests such as ListBuckets. */
  bucket: string;
  /** URL-decoded; '' for bucket-level requests such as ListObjectsV2. */
  key: string;
  /** Query parameters (the SDK adds `x-id=<Operation>` to some). */
  query: Record<string, string>;
  /** The client's Range header, verbatim (before any suffix-range rewrite). */
  range?: string;
  /** Status sent to the client; 0 while pending, or when no response was sent (reset). */
  status: number;
  /** Response body bytes sent to the client. */
  bytesOut: number;
  /** Set when an injected fault handled (or delayed) this request. */
  injected?: 'status' | 'reset' | 'delay';
}

/** What a fault's `match` sees. */
export type S3RequestInfo = Pick<S3RequestRecord, 'method' | 'bucket' | 'key' | 'query' | 'range'> & {
  headers: http.IncomingHttpHeaders;
};

/** A fault for the next `times` matching requests. With neither `status`, `reset` nor `delayMs`, it is a 503 SlowDown. */
export interface S3Fault {
  times: number;
  match?: (req: S3RequestInfo) => boolean;
  /** Answer with this status and an S3 XML error body (the request is not forwarded). */
  status?: number;
  /** Error code for the body; defaults by status (503 SlowDown, 500 InternalError, else InjectedFault). */
  code?: string;
  /** Destroy the client's socket without answering: a network error. */
  reset?: boolean;
  /** Wait this long first; alone, the request is then forwarded normally. */
  delayMs?: number;
}

/** Filter for {@link S3TestServer.count}: a predicate, or fields that must all be equal. */
export type S3RequestFilter =
  | ((r: S3RequestRecord) => boolean)
  | Partial<Pick<S3RequestRecord, 'method' | 'bucket' | 'key' | 'status' | 'range' | 'injected'>>;

export interface S3ServerOptions {
  /** Buckets to create before the server answers. */
  buckets?: string[];
  /** How long to wait for s3rver to listen (default 15 s). */
  startTimeoutMs?: number;
}

export interface S3TestServer {
  /** The proxy's URL, e.g. `http://127.0.0.1:41234`: point clients here. */
  readonly endpoint: string;
  /** s3rver itself, bypassing the proxy (no log, no faults, no conditional writes). */
  readonly directEndpoint: string;
  /** s3rver's storage directory (removed by {@link stop}) and the child's pid, for diagnostics. */
  readonly directory: string;
  readonly pid: number;
  /**
   * Environment for a spawned CLI using the SDK's default endpoint/credential chain. No variable
   * turns on path-style addressing: the CLI must still set `forcePathStyle: true`.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Every request through the proxy, in arrival order. Cleared in place by {@link resetLog}. */
  readonly requests: readonly S3RequestRecord[];
  resetLog(): void;
  /** Number of logged requests matching `filter` (all of them without one). */
  count(filter?: S3RequestFilter): number;
  /** Queue a fault; the returned handle tells how many uses are left. */
  inject(fault: S3Fault): { readonly remaining: number };
  clearFaults(): void;
  /** An S3Client set up for this server; `overrides` are spread last. Destroyed by {@link stop}. */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  /** Create a bucket (directly on s3rver, so it is not logged); an existing one is fine. */
  createBucket(name: string): Promise<void>;
  /** Close the proxy, stop s3rver and remove its directory. Idempotent. */
  stop(): Promise<void>;
}

const CHILD = path.join(import.meta.dirname, 's3rver-child.mjs');
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
const MESSAGES: Record<string, string> = {
  SlowDown: 'Please reduce your request rate.',
  InternalError: 'We encountered an internal error. Please try again.',
  PreconditionFailed: 'At least one of the pre-conditions you specified did not hold',
  NoSuchKey: 'The specified key does not exist.',
  InvalidRange: 'The requested range is not satisfiable',
};

// Children still running, killed if this process exits without stop(). A hard crash of this
// process is covered by the child itself, which exits when its IPC channel closes.
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Start s3rver in a child process and the recording proxy in front of it. */
export async function startS3Server(options: S3ServerOptions = {}): Promise<S3TestServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 's3rver-'));
  let child: ChildProcess;
  let upstreamPort: number;
  try {
    ({ child, port: upstreamPort } = await spawnS3rver(dir, options));
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const agent = new http.Agent({ keepAlive: true });
  const requests: S3RequestRecord[] = [];
  const faults: S3Fault[] = [];
  const locks = new KeyedMutex();
  const clients: S3Client[] = [];

  /** A request of our own straight to s3rver, body buffered. */
  function upstream(method: string, urlPath: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      http
        .request({ host: '127.0.0.1', port: upstreamPort, method, path: urlPath, agent }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          res.on('error', reject);
        })
        .on('error', reject)
        .end();
    });
  }

  function takeFault(info: S3RequestInfo): S3Fault | undefined {
    const i = faults.findIndex((f) => f.times > 0 && (f.match?.(info) ?? true));
    if (i < 0) return undefined;
    const fault = faults[i]!;
    if (--fault.times === 0) faults.splice(i, 1);
    return fault;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const [, rawBucket = '', ...rawKey] = url.pathname.split('/');
    const method = req.method ?? 'GET';
    const record: S3RequestRecord = {
      method,
      bucket: decodeURIComponent(rawBucket),
      key: decodeURIComponent(rawKey.join('/')),
      query: Object.fromEntries(url.searchParams),
      ...(req.headers.range !== undefined && { range: req.headers.range }),
      status: 0,
      bytesOut: 0,
    };
    requests.push(record);
    const { status: _s, bytesOut: _b, ...info } = record;
    const headers = { ...req.headers };
    let closed = false;
    res.once('close', () => (closed = true));

    const fault = takeFault({ ...info, headers });
    if (fault) {
      record.injected = 'delay';
      if (fault.delayMs) await sleep(fault.delayMs);
      if (fault.reset) {
        record.injected = 'reset';
        req.socket.destroy();
        return;
      }
      const status = fault.status ?? (fault.delayMs ? undefined : 503);
      if (status !== undefined) {
        record.injected = 'status';
        const code = fault.code ?? ({ 500: 'InternalError', 503: 'SlowDown' } as Record<number, string>)[status] ?? 'InjectedFault';
        return refuse(req, res, record, status, code);
      }
    }

    // Writes to one key are serialised: s3rver's file store is not safe under concurrent writes
    // to a key, and a conditional write must not interleave its check with another write.
    const { query } = record;
    const isWrite =
      record.key !== '' && ((method === 'PUT' && !('partNumber' in query)) || method === 'DELETE' || (method === 'POST' && 'uploadId' in query));
    const ifMatch = headers['if-match'];
    const ifNoneMatch = headers['if-none-match'];
    const isRead = record.key !== '' && (method === 'GET' || method === 'HEAD');
    const needsLock = isWrite || (isRead && ifMatch !== undefined);
    if (needsLock) {
      const release = await locks.lock(`${record.bucket}/${record.key}`);
      if (closed) return release();
      res.once('close', release);
    }

    // The current object, fetched only when a header needs it.
    let current: { exists: boolean; etag?: string; size: number } | undefined;
    const stat = async () => {
      if (!current) {
        const head = await upstream('HEAD', url.pathname);
        if (head.status !== 200 && head.status !== 404) throw new Error(`HEAD ${url.pathname}: ${head.status}`);
        current = { exists: head.status === 200, etag: head.headers.etag, size: Number(head.headers['content-length'] ?? 0) };
      }
      return current;
    };
    const sameEtag = (a: string, b?: string) => a === '*' || a.replaceAll('"', '') === b?.replaceAll('"', '');

    if (isWrite && method !== 'DELETE') {
      if (ifNoneMatch === '*' && (await stat()).exists) return refuse(req, res, record, 412, 'PreconditionFailed', 'If-None-Match');
      if (ifMatch !== undefined) {
        const cur = await stat();
        // S3 answers 404 to If-Match when there is no object to match.
        if (!cur.exists) return refuse(req, res, record, 404, 'NoSuchKey');
        if (!sameEtag(ifMatch, cur.etag)) return refuse(req, res, record, 412, 'PreconditionFailed', 'If-Match');
      }
    }
    if (isRead && ifMatch !== undefined) {
      const cur = await stat();
      if (cur.exists && !sameEtag(ifMatch, cur.etag)) return refuse(req, res, record, 412, 'PreconditionFailed', 'If-Match');
    }

    // s3rver reads `bytes=-N` as `bytes=0-N`, and `bytes=0-0` as the whole object. Rewrite
    // suffix ranges to absolute ones, and cut `0-0` answers to one byte ourselves.
    let limit: number | undefined;
    const suffix = method === 'GET' && record.range ? /^bytes=-(\d+)$/.exec(record.range) : null;
    if (suffix) {
      const cur = await stat();
      const n = Number(suffix[1]);
      if (cur.exists && n === 0) return refuse(req, res, record, 416, 'InvalidRange');
      if (cur.exists && cur.size > 0) headers.range = `bytes=${Math.max(0, cur.size - n)}-${cur.size - 1}`;
    }
    if (method === 'GET' && headers.range !== undefined && /^bytes=0+-0+$/.test(headers.range)) limit = 1;

    forward(req, res, record, headers, limit);
  }

  function forward(req: http.IncomingMessage, res: http.ServerResponse, record: S3RequestRecord, headers: http.IncomingHttpHeaders, limit?: number): void {
    // Node's server has already answered any `Expect: 100-continue`; don't ask s3rver again.
    for (const h of [...HOP_BY_HOP, 'expect']) delete headers[h];
    // S3 decodes aws-chunked bodies (the SDK's default for streamed uploads, carrying a trailing
    // checksum); s3rver would store the framing, so decode here and send plain bytes.
    const encodings = String(headers['content-encoding'] ?? '').split(/\s*,\s*/);
    const chunked = encodings.includes('aws-chunked');
    if (chunked) {
      const rest = encodings.filter((e) => e !== 'aws-chunked' && e !== '');
      if (rest.length) headers['content-encoding'] = rest.join(',');
      else delete headers['content-encoding'];
      const decoded = headers['x-amz-decoded-content-length'];
      if (decoded !== undefined) headers['content-length'] = String(decoded);
      else delete headers['content-length'];
      headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      delete headers['x-amz-decoded-content-length'];
      delete headers['x-amz-trailer'];
    }
    const upReq = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers, agent }, (upRes) => {
      const out = { ...upRes.headers };
      for (const h of HOP_BY_HOP) delete out[h];
      const total = /\/(\d+)$/.exec(String(out['content-range'] ?? ''))?.[1];
      if (limit !== undefined && upRes.statusCode === 206 && total !== undefined) {
        out['content-range'] = `bytes 0-${limit - 1}/${total}`;
        out['content-length'] = String(limit);
      } else {
        limit = undefined;
      }
      record.status = upRes.statusCode ?? 502;
      res.writeHead(record.status, out);
      // Copied by hand rather than piped so bytes are counted, and a `0-0` answer can be cut.
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        res.end();
      };
      upRes.on('data', (chunk: Buffer) => {
        if (ended) return;
        if (limit !== undefined) chunk = chunk.subarray(0, limit - record.bytesOut);
        record.bytesOut += chunk.length;
        if (!res.write(chunk)) upRes.pause();
        if (limit !== undefined && record.bytesOut >= limit) {
          end();
          upRes.destroy();
        }
      });
      res.on('drain', () => upRes.resume());
      upRes.on('end', end);
      upRes.on('error', () => res.destroy());
    });
    upReq.on('error', () => {
      if (res.headersSent) res.destroy();
      else sendError(res, req.method, (record.status = 502), 'InternalError');
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    if (chunked) pipeline(req, awsChunkedDecoder(), upReq).catch(() => upReq.destroy());
    else req.pipe(upReq);
  }

  /** Answer an S3 error without forwarding; the request body is read first so the connection stays usable. */
  async function refuse(req: http.IncomingMessage, res: http.ServerResponse, record: S3RequestRecord, status: number, code: string, condition?: string) {
    try {
      await finished(req.resume());
    } catch {
      return; // the client went away
    }
    record.status = status;
    sendError(res, req.method, status, code, condition ? { Condition: condition } : undefined);
  }

  const proxy = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else sendError(res, req.method, 500, 'InternalError', { Detail: String(err) });
    });
  });
  // No idle timeout: a client reusing a socket just as the server closes it gets ECONNRESET,
  // which would put spurious retries in the log. stop() closes every connection anyway.
  proxy.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  const directEndpoint = `http://127.0.0.1:${upstreamPort}`;

  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    directEndpoint,
    directory: dir,
    pid: child.pid!,
    env: {
      AWS_ENDPOINT_URL_S3: endpoint,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_REGION: 'us-east-1',
    },
    requests,
    resetLog: () => void (requests.length = 0),
    count: (filter) => requests.filter(toPredicate(filter)).length,
    inject(fault) {
      const f = { ...fault };
      if (f.times > 0) faults.push(f);
      return {
        get remaining() {
          return f.times;
        },
      };
    },
    clearFaults: () => void (faults.length = 0),
    client(overrides = {}) {
      const c = new S3Client({
        endpoint,
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: CREDENTIALS,
        // s3rver stores aws-chunked (flexible checksum) bodies with their framing (platform notes).
        // The proxy decodes them, but this keeps the client right for directEndpoint too.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...overrides,
      });
      clients.push(c);
      return c;
    },
    async createBucket(name) {
      const r = await upstream('PUT', `/${encodeURIComponent(name)}`);
      if (r.status !== 200 && !/BucketAlready(Exists|OwnedByYou)/.test(r.body)) throw new Error(`createBucket ${name}: ${r.status} ${r.body}`);
    },
    stop() {
      stopped ??= (async () => {
        for (const c of clients.splice(0)) c.destroy();
        const closed = new Promise((resolve) => proxy.close(resolve));
        proxy.closeAllConnections();
        await closed;
        agent.destroy();
        await killChild(child);
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** Fork s3rver-child.mjs and wait for the port it listens on. */
async function spawnS3rver(dir: string, options: S3ServerOptions): Promise<{ child: ChildProcess; port: number }> {
  // DES for ListObjectsV2 continuation tokens needs the legacy provider (see platform notes).
  // stderr is inherited so a crash of s3rver shows up in the test output.
  const child = fork(CHILD, [dir, JSON.stringify({ buckets: options.buckets ?? [] })], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('s3rver did not start in time')), options.startTimeoutMs ?? 15_000);
      child.on('error', reject); // stays attached: a later 'error' (failed kill) must not throw
      child.once('exit', (code, signal) => reject(new Error(`s3rver exited before listening (code ${code}, signal ${signal})`)));
      child.once('message', (m: { port?: number; error?: string }) => (m.port ? resolve(m.port) : reject(new Error(`s3rver failed: ${m.error}`))));
      child.once('exit', () => clearTimeout(timer)).once('message', () => clearTimeout(timer));
    });
    // Don't let a forgotten stop() keep this process alive; the child exits when we do.
    child.unref();
    child.channel?.unref();
    return { child, port };
  } catch (err) {
    await killChild(child);
    throw err;
  }
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

function sendError(res: http.ServerResponse, method: string | undefined, status: number, code: string, extra?: Record<string, string>): void {
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  const fields = { Code: code, Message: MESSAGES[code] ?? code, ...extra, RequestId: requestId, HostId: requestId };
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
    Object.entries(fields)
      .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
      .join('') +
    '</Error>';
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': method === 'HEAD' ? 0 : Buffer.byteLength(body),
    'x-amz-request-id': requestId,
  });
  res.end(method === 'HEAD' ? undefined : body);
}

/** Decode `content-encoding: aws-chunked` (`<hex>[;ext]\r\n<data>\r\n` … `0\r\n<trailers>\r\n`) into the plain payload. */
function awsChunkedDecoder(): Transform {
  let buf: Buffer = Buffer.alloc(0);
  let state: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  let left = 0; // data bytes left in the current chunk
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length) {
        if (state === 'data') {
          const n = Math.min(left, buf.length);
          this.push(buf.subarray(0, n));
          buf = buf.subarray(n);
          if ((left -= n) === 0) state = 'crlf';
        } else if (state === 'crlf') {
          if (buf.length < 2) break;
          buf = buf.subarray(2);
          state = 'size';
        } else if (state === 'size') {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) break;
          left = parseInt(buf.subarray(0, eol).toString('latin1').split(';')[0]!, 16);
          if (Number.isNaN(left)) return callback(new Error('malformed aws-chunked body'));
          buf = buf.subarray(eol + 2);
          state = left === 0 ? 'trailer' : 'data';
        } else {
          buf = Buffer.alloc(0); // trailing checksum headers: S3 would verify them; we drop them
        }
      }
      callback();
    },
  });
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function toPredicate(filter: S3RequestFilter | undefined): (r: S3RequestRecord) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === 'function') return filter;
  const entries = Object.entries(filter) as [keyof S3RequestRecord, unknown][];
  return (r) => entries.every(([k, v]) => r[k] === v);
}

/** Per-key FIFO lock: `lock(k)` resolves to a release function once earlier holders of k released. */
class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async lock(key: string): Promise<() => void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tail = prev.then(() => held);
    this.tails.set(key, tail);
    await prev;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    };
  }
}
