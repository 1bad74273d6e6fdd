//! `claimline reload`: rebuild an output folder's tables from its kept exports, e.g. after a
//! mapping change. Every kept export is loaded again, in the order the runs loaded them and under
//! their original run ids, into a staging folder that replaces the tables only when all loads
//! succeeded; a failed reload leaves the previous tables as they were.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use claimline_fetch::ExportState;
use claimline_sink::create_private_dir;

use super::load::{Format, LoadRequest, execute};
use crate::state::{RunState, chains};
use crate::views::UsageError;

/// Arguments of `claimline reload`.
#[derive(clap::Args)]
pub struct Args {
    /// The output folder of `claimline run`.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Views (default: the built-in set); later runs must use the same.
    #[arg(long, num_args = 1..)]
    views: Vec<String>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

fn has_data(export: &Path) -> bool {
    ExportState::load(export)
        .ok()
        .flatten()
        .is_some_and(|s| s.complete && s.files.iter().any(|f| !f.error_file))
}

/// Runs `claimline reload`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let out = &args.out;
    if !out.join(crate::state::STATE_FILE).is_file() {
        anyhow::bail!(UsageError(format!(
            "{} is not an output folder of claimline run (no {})",
            out.display(),
            crate::state::STATE_FILE
        )));
    }
    let Some(_lock) = crate::output::lock(out)? else {
        return Err(crate::output::busy(out));
    };
    crate::output::recover(out)?;
    let state = RunState::load(out)?;
    // Refuse, changing nothing, when the kept exports cannot rebuild what the tables hold.
    let needs = chains(&state, out);
    if !needs.missing.is_empty() {
        anyhow::bail!(UsageError(format!(
            "{} cannot be rebuilt: the exports of run(s) {} are gone, and the tables hold data \
             that only they had (each scope needs its latest full export and every export after \
             it). The tables were left as they are; fetch a full export of each such scope \
             (claimline run --since full) and reload then",
            out.display(),
            needs.missing.join(", ")
        )));
    }
    let mut loaded = Vec::new();
    let mut skipped = Vec::new();
    for run in &state.runs {
        let export = out.join(&run.export);
        if run.pruned || !export.is_dir() {
            skipped.push(run.run_id.clone());
        } else if has_data(&export) {
            loaded.push((run.run_id.clone(), export));
        }
    }
    if loaded.is_empty() {
        anyhow::bail!(UsageError(format!(
            "{} has no kept export to rebuild from (claimline run keeps them in {}/exports)",
            out.display(),
            out.display()
        )));
    }
    let stamp = crate::output::new_run_id();
    let staging = crate::output::reload_staging(out, &stamp);
    create_private_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let mut rows = 0u64;
    let mut row_errors = 0u64;
    let mut rejects = 0u64;
    for (run_id, export) in &loaded {
        let outcome = execute(&LoadRequest {
            inputs: vec![export.clone()],
            views: args.views.clone(),
            out: staging.clone(),
            format: Format::Both,
            strict: false,
            run_id: Some(run_id.clone()),
            threads: 0,
            include_partial: false,
            accept_damaged: false,
        });
        let outcome = match outcome {
            Ok(outcome) if !outcome.report.committed => {
                let _ = std::fs::remove_dir_all(&staging);
                for d in &outcome.report.damaged {
                    eprintln!("claimline: {}", d.message);
                }
                return Ok(ExitCode::from(4));
            }
            Ok(outcome) => outcome,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(err.context(format!(
                    "reloading {}; the tables were left as they were",
                    export.display()
                )));
            }
        };
        rows += outcome.report.tables.values().sum::<u64>();
        rejects += outcome.report.rejects.count;
        row_errors += outcome.report.row_errors.count;
    }
    // Every load succeeded: from here on the swap is finished, even by the next command if this
    // process dies in it.
    std::fs::write(staging.join(crate::output::RELOAD_READY), b"")
        .with_context(|| format!("writing {}", staging.display()))?;
    crate::output::swap_in_reload(out, &stamp)?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "out": out,
            "runs": loaded.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            "skipped": skipped,
            "rows": rows,
            "rejects": rejects,
            "row_errors": row_errors,
        });
        serde_json::to_writer_pretty(&mut stdout, &doc)?;
        writeln!(stdout)?;
    } else {
        writeln!(
            stdout,
            "rebuilt {} from {} kept exports: {rows} rows, {rejects} rejects, {row_errors} row errors",
            out.display(),
            loaded.len()
        )?;
        if !skipped.is_empty() {
            writeln!(
                stdout,
                "warning: {} earlier exports were removed by --keep; their data is not in the \
                 rebuilt tables unless a later export carries it",
                skipped.len()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
