//! `reload`: rebuild an output folder's tables from its kept exports, e.g. after a mapping
//! change.

use std::path::{Path, PathBuf};

use claimline_load::{Format, LoadError, Loader, Progress, output};
use claimline_model::create_private_dir;
use claimline_sink::{PgSession, PgTarget};

use crate::RunError;
use crate::state::{RunState, STATE_FILE, chains};

/// What a reload did.
#[derive(Debug, serde::Serialize)]
pub struct ReloadReport {
    /// The output folder.
    pub out: PathBuf,
    /// The runs whose exports were loaded again, in order.
    pub runs: Vec<String>,
    /// Runs whose exports are gone (and that no rebuild needed).
    pub skipped: Vec<String>,
    /// Rows written.
    pub rows: u64,
    /// Rejected lines.
    pub rejects: u64,
    /// Row errors.
    pub row_errors: u64,
}

/// Rebuilds the tables of the `claimline run` output folder `out` from its kept exports with
/// `views`: each export loaded again, in run order and under its run id, into a staging folder
/// that replaces the tables only when every load succeeded (a swap the next command finishes if
/// this process dies in it). Refuses, changing nothing, when an export a rebuild needs is gone.
///
/// # Errors
/// [`RunError::Usage`] (not a run folder, nothing to rebuild from, an export gone),
/// [`RunError::Damaged`], and the loads' errors; the tables are then left as they were.
pub fn reload(
    out: &Path,
    views: &[String],
    progress: &dyn Progress,
) -> Result<ReloadReport, RunError> {
    reload_into(out, views, Format::BOTH, None, progress)
}

