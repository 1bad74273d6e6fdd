//! Typed output: the cells of a row, the column schema, and how FHIRPath values become cells.

use compact_str::{CompactString, ToCompactString};
use std::fmt;

use crate::decimal::Decimal;
use crate::eval::{Item, Prim};
use crate::node::Node;
use crate::temporal::{self, Precision};

/// Default `DECIMAL(precision, scale)` when a decimal column has no `ansi/type` tag.
pub const DEFAULT_DECIMAL: (u8, u8) = (18, 2);

/// The storage type of a column, derived from its FHIR `type` and `ansi/type` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Text: `string`, `code`, `id`, `uri`, … (and columns with no `type`).
    String,
    /// `boolean`.
    Boolean,
    /// `integer`, `positiveInt`, `unsignedInt`, `integer64`: `i64`.
    Integer,
    /// `decimal`: exact, `DECIMAL(precision, scale)`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `date`: days since 1970-01-01 (a dateTime keeps its literal local date).
    Date,
    /// `dateTime`, `instant`: microseconds since 1970-01-01T00:00:00Z.
    DateTime,
    /// `time`: microseconds since midnight.
    Time,
}

impl ColumnType {
    /// The storage type for a FHIR type name and an optional `ansi/type` tag value.
    pub fn from_fhir(fhir_type: Option<&str>, ansi: Option<&str>) -> ColumnType {
        let ansi_upper = ansi.map(|a| a.trim().to_ascii_uppercase());
        let decimal = || {
            ansi_upper
                .as_deref()
                .and_then(parse_ansi_decimal)
                .unwrap_or(DEFAULT_DECIMAL)
        };
        match fhir_type {
            Some("boolean") => ColumnType::Boolean,
            Some("integer" | "positiveInt" | "unsignedInt" | "integer64") => ColumnType::Integer,
            Some("decimal") => {
                let (precision, scale) = decimal();
                ColumnType::Decimal { precision, scale }
            }
            Some("date") => ColumnType::Date,
            Some("dateTime" | "instant") => ColumnType::DateTime,
            Some("time") => ColumnType::Time,
            Some(_) => ColumnType::String,
            None => match ansi_upper.as_deref() {
                Some(a) if a.starts_with("DECIMAL") || a.starts_with("NUMERIC") => {
                    let (precision, scale) = decimal();
                    ColumnType::Decimal { precision, scale }
                }
                Some("BOOLEAN") => ColumnType::Boolean,
                Some("INTEGER" | "BIGINT" | "INT") => ColumnType::Integer,
                Some("DATE") => ColumnType::Date,
                Some(a) if a.starts_with("TIMESTAMP") => ColumnType::DateTime,
                Some("TIME") => ColumnType::Time,
                _ => ColumnType::String,
            },
        }
    }
}

/// `DECIMAL(13,2)` → `(13, 2)`; `DECIMAL(9)` → `(9, 0)`.
fn parse_ansi_decimal(a: &str) -> Option<(u8, u8)> {
    let inner = a
        .strip_prefix("DECIMAL")
        .or_else(|| a.strip_prefix("NUMERIC"))?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<u8>());
    let precision = parts.next()?.ok()?;
    let scale = match parts.next() {
        Some(s) => s.ok()?,
        None => 0,
    };
    ((1..=38).contains(&precision) && scale <= precision).then_some((precision, scale))
}

/// One column of a view's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name, unique in the view.
    pub name: String,
    /// The FHIR type the view declared (`string`, `date`, …), if any.
    pub fhir_type: Option<String>,
    /// How cells are stored.
    pub ty: ColumnType,
    /// `collection: true`: cells are lists.
    pub collection: bool,
    /// The column's `description`.
    pub description: Option<String>,
    /// The column's `tag`s as `(name, value)`.
    pub tags: Vec<(String, String)>,
}

/// A view's output columns, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// The columns.
    pub columns: Vec<Column>,
}

impl Schema {
    /// Index of the column called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One typed value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value (also: a value that did not fit; see [`RowError`]).
    Null,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// An exact decimal at the column's scale.
    Decimal(Decimal),
    /// Text (up to 24 bytes held inline, without an allocation).
    String(CompactString),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    DateTime(i64),
    /// Microseconds since midnight.
    Time(i64),
    /// The values of a `collection: true` column.
    List(Vec<Cell>),
}

