//! The persistent beneficiary crosswalk (`bene_xref`), CCLF9 built from it, and the claim-history
//! record (`_claimline_claims`).

use claimline_model::{Cell, Column, ColumnType, CompactString, TableSchema};
use claimline_ndjson::Resource;

use crate::{US_MBI, patient_mbi, str_at};

/// The table of every MBI of every beneficiary ever loaded.
pub const BENE_XREF: &str = "bene_xref";
/// The table that records each run's claim versions and cancels (the history rule's input).
pub const CLAIMS_TABLE: &str = "_claimline_claims";

/// One MBI of a beneficiary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbiRecord {
    /// The MBI.
    pub mbi: String,
    /// `period.start`, as its date (`YYYY-MM-DD`), when given.
    pub start: Option<String>,
    /// `period.end`, as its date, when given.
    pub end: Option<String>,
    /// The beneficiary's current MBI (the one [`patient_mbi`] picks).
    pub current: bool,
}

/// Every `us-mbi` identifier of a Patient, the current one flagged; empty for other resources.
pub fn patient_mbis(r: &Resource<'_>) -> Vec<MbiRecord> {
    let Some((_, _, current)) = patient_mbi(r) else {
        return Vec::new();
    };
    let mut out: Vec<MbiRecord> = Vec::new();
    for ident in r.root.get("identifier").into_iter().flat_map(|i| i.items()) {
        if str_at(ident, "system") != Some(US_MBI) {
            continue;
        }
        let Some(value) = str_at(ident, "value") else {
            continue;
        };
        let date = |k: &str| {
            ident
                .get("period")
                .and_then(|p| str_at(p, k))
                .map(|d| d.chars().take(10).collect::<String>())
        };
        let rec = MbiRecord {
            mbi: value.to_owned(),
            start: date("start"),
            end: date("end"),
            current: value == current,
        };
        if !out.contains(&rec) {
            out.push(rec);
        }
    }
    out
}

pub(crate) fn lineage_columns() -> Vec<Column> {
    vec![
        Column::new("_resource_id", ColumnType::Text).describe("The Patient's id"),
        Column::new("_source_file", ColumnType::Text)
            .describe("The NDJSON file the Patient came from"),
        Column::new("_line", ColumnType::Integer).describe("1-based line number in that file"),
        Column::new("_api_version", ColumnType::Code).describe("BCDA API version: v1, v2 or v3"),
        Column::new("_last_updated", ColumnType::Timestamp)
            .describe("meta.lastUpdated of the Patient"),
        Column::new("_run_id", ColumnType::Code).describe("The claimline run that loaded the row"),
    ]
}

/// `bene_xref`: one row per MBI per beneficiary, replaced per beneficiary
/// (`_api_version`, `_resource_id`) whenever a Patient of that beneficiary is loaded again.
pub fn bene_xref_schema() -> TableSchema {
    let mut columns = vec![
        Column::new("BENE_ID", ColumnType::Code).describe(
            "The beneficiary id: the Patient's id (v1/v2 CCW bene_id, v3 IDR BENE_SK; separate spaces, keep _api_version)",
        ),
        Column::new("MBI", ColumnType::Text).describe("A Medicare Beneficiary Identifier"),
        Column::new("MBI_EFCTV_DT", ColumnType::Text)
            .describe("identifier.period.start as YYYY-MM-DD, when given"),
        Column::new("MBI_OBSLT_DT", ColumnType::Text)
            .describe("identifier.period.end as YYYY-MM-DD, when given"),
        Column::new("MBI_CURRENT", ColumnType::Boolean).describe(
            "The current MBI (v1/v2: flagged current; v3: no period.end, else the latest end)",
        ),
    ];
    columns.extend(lineage_columns());
    TableSchema {
        replace_key: vec!["_api_version".into(), "_resource_id".into()],
        newest_wins: true,
        indexes: vec!["_resource_id".into(), "MBI".into()],
        ..TableSchema::new(BENE_XREF, columns)
    }
}

