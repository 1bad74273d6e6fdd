//! Progress events, so a caller can draw a bar or log; the library draws nothing.

use std::time::Duration;

/// Something that happened during a fetch. Never carries a secret, a token or data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A new access token was obtained.
    TokenObtained,
    /// A new export job was started; its URL is saved.
    KickedOff {
        /// The job URL.
        job_url: &'a str,
    },
    /// An existing job is being followed (saved by an earlier run, or found through `/jobs`).
    Reattached {
        /// The job URL.
        job_url: &'a str,
    },
    /// The saved job failed on BCDA's side or is gone: a new export job is started for the
    /// same request (a scheduler retrying must not re-attach to a dead job forever).
    Restarted {
        /// The dead job's URL.
        job_url: &'a str,
    },
    /// BCDA answered 429 to the kick-off and no matching running job was found: waiting.
    Busy {
        /// How long the client waits before asking again.
        wait: Duration,
    },
    /// The job is still running.
    JobProgress {
        /// Percent done, when `X-Progress` carried one.
        percent: Option<u8>,
        /// `X-Progress` as sent.
        text: &'a str,
    },
    /// The manifest arrived.
    Manifest {
        /// `output` plus `error` files.
        files: usize,
        /// Files already downloaded by an earlier run.
        already_done: usize,
    },
    /// A download (or its resumption) started.
    FileStarted {
        /// The local file name, relative to the export folder.
        name: &'a str,
        /// Bytes already on disk from an interrupted attempt.
        resumed_at: u64,
    },
    /// Bytes arrived for a file.
    Bytes {
        /// The local file name.
        name: &'a str,
        /// Bytes in this chunk.
        bytes: u64,
    },
    /// A file was verified and renamed into place.
    FileDone {
        /// The local file name.
        name: &'a str,
        /// Its size in bytes, as served.
        size: u64,
    },
    /// A request failed and will be retried.
    Retry {
        /// What was being done (a URL path or a file name).
        what: &'a str,
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why (a status or a network error; no body text).
        reason: &'a str,
        /// The wait before the next attempt.
        wait: Duration,
    },
}

/// Receives [`Event`]s. Called from several download threads at once.
pub trait Progress: Sync {
    /// One event.
    fn event(&self, event: &Event<'_>);
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &Event<'_>) {}
}

/// Reads the percentage out of `X-Progress` leniently: the first integer right before a `%`
/// (`In Progress (40%)`, `In Progress, 40%`, `40% complete`); `None` when there is none.
pub fn parse_x_progress(header: &str) -> Option<u8> {
    let bytes = header.as_bytes();
    let percent = bytes.iter().position(|&b| b == b'%')?;
    let digits_end = percent;
    let mut start = digits_end;
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    let mut end = digits_end;
    // "40 %" is accepted too.
    if start == end {
        while end > 0 && bytes[end - 1] == b' ' {
            end -= 1;
        }
        start = end;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
    }
    header
        .get(start..end)?
        .parse::<u32>()
        .ok()
        .map(|p| p.min(100) as u8)
}

#[cfg(test)]
mod tests {
    use super::parse_x_progress as p;

    #[test]
    fn x_progress_is_parsed_leniently() {
        assert_eq!(p("In Progress (40%)"), Some(40));
        assert_eq!(p("In Progress, 80%"), Some(80));
        assert_eq!(p("7% complete"), Some(7));
        assert_eq!(p("In Progress (40 %)"), Some(40));
        assert_eq!(p("Pending"), None);
        assert_eq!(p("In Progress"), None);
        assert_eq!(p("%"), None);
        assert_eq!(p("250%"), Some(100));
    }
}
