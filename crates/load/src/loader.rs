//! The load pipeline: NDJSON files through the views and the link stage into every sink of the
//! output, in one pass, then the claim-history rule, then one commit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use claimline_link::{
    BeneIndex, ClaimEvent, Decision, Excluded, Plan, ResourceOutput, Scratch, TableRow,
    VersionMode, decide, patient_mbi,
};
use claimline_model::{
    Cell, CompactString, RunRecord, TableSchema, create_private_dir, format_timestamp,
};
use claimline_ndjson::{InputFile, Manifest, RejectTarget, ScanOptions, discover, scan};
use claimline_sink::{
    CurrentBuild, HeldRun, ParquetSink, PgSession, PgTarget, PostgresSink, SourceLines, SqliteSink,
    TableSink,
};

use crate::earlier::{Bene, EarlierState, PgEarlier, SqliteEarlier};
use crate::history_spool::{Entry, HistoryFolder, HistorySpool, Recorded, history_dir};
use crate::output::{now_micros, run_id_from};
use crate::{LoadError, Progress, views};

/// A kind of output a load writes: opens a [`TableSink`] for one run. Adding an output (a
/// database, a file format) is one implementation of this trait and one [`crate::Format`] (or a
/// call to [`Loader::sink`]).
pub trait SinkKind: Send + Sync {
    /// A short name (`sqlite`, `parquet`).
    fn name(&self) -> &'static str;

    /// Where in the output folder `out` it writes (for the report).
    fn location(&self, out: &Path) -> PathBuf;

    /// Opens the sink for run `run_id` writing `tables` into the output folder `out`.
    ///
    /// # Errors
    /// The sink's failure to open (a damaged database, a folder it cannot make).
    fn open(
        &self,
        out: &Path,
        run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error>;

    /// For an output that keeps the claim-history state (a database): what earlier runs
    /// committed, read for the load that is starting. A database shared by several output
    /// folders also locks here, for the whole load (the returned state holds the lock until it
    /// is dropped). `None` (the default): nothing kept, nothing locked.
    ///
    /// # Errors
    /// A database that cannot be read; [`LoadError::Sink`] with
    /// [`claimline_sink::PgFailure::Busy`] when another load holds it.
    fn earlier(&self, out: &Path) -> Result<Option<Box<dyn EarlierState>>, LoadError> {
        let _ = out;
        Ok(None)
    }

    /// Whether the sink puts each row into its output as it comes, during the scan: a
    /// database, whose inserts run on the thread that collects the scan's chunks in input
    /// order, beside the workers. A load writing to one runs a scan worker more than the cores
    /// unless told how many ([`Loader::threads`]). The default, false: the rows are held, and
    /// encoded once the scan is over (Parquet).
    fn writes_during_scan(&self) -> bool {
        false
    }
}

/// `DIR/claimline.sqlite`.
pub struct SqliteOutput;

impl SinkKind for SqliteOutput {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self, out: &Path) -> PathBuf {
        out.join("claimline.sqlite")
    }

    fn open(
        &self,
        out: &Path,
        _run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error> {
        Ok(Box::new(SqliteSink::open(&self.location(out), tables)?))
    }

    fn earlier(&self, out: &Path) -> Result<Option<Box<dyn EarlierState>>, LoadError> {
        let path = self.location(out);
        if !claimline_sink::database_present(&path)? {
            return Ok(None);
        }
        Ok(Some(Box::new(SqliteEarlier::open(&path)?)))
    }

    fn writes_during_scan(&self) -> bool {
        true
    }
}

/// One schema of a PostgreSQL database: typed tables, rows in by binary `COPY`, one
/// transaction per run; the schema's advisory lock is held for the whole load.
pub struct PostgresOutput {
    target: PgTarget,
}

impl PostgresOutput {
    /// Tables in `target`'s schema.
    pub fn new(target: PgTarget) -> Self {
        PostgresOutput { target }
    }
}

impl SinkKind for PostgresOutput {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn location(&self, _out: &Path) -> PathBuf {
        PathBuf::from(self.target.to_string())
    }

    fn open(
        &self,
        _out: &Path,
        _run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error> {
        Ok(Box::new(PostgresSink::open(&self.target, tables)?))
    }

    fn earlier(&self, _out: &Path) -> Result<Option<Box<dyn EarlierState>>, LoadError> {
        let session = PgSession::lock(&self.target)?;
        Ok(Some(Box::new(PgEarlier::new(session)?)))
    }

    fn writes_during_scan(&self) -> bool {
        true
    }
}

/// `DIR/parquet/<table>/run=<run_id>/part-<n>.parquet`.
pub struct ParquetOutput;

impl SinkKind for ParquetOutput {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn location(&self, out: &Path) -> PathBuf {
        out.join("parquet")
    }

    fn open(
        &self,
        out: &Path,
        run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error> {
        Ok(Box::new(ParquetSink::open(
            &self.location(out),
            run_id,
            tables,
        )?))
    }
}

/// Arrow record batches in memory (the Parquet files' types), appended to a shared
/// [`claimline_sink::ArrowTables`] at commit: for a caller that wants tables, not files.
pub struct ArrowOutput(pub claimline_sink::ArrowTables);

impl SinkKind for ArrowOutput {
    fn name(&self) -> &'static str {
        "arrow"
    }

    fn location(&self, out: &Path) -> PathBuf {
        out.join("(memory)")
    }

    fn open(
        &self,
        _out: &Path,
        _run_id: &str,
        tables: &[TableSchema],
    ) -> Result<Box<dyn TableSink>, claimline_sink::Error> {
        Ok(Box::new(claimline_sink::ArrowSink::new(
            tables,
            self.0.clone(),
        )))
    }
}

/// A load: which views, into which output folder and sinks, with which rules. Built with
/// [`Loader::new`] and its setters; [`Loader::load`] runs it.
pub struct Loader {
    views: Vec<String>,
    out: PathBuf,
    format: crate::Format,
    postgres: Option<PgTarget>,
    /// Sinks a caller chose instead of `format`'s.
    custom: Option<Vec<Box<dyn SinkKind>>>,
    /// Sinks a caller added.
    extra: Vec<Box<dyn SinkKind>>,
    strict: bool,
    run_id: Option<String>,
    threads: usize,
    include_partial: bool,
    accept_damaged: bool,
    all_versions: bool,
    parse_whole: bool,
    history_memory: usize,
    earlier_parquet: Option<PathBuf>,
}

impl Loader {
    /// A load into the output folder `out` with the documented defaults: the built-in `cclf`
    /// views, SQLite and Parquet, the current version of each claim, every core.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Loader {
            views: Vec::new(),
            out: out.into(),
            format: crate::Format::BOTH,
            postgres: None,
            custom: None,
            extra: Vec::new(),
            strict: false,
            run_id: None,
            threads: 0,
            include_partial: false,
            accept_damaged: false,
            all_versions: false,
            parse_whole: false,
            history_memory: crate::history_spool::DEFAULT_BUDGET,
            earlier_parquet: None,
        }
    }

    /// Read what earlier runs left (the MBIs of `bene_xref`) from the Parquet tables of this
    /// output folder instead of `out`'s: for an engine whose tasks load into scratch folders
    /// and write the tables into `folder` themselves (`claimline.spark`).
    pub fn earlier_parquet(mut self, folder: Option<PathBuf>) -> Self {
        self.earlier_parquet = folder;
        self
    }

    /// The views: names of built-in sets (`cclf`, `basic`) or ViewDefinition files and folders
    /// (empty: the built-in `cclf` set).
    pub fn views(mut self, views: Vec<String>) -> Self {
        self.views = views;
        self
    }

    /// The built-in outputs to write (replacing the ones chosen before).
    pub fn format(mut self, format: crate::Format) -> Self {
        self.format = format;
        self.custom = None;
        self
    }

    /// Where the `postgres` format writes.
    pub fn postgres(mut self, target: Option<PgTarget>) -> Self {
        self.postgres = target;
        self
    }

    /// Writes only to `sinks` (replacing the built-in outputs).
    pub fn sinks(mut self, sinks: Vec<Box<dyn SinkKind>>) -> Self {
        self.custom = Some(sinks);
        self
    }

    /// Adds an output of another kind.
    pub fn sink(mut self, kind: Box<dyn SinkKind>) -> Self {
        self.extra.push(kind);
        self
    }

    /// The format's sinks, made for one load (none when the caller chose its own).
    fn built_sinks(&self) -> Result<Vec<Box<dyn SinkKind>>, LoadError> {
        match &self.custom {
            Some(_) => Ok(Vec::new()),
            None => self
                .format
                .sinks(self.postgres.as_ref())
                .map_err(LoadError::Usage),
        }
    }

    /// The sinks of this load, in commit order: `built` (from [`Loader::built_sinks`]) or the
    /// caller's, then the ones added.
    fn kinds<'a>(&'a self, built: &'a [Box<dyn SinkKind>]) -> Vec<&'a dyn SinkKind> {
        self.custom
            .as_deref()
            .unwrap_or(built)
            .iter()
            .chain(&self.extra)
            .map(|k| k.as_ref())
            .collect()
    }

    /// Commit nothing when any line is rejected or any value does not fit its column.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The run id (default: the start time, `YYYYMMDDTHHMMSS.ffffffZ`).
    pub fn run_id(mut self, run_id: Option<String>) -> Self {
        self.run_id = run_id;
        self
    }

    /// Workers of the scan, which parse and evaluate (0: one per core, and one more when a
    /// database is written: see [`SinkKind::writes_during_scan`]). The sinks' encodes
    /// after the scan run on rayon's global pool, which the caller sizes (`claimline load
    /// --threads N` makes it N as well); [`LoadReport::threads`] says what both were.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Keep v3 partially adjudicated and prior-authorization EOBs in the CCLF tables.
    pub fn include_partial(mut self, include: bool) -> Self {
        self.include_partial = include;
        self
    }

    /// Parse every member of every line, not only the root members the views and the link
    /// stage read ([`Plan::pruning`](claimline_link::Plan::pruning)). The tables are the same
    /// either way, and so are the lines refused; this is the slower way, for comparison.
    pub fn parse_whole(mut self, whole: bool) -> Self {
        self.parse_whole = whole;
        self
    }

    /// The memory a run's claim history holds (each EOB's claim event and what the load keeps of
    /// it until the claim-history rule decides) before it waits on disk, sorted by claim group,
    /// in owner-only files in `DIR/.claimline-history/`: 32 MiB unless said (some 260,000 EOBs,
    /// 6.5 GB of seven-year NDJSON). The tables are the same either way.
    pub fn history_memory(mut self, bytes: usize) -> Self {
        self.history_memory = bytes;
        self
    }

    /// Commit what could be read of a damaged input file (otherwise nothing is committed).
    pub fn accept_damaged(mut self, accept: bool) -> Self {
        self.accept_damaged = accept;
        self
    }

    /// Keep every version of a v1/v2 claim, keyed by `_resource_id`.
    pub fn all_versions(mut self, all: bool) -> Self {
        self.all_versions = all;
        self
    }

