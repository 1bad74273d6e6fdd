//! The Parquet sink: one Hive-style partition per run, written where no reader looks and moved
//! into place only at commit.
//!
//! A run's parts are written under the output's staging folder
//! (`DIR/.claimline-staging/<run_id>/<table>/part-<n>.parquet`), outside `DIR/parquet`, so no
//! reader's glob (`parquet/cclf5/*/*.parquet`, `parquet/**`) ever reaches a partial file. The
//! commit has two steps: [`ParquetSink::prepare`] closes every part and writes
//! `READY.json` (the run record, and whether SQLite's commit decides the run), and
//! [`ParquetSink::publish`] renames each table's folder to `parquet/<table>/run=<run_id>` and
//! records the run in `_claimline_runs.json`. [`recover`] finishes or removes what a process that
//! died left in the staging folder, so SQLite and Parquet never disagree about a run.
//!
//! Rows become Arrow batches of [`BATCH_ROWS`] rows, held back unencoded while all tables'
//! batches fit in [`PENDING_BYTES`]: the claim-history rule ([`TableSink::drop_rows`]) then
//! drops superseded rows in memory, and each part is encoded once, at [`ParquetSink::prepare`].
//! Past the budget the biggest table's batches wait on disk, unencoded (an Arrow IPC stream in
//! the run's staging folder, [`crate::spill`]), with each row's lineage beside them
//! (`<table>.lineage`, [`crate::lineage`]): the drop decides from it which rows go, and encodes
//! each part once from the rows read back. A drop after rows were encoded (a second one)
//! encodes the rest and rewrites the table's parts.
//! Every way, the parts are the ones the rows encoded as they came and written again without
//! the dropped rows would be, byte for byte.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::columns::{ColumnsWriter, FileSchema};
use crate::error::Error;
use crate::lineage::Lineage;
use crate::spill::SpillFile;
use claimline_model::{
    Cell, ColumnType, RunRecord, Syncer, TableSchema, create_private_dir, make_private,
};

use crate::{SourceLines, TableSink};

/// Rows buffered per table before they become an Arrow batch (and the rows of a batch
/// [`TableSink::write_batch`] takes as written row by row).
pub const BATCH_ROWS: usize = 8192;
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 256 * 1024;
/// Rows per part file before the next part starts.
const PART_ROWS: usize = 8 << 20;
/// Bytes of Arrow batches held back in memory, all tables together: while a run's batches fit,
/// the claim-history rule drops superseded rows from them in memory; beyond it, the biggest
/// table's batches are spilled to disk, unencoded, until the drop (or the commit) reads them
/// back to encode them.
const PENDING_BYTES: usize = 256 << 20;
/// Rows per batch when a part is read back (the reader's default batch size).
const READ_ROWS: usize = 1024;

/// `batches` (rows in part order) cut as a reader of their part hands them back: batches of
/// [`READ_ROWS`] rows from the part's first row across batch boundaries, the last one shorter.
/// A window inside one batch is a slice of it, not a copy.
///
/// # Errors
/// Arrow's, when batches do not fit `schema`.
pub(crate) fn read_windows(
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>, arrow_schema::ArrowError> {
    let mut out = Vec::new();
    let mut window: Vec<RecordBatch> = Vec::new();
    let mut in_window = 0;
    let mut close = |window: &mut Vec<RecordBatch>| {
        let batch = match window.as_slice() {
            [one] => one.clone(),
            many => arrow_select::concat::concat_batches(schema, many)?,
        };
        window.clear();
        out.push(batch);
        Ok::<(), arrow_schema::ArrowError>(())
    };
    for batch in batches {
        let mut at = 0;
        while at < batch.num_rows() {
            let len = (READ_ROWS - in_window).min(batch.num_rows() - at);
            window.push(batch.slice(at, len));
            in_window += len;
            at += len;
            if in_window == READ_ROWS {
                close(&mut window)?;
                in_window = 0;
            }
        }
    }
    if !window.is_empty() {
        close(&mut window)?;
    }
    Ok(out)
}

/// The staging folder of the output whose Parquet root is `root` (`DIR/parquet` →
/// `DIR/.claimline-staging`): outside the dataset, so readers never see what it holds.
pub fn staging_root(root: &Path) -> PathBuf {
    root.parent()
        .unwrap_or(Path::new("."))
        .join(".claimline-staging")
}

/// The name of the file that marks a run's staged parts complete.
const READY: &str = "READY.json";

/// What `READY.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ready {
    /// The run's record, appended to `_claimline_runs.json` when the parts are in place.
    run: RunRecord,
    /// SQLite's commit of the same run decides whether it happened (a `--format both` load);
    /// otherwise `READY.json` itself is the commit point.
    after_sqlite: bool,
}

struct TableWriter {
    schema: TableSchema,
    /// Its Arrow and Parquet schemas, worked out once for all its parts.
    file: FileSchema,
    dir: PathBuf,
    /// With the encoded schema ([`FileSchema::properties`]).
    props: WriterProperties,
    writer: Option<(ColumnsWriter<File>, PathBuf)>,
    rows_in_part: usize,
    /// Rows encoded into parts so far.
    encoded_rows: u64,
    parts: Vec<PathBuf>,
    /// [`PART_ROWS`]; tests set others.
    part_rows: usize,
    buffer: Vec<Vec<Cell>>,
    /// Batches past the memory budget, on disk: in row order after every encoded row, before
    /// `pending`.
    spilled: Option<Spilled>,
    /// Batches not encoded yet, in row order after every encoded and spilled row.
    pending: Vec<RecordBatch>,
    /// Their Arrow memory.
    pending_bytes: usize,
    /// Where closed parts go to be synced (the sink's, shared by its tables).
    syncer: Arc<Syncer>,
}

/// A table's batches spilled past the memory budget.
struct Spilled {
    file: SpillFile,
    /// Each batch's rows, in order.
    batches: Vec<usize>,
    /// Each row's lineage, for a drop, in a file beside the spill file (`<table>.lineage`):
    /// none for a table whose lineage columns are missing or not text and integers (a drop is
    /// refused before it reads any: [`lineage_columns`]).
    lineage: Option<Lineage>,
}

/// Notes the lineage of `batch`'s rows (of table `table`) in `lineage`.
fn add_lineage(
    lineage: &mut Lineage,
    batch: &RecordBatch,
    file_at: usize,
    line_at: usize,
    table: &str,
) -> Result<(), Error> {
    let (files, lines) =
        lineage_arrays(batch, file_at, line_at).map_err(|e| Error::lineage(table, e))?;
    lineage.add(files, lines)
}

/// The lineage columns of `batch`: an error when they are not text and integers (every row
/// would have been kept, the versions left out with them).
fn lineage_arrays(
    batch: &RecordBatch,
    file_at: usize,
    line_at: usize,
) -> Result<(&arrow_array::StringArray, &arrow_array::Int64Array), arrow_schema::ArrowError> {
    use arrow_array::{Int64Array, StringArray};
    let files = batch.column(file_at).as_any().downcast_ref::<StringArray>();
    let nums = batch.column(line_at).as_any().downcast_ref::<Int64Array>();
    match (files, nums) {
        (Some(files), Some(nums)) => Ok((files, nums)),
        _ => Err(arrow_schema::ArrowError::SchemaError(not_lineage(
            batch.column(file_at).data_type(),
            batch.column(line_at).data_type(),
        ))),
    }
}

/// Why rows cannot be dropped by lineage columns of these types.
fn not_lineage(file: &arrow_schema::DataType, line: &arrow_schema::DataType) -> String {
    format!(
        "the lineage columns are {file} and {line}, not text and integers: the rows of the versions left out cannot be found"
    )
}

/// Where `schema`'s lineage columns are (`_source_file`, `_line`), when it has both as text and
/// integers: the rows a drop can find.
fn lineage_columns(schema: &arrow_schema::Schema) -> Option<(usize, usize)> {
    use arrow_schema::DataType;
    let file_at = schema.index_of("_source_file").ok()?;
    let line_at = schema.index_of("_line").ok()?;
    (schema.field(file_at).data_type() == &DataType::Utf8
        && schema.field(line_at).data_type() == &DataType::Int64)
        .then_some((file_at, line_at))
}

