import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { main } from '../../lib/cli/main.js';
import { vi } from 'vitest';

const ENTRY = path.join(import.meta.dirname, 'cli-entry.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run the CLI in a real child process (for exit codes and races between processes). With
 * `env`, the child gets exactly that environment plus PATH and HOME, nothing inherited.
 */
export function spawnCli(args: string[], options: { env?: Record<string, string> } = {}): Promise<CliResult> {
  const env = options.env ? { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env } : process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Run the CLI in this process, capturing stdout and stderr. */
export async function runCli(args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
