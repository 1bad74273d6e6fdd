//! `claimline bcda jobs|cancel`: list this ACO's BCDA jobs, cancel one.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use claimline_fetch::{ApiVersion, NoProgress};

use crate::args::{Api, Connection};

/// Arguments of `claimline bcda`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List this ACO's export jobs (newest last).
    Jobs(JobsArgs),
    /// Cancel a Pending or In Progress export job.
    Cancel(CancelArgs),
}

#[derive(clap::Args)]
struct JobsArgs {
    #[command(flatten)]
    connection: Connection,
    /// API version whose job list to read.
    #[arg(long, value_enum, default_value = "v2")]
    api: Api,
    /// Only these statuses (Pending, In Progress, Completed, Archived, Expired, Failed,
    /// FailedExpired, Cancelled, CancelledExpired), comma-separated.
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct CancelArgs {
    #[command(flatten)]
    connection: Connection,
    /// API version of the job.
    #[arg(long, value_enum, default_value = "v2")]
    api: Api,
    /// The job URL (`Content-Location`) or its numeric id.
    job: String,
}

/// Runs `claimline bcda …`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Jobs(args) => jobs(args),
        Command::Cancel(args) => cancel(args),
    }
}

fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let statuses: Vec<&str> = args.status.iter().map(|s| s.trim()).collect();
    let jobs = client.jobs(args.api.into(), &statuses, &NoProgress)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                serde_json::json!({"id": j.id, "url": j.url, "status": j.status,
                    "request": j.request, "start": j.start, "end": j.end})
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "jobs": list }))
            .context("writing the job list")?;
        writeln!(out)?;
    } else if jobs.is_empty() {
        writeln!(out, "no jobs")?;
    } else {
        for job in &jobs {
            writeln!(
                out,
                "{:>10}  {:<12} {:<27} {}",
                job.id,
                job.status,
                job.start.as_deref().unwrap_or("-"),
                job.request
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let client = args.connection.client()?;
    let api: ApiVersion = args.api.into();
    let url = if args.job.bytes().all(|b| b.is_ascii_digit()) {
        format!(
            "{}/api/{}/jobs/{}",
            client.base_url(),
            api.as_str(),
            args.job
        )
    } else {
        args.job.clone()
    };
    client.cancel(&url, &NoProgress)?;
    eprintln!("cancelled {url}");
    Ok(ExitCode::SUCCESS)
}
