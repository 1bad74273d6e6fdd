//! CCLF fixed-width files: the layouts of CMS's Claim and Claim Line Feed, and typed cells to and
//! from their fields.
//!
//! CMS delivers CCLF as one fixed-width text file per table (CCLF1–9, A, B) plus a summary file
//! (CCLF0). This crate knows the layouts (every field's position, length and COBOL picture, from
//! `mappings/cclf/reference/cclf_layouts.csv`, embedded), turns a typed [`Cell`] into a field's
//! bytes ([`Field::write`]) and a field's bytes back into a cell of the column's type
//! ([`Field::read`]), names files the way CMS names its deliveries ([`file_name`]) and tells the
//! table of a delivered file from its name ([`layout_of_file_name`]). It does no I/O; `load`
//! reads and writes the files.
//!
//! Pictures: `X(n)` left-justified and space-padded; `9(n)` right-justified and zero-padded;
//! signed decimals such as `-9(15).99` as a sign position (`-` or a space), the integer digits
//! zero-padded, the point and the fraction digits; `YYYY-MM-DD` dates. A NULL is spaces. A value
//! that does not fit is a [`FieldError`], never cut.
//!
//! ```
//! use claimline_cclf::{Cell, ColumnType, layout};
//!
//! let cclf1 = layout("cclf1").expect("CCLF1 is a layout");
//! let amount = cclf1.field("CLM_PMT_AMT").expect("a CCLF1 field");
//! let ty = ColumnType::Decimal { precision: 17, scale: 2 };
//! let mut out = Vec::new();
//! amount.write(&Cell::Decimal(-12_345), &ty, &mut out)?;
//! assert_eq!(out, b"-0000000000123.45");
//! assert_eq!(amount.read(&out, &ty)?, Cell::Decimal(-12_345));
//! # Ok::<(), claimline_cclf::FieldError>(())
//! ```

use std::sync::OnceLock;

pub use claimline_model::{Cell, ColumnType};
use claimline_model::{decimal_text, format_date, parse_date};

/// The layouts CSV (CCLF IP v42 Appendix B, as BCDA's v3 data dictionary gives it).
const LAYOUTS_CSV: &str = include_str!("../../../mappings/cclf/reference/cclf_layouts.csv");

/// `9(n)` fields whose values are codes of a fixed width, kept with their leading zeros in the
/// tables (`CLM_TYPE_CD` `10`, a FIPS state `06`, `BENE_AGE` `082`); every other `9(n)` field is
/// a number (a claim id, a line or sequence number, a count), held without leading zeros.
pub const FIXED_WIDTH_CODES: [&str; 4] = [
    "CLM_TYPE_CD",
    "BENE_FIPS_STATE_CD",
    "BENE_FIPS_CNTY_CD",
    "BENE_AGE",
];

/// A field's picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// `X(n)`: text, left-justified, space-padded.
    Text,
    /// `9(n)`: digits, right-justified, zero-padded.
    Digits,
    /// `-9(i).9…9`: a sign position, `int` digits, the point, `scale` digits.
    Signed {
        /// Digits before the point.
        int: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `YYYY-MM-DD`.
    Date,
}

/// One field of a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The CCLF name (`CUR_CLM_UNIQ_ID`), which is the table's column name.
    pub name: String,
    /// The picture as the layout writes it (`-9(15).99`).
    pub picture_text: String,
    /// The picture.
    pub picture: Picture,
    /// 0-based offset in the record.
    pub start: usize,
    /// Width in bytes.
    pub len: usize,
}

/// One CCLF file's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `CCLF1` … `CCLF9`, `CCLFA`, `CCLFB`, `CCLF0`.
    pub file: String,
    /// The table it fills (`cclf1`); `cclf0` is the summary file, not a table.
    pub table: String,
    /// The character CMS's file names carry (`1` … `9`, `A`, `B`, `0`).
    pub code: char,
    /// What CCLF0 calls the file.
    pub description: &'static str,
    /// Fields in record order, covering the record without gaps.
    pub fields: Vec<Field>,
    /// Bytes per record (without the line ending).
    pub record_len: usize,
}

