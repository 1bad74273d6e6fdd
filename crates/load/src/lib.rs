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
mod earlier;
mod error;
mod history_spool;
mod loader;
pub mod output;
mod paths;
mod progress;
mod summary;
pub mod views;

pub use claimline_ndjson::InputFile;
pub use earlier::{EarlierState, Heads};
pub use error::LoadError;
pub use loader::{
    ArrowOutput, Beneficiaries, DamagedFile, ExcludedClaims, ExportFacts, History, LoadReport,
    Loader, ParquetOutput, Phases, PostgresOutput, Rejects, RowErrors, SinkKind, SqliteOutput,
    Threads, export_facts, month_ranges,
};
pub use progress::{NoProgress, Progress};

/// The built-in outputs of a load: any of SQLite, Parquet and PostgreSQL, written as
/// `sqlite`, `parquet`, `postgres`, `both` (SQLite and Parquet) or a list (`parquet,postgres`).
/// One database per output keeps the claim-history state, so SQLite and PostgreSQL are not
/// written together.
///
/// ```
/// use claimline_load::Format;
/// let f: Format = "parquet,postgres".parse()?;
/// assert!(f.parquet && f.postgres && !f.sqlite);
/// assert_eq!("both".parse::<Format>()?, Format::BOTH);
/// assert!("sqlite,postgres".parse::<Format>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Format {
    /// `DIR/claimline.sqlite`.
    pub sqlite: bool,
    /// `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`.
    pub parquet: bool,
    /// One schema of a PostgreSQL database ([`Loader::postgres`] says which).
    pub postgres: bool,
}

impl Format {
    /// SQLite alone.
    pub const SQLITE: Format = Format {
        sqlite: true,
        parquet: false,
        postgres: false,
    };
    /// Parquet alone.
    pub const PARQUET: Format = Format {
        sqlite: false,
        parquet: true,
        postgres: false,
    };
    /// SQLite and Parquet (the default).
    pub const BOTH: Format = Format {
        sqlite: true,
        parquet: true,
        postgres: false,
    };

    /// The sinks of this format, in commit order (the database first: its commit is the
    /// run's commit point). `postgres`: where PostgreSQL tables go.
    ///
    /// # Errors
    /// PostgreSQL asked for without a target.
    pub fn sinks(
        self,
        postgres: Option<&claimline_sink::PgTarget>,
    ) -> Result<Vec<Box<dyn SinkKind>>, String> {
        let mut sinks: Vec<Box<dyn SinkKind>> = Vec::new();
        if self.sqlite {
            sinks.push(Box::new(SqliteOutput));
        }
        if self.postgres {
            let target = postgres.ok_or(
                "the postgres format needs a database: --postgres URL, CLAIMLINE_POSTGRES_URL or the profile's postgres_url",
            )?;
            sinks.push(Box::new(PostgresOutput::new(target.clone())));
        }
        if self.parquet {
            sinks.push(Box::new(ParquetOutput));
        }
        Ok(sinks)
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut f = Format::default();
        for part in text.split(',').map(str::trim) {
            match part {
                "sqlite" => f.sqlite = true,
                "parquet" => f.parquet = true,
                "postgres" => f.postgres = true,
                "both" => {
                    f.sqlite = true;
                    f.parquet = true;
                }
                _ => {
                    return Err(format!(
                        "format {part:?}: expected sqlite, parquet, postgres, both, or a list (parquet,postgres)"
                    ));
                }
            }
        }
        if f.sqlite && f.postgres {
            return Err(format!(
                "format {text:?}: SQLite and PostgreSQL each keep the claim-history state, so a load writes one of them (each with parquet if wanted)"
            ));
        }
        Ok(f)
    }
}
