/**
 * Arrow cells as exact bits, for comparing what a reader returns with what the generators
 * wrote: floats by bit pattern (NaN payloads, -0), integers by their bytes, strings and binary
 * by their bytes, dictionaries resolved to their entries. Raw buffers only (Arrow JS's string
 * decoder drops a leading U+FEFF).
 */
import * as arrow from 'apache-arrow';
import { numberToFloat16Bits, type ColumnType } from './dataset.js';

export const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const utf8 = new TextEncoder();

function isValid(data: arrow.Data, j: number): boolean {
  const bitmap = data.nullBitmap;
  return !data.nullCount || !bitmap || bitmap.length === 0 || ((bitmap[j >> 3]! >> (j & 7)) & 1) === 1;
}

/** Each slot of `data` as a hex string of its value's bytes, or null. */
export function cells(data: arrow.Data): (string | null)[] {
  const out: (string | null)[] = [];
  const dictionary = data.dictionary ? data.dictionary.data.flatMap(cells) : undefined;
  for (let i = 0; i < data.length; i++) {
    const j = data.offset + i;
    if (!isValid(data, j)) out.push(null);
    else if (dictionary) out.push(dictionary[(data.values as Int32Array)[j]!]!);
    else if (data.valueOffsets) {
      const offsets = data.valueOffsets as Int32Array | BigInt64Array;
      out.push(hex((data.values as Uint8Array).subarray(Number(offsets[j]!), Number(offsets[j + 1]!))));
    } else if (arrow.DataType.isBool(data.type)) out.push(String(((data.values as Uint8Array)[j >> 3]! >> (j & 7)) & 1));
    else {
      const values = data.values as Uint8Array;
      const width = values.BYTES_PER_ELEMENT * data.stride;
      out.push(hex(new Uint8Array(values.buffer, values.byteOffset + j * width, width)));
    }
  }
  return out;
}

/** The cells a generated JS value must come back as (little-endian, like Arrow buffers). */
export function expectedCell(type: ColumnType, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const bytes = (a: ArrayBufferView) => hex(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  switch (type) {
    case 'int8':
      return bytes(Int8Array.of(v as number));
    case 'int16':
      return bytes(Int16Array.of(v as number));
    case 'int32':
    case 'date32':
      return bytes(Int32Array.of(v as number));
    case 'uint8':
      return bytes(Uint8Array.of(v as number));
    case 'uint32':
      return bytes(Uint32Array.of(v as number));
    case 'uint64':
      return bytes(BigUint64Array.of(v as bigint));
    case 'int64':
    case 'date64':
    case 'timestamp_ms':
    case 'timestamp_us_utc':
      return bytes(BigInt64Array.of(v as bigint));
    case 'float16':
      return bytes(Uint16Array.of(numberToFloat16Bits(v as number)));
    case 'float32':
      return bytes(Float32Array.of(v as number));
    case 'float64':
      return bytes(Float64Array.of(v as number));
    case 'utf8':
    case 'large_utf8':
    case 'dict_utf8':
      return hex(utf8.encode(v as string));
    case 'binary':
      return hex(v as Uint8Array);
    case 'bool':
      return v ? '1' : '0';
  }
}

