//! A run at a glance: one self-contained HTML file from an output folder's tables and run
//! records.
//!
//! After a weekly run an ACO's engineer wants to know whether the volume looked normal, which
//! claim types and months arrived, how much was paid, what was rejected and why, and what
//! changed since last week. [`build`] gathers that from the output folder's SQLite tables (the
//! current rows), its run records, the run's rejects files and the command's saved JSON report
//! (`DIR/reports/<run_id>.json`, written by [`save_details`]); [`render`] turns it into HTML
//! with inline SVG charts and inline styles: no script, no network access, and no PHI (only
//! aggregates: counts, amounts, months, table, column and file names; never an MBI, a resource
//! id or a value). [`write()`] does both into `DIR/reports/<run_id>.html`.
//!
//! ```
//! use claimline_load::{Loader, NoProgress};
//!
//! let out = tempfile::tempdir()?;
//! let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
//! let loaded = Loader::new(out.path()).all_versions(true).load(&[samples], &NoProgress)?;
//! let page = claimline_report::write(out.path(), None)?;
//! let html = std::fs::read_to_string(&page)?;
//! assert!(html.contains(&loaded.run_id) && html.contains("<svg"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use claimline_model::RunRecord;
use serde::Serialize;

mod html;

pub use html::render;

/// What can stop a report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The output folder has no SQLite tables, or not the run asked for.
    #[error("{0}")]
    Usage(String),
    /// Reading the tables (or planning the built-in views) failed.
    #[error(transparent)]
    Load(#[from] claimline_load::LoadError),
    /// The database could not be read.
    #[error(transparent)]
    Sink(#[from] claimline_sink::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ReportError {
    /// The file the error is about, when it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ReportError::Io { path, .. } => Some(path),
            ReportError::Load(e) => e.path(),
            ReportError::Sink(e) => e.path(),
            ReportError::Usage(_) => None,
        }
    }
}

/// A run's saved command report (`reports/<run>.json`): `None` when its command saved none; one
/// that is there but cannot be read stops the report, naming it (the page would otherwise be
/// written again without what it held).
fn read_details(path: &Path) -> Result<Option<serde_json::Value>, ReportError> {
    let Some(bytes) = claimline_model::read_present(path).map_err(io(path))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        ReportError::Sink(claimline_sink::Error::Corrupt {
            path: path.to_owned(),
            message: format!(
                "not a run's report ({})",
                claimline_model::without_values(&e.to_string())
            ),
        })
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> ReportError + '_ {
    move |e| ReportError::Sink(claimline_sink::Error::sqlite(path)(e))
}

/// Current claims and their paid amount for one claim type and month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthRow {
    /// `CLM_TYPE_CD` (empty: Part D from v1/v2).
    pub claim_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Current claims.
    pub claims: u64,
    /// Their paid amount, in cents.
    pub paid_cents: i64,
}

/// A count of rejects or row errors of one kind in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The kind (`invalid_json`, …) or `table.column: reason`.
    pub what: String,
    /// The file they are in.
    pub file: String,
    /// How many.
    pub count: u64,
}

/// The crosswalk's coverage of one CCLF table over its current rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// `cclf1` …
    pub table: String,
    /// Current rows.
    pub rows: u64,
    /// CCLF columns.
    pub columns: usize,
    /// Columns the views map (not NULL by design).
    pub mapped: usize,
    /// Share of non-NULL values over the mapped columns' cells (0–1).
    pub filled: f64,
    /// Mapped columns NULL in every current row.
    pub empty: Vec<String>,
}

/// One claim type this run and the run before (from `_claimline_counts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// The eob-type code (`CARRIER`, …).
    pub claim_type: String,
    /// Claims the previous run loaded.
    pub previous_claims: u64,
    /// Claims this run loaded.
    pub claims: u64,
    /// Their `payment.amount`, previous run, in cents.
    pub previous_paid_cents: i64,
    /// This run, in cents.
    pub paid_cents: i64,
}

/// What the run recorded in `_claimline_claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Events {
    /// Claim groups (v1/v2; v3 claims) whose first version this run recorded.
    pub new_claims: u64,
    /// Versions of claims earlier runs already held.
    pub new_versions: u64,
    /// Cancels.
    pub cancels: u64,
}

