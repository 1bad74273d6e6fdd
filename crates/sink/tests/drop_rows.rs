//! Rows written and then dropped by (`_source_file`, `_line`) before commit are in neither sink;
//! an earlier run's rows at the same place stay.

use claimline_sink::{
    Cell, Column, ColumnType, ParquetSink, RunRecord, SourceLines, SqliteSink, TableSchema,
    TableSink, read_committed_parquet,
};

fn schema() -> TableSchema {
    TableSchema::new(
        "t",
        vec![
            Column::new("x", ColumnType::Text),
            Column::new("_source_file", ColumnType::Text),
            Column::new("_line", ColumnType::Integer),
        ],
    )
}

fn rows(run: &str) -> Vec<Vec<Cell>> {
    (1..=20)
        .map(|line| {
            vec![
                Cell::text(format!("{run}-{line}")),
                Cell::text(if line % 2 == 0 { "a" } else { "b" }),
                Cell::Int(line),
            ]
        })
        .collect()
}

fn xs(mut got: Vec<Vec<Cell>>) -> Vec<String> {
    got.sort_by_key(|r| format!("{r:?}"));
    got.into_iter()
        .map(|r| match &r[0] {
            Cell::Text(s) => s.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn dropped_rows_are_in_neither_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("x.sqlite");
    let pq = dir.path().join("parquet");
    let drop: SourceLines = [("a".to_owned(), [2, 4, 7].into_iter().collect())]
        .into_iter()
        .collect();
    for run in ["r1", "r2"] {
        let mut sqlite = SqliteSink::open(&db, &[schema()]).expect("sqlite");
        let mut parquet = ParquetSink::open(&pq, run, &[schema()]).expect("parquet");
        // Some rows, a drop in the middle of the run, more rows after it.
        let mut first = rows(run);
        let second = first.split_off(12);
        sqlite.write_rows(0, &first).expect("write");
        parquet.write(0, first).expect("write");
        if run == "r2" {
            // Line 7 of `a` is not there (odd lines are in `b`): nothing to drop for it.
            assert_eq!(sqlite.drop_rows(&[0], &drop).expect("drop"), vec![2]);
            assert_eq!(parquet.drop_rows(&[0], &drop).expect("drop"), vec![2]);
        }
        sqlite.write_rows(0, &second).expect("write");
        parquet.write(0, second).expect("write");
        Box::new(sqlite)
            .commit(&RunRecord::new(run))
            .expect("commit");
        Box::new(parquet)
            .commit(&RunRecord::new(run))
            .expect("commit");
    }
    let conn = rusqlite::Connection::open(&db).expect("open");
    let mut stmt = conn
        .prepare("SELECT x, _source_file, _line FROM t")
        .expect("prepare");
    let in_sqlite: Vec<Vec<Cell>> = stmt
        .query_map([], |r| {
            Ok(vec![
                Cell::text(r.get::<_, String>(0)?),
                Cell::text(r.get::<_, String>(1)?),
                Cell::Int(r.get(2)?),
            ])
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let in_parquet =
        read_committed_parquet(&pq, "t", &["x", "_source_file", "_line"]).expect("read");
    let mut want: Vec<Vec<Cell>> = rows("r1");
    want.extend(
        rows("r2")
            .into_iter()
            .filter(|r| !matches!(r[2], Cell::Int(2 | 4)) || r[1] != Cell::text("a")),
    );
    assert_eq!(want.len(), 38);
    assert_eq!(xs(in_sqlite), xs(want.clone()));
    assert_eq!(xs(in_parquet), xs(want));
}
