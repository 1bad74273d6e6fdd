//! Bytes to parsed FHIR resources, as fast as the machine allows and with nothing lost.
pub mod parse;
pub mod tape;

pub use parse::LineParser;
pub use tape::{Cursor, Document, Kind};
