//! Claim history across runs (issue 6): three exports hand-built from the real R4 records —
//! a first load; a corrected claim (new version, fewer lines) with its cancelled predecessor;
//! an export without Patients that replays a stale version — checked after each load against
//! what each current claim version produces on its own, in SQLite and through the README's
//! Parquet current-rows rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rusqlite::Connection;
use serde_json::Value;

use crate::{claimline, json, sample_data};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn real(file: &str, index: usize) -> Value {
    let text = std::fs::read_to_string(sample_data().join("r4").join(file)).expect("sample");
    let line = text.lines().nth(index).expect("sample line");
    serde_json::from_str(line).expect("JSON")
}

/// The active carrier claim `carrier-1001` of claim group 7001, last updated at `lu`.
fn first_carrier(lu: &str) -> Value {
    version(
        "ExplanationOfBenefit-carrier.ndjson",
        "carrier-1001",
        "7001",
        lu,
        "active",
    )
}

/// The active inpatient claim `inpatient-3001` of claim group 7003, last updated at `lu`.
fn first_inpatient(lu: &str) -> Value {
    version(
        "ExplanationOfBenefit-inpatient.ndjson",
        "inpatient-3001",
        "7003",
        lu,
        "active",
    )
}

/// A real R4 EOB made into one version of claim group `group`.
fn version(file: &str, id: &str, group: &str, last_updated: &str, status: &str) -> Value {
    let mut eob = real(file, 0);
    eob["id"] = Value::from(id);
    eob["status"] = Value::from(status);
    eob["meta"]["lastUpdated"] = Value::from(last_updated);
    let clm_id = id.rsplit('-').next().expect("id");
    for ident in eob["identifier"].as_array_mut().expect("identifiers") {
        if ident["system"] == "https://bluebutton.cms.gov/resources/identifier/claim-group" {
            ident["value"] = Value::from(group);
        } else {
            ident["value"] = Value::from(clm_id);
        }
    }
    eob
}

pub(crate) fn write_export(dir: &Path, eobs: &[&Value], patients: bool) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let lines: Vec<String> = eobs.iter().map(|e| e.to_string()).collect();
    std::fs::write(
        dir.join("ExplanationOfBenefit.ndjson"),
        lines.join("\n") + "\n",
    )
    .expect("write");
    if patients {
        let mut patient = real("Patient.ndjson", 0);
        patient["meta"]["lastUpdated"] = Value::from("2026-01-01T00:00:00Z");
        std::fs::write(dir.join("Patient.ndjson"), patient.to_string() + "\n").expect("write");
    }
    dir.to_owned()
}

fn load(input: &Path, out: &Path, run_id: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "load",
        s(input),
        "--out",
        s(out),
        "--run-id",
        run_id,
        "--json",
    ];
    args.extend_from_slice(extra);
    let r = claimline(out.parent().expect("parent"), &args);
    assert!(
        r.status.success(),
        "load {run_id}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    json(&r)
}

/// Columns that depend on the run, not the claim.
const RUN_COLUMNS: [&str; 3] = ["_source_file", "_line", "_run_id"];

fn cell(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef as R;
    match v {
        R::Null => "NULL".into(),
        R::Integer(i) => i.to_string(),
        R::Real(f) => f.to_string(),
        R::Text(t) => String::from_utf8_lossy(t).into_owned(),
        R::Blob(_) => "<blob>".into(),
    }
}

/// Every row of every table of a SQLite output, the run columns left out, sorted per table.
fn sqlite_tables(db: &Path, skip: &[&str]) -> BTreeMap<String, Vec<String>> {
    let conn = Connection::open(db).expect("open");
    let names = crate::sqlite_table_names(&conn, |n| !n.starts_with("_claimline"));
    let mut out = BTreeMap::new();
    for name in names {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\""))
            .expect("prepare");
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut parts = Vec::new();
                for (i, c) in columns.iter().enumerate() {
                    if !RUN_COLUMNS.contains(&c.as_str()) {
                        parts.push(format!("{c}={}", cell(r.get_ref(i)?)));
                    }
                }
                Ok(parts.join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(name, rows);
    }
    out
}

/// The rows one claim version produces loaded on its own (with the Patient), per claim table.
fn alone(tmp: &Path, eob: &Value) -> BTreeMap<String, Vec<String>> {
    let id = eob["id"].as_str().expect("id");
    let input = write_export(&tmp.join(format!("alone-{id}")), &[eob], true);
    let out = tmp.join(format!("alone-{id}-out"));
    load(&input, &out, "alone", &["--format", "sqlite"]);
    sqlite_tables(
        &out.join("claimline.sqlite"),
        &["bene_xref", "cclf8", "cclf9"],
    )
}

fn union(parts: &[&BTreeMap<String, Vec<String>>]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in parts {
        for (t, rows) in *p {
            out.entry(t.clone())
                .or_default()
                .extend(rows.iter().cloned());
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

fn claim_tables(db: &Path) -> BTreeMap<String, Vec<String>> {
    sqlite_tables(db, &["bene_xref", "cclf8", "cclf9"])
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch.column(batch.schema().index_of(name).expect("column"));
    let a = col
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("a string column");
    (0..a.len())
        .map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned()))
        .collect()
}

fn batches(root: &Path, table: &str) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    let Ok(runs) = std::fs::read_dir(root.join(table)) else {
        return out;
    };
    let mut files: Vec<PathBuf> = runs
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).expect("run dir").flatten())
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).expect("open"))
                .expect("parquet")
                .build()
                .expect("reader");
        out.extend(reader.map(|b| b.expect("batch")));
    }
    out
}

/// The README's current-rows rule over the Parquet files, in Rust: per `(_api_version,
/// _claim_key)` the head is the `version` event of `_claimline_claims` with the greatest
/// (`_last_updated`, `_run_id`), dropped when a `cancel` names it; a table's current rows are
/// those of the heads' (`_resource_id`, `_run_id`); only the runs `_claimline_runs.json` records
/// count. Returns (table, `_resource_id`) → rows.
pub(crate) fn parquet_current(root: &Path, tables: &[String]) -> BTreeMap<(String, String), usize> {
    type Key = (Option<String>, Option<String>);
    let recorded = crate::crash::parquet_runs(root.parent().expect("the output folder"));
    let mut heads: BTreeMap<Key, (Option<i64>, String, String)> = BTreeMap::new();
    let mut cancels: BTreeSet<(Key, String)> = BTreeSet::new();
    for b in batches(root, "_claimline_claims") {
        let versions = strings(&b, "_api_version");
        let keys = strings(&b, "_claim_key");
        let ids = strings(&b, "_resource_id");
        let actions = strings(&b, "_action");
        let runs = strings(&b, "_run_id");
        let lu = b
            .column(b.schema().index_of("_last_updated").expect("column"))
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("timestamps")
            .clone();
        for i in 0..b.num_rows() {
            let key = (versions[i].clone(), keys[i].clone());
            let id = ids[i].clone().expect("id");
            let run = runs[i].clone().expect("run");
            if !recorded.contains(&run) {
                continue;
            }
            if actions[i].as_deref() == Some("cancel") {
                cancels.insert((key, id));
                continue;
            }
            let t = (!lu.is_null(i)).then(|| lu.value(i));
            let candidate = (t, run, id);
            let better = heads
                .get(&key)
                .is_none_or(|h| (candidate.0, &candidate.1) > (h.0, &h.1));
            if better {
                heads.insert(key, candidate);
            }
        }
    }
    let current: BTreeSet<(String, String)> = heads
        .into_iter()
        .filter(|(k, (_, _, id))| !cancels.contains(&(k.clone(), id.clone())))
        .map(|(_, (_, run, id))| (id, run))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        for b in batches(root, t) {
            let ids = strings(&b, "_resource_id");
            let runs = strings(&b, "_run_id");
            for i in 0..b.num_rows() {
                let pair = (ids[i].clone().expect("id"), runs[i].clone().expect("run"));
                if current.contains(&pair) {
                    *out.entry((t.clone(), pair.0)).or_insert(0) += 1;
                }
            }
        }
    }
    out
}

