// Child-process entry for test/support/s3-server.ts: runs one s3rver on 127.0.0.1:<ephemeral>.
//
// It lives in its own process because s3rver's paginated ListObjectsV2 token uses DES, which
// needs `node --openssl-legacy-provider` (a flag we do not want on the test process itself).
//
// argv: <directory> [<json: { buckets?: string[] }>]
// IPC out: { port } once listening, or { error } if startup failed.
// It owns <directory> and removes it on every way out, so a crashed parent leaves nothing behind.
import fs from 'node:fs';
import S3rver from 's3rver';

const [directory, json = '{}'] = process.argv.slice(2);
const { buckets = [] } = JSON.parse(json);

let exiting = false;
function shutdown(code = 0) {
  if (exiting) return;
  exiting = true;
  fs.rmSync(directory, { recursive: true, force: true });
  process.exit(code);
}

// The IPC channel closes when the parent exits for any reason, SIGKILL included; that is
// the orphan guard. SIGTERM/SIGINT are the orderly stop.
process.on('disconnect', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
if (!process.connected) shutdown(1);

try {
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    // Path-style only: never treat the Host header as a bucket name.
    vhostBuckets: false,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const { port } = await server.run();
  // The proxy keeps sockets to us alive; never drop an idle one under it (see s3-server.ts).
  server.httpServer.keepAliveTimeout = 0;
  process.send?.({ port });
} catch (err) {
  process.send?.({ error: String(err?.stack ?? err) }, () => shutdown(1));
}
