//! The link stage: from a parsed resource and its views to rows of warehouse tables.
//!
//! A single ViewDefinition sees one resource. The link stage does what it cannot:
//!
//! - **Tables across API versions.** Several views with the same `name` (one per API version,
//!   e.g. `mappings/cclf/v2/cclf1.json` and `…/v3/cclf1.json`) feed one table; they must declare
//!   the same columns in the same order ([`Error::ColumnsDiffer`] otherwise). A view marked for a
//!   version runs only on resources of that version; an unmarked view runs on all.
//! - **Lineage columns** after the declared ones: `_resource_id`, `_source_file`, `_line`,
//!   `_api_version`, `_last_updated`, `_run_id`; claim tables (views of `ExplanationOfBenefit`)
//!   add `_claim_key` (v1/v2: the claim-group identifier; v3: the EOB id) and `_status`.
//! - **Keys for replacement**: claim tables are replaced per `(_api_version, _claim_key)` across
//!   all claim tables, other tables per `(_api_version, _resource_id)`.
//! - **Typed cells** for the sinks: exact decimals at the column's scale, dates, UTC timestamps,
//!   collections as JSON text. A value that does not fit is NULL and a [`RowIssue`].
//! - **Beneficiary MBIs.** A column tagged `claimline/link` = `bene-mbi` ([`BENE_MBI_LINK`])
//!   holds the claim's beneficiary reference; the plan replaces it with the current MBI from a
//!   [`BeneIndex`] built from Patients ([`patient_mbi`]), or NULL with
//!   [`ResourceOutput::unresolved_mbi`] set.
//! - **v3 claims CCLF has no place for.** Partially adjudicated and prior-authorization EOBs
//!   ([`excluded`]) produce no rows in `cclf…` tables unless [`Plan::set_include_partial`].
//! - **Claim history** ([`RunGroup::of`], [`decide`]): one current version per v1/v2 claim
//!   group, stale cancels ignored, `--all-versions` ([`VersionMode::All`]) keeping all; the rule
//!   within a run, a group at a time in [`group_order`] (in memory, [`RunVersions`]), and
//!   against what earlier runs left (`_claimline_claims`).
//! - **Beneficiary tables** ([`Plan::add_link_tables`]): `bene_xref` (every MBI of every Patient,
//!   [`patient_mbis`]), `cclf9` from it, and `cclf8` joined by beneficiary ([`Cclf8Builder`])
//!   from the rows of two views, `cclf8_patient` and `cclf8_coverage` ([`Cclf8Input`]);
//!   `_claimline_counts` ([`claim_summary`]) for reconciliation.
//!
//! ```
//! use claimline_link::{Plan, PlannedView, Scratch};
//! use claimline_ndjson::{ScanOptions, discover, scan_collect};
//! use claimline_view::ViewDefinition;
//!
//! let view = ViewDefinition::from_json(r#"{"resourceType": "ViewDefinition", "name": "patient",
//!     "resource": "Patient", "select": [{"column": [
//!       {"name": "birth_date", "path": "birthDate", "type": "date"}]}]}"#, "patient.json")?;
//! let plan = Plan::new(vec![PlannedView { view, api_version: None }])?;
//! assert_eq!(plan.tables()[0].columns[1].name, "_resource_id");
//!
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real/stu3");
//! let files = discover(&[dir.join("Patient.ndjson")]).expect("sample data");
//! let (out, _) = scan_collect(&files, &ScanOptions::default(), |r| {
//!     let mut scratch = Scratch::default();
//!     plan.evaluate(r, "run-1", &mut scratch)
//! }).expect("scan");
//! assert_eq!(out.iter().map(|o| o.rows.len()).sum::<usize>(), 101);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

mod cclf8;
#[doc(hidden)]
pub mod fuzzing;
mod history;
mod xref;

pub use cclf8::{
    BENE_ID_LINK, BenePart, CCLF8_COVERAGE, CCLF8_PATIENT, CCLF8_TABLE, Cclf8Builder, Cclf8Input,
    FIELD_TAG, Fields, POSITION_TAG, PartFields, bene_age_day,
};

pub use history::{
    Action, ClaimEvent, Decision, GroupKey, MAX_EVENTS, RunGroup, RunVersions, StoredHead,
    VersionMode, claim_event, decide, group_order, sort_by_group,
};
pub use xref::{
    BENE_XREF, CLAIMS_TABLE, COUNTS_TABLE, ClaimSummary, MbiRecord, PAYMENT_SUM_LIMIT,
    bene_xref_schema, cclf9_schema, claim_summary, claims_row, claims_schema, counts_schema,
    patient_mbis,
};

use claimline_model::{Cell, Column, ColumnType, TableSchema};
use claimline_ndjson::{ApiVersion, Cursor, Need, Needs, Pruning, Resource};
use claimline_view::{FilterMemo, Filters, Rows, ViewDefinition};

/// What can stop planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A CCLF8 input view (`cclf8_patient`, `cclf8_coverage`) does not fit what the link stage
    /// joins.
    #[error("view {file} gives CCLF8 its {view} rows but {reason}")]
    Cclf8Input {
        /// The view's file.
        file: String,
        /// The view's name.
        view: String,
        /// What is wrong.
        reason: String,
    },
    /// Two views feeding one table declare different columns.
    #[error(
        "views {first} and {second} both build table {table} but declare different columns (names, types and order must match)"
    )]
    ColumnsDiffer {
        /// The table.
        table: String,
        /// One view's file.
        first: String,
        /// The other view's file.
        second: String,
    },
    /// A view has no `name`, so it has no table.
    #[error("view {file} has no `name`; the name is its table's name")]
    Unnamed {
        /// The view's file.
        file: String,
    },
    /// Two views feeding one table read different resource types.
    #[error(
        "views {first} and {second} both build table {table} but read different resource types"
    )]
    ResourcesDiffer {
        /// The table.
        table: String,
        /// One view's file.
        first: String,
        /// The other view's file.
        second: String,
    },
}

/// A view and the API version it is written for (`None`: every version).
pub struct PlannedView {
    /// The view.
    pub view: ViewDefinition,
    /// The API version it applies to.
    pub api_version: Option<ApiVersion>,
}

/// One row of one table.
pub struct TableRow {
    /// Index into [`Plan::tables`].
    pub table: usize,
    /// Cells in the table's column order.
    pub cells: Vec<Cell>,
}

/// A value that did not fit its column, or a view that failed on a resource. Never holds the
/// value itself (PHI).
#[derive(Debug, Clone)]
pub struct RowIssue {
    /// Index into [`Plan::tables`].
    pub table: usize,
    /// Column (empty when the whole view failed on the resource).
    pub column: String,
    /// The resource's id.
    pub resource_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// Everything one resource produced.
#[derive(Default)]
pub struct ResourceOutput {
    /// Rows, in view order then row order.
    pub rows: Vec<TableRow>,
    /// Values that became NULL, and views that failed.
    pub issues: Vec<RowIssue>,
    /// The claim's beneficiary had no MBI in the [`BeneIndex`] (a `bene-mbi` column is NULL).
    pub unresolved_mbi: bool,
    /// Why a v3 EOB was left out of the CCLF tables, if it was.
    pub excluded: Option<Excluded>,
    /// What the EOB adds to `_claimline_counts`, when it produced claim rows.
    pub summary: Option<ClaimSummary>,
    /// What a Patient or Coverage gives to CCLF8 (joined by beneficiary in a [`Cclf8Builder`]).
    pub bene_part: Option<BenePart>,
}

impl ResourceOutput {
    /// Adds `by` to the line numbers (`_line`) of the rows and of a CCLF8 Patient's lineage:
    /// for a scan with [`lines_in_batch`](claimline_ndjson::ScanOptions::lines_in_batch), `by`
    /// is the batch's [`line_offset`](claimline_ndjson::Batch::line_offset). `line_columns`
    /// comes from [`Plan::line_columns`].
    pub fn shift_lines(&mut self, line_columns: &[Option<usize>], by: u64) {
        if by == 0 {
            return;
        }
        let shift = |cell: &mut Cell| {
            if let Cell::Int(line) = cell {
                *line += by as i64;
            }
        };
        for row in &mut self.rows {
            if let Some(Some(i)) = line_columns.get(row.table)
                && let Some(cell) = row.cells.get_mut(*i)
            {
                shift(cell);
            }
        }
        if let Some(BenePart::Patient { lineage, .. }) = &mut self.bene_part
            && let Some(cell) = lineage.get_mut(LINEAGE_LINE)
        {
            shift(cell);
        }
    }
}

/// The position of `_line` in the lineage cells.
const LINEAGE_LINE: usize = 2;
/// The position of `_last_updated` in [`lineage`]'s columns.
pub(crate) const LINEAGE_LAST_UPDATED: usize = 4;

/// What [`Plan::evaluate`] read of a claim for its rows, for its [`ClaimEvent`] (`None`: not
/// read, as when no claim view gave rows).
#[derive(Default)]
struct Read {
    /// `_claim_key` and `_status` ([`claim_columns`]).
    claim: Option<[Cell; 2]>,
    /// `meta.lastUpdated` as an instant (`Some(None)`: missing or not an instant).
    last_updated: Option<Option<i64>>,
}

/// v3 EOBs that CCLF has no place for, left out of the `cclf*` tables unless
/// [`Plan::set_include_partial`] asks for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// `outcome` = `partial`: a Shared System claim not yet finally adjudicated.
    Partial,
    /// `use` = `preauthorization`: a prior-authorization EOB.
    PriorAuth,
}

/// The tag value (`claimline/link`) of a column that holds the beneficiary reference
/// (`patient.getReferenceKey(Patient)`) and that the link stage fills with the current MBI.
pub const BENE_MBI_LINK: &str = "bene-mbi";
/// The tag name that marks link-stage columns.
pub const LINK_TAG: &str = "claimline/link";

/// Beneficiary id (the Patient's resource id) to current MBI, per API version (v1/v2 ids are
/// CCW `bene_id`s, v3 ids IDR `BENE_SK`s: different spaces), built from the Patient resources of
/// a load (see [`patient_mbi`]).
#[derive(Debug, Default, Clone)]
pub struct BeneIndex {
    mbi: HashMap<Option<ApiVersion>, HashMap<String, String>>,
}