/// (table, `_resource_id`) → rows, from SQLite claim tables.
fn sqlite_counts(db: &Path, tables: &[String]) -> BTreeMap<(String, String), usize> {
    let conn = Connection::open(db).expect("open");
    let mut out = BTreeMap::new();
    for t in tables {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT _resource_id, count(*) FROM \"{t}\" GROUP BY 1"
            ))
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .expect("query");
        for row in rows {
            let (id, n) = row.expect("row");
            out.insert((t.clone(), id), n as usize);
        }
    }
    out
}

fn scalar(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect("query")
}

/// Checks one state: SQLite equals the current versions loaded alone, every claim row has its
/// MBI, `bene_xref` holds the Patient, and Parquet's current rows are SQLite's.
fn check(out: &Path, expected: &BTreeMap<String, Vec<String>>, step: &str) {
    let db = out.join("claimline.sqlite");
    let actual = claim_tables(&db);
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{step}: tables"
    );
    for (t, rows) in expected {
        assert_eq!(&actual[t], rows, "{step}: table {t}");
    }
    let conn = Connection::open(&db).expect("open");
    let claim: Vec<String> = conn
        .prepare("SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = '_claim_key' AND m.name NOT LIKE '\\_claimline%' ESCAPE '\\'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names");
    assert!(claim.len() >= 9, "{step}: {claim:?}");
    for t in &claim {
        let has_mbi = conn
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{t}') WHERE name = 'BENE_MBI_ID'"
            ))
            .expect("prepare")
            .exists([])
            .expect("query");
        if has_mbi {
            let unresolved = scalar(
                &db,
                &format!("SELECT count(*) FROM \"{t}\" WHERE BENE_MBI_ID IS NOT '3456789'"),
            );
            assert_eq!(unresolved, 0, "{step}: {t} rows without the current MBI");
        }
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM bene_xref WHERE BENE_ID = '567834'"
        ),
        4,
        "{step}"
    );
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM bene_xref WHERE MBI_CURRENT = 1"),
        1,
        "{step}"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf9"), 3, "{step}");
    // CCLF8: the one beneficiary, kept from the last run that had the Patient.
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM cclf8 WHERE BENE_MBI_ID = '3456789' AND BENE_MDCR_STUS_CD IS NULL"
        ),
        1,
        "{step}"
    );
    assert_eq!(
        parquet_current(&out.join("parquet"), &claim),
        sqlite_counts(&db, &claim),
        "{step}: Parquet current rows"
    );
    assert_eq!(
        materialised_current(out, &claim),
        sqlite_counts(&db, &claim),
        "{step}: the materialised current tables (current/)"
    );
}

/// (table, `_resource_id`) → rows of `DIR/current/<table>/bucket=*/part-0.parquet`.
fn materialised_current(dir: &Path, tables: &[String]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for t in tables {
        for b in batches(&dir.join("current"), t) {
            for id in strings(&b, "_resource_id") {
                *out.entry((t.clone(), id.expect("id"))).or_insert(0) += 1;
            }
        }
    }
    out
}

/// The claim versions of the history scenarios: a carrier claim, its correction (two of its
/// seven lines) and their cancels, an outpatient and an inpatient claim.
pub(crate) struct Versions {
    pub(crate) c1: Value,
    pub(crate) c2: Value,
    pub(crate) c1_cancelled: Value,
    pub(crate) c2_cancelled: Value,
    pub(crate) o1: Value,
    pub(crate) i1: Value,
}

pub(crate) fn versions() -> Versions {
    let carrier = "ExplanationOfBenefit-carrier.ndjson";
    let jan = "2026-01-05T10:00:00.000+00:00";
    let feb = "2026-02-02T10:00:00.000+00:00";
    let mut c2 = version(carrier, "carrier-1002", "7001", feb, "active");
    // The correction keeps two of the seven lines.
    c2["item"].as_array_mut().expect("items").truncate(2);
    Versions {
        c1: version(carrier, "carrier-1001", "7001", jan, "active"),
        c2,
        c1_cancelled: version(carrier, "carrier-1001", "7001", feb, "cancelled"),
        c2_cancelled: version(carrier, "carrier-1002", "7001", feb, "cancelled"),
        o1: version(
            "ExplanationOfBenefit-outpatient.ndjson",
            "outpatient-2001",
            "7002",
            jan,
            "active",
        ),
        i1: version(
            "ExplanationOfBenefit-inpatient.ndjson",
            "inpatient-3001",
            "7003",
            feb,
            "active",
        ),
    }
}

/// The claim history held on disk past a budget of one byte (every EOB a sorted run of its own,
/// merged back; each group decided against the stored heads in a batch of its own), for the
/// tests that run both ways: `--history-memory 1B`.
const ON_DISK: &[&str] = &["--history-memory", "1B"];

#[test]
fn three_exports_keep_one_current_version_and_resolve_mbis() {
    three_exports(&[]);
}

#[test]
fn three_exports_with_the_history_on_disk() {
    three_exports(ON_DISK);
}