    /// The output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Loads `inputs` (files and folders) holding the output folder's lock: recovery of what a
    /// dead command left, the pre-pass over Patients, one scan, the claim-history rule, the
    /// commit. A load that fails leaves the previous tables as they were (and no empty folder
    /// it made).
    ///
    /// # Errors
    /// [`LoadError::Busy`] when another command holds the folder; any other [`LoadError`].
    pub fn load(
        &self,
        inputs: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<LoadReport, LoadError> {
        let existed = self.out.exists();
        let lock = crate::output::lock_or_busy(&self.out)?;
        let result = self.load_holding_lock(inputs, progress, &lock);
        drop(lock);
        if result.is_err() {
            crate::output::remove_empty(&self.out, existed);
        }
        result
    }

    /// [`Loader::load`] for a caller that holds the output folder's lock already (`claimline
    /// run` and `reload`, which hold it for longer).
    ///
    /// # Errors
    /// Any [`LoadError`].
    pub fn load_holding_lock(
        &self,
        inputs: &[PathBuf],
        progress: &dyn Progress,
        lock: &crate::output::OutputLock,
    ) -> Result<LoadReport, LoadError> {
        let started_at = Instant::now();
        let files = discover(inputs)?;
        let facts = export_facts(&files)?;
        self.load_discovered(files, facts, started_at, progress, lock)
    }

    /// Loads input files already found, typically held in memory
    /// ([`InputFile::in_memory`](claimline_ndjson::InputFile::in_memory): lines a cluster
    /// engine read, with their files and line numbers), as [`Loader::load`] loads files on disk.
    /// `facts` are the export's, as [`export_facts`] reads them on the machine that has its
    /// manifest; without a transactionTime, `BENE_AGE` is computed at the run's start.
    ///
    /// # Errors
    /// As [`Loader::load`].
    pub fn load_files(
        &self,
        files: Vec<InputFile>,
        facts: ExportFacts,
        progress: &dyn Progress,
    ) -> Result<LoadReport, LoadError> {
        let started_at = Instant::now();
        let existed = self.out.exists();
        let lock = crate::output::lock_or_busy(&self.out)?;
        let result = self.load_discovered(files, facts, started_at, progress, &lock);
        drop(lock);
        if result.is_err() {
            crate::output::remove_empty(&self.out, existed);
        }
        result
    }

    fn load_discovered(
        &self,
        files: Vec<InputFile>,
        facts: ExportFacts,
        started_at: Instant,
        progress: &dyn Progress,
        _lock: &crate::output::OutputLock,
    ) -> Result<LoadReport, LoadError> {
        // Dropped last: the claim history's folder goes once its files have.
        let _history = HistoryFolder(history_dir(&self.out));
        let ExportFacts {
            transaction_time,
            incremental,
        } = facts;
        if let Some(id) = &self.run_id {
            crate::output::check_run_id(id)?;
        }
        let started = crate::output::now_micros();
        let sources = views::sources(&self.views)?;
        let mut plan = Plan::new(views::load(&sources)?)?;
        plan.set_include_partial(self.include_partial);
        plan.add_link_tables();
        let mode = if self.all_versions {
            VersionMode::All
        } else {
            VersionMode::Current
        };
        let built = self.built_sinks()?;
        let kinds = self.kinds(&built);
        let Databases {
            mut earlier,
            held: databases,
        } = open_databases(&kinds, &self.out, progress)?;
        let (earlier_runs, parquet_runs) = runs_held(&mut earlier, &kinds, &self.out)?;
        if let Some(id) = &self.run_id {
            crate::output::check_run_order(
                id,
                earlier_runs
                    .iter()
                    .chain(&parquet_runs)
                    .map(|r| r.run_id.as_str()),
                &self.out,
            )?;
        }
        // A database (SQLite or PostgreSQL) and Parquet that do not hold the same runs (a format
        // switched between loads) have different tables: said at every load, never silently.
        for note in format_notes(&self.out, &kinds, &earlier_runs, &parquet_runs) {
            progress.note(&note);
        }
        let last_run = earlier_runs.last().cloned();
        // Each output this load writes keeps its rule: the database's runs, and Parquet's (an
        // output of Parquet alone has no database to hold them; a format this load does not
        // write is not checked, its runs differ anyway, which `format_notes` says).
        let database = kinds
            .iter()
            .find(|k| matches!(k.name(), "sqlite" | "postgres"))
            .map(|k| k.name());
        let writes_parquet = kinds.iter().any(|k| k.name() == "parquet");
        if let Some((format, before)) = [
            database.zip(earlier_runs.last()),
            writes_parquet
                .then(|| parquet_runs.last())
                .flatten()
                .map(|r| ("parquet", r)),
        ]
        .into_iter()
        .flatten()
        .find(|(_, r)| r.all_versions != self.all_versions)
        {
            return Err(LoadError::Usage(format!(
                "{} was loaded {} --all-versions (its {format} run {}); load into it the same way, or into a new --out",
                self.out.display(),
                if before.all_versions {
                    "with"
                } else {
                    "without"
                },
                before.run_id
            )));
        }
        let views_hash = views::hash(&sources);
        if let Some(before) = &last_run
            && !before.views_hash.is_empty()
            && before.views_hash != views_hash
        {
            // `claimline run` refuses this (its tables must come from one set of views); a plain
            // load may mean it (another set of tables), so it only says so.
            progress.note(&format!(
            "warning: the views differ from those of the last load into {} (run {}): a table both sets feed now holds rows built by two definitions; load into a new --out to keep one (`claimline reload` rebuilds a `claimline run` folder)",
            self.out.display(),
            before.run_id
        ));
        }
        let mut laps = Laps(started_at);
        let mut phases = Phases::default();
        let pre = pre_pass(&files, self.threads, &plan, self.parse_whole)?;
        let benes = if plan.needs_bene_index() {
            let mut index = pre.benes;
            let own = index.len() as u64;
            match &mut earlier {
                Some(e) => e.fill_bene_index(&mut index)?,
                // A Parquet-only output: its own bene_xref partitions.
                None => parquet_bene_index(
                    &self
                        .earlier_parquet
                        .as_ref()
                        .unwrap_or(&self.out)
                        .join("parquet"),
                    &mut index,
                )?,
            }
            let n = index.len() as u64;
            plan.set_bene_index(index);
            Some((own, n))
        } else {
            None
        };
        // Every EOB produces rows; the claim-history rule is applied to what was written once the
        // scan has seen every version (below), so each EOB is parsed once.
        plan.set_version_mode(mode);
        let run_id = self.run_id.clone().unwrap_or_else(|| run_id_from(started));

        create_private_dir(&self.out).map_err(|e| LoadError::io(&self.out, e))?;
        let rejects_dir = self.out.join("rejects");
        create_private_dir(&rejects_dir).map_err(|e| LoadError::io(&rejects_dir, e))?;
        let mut months = match &mut earlier {
            Some(e) => e.months()?,
            None => std::collections::BTreeSet::new(),
        };
        let tables = plan.tables().to_vec();
        let mut sinks: Vec<Box<dyn TableSink>> = Vec::with_capacity(kinds.len());
        for kind in &kinds {
            sinks.push(kind.open(&self.out, &run_id, &tables)?);
        }

        // A run id committed before and loaded again: this attempt's rejects and row errors go
        // beside the committed run's, and replace them only when this attempt commits (found by
        // a review: a retry that failed overwrote the committed run's rejects with its own).
        let again = earlier_runs
            .iter()
            .chain(&parquet_runs)
            .any(|r| r.run_id == run_id);
        let rejects_final = rejects_dir.join(format!("{run_id}.ndjson"));
        let errors_final = rejects_dir.join(format!("{run_id}-row-errors.ndjson"));
        // Named by this attempt's start, which its run record keeps: a retry killed after its
        // commit is found by the next command, which gives the run its rejects
        // (`output::recover`); a failed retry's stay beside the run's, named by their attempt.
        let (rejects_path, errors_path) = if again {
            crate::output::retry_rejects(&rejects_dir, &run_id, started)
        } else {
            (rejects_final.clone(), errors_final.clone())
        };
        let scan_threads = match self.threads {
            0 if kinds.iter().any(|k| k.writes_during_scan()) => database_scan_workers(),
            n => n,
        };
        let opts = ScanOptions {
            strict: self.strict,
            rejects: RejectTarget::File(rejects_path.clone()),
            threads: scan_threads,
            // Line numbers are fixed up per batch below (`shift_lines`).
            lines_in_batch: true,
            // The work after the scan need not wait for the input's unmapping.
            unmap_aside: true,
            pruning: (!self.parse_whole).then(|| std::sync::Arc::new(plan.pruning())),
            ..ScanOptions::default()
        };
        let line_columns = plan.line_columns();
        let total: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(&f.path).ok())
            .map(|m| m.len())
            .sum();
        progress.started(total);
        let mut rows_per_table = vec![0u64; tables.len()];
        // Per table, which columns held a value in some row (a path typo gives a column that never
        // does; the report names it). Lineage columns and columns NULL by design are never
        // named, so they count as seen from the start: no row is looked at for them.
        let mut seen: Vec<Vec<bool>> = tables
            .iter()
            .enumerate()
            .map(|(t, schema)| {
                let by_design = plan.null_by_design(t);
                schema
                    .columns
                    .iter()
                    .map(|c| c.name.starts_with('_') || by_design.contains(&c.name))
                    .collect()
            })
            .collect();
        let mut issues = IssueLog::new(errors_path.clone());
        let mut claims = ClaimCounts::default();
        let mut cclf8 = plan.cclf8_builder();
        let mut counting = Counting::default();
        // Each EOB's claim event and record until the rule decides, within the history's
        // memory budget (past it, on disk).
        let mut spool: HistorySpool<EobRecord> =
            HistorySpool::new(mode, history_dir(&self.out), self.history_memory);
        // The row errors of the EOBs in `spool` that have any, by their place (few have any;
        // held in memory, each with its errors, until the rule decides).
        let mut eob_issues: Vec<EobIssues> = Vec::new();
        // Each Patient that gave MBI rows, to keep one copy of a Patient the input holds twice.
        let mut patients = PatientCopies::new(&plan, &tables);
        let history_rule = plan.has_claim_tables();
        phases.setup = laps.lap();
        let summary = scan(
            &files,
            &opts,
            Scratch::default,
            |scratch, r| {
                let (out, event) = if history_rule {
                    let (out, event) = plan.evaluate_with_event(r, &run_id, scratch, mode);
                    (out, event.map(|e| (e, plan.claim_views_for(r.api_version))))
                } else {
                    (plan.evaluate(r, &run_id, scratch), None)
                };
                (out, r.file_index, r.line, r.api_version, event)
            },
            |batch| {
                progress.advanced(batch.disk_bytes);
                progress.resources(batch.items.len() as u64);
                claimline_fault::point("scan.batch")?;
                let mut per_table: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); tables.len()];
                for (mut out, file_index, line, api_version, event) in batch.items {
                    out.shift_lines(&line_columns, batch.line_offset);
                    let line = line + batch.line_offset;
                    let ResourceOutput {
                        rows,
                        issues: found,
                        unresolved_mbi,
                        excluded,
                        summary,
                        bene_part,
                        ..
                    } = out;
                    if let Some(part) = bene_part {
                        cclf8.add(part);
                    }
                    patients.see(&rows, api_version, file_index, line);
                    let no_rows = rows.is_empty();
                    for row in rows {
                        per_table[row.table].push(row.cells);
                    }
                    let record = EobRecord {
                        line,
                        api_version,
                        share: summary.map(Share::of),
                        excluded,
                        unresolved_mbi,
                        claim_views: false,
                        wrote_rows: !no_rows,
                    };
                    // An EOB left out of the CCLF tables (v3 partially adjudicated or prior
                    // authorization) that gave no row gives no version either: it neither
                    // replaces nor removes a version of its claim that runs held before or
                    // after it (it made the claim vanish from Parquet's rule only).
                    let event = event.filter(|_| record.excluded.is_none() || !no_rows);
                    match event {
                        // Rows written now; kept, dropped or left to Parquet after the scan.
                        Some((e, claim_views)) => {
                            if !found.is_empty() {
                                eob_issues.push(EobIssues {
                                    position: e.position,
                                    line,
                                    issues: found,
                                    kept: false,
                                });
                            }
                            spool.push(
                                e,
                                EobRecord {
                                    claim_views,
                                    ..record
                                },
                            )?;
                        }
                        None => {
                            record.count(&mut claims, &mut counting);
                            record_issues(
                                &mut issues,
                                &tables,
                                &files[file_index].path,
                                line,
                                &found,
                            )?;
                        }
                    }
                }
                for (t, rows) in per_table.into_iter().enumerate() {
                    if !rows.is_empty() {
                        write_table(&mut sinks, &mut rows_per_table, &mut seen, t, rows)?;
                    }
                }
                Ok(())
            },
        );
        progress.finished();
        phases.scan = laps.lap();
        let summary = summary?;

        // The claim-history rule on what the scan wrote: per group the kept version, against what
        // earlier runs left in SQLite; a batch of whole groups at a time, in the groups' order
        // (the order `_claimline_claims` records them in).
        let events = spool.len();
        let mut groups = spool.finish()?;
        // `_claimline_claims`' rows: a quarter of the budget in memory, past it on disk.
        let mut recorded = Recorded::new(history_dir(&self.out), self.history_memory / 4);
        recorded.reserve_rows(events);
        let mut history = HistoryCounts::default();
        let mut removals: Vec<Vec<Cell>> = Vec::new();
        // Versions not kept leave both outputs; stale ones (an earlier run holds a newer version)
        // stay in this run's Parquet partition only.
        let mut not_kept = claimline_sink::SourceLines::new();
        let mut stale_rows = claimline_sink::SourceLines::new();
        let file_names: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        let decides = earlier.as_ref().is_some_and(|e| e.has_claims());
        let mut batch: Vec<Entry<EobRecord>> = Vec::new();
        let mut starts: Vec<usize> = Vec::new();
        // Within the budget: half of it for a batch, up to [`HISTORY_BATCH`].
        let at_once = (self.history_memory / 2 / std::mem::size_of::<Entry<EobRecord>>())
            .clamp(1, HISTORY_BATCH);
        while groups.next_batch(&mut batch, &mut starts, at_once)? {
            let members: Vec<&ClaimEvent> = batch.iter().map(|e| &e.event).collect();
            let run_groups: Vec<claimline_link::RunGroup<'_>> = starts
                .windows(2)
                .map(|w| claimline_link::RunGroup::of(mode, &members[w[0]..w[1]]))
                .collect();
            // Per group: the run's rows for it are stale (an earlier run's stay).
            let mut stale = vec![false; run_groups.len()];
            if let Some(e) = earlier.as_mut().filter(|_| decides) {
                let heads = e.stored_heads(mode, &run_groups)?;
                // A group's cells in the replace key's order: (`_api_version`, `_claim_key`),
                // with `--all-versions` (`_api_version`, `_claim_key`, `_resource_id`).
                let key_of = |g: &claimline_link::RunGroup<'_>| -> Vec<Cell> {
                    let api = g.api_version.map_or(Cell::Null, |v| Cell::text(v.as_str()));
                    match g.claim_key {
                        None => vec![api, Cell::text(g.key)],
                        Some(claim) => vec![api, Cell::text(claim), Cell::text(g.key)],
                    }
                };
                for (((g, w), (stored, head_cancelled)), stale) in run_groups
                    .iter()
                    .zip(starts.windows(2))
                    .zip(heads)
                    .zip(&mut stale)
                {
                    match decide(g, stored.as_ref(), head_cancelled) {
                        // A head that gave no row replaces the stored rows with none.
                        Decision::Write
                            if stored.is_some()
                                && g.head.is_some_and(|h| {
                                    batch[w[0]..w[1]]
                                        .iter()
                                        .any(|x| std::ptr::eq(&x.event, h) && !x.record.wrote_rows)
                                }) =>
                        {
                            removals.push(key_of(g));
                        }
                        Decision::Write => {}
                        Decision::Delete => {
                            history.removed += 1;
                            removals.push(key_of(g));
                            *stale = true;
                        }
                        Decision::Keep => {
                            if g.head.is_some() {
                                history.stale += 1;
                            }
                            *stale = true;
                        }
                    }
                }
            }
            for ((g, w), &stale) in run_groups.iter().zip(starts.windows(2)).zip(&stale) {
                for entry in &batch[w[0]..w[1]] {
                    let eob = &entry.record;
                    // Its line among those a sink drops.
                    let line_of = |lines: &mut claimline_sink::SourceLines| {
                        lines
                            .entry(file_names[entry.event.position.0].clone())
                            .or_default()
                            .insert(eob.line as i64);
                    };
                    if !g.keeps(&entry.event) {
                        claims.superseded += u64::from(eob.claim_views);
                        line_of(&mut not_kept);
                        continue;
                    }
                    if stale {
                        claims.unresolved_mbi += u64::from(eob.unresolved_mbi);
                        line_of(&mut stale_rows);
                        continue;
                    }
                    eob.count(&mut claims, &mut counting);
                    // Its row errors, written below in input order.
                    if let Ok(at) =
                        eob_issues.binary_search_by_key(&entry.event.position, |i| i.position)
                    {
                        eob_issues[at].kept = true;
                    }
                }
                for e in g.recorded() {
                    if e.action == claimline_link::Action::Cancel {
                        history.cancels += 1;
                    }
                    recorded.push(e)?;
                }
            }
        }
        drop(groups);
        for found in eob_issues.into_iter().filter(|i| i.kept) {
            let path = &files[found.position.0].path;
            record_issues(&mut issues, &tables, path, found.line, &found.issues)
                .map_err(|e| LoadError::io(&issues.path, std::io::Error::other(e)))?;
        }
        issues
            .finish()
            .map_err(|e| LoadError::io(&issues.path, e))?;
        let claim_tables: Vec<usize> = (0..tables.len())
            .filter(|&t| plan.is_claim_table(t))
            .collect();
        let replace_key = tables
            .iter()
            .find(|t| t.replace_key.iter().any(|k| k == "_claim_key"))
            .map(|t| t.replace_key.clone());
        // The copies of a Patient the input holds more than once, but one (their rows are in
        // `bene_xref` and `cclf9` only, whose lines no claim table holds).
        let (patient_tables, copies) = patients.not_kept(&file_names);
        let mut drop_tables = claim_tables.clone();
        if !copies.is_empty() {
            drop_tables.extend(patient_tables);
            let n: usize = copies.values().map(|lines| lines.len()).sum();
            progress.note(&format!(
                "{n} Patient cop{} left out: the input holds {} more than once (Group/all and Group/runout together, say); the rows of the latest copy stay",
                if n == 1 { "y" } else { "ies" },
                if n == 1 { "that Patient" } else { "those Patients" }
            ));
        }
        for (file, lines) in copies {
            not_kept.entry(file).or_default().extend(lines);
        }
        let mut gone = not_kept.clone();
        for (file, lines) in &stale_rows {
            gone.entry(file.clone()).or_default().extend(lines);
        }
        // The report counts rows as the first sink that replaces (else the first sink) holds them.
        let counted = sinks.iter().position(|s| s.replaces()).unwrap_or(0);
        // Each sink on a worker of its own (SQLite's deletes beside Parquet's cuts).
        use rayon::prelude::*;
        let dropped: Vec<Result<Vec<u64>, claimline_sink::Error>> = sinks
            .par_iter_mut()
            .map(|sink| {
                if sink.replaces() {
                    if let Some(key) = &replace_key
                        && !removals.is_empty()
                    {
                        sink.remove_keys(key, removals.clone())?;
                    }
                    sink.drop_rows(&drop_tables, &gone)
                } else {
                    // Stale versions stay in an append-only sink's run; its readers' rule skips
                    // them.
                    sink.drop_rows(&drop_tables, &not_kept)
                }
            })
            .collect();
        for (i, removed) in dropped.into_iter().enumerate() {
            let removed = removed?;
            if i == counted {
                for (&t, n) in drop_tables.iter().zip(removed) {
                    rows_per_table[t] -= n;
                }
            }
        }
        let counts: BTreeMap<CountKey, Counted> = counting
            .into_iter()
            .map(|((v, of), n)| {
                let (ty, month) = of.parts();
                (
                    (v.map(|v| v.as_str().to_owned()), ty.into(), month.into()),
                    n,
                )
            })
            .collect();
        months.extend(
            counts
                .keys()
                .filter_map(|(v, _, m)| v.clone().map(|v| (v, m.clone()))),
        );
        let overlap = v2_v3_overlap(&months);
        if !overlap.is_empty() {
            progress.note(&format!(
            "warning: {} holds v2 and v3 claims for {} service month(s) ({}); the same claims may be counted twice: see the README's v2 to v3 cutover recipe",
            self.out.display(),
            overlap.len(),
            month_ranges(&overlap)
        ));
        }
        let coverage_only = cclf8.coverage_only();
        let patient_only = if plan.cclf8_reads_coverage() {
            cclf8.patient_only()
        } else {
            0
        };
        // What did not come in an incremental export did not change since its `_since`: a
        // Coverage column that no Coverage of the run fills keeps the beneficiary's earlier
        // `cclf8` row's value. Otherwise (a full export, or none says) only a Patient that came
        // with no Coverage at all takes its earlier row's Coverage columns.
        let without: HashSet<Bene> = if plan.cclf8_reads_coverage() {
            cclf8.patients_without_coverage().into_iter().collect()
        } else {
            HashSet::new()
        };
        let mut carried_from = HashSet::new();
        if plan.cclf8_reads_coverage() && plan.cclf8_table().is_some() {
            let wanted: HashSet<Bene> = if incremental {
                cclf8.patients_in_run().into_iter().collect()
            } else {
                without.clone()
            };
            if !wanted.is_empty() {
                let columns = plan.cclf8_coverage_columns();
                let values = match &mut earlier {
                    Some(e) => e.cclf8_values(&columns, &wanted)?,
                    None => parquet_cclf8_values(
                        &self
                            .earlier_parquet
                            .as_ref()
                            .unwrap_or(&self.out)
                            .join("parquet"),
                        &columns,
                        &wanted,
                    )?,
                };
                for ((version, bene), fields) in values {
                    let key = (version, bene.clone());
                    if cclf8.carry(version, bene, fields) {
                        carried_from.insert(key);
                    }
                }
            }
        }
        let null = without
            .iter()
            .filter(|b| !carried_from.contains(*b))
            .count() as u64;
        if null > 0 {
            progress.note(&format!(
                "warning: {null} beneficiar{} came with a Patient, no Coverage, and no earlier cclf8 row: {} cclf8 row's Coverage columns (entitlement, status, dual, buy-in) are NULL; an export with their Coverage fills them",
                if null == 1 { "y" } else { "ies" },
                if null == 1 { "its" } else { "their" }
            ));
        }
        let mut coverage_carried = 0;
        if let Some(t) = plan.cclf8_table() {
            // BENE_AGE as of the export's transactionTime, else the run's start.
            let as_of = claimline_link::bene_age_day(transaction_time.as_deref(), started);
            // A batch of rows at a time: every beneficiary's row at once was the load's peak
            // (about 2 KB a row: 99 MB of 156 for 50,000 beneficiaries, under heaptrack).
            let used = cclf8.rows_in_chunks(as_of, claimline_sink::BATCH_ROWS, |rows| {
                write_table(&mut sinks, &mut rows_per_table, &mut seen, t, rows)
            })?;
            coverage_carried = used;
            if used > 0 {
                progress.note(&format!(
                    "note: {used} beneficiar{} took Coverage columns (entitlement, status, dual, buy-in) that this run's Coverage left empty from their earlier cclf8 row ({})",
                    if used == 1 { "y" } else { "ies" },
                    if incremental {
                        "an incremental export brings only what changed"
                    } else {
                        "their Patient came with no Coverage"
                    }
                ));
            }
        }
        if let Some(t) = plan.counts_table() {
            let rows: Vec<Vec<Cell>> = counts
                .iter()
                .map(|((version, ty, month), (n, lines, cents))| {
                    // A sum its column cannot hold is NULL, said, never the load's failure.
                    let sum = if cents.unsigned_abs() < claimline_link::PAYMENT_SUM_LIMIT {
                        Cell::Decimal(*cents)
                    } else {
                        progress.note(&format!(
                            "warning: {}: the payments of {} {ty} claims of {month} sum past PAYMENT_SUM's 18 digits; it is NULL",
                            claimline_link::COUNTS_TABLE,
                            version.as_deref().unwrap_or("unversioned")
                        ));
                        Cell::Null
                    };
                    vec![
                        Cell::text(run_id.as_str()),
                        version.as_deref().map_or(Cell::Null, Cell::text),
                        Cell::text(ty.as_str()),
                        Cell::text(month.as_str()),
                        Cell::Int(*n as i64),
                        Cell::Int(*lines as i64),
                        sum,
                    ]
                })
                .collect();
            write_table(&mut sinks, &mut rows_per_table, &mut seen, t, rows)?;
        }
        if let Some(t) = plan.claims_table() {
            // A row per claim version recorded, made straight into Arrow batches (as the
            // Parquet sink cuts rows written to it) on every core: the workers are free now. A
            // few batches a worker at a time, each written before the next are made: the rows
            // of a run's every claim group are never all held at once (they were some 100 bytes
            // an EOB, beside the run's claim history).
            use rayon::prelude::*;
            let arrow = claimline_sink::arrow_schema(&tables[t]);
            let at_once = claimline_sink::BATCH_ROWS * 2 * rayon::current_num_threads();
            recorded.read_back(at_once, |group| {
                let batches: Vec<arrow_array::RecordBatch> = group
                    .par_chunks(claimline_sink::BATCH_ROWS)
                    .map(|chunk| {
                        claimline_sink::record_batch(
                            &tables[t],
                            &arrow,
                            chunk.iter().map(|e| {
                                claimline_link::claims_row(
                                    e.api_version.map(|v| v.as_str()),
                                    &e.claim_key,
                                    &e.resource_id,
                                    e.last_updated,
                                    e.action,
                                    &run_id,
                                )
                            }),
                        )
                    })
                    .collect::<Result<_, _>>()?;
                write_table_batches(&mut sinks, &mut rows_per_table, &mut seen, t, batches)?;
                Ok(())
            })?;
        }

        let null_columns: BTreeMap<String, Vec<String>> = tables
            .iter()
            .enumerate()
            .filter(|&(t, _)| rows_per_table[t] > 0)
            .filter_map(|(t, schema)| {
                let never: Vec<String> = schema
                    .columns
                    .iter()
                    .zip(&seen[t])
                    .filter(|(_, seen)| !**seen)
                    .map(|(c, _)| c.name.clone())
                    .collect();
                (!never.is_empty()).then(|| (schema.name.clone(), never))
            })
            .collect();
        let table_counts: BTreeMap<String, u64> = tables
            .iter()
            .zip(&rows_per_table)
            .map(|(t, n)| (t.name.clone(), *n))
            .collect();
        let mut versions: Vec<String> = summary
            .files
            .iter()
            .flat_map(|f| f.api_versions.keys().cloned())
            .collect();
        versions.sort();
        versions.dedup();
        let record = RunRecord {
            run_id: run_id.clone(),
            started: format_timestamp(started),
            finished: format_timestamp(now_micros()),
            inputs: files.iter().map(|f| f.path.display().to_string()).collect(),
            api_versions: versions.clone(),
            views_hash,
            resources: summary.resources(),
            tables: table_counts.clone(),
            rejects: summary.reject_count,
            row_errors: issues.count,
            transaction_time,
            all_versions: self.all_versions,
        };
        let damaged: Vec<DamagedFile> = summary
            .damaged()
            .map(|(f, d)| {
                let expected = fetched_lines(&f.path);
                let resources_lost = expected.map(|n| n.saturating_sub(d.resources_read));
                let mut message = d.describe(&f.path);
                if let (Some(lost), Some(n)) = (resources_lost, expected) {
                    message.push_str(&format!(
                        "; {lost} of the {n} resources the download counted are lost"
                    ));
                }
                DamagedFile {
                    file: f.path.clone(),
                    damage: d.clone(),
                    resources_lost,
                    message,
                }
            })
            .collect();
        let failed_strict = self.strict && (summary.reject_count > 0 || issues.count > 0);
        // A corrupt stream's lines read may be altered: never committed (found by a review: a
        // payment changed under a bad checksum was loaded with --accept-rejects).
        let untrusted = damaged.iter().any(|d| !d.damage.read_is_trusted);
        let refused = failed_strict || (!damaged.is_empty() && (!self.accept_damaged || untrusted));
        // The current rows of the claim tables, derived from the Parquet history: built while
        // the run is committed, swapped in after.
        let parquet = kinds.iter().any(|k| k.name() == "parquet");
        let claim_tables: Vec<String> = (0..tables.len())
            .filter(|&t| plan.is_claim_table(t))
            .map(|t| tables[t].name.clone())
            .collect();
        phases.history = laps.lap();
        let committed = if !refused {
            Some(commit_sinks(
                sinks,
                &record,
                &self.out,
                parquet.then_some(claim_tables.as_slice()),
            )?)
        } else {
            drop(sinks);
            None
        };
        // A retry that committed: its rejects and row errors are the run's now (none: the
        // committed run's go, as its rows did).
        let (rejects_file, errors_file) = if again && committed.is_some() {
            crate::output::promote_retry(
                (&rejects_path, &errors_path),
                (&rejects_final, &errors_final),
            )?;
            (
                summary.rejects_file.as_ref().map(|_| rejects_final.clone()),
                issues.written.then(|| errors_final.clone()),
            )
        } else {
            (
                summary.rejects_file.clone(),
                issues.written.then(|| issues.path.clone()),
            )
        };
        // The database locks go with the load.
        drop(earlier);
        drop(databases);
        phases.commit = laps.lap();
        let current = committed
            .filter(|_| parquet)
            .and_then(|c| refresh_current_tables(&self.out, &claim_tables, c, progress));
        phases.current = laps.lap();

        let seconds = started_at.elapsed().as_secs_f64();
        let report = LoadReport {
            phases,
            current,
            api_versions: versions,
            run_id,
            resources: summary.resources(),
            tables: table_counts,
            rejects: Rejects {
                count: summary.reject_count,
                file: rejects_file,
            },
            row_errors: RowErrors {
                count: issues.count,
                by_column: issues.by_column.clone(),
                file: errors_file,
            },
            bytes: summary.bytes(),
            ndjson_bytes: summary.ndjson_bytes(),
            seconds,
            mb_per_s: if seconds > 0.0 {
                summary.ndjson_bytes() as f64 / 1e6 / seconds
            } else {
                0.0
            },
            outputs: kinds.iter().map(|k| k.location(&self.out)).collect(),
            committed: !refused,
            damaged,
            beneficiaries: benes.map(|(own, n)| Beneficiaries {
                with_mbi: own,
                known: n,
                coverage_without_patient: coverage_only,
                patient_without_coverage: patient_only,
                coverage_carried,
                unresolved_claims: claims.unresolved_mbi,
            }),
            v2_v3_overlap_months: overlap,
            null_columns,
            custom_views: sources.iter().any(|s| !s.origin.starts_with("builtin:")),
            history: History {
                superseded: claims.superseded,
                stale_groups: history.stale,
                removed_groups: history.removed,
                cancels: history.cancels,
                all_versions: self.all_versions,
            },
            excluded: ExcludedClaims {
                partial: claims.excluded_partial,
                prior_auth: claims.excluded_prior_auth,
            },
            threads: Threads {
                scan: summary.workers,
                encode: rayon::current_num_threads(),
            },
        };
        Ok(report)
    }
}

