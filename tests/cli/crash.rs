//! Crash tests at exact steps: each fault point of `claimline_fault::POINTS` that a command
//! reaches kills the process there (`CLAIMLINE_FAULT=<point>`); the next command repairs what was
//! left, and the tables end equal to those of a sequence that was never interrupted, with no
//! partial file visible to a reader at any moment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rusqlite::Connection;

use crate::{claimline, claimline_env, repo_root, tree, unchanged};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The three exports of the load sequence (one per API version, each with Patients and
/// Coverage).
fn exports() -> [PathBuf; 3] {
    let g = repo_root().join("sample-data/generated");
    [g.join("v1"), g.join("v2"), g.join("v3")]
}

fn load_args<'a>(input: &'a Path, out: &'a Path, run_id: &'a str) -> Vec<&'a str> {
    vec!["load", s(input), "--out", s(out), "--run-id", run_id]
}

fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of every SQLite table but `_claimline_runs` (its start and end times differ),
/// sorted; with `run_columns` false, the columns that depend on the run (`_run_id`,
/// `_source_file`, `_line`) are left out.
pub(crate) fn sqlite_dump(db: &Path, run_columns: bool) -> BTreeMap<String, Vec<String>> {
    let conn =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let names = crate::sqlite_table_names(&conn, |n| n != "_claimline_runs");
    let mut out = BTreeMap::new();
    for name in names {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\""))
            .expect("prepare");
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut parts = Vec::new();
                for (i, c) in columns.iter().enumerate() {
                    if !run_columns && ["_run_id", "_source_file", "_line"].contains(&c.as_str()) {
                        continue;
                    }
                    let v: rusqlite::types::Value = r.get(i)?;
                    parts.push(format!("{c}={v:?}"));
                }
                Ok(parts.join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// The run ids SQLite's `_claimline_runs` records.
fn sqlite_runs(db: &Path) -> Vec<String> {
    let conn =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let mut ids: Vec<String> = conn
        .prepare("SELECT run_id FROM _claimline_runs")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("ids");
    ids.sort();
    ids
}

/// The run ids of `parquet/_claimline_runs.json`.
pub(crate) fn parquet_runs(out: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(out.join("parquet/_claimline_runs.json")) else {
        return Vec::new();
    };
    let runs: serde_json::Value = serde_json::from_slice(&bytes).expect("runs JSON");
    let mut ids: Vec<String> = runs
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| r["run_id"].as_str().expect("run id").to_owned())
        .collect();
    ids.sort();
    ids
}

/// Every file under `parquet/` but the run list, relative path → bytes.
pub(crate) fn parquet_files(out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let root = out.join("parquet");
    let mut files = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "_claimline_runs.json") {
                let rel = p.strip_prefix(&root).expect("relative").to_path_buf();
                files.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    files
}

/// What any reader globbing `parquet/**` sees is whole: every file is a `part-<n>.parquet` that
/// a Parquet reader opens and reads to its end.
fn every_visible_file_is_whole(out: &Path) {
    for rel in parquet_files(out).into_keys() {
        let name = rel
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("part-") && name.ends_with(".parquet"),
            "a file no reader should see: {}",
            rel.display()
        );
        let file = std::fs::File::open(out.join("parquet").join(&rel)).expect("open");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", rel.display()))
            .build()
            .expect("reader");
        for batch in reader {
            batch.unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        }
    }
}

/// The outputs of an uninterrupted load of the three exports as runs r1, r2, r3.
fn reference(dir: &Path) -> PathBuf {
    let out = dir.join("reference");
    for (input, run) in exports().iter().zip(["r1", "r2", "r3"]) {
        succeeded(
            &claimline(dir, &load_args(input, &out, run)),
            "a reference load",
        );
    }
    out
}

pub(crate) fn killed_at(out: &Output, point: &str) {
    assert!(!out.status.success(), "not killed at {point}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("fault point {point} reached")),
        "the fault point {point} was not reached: {stderr}"
    );
}

/// An output `name` in `dir` holding a load of the first export as run `r1`; the exports.
fn loaded_once(dir: &Path, name: &str) -> (PathBuf, [PathBuf; 3]) {
    let exports = exports();
    let out = dir.join(name);
    succeeded(
        &claimline(dir, &load_args(&exports[0], &out, "r1")),
        "load r1",
    );
    (out, exports)
}

/// `out`'s standard error says `text`.
fn says(out: &Output, text: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(text), "{stderr}");
}