fn three_exports(extra: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let Versions {
        c1,
        c2,
        c1_cancelled,
        c2_cancelled,
        o1,
        i1,
    } = versions();

    let rows_c1 = alone(tmp, &c1);
    let rows_c2 = alone(tmp, &c2);
    let rows_o1 = alone(tmp, &o1);
    let rows_i1 = alone(tmp, &i1);
    let lines = |rows: &BTreeMap<String, Vec<String>>| rows.get("cclf5").map_or(0, Vec::len);
    assert_eq!(lines(&rows_c1), 7);
    assert_eq!(lines(&rows_c2), 2);

    let out = tmp.join("out");
    // 1: first load.
    let e1 = write_export(&tmp.join("e1"), &[&c1, &o1], true);
    let r1 = load(&e1, &out, "r1", extra);
    assert_eq!(r1["beneficiaries"]["unresolved_claims"], 0, "{r1:#}");
    check(&out, &union(&[&rows_c1, &rows_o1]), "after export 1");

    // 2: the correction and its cancelled predecessor (a cancel of a version that is no longer
    // current once the correction is in: stale, it must not delete the correction).
    let e2 = write_export(&tmp.join("e2"), &[&c1_cancelled, &c2], true);
    let r2 = load(&e2, &out, "r2", extra);
    assert_eq!(r2["history"]["cancels"], 1, "{r2:#}");
    assert_eq!(r2["history"]["superseded"], 1, "{r2:#}");
    check(&out, &union(&[&rows_c2, &rows_o1]), "after export 2");

    // 3: no Patients; a new claim, and the old version replayed (Group/runout overlapping
    // Group/all): the MBI resolves from bene_xref and the stale version changes nothing.
    let e3 = write_export(&tmp.join("e3"), &[&i1, &c1], false);
    let r3 = load(&e3, &out, "r3", extra);
    assert_eq!(r3["beneficiaries"]["with_mbi"], 0, "{r3:#}");
    assert_eq!(r3["beneficiaries"]["unresolved_claims"], 0, "{r3:#}");
    assert_eq!(r3["history"]["stale_groups"], 1, "{r3:#}");
    check(
        &out,
        &union(&[&rows_c2, &rows_o1, &rows_i1]),
        "after export 3",
    );

    // A cancel of the current version removes the whole claim, in every table.
    let e4 = write_export(&tmp.join("e4"), &[&c2_cancelled], false);
    let r4 = load(&e4, &out, "r4", extra);
    assert_eq!(r4["history"]["removed_groups"], 1, "{r4:#}");
    check(
        &out,
        &union(&[&rows_o1, &rows_i1]),
        "after cancelling the current version",
    );
}

#[test]
fn a_run_id_loaded_again_holds_its_claim_events_once_in_both_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let Versions { c1, c2, o1, .. } = versions();
    let rows_c1 = alone(tmp, &c1);
    let rows_c2 = alone(tmp, &c2);
    let rows_o1 = alone(tmp, &o1);
    let e1 = write_export(&tmp.join("e1"), &[&c1, &o1], true);
    let once = tmp.join("once");
    load(&e1, &once, "r1", &[]);
    // Every table, every column (the run's among them), as PostgreSQL's tests read them.
    let tables = |out: &Path| crate::postgres::sqlite_tables(&out.join("claimline.sqlite"));
    let parquet_events = |out: &Path| -> usize {
        batches(&out.join("parquet"), "_claimline_claims")
            .iter()
            .map(RecordBatch::num_rows)
            .sum()
    };

    // The same export under the same run id, three times (a retried command, two loads that
    // did not overlap): the tables, SQLite's claim events and `current/` among them, are those
    // of one load. (`current/` shows the run's version: the next is built beside it, under
    // another name, and the one after that beside the second.)
    let out = tmp.join("out");
    for n in 1..=3 {
        load(&e1, &out, "r1", &[]);
        check(
            &out,
            &union(&[&rows_c1, &rows_o1]),
            &format!("r1 loaded {n} times"),
        );
    }
    assert_eq!(tables(&out), tables(&once));
    let events = tables(&out)["_claimline_claims"].len();
    assert_eq!(
        events,
        parquet_events(&out),
        "SQLite's events are Parquet's"
    );

    // Then the correction as a new run, and r1 again: its events are its own once more, and
    // the correction, newer, stays current.
    let e2 = write_export(&tmp.join("e2"), &[&c2], true);
    load(&e2, &out, "r2", &[]);
    load(&e1, &out, "r1", &[]);
    check(
        &out,
        &union(&[&rows_c2, &rows_o1]),
        "r1 loaded again after r2",
    );
    let events = tables(&out)["_claimline_claims"].len();
    assert_eq!(
        events,
        parquet_events(&out),
        "SQLite's events are Parquet's"
    );
}

#[test]
fn all_versions_keeps_every_version_once() {
    all_versions_once(&[]);
}

#[test]
fn all_versions_with_the_history_on_disk() {
    all_versions_once(ON_DISK);
}

fn all_versions_once(extra: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let carrier = "ExplanationOfBenefit-carrier.ndjson";
    let jan = "2026-01-05T10:00:00.000+00:00";
    let feb = "2026-02-02T10:00:00.000+00:00";
    let c1 = version(carrier, "carrier-1001", "7001", jan, "active");
    let c2 = version(carrier, "carrier-1002", "7001", feb, "active");
    let out = tmp.join("out");
    // The same export twice in one run (Group/all and Group/runout), then again in a second run.
    let a = write_export(&tmp.join("all"), &[&c1, &c2], true);
    let b = write_export(&tmp.join("runout"), &[&c1, &c2], false);
    let args = [&["--all-versions", "--format", "sqlite"], extra].concat();
    let mut all = vec!["load", s(&a), s(&b), "--out", s(&out), "--json"];
    all.extend_from_slice(&args);
    let r = claimline(tmp, &all);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let db = out.join("claimline.sqlite");
    assert_eq!(json(&r)["history"]["superseded"], 2);
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf5"), 14);
    load(&a, &out, "r2", &args);
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf5"), 14);
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT _resource_id) FROM cclf5"),
        2
    );
}

/// With every version kept, a version is told by its claim key and its id, in SQLite as in
/// Parquet's rule and `current/`: an EOB id that comes again under another claim group (older,
/// here) is a version of its own. SQLite looked its earlier head up by the id alone, took the
/// new row for a stale version of the first group and kept only that one.
#[test]
fn all_versions_tells_an_eob_id_under_two_claim_groups_apart_in_every_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let carrier = "ExplanationOfBenefit-carrier.ndjson";
    let a = version(
        carrier,
        "carrier-1001",
        "7001",
        "2026-10-20T00:00:00Z",
        "active",
    );
    let b = version(
        carrier,
        "carrier-1001",
        "7099",
        "2026-10-10T00:00:00Z",
        "active",
    );
    let out = tmp.join("out");
    load(
        &write_export(&tmp.join("a"), &[&a], true),
        &out,
        "r1",
        &["--all-versions"],
    );
    load(
        &write_export(&tmp.join("b"), &[&b], false),
        &out,
        "r2",
        &["--all-versions"],
    );
    let db = out.join("claimline.sqlite");
    assert_eq!(
        scalar(&db, "SELECT count(DISTINCT _claim_key) FROM cclf5"),
        2,
        "both groups' versions in SQLite"
    );
    let claim: Vec<String> = ["cclf1", "cclf5"].map(String::from).to_vec();
    let groups = |rows: &BTreeMap<(String, String), usize>| rows.values().sum::<usize>();
    let sqlite = scalar(&db, "SELECT count(*) FROM cclf5") as usize
        + scalar(&db, "SELECT count(*) FROM cclf1") as usize;
    assert_eq!(
        groups(&materialised_current(&out, &claim)),
        sqlite,
        "current/"
    );
    assert_eq!(
        groups(&parquet_current(&out.join("parquet"), &claim)),
        sqlite,
        "Parquet's rule"
    );
}

