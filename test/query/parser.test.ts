import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { PredicateSyntaxError } from '../../lib/errors.js';
import type { CompareOp, Literal, Predicate } from '../../lib/query/ast.js';
import { parsePredicate } from '../../lib/query/parser.js';
import { printPredicate } from '../../lib/query/print.js';

// ---------------------------------------------------------------------------------------------
// AST shorthands

const num = (text: string): Literal => ({ kind: 'number', text });
const str = (value: string): Literal => ({ kind: 'string', value });
const NULL: Literal = { kind: 'null' };
const TRUE: Literal = { kind: 'bool', value: true };
const FALSE: Literal = { kind: 'bool', value: false };
const cmp = (column: string, op: CompareOp, value: Literal): Predicate => ({ kind: 'compare', column, op, value });
const and = (left: Predicate, right: Predicate): Predicate => ({ kind: 'and', left, right });
const or = (left: Predicate, right: Predicate): Predicate => ({ kind: 'or', left, right });
const not = (operand: Predicate): Predicate => ({ kind: 'not', operand });

/** Asserts `text` fails with exactly this message (without the suffix) at exactly this offset. */
function expectSyntaxError(text: string, message: string, position: number): void {
  let caught: unknown;
  try {
    parsePredicate(text);
  } catch (e) {
    caught = e;
  }
  expect(caught, `parsing ${JSON.stringify(text)} should fail`).toBeInstanceOf(PredicateSyntaxError);
  const err = caught as PredicateSyntaxError;
  expect(err.message).toBe(`${message} at position ${position}`);
  expect(err.position).toBe(position);
  expect(err.name).toBe('PredicateSyntaxError');
}

// ---------------------------------------------------------------------------------------------

describe('parsePredicate: comparisons', () => {
  it.each([
    ['=', '='],
    ['!=', '!='],
    ['<>', '!='],
    ['<', '<'],
    ['<=', '<='],
    ['>', '>'],
    ['>=', '>='],
  ] as const)('reads column %s literal as op %s', (written, op) => {
    expect(parsePredicate(`price ${written} 10`)).toEqual(cmp('price', op, num('10')));
  });

  it('needs no whitespace around operators and parentheses', () => {
    expect(parsePredicate('(a>=1)AND(b<>\'x\')')).toEqual(and(cmp('a', '>=', num('1')), cmp('b', '!=', str('x'))));
  });

  it('treats any unicode whitespace (tabs, newlines, NBSP) as a separator', () => {
    expect(parsePredicate('\t a\n=\r\n1\u00a0')).toEqual(cmp('a', '=', num('1')));
  });

  it.each([
    ['5 = x', '='],
    ['5 != x', '!='],
    ['5 <> x', '!='],
    ['5 < x', '>'],
    ['5 <= x', '>='],
    ['5 > x', '<'],
    ['5 >= x', '<='],
  ] as const)('moves a literal on the left to the right and flips the operator: %s', (text, op) => {
    expect(parsePredicate(text)).toEqual(cmp('x', op, num('5')));
  });

  it('flips literal-first comparisons for every literal kind and quoted columns', () => {
    expect(parsePredicate(`'a' < "my col"`)).toEqual(cmp('my col', '>', str('a')));
    expect(parsePredicate('NULL = x')).toEqual(cmp('x', '=', NULL));
    expect(parsePredicate('true != x')).toEqual(cmp('x', '!=', TRUE));
    expect(parsePredicate('-Infinity <= x')).toEqual(cmp('x', '>=', num('-Infinity')));
  });

  it('keeps `col = NULL` as a comparison with a null literal rather than IS NULL', () => {
    expect(parsePredicate('x = NULL')).toEqual(cmp('x', '=', NULL));
  });
});

