//! Any bytes as one NDJSON line: the tape the validator builds as it checks the line is
//! simd-json's, node for node, with the same number text, whenever the validator takes it; a
//! line simd-json refuses, the validator never takes. The body is
//! `claimline_ndjson::fuzzing::built_tape`, which `cargo test` also runs over the line corpora,
//! the real fixtures and generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    claimline_ndjson::fuzzing::built_tape(data);
});
