//! `claimline sandbox` and `claimline fetch` end to end: a fetch killed with SIGKILL in the middle
//! of its downloads, then rerun, ends with files byte-identical to an uninterrupted run; failures
//! map to the documented exit codes and never print the secret.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const ID: &str = "e2e-client";
pub(crate) const SECRET: &str = "e2e-Secret-9f8e7d-do-not-print";

/// Kills the child (a sandbox) when the test ends, however it ends.
pub(crate) struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `benes` beneficiaries with incompressible filler, so that files take a moment to serve.
pub(crate) fn make_data(dir: &Path, benes: usize) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = || {
        let mut s = String::new();
        for _ in 0..24 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push_str(&format!("{state:016x}"));
        }
        s
    };
    let mut text = String::new();
    for b in 0..benes {
        text.push_str(&format!(
            "{{\"resourceType\":\"Patient\",\"id\":\"p{b}\",\"text\":\"{}\"}}\n",
            noise()
        ));
        text.push_str(&format!(
            "{{\"resourceType\":\"Coverage\",\"id\":\"c{b}\",\"beneficiary\":{{\"reference\":\"Patient/p{b}\"}}}}\n"
        ));
        for c in 0..2 {
            text.push_str(&format!(
                "{{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"e{b}-{c}\",\"patient\":{{\"reference\":\"Patient/p{b}\"}},\"text\":\"{}\"}}\n",
                noise()
            ));
        }
    }
    fs::write(dir.join("export.ndjson"), text).expect("write data");
}

/// Starts `claimline sandbox` and returns it with its URL (its first stdout line).
pub(crate) fn sandbox(data: &Path, extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["sandbox", "--data"])
        .arg(data)
        .args(["--retry-after", "0", "--polls", "2"])
        .args(extra)
        .env("BCDA_CLIENT_ID", ID)
        .env("BCDA_CLIENT_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("claimline sandbox starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut url = String::new();
    BufReader::new(stdout)
        .read_line(&mut url)
        .expect("the sandbox prints its URL");
    let url = url.trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (Running(child), url)
}

/// `claimline fetch` of everything from `url` into `out`.
pub(crate) fn fetch(url: &str, out: &Path, secret: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_claimline"));
    command
        .args([
            "fetch",
            "--base-url",
            url,
            "--api",
            "v2",
            "--endpoint",
            "group/all",
        ])
        .args([
            "--poll-interval",
            "0.02",
            "--retry-wait",
            "0.01",
            "--json",
            "--out",
        ])
        .arg(out)
        .env("BCDA_CLIENT_ID", ID)
        .env("BCDA_CLIENT_SECRET", secret)
        .stdin(Stdio::null());
    command
}

pub(crate) fn report(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "fetch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("fetch --json prints JSON")
}

/// Data files of an export folder (hidden work folder and manifest aside), name → bytes.
pub(crate) fn data_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "gz") {
            let name = path.strip_prefix(dir).expect("relative").to_path_buf();
            files.insert(name, fs::read(&path).expect("read"));
        }
    }
    files
}

/// The bytes of `.part` files in the export's work folder.
fn part_bytes(out: &Path) -> u64 {
    fs::read_dir(out.join(".claimline/tmp"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn fetch_killed_mid_download_resumes_to_byte_identical_files() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 160);
    // 40 KB/s per download: each file arrives in many small pieces, so the fault point below
    // stops the fetch with a file half-written.
    let (_sandbox, url) = sandbox(data.path(), &["--rate", "40000"]);
    let work = tempfile::tempdir().expect("work");

    let reference = work.path().join("reference");
    let first = report(
        &fetch(&url, &reference, SECRET)
            .output()
            .expect("fetch runs"),
    );
    assert_eq!(first["reattached"], false);
    let expected = data_files(&reference);
    assert_eq!(
        expected.len(),
        6,
        "4 EOB files (50 benes each), Patient, Coverage"
    );

    let out = work.path().join("interrupted");
    // Killed at an exact step: the second piece of a download is on disk, the rest is not.
    let killed = fetch(&url, &out, SECRET)
        .env("CLAIMLINE_FAULT", "fetch.chunk@2")
        .output()
        .expect("fetch runs");
    crate::crash::killed_at(&killed, "fetch.chunk");
    assert!(part_bytes(&out) > 0, "a partial download is kept");
    assert!(!out.join("manifest.json").exists(), "killed before the end");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join(".claimline/state.json")).expect("state saved"))
            .expect("state is JSON");
    let job_url = state["job_url"].as_str().expect("job URL saved").to_owned();

    let rerun = report(&fetch(&url, &out, SECRET).output().expect("fetch runs"));
    assert_eq!(rerun["reattached"], true);
    assert_eq!(
        rerun["job_url"],
        job_url.as_str(),
        "the same job, not a new one"
    );
    assert_eq!(
        data_files(&out),
        expected,
        "byte-identical to the uninterrupted run"
    );
    assert_eq!(part_bytes(&out), 0);
    assert_eq!(rerun["resources"]["ExplanationOfBenefit"], 320);
}

#[test]
fn fetch_exit_codes_and_no_secret_in_output() {
    let data = tempfile::tempdir().expect("data");
    make_data(data.path(), 3);
    let work = tempfile::tempdir().expect("work");

    let (_sandbox, url) = sandbox(data.path(), &[]);
    let refused = fetch(&url, &work.path().join("a"), "wrong-secret")
        .output()
        .expect("fetch runs");
    assert_eq!(
        refused.status.code(),
        Some(6),
        "bad credentials: BCDA refused"
    );

    let (_failing, failing_url) = sandbox(data.path(), &["--fail-jobs"]);
    let failed = fetch(&failing_url, &work.path().join("b"), SECRET)
        .output()
        .expect("fetch runs");
    assert_eq!(failed.status.code(), Some(7), "failed job: try later");

    let (_blackout, blackout_url) = sandbox(data.path(), &["--blackout"]);
    let blackout = fetch(&blackout_url, &work.path().join("e"), SECRET)
        .output()
        .expect("fetch runs");
    assert_eq!(
        blackout.status.code(),
        Some(7),
        "January blackout: try later"
    );

    let plain = Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["fetch", "--base-url", "http://bcda.example", "--api", "v2"])
        .args(["--endpoint", "patient", "--out"])
        .arg(work.path().join("c"))
        .env("BCDA_CLIENT_ID", ID)
        .env("BCDA_CLIENT_SECRET", SECRET)
        .output()
        .expect("fetch runs");
    assert_eq!(plain.status.code(), Some(2), "plain HTTP to a remote host");

    let ok = fetch(&url, &work.path().join("d"), SECRET)
        .output()
        .expect("fetch runs");
    report(&ok);
    for output in [&refused, &failed, &blackout, &plain, &ok] {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text.contains(SECRET) && !text.contains("wrong-secret"),
                "{text}"
            );
        }
    }
}
