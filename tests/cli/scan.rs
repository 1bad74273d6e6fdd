//! `claimline scan` on the bundled real records and on bad input.

use std::io::Write;

use crate::{claimline, claimline_env, json, sample_data};

#[test]
fn scan_counts_every_real_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sample_data();
    let out = claimline(
        dir.path(),
        &["scan", "--json", data.to_str().expect("utf-8")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    // sample-data/real/SOURCES.md: 177 STU3 + R4 resources, 25 v3 resources.
    assert_eq!(r["resources"]["ExplanationOfBenefit"], 10 + 9 + 13);
    assert_eq!(r["resources"]["Patient"], 101 + 1 + 4);
    assert_eq!(r["resources"]["Coverage"], 52 + 4 + 8);
    assert_eq!(r["rejects"]["count"], 0);
    assert!(r["rejects"]["file"].is_null());
    // Every claim type, spelled three ways across v1, v2 and v3, is recognised.
    let ct = &r["claim_types"];
    assert_eq!(ct["CARRIER"], 3 + 2 + 1);
    assert_eq!(ct["OUTPATIENT"], 1 + 1 + 2);
    assert_eq!(ct["SNF"], 1 + 1 + 3);
    assert_eq!(ct["PDE"], 1 + 1 + 2);
    assert_eq!(ct["PRIOR_AUTH"], 1);
    assert!(ct.get("unknown").is_none(), "{ct}");
    // Versions per file, decided from shape alone (no manifest here).
    let version_of = |suffix: &str| {
        r["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"].as_str().expect("path").ends_with(suffix))
            .map(|f| f["api_version"].clone())
            .expect("file listed")
    };
    assert_eq!(version_of("stu3/Patient.ndjson"), "v1");
    assert_eq!(version_of("r4/ExplanationOfBenefit-pde.ndjson"), "v2");
    assert_eq!(version_of("v3/Patient.ndjson"), "v3");
    assert_eq!(version_of("v3/ExplanationOfBenefit-priorauth.ndjson"), "v3");
    // v3's merged Patient has no marks of its own: it takes the version its file agrees on.
    assert!(
        r["api_versions"].get("unknown").is_none(),
        "{}",
        r["api_versions"]
    );
    assert!(r["seconds"].as_f64().expect("seconds") > 0.0);
    // Nothing was written for a clean run.
    assert!(!dir.path().join("claimline-rejects.ndjson").exists());
}

#[test]
fn scan_table_names_files_and_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sample_data().join("r4");
    let out = claimline(dir.path(), &["scan", data.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ExplanationOfBenefit-carrier.ndjson"),
        "{text}"
    );
    assert!(
        text.contains("resources: 14 (Coverage 4, ExplanationOfBenefit 9, Patient 1)"),
        "{text}"
    );
    assert!(text.contains("rejects: 0"), "{text}");
    assert!(text.contains("MB/s"), "{text}");
}

