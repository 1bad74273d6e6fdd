//! The vocabulary every claimline crate shares, in one small crate with no heavy dependency:
//! BCDA API versions ([`ApiVersion`]), civil dates and their text forms ([`days_from_civil`],
//! [`format_timestamp`], …), typed table cells and schemas ([`Cell`], [`ColumnType`],
//! [`TableSchema`]), the record each run leaves ([`RunRecord`]), owner-only files
//! ([`create_private`], [`write_atomic`], …), since everything claimline writes is PHI, and
//! the text comparison of keys and codes every crate's hot loops use ([`same_text`]).
//!
//! The scanner, the view engine, the link stage, the sinks and the fetcher use these types
//! rather than each their own, so a value crosses a crate seam without conversion, and crates
//! that only need a `Cell` do not build SQLite and Parquet.
//!
//! ```
//! use claimline_model::{ApiVersion, Cell, Column, ColumnType, TableSchema, format_date};
//!
//! let schema = TableSchema::new("patient", vec![Column::new("birth_date", ColumnType::Date)]);
//! let row = vec![Cell::Date(-3_000)];
//! assert_eq!(schema.columns.len(), row.len());
//! assert_eq!(format_date(-3_000), "1961-10-15");
//! assert_eq!(ApiVersion::parse("V2"), Some(ApiVersion::V2));
//! ```

mod api;
mod date;
mod export_state;
mod hash;
mod private;
mod run;
mod table;
mod text;
mod units;

pub use api::{ApiVersion, RESOURCE_TYPE_NAME_RULE, is_resource_type_name};
/// The text of a [`Cell::Text`]: a string that keeps up to 24 bytes inline (on 64-bit
/// targets; 12 on 32-bit ones).
pub use compact_str::CompactString;
pub use date::{
    civil_from_days, days_from_civil, format_date, format_timestamp, parse_date, push_date,
    push_timestamp,
};
pub use export_state::{ExportState, FileRecord, export_state_path, resources_per_type};
pub use hash::Fnv1a64;
pub use private::{
    Syncer, append_private, create_private, create_private_dir, make_private, read_present,
    sync_dir, write_atomic,
};
pub use run::RunRecord;
pub use table::{Cell, Column, ColumnType, TableSchema, decimal_f64, decimal_text, mark_held};
pub use text::{same_text, text_fingerprint, without_values};
pub use units::human_bytes;
