//! CCLF fixed-width parsing and writing, one thread: every field of every CCLF5 record of the
//! golden delivery (`tests/golden/cclf-files/CCLF5.txt`, repeated to about 8 MB) read into a cell
//! of the type its picture gives the table column (`X`, `9` → text; signed → decimal; dates →
//! date), then the same cells written back.
//!
//! Run: `cargo bench -p claimline-cclf --bench cclf`. Throughput is bytes of CCLF records.

use claimline_cclf::{Cell, ColumnType, Picture, layout};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn column_type(p: Picture) -> ColumnType {
    match p {
        Picture::Text | Picture::Digits => ColumnType::Text,
        Picture::Signed { int, scale } => ColumnType::Decimal {
            precision: int + scale,
            scale: scale as i8,
        },
        Picture::Date => ColumnType::Date,
    }
}

fn bench(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/cclf-files/CCLF5.txt");
    let golden = std::fs::read_to_string(&path).expect("the golden CCLF5 file");
    // The golden file's first line is the file name.
    let records: Vec<&str> = golden.lines().skip(1).collect();
    let l = layout("cclf5").expect("CCLF5");
    let types: Vec<ColumnType> = l.fields.iter().map(|f| column_type(f.picture)).collect();
    let mut data = Vec::new();
    while data.len() < 8 << 20 {
        for r in &records {
            data.extend_from_slice(r.as_bytes());
            data.push(b'\n');
        }
    }
    let mut g = c.benchmark_group("cclf5");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("read", |b| {
        b.iter(|| {
            let mut cells = 0usize;
            for line in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let fields = l.split(line).expect("record length");
                for ((f, raw), ty) in l.fields.iter().zip(fields).zip(&types) {
                    let cell = f.read(raw, ty).expect("a valid field");
                    cells += usize::from(!matches!(cell, Cell::Null));
                }
            }
            cells
        });
    });
    let rows: Vec<Vec<Cell>> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let fields = l.split(line).expect("record length");
            l.fields
                .iter()
                .zip(fields)
                .zip(&types)
                .map(|((f, raw), ty)| f.read(raw, ty).expect("a valid field"))
                .collect()
        })
        .collect();
    g.bench_function("write", |b| {
        let mut out = Vec::with_capacity(data.len());
        b.iter(|| {
            out.clear();
            for row in &rows {
                for ((f, cell), ty) in l.fields.iter().zip(row).zip(&types) {
                    f.write(cell, ty, &mut out).expect("fits");
                }
                out.push(b'\n');
            }
            out.len()
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