/// Everything a report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The output folder.
    pub out: PathBuf,
    /// The run reported on.
    pub run: RunRecord,
    /// The run before it, if any.
    pub previous: Option<RunRecord>,
    /// Up to 12 runs ending with this one, oldest first.
    pub runs: Vec<RunRecord>,
    /// The command's JSON report of the run, when it was saved ([`save_details`]).
    pub details: Option<serde_json::Value>,
    /// Current claims per claim type and month (every run's, the claim-history rule applied).
    pub months: Vec<MonthRow>,
    /// Rejected lines of the run by kind and file.
    pub rejects: Vec<Count>,
    /// Row errors of the run by table, column, reason and file.
    pub row_errors: Vec<Count>,
    /// Per CCLF table, the crosswalk's coverage.
    pub coverage: Vec<Coverage>,
    /// Per claim type, this run against the previous one.
    pub movement: Vec<Movement>,
    /// Beneficiaries the output knows (distinct `BENE_ID` in `bene_xref`).
    pub beneficiaries: u64,
    /// Beneficiaries new since the previous run (from both runs' saved reports).
    pub beneficiaries_added: Option<i64>,
    /// The run's claim events, when the output records them.
    pub events: Option<Events>,
}

/// Where a run's report and saved details go: `DIR/reports/<run_id>.html` and `.json`.
pub fn report_path(out: &Path, run_id: &str, extension: &str) -> PathBuf {
    out.join("reports").join(format!("{run_id}.{extension}"))
}