/// Why a value and a field do not go together. Messages never hold the value (it is PHI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// Longer than the field.
    #[error("{len} characters do not fit {picture} ({width})")]
    TooLong {
        /// The value's length in bytes.
        len: usize,
        /// The field's width.
        width: usize,
        /// The picture.
        picture: String,
    },
    /// Not digits where the picture says `9`.
    #[error("not a whole number of at most {width} digits, as {picture} requires")]
    NotDigits {
        /// The field's width.
        width: usize,
        /// The picture.
        picture: String,
    },
    /// A number beyond the picture's digits, or with more decimals than it has.
    #[error("the number does not fit {picture}")]
    OutOfRange {
        /// The picture.
        picture: String,
    },
    /// Not a number.
    #[error("not a number as {picture} requires")]
    BadNumber {
        /// The picture.
        picture: String,
    },
    /// Not a `YYYY-MM-DD` date.
    #[error("not a YYYY-MM-DD date")]
    BadDate,
    /// Text that is not UTF-8.
    #[error("not UTF-8 text")]
    BadText,
    /// Text holding a line break or another control character, which would cut the record.
    #[error("text with a line break or another control character, which a record cannot hold")]
    ControlCharacter,
    /// The column's type has no CCLF form.
    #[error("a {ty} column has no CCLF form")]
    Unsupported {
        /// The column type's name.
        ty: &'static str,
    },
}

/// Every layout of the CCLF Information Packet: CCLF0 (the summary), CCLF1–9, CCLFA, CCLFB.
pub fn layouts() -> &'static [Layout] {
    static LAYOUTS: OnceLock<Vec<Layout>> = OnceLock::new();
    LAYOUTS.get_or_init(|| parse_layouts(LAYOUTS_CSV))
}

/// The layout of a table (`cclf1`, case-insensitive; `cclf0` is the summary file).
pub fn layout(table: &str) -> Option<&'static Layout> {
    layouts()
        .iter()
        .find(|l| l.table.eq_ignore_ascii_case(table))
}

fn description(code: char) -> &'static str {
    match code {
        '0' => "Summary Statistics",
        '1' => "Part A Claims Header",
        '2' => "Part A Revenue Ctr",
        '3' => "Part A Procedure",
        '4' => "Part A Diagnosis",
        '5' => "Part B Physicians",
        '6' => "Part B DME",
        '7' => "Part D",
        '8' => "Bene Demographics",
        '9' => "Bene XREF",
        'A' => "Part A BE and Demo",
        'B' => "Part B BE and Demo",
        _ => "",
    }
}

/// Parses the layouts CSV: `cclf_file,field_name,position,type,length,description,source,
/// start_pos,end_pos` (the description and source may hold commas; the first five and the last
/// two columns do not).
fn parse_layouts(csv: &str) -> Vec<Layout> {
    let mut out: Vec<Layout> = Vec::new();
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split(',').collect();
        let n = cols.len();
        let (file, name, picture, len) = (cols[0], cols[1], cols[3], cols[4]);
        let start: usize = cols[n - 2].trim().parse().expect("layout start_pos");
        let len: usize = len.trim().parse().expect("layout length");
        let picture_kind = match parse_picture(picture) {
            // The positions are the layout's truth: CCLF6 `CLM_LINE_ALOWD_CHRG_AMT` says
            // `-9(14).99` (18 wide) in 17 positions (209–225), between fields that leave no
            // room for an 18th; its integer digits are what the width leaves.
            Picture::Signed { scale, .. } => Picture::Signed {
                int: (len - 2 - usize::from(scale)) as u8,
                scale,
            },
            other => other,
        };
        let field = Field {
            name: name.to_owned(),
            picture_text: picture.to_owned(),
            picture: picture_kind,
            start: start - 1,
            len,
        };
        match out.iter_mut().find(|l| l.file == file) {
            Some(l) => {
                l.record_len = l.record_len.max(field.start + field.len);
                l.fields.push(field);
            }
            None => {
                let code = file.chars().last().expect("file name");
                out.push(Layout {
                    file: file.to_owned(),
                    table: file.to_ascii_lowercase(),
                    code,
                    description: description(code),
                    record_len: field.start + field.len,
                    fields: vec![field],
                });
            }
        }
    }
    out
}

