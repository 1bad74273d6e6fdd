//! CCLF8, beneficiary demographics and entitlement: one row per beneficiary, joined in the link
//! stage from the beneficiary's Patient and its Coverage resources (Part A, B, C, D; v3 also
//! `dual-`).
//!
//! Choices (also in each column's description):
//! - A row is written only for a beneficiary whose Patient is in the run; Coverage without its
//!   Patient is not enough for a row (it would replace the demographics an earlier run loaded with
//!   NULLs) and is counted ([`Cclf8Builder::coverage_only`]).
//! - Monthly fields (v1/v2 `dual_01`…`dual_12`, `buyin01`…`buyin12`) take the most recent month
//!   present on the Coverage with the latest `rfrnc_yr`; v3 has one value per field (the `dual-`
//!   Coverage's `BENE-DUAL-STUS-CD`, the Part A/B `BENE-BUYIN-CD`).
//! - Per field, Part A Coverage first, then Part B, D, C, dual; an `active` Coverage before a
//!   `cancelled` one.
//! - `BENE_AGE`: whole years from `BENE_DOB` to the export's `transactionTime` (the manifest's),
//!   else to the run's start; to `BENE_DEATH_DT` when the beneficiary died before.
//! - `BENE_FIPS_STATE_CD` from `address.state` (USPS to FIPS); `BENE_SEX_CD` 1 male, 2 female,
//!   0 unknown (from `us-core-sex` SNOMED, else `gender`); `BENE_RACE_CD` from BFD's `race`
//!   extension (v1/v2), else the `us-core-race` OMB category (v3: 1 White, 2 Black, 4 Asian,
//!   6 American Indian or Alaska Native, 3 other, 0 unknown).

use std::collections::HashMap;

use claimline_ndjson::{ApiVersion, Cursor, Resource};
use claimline_sink::{Cell, Column, ColumnType, TableSchema};

use crate::{patient_mbi, str_at};

