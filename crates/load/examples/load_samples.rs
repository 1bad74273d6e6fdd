//! Loads the bundled real CMS R4 samples into a temporary folder and prints the rows per table:
//! `cargo run -p claimline-load --example load_samples`.

use claimline_load::{Loader, NoProgress};

#[allow(clippy::print_stdout, reason = "an example prints its result")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = tempfile::tempdir()?;
    let samples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
    let report = Loader::new(out.path())
        .all_versions(true)
        .load(&[samples], &NoProgress)?;
    for (table, rows) in &report.tables {
        println!("{table:<20} {rows:>6}");
    }
    Ok(())
}
