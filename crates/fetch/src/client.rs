//! The HTTP side: agent, token cache, retries and the BCDA endpoints.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ureq::http::{Response, Uri};

use crate::progress::{Event, Progress, parse_x_progress};
use crate::{Credentials, FetchError, Secret};

/// BCDA production.
pub const PROD_URL: &str = "https://api.bcda.cms.gov";
/// BCDA's public sandbox.
pub const SANDBOX_URL: &str = "https://sandbox.bcda.cms.gov";

pub use claimline_model::ApiVersion;

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `Group/all`: the attributed beneficiaries.
    GroupAll,
    /// `Group/runout`: last performance year's beneficiaries.
    GroupRunout,
    /// `Patient`: every attributed patient.
    Patient,
}

impl Endpoint {
    /// The path segment(s) before `/$export`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::GroupAll => "Group/all",
            Endpoint::GroupRunout => "Group/runout",
            Endpoint::Patient => "Patient",
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    /// `group/all`, `group/runout` or `patient` (any case), as `--endpoint` and profiles say it.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "group/all" => Ok(Endpoint::GroupAll),
            "group/runout" => Ok(Endpoint::GroupRunout),
            "patient" => Ok(Endpoint::Patient),
            _ => Err(format!(
                "endpoint {text:?}: expected group/all, group/runout or patient"
            )),
        }
    }
}

/// One export request: what the kick-off URL says.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    /// API version.
    pub api: ApiVersion,
    /// Group/all, Group/runout or Patient.
    pub endpoint: Endpoint,
    /// `_type`; empty = BCDA's default types.
    pub types: Vec<String>,
    /// `_since`: only resources updated after this instant.
    pub since: Option<jiff::Timestamp>,
    /// `_typeFilter` (v3 only; v1 and v2 ignore it), unencoded.
    pub type_filter: Option<String>,
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `keep`).
fn encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl ExportRequest {
    /// The kick-off URL on `base` (no trailing slash), e.g.
    /// `https://api.bcda.cms.gov/api/v2/Group/all/$export?_type=Patient&_since=2024-01-01T00%3A00%3A00Z`.
    pub fn kick_off_url(&self, base: &str) -> String {
        let mut url = format!(
            "{}/api/{}/{}/$export",
            base.trim_end_matches('/'),
            self.api.as_str(),
            self.endpoint.path()
        );
        let mut params = Vec::new();
        if !self.types.is_empty() {
            params.push(format!("_type={}", encode(&self.types.join(","), b",")));
        }
        if let Some(since) = self.since {
            // `+` must be %2B: a raw `+` would decode to a space.
            params.push(format!("_since={}", encode(&since.to_string(), b":")));
        }
        if let Some(filter) = &self.type_filter {
            params.push(format!("_typeFilter={}", encode(filter, b"")));
        }
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        url
    }
}

/// Waits, intervals and retry budgets. The defaults suit BCDA; tests shrink them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// First wait between polls.
    pub poll_initial: Duration,
    /// Longest wait between polls.
    pub poll_max: Duration,
    /// Cap on the total time spent waiting for a job (and for a busy kick-off); also the
    /// longest `Retry-After` honoured.
    pub max_wait: Duration,
    /// First wait before retrying a failed request.
    pub retry_initial: Duration,
    /// Longest backoff before retrying a failed request. A `Retry-After` (seconds or HTTP-date)
    /// is honoured as sent, up to [`Timing::max_wait`].
    pub retry_max: Duration,
    /// Attempts per request (or per file) before giving up.
    pub attempts: u32,
    /// Renew the token this long before it expires (at most a tenth of its lifetime).
    pub token_margin: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll_initial: Duration::from_secs(5),
            poll_max: Duration::from_secs(60),
            max_wait: Duration::from_secs(6 * 3600),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(120),
            attempts: 8,
            token_margin: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

