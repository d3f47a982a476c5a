import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { THROUGHPUT_GC_MIN_WORK_ROWS } from '../../lib/runtime.js';

const CHILD = path.join(import.meta.dirname, '..', 'support', 'gc-churn.ts');

/**
 * Run the churn child with V8's incremental-marking trace; count the markings V8 started
 * during the "build" and after its release.
 */
function churn(mode: string, workRows = 0, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--trace-incremental-marking', '--import', 'tsx', CHILD, mode, String(workRows)], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout.split('\n');
  const from = lines.findIndex((l) => l.startsWith('MODE='));
  const mid = lines.indexOf('RELEASED');
  const to = lines.indexOf('CHURN_DONE');
  expect(from, r.stdout).toBeGreaterThanOrEqual(0);
  expect(mid, r.stdout).toBeGreaterThan(from);
  expect(to, r.stdout).toBeGreaterThan(mid);
  const markings = (a: number, b: number) => lines.slice(a, b).filter((l) => l.includes('[IncrementalMarking] Start marking')).length;
  return { mode: lines[from]!.slice('MODE='.length), during: markings(from, mid), after: markings(mid, to) };
}

describe('useThroughputGc', () => {
  it("V8's default marks incrementally under a build-like ArrayBuffer churn (the control)", () => {
    // Without this, "no markings" below would prove nothing.
    const r = churn('default');
    expect(r.mode).toBe('default');
    expect(r.during).toBeGreaterThan(0);
    expect(r.after).toBeGreaterThan(0);
  });

  it("'always' stops incremental marking for good", () => {
    expect(churn('always', 0)).toEqual({ mode: 'always', during: 0, after: 0 });
  });

  it("'large-builds' stops it only while a build of at least THROUGHPUT_GC_MIN_WORK_ROWS runs", () => {
    expect(churn('large-builds', THROUGHPUT_GC_MIN_WORK_ROWS)).toMatchObject({ mode: 'large-builds', during: 0 });
    expect(churn('large-builds', THROUGHPUT_GC_MIN_WORK_ROWS).after).toBeGreaterThan(0);
    const small = churn('large-builds', THROUGHPUT_GC_MIN_WORK_ROWS - 1);
    expect(small.during).toBeGreaterThan(0);
  });

  it('leaves V8 alone with SCALAR_INDEX_INCREMENTAL_GC=1', () => {
    const kept = churn('always', THROUGHPUT_GC_MIN_WORK_ROWS, { SCALAR_INDEX_INCREMENTAL_GC: '1' });
    expect(kept.mode).toBe('default');
    expect(kept.during).toBeGreaterThan(0);
  });
});
