/**
 * Scale: builds and queries over many small fragments on s3rver, behind the request-counting
 * proxy the tests use. Fragments have six columns: `id` int64 (the row's number in the whole
 * dataset, zone map), `k` int32 with 100 values (bitmap), `tag` int32 (the fragment number mod
 * 1,000, bitmap: a point query on it names at most 10 fragments of 10,000), `x` float64, `s` a
 * short utf8 and `payload` a wide utf8 nobody indexes.
 *
 * The dataset grows to each checkpoint (default 100, 1,000 and 10,000 fragments) and is built
 * there (an incremental build: only the new fragments are registered and indexed). Per build:
 * plan requests and bytes per new fragment (GETs under data/ before the first part starts),
 * the whole build's bytes read from data/ against the new fragments' bytes, wall time, and the
 * manifest bytes the build wrote (new objects under _index/versions/ and _index/fragments/).
 * Per checkpoint, point and range queries, cold (a fresh cache each): requests, bytes
 * returned, in-process latency (median and spread of `--repeat` runs), listing data/ (the
 * default) and with registeredOnly.
 *
 *   npm run bench:scale                                 # 10,000 fragments of 1,000 rows (about 2.7 GB on s3rver)
 *   npm run bench:scale -- --fragments 200              # quick sanity run: checkpoints 100 and 200
 *   npm run bench:scale -- --fragments 2000 --checkpoints 100,500,2000 --payload-bytes 64
 *
 * Results go to bench/results/scale.json (or --out). Everything runs in this process against
 * a local s3rver: requests and bytes are what S3 would see; times are this machine's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as arrow from 'apache-arrow';
import { QueryCache } from '../lib/query/cache.js';
import { query } from '../lib/query/evaluate.js';
import { S3Store } from '../lib/store/s3.js';
import type { ObjectStore } from '../lib/store/store.js';
import { build } from '../lib/workflow/build.js';
import { startS3Server, type S3RequestRecord } from '../test/support/s3-server.js';

const { values: args } = parseArgs({
  options: {
    fragments: { type: 'string', default: '10000' },
    checkpoints: { type: 'string' },
    rows: { type: 'string', default: '1000' },
    'payload-bytes': { type: 'string', default: '256' },
    repeat: { type: 'string', default: '5' },
    'put-concurrency': { type: 'string', default: '16' },
    out: { type: 'string', default: path.join(import.meta.dirname, 'results', 'scale.json') },
  },
});
const positive = (name: string, raw: string | undefined): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got '${raw}'`);
  return n;
};
const FRAGMENTS = positive('fragments', args.fragments);
const ROWS = positive('rows', args.rows);
const PAYLOAD = positive('payload-bytes', args['payload-bytes']);
const REPEAT = positive('repeat', args.repeat);
const PUT_CONCURRENCY = positive('put-concurrency', args['put-concurrency']);
const CHECKPOINTS = (args.checkpoints ? args.checkpoints.split(',').map((s) => positive('checkpoints', s.trim())) : [100, 1000, 10000, FRAGMENTS])
  .filter((n) => n <= FRAGMENTS)
  .filter((n, i, all) => all.indexOf(n) === i)
  .sort((a, b) => a - b);
if (!CHECKPOINTS.includes(FRAGMENTS)) CHECKPOINTS.push(FRAGMENTS);

const BUCKET = 'scale';
const PREFIX = 'ds';
const DATASET = `s3://${BUCKET}/${PREFIX}`;
const INDEXES = [
  { column: 'k', type: 'bitmap' as const },
  { column: 'tag', type: 'bitmap' as const },
  { column: 'id', type: 'zonemap' as const },
];

/** Fragment `f`: ROWS rows of the six columns, as an Arrow IPC file of one record batch. */
function fragment(f: number): Uint8Array {
  const id = new BigInt64Array(ROWS);
  const k = new Int32Array(ROWS);
  const tag = new Int32Array(ROWS).fill(f % 1000);
  const x = new Float64Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    id[i] = BigInt(f * ROWS + i);
    k[i] = (i * 7 + f) % 100;
    x[i] = Math.sin(f * ROWS + i);
  }
  const s = Array.from({ length: ROWS }, (_, i) => `c${(i + f) % 10}`);
  // The payload built as raw Utf8 buffers: 10,000 fragments of 1,000 strings each would
  // otherwise spend most of the setup in string building.
  const offsets = new Int32Array(ROWS + 1).map((_, i) => i * PAYLOAD);
  const bytes = new Uint8Array(ROWS * PAYLOAD);
  for (let i = 0; i < bytes.length; i++) bytes[i] = 97 + ((i * 31 + f) % 26);
  const payload = arrow.makeVector(arrow.makeData({ type: new arrow.Utf8(), length: ROWS, nullCount: 0, valueOffsets: offsets, data: bytes }));
  const table = new arrow.Table({
    id: arrow.makeVector(id),
    k: arrow.makeVector(k),
    tag: arrow.makeVector(tag),
    x: arrow.makeVector(x),
    s: arrow.vectorFromArray(s, new arrow.Utf8()),
    payload,
  });
  return arrow.tableToIPC(table, 'file');
}

const keyOf = (f: number) => `data/f${String(f).padStart(6, '0')}.arrow`;

async function inParallel<T>(items: readonly T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await run(items[next++]!);
  }));
}

async function sizesUnder(store: ObjectStore, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(prefix)) out.set(o.key, o.size);
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const dataGets = (rs: readonly S3RequestRecord[]) => rs.filter((r) => r.method === 'GET' && r.key.startsWith(`${PREFIX}/data/`));
const bytesOf = (rs: readonly S3RequestRecord[]) => rs.reduce((n, r) => n + r.bytesOut, 0);

