//! The output folder as a whole: one command at a time (the lock), recovery after a crash, run
//! ids, a reload's swap, and what a failed command must not leave behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use claimline_model::format_timestamp;

use crate::LoadError;

/// The lock file every command that writes an output folder holds.
pub const LOCK_FILE: &str = ".claimline-run.lock";

/// Holds `DIR/.claimline-run.lock` (an exclusive SQLite transaction, so the operating system
/// releases it when the process dies, even by `kill -9`) while a load, run or reload uses `DIR`.
pub struct OutputLock {
    _conn: rusqlite::Connection,
}

/// Takes the output folder's lock; `None` when another load, run or reload holds it.
///
/// # Errors
/// [`LoadError::Io`] when the lock file cannot be made.
pub fn lock(out: &Path) -> Result<Option<OutputLock>, LoadError> {
    let path = out.join(LOCK_FILE);
    let failed = |e: rusqlite::Error| LoadError::io(&path, std::io::Error::other(e));
    let conn = rusqlite::Connection::open(&path).map_err(failed)?;
    claimline_model::make_private(&path).map_err(|e| LoadError::io(&path, e))?;
    conn.busy_timeout(Duration::ZERO).map_err(failed)?;
    match conn.execute_batch("BEGIN EXCLUSIVE") {
        Ok(()) => Ok(Some(OutputLock { _conn: conn })),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Takes the output folder's lock, or fails with [`LoadError::Busy`] when another command holds
/// it (the folder is made, owner-only, when it does not exist).
///
/// # Errors
/// [`LoadError::Busy`]; [`LoadError::Io`].
pub fn lock_or_busy(out: &Path) -> Result<OutputLock, LoadError> {
    claimline_model::create_private_dir(out).map_err(|e| LoadError::io(out, e))?;
    lock(out)?.ok_or_else(|| LoadError::Busy {
        path: out.to_owned(),
    })
}

/// After a failed command: removes the folders it made that hold nothing (`parquet/`,
/// `rejects/`, `exports/`) and, when `existed` is false, the output folder itself if only the
/// lock is left in it. Never removes a file with data.
pub fn remove_empty(out: &Path, existed: bool) {
    for name in ["parquet", "rejects", "exports"] {
        let _ = std::fs::remove_dir(out.join(name));
    }
    if !existed {
        let only_lock = std::fs::read_dir(out).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_name().to_string_lossy().starts_with(LOCK_FILE))
        });
        if only_lock {
            let _ = std::fs::remove_dir_all(out);
        }
    }
}

/// The folder a reload builds the new tables in (`stamp` is its own run id).
pub fn reload_staging(out: &Path, stamp: &str) -> std::path::PathBuf {
    out.join(format!(".reload-{stamp}"))
}

/// The folder a reload moves the old tables to while it swaps.
pub fn reload_old(out: &Path, stamp: &str) -> std::path::PathBuf {
    out.join(format!(".reload-old-{stamp}"))
}

/// The file a reload writes in its staging folder when every load into it succeeded: from then
/// on the swap is finished, never undone.
pub const RELOAD_READY: &str = "READY";

/// The file a reload writes in its old-tables folder once every old table is in it.
pub const RELOAD_ASIDE: &str = "ASIDE";

/// Moves `from/name` to `to/name` for each name of `names` that `from` has.
fn move_tables(from: &Path, to: &Path, names: &[&str]) -> Result<(), LoadError> {
    for name in names {
        let src = from.join(name);
        if src.exists() {
            let dst = to.join(name);
            std::fs::rename(&src, &dst).map_err(|e| LoadError::io(&dst, e))?;
        }
    }
    Ok(())
}

/// The outputs a reload replaces, each as a whole: SQLite's database with its WAL (an old WAL
/// beside a new database would be read as its own), the Parquet history with its current
/// tables, and the rejects.
const OUTPUTS: [&[&str]; 3] = [
    &[
        "claimline.sqlite",
        "claimline.sqlite-wal",
        "claimline.sqlite-shm",
    ],
    &[
        "parquet",
        claimline_sink::CURRENT_DIR,
        claimline_sink::VERSIONS_DIR,
    ],
    &["rejects"],
];

/// Every name of the [`OUTPUTS`] an output folder holds that `claimline reload` replaces.
fn tables() -> Vec<&'static str> {
    OUTPUTS
        .iter()
        .flat_map(|names| names.iter().copied())
        .collect()
}

