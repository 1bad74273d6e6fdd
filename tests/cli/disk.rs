//! Full disks, readers and permissions: a write that fails for want of space (a file-size limit,
//! or `/dev/full`) exits 5 with the path on one line and leaves the previous state and no
//! temporary file; a reader in the middle of a read transaction, or listing the Parquet folder,
//! sees the old state or the new one, never a mix; folders and files that cannot be written or
//! read give a clear error and the documented exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;

use crate::{claimline, repo_root, tree};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn generated(v: &str) -> PathBuf {
    repo_root().join("sample-data/generated").join(v)
}

/// `claimline args…` with a file-size limit of `kib` KiB; SIGXFSZ is ignored (the shell's
/// `trap ''` is inherited), so a write past the limit fails with EFBIG as a full disk would.
fn limited(cwd: &Path, kib: u64, args: &[&str]) -> Output {
    Command::new("bash")
        .current_dir(cwd)
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_claimline"))
        .args(args)
        .env_remove("CLAIMLINE_FAULT")
        .output()
        .expect("bash runs")
}

fn names(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_keys()
        .map(|p| p.display().to_string())
        .collect()
}

/// Exit 5, one line on stderr naming `what`, and no temporary file left in `out`.
fn failed_for_space(r: &Output, what: &str, out: &Path) {
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(what), "{what} not named: {stderr}");
    assert!(
        ["File too large", "full", "Error writing to disk"]
            .iter()
            .any(|w| stderr.contains(w)),
        "{stderr}"
    );
    let leftovers: Vec<String> = names(out)
        .into_iter()
        .filter(|n| n.contains(".tmp") || n.contains("staging") || n.contains(".rewrite"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_full_disk_during_a_parquet_write_leaves_the_previous_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let first = claimline(
        dir.path(),
        &[
            "load",
            s(&generated("v1")),
            "--out",
            s(&out),
            "--format",
            "parquet",
        ],
    );
    assert!(first.status.success());
    let before = tree(&out);
    let r = limited(
        dir.path(),
        48,
        &[
            "load",
            s(&generated("v2")),
            "--out",
            s(&out),
            "--format",
            "parquet",
        ],
    );
    failed_for_space(&r, ".parquet", &out);
    assert!(tree(&out) == before, "the previous output changed");
}

#[test]
fn a_full_disk_during_an_sqlite_write_leaves_the_previous_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A new database: nothing is left, not even the one being built aside.
    let fresh = dir.path().join("fresh");
    let r = limited(
        dir.path(),
        64,
        &[
            "load",
            s(&generated("v2")),
            "--out",
            s(&fresh),
            "--format",
            "sqlite",
        ],
    );
    failed_for_space(&r, "claimline.sqlite", &fresh);
    assert!(!fresh.join("claimline.sqlite").exists());
    // An existing one: unchanged.
    let out = dir.path().join("out");
    let first = claimline(
        dir.path(),
        &[
            "load",
            s(&generated("v1")),
            "--out",
            s(&out),
            "--format",
            "sqlite",
        ],
    );
    assert!(first.status.success());
    let rows = |db: &Path| -> i64 {
        Connection::open(db)
            .expect("open")
            .query_row("SELECT count(*) FROM cclf1", [], |r| r.get(0))
            .expect("count")
    };
    let before = rows(&out.join("claimline.sqlite"));
    let size = std::fs::metadata(out.join("claimline.sqlite"))
        .expect("db")
        .len();
    let r = limited(
        dir.path(),
        size / 1024 + 8,
        &[
            "load",
            s(&generated("v2")),
            "--out",
            s(&out),
            "--format",
            "sqlite",
        ],
    );
    failed_for_space(&r, "claimline.sqlite", &out);
    assert_eq!(rows(&out.join("claimline.sqlite")), before);
    let check: String = Connection::open(out.join("claimline.sqlite"))
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
}

#[test]
fn a_full_disk_during_a_download_exits_5_and_the_rerun_completes() {
    let data = tempfile::tempdir().expect("data");
    crate::fetch::make_data(data.path(), 20);
    let (_sandbox, url) = crate::fetch::sandbox(data.path(), &[]);
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("export");
    let mut args: Vec<String> = crate::fetch::fetch(&url, &out, crate::fetch::SECRET)
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.retain(|a| !a.is_empty());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = Command::new("bash")
        .current_dir(work.path())
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_claimline"))
        .args(&refs)
        .env("BCDA_CLIENT_ID", "e2e-client")
        .env("BCDA_CLIENT_SECRET", crate::fetch::SECRET)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(!out.join("manifest.json").exists());
    // The rerun without the limit finishes the same export.
    crate::fetch::report(
        &crate::fetch::fetch(&url, &out, crate::fetch::SECRET)
            .output()
            .expect("fetch runs"),
    );
    assert!(out.join("manifest.json").exists());
}

