//! Writing a whole export folder: data files split as BCDA splits them, in parallel, and the
//! manifest.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::bene::{Bene, BeneTemplates};
use crate::claims::{self, BeneClaims, ClaimSet};
use crate::{ApiVersion, Error, date};

/// Beneficiaries per `ExplanationOfBenefit` file (BCDA's `getMaxBeneCount`).
pub const EOB_BENES_PER_FILE: u64 = 50;
/// Beneficiaries per `Patient` file.
pub const PATIENT_BENES_PER_FILE: u64 = 5_000;
/// Beneficiaries per `Coverage` file.
pub const COVERAGE_BENES_PER_FILE: u64 = 4_000;

/// The export's `transactionTime`: fixed, so the same seed gives the same bytes.
pub const TRANSACTION_TIME: &str = "2026-11-20T09:12:33.418752Z";
const TRANSACTION_DAY: (i64, u32, u32) = (2026, 11, 20);
/// The first claim number; beneficiary `i` numbers its claims from `FIRST_CLAIM + i * 100_000`.
const FIRST_CLAIM: u64 = 1_000_000_000_000;

/// The first and last day (day numbers) a claim of a `years`-year history may start on: the
/// history ends a week before [`TRANSACTION_TIME`].
pub(crate) fn history_window(years: u32) -> (i64, i64) {
    let (y, m, d) = TRANSACTION_DAY;
    let tx_day = date::days_from_civil(y, m, d);
    (tx_day - i64::from(years) * 365 - 7, tx_day - 8)
}

/// Appends beneficiary `index`'s EOB history to `out`; returns the number of EOBs.
pub(crate) fn write_bene_eobs(
    claims: &ClaimSet,
    version: ApiVersion,
    seed: u64,
    index: u64,
    years: u32,
    claim_scale: f64,
    out: &mut Vec<u8>,
) -> u64 {
    let (first_day, last_day) = history_window(years);
    let bene = Bene::new(seed, index, first_day);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let history = BeneClaims {
        bene_id: &bene.id,
        mbi: &bene.mbis[0],
        first_claim_no: FIRST_CLAIM + index * 100_000,
        first_day,
        years,
        last_day,
        claim_scale,
    };
    claims::write_bene_claims(claims, version, &history, &mut rng, out).eobs
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// Beneficiaries.
    pub benes: u64,
    /// Years of claims history, ending just before [`TRANSACTION_TIME`].
    pub years: u32,
    /// API version: the FHIR shape and the manifest's `request` URL.
    pub version: ApiVersion,
    /// Seed: the same seed (and settings) gives the same bytes.
    pub seed: u64,
    /// Write `*.ndjson.gz` (one gzip member per file, as BCDA stores them) instead of `*.ndjson`.
    pub gzip: bool,
    /// Claims per beneficiary-year relative to Medicare's (1.0): a small export with every
    /// claim type (the quick start's demo) scales them down.
    pub claim_scale: f64,
}

impl ExportConfig {
    /// `benes` beneficiaries over seven years of v2 (R4) data, seed 0, plain NDJSON.
    pub fn new(benes: u64) -> ExportConfig {
        ExportConfig {
            benes,
            years: 7,
            version: ApiVersion::V2,
            seed: 0,
            gzip: false,
            claim_scale: 1.0,
        }
    }
}

/// One data file written.
#[derive(Debug, Clone)]
pub struct WrittenFile {
    /// Path of the file.
    pub path: PathBuf,
    /// `resourceType` of its lines.
    pub resource_type: &'static str,
    /// Resources (lines) in it.
    pub resources: u64,
    /// NDJSON bytes (before gzip).
    pub ndjson_bytes: u64,
    /// Bytes on disk.
    pub file_bytes: u64,
}

/// What [`write_export`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    /// Data files, in manifest order.
    pub files: Vec<WrittenFile>,
}

impl ExportSummary {
    /// Resources of `resource_type` across all files.
    pub fn resources(&self, resource_type: &str) -> u64 {
        self.files
            .iter()
            .filter(|f| f.resource_type == resource_type)
            .map(|f| f.resources)
            .sum()
    }

