/**
 * Where each checksum lives and what verifies it:
 * - the manifest records every index file's CRC32C (S3's encoding), computed as it was written;
 * - bitmap_lookup.arrow records each bitmap batch's CRC32C and the footer's, so a point query
 *   verifies exactly what it reads;
 * - zone maps are verified whole; merges verify every input as it streams through;
 * - build-part records each part's CRC32C in `<part>.crc32c`, which the merge verifies;
 * - the manifest and the build plan carry a checksum of their own content.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { afterEach, describe, expect, it } from 'vitest';
import { IndexFileError } from '../../lib/errors.js';
import { crc32c, crc32cCombine, decodeCrc32c, encodeCrc32c } from '../../lib/format/crc32c.js';
import { canonicalJson, withContentChecksum } from '../../lib/format/json-checksum.js';
import { IpcFileReader } from '../../lib/format/ipc.js';
import { listVersions, loadLatestManifest, versionKey } from '../../lib/manifest/manifest.js';
import { query } from '../../lib/query/evaluate.js';
import { LocalStore } from '../../lib/store/local.js';
import { buildPart } from '../../lib/workflow/build-part.js';
import { merge } from '../../lib/workflow/merge.js';
import { plan } from '../../lib/workflow/plan.js';
import { partDir, partRecordKey, planKey } from '../../lib/workflow/types.js';
import { compactDataset } from '../../lib/workflow/compact.js';
import { indexFiles } from '../support/manifest.js';
import { writeFragment, type ColumnSpec } from '../support/dataset.js';
import { expandRanges, tempDir } from '../support/tmp.js';
import { runBuild } from './steps.js';

const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int64' },
  { name: 's', type: 'utf8' },
];
const TUNING = { batchKeys: 2, batchBytes: 1 << 20 };

/** Fragment f: k = (i·7 + f) mod 11 (with nulls), s cycles through a few strings. */
async function dataset(fragments = 3, rows = 60): Promise<string> {
  const root = tempDir('ssi-crc-');
  for (let f = 0; f < fragments; f++) {
    const k = Array.from({ length: rows }, (_, i) => (i % 13 === 4 ? null : BigInt((i * 7 + f) % 11)));
    const s = Array.from({ length: rows }, (_, i) => `v${(i + f) % 4}`);
    await writeFragment(path.join(root, 'data', `f${f}.arrow`), COLUMNS, { k, s }, { batchRows: 16, format: 'file' });
  }
  return root;
}

async function built(fragments?: number): Promise<{ root: string; store: LocalStore }> {
  const root = await dataset(fragments);
  await runBuild(root, {
    indexes: [
      { column: 'k', type: 'bitmap' },
      { column: 'k', type: 'zonemap', rowsPerZone: 8 },
    ],
    groupRows: 70,
    tuning: TUNING,
  });
  return { root, store: new LocalStore(root) };
}

async function fileOf(store: LocalStore, index: string, name: string): Promise<string> {
  const m = await loadLatestManifest(store);
  return store.describe(indexFiles(m.indexes.find((e) => e.name === index)!).find((f) => f.name === name)!.key);
}

/** Rows of fragment 0 where k = v, straight from the generator's formula. */
function expectedRows(v: number, rows = 60, f = 0): number[] {
  return Array.from({ length: rows }, (_, i) => i).filter((i) => i % 13 !== 4 && (i * 7 + f) % 11 === v);
}

function flip(file: string, at: number): void {
  const b = fs.readFileSync(file);
  b[at]! ^= 0x10;
  fs.writeFileSync(file, b);
}

const savedTail = IpcFileReader.tailBytes;
afterEach(() => {
  IpcFileReader.tailBytes = savedTail;
});

describe('CRC32C', () => {
  it('matches the RFC 3720 test vectors and S3 encoding (base64 of the big-endian bytes), in one piece or combined', () => {
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(ascending)).toBe(0x46dd794e);
    expect(crc32c(ascending.slice().reverse())).toBe(0x113fdb5c);
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(encodeCrc32c(0xe3069283)).toBe('4waSgw==');
    expect(decodeCrc32c('4waSgw==')).toBe(0xe3069283);
    for (let cut = 0; cut <= 32; cut++) {
      expect(crc32c(ascending.subarray(cut), crc32c(ascending.subarray(0, cut)))).toBe(0x46dd794e);
      expect(crc32cCombine(crc32c(ascending.subarray(0, cut)), crc32c(ascending.subarray(cut)), 32 - cut)).toBe(0x46dd794e);
    }
  });

  it('canonical JSON sorts keys and drops whitespace, so re-serialised documents keep their checksum', () => {
    expect(canonicalJson(JSON.parse('{ "b": [1, {"y": 2, "x": "é"}], "a": null }'))).toBe('{"a":null,"b":[1,{"x":"é","y":2}]}');
  });
});

