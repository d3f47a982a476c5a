/**
 * Incremental builds: what an append costs, and what many appends with the workflow's own
 * compaction cost over time. One run, one machine; everything in a local directory.
 *
 * 1. Append cost (whole CLI processes, `node bin/scalar-index.js build`, start-up included):
 *    a base of BASE_FRAGMENTS × 1M rows (cat_i32: 100 values, cat_str: 1,000 values, id: int64
 *    sorted; bitmaps on both categories, a zone map on id) gets one 100K-row fragment; against
 *    the reference, the same fragment indexed alone as a fresh dataset. Alternating, RUNS
 *    times each, each on a fresh copy of the base: index bytes written and wall time.
 * 2. Many appends (in-process `build()`, the local workflow with its compaction): APPENDS
 *    appends of 100K rows to the same base. After each: index bytes written (new files under
 *    _index/indexes/, compactions included), segments per index against the stated bound;
 *    every CHECK_EVERY appends the warm `cat_i32 = 7` latency (one QueryCache kept, median of
 *    5) and the answer against the brute-force count. At the start and the end, the cold
 *    latency: whole `scalar-index query` processes, median of 5.
 *
 *   npm run bench:incremental
 *   INCR_APPENDS=50 INCR_BASE_FRAGMENTS=4 INCR_RUNS=3 npm run bench:incremental   # quick
 *
 * Writes bench/results/incremental-<date>.{json,md,svg}.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import { loadLatestManifest } from '../lib/manifest/manifest.js';
import { QueryCache } from '../lib/query/cache.js';
import { query } from '../lib/query/evaluate.js';
import { LocalStore } from '../lib/store/local.js';
import { build } from '../lib/workflow/build.js';
import { compactDataset } from '../lib/workflow/compact.js';
import { COMPACTION_FANOUT, tierOf } from '../lib/workflow/compaction-policy.js';
import { envInt } from './env.js';
import { cachedFragment } from './lancedb/data.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');
const WORK = path.join(HERE, '.data', 'incremental');
const BASE_FRAGMENTS = envInt('INCR_BASE_FRAGMENTS', 20);
const APPENDS = envInt('INCR_APPENDS', 500);
const RUNS = envInt('INCR_RUNS', 5);
const CHECK_EVERY = envInt('INCR_CHECK_EVERY', 10);
const APPEND_ROWS = 100_000;
const INDEX_FLAGS = ['--index', 'cat_i32:bitmap', '--index', 'cat_str:bitmap', '--index', 'id:zonemap'];
const CLI = path.join(ROOT, 'bin', 'scalar-index.js');
const POINT = 'cat_i32 = 7';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;

/** The fragment file for append `a` (fragment number BASE + a), 100K rows. */
const appendFile = (a: number) => cachedFragment(1000 + a, APPEND_ROWS);
const baseFile = (f: number) => cachedFragment(f, 1_000_000);

/** Brute force: rows where cat_i32 = 7, read from the file itself. */
function pointCount(file: string): number {
  const t = arrow.tableFromIPC(fs.readFileSync(file));
  let n = 0;
  for (const batch of t.batches) {
    const v = batch.getChild('cat_i32')!.data[0]!.values as Int32Array;
    for (let i = 0; i < v.length; i++) if (v[i] === 7) n++;
  }
  return n;
}

/** Sizes of the files under _index/indexes/, by dataset-relative path. */
function indexFiles(dataset: string): Map<string, number> {
  const dir = path.join(dataset, '_index', 'indexes');
  const out = new Map<string, number>();
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out.set(path.relative(dataset, p), fs.statSync(p).size);
  }
  return out;
}
const written = (before: Map<string, number>, after: Map<string, number>) => [...after].reduce((n, [k, size]) => n + (before.has(k) ? 0 : size), 0);

