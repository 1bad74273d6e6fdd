//! Any bytes as one NDJSON line: parsing, walking the tape, number text and the shape detectors
//! must never panic.
#![no_main]

use claimline_ndjson::{Cursor, Kind, LineParser, claim_type, detect_version};
use libfuzzer_sys::fuzz_target;

fn walk(c: Cursor<'_>, depth: usize) -> usize {
    if depth > 64 {
        return 0;
    }
    let mut n = 1;
    match c.kind() {
        Kind::Object(_) => {
            for (_, v) in c.entries() {
                n += walk(v, depth + 1);
            }
        }
        Kind::Array(_) => {
            for v in c.items() {
                n += walk(v, depth + 1);
            }
        }
        Kind::Number => {
            let text = c.number_text();
            assert!(text.is_some(), "every number has source text");
        }
        _ => {}
    }
    n
}

fuzz_target!(|data: &[u8]| {
    let mut parser = LineParser::new();
    let _ = parser.parse(data, |doc| {
        let root = doc.root();
        let _ = detect_version(root);
        let _ = claim_type(root);
        walk(root, 0)
    });
});
