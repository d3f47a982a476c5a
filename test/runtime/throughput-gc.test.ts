import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const CHILD = path.join(import.meta.dirname, '..', 'support', 'gc-churn.ts');

/** Run the churn child with V8's incremental-marking trace; count the markings it started. */
function churn(mode: 'apply' | 'default', env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--trace-incremental-marking', '--import', 'tsx', CHILD, mode], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout.split('\n');
  // V8's trace lines around the churn (from the setting on to the churn's end).
  const from = lines.findIndex((l) => l.startsWith('THROUGHPUT_GC='));
  const to = lines.indexOf('CHURN_DONE');
  expect(from, r.stdout).toBeGreaterThanOrEqual(0);
  expect(to, r.stdout).toBeGreaterThan(from);
  const during = lines.slice(from, to);
  return { on: lines[from] === 'THROUGHPUT_GC=true', markings: during.filter((l) => l.includes('[IncrementalMarking] Start marking')).length };
}

describe('useThroughputGc', () => {
  it('stops V8 from starting incremental marking under a build-like ArrayBuffer churn', () => {
    // The same churn with V8's default starts incremental marking (the control: without it,
    // "no markings" below would prove nothing).
    const control = churn('default');
    expect(control.on).toBe(false);
    expect(control.markings).toBeGreaterThan(0);
    const tuned = churn('apply');
    expect(tuned.on).toBe(true);
    expect(tuned.markings).toBe(0);
  });

  it('leaves V8 alone with SCALAR_INDEX_INCREMENTAL_GC=1', () => {
    const kept = churn('apply', { SCALAR_INDEX_INCREMENTAL_GC: '1' });
    expect(kept.on).toBe(false);
    expect(kept.markings).toBeGreaterThan(0);
  });
});
