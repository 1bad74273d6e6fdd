//! Beneficiaries: ids, MBIs (current and historic), demographics, and their `Patient` and
//! `Coverage` resources, from the real records of each API version.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

use crate::ApiVersion;
use crate::date;
use crate::json;
use crate::template;

const MBI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-mbi";
const RFRNC_YR: &str = "https://bluebutton.cms.gov/resources/variables/rfrnc_yr";
const US_CORE_SEX: &str = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-sex";

const FAMILY: [&str; 16] = [
    "Synthetic",
    "Testperson",
    "Example",
    "Sample",
    "Placeholder",
    "Fakename",
    "Demo",
    "Mock",
    "Specimen",
    "Fixture",
    "Dummy",
    "Pretend",
    "Standin",
    "Proxy",
    "Trial",
    "Model",
];
const GIVEN_F: [&str; 8] = [
    "Alma", "Betty", "Clara", "Dora", "Edna", "Flora", "Greta", "Hazel",
];
const GIVEN_M: [&str; 8] = [
    "Abe", "Bert", "Carl", "Dale", "Earl", "Floyd", "Gus", "Hank",
];
/// (USPS state, SSA state code, ZIP prefix).
const STATES: [(&str, &str, &str); 10] = [
    ("FL", "10", "331"),
    ("TX", "45", "770"),
    ("CA", "05", "900"),
    ("NY", "33", "100"),
    ("PA", "39", "191"),
    ("OH", "36", "441"),
    ("MO", "26", "631"),
    ("AZ", "03", "850"),
    ("NC", "34", "276"),
    ("MI", "23", "482"),
];

/// MBI position alphabets: letters exclude S, L, O, I, B and Z.
const MBI_LETTERS: &[u8; 20] = b"ACDEFGHJKMNPQRTUVWXY";
const MBI_ALNUM: &[u8; 30] = b"0123456789ACDEFGHJKMNPQRTUVWXY";
const MBI_DIGITS: &[u8; 10] = b"0123456789";

