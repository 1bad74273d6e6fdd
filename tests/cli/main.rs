//! End-to-end tests of the `claimline` binary: each module spawns the real binary on real files.

mod cclf;
mod crash;
mod disk;
mod fetch;
mod history;
mod load;
mod run;
mod scan;
mod synth;

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
