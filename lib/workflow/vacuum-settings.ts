/**
 * Vacuum's defaults and duration syntax, apart from vacuum itself so that the CLI can show
 * and check them without loading the manifest code.
 */
import { UsageError } from '../errors.js';

/** Default `--older-than`: 7 days. */
export const DEFAULT_VACUUM_OLDER_THAN = '7d';
export const DEFAULT_KEEP_VERSIONS = 10;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parse a duration: one or more `<integer><unit>` terms, units `ms`, `s`, `m`, `h`, `d`, `w`.
 *
 * @throws UsageError naming the value.
 * @example
 * parseDuration('7d') // 604800000
 * parseDuration('1h30m') // 5400000
 * parseDuration('0s') // 0
 */
export function parseDuration(text: string): number {
  const value = String(text).trim();
  const terms = /^(?:\d+(?:ms|s|m|h|d|w))+$/.test(value) ? [...value.matchAll(/(\d+)(ms|s|m|h|d|w)/g)] : [];
  const ms = terms.reduce((sum, [, n, unit]) => sum + Number(n) * UNITS[unit!]!, 0);
  if (terms.length === 0 || !Number.isSafeInteger(ms)) {
    throw new UsageError(`invalid duration ${JSON.stringify(text)}: expected a number and a unit (s, m, h, d, w), e.g. 7d, 12h, 30m or 0s`);
  }
  return ms;
}