/// (API version, claim type, service month) of `_claimline_counts`; the values are claims,
/// lines and the payment sum in cents.
type CountKey = (Option<String>, String, String);

/// [`CountKey`] as a load adds to it, one claim at a time: the API version as itself and the
/// claim type and month packed ([`CountOf`]), not as new strings per claim, in a hash map (the
/// ordered map is made once, after the scan).
type Counting = foldhash::HashMap<(Option<claimline_ndjson::ApiVersion>, CountOf), Counted>;

/// Claims, lines and the payment sum in cents of one [`CountKey`].
type Counted = (u64, u64, i128);

/// Per-claim counts of the link stage.
#[derive(Default)]
struct ClaimCounts {
    superseded: u64,
    unresolved_mbi: u64,
    excluded_partial: u64,
    excluded_prior_auth: u64,
}

/// Counts of the claim-history rule against earlier runs.
#[derive(Default)]
struct HistoryCounts {
    stale: u64,
    removed: u64,
    cancels: u64,
}

/// Writes `rows` of table `t` to every sink (the last one takes them), counts them, and notes
/// which columns held a value (`seen`).
fn write_table(
    sinks: &mut [Box<dyn TableSink>],
    counted: &mut [u64],
    seen: &mut [Vec<bool>],
    t: usize,
    rows: Vec<Vec<Cell>>,
) -> Result<(), claimline_sink::Error> {
    counted[t] += rows.len() as u64;
    claimline_model::mark_held(&mut seen[t], &rows);
    write_rows(sinks, t, rows)
}

