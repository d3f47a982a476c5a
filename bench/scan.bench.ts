/**
 * Scan benchmark: `scan()` over the same data in Parquet and in Arrow IPC, against DuckDB
 * reading the same Parquet files with the same WHERE, and against a full scan by our own
 * reader (no index). DuckDB's rows are an outside oracle: every query's rows (id, cat, val,
 * tag; ids are unique) must equal DuckDB's exactly, in both formats, or the run fails.
 *
 *   npm run bench:scan                                      # 10M rows, 3 runs per measurement
 *   SCAN_BENCH_ROWS=1000000 SCAN_BENCH_RUNS=2 npm run bench:scan
 *
 * DuckDB (`@duckdb/node-api`, pinned) lives in bench/duckdb with its own package.json and
 * lock, installed on first use. Data: 1M-row fragments (id int64 sorted, cat int32 0–99
 * unsorted, val float64, tag utf8), Arrow batches and Parquet row groups of 65,536 rows,
 * generated once under bench/.data/ and indexed with a bitmap on cat and a zone map on id.
 * Reported per query and format: median time, bytes of fragments read and rows; results in
 * bench/results/scan-<date>.json and .md.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import { Table as WasmTable, writeParquet, WriterPropertiesBuilder, Compression } from 'parquet-wasm/node';
import { scan, type ScanStats } from '../lib/scan/scan.js';
import { build } from '../lib/workflow/build.js';
import { envInt } from './env.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROWS = envInt('SCAN_BENCH_ROWS', 10_000_000);
const RUNS = envInt('SCAN_BENCH_RUNS', 3);
const FRAGMENT_ROWS = Math.min(1_000_000, ROWS);
const BATCH_ROWS = 65_536;
const DATA = path.join(HERE, '.data', `scan-${ROWS}`);

const QUERIES = [
  { name: 'bitmap equality, unsorted column', where: 'cat = 7' },
  { name: 'zone-map range, sorted column', where: `id BETWEEN ${Math.floor(ROWS / 2)} AND ${Math.floor(ROWS / 2) + Math.floor(ROWS / 100) - 1}` },
  { name: 'conjunction', where: `cat = 7 AND id BETWEEN ${Math.floor(ROWS / 5)} AND ${Math.floor(ROWS / 5) + Math.floor(ROWS / 10) - 1}` },
  { name: 'unselective (no index applies)', where: 'val < 0.5' },
];

/** Deterministic data: fragment f holds ids [f × FRAGMENT_ROWS, …). */
function fragmentTable(f: number, rows: number): arrow.Table {
  let x = 0x9e3779b9 ^ f;
  const next = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const id = new BigInt64Array(rows);
  const cat = new Int32Array(rows);
  const val = new Float64Array(rows);
  const tags: string[] = [];
  for (let i = 0; i < rows; i++) {
    id[i] = BigInt(f * FRAGMENT_ROWS + i);
    cat[i] = Math.floor(next() * 100);
    val[i] = next();
    tags.push(`t${cat[i]! % 10}`);
  }
  const table = new arrow.Table({ id: arrow.makeVector(id), cat: arrow.makeVector(cat), val: arrow.makeVector(val), tag: arrow.vectorFromArray(tags, new arrow.Utf8()) });
  const batches = table.batches.flatMap((b) => Array.from({ length: Math.ceil(b.numRows / BATCH_ROWS) }, (_, k) => b.slice(k * BATCH_ROWS, (k + 1) * BATCH_ROWS)));
  return new arrow.Table(batches);
}

