//! Typed rows to warehouse tables: Parquet and SQLite, written so a failed run never looks done.
//!
//! `claimline-sink` knows nothing of FHIR. It takes [`TableSchema`]s (column names, [`ColumnType`]s,
//! descriptions, and which columns identify a row group to replace) and batches of rows of
//! [`Cell`]s, through one [`Sink`] trait with two implementations:
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
//! Both record the run in `_claimline_runs`. Dropping a sink without [`Sink::commit`] abandons
//! the run and leaves the previous tables as they were.
//!
//! ```
//! use claimline_sink::{Cell, Column, ColumnType, RunRecord, Sink, SqliteSink, TableSchema};
//!
//! let dir = tempfile::tempdir()?;
//! let schema = TableSchema::new("patient", vec![
//!     Column::new("id", ColumnType::Text),
//!     Column::new("birth_date", ColumnType::Date),
//! ]);
//! let mut sink = SqliteSink::open(&dir.path().join("claimline.sqlite"), &[schema])?;
//! sink.write(0, vec![vec![Cell::Text("p1".into()), Cell::Date(-3_000)]])?;
//! Box::new(sink).commit(&RunRecord::new("run-1"))?;
//! let db = rusqlite::Connection::open(dir.path().join("claimline.sqlite"))?;
//! let date: String = db.query_row("SELECT birth_date FROM patient", [], |r| r.get(0))?;
//! assert_eq!(date, "1961-10-15");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod parquet_sink;
mod sqlite_sink;

pub use claimline_model::{
    Cell, Column, ColumnType, RunRecord, TableSchema, civil_from_days, create_private_dir,
    format_date, format_timestamp,
};
pub use error::Error;
pub use parquet_sink::{
    ParquetSink, Recovered, read_committed_parquet, read_parquet_runs, recover, staging_root,
};
pub use sqlite_sink::{SqliteSink, open_earlier};

/// Rows of a run named by where they came from: `_source_file` → the `_line`s, for
/// [`SqliteSink::drop_rows`] and [`ParquetSink::drop_rows`].
pub type SourceLines = std::collections::HashMap<String, std::collections::HashSet<i64>>;

/// A destination for typed rows. Rows are visible to readers only after [`Sink::commit`].
pub trait Sink {
    /// Appends rows (cells in schema column order) to table `table` (an index into the schemas
    /// the sink was opened with).
    ///
    /// # Errors
    /// A row of the wrong width or a cell of the wrong type ([`Error::Row`]), or an I/O failure.
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error>;

    /// Makes the run's rows visible, all at once, and records the run.
    ///
    /// # Errors
    /// Any failure to write; the previous state is then left as it was.
    fn commit(self: Box<Self>, run: &RunRecord) -> Result<(), Error>;
}
