//! The sandbox's one error type.

use std::path::PathBuf;

/// Everything that can stop the sandbox from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// A file or folder of the export folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a data file is not a JSON object with a string `resourceType`.
    #[error("{} line {line}: not a JSON object with a resourceType", path.display())]
    BadLine {
        /// The data file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The export folder holds no `*.ndjson` or `*.ndjson.gz` file.
    #[error("{} holds no *.ndjson or *.ndjson.gz file", path.display())]
    NoData {
        /// The export folder.
        path: PathBuf,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on 127.0.0.1:{port}: {message}")]
    Bind {
        /// The port asked for (0 = any).
        port: u16,
        /// The reason given by the operating system.
        message: String,
    },
    /// A configuration value is out of range.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
}