/// One Patient twice in one load (Group/all and Group/runout loaded together, each with the
/// Patients): its MBIs are rows once in `bene_xref` and `cclf9`, in every output, as in a load
/// of one export. They were rows twice, and the README's join through `bene_xref` doubled
/// every claim row.
#[test]
fn a_patient_twice_in_one_load_gives_its_rows_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let Versions { c1, .. } = versions();
    let all = write_export(&tmp.join("all"), &[&c1], true);
    let runout = write_export(&tmp.join("runout"), &[&c1], true);
    let (both, alone) = (tmp.join("both"), tmp.join("alone"));
    let r = claimline(
        tmp,
        &[
            "load",
            s(&all),
            s(&runout),
            "--out",
            s(&both),
            "--run-id",
            "r1",
            "--json",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("1 Patient copy left out"), "{stderr}");
    let report = json(&r);
    let one = load(&all, &alone, "r1", &[]);
    for t in ["bene_xref", "cclf9", "cclf8"] {
        let count = |out: &Path| {
            scalar(
                &out.join("claimline.sqlite"),
                &format!("SELECT count(*) FROM {t}"),
            )
        };
        assert!(count(&alone) > 0, "{t}");
        assert_eq!(count(&both), count(&alone), "{t} in SQLite");
        let parquet = |out: &Path| {
            batches(&out.join("parquet"), t)
                .iter()
                .map(RecordBatch::num_rows)
                .sum::<usize>()
        };
        assert_eq!(parquet(&both), parquet(&alone), "{t} in Parquet");
        assert_eq!(report["tables"][t], one["tables"][t], "{t} in the report");
    }
    // The copy kept is the last in the input (same `meta.lastUpdated`).
    let files: Vec<String> = Connection::open(both.join("claimline.sqlite"))
        .expect("open")
        .prepare("SELECT DISTINCT _source_file FROM bene_xref")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(files.len(), 1);
    assert!(files[0].contains("runout"), "{files:?}");
}

/// A Patient twice in one load, the newer copy first: every per-beneficiary table keeps the
/// newer copy's rows, in SQLite as in Parquet's rule, after an earlier run whose copy lies
/// between the two. (`cclf8` took the last copy in the input; the merge then judged the run's
/// rows older than the stored ones and kept the earlier run's `bene_xref` in SQLite only.)
#[test]
fn a_patient_twice_in_one_load_keeps_its_newest_copy_in_every_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    // An export folder of one Patient per file: (file, family name, `meta.lastUpdated`).
    let patients = |name: &str, files: &[(&str, &str, &str)]| {
        let dir = tmp.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (file, family, last_updated) in files {
            let mut p = real("Patient.ndjson", 0);
            p["meta"]["lastUpdated"] = Value::from(*last_updated);
            p["name"][0]["family"] = Value::from(*family);
            std::fs::write(dir.join(file), p.to_string() + "\n").expect("write");
        }
        dir
    };
    let first = patients(
        "first",
        &[("Patient.ndjson", "First", "2026-12-01T00:00:02Z")],
    );
    let twice = patients(
        "twice",
        &[
            ("Patient.000.ndjson", "Newest", "2026-12-01T00:00:03Z"),
            ("Patient.001.ndjson", "Older", "2026-12-01T00:00:01Z"),
        ],
    );
    let out = tmp.join("out");
    load(&first, &out, "r1", &[]);
    load(&twice, &out, "r2", &[]);
    let db = out.join("claimline.sqlite");
    let conn = Connection::open(&db).expect("open");
    let family: String = conn
        .query_row("SELECT BENE_LAST_NAME FROM cclf8", [], |r| r.get(0))
        .expect("row");
    assert_eq!(family, "Newest");
    for t in ["bene_xref", "cclf8", "cclf9"] {
        let runs: Vec<String> = conn
            .prepare(&format!("SELECT DISTINCT _run_id FROM {t}"))
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(runs, ["r2"], "{t} in SQLite");
        let parquet = parquet_current_by_resource(&out.join("parquet"), t, "_run_id");
        assert!(
            !parquet.is_empty() && parquet.values().flatten().all(|r| r == "r2"),
            "{t} by Parquet's rule: {parquet:?}"
        );
    }
    let parquet = parquet_current_by_resource(&out.join("parquet"), "cclf8", "BENE_LAST_NAME");
    assert_eq!(parquet.values().flatten().collect::<Vec<_>>(), ["Newest"]);
}

/// A v3 EOB left out of the CCLF tables (partially adjudicated) that comes after a complete
/// version of its claim records no version: SQLite, Parquet's rule and `current/` keep the
/// complete one. (It was recorded as the newer version: Parquet's rule took it for the head,
/// which has no rows, and the claim vanished there while SQLite kept it.)
#[test]
fn a_v3_eob_left_out_after_a_complete_version_leaves_the_claim_in_every_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let export = tmp.join("v3");
    let r = claimline(
        tmp,
        &[
            "synth",
            "--benes",
            "3",
            "--years",
            "1",
            "--seed",
            "1",
            "--version",
            "v3",
            "--out",
            s(&export),
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let text =
        std::fs::read_to_string(export.join("ExplanationOfBenefit.000.ndjson")).expect("EOBs");
    let mut eob: Value = serde_json::from_str(text.lines().next().expect("line")).expect("JSON");
    eob["outcome"] = Value::from("partial");
    eob["meta"]["lastUpdated"] = Value::from("2027-01-01T00:00:00Z");
    let partial = tmp.join("partial");
    std::fs::create_dir_all(&partial).expect("mkdir");
    std::fs::write(
        partial.join("ExplanationOfBenefit.ndjson"),
        eob.to_string() + "\n",
    )
    .expect("write");
    let out = tmp.join("out");
    load(&export, &out, "r1", &[]);
    let db = out.join("claimline.sqlite");
    let before = scalar(&db, "SELECT count(*) FROM cclf1");
    load(&partial, &out, "r2", &[]);
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf1"), before);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM _claimline_claims WHERE _run_id = 'r2'"
        ),
        0,
        "no version recorded"
    );
    every_output_agrees(&out, "a partial copy after the complete version");
}

/// CMS's v3 hospice sample has no `id`: its id is its `uc` identifier, for its rows'
/// `_resource_id` and its claim version alike, so its claim is current in Parquet's rule and
/// `current/` as in SQLite (it was in SQLite only: rows without an id matched no version).
#[test]
fn a_v3_eob_without_id_is_current_in_every_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let out = tmp.join("out");
    load(&sample_data().join("v3"), &out, "r1", &["--no-report"]);
    let db = out.join("claimline.sqlite");
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM cclf1 WHERE _resource_id = 'NON-UNIQUE-ID-HERE' AND _claim_key = 'NON-UNIQUE-ID-HERE'"
        ),
        1,
        "the hospice claim, its id from its uc identifier"
    );
    let sqlite = sqlite_counts(&db, &claim_tables_compared());
    assert!(
        sqlite.contains_key(&("cclf1".to_owned(), "NON-UNIQUE-ID-HERE".to_owned())),
        "{sqlite:?}"
    );
    every_output_agrees(&out, "the v3 samples");
}

