//! The `claimline run` config file: one profile per ACO, in TOML.
//!
//! ```toml
//! [profiles.aco-a]
//! env = "prod"                          # or base_url = "https://…"
//! api = "v2"
//! endpoint = "group/all"
//! types = ["ExplanationOfBenefit", "Patient", "Coverage"]
//! out = "/srv/claims/aco-a"             # relative paths are relative to this file
//! credentials = "/etc/claimline/aco-a.env"
//! keep = 8
//! ```
//!
//! Secrets never go in this file: `credentials` names a private `KEY=VALUE` file (see
//! `claimline_fetch::Credentials::from_file`). Unknown keys are refused, so a `client_secret` put
//! here by mistake is an error rather than silently kept in a readable file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where `claimline run` looks for its config when `--config` is not given.
pub const ENV_CONFIG: &str = "CLAIMLINE_CONFIG";
/// The default config file name, in the current folder.
pub const DEFAULT_FILE: &str = "claimline.toml";

/// A config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One ACO's settings; every key is optional and a command-line flag overrides it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `prod` or `sandbox`.
    pub env: Option<String>,
    /// Another BCDA-compatible base URL.
    pub base_url: Option<String>,
    /// `v1`, `v2` or `v3`.
    pub api: Option<String>,
    /// `group/all`, `group/runout` or `patient`.
    pub endpoint: Option<String>,
    /// `_type`.
    pub types: Option<Vec<String>>,
    /// `_typeFilter` (v3).
    pub type_filter: Option<String>,
    /// The output folder.
    pub out: Option<PathBuf>,
    /// A private file of `BCDA_CLIENT_ID=` and `BCDA_CLIENT_SECRET=` lines.
    pub credentials: Option<PathBuf>,
    /// Extra PEM root certificates.
    pub ca_file: Option<PathBuf>,
    /// Exports kept under `out/exports/`.
    pub keep: Option<usize>,
    /// Views (`basic`, `cclf` or paths).
    pub views: Option<Vec<String>>,
    /// Commit `transactionTime` even when the load had rejects or row errors.
    pub accept_rejects: Option<bool>,
    /// Log file.
    pub log: Option<PathBuf>,
}

/// A config file that cannot be used.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigFile {
    /// Reads and checks a config file; relative paths in it become relative to its folder.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        // Only the message and the line: the error's own display quotes the line, which could
        // hold a secret typed here by mistake.
        let mut config: ConfigFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text.get(..span.start).unwrap_or("").matches('\n').count() + 1);
            match line {
                Some(line) => bad(format!("line {line}: {}", e.message())),
                None => bad(e.message().to_owned()),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, profile) in &mut config.profiles {
            if profile.env.is_some() && profile.base_url.is_some() {
                return Err(bad(format!(
                    "profile {name}: give env or base_url, not both"
                )));
            }
            for p in [
                &mut profile.out,
                &mut profile.credentials,
                &mut profile.ca_file,
                &mut profile.log,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// The profile called `name`.
    pub fn profile(&self, path: &Path, name: &str) -> Result<Profile, ConfigError> {
        self.profiles.get(name).cloned().ok_or_else(|| ConfigError {
            path: path.to_path_buf(),
            reason: format!(
                "no profile {name:?} (profiles: {})",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// The config file to use: `--config`, else `$CLAIMLINE_CONFIG`, else `./claimline.toml` when it
/// exists.
pub fn locate(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = flag {
        return Some(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(ENV_CONFIG).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let local = PathBuf::from(DEFAULT_FILE);
    local.is_file().then_some(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claimline.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn profiles_resolve_relative_paths_against_the_file() {
        let (dir, path) = write(
            "[profiles.a]\nenv = \"sandbox\"\napi = \"v3\"\nout = \"out-a\"\ncredentials = \"/etc/a.env\"\n\
             types = [\"Patient\"]\n[profiles.b]\nbase_url = \"http://127.0.0.1:1\"\n",
        );
        let config = ConfigFile::read(&path).expect("config");
        let a = config.profile(&path, "a").expect("a");
        assert_eq!(a.out, Some(dir.path().join("out-a")));
        assert_eq!(a.credentials, Some(PathBuf::from("/etc/a.env")));
        assert_eq!(a.types, Some(vec!["Patient".to_owned()]));
        assert!(config.profile(&path, "c").is_err());
    }

    #[test]
    fn secrets_and_unknown_keys_are_refused() {
        let (_dir, path) = write("[profiles.a]\nclient_secret = \"hunter2\"\n");
        let err = ConfigFile::read(&path).expect_err("refused");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let (_dir, path) = write("[profiles.a]\nenv = \"prod\"\nbase_url = \"https://x\"\n");
        assert!(ConfigFile::read(&path).is_err());
    }
}