/// A load killed at each of its fault points, then the sequence finished: the tables equal the
/// uninterrupted sequence's, byte for byte in Parquet, row for row in SQLite; at no moment is a
/// partial file visible; SQLite and Parquet agree on the runs they hold once the next command
/// has run.
#[test]
fn a_load_killed_at_every_step_ends_as_if_never_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = reference(dir.path());
    let expected_sqlite = sqlite_dump(&reference.join("claimline.sqlite"), true);
    let expected_parquet = parquet_files(&reference);
    let [a, b, c] = exports();
    // (fault point, whether the killed run's commit had happened)
    let points = [
        ("load.history-spill", false),
        ("scan.batch", false),
        ("load.before-commit", false),
        ("load.between-commits", true),
        ("parquet.publish", true),
    ];
    for (point, committed) in points {
        let out = dir.path().join(format!("out-{point}"));
        succeeded(
            &claimline(dir.path(), &load_args(&a, &out, "r1")),
            "load r1",
        );
        // The claim history waits on disk when past its budget (one byte: every EOB a run):
        // killed while writing it, then loaded that way again, the tables are the reference's.
        let on_disk: &[&str] = if point == "load.history-spill" {
            &["--history-memory", "1B"]
        } else {
            &[]
        };
        let r2_args = [load_args(&b, &out, "r2"), on_disk.to_vec()].concat();
        let killed = claimline_env(dir.path(), &r2_args, &[("CLAIMLINE_FAULT", point)]);
        killed_at(&killed, point);
        every_visible_file_is_whole(&out);
        let db = out.join("claimline.sqlite");
        assert_eq!(
            sqlite_runs(&db).contains(&"r2".to_owned()),
            committed,
            "{point}: SQLite holds r2 only when the commit happened"
        );
        if !committed {
            // Readers see exactly the first run.
            assert_eq!(parquet_runs(&out), ["r1"], "{point}");
            let again = claimline(dir.path(), &r2_args);
            succeeded(&again, "load r2 again");
            if !on_disk.is_empty() {
                says(
                    &again,
                    "removed the claim-history files an unfinished load left",
                );
            }
        }
        assert!(!out.join(".claimline-history").exists(), "{point}");
        let next = claimline(dir.path(), &load_args(&c, &out, "r3"));
        succeeded(&next, "load r3");
        if committed {
            assert!(
                String::from_utf8_lossy(&next.stderr).contains("finished the commit of run r2"),
                "{point}: {}",
                String::from_utf8_lossy(&next.stderr)
            );
        }
        assert_eq!(sqlite_runs(&db), ["r1", "r2", "r3"], "{point}");
        assert_eq!(parquet_runs(&out), ["r1", "r2", "r3"], "{point}");
        assert_eq!(sqlite_dump(&db, true), expected_sqlite, "{point}: SQLite");
        assert!(
            parquet_files(&out) == expected_parquet,
            "{point}: the Parquet files differ from the uninterrupted sequence's"
        );
        assert!(!out.join(".claimline-staging").exists(), "{point}");
    }
}

/// A load that fails (not killed) at each point leaves the previous output exactly as it was and
/// nothing staged.
#[test]
fn a_load_failing_before_its_commit_leaves_the_previous_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, [_, b, _]) = loaded_once(dir.path(), "out");
    let before_sqlite = sqlite_dump(&out.join("claimline.sqlite"), true);
    let before_parquet = parquet_files(&out);
    for point in ["scan.batch@2", "load.before-commit"] {
        let failed = claimline_env(
            dir.path(),
            &load_args(&b, &out, "r2"),
            &[("CLAIMLINE_FAULT", &format!("{point}:fail"))],
        );
        assert_eq!(failed.status.code(), Some(5), "{point}");
        assert_eq!(
            sqlite_dump(&out.join("claimline.sqlite"), true),
            before_sqlite
        );
        assert!(parquet_files(&out) == before_parquet, "{point}");
        assert!(!out.join(".claimline-staging").exists(), "{point}");
    }
}