fn parse_picture(p: &str) -> Picture {
    if p == "YYYY-MM-DD" {
        Picture::Date
    } else if let Some(rest) = p.strip_prefix("-9(") {
        let (int, frac) = rest.split_once(").").expect("signed picture");
        Picture::Signed {
            int: int.parse().expect("signed picture digits"),
            scale: frac.len() as u8,
        }
    } else if p.starts_with('9') {
        Picture::Digits
    } else {
        Picture::Text
    }
}

impl Layout {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields of a record of this layout, checking its length (`line` without its line
    /// ending).
    ///
    /// # Errors
    /// The record's length when it is not the layout's.
    pub fn split<'a>(&self, line: &'a [u8]) -> Result<Vec<&'a [u8]>, usize> {
        if line.len() != self.record_len {
            return Err(line.len());
        }
        Ok(self
            .fields
            .iter()
            .map(|f| &line[f.start..f.start + f.len])
            .collect())
    }
}

fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

fn column_scale(ty: &ColumnType) -> Option<i8> {
    match ty {
        ColumnType::Decimal { scale, .. } => Some(*scale),
        _ => None,
    }
}

fn type_name(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Text => "text",
        ColumnType::Code => "code",
        ColumnType::Integer => "integer",
        ColumnType::Boolean => "boolean",
        ColumnType::Decimal { .. } => "decimal",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Json => "json",
    }
}

/// Parses decimal text (`-12.5`, `+3`, ` 0001.20`) to a mantissa at `scale`; `None` when it is not
/// a number or has non-zero digits beyond `scale`.
fn parse_decimal(text: &str, scale: u32) -> Option<i128> {
    // Spaces pad a field; any other byte (a tab, a vertical tab) is no part of a number.
    let t = text.trim_matches(' ');
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let t = t.trim_start_matches(' ');
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 36
    {
        return None;
    }
    let frac_trim = frac.trim_end_matches('0');
    if frac_trim.len() > scale as usize {
        return None;
    }
    let mut m: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    m = m.checked_mul(pow10(scale))?;
    if !frac_trim.is_empty() {
        let f: i128 = frac_trim.parse().ok()?;
        m += f * pow10(scale - frac_trim.len() as u32);
    }
    Some(if neg { -m } else { m })
}

impl Field {
    fn too_long(&self, len: usize) -> FieldError {
        FieldError::TooLong {
            len,
            width: self.len,
            picture: self.picture_text.clone(),
        }
    }

    fn out_of_range(&self) -> FieldError {
        FieldError::OutOfRange {
            picture: self.picture_text.clone(),
        }
    }

