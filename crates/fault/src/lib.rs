//! Fault points: named steps at which claimline's own tests stop or fail the process on purpose.
//!
//! A crash test must hit its fault at an exact step, never by sleeping and hoping. Each step that
//! matters for atomicity (after the sinks wrote, between the SQLite commit and the Parquet
//! renames, before the run state is saved, …) calls [`point`] with its name. Nothing happens
//! unless the hidden environment variable `CLAIMLINE_FAULT` names that point; it is read once, at
//! the first call. Its form is `NAME[@N][:kill|:fail]`:
//!
//! - `NAME`: the point (see [`POINTS`]);
//! - `@N`: the N-th time the process reaches it (default 1);
//! - `:kill` (default): the process prints `claimline: fault point NAME reached` on stderr and
//!   aborts at once, like `kill -9` (no destructor, no clean-up runs);
//! - `:fail`: [`point`] returns an error, so the caller's ordinary error path runs.
//!
//! ```
//! // Unset (as in every normal run), a point does nothing.
//! claimline_fault::point("load.before-commit")?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms one fault point.
pub const ENV: &str = "CLAIMLINE_FAULT";

/// Every fault point, with the step it stands for (the crash tests go through this list).
pub const POINTS: &[(&str, &str)] = &[
    (
        "scan.batch",
        "the load's consumer receives a batch of parsed resources",
    ),
    (
        "load.before-commit",
        "every row is written to the sinks, neither has committed",
    ),
    (
        "load.between-commits",
        "SQLite has committed the run, the Parquet partitions are not yet in place",
    ),
    (
        "parquet.publish",
        "one table's partition of the run was moved into place, the others not yet",
    ),
    (
        "run.before-state",
        "the tables hold the run, claimline-state.json does not yet record it",
    ),
    (
        "reload.swap",
        "reload moved the old tables aside, the rebuilt ones are not yet in place",
    ),
    (
        "fetch.chunk",
        "a piece of a data file is written to its .part file, the rest not yet downloaded",
    ),
    (
        "fetch.rename",
        "a downloaded file is verified, not yet renamed into the export folder",
    ),
];

struct Armed {
    name: String,
    nth: u64,
    fail: bool,
    seen: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (spec, fail) = match spec.rsplit_once(':') {
                Some((s, "fail")) => (s.to_owned(), true),
                Some((s, "kill")) => (s.to_owned(), false),
                _ => (spec, false),
            };
            let (name, nth) = match spec.split_once('@') {
                Some((n, k)) => (n.to_owned(), k.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                nth,
                fail,
                seen: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks the step `name`. Does nothing unless `CLAIMLINE_FAULT` arms this point.
///
/// # Errors
/// An error naming the point when it is armed with `:fail` and reached for the N-th time. Armed
/// with `:kill`, the process aborts instead of returning.
pub fn point(name: &str) -> std::io::Result<()> {
    let Some(a) = armed() else {
        return Ok(());
    };
    if a.name != name || a.seen.fetch_add(1, Ordering::SeqCst) + 1 != a.nth {
        return Ok(());
    }
    if a.fail {
        return Err(std::io::Error::other(format!(
            "injected failure at fault point {name} ({ENV})"
        )));
    }
    eprintln!("claimline: fault point {name} reached");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_unarmed_point_does_nothing() {
        // The test process does not set CLAIMLINE_FAULT.
        for (name, _) in super::POINTS {
            assert!(super::point(name).is_ok());
        }
    }
}