/// A run's rows as the Parquet sink held them in memory until its commit: every table's
/// batches in the order of its one part, after the claim-history rule. The current tables
/// ([`crate::refresh_current`]) are built from them without reading the run back.
#[derive(Debug, Default)]
pub struct HeldRun {
    /// The run.
    pub run_id: String,
    /// Table name → its batches.
    pub tables: std::collections::HashMap<String, Vec<RecordBatch>>,
    /// Table name → the schema a reader of its part reports (the part need not be written
    /// yet).
    pub schemas: std::collections::HashMap<String, SchemaRef>,
}

/// Writes each table to `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`; see the module
/// docs.
pub struct ParquetSink {
    root: PathBuf,
    /// `DIR/.claimline-staging/<run_id>`.
    staging: PathBuf,
    tables: Vec<TableWriter>,
    /// Published, or left for [`recover`] to finish: nothing to remove on drop.
    done: bool,
    /// The record [`ParquetSink::prepare`] wrote.
    prepared: Option<RunRecord>,
    /// The deciding database's commit of the prepared run was attempted
    /// ([`TableSink::decided`]): the staged run stays for [`recover`] even if the sink is
    /// dropped.
    decided: bool,
    /// [`PENDING_BYTES`]; tests set others.
    pub(crate) pending_budget: usize,
    /// The run's id.
    run_id: String,
    /// Every table's rows, when all were held until [`ParquetSink::stage`].
    held: Option<HeldRun>,
    /// Every table's last rows are staged and `held` decided ([`ParquetSink::stage`]): nothing
    /// more may be written.
    staged: bool,
    /// Syncs the closed parts (each table holds it too) and the table folders.
    syncer: Arc<Syncer>,
}

/// Whether a column's values are dictionary-encoded in a run's part: codes and dates (few
/// values, repeated), and `_source_file` (one value per input file, which plain encoding
/// writes out and compresses again on every row). Not `_claim_key`, a code with about as many
/// values as rows: its dictionary is all the work of hashing every value and no saving.
fn dictionary_encoded(name: &str, ty: &ColumnType) -> bool {
    match name {
        "_source_file" => true,
        "_claim_key" => false,
        _ => matches!(ty, ColumnType::Code | ColumnType::Date),
    }
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
        if dictionary_encoded(&c.name, &c.ty) {
            b = b.set_column_dictionary_enabled(ColumnPath::from(c.name.as_str()), true);
        }
    }
    b.build()
}

impl ParquetSink {
    /// Tests: every table's rows per part.
    #[cfg(test)]
    pub(crate) fn set_part_rows(&mut self, rows: usize) {
        for t in &mut self.tables {
            t.part_rows = rows;
        }
    }

    /// Opens `DIR/parquet` (`root`) for run `run_id` writing `schemas`.
    ///
    /// # Errors
    /// [`Error::Io`] when the folders cannot be made; [`Error::Corrupt`] when the dataset's
    /// `_claimline_runs.json` cannot be read.
    pub fn open(root: &Path, run_id: &str, schemas: &[TableSchema]) -> Result<Self, Error> {
        create_private_dir(root).map_err(Error::io(root))?;
        // A damaged run list stops the run before it writes anything (the commit needs it).
        read_parquet_runs(root)?;
        let staging = staging_root(root).join(run_id);
        let syncer = Arc::new(Syncer::new());
        let mut tables: Vec<TableWriter> = schemas
            .iter()
            .map(|s| {
                let dir = staging.join(&s.name);
                let file =
                    FileSchema::new(crate::arrow::arrow_schema(s)).map_err(Error::parquet(&dir))?;
                Ok(TableWriter {
                    schema: s.clone(),
                    props: file.properties(properties(s)),
                    file,
                    dir,
                    writer: None,
                    rows_in_part: 0,
                    encoded_rows: 0,
                    parts: Vec::new(),
                    part_rows: PART_ROWS,
                    buffer: Vec::with_capacity(BATCH_ROWS),
                    spilled: None,
                    pending: Vec::new(),
                    pending_bytes: 0,
                    syncer: syncer.clone(),
                })
            })
            .collect::<Result<_, Error>>()?;
        // The tables' schemas are known good before anything is written.
        if staging.exists() {
            // What an earlier attempt of this run id left; `recover` has decided it already.
            std::fs::remove_dir_all(&staging).map_err(Error::io(&staging))?;
        }
        create_private_dir(&staging).map_err(Error::io(&staging))?;
        let mut sink = ParquetSink {
            root: root.to_owned(),
            staging,
            tables: Vec::new(),
            done: false,
            prepared: None,
            decided: false,
            pending_budget: PENDING_BYTES,
            run_id: run_id.to_owned(),
            held: None,
            staged: false,
            syncer,
        };
        // Every table gets a part at once, so a run's partition can always be read.
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

/// [`SourceLines`] with each file's lines sorted, for a walk along a table's rows (which come
/// file after file, in line order) instead of a hash lookup per row.
struct DroppedLines<'a>(std::collections::HashMap<&'a str, Vec<i64>>);

impl<'a> DroppedLines<'a> {
    fn new(lines: &'a SourceLines) -> Self {
        DroppedLines(
            lines
                .iter()
                .map(|(file, set)| {
                    let mut sorted: Vec<i64> = set.iter().copied().collect();
                    sorted.sort_unstable();
                    (file.as_str(), sorted)
                })
                .collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(Vec::is_empty)
    }

    /// The lines dropped from `file`, in order.
    fn of(&self, file: &str) -> &[i64] {
        self.0.get(file).map_or(&[], Vec::as_slice)
    }
}

/// The mask of `len` rows to keep, row `i` read from file and line `row(i)` (none: kept): those
/// not in `lines`.
fn keep_rows<'a>(
    len: usize,
    row: impl Fn(usize) -> Option<(&'a str, i64)>,
    lines: &DroppedLines<'_>,
) -> arrow_array::BooleanArray {
    // Rows come file after file, each file's in line order: the last file's dropped lines are
    // looked up once per run of rows, and walked along as the rows' lines grow (a search again
    // where they do not).
    let mut last: Option<&str> = None;
    let mut dropped: &[i64] = &[];
    let mut at = 0;
    let mut prev = i64::MIN;
    let mut keep = arrow_array::builder::BooleanBufferBuilder::new(len);
    for i in 0..len {
        let Some((file, n)) = row(i) else {
            keep.append(true);
            continue;
        };
        if last != Some(file) {
            last = Some(file);
            dropped = lines.of(file);
            prev = i64::MIN;
        }
        if prev == i64::MIN || n < prev {
            at = dropped.partition_point(|&d| d < n);
        } else {
            while dropped.get(at).is_some_and(|&d| d < n) {
                at += 1;
            }
        }
        prev = n;
        keep.append(dropped.get(at) != Some(&n));
    }
    arrow_array::BooleanArray::new(keep.finish(), None)
}

impl TableWriter {
    /// Drops the rows read from `lines`, the buffered rows staged first; returns how many went.
    fn drop_rows(&mut self, lines: &DroppedLines<'_>) -> Result<u64, Error> {
        if lines.is_empty() {
            return Ok(0);
        }
        // A table asked to drop lines has the lineage columns that say where its rows were
        // read: without them no row could be found, and every superseded version would stay.
        let arrow = self.file.arrow();
        let Some((file_at, line_at)) = lineage_columns(arrow) else {
            return Err(
                match (arrow.index_of("_source_file"), arrow.index_of("_line")) {
                    (Ok(file_at), Ok(line_at)) => Error::lineage(
                        &self.schema.name,
                        not_lineage(
                            arrow.field(file_at).data_type(),
                            arrow.field(line_at).data_type(),
                        ),
                    ),
                    _ => Error::no_lineage(&self.schema.name),
                },
            );
        };
        // Rows already encoded (a drop before this one): the rows still held are encoded after
        // them and every part is written again without the dropped rows, as when nothing was
        // held (the same parts, byte for byte).
        if self.encoded_rows > 0 {
            self.encode()?;
            self.close_part()?;
            let mut removed = 0;
            for part in &self.parts {
                removed += self.filter_part(part, file_at, line_at, lines)?;
            }
            return Ok(removed);
        }
        // Spilled rows, or held rows of more than one part (a narrow table within the budget):
        // encoded now, each part as the rewrite makes it. Held rows of one part stay held.
        let held: usize = self.pending.iter().map(RecordBatch::num_rows).sum();
        if self.spilled.is_some() || held >= self.part_rows {
            return self.encode_dropping(file_at, line_at, lines);
        }
        self.filter_pending(file_at, line_at, lines)
    }

