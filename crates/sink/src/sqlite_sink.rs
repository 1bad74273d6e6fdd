//! The SQLite sink: STRICT tables, atomic creation, set-replacing updates in one transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};

use crate::error::Error;
use crate::merge::quote;
use crate::names::FileNames;
use claimline_model::{
    Cell, ColumnType, RunRecord, TableSchema, decimal_f64, format_date, format_timestamp,
    make_private, push_date, push_timestamp,
};

use crate::{SourceLines, TableSink};

/// How the database is being written.
enum Mode {
    /// No database existed: build one in `tmp`, rename it over `path` at commit. `file` is the
    /// handle `tmp` was made with, kept until the connection is gone and used for its syncs:
    /// closing any other handle of the file while SQLite holds its locks would drop them
    /// (POSIX locks belong to the process, per file).
    Fresh { tmp: PathBuf, file: std::fs::File },
    /// A database exists: stage rows in temp tables, merge in one transaction at commit.
    Update,
}

/// Writes tables into one SQLite database; see the crate docs.
pub struct SqliteSink {
    path: PathBuf,
    conn: Option<Connection>,
    schemas: Vec<TableSchema>,
    mode: Mode,
    counts: Vec<u64>,
    /// Keys whose rows go at commit without replacement, per replace key.
    removals: BTreeMap<Vec<String>, Vec<Vec<Value>>>,
    /// [`TableSink::prepare`] did everything short of the commit point: nothing can be written.
    prepared: bool,
    /// The commit point was passed: the database is there to stay.
    committed: bool,
    /// Per table, where this run's rows lie by the line that gave them (`None`: a table without
    /// the lineage columns), so [`SqliteSink::drop_rows`] deletes them by rowid.
    written: Vec<Option<Written>>,
    /// Per table and column, whether a row written has held a value there (see
    /// [`SqliteSink::write_rows`]).
    held: Vec<Vec<bool>>,
}

/// Where a run's rows of one table lie, by the line that gave them: spans of consecutive rowids
/// per (`_source_file`, `_line`), in the order they were written. A superseded version's rows
/// are then deleted by rowid (a seek each) instead of by a scan of the whole table for their
/// lines (found in the 5 GB benchmark: the scan was 285 ms of a 0.53 s serial step).
///
/// Past [`SPANS_HELD`] spans, the earlier ones wait in an unnamed temporary file beside the
/// database (24 bytes each, about 39 bytes an EOB over the CCLF tables: 450 MB at 290 GB of
/// claims), read back once by [`Written::take`]: the spans a load holds stay bounded however
/// many lines it writes. They are rowids, file numbers and line numbers, no claim data; the
/// file (`O_TMPFILE`, or where the file system has none a file removed as soon as it is made)
/// goes when it is closed, or with the process.
#[derive(Debug)]
struct Written {
    /// The columns `_source_file` and `_line`.
    file_at: usize,
    line_at: usize,
    /// The `_source_file` values met, numbered: spans name them by number.
    files: FileNames,
    /// The latest spans (the last one still growing).
    spans: Vec<Span>,
    /// The spans before them, in order, and how many.
    earlier: Option<(std::io::BufWriter<std::fs::File>, u64)>,
    /// Where the file of earlier spans goes: the database's folder.
    dir: PathBuf,
    /// [`SPANS_HELD`]; tests hold fewer.
    hold: usize,
}

/// Spans of a table held in memory before the earlier ones wait on disk (1.5 MiB).
const SPANS_HELD: usize = 1 << 16;

/// Rows `first..first + count` (rowids) came from line `line` of `files[file]`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    file: u32,
    count: u32,
    line: i64,
    first: i64,
}

impl Span {
    const BYTES: usize = 24;

    fn to_bytes(self) -> [u8; Self::BYTES] {
        let mut b = [0u8; Self::BYTES];
        b[0..4].copy_from_slice(&self.file.to_le_bytes());
        b[4..8].copy_from_slice(&self.count.to_le_bytes());
        b[8..16].copy_from_slice(&self.line.to_le_bytes());
        b[16..24].copy_from_slice(&self.first.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8; Self::BYTES]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let i64_at = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i..i + 8]);
            i64::from_le_bytes(x)
        };
        Span {
            file: u32_at(0),
            count: u32_at(4),
            line: i64_at(8),
            first: i64_at(16),
        }
    }
}

impl Written {
    /// `database`: the database's path (its folder takes the file of earlier spans).
    fn new(schema: &TableSchema, database: &Path) -> Option<Self> {
        let at = |name: &str| schema.columns.iter().position(|c| c.name == name);
        let dir = match database.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(Written {
            file_at: at("_source_file")?,
            line_at: at("_line")?,
            files: FileNames::default(),
            spans: Vec::new(),
            earlier: None,
            dir: dir.to_owned(),
            hold: SPANS_HELD,
        })
    }

    /// Notes that `row` went in as `rowid`. A row whose file or line is not text and an integer
    /// is not noted: a scan for its line would not find it either.
    ///
    /// # Errors
    /// [`Error::Io`] when the earlier spans cannot be written to their file.
    fn note(&mut self, row: &[Cell], rowid: i64) -> Result<(), Error> {
        let (Some(Cell::Text(file)), Some(&Cell::Int(line))) =
            (row.get(self.file_at), row.get(self.line_at))
        else {
            return Ok(());
        };
        if let Some(last) = self.spans.last_mut()
            && last.line == line
            && last.first + i64::from(last.count) == rowid
            && self.files.name(last.file) == file.as_str()
            && last.count < u32::MAX
        {
            last.count += 1;
            return Ok(());
        }
        if self.spans.len() >= self.hold {
            self.spill()?;
        }
        let file = self.files.number(file.as_str());
        self.spans.push(Span {
            file,
            count: 1,
            line,
            first: rowid,
        });
        Ok(())
    }

    /// Writes the spans held to the file of earlier spans.
    fn spill(&mut self) -> Result<(), Error> {
        use std::io::Write;
        let dir = &self.dir;
        let (out, n) = match &mut self.earlier {
            Some(e) => e,
            None => {
                let file = tempfile::tempfile_in(dir).map_err(Error::io(dir))?;
                self.earlier
                    .insert((std::io::BufWriter::with_capacity(256 << 10, file), 0))
            }
        };
        for s in self.spans.drain(..) {
            out.write_all(&s.to_bytes()).map_err(Error::io(dir))?;
            *n += 1;
        }
        Ok(())
    }