/// A load that fails in its commit, after `current/`'s new versions were built beside the encode
/// of its parts (Parquet's publish fails after SQLite's commit point), leaves `current/` as it
/// was and no version of its own behind; the next command finishes its commit, and the next
/// load's `current/` is built from every run.
#[test]
fn a_load_failing_at_its_commit_leaves_current_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, [_, b, c]) = loaded_once(dir.path(), "out");
    // The versions built, and what each table of `current/` shows.
    let versions = |out: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(out.join(".claimline-current"))
            .expect("versions")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let shown = |out: &Path| -> BTreeMap<String, PathBuf> {
        std::fs::read_dir(out.join("current"))
            .expect("current")
            .flatten()
            .filter_map(|e| {
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_link(e.path()).ok()?,
                ))
            })
            .collect()
    };
    // After r3's load: its versions alone.
    let only_r3 = |after: &[String]| {
        assert!(after.iter().any(|v| v.ends_with("-r3")), "{after:?}");
        let old = |v: &String| v.ends_with("-r1") || v.ends_with("-r2");
        assert!(!after.iter().any(old), "{after:?}");
    };
    let (built, links) = (versions(&out), shown(&out));
    assert!(built.iter().any(|v| v.ends_with("-r1")), "{built:?}");
    assert!(!links.is_empty());
    let failed = claimline_env(
        dir.path(),
        &load_args(&b, &out, "r2"),
        &[("CLAIMLINE_FAULT", "parquet.publish:fail")],
    );
    assert_eq!(failed.status.code(), Some(5));
    assert_eq!(versions(&out), built);
    assert_eq!(shown(&out), links);
    let next = claimline(dir.path(), &load_args(&c, &out, "r3"));
    succeeded(&next, "load r3");
    says(&next, "finished the commit of run r2");
    assert_eq!(parquet_runs(&out), ["r1", "r2", "r3"]);
    only_r3(&versions(&out));

    // Killed in the same place: the versions built before the commit stay, shown by nothing,
    // until the next load's refresh removes them.
    let (out, _) = loaded_once(dir.path(), "killed");
    let links = shown(&out);
    let killed = claimline_env(
        dir.path(),
        &load_args(&b, &out, "r2"),
        &[("CLAIMLINE_FAULT", "parquet.publish")],
    );
    killed_at(&killed, "parquet.publish");
    assert!(
        versions(&out).contains(&"cclf1-r2".to_owned()),
        "{:?}",
        versions(&out)
    );
    assert_eq!(shown(&out), links);
    succeeded(
        &claimline(dir.path(), &load_args(&c, &out, "r3")),
        "load r3",
    );
    only_r3(&versions(&out));
}

/// A process killed while Parquet publishes its run (after SQLite's commit) leaves readers of
/// the dataset the previous runs' current rows until the next command finishes the publish: the
/// claim versions (`_claimline_claims`) go in last, so no version is read before its rows are
/// in place (published first, they made the README's rule read claims with no rows), and the
/// rule reads only the runs `_claimline_runs.json` records (killed after the last table, before
/// the run list, the new versions were read while the per-resource tables' rule kept the old).
#[test]
fn readers_of_a_publish_cut_short_see_the_previous_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = crate::history::claim_tables_compared();
    for at in ["first", "last"] {
        let (out, [_, b, c]) = loaded_once(dir.path(), at);
        let before = crate::history::parquet_current(&out.join("parquet"), &tables);
        assert!(!before.is_empty());
        // One publish step per table folder.
        let steps = std::fs::read_dir(out.join("parquet"))
            .expect("dataset")
            .flatten()
            .filter(|e| e.path().is_dir())
            .count();
        let fault = match at {
            "first" => "parquet.publish".to_owned(),
            _ => format!("parquet.publish@{steps}"),
        };
        let killed = claimline_env(
            dir.path(),
            &load_args(&b, &out, "r2"),
            &[("CLAIMLINE_FAULT", fault.as_str())],
        );
        killed_at(&killed, "parquet.publish");
        assert_eq!(
            out.join("parquet/_claimline_claims/run=r2").exists(),
            at == "last",
            "the claim versions are published last"
        );
        assert_eq!(parquet_runs(&out), ["r1"], "{at}");
        assert_eq!(
            crate::history::parquet_current(&out.join("parquet"), &tables),
            before,
            "the previous runs' rows, while the publish is cut short ({at})"
        );
        let next = claimline(dir.path(), &load_args(&c, &out, "r3"));
        succeeded(&next, "load r3");
        says(&next, "finished the commit of run r2");
        assert_eq!(parquet_runs(&out), ["r1", "r2", "r3"]);
    }
}

/// A load that fails after its commit point (SQLite holds the run, Parquet has not published
/// it) leaves its staged run for the next command, which publishes it: the two never disagree.
#[test]
fn a_load_failing_after_its_commit_point_is_finished_by_the_next_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, [_, b, c]) = loaded_once(dir.path(), "out");
    let failed = claimline_env(
        dir.path(),
        &load_args(&b, &out, "r2"),
        &[("CLAIMLINE_FAULT", "load.between-commits:fail")],
    );
    assert_eq!(failed.status.code(), Some(5));
    let db = out.join("claimline.sqlite");
    assert_eq!(sqlite_runs(&db), ["r1", "r2"]);
    assert_eq!(parquet_runs(&out), ["r1"]);
    let next = claimline(dir.path(), &load_args(&c, &out, "r3"));
    succeeded(&next, "load r3");
    says(&next, "finished the commit of run r2");
    assert_eq!(sqlite_runs(&db), ["r1", "r2", "r3"]);
    assert_eq!(parquet_runs(&out), ["r1", "r2", "r3"]);
}

