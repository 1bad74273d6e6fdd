//! A third, test-only sink behind the same trait: a `Loader` writing to SQLite and to a sink that
//! keeps rows in memory gives the same rows in both, table by table (claim versions dropped by
//! the history rule included).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use claimline_load::{Format, Loader, NoProgress, SinkKind};
use claimline_model::{
    Cell, ColumnType, RunRecord, TableSchema, decimal_text, format_date, format_timestamp,
};
use claimline_sink::{SourceLines, TableSink};

/// Committed rows (with the table's schema) per table name.
type Store = Arc<Mutex<BTreeMap<String, (TableSchema, Vec<Vec<Cell>>)>>>;

struct MemoryKind(Store);

struct MemorySink {
    tables: Vec<TableSchema>,
    staged: Vec<Vec<Vec<Cell>>>,
    store: Store,
}

impl SinkKind for MemoryKind {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn location(&self, out: &Path) -> PathBuf {
        out.join("memory")
    }

    fn open(
        &self,
        _out: &Path,
        _run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error> {
        Ok(Box::new(MemorySink {
            tables: tables.to_vec(),
            staged: vec![Vec::new(); tables.len()],
            store: self.0.clone(),
        }))
    }
}

impl TableSink for MemorySink {
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), claimline_sink::Error> {
        self.staged[table].extend(rows);
        Ok(())
    }

    fn drop_rows(
        &mut self,
        tables: &[usize],
        lines: &SourceLines,
    ) -> Result<Vec<u64>, claimline_sink::Error> {
        Ok(tables
            .iter()
            .map(|&t| claimline_sink::drop_listed_rows(&self.tables[t], &mut self.staged[t], lines))
            .collect())
    }

    fn remove_keys(
        &mut self,
        _: &[String],
        _: Vec<Vec<Cell>>,
    ) -> Result<(), claimline_sink::Error> {
        // A fresh store: nothing earlier to remove.
        Ok(())
    }

    fn replaces(&self) -> bool {
        true
    }

    fn prepare(&mut self, _: &RunRecord, _: bool) -> Result<(), claimline_sink::Error> {
        Ok(())
    }

    fn commit(self: Box<Self>, _: &RunRecord) -> Result<(), claimline_sink::Error> {
        let mut store = self.store.lock().expect("store");
        for (schema, rows) in self.tables.iter().zip(self.staged) {
            store
                .entry(schema.name.clone())
                .or_insert_with(|| (schema.clone(), Vec::new()))
                .1
                .extend(rows);
        }
        Ok(())
    }
}

/// A cell as SQLite stores it, as text.
fn as_sqlite(cell: &Cell, ty: &ColumnType) -> String {
    match (cell, ty) {
        (Cell::Null, _) => "NULL".into(),
        (Cell::Text(s), _) => s.to_string(),
        (Cell::Int(n), _) => n.to_string(),
        (Cell::Bool(b), _) => i64::from(*b).to_string(),
        (Cell::Decimal(m), ColumnType::Decimal { scale, .. }) => decimal_text(*m, *scale)
            .parse::<f64>()
            .expect("decimal")
            .to_string(),
        (Cell::Decimal(m), _) => m.to_string(),
        (Cell::Date(d), _) => format_date(*d),
        (Cell::Timestamp(t), _) => format_timestamp(*t),
    }
}

fn sqlite_rows(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM \"{table}\""))
        .expect("prepare");
    let n = stmt.column_count();
    let mut rows: Vec<String> = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => v.to_string(),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(_) => "<blob>".to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|cells| cells.join("|"))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    rows.sort();
    rows
}

#[test]
fn a_third_sink_gets_the_same_rows_as_sqlite() {
    let out = tempfile::tempdir().expect("tempdir");
    let store: Store = Arc::default();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/generated/v2");
    let report = Loader::new(out.path())
        .format(Format::SQLITE)
        .sink(Box::new(MemoryKind(store.clone())))
        .run_id(Some("r1".into()))
        .load(&[input], &NoProgress)
        .expect("load");
    assert!(report.committed);
    assert!(
        report.history.superseded > 0,
        "the history rule dropped versions"
    );
    let store = store.lock().expect("store");
    let db = out.path().join("claimline.sqlite");
    let mut tables = 0;
    for (name, (schema, rows)) in store.iter() {
        let mut mine: Vec<String> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&schema.columns)
                    .map(|(c, col)| as_sqlite(c, &col.ty))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        mine.sort();
        let theirs = sqlite_rows(&db, name);
        let only_mine: Vec<&String> = mine
            .iter()
            .filter(|r| !theirs.contains(r))
            .take(2)
            .collect();
        let only_theirs: Vec<&String> = theirs
            .iter()
            .filter(|r| !mine.contains(r))
            .take(2)
            .collect();
        assert!(
            mine.len() == theirs.len() && only_mine.is_empty(),
            "table {name}: {} rows in memory, {} in SQLite; only in memory {only_mine:?}; only in SQLite {only_theirs:?}",
            mine.len(),
            theirs.len()
        );
        assert_eq!(report.tables[name], rows.len() as u64, "{name}");
        tables += 1;
    }
    assert!(tables >= 10, "{tables} tables");
}
