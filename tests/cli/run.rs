//! `claimline run` end to end: the real binary against a sandbox on loopback (in this process, so
//! the tests move its clock a week at a time). Weekly incremental runs, a failed load, a run
//! killed during its downloads, BCDA's January blackout, two profiles, keep and reload.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use claimline_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::sample_data;

const ID: &str = "run-client";
const SECRET: &str = "run-Secret-4c1d-never-printed";
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The first resource of a bundled real sample file, as a template.
fn template(file: &str) -> Value {
    let text = fs::read_to_string(sample_data().join("r4").join(file)).expect("sample");
    serde_json::from_str(text.lines().next().expect("a line")).expect("JSON")
}

fn stamp(resource: &mut Value, updated: &str) {
    resource["meta"]["lastUpdated"] = json!(updated);
}

fn eob(template: &Value, id: &str, bene: usize, group: usize, updated: &str) -> Value {
    let mut e = template.clone();
    e["id"] = json!(id);
    e["patient"]["reference"] = json!(format!("Patient/p{bene}"));
    for identifier in e["identifier"].as_array_mut().expect("identifiers") {
        if identifier["system"]
            .as_str()
            .is_some_and(|s| s.ends_with("claim-group"))
        {
            identifier["value"] = json!(group.to_string());
        }
    }
    stamp(&mut e, updated);
    e
}

fn write_lines(path: &Path, resources: &[Value]) {
    let mut text = String::new();
    for r in resources {
        text.push_str(&serde_json::to_string(r).expect("JSON"));
        text.push('\n');
    }
    fs::write(path, text).expect("write data");
}

/// `benes` beneficiaries (Patient, Coverage, two carrier claims each) last updated ten days ago,
/// and a "next week" delta: claim `eob-0-0` updated (new payment) and one new claim, both last
/// updated three days from now, so the sandbox serves them only once its clock has moved on.
fn make_data(dir: &Path, benes: usize) {
    let now = jiff::Timestamp::now();
    let past = (now - jiff::SignedDuration::from_hours(24 * 10)).to_string();
    let later = (now + jiff::SignedDuration::from_hours(24 * 3)).to_string();
    let (patient, coverage, carrier) = (
        template("Patient.ndjson"),
        template("Coverage.ndjson"),
        template("ExplanationOfBenefit-carrier.ndjson"),
    );
    let mut week1 = Vec::new();
    for b in 0..benes {
        let mut p = patient.clone();
        p["id"] = json!(format!("p{b}"));
        stamp(&mut p, &past);
        week1.push(p);
        let mut c = coverage.clone();
        c["id"] = json!(format!("c{b}"));
        c["beneficiary"]["reference"] = json!(format!("Patient/p{b}"));
        stamp(&mut c, &past);
        week1.push(c);
        for k in 0..2 {
            week1.push(eob(
                &carrier,
                &format!("eob-{b}-{k}"),
                b,
                1000 + b * 10 + k,
                &past,
            ));
        }
    }
    write_lines(&dir.join("week1.ndjson"), &week1);
    let mut updated = eob(&carrier, "eob-0-0", 0, 1000, &later);
    updated["payment"]["amount"]["value"] = json!(12345.67);
    let new = eob(&carrier, "eob-new", 1, 999_999, &later);
    write_lines(&dir.join("week2.ndjson"), &[updated, new]);
    // Served as the manifest's error file; its text names an MBI, which must never be shown.
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error",
        "code": "exception",
        "diagnostics": format!("Error retrieving ExplanationOfBenefit for beneficiary MBI {MBI} in ACO A9999")}]});
    write_lines(&dir.join("errors.ndjson"), &[outcome]);
}

const MBI: &str = "1S00E00AA99";

fn sandbox(data: &Path, tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut config = SandboxConfig::new(data);
    config.client_id = ID.to_owned();
    config.client_secret = SECRET.to_owned();
    config.polls_to_complete = 2;
    config.retry_after_secs = 0;
    tweak(&mut config);
    Sandbox::start(config).expect("sandbox starts")
}

/// `claimline run` against `url` into `out`, with fast polls and the `basic` views.
fn run(url: &str, out: &Path, extra: &[&str]) -> Command {
    run_with_views(url, out, "basic", extra)
}

fn run_with_views(url: &str, out: &Path, views: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimline"));
    command
        .args([
            "run",
            "--base-url",
            url,
            "--api",
            "v2",
            "--endpoint",
            "group/all",
        ])
        .args([
            "--views",
            views,
            "--poll-interval",
            "0.01",
            "--retry-wait",
            "0.01",
        ])
        .args(["--json", "--out", s(out)])
        .args(extra)
        .env("BCDA_CLIENT_ID", ID)
        .env("BCDA_CLIENT_SECRET", SECRET)
        .env_remove("CLAIMLINE_FAULT")
        .env_remove("CLAIMLINE_CONFIG")
        .stdin(Stdio::null());
    command
}

