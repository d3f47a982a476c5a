/**
 * Turning `column op literal` into a Condition in the column's own value domain, exactly:
 * 64-bit columns compare as bigint, decimals against integer columns become the nearest
 * integer bound (`x < 2.5` is `x <= 2`), literals beyond a type's range become "every
 * non-null row" or "no row", and ISO strings become dates and timestamps in the column's unit.
 */
import * as arrow from 'apache-arrow';
import { PredicateTypeError } from '../errors.js';
import { comparatorFor, describeColumnType, type ColumnType, type KeyValue } from '../format/column-type.js';
import type { Condition } from '../indexes/kind.js';
import type { CompareOp, Literal } from './ast.js';

export { columnTypeFromSignature } from '../format/column-type.js';

/** An exact rational num/den with den > 0. */
interface Rational {
  num: bigint;
  den: bigint;
}

/**
 * Beyond this decimal magnitude (10^40, far past 2^64), a literal is replaced by ±10^40 (or a
 * nonzero ±10^-40 when that small): it orders the same against every value an integer column
 * can hold, and the arithmetic stays small however many digits or how large an exponent the
 * literal has.
 */
const CLAMP_DIGITS = 40;

function parseDecimal(text: string): Rational {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/i.exec(text);
  if (!m) throw new PredicateTypeError(`not a number: ${text}`);
  const frac = m[3] ?? '';
  const digits = (m[2]! + frac).replace(/^0+/, '');
  if (digits === '') return { num: 0n, den: 1n };
  const sign = m[1] ? -1n : 1n;
  // Number() of a very long exponent is only approximate (or Infinity), which is all the
  // magnitude test needs: anything past ±40 is clamped.
  const exp = Number(m[4] ?? 0);
  const scale = exp - frac.length;
  // 10^(magnitude - 1) <= |value| < 10^magnitude
  const magnitude = digits.length + scale;
  if (magnitude > CLAMP_DIGITS) return { num: sign * 10n ** BigInt(CLAMP_DIGITS), den: 1n };
  if (magnitude < -CLAMP_DIGITS) return { num: sign, den: 10n ** BigInt(CLAMP_DIGITS) };
  const mantissa = sign * BigInt(digits);
  return scale >= 0 ? { num: mantissa * 10n ** BigInt(scale), den: 1n } : { num: mantissa, den: 10n ** BigInt(-scale) };
}

/**
 * A numeric literal as a double, the way PostgreSQL reads one for a float column: rounded to
 * the nearest double, and an error when it is out of the double range (it would round to
 * ±Infinity, or to zero while not zero). `NaN` and `±Infinity` are literals of their own.
 */
function parseDouble(text: string, column: string): number {
  const v = Number(text);
  if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return v;
  const nonzero = /[1-9]/.test(text.replace(/e.*$/i, ''));
  if (!Number.isFinite(v) || (v === 0 && nonzero)) {
    throw new PredicateTypeError(`number ${text.length > 40 ? `${text.slice(0, 37)}...` : text} is out of range for a double precision comparison with column '${column}'`);
  }
  return v;
}

const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));
const ceilDiv = (a: bigint, b: bigint) => -floorDiv(-a, b);

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;
const ISO_TIME = /^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/;

/** An ISO date/timestamp (no offset means UTC) or time of day, in nanoseconds. */
function isoToNanos(text: string, temporal: NonNullable<ColumnType['temporal']>, column: string): bigint {
  const bad = () => new PredicateTypeError(`'${text}' is not a valid ISO ${temporal === 'time' ? 'time (HH:MM:SS)' : 'date or timestamp'} for column '${column}'`);
  const fracNanos = (f: string | undefined) => BigInt((f ?? '').padEnd(9, '0') || '0');
  if (temporal === 'time') {
    const t = ISO_TIME.exec(text);
    if (!t) throw bad();
    const [h, mi, s] = [Number(t[1]), Number(t[2]), Number(t[3] ?? 0)];
    if (h > 23 || mi > 59 || s > 59) throw bad();
    return BigInt((h * 60 + mi) * 60 + s) * 1_000_000_000n + fracNanos(t[4]);
  }
  const m = ISO.exec(text.trim());
  if (!m) throw bad();
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  // Not Date.UTC: it maps years 0–99 to 1900–1999.
  const check = new Date(0);
  check.setUTCFullYear(y, mo - 1, d);
  check.setUTCHours(h, mi, s, 0);
  const ms = check.getTime();
  if (Number.isNaN(ms) || check.getUTCFullYear() !== y || check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) throw bad();
  let nanos = BigInt(ms) * 1_000_000n + fracNanos(m[7]);
  const tz = m[8];
  if (tz && tz.toUpperCase() !== 'Z') {
    const sign = tz[0] === '-' ? -1n : 1n;
    const digits = tz.slice(1).replace(':', '');
    const [hours, minutes] = [Number(digits.slice(0, 2)), Number(digits.slice(2))];
    // PostgreSQL's bound on a written offset: ±15:59.
    if (hours > 15 || minutes > 59) throw new PredicateTypeError(`'${text}' has time zone offset ${tz}, outside -15:59 to +15:59 (column '${column}')`);
    nanos -= sign * BigInt(hours * 60 + minutes) * 60_000_000_000n;
  }
  return nanos;
}

