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
