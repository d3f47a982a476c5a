/**
 * Bad input gets one clear line naming the culprit, the right exit code, and nothing is
 * committed: the manifest versions are exactly what they were before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as arrow from 'apache-arrow';
import { describe, expect, it } from 'vitest';
import { listVersions } from '../../lib/manifest/manifest.js';
import { LocalStore } from '../../lib/store/local.js';
import { fragmentBytes, writeFragment, type ColumnSpec } from '../support/dataset.js';
import { runCli } from '../support/run-cli.js';
import { tempDir } from '../support/tmp.js';

const COLS: ColumnSpec[] = [{ name: 'x', type: 'int32' }];

async function goodDataset(fragments = 2): Promise<string> {
  const root = tempDir('ssi-err-');
  for (let f = 0; f < fragments; f++) {
    await writeFragment(path.join(root, 'data', `ok${f}.arrow`), COLS, { x: [1, 2, null, 4 + f] }, { batchRows: 2, format: 'file' });
  }
  return root;
}

const versions = (root: string) => listVersions(new LocalStore(root));

async function expectNothingCommitted(root: string, args: string[], code: number, message: RegExp) {
  const before = await versions(root);
  const r = await runCli(args);
  expect(r.code).toBe(code);
  expect(r.stderr).toMatch(message);
  expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(3);
  expect(await versions(root)).toEqual(before);
  return r;
}

describe('bad input is refused with a clear error and nothing committed', () => {
  it('a corrupt fragment (garbage bytes) names the file', async () => {
    const root = await goodDataset();
    fs.writeFileSync(path.join(root, 'data', 'bad.arrow'), Buffer.from('this is not arrow at all, just text'));
    await expectNothingCommitted(root, ['build', root, '--index', 'x:bitmap'], 1, /bad\.arrow/);
  });

  it('a truncated fragment names the file, also when added after a good build', async () => {
    const root = await goodDataset();
    expect((await runCli(['build', root, '--index', 'x:bitmap', '--quiet'])).code).toBe(0);
    const bytes = fragmentBytes(COLS, { x: Array.from({ length: 500 }, (_, i) => i) }, { batchRows: 100, format: 'file' });
    fs.writeFileSync(path.join(root, 'data', 'cut.arrow'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    await expectNothingCommitted(root, ['build', root], 1, /cut\.arrow/);
    // The previous version still answers.
    const q = await runCli(['query', root, '--where', 'x = 1', '--json']);
    expect(q.code).toBe(0);
    expect(JSON.parse(q.stdout).rows).toBe(2);
  });

  it('a truncated stream-format fragment names the file', async () => {
    const root = await goodDataset();
    const bytes = fragmentBytes(COLS, { x: Array.from({ length: 500 }, (_, i) => i) }, { batchRows: 100, format: 'stream' });
    fs.writeFileSync(path.join(root, 'data', 'cut.arrows'), bytes.subarray(0, bytes.length - 900));
    await expectNothingCommitted(root, ['build', root, '--index', 'x:zonemap'], 1, /cut\.arrows/);
  });

  it('a missing column names the column and the fragment', async () => {
    const root = await goodDataset();
    await writeFragment(path.join(root, 'data', 'other.arrow'), [{ name: 'y', type: 'int32' }], { y: [1] }, { batchRows: 1, format: 'file' });
    await expectNothingCommitted(root, ['build', root, '--index', 'x:bitmap'], 1, /column 'x' not found in fragment .*other\.arrow/);
  });

  it('a column whose type differs between fragments names both types and the fragment', async () => {
    const root = await goodDataset();
    await writeFragment(path.join(root, 'data', 'z-strings.arrow'), [{ name: 'x', type: 'utf8' }], { x: ['a'] }, { batchRows: 1, format: 'file' });
    await expectNothingCommitted(root, ['build', root, '--index', 'x:zonemap'], 1, /column 'x' is Utf8 in fragment .*z-strings\.arrow but Int32/);
  });

  it('an unsupported column type names the column and the type', async () => {
    const root = tempDir('ssi-err-');
    fs.mkdirSync(path.join(root, 'data'));
    const list = arrow.vectorFromArray([[1, 2], [3]], new arrow.List(new arrow.Field('item', new arrow.Int32(), true)));
    fs.writeFileSync(path.join(root, 'data', 'nested.arrow'), arrow.tableToIPC(new arrow.Table({ tags: list }), 'file'));
    await expectNothingCommitted(root, ['build', root, '--index', 'tags:bitmap'], 1, /column 'tags' has type List.*cannot be indexed/);
  });

  it('rows_per_zone of 0 is a usage error', async () => {
    const root = await goodDataset();
    await expectNothingCommitted(root, ['build', root, '--index', 'x:zonemap', '--rows-per-zone', '0'], 2, /--rows-per-zone must be a whole number/);
  });

  it('an unknown index type or a malformed --index is a usage error', async () => {
    const root = await goodDataset();
    await expectNothingCommitted(root, ['build', root, '--index', 'x:btree'], 2, /expected <column>:<zonemap\|bitmap>/);
  });

  it('a malformed predicate names the position and exits 2', async () => {
    const root = await goodDataset();
    await runCli(['build', root, '--index', 'x:bitmap', '--quiet']);
    const r = await runCli(['query', root, '--where', 'x = 1 AND (x < ']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/expected a literal after '<' but found end of input at position 15/);
  });

  it('a literal of the wrong type for the column names the column and the value', async () => {
    const root = await goodDataset();
    await runCli(['build', root, '--index', 'x:bitmap', '--quiet']);
    const r = await runCli(['query', root, '--where', "x = 'abc'"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/column 'x' \(Int32\) with string 'abc'/);
  });

  it('a registered fragment whose bytes changed is an error, never silently re-indexed', async () => {
    const root = await goodDataset();
    await runCli(['build', root, '--index', 'x:bitmap', '--quiet']);
    await writeFragment(path.join(root, 'data', 'ok0.arrow'), COLS, { x: [9, 9, 9, 9, 9, 9, 9] }, { batchRows: 2, format: 'file' });
    await expectNothingCommitted(root, ['build', root], 1, /ok0\.arrow.*changed/);
  });

  it('a file:// URI that is not absolute is a usage error naming the URI', async () => {
    const r = await runCli(['query', 'file://relative/dir', '--where', 'x = 1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^scalar-index: invalid dataset URI file:\/\/relative\/dir: .*\(a file URI names an absolute path: file:\/\/\/data\/sales\)\n$/);
  });

  it('a time zone offset beyond ±15:59 in a literal is an error naming it', async () => {
    const root = tempDir('ssi-err-tz-');
    await writeFragment(path.join(root, 'data', 't.arrow'), [{ name: 'ts', type: 'timestamp_us_utc' }], { ts: [0n, 1n] }, { batchRows: 2, format: 'file' });
    await runCli(['build', root, '--index', 'ts:zonemap', '--quiet']);
    for (const tz of ['+9999', '+25:00', '-16:00', '+01:60']) {
      const r = await runCli(['query', root, '--where', `ts < '2026-01-03T06:00:00${tz}'`]);
      expect(r.code, tz).toBe(1);
      expect(r.stderr).toContain(`time zone offset ${tz}`);
    }
    expect((await runCli(['query', root, '--where', "ts < '2026-01-03T06:00:00+15:59'"])).code).toBe(0);
  });

  it('a dataset path with no fragments (a typo, say) is an error naming the data directory', async () => {
    const root = tempDir('ssi-err-');
    const r = await runCli(['build', path.join(root, 'nope'), '--index', 'x:bitmap', '--json', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no fragment files \(\.arrow, \.arrows, \.feather, \.parquet\) under .*nope\/data/);
    expect(fs.existsSync(path.join(root, 'nope'))).toBe(false);
  });
});
