//! Rejected lines: counted, described, and kept (raw bytes included) where the user can see them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::error::Error;

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RejectKind {
    /// Not valid JSON (or not valid UTF-8).
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// An object without a string `resourceType`.
    NoResourceType,
    /// A `resourceType` other than the one the manifest says the file holds.
    WrongResourceType,
    /// The file ends mid-line: no final newline and the JSON is incomplete.
    TruncatedLine,
    /// The gzip stream ends early; what follows the last whole line is lost.
    TruncatedGzip,
    /// The gzip stream is corrupt; what follows the last whole line is lost.
    CorruptGzip,
    /// A file named `.gz` is not gzip; nothing of it was read.
    NotGzip,
}

impl RejectKind {
    /// A short stable name (`invalid_json`, …) for reports and the rejects file.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::InvalidJson => "invalid_json",
            RejectKind::NotAnObject => "not_an_object",
            RejectKind::NoResourceType => "no_resource_type",
            RejectKind::WrongResourceType => "wrong_resource_type",
            RejectKind::TruncatedLine => "truncated_line",
            RejectKind::TruncatedGzip => "truncated_gzip",
            RejectKind::CorruptGzip => "corrupt_gzip",
            RejectKind::NotGzip => "not_gzip",
        }
    }
}

/// One rejected line.
#[derive(Debug, Clone)]
pub struct Reject {
    /// Index of the file in the scan's input list.
    pub file_index: usize,
    /// 1-based line number.
    pub line: u64,
    /// Byte offset of the line's start in the (decompressed) file.
    pub offset: u64,
    /// Why.
    pub kind: RejectKind,
    /// A description naming the field or position at fault. Never contains line content.
    pub message: String,
    /// The line's bytes exactly as read (PHI: only ever written to the owner-only rejects file).
    pub raw: Vec<u8>,
}

/// Where rejected lines go.
#[derive(Debug, Clone, Default)]
pub enum RejectTarget {
    /// Kept in memory and returned in [`crate::ScanSummary::rejects`] (for small inputs and
    /// tests).
    #[default]
    Memory,
    /// Appended to an NDJSON file created owner-only (0600) when the first reject arrives.
    File(PathBuf),
}

/// Writes rejects as NDJSON: `file`, `line`, `offset`, `kind`, `error`, and the raw line as
/// `raw` (valid UTF-8) or `raw_base64` (anything else).
pub(crate) struct RejectWriter {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl RejectWriter {
    pub(crate) fn new(path: PathBuf) -> Self {
        RejectWriter { path, out: None }
    }

    pub(crate) fn write(&mut self, file: &Path, r: &Reject) -> Result<(), Error> {
        let err = |source| Error::WriteRejects {
            path: self.path.clone(),
            source,
        };
        if self.out.is_none() {
            self.out = Some(BufWriter::new(create_private(&self.path).map_err(err)?));
        }
        let mut rec = serde_json::Map::new();
        rec.insert("file".into(), file.display().to_string().into());
        rec.insert("line".into(), r.line.into());
        rec.insert("offset".into(), r.offset.into());
        rec.insert("kind".into(), r.kind.as_str().into());
        rec.insert("error".into(), r.message.clone().into());
        match std::str::from_utf8(&r.raw) {
            Ok(s) => rec.insert("raw".into(), s.into()),
            Err(_) => rec.insert(
                "raw_base64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(&r.raw)
                    .into(),
            ),
        };
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| err(std::io::Error::other("rejects file was not opened")))?;
        serde_json::to_writer(&mut *out, &rec).map_err(|e| err(e.into()))?;
        out.write_all(b"\n").map_err(err)
    }

    pub(crate) fn finish(&mut self) -> Result<bool, Error> {
        match self.out.take() {
            Some(mut out) => {
                out.flush().map_err(|source| Error::WriteRejects {
                    path: self.path.clone(),
                    source,
                })?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

pub use claimline_model::create_private;
