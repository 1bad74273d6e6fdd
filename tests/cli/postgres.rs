//! The PostgreSQL sink against a real server (issue 20): `tests/run` starts a throwaway one on
//! loopback (`tests/postgres-server`) and gives its URL in `CLAIMLINE_TEST_POSTGRES_URL`.
//! Each test writes its own schema. Without a server the tests say so and pass, except under
//! CI, which must run them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use postgres::{Client, NoTls};
use rusqlite::Connection;
use serde_json::Value;

use crate::{claimline_env, json, sample_data};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The test server's URL, or `None` (said on stderr) when there is none outside CI.
fn server() -> Option<String> {
    match std::env::var("CLAIMLINE_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "CI must run the PostgreSQL tests: tests/run starts a server (tests/postgres-server)"
            )
        }
        Err(_) => {
            eprintln!(
                "skipped: a PostgreSQL test (no CLAIMLINE_TEST_POSTGRES_URL; tests/run starts a server when PostgreSQL's server packages are installed)"
            );
            None
        }
    }
}

fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).expect("the test server accepts connections")
}

/// A fresh schema for one test.
fn schema(url: &str, name: &str) -> String {
    connect(url)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
        .expect("drop schema");
    name.to_owned()
}

/// `claimline load INPUT --out OUT --format FORMAT --postgres-schema SCHEMA --run-id RUN --json`
/// with the URL in `CLAIMLINE_POSTGRES_URL`.
fn load_pg(
    url: &str,
    input: &Path,
    out: &Path,
    format: &str,
    schema: &str,
    run_id: &str,
    env: &[(&str, &str)],
) -> Output {
    let mut vars = vec![("CLAIMLINE_POSTGRES_URL", url)];
    vars.extend_from_slice(env);
    claimline_env(
        out.parent().expect("parent"),
        &[
            "load",
            s(input),
            "--out",
            s(out),
            "--format",
            format,
            "--postgres-schema",
            schema,
            "--run-id",
            run_id,
            "--no-report",
            "--json",
        ],
        &vars,
    )
}

/// `claimline load INPUT --out OUT --format sqlite --run-id RUN --json`: what the PostgreSQL
/// loads are compared with.
fn load_sqlite(dir: &Path, input: &Path, out: &Path, run_id: &str) -> Output {
    claimline_env(
        dir,
        &[
            "load",
            s(input),
            "--out",
            s(out),
            "--format",
            "sqlite",
            "--run-id",
            run_id,
            "--no-report",
            "--json",
        ],
        &[],
    )
}

fn ok(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(out)
}

