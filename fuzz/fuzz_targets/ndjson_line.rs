//! Any bytes as one NDJSON line: parsing, walking the tape, number text and the shape detectors
//! must never panic. The body is `claimline_ndjson::fuzzing::ndjson_line`, which `cargo test`
//! also runs over `corpus/ndjson_line/` and generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| claimline_ndjson::fuzzing::ndjson_line(data));
