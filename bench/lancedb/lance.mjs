/**
 * The LanceDB side of the benchmark, in its own child process with bench/lancedb/node_modules
 * (@lancedb/lancedb and the apache-arrow ≤ 18.1 it needs), so the two apache-arrow versions
 * never meet and its peak RSS is its own. Plain JS: the main type-check must not need this
 * package's dependencies.
 */
import * as fs from 'node:fs';
import * as lancedb from '@lancedb/lancedb';
import * as arrow from 'apache-arrow';
import { serve } from './child.mjs';

const TABLE = 'bench';

/** @type {{ dir: string, table: lancedb.Table } | undefined} */
let open;

/** The table under `dir`, opened once per process (LanceDB caches indexes per handle). */
async function table(dir) {
  if (open?.dir !== dir) {
    const db = await lancedb.connect(dir);
    open = { dir, table: await db.openTable(TABLE) };
  }
  return open.table;
}

/** @param {arrow.Table} t @returns {BigUint64Array} every `_rowaddr`, sorted */
function rowAddresses(t) {
  const out = new BigUint64Array(t.numRows);
  let k = 0;
  const col = t.getChild('_rowaddr');
  if (col) for (const d of col.data) out.set(d.values.subarray(d.offset, d.offset + d.length), (k += d.length) - d.length);
  return out.sort();
}

/** A 64-bit column's values as little-endian 32-bit words (lo, hi), copied into one array. */
function words(vector) {
  const out = new Uint32Array(vector.length * 2);
  let k = 0;
  for (const d of vector.data) {
    const v = d.values.subarray(d.offset, d.offset + d.length);
    out.set(new Uint32Array(v.buffer, v.byteOffset, v.length * 2), k);
    k += v.length * 2;
  }
  return out;
}

serve({
  /**
   * Writes the fragment files, in order, as one table: one `add` of ≤ 1,048,576 rows makes one
   * Lance fragment, so Lance fragment i is our fragment i (checked by `verify`).
   */
  async ingest({ dir, files }) {
    const db = await lancedb.connect(dir);
    const t0 = performance.now();
    let tbl;
    for (const file of files) {
      const data = arrow.tableFromIPC(fs.readFileSync(file));
      if (!tbl) tbl = await db.createTable(TABLE, data, { mode: 'overwrite' });
      else await tbl.add(data);
    }
    const ms = performance.now() - t0;
    const stats = await tbl.stats();
    return { ms, rows: stats.numRows, fragments: stats.fragmentStats.numFragments, version: await tbl.version() };
  },

  /**
   * Reads every row's `id` and `_rowaddr` and checks that the row with global position g
   * (id = idBase + 2g) sits at fragment floor(g / fragmentRows), offset g % fragmentRows.
   * Returns each fragment's range of `_rowaddr` offsets.
   */
  async verify({ dir, fragmentRows, idBase }) {
    const tbl = await table(dir);
    const base = Number(idBase);
    /** @type {Map<number, {min: number, max: number, rows: number}>} */
    const ranges = new Map();
    let rows = 0;
    let bad = 0;
    let firstBad = '';
    for await (const batch of tbl.query().select(['id', '_rowaddr'])) {
      const ids = words(batch.getChild('id'));
      const addrs = words(batch.getChild('_rowaddr'));
      for (let i = 0; i < batch.numRows; i++) {
        // Both columns as exact doubles from their 32-bit words (ids stay below 2^53).
        const g = (ids[2 * i + 1] * 2 ** 32 + ids[2 * i] - base) / 2;
        const frag = addrs[2 * i + 1];
        const offset = addrs[2 * i];
        if ((frag !== Math.floor(g / fragmentRows) || offset !== g % fragmentRows) && bad++ === 0) {
          firstBad = `global row ${g} at fragment ${frag} offset ${offset}`;
        }
        const r = ranges.get(frag);
        if (!r) ranges.set(frag, { min: offset, max: offset, rows: 1 });
        else {
          if (offset < r.min) r.min = offset;
          if (offset > r.max) r.max = offset;
          r.rows++;
        }
      }
      rows += batch.numRows;
    }
    const fragments = [...ranges].sort(([a], [b]) => a - b).map(([id, r]) => ({ id, rows: r.rows, firstOffset: r.min, lastOffset: r.max }));
    return { rows, mismatches: bad, firstMismatch: firstBad, fragments };
  },

  /** `createIndex` per column, each timed; returns the index list to prove every row is indexed. */
  async build({ dir, indexes }) {
    const tbl = await table(dir);
    const per = [];
    for (const { column, kind } of indexes) {
      const config = kind === 'bitmap' ? lancedb.Index.bitmap() : lancedb.Index.btree();
      const t0 = performance.now();
      await tbl.createIndex(column, { config });
      per.push({ column, kind, ms: performance.now() - t0 });
    }
    const listed = await tbl.listIndices();
    return {
      ms: per.reduce((n, p) => n + p.ms, 0),
      per,
      indices: listed.map((i) => ({ name: i.name, type: i.indexType, columns: i.columns, indexedRows: i.numIndexedRows, unindexedRows: i.numUnindexedRows, bytes: i.sizeBytes })),
    };
  },

  /** One query returning `_rowaddr`; with `answer`, the addresses are written there as sorted u64le. */
  async query({ dir, where, answer }) {
    const tbl = await table(dir);
    const t0 = performance.now();
    const result = await tbl.query().where(where).select(['_rowaddr']).toArrow();
    const ms = performance.now() - t0;
    if (answer) fs.writeFileSync(answer, new Uint8Array(rowAddresses(result).buffer));
    return { ms, rows: result.numRows };
  },

  async explain({ dir, where }) {
    const tbl = await table(dir);
    return tbl.query().where(where).select(['_rowaddr']).explainPlan(true);
  },
});
