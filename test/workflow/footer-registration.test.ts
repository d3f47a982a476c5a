/**
 * Plan registers new fragments from their footers and headers only; build-part, which reads
 * the indexed columns anyway, is where bad column data is found. Against the real build:
 * - a fragment whose footer and headers are fine but whose indexed column's data is corrupt
 *   fails the build naming it, and no index covers anything new; with skipBadFragments it is
 *   recorded as failed (inspect, every query's unindexedFragments) and the rest is answered
 *   exactly (oracle). On a local directory and on S3 (s3rver).
 * - plan over many new Arrow fragments with a wide unindexed payload column: at most 3
 *   requests per fragment on average and at most 2% of their bytes (counted at the S3 server).
 * - a whole build over fragments of 8 MiB or more with a wide unindexed payload: all the
 *   bytes read (plan and build-part) stay within 1.2× the indexed column's buffers plus the
 *   footers and batch headers.
 */
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch as RecordBatchHeader } from 'apache-arrow/ipc/metadata/message';
import { describe, expect, it } from 'vitest';
import { inspect } from '../../lib/cli/inspect.js';
import { openDataset } from '../../lib/dataset.js';
import { FragmentReadError } from '../../lib/errors.js';
import { listVersions, loadLatestManifest } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { parsePredicate } from '../../lib/query/parser.js';
import { plan } from '../../lib/workflow/plan.js';
import { build } from '../../lib/workflow/build.js';
import { fragmentBytes, type ColumnSpec, type FragmentSpec, type GeneratedDataset } from '../support/dataset.js';
import { coveredIds, fragmentsOf } from '../support/manifest.js';
import { evaluateOracle } from '../support/oracle.js';
import { datasetTargets, useS3Server } from '../support/s3-env.js';
import { expandRanges } from '../support/tmp.js';

const s3 = useS3Server({ buckets: ['footreg'] });
const targets = Object.entries(datasetTargets('footreg'));

/** Where one buffer of one record batch of an Arrow IPC file lies in the file: [start, end). */
function bufferRange(file: Uint8Array, batch: number, buffer: number): { start: number; end: number } {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const footerLength = dv.getInt32(file.byteLength - 10, true);
  const footer = Footer.decode(file.subarray(file.byteLength - 10 - footerLength, file.byteLength - 10));
  const block = [...footer.recordBatches()][batch]!;
  const prefix = dv.getInt32(block.offset, true) === -1 ? 8 : 4;
  const length = dv.getInt32(block.offset + prefix - 4, true);
  const header = (Message.decode(file.subarray(block.offset + prefix, block.offset + prefix + length)) as Message<arrow.MessageHeader.RecordBatch>).header() as RecordBatchHeader;
  const r = header.buffers[buffer]!;
  const start = block.offset + block.metaDataLength + r.offset;
  return { start, end: start + r.length };
}

/** What an ideal footer-and-column reader of an Arrow file needs: the footer, each batch's header, and `column`'s buffers. */
function idealBytes(file: Uint8Array, column: number): { footer: number; headers: number; column: number } {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const footerLength = dv.getInt32(file.byteLength - 10, true);
  const footer = Footer.decode(file.subarray(file.byteLength - 10 - footerLength, file.byteLength - 10));
  let headers = 0;
  let columnBytes = 0;
  for (const block of footer.recordBatches()) {
    headers += block.metaDataLength;
    const prefix = dv.getInt32(block.offset, true) === -1 ? 8 : 4;
    const length = dv.getInt32(block.offset + prefix - 4, true);
    const header = (Message.decode(file.subarray(block.offset + prefix, block.offset + prefix + length)) as Message<arrow.MessageHeader.RecordBatch>).header() as RecordBatchHeader;
    // Flat columns only here: two buffers (validity, values) or three (validity, offsets, data) each.
    let first = 0;
    for (let c = 0; c < column; c++) first += arrow.DataType.isUtf8(footer.schema.fields[c]!.type) ? 3 : 2;
    const count = arrow.DataType.isUtf8(footer.schema.fields[column]!.type) ? 3 : 2;
    for (const r of header.buffers.slice(first, first + count)) columnBytes += r.length;
  }
  return { footer: footerLength + 10, headers, column: columnBytes };
}

