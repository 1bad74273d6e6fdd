//! TableSink throughput: seeded rows of a CCLF5-like claim-line table (text, codes, dates, decimals,
//! integers, timestamps) into Parquet and into a new SQLite database, open to commit.
//!
//! Run: `cargo bench -p claimline-sink --bench sink`. Throughput is reported twice: in rows
//! (records/s) and in the bytes the cells hold as text (bytes/s; numbers count 8 bytes).

use claimline_sink::{
    Cell, Column, ColumnType, ParquetSink, RunRecord, SqliteSink, TableSchema, TableSink,
};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Rows per benchmark iteration.
const ROWS: usize = 200_000;
/// Rows per `TableSink::write` call (what `load` hands a sink at a time).
const BATCH: usize = 8_192;
/// Seed of the generated rows.
const SEED: u64 = 42;

const HCPCS: [&str; 8] = [
    "99213", "99214", "36415", "80053", "85025", "G0439", "97110", "J1885",
];
const ICD10: [&str; 8] = [
    "I10", "E119", "E785", "I2510", "N183", "J449", "M545", "Z7901",
];

fn schema() -> TableSchema {
    let money = ColumnType::Decimal {
        precision: 18,
        scale: 2,
    };
    let mut schema = TableSchema::new(
        "cclf5",
        vec![
            Column::new("CUR_CLM_UNIQ_ID", ColumnType::Text),
            Column::new("CLM_LINE_NUM", ColumnType::Integer),
            Column::new("BENE_MBI_ID", ColumnType::Text),
            Column::new("CLM_TYPE_CD", ColumnType::Code),
            Column::new("CLM_FROM_DT", ColumnType::Date),
            Column::new("CLM_THRU_DT", ColumnType::Date),
            Column::new("CLM_POS_CD", ColumnType::Code),
            Column::new("CLM_LINE_HCPCS_CD", ColumnType::Code),
            Column::new("CLM_LINE_CVRD_PD_AMT", money.clone()),
            Column::new("CLM_LINE_ALOWD_CHRG_AMT", money),
            Column::new("CLM_LINE_DGNS_CD", ColumnType::Code),
            Column::new("RNDRG_PRVDR_NPI_NUM", ColumnType::Text),
            Column::new("CLM_ADJSMT_TYPE_CD", ColumnType::Code),
            Column::new("_resource_id", ColumnType::Text),
            Column::new("_source_file", ColumnType::Text),
            Column::new("_line", ColumnType::Integer),
            Column::new("_last_updated", ColumnType::Timestamp),
            Column::new("_claim_key", ColumnType::Text),
        ],
    );
    schema.replace_key = vec!["_claim_key".into()];
    schema.indexes = vec!["_claim_key".into()];
    schema
}

fn rows() -> Vec<Vec<Cell>> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    (0..ROWS)
        .map(|i| {
            let claim = 1_000_000_000_000u64 + (i / 3) as u64;
            let from = 18_000 + rng.random_range(0..2_555);
            vec![
                Cell::text(claim.to_string()),
                Cell::Int((i % 3) as i64 + 1),
                Cell::text(format!("9A00A{:02}AA{:02}", i % 97, i % 89)),
                Cell::text("71"),
                Cell::Date(from),
                Cell::Date(from + rng.random_range(0..3)),
                Cell::text("11"),
                Cell::text(HCPCS[rng.random_range(0..HCPCS.len())]),
                Cell::Decimal(rng.random_range(0..250_000)),
                Cell::Decimal(rng.random_range(0..300_000)),
                Cell::text(ICD10[rng.random_range(0..ICD10.len())]),
                Cell::text(format!(
                    "{}",
                    1_000_000_000 + rng.random_range(0..9_000_000)
                )),
                Cell::text("0"),
                Cell::text(format!("carrier-{claim}")),
                Cell::text("ExplanationOfBenefit.000.ndjson"),
                Cell::Int(i as i64 / 3 + 1),
                Cell::Timestamp(1_700_000_000_000_000 + rng.random_range(0..1_000_000_000_000)),
                Cell::text(claim.to_string()),
            ]
        })
        .collect()
}

/// The bytes the rows hold: text as its length, every other non-null cell as 8.
fn row_bytes(rows: &[Vec<Cell>]) -> u64 {
    rows.iter()
        .flatten()
        .map(|c| match c {
            Cell::Text(t) => t.len() as u64,
            Cell::Null => 0,
            _ => 8,
        })
        .sum()
}

fn write_all(sink: Box<dyn TableSink>, rows: Vec<Vec<Cell>>) {
    let mut sink = sink;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<Vec<Cell>> = rows.by_ref().take(BATCH).collect();
        sink.write(0, batch).expect("write rows");
    }
    sink.commit(&RunRecord::new("20261127T000000.000000Z"))
        .expect("commit");
}

fn bench(c: &mut Criterion) {
    let schemas = [schema()];
    let rows = rows();
    for (group_name, throughput) in [
        ("sink_rows", Throughput::Elements(ROWS as u64)),
        ("sink_bytes", Throughput::Bytes(row_bytes(&rows))),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        group.throughput(throughput);
        group.bench_function("parquet", |b| {
            b.iter_batched(
                || (tempfile::tempdir().expect("tempdir"), rows.clone()),
                |(dir, rows)| {
                    let sink = ParquetSink::open(&dir.path().join("parquet"), "run", &schemas)
                        .expect("open parquet");
                    write_all(Box::new(sink), rows);
                    dir
                },
                BatchSize::PerIteration,
            );
        });
        group.bench_function("sqlite", |b| {
            b.iter_batched(
                || (tempfile::tempdir().expect("tempdir"), rows.clone()),
                |(dir, rows)| {
                    let sink = SqliteSink::open(&dir.path().join("claimline.sqlite"), &schemas)
                        .expect("open sqlite");
                    write_all(Box::new(sink), rows);
                    dir
                },
                BatchSize::PerIteration,
            );
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
