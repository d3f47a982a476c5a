/**
 * Which object keys are fragments. Kept free of dependencies so that code that only routes
 * keys (the S3-event trigger) does not load the fragment decoders.
 */
export const FRAGMENT_EXTENSIONS = ['.arrow', '.arrows', '.feather', '.parquet'] as const;

/** True for a key ending in a fragment extension (any case). */
export function isFragmentKey(key: string): boolean {
  const lower = key.toLowerCase();
  return FRAGMENT_EXTENSIONS.some((ext) => lower.endsWith(ext));
}