describe('parsePredicate: BETWEEN, IN, IS NULL', () => {
  it('reads BETWEEN and NOT BETWEEN with both bounds', () => {
    expect(parsePredicate('x BETWEEN 1 AND 10')).toEqual({
      kind: 'between', column: 'x', low: num('1'), high: num('10'), negated: false,
    });
    expect(parsePredicate(`d NOT BETWEEN '2024-01-01' AND '2024-12-31'`)).toEqual({
      kind: 'between', column: 'd', low: str('2024-01-01'), high: str('2024-12-31'), negated: true,
    });
  });

  it('does not confuse the AND inside BETWEEN with a conjunction', () => {
    expect(parsePredicate('x BETWEEN 1 AND 2 AND y = 3')).toEqual(
      and({ kind: 'between', column: 'x', low: num('1'), high: num('2'), negated: false }, cmp('y', '=', num('3'))),
    );
  });

  it('reads IN and NOT IN lists of mixed literals, including a single element', () => {
    expect(parsePredicate(`r IN ('eu', 1, NULL, FALSE, NaN)`)).toEqual({
      kind: 'in', column: 'r', values: [str('eu'), num('1'), NULL, FALSE, num('NaN')], negated: false,
    });
    expect(parsePredicate('r NOT IN (7)')).toEqual({ kind: 'in', column: 'r', values: [num('7')], negated: true });
  });

  it('reads IS NULL and IS NOT NULL', () => {
    expect(parsePredicate('x IS NULL')).toEqual({ kind: 'isNull', column: 'x', negated: false });
    expect(parsePredicate('x IS NOT NULL')).toEqual({ kind: 'isNull', column: 'x', negated: true });
  });
});

describe('parsePredicate: literals', () => {
  it.each([
    ['1', '1'],
    ['-2.50', '-2.50'],
    ['+3', '3'],
    ['.5', '0.5'],
    ['-.5', '-0.5'],
    ['+.25', '0.25'],
    ['007', '7'],
    ['-007.10', '-7.10'],
    ['000', '0'],
    ['0.000', '0.000'],
    ['-0', '-0'],
    ['1e10', '1e10'],
    ['1.5E-3', '1.5e-3'],
    ['2E+07', '2e+07'],
    ['9223372036854775807', '9223372036854775807'],
    ['-9223372036854775808', '-9223372036854775808'],
    ['18446744073709551615', '18446744073709551615'],
  ])('normalises number %s to the text %s', (written, text) => {
    expect(parsePredicate(`x = ${written}`)).toEqual(cmp('x', '=', num(text)));
  });

  it.each([
    ['NaN', 'NaN'],
    ['nan', 'NaN'],
    ['Infinity', 'Infinity'],
    ['INFINITY', 'Infinity'],
    ['+Infinity', 'Infinity'],
    ['-Infinity', '-Infinity'],
    ['-infinity', '-Infinity'],
  ])('reads the special number %s as the text %s', (written, text) => {
    expect(parsePredicate(`x = ${written}`)).toEqual(cmp('x', '=', num(text)));
  });

  it('reads TRUE, FALSE and NULL in any case', () => {
    expect(parsePredicate('x = tRuE')).toEqual(cmp('x', '=', TRUE));
    expect(parsePredicate('x = false')).toEqual(cmp('x', '=', FALSE));
    expect(parsePredicate('x = Null')).toEqual(cmp('x', '=', NULL));
  });

  it(`unescapes '' inside strings and keeps everything else verbatim`, () => {
    expect(parsePredicate(`x = 'it''s'`)).toEqual(cmp('x', '=', str("it's")));
    expect(parsePredicate(`x = ''`)).toEqual(cmp('x', '=', str('')));
    expect(parsePredicate(`x = ''''`)).toEqual(cmp('x', '=', str("'")));
    expect(parsePredicate(`x = 'a "b" \\n AND OR ('`)).toEqual(cmp('x', '=', str('a "b" \\n AND OR (')));
    expect(parsePredicate(`x = 'line1\nline2'`)).toEqual(cmp('x', '=', str('line1\nline2')));
  });

  it('keeps unicode in strings, including characters above U+FFFF', () => {
    expect(parsePredicate(`x = 'héllo 世界 😀 𝄞'`)).toEqual(cmp('x', '=', str('héllo 世界 😀 𝄞')));
  });
});

