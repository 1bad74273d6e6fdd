//! The fetcher's one error type.

use std::path::PathBuf;

/// Everything that can end a fetch. Messages name URLs, files and statuses; they never hold a
/// secret, a token, a resource or an MBI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The command was used wrongly (bad base URL, plain HTTP to a remote host, an export folder
    /// that holds a different export, bad `_since`).
    #[error("{0}")]
    Usage(String),
    /// No credentials were found.
    #[error("no BCDA credentials: {0}")]
    MissingCredentials(String),
    /// A credentials or CA file could not be read or is not usable.
    #[error("cannot use {}: {reason}", path.display())]
    InputFile {
        /// The file.
        path: PathBuf,
        /// Why it is not usable.
        reason: String,
    },
    /// `/auth/token` answered 401: wrong client id or secret, or an expired secret.
    #[error(
        "BCDA rejected the client id and secret (401 from {url}); secrets expire every 90 days: \
         create a new one in 4i or ACO-MS"
    )]
    CredentialsRejected {
        /// The token URL.
        url: String,
    },
    /// BCDA refused the request (400, 401 other than an expired token, 403).
    #[error("BCDA refused {url} ({status}){}", diag(diagnostics))]
    Refused {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics, when there were any.
        diagnostics: String,
    },
    /// BCDA says to try later (404 on kick-off: attribution not ready, January blackout, runout
    /// closed).
    #[error(
        "BCDA cannot export now, try later: {url} ({status}){}",
        diag(diagnostics)
    )]
    TryLater {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics, when there were any.
        diagnostics: String,
    },
    /// The export job failed on BCDA's side (500 while polling).
    #[error(
        "the export job {job_url} failed on BCDA's side; start a new one{}",
        diag(diagnostics)
    )]
    JobFailed {
        /// The job URL.
        job_url: String,
        /// The OperationOutcome's diagnostics.
        diagnostics: String,
    },
    /// The job is cancelled, expired or unknown (404 or 410 while polling or downloading).
    #[error(
        "the export job {job_url} is no longer available ({status}: cancelled, expired or \
         unknown){}; start a new export (claimline fetch --new-job)",
        diag(diagnostics)
    )]
    JobGone {
        /// The job URL.
        job_url: String,
        /// The HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics.
        diagnostics: String,
    },
    /// The job did not complete within the configured total wait.
    #[error(
        "the export job {job_url} did not complete within {waited_secs} s; rerun to keep waiting"
    )]
    WaitExceeded {
        /// The job URL.
        job_url: String,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// Retries were exhausted on server errors, throttling or network failures.
    #[error("BCDA is unavailable for {url} after {attempts} attempts: {reason}")]
    Unavailable {
        /// The request URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// BCDA answered something the client cannot use.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A local file or folder could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The saved `.claimline/state.json` cannot be read.
    #[error("cannot read the saved state {}: {reason}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn diag(diagnostics: &str) -> String {
    if diagnostics.is_empty() {
        String::new()
    } else {
        format!(": {diagnostics}")
    }
}

impl FetchError {
    /// The file or folder the error is about, when it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            FetchError::InputFile { path, .. }
            | FetchError::Io { path, .. }
            | FetchError::State { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The process exit code ARCHITECTURE.md gives this failure: 2 usage, 3 input unreadable,
    /// 5 output not writable or a damaged state file, 6 BCDA refused, 7 BCDA says try later.
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Usage(_) | FetchError::MissingCredentials(_) => 2,
            FetchError::InputFile { .. } => 3,
            // A damaged state file, as for every other state file (it was 3).
            FetchError::Io { .. } | FetchError::State { .. } => 5,
            FetchError::CredentialsRejected { .. } | FetchError::Refused { .. } => 6,
            FetchError::TryLater { .. }
            | FetchError::JobFailed { .. }
            | FetchError::JobGone { .. }
            | FetchError::WaitExceeded { .. }
            | FetchError::Unavailable { .. }
            | FetchError::Protocol { .. } => 7,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FetchError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_architecture() {
        let url = String::from("https://x");
        assert_eq!(
            FetchError::CredentialsRejected { url: url.clone() }.exit_code(),
            6
        );
        assert_eq!(FetchError::Usage(String::new()).exit_code(), 2);
        let gone = FetchError::JobGone {
            job_url: url,
            status: 410,
            diagnostics: String::new(),
        };
        assert_eq!(gone.exit_code(), 7);
        assert_eq!(
            FetchError::io("x", std::io::Error::other("full")).exit_code(),
            5
        );
        // A damaged export state is a damaged state file, as README's table says.
        let state = FetchError::State {
            path: "x/.claimline/state.json".into(),
            reason: "damaged".into(),
        };
        assert_eq!(state.exit_code(), 5);
    }
}
