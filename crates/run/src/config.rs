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

use claimline_fetch::{ApiVersion, Endpoint, PROD_URL, SANDBOX_URL, Timing};
use claimline_load::Format;
use claimline_sink::PgTarget;

use crate::{RunSettings, Since, Source};

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

/// One ACO's settings; every key is optional and a command-line flag overrides it. Its
/// `Debug` shows whether `postgres_url` is set, never the URL (it may hold a password).
#[derive(Clone, Default, serde::Deserialize)]
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
    /// Outputs: `sqlite`, `parquet`, `postgres`, `both` or a list (`parquet,postgres`).
    pub format: Option<String>,
    /// The PostgreSQL connection URL of the postgres format (a file of this profile is
    /// owner-only like the credentials; `CLAIMLINE_POSTGRES_URL` and `--postgres` come first).
    pub postgres_url: Option<String>,
    /// The PostgreSQL schema (default `claimline`).
    pub postgres_schema: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a field added later is a compile error here, not a leak.
        let Profile {
            env,
            base_url,
            api,
            endpoint,
            types,
            type_filter,
            out,
            credentials,
            ca_file,
            keep,
            views,
            accept_rejects,
            log,
            format,
            postgres_url,
            postgres_schema,
        } = self;
        f.debug_struct("Profile")
            .field("env", env)
            .field("base_url", base_url)
            .field("api", api)
            .field("endpoint", endpoint)
            .field("types", types)
            .field("type_filter", type_filter)
            .field("out", out)
            .field("credentials", credentials)
            .field("ca_file", ca_file)
            .field("keep", keep)
            .field("views", views)
            .field("accept_rejects", accept_rejects)
            .field("log", log)
            .field("format", format)
            .field("postgres_url", &url_shown(postgres_url))
            .field("postgres_schema", postgres_schema)
            .finish()
    }
}

/// What `Debug` shows of a PostgreSQL URL: whether there is one (it may hold a password).
fn url_shown(url: &Option<String>) -> Option<&'static str> {
    url.as_ref().map(|_| "(set, not shown)")
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
            let message = claimline_model::without_values(e.message());
            match line {
                Some(line) => bad(format!("line {line}: {message}")),
                None => bad(message),
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

/// A config file whose profile holds a PostgreSQL password must be owner-only, like the
/// credentials file.
fn check_secret_file(path: &Path, profile: &Profile) -> Result<(), String> {
    let holds_password = profile
        .postgres_url
        .as_deref()
        .and_then(|url| PgTarget::parse(url, "claimline").ok())
        .is_some_and(|t| t.has_password());
    #[cfg(unix)]
    if holds_password {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("config {}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "config {}: its postgres_url holds a password and the file is readable by others; run chmod 600 on it (or give the URL in {POSTGRES_URL_ENV})",
                path.display()
            ));
        }
    }
    Ok(())
}

/// What `--local-sandbox` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocalData {
    /// A seeded synthetic export (every claim type, versions and cancels) together with CMS's
    /// real sample records: tables with rows in every CCLF table.
    #[default]
    Demo,
    /// CMS's real sample records alone (`sample-data/real/<version>`).
    Real,
}

