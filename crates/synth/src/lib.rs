//! Seeded, template-based generator of BCDA-shaped `ExplanationOfBenefit` NDJSON.
//!
//! Benchmarks need input with the real shape: line lengths, nesting, key order and number text
//! as BCDA writes them. This generator starts from the real CMS-written R4 (API v2) EOBs in
//! `sample-data/real/r4/` (embedded at build time) and varies what differs from claim to claim:
//! ids, beneficiary references, claim groups, dates, diagnosis and HCPCS codes, amounts (with
//! cents, in Go's shortest number form as BCDA writes them), and item counts. Keys are sorted at
//! every level, as BCDA's worker writes them. The claim-type mix follows Medicare fee-for-service
//! (mostly carrier and Part D events, few institutional stays). The same seed gives the same bytes.
//!
//! ```
//! use claimline_synth::EobGenerator;
//!
//! let mut generator = EobGenerator::new(7);
//! let mut out = Vec::new();
//! generator.write_lines(&mut out, 10);
//! assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 10);
//! let first: serde_json::Value = serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
//! assert_eq!(first["resourceType"], "ExplanationOfBenefit");
//! // Same seed, same bytes.
//! let mut again = Vec::new();
//! EobGenerator::new(7).write_lines(&mut again, 10);
//! assert_eq!(out, again);
//! ```

use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Number, Value};

/// The real R4 EOB templates: (claim type, relative frequency per beneficiary-year, max items,
/// NDJSON).
const TEMPLATES: [(&str, f64, usize, &str); 8] = [
    (
        "carrier",
        20.0,
        8,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-carrier.ndjson"),
    ),
    (
        "pde",
        27.0,
        1,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-pde.ndjson"),
    ),
    (
        "outpatient",
        3.0,
        20,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-outpatient.ndjson"),
    ),
    (
        "dme",
        1.5,
        4,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-dme.ndjson"),
    ),
    (
        "inpatient",
        0.3,
        25,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-inpatient.ndjson"),
    ),
    (
        "snf",
        0.3,
        15,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-snf.ndjson"),
    ),
    (
        "hha",
        0.3,
        10,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-hha.ndjson"),
    ),
    (
        "hospice",
        0.3,
        8,
        include_str!("../../../sample-data/real/r4/ExplanationOfBenefit-hospice.ndjson"),
    ),
];

/// Real ICD-10-CM codes (CCLF form, no dot) common in Medicare claims.
const ICD10: [&str; 24] = [
    "I10", "E119", "E785", "I2510", "N183", "J449", "I4891", "E039", "M170", "F329", "Z0000",
    "R0602", "M545", "K219", "G4733", "N400", "I509", "E6601", "M810", "Z79899", "R51", "J189",
    "N390", "Z7901",
];

/// Real HCPCS / CPT codes common on carrier and outpatient lines.
const HCPCS: [&str; 20] = [
    "99213", "99214", "99215", "99232", "36415", "80053", "85025", "93000", "71046", "G0439",
    "J1885", "97110", "99497", "G0008", "90662", "83036", "80061", "84443", "A0428", "E0601",
];

const ICD10_SYSTEMS: [&str; 2] = [
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10",
];
const HCPCS_SYSTEM: &str = "https://bluebutton.cms.gov/resources/codesystem/hcpcs";
const CLAIM_GROUP: &str = "https://bluebutton.cms.gov/resources/identifier/claim-group";
const CLM_ID: &str = "https://bluebutton.cms.gov/resources/variables/clm_id";

struct Template {
    kind: &'static str,
    weight: f64,
    max_items: usize,
    value: Value,
}

/// Writes R4 EOB lines shaped like a BCDA API v2 export; see the crate docs.
pub struct EobGenerator {
    templates: Vec<Template>,
    total_weight: f64,
    rng: ChaCha8Rng,
    next_claim: u64,
    beneficiaries: u64,
}

