//! `.claimline/state.json` and owner-only file handling.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::FetchError;

/// One downloaded, verified file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Path relative to the export folder, e.g. `Patient.000.ndjson.gz`.
    pub name: String,
    /// The manifest's `type`.
    pub resource_type: String,
    /// The manifest's `url`.
    pub url: String,
    /// Bytes as served.
    pub size: u64,
    /// SHA-256 of those bytes, lower-case hex.
    pub sha256: String,
    /// Lines (`\n`) in the decoded content: the number of resources.
    #[serde(default)]
    pub lines: u64,
    /// From the manifest's `error` list.
    pub error_file: bool,
}

/// What `.claimline/state.json` holds: enough to re-attach after a crash and to fetch only what
/// is missing. Never a credential or a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportState {
    /// Format version of this file.
    pub format: u32,
    /// The kick-off URL (base URL, version, endpoint and parameters).
    pub request_url: String,
    /// The job URL from `Content-Location`.
    pub job_url: String,
    /// The manifest's `transactionTime`, once known.
    pub transaction_time: Option<String>,
    /// The manifest as received, once known.
    pub manifest: Option<String>,
    /// Files downloaded and verified so far.
    pub files: Vec<FileRecord>,
    /// Every file is in place and `manifest.json` is written.
    pub complete: bool,
}

/// The hidden work folder of an export folder.
pub(crate) fn work_dir(out: &Path) -> PathBuf {
    out.join(".claimline")
}

/// The state file of an export folder.
pub fn state_path(out: &Path) -> PathBuf {
    work_dir(out).join("state.json")
}

/// Creates a folder (and parents) owner-only.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), FetchError> {
    claimline_model::create_private_dir(path).map_err(|e| FetchError::io(path, e))
}

/// Opens a file for writing, owner-only (appending, or from the start).
pub(crate) fn open_private(path: &Path, append: bool) -> Result<fs::File, FetchError> {
    let opened = if append {
        claimline_model::append_private(path)
    } else {
        claimline_model::create_private(path)
    };
    opened.map_err(|e| FetchError::io(path, e))
}

/// [`claimline_model::write_atomic`] (the folder synced too), as this crate's error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    claimline_model::write_atomic(path, bytes).map_err(|e| FetchError::io(path, e))
}

impl ExportState {
    /// Reads the state of an export folder; `None` when there is none.
    pub fn load(out: &Path) -> Result<Option<Self>, FetchError> {
        let path = state_path(out);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FetchError::State {
                    path,
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FetchError::State {
                path,
                reason: e.to_string(),
            })
    }

    /// Saves the state atomically, owner-only.
    pub(crate) fn save(&self, out: &Path) -> Result<(), FetchError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| FetchError::State {
            path: state_path(out),
            reason: e.to_string(),
        })?;
        write_atomic(&state_path(out), &bytes)
    }
}