/// What the caller of a run says, before the profile fills the rest: `claimline run`'s flags
/// (every `None` or empty value falls back to the profile, then to the default). Its `Debug`
/// shows whether `postgres_url` is set, never the URL.
#[derive(Clone, Default)]
pub struct RunFlags {
    /// A profile of the config file.
    pub profile: Option<String>,
    /// The config file (default: [`locate`]).
    pub config: Option<PathBuf>,
    /// Run against the embedded sandbox (no credentials): the demo (a seeded synthetic export
    /// with CMS's samples) or CMS's samples alone.
    pub local_sandbox: Option<LocalData>,
    /// `prod` or `sandbox`.
    pub env: Option<String>,
    /// Another BCDA-compatible base URL.
    pub base_url: Option<String>,
    /// API version (default v2).
    pub api: Option<ApiVersion>,
    /// What to export (default group/all).
    pub endpoint: Option<Endpoint>,
    /// `_type`.
    pub types: Vec<String>,
    /// `_since` (default `auto`).
    pub since: Option<Since>,
    /// `_typeFilter` (v3).
    pub type_filter: Option<String>,
    /// The output folder.
    pub out: Option<PathBuf>,
    /// The private credentials file.
    pub credentials: Option<PathBuf>,
    /// Extra PEM root certificates.
    pub ca_file: Option<PathBuf>,
    /// First wait between job polls, in seconds.
    pub poll_interval: Option<f64>,
    /// First wait before retrying a failed request, in seconds.
    pub retry_wait: Option<f64>,
    /// Give up waiting for a job after this many hours (default 6).
    pub max_wait_hours: Option<f64>,
    /// Downloads at a time (default 4).
    pub parallel: Option<usize>,
    /// Views.
    pub views: Vec<String>,
    /// Commit `_since` even with rejects or row errors.
    pub accept_rejects: bool,
    /// Exports kept.
    pub keep: Option<usize>,
    /// Outputs (default: the profile's, else SQLite and Parquet).
    pub format: Option<Format>,
    /// `--postgres`: the PostgreSQL URL.
    pub postgres_url: Option<String>,
    /// `--postgres-schema`.
    pub postgres_schema: Option<String>,
}

impl std::fmt::Debug for RunFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so that a field added later is a compile error here, not a leak.
        let RunFlags {
            profile,
            config,
            local_sandbox,
            env,
            base_url,
            api,
            endpoint,
            types,
            since,
            type_filter,
            out,
            credentials,
            ca_file,
            poll_interval,
            retry_wait,
            max_wait_hours,
            parallel,
            views,
            accept_rejects,
            keep,
            format,
            postgres_url,
            postgres_schema,
        } = self;
        f.debug_struct("RunFlags")
            .field("profile", profile)
            .field("config", config)
            .field("local_sandbox", local_sandbox)
            .field("env", env)
            .field("base_url", base_url)
            .field("api", api)
            .field("endpoint", endpoint)
            .field("types", types)
            .field("since", since)
            .field("type_filter", type_filter)
            .field("out", out)
            .field("credentials", credentials)
            .field("ca_file", ca_file)
            .field("poll_interval", poll_interval)
            .field("retry_wait", retry_wait)
            .field("max_wait_hours", max_wait_hours)
            .field("parallel", parallel)
            .field("views", views)
            .field("accept_rejects", accept_rejects)
            .field("keep", keep)
            .field("format", format)
            .field("postgres_url", &url_shown(postgres_url))
            .field("postgres_schema", postgres_schema)
            .finish()
    }
}

/// The variable a PostgreSQL URL may come from.
pub const POSTGRES_URL_ENV: &str = "CLAIMLINE_POSTGRES_URL";

/// Where the postgres format writes, when `format` has it: the URL from `--postgres` (`flag`),
/// else `CLAIMLINE_POSTGRES_URL`, else the profile's (`profile`); the schema from `schema`
/// (default `claimline`). One rule for `load`, `load-cclf`, `run` and `reload`.
///
/// # Errors
/// [`claimline_sink::PgFailure::Usage`]: a URL given without postgres in the format, no URL
/// for the postgres format, a URL or schema that cannot be used.
pub fn postgres_target(
    format: Format,
    flag: Option<String>,
    profile: Option<String>,
    schema: Option<&str>,
) -> Result<Option<PgTarget>, claimline_sink::Error> {
    if flag.is_some() && !format.postgres {
        return Err(claimline_sink::Error::postgres_usage(
            "--postgres: add postgres to --format (for example --format parquet,postgres)",
        ));
    }
    if !format.postgres {
        return Ok(None);
    }
    let url = flag
        .or_else(|| std::env::var(POSTGRES_URL_ENV).ok())
        .or(profile)
        .ok_or_else(|| {
            claimline_sink::Error::postgres_usage(format!(
                "the postgres format needs a database: --postgres URL, {POSTGRES_URL_ENV}, or postgres_url in the profile"
            ))
        })?;
    PgTarget::parse(&url, schema.unwrap_or("claimline")).map(Some)
}