fn ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "run failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("run --json prints JSON")
}

fn no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(SECRET));
    }
}

fn state(out: &Path) -> Value {
    serde_json::from_slice(&fs::read(out.join("claimline-state.json")).expect("state"))
        .expect("state is JSON")
}

fn query<T: rusqlite::types::FromSql>(out: &Path, sql: &str) -> T {
    let conn = rusqlite::Connection::open(out.join("claimline.sqlite")).expect("sqlite");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn weekly_runs_fetch_only_the_delta_and_tables_end_correct() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 5);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");

    let first_output = run(bcda.url(), &out, &[]).output().expect("runs");
    let first = ok(&first_output);
    assert_eq!(
        first["since"],
        Value::Null,
        "the first run takes everything"
    );
    assert!(first["attribution"].is_string(), "pre-flight: {first:#}");
    assert_eq!(
        first["error_files"],
        json!([{"severity": "error", "code": "exception",
                "resource_type": "ExplanationOfBenefit", "count": 1}])
    );
    let export1 = Path::new(first["export"].as_str().expect("export")).to_path_buf();
    assert!(
        export1
            .join("errors/OperationOutcome.000.ndjson.gz")
            .is_file(),
        "kept"
    );
    let state_text = fs::read_to_string(out.join("claimline-state.json")).expect("state");
    for text in [
        String::from_utf8_lossy(&first_output.stdout).into_owned(),
        String::from_utf8_lossy(&first_output.stderr).into_owned(),
        state_text,
    ] {
        assert!(!text.contains(MBI), "no MBI in output or state");
    }
    assert_eq!(
        first["fetch"]["resources"],
        json!({"Coverage": 5, "ExplanationOfBenefit": 10, "Patient": 5})
    );
    assert_eq!(first["committed"], true, "{first:#}");
    let t1 = first["transaction_time"].as_str().expect("tt").to_owned();
    assert_eq!(state(&out)["scopes"][0]["since"], t1.as_str());
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 10);

    bcda.clock().advance(WEEK);
    let second = ok(&run(bcda.url(), &out, &[]).output().expect("runs"));
    assert_eq!(
        second["since"],
        t1.as_str(),
        "--since auto: the committed one"
    );
    assert_eq!(
        second["fetch"]["resources"],
        json!({"ExplanationOfBenefit": 2}),
        "only what changed since"
    );
    let t2 = second["transaction_time"].as_str().expect("tt").to_owned();
    assert!(t2 > t1);
    assert_eq!(second["next_since"], t2.as_str());
    let export: Value = serde_json::from_slice(
        &fs::read(
            Path::new(second["export"].as_str().expect("export")).join(".claimline/state.json"),
        )
        .expect("export state"),
    )
    .expect("JSON");
    assert!(
        export["request_url"]
            .as_str()
            .expect("request")
            .contains("_since="),
        "{export}"
    );
    assert_eq!(
        query::<i64>(&out, "SELECT count(*) FROM eob"),
        11,
        "one new claim"
    );
    assert_eq!(
        query::<i64>(&out, "SELECT count(*) FROM eob WHERE eob_id = 'eob-0-0'"),
        1,
        "the new version replaced the old"
    );
    assert_eq!(
        query::<f64>(
            &out,
            "SELECT payment_amount FROM eob WHERE eob_id = 'eob-0-0'"
        ),
        12345.67
    );
    assert_eq!(
        query::<i64>(&out, "SELECT count(*) FROM _claimline_runs"),
        2
    );
    assert_eq!(bcda.stats().jobs_started, 2);
    // Both exports are kept, and the state and exports are owner-only.
    assert_eq!(
        fs::read_dir(out.join("exports")).expect("exports").count(),
        2
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: PathBuf| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(out.join("claimline-state.json")), 0o600);
        assert_eq!(mode(out.join("exports")), 0o700);
    }
    let text = fs::read_to_string(out.join("claimline-state.json")).expect("state");
    assert!(!text.contains(ID) && !text.contains(SECRET));
}