/// As [`write_table`], for rows made into Arrow batches of the table's schema.
fn write_table_batches(
    sinks: &mut [Box<dyn TableSink>],
    counted: &mut [u64],
    seen: &mut [Vec<bool>],
    t: usize,
    batches: Vec<arrow_array::RecordBatch>,
) -> Result<(), claimline_sink::Error> {
    use arrow_array::Array as _;
    // Each batch goes once every sink has it: a sink that encodes it (past its memory budget)
    // then frees its memory.
    for batch in batches {
        counted[t] += batch.num_rows() as u64;
        for (c, held) in seen[t].iter_mut().enumerate() {
            *held |= batch
                .columns()
                .get(c)
                .is_some_and(|col| col.null_count() < col.len());
        }
        for sink in sinks.iter_mut() {
            sink.write_batch(t, &batch)?;
        }
    }
    Ok(())
}

/// Writes rows of table `t` to every sink (copies for all but the last, which takes them).
pub(crate) fn write_rows(
    sinks: &mut [Box<dyn TableSink>],
    t: usize,
    rows: Vec<Vec<Cell>>,
) -> Result<(), claimline_sink::Error> {
    if let Some((last, first)) = sinks.split_last_mut() {
        for sink in first {
            sink.write_rows(t, &rows)?;
        }
        last.write(t, rows)?;
    }
    Ok(())
}

/// The scan's workers for a load into a database when no count was given: one more than the
/// cores ([`SinkKind::writes_during_scan`]: the database takes each row on the thread that
/// collects the chunks, as they come, and that thread's share of a core beside the workers' left
/// a core idle now and then: every table of a 582 MB export into SQLite on 2 cores took 0.523 s
/// with 2 workers, 0.506 s with 3; into PostgreSQL 1.14 s and 1.08 s; into Parquet alone, whose
/// rows wait for the commit, the same or 2% slower). 0 (rayon's global pool as it is) on one
/// core, and when rayon's pool is not one per core: a `RAYON_NUM_THREADS` below the cores is
/// the user's cap.
fn database_scan_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores >= 2 && rayon::current_num_threads() == cores {
        (cores + 1).min(claimline_ndjson::MAX_THREADS)
    } else {
        0
    }
}

/// What the pre-pass found.
struct PrePass {
    benes: BeneIndex,
}

/// First pass: the files of the input that may hold Patients (by manifest type, else every file
/// whose name's first word is not another type BCDA serves) to beneficiary id → current MBI, so
/// the main pass can fill `BENE_MBI_ID`. Rejects are left to the main pass. A Patient is parsed
/// for its `identifier` (and what version detection reads, where no manifest tells the
/// version), every line still checked whole, unless `parse_whole`.
fn pre_pass(
    files: &[InputFile],
    threads: usize,
    plan: &Plan,
    parse_whole: bool,
) -> Result<PrePass, LoadError> {
    // A file whose type neither a manifest nor its name tells (`all.ndjson`) may hold Patients:
    // read too (found by a review: the MBIs of Patients in such a file resolved no claim). Only
    // a name whose first word (up to a `.`, `-` or `_`) is another type BCDA serves is passed
    // over (`ClaimlineExport.ndjson` and `Claims-2024.ndjson` are read).
    const OTHER_TYPES: [&str; 5] = [
        "ExplanationOfBenefit",
        "Coverage",
        "ClaimResponse",
        "Claim",
        "OperationOutcome",
    ];
    let is_patient = |f: &InputFile| match &f.expected_type {
        Some(t) => t == "Patient",
        None => f.path.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            let word = n.split(['.', '-', '_']).next().unwrap_or_default();
            !OTHER_TYPES.contains(&word)
        }),
    };
    let mut out = PrePass {
        benes: BeneIndex::default(),
    };
    let wanted: Vec<InputFile> = files.iter().filter(|f| is_patient(f)).cloned().collect();
    if !plan.needs_bene_index() || wanted.is_empty() {
        return Ok(out);
    }
    // What `patient_mbi` reads (`id` and `resourceType` the scanner reads itself, and
    // `Pruning` adds what version detection reads); of the other types a file of no told type
    // may hold, no more than that.
    let pruning = (!parse_whole).then(|| {
        let mut pruning = claimline_ndjson::Pruning::new();
        let mut needs = claimline_ndjson::Needs::new();
        needs.add("identifier", claimline_ndjson::Need::Whole);
        pruning.set("Patient", needs);
        pruning.set_others(claimline_ndjson::Needs::new());
        std::sync::Arc::new(pruning)
    });
    let opts = ScanOptions {
        threads,
        lines_in_batch: true,
        pruning,
        ..ScanOptions::default()
    };
    scan(
        &wanted,
        &opts,
        || (),
        |(), r| {
            if r.resource_type == "Patient" {
                patient_mbi(r)
            } else {
                None
            }
        },
        |batch| {
            for (version, bene, mbi) in batch.items.into_iter().flatten() {
                out.benes.insert(version, bene, mbi);
            }
            Ok(())
        },
    )?;
    Ok(out)
}

