//! The body of the `cclf8` fuzz target in `fuzz/`, so that `cargo fuzz` and the ordinary test
//! suite run the same code: any bytes as NDJSON lines of Patients and Coverage go through the
//! built-in CCLF8 input views of every API version, MBI resolution and the CCLF8 join, which
//! must give rows or row errors, never a panic. `tests/fuzz.rs` feeds it the seed corpus
//! (`fuzz/corpus/cclf8/`), the real Patients and Coverage of every version with their values
//! damaged, and a few thousand generated inputs. Not an API.

use std::sync::OnceLock;

use claimline_ndjson::{ApiVersion, InputFile, Resource};
use claimline_view::ViewDefinition;

use crate::{BeneIndex, Plan, PlannedView, Scratch, patient_mbi};

/// The built-in CCLF8 input views of every API version.
fn views() -> Vec<PlannedView> {
    macro_rules! view {
        ($v:literal, $name:literal, $version:expr) => {
            (
                include_str!(concat!("../../../mappings/cclf/", $v, "/", $name, ".json")),
                concat!($v, "/", $name, ".json"),
                $version,
            )
        };
    }
    let texts = [
        view!("v1", "cclf8_patient", ApiVersion::V1),
        view!("v1", "cclf8_coverage", ApiVersion::V1),
        view!("v2", "cclf8_patient", ApiVersion::V2),
        view!("v2", "cclf8_coverage", ApiVersion::V2),
        view!("v3", "cclf8_patient", ApiVersion::V3),
        view!("v3", "cclf8_coverage", ApiVersion::V3),
    ];
    texts
        .into_iter()
        .map(|(text, file, version)| PlannedView {
            // A built-in view that does not load would leave the target testing nothing.
            view: ViewDefinition::from_json(text, file).expect("a built-in CCLF8 view loads"),
            api_version: Some(version),
        })
        .collect()
}

/// Calls `f` with each line of `data` that parses as a resource, as the scanner hands it on.
fn each_resource(data: &[u8], f: impl FnMut(&Resource<'_>)) {
    static FILE: OnceLock<InputFile> = OnceLock::new();
    let file = FILE.get_or_init(|| InputFile::new("fuzz.ndjson"));
    let lines = data
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l));
    let _ = claimline_ndjson::parse_lines(file, lines, f);
}

/// Any bytes as Patient and Coverage lines through the CCLF8 link stage.
pub fn cclf8(data: &[u8]) {
    thread_local! {
        // Planned once per thread: the views do not change between inputs.
        static PLAN: std::cell::RefCell<Option<Plan>> = const { std::cell::RefCell::new(None) };
    }
    PLAN.with_borrow_mut(|slot| {
        let plan = slot.get_or_insert_with(|| {
            let Ok(mut plan) = Plan::new(views()) else {
                panic!("the built-in CCLF8 views plan");
            };
            plan.add_link_tables();
            plan
        });
        cclf8_with(plan, data);
    });
}

fn cclf8_with(plan: &mut Plan, data: &[u8]) {
    let mut index = BeneIndex::default();
    each_resource(data, |r| {
        if let Some((version, bene, mbi)) = patient_mbi(r) {
            index.insert(version, bene, mbi);
        }
    });
    plan.set_bene_index(index);
    let mut builder = plan.cclf8_builder();
    let mut scratch = Scratch::default();
    each_resource(data, |r| {
        if let Some(part) = plan.evaluate(r, "fuzz", &mut scratch).bene_part {
            builder.add(part);
        }
    });
    let width = plan.cclf8_table().map(|t| plan.tables()[t].columns.len());
    for row in builder.rows(20_000) {
        assert_eq!(Some(row.len()), width, "a CCLF8 row has the table's width");
    }
}
