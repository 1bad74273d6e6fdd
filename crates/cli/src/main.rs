//! `claimline`: BCDA bulk exports to CCLF-shaped warehouse tables.
//!
//! The one binary of the workspace and the only crate that knows every other one. Each subcommand
//! lives in its own module under `cmd/`; this file parses the command line and turns errors into
//! the exit codes of ARCHITECTURE.md.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The workers allocate and free many small values per resource (rows, cells, strings); with
/// glibc's allocator that was a sixth of a 5 GB load's CPU, with mimalloc the load is 15–25%
/// faster (README, Performance).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod cmd;
mod failure;
mod progress;

/// BCDA bulk exports to CCLF-shaped warehouse tables.
#[derive(Parser)]
#[command(name = "claimline", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read NDJSON (plain or gzip) in parallel and report what it holds: resources per type,
    /// EOBs per claim type, API version, rejected lines, throughput.
    Scan(cmd::scan::Args),
    /// Load NDJSON into Parquet and SQLite tables through ViewDefinitions, in one pass.
    Load(cmd::load::Args),
    /// Run a BCDA bulk export and download its files into an export folder, resumably.
    Fetch(cmd::fetch::Args),
    /// Serve an export folder over a local BCDA-compatible API (tests, demos, no credentials).
    Sandbox(cmd::sandbox::Args),
    /// BCDA job list and cancel.
    Bcda(cmd::bcda::Args),
    /// Fetch, load, then commit transactionTime as the next `_since`: the scheduled job.
    Run(Box<cmd::run::Args>),
    /// Rebuild an output folder's tables from its kept exports (after a mapping change).
    Reload(cmd::reload::Args),
    /// The views of a set: list them, check them, or write their data dictionary.
    Views(cmd::views::Args),
    /// Write a synthetic BCDA export (real CMS shapes, any size, seeded) into a folder.
    Synth(cmd::synth::Args),
    /// Write the tables in another format: `export cclf` writes CMS's fixed-width CCLF files.
    Export(cmd::cclf::ExportArgs),
    /// Load CMS's CCLF files (plain or zipped) into the same CCLF tables (`_api_version` cclf).
    LoadCclf(cmd::cclf::LoadArgs),
    /// Compare the claims of CCLF files with those from BCDA, per claim type and month.
    Reconcile(cmd::cclf::ReconcileArgs),
    /// Write a run's HTML report (one self-contained file, aggregates only) to DIR/reports/.
    Report(cmd::report::Args),
}

fn main() -> ExitCode {
    // No transparent huge pages for this process (Linux): the allocator's heap churns (rows,
    // cells and column buffers are made and freed by the million), and each fresh huge page is
    // 2 MiB zeroed on first touch, most of it never used. Measured on the README's benchmark
    // load: 6% of the wall time and 50 MiB of RSS (README, Performance). A kernel without the
    // setting runs as before.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    // Every command's `--json` flag: a failure then prints an error document too.
    let json = std::env::args_os().any(|a| a == "--json");
    if let Err(err) = cmd::check_rayon_threads() {
        return failure::report(&err.into(), json);
    }
    let result = match cli.command {
        Command::Scan(args) => cmd::scan::run(args),
        Command::Load(args) => cmd::load::run(args),
        Command::Fetch(args) => cmd::fetch::run(args),
        Command::Sandbox(args) => cmd::sandbox::run(args),
        Command::Bcda(args) => cmd::bcda::run(args),
        Command::Run(args) => cmd::run::run(*args),
        Command::Reload(args) => cmd::reload::run(args),
        Command::Views(args) => cmd::views::run(args),
        Command::Synth(args) => cmd::synth::run(args),
        Command::Export(args) => cmd::cclf::export(args),
        Command::LoadCclf(args) => cmd::cclf::load(args),
        Command::Reconcile(args) => cmd::cclf::reconcile(args),
        Command::Report(args) => cmd::report::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(err) => failure::report(&err, json),
    };
    if code == ExitCode::SUCCESS {
        exit_without_clean_up();
    }
    code
}

/// Ends a command that succeeded without the allocator's clean-up at exit. mimalloc's
/// `mi_process_done` gives its heap back to the kernel a block at a time, about a thousand
/// `madvise` calls on one core after a load of every table (README, Performance), which the
/// kernel does at once when the process ends anyway. Every value of the command has been
/// dropped by now (files closed and synced where they must be, locks released, progress bars
/// cleared); only the standard streams are left to flush.
fn exit_without_clean_up() {
    #[cfg(unix)]
    {
        use std::io::Write;
        // A build that counts for profile-guided optimization (`benches/pgo.sh`) writes its
        // counts at exit, in an `atexit` handler: it ends the usual way.
        if std::env::var_os("LLVM_PROFILE_FILE").is_some() {
            return;
        }
        if std::io::stdout().flush().is_err() || std::io::stderr().flush().is_err() {
            // (Returned normally: the runtime's own flush then reports nothing either.)
            return;
        }
        // SAFETY: `_exit` ends the process at once with status 0, without running `atexit`
        // handlers or destructors; nothing of this process is left to write (see above).
        unsafe { libc::_exit(0) }
    }
}