    /// NDJSON bytes across all files (before gzip).
    pub fn ndjson_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.ndjson_bytes).sum()
    }

    /// Bytes on disk across all data files.
    pub fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.file_bytes).sum()
    }
}

struct Job {
    resource_type: &'static str,
    index: u64,
    first: u64,
    end: u64,
}

struct Context {
    version: ApiVersion,
    seed: u64,
    years: u32,
    claim_scale: f64,
    first_day: i64,
    last_day: i64,
    claims: ClaimSet,
    benes: BeneTemplates,
}

/// Writes a synthetic BCDA export into the folder `out` (created; it must be empty or absent):
/// `ExplanationOfBenefit.NNN.ndjson[.gz]` with the claims of 50 beneficiaries each,
/// `Patient.NNN…` with 5,000 Patients each, `Coverage.NNN…` with the Coverage of 4,000
/// beneficiaries each, `manifest.json`, and for v3 the `warnings-and-info` OperationOutcome under
/// `errors/`. Files are generated in parallel on the current rayon pool.
///
/// # Errors
/// [`Error::NotEmpty`] when `out` holds files; [`Error::Write`] when a file cannot be written.
pub fn write_export(config: &ExportConfig, out: &Path) -> Result<ExportSummary, Error> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|source| Error::Write {
            path: out.to_owned(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(Error::NotEmpty {
                path: out.to_owned(),
            });
        }
    }
    create_dir(out)?;
    let (first_day, last_day) = history_window(config.years);
    let ctx = Context {
        version: config.version,
        seed: config.seed,
        years: config.years,
        claim_scale: config.claim_scale,
        first_day,
        last_day,
        claims: ClaimSet::new(config.version),
        benes: BeneTemplates::new(config.version),
    };
    let mut jobs = Vec::new();
    for (resource_type, per_file) in [
        ("ExplanationOfBenefit", EOB_BENES_PER_FILE),
        ("Patient", PATIENT_BENES_PER_FILE),
        ("Coverage", COVERAGE_BENES_PER_FILE),
    ] {
        let mut first = 0;
        let mut index = 0;
        while first < config.benes {
            let end = (first + per_file).min(config.benes);
            jobs.push(Job {
                resource_type,
                index,
                first,
                end,
            });
            first = end;
            index += 1;
        }
    }
    let files = jobs
        .par_iter()
        .map(|job| write_file(&ctx, job, out, config.gzip))
        .collect::<Result<Vec<_>, Error>>()?;
    // BCDA leaves empty batches out of the manifest (a `--years 0` EOB file, say).
    let mut kept = Vec::with_capacity(files.len());
    for f in files {
        if f.resources == 0 {
            std::fs::remove_file(&f.path).map_err(|source| Error::Write {
                path: f.path.clone(),
                source,
            })?;
        } else {
            kept.push(f);
        }
    }
    let summary = ExportSummary { files: kept };
    write_manifest(config, out, &summary)?;
    Ok(summary)
}

