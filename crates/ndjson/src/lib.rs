//! Bytes to parsed FHIR resources, as fast as the machine allows and with nothing lost.
//!
//! `claimline-ndjson` reads BCDA bulk-export NDJSON (plain files are memory-mapped, `.ndjson.gz`
//! is decoded by one thread), cuts it into line-aligned chunks, and parses every line into
//! simd-json's tape on a rayon worker: the tape is built by claimline's own validator as it
//! checks the line, and by simd-json for the lines the validator leaves to it (see
//! [`prune`]). Callers see each resource as a [`Resource`] with a
//! [`Cursor`] on the tape (no DOM is built) and return whatever they extract; results come back
//! in input order. Lines that are not a JSON object with a string `resourceType` are
//! [`Reject`]s: counted, described (file, line, byte offset, the field at fault), and kept.
//!
//! It knows nothing of FHIR beyond `resourceType`, except the one shared place that tells BCDA
//! API versions and claim types apart ([`detect`]).
//!
//! ```
//! use claimline_ndjson::{ScanOptions, discover, scan_collect};
//!
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
//! let files = discover(&[dir])?;
//! let (ids, summary) = scan_collect(&files, &ScanOptions::default(), |r| {
//!     (r.resource_type.to_owned(), r.id.map(str::to_owned))
//! })?;
//! assert_eq!(summary.reject_count, 0);
//! assert_eq!(summary.resources()["ExplanationOfBenefit"], 9);
//! assert!(ids.contains(&("Patient".to_owned(), Some("567834".to_owned()))));
//! # Ok::<(), claimline_ndjson::Error>(())
//! ```

pub mod detect;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod input;
pub mod parse;
pub mod prune;
mod reject;
mod report;
mod scan;
pub mod tape;

pub use detect::{
    ApiVersion, EOB_TYPES, claim_type, detect_version, eob_type_code, known_claim_type,
};
pub use error::Error;
pub use input::{Compression, InputFile, Manifest, discover};
pub use parse::LineParser;
pub use prune::{Need, Needs, Pruning};
pub use reject::{Reject, RejectKind, RejectTarget, create_private};
pub use report::{ScanReport, scan_report};
pub use scan::{
    Batch, Damage, DamageKind, FileMap, FileSummary, MAX_THREADS, Resource, ScanOptions,
    ScanSummary, map_file, parse_lines, rayon_threads_refused, scan, scan_collect,
};
pub use tape::{Cursor, Document, Kind};