    /// Appends this field's bytes for `cell` (of a column of type `ty`) to `out`: exactly
    /// [`Field::len`] bytes.
    ///
    /// # Errors
    /// A value that does not fit the field ([`FieldError`]); nothing is appended then.
    pub fn write(&self, cell: &Cell, ty: &ColumnType, out: &mut Vec<u8>) -> Result<(), FieldError> {
        if matches!(cell, Cell::Null) {
            out.resize(out.len() + self.len, b' ');
            return Ok(());
        }
        match self.picture {
            Picture::Text => {
                let text = match cell {
                    Cell::Text(s) => std::borrow::Cow::Borrowed(s.as_str()),
                    Cell::Int(n) => n.to_string().into(),
                    Cell::Decimal(m) => decimal_text(*m, column_scale(ty).unwrap_or(0)).into(),
                    Cell::Date(d) => format_date(*d).into(),
                    _ => {
                        return Err(FieldError::Unsupported { ty: type_name(ty) });
                    }
                };
                if text.len() > self.len {
                    return Err(self.too_long(text.len()));
                }
                // A `\n` or `\r` would end the record where the layout does not.
                if text.chars().any(char::is_control) {
                    return Err(FieldError::ControlCharacter);
                }
                out.extend_from_slice(text.as_bytes());
                out.resize(out.len() + self.len - text.len(), b' ');
            }
            Picture::Digits => {
                let text = match cell {
                    Cell::Text(s) => std::borrow::Cow::Borrowed(s.as_str()),
                    Cell::Int(n) if *n >= 0 => n.to_string().into(),
                    _ => "-".into(),
                };
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FieldError::NotDigits {
                        width: self.len,
                        picture: self.picture_text.clone(),
                    });
                }
                if text.len() > self.len {
                    return Err(self.too_long(text.len()));
                }
                out.resize(out.len() + self.len - text.len(), b'0');
                out.extend_from_slice(text.as_bytes());
            }
            Picture::Signed { int, scale } => {
                let m = match (cell, ty) {
                    (Cell::Decimal(m), ColumnType::Decimal { scale: s, .. }) => {
                        let s = i32::from(*s);
                        let p = i32::from(scale);
                        if p >= s {
                            m.checked_mul(pow10((p - s) as u32))
                                .ok_or_else(|| self.out_of_range())?
                        } else {
                            let f = pow10((s - p) as u32);
                            if m % f != 0 {
                                return Err(self.out_of_range());
                            }
                            m / f
                        }
                    }
                    (Cell::Int(n), _) => i128::from(*n) * pow10(u32::from(scale)),
                    (Cell::Text(t), _) => {
                        parse_decimal(t, u32::from(scale)).ok_or_else(|| FieldError::BadNumber {
                            picture: self.picture_text.clone(),
                        })?
                    }
                    _ => {
                        return Err(FieldError::Unsupported { ty: type_name(ty) });
                    }
                };
                let abs = m.unsigned_abs();
                let unit = pow10(u32::from(scale)) as u128;
                let (whole, frac) = (abs / unit, abs % unit);
                if whole >= pow10(u32::from(int)) as u128 {
                    return Err(self.out_of_range());
                }
                out.push(if m < 0 { b'-' } else { b' ' });
                let text = format!(
                    "{whole:0iw$}.{frac:0fw$}",
                    iw = usize::from(int),
                    fw = usize::from(scale)
                );
                out.extend_from_slice(text.as_bytes());
            }
            Picture::Date => match cell {
                Cell::Date(d) => {
                    let text = format_date(*d);
                    if text.len() != self.len {
                        return Err(FieldError::BadDate);
                    }
                    out.extend_from_slice(text.as_bytes());
                }
                Cell::Text(t) if parse_date(t).is_some() => out.extend_from_slice(t.as_bytes()),
                _ => return Err(FieldError::BadDate),
            },
        }
        Ok(())
    }

    /// A `9(n)` field's digits: without its leading zeros, but for the codes of
    /// [`FIXED_WIDTH_CODES`], which keep them.
    fn digits<'t>(&self, t: &'t str) -> Result<&'t str, FieldError> {
        let t = t.trim_matches(' ');
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::NotDigits {
                width: self.len,
                picture: self.picture_text.clone(),
            });
        }
        Ok(if FIXED_WIDTH_CODES.contains(&self.name.as_str()) {
            t
        } else {
            let s = t.trim_start_matches('0');
            if s.is_empty() { "0" } else { s }
        })
    }

    /// The cell a field's bytes (`raw`, exactly the field) hold, for a column of type `ty`: all
    /// spaces is NULL; text loses its trailing spaces; a `9(n)` number its leading zeros (not the
    /// codes of [`FIXED_WIDTH_CODES`]).
    ///
    /// # Errors
    /// Bytes the picture or the column type cannot take ([`FieldError`]).
    pub fn read(&self, raw: &[u8], ty: &ColumnType) -> Result<Cell, FieldError> {
        let text = std::str::from_utf8(raw).map_err(|_| FieldError::BadText)?;
        if text.bytes().all(|b| b == b' ') {
            return Ok(Cell::Null);
        }
        let bad_number = || FieldError::BadNumber {
            picture: self.picture_text.clone(),
        };
        // A picture's sign position holds `-` or a space: a `+` is no CCLF number (it is
        // taken in a cell written out, never in a field read).
        let number = |scale: u32| {
            if text.trim_start_matches(' ').starts_with('+') {
                None
            } else {
                parse_decimal(text, scale)
            }
        };
        match ty {
            ColumnType::Text | ColumnType::Code => match self.picture {
                Picture::Digits => self.digits(text).map(Cell::text),
                Picture::Date => parse_date(text.trim_matches(' '))
                    .map(|_| Cell::text(text.trim_matches(' ')))
                    .ok_or(FieldError::BadDate),
                Picture::Signed { int, scale } => {
                    let m = number(u32::from(scale)).ok_or_else(bad_number)?;
                    if m.unsigned_abs() >= 10u128.pow((u32::from(int) + u32::from(scale)).min(38)) {
                        return Err(self.out_of_range());
                    }
                    Ok(Cell::text(decimal_text(m, scale as i8)))
                }
                // A NUL or another control byte is damage, not text: refused as `write` does.
                Picture::Text if text.chars().any(char::is_control) => {
                    Err(FieldError::ControlCharacter)
                }
                Picture::Text => Ok(Cell::text(text.trim_end_matches(' '))),
            },
            ColumnType::Decimal { precision, scale } => {
                let m = number(u32::try_from(*scale).unwrap_or(0)).ok_or_else(bad_number)?;
                // At most the picture's digits (a digit in the sign position is one too many)
                // and the column's: never a value the table cannot hold.
                let picture_digits = match self.picture {
                    Picture::Signed { int, scale } => u32::from(int) + u32::from(scale),
                    _ => 38,
                };
                let digits = picture_digits.min(u32::from(*precision)).min(38);
                if m.unsigned_abs() >= 10u128.pow(digits) {
                    return Err(self.out_of_range());
                }
                Ok(Cell::Decimal(m))
            }
            ColumnType::Integer => self
                .digits(text)?
                .parse::<i64>()
                .map(Cell::Int)
                .map_err(|_| self.out_of_range()),
            ColumnType::Date => parse_date(text.trim_matches(' '))
                .map(Cell::Date)
                .ok_or(FieldError::BadDate),
            other => Err(FieldError::Unsupported {
                ty: type_name(other),
            }),
        }
    }
}