/// Every table of a PostgreSQL schema (the run records aside), each row as text with its
/// columns in order: decimals without trailing zeros, instants as µs, booleans as 0/1.
fn pg_tables(url: &str, schema: &str) -> BTreeMap<String, Vec<String>> {
    let mut c = connect(url);
    let tables: Vec<String> = c
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 AND table_name <> '_claimline_runs'",
            &[&schema],
        )
        .expect("tables")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let cols: Vec<(String, String)> = c
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&schema, &t],
            )
            .expect("columns")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let exprs: Vec<String> = cols
            .iter()
            .map(|(name, ty)| {
                let e = match ty.as_str() {
                    "numeric" => format!("trim_scale(\"{name}\")::text"),
                    "timestamp with time zone" => {
                        format!("(extract(epoch FROM \"{name}\") * 1000000)::bigint::text")
                    }
                    "boolean" => format!("\"{name}\"::int::text"),
                    _ => format!("\"{name}\"::text"),
                };
                format!("coalesce({e}, 'NULL')")
            })
            .collect();
        let sql = format!(
            "SELECT concat_ws('|', {}) FROM \"{schema}\".\"{t}\"",
            exprs.join(", ")
        );
        let mut rows: Vec<String> = c
            .query(&sql, &[])
            .expect("rows")
            .iter()
            .map(|r| r.get(0))
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// Every table of a SQLite output in the same text forms as [`pg_tables`].
pub(crate) fn sqlite_tables(db: &Path) -> BTreeMap<String, Vec<String>> {
    let conn = Connection::open(db).expect("open");
    let tables = crate::sqlite_table_names(&conn, |n| n != "_claimline_runs");
    let mut out = BTreeMap::new();
    for t in tables {
        let cols: Vec<(String, String)> = conn
            .prepare("SELECT name, type FROM pragma_table_info(?1)")
            .expect("prepare")
            .query_map([&t], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("columns")
            .collect::<Result<_, _>>()
            .expect("columns");
        let exprs: Vec<String> = cols
            .iter()
            .map(|(name, _)| {
                // Instants are ISO text here: as µs, like PostgreSQL's.
                let e = if name == "_last_updated" {
                    format!("CAST(round(unixepoch(\"{name}\", 'subsec') * 1000000) AS INTEGER)")
                } else {
                    format!("\"{name}\"")
                };
                format!("coalesce({e}, 'NULL')")
            })
            .collect();
        let mut stmt = conn
            .prepare(&format!("SELECT {} FROM \"{t}\"", exprs.join(", ")))
            .expect("prepare");
        let n = cols.len();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut parts = Vec::with_capacity(n);
                for i in 0..n {
                    use rusqlite::types::ValueRef as V;
                    parts.push(match r.get_ref(i)? {
                        V::Null => "NULL".to_owned(),
                        V::Integer(v) => v.to_string(),
                        // The double nearest the exact decimal prints as that decimal.
                        V::Real(f) => f.to_string(),
                        V::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        V::Blob(_) => "<blob>".to_owned(),
                    });
                }
                Ok(parts.join("|"))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// Asserts that two sets of tables hold the same rows, naming the first difference.
fn same_tables(
    ours: &BTreeMap<String, Vec<String>>,
    theirs: &BTreeMap<String, Vec<String>>,
    what: &str,
) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}: tables"
    );
    for (t, rows) in ours {
        let other = &theirs[t];
        assert_eq!(rows.len(), other.len(), "{what}: rows of {t}");
        for (a, b) in rows.iter().zip(other) {
            assert_eq!(a, b, "{what}: a row of {t}");
        }
    }
}

/// Asserts that the PostgreSQL schema and the SQLite output hold the same rows in every table.
fn same_rows(url: &str, schema: &str, db: &Path, what: &str) {
    same_tables(&pg_tables(url, schema), &sqlite_tables(db), what);
}

#[test]
fn a_load_gives_the_same_rows_as_sqlite_for_the_samples_and_a_synthetic_export() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let synthetic = crate::cclf_files::synth(tmp.path(), "v2", "12", "2");
    for (name, input) in [
        ("t_same_r4", sample_data().join("r4")),
        ("t_same_v3", sample_data().join("v3")),
        ("t_same_synth", synthetic),
    ] {
        let schema = schema(&url, name);
        let lite = tmp.path().join(format!("{name}-sqlite"));
        let pg = tmp.path().join(format!("{name}-pg"));
        let a = load_sqlite(tmp.path(), &input, &lite, "r1");
        let a = ok(&a, "sqlite load");
        let b = ok(
            &load_pg(&url, &input, &pg, "parquet,postgres", &schema, "r1", &[]),
            "postgres load",
        );
        assert_eq!(a["tables"], b["tables"], "{name}: rows per table");
        same_rows(&url, &schema, &lite.join("claimline.sqlite"), name);
        // Exact decimals: a payment keeps its cents as NUMERIC, and columns carry comments.
        let mut c = connect(&url);
        let ty: String = c
            .query_one(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = to_regclass($1) AND attname = 'clm_pmt_amt'",
                &[&format!("{schema}.cclf1")],
            )
            .expect("type")
            .get(0);
        assert!(ty.starts_with("numeric("), "{ty}");
        let comment: Option<String> = c
            .query_one(
                "SELECT col_description(to_regclass($1), 1)",
                &[&format!("{schema}.cclf1")],
            )
            .expect("comment")
            .get(0);
        assert!(comment.is_some_and(|c| !c.is_empty()), "{name}: comments");
    }
}

