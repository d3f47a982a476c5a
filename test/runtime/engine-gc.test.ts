/**
 * The local engine asks lib/runtime.ts for the GC setting with the build's work (rows read ×
 * indexes), and hands it back when the build ends, failed or not.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

const calls: { workRows: number; released: boolean }[] = [];
vi.mock('../../lib/runtime.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../lib/runtime.js')>();
  return {
    ...real,
    throughputGcFor: (workRows: number) => {
      const call = { workRows, released: false };
      calls.push(call);
      return () => {
        call.released = true;
      };
    },
  };
});

const { runLocalWorkflow } = await import('../../lib/workflow/local-engine.js');
const { writeSampleDataset } = await import('../../scripts/sample-data.js');
const { tempDir } = await import('../support/tmp.js');

afterEach(() => {
  calls.length = 0;
});

describe('local engine and the GC setting', () => {
  it('passes rows × indexes and releases after the commit', async () => {
    const root = tempDir('ssi-gc-');
    writeSampleDataset(root, { fragments: 3, rowsPerFragment: 1000 });
    const r = await runLocalWorkflow({ dataset: root, indexes: [{ column: 'category', type: 'bitmap' }, { column: 'price', type: 'zonemap' }] }, { concurrency: 1 });
    expect(r.kind).toBe('committed');
    expect(calls).toEqual([{ workRows: 2 * 3000, released: true }]);
  });

  it('releases when a part fails', async () => {
    const root = tempDir('ssi-gc-fail-');
    writeSampleDataset(root, { fragments: 2, rowsPerFragment: 1000 });
    await expect(
      runLocalWorkflow({ dataset: root, indexes: [{ column: 'category', type: 'bitmap' }] }, { concurrency: 1, overrideStep: { BuildPart: async () => { throw new Error('part failed on purpose'); } } }),
    ).rejects.toThrow('part failed on purpose');
    expect(calls).toEqual([{ workRows: 2000, released: true }]);
  });
});