impl BeneIndex {
    /// Records one beneficiary's current MBI; a later Patient with the same id replaces it.
    pub fn insert(&mut self, api_version: Option<ApiVersion>, bene_id: String, mbi: String) {
        self.mbi
            .entry(api_version)
            .or_default()
            .insert(bene_id, mbi);
    }

    /// Records a beneficiary's MBI unless one is already known (an earlier run's `bene_xref`
    /// fills in after the run's own Patients).
    pub fn insert_if_absent(
        &mut self,
        api_version: Option<ApiVersion>,
        bene_id: String,
        mbi: String,
    ) {
        self.mbi
            .entry(api_version)
            .or_default()
            .entry(bene_id)
            .or_insert(mbi);
    }

    /// The current MBI of a beneficiary of an API version.
    pub fn get(&self, api_version: Option<ApiVersion>, bene_id: &str) -> Option<&str> {
        self.mbi
            .get(&api_version)
            .and_then(|m| m.get(bene_id))
            .map(String::as_str)
    }

    /// Beneficiaries with an MBI.
    pub fn len(&self) -> usize {
        self.mbi.values().map(HashMap::len).sum()
    }

    /// True when no beneficiary has an MBI.
    pub fn is_empty(&self) -> bool {
        self.mbi.values().all(HashMap::is_empty)
    }
}

const US_MBI: &str = "http://hl7.org/fhir/sid/us-mbi";
const CURRENCY: &str = "https://bluebutton.cms.gov/resources/codesystem/identifier-currency";

/// The beneficiary a resource belongs to, as the CCLF views join them: a Patient's `id`, and
/// the Patient that a Coverage's `beneficiary` or an EOB's `patient` references (the key
/// `getReferenceKey(Patient)` takes from it, the first there is); `None` for any other
/// resource. A cluster engine partitions lines by it (`claimline.spark`), so that every
/// resource of a beneficiary meets its Patient in one task: read by this parse, a line keys as
/// the engine reads it (duplicate members, nesting, byte-order marks alike).
pub fn beneficiary_key<'a>(r: &Resource<'a>) -> Option<&'a str> {
    let member = match r.resource_type {
        "Patient" => return r.id,
        "Coverage" => "beneficiary",
        "ExplanationOfBenefit" => "patient",
        _ => return None,
    };
    let value = r.root.get(member)?;
    std::iter::once(value)
        .chain(value.items())
        .filter_map(|v| v.get("reference")?.as_str())
        .find_map(|reference| claimline_view::reference_key(reference, Some("Patient")))
}

/// A Patient's API version, id and current MBI, or `None` when it is not a Patient or carries no
/// MBI.
///
/// - v1 (STU3): the `us-mbi` identifier whose `extension` `identifier-currency` is `current`;
/// - v2 (R4): the same flag on `identifier.type.coding.extension`;
/// - v3: no currency flag; the `us-mbi` identifier without `period.end`, else the one whose
///   period ends last; among several open ones, the latest `period.start`.
///
/// An identifier flagged `historic` is never chosen.
pub fn patient_mbi(r: &Resource<'_>) -> Option<(Option<ApiVersion>, String, String)> {
    if r.resource_type != "Patient" {
        return None;
    }
    let id = r.id?;
    // (flagged current, open-ended, end, start, value): the greatest wins.
    let mut best: Option<(bool, bool, String, String, &str)> = None;
    for ident in r.root.get("identifier").into_iter().flat_map(|i| i.items()) {
        if str_at(ident, "system") != Some(US_MBI) {
            continue;
        }
        let Some(value) = str_at(ident, "value") else {
            continue;
        };
        let flags: Vec<&str> = ident
            .get("extension")
            .into_iter()
            .flat_map(|e| e.items())
            .chain(
                ident
                    .get("type")
                    .and_then(|t| t.get("coding"))
                    .into_iter()
                    .flat_map(|c| c.items())
                    .flat_map(|c| c.get("extension").into_iter().flat_map(|e| e.items())),
            )
            .filter(|e| str_at(*e, "url") == Some(CURRENCY))
            .filter_map(|e| e.get("valueCoding").and_then(|v| str_at(v, "code")))
            .collect();
        if flags.contains(&"historic") {
            continue;
        }
        let period = ident.get("period");
        let end = period.and_then(|p| str_at(p, "end"));
        let start = period.and_then(|p| str_at(p, "start")).unwrap_or("");
        let key = (
            flags.contains(&"current"),
            end.is_none(),
            end.unwrap_or("").to_owned(),
            start.to_owned(),
            value,
        );
        if best.as_ref().is_none_or(|b| key > *b) {
            best = Some(key);
        }
    }
    best.map(|b| (r.api_version, id.to_owned(), b.4.to_owned()))
}

fn str_at<'a>(c: Cursor<'a>, key: &str) -> Option<&'a str> {
    c.get(key).and_then(|v| v.as_str())
}

/// Why a v3 EOB has no place in CCLF (see [`Excluded`]); `None` for every other resource.
pub fn excluded(r: &Resource<'_>) -> Option<Excluded> {
    if r.resource_type != "ExplanationOfBenefit" || r.api_version != Some(ApiVersion::V3) {
        return None;
    }
    if str_at(r.root, "use") == Some("preauthorization") {
        return Some(Excluded::PriorAuth);
    }
    if str_at(r.root, "outcome") == Some("partial") {
        return Some(Excluded::Partial);
    }
    None
}

/// Per-thread scratch space, reused across resources.
#[derive(Default)]
pub struct Scratch {
    rows: Vec<Rows>,
    /// The current resource's answers to the views' `where` paths.
    filters: FilterMemo,
    /// `_source_file` of each input file (by its index, with its path: a scratch reused for
    /// other files makes the cell again), written out once per file rather than once per
    /// resource.
    source_files: Vec<Option<(std::path::PathBuf, Cell)>>,
}

/// The `_source_file` cell of `r`'s file, from [`Scratch::source_files`].
fn source_file(files: &mut Vec<Option<(std::path::PathBuf, Cell)>>, r: &Resource<'_>) -> Cell {
    let i = r.file_index;
    if files.len() <= i {
        files.resize(i + 1, None);
    }
    match &files[i] {
        Some((path, cell)) if *path == r.file.path => cell.clone(),
        _ => {
            let cell = source_cell(r.file.path.display().to_string());
            files[i] = Some((r.file.path.clone(), cell.clone()));
            cell
        }
    }
}

/// Most source paths [`source_name`] keeps: past them, a file's cell is a text of its own
/// (copied row by row, as before), so that a process that loads many exports (the Python
/// package, a service) keeps at most 4,096 paths (about a megabyte at typical lengths).
const SOURCE_NAMES_KEPT: usize = 4096;

/// The `_source_file` cell of the file at `path`: a cell of static text, copied without an
/// allocation, where a path is longer than the 24 bytes a cell holds inline and every row of
/// the file takes a copy (a load of every CCLF table makes some 94,000 rows with lineage of a
/// 582 MB export).
fn source_cell(path: String) -> Cell {
    match source_name(path) {
        Ok(name) => Cell::static_text(name),
        Err(path) => Cell::text(path),
    }
}

/// `path` kept for the life of the process, once per path, while fewer than
/// [`SOURCE_NAMES_KEPT`] are kept; `Err(path)` past them.
fn source_name(path: String) -> Result<&'static str, String> {
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(name) = names.get(path.as_str()) {
        return Ok(name);
    }
    if names.len() >= SOURCE_NAMES_KEPT {
        return Err(path);
    }
    let name: &'static str = Box::leak(path.into_boxed_str());
    names.insert(name);
    Ok(name)
}

struct PlanView {
    view: ViewDefinition,
    api_version: Option<ApiVersion>,
    table: usize,
    claim: bool,
    /// A CCLF table (`cclf…`): v3 partial and prior-authorization EOBs stay out.
    cclf: bool,
    /// The column the link stage fills with the beneficiary's MBI.
    mbi_column: Option<usize>,
    /// Conversion per declared column.
    columns: Vec<ColumnType>,
    /// A CCLF8 input view: its rows go to the [`Cclf8Builder`], not to a table of their own.
    input: Option<Cclf8Input>,
    /// The declared column names (for CCLF8 inputs), shared by every row's [`PartFields`].
    names: Arc<[Arc<str>]>,
    /// The column holding the beneficiary id (CCLF8 inputs).
    bene_id: usize,
}

/// Tables and the views that feed them; see the crate docs.
pub struct Plan {
    tables: Vec<TableSchema>,
    views: Vec<PlanView>,
    /// Views that keep the same resources: one evaluation of their `where` per resource.
    filters: Filters,
    by_type: BTreeMap<String, Vec<usize>>,
    bene: BeneIndex,
    include_partial: bool,
    /// `bene_xref` and `cclf9` table indexes, when Patients feed them.
    xref: Option<(usize, usize)>,
    /// The `cclf8` table index, when Patients and Coverage feed it.
    cclf8: Option<usize>,
}

const CLAIM_GROUP: &str = "https://bluebutton.cms.gov/resources/identifier/claim-group";

fn sink_type(c: &claimline_view::Column) -> ColumnType {
    use claimline_view::ColumnType as V;
    if c.collection {
        return ColumnType::Json;
    }
    match c.ty {
        V::String => match c.fhir_type.as_deref() {
            Some("code" | "id") => ColumnType::Code,
            _ => ColumnType::Text,
        },
        V::Boolean => ColumnType::Boolean,
        V::Integer => ColumnType::Integer,
        V::Decimal { precision, scale } => ColumnType::Decimal {
            precision,
            scale: scale as i8,
        },
        V::Date => ColumnType::Date,
        V::DateTime => ColumnType::Timestamp,
        V::Time => ColumnType::Text,
    }
}

/// A view's columns as a table holds them.
fn declared_columns(view: &ViewDefinition) -> Vec<Column> {
    view.schema()
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            ty: sink_type(c),
            description: c.description.clone(),
        })
        .collect()
}

fn lineage(claim: bool) -> Vec<Column> {
    let mut cols = vec![
        Column::new("_resource_id", ColumnType::Text).describe("The resource's id"),
        Column::new("_source_file", ColumnType::Text)
            .describe("The NDJSON file the resource came from"),
        Column::new("_line", ColumnType::Integer).describe("1-based line number in that file"),
        Column::new("_api_version", ColumnType::Code).describe("BCDA API version: v1, v2 or v3"),
        Column::new("_last_updated", ColumnType::Timestamp)
            .describe("meta.lastUpdated of the resource"),
        Column::new("_run_id", ColumnType::Code).describe("The claimline run that loaded the row"),
    ];
    if claim {
        cols.push(
            Column::new("_claim_key", ColumnType::Code)
                .describe("v1/v2: the claim-group identifier; v3: the EOB id (CCLF's claim id)"),
        );
        cols.push(
            Column::new("_status", ColumnType::Code)
                .describe("The EOB's status: active or cancelled"),
        );
    }
    cols
}

