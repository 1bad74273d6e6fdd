//! `claimline views list|check|doc|export`: what the views of a set build, whether they load, and a
//! Markdown data dictionary of them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use claimline_link::Plan;

use claimline_load::dictionary::{described, dictionary};
use claimline_load::views;

use crate::failure::UsageError;

/// Arguments of `claimline views`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// One line per view: table, API version, columns, mapped columns, origin.
    List(Which),
    /// Load every view and plan the tables (same names must declare the same columns); exit 2
    /// on the first problem.
    Check(Which),
    /// Write a Markdown data dictionary: per table, every column with its CCLF field, type,
    /// FHIRPath per API version, notes, and coverage counts.
    Doc {
        #[command(flatten)]
        which: Which,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the views of a set (by default the built-in `cclf` set) as files into DIR, to
    /// start customising them without the source tree: `claimline load --views DIR/cclf`.
    Export {
        /// The folder to write into.
        dir: PathBuf,
        #[command(flatten)]
        which: Which,
    },
}

#[derive(clap::Args)]
struct Which {
    /// A built-in set (`cclf`, the default, or `basic`) or ViewDefinition files and folders.
    #[arg(long, num_args = 1..)]
    views: Vec<String>,
}

/// Runs `claimline views`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match args.action {
        Action::List(which) => {
            let sources = views::sources(&which.views)?;
            for v in described(&sources)? {
                // CCLF8's input views feed `cclf8` through the link stage.
                let table = match claimline_link::Cclf8Input::of_view(&v.table) {
                    Some(_) => format!("{} → cclf8", v.table),
                    None => v.table.clone(),
                };
                writeln!(
                    stdout,
                    "{table:<24} {:<4} {:>4} columns {:>4} mapped  {}",
                    v.version,
                    v.columns.len(),
                    v.columns.iter().filter(|c| c.mapped()).count(),
                    v.origin
                )?;
            }
        }
        Action::Check(which) => {
            let sources = views::sources(&which.views)?;
            let plan = Plan::new(views::load(&sources)?).map_err(|e| UsageError(e.to_string()))?;
            writeln!(
                stdout,
                "ok: {} views, {} tables",
                sources.len(),
                plan.tables().len()
            )?;
        }
        Action::Export { dir, which } => {
            let sources = views::sources(&which.views)?;
            let written = views::export(&sources, &dir)?;
            writeln!(
                stdout,
                "wrote {} views into {}",
                written.len(),
                dir.display()
            )?;
        }
        Action::Doc { which, out } => {
            let sources = views::sources(&which.views)?;
            // The views must load before they are documented.
            Plan::new(views::load(&sources)?).map_err(|e| UsageError(e.to_string()))?;
            let text = dictionary(&described(&sources)?);
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => stdout.write_all(text.as_bytes())?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