    /// Takes out the spans of `lines`; returns their rowid ranges, ascending (the order a scan
    /// of the table meets them).
    ///
    /// # Errors
    /// [`Error::Io`] when the earlier spans cannot be read back (or the others written again).
    fn take(&mut self, lines: &SourceLines) -> Result<Vec<(i64, i64)>, Error> {
        let listed: Vec<Option<&std::collections::HashSet<i64>>> =
            self.files.iter().map(|f| lines.get(f)).collect();
        let mut ranges = Vec::new();
        let mut gone = |s: &Span| {
            let gone = listed[s.file as usize].is_some_and(|l| l.contains(&s.line));
            if gone {
                ranges.push((s.first, s.first + i64::from(s.count) - 1));
            }
            gone
        };
        // (On an error the spans taken so far are lost: the error fails the load, whose rows
        // are then not committed.)
        if let Some((out, n)) = self.earlier.take() {
            use std::io::{Read, Seek, Write};
            let dir = &self.dir;
            let mut file = out.into_inner().map_err(|e| Error::Io {
                path: dir.clone(),
                source: e.into_error(),
            })?;
            file.rewind().map_err(Error::io(dir))?;
            // The spans that stay go to a new file, in order.
            let mut kept: Option<(std::io::BufWriter<std::fs::File>, u64)> = None;
            let mut reader = std::io::BufReader::with_capacity(256 << 10, file);
            let mut b = [0u8; Span::BYTES];
            for _ in 0..n {
                reader.read_exact(&mut b).map_err(Error::io(dir))?;
                let s = Span::from_bytes(&b);
                if gone(&s) {
                    continue;
                }
                let (out, k) = match &mut kept {
                    Some(k) => k,
                    None => {
                        let file = tempfile::tempfile_in(dir).map_err(Error::io(dir))?;
                        kept.insert((std::io::BufWriter::with_capacity(256 << 10, file), 0))
                    }
                };
                out.write_all(&b).map_err(Error::io(dir))?;
                *k += 1;
            }
            self.earlier = kept;
        }
        self.spans.retain(|s| !gone(s));
        ranges.sort_unstable();
        Ok(ranges)
    }
}

/// Where a run's rows of table `name` go: the table itself in a new database, its staging table
/// in an update.
fn target_name(mode: &Mode, name: &str) -> String {
    match mode {
        Mode::Fresh { .. } => quote(name),
        Mode::Update => stage(name),
    }
}

/// `conn`, until the commit is prepared (`prepared`).
fn live<'c>(
    conn: &'c Option<Connection>,
    prepared: bool,
    what: &str,
) -> Result<&'c Connection, Error> {
    conn.as_ref()
        .filter(|_| !prepared)
        .ok_or_else(|| Error::Row {
            table: String::new(),
            column: String::new(),
            message: format!("{what} after the commit was prepared"),
        })
}

fn stage(name: &str) -> String {
    format!("temp.{}", quote(&format!("stage_{name}")))
}

fn create_table_sql(qualified: &str, schema: &TableSchema) -> String {
    let cols: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.ty.sqlite_type()))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified} ({}) STRICT",
        cols.join(", ")
    )
}

/// The stored row `m` is newer than the staged row `s`: a later `_last_updated` (as an
/// instant, not as text: `…:00Z` and `…:00.5Z` do not sort as text), a missing one oldest.
fn newer() -> String {
    format!(
        "coalesce({}, -9223372036854775807) > coalesce({}, -9223372036854775807)",
        instant_micros("m._last_updated"),
        instant_micros("s._last_updated")
    )
}

/// SQL for the microseconds since 1970 of `column`, a timestamp as claimline stores it in
/// SQLite (`2026-01-02T03:04:05.000001Z`: UTC, up to six digits of fraction, trailing zeros
/// dropped); NULL for NULL. Exact to the microsecond, as Parquet's and PostgreSQL's
/// timestamps are: SQLite's `unixepoch(…, 'subsec')` keeps milliseconds only, so two
/// versions a microsecond apart tied in SQLite and were told apart elsewhere.
pub fn instant_micros(column: &str) -> String {
    format!(
        "(unixepoch({column}) * 1000000 + CASE WHEN instr({column}, '.') > 0 THEN \
         CAST(substr(substr(rtrim({column}, 'Z'), instr({column}, '.') + 1) || '000000', 1, 6) \
         AS INTEGER) ELSE 0 END)"
    )
}

const RUNS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _claimline_runs (run_id TEXT PRIMARY KEY, started TEXT, finished TEXT, views_hash TEXT, transaction_time TEXT, rejects INTEGER, row_errors INTEGER, record TEXT) STRICT";

impl SqliteSink {
    /// Opens `path` for a run writing `schemas`: a new database if none exists (built aside and
    /// renamed at commit), else an update of the existing one (one transaction at commit).
    ///
    /// # Errors
    /// [`Error::Sqlite`], [`Error::Io`], or [`Error::SchemaChanged`] when an existing table has
    /// other columns.
    pub fn open(path: &Path, schemas: &[TableSchema]) -> Result<Self, Error> {
        let sql = Error::sqlite(path);
        if database_present(path)? {
            let conn = Connection::open(path).map_err(Error::sqlite(path))?;
            conn.set_prepared_statement_cache_capacity(STATEMENTS);
            // Another writer (a reader never blocks a WAL writer) is waited for, not failed on.
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .map_err(Error::sqlite(path))?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(Error::sqlite(path))?;
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(Error::sqlite(path))?;
            conn.execute_batch("BEGIN IMMEDIATE")
                .map_err(Error::sqlite(path))?;
            for s in schemas {
                check_or_create(&conn, path, s)?;
                conn.execute_batch(&create_table_sql(&stage(&s.name), s))
                    .map_err(Error::sqlite(path))?;
            }
            return Ok(SqliteSink {
                path: path.to_owned(),
                conn: Some(conn),
                schemas: schemas.to_vec(),
                mode: Mode::Update,
                counts: vec![0; schemas.len()],
                removals: BTreeMap::new(),
                prepared: false,
                committed: false,
                written: schemas.iter().map(|s| Written::new(s, path)).collect(),
                held: held_none(schemas),
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "claimline.sqlite".into());
        remove_stale(dir, &name);
        let tmp = dir.join(format!("_{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let file = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        make_private(&tmp).map_err(Error::io(&tmp))?;
        let conn = Connection::open(&tmp).map_err(Error::sqlite(&tmp))?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        // 16 KiB pages (SQLite's default is 4 KiB): the commit writes a quarter as many pages
        // (a 37 MB database from 582 MB of claims: 47 → 20 ms). A page size is fixed when the
        // database is made: later loads keep it.
        conn.execute_batch(
            "PRAGMA page_size=16384; PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-65536; BEGIN",
        )
        .map_err(sql)?;
        for s in schemas {
            conn.execute_batch(&create_table_sql(&quote(&s.name), s))
                .map_err(Error::sqlite(&tmp))?;
        }
        Ok(SqliteSink {
            path: path.to_owned(),
            conn: Some(conn),
            schemas: schemas.to_vec(),
            mode: Mode::Fresh { tmp, file },
            counts: vec![0; schemas.len()],
            removals: BTreeMap::new(),
            prepared: false,
            committed: false,
            written: schemas.iter().map(|s| Written::new(s, path)).collect(),
            held: held_none(schemas),
        })
    }

    /// Removes at commit, in the same transaction, the rows of every table whose
    /// [`TableSchema::replace_key`] is `replace_key` and whose key columns equal one of `keys`
    /// (cells in `replace_key` order). Used for a claim whose current version was cancelled.
    /// A new database has nothing to remove.
    ///
    /// # Errors
    /// [`Error::Row`] when a key's width differs from `replace_key`'s.
    pub fn remove(&mut self, replace_key: &[String], keys: Vec<Vec<Cell>>) -> Result<(), Error> {
        self.live("remove")?;
        crate::check_key_widths(replace_key, &keys)?;
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(
                key.into_iter()
                    .map(|c| match c {
                        Cell::Null => Value::Null,
                        Cell::Text(s) => Value::Text(s.into_string()),
                        Cell::Int(n) => Value::Integer(n),
                        Cell::Bool(b) => Value::Integer(i64::from(b)),
                        Cell::Date(d) => Value::Text(format_date(d)),
                        Cell::Timestamp(t) => Value::Text(format_timestamp(t)),
                        Cell::Decimal(m) => Value::Text(m.to_string()),
                    })
                    .collect(),
            );
        }
        self.removals
            .entry(replace_key.to_vec())
            .or_default()
            .extend(values);
        Ok(())
    }

    fn target(&self, table: usize) -> String {
        target_name(&self.mode, &self.schemas[table].name)
    }

    fn db_path(&self) -> &Path {
        match &self.mode {
            Mode::Fresh { tmp, .. } => tmp,
            Mode::Update => &self.path,
        }
    }
}

/// Whether an output database is at `path`: `false` when nothing is there. What is there but
/// cannot be one claimline wrote stops the command, never taken for "no database yet" (which
/// would start a new one over it): a link to nothing, a folder, a file of 0 bytes (SQLite reads
/// that as an empty database).
///
/// # Errors
/// [`Error::Corrupt`] for those; [`Error::Io`].
pub fn database_present(path: &Path) -> Result<bool, Error> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(false);
    }
    let corrupt = |message: &str| Error::Corrupt {
        path: path.to_owned(),
        message: message.to_owned(),
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(corrupt("a link to nothing (its target is gone)"))
        }
        Err(e) => Err(Error::io(path)(e)),
        Ok(m) if m.is_dir() => Err(corrupt("a folder, not a database")),
        Ok(m) if m.len() == 0 => Err(corrupt(
            "empty (0 bytes): not a database claimline wrote; move it aside to start a new one",
        )),
        Ok(_) => Ok(true),
    }
}

