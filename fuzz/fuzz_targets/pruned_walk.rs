//! Any bytes as one NDJSON line parsed in part in one walk: the tape is the long way's (the
//! members read copied out, then parsed), node for node, for several needs. The body is
//! `claimline_ndjson::fuzzing::pruned_walk`, which `cargo test` also runs over
//! `corpus/pruned_line/`, `corpus/ndjson_line/` and generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    claimline_ndjson::fuzzing::pruned_walk(data);
});
