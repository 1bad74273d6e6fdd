//! The bodies of the fuzz targets in `fuzz/` that exercise this crate, so that `cargo fuzz` and
//! the ordinary test suite run the same code: the tests below feed them the committed seed
//! corpora (`fuzz/corpus/fhirpath/`, `fuzz/corpus/view_definition/`), every view and expression
//! of the official test suite and of `mappings/`, damaged copies of them, and a few thousand
//! generated inputs. Not an API.

use crate::{Rows, ViewDefinition};

/// Any text as a FHIRPath expression: compiling returns a plan or a located error, never
/// panics.
pub fn fhirpath(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::fhirpath::compile(text, &["c".to_owned()]);
    }
}

/// Any text as a ViewDefinition: loading returns a view or a located error; a loaded view
/// evaluated on a real Patient and a real EOB does not panic.
pub fn view_definition(data: &[u8]) {
    const PATIENT: &str = include_str!("../../../sample-data/real/r4/Patient.ndjson");
    const EOB: &str =
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(view) = ViewDefinition::from_json(text, "fuzz.json") {
        for resource in [PATIENT, EOB] {
            let first = resource.lines().next().unwrap_or_default();
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(first) {
                let mut rows = Rows::default();
                let _ = view.evaluate(&value, &mut rows);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;
    use serde_json::Value;

    use super::{fhirpath, view_definition};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("read dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(suffix) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// Every view of the official suite and of `mappings/`, as JSON text.
    fn real_views() -> Vec<String> {
        let mut views = Vec::new();
        for f in files(&repo().join("tests/sql-on-fhir-v2/tests"), ".json") {
            let suite: Value =
                serde_json::from_slice(&std::fs::read(&f).expect("suite")).expect("JSON");
            for t in suite["tests"].as_array().into_iter().flatten() {
                views.push(t["view"].to_string());
            }
        }
        for f in files(&repo().join("mappings"), ".json") {
            views.push(std::fs::read_to_string(&f).expect("view"));
        }
        views
    }

    /// Every FHIRPath expression in `v` (paths, where clauses, forEach, constants aside).
    fn expressions(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("path" | "forEach" | "forEachOrNull", Value::String(s)) => {
                            out.push(s.clone());
                        }
                        _ => expressions(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| expressions(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_seed_corpora_and_every_real_view_damaged() {
        let views = real_views();
        assert!(views.len() > 100, "{} views", views.len());
        let mut exprs = Vec::new();
        for v in &views {
            view_definition(v.as_bytes());
            if let Ok(value) = serde_json::from_str::<Value>(v) {
                expressions(&value, &mut exprs);
            }
            // Cut at 8 places.
            for k in 1..=8 {
                let mut at = v.len() * k / 9;
                while !v.is_char_boundary(at) {
                    at -= 1;
                }
                view_definition(&v.as_bytes()[..at]);
            }
        }
        for seed in files(&repo().join("fuzz/corpus/view_definition"), "") {
            view_definition(&std::fs::read(&seed).expect("seed"));
        }
        assert!(exprs.len() > 500, "{} expressions", exprs.len());
        for e in &exprs {
            fhirpath(e.as_bytes());
            for k in 1..e.len() {
                if e.is_char_boundary(k) {
                    fhirpath(&e.as_bytes()[..k]);
                }
            }
        }
        for seed in files(&repo().join("fuzz/corpus/fhirpath"), "") {
            fhirpath(&std::fs::read(&seed).expect("seed"));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fhirpath_like_text(text in "[a-zA-Z0-9().,'=<>!\\[\\] $%+*/&|~-]{0,80}") {
            fhirpath(text.as_bytes());
        }

        #[test]
        fn a_real_view_with_a_span_replaced(
            index in 0usize..10_000,
            at in 0.0f64..1.0,
            len in 0usize..16,
            with in "[a-zA-Z0-9{}\\[\\]\":,.()' ]{0,12}",
        ) {
            thread_local! {
                static VIEWS: Vec<String> = real_views();
            }
            VIEWS.with(|views| {
                let v = &views[index % views.len()];
                let mut start = (v.len() as f64 * at) as usize;
                while !v.is_char_boundary(start) {
                    start -= 1;
                }
                let mut end = (start + len).min(v.len());
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                let damaged = format!("{}{with}{}", &v[..start], &v[end..]);
                view_definition(damaged.as_bytes());
            });
        }
    }
}
