//! Finding the views a load runs: the built-in sets embedded in the library (every file of
//! `mappings/basic/` and `mappings/cclf/v1|v2|v3/`, by directory), or files and folders.

use std::path::{Component, Path, PathBuf};

use claimline_link::PlannedView;
use claimline_ndjson::ApiVersion;
use claimline_view::ViewDefinition;

use crate::LoadError;

/// A view's source text and where it came from.
pub struct ViewSource {
    /// `builtin:basic/patient.json` or a file path.
    pub origin: String,
    /// The JSON text.
    pub text: String,
    /// The API version its folder names (`…/v2/…`), if any.
    pub api_version: Option<ApiVersion>,
}

include!(concat!(env!("OUT_DIR"), "/builtin_views.rs"));

/// The name of the set used when `--views` is not given.
pub const DEFAULT_SET: &str = "cclf";

/// The built-in sets by name.
pub fn builtin(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match name {
        "basic" => Some(BASIC),
        "cclf" => Some(CCLF),
        _ => None,
    }
}

fn version_of(path: &Path) -> Option<ApiVersion> {
    path.components().rev().skip(1).find_map(|c| match c {
        Component::Normal(s) => ApiVersion::parse(&s.to_string_lossy()),
        _ => None,
    })
}

/// Resolves `--views` arguments: the name of a built-in set, or files and folders of JSON.
///
/// # Errors
/// [`LoadError::Usage`] when an argument names no view; [`LoadError::Io`] when a file cannot be
/// read.
pub fn sources(args: &[String]) -> Result<Vec<ViewSource>, LoadError> {
    let args: Vec<String> = if args.is_empty() {
        vec![DEFAULT_SET.to_owned()]
    } else {
        args.to_vec()
    };
    let mut out = Vec::new();
    for arg in &args {
        if let Some(set) = builtin(arg) {
            out.extend(set.iter().map(|(name, text)| ViewSource {
                origin: format!("builtin:{name}"),
                text: (*text).to_owned(),
                api_version: version_of(Path::new(name)),
            }));
            continue;
        }
        let path = PathBuf::from(arg);
        let mut files = Vec::new();
        collect(&path, &mut files).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LoadError::Usage(format!(
                    "{arg}: no such file or folder, and not a built-in set (basic, cclf)"
                ))
            } else {
                LoadError::io(&path, e)
            }
        })?;
        if files.is_empty() {
            return Err(LoadError::Usage(format!(
                "{arg}: no ViewDefinition (*.json) found; give a file, a folder, or a built-in set (basic, cclf)"
            )));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| LoadError::io(&f, e))?;
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

/// The resource types BCDA exports (API v1, v2 and v3): a view of any other type would match
/// nothing (a typo such as `Patinet` among them).
pub const SERVED: [&str; 5] = [
    "ExplanationOfBenefit",
    "Patient",
    "Coverage",
    "Claim",
    "ClaimResponse",
];

/// Writes `sources` into `dir` as files a user can edit and load with `--views DIR/...`: a
/// built-in view keeps its path in the set (`cclf/v2/cclf1.json`, so the version folder still
/// limits it to its API version), a view from a file its file name. Returns the files written.
///
/// # Errors
/// [`LoadError::Io`].
pub fn export(sources: &[ViewSource], dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut written = Vec::new();
    for s in sources {
        let rel = match s.origin.strip_prefix("builtin:") {
            Some(rel) => PathBuf::from(rel),
            None => PathBuf::from(Path::new(&s.origin).file_name().unwrap_or_default()),
        };
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LoadError::io(parent, e))?;
        }
        std::fs::write(&path, &s.text).map_err(|e| LoadError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// Loads and validates every view.
///
/// # Errors
/// [`LoadError::Usage`] for a view that is not a valid ViewDefinition.
pub fn load(sources: &[ViewSource]) -> Result<Vec<PlannedView>, LoadError> {
    use rayon::prelude::*;
    // The views parsed and checked on rayon's workers (the built-in set is 33 views: a few
    // milliseconds of a load's setup, before any line is read); the first failure in the
    // sources' order is the one reported, as when they were read one after the other.
    let loaded: Vec<Result<PlannedView, LoadError>> = sources
        .par_iter()
        .map(|s| {
            let view = ViewDefinition::from_json(&s.text, &s.origin)
                .map_err(|e| LoadError::Usage(e.to_string()))?;
            crate::paths::check(&s.text, s.api_version)
                .map_err(|e| LoadError::Usage(format!("{}: {e}", s.origin)))?;
            if !SERVED.contains(&view.resource()) {
                return Err(LoadError::Usage(format!(
                    "{}: resource `{}` is not a resource type BCDA serves ({}); the view would load nothing",
                    s.origin,
                    view.resource(),
                    SERVED.join(", ")
                )));
            }
            Ok(PlannedView {
                view,
                api_version: s.api_version,
            })
        })
        .collect();
    loaded.into_iter().collect()
}

/// A stable hash of the views' texts (FNV-1a, 64 bits, over origin and text in order): the run
/// records keep it so a later load can tell the tables were built by other views.
pub fn hash(sources: &[ViewSource]) -> String {
    let mut h = claimline_model::Fnv1a64::new();
    for s in sources {
        h.write(s.origin.as_bytes())
            .write(&[0])
            .write(s.text.as_bytes())
            .write(&[0]);
    }
    h.hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_cclf_with_eleven_views_per_version() {
        let sources = sources(&[]).expect("built-in set");
        assert_eq!(sources.len(), 33);
        for v in [ApiVersion::V1, ApiVersion::V2, ApiVersion::V3] {
            assert_eq!(
                sources.iter().filter(|s| s.api_version == Some(v)).count(),
                11
            );
        }
        assert!(sources[0].origin.starts_with("builtin:cclf/"));
        let basic = super::sources(&["basic".to_owned()]).expect("basic");
        assert!(basic.iter().all(|s| s.api_version.is_none()));
    }

    #[test]
    fn views_load_in_order_and_the_first_bad_one_is_reported() {
        let mut all = sources(&[]).expect("built-in set");
        let names: Vec<String> = all.iter().map(|s| s.origin.clone()).collect();
        let loaded = load(&all).expect("the built-in views load");
        assert_eq!(loaded.len(), names.len());
        for (planned, source) in loaded.iter().zip(&all) {
            assert_eq!(planned.view.file(), source.origin);
            assert_eq!(planned.api_version, source.api_version, "{}", source.origin);
        }
        // Two bad views: the first in the sources' order is named, in every parallel load
        // (the results are gathered in order before the first failure is taken).
        all[20].text = "{ not json".to_owned();
        all[3].text = all[3].text.replacen("\"status\"", "\"stattus\"", 1);
        assert!(all[3].text.contains("stattus"), "the view has a status");
        for _ in 0..20 {
            let Err(err) = load(&all) else {
                panic!("two bad views load");
            };
            let err = err.to_string();
            assert!(err.contains(&names[3]), "{err}");
        }
    }
}