/// The columns of CCLF8, in CCLF order, with how each is filled.
const COLUMNS: [(&str, &str); 31] = [
    (
        "BENE_MBI_ID",
        "Medicare Beneficiary Identifier: the current MBI (as bene_xref)",
    ),
    (
        "BENE_HIC_NUM",
        "Beneficiary HIC Number: not supplied by BCDA, NULL",
    ),
    (
        "BENE_FIPS_STATE_CD",
        "Beneficiary FIPS State Code: from Patient.address.state (USPS to FIPS)",
    ),
    (
        "BENE_FIPS_CNTY_CD",
        "Beneficiary FIPS County Code: not supplied by BCDA, NULL",
    ),
    (
        "BENE_ZIP_CD",
        "Beneficiary ZIP Code: Patient.address.postalCode, first 5",
    ),
    ("BENE_DOB", "Beneficiary Date of Birth: Patient.birthDate"),
    (
        "BENE_SEX_CD",
        "Beneficiary Sex Code: 1 male, 2 female, 0 unknown (us-core-sex, else gender)",
    ),
    (
        "BENE_RACE_CD",
        "Beneficiary Race Code: BFD race extension (v1/v2), else us-core-race OMB category",
    ),
    (
        "BENE_AGE",
        "Beneficiary Age: whole years at the export's transactionTime (or death)",
    ),
    (
        "BENE_MDCR_STUS_CD",
        "Beneficiary Medicare Status Code: Coverage ms_cd / BENE-MDCR-STUS-CD",
    ),
    (
        "BENE_DUAL_STUS_CD",
        "Beneficiary Dual Status Code: most recent dual_MM present (v3: dual- Coverage)",
    ),
    (
        "BENE_DEATH_DT",
        "Beneficiary Death Date: Patient.deceasedDateTime, its date",
    ),
    (
        "BENE_RNG_BGN_DT",
        "Hospice enrollment start: on hospice claims, not Patient/Coverage: NULL",
    ),
    (
        "BENE_RNG_END_DT",
        "Hospice enrollment end: on hospice claims, not Patient/Coverage: NULL",
    ),
    (
        "BENE_1ST_NAME",
        "Beneficiary First Name: Patient.name.given[0]",
    ),
    (
        "BENE_MIDL_NAME",
        "Beneficiary Middle Name: Patient.name.given[1]",
    ),
    (
        "BENE_LAST_NAME",
        "Beneficiary Last Name: Patient.name.family",
    ),
    (
        "BENE_ORGNL_ENTLMT_RSN_CD",
        "Original Entitlement Reason Code: orec / BENE-MDCR-ENTLMT-RSN-CD",
    ),
    (
        "BENE_ENTLMT_BUYIN_IND",
        "Entitlement Buy-in Indicator: most recent buyinMM present (v3: BENE-BUYIN-CD)",
    ),
    (
        "BENE_PART_A_ENRLMT_BGN_DT",
        "Part A begin: the Part A Coverage's period.start",
    ),
    (
        "BENE_PART_B_ENRLMT_BGN_DT",
        "Part B begin: the Part B Coverage's period.start",
    ),
    (
        "BENE_LINE_1_ADR",
        "Mailing address line 1: Patient.address.line[0]",
    ),
    (
        "BENE_LINE_2_ADR",
        "Mailing address line 2: Patient.address.line[1]",
    ),
    (
        "BENE_LINE_3_ADR",
        "Mailing address line 3: Patient.address.line[2]",
    ),
    (
        "BENE_LINE_4_ADR",
        "Mailing address line 4: Patient.address.line[3]",
    ),
    (
        "BENE_LINE_5_ADR",
        "Mailing address line 5: Patient.address.line[4]",
    ),
    (
        "BENE_LINE_6_ADR",
        "Mailing address line 6: Patient.address.line[5]",
    ),
    ("GEO_ZIP_PLC_NAME", "Beneficiary City: Patient.address.city"),
    (
        "GEO_USPS_STATE_CD",
        "Beneficiary State: Patient.address.state",
    ),
    (
        "GEO_ZIP5_CD",
        "Beneficiary Zip Code: Patient.address.postalCode, first 5",
    ),
    (
        "GEO_ZIP4_CD",
        "Beneficiary Zip Code Ext.: the 4 digits after a ZIP+4 postalCode",
    ),
];

const DATES: [&str; 6] = [
    "BENE_DOB",
    "BENE_DEATH_DT",
    "BENE_RNG_BGN_DT",
    "BENE_RNG_END_DT",
    "BENE_PART_A_ENRLMT_BGN_DT",
    "BENE_PART_B_ENRLMT_BGN_DT",
];

/// The CCLF8 table, with the non-claim lineage of the beneficiary's Patient.
pub fn cclf8_schema() -> TableSchema {
    let mut columns: Vec<Column> = COLUMNS
        .iter()
        .map(|(name, desc)| {
            let ty = if DATES.contains(name) {
                ColumnType::Date
            } else {
                ColumnType::Text
            };
            Column::new(*name, ty).describe(*desc)
        })
        .collect();
    columns.extend(crate::xref::lineage_columns());
    TableSchema {
        replace_key: vec!["_api_version".into(), "_resource_id".into()],
        indexes: vec!["_resource_id".into(), "BENE_MBI_ID".into()],
        ..TableSchema::new("cclf8", columns)
    }
}

/// What one Patient or Coverage gives to CCLF8.
#[derive(Debug, Clone)]
pub enum BenePart {
    /// A Patient's fields and lineage.
    Patient {
        /// API version.
        api_version: Option<ApiVersion>,
        /// Beneficiary id.
        bene: String,
        /// Field name → value.
        fields: Vec<(&'static str, Cell)>,
        /// The Patient's lineage cells.
        lineage: Vec<Cell>,
    },
    /// A Coverage's fields.
    Coverage {
        /// API version.
        api_version: Option<ApiVersion>,
        /// Beneficiary id.
        bene: String,
        /// Precedence: lower first.
        rank: (u8, u8, std::cmp::Reverse<String>),
        /// Field name → value.
        fields: Vec<(&'static str, Cell)>,
    },
}

const BB: &str = "https://bluebutton.cms.gov/resources/variables/";
const BB3: &str = "https://bluebutton.cms.gov/fhir/StructureDefinition/";

fn ext_code<'a>(c: Cursor<'a>, url: &str) -> Option<&'a str> {
    c.get("extension")
        .into_iter()
        .flat_map(|e| e.items())
        .find(|e| str_at(*e, "url") == Some(url))
        .and_then(|e| {
            e.get("valueCoding")
                .and_then(|v| str_at(v, "code"))
                .or_else(|| str_at(e, "valueCode"))
                .or_else(|| str_at(e, "valueString"))
        })
}

