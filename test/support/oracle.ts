/**
 * Brute-force predicate evaluation over the generated JS values: the answer every index query
 * is checked against. It shares nothing with `lib/` but the AST types, so a misreading of the
 * spec in the library cannot hide by being repeated here.
 *
 * Semantics: SQL three-valued logic; PostgreSQL float order (NaN = NaN, NaN above +Infinity,
 * -0 = +0); integers (incl. dates and timestamps, in their stored unit) compared exactly with
 * the literal's exact rational value; strings and binary by UTF-8 bytes; false < true.
 */
import type { CompareOp, Literal, Predicate } from '../../lib/query/ast.js';
import { type ColumnType, type GeneratedDataset, fragmentRowCount, typeFamily } from './dataset.js';

/** Kleene truth values. */
export type Truth = 'T' | 'F' | 'U';

const not3 = (a: Truth): Truth => (a === 'T' ? 'F' : a === 'F' ? 'T' : 'U');
const and3 = (a: Truth, b: Truth): Truth => (a === 'F' || b === 'F' ? 'F' : a === 'U' || b === 'U' ? 'U' : 'T');
const or3 = (a: Truth, b: Truth): Truth => (a === 'T' || b === 'T' ? 'T' : a === 'U' || b === 'U' ? 'U' : 'F');

/** For each fragment (in `ds.fragments` order), the ascending offsets where `p` is TRUE. */
export function evaluateOracle(ds: GeneratedDataset, p: Predicate): number[][] {
  const types = new Map(ds.columns.map((c) => [c.name, c.type]));
  return ds.fragments.map((f) => {
    const n = fragmentRowCount(ds.columns, f.rows);
    const out: number[] = [];
    for (let row = 0; row < n; row++) {
      if (evaluateRow(p, (column) => {
        const type = types.get(column);
        if (type === undefined) throw new Error(`oracle: unknown column ${column}`);
        return { type, value: f.rows[column]![row] };
      }) === 'T') out.push(row);
    }
    return out;
  });
}

/** The three-valued result of `p` on one row; `cell` gives a column's type and value. */
export function evaluateRow(p: Predicate, cell: (column: string) => { type: ColumnType; value: unknown }): Truth {
  switch (p.kind) {
    case 'and':
      return and3(evaluateRow(p.left, cell), evaluateRow(p.right, cell));
    case 'or':
      return or3(evaluateRow(p.left, cell), evaluateRow(p.right, cell));
    case 'not':
      return not3(evaluateRow(p.operand, cell));
    case 'isNull': {
      const { value } = cell(p.column);
      const isNull = value === null || value === undefined;
      return isNull !== p.negated ? 'T' : 'F';
    }
    case 'compare': {
      const { type, value } = cell(p.column);
      return compareTruth(type, value, p.op, p.value);
    }
    case 'between': {
      const { type, value } = cell(p.column);
      const r = and3(compareTruth(type, value, '>=', p.low), compareTruth(type, value, '<=', p.high));
      return p.negated ? not3(r) : r;
    }
    case 'in': {
      const { type, value } = cell(p.column);
      let r: Truth = 'F';
      for (const lit of p.values) r = or3(r, compareTruth(type, value, '=', lit));
      return p.negated ? not3(r) : r;
    }
  }
}

function compareTruth(type: ColumnType, value: unknown, op: CompareOp, lit: Literal): Truth {
  if (value === null || value === undefined || lit.kind === 'null') return 'U';
  const c = compareValueToLiteral(type, value, lit);
  switch (op) {
    case '=':
      return c === 0 ? 'T' : 'F';
    case '!=':
      return c !== 0 ? 'T' : 'F';
    case '<':
      return c < 0 ? 'T' : 'F';
    case '<=':
      return c <= 0 ? 'T' : 'F';
    case '>':
      return c > 0 ? 'T' : 'F';
    case '>=':
      return c >= 0 ? 'T' : 'F';
  }
}

/** Sign of (value - literal) in the column type's order; throws on an ill-typed pair. */
export function compareValueToLiteral(type: ColumnType, value: unknown, lit: Literal): -1 | 0 | 1 {
  const illTyped = () => new Error(`oracle: literal ${JSON.stringify(lit)} is ill-typed for a ${type} column`);
  switch (typeFamily(type)) {
    case 'float': {
      if (lit.kind !== 'number') throw illTyped();
      return comparePostgresFloat(value as number, Number(lit.text));
    }
    case 'int': {
      const v = typeof value === 'bigint' ? value : BigInt(value as number);
      if (lit.kind === 'number') return compareIntToNumberText(v, lit.text);
      if (lit.kind === 'string' && (type === 'date32' || type === 'date64' || type === 'timestamp_ms' || type === 'timestamp_us_utc')) {
        return compareIntToRational(v, isoToUnits(lit.value, type));
      }
      throw illTyped();
    }
    case 'string': {
      if (lit.kind !== 'string') throw illTyped();
      return compareBytes(utf8.encode(value as string), utf8.encode(lit.value));
    }
    case 'binary': {
      if (lit.kind !== 'string') throw illTyped();
      return compareBytes(value as Uint8Array, utf8.encode(lit.value));
    }
    case 'bool': {
      if (lit.kind !== 'bool') throw illTyped();
      return sign(Number(value as boolean) - Number(lit.value));
    }
  }
}

