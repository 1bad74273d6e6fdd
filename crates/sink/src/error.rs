//! The one error type of this crate.

use std::path::{Path, PathBuf};

/// What can stop a sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("{}: SQLite: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Parquet or Arrow refused.
    #[error("{}: Parquet: {message}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A row does not fit its table's schema (a bug in the producer), or holds a value the
    /// database cannot store (a NUL character for PostgreSQL; the message names the row's file
    /// and line, never the value).
    #[error("table {table}, column {column}: {message}")]
    Row {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A state file the output keeps (a run list, a staged run's record) is damaged. Nothing was
    /// changed; the message says how to recover.
    #[error(
        "{}: damaged: {message}; nothing was changed (restore the file from a backup, or see the README's recovery section)",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// PostgreSQL could not be reached, refused, or failed. `target` is the server shown without
    /// its password (`postgresql://etl@db:5432/claims (schema claimline)`), or `PostgreSQL` for
    /// settings that cannot be used; `message` is the server's or the driver's, never the
    /// connection string.
    #[error("{target}: {message}")]
    Postgres {
        /// The server, database and schema.
        target: String,
        /// What kind of failure.
        failure: PgFailure,
        /// What went wrong.
        message: String,
    },
    /// An existing table was built with other columns.
    #[error(
        "table {table} in {} has other columns than the views now declare; rebuild the output (claimline reload) or write to a new --out",
        path.display()
    )]
    SchemaChanged {
        /// The database or dataset.
        path: PathBuf,
        /// The table.
        table: String,
    },
}

/// The kinds of [`Error::Postgres`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgFailure {
    /// The connection string or schema name is not usable.
    Usage,
    /// The server could not be reached, or TLS failed.
    Connect,
    /// The server refused the credentials.
    Auth,
    /// Another load holds the schema's lock.
    Busy,
    /// An existing table has other columns than the views declare.
    SchemaChanged,
    /// A table the output keeps (the run records) is damaged; nothing was changed.
    Corrupt,
    /// A statement failed.
    Query,
}

impl Error {
    /// PostgreSQL settings that cannot be used (a URL, a schema name, flags that do not fit
    /// together): [`PgFailure::Usage`].
    pub fn postgres_usage(message: impl Into<String>) -> Error {
        Error::Postgres {
            target: "PostgreSQL".into(),
            failure: PgFailure::Usage,
            message: message.into(),
        }
    }

    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Io { path, .. }
            | Error::Sqlite { path, .. }
            | Error::Parquet { path, .. }
            | Error::Corrupt { path, .. }
            | Error::SchemaChanged { path, .. } => Some(path),
            Error::Row { .. } | Error::Postgres { .. } => None,
        }
    }

    pub(crate) fn io(path: impl AsRef<Path>) -> impl FnOnce(std::io::Error) -> Error {
        // The path is copied only when there is an error: these closures are made for every
        // call that may fail, a bound SQLite value among them.
        move |source| Error::Io {
            path: path.as_ref().to_owned(),
            source,
        }
    }

    /// The error of a failed SQLite call on the database at `path`: [`Error::Corrupt`] when
    /// the file is not a readable database, else [`Error::Sqlite`].
    pub fn sqlite(path: impl AsRef<Path>) -> impl FnOnce(rusqlite::Error) -> Error {
        move |source| {
            let path = path.as_ref().to_owned();
            match source.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                    Error::Corrupt {
                        path,
                        message: format!("not a readable SQLite database ({source})"),
                    }
                }
                _ => Error::Sqlite { path, source },
            }
        }
    }

    /// A table's lineage columns (`_source_file`, `_line`) cannot say which of its rows a drop
    /// of superseded versions removes: `message` says why.
    pub(crate) fn lineage(table: &str, message: impl std::fmt::Display) -> Error {
        Error::Row {
            table: table.to_owned(),
            column: "_source_file, _line".into(),
            message: message.to_string(),
        }
    }

    /// [`Error::lineage`] of a table without lineage columns, which every sink refuses to drop
    /// rows from (every superseded version would stay).
    pub(crate) fn no_lineage(table: &str) -> Error {
        Error::lineage(
            table,
            "the table has no lineage columns, so the rows of the versions left out cannot be dropped",
        )
    }

    pub(crate) fn parquet<E: std::fmt::Display>(path: impl AsRef<Path>) -> impl FnOnce(E) -> Error {
        move |e| Error::Parquet {
            path: path.as_ref().to_owned(),
            message: e.to_string(),
        }
    }
}
