/**
 * Core benchmark: part-build throughput of the bitmap and zone-map trainers, an end-to-end
 * build, merge throughput and query latency, each against a naive reference measured in the
 * same run (so the ratio means something on whatever machine runs it).
 *
 *   npm run bench                                   # 10M rows, 3 runs per measurement
 *   BENCH_ROWS=1000000 BENCH_RUNS=2 npm run bench   # quick check
 *
 * Data is generated once per row count under bench/.data/ (gitignored) and reused.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import roaring from 'roaring';
import { describeColumnType } from '../lib/format/column-type.js';
import type { IndexParams } from '../lib/indexes/kind.js';
import { indexKind } from '../lib/indexes/registry.js';
import { query } from '../lib/query/evaluate.js';
import { LocalStore } from '../lib/store/local.js';
import { listAll } from '../lib/store/store.js';
import { build } from '../lib/workflow/build.js';
import { buildPart } from '../lib/workflow/build-part.js';
import { commit } from '../lib/workflow/commit.js';
import { merge } from '../lib/workflow/merge.js';
import { plan } from '../lib/workflow/plan.js';
import { buildPrefix, type IndexRequest } from '../lib/workflow/types.js';
import { rng } from '../scripts/sample-data.js';
import { S3Store } from '../lib/store/s3.js';
import { useThroughputGc } from '../lib/runtime.js';
import { startS3Server } from '../test/support/s3-server.js';
import { envInt } from './env.js';

const { RoaringBitmap32 } = roaring;

const ROWS = envInt('BENCH_ROWS', 10_000_000);
const RUNS = envInt('BENCH_RUNS', 3);
const FRAGMENT_ROWS = 1_000_000;
/** The per-row reference is slow; past this many rows it runs on a prefix and is scaled. */
const REFERENCE_ROWS = 2_000_000;
const QUERY_RUNS = 20;
const ROWS_PER_ZONE = 8192;

const TARGETS = { bitmapInt: 25e6, bitmapUtf8: 8e6, zonemap: 50e6 };

const HERE = path.dirname(fileURLToPath(import.meta.url));
// The V8 setting our CLI and Lambda handlers run with (lib/runtime.ts).
useThroughputGc('large-builds');
const DATA_ROOT = path.join(HERE, '.data', `rows-${ROWS}`);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'scalar-index-bench-'));


// ---------------------------------------------------------------------------------------------
// Timing and reporting

const now = () => performance.now();

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Run `fn` `runs` times and return the median wall time in ms. */
async function timeMedian(runs: number, fn: (run: number) => unknown): Promise<number> {
  const ms: number[] = [];
  for (let r = 0; r < runs; r++) {
    // Collect garbage of the previous run first when exposed, so it is not billed to this one.
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = now();
    await fn(r);
    ms.push(now() - t0);
  }
  return median(ms);
}

interface Row {
  section: string;
  name: string;
  value: number;
  unit: 'rows/s' | 'MB/s' | 'ms' | 's';
  reference?: { name: string; value: number };
  target?: number;
  note?: string;
}
const results: Row[] = [];

