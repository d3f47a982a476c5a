/**
 * lib/format/roaring.ts loads roaring (on first use) without node-pre-gyp's locator: it must
 * load the very binary the locator names, work, and leave the real locator for anyone else.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRoaring } from '../../lib/format/roaring.js';

const require = createRequire(import.meta.url);

describe('roaring without its binary locator', () => {
  it('loads the binary node-pre-gyp would find, and bitmaps work', () => {
    const RoaringBitmap32 = loadRoaring();
    const pkg = require.resolve('roaring/package.json');
    const locatorPath = createRequire(path.join(path.dirname(pkg), 'index.js')).resolve('@mapbox/node-pre-gyp/lib/pre-binding');
    // Loading roaring left node-pre-gyp's locator unloaded (each test file runs in a fresh process).
    expect(require.cache[locatorPath]).toBeUndefined();
    // What roaring's own entry point would have loaded (its fallback, build/Release, is the same build).
    const found = (require(locatorPath) as { find(p: string): string }).find(pkg);
    const loadedBinaries = Object.keys(require.cache).filter((k) => k.endsWith('.node') && k.includes(`${path.sep}roaring${path.sep}`));
    expect(loadedBinaries).toHaveLength(1);
    expect([found, path.join(path.dirname(pkg), 'build', 'Release', 'roaring.node')]).toContain(loadedBinaries[0]);
    const bm = new RoaringBitmap32([1, 5, 70_000]);
    expect(Array.from(RoaringBitmap32.deserialize(bm.serialize('portable'), 'portable'))).toEqual([1, 5, 70_000]);
  });

  it('puts the real locator back: a later require gets node-pre-gyp, not the stand-in', () => {
    loadRoaring();
    const pkg = require.resolve('roaring/package.json');
    const locatorPath = createRequire(path.join(path.dirname(pkg), 'index.js')).resolve('@mapbox/node-pre-gyp/lib/pre-binding');
    const locator = require(locatorPath) as { find: unknown; usage?: string; validate?: unknown };
    expect(typeof locator.validate).toBe('function');
    expect(locator.usage).toMatch(/node-pre-gyp/);
  });
});
