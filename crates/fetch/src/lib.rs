//! The BCDA bulk-export client: from credentials to a verified export folder.
//!
//! [`export`] runs the whole BCDA flow that `../shared/reference/bcda-api.md` describes, and
//! survives what BCDA does:
//!
//! - **Token**: `POST /auth/token` with HTTP Basic; `expires_in` read as a string or a number;
//!   one cached token, renewed ahead of expiry ([`Timing::token_margin`]) and when BCDA answers
//!   401 `Expired Token`. Bad credentials fail at once ([`FetchError::CredentialsRejected`]).
//! - **Kick-off**: `GET /api/{v}/{Group/all|Group/runout|Patient}/$export` with `_type`,
//!   `_since` (`+` encoded), `_typeFilter`, and the required `Accept` and `Prefer` headers
//!   ([`ExportRequest::kick_off_url`]). The job URL goes to `EXPORT/.claimline/state.json`
//!   before anything else. A 429 (an export already running) re-attaches to the running job with
//!   the same request, found through `/jobs`, or waits `Retry-After` (seconds or HTTP-date).
//! - **Polling**: lenient `X-Progress` ([`parse_x_progress`]), backoff from
//!   [`Timing::poll_initial`] to [`Timing::poll_max`], a cap on the total wait; 500 (failed), 404
//!   and 410 (cancelled, expired) end the job with a clear error.
//! - **Downloads**: every `output` and `error` file, [`ExportOptions::parallel`] at a time, with
//!   `Accept-Encoding: gzip`, the bytes kept as served in `.claimline/tmp/*.part`, resumed with
//!   `Range` (restarted when the server will not), checked against `Content-Length`, fully
//!   decoded (CRC-32 and length of every gzip member), then renamed to
//!   `<resourceType>.<NNN>.ndjson.gz` (`errors/OperationOutcome.<NNN>.ndjson.gz`), their size and
//!   SHA-256 recorded in the state, and `manifest.json` written last. 5xx, 429, transient 404
//!   and dropped connections are retried with backoff.
//! - **Crash safety**: rerunning the same request re-attaches to the saved job and downloads only
//!   what is missing; the folder ends byte-identical to an uninterrupted run.
//! - **Security**: credentials come from the environment or a private file
//!   ([`Credentials`]), never from arguments, and never reach logs, errors or state files.
//!   HTTPS is required except to a loopback sandbox; the token is only sent to the base URL's
//!   origin. Everything written is owner-only (0600 files, 0700 folders).
//!
//! There is no NDJSON parsing here. Progress is reported through the [`Progress`] trait.
//! [`FetchError::exit_code`] maps failures to the command line's exit codes.
//!
//! ```
//! use claimline_fetch::{
//!     ApiVersion, Client, ClientConfig, Credentials, Endpoint, ExportOptions, ExportRequest,
//!     NoProgress, Timing, export,
//! };
//! use claimline_sandbox::{Sandbox, SandboxConfig};
//!
//! // A local BCDA-compatible server over the bundled real samples.
//! let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4");
//! let sandbox = Sandbox::start(SandboxConfig::new(data)).expect("sandbox");
//!
//! let mut config = ClientConfig::new(sandbox.url());
//! config.timing = Timing::fast();
//! let client = Client::new(config, Credentials::new("sandbox-client", "sandbox-secret"))
//!     .expect("client");
//! let request = ExportRequest {
//!     api: ApiVersion::V2,
//!     endpoint: Endpoint::GroupAll,
//!     types: vec!["Patient".into(), "Coverage".into()],
//!     since: None,
//!     type_filter: None,
//! };
//! let out = tempfile::tempdir().expect("tempdir");
//! let summary = export(&client, &request, out.path(), &ExportOptions::default(), &NoProgress)
//!     .expect("export");
//! assert!(out.path().join("Patient.000.ndjson.gz").is_file());
//! assert!(out.path().join("manifest.json").is_file());
//! assert_eq!(summary.files.len(), 2);
//! ```

mod client;
mod credentials;
mod error;
mod export;
mod progress;
mod state;

pub use client::{
    ApiVersion, Client, ClientConfig, Endpoint, ExportRequest, JobStatus, JobSummary, KickOff,
    PROD_URL, SANDBOX_URL, Timing, check_base_url, parse_retry_after,
};
pub use credentials::{Credentials, ENV_CLIENT_ID, ENV_CLIENT_SECRET, Secret};
pub use error::FetchError;
pub use export::{ExportOptions, ExportSummary, export};
pub use progress::{Event, NoProgress, Progress, parse_x_progress};
pub use state::{ExportState, FileRecord, load_state, state_path};

/// The instant type of [`ExportRequest::since`] (jiff's), re-exported so callers need not depend
/// on jiff: parse one with `"2025-01-01T00:00:00Z".parse::<Timestamp>()` (an offset is required).
pub use jiff::Timestamp;
