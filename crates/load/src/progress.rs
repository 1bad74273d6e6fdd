//! What a load tells its caller while it runs.

/// Called by a load as it goes; every method has a default that does nothing. Implementations
/// must be cheap: `advanced` is called once per chunk of input.
pub trait Progress: Sync {
    /// The load starts reading `total_bytes` of input (on disk).
    fn started(&self, total_bytes: u64) {
        let _ = total_bytes;
    }

    /// Another `bytes` of input were read.
    fn advanced(&self, bytes: u64) {
        let _ = bytes;
    }

    /// Another `resources` were read (NDJSON lines, or CCLF records).
    fn resources(&self, resources: u64) {
        let _ = resources;
    }

    /// The scan is over.
    fn finished(&self) {}

    /// Something the user should know (a warning, what a recovery did): one sentence, never a
    /// resource, an MBI or a secret.
    fn note(&self, text: &str) {
        let _ = text;
    }
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {}
