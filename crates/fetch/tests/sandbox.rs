//! The real client against the local sandbox over loopback: the happy path, one test per fault,
//! token expiry mid-download, 429 re-attach, `_since`, crash-resume and secret hygiene.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use claimline_fetch::{
    ApiVersion, Client, ClientConfig, Credentials, Endpoint, Event, ExportOptions, ExportRequest,
    FetchError, KickOff, NoProgress, Progress, Timing, export,
};
use claimline_sandbox::{Faults, Sandbox, SandboxConfig, SandboxStats};

const ID: &str = "test-client";
const SECRET: &str = "s3cr3t-Zq9xW7-never-print-me";

/// An export folder of `benes` beneficiaries: one Patient, one Coverage and two EOBs each, with
/// `meta.lastUpdated` alternating between 2024 and 2025 (and one placeholder), plus one error line.
fn make_data(benes: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for b in 0..benes {
        let updated = if b % 2 == 0 {
            "2024-03-01T00:00:00+00:00"
        } else {
            "2025-06-01T12:00:00.5-05:00"
        };
        text.push_str(&format!(
            "{{\"resourceType\":\"Patient\",\"id\":\"p{b}\",\"meta\":{{\"lastUpdated\":\"{updated}\"}}}}\n"
        ));
        text.push_str(&format!(
            "{{\"resourceType\":\"Coverage\",\"id\":\"c{b}\",\"meta\":{{\"lastUpdated\":\"{updated}\"}},\"beneficiary\":{{\"reference\":\"Patient/p{b}\"}}}}\n"
        ));
        for c in 0..2 {
            text.push_str(&format!(
                "{{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"e{b}-{c}\",\"meta\":{{\"lastUpdated\":\"{updated}\"}},\"patient\":{{\"reference\":\"Patient/p{b}\"}}}}\n"
            ));
        }
    }
    text.push_str("{\"resourceType\":\"Patient\",\"id\":\"placeholder\",\"meta\":{\"lastUpdated\":\"IGNORED_FIELD\"}}\n");
    fs::write(dir.path().join("export.ndjson"), text).expect("write data");
    fs::create_dir(dir.path().join("errors")).expect("errors dir");
    fs::write(
        dir.path().join("errors/failures.ndjson"),
        "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"not-found\",\"diagnostics\":\"Error retrieving ExplanationOfBenefit for beneficiary p0\"}]}\n",
    )
    .expect("write errors");
    dir
}

fn config(data: &Path) -> SandboxConfig {
    let mut config = SandboxConfig::new(data);
    config.client_id = ID.to_owned();
    config.client_secret = SECRET.to_owned();
    config.retry_after_secs = 0;
    config.polls_to_complete = 3;
    config.seed = 42;
    config
}

fn client(sandbox: &Sandbox) -> Client {
    let mut config = ClientConfig::new(sandbox.url());
    config.timing = Timing::fast();
    Client::new(config, Credentials::new(ID, SECRET)).expect("client")
}

fn request() -> ExportRequest {
    ExportRequest {
        api: ApiVersion::V2,
        endpoint: Endpoint::GroupAll,
        types: vec![
            "ExplanationOfBenefit".to_owned(),
            "Patient".to_owned(),
            "Coverage".to_owned(),
        ],
        since: None,
        type_filter: None,
    }
}

