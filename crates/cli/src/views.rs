//! Finding the views a load runs: the built-in sets embedded in the binary, or files and folders.

use std::path::{Component, Path, PathBuf};

use anyhow::Context as _;
use claimline_link::PlannedView;
use claimline_ndjson::ApiVersion;
use claimline_view::ViewDefinition;

/// A view's source text and where it came from.
pub struct ViewSource {
    /// `builtin:basic/patient.json` or a file path.
    pub origin: String,
    /// The JSON text.
    pub text: String,
    /// The API version its folder names (`…/v2/…`), if any.
    pub api_version: Option<ApiVersion>,
}

/// The built-in `basic` set: one table each for Patient, Coverage, EOB headers and EOB lines,
/// written to work on v1, v2 and v3 alike.
const BASIC: [(&str, &str); 4] = [
    (
        "basic/patient.json",
        include_str!("../../../mappings/basic/patient.json"),
    ),
    (
        "basic/coverage.json",
        include_str!("../../../mappings/basic/coverage.json"),
    ),
    (
        "basic/eob.json",
        include_str!("../../../mappings/basic/eob.json"),
    ),
    (
        "basic/eob_line.json",
        include_str!("../../../mappings/basic/eob_line.json"),
    ),
];

/// The name of the set used when `--views` is not given.
pub const DEFAULT_SET: &str = "basic";

fn version_of(path: &Path) -> Option<ApiVersion> {
    path.components().rev().skip(1).find_map(|c| match c {
        Component::Normal(s) => ApiVersion::parse(&s.to_string_lossy()),
        _ => None,
    })
}

/// Resolves `--views` arguments: the name of a built-in set, or files and folders of JSON.
pub fn sources(args: &[String]) -> anyhow::Result<Vec<ViewSource>> {
    let args: Vec<String> = if args.is_empty() {
        vec![DEFAULT_SET.to_owned()]
    } else {
        args.to_vec()
    };
    let mut out = Vec::new();
    for arg in &args {
        if arg == "basic" {
            out.extend(BASIC.iter().map(|(name, text)| ViewSource {
                origin: format!("builtin:{name}"),
                text: (*text).to_owned(),
                api_version: version_of(Path::new(name)),
            }));
            continue;
        }
        let path = PathBuf::from(arg);
        let mut files = Vec::new();
        collect(&path, &mut files).with_context(|| format!("reading views from {arg}"))?;
        if files.is_empty() {
            anyhow::bail!(UsageError(format!(
                "{arg}: no ViewDefinition (*.json) found; give a file, a folder, or a built-in set (basic)"
            )));
        }
        for f in files {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            out.push(ViewSource {
                origin: f.display().to_string(),
                api_version: version_of(&f),
                text,
            });
        }
    }
    Ok(out)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if e.file_type()?.is_dir() {
                collect(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    } else {
        std::fs::metadata(path)?;
        out.push(path.to_owned());
    }
    Ok(())
}

/// Loads and validates every view; an invalid one is a usage error (exit code 2).
pub fn load(sources: &[ViewSource]) -> anyhow::Result<Vec<PlannedView>> {
    sources
        .iter()
        .map(|s| {
            let view = ViewDefinition::from_json(&s.text, &s.origin)
                .map_err(|e| UsageError(e.to_string()))?;
            Ok(PlannedView {
                view,
                api_version: s.api_version,
            })
        })
        .collect()
}

/// A stable hash of the views' texts (FNV-1a, 64 bits, over origin and text in order): the run
/// records keep it so a later load can tell the tables were built by other views.
pub fn hash(sources: &[ViewSource]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in sources {
        for b in s.origin.bytes().chain([0]).chain(s.text.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// An error in what the user asked for (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
