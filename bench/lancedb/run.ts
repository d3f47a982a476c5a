/**
 * Side-by-side benchmark with LanceDB, which doubles as an outside oracle: on identical data,
 * every bitmap answer of ours must equal LanceDB's `_rowaddr` set exactly, and every zone-map
 * answer must contain it. A mismatch fails the run (exit 1).
 *
 *   npm run bench:lancedb                                          # 1M and 10M rows
 *   LANCEDB_BENCH_ROWS=1000000,10000000,50000000 npm run bench:lancedb
 *   LANCEDB_BENCH_RUNS=5 LANCEDB_BENCH_QUERY_RUNS=30 npm run bench:lancedb
 *   LANCEDB_BENCH_CASES=bitmap-cat_i32,bitmap-cat_str npm run bench:lancedb   # some builds only
 *   LANCEDB_BENCH_PROFILE=1 npm run bench:lancedb                  # --cpu-prof our children
 *   LANCEDB_BENCH_OURS=dist npm run bench:lancedb                  # ours from compiled JS, not tsx
 *
 * This driver runs no benchmark code itself. Each build (per side, index set and run) happens
 * in a fresh child process, so its peak RSS (`process.resourceUsage().maxRSS`, every thread
 * included) is that build's alone; queries run in one long-lived child per side, driven in
 * lockstep so that run i of ours and run i of LanceDB are taken back to back. Our children run
 * the main repository's sources under tsx (apache-arrow 21); LanceDB's run on plain Node from
 * bench/lancedb/node_modules (apache-arrow 18.1).
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDataset } from '../../lib/dataset.js';
import { allFragments, loadLatestManifest } from '../../lib/manifest/manifest.js';
import { build } from '../../lib/workflow/build.js';
import type { IndexRequest } from '../../lib/workflow/types.js';
import { DATA_ROOT, FRAGMENT_ROWS, HERE, ID_BASE, fragmentFiles, fragmentSizes, linkDataset, queries, type BenchQuery } from './data.js';
import { median, renderMarkdown, renderSvg, sizeLabel, summarize, type BuildResult, type QueryResult, type Report, type SizeReport } from './report.js';
import { envInt, envList } from '../env.js';

const ROWS = envList('LANCEDB_BENCH_ROWS', [1_000_000, 10_000_000]);
const RUNS = envInt('LANCEDB_BENCH_RUNS', 3);
const QUERY_RUNS = envInt('LANCEDB_BENCH_QUERY_RUNS', 15);
const PROFILE = process.env.LANCEDB_BENCH_PROFILE === '1';
/** 'source' (default): our library from its TypeScript sources under tsx; 'dist': compiled by tsc first. */
const OURS = process.env.LANCEDB_BENCH_OURS ?? 'source';
/** Stop repeating a query once it has used this much time and has at least 3 runs. */
const QUERY_BUDGET_MS = 20_000;
const WORK = path.join(DATA_ROOT, `work-${process.pid}`);
const DIST = path.join(DATA_ROOT, 'dist');
const PROFILE_DIR = path.join(DATA_ROOT, 'profiles');



// ---------------------------------------------------------------------------------------------
// Child processes

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

class Child {
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Promise<void>;
  readonly ready: Promise<unknown>;