fn write_file(ctx: &Context, job: &Job, dir: &Path, gzip: bool) -> Result<WrittenFile, Error> {
    let name = format!(
        "{}.{:03}.ndjson{}",
        job.resource_type,
        job.index,
        if gzip { ".gz" } else { "" }
    );
    let path = dir.join(name);
    let file = create_file(&path)?;
    let werr = |source| Error::Write {
        path: path.clone(),
        source,
    };
    let mut sink: Box<dyn Write> = if gzip {
        Box::new(GzEncoder::new(
            BufWriter::with_capacity(1 << 20, file),
            Compression::default(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let mut resources = 0;
    let mut ndjson_bytes = 0;
    // Beneficiaries are generated in parallel batches and written in order, so even a single
    // file uses every core and the bytes do not depend on the thread count.
    let batch = (rayon::current_num_threads() as u64 * 2).max(1);
    let mut first = job.first;
    while first < job.end {
        let end = (first + batch).min(job.end);
        let parts: Vec<(Vec<u8>, u64)> = (first..end)
            .into_par_iter()
            .map(|index| bene_lines(ctx, job.resource_type, index))
            .collect();
        for (buf, n) in parts {
            resources += n;
            ndjson_bytes += buf.len() as u64;
            sink.write_all(&buf).map_err(werr)?;
        }
        first = end;
    }
    sink.flush().map_err(werr)?;
    drop(sink);
    let file_bytes = std::fs::metadata(&path).map_err(werr)?.len();
    Ok(WrittenFile {
        path: path.clone(),
        resource_type: job.resource_type,
        resources,
        ndjson_bytes,
        file_bytes,
    })
}

/// The lines of `resource_type` for beneficiary `index`, and how many.
fn bene_lines(ctx: &Context, resource_type: &str, index: u64) -> (Vec<u8>, u64) {
    let mut buf = Vec::new();
    if resource_type == "ExplanationOfBenefit" {
        buf.reserve(12 << 20);
        let n = write_bene_eobs(
            &ctx.claims,
            ctx.version,
            ctx.seed,
            index,
            ctx.years,
            ctx.claim_scale,
            &mut buf,
        );
        return (buf, n);
    }
    let bene = Bene::new(ctx.seed, index, ctx.first_day);
    let last_year = date::civil_from_days(ctx.last_day).0;
    let n = match resource_type {
        "Patient" => {
            ctx.benes
                .write_patient(&bene, &bene_updated(ctx), last_year, &mut buf);
            1
        }
        _ => {
            ctx.benes
                .write_coverage(&bene, &bene_updated(ctx), last_year, &mut buf);
            ctx.benes.coverage_per_bene() as u64
        }
    };
    (buf, n)
}

/// `meta.lastUpdated` of Patient and Coverage: the last weekly refresh before the export.
fn bene_updated(ctx: &Context) -> String {
    format!("{}T02:41:17.093-05:00", date::date_text(ctx.last_day + 2))
}

fn write_manifest(config: &ExportConfig, out: &Path, summary: &ExportSummary) -> Result<(), Error> {
    let job_id = 10_000 + config.seed % 90_000;
    let base = "https://api.bcda.cms.gov";
    let v = config.version.as_str();
    let output: Vec<serde_json::Value> = summary
        .files
        .iter()
        .map(|f| {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let name = name.trim_end_matches(".gz");
            serde_json::json!({"type": f.resource_type, "url": format!("{base}/data/{job_id}/{name}")})
        })
        .collect();
    let mut error = Vec::new();
    if config.version == ApiVersion::V3 {
        let dir = out.join("errors");
        create_dir(&dir)?;
        let name = format!(
            "OperationOutcome.000.ndjson{}",
            if config.gzip { ".gz" } else { "" }
        );
        let path = dir.join(name);
        let line = b"{\"issue\":[{\"code\":\"informational\",\"diagnostics\":\"No System-Type _tag filter was given: this export of ExplanationOfBenefit holds NationalClaimsHistory and DDPS claims only.\",\"severity\":\"warning\"}],\"resourceType\":\"OperationOutcome\"}\n";
        let werr = |source| Error::Write {
            path: path.clone(),
            source,
        };
        let file = create_file(&path)?;
        if config.gzip {
            let mut gz = GzEncoder::new(file, Compression::default());
            gz.write_all(line).map_err(werr)?;
            gz.finish().map_err(werr)?;
        } else {
            let mut file = file;
            file.write_all(line).map_err(werr)?;
        }
        error.push(serde_json::json!({
            "type": "OperationOutcome",
            "url": format!("{base}/data/{job_id}/warnings-and-info.ndjson"),
        }));
    }
    let manifest = serde_json::json!({
        "JobID": job_id,
        "error": error,
        "output": output,
        "request": format!("{base}/api/{v}/Group/all/$export?_type=ExplanationOfBenefit,Patient,Coverage"),
        "requiresAccessToken": true,
        "transactionTime": TRANSACTION_TIME,
    });
    let mut text = Vec::new();
    crate::json::write_value(&mut text, &manifest);
    text.push(b'\n');
    let path = out.join("manifest.json");
    let mut file = create_file(&path)?;
    file.write_all(&text)
        .map_err(|source| Error::Write { path, source })
}

fn create_dir(path: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

fn create_file(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}
