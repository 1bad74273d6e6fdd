//! CCLF fixed-width files both ways: [`export_cclf`] writes an output's CCLF tables as the files
//! CMS delivers (for pipelines built for them), [`load_cclf`] reads CMS's CCLF files into the
//! same tables (`_api_version` = `cclf`), and [`reconcile`] compares the two feeds claim by claim.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use claimline_cclf::{Layout, Stamp, layout, layout_of_file_name, layouts};
use claimline_link::{CLAIMS_TABLE, Plan};
use claimline_model::{Cell, ColumnType, RunRecord, TableSchema, create_private_dir};
use serde::Serialize;

use crate::loader::{commit_sinks, refresh_current_tables};
use crate::output::{now_micros, run_id_from};
use crate::{LoadError, Progress, SinkKind, views};

/// The `_api_version` of rows read from CCLF files.
pub const CCLF_VERSION: &str = "cclf";

/// The tables of the built-in `cclf` view set (with the link tables), and which are claim
/// tables.
fn cclf_plan() -> Result<(Vec<TableSchema>, Vec<bool>, String), LoadError> {
    let sources = views::sources(&["cclf".to_owned()])?;
    let mut plan = Plan::new(views::load(&sources)?)?;
    plan.add_link_tables();
    let tables = plan.tables().to_vec();
    let claim = (0..tables.len()).map(|t| plan.is_claim_table(t)).collect();
    Ok((tables, claim, views::hash(&sources)))
}

/// The column type of each field of layout `l` in the table `schema` (text for a field the
/// table lacks).
fn field_types(l: &Layout, schema: &TableSchema) -> Vec<ColumnType> {
    l.fields
        .iter()
        .map(|f| {
            schema
                .column_index(&f.name)
                .map_or(ColumnType::Text, |c| schema.columns[c].ty.clone())
        })
        .collect()
}

/// The CCLF tables, in CCLF's order (CCLF1 … CCLF9, CCLFA, CCLFB).
fn table_layouts() -> impl Iterator<Item = &'static Layout> {
    layouts().iter().filter(|l| l.code != '0')
}

// ---------------------------------------------------------------------------------------------
// Export

/// What [`export_cclf`] writes, from where.
#[derive(Debug, Clone)]
pub struct CclfExport {
    /// The output folder to read (its `claimline.sqlite`, else its Parquet history).
    pub from: PathBuf,
    /// The folder the CCLF files go to.
    pub out: PathBuf,
    /// The ACO id in the file names (`P.A<aco>…`).
    pub aco: String,
    /// Only the rows run `run` loaded that are still current; `None`: every current row.
    pub run: Option<String>,
}

/// One file [`export_cclf`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedFile {
    /// `cclf1` …
    pub table: String,
    /// The file.
    pub file: PathBuf,
    /// Records written.
    pub records: u64,
    /// Rows left out because a value did not fit its field (each in the rejects file).
    pub rejected: u64,
}

/// What [`export_cclf`] did (`claimline export cclf --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct CclfExportReport {
    /// One entry per CCLF table, in CCLF order.
    pub files: Vec<ExportedFile>,
    /// The CCLF0 summary file.
    pub summary_file: PathBuf,
    /// Rows left out in all.
    pub rejects: u64,
    /// Where they are listed (table, column, `_resource_id`, `_source_file`, `_line`, reason),
    /// when there are any.
    pub rejects_file: Option<PathBuf>,
    /// The run exported (`--run`), else every current row.
    pub run: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

#[derive(Serialize)]
struct ExportReject<'a> {
    table: &'a str,
    column: &'a str,
    _resource_id: Option<String>,
    _source_file: Option<String>,
    _line: Option<i64>,
    _run_id: Option<String>,
    reason: String,
}

fn sqlite_cell(v: rusqlite::types::ValueRef<'_>, ty: &ColumnType) -> Result<Cell, String> {
    use rusqlite::types::ValueRef;
    Ok(match (v, ty) {
        (ValueRef::Null, _) => Cell::Null,
        (ValueRef::Real(x), ColumnType::Decimal { scale, .. }) => {
            // SQLite keeps decimals as the nearest double: exact back below 2^53 units.
            let units = x * 10f64.powi(i32::from(*scale));
            if units.abs() >= 9_007_199_254_740_992.0 {
                return Err("beyond the amounts SQLite holds exactly".into());
            }
            Cell::Decimal(units.round() as i128)
        }
        (ValueRef::Real(x), _) => Cell::text(x.to_string()),
        (ValueRef::Integer(i), _) => Cell::Int(i),
        (ValueRef::Text(t), _) | (ValueRef::Blob(t), _) => {
            Cell::text(std::str::from_utf8(t).map_err(|_| "not UTF-8 text".to_owned())?)
        }
    })
}

fn sql_quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The instant a delivery is stamped with: the exported run's (else the last run's) BCDA
/// `transactionTime`, else its start.
fn delivery_stamp(runs: &[RunRecord], run: Option<&str>) -> Stamp {
    let record = match run {
        Some(id) => runs.iter().find(|r| r.run_id == id),
        None => runs
            .iter()
            .rev()
            .find(|r| !r.api_versions.iter().all(|v| v == CCLF_VERSION)),
    };
    let micros = record
        .and_then(|r| {
            r.transaction_time
                .as_deref()
                .and_then(claimline_link::parse_instant)
                .or_else(|| claimline_link::parse_instant(&r.started))
        })
        .unwrap_or_else(now_micros);
    Stamp::from_micros(micros)
}

/// One row of a CCLF table as the export reads it: each layout field's cell (or why it cannot
/// be read), and where the row came from.
struct SourceRow {
    fields: Vec<Result<Cell, String>>,
    resource_id: Option<String>,
    source_file: Option<String>,
    line: Option<i64>,
    run_id: Option<String>,
}

/// Where the export reads the current rows: SQLite (which holds them), else the Parquet
/// history (`current/` for claim tables, the README's rule for the others).
enum RowSource {
    Sqlite {
        conn: rusqlite::Connection,
        path: PathBuf,
        tables: BTreeSet<String>,
    },
    Parquet {
        out: PathBuf,
    },
}