/// CCLF9, the MBI crosswalk: one row per previous MBI of a beneficiary, from `bene_xref`.
pub fn cclf9_schema() -> TableSchema {
    let mut columns = vec![
        Column::new("HICN_MBI_XREF_IND", ColumnType::Code)
            .describe("HICN/MBI XREF Indicator: M (the crosswalk is MBI to MBI)"),
        Column::new("CRNT_NUM", ColumnType::Text).describe("Current Beneficiary Identifier"),
        Column::new("PRVS_NUM", ColumnType::Text).describe("Previous Beneficiary Identifier"),
        Column::new("PRVS_ID_EFCTV_DT", ColumnType::Text)
            .describe("Previous Identifier Effective Date (period.start; text: BFD may omit it)"),
        Column::new("PRVS_ID_OBSLT_DT", ColumnType::Text)
            .describe("Previous Identifier Obsolete Date (period.end; text: BFD may omit it)"),
        Column::new("BENE_RRB_NUM", ColumnType::Text)
            .describe("Beneficiary Railroad Board Number: not in BCDA, NULL"),
    ];
    columns.extend(lineage_columns());
    TableSchema {
        replace_key: vec!["_api_version".into(), "_resource_id".into()],
        newest_wins: true,
        indexes: vec!["_resource_id".into()],
        ..TableSchema::new("cclf9", columns)
    }
}

/// `_claimline_claims`: per run, the winning version of each claim group and the cancels, the
/// input of the history rule (see the README's Parquet current-rows query). Appended, never
/// replaced, but for a run id loaded again, whose earlier rows it replaces.
pub fn claims_schema() -> TableSchema {
    let schema = TableSchema::new(
        CLAIMS_TABLE,
        vec![
            Column::new("_api_version", ColumnType::Code),
            Column::new("_claim_key", ColumnType::Code),
            Column::new("_resource_id", ColumnType::Text),
            Column::new("_last_updated", ColumnType::Timestamp),
            Column::new("_action", ColumnType::Code).describe(
                "version: the run's winning version of the group; cancel: a cancelled version",
            ),
            Column::new("_run_id", ColumnType::Code),
        ],
    );
    // Each load looks up the groups it touches.
    TableSchema {
        indexes: vec!["_claim_key".into(), "_resource_id".into()],
        ..schema
    }
}

/// One row of `_claimline_claims` ([`claims_schema`]'s columns, in order): the one place that
/// knows them, for every writer (a BCDA load, a CCLF load). An array, not a `Vec`: the BCDA load
/// makes its rows straight into Arrow batches, with no row allocated.
pub fn claims_row(
    api_version: Option<&str>,
    claim_key: &str,
    resource_id: &str,
    last_updated: Option<i64>,
    action: crate::Action,
    run_id: &str,
) -> [Cell; 6] {
    [
        api_version.map_or(Cell::Null, Cell::text),
        Cell::text(claim_key),
        Cell::text(resource_id),
        last_updated.map_or(Cell::Null, Cell::Timestamp),
        Cell::text(action.as_str()),
        Cell::text(run_id),
    ]
}

/// Rows of `bene_xref` and `cclf9` for one Patient with the given lineage cells (see
/// [`Plan::evaluate`](crate::Plan::evaluate)).
pub(crate) fn xref_rows(records: &[MbiRecord], bene: &str, lineage: &[Cell]) -> XrefRows {
    let text = |s: &Option<String>| s.as_deref().map_or(Cell::Null, Cell::text);
    let mut xref = Vec::new();
    let mut cclf9 = Vec::new();
    let current = records.iter().find(|m| m.current).map(|m| m.mbi.as_str());
    for m in records {
        let mut row = vec![
            Cell::text(bene),
            Cell::text(m.mbi.as_str()),
            text(&m.start),
            text(&m.end),
            Cell::Bool(m.current),
        ];
        row.extend(lineage.iter().cloned());
        xref.push(row);
        if let (false, Some(cur)) = (m.current, &current) {
            let mut row = vec![
                Cell::text("M"),
                Cell::text(*cur),
                Cell::text(m.mbi.as_str()),
                text(&m.start),
                text(&m.end),
                Cell::Null,
            ];
            row.extend(lineage.iter().cloned());
            cclf9.push(row);
        }
    }
    XrefRows { xref, cclf9 }
}

pub(crate) struct XrefRows {
    pub xref: Vec<Vec<Cell>>,
    pub cclf9: Vec<Vec<Cell>>,
}