  private constructor(
    readonly side: 'ours' | 'lance',
    private proc: ChildProcess,
  ) {
    let ready!: (v: unknown) => void;
    this.ready = new Promise((res) => (ready = res));
    proc.on('message', (m: Reply) => {
      if (m.id === 0) return ready(m.ok);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (!p) return;
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${side} child: ${m.error}`));
    });
    this.exited = new Promise((res) =>
      proc.on('exit', (code, signal) => {
        for (const p of this.pending.values()) p.reject(new Error(`${side} child exited (${signal ?? code}) mid-request`));
        this.pending.clear();
        res();
      }),
    );
  }

  /** Ours: the main repo's sources under tsx (inherited from this process's execArgv). */
  static async ours(): Promise<Child> {
    const execArgv = [...process.execArgv];
    if (PROFILE) {
      fs.mkdirSync(PROFILE_DIR, { recursive: true });
      execArgv.push('--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`);
    }
    const env = OURS === 'dist' ? { ...process.env, LANCEDB_BENCH_LIB: DIST } : process.env;
    // Compiled: ours.ts transpiled too and run on bare Node, like LanceDB's side (tsx's loader
    // thread would otherwise add to our peak RSS and start-up).
    const entry = OURS === 'dist' ? OURS_COMPILED : path.join(HERE, 'ours.ts');
    const argv = OURS === 'dist' ? execArgv.filter((a, i) => !isTsxArg(execArgv, i)) : execArgv;
    const c = new Child('ours', fork(entry, [], { execArgv: argv, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    await c.ready;
    return c;
  }

  /** LanceDB: bare Node, resolving its packages from bench/lancedb/node_modules. */
  static async lance(): Promise<Child> {
    const env = { ...process.env, LANCE_LOG: process.env.LANCE_LOG ?? 'error' };
    const c = new Child('lance', fork(path.join(HERE, 'lance.mjs'), [], { execArgv: [], env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    await c.ready;
    return c;
  }

  request<T>(op: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, op, args });
    });
  }

  async close(): Promise<Usage> {
    const usage = await this.request<Usage>('usage');
    this.proc.disconnect();
    await this.exited;
    return usage;
  }
}

interface Usage {
  startRssMB: number;
  maxRssMB: number;
}

/** Run one request in a fresh child and return its result with the child's peak RSS. */
async function once<T>(side: 'ours' | 'lance', op: string, args: unknown): Promise<{ result: T; usage: Usage }> {
  const child = side === 'ours' ? await Child.ours() : await Child.lance();
  try {
    const result = await child.request<T>(op, args);
    return { result, usage: await child.close() };
  } catch (err) {
    await child.close().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Datasets: ours (hard links to the cached fragments) and LanceDB's table (cached per size)

/** Our dataset with its fragments registered (the manifest is copied, the fragments linked). */
async function registeredTemplate(rows: number): Promise<string> {
  const dir = path.join(WORK, `ours-${rows}-registered`);
  if (fs.existsSync(dir)) return dir;
  linkDataset(dir, rows);
  await build({ dataset: dir }); // no indexes: registers the fragments only
  const { store } = openDataset(dir);
  const fragments = await allFragments(store, await loadLatestManifest(store));
  const wrong = fragments.filter((f) => f.path !== `data/part-${String(f.id).padStart(5, '0')}.arrow`);
  if (wrong.length > 0 || fragments.length !== fragmentSizes(rows).length) {
    throw new Error(`our fragment ids do not follow file order: ${JSON.stringify(fragments.map((f) => [f.id, f.path]))}`);
  }
  return dir;
}

let fresh = 0;
function freshDir(name: string): string {
  const dir = path.join(WORK, `${name}-${fresh++}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A copy of a directory tree where files under `linkUnder` (immutable data) are hard links. */
function copyTree(src: string, dst: string, linkUnder: (rel: string) => boolean, rel = ''): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const r = path.join(rel, e.name);
    const from = path.join(src, e.name);
    const to = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(from, to, linkUnder, r);
    else if (linkUnder(r)) fs.linkSync(from, to);
    else fs.copyFileSync(from, to);
  }
}

async function oursDataset(rows: number, registered: boolean): Promise<string> {
  const dir = freshDir('ours');
  if (!registered) return linkDataset(dir, rows);
  copyTree(await registeredTemplate(rows), dir, (r) => r.startsWith(`data${path.sep}`));
  return dir;
}

interface Verification {
  rows: number;
  mismatches: number;
  firstMismatch: string;
  fragments: { id: number; rows: number; firstOffset: number; lastOffset: number }[];
}
interface LanceBase {
  dir: string;
  ingestMs: number;
  verification: Verification;
}

/**
 * LanceDB's table for `rows`, made once from the same fragment files and cached; its
 * `_rowaddr`s are checked row by row against our fragment ids before it is trusted.
 */
async function lanceBase(rows: number): Promise<LanceBase> {
  const dir = path.join(DATA_ROOT, `lance-${rows}`);
  const marker = path.join(dir, 'COMPLETE.json');
  if (fs.existsSync(marker)) return { dir, ...(JSON.parse(fs.readFileSync(marker, 'utf8')) as Omit<LanceBase, 'dir'>) };
  fs.rmSync(dir, { recursive: true, force: true });
  const sizes = fragmentSizes(rows);
  console.log(`  writing LanceDB table (${sizes.length} × table.add) ...`);
  const child = await Child.lance();
  try {
    const ingest = await child.request<{ ms: number; rows: number; fragments: number }>('ingest', { dir, files: fragmentFiles(rows) });
    const verification = await child.request<Verification>('verify', { dir, fragmentRows: FRAGMENT_ROWS, idBase: String(ID_BASE) });
    const problems: string[] = [];
    if (ingest.rows !== rows || verification.rows !== rows) problems.push(`LanceDB holds ${ingest.rows} rows (${verification.rows} scanned), expected ${rows}`);
    if (ingest.fragments !== sizes.length) problems.push(`LanceDB made ${ingest.fragments} fragments, expected ${sizes.length}`);
    if (verification.mismatches > 0) problems.push(`${verification.mismatches} rows at the wrong _rowaddr, first: ${verification.firstMismatch}`);
    verification.fragments.forEach((f, i) => {
      if (f.id !== i || f.rows !== sizes[i] || f.firstOffset !== 0 || f.lastOffset !== sizes[i]! - 1) {
        problems.push(`LanceDB fragment ${f.id} holds offsets ${f.firstOffset}..${f.lastOffset} (${f.rows} rows), expected fragment ${i} with 0..${sizes[i]! - 1}`);
      }
    });
    if (problems.length > 0) throw new Error(`LanceDB table does not line up with our fragments:\n  ${problems.join('\n  ')}`);
    const base = { ingestMs: ingest.ms, verification };
    fs.writeFileSync(marker, JSON.stringify(base));
    console.log(`  LanceDB table written in ${(ingest.ms / 1000).toFixed(1)} s; _rowaddr verified for all ${rows.toLocaleString('en-US')} rows`);
    return { dir, ...base };
  } finally {
    await child.close();
  }
}

/** A fresh copy of LanceDB's table: data files linked, metadata copied (new indexes go to the copy). */
function lanceDataset(base: LanceBase): string {
  const dir = freshDir('lance');
  copyTree(base.dir, dir, (r) => r.endsWith('.lance') && r.includes(`${path.sep}data${path.sep}`));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Builds

interface LanceIndex {
  column: string;
  kind: 'bitmap' | 'btree';
}

interface BuildCase {
  key: string;
  label: string;
  /** Short label for the chart. */
  chart: string;
  ours: IndexRequest[];
  /** Fragments registered before the timed build (LanceDB's table exists before createIndex). */
  registered: boolean;
  lance?: LanceIndex[];
  /** Target for ours/LanceDB rows/s. */
  target?: number;
}

const ALL_CASES: BuildCase[] = [
  { key: 'bitmap-cat_i32', label: 'bitmap `cat_i32`', chart: 'bitmap cat_i32', ours: [{ column: 'cat_i32', type: 'bitmap' }], registered: true, lance: [{ column: 'cat_i32', kind: 'bitmap' }], target: 5 },
  { key: 'bitmap-cat_str', label: 'bitmap `cat_str`', chart: 'bitmap cat_str', ours: [{ column: 'cat_str', type: 'bitmap' }], registered: true, lance: [{ column: 'cat_str', kind: 'bitmap' }], target: 3 },
  {
    key: 'bitmap-both',
    label: 'both bitmaps, full build (ours incl. registering fragments)',
    chart: 'both bitmaps, full build',
    ours: [
      { column: 'cat_i32', type: 'bitmap' },
      { column: 'cat_str', type: 'bitmap' },
    ],
    registered: false,
    lance: [
      { column: 'cat_i32', kind: 'bitmap' },
      { column: 'cat_str', kind: 'bitmap' },
    ],
  },
  { key: 'id', label: '`id`: our zone map vs LanceDB btree', chart: 'id: zone map vs btree', ours: [{ column: 'id', type: 'zonemap' }], registered: true, lance: [{ column: 'id', kind: 'btree' }] },
  { key: 'f64', label: '`f64`: our zone map (LanceDB: none)', chart: 'f64: zone map', ours: [{ column: 'f64', type: 'zonemap' }], registered: true },
];

const CASES = selectCases(process.env.LANCEDB_BENCH_CASES);

function selectCases(raw: string | undefined): BuildCase[] {
  if (!raw) return ALL_CASES;
  const keys = raw.split(',').map((k) => k.trim());
  const unknown = keys.filter((k) => !ALL_CASES.some((c) => c.key === k));
  if (unknown.length) throw new Error(`LANCEDB_BENCH_CASES: unknown ${unknown.join(', ')} (known: ${ALL_CASES.map((c) => c.key).join(', ')})`);
  return ALL_CASES.filter((c) => keys.includes(c.key));
}

interface OursBuild {
  ms: number;
  indexes: { name: string; fragmentsCovered: number; bytes: number }[];
}
interface LanceBuild {
  ms: number;
  per: { column: string; kind: string; ms: number }[];
  indices: { name: string; type: string; indexedRows: number; unindexedRows: number; bytes: number }[];
}

async function runOursBuild(c: BuildCase, rows: number): Promise<{ ms: number; rssMB: number; startRssMB: number; bytes: number }> {
  const dataset = await oursDataset(rows, c.registered);
  const { result, usage } = await once<OursBuild>('ours', 'build', { dataset, indexes: c.ours });
  const fragments = fragmentSizes(rows).length;
  for (const ix of result.indexes) {
    if (ix.fragmentsCovered !== fragments) throw new Error(`our ${ix.name} covers ${ix.fragmentsCovered} of ${fragments} fragments`);
  }
  fs.rmSync(dataset, { recursive: true, force: true });
  return { ms: result.ms, rssMB: usage.maxRssMB, startRssMB: usage.startRssMB, bytes: result.indexes.reduce((n, i) => n + i.bytes, 0) };
}

async function runLanceBuild(indexes: LanceIndex[], base: LanceBase, rows: number) {
  const dir = lanceDataset(base);
  const { result, usage } = await once<LanceBuild>('lance', 'build', { dir, indexes });
  for (const ix of result.indices) {
    if (ix.indexedRows !== rows || ix.unindexedRows !== 0) throw new Error(`LanceDB index ${ix.name} covers ${ix.indexedRows} rows (${ix.unindexedRows} unindexed), expected ${rows}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return { ms: result.ms, rssMB: usage.maxRssMB, startRssMB: usage.startRssMB, bytes: result.indices.reduce((n, i) => n + i.bytes, 0) };
}

async function benchBuilds(rows: number, base: LanceBase): Promise<BuildResult[]> {
  const out: BuildResult[] = CASES.map((c) => ({
    key: c.key,
    label: c.label,
    chart: c.chart,
    target: c.target,
    ours: { ms: [], rssMB: [], startRssMB: [], bytes: 0 },
    lance: c.lance ? { ms: [], rssMB: [], startRssMB: [], bytes: 0, indexes: c.lance.map((l) => `${l.column}:${l.kind}`) } : undefined,
  }));
  for (let run = 0; run < RUNS; run++) {
    for (const [i, c] of CASES.entries()) {
      const r = out[i]!;
      // Alternate who goes first, so neither side always gets the warmer page cache.
      const order = run % 2 === 0 ? (['ours', 'lance'] as const) : (['lance', 'ours'] as const);
      const line: string[] = [];
      for (const side of order) {
        if (side === 'ours') {
          const m = await runOursBuild(c, rows);
          r.ours.ms.push(m.ms);
          r.ours.rssMB.push(m.rssMB);
          r.ours.startRssMB.push(m.startRssMB);
          r.ours.bytes = m.bytes;
          line.push(`ours ${(m.ms / 1000).toFixed(2)} s, ${m.rssMB.toFixed(0)} MB`);
        } else if (c.lance && r.lance) {
          const m = await runLanceBuild(c.lance, base, rows);
          r.lance.ms.push(m.ms);
          r.lance.rssMB.push(m.rssMB);
          r.lance.startRssMB.push(m.startRssMB);
          r.lance.bytes = m.bytes;
          line.push(`LanceDB ${(m.ms / 1000).toFixed(2)} s, ${m.rssMB.toFixed(0)} MB`);
        }
      }
      console.log(`  run ${run + 1}/${RUNS} ${c.key}: ${line.join('; ')}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Queries and agreement

const ALL_OURS: IndexRequest[] = [
  { column: 'cat_i32', type: 'bitmap' },
  { column: 'cat_str', type: 'bitmap' },
  { column: 'id', type: 'zonemap' },
  { column: 'f64', type: 'zonemap' },
];
const ALL_LANCE: LanceIndex[] = [
  { column: 'cat_i32', kind: 'bitmap' },
  { column: 'cat_str', kind: 'bitmap' },
  { column: 'id', kind: 'btree' },
];

interface OursQuery {
  ms: number;
  rows: number;
  exact: boolean;
  unindexedFragments: number;
  indexesUsed: string[];
}
interface LanceQuery {
  ms: number;
  rows: number;
}

function readAddresses(file: string): BigUint64Array {
  const buf = fs.readFileSync(file);
  return new BigUint64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
}

/** Exact: equal sets. Otherwise ours (candidates) must contain every LanceDB row. */
function agree(q: BenchQuery, oursFile: string, lanceFile: string): { ok: boolean; detail: string } {
  const ours = readAddresses(oursFile);
  const lance = readAddresses(lanceFile);
  const fmtAddr = (a: bigint) => `fragment ${a >> 32n} offset ${a & 0xffffffffn}`;
  let i = 0;
  let missing = 0;
  let firstMissing: bigint | undefined;
  for (const a of lance) {
    while (i < ours.length && ours[i]! < a) i++;
    if (i < ours.length && ours[i] === a) i++;
    else if (missing++ === 0) firstMissing = a;
  }
  if (missing > 0) return { ok: false, detail: `${missing} LanceDB rows missing from ours, first ${fmtAddr(firstMissing!)}` };
  if (q.exact && ours.length !== lance.length) {
    return { ok: false, detail: `ours has ${ours.length - lance.length} rows LanceDB does not (exact answer expected)` };
  }
  return { ok: true, detail: q.exact ? `identical (${lance.length.toLocaleString('en-US')} row addresses)` : `ours ⊇ LanceDB (${ours.length.toLocaleString('en-US')} candidates ⊇ ${lance.length.toLocaleString('en-US')} rows)` };
}

async function benchQueries(rows: number, base: LanceBase): Promise<{ queries: QueryResult[]; oursRssMB: number; lanceRssMB: number }> {
  // Index both sides fully first, each in a child of its own that is gone before queries start.
  const dataset = await oursDataset(rows, true);
  await once('ours', 'build', { dataset, indexes: ALL_OURS });
  const dir = lanceDataset(base);
  await once('lance', 'build', { dir, indexes: ALL_LANCE });

  const answers = freshDir('answers');
  const ours = await Child.ours();
  const lance = await Child.lance();
  const results: QueryResult[] = [];
  for (const [qi, q] of queries(rows).entries()) {
    const oursFile = path.join(answers, `ours-${qi}.u64`);
    const lanceFile = path.join(answers, `lance-${qi}.u64`);
    // The first call of each side writes its answer and is reported separately (cold caches).
    const oursFirst = await ours.request<OursQuery>('query', { dataset, where: q.where, answer: oursFile });
    const lanceFirst = await lance.request<LanceQuery>('query', { dir, where: q.where, answer: lanceFile });
    const plan = await lance.request<string>('explain', { dir, where: q.where });
    const agreement = agree(q, oursFile, lanceFile);
    if (oursFirst.exact !== q.exact) agreement.ok = false;
    if (oursFirst.exact !== q.exact) agreement.detail += `; ours says exact=${oursFirst.exact}, expected ${q.exact}`;
    if (oursFirst.unindexedFragments > 0) {
      agreement.ok = false;
      agreement.detail += `; ${oursFirst.unindexedFragments} fragments unindexed`;
    }
    const oursMs: number[] = [];
    const lanceMs: number[] = [];
    const t0 = performance.now();
    for (let run = 0; run < QUERY_RUNS && (run < 3 || performance.now() - t0 < QUERY_BUDGET_MS); run++) {
      if (run % 2 === 0) {
        oursMs.push((await ours.request<OursQuery>('query', { dataset, where: q.where })).ms);
        lanceMs.push((await lance.request<LanceQuery>('query', { dir, where: q.where })).ms);
      } else {
        lanceMs.push((await lance.request<LanceQuery>('query', { dir, where: q.where })).ms);
        oursMs.push((await ours.request<OursQuery>('query', { dataset, where: q.where })).ms);
      }
    }
    const r: QueryResult = {
      name: q.name,
      where: q.where,
      exact: q.exact,
      ours: { ms: oursMs, firstMs: oursFirst.ms, rows: oursFirst.rows, indexesUsed: oursFirst.indexesUsed },
      lance: { ms: lanceMs, firstMs: lanceFirst.ms, rows: lanceFirst.rows, indexesUsed: lanceIndexesUsed(plan), plan },
      agreement,
    };
    results.push(r);
    console.log(
      `  ${q.where}: ours ${median(oursMs).toFixed(2)} ms (${oursFirst.rows.toLocaleString('en-US')} rows${q.exact ? '' : ', candidates'}), ` +
        `LanceDB ${median(lanceMs).toFixed(2)} ms (${lanceFirst.rows.toLocaleString('en-US')} rows) — ${agreement.ok ? 'agree' : 'MISMATCH'}: ${agreement.detail}`,
    );
  }
  const oursUsage = await ours.close();
  const lanceUsage = await lance.close();
  for (const d of [dataset, dir, answers]) fs.rmSync(d, { recursive: true, force: true });
  return { queries: results, oursRssMB: oursUsage.maxRssMB, lanceRssMB: lanceUsage.maxRssMB };
}

/** Index names in LanceDB's plan (`ScalarIndexQuery: query=[…]@cat_i32_idx(Bitmap)`), or 'scan'. */
function lanceIndexesUsed(plan: string): string[] {
  const used = new Set<string>();
  for (const m of plan.matchAll(/@([A-Za-z0-9_]+)\(([A-Za-z]+)\)/g)) used.add(`${m[1]} (${m[2]})`);
  return used.size > 0 ? [...used] : ['none (scan)'];
}

/** ours.ts transpiled to plain ESM next to it (so `./child.mjs` resolves), for LANCEDB_BENCH_OURS=dist. */
const OURS_COMPILED = path.join(HERE, 'ours.compiled.mjs');

/** Whether execArgv[i] is (part of) a tsx loader flag. */
function isTsxArg(argv: readonly string[], i: number): boolean {
  const a = argv[i]!;
  if (/^--(import|require|loader)=.*tsx/.test(a)) return true;
  if ((a === '--import' || a === '--require' || a === '--loader') && argv[i + 1]?.includes('tsx')) return true;
  const prev = argv[i - 1];
  return (prev === '--import' || prev === '--require' || prev === '--loader') && a.includes('tsx');
}

/** For LANCEDB_BENCH_OURS=dist: lib/ compiled by tsc under bench/.data (so node_modules resolve). */
function compileLibrary(): void {
  console.log(`compiling lib/ to ${path.relative(process.cwd(), DIST)} ...`);
  fs.rmSync(DIST, { recursive: true, force: true });
  const tsc = path.join(HERE, '..', '..', 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(HERE, '..', '..', 'tsconfig.build.json'), '--outDir', DIST], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status})`);
  const { code } = esbuild.transformSync(fs.readFileSync(path.join(HERE, 'ours.ts'), 'utf8'), { loader: 'ts', format: 'esm', target: 'node20' });
  fs.writeFileSync(OURS_COMPILED, code);
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg: os.loadavg() };
  const lancePkg = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', '@lancedb', 'lancedb', 'package.json'), 'utf8')) as { version: string };
  const lanceArrow = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', 'apache-arrow', 'package.json'), 'utf8')) as { version: string };
  console.log(`scalar-index vs LanceDB ${lancePkg.version} — ${started.toISOString()}`);
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, load ${machine.loadavg.map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`sizes: ${ROWS.map(sizeLabel).join(', ')}; builds median of ${RUNS} runs, queries median of ${QUERY_RUNS}; ours from ${OURS === 'dist' ? 'compiled JS' : 'TypeScript sources (tsx)'}\n`);

  if (OURS === 'dist') compileLibrary();
  else if (OURS !== 'source') throw new Error(`LANCEDB_BENCH_OURS must be 'source' or 'dist', got '${OURS}'`);

  const sizes: SizeReport[] = [];
  let failed = false;
  fs.mkdirSync(WORK, { recursive: true });
  try {
    for (const rows of ROWS) {
      console.log(`${sizeLabel(rows)} rows (${fragmentSizes(rows).length} fragments)`);
      const t0 = performance.now();
      fragmentFiles(rows);
      const base = await lanceBase(rows);
      await registeredTemplate(rows);
      console.log(`  data ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const builds = await benchBuilds(rows, base);
      const q = await benchQueries(rows, base);
      if (q.queries.some((r) => !r.agreement.ok)) failed = true;
      sizes.push({
        rows,
        fragments: fragmentSizes(rows).length,
        lanceIngestMs: base.ingestMs,
        rowAddressCheck: `all ${base.verification.rows.toLocaleString('en-US')} LanceDB rows sit at _rowaddr (fragment_id << 32 | offset) of our fragment ids 0..${base.verification.fragments.length - 1}`,
        builds,
        queries: q.queries,
        queryRss: { oursMB: q.oursRssMB, lanceMB: q.lanceRssMB },
      });
    }
  } finally {
    fs.rmSync(WORK, { recursive: true, force: true });
  }

  const report: Report = {
    date: started.toISOString(),
    machine,
    versions: { lancedb: lancePkg.version, lanceApacheArrow: lanceArrow.version },
    ours: OURS === 'dist' ? 'library compiled by tsc (LANCEDB_BENCH_OURS=dist)' : 'library from TypeScript sources under tsx, as `npm run bench:lancedb` runs it',
    runs: RUNS,
    queryRuns: QUERY_RUNS,
    sizes,
    seconds: (Date.now() - started.getTime()) / 1000,
  };
  const day = started.toISOString().slice(0, 10);
  // Partial runs (some cases, fewer than 3 runs) go to the gitignored cache, not next to the
  // dated results the README quotes.
  const partial = CASES.length < ALL_CASES.length || RUNS < 3;
  const outDir = partial ? path.join(DATA_ROOT, 'results') : path.join(HERE, '..', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `lancedb-${day}`);
  const md = renderMarkdown(report, `lancedb-${day}.svg`);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify({ ...report, summary: summarize(report) }, null, 2)}\n`);
  fs.writeFileSync(`${base}.md`, md);
  fs.writeFileSync(`${base}.svg`, renderSvg(report));
  console.log(`\n${md}`);
  console.log(`results written to ${path.relative(process.cwd(), base)}.{json,md,svg} (total ${report.seconds.toFixed(0)} s)`);
  if (PROFILE) console.log(`CPU profiles of our children in ${path.relative(process.cwd(), PROFILE_DIR)} (summarise: npx tsx bench/lancedb/profile-summary.ts ${path.relative(process.cwd(), PROFILE_DIR)})`);
  if (failed) {
    console.error('\nFAILED: our answers disagree with LanceDB (see MISMATCH above)');
    process.exitCode = 1;
  }
}

await main();
