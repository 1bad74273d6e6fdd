//! Table schemas and the typed cells rows are made of.

use compact_str::CompactString;

/// A column's type, which fixes its Arrow/Parquet and SQLite representation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ColumnType {
    /// Free text. Parquet Utf8 (plain); SQLite TEXT.
    Text,
    /// A code (few distinct values, leading zeros kept). Parquet Utf8, dictionary-encoded;
    /// SQLite TEXT.
    Code,
    /// Parquet Int64; SQLite INTEGER.
    Integer,
    /// Parquet Boolean; SQLite INTEGER 0/1.
    Boolean,
    /// An exact decimal. Parquet Decimal128(precision, scale); SQLite REAL (Parquet is the exact
    /// copy). [`Cell::Decimal`] holds the value scaled by `10^scale`.
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: i8,
    },
    /// A calendar date. Parquet Date32; SQLite TEXT `YYYY-MM-DD`.
    Date,
    /// An instant. Parquet Timestamp(µs, UTC); SQLite TEXT ISO 8601 (`…Z`).
    Timestamp,
    /// A collection, as JSON text. Parquet Utf8; SQLite TEXT.
    Json,
}

impl ColumnType {
    fn sqlite_decl(&self) -> &'static str {
        match self {
            ColumnType::Integer | ColumnType::Boolean => "INTEGER",
            ColumnType::Decimal { .. } => "REAL",
            _ => "TEXT",
        }
    }

    /// The SQLite declaration of a column of this type (STRICT tables).
    pub fn sqlite_type(&self) -> &'static str {
        self.sqlite_decl()
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Column {
    /// Name, as it appears in the table.
    pub name: String,
    /// Type.
    pub ty: ColumnType,
    /// What the column holds (stored in Parquet metadata).
    pub description: Option<String>,
}

impl Column {
    /// A column without description.
    pub fn new(name: impl Into<String>, ty: ColumnType) -> Self {
        Column {
            name: name.into(),
            ty,
            description: None,
        }
    }

    /// The same column with a description.
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// One table: its name, columns, and the columns whose values identify a set of rows that a
/// later run replaces as a whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableSchema {
    /// Table name (lower case).
    pub name: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Replacement key (e.g. `_api_version`, `_claim_key`): in an existing SQLite database, every
    /// row whose key appears in this run, in *any* table with the same key columns, is replaced
    /// by this run's rows. Empty: rows are only appended.
    pub replace_key: Vec<String>,
    /// Columns to index in SQLite.
    pub indexes: Vec<String>,
    /// A key's rows replace the stored ones only when they are at least as new: by the
    /// `_last_updated` column (a missing one oldest), so loading an older export after a newer
    /// one keeps the newer rows, as the README's Parquet current-rows rule does. For tables of
    /// one row set per resource (beneficiaries); claim tables follow the claim-history rule.
    pub newest_wins: bool,
}

impl TableSchema {
    /// A table that is only appended to.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> Self {
        TableSchema {
            name: name.into(),
            columns,
            replace_key: Vec::new(),
            indexes: Vec::new(),
            newest_wins: false,
        }
    }

    /// Index of a column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal as its value times `10^scale` of the column.
    Decimal(i128),
    /// Text (also codes and JSON). Text of up to 24 bytes (on 64-bit targets) is held inline,
    /// without an allocation: most cells of a claim table (codes, ids, NPIs) are that short,
    /// and a load makes millions of them.
    Text(CompactString),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
}

impl Cell {
    /// What kind of value the cell holds (`"a text cell"`, `"an integer cell"`, …), for a
    /// message that must not show the value itself: claims data is PHI.
    ///
    /// ```
    /// use claimline_model::Cell;
    /// assert_eq!(Cell::text("1EG4TE5MK73").kind(), "a text cell");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "a null",
            Cell::Bool(_) => "a boolean cell",
            Cell::Int(_) => "an integer cell",
            Cell::Decimal(_) => "a decimal cell",
            Cell::Text(_) => "a text cell",
            Cell::Date(_) => "a date cell",
            Cell::Timestamp(_) => "a timestamp cell",
        }
    }

    /// A [`Cell::Text`] of `s`.
    pub fn text(s: impl Into<CompactString>) -> Cell {
        Cell::Text(s.into())
    }

    /// A [`Cell::Text`] that borrows `s` for good: a clone copies the reference, where a text
    /// longer than the 24 bytes held inline is allocated and copied by every clone.
    ///
    /// ```
    /// use claimline_model::Cell;
    /// let path = "/exports/2026-12-07/ExplanationOfBenefit.ndjson";
    /// assert_eq!(Cell::static_text(path), Cell::text(path));
    /// ```
    pub fn static_text(s: &'static str) -> Cell {
        Cell::Text(CompactString::const_new(s))
    }
}