#[test]
fn a_failed_load_leaves_since_unchanged_and_the_rerun_completes() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let log = work.path().join("run.log");

    let failed = run(bcda.url(), &out, &["--log", s(&log)])
        .env("CLAIMLINE_FAULT", "scan.batch@1:fail")
        .output()
        .expect("runs");
    assert!(
        !failed.status.success(),
        "the injected sink failure fails the run"
    );
    no_secret(&failed);
    let after_failure = state(&out);
    assert_eq!(after_failure["scopes"][0]["since"], Value::Null);
    let pending = after_failure["scopes"][0]["pending"]["run_id"]
        .as_str()
        .expect("the run is pending")
        .to_owned();
    assert!(
        fs::read_to_string(&log).expect("log").contains("failed"),
        "the failure is logged"
    );

    let rerun = ok(&run(bcda.url(), &out, &["--log", s(&log)])
        .output()
        .expect("runs"));
    assert_eq!(rerun["run_id"], pending.as_str(), "the same run, resumed");
    assert_eq!(rerun["resumed"], true);
    assert_eq!(rerun["fetch"]["downloaded"], 0, "nothing downloaded again");
    assert_eq!(rerun["committed"], true);
    assert_eq!(bcda.stats().jobs_started, 1, "no second export job");
    assert_eq!(
        state(&out)["scopes"][0]["since"],
        rerun["transaction_time"],
        "committed after the load succeeded"
    );
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 6);
    let log_text = fs::read_to_string(&log).expect("log");
    assert!(log_text.contains("committed transactionTime"), "{log_text}");
    assert!(!log_text.contains(SECRET));
}

/// Bytes of `.part` files under the output folder's exports.
fn part_bytes(out: &Path) -> u64 {
    let Ok(exports) = fs::read_dir(out.join("exports")) else {
        return 0;
    };
    exports
        .flatten()
        .filter_map(|e| fs::read_dir(e.path().join(".claimline/tmp")).ok())
        .flat_map(|d| d.flatten())
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn a_run_killed_during_download_resumes_the_same_job() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 30);
    // Slow downloads: each file arrives in many small pieces, so the fault point below stops
    // the run with a file half-written.
    let bcda = sandbox(data.path(), |c| c.data_rate = Some(100_000));
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");

    // Killed at an exact step: the second piece of a download is on disk, the rest is not.
    let killed = run(bcda.url(), &out, &[])
        .env("CLAIMLINE_FAULT", "fetch.chunk@2")
        .output()
        .expect("run starts");
    crate::crash::killed_at(&killed, "fetch.chunk");
    assert!(part_bytes(&out) > 0, "a partial download is kept");
    let killed = state(&out);
    assert_eq!(
        killed["scopes"][0]["since"],
        Value::Null,
        "no _since after a kill"
    );
    let run_id = killed["scopes"][0]["pending"]["run_id"]
        .as_str()
        .expect("pending")
        .to_owned();
    let saved: Value = serde_json::from_slice(
        &fs::read(
            out.join("exports")
                .join(&run_id)
                .join(".claimline/state.json"),
        )
        .expect("export state"),
    )
    .expect("JSON");

    let resumed = ok(&run(bcda.url(), &out, &[]).output().expect("runs"));
    assert_eq!(resumed["run_id"], run_id.as_str());
    assert_eq!(resumed["fetch"]["reattached"], true);
    assert_eq!(resumed["fetch"]["job_url"], saved["job_url"]);
    assert_eq!(bcda.stats().jobs_started, 1);
    assert_eq!(resumed["fetch"]["resources"]["ExplanationOfBenefit"], 60);
    assert_eq!(resumed["committed"], true);
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 60);
    assert_eq!(part_bytes(&out), 0);
}

#[test]
fn the_january_blackout_exits_7_with_one_line() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    let bcda = sandbox(data.path(), |c| c.blackout = true);
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let log = work.path().join("run.log");

    let answer = run(bcda.url(), &out, &["--log", s(&log)])
        .output()
        .expect("runs");
    assert_eq!(answer.status.code(), Some(7), "BCDA says try later");
    let stderr = String::from_utf8_lossy(&answer.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("try later") && stderr.contains("January"),
        "{stderr}"
    );
    // Under --json stdout holds an error document a scheduler can read (issue 14).
    let doc: Value = serde_json::from_slice(&answer.stdout).expect("an error document");
    assert_eq!(doc["error"]["code"], 7);
    assert!(
        doc["error"]["message"]
            .as_str()
            .expect("message")
            .contains("January")
    );
    no_secret(&answer);
    assert_eq!(state(&out)["scopes"][0]["since"], Value::Null);
    assert!(fs::read_to_string(&log).expect("log").contains("exit 7"));
}

