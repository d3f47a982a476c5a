/**
 * The `roaring` addon, loaded without paying for its binary locator.
 *
 * roaring's entry point asks `@mapbox/node-pre-gyp`'s `pre-binding.find()` where its compiled
 * binary is, and loading that locator (node-pre-gyp, npmlog, semver, …) takes 55–90 ms, where
 * the binary itself loads in about 2 ms: most of what a query process spends on roaring, and
 * a cost every build worker and Lambda cold start paid too. So while roaring's entry point
 * loads, the locator is answered from here with the binary it would have found (the ABI-named
 * prebuilt directory, else the `build/Release` one roaring falls back to itself), and only
 * when one of them exists; then the real locator is put back for anyone else. Anything
 * unexpected (another layout, a locator that moved) leaves the normal path untouched.
 */
import * as fs from 'node:fs';
import Module, { createRequire } from 'node:module';
import * as path from 'node:path';

const requireHere = createRequire(import.meta.url);

function load(): typeof import('roaring') {
  let seeded: string | undefined;
  try {
    const pkgDir = path.dirname(requireHere.resolve('roaring/package.json'));
    const candidates = [
      path.join(pkgDir, 'native', `roaring-node-v${process.versions.modules}-${process.platform}-${process.arch}-glibc`, 'roaring.node'),
      path.join(pkgDir, 'build', 'Release', 'roaring.node'),
    ];
    const binary = process.platform === 'linux' ? candidates.find((c) => fs.existsSync(c)) : undefined;
    const locator = binary ? createRequire(path.join(pkgDir, 'index.js')).resolve('@mapbox/node-pre-gyp/lib/pre-binding') : undefined;
    if (binary && locator && !requireHere.cache[locator]) {
      const stub = new Module(locator);
      stub.filename = locator;
      stub.loaded = true;
      stub.exports = { find: () => binary };
      requireHere.cache[locator] = stub;
      seeded = locator;
    }
  } catch {
    // Fall through to roaring's own lookup.
  }
  try {
    return requireHere('roaring') as typeof import('roaring');
  } finally {
    if (seeded) delete requireHere.cache[seeded];
  }
}

const roaring = load();
export default roaring;
