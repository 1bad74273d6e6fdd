//! `claimline synth`: a synthetic export per API version loads with the built-in views with no
//! rejects and no row errors; files are split as BCDA splits them; the same seed gives the same
//! bytes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::{claimline, json};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn synth(cwd: &Path, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["synth", "--out", s(out), "--json"];
    args.extend_from_slice(extra);
    let run = claimline(cwd, &args);
    assert!(
        run.status.success(),
        "synth failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    json(&run)
}

/// Every file of an export folder (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside").to_string_lossy();
                out.insert(rel.into_owned(), std::fs::read(&path).expect("read"));
            }
        }
    }
    out
}

#[test]
fn every_version_loads_with_no_rejects_and_no_row_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for version in ["v1", "v2", "v3"] {
        let export = tmp.path().join(format!("export-{version}"));
        let report = synth(
            tmp.path(),
            &export,
            &[
                "--benes",
                "4",
                "--years",
                "2",
                "--version",
                version,
                "--seed",
                "11",
            ],
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(export.join("manifest.json")).expect("manifest"))
                .expect("manifest JSON");
        let request = manifest["request"].as_str().expect("request");
        assert!(
            request.contains(&format!("/api/{version}/Group/all/$export")),
            "{request}"
        );
        assert!(manifest["transactionTime"].is_string());

        let out = tmp.path().join(format!("out-{version}"));
        let load = claimline(
            tmp.path(),
            &["load", s(&export), "--out", s(&out), "--json"],
        );
        assert!(
            load.status.success(),
            "{version}: load failed: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        let loaded = json(&load);
        assert_eq!(loaded["rejects"]["count"], 0, "{version}: {loaded}");
        assert_eq!(loaded["row_errors"]["count"], 0, "{version}: {loaded}");
        // Every claim's beneficiary resolves to an MBI through the export's Patients.
        assert_eq!(
            loaded["beneficiaries"]["unresolved_claims"], 0,
            "{version}: {loaded}"
        );
        for t in ["ExplanationOfBenefit", "Patient", "Coverage"] {
            assert_eq!(
                loaded["resources"][t], report["resources"][t],
                "{version} {t}"
            );
        }
        assert_eq!(report["resources"]["Patient"], 4);
        let eobs = report["resources"]["ExplanationOfBenefit"]
            .as_u64()
            .expect("count");
        // Two years of about 35–75 claims per beneficiary.
        assert!(
            (4 * 2 * 33..=4 * 2 * 80).contains(&eobs),
            "{version}: {eobs} EOBs"
        );
        let tables = loaded["tables"].as_object().expect("tables");
        let rows: u64 = tables.values().filter_map(Value::as_u64).sum();
        assert!(rows > eobs, "{version}: {loaded}");
    }
}

