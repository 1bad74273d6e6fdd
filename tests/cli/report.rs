//! The HTML run report: written by every committed `load` (and `run`), its numbers checked
//! against the SQLite tables, no MBI or resource id in it, and a real headless browser
//! (Debian's `chromium`, installed by `.ci/run`) rendering it to a PNG without console errors.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{claimline, current_claims, json};

/// The values of attribute `name` on the elements that also carry `having` (`data-x="…"`), in
/// document order.
fn attr_values<'a>(html: &'a str, element_start: &str, name: &str) -> Vec<&'a str> {
    html.match_indices(element_start)
        .filter_map(|(at, _)| {
            let tag = &html[at..at + html[at..].find('>')?];
            let key = format!("{name}=\"");
            let from = tag.find(&key)? + key.len();
            Some(&tag[from..from + tag[from..].find('"')?])
        })
        .collect()
}

fn sqlite_strings(db: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut stmt = conn.prepare(sql).expect("sql");
    stmt.query_map([], |r| r.get::<_, Option<String>>(0))
        .expect("query")
        .filter_map(|r| r.expect("row"))
        .collect()
}

#[test]
fn every_load_writes_a_report_whose_numbers_are_the_tables_and_hold_no_phi() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let export = dir.join("export");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let synth = claimline(
        dir,
        &[
            "synth",
            "--benes",
            "8",
            "--years",
            "3",
            "--seed",
            "5",
            "--out",
            &s(&export),
        ],
    );
    assert!(synth.status.success());
    let out = dir.join("out");
    // Two runs: the second is reported against the first.
    for run in ["20260101T000000.000000Z", "20260108T000000.000000Z"] {
        let loaded = claimline(
            dir,
            &["load", &s(&export), "--out", &s(&out), "--run-id", run],
        );
        assert!(
            loaded.status.success(),
            "{}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let text = String::from_utf8_lossy(&loaded.stdout).into_owned();
        assert!(
            text.contains(&format!(
                "report: {}",
                out.join(format!("reports/{run}.html")).display()
            )),
            "{text}"
        );
    }
    let page = out.join("reports/20260108T000000.000000Z.html");
    let html = std::fs::read_to_string(&page).expect("the report");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&page).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only");
    }
    // Self-contained: no script, nothing fetched.
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("<svg"));

    // Claims and paid per claim type and month = a recount of the current rows.
    let db = out.join("claimline.sqlite");
    let types = attr_values(&html, "<tr data-type=", "data-type");
    let months = attr_values(&html, "<tr data-type=", "data-month");
    let claims = attr_values(&html, "<tr data-type=", "data-claims");
    let paid = attr_values(&html, "<tr data-type=", "data-paid-cents");
    let got: BTreeMap<(String, String), (u64, i64)> = (0..types.len())
        .map(|i| {
            (
                (types[i].to_owned(), months[i].to_owned()),
                (
                    claims[i].parse().expect("n"),
                    paid[i].parse().expect("cents"),
                ),
            )
        })
        .collect();
    assert!(!got.is_empty());
    assert_eq!(got, current_claims(&db, "v2"));

    // Rows per CCLF table (coverage) = count(*) of the tables.
    let conn = rusqlite::Connection::open(&db).expect("db");
    let tables = attr_values(&html, "<tr data-table=", "data-table");
    let rows = attr_values(&html, "<tr data-table=", "data-rows");
    assert_eq!(tables.len(), 11, "every CCLF table");
    for (t, n) in tables.iter().zip(&rows) {
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!(n.parse::<i64>().ok(), Some(count), "{t}");
    }
    // The tiles: this run's record.
    let record: (i64, i64) = conn
        .query_row(
            "SELECT rejects, row_errors FROM _claimline_runs WHERE run_id = '20260108T000000.000000Z'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("run record");
    assert!(html.contains(&format!("<b data-tile=\"rejects\">{}</b>", record.0)));
    assert!(html.contains(&format!("<b data-tile=\"row-errors\">{}</b>", record.1)));
    // Against the previous run: each claim type's claims, this run and the one before.
    let moved = attr_values(&html, "<tr data-movement=", "data-movement");
    assert!(moved.contains(&"CARRIER"), "{moved:?}");
    assert!(html.contains("against run 20260101T000000.000000Z"));

    // The claim events: the second run loaded the same export again, so every version it
    // recorded is a new version of a claim the output held, none a new claim.
    let versions: i64 = conn
        .query_row(
            "SELECT count(*) FROM _claimline_claims WHERE _run_id = '20260108T000000.000000Z' AND _action = 'version'",
            [],
            |r| r.get(0),
        )
        .expect("events");
    assert!(versions > 0);
    assert!(
        html.contains("data-events=\"new-claims\" data-n=\"0\""),
        "no new claims"
    );
    assert!(html.contains(&format!(
        "data-events=\"new-versions\" data-n=\"{versions}\""
    )));

    // No PHI: no MBI, no resource id, no claim id anywhere in the page.
    let mut secrets = sqlite_strings(&db, "SELECT DISTINCT MBI FROM bene_xref");
    secrets.extend(sqlite_strings(
        &db,
        "SELECT DISTINCT _resource_id FROM cclf1",
    ));
    secrets.extend(sqlite_strings(
        &db,
        "SELECT DISTINCT _resource_id FROM cclf8",
    ));
    secrets.extend(sqlite_strings(
        &db,
        "SELECT DISTINCT CUR_CLM_UNIQ_ID FROM cclf5",
    ));
    assert!(secrets.len() > 20);
    for secret in &secrets {
        assert!(
            !html.contains(secret.as_str()),
            "the report holds a value of a claim"
        );
    }

    // `claimline report` writes the same page again; `--run` the first run's.
    let again = claimline(dir, &["report", "--out", &s(&out)]);
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&page).expect("page"), html);
    let first = claimline(
        dir,
        &[
            "report",
            "--out",
            &s(&out),
            "--run",
            "20260101T000000.000000Z",
        ],
    );
    assert!(first.status.success());
    let none = claimline(dir, &["report", "--out", &s(&out), "--run", "nope"]);
    assert_eq!(none.status.code(), Some(2));
    // --no-report writes none.
    let quiet = dir.join("quiet");
    let loaded = claimline(
        dir,
        &[
            "load",
            &s(&export),
            "--out",
            &s(&quiet),
            "--no-report",
            "--json",
        ],
    );
    let report = json(&loaded);
    assert!(!quiet.join("reports").exists(), "{report}");

    render_in_a_browser(&page);
}

