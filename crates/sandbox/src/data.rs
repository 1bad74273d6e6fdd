//! Loading an export folder and splitting it into BCDA-sized files.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use jiff::Timestamp;

use crate::SandboxError;

/// How many beneficiaries BCDA puts in one file of a resource type.
pub fn benes_per_file(resource_type: &str) -> usize {
    match resource_type {
        "ExplanationOfBenefit" => 50,
        "Patient" => 5_000,
        _ => 4_000, // Coverage, Claim, ClaimResponse
    }
}

/// One NDJSON line with what the sandbox needs to know about it.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// The line's bytes, without the line end.
    pub text: Vec<u8>,
    /// `meta.lastUpdated` when it is a valid instant.
    pub last_updated: Option<Timestamp>,
}

/// The resources of an export folder, by type, already cut into beneficiary batches.
#[derive(Debug, Default)]
pub(crate) struct Dataset {
    /// Resource type → batches (each holds the lines of at most `benes_per_file` beneficiaries).
    pub batches: BTreeMap<String, Vec<Vec<Line>>>,
    /// `OperationOutcome` lines found in the folder (served as `error` files).
    pub errors: Vec<Line>,
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SandboxError> {
    let read_err = |source| SandboxError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if name.ends_with(".ndjson") || name.ends_with(".ndjson.gz") {
            out.push(path);
        }
    }
    Ok(())
}

/// The key that groups a resource with its beneficiary.
fn beneficiary_key(resource: &serde_json::Value) -> String {
    let reference = |field: &str| {
        resource
            .get(field)
            .and_then(|v| v.get("reference"))
            .and_then(|v| v.as_str())
            .map(|r| r.trim_start_matches("Patient/").to_owned())
    };
    match resource.get("resourceType").and_then(|v| v.as_str()) {
        Some("Patient") => resource
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
        Some("Coverage") => reference("beneficiary").unwrap_or_default(),
        _ => reference("patient")
            .or_else(|| reference("subject"))
            .unwrap_or_default(),
    }
}

impl Dataset {
    /// Reads every `*.ndjson` and `*.ndjson.gz` file under `dir` (hidden entries skipped), in
    /// path order, and cuts each resource type into beneficiary batches.
    pub(crate) fn load(dir: &Path) -> Result<Self, SandboxError> {
        let mut files = Vec::new();
        if dir.is_file() {
            files.push(dir.to_path_buf());
        } else {
            collect_files(dir, &mut files)?;
        }
        if files.is_empty() {
            return Err(SandboxError::NoData {
                path: dir.to_path_buf(),
            });
        }
        // type → (bene key → batch index), type → batches, type → benes in current batch
        let mut bene_batch: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let mut data = Dataset::default();
        for path in files {
            let read_err = |source| SandboxError::Read {
                path: path.clone(),
                source,
            };
            let file = fs::File::open(&path).map_err(read_err)?;
            let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
                Box::new(MultiGzDecoder::new(file))
            } else {
                Box::new(file)
            };
            for (index, line) in BufReader::new(reader).split(b'\n').enumerate() {
                let mut text = line.map_err(read_err)?;
                if text.last() == Some(&b'\r') {
                    text.pop();
                }
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let bad = || SandboxError::BadLine {
                    path: path.clone(),
                    line: index + 1,
                };
                let value: serde_json::Value = serde_json::from_slice(&text).map_err(|_| bad())?;
                let resource_type = value
                    .get("resourceType")
                    .and_then(|v| v.as_str())
                    .ok_or_else(bad)?
                    .to_owned();
                let last_updated = value
                    .get("meta")
                    .and_then(|m| m.get("lastUpdated"))
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse::<Timestamp>().ok());
                let line = Line { text, last_updated };
                if resource_type == "OperationOutcome" {
                    data.errors.push(line);
                    continue;
                }
                let key = beneficiary_key(&value);
                let per_file = benes_per_file(&resource_type);
                let batches = data.batches.entry(resource_type.clone()).or_default();
                let index_of = bene_batch.entry(resource_type).or_default();
                let next = index_of.len();
                let batch = *index_of.entry(key).or_insert(next / per_file);
                if batches.len() <= batch {
                    batches.resize_with(batch + 1, Vec::new);
                }
                batches[batch].push(line);
            }
        }
        Ok(data)
    }
}

/// Gzips lines as one member, each line ending in `\n`.
pub(crate) fn gzip_lines<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    for line in lines {
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(line);
        let _ = encoder.write_all(b"\n");
    }
    encoder.finish().unwrap_or_default()
}

/// Decompresses a gzip body served without `Accept-Encoding: gzip`.
pub(crate) fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // The sandbox made these bytes itself; a failure leaves a truncated body.
    let _ = MultiGzDecoder::new(bytes).read_to_end(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eob_files_hold_fifty_beneficiaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = String::new();
        for bene in 0..120 {
            for claim in 0..2 {
                text.push_str(&format!(
                    "{{\"resourceType\":\"ExplanationOfBenefit\",\"id\":\"{bene}-{claim}\",\"patient\":{{\"reference\":\"Patient/{bene}\"}}}}\n"
                ));
            }
            text.push_str(&format!(
                "{{\"resourceType\":\"Patient\",\"id\":\"{bene}\"}}\n"
            ));
        }
        fs::write(dir.path().join("x.ndjson"), text).expect("write");
        let data = Dataset::load(dir.path()).expect("load");
        let eob = &data.batches["ExplanationOfBenefit"];
        assert_eq!(eob.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 40]);
        assert_eq!(data.batches["Patient"].len(), 1);
    }

    #[test]
    fn real_sample_loads_with_placeholder_timestamps() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
        let data = Dataset::load(&dir).expect("load");
        assert!(data.batches.contains_key("Coverage"));
        let patient = &data.batches["Patient"][0][0];
        assert!(
            patient.last_updated.is_none(),
            "IGNORED_FIELD is not an instant"
        );
    }
}
