//! `claimline bcda jobs|cancel`: list this ACO's BCDA jobs, cancel one. Also the connection
//! options, credentials and progress display shared with `claimline fetch`.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use claimline_fetch::{
    ApiVersion, Client, ClientConfig, Credentials, Event, FetchError, NoProgress, PROD_URL,
    Progress, SANDBOX_URL, Timing,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::human_bytes;

/// Which BCDA: `--env prod|sandbox` or `--base-url`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Env {
    /// `https://api.bcda.cms.gov`
    Prod,
    /// `https://sandbox.bcda.cms.gov`
    Sandbox,
}

/// API version argument.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Api {
    /// FHIR STU3.
    V1,
    /// FHIR R4 (CARIN Blue Button).
    V2,
    /// FHIR R4 (CARIN Blue Button 2.2, CMS IDR).
    V3,
}

impl From<Api> for ApiVersion {
    fn from(api: Api) -> Self {
        match api {
            Api::V1 => ApiVersion::V1,
            Api::V2 => ApiVersion::V2,
            Api::V3 => ApiVersion::V3,
        }
    }
}

/// How to reach BCDA and who we are. Credentials come from `BCDA_CLIENT_ID` /
/// `BCDA_CLIENT_SECRET`, `--credentials FILE` or a prompt, never from arguments.
#[derive(clap::Args)]
pub struct Connection {
    /// BCDA production or BCDA's public sandbox.
    #[arg(
        long,
        value_enum,
        required_unless_present = "base_url",
        conflicts_with = "base_url"
    )]
    env: Option<Env>,
    /// Another BCDA-compatible base URL (HTTPS; plain HTTP only to a loopback sandbox).
    #[arg(long)]
    base_url: Option<String>,
    /// A file of `BCDA_CLIENT_ID=…` and `BCDA_CLIENT_SECRET=…` lines, readable by its owner only.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Extra PEM root certificates to trust (e.g. an inspecting proxy's), besides Mozilla's.
    /// Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// First wait between job polls, in seconds; it grows to a minute.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    poll_interval: f64,
    /// First wait before retrying a failed request, in seconds; it doubles up to two minutes.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    retry_wait: f64,
    /// Give up waiting for a job after this many hours.
    #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
    max_wait: f64,
}

fn seconds(value: f64, what: &str) -> Result<Duration, FetchError> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| FetchError::Usage(format!("{what} must be a positive number of seconds")))
}

impl Connection {
    /// The base URL chosen.
    pub fn base_url(&self) -> String {
        match (&self.base_url, self.env) {
            (Some(url), _) => url.clone(),
            (None, Some(Env::Sandbox)) => SANDBOX_URL.to_owned(),
            (None, _) => PROD_URL.to_owned(),
        }
    }

    /// A client with credentials from the file, the environment or a prompt.
    pub fn client(&self) -> Result<Client, FetchError> {
        let credentials = match &self.credentials {
            Some(path) => Credentials::from_file(path)?,
            None => match Credentials::from_env() {
                Some(credentials) => credentials,
                None => prompt()?,
            },
        };
        let mut timing = Timing::default();
        timing.poll_initial = seconds(self.poll_interval, "--poll-interval")?;
        timing.poll_max = timing.poll_max.max(timing.poll_initial);
        timing.retry_initial = seconds(self.retry_wait, "--retry-wait")?;
        timing.retry_max = timing.retry_max.max(timing.retry_initial);
        timing.max_wait = seconds(self.max_wait * 3600.0, "--max-wait")?;
        let mut config = ClientConfig::new(self.base_url());
        config.ca_file = self.ca_file.clone();
        config.timing = timing;
        Client::new(config, credentials)
    }
}

/// Asks for the client id and secret on the terminal (the secret without echo).
fn prompt() -> Result<Credentials, FetchError> {
    let missing = || {
        FetchError::MissingCredentials(
            "set BCDA_CLIENT_ID and BCDA_CLIENT_SECRET, or pass --credentials FILE".to_owned(),
        )
    };
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(missing());
    }
    eprint!("BCDA client id: ");
    let _ = std::io::stderr().flush();
    let mut id = String::new();
    std::io::stdin().read_line(&mut id).map_err(|_| missing())?;
    let secret = rpassword::prompt_password("BCDA client secret: ").map_err(|_| missing())?;
    let (id, secret) = (id.trim(), secret.trim());
    if id.is_empty() || secret.is_empty() {
        return Err(missing());
    }
    Ok(Credentials::new(id, secret))
}

/// Progress on stderr: a bar of files and bytes when stderr is a terminal, plain lines for
/// the events that matter otherwise.
pub struct Reporter {
    bar: ProgressBar,
    quiet: bool,
    bytes: AtomicU64,
}

impl Reporter {
    /// A reporter; `quiet` keeps stderr to warnings (for `--json` runs under scripts).
    pub fn new(quiet: bool) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{elapsed_precise}] {pos}/{len} files {prefix}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Reporter {
            bar,
            quiet,
            bytes: AtomicU64::new(0),
        }
    }

    fn line(&self, text: &str) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Reporter {
    fn event(&self, event: &Event<'_>) {
        match event {
            Event::KickedOff { job_url } => {
                self.bar.set_message("export running");
                if !self.quiet {
                    self.line(&format!("started export job {job_url}"));
                }
            }
            Event::Reattached { job_url } => {
                self.bar.set_message("export running");
                if !self.quiet {
                    self.line(&format!("following export job {job_url}"));
                }
            }
            Event::Restarted { job_url } => {
                // Said even when quiet: the job the folder pointed to is dead.
                self.line(&format!(
                    "the saved export job {job_url} failed or is gone; started a new one"
                ));
            }
            Event::Busy { wait } if !self.quiet => {
                self.line(&format!(
                    "another export is running on BCDA; asking again in {:.1} s",
                    wait.as_secs_f64()
                ));
            }
            Event::JobProgress { percent, text } => {
                let shown = match percent {
                    Some(p) => format!("job {p}%"),
                    None if text.is_empty() => "job running".to_owned(),
                    None => format!("job: {text}"),
                };
                self.bar.set_message(shown);
            }
            Event::Manifest {
                files,
                already_done,
            } => {
                self.bar.set_length(*files as u64);
                self.bar.set_position(*already_done as u64);
                self.bar.set_message("downloading");
                if !self.quiet && *already_done > 0 {
                    self.line(&format!(
                        "{already_done} of {files} files already downloaded by an earlier run"
                    ));
                }
            }
            Event::Bytes { bytes, .. } => {
                let total = self.bytes.fetch_add(*bytes, Ordering::Relaxed) + bytes;
                self.bar.set_prefix(human_bytes(total));
            }
            Event::FileDone { .. } => self.bar.inc(1),
            Event::Retry {
                what,
                attempt,
                reason,
                wait,
            } => {
                self.line(&format!(
                    "retrying {what} (attempt {attempt} failed: {reason}) in {:.1} s",
                    wait.as_secs_f64()
                ));
            }
            _ => {}
        }
    }
}

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