// ---------------------------------------------------------------------------------------------
// Corrupt column data behind a good footer

const COLS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 's', type: 'utf8' },
];
const WHERE = ['k = 3', 'k IN (1, 4)', "s = 'v2'", "s >= 'v5' AND k != 0", 'k IS NULL', "NOT (s = 'v1')"];

function goodFragment(n: number, format: FragmentSpec['format']): FragmentSpec {
  const k = Array.from({ length: 60 }, (_, i) => (i % 13 === 12 ? null : (i * 5 + n) % 7));
  const s = Array.from({ length: 60 }, (_, i) => (i % 11 === 10 ? null : `v${(i + 2 * n) % 9}`));
  const ext = format === 'parquet' ? 'parquet' : format === 'stream' ? 'arrows' : 'arrow';
  return { name: `f${n}.${ext}`, rows: { k, s }, batchRows: 16, format };
}

/** An Arrow file whose footer and headers are intact and whose column 's' has value offsets out of order in its second batch. */
function corruptOffsets(): Uint8Array {
  const spec = goodFragment(9, 'file');
  const bytes = fragmentBytes(COLS, spec.rows, { batchRows: spec.batchRows, format: 'file' }).slice();
  // Buffers: k (validity, values), s (validity, offsets, data).
  const offsets = bufferRange(bytes, 1, 3);
  expect(offsets.end - offsets.start).toBeGreaterThanOrEqual(4 * 17);
  new DataView(bytes.buffer, bytes.byteOffset).setInt32(offsets.start + 4 * 5, 0x3fffffff, true);
  return bytes;
}

const BAD = 'data/c-bad.arrow';

