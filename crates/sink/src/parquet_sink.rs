//! The Parquet sink: one Hive-style partition per run, parts renamed into view only at commit.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::Error;
use crate::run::RunRecord;
use crate::schema::{Cell, ColumnType, TableSchema};
use crate::{Sink, SourceLines, create_private_dir, make_private};

/// Rows buffered per table before they become an Arrow batch.
const BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 256 * 1024;
/// Rows per part file before the next part starts.
const PART_ROWS: usize = 8 << 20;

struct TableWriter {
    schema: TableSchema,
    arrow: SchemaRef,
    dir: PathBuf,
    props: WriterProperties,
    writer: Option<(ArrowWriter<File>, PathBuf)>,
    rows_in_part: usize,
    parts: Vec<(PathBuf, PathBuf)>,
    buffer: Vec<Vec<Cell>>,
}

/// Writes each table to `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`; see the crate docs.
pub struct ParquetSink {
    root: PathBuf,
    tables: Vec<TableWriter>,
    committed: bool,
}

fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Text | ColumnType::Code | ColumnType::Json => DataType::Utf8,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

fn arrow_schema(schema: &TableSchema) -> SchemaRef {
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

fn properties(schema: &TableSchema) -> WriterProperties {
    let columns: Vec<serde_json::Value> = schema
        .columns
        .iter()
        .map(|c| serde_json::json!({"name": c.name, "type": c.ty, "description": c.description}))
        .collect();
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        // Row groups of 256 Ki rows: big enough for scans, small enough that the writer's
        // buffered (already encoded) group stays tens of MB for the widest claim line tables.
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(128 << 20))
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(vec![
            KeyValue::new("claimline.table".into(), schema.name.clone()),
            KeyValue::new(
                "claimline.columns".into(),
                serde_json::Value::Array(columns).to_string(),
            ),
        ]));
    for c in &schema.columns {
        if matches!(c.ty, ColumnType::Code | ColumnType::Date) {
            b = b.set_column_dictionary_enabled(ColumnPath::from(c.name.as_str()), true);
        }
    }
    b.build()
}

impl ParquetSink {
    /// Opens `DIR/parquet` (`root`) for run `run_id` writing `schemas`.
    ///
    /// # Errors
    /// [`Error::Io`] when the folders cannot be made.
    pub fn open(root: &Path, run_id: &str, schemas: &[TableSchema]) -> Result<Self, Error> {
        create_private_dir(root).map_err(Error::io(root))?;
        let mut tables: Vec<TableWriter> = schemas
            .iter()
            .map(|s| TableWriter {
                schema: s.clone(),
                arrow: arrow_schema(s),
                dir: root.join(&s.name).join(format!("run={run_id}")),
                props: properties(s),
                writer: None,
                rows_in_part: 0,
                parts: Vec::new(),
                buffer: Vec::with_capacity(BATCH_ROWS),
            })
            .collect();
        let mut sink = ParquetSink {
            root: root.to_owned(),
            tables: Vec::new(),
            committed: false,
        };
        // Parts are opened at once (hidden as `_part-…`), so a run that fails or is killed at
        // any point leaves only hidden files, which the next `Drop` or reader ignores.
        for t in &mut tables {
            let opened = t.open_part();
            if let Err(e) = opened {
                sink.tables = tables;
                return Err(e);
            }
        }
        sink.tables = tables;
        Ok(sink)
    }
}

impl ParquetSink {
    /// Removes from `tables`' parts of this run the rows whose (`_source_file`, `_line`) is in
    /// `lines`, before [`Sink::commit`]; returns the rows removed per table, in `tables` order.
    /// A part with such rows is written again without them (still hidden as `_part-…`); the
    /// table's next rows start a new part. For a caller that writes first and learns
    /// afterwards which rows must not stay (the claim-history rule).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Parquet`].
    pub fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        tables
            .iter()
            .map(|&t| self.tables[t].drop_rows(lines))
            .collect()
    }
}