impl Timing {
    /// Millisecond-scale waits for tests against a local sandbox.
    pub fn fast() -> Self {
        Timing {
            poll_initial: Duration::from_millis(5),
            poll_max: Duration::from_millis(20),
            max_wait: Duration::from_secs(60),
            retry_initial: Duration::from_millis(5),
            retry_max: Duration::from_millis(50),
            attempts: 8,
            token_margin: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(20),
        }
    }

    /// These timings with the waits a user gave, in seconds (`max_wait` in hours): the first
    /// wait between job polls and before a retry (each grows to at least its own cap), and the
    /// longest wait for a job. `None` keeps the value.
    ///
    /// # Errors
    /// A wait that is not a non-negative number, naming its flag.
    pub fn with_waits(
        mut self,
        poll_interval: Option<f64>,
        retry_wait: Option<f64>,
        max_wait_hours: Option<f64>,
    ) -> Result<Self, String> {
        let seconds = |value: f64, what: &str| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| format!("{what} must be a positive number of seconds"))
        };
        if let Some(p) = poll_interval {
            self.poll_initial = seconds(p, "--poll-interval")?;
            self.poll_max = self.poll_max.max(self.poll_initial);
        }
        if let Some(r) = retry_wait {
            self.retry_initial = seconds(r, "--retry-wait")?;
            self.retry_max = self.retry_max.max(self.retry_initial);
        }
        if let Some(h) = max_wait_hours {
            self.max_wait = seconds(h * 3600.0, "--max-wait")?;
        }
        Ok(self)
    }

    /// Exponential backoff for attempt `n` (from 1), capped at `retry_max`.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_initial
            .saturating_mul(factor)
            .min(self.retry_max)
    }
}

/// How to reach BCDA.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. [`PROD_URL`], [`SANDBOX_URL`] or a local sandbox's URL.
    pub base_url: String,
    /// A PEM file of extra root certificates (e.g. an inspecting proxy's), trusted in addition
    /// to Mozilla's roots.
    pub ca_file: Option<PathBuf>,
    /// Waits and retry budgets.
    pub timing: Timing,
}

impl ClientConfig {
    /// Defaults for `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            ca_file: None,
            timing: Timing::default(),
        }
    }
}

/// `true` for `localhost`, `127.0.0.0/8` and `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a base URL with a user name or password in it (`https://user:secret@host`): BCDA's
/// credentials are a client id and secret (`BCDA_CLIENT_ID`, `BCDA_CLIENT_SECRET`,
/// `--credentials`), and a URL is printed, logged and kept in the run state, where a password
/// must never be. The message does not repeat the URL.
///
/// # Errors
/// [`FetchError::Usage`] for such a URL.
pub fn check_base_url(url: &str) -> Result<(), FetchError> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(FetchError::Usage(
            "the base URL holds a user name or password (user:password@host): leave them out \
             and give BCDA's client id and secret as BCDA_CLIENT_ID and BCDA_CLIENT_SECRET or \
             --credentials FILE"
                .to_owned(),
        ));
    }
    Ok(())
}

/// `url` as an error shows a URL it was handed by a server: its scheme and host (and port),
/// `…` for whatever followed; no user name or password.
fn origin_only(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, h)| h);
    let more = if end < rest.len() { "/…" } else { "" };
    if scheme.is_empty() {
        format!("{host}{more}")
    } else {
        format!("{scheme}://{host}{more}")
    }
}

/// Scheme, host and port of an absolute URL, with the HTTPS-except-loopback rule applied.
fn origin(url: &str) -> Result<(String, String, u16), FetchError> {
    check_base_url(url)?;
    let uri: Uri = url
        .parse()
        .map_err(|_| FetchError::Usage(format!("not a URL: {url}")))?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or_else(|| FetchError::Usage(format!("URL without a host: {url}")))?
        .to_ascii_lowercase();
    let port = match (uri.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "https") => 443,
        (None, "http") => 80,
        _ => return Err(FetchError::Usage(format!("URL must be https: {url}"))),
    };
    if scheme != "https" && !(scheme == "http" && is_loopback(&host)) {
        return Err(FetchError::Usage(format!(
            "BCDA must be reached over HTTPS (plain HTTP only to a loopback sandbox): {url}"
        )));
    }
    Ok((scheme, host, port))
}