    /// Encodes the spilled and held rows without the rows in `lines` (nothing encoded yet, the
    /// lineage columns text and integers); returns how many went. Each part comes out as
    /// [`TableWriter::filter_part`] writes it again after [`TableWriter::encode`]: cut where
    /// `encode` cuts (the part whose batches reach [`PART_ROWS`] rows closes), from its batches
    /// as they came when it loses no row, else from the windows a reader of it would be handed
    /// ([`read_windows`]), each without its dropped rows. Which rows go is decided from the
    /// rows' lineage before any is read back; each row is then read back once and encoded once.
    fn encode_dropping(
        &mut self,
        file_at: usize,
        line_at: usize,
        lines: &DroppedLines<'_>,
    ) -> Result<u64, Error> {
        let (spill, batches, lineage) = match self.spilled.take() {
            Some(Spilled {
                file,
                batches,
                lineage,
            }) => (Some(file), batches, lineage),
            None => (
                None,
                Vec::new(),
                Some(Lineage::in_memory(&self.schema.name)),
            ),
        };
        // (Kept for every spilled row whenever the lineage columns are text and integers, which
        // `drop_rows` checked.)
        let Some(mut lineage) = lineage else {
            return Err(Error::lineage(
                &self.schema.name,
                "the spilled rows' lineage was not kept",
            ));
        };
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for b in &pending {
            add_lineage(&mut lineage, b, file_at, line_at, &self.schema.name)?;
        }
        let mut lineage = lineage.read_back()?;
        let sizes: Vec<usize> = batches
            .iter()
            .copied()
            .chain(pending.iter().map(RecordBatch::num_rows))
            .collect();
        // The parts, as batch ranges, cut as `encode` cuts them.
        let mut parts = Vec::new();
        let (mut first, mut in_part) = (0, 0);
        for (i, n) in sizes.iter().enumerate() {
            in_part += n;
            if in_part >= self.part_rows {
                parts.push(first..i + 1);
                (first, in_part) = (i + 1, 0);
            }
        }
        if first < sizes.len() {
            parts.push(first..sizes.len());
        }
        let (spill_path, reader) = match spill {
            Some(file) => {
                let reader = file.read_back()?;
                (reader.path().to_owned(), Some(reader))
            }
            None => (self.dir.clone(), None),
        };
        let mut source = reader
            .into_iter()
            .flatten()
            .chain(pending.into_iter().map(Ok));
        let short = || Error::Parquet {
            path: spill_path.clone(),
            message: "the spill file holds other rows than were put in it".into(),
        };
        let mut removed = 0u64;
        for part in parts {
            let rows: usize = sizes[part.clone()].iter().sum();
            // Each reader window's rows to keep, from the rows' lineage read a window at a time.
            let masks: Vec<arrow_array::BooleanArray> = (0..rows)
                .step_by(READ_ROWS)
                .map(|at| {
                    let len = READ_ROWS.min(rows - at);
                    let window = lineage.next(len)?;
                    Ok(keep_rows(len, |i| window.row(i), lines))
                })
                .collect::<Result<_, Error>>()?;
            let gone: usize = masks.iter().map(|m| m.len() - m.true_count()).sum();
            removed += gone as u64;
            self.open_part()?;
            let Some((w, path)) = &mut self.writer else {
                continue;
            };
            if gone == 0 {
                for _ in part {
                    let batch = source.next().ok_or_else(short)??;
                    w.write(&batch).map_err(Error::parquet(path.as_path()))?;
                }
            } else {
                // The windows, gathered from the batches as they are read back.
                let mut current: Option<(RecordBatch, usize)> = None;
                for mask in masks {
                    let mut pieces = Vec::new();
                    let mut want = mask.len();
                    while want > 0 {
                        let (batch, at) = match current.take() {
                            Some(c) => c,
                            None => (source.next().ok_or_else(short)??, 0),
                        };
                        let n = want.min(batch.num_rows() - at);
                        pieces.push(batch.slice(at, n));
                        want -= n;
                        if at + n < batch.num_rows() {
                            current = Some((batch, at + n));
                        }
                    }
                    let window = match pieces.as_slice() {
                        [one] => one.clone(),
                        many => arrow_select::concat::concat_batches(self.file.arrow(), many)
                            .map_err(Error::parquet(path.as_path()))?,
                    };
                    let kept = if mask.true_count() == mask.len() {
                        window
                    } else {
                        arrow_select::filter::filter_record_batch(&window, &mask)
                            .map_err(Error::parquet(path.as_path()))?
                    };
                    if kept.num_rows() > 0 {
                        w.write(&kept).map_err(Error::parquet(path.as_path()))?;
                    }
                }
                debug_assert!(current.is_none(), "a part ends with a batch");
            }
            self.rows_in_part = rows;
            self.encoded_rows += rows as u64;
            self.close_part()?;
        }
        if source.next().is_some() {
            return Err(short());
        }
        if lineage.left() > 0 {
            return Err(Error::lineage(
                &self.schema.name,
                "the rows' lineage holds more rows than were written",
            ));
        }
        Ok(removed)
    }

    /// Drops the rows in `lines` from the batches not encoded yet; returns how many went.
    ///
    /// The kept rows are cut as [`TableWriter::filter_part`] cuts a part it reads back
    /// ([`read_windows`], each without its dropped rows), so a part comes out the same, byte for
    /// byte, whether its rows were dropped before or after it was encoded.
    fn filter_pending(
        &mut self,
        file_at: usize,
        line_at: usize,
        lines: &DroppedLines<'_>,
    ) -> Result<u64, Error> {
        let error = |e: arrow_schema::ArrowError| Error::Row {
            table: self.schema.name.clone(),
            column: String::new(),
            message: e.to_string(),
        };
        // Each window is looked up and cut on any worker that is free (a load with one claim
        // table would otherwise drop its rows on one core); the windows stay in order.
        use rayon::prelude::*;
        let windows: Vec<(RecordBatch, usize, usize)> =
            read_windows(self.file.arrow(), &self.pending)
                .map_err(error)?
                .into_par_iter()
                .map(|window| {
                    let mask = Self::keep(&window, file_at, line_at, lines)?;
                    if mask.true_count() == mask.len() {
                        return Ok((window, 0, 0));
                    }
                    let gone = mask.len() - mask.true_count();
                    let filtered = arrow_select::filter::filter_record_batch(&window, &mask)?;
                    let copied = filtered.get_array_memory_size();
                    Ok((filtered, gone, copied))
                })
                .collect::<Result<_, arrow_schema::ArrowError>>()
                .map_err(error)?;
        let (mut kept, mut removed, mut copied) = (Vec::with_capacity(windows.len()), 0, 0);
        for (window, gone, bytes) in windows {
            removed += gone;
            copied += bytes;
            if window.num_rows() > 0 {
                kept.push(window);
            }
        }
        if removed > 0 {
            // An upper bound: the held batches stay alive while a slice of them is kept, and
            // the filtered windows are new. None kept: nothing held.
            self.pending_bytes = if kept.is_empty() {
                0
            } else {
                self.pending_bytes + copied
            };
            self.pending = kept;
        }
        Ok(removed as u64)
    }

