/**
 * The S3-event trigger's decisions (lib/workflow/trigger.ts): which builds a batch of queued
 * S3 notifications asks for, under which execution names, and what it skips and why.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../lib/errors.js';
import { FRAGMENT_EXTENSIONS, isFragmentKey } from '../../lib/fragments/reader.js';
import { parseS3Uri } from '../../lib/store/s3.js';
import {
  datasetRootOf,
  decodeEventKey,
  executionName,
  parseDatasetPrefixes,
  planTriggeredBuilds,
  type QueueMessage,
} from '../../lib/workflow/trigger.js';
import { s3Record, type RecordSpec } from './lambda.js';

const message = (messageId: string, ...records: RecordSpec[]): QueueMessage => ({ messageId, body: JSON.stringify({ Records: records.map(s3Record) }) });

const NAME = /^[A-Za-z0-9_-]{1,80}$/;

describe('planTriggeredBuilds', () => {
  it('asks for one build per dataset, listing every triggering fragment once and every message behind it', () => {
    const plan = planTriggeredBuilds([
      message('m1', { key: 'datasets/sales/data/a.parquet', sequencer: '01' }),
      message('m2', { key: 'datasets/sales/data/a.parquet', sequencer: '01' }), // S3 delivered the event twice
      message('m3', { key: 'datasets/sales/data/2026/b.arrow', sequencer: '02' }, { key: 'datasets/web/data/c.feather', sequencer: '03' }),
    ]);
    expect(plan.malformed).toEqual([]);
    expect(plan.skipped).toEqual([]);
    expect(plan.builds.map((b) => [b.dataset, b.messageIds, b.fragments])).toEqual([
      [
        's3://bucket/datasets/sales',
        ['m1', 'm2', 'm3'],
        [
          { key: 'datasets/sales/data/2026/b.arrow', version: '02' },
          { key: 'datasets/sales/data/a.parquet', version: '01' },
        ],
      ],
      ['s3://bucket/datasets/web', ['m3'], [{ key: 'datasets/web/data/c.feather', version: '03' }]],
    ]);
    for (const b of plan.builds) expect(b.name).toMatch(NAME);
    expect(new Set(plan.builds.map((b) => b.name)).size).toBe(2);
  });

  it('skips, with a reason each, deletes, non-fragment files, keys outside data/, _index/ writes, folder markers and test events', () => {
    const plan = planTriggeredBuilds([
      message('del', { key: 'datasets/sales/data/a.parquet', eventName: 'ObjectRemoved:Delete' }),
      message('txt', { key: 'datasets/sales/data/readme.txt' }),
      message('idx', { key: 'datasets/sales/_index/versions/00000000000000000002.json' }),
      message('idx-data', { key: 'datasets/sales/_index/builds/b1/data/x.arrow' }),
      message('top', { key: 'datasets/sales/a.arrow' }),
      message('dir', { key: 'datasets/sales/data/2026/' }),
      { messageId: 'test', body: JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'bucket' }) },
      { messageId: 'empty', body: JSON.stringify({ Records: [] }) },
    ]);
    expect(plan.builds).toEqual([]);
    expect(plan.malformed).toEqual([]);
    const reasons = Object.fromEntries(plan.skipped.map((s) => [s.messageId, s.reason]));
    expect(reasons).toEqual({
      del: expect.stringMatching(/ObjectRemoved:Delete is not an ObjectCreated event/),
      txt: expect.stringMatching(/not a fragment file \(\.arrow, \.arrows, \.feather, \.parquet\)/),
      idx: expect.stringMatching(/not under a data\/ directory/),
      'idx-data': expect.stringMatching(/_index/),
      top: expect.stringMatching(/not under a data\/ directory/),
      dir: expect.stringMatching(/folder marker/),
      test: expect.stringMatching(/s3:TestEvent/),
      empty: expect.stringMatching(/no records/),
    });
    expect(plan.skipped.find((s) => s.messageId === 'txt')?.key).toBe('datasets/sales/data/readme.txt');
  });

  it('decodes keys the way S3 events encode them: + is a space, %2B a plus, %3D an equals sign', () => {
    const plan = planTriggeredBuilds([
      { messageId: 'm', body: JSON.stringify({ Records: [{ ...s3Record({ key: 'x' }), s3: { bucket: { name: 'bucket' }, object: { key: 'my+data/data/day%3D01/a%2Bb+c%C3%A9.arrow', sequencer: '1' } } }] }) },
    ]);
    expect(plan.builds.map((b) => [b.dataset, b.fragments[0]!.key])).toEqual([['s3://bucket/my data', 'my data/data/day=01/a+b cé.arrow']]);
    expect(decodeEventKey('a+b%2Bc%20d')).toBe('a b+c d');
    expect(() => decodeEventKey('bad%E0%A4%A')).toThrow(URIError);
  });

  it('skips hostile or undecodable keys with the reason, and never turns them into a dataset', () => {
    const raw = (messageId: string, key: string): QueueMessage => ({
      messageId,
      body: JSON.stringify({ Records: [{ eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'bucket' }, object: { key, sequencer: '1' } } }] }),
    });
    const plan = planTriggeredBuilds([
      raw('dotdot', 'datasets/sales/data/../../../etc/data/passwd.arrow'),
      raw('dot', 'datasets/./sales/data/a.arrow'),
      raw('abs', '%2Fdatasets/sales/data/a.arrow'),
      raw('double', 'datasets//sales/data/a.arrow'),
      raw('ctrl', 'datasets/sales/data/a%00.arrow'),
      raw('backslash', 'datasets/sales/data/..%5C..%5Ca.arrow'),
      raw('encoding', 'datasets/sales/data/%E0%A4%A.arrow'),
      raw('bucket', 'datasets/sales/data/a.arrow'.replace('datasets', 'x')),
    ]);
    // The last one is fine: a control that the others fail for their key alone.
    expect(plan.builds.map((b) => b.dataset)).toEqual(['s3://bucket/x/sales']);
    const reasons = Object.fromEntries(plan.skipped.map((s) => [s.messageId, s.reason]));
    expect(reasons).toEqual({
      dotdot: expect.stringMatching(/'\.\.' segments are not allowed/),
      dot: expect.stringMatching(/'\.' segments are not allowed/),
      abs: expect.stringMatching(/absolute paths are not allowed/),
      double: expect.stringMatching(/empty path segments/),
      ctrl: expect.stringMatching(/control characters/),
      backslash: expect.stringMatching(/backslashes/),
      encoding: expect.stringMatching(/not valid URL encoding/),
    });
  });

  it('reports malformed bodies by messageId and still plans the rest of the batch', () => {
    const plan = planTriggeredBuilds([
      { messageId: 'not-json', body: '{"Records": [' },
      { messageId: 'not-s3', body: JSON.stringify({ hello: 'world' }) },
      { messageId: 'array', body: '[1, 2]' },
      { messageId: 'ok', body: message('ok', { key: 'datasets/sales/data/a.arrow' }).body },
      { messageId: 'odd-record', body: JSON.stringify({ Records: [42, { eventSource: 'aws:sqs' }, { eventSource: 'aws:s3', eventName: 'ObjectCreated:Put', s3: {} }] }) },
    ]);
    expect(plan.malformed.map((m) => m.messageId)).toEqual(['not-json', 'not-s3', 'array']);
    expect(plan.malformed[0]!.reason).toMatch(/not JSON/);
    expect(plan.malformed[1]!.reason).toMatch(/not an S3 event notification/);
    expect(plan.builds.map((b) => [b.dataset, b.messageIds])).toEqual([['s3://bucket/datasets/sales', ['ok']]]);
    expect(plan.skipped.filter((s) => s.messageId === 'odd-record').map((s) => s.reason)).toEqual([
      'record is not an object',
      'not an S3 event record (eventSource "aws:sqs")',
      'record has no s3.bucket.name or s3.object.key',
    ]);
  });

  it('uses the ETag as the version when an event has no sequencer', () => {
    const plan = planTriggeredBuilds([message('m', { key: 'd/data/a.arrow', sequencer: '', eTag: 'abc' })]);
    expect(plan.builds[0]!.fragments).toEqual([{ key: 'd/data/a.arrow', version: 'abc' }]);
  });

  it('takes fragment extensions in any case, as the readers do (S3 notifies about every case, see the stack)', () => {
    const plan = planTriggeredBuilds([
      message('a', { key: 'datasets/sales/data/A.PARQUET', sequencer: '01' }),
      message('b', { key: 'datasets/sales/data/b.Arrow', sequencer: '02' }),
      message('c', { key: 'datasets/sales/data/c.FeAtHeR', sequencer: '03' }),
      message('d', { key: 'datasets/sales/data/_SUCCESS', sequencer: '04' }),
    ]);
    expect(plan.builds.map((b) => b.fragments.map((f) => f.key))).toEqual([['datasets/sales/data/A.PARQUET', 'datasets/sales/data/b.Arrow', 'datasets/sales/data/c.FeAtHeR']]);
    expect(plan.skipped).toEqual([{ messageId: 'd', key: 'datasets/sales/data/_SUCCESS', reason: expect.stringMatching(/not a fragment file/) }]);
  });

  it('puts a dataset at the bucket root when data/ is the first segment', () => {
    const plan = planTriggeredBuilds([message('m', { key: 'data/a.arrow', bucket: 'rooted' })]);
    expect(plan.builds.map((b) => b.dataset)).toEqual(['s3://rooted']);
  });
});

describe('the trigger routes keys and buckets exactly as the readers and parseS3Uri do', () => {
  it('takes the same files for fragments as fragments/reader.ts', () => {
    expect(FRAGMENT_EXTENSIONS).toContain('.parquet');
    const names = ['a.arrow', 'a.ARROWS', 'a.Feather', 'a.parquet', 'a.parq', 'a.arrow.tmp', 'a.json', 'arrow', 'a.PARQUET'];
    const plan = planTriggeredBuilds(names.map((n, i) => message(`m${i}`, { key: `d/data/${n}` })));
    const taken = plan.builds.flatMap((b) => b.fragments.map((f) => f.key.slice('d/data/'.length)));
    expect(taken.sort()).toEqual(names.filter(isFragmentKey).sort());
  });

  it('checks bucket names as store/s3.ts does, and names datasets parseS3Uri reads back unchanged', () => {
    const buckets = ['bucket', 'a.b-c', 'ab', 'Bad_Bucket', 'a..b', '-ab', `x${'y'.repeat(63)}`, 'abc'];
    const plan = planTriggeredBuilds(buckets.map((bucket, i) => message(`m${i}`, { bucket, key: `d e/data/a.arrow` })));
    for (const bucket of buckets) {
      let s3ok = true;
      try {
        parseS3Uri(`s3://${bucket}/x`);
      } catch {
        s3ok = false;
      }
      expect(plan.builds.some((b) => b.dataset === `s3://${bucket}/d e`), bucket).toBe(s3ok);
    }
    for (const b of plan.builds) {
      const { bucket, prefix } = parseS3Uri(b.dataset);
      expect(`s3://${bucket}/${prefix}`).toBe(b.dataset);
    }
    expect(plan.skipped.find((s) => s.messageId === 'm3')?.reason).toMatch(/invalid S3 bucket name "Bad_Bucket"/);
  });
});

describe('dataset roots', () => {
  it('without DATASET_PREFIXES, the root is the key part before the first data/ segment', () => {
    expect(datasetRootOf('b', 'datasets/sales/data/2026/01/a.arrow', [])).toEqual({ root: 'datasets/sales' });
    expect(datasetRootOf('b', 'a/data/b/data/c.arrow', [])).toEqual({ root: 'a' });
    expect(datasetRootOf('b', 'datasets/sales/database/a.arrow', [])).toEqual({ reason: 'not under a data/ directory' });
    expect(datasetRootOf('b', 'datasets/sales/data', [])).toEqual({ reason: 'not under a data/ directory' });
  });

  it('with DATASET_PREFIXES, the longest configured root holding the key wins and s3:// entries match one bucket only', () => {
    const roots = parseDatasetPrefixes(' datasets , datasets/sales/ ,s3://logs/web,, s3://flat ');
    expect(roots).toEqual([{ prefix: 'datasets' }, { prefix: 'datasets/sales' }, { bucket: 'logs', prefix: 'web' }, { bucket: 'flat', prefix: '' }]);
    expect(datasetRootOf('any', 'datasets/sales/data/a.arrow', roots)).toEqual({ root: 'datasets/sales' });
    expect(datasetRootOf('any', 'datasets/data/a.arrow', roots)).toEqual({ root: 'datasets' });
    expect(datasetRootOf('logs', 'web/data/a.arrow', roots)).toEqual({ root: 'web' });
    expect(datasetRootOf('other', 'web/data/a.arrow', roots)).toMatchObject({ reason: expect.stringMatching(/DATASET_PREFIXES/) });
    expect(datasetRootOf('flat', 'data/a.arrow', roots)).toEqual({ root: '' });
    // Configured roots are taken literally: a data/ deeper down is not another dataset.
    expect(datasetRootOf('any', 'datasets/sales/2026/data/a.arrow', roots)).toMatchObject({ reason: expect.any(String) });

    const plan = planTriggeredBuilds([message('m', { key: 'datasets/sales/data/a.arrow' }), message('n', { key: 'other/data/b.arrow' })], roots);
    expect(plan.builds.map((b) => b.dataset)).toEqual(['s3://bucket/datasets/sales']);
    expect(plan.skipped).toEqual([{ messageId: 'n', key: 'other/data/b.arrow', reason: expect.stringMatching(/DATASET_PREFIXES/) }]);
  });

  it('a pattern <base>/* matches <base>/<name>/data/…, never <base>/data/… itself, nor anything under _index/', () => {
    const roots = parseDatasetPrefixes('datasets/*, s3://logs/web/*');
    expect(roots).toEqual([
      { prefix: 'datasets', wildcard: true },
      { bucket: 'logs', prefix: 'web', wildcard: true },
    ]);
    expect(datasetRootOf('any', 'datasets/sales/data/a.arrow', roots)).toEqual({ root: 'datasets/sales' });
    expect(datasetRootOf('any', 'datasets/eu/sales/data/2026/a.arrow', roots)).toEqual({ root: 'datasets/eu/sales' });
    expect(datasetRootOf('any', 'datasets/data/x.parquet', roots)).toEqual({ reason: expect.stringMatching(/directly under the pattern's base datasets\/: a dataset root needs a name/) });
    expect(datasetRootOf('any', 'datasets/sales/_index/builds/b/data/x.arrow', roots)).toEqual({ reason: 'inside an _index/ directory' });
    expect(datasetRootOf('any', 'datasets/sales/_index/indexes/k_bitmap/1/bitmap.arrow', roots)).toEqual({ reason: 'not under a data/ directory' });
    expect(datasetRootOf('any', 'elsewhere/x/data/a.arrow', roots)).toMatchObject({ reason: expect.stringMatching(/DATASET_PREFIXES/) });
    expect(datasetRootOf('logs', 'web/site/data/a.arrow', roots)).toEqual({ root: 'web/site' });
    expect(datasetRootOf('other', 'web/site/data/a.arrow', roots)).toMatchObject({ reason: expect.stringMatching(/DATASET_PREFIXES/) });

    // A literal root and a pattern side by side: the longest root holding the key wins.
    const mixed = parseDatasetPrefixes('datasets/sales,datasets/*');
    expect(datasetRootOf('b', 'datasets/sales/data/a.arrow', mixed)).toEqual({ root: 'datasets/sales' });
    expect(datasetRootOf('b', 'datasets/sales/eu/data/a.arrow', mixed)).toEqual({ root: 'datasets/sales/eu' });

    const plan = planTriggeredBuilds([message('m', { key: 'datasets/data/x.parquet' }), message('n', { key: 'datasets/web/data/y.parquet' })], roots);
    expect(plan.builds.map((b) => b.dataset)).toEqual(['s3://bucket/datasets/web']);
    expect(plan.skipped).toEqual([{ messageId: 'm', key: 'datasets/data/x.parquet', reason: expect.stringMatching(/needs a name after it/) }]);
  });

  it('refuses patterns with a "*" anywhere but the whole last segment after a base', () => {
    for (const bad of ['*', 's3://bucket/*', 'datasets/*/sales', 'data*/x', 'datasets/sa*']) {
      expect(() => parseDatasetPrefixes(bad), bad).toThrow(/DATASET_PREFIXES.*"\*"|DATASET_PREFIXES.*base before/);
    }
  });

  it('an empty or absent DATASET_PREFIXES means infer; a hostile entry is a UsageError naming the variable', () => {
    expect(parseDatasetPrefixes(undefined)).toEqual([]);
    expect(parseDatasetPrefixes(' , ')).toEqual([]);
    for (const bad of ['datasets/../etc', 's3://Bad_Bucket/x', '/', 'a//b']) {
      expect(() => parseDatasetPrefixes(bad)).toThrow(UsageError);
      expect(() => parseDatasetPrefixes(bad)).toThrow(/DATASET_PREFIXES/);
    }
  });
});

