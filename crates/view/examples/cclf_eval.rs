//! Times the built-in CCLF v2 views on an NDJSON file of R4 ExplanationOfBenefits, one thread:
//! `cargo run --release -p claimline-view --example cclf_eval -- FILE [PASSES]`.
//! Prints MB/s for tape parsing alone and for parsing plus every view, and a checksum of the
//! rows (count and a hash of their debug text) so runs before and after a change can be compared.
//! `CCLF_ONLY=cclf5` keeps the views whose file name contains it; `CCLF_DIR=<folder>` reads the
//! views from another folder (one-column copies of a view, to count each column's instructions
//! under callgrind); `CCLF_COLUMNS=<view file>` times each column of one view.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use claimline_ndjson::LineParser;
use claimline_view::{Rows, ViewDefinition, ViewSet};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: cclf_eval FILE [PASSES]");
        std::process::exit(2);
    };
    let passes: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(3);
    let data = std::fs::read(&file).expect("input file");
    if let Ok(view_file) = std::env::var("CCLF_COLUMNS") {
        per_column(&view_file, &data);
        return;
    }
    let dir = std::env::var("CCLF_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../mappings/cclf/v2").into());
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("mappings folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            std::env::var("CCLF_ONLY").map_or(true, |only| p.display().to_string().contains(&only))
        })
        .collect();
    paths.sort();
    let views: Vec<ViewDefinition> = paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("view file");
            ViewDefinition::from_json(&text, &p.display().to_string()).expect("valid view")
        })
        .collect();
    let set = ViewSet::new(views).expect("view set");
    let mut outs = set.outputs();
    let mut parser = LineParser::new();
    let mb = data.len() as f64 / 1e6;
    for with_views in [false, true] {
        let mut best = f64::MAX;
        let mut summary = (0usize, 0usize, 0u64);
        for _ in 0..passes {
            let t = Instant::now();
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            let (mut rows, mut errors) = (0, 0);
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                parser
                    .parse(line, |doc| {
                        if with_views {
                            outs.iter_mut().for_each(Rows::clear);
                            let _ = set.evaluate(doc.root(), &mut outs);
                            for o in &outs {
                                rows += o.rows.len();
                                errors += o.errors.len();
                                if passes == 1 {
                                    format!("{:?}{:?}", o.rows, o.errors).hash(&mut hasher);
                                }
                            }
                        } else {
                            std::hint::black_box(doc.root().kind());
                        }
                    })
                    .expect("valid JSON");
            }
            best = best.min(t.elapsed().as_secs_f64());
            summary = (rows, errors, hasher.finish());
        }
        eprintln!(
            "{:<12} {:>8.1} MB/s  {:.3} s  rows {} errors {} hash {:016x}",
            if with_views { "parse+views" } else { "parse" },
            mb / best,
            best,
            summary.0,
            summary.1,
            summary.2
        );
    }
}

/// With `CCLF_COLUMNS=<view file>` set: times each column of that view on its own (same `where`
/// and iteration), slowest first, to find the expensive paths.
fn per_column(view_file: &str, data: &[u8]) {
    let text = std::fs::read_to_string(view_file).expect("view file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("view JSON");
    let mut parser = LineParser::new();
    let mut timings = Vec::new();
    let selects = v["select"].as_array().cloned().unwrap_or_default();
    for (si, sel) in selects.iter().enumerate() {
        for col in sel["column"].as_array().cloned().unwrap_or_default() {
            let mut one = v.clone();
            let mut s = sel.clone();
            s["column"] = serde_json::Value::Array(vec![col.clone()]);
            if let Some(sub) = s.as_object_mut() {
                sub.remove("select");
            }
            one["select"] = serde_json::Value::Array(vec![s]);
            let view = ViewDefinition::from_value(&one, "one.json").expect("one-column view");
            let set = ViewSet::new(vec![view]).expect("set");
            let mut outs = set.outputs();
            let mut best = f64::MAX;
            for _ in 0..7 {
                let t = Instant::now();
                for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    parser
                        .parse(line, |doc| {
                            outs.iter_mut().for_each(Rows::clear);
                            let _ = set.evaluate(doc.root(), &mut outs);
                        })
                        .expect("valid JSON");
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            timings.push((best, si, col["path"].as_str().unwrap_or("").to_owned()));
        }
    }
    timings.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (t, si, p) in timings {
        eprintln!("{:.4} s  select[{si}]  {p}", t);
    }
}