#[test]
fn pre_flight_attribution_status_stops_before_any_export() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    let bcda = sandbox(data.path(), |c| c.no_attribution = true);
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let answer = run(bcda.url(), &out, &[]).output().expect("runs");
    assert_eq!(answer.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&answer.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("attribution_status"), "{stderr}");
    assert_eq!(bcda.stats().jobs_started, 0, "stopped before the kick-off");
    no_secret(&answer);

    let wrong = run(bcda.url(), &out, &[])
        .env("BCDA_CLIENT_SECRET", "not-the-secret")
        .output()
        .expect("runs");
    assert_eq!(wrong.status.code(), Some(6), "bad credentials: refused");
}

#[test]
fn two_profiles_write_to_two_outputs() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let creds = work.path().join("aco.env");
    fs::write(
        &creds,
        format!("BCDA_CLIENT_ID={ID}\nBCDA_CLIENT_SECRET={SECRET}\n"),
    )
    .expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&creds, fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let config = work.path().join("claimline.toml");
    fs::write(
        &config,
        format!(
            "[profiles.north]\nbase_url = \"{url}\"\napi = \"v2\"\nendpoint = \"group/all\"\n\
             types = [\"Patient\", \"Coverage\"]\nout = \"north\"\ncredentials = \"aco.env\"\n\
             views = [\"basic\"]\n\n\
             [profiles.south]\nbase_url = \"{url}\"\napi = \"v2\"\nendpoint = \"patient\"\n\
             types = [\"ExplanationOfBenefit\"]\nout = \"south\"\ncredentials = \"aco.env\"\n\
             views = [\"basic\"]\n",
            url = bcda.url()
        ),
    )
    .expect("write");
    let profile = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_claimline"))
            .args(["run", "--config", s(&config), "--profile", name])
            .args(["--poll-interval", "0.01", "--json"])
            .env_remove("BCDA_CLIENT_ID")
            .env_remove("BCDA_CLIENT_SECRET")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let north = ok(&profile("north"));
    let south_output = profile("south");
    no_secret(&south_output);
    let south = ok(&south_output);
    assert_eq!(north["profile"], "north");
    assert_eq!(
        north["fetch"]["resources"],
        json!({"Coverage": 2, "Patient": 2})
    );
    assert_eq!(
        south["fetch"]["resources"],
        json!({"ExplanationOfBenefit": 4})
    );
    let (north_out, south_out) = (work.path().join("north"), work.path().join("south"));
    assert_eq!(query::<i64>(&north_out, "SELECT count(*) FROM patient"), 2);
    assert_eq!(query::<i64>(&north_out, "SELECT count(*) FROM eob"), 0);
    assert_eq!(query::<i64>(&south_out, "SELECT count(*) FROM eob"), 4);
    let (n, s_) = (state(&north_out), state(&south_out));
    assert_eq!(n["scopes"].as_array().expect("scopes").len(), 1);
    assert_eq!(
        n["scopes"][0]["scope"]["types"],
        json!(["Coverage", "Patient"])
    );
    assert_eq!(s_["scopes"][0]["scope"]["endpoint"], "Patient");
    assert!(n["scopes"][0]["since"].is_string() && s_["scopes"][0]["since"].is_string());

    let missing = profile("east");
    assert_eq!(
        missing.status.code(),
        Some(2),
        "an unknown profile is a usage error"
    );
}

#[test]
fn other_views_refuse_until_reload_rebuilds_from_kept_exports() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    ok(&run(bcda.url(), &out, &[]).output().expect("runs"));

    // A mapping change: only the eob view, from a folder.
    let views = work.path().join("views");
    fs::create_dir(&views).expect("mkdir");
    fs::copy(
        crate::repo_root().join("mappings/basic/eob.json"),
        views.join("eob.json"),
    )
    .expect("copy view");
    bcda.clock().advance(WEEK);
    let other = |extra: &[&str]| {
        run_with_views(bcda.url(), &out, s(&views), extra)
            .output()
            .expect("runs")
    };
    let refused = other(&[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("claimline reload"), "{stderr}");
    // Refused before an export was asked for (issue 13): no second export folder.
    assert_eq!(
        fs::read_dir(out.join("exports")).expect("exports").count(),
        1,
        "no export asked for"
    );
    assert_eq!(
        query::<i64>(&out, "SELECT count(*) FROM eob"),
        6,
        "tables untouched"
    );

    let reload = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["reload", "--out", s(&out), "--json", "--views", s(&views)])
        .output()
        .expect("reload runs");
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let rebuilt: Value = serde_json::from_slice(&reload.stdout).expect("JSON");
    assert_eq!(rebuilt["runs"].as_array().expect("runs").len(), 1);
    let tables: i64 = query(
        &out,
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'patient'",
    );
    assert_eq!(tables, 0, "rebuilt with the new views only");
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 6);

    let resumed = other(&["--keep", "1"]);
    let resumed = ok(&resumed);
    assert_eq!(resumed["committed"], true);
    assert_eq!(
        resumed["fetch"]["resources"],
        json!({"ExplanationOfBenefit": 2})
    );
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 7);
    // The full export and the incremental after it are what a rebuild needs (issue 15): --keep 1
    // keeps both.
    assert_eq!(
        resumed["pruned"].as_array().expect("pruned").len(),
        0,
        "--keep 1 never prunes a rebuild's chain"
    );
    assert_eq!(
        fs::read_dir(out.join("exports")).expect("exports").count(),
        2
    );
    // A new full export starts a new chain: the old one may go.
    bcda.clock().advance(WEEK);
    let full = ok(&other(&["--keep", "1", "--since", "full"]));
    assert_eq!(full["pruned"].as_array().expect("pruned").len(), 2);
    assert_eq!(
        fs::read_dir(out.join("exports")).expect("exports").count(),
        1
    );
    assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 7);
}