    /// The mask of the rows of `batch` to keep. An error when the lineage columns are not
    /// text and integers (every row would have been kept, the versions left out with them).
    fn keep(
        batch: &RecordBatch,
        file_at: usize,
        line_at: usize,
        lines: &DroppedLines<'_>,
    ) -> Result<arrow_array::BooleanArray, arrow_schema::ArrowError> {
        use arrow_array::Array;
        let (files, nums) = lineage_arrays(batch, file_at, line_at)?;
        let row = |i: usize| {
            (files.is_valid(i) && nums.is_valid(i)).then(|| (files.value(i), nums.value(i)))
        };
        Ok(keep_rows(batch.num_rows(), row, lines))
    }

    /// Writes `part` again without the rows in `lines`, if it has any; returns how many went.
    fn filter_part(
        &self,
        part: &Path,
        file_at: usize,
        line_at: usize,
        lines: &DroppedLines<'_>,
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
            let keep = Self::keep(&batch, 0, 1, lines).map_err(Error::parquet(part))?;
            removed += (batch.num_rows() - keep.true_count()) as u64;
        }
        if removed == 0 {
            return Ok(0);
        }
        let rewrite = part.with_extension("parquet.rewrite");
        let file = File::create(&rewrite).map_err(Error::io(&rewrite))?;
        make_private(&rewrite).map_err(Error::io(&rewrite))?;
        let mut w = ColumnsWriter::try_new(file, &self.file, self.props.clone())
            .map_err(Error::parquet(&rewrite))?;
        let reader = open()?.build().map_err(Error::parquet(part))?;
        for batch in reader {
            let batch = batch.map_err(Error::parquet(part))?;
            let keep = Self::keep(&batch, file_at, line_at, lines).map_err(Error::parquet(part))?;
            let kept = arrow_select::filter::filter_record_batch(&batch, &keep)
                .map_err(Error::parquet(part))?;
            let kept = RecordBatch::try_new(self.file.arrow().clone(), kept.columns().to_vec())
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
            let part = self.dir.join(format!("part-{}.parquet", self.parts.len()));
            let file = File::create(&part).map_err(Error::io(&part))?;
            make_private(&part).map_err(Error::io(&part))?;
            let w = ColumnsWriter::try_new(file, &self.file, self.props.clone())
                .map_err(Error::parquet(&part))?;
            self.parts.push(part.clone());
            self.writer = Some((w, part));
            self.rows_in_part = 0;
        }
        Ok(())
    }

    /// Turns the buffered rows into a batch held back for [`TableWriter::encode`].
    fn stage(&mut self) -> Result<(), Error> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let rows = std::mem::replace(&mut self.buffer, Vec::with_capacity(BATCH_ROWS));
        let batch = self.batch(rows)?;
        self.pending_bytes += batch.get_array_memory_size();
        self.pending.push(batch);
        Ok(())
    }

