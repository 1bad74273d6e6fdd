//! Any text as a FHIRPath expression: compiling must return a plan or a located error, never
//! panic. The body is `claimline_view::fuzzing::fhirpath` (also run by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| claimline_view::fuzzing::fhirpath(data));