/// Opens the page in Debian's headless chromium and renders it to a PNG: it must exist, not be
/// blank, and the browser must log no console error. Skipped (with the reason) only outside CI
/// when chromium is not installed.
fn render_in_a_browser(page: &Path) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs Debian's package)"
        );
        eprintln!(
            "skipped: the browser check (no /usr/bin/chromium here; apt-get install chromium)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let png = tmp.path().join("report.png");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,2400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let bytes = std::fs::read(&png).expect("the PNG");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // A blank page of this size compresses to a few KB; the report's charts and tables do not.
    assert!(
        bytes.len() > 50_000,
        "the PNG looks blank ({} bytes)",
        bytes.len()
    );
}

/// A run's saved command report that cannot be read stops `claimline report`, naming it, and the
/// page stays as it was (found by a review: the page was written again, silently, without the
/// figures the damaged file held).
#[test]
fn a_damaged_saved_report_stops_the_report_and_keeps_the_page() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let out = dir.join("out");
    let sample = super::sample_data().join("r4");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let loaded = claimline(
        dir,
        &["load", &s(&sample), "--out", &s(&out), "--run-id", "r1"],
    );
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let saved = out.join("reports/r1.json");
    let page = out.join("reports/r1.html");
    let before = std::fs::read(&page).expect("the page");
    std::fs::write(
        &saved,
        br#"{"run_id": "r1", "beneficiaries": {"with_mbi": "1EG4"#,
    )
    .expect("damage");
    let r = claimline(dir, &["report", "--out", &s(&out)]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("r1.json") && !stderr.contains("1EG4"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&page).expect("the page"), before);
}

/// A view's runtime error (here a `where` whose path is not boolean) is counted in the report
/// by its view and expression, never by the resource it failed on: a Patient's id is a
/// beneficiary's (found by a review: the report listed one line per failing Patient, its id in
/// it).
#[test]
fn a_view_error_is_reported_without_the_resource_it_failed_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let export = crate::cclf_files::synth(dir, "v2", "3", "1");
    let views = dir.join("views");
    std::fs::create_dir(&views).expect("mkdir");
    std::fs::write(
        views.join("patients.json"),
        r#"{"resourceType":"ViewDefinition","name":"patients","resource":"Patient",
            "where":[{"path":"identifier.value"}],
            "select":[{"column":[{"name":"id","path":"id","type":"id"}]}]}"#,
    )
    .expect("view");
    let out = dir.join("out");
    let loaded = claimline(
        dir,
        &[
            "load",
            &s(&export),
            "--views",
            &s(&views),
            "--format",
            "sqlite",
            "--out",
            &s(&out),
            "--run-id",
            "20260101T000000.000000Z",
            "--json",
        ],
    );
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let report = json(&loaded);
    let errors = report["row_errors"]["count"].as_u64().expect("count");
    assert_eq!(errors, 3, "one per Patient: {report:#}");
    let html = std::fs::read_to_string(out.join("reports/20260101T000000.000000Z.html"))
        .expect("the report");
    assert!(html.contains("<b data-tile=\"row-errors\">3</b>"));
    // Counted as one kind of error, three times: its view and expression name it.
    let kinds = attr_values(&html, "<tr data-what=", "data-what");
    let counts = attr_values(&html, "<tr data-what=", "data-count");
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert!(
        kinds[0].starts_with("patients.: ") && kinds[0].contains("patients.json: where[0].path: "),
        "{kinds:?}"
    );
    assert_eq!(counts, ["3"]);
    let ids: Vec<String> = std::fs::read_to_string(export.join("Patient.000.ndjson"))
        .expect("patients")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        assert!(!html.contains(id.as_str()), "the report names a Patient");
    }
    // The row-errors file (owner-only, beside the rejects) keeps which resource it was.
    let kept = std::fs::read_to_string(
        report["row_errors"]["file"]
            .as_str()
            .expect("row errors file"),
    )
    .expect("row errors");
    for id in &ids {
        assert!(
            kept.contains(id.as_str()),
            "the row errors name the resource"
        );
    }
}
