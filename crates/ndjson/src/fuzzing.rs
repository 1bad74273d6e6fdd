//! The bodies of the fuzz targets in `fuzz/` that exercise this crate, so that `cargo fuzz` and
//! the ordinary test suite run the same code: `tests/fuzz.rs` feeds them the committed seed
//! corpus (`fuzz/corpus/ndjson_line/`), every line of the real CMS fixtures cut and damaged
//! every way, and a few thousand generated inputs. Not an API.

use crate::tape::{Cursor, Kind};
use crate::{LineParser, claim_type, detect_version};

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

/// Any bytes as one NDJSON line: parsing, walking the tape, number text and the shape
/// detectors must never panic; a line the parser refuses must be explained (a position within
/// the line and a reason).
pub fn ndjson_line(data: &[u8]) {
    let mut parser = LineParser::new();
    let parsed = parser.parse(data, |doc| {
        let root = doc.root();
        let _ = detect_version(root);
        let _ = claim_type(root);
        walk(root, 0)
    });
    if parsed.is_err() {
        let (at, why) = crate::parse::explain_invalid(data);
        assert!(at <= data.len() && !why.is_empty());
    }
}