/// The base URL of `prod` or `sandbox`.
pub fn env_url(env: &str) -> Option<&'static str> {
    match env.to_ascii_lowercase().as_str() {
        "prod" => Some(PROD_URL),
        "sandbox" => Some(SANDBOX_URL),
        _ => None,
    }
}

impl RunFlags {
    /// The profile the flags name (the default profile when none), read from the config file.
    ///
    /// # Errors
    /// A profile named with no config file, or a config file or profile that cannot be used.
    pub fn profile(&self) -> Result<(Option<PathBuf>, Profile), String> {
        let Some(name) = &self.profile else {
            return Ok((None, Profile::default()));
        };
        let path = locate(self.config.as_deref()).ok_or_else(|| {
            format!(
                "--profile {name}: no config file (give --config FILE, set {ENV_CONFIG}, or \
                 create ./{DEFAULT_FILE})"
            )
        })?;
        let config = ConfigFile::read(&path).map_err(|e| e.to_string())?;
        let profile = config.profile(&path, name).map_err(|e| e.to_string())?;
        check_secret_file(&path, &profile)?;
        Ok((Some(path), profile))
    }

    /// The settings of the run: each flag, else the profile's value, else the default.
    /// `--local-sandbox` serves the demo ([`LocalData::Demo`]: a seeded synthetic export with
    /// `sample-data/real/<version>`, found by `claimline_sandbox::sample_data`) or the samples
    /// alone, and accepts the samples' placeholder row errors.
    ///
    /// # Errors
    /// A message for the user (the CLI's exit 2): no source, no output folder, a value of the
    /// profile that is not valid.
    pub fn resolve(self, profile: Profile) -> Result<RunSettings, String> {
        let args = self;
        let api: ApiVersion = match (args.api, &profile.api) {
            (Some(api), _) => api,
            (None, Some(text)) => ApiVersion::parse(text)
                .ok_or_else(|| "profile: api is not valid (v1, v2 or v3)".to_owned())?,
            (None, None) => ApiVersion::V2,
        };
        let endpoint: Endpoint = match (args.endpoint, &profile.endpoint) {
            (Some(e), _) => e,
            (None, Some(text)) => text
                .parse()
                .map_err(|e: String| format!("profile: {}", claimline_model::without_values(&e)))?,
            (None, None) => Endpoint::GroupAll,
        };
        let source = if let Some(local) = args.local_sandbox {
            let samples = claimline_sandbox::sample_data(api).ok_or_else(|| {
                "--local-sandbox: sample-data/real not found; run from the claimline checkout"
                    .to_owned()
            })?;
            match local {
                LocalData::Demo => Source::Demo {
                    samples,
                    version: api,
                },
                LocalData::Real => Source::Local(samples),
            }
        } else if let Some(url) = args.base_url.clone() {
            claimline_fetch::check_base_url(&url).map_err(|e| format!("--base-url: {e}"))?;
            Source::Url(url)
        } else if let Some(env) = &args.env {
            Source::Url(
                env_url(env)
                    .ok_or_else(|| format!("env {env:?} is not valid"))?
                    .to_owned(),
            )
        } else if let Some(url) = &profile.base_url {
            claimline_fetch::check_base_url(url).map_err(|e| format!("profile: base_url: {e}"))?;
            Source::Url(url.clone())
        } else if let Some(env) = &profile.env {
            Source::Url(
                env_url(env)
                    .ok_or_else(|| "profile: env is not valid (prod or sandbox)".to_owned())?
                    .to_owned(),
            )
        } else {
            return Err(
                "say where to fetch from: --env prod|sandbox, --base-url URL, \
                        --local-sandbox, or --profile NAME"
                    .to_owned(),
            );
        };
        let out = args
            .out
            .or(profile.out)
            .ok_or_else(|| "--out DIR is required (or out in the profile)".to_owned())?;
        let mut types: Vec<String> = if args.types.is_empty() {
            profile.types.unwrap_or_default()
        } else {
            args.types
        };
        types = types
            .iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let since = args.since.unwrap_or(Since::Auto);
        let local = source.is_local();
        let timing = if local {
            Timing::fast()
        } else {
            Timing::default()
        }
        .with_waits(
            args.poll_interval,
            args.retry_wait,
            Some(args.max_wait_hours.unwrap_or(6.0)),
        )?;
        let keep = match (args.keep, profile.keep) {
            (Some(n), _) => Some(n),
            (None, Some(0)) => return Err("profile: keep must be at least 1".into()),
            (None, n) => n,
        };
        let format = match (args.format, &profile.format) {
            (Some(f), _) => f,
            (None, Some(text)) => text
                .parse()
                .map_err(|e: String| format!("profile: {}", claimline_model::without_values(&e)))?,
            (None, None) => Format::BOTH,
        };
        let postgres = postgres_target(
            format,
            args.postgres_url,
            profile.postgres_url.clone(),
            args.postgres_schema
                .as_deref()
                .or(profile.postgres_schema.as_deref()),
        )
        .map_err(|e| e.to_string())?;
        let run = RunSettings {
            profile: args.profile,
            source,
            api,
            endpoint,
            types,
            type_filter: args.type_filter.or(profile.type_filter),
            since,
            out,
            credentials: args.credentials.or(profile.credentials),
            ca_file: args.ca_file.or(profile.ca_file),
            timing,
            parallel: args.parallel.unwrap_or(4).max(1),
            views: if args.views.is_empty() {
                profile.views.unwrap_or_default()
            } else {
                args.views
            },
            // The bundled CMS samples carry placeholders (`IGNORED_FIELD`) that are row errors by
            // design; the demo accepts them.
            accept_rejects: args.accept_rejects || profile.accept_rejects == Some(true) || local,
            keep,
            format,
            postgres,
        };
        Ok(run)
    }
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

