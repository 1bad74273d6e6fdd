//! Scanner throughput on generated BCDA-shaped R4 EOBs, next to plain simd-json tape parsing of
//! the same bytes in one loop (the floor the scanner's framing, chunking and ordering add to).
//!
//! Input: `claimline_synth::EobGenerator` with seed 42, `INPUT_BYTES` of NDJSON (real R4 EOB
//! records varied per beneficiary history; about 25 KB a line, printed at the start of a run).
//! Group `parse_in_part`: one thread, [`LineParser::parse`] against
//! [`LineParser::parse_pruned`] with the members a header view and the link stage read, and
//! with none but `resourceType` and `id` (the validator's own cost).
//! Run: `cargo bench -p claimline-ndjson --bench scan`.

use std::io::{Read, Write};
use std::path::Path;

use claimline_ndjson::{InputFile, LineParser, Need, Needs, Pruning, ScanOptions, scan};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Bytes of NDJSON per benchmark iteration.
const INPUT_BYTES: usize = 128 << 20;
/// Seed of the generated input.
const SEED: u64 = 42;

fn input() -> Vec<u8> {
    let mut out = Vec::with_capacity(INPUT_BYTES + (1 << 20));
    claimline_synth::EobGenerator::new(SEED).write_bytes(&mut out, INPUT_BYTES);
    out
}

/// Plain simd-json: split lines, copy each into a padded buffer, fill the tape. One thread.
fn tape_baseline(bytes: &[u8]) -> usize {
    let mut buffers = simd_json::Buffers::new(1 << 16);
    let mut tape = simd_json::Tape(Vec::new()).reset();
    let mut buf = Vec::new();
    let mut nodes = 0;
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        buf.clear();
        buf.extend_from_slice(line);
        buf.resize(line.len() + simd_json::INPUT_PADDING, b' ');
        let mut t = tape.reset();
        simd_json::fill_tape_padded(&mut buf, line.len(), &mut buffers, &mut t)
            .expect("generated JSON parses");
        nodes += t.0.len();
        tape = t.reset();
    }
    nodes
}

fn run_scan(file: &InputFile, threads: usize, lines_in_batch: bool) -> u64 {
    let opts = ScanOptions {
        threads,
        lines_in_batch,
        ..ScanOptions::default()
    };
    let mut n = 0u64;
    scan(
        std::slice::from_ref(file),
        &opts,
        || (),
        |(), r| r.root.position(),
        |b| {
            n += b.items.len() as u64;
            Ok(())
        },
    )
    .expect("scan");
    n
}

fn bench(c: &mut Criterion) {
    let bytes = input();
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("ExplanationOfBenefit.000.ndjson");
    std::fs::write(&plain, &bytes).expect("write input");
    let gz = dir.path().join("ExplanationOfBenefit.000.ndjson.gz");
    write_gzip(&gz, &bytes);
    let gz_len = std::fs::metadata(&gz).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "input: {} MB of NDJSON, {lines} EOBs ({:.1} KB a line); gzip {} MB",
        bytes.len() / 1_000_000,
        bytes.len() as f64 / lines as f64 / 1000.0,
        gz_len / 1_000_000
    );
    let threads = rayon::current_num_threads();

    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("simd_json_tape_loop/1_thread", |b| {
        b.iter(|| tape_baseline(&bytes))
    });
    let plain_file = InputFile::new(&plain);
    g.bench_function("scan_plain/1_thread", |b| {
        b.iter(|| run_scan(&plain_file, 1, false))
    });
    g.bench_function(format!("scan_plain/{threads}_threads"), |b| {
        b.iter(|| run_scan(&plain_file, 0, false))
    });
    // What `claimline scan` and `load` use: no newline count ahead of the workers.
    g.bench_function(
        format!("scan_plain_lines_in_batch/{threads}_threads"),
        |b| b.iter(|| run_scan(&plain_file, 0, true)),
    );
    let gz_file = InputFile::new(&gz);
    g.bench_function(format!("scan_gzip/{threads}_threads"), |b| {
        b.iter(|| run_scan(&gz_file, 0, true))
    });
    g.bench_function("gzip_decode_only/1_thread", |b| b.iter(|| decode(&gz)));
    g.finish();
}

/// Parses every line of `bytes` whole (`pruning` none) or in part; the tape nodes made.
fn parse_lines(parser: &mut LineParser, bytes: &[u8], pruning: Option<&Pruning>) -> usize {
    let mut nodes = 0;
    for line in memchr::memchr_iter(b'\n', bytes).scan(0, |start, end| {
        let line = &bytes[*start..end];
        *start = end + 1;
        Some(line)
    }) {
        nodes += match pruning {
            None => parser.parse(line, |d| d.node_count()),
            Some(p) => parser.parse_pruned(line, p, false, |d| d.node_count()),
        }
        .expect("generated JSON parses");
    }
    nodes
}

fn bench_parse_in_part(c: &mut Criterion) {
    let bytes = input();
    let bytes = &bytes[..bytes.len() / 4];
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let bytes = &bytes[..end];
    let mut header = Needs::new();
    for name in [
        "identifier",
        "patient",
        "type",
        "billablePeriod",
        "payment",
        "status",
        "provider",
        "diagnosis",
        "meta",
        "use",
        "outcome",
    ] {
        header.add(name, Need::Whole);
    }
    header.add_first("item", "servicedDate");
    let mut header_pruning = Pruning::new();
    header_pruning.set("ExplanationOfBenefit", header);
    let mut id_pruning = Pruning::new();
    id_pruning.set("ExplanationOfBenefit", Needs::new());
    let mut parser = LineParser::new();
    let mut g = c.benchmark_group("parse_in_part");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    // The validator's tape (what `parse` builds) against simd-json's for the same lines.
    g.bench_function("whole_simd_json/1_thread", |b| {
        b.iter(|| {
            let mut nodes = 0;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                nodes += parser
                    .parse_with_simd_json(line, |d| d.node_count())
                    .expect("generated JSON parses");
            }
            nodes
        })
    });
    g.bench_function("whole/1_thread", |b| {
        b.iter(|| parse_lines(&mut parser, bytes, None))
    });
    g.bench_function("header_members/1_thread", |b| {
        b.iter(|| parse_lines(&mut parser, bytes, Some(&header_pruning)))
    });
    g.bench_function("id_only/1_thread", |b| {
        b.iter(|| parse_lines(&mut parser, bytes, Some(&id_pruning)))
    });
    g.finish();
}

fn write_gzip(path: &Path, bytes: &[u8]) {
    let file = std::fs::File::create(path).expect("create gzip");
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip");
}

fn decode(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open gzip");
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k as u64,
            Err(e) => panic!("decode: {e}"),
        }
    }
}

criterion_group!(benches, bench, bench_parse_in_part);
criterion_main!(benches);
