import { PredicateSyntaxError } from '../errors.js';
import type { CompareOp, Literal, Predicate } from './ast.js';

/*
 * Positions are UTF-16 offsets (JavaScript string indices), so `text.slice(position)` shows the
 * fault and 0 <= position <= text.length always holds, astral characters included.
 *
 * The lexer is pulled one token at a time by the parser rather than run up front, so the error
 * reported is always the first one in reading order (`x = ) 'abc` blames the `)`, not the
 * unterminated string after it).
 */

type TokenKind = 'eof' | 'word' | 'quoted' | 'string' | 'number' | 'op' | '(' | ')' | ',';

interface Token {
  kind: TokenKind;
  /** Offset of the first character. */
  pos: number;
  /** Offset just past the last character. */
  end: number;
  /**
   * word: as written; quoted: the unescaped column name; string: the unescaped value;
   * number: the normalised text; op: the operator (`<>` already folded into `!=`).
   */
  value: string;
}

const KEYWORDS = new Set([
  'AND', 'OR', 'NOT', 'BETWEEN', 'IN', 'IS', 'NULL', 'TRUE', 'FALSE', 'NAN', 'INFINITY',
]);

/*
 * Every `(` and every `NOT` costs a few stack frames; without a cap a hostile input such as
 * 100 000 `(` would end in a RangeError instead of a PredicateSyntaxError.
 */
const MAX_DEPTH = 256;

const WHITESPACE = /\s/y;
const WORD = /[A-Za-z_][A-Za-z0-9_]*/y;
// Deliberately loose: the strict shape is checked after the match, so `1.` and `1e` get one
// clear "malformed number" error instead of being split into two confusing tokens.
const NUMBER = /[+-]?(?:(\d+)(?:\.(\d+))?|\.(\d+))(?:[eE]([+-]?\d+))?/y;
const NUMBER_TAIL = /[A-Za-z0-9_.]*/y;
const SIGNED_INFINITY = /[+-][A-Za-z_][A-Za-z0-9_]*/y;

function matchAt(re: RegExp, text: string, pos: number): RegExpExecArray | null {
  re.lastIndex = pos;
  return re.exec(text);
}

function fail(message: string, position: number): never {
  throw new PredicateSyntaxError(message, position);
}

/** Short, printable rendering of some source text for an error message. */
function quoteSource(raw: string): string {
  const limit = 40;
  if (raw.length <= limit) return `'${raw}'`;
  let cut = raw.slice(0, limit - 1);
  // Do not leave half of a surrogate pair dangling at the cut.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return `'${cut}…'`;
}