/// Opens an existing output database read-only, for what earlier runs left, and reads its
/// schema at once, so a file that is not a database is reported here, naming it.
///
/// # Errors
/// [`Error::Corrupt`] for a file that is not a readable SQLite database; [`Error::Sqlite`].
pub fn open_earlier(path: &Path) -> Result<Connection, Error> {
    if !database_present(path)? {
        return Err(Error::Io {
            path: path.to_owned(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(Error::sqlite(path))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(Error::sqlite(path))?;
    Ok(conn)
}

/// The names of the tables the database `conn` (opened at `path`) holds: the one reader of
/// `sqlite_master` for every crate that asks which tables an output has.
///
/// # Errors
/// [`Error::Sqlite`] (or [`Error::Corrupt`]) naming `path`.
pub fn table_names(
    conn: &Connection,
    path: &Path,
) -> Result<std::collections::BTreeSet<String>, Error> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .map_err(Error::sqlite(path))?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(Error::sqlite(path))
}

/// The run records in the `_claimline_runs` table of the database `conn` opened at `path`, in
/// the order the runs started (empty when there is no such table). The one reader of that
/// table for every crate.
///
/// # Errors
/// [`Error::Corrupt`] naming `path` when a record is not a run record; [`Error::Sqlite`].
pub fn read_sqlite_runs(conn: &Connection, path: &Path) -> Result<Vec<RunRecord>, Error> {
    if !table_names(conn, path)?.contains("_claimline_runs") {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT record FROM _claimline_runs ORDER BY started, run_id")
        .map_err(Error::sqlite(path))?;
    let texts = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(Error::sqlite(path))?;
    texts
        .iter()
        .map(|text| {
            serde_json::from_str(text).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                message: format!(
                    "a record of table _claimline_runs is not a run record ({})",
                    claimline_model::without_values(&e.to_string())
                ),
            })
        })
        .collect()
}

/// Removes databases that killed runs left half-built (`_<name>.tmp-<pid>` whose process is gone).
fn remove_stale(dir: &Path, name: &str) {
    let prefix = format!("_{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        // Without /proc (not Linux) liveness is unknown: leave the file.
        if Path::new("/proc/self").exists() && !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Creates `schema`'s table in an existing database, or checks that it has the same columns.
fn check_or_create(conn: &Connection, path: &Path, schema: &TableSchema) -> Result<(), Error> {
    let mut stmt = conn
        .prepare("SELECT name, type FROM pragma_table_info(?1)")
        .map_err(Error::sqlite(path))?;
    let existing: Vec<(String, String)> = stmt
        .query_map([&schema.name], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(Error::sqlite(path))?
        .collect::<Result<_, _>>()
        .map_err(Error::sqlite(path))?;
    if existing.is_empty() {
        conn.execute_batch(&create_table_sql(&quote(&schema.name), schema))
            .map_err(Error::sqlite(path))?;
        return create_indexes(conn, path, schema);
    }
    let wanted: Vec<(String, String)> = schema
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.ty.sqlite_type().to_owned()))
        .collect();
    if existing != wanted {
        return Err(Error::SchemaChanged {
            path: path.to_owned(),
            table: schema.name.clone(),
        });
    }
    Ok(())
}

fn create_indexes(conn: &Connection, path: &Path, schema: &TableSchema) -> Result<(), Error> {
    for col in &schema.indexes {
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            quote(&format!("{}_{col}", schema.name)),
            quote(&schema.name),
            quote(col)
        );
        conn.execute_batch(&sql).map_err(Error::sqlite(path))?;
    }
    Ok(())
}

/// The name of the exact integer column a `<table>_exact` view gives a decimal column: the
/// amount in cents (`CLM_PMT_AMT_CENTS`) for scale 2, else scaled by `10^scale`
/// (`X_E3` for scale 3).
pub fn exact_column(name: &str, scale: i8) -> String {
    if scale == 2 {
        format!("{name}_CENTS")
    } else {
        format!("{name}_E{scale}")
    }
}

/// `<table>_exact`: the table with, for each decimal column, its exact integer in the smallest
/// unit ([`exact_column`]), so that a plain `sqlite3` sums money exactly
/// (`SELECT sum(CLM_PMT_AMT_CENTS) FROM cclf1_exact`). SQLite stores decimals as REAL, each the
/// double nearest the exact value, so `round(x · 10^scale)` recovers the exact integer for every
/// amount below 2^53 units; summing integers is exact. Made again at every commit (the view
/// follows the table's columns).
fn exact_money_view(conn: &Connection, path: &Path, schema: &TableSchema) -> Result<(), Error> {
    let decimals: Vec<(&str, i8)> = schema
        .columns
        .iter()
        .filter_map(|c| match c.ty {
            ColumnType::Decimal { scale, .. } => Some((c.name.as_str(), scale)),
            _ => None,
        })
        .collect();
    if decimals.is_empty() {
        return Ok(());
    }
    let view = quote(&format!("{}_exact", schema.name));
    let extra = decimals
        .iter()
        .map(|(name, scale)| {
            format!(
                "CAST(round({} * 1e{scale}) AS INTEGER) AS {}",
                quote(name),
                quote(&exact_column(name, *scale))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    conn.execute_batch(&format!(
        "DROP VIEW IF EXISTS main.{view}; CREATE VIEW main.{view} AS SELECT *, {extra} FROM main.{}",
        quote(&schema.name)
    ))
    .map_err(Error::sqlite(path))
}

/// No column of any table has held a value yet.
fn held_none(schemas: &[TableSchema]) -> Vec<Vec<bool>> {
    schemas
        .iter()
        .map(|s| vec![false; s.columns.len()])
        .collect()
}

/// Prepared statements a connection keeps: a table's `INSERT` differs by the columns that have
/// held a value (see [`SqliteSink::write_rows`]), and the claim history's deletes.
const STATEMENTS: usize = 128;

/// A cell as a bound parameter of column `i`; text is bound by reference, dates and instants
/// as their text, written into `scratch` (SQLite copies bound text: rusqlite binds it
/// `SQLITE_TRANSIENT`).
fn to_sql<'c>(
    schema: &TableSchema,
    i: usize,
    cell: &'c Cell,
    scratch: &'c mut String,
) -> Result<ToSqlOutput<'c>, Error> {
    let col = &schema.columns[i];
    let bad = |what: &str| Error::Row {
        table: schema.name.clone(),
        column: col.name.clone(),
        message: format!("{what} in a {:?} column", col.ty),
    };
    let owned = |v: Value| ToSqlOutput::Owned(v);
    Ok(match (cell, &col.ty) {
        (Cell::Null, _) => owned(Value::Null),
        (Cell::Bool(b), ColumnType::Boolean) => owned(Value::Integer(i64::from(*b))),
        (Cell::Int(n), ColumnType::Integer) => owned(Value::Integer(*n)),
        // The nearest double to the exact decimal (1234.50 → the nearest double to 1234.5).
        (Cell::Decimal(m), ColumnType::Decimal { scale, .. }) => owned(Value::Real(
            decimal_f64(*m, *scale).ok_or_else(|| bad("a malformed decimal"))?,
        )),
        (Cell::Text(s), ColumnType::Text | ColumnType::Code | ColumnType::Json) => {
            ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
        }
        (Cell::Date(d), ColumnType::Date) => {
            scratch.clear();
            push_date(scratch, *d);
            ToSqlOutput::Borrowed(ValueRef::Text(scratch.as_bytes()))
        }
        (Cell::Timestamp(t), ColumnType::Timestamp) => {
            scratch.clear();
            push_timestamp(scratch, *t);
            ToSqlOutput::Borrowed(ValueRef::Text(scratch.as_bytes()))
        }
        (c, _) => return Err(bad(c.kind())),
    })
}

impl SqliteSink {
    /// The connection, until the commit is prepared.
    fn live(&self, what: &str) -> Result<&Connection, Error> {
        live(&self.conn, self.prepared, what)
    }

    /// Removes from `tables` the rows this run wrote whose (`_source_file`, `_line`) is in
    /// `lines` (in the staging tables of an update, so earlier runs' rows are untouched), before
    /// [`TableSink::commit`]; returns the rows removed per table, in `tables` order. For a caller that
    /// writes first and learns afterwards which rows must not stay (the claim-history rule).
    ///
    /// # Errors
    /// [`Error::Sqlite`]; [`Error::Row`] after the commit was prepared.
    pub fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        let path = self.db_path().to_owned();
        self.live("drop")?;
        if lines.is_empty() {
            // Nothing to drop (an export without superseded versions): no pass over the tables.
            return Ok(vec![0; tables.len()]);
        }
        let SqliteSink {
            conn,
            schemas,
            mode,
            prepared,
            written,
            ..
        } = self;
        let conn = live(conn, *prepared, "drop")?;
        let mut removed = Vec::with_capacity(tables.len());
        for &t in tables {
            let Some(written) = written.get_mut(t).and_then(Option::as_mut) else {
                return Err(Error::no_lineage(&schemas[t].name));
            };
            // By rowid, ascending, as a scan of the table would delete them.
            let ranges = written.take(lines)?;
            let mut n = 0u64;
            if !ranges.is_empty() {
                let mut delete = conn
                    .prepare_cached(&format!(
                        "DELETE FROM {} WHERE rowid BETWEEN ?1 AND ?2",
                        target_name(mode, &schemas[t].name)
                    ))
                    .map_err(Error::sqlite(&path))?;
                for (first, last) in ranges {
                    n += delete
                        .execute((first, last))
                        .map_err(Error::sqlite(&path))? as u64;
                }
            }
            removed.push(n);
        }
        for (&t, n) in tables.iter().zip(&removed) {
            self.counts[t] = self.counts[t].saturating_sub(*n);
        }
        Ok(removed)
    }

    /// [`TableSink::write`] without taking the rows: text is bound by reference, so a caller that
    /// also hands the rows to another sink need not copy them.
    ///
    /// # Errors
    /// As [`TableSink::write`].
    pub fn write_rows(&mut self, table: usize, rows: &[Vec<Cell>]) -> Result<(), Error> {
        let target = self.target(table);
        let schema = &self.schemas[table];
        let width = schema.columns.len();
        let path = self.db_path().to_owned();
        if let Some(row) = rows.iter().find(|r| r.len() != width) {
            return Err(Error::Row {
                table: schema.name.clone(),
                column: String::new(),
                message: format!("row has {} cells, the table {width} columns", row.len()),
            });
        }
        // A column no row of the table has held a value in so far (an unmapped CCLF field never
        // does) is a NULL of the statement, not a parameter bound row after row. Once a column
        // has held a value it is bound from then on: a table's statement changes at most once a
        // column in a load, a few times in practice.
        let held = &mut self.held[table];
        claimline_model::mark_held(held, rows);
        let bound: &[bool] = held;
        let values = bound
            .iter()
            .map(|&b| if b { "?" } else { "NULL" })
            .collect::<Vec<_>>()
            .join(",");
        let conn = live(&self.conn, self.prepared, "write")?;
        let written = &mut self.written[table];
        let mut stmt = conn
            .prepare_cached(&format!("INSERT INTO {target} VALUES ({values})"))
            .map_err(Error::sqlite(&path))?;
        let mut scratch = String::new();
        // A parameter keeps its value from row to row (`sqlite3_reset` leaves the bindings): a
        // cell equal to the one above it in this write is not bound again; a write's first row
        // is bound whole, whatever the statement held before. A claim's lines share its
        // claim-level cells and lineage, and the rows of a file its `_run_id`, `_api_version`
        // and `_source_file`; each bind of a text (and a date's or instant's text, written
        // first) copies it into SQLite.
        let mut above: Option<&[Cell]> = None;
        for row in rows {
            let cells = row.iter().enumerate().filter(|&(i, _)| bound[i]);
            for (at, (i, c)) in (1..).zip(cells) {
                if above.is_some_and(|above| above[i] == *c) {
                    continue;
                }
                stmt.raw_bind_parameter(at, to_sql(schema, i, c, &mut scratch)?)
                    .map_err(Error::sqlite(&path))?;
            }
            stmt.raw_execute().map_err(Error::sqlite(&path))?;
            above = Some(row);
            if let Some(w) = written.as_mut() {
                w.note(row, conn.last_insert_rowid())?;
            }
        }
        drop(stmt);
        self.counts[table] += rows.len() as u64;
        Ok(())
    }
}

impl TableSink for SqliteSink {
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
        SqliteSink::write_rows(self, table, &rows)
    }

    fn write_rows(&mut self, table: usize, rows: &[Vec<Cell>]) -> Result<(), Error> {
        SqliteSink::write_rows(self, table, rows)
    }

    fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        SqliteSink::drop_rows(self, tables, lines)
    }

    fn remove_keys(&mut self, replace_key: &[String], keys: Vec<Vec<Cell>>) -> Result<(), Error> {
        self.remove(replace_key, keys)
    }

    fn replaces(&self) -> bool {
        true
    }

    fn decides(&self) -> bool {
        true
    }

    fn prepare(&mut self, run: &RunRecord, _: bool) -> Result<(), Error> {
        if self.prepared {
            // Prepared once: ready for the commit unless that failed (which took the
            // connection of an update, or removed the database being built).
            let ready = match &self.mode {
                Mode::Fresh { tmp, .. } => tmp.is_file(),
                Mode::Update => self.conn.is_some(),
            };
            return if ready {
                Ok(())
            } else {
                Err(Error::Row {
                    table: String::new(),
                    column: String::new(),
                    message: "commit after a prepare that failed".into(),
                })
            };
        }
        let conn = self.conn.take().ok_or_else(|| Error::Row {
            table: String::new(),
            column: String::new(),
            message: "prepare after commit".into(),
        })?;
        self.prepared = true;
        let ready = std::thread::scope(|scope| {
            let Mode::Fresh { tmp, file } = &self.mode else {
                return self.ready(&conn, run);
            };
            // A new database's tables are written out first, and made durable on a thread of
            // their own while the indexes are built: the last sync then waits for the indexes'
            // pages only. (No thread to be had: the last sync does it all.)
            conn.execute_batch("COMMIT; BEGIN")
                .map_err(Error::sqlite(tmp))?;
            let early = std::thread::Builder::new()
                .name("claimline-sync".into())
                .spawn_scoped(scope, move || file.sync_data().map_err(Error::io(tmp)))
                .ok();
            let ready = claimline_fault::point("sqlite.indexes")
                .map_err(Error::io(tmp))
                .and_then(|()| self.ready(&conn, run));
            match early.map(|t| t.join()) {
                Some(Ok(Err(e))) => ready.and(Err(e)),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                Some(Ok(Ok(()))) | None => ready,
            }
        });
        let ready = ready.and_then(|()| match &self.mode {
            // The new database is complete and on disk under its temporary name; the rename is
            // the commit.
            Mode::Fresh { tmp, file } => {
                conn.execute_batch("COMMIT").map_err(Error::sqlite(tmp))?;
                // WAL from its first day, so that later loads commit while readers read
                // (switching a database in use to WAL needs it to have no reader at all).
                conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
                    .map_err(Error::sqlite(tmp))?;
                drop(conn);
                file.sync_all().map_err(Error::io(tmp))
            }
            // The merge is in the open transaction; its `COMMIT` is the commit.
            Mode::Update => {
                self.conn = Some(conn);
                Ok(())
            }
        });
        if ready.is_err()
            && let Mode::Fresh { tmp, .. } = &self.mode
        {
            // A database being built aside never stays behind (a full disk, say).
            let _ = std::fs::remove_file(tmp);
        }
        ready
    }

    fn commit(mut self: Box<Self>, run: &RunRecord) -> Result<(), Error> {
        self.prepare(run, false)?;
        let path = self.db_path().to_owned();
        // A commit that fails leaves the database built aside to the drop, which removes it, and
        // an update's transaction to roll back.
        match &self.mode {
            Mode::Fresh { tmp, .. } => {
                std::fs::rename(tmp, &self.path).map_err(Error::io(&self.path))?;
                self.committed = true;
                // (It was made private when it was made; the rename keeps that.)
                make_private(&self.path).map_err(Error::io(&self.path))
            }
            Mode::Update => {
                let conn = self.conn.take().ok_or_else(|| Error::Row {
                    table: String::new(),
                    column: String::new(),
                    message: "commit without a connection".into(),
                })?;
                conn.execute_batch("COMMIT").map_err(Error::sqlite(&path))?;
                self.committed = true;
                // The WAL emptied once its pages are in the file: the load's read connection
                // closes after this one and, read-only, cannot, which left a WAL the size of the
                // run's changes beside the database. (Committed already: a reader of another
                // process that keeps the checkpoint from finishing only leaves the WAL as it was.)
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                Ok(())
            }
        }
    }
}

