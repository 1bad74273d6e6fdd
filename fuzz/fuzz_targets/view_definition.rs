//! Any text as a ViewDefinition: loading must return a view or a located error; a loaded view
//! evaluated on a fixed real resource must not panic.
#![no_main]

use claimline_view::{Rows, ViewDefinition};
use libfuzzer_sys::fuzz_target;

const PATIENT: &str = include_str!("../../sample-data/real/r4/Patient.ndjson");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(view) = ViewDefinition::from_json(text, "fuzz.json") {
        if let Ok(resource) = serde_json::from_str::<serde_json::Value>(PATIENT.trim()) {
            let mut rows = Rows::default();
            let _ = view.evaluate(&resource, &mut rows);
        }
    }
});
