/**
 * The message loop of a benchmark child process (both sides use it; plain JS so the LanceDB
 * side runs on bare Node with its own node_modules). The driver sends `{id, op, args}` and gets
 * `{id, ok, result | error}` back; `usage` reports this process's peak RSS, which covers every
 * thread in it (our worker threads, LanceDB's Rust threads).
 */
import * as fs from 'node:fs';

/**
 * Peak RSS in MB. On Linux this is VmHWM, the high-water mark of this process image:
 * `process.resourceUsage().maxRSS` (getrusage) carries the forking parent's peak across
 * fork + exec, so a child forked by a big parent would report the parent's peak.
 */
function peakRssMB() {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** Peak RSS once the process has loaded its code, set when `serve` starts. */
let started = 0;

/** @param {Record<string, (args: any) => Promise<unknown> | unknown>} handlers */
export function serve(handlers) {
  started = peakRssMB();
  const all = {
    ...handlers,
    usage: () => ({ startRssMB: started, maxRssMB: peakRssMB() }),
  };
  process.on('message', async (msg) => {
    const { id, op, args } = /** @type {{id: number, op: string, args: unknown}} */ (msg);
    try {
      const fn = all[op];
      if (!fn) throw new Error(`unknown op '${op}'`);
      process.send?.({ id, ok: true, result: await fn(args) });
    } catch (err) {
      process.send?.({ id, ok: false, error: err instanceof Error ? err.stack ?? err.message : String(err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ id: 0, ok: true, result: 'ready' });
}
