//! CCLF fixed-width files both ways: `export cclf` writes what the layouts say (checked here
//! against `cclf_layouts.csv` read on its own, and against re-blessable golden files), `load-cclf`
//! reads them back into the same rows, bad records are rejects with file and line, and
//! `reconcile` counts current claims only. Re-bless the golden files on purpose with
//! `BLESS=1 cargo test -p claimline --test cli cclf_files`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{claimline, current_claims as recount, json, repo_root, sample_data};

/// One field of the layouts CSV: name, picture, 0-based start, length.
struct Field {
    name: String,
    picture: String,
    start: usize,
    len: usize,
}

/// The layouts, read from the CSV the views were generated from: file (`CCLF1`) → fields.
fn layouts() -> BTreeMap<String, Vec<Field>> {
    let csv = std::fs::read_to_string(repo_root().join("mappings/cclf/reference/cclf_layouts.csv"))
        .expect("layouts CSV");
    let mut out: BTreeMap<String, Vec<Field>> = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let n = cols.len();
        let start: usize = cols[n - 2].parse().expect("start_pos");
        let end: usize = cols[n - 1].parse().expect("end_pos");
        out.entry(cols[0].to_owned()).or_default().push(Field {
            name: cols[1].to_owned(),
            picture: cols[3].to_owned(),
            start: start - 1,
            len: end - start + 1,
        });
    }
    out
}

/// Checks one field's bytes against its picture; `None` when they fit.
fn picture_problem(f: &Field, raw: &str) -> Option<String> {
    if raw.bytes().all(|b| b == b' ') {
        return None;
    }
    let p = f.picture.as_str();
    let ok = if p == "YYYY-MM-DD" {
        let b = raw.as_bytes();
        raw.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    } else if p.starts_with("-9(") {
        // Sign position, digits, the point where the picture puts it, digits.
        let scale = p.rsplit('.').next().map_or(0, str::len);
        let b = raw.as_bytes();
        let point = raw.len() - scale - 1;
        (b[0] == b'-' || b[0] == b' ')
            && b[point] == b'.'
            && b[1..point].iter().all(u8::is_ascii_digit)
            && b[point + 1..].iter().all(u8::is_ascii_digit)
    } else if p.starts_with('9') {
        raw.bytes().all(|b| b.is_ascii_digit())
    } else {
        // X: left-justified.
        !raw.starts_with(' ')
    };
    (!ok).then(|| format!("{} ({p}) holds {raw:?}", f.name))
}

/// The CCLF files of an export folder by file (`CCLF1`), from their CMS names.
fn exported(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("export folder").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(at) = name.find(".ZC") {
            let code = &name[at + 3..at + 4];
            // P.A<ACO>.ACO.ZC<n>Y<yy>.D<yymmdd>.T<hhmmsst>
            let parts: Vec<&str> = name.split('.').collect();
            let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
            assert!(
                parts.len() == 6
                    && parts[0] == "P"
                    && parts[1].starts_with('A')
                    && parts[2] == "ACO"
                    && parts[3].len() == 6
                    && parts[3][3..4] == *"Y"
                    && digits(&parts[3][4..], 2)
                    && parts[4].starts_with('D')
                    && digits(&parts[4][1..], 6)
                    && parts[5].starts_with('T')
                    && digits(&parts[5][1..], 7),
                "{name}: not CMS's pattern"
            );
            out.insert(format!("CCLF{code}"), e.path());
        }
    }
    out
}

