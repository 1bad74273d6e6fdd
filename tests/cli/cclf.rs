//! The CCLF claim tables (issue 5): golden rows per table and API version on the real CMS
//! samples, values checked by hand, coverage against the crosswalk CSVs, MBI resolution, v3
//! partial claims, and `claimline views`.
//!
//! Golden files live in `tests/golden/cclf/<version>/<table>.ndjson`: a first line with the
//! columns in order, then one JSON object per row (declared CCLF columns plus `_resource_id` and
//! `_claim_key`). Rows are compared as an unordered set; the column order is checked. Re-bless on
//! purpose with `BLESS=1 cargo test -p claimline --test cli cclf`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::{claimline, json, repo_root, sample_data};

const TABLES: [&str; 9] = [
    "cclf1", "cclf2", "cclf3", "cclf4", "cclf5", "cclf6", "cclf7", "cclfa", "cclfb",
];

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Loads one sample folder (`stu3`, `r4`, `v3`) once per test binary with the default views and
/// returns the SQLite database.
fn loaded(folder: &'static str) -> &'static Path {
    static DBS: OnceLock<std::sync::Mutex<BTreeMap<&'static str, &'static Path>>> = OnceLock::new();
    let map = DBS.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(folder) {
        return p;
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cclf-golden-{folder}"));
    let _ = std::fs::remove_dir_all(&out);
    // The samples with a manifest that gives only a transactionTime, so CCLF8's BENE_AGE (as of
    // the export) does not move with the clock.
    let input = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cclf-golden-{folder}-in"));
    let _ = std::fs::remove_dir_all(&input);
    std::fs::create_dir_all(&input).expect("input folder");
    for f in std::fs::read_dir(sample_data().join(folder))
        .expect("samples")
        .flatten()
    {
        std::fs::copy(f.path(), input.join(f.file_name())).expect("copy sample");
    }
    std::fs::write(
        input.join("manifest.json"),
        r#"{"transactionTime": "2026-01-01T00:00:00.000Z"}"#,
    )
    .expect("manifest");
    let r = claimline(
        &repo_root(),
        &[
            "load",
            s(&input),
            "--out",
            s(&out),
            "--format",
            "sqlite",
            "--run-id",
            "golden",
            // The samples give unrelated claims one placeholder claim group (900): keep them all.
            "--all-versions",
        ],
    );
    assert!(
        r.status.success(),
        "load {folder}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let db: &'static Path = Box::leak(out.join("claimline.sqlite").into_boxed_path());
    map.insert(folder, db);
    db
}

fn value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef as R;
    match v {
        R::Null => Value::Null,
        R::Integer(i) => Value::from(i),
        R::Real(f) => Value::String(format!("{f}")),
        R::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        R::Blob(_) => Value::String("<blob>".into()),
    }
}

/// The CCLF columns (those before the lineage) and the rows of `table` for `version`, each row
/// with `_resource_id` and `_claim_key` added.
fn table_rows(db: &Path, table: &str, version: &str) -> (Vec<String>, Vec<Map<String, Value>>) {
    let conn = Connection::open(db).expect("open sqlite");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT * FROM \"{table}\" WHERE _api_version = ?1"
        ))
        .expect("prepare");
    let names: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let lineage = names
        .iter()
        .position(|c| c == "_resource_id")
        .expect("lineage columns");
    let mut keep: Vec<usize> = (0..lineage).collect();
    keep.push(lineage);
    // Claim tables add `_claim_key`; beneficiary tables (CCLF8, CCLF9, bene_xref) have none.
    keep.extend(names.iter().position(|c| c == "_claim_key"));
    let rows = stmt
        .query_map([version], |r| {
            let mut m = Map::new();
            for &i in &keep {
                m.insert(names[i].clone(), value(r.get_ref(i)?));
            }
            Ok(m)
        })
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (names[..lineage].to_vec(), rows)
}

fn golden(version: &str, table: &str) {
    let folder = match version {
        "v1" => "stu3",
        "v2" => "r4",
        _ => "v3",
    };
    let (columns, rows) = table_rows(loaded(folder), table, version);
    let mut lines: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(r).expect("json"))
        .collect();
    lines.sort();
    let path = repo_root().join(format!("tests/golden/cclf/{version}/{table}.ndjson"));
    let header = serde_json::json!({ "columns": columns }).to_string();
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("golden folder");
        let mut text = header.clone();
        text.push('\n');
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it after a review)", path.display()));
    let mut expected_lines = expected.lines();
    assert_eq!(
        expected_lines.next(),
        Some(header.as_str()),
        "{table} {version}: columns or their order changed"
    );
    let mut want: Vec<&str> = expected_lines.filter(|l| !l.is_empty()).collect();
    want.sort_unstable();
    let got: Vec<&str> = lines.iter().map(String::as_str).collect();
    let missing: Vec<&&str> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&&str> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && want.len() == got.len(),
        "{table} {version} differs from {}:\nmissing:\n{missing:#?}\nunexpected:\n{extra:#?}",
        path.display()
    );
}

macro_rules! golden_tests {
    ($($name:ident: $version:literal $table:literal,)*) => {
        $(#[test]
        fn $name() {
            golden($version, $table);
        })*
    };
}