/// A reload rebuilds the outputs its `--format` names and leaves the others as they were (found
/// by a review: `reload --format parquet` removed `claimline.sqlite`, and `--format sqlite` the
/// Parquet history, with exit 0).
#[test]
fn reload_of_one_format_leaves_the_other_output_alone() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    ok(&run(bcda.url(), &out, &[]).output().expect("runs"));
    let parquet_files = |out: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![out.join("parquet")];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).expect("dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push((p.clone(), fs::read(&p).expect("file")));
                }
            }
        }
        files.sort();
        files
    };
    let reload = |format: &str| {
        let r = Command::new(env!("CARGO_BIN_EXE_claimline"))
            .args(["reload", "--out", s(&out), "--format", format, "--json"])
            .output()
            .expect("reload runs");
        ok(&r);
    };
    let db = fs::read(out.join("claimline.sqlite")).expect("db");
    let claims: i64 = query(&out, "SELECT count(*) FROM _claimline_claims");
    assert!(claims > 0);
    reload("parquet");
    assert_eq!(
        fs::read(out.join("claimline.sqlite")).expect("SQLite's database is still there"),
        db
    );
    assert!(out.join("current/views.sql").is_file(), "Parquet rebuilt");
    let parquet = parquet_files(&out);
    assert!(!parquet.is_empty());
    reload("sqlite");
    assert_eq!(parquet_files(&out), parquet, "Parquet's history as it was");
    assert!(out.join("current/views.sql").is_file());
    assert_eq!(
        query::<i64>(&out, "SELECT count(*) FROM _claimline_claims"),
        claims
    );
}

/// A kept export is loaded by its absolute path: the rows' `_source_file` is the same whether
/// the folder is named `out` (from its parent) or by its full path, so a reload gives back the
/// very rows (found by a review: each spelling gave its own `_source_file`).
#[test]
fn source_files_do_not_depend_on_how_the_output_folder_is_named() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let ran = run(bcda.url(), Path::new("out"), &[])
        .current_dir(work.path())
        .output()
        .expect("runs");
    ok(&ran);
    let files = || -> Vec<String> {
        let conn = rusqlite::Connection::open(out.join("claimline.sqlite")).expect("sqlite");
        let mut stmt = conn
            .prepare("SELECT DISTINCT _source_file FROM eob ORDER BY 1")
            .expect("sql");
        stmt.query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("files")
    };
    let before = files();
    assert!(!before.is_empty());
    assert!(
        before
            .iter()
            .all(|f| Path::new(f).is_absolute() && Path::new(f).is_file()),
        "{before:?}"
    );
    let reload = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["reload", "--out", s(&out), "--views", "basic", "--json"])
        .output()
        .expect("reload runs");
    ok(&reload);
    assert_eq!(files(), before);
}