impl SqliteSink {
    /// The commit's work before its commit point, in the open transaction on `conn` (taken
    /// from the sink): an update's merge, or a new database's indexes; the views of exact
    /// amounts; the run's record.
    fn ready(&self, conn: &Connection, run: &RunRecord) -> Result<(), Error> {
        let path = self.db_path().to_owned();
        let exec = |sql: &str| conn.execute_batch(sql).map_err(Error::sqlite(&path));
        exec(RUNS_TABLE)?;
        if let Mode::Update = self.mode {
            // Replace every key present in this run, across all tables sharing its key columns.
            let table = |name: &str| format!("main.{}", quote(name));
            let temp = |name: &str| format!("temp.{}", quote(name));
            let newer = newer();
            let dialect = crate::merge::Dialect {
                table: &table,
                stage: &stage,
                column: &quote,
                temp: &temp,
                create_temp: "CREATE TEMP TABLE {} AS",
                same: "IS",
                newer: &newer,
                first_param: "?1",
            };
            let (groups, inserts) = crate::merge::statements(&self.schemas, &dialect);
            for g in &groups {
                for sql in &g.prepare {
                    exec(sql)?;
                }
                if let Some(removed) = self.removals.get(g.key) {
                    let marks = vec!["?"; g.key.len()].join(",");
                    let mut stmt = conn
                        .prepare(&format!("INSERT INTO {} VALUES ({marks})", g.keys_table))
                        .map_err(Error::sqlite(&path))?;
                    for k in removed {
                        stmt.execute(rusqlite::params_from_iter(k))
                            .map_err(Error::sqlite(&path))?;
                    }
                }
                for sql in &g.apply {
                    exec(sql)?;
                }
            }
            // A run id loaded again: its earlier rows leave the tables only appended to.
            let again: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM _claimline_runs WHERE run_id = ?1)",
                    [&run.run_id],
                    |r| r.get(0),
                )
                .map_err(Error::sqlite(&path))?;
            if again {
                for sql in crate::merge::reload_statements(&self.schemas, &dialect) {
                    conn.execute(&sql, [&run.run_id])
                        .map_err(Error::sqlite(&path))?;
                }
            }
            for sql in &inserts {
                exec(sql)?;
            }
        } else {
            for s in &self.schemas {
                create_indexes(conn, &path, s)?;
            }
        }
        for schema in &self.schemas {
            exact_money_view(conn, &path, schema)?;
        }
        let record = serde_json::to_string(run).map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        conn.execute(
            "INSERT OR REPLACE INTO _claimline_runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![
                run.run_id,
                run.started,
                run.finished,
                run.views_hash,
                run.transaction_time,
                run.rejects as i64,
                run.row_errors as i64,
                record
            ],
        )
        .map_err(Error::sqlite(&path))?;
        Ok(())
    }
}

