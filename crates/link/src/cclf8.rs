//! CCLF8, beneficiary demographics and entitlement: one row per beneficiary, joined in the link
//! stage from the rows of two ViewDefinitions: `cclf8_patient` (one row per Patient) and
//! `cclf8_coverage` (one row per Coverage: Part A, B, C, D; v3 also `dual-`). The views (in
//! `mappings/cclf/<version>/`) say where each value sits; this module holds only what no
//! single-resource view can do: the join, the precedence between Coverage resources, the
//! monthly fields, and the values computed from others.
//!
//! The contract with the views: each has a column tagged `claimline/link` = `bene-id` holding the
//! beneficiary id (the join key); a column named like a CCLF8 column fills it (with the same
//! type); a Coverage column `X_01` … `X_12` gives the monthly values of CCLF8 column `X`;
//! `COVERAGE_PLAN`, `COVERAGE_STATUS` and `RFRNC_YR` give the precedence.
//!
//! Choices (also in each column's description):
//! - A row is written only for a beneficiary whose Patient is in the run; Coverage without its
//!   Patient is not enough for a row (it would replace the demographics an earlier run loaded with
//!   NULLs) and is counted ([`Cclf8Builder::coverage_only`]).
//! - A Patient column wins; else, per field, Part A Coverage first, then Part B, D, C, other
//!   (v3's dual); an `active` Coverage before a `cancelled` one; the latest `RFRNC_YR` first.
//! - Monthly fields (v1/v2 `dual_01`…`dual_12`, `buyin01`…`buyin12`) take the most recent month
//!   present; v3 has one value per field (the `dual-` Coverage's `BENE-DUAL-STUS-CD`, the Part
//!   A/B `BENE-BUYIN-CD`).
//! - `BENE_AGE`: whole years from `BENE_DOB` to the export's `transactionTime` (the manifest's),
//!   else to the run's start; to `BENE_DEATH_DT` when the beneficiary died before.
//! - `BENE_FIPS_STATE_CD` from `GEO_USPS_STATE_CD` (USPS to FIPS; a FIPS code is kept as is).

use foldhash::HashMap;

use std::sync::Arc;

use claimline_model::{Cell, Column, TableSchema};
use claimline_ndjson::ApiVersion;

/// The tag naming the CCLF field a column of an input view holds (`CCLF8.BENE_DOB`): such a
/// column is a column of `cclf8`.
pub const FIELD_TAG: &str = "cclf/field";
/// The tag giving a CCLF8 column's position in CCLF's layout (1-based): the order of the
/// columns of `cclf8`. Columns without it follow, in the order the views declare them.
pub const POSITION_TAG: &str = "cclf/position";

/// One column of an input view that `cclf8` holds: its type and description come from the view.
pub(crate) struct Cclf8Column {
    pub column: Column,
    pub position: Option<u32>,
    /// The view's file and name.
    pub file: String,
    pub view: String,
}

/// The columns of an input view's schema that are CCLF8 fields (tagged [`FIELD_TAG`] with a
/// `CCLF8.` value), as `cclf8` holds them.
pub(crate) fn cclf8_columns(
    view: &claimline_view::ViewDefinition,
    declared: &[Column],
) -> Vec<Cclf8Column> {
    view.schema()
        .columns
        .iter()
        .zip(declared)
        .filter(|(c, _)| {
            c.tags
                .iter()
                .any(|(n, v)| n == FIELD_TAG && v.starts_with("CCLF8."))
        })
        .map(|(c, d)| Cclf8Column {
            column: d.clone(),
            position: c
                .tags
                .iter()
                .find(|(n, _)| n == POSITION_TAG)
                .and_then(|(_, v)| v.parse().ok()),
            file: view.file().to_owned(),
            view: view.name().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// The CCLF8 table from the columns its input views declare (Patient views first): one column
/// per name, ordered by [`POSITION_TAG`], then the non-claim lineage of the beneficiary's
/// Patient. Two views declaring a column with different types is an error.
pub(crate) fn cclf8_schema(
    first: &claimline_view::ViewDefinition,
    inputs: Vec<Cclf8Column>,
) -> Result<TableSchema, crate::Error> {
    let mut columns: Vec<Cclf8Column> = Vec::new();
    for c in inputs {
        match columns.iter().find(|k| k.column.name == c.column.name) {
            Some(k) if k.column.ty != c.column.ty => {
                return Err(crate::Error::Cclf8Input {
                    reason: format!(
                        "declares column {} as {:?}; {} declares it as {:?}",
                        c.column.name, c.column.ty, k.file, k.column.ty
                    ),
                    file: c.file,
                    view: c.view,
                });
            }
            Some(_) => {}
            None => columns.push(c),
        }
    }
    if columns.is_empty() {
        return Err(crate::Error::Cclf8Input {
            file: first.file().to_owned(),
            view: first.name().unwrap_or_default().to_owned(),
            reason: format!(
                "no input view of CCLF8 declares a column tagged {FIELD_TAG} = CCLF8.<field>"
            ),
        });
    }
    // A stable sort: columns without a position keep their declaration order, after the rest.
    columns.sort_by_key(|c| c.position.unwrap_or(u32::MAX));
    let mut columns: Vec<Column> = columns.into_iter().map(|c| c.column).collect();
    columns.extend(crate::xref::lineage_columns());
    Ok(TableSchema {
        replace_key: vec!["_api_version".into(), "_resource_id".into()],
        newest_wins: true,
        indexes: vec!["_resource_id".into(), "BENE_MBI_ID".into()],
        ..TableSchema::new(CCLF8_TABLE, columns)
    })
}

/// The table CCLF8's input views fill.
pub const CCLF8_TABLE: &str = "cclf8";
/// The view name whose rows (one per Patient) give CCLF8 its demographics.
pub const CCLF8_PATIENT: &str = "cclf8_patient";
/// The view name whose rows (one per Coverage) give CCLF8 its entitlement fields.
pub const CCLF8_COVERAGE: &str = "cclf8_coverage";
/// The tag value (`claimline/link`) of the column that holds the beneficiary id both CCLF8 input
/// views are joined on.
pub const BENE_ID_LINK: &str = "bene-id";

/// Which half of CCLF8 a view gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cclf8Input {
    /// `cclf8_patient`: one row per Patient.
    Patient,
    /// `cclf8_coverage`: one row per Coverage.
    Coverage,
}

impl Cclf8Input {
    /// The input a view of this name gives, if any.
    pub fn of_view(name: &str) -> Option<Self> {
        match name {
            CCLF8_PATIENT => Some(Self::Patient),
            CCLF8_COVERAGE => Some(Self::Coverage),
            _ => None,
        }
    }

    /// The resource type the view must read.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Coverage => "Coverage",
        }
    }
}

