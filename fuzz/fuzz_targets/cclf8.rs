//! Any bytes as Patient and Coverage lines through the CCLF8 link stage (the built-in input
//! views of every API version, MBI resolution, the join): rows or row errors, never a panic.
//! The body is `claimline_link::fuzzing::cclf8` (also run by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| claimline_link::fuzzing::cclf8(data));
