//! Finding input files, and what a BCDA manifest beside them says about each.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::detect::ApiVersion;
use crate::error::Error;

/// How a file's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain NDJSON, memory-mapped.
    None,
    /// Gzip (one or many members), decoded by one thread.
    Gzip,
}

/// One input file and what is known about it before reading.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Where it is.
    pub path: PathBuf,
    /// Plain or gzip (from the `.gz` suffix).
    pub compression: Compression,
    /// The `resourceType` every line must have, when a manifest says so.
    pub expected_type: Option<String>,
    /// The API version, when a manifest's `request` URL says so.
    pub api_version: Option<ApiVersion>,
    /// The version the file's (or else its folder's) resources agree on, without a manifest:
    /// what a resource that carries no mark of its own takes (see [`agree_versions`]).
    pub agreed_version: Option<ApiVersion>,
    /// The file's plain NDJSON already in memory (see [`InputFile::in_memory`]): `path` is then
    /// only its name, and nothing is read from the disk.
    pub data: Option<std::sync::Arc<Vec<u8>>>,
    /// Its size when [`discover`] found it: a file whose size differs once it has been read was
    /// changed meanwhile, and is damaged (`changed_while_read`).
    pub size: Option<u64>,
}

impl InputFile {
    /// A file with nothing known about it but its name.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        // `.GZ` too: Hadoop's codec (Spark's reader) decodes it whatever its case.
        let compression = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
        {
            Compression::Gzip
        } else {
            Compression::None
        };
        InputFile {
            path,
            compression,
            expected_type: None,
            api_version: None,
            agreed_version: None,
            data: None,
            size: None,
        }
    }

    /// The API version of a resource of this file: the manifest's, else the resource's own
    /// marks, else what the file (or its folder) agrees on.
    pub fn version_of(&self, root: crate::Cursor<'_>) -> Option<ApiVersion> {
        self.api_version
            .or_else(|| crate::detect_version(root))
            .or(self.agreed_version)
    }

    /// Lines of the file `name` held in memory as plain NDJSON (`data`), e.g. the lines a
    /// cluster engine read and handed over. Resources and rejects carry `name` and the line
    /// numbers within `data`: to keep a line's number in the original file, put the line at
    /// that line of `data` (blank lines in between are skipped).
    pub fn in_memory(name: impl Into<PathBuf>, data: Vec<u8>) -> Self {
        InputFile {
            compression: Compression::None,
            data: Some(std::sync::Arc::new(data)),
            ..InputFile::new(name)
        }
    }
}

/// The parts of a BCDA bulk-data manifest that reading needs.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Manifest {
    /// When BCDA prepared the export; the next `_since` of an incremental run.
    #[serde(rename = "transactionTime", default)]
    pub transaction_time: Option<String>,
    /// The kick-off URL, which names the API version.
    #[serde(default)]
    pub request: Option<String>,
    /// Data files by type.
    #[serde(default)]
    pub output: Vec<ManifestEntry>,
    /// `OperationOutcome` files.
    #[serde(default)]
    pub error: Vec<ManifestEntry>,
}

/// One `output` or `error` entry of a manifest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ManifestEntry {
    /// The resource type the file holds.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Where BCDA served it.
    #[serde(default)]
    pub url: String,
}

impl Manifest {
    /// Reads `manifest.json`.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Manifest`].
    pub fn read(path: &Path) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: path.to_owned(),
            reason: claimline_model::without_values(&e.to_string()),
        })?;
        // A file's type is said in messages and counts: text that is no type name could be
        // anything (an MBI among others) and is never shown, as a line's `resourceType`.
        for (list, entries) in [("output", &manifest.output), ("error", &manifest.error)] {
            if let Some(k) = entries
                .iter()
                .position(|e| !claimline_model::is_resource_type_name(&e.resource_type))
            {
                return Err(Error::Manifest {
                    path: path.to_owned(),
                    reason: format!(
                        "entry {} of `{list}` has a `type` that is no resource type name ({})",
                        k + 1,
                        claimline_model::RESOURCE_TYPE_NAME_RULE
                    ),
                });
            }
        }
        Ok(manifest)
    }

    /// The API version its `request` URL names.
    pub fn api_version(&self) -> Option<ApiVersion> {
        self.request
            .as_deref()
            .and_then(ApiVersion::from_request_url)
    }
}

