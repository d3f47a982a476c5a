/**
 * The synth-time bundle check (stacks/bundle-check.ts) and the ELF reader it relies on: a
 * bundle missing a file its packages load at run time, holding an addon from a package that is
 * not a prebuilt linux-x64 one, built at install, for another CPU, or needing a glibc newer
 * than Lambda's, fails with an error naming the function and the file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BundleError, checkBundle, REQUIRED_FILES } from '../../stacks/bundle-check.js';
import { ElfError, EM_X86_64, maxGlibc, readElf } from '../../stacks/elf.js';
import { NATIVE_MODULES, PROJECT_ROOT } from '../../stacks/lambda-function.js';
import { FUNCTION_NODE_MODULES } from '../../stacks/scalar-index-stack.js';
import { tempDir } from '../support/tmp.js';

const CRC_PKG = path.join(PROJECT_ROOT, 'node_modules', '@node-rs', 'crc32-linux-x64-gnu');
const CRC_NODE = path.join(CRC_PKG, 'crc32.linux-x64-gnu.node');

/** A bundle directory as CDK stages it: index.mjs, and node_modules copied from this project's. */
function fakeBundle(packages: readonly string[]): string {
  const dir = tempDir('ssi-bundle-');
  fs.writeFileSync(path.join(dir, 'index.mjs'), 'export const handler = async () => ({});\n');
  for (const name of packages) {
    for (const required of REQUIRED_FILES[name] ?? []) {
      const pkgRel = required.split('/').slice(0, required.startsWith('node_modules/@') ? 3 : 2).join('/');
      fs.cpSync(path.join(PROJECT_ROOT, pkgRel), path.join(dir, pkgRel), { recursive: true });
    }
  }
  return dir;
}

describe('checkBundle', () => {
  it('accepts bundles holding what each function installs, and reports the prebuilt CRC32C addon', () => {
    for (const [fn, modules] of Object.entries(FUNCTION_NODE_MODULES)) {
      const addons = checkBundle(fn, fakeBundle(modules), modules);
      expect(addons.map((a) => [a.file, a.packageName]), fn).toEqual(
        (modules as readonly string[]).includes(NATIVE_MODULES.crc32) ? [['node_modules/@node-rs/crc32-linux-x64-gnu/crc32.linux-x64-gnu.node', '@node-rs/crc32-linux-x64-gnu']] : [],
      );
    }
  });

  it('fails when npm left out the linux-x64 binary (an npm without --os/--cpu/--libc, or another platform chosen)', () => {
    const dir = fakeBundle([NATIVE_MODULES.crc32]);
    fs.rmSync(path.join(dir, 'node_modules', '@node-rs', 'crc32-linux-x64-gnu'), { recursive: true });
    expect(() => checkBundle('BuildPart', dir, [NATIVE_MODULES.crc32])).toThrow(BundleError);
    expect(() => checkBundle('BuildPart', dir, [NATIVE_MODULES.crc32])).toThrow(/Lambda bundle of BuildPart .*crc32\.linux-x64-gnu\.node is missing .*npm 10\.3 or newer/);
  });

  it("fails when parquet-wasm's .wasm is missing, or the entry file", () => {
    const dir = fakeBundle([NATIVE_MODULES.parquetWasm]);
    fs.rmSync(path.join(dir, 'node_modules', 'parquet-wasm', 'node', 'parquet_wasm_bg.wasm'));
    expect(() => checkBundle('Plan', dir, [NATIVE_MODULES.parquetWasm])).toThrow(/parquet_wasm_bg\.wasm is missing/);
    const empty = tempDir('ssi-bundle-');
    expect(() => checkBundle('Plan', empty, [])).toThrow(/index\.mjs is missing/);
  });

  it('fails on an addon from a package that is not a prebuilt linux-x64 one, or that builds at install', () => {
    const local = fakeBundle([]);
    fs.mkdirSync(path.join(local, 'node_modules', 'native-thing', 'build', 'Release'), { recursive: true });
    fs.writeFileSync(path.join(local, 'node_modules', 'native-thing', 'package.json'), JSON.stringify({ name: 'native-thing', gypfile: true }));
    fs.copyFileSync(CRC_NODE, path.join(local, 'node_modules', 'native-thing', 'build', 'Release', 'thing.node'));
    expect(() => checkBundle('Plan', local, [])).toThrow(/native-thing, which is not a prebuilt linux-x64 package/);

    const scripted = fakeBundle([]);
    fs.cpSync(CRC_PKG, path.join(scripted, 'node_modules', 'x-linux-x64'), { recursive: true });
    const pkg = JSON.parse(fs.readFileSync(path.join(CRC_PKG, 'package.json'), 'utf8'));
    fs.writeFileSync(path.join(scripted, 'node_modules', 'x-linux-x64', 'package.json'), JSON.stringify({ ...pkg, name: 'x-linux-x64', scripts: { install: 'node-gyp rebuild' } }));
    expect(() => checkBundle('Plan', scripted, [])).toThrow(/x-linux-x64, which builds at install time/);
  });

  it('fails on an addon that needs a newer glibc than Lambda has', () => {
    const dir = fakeBundle([NATIVE_MODULES.crc32]);
    const file = path.join(dir, 'node_modules', '@node-rs', 'crc32-linux-x64-gnu', 'crc32.linux-x64-gnu.node');
    const bytes = fs.readFileSync(file);
    // Same length, so every offset stays valid: the addon now asks for GLIBC_2.99.
    const at = bytes.indexOf('GLIBC_2.14');
    expect(at).toBeGreaterThan(0);
    bytes.write('GLIBC_2.99', at, 'latin1');
    fs.writeFileSync(file, bytes);
    expect(() => checkBundle('Merge', dir, [NATIVE_MODULES.crc32])).toThrow(/needs GLIBC_2\.99, newer than Lambda's 2\.34/);
  });
});

describe('readElf', () => {
  it("reads the CRC32C addon's machine and version needs as readelf does", () => {
    const elf = readElf(fs.readFileSync(CRC_NODE));
    expect(elf.machine).toBe(EM_X86_64);
    expect(maxGlibc(elf.versionNeeds)).toEqual([2, 14]);
    if (spawnSync('readelf', ['--version']).status !== 0) return;
    const out = spawnSync('readelf', ['-V', '-W', CRC_NODE], { encoding: 'utf8' }).stdout;
    const section = out.slice(out.indexOf('.gnu.version_r'));
    const expected = [...section.matchAll(/Name: (\S+)/g)].map((m) => m[1]!).sort();
    expect(elf.versionNeeds.map((v) => v.version).sort()).toEqual(expected);
  });

  it('refuses what is not a 64-bit little-endian ELF object, and truncated tables', () => {
    expect(() => readElf(new TextEncoder().encode('#!/bin/sh\necho not elf\n'.padEnd(80)))).toThrow(ElfError);
    const bytes = fs.readFileSync(CRC_NODE);
    expect(() => readElf(bytes.subarray(0, 2000))).toThrow(/runs past the end/);
    const bigEndian = Buffer.from(bytes);
    bigEndian[5] = 2;
    expect(() => readElf(bigEndian)).toThrow(/little-endian/);
  });

  it('takes the highest GLIBC_x.y, comparing numbers, not text', () => {
    expect(maxGlibc([{ version: 'GLIBC_2.9' }, { version: 'GLIBC_2.17' }, { version: 'GLIBC_2.2.5' }, { version: 'GCC_3.0' }])).toEqual([2, 17]);
    expect(maxGlibc([{ version: 'GCC_3.0' }])).toBeUndefined();
  });
});