/// Checks every record of every exported file against the layouts (length, every field's
/// picture) and CCLF0's counts against the files; returns the records per file.
fn check_files(dir: &Path) -> BTreeMap<String, usize> {
    let layouts = layouts();
    let files = exported(dir);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        layouts.keys().cloned().collect::<Vec<_>>(),
        "one file per CCLF file, CCLF0 included"
    );
    let mut counts = BTreeMap::new();
    for (file, path) in &files {
        let fields = &layouts[file];
        let len: usize = fields.iter().map(|f| f.len).sum();
        let text = std::fs::read_to_string(path).expect("ASCII text");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{file}: ends with a line end"
        );
        let mut n = 0;
        for (i, record) in text.lines().enumerate() {
            assert_eq!(record.len(), len, "{file} record {}: length", i + 1);
            for f in fields {
                if let Some(p) = picture_problem(f, &record[f.start..f.start + f.len]) {
                    panic!("{file} record {}: {p}", i + 1);
                }
            }
            n += 1;
        }
        counts.insert(file.clone(), n);
    }
    let summary = std::fs::read_to_string(&files["CCLF0"]).expect("CCLF0");
    for line in summary.lines() {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(parts.len(), 4, "{line}");
        assert_eq!(
            parts[2].parse::<usize>().ok(),
            counts.get(parts[0]).copied(),
            "CCLF0 counts {}",
            parts[0]
        );
        let len: usize = layouts[parts[0]].iter().map(|f| f.len).sum();
        assert_eq!(parts[3].parse::<usize>().ok(), Some(len));
    }
    assert_eq!(summary.lines().count(), 11);
    counts
}

