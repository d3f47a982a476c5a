/** `QueryCache` lives in lib/cache.ts, below the index kinds and the manifest that use it too. */
export { QueryCache } from '../cache.js';