const utf8 = new TextEncoder();

function sign(n: number | bigint): -1 | 0 | 1 {
  return n > 0 ? 1 : n < 0 ? -1 : 0;
}

/** PostgreSQL's float order: numeric, with every NaN equal and above +Infinity. */
export function comparePostgresFloat(a: number, b: number): -1 | 0 | 1 {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Bytewise, shorter-prefix first: for UTF-8 this is code-point order. */
export function compareBytes(a: Uint8Array, b: Uint8Array): -1 | 0 | 1 {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return sign(a.length - b.length);
}

/** An exact rational `num / den` with `den > 0`. */
export interface Rational {
  num: bigint;
  den: bigint;
}

/** Parse a normalised decimal literal (see ast.ts) exactly; NaN/±Infinity are not rationals. */
export function parseDecimal(text: string): Rational {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) throw new Error(`oracle: not a decimal literal: ${text}`);
  const [, neg, whole, frac = '', exp = '0'] = m;
  let num = BigInt(whole! + frac);
  let den = 10n ** BigInt(frac.length);
  const e = BigInt(exp);
  if (e >= 0n) num *= 10n ** e;
  else den *= 10n ** -e;
  return { num: neg ? -num : num, den };
}

function compareIntToRational(v: bigint, r: Rational): -1 | 0 | 1 {
  return sign(v * r.den - r.num);
}

/** Integer column vs number literal: NaN above every integer, ±Infinity beyond all. */
export function compareIntToNumberText(v: bigint, text: string): -1 | 0 | 1 {
  if (text === 'NaN' || text === 'Infinity') return -1;
  if (text === '-Infinity') return 1;
  return compareIntToRational(v, parseDecimal(text));
}

const DAYS_PER_400Y = 146_097n;

/** Days from 1970-01-01 to the proleptic Gregorian date (exact for any year). */
export function daysFromCivil(year: bigint, month: bigint, day: bigint): bigint {
  // Howard Hinnant's days_from_civil, on bigints with floor division.
  const y = month <= 2n ? year - 1n : year;
  const era = floorDiv(y, 400n);
  const yoe = y - era * 400n;
  const mp = (month + 9n) % 12n;
  const doy = (153n * mp + 2n) / 5n + day - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * DAYS_PER_400Y + doe - 719_468n;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

function daysInMonth(year: bigint, month: bigint): bigint {
  if (month === 2n) return (year % 4n === 0n && year % 100n !== 0n) || year % 400n === 0n ? 29n : 28n;
  return [4n, 6n, 9n, 11n].includes(month) ? 30n : 31n;
}

const UNITS_PER_SECOND: Record<'date32' | 'date64' | 'timestamp_ms' | 'timestamp_us_utc', Rational> = {
  date32: { num: 1n, den: 86_400n },
  date64: { num: 1000n, den: 1n },
  timestamp_ms: { num: 1000n, den: 1n },
  timestamp_us_utc: { num: 1_000_000n, den: 1n },
};

/**
 * An ISO literal in the column's stored unit, exactly. `YYYY-MM-DD` is midnight UTC;
 * `YYYY-MM-DDTHH:MM:SS[.f…][Z]` without an offset is UTC. A time that falls between two units
 * (a time of day on a date32 column, microseconds on a millisecond column) stays fractional,
 * so it equals no stored value and orders between its neighbours.
 */
export function isoToUnits(text: string, type: 'date32' | 'date64' | 'timestamp_ms' | 'timestamp_us_utc'): Rational {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z?)?$/.exec(text);
  if (!m) throw new Error(`oracle: not an ISO date/timestamp literal: ${text}`);
  const [, y, mo, d, hh = '0', mi = '0', ss = '0', frac = ''] = m;
  const year = BigInt(y!);
  const month = BigInt(mo!);
  const day = BigInt(d!);
  if (month < 1n || month > 12n || day < 1n || day > daysInMonth(year, month)) throw new Error(`oracle: invalid date ${text}`);
  if (BigInt(hh) > 23n || BigInt(mi) > 59n || BigInt(ss) > 59n) throw new Error(`oracle: invalid time ${text}`);
  const seconds = daysFromCivil(year, month, day) * 86_400n + BigInt(hh) * 3600n + BigInt(mi) * 60n + BigInt(ss);
  const fracDen = 10n ** BigInt(frac.length);
  const totalSeconds: Rational = { num: seconds * fracDen + (frac ? BigInt(frac) : 0n), den: fracDen };
  const unit = UNITS_PER_SECOND[type];
  return { num: totalSeconds.num * unit.num, den: totalSeconds.den * unit.den };
}
