/**
 * Worker-thread entry for PartWorkerPool: runs build-part steps posted by the pool. It imports
 * only what building a part needs (not the whole workflow), since every module loaded here is
 * loaded once per worker.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { WriterTuning } from '../indexes/kind.js';
import { buildPart } from './build-part.js';
import type { WorkerReply } from './part-workers.js';
import { BuildPartInputSchema } from './types.js';

const tuning = (workerData as { tuning?: WriterTuning } | null)?.tuning;

parentPort!.on('message', async ({ id, input }: { id: number; input: unknown }) => {
  let reply: WorkerReply;
  try {
    const parsed = BuildPartInputSchema.safeParse(input);
    if (!parsed.success) throw Object.assign(new Error(`invalid build-part input: ${parsed.error.issues[0]?.message}`), { name: 'UsageError' });
    reply = { id, result: { ...(await buildPart(parsed.data, tuning)), threadId } };
  } catch (err) {
    const e = err as Error;
    reply = { id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(err) } };
  }
  parentPort!.postMessage(reply);
});

// Everything a part needs is loaded: the pool may send parts now.
parentPort!.postMessage({ ready: true });