/// Marks in `held` (one flag per column) each column that holds a value (a cell that is not
/// NULL) in one of `rows`. Only the columns not marked yet are looked at, and only until each
/// is: a table's columns that never hold one (its unmapped fields) cost a look per row, the
/// others none once marked. A row shorter than `held` holds nothing in the columns it lacks.
///
/// ```
/// use claimline_model::{Cell, mark_held};
/// let mut held = [false, false, true];
/// mark_held(&mut held, &[vec![Cell::Null, Cell::Int(1), Cell::Null], vec![Cell::Null]]);
/// assert_eq!(held, [false, true, true]);
/// ```
pub fn mark_held<R: AsRef<[Cell]>>(held: &mut [bool], rows: &[R]) {
    let mut unheld: Vec<usize> = (0..held.len()).filter(|&c| !held[c]).collect();
    for row in rows {
        if unheld.is_empty() {
            break;
        }
        let row = row.as_ref();
        unheld.retain(|&c| {
            let now = row.get(c).is_some_and(|cell| !matches!(cell, Cell::Null));
            held[c] |= now;
            !now
        });
    }
}

/// A decimal mantissa at `scale` as exact text (`123450`, scale 2 → `1234.50`).
pub fn decimal_text(mantissa: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = mantissa.to_string();
        s.extend(std::iter::repeat_n('0', scale.unsigned_abs() as usize));
        return s;
    }
    let neg = mantissa < 0;
    let digits = mantissa.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if neg { "-" } else { "" })
}

/// The double nearest to the decimal `mantissa × 10^-scale`: what parsing its exact text
/// ([`decimal_text`]) gives, without the text. A mantissa below 2^53 in magnitude and 10 to a
/// scale of 0 to 22 are both exact doubles, and IEEE 754 division rounds their quotient
/// correctly (the nearest double, as a correct parse rounds); anything else goes through the
/// text (`None` if that text did not parse, which [`decimal_text`] never gives).
pub fn decimal_f64(mantissa: i128, scale: i8) -> Option<f64> {
    const EXACT: u128 = 1 << 53;
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    if let Some(&p) = usize::try_from(scale).ok().and_then(|s| POW10.get(s))
        && mantissa.unsigned_abs() < EXACT
    {
        return Some(mantissa as f64 / p);
    }
    decimal_text(mantissa, scale).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_doubles_are_what_their_text_parses_to() {
        let parse = |m: i128, s: i8| -> f64 { decimal_text(m, s).parse().expect("decimal text") };
        let mut mantissas: Vec<i128> = vec![
            0,
            1,
            -1,
            5,
            -5,
            123_450,
            8_499_937,
            (1 << 53) - 1,
            -((1 << 53) - 1),
            1 << 53,
            (1 << 53) + 1,
            i128::from(i64::MAX),
            i128::MAX / 7,
        ];
        // Pseudo-random mantissas of every size (a fixed LCG, so a failure repeats).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let bits = (x >> 58) as u32; // 0..63
            let m = i128::from((x >> 6) & ((1u64 << bits.max(1)) - 1));
            mantissas.push(if x & 1 == 0 { m } else { -m });
        }
        for &m in &mantissas {
            for s in [-3, 0, 1, 2, 3, 7, 15, 22, 23, 30] {
                let (fast, slow) = (decimal_f64(m, s).expect("a double"), parse(m, s));
                assert!(
                    fast.to_bits() == slow.to_bits(),
                    "{m} at scale {s}: {fast:e} against {slow:e}"
                );
            }
        }
    }

    #[test]
    fn decimals_format_exactly() {
        assert_eq!(decimal_text(123_450, 2), "1234.50");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(7, 0), "7");
    }
}
