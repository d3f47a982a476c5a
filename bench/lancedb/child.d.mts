export declare function serve(handlers: Record<string, (args: any) => Promise<unknown> | unknown>): void;