/// A run id loaded again whose load fails just before the database's commit: its staged run is
/// kept for the recovery (the commit was about to be attempted), which asks the database for
/// that very run (its id and start), finds only the earlier load of the id, and removes it.
#[test]
fn a_run_id_loaded_again_that_fails_before_its_commit_is_not_published() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, [_, b, c]) = loaded_once(dir.path(), "out");
    let db = out.join("claimline.sqlite");
    let (sqlite_before, parquet_before) = (sqlite_dump(&db, true), parquet_files(&out));
    let failed = claimline_env(
        dir.path(),
        &load_args(&b, &out, "r1"),
        &[("CLAIMLINE_FAULT", "load.commit:fail")],
    );
    assert_eq!(failed.status.code(), Some(5));
    assert!(
        out.join(".claimline-staging").exists(),
        "kept for the recovery"
    );
    assert_eq!(sqlite_dump(&db, true), sqlite_before);
    let next = claimline(dir.path(), &load_args(&c, &out, "r3"));
    succeeded(&next, "load r3");
    says(&next, "removed what the unfinished run r1 left");
    assert_eq!(parquet_runs(&out), ["r1", "r3"]);
    // Parquet holds the first load of r1, as SQLite does.
    let r1 = |files: &BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, Vec<u8>> {
        files
            .iter()
            .filter(|(p, _)| p.to_string_lossy().contains("run=r1"))
            .map(|(p, b)| (p.clone(), b.clone()))
            .collect()
    };
    assert!(!r1(&parquet_before).is_empty());
    assert!(r1(&parquet_files(&out)) == r1(&parquet_before));
}

/// A first load stopped once its new database's tables are committed under their temporary
/// name (and being synced on a thread of their own), before its indexes are built: failing, it
/// removes the temporary database (and the output folder it made); killed, it leaves it to the
/// next load, which removes it.
/// Neither leaves a database or a run that readers see.
#[test]
fn a_first_load_stopped_while_its_database_is_indexed_leaves_no_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, _, _] = exports();
    // (A failed first load takes the output folder it made with it.)
    let temporary = |out: &Path| -> usize {
        std::fs::read_dir(out)
            .into_iter()
            .flatten()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".sqlite.tmp-"))
            })
            .count()
    };
    for how in ["fail", "kill"] {
        let out = dir.path().join(format!("out-{how}"));
        let stopped = claimline_env(
            dir.path(),
            &load_args(&a, &out, "r1"),
            &[("CLAIMLINE_FAULT", &format!("sqlite.indexes:{how}"))],
        );
        if how == "kill" {
            killed_at(&stopped, "sqlite.indexes");
        } else {
            assert_eq!(stopped.status.code(), Some(5), "{how}");
        }
        assert!(!out.join("claimline.sqlite").exists(), "{how}");
        assert_eq!(temporary(&out), usize::from(how == "kill"), "{how}");
        assert!(parquet_runs(&out).is_empty(), "{how}");
        succeeded(
            &claimline(dir.path(), &load_args(&a, &out, "r1")),
            "load r1 again",
        );
        assert_eq!(temporary(&out), 0, "{how}");
        assert_eq!(sqlite_runs(&out.join("claimline.sqlite")), ["r1"], "{how}");
        assert_eq!(parquet_runs(&out), ["r1"], "{how}");
    }
}

/// `claimline run --local-sandbox` with extra arguments, in `work`.
fn local_run(work: &Path, out: &Path, extra: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_claimline"));
    cmd.current_dir(work)
        .args(["run", "--local-sandbox", "--out", s(out), "--json"])
        .args(extra)
        .env_remove("BCDA_CLIENT_ID")
        .env_remove("BCDA_CLIENT_SECRET")
        .env_remove("CLAIMLINE_CONFIG")
        .stdin(Stdio::null());
    match fault {
        Some(f) => cmd.env("CLAIMLINE_FAULT", f),
        None => cmd.env_remove("CLAIMLINE_FAULT"),
    };
    cmd.output().expect("runs")
}

fn state(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("claimline-state.json")).expect("state"))
        .expect("state JSON")
}

