//! The sandbox's clock: the system clock plus an offset that tests (or a user) can advance.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A shareable clock: wall time plus an adjustable offset.
///
/// Cloning shares the offset, so advancing one clone advances every clone.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that starts at the system time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current instant as seen by the sandbox.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_millis(self.offset_ms.load(Ordering::SeqCst));
        Timestamp::now()
            .saturating_add(offset)
            .unwrap_or(Timestamp::MAX)
    }

    /// Moves the clock forward, e.g. past a token's or a job's expiry.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}
