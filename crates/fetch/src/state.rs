//! `.claimline/state.json` and owner-only file handling.

use std::fs;
use std::path::{Path, PathBuf};

pub use claimline_model::{ExportState, FileRecord};

use crate::FetchError;

/// The hidden work folder of an export folder.
pub(crate) fn work_dir(out: &Path) -> PathBuf {
    out.join(".claimline")
}

/// The state file of an export folder.
pub fn state_path(out: &Path) -> PathBuf {
    claimline_model::export_state_path(out)
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

/// Reads the state of an export folder; `None` when there is none.
///
/// # Errors
/// [`FetchError::State`] naming the file when it cannot be read or parsed.
pub fn load_state(out: &Path) -> Result<Option<ExportState>, FetchError> {
    ExportState::read(out).map_err(|e| FetchError::State {
        path: state_path(out),
        reason: e.to_string(),
    })
}

/// Saves the state atomically, owner-only.
pub(crate) fn save_state(state: &ExportState, out: &Path) -> Result<(), FetchError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| FetchError::State {
        path: state_path(out),
        reason: e.to_string(),
    })?;
    write_atomic(&state_path(out), &bytes)
}
