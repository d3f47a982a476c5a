// Runs a scan with forced GCs (node --expose-gc) and reports the array-buffer bytes it held at
// most beyond the start, against the bytes it returned: see scan.test.ts "bounded memory".
import { scan } from '../../lib/scan/scan.js';

const [root, where] = process.argv.slice(2) as [string, string];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
gc();
const base = process.memoryUsage().arrayBuffers;
let peak = 0;
let rows = 0;
let resultBytes = 0;
let batches = 0;
for await (const chunk of scan(root, where, { columns: ['id', 'v'] }).chunks()) {
  rows += chunk.batch.numRows;
  batches++;
  resultBytes += chunk.batch.numRows * 16;
  // Only what the scan still references survives: the batch handed out and those read ahead.
  // Twice, with a turn of the event loop between, so freed backing stores are counted as freed.
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
}
process.stdout.write(JSON.stringify({ rows, resultBytes, peakHeldBytes: peak, batches }));