/// A cached access token.
#[derive(Debug, Clone)]
struct Token {
    value: Secret,
    renew_at: Instant,
}

/// One cached token, renewed ahead of expiry or when BCDA says `Expired Token`.
#[derive(Debug, Default)]
struct TokenCache {
    token: Mutex<Option<Token>>,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    /// A JSON string on BCDA (`"1200"`), a number elsewhere.
    #[serde(default)]
    expires_in: serde_json::Value,
}

impl TokenResponse {
    /// `expires_in` in seconds, whether a string or a number; 1200 (BCDA's) when unusable.
    fn lifetime(&self) -> Duration {
        let secs = match &self.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        Duration::from_secs(secs.unwrap_or(1200))
    }
}

/// When to renew a token that lives `lifetime`: `margin` early, but never more than a tenth of
/// its life early.
fn renew_after(lifetime: Duration, margin: Duration) -> Duration {
    lifetime.saturating_sub(margin.min(lifetime / 10))
}

/// The BCDA API client. Cheap to share by reference across threads.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    base_origin: (String, String, u16),
    credentials: Credentials,
    tokens: TokenCache,
    timing: Timing,
}

/// A response read in full (API endpoints only; data files are streamed).
pub(crate) struct Answer {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The OperationOutcome's `diagnostics` as errors show them (see [`diagnostics`]).
    pub(crate) fn diagnostics(&self) -> String {
        diagnostics(&self.body)
    }
}

/// The `diagnostics` of the OperationOutcome `body`, as errors, logs and reports show them:
/// every word that holds a digit left out (`…`: an MBI, a claim or beneficiary id, a date can
/// be in BCDA's text, and never in claimline's output), control characters as spaces, at most
/// 300 characters; empty when there is none.
pub(crate) fn diagnostics(body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("issue")?
                .get(0)?
                .get("diagnostics")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if w.chars().any(|c| c.is_numeric()) {
                "…"
            } else {
                w
            }
        })
        .collect();
    words.join(" ").chars().take(300).collect()
}

/// `Retry-After` as seconds or an HTTP-date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    Some(if when > now {
        Duration::try_from(when.duration_since(now)).unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

/// What a kick-off gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KickOff {
    /// 202: the job URL (`Content-Location`).
    Started(String),
    /// 429: an overlapping export is running; `Retry-After` when sent.
    Busy(Option<Duration>),
}

/// What a poll gave.
#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    /// 202: still running, with `X-Progress`.
    Running {
        /// The percentage, when `X-Progress` had one.
        percent: Option<u8>,
        /// `X-Progress` as sent.
        text: String,
    },
    /// 200: the manifest, as received.
    Complete {
        /// The manifest's bytes.
        manifest: Vec<u8>,
    },
}

/// One job from `GET /api/{v}/jobs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// The job id.
    pub id: String,
    /// The job URL, on this client's base URL.
    pub url: String,
    /// Task status: `accepted`, `in-progress`, `completed`, `failed`, `cancelled`.
    pub status: String,
    /// The kick-off request, without the leading `GET `.
    pub request: String,
    /// When it started.
    pub start: Option<String>,
    /// When it ended.
    pub end: Option<String>,
}

