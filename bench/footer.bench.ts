/**
 * Registration reads: what the plan step pays to register N new Arrow fragments, by footer
 * (`readFragmentFooter`) against reading each whole (`loadFragment`). Requests and bytes are
 * counted by a wrapper around the store (they do not depend on the machine); times are
 * wall-clock, in process, the fragments read `BENCH_CONCURRENCY` at a time.
 *
 *   npm run bench:footer                                   # 1000 fragments of ~1 MiB, in memory and on s3rver
 *   BENCH_FRAGMENTS=200 BENCH_STORE=memory npm run bench:footer
 *
 * Settings: BENCH_FRAGMENTS (1000), BENCH_FRAGMENT_KIB (1024), BENCH_BATCHES (1,4,16: record
 * batches per fragment, one run each), BENCH_CONCURRENCY (16), BENCH_STORE (memory, s3 or
 * both), BENCH_WHOLE_SAMPLE (100: fragments read whole on s3rver, where reading all of them
 * whole would take a while; the totals are scaled), BENCH_TAIL_KIB and BENCH_GAP_KIB
 * (readFragmentFooter's tailBytes and coalesceGap, when set).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as arrow from 'apache-arrow';
import { readFragmentFooter } from '../lib/fragments/footer.js';
import { loadFragment } from '../lib/fragments/reader.js';
import { S3Store } from '../lib/store/s3.js';
import type { ObjectInfo, ObjectStore, ObjectWriter } from '../lib/store/store.js';
import { startS3Server } from '../test/support/s3-server.js';
import { envInt, envList } from './env.js';

const FRAGMENTS = envInt('BENCH_FRAGMENTS', 1000);
const FRAGMENT_BYTES = envInt('BENCH_FRAGMENT_KIB', 1024) * 1024;
const BATCHES = envList('BENCH_BATCHES', [1, 4, 16]);
const CONCURRENCY = envInt('BENCH_CONCURRENCY', 16);
const WHOLE_SAMPLE = Math.min(FRAGMENTS, envInt('BENCH_WHOLE_SAMPLE', 100));
const STORE = process.env.BENCH_STORE ?? 'both';
/** readFragmentFooter's tuning, when set: its first read from the end, and its coalescing gap. */
const TUNING = {
  ...(process.env.BENCH_TAIL_KIB ? { tailBytes: envInt('BENCH_TAIL_KIB', 64) * 1024 } : {}),
  ...(process.env.BENCH_GAP_KIB ? { coalesceGap: envInt('BENCH_GAP_KIB', 64) * 1024 } : {}),
};
if (!['memory', 's3', 'both'].includes(STORE)) throw new Error(`BENCH_STORE must be memory, s3 or both, got '${STORE}'`);

/** Counts reads and bytes through to another store. */
class Counting implements Pick<ObjectStore, 'describe' | 'head' | 'read'> {
  reads = 0;
  bytes = 0;
  constructor(private readonly inner: ObjectStore) {}
  describe(key: string) {
    return this.inner.describe(key);
  }
  head(key: string) {
    return this.inner.head(key);
  }
  async read(key: string, range?: { start: number; end: number }) {
    const b = await this.inner.read(key, range);
    this.reads++;
    this.bytes += b.byteLength;
    return b;
  }
}
const counted = (c: Counting) => c as unknown as ObjectStore;

class MemoryStore implements ObjectStore {
  private readonly objects = new Map<string, Uint8Array>();
  describe(key: string) {
    return `mem://${key}`;
  }
  async head(key: string): Promise<ObjectInfo | undefined> {
    const b = this.objects.get(key);
    return b && { key, size: b.byteLength };
  }
  async read(key: string, range?: { start: number; end: number }) {
    const b = this.objects.get(key)!;
    return range ? b.subarray(range.start, range.end) : b;
  }
  async put(key: string, body: Uint8Array): Promise<ObjectInfo> {
    this.objects.set(key, body);
    return { key, size: body.byteLength };
  }
  openWriter(): Promise<ObjectWriter> {
    throw new Error('not used');
  }
  async *list(): AsyncIterable<ObjectInfo> {}
  async deleteMany() {}
}

/** A fragment of about FRAGMENT_BYTES: an int64 id, a float64, an int32 category and a short string. */
function fragment(batches: number, seed: number): Uint8Array {
  // About 28 bytes a row: 8 + 8 + 4, and a 2–4 byte string with its 4-byte offset.
  const rows = Math.floor(FRAGMENT_BYTES / 28);
  const out: arrow.RecordBatch[] = [];
  let state = seed >>> 0 || 1;
  const rand = () => (state = (state * 1103515245 + 12345) >>> 0);
  for (let b = 0; b < batches; b++) {
    const start = Math.floor((rows * b) / batches);
    const n = Math.floor((rows * (b + 1)) / batches) - start;
    const ids = new BigInt64Array(n);
    const xs = new Float64Array(n);
    const cats = new Int32Array(n);
    const strings: string[] = [];
    for (let i = 0; i < n; i++) {
      ids[i] = BigInt(seed * rows + start + i);
      xs[i] = rand() / 1e3;
      cats[i] = rand() % 100;
      strings.push(`s${rand() % 1000}`);
    }
    out.push(
      new arrow.RecordBatch({
        id: arrow.makeData({ type: new arrow.Int64(), length: n, data: ids }),
        x: arrow.makeData({ type: new arrow.Float64(), length: n, data: xs }),
        cat: arrow.makeData({ type: new arrow.Int32(), length: n, data: cats }),
        s: arrow.vectorFromArray(strings, new arrow.Utf8()).data[0]!,
      }),
    );
  }
  return arrow.tableToIPC(new arrow.Table(out), 'file');
}

