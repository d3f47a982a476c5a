/**
 * A watchdog for fuzz cases that could hang synchronously (an endless loop in a decoder),
 * which no timer in the test's own thread can interrupt. A worker thread watches a deadline
 * the test sets before each case; past it, the worker writes the case's description to
 * stderr (synchronously: the main thread may never run again) and kills the process, so the
 * run fails loudly, naming the case, instead of hanging. Async hangs are caught earlier by
 * fast-check's own per-run timeout.
 */
import { Worker } from 'node:worker_threads';

const WATCHER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const state = new Int32Array(workerData.state);
const text = new Uint8Array(workerData.text);
for (;;) {
  Atomics.wait(state, 1, 0, 500);
  if (Atomics.load(state, 1) === 1) break;
  const deadline = Atomics.load(state, 0);
  if (deadline !== 0 && Math.floor(Date.now() / 1000) > deadline) {
    const n = Atomics.load(state, 2);
    const what = Buffer.from(text.slice(0, n)).toString('utf8');
    fs.writeSync(2, '\\nWATCHDOG: a test case ran past its deadline (hang?); killing the test process.\\n  case: ' + what + '\\n');
    process.kill(process.pid, 'SIGKILL');
  }
}
`;

export class Watchdog {
  private readonly state = new SharedArrayBuffer(12);
  private readonly text = new SharedArrayBuffer(16 * 1024);
  private readonly worker: Worker;

  constructor() {
    this.worker = new Worker(WATCHER, { eval: true, workerData: { state: this.state, text: this.text } });
    this.worker.unref();
  }

  /** Arm for one case: kill the process unless `disarm` is called within `seconds`. */
  arm(seconds: number, description: string): void {
    const bytes = Buffer.from(description.slice(0, 4000), 'utf8').subarray(0, this.text.byteLength);
    new Uint8Array(this.text).set(bytes);
    const s = new Int32Array(this.state);
    Atomics.store(s, 2, bytes.byteLength);
    Atomics.store(s, 0, Math.floor(Date.now() / 1000) + seconds);
  }

  disarm(): void {
    Atomics.store(new Int32Array(this.state), 0, 0);
  }

  async stop(): Promise<void> {
    const s = new Int32Array(this.state);
    Atomics.store(s, 1, 1);
    Atomics.notify(s, 1);
    await this.worker.terminate();
  }
}