describe('execution names', () => {
  it('are at most 80 characters of [A-Za-z0-9_-], however long or exotic the dataset path', () => {
    const long = `s3://bucket/${'très-long/'.repeat(30)}ventes`;
    for (const dataset of ['s3://bucket/datasets/sales', long, 's3://bucket', 's3://bucket/é/ü', 's3://b.c-d/x y+z']) {
      const name = executionName(dataset, [{ key: 'k', version: 'v' }]);
      expect(name, dataset).toMatch(NAME);
      // Room for the `-r<n>` of an automatic retry (n up to 99).
      expect(`${name}-r99`, dataset).toMatch(NAME);
    }
    expect(executionName(long, [])).toMatch(/ventes-[0-9a-f]{32}$/);
  });

  it('change when the dataset, a fragment key or a fragment version changes, and ignore fragment order and duplicates', () => {
    const a = { key: 'd/data/a.arrow', version: '01' };
    const b = { key: 'd/data/b.arrow', version: '02' };
    const base = executionName('s3://bucket/d', [a, b]);
    expect(executionName('s3://bucket/d', [b, a, b])).toBe(base);
    expect(executionName('s3://bucket/e', [a, b])).not.toBe(base);
    expect(executionName('s3://bucket/d', [a, { ...b, key: 'd/data/c.arrow' }])).not.toBe(base);
    expect(executionName('s3://bucket/d', [a, { ...b, version: '03' }])).not.toBe(base); // the same key written again
    expect(executionName('s3://bucket/d', [a])).not.toBe(base);
  });
});

