//! The bodies of the fuzz targets in `fuzz/` that exercise this crate, so that `cargo fuzz` and
//! the ordinary test suite run the same code: `tests/fuzz.rs` feeds them the committed seed
//! corpora (`fuzz/corpus/fhirpath/`, `fuzz/corpus/view_definition/`), every view and expression
//! of the official test suite and of `mappings/`, damaged copies of them, and a few thousand
//! generated inputs. Not an API.

use crate::{Rows, ViewDefinition};

/// Any text as a FHIRPath expression: compiling returns a plan or a located error, never
/// panics.
pub fn fhirpath(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::fhirpath::compile(text, &["c".to_owned()]);
    }
}

/// Any text as a ViewDefinition: loading returns a view or a located error; a loaded view
/// evaluated on a real Patient and a real EOB does not panic.
pub fn view_definition(data: &[u8]) {
    const PATIENT: &str = include_str!("../../../sample-data/real/r4/Patient.ndjson");
    const EOB: &str =
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson");
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(view) = ViewDefinition::from_json(text, "fuzz.json") {
        for resource in [PATIENT, EOB] {
            let first = resource.lines().next().unwrap_or_default();
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(first) {
                let mut rows = Rows::default();
                let _ = view.evaluate(&value, &mut rows);
            }
        }
    }
}
