//! Any bytes as one HTTP request to the BCDA sandbox (method, URL and query, headers): an
//! answer, never a panic. The body is `claimline_sandbox::fuzzing::sandbox_request` (also run by
//! `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| claimline_sandbox::fuzzing::sandbox_request(data));
