//! Fault points: named steps at which claimline's own tests stop or fail the process on purpose.
//!
//! A crash test must hit its fault at an exact step, never by sleeping and hoping. Each step that
//! matters for atomicity (after the sinks wrote, between the SQLite commit and the Parquet
//! renames, before the run state is saved, …) calls [`point`] with its name. Nothing happens
//! unless the hidden environment variable `CLAIMLINE_FAULT` names that point; it is read once, at
//! the first call. Its form is `NAME[@N][:kill|:fail|:stop]`:
//!
//! - `NAME`: the point (see [`POINTS`]);
//! - `@N`: the N-th time the process reaches it (default 1);
//! - `:kill` (default): the process prints `claimline: fault point NAME reached` on stderr and
//!   aborts at once, like `kill -9` (no destructor, no clean-up runs);
//! - `:fail`: [`point`] returns an error, so the caller's ordinary error path runs;
//! - `:stop` (Unix): the process stops itself (`SIGSTOP`) at the point, so that a test can do
//!   something at this exact step (cut an input short) once it sees the process stopped, then
//!   lets it go on with `SIGCONT`.
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
        "scan.mapped",
        "an input file is memory-mapped, not yet read (`:stop`: a test cuts it short here)",
    ),
    (
        "load.history-spill",
        "the claim history past its memory budget is being written to disk, a sorted run's file created and empty",
    ),
    (
        "load.before-commit",
        "every row is written to the sinks, neither has committed",
    ),
    (
        "load.commit",
        "every sink is prepared, just before the deciding database's commit",
    ),
    (
        "load.between-commits",
        "the deciding database (SQLite or PostgreSQL) has committed the run, the Parquet partitions are not yet in place",
    ),
    (
        "postgres.copy",
        "half of a batch of rows is sent to a PostgreSQL staging table by COPY, the rest not yet",
    ),
    (
        "sqlite.indexes",
        "a new SQLite database's tables are committed under its temporary name (and being synced), its indexes not yet built",
    ),
    (
        "parquet.publish",
        "a table's partition of the run was moved into place, the tables after it not yet (@N: the N-th table; `_claimline_counts` first, the others by name, `_claimline_claims` last)",
    ),
    (
        "current.swap",
        "one claim table's current dataset is swapped in after the commit, the others not yet",
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

/// What an armed point does when reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Kill,
    Fail,
    Stop,
}

#[derive(Debug)]
struct Armed {
    name: String,
    nth: u64,
    action: Action,
    seen: AtomicU64,
}

impl Armed {
    /// `NAME[@N][:kill|:fail|:stop]`; a count that is not a number counts as 1.
    fn parse(spec: &str) -> Self {
        let (spec, action) = match spec.rsplit_once(':') {
            Some((s, "fail")) => (s, Action::Fail),
            Some((s, "kill")) => (s, Action::Kill),
            Some((s, "stop")) => (s, Action::Stop),
            _ => (spec, Action::Kill),
        };
        let (name, nth) = match spec.split_once('@') {
            Some((n, k)) => (n, k.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Armed {
            name: name.to_owned(),
            nth,
            action,
            seen: AtomicU64::new(0),
        }
    }

    /// Counts a pass through `name`: true on the N-th pass through the armed point.
    fn reached(&self, name: &str) -> bool {
        self.name == name && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
    }
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var(ENV).ok().map(|spec| Armed::parse(&spec)))
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
    if !a.reached(name) {
        return Ok(());
    }
    match a.action {
        Action::Fail => Err(std::io::Error::other(format!(
            "injected failure at fault point {name} ({ENV})"
        ))),
        Action::Stop => {
            eprintln!("claimline: fault point {name} reached, stopping");
            #[cfg(unix)]
            // SAFETY: `raise` only sends the process a signal; SIGSTOP stops it until SIGCONT.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            Ok(())
        }
        Action::Kill => {
            eprintln!("claimline: fault point {name} reached");
            std::process::abort()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, Armed};

    #[test]
    fn an_unarmed_point_does_nothing() {
        // The test process does not set CLAIMLINE_FAULT.
        for (name, _) in super::POINTS {
            assert!(super::point(name).is_ok());
        }
    }

    #[test]
    fn the_spec_names_the_point_the_pass_and_the_way() {
        let plain = Armed::parse("load.before-commit");
        assert_eq!(
            (plain.name.as_str(), plain.nth, plain.action == Action::Fail),
            ("load.before-commit", 1, false)
        );
        let third = Armed::parse("scan.batch@3:fail");
        assert_eq!(
            (third.name.as_str(), third.nth, third.action == Action::Fail),
            ("scan.batch", 3, true)
        );
        let kill = Armed::parse("fetch.chunk@2:kill");
        assert_eq!(
            (kill.name.as_str(), kill.nth, kill.action == Action::Fail),
            ("fetch.chunk", 2, false)
        );
        assert_eq!(Armed::parse("scan.mapped@2:stop").action, Action::Stop);
        assert_eq!(Armed::parse("x@many").nth, 1);
    }

    #[test]
    fn only_the_nth_pass_through_the_armed_point_is_reached() {
        let a = Armed::parse("scan.batch@3");
        let passes: Vec<bool> = [
            "scan.batch",
            "load.before-commit",
            "scan.batch",
            "scan.batch",
            "scan.batch",
        ]
        .iter()
        .map(|n| a.reached(n))
        .collect();
        assert_eq!(passes, [false, false, false, true, false]);
    }
}
