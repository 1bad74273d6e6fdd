//! Typed rows to warehouse tables: Parquet and SQLite, written so a failed run never looks done.
//!
//! `claimline-sink` knows nothing of FHIR. It takes [`TableSchema`]s (column names, [`ColumnType`]s,
//! descriptions, and which columns identify a row group to replace) and batches of rows of
//! [`Cell`]s, through one [`TableSink`] trait with two implementations:
//!
//! - [`ParquetSink`]: `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`, typed Arrow columns
//!   (Decimal128, Date32, Timestamp µs UTC, Int64, Boolean, Utf8), zstd, statistics, column
//!   descriptions in the file's metadata. Parts are written in `DIR/.claimline-staging/<run_id>/`,
//!   outside the dataset, and each table's partition is moved into place only at commit, so no
//!   reader's glob ever sees a partial file; [`recover`] finishes or removes a run whose process
//!   died between the two.
//! - [`SqliteSink`]: `DIR/claimline.sqlite`, STRICT tables (SQLite's affinity cannot rewrite a
//!   value), a new database built in a temporary file then renamed, an existing one updated in one
//!   WAL transaction through staging tables, replacing each key's rows as a set.
//!
//! Both record the run in `_claimline_runs`. Dropping a sink without [`TableSink::commit`] abandons
//! the run and leaves the previous tables as they were.
//!
//! ```
//! use claimline_sink::{Cell, Column, ColumnType, RunRecord, SqliteSink, TableSchema, TableSink};
//!
//! let dir = tempfile::tempdir()?;
//! let schema = TableSchema::new("patient", vec![
//!     Column::new("id", ColumnType::Text),
//!     Column::new("birth_date", ColumnType::Date),
//! ]);
//! let mut sink = SqliteSink::open(&dir.path().join("claimline.sqlite"), &[schema])?;
//! sink.write(0, vec![vec![Cell::text("p1"), Cell::Date(-3_000)]])?;
//! Box::new(sink).commit(&RunRecord::new("run-1"))?;
//! let db = rusqlite::Connection::open(dir.path().join("claimline.sqlite"))?;
//! let date: String = db.query_row("SELECT birth_date FROM patient", [], |r| r.get(0))?;
//! assert_eq!(date, "1961-10-15");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arrow;
mod columns;
mod current;
mod error;
mod lineage;
mod merge;
mod names;
mod parquet_sink;
mod postgres_sink;
mod spill;
mod sqlite_sink;

pub use arrow::{
    ArrowSink, ArrowTables, arrow_schema, arrow_type, batch_cells, read_parquet_cells, record_batch,
};
pub use claimline_model::{
    Cell, Column, ColumnType, RunRecord, TableSchema, civil_from_days, create_private_dir,
    format_date, format_timestamp,
};
pub use current::{
    BUCKETS, CURRENT_DIR, CurrentBuild, CurrentReport, REFRESH_MEMORY, VERSIONS_DIR, bucket,
    build_current_before_commit, read_current_parquet, refresh_current,
};
pub use error::{Error, PgFailure};
pub use parquet_sink::{
    BATCH_ROWS, HeldRun, ParquetSink, Recovered, commit_staged_run, read_committed_parquet,
    read_parquet_runs, recover, staging_root,
};
pub use postgres_sink::{
    PgSession, PgTarget, PostgresSink, SslMode, pg_column, read_postgres_runs,
};
pub use sqlite_sink::{
    SqliteSink, database_present, exact_column, instant_micros, open_earlier, read_sqlite_runs,
    table_names,
};

/// Rows of a run named by where they came from: `_source_file` → the `_line`s, for
/// [`TableSink::drop_rows`].
pub type SourceLines = std::collections::HashMap<String, std::collections::HashSet<i64>>;

