//! claimline's load pipeline as a library: NDJSON files (plain or gzip, BCDA exports or loose
//! files) through ViewDefinitions and the link stage (MBIs, CCLF8, the claim-history rule) into
//! the tables of an output folder, written atomically to SQLite, Parquet, or any other
//! [`claimline_sink::TableSink`].
//!
//! - [`Loader`]: which views, which output folder and sinks, which rules; [`Loader::load`] runs
//!   it and returns a [`LoadReport`] (the same document `claimline load --json` prints).
//! - [`views`]: the built-in view sets (`cclf`, `basic`, embedded by directory) and sets from
//!   files, with the hash the run records keep.
//! - [`output`]: the output folder as a whole: its lock, the recovery after a crash, run ids, a
//!   reload's swap.
//! - [`SinkKind`]: adding an output is one implementation of it, passed to [`Loader::sink`].
//! - [`Progress`]: what a load tells its caller while it runs.
//! - [`LoadError`]: the one error type.
//!
//! Loading the bundled real CMS samples into a temporary folder:
//!
//! ```
//! use claimline_load::{Loader, NoProgress};
//!
//! let out = tempfile::tempdir()?;
//! let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
//! let report = Loader::new(out.path())
//!     .all_versions(true)
//!     .load(&[samples], &NoProgress)?;
//! assert!(report.committed);
//! assert!(report.tables["cclf1"] > 0);
//! assert!(out.path().join("claimline.sqlite").is_file());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cclf;
pub mod dictionary;
mod error;
mod loader;
pub mod output;
mod paths;
mod progress;
mod summary;
pub mod views;

pub use claimline_ndjson::InputFile;
pub use error::LoadError;
pub use loader::{
    ArrowOutput, Beneficiaries, DamagedFile, ExcludedClaims, History, LoadReport, Loader,
    ParquetOutput, Rejects, RowErrors, SinkKind, SqliteOutput, month_ranges, transaction_time,
};
pub use progress::{NoProgress, Progress};

/// The built-in outputs of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `DIR/claimline.sqlite`.
    Sqlite,
    /// `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`.
    Parquet,
    /// Both.
    Both,
}

impl std::str::FromStr for Format {
    type Err = String;

    /// `sqlite`, `parquet` or `both`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "sqlite" => Ok(Format::Sqlite),
            "parquet" => Ok(Format::Parquet),
            "both" => Ok(Format::Both),
            _ => Err(format!(
                "format {text:?}: expected \"sqlite\", \"parquet\" or \"both\""
            )),
        }
    }
}

impl Format {
    /// The sinks of this format, in commit order.
    pub fn sinks(self) -> Vec<Box<dyn SinkKind>> {
        match self {
            Format::Sqlite => vec![Box::new(SqliteOutput)],
            Format::Parquet => vec![Box::new(ParquetOutput)],
            Format::Both => vec![Box::new(SqliteOutput), Box::new(ParquetOutput)],
        }
    }
}
