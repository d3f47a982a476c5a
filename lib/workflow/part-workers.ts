/**
 * Worker threads for build-part steps, so a local build uses every core (part building is
 * CPU-bound; async concurrency in one thread would not help). Each worker imports the same
 * `buildPartStep` the Lambda calls. Errors come back with their class name and message.
 */
import { Worker } from 'node:worker_threads';
import { ScalarIndexError } from '../errors.js';
import type { WriterTuning } from '../indexes/kind.js';
import type { BuildPartOutput } from './types.js';

interface Job {
  input: unknown;
  resolve: (v: BuildPartOutput) => void;
  reject: (e: unknown) => void;
}

export interface WorkerReply {
  id: number;
  result?: BuildPartOutput;
  error?: { name: string; message: string };
}

/** An error raised in a worker, re-created here with the same name and message. */
export class WorkerStepError extends ScalarIndexError {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * Build-part steps on worker threads, plus, when `inThread` is given, on this thread too: it
 * has the library loaded already, so it starts on the first part at once while the workers
 * are still loading theirs (about 0.3 s each). A worker takes parts only once it says it is
 * ready, so no part waits on a worker that is still starting.
 */
export class PartWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<number, Job>();
  private nextId = 0;
  private closed = false;
  private localBusy = false;

  constructor(
    size: number,
    tuning?: WriterTuning,
    private readonly inThread?: (input: unknown) => Promise<BuildPartOutput>,
  ) {
    for (let i = 0; i < size; i++) {
      const w = spawnWorker(tuning);
      w.on('message', (reply: WorkerReply | { ready: true }) => {
        if ('ready' in reply) {
          this.idle.push(w);
          this.pump();
        } else this.onReply(w, reply);
      });
      w.on('error', (err) => this.onCrash(w, err));
      w.on('exit', (code) => {
        if (!this.closed && code !== 0) this.onCrash(w, new ScalarIndexError(`build-part worker exited with code ${code}`));
      });
      this.all.push(w);
    }
  }

  run(input: unknown): Promise<BuildPartOutput> {
    if (this.closed) return Promise.reject(new ScalarIndexError('worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const w = this.idle.pop();
      if (w) {
        const job = this.queue.shift()!;
        const id = this.nextId++;
        this.running.set(id, job);
        (w as Worker & { jobId?: number }).jobId = id;
        w.postMessage({ id, input: job.input });
      } else if (this.inThread && !this.localBusy) {
        const job = this.queue.shift()!;
        this.localBusy = true;
        this.inThread(job.input)
          .then(job.resolve, job.reject)
          .finally(() => {
            this.localBusy = false;
            this.pump();
          });
      } else break;
    }
  }

  private onReply(w: Worker, reply: WorkerReply): void {
    const job = this.running.get(reply.id);
    this.running.delete(reply.id);
    this.idle.push(w);
    if (job) {
      if (reply.error) job.reject(new WorkerStepError(reply.error.name, reply.error.message));
      else job.resolve(reply.result!);
    }
    this.pump();
  }

  private onCrash(w: Worker, err: unknown): void {
    const id = (w as Worker & { jobId?: number }).jobId;
    const job = id === undefined ? undefined : this.running.get(id);
    if (id !== undefined) this.running.delete(id);
    job?.reject(err);
    // A crashed worker is not reused; with no worker and no thread left, fail what is queued rather than hang.
    for (const list of [this.all, this.idle]) {
      const i = list.indexOf(w);
      if (i >= 0) list.splice(i, 1);
    }
    if (this.all.length === 0 && !this.inThread) for (const q of this.queue.splice(0)) q.reject(err);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.all.map((w) => w.terminate()));
  }
}

/**
 * Start one worker on `part-worker.js`. From TypeScript sources (tests, `tsx`), Node 20
 * workers do not inherit the tsx loader, so a small eval'd bootstrap registers it first.
 */
function spawnWorker(tuning: WriterTuning | undefined): Worker {
  const fromSource = import.meta.url.endsWith('.ts');
  const options = { workerData: { tuning }, env: process.env };
  if (!fromSource) return new Worker(new URL('./part-worker.js', import.meta.url), options);
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./part-worker.ts', import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...options, eval: true, execArgv: withoutTsx(process.execArgv) });
}

/** Node flags minus any tsx loader (`--import tsx`, `--import=…tsx…`), so it is added once. */
function withoutTsx(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if ((a === '--import' || a === '--require' || a === '--loader' || a === '-r') && argv[i + 1]?.includes('tsx')) {
      i++;
      continue;
    }
    if (/^--(import|require|loader)=.*tsx/.test(a)) continue;
    out.push(a);
  }
  return out;
}
