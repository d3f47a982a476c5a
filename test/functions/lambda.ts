/**
 * What the handler tests share: a Lambda context object, environment overrides that are put
 * back afterwards, and a capture of what Powertools writes to stdout (JSON log lines and EMF
 * metric blobs), which also keeps it out of the test output.
 */
import { randomUUID } from 'node:crypto';
import type { Context, SQSEvent } from 'aws-lambda';
import { vi } from 'vitest';

/** A context as Lambda passes it; middy and Powertools read the name, request id and memory. */
export function fakeContext(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1769',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `2026/11/02/[$LATEST]${randomUUID().replaceAll('-', '')}`,
    getRemainingTimeInMillis: () => 900_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Set environment variables (undefined deletes one); the returned function puts them all back. */
export function setEnv(vars: Readonly<Record<string, string | undefined>>): () => void {
  const saved = Object.keys(vars).map((k) => [k, process.env[k]] as const);
  const apply = (entries: readonly (readonly [string, string | undefined])[]) => {
    for (const [k, v] of entries) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(Object.entries(vars));
  return () => apply(saved);
}

/** Lines Powertools printed, parsed; non-JSON lines are kept as `{ text }`. */
export type Printed = Record<string, unknown>;

/**
 * Capture stdout and stderr until `stop()`: Powertools' Logger and Metrics write there through
 * their own `Console` (errors to stderr), which calls the stream's `write` at each line.
 */
export function captureOutput(): { lines: Printed[]; stop: () => void } {
  const lines: Printed[] = [];
  const record = (chunk: string | Uint8Array) => {
    for (const line of (typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8')).split('\n')) {
      if (!line.trim()) continue;
      try {
        lines.push(JSON.parse(line) as Printed);
      } catch {
        lines.push({ text: line });
      }
    }
    return true;
  };
  const spies = [vi.spyOn(process.stdout, 'write').mockImplementation(record), vi.spyOn(process.stderr, 'write').mockImplementation(record)];
  return { lines, stop: () => spies.forEach((s) => s.mockRestore()) };
}

/** EMF blobs among printed lines: metric name → values, with the blob's dimensions. */
export function emfMetrics(lines: readonly Printed[]): { namespace: string; metrics: string[]; dims: Record<string, unknown>; line: Printed }[] {
  const out = [];
  for (const line of lines) {
    const aws = line._aws as { CloudWatchMetrics?: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] } | undefined;
    for (const d of aws?.CloudWatchMetrics ?? []) {
      const dims = Object.fromEntries(d.Dimensions.flat().map((k) => [k, line[k]]));
      out.push({ namespace: d.Namespace, metrics: d.Metrics.map((m) => m.Name), dims, line });
    }
  }
  return out;
}

export interface RecordSpec {
  key: string;
  bucket?: string;
  eventName?: string;
  /** '' leaves the field out. */
  sequencer?: string;
  eTag?: string;
}

/** An S3 event notification record the way S3 writes it: the key form-encoded. */
export function s3Record({ key, bucket = 'bucket', eventName = 'ObjectCreated:Put', sequencer = '0066B2C3D4E5F60718', eTag }: RecordSpec) {
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: 'us-east-1',
    eventTime: '2026-11-02T10:15:30.123Z',
    eventName,
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
      object: { key: encodeEventKey(key), size: 100, ...(eTag !== undefined && { eTag }), ...(sequencer !== '' && { sequencer }) },
    },
  };
}

/** S3's event key encoding: form-style, so a space is `+`; `/` is kept. */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((s) => encodeURIComponent(s).replace(/%20/g, '+'))
    .join('/');
}

/** An SQS batch as Lambda delivers it, one message per `{ messageId, body }`. */
export function sqsEvent(messages: readonly { messageId: string; body: string }[]): SQSEvent {
  return {
    Records: messages.map(({ messageId, body }) => ({
      messageId,
      receiptHandle: `rh-${messageId}`,
      body,
      attributes: { ApproximateReceiveCount: '1', SentTimestamp: '1793614530123', SenderId: 'AIDAEXAMPLE', ApproximateFirstReceiveTimestamp: '1793614530200' },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:us-east-1:123456789012:fragment-events',
      awsRegion: 'us-east-1',
    })),
  };
}
