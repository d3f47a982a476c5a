/**
 * The benchmark's data and queries, shared by the driver and our side.
 *
 * Fragments are generated once per (fragment number, row count) under bench/.data/lancedb/
 * (gitignored) and reused by every size: fragment f is the same file whether the dataset has
 * 1M or 50M rows, so a 50M run reuses the 10M run's files. Each dataset directory links them
 * as `data/part-XXXXX.arrow`; LanceDB ingests the very same files, in the same order.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as arrow from 'apache-arrow';
import { rng } from '../../scripts/sample-data.js';

export const FRAGMENT_ROWS = 1_000_000;
/** Ids start past 2^32 so 64-bit comparisons are exercised: id = ID_BASE + 2 * global row. */
export const ID_BASE = 5_000_000_000n;
export const CAT_VALUES = 100;
export const STR_VALUES = 1000;
export const NULL_RATE = 0.01;

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const DATA_ROOT = path.join(HERE, '..', '.data', 'lancedb');

export function fragmentSizes(rows: number): number[] {
  const sizes: number[] = [];
  for (let start = 0; start < rows; start += FRAGMENT_ROWS) sizes.push(Math.min(FRAGMENT_ROWS, rows - start));
  return sizes;
}

/** Path of fragment `f` with `n` rows in the cache, generated on first use. */
export function cachedFragment(f: number, n: number): string {
  const file = path.join(DATA_ROOT, 'fragments', `frag-${String(f).padStart(5, '0')}-${n}.arrow`);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, arrow.tableToIPC(generateFragment(f, n), 'file'));
    fs.renameSync(tmp, file);
  }
  return file;
}

/**
 * One fragment, written with typed arrays (building vectors value by value would dominate).
 * Columns: cat_i32 (100 random values), cat_str (1,000 random values 's0'..'s999'),
 * id (int64, sorted, unique), f64 (float64 in [0, 1), 1% nulls).
 */
export function generateFragment(f: number, n: number): arrow.Table {
  const rand = rng(0x5eed + f);
  const enc = new TextEncoder();
  const strings = Array.from({ length: STR_VALUES }, (_, i) => enc.encode(`s${i}`));
  const cat = new Int32Array(n);
  const strIdx = new Uint16Array(n);
  const offsets = new Int32Array(n + 1);
  const ids = new BigInt64Array(n);
  const f64 = new Float64Array(n);
  const valid = new Uint8Array((n + 7) >> 3);
  const first = ID_BASE + 2n * BigInt(f * FRAGMENT_ROWS);
  let nulls = 0;
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    cat[i] = Math.floor(rand() * CAT_VALUES);
    const s = Math.floor(rand() * STR_VALUES);
    strIdx[i] = s;
    bytes += strings[s]!.length;
    offsets[i + 1] = bytes;
    ids[i] = first + 2n * BigInt(i);
    if (rand() < NULL_RATE) nulls++;
    else {
      valid[i >> 3]! |= 1 << (i & 7);
      f64[i] = rand();
    }
  }
  const utf8 = new Uint8Array(bytes);
  for (let i = 0; i < n; i++) utf8.set(strings[strIdx[i]!]!, offsets[i]!);
  return new arrow.Table({
    cat_i32: arrow.makeVector(cat),
    cat_str: arrow.makeVector(arrow.makeData({ type: new arrow.Utf8(), length: n, valueOffsets: offsets, data: utf8 })),
    id: arrow.makeVector(ids),
    f64: arrow.makeVector(arrow.makeData({ type: new arrow.Float64(), length: n, nullCount: nulls, nullBitmap: valid, data: f64 })),
  });
}

/** Fragment files of a dataset of `rows` rows, in fragment-id order (generated if missing). */
export function fragmentFiles(rows: number): string[] {
  return fragmentSizes(rows).map((n, f) => cachedFragment(f, n));
}

/** A fresh dataset directory of hard links to the cached fragments (fragments are immutable). */
export function linkDataset(dir: string, rows: number): string {
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fragmentFiles(rows).forEach((file, f) => fs.linkSync(file, path.join(dir, 'data', `part-${String(f).padStart(5, '0')}.arrow`)));
  return dir;
}

export interface BenchQuery {
  name: string;
  where: string;
  /** True when our answer comes from bitmaps only and must equal LanceDB's exactly. */
  exact: boolean;
}

/** The query set for a dataset of `rows` rows (the id range covers 0.1% of rows mid-table). */
export function queries(rows: number): BenchQuery[] {
  const r0 = Math.floor(rows * 0.4);
  const r1 = r0 + Math.max(1, Math.floor(rows / 1000));
  const lo = ID_BASE + 2n * BigInt(r0);
  const hi = ID_BASE + 2n * BigInt(r1 - 1);
  return [
    { name: 'point (bitmap)', where: 'cat_i32 = 7', exact: true },
    { name: 'IN (bitmap)', where: "cat_str IN ('s1','s2')", exact: true },
    { name: 'range 0.1% (zone map / LanceDB btree)', where: `id BETWEEN ${lo} AND ${hi}`, exact: false },
    { name: 'IS NULL (zone map / LanceDB scan)', where: 'f64 IS NULL', exact: false },
    { name: 'AND of two bitmaps', where: "cat_i32 = 7 AND cat_str = 's5'", exact: true },
  ];
}