async function main(): Promise<void> {
  const server = await startS3Server({ buckets: [BUCKET] });
  Object.assign(process.env, server.env);
  const store = new S3Store({ bucket: BUCKET, prefix: PREFIX });
  const results: { builds: unknown[]; queries: unknown[] } = { builds: [], queries: [] };
  let written = 0;
  let dataBytes = 0;
  try {
    for (const checkpoint of CHECKPOINTS) {
      // Grow the dataset.
      const fresh = Array.from({ length: checkpoint - written }, (_, i) => written + i);
      let freshBytes = 0;
      const putStart = performance.now();
      await inParallel(fresh, PUT_CONCURRENCY, async (f) => {
        const bytes = fragment(f);
        freshBytes += bytes.byteLength;
        await store.put(keyOf(f), bytes);
      });
      dataBytes += freshBytes;
      written = checkpoint;
      console.error(`${checkpoint} fragments (${fresh.length} new, ${(freshBytes / 2 ** 20).toFixed(1)} MiB) written in ${((performance.now() - putStart) / 1000).toFixed(1)} s`);

      // Build them.
      const before = new Map([...(await sizesUnder(store, '_index/versions/')), ...(await sizesUnder(store, '_index/fragments/'))]);
      server.resetLog();
      let planEnd = -1;
      let planMs = 0;
      const t0 = performance.now();
      const summary = await build({
        dataset: DATASET,
        indexes: INDEXES,
        progress: (e) => {
          if (planEnd < 0 && e.step === 'parts') {
            planEnd = server.requests.length;
            planMs = performance.now() - t0;
          }
        },
      });
      const buildMs = performance.now() - t0;
      const log = [...server.requests];
      const planGets = dataGets(log.slice(0, planEnd < 0 ? log.length : planEnd));
      const allGets = dataGets(log);
      const after = new Map([...(await sizesUnder(store, '_index/versions/')), ...(await sizesUnder(store, '_index/fragments/'))]);
      const manifestWritten = [...after].filter(([key]) => !before.has(key)).reduce((n, [, size]) => n + size, 0);
      const versionsWritten = [...after.keys()].filter((key) => key.startsWith('_index/versions/') && !before.has(key)).length;
      const b = {
        fragments: checkpoint,
        newFragments: fresh.length,
        newFragmentBytes: freshBytes,
        version: summary.version,
        planMs: round(planMs, 0),
        planRequestsPerFragment: round(planGets.length / fresh.length),
        planBytesPerFragment: round(bytesOf(planGets) / fresh.length, 0),
        planShareOfData: round(bytesOf(planGets) / freshBytes, 4),
        buildMs: round(buildMs, 0),
        buildDataRequests: allGets.length,
        buildDataBytes: bytesOf(allGets),
        buildShareOfData: round(bytesOf(allGets) / freshBytes, 4),
        requestsInAll: log.length,
        versionsWritten,
        manifestBytesWritten: manifestWritten,
        manifestBytesPerCommit: round(manifestWritten / Math.max(1, versionsWritten), 0),
      };
      results.builds.push(b);
      console.error(JSON.stringify(b));

      // Query it, cold.
      const lastId = checkpoint * ROWS - 1;
      const queries = [
        { name: 'point, bitmap, names ≤10 fragments', where: 'tag = 7' },
        { name: 'point, bitmap, names every fragment', where: 'k = 42' },
        { name: 'range, zone map, names 1–2 fragments', where: `id BETWEEN ${Math.floor(lastId / 2)} AND ${Math.floor(lastId / 2) + 10}` },
        { name: 'range, zone map, names about 1%', where: `id BETWEEN 0 AND ${Math.max(ROWS, Math.floor(lastId / 100))}` },
      ];
      for (const q of queries) {
        for (const registeredOnly of [false, true]) {
          const times: number[] = [];
          let requests = 0;
          let bytes = 0;
          let named = 0;
          for (let r = 0; r < REPEAT; r++) {
            server.resetLog();
            const t = performance.now();
            const answer = await query(DATASET, q.where, { cache: new QueryCache(), registeredOnly });
            times.push(performance.now() - t);
            requests = server.requests.length;
            bytes = bytesOf(server.requests);
            named = answer.fragments.length;
            if (answer.unindexedFragments.length > 0) throw new Error(`${q.where}: ${answer.unindexedFragments.length} fragments unindexed after the build`);
          }
          const row = {
            fragments: checkpoint,
            query: q.name,
            where: q.where,
            registeredOnly,
            fragmentsNamed: named,
            requests,
            bytes,
            latencyMsMedian: round(median(times), 1),
            latencyMsMin: round(Math.min(...times), 1),
            latencyMsMax: round(Math.max(...times), 1),
          };
          results.queries.push(row);
          console.error(JSON.stringify(row));
        }
      }
    }
  } finally {
    const report = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, memoryGiB: round(os.totalmem() / 2 ** 30, 1) },
      settings: { fragments: FRAGMENTS, checkpoints: CHECKPOINTS, rowsPerFragment: ROWS, payloadBytes: PAYLOAD, repeat: REPEAT, indexes: INDEXES },
      dataBytes,
      ...results,
    };
    mkdirSync(path.dirname(args.out!), { recursive: true });
    writeFileSync(args.out!, `${JSON.stringify(report, null, 2)}\n`);
    console.error(`wrote ${args.out}`);
    await server.stop();
  }
}

await main();