/// Every file under `dir` (hidden ones included), relative path → bytes.
fn tree_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("relative").to_path_buf();
                out.insert(rel, fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir`, relative path → SHA-256.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    tree_bytes(dir)
        .into_iter()
        .map(|(p, b)| (p, sha256_hex(&b)))
        .collect()
}

/// The export's data files (state and manifest aside, since they name the sandbox's port and
/// clock), relative path → SHA-256.
fn export_files(dir: &Path) -> BTreeMap<PathBuf, String> {
    tree(dir)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".claimline") && p != Path::new("manifest.json"))
        .collect()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip");
    text
}

/// Runs a clean export of `data` and returns its files, as the reference for fault runs.
fn reference_export(data: &Path) -> BTreeMap<PathBuf, String> {
    let sandbox = Sandbox::start(config(data)).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    export(
        &client(&sandbox),
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    export_files(out.path())
}

/// Runs an export with `faults` and checks it equals the clean export; returns the stats.
fn export_with_faults(faults: Faults) -> SandboxStats {
    let data = make_data(120);
    let expected = reference_export(data.path());
    let mut config = config(data.path());
    config.faults = faults;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    export(
        &client(&sandbox),
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export survives the faults");
    let got = export_files(out.path());
    assert_eq!(got.len(), 6);
    assert_eq!(got, expected, "same bytes as a clean run");
    sandbox.stats()
}

#[test]
fn export_splits_verifies_and_records_every_file() {
    let data = make_data(120);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let summary = export(
        &client(&sandbox),
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    let names: Vec<&str> = summary.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ExplanationOfBenefit.000.ndjson.gz",
            "ExplanationOfBenefit.001.ndjson.gz",
            "ExplanationOfBenefit.002.ndjson.gz",
            "Patient.000.ndjson.gz",
            "Coverage.000.ndjson.gz",
            "errors/OperationOutcome.000.ndjson.gz",
        ]
    );
    // 50 beneficiaries per EOB file, two EOBs each.
    let eob =
        gunzip(&fs::read(out.path().join("ExplanationOfBenefit.000.ndjson.gz")).expect("eob"));
    assert_eq!(eob.lines().count(), 100);
    let patients = gunzip(&fs::read(out.path().join("Patient.000.ndjson.gz")).expect("patients"));
    assert_eq!(
        patients.lines().count(),
        121,
        "the placeholder line is served without _since"
    );
    let errors = gunzip(
        &fs::read(out.path().join("errors/OperationOutcome.000.ndjson.gz")).expect("errors"),
    );
    assert!(errors.contains("OperationOutcome"));

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.path().join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["output"].as_array().map(Vec::len), Some(5));
    assert!(manifest["JobID"].is_u64());

    let state = claimline_fetch::load_state(out.path())
        .expect("state")
        .expect("state exists");
    assert!(state.complete);
    assert_eq!(state.job_url, summary.job_url);
    assert_eq!(
        state.transaction_time,
        manifest["transactionTime"].as_str().map(str::to_owned)
    );
    for record in &state.files {
        let bytes = fs::read(out.path().join(&record.name)).expect("file");
        assert_eq!(bytes.len() as u64, record.size);
        assert_eq!(sha256_hex(&bytes), record.sha256, "{}", record.name);
    }
    assert!(
        !out.path()
            .join(".claimline/tmp")
            .read_dir()
            .expect("tmp")
            .any(|_| true)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&out.path().join("Patient.000.ndjson.gz")), 0o600);
        assert_eq!(mode(&out.path().join("manifest.json")), 0o600);
        assert_eq!(mode(&out.path().join(".claimline/state.json")), 0o600);
        assert_eq!(mode(&out.path().join(".claimline")), 0o700);
        assert_eq!(mode(&out.path().join("errors")), 0o700);
    }
    let stats = sandbox.stats();
    assert_eq!(
        stats.tokens_issued, 1,
        "one cached token, not one per request"
    );
    assert_eq!(stats.jobs_started, 1);
}

#[test]
fn server_errors_500_and_503_are_retried() {
    let stats = export_with_faults(Faults {
        server_errors: 0.3,
        ..Faults::default()
    });
    assert!(stats.injected_server_errors > 0);
}

#[test]
fn throttling_429_is_retried() {
    let stats = export_with_faults(Faults {
        throttle: 0.3,
        ..Faults::default()
    });
    assert!(stats.injected_throttles > 0);
}

#[test]
fn dropped_connections_resume_with_range() {
    let stats = export_with_faults(Faults {
        drops: 0.5,
        ..Faults::default()
    });
    assert!(stats.injected_drops > 0);
    assert!(stats.range_requests > 0, "resumed, not restarted");
}

#[test]
fn transient_404_on_data_files_is_retried() {
    let stats = export_with_faults(Faults {
        data_not_found: 0.5,
        ..Faults::default()
    });
    assert!(stats.injected_not_found > 0);
}

#[test]
fn tokens_expiring_early_are_renewed() {
    let stats = export_with_faults(Faults {
        token_max_uses: Some(3),
        ..Faults::default()
    });
    assert!(stats.expired_token_rejections > 0);
    assert!(stats.tokens_issued > 1);
}

#[test]
fn every_fault_at_once() {
    let stats = export_with_faults(Faults {
        server_errors: 0.1,
        throttle: 0.1,
        data_not_found: 0.1,
        drops: 0.2,
        token_max_uses: Some(5),
        fail_jobs: false,
    });
    assert!(stats.injected_drops + stats.injected_not_found + stats.injected_server_errors > 0);
}

#[test]
fn a_failed_job_ends_with_exit_code_7() {
    let data = make_data(3);
    let mut config = config(data.path());
    config.faults.fail_jobs = true;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let err = export(
        &client(&sandbox),
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect_err("the job fails");
    assert!(matches!(err, FetchError::JobFailed { .. }), "{err}");
    assert_eq!(err.exit_code(), 7);
    assert!(err.to_string().contains("failed"));
}

#[test]
fn bad_credentials_fail_fast_with_exit_code_6() {
    let data = make_data(3);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let mut config = ClientConfig::new(sandbox.url());
    config.timing = Timing::fast();
    let client = Client::new(config, Credentials::new(ID, "wrong-secret")).expect("client");
    let out = tempfile::tempdir().expect("out");
    let err = export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect_err("refused");
    assert!(
        matches!(err, FetchError::CredentialsRejected { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), 6);
    assert!(!err.to_string().contains("wrong-secret"));
    assert_eq!(sandbox.stats().rejected_credentials, 1, "no retry on 401");
    assert!(!out.path().join(".claimline/state.json").exists());
}

/// Advances the sandbox clock past the token lifetime after the first finished file.
struct ExpireTokensAfterFirstFile<'a> {
    sandbox: &'a Sandbox,
    done: AtomicBool,
}

impl Progress for ExpireTokensAfterFirstFile<'_> {
    fn event(&self, event: &Event<'_>) {
        if matches!(event, Event::FileDone { .. }) && !self.done.swap(true, Ordering::SeqCst) {
            self.sandbox
                .clock()
                .advance(std::time::Duration::from_secs(1300));
        }
    }
}

#[test]
fn token_expiry_in_the_middle_of_downloads() {
    let data = make_data(120);
    let expected = reference_export(data.path());
    let mut config = config(data.path());
    config.job_expiry_secs = 48 * 3600;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let progress = ExpireTokensAfterFirstFile {
        sandbox: &sandbox,
        done: AtomicBool::new(false),
    };
    let options = ExportOptions {
        parallel: 1,
        ..ExportOptions::default()
    };
    export(
        &client(&sandbox),
        &request(),
        out.path(),
        &options,
        &progress,
    )
    .expect("export");
    let stats = sandbox.stats();
    assert!(stats.expired_token_rejections >= 1);
    assert_eq!(stats.tokens_issued, 2);
    assert_eq!(export_files(out.path()), expected);
}

#[test]
fn overlapping_export_429_reattaches_to_the_running_job() {
    let data = make_data(10);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let client = client(&sandbox);
    // Another run of the same request is already going.
    let KickOff::Started(running) = client.kick_off(&request(), &NoProgress).expect("kick-off")
    else {
        panic!("first kick-off starts a job");
    };
    let out = tempfile::tempdir().expect("out");
    let summary = export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    assert!(summary.reattached);
    assert_eq!(summary.job_url, running);
    let stats = sandbox.stats();
    assert_eq!(stats.overlap_rejections, 1);
    assert_eq!(stats.jobs_started, 1);
    assert!(out.path().join("Patient.000.ndjson.gz").is_file());
}

#[test]
fn overlapping_export_of_another_request_waits_instead_of_reattaching() {
    let data = make_data(4);
    let mut config = config(data.path());
    config.polls_to_complete = 1;
    config.retry_after_secs = 1;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let client = client(&sandbox);
    let mut other = request();
    other.types = vec!["Patient".to_owned()];
    let KickOff::Started(running) = client.kick_off(&other, &NoProgress).expect("kick-off") else {
        panic!("first kick-off starts a job");
    };
    // Busy events: complete the other job so that ours can start.
    struct FinishOther<'a> {
        client: &'a Client,
        running: &'a str,
        busy: Mutex<Vec<std::time::Duration>>,
    }
    impl Progress for FinishOther<'_> {
        fn event(&self, event: &Event<'_>) {
            if let Event::Busy { wait } = event {
                self.busy.lock().expect("lock").push(*wait);
                let _ = self.client.poll(self.running, &NoProgress);
            }
        }
    }
    let progress = FinishOther {
        client: &client,
        running: &running,
        busy: Mutex::new(Vec::new()),
    };
    let out = tempfile::tempdir().expect("out");
    let summary = export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &progress,
    )
    .expect("export");
    assert!(!summary.reattached);
    assert_ne!(summary.job_url, running);
    assert_eq!(
        *progress.busy.lock().expect("lock"),
        [std::time::Duration::from_secs(1)],
        "one wait, of Retry-After"
    );
}

#[test]
fn since_returns_only_newer_resources() {
    let data = make_data(10);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let mut request = request();
    request.since = Some("2025-01-01T00:00:00+01:00".parse().expect("since"));
    export(
        &client(&sandbox),
        &request,
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    let patients = gunzip(&fs::read(out.path().join("Patient.000.ndjson.gz")).expect("patients"));
    let ids: Vec<&str> = patients
        .lines()
        .map(|l| {
            l.split("\"id\":\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .expect("id")
        })
        .collect();
    assert_eq!(
        ids,
        ["p1", "p3", "p5", "p7", "p9"],
        "2025 resources only, no placeholder"
    );
    let manifest = fs::read_to_string(out.path().join("manifest.json")).expect("manifest");
    assert!(
        manifest.contains("_since=2025-01-01T00%3A00%3A00Z")
            || manifest.contains("_since=2024-12-31T23")
    );
}

#[test]
fn rerun_after_an_interruption_fetches_only_what_is_missing() {
    let data = make_data(120);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let client = client(&sandbox);
    let out = tempfile::tempdir().expect("out");
    export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    let complete = tree(out.path());

    // Pretend the run died: one file never renamed (half its bytes in a .part), one not started,
    // the state not yet complete and manifest.json not yet written.
    let mut state = claimline_fetch::load_state(out.path())
        .expect("state")
        .expect("state exists");
    let half = state.files[0].clone();
    let bytes = fs::read(out.path().join(&half.name)).expect("file");
    fs::write(
        out.path()
            .join(".claimline/tmp/ExplanationOfBenefit.000.ndjson.part"),
        &bytes[..bytes.len() / 2],
    )
    .expect("part");
    fs::remove_file(out.path().join(&half.name)).expect("remove");
    fs::remove_file(out.path().join(&state.files[3].name)).expect("remove");
    fs::remove_file(out.path().join("manifest.json")).expect("remove");
    state
        .files
        .retain(|f| f.name != "Patient.000.ndjson.gz" && f.name != half.name);
    state.complete = false;
    fs::write(
        out.path().join(".claimline/state.json"),
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .expect("state");

    let before = sandbox.stats();
    let summary = export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("rerun");
    assert!(summary.reattached);
    assert_eq!(summary.downloaded, 2);
    let after = sandbox.stats();
    assert_eq!(after.jobs_started, before.jobs_started, "no new job");
    assert_eq!(
        after.range_requests,
        before.range_requests + 1,
        "the .part was resumed"
    );
    assert_eq!(tree(out.path()), complete, "byte-identical, state included");
}

#[test]
fn an_expired_saved_job_says_start_a_new_one() {
    let data = make_data(4);
    let mut config = config(data.path());
    config.polls_to_complete = 1;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let client = client(&sandbox);
    let KickOff::Started(job) = client.kick_off(&request(), &NoProgress).expect("kick-off") else {
        panic!("started");
    };
    client.poll(&job, &NoProgress).expect("completes");
    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(25 * 3600));
    let err = client.poll(&job, &NoProgress).expect_err("expired");
    assert!(
        matches!(err, FetchError::JobGone { status: 410, .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), 7);
}

#[test]
fn jobs_are_listed_and_cancelled() {
    let data = make_data(4);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let client = client(&sandbox);
    assert!(
        client
            .jobs(ApiVersion::V2, &[], &NoProgress)
            .expect("no jobs")
            .is_empty()
    );
    let KickOff::Started(job) = client.kick_off(&request(), &NoProgress).expect("kick-off") else {
        panic!("started");
    };
    let jobs = client
        .jobs(ApiVersion::V2, &["Pending", "In Progress"], &NoProgress)
        .expect("jobs");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].url, job);
    assert_eq!(jobs[0].status, "accepted");
    client.cancel(&job, &NoProgress).expect("cancel");
    let err = client.poll(&job, &NoProgress).expect_err("cancelled");
    assert!(
        matches!(err, FetchError::JobGone { status: 404, .. }),
        "{err}"
    );
    let again = client
        .cancel(&job, &NoProgress)
        .expect_err("not cancellable");
    assert!(
        matches!(again, FetchError::JobGone { status: 410, .. }),
        "{again}"
    );
    assert_eq!(sandbox.stats().jobs_cancelled, 1);
}

#[test]
fn v3_without_a_tag_filter_gets_the_warnings_file() {
    let data = make_data(4);
    let sandbox = Sandbox::start(config(data.path())).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let mut request = request();
    request.api = ApiVersion::V3;
    request.type_filter = Some("ExplanationOfBenefit?service-date=gt2024-01-01".to_owned());
    let summary = export(
        &client(&sandbox),
        &request,
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    let errors: Vec<&str> = summary
        .files
        .iter()
        .filter(|f| f.error_file)
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        errors,
        [
            "errors/OperationOutcome.000.ndjson.gz",
            "errors/OperationOutcome.001.ndjson.gz"
        ]
    );
    let warning = gunzip(&fs::read(out.path().join(errors[0])).expect("warning"));
    assert!(warning.contains("\"severity\":\"warning\""));
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let err = Client::new(
        ClientConfig::new("http://api.bcda.cms.gov"),
        Credentials::new(ID, SECRET),
    )
    .expect_err("refused");
    assert_eq!(err.exit_code(), 2);
}

/// Records every event's debug text.
struct Recorder(Mutex<String>);

impl Progress for Recorder {
    fn event(&self, event: &Event<'_>) {
        self.0
            .lock()
            .expect("lock")
            .push_str(&format!("{event:?}\n"));
    }
}

#[test]
fn the_secret_and_tokens_are_absent_from_every_byte_written() {
    use base64::Engine as _;
    let data = make_data(60);
    let mut config = config(data.path());
    config.faults = Faults {
        server_errors: 0.1,
        drops: 0.2,
        token_max_uses: Some(4),
        ..Faults::default()
    };
    let sandbox = Sandbox::start(config).expect("sandbox");
    let out = tempfile::tempdir().expect("out");
    let recorder = Recorder(Mutex::new(String::new()));
    let client = client(&sandbox);
    export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &recorder,
    )
    .expect("export");
    // A failure's message, too.
    let err = client
        .poll(&format!("{}/api/v2/jobs/999", sandbox.url()), &NoProgress)
        .expect_err("unknown");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ID}:{SECRET}"));
    let mut haystacks: Vec<(String, Vec<u8>)> = tree_bytes(out.path())
        .into_iter()
        .map(|(p, b)| (p.display().to_string(), b))
        .collect();
    haystacks.push((
        "events".into(),
        recorder.0.into_inner().expect("lock").into_bytes(),
    ));
    haystacks.push(("error".into(), format!("{err} {err:?}").into_bytes()));
    haystacks.push(("client".into(), format!("{client:?}").into_bytes()));
    let tokens_seen = sandbox.stats().tokens_issued;
    assert!(tokens_seen > 1);
    for (name, bytes) in &haystacks {
        for needle in [SECRET, basic.as_str(), "Bearer "] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle:?} found in {name}"
            );
        }
    }
}

#[test]
fn another_request_into_the_same_folder_needs_new_job() {
    let data = make_data(60);
    let mut config = config(data.path());
    config.polls_to_complete = 1;
    let sandbox = Sandbox::start(config).expect("sandbox");
    let client = client(&sandbox);
    let out = tempfile::tempdir().expect("out");
    export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("export");
    assert!(
        out.path()
            .join("ExplanationOfBenefit.001.ndjson.gz")
            .is_file()
    );
    let mut patients_only = request();
    patients_only.types = vec!["Patient".to_owned()];
    let err = export(
        &client,
        &patients_only,
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect_err("another export is there");
    assert_eq!(err.exit_code(), 2);
    let options = ExportOptions {
        new_job: true,
        ..ExportOptions::default()
    };
    let summary =
        export(&client, &patients_only, out.path(), &options, &NoProgress).expect("new job");
    assert!(!summary.reattached);
    assert_eq!(sandbox.stats().jobs_started, 2);
    let names: Vec<PathBuf> = export_files(out.path()).into_keys().collect();
    assert_eq!(
        names,
        [
            PathBuf::from("Patient.000.ndjson.gz"),
            PathBuf::from("errors/OperationOutcome.000.ndjson.gz")
        ],
        "the earlier export's files are gone"
    );
}

/// A saved job that BCDA expired in the meantime is replaced by a new one even when its files'
/// 404s come between other failures (a 503, say): before, any other failure among the attempts
/// made the file "unavailable" (exit 7), and every later run went back to the dead job (found
/// by a review). And attempts that move a download on are not counted against it.
#[test]
fn an_expired_saved_job_is_replaced_among_other_failures() {
    let data = make_data(40);
    let mut config = config(data.path());
    config.faults = Faults {
        server_errors: 0.3,
        drops: 0.3,
        ..Faults::default()
    };
    let sandbox = Sandbox::start(config).expect("sandbox");
    let client = client(&sandbox);
    let out = tempfile::tempdir().expect("out");
    export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("an export survives drops and 503s");
    let complete = export_files(out.path());
    // The run died before its last file: that file and its record gone, the job's manifest kept.
    let mut state = claimline_fetch::load_state(out.path())
        .expect("state")
        .expect("state exists");
    let last = state.files.pop().expect("a file");
    fs::remove_file(out.path().join(&last.name)).expect("remove");
    fs::remove_file(out.path().join("manifest.json")).expect("remove");
    state.complete = false;
    fs::write(
        out.path().join(".claimline/state.json"),
        serde_json::to_vec_pretty(&state).expect("json"),
    )
    .expect("state");
    // BCDA expires the job: its files answer 404 from now on.
    sandbox
        .clock()
        .advance(std::time::Duration::from_secs(25 * 3600));
    let before = sandbox.stats().jobs_started;
    export(
        &client,
        &request(),
        out.path(),
        &ExportOptions::default(),
        &NoProgress,
    )
    .expect("a new job replaces the expired one");
    assert_eq!(sandbox.stats().jobs_started, before + 1);
    assert_eq!(export_files(out.path()), complete);
}
