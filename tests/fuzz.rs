//! Every fuzz target's body (the hidden `fuzzing` modules of the crates it tests, which the
//! `cargo fuzz` targets in `fuzz/` call too) run as ordinary tests on every CI run: over its
//! committed seed corpus (`fuzz/corpus/<target>/`, where a crash a fuzzer finds is kept), over
//! the real CMS fixtures and the official ViewDefinition suite cut and damaged every way, and
//! over a few thousand proptest inputs each.

use std::io::Read;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;

use claimline_link::fuzzing::cclf8;
use claimline_ndjson::fuzzing::{built_tape, ndjson_line, pruned_line, pruned_walk};
use claimline_sandbox::fuzzing::sandbox_request;
use claimline_view::fuzzing::{fhirpath, view_definition};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file below `dir` whose name ends with `suffix`, sorted.
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

/// The seeds of one target's corpus.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    files(&repo().join("fuzz/corpus").join(target), "")
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect()
}

/// `line` cut at 16 places, and with one byte flipped at 16 places.
fn damaged(line: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (1..=16).flat_map(move |k| {
        let at = line.len() * k / 17;
        let mut flipped = line.to_vec();
        flipped[at] ^= 0x55;
        [line[..at].to_vec(), flipped]
    })
}

/// Every line of the real CMS fixtures, read once.
fn real_lines() -> &'static [Vec<u8>] {
    static LINES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    LINES.get_or_init(|| {
        let mut lines = Vec::new();
        for file in files(&repo().join("sample-data/real"), ".ndjson") {
            let text = std::fs::read(&file).expect("fixture");
            lines.extend(
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        assert!(!lines.is_empty(), "real lines");
        lines
    })
}

/// Every real line, and the first three lines of each generated export (gzip, as BCDA serves
/// them).
fn real_and_generated_lines() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = real_lines().to_vec();
    let real = lines.len();
    for file in files(&repo().join("sample-data/generated"), ".ndjson.gz") {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&file).expect("sample"))
            .read_to_end(&mut text)
            .expect("gzip");
        lines.extend(
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .take(3)
                .map(<[u8]>::to_vec),
        );
    }
    assert!(real > 0 && lines.len() > real, "real and generated lines");
    lines
}

/// Lines parsed whole and in part agree (`pruned_line`): over both line corpora, every real
/// line and generated EOB line cut and damaged, as `ndjson_line` is fed below.
#[test]
fn pruned_line_over_the_corpora_and_every_real_and_generated_line_cut_and_damaged() {
    let mut cases = 0usize;
    for seed in seeds("ndjson_line").into_iter().chain(seeds("pruned_line")) {
        pruned_line(&seed);
        cases += 1;
    }
    let lines = real_and_generated_lines();
    let mut cut_down = 0;
    for line in &lines {
        cut_down += pruned_line(line);
        for damaged in damaged(line) {
            pruned_line(&damaged);
            cases += 1;
        }
    }
    assert!(cases > 1000, "{cases} cases");
    // Every whole line is parsed in part with several needs: most of them must be cut down
    // (not left to the whole parse), or this test would show nothing.
    assert!(
        cut_down > lines.len() * 2,
        "{cut_down} of {} lines cut down",
        lines.len()
    );
}

/// A line parsed in part in one walk gives the long way's tape (`pruned_walk`): over both line
/// corpora, every real line and generated EOB line, whole, cut and damaged.
#[test]
fn pruned_walk_over_the_corpora_and_every_real_and_generated_line_cut_and_damaged() {
    let mut cases = 0usize;
    for seed in seeds("ndjson_line").into_iter().chain(seeds("pruned_line")) {
        pruned_walk(&seed);
        cases += 1;
    }
    let lines = real_and_generated_lines();
    let mut took = 0;
    for line in &lines {
        took += usize::from(pruned_walk(line));
        for damaged in damaged(line) {
            pruned_walk(&damaged);
            cases += 1;
        }
    }
    assert!(cases > 1000, "{cases} cases");
    // Nearly every real and generated line starts with its type and is walked once: the
    // comparison must have run on them.
    assert!(
        took * 10 >= lines.len() * 9,
        "{took} of {} lines walked",
        lines.len()
    );
}

