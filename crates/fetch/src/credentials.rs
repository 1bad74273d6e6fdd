//! BCDA client credentials: from the environment or a file, never from arguments.

use std::fmt;
use std::path::Path;

use crate::FetchError;

/// A secret string whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// A BCDA client id and secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The client id (not secret, but kept out of state files all the same).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

/// Environment variable holding the client id.
pub const ENV_CLIENT_ID: &str = "BCDA_CLIENT_ID";
/// Environment variable holding the client secret.
pub const ENV_CLIENT_SECRET: &str = "BCDA_CLIENT_SECRET";

impl Credentials {
    /// Both values, as given.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Credentials {
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
        }
    }

    /// `BCDA_CLIENT_ID` and `BCDA_CLIENT_SECRET`; `None` when either is unset or empty.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var(ENV_CLIENT_ID)
            .ok()
            .filter(|v| !v.is_empty())?;
        let secret = std::env::var(ENV_CLIENT_SECRET)
            .ok()
            .filter(|v| !v.is_empty())?;
        Some(Credentials::new(id, secret))
    }

    /// A file of `KEY=VALUE` lines with `BCDA_CLIENT_ID` and `BCDA_CLIENT_SECRET` (blank lines and
    /// `#` comments allowed, values optionally quoted). The file must not be readable by group
    /// or others, like an SSH key.
    pub fn from_file(path: &Path) -> Result<Self, FetchError> {
        let bad = |reason: &str| FetchError::InputFile {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(path).map_err(|e| bad(&e.to_string()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(bad(
                    "the credentials file is readable by others; run chmod 600 on it",
                ));
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
        let (mut id, mut secret) = (None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                return Err(bad("a line is not KEY=VALUE"));
            };
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            match key.trim() {
                ENV_CLIENT_ID => id = Some(value.to_owned()),
                ENV_CLIENT_SECRET => secret = Some(value.to_owned()),
                _ => {}
            }
        }
        match (
            id.filter(|v| !v.is_empty()),
            secret.filter(|v| !v.is_empty()),
        ) {
            (Some(id), Some(secret)) => Ok(Credentials::new(id, secret)),
            _ => Err(bad(
                "it needs both BCDA_CLIENT_ID= and BCDA_CLIENT_SECRET= lines",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials::new("id", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[cfg(unix)]
    #[test]
    fn file_must_be_private_and_complete() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("creds");
        std::fs::write(
            &path,
            "# bcda\nBCDA_CLIENT_ID=abc\nexport BCDA_CLIENT_SECRET=\"s3\"\n",
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(Credentials::from_file(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let c = Credentials::from_file(&path).expect("credentials");
        assert_eq!(
            (c.client_id.as_str(), c.client_secret.expose()),
            ("abc", "s3")
        );
        std::fs::write(&path, "BCDA_CLIENT_ID=abc\n").expect("write");
        assert!(Credentials::from_file(&path).is_err());
    }
}
