/**
 * `npm run bench:negation`: what a user waits for, and the memory it takes, when a query
 * negates a long list on a bitmap column. Each query runs as a whole CLI process
 * (`node bin/scalar-index.js query … --json`, the compiled build), and the peak RSS of that
 * process is read from the kernel (VmHWM, via a preload that prints it at exit).
 *
 * Data: NEG_ROWS rows (default 1M) in 10 fragments, `v` int64 with NEG_DISTINCT (default
 * 100,000) distinct values in random order, bitmap-indexed. Queries, each against the named
 * reference, a point query on the same index in the same run:
 * - reference: `v = <one value>`;
 * - `v NOT IN (<NEG_VALUES values>)` (default 12,000), present and absent values mixed;
 * - `v IN (…)` with the same list;
 * - `v != a AND v != b …` with NEG_CHAIN (default 2,000) terms.
 * Every answer is checked against a brute-force count from the generated values.
 *
 * Target (issue 11): peak RSS of the NOT IN query ≤ 150 MB.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from '../lib/workflow/build.js';
import { writeFragment } from '../test/support/dataset.js';
import { envInt } from './env.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const ROWS = envInt('NEG_ROWS', 1_000_000);
const DISTINCT = envInt('NEG_DISTINCT', 100_000);
const VALUES = envInt('NEG_VALUES', 12_000);
const CHAIN = envInt('NEG_CHAIN', 2_000);
const RUNS = envInt('NEG_RUNS', 3);
const FRAGMENTS = 10;

function rng(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

async function dataset(): Promise<{ dir: string; values: bigint[][] }> {
  const dir = path.join(ROOT, 'bench', '.data', `negation-${ROWS}-${DISTINCT}`);
  const next = rng(7);
  const values: bigint[][] = [];
  for (let f = 0; f < FRAGMENTS; f++) values.push(Array.from({ length: ROWS / FRAGMENTS }, () => BigInt(Math.floor(next() * DISTINCT))));
  if (!fs.existsSync(path.join(dir, '_index'))) {
    fs.rmSync(dir, { recursive: true, force: true });
    for (let f = 0; f < FRAGMENTS; f++) await writeFragment(path.join(dir, 'data', `f${f}.arrow`), [{ name: 'v', type: 'int64' }], { v: values[f]! }, { batchRows: 65_536, format: 'file' });
    await build({ dataset: dir, indexes: [{ column: 'v', type: 'bitmap' }] });
  }
  return { dir, values };
}

/** Compile lib/ to dist/ when any source is newer, so the CLI process runs what is measured. */
function ensureCompiled(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...fs.readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs)));
  const dist = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!fs.existsSync(dist) || newest(path.join(ROOT, 'lib')) > fs.statSync(dist).mtimeMs) {
    process.stderr.write('compiling lib/ to dist/ …\n');
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  }
}

const PRELOAD = path.join(ROOT, 'bench', 'rss-at-exit.cjs');

interface Measured {
  ms: number;
  rssMB: number;
  rows: number;
}

function runQuery(dir: string, where: string): Measured {
  const t = performance.now();
  const r = spawnSync(process.execPath, ['--require', PRELOAD, path.join(ROOT, 'bin', 'scalar-index.js'), 'query', dir, '--where', where, '--json'], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const ms = performance.now() - t;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`query failed (${r.status}): ${r.stderr.slice(0, 500)}`);
  const rss = /peak-rss-kb (\d+)/.exec(r.stderr);
  if (!rss) throw new Error(`no RSS report in: ${r.stderr.slice(0, 300)}`);
  return { ms, rssMB: Number(rss[1]) / 1024, rows: JSON.parse(r.stdout).rows as number };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

ensureCompiled();
const { dir, values } = await dataset();
const next = rng(99);
const list = Array.from({ length: VALUES }, () => BigInt(Math.floor(next() * DISTINCT * 1.2)));
const chain = list.slice(0, CHAIN);
const count = (pred: (v: bigint) => boolean) => values.reduce((n, vs) => n + vs.filter(pred).length, 0);
const inList = new Set(list);
const inChain = new Set(chain);
const queries = [
  { name: 'reference: v = one value', where: `v = ${values[0]![0]}`, expected: count((v) => v === values[0]![0]) },
  { name: `v NOT IN (${VALUES} values)`, where: `v NOT IN (${list.join(', ')})`, expected: count((v) => !inList.has(v)) },
  { name: `v IN (${VALUES} values)`, where: `v IN (${list.join(', ')})`, expected: count((v) => inList.has(v)) },
  { name: `${CHAIN} terms v != … AND …`, where: chain.map((v) => `v != ${v}`).join(' AND '), expected: count((v) => !inChain.has(v)) },
];

const results = queries.map((q) => {
  const runs = Array.from({ length: RUNS }, () => runQuery(dir, q.where));
  for (const r of runs) if (r.rows !== q.expected) throw new Error(`${q.name}: ${r.rows} rows, brute force says ${q.expected}`);
  return { ...q, msMedian: median(runs.map((r) => r.ms)), rssMedianMB: median(runs.map((r) => r.rssMB)), rssMB: runs.map((r) => +r.rssMB.toFixed(1)), ms: runs.map((r) => Math.round(r.ms)) };
});
const reference = results[0]!;
console.log(`\n${ROWS.toLocaleString()} rows, ${DISTINCT.toLocaleString()} distinct int64 values, bitmap index; whole CLI processes, median of ${RUNS} (all runs listed)\n`);
console.log('| query | wall time | peak RSS | vs reference (RSS) | rows (= brute force) |');
console.log('|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.name} | ${Math.round(r.msMedian)} ms (${r.ms.join(', ')}) | ${r.rssMedianMB.toFixed(0)} MB (${r.rssMB.join(', ')}) | ${(r.rssMedianMB / reference.rssMedianMB).toFixed(2)}× | ${r.expected.toLocaleString()} |`);
}
const notIn = results[1]!;
console.log(`\ntarget: NOT IN (${VALUES} values) peak RSS ≤ 150 MB: ${notIn.rssMB.every((x) => x <= 150) ? 'met in every run' : 'MISSED'} (${notIn.rssMB.join(', ')} MB)`);
const out = path.join(ROOT, 'bench', 'results', `negation-${new Date().toISOString().slice(0, 10)}.json`);
fs.writeFileSync(out, `${JSON.stringify({ rows: ROWS, distinct: DISTINCT, values: VALUES, chain: CHAIN, runs: RUNS, node: process.version, results: results.map(({ where: _w, ...r }) => r) }, null, 1)}\n`);
console.log(`wrote ${path.relative(ROOT, out)}`);
