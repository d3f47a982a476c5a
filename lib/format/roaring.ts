/**
 * The one module that loads `roaring` (CRoaring's native addon), and only on first use.
 *
 * Decoding and combining bitmaps is a query-side job. The build steps never do it: build-part
 * writes portable Roaring bytes itself (roaring-portable.ts), and merge and vacuum move
 * serialized entries around without decoding them (rowset.ts). So the Lambda bundles ship
 * without roaring, whose addon uses the V8 C++ API and would have to be compiled for Lambda's
 * Node major on the deploy machine; `createRequire` keeps esbuild from following the import,
 * and `test/stacks/bundle.test.ts` runs the workflow bundles with no roaring installed.
 */
import { createRequire } from 'node:module';
// roaring is an optional dependency: where it could not be installed, the build (`npm ci`'s
// `prepare`) must still compile, with these types as `any`. Where it is installed, as in CI,
// they are roaring's own.
// @ts-ignore -- see above; @ts-expect-error would fail wherever roaring is installed
import type { RoaringBitmap32 as RoaringBitmap32Class } from 'roaring';

type RoaringClass = typeof RoaringBitmap32Class;
export type Bitmap = RoaringBitmap32Class;

let loaded: RoaringClass | undefined;

/** The real class, loaded on the first call. */
export function loadRoaring(): RoaringClass {
  if (loaded) return loaded;
  let mod: { RoaringBitmap32: RoaringClass };
  try {
    mod = createRequire(import.meta.url)('roaring') as { RoaringBitmap32: RoaringClass };
  } catch (err) {
    throw new Error(
      'the roaring package is not installed here: decoding bitmaps (queries) needs it (npm install roaring); the build steps and the Lambda bundles do not',
      { cause: err },
    );
  }
  return (loaded = mod.RoaringBitmap32);
}

/** Whether roaring has been loaded in this process (for tests that check a path never needs it). */
export function roaringLoaded(): boolean {
  return loaded !== undefined;
}

const bound = new Map<PropertyKey, unknown>();

/**
 * Stands in for roaring's `RoaringBitmap32` class: `new`, static methods (`fromRange`,
 * `deserialize`, …) and `instanceof` reach the real class, which is loaded the first time any
 * of them is used. Importing this module loads nothing.
 *
 * @example
 * const bm = RoaringBitmap32.fromRange(0, 10); // loads roaring here
 * bm.size // 10
 */
export const RoaringBitmap32: RoaringClass = new Proxy(function RoaringBitmap32() {} as unknown as RoaringClass, {
  construct: (_target, args) => Reflect.construct(loadRoaring(), args) as object,
  get: (_target, key) => {
    const real = loadRoaring();
    const value = Reflect.get(real, key) as unknown;
    if (typeof value !== 'function') return value;
    // Static methods run with the real class as `this`; bind once per name, not per call.
    let fn = bound.get(key);
    if (!fn) bound.set(key, (fn = (value as (...a: unknown[]) => unknown).bind(real)));
    return fn;
  },
});