/// Expands files and folders into the input files to read, in a stable order.
///
/// In a folder: `*.ndjson` and `*.ndjson.gz`, recursively, skipping hidden folders, `errors/`
/// and `*.part`. When the folder holding a file has a `manifest.json`, a file named
/// `<resourceType>.<NNN>.ndjson[.gz]` gets its expected type and API version from it.
///
/// # Errors
/// [`Error::Read`] for unreadable paths, [`Error::NoInput`] for a path that yields no file.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<InputFile>, Error> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            if out.len() == before {
                return Err(Error::NoInput {
                    path: path.clone(),
                    reason: "folder holds no *.ndjson or *.ndjson.gz file".into(),
                });
            }
        } else if meta.is_file() {
            out.push(InputFile::new(path.clone()));
        } else {
            return Err(not_regular(path));
        }
    }
    // A file named twice (the same folder given twice, a file and its folder) is read once:
    // read twice, its every resource was two copies of one line, and both were left out.
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(file_identity(&f.path)));
    for f in &mut out {
        f.size = std::fs::metadata(&f.path).ok().map(|m| m.len());
    }
    apply_manifests(&mut out)?;
    check_manifest_versions(&out)?;
    agree_versions(&mut out);
    Ok(out)
}

/// Bytes of a file a manifest gives a version read to check that its resources agree.
const CHECK_SAMPLE: usize = 1 << 18;

/// A file whose manifest names an API version: the resources of its first 256 KiB that carry
/// a mark must not all say another one (found by a review: a v2 export under a manifest whose
/// request said v1 was read with v1's views, and 46 columns went NULL with no word).
fn check_manifest_versions(files: &[InputFile]) -> Result<(), Error> {
    // Sampled a few files at once; the first file that disagrees, in the files' order, is named.
    use rayon::prelude::*;
    let sampled: Vec<(&InputFile, ApiVersion, BTreeSet<ApiVersion>)> = sampling(|| {
        files
            .par_iter()
            .filter(|f| f.data.is_none())
            .filter_map(|f| {
                let named = f.api_version?;
                Some((f, named, sample_versions(f, CHECK_SAMPLE)?))
            })
            .collect()
    });
    for (f, named, seen) in sampled {
        if !seen.is_empty() && !seen.contains(&named) {
            let said: Vec<&str> = seen.iter().map(|v| v.as_str()).collect();
            return Err(Error::Disagrees {
                path: f.path.with_file_name("manifest.json"),
                reason: format!(
                    "its request names API {}, and the resources of {} are {}: the manifest is \
                     not this export's (move it away to load the files by what they show)",
                    named.as_str(),
                    f.path.display(),
                    said.join(" and ")
                ),
            });
        }
    }
    Ok(())
}

/// What tells one file from another: its device and inode on Unix (a hard link is the same
/// file), else its canonical path.
fn file_identity(path: &Path) -> (u64, u64, PathBuf) {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt as _;
        return (m.dev(), m.ino(), PathBuf::new());
    }
    (
        0,
        0,
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
    )
}

/// Bytes of a file read to find the version its resources agree on.
const AGREEMENT_SAMPLE: usize = 1 << 20;

/// For files without a manifest: the version their resources agree on. The resources of the
/// first MiB of each file are detected one by one ([`detect_version`](crate::detect_version));
/// when every one that carries a mark says the same version, that is the file's. A file whose
/// sample decides nothing takes the version its folder's files agree on. A file or folder that
/// mixes versions agrees on none: its unmarked resources stay undecided (a row error, never
/// another version's views). A few files are sampled at once (at most four), each line parsed
/// with only the members the detection reads on its tape (checked whole all the same).
pub fn agree_versions(files: &mut [InputFile]) {
    use rayon::prelude::*;
    sampling(|| {
        files
            .par_iter_mut()
            .filter(|f| f.api_version.is_none() && f.data.is_none())
            .for_each(|f| {
                f.agreed_version = sample_versions(f, AGREEMENT_SAMPLE).and_then(one_version);
            });
    });
    let mut by_dir: std::collections::BTreeMap<PathBuf, BTreeSet<ApiVersion>> =
        std::collections::BTreeMap::new();
    for f in files.iter() {
        if let (Some(dir), Some(v)) = (f.path.parent(), f.api_version.or(f.agreed_version)) {
            by_dir.entry(dir.to_owned()).or_default().insert(v);
        }
    }
    for f in files
        .iter_mut()
        .filter(|f| f.api_version.is_none() && f.agreed_version.is_none())
    {
        let folder = f.path.parent().and_then(|d| by_dir.get(d));
        f.agreed_version = folder.cloned().and_then(one_version);
    }
}