pub(crate) fn synth(dir: &Path, version: &str, benes: &str, years: &str) -> PathBuf {
    let export = dir.join(format!("export-{version}"));
    let out = claimline(
        dir,
        &[
            "synth",
            "--benes",
            benes,
            "--years",
            years,
            "--version",
            version,
            "--seed",
            "11",
            "--out",
        ]
        .into_iter()
        .chain([export.to_str().expect("utf-8")])
        .collect::<Vec<_>>(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    export
}

fn run_ok(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = claimline(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&out)
}

/// `claimline load input --out out [extra…] --json`, which must succeed.
fn load(dir: &Path, input: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let (input, out) = (s(input), s(out));
    let mut args = vec!["load", input.as_str(), "--out", out.as_str()];
    args.extend(extra);
    args.push("--json");
    run_ok(dir, &args)
}

/// `claimline export cclf --from from --out files --aco 1234 --json`, which must succeed.
fn export_cclf(dir: &Path, from: &Path, files: &Path) -> serde_json::Value {
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    run_ok(
        dir,
        &[
            "export",
            "cclf",
            "--from",
            &s(from),
            "--out",
            &s(files),
            "--aco",
            "1234",
            "--json",
        ],
    )
}

/// The CCLF columns of a table's rows, as text, counted (order aside).
fn rows(db: &Path, table: &str) -> BTreeMap<Vec<Option<String>>, usize> {
    let fields: Vec<String> = layouts()[&table.to_ascii_uppercase()]
        .iter()
        .map(|f| format!("CAST(\"{}\" AS TEXT)", f.name))
        .collect();
    let conn = rusqlite::Connection::open(db).expect("db");
    let mut stmt = conn
        .prepare(&format!("SELECT {} FROM {table}", fields.join(", ")))
        .expect("select");
    let mut out = BTreeMap::new();
    let n = fields.len();
    let mut q = stmt.query([]).expect("query");
    while let Some(r) = q.next().expect("row") {
        let row: Vec<Option<String>> = (0..n).map(|i| r.get(i).expect("text")).collect();
        *out.entry(row).or_default() += 1;
    }
    out
}

const TABLES: [&str; 11] = [
    "cclf1", "cclf2", "cclf3", "cclf4", "cclf5", "cclf6", "cclf7", "cclf8", "cclf9", "cclfa",
    "cclfb",
];

#[test]
fn every_table_round_trips_through_cclf_files_for_every_api_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    for version in ["v1", "v2", "v3"] {
        let export = synth(dir, version, "12", "7");
        let out = dir.join(format!("out-{version}"));
        let files = dir.join(format!("files-{version}"));
        let back = dir.join(format!("back-{version}"));
        let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
        load(dir, &export, &out, &["--format", "sqlite"]);
        let report = export_cclf(dir, &out, &files);
        // Every value of every table fits its field: the tables speak CCLF.
        assert_eq!(report["rejects"], 0, "{version}: {report}");
        let counts = check_files(&files);
        let loaded = run_ok(
            dir,
            &["load-cclf", &s(&files), "--out", &s(&back), "--json"],
        );
        assert_eq!(loaded["rejects"], 0, "{version}");
        assert!(
            loaded["summary_mismatches"]
                .as_array()
                .is_some_and(Vec::is_empty)
        );
        for t in TABLES {
            let (a, b) = (
                rows(&out.join("claimline.sqlite"), t),
                rows(&back.join("claimline.sqlite"), t),
            );
            assert_eq!(
                a.values().sum::<usize>(),
                counts[&t.to_ascii_uppercase()],
                "{version} {t}"
            );
            assert!(
                !a.is_empty() || t == "cclf9",
                "{version} {t}: rows to compare"
            );
            assert!(a == b, "{version} {t}: the rows CCLF carries come back");
        }
        // The Parquet history holds the same run.
        assert!(back.join("parquet/cclf1").is_dir());
        assert!(back.join("current/cclf1").exists());
        // A Parquet-only output exports the same records (its current rows).
        let (pq, pq_files) = (
            dir.join(format!("pq-{version}")),
            dir.join(format!("pq-files-{version}")),
        );
        load(dir, &export, &pq, &["--format", "parquet"]);
        let r = export_cclf(dir, &pq, &pq_files);
        assert_eq!(r["rejects"], 0);
        let sorted = |p: &Path| {
            let mut lines: Vec<String> = std::fs::read_to_string(p)
                .expect("file")
                .lines()
                .map(str::to_owned)
                .collect();
            lines.sort();
            lines
        };
        let (a, b) = (exported(&files), exported(&pq_files));
        for (file, path) in &a {
            assert_eq!(
                sorted(path),
                sorted(&b[file]),
                "{version} {file}: Parquet = SQLite"
            );
        }
    }
}

#[test]
fn golden_files_pin_every_tables_fixed_width_output() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let export = synth(dir, "v3", "2", "1");
    let (out, files) = (dir.join("out"), dir.join("files"));
    load(dir, &export, &out, &["--run-id", "20260101T000000.000000Z"]);
    export_cclf(dir, &out, &files);
    check_files(&files);
    let golden = repo_root().join("tests/golden/cclf-files");
    for (file, path) in exported(&files) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let got = std::fs::read_to_string(&path).expect("file");
        let want_path = golden.join(format!("{file}.txt"));
        if std::env::var_os("BLESS").is_some() {
            std::fs::create_dir_all(&golden).expect("golden folder");
            std::fs::write(&want_path, format!("{name}\n{got}")).expect("bless");
            continue;
        }
        let want = std::fs::read_to_string(&want_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (BLESS=1 writes it after a review)",
                want_path.display()
            )
        });
        assert_eq!(
            format!("{name}\n{got}"),
            want,
            "{file}: re-bless with BLESS=1 after a review"
        );
    }
}