/// The tape the validator builds is simd-json's (`built_tape`): over both line corpora, every
/// real line and generated EOB line, whole, cut and damaged.
#[test]
fn built_tape_over_the_corpora_and_every_real_and_generated_line_cut_and_damaged() {
    let mut cases = 0usize;
    for seed in seeds("ndjson_line").into_iter().chain(seeds("pruned_line")) {
        built_tape(&seed);
        cases += 1;
    }
    let lines = real_and_generated_lines();
    let mut took = 0;
    for line in &lines {
        took += usize::from(built_tape(line));
        for damaged in damaged(line) {
            built_tape(&damaged);
            cases += 1;
        }
    }
    assert!(cases > 1000, "{cases} cases");
    // The real and generated lines are what a load reads: the validator must take nearly all
    // of them, or this test (and the build) would show nothing.
    assert!(
        took * 10 >= lines.len() * 9,
        "{took} of {} lines built",
        lines.len()
    );
}

/// Every line of up to eight tokens from a small alphabet (brackets, `:`, `,`, strings with
/// and without escapes, a number with and one without an exponent, a literal, a space) that
/// starts an object and stays a prefix of valid JSON, and each such prefix with any one token
/// more (a line that goes wrong at its last token): the validator builds simd-json's tape for
/// exactly the lines it is meant to take (valid JSON with no exponent and no key with an
/// escape; the rest it leaves to simd-json), and never takes one simd-json refuses
/// (`built_tape`); the one walk in part gives the long way's tape (`pruned_walk`). The corpora
/// and proptest find deep cases at random; this tries every short one.
#[test]
fn every_short_line_of_tokens_is_built_and_walked_as_simd_json_parses_it() {
    const TOKENS: [&str; 13] = [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"id\"",
        "\"item\"",
        "\"\\u00e9\\n\"",
        "1",
        "-0.5e3",
        "true",
        " ",
    ];
    /// A key with an escape anywhere in `v`.
    fn escaped_key(v: &Value) -> bool {
        match v {
            Value::Object(m) => m.iter().any(|(k, v)| k.contains('é') || escaped_key(v)),
            Value::Array(a) => a.iter().any(escaped_key),
            _ => false,
        }
    }
    #[derive(Default)]
    struct Seen {
        lines: usize,
        valid: usize,
        built: usize,
    }
    fn grow(line: &mut Vec<u8>, tokens_left: usize, seen: &mut Seen) {
        for token in TOKENS {
            let len = line.len();
            line.extend_from_slice(token.as_bytes());
            seen.lines += 1;
            let parsed = serde_json::from_slice::<Value>(line);
            let expected = parsed
                .as_ref()
                .is_ok_and(|v| !escaped_key(v) && !line.windows(2).any(|w| w == b"e3"));
            let took = built_tape(line);
            assert_eq!(took, expected, "{}", String::from_utf8_lossy(line));
            pruned_walk(line);
            seen.valid += usize::from(parsed.is_ok());
            seen.built += usize::from(took);
            // A prefix of a valid line (it ended too soon) grows on.
            if tokens_left > 1 && parsed.is_err_and(|e| e.is_eof()) {
                grow(line, tokens_left - 1, seen);
            }
            line.truncate(len);
        }
    }
    let mut seen = Seen::default();
    grow(&mut b"{".to_vec(), 8, &mut seen);
    assert!(
        seen.lines > 150_000 && seen.valid > 2_500 && seen.built > 1_200,
        "{} lines, {} valid, {} built",
        seen.lines,
        seen.valid,
        seen.built
    );
}

