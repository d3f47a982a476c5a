/**
 * Content checksums for JSON documents this project writes (the manifest, a build's plan): a
 * `crc32c` field holding the CRC32C, in S3's encoding, of the document's canonical JSON
 * without that field. Canonical JSON is `JSON.stringify` with every object's keys sorted and
 * no whitespace, so the checksum survives re-indentation or key reordering by other tools,
 * while any change to a value (a flipped digit) is caught.
 */
import { IndexFileError } from '../errors.js';
import { checksumMismatch, crc32c, encodeCrc32c } from './crc32c.js';

export const CONTENT_CHECKSUM_FIELD = 'crc32c';

/** `value` as canonical JSON: sorted keys, no whitespace, `undefined` members left out. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort();
    const members: string[] = [];
    for (const k of keys) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) members.push(`${JSON.stringify(k)}:${canonicalJson(v)}`);
    }
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The content checksum of a document (any `crc32c` field in it is left out). */
export function contentChecksum(doc: object): string {
  const { [CONTENT_CHECKSUM_FIELD]: _ignored, ...rest } = doc as Record<string, unknown>;
  return encodeCrc32c(crc32c(new TextEncoder().encode(canonicalJson(rest))));
}

/** `doc` with its content checksum as the last member (replacing any it had). */
export function withContentChecksum<T extends object>(doc: T): T & { crc32c: string } {
  const { [CONTENT_CHECKSUM_FIELD]: _old, ...rest } = doc as Record<string, unknown>;
  return { ...(rest as T), crc32c: contentChecksum(rest) };
}

/**
 * Verify a parsed document's content checksum.
 *
 * @throws IndexFileError naming `what` when the document is not a JSON object, has no checksum,
 *   or its checksum is malformed or does not match
 */
export function verifyContentChecksum(doc: unknown, what: string): void {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new IndexFileError(`${what} is not a JSON object`);
  // A document without its checksum cannot be told from one whose checksums were stripped,
  // after which any edit would pass: both are refused.
  if (!(CONTENT_CHECKSUM_FIELD in doc)) throw new IndexFileError(`${what} has no content checksum (${CONTENT_CHECKSUM_FIELD}); it was damaged or written by a release before checksums`);
  const recorded = (doc as Record<string, unknown>)[CONTENT_CHECKSUM_FIELD];
  if (typeof recorded !== 'string') throw new IndexFileError(`${what}: malformed checksum field ${JSON.stringify(recorded)}`);
  const actual = contentChecksum(doc);
  if (actual !== recorded) throw checksumMismatch(what, recorded, actual);
}
