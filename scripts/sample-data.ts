/**
 * A realistic sample dataset: sales rows in Arrow fragments, written with typed arrays (fast
 * enough for tens of millions of rows). Used by `npm start` and the benchmark.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';

export interface SampleOptions {
  fragments: number;
  rowsPerFragment: number;
  seed?: number;
}

/** Small deterministic PRNG (mulberry32), so every run makes the same data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const REGIONS = ['EU-West', 'EU-North', 'US-East', 'US-West', 'APAC', 'LATAM', 'Africa', 'Middle East'];

export function writeSampleDataset(root: string, o: SampleOptions): { rows: number; files: string[] } {
  const dir = path.join(root, 'data');
  fs.mkdirSync(dir, { recursive: true });
  const rand = rng(o.seed ?? 42);
  const files: string[] = [];
  const regionDict = arrow.vectorFromArray(REGIONS, new arrow.Utf8());
  const t0 = Date.UTC(2026, 0, 1);
  let nextId = 0n;
  for (let f = 0; f < o.fragments; f++) {
    const n = o.rowsPerFragment;
    const region = new Int32Array(n);
    const category = new Int32Array(n);
    const price = new Float64Array(n);
    const priceValid = new Uint8Array((n + 7) >> 3);
    const ts = new BigInt64Array(n);
    const id = new BigInt64Array(n);
    let nulls = 0;
    // Each fragment is one day of data, so time and id are clustered: zone maps prune them.
    const day = t0 + f * 86_400_000;
    for (let i = 0; i < n; i++) {
      region[i] = Math.floor(rand() * rand() * REGIONS.length);
      category[i] = Math.floor(rand() * 100);
      const r = rand();
      if (r < 0.01) nulls++;
      else {
        priceValid[i >> 3]! |= 1 << (i & 7);
        price[i] = r < 0.011 ? NaN : Math.round((5 + category[i]! * 3 + rand() * 20) * 100) / 100;
      }
      ts[i] = BigInt(day + Math.floor((i / n) * 86_400_000));
      id[i] = nextId++;
    }
    const dictType = new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32());
    const columns = {
      id: arrow.makeVector(id),
      ts: arrow.makeVector(arrow.makeData({ type: new arrow.TimestampMillisecond('UTC'), length: n, data: ts })),
      region: arrow.makeVector(arrow.makeData({ type: dictType, length: n, data: region, dictionary: regionDict })),
      category: arrow.makeVector(category),
      price: arrow.makeVector(arrow.makeData({ type: new arrow.Float64(), length: n, nullCount: nulls, nullBitmap: priceValid, data: price })),
    };
    const table = new arrow.Table(columns);
    const file = path.join(dir, `part-${String(f).padStart(5, '0')}.arrow`);
    fs.writeFileSync(file, arrow.tableToIPC(table, 'file'));
    files.push(file);
  }
  return { rows: o.fragments * o.rowsPerFragment, files };
}