#[test]
fn values_that_do_not_fit_are_left_out_and_listed_with_their_location() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    // The real CMS samples: BFD's synthetic claim ids are negative (`-10000931498648`, not a
    // 9(13) number) and one v3 claim id is a placeholder text.
    for (sample, table, column) in [
        ("stu3", "cclf5", "CUR_CLM_UNIQ_ID"),
        ("v3", "cclf1", "CUR_CLM_UNIQ_ID"),
    ] {
        let out = dir.join(format!("out-{sample}"));
        let files = dir.join(format!("files-{sample}"));
        load(dir, &sample_data().join(sample), &out, &["--all-versions"]);
        let report = run_ok(
            dir,
            &[
                "export",
                "cclf",
                "--from",
                &s(&out),
                "--out",
                &s(&files),
                "--json",
            ],
        );
        let rejects = report["rejects"].as_u64().expect("count");
        assert!(rejects > 0, "{sample}: {report}");
        let listed = std::fs::read_to_string(files.join("claimline-export-rejects.ndjson"))
            .expect("the rejects file");
        assert_eq!(listed.lines().count() as u64, rejects);
        let hit = listed
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
            .find(|r| r["table"] == table && r["column"] == column)
            .unwrap_or_else(|| panic!("{sample}: no {table}.{column} reject in {listed}"));
        // Located by resource id and by file and line (a v3 sample EOB has no id).
        assert!(
            hit["_source_file"]
                .as_str()
                .is_some_and(|f| f.contains("ExplanationOfBenefit"))
        );
        assert!(hit["_line"].as_u64().is_some_and(|l| l > 0));
        assert!(
            hit["reason"].as_str().is_some_and(|r| r.contains("9(13)")),
            "{hit}"
        );
        // Where, and why; never the value itself (PHI in real data).
        for l in listed.lines() {
            let r: serde_json::Value = serde_json::from_str(l).expect("JSON");
            let mut keys: Vec<&String> = r.as_object().expect("object").keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                [
                    "_line",
                    "_resource_id",
                    "_run_id",
                    "_source_file",
                    "column",
                    "reason",
                    "table"
                ]
            );
        }
        // Left out, never cut: every exported record still has its layout's length.
        check_files(&files);
        // --strict makes it a failure.
        let strict = claimline(
            dir,
            &[
                "export",
                "cclf",
                "--from",
                &s(&out),
                "--out",
                &s(&files),
                "--strict",
            ],
        );
        assert_eq!(strict.status.code(), Some(4));
    }
}

