/**
 * Start-up benchmark: whole `scalar-index` processes, as a user runs them, before and after.
 *
 *   npm run bench:startup                                    # 21 runs of each, baseline: main
 *   STARTUP_RUNS=9 STARTUP_BASELINE=HEAD~5 npm run bench:startup
 *   STARTUP_BASELINE=none npm run bench:startup              # this tree only
 *
 * "Before" is the tree at STARTUP_BASELINE (a git ref, default `main`), exported with `git
 * archive` into a temporary directory that borrows this checkout's node_modules, and built
 * with its own `npm run build`. "After" is this tree, built the same way. Each command runs
 * once to warm the file cache, then the two trees alternate run by run, so load on the machine
 * falls on both alike. Reported per command: median, quartiles, min and max of the wall time
 * (fork to exit), and the median CPU time (user + system) where /usr/bin/time is available;
 * plus `node -e 0`, the floor no command can go below. Every run's exit code and output are
 * checked, so a broken build cannot look fast.
 *
 * The dataset (4 fragments × 10,000 rows, a bitmap and a zone map) is made once under
 * bench/.data/startup. Results: bench/results/startup-<date>.json and .md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from '../lib/workflow/build.js';
import { writeSampleDataset } from '../scripts/sample-data.js';
import { envInt } from './env.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.dirname(HERE);
const RUNS = envInt('STARTUP_RUNS', 21);
const BASELINE = process.env.STARTUP_BASELINE ?? 'main';
const DATASET = path.join(HERE, '.data', 'startup');
const TARGETS: Record<string, number> = { '--help': 150, query: 250, inspect: 250 };
const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

interface Command {
  name: string;
  args: string[];
  /** What a successful run prints (checked on every run). */
  expect: RegExp;
  /** The target it is held to (ms, median wall), if any. */
  target?: number;
}

const COMMANDS: Command[] = [
  { name: 'node -e 0 (floor)', args: [], expect: /^$/ },
  { name: '--help', args: ['--help'], expect: /Usage: scalar-index/, target: TARGETS['--help'] },
  { name: "query region = 'APAC' (bitmap)", args: ['query', DATASET, '--where', "region = 'APAC'", '--json'], expect: /"exact":true/, target: TARGETS.query },
  { name: 'query price < 20 (zone map)', args: ['query', DATASET, '--where', 'price < 20', '--json'], expect: /"exact":false/, target: TARGETS.query },
  { name: 'inspect', args: ['inspect', DATASET], expect: /region_bitmap/, target: TARGETS.inspect },
];

interface Sample {
  wallMs: number;
  cpuMs?: number;
}

function runOnce(bin: string | undefined, args: string[], expect: RegExp): Sample {
  const argv = bin ? [bin, ...args] : ['-e', '0'];
  const timeFile = path.join(os.tmpdir(), `startup-time-${process.pid}`);
  const [cmd, cmdArgs] = TIME ? [TIME, ['-f', '%U %S', '-o', timeFile, process.execPath, ...argv]] : [process.execPath, argv];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, cmdArgs, { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0 || !expect.test(r.stdout)) {
    throw new Error(`${bin ?? 'node'} ${args.join(' ')}: exit ${r.status}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}, stderr ${JSON.stringify(r.stderr.slice(0, 400))}`);
  }
  let cpuMs: number | undefined;
  if (TIME) {
    const [user, sys] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    cpuMs = (user! + sys!) * 1000;
  }
  return { wallMs, cpuMs };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
}

function summary(samples: Sample[]) {
  const wall = samples.map((s) => s.wallMs);
  const cpu = samples.flatMap((s) => (s.cpuMs === undefined ? [] : [s.cpuMs]));
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    runs: samples.length,
    wallMedianMs: r(quantile(wall, 0.5)),
    wallP25Ms: r(quantile(wall, 0.25)),
    wallP75Ms: r(quantile(wall, 0.75)),
    wallMinMs: r(Math.min(...wall)),
    wallMaxMs: r(Math.max(...wall)),
    cpuMedianMs: cpu.length ? r(quantile(cpu, 0.5)) : undefined,
  };
}

/** Build a tree with its own `npm run build`; returns its CLI entry. */
function buildTree(dir: string): string {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: dir, stdio: 'inherit' });
  return path.join(dir, 'bin', 'scalar-index.js');
}