impl EobGenerator {
    /// A generator seeded with `seed`, drawing beneficiaries from a pool of 30,000.
    pub fn new(seed: u64) -> Self {
        let templates: Vec<Template> = TEMPLATES
            .iter()
            .flat_map(|(kind, weight, max_items, text)| {
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .map(move |value| Template {
                        kind,
                        weight: *weight,
                        max_items: *max_items,
                        value,
                    })
            })
            .collect();
        // Several templates of one kind share that kind's weight.
        let mut templates = templates;
        for i in 0..templates.len() {
            let same = templates
                .iter()
                .filter(|t| t.kind == templates[i].kind)
                .count();
            templates[i].weight /= same as f64;
        }
        let total_weight = templates.iter().map(|t| t.weight).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let next_claim = rng.random_range(1_000_000_000..9_000_000_000u64);
        EobGenerator {
            templates,
            total_weight,
            rng,
            next_claim,
            beneficiaries: 30_000,
        }
    }

    /// Appends `n` EOB lines (each ending in `\n`) to `out`.
    pub fn write_lines(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            self.write_line(out);
        }
    }

    /// Appends EOB lines to `out` until it holds at least `bytes` bytes; returns the line count.
    pub fn write_bytes(&mut self, out: &mut Vec<u8>, bytes: usize) -> usize {
        let mut n = 0;
        while out.len() < bytes {
            self.write_line(out);
            n += 1;
        }
        n
    }

    /// Appends one EOB line.
    pub fn write_line(&mut self, out: &mut Vec<u8>) {
        let eob = self.next_eob();
        // Writing to a Vec cannot fail, and a Value always serializes.
        if serde_json::to_writer(&mut *out, &eob).is_ok() {
            out.push(b'\n');
        }
    }

    fn pick(&mut self) -> usize {
        let mut x = self.rng.random_range(0.0..self.total_weight);
        for (i, t) in self.templates.iter().enumerate() {
            if x < t.weight {
                return i;
            }
            x -= t.weight;
        }
        self.templates.len() - 1
    }

    fn next_eob(&mut self) -> Value {
        let t = self.pick();
        let (kind, max_items) = (self.templates[t].kind, self.templates[t].max_items);
        let mut eob = self.templates[t].value.clone();
        self.next_claim += 1;
        let claim = self.next_claim;
        let bene = format!("-1{:013}", self.rng.random_range(0..self.beneficiaries));
        let group = self.rng.random_range(100_000_000..999_999_999u64);
        // Service dates fall over seven years back from 2026.
        let day_shift = self.rng.random_range(-2555..0i64);
        let mut ctx = Vary {
            rng: &mut self.rng,
            day_shift,
            claim: claim.to_string(),
            group: group.to_string(),
            bene,
        };
        if let Some(obj) = eob.as_object_mut() {
            obj.insert("id".into(), Value::String(format!("{kind}-{claim}")));
            if let Some(meta) = obj.get_mut("meta").and_then(Value::as_object_mut) {
                meta.insert(
                    "lastUpdated".into(),
                    Value::String("2026-11-20T04:12:33.418-05:00".into()),
                );
            }
            obj.insert(
                "created".into(),
                Value::String("2026-11-20T04:12:33-05:00".into()),
            );
            if let Some(items) = obj.get_mut("item").and_then(Value::as_array_mut) {
                resize_items(items, ctx.rng.random_range(1..=max_items));
            }
        }
        ctx.walk(&mut eob);
        sort_keys(eob)
    }
}

fn resize_items(items: &mut Vec<Value>, n: usize) {
    if items.is_empty() {
        return;
    }
    let base = items.clone();
    items.clear();
    for i in 0..n {
        let mut item = base[i % base.len()].clone();
        if let Some(seq) = item.get_mut("sequence") {
            *seq = Value::from(i as u64 + 1);
        }
        items.push(item);
    }
}

struct Vary<'a> {
    rng: &'a mut ChaCha8Rng,
    day_shift: i64,
    claim: String,
    group: String,
    bene: String,
}

