//! End-to-end tests of the `claimline` binary: each module spawns the real binary on real files.

mod cclf;
mod cclf_files;
mod crash;
mod disk;
mod fetch;
mod history;
mod load;
mod postgres;
mod report;
mod run;
mod scan;
mod synth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (two levels above the cli crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled real CMS samples.
pub fn sample_data() -> PathBuf {
    repo_root().join("sample-data/real")
}

/// Runs `claimline` with `args` in `cwd`.
pub fn claimline(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("the claimline binary runs")
}

/// Runs `claimline` with `args` in `cwd` and extra environment variables.
pub fn claimline_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(cwd)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the claimline binary runs")
}

/// Parses a `--json` report from stdout.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Asserts that `dir` holds the same files as `before`, naming those that differ.
pub fn unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let now = tree(dir);
    let differ: Vec<&PathBuf> = before
        .keys()
        .chain(now.keys())
        .filter(|k| before.get(*k) != now.get(*k))
        .collect();
    assert!(differ.is_empty(), "{what} changed {differ:?}");
}

/// Every file below `dir` (relative path → bytes; a link → its target), the lock file and
/// SQLite's own side files
/// (`-wal`, `-shm`, which a read-only connection to a WAL database creates empty) aside.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // A folder that is not there holds nothing.
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // A symbolic link is its target (it may lead nowhere).
            if let Ok(target) = std::fs::read_link(&p) {
                let rel = p.strip_prefix(dir).expect("relative").to_path_buf();
                files.insert(rel, format!("-> {}", target.display()).into_bytes());
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.to_string_lossy();
                // The `-shm` index always; a `-wal` when empty.
                let side = name.ends_with("-shm")
                    || (name.ends_with("-wal")
                        && std::fs::metadata(&p).is_ok_and(|m| m.len() == 0));
                if !name.contains(".claimline-run.lock") && !side {
                    let rel = p.strip_prefix(dir).expect("relative").to_path_buf();
                    files.insert(rel, std::fs::read(&p).expect("read"));
                }
            }
        }
    }
    files
}

/// The tables of the SQLite database `conn` but those `keep` refuses (by name).
pub fn sqlite_table_names(conn: &rusqlite::Connection, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    names.into_iter().filter(|n| keep(n)).collect()
}

/// Current BCDA claims of API version `api` per (`CLM_TYPE_CD`, month) and their paid cents,
/// counted straight from an output's SQLite CCLF tables.
pub fn current_claims(db: &Path, api: &str) -> BTreeMap<(String, String), (u64, i64)> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut out = BTreeMap::new();
    for (table, date, amount) in [
        ("cclf1", "CLM_FROM_DT", "CLM_PMT_AMT"),
        ("cclf5", "CLM_FROM_DT", "CLM_LINE_CVRD_PD_AMT"),
        ("cclf6", "CLM_FROM_DT", "CLM_LINE_CVRD_PD_AMT"),
        ("cclf7", "CLM_LINE_FROM_DT", "CLM_LINE_BENE_PMT_AMT"),
    ] {
        let sql = format!(
            "SELECT CLM_TYPE_CD, substr(min({date}), 1, 7), sum(round(CAST({amount} AS REAL) * 100))
             FROM {table} WHERE _api_version = '{api}' GROUP BY CLM_TYPE_CD, CUR_CLM_UNIQ_ID"
        );
        let mut stmt = conn.prepare(&sql).expect("sql");
        let mut q = stmt.query([]).expect("query");
        while let Some(r) = q.next().expect("row") {
            // v1/v2 Part D has no claim type (CCLF7 CLM_TYPE_CD is unmapped there).
            let key: (String, String) = (
                r.get::<_, Option<String>>(0)
                    .expect("type")
                    .unwrap_or_default(),
                r.get(1).expect("month"),
            );
            let cents: f64 = r.get::<_, Option<f64>>(2).expect("sum").unwrap_or(0.0);
            let e = out.entry(key).or_insert((0, 0));
            e.0 += 1;
            e.1 += cents as i64;
        }
    }
    out
}