/// The most recent month present of a monthly extension (`prefix` + `01`…`12`).
fn latest_month<'a>(c: Cursor<'a>, prefix: &str) -> Option<&'a str> {
    (1..=12)
        .rev()
        .find_map(|m| ext_code(c, &format!("{BB}{prefix}{m:02}")))
}

fn text(s: Option<&str>) -> Cell {
    s.map_or(Cell::Null, |s| Cell::Text(s.to_owned()))
}

fn date(s: Option<&str>) -> Cell {
    s.and_then(|s| s.get(..10))
        .and_then(crate::parse_day)
        .map_or(Cell::Null, Cell::Date)
}

/// What a Patient or Coverage gives to CCLF8 (`None` for other resources).
pub fn bene_part(r: &Resource<'_>, lineage: impl FnOnce() -> Vec<Cell>) -> Option<BenePart> {
    let root = r.root;
    match r.resource_type {
        "Patient" => {
            let (_, bene, mbi) = patient_mbi(r)
                .or_else(|| r.id.map(|id| (r.api_version, id.to_owned(), String::new())))?;
            let address = root.get("address").and_then(|a| a.index(0));
            let addr = |k: &str| address.and_then(|a| str_at(a, k));
            let line = |i: usize| address.and_then(|a| a.get("line")).and_then(|l| l.index(i));
            let name = root.get("name").and_then(|n| n.index(0));
            let given = |i: usize| name.and_then(|n| n.get("given")).and_then(|g| g.index(i));
            let zip = addr("postalCode");
            let zip5 = zip.and_then(|z| z.get(..5));
            let zip4 = zip
                .map(|z| z.replace('-', ""))
                .and_then(|z| z.get(5..9).map(str::to_owned));
            let sex = match ext_code(
                root,
                "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex",
            ) {
                Some("248153007") => Some("1"),
                Some("248152002") => Some("2"),
                _ => match str_at(root, "gender") {
                    Some("male") => Some("1"),
                    Some("female") => Some("2"),
                    _ => Some("0"),
                },
            };
            let race =
                ext_code(root, &format!("{BB}race"))
                    .map(str::to_owned)
                    .or_else(|| {
                        let omb = root
                    .get("extension")
                    .into_iter()
                    .flat_map(|e| e.items())
                    .filter(|e| {
                        str_at(*e, "url")
                            == Some("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race")
                    })
                    .find_map(|e| ext_code(e, "ombCategory"))?;
                        Some(
                            match omb {
                                "2106-3" => "1",
                                "2054-5" => "2",
                                "2028-9" => "4",
                                "1002-5" => "6",
                                "UNK" | "ASKU" => "0",
                                _ => "3",
                            }
                            .to_owned(),
                        )
                    });
            let state = addr("state");
            let fields = vec![
                (
                    "BENE_MBI_ID",
                    text((!mbi.is_empty()).then_some(mbi.as_str())),
                ),
                ("BENE_FIPS_STATE_CD", text(state.and_then(fips_state))),
                ("BENE_ZIP_CD", text(zip5)),
                ("BENE_DOB", date(str_at(root, "birthDate"))),
                ("BENE_SEX_CD", text(sex)),
                ("BENE_RACE_CD", race.map_or(Cell::Null, Cell::Text)),
                ("BENE_DEATH_DT", date(str_at(root, "deceasedDateTime"))),
                ("BENE_1ST_NAME", text(given(0).and_then(|g| g.as_str()))),
                ("BENE_MIDL_NAME", text(given(1).and_then(|g| g.as_str()))),
                (
                    "BENE_LAST_NAME",
                    text(name.and_then(|n| str_at(n, "family"))),
                ),
                ("BENE_LINE_1_ADR", text(line(0).and_then(|l| l.as_str()))),
                ("BENE_LINE_2_ADR", text(line(1).and_then(|l| l.as_str()))),
                ("BENE_LINE_3_ADR", text(line(2).and_then(|l| l.as_str()))),
                ("BENE_LINE_4_ADR", text(line(3).and_then(|l| l.as_str()))),
                ("BENE_LINE_5_ADR", text(line(4).and_then(|l| l.as_str()))),
                ("BENE_LINE_6_ADR", text(line(5).and_then(|l| l.as_str()))),
                ("GEO_ZIP_PLC_NAME", text(addr("city"))),
                ("GEO_USPS_STATE_CD", text(state)),
                ("GEO_ZIP5_CD", text(zip5)),
                ("GEO_ZIP4_CD", zip4.map_or(Cell::Null, Cell::Text)),
            ];
            Some(BenePart::Patient {
                api_version: r.api_version,
                bene,
                fields,
                lineage: lineage(),
            })
        }
        "Coverage" => {
            let bene = root
                .get("beneficiary")
                .and_then(|b| str_at(b, "reference"))?
                .strip_prefix("Patient/")?
                .to_owned();
            let id = r.id.unwrap_or("");
            let part = if id.starts_with("part-a") {
                0
            } else if id.starts_with("part-b") {
                1
            } else if id.starts_with("part-d") {
                2
            } else if id.starts_with("part-c") {
                3
            } else {
                4
            };
            let cancelled = u8::from(str_at(root, "status") == Some("cancelled"));
            let year = ext_code(root, &format!("{BB}rfrnc_yr"))
                .or_else(|| {
                    root.get("extension")
                        .into_iter()
                        .flat_map(|e| e.items())
                        .find(|e| str_at(*e, "url") == Some(&format!("{BB}rfrnc_yr")))
                        .and_then(|e| str_at(e, "valueDate"))
                })
                .unwrap_or("")
                .to_owned();
            let start = root.get("period").and_then(|p| str_at(p, "start"));
            let v3 = |n: &str| ext_code(root, &format!("{BB3}{n}"));
            let mut fields = vec![
                (
                    "BENE_MDCR_STUS_CD",
                    text(ext_code(root, &format!("{BB}ms_cd")).or_else(|| v3("BENE-MDCR-STUS-CD"))),
                ),
                (
                    "BENE_DUAL_STUS_CD",
                    text(latest_month(root, "dual_").or_else(|| v3("BENE-DUAL-STUS-CD"))),
                ),
                (
                    "BENE_ORGNL_ENTLMT_RSN_CD",
                    text(
                        ext_code(root, &format!("{BB}orec"))
                            .or_else(|| v3("BENE-MDCR-ENTLMT-RSN-CD")),
                    ),
                ),
                (
                    "BENE_ENTLMT_BUYIN_IND",
                    text(latest_month(root, "buyin").or_else(|| v3("BENE-BUYIN-CD"))),
                ),
            ];
            match part {
                0 => fields.push(("BENE_PART_A_ENRLMT_BGN_DT", date(start))),
                1 => fields.push(("BENE_PART_B_ENRLMT_BGN_DT", date(start))),
                _ => {}
            }
            Some(BenePart::Coverage {
                api_version: r.api_version,
                bene,
                // The latest reference year first.
                rank: (cancelled, part, std::cmp::Reverse(year)),
                fields,
            })
        }
        _ => None,
    }
}

