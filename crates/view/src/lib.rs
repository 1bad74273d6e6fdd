//! The crosswalk engine: HL7 SQL on FHIR v2 **ViewDefinitions** with a compiled FHIRPath
//! evaluator, turning one parsed FHIR resource into typed rows. No I/O.
//!
//! - [`ViewDefinition`] loads and validates a view (errors name the file, the JSON location such
//!   as `select[1].column[3].path`, and for FHIRPath the character position and what was
//!   expected). Every FHIRPath is parsed once into a plan.
//! - The evaluator works through the [`Node`] trait, implemented for the scanner's tape
//!   [`claimline_ndjson::Cursor`] (fast path, no DOM) and for `&serde_json::Value`. The
//!   commonest path shapes (member chains, `where` on `member = 'literal'`, `exists()`,
//!   `first()`, `extension(url)`, `iif`, `replace`, `sequence in %resource.item[%rowIndex]…`)
//!   are also compiled into flat step lists walked without the general evaluator; a document
//!   outside the compiled shape falls back to it, so values never differ.
//! - [`ViewSet`] groups views by resource type, so one parse of a resource feeds all its views.
//! - [`Filters`] finds the views whose `where` paths are the same, so that a resource's `where`
//!   is evaluated once for all of them ([`ViewSet`] and the link stage use it).
//! - Output is [`Rows`]: rows of typed [`Cell`]s in [`Schema`] order, plus [`RowError`]s for
//!   values that did not fit their column (the cell is NULL, the error names resource and column).
//!
//! ```
//! use claimline_ndjson::LineParser;
//! use claimline_view::{Cell, Rows, ViewDefinition, ViewSet};
//!
//! let view = ViewDefinition::from_json(r#"{
//!     "resourceType": "ViewDefinition", "name": "eob_lines", "resource": "ExplanationOfBenefit",
//!     "select": [
//!       {"column": [{"name": "id", "path": "getResourceKey()", "type": "id"},
//!                   {"name": "created", "path": "created", "type": "date"}]},
//!       {"forEach": "item", "column": [
//!         {"name": "seq", "path": "sequence", "type": "positiveInt"},
//!         {"name": "hcpcs", "path": "productOrService.coding.where(system.contains('hcpcs')).code.first()",
//!          "type": "string"}]}
//!     ]}"#, "eob_lines.json")?;
//! let views = ViewSet::new(vec![view])?;
//! let mut outputs = views.outputs();
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson");
//! let data = std::fs::read_to_string(path).expect("sample data");
//! let mut parser = LineParser::new();
//! for line in data.lines() {
//!     // Parse once; every view of this resource type runs on the same tape cursor.
//!     parser.parse(line.as_bytes(), |doc| views.evaluate(doc.root(), &mut outputs))
//!         .expect("valid JSON")?;
//! }
//! let Rows { rows, errors } = &outputs[0];
//! assert!(!rows.is_empty());
//! assert!(matches!(rows[0][2], Cell::Integer(1)));
//! // The real CMS samples put a placeholder in `created`: NULL plus a counted row error.
//! assert!(errors.iter().all(|e| e.column == "created"));
//! # Ok::<(), claimline_view::Error>(())
//! ```

mod cell;
mod decimal;
mod error;
mod eval;
mod fast;
pub mod fhirpath;
#[doc(hidden)]
pub mod fuzzing;
mod node;
pub mod temporal;
mod view;

pub use cell::{Cell, Column, ColumnType, DEFAULT_DECIMAL, RowError, Schema};
pub use decimal::Decimal;
pub use error::{Error, FhirPathSyntax};
pub use eval::reference_key;
pub use node::{JsonEntries, Node, NodeKind};
pub use view::{FilterMemo, Filtered, Filters, ManyValues, Rows, ViewDefinition, ViewSet};