/// A v2 EOB without `id` has no version to compare with another: its claim rows are left out of
/// every output with a row error (they piled up in SQLite at every load, and an older copy
/// replaced a newer version, while Parquet's rule never showed them). A newer version that
/// gives no row (no view reads its claim type) replaces the claim's rows with none, in SQLite as
/// in Parquet's rule (SQLite kept the earlier rows).
#[test]
fn an_eob_without_id_is_left_out_and_a_version_without_rows_replaces_the_claims_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let out = tmp.join("out");
    let first = write_export(
        &tmp.join("e1"),
        &[
            &first_carrier("2026-01-01T00:00:00Z"),
            &first_inpatient("2026-01-01T00:00:00Z"),
        ],
        true,
    );
    load(&first, &out, "r1", &["--no-report"]);
    let db = out.join("claimline.sqlite");
    let carrier_rows = scalar(&db, "SELECT count(*) FROM cclf5");
    assert!(carrier_rows > 0);
    // An older copy of the carrier claim without its id, twice.
    let mut no_id = first_carrier("2020-01-01T00:00:00Z");
    no_id.as_object_mut().expect("object").remove("id");
    // A newer version of the inpatient claim that no view of the set reads.
    let mut untyped = first_inpatient("2026-06-01T00:00:00Z");
    untyped["id"] = Value::from("inpatient-3002");
    untyped["type"]["coding"] = Value::Array(Vec::new());
    let second = write_export(&tmp.join("e2"), &[&no_id, &untyped], false);
    for run in ["r2", "r3"] {
        let report = load(&second, &out, run, &["--no-report"]);
        // The claim without an id, and the version of no CCLF claim type (said since a review
        // found such an EOB passed over without a word).
        assert_eq!(
            report["row_errors"]["by_column"],
            serde_json::json!({"cclf5._resource_id": 1, "cclf1": 1}),
            "{report:#}"
        );
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM cclf5 WHERE _resource_id IS NULL"),
            0,
            "{run}: no rows without an id"
        );
        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM cclf5 WHERE _resource_id = 'carrier-1001'"
            ),
            carrier_rows,
            "{run}: the stored carrier version stays"
        );
        assert_eq!(
            scalar(&db, "SELECT count(*) FROM cclf1 WHERE _claim_key = '7003'"),
            0,
            "{run}: the newer inpatient version gave no row"
        );
        every_output_agrees(&out, run);
    }
}

/// With `--all-versions` too: a newer copy of a version (the same EOB id) that gives no row
/// leaves none of its rows, in SQLite as in Parquet's rule.
#[test]
fn all_versions_a_newer_copy_without_rows_replaces_the_versions_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let out = tmp.join("out");
    let first = write_export(
        &tmp.join("e1"),
        &[
            &first_carrier("2026-01-01T00:00:00Z"),
            &first_inpatient("2026-01-01T00:00:00Z"),
        ],
        true,
    );
    load(&first, &out, "r1", &["--no-report", "--all-versions"]);
    let db = out.join("claimline.sqlite");
    assert!(
        scalar(
            &db,
            "SELECT count(*) FROM cclf1 WHERE _resource_id = 'inpatient-3001'"
        ) > 0
    );
    let mut untyped = first_inpatient("2026-06-01T00:00:00Z");
    untyped["type"]["coding"] = Value::Array(Vec::new());
    let second = write_export(&tmp.join("e2"), &[&untyped], false);
    load(&second, &out, "r2", &["--no-report", "--all-versions"]);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM cclf1 WHERE _resource_id = 'inpatient-3001'"
        ),
        0
    );
    same_current_as_sqlite(&out, "a newer copy without rows");
}

/// A newer Patient without MBI history gives no `cclf9` row: its earlier `cclf9` rows are not
/// current any more, in SQLite as by Parquet's rule (which ranked each table on its own, so the
/// earlier rows outranked nothing and stayed).
#[test]
fn a_newer_patient_without_mbi_history_leaves_no_cclf9_row_in_either_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let mut patient = real("Patient.ndjson", 0);
    patient["meta"]["lastUpdated"] = Value::from("2026-01-01T00:00:00Z");
    let first = tmp.join("first");
    std::fs::create_dir_all(&first).expect("mkdir");
    std::fs::write(first.join("Patient.ndjson"), patient.to_string() + "\n").expect("write");
    patient["meta"]["lastUpdated"] = Value::from("2026-02-01T00:00:00Z");
    patient["identifier"]
        .as_array_mut()
        .expect("identifiers")
        .retain(|i| !i.to_string().contains("\"historic\""));
    let later = tmp.join("later");
    std::fs::create_dir_all(&later).expect("mkdir");
    std::fs::write(later.join("Patient.ndjson"), patient.to_string() + "\n").expect("write");
    let out = tmp.join("out");
    load(&first, &out, "r1", &[]);
    let db = out.join("claimline.sqlite");
    assert!(scalar(&db, "SELECT count(*) FROM cclf9") > 0);
    load(&later, &out, "r2", &[]);
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf9"), 0);
    assert!(parquet_current_by_resource(&out.join("parquet"), "cclf9", "_run_id").is_empty());
    let xref = parquet_current_by_resource(&out.join("parquet"), "bene_xref", "_run_id");
    assert!(!xref.is_empty() && xref.values().flatten().all(|r| r == "r2"));
    // `current/views.sql` applies the same rule: the heads across every per-resource table.
    let views = std::fs::read_to_string(out.join("current/views.sql")).expect("views");
    let cclf9 = views
        .lines()
        .find(|l| l.contains("VIEW \"cclf9\""))
        .expect("cclf9's view");
    assert!(
        cclf9.contains("'parquet/bene_xref/*/part-*.parquet'"),
        "{cclf9}"
    );
}

/// `_claimline_counts` per run, and the v2/v3 overlap warning: a v2 claim and a v3 claim for
/// the same service month (October 2022) in one output.
#[test]
fn counts_per_run_and_a_warning_when_v2_and_v3_share_months() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let mut v2 = first_carrier("2026-01-05T10:00:00.000+00:00");
    v2["billablePeriod"]["start"] = Value::from("2022-10-03");
    let out = tmp.join("out");
    let e1 = write_export(&tmp.join("e1"), &[&v2], true);
    let r1 = load(&e1, &out, "r1", &[]);
    assert_eq!(r1["v2_v3_overlap_months"], serde_json::json!([]));
    let db = out.join("claimline.sqlite");
    let row: (String, String, i64, i64, f64) = Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT CLAIM_TYPE, SERVICE_MONTH, CLAIMS, LINES, PAYMENT_SUM FROM _claimline_counts WHERE _run_id = 'r1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .expect("one row");
    assert_eq!(row, ("CARRIER".into(), "2022-10".into(), 1, 7, 199.99));

    let v3 = sample_data().join("v3/ExplanationOfBenefit-carrier.ndjson");
    let r = claimline(
        tmp,
        &["load", s(&v3), "--out", s(&out), "--run-id", "r2", "--json"],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        json(&r)["v2_v3_overlap_months"],
        serde_json::json!(["2022-10"])
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("v2 and v3 claims for 1 service month(s) (2022-10)"),
        "{stderr}"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM _claimline_counts WHERE _run_id = 'r2' AND _api_version = 'v3' AND SERVICE_MONTH = '2022-10'"
        ),
        1
    );
    // Without `--json`: the warning once, on stderr (the summary repeated it on stdout).
    let r = claimline(tmp, &["load", s(&v3), "--out", s(&out), "--run-id", "r3"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
    );
    assert_eq!(stderr.matches("v2 and v3 claims").count(), 1, "{stderr}");
    assert!(!stdout.contains("v2 and v3"), "{stdout}");
}

