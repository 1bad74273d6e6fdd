//! A Parquet file writer whose column chunks can be encoded on several workers at once.
//!
//! [`ColumnsWriter`] writes what [`ArrowWriter`] writes for the same batches, byte for byte: it
//! is `ArrowWriter`'s own column writers (`parquet::arrow::arrow_writer`'s lower-level API),
//! handed the same slices of each batch and cutting row groups where `ArrowWriter` cuts them
//! (its row and byte limits, checked after each batch as it checks them). A column's pages are
//! encoded and compressed by its own writer, so a batch's columns can go to different workers;
//! a load that ends with one big table to encode then uses every core instead of one. A unit
//! test writes the same batches both ways and compares the files.

use std::io::Write;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory,
    ArrowWriterOptions, compute_leaves,
};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, add_encoded_arrow_schema_to_metadata};
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::SchemaDescriptor;
use rayon::prelude::*;

/// The row group being filled: one writer per leaf column, and the rows given to it.
struct Group {
    writers: Vec<ArrowColumnWriter>,
    rows: usize,
}

impl Group {
    fn estimated_bytes(&self) -> usize {
        self.writers
            .iter()
            .map(ArrowColumnWriter::get_estimated_total_bytes)
            .sum()
    }
}

/// A table's schema as each of its Parquet files carries it, worked out once per table: the
/// Parquet schema and the `ARROW:schema` key-value that `ArrowWriter` converts and encodes again
/// for every file it starts (a load writes a part and up to sixteen `current/` buckets per claim
/// table, and a small load's time goes to such fixed costs).
#[derive(Debug, Clone)]
pub(crate) struct FileSchema {
    arrow: SchemaRef,
    parquet: SchemaDescriptor,
    /// `ARROW:schema`, encoded by parquet-rs's own function.
    arrow_kv: KeyValue,
}

impl FileSchema {
    /// The Parquet schema and `ARROW:schema` of `arrow`, as `ArrowWriter::try_new` makes them.
    ///
    /// # Errors
    /// What the schema conversion returns (a type Parquet cannot hold).
    pub(crate) fn new(arrow: SchemaRef) -> Result<Self> {
        let parquet = ArrowSchemaConverter::new().convert(&arrow)?;
        let mut scratch = WriterProperties::default();
        add_encoded_arrow_schema_to_metadata(&arrow, &mut scratch);
        let arrow_kv = scratch
            .key_value_metadata()
            .and_then(|kv| kv.last().cloned())
            .ok_or_else(|| ParquetError::General("no ARROW:schema was encoded".into()))?;
        Ok(FileSchema {
            arrow,
            parquet,
            arrow_kv,
        })
    }

    /// The Arrow schema.
    pub(crate) fn arrow(&self) -> &SchemaRef {
        &self.arrow
    }

    /// The Arrow schema a reader of a file written with `props` (from
    /// [`FileSchema::properties`]) reports: what parquet-rs's reader derives from the file's
    /// Parquet schema and key-values, worked out from the same two without the file.
    ///
    /// # Errors
    /// What the schema conversion returns.
    pub(crate) fn read_back(&self, props: &WriterProperties) -> Result<SchemaRef> {
        parquet::arrow::parquet_to_arrow_schema(&self.parquet, props.key_value_metadata())
            .map(std::sync::Arc::new)
    }

    /// `props` with `ARROW:schema` after their own key-values, where `ArrowWriter` puts it (one
    /// already there is taken out first, as `ArrowWriter` does).
    pub(crate) fn properties(&self, props: WriterProperties) -> WriterProperties {
        let mut kv = props.key_value_metadata().cloned().unwrap_or_default();
        kv.retain(|k| k.key != self.arrow_kv.key);
        kv.push(self.arrow_kv.clone());
        props
            .into_builder()
            .set_key_value_metadata(Some(kv))
            .build()
    }
}