impl Plan {
    /// Groups views into tables by `name` (lower case), checks that views sharing a table agree,
    /// and adds the lineage columns.
    ///
    /// # Errors
    /// [`Error::Unnamed`], [`Error::ColumnsDiffer`], [`Error::ResourcesDiffer`].
    pub fn new(views: Vec<PlannedView>) -> Result<Self, Error> {
        let mut tables: Vec<TableSchema> = Vec::new();
        let mut first_of: Vec<usize> = Vec::new();
        let mut planned: Vec<PlanView> = Vec::new();
        for PlannedView {
            mut view,
            api_version,
        } in views
        {
            // A claim line is never lost for one odd cell: equal repeated values are one value,
            // differing ones a NULL cell and a row error (ARCHITECTURE.md, Types).
            view.set_many_values(claimline_view::ManyValues::OneOrNull);
            let name = view
                .name()
                .ok_or_else(|| Error::Unnamed {
                    file: view.file().to_owned(),
                })?
                .to_ascii_lowercase();
            let claim = view.resource() == "ExplanationOfBenefit";
            let declared = declared_columns(&view);
            let types = declared.iter().map(|c| c.ty.clone()).collect();
            let mbi_column = view.schema().columns.iter().position(|c| {
                c.tags
                    .iter()
                    .any(|(n, v)| n == LINK_TAG && v == BENE_MBI_LINK)
            });
            // A CCLF8 input view feeds `cclf8` through the link stage, not a table of its own.
            let input = Cclf8Input::of_view(&name);
            let (bene_id, names) = match input {
                Some(input) => (
                    check_cclf8_input(&view, &name, input)?,
                    declared
                        .iter()
                        .map(|c| Arc::from(c.name.as_str()))
                        .collect(),
                ),
                None => (0, Arc::from([])),
            };
            let table_name = if input.is_some() { CCLF8_TABLE } else { &name };
            let table = match tables.iter().position(|t| t.name == table_name) {
                Some(t) if input.is_some() => {
                    if planned[first_of[t]].input.is_none() {
                        return Err(Error::Cclf8Input {
                            file: view.file().to_owned(),
                            view: name,
                            reason: format!(
                                "view {} builds table cclf8 itself",
                                planned[first_of[t]].view.file()
                            ),
                        });
                    }
                    t
                }
                None if input.is_some() => {
                    // Its columns come from every input view, once all are planned (below).
                    tables.push(TableSchema::new(CCLF8_TABLE, Vec::new()));
                    first_of.push(planned.len());
                    tables.len() - 1
                }
                Some(t) => {
                    let first = &planned[first_of[t]];
                    if first.view.resource() != view.resource() {
                        return Err(Error::ResourcesDiffer {
                            table: name,
                            first: first.view.file().to_owned(),
                            second: view.file().to_owned(),
                        });
                    }
                    let same = tables[t].columns.len() == declared.len() + lineage(claim).len()
                        && tables[t]
                            .columns
                            .iter()
                            .zip(&declared)
                            .all(|(a, b)| a.name == b.name && a.ty == b.ty);
                    if !same {
                        return Err(Error::ColumnsDiffer {
                            table: name,
                            first: first.view.file().to_owned(),
                            second: view.file().to_owned(),
                        });
                    }
                    t
                }
                None => {
                    let mut columns = declared;
                    columns.extend(lineage(claim));
                    let key = if claim { "_claim_key" } else { "_resource_id" };
                    tables.push(TableSchema {
                        name,
                        columns,
                        replace_key: vec!["_api_version".into(), key.into()],
                        newest_wins: !claim,
                        indexes: if claim {
                            vec!["_claim_key".into(), "_resource_id".into()]
                        } else {
                            vec!["_resource_id".into()]
                        },
                    });
                    first_of.push(planned.len());
                    tables.len() - 1
                }
            };
            planned.push(PlanView {
                cclf: claim && input.is_none() && tables[table].name.starts_with("cclf"),
                view,
                api_version,
                table,
                claim,
                mbi_column,
                columns: types,
                input,
                names,
                bene_id,
            });
        }
        let tables_cclf8 = planned.iter().find(|v| v.input.is_some()).map(|v| v.table);
        if let Some(t) = tables_cclf8 {
            // CCLF8's columns are those its input views declare (Patient views first).
            let mut inputs: Vec<&PlanView> = planned.iter().filter(|v| v.input.is_some()).collect();
            inputs.sort_by_key(|v| v.input != Some(Cclf8Input::Patient));
            let columns = inputs
                .iter()
                .flat_map(|v| cclf8::cclf8_columns(&v.view, &declared_columns(&v.view)))
                .collect();
            tables[t] = cclf8::cclf8_schema(&inputs[0].view, columns)?;
        }
        let mut by_type: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, v) in planned.iter().enumerate() {
            by_type
                .entry(v.view.resource().to_owned())
                .or_default()
                .push(i);
        }
        Ok(Plan {
            tables,
            filters: Filters::new(planned.iter().map(|v| &v.view)),
            views: planned,
            by_type,
            bene: BeneIndex::default(),
            include_partial: false,
            xref: None,
            cclf8: tables_cclf8,
        })
    }

    /// True when some view has a `bene-mbi` column, so a load should build a [`BeneIndex`] from
    /// the input's Patients first.
    pub fn needs_bene_index(&self) -> bool {
        self.views.iter().any(|v| v.mbi_column.is_some())
    }

    /// The beneficiaries whose MBIs fill `bene-mbi` columns.
    pub fn set_bene_index(&mut self, index: BeneIndex) {
        self.bene = index;
    }

    /// Keep v3 partially adjudicated and prior-authorization EOBs in the CCLF tables.
    pub fn set_include_partial(&mut self, include: bool) {
        self.include_partial = include;
    }

    /// Adds the link-built tables: `bene_xref` and `cclf9` from every Patient (when some view has
    /// a `bene-mbi` column: the beneficiaries matter), and `_claimline_claims` (when some view
    /// builds a claim table). A view named `cclf9` or `bene_xref` takes precedence and is left
    /// alone. (`cclf8` is there when its input views are: see [`Plan::cclf8_table`].)
    pub fn add_link_tables(&mut self) {
        let has = |tables: &[TableSchema], n: &str| tables.iter().any(|t| t.name == n);
        if self.needs_bene_index() && !has(&self.tables, BENE_XREF) && !has(&self.tables, "cclf9") {
            self.tables.push(bene_xref_schema());
            self.tables.push(cclf9_schema());
            self.xref = Some((self.tables.len() - 2, self.tables.len() - 1));
        }
        if self.has_claim_tables() && !has(&self.tables, CLAIMS_TABLE) {
            self.tables.push(claims_schema());
            self.tables.push(counts_schema());
        }
    }

    /// What a load needs parsed of each resource type: the root members its views read and
    /// those this stage reads itself (lineage, claim keys, exclusions, the reconciliation
    /// counts), for the types whose views all say what they read ([`ViewDefinition::root_needs`]).
    /// A type some view may read whole of is parsed whole; a type no view reads (the EOBs of a
    /// load of CCLF8 alone, a Claim in an export) only for what this stage reads of it.
    pub fn pruning(&self) -> Pruning {
        // `lineage` (meta.lastUpdated), `claim_columns` (identifier, status), `excluded`
        // (use, outcome), `patient_mbis` (identifier), `claim_summary` (type,
        // billablePeriod, payment, item: how many, and the first one's `servicedDate`).
        let own = || {
            let mut needs = Needs::new();
            for name in [
                "meta",
                "identifier",
                "status",
                "use",
                "outcome",
                "type",
                "billablePeriod",
                "payment",
            ] {
                needs.add(name, Need::Whole);
            }
            needs
        };
        let mut pruning = Pruning::new();
        for (ty, views) in &self.by_type {
            let mut needs = own();
            let mut whole = false;
            for &i in views {
                match self.views[i].view.root_needs() {
                    Some(n) => needs.extend(&n),
                    None => whole = true,
                }
            }
            if whole {
                pruning.set_whole(ty);
                continue;
            }
            if self.counts_table().is_some() {
                needs.add_first("item", "servicedDate");
            }
            pruning.set(ty, needs);
        }
        // No view reads these types: a resource of one gives no row, only its claim event (an
        // EOB) or its MBIs (a Patient, when claims are resolved).
        pruning.set_others(own());
        pruning
    }

    /// The index of `_claimline_claims`, when [`Plan::add_link_tables`] added it.
    pub fn claims_table(&self) -> Option<usize> {
        self.tables.iter().position(|t| t.name == CLAIMS_TABLE)
    }

    /// The indexes of `bene_xref` and `cclf9`, when [`Plan::add_link_tables`] added them: the
    /// tables a Patient's MBIs give rows to.
    pub fn xref_tables(&self) -> Option<(usize, usize)> {
        self.xref
    }

    /// The index of `cclf8`, when views named `cclf8_patient` or `cclf8_coverage` feed it.
    pub fn cclf8_table(&self) -> Option<usize> {
        self.cclf8
    }

    /// Whether a view of Coverage (`cclf8_coverage`) feeds `cclf8`.
    pub fn cclf8_reads_coverage(&self) -> bool {
        self.views
            .iter()
            .any(|pv| matches!(pv.input, Some(Cclf8Input::Coverage)))
    }

    /// The columns of `cclf8` that only its Coverage views fill (entitlement, status, dual,
    /// buy-in, enrollment dates): what a Patient that comes without its Coverage takes from the
    /// beneficiary's earlier `cclf8` row ([`Cclf8Builder::carry`]).
    pub fn cclf8_coverage_columns(&self) -> Vec<Column> {
        let Some(t) = self.cclf8 else {
            return Vec::new();
        };
        let names = |input: Cclf8Input| -> BTreeSet<String> {
            self.views
                .iter()
                .filter(|v| v.input == Some(input))
                .flat_map(|v| cclf8::cclf8_columns(&v.view, &declared_columns(&v.view)))
                .map(|c| c.column.name)
                .collect()
        };
        let (patient, coverage) = (names(Cclf8Input::Patient), names(Cclf8Input::Coverage));
        self.tables[t]
            .columns
            .iter()
            .filter(|c| coverage.contains(&c.name) && !patient.contains(&c.name))
            .cloned()
            .collect()
    }

    /// A builder of `cclf8`'s rows with its columns (none when no view feeds it: it then only
    /// counts Coverage without a Patient).
    pub fn cclf8_builder(&self) -> Cclf8Builder {
        let columns = self.cclf8.map_or_else(Vec::new, |t| {
            self.tables[t]
                .columns
                .iter()
                .filter(|c| !c.name.starts_with('_'))
                .map(|c| Arc::from(c.name.as_str()))
                .collect()
        });
        Cclf8Builder::new(columns)
    }

    /// The index of `_claimline_counts`, when [`Plan::add_link_tables`] added it.
    pub fn counts_table(&self) -> Option<usize> {
        self.tables.iter().position(|t| t.name == COUNTS_TABLE)
    }

    /// True when some view reads `ExplanationOfBenefit` (a claim table).
    pub fn has_claim_tables(&self) -> bool {
        self.views.iter().any(|v| v.claim)
    }

    /// With [`VersionMode::All`], claim tables are replaced per `(_api_version, _claim_key,
    /// _resource_id)` instead of per claim group. Every EOB produces rows either way: the
    /// claim-history rule ([`RunVersions`]) is applied by the caller to what it wrote (as
    /// `claimline load` does, dropping the rows of versions it does not keep before committing).
    pub fn set_version_mode(&mut self, mode: VersionMode) {
        if mode == VersionMode::All {
            for (t, table) in self.tables.iter_mut().enumerate() {
                if self.views.iter().any(|v| v.claim && v.table == t) {
                    table.replace_key = vec![
                        "_api_version".into(),
                        "_claim_key".into(),
                        "_resource_id".into(),
                    ];
                }
            }
        }
    }

    /// True when some claim-table view runs on EOBs of `api_version`.
    pub fn claim_views_for(&self, api_version: Option<ApiVersion>) -> bool {
        self.views
            .iter()
            .any(|v| v.claim && (v.api_version.is_none() || v.api_version == api_version))
    }

    /// True when table `t` is fed by views of `ExplanationOfBenefit` (a claim table).
    pub fn is_claim_table(&self, t: usize) -> bool {
        self.views.iter().any(|v| v.claim && v.table == t)
    }

    /// True when views feed table `t` directly (false for the tables the link stage builds:
    /// `bene_xref`, `cclf8`, `cclf9`, the run tables).
    pub fn is_view_table(&self, t: usize) -> bool {
        self.views.iter().any(|v| v.table == t && v.input.is_none())
    }

    /// Columns of table `t` that are NULL by design: every view feeding it tags the column
    /// `claimline/unmapped` (no BCDA source), so a load need not say they were NULL.
    pub fn null_by_design(&self, t: usize) -> std::collections::HashSet<String> {
        let mut views = self
            .views
            .iter()
            .filter(|v| v.table == t && v.input.is_none());
        let Some(first) = views.next() else {
            // A table the link stage builds (bene_xref, cclf8, …): every column by design.
            return self.tables[t]
                .columns
                .iter()
                .map(|c| c.name.clone())
                .collect();
        };
        let unmapped = |v: &PlanView| -> std::collections::HashSet<String> {
            v.view
                .schema()
                .columns
                .iter()
                .filter(|c| c.tags.iter().any(|(k, _)| k == "claimline/unmapped"))
                .map(|c| c.name.clone())
                .collect()
        };
        let mut set = unmapped(first);
        for v in views {
            let other = unmapped(v);
            set.retain(|c| other.contains(c));
        }
        set
    }

    /// The tables, with lineage columns, in the order views first named them.
    pub fn tables(&self) -> &[TableSchema] {
        &self.tables
    }

    /// Per table, the position of its `_line` column (for [`ResourceOutput::shift_lines`]).
    pub fn line_columns(&self) -> Vec<Option<usize>> {
        self.tables
            .iter()
            .map(|t| t.columns.iter().position(|c| c.name == "_line"))
            .collect()
    }

    /// Runs every view that applies to `r` (its resource type and API version) and returns
    /// the rows with lineage, and the values that did not fit.
    pub fn evaluate(
        &self,
        r: &Resource<'_>,
        run_id: &str,
        scratch: &mut Scratch,
    ) -> ResourceOutput {
        self.evaluate_reading(r, run_id, scratch).0
    }

    /// As [`Plan::evaluate`], also giving the EOB's [`ClaimEvent`] under `mode`: what
    /// [`claim_event`] gives, with the claim key, status and `meta.lastUpdated` read once for
    /// the rows and the event.
    pub fn evaluate_with_event(
        &self,
        r: &Resource<'_>,
        run_id: &str,
        scratch: &mut Scratch,
        mode: VersionMode,
    ) -> (ResourceOutput, Option<ClaimEvent>) {
        let (mut out, read) = self.evaluate_reading(r, run_id, scratch);
        if r.resource_type != "ExplanationOfBenefit" {
            return (out, None);
        }
        let event = history::event_of(
            r,
            mode,
            read.claim.unwrap_or_else(|| claim_columns(r)),
            read.last_updated.unwrap_or_else(|| last_updated(r)),
        );
        if event.is_none() {
            self.leave_out_unversioned(r, &mut out);
        }
        (out, event)
    }

    /// An EOB whose claim version cannot be told (no `id`, or no claim key: see
    /// [`claim_event`]) can neither replace nor be replaced by another version of its claim, so
    /// its claim-table rows are left out of every output, with a row error naming the missing
    /// field, and it adds nothing to `_claimline_counts`. (Kept, its rows would pile up in SQLite
    /// and PostgreSQL at every load while Parquet's rule, which reads the claim versions, never
    /// showed them.)
    fn leave_out_unversioned(&self, r: &Resource<'_>, out: &mut ResourceOutput) {
        let Some(first) = out.rows.iter().find(|row| self.is_claim_table(row.table)) else {
            return;
        };
        let table = first.table;
        let no_key = matches!(claim_columns(r)[0], Cell::Null);
        out.rows.retain(|row| !self.is_claim_table(row.table));
        out.summary = None;
        out.issues.push(RowIssue {
            table,
            column: if no_key { "_claim_key" } else { "_resource_id" }.into(),
            resource_id: r.id.map(str::to_owned),
            reason: if no_key {
                "the ExplanationOfBenefit has no claim key (no claim-group identifier and no id): \
                 its version cannot be told, so its claim rows are left out"
            } else {
                "the ExplanationOfBenefit has no id: its version cannot be told, so its claim \
                 rows are left out"
            }
            .into(),
        });
    }

    /// [`Plan::evaluate`], and what it read of the claim on the way.
    fn evaluate_reading(
        &self,
        r: &Resource<'_>,
        run_id: &str,
        scratch: &mut Scratch,
    ) -> (ResourceOutput, Read) {
        let mut out = ResourceOutput::default();
        if let Some((xref, _)) = self.xref
            && r.resource_type == "Patient"
        {
            // What keeps a Patient's MBIs out of `bene_xref` is said, never passed over.
            let issue = |column: &str, reason: &str| RowIssue {
                table: xref,
                column: column.to_owned(),
                resource_id: r.id.map(str::to_owned),
                reason: reason.to_owned(),
            };
            if r.id.is_none() {
                out.issues.push(issue(
                    "BENE_ID",
                    "the Patient has no id (a string): no bene_xref or cclf9 row",
                ));
            }
            let unusable = r
                .root
                .get("identifier")
                .into_iter()
                .flat_map(|i| i.items())
                .filter(|i| str_at(*i, "system") == Some(US_MBI))
                .filter(|i| str_at(*i, "value").is_none())
                .count();
            if unusable > 0 {
                out.issues.push(issue(
                    "MBI",
                    "an identifier of system us-mbi has no value that is a string: that MBI is \
                     left out",
                ));
            }
        }
        if let Some((xref, cclf9)) = self.xref
            && r.resource_type == "Patient"
            && let Some(id) = r.id
        {
            let records = patient_mbis(r);
            if !records.is_empty() {
                let source = source_file(&mut scratch.source_files, r);
                let lineage = self.lineage(r, source, run_id, &mut out.issues, xref);
                let rows = xref::xref_rows(&records, id, &lineage);
                out.rows.extend(
                    rows.xref
                        .into_iter()
                        .map(|cells| TableRow { table: xref, cells }),
                );
                out.rows
                    .extend(rows.cclf9.into_iter().map(|cells| TableRow {
                        table: cclf9,
                        cells,
                    }));
            }
        }
        let Some(indexes) = self.by_type.get(r.resource_type) else {
            return (out, Read::default());
        };
        if scratch.rows.len() < self.views.len() {
            scratch.rows.resize_with(self.views.len(), Rows::default);
        }
        scratch.filters.clear();
        let mut lineage: Option<Vec<Cell>> = None;
        let mut claim_extra: Option<[Cell; 2]> = None;
        let leave_out = if self.include_partial {
            None
        } else {
            excluded(r)
        };
        // A resource whose API version nothing tells (no manifest, no profile, no BFD URL, no
        // release mark) would be given no view of a version: never silently. It is a row error
        // of the first table its version's views would feed.
        if r.api_version.is_none()
            && let Some(&first) = indexes
                .iter()
                .find(|&&i| self.views[i].api_version.is_some())
            && !indexes.iter().any(|&i| self.views[i].api_version.is_none())
        {
            out.issues.push(RowIssue {
                table: self.views[first].table,
                column: String::new(),
                resource_id: r.id.map(str::to_owned),
                reason: "the resource's API version cannot be told (no manifest.json beside the \
                         file, no profile, no BFD URL, no element only one FHIR release has): \
                         no view ran on it"
                    .to_owned(),
            });
        }
        for &i in indexes {
            let pv = &self.views[i];
            if pv.api_version.is_some() && pv.api_version != r.api_version {
                continue;
            }
            if pv.cclf && leave_out.is_some() {
                out.excluded = leave_out;
                continue;
            }
            let rows = &mut scratch.rows[i];
            rows.clear();
            let filtered = self
                .filters
                .filter(i, &pv.view, r.root, &mut scratch.filters);
            if let Err(e) = pv.view.evaluate_filtered(r.root, &filtered, rows) {
                out.issues.push(RowIssue {
                    table: pv.table,
                    column: String::new(),
                    resource_id: r.id.map(str::to_owned),
                    reason: e.to_string(),
                });
                continue;
            }
            for e in rows.errors.drain(..) {
                out.issues.push(RowIssue {
                    table: pv.table,
                    column: e.column,
                    resource_id: e.resource_id,
                    reason: e.reason,
                });
            }
            if rows.rows.is_empty() {
                continue;
            }
            // A Coverage row of CCLF8 carries no lineage (the row is the Patient's): its
            // `meta.lastUpdated` is neither read nor reported.
            let lineage: &[Cell] = if pv.input == Some(Cclf8Input::Coverage) {
                &[]
            } else {
                lineage.get_or_insert_with(|| {
                    let source = source_file(&mut scratch.source_files, r);
                    self.lineage(r, source, run_id, &mut out.issues, pv.table)
                })
            };
            let extra = if pv.claim {
                Some(claim_extra.get_or_insert_with(|| claim_columns(r)))
            } else {
                None
            };
            // A table's row takes its lineage after the cells; a CCLF8 input's travels as is.
            let width = if pv.input.is_some() {
                pv.columns.len()
            } else {
                self.tables[pv.table].columns.len()
            };
            for mut row in rows.rows.drain(..) {
                let mut cells = Vec::with_capacity(width);
                for (cell, ty) in row.iter_mut().zip(&pv.columns) {
                    cells.push(convert(cell, ty).unwrap_or_else(|reason| {
                        out.issues.push(RowIssue {
                            table: pv.table,
                            column: match pv.input {
                                Some(_) => pv.names[cells.len()].to_string(),
                                None => self.tables[pv.table].columns[cells.len()].name.clone(),
                            },
                            resource_id: r.id.map(str::to_owned),
                            reason,
                        });
                        Cell::Null
                    }));
                }
                if let Some(m) = pv.mbi_column {
                    let mbi = match &cells[m] {
                        Cell::Text(bene) => self.bene.get(r.api_version, bene),
                        _ => None,
                    };
                    match mbi {
                        Some(mbi) => cells[m] = Cell::text(mbi),
                        None => {
                            cells[m] = Cell::Null;
                            // A Patient without an MBI is not a claim left unresolved.
                            out.unresolved_mbi |= pv.input.is_none();
                        }
                    }
                }
                if let Some(input) = pv.input {
                    if out.bene_part.is_some() {
                        out.issues.push(RowIssue {
                            table: pv.table,
                            column: String::new(),
                            resource_id: r.id.map(str::to_owned),
                            reason: format!(
                                "view {} gave more than one row for the resource; CCLF8 takes the first",
                                pv.view.name().unwrap_or_default()
                            ),
                        });
                        continue;
                    }
                    out.bene_part = self.bene_part(pv, input, r, cells, lineage);
                    if out.bene_part.is_none() {
                        out.issues.push(RowIssue {
                            table: pv.table,
                            column: pv.names[pv.bene_id].to_string(),
                            resource_id: r.id.map(str::to_owned),
                            reason: "no beneficiary id (the column is NULL): the row is left out \
                                     of CCLF8"
                                .to_owned(),
                        });
                    }
                    continue;
                }
                cells.extend(lineage.iter().cloned());
                if let Some(extra) = &extra {
                    cells.extend(extra.iter().cloned());
                }
                out.rows.push(TableRow {
                    table: pv.table,
                    cells,
                });
            }
        }
        if claim_extra.is_some()
            && let Some(counts) = self.counts_table()
        {
            out.summary = claim_summary(r);
            if out.summary.as_ref().is_some_and(|s| s.payment_unusable) {
                out.issues.push(RowIssue {
                    table: counts,
                    column: "PAYMENT_SUM".to_owned(),
                    resource_id: r.id.map(str::to_owned),
                    reason: "payment.amount.value is not an amount CLM_PMT_AMT holds (a number \
                             below 10^13): counted as 0"
                        .to_owned(),
                });
            }
        }
        // An EOB of no claim type (the one reading of it the scanner and the views share:
        // `eob-type`, v3's `CLM-TYPE-CD`, a prior authorization) gives no CCLF row: said, not
        // passed over.
        if r.resource_type == "ExplanationOfBenefit"
            && leave_out.is_none()
            && let Some(first) = indexes
                .iter()
                .map(|&i| &self.views[i])
                .find(|pv| pv.cclf && (pv.api_version.is_none() || pv.api_version == r.api_version))
            && claimline_ndjson::claim_type(r.root).is_none()
        {
            out.issues.push(RowIssue {
                table: first.table,
                column: String::new(),
                resource_id: r.id.map(str::to_owned),
                reason: format!(
                    "the EOB's type (eob-type code) is none of {}: no CCLF row",
                    claimline_ndjson::EOB_TYPES.join(", ")
                ),
            });
        }
        let read = Read {
            last_updated: lineage.map(|l| match l.get(LINEAGE_LAST_UPDATED) {
                Some(Cell::Timestamp(us)) => Some(*us),
                _ => None,
            }),
            claim: claim_extra,
        };
        (out, read)
    }

    /// A CCLF8 input row as a [`BenePart`] (`None` when it names no beneficiary).
    fn bene_part(
        &self,
        pv: &PlanView,
        input: Cclf8Input,
        r: &Resource<'_>,
        cells: Vec<Cell>,
        lineage: &[Cell],
    ) -> Option<BenePart> {
        let bene = match &cells[pv.bene_id] {
            Cell::Text(s) => s.to_string(),
            _ => return None,
        };
        let fields = PartFields {
            names: pv.names.clone(),
            cells,
        };
        Some(match input {
            Cclf8Input::Patient => BenePart::Patient {
                api_version: r.api_version,
                bene,
                fields,
                lineage: lineage.to_vec(),
            },
            Cclf8Input::Coverage => BenePart::Coverage {
                api_version: r.api_version,
                bene,
                fields,
            },
        })
    }

    fn lineage(
        &self,
        r: &Resource<'_>,
        source_file: Cell,
        run_id: &str,
        issues: &mut Vec<RowIssue>,
        table: usize,
    ) -> Vec<Cell> {
        let text = |s: Option<&str>| s.map_or(Cell::Null, Cell::text);
        let last_updated = match r.root.get("meta").and_then(|m| m.get("lastUpdated")) {
            None => Cell::Null,
            Some(c) => match c.as_str().and_then(parse_instant) {
                Some(us) => Cell::Timestamp(us),
                None => {
                    issues.push(RowIssue {
                        table,
                        column: "_last_updated".into(),
                        resource_id: r.id.map(str::to_owned),
                        reason: "meta.lastUpdated is not a valid instant".into(),
                    });
                    Cell::Null
                }
            },
        };
        // An EOB's id may come from its `uc` identifier (v3 without `id`, see `eob_id`).
        let id = match r.id {
            None if r.resource_type == "ExplanationOfBenefit" => eob_id(r),
            id => id,
        };
        // The order of `lineage(false)`; `_line` at LINEAGE_LINE.
        vec![
            text(id),
            source_file,
            Cell::Int(r.line as i64),
            text(r.api_version.map(ApiVersion::as_str)),
            last_updated,
            Cell::text(run_id),
        ]
    }
}