#[test]
fn bad_cclf_records_are_rejects_with_file_and_line_and_zips_load_like_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let export = synth(dir, "v2", "3", "1");
    let (out, files) = (dir.join("out"), dir.join("files"));
    load(dir, &export, &out, &["--format", "sqlite"]);
    export_cclf(dir, &out, &files);
    let cclf1 = exported(&files)["CCLF1"].clone();
    let good: Vec<String> = std::fs::read_to_string(&cclf1)
        .expect("CCLF1")
        .lines()
        .take(2)
        .map(str::to_owned)
        .collect();
    let fields = &layouts()["CCLF1"];
    let at = |name: &str| fields.iter().find(|f| f.name == name).expect("field");
    let with = |record: &str, name: &str, value: &str| {
        let f = at(name);
        let mut r = record.to_owned();
        r.replace_range(f.start..f.start + f.len, &format!("{value:<w$}", w = f.len));
        r
    };
    let bad_amount = with(&good[0], "CLM_PMT_AMT", " 00000000001x3.45");
    let bad_date = with(&good[0], "CLM_FROM_DT", "2023-02-30");
    let short = &good[0][..good[0].len() - 1];
    let negative_id = with(&good[0], "CUR_CLM_UNIQ_ID", "-000000000012");
    let delivery = dir.join("delivery");
    std::fs::create_dir(&delivery).expect("folder");
    let name = "P.A1234.ACO.ZC1Y26.D260101.T0000000";
    std::fs::write(
        delivery.join(name),
        format!(
            "{}\r\n{bad_amount}\r\n{bad_date}\r\n{short}\r\n{negative_id}\r\n{}\r\n",
            good[0], good[1]
        ),
    )
    .expect("write");
    let back = dir.join("back");
    let report = run_ok(
        dir,
        &["load-cclf", &s(&delivery), "--out", &s(&back), "--json"],
    );
    assert_eq!(report["tables"]["cclf1"], 2, "{report}");
    assert_eq!(report["rejects"], 4);
    let rejects =
        std::fs::read_to_string(report["rejects_file"].as_str().expect("file")).expect("rejects");
    let found: Vec<(u64, Option<String>)> = rejects
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .map(|r| {
            assert!(r["file"].as_str().is_some_and(|f| f.ends_with(name)), "{r}");
            (
                r["line"].as_u64().expect("line"),
                r["field"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (2, Some("CLM_PMT_AMT".to_owned())),
            (3, Some("CLM_FROM_DT".to_owned())),
            (4, None),
            (5, Some("CUR_CLM_UNIQ_ID".to_owned())),
        ]
    );
    // --strict: nothing written.
    let strict_out = dir.join("strict");
    let strict = claimline(
        dir,
        &[
            "load-cclf",
            &s(&delivery),
            "--out",
            &s(&strict_out),
            "--strict",
        ],
    );
    assert_eq!(strict.status.code(), Some(4));
    assert!(!strict_out.join("claimline.sqlite").exists());

    // A zip as CMS ships them loads the same rows as the files.
    let zip_path = dir.join("delivery.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).expect("zip"));
    for path in exported(&files).values() {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .expect("member");
        std::io::Write::write_all(&mut zip, &std::fs::read(path).expect("file")).expect("write");
    }
    zip.finish().expect("zip");
    let (from_files, from_zip) = (dir.join("from-files"), dir.join("from-zip"));
    run_ok(
        dir,
        &["load-cclf", &s(&files), "--out", &s(&from_files), "--json"],
    );
    let z = run_ok(
        dir,
        &["load-cclf", &s(&zip_path), "--out", &s(&from_zip), "--json"],
    );
    assert!(
        z["files"][0]["file"]
            .as_str()
            .is_some_and(|f| f.contains("delivery.zip!P.A1234"))
    );
    for t in TABLES {
        assert_eq!(
            rows(&from_files.join("claimline.sqlite"), t),
            rows(&from_zip.join("claimline.sqlite"), t),
            "{t}"
        );
    }
    // A name that tells no table needs --table.
    let odd = dir.join("claims.txt");
    std::fs::copy(&cclf1, &odd).expect("copy");
    let refused = claimline(dir, &["load-cclf", &s(&odd), "--out", &s(&dir.join("odd"))]);
    assert_eq!(refused.status.code(), Some(2));
    let with_table = run_ok(
        dir,
        &[
            "load-cclf",
            &s(&odd),
            "--table",
            "cclf1",
            "--out",
            &s(&dir.join("odd")),
            "--json",
        ],
    );
    assert_eq!(with_table["rejects"], 0);
}

/// A `CLM_TYPE_CD` that is no CCLF code (here an MBI-like text) is `other` in `reconcile` and the
/// run report: the value could hold anything (found by a review: it was printed as it came).
#[test]
fn a_claim_type_that_is_no_cclf_code_is_never_shown() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let export = synth(dir, "v2", "2", "1");
    let eobs = export.join("ExplanationOfBenefit.000.ndjson");
    let text = std::fs::read_to_string(&eobs).expect("eobs");
    let code = r#""code":"71","display":"Local carrier non-durable"#;
    assert!(text.contains(code));
    // One claim's type an MBI-like text, another's a four-digit IDR code as v3 writes them.
    let text = text.replacen(
        code,
        r#""code":"9ZZ9ZZ9ZZ99","display":"Local carrier non-durable"#,
        1,
    );
    assert!(text.contains(code), "a second carrier claim");
    let text = text.replacen(
        code,
        r#""code":"2013","display":"Local carrier non-durable"#,
        1,
    );
    std::fs::write(&eobs, text).expect("write");
    let out = dir.join("out");
    load(dir, &export, &out, &[]);
    let plain = claimline(dir, &["reconcile", "--out", &s(&out)]);
    assert!(plain.status.success());
    let report = run_ok(dir, &["reconcile", "--out", &s(&out), "--json"]);
    let pages: Vec<PathBuf> = std::fs::read_dir(out.join("reports"))
        .expect("reports")
        .map(|e| e.expect("entry").path())
        .collect();
    for text in [
        String::from_utf8_lossy(&plain.stdout).into_owned(),
        report.to_string(),
    ]
    .into_iter()
    .chain(
        pages
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("page")),
    ) {
        assert!(!text.contains("9ZZ9ZZ9ZZ99"), "{text}");
    }
    let other: u64 = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["claim_type"] == "other")
        .map(|r| r["bcda_claims"].as_u64().expect("n"))
        .sum();
    assert_eq!(other, 1);
    assert!(
        report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .any(|r| r["claim_type"] == "2013"),
        "{report:#}"
    );
}

