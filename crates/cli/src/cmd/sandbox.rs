//! `claimline sandbox`: a local BCDA-compatible server over an export folder, with faults on
//! demand, for trying `claimline fetch` (and other BCDA clients) without BCDA.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use claimline_sandbox::{Faults, Sandbox, SandboxConfig};

/// Arguments of `claimline sandbox`.
#[derive(clap::Args)]
pub struct Args {
    /// The export folder (or file) to serve: `*.ndjson` and `*.ndjson.gz`, read recursively.
    #[arg(long, value_name = "EXPORT")]
    data: PathBuf,
    /// Port on 127.0.0.1 (0 = any free port; the URL is printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Polls an export job takes to complete.
    #[arg(long, default_value_t = 3)]
    polls: u32,
    /// Token lifetime in seconds (`expires_in`).
    #[arg(long, default_value_t = 1200)]
    token_lifetime: u64,
    /// Seconds completed jobs and their files stay available.
    #[arg(long, default_value_t = 24 * 3600)]
    job_expiry: u64,
    /// `Retry-After` seconds on 429 and 503.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Seed of the fault draws, tokens and file names.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share (0–1) of requests answered 500 or 503.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    server_errors: f64,
    /// Share (0–1) of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    throttle: f64,
    /// Share (0–1) of data downloads answered with a transient 404.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    data_not_found: f64,
    /// Share (0–1) of data downloads whose connection drops half-way.
    #[arg(long, default_value_t = 0.0, value_name = "SHARE")]
    drops: f64,
    /// Tokens expire early, after this many requests.
    #[arg(long, value_name = "N")]
    token_max_uses: Option<u32>,
    /// Every export job fails.
    #[arg(long)]
    fail_jobs: bool,
    /// BCDA's January blackout: `Group/all` and `Patient` kick-offs answer 404 (try later).
    #[arg(long)]
    blackout: bool,
    /// The runout period is closed: `Group/runout` kick-offs answer 404.
    #[arg(long)]
    runout_closed: bool,
    /// No attribution ingested yet: every kick-off and `attribution_status` answer 404.
    #[arg(long)]
    no_attribution: bool,
    /// Serve data bodies at this many bytes per second.
    #[arg(long, value_name = "BYTES")]
    rate: Option<u64>,
}

/// Runs `claimline sandbox` until the process is stopped.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = SandboxConfig::new(&args.data);
    config.port = args.port;
    config.polls_to_complete = args.polls;
    config.token_lifetime_secs = args.token_lifetime;
    config.job_expiry_secs = args.job_expiry;
    config.retry_after_secs = args.retry_after;
    config.seed = args.seed;
    config.data_rate = args.rate;
    config.blackout = args.blackout;
    config.runout_closed = args.runout_closed;
    config.no_attribution = args.no_attribution;
    config.faults = Faults {
        server_errors: args.server_errors,
        throttle: args.throttle,
        data_not_found: args.data_not_found,
        drops: args.drops,
        token_max_uses: args.token_max_uses,
        fail_jobs: args.fail_jobs,
    };
    let custom = claimline_fetch::Credentials::from_env();
    if let Some(credentials) = &custom {
        config.client_id = credentials.client_id.clone();
        config.client_secret = credentials.client_secret.expose().to_owned();
    }
    let sandbox = match Sandbox::start(config.clone()) {
        Ok(sandbox) => sandbox,
        Err(err) => {
            eprintln!("claimline: {err}");
            let code = match err {
                claimline_sandbox::SandboxError::Config(_) => 2,
                _ => 3,
            };
            return Ok(ExitCode::from(code));
        }
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", sandbox.url())?;
    out.flush()?;
    drop(out);
    if custom.is_some() {
        eprintln!(
            "BCDA sandbox serving {} at {} for BCDA_CLIENT_ID from the environment",
            args.data.display(),
            sandbox.url()
        );
    } else {
        eprintln!(
            "BCDA sandbox serving {} at {}\n  credentials: BCDA_CLIENT_ID={} BCDA_CLIENT_SECRET={}\n  \
             try: claimline fetch --base-url {} --api v2 --endpoint group/all --out EXPORT",
            args.data.display(),
            sandbox.url(),
            config.client_id,
            config.client_secret,
            sandbox.url()
        );
    }
    loop {
        std::thread::park();
    }
}