/// Named cells of one input row.
pub type Fields = Vec<(Arc<str>, Cell)>;

/// One input row as a view gives it: the view's column names (shared by all its rows) and the
/// row's cells, in the same order. A row's names are not cloned one by one: that was an atomic
/// count on the same few names for every field of every row, from every worker.
#[derive(Debug, Clone)]
pub struct PartFields {
    /// The column names, one per cell (a view's: its declared columns).
    pub names: Arc<[Arc<str>]>,
    /// The row's cells, one per name.
    pub cells: Vec<Cell>,
}

impl From<Fields> for PartFields {
    fn from(fields: Fields) -> Self {
        let (names, cells): (Vec<Arc<str>>, Vec<Cell>) = fields.into_iter().unzip();
        PartFields {
            names: names.into(),
            cells,
        }
    }
}

impl PartFields {
    /// The fields without their null values, in as little room as they take: what the builder
    /// holds of a Patient (or an earlier row's carried columns) until its row is made, for
    /// every beneficiary of the run. The same rows result: every reading of the fields
    /// ([`field`], [`resolve`]) passes over a null as over a field not given.
    fn without_nulls(self) -> Fields {
        let mut out: Fields = Vec::with_capacity(
            self.cells
                .iter()
                .filter(|c| !matches!(c, Cell::Null))
                .count(),
        );
        for (name, cell) in self.names.iter().zip(self.cells) {
            if !matches!(cell, Cell::Null) {
                out.push((name.clone(), cell));
            }
        }
        out
    }
}

/// Named cells, however they are held: a [`Fields`] or a [`PartFields`].
trait Named {
    /// Each field's name and cell, in order.
    fn pairs(&self) -> impl Iterator<Item = (&str, &Cell)>;
}

impl Named for Fields {
    fn pairs(&self) -> impl Iterator<Item = (&str, &Cell)> {
        self.iter().map(|(n, c)| (&**n, c))
    }
}

impl Named for PartFields {
    fn pairs(&self) -> impl Iterator<Item = (&str, &Cell)> {
        self.names.iter().map(|n| &**n).zip(&self.cells)
    }
}

/// What one row of a CCLF8 input view gives.
#[derive(Debug, Clone)]
pub enum BenePart {
    /// A `cclf8_patient` row and the Patient's lineage.
    Patient {
        /// API version.
        api_version: Option<ApiVersion>,
        /// Beneficiary id.
        bene: String,
        /// Column name → value.
        fields: PartFields,
        /// The Patient's lineage cells.
        lineage: Vec<Cell>,
    },
    /// A `cclf8_coverage` row.
    Coverage {
        /// API version.
        api_version: Option<ApiVersion>,
        /// Beneficiary id.
        bene: String,
        /// Column name → value.
        fields: PartFields,
    },
}

fn field<'a>(fields: &'a impl Named, name: &str) -> Option<&'a Cell> {
    fields
        .pairs()
        .find(|(n, c)| *n == name && !matches!(c, Cell::Null))
        .map(|(_, c)| c)
}