const NONE: Condition = { kind: 'none' };
const NOT_NULL: Condition = { kind: 'notNull' };

/** `column op literal` for a non-null literal, as a Condition on the column's values. */
export function coerceComparison(ct: ColumnType, column: string, op: CompareOp, lit: Literal): Condition {
  const mismatch = () =>
    new PredicateTypeError(`cannot compare column '${column}' (${ct.signature}) with ${describeLiteral(lit)}`);
  switch (ct.kind) {
    case 'float':
    case 'float16':
      if (lit.kind !== 'number') throw mismatch();
      return { kind: 'cmp', op, value: parseDouble(lit.text, column) };
    case 'bytes':
      if (lit.kind !== 'string') throw mismatch();
      return { kind: 'cmp', op, value: new TextEncoder().encode(lit.value) };
    case 'bool':
      if (lit.kind !== 'bool') throw mismatch();
      return { kind: 'cmp', op, value: lit.value };
    case 'int':
    case 'i64':
    case 'u64': {
      let r: Rational;
      if (lit.kind === 'number') {
        if (lit.text === 'NaN' || lit.text === 'Infinity') return beyond(op, 'above');
        if (lit.text === '-Infinity') return beyond(op, 'below');
        r = parseDecimal(lit.text);
      } else if (lit.kind === 'string' && ct.temporal) {
        r = { num: isoToNanos(lit.value, ct.temporal, column), den: ct.unitNanos! };
      } else {
        throw mismatch();
      }
      return integerCondition(ct, op, r);
    }
  }
}

/**
 * `column IN (literals)`, or `NOT IN` with `negated`, as a Condition: each literal coerced as
 * for `=` (one the column cannot hold equals no row and drops out), duplicates removed.
 */
export function coerceList(ct: ColumnType, column: string, literals: readonly Literal[], negated: boolean): Condition {
  const cmp = comparatorFor(ct.kind);
  const values: KeyValue[] = [];
  for (const lit of literals) {
    const c = coerceComparison(ct, column, '=', lit);
    if (c.kind === 'cmp') values.push(c.value);
  }
  values.sort(cmp);
  const distinct = values.filter((v, i) => i === 0 || cmp(values[i - 1]!, v) !== 0);
  if (distinct.length === 0) return negated ? NOT_NULL : NONE;
  if (distinct.length === 1) return { kind: 'cmp', op: negated ? '!=' : '=', value: distinct[0]! };
  return { kind: 'in', values: distinct, negated };
}

/** A literal above (or below) every value of the column, never equal to one. */
function beyond(op: CompareOp, where: 'above' | 'below'): Condition {
  switch (op) {
    case '=':
      return NONE;
    case '!=':
      return NOT_NULL;
    case '<':
    case '<=':
      return where === 'above' ? NOT_NULL : NONE;
    case '>':
    case '>=':
      return where === 'above' ? NONE : NOT_NULL;
  }
}

function integerCondition(ct: ColumnType, op: CompareOp, r: Rational): Condition {
  const [min, max] = ct.intRange!;
  const isInt = r.num % r.den === 0n;
  const asValue = (v: bigint): KeyValue => (ct.kind === 'int' ? Number(v) : v);
  switch (op) {
    case '=':
    case '!=': {
      const v = r.num / r.den;
      const representable = isInt && v >= min && v <= max;
      if (!representable) return op === '=' ? NONE : NOT_NULL;
      return { kind: 'cmp', op, value: asValue(v) };
    }
    case '<':
    case '<=': {
      // Largest integer that satisfies the bound.
      const hi = isInt ? r.num / r.den - (op === '<' ? 1n : 0n) : floorDiv(r.num, r.den);
      if (hi < min) return NONE;
      if (hi >= max) return NOT_NULL;
      return { kind: 'cmp', op: '<=', value: asValue(hi) };
    }
    case '>':
    case '>=': {
      const lo = isInt ? r.num / r.den + (op === '>' ? 1n : 0n) : ceilDiv(r.num, r.den);
      if (lo > max) return NONE;
      if (lo <= min) return NOT_NULL;
      return { kind: 'cmp', op: '>=', value: asValue(lo) };
    }
  }
}

function describeLiteral(lit: Literal): string {
  switch (lit.kind) {
    case 'null':
      return 'NULL';
    case 'bool':
      return `boolean ${lit.value ? 'TRUE' : 'FALSE'}`;
    case 'number':
      return `number ${lit.text}`;
    case 'string':
      return `string '${lit.value}'`;
  }
}