const LINEAGE: [&str; 4] = ["_resource_id", "_source_file", "_line", "_run_id"];

fn text_of(c: &Cell) -> Option<String> {
    match c {
        Cell::Text(t) => Some(t.to_string()),
        _ => None,
    }
}

impl RowSource {
    fn open(from: &Path) -> Result<(RowSource, Vec<RunRecord>), LoadError> {
        let db_path = from.join("claimline.sqlite");
        if claimline_sink::database_present(&db_path)? {
            let conn = claimline_sink::open_earlier(&db_path)?;
            let runs = claimline_sink::read_sqlite_runs(&conn, &db_path)?;
            let tables = claimline_sink::table_names(&conn, &db_path)?;
            return Ok((
                RowSource::Sqlite {
                    conn,
                    path: db_path.clone(),
                    tables,
                },
                runs,
            ));
        }
        let root = from.join("parquet");
        if root.is_dir() {
            let runs = claimline_sink::read_parquet_runs(&root)?;
            return Ok((
                RowSource::Parquet {
                    out: from.to_owned(),
                },
                runs,
            ));
        }
        Err(LoadError::Usage(format!(
            "{} holds no claimline tables (claimline.sqlite or parquet/)",
            from.display()
        )))
    }

    /// Calls `each` with every current row of table `l` (of `schema`; `claim`: a claim table),
    /// but rows loaded from CCLF files; only run `run`'s with one.
    fn rows(
        &self,
        l: &Layout,
        schema: &TableSchema,
        claim: bool,
        run: Option<&str>,
        each: &mut dyn FnMut(SourceRow) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        let types = field_types(l, schema);
        match self {
            RowSource::Sqlite { conn, path, tables } => {
                if !tables.contains(&l.table) {
                    return Ok(());
                }
                let sqlite_error = crate::loader::sqlite_error(path);
                let select: Vec<String> = l
                    .fields
                    .iter()
                    .map(|f| {
                        if schema.column_index(&f.name).is_some() {
                            sql_quote(&f.name)
                        } else {
                            "NULL".into()
                        }
                    })
                    .chain(LINEAGE.iter().map(|c| (*c).to_owned()))
                    .collect();
                let sql = format!(
                    "SELECT {} FROM {} WHERE _api_version IS NOT '{CCLF_VERSION}' {} ORDER BY rowid",
                    select.join(", "),
                    sql_quote(&l.table),
                    if run.is_some() {
                        "AND _run_id = ?1"
                    } else {
                        ""
                    }
                );
                let mut stmt = conn.prepare(&sql).map_err(&sqlite_error)?;
                let params: Vec<&dyn rusqlite::ToSql> = match &run {
                    Some(r) => vec![r],
                    None => vec![],
                };
                let mut rows = stmt.query(params.as_slice()).map_err(&sqlite_error)?;
                let n = l.fields.len();
                while let Some(row) = rows.next().map_err(&sqlite_error)? {
                    let mut fields = Vec::with_capacity(n);
                    for (i, ty) in types.iter().enumerate() {
                        fields.push(sqlite_cell(row.get_ref(i).map_err(&sqlite_error)?, ty));
                    }
                    each(SourceRow {
                        fields,
                        resource_id: row.get(n).map_err(&sqlite_error)?,
                        source_file: row.get(n + 1).map_err(&sqlite_error)?,
                        line: row.get(n + 2).map_err(&sqlite_error)?,
                        run_id: row.get(n + 3).map_err(&sqlite_error)?,
                    })?;
                }
                Ok(())
            }
            RowSource::Parquet { out } => {
                let mut names: Vec<&str> = l.fields.iter().map(|f| f.name.as_str()).collect();
                let n = names.len();
                names.extend(LINEAGE);
                names.extend(["_api_version", "_last_updated"]);
                let mut rows = if claim {
                    // The claim-history rule across runs, materialised after every load.
                    claimline_sink::read_current_parquet(out, &l.table, &names)?
                } else {
                    // One row set per resource: the latest `_last_updated`, then the latest run.
                    let all = claimline_sink::read_committed_parquet(
                        &out.join("parquet"),
                        &l.table,
                        &names,
                    )?;
                    let rank = |r: &Vec<Cell>| {
                        let lu = match r[n + 5] {
                            Cell::Timestamp(t) => Some(t),
                            _ => None,
                        };
                        (lu, text_of(&r[n + 3]))
                    };
                    let mut best: BTreeMap<(Option<String>, Option<String>), _> = BTreeMap::new();
                    for r in &all {
                        let key = (text_of(&r[n + 4]), text_of(&r[n]));
                        let rk = rank(r);
                        let e = best.entry(key).or_insert_with(|| rk.clone());
                        if rk > *e {
                            *e = rk;
                        }
                    }
                    all.into_iter()
                        .filter(|r| best[&(text_of(&r[n + 4]), text_of(&r[n]))] == rank(r))
                        .collect()
                };
                rows.retain(|r| {
                    text_of(&r[n + 4]).as_deref() != Some(CCLF_VERSION)
                        && run.is_none_or(|id| text_of(&r[n + 3]).as_deref() == Some(id))
                });
                // The order SQLite's would be in: by run, then where the rows came from.
                rows.sort_by_key(|r| {
                    (
                        text_of(&r[n + 3]),
                        text_of(&r[n + 1]),
                        match r[n + 2] {
                            Cell::Int(i) => i,
                            _ => 0,
                        },
                    )
                });
                for mut r in rows {
                    r.truncate(n + 4);
                    let lineage = r.split_off(n);
                    each(SourceRow {
                        fields: r.into_iter().map(Ok).collect(),
                        resource_id: text_of(&lineage[0]),
                        source_file: text_of(&lineage[1]),
                        line: match lineage[2] {
                            Cell::Int(i) => Some(i),
                            _ => None,
                        },
                        run_id: text_of(&lineage[3]),
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// Writes the CCLF tables of the output folder `from` as CCLF files in `out`: one fixed-width
/// file per table (CCLF1–9, A, B; empty when the table has no rows) and the CCLF0 summary,
/// named as CMS names its deliveries. Rows are the current rows (the claim-history rule across
/// runs): SQLite's when the output has SQLite, else the Parquet history's (`current/` for claim
/// tables; the latest `_last_updated`, then run, per resource for the others). Rows loaded
/// from CCLF files are not exported again. A row with a value that does not fit its field is
/// left out, counted, and listed (table, column, `_resource_id`, `_source_file`, `_line`;
/// never the value) in `out/claimline-export-rejects.ndjson`.
///
/// # Errors
/// [`LoadError::Usage`] when `from` holds no tables or `run` is not one of its runs;
/// [`LoadError::Io`] for a file that cannot be written; [`LoadError::Sink`] for a damaged
/// database or Parquet file.
pub fn export_cclf(opts: &CclfExport) -> Result<CclfExportReport, LoadError> {
    let started = Instant::now();
    if opts.aco.is_empty() || !opts.aco.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(LoadError::Usage(
            "--aco must be letters and digits (the ACO id in CMS's file names, e.g. A1234 → --aco 1234)"
                .into(),
        ));
    }
    let (source, runs) = RowSource::open(&opts.from)?;
    if let Some(run) = &opts.run
        && !runs.iter().any(|r| &r.run_id == run)
    {
        return Err(LoadError::Usage(format!(
            "{} holds no run {run}",
            opts.from.display()
        )));
    }
    let stamp = delivery_stamp(&runs, opts.run.as_deref());
    let (schemas, claim, _) = cclf_plan()?;
    create_private_dir(&opts.out).map_err(|e| LoadError::io(&opts.out, e))?;
    let rejects_path = opts.out.join(EXPORT_REJECTS);
    let mut rejects: Vec<u8> = Vec::new();
    let mut files = Vec::new();
    let mut summary = Vec::new();
    let mut total_rejects = 0u64;
    for l in table_layouts() {
        let t = schemas
            .iter()
            .position(|s| s.name == l.table)
            .expect("the cclf set has every CCLF table");
        let schema = &schemas[t];
        let types = field_types(l, schema);
        let mut body: Vec<u8> = Vec::new();
        let (mut records, mut rejected) = (0u64, 0u64);
        let mut record: Vec<u8> = Vec::with_capacity(l.record_len + 1);
        source.rows(l, schema, claim[t], opts.run.as_deref(), &mut |row| {
            record.clear();
            let mut failed: Option<(usize, String)> = None;
            for (i, ((f, ty), cell)) in l.fields.iter().zip(&types).zip(&row.fields).enumerate() {
                let written = cell
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|cell| f.write(cell, ty, &mut record).map_err(|e| e.to_string()));
                if let Err(reason) = written {
                    failed = Some((i, reason));
                    break;
                }
            }
            match failed {
                None => {
                    record.push(b'\n');
                    body.extend_from_slice(&record);
                    records += 1;
                }
                Some((i, reason)) => {
                    rejected += 1;
                    let reject = ExportReject {
                        table: &l.table,
                        column: &l.fields[i].name,
                        _resource_id: row.resource_id,
                        _source_file: row.source_file,
                        _line: row.line,
                        _run_id: row.run_id,
                        reason,
                    };
                    serde_json::to_writer(&mut rejects, &reject).expect("JSON to memory");
                    rejects.push(b'\n');
                }
            }
            Ok(())
        })?;
        let file = opts
            .out
            .join(claimline_cclf::file_name(&opts.aco, l, stamp));
        claimline_model::write_atomic(&file, &body).map_err(|e| LoadError::io(&file, e))?;
        summary.extend_from_slice(&claimline_cclf::summary_record(l, records));
        summary.push(b'\n');
        total_rejects += rejected;
        files.push(ExportedFile {
            table: l.table.clone(),
            file,
            records,
            rejected,
        });
    }
    let summary_layout = layout("cclf0").expect("CCLF0 is a layout");
    let summary_file = opts
        .out
        .join(claimline_cclf::file_name(&opts.aco, summary_layout, stamp));
    claimline_model::write_atomic(&summary_file, &summary)
        .map_err(|e| LoadError::io(&summary_file, e))?;
    let rejects_file = if rejects.is_empty() {
        // A list from an earlier export into this folder would describe other files.
        let _ = std::fs::remove_file(&rejects_path);
        None
    } else {
        claimline_model::write_atomic(&rejects_path, &rejects)
            .map_err(|e| LoadError::io(&rejects_path, e))?;
        Some(rejects_path)
    };
    Ok(CclfExportReport {
        files,
        summary_file,
        rejects: total_rejects,
        rejects_file,
        run: opts.run.clone(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl CclfExportReport {
    /// The human summary `claimline export cclf` prints.
    ///
    /// # Errors
    /// A failed write to `out`.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        for f in &self.files {
            let name = f.file.file_name().unwrap_or_default().to_string_lossy();
            write!(out, "{:<6} {:>9} records  {name}", f.table, f.records)?;
            if f.rejected > 0 {
                write!(out, "  ({} left out)", f.rejected)?;
            }
            writeln!(out)?;
        }
        writeln!(
            out,
            "summary: {}",
            self.summary_file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        )?;
        if let Some(file) = &self.rejects_file {
            writeln!(
                out,
                "{} rows left out: a value does not fit its CCLF field; listed in {}",
                self.rejects,
                file.display()
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Import

/// What [`load_cclf`] reads, into where.
pub struct CclfLoad {
    /// CCLF files, zip files of them (as CMS ships them), or folders of either.
    pub inputs: Vec<PathBuf>,
    /// The output folder.
    pub out: PathBuf,
    /// The outputs to write (SQLite, Parquet, …).
    pub sinks: Vec<Box<dyn SinkKind>>,
    /// The table of every input (`cclf5`), when their names do not tell it.
    pub table: Option<String>,
    /// The run id; `None`: the start time.
    pub run_id: Option<String>,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Commit nothing when a record is rejected.
    pub strict: bool,
}

/// One file [`load_cclf`] read.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedFile {
    /// The file (a zip member as `archive.zip!member`).
    pub file: String,
    /// The table it fills.
    pub table: String,
    /// Records loaded.
    pub records: u64,
    /// Records rejected (in the rejects file, with their line).
    pub rejected: u64,
}

/// What [`load_cclf`] did (`claimline load-cclf --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct CclfLoadReport {
    /// The run.
    pub run_id: String,
    /// The files read.
    pub files: Vec<LoadedFile>,
    /// Rows per table this run wrote.
    pub tables: BTreeMap<String, u64>,
    /// Records rejected in all.
    pub rejects: u64,
    /// Where they are listed (file, line, table, field, reason).
    pub rejects_file: Option<PathBuf>,
    /// Where a CCLF0 summary in the input disagrees with the files (a file missing, a count
    /// that differs).
    pub summary_mismatches: Vec<String>,
    /// Whether the run was committed (not under `strict` with rejects).
    pub committed: bool,
    /// Bytes of CCLF records read.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// `bytes` per second, in MB.
    pub mb_per_s: f64,
}

#[derive(Serialize)]
struct ImportReject<'a> {
    file: &'a str,
    line: u64,
    table: &'a str,
    field: Option<&'a str>,
    reason: String,
}

/// A CCLF file's bytes: mapped from disk, or a zip member read into memory.
enum Bytes {
    Mapped(claimline_ndjson::FileMap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

struct CclfFile {
    name: String,
    layout: &'static Layout,
    bytes: Bytes,
}

/// An input file or folder that cannot be read (exit 3, as `load`'s): not an output's failure.
fn unreadable(path: &Path, source: std::io::Error) -> LoadError {
    LoadError::Input(claimline_ndjson::Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// The rejects file `export cclf` writes beside the CCLF files.
const EXPORT_REJECTS: &str = "claimline-export-rejects.ndjson";

fn collect_paths(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| unreadable(path, e))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| unreadable(path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    // Hidden files, and the rejects `export cclf` writes beside its files: a
                    // folder it wrote loads back as it is.
                    n.starts_with('.') || n == EXPORT_REJECTS
                })
            })
            .collect();
        entries.sort();
        for e in entries {
            collect_paths(&e, out)?;
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// The layout of the file `name`: the one its name tells (CMS's `…ZC<n>Y…`, `CCLF<n>`), else
/// `--table`'s; a name that tells is never read as another table.
fn layout_for(name: &str, table: Option<&str>) -> Result<&'static Layout, LoadError> {
    if let Some(l) = layout_of_file_name(name) {
        return Ok(l);
    }
    match table {
        Some(t) => layout(t).filter(|l| l.code != '0').ok_or_else(|| {
            LoadError::Usage(format!(
                "--table {t}: not a CCLF table (cclf1 … cclf9, cclfa, cclfb)"
            ))
        }),
        None => Err(LoadError::Usage(format!(
            "{name}: the name does not tell which CCLF file it is (CMS's …ZC<n>Y…, or CCLF<n>); name the table with --table"
        ))),
    }
}

fn open_inputs(inputs: &[PathBuf], table: Option<&str>) -> Result<Vec<CclfFile>, LoadError> {
    let mut paths = Vec::new();
    for p in inputs {
        collect_paths(p, &mut paths)?;
    }
    let mut files = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let is_zip = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        let file = std::fs::File::open(&path).map_err(|e| unreadable(&path, e))?;
        // A damaged archive names the zip file.
        let bad_zip = |e: zip::result::ZipError| {
            unreadable(
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        };
        if is_zip {
            let mut archive = zip::ZipArchive::new(file).map_err(bad_zip)?;
            for i in 0..archive.len() {
                let mut member = archive.by_index(i).map_err(bad_zip)?;
                if member.is_dir() {
                    continue;
                }
                let inner = member.name().map(|n| n.into_owned()).map_err(bad_zip)?;
                let member_name = format!("{name}!{inner}");
                let layout = layout_for(&inner, table)?;
                let mut bytes = Vec::with_capacity(member.size() as usize);
                member
                    .read_to_end(&mut bytes)
                    .map_err(|e| unreadable(&path, e))?;
                files.push(CclfFile {
                    name: member_name,
                    layout,
                    bytes: Bytes::Owned(bytes),
                });
            }
        } else {
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let layout = layout_for(&base, table)?;
            // An empty file cannot be mapped.
            let len = file.metadata().map_err(|e| unreadable(&path, e))?.len();
            let bytes = if len == 0 {
                Bytes::Owned(Vec::new())
            } else {
                Bytes::Mapped(
                    claimline_ndjson::map_file(&file, &path).map_err(|e| unreadable(&path, e))?,
                )
            };
            files.push(CclfFile {
                name,
                layout,
                bytes,
            });
        }
    }
    Ok(files)
}

/// Where each column of a table's row comes from when it is read from a CCLF record.
#[derive(Clone, Copy)]
enum Slot {
    Field(usize),
    ResourceId,
    SourceFile,
    Line,
    ApiVersion,
    RunId,
    ClaimKey,
    Null,
}

/// The field of a record that identifies it: the claim (claim tables), the beneficiary (CCLF8),
/// the current MBI (CCLF9).
fn key_field(l: &Layout) -> usize {
    let name = match l.code {
        '8' => "BENE_MBI_ID",
        '9' => "CRNT_NUM",
        _ => "CUR_CLM_UNIQ_ID",
    };
    l.fields
        .iter()
        .position(|f| f.name == name)
        .expect("every CCLF table has its key field")
}

fn slots(schema: &TableSchema, l: &Layout) -> Vec<Slot> {
    schema
        .columns
        .iter()
        .map(|c| match c.name.as_str() {
            "_resource_id" => Slot::ResourceId,
            "_source_file" => Slot::SourceFile,
            "_line" => Slot::Line,
            "_api_version" => Slot::ApiVersion,
            "_run_id" => Slot::RunId,
            "_claim_key" => Slot::ClaimKey,
            name => l
                .fields
                .iter()
                .position(|f| f.name == name)
                .map_or(Slot::Null, Slot::Field),
        })
        .collect()
}

struct Parsed {
    rows: Vec<Vec<Cell>>,
    rejects: Vec<(u64, Option<usize>, String)>,
}

/// Parses the records of `data` (whose first line is line `first_line`); `types` are the column
/// types of the layout's fields.
fn parse_chunk(
    data: &[u8],
    first_line: u64,
    l: &Layout,
    types: &[ColumnType],
    slots: &[Slot],
    file: &str,
    run_id: &str,
) -> Parsed {
    let key = key_field(l);
    let mut out = Parsed {
        rows: Vec::new(),
        rejects: Vec::new(),
    };
    let mut line_no = first_line;
    let mut rest = data;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let this = line_no;
        line_no += 1;
        let fields = match l.split(line) {
            Ok(f) => f,
            Err(len) => {
                out.rejects.push((
                    this,
                    None,
                    format!(
                        "a record of {len} bytes; {} records are {}",
                        l.file, l.record_len
                    ),
                ));
                continue;
            }
        };
        let mut cells: Vec<Cell> = Vec::with_capacity(l.fields.len());
        let mut failed = None;
        for (i, ((f, raw), ty)) in l.fields.iter().zip(&fields).zip(types).enumerate() {
            match f.read(raw, ty) {
                Ok(c) => cells.push(c),
                Err(e) => {
                    failed = Some((i, e.to_string()));
                    break;
                }
            }
        }
        if let Some((i, reason)) = failed {
            out.rejects.push((this, Some(i), reason));
            continue;
        }
        let key_text = match &cells[key] {
            Cell::Text(t) if !t.trim().is_empty() => Cell::Text(t.clone()),
            // No key, no claim (or beneficiary) to replace by a later delivery: such rows
            // would pile up at every load and never be current.
            _ => {
                out.rejects.push((
                    this,
                    Some(key),
                    format!(
                        "{} is blank: the record names no claim or beneficiary",
                        l.fields[key].name
                    ),
                ));
                continue;
            }
        };
        // Each field feeds one column: its cell moves into the row.
        let row = slots
            .iter()
            .map(|s| match s {
                Slot::Field(i) => std::mem::replace(&mut cells[*i], Cell::Null),
                Slot::ResourceId | Slot::ClaimKey => key_text.clone(),
                Slot::SourceFile => Cell::text(file),
                Slot::Line => Cell::Int(this as i64),
                Slot::ApiVersion => Cell::text(CCLF_VERSION),
                Slot::RunId => Cell::text(run_id),
                Slot::Null => Cell::Null,
            })
            .collect();
        out.rows.push(row);
    }
    out
}

/// Bytes of CCLF records one worker parses at a time: a file is read in waves of one piece per
/// worker, so memory stays bounded whatever the file's size.
const PIECE_BYTES: usize = 8 << 20;

/// Splits `data` into pieces of about `target` bytes at line ends, each with its first line's
/// number.
fn chunks(data: &[u8], target: usize) -> Vec<(&[u8], u64)> {
    let mut out = Vec::new();
    let target = target.max(1 << 16);
    let mut start = 0;
    let mut line = 1u64;
    while start < data.len() {
        let mut end = (start + target).min(data.len());
        if end < data.len() {
            end = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i + 1);
        }
        out.push((&data[start..end], line));
        line += memchr::memchr_iter(b'\n', &data[start..end]).count() as u64;
        start = end;
    }
    out
}

/// Loads CMS's CCLF files into the output folder's CCLF tables, as one run holding the folder's
/// lock: every record parsed by its layout into the table's typed columns, with `_api_version` =
/// `cclf`, `_source_file` and `_line`; `_resource_id` and `_claim_key` are the claim id
/// (`CUR_CLM_UNIQ_ID`; CCLF8 the MBI, CCLF9 the current MBI). A claim's rows replace those an
/// earlier CCLF load left for the same claim id (in SQLite; the Parquet history keeps both,
/// and `_claimline_claims` records which is current). A record of the wrong length or with a
/// value its field cannot hold is rejected with its file and line, never loaded in part.
///
/// # Errors
/// [`LoadError::Usage`] for a file whose table its name does not tell; [`LoadError::Busy`];
/// [`LoadError::Io`] for an unreadable input; any sink's failure (nothing is committed then).
pub fn load_cclf(opts: &CclfLoad, progress: &dyn Progress) -> Result<CclfLoadReport, LoadError> {
    let started_at = Instant::now();
    let started = now_micros();
    let mut files = open_inputs(&opts.inputs, opts.table.as_deref())?;
    // CCLF0 is the delivery's summary: checked against the files, not loaded.
    let summaries: Vec<CclfFile> = {
        let (s, rest): (Vec<CclfFile>, Vec<CclfFile>) =
            files.into_iter().partition(|f| f.layout.code == '0');
        files = rest;
        s
    };
    let existed = opts.out.exists();
    let lock = crate::output::lock_or_busy(&opts.out)?;
    let result = load_cclf_locked(opts, &files, &summaries, started, started_at, progress);
    drop(lock);
    if result.is_err() {
        crate::output::remove_empty(&opts.out, existed);
    }
    result
}

fn load_cclf_locked(
    opts: &CclfLoad,
    files: &[CclfFile],
    summaries: &[CclfFile],
    started: i64,
    started_at: Instant,
    progress: &dyn Progress,
) -> Result<CclfLoadReport, LoadError> {
    if let Some(id) = &opts.run_id {
        crate::output::check_run_id(id)?;
    }
    let kinds: Vec<&dyn SinkKind> = opts.sinks.iter().map(|k| k.as_ref()).collect();
    // Held (a PostgreSQL schema's lock among them) until the load ends.
    let mut databases = crate::loader::open_databases(&kinds, &opts.out, progress)?;
    // The runs the outputs hold, read whether a run id was given or not: a damaged record stops
    // the load before it writes anything, as it stops `load`.
    let (earlier, parquet) = crate::loader::runs_held(&mut databases.earlier, &kinds, &opts.out)?;
    if let Some(id) = &opts.run_id {
        crate::output::check_run_order(
            id,
            earlier.iter().chain(&parquet).map(|r| r.run_id.as_str()),
            &opts.out,
        )?;
    }
    let (tables, claim, views_hash) = cclf_plan()?;
    let run_id = opts.run_id.clone().unwrap_or_else(|| run_id_from(started));
    create_private_dir(&opts.out).map_err(|e| LoadError::io(&opts.out, e))?;
    let rejects_dir = opts.out.join("rejects");
    create_private_dir(&rejects_dir).map_err(|e| LoadError::io(&rejects_dir, e))?;
    let mut sinks = Vec::with_capacity(opts.sinks.len());
    for kind in &opts.sinks {
        sinks.push(kind.open(&opts.out, &run_id, &tables)?);
    }
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        opts.threads
    };
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    progress.started(total);
    let mut rows_per_table: BTreeMap<String, u64> = BTreeMap::new();
    let mut loaded = Vec::new();
    let mut reject_lines: Vec<u8> = Vec::new();
    let mut reject_count = 0u64;
    let mut claim_keys: BTreeSet<String> = BTreeSet::new();
    for f in files {
        let t = tables
            .iter()
            .position(|s| s.name == f.layout.table)
            .expect("the cclf set has every CCLF table");
        let schema = &tables[t];
        let slots = slots(schema, f.layout);
        let types = field_types(f.layout, schema);
        let (mut records, mut rejected) = (0u64, 0u64);
        let mut progress_count = 0u64;
        let key = schema.column_index("_claim_key");
        let pieces = chunks(&f.bytes, PIECE_BYTES.min(f.bytes.len().div_ceil(threads)));
        for wave in pieces.chunks(threads) {
            let parsed: Vec<Parsed> = std::thread::scope(|s| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|&(data, first)| {
                        let (layout, slots, types, name, run_id) =
                            (f.layout, &slots, &types, &f.name, &run_id);
                        s.spawn(move || {
                            parse_chunk(data, first, layout, types, slots, name, run_id)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a parse worker panicked"))
                    .collect()
            });
            for p in parsed {
                for (line, field, reason) in p.rejects {
                    rejected += 1;
                    let reject = ImportReject {
                        file: &f.name,
                        line,
                        table: &f.layout.table,
                        field: field.map(|i| f.layout.fields[i].name.as_str()),
                        reason,
                    };
                    serde_json::to_writer(&mut reject_lines, &reject).expect("JSON to memory");
                    reject_lines.push(b'\n');
                }
                records += p.rows.len() as u64;
                if claim[t]
                    && let Some(k) = key
                {
                    for row in &p.rows {
                        if let Cell::Text(id) = &row[k] {
                            claim_keys.insert(id.to_string());
                        }
                    }
                }
                if !p.rows.is_empty() {
                    crate::loader::write_rows(&mut sinks, t, p.rows)?;
                }
            }
            progress.advanced(wave.iter().map(|(d, _)| d.len() as u64).sum());
            progress.resources(records + rejected - progress_count);
            progress_count = records + rejected;
        }
        *rows_per_table.entry(f.layout.table.clone()).or_default() += records;
        reject_count += rejected;
        loaded.push(LoadedFile {
            file: f.name.clone(),
            table: f.layout.table.clone(),
            records,
            rejected,
        });
    }
    progress.finished();
    // The run's claims, so the Parquet history's current-rows rule (and SQLite's) knows them.
    if let Some(c) = tables.iter().position(|s| s.name == CLAIMS_TABLE) {
        // A CCLF claim's key and resource id are both its claim id.
        let rows: Vec<Vec<Cell>> = claim_keys
            .iter()
            .map(|id| {
                claimline_link::claims_row(
                    Some(CCLF_VERSION),
                    id,
                    id,
                    None,
                    claimline_link::Action::Version,
                    &run_id,
                )
                .into()
            })
            .collect();
        if !rows.is_empty() {
            crate::loader::write_rows(&mut sinks, c, rows)?;
        }
    }
    let rejects_file =
        (!reject_lines.is_empty()).then(|| rejects_dir.join(format!("{run_id}.ndjson")));
    if let Some(path) = &rejects_file {
        claimline_model::write_atomic(path, &reject_lines).map_err(|e| LoadError::io(path, e))?;
    }
    let summary_mismatches = check_summaries(summaries, &loaded);
    let committed = !(opts.strict && reject_count > 0);
    let record = RunRecord {
        run_id: run_id.clone(),
        started: claimline_model::format_timestamp(started),
        finished: claimline_model::format_timestamp(now_micros()),
        inputs: opts
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        api_versions: vec![CCLF_VERSION.to_owned()],
        views_hash,
        resources: BTreeMap::new(),
        tables: rows_per_table.clone(),
        rejects: reject_count,
        row_errors: 0,
        transaction_time: None,
        all_versions: false,
    };
    if committed {
        let parquet = opts.sinks.iter().any(|k| k.name() == "parquet");
        let claim_tables: Vec<String> = (0..tables.len())
            .filter(|&t| claim[t])
            .map(|t| tables[t].name.clone())
            .collect();
        let done = commit_sinks(
            sinks,
            &record,
            &opts.out,
            parquet.then_some(claim_tables.as_slice()),
        )?;
        if parquet {
            refresh_current_tables(&opts.out, &claim_tables, done, progress);
        }
    } else {
        drop(sinks);
    }
    let seconds = started_at.elapsed().as_secs_f64();
    let bytes = total;
    Ok(CclfLoadReport {
        run_id,
        files: loaded,
        tables: rows_per_table,
        rejects: reject_count,
        rejects_file,
        summary_mismatches,
        committed,
        bytes,
        seconds,
        mb_per_s: if seconds > 0.0 {
            bytes as f64 / 1e6 / seconds
        } else {
            0.0
        },
    })
}

/// What a CCLF0 summary says that the files read do not bear out.
fn check_summaries(summaries: &[CclfFile], loaded: &[LoadedFile]) -> Vec<String> {
    let mut out = Vec::new();
    for s in summaries {
        for line in s.bytes.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Some((file, count, _)) = claimline_cclf::parse_summary_record(line) else {
                continue;
            };
            let table = file.to_ascii_lowercase();
            let read: Vec<&LoadedFile> = loaded.iter().filter(|f| f.table == table).collect();
            if read.is_empty() {
                if count > 0 {
                    out.push(format!(
                        "{}: lists {file} with {count} records; no {file} file was read",
                        s.name
                    ));
                }
                continue;
            }
            let n: u64 = read.iter().map(|f| f.records + f.rejected).sum();
            if n != count {
                out.push(format!(
                    "{}: lists {file} with {count} records; {n} were read",
                    s.name
                ));
            }
        }
    }
    out
}

impl CclfLoadReport {
    /// The human summary `claimline load-cclf` prints.
    ///
    /// # Errors
    /// A failed write to `out`.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "run {}: {} CCLF files, {:.1} MB in {:.2} s ({:.0} MB/s){}",
            self.run_id,
            self.files.len(),
            self.bytes as f64 / 1e6,
            self.seconds,
            self.mb_per_s,
            if self.committed {
                ""
            } else {
                "; nothing committed (--strict)"
            }
        )?;
        for (t, n) in &self.tables {
            writeln!(out, "  {t:<6} {n:>9} rows")?;
        }
        if let Some(file) = &self.rejects_file {
            writeln!(
                out,
                "{} records rejected (wrong length, or a value its field cannot hold): {}",
                self.rejects,
                file.display()
            )?;
        }
        for m in &self.summary_mismatches {
            writeln!(out, "warning: {m}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

/// One claim type and month of [`reconcile`]: the current claims of each feed, matched by claim
/// id (`CUR_CLM_UNIQ_ID`) and claim type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileRow {
    /// `CLM_TYPE_CD` (10 HHA, 20/30 SNF, 40 outpatient, 50 hospice, 60 inpatient, 71/72
    /// carrier, 81/82 DME, 01–04 Part D; empty for Part D from BCDA v1/v2, which carry none).
    /// v3's four-digit IDR codes (`1013`, `2800`…) as they come; `other` for a value that is no
    /// claim type code (more than four characters, or not letters and digits): never shown, as
    /// it could hold anything.
    pub claim_type: String,
    /// `YYYY-MM` of the claim's from date (Part D: the first line's fill date).
    pub month: String,
    /// Current claims from BCDA (of [`ReconcileReport::api_version`]).
    pub bcda_claims: u64,
    /// Current claims from CCLF files.
    pub cclf_claims: u64,
    /// Claims in both.
    pub in_both: u64,
    /// Claims only BCDA has.
    pub only_bcda: u64,
    /// Claims only the CCLF files have.
    pub only_cclf: u64,
    /// Paid amount of the BCDA claims (CCLF1 `CLM_PMT_AMT`; CCLF5/6 the lines'
    /// `CLM_LINE_CVRD_PD_AMT`; CCLF7 `CLM_LINE_BENE_PMT_AMT`), exact, as text.
    pub bcda_paid: String,
    /// The same for the CCLF claims.
    pub cclf_paid: String,
    /// Claims in both whose paid amounts differ.
    pub paid_differs: u64,
    /// `bcda_paid` in cents, for a caller that computes with it (not in the JSON).
    #[serde(skip)]
    pub bcda_paid_cents: i64,
}

/// What [`reconcile`] found (`claimline reconcile --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    /// The BCDA API version compared (`v1`, `v2`, `v3`): the one asked for, else the newest
    /// loaded; `None` when no BCDA claim is loaded. One version only: a claim loaded from two
    /// versions is one claim, and v1/v2's claim ids are not v3's.
    pub api_version: Option<String>,
    /// The other BCDA API versions whose claims the tables also hold, not compared.
    pub other_api_versions: Vec<String>,
    /// The months compared (`YYYY-MM`, first and last): those the CCLF claims cover, else every
    /// month.
    pub months: Option<(String, String)>,
    /// Per claim type and month, in that order.
    pub rows: Vec<ReconcileRow>,
}

/// The API versions the claim tables hold.
const VERSIONS_SQL: &str = "
SELECT _api_version FROM cclf1 UNION SELECT _api_version FROM cclf5
UNION SELECT _api_version FROM cclf6 UNION SELECT _api_version FROM cclf7";

/// The claims of the output's current rows, one per (feed, claim id, claim type), with month
/// and paid cents: CCLF's and those of the BCDA API version `?1`.
const CLAIMS_SQL: &str = "
WITH lines AS (
  SELECT _api_version AS api, CLM_TYPE_CD AS ty, CLM_FROM_DT AS dt,
         CUR_CLM_UNIQ_ID AS id, round(CAST(CLM_PMT_AMT AS REAL) * 100) AS cents FROM cclf1
  UNION ALL
  SELECT _api_version, CLM_TYPE_CD, CLM_FROM_DT, CUR_CLM_UNIQ_ID,
         round(CAST(CLM_LINE_CVRD_PD_AMT AS REAL) * 100) FROM cclf5
  UNION ALL
  SELECT _api_version, CLM_TYPE_CD, CLM_FROM_DT, CUR_CLM_UNIQ_ID,
         round(CAST(CLM_LINE_CVRD_PD_AMT AS REAL) * 100) FROM cclf6
  UNION ALL
  SELECT _api_version, CLM_TYPE_CD, CLM_LINE_FROM_DT, CUR_CLM_UNIQ_ID,
         round(CAST(CLM_LINE_BENE_PMT_AMT AS REAL) * 100) FROM cclf7
),
claims AS (
  SELECT api, ty, substr(min(dt), 1, 7) AS month, id, CAST(total(cents) AS INTEGER) AS cents
  FROM lines WHERE id IS NOT NULL AND api IN ('cclf', ?1) GROUP BY api, ty, id
),
b AS (SELECT * FROM claims WHERE api <> 'cclf'),
c AS (SELECT * FROM claims WHERE api = 'cclf'),
j AS (
  SELECT coalesce(b.ty, c.ty) AS ty, coalesce(c.month, b.month) AS month,
         b.id IS NOT NULL AS in_b, c.id IS NOT NULL AS in_c, b.cents AS bc, c.cents AS cc
  FROM b FULL OUTER JOIN c ON b.id = c.id AND b.ty IS c.ty
)
SELECT CASE WHEN ty IS NULL OR (length(ty) <= 4 AND ty NOT GLOB '*[^0-9A-Za-z]*') THEN ty
            ELSE 'other' END
         AS shown,
       month, sum(in_b), sum(in_c), sum(in_b AND in_c), sum(in_b AND NOT in_c),
       sum(in_c AND NOT in_b), CAST(total(bc) AS INTEGER), CAST(total(cc) AS INTEGER),
       sum(in_b AND in_c AND bc IS NOT cc)
FROM j
WHERE (SELECT count(*) FROM c) = 0
   OR month BETWEEN (SELECT min(month) FROM c) AND (SELECT max(month) FROM c)
GROUP BY shown, month ORDER BY shown, month";

/// Compares the claims loaded from CCLF files ([`load_cclf`]) with those loaded from BCDA in
/// the output folder `out` (its SQLite tables, which hold the current rows: the claim-history
/// rule across runs, so a retried or corrected run counts once), per claim type and month of
/// the months the CCLF claims cover: claims in both, only in one, and paid amounts. With no
/// CCLF rows it is the current claim count and paid amount of BCDA per type and month.
///
/// BCDA's claims are those of one API version, `api` (`v1`, `v2`, `v3`), else the newest the
/// tables hold: a claim loaded from two versions is one claim (v1/v2's ids are not v3's).
///
/// # Errors
/// [`LoadError::Usage`] when `out` has no SQLite tables, or `api` is no API version;
/// [`LoadError::Io`] for a database that cannot be read.
pub fn reconcile(out: &Path, api: Option<&str>) -> Result<ReconcileReport, LoadError> {
    let api = match api {
        None => None,
        Some(a) => Some(
            claimline_ndjson::ApiVersion::parse(a)
                .ok_or_else(|| {
                    LoadError::Usage(
                        "--api takes v1, v2 or v3 (the BCDA API version to compare)".to_owned(),
                    )
                })?
                .as_str(),
        ),
    };
    let db_path = out.join("claimline.sqlite");
    if !claimline_sink::database_present(&db_path)? {
        return Err(LoadError::Usage(format!(
            "{} has no claimline.sqlite: reconcile reads the SQLite tables (load with --format sqlite or both)",
            out.display()
        )));
    }
    let conn = claimline_sink::open_earlier(&db_path)?;
    reconcile_in(&conn, &db_path, api)
}

/// [`reconcile`] on the database `conn`, opened at `db_path` (a caller that reads the same
/// state of the tables on another connection too: the run report). `api` is `v1`, `v2` or
/// `v3` when given.
///
/// # Errors
/// As [`reconcile`].
pub fn reconcile_in(
    conn: &rusqlite::Connection,
    db_path: &Path,
    api: Option<&str>,
) -> Result<ReconcileReport, LoadError> {
    let sqlite_error = crate::loader::sqlite_error(db_path);
    let tables = claimline_sink::table_names(conn, db_path)?;
    if !["cclf1", "cclf5", "cclf6", "cclf7"]
        .iter()
        .all(|t| tables.contains(*t))
    {
        return Err(LoadError::Usage(format!(
            "{} has no CCLF claim tables (cclf1, cclf5, cclf6, cclf7) to reconcile",
            db_path.display()
        )));
    }
    let mut loaded: Vec<String> = conn
        .prepare(VERSIONS_SQL)
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, Option<String>>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(&sqlite_error)?
        .into_iter()
        .flatten()
        .filter(|v| claimline_ndjson::ApiVersion::parse(v).is_some())
        .collect();
    loaded.sort();
    if let Some(api) = api
        && !loaded.iter().any(|v| v == api)
    {
        return Err(LoadError::Usage(format!(
            "--api {api}: the tables hold no claims of it (they hold {})",
            if loaded.is_empty() {
                "no BCDA claims".to_owned()
            } else {
                loaded.join(", ")
            }
        )));
    }
    let api_version = api.map(str::to_owned).or_else(|| loaded.last().cloned());
    let other_api_versions = loaded
        .into_iter()
        .filter(|v| Some(v) != api_version.as_ref())
        .collect();
    let mut stmt = conn.prepare(CLAIMS_SQL).map_err(&sqlite_error)?;
    let rows = stmt
        .query_map([api_version.as_deref()], |r| {
            let n = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
            let cents = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0));
            let text = |c: i64| claimline_model::decimal_text(i128::from(c), 2);
            let bcda_paid_cents = cents(7)?;
            Ok(ReconcileRow {
                claim_type: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                month: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                bcda_claims: n(2)?,
                cclf_claims: n(3)?,
                in_both: n(4)?,
                only_bcda: n(5)?,
                only_cclf: n(6)?,
                bcda_paid: text(bcda_paid_cents),
                cclf_paid: text(cents(8)?),
                paid_differs: n(9)?,
                bcda_paid_cents,
            })
        })
        .map_err(&sqlite_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&sqlite_error)?;
    let cclf_months = rows.iter().filter(|r| r.cclf_claims > 0).map(|r| &r.month);
    let months = cclf_months
        .clone()
        .min()
        .zip(cclf_months.max())
        .map(|(a, b)| (a.clone(), b.clone()));
    Ok(ReconcileReport {
        api_version,
        other_api_versions,
        months,
        rows,
    })
}

impl ReconcileReport {
    /// The table `claimline reconcile` prints.
    ///
    /// # Errors
    /// A failed write to `out`.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        if let Some(api) = &self.api_version {
            write!(out, "bcda: the claims of API {api}")?;
            if !self.other_api_versions.is_empty() {
                write!(
                    out,
                    " (also loaded, not compared: {}; --api chooses)",
                    self.other_api_versions.join(", ")
                )?;
            }
            writeln!(out)?;
        }
        writeln!(
            out,
            "{:<4} {:<7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>16} {:>16} {:>8}",
            "type",
            "month",
            "bcda",
            "cclf",
            "both",
            "only bcda",
            "only cclf",
            "bcda paid",
            "cclf paid",
            "paid ≠"
        )?;
        for r in &self.rows {
            writeln!(
                out,
                "{:<4} {:<7} {:>8} {:>8} {:>8} {:>9} {:>9} {:>16} {:>16} {:>8}",
                r.claim_type,
                r.month,
                r.bcda_claims,
                r.cclf_claims,
                r.in_both,
                r.only_bcda,
                r.only_cclf,
                r.bcda_paid,
                r.cclf_paid,
                r.paid_differs
            )?;
        }
        Ok(())
    }
}