describe('parsePredicate: column names', () => {
  it('reads bare identifiers with underscores and digits, preserving case', () => {
    expect(parsePredicate('_Col_9 = 1')).toEqual(cmp('_Col_9', '=', num('1')));
  });

  it('reads identifiers that merely start with a keyword as columns', () => {
    expect(parsePredicate('order_id = 1 AND notes IS NULL AND island = 2 AND nan_count = 3')).toEqual(
      and(
        and(and(cmp('order_id', '=', num('1')), { kind: 'isNull', column: 'notes', negated: false }), cmp('island', '=', num('2'))),
        cmp('nan_count', '=', num('3')),
      ),
    );
  });

  it(`reads double-quoted names with "" as an escaped quote`, () => {
    expect(parsePredicate('"my ""odd"" col" = 1')).toEqual(cmp('my "odd" col', '=', num('1')));
  });

  it('lets a quoted name be a keyword or contain operators and quotes', () => {
    expect(parsePredicate(`"AND" = 1 OR "x = 'y'" IS NULL`)).toEqual(
      or(cmp('AND', '=', num('1')), { kind: 'isNull', column: "x = 'y'", negated: false }),
    );
  });

  it('keeps unicode in quoted names, including characters above U+FFFF', () => {
    expect(parsePredicate('"𝒳 größe 😀" >= 1')).toEqual(cmp('𝒳 größe 😀', '>=', num('1')));
  });
});

describe('parsePredicate: precedence and grouping', () => {
  it('binds NOT tighter than AND and AND tighter than OR', () => {
    expect(parsePredicate('a = 1 OR b = 2 AND NOT c = 3')).toEqual(
      or(cmp('a', '=', num('1')), and(cmp('b', '=', num('2')), not(cmp('c', '=', num('3'))))),
    );
  });

  it('applies NOT to the next predicate only, not the whole conjunction', () => {
    expect(parsePredicate('NOT a = 1 AND b = 2')).toEqual(and(not(cmp('a', '=', num('1'))), cmp('b', '=', num('2'))));
  });

  it('lets parentheses override precedence', () => {
    expect(parsePredicate('(a = 1 OR b = 2) AND NOT (c = 3 OR d = 4)')).toEqual(
      and(or(cmp('a', '=', num('1')), cmp('b', '=', num('2'))), not(or(cmp('c', '=', num('3')), cmp('d', '=', num('4'))))),
    );
  });

  it('associates chains of AND and of OR to the left', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((col) => cmp(col, '=', num('1'))) as [Predicate, Predicate, Predicate];
    expect(parsePredicate('a = 1 OR b = 1 OR c = 1')).toEqual(or(or(a, b), c));
    expect(parsePredicate('a = 1 AND b = 1 AND c = 1')).toEqual(and(and(a, b), c));
  });

  it('allows stacked NOT and redundant parentheses', () => {
    expect(parsePredicate('NOT NOT ((((x = 1))))')).toEqual(not(not(cmp('x', '=', num('1')))));
  });

  it('reads every keyword case-insensitively', () => {
    expect(parsePredicate('x between 1 AnD 2 or Y iS nOt NuLl and not z In (1) OR w not BETWEEN 0 and 1')).toEqual(
      or(
        or(
          { kind: 'between', column: 'x', low: num('1'), high: num('2'), negated: false },
          and({ kind: 'isNull', column: 'Y', negated: true }, not({ kind: 'in', column: 'z', values: [num('1')], negated: false })),
        ),
        { kind: 'between', column: 'w', low: num('0'), high: num('1'), negated: true },
      ),
    );
  });

  it('parses a flat chain of 50 000 conjuncts without exhausting the stack', () => {
    const text = Array.from({ length: 50_000 }, (_, i) => `c${i} = ${i}`).join(' AND ');
    const printed = printPredicate(parsePredicate(text));
    expect(printed.startsWith('"c0" = 0 AND "c1" = 1 AND ')).toBe(true);
    expect(printPredicate(parsePredicate(printed))).toBe(printed);
  });

  it('accepts 256 levels of nesting and rejects the 257th with a syntax error, not a stack overflow', () => {
    expect(parsePredicate(`${'('.repeat(256)}x = 1${')'.repeat(256)}`)).toEqual(cmp('x', '=', num('1')));
    expect(parsePredicate(`${'NOT '.repeat(256)}x = 1`).kind).toBe('not');
    expectSyntaxError(`${'('.repeat(100_000)}x = 1${')'.repeat(100_000)}`, 'predicate nested more than 256 levels deep', 256);
    expectSyntaxError(`${'NOT '.repeat(100_000)}x = 1`, 'predicate nested more than 256 levels deep', 256 * 4);
  });
});