/// When a delivery was made, for its file names: `D<yymmdd>.T<hhmmss><tenth>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Year (four digits).
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    /// 0–23.
    pub hour: u32,
    /// 0–59.
    pub minute: u32,
    /// 0–59.
    pub second: u32,
    /// Tenths of a second, 0–9.
    pub tenth: u32,
}

impl Stamp {
    /// The stamp of an instant (µs since 1970-01-01T00:00:00Z, UTC).
    pub fn from_micros(micros: i64) -> Stamp {
        let secs = micros.div_euclid(1_000_000);
        let (y, m, d) = claimline_model::civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400) as u32;
        Stamp {
            year: y,
            month: m,
            day: d,
            hour: s / 3600,
            minute: s / 60 % 60,
            second: s % 60,
            tenth: (micros.rem_euclid(1_000_000) / 100_000) as u32,
        }
    }
}

/// The name CMS gives a CCLF file: `P.A<aco>.ACO.ZC<code>Y<yy>.D<yymmdd>.T<hhmmsst>` (the
/// Shared Savings Program's production pattern; `yy` is the performance year, here the stamp's).
pub fn file_name(aco: &str, layout: &Layout, at: Stamp) -> String {
    let yy = at.year.rem_euclid(100);
    format!(
        "P.A{aco}.ACO.ZC{}Y{yy:02}.D{yy:02}{:02}{:02}.T{:02}{:02}{:02}{}",
        layout.code, at.month, at.day, at.hour, at.minute, at.second, at.tenth
    )
}