/// The names of [`OUTPUTS`] that the reload staged in `staging` replaces in the output: every
/// name of each output the reload rebuilt (the rejects always), none of an output it did not
/// write (`reload --format parquet` leaves SQLite's database alone).
fn replaced(staging: &Path) -> Vec<&'static str> {
    OUTPUTS
        .iter()
        .filter(|names| names[0] == "rejects" || names.iter().any(|n| staging.join(n).exists()))
        .flat_map(|names| names.iter().copied())
        .collect()
}

/// The swap of a reload whose staging folder is complete (it holds [`RELOAD_READY`]): the old
/// tables aside (then [`RELOAD_ASIDE`]), the rebuilt ones in, the old ones removed. Each step
/// can be run again after a process died in it, so [`recover`] finishes what a reload left.
///
/// # Errors
/// [`LoadError::Io`].
pub fn swap_in_reload(out: &Path, stamp: &str) -> Result<(), LoadError> {
    let staging = reload_staging(out, stamp);
    let old = reload_old(out, stamp);
    if !old.join(RELOAD_ASIDE).is_file() {
        claimline_model::create_private_dir(&old).map_err(|e| LoadError::io(&old, e))?;
        // Before ASIDE every table in `out` is an old one, and the staging folder is whole:
        // what it holds says which outputs the reload rebuilt.
        move_tables(out, &old, &replaced(&staging))?;
        let aside = old.join(RELOAD_ASIDE);
        std::fs::write(&aside, b"").map_err(|e| LoadError::io(&aside, e))?;
    }
    claimline_fault::point("reload.swap").map_err(|e| LoadError::io(out, e))?;
    move_tables(&staging, out, &tables())?;
    std::fs::remove_dir_all(&old).map_err(|e| LoadError::io(&old, e))?;
    std::fs::remove_dir_all(&staging).map_err(|e| LoadError::io(&staging, e))?;
    Ok(())
}

/// Finishes or undoes what a reload that died left: a reload whose rebuilt tables were complete
/// is swapped in, one that had not finished its loads is removed (the old tables put back if a
/// swap had begun).
fn recover_reload(out: &Path, notes: &mut Vec<String>) -> Result<(), LoadError> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    let mut stamps: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = name
                .strip_prefix(".reload-old-")
                .or_else(|| name.strip_prefix(".reload-"))?;
            Some(stamp.to_owned())
        })
        .collect();
    stamps.sort();
    stamps.dedup();
    for stamp in stamps {
        let staging = reload_staging(out, &stamp);
        let old = reload_old(out, &stamp);
        if staging.join(RELOAD_READY).is_file() {
            swap_in_reload(out, &stamp)?;
            notes.push(format!(
                "finished the reload {stamp}, which a stopped process left half swapped"
            ));
        } else {
            if old.exists() {
                for name in tables() {
                    let (src, dst) = (old.join(name), out.join(name));
                    if src.exists() && !dst.exists() {
                        std::fs::rename(&src, &dst).map_err(|e| LoadError::io(&dst, e))?;
                    }
                }
                std::fs::remove_dir_all(&old).map_err(|e| LoadError::io(&old, e))?;
            }
            if staging.exists() {
                std::fs::remove_dir_all(&staging).map_err(|e| LoadError::io(&staging, e))?;
            }
            notes.push(format!(
                "removed what the unfinished reload {stamp} had built"
            ));
        }
    }
    Ok(())
}

/// Brings the output folder to a committed state after a command that died in the middle of a
/// commit: a run whose commit happened is finished, one whose commit did not is removed (see
/// `claimline_sink::recover`), so SQLite and Parquet agree on the runs they hold; a reload's
/// swap is finished or undone. Returns what it did, one sentence each (for the user). Call it
/// holding the lock.
///
/// # Errors
/// [`LoadError::Sink`] (a damaged state file among them), [`LoadError::Io`].
pub fn recover(out: &Path) -> Result<Vec<String>, LoadError> {
    recover_with(out, None)
}