/// `run` killed after its load committed but before `claimline-state.json` records it: the next
/// run resumes the pending run, finds its export loaded, does not load it twice, and commits
/// the `_since`; the tables equal an uninterrupted run's.
#[test]
fn a_run_killed_before_its_state_is_saved_is_finished_by_the_next() {
    let work = tempfile::tempdir().expect("work");
    let reference = work.path().join("reference");
    succeeded(
        &local_run(work.path(), &reference, &[], None),
        "reference run",
    );
    let out = work.path().join("out");
    let killed = local_run(work.path(), &out, &[], Some("run.before-state"));
    killed_at(&killed, "run.before-state");
    let pending = state(&out)["scopes"][0]["pending"]["run_id"]
        .as_str()
        .expect("the run is still pending")
        .to_owned();
    assert_eq!(state(&out)["scopes"][0]["since"], serde_json::Value::Null);
    let next = local_run(work.path(), &out, &[], None);
    succeeded(&next, "the next run");
    let report: serde_json::Value = serde_json::from_slice(&next.stdout).expect("JSON");
    assert_eq!(
        report["run_id"],
        pending.as_str(),
        "the pending run resumed"
    );
    assert_eq!(report["committed"], true);
    assert_eq!(
        sqlite_runs(&out.join("claimline.sqlite")),
        parquet_runs(&out)
    );
    assert_eq!(
        sqlite_dump(&out.join("claimline.sqlite"), false),
        sqlite_dump(&reference.join("claimline.sqlite"), false)
    );
    assert_eq!(parquet_runs(&out), [pending]);
}

/// The same kill, then the pending run's export folder removed by hand: the next run fetches a
/// new export (a later transactionTime) and finds the run loaded already; `_since` moves to the
/// transactionTime the tables hold, not the new export's, whose changes after it were never
/// loaded (found by a review: they were skipped for good).
#[test]
fn a_pending_run_loaded_from_another_export_commits_what_the_tables_hold() {
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let killed = local_run(work.path(), &out, &[], Some("run.before-state"));
    killed_at(&killed, "run.before-state");
    let pending = &state(&out)["scopes"][0]["pending"];
    let run_id = pending["run_id"].as_str().expect("pending").to_owned();
    let conn = rusqlite::Connection::open(out.join("claimline.sqlite")).expect("db");
    let loaded: String = conn
        .query_row(
            "SELECT transaction_time FROM _claimline_runs WHERE run_id = ?1",
            [&run_id],
            |r| r.get(0),
        )
        .expect("the run's record");
    drop(conn);
    let exports = out.join("exports");
    for e in std::fs::read_dir(&exports).expect("exports").flatten() {
        std::fs::remove_dir_all(e.path()).expect("remove the export");
    }
    let log = work.path().join("run.log");
    let next = local_run(work.path(), &out, &["--log", s(&log)], None);
    succeeded(&next, "the next run");
    let report: serde_json::Value = serde_json::from_slice(&next.stdout).expect("JSON");
    assert_eq!(report["run_id"], run_id.as_str());
    assert_eq!(report["already_loaded"], true);
    assert_ne!(
        report["fetch"]["job_url"],
        serde_json::Value::Null,
        "a new export was fetched"
    );
    // The new job's transactionTime is another (its start, a run later).
    let log = std::fs::read_to_string(&log).expect("the log");
    assert!(log.contains("is not the one run"), "{log}");
    assert_eq!(state(&out)["scopes"][0]["since"], loaded.as_str());
}

