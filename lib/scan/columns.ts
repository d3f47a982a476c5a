/** Picking columns of record batches by name, without copying their data. */
import * as arrow from 'apache-arrow';

/** The fields `columns` of `schema`, in that order (names it lacks are an error). */
export function pickSchema(schema: arrow.Schema, columns: readonly string[]): arrow.Schema {
  return new arrow.Schema(
    columns.map((name) => {
      const field = schema.fields.find((f) => f.name === name);
      if (!field) throw new Error(`pickSchema: no column '${name}'`);
      return field;
    }),
    schema.metadata,
  );
}

/** `batch` with only `columns` (in that order), sharing its data; a name it lacks is an error. */
export function selectColumns(batch: arrow.RecordBatch, columns: readonly string[]): arrow.RecordBatch {
  const fields = batch.schema.fields;
  if (fields.length === columns.length && fields.every((f, i) => f.name === columns[i])) return batch;
  const picked = columns.map((name) => {
    const i = fields.findIndex((f) => f.name === name);
    if (i < 0) throw new Error(`selectColumns: the batch has no column '${name}'`);
    return i;
  });
  const schema = new arrow.Schema(picked.map((i) => fields[i]!), batch.schema.metadata);
  return new arrow.RecordBatch(schema, arrow.makeData({ type: new arrow.Struct(schema.fields), length: batch.numRows, nullCount: 0, children: picked.map((i) => batch.data.children[i]!) }));
}
