//! The incremental state of an output folder that `claimline run` keeps
//! (`DIR/claimline-state.json`), and the retention rule for its kept exports: what `--keep`
//! may remove and what `claimline reload` needs to rebuild the tables.
//!
//! Retention never removes what a rebuild needs. Per scope, the exports a rebuild reads are the
//! *chain*: the latest full export (one asked for without `_since`) and every export with data
//! after it (or, when the scope never had a full export, every export with data). `--keep N`
//! keeps the newest N exports with data and, whatever N is, every export of every chain; an
//! export without data (an empty incremental) is never counted and is removed once a later
//! run exists. `reload` refuses when a chain misses an export (exit 2, naming the runs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use claimline_load::LoadError;
use serde::{Deserialize, Serialize};

use crate::RunError;

/// The state file in the output folder.
pub const STATE_FILE: &str = "claimline-state.json";
/// Kept exports, one folder per run id.
pub const EXPORTS_DIR: &str = "exports";

/// What makes two runs incremental to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The base URL (`local-sandbox` for `--local-sandbox`, whose port changes every run).
    pub base_url: String,
    /// `fnv1a64:` hash of the client id (the id itself stays out of files).
    pub client: String,
    /// `v1`, `v2`, `v3`.
    pub api: String,
    /// `Group/all`, `Group/runout`, `Patient`.
    pub endpoint: String,
    /// `_type`, sorted; empty = BCDA's defaults.
    pub types: Vec<String>,
    /// `_typeFilter`.
    #[serde(default)]
    pub type_filter: Option<String>,
}

/// A hash that names a client id without keeping it.
pub fn fnv1a64(text: &str) -> String {
    format!(
        "fnv1a64:{}",
        claimline_model::Fnv1a64::new().write(text.as_bytes()).hex()
    )
}

/// A run that started and has not finished: rerunning the same scope resumes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Its run id (and export folder name).
    pub run_id: String,
    /// The `_since` it asked for.
    pub since: Option<String>,
    /// When it started.
    pub started: String,
}

/// The incremental state of one scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScopeState {
    /// What it is.
    pub scope: Scope,
    /// The next `_since`: the transactionTime of the last committed run.
    pub since: Option<String>,
    /// The run that committed it.
    pub since_run: Option<String>,
    /// An unfinished run.
    pub pending: Option<Pending>,
}

/// Issues of the manifest's error files of one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCount {
    /// `OperationOutcome.issue.severity`.
    pub severity: String,
    /// `OperationOutcome.issue.code`.
    pub code: String,
    /// The resource type the issue is about, when it names one.
    pub resource_type: String,
    /// How many.
    pub count: u64,
}

/// One finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    /// Run id.
    pub run_id: String,
    /// Config profile.
    pub profile: Option<String>,
    /// Its scope.
    pub scope: Scope,
    /// Its export folder, relative to the output folder.
    pub export: String,
    /// The `_since` it asked for.
    pub since: Option<String>,
    /// The export's transactionTime.
    pub transaction_time: Option<String>,
    /// Resources downloaded per type.
    pub resources: BTreeMap<String, u64>,
    /// Rejected lines of its load.
    pub rejects: u64,
    /// Row errors of its load.
    pub row_errors: u64,
    /// Its transactionTime became the scope's next `_since`.
    pub committed: bool,
    /// The manifest's error files, summarised.
    pub error_files: Vec<IssueCount>,
    /// BCDA's last attribution (or runout) update, from the pre-flight.
    #[serde(default)]
    pub attribution: Option<String>,
    /// Its export folder was removed by `--keep`.
    #[serde(default)]
    pub pruned: bool,
    /// When it finished.
    pub finished: String,
}

/// `DIR/claimline-state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Format version.
    pub format: u32,
    /// Per scope.
    pub scopes: Vec<ScopeState>,
    /// Finished runs, oldest first.
    pub runs: Vec<RunEntry>,
}