/// `reload` killed in its swap (old tables aside, rebuilt ones not yet in): the output holds no
/// tables at that moment; the next command finishes the swap and the tables equal an
/// uninterrupted reload's.
#[test]
fn a_reload_killed_in_its_swap_is_finished_by_the_next_command() {
    let work = tempfile::tempdir().expect("work");
    let reference = work.path().join("reference");
    succeeded(
        &local_run(work.path(), &reference, &[], None),
        "reference run",
    );
    succeeded(
        &claimline(work.path(), &["reload", "--out", s(&reference)]),
        "reference reload",
    );
    let out = work.path().join("out");
    succeeded(&local_run(work.path(), &out, &[], None), "run");
    let killed = claimline_env(
        work.path(),
        &["reload", "--out", s(&out)],
        &[("CLAIMLINE_FAULT", "reload.swap")],
    );
    killed_at(&killed, "reload.swap");
    assert!(!out.join("claimline.sqlite").exists(), "killed mid-swap");
    // The next command (here a run, which finds nothing new) finishes the swap first.
    let next = local_run(work.path(), &out, &[], None);
    succeeded(&next, "the next run");
    says(&next, "finished the reload");
    assert_eq!(
        sqlite_dump(&out.join("claimline.sqlite"), false),
        sqlite_dump(&reference.join("claimline.sqlite"), false)
    );
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".reload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `fetch` killed between verifying a download and renaming it into place: the rerun follows
/// the same job and the export ends byte-identical to an uninterrupted fetch. The whole `.part`
/// is checked and renamed, not fetched again (found by a review: the server's 416 for a range
/// past its end removed the part, and the file was downloaded a second time).
#[test]
fn a_fetch_killed_before_a_rename_resumes_to_identical_files() {
    let data = tempfile::tempdir().expect("data");
    crate::fetch::make_data(data.path(), 20);
    let (_sandbox, url) = crate::fetch::sandbox(data.path(), &[]);
    let work = tempfile::tempdir().expect("work");
    let reference = work.path().join("reference");
    crate::fetch::report(
        &crate::fetch::fetch(&url, &reference, crate::fetch::SECRET)
            .output()
            .expect("fetch runs"),
    );
    let out = work.path().join("out");
    let killed = crate::fetch::fetch(&url, &out, crate::fetch::SECRET)
        .env("CLAIMLINE_FAULT", "fetch.rename@2")
        .output()
        .expect("fetch runs");
    killed_at(&killed, "fetch.rename");
    assert!(!out.join("manifest.json").exists(), "killed before the end");
    let rerun = crate::fetch::fetch(&url, &out, crate::fetch::SECRET)
        .output()
        .expect("fetch runs");
    let stderr = String::from_utf8_lossy(&rerun.stderr).into_owned();
    assert!(!stderr.contains("retrying"), "{stderr}");
    let rerun = crate::fetch::report(&rerun);
    assert_eq!(rerun["reattached"], true);
    assert_eq!(
        crate::fetch::data_files(&out),
        crate::fetch::data_files(&reference)
    );
}

/// An input another program cuts short while it is read (here at the exact step after its map,
/// `scan.mapped:stop`, the file is emptied): the command names the file and exits 4 (a damaged
/// input), nothing committed (found by a review: the read died of a bare SIGBUS, exit 135, with
/// no word and no file named).
#[cfg(target_os = "linux")]
#[test]
fn an_input_cut_short_while_it_is_read_is_named_and_exits_4() {
    let work = tempfile::tempdir().expect("work");
    let export = crate::cclf_files::synth(work.path(), "v2", "3", "1");
    let out = work.path().join("out");
    let done = load_with_patients_cut_while_mapped(&export, &out, 0);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("Patient.000.ndjson: the file shrank while it was being read"),
        "{stderr}"
    );
    assert!(!out.join("claimline.sqlite").exists(), "nothing committed");

    // Cut by a few bytes, within the map's last page: no SIGBUS (the bytes past the new end read
    // as zeros), but its size says it changed, and it is damaged: exit 4, nothing committed
    // (found by a review: the load committed what it read).
    let again = work.path().join("again");
    std::fs::create_dir(&again).expect("mkdir");
    let export = crate::cclf_files::synth(&again, "v2", "3", "1");
    let patients = export.join("Patient.000.ndjson");
    let len = std::fs::metadata(&patients).expect("size").len();
    // Within the last page (the synthetic file's size is fixed by its seed).
    assert!(len % 4096 >= 6, "{len}");
    let cut = len - 5;
    let out = work.path().join("out-again");
    let done = load_with_patients_cut_while_mapped(&export, &out, cut);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("changed_while_read"), "{stderr}");
    assert!(!out.join("claimline.sqlite").exists(), "nothing committed");
}

/// `load` of `export` into `out`, its Patient file cut to `len` bytes while it is mapped: the
/// load stops itself at the `scan.mapped` fault point of its first map (the Patients', read
/// first for their MBIs), the file is cut, and the load goes on.
#[cfg(target_os = "linux")]
fn load_with_patients_cut_while_mapped(export: &Path, out: &Path, len: u64) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["load", s(export), "--out", s(out), "--json"])
        .env("CLAIMLINE_FAULT", "scan.mapped@1:stop")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("load starts");
    stopped(child.id());
    std::fs::OpenOptions::new()
        .write(true)
        .open(export.join("Patient.000.ndjson"))
        .expect("open")
        .set_len(len)
        .expect("cut short");
    // SAFETY: sends SIGCONT to the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
    child.wait_with_output().expect("load ends")
}

/// Blocks until the child `pid` stops itself at its `:stop` fault point (`waitpid` with
/// `WUNTRACED` returns when it is stopped, without reaping it); panics if it ends instead.
#[cfg(target_os = "linux")]
fn stopped(pid: u32) {
    let mut status = 0;
    // SAFETY: waits on a child this test started; `status` is a valid out-parameter.
    let got = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WUNTRACED) };
    assert_eq!(got, pid as libc::pid_t, "waitpid");
    assert!(
        libc::WIFSTOPPED(status),
        "the process ended (status {status}) before its fault point"
    );
}

