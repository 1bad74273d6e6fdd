//! Rows to Arrow: the one conversion of typed [`Cell`] rows into Arrow record batches, used by the
//! Parquet sink and by [`ArrowSink`], which keeps a run's tables in memory (for a caller that
//! wants Arrow, not files: the Python binding, a Spark task).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use claimline_model::{Cell, ColumnType, RunRecord, TableSchema};

use crate::{Error, SourceLines, TableSink};

/// The Arrow type of a column type.
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Text | ColumnType::Code | ColumnType::Json => DataType::Utf8,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The Arrow schema of a table: the column types of the Parquet files (Decimal128, Date32,
/// Timestamp µs UTC, Int64, Boolean, Utf8) with each column's description in its metadata.
pub fn arrow_schema(schema: &TableSchema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .columns
        .iter()
        .map(|c| {
            let f = Field::new(&c.name, arrow_type(&c.ty), true);
            match &c.description {
                Some(d) => f.with_metadata(HashMap::from([("description".into(), d.clone())])),
                None => f,
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The rows of one table as a record batch of [`arrow_schema()`]; a cell of the wrong type is an
/// [`Error::Row`] naming the table and column. The rows are owned (`Vec<Vec<Cell>>`: each is
/// dropped once read) or borrowed, or made as they are read (arrays of cells: no row is
/// allocated at all).
///
/// The rows are read once, in order, each cell appended to its column's builder (a row's cells
/// sit together in memory; a batch of a wide table does not fit a core's cache).
///
/// # Errors
/// [`Error::Row`]: for the first column, in the table's order, with a cell of the wrong type (its
/// first such cell) or a decimal of too many digits.
pub fn record_batch<I, R>(
    schema: &TableSchema,
    arrow: &SchemaRef,
    rows: I,
) -> Result<RecordBatch, Error>
where
    I: IntoIterator<Item = R>,
    I::IntoIter: ExactSizeIterator,
    R: AsRef<[Cell]>,
{
    let rows = rows.into_iter();
    let n = rows.len();
    let mut builders: Vec<Builder> = schema
        .columns
        .iter()
        .map(|c| Builder::new(&c.ty, n))
        .collect();
    // The first column with a cell of the wrong type, and that cell. Each row is dropped as soon
    // as it is read, while its memory is still in the cache.
    let mut bad: Option<(usize, &'static str)> = None;
    for row in rows {
        let row = row.as_ref();
        for (i, b) in builders.iter_mut().enumerate() {
            let c = row.get(i).unwrap_or(&Cell::Null);
            if !b.append(c) && bad.as_ref().is_none_or(|(j, _)| i < *j) {
                bad = Some((i, c.kind()));
            }
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(builders.len());
    for (i, (b, col)) in builders.into_iter().zip(&schema.columns).enumerate() {
        let row_error = |message: String| Error::Row {
            table: schema.name.clone(),
            column: col.name.clone(),
            message,
        };
        if let Some((j, cell)) = &bad
            && i == *j
        {
            return Err(row_error(format!("{cell} in a {:?} column", col.ty)));
        }
        columns.push(b.finish().map_err(|e| row_error(e.to_string()))?);
    }
    RecordBatch::try_new(arrow.clone(), columns).map_err(|e| Error::Row {
        table: schema.name.clone(),
        column: String::new(),
        message: e.to_string(),
    })
}

/// One column's Arrow builder, by [`ColumnType`].
enum Builder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Boolean(BooleanBuilder),
    /// With the column's precision and scale.
    Decimal(Decimal128Builder, u8, i8),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Builder {
    fn new(ty: &ColumnType, rows: usize) -> Builder {
        match ty {
            ColumnType::Text | ColumnType::Code | ColumnType::Json => {
                Builder::Text(StringBuilder::with_capacity(rows, rows * 8))
            }
            ColumnType::Integer => Builder::Integer(Int64Builder::with_capacity(rows)),
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Decimal { precision, scale } => {
                Builder::Decimal(Decimal128Builder::with_capacity(rows), *precision, *scale)
            }
            ColumnType::Date => Builder::Date(Date32Builder::with_capacity(rows)),
            ColumnType::Timestamp => Builder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
        }
    }

    /// Appends `c`; `false` (and a null) when it is not of the column's type.
    #[inline]
    fn append(&mut self, c: &Cell) -> bool {
        match (self, c) {
            // First: most cells of some tables (their unmapped fields).
            (b, Cell::Null) => b.append_null(),
            (Builder::Text(b), Cell::Text(s)) => b.append_value(s),
            (Builder::Integer(b), Cell::Int(v)) => b.append_value(*v),
            (Builder::Boolean(b), Cell::Bool(v)) => b.append_value(*v),
            (Builder::Decimal(b, ..), Cell::Decimal(v)) => b.append_value(*v),
            (Builder::Date(b), Cell::Date(v)) => b.append_value(*v),
            (Builder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(*v),
            // A cell of another type (NULLs were taken first).
            (b, _) => {
                b.append_null();
                return false;
            }
        }
        true
    }

    fn append_null(&mut self) {
        match self {
            Builder::Text(b) => b.append_null(),
            Builder::Integer(b) => b.append_null(),
            Builder::Boolean(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
        }
    }

    /// The column; a decimal's precision is checked here, not trusted (a value with too many
    /// digits would otherwise be written and misread).
    fn finish(self) -> Result<ArrayRef, arrow_schema::ArrowError> {
        Ok(match self {
            Builder::Text(mut b) => Arc::new(b.finish()),
            Builder::Integer(mut b) => Arc::new(b.finish()),
            Builder::Boolean(mut b) => Arc::new(b.finish()),
            Builder::Decimal(mut b, precision, scale) => {
                let a = b.finish().with_precision_and_scale(precision, scale)?;
                // Arrow's own message shows the value: claims data is PHI.
                a.validate_decimal_precision(precision).map_err(|_| {
                    arrow_schema::ArrowError::InvalidArgumentError(format!(
                        "a decimal of more than {precision} digits"
                    ))
                })?;
                Arc::new(a)
            }
            Builder::Date(mut b) => Arc::new(b.finish()),
            Builder::Timestamp(mut b) => Arc::new(b.finish()),
        })
    }
}

/// The tables an [`ArrowSink`] committed: per table name, its schema and batches.
pub type ArrowTables = Arc<Mutex<BTreeMap<String, (SchemaRef, Vec<RecordBatch>)>>>;

/// A [`TableSink`] that keeps a run's rows in memory and, at commit, appends them as Arrow record
/// batches (the Parquet files' types) to a shared [`ArrowTables`]. It keeps every run
/// ([`TableSink::replaces`] false), like Parquet.
pub struct ArrowSink {
    tables: Vec<(TableSchema, SchemaRef)>,
    rows: Vec<Vec<Vec<Cell>>>,
    store: ArrowTables,
}

impl ArrowSink {
    /// A sink writing `schemas` into `store`.
    pub fn new(schemas: &[TableSchema], store: ArrowTables) -> Self {
        ArrowSink {
            tables: schemas
                .iter()
                .map(|s| (s.clone(), arrow_schema(s)))
                .collect(),
            rows: vec![Vec::new(); schemas.len()],
            store,
        }
    }
}

impl TableSink for ArrowSink {
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
        let width = self.tables[table].0.columns.len();
        if let Some(row) = rows.iter().find(|r| r.len() != width) {
            return Err(Error::Row {
                table: self.tables[table].0.name.clone(),
                column: String::new(),
                message: format!("row has {} cells, the table {width} columns", row.len()),
            });
        }
        self.rows[table].extend(rows);
        Ok(())
    }

    fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        Ok(tables
            .iter()
            .map(|&t| crate::drop_listed_rows(&self.tables[t].0, &mut self.rows[t], lines))
            .collect())
    }

    fn prepare(&mut self, _: &RunRecord, _: bool) -> Result<(), Error> {
        Ok(())
    }

    fn commit(self: Box<Self>, _: &RunRecord) -> Result<(), Error> {
        let mut built: Vec<(String, SchemaRef, RecordBatch)> = Vec::new();
        for ((schema, arrow), rows) in self.tables.iter().zip(self.rows) {
            let batch = record_batch(schema, arrow, rows)?;
            built.push((schema.name.clone(), arrow.clone(), batch));
        }
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        for (name, arrow, batch) in built {
            store
                .entry(name)
                .or_insert_with(|| (arrow, Vec::new()))
                .1
                .push(batch);
        }
        Ok(())
    }
}

/// The inverse of [`record_batch`]: the cells of `batch` for the columns named `names`, row by
/// row, typed as the Parquet files store them (Utf8 → text, Int64, Boolean, Decimal128 →
/// decimal mantissa, Date32, Timestamp µs).
///
/// # Errors
/// [`Error::Row`] for a column the batch does not have, or of a type no claimline table has.
pub fn batch_cells(batch: &RecordBatch, names: &[&str]) -> Result<Vec<Vec<Cell>>, Error> {
    use arrow_array::{
        Array, BooleanArray, Date32Array, Decimal128Array, Int64Array, StringArray,
        TimestampMicrosecondArray,
    };
    let n = batch.num_rows();
    let mut rows: Vec<Vec<Cell>> = (0..n).map(|_| Vec::with_capacity(names.len())).collect();
    for name in names {
        let Ok(at) = batch.schema().index_of(name) else {
            return Err(Error::Row {
                table: String::new(),
                column: (*name).to_owned(),
                message: "no such column in the Parquet file".to_owned(),
            });
        };
        let col = batch.column(at);
        let any = col.as_any();
        let cell_at: Box<dyn Fn(usize) -> Cell> = if let Some(a) = any.downcast_ref::<StringArray>()
        {
            Box::new(move |i| Cell::text(a.value(i)))
        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
            Box::new(move |i| Cell::Int(a.value(i)))
        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
            Box::new(move |i| Cell::Bool(a.value(i)))
        } else if let Some(a) = any.downcast_ref::<Decimal128Array>() {
            Box::new(move |i| Cell::Decimal(a.value(i)))
        } else if let Some(a) = any.downcast_ref::<Date32Array>() {
            Box::new(move |i| Cell::Date(a.value(i)))
        } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
            Box::new(move |i| Cell::Timestamp(a.value(i)))
        } else {
            return Err(Error::Row {
                table: String::new(),
                column: (*name).to_owned(),
                message: format!("a {} column", col.data_type()),
            });
        };
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(if col.is_null(i) {
                Cell::Null
            } else {
                cell_at(i)
            });
        }
    }
    Ok(rows)
}

/// The rows of Parquet `files` (a table's parts) for the columns named `names`
/// ([`batch_cells`]).
///
/// # Errors
/// [`Error::Io`] or [`Error::Parquet`] naming the file that cannot be read.
pub fn read_parquet_cells(
    files: &[std::path::PathBuf],
    names: &[&str],
) -> Result<Vec<Vec<Cell>>, Error> {
    let mut out = Vec::new();
    for file in files {
        let f = std::fs::File::open(file).map_err(Error::io(file))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .map_err(Error::parquet(file))?;
        for batch in reader {
            let batch = batch.map_err(Error::parquet(file))?;
            out.extend(batch_cells(&batch, names)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Decimal128Array, StringArray};
    use claimline_model::Column;

    fn schema() -> TableSchema {
        TableSchema::new(
            "t",
            vec![
                Column::new(
                    "amount",
                    ColumnType::Decimal {
                        precision: 5,
                        scale: 2,
                    },
                ),
                Column::new("code", ColumnType::Code),
                Column::new("day", ColumnType::Date),
            ],
        )
    }

    fn row(amount: Cell, code: Cell, day: Cell) -> Vec<Cell> {
        vec![amount, code, day]
    }

    fn column_of(result: Result<RecordBatch, Error>) -> String {
        match result {
            Err(Error::Row { column, .. }) => column,
            other => panic!("expected a row error, got {other:?}"),
        }
    }

    #[test]
    fn rows_become_typed_columns() {
        let s = schema();
        let rows = vec![
            row(Cell::Decimal(12345), Cell::text("A1"), Cell::Date(3)),
            row(Cell::Null, Cell::Null, Cell::Null),
            // A short row: the missing cells are NULL.
            vec![Cell::Decimal(-5)],
        ];
        let b = record_batch(&s, &arrow_schema(&s), rows).expect("batch");
        assert_eq!(b.num_rows(), 3);
        let amount = b
            .column(0)
            .as_any()
            .downcast_ref::<Decimal128Array>()
            .expect("decimal");
        assert_eq!(amount.value_as_string(0), "123.45");
        assert!(amount.is_null(1));
        assert_eq!(amount.value_as_string(2), "-0.05");
        let code = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(code.value(0), "A1");
        assert!(code.is_null(1) && code.is_null(2));
        assert_eq!(b.column(2).null_count(), 2);
    }

    #[test]
    fn the_error_names_the_first_column_in_table_order() {
        let s = schema();
        let a = arrow_schema(&s);
        // Wrong cells in `day` (row 0) and in `code` (row 1): `code` comes first in the table.
        let rows = vec![
            row(Cell::Null, Cell::text("x"), Cell::Int(1)),
            row(Cell::Null, Cell::Int(2), Cell::Null),
        ];
        assert_eq!(column_of(record_batch(&s, &a, rows)), "code");
        // Too many digits in `amount` comes before a wrong cell in `code`; the message says
        // so without the amount (claims data is PHI: Arrow's own message shows it).
        let rows = vec![row(Cell::Decimal(1_234_567), Cell::Int(2), Cell::Null)];
        match record_batch(&s, &a, rows) {
            Err(Error::Row {
                column, message, ..
            }) => {
                assert_eq!(column, "amount");
                assert!(message.contains("more than 5 digits"), "{message}");
                // Neither the cents nor the amount Arrow would print (`12345.67`).
                assert!(!message.contains("1234567"), "{message}");
                assert!(!message.contains("12345"), "{message}");
            }
            other => panic!("expected a row error, got {other:?}"),
        }
        // The message says what kind of cell the column's first wrong one is, never its value.
        let rows = vec![
            row(Cell::Null, Cell::Null, Cell::text("1EG4TE5MK73")),
            row(Cell::Null, Cell::Null, Cell::Int(8)),
        ];
        match record_batch(&s, &a, rows) {
            Err(Error::Row { message, .. }) => {
                assert!(
                    message.starts_with("a text cell in a Date column"),
                    "{message}"
                );
                assert!(!message.contains("1EG4TE5MK73"), "{message}");
            }
            other => panic!("expected a row error, got {other:?}"),
        }
    }
}