function cli(args: string[]): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`scalar-index ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

function freshDir(name: string): string {
  const dir = path.join(WORK, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  return dir;
}

/** A copy of the base: data hard-linked (fragments are immutable), _index copied, times kept. */
function copyOf(base: string, name: string): string {
  const dir = path.join(WORK, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  if (spawnSync('cp', ['-a', '--link', path.join(base, 'data'), dir]).status !== 0) throw new Error('cp -a --link failed');
  if (spawnSync('cp', ['-a', path.join(base, '_index'), dir]).status !== 0) throw new Error('cp -a _index failed');
  return dir;
}

interface Step {
  append: number;
  bytesWritten: number;
  cumulativeWritten: number;
  indexBytes: number;
  segments: Record<string, number>;
  bound: number;
  warmMs?: number;
  buildMs: number;
}

function chart(steps: Step[]): string {
  const W = 900;
  const H = 220;
  const pad = { l: 70, r: 20, t: 24, b: 30 };
  const panels: { title: string; series: { name: string; color: string; points: [number, number][] }[]; unit: (v: number) => string }[] = [
    {
      title: 'Index bytes written, cumulative (MB), and index bytes held',
      unit: (v) => `${(v / 1e6).toFixed(0)}`,
      series: [
        { name: 'written', color: '#d62728', points: steps.map((s) => [s.append, s.cumulativeWritten]) },
        { name: 'held', color: '#1f77b4', points: steps.map((s) => [s.append, s.indexBytes]) },
      ],
    },
    {
      title: 'Segments per index (dashed: the bound)',
      unit: (v) => `${v.toFixed(0)}`,
      series: [
        ...Object.keys(steps[0]?.segments ?? {}).map((name, i) => ({ name, color: ['#2ca02c', '#9467bd', '#ff7f0e'][i % 3]!, points: steps.map((s): [number, number] => [s.append, s.segments[name]!]) })),
        { name: 'bound', color: '#7f7f7f', points: steps.map((s) => [s.append, s.bound]) },
      ],
    },
    {
      title: `Warm "${POINT}" latency (ms)`,
      unit: (v) => v.toFixed(0),
      series: [{ name: 'warm', color: '#17becf', points: steps.filter((s) => s.warmMs !== undefined).map((s) => [s.append, s.warmMs!]) }],
    },
  ];
  const out: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H * panels.length}" font-family="Helvetica, Arial, sans-serif" font-size="11">`];
  const maxX = Math.max(1, ...steps.map((s) => s.append));
  panels.forEach((p, k) => {
    const y0 = k * H;
    const maxY = Math.max(1, ...p.series.flatMap((s) => s.points.map(([, y]) => y)));
    const sx = (x: number) => pad.l + (x / maxX) * (W - pad.l - pad.r);
    const sy = (y: number) => y0 + H - pad.b - (y / maxY) * (H - pad.t - pad.b);
    out.push(`<text x="${pad.l}" y="${y0 + 15}" font-weight="bold">${p.title}</text>`);
    out.push(`<line x1="${pad.l}" y1="${sy(0)}" x2="${W - pad.r}" y2="${sy(0)}" stroke="#333"/><line x1="${pad.l}" y1="${sy(0)}" x2="${pad.l}" y2="${sy(maxY)}" stroke="#333"/>`);
    for (const f of [0, 0.5, 1]) out.push(`<text x="${pad.l - 6}" y="${sy(maxY * f) + 4}" text-anchor="end">${p.unit(maxY * f)}</text>`);
    for (const f of [0, 0.5, 1]) out.push(`<text x="${sx(maxX * f)}" y="${y0 + H - 12}" text-anchor="middle">${Math.round(maxX * f)}</text>`);
    p.series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const d = s.points.map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"${s.name === 'bound' ? ' stroke-dasharray="5,4"' : ''}/>`);
      out.push(`<text x="${W - pad.r - 120}" y="${y0 + 30 + 13 * i}" fill="${s.color}">${s.name}</text>`);
    });
  });
  out.push(`<text x="${W / 2}" y="${H * panels.length - 2}" text-anchor="middle">appends of ${APPEND_ROWS.toLocaleString('en-US')} rows</text>`, '</svg>');
  return out.join('\n');
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  console.log('compiling the CLI (npm run build) so the processes measured run this checkout ...');
  if (spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) throw new Error('npm run build failed');
  fs.mkdirSync(WORK, { recursive: true });

  // The base, built once by the CLI.
  console.log(`generating ${BASE_FRAGMENTS} × 1M rows and ${APPENDS} × 100K rows (cached under bench/.data/lancedb) ...`);
  const base = freshDir('base');
  for (let f = 0; f < BASE_FRAGMENTS; f++) fs.linkSync(baseFile(f), path.join(base, 'data', `part-${String(f).padStart(5, '0')}.arrow`));
  for (let a = 0; a < Math.max(APPENDS, RUNS); a++) appendFile(a);
  const baseBuild = cli(['build', base, ...INDEX_FLAGS, '--quiet', '--json']);
  const baseBytes = [...indexFiles(base).values()].reduce((n, s) => n + s, 0);
  console.log(`base: ${BASE_FRAGMENTS * 1_000_000} rows, built in ${(baseBuild.ms / 1000).toFixed(1)} s (CLI process), ${mb(baseBytes)} of index files`);

  // 1. Append cost, alternating with the reference.
  const append = { bytes: [] as number[], ms: [] as number[] };
  const alone = { bytes: [] as number[], ms: [] as number[] };
  for (let r = 0; r < RUNS; r++) {
    const copy = copyOf(base, 'append');
    const before = indexFiles(copy);
    fs.linkSync(appendFile(r), path.join(copy, 'data', 'append-00000.arrow'));
    const a = cli(['build', copy, '--quiet', '--json']);
    append.bytes.push(written(before, indexFiles(copy)));
    append.ms.push(a.ms);

    const fresh = freshDir('alone');
    fs.linkSync(appendFile(r), path.join(fresh, 'data', 'append-00000.arrow'));
    const b = cli(['build', fresh, ...INDEX_FLAGS, '--quiet', '--json']);
    alone.bytes.push(written(new Map(), indexFiles(fresh)));
    alone.ms.push(b.ms);
    console.log(`  run ${r + 1}: append ${mb(append.bytes[r]!)} in ${append.ms[r]!.toFixed(0)} ms; alone ${mb(alone.bytes[r]!)} in ${alone.ms[r]!.toFixed(0)} ms`);
  }
  const bytesRatios = append.bytes.map((b, i) => b / alone.bytes[i]!);
  const msRatios = append.ms.map((m, i) => m / alone.ms[i]!);
  console.log(`append cost: bytes ${median(bytesRatios).toFixed(2)}× alone (spread ${spread(bytesRatios)}), wall ${median(msRatios).toFixed(2)}× alone (spread ${spread(msRatios)})`);

  // 2. Many appends, in-process, with the workflow's compaction.
  const ds = copyOf(base, 'many');
  const store = new LocalStore(ds);
  const expected = new Map<string, number>();
  for (let f = 0; f < BASE_FRAGMENTS; f++) expected.set(`data/part-${String(f).padStart(5, '0')}.arrow`, pointCount(baseFile(f)));
  const cache = new QueryCache({ maxBytes: 512 * 1024 * 1024 });
  const warm = async () => {
    await query(ds, POINT, { cache }); // fills the cache (and warms the JIT): not timed
    const times: number[] = [];
    let r: Awaited<ReturnType<typeof query>> | undefined;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      r = await query(ds, POINT, { cache });
      times.push(performance.now() - t0);
    }
    return { ms: median(times), r: r! };
  };
  const check = (r: Awaited<ReturnType<typeof query>>, at: number) => {
    const want = [...expected.values()].reduce((n, c) => n + c, 0);
    const got = new Map(r.fragments.map((f) => [f.path, f.ranges.reduce((n, [a, b]) => n + b - a, 0)]));
    const bad = [...expected].filter(([p, c]) => (got.get(p) ?? 0) !== c);
    if (!r.exact || r.rows !== want || bad.length > 0 || r.unindexedFragments.length > 0) {
      throw new Error(`after append ${at}: ${POINT} gave ${r.rows} rows (exact ${r.exact}), brute force ${want}; fragments differing: ${bad.slice(0, 3).map(([p]) => p).join(', ')}`);
    }
  };
  const coldQuery = () => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(cli(['query', ds, '--where', POINT, '--json']).ms);
    return times;
  };
  const cold0 = coldQuery();
  const warm0 = await warm();
  check(warm0.r, 0);

  const steps: Step[] = [];
  let cumulative = baseBytes;
  let worstOverBound = -Infinity;
  let files = indexFiles(ds);
  for (let a = 1; a <= APPENDS; a++) {
    const name = `data/append-${String(a).padStart(5, '0')}.arrow`;
    fs.linkSync(appendFile(a - 1), path.join(ds, name));
    expected.set(name, pointCount(appendFile(a - 1)));
    const t0 = performance.now();
    await build({ dataset: ds });
    const buildMs = performance.now() - t0;
    const now = indexFiles(ds);
    const bytes = written(files, now);
    files = now;
    cumulative += bytes;
    const m = await loadLatestManifest(store);
    const segments = Object.fromEntries(m.indexes.map((ix) => [ix.name, ix.segments.length]));
    const held = m.indexes.reduce((n, ix) => n + ix.segments.reduce((k, s) => k + s.bytes, 0), 0);
    const bound = Math.max(...m.indexes.map((ix) => (COMPACTION_FANOUT - 1) * (tierOf(ix.segments.reduce((k, s) => k + s.bytes, 0)) + 1)));
    for (const ix of m.indexes) {
      const b = (COMPACTION_FANOUT - 1) * (tierOf(ix.segments.reduce((k, s) => k + s.bytes, 0)) + 1);
      worstOverBound = Math.max(worstOverBound, ix.segments.length - b);
    }
    const step: Step = { append: a, bytesWritten: bytes, cumulativeWritten: cumulative, indexBytes: held, segments, bound, buildMs };
    if (a % CHECK_EVERY === 0 || a === APPENDS) {
      const w = await warm();
      check(w.r, a);
      step.warmMs = w.ms;
      console.log(`  append ${a}: wrote ${mb(bytes)} (total ${mb(cumulative)}), holds ${mb(held)}, segments ${JSON.stringify(segments)} (bound ${bound}), build ${buildMs.toFixed(0)} ms, warm ${w.ms.toFixed(1)} ms`);
    }
    steps.push(step);
  }
  const warmEnd = await warm();
  const coldEnd = coldQuery();
  // The final data compacted: every index in one segment.
  await compactDataset(ds, { full: true });
  const final = (await loadLatestManifest(store)).indexes.reduce((n, ix) => n + ix.segments.reduce((k, s) => k + s.bytes, 0), 0);
  const amp = cumulative / final;
  const ampAppends = (cumulative - baseBytes) / (final - baseBytes);
  const warmRatio = warmEnd.ms / warm0.ms;
  const coldRatio = median(coldEnd) / median(cold0);

  const day = new Date().toISOString().slice(0, 10);
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    machine: `${(await import('node:os')).cpus()[0]?.model} × ${(await import('node:os')).cpus().length}`,
    baseRows: BASE_FRAGMENTS * 1_000_000,
    appendRows: APPEND_ROWS,
    appends: APPENDS,
    appendCost: { runs: RUNS, appendBytes: append.bytes, aloneBytes: alone.bytes, appendMs: append.ms, aloneMs: alone.ms, bytesRatioMedian: median(bytesRatios), wallRatioMedian: median(msRatios) },
    manyAppends: {
      baseIndexBytes: baseBytes,
      totalWritten: cumulative,
      finalCompacted: final,
      writeAmplification: amp,
      writeAmplificationOfAppends: ampAppends,
      segmentsOverBoundWorst: worstOverBound,
      maxSegments: Math.max(...steps.map((s) => Math.max(...Object.values(s.segments)))),
      warmMs: { start: warm0.ms, end: warmEnd.ms, ratio: warmRatio },
      coldMs: { start: cold0, end: coldEnd, ratio: coldRatio },
      medianBuildMs: median(steps.map((s) => s.buildMs)),
      steps,
    },
  };
  const out = path.join(HERE, 'results', `incremental-${day}`);
  fs.writeFileSync(`${out}.json`, `${JSON.stringify(results, null, 1)}\n`);
  fs.writeFileSync(`${out}.svg`, chart(steps));
  const md = [
    `# Incremental builds, ${day}`,
    '',
    `${results.machine}, Node ${process.version}. Base: ${BASE_FRAGMENTS} × 1M rows (bitmaps on cat_i32 and cat_str, zone map on id), ${mb(baseBytes)} of index files.`,
    '',
    '| | measured | target |',
    '|---|---|---|',
    `| append one 100K-row fragment: index bytes written vs that fragment alone (CLI, ${RUNS} runs) | ${median(bytesRatios).toFixed(2)}× (${spread(bytesRatios)}; ${mb(median(append.bytes))} vs ${mb(median(alone.bytes))}) | ≤ 2× |`,
    `| same: wall time of the whole \`build\` process vs alone | ${median(msRatios).toFixed(2)}× (${spread(msRatios)}; ${median(append.ms).toFixed(0)} vs ${median(alone.ms).toFixed(0)} ms) | ≤ 1.3× |`,
    `| ${APPENDS} appends: index bytes written (base build included) / final compacted index bytes | ${amp.toFixed(2)} (appends alone: ${ampAppends.toFixed(2)}) | ≤ 8 |`,
    `| segments per index vs the bound, worst step | ${worstOverBound <= 0 ? 'within' : `over by ${worstOverBound}`} (max ${results.manyAppends.maxSegments}) | within |`,
    `| warm \`${POINT}\` latency, end / start (in-process, QueryCache) | ${warmRatio.toFixed(2)}× (${warm0.ms.toFixed(1)} → ${warmEnd.ms.toFixed(1)} ms) | ≤ 2× |`,
    `| cold \`${POINT}\`, whole \`query\` process, end / start (median of 5) | ${coldRatio.toFixed(2)}× (${median(cold0).toFixed(0)} → ${median(coldEnd).toFixed(0)} ms) | ≤ 2× |`,
    `| answers checked against brute force | every ${CHECK_EVERY} appends, all equal | equal |`,
    '',
    `![bytes written, segments and latency per append](incremental-${day}.svg)`,
    '',
  ].join('\n');
  fs.writeFileSync(`${out}.md`, md);
  console.log(`\n${md}`);
  console.log(`wrote ${path.relative(ROOT, out)}.{json,md,svg}`);
}

await main();