type Bene = (Option<ApiVersion>, String);
type Fields = Vec<(&'static str, Cell)>;
type Rank = (u8, u8, std::cmp::Reverse<String>);
/// A Patient part: arrival, fields, lineage.
type PatientPart = (usize, Fields, Vec<Cell>);
/// A Coverage part: arrival, precedence, fields.
type CoveragePart = (usize, Rank, Fields);

/// Joins Patient and Coverage parts by beneficiary into CCLF8 rows.
#[derive(Default)]
pub struct Cclf8Builder {
    patients: HashMap<Bene, PatientPart>,
    coverage: HashMap<Bene, Vec<CoveragePart>>,
    seen: usize,
}

impl Cclf8Builder {
    /// Adds one part (in input order: a later Patient of the same beneficiary replaces one
    /// before it).
    pub fn add(&mut self, part: BenePart) {
        self.seen += 1;
        match part {
            BenePart::Patient {
                api_version,
                bene,
                fields,
                lineage,
            } => {
                self.patients
                    .insert((api_version, bene), (self.seen, fields, lineage));
            }
            BenePart::Coverage {
                api_version,
                bene,
                rank,
                fields,
            } => self
                .coverage
                .entry((api_version, bene))
                .or_default()
                .push((self.seen, rank, fields)),
        }
    }

    /// Beneficiaries with Coverage but no Patient in the run (no CCLF8 row).
    pub fn coverage_only(&self) -> u64 {
        self.coverage
            .keys()
            .filter(|k| !self.patients.contains_key(*k))
            .count() as u64
    }

    /// The rows, in the order the Patients came; `as_of` is the day (days since the epoch)
    /// `BENE_AGE` is computed at.
    pub fn rows(mut self, as_of: i32) -> Vec<Vec<Cell>> {
        let mut patients: Vec<(Bene, PatientPart)> = self.patients.drain().collect();
        patients.sort_by_key(|(_, (seen, _, _))| *seen);
        let mut out = Vec::with_capacity(patients.len());
        for (key, (_, fields, lineage)) in patients {
            let mut row: HashMap<&str, Cell> = fields.into_iter().collect();
            let mut coverage = self.coverage.remove(&key).unwrap_or_default();
            coverage.sort_by(|a, b| (&a.1, a.0).cmp(&(&b.1, b.0)));
            for (_, _, fields) in coverage {
                for (name, cell) in fields {
                    if !matches!(cell, Cell::Null) {
                        row.entry(name).or_insert(cell);
                    }
                }
            }
            if let Some(Cell::Date(dob)) = row.get("BENE_DOB") {
                let end = match row.get("BENE_DEATH_DT") {
                    Some(Cell::Date(d)) if *d < as_of => *d,
                    _ => as_of,
                };
                if let Some(age) = age(*dob, end) {
                    row.insert("BENE_AGE", Cell::Text(format!("{age:03}")));
                }
            }
            let mut cells: Vec<Cell> = COLUMNS
                .iter()
                .map(|(name, _)| row.remove(name).unwrap_or(Cell::Null))
                .collect();
            cells.extend(lineage);
            out.push(cells);
        }
        out
    }
}

/// Whole years from `dob` to `day` (days since the epoch); `None` before birth.
fn age(dob: i32, day: i32) -> Option<u32> {
    let (y0, m0, d0) = crate::civil(dob);
    let (y1, m1, d1) = crate::civil(day);
    let years = y1 - y0 - i64::from((m1, d1) < (m0, d0));
    u32::try_from(years).ok()
}

/// FIPS state code of a USPS state abbreviation (v1 samples already carry the FIPS code in
/// `address.state`: kept as is).
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
    FIPS.iter()
        .find(|(s, f)| *s == usps || *f == usps)
        .map(|(_, f)| *f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_fips() {
        let day = |s: &str| crate::parse_day(s).expect("date");
        assert_eq!(age(day("1959-03-14"), day("2026-03-13")), Some(66));
        assert_eq!(age(day("1959-03-14"), day("2026-03-14")), Some(67));
        assert_eq!(age(day("2030-01-01"), day("2026-01-01")), None);
        assert_eq!(fips_state("TX"), Some("48"));
        assert_eq!(fips_state("XX"), None);
        assert_eq!(fips_state("22"), Some("22"));
    }
}