impl Cell {
    /// The cell as JSON (dates and times as ISO 8601 text, decimals as exact numbers, lists as
    /// arrays): the `collection` column's JSON text form, and the shape the conformance suite uses.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Cell::Null => Value::Null,
            Cell::Boolean(b) => Value::Bool(*b),
            Cell::Integer(i) => Value::from(*i),
            Cell::Decimal(d) => serde_json::from_str(&d.to_string()).unwrap_or(Value::Null),
            Cell::String(s) => Value::String(s.to_string()),
            Cell::Date(_) | Cell::DateTime(_) | Cell::Time(_) => Value::String(self.to_string()),
            Cell::List(items) => Value::Array(items.iter().map(Cell::to_json).collect()),
        }
    }
}

use claimline_model::civil_from_days;

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => Ok(()),
            Cell::Boolean(b) => write!(f, "{b}"),
            Cell::Integer(i) => write!(f, "{i}"),
            Cell::Decimal(d) => write!(f, "{d}"),
            Cell::String(s) => f.write_str(s),
            Cell::Date(days) => {
                let (y, m, d) = civil_from_days(i64::from(*days));
                write!(f, "{y:04}-{m:02}-{d:02}")
            }
            Cell::DateTime(us) => {
                let secs = us.div_euclid(1_000_000);
                let micros = us.rem_euclid(1_000_000);
                let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
                let t = secs.rem_euclid(86_400);
                write!(
                    f,
                    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
                    t / 3600,
                    (t / 60) % 60,
                    t % 60
                )
            }
            Cell::Time(us) => {
                let t = us / 1_000_000;
                write!(
                    f,
                    "{:02}:{:02}:{:02}.{:06}",
                    t / 3600,
                    (t / 60) % 60,
                    t % 60,
                    us % 1_000_000
                )
            }
            Cell::List(items) => f.write_str(
                &serde_json::Value::Array(items.iter().map(Cell::to_json).collect()).to_string(),
            ),
        }
    }
}

/// A value that did not fit its column: the cell is NULL and this is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The resource's `id`, when it has one.
    pub resource_id: Option<String>,
    /// The column.
    pub column: String,
    /// Why (never the value itself: it may be PHI).
    pub reason: String,
}

/// The column and the reason: not the resource id, a beneficiary's or a claim's (it is the
/// `resource_id` field, for the row-errors file that keeps it).
impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.reason)
    }
}

/// Converts one FHIRPath value to a cell of type `ty`; `Err` says why it does not fit.
pub(crate) fn to_cell<'a, N: Node<'a>>(item: &Item<'a, N>, ty: ColumnType) -> Result<Cell, String> {
    prim_to_cell(item.prim(), ty)
}

/// [`to_cell`] of an item's primitive value (`None`: it is not a primitive).
pub(crate) fn prim_to_cell(p: Option<Prim<'_>>, ty: ColumnType) -> Result<Cell, String> {
    let Some(p) = p else {
        return Err("value is not a primitive".to_owned());
    };
    let text = match p {
        Prim::Str(s) | Prim::Date(s) | Prim::DateTime(s) | Prim::Time(s) => Some(s),
        _ => None,
    };
    match ty {
        ColumnType::String => Ok(Cell::String(match p {
            Prim::Bool(b) => b.to_compact_string(),
            Prim::Int(i) => i.to_compact_string(),
            Prim::Dec(d) => d.to_compact_string(),
            Prim::Str(s) | Prim::Date(s) | Prim::DateTime(s) | Prim::Time(s) => s.into(),
        })),
        ColumnType::Boolean => match p {
            Prim::Bool(b) => Ok(Cell::Boolean(b)),
            Prim::Str("true") => Ok(Cell::Boolean(true)),
            Prim::Str("false") => Ok(Cell::Boolean(false)),
            _ => Err("value is not a boolean".to_owned()),
        },
        ColumnType::Integer => match p {
            Prim::Int(i) => Ok(Cell::Integer(i)),
            Prim::Dec(d) if d.is_integral() => d
                .trunc_i64()
                .map(Cell::Integer)
                .ok_or_else(|| "integer out of range".to_owned()),
            Prim::Str(s) => s
                .parse::<i64>()
                .map(Cell::Integer)
                .map_err(|_| "value is not an integer".to_owned()),
            _ => Err("value is not an integer".to_owned()),
        },
        ColumnType::Decimal { precision, scale } => {
            let d = match p {
                Prim::Int(i) => Some(Decimal::from_i64(i)),
                Prim::Dec(d) => Some(d),
                Prim::Str(s) => Decimal::parse(s),
                _ => None,
            }
            .ok_or_else(|| "value is not a decimal".to_owned())?;
            d.fit(precision, scale)
                .map(Cell::Decimal)
                .ok_or_else(|| format!("value does not fit DECIMAL({precision},{scale}) exactly"))
        }
        ColumnType::Date => {
            let parts = text
                .and_then(temporal::parse_date_time)
                .ok_or_else(|| "value is not a date".to_owned())?;
            if parts.precision < Precision::Day {
                return Err("partial date in a date column".to_owned());
            }
            i32::try_from(parts.epoch_days())
                .map(Cell::Date)
                .map_err(|_| "date out of range".to_owned())
        }
        ColumnType::DateTime => {
            let parts = text
                .and_then(temporal::parse_date_time)
                .ok_or_else(|| "value is not a dateTime".to_owned())?;
            if parts.precision < Precision::Day {
                return Err("partial dateTime in a dateTime column".to_owned());
            }
            Ok(Cell::DateTime(parts.utc_micros()))
        }
        ColumnType::Time => text
            .and_then(temporal::parse_time)
            .map(|(us, _, _)| Cell::Time(us))
            .ok_or_else(|| "value is not a time".to_owned()),
    }
}