fn bad_input(dir: &std::path::Path) -> std::path::PathBuf {
    let good = std::fs::read_to_string(sample_data().join("r4/Patient.ndjson")).expect("sample");
    let path = dir.join("bad.ndjson.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(good.as_bytes()).expect("gzip");
    enc.write_all(b"{\"resourceType\":\"Patient\",\"id\":\n")
        .expect("gzip");
    enc.write_all(b"\n[\"not\",\"an\",\"object\"]\r\n")
        .expect("gzip");
    enc.write_all(good.as_bytes()).expect("gzip");
    std::fs::write(&path, enc.finish().expect("gzip")).expect("write");
    path
}

#[test]
fn bad_lines_are_counted_and_kept_in_the_rejects_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = bad_input(dir.path());
    let rejects = dir.path().join("rej.ndjson");
    let out = claimline(
        dir.path(),
        &[
            "scan",
            "--json",
            "--rejects",
            rejects.to_str().expect("utf-8"),
            input.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["resources"]["Patient"], 2);
    assert_eq!(r["rejects"]["count"], 2);
    assert_eq!(r["files"][0]["lines"], 5);
    assert_eq!(r["files"][0]["blank_lines"], 1);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&rejects)
        .expect("rejects file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["kind"], "invalid_json");
    assert_eq!(lines[0]["raw"], "{\"resourceType\":\"Patient\",\"id\":");
    assert_eq!(lines[1]["line"], 4);
    assert_eq!(lines[1]["kind"], "not_an_object");
    assert!(
        lines[1]["file"]
            .as_str()
            .expect("file")
            .ends_with("bad.ndjson.gz")
    );
    // PHI stays out of the terminal: no line content on stdout or stderr.
    let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    assert!(!String::from_utf8_lossy(&all).contains("567834"));
}

#[test]
fn strict_mode_exits_4_and_unreadable_input_exits_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = bad_input(dir.path());
    let out = claimline(
        dir.path(),
        &["scan", "--strict", input.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.ndjson.gz:2"));
    let out = claimline(dir.path(), &["scan", "no/such/file.ndjson"]);
    assert_eq!(out.status.code(), Some(3));
    let out = claimline(dir.path(), &["scan"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn truncated_gzip_is_reported_as_such() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = std::fs::read(sample_data().join("stu3/Patient.ndjson")).expect("sample");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&data).expect("gzip");
    let gz = enc.finish().expect("gzip");
    let path = dir.path().join("Patient.000.ndjson.gz");
    std::fs::write(&path, &gz[..gz.len() * 2 / 3]).expect("write");
    let out = claimline(
        dir.path(),
        &["scan", "--json", path.to_str().expect("utf-8")],
    );
    // A damaged file is not a success: exit 4, and the file is named with how far it was read.
    assert_eq!(out.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Patient.000.ndjson.gz: damaged (truncated_gzip"),
        "{stderr}"
    );
    let r = json(&out);
    assert_eq!(r["files"][0]["truncated"], true);
    assert_eq!(r["files"][0]["damaged"]["kind"], "truncated_gzip");
    assert_eq!(r["rejects"]["count"], 1);
    let rejects =
        std::fs::read_to_string(dir.path().join("claimline-rejects.ndjson")).expect("rejects");
    assert!(rejects.contains("truncated_gzip"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("claimline-rejects.ndjson"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `claimline views doc | head`: the reader closing stdout is no failure (no "Broken pipe",
/// exit 0). The dictionary is larger than a pipe's buffer, so the writer meets the closed pipe.
#[test]
fn a_closed_stdout_ends_quietly() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(dir.path())
        .args(["views", "doc"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read one byte, then close the pipe, as `head -c 1` does.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut one = [0u8; 1];
    stdout.read_exact(&mut one).expect("first byte");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// Under `--json` a failure prints an error document (code, message, file), and the message
/// names each cause once.
#[test]
fn a_failure_under_json_prints_an_error_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = claimline(dir.path(), &["scan", "--json", "missing.ndjson"]);
    assert_eq!(out.status.code(), Some(3));
    let doc = json(&out);
    assert_eq!(doc["error"]["code"], 3);
    assert_eq!(doc["error"]["file"], "missing.ndjson");
    let message = doc["error"]["message"].as_str().expect("message");
    assert_eq!(message.matches("os error 2").count(), 1, "{message}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

/// Issue 17: a resource without marks of its own (v3's merged-beneficiary Patient: `id` and
/// `link` only) takes the version its file agrees on, else its folder's; in a folder that mixes
/// versions it stays undecided, and each file is reported with its own version.
#[test]
fn unmarked_resources_take_the_version_their_file_or_folder_agrees_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let merged = std::fs::read_to_string(sample_data().join("v3/Patient.ndjson"))
        .expect("sample")
        .lines()
        .find(|l| !l.contains("\"meta\""))
        .expect("the merged Patient")
        .to_owned();
    let scan = |folder: &std::path::Path| {
        let r = claimline(
            dir.path(),
            &["scan", folder.to_str().expect("utf-8"), "--json"],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        serde_json::from_slice::<serde_json::Value>(&r.stdout).expect("JSON")
    };
    let v3 = dir.path().join("v3");
    std::fs::create_dir(&v3).expect("mkdir");
    std::fs::write(v3.join("Patient-merged.ndjson"), format!("{merged}\n")).expect("write");
    // Alone, nothing tells its version.
    assert_eq!(scan(&v3)["api_versions"]["unknown"], 1);
    // Beside a v3 file, the folder agrees on v3.
    std::fs::copy(
        sample_data().join("v3/Coverage.ndjson"),
        v3.join("Coverage.ndjson"),
    )
    .expect("copy");
    let r = scan(&v3);
    assert!(r["api_versions"].get("unknown").is_none(), "{r}");
    // A folder that also holds v2 agrees on nothing: the unmarked Patient stays undecided, and
    // every file is reported with its own version.
    std::fs::copy(
        sample_data().join("r4/Coverage.ndjson"),
        v3.join("Coverage-r4.ndjson"),
    )
    .expect("copy");
    let r = scan(&v3);
    assert_eq!(r["api_versions"]["unknown"], 1, "{r}");
    let version_of = |name: &str| {
        r["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["path"].as_str().expect("path").ends_with(name))
            .map(|f| f["api_version"].clone())
            .expect("file listed")
    };
    assert_eq!(version_of("/Coverage.ndjson"), "v3");
    assert_eq!(version_of("/Coverage-r4.ndjson"), "v2");
}

/// A command that succeeds ends at once (`_exit`: no `atexit` handler runs), unless
/// `LLVM_PROFILE_FILE` says the build counts for profile-guided optimization (`benches/pgo.sh`):
/// then it ends the usual way, its handlers run and the counts are written. mimalloc's
/// statistics (`MIMALLOC_SHOW_STATS`), printed by its own handler at exit, tell the two ends
/// apart; the output and the status are the same either way.
#[cfg(unix)]
#[test]
fn a_counting_build_ends_the_usual_way_with_the_same_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = sample_data();
    let args = ["scan", "--json", data.to_str().expect("utf-8")];
    let counts = dir.path().join("%m_%p.profraw");
    // (Not the test process's own `LLVM_PROFILE_FILE`, which a coverage run sets.)
    let fast = std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
        .current_dir(dir.path())
        .args(args)
        .env("MIMALLOC_SHOW_STATS", "1")
        .env_remove("LLVM_PROFILE_FILE")
        .output()
        .expect("the claimline binary runs");
    let usual = claimline_env(
        dir.path(),
        &args,
        &[
            ("MIMALLOC_SHOW_STATS", "1"),
            ("LLVM_PROFILE_FILE", counts.to_str().expect("utf-8")),
        ],
    );
    for out in [&fast, &usual] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stats = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).contains("peak");
    assert!(
        !stats(&fast),
        "the allocator's exit handler ran after `_exit`"
    );
    assert!(
        stats(&usual),
        "no exit handler ran with LLVM_PROFILE_FILE set"
    );
    let (mut a, mut b) = (json(&fast), json(&usual));
    // (Only the timing differs between the two runs.)
    for r in [&mut a, &mut b] {
        for k in ["seconds", "mb_per_s", "resources_per_s"] {
            r.as_object_mut().expect("report").remove(k);
        }
    }
    assert_eq!(a, b);
}
