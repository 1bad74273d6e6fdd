//! A BCDA-compatible bulk-export server on loopback, for testing BCDA clients without BCDA.
//!
//! [`Sandbox::start`] serves an export folder (any folder of `*.ndjson` / `*.ndjson.gz` files,
//! such as `sample-data/real/r4`) over the BCDA API as `../shared/reference/bcda-api.md` describes
//! it: `POST /auth/token` with HTTP Basic credentials and an `expires_in` that is a JSON *string*,
//! tokens that expire on the sandbox's [`Clock`], the kick-off routes
//! `/api/{v1,v2,v3}/{Group/all,Group/runout,Patient}/$export` (required `Accept` and `Prefer`
//! headers, `_type`, `_since`, `_outputFormat`, `_typeFilter` on v3), job polling with
//! `X-Progress`, 429 with `Retry-After` for an overlapping export, `GET /api/{v}/jobs` (a Bundle of
//! Task) and `DELETE`, manifests with `error` files and a capitalised `JobID`, and `/data` files
//! served gzipped with `Content-Length` and `Range` support (decompressed, without length, to a
//! client that does not accept gzip). Completed jobs expire after 24 hours (configurable): the
//! job answers 410 and its files 404.
//!
//! Files are split as BCDA splits them, by beneficiary: 50 beneficiaries per
//! ExplanationOfBenefit file, 5,000 per Patient file, 4,000 per Coverage (and Claim,
//! ClaimResponse) file ([`benes_per_file`]). `OperationOutcome` lines in the folder are served
//! as an `-error.ndjson` file; a v3 export without a System-Type `_tag` filter also gets
//! `warnings-and-info.ndjson`, as on BCDA.
//!
//! `_since` keeps the lines whose `meta.lastUpdated` is a valid instant later than `_since`.
//! Lines whose `meta.lastUpdated` is missing or not an instant (such as the `IGNORED_FIELD`
//! placeholder in BFD's samples) are served when no `_since` is given and left out otherwise.
//! Like BCDA, a job's `transactionTime` is the kick-off instant and bounds the export from above:
//! lines updated after it are left out, so consecutive `_since` exports never overlap and a line
//! updated "later" on the [`Clock`] shows up in the next export only.
//!
//! `GET /api/{v}/attribution_status` answers the instants the sandbox started as the last
//! attribution and runout updates. The "try later" answers of BCDA can be switched on:
//! [`SandboxConfig::blackout`] (January: 404 on `Group/all` and `Patient`),
//! [`SandboxConfig::runout_closed`] (404 on `Group/runout`) and
//! [`SandboxConfig::no_attribution`] (404 on every kick-off and on `attribution_status`).
//!
//! `_typeFilter` is validated (one, on v3, starting `ExplanationOfBenefit?`) but does not filter.
//! `Group/all`, `Group/runout` and `Patient` all serve the whole folder; one client (ACO) is
//! known, with [`SandboxConfig::client_id`] and [`SandboxConfig::client_secret`].
//! A job advances by polls, not by time: the first poll answers `Pending`, the next ones
//! `In Progress (NN%)`, and poll number [`SandboxConfig::polls_to_complete`] completes it.
//!
//! Faults ([`Faults`]) are drawn deterministically from [`SandboxConfig::seed`], the route and
//! the number of earlier requests to that route, and one route never faults more than 3 times in
//! a row. Dropped connections close the socket when the client does not keep connections alive
//! (BCDA itself closes every connection).
//!
//! ```
//! use claimline_sandbox::{Sandbox, SandboxConfig};
//!
//! let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4");
//! let sandbox = Sandbox::start(SandboxConfig::new(data)).expect("sandbox starts");
//! assert!(sandbox.url().starts_with("http://127.0.0.1:"));
//! let stats = sandbox.stats();
//! assert_eq!(stats.tokens_issued, 0);
//! sandbox.shutdown();
//! ```

mod clock;
mod data;
mod error;
mod fault;
#[doc(hidden)]
pub mod fuzzing;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub use clock::Clock;
pub use data::benes_per_file;
pub use error::SandboxError;
pub use fault::Faults;