/// Checks a CCLF8 input view and returns the index of its `bene-id` column.
fn check_cclf8_input(view: &ViewDefinition, name: &str, input: Cclf8Input) -> Result<usize, Error> {
    let fail = |reason: String| Error::Cclf8Input {
        file: view.file().to_owned(),
        view: name.to_owned(),
        reason,
    };
    if view.resource() != input.resource() {
        return Err(fail(format!(
            "reads {}, not {}",
            view.resource(),
            input.resource()
        )));
    }
    view.schema()
        .columns
        .iter()
        .position(|c| {
            c.tags
                .iter()
                .any(|(n, v)| n == LINK_TAG && v == BENE_ID_LINK)
        })
        .ok_or_else(|| {
            fail(format!(
                "has no column tagged {LINK_TAG} = {BENE_ID_LINK} (the beneficiary id to join on)"
            ))
        })
}

/// An EOB's id: its `id`, else for v3 the identifier typed `uc`, which holds the same value (a
/// line without `id`, as in CMS's MIDR reference sample). Its rows' `_resource_id` and its claim
/// version's id alike.
pub(crate) fn eob_id<'a>(r: &Resource<'a>) -> Option<&'a str> {
    r.id.or_else(|| {
        if r.api_version != Some(ApiVersion::V3) {
            return None;
        }
        r.root
            .get("identifier")
            .into_iter()
            .flat_map(|i| i.items())
            .find(|i| {
                i.get("type")
                    .and_then(|t| t.get("coding"))
                    .into_iter()
                    .flat_map(|c| c.items())
                    .any(|c| str_at(c, "code") == Some("uc"))
            })
            .and_then(|i| str_at(i, "value"))
    })
}