/// Removes from `rows` (of a table of `schema`, held in memory) the rows whose (`_source_file`,
/// `_line`) is in `lines`; returns how many went. A table without those columns keeps every
/// row. For sinks that hold a run's rows in memory until the commit.
///
/// ```
/// use claimline_sink::{Cell, Column, ColumnType, SourceLines, TableSchema, drop_listed_rows};
/// let schema = TableSchema::new(
///     "t",
///     vec![
///         Column::new("_source_file", ColumnType::Text),
///         Column::new("_line", ColumnType::Integer),
///     ],
/// );
/// let mut rows = vec![
///     vec![Cell::text("a.ndjson"), Cell::Int(1)],
///     vec![Cell::text("a.ndjson"), Cell::Int(2)],
/// ];
/// let lines = SourceLines::from([("a.ndjson".to_owned(), [2].into())]);
/// assert_eq!(drop_listed_rows(&schema, &mut rows, &lines), 1);
/// assert_eq!(rows.len(), 1);
/// ```
pub fn drop_listed_rows(
    schema: &TableSchema,
    rows: &mut Vec<Vec<Cell>>,
    lines: &SourceLines,
) -> u64 {
    let (Some(f), Some(l)) = (
        schema.column_index("_source_file"),
        schema.column_index("_line"),
    ) else {
        return 0;
    };
    let before = rows.len();
    rows.retain(|row| match (&row[f], &row[l]) {
        (Cell::Text(file), Cell::Int(line)) => !lines
            .get(file.as_str())
            .is_some_and(|set| set.contains(line)),
        _ => true,
    });
    (before - rows.len()) as u64
}

/// Checks that every key of `keys` has `replace_key`'s width, for [`TableSink::remove_keys`].
///
/// # Errors
/// [`Error::Row`] naming the key columns and the width found.
pub(crate) fn check_key_widths(replace_key: &[String], keys: &[Vec<Cell>]) -> Result<(), Error> {
    match keys.iter().find(|k| k.len() != replace_key.len()) {
        Some(k) => Err(Error::Row {
            table: String::new(),
            column: replace_key.join(","),
            message: format!("a key of {} cells", k.len()),
        }),
        None => Ok(()),
    }
}

/// A destination for a load's typed rows: everything a load needs from an output, so that it
/// holds a list of sinks, not one type each. Rows are visible to readers only after
/// [`TableSink::commit`]; dropping a sink before that abandons the run and leaves the previous
/// tables as they were.
///
/// A load with several sinks commits them so that they never disagree about a run: every sink
/// is prepared ([`TableSink::prepare`]); the first that [`TableSink::decides`] commits (its
/// commit is the run's commit point); then the others commit. A sink prepared with
/// `decided_elsewhere` keeps what it needs for a later command to finish or undo its part when
/// the process dies between the two (as [`recover`] does for Parquet).
///
/// Sinks are [`Send`]: a load prepares the other sinks on a worker while it prepares the
/// deciding one, and applies the claim-history rule to each on a worker of its own (nothing a
/// prepare does is visible before the commit).
pub trait TableSink: Send {
    /// Appends rows (cells in schema column order) to table `table` (an index into the schemas
    /// the sink was opened with), taking them.
    ///
    /// # Errors
    /// A row of the wrong width or a cell of the wrong type ([`Error::Row`]), or an I/O failure.
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error>;

    /// As [`TableSink::write`], leaving the rows to the caller (who hands them to another sink
    /// next).
    ///
    /// # Errors
    /// As [`TableSink::write`].
    fn write_rows(&mut self, table: usize, rows: &[Vec<Cell>]) -> Result<(), Error> {
        self.write(table, rows.to_vec())
    }

