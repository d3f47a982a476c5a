/**
 * Rows of Arrow record batches as text: newline-delimited JSON or CSV (RFC 4180), for
 * `scalar-index scan --format ndjson|csv`.
 *
 * Values are written exactly, from the typed arrays:
 * - 64-bit integers as their decimal digits (a JSON number, never rounded through `number`);
 * - floats as the shortest text that reads back to the same double, `-0` kept; NaN and
 *   ±Infinity, which JSON cannot hold, as the strings "NaN", "Infinity", "-Infinity" (bare in
 *   CSV);
 * - strings as they are (a leading U+FEFF included); binary as base64;
 * - dates as `YYYY-MM-DD`, times as `HH:MM:SS[.fraction]`, timestamps as ISO 8601 in their
 *   unit's precision with `Z` when the type has a time zone (the value is an instant) and no
 *   zone otherwise; years outside 0000–9999 in ISO's signed six-digit form;
 * - decimals as exact decimal text;
 * - anything else (lists, structs, maps …) as JSON via Arrow JS.
 * In CSV a null is an empty field and an empty string is `""`.
 */
import * as arrow from 'apache-arrow';

export type TextFormat = 'ndjson' | 'csv';

/** Cell i of a column as a JSON token, or null for a null cell. */
type JsonCell = (i: number) => string | null;

const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** The rows of `batch` as text lines, each ending in `\n`. */
export function formatRows(batch: arrow.RecordBatch, format: TextFormat): string {
  const n = batch.numRows;
  const names = batch.schema.fields.map((f) => f.name);
  const cells = batch.data.children.map((d) => jsonCell(d));
  const parts: string[] = new Array(n);
  if (format === 'ndjson') {
    const keys = names.map((name) => `${JSON.stringify(name)}:`);
    for (let i = 0; i < n; i++) {
      let line = '{';
      for (let c = 0; c < cells.length; c++) line += `${c ? ',' : ''}${keys[c]}${cells[c]!(i) ?? 'null'}`;
      parts[i] = `${line}}\n`;
    }
  } else {
    const csv = batch.data.children.map((d, c) => csvCell(d, cells[c]!));
    for (let i = 0; i < n; i++) {
      let line = '';
      for (let c = 0; c < csv.length; c++) line += `${c ? ',' : ''}${csv[c]!(i)}`;
      parts[i] = `${line}\n`;
    }
  }
  return parts.join('');
}

/** The CSV header line for `schema`. */
export function csvHeader(schema: arrow.Schema): string {
  // No columns known (nothing was scanned and none were named): no header line either.
  if (schema.fields.length === 0) return '';
  return `${schema.fields.map((f) => csvQuote(f.name, false)).join(',')}\n`;
}