describe('parsePredicate: errors name the fault and its exact position', () => {
  it.each([
    // the examples from the brief
    ['(price = )', "expected a literal after '=' but found ')'", 9],
    ["x = 'abc", 'unterminated string starting', 4],
    ['price >= 10 FOO', "unexpected 'FOO'", 12],
    ['', 'empty predicate', 0],
    ['(a = 1))', "unbalanced ')'", 7],
    // empty input and grouping
    ['   \n\t', 'empty predicate', 0],
    ['()', "expected a predicate after '(' but found ')'", 1],
    [') x = 1', "expected a predicate but found ')'", 0],
    ['(a = 1', "unbalanced '('", 0],
    ['((a = 1) OR (b = 2)', "unbalanced '('", 0],
    ['(a = 1 b = 2)', "expected AND, OR or ')' after '1' but found 'b'", 7],
    ['a = 1 AND', "expected a predicate after 'AND' but found end of input", 9],
    ['a = 1 OR OR b = 1', "expected a predicate after 'OR' but found 'OR'", 9],
    ['NOT', "expected a predicate after 'NOT' but found end of input", 3],
    ['AND x = 1', "expected a predicate but found 'AND'", 0],
    ['a = 1 x = 2', "unexpected 'x'", 6],
    ["a = 1 'str'", "unexpected ''str''", 6],
    // comparisons
    ['x = ', "expected a literal after '=' but found end of input", 4],
    ['x <> y', "expected a literal after '<>' but found 'y'", 5],
    ['x = "y"', `expected a literal after '=' but found '"y"'`, 4],
    ['x == 1', "expected a literal after '=' but found '='", 3],
    ['x 5', "expected a comparison operator, BETWEEN, IN or IS after 'x' but found '5'", 2],
    ['x', "expected a comparison operator, BETWEEN, IN or IS after 'x' but found end of input", 1],
    ['5 = 6', "expected a column name after '=' but found '6'", 4],
    ['5 = AND', "expected a column name after '=' but found 'AND'", 4],
    ['5 x', "expected a comparison operator after '5' but found 'x'", 2],
    ['5 BETWEEN 1 AND 2', "expected a comparison operator after '5' but found 'BETWEEN'", 2],
    // BETWEEN / IN / IS
    ['x NOT 5', "expected BETWEEN or IN after 'NOT' but found '5'", 6],
    ['x BETWEEN AND 2', "expected a literal after 'BETWEEN' but found 'AND'", 10],
    ['x BETWEEN 1 OR 2', "expected AND after '1' but found 'OR'", 12],
    ['x BETWEEN 1 AND', "expected a literal after 'AND' but found end of input", 15],
    ['x IN 1', "expected '(' after 'IN' but found '1'", 5],
    ['x IN ()', "expected at least one literal after '(' but found ')'", 6],
    ['x IN (1,)', "expected a literal after ',' but found ')'", 8],
    ['x IN (1 2)', "expected ',' or ')' after '1' but found '2'", 8],
    ['x IN (1', "expected ',' or ')' after '1' but found end of input", 7],
    ['x IN (y)', "expected a literal after '(' but found 'y'", 6],
    ['x IS 5', "expected NULL or NOT NULL after 'IS' but found '5'", 5],
    ['x IS NOT TRUE', "expected NULL after 'NOT' but found 'TRUE'", 9],
    // lexical errors
    ['x = "', 'unterminated quoted column name starting', 4],
    ['"abc = 1', 'unterminated quoted column name starting', 0],
    ['"" = 1', 'empty quoted column name', 0],
    ["x = 'it''s", 'unterminated string starting', 4],
    ['x = 1.', "malformed number '1.'", 4],
    ['x = 1.2.3', "malformed number '1.2.3'", 4],
    ['x = 1e', "malformed number '1e'", 4],
    ['x = 1e+', "malformed number '1e'", 4],
    ['x = 12abc', "malformed number '12abc'", 4],
    ['x = -abc', "'-' must be followed directly by a number or Infinity", 4],
    ['x = - 1', "'-' must be followed directly by a number or Infinity", 4],
    ['x = -NaN', "'-' must be followed directly by a number or Infinity", 4],
    ['x = +', "'+' must be followed directly by a number or Infinity", 4],
    ['x = .', "unexpected character '.'", 4],
    ['x ! 1', "unexpected character '!' (did you mean '!='?)", 2],
    ['x = 1 && y = 2', "unexpected character '&'", 6],
    ['a.b = 1', "unexpected character '.'", 1],
    ['x = 1 ;', "unexpected character ';'", 6],
    ['x = \u0000', 'unexpected character U+0000', 4],
    ['café = 1', "unexpected character 'é'", 3],
  ])('%j fails with "%s" at position %i', (text, message, position) => {
    expectSyntaxError(text, message, position);
  });

  it('reports the first fault in reading order, before any later lexical error', () => {
    expectSyntaxError("x = ) 'unterminated", "expected a literal after '=' but found ')'", 4);
  });

  it('counts positions in UTF-16 code units, so astral characters count as two', () => {
    // "😀" is 4 code units with its quotes, so '=' is at 5 and ')' at 7.
    expectSyntaxError('"😀" = )', "expected a literal after '=' but found ')'", 7);
    expectSyntaxError("x = '😀' 😀", "unexpected character '😀'", 9);
  });

  it('truncates very long offending tokens in the message', () => {
    const long = 'a'.repeat(100);
    expectSyntaxError(`x = 1 ${long}`, `unexpected '${'a'.repeat(39)}…'`, 6);
  });
});