impl Drop for SqliteSink {
    fn drop(&mut self) {
        // Not committed: the open transaction rolls back when the connection closes, and a
        // database being built aside (prepared or not) is removed.
        if !self.committed {
            drop(self.conn.take());
            if let Mode::Fresh { tmp, .. } = &self.mode {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimline_model::Column;

    /// Row spans held past their memory wait in a file: each take gives the ranges, and leaves
    /// the spans, that the spans all held in memory give (rows of one line written in several
    /// runs of rowids, lines of two files, a line taken twice, rows with no line noted).
    #[test]
    fn spans_waiting_on_disk_give_the_ranges_of_spans_held() {
        let schema = TableSchema::new(
            "t",
            vec![
                Column::new("v", ColumnType::Integer),
                Column::new("_source_file", ColumnType::Text),
                Column::new("_line", ColumnType::Integer),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("claimline.sqlite");
        let take = |hold: usize| {
            let mut w = Written::new(&schema, &database).expect("lineage");
            w.hold = hold;
            let mut rowid = 0;
            for line in 0..500i64 {
                let file = if line % 3 == 0 {
                    "a.ndjson"
                } else {
                    "b.ndjson"
                };
                for k in 0..(line % 4) {
                    rowid += 1 + i64::from(k == 2 && line % 5 == 0);
                    let row = vec![Cell::Int(rowid), Cell::text(file), Cell::Int(line)];
                    w.note(&row, rowid).expect("note");
                }
                w.note(&[Cell::Int(0), Cell::Null, Cell::Null], rowid + 1)
                    .expect("no line");
            }
            let first = SourceLines::from([
                ("a.ndjson".to_owned(), (0..500).step_by(7).collect()),
                ("b.ndjson".to_owned(), (0..500).step_by(11).collect()),
            ]);
            let again = SourceLines::from([
                ("a.ndjson".to_owned(), (0..500).step_by(2).collect()),
                ("c.ndjson".to_owned(), (0..500).collect()),
            ]);
            let ranges = [
                w.take(&first).expect("take"),
                w.take(&again).expect("again"),
            ];
            let spilled = w.earlier.as_ref().map_or(0, |(_, n)| *n);
            (ranges, w.spans.len() as u64 + spilled, spilled > 0)
        };
        let (held, left, _) = take(usize::MAX);
        assert!(held[0].len() > 30 && held[1].len() > 30, "{held:?}");
        for hold in [1, 3, 64] {
            let (ranges, left_too, spilled) = take(hold);
            assert!(spilled, "{hold}");
            assert_eq!(ranges, held, "{hold}");
            assert_eq!(left_too, left, "{hold}");
        }
    }

    /// A cell of the wrong type is refused naming the table, the column and the kind of cell,
    /// never its value (claims data is PHI).
    #[test]
    fn a_wrong_cell_is_named_by_its_kind_not_its_value() {
        let schema = TableSchema::new("cclf1", vec![Column::new("CLM_FROM_DT", ColumnType::Date)]);
        let mut scratch = String::new();
        match to_sql(&schema, 0, &Cell::text("1EG4TE5MK73"), &mut scratch) {
            Err(Error::Row {
                table,
                column,
                message,
            }) => {
                assert_eq!((table.as_str(), column.as_str()), ("cclf1", "CLM_FROM_DT"));
                assert_eq!(message, "a text cell in a Date column");
            }
            other => panic!("expected a row error, got {:?}", other.map(|_| ())),
        }
    }

    fn claim_tables() -> Vec<TableSchema> {
        let key = vec!["_api_version".to_owned(), "_claim_key".to_owned()];
        let header = TableSchema {
            replace_key: key.clone(),
            indexes: vec!["_claim_key".into()],
            ..TableSchema::new(
                "header",
                vec![
                    Column::new("_api_version", ColumnType::Code),
                    Column::new("_claim_key", ColumnType::Code),
                    Column::new(
                        "amount",
                        ColumnType::Decimal {
                            precision: 13,
                            scale: 2,
                        },
                    ),
                ],
            )
        };
        let line = TableSchema {
            replace_key: key,
            ..TableSchema::new(
                "line",
                vec![
                    Column::new("_api_version", ColumnType::Code),
                    Column::new("_claim_key", ColumnType::Code),
                    Column::new("line_num", ColumnType::Integer),
                ],
            )
        };
        vec![header, line]
    }

    fn t(s: &str) -> Cell {
        Cell::text(s)
    }

    fn count(db: &Path, sql: &str) -> i64 {
        Connection::open(db)
            .expect("open")
            .query_row(sql, [], |r| r.get(0))
            .expect("query")
    }

    #[test]
    fn instants_are_compared_to_the_microsecond() {
        let conn = Connection::open_in_memory().expect("open");
        let micros = |text: Option<&str>| -> Option<i64> {
            conn.query_row(&format!("SELECT {}", instant_micros("?1")), [text], |r| {
                r.get(0)
            })
            .expect("query")
        };
        for us in [
            0,
            1,
            2,
            500_000,
            123_456,
            1_767_225_600_000_000,
            1_767_225_600_000_001,
            1_767_225_600_999_999,
            1_767_225_600_100_000,
        ] {
            let text = claimline_model::format_timestamp(us);
            assert_eq!(micros(Some(&text)), Some(us), "{text}");
        }
        assert_eq!(micros(None), None);
    }

    #[test]
    fn a_new_claim_version_replaces_all_its_rows_in_every_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(
            0,
            vec![
                vec![t("v2"), t("c1"), Cell::Decimal(123_450)],
                vec![t("v2"), t("c2"), Cell::Null],
            ],
        )
        .expect("write");
        s.write(
            1,
            (1..=3)
                .map(|n| vec![t("v2"), t("c1"), Cell::Int(n)])
                .collect(),
        )
        .expect("write");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        assert_eq!(count(&db, "SELECT count(*) FROM line"), 3);
        let amount: f64 = Connection::open(&db)
            .expect("open")
            .query_row("SELECT amount FROM header WHERE _claim_key='c1'", [], |r| {
                r.get(0)
            })
            .expect("query");
        assert_eq!(amount, 1234.5);
        // A new database has 16 KiB pages (fewer, larger writes at commit).
        assert_eq!(count(&db, "PRAGMA page_size"), 16384);

        // Second run: c1 comes back with one line only; c2 is untouched.
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(0, vec![vec![t("v2"), t("c1"), Cell::Decimal(100)]])
            .expect("write");
        s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
            .expect("write");
        Box::new(s).commit(&RunRecord::new("r2")).expect("commit");
        assert_eq!(count(&db, "SELECT count(*) FROM line"), 1);
        assert_eq!(count(&db, "SELECT count(*) FROM header"), 2);
        assert_eq!(count(&db, "SELECT count(*) FROM _claimline_runs"), 2);
        // An update keeps the page size the database was made with.
        assert_eq!(count(&db, "PRAGMA page_size"), 16384);
    }

    #[test]
    fn a_run_id_loaded_again_replaces_its_rows_in_tables_only_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        // A table with no replace key, as `_claimline_claims` is: each run appends its rows.
        let events = TableSchema::new(
            "events",
            vec![
                Column::new("_claim_key", ColumnType::Code),
                Column::new("_run_id", ColumnType::Code),
            ],
        );
        let mut schemas = claim_tables();
        schemas.push(events);
        let mut loads = 0;
        let mut load = |run: &str, keys: &[&str]| {
            let mut s = SqliteSink::open(&db, &schemas).expect("open");
            let rows = keys.iter().map(|k| vec![t(k), t(run)]).collect();
            s.write(2, rows).expect("write");
            let header = keys.iter().map(|k| vec![t("v2"), t(k), Cell::Null]);
            s.write(0, header.collect()).expect("write");
            // Each load starts at its own time, as a run id loaded again does.
            loads += 1;
            let record = RunRecord {
                started: format!("2026-12-05T0{loads}:00:00Z"),
                ..RunRecord::new(run)
            };
            Box::new(s).commit(&record).expect("commit");
        };
        let events_of = |run: &str| {
            count(
                &db,
                &format!("SELECT count(*) FROM events WHERE _run_id = '{run}'"),
            )
        };
        load("r1", &["c1", "c2"]);
        load("r1", &["c1", "c2"]);
        assert_eq!(
            events_of("r1"),
            2,
            "the same run loaded twice holds its rows once"
        );
        load("r2", &["c3"]);
        assert_eq!(events_of("r1"), 2, "another run appends");
        assert_eq!(events_of("r2"), 1);
        // A run id loaded again with other rows: they replace its earlier ones, as Parquet
        // replaces the run's partition; other runs' rows stay.
        load("r1", &["c4"]);
        assert_eq!(events_of("r1"), 1);
        assert_eq!(
            count(&db, "SELECT count(*) FROM events WHERE _claim_key = 'c4'"),
            1
        );
        assert_eq!(events_of("r2"), 1);
        // Tables with a replace key merge by key, as before: c1 and c2 stay.
        assert_eq!(count(&db, "SELECT count(*) FROM header"), 4);
        assert_eq!(count(&db, "SELECT count(*) FROM _claimline_runs"), 2);
    }

    #[test]
    fn removed_keys_go_from_every_table_sharing_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(
            0,
            vec![
                vec![t("v2"), t("c1"), Cell::Null],
                vec![t("v2"), t("c2"), Cell::Null],
            ],
        )
        .expect("write");
        s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
            .expect("write");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let key = claim_tables()[0].replace_key.clone();
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        assert!(
            s.remove(&key, vec![vec![t("v2")]]).is_err(),
            "a key of the wrong width"
        );
        s.remove(&key, vec![vec![t("v2"), t("c1")]])
            .expect("remove");
        Box::new(s).commit(&RunRecord::new("r2")).expect("commit");
        assert_eq!(
            count(&db, "SELECT count(*) FROM header WHERE _claim_key = 'c1'"),
            0
        );
        assert_eq!(count(&db, "SELECT count(*) FROM line"), 0);
        assert_eq!(count(&db, "SELECT count(*) FROM header"), 1);
    }

    #[test]
    fn an_abandoned_run_leaves_the_database_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        // A fresh build that is dropped leaves nothing.
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
            .expect("write");
        drop(s);
        assert!(!db.exists());
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
        // So does one prepared (its file complete and synced under a temporary name) and not
        // committed; nothing can be written after the prepare.
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
            .expect("write");
        s.prepare(&RunRecord::new("r0"), false).expect("prepare");
        assert!(
            s.write(1, vec![vec![t("v2"), t("c2"), Cell::Int(1)]])
                .is_err()
        );
        assert!(!db.exists());
        drop(s);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);

        let s = SqliteSink::open(&db, &claim_tables()).expect("open");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
            .expect("write");
        drop(s);
        assert_eq!(count(&db, "SELECT count(*) FROM line"), 0);
        assert_eq!(count(&db, "SELECT count(*) FROM _claimline_runs"), 1);
        // An update prepared (merged in its open transaction) and dropped rolls back; one
        // prepared and committed holds its rows.
        for commit in [false, true] {
            let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
            s.write(1, vec![vec![t("v2"), t("c1"), Cell::Int(1)]])
                .expect("write");
            s.prepare(&RunRecord::new("r2"), false).expect("prepare");
            if commit {
                Box::new(s).commit(&RunRecord::new("r2")).expect("commit");
            } else {
                drop(s);
            }
            let n = i64::from(commit);
            assert_eq!(count(&db, "SELECT count(*) FROM line"), n);
            assert_eq!(count(&db, "SELECT count(*) FROM _claimline_runs"), 1 + n);
        }
    }

