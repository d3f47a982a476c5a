/**
 * A decoder for the portable 32-bit Roaring format, written from the RoaringFormatSpec
 * (github.com/RoaringBitmap/RoaringFormatSpec) without the `roaring` package, plus the row-set
 * framing of index-format.md. Tests check the library's bytes against this, so that "the
 * roaring package reads back what it wrote" is not the only evidence that Lance (or any other
 * reader of the spec) can read our bitmaps.
 *
 * It is strict on purpose: anything the spec does not allow (unsorted keys, wrong offsets,
 * cardinality that disagrees with the container, trailing bytes) throws.
 */

export const SERIAL_COOKIE_NO_RUNCONTAINER = 12346;
export const SERIAL_COOKIE = 12347;
export const NO_OFFSET_THRESHOLD = 4;
const ARRAY_MAX = 4096;
const BITSET_BYTES = 8192;

export type ContainerKind = 'array' | 'bitset' | 'run';

export interface DecodedContainer {
  key: number;
  kind: ContainerKind;
  cardinality: number;
  /** Low 16 bits of each value, ascending. */
  values: number[];
}

export interface DecodedRoaring {
  cookie: typeof SERIAL_COOKIE | typeof SERIAL_COOKIE_NO_RUNCONTAINER;
  hasOffsets: boolean;
  containers: DecodedContainer[];
}

class Reader {
  private readonly view: DataView;
  pos = 0;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.bytes.byteLength) throw new Error(`roaring: truncated in ${what} at byte ${this.pos} (need ${n}, have ${this.bytes.byteLength - this.pos})`);
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  byte(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++]!;
  }
}

/** Parse a portable roaring bitmap that occupies exactly `bytes`. */
export function parsePortableRoaring(bytes: Uint8Array): DecodedRoaring {
  const r = new Reader(bytes);
  const first = r.u32('cookie');
  let size: number;
  let runFlags: Uint8Array | undefined;
  let cookie: DecodedRoaring['cookie'];
  if ((first & 0xffff) === SERIAL_COOKIE) {
    cookie = SERIAL_COOKIE;
    size = (first >>> 16) + 1;
    const flagBytes = (size + 7) >> 3;
    r.need(flagBytes, 'run-container bitset');
    runFlags = bytes.subarray(r.pos, r.pos + flagBytes);
    r.pos += flagBytes;
  } else if (first === SERIAL_COOKIE_NO_RUNCONTAINER) {
    cookie = SERIAL_COOKIE_NO_RUNCONTAINER;
    size = r.u32('container count');
  } else {
    throw new Error(`roaring: bad cookie 0x${first.toString(16)}`);
  }
  if (size > 65536) throw new Error(`roaring: ${size} containers is more than 2^16`);
  // Checked before allocating anything sized by it, so a corrupt count cannot exhaust memory.
  r.need(size * 4, 'descriptive header');

  const keys: number[] = [];
  const cards: number[] = [];
  for (let i = 0; i < size; i++) {
    const key = r.u16('key');
    const card = r.u16('cardinality') + 1;
    if (i > 0 && key <= keys[i - 1]!) throw new Error(`roaring: keys not strictly ascending at container ${i}`);
    keys.push(key);
    cards.push(card);
  }
  const isRun = (i: number) => runFlags !== undefined && ((runFlags[i >> 3]! >> (i & 7)) & 1) === 1;

  const hasOffsets = cookie === SERIAL_COOKIE_NO_RUNCONTAINER || size >= NO_OFFSET_THRESHOLD;
  let offsets: number[] | undefined;
  if (hasOffsets) {
    offsets = [];
    for (let i = 0; i < size; i++) offsets.push(r.u32('offset header'));
  }

  const containers: DecodedContainer[] = [];
  for (let i = 0; i < size; i++) {
    const key = keys[i]!;
    const card = cards[i]!;
    if (offsets && offsets[i] !== r.pos) throw new Error(`roaring: container ${i} offset says ${offsets[i]}, data is at ${r.pos}`);
    const values: number[] = [];
    let kind: ContainerKind;
    if (isRun(i)) {
      kind = 'run';
      const nRuns = r.u16('run count');
      r.need(nRuns * 4, 'runs');
      let next = 0; // smallest value the next run may start at
      for (let j = 0; j < nRuns; j++) {
        const start = r.u16('run start');
        const lengthMinusOne = r.u16('run length');
        const end = start + lengthMinusOne;
        if (end > 0xffff) throw new Error(`roaring: run ${j} of container ${i} passes 65535`);
        if (j > 0 && start < next) throw new Error(`roaring: runs of container ${i} overlap or are unsorted`);
        for (let v = start; v <= end; v++) values.push(v);
        next = end + 1;
      }
    } else if (card <= ARRAY_MAX) {
      kind = 'array';
      r.need(card * 2, 'array container');
      for (let j = 0; j < card; j++) {
        const v = r.u16('array value');
        if (j > 0 && v <= values[j - 1]!) throw new Error(`roaring: array container ${i} not strictly ascending`);
        values.push(v);
      }
    } else {
      kind = 'bitset';
      r.need(BITSET_BYTES, 'bitset container');
      for (let b = 0; b < BITSET_BYTES; b++) {
        let byte = r.byte('bitset');
        for (let bit = 0; byte !== 0; bit++, byte >>= 1) if (byte & 1) values.push(b * 8 + bit);
      }
    }
    if (values.length !== card) throw new Error(`roaring: container ${i} (${kind}) holds ${values.length} values, header says ${card}`);
    containers.push({ key, kind, cardinality: card, values });
  }
  if (r.pos !== bytes.byteLength) throw new Error(`roaring: ${bytes.byteLength - r.pos} trailing bytes`);
  return { cookie, hasOffsets, containers };
}

/** The sorted values of a portable roaring bitmap. */
export function decodePortableRoaring(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (const c of parsePortableRoaring(bytes).containers) {
    const high = c.key * 65536;
    for (const v of c.values) out.push(high + v);
  }
  return out;
}

export interface RowSetFrame {
  fragmentId: number;
  bytes: Uint8Array;
}

/** Split the row-set framing: u32 count, then (u32 fragment id, u32 byte_len, bytes)… */
export function splitRowSetIndependently(bytes: Uint8Array): RowSetFrame[] {
  const r = new Reader(bytes);
  const count = r.u32('entry count');
  const out: RowSetFrame[] = [];
  for (let i = 0; i < count; i++) {
    const fragmentId = r.u32('fragment id');
    const len = r.u32('byte length');
    r.need(len, `entry ${i}`);
    if (i > 0 && fragmentId <= out[i - 1]!.fragmentId) throw new Error(`row set: fragment ids not strictly ascending at entry ${i}`);
    out.push({ fragmentId, bytes: bytes.subarray(r.pos, r.pos + len) });
    r.pos += len;
  }
  if (r.pos !== bytes.byteLength) throw new Error(`row set: ${bytes.byteLength - r.pos} trailing bytes`);
  return out;
}

/**
 * fragment id -> sorted row offsets. A `byte_len` of 0 ("whole fragment") cannot be expanded
 * without the fragment's row count, and this project never writes it, so it throws.
 */
export function decodeRowSetIndependently(bytes: Uint8Array): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const e of splitRowSetIndependently(bytes)) {
    if (e.bytes.byteLength === 0) throw new Error(`row set: whole-fragment entry for fragment ${e.fragmentId}`);
    out.set(e.fragmentId, decodePortableRoaring(e.bytes));
  }
  return out;
}