/// An export whose EOBs come in many files (BCDA splits a big export into hundreds) with
/// superseded versions in many of them: PostgreSQL drops every (file, line) at once and keeps
/// the same rows as SQLite, which drops them by rowid.
#[test]
fn superseded_versions_across_many_files_leave_the_same_rows_as_sqlite() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let export = crate::cclf_files::synth(tmp.path(), "v2", "6", "3");
    // Its EOB lines dealt into files of seven lines each, the manifest naming them.
    let many = tmp.path().join("many");
    std::fs::create_dir(&many).expect("folder");
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(export.join("manifest.json")).expect("manifest"))
            .expect("manifest JSON");
    let mut outputs: Vec<Value> = Vec::new();
    let mut eob_lines: Vec<String> = Vec::new();
    for entry in manifest["output"].as_array().expect("output") {
        let url = entry["url"].as_str().expect("url");
        let name = url.rsplit('/').next().expect("file name");
        let text = std::fs::read_to_string(export.join(name)).expect("file");
        if entry["type"] == "ExplanationOfBenefit" {
            eob_lines.extend(text.lines().map(str::to_owned));
        } else {
            std::fs::write(many.join(name), &text).expect("copy");
            outputs.push(entry.clone());
        }
    }
    let files = eob_lines.chunks(7).count();
    assert!(files > 20, "{files} EOB files");
    for (i, chunk) in eob_lines.chunks(7).enumerate() {
        let name = format!("ExplanationOfBenefit.{i:03}.ndjson");
        std::fs::write(many.join(&name), chunk.join("\n") + "\n").expect("write");
        outputs.push(serde_json::json!({
            "type": "ExplanationOfBenefit",
            "url": format!("https://api.bcda.cms.gov/data/1/{name}"),
        }));
    }
    manifest["output"] = Value::Array(outputs);
    std::fs::write(many.join("manifest.json"), manifest.to_string()).expect("manifest");

    let schema = schema(&url, "t_many_files");
    let lite = tmp.path().join("many-sqlite");
    let pg = tmp.path().join("many-pg");
    let a = load_sqlite(tmp.path(), &many, &lite, "r1");
    let a = ok(&a, "sqlite load");
    let b = ok(
        &load_pg(&url, &many, &pg, "postgres", &schema, "r1", &[]),
        "postgres load",
    );
    let superseded = a["history"]["superseded"].as_u64().expect("superseded");
    assert!(superseded > 10, "{superseded} superseded versions");
    assert_eq!(a["history"], b["history"]);
    assert_eq!(a["tables"], b["tables"], "rows per table");
    same_rows(&url, &schema, &lite.join("claimline.sqlite"), "many files");
}

#[test]
fn the_claim_history_sequence_leaves_the_same_current_rows_as_sqlite() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let schema = schema(&url, "t_history");
    let v = crate::history::versions();
    let exports = [
        ("e1", vec![&v.c1, &v.o1], true),
        ("e2", vec![&v.c1_cancelled, &v.c2], true),
        ("e3", vec![&v.i1, &v.c1], false),
        ("e4", vec![&v.c2_cancelled], false),
    ];
    let lite = tmp.join("sqlite");
    let pg = tmp.join("pg");
    for (i, (name, eobs, patients)) in exports.iter().enumerate() {
        let export = crate::history::write_export(&tmp.join(name), eobs, *patients);
        let run = format!("r{}", i + 1);
        let a = load_sqlite(tmp, &export, &lite, &run);
        let a = ok(&a, name);
        let b = ok(
            &load_pg(&url, &export, &pg, "postgres", &schema, &run, &[]),
            name,
        );
        assert_eq!(a["history"], b["history"], "{name}: the history counts");
        assert_eq!(a["beneficiaries"], b["beneficiaries"], "{name}: MBIs");
        same_rows(&url, &schema, &lite.join("claimline.sqlite"), name);
    }
    // The last export had no Patients: its MBIs came from the schema's bene_xref.
    let mut c = connect(&url);
    let unresolved: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM {schema}.cclf1 WHERE bene_mbi_id IS NULL"),
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(unresolved, 0);
}

