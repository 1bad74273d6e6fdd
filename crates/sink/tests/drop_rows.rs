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

/// SQLite finds a line's rows by the rowids it noted as they went in: every row of a line named
/// goes, however its rows were written (several per line, a line's rows in two writes), and
/// nothing else, not a row whose file is NULL, nor rows written after a drop that take the
/// dropped rows' rowids again.
#[test]
fn sqlite_drops_exactly_the_rows_of_the_lines_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("x.sqlite");
    let row = |x: &str, file: Option<&str>, line: i64| {
        vec![
            Cell::text(x),
            file.map_or(Cell::Null, Cell::text),
            Cell::Int(line),
        ]
    };
    let mut sqlite = SqliteSink::open(&db, &[schema()]).expect("sqlite");
    // Line 1 of `a` gives three rows, its last one in a later write; line 2 two rows; a row
    // with no file at line 2; line 3 of `b` one row.
    sqlite
        .write_rows(
            0,
            &[
                row("a1-1", Some("a"), 1),
                row("a1-2", Some("a"), 1),
                row("a2-1", Some("a"), 2),
                row("a2-2", Some("a"), 2),
                row("null-2", None, 2),
                row("b3", Some("b"), 3),
            ],
        )
        .expect("write");
    sqlite
        .write_rows(0, &[row("a1-3", Some("a"), 1), row("a4", Some("a"), 4)])
        .expect("write");
    let lines = |pairs: &[(&str, i64)]| -> SourceLines {
        let mut l = SourceLines::new();
        for (f, n) in pairs {
            l.entry((*f).to_owned()).or_default().insert(*n);
        }
        l
    };
    assert_eq!(
        sqlite
            .drop_rows(&[0], &lines(&[("a", 1), ("a", 4), ("b", 9)]))
            .expect("drop"),
        vec![4]
    );
    // The dropped rows held the highest rowids: new rows take them again, and naming the
    // dropped lines once more leaves the new rows alone.
    sqlite
        .write_rows(0, &[row("a5", Some("a"), 5), row("a6", Some("a"), 6)])
        .expect("write");
    assert_eq!(
        sqlite
            .drop_rows(&[0], &lines(&[("a", 1), ("a", 4), ("a", 2)]))
            .expect("drop"),
        vec![2]
    );
    Box::new(sqlite)
        .commit(&RunRecord::new("r1"))
        .expect("commit");
    let conn = rusqlite::Connection::open(&db).expect("open");
    let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
    let left: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(left, ["a5", "a6", "b3", "null-2"]);
}

/// A table without the lineage columns cannot have a line's rows found: asking is an error
/// that names the table, as Parquet's is, never a silent keep.
#[test]
fn sqlite_refuses_to_drop_from_a_table_without_lineage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = TableSchema::new("plain", vec![Column::new("x", ColumnType::Text)]);
    let mut sqlite = SqliteSink::open(&dir.path().join("x.sqlite"), &[plain]).expect("sqlite");
    sqlite
        .write_rows(0, &[vec![Cell::text("1")]])
        .expect("write");
    let lines: SourceLines = [("a".to_owned(), [1].into_iter().collect())]
        .into_iter()
        .collect();
    let e = sqlite.drop_rows(&[0], &lines).expect_err("no lineage");
    assert!(e.to_string().contains("plain"), "{e}");
    assert!(e.to_string().contains("no lineage columns"), "{e}");
}