golden_tests! {
    golden_v1_cclf1: "v1" "cclf1", golden_v1_cclf2: "v1" "cclf2", golden_v1_cclf3: "v1" "cclf3",
    golden_v1_cclf4: "v1" "cclf4", golden_v1_cclf5: "v1" "cclf5", golden_v1_cclf6: "v1" "cclf6",
    golden_v1_cclf7: "v1" "cclf7", golden_v1_cclfa: "v1" "cclfa", golden_v1_cclfb: "v1" "cclfb",
    golden_v2_cclf1: "v2" "cclf1", golden_v2_cclf2: "v2" "cclf2", golden_v2_cclf3: "v2" "cclf3",
    golden_v2_cclf4: "v2" "cclf4", golden_v2_cclf5: "v2" "cclf5", golden_v2_cclf6: "v2" "cclf6",
    golden_v2_cclf7: "v2" "cclf7", golden_v2_cclfa: "v2" "cclfa", golden_v2_cclfb: "v2" "cclfb",
    golden_v3_cclf1: "v3" "cclf1", golden_v3_cclf2: "v3" "cclf2", golden_v3_cclf3: "v3" "cclf3",
    golden_v3_cclf4: "v3" "cclf4", golden_v3_cclf5: "v3" "cclf5", golden_v3_cclf6: "v3" "cclf6",
    golden_v3_cclf7: "v3" "cclf7", golden_v3_cclfa: "v3" "cclfa", golden_v3_cclfb: "v3" "cclfb",
    golden_v1_cclf9: "v1" "cclf9", golden_v2_cclf9: "v2" "cclf9", golden_v3_cclf9: "v3" "cclf9",
    golden_v1_bene_xref: "v1" "bene_xref", golden_v2_bene_xref: "v2" "bene_xref",
    golden_v3_bene_xref: "v3" "bene_xref",
    golden_v1_cclf8: "v1" "cclf8", golden_v2_cclf8: "v2" "cclf8", golden_v3_cclf8: "v3" "cclf8",
}

/// One row of `table` by resource id and (for line tables) a column value.
fn row(
    version: &str,
    table: &str,
    resource: &str,
    key: Option<(&str, &str)>,
) -> Map<String, Value> {
    let folder = match version {
        "v1" => "stu3",
        "v2" => "r4",
        _ => "v3",
    };
    let (_, rows) = table_rows(loaded(folder), table, version);
    rows.into_iter()
        .find(|r| {
            (r["_resource_id"] == resource || (resource.is_empty() && r["_resource_id"].is_null()))
                && key.is_none_or(|(c, v)| r[c] == Value::String(v.to_owned()))
        })
        .unwrap_or_else(|| panic!("{table} {version}: no row for {resource} {key:?}"))
}

/// Values read by hand from the sample files (the record and field named in each assertion).
#[test]
fn values_checked_by_hand() {
    // v3 hospice (sample-data/real/v3/ExplanationOfBenefit-hospice.ndjson line 1, no `id`; its
    // `uc` identifier is NON-UNIQUE-ID-HERE, its id and claim key): diagnosis[0] is `principal`
    // M48.062, which CCLF writes without the dot.
    let hospice = row("v3", "cclf1", "NON-UNIQUE-ID-HERE", None);
    assert_eq!(hospice["PRNCPL_DGNS_CD"], "M48062");
    assert_eq!(hospice["CUR_CLM_UNIQ_ID"], "NON-UNIQUE-ID-HERE");
    assert_eq!(hospice["_claim_key"], "NON-UNIQUE-ID-HERE");
    // The same claim's diagnosis 5 (`E78.00`, type other) in CCLF4.
    let dx = row(
        "v3",
        "cclf4",
        "NON-UNIQUE-ID-HERE",
        Some(("CLM_VAL_SQNC_NUM", "5")),
    );
    assert_eq!(dx["CLM_DGNS_CD"], "E7800");
    assert_eq!(dx["DGNS_PRCDR_ICD_IND"], "0");

    // v2 inpatient-333333222222: payment.amount.value 7699.48, principal diagnosis A40
    // (icd-10-cm), nch_clm_type_cd 60.
    let ip = row("v2", "cclf1", "inpatient-333333222222", None);
    assert_eq!(ip["CLM_PMT_AMT"], "7699.48");
    assert_eq!(ip["PRNCPL_DGNS_CD"], "A40");
    assert_eq!(ip["CLM_TYPE_CD"], "60");
    assert_eq!(ip["DGNS_PRCDR_ICD_IND"], "0");

    // v2 carrier-9991831999 line 1: careTeamSequence [3, 4] -> careTeam 3 (performing) NPI
    // 1923124; diagnosisSequence [5] -> diagnosis 5 = A52.
    let line = row(
        "v2",
        "cclf5",
        "carrier-9991831999",
        Some(("CLM_LINE_NUM", "1")),
    );
    assert_eq!(line["RNDRG_PRVDR_NPI_NUM"], "1923124");
    assert_eq!(line["CLM_LINE_DGNS_CD"], "A52");
    assert_eq!(line["CLM_DGNS_1_CD"], "A02");
    // The beneficiary (Patient/567834) has the current MBI 3456789 in r4/Patient.ndjson (its
    // other us-mbi identifier, 3456689, is flagged historic).
    assert_eq!(line["BENE_MBI_ID"], "3456789");

    // v3 HHA 1071939711295: the type-of-bill codings are the prefixes 3, 33, 33X; CCLF takes the
    // last character of each.
    let hha = row("v3", "cclf1", "1071939711295", None);
    assert_eq!(hha["CLM_BILL_FAC_TYPE_CD"], "3");
    assert_eq!(hha["CLM_BILL_CLSFCTN_CD"], "3");
    assert_eq!(hha["CLM_BILL_FREQ_CD"], "X");

    // v3 SNF 566745788569: the operating physician (role `operating`) is 1720749690, not the
    // `otheroperating` 1023051596 BCDA's published path picks.
    let snf = row("v3", "cclf1", "566745788569", None);
    assert_eq!(snf["OPRTG_PRVDR_NPI_NUM"], "1720749690");
    assert_eq!(snf["OTHR_PRVDR_NPI_NUM"], "1023051596");

    // v3 SNF 6288598524935, line 1: one `modifier` CodeableConcept of five codings, the line's
    // five modifiers in order (found by a review: only the first was read).
    let line = row("v3", "cclf2", "6288598524935", Some(("CLM_LINE_NUM", "1")));
    let modifiers: Vec<&str> = (1..=5)
        .map(|n| {
            line[&format!("HCPCS_{n}_MDFR_CD")]
                .as_str()
                .unwrap_or("NULL")
        })
        .collect();
    assert_eq!(modifiers, ["23", "PC", "22", "US", "28"]);
    // v3 inpatient 9688880648059: the primary payer code in CLM-NCH-PRMRY-PYR-CD, as CMS's
    // responses code it (the data dictionary's CLM-PRMRY-PYR-CD gave NULL).
    let inpatient = row("v3", "cclf1", "9688880648059", None);
    assert_eq!(inpatient["CLM_NCH_PRMRY_PYR_CD"], "X");
}

