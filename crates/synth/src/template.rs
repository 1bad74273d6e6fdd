//! Real CMS-written resources compiled into byte templates with holes.
//!
//! A template is the resource's Go-style JSON text (sorted keys, Go number text) cut into literal
//! byte runs and holes: the parts that differ from claim to claim (ids, beneficiary, MBI, claim
//! group, dates, amounts, diagnosis and HCPCS codes, status, line items). Rendering copies the
//! literals and fills the holes, so generating a 20 KB EOB costs a few dozen small copies rather
//! than building and serializing a JSON tree.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::date;
use crate::json;

/// ICD-10-CM diagnosis codes (CCLF form, no dot) common on Medicare claims.
pub(crate) const ICD10: [&str; 40] = [
    "I10", "E119", "E785", "I2510", "N183", "J449", "I4891", "E039", "M170", "F329", "Z0000",
    "R0602", "M545", "K219", "G4733", "N400", "I509", "E6601", "M810", "Z79899", "R51", "J189",
    "N390", "Z7901", "E1122", "I480", "N179", "J9601", "A419", "I214", "I639", "M1711", "S72001A",
    "R2689", "F0390", "G309", "E871", "D649", "L03116", "Z87891",
];

/// HCPCS / CPT codes common on carrier and outpatient lines.
pub(crate) const HCPCS: [&str; 32] = [
    "99213", "99214", "99215", "99232", "99233", "36415", "80053", "85025", "93000", "71046",
    "G0439", "J1885", "97110", "97140", "99497", "G0008", "90662", "83036", "80061", "84443",
    "A0428", "E0601", "99203", "99204", "G2211", "97530", "73030", "77067", "J0897", "E1390",
    "A4253", "99308",
];

/// HCPCS modifiers common on Part B lines.
const MODIFIERS: [&str; 12] = [
    "25", "59", "LT", "RT", "26", "TC", "GT", "KO", "GP", "QW", "76", "XS",
];

const ICD10_SYSTEMS: [&str; 2] = [
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
];
const HCPCS_SYSTEMS: [&str; 3] = [
    "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
    "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
    "http://www.ama-assn.org/go/cpt",
];
const CLAIM_GROUP: &str = "https://bluebutton.cms.gov/resources/identifier/claim-group";
const MBI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-mbi";
const ADJUSTMENT_SYSTEM: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/CLM-ADJSTMT-TYPE-CD";

/// A part of a claim that differs from claim to claim.
#[derive(Debug, Clone)]
enum Hole {
    /// A string holding the claim number: `prefix` + number + `suffix` (already escaped).
    ClaimNo {
        prefix: Box<str>,
        suffix: Box<str>,
    },
    /// The claim-group identifier (v1/v2).
    Group,
    /// `Patient/<bene id>`.
    BeneRef,
    /// The beneficiary's current MBI.
    Mbi,
    /// A date `offset` days from the claim's anchor date, then `suffix` (a dateTime's time).
    Date {
        offset: i32,
        suffix: Box<str>,
    },
    /// An amount; the template's amount in cents scales the draw.
    Money {
        cents: u64,
    },
    /// An ICD-10-CM code.
    Icd10,
    /// A HCPCS / CPT code.
    Hcpcs,
    /// A HCPCS modifier (two characters).
    Modifier,
    /// v3's prescription service reference number (`CLM_LINE_RX_NUM`, CCLF `9(12)`).
    RxNumber,
    /// The EOB's `status`.
    Status,
    /// v3 `CLM-ADJSTMT-TYPE-CD` code and display.
    AdjustmentCode,
    AdjustmentDisplay,
    /// `meta.lastUpdated`.
    LastUpdated,
    /// An item's `sequence`.
    Sequence,
}

#[derive(Debug, Clone)]
enum Op {
    Lit(Box<[u8]>),
    Hole(Hole),
    /// The `item` array: one compiled program per template item, cycled to the drawn count.
    Items(Box<[Vec<Op>]>),
}

/// What one rendered claim is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimDraw<'a> {
    /// The claim number (ids and `clm_id`).
    pub claim_no: u64,
    /// The claim-group identifier.
    pub group: u64,
    /// The beneficiary id (`Patient/<id>`).
    pub bene_id: &'a str,
    /// The beneficiary's current MBI.
    pub mbi: &'a str,
    /// Day number of the claim's first service date.
    pub anchor_day: i64,
    /// A cancelled version (v1/v2 `status: cancelled`).
    pub cancelled: bool,
    /// v3: an adjustment of an earlier claim (`CLM_ADJSTMT_TYPE_CD` 2) rather than an original.
    pub adjusted: bool,
    /// `meta.lastUpdated`.
    pub last_updated: &'a str,
    /// Number of line items.
    pub items: usize,
}