fn one_version(set: BTreeSet<ApiVersion>) -> Option<ApiVersion> {
    let mut it = set.into_iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// Files sampled at once, at most: a sample holds a whole line (up to [`SAMPLE_CAP`] bytes, in
/// a file of one long line) and its parse, so a machine of many cores does not hold one per
/// core.
const SAMPLING_THREADS: usize = 4;

/// Runs `work` (the samples, on rayon) on at most [`SAMPLING_THREADS`] threads, no more than
/// rayon's own pool has (a load's `--threads`).
fn sampling<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads().min(SAMPLING_THREADS);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(work),
        // No thread to be had: one file after the other, here.
        Err(_) => work(),
    }
}

/// The versions the marked resources of a file's first `sample` bytes carry (`None`:
/// unreadable).
fn sample_versions(f: &InputFile, sample: usize) -> Option<BTreeSet<ApiVersion>> {
    use std::io::Read as _;
    let file = std::fs::File::open(&f.path).ok()?;
    // Whole lines, blank ones passed over, until `sample` bytes of resources were read (or the
    // file ends, or SAMPLE_CAP bytes were read): a first line longer than the sample, or blank
    // lines before it, do not leave the sample without a resource (found by a review: a manifest
    // of another version got past a padded first line).
    let reader: Box<dyn std::io::Read> = match f.compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, reader.take(SAMPLE_CAP));
    let mut parser = crate::LineParser::new();
    // Nothing read but what the detection reads (and the type and id).
    let mut pruning = crate::Pruning::new();
    pruning.set_others(crate::Needs::new());
    let mut seen = BTreeSet::new();
    let mut line = Vec::new();
    let mut resources = 0usize;
    while resources < sample {
        line.clear();
        // A damaged stream still gives what came before the damage.
        match read_line(&mut reader, &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => break,
        }
        // The last piece may be a line the cap cut: only whole lines count.
        if line.last() != Some(&b'\n') && reader.get_ref().limit() == 0 {
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        resources += line.len();
        if let Ok(Some(v)) = parser.parse_pruned(line.trim_ascii_end(), &pruning, true, |doc| {
            crate::detect_version(doc.root())
        }) {
            seen.insert(v);
        }
    }
    Some(seen)
}

/// `BufRead::read_until(b'\n', line)`, with the line's end found by the memchr crate's vector
/// search rather than the standard library's word at a time (the version samples' lines are
/// 25 KB; this was most of their cost).
fn read_line(reader: &mut impl std::io::BufRead, line: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(read);
        }
        let (used, ended) = match memchr::memchr(b'\n', buf) {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        read += used;
        if ended {
            return Ok(read);
        }
    }
}

/// The most bytes a file's version sample reads (its blank lines and one long first line
/// included).
const SAMPLE_CAP: u64 = 64 << 20;

/// The error for an input that is neither a regular file nor a folder.
fn not_regular(path: &Path) -> Error {
    Error::NoInput {
        path: path.to_owned(),
        reason: "not a regular file or folder (a FIFO, socket or device?): claimline reads \
                 regular files only"
            .into(),
    }
}

fn walk(dir: &Path, out: &mut Vec<InputFile>) -> Result<(), Error> {
    let read_err = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            if !name.starts_with('.') && name != "errors" {
                walk(&path, out)?;
            }
        } else if ({
            let lower = name.to_ascii_lowercase();
            lower.ends_with(".ndjson") || lower.ends_with(".ndjson.gz")
        }) && !name.starts_with('.')
        {
            // Through links; a FIFO, socket or device would block or never end: refused.
            let meta = std::fs::metadata(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            if !meta.is_file() {
                return Err(not_regular(&path));
            }
            out.push(InputFile::new(path));
        }
    }
    Ok(())
}

fn apply_manifests(files: &mut [InputFile]) -> Result<(), Error> {
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.path.parent().map(Path::to_owned))
        .collect();
    for dir in dirs {
        let manifest_path = dir.join("manifest.json");
        // Nothing there: no manifest. Anything else (a folder, a link to nothing) is read, and
        // refused, as a manifest that cannot be read: never taken for no manifest.
        if std::fs::symlink_metadata(&manifest_path).is_err() {
            continue;
        }
        let manifest = Manifest::read(&manifest_path)?;
        let version = manifest.api_version();
        let listed = listed_files(&dir, &manifest_path, &manifest)?;
        let types: BTreeSet<&str> = manifest
            .output
            .iter()
            .map(|e| e.resource_type.as_str())
            .collect();
        for f in files
            .iter_mut()
            .filter(|f| f.path.parent() == Some(dir.as_path()))
        {
            f.api_version = version;
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let prefix = name.split('.').next().unwrap_or_default();
            if let Some(t) = listed.get(&name) {
                f.expected_type = Some(t.clone());
            } else if types.contains(prefix) {
                f.expected_type = Some(prefix.to_owned());
            }
        }
    }
    Ok(())
}