#[test]
fn claim_types_versions_and_mbis_look_like_bcda() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let export = tmp.path().join("export");
    synth(
        tmp.path(),
        &export,
        &["--benes", "6", "--years", "3", "--seed", "5"],
    );
    let mut claim_types = BTreeMap::<String, u64>::new();
    let mut groups = BTreeMap::<String, Vec<String>>::new();
    let text =
        std::fs::read_to_string(export.join("ExplanationOfBenefit.000.ndjson")).expect("EOB file");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        for c in v["type"]["coding"].as_array().expect("codings") {
            if c["system"] == "https://bluebutton.cms.gov/resources/codesystem/eob-type" {
                *claim_types
                    .entry(c["code"].as_str().expect("code").to_owned())
                    .or_default() += 1;
            }
        }
        let group = v["identifier"]
            .as_array()
            .expect("identifiers")
            .iter()
            .find(|i| i["system"] == "https://bluebutton.cms.gov/resources/identifier/claim-group")
            .and_then(|i| i["value"].as_str())
            .expect("claim group")
            .to_owned();
        groups
            .entry(group)
            .or_default()
            .push(v["status"].as_str().expect("status").to_owned());
        assert!(!line.contains("IGNORED_FIELD"));
    }
    for t in ["CARRIER", "PDE", "OUTPATIENT", "DME"] {
        assert!(
            claim_types.get(t).copied().unwrap_or(0) >= 6,
            "{claim_types:?}"
        );
    }
    // Carrier claims and Part D events dominate, as in Medicare fee-for-service.
    assert!(
        claim_types["CARRIER"] > claim_types["OUTPATIENT"] * 3
            && claim_types["PDE"] > claim_types["OUTPATIENT"] * 3,
        "{claim_types:?}"
    );
    // Some groups have a cancelled version followed by the current one.
    assert!(
        groups
            .values()
            .any(|v| v == &["cancelled".to_owned(), "active".to_owned()]),
        "no cancelled and current versions"
    );

    let patients = std::fs::read_to_string(export.join("Patient.000.ndjson")).expect("Patients");
    let mut historic = 0;
    let mut mbis = std::collections::BTreeSet::new();
    for line in patients.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        for id in v["identifier"].as_array().expect("identifiers") {
            if id["system"] == "http://hl7.org/fhir/sid/us-mbi" {
                let mbi = id["value"].as_str().expect("MBI");
                assert_eq!(mbi.len(), 11, "{mbi}");
                assert!(mbis.insert(mbi.to_owned()), "MBI {mbi} repeats");
                if id.to_string().contains("historic") {
                    historic += 1;
                }
            }
        }
    }
    assert!(mbis.len() >= 6);
    assert!(historic >= 1, "no historic MBI among 6 beneficiaries");
}

#[test]
fn files_are_split_by_beneficiary_as_bcda_splits_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let export = tmp.path().join("export");
    let report = synth(
        tmp.path(),
        &export,
        &[
            "--benes",
            "101",
            "--years",
            "1",
            "--version",
            "v3",
            "--gzip",
        ],
    );
    let names: Vec<String> = files(&export).into_keys().collect();
    let eob: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("ExplanationOfBenefit."))
        .collect();
    assert_eq!(
        eob,
        [
            "ExplanationOfBenefit.000.ndjson.gz",
            "ExplanationOfBenefit.001.ndjson.gz",
            "ExplanationOfBenefit.002.ndjson.gz"
        ]
    );
    assert!(names.contains(&"Patient.000.ndjson.gz".to_owned()));
    assert!(names.contains(&"Coverage.000.ndjson.gz".to_owned()));
    assert_eq!(report["files"], 5);
    // v3 exports carry BCDA's warnings-and-info OperationOutcome in `error`.
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("errors/OperationOutcome."))
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(export.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    assert_eq!(manifest["output"].as_array().expect("output").len(), 5);
    assert_eq!(manifest["error"].as_array().expect("error").len(), 1);
    // The last EOB file (one beneficiary's claims) reads cleanly.
    let scan = claimline(
        tmp.path(),
        &[
            "scan",
            s(&export.join("ExplanationOfBenefit.002.ndjson.gz")),
            "--json",
        ],
    );
    let scanned = json(&scan);
    assert_eq!(scanned["rejects"]["count"], 0, "{scanned}");
    assert_eq!(report["resources"]["Coverage"], 505);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = [
        "--benes",
        "3",
        "--years",
        "1",
        "--version",
        "v1",
        "--seed",
        "9",
    ];
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    synth(tmp.path(), &a, &args);
    synth(tmp.path(), &b, &args);
    synth(
        tmp.path(),
        &c,
        &[
            "--benes",
            "3",
            "--years",
            "1",
            "--version",
            "v1",
            "--seed",
            "10",
        ],
    );
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert!(fa == fb, "same seed gave different bytes");
    assert!(
        fa["ExplanationOfBenefit.000.ndjson"] != fc["ExplanationOfBenefit.000.ndjson"],
        "another seed gave the same claims"
    );
}

#[test]
fn refuses_a_folder_that_holds_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("keep.txt"), "x").expect("write");
    let run = claimline(
        tmp.path(),
        &["synth", "--benes", "1", "--out", s(tmp.path())],
    );
    assert_eq!(run.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&run.stderr).contains("not empty"));
    assert!(tmp.path().join("keep.txt").exists());
}
