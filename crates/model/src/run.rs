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

    /// Whether `other` records this very run: its id and its start (a run id loaded again
    /// starts at another time).
    pub fn is_same_run(&self, other: &RunRecord) -> bool {
        self.run_id == other.run_id && self.started == other.started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_its_id_and_its_start() {
        let at = |id: &str, started: &str| RunRecord {
            started: started.into(),
            ..RunRecord::new(id)
        };
        let r1 = at("r1", "2026-12-05T01:00:00Z");
        assert!(r1.is_same_run(&at("r1", "2026-12-05T01:00:00Z")));
        // The same id loaded again, and another id started at the same time.
        assert!(!r1.is_same_run(&at("r1", "2026-12-05T02:00:00Z")));
        assert!(!r1.is_same_run(&at("r2", "2026-12-05T01:00:00Z")));
    }
}