    /// Encodes the batches spilled and held back into the open part, starting the next part
    /// once a part's batches reach [`PART_ROWS`] rows.
    fn encode(&mut self) -> Result<(), Error> {
        if let Some(spilled) = self.spilled.take() {
            // Encoded without a drop: the rows' lineage is not read, and its file goes now.
            drop(spilled.lineage);
            let put: usize = spilled.batches.iter().sum();
            let reader = spilled.file.read_back()?;
            let path = reader.path().to_owned();
            let mut read = 0;
            for batch in reader {
                let batch = batch?;
                read += batch.num_rows();
                self.encode_batch(&batch)?;
            }
            if read != put {
                return Err(Error::Parquet {
                    path,
                    message: format!("the spill file holds {read} rows where {put} were put in it"),
                });
            }
        }
        for batch in std::mem::take(&mut self.pending) {
            self.encode_batch(&batch)?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    fn encode_batch(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        self.open_part()?;
        if let Some((w, path)) = &mut self.writer {
            w.write(batch).map_err(Error::parquet(path.as_path()))?;
        }
        self.rows_in_part += batch.num_rows();
        self.encoded_rows += batch.num_rows() as u64;
        if self.rows_in_part >= self.part_rows {
            self.close_part()?;
        }
        Ok(())
    }

    /// Moves the batches held back to the table's spill file (`<table>.spill.arrows` beside
    /// its staged folder), noting each row's lineage.
    fn spill(&mut self) -> Result<(), Error> {
        if self.pending.is_empty() {
            // Nothing held (every held row dropped, say): no bytes either.
            self.pending_bytes = 0;
            return Ok(());
        }
        let at = lineage_columns(self.file.arrow());
        let spilled = match &mut self.spilled {
            Some(spilled) => spilled,
            None => {
                let path = self
                    .dir
                    .with_file_name(format!("{}.spill.arrows", self.schema.name));
                self.spilled.insert(Spilled {
                    file: SpillFile::create(path, self.file.arrow())?,
                    batches: Vec::new(),
                    lineage: at
                        .map(|_| {
                            Lineage::on_disk(
                                &self.schema.name,
                                self.dir
                                    .with_file_name(format!("{}.lineage", self.schema.name)),
                            )
                        })
                        .transpose()?,
                })
            }
        };
        for batch in std::mem::take(&mut self.pending) {
            if let (Some(lineage), Some((file_at, line_at))) = (&mut spilled.lineage, at) {
                add_lineage(lineage, &batch, file_at, line_at, &self.schema.name)?;
            }
            spilled.file.write(&batch)?;
            spilled.batches.push(batch.num_rows());
        }
        self.pending_bytes = 0;
        Ok(())
    }

    /// Closes the open part and hands it to the syncer: the worker goes on encoding while the
    /// disk catches up. [`ParquetSink::prepare`] waits for every part before the commit point,
    /// and a part that could not be synced fails it there.
    fn close_part(&mut self) -> Result<(), Error> {
        if let Some((w, path)) = self.writer.take() {
            let file = w.into_inner().map_err(Error::parquet(path.as_path()))?;
            self.syncer.add(path, file);
        }
        Ok(())
    }

    fn batch(&self, rows: Vec<Vec<Cell>>) -> Result<RecordBatch, Error> {
        crate::arrow::record_batch(&self.schema, self.file.arrow(), rows)
    }
}

impl TableSink for ParquetSink {
    fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        if lines.is_empty() {
            return Ok(vec![0; tables.len()]);
        }
        if self.staged {
            return Err(after_staging("drop rows"));
        }
        // The tables' rows all held back (each table's last rows made a batch on a worker of
        // its own), within the budget as at any time.
        use rayon::prelude::*;
        self.tables
            .par_iter_mut()
            .enumerate()
            .filter(|(t, _)| tables.contains(t))
            .try_for_each(|(_, w)| w.stage())?;
        self.within_budget()?;
        // Each table's rows are dropped on their own worker.
        let lines = DroppedLines::new(lines);
        let removed: Vec<(usize, u64)> = self
            .tables
            .par_iter_mut()
            .enumerate()
            .filter(|(t, _)| tables.contains(t))
            .map(|(t, w)| w.drop_rows(&lines).map(|n| (t, n)))
            .collect::<Result<_, Error>>()?;
        Ok(tables
            .iter()
            .map(|t| removed.iter().find(|(u, _)| u == t).map_or(0, |(_, n)| *n))
            .collect())
    }

    // `remove_keys`, `replaces`, `decides`: the defaults. Every run is kept; readers apply the
    // rule (`_claimline_claims`).

    fn prepare(&mut self, run: &RunRecord, decided_elsewhere: bool) -> Result<(), Error> {
        ParquetSink::prepare(self, run, decided_elsewhere)
    }

    fn stage(&mut self) -> Result<(), Error> {
        ParquetSink::stage(self)
    }

    fn decided(&mut self) {
        self.decided = self.prepared.is_some();
    }

    fn held(&mut self) -> Option<HeldRun> {
        self.held.take()
    }

    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
        if self.staged {
            return Err(after_staging("write"));
        }
        let t = &mut self.tables[table];
        let width = t.schema.columns.len();
        let mut staged = false;
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
                t.stage()?;
                staged = true;
            }
        }
        if staged {
            self.within_budget()?;
        }
        Ok(())
    }

    fn write_batch(&mut self, table: usize, batch: &RecordBatch) -> Result<(), Error> {
        if self.staged {
            return Err(after_staging("write"));
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let t = &mut self.tables[table];
        let fits = batch.num_columns() == t.file.arrow().fields().len()
            && batch
                .schema()
                .fields()
                .iter()
                .zip(t.file.arrow().fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !fits {
            return Err(Error::Row {
                table: t.schema.name.clone(),
                column: String::new(),
                message: "a batch whose columns are not the table's".into(),
            });
        }
        // After the rows written before it, in order.
        t.stage()?;
        let batch = RecordBatch::try_new(t.file.arrow().clone(), batch.columns().to_vec())
            .map_err(Error::parquet(&t.dir))?;
        t.pending_bytes += batch.get_array_memory_size();
        t.pending.push(batch);
        self.within_budget()
    }

    fn commit(mut self: Box<Self>, run: &RunRecord) -> Result<(), Error> {
        if self.prepared.is_none() {
            ParquetSink::prepare(&mut self, run, false)?;
        }
        self.publish()
    }
}

impl ParquetSink {
    /// Spills the biggest tables' held-back batches until those of all tables fit in
    /// [`PENDING_BYTES`].
    fn within_budget(&mut self) -> Result<(), Error> {
        while self.tables.iter().map(|t| t.pending_bytes).sum::<usize>() > self.pending_budget {
            let Some(t) = self.tables.iter_mut().max_by_key(|t| t.pending_bytes) else {
                break;
            };
            t.spill()?;
        }
        Ok(())
    }

    /// The first step of the commit: closes every part (synced to disk) and writes `READY.json`
    /// with `run`. `after_sqlite`: SQLite's commit of the same run id decides whether the run
    /// happened (a process that dies before it leaves a run that [`recover`] removes; after
    /// it, one that [`recover`] publishes). Without SQLite, `READY.json` is the commit point.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Parquet`]; the sink can then only be dropped.
    pub fn prepare(&mut self, run: &RunRecord, after_sqlite: bool) -> Result<(), Error> {
        // Checked again before the commit point: publishing must not fail on it afterwards.
        read_parquet_runs(&self.root)?;
        self.stage()?;
        // Every table's batches are encoded and its part closed on its own worker, its columns
        // on any worker that is free (a load of one table would otherwise end on one core).
        use rayon::prelude::*;
        self.tables.par_iter_mut().try_for_each(|t| {
            t.encode()?;
            t.close_part()
        })?;
        // Every part, and every table folder's entries, on disk before `READY.json`.
        for t in &self.tables {
            self.syncer.add_folder(&t.dir).map_err(Error::io(&t.dir))?;
        }
        self.syncer
            .wait()
            .map_err(|(path, source)| Error::Io { path, source })?;
        write_ready(&self.staging, run, after_sqlite)?;
        self.prepared = Some(run.clone());
        Ok(())
    }

    /// Stages every table's last rows (each on a worker of its own) and, when every table's
    /// rows are held and go to one part, keeps them for [`TableSink::held`]: the rows are then
    /// final, and a caller can derive more from them while [`ParquetSink::prepare`] encodes.
    /// Nothing can be written after it. Once per run; [`ParquetSink::prepare`] calls it if no
    /// one did.
    ///
    /// # Errors
    /// [`Error::Row`] for rows that do not fit their table, [`Error::Parquet`] for a schema a
    /// reader could not read back.
    pub fn stage(&mut self) -> Result<(), Error> {
        if self.staged {
            return Ok(());
        }
        use rayon::prelude::*;
        self.tables
            .par_iter_mut()
            .try_for_each(TableWriter::stage)?;
        // Kept (the batches' buffers, not copies) when every table's rows were held and go to
        // one part.
        if self.tables.iter().all(|t| {
            t.encoded_rows == 0
                && t.spilled.is_none()
                && t.pending.iter().map(RecordBatch::num_rows).sum::<usize>() < t.part_rows
        }) {
            let mut schemas = std::collections::HashMap::new();
            for t in &self.tables {
                let schema = t.file.read_back(&t.props).map_err(Error::parquet(&t.dir))?;
                schemas.insert(t.schema.name.clone(), schema);
            }
            self.held = Some(HeldRun {
                run_id: self.run_id.clone(),
                tables: self
                    .tables
                    .iter()
                    .map(|t| (t.schema.name.clone(), t.pending.clone()))
                    .collect(),
                schemas,
            });
        }
        self.staged = true;
        Ok(())
    }

    /// The second step of the commit: moves each table's partition into place and records the
    /// run in `_claimline_runs.json`. On failure the staged run stays for [`recover`] to finish
    /// (SQLite may already hold it).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Corrupt`] when `_claimline_runs.json` cannot be read.
    pub fn publish(mut self: Box<Self>) -> Result<(), Error> {
        let Some(run) = self.prepared.take() else {
            return Err(Error::Row {
                table: String::new(),
                column: String::new(),
                message: "publish before prepare".into(),
            });
        };
        // From here on the staged run is complete: whatever happens, it is not removed on drop.
        self.done = true;
        publish_staged(&self.root, &self.staging, &run)
    }
}

/// A change asked of a sink whose rows are final ([`ParquetSink::stage`]): they may have been
/// handed over ([`TableSink::held`]).
fn after_staging(what: &str) -> Error {
    Error::Row {
        table: String::new(),
        column: String::new(),
        message: format!("{what} after the rows were staged for the commit"),
    }
}

/// [`claimline_model::sync_dir`], as this crate's error.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    claimline_model::sync_dir(dir).map_err(Error::io(dir))
}

/// [`claimline_model::write_atomic`], as this crate's error.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    claimline_model::write_atomic(path, bytes).map_err(Error::io(path))
}

/// The run records of `DIR/parquet/_claimline_runs.json` (empty when there is none).
///
/// # Errors
/// [`Error::Corrupt`] when the file is there but is not a list of run records; [`Error::Io`]
/// when it cannot be read.
pub fn read_parquet_runs(root: &Path) -> Result<Vec<RunRecord>, Error> {
    let path = root.join("_claimline_runs.json");
    let runs: Vec<RunRecord> = match claimline_model::read_present(&path) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: format!(
                "not a list of run records ({})",
                claimline_model::without_values(&e.to_string())
            ),
        })?,
        Ok(None) => Vec::new(),
        Err(e) => return Err(Error::Io { path, source: e }),
    };
    // Each run is recorded once (a run id loaded again replaces its record): a list that holds
    // one twice was not written by claimline, and which record stands cannot be told.
    let mut ids = std::collections::HashSet::new();
    if let Some(twice) = runs.iter().find(|r| !ids.insert(r.run_id.as_str())) {
        return Err(Error::Corrupt {
            path,
            message: format!("records run {} twice", twice.run_id),
        });
    }
    Ok(runs)
}

/// Commits a run whose parts another engine wrote (`claimline.spark`) under
/// `staging_root(root)/<run_id>/<table>/`, as the Parquet sink commits its own: every file and
/// folder there synced, `READY.json` written (the commit point: a process that dies after it
/// leaves a run that [`recover`] publishes), then each table's folder moved into place and the
/// run recorded in `_claimline_runs.json`. On a failure after the commit point the staged run
/// stays for the next command's [`recover`] to finish (changed in the thirty-first round, found
/// by a review: Spark renamed its partitions itself, and a failure among them left unrecorded
/// partitions that nothing finished or removed).
///
/// # Errors
/// [`Error::Corrupt`] when `_claimline_runs.json` cannot be read (nothing moves then);
/// [`Error::Io`].
pub fn commit_staged_run(root: &Path, run: &RunRecord) -> Result<(), Error> {
    let staging = staging_root(root).join(&run.run_id);
    read_parquet_runs(root)?;
    // Every part and folder on disk before `READY.json`, as `ParquetSink::prepare` has them.
    let syncer = Syncer::new();
    sync_tree(&syncer, &staging)?;
    syncer
        .wait()
        .map_err(|(path, source)| Error::Io { path, source })?;
    write_ready(&staging, run, false)?;
    publish_staged(root, &staging, run)
}

