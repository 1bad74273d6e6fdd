//! The one error type of this crate.

use std::path::{Path, PathBuf};

/// What can stop a load (or the output-folder work around it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// What the caller asked for cannot be done as asked: an invalid view, a view set that does
    /// not plan, a rule the output was built with and the load would break.
    #[error("{0}")]
    Usage(String),
    /// The views do not plan (columns differ between views of one table, a bad link view, …).
    #[error(transparent)]
    Plan(#[from] claimline_link::Error),
    /// The input could not be read, or the scan stopped.
    #[error(transparent)]
    Input(#[from] claimline_ndjson::Error),
    /// An output could not be written, or one of its state files is damaged.
    #[error(transparent)]
    Sink(#[from] claimline_sink::Error),
    /// A file or folder of the output could not be made, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another load, run or reload holds the output folder's lock.
    #[error(
        "another claimline load, run or reload is using {}; try again when it has finished",
        path.display()
    )]
    Busy {
        /// The output folder.
        path: PathBuf,
    },
}

impl LoadError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            LoadError::Input(e) => e.path(),
            LoadError::Sink(e) => e.path(),
            LoadError::Io { path, .. } | LoadError::Busy { path } => Some(path),
            LoadError::Usage(_) | LoadError::Plan(_) => None,
        }
    }
}