/// BCDA's claims are those of one API version: the newest loaded, or the one `--api` names. A
/// claim loaded from v1 and from v2 is one claim (found by a review: claims of every version
/// were grouped by claim id, so a claim of both counted once with its amounts summed twice).
#[test]
fn reconcile_compares_one_api_version() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let out = dir.join("out");
    for version in ["v1", "v2"] {
        let export = synth(dir, version, "4", "1");
        load(dir, &export, &out, &[]);
    }
    let db = out.join("claimline.sqlite");
    let rows = |report: &serde_json::Value| -> BTreeMap<(String, String), (u64, i64)> {
        report["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let cents: f64 = r["bcda_paid"].as_str().expect("paid").parse().expect("n");
                (
                    (
                        r["claim_type"].as_str().expect("type").to_owned(),
                        r["month"].as_str().expect("month").to_owned(),
                    ),
                    (
                        r["bcda_claims"].as_u64().expect("n"),
                        (cents * 100.0).round() as i64,
                    ),
                )
            })
            .collect()
    };
    let newest = run_ok(dir, &["reconcile", "--out", &s(&out), "--json"]);
    assert_eq!(newest["api_version"], "v2", "{newest:#}");
    assert_eq!(newest["other_api_versions"], serde_json::json!(["v1"]));
    let v2 = recount(&db, "v2");
    assert!(!v2.is_empty());
    assert_eq!(rows(&newest), v2);
    let v1 = run_ok(
        dir,
        &["reconcile", "--out", &s(&out), "--api", "v1", "--json"],
    );
    assert_eq!(v1["api_version"], "v1");
    assert_eq!(rows(&v1), recount(&db, "v1"));
    let plain = claimline(dir, &["reconcile", "--out", &s(&out)]);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.starts_with(
            "bcda: the claims of API v2 (also loaded, not compared: v1; --api chooses)\n"
        ),
        "{text}"
    );
    let wrong = claimline(dir, &["reconcile", "--out", &s(&out), "--api", "v4"]);
    assert_eq!(wrong.status.code(), Some(2));
    // A version the tables hold no claim of: a usage error, not a table of "only cclf".
    let none = claimline(dir, &["reconcile", "--out", &s(&out), "--api", "v3"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("hold v1, v2"));
}