fn text_of<'a>(fields: &'a impl Named, name: &str) -> Option<&'a str> {
    match field(fields, name) {
        Some(Cell::Text(s)) => Some(s),
        _ => None,
    }
}

/// Precedence of a Coverage row, lower first: active before cancelled; Part A, B, D, C, then
/// any other plan (v3's dual); the latest reference year first.
fn rank(fields: &impl Named) -> (u8, u8, std::cmp::Reverse<String>) {
    let cancelled = u8::from(text_of(fields, "COVERAGE_STATUS") == Some("cancelled"));
    let plan = match text_of(fields, "COVERAGE_PLAN") {
        Some("Part A") => 0,
        Some("Part B") => 1,
        Some("Part D") => 2,
        Some("Part C") => 3,
        _ => 4,
    };
    let year = text_of(fields, "RFRNC_YR").unwrap_or("").to_owned();
    (cancelled, plan, std::cmp::Reverse(year))
}

/// Where a field's value may go: per field name, the CCLF8 columns it fills and its rank
/// there, lower first: 0 for the column itself, then the column's monthly columns from
/// `name_12` down to `name_01` (a Coverage row gives a column its own value, else its most
/// recent month's).
type Slots = HashMap<String, Vec<(usize, u8)>>;

fn slots(columns: &[Arc<str>]) -> Slots {
    let mut slots = Slots::default();
    for (c, name) in columns.iter().enumerate() {
        slots.entry(name.to_string()).or_default().push((c, 0));
        for m in (1..=12u8).rev() {
            slots
                .entry(format!("{name}_{m:02}"))
                .or_default()
                .push((c, 13 - m));
        }
    }
    slots
}

/// Per column, the best-ranked value `fields` hold for it with that rank (the first of equals:
/// a name given twice keeps its first value that is not null). One pass over the fields, one
/// lookup each, however many columns and months there are.
fn resolve<'f>(fields: &'f impl Named, slots: &Slots, width: usize) -> Vec<Option<(u8, &'f Cell)>> {
    let mut best = vec![None; width];
    for (name, cell) in fields.pairs() {
        if matches!(cell, Cell::Null) {
            continue;
        }
        for &(c, rank) in slots.get(name).into_iter().flatten() {
            if best[c].is_none_or(|(r, _)| rank < r) {
                best[c] = Some((rank, cell));
            }
        }
    }
    best
}

type Bene = (Option<ApiVersion>, String);
/// A Patient part: arrival, fields, lineage.
type PatientPart = (usize, Fields, Vec<Cell>);
/// Where a Coverage row comes in the precedence ([`rank`]), then its arrival: lower first.
type RowKey = ((u8, u8, std::cmp::Reverse<String>), usize);

/// A beneficiary's Coverage rows folded as they arrive: per column, the value of the first row
/// in precedence that gives the column one (the value [`resolve`] finds in that row), which is
/// what the rows' join takes; the rows themselves are not held (28 a beneficiary over seven
/// years in the generated exports, most of the builder's memory).
#[derive(Default)]
struct CoverageFold {
    /// (column, its row's place in `rows`, value), a column once.
    values: Vec<(u32, u32, Cell)>,
    /// The keys of the rows some value comes from.
    rows: Vec<RowKey>,
}

impl CoverageFold {
    /// Folds in a row of key `key` whose values by column are `resolved`.
    fn add(&mut self, key: RowKey, resolved: &[Option<(u8, &Cell)>]) {
        let mut at: Option<u32> = None;
        let mut replaced = false;
        for (c, v) in resolved.iter().enumerate() {
            let Some((_, cell)) = v else { continue };
            let c = c as u32;
            let held = self.values.iter().position(|(col, _, _)| *col == c);
            if held.is_some_and(|i| self.rows[self.values[i].1 as usize] <= key) {
                continue;
            }
            let row = *at.get_or_insert_with(|| {
                self.rows.push(key.clone());
                (self.rows.len() - 1) as u32
            });
            match held {
                Some(i) => {
                    self.values[i] = (c, row, (*cell).clone());
                    replaced = true;
                }
                None => self.values.push((c, row, (*cell).clone())),
            }
        }
        // Keys no value comes from any more go (only a value replaced can leave its row's key
        // without one).
        if replaced {
            let mut used = vec![false; self.rows.len()];
            for (_, r, _) in &self.values {
                used[*r as usize] = true;
            }
            let mut new_place = vec![0u32; self.rows.len()];
            let mut kept = 0u32;
            for (i, u) in used.iter().enumerate() {
                new_place[i] = kept;
                kept += u32::from(*u);
            }
            let mut i = 0;
            self.rows.retain(|_| {
                i += 1;
                used[i - 1]
            });
            for (_, r, _) in &mut self.values {
                *r = new_place[*r as usize];
            }
        }
    }