/// A payment too large for CLM_PMT_AMT is a row error and NULL there, and counts 0 in
/// `PAYMENT_SUM`: the load goes on (the sum's cell overflowed and failed the whole load, exit 5).
#[test]
fn a_payment_too_large_for_its_column_is_a_row_error_and_not_summed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let mut huge = first_inpatient("2026-01-05T10:00:00.000+00:00");
    huge["billablePeriod"]["start"] = Value::from("2022-10-03");
    huge["payment"]["amount"]["value"] = serde_json::json!(1e16);
    let mut fine = first_carrier("2026-01-05T10:00:00.000+00:00");
    fine["billablePeriod"]["start"] = Value::from("2022-10-03");
    let out = tmp.join("out");
    let export = write_export(&tmp.join("e1"), &[&huge, &fine], true);
    let report = load(&export, &out, "r1", &["--no-report"]);
    assert_eq!(
        report["row_errors"]["by_column"]["cclf1.CLM_PMT_AMT"], 1,
        "{report:#}"
    );
    let db = out.join("claimline.sqlite");
    let sums: Vec<(String, f64)> = Connection::open(&db)
        .expect("open")
        .prepare("SELECT CLAIM_TYPE, PAYMENT_SUM FROM _claimline_counts ORDER BY 1")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(sums.len(), 2, "{sums:?}");
    assert_eq!(sums[0], ("CARRIER".to_owned(), 199.99), "{sums:?}");
    assert_eq!(sums[1], ("INPATIENT".to_owned(), 0.0), "{sums:?}");
}

/// A Parquet-only output resolves an export without Patients from its own `bene_xref` parts.
#[test]
fn a_parquet_only_output_resolves_mbis_from_earlier_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let jan = "2026-01-05T10:00:00.000+00:00";
    let c1 = first_carrier(jan);
    let i1 = first_inpatient(jan);
    let out = tmp.join("out");
    let e1 = write_export(&tmp.join("e1"), &[&c1], true);
    let r1 = load(&e1, &out, "r1", &["--format", "parquet"]);
    assert_eq!(r1["beneficiaries"]["unresolved_claims"], 0, "{r1:#}");
    let e2 = write_export(&tmp.join("e2"), &[&i1], false);
    let r2 = load(&e2, &out, "r2", &["--format", "parquet"]);
    assert_eq!(r2["beneficiaries"]["with_mbi"], 0, "{r2:#}");
    assert_eq!(r2["beneficiaries"]["known"], 1, "{r2:#}");
    assert_eq!(r2["beneficiaries"]["unresolved_claims"], 0, "{r2:#}");
    assert!(!out.join("claimline.sqlite").exists());
}

/// One output keeps one version rule: switching `--all-versions` on or off is refused (exit 2),
/// into a database and into Parquet alone (whose runs the check read too late: found by a
/// review, a Parquet output switched had `current/` keep both versions of an untouched claim).
#[test]
fn switching_the_version_rule_on_an_output_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let c1 = first_carrier("2026-01-05T10:00:00.000+00:00");
    let e1 = write_export(&tmp.join("e1"), &[&c1], true);
    for (name, format) in [("both", &[][..]), ("parquet", &["--format", "parquet"][..])] {
        let out = tmp.join(name);
        load(&e1, &out, "r1", format);
        let r = claimline(
            tmp,
            &[
                &[
                    "load",
                    s(&e1),
                    "--out",
                    s(&out),
                    "--run-id",
                    "r2",
                    "--all-versions",
                ][..],
                format,
            ]
            .concat(),
        );
        assert_eq!(
            r.status.code(),
            Some(2),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(String::from_utf8_lossy(&r.stderr).contains("--all-versions"));
        load(&e1, &out, "r3", format);
    }
}

/// A beneficiary's new MBI: the run's own Patient wins over what `bene_xref` holds, and
/// `bene_xref` and `cclf9` are replaced for that beneficiary (the old current MBI becomes a
/// previous one).
#[test]
fn a_new_mbi_in_a_later_patient_replaces_the_crosswalk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let jan = "2026-01-05T10:00:00.000+00:00";
    let c1 = first_carrier(jan);
    let i1 = first_inpatient(jan);
    let out = tmp.join("out");
    let e1 = write_export(&tmp.join("e1"), &[&c1], true);
    load(&e1, &out, "r1", &[]);

    let e2 = write_export(&tmp.join("e2"), &[&i1], true);
    let mut patient: Value = serde_json::from_str(
        std::fs::read_to_string(e2.join("Patient.ndjson"))
            .expect("patient")
            .trim(),
    )
    .expect("JSON");
    let current = "https://bluebutton.cms.gov/resources/codesystem/identifier-currency";
    for ident in patient["identifier"].as_array_mut().expect("identifiers") {
        for coding in ident["type"]["coding"].as_array_mut().into_iter().flatten() {
            for ext in coding["extension"].as_array_mut().into_iter().flatten() {
                if ext["url"] == current && ext["valueCoding"]["code"] == "current" {
                    ext["valueCoding"]["code"] = Value::from("historic");
                }
            }
        }
    }
    let mut new = patient["identifier"][1].clone();
    new["value"] = Value::from("1EG4TE5MK73");
    new["type"]["coding"][0]["extension"][0]["valueCoding"]["code"] = Value::from("current");
    patient["identifier"]
        .as_array_mut()
        .expect("identifiers")
        .push(new);
    std::fs::write(e2.join("Patient.ndjson"), patient.to_string() + "\n").expect("write");
    let r2 = load(&e2, &out, "r2", &[]);
    assert_eq!(r2["beneficiaries"]["unresolved_claims"], 0, "{r2:#}");
    let db = out.join("claimline.sqlite");
    let mbi = |sql: &str| -> String {
        Connection::open(&db)
            .expect("open")
            .query_row(sql, [], |r| r.get(0))
            .expect("query")
    };
    assert_eq!(
        mbi("SELECT BENE_MBI_ID FROM cclf1 WHERE _resource_id = 'inpatient-3001'"),
        "1EG4TE5MK73"
    );
    // The earlier claim keeps the MBI it was loaded with; join through bene_xref for today's.
    assert_eq!(
        mbi("SELECT BENE_MBI_ID FROM cclf5 WHERE _resource_id = 'carrier-1001' LIMIT 1"),
        "3456789"
    );
    assert_eq!(
        mbi("SELECT MBI FROM bene_xref WHERE MBI_CURRENT = 1"),
        "1EG4TE5MK73"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM bene_xref"), 5);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM cclf9 WHERE CRNT_NUM = '1EG4TE5MK73'"
        ),
        4
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM cclf9"), 4);
    assert_eq!(mbi("SELECT BENE_MBI_ID FROM cclf8"), "1EG4TE5MK73");
}

