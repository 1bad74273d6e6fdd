//! The current rows of each claim table, materialised as a Parquet dataset of its own:
//! `DIR/current/<table>/bucket=<NN>/part-0.parquet`, the README's current-rows rule applied
//! once so that a reader needs no window query. The append-only history (`parquet/<table>/run=…`)
//! stays the source of truth, and untouched: `current/` lives beside it, is derived from it and
//! can always be rebuilt.
//!
//! - Rows are bucketed by claim group (FNV-1a of `_api_version` and `_claim_key`, [`BUCKETS`]
//!   buckets): a run's claim groups touch some buckets, and only those are rewritten. A touched
//!   bucket keeps its old current rows of untouched groups and, for touched groups, the row set
//!   of the group's new head: the head only moves to a version of this run (a newer one) or
//!   stays, and a cancelled head keeps no rows (the README's rule), so the old bucket and this
//!   run's partition hold every row a touched bucket needs.
//! - Each refresh writes a complete new version of a table's dataset in
//!   `DIR/.claimline-current/<table>-<run_id>/` (`<table>-<run_id>~1` when `current/` shows
//!   that name: the run id loaded again), untouched buckets hard-linked, syncs it, and swaps the
//!   symlink `DIR/current/<table>` to it in one rename: a reader sees the old dataset or the new
//!   one, never a mix, and never a file being written. `.claimline-current/_state.json` names
//!   the run the datasets are current for, its start, and counts the runs they cover; when that
//!   is not the runs before this one (a first refresh, an output written by another tool, a
//!   refresh that failed, a run id loaded again), or a table already shows a version of this
//!   run id (a refresh cut short after some swaps, retried), or the run before kept versions by
//!   the other rule (`--all-versions`), every bucket is rebuilt from the whole history.
//! - The heads come from the claim events (`_claimline_claims`), read a batch at a time. An
//!   output's only run needs its cancels alone (its partitions hold only heads); a partial
//!   rebuild needs the events of the groups this run touched alone (a row of any other group
//!   is current as the old bucket holds it); a full rebuild, every event of the buckets. When
//!   those and their heads would take more than [`REFRESH_MEMORY`], the buckets are rewritten
//!   a few at a time (a bucket at a time at the least), each pass reading the claim events
//!   again, and this run's rows (on a full rebuild, each table's whole history): the same
//!   files, byte for byte.
//! - `DIR/current/views.sql` creates DuckDB views: the claim tables over `current/`, the other
//!   tables (`bene_xref`, `cclf8`, `cclf9`) by the README's rule over their history.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use claimline_model::{Fnv1a64, RunRecord, same_text};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::columns::{ColumnsWriter, FileSchema};
use crate::spill::SpillFile;
use crate::{Error, HeldRun};

/// Buckets per table.
pub const BUCKETS: u64 = 16;
/// The memory a refresh's claim events and their heads take at most in one pass over the
/// buckets it rewrites; past it, the buckets are rewritten a few at a time, each pass reading
/// the claim events again, and this run's rows (on a full rebuild, each table's whole
/// history). A bucket's events are a pass's least: past 16 times this, a pass holds more.
pub const REFRESH_MEMORY: u64 = 256 << 20;
/// The folder of the current datasets, in the output folder.
pub const CURRENT_DIR: &str = "current";
/// The folder of their versions (the symlinks' targets) and state, in the output folder.
pub const VERSIONS_DIR: &str = ".claimline-current";

/// The claim versions' table (`_claimline_claims`).
pub(crate) const CLAIMS: &str = "_claimline_claims";
/// Lineage columns a bucket writes without a dictionary (see [`write_file`]).
const PLAIN_COLUMNS: [&str; 3] = ["_claim_key", "_resource_id", "_line"];
/// Bytes of values (not nulls) below which a bucket's column is written uncompressed.
const SMALL_CHUNK: usize = 64 << 10;
const STATE: &str = "_state.json";

/// (`_api_version`, `_claim_key`, and with `--all-versions` the `_resource_id`): what has one
/// head. Borrowed from the claim events' batches.
type Group<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

/// Each group's head: (`_last_updated`, `_run_id`, `_resource_id`), borrowed like [`Group`].
type Heads<'a> = foldhash::HashMap<Group<'a>, (Option<i64>, &'a str, &'a str)>;

/// The current versions of the claim groups a refresh rewrites: the heads no cancel names.
struct Current<'a> {
    heads: Heads<'a>,
    all_versions: bool,
    /// The output's only run, when it is the whole history: each row of its partitions is
    /// current unless a cancel names its version, and `heads` is left empty. The claim-history
    /// rule already kept only each group's head in the run's partitions (the version its
    /// `_claimline_claims` records: one per group, or each version its own group with every
    /// version kept), and dropped a cancelled head's rows: the heads need not be worked out
    /// and looked up per row again (most of a first refresh's time besides its encodes).
    only_run: Option<&'a str>,
    /// (group, version) pairs a cancel names.
    cancelled: foldhash::HashSet<(Group<'a>, &'a str)>,
    /// On a partial rebuild, the groups this run touched (see [`Touched`]): the heads are
    /// those groups', and a row of any other group is current (the old dataset holds it as
    /// the runs before left it).
    touched: Option<&'a Touched>,
}