#[test]
fn a_load_killed_mid_copy_or_failing_on_a_bad_value_leaves_the_previous_state() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let schema = schema(&url, "t_crash");
    let out = tmp.join("out");
    let v = crate::history::versions();
    let e1 = crate::history::write_export(&tmp.join("e1"), &[&v.c1, &v.o1], true);
    ok(
        &load_pg(&url, &e1, &out, "postgres", &schema, "r1", &[]),
        "r1",
    );
    let before = pg_tables(&url, &schema);

    // Killed (as by SIGKILL) while a COPY is half sent.
    let e2 = crate::history::write_export(&tmp.join("e2"), &[&v.c2, &v.i1], true);
    let killed = load_pg(
        &url,
        &e2,
        &out,
        "postgres",
        &schema,
        "r2",
        &[("CLAIMLINE_FAULT", "postgres.copy@3")],
    );
    assert!(!killed.status.success());
    assert!(
        String::from_utf8_lossy(&killed.stderr).contains("fault point postgres.copy reached"),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert_eq!(
        pg_tables(&url, &schema),
        before,
        "a killed load changed the tables"
    );

    // A value PostgreSQL refuses (a NUL character in a claim id): exit 5, nothing changed, and
    // the message names the table, column, file and line, not the value.
    let mut bad = v.i1.clone();
    for ident in bad["identifier"].as_array_mut().expect("identifiers") {
        if ident["system"] != "https://bluebutton.cms.gov/resources/identifier/claim-group" {
            ident["value"] = Value::from("SECRET\u{0}3001");
        }
    }
    let e3 = crate::history::write_export(&tmp.join("e3"), &[&bad], true);
    let failed = load_pg(&url, &e3, &out, "postgres", &schema, "r3", &[]);
    assert_eq!(failed.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("NUL character")
            && stderr.contains("CUR_CLM_UNIQ_ID")
            && stderr.contains("ExplanationOfBenefit.ndjson, line 1")
            && !stderr.contains("SECRET"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(
        pg_tables(&url, &schema),
        before,
        "a failed load changed the tables"
    );

    // The lock went with the killed process: the same load now commits.
    ok(
        &load_pg(&url, &e2, &out, "postgres", &schema, "r2", &[]),
        "r2 again",
    );
    assert_ne!(pg_tables(&url, &schema), before);
}

#[test]
fn one_load_at_a_time_per_schema() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let schema = schema(&url, "t_lock");
    let input = sample_data().join("r4");

    // Another session holds the schema's lock: exit 5, nothing written, a one-line message.
    let mut holder = connect(&url);
    holder
        .execute(
            "SELECT pg_advisory_lock(hashtextextended($1, 0))",
            &[&format!("claimline:{schema}")],
        )
        .expect("lock");
    let busy = load_pg(&url, &input, &tmp.join("a"), "postgres", &schema, "r1", &[]);
    assert_eq!(busy.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert!(stderr.contains("another claimline load"), "{stderr}");
    assert!(pg_tables(&url, &schema).is_empty(), "nothing written");
    drop(holder);

    // Two loads at once from two output folders: each commits or exits 5, never a mix.
    let spawn = |dir: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
            .args([
                "load",
                s(&input),
                "--out",
                s(&tmp.join(dir)),
                "--format",
                "postgres",
                "--postgres-schema",
                &schema,
                "--run-id",
                "same",
                "--no-report",
                "--json",
            ])
            .env("CLAIMLINE_POSTGRES_URL", &url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn("b"), spawn("c"));
    let codes = [
        a.wait_with_output().expect("wait").status.code(),
        b.wait_with_output().expect("wait").status.code(),
    ];
    assert!(codes.contains(&Some(0)), "{codes:?}");
    assert!(codes.iter().all(|c| matches!(c, Some(0 | 5))), "{codes:?}");
    let once = tmp.join("once");
    let reference = schema_of_one_load(&url, &input, &once);
    same_tables(
        &pg_tables(&url, &schema),
        &reference,
        "after two loads at once",
    );
}

#[test]
fn a_run_id_loaded_again_gives_the_tables_of_one_load() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let input = crate::cclf_files::synth(tmp, "v2", "12", "2");
    let once = schema(&url, "t_again_once");
    ok(
        &load_pg(
            &url,
            &input,
            &tmp.join("once"),
            "postgres",
            &once,
            "same",
            &[],
        ),
        "once",
    );
    // The same export twice under one run id, one load after the other (a retried command,
    // two loads that did not overlap): `_claimline_claims` holds the run's events once.
    let twice = schema(&url, "t_again_twice");
    for n in 1..=2 {
        let out = tmp.join(format!("twice-{n}"));
        ok(
            &load_pg(&url, &input, &out, "postgres", &twice, "same", &[]),
            "twice",
        );
    }
    let reference = pg_tables(&url, &once);
    let events = reference["_claimline_claims"].len();
    assert!(events > 10, "{events} claim events");
    same_tables(
        &pg_tables(&url, &twice),
        &reference,
        "a run id loaded again",
    );
}

/// A Patient that comes without its Coverage keeps the Coverage columns of its earlier `cclf8`
/// row, read from the schema (as `load.rs` checks for SQLite and Parquet).
#[test]
fn a_patient_without_its_coverage_keeps_its_earlier_coverage_columns() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let input = crate::cclf_files::synth(tmp, "v2", "2", "1");
    let only = tmp.join("patients");
    std::fs::create_dir(&only).expect("mkdir");
    let first = std::fs::read_to_string(input.join("Patient.000.ndjson"))
        .expect("patients")
        .lines()
        .next()
        .expect("a Patient")
        .to_owned();
    let bene = serde_json::from_str::<Value>(&first).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    std::fs::write(only.join("Patient.ndjson"), first + "\n").expect("write");
    let name = schema(&url, "t_carry");
    let stored = || -> Vec<Option<String>> {
        let row = connect(&url)
            .query_one(
                &format!(
                    "SELECT bene_mdcr_stus_cd, bene_dual_stus_cd, bene_entlmt_buyin_ind, \
                     bene_part_a_enrlmt_bgn_dt::text FROM {name}.cclf8 WHERE _resource_id = $1"
                ),
                &[&bene],
            )
            .expect("the beneficiary's cclf8 row");
        (0..4).map(|i| row.get(i)).collect()
    };
    let out = tmp.join("out");
    ok(
        &load_pg(&url, &input, &out, "postgres", &name, "r1", &[]),
        "full",
    );
    let before = stored();
    assert!(before.iter().any(Option::is_some), "{before:?}");
    let r = ok(
        &load_pg(&url, &only, &out, "postgres", &name, "r2", &[]),
        "Patient only",
    );
    assert_eq!(r["beneficiaries"]["coverage_carried"], 1, "{r}");
    assert_eq!(stored(), before);
}