impl Client {
    /// A client for `config.base_url`. Checks the URL (HTTPS unless loopback) and loads the CA
    /// file; no request is made yet.
    pub fn new(config: ClientConfig, credentials: Credentials) -> Result<Self, FetchError> {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let base_origin = origin(&base)?;
        let timing = config.timing;
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| FetchError::InputFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut roots: Vec<ureq::tls::Certificate<'static>> =
                webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect();
            let before = roots.len();
            for item in ureq::tls::parse_pem(&pem) {
                if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
                    roots.push(cert);
                }
            }
            if roots.len() == before {
                return Err(FetchError::InputFile {
                    path: path.clone(),
                    reason: "no PEM certificate in it".to_owned(),
                });
            }
            tls = tls.root_certs(ureq::tls::RootCerts::from(roots));
        }
        // The system's proxy variables (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY) apply to
        // BCDA; a loopback sandbox is always reached directly.
        let proxy = if is_loopback(&base_origin.1) {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(proxy)
            .tls_config(tls.build())
            .user_agent(concat!("claimline/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(timing.connect_timeout))
            .timeout_per_read(Some(timing.read_timeout))
            .timeout_recv_response(Some(timing.read_timeout))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .new_agent();
        Ok(Client {
            agent,
            base,
            base_origin,
            credentials,
            tokens: TokenCache::default(),
            timing,
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The waits in use.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Refuses URLs (from `Content-Location` or a manifest) on another origin than the base URL,
    /// so the bearer token never leaves BCDA.
    ///
    /// The error names the URL by its origin only: its path, query and any user name come from
    /// the server, and could carry anything.
    pub(crate) fn check_same_origin(&self, url: &str) -> Result<(), FetchError> {
        let other = origin(url).map_err(|_| FetchError::Protocol {
            url: origin_only(url),
            reason: "not an absolute https URL".to_owned(),
        })?;
        let ours = &self.base_origin;
        let same_host = other.1 == ours.1 || (is_loopback(&other.1) && is_loopback(&ours.1));
        if other.0 != ours.0 || !same_host || other.2 != ours.2 {
            return Err(FetchError::Protocol {
                url: origin_only(url),
                reason: format!(
                    "not on {}; the token is only sent to the base URL",
                    self.base
                ),
            });
        }
        Ok(())
    }

    /// Gets a token now, failing fast on bad credentials.
    pub fn check_credentials(&self, progress: &dyn Progress) -> Result<(), FetchError> {
        self.bearer(progress).map(|_| ())
    }

    /// The cached token, renewed when it is near expiry.
    pub(crate) fn bearer(&self, progress: &dyn Progress) -> Result<Secret, FetchError> {
        let mut slot = self.tokens.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.value.clone());
        }
        let token = self.request_token()?;
        progress.event(&Event::TokenObtained);
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// Drops `used` from the cache (BCDA said `Expired Token`); a newer token stays.
    pub(crate) fn token_expired(&self, used: &Secret) {
        let mut slot = self.tokens.token.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|t| &t.value == used) {
            *slot = None;
        }
    }

    fn request_token(&self) -> Result<Token, FetchError> {
        let url = format!("{}/auth/token", self.base);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.credentials.client_id,
            self.credentials.client_secret.expose()
        ));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = self
                .agent
                .post(&url)
                .header("Authorization", format!("Basic {basic}"))
                .header("Accept", "application/json")
                .header("Connection", "close")
                .send_empty();
            let (wait, reason) = match result {
                Ok(response) => {
                    let answer = read_answer(response)?;
                    match answer.status {
                        200 => {
                            let parsed: TokenResponse = serde_json::from_slice(&answer.body)
                                .map_err(|_| FetchError::Protocol {
                                    url: url.clone(),
                                    reason: "the token answer is not the expected JSON".to_owned(),
                                })?;
                            let lifetime = parsed.lifetime();
                            return Ok(Token {
                                value: Secret::new(parsed.access_token),
                                renew_at: started + renew_after(lifetime, self.timing.token_margin),
                            });
                        }
                        401 | 403 => return Err(FetchError::CredentialsRejected { url }),
                        400 => {
                            return Err(FetchError::Refused {
                                url,
                                status: 400,
                                diagnostics: String::new(),
                            });
                        }
                        status @ (429 | 500..=599) => (
                            answer
                                .header("Retry-After")
                                .and_then(parse_retry_after)
                                .unwrap_or_else(|| self.timing.backoff(attempt)),
                            format!("status {status}"),
                        ),
                        status => {
                            return Err(FetchError::Protocol {
                                url,
                                reason: format!("status {status} from the token endpoint"),
                            });
                        }
                    }
                }
                Err(e) => (self.timing.backoff(attempt), e.to_string()),
            };
            if attempt >= self.timing.attempts {
                return Err(FetchError::Unavailable {
                    url,
                    attempts: attempt,
                    reason,
                });
            }
            // Backoff is already capped; a Retry-After is honoured up to the total wait cap.
            std::thread::sleep(wait.min(self.timing.max_wait));
        }
    }

    /// Sends an authenticated API request, retrying token expiry, 429 (unless `busy_ok`), 5xx and
    /// network errors; returns any other answer.
    pub(crate) fn api(
        &self,
        method: &str,
        url: &str,
        fhir_headers: bool,
        busy_ok: bool,
        progress: &dyn Progress,
    ) -> Result<Answer, FetchError> {
        let mut attempt = 0;
        let mut renewals = 0;
        loop {
            let token = self.bearer(progress)?;
            let mut request = ureq::http::Request::builder()
                .method(method)
                .uri(url)
                .header("Authorization", format!("Bearer {}", token.expose()))
                .header("Connection", "close");
            if fhir_headers {
                request = request
                    .header("Accept", "application/fhir+json")
                    .header("Prefer", "respond-async");
            }
            let request = request
                .body(())
                .map_err(|_| FetchError::Usage(format!("not a URL: {url}")))?;
            let (wait, reason) = match self.agent.run(request) {
                Ok(response) => {
                    let answer = read_answer(response)?;
                    match answer.status {
                        401 if answer.diagnostics().contains("Expired Token") && renewals < 5 => {
                            renewals += 1;
                            self.token_expired(&token);
                            continue;
                        }
                        429 if busy_ok => return Ok(answer),
                        // A failed job answers 500 with diagnostics: terminal, not retried.
                        status @ (429 | 500..=599)
                            if !(status == 500
                                && is_job_url(url)
                                && !answer.diagnostics().is_empty()) =>
                        {
                            attempt += 1;
                            let wait = answer
                                .header("Retry-After")
                                .and_then(parse_retry_after)
                                .unwrap_or_else(|| self.timing.backoff(attempt));
                            (wait, format!("status {status}"))
                        }
                        _ => return Ok(answer),
                    }
                }
                Err(e) => {
                    attempt += 1;
                    (self.timing.backoff(attempt), e.to_string())
                }
            };
            if attempt >= self.timing.attempts {
                return Err(FetchError::Unavailable {
                    url: url.to_owned(),
                    attempts: attempt,
                    reason,
                });
            }
            let wait = wait.min(self.timing.max_wait);
            progress.event(&Event::Retry {
                what: url,
                attempt,
                reason: &reason,
                wait,
            });
            std::thread::sleep(wait);
        }
    }

    /// Starts an export. 429 comes back as [`KickOff::Busy`]; 400/401/403 as
    /// [`FetchError::Refused`]; 404 as [`FetchError::TryLater`].
    pub fn kick_off(
        &self,
        request: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<KickOff, FetchError> {
        let url = request.kick_off_url(&self.base);
        let answer = self.api("GET", &url, true, true, progress)?;
        match answer.status {
            202 => {
                let location =
                    answer
                        .header("Content-Location")
                        .ok_or_else(|| FetchError::Protocol {
                            url: url.clone(),
                            reason: "202 without Content-Location".to_owned(),
                        })?;
                self.check_same_origin(location)?;
                Ok(KickOff::Started(location.to_owned()))
            }
            429 => Ok(KickOff::Busy(
                answer.header("Retry-After").and_then(parse_retry_after),
            )),
            404 => Err(FetchError::TryLater {
                url,
                status: 404,
                diagnostics: answer.diagnostics(),
            }),
            status => Err(FetchError::Refused {
                url,
                status,
                diagnostics: answer.diagnostics(),
            }),
        }
    }

    /// Polls a job once.
    pub fn poll(&self, job_url: &str, progress: &dyn Progress) -> Result<JobStatus, FetchError> {
        self.check_same_origin(job_url)?;
        let answer = self.api("GET", job_url, false, false, progress)?;
        match answer.status {
            200 => Ok(JobStatus::Complete {
                manifest: answer.body,
            }),
            202 => {
                let text = answer.header("X-Progress").unwrap_or("").to_owned();
                Ok(JobStatus::Running {
                    percent: parse_x_progress(&text),
                    text,
                })
            }
            500 => Err(FetchError::JobFailed {
                job_url: job_url.to_owned(),
                diagnostics: answer.diagnostics(),
            }),
            status @ (404 | 410) => Err(FetchError::JobGone {
                job_url: job_url.to_owned(),
                status,
                diagnostics: answer.diagnostics(),
            }),
            status => Err(FetchError::Refused {
                url: job_url.to_owned(),
                status,
                diagnostics: answer.diagnostics(),
            }),
        }
    }

    /// Lists this ACO's jobs, optionally only those with the given statuses (`Pending`,
    /// `In Progress`, `Completed`, …). BCDA's 404 "no jobs" is an empty list.
    pub fn jobs(
        &self,
        api: ApiVersion,
        statuses: &[&str],
        progress: &dyn Progress,
    ) -> Result<Vec<JobSummary>, FetchError> {
        let mut url = format!("{}/api/{}/jobs", self.base, api.as_str());
        if !statuses.is_empty() {
            url.push_str("?_status=");
            url.push_str(&encode(&statuses.join(","), b","));
        }
        let answer = self.api("GET", &url, true, false, progress)?;
        match answer.status {
            200 => {}
            404 => return Ok(Vec::new()),
            status => {
                return Err(FetchError::Refused {
                    url,
                    status,
                    diagnostics: answer.diagnostics(),
                });
            }
        }
        let bundle: serde_json::Value =
            serde_json::from_slice(&answer.body).map_err(|_| FetchError::Protocol {
                url: url.clone(),
                reason: "the job list is not JSON".to_owned(),
            })?;
        let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let jobs = bundle
            .get("entry")
            .and_then(|e| e.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|entry| {
                let task = entry.get("resource")?;
                let id = text(task.get("identifier")?.get(0)?.get("value"))?;
                let request = text(
                    task.get("input")
                        .and_then(|i| i.get(0))
                        .and_then(|i| i.get("valueString")),
                )
                .unwrap_or_default();
                Some(JobSummary {
                    url: format!("{}/api/{}/jobs/{id}", self.base, api.as_str()),
                    id,
                    status: text(task.get("status")).unwrap_or_default(),
                    request: request.strip_prefix("GET ").unwrap_or(&request).to_owned(),
                    start: text(task.get("executionPeriod").and_then(|p| p.get("start"))),
                    end: text(task.get("executionPeriod").and_then(|p| p.get("end"))),
                })
            })
            .collect();
        Ok(jobs)
    }

    /// Cancels a Pending or In Progress job (`DELETE`). BCDA answers 410 for a job that is no
    /// longer cancellable, returned as [`FetchError::JobGone`].
    pub fn cancel(&self, job_url: &str, progress: &dyn Progress) -> Result<(), FetchError> {
        self.check_same_origin(job_url)?;
        let answer = self.api("DELETE", job_url, false, false, progress)?;
        match answer.status {
            200 | 202 => Ok(()),
            status @ (404 | 410) => Err(FetchError::JobGone {
                job_url: job_url.to_owned(),
                status,
                diagnostics: answer.diagnostics(),
            }),
            status => Err(FetchError::Refused {
                url: job_url.to_owned(),
                status,
                diagnostics: answer.diagnostics(),
            }),
        }
    }

    /// Pre-flight: `GET /api/{v}/attribution_status`. Gives BCDA's last attribution ingestion
    /// time (`last_runout_update` for `Group/runout`), or `None` when the answer has none.
    /// BCDA's 404 (nothing ingested yet, e.g. during the January blackout) is
    /// [`FetchError::TryLater`]; 401/403 are [`FetchError::Refused`].
    pub fn attribution_status(
        &self,
        api: ApiVersion,
        endpoint: Endpoint,
        progress: &dyn Progress,
    ) -> Result<Option<String>, FetchError> {
        let url = format!("{}/api/{}/attribution_status", self.base, api.as_str());
        let answer = self.api("GET", &url, false, false, progress)?;
        match answer.status {
            200 => {
                let wanted = if endpoint == Endpoint::GroupRunout {
                    "last_runout_update"
                } else {
                    "last_attribution_update"
                };
                let value: serde_json::Value =
                    serde_json::from_slice(&answer.body).unwrap_or_default();
                Ok(value
                    .get("ingestion_dates")
                    .and_then(|d| d.as_array())
                    .and_then(|dates| {
                        dates
                            .iter()
                            .find(|d| d.get("type").and_then(|t| t.as_str()) == Some(wanted))
                    })
                    .and_then(|d| d.get("timestamp")?.as_str().map(str::to_owned)))
            }
            404 => Err(FetchError::TryLater {
                url,
                status: 404,
                diagnostics: match answer.diagnostics() {
                    d if d.is_empty() => "no attribution data has been ingested yet".to_owned(),
                    d => d,
                },
            }),
            status @ (401 | 403) => Err(FetchError::Refused {
                url,
                status,
                diagnostics: answer.diagnostics(),
            }),
            _ => Ok(None),
        }
    }

    /// Starts a data download: a raw GET with `Accept-Encoding: gzip` and an optional `Range`.
    pub(crate) fn get_data(
        &self,
        url: &str,
        token: &Secret,
        range_from: u64,
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut request = self
            .agent
            .get(url)
            .header("Authorization", format!("Bearer {}", token.expose()))
            .header("Accept-Encoding", "gzip")
            .header("Connection", "close");
        if range_from > 0 {
            request = request.header("Range", format!("bytes={range_from}-"));
        }
        request.call()
    }
}