/// A CCLF column each version maps but for which no sample record carries a value, with why.
const NO_SAMPLE_VALUE: &[(&str, &str, &str)] = &[
    // The STU3 claims' beneficiary (Patient/567834) carries only an mbi-hash identifier.
    ("v1", "*", "BENE_MBI_ID"),
    // Of the v3 claims' beneficiaries only 178083966 (carrier, DME) has a Patient in the samples.
    ("v3", "cclf1", "BENE_MBI_ID"),
    ("v3", "cclf2", "BENE_MBI_ID"),
    ("v3", "cclf3", "BENE_MBI_ID"),
    ("v3", "cclf4", "BENE_MBI_ID"),
    ("v3", "cclf7", "BENE_MBI_ID"),
    ("v3", "cclfa", "BENE_MBI_ID"),
    // Second to fifth modifiers: no v1/v2 sample line has more than one; the v3 carrier line
    // has two.
    ("v1", "*", "HCPCS_2_MDFR_CD"),
    ("v1", "*", "HCPCS_3_MDFR_CD"),
    ("v1", "*", "HCPCS_4_MDFR_CD"),
    ("v1", "*", "HCPCS_5_MDFR_CD"),
    ("v2", "*", "HCPCS_2_MDFR_CD"),
    ("v2", "*", "HCPCS_3_MDFR_CD"),
    ("v2", "*", "HCPCS_4_MDFR_CD"),
    ("v2", "*", "HCPCS_5_MDFR_CD"),
    ("v3", "cclf5", "HCPCS_3_MDFR_CD"),
    ("v3", "cclf5", "HCPCS_4_MDFR_CD"),
    ("v3", "cclf5", "HCPCS_5_MDFR_CD"),
    // Claims-sourced fields the samples leave out (bfd-v3-shapes.md section 8 / 9).
    ("v3", "cclf1", "CLM_OP_SRVC_TYPE_CD"),
    ("v3", "cclf2", "CLM_REV_APC_HIPPS_CD"),
    ("v3", "cclf5", "CLM_RNDRG_PRVDR_TAX_NUM"),
    ("v3", "cclf5", "CLM_FED_TYPE_SRVC_CD"),
    ("v3", "cclf5", "CLM_LINE_PRMRY_PYR_CD"),
    ("v3", "cclf6", "CLM_FED_TYPE_SRVC_CD"),
    ("v3", "cclf6", "CLM_PRMRY_PYR_CD"),
    ("v3", "cclf7", "CLM_DSPNSNG_STUS_CD"),
    ("v3", "cclfa", "CLM_RLT_COND_CD"),
    ("v3", "cclfa", "CLM_1_REV_CNTR_ANSI_RSN_CD"),
    ("v3", "cclfa", "CLM_1_REV_CNTR_ANSI_GRP_CD"),
    ("v3", "cclfb", "CLM_LINE_CARR_HPSA_SCRCTY_CD"),
    // v1/v2 tax numbers are only in BFD's *WithTaxNumbers responses, not in these samples.
    ("v1", "cclf5", "CLM_RNDRG_PRVDR_TAX_NUM"),
    ("v2", "cclf5", "CLM_RNDRG_PRVDR_TAX_NUM"),
    // Claim-level codes the v3 carrier and DME samples do not carry (their supportingInfo and
    // item extensions were listed by hand).
    ("v3", "cclf5", "CLM_ADJSMT_TYPE_CD"),
    ("v3", "cclf5", "CLM_DISP_CD"),
    ("v3", "cclf6", "CLM_CARR_PMT_DNL_CD"),
    ("v3", "cclf6", "CLM_PRCSG_IND_CD"),
    ("v3", "cclf6", "CLM_ADJSMT_TYPE_CD"),
    ("v3", "cclf6", "CLM_DISP_CD"),
    // Benefit enhancement switches: the HHA sample has PDSCHRG_HCBS, SNF_WVR, TLHLTH and the
    // care-management waiver, two demo codes; no institutional sample has PBPMT or CPTATN, and no
    // sample has a line-level switch.
    ("v3", "cclfa", "CLM_NGACO_PBPMT_SW"),
    ("v3", "cclfa", "CLM_NGACO_CPTATN_SW"),
    ("v3", "*", "CLM_DEMO_3RD_NUM"),
    ("v3", "*", "CLM_DEMO_4TH_NUM"),
    ("v3", "*", "CLM_DEMO_5TH_NUM"),
    ("v3", "cclfb", "CLM_LINE_NGACO_PBPMT_SW"),
    ("v3", "cclfb", "CLM_LINE_NGACO_PDSCHRG_HCBS_SW"),
    ("v3", "cclfb", "CLM_LINE_NGACO_SNF_WVR_SW"),
    ("v3", "cclfb", "CLM_LINE_NGACO_TLHLTH_SW"),
    ("v3", "cclfb", "CLM_LINE_NGACO_CPTATN_SW"),
    ("v3", "cclfb", "CLM_NGACO_CMG_WVR_SW"),
    // Diagnoses 10-12 (v1) and 7-12 (v2): the carrier samples have fewer.
    ("v1", "cclf5", "CLM_DGNS_10_CD"),
    ("v1", "cclf5", "CLM_DGNS_11_CD"),
    ("v1", "cclf5", "CLM_DGNS_12_CD"),
    ("v2", "cclf5", "CLM_DGNS_7_CD"),
    ("v2", "cclf5", "CLM_DGNS_8_CD"),
    ("v2", "cclf5", "CLM_DGNS_9_CD"),
    ("v2", "cclf5", "CLM_DGNS_10_CD"),
    ("v2", "cclf5", "CLM_DGNS_11_CD"),
    ("v2", "cclf5", "CLM_DGNS_12_CD"),
    ("v3", "cclf5", "CLM_DGNS_4_CD"),
    ("v3", "cclf5", "CLM_DGNS_5_CD"),
    ("v3", "cclf5", "CLM_DGNS_6_CD"),
    ("v3", "cclf5", "CLM_DGNS_7_CD"),
    ("v3", "cclf5", "CLM_DGNS_8_CD"),
    ("v3", "cclf5", "CLM_DGNS_9_CD"),
    ("v3", "cclf5", "CLM_DGNS_10_CD"),
    ("v3", "cclf5", "CLM_DGNS_11_CD"),
    ("v3", "cclf5", "CLM_DGNS_12_CD"),
];