// ---------------------------------------------------------------------------------------------

describe('printPredicate', () => {
  it('quotes every column and escapes quotes in columns and strings', () => {
    expect(printPredicate(cmp('say "hi"', '!=', str("it's")))).toBe(`"say ""hi""" != 'it''s'`);
  });

  it('prints every literal kind and predicate form in parser syntax', () => {
    const p = and(
      and(
        { kind: 'between', column: 'b', low: num('-1.5e-3'), high: num('Infinity'), negated: true },
        { kind: 'in', column: 'i', values: [NULL, TRUE, FALSE, num('NaN'), num('-Infinity'), str('')], negated: false },
      ),
      { kind: 'isNull', column: 'n', negated: true },
    );
    expect(printPredicate(p)).toBe(
      `"b" NOT BETWEEN -1.5e-3 AND Infinity AND "i" IN (NULL, TRUE, FALSE, NaN, -Infinity, '') AND "n" IS NOT NULL`,
    );
    expect(parsePredicate(printPredicate(p))).toEqual(p);
  });

  it('parenthesises nested AND/OR so mixed precedence is explicit', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((col) => cmp(col, '=', num('1'))) as [Predicate, Predicate, Predicate];
    expect(printPredicate(or(a, and(b, not(c))))).toBe('"a" = 1 OR ("b" = 1 AND NOT "c" = 1)');
    expect(printPredicate(not(or(a, b)))).toBe('NOT ("a" = 1 OR "b" = 1)');
    expect(printPredicate(not(not(a)))).toBe('NOT NOT "a" = 1');
  });

  it('prints left-nested chains flat but keeps right-nested ones grouped, so both round-trip', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((col) => cmp(col, '=', num('1'))) as [Predicate, Predicate, Predicate];
    expect(printPredicate(or(or(a, b), c))).toBe('"a" = 1 OR "b" = 1 OR "c" = 1');
    expect(printPredicate(or(a, or(b, c)))).toBe('"a" = 1 OR ("b" = 1 OR "c" = 1)');
    expect(parsePredicate(printPredicate(or(a, or(b, c))))).toEqual(or(a, or(b, c)));
    expect(parsePredicate(printPredicate(and(and(a, b), c)))).toEqual(and(and(a, b), c));
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const bareName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
const columnArb = fc.oneof(
  bareName,
  fc.constantFrom('AND', 'or', 'Not', 'NULL', 'in', 'is', 'NaN', 'Infinity', 'between', 'true'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
  fc.string({ unit: fc.constantFrom('"', "'", ' ', '(', ')', '=', 'a', '😀'), minLength: 1, maxLength: 8 }),
);

/** Number texts already in the parser's normalised form. */
const numberText = fc.oneof(
  { weight: 1, arbitrary: fc.constantFrom('NaN', 'Infinity', '-Infinity', '0', '-0') },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom('', '-'),
        fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,20}$/)),
        fc.option(fc.stringMatching(/^[0-9]{1,6}$/), { nil: undefined }),
        fc.option(fc.stringMatching(/^[+-]?[0-9]{1,3}$/), { nil: undefined }),
      )
      .map(([sign, int, frac, exp]) => `${sign}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `e${exp}`}`),
  },
);