impl Current<'_> {
    /// The row of version `rid` of claim `key`, written by run `run`, is current.
    fn holds(&self, api: Option<&str>, key: &str, rid: &str, run: &str) -> bool {
        if let Some(only) = self.only_run {
            return same_text(only.as_bytes(), run.as_bytes())
                && (self.cancelled.is_empty()
                    || !self
                        .cancelled
                        .contains(&((api, key, self.all_versions.then_some(rid)), rid)));
        }
        let group_rid = self.all_versions.then_some(rid);
        if self
            .touched
            .is_some_and(|t| !t.contains(api, key, group_rid))
        {
            return true;
        }
        self.heads
            .get(&(api, key, group_rid))
            .is_some_and(|&(_, head_run, head)| {
                same_text(head.as_bytes(), rid.as_bytes())
                    && same_text(head_run.as_bytes(), run.as_bytes())
            })
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CurrentReport {
    /// Tables refreshed.
    pub tables: Vec<String>,
    /// Buckets rewritten per table (all of them on a full rebuild).
    pub buckets_rewritten: usize,
    /// Every bucket was rebuilt from the whole history.
    pub full: bool,
    /// Current rows per table.
    pub rows: BTreeMap<String, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    run_id: String,
    /// How many runs the datasets are current for, `run_id` the last. A run id loaded again
    /// leaves its earlier place in the run list: the next refresh finds one run fewer before
    /// it and rebuilds every bucket (its earlier rows may be in any of them). None in a state
    /// written before the count was: a full rebuild too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    runs: Option<usize>,
    /// When that run started: a run id loaded again starts at another time, so datasets
    /// current for its earlier load (whose refresh failed) are told from datasets current for
    /// it. None in a state written before it was: a full rebuild too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started: Option<String>,
}

/// The bucket of a claim group.
pub fn bucket(api_version: Option<&str>, claim_key: &str) -> u64 {
    Fnv1a64::new()
        .write(api_version.unwrap_or("").as_bytes())
        .write(b"\0")
        .write(claim_key.as_bytes())
        .finish()
        % BUCKETS
}

/// Refreshes `out/current/` (`out`: an output folder) for the claim tables in `tables` after
/// the run `runs.last()` (`runs`: every run record, in order). Call it holding the output
/// folder's lock, after the run's partitions are in place. `held`: the run's rows as the Parquet
/// sink held them ([`crate::TableSink::held`]), read in place of the run's partition (the same
/// files result, byte for byte); none to read everything from the files.
///
/// # Errors
/// [`Error::Io`] and [`Error::Parquet`] for files that cannot be read or written;
/// [`Error::Row`] for a history partition without the lineage columns.
pub fn refresh_current(
    out: &Path,
    tables: &[String],
    runs: &[RunRecord],
    held: Option<&HeldRun>,
) -> Result<CurrentReport, Error> {
    match build(out, tables, runs, held, false)? {
        Some(built) => built.swap(),
        None => Ok(CurrentReport::default()),
    }
}

/// [`refresh_current`]'s first step taken before the commit of run `run`, beside the encode of
/// its parts: every table's new version is written and synced, and [`CurrentBuild::swap`] puts
/// them in place once the run is committed ([`CurrentBuild::discard`] removes them if it is
/// not). The run records are read as they will be once `run` is recorded, and the run's rows
/// come from `held`, its partitions not being in place yet; the files are the same, byte for
/// byte, as a refresh after the commit writes.
///
/// `Ok(None)` when it is not built before the commit: `held` is not that run's, or `current/`
/// shows a version of the same run id (the run id loaded again), which the refresh after the
/// commit builds beside, under the other name. Call it holding the
/// output folder's lock.
///
/// # Errors
/// As [`refresh_current`], and [`Error::Corrupt`] for a run list that cannot be read; nothing
/// built is left behind then.
pub fn build_current_before_commit(
    out: &Path,
    tables: &[String],
    run: &RunRecord,
    held: &HeldRun,
) -> Result<Option<CurrentBuild>, Error> {
    if run.run_id != held.run_id {
        return Ok(None);
    }
    let dir = out.join(CURRENT_DIR);
    let shown =
        |t: &String| shown_version(&dir, t).is_some_and(|n| is_version_of(&n, t, &run.run_id));
    if tables.iter().any(shown) {
        return Ok(None);
    }
    let runs = crate::parquet_sink::with_run(crate::read_parquet_runs(&out.join("parquet"))?, run);
    let built = build(out, tables, &runs, Some(held), true);
    if built.is_err() {
        // What was written of this run's versions goes with it: no table shows them.
        let versions = out.join(VERSIONS_DIR);
        for t in tables {
            let _ = std::fs::remove_dir_all(versions.join(format!("{t}-{}", run.run_id)));
        }
    }
    built
}

/// The new versions of the current datasets a refresh wrote and synced, not yet swapped in
/// ([`build_current_before_commit`]).
#[derive(Debug)]
#[must_use = "a build is swapped in or discarded"]
pub struct CurrentBuild {
    root: PathBuf,
    dir: PathBuf,
    versions: PathBuf,
    run_id: String,
    /// When that run started.
    started: String,
    /// The runs the new versions are current for (`run_id` the last).
    runs: usize,
    tables: Vec<String>,
    /// Per table, in `tables` order.
    built: Vec<Built>,
    report: CurrentReport,
}

impl CurrentBuild {
    /// Swaps every table's new version in, one table after the other, in order, then records the
    /// run the datasets are current for and writes `views.sql`. Call it once the run is
    /// committed, holding the output folder's lock.
    ///
    /// # Errors
    /// [`Error::Io`] for a swap or a file that cannot be written.
    pub fn swap(self) -> Result<CurrentReport, Error> {
        let CurrentBuild {
            root,
            dir,
            versions,
            run_id,
            started,
            runs,
            tables,
            built,
            mut report,
        } = self;
        for (table, b) in tables.iter().zip(built) {
            report.rows.insert(table.clone(), b.rows);
            swap_table(&dir, table, b)?;
        }
        remove_unlinked_versions(&dir, &versions);
        claimline_model::write_atomic(
            &versions.join(STATE),
            &serde_json::to_vec(&State {
                run_id,
                runs: Some(runs),
                started: Some(started),
            })
            .map_err(|e| Error::Io {
                path: versions.join(STATE),
                source: e.into(),
            })?,
        )
        .map_err(Error::io(versions.join(STATE)))?;
        write_views(&root, &dir, &tables)?;
        Ok(report)
    }

    /// Removes the new versions (a run whose commit failed); no table showed them. The folders
    /// of `current/` and its versions go too when nothing else is in them (an output's first
    /// load).
    pub fn discard(self) {
        for b in self.built {
            let _ = std::fs::remove_dir_all(b.new);
        }
        let _ = std::fs::remove_dir(&self.versions);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The part files under `dir` (a table's history, or one run's partition of it, under the
/// history root `root`) as they are once run `run_id` is committed: with `pending`, that run's
/// partition of a table it writes holds the one part of `pending`'s rows (its files are not in
/// place yet, and whatever an earlier load of the same run id left there goes at the commit).
fn history_files(
    root: &Path,
    table: &str,
    dir: &Path,
    run_id: &str,
    pending: Option<&HeldRun>,
) -> Result<Vec<PathBuf>, Error> {
    let mut files = parquet_files(dir)?;
    if pending.is_some_and(|h| h.tables.contains_key(table)) {
        // (A table the run does not write keeps an earlier partition of the same id.)
        let run = run_dir(root, table, run_id);
        files.retain(|f| !f.starts_with(&run));
        if dir == root.join(table) || dir == run {
            files.push(run.join("part-0.parquet"));
            files.sort();
        }
    }
    Ok(files)
}

/// [`refresh_current`] up to the swap; `pending`: the run's partitions are not in place yet
/// (its rows are `held`'s). None when there is no run.
fn build(
    out: &Path,
    tables: &[String],
    runs: &[RunRecord],
    held: Option<&HeldRun>,
    pending: bool,
) -> Result<Option<CurrentBuild>, Error> {
    let Some(run) = runs.last() else {
        return Ok(None);
    };
    let held = held.filter(|h| h.run_id == run.run_id);
    let pending = held.filter(|_| pending);
    let all_versions = run.all_versions;
    let root = &out.join("parquet");
    let dir = out.join(CURRENT_DIR);
    let versions = out.join(VERSIONS_DIR);
    claimline_model::create_private_dir(&dir).map_err(Error::io(&dir))?;
    claimline_model::create_private_dir(&versions).map_err(Error::io(&versions))?;
    let previous = runs.len().checked_sub(2).map(|i| &runs[i]);
    let state: Option<State> = std::fs::read(versions.join(STATE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    // Only buckets this run touched are rewritten when the datasets are current for the runs
    // before this one and those only: the run before, as it was loaded (not an earlier load of
    // its id whose refresh failed), and no earlier load of this run's id (whose rows this run's
    // partition replaces, in any bucket). Every bucket otherwise, and when a table has no current
    // dataset yet (new views) or shows a version of this run id already (a refresh cut short
    // after some swaps, its `_state.json` not yet written, and the run retried): it holds this
    // run's rows, which a partial rebuild would keep beside the run's partition.
    let covers_previous = |s: &State, p: &RunRecord| {
        s.run_id == p.run_id
            && s.started.as_deref() == Some(p.started.as_str())
            && s.runs == Some(runs.len() - 1)
    };
    // (And every bucket when the version rule changed: the old buckets hold rows by the other
    // rule. The loader refuses the switch; an output written by another tool may not.)
    let full = !previous.is_some_and(|p| state.as_ref().is_some_and(|s| covers_previous(s, p)))
        || previous.is_some_and(|p| p.all_versions != all_versions)
        || tables
            .iter()
            .any(|t| shown_version(&dir, t).is_none_or(|n| is_version_of(&n, t, &run.run_id)));

    // Every run's claim events (one row per claim version and run), read a batch at a time:
    // of those, a pass keeps what it needs (of an output's only run, its cancels alone; on a
    // partial rebuild, the events of the groups this run touched).
    let claim_files = history_files(root, CLAIMS, &root.join(CLAIMS), &run.run_id, pending)?;
    let this_run = run_dir(root, CLAIMS, &run.run_id);
    // (More than one part when the run's claim events passed the sink's rows per part.)
    let run_files: Vec<PathBuf> = claim_files
        .iter()
        .filter(|f| f.starts_with(&this_run))
        .cloned()
        .collect();
    let only_run =
        (full && runs.len() == 1 && !run_files.is_empty() && run_files.len() == claim_files.len())
            .then_some(run.run_id.as_str());
    #[cfg(test)]
    let only_run = HEADS_ALWAYS.with(|h| {
        let (always, _) = h.get();
        let only_run = only_run.filter(|_| !always);
        h.set((always, only_run.is_some()));
        only_run
    });
    let claims = ClaimEvents {
        root,
        files: &claim_files,
        run_files: &run_files,
        run_id: &run.run_id,
        held,
        only_run,
        full,
        all_versions,
    };
    // One pass over every bucket to rewrite, its events held at once, when they fit in the
    // refresh's memory (nearly every refresh: an output's first, whose only run needs its
    // cancels alone, and a later run's, which needs the events of the groups it touched);
    // else the buckets go a few at a time, each pass with its own buckets' events (the
    // buckets counted first, to know how many fit).
    let memory = refresh_memory();
    let (mut first, counts) = match claims.read(&[true; BUCKETS as usize], Some(memory))? {
        Read::Fits(events) => (Some(events), None),
        Read::Over(touched) => (None, Some(claims.counts(touched.as_ref())?)),
    };
    let rebuild = match (&first, &counts) {
        _ if full => [true; BUCKETS as usize],
        (Some(events), _) => events.buckets,
        (None, Some(c)) => c.touched,
        (None, None) => [false; BUCKETS as usize],
    };
    let passes = match &counts {
        _ if !rebuild.contains(&true) => Vec::new(),
        None => vec![rebuild],
        Some(c) => passes(&rebuild, c, !full, memory),
    };
    let report = CurrentReport {
        tables: tables.to_vec(),
        buckets_rewritten: rebuild.iter().filter(|&&b| b).count(),
        full,
        rows: BTreeMap::new(),
    };
    // Each table's new version is built on a worker (they read and write different files),
    // each as a job of its own over the tables sorted by the size of this run's part: the
    // biggest start first on one worker while the other steals from the rest, so the two
    // finish closer together. Then the swaps happen one table after the other, in order.
    use rayon::prelude::*;
    // (The held rows' memory where the sink held them: the parts may not be written yet.)
    let size = |t: &String| match held.and_then(|h| h.tables.get(t)) {
        Some(batches) => batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum(),
        None => std::fs::metadata(run_dir(root, t, &run.run_id).join("part-0.parquet"))
            .map_or(0, |m| m.len()),
    };
    let mut order: Vec<usize> = (0..tables.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&tables[i])));
    let at = Sources {
        root,
        run_id: &run.run_id,
        full,
        held,
        pending,
    };
    let mut builds: Vec<(usize, TableBuild<'_>)> = order
        .par_iter()
        .map(|&i| TableBuild::begin(&at, &dir, &versions, &tables[i], &rebuild).map(|b| (i, b)))
        .collect::<Result<_, Error>>()?;
    // Each file written, and each folder given new entries, is synced while the next ones are
    // encoded; all are on disk before any table is swapped in.
    let syncer = claimline_model::Syncer::new();
    for (n, pass) in passes.iter().enumerate() {
        let events = match first.take() {
            Some(events) if n == 0 => events,
            _ => match claims.read(pass, None)? {
                Read::Fits(events) => events,
                Read::Over(_) => unreachable!("a read without a limit fits"),
            },
        };
        let current = events.current(all_versions, only_run)?;
        #[cfg(test)]
        PASSES_IN_TESTS.with(|p| p.set(p.get() + 1));
        builds
            .par_iter_mut()
            .with_max_len(1)
            .try_for_each(|(_, b)| b.write(&at, &versions, pass, &current, &syncer))?;
    }
    let mut built: Vec<(usize, Built)> = builds
        .into_iter()
        .map(|(i, b)| b.finish(&rebuild, &syncer).map(|b| (i, b)))
        .collect::<Result<_, Error>>()?;
    built.sort_by_key(|(i, _)| *i);
    // Every new file and folder entry is on disk before any table is swapped in (the versions
    // folder holds the new versions' entries).
    syncer.add_folder(&versions).map_err(Error::io(&versions))?;
    syncer
        .wait()
        .map_err(|(path, e)| Error::Io { path, source: e })?;
    Ok(Some(CurrentBuild {
        root: root.clone(),
        dir,
        versions,
        run_id: run.run_id.clone(),
        started: run.started.clone(),
        runs: runs.len(),
        tables: tables.to_vec(),
        built: built.into_iter().map(|(_, b)| b).collect(),
        report,
    }))
}

/// The memory a refresh's claim events and their heads may take at once ([`REFRESH_MEMORY`];
/// tests set less).
fn refresh_memory() -> u64 {
    #[cfg(test)]
    if let Some(m) = REFRESH_MEMORY_IN_TESTS.with(std::cell::Cell::get) {
        return m;
    }
    REFRESH_MEMORY
}

#[cfg(test)]
thread_local! {
    /// Tests: the memory of [`refresh_memory`] on this thread, and the passes its refreshes
    /// took.
    static REFRESH_MEMORY_IN_TESTS: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    static PASSES_IN_TESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Tests: [`Touched`] hashes groups to eight values, most groups sharing one.
    static COARSE_GROUPS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The claim groups a run touched, on a partial rebuild: a set of their hashes (FNV-1a of what
/// makes the group: the bucket's hash, and with every version kept the version's id). Two
/// groups of one hash only make a group untouched by the run counted as touched, whose head is
/// then worked out from its events as any touched group's is, never a wrong row.
#[derive(Default)]
struct Touched {
    hashes: foldhash::HashSet<u64>,
    /// Tests: eight hashes for every group, most groups sharing one (set on the thread that
    /// made the set: the workers that cut rows see it too).
    #[cfg(test)]
    coarse: bool,
}

impl Touched {
    fn new() -> Self {
        Touched {
            hashes: foldhash::HashSet::default(),
            #[cfg(test)]
            coarse: COARSE_GROUPS.with(std::cell::Cell::get),
        }
    }

    fn hash(&self, api: Option<&str>, key: &str, rid: Option<&str>) -> u64 {
        #[cfg(test)]
        if self.coarse {
            return Fnv1a64::new().write(key.as_bytes()).finish() & 7;
        }
        let mut h = Fnv1a64::new();
        h.write(api.unwrap_or("").as_bytes())
            .write(b"\0")
            .write(key.as_bytes());
        if let Some(rid) = rid {
            h.write(b"\0").write(rid.as_bytes());
        }
        h.finish()
    }

    fn insert(&mut self, api: Option<&str>, key: &str, rid: Option<&str>) {
        let h = self.hash(api, key, rid);
        self.hashes.insert(h);
    }

    fn contains(&self, api: Option<&str>, key: &str, rid: Option<&str>) -> bool {
        self.hashes.contains(&self.hash(api, key, rid))
    }

    /// The bytes its table takes.
    fn bytes(&self) -> u64 {
        table_bytes(self.hashes.capacity() as u64, 8)
    }
}

/// Bytes of a claim event's columns as a pass holds them, planned for a count of events (83
/// measured on generated exports: ids and keys of about 20 characters, a run id of 16).
const EVENT_ROW_BYTES: u64 = 96;
/// Bytes of an entry of [`Heads`].
const HEAD_SLOT: usize = std::mem::size_of::<(Group<'_>, (Option<i64>, &str, &str))>();
/// Bytes of an entry of the cancels' set.
const CANCEL_SLOT: usize = std::mem::size_of::<(Group<'_>, &str)>();

/// The bytes a hash table of `entries` entries of `slot` bytes takes: hashbrown's, a power of
/// two of buckets, at most seven eighths of them used, a control byte each.
fn table_bytes(entries: u64, slot: usize) -> u64 {
    let buckets = match entries {
        0..4 => 4,
        4..8 => 8,
        _ => (entries.saturating_mul(8) / 7).next_power_of_two(),
    };
    buckets.saturating_mul(slot as u64 + 1)
}

/// Where a refresh reads the output's claim events (`_claimline_claims`).
struct ClaimEvents<'a> {
    root: &'a Path,
    /// Every part of the history, this run's (`run_files`) among them.
    files: &'a [PathBuf],
    run_files: &'a [PathBuf],
    run_id: &'a str,
    held: Option<&'a HeldRun>,
    only_run: Option<&'a str>,
    full: bool,
    all_versions: bool,
}

/// The claim events one pass of a refresh holds.
struct Events {
    /// The events' columns, of the rows kept.
    batches: Vec<RecordBatch>,
    /// On a partial rebuild, the groups the run touched (see [`Touched`]) in the pass's
    /// buckets; the rows of the others are current as the old dataset holds them.
    touched: Option<Touched>,
    /// The buckets of those groups.
    buckets: [bool; BUCKETS as usize],
}

/// What [`ClaimEvents::read`] found.
enum Read {
    /// The events, within the limit.
    Fits(Events),
    /// More than the limit; on a partial rebuild, the groups the run touched when they were
    /// all known before it was passed.
    Over(Option<Touched>),
}

/// The columns of the claim events a refresh reads.
const EVENT_COLUMNS: [&str; 6] = [
    "_api_version",
    "_claim_key",
    "_resource_id",
    "_action",
    "_run_id",
    "_last_updated",
];

/// The text columns of a batch of claim events, its times checked.
struct EventCells<'b> {
    api: Vec<Option<&'b str>>,
    key: Vec<Option<&'b str>>,
    id: Vec<Option<&'b str>>,
    action: Vec<Option<&'b str>>,
    run: Vec<Option<&'b str>>,
}

impl<'b> EventCells<'b> {
    fn of(b: &'b RecordBatch) -> Result<Self, Error> {
        timestamps(b, "_last_updated", CLAIMS)?;
        Ok(EventCells {
            api: strings(b, "_api_version", CLAIMS)?,
            key: strings(b, "_claim_key", CLAIMS)?,
            id: strings(b, "_resource_id", CLAIMS)?,
            action: strings(b, "_action", CLAIMS)?,
            run: strings(b, "_run_id", CLAIMS)?,
        })
    }
}

impl ClaimEvents<'_> {
    /// The batches of `files`, one after the other.
    fn batches<'s>(
        &'s self,
        files: &'s [PathBuf],
    ) -> impl Iterator<Item = Result<RecordBatch, Error>> + 's {
        files.iter().flat_map(move |file| {
            source_stream(self.root, file, self.run_id, CLAIMS, self.held)
                .unwrap_or_else(|e| Box::new(std::iter::once(Err(e))))
        })
    }

    /// The events pass `pass` (the buckets it rewrites) needs: every event of its buckets on a
    /// full rebuild, of the groups the run touched on a partial one, the cancels alone of an
    /// output's only run; [`Read::Over`] once they would take more than `limit` bytes.
    fn read(&self, pass: &[bool; BUCKETS as usize], limit: Option<u64>) -> Result<Read, Error> {
        let over = |bytes: u64| limit.is_some_and(|l| bytes > l);
        let mut buckets = [false; BUCKETS as usize];
        let mut touched = None;
        if !self.full {
            let mut groups = Touched::new();
            for b in self.batches(self.run_files) {
                let b = b?;
                let e = EventCells::of(&b)?;
                for i in 0..b.num_rows() {
                    if let (Some(k), Some(r)) = (e.key[i], e.run[i])
                        && r == self.run_id
                    {
                        let bk = bucket(e.api[i], k) as usize;
                        if pass[bk] {
                            buckets[bk] = true;
                            // (A version without an id has no rows.)
                            if let Some(rid) = e.id[i] {
                                let rid = self.all_versions.then_some(rid);
                                groups.insert(e.api[i], k, rid);
                            }
                        }
                    }
                }
                if over(groups.bytes()) {
                    return Ok(Read::Over(None));
                }
            }
            touched = Some(groups);
        }
        let touched_bytes = touched.as_ref().map_or(0, Touched::bytes);
        let (mut rows, mut batch_bytes) = (0u64, 0u64);
        let mut batches = Vec::new();
        for b in self.batches(self.files) {
            let b = b?;
            // Every column is checked as the heads' reading checks them, kept rows or not.
            let e = EventCells::of(&b)?;
            let mut keep: Vec<u32> = Vec::new();
            for i in 0..b.num_rows() {
                let (Some(k), Some(rid), Some(_)) = (e.key[i], e.id[i], e.run[i]) else {
                    continue;
                };
                if self.only_run.is_some() && e.action[i] != Some("cancel") {
                    continue;
                }
                if !pass[bucket(e.api[i], k) as usize] {
                    continue;
                }
                if touched
                    .as_ref()
                    .is_some_and(|t| !t.contains(e.api[i], k, self.all_versions.then_some(rid)))
                {
                    continue;
                }
                keep.push(i as u32);
            }
            if keep.is_empty() {
                continue;
            }
            let columns: Vec<usize> = EVENT_COLUMNS
                .iter()
                .map(|c| {
                    b.schema().index_of(c).map_err(|e| Error::Row {
                        table: CLAIMS.to_owned(),
                        column: (*c).to_owned(),
                        message: e.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?;
            let kept = b
                .project(&columns)
                .and_then(|p| {
                    arrow_select::take::take_record_batch(&p, &arrow_array::UInt32Array::from(keep))
                })
                .map_err(Error::parquet(self.root.join(CLAIMS)))?;
            rows += kept.num_rows() as u64;
            batch_bytes += kept.get_array_memory_size() as u64;
            batches.push(kept);
            // The heads of the groups among them (at most one a touched group), or the
            // cancels of an only run.
            let tables = match (self.only_run, &touched) {
                (Some(_), _) => table_bytes(rows, CANCEL_SLOT),
                (None, Some(t)) => table_bytes(rows.min(t.hashes.len() as u64), HEAD_SLOT),
                (None, None) => table_bytes(rows, HEAD_SLOT),
            };
            if over(touched_bytes + batch_bytes + tables) {
                // (The touched groups are all known: a count of their events plans the
                // passes.)
                return Ok(Read::Over(touched));
            }
        }
        Ok(Read::Fits(Events {
            batches,
            touched,
            buckets,
        }))
    }

    /// Per bucket, the events a pass over it would hold at most (an output's only run: its
    /// cancels; on a partial rebuild, those of the groups in `touched` when the groups the run
    /// touched are known, else every event) and the groups of its heads at most (on a partial
    /// rebuild, this run's events in it: a group's head and its cancels), and whether this run
    /// touched it: which buckets a refresh rewrites, and which fit in a pass together (the pass
    /// over every bucket did not fit).
    fn counts(&self, touched: Option<&Touched>) -> Result<Counts, Error> {
        let mut c = Counts {
            events: [0; BUCKETS as usize],
            groups: [0; BUCKETS as usize],
            touched: [false; BUCKETS as usize],
        };
        for b in self.batches(self.files) {
            let b = b?;
            let e = EventCells::of(&b)?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(r)) = (e.key[i], e.run[i]) else {
                    continue;
                };
                let bk = bucket(e.api[i], k) as usize;
                let this_run = r == self.run_id;
                c.touched[bk] |= this_run;
                let Some(rid) = e.id[i] else {
                    continue;
                };
                if self.only_run.is_some() && e.action[i] != Some("cancel") {
                    continue;
                }
                if touched
                    .is_some_and(|t| !t.contains(e.api[i], k, self.all_versions.then_some(rid)))
                {
                    continue;
                }
                c.events[bk] += 1;
                c.groups[bk] += u64::from(self.full || this_run);
            }
        }
        Ok(c)
    }
}

/// [`ClaimEvents::counts`]' answer.
struct Counts {
    events: [u64; BUCKETS as usize],
    groups: [u64; BUCKETS as usize],
    touched: [bool; BUCKETS as usize],
}

/// The buckets of `rebuild` in passes, in order, each of as many buckets as fit in `memory`
/// by their `counts` (one at least); `partial`: the groups a run touched are held too.
fn passes(
    rebuild: &[bool; BUCKETS as usize],
    counts: &Counts,
    partial: bool,
    memory: u64,
) -> Vec<[bool; BUCKETS as usize]> {
    let bytes = |events: u64, groups: u64| {
        events.saturating_mul(EVENT_ROW_BYTES)
            + table_bytes(groups, HEAD_SLOT)
            + if partial { table_bytes(groups, 8) } else { 0 }
    };
    let mut out = Vec::new();
    let (mut pass, mut events, mut groups) = ([false; BUCKETS as usize], 0u64, 0u64);
    for bk in (0..BUCKETS as usize).filter(|&bk| rebuild[bk]) {
        let (e, g) = (
            events.saturating_add(counts.events[bk]),
            groups.saturating_add(counts.groups[bk]),
        );
        if pass.contains(&true) && bytes(e, g) > memory {
            out.push(pass);
            (pass, events, groups) = ([false; BUCKETS as usize], 0, 0);
        }
        pass[bk] = true;
        events = events.saturating_add(counts.events[bk]);
        groups = groups.saturating_add(counts.groups[bk]);
    }
    if pass.contains(&true) {
        out.push(pass);
    }
    out
}

impl Events {
    /// The current versions of the pass's groups: the heads no cancel names.
    fn current<'e>(
        &'e self,
        all_versions: bool,
        only_run: Option<&'e str>,
    ) -> Result<Current<'e>, Error> {
        // Keys borrow the events' batches: a history of millions of claim versions is hashed,
        // not copied (the hasher is foldhash: the keys are the output folder's own claim ids).
        // (Room for a head per event, or per touched group when fewer: what the pass planned.)
        let rows: usize = self.batches.iter().map(RecordBatch::num_rows).sum();
        let mut heads: Heads<'_> = foldhash::HashMap::with_capacity_and_hasher(
            match (only_run, &self.touched) {
                (Some(_), _) => 0,
                (None, Some(t)) => rows.min(t.hashes.len()),
                (None, None) => rows,
            },
            Default::default(),
        );
        let mut cancelled: foldhash::HashSet<(Group<'_>, &str)> = foldhash::HashSet::default();
        for b in &self.batches {
            let api = strings(b, "_api_version", CLAIMS)?;
            let key = strings(b, "_claim_key", CLAIMS)?;
            let id = strings(b, "_resource_id", CLAIMS)?;
            let action = strings(b, "_action", CLAIMS)?;
            let run_ids = strings(b, "_run_id", CLAIMS)?;
            let lu = timestamps(b, "_last_updated", CLAIMS)?;
            for i in 0..b.num_rows() {
                let (Some(k), Some(rid), Some(r)) = (key[i], id[i], run_ids[i]) else {
                    continue;
                };
                // With every version kept, each version is a group of its own.
                let group = (api[i], k, all_versions.then_some(rid));
                if action[i] == Some("cancel") {
                    cancelled.insert((group, rid));
                    continue;
                }
                if only_run.is_some() {
                    continue;
                }
                let candidate = (lu[i], r, rid);
                // `ORDER BY _last_updated DESC NULLS LAST, _run_id DESC`: a NULL is below any
                // time. One lookup per event (most name a group not seen yet).
                match heads.entry(group) {
                    Entry::Vacant(v) => {
                        v.insert(candidate);
                    }
                    Entry::Occupied(mut o) => {
                        let h = o.get();
                        if (candidate.0.is_some(), candidate.0, candidate.1)
                            > (h.0.is_some(), h.0, h.1)
                        {
                            o.insert(candidate);
                        }
                    }
                }
            }
        }
        // A cancelled head keeps no rows: what is left are the current versions.
        if !cancelled.is_empty() {
            heads.retain(|&g, &mut (_, _, rid)| !cancelled.contains(&(g, rid)));
        }
        Ok(Current {
            heads,
            all_versions,
            only_run,
            cancelled,
            touched: self.touched.as_ref(),
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Tests: work the heads out even for an output's only run (`.0`, see
    /// `Current::only_run`), and whether a refresh on this thread last skipped them (`.1`).
    static HEADS_ALWAYS: std::cell::Cell<(bool, bool)> = const { std::cell::Cell::new((false, false)) };
}

/// One table's new current dataset, written (its files handed to the refresh's syncer) and not
/// yet swapped in.
#[derive(Debug)]
struct Built {
    rows: u64,
    /// Its folder's name under the versions folder.
    new_name: String,
    new: PathBuf,
    /// The version it replaces.
    old: Option<PathBuf>,
}

/// Where a refresh's tables read their rows: the history under `root`, this run's rows held by
/// the sink (`held`, and `pending` when its partitions are not in place yet).
struct Sources<'a> {
    root: &'a Path,
    run_id: &'a str,
    full: bool,
    held: Option<&'a HeldRun>,
    pending: Option<&'a HeldRun>,
}

impl Sources<'_> {
    /// The files whose rows the buckets `buckets` of `table` are rewritten from: the whole
    /// history, or the old current dataset's files of those buckets (`old`: its folder) and
    /// this run's partition.
    fn of(
        &self,
        table: &str,
        old: Option<&Path>,
        buckets: &[bool; BUCKETS as usize],
    ) -> Result<Vec<PathBuf>, Error> {
        let (root, run_id) = (self.root, self.run_id);
        if self.full {
            return history_files(root, table, &root.join(table), run_id, self.pending);
        }
        let mut s = Vec::new();
        for b in (0..BUCKETS).filter(|&b| buckets[b as usize]) {
            let f = old.map(|o| o.join(format!("bucket={b:02}")).join("part-0.parquet"));
            s.extend(f.filter(|f| f.is_file()));
        }
        s.extend(history_files(
            root,
            table,
            &run_dir(root, table, run_id),
            run_id,
            self.pending,
        )?);
        Ok(s)
    }
}

/// One table's new version of its current dataset while a refresh writes it: begun
/// ([`TableBuild::begin`]), its rewritten buckets written pass by pass ([`TableBuild::write`]),
/// the others linked from the old version ([`TableBuild::finish`]).
struct TableBuild<'t> {
    table: &'t str,
    /// The version it replaces.
    old: Option<PathBuf>,
    new_name: String,
    new: PathBuf,
    /// The columns every source has.
    schema: Option<arrow_schema::SchemaRef>,
    /// Each source's cells (rows times columns, from its footer, read once by
    /// [`TableBuild::begin`]): whether a pass's rows wait on disk.
    cells: std::collections::HashMap<PathBuf, u64>,
    /// Rows written to the rewritten buckets so far.
    rows: u64,
}

impl<'t> TableBuild<'t> {
    /// Makes table `table`'s new version's folder, having checked that every file its buckets
    /// `rebuild` are rewritten from has the same columns.
    fn begin(
        at: &Sources<'_>,
        dir: &Path,
        versions: &Path,
        table: &'t str,
        rebuild: &[bool; BUCKETS as usize],
    ) -> Result<Self, Error> {
        let link = dir.join(table);
        let old = std::fs::read_link(&link).ok().map(|p| dir.join(p));
        let new_name = version_name(shown_version(dir, table).as_deref(), table, at.run_id);
        let new = versions.join(&new_name);
        if new.exists() {
            // A version no table shows (a refresh that stopped half-way).
            std::fs::remove_dir_all(&new).map_err(Error::io(&new))?;
        }
        claimline_model::create_private_dir(&new).map_err(Error::io(&new))?;
        // Each source's columns, first: one set of columns for every bucket (runs loaded with
        // views that give the table other columns cannot make one current dataset; found by a
        // review: the bucket writer went on by the first file's column positions, making a
        // table of mixed columns, or panicked).
        let mut schema: Option<arrow_schema::SchemaRef> = None;
        let mut cells = std::collections::HashMap::new();
        for file in &at.of(table, old.as_deref(), rebuild)? {
            let (file_schema, n) = source_schema(at.root, file, at.run_id, table, at.held)?;
            cells.insert(file.clone(), n);
            if let Some(first) = &schema
                && first.fields() != file_schema.fields()
            {
                return Err(Error::Parquet {
                    path: file.clone(),
                    message: format!(
                        "its columns are not those of the table's other files ({} against {}): \
                         runs loaded with views that give {table} other columns make no one \
                         current table; load into a new --out",
                        file_schema.fields().len(),
                        first.fields().len()
                    ),
                });
            }
            schema.get_or_insert(file_schema);
        }
        Ok(TableBuild {
            table,
            old,
            new_name,
            new,
            schema,
            cells,
            rows: 0,
        })
    }

    /// Writes the buckets of `pass` (their current rows by `current`), handing every file
    /// written and folder given entries to `syncer`.
    fn write(
        &mut self,
        at: &Sources<'_>,
        versions: &Path,
        pass: &[bool; BUCKETS as usize],
        current: &Current<'_>,
        syncer: &claimline_model::Syncer,
    ) -> Result<(), Error> {
        use rayon::prelude::*;
        let (table, new) = (self.table, &self.new);
        let sources = at.of(table, self.old.as_deref(), pass)?;
        // (A pass's sources are among those `begin` read.)
        let mut file_cells = 0u64;
        for file in &sources {
            file_cells += match self.cells.get(file) {
                Some(&n) => n,
                None => source_schema(at.root, file, at.run_id, table, at.held)?.1,
            };
        }
        // The rows of a table read back from big files wait for their bucket's file on disk,
        // not in memory: a refresh's memory then stays bounded however long the history (the
        // whole table in memory grew about 90 MiB per GB of claims loaded, found at 10 GB).
        let spill = spills(file_cells)
            .then(|| versions.join(format!("{}.spill", self.new_name)))
            .map(Spill::new)
            .transpose()?;
        let mut stores: BTreeMap<u64, Store> = BTreeMap::new();
        for file in &sources {
            // Read a window of batches at a time: each batch is cut into its buckets' current
            // rows on a worker of its own; the pieces are then queued per bucket in the
            // batches' order, as one thread would queue them.
            let mut batches = source_stream(at.root, file, at.run_id, table, at.held)?;
            loop {
                let window: Vec<RecordBatch> = batches
                    .by_ref()
                    .take(CUT_BATCHES)
                    .collect::<Result<_, Error>>()?;
                if window.is_empty() {
                    break;
                }
                let cut: Vec<Vec<(u64, RecordBatch)>> = window
                    .par_iter()
                    .map(|b| current_rows(b, file, table, pass, current))
                    .collect::<Result<_, Error>>()?;
                drop(window);
                for (bk, kept) in cut.into_iter().flatten() {
                    let store = match stores.entry(bk) {
                        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::btree_map::Entry::Vacant(v) => {
                            v.insert(Store::new(bk, &kept, spill.as_ref())?)
                        }
                    };
                    store.push(kept)?;
                }
            }
        }
        // The buckets' schema as their files carry it, worked out once for all of them (the
        // batches' schema: a reader's, without the history file's metadata; a bucket whose
        // batches have another gets its own).
        let file_schema = stores
            .values()
            .next()
            .map(|s| FileSchema::new(s.schema.clone()).map_err(Error::parquet(new)))
            .transpose()?;
        // The rewritten buckets are encoded at once, on whichever workers are free (a load of
        // one claim table would otherwise encode its 16 buckets on one core).
        let written: Result<Vec<u64>, Error> = stores
            .into_par_iter()
            .map(|(bk, store)| {
                let folder = new.join(format!("bucket={bk:02}"));
                let target = folder.join("part-0.parquet");
                claimline_model::create_private_dir(&folder).map_err(Error::io(&folder))?;
                let own;
                let schema = match &file_schema {
                    Some(f) if *f.arrow() == store.schema => f,
                    _ => {
                        own = FileSchema::new(store.schema.clone())
                            .map_err(Error::parquet(&target))?;
                        &own
                    }
                };
                let stats = store.stats.clone();
                let (n, file) = write_file(&target, schema, &stats, store.into_batches()?)?;
                syncer.add(target, file);
                syncer.add_folder(&folder).map_err(Error::io(&folder))?;
                Ok(n)
            })
            .collect();
        // (The spill files go with it.)
        drop(spill);
        self.rows += written?.iter().sum::<u64>();
        Ok(())
    }

    /// Links the buckets not rewritten (those not in `rebuild`) from the old version, and
    /// gives a table of no current rows one empty file.
    fn finish(
        self,
        rebuild: &[bool; BUCKETS as usize],
        syncer: &claimline_model::Syncer,
    ) -> Result<Built, Error> {
        let TableBuild {
            old,
            new_name,
            new,
            schema,
            mut rows,
            ..
        } = self;
        for bk in (0..BUCKETS).filter(|&bk| !rebuild[bk as usize]) {
            let folder = new.join(format!("bucket={bk:02}"));
            let target = folder.join("part-0.parquet");
            if let Some(old_file) = old
                .as_ref()
                .map(|o| o.join(format!("bucket={bk:02}")).join("part-0.parquet"))
                .filter(|f| f.is_file())
            {
                claimline_model::create_private_dir(&folder).map_err(Error::io(&folder))?;
                // A hard link shares the old file's synced data; a copy (where the file system
                // cannot link) is new data and is synced with the files written.
                if std::fs::hard_link(&old_file, &target).is_err() {
                    std::fs::copy(&old_file, &target).map_err(Error::io(&target))?;
                    let file = std::fs::File::open(&target).map_err(Error::io(&target))?;
                    syncer.add(target.clone(), file);
                }
                rows += parquet_rows(&target)?;
                syncer.add_folder(&folder).map_err(Error::io(&folder))?;
            }
        }
        // A table with no current rows still gets one (empty) file with its columns, as the
        // history's runs do: a reader's glob, and its DuckDB view, then find a table, not
        // nothing.
        let has_bucket = std::fs::read_dir(&new)
            .map_err(Error::io(&new))?
            .next()
            .is_some();
        if let (false, Some(schema)) = (has_bucket, schema) {
            let folder = new.join("bucket=00");
            claimline_model::create_private_dir(&folder).map_err(Error::io(&folder))?;
            let target = folder.join("part-0.parquet");
            let schema = FileSchema::new(schema).map_err(Error::parquet(&target))?;
            let (_, file) = write_batches(&target, &schema, &[])?;
            syncer.add(target, file);
            syncer.add_folder(&folder).map_err(Error::io(&folder))?;
        }
        syncer.add_folder(&new).map_err(Error::io(&new))?;
        Ok(Built {
            rows,
            new_name,
            new,
            old,
        })
    }
}

/// The current rows of batch `b` (of `file`, a part of `table`) in the buckets of `pass`, a
/// batch per bucket, in the order of the buckets.
///
/// The rows are gathered once, bucket after bucket (one `take` of every column), and each
/// bucket's batch is a slice of that: sixteen filters would each go over every row.
fn current_rows(
    b: &RecordBatch,
    file: &Path,
    table: &str,
    pass: &[bool; BUCKETS as usize],
    current: &Current<'_>,
) -> Result<Vec<(u64, RecordBatch)>, Error> {
    let api = strings(b, "_api_version", table)?;
    let key = strings(b, "_claim_key", table)?;
    let id = strings(b, "_resource_id", table)?;
    let runs = strings(b, "_run_id", table)?;
    let mut rows: Vec<Vec<u64>> = vec![Vec::new(); BUCKETS as usize];
    for i in 0..b.num_rows() {
        let (Some(k), Some(rid), Some(r)) = (key[i], id[i], runs[i]) else {
            continue;
        };
        let bk = bucket(api[i], k);
        if !pass[bk as usize] {
            continue;
        }
        if current.holds(api[i], k, rid, r) {
            rows[bk as usize].push(i as u64);
        }
    }
    let taken = UInt64Array::from(rows.concat());
    if taken.is_empty() {
        return Ok(Vec::new());
    }
    let taken = arrow_select::take::take_record_batch(b, &taken).map_err(|e| Error::Io {
        path: file.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    let mut at = 0;
    Ok(rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(bk, r)| {
            let slice = taken.slice(at, r.len());
            at += r.len();
            (bk as u64, slice)
        })
        .collect())
}

/// Swaps table `table`'s built version in: a new symlink renamed over the old one; then the
/// old version goes.
fn swap_table(dir: &Path, table: &str, built: Built) -> Result<(), Error> {
    let Built {
        new_name, new, old, ..
    } = built;
    let link = dir.join(table);
    let tmp = dir.join(format!(".{table}.link"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new("..").join(VERSIONS_DIR).join(&new_name), &tmp)
        .map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, &link).map_err(Error::io(&link))?;
    claimline_fault::point("current.swap").map_err(Error::io(&link))?;
    claimline_model::sync_dir(dir).map_err(Error::io(dir))?;
    // (By name: the old one is reached through the link, `current/../.claimline-current/…`.)
    if let Some(old) = old.filter(|o| o.file_name() != new.file_name()) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

/// The folder name of table `table`'s new version for run `run_id`, `shown` the version
/// `current/<table>` shows: `<table>-<run_id>`, or `<table>-<run_id>~1` when that is shown (the
/// run id loaded again; its next load takes the first name again). A version shown is never
/// written over: readers may be reading it until the swap.
fn version_name(shown: Option<&str>, table: &str, run_id: &str) -> String {
    let base = format!("{table}-{run_id}");
    if shown == Some(base.as_str()) {
        format!("{base}~1")
    } else {
        base
    }
}

/// Whether `name` is one of [`version_name`]'s names for table `table` and run `run_id`.
fn is_version_of(name: &str, table: &str, run_id: &str) -> bool {
    name.strip_prefix(table)
        .and_then(|n| n.strip_prefix('-'))
        .and_then(|n| n.strip_prefix(run_id))
        .is_some_and(|n| n.is_empty() || n == "~1")
}

/// The name of the version `current/<table>` (`dir`: `current/`) shows; none when the table
/// has no current dataset.
fn shown_version(dir: &Path, table: &str) -> Option<String> {
    let link = std::fs::read_link(dir.join(table)).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The named columns of the current rows of claim table `table` in the output folder `out`
/// (`out/current/<table>/bucket=*/part-0.parquet`, as [`refresh_current`] left them), typed as
/// [`crate::read_parquet_cells`] reads them; none when the table has no current dataset.
///
/// # Errors
/// [`Error::Io`] or [`Error::Parquet`] for an unreadable part, [`Error::Row`] for a missing column.
pub fn read_current_parquet(
    out: &Path,
    table: &str,
    columns: &[&str],
) -> Result<Vec<Vec<crate::Cell>>, Error> {
    crate::read_parquet_cells(&parquet_files(&out.join(CURRENT_DIR).join(table))?, columns)
}

/// Removes versions no table's symlink names (left by a refresh that stopped half-way).
fn remove_unlinked_versions(dir: &Path, versions: &Path) {
    let linked: HashSet<std::ffi::OsString> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|p| p.file_name().map(ToOwned::to_owned))
        .collect();
    for e in std::fs::read_dir(versions).into_iter().flatten().flatten() {
        if e.path().is_dir() && !linked.contains(&e.file_name()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `current/views.sql`: DuckDB views of every table's current rows, paths relative to the
/// output folder (run it there: `duckdb -init current/views.sql`).
fn write_views(root: &Path, dir: &Path, claim_tables: &[String]) -> Result<(), Error> {
    let mut sql = String::from(
        "-- DuckDB views of the current rows of every table (written by claimline after each\n\
         -- run). Run from the output folder: duckdb -init current/views.sql\n",
    );
    let mut others: Vec<String> = std::fs::read_dir(root)
        .map_err(Error::io(root))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(['.', '_']))
        .filter(|n| !claim_tables.contains(n))
        .collect();
    others.sort();
    for t in claim_tables {
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW \"{t}\" AS SELECT * EXCLUDE (bucket) FROM read_parquet(\
             'current/{t}/*/part-*.parquet', hive_partitioning = true);\n"
        ));
    }
    // The other tables hold a row set per resource: its current version is the latest across
    // all of them, as SQLite replaces a resource's rows in every such table at once (a newer
    // Patient with no MBI history leaves no `cclf9` row, and the earlier ones are not current).
    // Only the runs `_claimline_runs.json` records count: a run is recorded once all its
    // partitions are in place, so a process killed between two tables' renames leaves the
    // previous runs current, not a version one table has and another lacks.
    let globs: Vec<String> = others
        .iter()
        .map(|t| format!("'parquet/{t}/*/part-*.parquet'"))
        .collect();
    for t in &others {
        sql.push_str(&format!(
            "CREATE OR REPLACE VIEW \"{t}\" AS WITH runs AS (SELECT run_id AS _run_id FROM \
             read_json('parquet/_claimline_runs.json', columns = {{run_id: 'VARCHAR'}})), \
             heads AS (SELECT DISTINCT _api_version, _resource_id, _run_id FROM \
             read_parquet([{}], hive_partitioning = true, union_by_name = true) SEMI JOIN runs \
             USING (_run_id) QUALIFY rank() OVER (PARTITION BY _api_version, _resource_id \
             ORDER BY _last_updated DESC NULLS LAST, _run_id DESC) = 1) SELECT t.* EXCLUDE (run) \
             FROM read_parquet('parquet/{t}/*/part-*.parquet', hive_partitioning = true) t SEMI \
             JOIN heads h ON t._api_version IS NOT DISTINCT FROM h._api_version AND \
             t._resource_id = h._resource_id AND t._run_id = h._run_id;\n",
            globs.join(", ")
        ));
    }
    claimline_model::write_atomic(&dir.join("views.sql"), sql.as_bytes())
        .map_err(Error::io(dir.join("views.sql")))
}

/// The part files (`part-*.parquet`) anywhere under `dir`, sorted; none when `dir` is absent.
pub(crate) fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parquet_files(&p)?);
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
            && p.extension().is_some_and(|x| x == "parquet")
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Run `run_id`'s partition of table `table` under the history root `root`.
fn run_dir(root: &Path, table: &str, run_id: &str) -> PathBuf {
    root.join(table).join(format!("run={run_id}"))
}

/// The schema and batches of `file`, a part of table `table`'s history under `root`: for the
/// one part of run `run_id`'s partition, the rows the sink held ([`HeldRun`]), cut as a reader
/// of the file cuts them (so what is written from them is the same, byte for byte); otherwise
/// read.
fn source_batches(
    root: &Path,
    file: &Path,
    run_id: &str,
    table: &str,
    held: Option<&HeldRun>,
) -> Result<(arrow_schema::SchemaRef, Vec<RecordBatch>), Error> {
    if let Some((held, batches)) = held_rows(root, file, run_id, table, held) {
        // The file's schema (as the sink worked it out, else from the file's footer), and the
        // batches get the schema a reader's batches have (the same fields, without the file's
        // metadata).
        let schema = match held.schemas.get(table) {
            Some(schema) => schema.clone(),
            None => {
                let f = File::open(file).map_err(Error::io(file))?;
                ParquetRecordBatchReaderBuilder::try_new(f)
                    .map_err(Error::parquet(file))?
                    .schema()
                    .clone()
            }
        };
        let plain = Arc::new(arrow_schema::Schema::new(schema.fields().clone()));
        let batches: Option<Vec<RecordBatch>> = batches
            .iter()
            .map(|b| RecordBatch::try_new(plain.clone(), b.columns().to_vec()).ok())
            .collect();
        // Batches that do not fit the file (which the sink wrote from them) are read instead:
        // slower, never wrong.
        if let Some(windows) =
            batches.and_then(|b| crate::parquet_sink::read_windows(&plain, &b).ok())
        {
            return Ok((schema, windows));
        }
    }
    read_file(file)
}

/// The run's rows of `table` the sink held (`held`), when `file` is the one part of run
/// `run_id`'s partition they stand for.
fn held_rows<'h>(
    root: &Path,
    file: &Path,
    run_id: &str,
    table: &str,
    held: Option<&'h HeldRun>,
) -> Option<(&'h HeldRun, &'h Vec<RecordBatch>)> {
    let held = held?;
    let batches = held.tables.get(table)?;
    (file == run_dir(root, table, run_id).join("part-0.parquet")).then_some((held, batches))
}

/// The schema [`source_batches`] gives `file`'s batches, and its cells (rows times columns; 0
/// for the rows a sink holds in memory), read from the footer alone.
fn source_schema(
    root: &Path,
    file: &Path,
    run_id: &str,
    table: &str,
    held: Option<&HeldRun>,
) -> Result<(arrow_schema::SchemaRef, u64), Error> {
    let held_here = held_rows(root, file, run_id, table, held);
    if let Some(schema) = held_here.and_then(|(h, _)| h.schemas.get(table)) {
        return Ok((schema.clone(), 0));
    }
    let f = File::open(file).map_err(Error::io(file))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(Error::parquet(file))?;
    let cells = if held_here.is_some() {
        0
    } else {
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        rows * builder.schema().fields().len() as u64
    };
    Ok((builder.schema().clone(), cells))
}

/// [`source_batches`]' batches one after the other: a file read back is decoded as they are
/// taken, never whole.
fn source_stream<'h>(
    root: &Path,
    file: &Path,
    run_id: &str,
    table: &str,
    held: Option<&'h HeldRun>,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, Error>> + 'h>, Error> {
    if held_rows(root, file, run_id, table, held).is_some() {
        let (_, batches) = source_batches(root, file, run_id, table, held)?;
        return Ok(Box::new(batches.into_iter().map(Ok)));
    }
    let f = File::open(file).map_err(Error::io(file))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(Error::parquet(file))?;
    let path = file.to_path_buf();
    Ok(Box::new(
        reader.map(move |b| b.map_err(Error::parquet(&path))),
    ))
}

/// Batches read back and cut into buckets at once (on every worker), the rest of the file
/// still on disk.
const CUT_BATCHES: usize = 64;
/// Cells of a table's files read back past which the rows cut into buckets wait in spill files
/// (see [`Spill`]): about 64 MiB of a CCLF table's rows in Arrow.
const SPILL_AT: u64 = 4 << 20;

/// Tests: every table read back spills, and how many spill folders were made.
#[cfg(test)]
static FORCE_SPILL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
#[cfg(test)]
static SPILLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether a table whose files read back hold `cells` spills its rows (see [`Spill`]).
fn spills(cells: u64) -> bool {
    #[cfg(test)]
    if FORCE_SPILL.load(std::sync::atomic::Ordering::Relaxed) && cells > 0 {
        return true;
    }
    cells > SPILL_AT
}

/// A folder of one table's bucket rows between their cut and their file (Arrow IPC streams,
/// owner-only, next to the versions), removed when the build is done or failed. A process that
/// dies leaves it to the next refresh, which removes every folder no table shows.
struct Spill {
    dir: PathBuf,
}

impl Spill {
    fn new(dir: PathBuf) -> Result<Self, Error> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io(&dir))?;
        }
        claimline_model::create_private_dir(&dir).map_err(Error::io(&dir))?;
        #[cfg(test)]
        SPILLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Spill { dir })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One bucket's current rows, in the order its file takes them, and what its file's settings
/// are decided by ([`BucketStats`]).
struct Store {
    /// The first piece's: the bucket file's schema.
    schema: arrow_schema::SchemaRef,
    stats: BucketStats,
    kept: Kept,
}

enum Kept {
    Memory(Vec<RecordBatch>),
    /// Pieces gathered into batches of about [`SPILL_ROWS`] rows (a piece is a few dozen rows:
    /// one message each would be most of the work), each piece's rows noted to cut them apart
    /// again: the bucket's writer is handed the same pieces either way.
    Spilled {
        file: SpillFile,
        gathering: Vec<RecordBatch>,
        rows: usize,
        lens: Vec<usize>,
    },
}

/// Rows of the batches a spill file is written in.
const SPILL_ROWS: usize = 2 << 10;

/// Writes the gathered pieces as one batch of `schema`.
fn spill_gathered(
    schema: &arrow_schema::SchemaRef,
    file: &mut SpillFile,
    gathering: &mut Vec<RecordBatch>,
    rows: &mut usize,
) -> Result<(), Error> {
    if gathering.is_empty() {
        return Ok(());
    }
    let batch = arrow_select::concat::concat_batches(schema, gathering.iter())
        .map_err(Error::parquet(file.path()))?;
    file.write(&batch)?;
    gathering.clear();
    *rows = 0;
    Ok(())
}

impl Store {
    fn new(bucket: u64, first: &RecordBatch, spill: Option<&Spill>) -> Result<Self, Error> {
        let schema = first.schema();
        let kept = match spill {
            None => Kept::Memory(Vec::new()),
            Some(spill) => {
                let path = spill.dir.join(format!("bucket={bucket:02}.arrows"));
                Kept::Spilled {
                    file: SpillFile::create(path, &schema)?,
                    gathering: Vec::new(),
                    rows: 0,
                    lens: Vec::new(),
                }
            }
        };
        Ok(Store {
            stats: BucketStats::new(&schema),
            schema,
            kept,
        })
    }

    fn push(&mut self, piece: RecordBatch) -> Result<(), Error> {
        self.stats.add(&piece);
        match &mut self.kept {
            Kept::Memory(pieces) => pieces.push(piece),
            Kept::Spilled {
                file,
                gathering,
                rows,
                lens,
            } => {
                // (Gathered under the store's schema: the same columns, a piece's own metadata
                // aside.)
                let piece = RecordBatch::try_new(self.schema.clone(), piece.columns().to_vec())
                    .map_err(Error::parquet(file.path()))?;
                lens.push(piece.num_rows());
                *rows += piece.num_rows();
                gathering.push(piece);
                if *rows >= SPILL_ROWS {
                    spill_gathered(&self.schema, file, gathering, rows)?;
                }
            }
        }
        Ok(())
    }

    /// The pieces, in the order they came.
    fn into_batches(
        self,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, Error>> + Send>, Error> {
        match self.kept {
            Kept::Memory(pieces) => Ok(Box::new(pieces.into_iter().map(Ok))),
            Kept::Spilled {
                mut file,
                mut gathering,
                mut rows,
                lens,
            } => {
                spill_gathered(&self.schema, &mut file, &mut gathering, &mut rows)?;
                let reader = file.read_back()?;
                let path = reader.path().to_owned();
                // Each batch read back cut into the pieces it gathered, in order.
                let mut lens = lens.into_iter();
                let pieces = reader.flat_map(move |b| {
                    let b = match b {
                        Ok(b) => b,
                        Err(e) => return vec![Err(e)],
                    };
                    let mut out = Vec::new();
                    let mut at = 0;
                    while at < b.num_rows() {
                        let Some(n) = lens.next() else {
                            out.push(Err(Error::Parquet {
                                path: path.clone(),
                                message: "a spill file holds more rows than were put in it".into(),
                            }));
                            break;
                        };
                        out.push(Ok(b.slice(at, n.min(b.num_rows() - at))));
                        at += n;
                    }
                    out
                });
                Ok(Box::new(pieces))
            }
        }
    }
}

/// What a bucket file's settings are decided by, gathered piece by piece in the file's order:
/// whether each plain lineage column changes value on most rows ([`PLAIN_COLUMNS`]), and the
/// bytes of each column's values (see [`write_file`]). However the rows are cut into pieces,
/// and wherever the pieces wait, the same answer.
#[derive(Debug, Clone)]
struct BucketStats {
    changing: Vec<Changing>,
    bytes: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Changing {
    column: &'static str,
    at: usize,
    rows: usize,
    changes: usize,
    last: Option<Last>,
    /// A column neither text nor 64-bit integers: never counted as changing.
    other: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Last {
    Text(String),
    Int(i64),
}

impl BucketStats {
    fn new(schema: &arrow_schema::Schema) -> Self {
        BucketStats {
            changing: PLAIN_COLUMNS
                .iter()
                .filter_map(|&column| {
                    Some(Changing {
                        column,
                        at: schema.index_of(column).ok()?,
                        rows: 0,
                        changes: 0,
                        last: None,
                        other: false,
                    })
                })
                .collect(),
            bytes: vec![0; schema.fields().len()],
        }
    }

    fn add(&mut self, b: &RecordBatch) {
        for ch in &mut self.changing {
            let c = b.column(ch.at);
            ch.rows += c.len();
            if let Some(s) = c.as_any().downcast_ref::<StringArray>() {
                let mut last = match &ch.last {
                    Some(Last::Text(t)) => Some(t.as_str()),
                    _ => None,
                };
                for k in 0..s.len() {
                    let v = s.value(k);
                    ch.changes += usize::from(last.is_some_and(|l| l != v));
                    last = Some(v);
                }
                ch.last = last.map(|l| Last::Text(l.to_owned()));
            } else if let Some(n) = c.as_any().downcast_ref::<arrow_array::Int64Array>() {
                let mut last = match ch.last {
                    Some(Last::Int(i)) => Some(i),
                    _ => None,
                };
                for &v in n.values() {
                    ch.changes += usize::from(last.is_some_and(|l| l != v));
                    last = Some(v);
                }
                ch.last = last.map(Last::Int);
            } else {
                ch.other = true;
            }
        }
        for (i, bytes) in self.bytes.iter_mut().enumerate() {
            // The bytes of the values themselves (not of the buffers a slice shares, so a
            // bucket cut from a held batch and one read back decide alike), times the share
            // that is not null: a column of nulls encodes to almost nothing.
            let c = b.column(i);
            let values = c.len() - c.null_count();
            *bytes += slice_size(c.as_ref()) * values / c.len().max(1);
        }
    }
}

/// A file's schema (a file of no rows has one too) and its batches.
fn read_file(file: &Path) -> Result<(arrow_schema::SchemaRef, Vec<RecordBatch>), Error> {
    let f = File::open(file).map_err(Error::io(file))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(Error::parquet(file))?;
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(Error::parquet(file))?;
    let batches = reader
        .map(|b| b.map_err(Error::parquet(file)))
        .collect::<Result<_, _>>()?;
    Ok((schema, batches))
}

fn parquet_rows(file: &Path) -> Result<u64, Error> {
    let f = File::open(file).map_err(Error::io(file))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f).map_err(Error::parquet(file))?;
    Ok(b.metadata().file_metadata().num_rows() as u64)
}

/// Writes one bucket file from `batches` (whose [`BucketStats`] are `stats`); returns its rows
/// and the file, not synced yet (the caller hands it to the refresh's syncer).
fn write_file(
    path: &Path,
    schema: &FileSchema,
    stats: &BucketStats,
    batches: impl IntoIterator<Item = Result<RecordBatch, Error>>,
) -> Result<(u64, File), Error> {
    let file = claimline_model::create_private(path).map_err(Error::io(path))?;
    let mut props =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
    // No dictionary for a lineage column whose value changes from one row to the next on most
    // rows (a table of a row per claim): it would be all the work of hashing each value, and
    // bigger than the values. Where rows repeat it (a line table, a few rows per claim), and in
    // every other column, the dictionary is kept: a bucket's small chunks are stored
    // uncompressed, and a dictionary is what keeps repeated values small there.
    for ch in &stats.changing {
        if !ch.other && ch.changes * 2 > ch.rows {
            props = props.set_column_dictionary_enabled(
                parquet::schema::types::ColumnPath::from(ch.column),
                false,
            );
        }
    }
    // A small column chunk is stored uncompressed: zstd would save a few hundred bytes, and
    // each compressed chunk costs a compressor and a decompressor to set up (parquet-rs makes
    // both per column written and read; each asks the CPU its features, which a VM traps),
    // most of the time of a refresh of small buckets.
    for (field, &bytes) in schema.arrow().fields().iter().zip(&stats.bytes) {
        if bytes < SMALL_CHUNK {
            props = props.set_column_compression(
                parquet::schema::types::ColumnPath::from(field.name().as_str()),
                Compression::UNCOMPRESSED,
            );
        }
    }
    let props = schema.properties(props.build());
    // Called on rayon's workers (a bucket each): a big bucket's columns go to any that is free.
    let mut w = ColumnsWriter::try_new(file, schema, props).map_err(Error::parquet(path))?;
    let mut rows = 0u64;
    for b in batches {
        let b = b?;
        w.write(&b).map_err(Error::parquet(path))?;
        rows += b.num_rows() as u64;
    }
    let f = w.into_inner().map_err(Error::parquet(path))?;
    Ok((rows, f))
}

/// [`write_file`] for pieces held in memory.
fn write_batches(
    path: &Path,
    schema: &FileSchema,
    batches: &[RecordBatch],
) -> Result<(u64, File), Error> {
    let mut stats = BucketStats::new(schema.arrow());
    for b in batches {
        stats.add(b);
    }
    write_file(path, schema, &stats, batches.iter().cloned().map(Ok))
}

/// What `c.to_data().get_slice_memory_size()` reports (the bytes of its rows' values, offsets
/// and null mask, not of the buffers it shares), without building an `ArrayData` for the
/// sink's column types; any other type is asked the long way.
fn slice_size(c: &dyn Array) -> usize {
    use arrow_schema::DataType;
    let n = c.len();
    let nulls = if c.null_count() > 0 { n.div_ceil(8) } else { 0 };
    let own = match c.data_type() {
        DataType::Utf8 => match c.as_any().downcast_ref::<StringArray>() {
            Some(s) => {
                let offsets = s.value_offsets();
                (n + 1) * 4 + (offsets[n] - offsets[0]) as usize
            }
            None => return long_size(c),
        },
        DataType::Boolean => n.div_ceil(8),
        t => match t.primitive_width() {
            Some(width) => n * width,
            None => return long_size(c),
        },
    };
    own + nulls
}

/// `get_slice_memory_size` through `ArrayData`, for what [`slice_size`] does not know.
fn long_size(c: &dyn Array) -> usize {
    c.to_data()
        .get_slice_memory_size()
        .unwrap_or(usize::MAX / 2)
}

fn column<'a>(b: &'a RecordBatch, name: &str, table: &str) -> Result<&'a Arc<dyn Array>, Error> {
    b.column_by_name(name).ok_or_else(|| Error::Row {
        table: table.to_owned(),
        column: name.to_owned(),
        message: "no such column in the history".into(),
    })
}

/// Column `name` of `b` as text cells.
fn strings<'b>(b: &'b RecordBatch, name: &str, table: &str) -> Result<Vec<Option<&'b str>>, Error> {
    let c = column(b, name, table)?;
    let a = c
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Row {
            table: table.to_owned(),
            column: name.to_owned(),
            message: format!("not a string column ({})", c.data_type()),
        })?;
    Ok(a.iter().collect())
}