fn is_job_url(url: &str) -> bool {
    url.contains("/jobs/")
}

/// Reads an API answer whole (these are small: JSON, OperationOutcome, empty).
fn read_answer(response: Response<ureq::Body>) -> Result<Answer, FetchError> {
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let mut bytes = Vec::new();
    // A body cut short is kept as far as it came; the status decides.
    let _ = body
        .into_reader()
        .take(64 * 1024 * 1024)
        .read_to_end(&mut bytes);
    Ok(Answer {
        status,
        headers: parts.headers,
        body: bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_from_flags_raise_their_caps_and_name_a_bad_flag() {
        let t = Timing::default()
            .with_waits(Some(300.0), None, Some(0.5))
            .expect("waits");
        assert_eq!(t.poll_initial, Duration::from_secs(300));
        assert!(t.poll_max >= t.poll_initial);
        assert_eq!(t.retry_initial, Timing::default().retry_initial);
        assert_eq!(t.max_wait, Duration::from_secs(1800));
        let err = Timing::default()
            .with_waits(None, Some(-1.0), None)
            .expect_err("negative");
        assert!(err.contains("--retry-wait"), "{err}");
    }

    #[test]
    fn kick_off_url_encodes_since_and_filter() {
        let request = ExportRequest {
            api: ApiVersion::V3,
            endpoint: Endpoint::GroupAll,
            types: vec!["ExplanationOfBenefit".into(), "Patient".into()],
            since: Some("2024-01-02T03:04:05+05:00".parse().expect("ts")),
            type_filter: Some("ExplanationOfBenefit?service-date=gt2024-01-01".into()),
        };
        assert_eq!(
            request.kick_off_url("https://api.bcda.cms.gov/"),
            "https://api.bcda.cms.gov/api/v3/Group/all/$export?_type=ExplanationOfBenefit,Patient\
             &_since=2024-01-01T22:04:05Z\
             &_typeFilter=ExplanationOfBenefit%3Fservice-date%3Dgt2024-01-01"
        );
        assert_eq!(
            encode("2024-01-01T00:00:00+05:00", b":"),
            "2024-01-01T00:00:00%2B05:00"
        );
    }

    #[test]
    fn a_base_url_with_a_password_is_refused_without_repeating_it() {
        let credentials = Credentials::new("id", "secret");
        for url in [
            "https://u:s3cr3t-canary@api.bcda.cms.gov",
            "http://u:s3cr3t-canary@127.0.0.1:18080/",
            "https://s3cr3t-canary@api.bcda.cms.gov/api",
        ] {
            let err =
                Client::new(ClientConfig::new(url), credentials.clone()).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{url}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
            assert!(check_base_url(url).is_err());
        }
        // An `@` after the host is not a user name.
        assert!(check_base_url("https://api.bcda.cms.gov/a@b?x=@").is_ok());
        assert!(Client::new(ClientConfig::new(PROD_URL), credentials).is_ok());
    }

    #[test]
    fn diagnostics_leave_out_every_word_with_a_digit() {
        let outcome = |text: &str| {
            serde_json::json!({"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception", "diagnostics": text}]})
            .to_string()
        };
        assert_eq!(
            diagnostics(
                outcome("Error retrieving EOB for MBI 1EG4TE5MK73,\nclaim -1000\t2024-01-02")
                    .as_bytes()
            ),
            "Error retrieving EOB for MBI … claim … …"
        );
        assert_eq!(
            diagnostics(outcome("Expired Token").as_bytes()),
            "Expired Token"
        );
        assert_eq!(diagnostics(b"not json"), "");
    }

    #[test]
    fn a_url_from_the_server_is_shown_by_its_origin() {
        assert_eq!(
            origin_only("http://u:p@evil.example:81/9ZZ9ZZ9ZZ99?x#y"),
            "http://evil.example:81/…"
        );
        assert_eq!(
            origin_only("https://api.bcda.cms.gov"),
            "https://api.bcda.cms.gov"
        );
        assert_eq!(origin_only("/data/9ZZ9ZZ9ZZ99"), "/…");
    }

    #[test]
    fn extra_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = Credentials::new("id", "secret");
        let mut config = ClientConfig::new(PROD_URL);
        config.ca_file = Some(dir.path().join("missing.pem"));
        let err = Client::new(config.clone(), credentials.clone()).expect_err("missing");
        assert_eq!(err.exit_code(), 3);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        config.ca_file = Some(empty);
        assert!(Client::new(config.clone(), credentials.clone()).is_err());
        // A real root certificate, as PEM.
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        let good = dir.path().join("proxy-ca.pem");
        std::fs::write(&good, pem).expect("write");
        config.ca_file = Some(good);
        Client::new(config, credentials).expect("a PEM certificate is accepted");
    }

    #[test]
    fn https_is_required_except_on_loopback() {
        assert!(origin("http://api.bcda.cms.gov").is_err());
        assert!(origin("https://api.bcda.cms.gov").is_ok());
        assert!(origin("http://127.0.0.1:8080").is_ok());
        assert!(origin("http://localhost:8080").is_ok());
        assert!(origin("http://[::1]:8080").is_ok());
        assert!(origin("http://10.0.0.1").is_err());
    }

    #[test]
    fn retry_after_seconds_or_http_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = later.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let wait = parse_retry_after(&date).expect("date");
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn tokens_renew_ahead_of_expiry() {
        assert_eq!(
            renew_after(Duration::from_secs(1200), Duration::from_secs(60)),
            Duration::from_secs(1140)
        );
        assert_eq!(
            renew_after(Duration::from_secs(10), Duration::from_secs(60)),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn expires_in_is_a_string_or_a_number() {
        for body in [
            r#"{"access_token":"t","expires_in":"1200"}"#,
            r#"{"access_token":"t","expires_in":1200}"#,
        ] {
            let parsed: TokenResponse = serde_json::from_str(body).expect("parse");
            assert_eq!(parsed.lifetime(), Duration::from_secs(1200));
        }
    }
}
