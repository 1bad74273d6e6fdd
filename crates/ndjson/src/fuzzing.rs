//! The bodies of the fuzz targets in `fuzz/` that exercise this crate, so that `cargo fuzz` and
//! the ordinary test suite run the same code: the tests below feed them the committed seed
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::ndjson_line;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every file of `dir`, recursively, whose name ends with `suffix`.
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

    #[test]
    fn the_seed_corpus_and_every_real_line_cut_and_damaged() {
        let mut cases = 0usize;
        for seed in files(&repo().join("fuzz/corpus/ndjson_line"), "") {
            ndjson_line(&std::fs::read(&seed).expect("seed"));
            cases += 1;
        }
        for file in files(&repo().join("sample-data/real"), ".ndjson") {
            let text = std::fs::read(&file).expect("fixture");
            for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                ndjson_line(line);
                // Cut at 16 places, and one byte flipped at 16 places.
                for k in 1..=16 {
                    let at = line.len() * k / 17;
                    ndjson_line(&line[..at]);
                    let mut flipped = line.to_vec();
                    flipped[at] ^= 0x55;
                    ndjson_line(&flipped);
                    cases += 2;
                }
            }
        }
        assert!(cases > 1000, "{cases} cases");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            ndjson_line(&data);
        }

        #[test]
        fn json_like_text(text in "[{}\\[\\]\":,0-9a-zA-Z .eE+\\-\\\\]{0,200}") {
            ndjson_line(text.as_bytes());
        }
    }
}
