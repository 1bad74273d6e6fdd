//! The sandbox's BCDA behaviour, checked with a plain HTTP client.

use std::io::Read as _;

use base64::Engine as _;
use claimline_sandbox::{Sandbox, SandboxConfig};

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
}

fn send(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request = request.header("Connection", "close");
    let response = agent()
        .run(request.body(()).expect("request"))
        .expect("answer");
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let mut bytes = Vec::new();
    body.into_reader().read_to_end(&mut bytes).expect("body");
    Answer {
        status,
        headers: parts.headers,
        body: bytes,
    }
}

fn sample() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4").to_owned()
}

fn token(sandbox: &Sandbox) -> String {
    let basic = base64::engine::general_purpose::STANDARD.encode("sandbox-client:sandbox-secret");
    let answer = send(
        "POST",
        &format!("{}/auth/token", sandbox.url()),
        &[("Authorization", &format!("Basic {basic}"))],
    );
    assert_eq!(answer.status, 200);
    let json = answer.json();
    assert_eq!(json["expires_in"], "1200", "a JSON string, as on BCDA");
    format!("Bearer {}", json["access_token"].as_str().expect("token"))
}

const FHIR: [(&str, &str); 2] = [
    ("Accept", "application/fhir+json"),
    ("Prefer", "respond-async"),
];

fn with_fhir(auth: &str) -> [(&str, &str); 3] {
    [("Authorization", auth), FHIR[0], FHIR[1]]
}

#[test]
fn token_endpoint_checks_basic_credentials() {
    let sandbox = Sandbox::start(SandboxConfig::new(sample())).expect("sandbox");
    let url = format!("{}/auth/token", sandbox.url());
    assert_eq!(send("POST", &url, &[]).status, 400);
    let wrong = base64::engine::general_purpose::STANDARD.encode("sandbox-client:nope");
    let answer = send(
        "POST",
        &url,
        &[("Authorization", &format!("Basic {wrong}"))],
    );
    assert_eq!(answer.status, 401);
    assert!(
        serde_json::from_slice::<serde_json::Value>(&answer.body).is_err(),
        "plain text"
    );
    token(&sandbox);
}

#[test]
fn kick_off_validates_headers_and_parameters() {
    let sandbox = Sandbox::start(SandboxConfig::new(sample())).expect("sandbox");
    let auth = token(&sandbox);
    let base = format!("{}/api/v2/Group/all/$export", sandbox.url());
    let only_auth = [("Authorization", auth.as_str())];
    assert_eq!(
        send("GET", &base, &only_auth).status,
        400,
        "Accept/Prefer required"
    );
    for bad in [
        "?_type=Patient,Patient",
        "?_type=Observation",
        "?_since=2024-01-01T00:00:00",
        "?_since=2024-01-01T00:00:00+05:00",
        "?_since=2999-01-01T00:00:00Z",
        "?_elements=id",
        "?_outputFormat=csv",
    ] {
        let answer = send("GET", &format!("{base}{bad}"), &with_fhir(&auth));
        assert_eq!(answer.status, 400, "{bad}");
        assert_eq!(answer.json()["resourceType"], "OperationOutcome");
    }
    let unauthenticated = send("GET", &base, &FHIR);
    assert_eq!(unauthenticated.status, 401);
    assert_eq!(
        unauthenticated.json()["issue"][0]["diagnostics"],
        "Invalid Token"
    );
}