/// `_claim_key` and `_status` of an EOB.
pub(crate) fn claim_columns(r: &Resource<'_>) -> [Cell; 2] {
    let key = match r.api_version {
        // The EOB id is CLM_UNIQ_ID (`eob_id`: the `uc` identifier when `id` is missing).
        Some(ApiVersion::V3) => eob_id(r),
        _ => r
            .root
            .get("identifier")
            .into_iter()
            .flat_map(|i| i.items())
            .find(|i| i.get("system").and_then(|s| s.as_str()) == Some(CLAIM_GROUP))
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_str())
            // No claim group (should not happen in BFD data): the resource is its own claim.
            .or(r.id),
    };
    let status = r.root.get("status").and_then(|s| s.as_str());
    [
        key.map_or(Cell::Null, Cell::text),
        status.map_or(Cell::Null, Cell::text),
    ]
}

/// A view cell to a sink cell of the column's type. The cell is read where it lies, and what
/// the sink cell keeps of it (its text, its list) taken out, leaving it empty (a value that
/// becomes JSON text leaves a null), rather than moved: a cell moved by value went through a
/// copy on the stack whose reading back stalled on every cell.
#[inline]
fn convert(cell: &mut claimline_view::Cell, ty: &ColumnType) -> Result<Cell, String> {
    use claimline_view::Cell as V;
    Ok(match (cell, ty) {
        (V::Null, _) => Cell::Null,
        (V::String(s), ColumnType::Text | ColumnType::Code) => Cell::Text(std::mem::take(s)),
        (V::List(items), ColumnType::Json) => {
            Cell::text(V::List(std::mem::take(items)).to_string())
        }
        (other, ColumnType::Json) => {
            Cell::text(V::List(vec![std::mem::replace(other, V::Null)]).to_string())
        }
        (V::Boolean(b), ColumnType::Boolean) => Cell::Bool(*b),
        (V::Integer(i), ColumnType::Integer) => Cell::Int(*i),
        (V::Decimal(d), ColumnType::Decimal { precision, scale }) => {
            let scale = u8::try_from(*scale).map_err(|_| "negative decimal scale".to_owned())?;
            let fitted = d
                .fit(*precision, scale)
                .ok_or_else(|| format!("does not fit DECIMAL({precision},{scale})"))?;
            Cell::Decimal(fitted.mantissa())
        }
        (V::Integer(i), ColumnType::Decimal { precision, scale }) => {
            let scale = u8::try_from(*scale).map_err(|_| "negative decimal scale".to_owned())?;
            let d = claimline_view::Decimal::from_i64(*i)
                .fit(*precision, scale)
                .ok_or_else(|| format!("does not fit DECIMAL({precision},{scale})"))?;
            Cell::Decimal(d.mantissa())
        }
        (V::Date(d), ColumnType::Date) => Cell::Date(*d),
        (V::DateTime(t), ColumnType::Timestamp) => Cell::Timestamp(*t),
        (
            v @ (V::Time(_)
            | V::Date(_)
            | V::DateTime(_)
            | V::Integer(_)
            | V::Decimal(_)
            | V::Boolean(_)),
            ColumnType::Text | ColumnType::Code,
        ) => Cell::text(v.to_string()),
        (other, ty) => return Err(format!("a {} value in a {ty:?} column", kind(other))),
    })
}