impl Vary<'_> {
    fn walk(&mut self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                self.object(map);
                for child in map.values_mut() {
                    self.walk(child);
                }
            }
            Value::Array(items) => {
                for child in items {
                    self.walk(child);
                }
            }
            Value::String(s) => {
                if let Some(shifted) = shift_date(s, self.day_shift) {
                    *s = shifted;
                }
            }
            _ => {}
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>) {
        let system = map.get("system").and_then(Value::as_str).map(str::to_owned);
        match system.as_deref() {
            Some(s) if ICD10_SYSTEMS.contains(&s) && map.contains_key("code") => {
                let code = ICD10[self.rng.random_range(0..ICD10.len())];
                map.insert("code".into(), Value::String(code.into()));
                map.remove("display");
            }
            Some(HCPCS_SYSTEM) if map.contains_key("code") => {
                let code = HCPCS[self.rng.random_range(0..HCPCS.len())];
                map.insert("code".into(), Value::String(code.into()));
            }
            Some(CLAIM_GROUP) => {
                map.insert("value".into(), Value::String(self.group.clone()));
            }
            Some(CLM_ID) if map.contains_key("value") => {
                map.insert("value".into(), Value::String(self.claim.clone()));
            }
            _ => {}
        }
        if let Some(Value::String(r)) = map.get("reference")
            && r.starts_with("Patient/")
        {
            let r = format!("Patient/{}", self.bene);
            map.insert("reference".into(), Value::String(r));
        }
        let is_money =
            map.contains_key("currency") || map.get("code").and_then(Value::as_str) == Some("USD");
        if is_money && let Some(Value::Number(n)) = map.get("value") {
            let original = n.as_f64().unwrap_or(0.0);
            let cents = if original == 0.0 && self.rng.random_bool(0.7) {
                0
            } else {
                self.rng.random_range(0..250_000u64)
            };
            map.insert("value".into(), go_number(cents));
        }
    }
}

/// An amount in cents as Go's shortest float text renders it: `250`, `12.5`, `84999.37`.
fn go_number(cents: u64) -> Value {
    let text = if cents.is_multiple_of(100) {
        format!("{}", cents / 100)
    } else if cents.is_multiple_of(10) {
        format!("{}.{}", cents / 100, (cents % 100) / 10)
    } else {
        format!("{}.{:02}", cents / 100, cents % 100)
    };
    Number::from_str(&text).map_or(Value::Null, Value::Number)
}

/// Shifts a `YYYY-MM-DD` date (alone or leading a dateTime) by `days`.
fn shift_date(s: &str, days: i64) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || (b.len() > 10 && b[10] != b'T') {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) + days);
    Some(format!("{y:04}-{m:02}-{d:02}{}", &s[10..]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Rebuilds every object with its keys in sorted order, as BCDA's Go worker writes them.
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_shift_across_months_and_leap_years() {
        assert_eq!(shift_date("2024-02-28", 1).as_deref(), Some("2024-02-29"));
        assert_eq!(shift_date("2024-03-01", -1).as_deref(), Some("2024-02-29"));
        assert_eq!(
            shift_date("2021-01-01T10:00:00-05:00", -1).as_deref(),
            Some("2020-12-31T10:00:00-05:00")
        );
        assert_eq!(shift_date("IGNORED_FIELD", 3), None);
        assert_eq!(shift_date("2021", 3), None);
    }

    #[test]
    fn amounts_use_go_number_text() {
        assert_eq!(go_number(25_000).to_string(), "250");
        assert_eq!(go_number(1_250).to_string(), "12.5");
        assert_eq!(go_number(8_499_937).to_string(), "84999.37");
        assert_eq!(go_number(5).to_string(), "0.05");
    }

    #[test]
    fn lines_look_like_bcda_v2_eobs() {
        let mut out = Vec::new();
        let n = EobGenerator::new(1).write_bytes(&mut out, 2_000_000);
        assert!(n > 20);
        let mut kinds = std::collections::BTreeSet::new();
        for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).expect("valid JSON");
            assert_eq!(v["resourceType"], "ExplanationOfBenefit");
            let id = v["id"].as_str().expect("id");
            kinds.insert(id.split('-').next().expect("prefix").to_owned());
            let keys: Vec<_> = v.as_object().expect("object").keys().cloned().collect();
            let mut sorted = keys.clone();
            sorted.sort();
            assert_eq!(keys, sorted);
            assert!(!String::from_utf8_lossy(line).contains("IGNORED_FIELD"));
        }
        assert!(kinds.contains("carrier") && kinds.contains("pde"));
    }
}