#[test]
fn a_job_progresses_then_serves_gzip_with_ranges_and_expires() {
    let mut config = SandboxConfig::new(sample());
    config.polls_to_complete = 3;
    config.first_job_id = 42;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let auth = token(&sandbox);
    let kick_off = format!(
        "{}/api/v2/Patient/$export?_type=Patient,Coverage&_since=2000-01-01T00:00:00%2B00:00",
        sandbox.url()
    );
    let started = send("GET", &kick_off, &with_fhir(&auth));
    assert_eq!(started.status, 202);
    assert!(started.body.is_empty());
    let job = started
        .header("Content-Location")
        .expect("job URL")
        .to_owned();
    assert_eq!(job, format!("{}/api/v2/jobs/42", sandbox.url()));

    let again = send("GET", &kick_off, &with_fhir(&auth));
    assert_eq!(again.status, 429, "overlapping export");
    assert_eq!(again.header("Retry-After"), Some("1"));
    assert!(again.body.is_empty());

    let only_auth = [("Authorization", auth.as_str())];
    assert_eq!(
        send("GET", &job, &only_auth).header("X-Progress"),
        Some("Pending")
    );
    assert_eq!(
        send("GET", &job, &only_auth).header("X-Progress"),
        Some("In Progress (33%)")
    );
    let done = send("GET", &job, &only_auth);
    assert_eq!(done.status, 200);
    assert!(
        done.header("Expires")
            .is_some_and(|e| e.ends_with(" +0000 UTC"))
    );
    let manifest = done.json();
    assert_eq!(manifest["JobID"], 42);
    assert_eq!(manifest["request"], kick_off.as_str());
    // The sample's lastUpdated values are placeholders: nothing is newer than _since.
    assert_eq!(manifest["output"].as_array().map(Vec::len), Some(0));

    let full = format!("{}/api/v2/Group/all/$export", sandbox.url());
    let job = send("GET", &full, &with_fhir(&auth))
        .header("Content-Location")
        .expect("job")
        .to_owned();
    let manifest = loop {
        let answer = send("GET", &job, &only_auth);
        if answer.status == 200 {
            break answer.json();
        }
    };
    let file = manifest["output"][0]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let gzip = [
        ("Authorization", auth.as_str()),
        ("Accept-Encoding", "gzip"),
    ];
    let whole = send("GET", &file, &gzip);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("Content-Encoding"), Some("gzip"));
    assert_eq!(
        whole.header("Content-Length"),
        Some(whole.body.len().to_string().as_str())
    );
    let ranged = send("GET", &file, &[gzip[0], gzip[1], ("Range", "bytes=10-")]);
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, whole.body[10..]);
    let past = format!("bytes={}-", whole.body.len());
    assert_eq!(
        send("GET", &file, &[gzip[0], gzip[1], ("Range", &past)]).status,
        416
    );
    let plain = send("GET", &file, &only_auth);
    assert_eq!(plain.header("Content-Encoding"), None);
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(whole.body.as_slice())
        .read_to_end(&mut decoded)
        .expect("gzip");
    assert_eq!(plain.body, decoded);

    let jobs = send(
        "GET",
        &format!("{}/api/v2/jobs", sandbox.url()),
        &with_fhir(&auth),
    );
    assert_eq!(jobs.json()["total"], 2);
    assert_eq!(jobs.json()["entry"][0]["resource"]["status"], "completed");

    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(25 * 3600));
    let auth = token(&sandbox);
    let only_auth = [("Authorization", auth.as_str())];
    assert_eq!(send("GET", &job, &only_auth).status, 410);
    assert_eq!(send("GET", &file, &only_auth).status, 404);
    let expired = send(
        "GET",
        &format!("{}/api/v2/jobs/1", sandbox.url()),
        &only_auth,
    );
    assert_eq!(expired.status, 404, "unknown job");
}

#[test]
fn tokens_expire_on_the_sandbox_clock() {
    let sandbox = Sandbox::start(SandboxConfig::new(sample())).expect("sandbox");
    let auth = token(&sandbox);
    let welcome = format!("{}/auth/welcome", sandbox.url());
    assert_eq!(
        send("GET", &welcome, &[("Authorization", &auth)]).status,
        200
    );
    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(1201));
    let expired = send("GET", &welcome, &[("Authorization", &auth)]);
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["issue"][0]["diagnostics"], "Expired Token");
}