describe.each(targets)('corrupt column data behind a good footer, on a %s', (_name, open) => {
  const setup = async () => {
    const t = open();
    const good = [goodFragment(0, 'file'), goodFragment(1, 'parquet'), goodFragment(2, 'stream'), goodFragment(3, 'file')];
    for (const f of good) await t.store.put(`data/${f.name}`, fragmentBytes(COLS, f.rows, { batchRows: f.batchRows, format: f.format }));
    await t.store.put(BAD, corruptOffsets());
    return { ...t, good };
  };
  const indexes = [
    { column: 's', type: 'bitmap' as const },
    { column: 'k', type: 'zonemap' as const, rowsPerZone: 8 },
  ];

  it('plan registers it from its footer; without skipBadFragments build-part fails naming it and no index covers anything', async () => {
    const { dataset, store } = await setup();
    const where = store.describe(BAD);
    // The plan alone cannot tell: the footer and headers are fine.
    const err = await build({ dataset, indexes, concurrency: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FragmentReadError);
    expect((err as Error).message).toContain(where);
    expect((err as Error).message).toMatch(/column 's'.*value offsets out of order/);
    // What exists is the plan's registration (fragment ids are fixed before any part is
    // written); no index was committed, so nothing answers from one.
    const versions = await listVersions(store);
    expect(versions).toEqual([1]);
    const m = await loadLatestManifest(store);
    expect(m.indexes).toEqual([]);
    const fragments = await fragmentsOf(store, m);
    expect(fragments.map((f) => [f.path, f.rows, f.failed])).toEqual([
      [BAD, 60, undefined],
      ['data/f0.arrow', 60, undefined],
      ['data/f1.parquet', 60, undefined],
      ['data/f2.arrows', 60, undefined],
      ['data/f3.arrow', 60, undefined],
    ]);
    // Every later build fails the same way until the file is fixed or skipped: nothing more is committed.
    await expect(build({ dataset, indexes, concurrency: 1 })).rejects.toThrow(where);
    expect(await listVersions(store)).toEqual(versions);
  });

  it('with skipBadFragments it is recorded as failed at commit: inspect lists it, every query names it unindexed, the rest is exact', async () => {
    const { dataset, store, good } = await setup();
    const summary = await build({ dataset, indexes, skipBadFragments: true, concurrency: 1 });
    // Registered fine (footer), found bad later (column data).
    expect(summary.fragmentsFailed).toEqual([]);
    expect(summary.fragmentsFailedLater).toEqual([{ id: 0, path: BAD, reason: expect.stringMatching(/value offsets out of order/) }]);
    expect(summary.fragmentsFailedLater[0]!.reason).toContain(store.describe(BAD));

    const info = await inspect(dataset);
    const listed = info.fragments.list.find((f) => f.path === BAD)!;
    expect(listed.failed).toMatch(/corrupt or truncated fragment .*c-bad\.arrow.*column 's'.*value offsets out of order/);
    expect(info.fragments.list.filter((f) => f.failed !== undefined).map((f) => f.path)).toEqual([BAD]);
    for (const ix of info.indexes) {
      expect(ix.fragmentsCovered, ix.name).toBe(4);
      expect(ix.fragmentsMissing, ix.name).toEqual([]);
    }
    const m = await loadLatestManifest(store);
    for (const e of m.indexes) expect(coveredIds(e)).toEqual([1, 2, 3, 4]);

    const ds: GeneratedDataset = { columns: COLS, fragments: good };
    for (const w of WHERE) {
      const r = await query(dataset, w);
      expect(r.unindexedFragments, w).toEqual([{ id: 0, path: BAD, reason: 'failed' }]);
      const expected = evaluateOracle(ds, parsePredicate(w));
      good.forEach((f, i) => {
        const named = r.fragments.find((x) => x.path === `data/${f.name}`);
        const got = named ? expandRanges(named.ranges) : [];
        if (r.exact) expect(got, `${w}: ${f.name}`).toEqual(expected[i]);
        else for (const row of expected[i]!) expect(got, `${w}: ${f.name} lost row ${row}`).toContain(row);
      });
      expect(r.fragments.some((x) => x.path === BAD), w).toBe(false);
    }

    // A later build leaves it failed and finds nothing to do.
    const again = await build({ dataset, concurrency: 1 });
    expect(again.fragmentsAdded).toBe(0);
    expect(again.fragmentsFailedLater).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Read economy, counted at the S3 server

const WIDE: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 'payload', type: 'utf8' },
];

/** `rows` rows: k of 100 values, a payload of `width` bytes per row; batches of `batchRows`. */
function wideFragment(n: number, rows: number, width: number, batchRows: number): Uint8Array {
  const filler = 'x'.repeat(width - 12);
  const k = Array.from({ length: rows }, (_, i) => (i * 7 + n) % 100);
  const payload = Array.from({ length: rows }, (_, i) => `${String(n).padStart(4, '0')}${String(i).padStart(8, '0')}${filler}`);
  return fragmentBytes(WIDE, { k, payload }, { batchRows, format: 'file' });
}

const dataGets = (prefix: string) => s3.server.requests.filter((r) => r.method === 'GET' && r.key.startsWith(`${prefix}/data/`));

describe('read economy on S3 (requests and bytes counted at the server)', () => {
  it('plan over 24 new one-batch Arrow fragments with a wide payload: at most 3 requests per fragment on average and 2% of their bytes', async () => {
    const prefix = 'economy-plan';
    const dataset = `s3://footreg/${prefix}`;
    const { store } = openDataset(dataset);
    let total = 0;
    const N = 24;
    // About 260 KB each: 1,000 rows (one batch, as a writer of 1,000-row files makes them) of a 256-byte payload.
    for (let n = 0; n < N; n++) {
      const bytes = wideFragment(n, 1000, 256, 1000);
      total += bytes.byteLength;
      await store.put(`data/p${String(n).padStart(3, '0')}.arrow`, bytes);
    }
    s3.server.resetLog();
    const out = await plan({ dataset, indexes: [{ column: 'k', type: 'bitmap' }] });
    expect(out.fragmentsAdded).toBe(N);
    const gets = dataGets(prefix);
    const bytes = gets.reduce((n, r) => n + r.bytesOut, 0);
    console.log(`plan over ${N} fragments (${total} bytes): ${gets.length} GETs (${(gets.length / N).toFixed(2)} per fragment), ${bytes} bytes (${((100 * bytes) / total).toFixed(2)}%)`);
    expect(gets.every((r) => r.status === 206 && /^bytes=\d+-\d+$/.test(r.range ?? ''))).toBe(true);
    expect(gets.length / N).toBeLessThanOrEqual(3);
    expect(bytes / total).toBeLessThanOrEqual(0.02);
    // Every fragment registered with the rows its header gives.
    const m = await loadLatestManifest(store);
    expect((await fragmentsOf(store, m)).map((f) => f.rows)).toEqual(new Array(N).fill(1000));
  });

  it('plan over fragments of several batches far apart: the tail and one read per batch header at most, still within 2% of their bytes', async () => {
    const prefix = 'economy-batches';
    const dataset = `s3://footreg/${prefix}`;
    const { store } = openDataset(dataset);
    let total = 0;
    const N = 6;
    const BATCHES = 4;
    // Headers about 65 KB apart: too far to read through for a file this small.
    for (let n = 0; n < N; n++) {
      const bytes = wideFragment(n, 1000, 256, 1000 / BATCHES);
      total += bytes.byteLength;
      await store.put(`data/q${n}.arrow`, bytes);
    }
    s3.server.resetLog();
    const out = await plan({ dataset, indexes: [{ column: 'k', type: 'bitmap' }] });
    expect(out.fragmentsAdded).toBe(N);
    const gets = dataGets(prefix);
    const bytes = gets.reduce((n, r) => n + r.bytesOut, 0);
    console.log(`plan over ${N} fragments of ${BATCHES} batches (${total} bytes): ${gets.length} GETs, ${bytes} bytes (${((100 * bytes) / total).toFixed(2)}%)`);
    for (let n = 0; n < N; n++) expect(gets.filter((r) => r.key === `${prefix}/data/q${n}.arrow`).length).toBeLessThanOrEqual(1 + BATCHES);
    expect(bytes / total).toBeLessThanOrEqual(0.02);
  });

  it('a whole build over fragments of 8 MiB or more: at most 1.2× the indexed column buffers plus footers and headers, in all', async () => {
    const prefix = 'economy-build';
    const dataset = `s3://footreg/${prefix}`;
    const { store } = openDataset(dataset);
    let total = 0;
    let ideal = 0;
    const files: Uint8Array[] = [];
    for (let n = 0; n < 2; n++) {
      // 84,000 rows of a 96-byte payload in 4 batches: a little over 8 MiB.
      const bytes = wideFragment(n, 84_000, 96, 21_000);
      expect(bytes.byteLength).toBeGreaterThanOrEqual(8 * 2 ** 20);
      files.push(bytes);
      total += bytes.byteLength;
      const need = idealBytes(bytes, 0);
      ideal += need.footer + need.headers + need.column;
      await store.put(`data/b${n}.arrow`, bytes);
    }
    s3.server.resetLog();
    await build({ dataset, indexes: [{ column: 'k', type: 'bitmap' }, { column: 'k', type: 'zonemap' }], concurrency: 1 });
    const gets = dataGets(prefix);
    const bytes = gets.reduce((n, r) => n + r.bytesOut, 0);
    console.log(`build over 2 fragments (${total} bytes; ideal read ${ideal} bytes): ${gets.length} GETs, ${bytes} bytes (${(bytes / ideal).toFixed(3)}× ideal, ${((100 * bytes) / total).toFixed(2)}% of the data)`);
    expect(bytes).toBeGreaterThanOrEqual(ideal);
    expect(bytes / ideal).toBeLessThanOrEqual(1.2);
    // And the index answers exactly.
    const r = await query(dataset, 'k = 42');
    expect(r.exact).toBe(true);
    expect(r.unindexedFragments).toEqual([]);
    for (const [n] of files.entries()) {
      const want = Array.from({ length: 84_000 }, (_, i) => i).filter((i) => (i * 7 + n) % 100 === 42);
      expect(expandRanges(r.fragments.find((f) => f.path === `data/b${n}.arrow`)!.ranges)).toEqual(want);
    }
  });
});