/// The Patients a load saw that gave `bene_xref` rows. When the input holds one Patient more
/// than once (Group/all and Group/runout in one load), the rows of one copy stay, the one the
/// rule across runs would pick: the latest `meta.lastUpdated`, then the last in the input (file,
/// then line). The others' rows leave `bene_xref` and `cclf9` before the commit, as a
/// superseded claim version's leave the claim tables.
struct PatientCopies {
    /// `bene_xref`'s and `cclf9`'s indexes, and `bene_xref`'s `_resource_id` and
    /// `_last_updated` columns.
    tables: Option<(usize, usize, usize, usize)>,
    /// Each Patient seen.
    seen: Vec<PatientSeen>,
}

/// (API version, id, `meta.lastUpdated`, file index, line) of a Patient a load saw.
type PatientSeen = (
    Option<claimline_ndjson::ApiVersion>,
    String,
    Option<i64>,
    usize,
    u64,
);

impl PatientCopies {
    fn new(plan: &Plan, tables: &[TableSchema]) -> Self {
        let tables = plan.xref_tables().and_then(|(xref, cclf9)| {
            let at = |name: &str| tables[xref].columns.iter().position(|c| c.name == name);
            Some((xref, cclf9, at("_resource_id")?, at("_last_updated")?))
        });
        PatientCopies {
            tables,
            seen: Vec::new(),
        }
    }

    /// Notes the Patient whose rows are `rows`, at `line` of file `file_index`, if it gave
    /// `bene_xref` rows.
    fn see(
        &mut self,
        rows: &[TableRow],
        api_version: Option<claimline_ndjson::ApiVersion>,
        file_index: usize,
        line: u64,
    ) {
        let Some((xref, _, id, last_updated)) = self.tables else {
            return;
        };
        let Some(row) = rows.iter().find(|r| r.table == xref) else {
            return;
        };
        let Some(Cell::Text(id)) = row.cells.get(id) else {
            return;
        };
        let last_updated = match row.cells.get(last_updated) {
            Some(Cell::Timestamp(us)) => Some(*us),
            _ => None,
        };
        self.seen
            .push((api_version, id.to_string(), last_updated, file_index, line));
    }

    /// The tables the copies' rows leave, and the (file, line) of every copy not kept.
    fn not_kept(&self, file_names: &[String]) -> (Vec<usize>, SourceLines) {
        let mut lines = SourceLines::new();
        let Some((xref, cclf9, _, _)) = self.tables else {
            return (Vec::new(), lines);
        };
        let mut kept: std::collections::HashMap<(Option<&str>, &str), usize> =
            std::collections::HashMap::new();
        let order = |i: usize| {
            let (_, _, lu, file, line) = &self.seen[i];
            (*lu, *file, *line)
        };
        let mut gone = Vec::new();
        for (i, (api, id, ..)) in self.seen.iter().enumerate() {
            match kept.entry((api.map(|v| v.as_str()), id.as_str())) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let other = *o.get();
                    if order(i) > order(other) {
                        gone.push(other);
                        o.insert(i);
                    } else {
                        gone.push(i);
                    }
                }
            }
        }
        for i in gone {
            let (_, _, _, file, line) = &self.seen[i];
            lines
                .entry(file_names[*file].clone())
                .or_default()
                .insert(*line as i64);
        }
        (vec![xref, cclf9], lines)
    }
}

/// What the scan kept of an EOB until the claim-history rule decides whether its rows stay.
///
/// One is held for every EOB of a run until the rule decides (in memory up to the claim
/// history's budget, past it on disk: [`crate::history_spool`]), so it is kept small (40
/// bytes, where it took 128 with the link stage's own summary in it): its share of
/// `_claimline_counts` packed ([`Share`]); its row errors, which few EOBs have, are held
/// beside the history (by the EOB's place).
#[derive(Debug, Clone, PartialEq)]
struct EobRecord {
    /// File line number.
    line: u64,
    share: Option<Share>,
    /// Its API version (`_api_version` of its rows).
    api_version: Option<claimline_ndjson::ApiVersion>,
    excluded: Option<Excluded>,
    unresolved_mbi: bool,
    /// Some claim-table view runs on its API version (a version left out counts as superseded).
    claim_views: bool,
    /// It gave rows (a version that gave none still replaces what earlier runs hold).
    wrote_rows: bool,
}

/// Writes a resource's row errors (`found`), at `line` of its file `path`, to the run's log.
fn record_issues(
    issues: &mut IssueLog,
    tables: &[claimline_sink::TableSchema],
    path: &Path,
    line: u64,
    found: &[claimline_link::RowIssue],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    for issue in found {
        issues.record(&tables[issue.table].name, issue, path, line)?;
    }
    Ok(())
}

impl EobRecord {
    /// Counts a resource whose rows stay (its row errors aside: [`record_issues`]): exclusions,
    /// unresolved MBIs and its `_claimline_counts` share.
    fn count(&self, claims: &mut ClaimCounts, counts: &mut Counting) {
        claims.unresolved_mbi += u64::from(self.unresolved_mbi);
        match self.excluded {
            Some(Excluded::Partial) => claims.excluded_partial += 1,
            Some(Excluded::PriorAuth) => claims.excluded_prior_auth += 1,
            None => {}
        }
        if let Some(share) = &self.share {
            let (of, lines, cents) = share.clone().counted();
            let e = counts
                .entry((self.api_version, of))
                .or_insert((0u64, 0u64, 0i128));
            e.0 += 1;
            e.1 += lines;
            e.2 += cents;
        }
    }
}

/// The row errors of an EOB with a claim event, held until the claim-history rule says whether
/// its rows stay.
struct EobIssues {
    /// Its place ([`ClaimEvent::position`]): (file, offset of its line).
    position: (usize, u64),
    /// Its line number.
    line: u64,
    issues: Vec<claimline_link::RowIssue>,
    /// Its rows stay.
    kept: bool,
}

/// The most entries of the claim history decided at a time (fewer when its memory budget is
/// small): the groups' stored heads are read for a batch at once (one statement per batch in
/// PostgreSQL).
const HISTORY_BATCH: usize = 4_096;

/// An EOB's record as the claim history keeps it on disk past its budget
/// ([`crate::history_spool`]).
impl crate::history_spool::Record for EobRecord {
    fn heap_bytes(&self) -> usize {
        match &self.share {
            Some(Share::Whole(whole)) => {
                std::mem::size_of_val(&**whole) + whole.0.len() + whole.1.len()
            }
            _ => 0,
        }
    }

    fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        use crate::history_spool::write_str;
        w.write_all(&self.line.to_le_bytes())?;
        let api = crate::history_spool::api_byte(self.api_version);
        let excluded = match self.excluded {
            None => 0u8,
            Some(Excluded::Partial) => 1,
            Some(Excluded::PriorAuth) => 2,
        };
        let flags = u8::from(self.unresolved_mbi)
            | u8::from(self.claim_views) << 1
            | u8::from(self.wrote_rows) << 2;
        w.write_all(&[api, excluded, flags])?;
        match &self.share {
            None => w.write_all(&[0]),
            Some(Share::Packed {
                cents,
                lines,
                month,
                claim_type,
            }) => {
                w.write_all(&[1, *claim_type])?;
                w.write_all(&cents.to_le_bytes())?;
                w.write_all(&lines.to_le_bytes())?;
                w.write_all(&month.to_le_bytes())
            }
            Some(Share::Whole(whole)) => {
                let (claim_type, month, lines, cents) = &**whole;
                w.write_all(&[2])?;
                write_str(w, claim_type)?;
                write_str(w, month)?;
                w.write_all(&lines.to_le_bytes())?;
                w.write_all(&cents.to_le_bytes())
            }
        }
    }

    fn read_from(r: &mut impl std::io::Read) -> std::io::Result<Self> {
        use crate::history_spool::{api_of_byte, invalid, read_array, read_str};
        let line = u64::from_le_bytes(read_array(r)?);
        let [api, excluded, flags] = read_array(r)?;
        let api_version = api_of_byte(api)?;
        let excluded = match excluded {
            0 => None,
            1 => Some(Excluded::Partial),
            2 => Some(Excluded::PriorAuth),
            _ => return Err(invalid("an exclusion")),
        };
        let [tag] = read_array(r)?;
        let share = match tag {
            0 => None,
            1 => {
                let [claim_type] = read_array(r)?;
                if usize::from(claim_type) >= SHARE_TYPES.len() {
                    return Err(invalid("a claim type"));
                }
                Some(Share::Packed {
                    cents: i64::from_le_bytes(read_array(r)?),
                    lines: u32::from_le_bytes(read_array(r)?),
                    month: u32::from_le_bytes(read_array(r)?),
                    claim_type,
                })
            }
            2 => {
                let claim_type = read_str(r)?;
                let month = read_str(r)?;
                let lines = u64::from_le_bytes(read_array(r)?);
                let cents = i128::from_le_bytes(read_array(r)?);
                Some(Share::Whole(Box::new((claim_type, month, lines, cents))))
            }
            _ => return Err(invalid("a claim's share of the counts")),
        };
        Ok(EobRecord {
            line,
            share,
            api_version,
            excluded,
            unresolved_mbi: flags & 1 != 0,
            claim_views: flags & 2 != 0,
            wrote_rows: flags & 4 != 0,
        })
    }
}

/// The claim types a [`Share`] packs: [`claimline_ndjson::EOB_TYPES`], then `other` and none
/// (what [`claimline_link::claim_summary`] gives).
const SHARE_TYPES: [&str; claimline_ndjson::EOB_TYPES.len() + 2] = {
    let mut t = [""; claimline_ndjson::EOB_TYPES.len() + 2];
    let mut i = 0;
    while i < claimline_ndjson::EOB_TYPES.len() {
        t[i] = claimline_ndjson::EOB_TYPES[i];
        i += 1;
    }
    t[i] = "other";
    t
};

/// An EOB's `_claimline_counts` share ([`claimline_link::ClaimSummary`]) as the scan holds it
/// until the claim history decides: 24 bytes where the summary is 80.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Share {
    /// The usual one: a claim type of [`SHARE_TYPES`], a month `YYYY-MM` (or none), fewer than
    /// 2^32 items and a payment in 64 bits (a payment CLM_PMT_AMT holds is below 10^15 cents).
    Packed {
        cents: i64,
        lines: u32,
        /// `YYYY * 100 + MM + 1`; 0 for no month.
        month: u32,
        /// Index into [`SHARE_TYPES`].
        claim_type: u8,
    },
    /// Any other, whole.
    Whole(Box<(CompactString, CompactString, u64, i128)>),
}

impl Share {
    fn of(s: claimline_link::ClaimSummary) -> Share {
        match (
            CountOf::pack(&s.claim_type, &s.month),
            u32::try_from(s.lines),
            i64::try_from(s.payment_cents),
        ) {
            (Some((claim_type, month)), Ok(lines), Ok(cents)) => Share::Packed {
                cents,
                lines,
                month,
                claim_type,
            },
            _ => Share::Whole(Box::new((s.claim_type, s.month, s.lines, s.payment_cents))),
        }
    }

