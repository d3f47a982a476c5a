/**
 * Damaged fragments the damage fuzzer (fuzz.test.ts) found slipping past the fragment reader,
 * each pinned down here: every one must be a FragmentReadError naming the file, promptly.
 * Before the fixes, the first two hung the process and the others were indexed as something
 * no Arrow implementation would read them as.
 */
import * as arrow from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FragmentReadError, IndexFileError } from '../../lib/errors.js';
import { IpcFileReader } from '../../lib/format/ipc.js';
import { decodeFragment } from '../../lib/fragments/reader.js';
import { LocalStore } from '../../lib/store/local.js';
import { fragmentBytes } from '../support/dataset.js';
import { tempDir } from '../support/tmp.js';
import { Watchdog } from './watchdog.js';

let watchdog: Watchdog;
beforeAll(() => {
  watchdog = new Watchdog();
});
afterAll(async () => {
  await watchdog.stop();
});

/** Decode under the watchdog: a hang kills the run (naming the case) instead of stalling it. */
function decode(name: string, bytes: Uint8Array, what: string) {
  watchdog.arm(20, what);
  try {
    return decodeFragment(name, name, bytes);
  } finally {
    watchdog.disarm();
  }
}

function expectRefused(name: string, bytes: Uint8Array, reason: RegExp): void {
  let err: unknown;
  try {
    decode(name, bytes, `${name}: expected ${reason}`);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FragmentReadError);
  expect((err as Error).message).toContain(name);
  expect((err as Error).message).toMatch(reason);
}

function fileOf(fields: arrow.Field[], columns: arrow.Data[], format: 'file' | 'stream'): Uint8Array {
  const schema = new arrow.Schema(fields);
  const length = columns[0]!.length;
  const batch = new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(fields), length, nullCount: 0, children: columns }));
  return arrow.tableToIPC(new arrow.Table(schema, [batch]), format);
}

function utf8Data(values: Uint8Array, offsets: number[], nullBitmap?: Uint8Array): arrow.Data {
  const nullCount = nullBitmap ? offsets.length - 1 - [...Array(offsets.length - 1).keys()].filter((i) => (nullBitmap[i >> 3]! >> (i & 7)) & 1).length : 0;
  return arrow.makeData({ type: new arrow.Utf8(), length: offsets.length - 1, nullCount, nullBitmap, data: values, valueOffsets: Int32Array.from(offsets) });
}

