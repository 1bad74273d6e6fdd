//! Any text as a ViewDefinition: loading must return a view or a located error; a loaded view
//! evaluated on real resources must not panic. The body is
//! `claimline_view::fuzzing::view_definition` (also run by `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| claimline_view::fuzzing::view_definition(data));