impl RunState {
    /// Reads the state of an output folder (empty when there is none).
    ///
    /// # Errors
    /// A damaged state file ([`claimline_sink::Error::Corrupt`], naming it); [`RunError::Io`].
    pub fn load(out: &Path) -> Result<RunState, RunError> {
        let path = out.join(STATE_FILE);
        match claimline_model::read_present(&path) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| {
                RunError::Load(LoadError::Sink(claimline_sink::Error::Corrupt {
                    path: path.clone(),
                    message: format!(
                        "not claimline's run state ({})",
                        claimline_model::without_values(&e.to_string())
                    ),
                }))
            }),
            Ok(None) => Ok(RunState {
                format: 1,
                ..RunState::default()
            }),
            Err(e) => Err(RunError::io(&path, e)),
        }
    }

    /// Writes it atomically, owner-only; a full disk leaves the previous state as it was and no
    /// temporary file.
    ///
    /// # Errors
    /// [`RunError::Io`] naming the state file.
    pub fn save(&self, out: &Path) -> Result<(), RunError> {
        let path = out.join(STATE_FILE);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| RunError::io(&path, e.into()))?;
        claimline_model::write_atomic(&path, &bytes).map_err(|e| RunError::io(&path, e))
    }

    /// The index of `scope`'s entry, added when it has none.
    pub fn scope_index(&mut self, scope: &Scope) -> usize {
        if let Some(i) = self.scopes.iter().position(|s| &s.scope == scope) {
            return i;
        }
        self.scopes.push(ScopeState {
            scope: scope.clone(),
            since: None,
            since_run: None,
            pending: None,
        });
        self.scopes.len() - 1
    }
}

impl RunEntry {
    /// The export had data files (resources downloaded).
    pub fn has_data(&self) -> bool {
        self.resources.values().any(|n| *n > 0)
    }

    /// A full export: asked for without `_since`.
    pub fn is_full(&self) -> bool {
        self.since.is_none()
    }
}

/// What a rebuild of the tables needs from the kept exports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Chains {
    /// Run ids of the exports the rebuild reads, in run order.
    pub needed: Vec<String>,
    /// Run ids of needed exports that are gone (pruned by an older version, or removed by
    /// hand): the tables hold data that no kept export can rebuild.
    pub missing: Vec<String>,
}

/// Per scope, the chain of exports a rebuild reads (see the module docs).
pub fn chains(state: &RunState, out: &Path) -> Chains {
    let mut chains = Chains::default();
    let mut scopes: Vec<&Scope> = Vec::new();
    for r in &state.runs {
        if !scopes.contains(&&r.scope) {
            scopes.push(&r.scope);
        }
    }
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for scope in scopes {
        let runs: Vec<&RunEntry> = state
            .runs
            .iter()
            .filter(|r| &r.scope == scope && r.has_data())
            .collect();
        let start = runs.iter().rposition(|r| r.is_full()).unwrap_or(0);
        for r in &runs[start..] {
            needed.insert(&r.run_id);
        }
    }
    for r in &state.runs {
        if needed.contains(r.run_id.as_str()) {
            chains.needed.push(r.run_id.clone());
            if r.pruned || !out.join(&r.export).is_dir() {
                chains.missing.push(r.run_id.clone());
            }
        }
    }
    chains
}