/// Writes a Parquet file as [`ArrowWriter`] does; see the module docs.
pub(crate) struct ColumnsWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    max_rows: Option<usize>,
    max_bytes: Option<usize>,
    group: Option<Group>,
}

impl<W: Write + Send> ColumnsWriter<W> {
    /// A writer of `schema` to `out` with `props`, as `ArrowWriter::try_new` makes one; `props`
    /// come from [`FileSchema::properties`] (they carry the encoded schema).
    ///
    /// # Errors
    /// What `ArrowWriter::try_new` returns; a [`ParquetError::NYI`] for content-defined
    /// chunking, whose cuts this writer does not make, and for type coercion, which the
    /// schema's conversion did not apply; [`ParquetError::General`] for `props` whose last
    /// key-value is not the schema's `ARROW:schema`.
    pub(crate) fn try_new(out: W, schema: &FileSchema, props: WriterProperties) -> Result<Self> {
        if props.content_defined_chunking().is_some() {
            return Err(ParquetError::NYI(
                "content-defined chunking in ColumnsWriter".into(),
            ));
        }
        if props.coerce_types() {
            return Err(ParquetError::NYI("type coercion in ColumnsWriter".into()));
        }
        if props.key_value_metadata().and_then(|kv| kv.last()) != Some(&schema.arrow_kv) {
            return Err(ParquetError::General(
                "the writer properties do not end with the table's ARROW:schema".into(),
            ));
        }
        let max_rows = props.max_row_group_row_count();
        let max_bytes = props.max_row_group_bytes();
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true)
            .with_parquet_schema(schema.parquet.clone());
        let (file, factory) =
            ArrowWriter::try_new_with_options(out, schema.arrow.clone(), options)?
                .into_serialized_writer()?;
        Ok(ColumnsWriter {
            file,
            factory,
            schema: schema.arrow.clone(),
            max_rows,
            max_bytes,
            group: None,
        })
    }

    /// Writes `batch`, starting a new row group where `ArrowWriter::write` would.
    ///
    /// # Errors
    /// The column writers' errors.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut remaining = batch.clone();
        loop {
            let group = match &mut self.group {
                Some(g) => g,
                none => none.insert(Group {
                    writers: self
                        .factory
                        .create_column_writers(self.file.flushed_row_groups().len())?,
                    rows: 0,
                }),
            };
            let buffered = group.rows;
            // The leading rows that still fit in this row group, when the rest goes to a later
            // one: the row limit first, then the byte limit by the group's average row so far.
            let mut split_at = match self.max_rows {
                Some(max) if buffered + remaining.num_rows() > max => Some(max - buffered),
                _ => None,
            };
            let candidate = split_at.unwrap_or_else(|| remaining.num_rows());
            if let Some(max_bytes) = self.max_bytes
                && buffered > 0
            {
                let bytes = group.estimated_bytes();
                if bytes >= max_bytes {
                    self.flush()?;
                    continue;
                }
                let average = bytes / buffered;
                if let Some(fit) = (max_bytes - bytes).checked_div(average)
                    && candidate > fit
                {
                    if fit > 0 {
                        split_at = Some(fit);
                    } else {
                        self.flush()?;
                        continue;
                    }
                }
            }
            let rest = split_at.map(|n| {
                let rest = remaining.slice(n, remaining.num_rows() - n);
                remaining = remaining.slice(0, n);
                rest
            });
            self.write_group(&remaining)?;
            let full = self.group.as_ref().is_some_and(|g| {
                self.max_rows.is_some_and(|max| g.rows >= max)
                    || self.max_bytes.is_some_and(|max| g.estimated_bytes() >= max)
            });
            if full {
                self.flush()?;
            }
            match rest {
                Some(rest) => remaining = rest,
                None => return Ok(()),
            }
        }
    }

    /// Hands `batch`'s leaf columns to the open row group's writers, a column per rayon job. An
    /// error is the one `ArrowWriter` returns: the first field's, in the schema's order,
    /// whichever worker met it.
    fn write_group(&mut self, batch: &RecordBatch) -> Result<()> {
        let Some(group) = &mut self.group else {
            return Ok(());
        };
        group.rows += batch.num_rows();
        // `ArrowWriter` computes a field's leaves and writes them before the next field's: a
        // field whose leaves cannot be computed fails after the fields before it are written.
        let mut leaves: Vec<ArrowLeafColumn> = Vec::with_capacity(group.writers.len());
        let mut leaves_failed = None;
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            match compute_leaves(field, column) {
                Ok(l) => leaves.extend(l),
                Err(e) => {
                    leaves_failed = Some(e);
                    break;
                }
            }
        }
        if leaves.len() > group.writers.len() {
            return Err(ParquetError::General(format!(
                "{} leaf columns for {} column writers",
                leaves.len(),
                group.writers.len()
            )));
        }
        let pairs: Vec<_> = group.writers.iter_mut().zip(&leaves).collect();
        let written: Result<()> = pairs
            .into_par_iter()
            .with_max_len(1)
            .map(|(w, l)| w.write(l))
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        written.and(leaves_failed.map_or(Ok(()), Err))
    }

    /// Closes the open row group (its columns' last pages encoded a column per rayon job) into
    /// the file.
    fn flush(&mut self) -> Result<()> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        // In the writers' order, so an error is the first column's, as `ArrowWriter`'s is.
        let closed: Vec<Result<ArrowColumnChunk>> = group
            .writers
            .into_par_iter()
            .with_max_len(1)
            .map(|w| w.close())
            .collect();
        let chunks = closed.into_iter().collect::<Result<Vec<_>>>()?;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Closes the last row group, writes the footer and returns the output.
    ///
    /// # Errors
    /// The column writers' errors and the output's.
    pub(crate) fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        self.file.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::schema::types::ColumnPath;

    use super::*;

    fn batches(rows: usize, per_batch: usize) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("code", DataType::Utf8, true),
        ]));
        let mut out = Vec::new();
        let mut at = 0;
        while at < rows {
            let n = per_batch.min(rows - at);
            let ids: Vec<String> = (at..at + n).map(|i| format!("claim-{i:08}")).collect();
            let nums: Vec<Option<i64>> = (at..at + n)
                .map(|i| (i % 7 != 0).then_some((i * 31 % 1000) as i64))
                .collect();
            let codes: Vec<Option<&str>> = (at..at + n)
                .map(|i| ["A", "B", "99213", ""].get(i % 5).copied())
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(nums)),
                Arc::new(StringArray::from(codes)),
            ];
            out.push(RecordBatch::try_new(schema.clone(), columns).expect("batch"));
            at += n;
        }
        (schema, out)
    }

    fn props(max_rows: Option<usize>, max_bytes: Option<usize>) -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_column_compression(ColumnPath::from("n"), Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_column_dictionary_enabled(ColumnPath::from("code"), true)
            .set_max_row_group_row_count(max_rows)
            .set_max_row_group_bytes(max_bytes)
            .set_data_page_size_limit(4096)
            // Key-values of its own, as a history part's: the schema's goes after them.
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "claimline.table".into(),
                "t".to_owned(),
            )]))
            .build()
    }

    fn arrow_writer(schema: &SchemaRef, batches: &[RecordBatch], p: WriterProperties) -> Vec<u8> {
        let mut w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(p)).expect("writer");
        for b in batches {
            w.write(b).expect("write");
        }
        w.into_inner().expect("close")
    }

    fn columns_writer(schema: &SchemaRef, batches: &[RecordBatch], p: WriterProperties) -> Vec<u8> {
        let file = FileSchema::new(schema.clone()).expect("schema");
        let mut w = ColumnsWriter::try_new(Vec::new(), &file, file.properties(p)).expect("writer");
        for b in batches {
            w.write(b).expect("write");
        }
        w.into_inner().expect("close")
    }

    #[test]
    fn writes_what_arrow_writer_writes_byte_for_byte() {
        // One row group; row limits that cut inside and between batches; a byte limit that
        // cuts by the average row; both limits at once; an empty file.
        let cases = [
            (20_000, 4096, None, None),
            (20_000, 4096, Some(5000), None),
            (20_000, 1000, Some(4096), None),
            (20_000, 4096, None, Some(40_000)),
            (20_000, 777, Some(6000), Some(60_000)),
            (20_000, 1000, None, Some(40_000)),
            (0, 10, Some(10), None),
        ];
        for (rows, per_batch, max_rows, max_bytes) in cases {
            let (schema, batches) = batches(rows, per_batch);
            let expected = arrow_writer(&schema, &batches, props(max_rows, max_bytes));
            let got = columns_writer(&schema, &batches, props(max_rows, max_bytes));
            assert!(
                got == expected,
                "{rows} rows in batches of {per_batch}, limits {max_rows:?} rows and \
                 {max_bytes:?} bytes: the files differ"
            );
        }
        // The byte limit cuts row groups both ways: after a batch that filled the group, and
        // inside a batch, by the group's average row (a group that is not whole batches).
        let groups = |rows: usize, per_batch: usize| -> Vec<i64> {
            let (schema, batches) = batches(rows, per_batch);
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("cut.parquet");
            std::fs::write(
                &path,
                arrow_writer(&schema, &batches, props(None, Some(40_000))),
            )
            .expect("file");
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(
                std::fs::File::open(&path).expect("open"),
            )
            .expect("reader");
            use parquet::file::reader::FileReader;
            reader
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.num_rows())
                .collect()
        };
        assert!(groups(20_000, 4096).len() > 2);
        let split = groups(20_000, 1000);
        assert!(
            split.len() > 2 && split.iter().any(|n| n % 1000 != 0),
            "{split:?}"
        );
    }

    #[test]
    fn file_schema_properties_carry_the_schema_once_and_the_writer_wants_them() {
        let (schema, _) = batches(1, 1);
        let file = FileSchema::new(schema.clone()).expect("schema");
        let with = file.properties(props(None, None));
        let keys: Vec<&str> = with
            .key_value_metadata()
            .expect("key-values")
            .iter()
            .map(|k| k.key.as_str())
            .collect();
        assert_eq!(keys, ["claimline.table", "ARROW:schema"]);
        // Given twice, the schema's key-value is replaced, not repeated; one before other
        // key-values moves after them, as `ArrowWriter` moves it.
        let again = file.properties(with.clone());
        assert_eq!(again.key_value_metadata(), with.key_value_metadata());
        let mut first = with.key_value_metadata().expect("key-values").clone();
        first.rotate_right(1);
        let moved = file.properties(
            with.clone()
                .into_builder()
                .set_key_value_metadata(Some(first.clone()))
                .build(),
        );
        assert_eq!(moved.key_value_metadata(), with.key_value_metadata());
        // Not last: refused.
        let refused = ColumnsWriter::try_new(
            Vec::new(),
            &file,
            with.clone()
                .into_builder()
                .set_key_value_metadata(Some(first))
                .build(),
        );
        assert!(matches!(refused, Err(ParquetError::General(_))));
        // Properties made without it would write files without the schema: refused.
        let refused = ColumnsWriter::try_new(Vec::new(), &file, props(None, None));
        assert!(matches!(refused, Err(ParquetError::General(_))));
        // Another table's schema is not this one's.
        let other = FileSchema::new(Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Int64,
            true,
        )])))
        .expect("schema");
        let refused =
            ColumnsWriter::try_new(Vec::new(), &file, other.properties(props(None, None)));
        assert!(matches!(refused, Err(ParquetError::General(_))));
    }
}