async function forAll<T>(items: T[], work: (item: T) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
  return performance.now() - t0;
}

interface Row {
  store: string;
  batches: number;
  method: string;
  fragments: number;
  requests: number;
  bytes: number;
  dataBytes: number;
  ms: number;
}
const rows: Row[] = [];

async function measure(storeName: string, store: ObjectStore, batches: number, keys: { key: string; size: number }[]): Promise<void> {
  const dataBytes = keys.reduce((n, k) => n + k.size, 0);
  const byFooter = new Counting(store);
  let footerRows = 0;
  const ms = await forAll(keys, async ({ key, size }) => {
    const { rows } = await readFragmentFooter(counted(byFooter), key, size, TUNING);
    footerRows += rows;
  });
  rows.push({ store: storeName, batches, method: 'footer', fragments: keys.length, requests: byFooter.reads, bytes: byFooter.bytes, dataBytes, ms });
  const sample = storeName === 'memory' ? keys : keys.slice(0, WHOLE_SAMPLE);
  const whole = new Counting(store);
  let wholeRows = 0;
  const wholeMs = await forAll(sample, async ({ key }) => {
    const { rows } = await loadFragment(counted(whole), key);
    wholeRows += rows;
  });
  const scale = keys.length / sample.length;
  rows.push({ store: storeName, batches, method: sample.length === keys.length ? 'whole' : `whole (${sample.length} read, scaled)`, fragments: keys.length, requests: whole.reads * scale, bytes: whole.bytes * scale, dataBytes, ms: wholeMs * scale });
  if (sample.length === keys.length && wholeRows !== footerRows) throw new Error(`rows differ: footer ${footerRows}, whole ${wholeRows}`);
}

function printTable(): void {
  console.log('store    batches  method                        requests  req/frag          bytes   bytes/data   wall ms');
  for (const r of rows) {
    console.log(
      `${r.store.padEnd(8)} ${String(r.batches).padStart(7)}  ${r.method.padEnd(28)} ${fmt(r.requests).padStart(9)} ${(r.requests / r.fragments).toFixed(2).padStart(9)} ${fmt(r.bytes).padStart(14)} ${(
        (100 * r.bytes) /
        r.dataBytes
      )
        .toFixed(2)
        .padStart(11)}% ${fmt(r.ms).padStart(9)}`,
    );
  }
}

const fmt = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 0 });

async function main(): Promise<void> {
  console.log(`registration reads: ${FRAGMENTS} Arrow files of ~${FRAGMENT_BYTES / 1024} KiB, ${CONCURRENCY} at a time, tuning ${JSON.stringify(TUNING)}`);
  const s3 = STORE === 'memory' ? undefined : await startS3Server({ buckets: ['bench'] });
  try {
    for (const batches of BATCHES) {
      // Ten distinct files, stored under FRAGMENTS keys: the reads do not care.
      const distinct = Array.from({ length: 10 }, (_, i) => fragment(batches, i + 1));
      const keys = Array.from({ length: FRAGMENTS }, (_, i) => ({ key: `data/f${String(i).padStart(5, '0')}.arrow`, size: distinct[i % 10]!.byteLength }));
      if (STORE !== 's3') {
        const mem = new MemoryStore();
        for (const [i, k] of keys.entries()) await mem.put(k.key, distinct[i % 10]!);
        await measure('memory', mem, batches, keys);
      }
      if (s3) {
        const store = new S3Store({ bucket: 'bench', prefix: `b${batches}` }, { client: s3.client() });
        const t0 = performance.now();
        await forAll([...keys.entries()], async ([i, k]) => {
          await store.put(k.key, distinct[i % 10]!);
        });
        console.log(`  uploaded ${FRAGMENTS} fragments to s3rver in ${fmt(performance.now() - t0)} ms`);
        await measure('s3rver', store, batches, keys);
      }
    }
    printTable();
  } finally {
    // After several GB through it, the test server's stop() has been seen never to settle
    // (with nothing left to wait for): the numbers are printed first, and the wait is bounded.
    if (s3) await Promise.race([s3.stop(), sleep(30_000).then(() => console.warn('s3rver did not stop within 30 s'))]);
  }
}

await main();
