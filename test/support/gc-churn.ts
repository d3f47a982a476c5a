// Child process for test/runtime/throughput-gc.test.ts: optionally applies useThroughputGc(),
// then churns ArrayBuffers the way a build does (many megabytes alive across awaits, a
// small heap), and prints whether the setting is on. V8's own --trace-incremental-marking
// output (on stdout) shows whether incremental marking ran.
import { useThroughputGc } from '../../lib/runtime.js';

const on = process.argv[2] === 'apply' ? useThroughputGc() : false;
console.log(`THROUGHPUT_GC=${on}`);
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
console.log('CHURN_DONE');