#[test]
fn attribution_status_and_the_try_later_answers() {
    let sandbox = Sandbox::start(SandboxConfig::new(sample())).expect("sandbox");
    let auth = token(&sandbox);
    let status = send(
        "GET",
        &format!("{}/api/v2/attribution_status", sandbox.url()),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(status.status, 200);
    let dates = status.json()["ingestion_dates"].clone();
    let kinds: Vec<&str> = dates
        .as_array()
        .expect("ingestion_dates")
        .iter()
        .map(|d| d["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["last_attribution_update", "last_runout_update"]);
    assert!(
        dates[0]["timestamp"]
            .as_str()
            .expect("timestamp")
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "RFC 3339"
    );

    let mut config = SandboxConfig::new(sample());
    config.blackout = true;
    let blackout = Sandbox::start(config).expect("sandbox");
    let auth = token(&blackout);
    for (path, expected) in [
        ("v2/Group/all", 404),
        ("v2/Patient", 404),
        ("v3/Group/all", 404),
        ("v2/Group/runout", 202),
    ] {
        let answer = send(
            "GET",
            &format!("{}/api/{path}/$export", blackout.url()),
            &with_fhir(&auth),
        );
        assert_eq!(answer.status, expected, "{path} during the blackout");
        if expected == 404 {
            let diagnostics = answer.json()["issue"][0]["diagnostics"].clone();
            assert!(
                diagnostics.as_str().expect("text").contains("January"),
                "{diagnostics}"
            );
        }
    }

    let mut config = SandboxConfig::new(sample());
    config.runout_closed = true;
    let closed = Sandbox::start(config).expect("sandbox");
    let auth = token(&closed);
    let runout = format!("{}/api/v2/Group/runout/$export", closed.url());
    assert_eq!(send("GET", &runout, &with_fhir(&auth)).status, 404);
    let all = format!("{}/api/v2/Group/all/$export", closed.url());
    assert_eq!(send("GET", &all, &with_fhir(&auth)).status, 202);

    let mut config = SandboxConfig::new(sample());
    config.no_attribution = true;
    let none = Sandbox::start(config).expect("sandbox");
    let auth = token(&none);
    let status = send(
        "GET",
        &format!("{}/api/v2/attribution_status", none.url()),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(status.status, 404);
    let all = format!("{}/api/v2/Group/all/$export", none.url());
    assert_eq!(send("GET", &all, &with_fhir(&auth)).status, 404);
}

/// The lines of every `output` file of a completed job, decoded.
fn job_lines(auth: &str, kick_off: &str) -> Vec<String> {
    let started = send("GET", kick_off, &with_fhir(auth));
    assert_eq!(started.status, 202, "{kick_off}");
    let job = started.header("Content-Location").expect("job").to_owned();
    let manifest = loop {
        let answer = send("GET", &job, &[("Authorization", auth)]);
        if answer.status == 200 {
            break answer.json();
        }
        assert_eq!(answer.status, 202);
    };
    let mut lines = Vec::new();
    for entry in manifest["output"].as_array().expect("output") {
        let url = entry["url"].as_str().expect("url");
        let answer = send("GET", url, &[("Authorization", auth)]);
        assert_eq!(answer.status, 200);
        let text = String::from_utf8(answer.body).expect("utf-8");
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

#[test]
fn transaction_time_bounds_an_export_and_since_gives_the_delta() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = jiff::Timestamp::now();
    let past = now - jiff::SignedDuration::from_hours(24 * 10);
    let later = now + jiff::SignedDuration::from_hours(24 * 3);
    let text = format!(
        "{{\"resourceType\":\"Patient\",\"id\":\"old\",\"meta\":{{\"lastUpdated\":\"{past}\"}}}}\n\
         {{\"resourceType\":\"Patient\",\"id\":\"new\",\"meta\":{{\"lastUpdated\":\"{later}\"}}}}\n"
    );
    std::fs::write(dir.path().join("Patient.ndjson"), text).expect("write");
    let sandbox = Sandbox::start(SandboxConfig::new(dir.path())).expect("sandbox");
    let auth = token(&sandbox);
    let base = format!("{}/api/v2/Patient/$export?_type=Patient", sandbox.url());
    let first = job_lines(&auth, &base);
    assert_eq!(first.len(), 1, "a line updated after transactionTime waits");
    assert!(first[0].contains("\"old\""));

    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(7 * 24 * 3600));
    let auth = token(&sandbox);
    let since = format!("{base}&_since={}", now.to_string().replace('+', "%2B"));
    let second = job_lines(&auth, &since);
    assert_eq!(second.len(), 1, "only the delta");
    assert!(second[0].contains("\"new\""));
}
