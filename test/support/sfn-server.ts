/**
 * A tiny fake Step Functions endpoint for tests: node:http speaking AWS JSON 1.0, enough of
 * StartExecution for the real SDK client. It records every call and remembers every name (per
 * state machine), so a repeated name answers `ExecutionAlreadyExists` as the service does once an
 * execution exists.
 *
 *   const sfn = await startSfnServer();
 *   const client = new SFNClient({ endpoint: sfn.endpoint, region: 'us-east-1', credentials: sfn.credentials });
 *   ...
 *   expect(sfn.started.map((c) => JSON.parse(c.input))).toEqual([{ dataset: 's3://bucket/x' }]);
 *   await sfn.stop();
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One StartExecution request as the fake saw it. */
export interface StartExecutionCall {
  stateMachineArn: string;
  name: string;
  input: string;
  /** What the fake answered. */
  outcome: 'started' | 'ExecutionAlreadyExists' | 'injected';
}

/** An error to answer instead of handling the next `times` matching calls. */
export interface SfnFault {
  times: number;
  match?: (call: Omit<StartExecutionCall, 'outcome'>) => boolean;
  /** HTTP status (default 400). */
  status?: number;
  /** The `__type` (default `StateMachineDoesNotExist`, which the SDK does not retry). */
  type?: string;
}

export interface SfnTestServer {
  readonly endpoint: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Environment for code that builds its client from the SDK's defaults. */
  readonly env: Readonly<Record<string, string>>;
  /** Every StartExecution call, in arrival order. */
  readonly calls: readonly StartExecutionCall[];
  /** The calls that started an execution. */
  readonly started: readonly StartExecutionCall[];
  /** Targets other than StartExecution that were called (the fake answers them with 400). */
  readonly unsupported: readonly string[];
  inject(fault: SfnFault): void;
  /** Forget calls, names and faults. */
  reset(): void;
  stop(): Promise<void>;
}

export interface SfnServerOptions {
  /**
   * Called after an execution was started (the reply is already on its way), as Step
   * Functions would then run it: tests run the definition locally from here.
   */
  onStart?: (call: StartExecutionCall & { executionArn: string }) => void;
}

export async function startSfnServer(options: SfnServerOptions = {}): Promise<SfnTestServer> {
  const calls: StartExecutionCall[] = [];
  const unsupported: string[] = [];
  const names = new Set<string>();
  const faults: SfnFault[] = [];

  const reply = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0', 'content-length': Buffer.byteLength(text), 'x-amzn-requestid': `req-${calls.length}` });
    res.end(text);
  };

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      if (req.method !== 'POST' || target !== 'AWSStepFunctions.StartExecution') {
        unsupported.push(`${req.method} ${target}`);
        return reply(res, 400, { __type: 'UnknownOperationException', message: `fake Step Functions: unsupported ${target || req.method}` });
      }
      let parsed: { stateMachineArn?: string; name?: string; input?: string };
      try {
        parsed = JSON.parse(body);
      } catch {
        return reply(res, 400, { __type: 'SerializationException', message: 'body is not JSON' });
      }
      const call = { stateMachineArn: parsed.stateMachineArn ?? '', name: parsed.name ?? '', input: parsed.input ?? '{}' };
      const i = faults.findIndex((f) => f.times > 0 && (f.match?.(call) ?? true));
      if (i >= 0) {
        const fault = faults[i]!;
        if (--fault.times === 0) faults.splice(i, 1);
        calls.push({ ...call, outcome: 'injected' });
        const type = fault.type ?? 'StateMachineDoesNotExist';
        return reply(res, fault.status ?? 400, { __type: type, message: `injected ${type}` });
      }
      // Names are unique per state machine, as in Step Functions.
      const key = `${call.stateMachineArn}:${call.name}`;
      if (names.has(key)) {
        calls.push({ ...call, outcome: 'ExecutionAlreadyExists' });
        return reply(res, 400, { __type: 'ExecutionAlreadyExists', message: `Execution Already Exists: '${call.stateMachineArn}:${call.name}'` });
      }
      names.add(key);
      calls.push({ ...call, outcome: 'started' });
      const executionArn = `${call.stateMachineArn.replace(':stateMachine:', ':execution:')}:${call.name}`;
      reply(res, 200, { executionArn, startDate: Date.now() / 1000 });
      options.onStart?.({ ...call, outcome: 'started', executionArn });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const credentials = { accessKeyId: 'FAKE', secretAccessKey: 'FAKE' };

  return {
    endpoint,
    credentials,
    env: { AWS_ENDPOINT_URL_SFN: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
    calls,
    get started() {
      return calls.filter((c) => c.outcome === 'started');
    },
    unsupported,
    inject: (fault) => void (fault.times > 0 && faults.push({ ...fault })),
    reset() {
      calls.length = 0;
      unsupported.length = 0;
      names.clear();
      faults.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
