/**
 * Soak: many sequential incremental builds of one small fragment each, on s3rver (through
 * the request-counting proxy), with vacuum every VACUUM_EVERY builds. At checkpoints it
 * prints, for a bitmap point query: median latency, requests, manifest bytes read (LIST of
 * versions + GET of the latest), index bytes read; and the objects under _index/. What a
 * query must read should stay flat apart from the manifest's fragment list, which grows with
 * the data (one entry per fragment), and vacuum should keep the prefix bounded.
 *
 *   npm run bench:soak                       # 200 builds, vacuum every 50
 *   SOAK_BUILDS=40 SOAK_VACUUM_EVERY=10 npm run bench:soak
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { query } from '../lib/query/evaluate.js';
import { S3Store } from '../lib/store/s3.js';
import { listAll } from '../lib/store/store.js';
import { build } from '../lib/workflow/build.js';
import { vacuum } from '../lib/workflow/vacuum.js';
import { fragmentBytes, type ColumnSpec } from '../test/support/dataset.js';
import { startS3Server } from '../test/support/s3-server.js';

const BUILDS = Number(process.env.SOAK_BUILDS ?? 200);
const VACUUM_EVERY = Number(process.env.SOAK_VACUUM_EVERY ?? 50);
const QUERY_RUNS = 9;
const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 'v', type: 'float64' },
];
const rows = (f: number) => ({ k: Array.from({ length: 200 }, (_, i) => (i * 7 + f) % 50), v: Array.from({ length: 200 }, (_, i) => i + f * 200) });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Checkpoint {
  builds: number;
  fragments: number;
  queryMs: number;
  requests: number;
  manifestBytes: number;
  listBytes: number;
  indexBytes: number;
  indexObjects: number;
  note: string;
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const server = await startS3Server({ buckets: ['soak'] });
  Object.assign(process.env, server.env);
  const dataset = 's3://soak/ds';
  const store = new S3Store({ bucket: 'soak', prefix: 'ds' });
  const checkpoints: Checkpoint[] = [];
  const buildMs: number[] = [];

  const measure = async (builds: number, note: string) => {
    const times: number[] = [];
    for (let i = 0; i < QUERY_RUNS; i++) {
      const t0 = performance.now();
      await query(dataset, 'k = 7');
      times.push(performance.now() - t0);
    }
    server.resetLog();
    const r = await query(dataset, 'k = 7');
    const reqs = [...server.requests];
    const objects = await listAll(store, '_index/');
    checkpoints.push({
      builds,
      fragments: builds,
      queryMs: median(times),
      requests: reqs.length,
      listBytes: reqs.filter((q) => q.key === '').reduce((s, q) => s + q.bytesOut, 0),
      manifestBytes: reqs.filter((q) => q.key.includes('/_index/versions/')).reduce((s, q) => s + q.bytesOut, 0),
      indexBytes: reqs.filter((q) => q.key.includes('/_index/indexes/')).reduce((s, q) => s + q.bytesOut, 0),
      indexObjects: objects.length,
      note,
    });
    if (r.unindexedFragments.length) throw new Error(`soak: ${r.unindexedFragments.length} fragments unindexed after build ${builds}`);
    const c = checkpoints[checkpoints.length - 1]!;
    console.log(`  after ${builds} builds${note ? ` (${note})` : ''}: query ${c.queryMs.toFixed(1)} ms, ${c.requests} requests, LIST ${c.listBytes} B, manifest ${c.manifestBytes} B, index ${c.indexBytes} B, ${c.indexObjects} objects under _index/`);
  };

  console.log(`soak: ${BUILDS} incremental builds of one 200-row fragment on s3rver, vacuum (keep 3 versions, older than 0s) every ${VACUUM_EVERY}`);
  try {
    for (let b = 1; b <= BUILDS; b++) {
      await store.put(`data/f${String(b).padStart(4, '0')}.arrow`, fragmentBytes(COLS, rows(b), { batchRows: 200, format: 'file' }));
      const t0 = performance.now();
      await build({ dataset, indexes: b === 1 ? [{ column: 'k', type: 'bitmap' }, { column: 'v', type: 'zonemap', rowsPerZone: 64 }] : undefined, concurrency: 1 });
      buildMs.push(performance.now() - t0);
      if (b === 1 || b % VACUUM_EVERY === 0) await measure(b, '');
      if (b % VACUUM_EVERY === 0) {
        const v = await vacuum({ dataset, olderThan: 0, keepVersions: 3 });
        await measure(b, `after vacuum: ${v.objects} objects deleted`);
      }
    }
  } finally {
    await server.stop();
  }
  const first = median(buildMs.slice(0, 20));
  const last = median(buildMs.slice(-20));
  console.log(`build time: median of the first 20 ${first.toFixed(0)} ms, of the last 20 ${last.toFixed(0)} ms`);
  const here = path.dirname(fileURLToPath(import.meta.url));
  const day = new Date().toISOString().slice(0, 10);
  const out = path.join(here, 'results', `soak-${day}-builds${BUILDS}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), machine: `${os.cpus()[0]?.model}, ${os.cpus().length} cores, Node ${process.version}`, builds: BUILDS, vacuumEvery: VACUUM_EVERY, buildMs: { first20: first, last20: last }, checkpoints }, null, 2)}\n`);
  console.log(`results written to ${path.relative(process.cwd(), out)}`);
}

await main();