async function makeData(): Promise<void> {
  if (fs.existsSync(path.join(DATA, 'done'))) return;
  fs.rmSync(DATA, { recursive: true, force: true });
  for (const format of ['arrow', 'parquet']) fs.mkdirSync(path.join(DATA, format, 'data'), { recursive: true });
  for (let f = 0, start = 0; start < ROWS; f++, start += FRAGMENT_ROWS) {
    const table = fragmentTable(f, Math.min(FRAGMENT_ROWS, ROWS - start));
    const name = `part-${String(f).padStart(4, '0')}`;
    fs.writeFileSync(path.join(DATA, 'arrow', 'data', `${name}.arrow`), arrow.tableToIPC(table, 'file'));
    const props = new WriterPropertiesBuilder().setCompression(Compression.SNAPPY).setMaxRowGroupSize(BATCH_ROWS).build();
    fs.writeFileSync(path.join(DATA, 'parquet', 'data', `${name}.parquet`), writeParquet(WasmTable.fromIPCStream(arrow.tableToIPC(table, 'stream')), props));
  }
  for (const format of ['arrow', 'parquet']) {
    await build({ dataset: path.join(DATA, format), indexes: [{ column: 'cat', type: 'bitmap' }, { column: 'id', type: 'zonemap', rowsPerZone: 8192 }] });
  }
  fs.writeFileSync(path.join(DATA, 'done'), '');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** Our scan, timed to its last batch. */
async function ours(dataset: string, where: string, use?: []): Promise<{ ms: number; stats: ScanStats }> {
  const t = performance.now();
  const s = scan(dataset, where, { use });
  let rows = 0;
  for await (const b of s) rows += b.numRows;
  const ms = performance.now() - t;
  if (rows !== s.stats.rowsMatched) throw new Error(`${where}: ${rows} rows iterated, ${s.stats.rowsMatched} counted`);
  return { ms, stats: s.stats };
}

/** The part of @duckdb/node-api used here (it is installed in bench/duckdb only). */
interface DuckDbApi {
  DuckDBInstance: {
    create(path: string): Promise<{
      connect(): Promise<{
        runAndReadAll(sql: string): Promise<{ getColumns(): unknown[][] }>;
        run(sql: string): Promise<{ fetchChunk(): Promise<{ rowCount: number } | null> }>;
      }>;
    }>;
  };
}

interface DuckRows {
  id: BigInt64Array;
  cat: Int32Array;
  val: Float64Array;
  tag: string[];
}

async function main() {
  const require = createRequire(path.join(HERE, 'duckdb', 'package.json'));
  const { DuckDBInstance } = (await import(require.resolve('@duckdb/node-api'))) as DuckDbApi;
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${ROWS.toLocaleString()} rows, ${RUNS} runs`);
  await makeData();
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  const files = `'${path.join(DATA, 'parquet', 'data', '*.parquet')}'`;

  const duckRows = async (where: string): Promise<DuckRows> => {
    const r = await duck.runAndReadAll(`SELECT id, cat, val, tag FROM read_parquet(${files}) WHERE ${where} ORDER BY id`);
    const cols = r.getColumns();
    return { id: BigInt64Array.from(cols[0] as bigint[]), cat: Int32Array.from(cols[1] as number[]), val: Float64Array.from(cols[2] as number[]), tag: cols[3] as string[] };
  };
  const duckTime = async (where: string) => {
    const t = performance.now();
    const result = await duck.run(`SELECT id, cat, val, tag FROM read_parquet(${files}) WHERE ${where}`);
    let rows = 0;
    for (let chunk = await result.fetchChunk(); chunk && chunk.rowCount > 0; chunk = await result.fetchChunk()) rows += chunk.rowCount;
    return { ms: performance.now() - t, rows };
  };
  /** Our rows equal DuckDB's: same ids in order (scan returns id order here), same values. */
  const agree = async (dataset: string, where: string, want: DuckRows): Promise<string | undefined> => {
    let k = 0;
    const dec = new TextDecoder();
    for await (const b of scan(dataset, where, { columns: ['id', 'cat', 'val', 'tag'] })) {
      const id = b.getChild('id')!.data[0]!.values as BigInt64Array;
      const cat = b.getChild('cat')!.data[0]!.values as Int32Array;
      const val = b.getChild('val')!.data[0]!.values as Float64Array;
      const tag = b.getChild('tag')!.data[0]!;
      const off = b.getChild('id')!.data[0]!.offset;
      for (let i = 0; i < b.numRows; i++, k++) {
        const t = tag.valueOffsets as Int32Array;
        const tagText = dec.decode((tag.values as Uint8Array).subarray(t[tag.offset + i]!, t[tag.offset + i + 1]!));
        if (k >= want.id.length || id[off + i] !== want.id[k] || cat[off + i] !== want.cat[k] || !Object.is(val[off + i], want.val[k]) || tagText !== want.tag[k]) {
          return `row ${k}: ours (${id[off + i]}, ${cat[off + i]}, ${val[off + i]}, ${tagText}) vs DuckDB (${want.id[k]}, ${want.cat[k]}, ${want.val[k]}, ${want.tag[k]})`;
        }
      }
    }
    return k === want.id.length ? undefined : `ours ${k} rows, DuckDB ${want.id.length}`;
  };

  const results = [];
  let failed = false;
  for (const q of QUERIES) {
    const want = await duckRows(q.where);
    const row: Record<string, unknown> = { query: q.name, where: q.where, rows: want.id.length };
    const duckRuns = [];
    for (let r = 0; r < RUNS; r++) duckRuns.push(await duckTime(q.where));
    if (duckRuns.some((d) => d.rows !== want.id.length)) throw new Error(`${q.where}: DuckDB's row count varies`);
    row.duckdbMs = median(duckRuns.map((d) => d.ms));
    for (const format of ['parquet', 'arrow'] as const) {
      const dataset = path.join(DATA, format);
      const mismatch = await agree(dataset, q.where, want);
      if (mismatch) {
        failed = true;
        console.error(`DISAGREEMENT ${format} ${q.where}: ${mismatch}`);
      }
      const indexed: Awaited<ReturnType<typeof ours>>[] = [];
      const full: Awaited<ReturnType<typeof ours>>[] = [];
      for (let r = 0; r < RUNS; r++) {
        indexed.push(await ours(dataset, q.where));
        full.push(await ours(dataset, q.where, []));
      }
      const pick = (xs: typeof indexed) => {
        const m = median(xs.map((x) => x.ms));
        const s = xs[0]!.stats;
        return { ms: Math.round(m * 10) / 10, bytesRead: s.bytesRead, reads: s.reads, rowsRead: s.rowsRead, rows: s.rowsMatched };
      };
      row[format] = { agreesWithDuckdb: !mismatch, scan: pick(indexed), fullScan: pick(full) };
    }
    results.push(row);
    console.log(JSON.stringify(row));
  }

  const date = new Date().toISOString().slice(0, 10);
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  // Runs at another size than the default are named by it (and not committed: .gitignore).
  const base = path.join(HERE, 'results', ROWS === 10_000_000 ? `scan-${date}` : `scan-${date}-rows${ROWS}`);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify({ date, rows: ROWS, runs: RUNS, node: process.version, cpus: `${os.cpus().length} × ${os.cpus()[0]?.model}`, results }, null, 1)}\n`);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const lines = [
    `# scan vs DuckDB, ${ROWS.toLocaleString()} rows (${date})`,
    '',
    'Median of the runs. "scan": ours, following the indexes; "full": our reader with no index; DuckDB reads the Parquet files. Bytes are fragment bytes read by our reader.',
    '',
    '| query | rows | DuckDB (Parquet) | scan Parquet | full Parquet | scan Arrow | full Arrow | agree |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const p = r.parquet as { agreesWithDuckdb: boolean; scan: { ms: number; bytesRead: number }; fullScan: { ms: number; bytesRead: number } };
      const a = r.arrow as typeof p;
      return `| ${r.query}: \`${r.where}\` | ${(r.rows as number).toLocaleString()} | ${Math.round(r.duckdbMs as number)} ms | ${p.scan.ms} ms, ${mb(p.scan.bytesRead)} | ${p.fullScan.ms} ms, ${mb(p.fullScan.bytesRead)} | ${a.scan.ms} ms, ${mb(a.scan.bytesRead)} | ${a.fullScan.ms} ms, ${mb(a.fullScan.bytesRead)} | ${p.agreesWithDuckdb && a.agreesWithDuckdb ? 'yes' : '**no**'} |`;
    }),
    '',
  ];
  fs.writeFileSync(`${base}.md`, lines.join('\n'));
  console.log(`written: ${path.relative(process.cwd(), base)}.json, .md`);
  if (failed) {
    console.error('scan disagrees with DuckDB: see above');
    process.exitCode = 1;
  }
}

await main();