/// The data files a manifest lists, each as its folder holds it (name → the type the manifest
/// gives it): the `n`th file of a type is `<type>.<nnn>.ndjson[.gz]` as `claimline fetch` names
/// it, or the last part of its URL as BCDA serves it.
///
/// # Errors
/// [`Error::Manifest`] when a listed file is not there as a file: the export is incomplete, and
/// loading what is there would leave the rest out with no word.
fn listed_files(
    dir: &Path,
    manifest_path: &Path,
    manifest: &Manifest,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut listed = std::collections::BTreeMap::new();
    let mut counters: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for entry in &manifest.output {
        let t = entry.resource_type.as_str();
        let n = counters.entry(t).or_insert(0);
        let local = format!("{t}.{n:03}.ndjson");
        *n += 1;
        let served = entry
            .url
            .split(['?', '#'])
            .next()
            .and_then(|u| u.rsplit('/').next())
            .filter(|u| u.ends_with(".ndjson") || u.ends_with(".ndjson.gz"))
            .map(str::to_owned);
        let found = [Some(local.clone()), served]
            .into_iter()
            .flatten()
            .flat_map(|name| [format!("{name}.gz"), name])
            .find(|name| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file()));
        match found {
            Some(name) => {
                listed.insert(name, t.to_owned());
            }
            None => {
                let of_type = manifest
                    .output
                    .iter()
                    .filter(|e| e.resource_type == t)
                    .count();
                return Err(Error::Disagrees {
                    path: manifest_path.to_owned(),
                    reason: format!(
                        "lists {of_type} {t} file(s), and {local}[.gz] is not in its folder as a \
                         file: the export is incomplete (fetch it again; or move the manifest \
                         away to load only the files there)"
                    ),
                });
            }
        }
    }
    Ok(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_line_gives_what_read_until_gives() {
        use std::io::BufRead as _;
        let text: &[u8] = b"first line\n\nthe third, longer than the reader's buffer\nlast";
        for capacity in [1, 3, 7, 64] {
            let mut ours = std::io::BufReader::with_capacity(capacity, text);
            let mut std_ = std::io::BufReader::with_capacity(capacity, text);
            loop {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                let n = read_line(&mut ours, &mut a).expect("read");
                assert_eq!(n, std_.read_until(b'\n', &mut b).expect("read"));
                assert_eq!(a, b, "capacity {capacity}");
                if n == 0 {
                    break;
                }
            }
        }
    }

    #[test]
    fn walks_folders_and_reads_manifests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("errors")).expect("mkdir");
        std::fs::create_dir_all(root.join(".claimline/tmp")).expect("mkdir");
        for f in [
            "ExplanationOfBenefit.000.ndjson.gz",
            "Patient.000.ndjson",
            "notes.txt",
            "errors/OperationOutcome.000.ndjson.gz",
            ".claimline/tmp/x.ndjson",
            "Patient.001.ndjson.part",
        ] {
            std::fs::write(root.join(f), b"").expect("write");
        }
        std::fs::write(
            root.join("manifest.json"),
            br#"{"transactionTime":"2026-01-01T00:00:00Z","request":"https://h/api/v3/Group/all/$export","output":[{"type":"Patient","url":"u"},{"type":"ExplanationOfBenefit","url":"u"}],"error":[],"JobID":1}"#,
        )
        .expect("write");
        let files = discover(&[root.to_owned()]).expect("discover");
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.strip_prefix(root).expect("inside").to_owned())
            .collect();
        assert_eq!(
            names,
            [
                PathBuf::from("ExplanationOfBenefit.000.ndjson.gz"),
                PathBuf::from("Patient.000.ndjson")
            ]
        );
        assert_eq!(files[0].compression, Compression::Gzip);
        assert_eq!(
            files[0].expected_type.as_deref(),
            Some("ExplanationOfBenefit")
        );
        assert_eq!(files[1].api_version, Some(ApiVersion::V3));
    }

    /// Every data file a manifest lists must be there: `claimline fetch`'s names, or the last
    /// part of the URL as BCDA serves it (which then gives the file its type). A missing one
    /// stops the read, named (found by a review: the rest loaded with no word). A file named
    /// twice is read once (read twice, every resource was two copies, and both were left out).
    #[test]
    fn a_manifest_file_missing_stops_the_read_and_a_file_named_twice_is_read_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let manifest = |output: &str| {
            std::fs::write(
                root.join("manifest.json"),
                format!(r#"{{"request":"https://h/api/v2/Group/all/$export","output":[{output}],"error":[]}}"#),
            )
            .expect("write");
        };
        std::fs::write(root.join("Patient.000.ndjson"), b"").expect("write");
        std::fs::write(root.join("abc-9.ndjson"), b"").expect("write");
        manifest(
            r#"{"type":"Patient","url":"https://h/data/1/x.ndjson"},{"type":"Coverage","url":"https://h/data/1/abc-9.ndjson?sig=1"}"#,
        );
        let files =
            discover(&[root.to_owned(), root.join("Patient.000.ndjson")]).expect("discover");
        let types: Vec<_> = files
            .iter()
            .map(|f| {
                let name = f
                    .path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (name, f.expected_type.clone())
            })
            .collect();
        assert_eq!(
            types,
            [
                ("Patient.000.ndjson".to_owned(), Some("Patient".to_owned())),
                ("abc-9.ndjson".to_owned(), Some("Coverage".to_owned())),
            ]
        );
        manifest(
            r#"{"type":"Patient","url":"u"},{"type":"Patient","url":"u"},{"type":"Coverage","url":"https://h/data/1/abc-9.ndjson"}"#,
        );
        let err = discover(&[root.to_owned()]).expect_err("Patient.001 is missing");
        assert!(matches!(err, Error::Disagrees { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("lists 2 Patient file(s), and Patient.001.ndjson[.gz]"),
            "{err}"
        );
        // A folder in its place is no file.
        std::fs::create_dir(root.join("Patient.001.ndjson")).expect("mkdir");
        assert!(discover(&[root.join("Patient.000.ndjson")]).is_err());
    }

    /// A manifest whose `type` is no type name is refused, named, and the text never shown
    /// (it is said in messages and counts as the type of its files).
    #[test]
    fn a_manifest_type_that_is_no_type_name_is_refused_without_its_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("Patient.000.ndjson"), b"").expect("write");
        for (output, error) in [
            (r#"{"type":"1EG4TE5MK73","url":"u"}"#, ""),
            (
                r#"{"type":"Patient","url":"u"}"#,
                r#"{"type":"1EG4TE5MK73","url":"u"}"#,
            ),
        ] {
            std::fs::write(
                root.join("manifest.json"),
                format!(r#"{{"request":"https://h/api/v2/Group/all/$export","output":[{output}],"error":[{error}]}}"#),
            )
            .expect("write");
            let err = discover(&[root.to_owned()]).expect_err("refused");
            let text = err.to_string();
            assert!(matches!(err, Error::Manifest { .. }), "{text}");
            assert!(text.contains("manifest.json"), "{text}");
            assert!(text.contains("entry 1 of `"), "{text}");
            assert!(!text.contains("1EG4TE5MK73"), "{text}");
        }
    }

    /// A hard link to an input is the same file, read once (found by a review).
    #[cfg(unix)]
    #[test]
    fn a_hard_link_to_an_input_is_read_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("Patient.ndjson");
        std::fs::write(&a, b"{}\n").expect("write");
        let b = dir.path().join("other.ndjson");
        std::fs::hard_link(&a, &b).expect("link");
        assert_eq!(discover(&[a, b]).expect("discover").len(), 1);
    }

    #[test]
    fn empty_folder_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = discover(&[dir.path().to_owned()]).expect_err("no input");
        assert!(matches!(err, Error::NoInput { .. }));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_named_ndjson_is_refused_not_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("Patient.ndjson"), b"{}\n").expect("write");
        let fifo = dir.path().join("ExplanationOfBenefit.ndjson");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let err = discover(&[dir.path().to_owned()]).expect_err("a FIFO is refused");
        assert!(matches!(err, Error::NoInput { .. }));
        assert!(
            err.to_string()
                .contains("ExplanationOfBenefit.ndjson: not a regular file")
        );
        let err = discover(std::slice::from_ref(&fifo)).expect_err("also when named");
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