/// `_claimline_counts`: per run, claim type × service month, claims, lines and payment sum.
pub fn counts_schema() -> TableSchema {
    TableSchema::new(
        COUNTS_TABLE,
        vec![
            Column::new("_run_id", ColumnType::Code),
            Column::new("_api_version", ColumnType::Code),
            Column::new("CLAIM_TYPE", ColumnType::Code)
                .describe("eob-type code (v3: EOB-TYPE): CARRIER, DME, HHA, HOSPICE, INPATIENT, OUTPATIENT, PDE, SNF"),
            Column::new("SERVICE_MONTH", ColumnType::Code)
                .describe("YYYY-MM of billablePeriod.start (PDE: item.servicedDate)"),
            Column::new("CLAIMS", ColumnType::Integer)
                .describe("EOBs whose rows this run loaded (current versions; v3 exclusions left out)"),
            Column::new("LINES", ColumnType::Integer).describe("Their item count"),
            Column::new(
                "PAYMENT_SUM",
                ColumnType::Decimal {
                    precision: 18,
                    scale: 2,
                },
            )
            .describe("Sum of payment.amount.value (CLM_PMT_AMT; PDE: NULL in payment, so 0; a value too large for CLM_PMT_AMT counts 0; NULL when the sum is too large for this column)"),
        ],
    )
}

/// The reconciliation table.
pub const COUNTS_TABLE: &str = "_claimline_counts";

/// Cents of a payment CLM_PMT_AMT (DECIMAL(15,2)) holds: below 10^15.
const PAYMENT_LIMIT: u128 = 10u128.pow(15);

/// Cents a `PAYMENT_SUM` cell (DECIMAL(18,2)) holds: below 10^18. A sum past it is NULL.
pub const PAYMENT_SUM_LIMIT: u128 = 10u128.pow(18);

/// What one EOB adds to `_claimline_counts`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClaimSummary {
    /// The eob-type code (short codes are held inline: no allocation per EOB).
    pub claim_type: CompactString,
    /// `YYYY-MM` (inline).
    pub month: CompactString,
    /// Items.
    pub lines: u64,
    /// `payment.amount.value` in cents.
    pub payment_cents: i128,
    /// `payment.amount.value` is there but no amount `CLM_PMT_AMT` holds (not a number, or of
    /// 13 digits or more before the point): counted as 0, said as a row error.
    pub payment_unusable: bool,
}

/// The reconciliation summary of an EOB (`None` for other resources). Its type is one of
/// [`claimline_ndjson::EOB_TYPES`], `other` for any other `eob-type` code, empty when there is
/// none; its month `YYYY-MM`,
/// empty when the claim's first date does not start so: text kept in `_claimline_counts` and
/// shown by reports is never a value of the record's own.
pub fn claim_summary(r: &Resource<'_>) -> Option<ClaimSummary> {
    if r.resource_type != "ExplanationOfBenefit" {
        return None;
    }
    let claim_type = match claimline_ndjson::eob_type_code(r.root) {
        Some(code) => claimline_ndjson::known_claim_type(code).unwrap_or("other"),
        None => "",
    }
    .into();
    let start = r
        .root
        .get("billablePeriod")
        .and_then(|p| str_at(p, "start"))
        .or_else(|| {
            r.root
                .get("item")
                .and_then(|i| i.index(0))
                .and_then(|i| str_at(i, "servicedDate"))
        })
        .unwrap_or("");
    let month: CompactString = match start.as_bytes().get(..7) {
        Some([y1, y2, y3, y4, b'-', m1, m2])
            if [y1, y2, y3, y4, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
        {
            start[..7].into()
        }
        _ => CompactString::default(),
    };
    let lines = r.root.get("item").and_then(|i| i.array_len()).unwrap_or(0) as u64;
    let value = r
        .root
        .get("payment")
        .and_then(|p| p.get("amount"))
        .and_then(|a| a.get("value"));
    let payment = value
        .and_then(|v| v.number_text())
        .and_then(claimline_view::Decimal::parse)
        .and_then(|d| d.rescale(2))
        .map(|d| d.mantissa())
        // A value too large for CLM_PMT_AMT (DECIMAL(15,2)) is NULL there, a row error: 0 here.
        .filter(|cents| cents.unsigned_abs() < PAYMENT_LIMIT);
    Some(ClaimSummary {
        claim_type,
        month,
        lines,
        payment_cents: payment.unwrap_or(0),
        payment_unusable: value.is_some_and(|v| !matches!(v.kind(), claimline_ndjson::Kind::Null))
            && payment.is_none(),
    })
}