    #[test]
    fn changed_columns_are_refused_and_wrong_cells_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let s = SqliteSink::open(&db, &claim_tables()).expect("open");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let mut other = claim_tables();
        other[1]
            .columns
            .push(Column::new("extra", ColumnType::Text));
        let err = SqliteSink::open(&db, &other).err().expect("refused");
        assert!(matches!(err, Error::SchemaChanged { .. }), "{err}");
        let mut s = SqliteSink::open(&db, &claim_tables()).expect("open");
        let err = s
            .write(1, vec![vec![t("v2"), t("c1"), t("one")]])
            .expect_err("bad cell");
        assert!(err.to_string().contains("line_num"), "{err}");
    }

    #[test]
    fn codes_keep_leading_zeros_and_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let schema = TableSchema::new("c", vec![Column::new("code", ColumnType::Code)]);
        let mut s = SqliteSink::open(&db, std::slice::from_ref(&schema)).expect("open");
        s.write(0, vec![vec![t("0012")], vec![t("12.0")]])
            .expect("write");
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let conn = Connection::open(&db).expect("open");
        let codes: Vec<String> = conn
            .prepare("SELECT code FROM c")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(codes, ["0012", "12.0"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&db).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    /// A column that has held no value yet goes in as a NULL of the statement, and a date or
    /// instant repeated from the row before keeps the binding it had: each value is the one
    /// written, write after write, whichever columns are NULL in which write; and the rows'
    /// places (`_source_file`, `_line`) still name the rowids the claim history drops by.
    #[test]
    fn nulls_and_repeated_dates_go_in_as_their_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let schema = TableSchema::new(
            "c",
            vec![
                Column::new("id", ColumnType::Text),
                Column::new("from_dt", ColumnType::Date),
                Column::new("thru_dt", ColumnType::Date),
                Column::new("updated", ColumnType::Timestamp),
                Column::new("n", ColumnType::Integer),
                Column::new("_source_file", ColumnType::Text),
                Column::new("_line", ColumnType::Integer),
            ],
        );
        let mut s = SqliteSink::open(&db, std::slice::from_ref(&schema)).expect("open");
        let (d1, d2) = (Cell::Date(20_000), Cell::Date(20_001));
        // An instant of the same number as a date: each column's text is its own.
        let (t1, t2) = (
            Cell::Timestamp(1_767_225_600_000_000),
            Cell::Timestamp(20_000),
        );
        let at = |line: i64| [t("f.ndjson"), Cell::Int(line)];
        let row = |cells: [Cell; 5], line: i64| -> Vec<Cell> {
            cells.into_iter().chain(at(line)).collect()
        };
        let null = || Cell::Null;
        let writes = vec![
            // `n` NULL in every row, `thru_dt` in all but one.
            vec![
                row([t("a"), d1.clone(), null(), t1.clone(), null()], 1),
                row([t("b"), d1.clone(), d1.clone(), t1.clone(), null()], 2),
                row([t("c"), d2.clone(), null(), t2.clone(), null()], 3),
            ],
            // Now `id` and `updated` NULL in every row, `n` held.
            vec![
                row([null(), d2.clone(), d2.clone(), null(), Cell::Int(7)], 4),
                row([null(), d1.clone(), d2.clone(), null(), null()], 5),
            ],
            // Every column but the place NULL.
            vec![row([null(), null(), null(), null(), null()], 6)],
            // Back to the first write's NULLs, the dates and instants of its rows again.
            vec![
                row([t("d"), d2.clone(), null(), t2.clone(), null()], 7),
                row([t("e"), d1.clone(), null(), t1.clone(), null()], 8),
            ],
        ];
        let mut expected: Vec<Vec<Option<String>>> = Vec::new();
        for rows in writes {
            expected.extend(texts_of(&rows));
            s.write(0, rows).expect("write");
        }
        // The claim history drops lines 3 and 6 by the rowids noted as they went in.
        let lines: SourceLines = [("f.ndjson".to_owned(), [3, 6].into_iter().collect())]
            .into_iter()
            .collect();
        assert_eq!(s.drop_rows(&[0], &lines).expect("drop"), [2]);
        expected.retain(|r| !matches!(r[6].as_deref(), Some("3" | "6")));
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let got = texts_in(
            &db,
            "SELECT id, from_dt, thru_dt, updated, CAST(n AS TEXT), _source_file, \
             CAST(_line AS TEXT) FROM c ORDER BY rowid",
        );
        assert_eq!(got, expected);
        assert_eq!(expected[1][2].as_deref(), Some("2024-10-04"));
        assert_eq!(got.len(), 6);
    }

    /// Rows whose cells repeat the row above's (a parameter keeps its binding) and differ from
    /// it, NULLs that come and go, and a second write whose first row is the first's last (the
    /// statement comes back from the cache with its bindings cleared): every row goes in as it is.
    #[test]
    fn cells_equal_to_the_row_above_go_in_as_their_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("claimline.sqlite");
        let schema = TableSchema::new(
            "r",
            vec![
                Column::new("a", ColumnType::Text),
                Column::new("b", ColumnType::Text),
                Column::new("c", ColumnType::Text),
                Column::new("n", ColumnType::Integer),
                Column::new("d", ColumnType::Date),
            ],
        );
        let mut s = SqliteSink::open(&db, std::slice::from_ref(&schema)).expect("open");
        let long = "a text longer than the twenty-four bytes held inline";
        let row = |a: Option<&str>, b: Option<&str>, n: Option<i64>, d: Option<i32>| {
            vec![
                a.map_or(Cell::Null, Cell::text),
                b.map_or(Cell::Null, Cell::text),
                n.map_or(Cell::Null, Cell::Int),
                d.map_or(Cell::Null, Cell::Date),
            ]
        };
        let first = vec![
            row(Some("x"), Some(long), Some(1), Some(20_000)),
            row(Some("x"), Some(long), Some(2), Some(20_000)),
            row(Some("x"), None, Some(2), Some(20_001)),
            row(Some("y"), None, None, Some(20_001)),
            row(Some("y"), Some(long), None, None),
            row(Some("x"), Some("short"), Some(3), Some(20_000)),
        ];
        let second = vec![
            first[5].clone(),
            first[5].clone(),
            row(None, Some("short"), Some(3), Some(20_000)),
            row(Some("x"), Some("short"), Some(3), None),
        ];
        // `c` is NULL in every row of the first two writes (a NULL of the statement) and holds a
        // value from the third on: the parameters after it move up by one.
        let third = vec![
            row(Some("x"), Some("short"), Some(3), None),
            row(Some("x"), Some("short"), Some(4), Some(20_001)),
            row(Some("z"), Some("short"), Some(4), Some(20_001)),
        ];
        let fourth = vec![row(Some("z"), Some("short"), Some(4), Some(20_001))];
        let with_c = |rows: &[Vec<Cell>], c: &[Option<&str>]| -> Vec<Vec<Cell>> {
            rows.iter()
                .zip(c)
                .map(|(r, c)| {
                    let mut r = r.clone();
                    r.insert(2, c.map_or(Cell::Null, Cell::text));
                    r
                })
                .collect()
        };
        let first = with_c(&first, &[None; 6]);
        let second = with_c(&second, &[None; 4]);
        let third = with_c(&third, &[None, Some("c1"), Some("c1")]);
        let fourth = with_c(&fourth, &[Some("c2")]);
        let mut expected: Vec<Vec<Option<String>>> = Vec::new();
        for rows in [first, second, third, fourth] {
            expected.extend(texts_of(&rows));
            s.write(0, rows).expect("write");
        }
        Box::new(s).commit(&RunRecord::new("r1")).expect("commit");
        let got = texts_in(
            &db,
            "SELECT a, b, c, CAST(n AS TEXT), d FROM r ORDER BY rowid",
        );
        assert_eq!(got, expected);
        assert_eq!(expected[0][4].as_deref(), Some("2024-10-04"));
    }

    /// Each cell of `rows` as the text SQLite holds of it (`None`: NULL).
    fn texts_of(rows: &[Vec<Cell>]) -> Vec<Vec<Option<String>>> {
        let text = |c: &Cell| match c {
            Cell::Null => None,
            Cell::Text(s) => Some(s.to_string()),
            Cell::Int(n) => Some(n.to_string()),
            Cell::Date(d) => {
                let mut out = String::new();
                push_date(&mut out, *d);
                Some(out)
            }
            Cell::Timestamp(t) => Some(claimline_model::format_timestamp(*t)),
            other => panic!("{other:?}"),
        };
        rows.iter().map(|r| r.iter().map(text).collect()).collect()
    }

    /// The rows `sql` reads from the database at `db`, every column as text.
    fn texts_in(db: &std::path::Path, sql: &str) -> Vec<Vec<Option<String>>> {
        let conn = Connection::open(db).expect("open");
        let mut stmt = conn.prepare(sql).expect("prepare");
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}