/** The tree at `ref` in a temporary directory, with this checkout's node_modules. */
function exportBaseline(ref: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scalar-index-baseline-'));
  const archive = execFileSync('git', ['archive', '--format=tar', ref], { cwd: REPO, maxBuffer: 512 * 1024 * 1024 });
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

async function main() {
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, load ${load()}, ${RUNS} runs per command${TIME ? '' : ' (no /usr/bin/time: wall time only)'}`);
  if (!fs.existsSync(path.join(DATASET, '_index'))) {
    fs.rmSync(DATASET, { recursive: true, force: true });
    writeSampleDataset(DATASET, { fragments: 4, rowsPerFragment: 10_000 });
    await build({ dataset: DATASET, indexes: [{ column: 'region', type: 'bitmap' }, { column: 'price', type: 'zonemap' }] });
  }

  const trees: { name: string; bin: string; cleanup?: () => void }[] = [];
  if (BASELINE !== 'none') {
    const rev = execFileSync('git', ['rev-parse', '--short', BASELINE], { cwd: REPO, encoding: 'utf8' }).trim();
    console.log(`building the baseline ${BASELINE} (${rev}) …`);
    const dir = exportBaseline(BASELINE);
    trees.push({ name: `before (${BASELINE} ${rev})`, bin: buildTree(dir), cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) });
  }
  const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: REPO, encoding: 'utf8' }).trim() !== '';
  console.log('building this tree …');
  trees.push({ name: `after (${head}${dirty ? ', uncommitted changes' : ''})`, bin: buildTree(REPO) });

  const results: { command: string; target?: number; trees: { tree: string; summary: ReturnType<typeof summary> }[] }[] = [];
  try {
    for (const c of COMMANDS) {
      const bins = c.args.length === 0 ? [{ name: 'node', bin: undefined as string | undefined }] : trees.map((t) => ({ name: t.name, bin: t.bin as string | undefined }));
      const samples = bins.map(() => [] as Sample[]);
      for (const b of bins) runOnce(b.bin, c.args, c.expect); // warm the file cache
      for (let i = 0; i < RUNS; i++) bins.forEach((b, k) => samples[k]!.push(runOnce(b.bin, c.args, c.expect)));
      const row = { command: c.name, target: c.target, trees: bins.map((b, k) => ({ tree: b.name, summary: summary(samples[k]!) })) };
      results.push(row);
      for (const t of row.trees) {
        const s = t.summary;
        console.log(`${c.name.padEnd(34)} ${t.tree.padEnd(34)} median ${s.wallMedianMs} ms (p25–p75 ${s.wallP25Ms}–${s.wallP75Ms}, min–max ${s.wallMinMs}–${s.wallMaxMs})${s.cpuMedianMs === undefined ? '' : `, CPU ${s.cpuMedianMs} ms`}`);
      }
    }
  } finally {
    for (const t of trees) t.cleanup?.();
  }

  const date = new Date().toISOString().slice(0, 10);
  const out = { date, node: process.version, cpus: `${os.cpus().length} × ${os.cpus()[0]?.model}`, loadAverageAfter: load(), runs: RUNS, baseline: BASELINE, results };
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  fs.writeFileSync(path.join(HERE, 'results', `startup-${date}.json`), `${JSON.stringify(out, null, 1)}\n`);
  const md = [
    `# Start-up, whole process (${date})`,
    '',
    `Node ${process.version}, ${out.cpus}, ${RUNS} runs per command alternating between trees, load average after: ${out.loadAverageAfter}. Wall time from fork to exit; CPU = user + system.`,
    '',
    '| command | tree | median wall | p25–p75 | min–max | median CPU | target |',
    '|---|---|---|---|---|---|---|',
    ...results.flatMap((r) =>
      r.trees.map((t) => {
        const s = t.summary;
        const verdict = r.target === undefined || !t.tree.startsWith('after') ? '' : `${r.target} ms: ${s.wallMedianMs <= r.target ? 'met' : 'missed'}`;
        return `| ${r.command} | ${t.tree} | ${s.wallMedianMs} ms | ${s.wallP25Ms}–${s.wallP75Ms} | ${s.wallMinMs}–${s.wallMaxMs} | ${s.cpuMedianMs ?? '—'} ms | ${verdict} |`;
      }),
    ),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(HERE, 'results', `startup-${date}.md`), md);
  console.log(`\nwritten: bench/results/startup-${date}.json, .md`);
}

await main();
