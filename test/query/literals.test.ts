/**
 * Numeric and time literals, turned into conditions on a column's values (lib/query/coerce.ts),
 * against a reference that does exact decimal arithmetic with no shortcuts (BigInt rationals,
 * whatever the number of digits or the exponent):
 * - integer, 64-bit and timestamp columns compare with the literal's exact value, however many
 *   digits or how large an exponent it has;
 * - a float column compares with the literal rounded to a double, and a literal beyond the
 *   double range (it would round to ±Infinity, or to zero while not zero) is an error, as in
 *   PostgreSQL;
 * - a time zone offset beyond ±15:59 is an error.
 */
import * as arrow from 'apache-arrow';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PredicateTypeError } from '../../lib/errors.js';
import { comparatorFor, describeColumnType, type ColumnType, type KeyValue } from '../../lib/format/column-type.js';
import type { Condition } from '../../lib/indexes/kind.js';
import type { CompareOp } from '../../lib/query/ast.js';
import { coerceComparison } from '../../lib/query/coerce.js';
import { parseDecimal, type Rational } from '../support/oracle.js';

const OPS: CompareOp[] = ['=', '!=', '<', '<=', '>', '>='];

/** Whether a condition holds for a non-null value. */
function holds(ct: ColumnType, cond: Condition, v: KeyValue): boolean {
  const cmp = comparatorFor(ct.kind);
  switch (cond.kind) {
    case 'none':
    case 'isNull':
      return false;
    case 'notNull':
      return true;
    case 'in':
      return cond.values.some((x) => cmp(v, x) === 0) !== cond.negated;
    case 'cmp': {
      const c = cmp(v, cond.value);
      return { '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 }[cond.op];
    }
  }
}

/** Sign of v - r, exactly. */
const compareExact = (v: bigint, r: Rational) => Math.sign(Number(v * r.den - r.num));
const truth = (op: CompareOp, c: number) => ({ '=': c === 0, '!=': c !== 0, '<': c < 0, '<=': c <= 0, '>': c > 0, '>=': c >= 0 })[op];

/** A normalised decimal literal (see ast.ts): sign, digits, optional fraction, optional exponent. */
const decimalArb = fc
  .record({
    neg: fc.boolean(),
    whole: fc.oneof(
      fc.stringMatching(/^(0|[1-9][0-9]{0,25})$/),
      // A huge mantissa: 1 followed by hundreds or thousands of zeros.
      fc.integer({ min: 1, max: 6000 }).map((n) => `1${'0'.repeat(n)}`),
    ),
    frac: fc.oneof(fc.constant(''), fc.stringMatching(/^[0-9]{1,30}$/), fc.integer({ min: 1, max: 3000 }).map((n) => `${'0'.repeat(n)}1`)),
    exp: fc.oneof(fc.constant(undefined), fc.integer({ min: -6000, max: 6000 }), fc.integer({ min: -30, max: 30 })),
  })
  .map(({ neg, whole, frac, exp }) => `${neg ? '-' : ''}${whole}${frac ? `.${frac}` : ''}${exp === undefined ? '' : `e${exp}`}`);

describe('numeric literals against integer columns: exact, whatever the digits and exponent', () => {
  const columns: [string, arrow.DataType, bigint, bigint][] = [
    ['Int8', new arrow.Int8(), -128n, 127n],
    ['Int32', new arrow.Int32(), -(2n ** 31n), 2n ** 31n - 1n],
    ['Int64', new arrow.Int64(), -(2n ** 63n), 2n ** 63n - 1n],
    ['UInt64', new arrow.Uint64(), 0n, 2n ** 64n - 1n],
  ];

  it.each(columns)('%s: every comparison agrees with exact decimal arithmetic', (_name, type, min, max) => {
    const ct = describeColumnType('c', type);
    const asValue = (b: bigint): KeyValue => (ct.kind === 'int' ? Number(b) : b);
    const probe = fc.oneof(fc.constantFrom(min, max, 0n, 1n, -1n, min + 1n, max - 1n).filter((b) => b >= min && b <= max), fc.bigInt({ min, max }));
    fc.assert(
      fc.property(decimalArb, fc.constantFrom(...OPS), fc.array(probe, { minLength: 1, maxLength: 6 }), (text, op, values) => {
        const cond = coerceComparison(ct, 'c', op, { kind: 'number', text });
        const exact = parseDecimal(text);
        for (const v of values) expect(holds(ct, cond, asValue(v)), `${v} ${op} ${text.slice(0, 60)}…`).toBe(truth(op, compareExact(v, exact)));
      }),
      { numRuns: 400 },
    );
  });

  it('the case the old magnitude guard got wrong: 1 followed by 5000 zeros, e-4001, is 10^999', () => {
    const ct = describeColumnType('big', new arrow.Int64());
    const cond = coerceComparison(ct, 'big', '<', { kind: 'number', text: `1${'0'.repeat(5000)}e-4001` });
    // Above every int64: `big <` it holds for every value.
    expect(cond).toEqual({ kind: 'notNull' });
    const tiny = coerceComparison(ct, 'big', '>', { kind: 'number', text: `1e-4001` });
    expect(holds(ct, tiny, 0n)).toBe(false);
    expect(holds(ct, tiny, 1n)).toBe(true);
  });
});

/** 2^1024 - 2^970: from here up, a decimal rounds to Infinity; 2^-1075 and below (not zero) round to zero. */
const OVERFLOW: Rational = { num: 2n ** 1024n - 2n ** 970n, den: 1n };
const UNDERFLOW: Rational = { num: 1n, den: 2n ** 1075n };
const absRational = (r: Rational): Rational => ({ num: r.num < 0n ? -r.num : r.num, den: r.den });
const ge = (a: Rational, b: Rational) => a.num * b.den >= b.num * a.den;

describe('numeric literals against float columns: rounded to a double, an error beyond its range', () => {
  it.each([
    ['Float64', new arrow.Float64()],
    ['Float32', new arrow.Float32()],
  ])('%s: out of range exactly when exact arithmetic says so; otherwise the nearest double', (_name, type) => {
    const ct = describeColumnType('f', type);
    const near = fc.oneof(
      decimalArb,
      // Right at the edges of the double range.
      fc.constantFrom('1.7976931348623157e308', '1.7976931348623158e308', '1.797693134862315807e308', '1.7976931348623159e308', '1e309', '-1e400'),
      fc.constantFrom('5e-324', '4.9e-324', '2.5e-324', '2.4703282292062328e-324', '2.4703282292062327e-324', '2e-324', '1e-400', '0e-9999', '-0.0'),
    );
    fc.assert(
      fc.property(near, fc.constantFrom(...OPS), (text, op) => {
        const exact = absRational(parseDecimal(text));
        const outOfRange = exact.num !== 0n && (ge(exact, OVERFLOW) || ge(UNDERFLOW, exact));
        if (outOfRange) {
          expect(() => coerceComparison(ct, 'f', op, { kind: 'number', text }), text).toThrow(PredicateTypeError);
          expect(() => coerceComparison(ct, 'f', op, { kind: 'number', text }), text).toThrow(/out of range for a double precision comparison with column 'f'/);
        } else {
          expect(coerceComparison(ct, 'f', op, { kind: 'number', text })).toEqual({ kind: 'cmp', op, value: Number(text) });
        }
      }),
      { numRuns: 400 },
    );
  });

  it('NaN and ±Infinity stay literals of their own', () => {
    const ct = describeColumnType('f', new arrow.Float64());
    for (const text of ['NaN', 'Infinity', '-Infinity']) expect(coerceComparison(ct, 'f', '=', { kind: 'number', text })).toEqual({ kind: 'cmp', op: '=', value: Number(text) });
  });
});

describe('timestamp literals with a time zone offset', () => {
  const ct = describeColumnType('ts', new arrow.TimestampMicrosecond('UTC'));
  const base = BigInt(Date.UTC(2026, 0, 3, 6, 0, 0)) * 1000n;

  it('an offset within ±15:59 shifts the instant exactly; beyond it, the literal is refused naming it', () => {
    fc.assert(
      fc.property(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 99 }), fc.integer({ min: 0, max: 99 }), fc.boolean(), (sign, hh, mm, colon) => {
        const tz = `${sign}${String(hh).padStart(2, '0')}${colon ? ':' : ''}${String(mm).padStart(2, '0')}`;
        const text = `2026-01-03T06:00:00${tz}`;
        const run = () => coerceComparison(ct, 'ts', '=', { kind: 'string', value: text });
        if (hh > 15 || mm > 59) {
          expect(run, text).toThrow(PredicateTypeError);
          expect(run, text).toThrow(new RegExp(`time zone offset \\${tz}`));
        } else {
          const shift = BigInt((hh * 60 + mm) * 60) * 1_000_000n * (sign === '+' ? -1n : 1n);
          expect(run()).toEqual({ kind: 'cmp', op: '=', value: base + shift });
        }
      }),
      { numRuns: 300 },
    );
  });
});
