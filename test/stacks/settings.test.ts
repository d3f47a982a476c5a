/** Stack settings from props and `-c` context, and dataset prefix validation (no synth). */
import { App } from 'aws-cdk-lib';
import { describe, expect, it } from 'vitest';
import { parseDatasetPrefixes as parseTriggerPrefixes } from '../../lib/workflow/trigger.js';
import { DEFAULT_RETRY_POLICY } from '../../lib/workflow/recovery.js';
import { DatasetPrefixError, exampleDatasetRoot, lambdaDatasetPrefixes, parseDatasetPrefixes } from '../../stacks/dataset-prefixes.js';
import { DEFAULT_BUILD_RETRIES, resolveSettings, settingsFromContext, SettingsError } from '../../stacks/settings.js';

const fromContext = (context: Record<string, unknown>) => settingsFromContext(new App({ context }).node);

describe('settings from context', () => {
  it('reads -c strings: comma-separated prefixes, integers and text', () => {
    expect(
      fromContext({
        datasetPrefixes: 'datasets/sales, datasets/web',
        maxConcurrency: '100',
        groupRows: '1000000',
        buildPartMemoryMb: '4096',
        batchingWindowSeconds: '5',
        batchSize: '50',
        buildRetries: '2',
        reconcileIntervalMinutes: '30',
        bucketName: 'my-bucket',
        bucketKmsKeyArn: ' arn:aws:kms:eu-west-1:123456789012:key/abcd ',
        alarmEmail: 'ops@example.com',
      }),
    ).toEqual({
      datasetPrefixes: ['datasets/sales', 'datasets/web'],
      maxConcurrency: 100,
      groupRows: 1_000_000,
      buildPartMemoryMb: 4096,
      batchingWindowSeconds: 5,
      batchSize: 50,
      buildRetries: 2,
      reconcileIntervalMinutes: 30,
      bucketName: 'my-bucket',
      bucketKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/abcd',
      alarmEmail: 'ops@example.com',
    });
  });

  it('reads cdk.json values: arrays, JSON arrays in a string, numbers', () => {
    expect(fromContext({ datasetPrefixes: ['a/*'], maxConcurrency: 7 })).toEqual({ datasetPrefixes: ['a/*'], maxConcurrency: 7 });
    expect(fromContext({ datasetPrefixes: '["a/b","c/*"]' })).toEqual({ datasetPrefixes: ['a/b', 'c/*'] });
    expect(fromContext({})).toEqual({});
  });

  it('refuses a number that is not an integer, naming the key', () => {
    expect(() => fromContext({ maxConcurrency: 'lots' })).toThrow(/maxConcurrency="lots" is not an integer/);
    expect(() => fromContext({ datasetPrefixes: '[oops' })).toThrow(SettingsError);
  });

  it('fills in defaults and checks ranges', () => {
    expect(resolveSettings()).toEqual({
      bucketName: undefined,
      bucketKmsKeyArn: undefined,
      datasetPrefixes: ['datasets/*'],
      buildPartMemoryMb: 3008,
      maxConcurrency: 40,
      groupRows: undefined,
      batchingWindowSeconds: 30,
      batchSize: 100,
      buildRetries: 3,
      reconcileIntervalMinutes: 60,
      alarmEmail: undefined,
    });
    expect(DEFAULT_BUILD_RETRIES).toBe(DEFAULT_RETRY_POLICY.maxRetries);
    expect(() => resolveSettings({ maxConcurrency: 0 })).toThrow(/maxConcurrency must be an integer from 1 to 10000/);
    expect(() => resolveSettings({ buildPartMemoryMb: 20_000 })).toThrow(/buildPartMemoryMb/);
    expect(() => resolveSettings({ batchingWindowSeconds: 301 })).toThrow(/batchingWindowSeconds/);
    expect(() => resolveSettings({ bucketName: 'Not_A_Bucket' })).toThrow(/not a valid S3 bucket name/);
  });
});

describe('dataset prefixes', () => {
  it('map a literal root to <root>/data/ filters and a wildcard to its base', () => {
    expect(parseDatasetPrefixes(['/datasets/sales/', 'logs/*', 'datasets/sales'])).toEqual([
      { pattern: 'datasets/sales', wildcard: false, root: 'datasets/sales', notificationPrefix: 'datasets/sales/data/' },
      { pattern: 'logs/*', wildcard: true, root: 'logs/*', notificationPrefix: 'logs/' },
    ]);
  });

  it.each([
    ['', /empty/],
    ['*', /literal segment/],
    ['datasets/*/sales', /last segment/],
    ['data*/x', /last segment/],
    ['datasets//sales', /empty segment/],
    ['datasets/data', /"data" cannot be a segment/],
    ['x/_index/y', /"_index" cannot be a segment/],
    ['datasets/../etc', /cannot be a segment/],
    ['datasets/${aws:username}', /may only hold/],
    ['datasets/a,b', /may only hold/],
  ])('refuse %j', (prefix, message) => {
    expect(() => parseDatasetPrefixes([prefix])).toThrow(DatasetPrefixError);
    expect(() => parseDatasetPrefixes([prefix])).toThrow(message);
  });

  it('refuse prefixes whose S3 notification filters would overlap', () => {
    expect(() => parseDatasetPrefixes(['datasets/*', 'datasets/sales'])).toThrow(/overlap/);
    expect(() => parseDatasetPrefixes(['datasets/*', 'datasets/eu/*'])).toThrow(/overlap/);
    expect(parseDatasetPrefixes(['datasets/sales', 'datasets/sales2', 'datasets/sales/eu'])).toHaveLength(3);
  });

  it('give the trigger and the reconcile every root and pattern, in the format they parse', () => {
    const literal = lambdaDatasetPrefixes(parseDatasetPrefixes(['datasets/sales', 'datasets/web']));
    expect(literal).toBe('datasets/sales,datasets/web');
    expect(parseTriggerPrefixes(literal)).toEqual([{ prefix: 'datasets/sales' }, { prefix: 'datasets/web' }]);
    const mixed = lambdaDatasetPrefixes(parseDatasetPrefixes(['datasets/sales', 'logs/*']));
    expect(mixed).toBe('datasets/sales,logs/*');
    expect(parseTriggerPrefixes(mixed)).toEqual([{ prefix: 'datasets/sales' }, { prefix: 'logs', wildcard: true }]);
  });

  it('show a concrete dataset in examples', () => {
    expect(exampleDatasetRoot(parseDatasetPrefixes(['datasets/*'])[0]!)).toBe('datasets/my-dataset');
    expect(exampleDatasetRoot(parseDatasetPrefixes(['datasets/sales'])[0]!)).toBe('datasets/sales');
  });
});
