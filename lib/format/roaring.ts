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
import * as fs from 'node:fs';
import Module, { createRequire } from 'node:module';
import * as path from 'node:path';
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
  const requireHere = createRequire(import.meta.url);
  const seeded = seedBinaryLocator(requireHere);
  try {
    mod = requireHere('roaring') as { RoaringBitmap32: RoaringClass };
  } catch (err) {
    throw new Error(
      'the roaring package is not installed here: decoding bitmaps (queries) needs it (npm install roaring); the build steps and the Lambda bundles do not',
      { cause: err },
    );
  } finally {
    if (seeded) delete requireHere.cache[seeded];
  }
  return (loaded = mod.RoaringBitmap32);
}

/**
 * roaring's entry point asks `@mapbox/node-pre-gyp`'s `pre-binding.find()` where its compiled
 * binary is, and loading that locator (node-pre-gyp, npmlog, semver, …) takes 55–90 ms where
 * the binary itself loads in about 2 ms: most of what a query process spends on roaring. So
 * while roaring's entry point loads, the locator is answered from here with the binary it
 * would have found (the ABI-named prebuilt directory, else the `build/Release` one roaring
 * falls back to itself), and only when one of them exists; the caller then puts the real
 * locator back for anyone else. Anything unexpected (roaring not installed, another layout, a
 * locator that moved) leaves roaring's own lookup untouched. Returns the seeded cache key.
 */
function seedBinaryLocator(requireHere: NodeJS.Require): string | undefined {
  try {
    if (process.platform !== 'linux') return undefined;
    const pkgDir = path.dirname(requireHere.resolve('roaring/package.json'));
    const candidates = [
      path.join(pkgDir, 'native', `roaring-node-v${process.versions.modules}-${process.platform}-${process.arch}-glibc`, 'roaring.node'),
      path.join(pkgDir, 'build', 'Release', 'roaring.node'),
    ];
    const binary = candidates.find((c) => fs.existsSync(c));
    if (!binary) return undefined;
    const locator = createRequire(path.join(pkgDir, 'index.js')).resolve('@mapbox/node-pre-gyp/lib/pre-binding');
    if (requireHere.cache[locator]) return undefined;
    const stub = new Module(locator);
    stub.filename = locator;
    stub.loaded = true;
    stub.exports = { find: () => binary };
    requireHere.cache[locator] = stub;
    return locator;
  } catch {
    return undefined;
  }
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