function csvQuote(s: string, always: boolean): string {
  return always || s === '' || /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

function csvCell(data: arrow.Data, json: JsonCell): (i: number) => string {
  const t = data.type;
  const D = arrow.DataType;
  const isText = D.isUtf8(t) || D.isLargeUtf8(t) || (D.isDictionary(t) && (D.isUtf8(t.dictionary) || D.isLargeUtf8(t.dictionary)));
  const isFloat = D.isFloat(t);
  return (i) => {
    const v = json(i);
    if (v === null) return '';
    // JSON tokens to CSV fields: strings unquoted from JSON and quoted for CSV when needed;
    // numbers, booleans and the bare float words as they are.
    if (v.startsWith('"')) {
      const s = JSON.parse(v) as string;
      if (isFloat) return s;
      return csvQuote(s, isText && s === '');
    }
    if (v.startsWith('{') || v.startsWith('[')) return csvQuote(v, false);
    return v;
  };
}

function validity(data: arrow.Data): (i: number) => boolean {
  const bitmap = data.nullBitmap;
  if (!(data.nullCount > 0 && bitmap && bitmap.length > 0)) return () => true;
  const off = data.offset;
  return (i) => ((bitmap[(off + i) >> 3]! >> ((off + i) & 7)) & 1) === 1;
}

/** A JSON token for each cell of `data`. */
export function jsonCell(data: arrow.Data): JsonCell {
  const valid = validity(data);
  const cell = valueCell(data);
  return (i) => (valid(i) ? cell(i) : null);
}

function valueCell(data: arrow.Data): JsonCell {
  const t = data.type;
  const D = arrow.DataType;
  const off = data.offset;
  if (D.isNull(t)) return () => null;
  if (D.isDictionary(t)) {
    const entries = dictionaryTokens(data.dictionary!);
    const codes = data.values as ArrayLike<number | bigint>;
    return (i) => entries[Number(codes[off + i]!)] ?? null;
  }
  if (D.isInt(t)) {
    const values = data.values as ArrayLike<number | bigint>;
    return (i) => String(values[off + i]!);
  }
  if (D.isFloat(t)) {
    const values = data.values as ArrayLike<number>;
    const half = (t as arrow.Float).precision === arrow.Precision.HALF;
    return (i) => floatToken(half ? float16(values[off + i]!) : values[off + i]!);
  }
  if (D.isBool(t)) {
    const bits = data.values as Uint8Array;
    return (i) => (((bits[(off + i) >> 3]! >> ((off + i) & 7)) & 1) === 1 ? 'true' : 'false');
  }
  if (D.isUtf8(t) || D.isLargeUtf8(t) || D.isBinary(t) || D.isLargeBinary(t)) {
    const offsets = data.valueOffsets as Int32Array | BigInt64Array;
    const bytes = (data.values as Uint8Array | undefined) ?? new Uint8Array(0);
    const text = D.isUtf8(t) || D.isLargeUtf8(t);
    return (i) => {
      const b = bytes.subarray(Number(offsets[off + i]!), Number(offsets[off + i + 1]!));
      return JSON.stringify(text ? utf8.decode(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'));
    };
  }
  if (D.isDate(t)) {
    const day = (t as arrow.Date_).unit === arrow.DateUnit.DAY;
    const values = data.values as ArrayLike<number | bigint>;
    return (i) => JSON.stringify(day ? civilDate(BigInt(values[off + i]!)) : instant(BigInt(values[off + i]!), 1_000_000n, 3, false, true));
  }
  if (D.isTimestamp(t)) {
    const ts = t as arrow.Timestamp;
    const [nanos, digits] = UNITS[ts.unit]!;
    const values = data.values as BigInt64Array;
    return (i) => JSON.stringify(instant(values[off + i]!, nanos, digits, !!ts.timezone, false));
  }
  if (D.isTime(t)) {
    const [nanos, digits] = UNITS[(t as arrow.Time).unit]!;
    const values = data.values as ArrayLike<number | bigint>;
    return (i) => JSON.stringify(timeOfDay(BigInt(values[off + i]!) * nanos, digits));
  }
  if (D.isDecimal(t)) {
    const dec = t as arrow.Decimal;
    const words = data.values as Uint32Array;
    const perValue = dec.bitWidth / 32;
    return (i) => {
      let v = 0n;
      for (let w = perValue - 1; w >= 0; w--) v = (v << 32n) | BigInt(words[(off + i) * perValue + w]!);
      return decimalText(BigInt.asIntN(dec.bitWidth, v), dec.scale);
    };
  }
  // Nested and other types: Arrow JS's own JS value, as JSON.
  const vector = arrow.makeVector(data);
  return (i) => JSON.stringify(vector.get(i), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
}

const dictionaryCache = new WeakMap<arrow.Vector, (string | null)[]>();

/** Each dictionary entry's token, once per dictionary. */
function dictionaryTokens(dict: arrow.Vector): (string | null)[] {
  let tokens = dictionaryCache.get(dict);
  if (!tokens) {
    tokens = [];
    for (const d of dict.data) {
      const cell = jsonCell(d);
      for (let i = 0; i < d.length; i++) tokens.push(cell(i));
    }
    dictionaryCache.set(dict, tokens);
  }
  return tokens;
}

function floatToken(x: number): string {
  if (x !== x) return '"NaN"';
  if (x === Infinity) return '"Infinity"';
  if (x === -Infinity) return '"-Infinity"';
  return Object.is(x, -0) ? '-0' : String(x);
}

function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Nanoseconds per unit and fraction digits, by arrow.TimeUnit. */
const UNITS: Record<number, [bigint, number]> = {
  [arrow.TimeUnit.SECOND]: [1_000_000_000n, 0],
  [arrow.TimeUnit.MILLISECOND]: [1_000_000n, 3],
  [arrow.TimeUnit.MICROSECOND]: [1_000n, 6],
  [arrow.TimeUnit.NANOSECOND]: [1n, 9],
};

const DAY_NANOS = 86_400_000_000_000n;

const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));

/** Days since 1970-01-01 as an ISO date (proleptic Gregorian; Howard Hinnant's civil_from_days). */
function civilDate(days: bigint): string {
  const z = days + 719_468n;
  const era = floorDiv(z, 146_097n);
  const doe = z - era * 146_097n;
  const yoe = (doe - doe / 1460n + doe / 36_524n - doe / 146_096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const d = doy - (153n * mp + 2n) / 5n + 1n;
  const m = mp < 10n ? mp + 3n : mp - 9n;
  const y = yoe + era * 400n + (m <= 2n ? 1n : 0n);
  const year = y >= 0n && y <= 9999n ? String(y).padStart(4, '0') : `${y < 0n ? '-' : '+'}${String(y < 0n ? -y : y).padStart(6, '0')}`;
  return `${year}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

function timeOfDay(nanos: bigint, digits: number): string {
  const s = nanos / 1_000_000_000n;
  const hh = String(s / 3600n).padStart(2, '0');
  const mm = String((s / 60n) % 60n).padStart(2, '0');
  const ss = String(s % 60n).padStart(2, '0');
  const frac = digits ? `.${String(nanos % 1_000_000_000n).padStart(9, '0').slice(0, digits)}` : '';
  return `${hh}:${mm}:${ss}${frac}`;
}

/** A count of `unitNanos` since the epoch as ISO 8601; a whole-day Date64 as a date. */
function instant(value: bigint, unitNanos: bigint, digits: number, zoned: boolean, dateIfWholeDay: boolean): string {
  const nanos = value * unitNanos;
  const days = floorDiv(nanos, DAY_NANOS);
  const inDay = nanos - days * DAY_NANOS;
  if (dateIfWholeDay && inDay === 0n) return civilDate(days);
  return `${civilDate(days)}T${timeOfDay(inDay, digits)}${zoned ? 'Z' : ''}`;
}

function decimalText(v: bigint, scale: number): string {
  const neg = v < 0n;
  let digits = (neg ? -v : v).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, '0');
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  } else if (scale < 0) digits += '0'.repeat(-scale);
  return `${neg ? '-' : ''}${digits}`;
}