/// Saves the command's JSON report of run `run_id` (a `LoadReport` or a `RunReport`) beside
/// its HTML report, so a later `claimline report --run` shows the history and beneficiary
/// figures too. Owner-only.
///
/// # Errors
/// [`ReportError::Io`].
pub fn save_details(
    out: &Path,
    run_id: &str,
    details: &serde_json::Value,
) -> Result<PathBuf, ReportError> {
    let dir = out.join("reports");
    claimline_model::create_private_dir(&dir).map_err(io(&dir))?;
    let path = report_path(out, run_id, "json");
    let text = serde_json::to_vec_pretty(details).map_err(|e| ReportError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    claimline_model::write_atomic(&path, &text).map_err(io(&path))?;
    Ok(path)
}

/// Builds the report of run `run` (default: the last) of the output folder `out`.
///
/// # Errors
/// [`ReportError::Usage`] when `out` has no `claimline.sqlite` or no such run; the others when
/// a file cannot be read.
pub fn build(out: &Path, run: Option<&str>) -> Result<Report, ReportError> {
    let db_path = out.join("claimline.sqlite");
    if !claimline_sink::database_present(&db_path).map_err(ReportError::Sink)? {
        return Err(ReportError::Usage(format!(
            "{} has no claimline.sqlite: the report reads the SQLite tables (load with --format sqlite or both)",
            out.display()
        )));
    }
    let before = file_identity(&db_path);
    let conn = claimline_sink::open_earlier(&db_path)?;
    let wal = read_transaction(&conn, &db_path)?;
    let all_runs = claimline_sink::read_sqlite_runs(&conn, &db_path)?;
    let at = match run {
        Some(id) => all_runs
            .iter()
            .position(|r| r.run_id == id)
            .ok_or_else(|| {
                ReportError::Usage(format!("{} holds no run {id}", db_path.display()))
            })?,
        None => all_runs
            .len()
            .checked_sub(1)
            .ok_or_else(|| ReportError::Usage(format!("{} holds no run", db_path.display())))?,
    };
    let this = all_runs[at].clone();
    let previous = at.checked_sub(1).map(|i| all_runs[i].clone());
    let runs = all_runs[at.saturating_sub(11)..=at].to_vec();
    let details_path = report_path(out, &this.run_id, "json");
    let details = read_details(&details_path)?;
    let tables = existing_tables(&conn, &db_path)?;
    let has_claims = ["cclf1", "cclf5", "cclf6", "cclf7"]
        .iter()
        .all(|t| tables.contains_key(*t));
    // The months' table (reconcile's query over every claim line, the longest part of the
    // report) runs on a second connection in parallel with the report's other queries, when
    // that one reads the same state of the tables and a thread can be had; else after them,
    // on this one.
    let second = if has_claims && wal {
        same_state(&db_path, before, &all_runs)
    } else {
        None
    };
    let (months, report) = std::thread::scope(|s| {
        let path = db_path.as_path();
        let side = second.and_then(|c| {
            std::thread::Builder::new()
                .name("claimline-report".into())
                .spawn_scoped(s, move || months_of(&c, path))
                .ok()
        });
        let report = without_months(out, &conn, &db_path, &tables, this, previous, runs, details);
        let months = match side {
            Some(side) => side
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None if has_claims => months_of(&conn, &db_path),
            None => Ok(Vec::new()),
        };
        (months, report)
    });
    // A failure of the months' table is reported first, as when it was read first.
    let months = months?;
    Ok(Report { months, ..report? })
}

/// Builds the report of run `run` (default: the last) and writes it to
/// `DIR/reports/<run_id>.html` (owner-only, replaced atomically); returns the path.
///
/// # Errors
/// As [`build`]; [`ReportError::Io`] when the file cannot be written.
pub fn write(out: &Path, run: Option<&str>) -> Result<PathBuf, ReportError> {
    let report = build(out, run)?;
    let dir = out.join("reports");
    claimline_model::create_private_dir(&dir).map_err(io(&dir))?;
    let path = report_path(out, &report.run.run_id, "html");
    claimline_model::write_atomic(&path, render(&report).as_bytes()).map_err(io(&path))?;
    Ok(path)
}

/// The database file at `path` the report reads: its device and inode (`reload`'s swap, or a
/// file replaced by hand, puts another file there). `None` where the platform does not say.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Opens a read transaction on `conn` when its database is in WAL mode (every database a load
/// has opened since WAL became the default), and says whether it did. Every query of the
/// connection then sees one state of the tables; a load commits meanwhile without waiting
/// (its checkpoint after the commit waits for the transaction to end). A database with a
/// rollback journal is read statement by statement, as before: a transaction held for the
/// whole report would make a load's commit wait for it.
///
/// # Errors
/// The journal mode cannot be read, or the transaction not begun.
fn read_transaction(conn: &rusqlite::Connection, path: &Path) -> Result<bool, ReportError> {
    let wal = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .map_err(sqlite(path))?
        .eq_ignore_ascii_case("wal");
    if wal {
        conn.execute_batch("BEGIN").map_err(sqlite(path))?;
    }
    Ok(wal)
}

/// A second read connection to the database at `path`, in a read transaction, when it reads
/// the state the report's first one does: the same file as `before` the first was opened
/// (known on Unix only; `reload`'s swap, or a file replaced by hand, changes it), and the same
/// run records (every commit of a load records its run). `None` otherwise, and when it cannot
/// be opened or read (once open, it never waits for a lock): it only speeds the report up,
/// which then reads everything on its first connection.
fn same_state(
    path: &Path,
    before: Option<(u64, u64)>,
    runs: &[RunRecord],
) -> Option<rusqlite::Connection> {
    before?;
    let conn = claimline_sink::open_earlier(path).ok()?;
    conn.busy_timeout(std::time::Duration::ZERO).ok()?;
    conn.execute_batch("BEGIN").ok()?;
    let same_runs = claimline_sink::read_sqlite_runs(&conn, path).ok()? == runs;
    (same_runs && file_identity(path) == before).then_some(conn)
}

/// The months' table: BCDA's claims and paid amounts per claim type and month
/// ([`claimline_load::cclf::reconcile_in`] of the newest API version).
///
/// # Errors
/// The tables cannot be read.
fn months_of(conn: &rusqlite::Connection, path: &Path) -> Result<Vec<MonthRow>, ReportError> {
    Ok(claimline_load::cclf::reconcile_in(conn, path, None)?
        .rows
        .into_iter()
        .map(|r| MonthRow {
            claim_type: r.claim_type,
            month: r.month,
            claims: r.bcda_claims,
            paid_cents: r.bcda_paid_cents,
        })
        .filter(|r| r.claims > 0)
        .collect())
}

/// The report of run `this` without its months' table (empty: [`months_of`] fills it), read
/// on `conn`.
///
/// # Errors
/// A table or file cannot be read.
#[allow(
    clippy::too_many_arguments,
    reason = "the parts of `build`'s state the report takes; the months' table is read beside it"
)]
fn without_months(
    out: &Path,
    conn: &rusqlite::Connection,
    db_path: &Path,
    tables: &BTreeMap<String, Vec<String>>,
    this: RunRecord,
    previous: Option<RunRecord>,
    runs: Vec<RunRecord>,
    details: Option<serde_json::Value>,
) -> Result<Report, ReportError> {
    let rejects_dir = out.join("rejects");
    let rejects = count_lines(&rejects_dir.join(format!("{}.ndjson", this.run_id)), |v| {
        str_of(v, "kind")
    })?;
    let row_errors = count_lines(
        &rejects_dir.join(format!("{}-row-errors.ndjson", this.run_id)),
        |v| {
            format!(
                "{}.{}: {}",
                str_of(v, "table"),
                str_of(v, "column"),
                str_of(v, "error")
            )
        },
    )?;
    let coverage = coverage(conn, db_path, tables)?;
    let movement = movement(conn, db_path, tables, &this, previous.as_ref())?;
    let beneficiaries = if tables.contains_key("bene_xref") {
        conn.query_row("SELECT count(DISTINCT BENE_ID) FROM bene_xref", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(sqlite(db_path))? as u64
    } else {
        0
    };
    let known = |details: &Option<serde_json::Value>| -> Option<i64> {
        let d = details.as_ref()?;
        let b = d
            .get("load")
            .and_then(|l| l.get("beneficiaries"))
            .or_else(|| d.get("beneficiaries"))?;
        b.get("known")?.as_i64()
    };
    let beneficiaries_added = match &previous {
        None => known(&details),
        Some(p) => {
            let before = read_details(&report_path(out, &p.run_id, "json"))?;
            known(&details).zip(known(&before)).map(|(a, b)| a - b)
        }
    };
    let events = if tables.contains_key(claimline_link::CLAIMS_TABLE) {
        Some(
            conn.query_row(
                "SELECT
                   count(*) FILTER (WHERE c._action = 'version' AND NOT EXISTS (
                     SELECT 1 FROM _claimline_claims e WHERE e._claim_key = c._claim_key
                       AND e._api_version IS c._api_version AND e._run_id < c._run_id)),
                   count(*) FILTER (WHERE c._action = 'version'),
                   count(*) FILTER (WHERE c._action = 'cancel')
                 FROM _claimline_claims c WHERE c._run_id = ?1",
                [&this.run_id],
                |r| {
                    let (new, versions, cancels): (i64, i64, i64) =
                        (r.get(0)?, r.get(1)?, r.get(2)?);
                    Ok(Events {
                        new_claims: new as u64,
                        new_versions: (versions - new) as u64,
                        cancels: cancels as u64,
                    })
                },
            )
            .map_err(sqlite(db_path))?,
        )
    } else {
        None
    };
    Ok(Report {
        beneficiaries_added,
        events,
        out: out.to_owned(),
        run: this,
        previous,
        runs,
        details,
        months: Vec::new(),
        rejects,
        row_errors,
        coverage,
        movement,
        beneficiaries,
    })
}

fn str_of(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// Table name → its columns, for the tables the database holds.
fn existing_tables(
    conn: &rusqlite::Connection,
    path: &Path,
) -> Result<BTreeMap<String, Vec<String>>, ReportError> {
    let mut out = BTreeMap::new();
    for name in claimline_sink::table_names(conn, path)? {
        let mut info = conn
            .prepare(&format!("PRAGMA table_info(\"{name}\")"))
            .map_err(sqlite(path))?;
        let cols: Vec<String> = info
            .query_map([], |r| r.get(1))
            .map_err(sqlite(path))?
            .collect::<Result<_, _>>()
            .map_err(sqlite(path))?;
        out.insert(name, cols);
    }
    Ok(out)
}

/// Counts the lines of an NDJSON file by (what, `file`); a missing file is no lines.
fn count_lines(
    path: &Path,
    what: impl Fn(&serde_json::Value) -> String,
) -> Result<Vec<Count>, ReportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        *counts.entry((what(&v), str_of(&v, "file"))).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((what, file), count)| Count { what, file, count })
        .collect())
}