fn kind(c: &claimline_view::Cell) -> &'static str {
    use claimline_view::Cell as V;
    match c {
        V::Null => "null",
        V::Boolean(_) => "boolean",
        V::Integer(_) => "integer",
        V::Decimal(_) => "decimal",
        V::String(_) => "string",
        V::Date(_) => "date",
        V::DateTime(_) => "dateTime",
        V::Time(_) => "time",
        V::List(_) => "list",
    }
}

/// (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil(days: i32) -> (i64, u32, u32) {
    claimline_model::civil_from_days(i64::from(days))
}

/// `meta.lastUpdated` of `r` as an instant (`None`: missing or not an instant).
pub(crate) fn last_updated(r: &Resource<'_>) -> Option<i64> {
    r.root
        .get("meta")
        .and_then(|m| m.get("lastUpdated"))
        .and_then(|c| c.as_str())
        .and_then(parse_instant)
}

/// Microseconds since the epoch of an RFC 3339 instant with a time zone; `None` otherwise.
pub fn parse_instant(s: &str) -> Option<i64> {
    let parts = claimline_view::temporal::parse_date_time(s)?;
    if !s.contains('T') {
        return None;
    }
    Some(parts.utc_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_path_is_kept_once_and_its_cells_copy_it() {
        let long = "/exports/run-1/ExplanationOfBenefit-0000-one-long-name.ndjson";
        let a = source_name(long.into()).expect("kept");
        let b = source_name(long.into()).expect("kept");
        assert!(std::ptr::eq(a, b), "one copy per path");
        let cell = source_cell(long.into());
        let Cell::Text(copy) = cell.clone() else {
            panic!("a text cell");
        };
        assert!(!copy.is_heap_allocated(), "a clone borrows the kept text");
        assert_eq!(cell, Cell::text(long));
        // Past the most kept, a path is a cell of its own, of the same text.
        let mut n = 0;
        let past = loop {
            let path = format!("/exports/many/file-{n}.ndjson");
            n += 1;
            if let Err(path) = source_name(path) {
                break path;
            }
            assert!(n <= SOURCE_NAMES_KEPT, "at most {SOURCE_NAMES_KEPT} kept");
        };
        assert_eq!(source_cell(past.clone()), Cell::text(past.as_str()));
        assert!(std::ptr::eq(
            source_name(long.into()).expect("still kept"),
            a
        ));
    }

    fn view(json: &str) -> PlannedView {
        PlannedView {
            view: ViewDefinition::from_json(json, "test.json").expect("valid view"),
            api_version: None,
        }
    }

    #[test]
    fn views_sharing_a_name_must_agree() {
        let a = r#"{"resourceType":"ViewDefinition","name":"T","resource":"Patient","select":[{"column":[{"name":"x","path":"id","type":"string"}]}]}"#;
        let b = r#"{"resourceType":"ViewDefinition","name":"t","resource":"Patient","select":[{"column":[{"name":"y","path":"id","type":"string"}]}]}"#;
        let plan = Plan::new(vec![view(a), view(a)]).expect("same columns");
        assert_eq!(plan.tables().len(), 1);
        assert_eq!(plan.tables()[0].name, "t");
        let err = Plan::new(vec![view(a), view(b)]).err().expect("differs");
        assert!(matches!(err, Error::ColumnsDiffer { .. }), "{err}");
    }

    /// The key a cluster engine partitions by: a Patient's id, the Patient a Coverage or an
    /// EOB references as `getReferenceKey(Patient)` reads it, the first of a duplicated member
    /// as every view reads it.
    #[test]
    fn a_resource_keys_to_its_beneficiary() {
        let keys = each(
            &[
                r#"{"resourceType":"Patient","id":"-1"}"#,
                r#"{"resourceType":"Coverage","id":"c","beneficiary":{"reference":"Patient/-2"}}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","patient":{"reference":"https://b/v2/fhir/Patient/-3/_history/4"}}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","patient":{"reference":"Patient/-4"},"patient":{"reference":"Patient/-5"}}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e","patient":{"reference":"Organization/-6"}}"#,
                r#"{"resourceType":"ExplanationOfBenefit","id":"e"}"#,
                r#"{"resourceType":"Claim","id":"x","patient":{"reference":"Patient/-7"}}"#,
            ],
            |r| beneficiary_key(r).map(str::to_owned),
        );
        let want = [
            Some("-1"),
            Some("-2"),
            Some("-3"),
            Some("-4"),
            None,
            None,
            None,
        ];
        assert_eq!(keys, want.map(|k| k.map(str::to_owned)));
    }

    /// Runs `f` on every resource of `lines` (written to a temporary NDJSON file).
    fn each<T: Send>(lines: &[&str], f: impl Fn(&Resource<'_>) -> T + Sync) -> Vec<T> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.ndjson");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let files = claimline_ndjson::discover(&[path]).expect("discover");
        let (out, _) =
            claimline_ndjson::scan_collect(&files, &claimline_ndjson::ScanOptions::default(), f)
                .expect("scan");
        out
    }

    /// `_claimline_counts` keeps CCLF's claim types (`other` for any other code) and `YYYY-MM`
    /// months only, never a value of the record's own; a payment that is no amount is said.
    #[test]
    fn a_claim_summary_holds_no_text_of_the_record() {
        let eob = |code: &str, start: &str, value: &str| {
            format!(
                r#"{{"resourceType":"ExplanationOfBenefit","id":"e1","type":{{"coding":[{{"system":"https://bluebutton.cms.gov/resources/codesystem/eob-type","code":"{code}"}}]}},"billablePeriod":{{"start":"{start}"}},"payment":{{"amount":{{"value":{value}}}}}}}"#
            )
        };
        let lines = [
            eob("CARRIER", "2024-03-05", "12.5"),
            eob("9ZZ9ZZ9ZZ99", "9ZZ9ZZ9ZZ99", "\"9ZZ9ZZ9ZZ99\""),
            eob("PDE", "2024-3-05", "1e30"),
        ];
        let got = each(&lines.iter().map(String::as_str).collect::<Vec<_>>(), |r| {
            let s = claim_summary(r).expect("an EOB");
            (
                s.claim_type.to_string(),
                s.month.to_string(),
                s.payment_cents,
                s.payment_unusable,
            )
        });
        assert_eq!(
            got,
            [
                ("CARRIER".into(), "2024-03".into(), 1250, false),
                ("other".into(), String::new(), 0, true),
                ("PDE".into(), String::new(), 0, true),
            ]
        );
    }

    /// A plan whose views read only Patients parses an EOB for what this stage reads of it
    /// (claim key, status, last update), and the claim event is the one a whole parse gives;
    /// a type some view may read whole of is parsed whole.
    #[test]
    fn a_type_no_view_reads_is_parsed_for_this_stage_alone_with_the_same_event() {
        let patients = r#"{"resourceType":"ViewDefinition","name":"pats","resource":"Patient","select":[{"column":[{"name":"id","path":"id","type":"string"}]}]}"#;
        let plan = Plan::new(vec![view(patients)]).expect("plan");
        let pruning = plan.pruning();
        let eob = pruning
            .needs("ExplanationOfBenefit", false)
            .expect("an EOB is parsed in part");
        for read in ["identifier", "status", "meta", "id"] {
            assert_eq!(eob.need(read), Some(Need::Whole), "{read}");
        }
        assert_eq!(eob.need("item"), None);
        assert_eq!(eob.need("supportingInfo"), None);

        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = claimline_ndjson::discover(&[
            dir.join("../../sample-data/generated/v2"),
            dir.join("../../sample-data/real/r4"),
        ])
        .expect("discover");
        let events = |pruning: Option<Pruning>| {
            let opts = claimline_ndjson::ScanOptions {
                pruning: pruning.map(std::sync::Arc::new),
                ..claimline_ndjson::ScanOptions::default()
            };
            let (out, summary) = claimline_ndjson::scan_collect(&files, &opts, |r| {
                plan.evaluate_with_event(r, "run", &mut Scratch::default(), VersionMode::Current)
                    .1
            })
            .expect("scan");
            assert_eq!(summary.reject_count, 0);
            out
        };
        let whole = events(None);
        assert!(whole.iter().flatten().count() > 10, "the samples hold EOBs");
        assert_eq!(events(Some(pruning)), whole);

        // Claims resolved to MBIs: Patients, which no view reads, give `bene_xref` and `cclf9`
        // rows from their identifiers, the same parsed in part as whole.
        let mut plan = Plan::new(vec![view(CLAIM_VIEW)]).expect("plan");
        plan.add_link_tables();
        let pruning = plan.pruning();
        assert!(pruning.needs("Patient", false).is_some());
        let rows = |pruning: Option<Pruning>| {
            let opts = claimline_ndjson::ScanOptions {
                pruning: pruning.map(std::sync::Arc::new),
                ..claimline_ndjson::ScanOptions::default()
            };
            let (out, _) = claimline_ndjson::scan_collect(&files, &opts, |r| {
                let out = plan.evaluate(r, "run", &mut Scratch::default());
                let rows: Vec<(usize, Vec<Cell>)> =
                    out.rows.into_iter().map(|r| (r.table, r.cells)).collect();
                (rows, out.issues.len())
            })
            .expect("scan");
            out
        };
        let whole = rows(None);
        let xref = plan.xref.expect("claims resolved: bene_xref added").0;
        assert!(
            whole.iter().flat_map(|(r, _)| r).any(|(t, _)| *t == xref),
            "the samples' Patients give xref rows"
        );
        assert_eq!(rows(Some(pruning)), whole);

        // A view that may read any member of a Patient: Patients are parsed whole.
        let any = r#"{"resourceType":"ViewDefinition","name":"any","resource":"Patient","where":[{"path":"$this = $this"}],"select":[{"column":[{"name":"id","path":"id","type":"string"}]}]}"#;
        let plan = Plan::new(vec![view(any)]).expect("plan");
        let pruning = plan.pruning();
        assert!(pruning.needs("Patient", false).is_none());
        assert!(pruning.needs("ExplanationOfBenefit", false).is_some());
    }

    const V2_PATIENT: &str = r#"{"resourceType":"Patient","id":"1","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient"]},"identifier":[{"type":{"coding":[{"extension":[{"url":"https://bluebutton.cms.gov/resources/codesystem/identifier-currency","valueCoding":{"code":"historic"}}],"code":"MC"}]},"system":"http://hl7.org/fhir/sid/us-mbi","value":"OLD"},{"type":{"coding":[{"extension":[{"url":"https://bluebutton.cms.gov/resources/codesystem/identifier-currency","valueCoding":{"code":"current"}}],"code":"MC"}]},"system":"http://hl7.org/fhir/sid/us-mbi","value":"NEW"}]}"#;
    const V1_PATIENT: &str = r#"{"resourceType":"Patient","id":"2","identifier":[{"extension":[{"url":"https://bluebutton.cms.gov/resources/codesystem/identifier-currency","valueCoding":{"code":"current"}}],"system":"http://hl7.org/fhir/sid/us-mbi","value":"CUR"},{"extension":[{"url":"https://bluebutton.cms.gov/resources/codesystem/identifier-currency","valueCoding":{"code":"historic"}}],"system":"http://hl7.org/fhir/sid/us-mbi","value":"HIST"}]}"#;
    const V3_PATIENT: &str = r#"{"resourceType":"Patient","id":"3","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient|2.1.0"]},"identifier":[{"period":{"start":"2020-04-21T00:00:00+00:00"},"system":"http://hl7.org/fhir/sid/us-mbi","value":"OPEN"},{"period":{"end":"2024-12-31T00:00:00+00:00","start":"2020-04-21T00:00:00+00:00"},"system":"http://hl7.org/fhir/sid/us-mbi","value":"ENDED"}]}"#;

    #[test]
    fn the_current_mbi_of_each_shape() {
        let found = each(&[V2_PATIENT, V1_PATIENT, V3_PATIENT], |r| {
            patient_mbi(r).map(|(_, id, mbi)| (id, mbi))
        });
        let found: Vec<(String, String)> = found.into_iter().flatten().collect();
        assert_eq!(
            found,
            [
                ("1".to_owned(), "NEW".to_owned()),
                ("2".to_owned(), "CUR".to_owned()),
                ("3".to_owned(), "OPEN".to_owned())
            ]
        );
    }

    const CLAIM_VIEW: &str = r#"{"resourceType":"ViewDefinition","name":"cclf1","resource":"ExplanationOfBenefit","select":[{"column":[{"name":"BENE_MBI_ID","path":"patient.getReferenceKey(Patient)","type":"string","tag":[{"name":"claimline/link","value":"bene-mbi"}]}]}]}"#;
    const V3_EOB: &str = r#"{"resourceType":"ExplanationOfBenefit","id":"E1","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|2.1.0"]},"outcome":"complete","patient":{"reference":"Patient/3"}}"#;
    const V3_EOB_OTHER_BENE: &str = r#"{"resourceType":"ExplanationOfBenefit","id":"E2","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|2.1.0"]},"outcome":"complete","patient":{"reference":"Patient/9"}}"#;
    const V3_PARTIAL: &str = r#"{"resourceType":"ExplanationOfBenefit","id":"E3","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|2.1.0"]},"outcome":"partial","patient":{"reference":"Patient/3"}}"#;
    const V3_PRIOR_AUTH: &str = r#"{"resourceType":"ExplanationOfBenefit","id":"E4","meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional|2.1.0"]},"use":"preauthorization","outcome":"partial","patient":{"reference":"Patient/3"}}"#;

    /// Views with one `where` share its answer within a resource, never across resources: one
    /// scratch space serves resources that the `where` keeps and leaves alternately.
    #[test]
    fn a_shared_where_is_answered_again_for_each_resource() {
        let v = |name: &str| {
            view(&format!(
                r#"{{"resourceType":"ViewDefinition","name":"{name}","resource":"Patient","where":[{{"path":"active"}}],"select":[{{"column":[{{"name":"id","path":"id","type":"string"}}]}}]}}"#
            ))
        };
        let plan = Plan::new(vec![v("t1"), v("t2")]).expect("plan");
        let lines: Vec<String> = (0..6)
            .map(|i| {
                format!(
                    r#"{{"resourceType":"Patient","id":"p{i}","active":{}}}"#,
                    i % 2 == 0
                )
            })
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let scratch = std::sync::Mutex::new(Scratch::default());
        let rows = each(&lines, |r| {
            let mut s = scratch.lock().expect("one scratch");
            let out = plan.evaluate(r, "run", &mut s);
            (r.id.map(str::to_owned), out.rows.len())
        });
        let mut rows: Vec<(Option<String>, usize)> = rows;
        rows.sort();
        let want: Vec<(Option<String>, usize)> = (0..6)
            .map(|i| (Some(format!("p{i}")), if i % 2 == 0 { 2 } else { 0 }))
            .collect();
        assert_eq!(rows, want);
    }

    #[test]
    fn bene_mbi_columns_resolve_and_partial_claims_stay_out() {
        let mut plan = Plan::new(vec![view(CLAIM_VIEW)]).expect("plan");
        assert!(plan.needs_bene_index());
        let mut index = BeneIndex::default();
        for (v, id, mbi) in each(&[V3_PATIENT], patient_mbi).into_iter().flatten() {
            index.insert(v, id, mbi);
        }
        assert_eq!(index.len(), 1);
        plan.set_bene_index(index);
        let lines = [V3_EOB, V3_EOB_OTHER_BENE, V3_PARTIAL, V3_PRIOR_AUTH];
        let run = |plan: &Plan| {
            each(&lines, |r| {
                let out = plan.evaluate(r, "run", &mut Scratch::default());
                let cells: Vec<String> = out
                    .rows
                    .iter()
                    .map(|row| match &row.cells[0] {
                        Cell::Text(t) => t.to_string(),
                        _ => "NULL".to_owned(),
                    })
                    .collect();
                (cells, out.unresolved_mbi, out.excluded)
            })
        };
        assert_eq!(
            run(&plan),
            [
                (vec!["OPEN".to_owned()], false, None),
                (vec!["NULL".to_owned()], true, None),
                (vec![], false, Some(Excluded::Partial)),
                (vec![], false, Some(Excluded::PriorAuth)),
            ]
        );
        plan.set_include_partial(true);
        let all = run(&plan);
        assert_eq!(all[2], (vec!["OPEN".to_owned()], false, None));
        assert_eq!(all[3].0.len(), 1);
    }

    /// CCLF8 joins a v3 Patient with its Part A, Part B and `dual-` Coverage (the real v3
    /// Coverage records of beneficiary 405764107, whose Patient the samples lack).
    #[test]
    fn cclf8_joins_patient_and_coverage_by_beneficiary() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../sample-data/real/v3/Coverage.ndjson");
        let coverage = std::fs::read_to_string(dir).expect("sample");
        let mut lines: Vec<&str> = coverage
            .lines()
            .filter(|l| l.contains("\"Patient/405764107\""))
            .collect();
        assert_eq!(lines.len(), 5);
        let patient = V3_PATIENT
            .replace("\"id\":\"3\"", "\"id\":\"405764107\"")
            .replace(
                "\"identifier\"",
                "\"birthDate\":\"1950-06-30\",\"gender\":\"female\",\"identifier\"",
            );
        lines.insert(0, &patient);
        let mappings =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings/cclf/v3");
        let input = |name: &str| {
            let path = mappings.join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).expect("view");
            PlannedView {
                view: ViewDefinition::from_json(&text, &path.display().to_string())
                    .expect("valid view"),
                api_version: Some(ApiVersion::V3),
            }
        };
        let mut plan = Plan::new(vec![
            view(CLAIM_VIEW),
            input(CCLF8_PATIENT),
            input(CCLF8_COVERAGE),
        ])
        .expect("plan");
        plan.add_link_tables();
        let mut index = BeneIndex::default();
        for (v, id, mbi) in each(&lines, patient_mbi).into_iter().flatten() {
            index.insert(v, id, mbi);
        }
        plan.set_bene_index(index);
        let t = plan.cclf8_table().expect("cclf8");
        let cols: Vec<&str> = plan.tables()[t]
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let mut builder = plan.cclf8_builder();
        for part in each(&lines, |r| {
            plan.evaluate(r, "run", &mut Scratch::default()).bene_part
        })
        .into_iter()
        .flatten()
        {
            builder.add(part);
        }
        assert_eq!(builder.coverage_only(), 0);
        let rows = builder.rows(claimline_model::parse_date("2026-06-29").expect("day"));
        assert_eq!(rows.len(), 1);
        let get =
            |name: &str| rows[0][cols.iter().position(|c| *c == name).expect("column")].clone();
        let text = |s: &str| Cell::text(s);
        assert_eq!(get("BENE_MBI_ID"), text("OPEN"));
        assert_eq!(get("BENE_SEX_CD"), text("2"));
        // One day before the 76th birthday.
        assert_eq!(get("BENE_AGE"), text("075"));
        assert_eq!(get("BENE_MDCR_STUS_CD"), text("21"));
        assert_eq!(get("BENE_DUAL_STUS_CD"), text("05"));
        assert_eq!(get("BENE_ENTLMT_BUYIN_IND"), text("E"));
        assert_eq!(get("BENE_ORGNL_ENTLMT_RSN_CD"), text("0"));
        assert_eq!(
            get("BENE_PART_A_ENRLMT_BGN_DT"),
            Cell::Date(claimline_model::parse_date("2021-01-01").expect("day"))
        );
        assert_eq!(
            get("BENE_PART_B_ENRLMT_BGN_DT"),
            Cell::Date(claimline_model::parse_date("2020-01-01").expect("day"))
        );
        assert_eq!(get("_resource_id"), text("405764107"));
    }

    /// A scan that numbers lines within chunks, shifted per batch, gives rows the same `_line`
    /// as one that counts them in the file.
    #[test]
    fn shifted_lines_match_file_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.ndjson");
        let lines: Vec<String> = (0..60)
            .map(|i| match i % 3 {
                0 => V3_PATIENT.replace("\"id\":\"3\"", &format!("\"id\":\"p{i}\"")),
                _ => V3_EOB.replace("\"id\":\"E1\"", &format!("\"id\":\"E{i}\"")),
            })
            .collect();
        std::fs::write(&path, lines.join("\n")).expect("write");
        let files = claimline_ndjson::discover(&[path]).expect("discover");
        let mut plan = Plan::new(vec![view(CLAIM_VIEW)]).expect("plan");
        plan.add_link_tables();
        let line_columns = plan.line_columns();
        let run = |lines_in_batch: bool| {
            let opts = claimline_ndjson::ScanOptions {
                chunk_bytes: 700,
                lines_in_batch,
                ..Default::default()
            };
            let mut got = Vec::new();
            claimline_ndjson::scan(
                &files,
                &opts,
                Scratch::default,
                |scratch, r| plan.evaluate(r, "run", scratch),
                |batch| {
                    for mut out in batch.items {
                        out.shift_lines(&line_columns, batch.line_offset);
                        for row in out.rows {
                            let at = line_columns[row.table].expect("_line");
                            got.push((row.table, row.cells[at].clone()));
                        }
                    }
                    Ok(())
                },
            )
            .expect("scan");
            got
        };
        let exact = run(false);
        // 40 claim rows; 20 Patients with two MBIs: two bene_xref rows and one cclf9 row each.
        assert_eq!(exact.len(), 100);
        assert_eq!(exact.last().map(|r| &r.1), Some(&Cell::Int(60)));
        assert_eq!(run(true), exact);
    }

    #[test]
    fn the_event_read_with_the_rows_is_the_event_read_alone() {
        let v2 = |id: &str, status: &str, meta: &str| {
            format!(
                r#"{{"resourceType":"ExplanationOfBenefit","id":"{id}",{meta}"status":"{status}","identifier":[{{"system":"{CLAIM_GROUP}","value":"G"}}],"patient":{{"reference":"Patient/1"}}}}"#
            )
        };
        let lines = [
            v2(
                "a",
                "active",
                r#""meta":{"lastUpdated":"2021-01-01T10:00:00Z"},"#,
            ),
            v2(
                "b",
                "cancelled",
                r#""meta":{"lastUpdated":"2021-01-02T10:00:00+02:00"},"#,
            ),
            // No lastUpdated, and one that is no instant (a row error, a NULL, no time).
            v2("c", "active", ""),
            v2("d", "active", r#""meta":{"lastUpdated":"2021-01-02"},"#),
            V3_EOB.to_owned(),
            // Left out of the CCLF table: no rows, and still an event.
            V3_PARTIAL.to_owned(),
            r#"{"resourceType":"Patient","id":"p"}"#.to_owned(),
        ];
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let plan = Plan::new(vec![view(CLAIM_VIEW)]).expect("plan");
        for mode in [VersionMode::Current, VersionMode::All] {
            let rows = |out: &ResourceOutput| -> Vec<String> {
                out.rows.iter().map(|r| format!("{:?}", r.cells)).collect()
            };
            let both = each(&lines, |r| {
                let mut scratch = Scratch::default();
                let (out, event) = plan.evaluate_with_event(r, "run", &mut scratch, mode);
                let alone = plan.evaluate(r, "run", &mut scratch);
                assert_eq!(rows(&out), rows(&alone));
                (event, claim_event(r, mode), out.rows.len())
            });
            for (event, alone, _) in &both {
                assert_eq!(event, alone);
            }
            let summary: Vec<(Option<i64>, &str, usize)> = both
                .iter()
                .map(|(e, _, rows)| {
                    e.as_ref().map_or((None, "none", *rows), |e| {
                        (e.last_updated, e.action.as_str(), *rows)
                    })
                })
                .collect();
            let cancel = if mode == VersionMode::Current {
                "cancel"
            } else {
                "version"
            };
            assert_eq!(
                summary,
                [
                    (Some(1_609_495_200_000_000), "version", 1),
                    (Some(1_609_574_400_000_000), cancel, 1),
                    (None, "version", 1),
                    (None, "version", 1),
                    (None, "version", 1),
                    (None, "version", 0),
                    (None, "none", 0),
                ]
            );
        }
    }

    /// The version rule finds the kept version of a group whose versions lie in many chunks of a
    /// scan that numbers lines within chunks (positions are byte offsets, not lines).
    #[test]
    fn versions_across_chunks_keep_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eob.ndjson");
        let lines: Vec<String> = (0..30)
            .map(|i| {
                format!(
                    r#"{{"resourceType":"ExplanationOfBenefit","id":"e{i}","meta":{{"lastUpdated":"2020-01-01T00:00:00Z"}},"status":"active","identifier":[{{"system":"{CLAIM_GROUP}","value":"G"}}],"type":{{"coding":[{{"system":"https://bluebutton.cms.gov/resources/codesystem/eob-type","code":"CARRIER"}}]}},"patient":{{"reference":"Patient/1"}}}}"#
                )
            })
            .collect();
        std::fs::write(&path, lines.join("\n")).expect("write");
        let files = claimline_ndjson::discover(&[path]).expect("discover");
        let opts = claimline_ndjson::ScanOptions {
            chunk_bytes: 500,
            lines_in_batch: true,
            ..Default::default()
        };
        let (events, _) =
            claimline_ndjson::scan_collect(&files, &opts, |r| claim_event(r, VersionMode::Current))
                .expect("scan");
        let versions =
            RunVersions::new(VersionMode::Current, events.into_iter().flatten().collect());
        let kept: Vec<&str> = versions
            .kept()
            .filter(|&(_, keep)| keep)
            .map(|(e, _)| e.resource_id.as_str())
            .collect();
        // Equal lastUpdated: the later line wins.
        assert_eq!(kept, vec!["e29"]);
    }

    #[test]
    fn cclf8_input_views_are_checked() {
        let patient = |columns: &str| {
            view(&format!(
                r#"{{"resourceType":"ViewDefinition","name":"cclf8_patient","resource":"Patient","select":[{{"column":[{columns}]}}]}}"#
            ))
        };
        let key = r#"{"name":"BENE_ID","path":"getResourceKey()","type":"string","tag":[{"name":"claimline/link","value":"bene-id"}]}"#;
        let err = Plan::new(vec![patient(key)])
            .err()
            .expect("no CCLF8 column");
        assert!(err.to_string().contains("cclf/field"), "{err}");
        let field = |name: &str, ty: &str, position: &str| {
            format!(
                r#"{{"name":"{name}","path":"{{}}","type":"{ty}","description":"d {name}","tag":[{{"name":"cclf/field","value":"CCLF8.{name}"}},{{"name":"cclf/position","value":"{position}"}}]}}"#
            )
        };
        // The table's columns: the tagged ones, in CCLF order, with the view's types and
        // descriptions; the helper columns (BENE_ID) are not in it.
        let columns = format!(
            "{key},{},{},{}",
            field("BENE_DOB", "date", "6"),
            field("BENE_MBI_ID", "string", "1"),
            r#"{"name":"HELPER","path":"id","type":"string","tag":[{"name":"cclf/field","value":"CCLF8.HELPER"}]}"#
        );
        let plan = Plan::new(vec![patient(&columns)]).expect("plan");
        assert_eq!(plan.cclf8_table(), Some(0));
        let t = &plan.tables()[0];
        assert_eq!(t.name, "cclf8");
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names[..3], ["BENE_MBI_ID", "BENE_DOB", "HELPER"]);
        assert!(names[3..].iter().all(|n| n.starts_with('_')), "{names:?}");
        assert_eq!(t.columns[1].ty, ColumnType::Date);
        assert_eq!(t.columns[1].description.as_deref(), Some("d BENE_DOB"));
        let no_key = r#"{"name":"BENE_DOB","path":"birthDate","type":"date"}"#;
        let err = Plan::new(vec![patient(no_key)]).err().expect("no key");
        assert!(err.to_string().contains("bene-id"), "{err}");
        // Two input views may not disagree on a column's type.
        let coverage_dob = format!(
            r#"{{"resourceType":"ViewDefinition","name":"cclf8_coverage","resource":"Coverage","select":[{{"column":[{key},{}]}}]}}"#,
            field("BENE_DOB", "string", "6")
        );
        let err = Plan::new(vec![patient(&columns), view(&coverage_dob)])
            .err()
            .expect("type");
        assert!(err.to_string().contains("BENE_DOB"), "{err}");
        let own = r#"{"resourceType":"ViewDefinition","name":"cclf8","resource":"Patient","select":[{"column":[{"name":"x","path":"id","type":"string"}]}]}"#;
        let err = Plan::new(vec![view(own), patient(&columns)])
            .err()
            .expect("two cclf8s");
        assert!(
            err.to_string().contains("builds table cclf8 itself"),
            "{err}"
        );
        let coverage = r#"{"resourceType":"ViewDefinition","name":"cclf8_coverage","resource":"Patient","select":[{"column":[{"name":"BENE_ID","path":"id","type":"string"}]}]}"#;
        let err = Plan::new(vec![view(coverage)]).err().expect("resource");
        assert!(err.to_string().contains("not Coverage"), "{err}");
    }

    #[test]
    fn instants_need_a_time() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_instant("IGNORED_FIELD"), None);
        assert_eq!(parse_instant("2020-01-01"), None);
    }
}