    /// Per column, the folded value.
    fn resolved(&self, width: usize) -> Vec<Option<&Cell>> {
        let mut out = vec![None; width];
        for (c, _, cell) in &self.values {
            if let Some(slot) = out.get_mut(*c as usize) {
                *slot = Some(cell);
            }
        }
        out
    }
}

/// Joins `cclf8_patient` and `cclf8_coverage` rows by beneficiary into CCLF8 rows (get one
/// from [`Plan::cclf8_builder`](crate::Plan::cclf8_builder): it knows the table's columns).
#[derive(Default)]
pub struct Cclf8Builder {
    /// The columns of `cclf8` before its lineage.
    columns: Vec<Arc<str>>,
    patients: HashMap<Bene, PatientPart>,
    coverage: HashMap<Bene, CoverageFold>,
    /// Where each field's value may go ([`slots`] of `columns`).
    slots: Slots,
    /// Per beneficiary, the Coverage columns of its earlier `cclf8` row ([`Cclf8Builder::carry`]).
    carried: HashMap<Bene, Fields>,
    seen: usize,
}

impl Cclf8Builder {
    /// A builder of rows with these columns (then the Patient's lineage).
    pub fn new(columns: Vec<Arc<str>>) -> Self {
        Self {
            slots: slots(&columns),
            columns,
            ..Self::default()
        }
    }

    /// Adds one part, in input order. A Patient of a beneficiary held already replaces the one
    /// held unless that one has the later `meta.lastUpdated`: the copy kept is the newest, then
    /// the last in the input, as for `bene_xref` and `cclf9` (and as across runs).
    pub fn add(&mut self, part: BenePart) {
        self.seen += 1;
        match part {
            BenePart::Patient {
                api_version,
                bene,
                fields,
                lineage,
            } => {
                let fields = fields.without_nulls();
                let last_updated = |lineage: &[Cell]| match lineage.get(crate::LINEAGE_LAST_UPDATED)
                {
                    Some(Cell::Timestamp(us)) => Some(*us),
                    _ => None,
                };
                let key = (api_version, bene);
                let held_newer = self
                    .patients
                    .get(&key)
                    .is_some_and(|(_, _, held)| last_updated(held) > last_updated(&lineage));
                if !held_newer {
                    self.patients.insert(key, (self.seen, fields, lineage));
                }
            }
            BenePart::Coverage {
                api_version,
                bene,
                fields,
            } => {
                let resolved = resolve(&fields, &self.slots, self.columns.len());
                self.coverage
                    .entry((api_version, bene))
                    .or_default()
                    .add((rank(&fields), self.seen), &resolved);
            }
        }
    }

    /// Beneficiaries with Coverage but no Patient in the run (no CCLF8 row).
    pub fn coverage_only(&self) -> u64 {
        self.coverage
            .keys()
            .filter(|k| !self.patients.contains_key(*k))
            .count() as u64
    }

    /// Beneficiaries with a Patient but no Coverage in the run: their CCLF8 row's Coverage
    /// columns (entitlement, status, dual, buy-in) are NULL unless [`Cclf8Builder::carry`]
    /// gives them an earlier row's. Only when a view of Coverage feeds CCLF8.
    pub fn patient_only(&self) -> u64 {
        self.patients
            .keys()
            .filter(|k| !self.coverage.contains_key(*k))
            .count() as u64
    }