/// The bundled samples for `api`: `sample-data/real/{stu3,r4,v3}` found beside the current
/// folder, beside the binary (or any folder above it), or in the source tree it was built from.
pub fn sample_data(api: claimline_model::ApiVersion) -> Option<PathBuf> {
    let sub = match api {
        claimline_model::ApiVersion::V1 => "stu3",
        claimline_model::ApiVersion::V2 => "r4",
        claimline_model::ApiVersion::V3 => "v3",
    };
    let rel = std::path::Path::new("sample-data").join("real").join(sub);
    let mut roots: Vec<PathBuf> = vec![PathBuf::from(".")];
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(std::path::Path::to_path_buf));
    }
    roots.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    roots.into_iter().map(|r| r.join(&rel)).find(|p| p.is_dir())
}

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The export folder (or one file) to serve.
    pub data: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The client id accepted by `/auth/token`.
    pub client_id: String,
    /// The client secret accepted by `/auth/token`.
    pub client_secret: String,
    /// Token lifetime announced in `expires_in` and enforced (BCDA: 1200 s).
    pub token_lifetime_secs: u64,
    /// How long completed jobs and their files stay available (BCDA: 24 h).
    pub job_expiry_secs: u64,
    /// Polls a job takes to complete (at least 1).
    pub polls_to_complete: u32,
    /// `Retry-After` seconds on 429 and 503 answers (BCDA's code default is 0).
    pub retry_after_secs: u64,
    /// First job id handed out.
    pub first_job_id: u64,
    /// Seed of the fault draws, token values and file names.
    pub seed: u64,
    /// Injected faults.
    pub faults: Faults,
    /// Request-handling threads.
    pub threads: usize,
    /// Serve `/data` bodies at this many bytes per second (to watch or interrupt downloads).
    pub data_rate: Option<u64>,
    /// The clock (share a clone to advance it from outside).
    pub clock: Clock,
    /// BCDA's yearly January blackout: `Group/all` and `Patient` kick-offs answer 404 until the
    /// new performance year's attribution is loaded; `Group/runout` still works.
    pub blackout: bool,
    /// The runout window is over: `Group/runout` kick-offs answer 404.
    pub runout_closed: bool,
    /// No attribution file has been ingested: `attribution_status` and every kick-off answer
    /// 404.
    pub no_attribution: bool,
}

impl SandboxConfig {
    /// BCDA's defaults, serving `data`, with credentials `sandbox-client` / `sandbox-secret`.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        SandboxConfig {
            data: data.into(),
            port: 0,
            client_id: "sandbox-client".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            token_lifetime_secs: 1200,
            job_expiry_secs: 24 * 3600,
            polls_to_complete: 3,
            retry_after_secs: 1,
            first_job_id: 1,
            seed: 0,
            faults: Faults::default(),
            threads: 8,
            data_rate: None,
            clock: Clock::new(),
            blackout: false,
            runout_closed: false,
            no_attribution: false,
        }
    }
}

/// Counters of what the sandbox did, for tests and the console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SandboxStats {
    /// Tokens issued by `/auth/token`.
    pub tokens_issued: u64,
    /// Token requests refused for wrong credentials.
    pub rejected_credentials: u64,
    /// Requests refused with 401 `Expired Token`.
    pub expired_token_rejections: u64,
    /// Export jobs started.
    pub jobs_started: u64,
    /// Kick-offs refused with 429 because an overlapping export was running.
    pub overlap_rejections: u64,
    /// Jobs cancelled by DELETE.
    pub jobs_cancelled: u64,
    /// Data downloads served in full (including ranges).
    pub data_requests: u64,
    /// Data downloads that carried a satisfiable `Range`.
    pub range_requests: u64,
    /// Injected 500/503 answers.
    pub injected_server_errors: u64,
    /// Injected 429 answers.
    pub injected_throttles: u64,
    /// Injected transient 404 answers on data files.
    pub injected_not_found: u64,
    /// Data downloads cut half-way.
    pub injected_drops: u64,
}

/// Entry point: see [`Sandbox::start`].
#[derive(Debug)]
pub struct Sandbox {
    url: String,
    shared: Arc<server::Shared>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Sandbox {
    /// Loads the export folder and starts serving on `127.0.0.1:config.port`.
    pub fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if !(0.0..=1.0).contains(&config.faults.server_errors)
            || !(0.0..=1.0).contains(&config.faults.throttle)
            || !(0.0..=1.0).contains(&config.faults.data_not_found)
            || !(0.0..=1.0).contains(&config.faults.drops)
        {
            return Err(SandboxError::Config(
                "fault shares must be between 0 and 1".to_owned(),
            ));
        }
        let data = data::Dataset::load(&config.data)?;
        let server = tiny_http::Server::http(("127.0.0.1", config.port)).map_err(|e| {
            SandboxError::Bind {
                port: config.port,
                message: e.to_string(),
            }
        })?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| SandboxError::Config("listener has no IP address".to_owned()))?;
        let url = format!("http://127.0.0.1:{port}");
        let server = Arc::new(server);
        let threads = config.threads.max(1);
        let shared = Arc::new(server::Shared::new(
            config.clone(),
            data,
            config.clock.clone(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let server = Arc::clone(&server);
                let shared = Arc::clone(&shared);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || serve(&server, &shared, &stop))
            })
            .collect();
        Ok(Sandbox {
            url,
            shared,
            stop,
            threads,
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:43127`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The sandbox's clock; [`Clock::advance`] expires tokens and jobs.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// What the sandbox has done so far.
    pub fn stats(&self) -> SandboxStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops serving and waits for the request threads.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn serve(server: &tiny_http::Server, shared: &server::Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let request = match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(_) => break,
        };
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_owned(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect();
        let method = request.method().as_str().to_owned();
        let url = request.url().to_owned();
        let reply = shared.handle(&server::Incoming {
            method: &method,
            url: &url,
            headers: &headers,
        });
        server::send(request, reply, shared.config.data_rate);
    }
}
