/** Worker-thread entry for PartWorkerPool: runs build-part steps posted by the pool. */
import { parentPort, threadId, workerData } from 'node:worker_threads';
import type { WriterTuning } from '../indexes/kind.js';
import type { WorkerReply } from './part-workers.js';
import { buildPartStep } from './steps.js';

const tuning = (workerData as { tuning?: WriterTuning } | null)?.tuning;

parentPort!.on('message', async ({ id, input }: { id: number; input: unknown }) => {
  let reply: WorkerReply;
  try {
    reply = { id, result: { ...(await buildPartStep(input, { tuning })), threadId } };
  } catch (err) {
    const e = err as Error;
    reply = { id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(err) } };
  }
  parentPort!.postMessage(reply);
});
