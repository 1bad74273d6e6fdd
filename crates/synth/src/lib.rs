//! Seeded generator of synthetic BCDA bulk exports, shaped like the real CMS records.
//!
//! Benchmarks and tests need input with the real shape at any size: line lengths, nesting, key
//! order and number text as BCDA writes them, a Medicare claim mix over years of history. This
//! crate compiles the real CMS-written resources of each API version in `sample-data/real/`
//! (embedded at build time) into byte templates and fills their variable parts per claim: ids,
//! beneficiary, MBI, claim group, dates (shifted together, over the years of the history),
//! ICD-10 and HCPCS codes, amounts (with cents, in Go's shortest number text), line items,
//! cancelled and adjusted versions. Keys are sorted at every level and strings use Go's escapes,
//! as BCDA's Go worker writes them. The same seed gives the same bytes.
//!
//! - [`write_export`] writes a whole export folder (`claimline synth`): `manifest.json` and
//!   `<resourceType>.<NNN>.ndjson[.gz]` files split as BCDA splits them (50 beneficiaries per EOB
//!   file, 5,000 per Patient file, 4,000 per Coverage file), generated in parallel.
//! - [`EobGenerator`] streams EOB lines into a buffer, for benchmarks.
//!
//! ```
//! use claimline_synth::{ApiVersion, ExportConfig, write_export};
//!
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("export");
//! let config = ExportConfig { benes: 3, years: 1, version: ApiVersion::V2, seed: 7, ..ExportConfig::new(3) };
//! let summary = write_export(&config, &out)?;
//! assert_eq!(summary.resources("Patient"), 3);
//! assert_eq!(summary.resources("Coverage"), 12);
//! assert!(summary.resources("ExplanationOfBenefit") > 3 * 30);
//! let manifest = std::fs::read_to_string(out.join("manifest.json"))?;
//! assert!(manifest.contains("/api/v2/Group/all/$export"));
//!
//! // Same seed, same bytes.
//! let again = dir.path().join("again");
//! write_export(&config, &again)?;
//! let eob = "ExplanationOfBenefit.000.ndjson";
//! assert_eq!(std::fs::read(out.join(eob))?, std::fs::read(again.join(eob))?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;

mod bene;
mod claims;
mod date;
mod export;
mod json;
mod template;

pub use bene::synthetic_mbi;
pub use claims::ClaimType;
pub use export::{
    COVERAGE_BENES_PER_FILE, EOB_BENES_PER_FILE, ExportConfig, ExportSummary,
    PATIENT_BENES_PER_FILE, TRANSACTION_TIME, WrittenFile, write_export,
};

/// The BCDA API version of an export: the scanner's own type, so what `synth` writes and what
/// `scan` detects are named the same way.
pub use claimline_ndjson::ApiVersion;

/// What can go wrong generating an export.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The output folder already holds files.
    #[error("{}: the output folder is not empty", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// A file or folder could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Streams BCDA-shaped `ExplanationOfBenefit` lines (one beneficiary's seven-year history after
/// another, the mix and shapes of [`write_export`]) into a buffer, for benchmarks.
///
/// ```
/// use claimline_synth::EobGenerator;
///
/// let mut generator = EobGenerator::new(7);
/// let mut out = Vec::new();
/// generator.write_lines(&mut out, 10);
/// assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 10);
/// let first = out.split(|b| *b == b'\n').next().unwrap_or_default();
/// let first: serde_json::Value = serde_json::from_slice(first)?;
/// assert_eq!(first["resourceType"], "ExplanationOfBenefit");
/// // Same seed, same bytes.
/// let mut again = Vec::new();
/// EobGenerator::new(7).write_lines(&mut again, 10);
/// assert_eq!(out, again);
/// # Ok::<(), serde_json::Error>(())
/// ```
pub struct EobGenerator {
    version: ApiVersion,
    claims: claims::ClaimSet,
    seed: u64,
    next_bene: u64,
    pending: Vec<u8>,
    pos: usize,
}

impl EobGenerator {
    /// An API v2 (R4) generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_version(ApiVersion::V2, seed)
    }

    /// A generator of `version` EOBs seeded with `seed`.
    pub fn with_version(version: ApiVersion, seed: u64) -> Self {
        EobGenerator {
            version,
            claims: claims::ClaimSet::new(version),
            seed,
            next_bene: 0,
            pending: Vec::new(),
            pos: 0,
        }
    }

    /// Appends `n` EOB lines (each ending in `\n`) to `out`.
    pub fn write_lines(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            self.write_line(out);
        }
    }

    /// Appends EOB lines to `out` until it holds at least `bytes` bytes; returns the line count.
    pub fn write_bytes(&mut self, out: &mut Vec<u8>, bytes: usize) -> usize {
        let mut n = 0;
        while out.len() < bytes {
            self.write_line(out);
            n += 1;
        }
        n
    }

    /// Appends one EOB line.
    pub fn write_line(&mut self, out: &mut Vec<u8>) {
        while self.pos >= self.pending.len() {
            self.refill();
        }
        let rest = &self.pending[self.pos..];
        let len = memchr_newline(rest).map_or(rest.len(), |i| i + 1);
        out.extend_from_slice(&rest[..len]);
        self.pos += len;
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.pos = 0;
        let index = self.next_bene;
        self.next_bene += 1;
        export::write_bene_eobs(
            &self.claims,
            self.version,
            self.seed,
            index,
            7,
            1.0,
            &mut self.pending,
        );
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}