/// Hands every file and folder under `dir` (and `dir`) to `syncer`.
fn sync_tree(syncer: &Syncer, dir: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(Error::io(&path))?.is_dir() {
            sync_tree(syncer, &path)?;
        } else {
            let file = File::open(&path).map_err(Error::io(&path))?;
            syncer.add(path, file);
        }
    }
    syncer.add_folder(dir).map_err(Error::io(dir))
}

/// Writes a staged run's `READY.json` (`run`; whether SQLite's commit decides it), synced: the
/// run's commit point when nothing else decides it.
fn write_ready(staging: &Path, run: &RunRecord, after_sqlite: bool) -> Result<(), Error> {
    let ready = Ready {
        run: run.clone(),
        after_sqlite,
    };
    let text = serde_json::to_vec_pretty(&ready).map_err(|e| Error::Io {
        path: staging.join(READY),
        source: e.into(),
    })?;
    write_atomically(&staging.join(READY), &text)?;
    sync_dir(staging)
}

/// The run records `all` once `run` is recorded: last, in place of an earlier run of its id.
pub(crate) fn with_run(mut all: Vec<RunRecord>, run: &RunRecord) -> Vec<RunRecord> {
    all.retain(|r| r.run_id != run.run_id);
    all.push(run.clone());
    all
}

fn write_parquet_runs(root: &Path, all: Vec<RunRecord>, run: &RunRecord) -> Result<(), Error> {
    let all = with_run(all, run);
    let text = serde_json::to_vec_pretty(&all).map_err(|e| Error::Io {
        path: root.join("_claimline_runs.json"),
        source: e.into(),
    })?;
    write_atomically(&root.join("_claimline_runs.json"), &text)
}

/// Moves the staged tables of `run` from `staging` into `root` and records the run. Idempotent:
/// a table already moved is skipped, so a publish cut short can be run again.
fn publish_staged(root: &Path, staging: &Path, run: &RunRecord) -> Result<(), Error> {
    // Read first: a damaged run list stops the publish before anything moves.
    let all = read_parquet_runs(root)?;
    let mut tables: Vec<(String, PathBuf)> = std::fs::read_dir(staging)
        .map_err(Error::io(staging))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name != "replaced")
        .collect();
    // The claim versions last: a reader of the dataset (the README's query, `current/views.sql`)
    // takes a claim's rows from the run its versions name, so until they are in place it reads
    // the previous runs' rows, not a version whose rows have not arrived (a process killed in
    // between leaves that state for the next command to finish).
    tables.sort_by(|(a, _), (b, _)| {
        (a == crate::current::CLAIMS, a).cmp(&(b == crate::current::CLAIMS, b))
    });
    let partition = format!("run={}", run.run_id);
    for (table, from) in &tables {
        let dir = root.join(table);
        create_private_dir(&dir).map_err(Error::io(&dir))?;
        let to = dir.join(&partition);
        if to.exists() {
            // The same run id loaded again (`--run-id`): the old partition goes aside first.
            let aside = staging.join("replaced").join(table);
            if aside.exists() {
                std::fs::remove_dir_all(&aside).map_err(Error::io(&aside))?;
            }
            create_private_dir(staging.join("replaced").as_path())
                .map_err(Error::io(staging.join("replaced")))?;
            std::fs::rename(&to, &aside).map_err(Error::io(&to))?;
        }
        std::fs::rename(from, &to).map_err(Error::io(&to))?;
        sync_dir(&dir)?;
        // After each table (`parquet.publish@N`: the N-th in this order).
        claimline_fault::point("parquet.publish").map_err(Error::io(&to))?;
    }
    write_parquet_runs(root, all, run)?;
    std::fs::remove_dir_all(staging).map_err(Error::io(staging))?;
    if let Some(parent) = staging.parent() {
        // Only succeeds when no other run is staged.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// What [`recover`] did with a run a dead process left staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// Its commit had happened (SQLite holds it, or it was Parquet's own): its partitions were
    /// moved into place.
    Published(String),
    /// Its commit had not happened: its staged parts were removed.
    Removed(String),
}

/// Brings an output's Parquet dataset (`root` = `DIR/parquet`) to a committed state after a
/// process died or failed in the middle of a load: every run staged in `DIR/.claimline-staging`
/// is published when its commit happened (`READY.json` written and, for a run whose commit point
/// was a database's, `committed(record)` says the database holds that very run: its id and its
/// start, so a run id loaded again is not taken for the earlier load of it) and removed
/// otherwise. Files that older versions left inside the dataset (`_part-*.parquet`,
/// `*.parquet.rewrite`, and partitions with nothing else) are removed. Call it while holding the
/// output's lock.
///
/// # Errors
/// [`Error::Io`], [`Error::Sqlite`]; [`Error::Corrupt`] for an unreadable `READY.json` or
/// `_claimline_runs.json` (nothing is changed then).
pub fn recover(
    root: &Path,
    committed: &mut dyn FnMut(&RunRecord) -> Result<bool, Error>,
) -> Result<Vec<Recovered>, Error> {
    // A damaged run list stops every command before anything is touched.
    read_parquet_runs(root)?;
    let mut done = Vec::new();
    let staging = staging_root(root);
    let mut runs: Vec<PathBuf> = match std::fs::read_dir(&staging) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(&staging)(e)),
    };
    runs.sort();
    // Every staged run's record read before any is acted on: a damaged one stops the command
    // with nothing changed (not after the runs before it were published or removed).
    let mut staged = Vec::with_capacity(runs.len());
    for dir in runs {
        let ready_path = dir.join(READY);
        let ready: Option<Ready> = match claimline_model::read_present(&ready_path) {
            Ok(Some(bytes)) => {
                Some(serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                    path: ready_path.clone(),
                    message: format!(
                        "not a staged run's record ({})",
                        claimline_model::without_values(&e.to_string())
                    ),
                })?)
            }
            Ok(None) => None,
            Err(e) => return Err(Error::io(&ready_path)(e)),
        };
        staged.push((dir, ready));
    }
    for (dir, ready) in staged {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let committed = match &ready {
            None => false,
            Some(r) if !r.after_sqlite => true,
            Some(r) => committed(&r.run)?,
        };
        match ready {
            Some(r) if committed => {
                publish_staged(root, &dir, &r.run)?;
                done.push(Recovered::Published(r.run.run_id));
            }
            _ => {
                std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
                done.push(Recovered::Removed(id));
            }
        }
    }
    if staging.is_dir() {
        let _ = std::fs::remove_dir(&staging);
    }
    remove_legacy_leftovers(root)?;
    Ok(done)
}