describe('damaged fragments the fuzzer found', () => {
  it('an Arrow file whose footer points a record batch at a dictionary batch is refused, not re-read forever', () => {
    // apache-arrow's file reader re-reads a record-batch block that holds anything else.
    const dict = arrow.makeVector(utf8Data(new TextEncoder().encode('xy'), [0, 1, 2]));
    const codes = arrow.makeData({ type: new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32()), length: 2, nullCount: 0, data: Int32Array.of(0, 1), dictionary: dict } as never) as arrow.Data;
    const good = fileOf([new arrow.Field('s', codes.type, true)], [codes], 'file');
    const reader = arrow.RecordBatchReader.from(good);
    reader.open();
    const footer = (reader as unknown as { _impl: { _footer: { getDictionaryBatch(i: number): { offset: number }; getRecordBatch(i: number): { offset: number } } } })._impl._footer;
    const dictAt = BigInt(footer.getDictionaryBatch(0).offset);
    const batchAt = BigInt(footer.getRecordBatch(0).offset);
    // Point the footer's record batch block at the dictionary batch.
    const bad = good.slice();
    const dv = new DataView(bad.buffer);
    const footerStart = bad.byteLength - 10 - dv.getInt32(bad.byteLength - 10, true);
    let patched = 0;
    for (let p = bad.byteLength - 10 - 8; p >= footerStart; p--) {
      if (dv.getBigInt64(p, true) === batchAt) {
        dv.setBigInt64(p, dictAt, true);
        patched++;
        break;
      }
    }
    expect(patched).toBe(1);
    expectRefused('loop.arrow', bad, /does not hold a record batch/);
  });

  it('string offsets out of order are refused (one sent the bitmap trainer into an endless loop)', () => {
    const bytes = new TextEncoder().encode('abcdef');
    expectRefused('offsets.arrows', fileOf([new arrow.Field('s', new arrow.Utf8(), true)], [utf8Data(bytes, [0, 4, 2, 6])], 'stream'), /value offsets out of order at row 1/);
    expectRefused('offsets.arrow', fileOf([new arrow.Field('s', new arrow.Utf8(), true)], [utf8Data(bytes, [0, 2, 4, 9])], 'file'), /out of bounds/);
  });

  it('invalid UTF-8 in a string column is refused; bytes under a null slot are not values and are ignored', () => {
    const field = [new arrow.Field('s', new arrow.Utf8(), true)];
    expectRefused('utf8.arrows', fileOf(field, [utf8Data(Uint8Array.of(0x61, 0xff, 0x62), [0, 1, 2, 3])], 'stream'), /invalid UTF-8 in row 1/);
    // A value that starts inside another's multi-byte character: the whole range is valid UTF-8, the values are not.
    expectRefused('split.arrows', fileOf(field, [utf8Data(Uint8Array.of(0xc3, 0xa9), [0, 1, 2])], 'stream'), /invalid UTF-8 in row 0/);
    const ok = decode('nulls.arrows', fileOf(field, [utf8Data(Uint8Array.of(0x61, 0xff, 0x62), [0, 1, 2, 3], Uint8Array.of(0b101))], 'stream'), 'nulls.arrows');
    expect(ok.rows).toBe(3);
  });

  it('dictionary codes outside the dictionary are refused', () => {
    const dict = arrow.makeVector(utf8Data(new TextEncoder().encode('xy'), [0, 1, 2]));
    const type = new arrow.Dictionary(new arrow.Utf8(), new arrow.Int32());
    const codes = arrow.makeData({ type, length: 3, nullCount: 0, data: Int32Array.of(0, 2, 1), dictionary: dict } as never) as arrow.Data;
    expectRefused('codes.arrows', fileOf([new arrow.Field('s', type, true)], [codes], 'stream'), /dictionary code 2 at row 1 is outside the dictionary of 2 entries/);
  });

  it('any int32 of a fragment set to a huge value is refused or read, promptly: damaged vector lengths never reach apache-arrow', () => {
    const columns = [
      { name: 's', type: 'utf8' as const },
      { name: 'd', type: 'dict_utf8' as const },
      { name: 'n', type: 'int64' as const },
    ];
    const rows = { s: ['a', null, 'bc', 'a'], d: ['x', 'y', null, 'x'], n: [1n, null, 3n, -4n] };
    for (const format of ['file', 'stream'] as const) {
      const good = fragmentBytes(columns, rows, { batchRows: 2, format });
      for (let p = 0; p + 4 <= good.byteLength; p++) {
        const bad = good.slice();
        new DataView(bad.buffer).setInt32(p, 0x7fffffff, true);
        try {
          decode(`sweep.${format}`, bad, `${format}: int32 at byte ${p} set to 0x7fffffff`);
        } catch (err) {
          expect(err, `byte ${p}`).toBeInstanceOf(FragmentReadError);
        }
      }
    }
  });

  it('the same sweep over an index file opened without a checksum (a version written before checksums): IndexFileError or a read, promptly', async () => {
    const root = tempDir('ssi-sweep-');
    const store = new LocalStore(root);
    const schema = new arrow.Schema([new arrow.Field('keys', new arrow.Utf8(), true), new arrow.Field('bitmaps', new arrow.Binary(), false)]);
    const good = arrow.tableToIPC(
      new arrow.Table(schema, [
        new arrow.RecordBatch(
          schema,
          arrow.makeData({
            type: new arrow.Struct(schema.fields),
            length: 2,
            nullCount: 0,
            children: [utf8Data(new TextEncoder().encode('ab'), [0, 1, 2]), arrow.makeData({ type: new arrow.Binary(), length: 2, nullCount: 0, data: Uint8Array.of(1, 2, 3), valueOffsets: Int32Array.of(0, 1, 3) })],
          }),
        ),
      ]),
      'file',
    );
    const saved = IpcFileReader.tailBytes;
    try {
      for (const tail of [64 * 1024, 16]) {
        IpcFileReader.tailBytes = tail;
        for (let p = 0; p + 4 <= good.byteLength; p++) {
          const bad = good.slice();
          new DataView(bad.buffer).setInt32(p, 0x7fffffff, true);
          await store.put('x.arrow', bad);
          watchdog.arm(20, `index file: int32 at byte ${p} set to 0x7fffffff (tail ${tail})`);
          try {
            const r = await IpcFileReader.open(store, 'x.arrow');
            for await (const _ of r.batches()) void _;
          } catch (err) {
            expect(err, `byte ${p}`).toBeInstanceOf(IndexFileError);
          } finally {
            watchdog.disarm();
          }
        }
      }
    } finally {
      IpcFileReader.tailBytes = saved;
    }
  });
});
