import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c, crc32cCombine, crc32cImplementation, crc32cPortable } from '../../lib/format/crc32c.js';

const CHECK = new TextEncoder().encode('123456789');

describe('crc32c', () => {
  it('uses the native implementation on this platform (linux x64 ships its binary)', () => {
    expect(`${process.platform}-${process.arch}`).toBe('linux-x64');
    expect(crc32cImplementation).toBe('native');
  });

  it('both implementations give the catalogue check value, from zero and continued', () => {
    for (const f of [crc32c, crc32cPortable]) {
      expect(f(CHECK)).toBe(0xe3069283);
      expect(f(CHECK.subarray(5), f(CHECK.subarray(0, 5)))).toBe(0xe3069283);
      expect(f(new Uint8Array(0))).toBe(0);
      expect(f(new Uint8Array(0), 0xfedcba98)).toBe(0xfedcba98);
    }
  });

  it('native and portable agree on any bytes, any view offset and any starting state', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(15), fc.nat(15), fc.integer({ min: 0, max: 0xffffffff }), (bytes, lo, hi, state) => {
        const view = bytes.subarray(Math.min(lo, bytes.length), Math.max(Math.min(lo, bytes.length), bytes.length - hi));
        expect(crc32c(view, state)).toBe(crc32cPortable(view, state));
        expect(crc32c(view)).toBe(crc32cPortable(view));
      }),
      { numRuns: 400 },
    );
  });

  it('agrees with the portable one on large buffers and with crc32cCombine across a split', () => {
    const big = new Uint8Array(3 * 1024 * 1024 + 7);
    let x = 12345;
    for (let i = 0; i < big.length; i++) big[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
    const whole = crc32c(big);
    expect(whole).toBe(crc32cPortable(big));
    const cut = 1_000_003;
    expect(crc32cCombine(crc32c(big.subarray(0, cut)), crc32c(big.subarray(cut)), big.length - cut)).toBe(whole);
  });

  it('falls back to the portable implementation with SCALAR_INDEX_CRC32C=js, with the same values', () => {
    const script = `import('${new URL('../../lib/format/crc32c.ts', import.meta.url).href}').then((m) => console.log(m.crc32cImplementation, m.crc32c(new TextEncoder().encode('123456789')).toString(16)))`;
    const run = (env: Record<string, string>) => spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
    const js = run({ SCALAR_INDEX_CRC32C: 'js' });
    expect(js.status, js.stderr).toBe(0);
    expect(js.stdout.trim()).toBe('portable e3069283');
    const nat = run({ SCALAR_INDEX_CRC32C: '' });
    expect(nat.stdout.trim()).toBe('native e3069283');
  });
});