impl TableWriter {
    fn drop_rows(&mut self, lines: &SourceLines) -> Result<u64, Error> {
        if lines.is_empty() {
            return Ok(0);
        }
        if !self.buffer.is_empty() {
            self.flush()?;
        }
        self.close_part()?;
        let (Ok(file_at), Ok(line_at)) = (
            self.arrow.index_of("_source_file"),
            self.arrow.index_of("_line"),
        ) else {
            return Ok(0);
        };
        let mut removed = 0;
        for (part, _) in &self.parts {
            removed += self.filter_part(part, file_at, line_at, lines)?;
        }
        Ok(removed)
    }

    /// The mask of the rows of `batch` to keep.
    fn keep(
        batch: &RecordBatch,
        file_at: usize,
        line_at: usize,
        lines: &SourceLines,
    ) -> arrow_array::BooleanArray {
        use arrow_array::{Array, Int64Array, StringArray};
        let files = batch.column(file_at).as_any().downcast_ref::<StringArray>();
        let nums = batch.column(line_at).as_any().downcast_ref::<Int64Array>();
        (0..batch.num_rows())
            .map(|i| {
                let dropped = match (files, nums) {
                    (Some(f), Some(n)) if f.is_valid(i) && n.is_valid(i) => lines
                        .get(f.value(i))
                        .is_some_and(|set| set.contains(&n.value(i))),
                    _ => false,
                };
                Some(!dropped)
            })
            .collect()
    }