#[test]
fn reconcile_counts_current_claims_once_and_matches_a_cclf_delivery() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let export = synth(dir, "v2", "6", "2");
    let out = dir.join("out");
    // A run, then the same export again (a retried run re-fetches the same `_since`).
    for run in ["20260101T000000.000000Z", "20260102T000000.000000Z"] {
        load(dir, &export, &out, &["--run-id", run]);
    }
    let db = out.join("claimline.sqlite");
    let report = run_ok(dir, &["reconcile", "--out", &s(&out), "--json"]);
    let got: BTreeMap<(String, String), (u64, i64)> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            assert_eq!(r["cclf_claims"], 0);
            let cents: f64 = r["bcda_paid"]
                .as_str()
                .expect("paid")
                .parse()
                .expect("number");
            (
                (
                    r["claim_type"].as_str().expect("type").to_owned(),
                    r["month"].as_str().expect("month").to_owned(),
                ),
                (
                    r["bcda_claims"].as_u64().expect("n"),
                    (cents * 100.0).round() as i64,
                ),
            )
        })
        .collect();
    let want = recount(&db, "v2");
    assert!(!want.is_empty());
    assert_eq!(got, want, "reconcile = a recount of the current rows");
    // `_claimline_counts` is per run: summing it over the two runs counts every claim twice.
    let conn = rusqlite::Connection::open(&db).expect("db");
    let per_run: i64 = conn
        .query_row("SELECT sum(CLAIMS) FROM _claimline_counts", [], |r| {
            r.get(0)
        })
        .expect("sum");
    let current: u64 = want.values().map(|v| v.0).sum();
    assert_eq!(per_run as u64, 2 * current);

    // The same claims as a CCLF delivery: every claim in both, amounts equal.
    let files = dir.join("files");
    let all = export_cclf(dir, &out, &files);
    // `--run`: the rows a run loaded that are still current. The retry replaced every row of
    // the first run, so that run exports none and the retry all of them.
    let of_run = |run: &str, to: &str| {
        run_ok(
            dir,
            &[
                "export",
                "cclf",
                "--from",
                &s(&out),
                "--out",
                &s(&dir.join(to)),
                "--run",
                run,
                "--json",
            ],
        )
    };
    let records = |r: &serde_json::Value| -> Vec<u64> {
        r["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f["records"].as_u64().expect("n"))
            .collect()
    };
    assert!(
        records(&of_run("20260101T000000.000000Z", "first"))
            .iter()
            .all(|n| *n == 0)
    );
    assert_eq!(
        records(&of_run("20260102T000000.000000Z", "second")),
        records(&all)
    );
    let unknown = claimline(
        dir,
        &[
            "export",
            "cclf",
            "--from",
            &s(&out),
            "--out",
            &s(&dir.join("none")),
            "--run",
            "nope",
        ],
    );
    assert_eq!(unknown.status.code(), Some(2));
    // Drop one Part A claim from the delivery: BCDA alone has it.
    let cclf1 = exported(&files)["CCLF1"].clone();
    let text = std::fs::read_to_string(&cclf1).expect("CCLF1");
    std::fs::write(
        &cclf1,
        text.lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let loaded = run_ok(
        dir,
        &[
            "load-cclf",
            &s(&files),
            "--out",
            &s(&out),
            "--format",
            "sqlite",
            "--json",
        ],
    );
    // The delivery's CCLF0 still counts the dropped record: the load says so.
    let n = text.lines().count();
    assert_eq!(
        loaded["summary_mismatches"].as_array().map(Vec::len),
        Some(1),
        "{loaded}"
    );
    assert!(
        loaded["summary_mismatches"][0]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(
                "lists CCLF1 with {n} records; {} were read",
                n - 1
            ))),
        "{loaded}"
    );
    let report = run_ok(dir, &["reconcile", "--out", &s(&out), "--json"]);
    let rows = report["rows"].as_array().expect("rows");
    let total = |k: &str| rows.iter().map(|r| r[k].as_u64().expect("n")).sum::<u64>();
    assert_eq!(total("bcda_claims"), current);
    assert_eq!(total("only_bcda"), 1, "{report}");
    assert_eq!(total("only_cclf"), 0);
    assert_eq!(total("in_both"), current - 1);
    assert_eq!(total("paid_differs"), 0);
    // The BCDA side is unchanged by the CCLF rows beside it.
    assert_eq!(recount(&db, "v2"), want);
}