/// Regression (issue 15): `run --types Patient,Coverage --keep 1`, then `run --types
/// ExplanationOfBenefit --keep 1`, then `reload` emptied `cclf8` and `bene_xref` and nulled every
/// `BENE_MBI_ID`, with exit 0. Retention now keeps each scope's full export, and a reload whose
/// kept exports cannot rebuild the tables refuses (exit 2) and changes nothing.
#[test]
fn reload_after_keep_rebuilds_every_table_or_refuses() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");
    let go = |extra: &[&str]| {
        run_with_views(bcda.url(), &out, "cclf", extra)
            .output()
            .expect("runs")
    };
    ok(&go(&["--types", "Patient,Coverage", "--keep", "1"]));
    bcda.clock().advance(WEEK);
    let claims = ok(&go(&["--types", "ExplanationOfBenefit", "--keep", "1"]));
    assert_eq!(
        claims["pruned"],
        json!([]),
        "the Patient/Coverage export stays"
    );
    let snapshot = |sql: &str| -> i64 { query(&out, sql) };
    let before = (
        snapshot("SELECT count(*) FROM cclf8"),
        snapshot("SELECT count(*) FROM bene_xref"),
        snapshot("SELECT count(*) FROM cclf5 WHERE BENE_MBI_ID IS NOT NULL"),
    );
    assert!(before.0 > 0 && before.1 > 0 && before.2 > 0, "{before:?}");
    let reload = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["reload", "--out", s(&out), "--json"])
        .output()
        .expect("reload runs");
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let after = (
        snapshot("SELECT count(*) FROM cclf8"),
        snapshot("SELECT count(*) FROM bene_xref"),
        snapshot("SELECT count(*) FROM cclf5 WHERE BENE_MBI_ID IS NOT NULL"),
    );
    assert_eq!(after, before, "cclf8, bene_xref and the MBIs rebuilt");

    // A plain `claimline load` into the folder: no kept export gives its run back, so reload
    // refuses and leaves every table as it was (it dropped the run silently).
    let loaded = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args([
            "load",
            s(&crate::repo_root().join("sample-data/generated/v2")),
        ])
        .args(["--out", s(&out), "--no-report", "--json"])
        .output()
        .expect("load runs");
    let loaded = ok(&loaded);
    let run_id = loaded["run_id"].as_str().expect("run id").to_owned();
    // A reload that refuses (exit 2) and leaves the database as it was; its stderr.
    let refused_reload = || -> String {
        let db_before = fs::read(out.join("claimline.sqlite")).expect("db");
        let refused = Command::new(env!("CARGO_BIN_EXE_claimline"))
            .args(["reload", "--out", s(&out)])
            .output()
            .expect("reload runs");
        assert_eq!(refused.status.code(), Some(2));
        assert_eq!(
            fs::read(out.join("claimline.sqlite")).expect("db"),
            db_before
        );
        String::from_utf8_lossy(&refused.stderr).into_owned()
    };
    let stderr = refused_reload();
    assert!(
        stderr.contains(&format!(
            "hold run(s) {run_id} that claimline run did not make"
        )),
        "{stderr}"
    );

    // An export a rebuild needs is gone (removed by hand, or by an older claimline's --keep):
    // reload refuses and leaves every table as it was.
    let st = state(&out);
    let first = st["runs"][0]["export"].as_str().expect("export").to_owned();
    fs::remove_dir_all(out.join(&first)).expect("rm");
    let stderr = refused_reload();
    assert!(stderr.contains("cannot be rebuilt"), "{stderr}");
    assert!(
        stderr.contains(st["runs"][0]["run_id"].as_str().expect("id")),
        "{stderr}"
    );
}