    /// Writes `part` again without the rows in `lines`, if it has any; returns how many went.
    fn filter_part(
        &self,
        part: &Path,
        file_at: usize,
        line_at: usize,
        lines: &SourceLines,
    ) -> Result<u64, Error> {
        use parquet::arrow::ProjectionMask;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let open = || -> Result<ParquetRecordBatchReaderBuilder<File>, Error> {
            let f = File::open(part).map_err(Error::io(part))?;
            ParquetRecordBatchReaderBuilder::try_new(f).map_err(Error::parquet(part))
        };
        // First only the two lineage columns: most parts lose nothing and are left alone.
        let builder = open()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [file_at, line_at]);
        let reader = builder
            .with_projection(mask)
            .build()
            .map_err(Error::parquet(part))?;
        let mut removed = 0u64;
        for batch in reader {
            let batch = batch.map_err(Error::parquet(part))?;
            let keep = Self::keep(&batch, 0, 1, lines);
            removed += (batch.num_rows() - keep.true_count()) as u64;
        }
        if removed == 0 {
            return Ok(0);
        }
        let rewrite = part.with_extension("parquet.rewrite");
        let file = File::create(&rewrite).map_err(Error::io(&rewrite))?;
        make_private(&rewrite).map_err(Error::io(&rewrite))?;
        let mut w = ArrowWriter::try_new(file, self.arrow.clone(), Some(self.props.clone()))
            .map_err(Error::parquet(&rewrite))?;
        let reader = open()?.build().map_err(Error::parquet(part))?;
        for batch in reader {
            let batch = batch.map_err(Error::parquet(part))?;
            let keep = Self::keep(&batch, file_at, line_at, lines);
            let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(Error::parquet(part))?;
            let kept = RecordBatch::try_new(self.arrow.clone(), kept.columns().to_vec())
                .map_err(Error::parquet(part))?;
            if kept.num_rows() > 0 {
                w.write(&kept).map_err(Error::parquet(&rewrite))?;
            }
        }
        let file = w.into_inner().map_err(Error::parquet(&rewrite))?;
        file.sync_all().map_err(Error::io(&rewrite))?;
        std::fs::rename(&rewrite, part).map_err(Error::io(part))?;
        Ok(removed)
    }

    fn open_part(&mut self) -> Result<(), Error> {
        if self.writer.is_none() {
            create_private_dir(&self.dir).map_err(Error::io(&self.dir))?;
            let n = self.parts.len();
            let tmp = self.dir.join(format!("_part-{n}.parquet"));
            let done = self.dir.join(format!("part-{n}.parquet"));
            let file = File::create(&tmp).map_err(Error::io(&tmp))?;
            make_private(&tmp).map_err(Error::io(&tmp))?;
            let w = ArrowWriter::try_new(file, self.arrow.clone(), Some(self.props.clone()))
                .map_err(Error::parquet(&tmp))?;
            self.parts.push((tmp.clone(), done));
            self.writer = Some((w, tmp));
            self.rows_in_part = 0;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.open_part()?;
        let rows = std::mem::take(&mut self.buffer);
        let n = rows.len();
        let batch = self.batch(rows)?;
        if let Some((w, path)) = &mut self.writer {
            w.write(&batch).map_err(Error::parquet(path.as_path()))?;
        }
        self.rows_in_part += n;
        if self.rows_in_part >= PART_ROWS {
            self.close_part()?;
        }
        Ok(())
    }

    fn close_part(&mut self) -> Result<(), Error> {
        if let Some((w, path)) = self.writer.take() {
            let file = w.into_inner().map_err(Error::parquet(path.as_path()))?;
            file.sync_all().map_err(Error::io(&path))?;
        }
        Ok(())
    }

    fn batch(&self, rows: Vec<Vec<Cell>>) -> Result<RecordBatch, Error> {
        let n = rows.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.columns.len());
        for (i, col) in self.schema.columns.iter().enumerate() {
            let bad = |c: &Cell| Error::Row {
                table: self.schema.name.clone(),
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
                            table: self.schema.name.clone(),
                            column: col.name.clone(),
                            message: e.to_string(),
                        })?;
                    // Precision is checked here, not trusted: a value with too many digits
                    // would otherwise be written and misread.
                    a.validate_decimal_precision(*precision)
                        .map_err(|e| Error::Row {
                            table: self.schema.name.clone(),
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
        RecordBatch::try_new(self.arrow.clone(), columns).map_err(|e| Error::Row {
            table: self.schema.name.clone(),
            column: String::new(),
            message: e.to_string(),
        })
    }
}

impl Sink for ParquetSink {
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
        let t = &mut self.tables[table];
        let width = t.schema.columns.len();
        for row in rows {
            if row.len() != width {
                return Err(Error::Row {
                    table: t.schema.name.clone(),
                    column: String::new(),
                    message: format!("row has {} cells, the table {width} columns", row.len()),
                });
            }
            t.buffer.push(row);
            if t.buffer.len() >= BATCH_ROWS {
                t.flush()?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, run: &RunRecord) -> Result<(), Error> {
        for t in &mut self.tables {
            if !t.buffer.is_empty() {
                t.flush()?;
            }
            t.close_part()?;
        }
        for t in &self.tables {
            for (tmp, done) in &t.parts {
                std::fs::rename(tmp, done).map_err(Error::io(done))?;
            }
        }
        let runs = self.root.join("_claimline_runs.json");
        let mut all: Vec<RunRecord> = std::fs::read(&runs)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        all.push(run.clone());
        let tmp = self.root.join("_claimline_runs.json.tmp");
        let text = serde_json::to_vec_pretty(&all).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
        make_private(&tmp).map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, &runs).map_err(Error::io(&runs))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for t in &mut self.tables {
            t.writer = None;
            for (tmp, _) in &t.parts {
                let _ = std::fs::remove_file(tmp);
                let _ = std::fs::remove_file(tmp.with_extension("parquet.rewrite"));
            }
            let _ = std::fs::remove_dir(&t.dir);
            if let Some(parent) = t.dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

/// Reads back the named columns of every committed part of `table` under `root`
/// (`root/<table>/run=*/part-*.parquet`; parts still being written start with `_` and are
/// skipped), in file order. Text and code columns become [`Cell::Text`], booleans
/// [`Cell::Bool`], integers [`Cell::Int`], timestamps [`Cell::Timestamp`]; NULLs and other types
/// [`Cell::Null`]. A table with no folder yields no rows.
///
/// # Errors
/// [`Error::Io`] or [`Error::Parquet`] for an unreadable part, [`Error::Row`] for a missing column.
pub fn read_committed_parquet(
    root: &Path,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<Cell>>, Error> {
    use arrow_array::{Array, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray};
    let dir = root.join(table);
    let Ok(runs) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for run in runs.flatten() {
        let Ok(parts) = std::fs::read_dir(run.path()) else {
            continue;
        };
        files.extend(parts.flatten().map(|p| p.path()).filter(|p| {
            p.extension().is_some_and(|e| e == "parquet")
                && p.file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('_'))
        }));
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let f = File::open(&file).map_err(Error::io(&file))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .and_then(|b| b.build())
            .map_err(Error::parquet(&file))?;
        for batch in reader {
            let batch = batch.map_err(Error::parquet(&file))?;
            let arrays = columns
                .iter()
                .map(|name| {
                    batch
                        .column_by_name(name)
                        .cloned()
                        .ok_or_else(|| Error::Row {
                            table: table.to_owned(),
                            column: (*name).to_owned(),
                            message: format!("no such column in {}", file.display()),
                        })
                })
                .collect::<Result<Vec<ArrayRef>, Error>>()?;
            for i in 0..batch.num_rows() {
                let row = arrays
                    .iter()
                    .map(|a| {
                        if a.is_null(i) {
                            return Cell::Null;
                        }
                        let any = a.as_any();
                        if let Some(a) = any.downcast_ref::<StringArray>() {
                            Cell::Text(a.value(i).to_owned())
                        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                            Cell::Bool(a.value(i))
                        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
                            Cell::Int(a.value(i))
                        } else if let Some(a) = any.downcast_ref::<TimestampMicrosecondArray>() {
                            Cell::Timestamp(a.value(i))
                        } else {
                            Cell::Null
                        }
                    })
                    .collect();
                out.push(row);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn schema() -> TableSchema {
        TableSchema::new(
            "cclf1",
            vec![
                Column::new("CUR_CLM_UNIQ_ID", ColumnType::Code).describe("claim id"),
                Column::new(
                    "CLM_PMT_AMT",
                    ColumnType::Decimal {
                        precision: 13,
                        scale: 2,
                    },
                ),
                Column::new("CLM_FROM_DT", ColumnType::Date),
                Column::new("_last_updated", ColumnType::Timestamp),
                Column::new("_line", ColumnType::Integer),
            ],
        )
    }

    #[test]
    fn writes_typed_columns_and_renames_at_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[schema()]).expect("open");
        let rows: Vec<Vec<Cell>> = (0..20_000)
            .map(|i| {
                vec![
                    Cell::Text(format!("{i:013}")),
                    if i % 7 == 0 {
                        Cell::Null
                    } else {
                        Cell::Decimal(123_450)
                    },
                    Cell::Date(19_000),
                    Cell::Timestamp(1_700_000_000_000_000),
                    Cell::Int(i),
                ]
            })
            .collect();
        s.write(0, rows).expect("write");
        let part_dir = root.join("cclf1/run=r1");
        let visible = |d: &Path| {
            std::fs::read_dir(d)
                .map(|r| {
                    r.filter_map(Result::ok)
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('_'))
                        .count()
                })
                .unwrap_or(0)
        };
        assert_eq!(visible(&part_dir), 0, "nothing visible before commit");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        assert_eq!(visible(&part_dir), 1);
        let file = File::open(part_dir.join("part-0.parquet")).expect("part");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("reader");
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        assert!(kv.iter().any(|k| k.key == "claimline.columns"
            && k.value.as_deref().unwrap_or_default().contains("claim id")));
        let batches: Vec<RecordBatch> = reader
            .build()
            .expect("build")
            .map(|b| b.expect("batch"))
            .collect();
        let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(n, 20_000);
        let amounts = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Decimal128Array>()
            .expect("decimal column");
        assert_eq!(amounts.value_as_string(1), "1234.50");
        assert!(amounts.is_null(0));
        assert_eq!(
            batches[0].schema().field(3).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(root.join("_claimline_runs.json").exists());
    }

    #[test]
    fn abandoned_run_leaves_no_part_and_too_many_digits_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[schema()]).expect("open");
        let row = vec![
            Cell::Text("1".into()),
            Cell::Decimal(10i128.pow(14)),
            Cell::Null,
            Cell::Null,
            Cell::Null,
        ];
        let err = s.write(0, vec![row; BATCH_ROWS]).expect_err("precision");
        assert!(err.to_string().contains("CLM_PMT_AMT"), "{err}");
        drop(s);
        assert!(!root.join("cclf1/run=r1").exists());
    }
}