fn timestamps(b: &RecordBatch, name: &str, table: &str) -> Result<Vec<Option<i64>>, Error> {
    let c = column(b, name, table)?;
    let a = c
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::Row {
            table: table.to_owned(),
            column: name.to_owned(),
            message: format!("not a timestamp column ({})", c.data_type()),
        })?;
    Ok(a.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParquetSink, TableSink};
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use claimline_model::{Cell, Column, ColumnType, TableSchema};
    use std::collections::BTreeSet;

    /// Every file under `dir` (symlinks followed), by path relative to it, with its bytes.
    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).expect("dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let rel = p.strip_prefix(dir).expect("inside").to_owned();
                    out.insert(rel, std::fs::read(&p).expect("file"));
                }
            }
        }
        out
    }

    /// `_claimline_claims`' columns.
    fn claims_schema() -> TableSchema {
        TableSchema::new(
            CLAIMS,
            vec![
                Column::new("_api_version", ColumnType::Text),
                Column::new("_claim_key", ColumnType::Text),
                Column::new("_resource_id", ColumnType::Text),
                Column::new("_last_updated", ColumnType::Timestamp),
                Column::new("_action", ColumnType::Text),
                Column::new("_run_id", ColumnType::Text),
            ],
        )
    }

    /// A claim table `name` of column `first` and the lineage columns.
    fn claim_table(name: &str, first: Column) -> TableSchema {
        TableSchema::new(
            name,
            vec![
                first,
                Column::new("_api_version", ColumnType::Text),
                Column::new("_claim_key", ColumnType::Text),
                Column::new("_resource_id", ColumnType::Text),
                Column::new("_run_id", ColumnType::Text),
                Column::new("_source_file", ColumnType::Text),
                Column::new("_line", ColumnType::Integer),
            ],
        )
    }

    /// Run `run_id`'s claim events and `cclf1`-like rows (`per_version` rows each, from
    /// `e.ndjson`) for claims `claims`: every fifth claim in two versions (the later one
    /// `time` + 1 s), a cancel as the last version of every ninth; and the lines of the
    /// superseded versions, which the claim-history rule drops.
    fn claims_run(
        run_id: &str,
        claims: std::ops::Range<u32>,
        time: i64,
        per_version: u32,
    ) -> (Vec<Vec<Cell>>, Vec<Vec<Cell>>, crate::SourceLines) {
        let (mut events, mut rows, mut superseded) = (Vec::new(), Vec::new(), HashSet::new());
        for i in claims {
            let versions = if i % 5 == 0 { 2 } else { 1 };
            for v in 0..versions {
                let id = format!("eob-{run_id}-{i}-{v}");
                let action = if i % 9 == 0 && v == versions - 1 {
                    "cancel"
                } else {
                    "version"
                };
                let line = i64::from(i * 2 + v);
                events.push(vec![
                    Cell::text("v2"),
                    Cell::text(format!("claim-{i}")),
                    Cell::text(id.as_str()),
                    Cell::Timestamp(time + i64::from(v) * 1_000_000),
                    Cell::text(action),
                    Cell::text(run_id),
                ]);
                for k in 0..per_version {
                    rows.push(vec![
                        Cell::Int(i64::from(i * 10 + k)),
                        Cell::text("v2"),
                        Cell::text(format!("claim-{i}")),
                        Cell::text(id.as_str()),
                        Cell::text(run_id),
                        Cell::text("e.ndjson"),
                        Cell::Int(line),
                    ]);
                }
                if v + 1 < versions {
                    superseded.insert(line);
                }
            }
        }
        (events, rows, [("e.ndjson".to_owned(), superseded)].into())
    }

    /// One run of 3,000 claims (a fifth superseded by a later version in the same run, one in
    /// nine cancelled) into `out`; the current tables refreshed from the rows the sink held, or
    /// from the files. Returns whether the sink held them.
    fn load_and_refresh(out: &Path, from_memory: bool, budget: usize) -> bool {
        load_claims_and_refresh(out, from_memory, budget, 0..3000, 3)
    }

    /// [`load_and_refresh`] of `claims`, `per_version` rows each.
    fn load_claims_and_refresh(
        out: &Path,
        from_memory: bool,
        budget: usize,
        claims: std::ops::Range<u32>,
        per_version: u32,
    ) -> bool {
        let claims_table = claims_schema();
        let cclf1 = claim_table("cclf1", Column::new("CLM_PMT_AMT", ColumnType::Integer));
        let root = out.join("parquet");
        let mut sink = ParquetSink::open(&root, "r1", &[claims_table, cclf1]).expect("open");
        sink.pending_budget = budget;
        let (events, rows, superseded) =
            claims_run("r1", claims, 1_700_000_000_000_000, per_version);
        sink.write(0, events).expect("claims");
        sink.write(1, rows).expect("rows");
        // The earlier version of each claim with two leaves the table, as the loader's
        // claim-history rule drops it (windows of held rows then span batches).
        sink.drop_rows(&[1], &superseded).expect("drop");
        let run = RunRecord::new("r1");
        sink.prepare(&run, false).expect("prepare");
        let held = TableSink::held(&mut sink);
        let was_held = held.is_some();
        Box::new(sink).publish().expect("publish");
        let runs = crate::read_parquet_runs(&root).expect("runs");
        let from = if from_memory { held.as_ref() } else { None };
        refresh_current(out, &["cclf1".to_owned()], &runs, from).expect("refresh");
        was_held
    }

    /// Two runs whose views gave a claim table other columns make no one current table: the
    /// refresh says so with the file named, before it writes a bucket (found by a review: the
    /// bucket writer went on by the first file's column positions).
    #[test]
    fn runs_with_other_columns_stop_the_refresh_with_an_error() {
        let out = tempfile::tempdir().expect("tempdir");
        let root = out.path().join("parquet");
        let narrow = claim_table("cclf1", Column::new("CLM_PMT_AMT", ColumnType::Integer));
        let mut wide = narrow.clone();
        wide.columns
            .insert(1, Column::new("CLM_EXTRA", ColumnType::Text));
        for (run_id, table, time) in [
            ("r1", &narrow, 1_700_000_000_000_000),
            ("r2", &wide, 1_700_000_100_000_000),
        ] {
            let mut sink =
                ParquetSink::open(&root, run_id, &[claims_schema(), table.clone()]).expect("open");
            let (events, mut rows, _) = claims_run(run_id, 0..40, time, 2);
            if table.columns.len() > narrow.columns.len() {
                for row in &mut rows {
                    row.insert(1, Cell::text("x"));
                }
            }
            sink.write(0, events).expect("claims");
            sink.write(1, rows).expect("rows");
            let run = RunRecord::new(run_id);
            sink.prepare(&run, false).expect("prepare");
            Box::new(sink).publish().expect("publish");
        }
        let runs = crate::read_parquet_runs(&root).expect("runs");
        let err = refresh_current(out.path(), &["cclf1".to_owned()], &runs, None)
            .expect_err("two sets of columns");
        let text = err.to_string();
        assert!(
            text.contains("part-0.parquet") && text.contains("load into a new --out"),
            "{text}"
        );
        // Nothing is shown: no version of the table was swapped in.
        assert!(!out.path().join(CURRENT_DIR).join("cclf1").exists());
    }

    /// An output's first run: its rows are current without working out the heads (but for
    /// the versions a cancel names), and the datasets are the ones the heads give, byte for
    /// byte, with superseded versions dropped and with every version kept, with and without
    /// cancels, and with the run's claim events in more than one part.
    #[test]
    fn an_outputs_first_run_is_current_as_its_heads_say() {
        for (all_versions, cancels, parts) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, false),
            (false, true, true),
            (true, true, true),
        ] {
            let claims_n: u32 = if parts { 20_000 } else { 3000 };
            let build = |always: bool| {
                let out = tempfile::tempdir().expect("tempdir");
                let claims = claims_schema();
                let cclf1 = claim_table("cclf1", Column::new("CLM_PMT_AMT", ColumnType::Integer));
                let root = out.path().join("parquet");
                let mut sink = ParquetSink::open(&root, "r1", &[claims, cclf1]).expect("open");
                if parts {
                    // The run's claim events in three parts (of one batch each), its rows in
                    // nine.
                    sink.set_part_rows(crate::parquet_sink::BATCH_ROWS);
                }
                let (mut events, rows, superseded) =
                    claims_run("r1", 0..claims_n, 1_700_000_000_000_000, 3);
                for e in events.iter_mut().filter(|_| !cancels) {
                    if e[4] == Cell::text("cancel") {
                        e[4] = Cell::text("version");
                    }
                }
                sink.write(0, events).expect("claims");
                sink.write(1, rows).expect("rows");
                if !all_versions {
                    sink.drop_rows(&[1], &superseded).expect("drop");
                }
                let mut run = RunRecord::new("r1");
                run.all_versions = all_versions;
                sink.prepare(&run, false).expect("prepare");
                let held = TableSink::held(&mut sink);
                Box::new(sink).publish().expect("publish");
                let runs = crate::read_parquet_runs(&root).expect("runs");
                let claim_parts = parquet_files(&run_dir(&root, CLAIMS, "r1")).expect("parts");
                assert_eq!(claim_parts.len() > 1, parts, "{claim_parts:?}");
                HEADS_ALWAYS.with(|h| h.set((always, false)));
                let report =
                    refresh_current(out.path(), &["cclf1".to_owned()], &runs, held.as_ref())
                        .expect("refresh");
                let skipped = HEADS_ALWAYS.with(|h| h.replace((false, false)).1);
                assert_eq!(
                    skipped, !always,
                    "all versions: {all_versions}, cancels: {cancels}, parts: {parts}"
                );
                let files = files(&out.path().join(CURRENT_DIR));
                (out, report, files)
            };
            let (_a, skipped, fast) = build(false);
            let (_b, worked_out, slow) = build(true);
            assert_eq!(skipped, worked_out);
            assert!(fast.len() > 10, "{:?}", fast.keys());
            assert!(
                fast == slow,
                "all versions: {all_versions}, cancels: {cancels}, parts: {parts}"
            );
            if !cancels {
                let versions = claims_n + if all_versions { claims_n / 5 } else { 0 };
                assert_eq!(skipped.rows["cclf1"], 3 * versions as u64);
            }
        }
    }

    /// A bucket's columns have dictionaries but for the lineage columns whose value changes
    /// on most rows (a claim per row); a line table's repeated keys keep theirs.
    #[test]
    fn buckets_keep_dictionaries_but_for_keys_that_change_on_most_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = Arc::new(Schema::new(vec![
            Field::new("_claim_key", DataType::Utf8, true),
            Field::new("_line", DataType::Int64, true),
            Field::new("CODE", DataType::Utf8, true),
        ]));
        for rows_per_claim in [1, 3] {
            let n = 3000;
            let key: StringArray = (0..n)
                .map(|i| Some(format!("claim-{}", i / rows_per_claim)))
                .collect();
            let line =
                arrow_array::Int64Array::from_iter_values((0..n).map(|i| i / rows_per_claim));
            let code: StringArray = (0..n).map(|i| Some(["A", "B"][i as usize % 2])).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(key), Arc::new(line), Arc::new(code)],
            )
            .expect("batch");
            let path = dir.path().join(format!("{rows_per_claim}.parquet"));
            write_batches(
                &path,
                &FileSchema::new(schema.clone()).expect("schema"),
                std::slice::from_ref(&batch),
            )
            .expect("write");
            // The same rows cut into batches of one row choose the same dictionaries (changes
            // are counted across batches).
            let cut: Vec<RecordBatch> = (0..batch.num_rows()).map(|k| batch.slice(k, 1)).collect();
            let sliced = dir.path().join(format!("{rows_per_claim}-sliced.parquet"));
            write_batches(
                &sliced,
                &FileSchema::new(schema.clone()).expect("schema"),
                &cut,
            )
            .expect("write");
            let dictionaries = |p: &Path| -> Vec<bool> {
                use parquet::file::reader::FileReader as _;
                let r =
                    parquet::file::reader::SerializedFileReader::new(File::open(p).expect("file"))
                        .expect("parquet");
                let g = r.metadata().row_group(0);
                (0..3)
                    .map(|c| g.column(c).dictionary_page_offset().is_some())
                    .collect()
            };
            // A code keeps its dictionary; the key and the line number only where they repeat.
            let repeat = rows_per_claim > 1;
            assert_eq!(
                dictionaries(&path),
                [repeat, repeat, true],
                "{rows_per_claim}"
            );
            assert_eq!(
                dictionaries(&sliced),
                [repeat, repeat, true],
                "{rows_per_claim}"
            );
        }
    }

    #[test]
    fn a_refresh_from_the_held_run_writes_what_reading_the_run_back_writes() {
        let (memory, files_only, encoded) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        assert!(load_and_refresh(memory.path(), true, usize::MAX));
        assert!(load_and_refresh(files_only.path(), false, usize::MAX));
        // Rows encoded before the commit (past the budget) are not held: the refresh reads.
        assert!(!load_and_refresh(encoded.path(), true, 0));
        let current = files(&memory.path().join(CURRENT_DIR));
        assert!(current.len() > 10, "{:?}", current.keys());
        assert!(current == files(&files_only.path().join(CURRENT_DIR)));
        assert!(current == files(&encoded.path().join(CURRENT_DIR)));
        let rows: usize = read_current_parquet(memory.path(), "cclf1", &["_claim_key"])
            .expect("current")
            .len();
        // Each claim's newest version, 3 rows each, but for a claim whose one version is a
        // cancel, and a claim whose head is a version whose rows were dropped (its newer
        // version a cancel of another id).
        let gone = (0..3000)
            .filter(|i| (i % 9 == 0 && i % 5 != 0) || i % 45 == 0)
            .count();
        assert_eq!(rows, 3 * (3000 - gone));
        // The held rows are what a refresh from memory reads, not the file: ten held rows of a
        // part of thousands come back as ten.
        let root = memory.path().join("parquet");
        let part = run_dir(&root, "cclf1", "r1").join("part-0.parquet");
        let (_, all) = read_file(&part).expect("part");
        assert!(all.iter().map(RecordBatch::num_rows).sum::<usize>() > 1000);
        let plain = Arc::new(Schema::new(all[0].schema().fields().clone()));
        let ten =
            RecordBatch::try_new(plain, all[0].slice(0, 10).columns().to_vec()).expect("batch");
        let held = HeldRun {
            run_id: "r1".into(),
            tables: [("cclf1".to_owned(), vec![ten])].into(),
            schemas: Default::default(),
        };
        let (_, got) = source_batches(&root, &part, "r1", "cclf1", Some(&held)).expect("held");
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
        let (_, other) = source_batches(&root, &part, "r2", "cclf1", Some(&held)).expect("read");
        assert!(other.iter().map(RecordBatch::num_rows).sum::<usize>() > 1000);
    }

    /// Run `run_id` of claims `claims` into `out` (every fifth claim in two versions, the
    /// earlier one's rows dropped; a cancel for every ninth; `cclf6` written no rows), its rows
    /// held, committed, and `current/` refreshed: built before the commit (`before`) or after
    /// it. Returns the refresh's report.
    fn commit_run(
        out: &Path,
        run_id: &str,
        claims: std::ops::Range<u32>,
        time: i64,
        before: bool,
    ) -> CurrentReport {
        commit_run_with(out, run_id, claims, time, before, false, 0)
    }

    /// [`commit_run`], with every version kept (`all_versions`: no rows dropped) or not, and
    /// the last version of every `cancels`-th claim a cancel too (none for 0).
    fn commit_run_with(
        out: &Path,
        run_id: &str,
        claims: std::ops::Range<u32>,
        time: i64,
        before: bool,
        all_versions: bool,
        cancels: u32,
    ) -> CurrentReport {
        let schemas = [
            claims_schema(),
            claim_table("cclf1", Column::new("CLM_PMT_AMT", ColumnType::Integer)),
            claim_table("cclf6", Column::new("CLM_LINE_NUM", ColumnType::Text)),
        ];
        let root = out.join("parquet");
        let mut sink = ParquetSink::open(&root, run_id, &schemas).expect("open");
        let (mut events, rows, superseded) = claims_run(run_id, claims, time, 2);
        if cancels > 0 {
            // A claim's last version is its last event (its rows stay: a cancel has none in
            // the CCLF tables, which the refresh's rule leaves out).
            for i in 0..events.len() {
                let last = events.get(i + 1).is_none_or(|next| next[1] != events[i][1]);
                let n = claim_number(&events[i][1..]);
                if last && n.is_multiple_of(cancels) {
                    events[i][4] = Cell::text("cancel");
                }
            }
        }
        sink.write(0, events).expect("claims");
        sink.write(1, rows).expect("rows");
        if !all_versions {
            sink.drop_rows(&[1], &superseded).expect("drop");
        }
        TableSink::stage(&mut sink).expect("stage");
        let held = TableSink::held(&mut sink).expect("held");
        assert!(
            sink.write(1, Vec::new()).is_err(),
            "a write after the rows are final"
        );
        // Each load starts at its own time, as a run id loaded again does.
        let run = RunRecord {
            started: time.to_string(),
            all_versions,
            ..RunRecord::new(run_id)
        };
        let tables = ["cclf1".to_owned(), "cclf6".to_owned()];
        let report = if before {
            let built = build_current_before_commit(out, &tables, &run, &held)
                .expect("build")
                .expect("built before the commit");
            sink.prepare(&run, false).expect("prepare");
            Box::new(sink).publish().expect("publish");
            built.swap().expect("swap")
        } else {
            sink.prepare(&run, false).expect("prepare");
            Box::new(sink).publish().expect("publish");
            let runs = crate::read_parquet_runs(&root).expect("runs");
            refresh_current(out, &tables, &runs, Some(&held)).expect("refresh")
        };
        // The schemas worked out before the parts were written are what their readers report
        // (a table of no current rows gets an empty bucket of that schema).
        for t in ["cclf1", "cclf6", CLAIMS] {
            let part = run_dir(&root, t, run_id).join("part-0.parquet");
            assert_eq!(held.schemas[t], read_file(&part).expect("part").0, "{t}");
        }
        report
    }

    /// The rows of a table read back from big files wait for their bucket files in spill files
    /// (forced here for small ones): the buckets are those built in memory, byte for byte, for a
    /// run read back whole (a row per claim, 40,000 claims: lineage columns that change on most
    /// rows, and columns past the size stored uncompressed, so the files' settings are decided
    /// from the spilled rows too) and for a later run that rewrites buckets from the earlier
    /// ones; no spill file stays.
    #[test]
    fn buckets_from_spilled_rows_are_those_built_in_memory() {
        use std::sync::atomic::Ordering::Relaxed;
        let t0 = 1_700_000_000_000_000;
        let build = |spill: bool| {
            let (whole, two) = (
                tempfile::tempdir().expect("tempdir"),
                tempfile::tempdir().expect("tempdir"),
            );
            FORCE_SPILL.store(spill, Relaxed);
            let before = SPILLS.load(Relaxed);
            load_claims_and_refresh(whole.path(), false, usize::MAX, 0..40_000, 1);
            commit_run(two.path(), "r1", 0..2000, t0, false);
            let report = commit_run(two.path(), "r2", 1500..2600, t0 + 1_000_000_000, false);
            FORCE_SPILL.store(false, Relaxed);
            assert!(!report.full, "{report:?}");
            if spill {
                assert!(SPILLS.load(Relaxed) > before, "nothing spilled");
            }
            for out in [whole.path(), two.path()] {
                let left: Vec<_> = std::fs::read_dir(out.join(VERSIONS_DIR))
                    .expect("versions")
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".spill"))
                    .collect();
                assert!(left.is_empty(), "{left:?}");
            }
            (
                files(&whole.path().join(CURRENT_DIR)),
                files(&two.path().join(CURRENT_DIR)),
            )
        };
        let (memory_whole, memory_two) = build(false);
        let (spilled_whole, spilled_two) = build(true);
        assert!(memory_whole.len() > 10 && memory_two.len() > 10);
        assert!(memory_whole == spilled_whole, "a run read back whole");
        assert!(memory_two == spilled_two, "a later run's buckets");
    }

    /// A refresh whose claim events do not fit its memory rewrites its buckets a few at a
    /// time (a bucket at a time at the least): its files are those of one pass, byte for byte,
    /// on an output's first run, on later runs' partial refreshes (one bringing older versions
    /// of claims, current or cancelled, than the ones current; one cancelling claims whose
    /// current versions earlier runs wrote), and on a full rebuild, with superseded versions
    /// dropped and with every version kept; and with the touched groups' hashes shared by
    /// many groups (a collision only works a head out that need not be). A partial refresh
    /// (which works out the heads of the groups its run touched alone) keeps the rows a full
    /// rebuild keeps.
    #[test]
    fn refreshes_in_passes_write_the_files_of_one_pass() {
        let t0: i64 = 1_700_000_000_000_000;
        let tables = ["cclf1".to_owned(), "cclf6".to_owned()];
        let rows = |out: &Path| {
            let mut rows =
                read_current_parquet(out, "cclf1", &["_claim_key", "_resource_id", "_run_id"])
                    .expect("rows");
            rows.sort_by_key(|r| format!("{r:?}"));
            rows
        };
        let passes = || PASSES_IN_TESTS.with(std::cell::Cell::get);
        for all_versions in [false, true] {
            let build = |memory: Option<u64>, coarse: bool| {
                REFRESH_MEMORY_IN_TESTS.with(|m| m.set(memory));
                COARSE_GROUPS.with(|c| c.set(coarse));
                PASSES_IN_TESTS.with(|p| p.set(0));
                let out = tempfile::tempdir().expect("tempdir");
                let mut seen = Vec::new();
                for (run_id, claims, time, cancels) in [
                    ("r1", 0..2000, t0, 0),
                    ("r2", 1500..2600, t0 + 1_000_000_000, 0),
                    ("r3", 2500..3000, t0 + 2_000_000_000, 0),
                    ("r4", 1400..1600, t0 - 1_000_000_000, 0),
                    ("r5", 0..300, t0 + 3_000_000_000, 4),
                ] {
                    let before = passes();
                    let report = commit_run_with(
                        out.path(),
                        run_id,
                        claims,
                        time,
                        false,
                        all_versions,
                        cancels,
                    );
                    let files = files(&out.path().join(CURRENT_DIR));
                    seen.push((report, files, passes() - before));
                }
                let partial = rows(out.path());
                // The same runs rebuilt whole.
                std::fs::remove_file(out.path().join(VERSIONS_DIR).join(STATE)).expect("state");
                let runs = crate::read_parquet_runs(&out.path().join("parquet")).expect("runs");
                let before = passes();
                let report = refresh_current(out.path(), &tables, &runs, None).expect("refresh");
                assert!(report.full);
                assert_eq!(partial, rows(out.path()), "all versions: {all_versions}");
                seen.push((
                    report,
                    files(&out.path().join(CURRENT_DIR)),
                    passes() - before,
                ));
                REFRESH_MEMORY_IN_TESTS.with(|m| m.set(None));
                COARSE_GROUPS.with(|c| c.set(false));
                seen
            };
            let one = build(None, false);
            assert!(one.iter().all(|(_, _, p)| *p == 1), "one pass a refresh");
            assert!(
                one.iter()
                    .all(|(r, f, _)| r.buckets_rewritten > 0 && f.len() > 10)
            );
            assert!(!one[1].0.full && !one[4].0.full);
            // A later run's cancels of earlier runs' current versions leave fewer rows (with
            // every version kept, a cancel is a version of its own, and the run's new ones stay).
            let (r4, r5) = (one[3].0.rows["cclf1"], one[4].0.rows["cclf1"]);
            assert!(if all_versions { r5 > r4 } else { r5 < r4 }, "{r4} {r5}");
            // A bucket at a time; a few buckets at a time; hashes shared.
            for (memory, coarse) in [(Some(1), false), (Some(400_000), false), (None, true)] {
                let some = build(memory, coarse);
                let counts: Vec<usize> = some.iter().map(|(_, _, p)| *p).collect();
                match memory {
                    Some(1) => assert!(
                        some.iter().all(|(r, _, p)| *p == r.buckets_rewritten),
                        "{counts:?}"
                    ),
                    Some(_) => assert!(counts.iter().any(|&p| 1 < p && p < 16), "{counts:?}"),
                    None => assert!(counts.iter().all(|&p| p == 1), "{counts:?}"),
                }
                for (i, ((a, fa, _), (b, fb, _))) in one.iter().zip(&some).enumerate() {
                    assert_eq!(a, b, "refresh {i}, all versions: {all_versions}");
                    assert!(
                        fa == fb,
                        "refresh {i}, all versions: {all_versions}, {memory:?}, {coarse}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_run_after_a_failed_refresh_of_a_run_id_loaded_again_rebuilds_every_bucket() {
        let out = tempfile::tempdir().expect("tempdir");
        let out = out.path();
        let t0 = 1_700_000_000_000_000;
        commit_run(out, "r1", 0..2000, t0, false);
        // r1 loaded again with other claims, and its refresh failed before any swap: `current/`
        // and its state stay those of r1's first load.
        let aside = tempfile::tempdir().expect("tempdir");
        let keep = |from: &Path, to: &Path| {
            for d in [CURRENT_DIR, VERSIONS_DIR] {
                let _ = std::fs::remove_dir_all(to.join(d));
                std::fs::rename(from.join(d), to.join(d)).expect("move");
            }
        };
        keep(out, aside.path());
        commit_run(out, "r1", 2200..2400, t0 + 1_000_000_000, false);
        keep(aside.path(), out);
        // The next run finds the state of r1's first load, not of the r1 in the history.
        let report = commit_run(out, "r3", 3000..3100, t0 + 2_000_000_000, false);
        assert!(report.full, "{report:?}");
        let rows = read_current_parquet(out, "cclf1", &["_claim_key"]).expect("rows");
        let claims: BTreeSet<u32> = rows.iter().map(|r| claim_number(r)).collect();
        assert_eq!(
            claims.first(),
            Some(&2200),
            "the first load's claims are gone"
        );
        assert_eq!(claims.last(), Some(&3099));
    }

    /// The number of a claim key of [`claims_run`] (`claim-<n>`), as a current row's first cell.
    fn claim_number(row: &[crate::Cell]) -> u32 {
        match &row[0] {
            crate::Cell::Text(t) => t.trim_start_matches("claim-").parse().expect("n"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_folders_are_told_by_table_and_run() {
        for name in ["cclf1-r1", "cclf1-r1~1"] {
            assert!(is_version_of(name, "cclf1", "r1"), "{name}");
        }
        for name in [
            "cclf1-r10",
            "cclf1-r1~",
            "cclf1-r1~x",
            "cclf1-r1~2",
            "cclf10-r1",
            "cclf1r1",
            "cclf1-r",
        ] {
            assert!(!is_version_of(name, "cclf1", "r1"), "{name}");
        }
    }

    #[test]
    fn a_refresh_built_before_the_commit_writes_what_one_after_it_writes() {
        let (after, before) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let state = |out: &Path| {
            (
                files(&out.join(CURRENT_DIR)),
                files(&out.join(VERSIONS_DIR)),
            )
        };
        let t0 = 1_700_000_000_000_000;
        // A first run (every bucket built), then one that supersedes some claims and adds others
        // (only the buckets it touched rewritten), then the first run id loaded again with other
        // claims: its earlier partition goes at the commit, so its files are not read, and every
        // bucket is rebuilt (the current datasets held its earlier rows in any of them).
        for (run, claims, time, full) in [
            ("r1", 0..2000, t0, true),
            ("r2", 1500..2300, t0 + 1_000_000_000, false),
            ("r1", 2200..2400, t0 + 2_000_000_000, true),
        ] {
            let a = commit_run(after.path(), run, claims.clone(), time, false);
            let b = commit_run(before.path(), run, claims, time, true);
            assert_eq!(a, b);
            assert_eq!(a.full, full);
            assert!(a.rows["cclf1"] > 1000 && a.rows["cclf6"] == 0, "{a:?}");
            assert!(state(after.path()) == state(before.path()), "{run}");
        }
        let rows = read_current_parquet(before.path(), "cclf1", &["_claim_key"]).expect("rows");
        assert!(rows.len() > 1000, "{}", rows.len());
        // The claims only the earlier load of r1 had (0..1500) left the history with its
        // partition, and `current/` with it; r2's and r1's new ones are there.
        let claims: BTreeSet<u32> = rows.iter().map(|r| claim_number(r)).collect();
        assert_eq!(claims.first(), Some(&1500), "{:?}", claims.first());
        assert_eq!(claims.last(), Some(&2399));

        // A run id loaded again while `current/` shows its version is refreshed after its
        // commit, beside that version (under another name).
        let root = before.path().join("parquet");
        let held = |run: &str| HeldRun {
            run_id: run.into(),
            ..Default::default()
        };
        let runs = crate::read_parquet_runs(&root).expect("runs");
        assert_eq!(runs.last().map(|r| r.run_id.as_str()), Some("r1"));
        let (tables, r1) = (["cclf1".to_owned()], RunRecord::new("r1"));
        let again = build_current_before_commit(before.path(), &tables, &r1, &held("r1"));
        assert!(again.expect("build").is_none());
        // Rows held for another run are not built from either.
        let other = build_current_before_commit(before.path(), &tables, &r1, &held("r2"));
        assert!(other.expect("build").is_none());

        // A build whose run is not committed goes, and `current/` stays as it was.
        let shown = state(before.path());
        let r3 = RunRecord::new("r3");
        let built = build_current_before_commit(before.path(), &tables, &r3, &held("r3"))
            .expect("build")
            .expect("built");
        assert!(before.path().join(VERSIONS_DIR).join("cclf1-r3").is_dir());
        built.discard();
        assert!(state(before.path()) == shown);
        // An output's first load whose commit fails leaves no folder of `current/` behind.
        let first = tempfile::tempdir().expect("tempdir");
        let built = build_current_before_commit(first.path(), &tables, &r1, &held("r1"))
            .expect("build")
            .expect("built");
        assert!(first.path().join(CURRENT_DIR).is_dir());
        built.discard();
        let left: Vec<_> = std::fs::read_dir(first.path())
            .expect("ls")
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn buckets_cut_by_one_take_are_the_buckets_sixteen_filters_cut() {
        // 64 claim rows over many buckets, two runs. Each claim version has three adjacent rows
        // (the last version one), a null `v` in one of them; row 7 has no key. Eight of the
        // fourteen claims have two versions, and the current version of each claim is its last
        // one (run R2's where it has one). Rows 39 and 40 name one resource id under two runs.
        let n = 64;
        let text = |f: &dyn Fn(usize) -> Option<String>| {
            Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>())) as Arc<dyn Array>
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("_api_version", DataType::Utf8, true),
            Field::new("_claim_key", DataType::Utf8, true),
            Field::new("_resource_id", DataType::Utf8, true),
            Field::new("_run_id", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                text(&|_| Some("v2".into())),
                text(&|i| (i != 7).then(|| format!("k{}", (i / 3) % 14))),
                text(&|i| Some(format!("r{}", i / 3))),
                text(&|i| Some(if i < 40 { "R1" } else { "R2" }.into())),
                Arc::new(Int64Array::from(
                    (0..n)
                        .map(|i| (i % 3 != 0).then_some(i as i64))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch");
        let (key, id, run) = (
            strings(&b, "_claim_key", "t").expect("key"),
            strings(&b, "_resource_id", "t").expect("id"),
            strings(&b, "_run_id", "t").expect("run"),
        );
        let mut heads: Heads<'_> = Default::default();
        for i in 0..n {
            if let (Some(k), Some(rid), Some(r)) = (key[i], id[i], run[i]) {
                heads.insert((Some("v2"), k, None), (None, r, rid));
            }
        }
        let current = Current {
            heads,
            all_versions: false,
            only_run: None,
            cancelled: Default::default(),
            touched: None,
        };
        let rebuild: BTreeSet<u64> = (0..BUCKETS).filter(|b| b % 3 != 1).collect();
        for full in [true, false] {
            let pass: [bool; BUCKETS as usize] =
                std::array::from_fn(|bk| full || rebuild.contains(&(bk as u64)));
            let cut = current_rows(&b, Path::new("t"), "t", &pass, &current).expect("cut");
            let mut want = Vec::new();
            for bk in 0..BUCKETS {
                let mask: Vec<bool> = (0..n)
                    .map(|i| {
                        key[i].is_some_and(|k| {
                            bucket(Some("v2"), k) == bk
                                && (full || rebuild.contains(&bk))
                                && current.holds(
                                    Some("v2"),
                                    k,
                                    id[i].unwrap_or(""),
                                    run[i].unwrap_or(""),
                                )
                        })
                    })
                    .collect();
                if mask.iter().any(|&m| m) {
                    let kept = arrow_select::filter::filter_record_batch(
                        &b,
                        &arrow_array::BooleanArray::from(mask),
                    )
                    .expect("filter");
                    want.push((bk, kept));
                }
            }
            assert!(want.len() > 4, "several buckets");
            assert_eq!(cut, want);
        }
    }

    #[test]
    fn a_bucket_sliced_from_gathered_rows_measures_as_a_filtered_one() {
        // The small-chunk rule reads `get_slice_memory_size`: rows 1 and 3 of a column, sliced
        // out of a gather of rows 2, 1, 3, measure as the same rows filtered out of it, with a
        // null in the gather (whose mask the slice shares) and without.
        let with_null = StringArray::from(vec![Some("a"), Some("bb"), None, Some("dddd")]);
        let no_null = StringArray::from(vec!["a", "bb", "ccc", "dddd"]);
        for column in [Arc::new(with_null) as Arc<dyn Array>, Arc::new(no_null)] {
            let mask = arrow_array::BooleanArray::from(vec![false, true, false, true]);
            let filtered = arrow_select::filter::filter(&column, &mask).expect("filter");
            let rows = arrow_array::UInt32Array::from(vec![2, 1, 3]);
            let gathered = arrow_select::take::take(&column, &rows, None).expect("take");
            let sliced = gathered.slice(1, 2);
            assert_eq!(filtered.as_ref(), sliced.as_ref());
            let size = |a: &dyn Array| a.to_data().get_slice_memory_size().expect("size");
            // Offsets of two rows (3 × 4 bytes) and their 6 bytes; no null mask.
            assert_eq!(size(filtered.as_ref()), 18);
            assert_eq!(size(sliced.as_ref()), 18);
        }
    }

    #[test]
    fn slice_size_is_what_arrow_reports_for_every_column_type_of_the_sink() {
        use arrow_array::{BooleanArray, Date32Array, Decimal128Array};
        let columns: Vec<Arc<dyn Array>> = vec![
            Arc::new(StringArray::from(vec![
                Some("a"),
                None,
                Some("ccc"),
                Some(""),
            ])),
            Arc::new(StringArray::from(vec!["a", "bb", "ccc", "dddd"])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
            ])),
            Arc::new(Date32Array::from(vec![Some(1), Some(2), None, None])),
            Arc::new(
                Decimal128Array::from(vec![Some(100), None, Some(-5), Some(0)])
                    .with_precision_and_scale(11, 2)
                    .expect("decimal"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(5), Some(6), Some(7), None])
                    .with_timezone("UTC"),
            ),
        ];
        for c in &columns {
            // Whole, and every slice (with and without its nulls, at any offset).
            for at in 0..=c.len() {
                for len in 0..=c.len() - at {
                    let s = c.slice(at, len);
                    assert_eq!(
                        slice_size(s.as_ref()),
                        s.to_data().get_slice_memory_size().expect("size"),
                        "{:?} [{at}, {len}]",
                        c.data_type()
                    );
                }
            }
        }
    }

    #[test]
    fn small_column_chunks_are_written_uncompressed_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-0.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("big", DataType::Int64, false),
            Field::new("small", DataType::Utf8, true),
        ]));
        let rows = 20_000;
        let big = Int64Array::from_iter_values(0..rows);
        let small: StringArray = (0..rows).map(|i| (i == 7).then_some("only one")).collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(big), Arc::new(small)])
            .expect("batch");
        assert_eq!(
            write_batches(
                &path,
                &FileSchema::new(schema).expect("schema"),
                std::slice::from_ref(&batch),
            )
            .expect("write")
            .0,
            20_000
        );
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("file"))
            .expect("read");
        let codecs: Vec<Compression> = builder
            .metadata()
            .row_group(0)
            .columns()
            .iter()
            .map(|c| c.compression())
            .collect();
        assert!(matches!(codecs[0], Compression::ZSTD(_)), "{codecs:?}");
        assert_eq!(codecs[1], Compression::UNCOMPRESSED);
        let back: Vec<RecordBatch> = builder
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect();
        let back = arrow_select::concat::concat_batches(&batch.schema(), &back).expect("concat");
        assert_eq!(back, batch);
    }
}