    /// (claim type and month, items, cents), as the summary had them.
    fn counted(self) -> (CountOf, u64, i128) {
        match self {
            Share::Packed {
                cents,
                lines,
                month,
                claim_type,
            } => (
                CountOf::Packed { claim_type, month },
                u64::from(lines),
                i128::from(cents),
            ),
            Share::Whole(whole) => {
                let (claim_type, month, lines, cents) = *whole;
                (CountOf::new(claim_type, month), lines, cents)
            }
        }
    }
}

/// The claim type and service month of a `_claimline_counts` row as a load adds its claims up:
/// packed wherever they pack (every claim but a rare one), so that a claim is added to its row
/// without a string made and hashed per claim. One (type, month) has one form: packed when it
/// packs, whole only when it does not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CountOf {
    Packed {
        /// Index into [`SHARE_TYPES`].
        claim_type: u8,
        /// `YYYY * 100 + MM + 1`; 0 for no month.
        month: u32,
    },
    Whole(Box<(CompactString, CompactString)>),
}

impl CountOf {
    fn new(claim_type: CompactString, month: CompactString) -> CountOf {
        match CountOf::pack(&claim_type, &month) {
            Some((claim_type, month)) => CountOf::Packed { claim_type, month },
            None => CountOf::Whole(Box::new((claim_type, month))),
        }
    }

    /// A claim type of [`SHARE_TYPES`] and a month `YYYY-MM` (or none), packed.
    fn pack(claim_type: &str, month: &str) -> Option<(u8, u32)> {
        let month = match month.as_bytes() {
            [] => 0,
            &[y1, y2, y3, y4, b'-', m1, m2]
                if [y1, y2, y3, y4, m1, m2].iter().all(u8::is_ascii_digit) =>
            {
                let d = |b: u8| u32::from(b - b'0');
                (d(y1) * 1000 + d(y2) * 100 + d(y3) * 10 + d(y4)) * 100 + d(m1) * 10 + d(m2) + 1
            }
            _ => return None,
        };
        let claim_type = SHARE_TYPES.iter().position(|t| *t == claim_type)?;
        Some((claim_type as u8, month))
    }

    /// (claim type, month), as text.
    fn parts(self) -> (CompactString, CompactString) {
        match self {
            CountOf::Packed { claim_type, month } => {
                let month = match month.checked_sub(1) {
                    None => CompactString::default(),
                    Some(m) => {
                        let (y, m) = (m / 100, m % 100);
                        let digit = |n: u32| b'0' + n as u8;
                        let text = [
                            digit(y / 1000),
                            digit(y / 100 % 10),
                            digit(y / 10 % 10),
                            digit(y % 10),
                            b'-',
                            digit(m / 10),
                            digit(m % 10),
                        ];
                        // ASCII digits and a dash.
                        CompactString::from_utf8_lossy(&text)
                    }
                };
                (SHARE_TYPES[usize::from(claim_type)].into(), month)
            }
            CountOf::Whole(whole) => *whole,
        }
    }
}

/// Adds the current MBIs of the latest run's `bene_xref` rows per beneficiary from Parquet
/// (`DIR/parquet/bene_xref/run=*/part-*.parquet`), for beneficiaries `index` does not know.
fn parquet_bene_index(root: &Path, index: &mut BeneIndex) -> Result<(), LoadError> {
    let rows = claimline_sink::read_committed_parquet(
        root,
        claimline_link::BENE_XREF,
        &["_api_version", "BENE_ID", "MBI", "MBI_CURRENT", "_run_id"],
    )?;
    // (version, bene) → (run id, current MBI).
    let mut latest: std::collections::HashMap<(Option<String>, String), (String, Option<String>)> =
        std::collections::HashMap::new();
    let text = |c: &Cell| match c {
        Cell::Text(t) => Some(t.to_string()),
        _ => None,
    };
    for row in &rows {
        let (Some(bene), Some(run)) = (text(&row[1]), text(&row[4])) else {
            continue;
        };
        let mbi = match (&row[2], &row[3]) {
            (Cell::Text(m), Cell::Bool(true)) => Some(m.to_string()),
            _ => None,
        };
        let entry = latest
            .entry((text(&row[0]), bene))
            .or_insert_with(|| (run.clone(), None));
        if run > entry.0 {
            *entry = (run, mbi);
        } else if run == entry.0 && mbi.is_some() {
            entry.1 = mbi;
        }
    }
    for ((version, bene), (_, mbi)) in latest {
        if let Some(mbi) = mbi {
            let version = version.and_then(|v| claimline_ndjson::ApiVersion::parse(&v));
            index.insert_if_absent(version, bene, mbi);
        }
    }
    Ok(())
}

/// [`EarlierState::cclf8_values`] of a Parquet-only output: its own `cclf8` parts, the current
/// row of each beneficiary (latest `_last_updated`, then latest run, as the Parquet readers' rule
/// takes it). Parts written before a column was added to the views do not carry it.
fn parquet_cclf8_values(
    root: &Path,
    columns: &[claimline_model::Column],
    wanted: &HashSet<Bene>,
) -> Result<HashMap<Bene, claimline_link::Fields>, LoadError> {
    if wanted.is_empty() || columns.is_empty() {
        return Ok(HashMap::new());
    }
    let mut names = vec!["_api_version", "_resource_id", "_last_updated", "_run_id"];
    names.extend(columns.iter().map(|c| c.name.as_str()));
    let rows =
        match claimline_sink::read_committed_parquet(root, claimline_link::CCLF8_TABLE, &names) {
            Ok(rows) => rows,
            // Parts of views without one of these columns: nothing to carry from them.
            Err(claimline_sink::Error::Row { .. }) => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
    let text = |c: &Cell| match c {
        Cell::Text(t) => Some(t.to_string()),
        _ => None,
    };
    /// Which row is current: the latest `_last_updated` (none is below any), then run.
    type Order = (Option<i64>, String);
    let mut best: HashMap<Bene, (Order, Vec<Cell>)> = HashMap::new();
    for mut row in rows {
        let (Some(bene), Some(run)) = (text(&row[1]), text(&row[3])) else {
            continue;
        };
        let version = text(&row[0]).and_then(|v| claimline_ndjson::ApiVersion::parse(&v));
        let key = (version, bene);
        if !wanted.contains(&key) {
            continue;
        }
        let order = (
            match row[2] {
                Cell::Timestamp(us) => Some(us),
                _ => None,
            },
            run,
        );
        let values = row.split_off(4);
        match best.get(&key) {
            Some((held, _)) if *held >= order => {}
            _ => {
                best.insert(key, (order, values));
            }
        }
    }
    let columns: Vec<&claimline_model::Column> = columns.iter().collect();
    let rows = best.into_iter().map(|((version, bene), (_, values))| {
        let values = values
            .into_iter()
            .map(|v| (!matches!(v, Cell::Null)).then_some(v))
            .collect();
        (version, bene, values)
    });
    Ok(crate::earlier::carried(rows, &columns, wanted))
}

/// What the manifests beside a load's inputs say of their export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFacts {
    /// The `transactionTime` of the first manifest that has one: what `BENE_AGE` is computed
    /// at and `claimline run` commits as the next `_since`.
    pub transaction_time: Option<String>,
    /// The export is incremental: its manifests' `request` asks `_since`. Its Patients
    /// may come with only the Coverage that changed, so `cclf8` keeps the earlier row's value
    /// of each Coverage column the run leaves empty.
    pub incremental: bool,
}

/// The [`ExportFacts`] of the manifests of `files` (each file's folder's, as
/// [`claimline_ndjson::discover`] found them: in subfolders of an input too), from one read of
/// each; none there: no transactionTime, not incremental. The transactionTime is the first
/// manifest's that has one, in the files' order.
///
/// # Errors
/// A manifest that cannot be read, or whose `transactionTime` is not an instant (exit 3): the
/// run's incremental state depends on it. So are an incremental export and a full one in one
/// load: what an incremental export's Patient did not bring keeps its earlier value, what a full
/// export's did not bring is gone, and one run cannot tell them apart (found by a review: the
/// first manifest decided for all). A damaged download state (`.claimline/state.json`: not a
/// state file, a link to nothing, a folder) in a folder is an error too (exit 3), named; one
/// this user may not read is left unread, as before.
pub fn export_facts(files: &[InputFile]) -> Result<ExportFacts, claimline_ndjson::Error> {
    let mut dirs: Vec<&Path> = Vec::new();
    for f in files {
        if let Some(dir) = f.path.parent()
            && !dirs.contains(&dir)
        {
            dirs.push(dir);
        }
    }
    let mut kind: Option<(PathBuf, bool)> = None;
    let mut transaction_time = None;
    for dir in dirs {
        // The download state is read again only to count what a damaged file lost; a damaged
        // one (not a state file, a link to nothing, a folder) stops the load here, before
        // anything is written, rather than leave that count out unsaid. One this user may not
        // read (another user's download into a shared folder) is none of this load's business,
        // as before.
        if let Err(e) = claimline_model::ExportState::read(dir)
            && matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::IsADirectory
            )
        {
            return Err(claimline_ndjson::Error::Read {
                path: claimline_model::export_state_path(dir),
                source: std::io::Error::new(
                    e.kind(),
                    format!(
                        "the export's download state is damaged ({e}); move it aside to load \
                         the files without it"
                    ),
                ),
            });
        }
        let m = dir.join("manifest.json");
        if !m.is_file() {
            continue;
        }
        let manifest = Manifest::read(&m)?;
        let since = manifest
            .request
            .as_deref()
            .is_some_and(|r| r.contains("_since="));
        match &kind {
            None => kind = Some((m.clone(), since)),
            Some((first, was)) if *was != since => {
                let says = |incremental: bool| {
                    if incremental {
                        "an incremental export (its request asks `_since`)"
                    } else {
                        "a full export"
                    }
                };
                return Err(claimline_ndjson::Error::Manifest {
                    reason: format!(
                        "it is {} and {} is {}: load them one at a time, the full export \
                         first, then each incremental one in order",
                        says(since),
                        first.display(),
                        says(*was)
                    ),
                    path: m,
                });
            }
            Some(_) => {}
        }
        if let Some(t) = manifest.transaction_time {
            // It is committed as the run's transactionTime (and `claimline run`'s next
            // `_since`): an instant, or a manifest that cannot be read (never quoted).
            if claimline_link::parse_instant(&t).is_none() {
                return Err(claimline_ndjson::Error::Manifest {
                    path: m,
                    reason: "its transactionTime is not an instant with an offset (as \
                             2024-01-02T03:04:05.678Z)"
                        .to_owned(),
                });
            }
            transaction_time.get_or_insert(t);
        }
    }
    Ok(ExportFacts {
        transaction_time,
        incremental: kind.is_some_and(|(_, since)| since),
    })
}

/// Row errors: counted per `table.column`, and written (no values: they may be PHI) to an
/// owner-only NDJSON file beside the rejects.
struct IssueLog {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    written: bool,
    count: u64,
    by_column: BTreeMap<String, u64>,
}

impl IssueLog {
    fn new(path: PathBuf) -> Self {
        IssueLog {
            path,
            out: None,
            written: false,
            count: 0,
            by_column: BTreeMap::new(),
        }
    }