/// A compiled resource template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    ops: Vec<Op>,
}

impl Template {
    /// Compiles a normalized resource (see [`normalize_eob`]): `claim_no` is the template's claim
    /// number, `bene_id` its beneficiary id.
    pub(crate) fn compile(v: &Value, claim_no: &str, bene_id: &str) -> Template {
        let anchor = anchor_day(v);
        let mut c = Compiler {
            ops: Vec::new(),
            lit: Vec::new(),
            claim_no,
            bene_ref: format!("Patient/{bene_id}"),
            anchor,
        };
        c.value(v, Ctx::Root);
        Template { ops: c.finish() }
    }

    /// Appends the rendered resource (no newline).
    pub(crate) fn render(&self, out: &mut Vec<u8>, draw: &ClaimDraw<'_>, rng: &mut ChaCha8Rng) {
        render_ops(&self.ops, out, draw, rng, 0);
    }
}

fn render_ops(
    ops: &[Op],
    out: &mut Vec<u8>,
    draw: &ClaimDraw<'_>,
    rng: &mut ChaCha8Rng,
    seq: usize,
) {
    for op in ops {
        match op {
            Op::Lit(bytes) => out.extend_from_slice(bytes),
            Op::Hole(hole) => render_hole(hole, out, draw, rng, seq),
            Op::Items(items) => {
                out.push(b'[');
                if !items.is_empty() {
                    for i in 0..draw.items.max(1) {
                        if i > 0 {
                            out.push(b',');
                        }
                        render_ops(&items[i % items.len()], out, draw, rng, i + 1);
                    }
                }
                out.push(b']');
            }
        }
    }
}

fn render_hole(
    hole: &Hole,
    out: &mut Vec<u8>,
    draw: &ClaimDraw<'_>,
    rng: &mut ChaCha8Rng,
    seq: usize,
) {
    match hole {
        Hole::ClaimNo { prefix, suffix } => {
            out.push(b'"');
            out.extend_from_slice(prefix.as_bytes());
            write_u64(out, draw.claim_no);
            out.extend_from_slice(suffix.as_bytes());
            out.push(b'"');
        }
        Hole::Group => {
            out.push(b'"');
            write_u64(out, draw.group);
            out.push(b'"');
        }
        Hole::BeneRef => {
            out.extend_from_slice(b"\"Patient/");
            out.extend_from_slice(draw.bene_id.as_bytes());
            out.push(b'"');
        }
        Hole::Mbi => {
            out.push(b'"');
            out.extend_from_slice(draw.mbi.as_bytes());
            out.push(b'"');
        }
        Hole::Date { offset, suffix } => {
            out.push(b'"');
            date::write_date(out, draw.anchor_day + i64::from(*offset));
            out.extend_from_slice(suffix.as_bytes());
            out.push(b'"');
        }
        Hole::Money { cents } => {
            let new = if *cents == 0 {
                if rng.random_bool(0.7) {
                    0
                } else {
                    rng.random_range(1..50_000u64)
                }
            } else {
                let scale = rng.random_range(0.25..1.75f64);
                ((*cents as f64) * scale).round() as u64
            };
            write_cents(out, new);
        }
        Hole::Icd10 => write_choice(out, &ICD10, rng),
        Hole::Hcpcs => write_choice(out, &HCPCS, rng),
        Hole::Modifier => write_choice(out, &MODIFIERS, rng),
        Hole::RxNumber => {
            out.push(b'"');
            write_u64(out, draw.claim_no % 1_000_000_000_000);
            out.push(b'"');
        }
        Hole::Status => {
            out.extend_from_slice(if draw.cancelled {
                b"\"cancelled\""
            } else {
                b"\"active\""
            });
        }
        Hole::AdjustmentCode => {
            out.extend_from_slice(if draw.adjusted { b"\"2\"" } else { b"\"0\"" });
        }
        Hole::AdjustmentDisplay => {
            out.extend_from_slice(if draw.adjusted {
                b"\"ADJUSTMENT\"".as_slice()
            } else {
                b"\"ORIGINAL\"".as_slice()
            });
        }
        Hole::LastUpdated => {
            out.push(b'"');
            out.extend_from_slice(draw.last_updated.as_bytes());
            out.push(b'"');
        }
        Hole::Sequence => write_u64(out, seq as u64),
    }
}