/// A synthetic, format-valid Medicare Beneficiary Identifier: the `n`th of a bijective walk
/// through the MBI space. Every synthetic MBI starts with `9`, followed by the CMS layout
/// (letter, alphanumeric, digit, letter, alphanumeric, digit, letter, letter, digit, digit).
pub fn synthetic_mbi(n: u64) -> String {
    let positions: [&[u8]; 10] = [
        MBI_LETTERS,
        MBI_ALNUM,
        MBI_DIGITS,
        MBI_LETTERS,
        MBI_ALNUM,
        MBI_DIGITS,
        MBI_LETTERS,
        MBI_LETTERS,
        MBI_DIGITS,
        MBI_DIGITS,
    ];
    let capacity: u64 = positions.iter().map(|p| p.len() as u64).product();
    // 7919 is prime and shares no factor with the capacity (2, 3 and 5 only): a bijection.
    let mut x = ((u128::from(n) * 7919 + 12_345) % u128::from(capacity)) as u64;
    let mut out = vec![b'9'; 11];
    for (i, alphabet) in positions.iter().enumerate().rev() {
        let base = alphabet.len() as u64;
        out[i + 1] = alphabet[(x % base) as usize];
        x /= base;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// One synthetic beneficiary.
#[derive(Debug, Clone)]
pub(crate) struct Bene {
    /// The BFD beneficiary id (`-1000…`, negative as synthetic BFD ids are).
    pub id: String,
    /// MBIs, current first, then historic ones from newest to oldest.
    pub mbis: Vec<String>,
    /// Day each MBI of `mbis` took effect.
    pub mbi_from: Vec<i64>,
    pub birth_day: i64,
    pub female: bool,
    pub name: (&'static str, &'static str),
    pub state: usize,
    pub zip: u32,
    pub hash: String,
}

impl Bene {
    /// Beneficiary `index` of an export seeded `seed`; its history starts at `first_day`.
    pub(crate) fn new(seed: u64, index: u64, first_day: i64) -> Bene {
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ 0xBE0E_0000_0000_0000 ^ index.wrapping_mul(0x9E37_79B9),
        );
        let historic = match rng.random_range(0..100) {
            0..70 => 0,
            70..95 => 1,
            _ => 2,
        };
        let mut mbis = Vec::new();
        let mut mbi_from = Vec::new();
        // The current MBI took effect during the history or before it.
        let mut from = first_day + rng.random_range(-1200..900);
        for k in 0..=historic {
            mbis.push(synthetic_mbi(index * 4 + k));
            mbi_from.push(from);
            from -= rng.random_range(400..2000);
        }
        let female = rng.random_bool(0.55);
        let given = if female { &GIVEN_F } else { &GIVEN_M };
        let hash: String = (0..64)
            .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
            .collect();
        Bene {
            id: format!("-1{:013}", index + 1),
            mbis,
            mbi_from,
            birth_day: date::days_from_civil(1928, 1, 1) + rng.random_range(0..(30 * 365)),
            female,
            name: (
                FAMILY[rng.random_range(0..FAMILY.len())],
                given[rng.random_range(0..given.len())],
            ),
            state: rng.random_range(0..STATES.len()),
            zip: rng.random_range(0..100),
            hash,
        }
    }
}

/// The Patient and Coverage templates of one API version.
#[derive(Debug, Clone)]
pub(crate) struct BeneTemplates {
    version: ApiVersion,
    patient: Value,
    /// (template, the template's beneficiary id).
    coverage: Vec<(Value, String)>,
}

impl BeneTemplates {
    pub(crate) fn new(version: ApiVersion) -> BeneTemplates {
        let (patients, coverages, patient_line, coverage_lines): (&str, &str, usize, &[usize]) =
            match version {
                // The BCDA sample export's Patient (real MBI identifiers) and BFD's Coverage
                // (with the monthly extensions).
                ApiVersion::V1 => (
                    include_str!("../../../sample-data/real/stu3/Patient.ndjson"),
                    include_str!("../../../sample-data/real/stu3/Coverage.ndjson"),
                    1,
                    &[0, 1, 2, 3],
                ),
                ApiVersion::V2 => (
                    include_str!("../../../sample-data/real/r4/Patient.ndjson"),
                    include_str!("../../../sample-data/real/r4/Coverage.ndjson"),
                    0,
                    &[0, 1, 2, 3],
                ),
                // The un-merged beneficiary with a current and a historic MBI; parts A–D and dual.
                ApiVersion::V3 => (
                    include_str!("../../../sample-data/real/v3/Patient.ndjson"),
                    include_str!("../../../sample-data/real/v3/Coverage.ndjson"),
                    1,
                    &[0, 1, 2, 3, 4],
                ),
            };
        let parse = |text: &str, i: usize| -> Value {
            text.lines()
                .nth(i)
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or(Value::Null)
        };
        let patient = parse(patients, patient_line);
        let coverage = coverage_lines
            .iter()
            .map(|&i| {
                let v = parse(coverages, i);
                let bene = v
                    .pointer("/beneficiary/reference")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("Patient/"))
                    .unwrap_or("")
                    .to_owned();
                (v, bene)
            })
            .collect();
        BeneTemplates {
            version,
            patient,
            coverage,
        }
    }

    /// Coverage resources per beneficiary.
    pub(crate) fn coverage_per_bene(&self) -> usize {
        self.coverage.len()
    }

    /// Appends the beneficiary's Patient line.
    pub(crate) fn write_patient(
        &self,
        bene: &Bene,
        last_updated: &str,
        last_year: i64,
        out: &mut Vec<u8>,
    ) {
        let mut v = self.patient.clone();
        let Some(obj) = v.as_object_mut() else { return };
        obj.insert("id".into(), Value::String(bene.id.clone()));
        obj.remove("link");
        obj.remove("deceasedDateTime");
        set_last_updated(obj, last_updated);
        obj.insert(
            "birthDate".into(),
            Value::String(date::date_text(bene.birth_day)),
        );
        let gender = if bene.female { "female" } else { "male" };
        obj.insert("gender".into(), Value::String(gender.into()));
        obj.insert(
            "name".into(),
            serde_json::json!([{"family": bene.name.0, "given": [bene.name.1], "use": "usual"}]),
        );
        if self.version == ApiVersion::V3
            && let Some(Value::Array(names)) = obj.get_mut("name")
            && let Some(Value::Object(n)) = names.first_mut()
        {
            n.remove("use");
        }
        let (usps, ssa, zip) = STATES[bene.state];
        if let Some(Value::Array(addresses)) = obj.get_mut("address") {
            for a in addresses.iter_mut().filter_map(Value::as_object_mut) {
                let numeric = a
                    .get("state")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
                a.insert(
                    "state".into(),
                    Value::String(if numeric { ssa } else { usps }.into()),
                );
                if a.contains_key("postalCode") {
                    a.insert(
                        "postalCode".into(),
                        Value::String(format!("{zip}{:02}", bene.zip)),
                    );
                }
            }
        }
        if let Some(Value::Array(exts)) = obj.get_mut("extension") {
            for e in exts.iter_mut().filter_map(Value::as_object_mut) {
                match e.get("url").and_then(Value::as_str) {
                    Some(RFRNC_YR) => {
                        e.insert("valueDate".into(), Value::String(last_year.to_string()));
                    }
                    Some(US_CORE_SEX) => {
                        let code = if bene.female {
                            "248152002"
                        } else {
                            "248153007"
                        };
                        e.insert("valueCode".into(), Value::String(code.into()));
                    }
                    _ => {}
                }
            }
        }
        let identifiers = obj
            .get("identifier")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        obj.insert(
            "identifier".into(),
            Value::Array(self.identifiers(&identifiers, bene)),
        );
        json::write_value(out, &v);
        out.push(b'\n');
    }

    fn identifiers(&self, template: &[Value], bene: &Bene) -> Vec<Value> {
        let is_mbi = |v: &&Value| v.get("system").and_then(Value::as_str) == Some(MBI_SYSTEM);
        let is_historic = |v: &&Value| {
            template::contains_string(v, "historic") || v.pointer("/period/end").is_some()
        };
        let current = template
            .iter()
            .filter(is_mbi)
            .find(|v| !is_historic(v))
            .cloned();
        let historic = template
            .iter()
            .filter(is_mbi)
            .find(is_historic)
            .cloned()
            .or_else(|| {
                current.clone().map(|mut v| {
                    template::replace_strings(&mut v, "current", "historic");
                    template::replace_strings(&mut v, "Current", "Historic");
                    v
                })
            });
        let mut out = Vec::new();
        for v in template.iter().filter(|v| !is_mbi(v)) {
            let mut v = v.clone();
            let system = v
                .get("system")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            if let Some(obj) = v.as_object_mut() {
                if system.ends_with("/bene_id") {
                    obj.insert("value".into(), Value::String(bene.id.clone()));
                } else if system.ends_with("/mbi-hash") {
                    obj.insert("value".into(), Value::String(bene.hash.clone()));
                }
            }
            out.push(v);
        }
        for (k, mbi) in bene.mbis.iter().enumerate() {
            let proto = if k == 0 { &current } else { &historic };
            let Some(mut v) = proto.clone() else { continue };
            let Some(obj) = v.as_object_mut() else {
                continue;
            };
            obj.insert("value".into(), Value::String(mbi.clone()));
            if let Some(Value::Object(period)) = obj.get_mut("period") {
                let suffix = period
                    .get("start")
                    .and_then(Value::as_str)
                    .and_then(date::parse_date_prefix)
                    .map(|(_, rest)| rest.to_owned())
                    .unwrap_or_default();
                period.insert(
                    "start".into(),
                    Value::String(format!("{}{suffix}", date::date_text(bene.mbi_from[k]))),
                );
                if k == 0 {
                    period.remove("end");
                } else if period.contains_key("end") || self.version == ApiVersion::V3 {
                    let end = bene.mbi_from[k - 1] - 1;
                    period.insert(
                        "end".into(),
                        Value::String(format!("{}{suffix}", date::date_text(end))),
                    );
                }
            }
            out.push(v);
        }
        out
    }

    /// Appends the beneficiary's Coverage lines (parts A, B, C, D; v3 also dual status).
    pub(crate) fn write_coverage(
        &self,
        bene: &Bene,
        last_updated: &str,
        last_year: i64,
        out: &mut Vec<u8>,
    ) {
        let entitled = bene.birth_day + 65 * 365 + 200;
        for (template_value, template_bene) in &self.coverage {
            let mut v = template_value.clone();
            let Some(obj) = v.as_object_mut() else {
                continue;
            };
            if let Some(id) = obj.get("id").and_then(Value::as_str) {
                let id = if template_bene.is_empty() {
                    id.to_owned()
                } else {
                    id.replace(template_bene.as_str(), &bene.id)
                };
                obj.insert("id".into(), Value::String(id));
            }
            obj.insert("status".into(), Value::String("active".into()));
            set_last_updated(obj, last_updated);
            if obj.contains_key("subscriberId") {
                obj.insert("subscriberId".into(), Value::String(bene.mbis[0].clone()));
            }
            if let Some(Value::Object(period)) = obj.get_mut("period") {
                period.insert("start".into(), Value::String(date::date_text(entitled)));
                if period.get("end").and_then(Value::as_str) != Some("2099-12-31") {
                    period.remove("end");
                }
            }
            if let Some(Value::Array(exts)) = obj.get_mut("extension") {
                for e in exts.iter_mut().filter_map(Value::as_object_mut) {
                    if e.get("url").and_then(Value::as_str) == Some(RFRNC_YR) {
                        e.insert("valueDate".into(), Value::String(last_year.to_string()));
                    }
                }
            }
            if let Some(Value::Array(ids)) = obj.get_mut("identifier") {
                for i in ids.iter_mut().filter_map(Value::as_object_mut) {
                    if i.get("system").and_then(Value::as_str) == Some(MBI_SYSTEM) {
                        i.insert("value".into(), Value::String(bene.mbis[0].clone()));
                    }
                }
            }
            template::replace_strings(
                &mut v,
                &format!("Patient/{template_bene}"),
                &format!("Patient/{}", bene.id),
            );
            json::write_value(out, &v);
            out.push(b'\n');
        }
    }
}

fn set_last_updated(obj: &mut Map<String, Value>, last_updated: &str) {
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.insert("lastUpdated".into(), Value::String(last_updated.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(mbi: &str) -> bool {
        let b = mbi.as_bytes();
        let letter = |c: u8| MBI_LETTERS.contains(&c);
        let alnum = |c: u8| MBI_ALNUM.contains(&c);
        let digit = |c: u8| c.is_ascii_digit();
        b.len() == 11
            && (b'1'..=b'9').contains(&b[0])
            && letter(b[1])
            && alnum(b[2])
            && digit(b[3])
            && letter(b[4])
            && alnum(b[5])
            && digit(b[6])
            && letter(b[7])
            && letter(b[8])
            && digit(b[9])
            && digit(b[10])
    }

    #[test]
    fn mbis_are_format_valid_and_distinct() {
        let all: std::collections::BTreeSet<String> = (0..5000).map(synthetic_mbi).collect();
        assert_eq!(all.len(), 5000);
        assert!(
            all.iter().all(|m| valid(m)),
            "{:?}",
            all.iter().find(|m| !valid(m))
        );
    }
}
