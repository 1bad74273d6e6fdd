//! Property: whatever rows go in, the Parquet and SQLite sinks hold the same rows.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, Decimal128Array};
use arrow_schema::DataType;
use claimline_sink::{
    Cell, Column, ColumnType, ParquetSink, RunRecord, SqliteSink, TableSchema, TableSink,
    format_date, format_timestamp,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;

fn schema() -> TableSchema {
    TableSchema::new(
        "t",
        vec![
            Column::new("text", ColumnType::Text),
            Column::new("code", ColumnType::Code),
            Column::new("n", ColumnType::Integer),
            Column::new("b", ColumnType::Boolean),
            Column::new(
                "amt",
                ColumnType::Decimal {
                    precision: 13,
                    scale: 2,
                },
            ),
            Column::new("d", ColumnType::Date),
            Column::new("ts", ColumnType::Timestamp),
        ],
    )
}

fn nullable<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
    f: fn(T) -> Cell,
) -> BoxedStrategy<Cell> {
    prop_oneof![1 => Just(Cell::Null), 4 => s.prop_map(f)].boxed()
}

fn row() -> impl Strategy<Value = Vec<Cell>> {
    (
        nullable("[ -~é漢]{0,40}", Cell::text),
        nullable("[0-9A-Z]{0,5}", Cell::text),
        nullable(any::<i64>(), Cell::Int),
        nullable(any::<bool>(), Cell::Bool),
        nullable(-99_999_999_999i128..99_999_999_999i128, Cell::Decimal),
        nullable(-40_000i32..60_000, Cell::Date),
        nullable(
            -2_000_000_000_000_000i64..4_000_000_000_000_000,
            Cell::Timestamp,
        ),
    )
        .prop_map(|(a, b, c, d, e, f, g)| vec![a, b, c, d, e, f, g])
}

/// Canonical text per cell, as each format stores it.
fn sqlite_rows(db: &Path) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn.prepare("SELECT * FROM t").expect("prepare");
    let mut rows: Vec<Vec<String>> = stmt
        .query_map([], |r| {
            (0..7)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".into(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => format!("{v}"),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(_) => "BLOB".into(),
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    rows
}

fn parquet_rows(file: &Path) -> Vec<Vec<String>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).expect("open"))
        .expect("parquet")
        .build()
        .expect("reader");
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        for i in 0..batch.num_rows() {
            let mut row = Vec::new();
            for col in batch.columns() {
                if col.is_null(i) {
                    row.push("NULL".to_owned());
                    continue;
                }
                row.push(match col.data_type() {
                    DataType::Utf8 => col.as_string::<i32>().value(i).to_owned(),
                    DataType::Int64 => col.as_primitive::<Int64Type>().value(i).to_string(),
                    DataType::Boolean => u8::from(col.as_boolean().value(i)).to_string(),
                    DataType::Decimal128(_, _) => {
                        let text = col
                            .as_any()
                            .downcast_ref::<Decimal128Array>()
                            .expect("decimal")
                            .value_as_string(i);
                        format!("{}", text.parse::<f64>().expect("decimal text"))
                    }
                    DataType::Date32 => format_date(col.as_primitive::<Date32Type>().value(i)),
                    DataType::Timestamp(_, _) => {
                        format_timestamp(col.as_primitive::<TimestampMicrosecondType>().value(i))
                    }
                    other => panic!("unexpected {other}"),
                });
            }
            rows.push(row);
        }
    }
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn parquet_and_sqlite_hold_the_same_rows(rows in proptest::collection::vec(row(), 0..300)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let root = dir.path().join("parquet");
        let schemas = [schema()];
        let mut lite = SqliteSink::open(&db, &schemas).expect("sqlite");
        let mut pq = ParquetSink::open(&root, "r1", &schemas).expect("parquet");
        lite.write(0, rows.clone()).expect("write sqlite");
        pq.write(0, rows.clone()).expect("write parquet");
        Box::new(lite).commit(&RunRecord::new("r1")).expect("commit sqlite");
        Box::new(pq).commit(&RunRecord::new("r1")).expect("commit parquet");
        let a = sqlite_rows(&db);
        let b = parquet_rows(&root.join("t/run=r1/part-0.parquet"));
        prop_assert_eq!(a.len(), rows.len());
        prop_assert_eq!(a, b);
    }
}