function describeChar(text: string, pos: number): string {
  const ch = String.fromCodePoint(text.codePointAt(pos)!);
  if (/\p{C}/u.test(ch)) {
    return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return `'${ch}'`;
}

/** Reads a `q`-delimited run where `qq` stands for one `q`; returns the content and end offset. */
function readQuoted(text: string, start: number, q: string): { content: string; end: number } | null {
  let content = '';
  let from = start + 1;
  for (;;) {
    const close = text.indexOf(q, from);
    if (close < 0) return null;
    content += text.slice(from, close);
    if (text[close + 1] !== q) return { content, end: close + 1 };
    content += q;
    from = close + 2;
  }
}

function normaliseNumber(sign: string, int: string | undefined, frac: string | undefined, exp: string | undefined): string {
  const intPart = int === undefined ? '0' : int.replace(/^0+(?=\d)/, '');
  return (
    (sign === '-' ? '-' : '') +
    intPart +
    (frac === undefined ? '' : `.${frac}`) +
    (exp === undefined ? '' : `e${exp}`)
  );
}

function lexNumber(text: string, pos: number): Token | null {
  const m = matchAt(NUMBER, text, pos);
  if (m) {
    const end = pos + m[0].length;
    const tail = matchAt(NUMBER_TAIL, text, end)![0];
    if (tail.length > 0) fail(`malformed number ${quoteSource(m[0] + tail)}`, pos);
    const sign = m[0][0]!;
    return { kind: 'number', pos, end, value: normaliseNumber(sign, m[1], m[2] ?? m[3], m[4]) };
  }
  const ch = text[pos];
  if (ch !== '+' && ch !== '-') return null;
  const word = matchAt(SIGNED_INFINITY, text, pos);
  if (word && word[0].slice(1).toUpperCase() === 'INFINITY') {
    return { kind: 'number', pos, end: pos + word[0].length, value: ch === '-' ? '-Infinity' : 'Infinity' };
  }
  return fail(`'${ch}' must be followed directly by a number or Infinity`, pos);
}

/** The token starting at the first non-blank character at or after `pos`. */
function lexAt(text: string, pos: number): Token {
  while (pos < text.length && matchAt(WHITESPACE, text, pos)) pos++;
  if (pos >= text.length) return { kind: 'eof', pos: text.length, end: text.length, value: '' };

  const ch = text[pos]!;
  const next = text[pos + 1];
  switch (ch) {
    case '(':
    case ')':
    case ',':
      return { kind: ch, pos, end: pos + 1, value: ch };
    case '=':
      return { kind: 'op', pos, end: pos + 1, value: '=' };
    case '!':
      if (next === '=') return { kind: 'op', pos, end: pos + 2, value: '!=' };
      return fail(`unexpected character '!' (did you mean '!='?)`, pos);
    case '<':
      if (next === '=') return { kind: 'op', pos, end: pos + 2, value: '<=' };
      if (next === '>') return { kind: 'op', pos, end: pos + 2, value: '!=' };
      return { kind: 'op', pos, end: pos + 1, value: '<' };
    case '>':
      if (next === '=') return { kind: 'op', pos, end: pos + 2, value: '>=' };
      return { kind: 'op', pos, end: pos + 1, value: '>' };
    case "'": {
      const q = readQuoted(text, pos, "'");
      if (!q) return fail('unterminated string starting', pos);
      return { kind: 'string', pos, end: q.end, value: q.content };
    }
    case '"': {
      const q = readQuoted(text, pos, '"');
      if (!q) return fail('unterminated quoted column name starting', pos);
      if (q.content === '') return fail('empty quoted column name', pos);
      return { kind: 'quoted', pos, end: q.end, value: q.content };
    }
  }
  const number = lexNumber(text, pos);
  if (number) return number;
  const word = matchAt(WORD, text, pos);
  if (word) return { kind: 'word', pos, end: pos + word[0].length, value: word[0] };
  return fail(`unexpected character ${describeChar(text, pos)}`, pos);
}

const FLIPPED: Record<CompareOp, CompareOp> = {
  '=': '=',
  '!=': '!=',
  '<': '>',
  '<=': '>=',
  '>': '<',
  '>=': '<=',
};

class Parser {
  private tok: Token;
  private prev: Token | undefined;
  private depth = 0;

  constructor(private readonly text: string) {
    this.tok = lexAt(text, 0);
  }

  parse(): Predicate {
    if (this.at('eof')) fail('empty predicate', 0);
    const result = this.parseOr();
    if (this.at(')')) fail(`unbalanced ')'`, this.tok.pos);
    if (!this.at('eof')) fail(`unexpected ${this.describe(this.tok)}`, this.tok.pos);
    return result;
  }

  private advance(): Token {
    const t = this.tok;
    this.prev = t;
    this.tok = lexAt(this.text, t.end);
    return t;
  }

  // A method rather than `this.tok.kind === …` inline: TypeScript would keep the narrowing of
  // `this.tok` across `advance()` and reject the next check as impossible.
  private at(kind: TokenKind): boolean {
    return this.tok.kind === kind;
  }

  private isKeyword(word: string, tok: Token = this.tok): boolean {
    return tok.kind === 'word' && tok.value.toUpperCase() === word;
  }

  private describe(tok: Token): string {
    if (tok.kind === 'eof') return 'end of input';
    return quoteSource(this.text.slice(tok.pos, tok.end));
  }

  /** Throws "expected <what> after '<previous token>' but found <current token>". */
  private expected(what: string): never {
    const after = this.prev ? ` after ${this.describe(this.prev)}` : '';
    return fail(`expected ${what}${after} but found ${this.describe(this.tok)}`, this.tok.pos);
  }

  private nest<T>(at: Token, body: () => T): T {
    if (++this.depth > MAX_DEPTH) fail(`predicate nested more than ${MAX_DEPTH} levels deep`, at.pos);
    try {
      return body();
    } finally {
      this.depth--;
    }
  }

  // Both chains are built left-associatively in a loop, so `a OR b OR c` is or(or(a, b), c)
  // and a long flat chain costs no stack depth.
  private parseOr(): Predicate {
    let left = this.parseAnd();
    while (this.isKeyword('OR')) {
      this.advance();
      left = { kind: 'or', left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): Predicate {
    let left = this.parseNot();
    while (this.isKeyword('AND')) {
      this.advance();
      left = { kind: 'and', left, right: this.parseNot() };
    }
    return left;
  }

  private parseNot(): Predicate {
    if (!this.isKeyword('NOT')) return this.parsePrimary();
    const not = this.advance();
    return this.nest(not, () => ({ kind: 'not', operand: this.parseNot() }));
  }

  private parsePrimary(): Predicate {
    const tok = this.tok;
    if (tok.kind === '(') {
      this.advance();
      return this.nest(tok, () => {
        const inner = this.parseOr();
        if (this.at(')')) {
          this.advance();
          return inner;
        }
        if (this.at('eof')) fail(`unbalanced '('`, tok.pos);
        return this.expected(`AND, OR or ')'`);
      });
    }
    const column = this.columnName();
    if (column !== undefined) {
      this.advance();
      return this.parseColumnPredicate(column);
    }
    const literal = this.literal();
    if (literal !== undefined) {
      this.advance();
      if (!this.at('op')) this.expected('a comparison operator');
      const op = this.advance().value as CompareOp;
      const col = this.columnName();
      if (col === undefined) this.expected('a column name');
      this.advance();
      return { kind: 'compare', column: col, op: FLIPPED[op], value: literal };
    }
    return this.expected('a predicate');
  }

  private parseColumnPredicate(column: string): Predicate {
    if (this.at('op')) {
      const op = this.advance().value as CompareOp;
      return { kind: 'compare', column, op, value: this.requireLiteral() };
    }
    if (this.isKeyword('IS')) {
      this.advance();
      const negated = this.isKeyword('NOT');
      if (negated) this.advance();
      if (!this.isKeyword('NULL')) this.expected(negated ? 'NULL' : 'NULL or NOT NULL');
      this.advance();
      return { kind: 'isNull', column, negated };
    }
    const negated = this.isKeyword('NOT');
    if (negated) this.advance();
    if (this.isKeyword('BETWEEN')) {
      this.advance();
      const low = this.requireLiteral();
      if (!this.isKeyword('AND')) this.expected('AND');
      this.advance();
      const high = this.requireLiteral();
      return { kind: 'between', column, low, high, negated };
    }
    if (this.isKeyword('IN')) {
      this.advance();
      if (!this.at('(')) this.expected(`'('`);
      this.advance();
      if (this.at(')')) this.expected('at least one literal');
      const values = [this.requireLiteral()];
      while (this.at(',')) {
        this.advance();
        values.push(this.requireLiteral());
      }
      if (!this.at(')')) this.expected(`',' or ')'`);
      this.advance();
      return { kind: 'in', column, values, negated };
    }
    return this.expected(negated ? 'BETWEEN or IN' : 'a comparison operator, BETWEEN, IN or IS');
  }

  /** The current token as a column name, without consuming it. */
  private columnName(): string | undefined {
    const tok = this.tok;
    if (tok.kind === 'quoted') return tok.value;
    if (tok.kind === 'word' && !KEYWORDS.has(tok.value.toUpperCase())) return tok.value;
    return undefined;
  }

  /** The current token as a literal, without consuming it. */
  private literal(): Literal | undefined {
    const tok = this.tok;
    switch (tok.kind) {
      case 'number':
        return { kind: 'number', text: tok.value };
      case 'string':
        return { kind: 'string', value: tok.value };
      case 'word':
        switch (tok.value.toUpperCase()) {
          case 'NULL':
            return { kind: 'null' };
          case 'TRUE':
            return { kind: 'bool', value: true };
          case 'FALSE':
            return { kind: 'bool', value: false };
          case 'NAN':
            return { kind: 'number', text: 'NaN' };
          case 'INFINITY':
            return { kind: 'number', text: 'Infinity' };
        }
    }
    return undefined;
  }

  private requireLiteral(): Literal {
    const literal = this.literal();
    if (literal === undefined) this.expected('a literal');
    this.advance();
    return literal;
  }
}

/**
 * Parses a predicate written in the SQL `WHERE` subset described in the contract
 * ("Predicate language") into its AST.
 *
 * Keywords are case-insensitive; `<>` is read as `!=`; a literal on the left of a comparison is
 * moved to the right with the operator flipped; number literals come back in normalised form
 * (no `+`, no redundant leading zeros, lowercase `e`, `.5` as `0.5`).
 *
 * @throws {PredicateSyntaxError} for any malformed input — never any other error — with
 *   `position` the 0-based UTF-16 offset of the offending token (the opening quote of an
 *   unterminated string, the `(` that is never closed, `text.length` for a premature end).
 *
 * @example
 * ```ts
 * parsePredicate(`price >= 10 AND NOT region IN ('eu', 'us')`);
 * // { kind: 'and',
 * //   left: { kind: 'compare', column: 'price', op: '>=', value: { kind: 'number', text: '10' } },
 * //   right: { kind: 'not', operand: { kind: 'in', column: 'region', negated: false,
 * //            values: [{ kind: 'string', value: 'eu' }, { kind: 'string', value: 'us' }] } } }
 *
 * parsePredicate('5 < "x"');   // { kind: 'compare', column: 'x', op: '>', value: { kind: 'number', text: '5' } }
 * parsePredicate('x = ');      // throws PredicateSyntaxError:
 *                              //   "expected a literal after '=' but found end of input at position 4"
 * ```
 */
export function parsePredicate(text: string): Predicate {
  return new Parser(text).parse();
}