const literalArb: fc.Arbitrary<Literal> = fc.oneof(
  fc.constant<Literal>({ kind: 'null' }),
  fc.boolean().map((value): Literal => ({ kind: 'bool', value })),
  numberText.map((text): Literal => ({ kind: 'number', text })),
  fc.string({ unit: 'binary', maxLength: 12 }).map((value): Literal => ({ kind: 'string', value })),
  // Lone surrogates are not valid unicode but are valid JS strings: they must survive too.
  fc
    .string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 6 })
    .map((value): Literal => ({ kind: 'string', value })),
  fc.string({ unit: fc.constantFrom("'", "''", '"', ' '), maxLength: 6 }).map((value): Literal => ({ kind: 'string', value })),
);

const opArb = fc.constantFrom<CompareOp>('=', '!=', '<', '<=', '>', '>=');

const { predicate: predicateArb } = fc.letrec<{ predicate: Predicate; leaf: Predicate }>((tie) => ({
  leaf: fc.oneof(
    fc.record({ kind: fc.constant('compare' as const), column: columnArb, op: opArb, value: literalArb }),
    fc.record({
      kind: fc.constant('between' as const), column: columnArb, low: literalArb, high: literalArb, negated: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant('in' as const), column: columnArb, values: fc.array(literalArb, { minLength: 1, maxLength: 4 }), negated: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('isNull' as const), column: columnArb, negated: fc.boolean() }),
  ),
  predicate: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('leaf'),
    fc.record({ kind: fc.constant('and' as const), left: tie('predicate'), right: tie('predicate') }),
    fc.record({ kind: fc.constant('or' as const), left: tie('predicate'), right: tie('predicate') }),
    fc.record({ kind: fc.constant('not' as const), operand: tie('predicate') }),
  ),
}));

/**
 * Parses `text`; if that fails, checks it failed the documented way. If it succeeds, checks that
 * printing the result and parsing again gives the same AST. Returns whether it parsed.
 */