/// Every fault point is exercised by a test of this module or of the fetch, run, PostgreSQL and
/// history tests (the kills in the middle of a download, of a COPY; a refresh of `current/`
/// cut short).
#[test]
fn every_fault_point_has_a_crash_test() {
    let this = [
        include_str!("crash.rs"),
        include_str!("fetch.rs"),
        include_str!("run.rs"),
        include_str!("postgres.rs"),
        include_str!("history.rs"),
    ]
    .concat();
    for (point, _) in claimline_fault::POINTS {
        assert!(
            this.contains(&format!("\"{point}")),
            "no crash test names {point}"
        );
    }
}

/// A state file that is a link to nothing, and a database of 0 bytes, stop every command with
/// the file named and exit 5, nothing changed; a damaged staged run stops the recovery before
/// it publishes or removes any other (found by a review: each was read as "no state yet", and
/// the run started afresh over it; the recovery acted on the runs staged before the damaged one).
#[cfg(unix)]
#[test]
fn a_state_file_linked_to_nothing_or_empty_stops_the_command() {
    let work = tempfile::tempdir().expect("work");
    let base = work.path().join("base");
    succeeded(&local_run(work.path(), &base, &[], None), "run");
    let copy = |name: &str| {
        let to = work.path().join(name);
        let status = Command::new("cp")
            .args(["-a", s(&base), s(&to)])
            .status()
            .expect("cp");
        assert!(status.success());
        to
    };
    let [a, _, _] = exports();
    let stops = |r: Output, file: &str, what: &str| {
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(5), "{what}: {stderr}");
        assert!(stderr.contains(file), "{what}: {stderr}");
    };
    for file in [
        "claimline-state.json",
        "parquet/_claimline_runs.json",
        "claimline.sqlite",
    ] {
        let out = copy(&format!("link-{}", file.replace('/', "-")));
        let path = out.join(file);
        std::fs::remove_file(&path).expect("remove");
        std::os::unix::fs::symlink(work.path().join("gone"), &path).expect("link");
        let before = tree(&out);
        if file != "claimline-state.json" {
            let r = claimline(work.path(), &["load", s(&a), "--out", s(&out)]);
            stops(r, file, "load");
            unchanged(&out, &before, "the load");
        }
        let r = local_run(work.path(), &out, &[], None);
        stops(r, file, "run");
        unchanged(&out, &before, "the run");
    }
    // A run list that records one run twice (not claimline's writing: which record stands
    // cannot be told) stops every command too (found by a review: it was taken as it was).
    let out = copy("runs-twice");
    let runs_path = out.join("parquet/_claimline_runs.json");
    let mut runs: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&runs_path).expect("runs")).expect("json");
    runs.push(runs[0].clone());
    std::fs::write(&runs_path, serde_json::to_vec(&runs).expect("json")).expect("write");
    let before = tree(&out);
    let r = claimline(work.path(), &["load", s(&a), "--out", s(&out)]);
    stops(r, "_claimline_runs.json", "load");
    assert!(
        String::from_utf8_lossy(&claimline(work.path(), &["load", s(&a), "--out", s(&out)]).stderr)
            .contains("records run")
    );
    unchanged(&out, &before, "the load");

    let out = copy("empty-sqlite");
    std::fs::write(out.join("claimline.sqlite"), b"").expect("empty");
    let _ = std::fs::remove_file(out.join("claimline.sqlite-wal"));
    let before = tree(&out);
    for (r, what) in [
        (
            claimline(work.path(), &["load", s(&a), "--out", s(&out)]),
            "load",
        ),
        (local_run(work.path(), &out, &[], None), "run"),
        (
            claimline(work.path(), &["report", "--out", s(&out)]),
            "report",
        ),
        (
            claimline(work.path(), &["reconcile", "--out", s(&out)]),
            "reconcile",
        ),
    ] {
        stops(r, "claimline.sqlite", what);
        unchanged(&out, &before, what);
    }

    // Two staged runs a killed process could leave, the later one's record damaged.
    let out = copy("staged");
    let killed = claimline_env(
        work.path(),
        &["load", s(&a), "--out", s(&out), "--run-id", "zz1"],
        &[("CLAIMLINE_FAULT", "load.between-commits")],
    );
    killed_at(&killed, "load.between-commits");
    let staging = out.join(".claimline-staging");
    let later = staging.join("zz2");
    std::fs::create_dir_all(&later).expect("mkdir");
    std::fs::write(later.join("READY.json"), b"{\"run\": ").expect("damage");
    let before = tree(&out);
    let r = claimline(work.path(), &["load", s(&a), "--out", s(&out)]);
    stops(r, "zz2/READY.json", "load");
    unchanged(&out, &before, "the load");

    // A value of the wrong type in a state file is not quoted (an MBI, say).
    let out = copy("wrong-type");
    std::fs::write(
        out.join("claimline-state.json"),
        br#"{"format": "1EG4TE5MK73", "scopes": [], "runs": []}"#,
    )
    .expect("damage");
    let r = local_run(work.path(), &out, &[], None);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("claimline-state.json") && !stderr.contains("1EG4TE5MK73"),
        "{stderr}"
    );

    // A manifest that is a folder is a manifest that cannot be read, not no manifest.
    let input = work.path().join("manifest-folder");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::copy(
        a.join("Patient.000.ndjson.gz"),
        input.join("Patient.000.ndjson.gz"),
    )
    .expect("copy");
    std::fs::create_dir(input.join("manifest.json")).expect("a folder");
    let out = work.path().join("manifest-folder-out");
    let r = claimline(work.path(), &["load", s(&input), "--out", s(&out)]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("manifest.json"), "{stderr}");
}