#[test]
fn ndjson_line_over_its_corpus_and_every_real_line_cut_and_damaged() {
    let mut cases = 0usize;
    for seed in seeds("ndjson_line") {
        ndjson_line(&seed);
        cases += 1;
    }
    for line in real_lines() {
        ndjson_line(line);
        for damaged in damaged(line) {
            ndjson_line(&damaged);
            cases += 1;
        }
    }
    assert!(cases > 1000, "{cases} cases");
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

/// Every FHIRPath expression in `v` (paths, where clauses, forEach).
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
fn view_definition_and_fhirpath_over_their_corpora_and_every_real_view_damaged() {
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
    for seed in seeds("view_definition") {
        view_definition(&seed);
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
    for seed in seeds("fhirpath") {
        fhirpath(&seed);
    }
}

/// The real Patient and Coverage lines of every version.
fn real_beneficiary_lines() -> Vec<String> {
    let mut out = Vec::new();
    for v in ["stu3", "r4", "v3"] {
        for t in ["Patient", "Coverage"] {
            let p = repo().join(format!("sample-data/real/{v}/{t}.ndjson"));
            out.extend(
                std::fs::read_to_string(&p)
                    .expect("fixture")
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    out
}

#[test]
fn cclf8_over_its_corpus_and_real_records_with_values_damaged() {
    for seed in seeds("cclf8") {
        cclf8(&seed);
    }
    let lines = real_beneficiary_lines();
    assert!(lines.len() >= 10, "{} real lines", lines.len());
    cclf8(lines.join("\n").as_bytes());
    // Each string value of each line replaced by a number, an object, a date out of range, null
    // and a control character, one at a time (all of a line's variants in one input).
    for line in &lines {
        let mut variants = Vec::new();
        let mut starts: Vec<usize> = line.match_indices(":\"").map(|(i, _)| i + 1).collect();
        starts.truncate(40);
        for at in starts {
            let Some(len) = line[at + 1..].find('"') else {
                continue;
            };
            for with in [
                "12",
                "{\"a\":[1]}",
                "\"9999-99-99\"",
                "null",
                "\"\\u0000x\"",
            ] {
                variants.push(format!("{}{with}{}", &line[..at], &line[at + len + 2..]));
            }
        }
        cclf8(variants.join("\n").as_bytes());
    }
}

#[test]
fn sandbox_request_over_its_corpus() {
    let seeds = seeds("sandbox_request");
    assert!(seeds.len() >= 8, "{} seeds", seeds.len());
    for seed in seeds {
        sandbox_request(&seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn ndjson_line_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        ndjson_line(&data);
    }

    #[test]
    fn ndjson_line_json_like_text(text in "[{}\\[\\]\":,0-9a-zA-Z .eE+\\-\\\\]{0,200}") {
        ndjson_line(text.as_bytes());
    }

    #[test]
    fn pruned_line_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        pruned_line(&data);
    }

    #[test]
    fn pruned_line_json_like_text(text in "[{}\\[\\]\":,0-9a-zA-Z .eE+\\-\\\\]{0,200}") {
        pruned_line(text.as_bytes());
    }

    /// Text after the one walk's opening (`{"resourceType":"`), so that every case reaches it.
    #[test]
    fn pruned_walk_json_like_text(text in "[{}\\[\\]\":,0-9a-zA-Z .eE+\\-\\\\]{0,200}") {
        let line = format!("{{\"resourceType\":\"{text}");
        pruned_walk(line.as_bytes());
        pruned_line(line.as_bytes());
    }

    /// Objects with the members a parse in part keeps and leaves, values of every kind.
    #[test]
    fn pruned_line_generated_objects(
        members in proptest::collection::vec(
            (
                prop_oneof![
                    Just("item"), Just("_item"), Just("itemX"), Just("identifier"),
                    Just("value"), Just("valueQuantity"), Just("careTeam"),
                    Just("resourceType"), Just("servicedDate"), Just("a"),
                ],
                prop_oneof![
                    Just("[{\"servicedDate\":\"2020\",\"a\":[1,{}]},{\"b\":null},{}]"),
                    Just("[{\"a\":1}, 2]"), Just("[]"), Just("[ { } ]"), Just("{\"x\":-0.5}"),
                    Just("\"ExplanationOfBenefit\""), Just("\"t\\u00e9\\n\""), Just("1e5"),
                    Just("12345678901234567890"), Just("true"), Just("null"), Just("\"\\ud83d\\ude00\""),
                    Just("[{\"servicedD\\u0061te\":\"x\"}]"), Just("[null,{}]"),
                    // What the validator's stream of stops must step over in order: escaped
                    // quotes and backslashes, characters beyond ASCII, whitespace between
                    // tokens, strings across 64-byte blocks.
                    Just("\"a\\\"b\\\\\""), Just("[\"\\\\\",\"\\\\\\\"\"]"),
                    Just("\"é€😀\""), Just("{\"é\":\"ü\\\"€\"}"),
                    Just("[ \"a\" ,\t\"b\"\r]"), Just("{\t\"k\"\t:\r\"v\" }"),
                    Just("\"0123456789012345678901234567890123456789012345678901234567890\\\"x\\\\\""),
                    Just("\"\u{1}\""), Just("\"a\u{7f}\u{80}\""),
                ],
            ),
            0..8,
        ),
        cut in any::<prop::sample::Index>(),
        damage in proptest::option::of(any::<u8>()),
    ) {
        let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        let line = format!("{{\"resourceType\":\"ExplanationOfBenefit\",{}}}", body.join(","))
            .replace(",}", "}");
        pruned_line(line.as_bytes());
        built_tape(line.as_bytes());
        pruned_walk(line.as_bytes());
        let mut bytes = line.into_bytes();
        let at = cut.index(bytes.len());
        if let Some(d) = damage {
            bytes[at] ^= d;
            pruned_line(&bytes);
            built_tape(&bytes);
            pruned_walk(&bytes);
        } else {
            pruned_line(&bytes[..at]);
            built_tape(&bytes[..at]);
            pruned_walk(&bytes[..at]);
        }
    }

    /// A real resource with whitespace, escapes, characters beyond ASCII and bytes that are not
    /// UTF-8 put in anywhere (inside strings and between tokens, valid or not): the validator's
    /// stream of stops stays in step with the bytes, or the line goes to the whole parse.
    #[test]
    fn pruned_line_real_lines_with_bytes_put_in(
        line in any::<prop::sample::Index>(),
        edits in proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop_oneof![
                    Just(&b" "[..]), Just(&b"\t"[..]), Just(&b"\r"[..]), Just(&b"\\\""[..]),
                    Just(&b"\\\\"[..]), Just(&b"\""[..]), Just(&b"\\u00e9"[..]),
                    Just("é".as_bytes()), Just("€".as_bytes()), Just("😀".as_bytes()),
                    Just(&b"\x01"[..]), Just(&b"\\"[..]), Just(&b"\\ud800"[..]),
                    // Not UTF-8: a lone continuation byte, a lead byte alone, a surrogate's
                    // encoding, a byte no character has.
                    Just(&b"\x80"[..]), Just(&b"\xC3"[..]), Just(&b"\xED\xA0\x80"[..]),
                    Just(&b"\xFF"[..]),
                ],
            ),
            1..6,
        ),
    ) {
        let lines = real_lines();
        let mut bytes = lines[line.index(lines.len())].clone();
        for (at, text) in &edits {
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, text.iter().copied());
        }
        pruned_line(&bytes);
        built_tape(&bytes);
        pruned_walk(&bytes);
    }

    #[test]
    fn built_tape_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        built_tape(&data);
    }

    #[test]
    fn built_tape_json_like_text(text in "[{}\\[\\]\":,0-9a-zA-Z .eE+\\-\\\\]{0,200}") {
        built_tape(text.as_bytes());
    }

    /// Numbers of every length the validator takes, in objects and arrays: the built tape's
    /// `U64`, `I64` and `F64` are simd-json's to the bit.
    #[test]
    fn built_tape_numbers(
        numbers in proptest::collection::vec("-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?", 1..6),
    ) {
        let line = format!(
            "{{\"a\":[{}],\"b\":{}}}",
            numbers.join(","),
            numbers[0]
        );
        built_tape(line.as_bytes());
    }

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

    #[test]
    fn sandbox_generated_requests(
        method in "(GET|POST|DELETE|HEAD|PUT|[A-Z]{0,6})",
        path in "(/api/v[0-9]/(Group/(all|runout|[a-z0-9]{0,4})|Patient|jobs|metadata)(/\\$export)?|/data/[0-9a-z./]{0,20}|/auth/token|/api/v2/jobs/[0-9]{0,3}|[ -~]{0,30})",
        query in "(\\?(_type=[A-Za-z,%]{0,30}|_since=[0-9TZ:+%-]{0,30}|_typeFilter=[ -~]{0,20}|[ -~]{0,20})(&[ -~]{0,15})?)?",
        auth in "(Bearer fuzz-token|Bearer [ -~]{0,40}|Basic [A-Za-z0-9+/=]{0,40}|[ -~]{0,20})",
        range in "(bytes=[0-9]{0,6}-[0-9]{0,6}|bytes=-[0-9]{0,4}|[ -~]{0,12})",
    ) {
        let request = format!(
            "{method}\n{path}{query}\nAuthorization: {auth}\nRange: {range}\nAccept: application/fhir+json\nPrefer: respond-async"
        );
        sandbox_request(request.as_bytes());
    }

    #[test]
    fn sandbox_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        sandbox_request(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn cclf8_generated_patients_and_coverage(
        id in "[0-9a-z-]{0,8}",
        bene in "[0-9a-z-]{0,8}",
        date in "[0-9-]{0,12}",
        code in "[0-9A-Za-z]{0,4}",
        status in "(active|cancelled|[a-z]{0,6})",
    ) {
        let lines = [
            format!(r#"{{"resourceType":"Patient","id":"{id}","birthDate":"{date}","gender":"{code}","identifier":[{{"system":"http://hl7.org/fhir/sid/us-mbi","value":"{code}"}}]}}"#),
            format!(r#"{{"resourceType":"Coverage","id":"c-{id}","status":"{status}","beneficiary":{{"reference":"Patient/{bene}"}},"period":{{"start":"{date}"}},"class":[{{"value":"{code}"}}],"grouping":{{"subPlan":"{code}"}}}}"#),
        ];
        cclf8(lines.join("\n").as_bytes());
    }
}
