/**
 * Named error classes. Each class name is stable: the CLI maps them to exit codes and the
 * Step Functions workflow uses them as ASL error names for Retry/Catch.
 */

/** Base class: every error this library raises on purpose derives from it. */
export class ScalarIndexError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The caller asked for something malformed (bad flag value, bad parameter). CLI exit code 2. */
export class UsageError extends ScalarIndexError {}

/** A predicate could not be parsed. `position` is the 0-based character offset of the fault. */
export class PredicateSyntaxError extends ScalarIndexError {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

/** A predicate is well-formed but cannot be applied (unknown literal type for a column, …). */
export class PredicateTypeError extends ScalarIndexError {}

/** A fragment file could not be read: corrupt, truncated, or not Arrow/Parquet at all. */
export class FragmentReadError extends ScalarIndexError {}

/** A registered fragment's bytes changed after registration (its row addresses would move). */
export class FragmentChangedError extends ScalarIndexError {}

/** The column to index is absent from a fragment. */
export class MissingColumnError extends ScalarIndexError {}

/** The column's type is not indexable, or differs between fragments / from the index. */
export class ColumnTypeError extends ScalarIndexError {}

/** An index parameter is invalid (rows_per_zone of 0, conflicting definitions, …). */
export class IndexParamsError extends ScalarIndexError {}

/** An index or part file is malformed, or a set of part files does not match the plan. */
export class IndexFileError extends ScalarIndexError {}

/** A create-only write found the object already present. */
export class AlreadyExistsError extends ScalarIndexError {
  constructor(readonly key: string) {
    super(`object already exists: ${key}`);
  }
}

/** An object that must exist does not. */
export class NotFoundError extends ScalarIndexError {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** A manifest commit lost the race for its version too many times in a row. */
export class CommitConflictError extends ScalarIndexError {}

/** A path or object key tried to escape the dataset root, or is otherwise not allowed. */
export class InvalidPathError extends ScalarIndexError {}

/** A value is too large for the format (a serialized bitmap of 2 GiB or more, …). */
export class ValueTooLargeError extends ScalarIndexError {}

/**
 * The object store failed in a way retries did not cure: unreachable endpoint, access
 * denied, missing bucket, an object that changed while it was being read. Names the object.
 */
export class StoreError extends ScalarIndexError {}

/**
 * The object store refused in a way that no retry can fix (access denied, no such bucket, an
 * archived object, a disabled KMS key): a person has to change something first. A name of
 * its own, so that the workflow's Retry on `StoreError` does not match it and the build fails
 * at once, naming the object and the S3 error code.
 */
export class StorePermanentError extends StoreError {}
