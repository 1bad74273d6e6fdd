//! One module per subcommand.

pub mod bcda;
pub mod cclf;
pub mod fetch;
pub mod load;
pub mod reload;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod scan;
pub mod synth;
pub mod views;

/// rayon's own `RAYON_NUM_THREADS` within `--threads`' bound
/// ([`claimline_ndjson::rayon_threads_refused`]), checked before anything starts a pool.
pub(crate) fn check_rayon_threads() -> Result<(), crate::failure::UsageError> {
    match claimline_ndjson::rayon_threads_refused() {
        Some(why) => Err(crate::failure::UsageError(why)),
        None => Ok(()),
    }
}

/// `--threads N` (N > 0) for the whole command: the scan builds its own pool of N workers, and
/// this sizes rayon's global pool, where the sinks encode after the scan, to N as well. A
/// command runs once per process, so the first call sizes the pool; later ones change nothing.
pub(crate) fn cap_threads(n: usize) {
    if n > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}