impl Column {
    /// Converts a JSON value (as the conformance suite writes expected rows) to this column's
    /// cell, the same way evaluated values are converted.
    ///
    /// # Errors
    /// Why the value does not fit the column.
    pub fn cell_from_json(&self, value: &serde_json::Value) -> Result<Cell, String> {
        let one = |v: &serde_json::Value| -> Result<Cell, String> {
            if v.is_null() {
                return Ok(Cell::Null);
            }
            to_cell(&Item::node(v), self.ty)
        };
        match (self.collection, value) {
            (true, serde_json::Value::Array(items)) => items
                .iter()
                .map(one)
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::List),
            _ => one(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: &str, ansi: Option<&str>) -> Column {
        Column {
            name: "c".into(),
            fhir_type: Some(ty.into()),
            ty: ColumnType::from_fhir(Some(ty), ansi),
            collection: false,
            description: None,
            tags: Vec::new(),
        }
    }

    fn conv(ty: &str, ansi: Option<&str>, json: &str) -> Result<String, String> {
        let v: serde_json::Value = serde_json::from_str(json).expect("json");
        col(ty, ansi).cell_from_json(&v).map(|c| c.to_string())
    }

    #[test]
    fn converts_by_column_type() {
        assert_eq!(
            conv("date", None, r#""2024-02-29""#),
            Ok("2024-02-29".into())
        );
        assert_eq!(
            conv("date", None, r#""2024-02-29T23:30:00-05:00""#),
            Ok("2024-02-29".into())
        );
        assert!(conv("date", None, r#""IGNORED_FIELD""#).is_err());
        assert!(conv("date", None, r#""2024-02""#).is_err());
        assert_eq!(
            conv("dateTime", None, r#""2015-02-07T13:28:17.239+02:00""#),
            Ok("2015-02-07T11:28:17.239000Z".into())
        );
        assert_eq!(
            conv("instant", None, r#""2010-10-10""#),
            Ok("2010-10-10T00:00:00.000000Z".into())
        );
        assert_eq!(conv("decimal", None, "12.5"), Ok("12.50".into()));
        assert_eq!(
            conv("decimal", Some("DECIMAL(13,4)"), "12.5"),
            Ok("12.5000".into())
        );
        assert!(conv("decimal", None, "0.125").is_err());
        assert!(conv("decimal", Some("DECIMAL(3,2)"), "12.5").is_err());
        assert_eq!(conv("integer", None, "42"), Ok("42".into()));
        assert!(conv("integer", None, "4.5").is_err());
        assert_eq!(
            conv("time", None, r#""12:34:00.999""#),
            Ok("12:34:00.999000".into())
        );
        assert_eq!(conv("string", None, "1.50"), Ok("1.50".into()));
        assert!(conv("boolean", None, r#""yes""#).is_err());
        assert!(conv("string", None, r#"{"a":1}"#).is_err());
    }

    #[test]
    fn ansi_types() {
        assert_eq!(parse_ansi_decimal("DECIMAL(13,2)"), Some((13, 2)));
        assert_eq!(parse_ansi_decimal("DECIMAL(9)"), Some((9, 0)));
        assert_eq!(parse_ansi_decimal("DECIMAL(2,5)"), None);
        assert_eq!(ColumnType::from_fhir(None, Some("date")), ColumnType::Date);
        assert_eq!(
            ColumnType::from_fhir(Some("decimal"), None),
            ColumnType::Decimal {
                precision: 18,
                scale: 2
            }
        );
    }
}