/// [`recover`], asking `database` (the output's database whose commit decides a run: SQLite or
/// PostgreSQL) whether a staged run committed; without one, the folder's SQLite database.
///
/// # Errors
/// As [`recover`].
pub fn recover_with(
    out: &Path,
    database: Option<&mut (dyn crate::EarlierState + 'static)>,
) -> Result<Vec<String>, LoadError> {
    let mut notes = Vec::new();
    recover_reload(out, &mut notes)?;
    // The claim history a killed load kept on disk (its sorted runs): nothing else reads it.
    let history = crate::history_spool::history_dir(out);
    if history.exists() {
        std::fs::remove_dir_all(&history).map_err(|e| LoadError::io(&history, e))?;
        notes.push("removed the claim-history files an unfinished load left".to_owned());
    }
    let sqlite = out.join("claimline.sqlite");
    let mut own = None;
    let mut database = match database {
        Some(d) => Some(d),
        None if claimline_sink::database_present(&sqlite)? => {
            Some(own.insert(crate::earlier::SqliteEarlier::open(&sqlite)?)
                as &mut (dyn crate::EarlierState + 'static))
        }
        None => None,
    };
    let mut committed = |run: &claimline_model::RunRecord| match database.as_deref_mut() {
        Some(d) => d.holds_run(run),
        None => Ok(false),
    };
    for done in claimline_sink::recover(&out.join("parquet"), &mut committed)? {
        notes.push(match done {
            claimline_sink::Recovered::Published(run) => {
                format!("finished the commit of run {run}, which a stopped process left half done")
            }
            claimline_sink::Recovered::Removed(run) => {
                format!("removed what the unfinished run {run} left (it never committed)")
            }
        });
    }
    // A retry of a run id killed after its commit, before its rejects became the run's.
    let rejects = out.join("rejects");
    let mut runs = match database {
        Some(d) => d.runs()?,
        None => Vec::new(),
    };
    runs.extend(claimline_sink::read_parquet_runs(&out.join("parquet"))?);
    for run in &runs {
        let Some(started) = claimline_link::parse_instant(&run.started) else {
            continue;
        };
        let staged = retry_rejects(&rejects, &run.run_id, started);
        if staged.0.exists() || staged.1.exists() {
            promote_retry(
                (&staged.0, &staged.1),
                (
                    &rejects.join(format!("{}.ndjson", run.run_id)),
                    &rejects.join(format!("{}-row-errors.ndjson", run.run_id)),
                ),
            )?;
            notes.push(format!(
                "gave run {} the rejects of its retry, which a stopped process left aside",
                run.run_id
            ));
        }
    }
    Ok(notes)
}

/// Where the attempt of a run id the output has committed, started at `started` (µs), writes its
/// rejects and row errors: beside the run's own (`<run_id>.retry-<start>.ndjson`,
/// `<run_id>-row-errors.retry-<start>.ndjson`), which they replace only once it commits
/// ([`promote_retry`]).
pub fn retry_rejects(rejects: &Path, run_id: &str, started: i64) -> (PathBuf, PathBuf) {
    let attempt = run_id_from(started);
    (
        rejects.join(format!("{run_id}.retry-{attempt}.ndjson")),
        rejects.join(format!("{run_id}-row-errors.retry-{attempt}.ndjson")),
    )
}

/// A committed retry's rejects and row errors become the run's (`staged` over `run`); one it
/// did not write takes the run's away, as its rows replaced the run's.
///
/// # Errors
/// A rename or removal that failed.
pub fn promote_retry(staged: (&Path, &Path), run: (&Path, &Path)) -> Result<(), LoadError> {
    for (from, to) in [(staged.0, run.0), (staged.1, run.1)] {
        if from.exists() {
            std::fs::rename(from, to).map_err(|e| LoadError::io(to, e))?;
        } else {
            match std::fs::remove_file(to) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LoadError::io(to, e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The run id of a run started at `micros`: `20261127T180102.123456Z`, unique per start,
/// sortable, and a valid Hive partition value.
pub fn run_id_from(micros: i64) -> String {
    let whole = format_timestamp(micros - micros.rem_euclid(1_000_000));
    let compact = whole.trim_end_matches('Z').replace(['-', ':'], "");
    format!("{compact}.{:06}Z", micros.rem_euclid(1_000_000))
}

/// Checks a run id given by the caller (`--run-id`): it names a Hive partition
/// (`run=<id>`), the rejects file and the report, so it is 1 to 100 ASCII letters, digits, `.`,
/// `-` or `_`, starting with a letter or digit. A `/` made the Parquet publish fail after SQLite
/// had committed the run; an `=` broke every reader of the partitions.
///
/// # Errors
/// [`LoadError::Usage`] naming what is wrong, before anything is written.
pub fn check_run_id(id: &str) -> Result<(), LoadError> {
    let starts_well = id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let all_allowed = id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if starts_well && all_allowed && id.len() <= 100 {
        return Ok(());
    }
    Err(LoadError::Usage(format!(
        "--run-id {id:?}: a run id is 1 to 100 ASCII letters, digits, `.`, `-` or `_`, starting \
         with a letter or digit (it names the Parquet partition `run=<id>`); the default, the \
         start time, is one"
    )))
}

/// Checks that a run id given by the caller sorts after every run `out` holds (`runs`), unless
/// it is one of them (a retry, or the same export loaded again): the claim-history rule breaks
/// ties between versions by the latest run id, in SQLite's merge as in Parquet's readers, so an
/// id that sorts before an earlier run's makes them disagree.
///
/// # Errors
/// [`LoadError::Usage`] naming the later run.
pub fn check_run_order<'a>(
    id: &str,
    runs: impl IntoIterator<Item = &'a str>,
    out: &Path,
) -> Result<(), LoadError> {
    let mut later = None;
    for run in runs {
        if run == id {
            return Ok(());
        }
        if run > id && later.is_none_or(|l| run > l) {
            later = Some(run);
        }
    }
    match later {
        None => Ok(()),
        Some(later) => Err(LoadError::Usage(format!(
            "--run-id {id} sorts before run {later}, which {} holds: run ids must sort in load \
             order (the claim-history rule breaks ties by the latest); give one that sorts after \
             it, or leave --run-id out (the start time)",
            out.display()
        ))),
    }
}

/// A new run id: the start time (see [`run_id_from`]).
pub fn new_run_id() -> String {
    run_id_from(now_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_run_id_must_sort_after_the_runs_held() {
        let out = Path::new("out");
        let runs = ["r1", "r3"];
        assert!(check_run_order("r4", runs, out).is_ok());
        assert!(
            check_run_order("r1", runs, out).is_ok(),
            "a run loaded again"
        );
        assert!(check_run_order("anything", [], out).is_ok());
        let Err(LoadError::Usage(e)) = check_run_order("r2", runs, out) else {
            panic!("r2 sorts before r3");
        };
        assert!(e.contains("sorts before run r3"), "{e}");
        assert!(
            check_run_order("r10", ["r9"], out).is_err(),
            "compared as text"
        );
    }

    #[test]
    fn run_ids_are_checked_as_partition_values() {
        for good in [
            "r1",
            "R1",
            "20261127T180102.123456Z",
            "weekly-2026_12",
            &"9".repeat(100),
        ] {
            assert!(check_run_id(good).is_ok(), "{good}");
        }
        assert!(check_run_id(&new_run_id()).is_ok());
        for bad in [
            "",
            "2026/01",
            "x=y",
            "..",
            ".hidden",
            "-r",
            "a b",
            "é",
            "a:b",
            &"9".repeat(101),
        ] {
            assert!(
                matches!(check_run_id(bad), Err(LoadError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_command_at_a_time_per_output_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let held = lock(dir.path()).expect("lock").expect("free");
        assert!(lock(dir.path()).expect("lock").is_none(), "held");
        drop(held);
        assert!(lock(dir.path()).expect("lock").is_some(), "released");
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = run_id_from(1_700_000_000_000_001);
        let b = run_id_from(1_700_000_000_100_000);
        assert_eq!(a, "20231114T221320.000001Z");
        assert!(a < b);
    }

    #[test]
    fn a_failed_command_leaves_no_empty_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("parquet")).expect("mkdir");
        std::fs::create_dir_all(out.join("rejects")).expect("mkdir");
        let held = lock(&out).expect("lock").expect("free");
        drop(held);
        remove_empty(&out, false);
        assert!(!out.exists());
        // An existing folder stays, and so does anything with data.
        std::fs::create_dir_all(out.join("rejects")).expect("mkdir");
        std::fs::write(out.join("rejects/r.ndjson"), "x").expect("write");
        remove_empty(&out, false);
        assert!(out.join("rejects/r.ndjson").exists());
    }
}