/// A view column: name, FHIRPath, tags as `(name, value)`.
type ViewColumn = (String, String, Vec<(String, String)>);

/// The name, path and `tag`s of every column of a view file (its top-level selects), in order.
fn view_columns(version: &str, table: &str) -> Vec<ViewColumn> {
    let path = repo_root().join(format!("mappings/cclf/{version}/{table}.json"));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("view")).expect("json");
    v["select"]
        .as_array()
        .expect("selects")
        .iter()
        .flat_map(|s| s["column"].as_array().expect("columns"))
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["path"].as_str().expect("path").to_owned(),
                c["tag"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        (
                            t["name"].as_str().unwrap_or_default().to_owned(),
                            t["value"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Every mapped column is non-NULL on at least one sample row (v3 with `--include-partial`, so
/// the Shared System claims count), unless listed in [`NO_SAMPLE_VALUE`] with its reason; and
/// every listed column really is NULL everywhere (the list cannot go stale).
#[test]
fn every_mapped_column_has_a_value_on_some_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let r = claimline(
        dir.path(),
        &[
            "load",
            s(&sample_data()),
            "--out",
            s(&out),
            "--format",
            "sqlite",
            "--include-partial",
            "--all-versions",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let db = out.join("claimline.sqlite");
    let mut problems = Vec::new();
    for version in ["v1", "v2", "v3"] {
        for table in TABLES {
            let (_, rows) = table_rows(&db, table, version);
            for (name, path, _) in view_columns(version, table) {
                let listed = NO_SAMPLE_VALUE.iter().any(|(v, t, c)| {
                    (*v == "*" || *v == version) && (*t == "*" || *t == table) && *c == name
                });
                let has_value = rows.iter().any(|r| !r[&name].is_null());
                if path == "{}" {
                    continue;
                }
                if !has_value && !listed {
                    problems.push(format!(
                        "{version} {table}.{name}: mapped but NULL on every sample"
                    ));
                }
                if has_value && listed && !rows.is_empty() {
                    problems.push(format!(
                        "{version} {table}.{name}: listed as absent but has a value"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A minimal CSV reader (RFC 4180 quoting) for the crosswalk files.
fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut field = String::new();
    let mut record = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    let header = records.remove(0);
    records
        .into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// Every CCLF field of the layouts is a column, in CCLF order, in every version; and every
/// field the crosswalk CSVs give a path for is mapped or carries a `claimline/unmapped` tag.
#[test]
fn coverage_against_the_crosswalk() {
    let reference = repo_root().join("mappings/cclf/reference");
    let crosswalk = read_csv(&reference.join("cclf_crosswalk.csv"));
    let v3: BTreeMap<(String, String), String> =
        read_csv(&reference.join("cclf_crosswalk_bcda_v3.csv"))
            .into_iter()
            .map(|r| {
                (
                    (r["cclf_file"].clone(), r["field_name"].clone()),
                    r["bcda_v3_fhirpath"].clone(),
                )
            })
            .collect();
    let mut problems = Vec::new();
    for table in TABLES {
        let file = table.to_ascii_uppercase();
        let fields: Vec<&BTreeMap<String, String>> = crosswalk
            .iter()
            .filter(|r| r["cclf_file"] == file)
            .collect();
        assert!(!fields.is_empty(), "{file} in the crosswalk");
        for version in ["v1", "v2", "v3"] {
            let columns = view_columns(version, table);
            let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
            let want: Vec<&str> = fields.iter().map(|r| r["field_name"].as_str()).collect();
            if names != want {
                problems.push(format!(
                    "{version} {table}: columns are not the CCLF fields in order"
                ));
                continue;
            }
            for r in &fields {
                let field = &r["field_name"];
                let csv_path = match version {
                    "v1" => r["fhir_stu3_path"].clone(),
                    "v2" => r["fhir_r4_path"].clone(),
                    _ => v3[&(file.clone(), field.clone())].clone(),
                };
                let (_, path, tags) = columns
                    .iter()
                    .find(|c| &c.0 == field)
                    .expect("column present");
                let tag = |n: &str| tags.iter().any(|(k, _)| k == n);
                if !tag("cclf/field") || !tag("cclf/picture") {
                    problems.push(format!(
                        "{version} {table}.{field}: no cclf/field or cclf/picture tag"
                    ));
                }
                if path == "{}" && !tag("claimline/unmapped") {
                    problems.push(format!(
                        "{version} {table}.{field}: NULL without a claimline/unmapped reason"
                    ));
                }
                if !csv_path.trim().is_empty() && path == "{}" {
                    problems.push(format!("{version} {table}.{field}: the crosswalk has a path but the view maps nothing"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every CCLF8 field is a column of `cclf8_patient` or `cclf8_coverage` (the views CCLF8 is joined
/// from) in every version, tagged with its field; one the crosswalk gives a path for is mapped
/// (a path, or filled by the link stage), and a NULL one says why.
#[test]
fn cclf8_fields_against_the_crosswalk() {
    let reference = repo_root().join("mappings/cclf/reference");
    let crosswalk = read_csv(&reference.join("cclf_crosswalk.csv"));
    let v3: BTreeMap<String, String> = read_csv(&reference.join("cclf_crosswalk_bcda_v3.csv"))
        .into_iter()
        .filter(|r| r["cclf_file"] == "CCLF8")
        .map(|r| (r["field_name"].clone(), r["bcda_v3_fhirpath"].clone()))
        .collect();
    let fields: Vec<&BTreeMap<String, String>> = crosswalk
        .iter()
        .filter(|r| r["cclf_file"] == "CCLF8")
        .collect();
    assert_eq!(fields.len(), 31);
    let mut problems = Vec::new();
    let mut mapped = BTreeMap::new();
    for version in ["v1", "v2", "v3"] {
        let mut columns = view_columns(version, "cclf8_patient");
        columns.extend(view_columns(version, "cclf8_coverage"));
        for r in &fields {
            let field = &r["field_name"];
            let csv_path = match version {
                "v1" => r["fhir_stu3_path"].clone(),
                "v2" => r["fhir_r4_path"].clone(),
                _ => v3[field].clone(),
            };
            let tagged = format!("CCLF8.{field}");
            let holders: Vec<&ViewColumn> = columns
                .iter()
                .filter(|c| c.2.iter().any(|(k, v)| k == "cclf/field" && *v == tagged))
                .collect();
            if holders.is_empty() || holders.iter().any(|c| &c.0 != field) {
                problems.push(format!(
                    "{version} {field}: no column of that name tagged with it"
                ));
                continue;
            }
            let is_mapped = holders.iter().any(|(_, path, tags)| {
                path != "{}" || tags.iter().any(|(k, _)| k == "claimline/link")
            });
            if is_mapped {
                *mapped.entry(version).or_insert(0) += 1;
            } else if !csv_path.trim().is_empty() && !csv_path.starts_with("ExplanationOfBenefit.")
            {
                problems.push(format!(
                    "{version} {field}: the crosswalk has a path but the views map nothing"
                ));
            } else if !holders
                .iter()
                .any(|c| c.2.iter().any(|(k, _)| k == "claimline/unmapped"))
            {
                problems.push(format!(
                    "{version} {field}: NULL without a claimline/unmapped reason"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // 31 fields less HICN, county and the two hospice dates.
    assert_eq!(mapped, BTreeMap::from([("v1", 27), ("v2", 27), ("v3", 27)]));
}

/// v3 partially adjudicated and prior-authorization EOBs are counted and left out, unless
/// `--include-partial`; unresolved beneficiaries are counted.
#[test]
fn v3_partial_claims_are_counted_and_left_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let v3 = sample_data().join("v3");
    let out = dir.path().join("default");
    let r = claimline(dir.path(), &["load", s(&v3), "--out", s(&out), "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = json(&r);
    // DME 3351266481401, outpatient 1071939711297 and 1071939711298, SNF 3233800161009 have
    // `outcome: partial`; the prior-authorization sample has `use: preauthorization`.
    assert_eq!(report["excluded"]["partial"], 4);
    assert_eq!(report["excluded"]["prior_auth"], 1);
    assert_eq!(report["tables"]["cclf6"], 0);
    // Patients 178083966, 517782585 and -300428640 have MBIs; of the 8 claims loaded only the
    // carrier claim's beneficiary (178083966) is among them.
    assert_eq!(report["beneficiaries"]["with_mbi"], 3);
    assert_eq!(
        report["beneficiaries"]["unresolved_claims"], 7,
        "{report:#}"
    );

    let out = dir.path().join("partial");
    let r = claimline(
        dir.path(),
        &[
            "load",
            s(&v3),
            "--out",
            s(&out),
            "--json",
            "--include-partial",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = json(&r);
    assert_eq!(report["excluded"]["partial"], 0);
    assert_eq!(report["tables"]["cclf6"], 1);
    let (_, rows) = table_rows(&out.join("claimline.sqlite"), "cclf1", "v3");
    assert!(rows.iter().any(|r| r["_resource_id"] == "1071939711298"));
}

/// The committed data dictionary is what `claimline views doc` writes, and `views check` and
/// `views list` work on the built-in set.
#[test]
fn views_doc_matches_the_committed_dictionary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = dir.path().join("DICTIONARY.md");
    let r = claimline(dir.path(), &["views", "doc", "--out", s(&doc)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let fresh = std::fs::read_to_string(&doc).expect("doc");
    let committed_path = repo_root().join("mappings/cclf/DICTIONARY.md");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).expect("write dictionary");
    }
    let committed = std::fs::read_to_string(&committed_path).expect("committed dictionary");
    assert!(
        fresh == committed,
        "mappings/cclf/DICTIONARY.md is stale: run `claimline views doc --out mappings/cclf/DICTIONARY.md`"
    );
    assert!(fresh.contains("| **all** | v3 |"));

    let r = claimline(dir.path(), &["views", "check"]);
    assert!(r.status.success());
    assert_eq!(
        String::from_utf8_lossy(&r.stdout).trim(),
        "ok: 33 views, 10 tables"
    );
    let r = claimline(dir.path(), &["views", "list", "--views", "basic"]);
    assert!(r.status.success());
    assert_eq!(String::from_utf8_lossy(&r.stdout).lines().count(), 4);
    let r = claimline(dir.path(), &["views", "list"]);
    let list = String::from_utf8_lossy(&r.stdout);
    assert_eq!(list.lines().count(), 33);
    assert_eq!(list.matches("cclf8_patient → cclf8").count(), 3, "{list}");

    // A view that declares other columns than its table's first view: exit 2.
    let bad = dir.path().join("v3");
    std::fs::create_dir_all(&bad).expect("dir");
    std::fs::write(
        bad.join("cclf1.json"),
        r#"{"resourceType":"ViewDefinition","name":"cclf1","resource":"ExplanationOfBenefit","select":[{"column":[{"name":"X","path":"id","type":"string"}]}]}"#,
    )
    .expect("write");
    let builtin_v2 = repo_root().join("mappings/cclf/v2/cclf1.json");
    let r = claimline(
        dir.path(),
        &["views", "check", "--views", s(&builtin_v2), s(&bad)],
    );
    assert_eq!(r.status.code(), Some(2));
}

/// A US ZIP code (5 digits, or 9 with at most a dash after the fifth) is cut to its first 5,
/// its last 4 in GEO_ZIP4_CD; any other postalCode is kept whole in both ZIP5 columns, never cut
/// to 5 characters with no word.
#[test]
fn cclf8_cuts_only_zip_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).expect("export folder");
    let patient: Value = serde_json::from_str(
        std::fs::read_to_string(sample_data().join("r4/Patient.ndjson"))
            .expect("sample Patient")
            .lines()
            .next()
            .expect("one Patient"),
    )
    .expect("json");
    let cases = [
        ("12345", "12345", None),
        ("123456789", "12345", Some("6789")),
        ("12345-6789", "12345", Some("6789")),
        ("K1A 0B1", "K1A 0B1", None),
        ("1234567890", "1234567890", None),
        ("12345-678", "12345-678", None),
        ("1234-56789", "1234-56789", None),
        ("+1234", "+1234", None),
        ("12-345", "12-345", None),
    ];
    let mut lines = String::new();
    for (i, (postal, _, _)) in cases.iter().enumerate() {
        let mut p = patient.clone();
        p["id"] = Value::from(format!("zip{i}"));
        p["address"][0]["postalCode"] = Value::from(*postal);
        lines.push_str(&p.to_string());
        lines.push('\n');
    }
    std::fs::write(export.join("Patient.ndjson"), lines).expect("write Patients");
    let out = dir.path().join("out");
    let r = claimline(
        dir.path(),
        &[
            "load",
            s(&export),
            "--out",
            s(&out),
            "--format",
            "sqlite",
            "--json",
        ],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let conn = Connection::open(out.join("claimline.sqlite")).expect("open");
    for (i, (postal, zip5, zip4)) in cases.iter().enumerate() {
        let got: (String, String, Option<String>) = conn
            .query_row(
                "SELECT BENE_ZIP_CD, GEO_ZIP5_CD, GEO_ZIP4_CD FROM cclf8 WHERE _resource_id = ?1",
                [format!("zip{i}")],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("a cclf8 row");
        assert_eq!(
            got,
            (zip5.to_string(), zip5.to_string(), zip4.map(str::to_owned)),
            "{postal}"
        );
    }
}

/// CCLF8's paths are ViewDefinitions a user can edit: a copy of the v2 input views with one
/// path changed changes that CCLF8 column, and the join, precedence and computed columns still
/// apply; a column added to a view is a column of `cclf8`. Input views that disagree on a
/// column's type are refused (exit 2) before any output.
#[test]
fn cclf8_input_views_can_be_edited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let views = dir.path().join("views/v2");
    std::fs::create_dir_all(&views).expect("views folder");
    let patient = std::fs::read_to_string(repo_root().join("mappings/cclf/v2/cclf8_patient.json"))
        .expect("view");
    assert!(patient.contains(r#""path": "family""#));
    std::fs::write(
        views.join("cclf8_patient.json"),
        patient.replace(r#""path": "family""#, r#""path": "family.upper()""#),
    )
    .expect("write view");
    std::fs::copy(
        repo_root().join("mappings/cclf/v2/cclf8_coverage.json"),
        views.join("cclf8_coverage.json"),
    )
    .expect("copy view");
    let out = dir.path().join("out");
    let load = |out: &Path| {
        claimline(
            dir.path(),
            &[
                "load",
                s(&sample_data().join("r4")),
                "--views",
                s(&dir.path().join("views")),
                "--out",
                s(out),
                "--format",
                "sqlite",
                "--json",
            ],
        )
    };
    let r = load(&out);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = json(&r);
    assert_eq!(report["tables"]["cclf8"], 1, "{report}");
    assert!(report["tables"].get("cclf8_patient").is_none(), "{report}");
    // The Coverage rows carry no lineage: only the Patient's placeholder `meta.lastUpdated`
    // (CMS's `IGNORED_FIELD`, on the Coverage records too) is a CCLF8 row error.
    assert_eq!(
        report["row_errors"]["by_column"]["cclf8._last_updated"], 1,
        "{report}"
    );
    let conn = Connection::open(out.join("claimline.sqlite")).expect("open");
    let (last, dual, age): (String, String, Option<String>) = conn
        .query_row(
            "SELECT BENE_LAST_NAME, BENE_DUAL_STUS_CD, BENE_AGE FROM cclf8",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("one cclf8 row");
    let golden = std::fs::read_to_string(repo_root().join("tests/golden/cclf/v2/cclf8.ndjson"))
        .expect("golden");
    let row: Value = serde_json::from_str(golden.lines().nth(1).expect("golden row")).expect("row");
    let want = row["BENE_LAST_NAME"].as_str().expect("name").to_uppercase();
    assert_eq!(last, want);
    assert_eq!(Some(dual.as_str()), row["BENE_DUAL_STUS_CD"].as_str());
    assert!(age.is_some());

    // The table's columns are the views' tagged columns: one added to the Patient view (no
    // CCLF position) comes after CCLF's 31, before the lineage, with the view's type.
    let mut more: Value = serde_json::from_str(&patient).expect("json");
    more["select"][0]["column"]
        .as_array_mut()
        .expect("columns")
        .push(serde_json::json!({
            "name": "BENE_GENDER", "path": "gender", "type": "code",
            "tag": [{"name": "cclf/field", "value": "CCLF8.BENE_GENDER"}]
        }));
    std::fs::write(views.join("cclf8_patient.json"), more.to_string()).expect("write view");
    let out1 = dir.path().join("out1");
    let r = load(&out1);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let conn = Connection::open(out1.join("claimline.sqlite")).expect("open");
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('cclf8') ORDER BY cid")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("columns");
    assert_eq!(columns[0], "BENE_MBI_ID");
    assert_eq!(columns[30], "GEO_ZIP4_CD");
    assert_eq!(columns[31], "BENE_GENDER");
    assert_eq!(columns[32], "_resource_id");
    let gender: String = conn
        .query_row("SELECT BENE_GENDER FROM cclf8", [], |r| r.get(0))
        .expect("gender");
    assert!(["male", "female", "other", "unknown"].contains(&gender.as_str()));

    // Two input views that disagree on a column's type are refused before any output.
    let mut bad: Value = serde_json::from_str(
        &std::fs::read_to_string(views.join("cclf8_coverage.json")).expect("coverage view"),
    )
    .expect("json");
    bad["select"][0]["column"]
        .as_array_mut()
        .expect("columns")
        .push(serde_json::json!({
            "name": "BENE_DOB", "path": "{}", "type": "string",
            "tag": [{"name": "cclf/field", "value": "CCLF8.BENE_DOB"}]
        }));
    std::fs::write(views.join("cclf8_coverage.json"), bad.to_string()).expect("write view");
    let r = load(&dir.path().join("out2"));
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("BENE_DOB") && err.contains("cclf8_coverage"),
        "{err}"
    );
    assert!(!dir.path().join("out2/claimline.sqlite").exists());
}

/// The committed CCLF views are the generator's output: a copy of `mappings/` regenerated by
/// `mappings/cclf/tools/generate.py` is identical, so an edit of a view that the generator does
/// not know (or of the generator without regenerating) fails here.
#[test]
fn the_committed_views_are_what_the_generator_writes() {
    let copy = tempfile::tempdir().expect("tempdir");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(crate::repo_root().join("mappings"))
        .arg(copy.path())
        .status()
        .expect("cp");
    assert!(status.success());
    // The generator starts from nothing, so a committed view it no longer writes shows up.
    for v in ["v1", "v2", "v3"] {
        std::fs::remove_dir_all(copy.path().join("mappings/cclf").join(v)).expect("clear copy");
    }
    let generated = std::process::Command::new("python3")
        .arg(copy.path().join("mappings/cclf/tools/generate.py"))
        .output();
    let Ok(generated) = generated else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the generator check"
        );
        eprintln!("skipped: no python3 here to run the CCLF view generator");
        return;
    };
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let names = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("views")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        names
    };
    for v in ["v1", "v2", "v3"] {
        let dir = crate::repo_root().join("mappings/cclf").join(v);
        assert_eq!(
            names(&dir),
            names(&copy.path().join("mappings/cclf").join(v)),
            "mappings/cclf/{v} holds other files than the generator writes"
        );
        for e in std::fs::read_dir(&dir).expect("views").flatten() {
            let name = e.file_name();
            let committed = std::fs::read(e.path()).expect("view");
            let regenerated = std::fs::read(copy.path().join("mappings/cclf").join(v).join(&name))
                .expect("regenerated view");
            assert!(
                committed == regenerated,
                "mappings/cclf/{v}/{} differs from the generator's output: edit the generator's \
                 overrides (or regenerate) and re-bless the golden files",
                name.to_string_lossy()
            );
        }
    }
}

/// `views export` writes the built-in set as files that load as they are (the same tables and
/// hash-independent content), and a misspelt resource type is refused by `views check` (exit 2)
/// instead of loading nothing.
#[test]
fn exported_views_load_and_a_misspelt_resource_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let views = dir.path().join("views");
    let r = crate::claimline(
        dir.path(),
        &["views", "export", views.to_str().expect("utf-8")],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(views.join("cclf/v2/cclf5.json").is_file());
    let check = crate::claimline(
        dir.path(),
        &[
            "views",
            "check",
            "--views",
            views.join("cclf").to_str().expect("utf-8"),
        ],
    );
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let builtin = crate::claimline(dir.path(), &["views", "check"]);
    assert_eq!(check.stdout, builtin.stdout, "the same views and tables");
    let typo = views.join("cclf/v2/cclf1.json");
    let text = std::fs::read_to_string(&typo).expect("view");
    std::fs::write(
        &typo,
        text.replacen(
            "\"resource\": \"ExplanationOfBenefit\"",
            "\"resource\": \"ExplanationOfBenefti\"",
            1,
        ),
    )
    .expect("write");
    let refused = crate::claimline(
        dir.path(),
        &[
            "views",
            "check",
            "--views",
            views.join("cclf").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("ExplanationOfBenefti")
            && stderr.contains("not a resource type BCDA serves"),
        "{stderr}"
    );
}

/// Issue 17: one bad cell must not drop a claim line. A real v3 carrier claim whose rendering
/// provider's state code comes four times (as BFD builds write it) keeps its CCLF5 rows with the
/// value; four different values keep the rows with that one cell NULL and a row error.
#[test]
fn repeated_values_in_a_one_value_column_never_drop_a_claim() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(
        crate::repo_root().join("sample-data/real/v3/ExplanationOfBenefit-carrier.ndjson"),
    )
    .expect("sample");
    let eob: Value = serde_json::from_str(text.lines().next().expect("line")).expect("JSON");
    let state = |e: &Value| -> Value {
        e["supportingInfo"]
            .as_array()
            .expect("supportingInfo")
            .iter()
            .find(|si| si.to_string().contains("RNDRG_PRVDR_FIPS_ST_CD"))
            .expect("the state entry")
            .clone()
    };
    let with_states = |codes: &[&str]| -> Value {
        let mut e = eob.clone();
        let one = state(&eob);
        let infos = e["supportingInfo"].as_array_mut().expect("supportingInfo");
        infos.retain(|si| !si.to_string().contains("RNDRG_PRVDR_FIPS_ST_CD"));
        for (i, code) in codes.iter().enumerate() {
            let mut si = one.clone();
            si["sequence"] = Value::from(1000 + i);
            si["code"]["coding"][0]["code"] = Value::from(*code);
            infos.push(si);
        }
        e
    };
    let load = |name: &str, e: &Value| -> (Value, PathBuf) {
        let input = dir.path().join(name);
        std::fs::create_dir_all(&input).expect("mkdir");
        std::fs::write(
            input.join("ExplanationOfBenefit.ndjson"),
            e.to_string() + "\n",
        )
        .expect("write");
        let out = dir.path().join(format!("{name}-out"));
        let r = crate::claimline(
            dir.path(),
            &[
                "load",
                s(&input),
                "--out",
                s(&out),
                "--format",
                "sqlite",
                "--json",
            ],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        (crate::json(&r), out.join("claimline.sqlite"))
    };
    let states = |db: &Path| -> Vec<Option<String>> {
        let conn = rusqlite::Connection::open(db).expect("open");
        let mut stmt = conn
            .prepare("SELECT RNDRG_PRVDR_FIPS_ST_CD FROM cclf5")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let (one, db) = load("one", &eob);
    let lines = one["tables"]["cclf5"].as_u64().expect("rows");
    assert!(lines >= 1);
    let (same, db_same) = load("same", &with_states(&["04", "04", "04", "04"]));
    assert_eq!(
        same["tables"]["cclf5"], one["tables"]["cclf5"],
        "no claim line lost"
    );
    assert_eq!(states(&db_same), states(&db));
    assert_eq!(same["row_errors"]["count"], one["row_errors"]["count"]);
    let (differ, db_differ) = load("differ", &with_states(&["04", "05", "04", "06"]));
    assert_eq!(
        differ["tables"]["cclf5"], one["tables"]["cclf5"],
        "no claim line lost"
    );
    assert!(states(&db_differ).iter().all(Option::is_none));
    assert_eq!(
        differ["row_errors"]["by_column"]["cclf5.RNDRG_PRVDR_FIPS_ST_CD"]
            .as_u64()
            .expect("counted"),
        lines
    );
}

/// Issue 17: a beneficiary's real R4 Patient and Coverage without `meta.profile` (as BFD builds
/// of 2020 wrote them) load as v2, and the CCLF8 row joins them (before, the Coverage was taken
/// for v1 and its row landed apart, with no MBI).
#[test]
fn a_coverage_without_a_profile_joins_its_patient_in_cclf8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("r4-no-profile");
    std::fs::create_dir_all(&input).expect("mkdir");
    for file in ["Patient.ndjson", "Coverage.ndjson"] {
        let text = std::fs::read_to_string(sample_data().join("r4").join(file)).expect("sample");
        let stripped: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).expect("JSON");
                if let Some(meta) = v.get_mut("meta").and_then(|m| m.as_object_mut()) {
                    meta.remove("profile");
                }
                v.to_string()
            })
            .collect();
        std::fs::write(input.join(file), stripped.join("\n") + "\n").expect("write");
    }
    let out = dir.path().join("out");
    let r = claimline(dir.path(), &["load", s(&input), "--out", s(&out), "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let conn = Connection::open(out.join("claimline.sqlite")).expect("open");
    let rows: Vec<(String, Option<String>, Option<String>)> = conn
        .prepare("SELECT _api_version, BENE_MBI_ID, BENE_MDCR_STUS_CD FROM cclf8")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 1, "one row for the beneficiary: {rows:?}");
    let (version, mbi, status) = &rows[0];
    assert_eq!(version, "v2");
    assert!(mbi.is_some(), "the Patient's MBI");
    assert!(status.is_some(), "the Coverage's Medicare status joined");
    let report = json(&r);
    assert_eq!(report["beneficiaries"]["coverage_without_patient"], 0);
}

/// Issue 17: a resource whose API version nothing tells (loose file, no profile, no BFD URL, no
/// release mark) is never silently given no view: it is a row error with the reason.
#[test]
fn a_resource_of_unknown_version_is_a_row_error_not_silence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("loose.ndjson");
    std::fs::write(
        &input,
        "{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"eob-1\",\"status\":\"active\"}\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    let r = claimline(dir.path(), &["load", s(&input), "--out", s(&out), "--json"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report = json(&r);
    assert_eq!(report["row_errors"]["count"], 1, "{report:#}");
    let file = report["row_errors"]["file"]
        .as_str()
        .expect("row errors file");
    let text = std::fs::read_to_string(file).expect("row errors");
    assert!(text.contains("API version cannot be told"), "{text}");
    assert!(text.contains("\"resource_id\":\"eob-1\""), "{text}");
}

/// Issue 17: BFD v3 builds of 2025-06 to 2026-03 wrote care-team providers as references to
/// contained Practitioners (`#careteam-provider-N`) and, up to 2026-01, claim-header codes as
/// header extensions instead of `supportingInfo`. Real resources of those builds
/// (`tests/fixtures/bfd-v3-builds/`, from CMS's beneficiary-fhir-data) give their NPIs and codes,
/// not NULLs.
#[test]
fn older_v3_builds_give_the_same_npis_and_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixtures = repo_root().join("tests/fixtures/bfd-v3-builds");
    let load = |name: &str| {
        let out = dir.path().join(name);
        let r = claimline(
            dir.path(),
            &[
                "load",
                s(&fixtures.join(format!("ExplanationOfBenefit-{name}.ndjson"))),
                "--out",
                s(&out),
                "--format",
                "sqlite",
                "--json",
            ],
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        Connection::open(out.join("claimline.sqlite")).expect("open")
    };
    let texts = |conn: &Connection, sql: &str| -> Vec<Option<String>> {
        let mut stmt = conn.prepare(sql).expect("prepare");
        let cols = stmt.column_count();
        stmt.query_row([], |r| {
            (0..cols)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("one row")
    };
    let some = |v: &[&str]| v.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>();
    // Carrier (CCLF5), release 2.231.0: contained care team and header extensions.
    let carrier = load("carrier-2.231.0");
    assert_eq!(
        texts(
            &carrier,
            "SELECT DISTINCT RNDRG_PRVDR_NPI_NUM, CLM_RFRG_PRVDR_NPI_NUM, CLM_CARR_PMT_DNL_CD, \
             CLM_CNTRCTR_NUM FROM cclf5"
        ),
        some(&["1558719914", "1720749690", "00", "04011"])
    );
    // Release 2.240.1: contained care team, codes in supportingInfo.
    let carrier = load("carrier-2.240.1");
    assert_eq!(
        texts(
            &carrier,
            "SELECT DISTINCT RNDRG_PRVDR_NPI_NUM, CLM_RFRG_PRVDR_NPI_NUM FROM cclf5"
        ),
        some(&["1558719914", "1720749690"])
    );
    // Home health (CCLF1), release 2.231.0.
    let hha = load("hha-2.231.0");
    assert_eq!(
        texts(
            &hha,
            "SELECT ATNDG_PRVDR_NPI_NUM, OPRTG_PRVDR_NPI_NUM, OTHR_PRVDR_NPI_NUM, \
             CLM_CNTRCTR_NUM, CLM_QUERY_CD FROM cclf1"
        ),
        some(&["1437702123", "1942945159", "1972944437", "01211", "3"])
    );
    // Inpatient (CCLF1), release 2.231.0: the non-payment reason as a header extension.
    let inpatient = load("inpatient-2.231.0");
    assert_eq!(
        texts(
            &inpatient,
            "SELECT CLM_CNTRCTR_NUM, CLM_MDCR_NPMT_RSN_CD FROM cclf1"
        ),
        some(&["01011", "44"])
    );
}