/// The current rows of a beneficiary table by the README's Parquet rule: per resource
/// (`_resource_id`; these tests load one API version) its head is the version with the latest
/// `_last_updated` (a missing one oldest), then the latest `_run_id`, across `bene_xref`,
/// `cclf8` and `cclf9`, among the runs `_claimline_runs.json` records; `table`'s rows are that
/// version's. Returns `_resource_id` → the rows' `column` values.
fn parquet_current_by_resource(
    root: &Path,
    table: &str,
    column: &str,
) -> BTreeMap<String, Vec<String>> {
    type Head = (Option<i64>, String);
    let recorded = crate::crash::parquet_runs(root.parent().expect("the output folder"));
    let mut head: BTreeMap<String, Head> = BTreeMap::new();
    for t in ["bene_xref", "cclf8", "cclf9"] {
        for b in batches(root, t) {
            let ids = strings(&b, "_resource_id");
            let runs = strings(&b, "_run_id");
            let lu = b
                .column_by_name("_last_updated")
                .expect("_last_updated")
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("timestamp");
            for i in 0..b.num_rows() {
                let h = (
                    (!lu.is_null(i)).then(|| lu.value(i)),
                    runs[i].clone().expect("run"),
                );
                if !recorded.contains(&h.1) {
                    continue;
                }
                let e = head
                    .entry(ids[i].clone().expect("id"))
                    .or_insert_with(|| h.clone());
                if h > *e {
                    *e = h;
                }
            }
        }
    }
    // `table`'s rows of each resource's head version (one version per resource and run).
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in batches(root, table) {
        let ids = strings(&b, "_resource_id");
        let runs = strings(&b, "_run_id");
        let values = strings(&b, column);
        for i in 0..b.num_rows() {
            let id = ids[i].clone().expect("id");
            if head
                .get(&id)
                .is_some_and(|h| Some(&h.1) == runs[i].as_ref())
            {
                out.entry(id)
                    .or_default()
                    .push(values[i].clone().unwrap_or_else(|| "NULL".into()));
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Regression (issue 14): an older export loaded after a newer one must not replace a
/// beneficiary's rows in SQLite while Parquet's rule keeps the newer ones: both pick the rows
/// with the latest `meta.lastUpdated`, whatever the load order.
#[test]
fn an_older_export_loaded_after_a_newer_one_keeps_the_newer_beneficiary_in_both_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let c1 = first_carrier("2026-01-05T10:00:00.000+00:00");
    let export = |name: &str, family: &str, last_updated: &str| {
        let dir = write_export(&tmp.join(name), &[&c1], true);
        let mut patient = real("Patient.ndjson", 0);
        patient["meta"]["lastUpdated"] = Value::from(last_updated);
        patient["name"][0]["family"] = Value::from(family);
        std::fs::write(dir.join("Patient.ndjson"), patient.to_string() + "\n").expect("write");
        dir
    };
    // Same instant in both forms once: `…:00Z` and `…:00.5Z` must compare as instants.
    let newer = export("newer", "Newer", "2026-03-01T00:00:00.5Z");
    let older = export("older", "Older", "2026-03-01T00:00:00Z");
    let out = tmp.join("out");
    load(&newer, &out, "r1", &[]);
    load(&older, &out, "r2", &[]);
    let db = out.join("claimline.sqlite");
    let conn = Connection::open(&db).expect("open");
    let family: Vec<String> = conn
        .prepare("SELECT BENE_LAST_NAME FROM cclf8")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(family, ["Newer"], "SQLite keeps the newer Patient's row");
    let parquet = parquet_current_by_resource(&out.join("parquet"), "cclf8", "BENE_LAST_NAME");
    assert_eq!(
        parquet.values().flatten().collect::<Vec<_>>(),
        ["Newer"],
        "the README's Parquet rule agrees"
    );
    // bene_xref likewise: the newer Patient's rows, in both.
    let runs: Vec<String> = conn
        .prepare("SELECT DISTINCT _run_id FROM bene_xref")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(runs, ["r1"]);
    let parquet_runs = parquet_current_by_resource(&out.join("parquet"), "bene_xref", "_run_id");
    assert!(parquet_runs.values().flatten().all(|r| r == "r1"));
    // And a newer one after that replaces it in both.
    let newest = export("newest", "Newest", "2026-04-01T00:00:00Z");
    load(&newest, &out, "r3", &[]);
    let family: String = conn
        .query_row("SELECT BENE_LAST_NAME FROM cclf8", [], |r| r.get(0))
        .expect("row");
    assert_eq!(family, "Newest");
    let parquet = parquet_current_by_resource(&out.join("parquet"), "cclf8", "BENE_LAST_NAME");
    assert_eq!(parquet.values().flatten().collect::<Vec<_>>(), ["Newest"]);
    // Instants a microsecond apart, within one millisecond (SQLite's `unixepoch(…, 'subsec')`
    // tied them, and the older one loaded last replaced the newer in SQLite only).
    load(
        &export("micro2", "Microtwo", "2026-05-01T00:00:00.000002Z"),
        &out,
        "r4",
        &[],
    );
    load(
        &export("micro1", "Microone", "2026-05-01T00:00:00.000001Z"),
        &out,
        "r5",
        &[],
    );
    let family: String = conn
        .query_row("SELECT BENE_LAST_NAME FROM cclf8", [], |r| r.get(0))
        .expect("row");
    assert_eq!(family, "Microtwo");
    let parquet = parquet_current_by_resource(&out.join("parquet"), "cclf8", "BENE_LAST_NAME");
    assert_eq!(parquet.values().flatten().collect::<Vec<_>>(), ["Microtwo"]);
}

/// A refresh of the current tables cut short after the run's commit (here: failing after the
/// first table's swap) leaves the run committed and says so; the next load rebuilds every
/// bucket from the history, and `current/` equals SQLite again.
#[test]
fn a_refresh_of_the_current_tables_cut_short_is_rebuilt_by_the_next_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, _) = refresh_cut_short(tmp.path());
    let Versions { o1, .. } = versions();
    let r3 = load(
        &write_export(&tmp.path().join("e3"), &[&o1], true),
        &out,
        "r3",
        &[],
    );
    assert_eq!(r3["current"]["full"], true, "{r3:#}");
    same_current_as_sqlite(&out, "the next load");
}

#[test]
fn a_refresh_cut_short_and_its_run_retried_holds_each_row_once() {
    // The retry's refresh finds `cclf1` showing its run's version already, and the state of
    // the run before: it rebuilds every bucket rather than keep those rows beside its own.
    let tmp = tempfile::tempdir().expect("tempdir");
    let (out, e2) = refresh_cut_short(tmp.path());
    let r2 = load(&e2, &out, "r2", &[]);
    assert_eq!(r2["current"]["full"], true, "{r2:#}");
    same_current_as_sqlite(&out, "the run retried");
}

/// An output of run r1, then of run r2 whose refresh of `current/` stopped after its first
/// swap (a fault point): the output folder and r2's export.
fn refresh_cut_short(tmp: &Path) -> (PathBuf, PathBuf) {
    let Versions {
        c1,
        c1_cancelled,
        o1,
        i1,
        ..
    } = versions();
    let out = tmp.join("out");
    load(
        &write_export(&tmp.join("e1"), &[&c1, &o1], true),
        &out,
        "r1",
        &[],
    );
    let e2 = write_export(&tmp.join("e2"), &[&c1_cancelled, &i1], true);
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
        .args(["load", s(&e2), "--out", s(&out), "--run-id", "r2", "--json"])
        .env("CLAIMLINE_FAULT", "current.swap@1:fail")
        .output()
        .expect("runs");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("were not refreshed"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(json(&r)["current"].is_null());
    (out, e2)
}

/// The claim tables the checks below compare.
pub(crate) fn claim_tables_compared() -> Vec<String> {
    [
        "cclf1", "cclf2", "cclf3", "cclf4", "cclf5", "cclf6", "cclf7", "cclfa", "cclfb",
    ]
    .map(String::from)
    .to_vec()
}

/// `current/` holds SQLite's current rows of every claim table, each once.
fn same_current_as_sqlite(out: &Path, step: &str) {
    let db = out.join("claimline.sqlite");
    let claim = claim_tables_compared();
    assert_eq!(
        materialised_current(out, &claim),
        sqlite_counts(&db, &claim),
        "{step}"
    );
}

/// Parquet's rule (the README's query) and `current/` hold SQLite's current rows of every claim
/// table.
fn every_output_agrees(out: &Path, step: &str) {
    let db = out.join("claimline.sqlite");
    let claim = claim_tables_compared();
    assert_eq!(
        parquet_current(&out.join("parquet"), &claim),
        sqlite_counts(&db, &claim),
        "{step}: Parquet's rule"
    );
    same_current_as_sqlite(out, &format!("{step}: current/"));
}

/// The row errors file of a load: (resource id, line) of each, in its order.
fn row_errors(out: &Path, run_id: &str) -> Vec<(String, u64)> {
    let path = out
        .join("rejects")
        .join(format!("{run_id}-row-errors.ndjson"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            (
                v["resource_id"].as_str().expect("resource id").to_owned(),
                v["line"].as_u64().expect("line"),
            )
        })
        .collect()
}

/// The row errors of the versions a load keeps are written, in the input's order, each with its
/// own line; a superseded version's, and a stale one's (an earlier run holds a newer version),
/// are not; an EOB without a claim group (its own claim) keeps its place among them.
#[test]
fn row_errors_are_the_kept_versions_in_input_order() {
    row_errors_in_input_order(&[]);
}

#[test]
fn row_errors_in_input_order_with_the_history_on_disk() {
    row_errors_in_input_order(ON_DISK);
}

fn row_errors_in_input_order(extra: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let huge = |mut eob: Value| {
        eob["payment"]["amount"]["value"] = serde_json::json!(1e16);
        eob
    };
    let old = huge(version(
        "ExplanationOfBenefit-carrier.ndjson",
        "carrier-1001",
        "7001",
        "2026-01-05T10:00:00.000+00:00",
        "active",
    ));
    let new = huge(version(
        "ExplanationOfBenefit-carrier.ndjson",
        "carrier-1002",
        "7001",
        "2026-02-05T10:00:00.000+00:00",
        "active",
    ));
    let inpatient = huge(first_inpatient("2026-01-05T10:00:00.000+00:00"));
    let mut groupless = huge(version(
        "ExplanationOfBenefit-carrier.ndjson",
        "carrier-1003",
        "7009",
        "2026-01-05T10:00:00.000+00:00",
        "active",
    ));
    groupless["identifier"]
        .as_array_mut()
        .expect("identifiers")
        .retain(|i| i["system"] != "https://bluebutton.cms.gov/resources/identifier/claim-group");
    let fine = first_carrier("2026-01-05T10:00:00.000+00:00");
    let out = tmp.join("out");
    // Lines 1–5: a version without errors, a kept version, the superseded one, an EOB without
    // a group, the one that supersedes it.
    let e1 = write_export(
        &tmp.join("e1"),
        &[&fine, &inpatient, &old, &groupless, &new],
        true,
    );
    let no_report = [&["--no-report"], extra].concat();
    let report = load(&e1, &out, "r1", &no_report);
    let got = row_errors(&out, "r1");
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    assert!(!ids.contains(&"carrier-1001"), "{got:?}");
    let lines: Vec<u64> = got.iter().map(|(_, l)| *l).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "in input order: {got:?}");
    for (id, line) in [("inpatient-3001", 2), ("carrier-1002", 5)] {
        assert!(got.contains(&(id.to_owned(), line)), "{id}: {got:?}");
    }
    // The EOB without a group is its own claim, kept: its errors are there, on its own line.
    assert!(got.contains(&("carrier-1003".to_owned(), 4)), "{got:?}");
    assert!(
        got.iter().all(|(id, l)| id != "carrier-1003" || *l == 4),
        "{got:?}"
    );
    assert_eq!(
        report["row_errors"]["count"].as_u64(),
        Some(got.len() as u64),
        "{report:#}"
    );
    // A second run replays the superseded version: stale, its errors are not written.
    let e2 = write_export(&tmp.join("e2"), &[&old, &inpatient], false);
    load(&e2, &out, "r2", &no_report);
    let got = row_errors(&out, "r2");
    assert!(
        got.iter().all(|(id, _)| id != "carrier-1001"),
        "a stale version's errors: {got:?}"
    );
}

/// The claim history held on disk gives the same files as held in memory, byte for byte: the
/// generated v2 export (631 EOBs, cancelled and adjusted versions among them) loaded twice as two
/// runs (the second decided against the first's stored heads), with the history in memory, past
/// a budget of one byte (every EOB a run of its own: runs merged 16 at a time, twice over) and
/// of 2 KiB; every version kept too. Parquet's files, every SQLite table (its claim events
/// among them) and the row errors are the same.
#[test]
fn the_history_on_disk_gives_the_same_files_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let export = crate::repo_root().join("sample-data/generated/v2");
    for mode in [&[][..], &["--all-versions"][..]] {
        let outputs: Vec<PathBuf> = [&[][..], ON_DISK, &["--history-memory", "2KiB"][..]]
            .iter()
            .enumerate()
            .map(|(i, budget)| {
                let out = tmp.join(format!("out{}-{i}", mode.len()));
                for run in ["r1", "r2"] {
                    load(&export, &out, run, &[mode, budget].concat());
                }
                assert!(!out.join(".claimline-history").exists());
                out
            })
            .collect();
        let files = |out: &Path| {
            (
                crate::crash::parquet_files(out),
                crate::crash::sqlite_dump(&out.join("claimline.sqlite"), true),
                std::fs::read(out.join("rejects/r2-row-errors.ndjson")).ok(),
            )
        };
        let memory = files(&outputs[0]);
        assert!(memory.1["_claimline_claims"].len() > 600, "{mode:?}");
        for out in &outputs[1..] {
            assert!(files(out) == memory, "{mode:?}: {} differs", out.display());
        }
    }
}