    /// The beneficiaries with a Patient but no Coverage in the run, in no order.
    pub fn patients_without_coverage(&self) -> Vec<(Option<ApiVersion>, String)> {
        self.patients
            .keys()
            .filter(|k| !self.coverage.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The beneficiaries with a Patient in the run, in no order.
    pub fn patients_in_run(&self) -> Vec<(Option<ApiVersion>, String)> {
        self.patients.keys().cloned().collect()
    }

    /// Gives a beneficiary of the run the Coverage columns of its earlier `cclf8` row (`fields`:
    /// column name → value, the values of
    /// [`Plan::cclf8_coverage_columns`](crate::Plan::cclf8_coverage_columns)): a column that no
    /// Coverage of the run fills takes its value from them (an incremental export brings only
    /// the Coverage that changed). `false` for a beneficiary without a Patient in the run.
    pub fn carry(&mut self, api_version: Option<ApiVersion>, bene: String, fields: Fields) -> bool {
        let key = (api_version, bene);
        if !self.patients.contains_key(&key) {
            return false;
        }
        self.carried
            .insert(key, PartFields::from(fields).without_nulls());
        true
    }

    /// The rows, in the order the Patients came; `as_of` is the day (days since the epoch)
    /// `BENE_AGE` is computed at.
    pub fn rows(self, as_of: i32) -> Vec<Vec<Cell>> {
        self.rows_and_carried(as_of).0
    }

    /// [`Cclf8Builder::rows`], and how many of them took a column from what
    /// [`Cclf8Builder::carry`] gave.
    pub fn rows_and_carried(self, as_of: i32) -> (Vec<Vec<Cell>>, u64) {
        let mut out = Vec::new();
        let used = self
            .rows_in_chunks(as_of, usize::MAX, |rows| {
                out.extend(rows);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|never| match never {});
        (out, used)
    }

    /// [`Cclf8Builder::rows_and_carried`] handed to `emit` `chunk` rows at a time (the last
    /// chunk shorter), each beneficiary's state dropped as its row is made: the rows of every
    /// beneficiary are never all held at once (about 2 KB a row, where the builder holds about
    /// 1.3 KB a beneficiary). Returns how many rows took a column from what
    /// [`Cclf8Builder::carry`] gave, or `emit`'s first error (no row is made after it).
    ///
    /// # Errors
    /// `emit`'s.
    pub fn rows_in_chunks<E>(
        mut self,
        as_of: i32,
        chunk: usize,
        mut emit: impl FnMut(Vec<Vec<Cell>>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let chunk = chunk.max(1);
        let mut used = 0u64;
        let mut patients: Vec<(Bene, PatientPart)> = self.patients.drain().collect();
        patients.sort_by_key(|(_, (seen, _, _))| *seen);
        let slots = std::mem::take(&mut self.slots);
        let width = self.columns.len();
        let mut out = Vec::with_capacity(patients.len().min(chunk));
        for (key, (_, fields, lineage)) in patients {
            let coverage = self.coverage.remove(&key).unwrap_or_default();
            // The Patient's own value of a column, else the first Coverage row's (in rank
            // order) that has one.
            let own = resolve(&fields, &slots, width);
            let folded = coverage.resolved(width);
            // The earlier row's, for a column no Coverage of the run fills: last.
            let carried = self.carried.remove(&key);
            let earlier = carried.as_ref().map(|f| resolve(f, &slots, width));
            let mut took = false;
            let mut cells: Vec<Cell> = (0..width)
                .map(|c| {
                    own[c]
                        .filter(|(rank, _)| *rank == 0)
                        .map(|(_, cell)| cell)
                        .or(folded[c])
                        .or_else(|| {
                            let v = earlier.as_ref().and_then(|e| e[c]).map(|(_, cell)| cell);
                            took |= v.is_some();
                            v
                        })
                        .map_or(Cell::Null, Cell::clone)
                })
                .collect();
            used += u64::from(took);
            let at = |name: &str| self.columns.iter().position(|n| &**n == name);
            if let (Some(a), Some(Cell::Date(dob))) =
                (at("BENE_AGE"), at("BENE_DOB").map(|i| &cells[i]))
                && matches!(cells[a], Cell::Null)
            {
                let end = match at("BENE_DEATH_DT").map(|i| &cells[i]) {
                    Some(Cell::Date(d)) if *d < as_of => *d,
                    _ => as_of,
                };
                if let Some(age) = age(*dob, end) {
                    cells[a] = Cell::text(format!("{age:03}"));
                }
            }
            // BFD's `address.state` is CCW's state code, an SSA code (`22`, Massachusetts) in
            // BCDA's data; a USPS abbreviation in some samples. CCLF's column is the USPS one.
            if let Some(u) = at("GEO_USPS_STATE_CD")
                && let Cell::Text(state) = &cells[u]
                && let Some(usps) = usps_of_ssa(state)
            {
                cells[u] = Cell::text(usps);
            }
            if let (Some(f), Some(Cell::Text(state))) = (
                at("BENE_FIPS_STATE_CD"),
                at("GEO_USPS_STATE_CD").map(|i| &cells[i]),
            ) && matches!(cells[f], Cell::Null)
            {
                cells[f] = fips_state(state).map_or(Cell::Null, Cell::text);
            }
            cells.extend(lineage);
            out.push(cells);
            if out.len() == chunk {
                emit(std::mem::replace(&mut out, Vec::with_capacity(chunk)))?;
            }
        }
        if !out.is_empty() {
            emit(out)?;
        }
        Ok(used)
    }
}

/// The day (days since the epoch) a run's `BENE_AGE` is computed at: the export's
/// `transactionTime` (its manifest's: the date it gives, in its own offset), else `now_micros`
/// (microseconds since the epoch: the run's start).
///
/// ```
/// use claimline_link::bene_age_day;
/// let day = bene_age_day(Some("2024-03-01T23:30:00.000-05:00"), 0);
/// assert_eq!(day, 19_783); // 2024-03-01
/// assert_eq!(bene_age_day(None, 86_400_000_000 * 3 + 1), 3);
/// ```
pub fn bene_age_day(transaction_time: Option<&str>, now_micros: i64) -> i32 {
    transaction_time
        .and_then(|t| t.get(..10))
        .and_then(claimline_model::parse_date)
        .unwrap_or_else(|| now_micros.div_euclid(86_400_000_000) as i32)
}

/// Whole years from `dob` to `day` (days since the epoch); `None` before birth.
fn age(dob: i32, day: i32) -> Option<u32> {
    let (y0, m0, d0) = crate::civil(dob);
    let (y1, m1, d1) = crate::civil(day);
    let years = y1 - y0 - i64::from((m1, d1) < (m0, d0));
    u32::try_from(years).ok()
}

/// The USPS abbreviation of an SSA state code, CCW's `STATE_CD` (01–53 the states, DC, Puerto
/// Rico and the Virgin Islands in SSA's alphabetical order; 97 Saipan, 98 Guam, 99 American
/// Samoa); `None` for any other text (54–63 are regions abroad, with no state). Changed in the
/// thirty-first round: the code was taken for a FIPS code, which it equals for none but a few
/// (`22`, Massachusetts, was Louisiana's FIPS code).
fn usps_of_ssa(code: &str) -> Option<&'static str> {
    const SSA: [&str; 53] = [
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
        "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
        "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX",
        "UT", "VT", "VI", "VA", "WA", "WV", "WI", "WY",
    ];
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match code.parse::<usize>().ok()? {
        n @ 1..=53 => Some(SSA[n - 1]),
        97 => Some("MP"),
        98 => Some("GU"),
        99 => Some("AS"),
        _ => None,
    }
}

/// FIPS state code of a USPS state abbreviation.
fn fips_state(usps: &str) -> Option<&'static str> {
    const FIPS: [(&str, &str); 56] = [
        ("AL", "01"),
        ("AK", "02"),
        ("AZ", "04"),
        ("AR", "05"),
        ("CA", "06"),
        ("CO", "08"),
        ("CT", "09"),
        ("DE", "10"),
        ("DC", "11"),
        ("FL", "12"),
        ("GA", "13"),
        ("HI", "15"),
        ("ID", "16"),
        ("IL", "17"),
        ("IN", "18"),
        ("IA", "19"),
        ("KS", "20"),
        ("KY", "21"),
        ("LA", "22"),
        ("ME", "23"),
        ("MD", "24"),
        ("MA", "25"),
        ("MI", "26"),
        ("MN", "27"),
        ("MS", "28"),
        ("MO", "29"),
        ("MT", "30"),
        ("NE", "31"),
        ("NV", "32"),
        ("NH", "33"),
        ("NJ", "34"),
        ("NM", "35"),
        ("NY", "36"),
        ("NC", "37"),
        ("ND", "38"),
        ("OH", "39"),
        ("OK", "40"),
        ("OR", "41"),
        ("PA", "42"),
        ("RI", "44"),
        ("SC", "45"),
        ("SD", "46"),
        ("TN", "47"),
        ("TX", "48"),
        ("UT", "49"),
        ("VT", "50"),
        ("VA", "51"),
        ("WA", "53"),
        ("WV", "54"),
        ("WI", "55"),
        ("WY", "56"),
        ("AS", "60"),
        ("GU", "66"),
        ("MP", "69"),
        ("PR", "72"),
        ("VI", "78"),
    ];
    FIPS.iter().find(|(s, _)| *s == usps).map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_fips() {
        let day = |s: &str| claimline_model::parse_date(s).expect("date");
        assert_eq!(age(day("1959-03-14"), day("2026-03-13")), Some(66));
        assert_eq!(age(day("1959-03-14"), day("2026-03-14")), Some(67));
        assert_eq!(age(day("2030-01-01"), day("2026-01-01")), None);
        assert_eq!(fips_state("TX"), Some("48"));
        assert_eq!(fips_state("XX"), None);
        assert_eq!(fips_state("22"), None);
        // SSA codes, as BCDA's data has them: the USPS abbreviation, then its FIPS code.
        for (ssa, usps, fips) in [
            ("01", "AL", "01"),
            ("03", "AZ", "04"),
            ("10", "FL", "12"),
            ("22", "MA", "25"),
            ("40", "PR", "72"),
            ("48", "VI", "78"),
            ("53", "WY", "56"),
            ("98", "GU", "66"),
        ] {
            assert_eq!(usps_of_ssa(ssa), Some(usps));
            assert_eq!(fips_state(usps), Some(fips));
        }
        for other in ["00", "54", "63", "TX", "1", "123"] {
            assert_eq!(usps_of_ssa(other), None, "{other}");
        }
    }

    #[test]
    fn a_column_takes_the_patients_value_else_the_first_coverage_rows_own_or_latest_month() {
        let columns: Vec<Arc<str>> = ["BENE_SEX_CD", "STUS", "STUS_01", "DUAL"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let mut b = Cclf8Builder::new(columns);
        let fields = |list: &[(&str, Cell)]| -> Fields {
            list.iter()
                .map(|(n, c)| (Arc::from(*n), c.clone()))
                .collect()
        };
        let t = Cell::text;
        b.add(BenePart::Patient {
            api_version: None,
            bene: "b1".into(),
            // A month of a column is not the Patient's value of it.
            fields: fields(&[("BENE_SEX_CD", t("1")), ("DUAL_03", t("p"))]).into(),
            lineage: vec![t("lineage")],
        });
        // Ranked first (Part A): its own STUS is null and its months run to _11, its
        // STUS_01 is given twice (the first value that is not null counts).
        b.add(BenePart::Coverage {
            api_version: None,
            bene: "b1".into(),
            fields: fields(&[
                ("COVERAGE_PLAN", t("Part A")),
                ("STUS", Cell::Null),
                ("STUS_01", Cell::Null),
                ("STUS_01", t("jan")),
                ("STUS_02", t("feb")),
                ("STUS_11", t("nov")),
                ("STUS_01", t("later")),
                ("BENE_SEX_CD", t("2")),
                // A month before the column itself: the column's own value still wins.
                ("DUAL_12", t("a-dec")),
                ("DUAL", t("a-own")),
            ])
            .into(),
        });
        // Ranked second (Part B): a DUAL and a STUS of its own, which the first row's come
        // before.
        b.add(BenePart::Coverage {
            api_version: None,
            bene: "b1".into(),
            fields: fields(&[
                ("COVERAGE_PLAN", t("Part B")),
                ("STUS", t("own")),
                ("DUAL_12", t("dec")),
                ("DUAL_05", t("may")),
            ])
            .into(),
        });
        let rows = b.rows(0);
        assert_eq!(
            rows,
            vec![vec![
                t("1"),
                t("nov"),
                // STUS_01 is a column of its own (rank 0 there) and STUS's January.
                t("jan"),
                t("a-own"),
                t("lineage"),
            ]]
        );
    }

    /// A part's null fields are not held (most of a Coverage row's months are null, and every
    /// beneficiary's parts wait for the rows): the rows are those of the same parts without
    /// them.
    #[test]
    fn null_fields_are_not_held_and_change_no_row() {
        let columns: Vec<Arc<str>> = ["BENE_SEX_CD", "STUS", "DUAL"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let t = Cell::text;
        let parts = |nulls: bool| {
            let mut coverage: Fields = vec![(Arc::from("COVERAGE_PLAN"), t("Part A"))];
            for m in 1..=12 {
                if nulls || m == 7 {
                    let v = if m == 7 { t("jul") } else { Cell::Null };
                    coverage.push((Arc::from(format!("STUS_{m:02}").as_str()), v));
                }
            }
            if nulls {
                coverage.push((Arc::from("DUAL"), Cell::Null));
            }
            let mut patient: Fields = vec![(Arc::from("BENE_SEX_CD"), t("1"))];
            if nulls {
                patient.push((Arc::from("STUS"), Cell::Null));
            }
            [
                BenePart::Patient {
                    api_version: None,
                    bene: "b1".into(),
                    fields: patient.into(),
                    lineage: vec![t("lineage")],
                },
                BenePart::Coverage {
                    api_version: None,
                    bene: "b1".into(),
                    fields: coverage.into(),
                },
            ]
        };
        let build = |nulls: bool| {
            let mut b = Cclf8Builder::new(columns.clone());
            for part in parts(nulls) {
                b.add(part);
            }
            b
        };
        let held = build(true);
        let patients: Vec<&Fields> = held.patients.values().map(|(_, f, _)| f).collect();
        assert_eq!(patients.iter().map(|f| f.len()).sum::<usize>(), 1);
        assert!(patients.iter().all(|f| f.capacity() == f.len()));
        // The Coverage row folds to its one value (STUS from its July).
        let folded: Vec<usize> = held.coverage.values().map(|f| f.values.len()).collect();
        assert_eq!(folded, [1]);
        assert_eq!(held.rows(0), build(false).rows(0));
        assert_eq!(
            build(true).rows(0),
            vec![vec![t("1"), t("jul"), Cell::Null, t("lineage")]]
        );
    }

    /// Coverage rows folded as they arrive give the values the rows sorted by precedence give
    /// (the first row in order that has a value for a column): many beneficiaries, rows of
    /// every plan, status and year in any order, fields given or null at random, months and a
    /// column's own value.
    #[test]
    fn coverage_folded_as_it_arrives_is_the_join_of_the_rows_sorted() {
        let columns: Vec<Arc<str>> = ["STUS", "DUAL", "BUYIN", "OTHER"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let names = [
            "STUS", "STUS_01", "STUS_06", "STUS_12", "DUAL", "DUAL_03", "BUYIN_11", "OTHER",
        ];
        let plans = ["Part A", "Part B", "Part C", "Part D", "dual"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let t = Cell::text;
        for bene in 0..300 {
            let mut rows: Vec<Fields> = Vec::new();
            for _ in 0..next(30) {
                let mut f: Fields = vec![
                    (Arc::from("COVERAGE_PLAN"), t(plans[next(5) as usize])),
                    (
                        Arc::from("COVERAGE_STATUS"),
                        t(if next(4) == 0 { "cancelled" } else { "active" }),
                    ),
                    (
                        Arc::from("RFRNC_YR"),
                        Cell::text(format!("{}", 2018 + next(7))),
                    ),
                ];
                for name in names {
                    match next(3) {
                        0 => {}
                        1 => f.push((Arc::from(name), Cell::Null)),
                        _ => f.push((
                            Arc::from(name),
                            Cell::text(format!("{name}-{}", next(1000))),
                        )),
                    }
                }
                rows.push(f);
            }
            // The join as it was: every row held, sorted by precedence, the first with a value.
            let slots = slots(&columns);
            let mut sorted: Vec<(usize, &Fields)> = rows.iter().enumerate().collect();
            sorted.sort_by_cached_key(|(seen, fields)| (rank(*fields), *seen));
            let parts: Vec<_> = sorted
                .iter()
                .map(|(_, f)| resolve(*f, &slots, columns.len()))
                .collect();
            let want: Vec<Cell> = (0..columns.len())
                .map(|c| {
                    parts
                        .iter()
                        .find_map(|p| p[c])
                        .map_or(Cell::Null, |(_, cell)| cell.clone())
                })
                .chain([t("lineage")])
                .collect();
            let mut b = Cclf8Builder::new(columns.clone());
            b.add(BenePart::Patient {
                api_version: None,
                bene: format!("b{bene}"),
                fields: Fields::new().into(),
                lineage: vec![t("lineage")],
            });
            for f in rows {
                b.add(BenePart::Coverage {
                    api_version: None,
                    bene: format!("b{bene}"),
                    fields: f.into(),
                });
            }
            assert_eq!(b.rows(0), vec![want], "beneficiary {bene}");
        }
    }

    /// Rows handed over a chunk at a time are the rows made at once, in the same order (the
    /// order the Patients came), cut after every `chunk` rows; the count of rows that took a
    /// carried value is the same; and `emit`'s error stops the rows where it came.
    #[test]
    fn rows_in_chunks_are_the_rows_made_at_once() {
        let columns: Vec<Arc<str>> = ["BENE_SEX_CD", "STUS", "DUAL"]
            .into_iter()
            .map(Arc::from)
            .collect();
        let t = |s: &str| Cell::text(s);
        let build = || {
            let mut b = Cclf8Builder::new(columns.clone());
            // Patients of 10 beneficiaries, arriving in an order their ids do not sort in; one
            // comes twice (the later copy is kept, and its row comes where that copy came).
            for i in [7, 3, 9, 0, 5, 1, 8, 2, 6, 4, 3] {
                b.add(BenePart::Patient {
                    api_version: None,
                    bene: format!("b{i}"),
                    fields: Fields::from(vec![(Arc::from("BENE_SEX_CD"), t(&format!("{i}")))])
                        .into(),
                    lineage: vec![t("lineage")],
                });
                if i % 2 == 0 {
                    b.add(BenePart::Coverage {
                        api_version: None,
                        bene: format!("b{i}"),
                        fields: Fields::from(vec![
                            (Arc::from("COVERAGE_PLAN"), t("Part A")),
                            (Arc::from("STUS"), t(&format!("s{i}"))),
                        ])
                        .into(),
                    });
                }
            }
            // Carried Coverage columns for two beneficiaries without Coverage in the run.
            for i in [1, 5] {
                assert!(b.carry(None, format!("b{i}"), vec![(Arc::from("DUAL"), t("02"))]));
            }
            b
        };
        let (whole, used) = build().rows_and_carried(0);
        assert_eq!(whole.len(), 10);
        assert_eq!(used, 2);
        let sexes: Vec<&Cell> = whole.iter().map(|r| &r[0]).collect();
        assert_eq!(
            sexes,
            ["7", "9", "0", "5", "1", "8", "2", "6", "4", "3"]
                .map(Cell::text)
                .iter()
                .collect::<Vec<_>>()
        );
        for chunk in [1, 3, 4, 10, 11] {
            let mut chunks: Vec<Vec<Vec<Cell>>> = Vec::new();
            let got = build().rows_in_chunks(0, chunk, |rows| {
                chunks.push(rows);
                Ok::<(), ()>(())
            });
            assert_eq!(got, Ok(2), "chunk {chunk}");
            let lens: Vec<usize> = chunks.iter().map(Vec::len).collect();
            let mut want = vec![chunk.min(10); 10 / chunk.min(10)];
            if 10 % chunk.min(10) != 0 {
                want.push(10 % chunk);
            }
            assert_eq!(lens, want, "chunk {chunk}");
            assert_eq!(chunks.concat(), whole, "chunk {chunk}");
        }
        // The second chunk's error: two chunks handed over, nothing after.
        let mut calls = 0;
        let got = build().rows_in_chunks(0, 3, |_| {
            calls += 1;
            if calls == 2 { Err("stop") } else { Ok(()) }
        });
        assert_eq!((got, calls), (Err("stop"), 2));
    }
}