/// Appends one of `codes`, drawn from `rng`, as a JSON string.
fn write_choice(out: &mut Vec<u8>, codes: &[&str], rng: &mut impl rand::Rng) {
    out.push(b'"');
    out.extend_from_slice(codes[rng.random_range(0..codes.len())].as_bytes());
    out.push(b'"');
}

/// Appends the decimal text of `n`.
pub(crate) fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// An amount in cents as Go's shortest float text renders it: `250`, `12.5`, `84999.37`.
pub(crate) fn write_cents(out: &mut Vec<u8>, cents: u64) {
    write_u64(out, cents / 100);
    let rest = cents % 100;
    if rest == 0 {
        return;
    }
    out.push(b'.');
    out.push(b'0' + (rest / 10) as u8);
    if !rest.is_multiple_of(10) {
        out.push(b'0' + (rest % 10) as u8);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    Meta,
    Item,
    /// Inside `item.modifier` (its codings): HCPCS modifiers, not HCPCS codes.
    Modifier,
    Other,
}

struct Compiler<'a> {
    ops: Vec<Op>,
    lit: Vec<u8>,
    claim_no: &'a str,
    bene_ref: String,
    anchor: i64,
}

impl Compiler<'_> {
    fn flush(&mut self) {
        if !self.lit.is_empty() {
            let lit = std::mem::take(&mut self.lit);
            self.ops.push(Op::Lit(lit.into_boxed_slice()));
        }
    }

    fn hole(&mut self, hole: Hole) {
        self.flush();
        self.ops.push(Op::Hole(hole));
    }

    fn finish(mut self) -> Vec<Op> {
        self.flush();
        self.ops
    }

    fn sub(&self) -> Compiler<'_> {
        Compiler {
            ops: Vec::new(),
            lit: Vec::new(),
            claim_no: self.claim_no,
            bene_ref: self.bene_ref.clone(),
            anchor: self.anchor,
        }
    }

    fn value(&mut self, v: &Value, ctx: Ctx) {
        match v {
            Value::Object(map) => self.object(map, ctx),
            Value::Array(items) => {
                self.lit.push(b'[');
                let inner = if ctx == Ctx::Modifier {
                    Ctx::Modifier
                } else {
                    Ctx::Other
                };
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.lit.push(b',');
                    }
                    self.value(item, inner);
                }
                self.lit.push(b']');
            }
            Value::String(s) => self.string(s),
            other => json::write_value(&mut self.lit, other),
        }
    }

    fn string(&mut self, s: &str) {
        if s == self.bene_ref {
            self.hole(Hole::BeneRef);
        } else if let Some((day, rest)) = date::parse_date_prefix(s) {
            let mut offset = day - self.anchor;
            if s.starts_with("9999-") {
                // The snapshot sentinel (IDR load date): a load date weeks after the claim.
                offset = 30;
            } else if offset.abs() > 400 {
                // Processing and weekly dates far from service: keep them near the claim.
                offset = 7 + offset.abs() % 45;
            }
            let mut suffix = Vec::new();
            json::write_str_body(&mut suffix, rest);
            self.hole(Hole::Date {
                offset: offset as i32,
                suffix: String::from_utf8_lossy(&suffix).into(),
            });
        } else {
            json::write_str(&mut self.lit, s);
        }
    }

    fn object(&mut self, map: &Map<String, Value>, ctx: Ctx) {
        let system = map.get("system").and_then(Value::as_str).unwrap_or("");
        let is_icd = ICD10_SYSTEMS.contains(&system);
        let is_hcpcs = HCPCS_SYSTEMS.contains(&system);
        let is_money =
            map.contains_key("currency") || map.get("code").and_then(Value::as_str) == Some("USD");
        let is_identifier = map.contains_key("system") || map.contains_key("type");
        // The real v3 samples hold a decimal ("54025.5") where CCLF has a 12-digit number.
        let rx_number = map
            .get("category")
            .and_then(|c| c.get("coding"))
            .and_then(Value::as_array)
            .is_some_and(|codings| {
                codings
                    .iter()
                    .any(|c| c.get("code").and_then(Value::as_str) == Some("CLM_LINE_RX_NUM"))
            });
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        // Display texts of varied codes would contradict the new code.
        keys.retain(|k| !((is_icd || is_hcpcs) && k.as_str() == "display"));
        self.lit.push(b'{');
        for (i, key) in keys.into_iter().enumerate() {
            let Some(child) = map.get(key) else { continue };
            if i > 0 {
                self.lit.push(b',');
            }
            json::write_str(&mut self.lit, key);
            self.lit.push(b':');
            let k = key.as_str();
            match (k, child) {
                ("code", Value::String(_)) if is_icd => self.hole(Hole::Icd10),
                // Modifiers are two-character codes (CCLF's `HCPCS_n_MDFR_CD`), whatever the
                // template holds (a real sample has `Q9999` there).
                ("code", Value::String(_)) if is_hcpcs && ctx == Ctx::Modifier => {
                    self.hole(Hole::Modifier);
                }
                ("code", Value::String(_)) if is_hcpcs => self.hole(Hole::Hcpcs),
                ("modifier" | "coding", Value::Array(_))
                    if ctx == Ctx::Modifier || (k == "modifier" && ctx == Ctx::Item) =>
                {
                    self.value(child, Ctx::Modifier);
                }
                ("valueString", Value::String(_)) if rx_number => self.hole(Hole::RxNumber),
                ("code", Value::String(_)) if system == ADJUSTMENT_SYSTEM => {
                    self.hole(Hole::AdjustmentCode);
                }
                ("display", Value::String(_)) if system == ADJUSTMENT_SYSTEM => {
                    self.hole(Hole::AdjustmentDisplay);
                }
                ("value", Value::String(_)) if system == CLAIM_GROUP => self.hole(Hole::Group),
                ("value", Value::String(_)) if system == MBI_SYSTEM => self.hole(Hole::Mbi),
                ("value", Value::String(s)) if is_identifier && s == self.claim_no => {
                    self.hole(Hole::ClaimNo {
                        prefix: "".into(),
                        suffix: "".into(),
                    });
                }
                ("value", Value::Number(n)) if is_money => {
                    let cents = n
                        .to_string()
                        .parse::<f64>()
                        .map(|f| (f.abs() * 100.0).round() as u64)
                        .unwrap_or(0);
                    self.hole(Hole::Money { cents });
                }
                ("id", Value::String(s)) if ctx == Ctx::Root => match s.find(self.claim_no) {
                    Some(at) if !self.claim_no.is_empty() => {
                        let (prefix, rest) = s.split_at(at);
                        let suffix = &rest[self.claim_no.len()..];
                        self.hole(Hole::ClaimNo {
                            prefix: prefix.into(),
                            suffix: suffix.into(),
                        });
                    }
                    _ => json::write_str(&mut self.lit, s),
                },
                ("status", Value::String(_)) if ctx == Ctx::Root => self.hole(Hole::Status),
                ("meta", Value::Object(_)) if ctx == Ctx::Root => self.value(child, Ctx::Meta),
                ("lastUpdated", Value::String(_)) if ctx == Ctx::Meta => {
                    self.hole(Hole::LastUpdated);
                }
                ("sequence", Value::Number(_)) if ctx == Ctx::Item => self.hole(Hole::Sequence),
                ("item", Value::Array(items)) if ctx == Ctx::Root && !items.is_empty() => {
                    let programs: Vec<Vec<Op>> = items
                        .iter()
                        .map(|item| {
                            let mut sub = self.sub();
                            sub.value(item, Ctx::Item);
                            sub.finish()
                        })
                        .collect();
                    self.flush();
                    self.ops.push(Op::Items(programs.into_boxed_slice()));
                }
                _ => self.value(child, Ctx::Other),
            }
        }
        self.lit.push(b'}');
    }
}

