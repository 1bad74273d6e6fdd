//! The record each run leaves in `_claimline_runs`.

use std::collections::BTreeMap;

/// What one run did; stored in SQLite's `_claimline_runs` and Parquet's `_claimline_runs.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// Unique, sortable run id (e.g. `20261127T180102Z-1234`).
    pub run_id: String,
    /// Start, ISO 8601 UTC.
    pub started: String,
    /// End, ISO 8601 UTC.
    pub finished: String,
    /// Input files.
    pub inputs: Vec<String>,
    /// API versions seen.
    pub api_versions: Vec<String>,
    /// Hash of the views that built the tables.
    pub views_hash: String,
    /// Resources read per `resourceType`.
    pub resources: BTreeMap<String, u64>,
    /// Rows written per table.
    pub tables: BTreeMap<String, u64>,
    /// Rejected lines.
    pub rejects: u64,
    /// Values that did not fit their column.
    pub row_errors: u64,
    /// The export's `transactionTime`, when a manifest gave one.
    pub transaction_time: Option<String>,
    /// Every claim version kept (`load --all-versions`) rather than the current one per group.
    #[serde(default)]
    pub all_versions: bool,
}

impl RunRecord {
    /// An empty record for `run_id`.
    pub fn new(run_id: impl Into<String>) -> Self {
        RunRecord {
            run_id: run_id.into(),
            ..RunRecord::default()
        }
    }
}