/// Removes what versions before the staging folder left inside the dataset when a load died:
/// hidden `_part-*.parquet` and `*.parquet.rewrite` files, and partitions left empty.
fn remove_legacy_leftovers(root: &Path) -> Result<(), Error> {
    let Ok(tables) = std::fs::read_dir(root) else {
        return Ok(());
    };
    for table in tables
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    {
        let Ok(parts) = std::fs::read_dir(table.path()) else {
            continue;
        };
        for partition in parts
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            let Ok(files) = std::fs::read_dir(partition.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if (name.starts_with("_part-") && name.ends_with(".parquet"))
                    || name.ends_with(".parquet.rewrite")
                {
                    std::fs::remove_file(f.path()).map_err(Error::io(f.path()))?;
                }
            }
            // Only succeeds when nothing is left.
            let _ = std::fs::remove_dir(partition.path());
        }
    }
    Ok(())
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        // After the deciding database's commit was attempted, whether the run happened is its
        // to say: [`recover`] asks it and publishes the staged run or removes it.
        if self.done || self.decided {
            return;
        }
        // Not committed (prepared or not): the staged run goes; nothing was ever in the dataset.
        for t in &mut self.tables {
            t.writer = None;
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        if let Some(parent) = self.staging.parent() {
            // Only succeeds when no other run is staged.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Reads back the named columns of every committed part of `table` under `root`
/// (`root/<table>/run=*/part-*.parquet`; runs being written are not in the dataset yet), in
/// file order, typed as [`crate::read_parquet_cells`] reads them. A table with no folder yields
/// no rows.
///
/// # Errors
/// [`Error::Io`] or [`Error::Parquet`] for an unreadable part, [`Error::Row`] for a missing column.
pub fn read_committed_parquet(
    root: &Path,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<Cell>>, Error> {
    let files = crate::current::parquet_files(&root.join(table))?;
    crate::read_parquet_cells(&files, columns).map_err(|e| match e {
        Error::Row {
            column, message, ..
        } => Error::Row {
            table: table.to_owned(),
            column,
            message,
        },
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use claimline_model::Column;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    /// The walk along each file's dropped lines finds them whatever the rows' order: lines
    /// that grow, go back, repeat (a line table's rows), files that come back, nulls, and a
    /// file with nothing dropped.
    #[test]
    fn dropped_rows_are_found_in_any_row_order() {
        use arrow_array::{Int64Array, StringArray};
        use arrow_schema::{DataType, Field, Schema};
        let rows: Vec<(Option<&str>, Option<i64>)> = vec![
            (Some("a"), Some(1)),
            (Some("a"), Some(2)),
            (Some("a"), Some(2)),
            (Some("a"), Some(9)),
            (Some("a"), Some(3)),
            (Some("b"), Some(2)),
            (None, Some(2)),
            (Some("a"), None),
            (Some("a"), Some(2)),
            (Some("a"), Some(10)),
            (Some("c"), Some(2)),
            (Some("a"), Some(12)),
        ];
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("_source_file", DataType::Utf8, true),
                Field::new("_line", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch");
        let lines = SourceLines::from([
            ("a".to_owned(), [12, 2, 3, 10].into()),
            ("b".to_owned(), [7].into()),
        ]);
        let keep = TableWriter::keep(&batch, 0, 1, &DroppedLines::new(&lines)).expect("lineage");
        let expected: Vec<bool> = rows
            .iter()
            .map(|(f, l)| match (f, l) {
                (Some(f), Some(l)) => !lines.get(*f).is_some_and(|set| set.contains(l)),
                _ => true,
            })
            .collect();
        assert_eq!(
            keep.iter().map(|k| k == Some(true)).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(expected.iter().filter(|k| !**k).count(), 6);
    }

    /// Codes, dates and `_source_file` are dictionary-encoded in a part; text and
    /// `_claim_key` (a code with about as many values as rows) are not.
    #[test]
    fn parts_dictionary_encode_codes_dates_and_the_source_file() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("CODE", ColumnType::Code),
                Column::new("DATE", ColumnType::Date),
                Column::new("TEXT", ColumnType::Text),
                Column::new("_source_file", ColumnType::Text),
                Column::new("_claim_key", ColumnType::Code),
            ],
        );
        let props = properties(&schema);
        let dictionary = |c: &str| props.dictionary_enabled(&ColumnPath::from(c));
        for with in ["CODE", "DATE", "_source_file"] {
            assert!(dictionary(with), "{with}");
        }
        for without in ["TEXT", "_claim_key"] {
            assert!(!dictionary(without), "{without}");
        }
    }

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

    /// Lines to drop from a table without `_source_file` cannot be found in it: an error that
    /// names the table, not every row kept (found by a review).
    #[test]
    fn lines_dropped_from_a_table_without_lineage_are_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s =
            ParquetSink::open(&dir.path().join("parquet"), "r1", &[schema()]).expect("open");
        let row = vec![
            Cell::text("1"),
            Cell::Null,
            Cell::Null,
            Cell::Null,
            Cell::Int(1),
        ];
        s.write(0, vec![row]).expect("write");
        let lines = SourceLines::from([("e.ndjson".to_owned(), [1].into())]);
        match TableSink::drop_rows(&mut s, &[0], &lines) {
            Err(Error::Row { table, column, .. }) => {
                assert_eq!(
                    (table.as_str(), column.as_str()),
                    ("cclf1", "_source_file, _line")
                );
            }
            other => panic!("expected an error, got {other:?}"),
        }
        // Nothing to drop is no error.
        assert_eq!(
            TableSink::drop_rows(&mut s, &[0], &SourceLines::new()).expect("none"),
            [0]
        );
    }

    /// A table's rows handed over as batches of [`BATCH_ROWS`] rows (the last one shorter) give
    /// the part their rows written one by one give, byte for byte; a batch of other columns
    /// is refused, naming the table.
    #[test]
    fn batches_of_rows_give_the_part_their_rows_give() {
        let rows: Vec<Vec<Cell>> = (0..20_000i64)
            .map(|i| {
                vec![
                    Cell::text(format!("{i:013}")),
                    if i % 7 == 0 {
                        Cell::Null
                    } else {
                        Cell::Decimal(123_450 + i128::from(i))
                    },
                    Cell::Date(19_000 + (i % 300) as i32),
                    Cell::Timestamp(1_700_000_000_000_000 + i),
                    Cell::Int(i),
                ]
            })
            .collect();
        let part = |batches: bool| {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path().join("parquet");
            let mut s = ParquetSink::open(&root, "r1", &[schema()]).expect("open");
            if batches {
                let arrow = crate::arrow_schema(&schema());
                for chunk in rows.chunks(BATCH_ROWS) {
                    let batch = crate::record_batch(&schema(), &arrow, chunk).expect("batch");
                    s.write_batch(0, &batch).expect("write batch");
                }
            } else {
                s.write(0, rows.clone()).expect("write");
            }
            Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
            std::fs::read(root.join("cclf1/run=r1/part-0.parquet")).expect("part")
        };
        assert_eq!(part(true), part(false));

        let dir = tempfile::tempdir().expect("tempdir");
        let mut s =
            ParquetSink::open(&dir.path().join("parquet"), "r1", &[schema()]).expect("open");
        let other = TableSchema::new("other", vec![Column::new("X", ColumnType::Text)]);
        let batch = crate::record_batch(&other, &crate::arrow_schema(&other), [[Cell::text("x")]])
            .expect("batch");
        match s.write_batch(0, &batch) {
            Err(Error::Row { table, .. }) => assert_eq!(table, "cclf1"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn writes_typed_columns_and_renames_at_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[schema()]).expect("open");
        let rows: Vec<Vec<Cell>> = (0..20_000)
            .map(|i| {
                vec![
                    Cell::text(format!("{i:013}")),
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
            &arrow_schema::DataType::Timestamp(
                arrow_schema::TimeUnit::Microsecond,
                Some("UTC".into())
            )
        );
        assert!(root.join("_claimline_runs.json").exists());
    }

    fn lineage_schema() -> TableSchema {
        TableSchema::new(
            "cclf5",
            vec![
                Column::new("CUR_CLM_UNIQ_ID", ColumnType::Code),
                Column::new("CLM_LINE_NUM", ColumnType::Integer),
                Column::new("_source_file", ColumnType::Text),
                Column::new("_line", ColumnType::Integer),
            ],
        )
    }

    /// The bytes of each of `parts`.
    fn bytes_of(parts: &[PathBuf]) -> Vec<Vec<u8>> {
        parts
            .iter()
            .map(|p| std::fs::read(p).expect("part"))
            .collect()
    }

    /// Whether run `r1`'s table `cclf5` under the Parquet root `root` has a spill file, and a
    /// file of its spilled rows' lineage.
    fn spill_files_of_cclf5(root: &Path) -> [bool; 2] {
        let run = staging_root(root).join("r1");
        [
            run.join("cclf5.spill.arrows").exists(),
            run.join("cclf5.lineage").exists(),
        ]
    }

    /// Is line `i` one [`write_and_drop`] drops? Every seventh even line of the first half: the
    /// windows of the second half lose nothing.
    fn dropped(i: i64, rows: i64) -> bool {
        i % 2 == 0 && i % 7 == 0 && i <= rows / 2
    }

    /// How [`write_and_drop`] writes its rows.
    #[derive(Debug, Clone, Copy)]
    struct Writing {
        /// Bytes held back in memory (past them, rows spill).
        budget: usize,
        /// Rows per part.
        part_rows: usize,
        /// Every row encoded before the drop (which then writes the parts again).
        encode_first: bool,
    }

    impl Writing {
        fn held() -> Self {
            Writing {
                budget: PENDING_BYTES,
                part_rows: PART_ROWS,
                encode_first: false,
            }
        }
    }

    /// `rows` rows from lines 1..=rows of two files (even lines from `a.ndjson`), written as
    /// `how` says. Drops the [`dropped`] lines, commits; returns the rows removed and the parts.
    fn write_and_drop(dir: &Path, rows: i64, how: Writing) -> (u64, Vec<PathBuf>) {
        let root = dir.join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[lineage_schema()]).expect("open");
        s.pending_budget = how.budget;
        s.tables[0].part_rows = how.part_rows;
        let file = |i: i64| if i % 2 == 0 { "a.ndjson" } else { "b.ndjson" };
        let all: Vec<Vec<Cell>> = (1..=rows)
            .map(|i| {
                vec![
                    Cell::text(format!("{:013}", i / 3)),
                    Cell::Int(i % 3),
                    Cell::text(file(i)),
                    Cell::Int(i),
                ]
            })
            .collect();
        for chunk in all.chunks(5000) {
            s.write(0, chunk.to_vec()).expect("write");
        }
        if how.encode_first {
            s.tables[0].stage().expect("stage");
            s.tables[0].encode().expect("encode");
        }
        let mut lines = SourceLines::new();
        lines.insert(
            "a.ndjson".into(),
            (1..=rows).filter(|&i| dropped(i, rows)).collect(),
        );
        let removed = s.drop_rows(&[0], &lines).expect("drop")[0];
        // The drop read every spilled row back: the file is gone before the commit.
        assert_eq!(
            spill_files_of_cclf5(&root),
            [false, false],
            "{how:?}: a spill file left"
        );
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let mut parts: Vec<PathBuf> = std::fs::read_dir(root.join("cclf5/run=r1"))
            .expect("partition")
            .map(|e| e.expect("entry").path())
            .collect();
        parts.sort();
        (removed, parts)
    }

    fn lines_of(parts: &[PathBuf]) -> Vec<i64> {
        let mut lines = Vec::new();
        for part in parts {
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(part).expect("part"))
                .expect("reader")
                .build()
                .expect("build");
            for b in reader {
                let b = b.expect("batch");
                let col = b
                    .column(3)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .expect("lines");
                lines.extend(col.values().iter().copied());
            }
        }
        lines
    }

    #[test]
    fn rows_dropped_held_encoded_or_in_between_give_the_same_part() {
        let rows = 50_000;
        let expected: Vec<i64> = (1..=rows).filter(|&i| !dropped(i, rows)).collect();
        let held = tempfile::tempdir().expect("tempdir");
        let (removed, parts) = write_and_drop(held.path(), rows, Writing::held());
        assert_eq!(removed, (rows - expected.len() as i64) as u64);
        assert_eq!(parts.len(), 1);
        assert_eq!(lines_of(&parts), expected);
        // No budget: every batch spilled at once. About two batches' room: the first ones
        // spilled, the last ones still held. Or every row encoded first, the part written again.
        for (budget, encode_first) in [(0, false), (800_000, false), (PENDING_BYTES, true)] {
            let how = Writing {
                budget,
                encode_first,
                ..Writing::held()
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let (removed_late, parts_late) = write_and_drop(dir.path(), rows, how);
            assert_eq!(removed_late, removed, "{how:?}");
            assert!(
                bytes_of(&parts) == bytes_of(&parts_late),
                "the same part, byte for byte: {how:?}"
            );
        }
    }

    /// Spilled rows make the parts that rows encoded first, then written again without the
    /// dropped lines, make: cut at the same rows, a part that loses nothing from its batches as
    /// they came, the others from a reader's windows.
    #[test]
    fn spilled_rows_dropped_give_the_parts_of_rows_encoded_then_rewritten() {
        let rows = 70_000;
        let expected: Vec<i64> = (1..=rows).filter(|&i| !dropped(i, rows)).collect();
        // Parts of three batches (8,192 rows each), and of one; lines dropped in the first half.
        for part_rows in [20_000, 8_192] {
            let encoded = Writing {
                budget: 0,
                part_rows,
                encode_first: true,
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let (removed, parts) = write_and_drop(dir.path(), rows, encoded);
            assert!(parts.len() > 2, "{part_rows}: {} parts", parts.len());
            assert_eq!(lines_of(&parts), expected);
            // Every row spilled, most of them, or none: held rows of more than one part are
            // cut as encoded ones are.
            for budget in [0, 800_000, PENDING_BYTES] {
                let spilled = Writing {
                    budget,
                    part_rows,
                    encode_first: false,
                };
                let dir = tempfile::tempdir().expect("tempdir");
                let (removed_spilled, parts_spilled) = write_and_drop(dir.path(), rows, spilled);
                assert_eq!(removed_spilled, removed, "{spilled:?}");
                assert_eq!(parts_spilled.len(), parts.len(), "{spilled:?}");
                assert!(
                    bytes_of(&parts) == bytes_of(&parts_spilled),
                    "the same parts, byte for byte: {spilled:?}"
                );
            }
        }
    }

    /// A table whose held rows all went holds no bytes: rows written after the drop, past the
    /// budget, spill and commit (found by a review: a table counted as holding the bytes of rows
    /// no longer there was picked to spill again and again, and the load never ended).
    #[test]
    fn rows_written_after_every_held_row_went_spill_and_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[lineage_schema()]).expect("open");
        let rows = |from: i64, n: i64| -> Vec<Vec<Cell>> {
            (from..from + n)
                .map(|i| {
                    vec![
                        Cell::text(format!("{i:013}")),
                        Cell::Int(1),
                        Cell::text("a.ndjson"),
                        Cell::Int(i),
                    ]
                })
                .collect()
        };
        s.write(0, rows(1, 20_000)).expect("write");
        let mut lines = SourceLines::new();
        lines.insert("a.ndjson".into(), (1..=20_000).collect());
        assert_eq!(s.drop_rows(&[0], &lines).expect("drop"), [20_000]);
        assert_eq!(s.tables[0].pending_bytes, 0);
        s.pending_budget = 0;
        s.write(0, rows(20_001, 10_000))
            .expect("write past the budget");
        assert_eq!(spill_files_of_cclf5(&root), [true, true]);
        let run = RunRecord::new("r1");
        s.prepare(&run, false).expect("prepare");
        assert_eq!(
            spill_files_of_cclf5(&root),
            [false, false],
            "the prepare encodes what waited"
        );
        Box::new(s).publish().expect("publish");
        let parts: Vec<PathBuf> = std::fs::read_dir(root.join("cclf5/run=r1"))
            .expect("partition")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(lines_of(&parts), (20_001..=30_000).collect::<Vec<_>>());
    }

    #[test]
    fn read_windows_cut_across_batches_as_a_reader_does() {
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "n",
            arrow_schema::DataType::Int64,
            false,
        )]));
        let batch = |from: i64, n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(arrow_array::Int64Array::from_iter_values(
                    from..from + n,
                ))],
            )
            .expect("batch")
        };
        // 700 + 700 + 2000 rows: windows of 1024 from the first row, the last one 328.
        let windows = read_windows(
            &schema,
            &[batch(0, 700), batch(700, 700), batch(1400, 2000)],
        )
        .expect("windows");
        let sizes: Vec<usize> = windows.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(sizes, [1024, 1024, 1024, 328]);
        let values: Vec<i64> = windows
            .iter()
            .flat_map(|w| {
                w.column(0)
                    .as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .expect("int")
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, (0..3400).collect::<Vec<_>>());
    }

    #[test]
    fn abandoned_run_leaves_no_part_and_too_many_digits_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("parquet");
        let mut s = ParquetSink::open(&root, "r1", &[schema()]).expect("open");
        let row = vec![
            Cell::text("1"),
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