/// The day a claim's dates are measured from: `billablePeriod.start`, else the earliest plausible
/// date in the resource.
fn anchor_day(v: &Value) -> i64 {
    if let Some(day) = v
        .pointer("/billablePeriod/start")
        .and_then(Value::as_str)
        .and_then(date::parse_date_prefix)
        .map(|(d, _)| d)
    {
        return day;
    }
    let mut min = None::<i64>;
    visit_strings(v, &mut |s| {
        if let Some((day, _)) = date::parse_date_prefix(s)
            && !s.starts_with("9999-")
            && day > date::days_from_civil(1990, 1, 1)
        {
            min = Some(min.map_or(day, |m| m.min(day)));
        }
    });
    min.unwrap_or(0)
}

fn visit_strings(v: &Value, f: &mut dyn FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| visit_strings(i, f)),
        Value::Object(map) => map.values().for_each(|i| visit_strings(i, f)),
        _ => {}
    }
}

/// Replaces every string equal to `from` with `to`, everywhere in `v`.
pub(crate) fn replace_strings(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Array(items) => items.iter_mut().for_each(|i| replace_strings(i, from, to)),
        Value::Object(map) => map.values_mut().for_each(|i| replace_strings(i, from, to)),
        _ => {}
    }
}

/// Sets the `code` (and `display`, when given) of every coding of `system` whose code is
/// `from` (any code when `from` is `None`).
pub(crate) fn recode(
    v: &mut Value,
    system: &str,
    from: Option<&str>,
    code: &str,
    display: Option<&str>,
) {
    match v {
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| recode(i, system, from, code, display)),
        Value::Object(map) => {
            let matches = map.get("system").and_then(Value::as_str) == Some(system)
                && from.is_none_or(|f| map.get("code").and_then(Value::as_str) == Some(f));
            if matches {
                map.insert("code".into(), Value::String(code.into()));
                if let Some(d) = display {
                    map.insert("display".into(), Value::String(d.into()));
                }
            } else {
                map.values_mut()
                    .for_each(|i| recode(i, system, from, code, display));
            }
        }
        _ => {}
    }
}