fn coverage(
    conn: &rusqlite::Connection,
    path: &Path,
    tables: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<Coverage>, ReportError> {
    let sources = claimline_load::views::sources(&["cclf".to_owned()])?;
    let mut plan = claimline_link::Plan::new(claimline_load::views::load(&sources)?)
        .map_err(claimline_load::LoadError::from)?;
    plan.add_link_tables();
    let mut out = Vec::new();
    for (t, schema) in plan.tables().iter().enumerate() {
        let name = &schema.name;
        if !name.starts_with("cclf") || !tables.contains_key(name) {
            continue;
        }
        // Link-built tables (cclf8, cclf9) have no view of their own to mark a column NULL by
        // design: all their columns are mapped.
        let mut by_design = plan.null_by_design(t);
        if !plan.is_view_table(t) {
            by_design.clear();
        }
        let columns: Vec<&str> = schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !c.starts_with('_'))
            .filter(|c| tables[name].iter().any(|have| have == c))
            .collect();
        let mapped: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !by_design.contains(*c))
            .collect();
        let select: Vec<String> = std::iter::once("count(*)".to_owned())
            .chain(mapped.iter().map(|c| format!("count(\"{c}\")")))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{name}\" WHERE _api_version IS NOT 'cclf'",
            select.join(", ")
        );
        let counts: Vec<i64> = conn
            .query_row(&sql, [], |r| {
                (0..select.len()).map(|i| r.get::<_, i64>(i)).collect()
            })
            .map_err(sqlite(path))?;
        let rows = counts[0] as u64;
        let filled_cells: i64 = counts[1..].iter().sum();
        let filled = if rows == 0 || mapped.is_empty() {
            0.0
        } else {
            filled_cells as f64 / (rows as f64 * mapped.len() as f64)
        };
        let empty = if rows == 0 {
            Vec::new()
        } else {
            mapped
                .iter()
                .zip(&counts[1..])
                .filter(|(_, n)| **n == 0)
                .map(|(c, _)| (*c).to_owned())
                .collect()
        };
        out.push(Coverage {
            table: name.clone(),
            rows,
            columns: columns.len(),
            mapped: mapped.len(),
            filled,
            empty,
        });
    }
    Ok(out)
}

