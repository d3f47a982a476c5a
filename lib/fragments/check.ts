/**
 * Checks on decoded fragment batches, shared by the whole-file reader and the column
 * projection: apache-arrow trusts buffer lengths and offsets, so a damaged file must fail here.
 */
import { isUtf8 } from 'node:buffer';
import * as arrow from 'apache-arrow';

/**
 * Arrow JS trusts buffer lengths and offsets; check them so a damaged file fails here, not
 * later (an out-of-order offset once sent a trainer into an endless loop), and so that what
 * gets indexed is valid Arrow data: offsets in order and in bounds, string values valid
 * UTF-8, dictionary codes inside the dictionary. `bufferBytes` bounds every value offset: the
 * size of the buffer the batch's data lives in.
 */
export function checkBatch(batch: arrow.RecordBatch, bufferBytes: number): void {
  batch.data.children.forEach((child, i) => {
    try {
      checkData(child, batch.numRows, bufferBytes);
    } catch (err) {
      throw new Error(`column '${batch.schema.fields[i]?.name}': ${(err as Error).message}`);
    }
  });
}

function checkData(data: arrow.Data, expectedLength: number, bufferBytes: number): void {
  const n = data.length;
  const off = data.offset;
  if (n !== expectedLength) throw new Error(`column length ${n} != batch length ${expectedLength}`);
  const t = data.type;
  const D = arrow.DataType;
  if (data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 && data.nullBitmap.length * 8 < off + n) {
    throw new Error('validity bitmap too short');
  }
  const v = data.values as ArrayLike<number | bigint> | undefined;
  if (D.isUtf8(t) || D.isLargeUtf8(t) || D.isBinary(t) || D.isLargeBinary(t)) {
    if (n === 0) return;
    const offsets = data.valueOffsets as Int32Array | BigInt64Array | undefined;
    if (!offsets || offsets.length < off + n + 1) throw new Error('offsets buffer too short');
    const bytes = (data.values as Uint8Array | undefined) ?? new Uint8Array(0);
    let prev = Number(offsets[off]!);
    if (prev < 0) throw new Error('value offsets out of bounds');
    for (let i = off + 1; i <= off + n; i++) {
      const o = Number(offsets[i]!);
      if (o < prev) throw new Error(`value offsets out of order at row ${i - off - 1}`);
      prev = o;
    }
    if (prev > bytes.length || prev > bufferBytes) throw new Error('value offsets out of bounds');
    if (D.isUtf8(t) || D.isLargeUtf8(t)) checkUtf8(data, offsets, bytes);
  } else if (D.isBool(t)) {
    if (n > 0 && (!v || v.length * 8 < off + n)) throw new Error('values buffer too short');
  } else if (D.isDictionary(t)) {
    const dict = data.dictionary;
    if (!dict) throw new Error('dictionary missing');
    for (const d of dict.data) checkData(d, d.length, bufferBytes);
    if (n > 0 && (!v || v.length < off + n)) throw new Error('dictionary codes buffer too short');
    const nulls = data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
    for (let i = off; i < off + n; i++) {
      if (nulls && ((nulls[i >> 3]! >> (i & 7)) & 1) === 0) continue;
      const code = Number(v![i]!);
      if (!(code >= 0 && code < dict.length)) throw new Error(`dictionary code ${code} at row ${i - off} is outside the dictionary of ${dict.length} entries`);
    }
  } else if (isFixedWidth(t)) {
    if (n > 0 && (!v || v.length < (off + n) * data.stride)) throw new Error('values buffer too short');
  }
}

/**
 * Every non-null value of a string column must be valid UTF-8 (the Arrow spec requires it,
 * and strings are indexed and compared by their bytes). Fast path: the whole value range is
 * valid and no value starts inside a character; otherwise each non-null value is checked.
 */
function checkUtf8(data: arrow.Data, offsets: Int32Array | BigInt64Array, bytes: Uint8Array): void {
  const off = data.offset;
  const n = data.length;
  const start = Number(offsets[off]!);
  const end = Number(offsets[off + n]!);
  if (isUtf8(bytes.subarray(start, end))) {
    let split = false;
    for (let i = off + 1; i < off + n && !split; i++) {
      const o = Number(offsets[i]!);
      if (o < end && (bytes[o]! & 0xc0) === 0x80) split = true;
    }
    if (!split) return;
  }
  const nulls = data.nullCount > 0 && data.nullBitmap && data.nullBitmap.length > 0 ? data.nullBitmap : undefined;
  for (let i = off; i < off + n; i++) {
    if (nulls && ((nulls[i >> 3]! >> (i & 7)) & 1) === 0) continue;
    if (!isUtf8(bytes.subarray(Number(offsets[i]!), Number(offsets[i + 1]!)))) throw new Error(`invalid UTF-8 in row ${i - off}`);
  }
}

function isFixedWidth(t: arrow.DataType): boolean {
  const D = arrow.DataType;
  return D.isInt(t) || D.isFloat(t) || D.isDate(t) || D.isTimestamp(t) || D.isTime(t);
}
