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

use std::collections::BTreeMap;

use claimline_ndjson::{ApiVersion, Resource};
use claimline_sink::{Cell, Column, ColumnType, TableSchema};
use claimline_view::{Rows, ViewDefinition};

/// What can stop planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
}

/// Per-thread scratch space, reused across resources.
#[derive(Default)]
pub struct Scratch {
    rows: Vec<Rows>,
}

struct PlanView {
    view: ViewDefinition,
    api_version: Option<ApiVersion>,
    table: usize,
    claim: bool,
    /// Conversion per declared column.
    columns: Vec<ColumnType>,
}

/// Tables and the views that feed them; see the crate docs.
pub struct Plan {
    tables: Vec<TableSchema>,
    views: Vec<PlanView>,
    by_type: BTreeMap<String, Vec<usize>>,
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
        for PlannedView { view, api_version } in views {
            let name = view
                .name()
                .ok_or_else(|| Error::Unnamed {
                    file: view.file().to_owned(),
                })?
                .to_ascii_lowercase();
            let claim = view.resource() == "ExplanationOfBenefit";
            let declared: Vec<Column> = view
                .schema()
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    ty: sink_type(c),
                    description: c.description.clone(),
                })
                .collect();
            let types = declared.iter().map(|c| c.ty.clone()).collect();
            let table = match tables.iter().position(|t| t.name == name) {
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
                view,
                api_version,
                table,
                claim,
                columns: types,
            });
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
            views: planned,
            by_type,
        })
    }

    /// The tables, with lineage columns, in the order views first named them.
    pub fn tables(&self) -> &[TableSchema] {
        &self.tables
    }

    /// Runs every view that applies to `r` (its resource type and API version) and returns
    /// the rows with lineage, and the values that did not fit.
    pub fn evaluate(
        &self,
        r: &Resource<'_>,
        run_id: &str,
        scratch: &mut Scratch,
    ) -> ResourceOutput {
        let mut out = ResourceOutput::default();
        let Some(indexes) = self.by_type.get(r.resource_type) else {
            return out;
        };
        if scratch.rows.len() < self.views.len() {
            scratch.rows.resize_with(self.views.len(), Rows::default);
        }
        let mut lineage: Option<Vec<Cell>> = None;
        let mut claim_extra: Option<[Cell; 2]> = None;
        for &i in indexes {
            let pv = &self.views[i];
            if pv.api_version.is_some() && pv.api_version != r.api_version {
                continue;
            }
            let rows = &mut scratch.rows[i];
            rows.clear();
            if let Err(e) = pv.view.evaluate(r.root, rows) {
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
            let lineage =
                lineage.get_or_insert_with(|| self.lineage(r, run_id, &mut out.issues, pv.table));
            let extra = if pv.claim {
                Some(claim_extra.get_or_insert_with(|| claim_columns(r)))
            } else {
                None
            };
            for row in rows.rows.drain(..) {
                let mut cells = Vec::with_capacity(self.tables[pv.table].columns.len());
                for (cell, ty) in row.into_iter().zip(&pv.columns) {
                    cells.push(convert(cell, ty).unwrap_or_else(|reason| {
                        out.issues.push(RowIssue {
                            table: pv.table,
                            column: self.tables[pv.table].columns[cells.len()].name.clone(),
                            resource_id: r.id.map(str::to_owned),
                            reason,
                        });
                        Cell::Null
                    }));
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
        out
    }

    fn lineage(
        &self,
        r: &Resource<'_>,
        run_id: &str,
        issues: &mut Vec<RowIssue>,
        table: usize,
    ) -> Vec<Cell> {
        let text = |s: Option<&str>| s.map_or(Cell::Null, |s| Cell::Text(s.to_owned()));
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
        vec![
            text(r.id),
            Cell::Text(r.file.path.display().to_string()),
            Cell::Int(r.line as i64),
            text(r.api_version.map(ApiVersion::as_str)),
            last_updated,
            Cell::Text(run_id.to_owned()),
        ]
    }
}

/// `_claim_key` and `_status` of an EOB.
fn claim_columns(r: &Resource<'_>) -> [Cell; 2] {
    let key = match r.api_version {
        Some(ApiVersion::V3) => r.id.map(str::to_owned),
        _ => r
            .root
            .get("identifier")
            .into_iter()
            .flat_map(|i| i.items())
            .find(|i| i.get("system").and_then(|s| s.as_str()) == Some(CLAIM_GROUP))
            .and_then(|i| i.get("value"))
            .and_then(|v| v.as_str().map(str::to_owned))
            // No claim group (should not happen in BFD data): the resource is its own claim.
            .or_else(|| r.id.map(str::to_owned)),
    };
    let status = r.root.get("status").and_then(|s| s.as_str());
    [
        key.map_or(Cell::Null, Cell::Text),
        status.map_or(Cell::Null, |s| Cell::Text(s.to_owned())),
    ]
}

/// A view cell to a sink cell of the column's type.
fn convert(cell: claimline_view::Cell, ty: &ColumnType) -> Result<Cell, String> {
    use claimline_view::Cell as V;
    Ok(match (cell, ty) {
        (V::Null, _) => Cell::Null,
        (V::List(items), ColumnType::Json) => Cell::Text(V::List(items).to_string()),
        (other, ColumnType::Json) => Cell::Text(V::List(vec![other]).to_string()),
        (V::Boolean(b), ColumnType::Boolean) => Cell::Bool(b),
        (V::Integer(i), ColumnType::Integer) => Cell::Int(i),
        (V::Decimal(d), ColumnType::Decimal { precision, scale }) => {
            let scale = u8::try_from(*scale).map_err(|_| "negative decimal scale".to_owned())?;
            let fitted = d
                .fit(*precision, scale)
                .ok_or_else(|| format!("does not fit DECIMAL({precision},{scale})"))?;
            Cell::Decimal(fitted.mantissa())
        }
        (V::Integer(i), ColumnType::Decimal { precision, scale }) => {
            let scale = u8::try_from(*scale).map_err(|_| "negative decimal scale".to_owned())?;
            let d = claimline_view::Decimal::from_i64(i)
                .fit(*precision, scale)
                .ok_or_else(|| format!("does not fit DECIMAL({precision},{scale})"))?;
            Cell::Decimal(d.mantissa())
        }
        (V::Date(d), ColumnType::Date) => Cell::Date(d),
        (V::DateTime(t), ColumnType::Timestamp) => Cell::Timestamp(t),
        (
            v @ (V::String(_)
            | V::Time(_)
            | V::Date(_)
            | V::DateTime(_)
            | V::Integer(_)
            | V::Decimal(_)
            | V::Boolean(_)),
            ColumnType::Text | ColumnType::Code,
        ) => match v {
            V::String(s) => Cell::Text(s),
            other => Cell::Text(other.to_string()),
        },
        (other, ty) => return Err(format!("a {} value in a {ty:?} column", kind(&other))),
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

    #[test]
    fn instants_need_a_time() {
        assert_eq!(parse_instant("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_instant("IGNORED_FIELD"), None);
        assert_eq!(parse_instant("2020-01-01"), None);
    }
}
