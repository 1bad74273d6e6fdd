//! Writes generated BCDA-shaped R4 EOB NDJSON for benchmarks.
//!
//! `cargo run --release -p claimline-synth --example eob_ndjson -- OUT.ndjson MEGABYTES [SEED]`

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(out), Some(mb)) = (args.next(), args.next()) else {
        eprintln!("usage: eob_ndjson OUT.ndjson MEGABYTES [SEED]");
        std::process::exit(2);
    };
    let Ok(mb) = mb.parse::<usize>() else {
        eprintln!("MEGABYTES must be a whole number");
        std::process::exit(2);
    };
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let mut generator = claimline_synth::EobGenerator::new(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let target = mb * 1_000_000;
    let (mut written, mut lines) = (0usize, 0usize);
    let mut buf = Vec::with_capacity(8 << 20);
    while written < target {
        buf.clear();
        lines += generator.write_bytes(&mut buf, (8 << 20).min(target - written));
        file.write_all(&buf)?;
        written += buf.len();
    }
    file.flush()?;
    eprintln!("{out}: {written} bytes, {lines} EOBs");
    Ok(())
}