describe('index files', () => {
  it('the manifest records each file CRC32C as written; the lookup table records each bitmap batch and the footer', async () => {
    const { store } = await built();
    const m = await loadLatestManifest(store);
    for (const f of m.indexes.flatMap(indexFiles)) {
      expect(f.crc32c, f.name).toBe(encodeCrc32c(crc32c(await store.read(f.key))));
    }
    const bitmap = fs.readFileSync(await fileOf(store, 'k_bitmap', 'bitmap.arrow'));
    const n = bitmap.byteLength;
    const footerLength = bitmap.readInt32LE(n - 10);
    const footer = Footer.decode(bitmap.subarray(n - 10 - footerLength, n - 10));
    const blocks = [...footer.recordBatches()];
    expect(blocks.length).toBeGreaterThan(3);
    const lookup = arrow.tableFromIPC(fs.readFileSync(await fileOf(store, 'k_bitmap', 'bitmap_lookup.arrow')));
    const recorded = [...(lookup.getChild('batch_crc32c')!.toArray() as Uint32Array)];
    expect(recorded).toEqual(blocks.map((b) => crc32c(bitmap.subarray(Number(b.offset), Number(b.offset) + b.metaDataLength + Number(b.bodyLength)))));
    expect(lookup.schema.metadata.get('bitmap_footer_crc32c')).toBe(encodeCrc32c(crc32c(bitmap.subarray(n - 10 - footerLength))));
  });

  it('a point query verifies the one bitmap batch it reads: a damaged batch fails by name with both checksums, other batches still answer', async () => {
    const { root, store } = await built();
    const file = await fileOf(store, 'k_bitmap', 'bitmap.arrow');
    const bytes = fs.readFileSync(file);
    const blocks = [...Footer.decode(bytes.subarray(bytes.byteLength - 10 - bytes.readInt32LE(bytes.byteLength - 10), bytes.byteLength - 10)).recordBatches()];
    // Keys are null, 0..10 in batches of two: batch 3 holds 5 and 6. Damage its last byte.
    const b = blocks[3]!;
    flip(file, Number(b.offset) + b.metaDataLength + Number(b.bodyLength) - 1);
    IpcFileReader.tailBytes = 64; // as on a large index: footer and batches come in separate ranged reads
    const err = await query(root, 'k = 5').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IndexFileError);
    expect((err as Error).message).toMatch(new RegExp(`checksum mismatch in record batch 3 of ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected CRC32C [A-Za-z0-9+/]{6}==, got [A-Za-z0-9+/]{6}==`));
    const other = await query(root, 'k = 7', { use: ['bitmap'] });
    expect(other.exact).toBe(true);
    expect(expandRanges(other.fragments.find((f) => f.id === 0)!.ranges)).toEqual(expectedRows(7));
    // Small enough to arrive whole with the footer read: then the whole file is checked.
    IpcFileReader.tailBytes = savedTail;
    await expect(query(root, 'k = 7', { use: ['bitmap'] })).rejects.toThrow(/checksum mismatch in .*bitmap\.arrow: expected/);
  });

  it('a damaged bitmap footer or lookup table fails queries by name', async () => {
    const { root, store } = await built();
    IpcFileReader.tailBytes = 64;
    const bitmap = await fileOf(store, 'k_bitmap', 'bitmap.arrow');
    const good = fs.readFileSync(bitmap);
    // A byte inside the footer flatbuffer (before its length and magic).
    flip(bitmap, good.byteLength - 20);
    await expect(query(root, 'k = 3')).rejects.toThrow(/the footer of .*bitmap\.arrow|bitmap\.arrow/);
    fs.writeFileSync(bitmap, good);
    const lookup = await fileOf(store, 'k_bitmap', 'bitmap_lookup.arrow');
    flip(lookup, 100);
    await expect(query(root, 'k = 3')).rejects.toThrow(/checksum mismatch in .*bitmap_lookup\.arrow/);
  });

  it('a zone map is verified whole, whether it arrives with the footer read or in a ranged read after it', async () => {
    for (const tail of [savedTail, 64]) {
      const { root, store } = await built();
      IpcFileReader.tailBytes = tail;
      const zonemap = await fileOf(store, 'k_zonemap', 'zonemap.arrow');
      flip(zonemap, 40);
      await expect(query(root, 'k > 3', { use: ['zonemap'] })).rejects.toThrow(/checksum mismatch in .*zonemap\.arrow: expected/);
    }
  });

  it('an append never reads a segment already written; a compaction merges one only after verifying it: damage fails it by name, and nothing is committed', async () => {
    const { root, store } = await built(2);
    const damaged = await fileOf(store, 'k_zonemap', 'zonemap.arrow');
    flip(damaged, 60);
    await writeFragment(path.join(root, 'data', 'f9.arrow'), COLUMNS, { k: [1n, 2n], s: ['a', 'b'] }, { batchRows: 2, format: 'file' });
    // The append builds and commits its own segment: it reads nothing of the damaged one.
    await runBuild(root, { tuning: TUNING });
    const versions = await listVersions(store);
    expect((await loadLatestManifest(store)).indexes.find((e) => e.name === 'k_zonemap')!.segments).toHaveLength(2);
    // Queries read it, and say so; so does the compaction that merges it, which commits nothing.
    await expect(query(root, 'k > 3', { use: ['zonemap'] })).rejects.toThrow(/checksum mismatch in .*zonemap\.arrow/);
    await expect(compactDataset(root, { full: true, indexes: ['k_zonemap'] })).rejects.toThrow(new RegExp(`checksum mismatch in ${damaged.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(await listVersions(store)).toEqual(versions);
  });
});

describe('parts', () => {
  async function planned() {
    const root = await dataset();
    const p = await plan({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }, { column: 's', type: 'zonemap', rowsPerZone: 4 }], groupRows: 70 });
    for (const groupId of p.groupIds) await buildPart({ dataset: root, buildId: p.buildId, groupId }, TUNING);
    const part = path.join(root, ...partDir(p.buildId, 'k_bitmap', 1).split('/'), 'bitmap.arrow');
    const record = path.join(root, ...partRecordKey(p.buildId, 'k_bitmap', 1).split('/'));
    return { root, p, part, record };
  }

  it('build-part records each part file with its size and CRC32C; a retried build-part finds its record and leaves the part alone', async () => {
    const { root, p, part, record } = await planned();
    const rec = JSON.parse(fs.readFileSync(record, 'utf8'));
    const bytes = fs.readFileSync(part);
    expect(rec.files.find((f: { name: string }) => f.name === 'bitmap.arrow')).toEqual({ name: 'bitmap.arrow', key: expect.stringMatching(/bitmap\.arrow$/), size: bytes.byteLength, crc32c: encodeCrc32c(crc32c(bytes)) });
    const before = fs.statSync(part).mtimeMs;
    await buildPart({ dataset: root, buildId: p.buildId, groupId: 1 }, TUNING);
    expect(fs.statSync(part).mtimeMs).toBe(before);
    const out = await merge({ dataset: root, buildId: p.buildId }, TUNING);
    expect(out.segments.map((m) => m.files.every((f) => /^[A-Za-z0-9+/]{6}==$/.test(f.crc32c)))).toEqual([true, true]);
  });

  it('the merge verifies every part: damaged, truncated or unrecorded parts fail it by name', async () => {
    for (const [damage, message] of [
      [(part: string) => flip(part, 30), /checksum mismatch in .*g1\/bitmap\.arrow: expected/],
      [(part: string) => fs.truncateSync(part, 100), /short read of .*g1\/bitmap\.arrow|checksum mismatch in .*g1\/bitmap\.arrow/],
      [(_: string, record: string) => fs.rmSync(record), /index k_bitmap: parts missing for group\(s\) 1 of build/],
      [(_: string, record: string) => fs.writeFileSync(record, '{"size": 1'), /part record .*k_bitmap\/1\.json is not valid JSON/],
    ] as const) {
      for (const tail of [savedTail, 64]) {
        IpcFileReader.tailBytes = tail;
        const { root, p, part, record } = await planned();
        damage(part, record);
        await expect(merge({ dataset: root, buildId: p.buildId }, TUNING)).rejects.toThrow(message);
      }
    }
  });

  it('plan.json carries a content checksum: a damaged plan fails the merge by name', async () => {
    const { root, p } = await planned();
    const file = path.join(root, ...planKey(p.buildId).split('/'));
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, text.replace('"rows":60', '"rows":61'));
    await expect(merge({ dataset: root, buildId: p.buildId })).rejects.toThrow(/checksum mismatch in build plan .*plan\.json/);
  });
});

describe('manifests', () => {
  it('a flipped digit in a manifest is an error naming it, with both checksums', async () => {
    const { root, store } = await built();
    const file = store.describe(versionKey((await listVersions(store)).at(-1)!));
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('"rows": 180');
    fs.writeFileSync(file, text.replace('"rows": 180', '"rows": 170'));
    await expect(query(root, 'k = 1')).rejects.toThrow(new RegExp(`checksum mismatch in manifest ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: expected CRC32C [A-Za-z0-9+/]{6}==, got`));
  });

  it('a manifest without its own checksum, or without file checksums, is refused by name (stripped checksums cannot be told from tampering)', async () => {
    const { root, store } = await built();
    const file = store.describe(versionKey((await listVersions(store)).at(-1)!));
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    delete json.crc32c;
    fs.writeFileSync(file, JSON.stringify(json, null, 1));
    await expect(query(root, 'k = 1')).rejects.toThrow(/manifest .* has no content checksum \(crc32c\)/);
    await expect(runBuild(root, { tuning: TUNING })).rejects.toThrow(IndexFileError);
    for (const e of json.indexes) for (const seg of e.segments) for (const f of seg.files) delete f.crc32c;
    fs.writeFileSync(file, JSON.stringify(json, null, 1));
    await expect(query(root, 'k = 1')).rejects.toThrow(/has no content checksum/);
    // With its own checksum recomputed, the missing file checksums are still refused.
    fs.writeFileSync(file, JSON.stringify(withContentChecksum(json), null, 1));
    await expect(query(root, 'k = 1')).rejects.toThrow(/manifest .* is malformed: indexes\.0\.segments\.0\.files\.0\.crc32c/);
  });
});
