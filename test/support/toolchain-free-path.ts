/**
 * A PATH with every program of this one except compilers, make and Python: what a laptop
 * without a C/C++ toolchain offers. Built as one directory of symlinks, removed with the
 * other temporary directories.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir } from './tmp.js';

/** Programs node-gyp (or any native build) would need. */
export const TOOLCHAIN_PROGRAM = /^((.*-)?(g\+\+|gcc|cc|c\+\+|cpp|clang|clang\+\+|ld|ld\.bfd|ld\.gold)(-[\d.]+)?|make|gmake|cmake|ninja|node-gyp|python[\d.]*(-config)?)$/;

export function toolchainFreePath(from = process.env.PATH ?? ''): string {
  const dir = tempDir('no-toolchain-');
  for (const source of from.split(path.delimiter)) {
    if (!source || !fs.existsSync(source)) continue;
    for (const name of fs.readdirSync(source)) {
      if (TOOLCHAIN_PROGRAM.test(name) || fs.existsSync(path.join(dir, name))) continue;
      const target = path.join(source, name);
      try {
        if (!fs.statSync(target).isFile()) continue;
        fs.accessSync(target, fs.constants.X_OK);
      } catch {
        continue;
      }
      fs.symlinkSync(target, path.join(dir, name));
    }
  }
  return dir;
}
