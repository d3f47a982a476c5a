/**
 * CRC32C (Castagnoli), the checksum S3 computes and stores natively (`x-amz-checksum-crc32c`),
 * in S3's encoding: base64 of the big-endian 4 bytes.
 *
 * Two implementations of the same function:
 * - native: `@node-rs/crc32` (SSE 4.2 / ARMv8 CRC instructions, about 16 GB/s here), used when
 *   its prebuilt binary loads, as on Linux x64 and arm64 and in the Lambda bundles that ship it;
 * - portable: slicing-by-16 over 32-bit words in JavaScript, about 1 GB/s, everywhere else or
 *   with `SCALAR_INDEX_CRC32C=js`.
 * test/format/crc32c.test.ts checks that both give the same values.
 */
import { createRequire } from 'node:module';
import { IndexFileError } from '../errors.js';

const POLY = 0x82f63b78; // reflected Castagnoli polynomial
/** Slicing-by-16 tables: T[t·256 + b] is the CRC of byte b followed by t zero bytes. */
const T = new Uint32Array(16 * 256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
  T[i] = c >>> 0;
}
for (let i = 0; i < 256; i++) {
  for (let t = 1; t < 16; t++) T[t * 256 + i] = (T[(t - 1) * 256 + i]! >>> 8) ^ T[T[(t - 1) * 256 + i]! & 0xff]!;
}
/** Words are read through a Uint32Array, which is only the bytes' order on little-endian hosts. */
const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Continue a CRC32C over `bytes`. Start with `crc = 0` (the finished value of no bytes); the
 * result of one call is the `crc` of the next, so a file can be checked chunk by chunk.
 *
 * @example
 * crc32c(new TextEncoder().encode('123456789')) === 0xe3069283;
 */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  return native ? native(bytes, crc >>> 0) : crc32cPortable(bytes, crc);
}

type NativeCrc32c = (bytes: Uint8Array, initial: number) => number;

/** `@node-rs/crc32`'s crc32c, unless told not to or its binary does not load here. */
function loadNative(env: NodeJS.ProcessEnv): NativeCrc32c | undefined {
  if (env.SCALAR_INDEX_CRC32C === 'js') return undefined;
  try {
    const mod = createRequire(import.meta.url)('@node-rs/crc32') as { crc32c?: (input: Uint8Array, initial?: number) => number };
    const fn = mod.crc32c;
    // Loaded is not enough: the check value of the CRC-32C catalogue, continued from a state.
    if (typeof fn !== 'function' || fn(CHECK_INPUT, 0) !== 0xe3069283 || fn(CHECK_INPUT.subarray(4), fn(CHECK_INPUT.subarray(0, 4), 0)) !== 0xe3069283) return undefined;
    return (bytes, initial) => fn(bytes, initial);
  } catch {
    return undefined;
  }
}

const CHECK_INPUT = new TextEncoder().encode('123456789');
const native = loadNative(process.env);

/** Which implementation `crc32c` uses in this process. */
export const crc32cImplementation: 'native' | 'portable' = native ? 'native' : 'portable';

/** The JavaScript implementation (what `crc32c` falls back to); same results. */
export function crc32cPortable(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  let i = 0;
  const n = bytes.length;
  if (LITTLE_ENDIAN) {
    while (i < n && ((bytes.byteOffset + i) & 3) !== 0) c = T[(c ^ bytes[i++]!) & 0xff]! ^ (c >>> 8);
    const blocks = Math.floor((n - i) / 16);
    if (blocks > 0) {
      const w = new Uint32Array(bytes.buffer, bytes.byteOffset + i, blocks * 4);
      for (let k = 0; k < w.length; k += 4) {
        const a = w[k]! ^ c;
        const b = w[k + 1]!;
        const d = w[k + 2]!;
        const e = w[k + 3]!;
        c =
          T[15 * 256 + (a & 0xff)]! ^
          T[14 * 256 + ((a >>> 8) & 0xff)]! ^
          T[13 * 256 + ((a >>> 16) & 0xff)]! ^
          T[12 * 256 + (a >>> 24)]! ^
          T[11 * 256 + (b & 0xff)]! ^
          T[10 * 256 + ((b >>> 8) & 0xff)]! ^
          T[9 * 256 + ((b >>> 16) & 0xff)]! ^
          T[8 * 256 + (b >>> 24)]! ^
          T[7 * 256 + (d & 0xff)]! ^
          T[6 * 256 + ((d >>> 8) & 0xff)]! ^
          T[5 * 256 + ((d >>> 16) & 0xff)]! ^
          T[4 * 256 + (d >>> 24)]! ^
          T[3 * 256 + (e & 0xff)]! ^
          T[2 * 256 + ((e >>> 8) & 0xff)]! ^
          T[256 + ((e >>> 16) & 0xff)]! ^
          T[e >>> 24]!;
      }
      i += blocks * 16;
    }
  }
  for (; i < n; i++) c = T[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** a(x)·b(x) modulo the polynomial, both reflected (zlib's multmodp). */
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(2^k) modulo the polynomial, k = 0..31. */
const X2N = new Uint32Array(32);
X2N[0] = 0x40000000; // x^1
for (let k = 1; k < 32; k++) X2N[k] = multmodp(X2N[k - 1]!, X2N[k - 1]!);

/**
 * The CRC32C of `A ‖ B` from `crc32c(A)`, `crc32c(B)` and B's length, without the bytes
 * (zlib's crc32_combine): a writer checksums each record batch once and still gets the file's.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  // x^(8·lengthB): walk the bits of lengthB, starting at x^(2^3).
  let p = 0x80000000; // x^0
  let n = lengthB;
  for (let k = 3; n > 0; k++, n = Math.floor(n / 2)) if (n % 2) p = multmodp(X2N[k & 31]!, p);
  return (multmodp(p, crcA >>> 0) ^ crcB) >>> 0;
}

/** S3's encoding of a CRC32C: base64 of its 4 bytes, big-endian (`yZRlqg==`). */
export function encodeCrc32c(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0, 0);
  return b.toString('base64');
}

const ENCODED = /^[A-Za-z0-9+/]{5}[AQgw]==$/;

/** Whether `s` is a CRC32C in S3's encoding (exactly the strings encodeCrc32c returns). */
export function isEncodedCrc32c(s: string): boolean {
  return ENCODED.test(s);
}

/** The number an S3-encoded CRC32C stands for. */
export function decodeCrc32c(s: string): number {
  if (!isEncodedCrc32c(s)) throw new IndexFileError(`not a base64 CRC32C: ${JSON.stringify(s)}`);
  return Buffer.from(s, 'base64').readUInt32BE(0);
}

const mismatches = new WeakSet<object>();

/** The one error every checksum check raises: names the object, the expected and the actual value. */
export function checksumMismatch(what: string, expected: number | string, actual: number | string): IndexFileError {
  const show = (v: number | string) => (typeof v === 'number' ? encodeCrc32c(v) : v);
  const err = new IndexFileError(`checksum mismatch in ${what}: expected CRC32C ${show(expected)}, got ${show(actual)} (the object is corrupt or was changed)`);
  mismatches.add(err);
  return err;
}

/** Whether `err` is a checksum mismatch raised by `checksumMismatch`. */
export function isChecksumMismatch(err: unknown): boolean {
  return typeof err === 'object' && err !== null && mismatches.has(err);
}