/// The layout a delivered file's name names: CMS's `…ZC<code>Y…` (also a run-out's `ZCR<code>Y`),
/// else `CCLF<code>` in the name (as many ACOs rename them), case-insensitive.
pub fn layout_of_file_name(name: &str) -> Option<&'static Layout> {
    let upper = name.to_ascii_uppercase();
    let b = upper.as_bytes();
    let by_code = |c: u8| layouts().iter().find(|l| l.code as u8 == c);
    for (i, _) in upper.match_indices("ZC") {
        let mut j = i + 2;
        if b.get(j) == Some(&b'R') && b.get(j + 2) == Some(&b'Y') {
            j += 1;
        }
        if b.get(j + 1) == Some(&b'Y')
            && let Some(l) = b.get(j).and_then(|c| by_code(*c))
        {
            return Some(l);
        }
    }
    for (i, _) in upper.match_indices("CCLF") {
        let next = b.get(i + 5);
        if next.is_none_or(|c| !c.is_ascii_alphanumeric())
            && let Some(l) = b.get(i + 4).and_then(|c| by_code(*c))
        {
            return Some(l);
        }
    }
    None
}

/// One record of the CCLF0 summary: the file, its description, its record count and record
/// length, each left-justified in its `X` field, `|` between them.
pub fn summary_record(file: &Layout, records: u64) -> Vec<u8> {
    let summary = layout("cclf0").expect("CCLF0 is a layout");
    let values = [
        file.file.clone(),
        "|".to_owned(),
        file.description.to_owned(),
        "|".to_owned(),
        records.to_string(),
        "|".to_owned(),
        file.record_len.to_string(),
    ];
    let mut out = Vec::with_capacity(summary.record_len);
    for (field, value) in summary.fields.iter().zip(values) {
        field
            .write(&Cell::text(value), &ColumnType::Text, &mut out)
            .expect("summary values fit CCLF0");
    }
    out
}

