//! End-to-end tests of the `claimline` binary: each module spawns the real binary on real files.

mod cclf;
mod cclf_files;
mod crash;
mod disk;
mod fetch;
mod history;
mod load;
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

/// Every file below `dir` (relative path → bytes), the lock file and SQLite's own side files
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