    fn record(
        &mut self,
        table: &str,
        issue: &claimline_link::RowIssue,
        file: &Path,
        line: u64,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.count += 1;
        let key = if issue.column.is_empty() {
            table.to_owned()
        } else {
            format!("{table}.{}", issue.column)
        };
        *self.by_column.entry(key).or_insert(0) += 1;
        if self.out.is_none() {
            let f = claimline_ndjson::create_private(&self.path)?;
            self.out = Some(std::io::BufWriter::new(f));
            self.written = true;
        }
        if let Some(out) = &mut self.out {
            let rec = serde_json::json!({
                "file": file.display().to_string(),
                "line": line,
                "resource_id": issue.resource_id,
                "table": table,
                "column": issue.column,
                "error": issue.reason,
            });
            serde_json::to_writer(&mut *out, &rec)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        Ok(())
    }
}

/// What a load did (`claimline load --json` prints it as is).
#[derive(Debug, serde::Serialize)]
pub struct LoadReport {
    /// The run's id.
    pub run_id: String,
    /// Resources read per type.
    pub resources: BTreeMap<String, u64>,
    /// Rows written per table.
    pub tables: BTreeMap<String, u64>,
    /// Rejected lines.
    pub rejects: Rejects,
    /// Values that did not fit their column.
    pub row_errors: RowErrors,
    /// Bytes on disk read.
    pub bytes: u64,
    /// Bytes of NDJSON read.
    pub ndjson_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Wall time per phase.
    pub phases: Phases,
    /// NDJSON MB per second.
    pub mb_per_s: f64,
    /// What was written.
    pub outputs: Vec<PathBuf>,
    /// False when nothing was written: `--strict` found problems, or an input file is damaged
    /// (without `--accept-rejects`).
    pub committed: bool,
    /// Input files that could not be read to their end (a cut or corrupt gzip stream).
    pub damaged: Vec<DamagedFile>,
    /// MBI resolution, when a view has a `BENE_MBI_ID`-style link column.
    pub beneficiaries: Option<Beneficiaries>,
    /// v3 EOBs left out of the CCLF tables (see `--include-partial`).
    pub excluded: ExcludedClaims,
    /// The claim-history rule.
    pub history: History,
    /// Service months (`YYYY-MM`) for which the output holds both v2 and v3 claims (a warning:
    /// see the README's cutover recipe).
    pub v2_v3_overlap_months: Vec<String>,
    /// Per table with rows, the declared columns that were NULL in every row this load wrote
    /// (leaving out the ones a view tags `claimline/unmapped`): most often a path that names
    /// no element (`name.famly`).
    pub null_columns: BTreeMap<String, Vec<String>>,
    /// Some view came from a file (not a built-in set): the CLI then prints `null_columns`.
    pub custom_views: bool,
    /// The API versions of the resources read (`unknown` for those nothing told).
    pub api_versions: Vec<String>,
    /// The refresh of the Parquet current tables (`DIR/current/`), when Parquet was written.
    pub current: Option<claimline_sink::CurrentReport>,
    /// The threads the load ran on.
    pub threads: Threads,
}

/// A load's wall time per phase, in seconds: the phases follow one another and add up to all
/// of [`LoadReport::seconds`] but the report's own making. Where the time of a slow load went,
/// without a profiler: an incremental load whose `current` or `commit` grows with the history,
/// say, or a `history` that grows with the superseded versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Phases {
    /// The inputs found, the views compiled, what earlier loads left read, the Patients'
    /// pre-pass (MBIs), the outputs opened.
    pub setup: f64,
    /// Every line parsed, the views and the link stage run, the rows handed to the outputs.
    pub scan: f64,
    /// The claim-history rule on what the scan wrote (superseded versions dropped), and the
    /// rows made once the scan is over (`cclf8`, counts, claim versions).
    pub history: f64,
    /// Up to the commit point and the commit: the rows the outputs held encoded, SQLite's
    /// indexes, the new versions of `current/` built beside them, every file synced.
    pub commit: f64,
    /// The new versions of `current/` swapped in (or, when they could not be built before the
    /// commit, the refresh after it).
    pub current: f64,
}

/// Times the [`Phases`] of a load one after the other.
struct Laps(Instant);

impl Laps {
    /// Seconds since the last lap (the first: since the load started).
    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let seconds = now.duration_since(self.0).as_secs_f64();
        self.0 = now;
        seconds
    }
}

/// The threads of a load (see [`Loader::threads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Threads {
    /// Workers that parsed and evaluated the resources.
    pub scan: usize,
    /// rayon's global pool, where the sinks encode tables and their columns once the scan is
    /// over (the caller sizes it: `claimline load --threads N` makes it N too).
    pub encode: usize,
}

/// Months present for both v2 and v3.
fn v2_v3_overlap(months: &std::collections::BTreeSet<(String, String)>) -> Vec<String> {
    months
        .iter()
        .filter(|(v, m)| {
            v == "v2" && !m.is_empty() && months.contains(&("v3".to_owned(), m.clone()))
        })
        .map(|(_, m)| m.clone())
        .collect()
}

/// `2021-03…2021-05, 2022-01` for sorted months.
pub fn month_ranges(months: &[String]) -> String {
    let index = |m: &str| -> Option<i32> {
        let (y, mo) = m.split_once('-')?;
        Some(y.parse::<i32>().ok()? * 12 + mo.parse::<i32>().ok()?)
    };
    let mut parts: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 0..months.len() {
        let next_follows = months.get(i + 1).is_some_and(|n| {
            index(n)
                .zip(index(&months[i]))
                .is_some_and(|(a, b)| a == b + 1)
        });
        if !next_follows {
            parts.push(if i == start {
                months[i].clone()
            } else {
                format!("{}…{}", months[start], months[i])
            });
            start = i + 1;
        }
    }
    parts.join(", ")
}

/// What the claim-history rule did (see ARCHITECTURE.md, claim keys and versions).
#[derive(Debug, serde::Serialize)]
pub struct History {
    /// EOBs whose rows this run left out: an earlier version in the run, a cancelled version,
    /// or the same version twice (Group/all and Group/runout).
    pub superseded: u64,
    /// Claim groups whose run version is older than one an earlier run loaded (kept in the
    /// run's Parquet partition, not in SQLite).
    pub stale_groups: u64,
    /// Claim groups removed because their current version was cancelled.
    pub removed_groups: u64,
    /// Cancelled versions seen.
    pub cancels: u64,
    /// `--all-versions`.
    pub all_versions: bool,
}

/// MBI resolution of a load.
#[derive(Debug, serde::Serialize)]
pub struct Beneficiaries {
    /// Beneficiaries of the input's Patients with a current MBI.
    pub with_mbi: u64,
    /// Beneficiaries whose MBI was known to the load: the input's and earlier runs'
    /// (`bene_xref`).
    pub known: u64,
    /// Beneficiaries with Coverage but no Patient in the input: no `cclf8` row this run.
    pub coverage_without_patient: u64,
    /// Beneficiaries with a Patient but no Coverage in the input: their `cclf8` row's Coverage
    /// columns are those of their earlier `cclf8` row ([`Beneficiaries::coverage_carried`]),
    /// else NULL.
    pub patient_without_coverage: u64,
    /// Beneficiaries whose `cclf8` row took a Coverage column from their earlier `cclf8` row:
    /// in an incremental export, each column its Coverage left empty; otherwise, a Patient's
    /// that came with no Coverage at all.
    pub coverage_carried: u64,
    /// Claims whose beneficiary no Patient resolved (their `BENE_MBI_ID` is NULL).
    pub unresolved_claims: u64,
}

/// v3 EOBs left out of the CCLF tables.
#[derive(Debug, serde::Serialize)]
pub struct ExcludedClaims {
    /// Partially adjudicated (`outcome` = `partial`).
    pub partial: u64,
    /// Prior authorizations (`use` = `preauthorization`).
    pub prior_auth: u64,
}

/// An input file a load could not read to its end.
#[derive(Debug, serde::Serialize)]
pub struct DamagedFile {
    /// The file.
    pub file: PathBuf,
    /// How, and how far it was read.
    #[serde(flatten)]
    pub damage: claimline_ndjson::Damage,
    /// Resources lost, when the export's download state (`.claimline/state.json` beside the
    /// file, written by `claimline fetch`/`run`) counted the file's lines.
    pub resources_lost: Option<u64>,
    /// The same in one sentence.
    pub message: String,
}

/// The lines `claimline fetch` counted in `file` when it downloaded it (from the export's
/// state file), when it did.
fn fetched_lines(file: &Path) -> Option<u64> {
    let name = file.file_name()?.to_string_lossy();
    claimline_model::ExportState::read(file.parent()?)
        .ok()
        .flatten()?
        .fetched_lines(&name)
}

/// Rejected lines of a load.
#[derive(Debug, serde::Serialize)]
pub struct Rejects {
    /// How many.
    pub count: u64,
    /// Where they were written.
    pub file: Option<PathBuf>,
}

/// Row errors of a load.
#[derive(Debug, serde::Serialize)]
pub struct RowErrors {
    /// How many.
    pub count: u64,
    /// Per `table.column`.
    pub by_column: BTreeMap<String, u64>,
    /// Where they were written.
    pub file: Option<PathBuf>,
}

/// Maps a SQLite failure on the output database `path` to this crate's error.
pub(crate) fn sqlite_error(path: &Path) -> impl Fn(rusqlite::Error) -> LoadError + '_ {
    move |e| LoadError::io(path, std::io::Error::other(e))
}

/// The databases of a load's outputs, opened before anything is written.
pub(crate) struct Databases {
    /// What earlier runs committed, from the first database (the one the load reads).
    pub(crate) earlier: Option<Box<dyn EarlierState>>,
    /// The others, held for their locks until the load ends.
    pub(crate) held: Vec<Box<dyn EarlierState>>,
}

/// Warnings for an output whose database (SQLite, or a PostgreSQL schema) and Parquet dataset
/// will not hold the same runs after a load writing `kinds`; `earlier_runs` are the runs of the
/// database the load writes, `parquet_runs` the dataset's. One that is new beside the other's
/// runs holds this run only; one the load does not write lacks it; two that differ already
/// differ still. (A schema the load does not write is not looked at: only the SQLite file of
/// the folder is.)
fn format_notes(
    out: &Path,
    kinds: &[&dyn SinkKind],
    earlier_runs: &[RunRecord],
    parquet_runs: &[RunRecord],
) -> Vec<String> {
    let parquet = kinds.iter().any(|k| k.name() == "parquet");
    let written = kinds
        .iter()
        .find(|k| matches!(k.name(), "sqlite" | "postgres"));
    let sqlite_file = out.join("claimline.sqlite");
    let (kind, label, in_db, writes_db) = match written {
        Some(k) => (
            if k.name() == "postgres" {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            k.location(out).display().to_string(),
            earlier_runs.iter().map(|r| r.run_id.clone()).collect(),
            true,
        ),
        // (Read for a warning only: a database that cannot be read fails a load that writes it.)
        None => (
            "SQLite",
            sqlite_file.display().to_string(),
            if sqlite_file.is_file() {
                claimline_sink::open_earlier(&sqlite_file)
                    .and_then(|conn| claimline_sink::read_sqlite_runs(&conn, &sqlite_file))
                    .map(|runs| runs.into_iter().map(|r| r.run_id).collect())
                    .unwrap_or_default()
            } else {
                BTreeSet::new()
            },
            false,
        ),
    };
    let in_db: BTreeSet<String> = in_db;
    let in_parquet: BTreeSet<String> = parquet_runs.iter().map(|r| r.run_id.clone()).collect();
    let root = out.join("parquet");
    let root = root.display();
    let mut notes = Vec::new();
    match (writes_db, parquet) {
        (true, true) if in_db.is_empty() && !in_parquet.is_empty() => notes.push(format!(
            "warning: {label} is new and will hold this run's rows only, while {root} holds {} earlier run(s): load their exports into it too, or into a new --out (`claimline reload` rebuilds a `claimline run` folder)",
            in_parquet.len()
        )),
        (true, true) if in_parquet.is_empty() && !in_db.is_empty() => notes.push(format!(
            "warning: {root} is new and will hold this run's rows only, while {label} holds {} earlier run(s): load their exports into it too, or into a new --out (`claimline reload` rebuilds a `claimline run` folder)",
            in_db.len()
        )),
        (true, true) if in_db != in_parquet => {
            let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
                let d: Vec<&str> = a.difference(b).map(String::as_str).collect();
                if d.is_empty() { "none".to_owned() } else { d.join(", ") }
            };
            notes.push(format!(
                "warning: {label} and {root} hold different runs (only in {kind}: {}; only in Parquet: {}), so their tables differ: load those exports with both formats into a new --out to have them agree",
                only(&in_db, &in_parquet),
                only(&in_parquet, &in_db)
            ));
        }
        (true, false) if !in_parquet.is_empty() => notes.push(format!(
            "warning: this load does not write {root} (it holds {} run(s)): it will lack this run, and its tables will differ from {label}'s",
            in_parquet.len()
        )),
        (false, true) if !in_db.is_empty() => notes.push(format!(
            "warning: this load does not write {label} (it holds {} run(s)): it will lack this run, and its tables will differ from {root}'s",
            in_db.len()
        )),
        _ => {}
    }
    notes
}