/// A format switched between loads into one folder leaves PostgreSQL and Parquet with different
/// runs, so different tables: every load that sees it says so, as with SQLite (`load.rs`).
#[test]
fn a_format_switched_between_postgres_and_parquet_is_announced_at_every_load() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let input = crate::repo_root().join("sample-data/generated/v2");
    let name = schema(&url, "t_switched");
    let out = tmp.join("out");
    let warned = |format: &str, id: &str| -> String {
        let r = load_pg(&url, &input, &out, format, &name, id, &[]);
        ok(&r, format);
        String::from_utf8_lossy(&r.stderr)
            .lines()
            .filter(|l| l.contains("warning: ") && !l.contains("v2 and v3"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(warned("parquet", "r1"), "");
    let w = warned("parquet,postgres", "r2");
    assert!(
        w.contains("(schema t_switched) is new and will hold this run's rows only")
            && w.contains("holds 1 earlier run(s)"),
        "{w}"
    );
    let w = warned("postgres", "r3");
    assert!(
        w.contains("this load does not write") && w.contains("parquet (it holds 2 run(s))"),
        "{w}"
    );
    let w = warned("parquet,postgres", "r4");
    assert!(
        w.contains("hold different runs (only in PostgreSQL: r3; only in Parquet: r1)"),
        "{w}"
    );
    // The password is never shown.
    assert!(!w.contains(&url), "{w}");
}

/// The tables of one load of `input` into a schema of their own.
fn schema_of_one_load(url: &str, input: &Path, out: &Path) -> BTreeMap<String, Vec<String>> {
    let schema = schema(url, "t_lock_reference");
    ok(
        &load_pg(url, input, out, "postgres", &schema, "same", &[]),
        "reference",
    );
    pg_tables(url, &schema)
}

/// The URL with its password, host or TLS settings changed.
fn variant(url: &str, from: &str, to: &str) -> String {
    assert!(url.contains(from), "{url}");
    url.replace(from, to)
}

/// A load of the r4 samples into `out` with `url` that fails with `code` and one line on stderr
/// (returned).
fn fails(url: &str, out: &Path, code: i32) -> (String, Value) {
    let input = sample_data().join("r4");
    let r = load_pg(url, &input, out, "postgres", "t_refused", "r1", &[]);
    let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
    assert_eq!(r.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!out.exists(), "no output folder left");
    (stderr, json(&r))
}

#[test]
fn refused_credentials_exit_6_and_an_unreachable_server_exits_5_without_the_password() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let password = "claimline-test";
    let wrong = variant(&url, password, "wrong-pass-XYZ");
    let (stderr, _) = fails(&wrong, &tmp.path().join("a"), 6);
    assert!(
        stderr.contains("password authentication failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-pass-XYZ"), "{stderr}");

    // A port nobody listens on: one the system just gave and took back.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let port = url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("a port");
    let closed = variant(&url, &format!(":{port}/"), &format!(":{free}/"));
    let (stderr, doc) = fails(&closed, &tmp.path().join("b"), 5);
    assert!(!stderr.contains(password), "{stderr}");
    // --json: the same code in the error document, no password either.
    assert_eq!(doc["error"]["code"], 5, "{doc:#}");
    assert!(!doc.to_string().contains(password));
}

#[test]
fn tls_modes_require_and_verify_against_the_servers_certificate() {
    let Some(url) = server() else { return };
    let Ok(ca) = std::env::var("CLAIMLINE_TEST_POSTGRES_CA") else {
        assert!(std::env::var_os("CI").is_none(), "CI gives the test CA");
        eprintln!("skipped: the TLS test (no CLAIMLINE_TEST_POSTGRES_CA)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = sample_data().join("r4");
    let tls = |mode: &str, host: &str| {
        let u = variant(
            &url,
            "sslmode=disable",
            &format!("sslmode={mode}&sslrootcert={ca}"),
        );
        variant(&u, "@127.0.0.1:", &format!("@{host}:"))
    };
    let cases = [
        ("require", "127.0.0.1", true),
        ("verify-full", "localhost", true),
        // The certificate names localhost, not the address.
        ("verify-full", "127.0.0.1", false),
        ("verify-ca", "127.0.0.1", true),
    ];
    for (i, (mode, host, passes)) in cases.into_iter().enumerate() {
        let schema = schema(&url, &format!("t_tls_{i}"));
        let r = load_pg(
            &tls(mode, host),
            &input,
            &tmp.path().join(format!("o{i}")),
            "postgres",
            &schema,
            "r1",
            &[],
        );
        let stderr = String::from_utf8_lossy(&r.stderr);
        if passes {
            assert!(r.status.success(), "{mode} to {host}: {stderr}");
        } else {
            assert_eq!(r.status.code(), Some(5), "{mode} to {host}: {stderr}");
            assert!(stderr.contains("certificate"), "{stderr}");
        }
    }
    // Without the test CA, verify-full trusts only the web's roots: refused.
    let u = variant(&url, "sslmode=disable", "sslmode=verify-full");
    let r = load_pg(
        &variant(&u, "@127.0.0.1:", "@localhost:"),
        &input,
        &tmp.path().join("web"),
        "postgres",
        "t_tls_web",
        "r1",
        &[],
    );
    assert_eq!(
        r.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn a_run_from_a_profile_writes_postgres_and_knows_what_it_loaded() {
    let Some(url) = server() else { return };
    let work = tempfile::tempdir().expect("work");
    let schema = schema(&url, "t_run");
    let config = work.path().join("claimline.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.north]\nout = \"north\"\nformat = \"postgres\"\npostgres_url = \"{url}\"\n\
             postgres_schema = \"{schema}\"\n"
        ),
    )
    .expect("config");
    let run = || {
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
            .current_dir(work.path())
            .args(["run", "--config", s(&config), "--profile", "north"])
            .args(["--local-sandbox", "--no-report", "--json"])
            .env_remove("CLAIMLINE_POSTGRES_URL")
            .env_remove("CLAIMLINE_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs");
        ok(&r, "run")
    };
    // A config file holding the password must be owner-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
            .current_dir(work.path())
            .args([
                "run",
                "--config",
                s(&config),
                "--profile",
                "north",
                "--local-sandbox",
            ])
            .env_remove("CLAIMLINE_POSTGRES_URL")
            .output()
            .expect("runs");
        assert_eq!(r.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(
            stderr.contains("chmod 600") && !stderr.contains("claimline-test"),
            "{stderr}"
        );
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let first = run();
    let tables = pg_tables(&url, &schema);
    for (table, n) in first["load"]["tables"].as_object().expect("tables") {
        assert_eq!(Some(tables[table].len() as u64), n.as_u64(), "{table}");
    }
    assert_eq!(tables["cclf1"].len(), 50);
    assert!(!work.path().join("north/claimline.sqlite").exists());
    assert!(!work.path().join("north/parquet").exists());
    // The second run reads the runs from PostgreSQL: nothing new, nothing loaded twice.
    let second = run();
    assert!(second["load"].is_null(), "{second:#}");
    same_tables(&pg_tables(&url, &schema), &tables, "after the second run");
    // reload rebuilds the schema from the kept exports beside the live one and swaps it in.
    let north = work.path().join("north");
    let r = claimline_env(
        work.path(),
        &[
            "reload",
            "--out",
            s(&north),
            "--format",
            "postgres",
            "--postgres-schema",
            &schema,
            "--json",
        ],
        &[("CLAIMLINE_POSTGRES_URL", &url)],
    );
    ok(&r, "reload");
    same_tables(&pg_tables(&url, &schema), &tables, "after reload");
    let left: i64 = connect(&url)
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&format!("{schema}_reload")],
        )
        .expect("schemata")
        .get(0);
    assert_eq!(left, 0, "the rebuild's schema is gone");
    // The URL's password is in no file of the output folder and in no output.
    let password = "claimline-test";
    assert!(!first.to_string().contains(password));
    for (path, bytes) in crate::tree(&work.path().join("north")) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(password),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_load_killed_between_the_postgres_commit_and_the_parquet_publish_is_finished_by_the_next() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let schema = schema(&url, "t_between");
    let out = tmp.join("out");
    let v = crate::history::versions();
    let e1 = crate::history::write_export(&tmp.join("e1"), &[&v.c1, &v.o1], true);
    let e2 = crate::history::write_export(&tmp.join("e2"), &[&v.i1], true);
    let killed = load_pg(
        &url,
        &e1,
        &out,
        "parquet,postgres",
        &schema,
        "r1",
        &[("CLAIMLINE_FAULT", "load.between-commits")],
    );
    assert!(!killed.status.success());
    // PostgreSQL committed r1 (its commit decides); Parquet has it staged, not published.
    let runs: i64 = connect(&url)
        .query_one(
            &format!("SELECT count(*) FROM {schema}._claimline_runs"),
            &[],
        )
        .expect("runs")
        .get(0);
    assert_eq!(runs, 1);
    assert!(!out.join("parquet/cclf1/run=r1").exists());
    let next = ok(
        &load_pg(&url, &e2, &out, "parquet,postgres", &schema, "r2", &[]),
        "the next load",
    );
    assert!(next["committed"].as_bool().unwrap_or(false), "{next:#}");
    assert!(
        out.join("parquet/cclf1/run=r1").is_dir(),
        "the recovery published r1 because PostgreSQL holds it"
    );
    assert!(out.join("parquet/cclf1/run=r2").is_dir());
}

#[test]
fn load_cclf_into_postgres_gives_the_same_rows_as_sqlite() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let tmp = tmp.path();
    let schema = schema(&url, "t_cclf");
    let export = crate::cclf_files::synth(tmp, "v2", "8", "2");
    let source = tmp.join("source");
    let files = tmp.join("files");
    for args in [
        vec![
            "load",
            s(&export),
            "--out",
            s(&source),
            "--format",
            "sqlite",
            "--no-report",
            "--json",
        ],
        vec![
            "export",
            "cclf",
            "--from",
            s(&source),
            "--out",
            s(&files),
            "--json",
        ],
    ] {
        ok(&claimline_env(tmp, &args, &[]), args[0]);
    }
    let lite = tmp.join("lite");
    let pg = tmp.join("pg");
    for (out, format) in [(&lite, "sqlite"), (&pg, "postgres")] {
        let r = claimline_env(
            tmp,
            &[
                "load-cclf",
                s(&files),
                "--out",
                s(out),
                "--format",
                format,
                "--postgres-schema",
                &schema,
                "--run-id",
                "c1",
                "--json",
            ],
            &[("CLAIMLINE_POSTGRES_URL", &url)],
        );
        ok(&r, format);
    }
    same_rows(&url, &schema, &lite.join("claimline.sqlite"), "load-cclf");
}

#[test]
fn the_url_may_come_from_the_flag_and_the_password_from_pgpassword() {
    let Some(url) = server() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let schema = schema(&url, "t_flag");
    let input = sample_data().join("r4");
    let password = "claimline-test";
    let bare = variant(&url, &format!(":{password}@"), "@");
    let load = |format: &str, out: &str, env: &[(&str, &str)]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_claimline"))
            .args(["load", s(&input), "--out", s(&tmp.path().join(out))])
            .args(["--format", format, "--postgres", &bare])
            .args(["--postgres-schema", &schema, "--no-report", "--json"])
            .env_remove("CLAIMLINE_POSTGRES_URL")
            .env_remove("PGPASSWORD")
            .envs(env.iter().copied())
            .output()
            .expect("runs")
    };
    // --postgres without postgres in --format is a usage error.
    let r = load("parquet", "a", &[("PGPASSWORD", password)]);
    assert_eq!(
        r.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // The URL from the flag, its password from PGPASSWORD.
    let r = load("postgres", "b", &[("PGPASSWORD", password)]);
    let report = ok(&r, "--postgres with PGPASSWORD");
    assert!(report["tables"]["cclf1"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(
        pg_tables(&url, &schema)["cclf1"].len() as u64,
        report["tables"]["cclf1"]
    );
    // Without it the server asks for a password there is none of: exit 5, saying so.
    let r = load("postgres", "c", &[]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("password missing"), "{stderr}");
}
