/**
 * S3 listings ask for URL-encoded keys: a key may hold characters XML 1.0 cannot carry (a
 * control character), and one such object must not make a dataset's listing unreadable. The
 * store decodes what the server says it encoded, and leaves keys alone from a server that
 * ignores the request (s3rver does, so the server's answer is stubbed here).
 */
import { ListObjectsV2Command, S3Client, type ListObjectsV2CommandOutput } from '@aws-sdk/client-s3';
import { describe, expect, it, vi } from 'vitest';
import { S3Store } from '../../lib/store/s3.js';

function storeAnswering(page: Partial<ListObjectsV2CommandOutput>): { store: S3Store; sent: unknown[] } {
  const client = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  const sent: unknown[] = [];
  vi.spyOn(client, 'send').mockImplementation(async (command: unknown) => {
    sent.push((command as ListObjectsV2Command).input);
    return { $metadata: {}, IsTruncated: false, ...page } as never;
  });
  return { store: new S3Store({ bucket: 'b', prefix: 'root' }, { client }), sent };
}

async function keys(store: S3Store): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list('data/')) out.push(o.key);
  return out;
}

describe('S3 listing keys', () => {
  it('asks for URL encoding and decodes keys the server encoded, control characters, spaces and plus signs included', async () => {
    const { store, sent } = storeAnswering({
      EncodingType: 'url',
      Contents: [{ Key: 'root/data/ctl%01.arrow', Size: 1 }, { Key: 'root/data/a+b%2Bc.arrow', Size: 2 }, { Key: 'root/data//double.arrow', Size: 3 }],
    });
    expect(await keys(store)).toEqual(['data/ctl\u0001.arrow', 'data/a b+c.arrow', 'data//double.arrow']);
    expect(sent).toEqual([expect.objectContaining({ Bucket: 'b', Prefix: 'root/data/', EncodingType: 'url' })]);
  });

  it('leaves keys as they are when the server did not encode them', async () => {
    const { store } = storeAnswering({ Contents: [{ Key: 'root/data/a+b%2B.arrow', Size: 1 }] });
    expect(await keys(store)).toEqual(['data/a+b%2B.arrow']);
  });
});
