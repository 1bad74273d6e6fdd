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
/// [`Error::Row`] naming the table and column.
///
/// # Errors
/// [`Error::Row`].
pub fn record_batch(
    schema: &TableSchema,
    arrow: &SchemaRef,
    rows: Vec<Vec<Cell>>,
) -> Result<RecordBatch, Error> {
    let n = rows.len();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.columns.len());
    for (i, col) in schema.columns.iter().enumerate() {
        let bad = |c: &Cell| Error::Row {
            table: schema.name.clone(),
            column: col.name.clone(),
            message: format!("{c:?} in a {:?} column", col.ty),
        };
        let cells = rows.iter().map(|r| r.get(i).unwrap_or(&Cell::Null));
        let array: ArrayRef = match &col.ty {
            ColumnType::Text | ColumnType::Code | ColumnType::Json => {
                let mut b = StringBuilder::with_capacity(n, n * 8);
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Text(s) => b.append_value(s),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Integer => {
                let mut b = Int64Builder::with_capacity(n);
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Int(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(n);
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Bool(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Decimal { precision, scale } => {
                let mut b = Decimal128Builder::with_capacity(n);
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Decimal(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                let a = b
                    .finish()
                    .with_precision_and_scale(*precision, *scale)
                    .map_err(|e| Error::Row {
                        table: schema.name.clone(),
                        column: col.name.clone(),
                        message: e.to_string(),
                    })?;
                // Precision is checked here, not trusted: a value with too many digits
                // would otherwise be written and misread.
                a.validate_decimal_precision(*precision)
                    .map_err(|e| Error::Row {
                        table: schema.name.clone(),
                        column: col.name.clone(),
                        message: e.to_string(),
                    })?;
                Arc::new(a)
            }
            ColumnType::Date => {
                let mut b = Date32Builder::with_capacity(n);
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Date(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
            ColumnType::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
                for c in cells {
                    match c {
                        Cell::Null => b.append_null(),
                        Cell::Timestamp(v) => b.append_value(*v),
                        other => return Err(bad(other)),
                    }
                }
                Arc::new(b.finish())
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new(arrow.clone(), columns).map_err(|e| Error::Row {
        table: schema.name.clone(),
        column: String::new(),
        message: e.to_string(),
    })
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
