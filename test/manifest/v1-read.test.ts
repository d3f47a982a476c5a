/**
 * Format-1 heads are still read (their schema, zod, is loaded only for them): as format 2 with
 * their fragments unwritten, and a malformed one is refused naming the field.
 */
import { describe, expect, it } from 'vitest';
import { IndexFileError } from '../../lib/errors.js';
import { withContentChecksum } from '../../lib/format/json-checksum.js';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_V1, readManifest, versionKey } from '../../lib/manifest/manifest.js';
import { LocalStore } from '../../lib/store/local.js';
import { tempDir } from '../support/tmp.js';

const V1 = {
  format: MANIFEST_FORMAT_V1,
  version: 3,
  createdAt: '2026-11-01T00:00:00.000Z',
  nextFragmentId: 2,
  fragments: [
    { id: 1, path: 'data/b.arrow', size: 10, rows: 0, fingerprint: 'sha256:bb', failed: 'not Arrow' },
    { id: 0, path: 'data/a.arrow', size: 100, rows: 7, fingerprint: 'sha256:aa', etag: '"e"' },
  ],
  indexes: [],
};

async function write(doc: object): Promise<LocalStore> {
  const store = new LocalStore(tempDir('ssi-v1-'));
  await store.put(versionKey(3), new TextEncoder().encode(JSON.stringify(withContentChecksum(doc))));
  return store;
}

describe('format-1 heads', () => {
  it('read as format 2: fragments unwritten in id order, failed ones as ranges', async () => {
    const m = await readManifest(await write(V1), 3);
    expect(m.format).toBe(MANIFEST_FORMAT);
    expect(m.fragments).toEqual({ chunks: [], failed: [[1, 2]], removed: [], failures: [] });
    expect(m.unwritten).toEqual([
      { id: 0, path: 'data/a.arrow', size: 100, rows: 7, fingerprint: 'sha256:aa', etag: '"e"' },
      { id: 1, path: 'data/b.arrow', size: 10, rows: 0, fingerprint: 'sha256:bb', failed: 'not Arrow' },
    ]);
  });

  it('a malformed one is refused naming the field', async () => {
    const store = await write({ ...V1, fragments: [{ ...V1.fragments[1], rows: -1 }] });
    await expect(readManifest(store, 3)).rejects.toThrow(IndexFileError);
    await expect(readManifest(store, 3)).rejects.toThrow(/is malformed: fragments\.0\.rows/);
  });
});