fn movement(
    conn: &rusqlite::Connection,
    path: &Path,
    tables: &BTreeMap<String, Vec<String>>,
    this: &RunRecord,
    previous: Option<&RunRecord>,
) -> Result<Vec<Movement>, ReportError> {
    if !tables.contains_key(claimline_link::COUNTS_TABLE) {
        return Ok(Vec::new());
    }
    let per_type = |run: &str| -> Result<BTreeMap<String, (u64, i64)>, ReportError> {
        let mut stmt = conn
            .prepare(
                "SELECT CLAIM_TYPE, sum(CLAIMS), CAST(total(round(PAYMENT_SUM * 100)) AS INTEGER)
                 FROM _claimline_counts WHERE _run_id = ?1 GROUP BY CLAIM_TYPE",
            )
            .map_err(sqlite(path))?;
        let rows = stmt
            .query_map([run], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)?),
                ))
            })
            .map_err(sqlite(path))?
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(sqlite(path))?;
        Ok(rows)
    };
    let now = per_type(&this.run_id)?;
    let before = match previous {
        Some(p) => per_type(&p.run_id)?,
        None => BTreeMap::new(),
    };
    let types: std::collections::BTreeSet<&String> = now.keys().chain(before.keys()).collect();
    Ok(types
        .into_iter()
        .map(|t| {
            let (claims, paid) = now.get(t).copied().unwrap_or((0, 0));
            let (pc, pp) = before.get(t).copied().unwrap_or((0, 0));
            Movement {
                claim_type: t.clone(),
                previous_claims: pc,
                claims,
                previous_paid_cents: pp,
                paid_cents: paid,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimline_load::{Loader, NoProgress};

    fn loaded() -> tempfile::TempDir {
        let out = tempfile::tempdir().expect("temp dir");
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/r4");
        Loader::new(out.path())
            .all_versions(true)
            .load(&[samples], &NoProgress)
            .expect("the samples load");
        out
    }

    #[cfg(unix)]
    #[test]
    fn a_second_connection_is_used_only_on_the_state_the_first_reads() {
        let out = loaded();
        let path = out.path().join("claimline.sqlite");
        let before = file_identity(&path);
        let conn = claimline_sink::open_earlier(&path).expect("opens");
        conn.execute_batch("BEGIN").expect("a read transaction");
        let runs = claimline_sink::read_sqlite_runs(&conn, &path).expect("runs");
        assert_eq!(runs.len(), 1);
        // The same file and run records: a second reader.
        assert!(same_state(&path, before, &runs).is_some());
        // Other run records than the first connection read (a run committed in between).
        assert!(same_state(&path, before, &runs[..0]).is_none());
        let mut other = runs.clone();
        other[0].run_id.push('x');
        assert!(same_state(&path, before, &other).is_none());
        // No identity known (not Unix): never a second reader.
        assert!(same_state(&path, None, &runs).is_none());
        // The file replaced between the two reads, as `reload`'s swap replaces it: here by a
        // copy, whose run records read alike, so only the file tells them apart.
        let copy = out.path().join("copy.sqlite");
        std::fs::copy(&path, &copy).expect("copied");
        std::fs::rename(&copy, &path).expect("replaced");
        assert_ne!(file_identity(&path), before);
        let reader = claimline_sink::open_earlier(&path).expect("opens");
        assert_eq!(
            claimline_sink::read_sqlite_runs(&reader, &path).expect("runs"),
            runs
        );
        assert!(same_state(&path, before, &runs).is_none());
        // The first connection still reads the file it opened.
        assert_eq!(
            claimline_sink::read_sqlite_runs(&conn, &path).expect("runs"),
            runs
        );
    }

    /// A database with a rollback journal (made before WAL was the default, or changed by
    /// hand) is read outside a transaction, where a WAL database is read in one, and gives the
    /// same report.
    #[test]
    fn a_database_without_wal_is_read_as_before() {
        let out = loaded();
        let path = out.path().join("claimline.sqlite");
        let conn = claimline_sink::open_earlier(&path).expect("opens");
        assert!(read_transaction(&conn, &path).expect("reads"), "WAL");
        assert!(!conn.is_autocommit(), "in a read transaction");
        drop(conn);
        let with_wal = build(out.path(), None).expect("the report");
        let conn = rusqlite::Connection::open(&path).expect("opens");
        let mode: String = conn
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .expect("journal mode");
        assert_eq!(mode, "delete");
        drop(conn);
        let conn = claimline_sink::open_earlier(&path).expect("opens");
        assert!(
            !read_transaction(&conn, &path).expect("reads"),
            "a rollback journal"
        );
        assert!(conn.is_autocommit(), "no transaction held");
        drop(conn);
        let without = build(out.path(), None).expect("the report");
        assert_eq!(render(&without), render(&with_wal));
    }

    #[cfg(unix)]
    #[test]
    fn the_months_are_read_alike_on_either_connection() {
        let out = loaded();
        let path = out.path().join("claimline.sqlite");
        let first = claimline_sink::open_earlier(&path).expect("opens");
        first.execute_batch("BEGIN").expect("a read transaction");
        let runs = claimline_sink::read_sqlite_runs(&first, &path).expect("runs");
        let second = same_state(&path, file_identity(&path), &runs).expect("the same state");
        let on_first = months_of(&first, &path).expect("months");
        assert!(!on_first.is_empty(), "the samples have claims");
        let shape = |m: &[MonthRow]| -> Vec<(String, String, u64, i64)> {
            m.iter()
                .map(|r| {
                    (
                        r.claim_type.clone(),
                        r.month.clone(),
                        r.claims,
                        r.paid_cents,
                    )
                })
                .collect()
        };
        assert_eq!(
            shape(&on_first),
            shape(&months_of(&second, &path).expect("months"))
        );
        let report = build(out.path(), None).expect("the report");
        assert_eq!(shape(&report.months), shape(&on_first));
    }
}