/// Whether any string in `v` is exactly `s`.
pub(crate) fn contains_string(v: &Value, s: &str) -> bool {
    let mut found = false;
    visit_strings(v, &mut |x| found |= x == s);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn render(v: &str, draw: &ClaimDraw<'_>) -> Value {
        let v: Value = serde_json::from_str(v).unwrap_or_default();
        let t = Template::compile(&v, "111", "9");
        let mut out = Vec::new();
        t.render(&mut out, draw, &mut ChaCha8Rng::seed_from_u64(1));
        serde_json::from_slice(&out).unwrap_or_default()
    }

    const DRAW: ClaimDraw<'static> = ClaimDraw {
        claim_no: 4242,
        group: 77,
        bene_id: "-100",
        mbi: "1AA0AA0AA00",
        anchor_day: 19_000,
        cancelled: true,
        adjusted: false,
        last_updated: "2026-01-02T03:04:05.678-05:00",
        items: 3,
    };

    #[test]
    fn holes_take_the_draw() {
        let v = render(
            r#"{"id":"carrier-111","status":"active","meta":{"lastUpdated":"IGNORED_FIELD"},
                "patient":{"reference":"Patient/9"},
                "billablePeriod":{"start":"2020-01-10","end":"2020-01-12T00:00:00Z"},
                "identifier":[{"system":"x","value":"111"},
                  {"system":"https://bluebutton.cms.gov/resources/identifier/claim-group","value":"5"}],
                "item":[{"sequence":1,"diagnosisSequence":[1]}],
                "payment":{"amount":{"currency":"USD","value":0.0}}}"#,
            &DRAW,
        );
        assert_eq!(v["id"], "carrier-4242");
        assert_eq!(v["status"], "cancelled");
        assert_eq!(v["meta"]["lastUpdated"], DRAW.last_updated);
        assert_eq!(v["patient"]["reference"], "Patient/-100");
        assert_eq!(v["billablePeriod"]["start"], date::date_text(19_000));
        assert_eq!(
            v["billablePeriod"]["end"],
            format!("{}T00:00:00Z", date::date_text(19_002))
        );
        assert_eq!(v["identifier"][0]["value"], "4242");
        assert_eq!(v["identifier"][1]["value"], "77");
        let seqs: Vec<_> = (0..3).map(|i| v["item"][i]["sequence"].clone()).collect();
        assert_eq!(seqs, vec![Value::from(1), Value::from(2), Value::from(3)]);
    }

    #[test]
    fn cents_print_as_go_does() {
        let text = |c| {
            let mut out = Vec::new();
            write_cents(&mut out, c);
            String::from_utf8(out).unwrap_or_default()
        };
        assert_eq!(text(25_000), "250");
        assert_eq!(text(1_250), "12.5");
        assert_eq!(text(8_499_937), "84999.37");
        assert_eq!(text(5), "0.05");
        assert_eq!(text(0), "0");
    }
}