/// A CCLF0 record read back: (file, e.g. `CCLF1`; record count; record length).
pub fn parse_summary_record(line: &[u8]) -> Option<(String, u64, usize)> {
    let text = std::str::from_utf8(line).ok()?;
    let parts: Vec<&str> = text.split('|').map(str::trim).collect();
    match parts.as_slice() {
        [file, _, count, len] => Some(((*file).to_owned(), count.parse().ok()?, len.parse().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cover_every_record_without_gaps() {
        assert_eq!(layouts().len(), 12);
        for l in layouts() {
            let mut at = 0;
            for f in &l.fields {
                assert_eq!(f.start, at, "{} {}", l.file, f.name);
                at += f.len;
            }
            assert_eq!(at, l.record_len, "{}", l.file);
            assert!(l.description.len() <= 20 && !l.description.is_empty());
        }
        assert_eq!(layout("CCLF5").map(|l| l.fields.len()), Some(52));
        // A signed picture is as wide as its field, even where the picture's text says more.
        let f = field("cclf6", "CLM_LINE_ALOWD_CHRG_AMT");
        assert_eq!((f.picture_text.as_str(), f.len), ("-9(14).99", 17));
        assert_eq!(f.picture, Picture::Signed { int: 13, scale: 2 });
        for l in layouts() {
            for f in &l.fields {
                if let Picture::Signed { int, scale } = f.picture {
                    assert_eq!(
                        2 + usize::from(int) + usize::from(scale),
                        f.len,
                        "{}",
                        f.name
                    );
                }
            }
        }
    }

    fn field(table: &str, name: &str) -> &'static Field {
        layout(table).and_then(|l| l.field(name)).expect("field")
    }

    fn write(f: &Field, cell: Cell, ty: &ColumnType) -> Result<String, FieldError> {
        let mut out = Vec::new();
        f.write(&cell, ty, &mut out)?;
        assert_eq!(out.len(), f.len);
        Ok(String::from_utf8(out).expect("ascii"))
    }

    #[test]
    fn pictures_write_as_the_layout_says() {
        let t = ColumnType::Text;
        assert_eq!(
            write(field("cclf1", "CLM_BILL_FAC_TYPE_CD"), Cell::text("1"), &t),
            Ok("1".into())
        );
        assert_eq!(
            write(field("cclf2", "CLM_LINE_NUM"), Cell::text("7"), &t),
            Ok("0000000007".into())
        );
        assert_eq!(
            write(field("cclf1", "PRNCPL_DGNS_CD"), Cell::text("E119"), &t),
            Ok("E119   ".into())
        );
        let money = ColumnType::Decimal {
            precision: 17,
            scale: 2,
        };
        assert_eq!(
            write(field("cclf1", "CLM_PMT_AMT"), Cell::Decimal(12_345), &money),
            Ok(" 0000000000123.45".into())
        );
        assert_eq!(
            write(
                field("cclf1", "CLM_FROM_DT"),
                Cell::Date(0),
                &ColumnType::Date
            ),
            Ok("1970-01-01".into())
        );
        assert_eq!(
            write(field("cclf1", "CLM_FROM_DT"), Cell::Null, &ColumnType::Date),
            Ok(" ".repeat(10))
        );
        // A line break would cut the record: a value that does not fit, never written.
        for text in ["E1\n9", "E1\r9", "E\u{7}"] {
            assert_eq!(
                write(field("cclf1", "PRNCPL_DGNS_CD"), Cell::text(text), &t),
                Err(FieldError::ControlCharacter)
            );
        }
    }

    #[test]
    fn an_amount_read_is_at_most_the_pictures_digits() {
        let f = field("cclf1", "CLM_PMT_AMT");
        let money = ColumnType::Decimal {
            precision: 15,
            scale: 2,
        };
        let read = |text: &str| f.read(text.as_bytes(), &money);
        assert_eq!(read(" 0000000000123.45"), Ok(Cell::Decimal(12_345)));
        assert_eq!(read("-0000000000123.45"), Ok(Cell::Decimal(-12_345)));
        // A digit in the sign position: 14 digits before the point, one beyond the picture.
        assert_eq!(
            read("10000000000123.45"),
            Err(FieldError::OutOfRange {
                picture: f.picture_text.clone()
            })
        );
        // Spaces pad a field; a tab or vertical tab is no part of a number.
        assert!(read("\u{b}0000000000683.67").is_err());
        assert!(read("\t0000000000683.67").is_err());
        let text = |s: &str| f.read(s.as_bytes(), &ColumnType::Text);
        assert!(text("10000000000123.45").is_err());
        // A control byte in a text field is damage, refused as on the way out.
        let code = field("cclf1", "PRNCPL_DGNS_CD");
        for raw in ["E1\09", "E\u{7}  "] {
            let raw = format!("{raw:<width$}", width = code.len);
            assert_eq!(
                code.read(raw.as_bytes(), &ColumnType::Text),
                Err(FieldError::ControlCharacter)
            );
        }
        assert_eq!(text(" 0000000000123.45"), Ok(Cell::text("123.45")));
        // The sign position holds `-` or a space, never `+` (it was taken).
        let bad = Err(FieldError::BadNumber {
            picture: f.picture_text.clone(),
        });
        assert_eq!(read("+0000000000123.45"), bad);
        assert_eq!(read("  +00000000123.45"), bad);
        assert_eq!(text("+0000000000123.45"), bad);
    }

    #[test]
    fn values_that_do_not_fit_are_errors_not_cut() {
        let t = ColumnType::Text;
        assert!(matches!(
            write(
                field("cclf4", "CLM_PROD_TYPE_CD"),
                Cell::text("principal"),
                &t
            ),
            Err(FieldError::TooLong {
                len: 9,
                width: 1,
                ..
            })
        ));
        assert!(matches!(
            write(field("cclf2", "CLM_LINE_NUM"), Cell::text("-1"), &t),
            Err(FieldError::NotDigits { .. })
        ));
        assert!(matches!(
            write(field("cclf2", "CLM_LINE_NUM"), Cell::text("54025.5"), &t),
            Err(FieldError::NotDigits { .. })
        ));
        let money = ColumnType::Decimal {
            precision: 30,
            scale: 2,
        };
        assert!(matches!(
            write(
                field("cclf1", "CLM_PMT_AMT"),
                Cell::Decimal(10i128.pow(15)),
                &money
            ),
            Err(FieldError::OutOfRange { .. })
        ));
        let fine = ColumnType::Decimal {
            precision: 30,
            scale: 4,
        };
        assert!(matches!(
            write(field("cclf1", "CLM_PMT_AMT"), Cell::Decimal(12_345), &fine),
            Err(FieldError::OutOfRange { .. })
        ));
        assert_eq!(
            write(field("cclf1", "CLM_PMT_AMT"), Cell::Decimal(12_300), &fine),
            Ok(" 0000000000001.23".into())
        );
    }

    #[test]
    fn fields_read_back_to_the_tables_forms() {
        let t = ColumnType::Text;
        let f = field("cclf2", "CLM_LINE_NUM");
        assert_eq!(f.read(b"0000000007", &t), Ok(Cell::text("7")));
        assert_eq!(f.read(b"0000000000", &t), Ok(Cell::text("0")));
        assert!(f.read(b"00000000x7", &t).is_err());
        let code = field("cclf1", "CLM_TYPE_CD");
        assert_eq!(code.read(b"10", &t), Ok(Cell::text("10")));
        assert_eq!(
            field("cclf8", "BENE_AGE").read(b"082", &t),
            Ok(Cell::text("082"))
        );
        let money = ColumnType::Decimal {
            precision: 17,
            scale: 2,
        };
        let amt = field("cclf1", "CLM_PMT_AMT");
        assert_eq!(
            amt.read(b"-0000000000123.45", &money),
            Ok(Cell::Decimal(-12_345))
        );
        assert_eq!(
            amt.read(b" 0000000000123.45", &money),
            Ok(Cell::Decimal(12_345))
        );
        assert!(amt.read(b" 00000000001x3.45", &money).is_err());
        let dt = field("cclf1", "CLM_FROM_DT");
        assert_eq!(
            dt.read(b"2024-02-29", &ColumnType::Date),
            Ok(Cell::Date(19_782))
        );
        assert_eq!(
            dt.read(b"2023-02-29", &ColumnType::Date),
            Err(FieldError::BadDate)
        );
        assert_eq!(dt.read(b"          ", &ColumnType::Date), Ok(Cell::Null));
        assert_eq!(
            field("cclf1", "PRNCPL_DGNS_CD").read(b"E119   ", &t),
            Ok(Cell::text("E119"))
        );
    }

    #[test]
    fn file_names_follow_cms_and_name_their_table() {
        let at = Stamp::from_micros(1_733_200_496_789_000);
        let name = file_name("1234", layout("cclfa").expect("A"), at);
        assert_eq!(name, "P.A1234.ACO.ZCAY24.D241203.T0434567");
        assert_eq!(
            layout_of_file_name(&name).map(|l| l.file.as_str()),
            Some("CCLFA")
        );
        assert_eq!(
            layout_of_file_name("P.A1234.ACO.ZCR8Y24.D241203.T0434567").map(|l| l.file.as_str()),
            Some("CCLF8")
        );
        assert_eq!(
            layout_of_file_name("cclf5.txt").map(|l| l.file.as_str()),
            Some("CCLF5")
        );
        assert_eq!(layout_of_file_name("claims.txt"), None);
        assert_eq!(layout_of_file_name("CCLF10.txt"), None);
    }

    #[test]
    fn summary_records_round_trip() {
        let l = layout("cclf5").expect("CCLF5");
        let rec = summary_record(l, 207);
        assert_eq!(rec.len(), layout("cclf0").expect("0").record_len);
        assert_eq!(
            parse_summary_record(&rec),
            Some(("CCLF5".into(), 207, l.record_len))
        );
    }
}