    /// A profile's and the flags' `Debug` say a PostgreSQL URL is set, never its password
    /// (found by a review: both derived `Debug`, which printed it).
    #[test]
    fn debug_never_shows_a_postgres_url() {
        let url = Some("postgresql://etl:hunter2@db.example/claims".to_owned());
        let profile = Profile {
            postgres_url: url.clone(),
            ..Profile::default()
        };
        let flags = RunFlags {
            postgres_url: url,
            ..RunFlags::default()
        };
        for shown in [format!("{profile:?}"), format!("{flags:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("db.example"),
                "{shown}"
            );
            assert!(
                shown.contains("postgres_url: Some(\"(set, not shown)\")"),
                "{shown}"
            );
        }
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
    fn a_value_of_the_wrong_type_is_not_quoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[profiles.a]\nenv = \"sandbox\"\nkeep = \"s3cr3t-canary\"\n",
        )
        .expect("write");
        let e = ConfigFile::read(&path)
            .expect_err("keep is a number")
            .to_string();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(e.contains("line 3") && e.contains("expected usize"), "{e}");
        assert_eq!(
            claimline_model::without_values("invalid type: integer `5`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        assert_eq!(
            claimline_model::without_values("unknown variant `s3cr3t`, expected one of `v1`, `v2`"),
            "unknown variant `…`, expected one of `v1`, `v2`"
        );
        assert_eq!(
            claimline_model::without_values(
                r#"invalid type: string "a\"s3cr3t\\", expected usize"#
            ),
            "invalid type: string \"…\", expected usize"
        );
        assert_eq!(
            claimline_model::without_values("missing field `api`"),
            "missing field `api`"
        );
    }

    #[test]
    fn a_profile_value_that_is_not_valid_is_not_quoted() {
        let base = Profile {
            env: Some("sandbox".into()),
            out: Some("/tmp/out".into()),
            ..Profile::default()
        };
        let profiles = [
            Profile {
                api: Some("s3cr3t".into()),
                ..base.clone()
            },
            Profile {
                env: Some("s3cr3t".into()),
                ..base.clone()
            },
            Profile {
                format: Some("s3cr3t".into()),
                ..base.clone()
            },
            Profile {
                endpoint: Some("s3cr3t".into()),
                ..base.clone()
            },
        ];
        for profile in profiles {
            let e = RunFlags::default()
                .resolve(profile.clone())
                .expect_err("not valid");
            assert!(!e.contains("s3cr3t") && e.starts_with("profile: "), "{e}");
        }
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