describe('replays and redeliveries', () => {
  const keyArb = fc.record({
    root: fc.constantFrom('datasets/sales', 'datasets/web', 'x', 'deep/er/root'),
    dir: fc.constantFrom('', '2026/', 'day=01/', 'a b/'),
    file: fc.constantFrom('p1', 'p2', 'p+3', 'é'),
    ext: fc.constantFrom('.arrow', '.parquet', '.arrows', '.feather', '.txt', '.json'),
  });
  const recordArb: fc.Arbitrary<RecordSpec> = fc.record({
    key: fc.oneof(
      { weight: 8, arbitrary: keyArb.map(({ root, dir, file, ext }) => `${root}/data/${dir}${file}${ext}`) },
      { weight: 1, arbitrary: keyArb.map(({ root, file }) => `${root}/_index/${file}.json`) },
    ),
    bucket: fc.constantFrom('bucket', 'other-bucket'),
    eventName: fc.constantFrom('ObjectCreated:Put', 'ObjectCreated:Put', 'ObjectCreated:CompleteMultipartUpload', 'ObjectRemoved:Delete'),
    sequencer: fc.constantFrom('01', '02', '0A'),
  });
  const batchArb = fc.array(
    fc.oneof(
      { weight: 6, arbitrary: fc.array(recordArb, { minLength: 1, maxLength: 3 }).map((records) => ({ body: JSON.stringify({ Records: records.map(s3Record) }) })) },
      { weight: 1, arbitrary: fc.constant({ body: JSON.stringify({ Event: 's3:TestEvent' }) }) },
      { weight: 1, arbitrary: fc.constantFrom({ body: 'not json' }, { body: '{}' }) },
    ),
    { minLength: 1, maxLength: 12 },
  );
  const pairs = (messages: QueueMessage[]) =>
    planTriggeredBuilds(messages)
      .builds.map((b) => `${b.dataset} ${b.name}`)
      .sort();

  it('any permutation or duplication of a batch (redelivered messages, repeated S3 events) asks for the same (dataset, name) pairs', () => {
    fc.assert(
      fc.property(
        batchArb.chain((bodies) => {
          const batch = bodies.map((b, i) => ({ messageId: `m${i}`, ...b }));
          // Duplicates: a redelivery keeps its messageId; a repeated S3 event arrives in a new message.
          const copies = fc.array(
            fc.record({ i: fc.nat({ max: batch.length - 1 }), fresh: fc.boolean() }).map(({ i, fresh }) => ({ ...batch[i]!, ...(fresh && { messageId: `dup-${i}` }) })),
            { maxLength: 6 },
          );
          return fc.tuple(fc.constant(batch), copies.chain((extra) => fc.shuffledSubarray([...batch, ...extra], { minLength: batch.length + extra.length })));
        }),
        ([batch, replayed]) => {
          expect(pairs(replayed)).toEqual(pairs(batch));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a dataset's name depends only on its own fragments, not on what else shares the batch", () => {
    fc.assert(
      fc.property(fc.array(recordArb, { minLength: 1, maxLength: 8 }), fc.array(recordArb, { minLength: 1, maxLength: 8 }), (mine, others) => {
        const alone = planTriggeredBuilds([message('a', ...mine)]).builds;
        const mixed = planTriggeredBuilds([message('a', ...mine), message('b', ...others)]).builds;
        for (const b of alone) {
          const same = mixed.find((m) => m.dataset === b.dataset)!;
          if (same.fragments.length === b.fragments.length) expect(same.name).toBe(b.name);
          else expect(same.name).not.toBe(b.name);
        }
      }),
      { numRuns: 200 },
    );
  });
});