/// [`reload`] of the outputs `format` names: a PostgreSQL schema (`postgres`) is rebuilt as
/// `<schema>_reload` beside the live one, holding the live schema's lock throughout, and
/// replaces it in one transaction (`DROP SCHEMA`, `ALTER SCHEMA … RENAME`) just before the
/// files are swapped in.
///
/// # Errors
/// As [`reload`]; the live schema is left as it was when a load fails.
pub fn reload_into(
    out: &Path,
    views: &[String],
    format: Format,
    postgres: Option<&PgTarget>,
    progress: &dyn Progress,
) -> Result<ReloadReport, RunError> {
    if !out.join(STATE_FILE).is_file() {
        return Err(RunError::Usage(format!(
            "{} is not an output folder of claimline run (no {})",
            out.display(),
            STATE_FILE
        )));
    }
    let lock = output::lock_or_busy(out)?;
    for note in output::recover(out)? {
        progress.note(&note);
    }
    // The live schema stays locked until it is replaced; the rebuild goes beside it.
    let mut pg = match postgres.filter(|_| format.postgres) {
        Some(live) => {
            let session = PgSession::lock(live).map_err(LoadError::Sink)?;
            let staging = live.reload_target().map_err(LoadError::Sink)?;
            staging.drop_schema().map_err(LoadError::Sink)?;
            Some((session, staging))
        }
        None => None,
    };
    let state = RunState::load(out)?;
    // Refuse, changing nothing, when the kept exports cannot rebuild what the tables hold.
    let needs = chains(&state, out);
    if !needs.missing.is_empty() {
        return Err(RunError::Usage(format!(
            "{} cannot be rebuilt: the exports of run(s) {} are gone, and the tables hold data \
             that only they had (each scope needs its latest full export and every export after \
             it). The tables were left as they are; fetch a full export of each such scope \
             (claimline run --since full) and reload then",
            out.display(),
            needs.missing.join(", ")
        )));
    }
    // Refuse, changing nothing, when the tables hold runs no kept export makes (a plain
    // `claimline load` into this folder): the rebuild would drop them.
    // (A run not finished yet, whose state was not written, is claimline run's too.)
    let made: std::collections::HashSet<&str> = state
        .runs
        .iter()
        .map(|r| r.run_id.as_str())
        .chain(
            state
                .scopes
                .iter()
                .filter_map(|s| s.pending.as_ref().map(|p| p.run_id.as_str())),
        )
        .collect();
    let mut held = Vec::new();
    if format.sqlite {
        held.extend(crate::sqlite_runs(out)?.unwrap_or_default());
    }
    if format.parquet {
        held.extend(crate::parquet_runs(out)?.unwrap_or_default());
    }
    if let Some((session, _)) = &mut pg {
        held.extend(session.runs().map_err(LoadError::Sink)?);
    }
    let mut foreign: Vec<String> = held
        .into_iter()
        .map(|r| r.run_id)
        .filter(|id| !made.contains(id.as_str()))
        .collect();
    foreign.sort();
    foreign.dedup();
    if !foreign.is_empty() {
        return Err(RunError::Usage(format!(
            "{} cannot be rebuilt: its tables hold run(s) {} that claimline run did not make (a \
             claimline load into this folder), which its kept exports cannot give back. The \
             tables were left as they are; load such exports into another --out",
            out.display(),
            foreign.join(", ")
        )));
    }
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for run in &state.runs {
        let export = out.join(&run.export);
        if run.pruned || !export.is_dir() {
            skipped.push(run.run_id.clone());
        } else if run.has_data() {
            loaded.push((run.run_id.clone(), crate::input_path(&export)));
        }
    }
    if loaded.is_empty() {
        return Err(RunError::Usage(format!(
            "{} has no kept export to rebuild from (claimline run keeps them in {}/exports)",
            out.display(),
            out.display()
        )));
    }
    let stamp = output::new_run_id();
    let staging = output::reload_staging(out, &stamp);
    create_private_dir(&staging).map_err(|e| RunError::io(&staging, e))?;
    let mut rows = 0u64;
    let mut row_errors = 0u64;
    let mut rejects = 0u64;
    for (run_id, export) in &loaded {
        let loaded = Loader::new(&staging)
            .views(views.to_vec())
            .format(format)
            .postgres(pg.as_ref().map(|(_, t)| t.clone()))
            .run_id(Some(run_id.clone()))
            .load_holding_lock(std::slice::from_ref(export), progress, &lock);
        let report = match loaded {
            Ok(report) if !report.committed => {
                let _ = std::fs::remove_dir_all(&staging);
                if let Some((_, t)) = &pg {
                    // Best effort: the load's error is what the user needs; the next reload
                    // drops the rebuild anyway.
                    let _ = t.drop_schema();
                }
                return Err(RunError::Damaged {
                    message: format!(
                        "{} damaged file(s) in {}; the tables were left as they were",
                        report.damaged.len(),
                        export.display()
                    ),
                    files: report.damaged,
                });
            }
            Ok(report) => report,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&staging);
                if let Some((_, t)) = &pg {
                    // Best effort: the load's error is what the user needs; the next reload
                    // drops the rebuild anyway.
                    let _ = t.drop_schema();
                }
                return Err(RunError::Reload {
                    export: export.clone(),
                    source: Box::new(err),
                });
            }
        };
        rows += report.tables.values().sum::<u64>();
        rejects += report.rejects.count;
        row_errors += report.row_errors.count;
    }
    // Every load succeeded. The rebuilt schema replaces the live one in one transaction; a
    // process that dies after it and before the files' swap below leaves the files as they
    // were (a second reload rebuilds both).
    if let Some((mut session, rebuilt)) = pg {
        session.replace_schema(&rebuilt).map_err(LoadError::Sink)?;
    }
    // From here on the swap is finished, even by the next command if this process dies in it.
    let ready = staging.join(output::RELOAD_READY);
    std::fs::write(&ready, b"").map_err(|e| RunError::io(&ready, e))?;
    output::swap_in_reload(out, &stamp)?;
    Ok(ReloadReport {
        out: out.to_owned(),
        runs: loaded.into_iter().map(|(id, _)| id).collect(),
        skipped,
        rows,
        rejects,
        row_errors,
    })
}
