/**
 * Starting executions (lib/workflow/starter.ts) with the real SDK client against a fake Step
 * Functions endpoint that speaks the service's JSON protocol.
 */
import { SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { failedMessageIds, startBuilds } from '../../lib/workflow/starter.js';
import { startSfnServer, type SfnTestServer } from '../support/sfn-server.js';

const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:ScalarIndexBuild';
let sfn: SfnTestServer;
let client: SFNClient;

beforeAll(async () => {
  sfn = await startSfnServer();
  client = new SFNClient({ endpoint: sfn.endpoint, region: 'us-east-1', credentials: sfn.credentials, maxAttempts: 3 });
});
afterAll(async () => {
  client?.destroy();
  await sfn?.stop();
});
beforeEach(() => sfn.reset());

const build = (dataset: string, name: string, messageIds: string[] = []) => ({ dataset, name, messageIds });

describe('startBuilds', () => {
  it('starts one execution per build, named by the build, with only {"dataset"} as input', async () => {
    const builds = [build('s3://bucket/datasets/sales', 'sales-1'), build('s3://bucket/datasets/web', 'web-1')];
    const results = await startBuilds(client, ARN, builds);
    expect(results.map((r) => [r.build.name, r.status])).toEqual([
      ['sales-1', 'started'],
      ['web-1', 'started'],
    ]);
    expect(results[0]).toMatchObject({ executionArn: 'arn:aws:states:us-east-1:123456789012:execution:ScalarIndexBuild:sales-1' });
    expect(sfn.calls.map((c) => [c.stateMachineArn, c.name, c.input])).toEqual(
      expect.arrayContaining([
        [ARN, 'sales-1', '{"dataset":"s3://bucket/datasets/sales"}'],
        [ARN, 'web-1', '{"dataset":"s3://bucket/datasets/web"}'],
      ]),
    );
    expect(sfn.calls).toHaveLength(2);
    expect(sfn.unsupported).toEqual([]);
  });

  it('counts ExecutionAlreadyExists as already started, not as a failure', async () => {
    await startBuilds(client, ARN, [build('s3://bucket/d', 'same-name')]);
    const again = await startBuilds(client, ARN, [build('s3://bucket/d', 'same-name', ['m1'])]);
    expect(again.map((r) => r.status)).toEqual(['already-started']);
    expect(failedMessageIds(again)).toEqual([]);
    expect(sfn.started).toHaveLength(1);
  });

  it('reports a start the service refuses for that build only, with the error name, and lists its messages for retry', async () => {
    sfn.inject({ times: 1, match: (c) => c.name === 'bad', type: 'StateMachineDoesNotExist' });
    const results = await startBuilds(client, ARN, [build('s3://bucket/a', 'good', ['m1']), build('s3://bucket/b', 'bad', ['m2', 'm3']), build('s3://bucket/c', 'also-good', ['m3', 'm4'])]);
    expect(results.map((r) => r.status)).toEqual(['started', 'failed', 'started']);
    const failed = results[1]!;
    expect(failed.status === 'failed' && failed.error.name).toBe('StateMachineDoesNotExist');
    expect(failedMessageIds(results)).toEqual(['m2', 'm3']);
  });

  it('throttling is retried by the SDK and ends as a start', async () => {
    sfn.inject({ times: 2, type: 'ThrottlingException' });
    const results = await startBuilds(client, ARN, [build('s3://bucket/a', 'throttled')]);
    expect(results.map((r) => r.status)).toEqual(['started']);
    expect(sfn.calls.map((c) => c.outcome)).toEqual(['injected', 'injected', 'started']);
  });

  it('an unreachable endpoint is a failed start, not a thrown error', async () => {
    const dead = new SFNClient({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', credentials: sfn.credentials, maxAttempts: 1 });
    try {
      const results = await startBuilds(dead, ARN, [build('s3://bucket/a', 'n', ['m'])]);
      expect(results.map((r) => r.status)).toEqual(['failed']);
      expect(failedMessageIds(results)).toEqual(['m']);
    } finally {
      dead.destroy();
    }
  });

  it('starts nothing for no builds', async () => {
    expect(await startBuilds(client, ARN, [])).toEqual([]);
    expect(sfn.calls).toEqual([]);
  });
});