/// A reader in the middle of a read transaction on `claimline.sqlite` while a load commits: the
/// load succeeds, the reader keeps seeing the old state until it ends its transaction, then
/// sees the new one.
#[test]
fn a_reader_in_a_transaction_sees_the_old_state_or_the_new_never_a_mix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    assert!(
        claimline(dir.path(), &["load", s(&generated("v1")), "--out", s(&out)])
            .status
            .success()
    );
    let reader = Connection::open(out.join("claimline.sqlite")).expect("open");
    let counts = |c: &Connection| -> (i64, i64) {
        c.query_row(
            "SELECT (SELECT count(*) FROM cclf1), (SELECT count(*) FROM _claimline_runs)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counts")
    };
    reader.execute_batch("BEGIN").expect("begin");
    let old = counts(&reader);
    // A reader listing the Parquet folder at the same time.
    let parquet_before = names(&out.join("parquet"));
    let r = claimline(dir.path(), &["load", s(&generated("v2")), "--out", s(&out)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        counts(&reader),
        old,
        "inside its transaction: the old state"
    );
    reader.execute_batch("COMMIT").expect("end");
    let new = counts(&reader);
    assert_eq!(new.1, old.1 + 1, "then the new run");
    assert!(new.0 > old.0);
    // The Parquet listing before the load holds only the first run's files; every file then
    // is still there after it (a run only adds whole partitions).
    let after = names(&out.join("parquet"));
    for f in &parquet_before {
        assert!(
            f == "_claimline_runs.json" || after.contains(f),
            "{f} disappeared"
        );
    }
}

/// Runs `claimline args…` as an unprivileged user when the tests run as root (root writes
/// anywhere, so permissions mean nothing to it); `None` when that cannot be arranged.
fn unprivileged(cwd: &Path, args: &[&str]) -> Option<Output> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        // A copy of the binary in the test's own folder: the checkout it was built in may not
        // be readable by the unprivileged user.
        use std::os::unix::fs::PermissionsExt;
        let binary = cwd.join("claimline-unprivileged");
        if !binary.exists() {
            std::fs::copy(env!("CARGO_BIN_EXE_claimline"), &binary).ok()?;
            std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).ok()?;
        }
        open_up(cwd);
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&binary);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_claimline"))
    };
    let out = cmd.current_dir(cwd).args(args).output().ok()?;
    if root && out.status.code() == Some(127) {
        return None;
    }
    Some(out)
}

/// Opens `path` (and its parents up to `/`) to every user, for the unprivileged runs.
fn open_up(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Some(path);
    while let Some(d) = p {
        if let Ok(m) = std::fs::metadata(d)
            && m.is_dir()
        {
            let mode = m.permissions().mode() | 0o755;
            let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode));
        }
        p = d.parent();
    }
}

#[test]
fn an_unwritable_output_and_an_unreadable_input_give_clear_errors() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("mkdir");
    std::fs::copy(
        repo_root().join("sample-data/real/r4/Patient.ndjson"),
        input.join("Patient.ndjson"),
    )
    .expect("copy");
    open_up(&input);
    for f in std::fs::read_dir(&input).expect("input").flatten() {
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    // An output folder nobody but its owner (root, or this user with the mode 0500) may write.
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let out = locked.join("out");
    let Some(r) = unprivileged(dir.path(), &["load", s(&input), "--out", s(&out)]) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the permission tests"
        );
        eprintln!("skipped: no way to run claimline without root's rights here (setpriv)");
        return;
    };
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("locked/out"), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // An input file that cannot be read: exit 3, the file named.
    std::fs::set_permissions(
        input.join("Patient.ndjson"),
        std::fs::Permissions::from_mode(0o000),
    )
    .expect("chmod");
    let writable = dir.path().join("writable");
    std::fs::create_dir(&writable).expect("mkdir");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let r = unprivileged(
        dir.path(),
        &["load", s(&input), "--out", s(&writable.join("out"))],
    )
    .expect("ran before");
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Patient.ndjson"), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
}