/// The quick start's demo: a seeded synthetic export with CMS's samples fills every CCLF table
/// (the counts are pinned: the demo is deterministic), and its synthetic part adds no row error
/// to the samples' own three (their `IGNORED_FIELD` placeholders).
#[test]
fn the_demo_fills_every_cclf_table_and_real_serves_the_samples_alone() {
    let work = tempfile::tempdir().expect("work");
    let go = |flag: &str, out: &str| {
        ok(&Command::new(env!("CARGO_BIN_EXE_claimline"))
            .current_dir(work.path())
            .args(["run", flag, "--out", out, "--json"])
            .env_remove("BCDA_CLIENT_ID")
            .env_remove("BCDA_CLIENT_SECRET")
            .env_remove("CLAIMLINE_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("runs"))
    };
    let demo = go("--local-sandbox", "demo-out");
    let tables = &demo["load"]["tables"];
    let pinned = [
        ("cclf1", 50),
        ("cclf2", 314),
        ("cclf3", 58),
        ("cclf4", 252),
        ("cclf5", 896),
        ("cclf6", 55),
        ("cclf7", 388),
        ("cclf8", 201),
        ("cclf9", 84),
        ("cclfa", 50),
        // Carrier lines only, as cclf5 (DME lines were CCLFB rows before the thirty-first round).
        ("cclfb", 896),
    ];
    for (table, rows) in pinned {
        assert_eq!(tables[table], rows, "{table}: {tables}");
    }
    assert_eq!(demo["fetch"]["resources"]["ExplanationOfBenefit"], 774);
    assert!(
        demo["load"]["history"]["superseded"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let real = go("--local-sandbox=real", "real-out");
    assert_eq!(real["fetch"]["resources"]["ExplanationOfBenefit"], 9);
    assert_eq!(real["load"]["tables"]["cclf1"], 1);
    assert_eq!(real["row_errors"], 3);
    assert_eq!(
        demo["row_errors"], real["row_errors"],
        "none from the synthetic part"
    );
    assert!(
        work.path()
            .join("demo-out/.claimline-demo/v2/cms-samples")
            .is_dir()
    );
    // Every file the demo wrote is owner-only (the samples' copies kept their source's mode).
    use std::os::unix::fs::PermissionsExt;
    let demo_out = work.path().join("demo-out");
    for file in crate::tree(&demo_out).keys() {
        let mode = fs::metadata(demo_out.join(file))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{} is owner-only", file.display());
    }
}

#[test]
fn local_sandbox_runs_the_whole_flow_on_the_bundled_samples() {
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("claimline-out");
    let go = || {
        Command::new(env!("CARGO_BIN_EXE_claimline"))
            .current_dir(work.path())
            .args([
                "run",
                "--local-sandbox=real",
                "--out",
                "claimline-out",
                "--json",
            ])
            .env_remove("BCDA_CLIENT_ID")
            .env_remove("BCDA_CLIENT_SECRET")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let first = ok(&go());
    assert_eq!(first["committed"], true);
    assert_eq!(first["fetch"]["resources"]["ExplanationOfBenefit"], 9);
    assert!(out.join("claimline.sqlite").is_file());
    let second = ok(&go());
    assert_eq!(second["since"], first["transaction_time"]);
    assert_eq!(second["committed"], true);
}

#[test]
fn row_errors_keep_since_unless_accepted() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    // One claim whose lastUpdated is BFD's placeholder: a row error in `_last_updated`.
    let mut bad = eob(
        &template("ExplanationOfBenefit-carrier.ndjson"),
        "eob-bad",
        0,
        424_242,
        "x",
    );
    bad["meta"]["lastUpdated"] = json!("IGNORED_FIELD");
    write_lines(&data.path().join("bad.ndjson"), &[bad]);
    let bcda = sandbox(data.path(), |_| {});
    let work = tempfile::tempdir().expect("work");
    let out = work.path().join("out");

    for attempt in 0..2 {
        let refused = run(bcda.url(), &out, &[]).output().expect("runs");
        assert_eq!(refused.status.code(), Some(4), "attempt {attempt}");
        // One line on stderr, as every failure (there was none).
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("claimline: _since not committed:"),
            "{stderr}"
        );
        let report: Value = serde_json::from_slice(&refused.stdout).expect("JSON");
        assert_eq!(report["since"], Value::Null, "the same _since again");
        assert_eq!(report["committed"], false);
        assert!(report["row_errors"].as_u64().expect("count") > 0);
        assert!(
            report["not_committed"]
                .as_str()
                .expect("why")
                .contains("--accept-rejects")
        );
        let st = state(&out);
        assert_eq!(st["scopes"][0]["since"], Value::Null);
        assert_eq!(st["scopes"][0]["pending"], Value::Null, "the run finished");
        assert_eq!(query::<i64>(&out, "SELECT count(*) FROM eob"), 5, "loaded");
    }
    let accepted = ok(&run(bcda.url(), &out, &["--accept-rejects"])
        .output()
        .expect("runs"));
    assert_eq!(accepted["committed"], true);
    assert_eq!(
        state(&out)["scopes"][0]["since"],
        accepted["transaction_time"]
    );
}

/// `--metrics FILE`: a Prometheus text file a scheduler's monitoring reads, written after a
/// success and after a failure (which keeps the last success time).
#[test]
fn metrics_are_written_for_success_and_failure() {
    fn samples(path: &Path) -> std::collections::BTreeMap<String, f64> {
        let text = fs::read_to_string(path).expect("metrics");
        let mut out = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, value) = line.rsplit_once(' ').expect("name value");
            assert!(name.contains("job=\"run\""), "{line}");
            out.insert(name.to_owned(), value.parse::<f64>().expect("a number"));
        }
        out
    }
    let work = tempfile::tempdir().expect("work");
    let metrics = work.path().join("claimline.prom");
    let ok_run = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(work.path())
        .args(["run", "--local-sandbox", "--out", "out", "--metrics"])
        .arg(&metrics)
        .env_remove("CLAIMLINE_FAULT")
        .env_remove("CLAIMLINE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(
        ok_run.status.success(),
        "{}",
        String::from_utf8_lossy(&ok_run.stderr)
    );
    let first = samples(&metrics);
    assert_eq!(first["claimline_last_run_success{job=\"run\"}"], 1.0);
    assert_eq!(first["claimline_since_committed{job=\"run\"}"], 1.0);
    assert!(first["claimline_rows{job=\"run\",table=\"cclf1\"}"] >= 1.0);
    assert_eq!(first["claimline_rejects{job=\"run\"}"], 0.0);
    assert!(first.contains_key("claimline_duration_seconds{job=\"run\",phase=\"total\"}"));
    assert!(first.contains_key("claimline_duration_seconds{job=\"run\",phase=\"load\"}"));
    // The load's own phases, which together are no more than the load.
    let phases: f64 = ["setup", "scan", "history", "commit", "current"]
        .iter()
        .map(|p| first[&format!("claimline_load_phase_seconds{{job=\"run\",phase=\"{p}\"}}")])
        .sum();
    assert!(phases > 0.0);
    assert!(phases <= first["claimline_duration_seconds{job=\"run\",phase=\"load\"}"]);
    assert!(first["claimline_resources{job=\"run\",type=\"ExplanationOfBenefit\"}"] >= 1.0);
    assert!(first["claimline_resources{job=\"run\",type=\"Patient\"}"] >= 1.0);
    assert!(first["claimline_input_bytes{job=\"run\",form=\"disk\"}"] > 0.0);
    assert!(
        first["claimline_input_bytes{job=\"run\",form=\"ndjson\"}"]
            >= first["claimline_input_bytes{job=\"run\",form=\"disk\"}"]
    );
    assert_eq!(first["claimline_damaged_files{job=\"run\"}"], 0.0);
    // The bundled CMS samples hold placeholder values that are row errors by design.
    assert!(first["claimline_row_errors{job=\"run\"}"] >= 1.0);
    let success_at = first["claimline_last_success_timestamp_seconds{job=\"run\"}"];
    // A failure: BCDA's January blackout.
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    let bcda = sandbox(data.path(), |c| c.blackout = true);
    let failed = run(
        bcda.url(),
        &work.path().join("out2"),
        &["--metrics", s(&metrics)],
    )
    .output()
    .expect("runs");
    assert_eq!(failed.status.code(), Some(7));
    let second = samples(&metrics);
    assert_eq!(second["claimline_last_run_success{job=\"run\"}"], 0.0);
    assert_eq!(second["claimline_last_run_exit_code{job=\"run\"}"], 7.0);
    assert_eq!(
        second["claimline_last_success_timestamp_seconds{job=\"run\"}"],
        success_at
    );
    let text = fs::read_to_string(&metrics).expect("metrics");
    assert!(!text.contains(MBI) && !text.contains(SECRET));
}

/// `--log-format json`: one JSON object per step, with the run id, the phase, counts and
/// durations, and never a record's value.
#[test]
fn the_log_can_be_json_lines() {
    let work = tempfile::tempdir().expect("work");
    let log = work.path().join("run.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(work.path())
        .args([
            "run",
            "--local-sandbox=real",
            "--out",
            "out",
            "--log-format",
            "json",
            "--log",
        ])
        .arg(&log)
        .env_remove("CLAIMLINE_FAULT")
        .env_remove("CLAIMLINE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&log).expect("log");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let phases: Vec<&str> = entries.iter().filter_map(|e| e["phase"].as_str()).collect();
    for phase in ["run", "fetch", "load", "commit"] {
        assert!(phases.contains(&phase), "{phases:?}");
    }
    let run_id = entries.last().expect("entries")["run_id"]
        .as_str()
        .expect("run id");
    assert!(entries.iter().skip(1).all(|e| e["run_id"] == run_id));
    let load = entries.iter().find(|e| e["phase"] == "load").expect("load");
    assert!(load["tables"]["cclf1"].as_u64().expect("rows") >= 1);
    assert!(load["seconds"].as_f64().is_some());
    let fetch = entries
        .iter()
        .find(|e| e["phase"] == "fetch")
        .expect("fetch");
    assert_eq!(fetch["resources"]["ExplanationOfBenefit"], 9);
    assert!(!text.contains("Patient/") && !text.contains("\"identifier\""));

    // A failed run logs an `error` line with its exit code (BCDA's blackout: 7).
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 2);
    let bcda = sandbox(data.path(), |c| c.blackout = true);
    let failed = run(
        bcda.url(),
        &work.path().join("out2"),
        &["--log-format", "json", "--log", s(&log)],
    )
    .output()
    .expect("runs");
    assert_eq!(failed.status.code(), Some(7));
    let text = fs::read_to_string(&log).expect("log");
    let last: Value =
        serde_json::from_str(text.lines().last().expect("a line")).expect("a JSON line");
    assert_eq!(last["phase"], "error", "{last}");
    assert_eq!(last["exit_code"], 7, "{last}");
    assert!(!text.contains(MBI) && !text.contains(SECRET));
}