function fmt(value: number, unit: Row['unit']): string {
  if (unit === 'rows/s') return value >= 1e6 ? `${(value / 1e6).toFixed(1)}M rows/s` : `${(value / 1e3).toFixed(0)}k rows/s`;
  if (unit === 'MB/s') return `${value.toFixed(1)} MB/s`;
  if (unit === 's') return `${value.toFixed(2)} s`;
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} ms`;
}

function record(row: Row): void {
  results.push(row);
  console.log(`  ${row.name}: ${fmt(row.value, row.unit)}`);
}

/** ours / reference as "how many times better": throughput divides, latency inverts. */
function ratio(r: Row): number | undefined {
  if (!r.reference) return undefined;
  return r.unit === 'ms' || r.unit === 's' ? r.reference.value / r.value : r.value / r.reference.value;
}

function printTable(): void {
  const header = ['measurement', 'result', 'target', 'reference', 'ours/ref', 'note'];
  const lines = results.map((r) => {
    const x = ratio(r);
    const target = r.target === undefined ? '' : `≥ ${fmt(r.target, r.unit)} ${r.value >= r.target ? 'ok' : 'MISSED'}`;
    return [
      `${r.section}: ${r.name}`,
      fmt(r.value, r.unit),
      target,
      r.reference ? `${r.reference.name} ${fmt(r.reference.value, r.unit)}` : '',
      x === undefined ? '' : `${x.toFixed(1)}×`,
      r.note ?? '',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log();
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const l of lines) console.log(line(l));
}

// ---------------------------------------------------------------------------------------------
// Data

/**
 * Write the dataset with typed arrays (building Arrow vectors value by value would dominate the
 * run). One record batch per 1M-row fragment.
 */
function generate(dir: string): void {
  const dataDir = path.join(dir, 'data');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const rand = rng(7);
  const enc = new TextEncoder();
  const strings = Array.from({ length: 1000 }, (_, i) => enc.encode(`s${i}`));
  for (let f = 0, start = 0; start < ROWS; f++, start += FRAGMENT_ROWS) {
    const n = Math.min(FRAGMENT_ROWS, ROWS - start);
    const cat = new Int32Array(n);
    const strIdx = new Uint16Array(n);
    const offsets = new Int32Array(n + 1);
    const f64 = new Float64Array(n);
    const valid = new Uint8Array((n + 7) >> 3);
    let nulls = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      cat[i] = Math.floor(rand() * 100);
      const s = Math.floor(rand() * 1000);
      strIdx[i] = s;
      bytes += strings[s]!.length;
      offsets[i + 1] = bytes;
      if (rand() < 0.01) nulls++;
      else {
        valid[i >> 3]! |= 1 << (i & 7);
        f64[i] = rand();
      }
    }
    const utf8 = new Uint8Array(bytes);
    for (let i = 0; i < n; i++) utf8.set(strings[strIdx[i]!]!, offsets[i]!);
    const table = new arrow.Table({
      cat_i32: arrow.makeVector(cat),
      cat_str: arrow.makeVector(arrow.makeData({ type: new arrow.Utf8(), length: n, valueOffsets: offsets, data: utf8 })),
      f64: arrow.makeVector(arrow.makeData({ type: new arrow.Float64(), length: n, nullCount: nulls, nullBitmap: valid, data: f64 })),
    });
    fs.writeFileSync(path.join(dataDir, `frag-${String(f).padStart(5, '0')}.arrow`), arrow.tableToIPC(table, 'file'));
  }
  fs.writeFileSync(path.join(dir, 'COMPLETE'), String(ROWS));
}

function fragmentFiles(dir: string): string[] {
  const dataDir = path.join(dir, 'data');
  return fs.readdirSync(dataDir).filter((f) => f.endsWith('.arrow')).sort().map((f) => path.join(dataDir, f));
}

/** A fresh dataset directory sharing the fragment files (hard links: fragments are immutable). */
function freshDataset(name: string): string {
  const dir = path.join(WORK, name);
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  for (const f of fragmentFiles(DATA_ROOT)) fs.linkSync(f, path.join(dir, 'data', path.basename(f)));
  return dir;
}

interface Fragment {
  id: number;
  rows: number;
  batches: arrow.RecordBatch[];
}

function loadAll(): Fragment[] {
  return fragmentFiles(DATA_ROOT).map((file, id) => {
    const table = arrow.tableFromIPC(fs.readFileSync(file));
    return { id, rows: table.numRows, batches: table.batches };
  });
}

/** The leading fragments holding about `rows` rows, for the slow references. */
function prefix(fragments: Fragment[], rows: number): Fragment[] {
  const out: Fragment[] = [];
  let n = 0;
  for (const f of fragments) {
    if (n >= rows) break;
    out.push(f);
    n += f.rows;
  }
  return out;
}

const totalRows = (fragments: Fragment[]) => fragments.reduce((n, f) => n + f.rows, 0);

// ---------------------------------------------------------------------------------------------
// Part builds: ours and the per-row references

async function trainPart(fragments: Fragment[], type: 'bitmap' | 'zonemap', column: string, params: IndexParams, run: number): Promise<void> {
  const schema = fragments[0]!.batches[0]!.schema;
  const col = schema.fields.findIndex((f) => f.name === column);
  const ct = describeColumnType(column, schema.fields[col]!.type);
  const trainer = indexKind(type).createTrainer(ct, params);
  for (const f of fragments) {
    trainer.startFragment(f.id, f.rows);
    for (const batch of f.batches) trainer.addBatch(batch.getChildAt(col)!.data[0]!);
    trainer.endFragment();
  }
  const store = new LocalStore(path.join(WORK, 'parts'));
  await trainer.writeSegment(store, `${type}-${column}-${run}/`, new Map());
}

/** What a newcomer writes: `get(i)` per row into a Map of bitmaps, one map per fragment. */
function referenceBitmap(fragments: Fragment[], column: string): number {
  let bytes = 0;
  for (const f of fragments) {
    const byValue = new Map<unknown, InstanceType<typeof RoaringBitmap32>>();
    let row = 0;
    for (const batch of f.batches) {
      const vec = batch.getChild(column)!;
      for (let i = 0; i < vec.length; i++, row++) {
        const v = vec.get(i);
        let bm = byValue.get(v);
        if (!bm) byValue.set(v, (bm = new RoaringBitmap32()));
        bm.add(row);
      }
    }
    // Serialize too, since our timing includes writing the part.
    for (const bm of byValue.values()) bytes += bm.serialize('portable').length;
  }
  return bytes;
}

/** Per-zone min/max with `get(i)`, skipping nulls. */
function referenceZonemap(fragments: Fragment[], column: string): number {
  let zones = 0;
  for (const f of fragments) {
    for (const batch of f.batches) {
      const vec = batch.getChild(column)!;
      for (let z = 0; z < vec.length; z += ROWS_PER_ZONE) {
        let min: unknown = null;
        let max: unknown = null;
        const end = Math.min(vec.length, z + ROWS_PER_ZONE);
        for (let i = z; i < end; i++) {
          const v = vec.get(i);
          if (v === null) continue;
          if (min === null || v < (min as number)) min = v;
          if (max === null || v > (max as number)) max = v;
        }
        if (min !== null) zones++;
      }
    }
  }
  return zones;
}

async function benchPartBuilds(fragments: Fragment[]): Promise<void> {
  const rows = totalRows(fragments);
  const refFragments = prefix(fragments, REFERENCE_ROWS);
  const refRows = totalRows(refFragments);
  const refNote = refRows < rows ? `reference on first ${refRows.toLocaleString('en-US')} rows, scaled to rows/s` : '';
  const cases = [
    { section: 'bitmap part', type: 'bitmap', column: 'cat_i32', params: {}, target: TARGETS.bitmapInt },
    { section: 'bitmap part', type: 'bitmap', column: 'cat_str', params: {}, target: TARGETS.bitmapUtf8 },
    { section: 'zonemap part', type: 'zonemap', column: 'cat_i32', params: { rowsPerZone: ROWS_PER_ZONE }, target: TARGETS.zonemap },
    { section: 'zonemap part', type: 'zonemap', column: 'f64', params: { rowsPerZone: ROWS_PER_ZONE }, target: TARGETS.zonemap },
    { section: 'zonemap part', type: 'zonemap', column: 'cat_str', params: { rowsPerZone: ROWS_PER_ZONE }, target: TARGETS.zonemap },
  ] as const;
  for (const c of cases) {
    console.log(`${c.section} ${c.column} ...`);
    const ours = await timeMedian(RUNS, (run) => trainPart(fragments, c.type, c.column, c.params, run));
    const ref = await timeMedian(RUNS, () => (c.type === 'bitmap' ? referenceBitmap(refFragments, c.column) : referenceZonemap(refFragments, c.column)));
    record({
      section: c.section,
      name: `${c.column} (${rows.toLocaleString('en-US')} rows, incl. writePart)`,
      value: rows / (ours / 1000),
      unit: 'rows/s',
      target: c.target,
      reference: { name: c.type === 'bitmap' ? 'get(i)+Map<v,Roaring>.add' : 'get(i) min/max', value: refRows / (ref / 1000) },
      note: refNote,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// End-to-end build and merge

const INDEXES: IndexRequest[] = [
  { column: 'cat_i32', type: 'bitmap' },
  { column: 'cat_str', type: 'bitmap' },
  { column: 'f64', type: 'zonemap' },
];

/** Returns the dataset of the last run, indexed, for the query benchmark. */
async function benchBuild(): Promise<string> {
  console.log('end-to-end build ...');
  let last = '';
  const ms = await timeMedian(RUNS, async (run) => {
    last = freshDataset(`build-${run}`);
    await build({ dataset: last, indexes: INDEXES, groupRows: 2_000_000, concurrency: 2 });
  });
  localBuildMs = ms;
  record({ section: 'build()', name: 'cat_i32:bitmap, cat_str:bitmap, f64:zonemap, groupRows 2M', value: ms / 1000, unit: 's' });
  record({ section: 'build()', name: 'end-to-end throughput', value: ROWS / (ms / 1000), unit: 'rows/s' });

  console.log('merge ...');
  const mergeMs: number[] = [];
  const mergeBytes: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const dataset = freshDataset(`merge-${run}`);
    const planned = await plan({ dataset, indexes: INDEXES, groupRows: 1_000_000 });
    for (const groupId of planned.groupIds) await buildPart({ dataset, buildId: planned.buildId, groupId });
    const parts = await listAll(new LocalStore(dataset), buildPrefix(planned.buildId));
    mergeBytes.push(parts.filter((p) => p.key.endsWith('.arrow')).reduce((n, p) => n + p.size, 0));
    (globalThis as { gc?: () => void }).gc?.();
    const t0 = now();
    const merged = await merge({ dataset, buildId: planned.buildId });
    mergeMs.push(now() - t0);
    await commit(merged);
    fs.rmSync(dataset, { recursive: true, force: true });
  }
  const mb = median(mergeBytes) / 1e6;
  record({
    section: 'merge()',
    name: `${fragmentCount(ROWS)} parts/index, ${mb.toFixed(1)} MB of parts`,
    value: mb / (median(mergeMs) / 1000),
    unit: 'MB/s',
    note: `merge alone ${median(mergeMs).toFixed(0)} ms`,
  });
  return last;
}

const fragmentCount = (rows: number) => Math.ceil(rows / FRAGMENT_ROWS);

// ---------------------------------------------------------------------------------------------
// Queries

/** Brute force: read every fragment and test `cat_i32 = 7` on the typed array. */
function scanCatI32Equals(dataset: string, value: number): number {
  let hits = 0;
  for (const file of fragmentFiles(dataset)) {
    const table = arrow.tableFromIPC(fs.readFileSync(file));
    for (const data of table.getChild('cat_i32')!.data) {
      const values = data.values as Int32Array;
      const end = data.offset + data.length;
      // No nulls in cat_i32, so the validity bitmap can be ignored.
      for (let i = data.offset; i < end; i++) if (values[i] === value) hits++;
    }
  }
  return hits;
}

const QUERIES = ["cat_i32 = 7", "cat_str IN ('s1','s2')", 'f64 BETWEEN 0.25 AND 0.26', 'f64 IS NULL', "cat_i32 = 7 AND cat_str = 's5'"];
/** Local-disk figures, the reference for the S3 rows measured later in the same run. */
const localQueryMs = new Map<string, number>();
let localBuildMs = 0;

async function benchQueries(dataset: string): Promise<void> {
  for (const where of QUERIES) {
    console.log(`query ${where} ...`);
    const warm = await query(dataset, where);
    const ms = await timeMedian(QUERY_RUNS, () => query(dataset, where));
    localQueryMs.set(where, ms);
    const row: Row = {
      section: 'query',
      name: where,
      value: ms,
      unit: 'ms',
      note: `${warm.rows.toLocaleString('en-US')} rows${warm.exact ? '' : ' (candidates)'}, ${warm.stats.indexReads} index reads`,
    };
    if (where === 'cat_i32 = 7') {
      const expected = scanCatI32Equals(dataset, 7);
      if (expected !== warm.rows) throw new Error(`cat_i32 = 7: index says ${warm.rows} rows, scan says ${expected}`);
      row.reference = { name: 'full scan', value: await timeMedian(RUNS, () => scanCatI32Equals(dataset, 7)) };
    }
    record(row);
  }
}

// ---------------------------------------------------------------------------------------------
// The same build and queries through the S3 store, against s3rver on loopback. s3rver keeps
// objects on this disk, so the difference to the local rows is the object-store path itself
// (HTTP, SDK, ranged reads, multipart writes), not S3's network latency.

async function benchS3(): Promise<void> {
  console.log('S3 (s3rver on loopback) ...');
  const server = await startS3Server({ buckets: ['bench'] });
  const saved = { ...process.env };
  // The library takes its S3 settings from the standard environment, as the CLI does. Talk to
  // s3rver directly: the test proxy's bookkeeping is not part of what we measure.
  Object.assign(process.env, server.env, { AWS_ENDPOINT_URL_S3: server.directEndpoint });
  try {
    const files = fragmentFiles(DATA_ROOT);
    let lastUri = '';
    const runs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const prefix = `run-${run}`;
      const store = new S3Store({ bucket: 'bench', prefix });
      for (const f of files) await store.put(`data/${path.basename(f)}`, fs.readFileSync(f));
      lastUri = `s3://bench/${prefix}`;
      (globalThis as { gc?: () => void }).gc?.();
      const t0 = now();
      await build({ dataset: lastUri, indexes: INDEXES, groupRows: 2_000_000, concurrency: 2 });
      runs.push(now() - t0);
    }
    const ms = median(runs);
    record({
      section: 'S3 build()',
      name: 'same build, dataset on s3rver',
      value: ms / 1000,
      unit: 's',
      reference: { name: 'local disk', value: localBuildMs / 1000 },
      note: `${(ms / localBuildMs).toFixed(2)}× the local time (upload not timed)`,
    });
    for (const where of QUERIES) {
      const warm = await query(lastUri, where);
      const qms = await timeMedian(QUERY_RUNS, () => query(lastUri, where));
      const local = localQueryMs.get(where);
      record({
        section: 'S3 query',
        name: where,
        value: qms,
        unit: 'ms',
        reference: local === undefined ? undefined : { name: 'local disk', value: local },
        note: `${warm.stats.indexReads} index reads, +${(qms - (local ?? 0)).toFixed(1)} ms over local`,
      });
    }
  } finally {
    process.env = saved;
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.release()}` };
  console.log(`scalar-index core benchmark — ${started.toISOString()}`);
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, ${machine.platform}`);
  console.log(`rows: ${ROWS.toLocaleString('en-US')} in ${fragmentCount(ROWS)} fragment(s), median of ${RUNS} run(s), queries median of ${QUERY_RUNS}`);
  console.log(`targets: bitmap part ≥ 25M rows/s (int32), ≥ 8M rows/s (utf8); zone map part ≥ 50M rows/s\n`);

  const marker = path.join(DATA_ROOT, 'COMPLETE');
  if (!fs.existsSync(marker) || fs.readFileSync(marker, 'utf8') !== String(ROWS)) {
    console.log(`generating ${DATA_ROOT} ...`);
    const t0 = now();
    generate(DATA_ROOT);
    console.log(`  generated in ${((now() - t0) / 1000).toFixed(1)} s`);
  }

  try {
    // Decode once up front: part-build numbers exclude file reading.
    const fragments = loadAll();
    await benchPartBuilds(fragments);
    fragments.length = 0;
    const dataset = await benchBuild();
    await benchQueries(dataset);
    await benchS3();
  } finally {
    fs.rmSync(WORK, { recursive: true, force: true });
  }

  printTable();
  const day = started.toISOString().slice(0, 10);
  const outDir = path.join(HERE, 'results');
  fs.mkdirSync(outDir, { recursive: true });
  // Only the default configuration writes the dated file that the README quotes.
  const isDefault = ROWS === 10_000_000 && RUNS === 3;
  const out = path.join(outDir, isDefault ? `core-${day}.json` : `core-${day}-rows${ROWS}-runs${RUNS}.json`);
  const json = {
    date: started.toISOString(),
    machine,
    rows: ROWS,
    runs: RUNS,
    targets: TARGETS,
    results: results.map((r) => ({ ...r, ratio: ratio(r) })),
    seconds: (Date.now() - started.getTime()) / 1000,
  };
  fs.writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nresults written to ${path.relative(process.cwd(), out)} (total ${json.seconds.toFixed(0)} s)`);
}

await main();
