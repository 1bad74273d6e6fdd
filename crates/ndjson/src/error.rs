//! The one error type of this crate.

use std::path::PathBuf;

/// What can stop a scan. Bad lines are not errors: they are [`crate::Reject`]s, counted and kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or folder could not be opened, mapped or listed.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A path given as input is neither a file nor a folder, or a folder holds no NDJSON.
    #[error("{}: {reason}", path.display())]
    NoInput {
        /// The path given.
        path: PathBuf,
        /// Why it yields nothing.
        reason: String,
    },
    /// A `manifest.json` beside the data could not be understood.
    #[error("{}: not a BCDA manifest: {reason}", path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A `manifest.json` and the files beside it disagree: it lists a data file its folder does
    /// not hold (the export is incomplete), or its request names another API version than the
    /// resources show.
    #[error("{}: {reason}", path.display())]
    Disagrees {
        /// The manifest file.
        path: PathBuf,
        /// What disagrees, and what to do.
        reason: String,
    },
    /// The rejects file could not be written.
    #[error("{}: cannot write rejects: {source}", path.display())]
    WriteRejects {
        /// The rejects file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// `strict` was set and a line was rejected.
    #[error("{}:{line}: {message} (strict mode stops at the first rejected line)", path.display())]
    Strict {
        /// The file holding the line.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Why the line was rejected.
        message: String,
    },
    /// The consumer of scan results failed (e.g. a sink could not write); the scan stopped.
    #[error(transparent)]
    Consumer(Box<dyn std::error::Error + Send + Sync>),
    /// A worker thread panicked (a bug in a callback); the scan's results are incomplete.
    #[error("a worker thread stopped unexpectedly; the scan is incomplete")]
    WorkerLost,
}

impl Error {
    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Read { path, .. }
            | Error::NoInput { path, .. }
            | Error::Manifest { path, .. }
            | Error::Disagrees { path, .. }
            | Error::WriteRejects { path, .. }
            | Error::Strict { path, .. } => Some(path),
            Error::Consumer(_) | Error::WorkerLost => None,
        }
    }
}
