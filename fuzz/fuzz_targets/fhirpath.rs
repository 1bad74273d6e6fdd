//! Any text as a FHIRPath expression: compiling must return a plan or a located error, never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = claimline_view::fhirpath::compile(text, &["c".to_owned()]);
    }
});
