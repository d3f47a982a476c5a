/**
 * What a (possibly damaged) fragment actually decodes to, in the generator's value
 * conventions, so the brute-force oracle can say what an index over it must answer. Decoded
 * with apache-arrow and parquet-wasm directly, not through lib/: the library's reader is what
 * is under test.
 *
 * Decoding follows Arrow JS (a row is null when the batch has nulls and its validity bit is
 * clear). Data that no Arrow implementation should accept (offsets out of order or out of
 * bounds, buffers shorter than the rows, invalid UTF-8 in a string column, dictionary codes
 * past the dictionary) makes `decodedRows` throw `InvalidFragmentData`: an index over such a
 * fragment would have nothing to be right about, so the library must refuse the fragment.
 */
import * as arrow from 'apache-arrow';
import { readParquet } from 'parquet-wasm/node';
import { arrowType, float16BitsToNumber, isBigIntType, typeFamily, type ColumnSpec } from '../support/dataset.js';

export class InvalidFragmentData extends Error {}

/** The fragment's rows per column, or throws (anything) when it does not decode at all. */
export function decodedRows(bytes: Uint8Array, parquet: boolean, columns: readonly ColumnSpec[]): Record<string, unknown[]> {
  const table = parquet ? arrow.tableFromIPC(readParquet(bytes).intoIPCStream()) : arrow.tableFromIPC(bytes);
  const rows: Record<string, unknown[]> = {};
  for (const c of columns) {
    const i = table.schema.fields.findIndex((f) => f.name === c.name);
    if (i < 0) throw new InvalidFragmentData(`column ${c.name} is gone`);
    const field = table.schema.fields[i]!;
    // Strings are strings however they are encoded (a Parquet file whose Arrow schema hint is
    // damaged reads a dictionary column back as plain Utf8; the index keys them alike).
    const isString = (t: arrow.DataType): boolean => arrow.DataType.isUtf8(t) || arrow.DataType.isLargeUtf8(t) || (arrow.DataType.isDictionary(t) && isString(t.dictionary));
    const same = typeFamily(c.type) === 'string' ? isString(field.type) : String(field.type) === String(arrowType(c.type));
    if (!same) throw new InvalidFragmentData(`column ${c.name} is now ${String(field.type)}`);
    const out: unknown[] = [];
    for (const batch of table.batches) {
      const data = batch.getChildAt(i)!.data[0]!;
      if (data.length !== batch.numRows) throw new InvalidFragmentData(`column ${c.name} has ${data.length} rows in a batch of ${batch.numRows}`);
      out.push(...columnValues(c, data));
    }
    rows[c.name] = out;
  }
  return rows;
}

function isValid(data: arrow.Data, i: number): boolean {
  if (!(data.nullCount > 0 && data.nullBitmap && data.nullBitmap.byteLength > 0)) return true;
  const pos = data.offset + i;
  if (pos >> 3 >= data.nullBitmap.byteLength) throw new InvalidFragmentData('validity bitmap too short');
  return ((data.nullBitmap[pos >> 3]! >> (pos & 7)) & 1) === 1;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function varBytes(data: arrow.Data, j: number): Uint8Array {
  const offsets = data.valueOffsets as Int32Array | BigInt64Array;
  const values = (data.values as Uint8Array | undefined) ?? new Uint8Array(0);
  if (!offsets || offsets.length < j + 2) throw new InvalidFragmentData('offsets too short');
  const a = Number(offsets[j]!);
  const b = Number(offsets[j + 1]!);
  if (a < 0 || b < a || b > values.byteLength) throw new InvalidFragmentData(`bad offsets ${a}..${b} of ${values.byteLength}`);
  return values.subarray(a, b);
}

/** Every offset of a variable-width column must be in order and in bounds, null rows included. */
function checkOffsets(data: arrow.Data): void {
  for (let i = 0; i < data.length; i++) varBytes(data, data.offset + i);
}

function columnValues(c: ColumnSpec, data: arrow.Data): unknown[] {
  const out: unknown[] = [];
  const n = data.length;
  if (arrow.DataType.isDictionary(data.type)) {
    const dict = data.dictionary;
    if (!dict) throw new InvalidFragmentData('dictionary missing');
    const entries: (string | null)[] = [];
    for (const d of dict.data) {
      checkOffsets(d);
      for (let i = 0; i < d.length; i++) entries.push(isValid(d, i) ? utf8Text(varBytes(d, d.offset + i)) : null);
    }
    const codes = data.values as ArrayLike<number | bigint>;
    if (codes.length < data.offset + n) throw new InvalidFragmentData('codes too short');
    for (let i = 0; i < n; i++) {
      if (!isValid(data, i)) {
        out.push(null);
        continue;
      }
      const code = Number(codes[data.offset + i]!);
      if (code < 0 || code >= entries.length) throw new InvalidFragmentData(`dictionary code ${code} of ${entries.length}`);
      out.push(entries[code]);
    }
    return out;
  }
  switch (typeFamily(c.type)) {
    case 'string':
    case 'binary': {
      checkOffsets(data);
      for (let i = 0; i < n; i++) {
        if (!isValid(data, i)) out.push(null);
        else {
          const b = varBytes(data, data.offset + i);
          out.push(c.type === 'binary' ? b.slice() : utf8Text(b));
        }
      }
      return out;
    }
    case 'bool': {
      const v = data.values as Uint8Array;
      if (!v || v.byteLength * 8 < data.offset + n) throw new InvalidFragmentData('bool values too short');
      for (let i = 0; i < n; i++) {
        const pos = data.offset + i;
        out.push(isValid(data, i) ? ((v[pos >> 3]! >> (pos & 7)) & 1) === 1 : null);
      }
      return out;
    }
    default: {
      const v = data.values as ArrayLike<number | bigint>;
      if (!v || v.length < data.offset + n) throw new InvalidFragmentData('values too short');
      for (let i = 0; i < n; i++) {
        if (!isValid(data, i)) {
          out.push(null);
          continue;
        }
        const x = v[data.offset + i]!;
        if (c.type === 'float16') out.push(float16BitsToNumber(x as number));
        else if (isBigIntType(c.type)) out.push(BigInt(x));
        else out.push(Number(x));
      }
      return out;
    }
  }
}

function utf8Text(b: Uint8Array): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new InvalidFragmentData('invalid UTF-8 in a string column');
  }
}
