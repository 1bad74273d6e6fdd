//! Any bytes as one NDJSON line, parsed whole and with only some root members on the tape: both
//! parses accept the line or refuse it alike, and the parse in part holds exactly what was read.
//! The body is `claimline_ndjson::fuzzing::pruned_line`, which `cargo test` also runs over
//! `corpus/pruned_line/`, `corpus/ndjson_line/` and generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    claimline_ndjson::fuzzing::pruned_line(data);
});