/// The runs an output holds: those of the database a load reads (`earlier`), and those of its
/// Parquet dataset. A damaged Parquet record stops a load that writes Parquet (`kinds`); one
/// that does not reads it for its checks only.
pub(crate) fn runs_held(
    earlier: &mut Option<Box<dyn EarlierState>>,
    kinds: &[&dyn SinkKind],
    out: &Path,
) -> Result<(Vec<RunRecord>, Vec<RunRecord>), LoadError> {
    let earlier = match earlier {
        Some(e) => e.runs()?,
        None => Vec::new(),
    };
    let root = out.join("parquet");
    let parquet = if kinds.iter().any(|k| k.name() == "parquet") {
        claimline_sink::read_parquet_runs(&root)?
    } else {
        claimline_sink::read_parquet_runs(&root).unwrap_or_default()
    };
    Ok((earlier, parquet))
}

/// Opens the earlier state of every sink that keeps one (a PostgreSQL schema is locked here,
/// for the whole load), then finishes or removes what a load that died left staged, asking
/// the database whether it committed, so the outputs agree on the runs they hold.
pub(crate) fn open_databases(
    kinds: &[&dyn SinkKind],
    out: &Path,
    progress: &dyn Progress,
) -> Result<Databases, LoadError> {
    let mut held = Vec::new();
    for kind in kinds {
        if let Some(state) = kind.earlier(out)? {
            held.push(state);
        }
    }
    let mut earlier = (!held.is_empty()).then(|| held.remove(0));
    for note in crate::output::recover_with(out, earlier.as_deref_mut())? {
        progress.note(&note);
    }
    Ok(Databases { earlier, held })
}

/// What [`commit_sinks`] hands on for the current tables.
pub(crate) struct Committed {
    /// The run's rows, if a sink held them in memory ([`TableSink::held`]).
    pub(crate) held: Option<HeldRun>,
    /// `current/`'s new versions, built while the sinks were prepared (see [`commit_sinks`]);
    /// none when they were not.
    pub(crate) current: Option<Result<CurrentBuild, claimline_sink::Error>>,
}

/// Commits a run to every sink so that they never disagree about it: every other sink is
/// prepared, the deciding one (SQLite) commits (the run's commit point), then the others
/// publish. A process that dies between the two has its Parquet partitions moved into place by
/// the next command (`output::recover`).
///
/// With `claim_tables` (a load that writes Parquet) and a sink that holds the run's rows
/// ([`TableSink::held`]), the new versions of `current/` are built from them while the sinks
/// are prepared and the decider commits (on whatever the sinks leave free), to be swapped in
/// once the run is committed ([`refresh_current_tables`]); a commit that fails removes them,
/// and a build that fails or panics leaves the refresh to after the commit.
pub(crate) fn commit_sinks(
    mut sinks: Vec<Box<dyn TableSink>>,
    record: &RunRecord,
    out: &Path,
    claim_tables: Option<&[String]>,
) -> Result<Committed, LoadError> {
    let fault = |e| LoadError::io(out, e);
    claimline_fault::point("load.before-commit").map_err(fault)?;
    let mut decider = sinks
        .iter()
        .position(|s| s.decides())
        .map(|i| sinks.remove(i));
    let mut held = None;
    for sink in &mut sinks {
        sink.stage()?;
        held = held.or_else(|| sink.held());
    }
    // Up to the commit point: every sink prepared (the decider beside the others: SQLite's
    // indexes made and its file made durable while Parquet encodes, none of it visible yet),
    // then the decider committed.
    let mut decide = || -> Result<(), LoadError> {
        let Some(mut decider) = decider.take() else {
            for sink in &mut sinks {
                sink.prepare(record, false)?;
            }
            return Ok(());
        };
        // (The others on the workers, their encodes spread over them; the decider's on this
        // thread, which would otherwise wait.)
        let mut others = Ok(());
        let own = rayon::in_place_scope(|s| {
            s.spawn(|_| {
                others = sinks
                    .iter_mut()
                    .try_for_each(|sink| sink.prepare(record, true));
            });
            decider.prepare(record, false)
        });
        others?;
        own?;
        // From its commit on, the prepared runs stay for the recovery should anything fail:
        // the database may hold the run.
        for sink in &mut sinks {
            sink.decided();
        }
        claimline_fault::point("load.commit").map_err(fault)?;
        decider.commit(record)?;
        claimline_fault::point("load.between-commits").map_err(fault)?;
        Ok(())
    };
    let mut current = None;
    let decided = match (claim_tables.filter(|t| !t.is_empty()), held.as_ref()) {
        (Some(tables), Some(held)) => rayon::in_place_scope(|s| {
            // A build that panics is left to the refresh after the commit.
            s.spawn(|_| {
                current = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    claimline_sink::build_current_before_commit(out, tables, record, held)
                        .transpose()
                }))
                .unwrap_or(None);
            });
            decide()
        }),
        _ => decide(),
    };
    let discard = |current: Option<Result<CurrentBuild, _>>| {
        if let Some(Ok(built)) = current {
            built.discard();
        }
    };
    if let Err(e) = decided {
        discard(current);
        return Err(e);
    }
    for sink in sinks {
        if let Err(e) = sink.commit(record) {
            discard(current);
            return Err(e.into());
        }
    }
    Ok(Committed { held, current })
}

/// Refreshes the current rows of `claim_tables` from the Parquet history just committed:
/// swaps in what [`commit_sinks`] built, else refreshes from the held rows and the files. A
/// failure is a warning (the run is committed; `current/` is derived and the next load rebuilds
/// it).
pub(crate) fn refresh_current_tables(
    out: &Path,
    claim_tables: &[String],
    committed: Committed,
    progress: &dyn Progress,
) -> Option<claimline_sink::CurrentReport> {
    let Committed { held, current } = committed;
    let refreshed = match current {
        Some(Ok(built)) => built.swap(),
        // Not built, or a build that failed (it left nothing): the refresh as it always ran.
        _ => claimline_sink::read_parquet_runs(&out.join("parquet")).and_then(|runs| {
            claimline_sink::refresh_current(out, claim_tables, &runs, held.as_ref())
        }),
    };
    match refreshed {
        Ok(r) => Some(r),
        Err(e) => {
            progress.note(&format!(
                "warning: the current tables in {} were not refreshed ({e}); the next load \
                 rebuilds them",
                out.join(claimline_sink::CURRENT_DIR).display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_gives_back_the_summary_it_was_made_of() {
        let summary =
            |claim_type: &str, month: &str, lines: u64, cents: i128| claimline_link::ClaimSummary {
                claim_type: claim_type.into(),
                month: month.into(),
                lines,
                payment_cents: cents,
                payment_unusable: false,
            };
        let mut cases = Vec::new();
        for t in SHARE_TYPES {
            for m in ["", "2020-01", "0000-00", "9999-99", "1999-12"] {
                cases.push((summary(t, m, 3, -12_345), true));
            }
        }
        cases.extend([
            (
                summary(
                    "CARRIER",
                    "2020-01",
                    u64::from(u32::MAX),
                    10i128.pow(15) - 1,
                ),
                true,
            ),
            // Not of the packed forms: kept whole.
            (summary("carrier", "2020-01", 1, 1), false),
            (summary("CARRIER", "2020/01", 1, 1), false),
            (summary("CARRIER", "2020-1", 1, 1), false),
            (
                summary("CARRIER", "2020-01", u64::from(u32::MAX) + 1, 1),
                false,
            ),
            (
                summary("CARRIER", "2020-01", 1, i128::from(i64::MIN) - 1),
                false,
            ),
        ]);
        for (s, packed) in cases {
            let share = Share::of(s.clone());
            assert_eq!(matches!(share, Share::Packed { .. }), packed, "{s:?}");
            let (of, lines, cents) = share.counted();
            // One form per (type, month): packed wherever they pack, even in a share kept
            // whole for its counts.
            assert_eq!(
                matches!(of, CountOf::Packed { .. }),
                CountOf::pack(&s.claim_type, &s.month).is_some(),
                "{s:?}"
            );
            assert_eq!(
                of.clone(),
                CountOf::new(s.claim_type.clone(), s.month.clone())
            );
            assert_eq!(
                (of.parts(), lines, cents),
                ((s.claim_type, s.month), s.lines, s.payment_cents)
            );
        }
    }

    /// Held for every EOB of a run: it stays this small (on 64-bit targets, whose layout this is).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_eob_record_stays_small() {
        assert!(std::mem::size_of::<Option<Share>>() <= 24);
        assert!(std::mem::size_of::<EobRecord>() <= 40);
    }

    /// The claim history's buffer is taken apart in place ([`HistorySpool::finish`]).
    #[test]
    fn a_held_entry_takes_no_more_room_as_an_option() {
        assert_eq!(
            std::mem::size_of::<Option<Entry<EobRecord>>>(),
            std::mem::size_of::<Entry<EobRecord>>()
        );
    }

    #[test]
    fn an_eob_record_comes_back_from_the_history_files_as_it_was() {
        use crate::history_spool::Record as _;
        let summary = |claim_type: &str, month: &str, lines: u64, cents: i128| {
            Share::of(claimline_link::ClaimSummary {
                claim_type: claim_type.into(),
                month: month.into(),
                lines,
                payment_cents: cents,
                payment_unusable: false,
            })
        };
        let shares = [
            None,
            Some(summary("CARRIER", "2020-01", 3, -12_345)),
            Some(summary("carrier", "2020/01", u64::MAX, i128::MIN)),
            Some(summary("", "", 0, i128::MAX)),
        ];
        let apis = [
            None,
            Some(claimline_ndjson::ApiVersion::V1),
            Some(claimline_ndjson::ApiVersion::V2),
            Some(claimline_ndjson::ApiVersion::V3),
        ];
        let excluded = [None, Some(Excluded::Partial), Some(Excluded::PriorAuth)];
        let mut n = 0u64;
        for share in &shares {
            for api_version in apis {
                for excluded in excluded {
                    for flags in 0..8u8 {
                        n += 1;
                        let record = EobRecord {
                            line: u64::MAX - n,
                            share: share.clone(),
                            api_version,
                            excluded,
                            unresolved_mbi: flags & 1 != 0,
                            claim_views: flags & 2 != 0,
                            wrote_rows: flags & 4 != 0,
                        };
                        let mut bytes = Vec::new();
                        record.write_to(&mut bytes).expect("write");
                        let mut r = bytes.as_slice();
                        assert_eq!(EobRecord::read_from(&mut r).expect("read"), record);
                        assert!(r.is_empty(), "read to its end");
                        // Cut anywhere, it is an error, never another record.
                        for cut in 0..bytes.len() {
                            assert!(EobRecord::read_from(&mut &bytes[..cut]).is_err());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn overlapping_months_read_as_ranges() {
        let months: std::collections::BTreeSet<(String, String)> = [
            ("v2", "2021-03"),
            ("v2", "2021-04"),
            ("v2", "2021-05"),
            ("v2", "2022-01"),
            ("v2", "2020-12"),
            ("v3", "2021-03"),
            ("v3", "2021-04"),
            ("v3", "2021-05"),
            ("v3", "2022-01"),
            ("v3", "2023-01"),
        ]
        .iter()
        .map(|(v, m)| ((*v).to_owned(), (*m).to_owned()))
        .collect();
        let overlap = v2_v3_overlap(&months);
        assert_eq!(overlap, ["2021-03", "2021-04", "2021-05", "2022-01"]);
        assert_eq!(month_ranges(&overlap), "2021-03…2021-05, 2022-01");
        assert_eq!(
            month_ranges(&["2021-12".to_owned(), "2022-01".to_owned()]),
            "2021-12…2022-01"
        );
    }
}
