// Child process for test/runtime/throughput-gc.test.ts. Opts in as told (argv[2]: 'default',
// 'always', or 'large-builds' with a build of argv[3] work rows), then churns ArrayBuffers the
// way a build does (many megabytes alive across awaits, a small heap) twice: while the "build"
// runs, and after it is released. V8's --trace-incremental-marking lines (on stdout) between
// the markers show whether incremental marking ran in each phase.
import { throughputGcFor, useThroughputGc } from '../../lib/runtime.js';

async function churn(): Promise<void> {
  const live: Uint8Array[] = [];
  let junk: object[] = [];
  for (let i = 0; i < 600; i++) {
    const a = new Uint8Array(1 << 20);
    a[i % a.length] = i;
    live.push(a);
    if (live.length > 40) live.shift();
    for (let j = 0; j < 5000; j++) junk.push({ j });
    if (junk.length > 100_000) junk = [];
    if (i % 10 === 0) await new Promise((r) => setImmediate(r));
  }
}

const wanted = process.argv[2];
const mode = wanted === 'always' || wanted === 'large-builds' ? useThroughputGc(wanted) : undefined;
const release = throughputGcFor(Number(process.argv[3] ?? 0));
console.log(`MODE=${mode ?? 'default'}`);
await churn();
console.log('RELEASED');
release();
await churn();
console.log('CHURN_DONE');
