//! What `claimline fetch` keeps in an export folder's `.claimline/state.json`: the job, the
//! manifest, and every file downloaded and verified. Written by `claimline-fetch`; read also by
//! the load (the line counts the download verified) and by `claimline-run`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

/// Resources (lines) per type in the data files of `files` (error files left out), as the
/// download counted them.
pub fn resources_per_type(files: &[FileRecord]) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for file in files.iter().filter(|f| !f.error_file) {
        *counts.entry(file.resource_type.clone()).or_insert(0) += file.lines;
    }
    counts
}

/// The state file of an export folder: `EXPORT/.claimline/state.json`.
pub fn export_state_path(export: &Path) -> PathBuf {
    export.join(".claimline").join("state.json")
}

impl ExportState {
    /// Reads the state of the export folder `export`; `Ok(None)` when there is none. A file
    /// that cannot be parsed is an `InvalidData` error.
    ///
    /// # Errors
    /// The file cannot be read or is not a state file.
    pub fn read(export: &Path) -> std::io::Result<Option<Self>> {
        let Some(bytes) = crate::read_present(&export_state_path(export))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                crate::without_values(&e.to_string()),
            )
        })
    }

    /// The lines the download counted in the data file `name` (0 counts as unknown).
    pub fn fetched_lines(&self, name: &str) -> Option<u64> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.lines)
            .filter(|n| *n > 0)
    }
}