/// Removes kept exports beyond `keep` that no rebuild needs (never the current run's): the
/// newest `keep` exports with data stay, and so does every export of a scope's chain; an export
/// without data goes unless it is the current run's. Returns the run ids removed.
pub fn prune(state: &mut RunState, out: &Path, keep: usize, current: &str) -> Vec<String> {
    let needed: BTreeSet<String> = chains(state, out).needed.into_iter().collect();
    let newest: BTreeSet<String> = state
        .runs
        .iter()
        .rev()
        .filter(|r| r.has_data() && !r.pruned)
        .take(keep)
        .map(|r| r.run_id.clone())
        .collect();
    let mut removed = Vec::new();
    for run in &mut state.runs {
        let export = out.join(&run.export);
        if run.pruned
            || run.run_id == current
            || needed.contains(&run.run_id)
            || newest.contains(&run.run_id)
            || !export.is_dir()
        {
            continue;
        }
        if std::fs::remove_dir_all(&export).is_ok() {
            run.pruned = true;
            removed.push(run.run_id.clone());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(types: &[&str]) -> Scope {
        Scope {
            base_url: "b".into(),
            client: fnv1a64("id"),
            api: "v2".into(),
            endpoint: "Group/all".into(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            type_filter: None,
        }
    }

    fn entry(dir: &Path, id: &str, scope: &Scope, since: Option<&str>, n: u64) -> RunEntry {
        std::fs::create_dir_all(dir.join("exports").join(id)).expect("mkdir");
        RunEntry {
            run_id: id.into(),
            profile: None,
            scope: scope.clone(),
            export: format!("exports/{id}"),
            since: since.map(str::to_owned),
            transaction_time: None,
            resources: BTreeMap::from([("ExplanationOfBenefit".to_owned(), n)]),
            rejects: 0,
            row_errors: 0,
            committed: true,
            error_files: vec![],
            attribution: None,
            pruned: false,
            finished: String::new(),
        }
    }

    #[test]
    fn prune_keeps_the_newest_exports_beyond_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let scope = Scope {
            base_url: "b".into(),
            client: fnv1a64("id"),
            api: "v2".into(),
            endpoint: "Group/all".into(),
            types: vec![],
            type_filter: None,
        };
        let mut state = RunState::default();
        for id in ["r1", "r2", "r3"] {
            std::fs::create_dir_all(dir.path().join("exports").join(id)).expect("mkdir");
            // Three full exports: only the last one is the chain.
            state.runs.push(entry(dir.path(), id, &scope, None, 5));
        }
        assert_eq!(prune(&mut state, dir.path(), 2, "r3"), ["r1"]);
        assert!(!dir.path().join("exports/r1").exists());
        assert!(dir.path().join("exports/r2").exists());
        assert!(state.runs[0].pruned);
        assert!(prune(&mut state, dir.path(), 2, "r3").is_empty());
        assert!(!fnv1a64("id").contains("id\""));
    }

    /// A full disk (a tmpfs filled up) while the state is saved: the error names the file, the
    /// previous state is intact and no temporary file is left. Needs root to mount the tmpfs
    /// (CI runs as root); skipped elsewhere with the reason printed.
    #[test]
    fn a_full_disk_during_a_state_save_keeps_the_previous_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the full-disk test"
            );
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return;
        }
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(dir.path());
        let mut state = RunState::default();
        state.save(dir.path()).expect("the first save fits");
        let before = std::fs::read(dir.path().join(STATE_FILE)).expect("state");
        // Fill the disk.
        let mut filler = std::fs::File::create(dir.path().join("filler")).expect("filler");
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
        let _ = filler.sync_all();
        let benes = scope(&["Patient"]);
        for i in 0..50 {
            state
                .runs
                .push(entry(dir.path(), &format!("r{i}"), &benes, None, 1));
        }
        let err = state.save(dir.path()).expect_err("no space left");
        let text = format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(text.contains(STATE_FILE), "{text}");
        assert!(text.contains("No space left"), "{text}");
        assert_eq!(
            std::fs::read(dir.path().join(STATE_FILE)).expect("state"),
            before
        );
        assert!(!dir.path().join(format!(".{STATE_FILE}.tmp")).exists());
    }

    /// Regression (issue 15): `--keep 1` after a Patient/Coverage run and an EOB run kept only
    /// the EOB export, and empty weekly runs pruned the only full export.
    #[test]
    fn retention_keeps_every_scope_chain_and_skips_empty_exports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let benes = scope(&["Coverage", "Patient"]);
        let claims = scope(&["ExplanationOfBenefit"]);
        let mut state = RunState::default();
        state.runs.push(entry(dir.path(), "r1", &benes, None, 20));
        state.runs.push(entry(dir.path(), "r2", &claims, None, 90));
        assert!(prune(&mut state, dir.path(), 1, "r2").is_empty());
        // Two empty weekly runs of the claims scope: removed, the full export stays.
        state
            .runs
            .push(entry(dir.path(), "r3", &claims, Some("t2"), 0));
        assert!(prune(&mut state, dir.path(), 1, "r3").is_empty());
        state
            .runs
            .push(entry(dir.path(), "r4", &claims, Some("t3"), 0));
        assert_eq!(prune(&mut state, dir.path(), 1, "r4"), ["r3"]);
        // An incremental with data joins the chain; a new full export ends the old chain.
        state
            .runs
            .push(entry(dir.path(), "r5", &claims, Some("t4"), 7));
        assert_eq!(prune(&mut state, dir.path(), 1, "r5"), ["r4"]);
        state.runs.push(entry(dir.path(), "r6", &claims, None, 95));
        assert_eq!(prune(&mut state, dir.path(), 1, "r6"), ["r2", "r5"]);
        let c = chains(&state, dir.path());
        assert_eq!(c.needed, ["r1", "r6"]);
        assert!(c.missing.is_empty());
        // An export of a chain removed by hand is missing.
        std::fs::remove_dir_all(dir.path().join("exports/r1")).expect("rm");
        assert_eq!(chains(&state, dir.path()).missing, ["r1"]);
    }
}
