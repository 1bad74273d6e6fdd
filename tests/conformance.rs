//! The official SQL on FHIR v2 conformance suite (vendored in `tests/sql-on-fhir-v2/`), run
//! through both value implementations: `&serde_json::Value` and the simd-json tape cursor.
//!
//! Rows are compared as unordered multisets after converting each expected value with the
//! column's type (so `"2010-10-10T00:00:00.000+14:00"` and the engine's UTC timestamp compare
//! equal); `expectColumns` checks column order. The report goes to
//! `$CARGO_TARGET_TMPDIR/test_report.json` in the suite's report shape: one key per file, the
//! upstream replacements under `upstream-…/<file>`.

use std::path::{Path, PathBuf};

use claimline_ndjson::{LineParser, Pruning};
use claimline_view::{Cell, Rows, ViewDefinition};
use serde_json::{Map, Value, json};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sql-on-fhir-v2")
}

#[derive(Debug)]
struct Outcome {
    file: String,
    title: String,
    tags: Vec<String>,
    error: Option<String>,
}

/// Evaluates `view` on every resource through one implementation; `Err` is the first error.
fn run_serde(view: &ViewDefinition, resources: &[Value]) -> Result<Rows, String> {
    let mut rows = Rows::default();
    for r in resources {
        view.evaluate(r, &mut rows).map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

fn run_tape(view: &ViewDefinition, resources: &[Value]) -> Result<Rows, String> {
    let mut rows = Rows::default();
    let mut parser = LineParser::new();
    for r in resources {
        let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
        parser
            .parse(line.as_bytes(), |doc| view.evaluate(doc.root(), &mut rows))
            .map_err(|e| format!("tape parse: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

/// As [`run_tape`], each resource parsed with only the root members the view says it reads
/// ([`ViewDefinition::root_needs`]; whole when it may read any): a view must give the same rows
/// and errors either way.
fn run_pruned(view: &ViewDefinition, resources: &[Value]) -> Result<Rows, String> {
    let mut pruning = Pruning::new();
    if let Some(needs) = view.root_needs() {
        pruning.set(view.resource(), needs);
    }
    let mut rows = Rows::default();
    let mut parser = LineParser::new();
    for r in resources {
        let line = serde_json::to_string(r).map_err(|e| e.to_string())?;
        parser
            .parse_pruned(line.as_bytes(), &pruning, false, |doc| {
                view.evaluate(doc.root(), &mut rows)
            })
            .map_err(|e| format!("tape parse: {e}"))?
            .map_err(|e| e.to_string())?;
    }
    Ok(rows)
}

fn render(row: &[Cell]) -> String {
    Value::Array(row.iter().map(Cell::to_json).collect()).to_string()
}

/// Checks actual rows against the expected JSON rows as an unordered multiset.
fn compare(view: &ViewDefinition, actual: &Rows, expect: &[Value]) -> Result<(), String> {
    let schema = view.schema();
    let mut wanted = Vec::new();
    for (i, e) in expect.iter().enumerate() {
        let obj = e
            .as_object()
            .ok_or_else(|| format!("expected row {i} is not an object"))?;
        for k in obj.keys() {
            if schema.index_of(k).is_none() {
                return Err(format!(
                    "expected column `{k}` is not in the view's columns"
                ));
            }
        }
        let mut row = Vec::new();
        for c in &schema.columns {
            let v = obj.get(&c.name).unwrap_or(&Value::Null);
            row.push(
                c.cell_from_json(v)
                    .map_err(|err| format!("expected row {i} column {}: {err}", c.name))?,
            );
        }
        wanted.push(row);
    }
    if actual.rows.len() != wanted.len() {
        return Err(format!(
            "expected {} rows, got {}: {}",
            wanted.len(),
            actual.rows.len(),
            actual
                .rows
                .iter()
                .map(|r| render(r))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    for row in &actual.rows {
        match wanted.iter().position(|w| w == row) {
            Some(i) => {
                wanted.swap_remove(i);
            }
            None => return Err(format!("unexpected row {}", render(row))),
        }
    }
    Ok(())
}

fn run_case(file: &str, resources: &[Value], test: &Value) -> Outcome {
    let title = test["title"].as_str().unwrap_or("(untitled)").to_owned();
    let tags = test["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let error = check_case(file, resources, test, &title).err();
    Outcome {
        file: file.to_owned(),
        title,
        tags,
        error,
    }
}

fn check_case(file: &str, resources: &[Value], test: &Value, title: &str) -> Result<(), String> {
    let expect_error = test["expectError"].as_bool() == Some(true);
    let view = match ViewDefinition::from_value(&test["view"], &format!("{file}#{title}")) {
        Ok(v) => v,
        Err(e) if expect_error => {
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(format!("view rejected: {e}")),
    };
    let serde = run_serde(&view, resources);
    let tape = run_tape(&view, resources);
    let pruned = run_pruned(&view, resources);
    if pruned != tape {
        return Err(format!(
            "parsed with only the members the view reads: {pruned:?}, parsed whole: {tape:?}"
        ));
    }
    if expect_error {
        return match (serde, tape) {
            (Err(_), Err(_)) => Ok(()),
            _ => Err("expected an error, the view ran".to_owned()),
        };
    }
    if let Some(cols) = test.get("expectColumns").and_then(Value::as_array) {
        let want: Vec<&str> = cols.iter().filter_map(Value::as_str).collect();
        let got: Vec<&str> = view
            .schema()
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        if want != got {
            return Err(format!("expected columns {want:?}, got {got:?}"));
        }
    }
    let expect = test["expect"]
        .as_array()
        .ok_or("test has neither expect nor expectError")?;
    let serde = serde.map_err(|e| format!("serde_json: {e}"))?;
    compare(&view, &serde, expect).map_err(|e| format!("serde_json: {e}"))?;
    let tape = tape.map_err(|e| format!("tape: {e}"))?;
    compare(&view, &tape, expect).map_err(|e| format!("tape: {e}"))?;
    if serde != tape {
        return Err("serde_json and tape outputs differ".to_owned());
    }
    Ok(())
}

fn run_file(path: &Path, key: &str) -> Vec<Outcome> {
    let text = std::fs::read_to_string(path).expect("suite file is readable");
    let suite: Value = serde_json::from_str(&text).expect("suite file is JSON");
    let resources = suite["resources"].as_array().cloned().unwrap_or_default();
    suite["tests"]
        .as_array()
        .map(|tests| tests.iter().map(|t| run_case(key, &resources, t)).collect())
        .unwrap_or_default()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("suite folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn report(outcomes: &[Outcome]) -> Value {
    let mut files: Map<String, Value> = Map::new();
    for o in outcomes {
        let mut result = json!({ "passed": o.error.is_none() });
        if let Some(e) = &o.error {
            result["error"] = Value::String(e.clone());
        }
        let entry = files
            .entry(o.file.clone())
            .or_insert_with(|| json!({ "tests": [] }));
        if let Some(tests) = entry["tests"].as_array_mut() {
            tests.push(json!({ "name": o.title, "result": result }));
        }
    }
    Value::Object(files)
}

fn tally(outcomes: &[&Outcome], tag: &str) -> (usize, usize) {
    let tagged: Vec<_> = outcomes
        .iter()
        .filter(|o| o.tags.iter().any(|t| t == tag))
        .collect();
    (
        tagged.iter().filter(|o| o.error.is_none()).count(),
        tagged.len(),
    )
}

#[test]
fn sql_on_fhir_v2_suite() {
    let dir = suite_dir();
    let mut outcomes = Vec::new();
    for f in json_files(&dir.join("tests")) {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        outcomes.extend(run_file(&f, &name));
    }
    let primary = outcomes.len();
    let mut upstream_dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("suite folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("upstream-"))
        })
        .collect();
    upstream_dirs.sort();
    for d in &upstream_dirs {
        let folder = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in json_files(d) {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            outcomes.extend(run_file(&f, &format!("{folder}/{name}")));
        }
    }

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test_report.json");
    let text = serde_json::to_string_pretty(&report(&outcomes)).expect("report serializes");
    std::fs::write(&out, text).expect("report is writable");

    let (main, upstream) = outcomes.split_at(primary);
    let main: Vec<&Outcome> = main.iter().collect();
    let upstream: Vec<&Outcome> = upstream.iter().collect();
    for (label, set) in [("suite", &main), ("upstream", &upstream)] {
        let (sp, st) = tally(set, "shareable");
        let (ep, et) = tally(set, "experimental");
        eprintln!("{label}: shareable {sp}/{st}, experimental {ep}/{et}");
        for o in set.iter().filter(|o| o.error.is_some()) {
            eprintln!(
                "  FAIL {} / {} [{}]: {}",
                o.file,
                o.title,
                o.tags.join(","),
                o.error.as_deref().unwrap_or("")
            );
        }
    }
    eprintln!("report: {}", out.display());

    let failed_shareable: Vec<String> = outcomes
        .iter()
        .filter(|o| o.error.is_some() && o.tags.iter().any(|t| t == "shareable"))
        .map(|o| format!("{} / {}", o.file, o.title))
        .collect();
    assert!(
        failed_shareable.is_empty(),
        "shareable cases failed: {failed_shareable:#?}"
    );
    assert_eq!(
        tally(&main, "shareable").1,
        123,
        "the vendored suite has 123 shareable cases"
    );
}
