/**
 * What a Lambda bundle must hold, checked right after CDK has bundled it, so that a bundle
 * that would fail on Lambda fails the synth instead, with a message naming the function.
 *
 * - The entry file, and for each package installed beside it the files it loads at run time
 *   (parquet-wasm's `.wasm`, the linux-x64 binary of `@node-rs/crc32`). npm skips an optional
 *   platform package it thinks does not fit, silently: an npm without `--os`/`--cpu`/`--libc`
 *   support would leave only the JavaScript fallback.
 * - Every native addon (`.node`) comes from a prebuilt linux-x64 package (npm's platform
 *   selection, no install script, nothing compiled here), is x86-64 and needs at most the
 *   glibc of Lambda's Amazon Linux 2023.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EM_X86_64, maxGlibc, readElf } from './elf.js';

/** glibc of Amazon Linux 2023, which Lambda's nodejs22.x runs on. */
export const LAMBDA_GLIBC: [number, number] = [2, 34];

/** Files (relative to the bundle) each installable package must have put in place. */
export const REQUIRED_FILES: Readonly<Record<string, readonly string[]>> = {
  'parquet-wasm': ['node_modules/parquet-wasm/node/parquet_wasm.js', 'node_modules/parquet-wasm/node/parquet_wasm_bg.wasm'],
  '@node-rs/crc32': ['node_modules/@node-rs/crc32/index.js', 'node_modules/@node-rs/crc32-linux-x64-gnu/crc32.linux-x64-gnu.node'],
};

export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

/** One native addon found in a bundle, and where it came from. */
export interface NativeAddon {
  /** Relative to the bundle. */
  file: string;
  /** The package that holds it (`@node-rs/crc32-linux-x64-gnu`). */
  packageName: string;
  /** Highest GLIBC_x.y it needs, if any. */
  glibc?: [number, number];
}

/**
 * Check a staged bundle; returns the native addons it holds.
 *
 * @throws BundleError naming the function and what is wrong.
 * @example
 * checkBundle('BuildPart', 'cdk.out/asset.1234…', ['parquet-wasm', '@node-rs/crc32']);
 */
export function checkBundle(functionId: string, dir: string, nodeModules: readonly string[]): NativeAddon[] {
  const fail = (why: string) => new BundleError(`Lambda bundle of ${functionId} (${dir}): ${why}`);
  if (!fs.existsSync(path.join(dir, 'index.mjs'))) throw fail('index.mjs is missing: esbuild produced no bundle');
  for (const name of nodeModules) {
    const required = REQUIRED_FILES[name];
    if (!required) throw fail(`no list of required files for the installed package ${name} (add it to REQUIRED_FILES in stacks/bundle-check.ts)`);
    for (const file of required) {
      if (!fs.existsSync(path.join(dir, file))) {
        throw fail(
          `${file} is missing after npm installed ${name}. npm 10.3 or newer is needed: it installs the linux-x64 packages chosen with --os=linux --cpu=x64 --libc=glibc whatever the deploy machine is`,
        );
      }
    }
  }
  const addons: NativeAddon[] = [];
  for (const file of walk(dir)) {
    if (!file.endsWith('.node')) continue;
    const rel = path.relative(dir, file).split(path.sep).join('/');
    const pkgDir = packageDirOf(dir, file);
    if (!pkgDir) throw fail(`native addon ${rel} is not inside an installed package`);
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
      name?: string;
      os?: string[];
      cpu?: string[];
      scripts?: Record<string, string>;
      gypfile?: boolean;
    };
    const name = pkg.name ?? path.basename(pkgDir);
    if (!pkg.os?.includes('linux') || !pkg.cpu?.includes('x64')) {
      throw fail(`native addon ${rel} comes from ${name}, which is not a prebuilt linux-x64 package (its package.json must say os: linux, cpu: x64)`);
    }
    if (pkg.gypfile || fs.existsSync(path.join(pkgDir, 'binding.gyp')) || ['install', 'preinstall', 'postinstall'].some((s) => pkg.scripts?.[s])) {
      throw fail(`native addon ${rel} comes from ${name}, which builds at install time; only prebuilt binaries may ship`);
    }
    const elf = readElf(fs.readFileSync(file));
    if (elf.machine !== EM_X86_64) throw fail(`native addon ${rel} is not x86-64 (ELF machine ${elf.machine})`);
    const glibc = maxGlibc(elf.versionNeeds);
    if (glibc && (glibc[0] > LAMBDA_GLIBC[0] || (glibc[0] === LAMBDA_GLIBC[0] && glibc[1] > LAMBDA_GLIBC[1]))) {
      throw fail(`native addon ${rel} needs GLIBC_${glibc.join('.')}, newer than Lambda's ${LAMBDA_GLIBC.join('.')}`);
    }
    addons.push({ file: rel, packageName: name, ...(glibc && { glibc }) });
  }
  return addons;
}

/** The nearest directory above `file` (inside `root`) that holds a package.json. */
function packageDirOf(root: string, file: string): string | undefined {
  for (let dir = path.dirname(file); dir.startsWith(root) && dir !== root; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return undefined;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}