/// A damaged state file stops the next command with the file named and exit 5, and nothing on
/// disk changes: the Parquet run list, the run state, a run record in SQLite, a manifest.
#[test]
fn a_corrupt_state_file_stops_the_command_and_changes_nothing() {
    let work = tempfile::tempdir().expect("work");
    let base = work.path().join("base");
    succeeded(&local_run(work.path(), &base, &[], None), "run");
    let copy = |name: &str| {
        let to = work.path().join(name);
        let status = Command::new("cp")
            .args(["-a", s(&base), s(&to)])
            .status()
            .expect("cp");
        assert!(status.success());
        to
    };
    let [a, _, _] = exports();

    // parquet/_claimline_runs.json: a load and a run both stop.
    let out = copy("runs-json");
    std::fs::write(out.join("parquet/_claimline_runs.json"), b"[{\"run_id\": ").expect("damage");
    let before = tree(&out);
    let r = claimline(work.path(), &["load", s(&a), "--out", s(&out)]);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("_claimline_runs.json: damaged"), "{stderr}");
    unchanged(&out, &before, "the load");
    let r = local_run(work.path(), &out, &[], None);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    unchanged(&out, &before, "the run");

    // claimline-state.json.
    let out = copy("state");
    std::fs::write(
        out.join("claimline-state.json"),
        b"{\"format\": 1, \"scopes\": [",
    )
    .expect("damage");
    let before = tree(&out);
    let r = local_run(work.path(), &out, &[], None);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("claimline-state.json: damaged"), "{stderr}");
    unchanged(&out, &before, "the run");
    let r = claimline(work.path(), &["reload", "--out", s(&out)]);
    assert_eq!(r.status.code(), Some(5));
    unchanged(&out, &before, "the reload");

    // A run record in SQLite's _claimline_runs.
    let out = copy("sqlite-runs");
    {
        let conn = Connection::open(out.join("claimline.sqlite")).expect("open");
        conn.execute("UPDATE _claimline_runs SET record = '{not json'", [])
            .expect("damage");
    }
    let before = tree(&out);
    let r = claimline(work.path(), &["load", s(&a), "--out", s(&out)]);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("claimline.sqlite: damaged") && stderr.contains("_claimline_runs"),
        "{stderr}"
    );
    unchanged(&out, &before, "the load");
    let r = local_run(work.path(), &out, &[], None);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    unchanged(&out, &before, "the run");
    // `load-cclf` too, with or without a run id (without one it read no record and committed).
    let files = work.path().join("cclf-files");
    succeeded(
        &claimline(
            work.path(),
            &["export", "cclf", "--from", s(&base), "--out", s(&files)],
        ),
        "export cclf",
    );
    let r = claimline(work.path(), &["load-cclf", s(&files), "--out", s(&out)]);
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    unchanged(&out, &before, "load-cclf");

    // claimline.sqlite that is not a database at all.
    let out = copy("not-a-database");
    std::fs::write(out.join("claimline.sqlite"), vec![b'x'; 8192]).expect("damage");
    let before = tree(&out);
    for r in [
        claimline(work.path(), &["load", s(&a), "--out", s(&out)]),
        local_run(work.path(), &out, &[], None),
    ] {
        assert_eq!(
            r.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(
            stderr.contains("claimline.sqlite: damaged: not a readable SQLite database"),
            "{stderr}"
        );
        unchanged(&out, &before, "a command");
    }

    // A manifest beside the input: the load stops (exit 3) before it writes anything.
    let input = work.path().join("input");
    let status = Command::new("cp")
        .args(["-a", s(&a), s(&input)])
        .status()
        .expect("cp");
    assert!(status.success());
    std::fs::write(input.join("manifest.json"), b"{\"transactionTime\": ").expect("damage");
    let out = copy("manifest");
    let before = tree(&out);
    let r = claimline(work.path(), &["load", s(&input), "--out", s(&out)]);
    assert_eq!(
        r.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("manifest.json"));
    unchanged(&out, &before, "the load");
}