/// Found by a review of both ways, each fixed:
/// - a folder `export cclf` wrote with rejects beside its files loads back (its
///   `claimline-export-rejects.ndjson` stopped `load-cclf`, exit 2);
/// - `--table` names only files whose names do not tell (it read CCLF0 and every other file as
///   the table given);
/// - an amount with a digit in its sign position is a reject, its value never printed (the
///   load stopped, exit 5, naming the value);
/// - a record whose claim key is blank is a reject (its rows piled up at every load);
/// - a text with a line break is an export reject (it cut the record);
/// - an input that cannot be read is exit 3, as for `load` (it was 5).
#[test]
fn cclf_files_that_cannot_be_held_are_rejects_and_an_export_loads_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();
    let export = synth(dir, "v2", "3", "1");
    // A patient's name with a line break: CCLF8 cannot hold it.
    let patients = export.join("Patient.000.ndjson");
    let text = std::fs::read_to_string(&patients).expect("patients");
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    lines[0]["name"][0]["given"] = serde_json::json!(["Jo\nse"]);
    std::fs::write(
        &patients,
        lines
            .iter()
            .map(|v| v.to_string() + "\n")
            .collect::<String>(),
    )
    .expect("write");
    let out = dir.join("out");
    load(dir, &export, &out, &[]);
    let files = dir.join("files");
    let exported = export_cclf(dir, &out, &files);
    assert!(
        exported["rejects"].as_u64().unwrap_or(0) >= 1,
        "{exported:#}"
    );
    assert!(files.join("claimline-export-rejects.ndjson").is_file());
    for f in std::fs::read_dir(&files).expect("files").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if name.ends_with(".ndjson") {
            continue;
        }
        let bytes = std::fs::read(f.path()).expect("file");
        let lens: std::collections::BTreeSet<usize> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::len)
            .collect();
        assert!(lens.len() <= 1, "{name}: records of {lens:?} bytes");
    }
    // The folder loads back as written, with `--table` too (every name tells its table).
    for extra in [&[][..], &["--table", "cclf5"][..]] {
        let back = dir.join(format!("back{}", extra.len()));
        let mut args = vec!["load-cclf".to_owned(), s(&files), "--out".into(), s(&back)];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.push("--json".into());
        let report = run_ok(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(report["rejects"], 0, "{extra:?}: {report:#}");
        assert_eq!(
            report["summary_mismatches"],
            serde_json::json!([]),
            "{report:#}"
        );
    }

    // A CCLF1 file with a digit in a sign position, and a record with no claim id.
    let cclf1 = std::fs::read_dir(&files)
        .expect("files")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains(".ZC1Y"))
        .expect("a CCLF1 file");
    let field = |name: &str| {
        layouts()["CCLF1"]
            .iter()
            .find(|f| f.name == name)
            .map(|f| (f.start, f.len))
            .expect("field")
    };
    let text = std::fs::read(&cclf1).expect("cclf1");
    let mut records: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    assert!(records.len() >= 2);
    let (at, len) = field("CLM_PMT_AMT");
    records[0][at..at + len].copy_from_slice(b"10000000000123.45");
    let (at, len) = field("CUR_CLM_UNIQ_ID");
    records[1][at..at + len].fill(b' ');
    let damaged = dir.join("damaged");
    std::fs::create_dir(&damaged).expect("mkdir");
    let name = cclf1.file_name().expect("name");
    let mut bytes = records.join(&b'\n');
    bytes.push(b'\n');
    std::fs::write(damaged.join(name), bytes).expect("write");
    let loaded = claimline(
        dir,
        &[
            "load-cclf",
            &s(&damaged),
            "--out",
            &s(&dir.join("d")),
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&loaded.stderr);
    assert!(loaded.status.success(), "{stderr}");
    let report = json(&loaded);
    assert_eq!(report["rejects"], 2, "{report:#}");
    assert!(!report.to_string().contains("10000000000123"), "{report:#}");
    assert!(!stderr.contains("10000000000123"), "{stderr}");

    let missing = claimline(
        dir,
        &[
            "load-cclf",
            &s(&dir.join("nothing-here")),
            "--out",
            &s(&dir.join("m")),
        ],
    );
    assert_eq!(missing.status.code(), Some(3));
}
