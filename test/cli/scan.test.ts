/**
 * `scalar-index scan`: the three output formats write every value exactly (64-bit integers
 * beyond 2^53, NaN, -0.0, a leading U+FEFF, commas, quotes and newlines in strings, empty
 * strings apart from nulls); --columns, --limit and --output; exit codes (2 for usage errors,
 * 1 with one line naming the culprit otherwise); a reader that goes away early (`| head`) ends
 * the scan quietly.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { beforeAll, describe, expect, it } from 'vitest';
import { afterDelay } from '../../lib/cli/main.js';
import { scan } from '../../lib/scan/scan.js';

import { build } from '../../lib/workflow/build.js';
import { cells } from '../support/cells.js';
import { fragmentBytes, type ColumnSpec } from '../support/dataset.js';
import { runCli } from '../support/run-cli.js';
import { tempDir } from '../support/tmp.js';

const COLUMNS: ColumnSpec[] = [
  { name: 'k', type: 'int32' },
  { name: 'big', type: 'int64' },
  { name: 'f', type: 'float64' },
  { name: 's', type: 'utf8' },
  { name: 'd', type: 'dict_utf8' },
  { name: 'b', type: 'binary' },
  { name: 'ok', type: 'bool' },
  { name: 'day', type: 'date32' },
  { name: 'at', type: 'timestamp_us_utc' },
  { name: 'ms', type: 'timestamp_ms' },
];

const ROWS: Record<string, unknown[]> = {
  k: [0, 1, 2, 3, 4, 5],
  big: [9007199254740993n, -9223372036854775808n, 0n, null, 9223372036854775807n, 1n],
  f: [NaN, -0, Infinity, -Infinity, 1.5, null],
  s: ['\ufeffbom', 'a,b', 'say "hi"', 'two\nlines', '', null],
  d: ['x', null, 'y', 'x', '', 'z'],
  b: [Uint8Array.of(0, 255), null, Uint8Array.of(), Uint8Array.of(1), Uint8Array.of(2), Uint8Array.of(3)],
  ok: [true, false, null, true, false, true],
  day: [0, -719162, 2932896, null, 11016, 1],
  at: [0n, 1_000n, -1n, 951_782_400_000_001n, null, 253_402_300_799_999_999n],
  ms: [0n, -62_135_596_800_000n, 86_400_000n, null, 1n, -1n],
};

let root: string;
beforeAll(async () => {
  root = tempDir('ssi-cli-scan-');
  fs.mkdirSync(path.join(root, 'data'));
  fs.writeFileSync(path.join(root, 'data', 'a.arrow'), fragmentBytes(COLUMNS, ROWS, { batchRows: 4, format: 'file' }));
  await build({ dataset: root, indexes: [{ column: 'k', type: 'bitmap' }] });
});

describe('output formats', () => {
  it('ndjson: one object per row, every value exact', async () => {
    const r = await runCli(['scan', root, '--where', 'k >= 0']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      '{"k":0,"big":9007199254740993,"f":"NaN","s":"\ufeffbom","d":"x","b":"AP8=","ok":true,"day":"1970-01-01","at":"1970-01-01T00:00:00.000000Z","ms":"1970-01-01T00:00:00.000"}',
      '{"k":1,"big":-9223372036854775808,"f":-0,"s":"a,b","d":null,"b":null,"ok":false,"day":"0001-01-01","at":"1970-01-01T00:00:00.001000Z","ms":"0001-01-01T00:00:00.000"}',
      '{"k":2,"big":0,"f":"Infinity","s":"say \\"hi\\"","d":"y","b":"","ok":null,"day":"9999-12-31","at":"1969-12-31T23:59:59.999999Z","ms":"1970-01-02T00:00:00.000"}',
      '{"k":3,"big":null,"f":"-Infinity","s":"two\\nlines","d":"x","b":"AQ==","ok":true,"day":null,"at":"2000-02-29T00:00:00.000001Z","ms":null}',
      '{"k":4,"big":9223372036854775807,"f":1.5,"s":"","d":"","b":"Ag==","ok":false,"day":"2000-02-29","at":null,"ms":"1970-01-01T00:00:00.001"}',
      '{"k":5,"big":1,"f":null,"s":null,"d":"z","b":"Aw==","ok":true,"day":"1970-01-02","at":"9999-12-31T23:59:59.999999Z","ms":"1969-12-31T23:59:59.999"}',
      '',
    ]);
  });

  it('csv: a header, RFC 4180 quoting, an empty string quoted and a null left empty', async () => {
    const r = await runCli(['scan', root, '--where', 'k IN (1, 2, 3, 4, 5)', '--format', 'csv', '--columns', 'k,s,d,f,big']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(['k,s,d,f,big', '1,"a,b",,-0,-9223372036854775808', '2,"say ""hi""",y,Infinity,0', '3,"two\nlines",x,-Infinity,', '4,"","",1.5,9223372036854775807', '5,,z,,1', ''].join('\n'));
  });

  it('arrow: an IPC stream with the same batches the library returns', async () => {
    const out = path.join(tempDir('ssi-cli-scan-out-'), 'rows.arrows');
    const r = await runCli(['scan', root, '--where', 'k != 2', '--format', 'arrow', '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    const table = arrow.tableFromIPC(fs.readFileSync(out));
    const want: arrow.RecordBatch[] = [];
    for await (const b of scan(root, 'k != 2')) want.push(b);
    const wantTable = new arrow.Table(want);
    expect(table.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(wantTable.schema.fields.map((f) => `${f.name}:${f.type}`));
    expect(table.numRows).toBe(5);
    for (const f of COLUMNS) {
      expect(table.getChild(f.name)!.data.flatMap((d) => cells(d)), f.name).toEqual(wantTable.getChild(f.name)!.data.flatMap((d) => cells(d)));
    }
  });

  it('no matching row: an empty stream with the columns of the fragments scanned, a CSV header, no ndjson line', async () => {
    const dir = tempDir('ssi-cli-scan-out-');
    // s has no index, so the fragment is read (and its columns known) though nothing matches.
    expect((await runCli(['scan', root, '--where', "k = 99 OR s = 'zz'", '--format', 'arrow', '--columns', 'k,s', '--output', path.join(dir, 'read.arrows')])).code).toBe(0);
    const table = arrow.tableFromIPC(fs.readFileSync(path.join(dir, 'read.arrows')));
    expect(table.numRows).toBe(0);
    expect(table.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(['k:Int32', 's:Utf8']);
    // The bitmap answers k = 99 with no fragment at all: no columns to tell.
    expect((await runCli(['scan', root, '--where', 'k = 99', '--format', 'arrow', '--output', path.join(dir, 'none.arrows')])).code).toBe(0);
    expect(arrow.tableFromIPC(fs.readFileSync(path.join(dir, 'none.arrows'))).schema.fields).toEqual([]);
    expect((await runCli(['scan', root, '--where', 'k = 99', '--format', 'csv', '--columns', 'k,s'])).stdout).toBe('k,s\n');
    expect((await runCli(['scan', root, '--where', 'k = 99'])).stdout).toBe('');
  });
});

describe('flags', () => {
  it('--limit and --columns', async () => {
    const r = await runCli(['scan', root, '--where', 'k >= 1', '--limit', '2', '--columns', 'ok,k']);
    expect(r.stdout).toBe('{"ok":false,"k":1}\n{"ok":null,"k":2}\n');
  });

  it('--output: the file appears complete; after a failure there is neither it nor a temporary file', async () => {
    const dir = tempDir('ssi-cli-scan-out-');
    const out = path.join(dir, 'rows.ndjson');
    const ok = await runCli(['scan', root, '--where', 'k = 4', '--columns', 'k', '--output', out]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe('');
    expect(fs.readFileSync(out, 'utf8')).toBe('{"k":4}\n');
    const failed = path.join(dir, 'failed.ndjson');
    const bad = await runCli(['scan', root, '--where', 'k = 4', '--columns', 'k,nope', '--output', failed]);
    expect(bad.code).toBe(1);
    expect(fs.readdirSync(dir)).toEqual(['rows.ndjson']);
  });

  it('a file not registered yet is scanned; --registered-only scans the registered snapshot without it', async () => {
    const dir = tempDir('ssi-cli-scan-fresh-');
    fs.mkdirSync(path.join(dir, 'data'));
    fs.writeFileSync(path.join(dir, 'data', 'a.arrow'), fragmentBytes(COLUMNS, ROWS, { batchRows: 4, format: 'file' }));
    await build({ dataset: dir, indexes: [{ column: 'k', type: 'bitmap' }] });
    fs.writeFileSync(path.join(dir, 'data', 'b.arrow'), fragmentBytes(COLUMNS, { ...ROWS, k: [10, 11, 4, 13, 14, 15] }, { batchRows: 4, format: 'file' }));
    const fresh = await runCli(['scan', dir, '--where', 'k = 4', '--columns', 'k,ok']);
    expect(fresh.stdout).toBe('{"k":4,"ok":false}\n{"k":4,"ok":null}\n');
    const snapshot = await runCli(['scan', dir, '--where', 'k = 4', '--columns', 'k,ok', '--registered-only']);
    expect(snapshot.code, snapshot.stderr).toBe(0);
    expect(snapshot.stdout).toBe('{"k":4,"ok":false}\n');
  });

  it.each([
    [['--format', 'xml'], /argument 'xml' is invalid/],
    [['--limit', '-1'], /--limit must be a whole number of at least 0/],
    [['--limit', 'ten'], /--limit must be a whole number of at least 0/],
    [['--columns', 'a,,b'], /comma-separated column names/],
  ])('usage error %j: exit 2', async (args, message) => {
    const r = await runCli(['scan', root, '--where', 'k = 1', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('a malformed predicate exits 2; a column a fragment lacks exits 1 naming the fragment', async () => {
    const syntax = await runCli(['scan', root, '--where', 'k = ']);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/^scalar-index: expected a literal/);
    const missing = await runCli(['scan', root, '--where', 'nope = 1']);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/column 'nope' not found in fragment .*data\/a\.arrow/);
  });
});

describe('progress', () => {
  it('a quick scan shows none; a long one shows its first event after 1 s, then at most one a second, and its last', () => {
    let t = 0;
    const shown: string[] = [];
    const progress = afterDelay((e) => shown.push(`${e.done}/${e.total}`), 1000, () => t);
    const event = (done: number, total = 5) => ({ step: 'scan', done, total });
    const quick = afterDelay((e) => shown.push(`quick ${e.done}`), 1000, () => t);
    quick(event(0, 1));
    t = 900;
    quick(event(1, 1));
    expect(shown).toEqual([]);
    t = 0;
    progress(event(0));
    t = 400;
    progress(event(1));
    t = 1000;
    progress(event(1));
    t = 1500;
    progress(event(2));
    t = 2100;
    progress(event(3));
    t = 2200;
    progress(event(5));
    expect(shown).toEqual(['1/5', '3/5', '5/5']);
  });
});

describe('a reader that goes away', () => {
  it('ends the scan quietly with exit code 0 (as `scan … | head -1` does)', async () => {
    const big = tempDir('ssi-cli-scan-epipe-');
    fs.mkdirSync(path.join(big, 'data'));
    const n = 200_000;
    fs.writeFileSync(path.join(big, 'data', 'a.arrow'), fragmentBytes([{ name: 'k', type: 'int32' }, { name: 's', type: 'utf8' }], { k: Array.from({ length: n }, (_, i) => i), s: Array.from({ length: n }, (_, i) => `row ${i}`) }, { batchRows: 10_000, format: 'file' }));
    await build({ dataset: big, indexes: [{ column: 'k', type: 'zonemap' }] });
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, '..', 'support', 'cli-entry.ts'), 'scan', big, '--where', 'k >= 0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let first = '';
    child.stdout.once('data', (d) => {
      first = String(d);
      child.stdout.destroy();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(first.startsWith('{"k":0,"s":"row 0"}\n')).toBe(true);
    expect(stderr).toBe('');
    expect(code).toBe(0);
  }, 60_000);
});