function parsesOrFailsCleanly(text: string): boolean {
  let ast: Predicate;
  try {
    ast = parsePredicate(text);
  } catch (e) {
    if (!(e instanceof PredicateSyntaxError)) throw e;
    expect(Number.isInteger(e.position)).toBe(true);
    expect(e.position).toBeGreaterThanOrEqual(0);
    expect(e.position).toBeLessThanOrEqual(text.length);
    expect(e.message.endsWith(` at position ${e.position}`)).toBe(true);
    return false;
  }
  expect(parsePredicate(printPredicate(ast))).toEqual(ast);
  return true;
}

const TOKENS = [
  '(', ')', ',', '=', '!=', '<>', '<', '<=', '>', '>=', '!', '==',
  'AND', 'and', 'OR', 'Or', 'NOT', 'not', 'BETWEEN', 'IN', 'in', 'IS', 'is', 'NULL', 'TRUE', 'false', 'NaN', 'nan',
  'Infinity', '-Infinity', '+infinity', 'x', 'col_1', 'price', '"q"', '"a""b"', '""', '"😀"', '"',
  "'s'", "'it''s'", "''", "'", "'😀'", '1', '-2.50', '.5', '1e10', '1.5E-3', '+7', '007', '-0', '1.', '1e', '-', '+', '.',
  '😀', '\uD800', ';', ' ', '\t', '\n',
];
const tokenSoup = fc
  .tuple(fc.array(fc.constantFrom(...TOKENS), { maxLength: 16 }), fc.constantFrom(' ', ''))
  .map(([tokens, sep]) => tokens.join(sep));

/** Valid predicate text with one random edit: most results are near-misses of the grammar. */
const mutatedPredicate = fc
  .tuple(predicateArb.map(printPredicate), fc.nat(), fc.nat(), fc.constantFrom(...TOKENS), fc.nat(3))
  .map(([text, i, j, token, edit]) => {
    const at = i % (text.length + 1);
    const to = at + (j % 6);
    switch (edit) {
      case 0:
        return text.slice(0, at);
      case 1:
        return text.slice(0, at) + text.slice(to);
      case 2:
        return `${text.slice(0, at)} ${token} ${text.slice(at)}`;
      default:
        return text.toLowerCase();
    }
  });

describe('properties', () => {
  it('print then parse gives back every valid AST unchanged', () => {
    fc.assert(
      fc.property(predicateArb, (p) => {
        expect(parsePredicate(printPredicate(p))).toEqual(p);
      }),
      { numRuns: 1000 },
    );
  });

  it('printing is stable: parse(print(p)) prints to the same text', () => {
    fc.assert(
      fc.property(predicateArb, (p) => {
        const text = printPredicate(p);
        expect(printPredicate(parsePredicate(text))).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['fc.string()', fc.string({ maxLength: 40 })],
    ['full unicode strings', fc.string({ unit: 'binary', maxLength: 40 })],
    ['grapheme strings', fc.string({ unit: 'grapheme', maxLength: 40 })],
    ['strings with lone surrogates', fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 })],
  ] as const)('any input from %s either parses or throws PredicateSyntaxError with an in-range position', (_name, arb) => {
    fc.assert(fc.property(arb, (text) => void parsesOrFailsCleanly(text)), { numRuns: 1000 });
  });

  it('grammar-ish token soup and mutated valid predicates either parse (and round-trip) or throw PredicateSyntaxError', () => {
    let parsed = 0;
    let failed = 0;
    fc.assert(
      fc.property(fc.oneof(tokenSoup, mutatedPredicate), (text) => {
        if (parsesOrFailsCleanly(text)) parsed++;
        else failed++;
      }),
      { numRuns: 3000 },
    );
    // Guards against a generator drift that would make one branch of the check vacuous.
    expect(parsed).toBeGreaterThan(100);
    expect(failed).toBeGreaterThan(100);
  });
});