    /// As [`TableSink::write`], for rows already made into an Arrow batch of the table's
    /// [`arrow_schema()`] ([`record_batch`], on any thread): the caller's batch has the table's
    /// columns, in order. By default its rows are written as cells ([`batch_cells`], in the
    /// batch's column order): the sink checks each row's width and each cell's type as it
    /// checks any row, not the batch's column names, which are the caller's to get right (two
    /// columns of one type given in each other's place would be written so). The Parquet sink
    /// holds the batch itself, as it holds the batches it makes of [`BATCH_ROWS`] rows
    /// written, and refuses a batch whose column names or types are not the table's; when none
    /// of the table's rows wait to be made a batch, batches of [`BATCH_ROWS`] rows (the last
    /// one shorter) give the part those rows written one by one would give, byte for byte.
    ///
    /// # Errors
    /// As [`TableSink::write`].
    fn write_batch(&mut self, table: usize, batch: &arrow_array::RecordBatch) -> Result<(), Error> {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        self.write(table, batch_cells(batch, &names)?)
    }

    /// Removes from `tables` the rows this run wrote whose (`_source_file`, `_line`) is in
    /// `lines`, before the commit; returns the rows removed per table, in `tables` order. For a
    /// caller that writes first and learns afterwards which rows must not stay (the
    /// claim-history rule).
    ///
    /// # Errors
    /// The sink's failure to rewrite what it holds.
    fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error>;

    /// Removes, at commit, the rows earlier runs left for these keys of every table whose
    /// replace key is `replace_key` (a claim whose current version was cancelled). A sink that
    /// keeps every run's rows ([`TableSink::replaces`] false) keeps them: its readers apply the
    /// rule.
    ///
    /// # Errors
    /// [`Error::Row`] when a key's width differs from `replace_key`'s.
    ///
    /// The default does nothing: right for a sink that keeps every run.
    fn remove_keys(&mut self, replace_key: &[String], keys: Vec<Vec<Cell>>) -> Result<(), Error> {
        let _ = (replace_key, keys);
        Ok(())
    }

    /// True when a run's rows replace earlier runs' rows of the same keys (SQLite); false (the
    /// default) when every run is kept and readers pick the current rows (Parquet).
    fn replaces(&self) -> bool {
        false
    }

    /// True when this sink's commit is atomic on its own (a database transaction), so it can be
    /// the commit point of a load with several sinks; false by default.
    fn decides(&self) -> bool {
        false
    }

    /// Does all of the commit short of making the run visible: Parquet's parts and SQLite's new
    /// database are made durable, SQLite's update merged in its open transaction (its `COMMIT`
    /// is the commit). `decided_elsewhere`: another sink's commit is the run's commit point.
    ///
    /// # Errors
    /// Any failure to write; the sink can then only be dropped.
    fn prepare(&mut self, run: &RunRecord, decided_elsewhere: bool) -> Result<(), Error>;

    /// Makes the rows written final, before [`TableSink::prepare`] (which stages them if this
    /// was not called): nothing can be written or dropped after it, and [`TableSink::held`]
    /// can hand them over while the prepare makes them durable. The default does nothing.
    ///
    /// # Errors
    /// Rows the sink cannot turn into what it writes.
    fn stage(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Told, after [`TableSink::prepare`] decided elsewhere, that the deciding sink's commit is
    /// about to be attempted: from here on whether the run happened is the deciding database's
    /// to say, so what the prepare left stays, even if this sink is dropped, for a later command
    /// to finish or undo ([`recover`] for Parquet). The default does nothing.
    fn decided(&mut self) {}

    /// After [`TableSink::stage`] or [`TableSink::prepare`], the run's rows if the sink held
    /// them all in memory as Arrow batches (the Parquet sink within its budget), taken: the
    /// caller derives more from them without reading the run back. None by default.
    fn held(&mut self) -> Option<HeldRun> {
        None
    }

    /// Makes the run's rows visible, all at once, and records the run (preparing first if
    /// [`TableSink::prepare`] was not called).
    ///
    /// # Errors
    /// Any failure to write; the previous state is then left as it was, or, after a prepare
    /// decided elsewhere, left for [`recover`] to finish.
    fn commit(self: Box<Self>, run: &RunRecord) -> Result<(), Error>;
}
