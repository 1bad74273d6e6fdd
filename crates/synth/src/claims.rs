//! The claim templates of each API version and the Medicare fee-for-service claim mix.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::ApiVersion;
use crate::template::{self, ClaimDraw, Template};

/// The eight claim types of a BCDA export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClaimType {
    /// Part B physician/supplier (carrier) claims.
    Carrier,
    /// Part D prescription drug events.
    Pde,
    /// Hospital outpatient claims.
    Outpatient,
    /// Durable medical equipment claims.
    Dme,
    /// Inpatient hospital stays.
    Inpatient,
    /// Skilled nursing facility stays.
    Snf,
    /// Home health agency episodes.
    Hha,
    /// Hospice stays.
    Hospice,
}

impl ClaimType {
    /// All eight, in the order they are generated for a beneficiary-year.
    pub const ALL: [ClaimType; 8] = [
        ClaimType::Carrier,
        ClaimType::Pde,
        ClaimType::Outpatient,
        ClaimType::Dme,
        ClaimType::Inpatient,
        ClaimType::Snf,
        ClaimType::Hha,
        ClaimType::Hospice,
    ];

    /// The lower-case name used in file names and BFD ids (`carrier`, `pde`, …).
    pub fn name(self) -> &'static str {
        match self {
            ClaimType::Carrier => "carrier",
            ClaimType::Pde => "pde",
            ClaimType::Outpatient => "outpatient",
            ClaimType::Dme => "dme",
            ClaimType::Inpatient => "inpatient",
            ClaimType::Snf => "snf",
            ClaimType::Hha => "hha",
            ClaimType::Hospice => "hospice",
        }
    }

    /// Claims per beneficiary per year: a uniform draw of the mean from this range (Medicare
    /// fee-for-service: 15–25 carrier claims, 15–40 Part D events, 2–4 outpatient, 1–2 DME,
    /// 0.2–0.4 of each kind of stay).
    fn per_year(self) -> (f64, f64) {
        match self {
            ClaimType::Carrier => (15.0, 25.0),
            ClaimType::Pde => (15.0, 40.0),
            ClaimType::Outpatient => (2.0, 4.0),
            ClaimType::Dme => (1.0, 2.0),
            ClaimType::Inpatient | ClaimType::Snf | ClaimType::Hha | ClaimType::Hospice => {
                (0.2, 0.4)
            }
        }
    }

    /// Line items per claim: at least `min`, at most `max`, most claims near `min`.
    fn items(self) -> (usize, usize) {
        match self {
            ClaimType::Carrier => (1, 8),
            ClaimType::Pde => (1, 1),
            ClaimType::Outpatient => (2, 18),
            ClaimType::Dme => (1, 4),
            ClaimType::Inpatient => (3, 25),
            ClaimType::Snf => (2, 12),
            ClaimType::Hha => (1, 10),
            ClaimType::Hospice => (1, 6),
        }
    }
}

/// Real records of one version, per claim type (embedded at build time).
fn sources(version: ApiVersion, kind: ClaimType) -> &'static str {
    macro_rules! real {
        ($dir:literal) => {
            match kind {
                ClaimType::Carrier => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-carrier.ndjson"
                )),
                ClaimType::Pde => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-pde.ndjson"
                )),
                ClaimType::Outpatient => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-outpatient.ndjson"
                )),
                ClaimType::Dme => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-dme.ndjson"
                )),
                ClaimType::Inpatient => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-inpatient.ndjson"
                )),
                ClaimType::Snf => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-snf.ndjson"
                )),
                ClaimType::Hha => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-hha.ndjson"
                )),
                ClaimType::Hospice => include_str!(concat!(
                    "../../../sample-data/real/",
                    $dir,
                    "/ExplanationOfBenefit-hospice.ndjson"
                )),
            }
        };
    }
    match version {
        ApiVersion::V1 => real!("stu3"),
        ApiVersion::V2 => real!("r4"),
        ApiVersion::V3 => real!("v3"),
    }
}

const V3_SYSTEM_TYPE: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/System-Type";
const V3_FINAL_ACTION: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/Final-Action";
const V3_CLM_TYPE: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/CLM-TYPE-CD";

/// Makes a real record a template: drops what a BCDA export would not hold (SAMHSA claims,
/// v3 shared-system and prior-authorization claims, or turns the only one of its type into its
/// fee-for-service form), fills the placeholders CMS's test harness left. Returns `None` for a
/// record that is not used.
fn normalize(version: ApiVersion, kind: ClaimType, mut v: Value) -> Option<Value> {
    // BCDA asks BFD to leave SAMHSA claims out.
    if v.get("id").and_then(Value::as_str) == Some("carrier-9991831000")
        || template::contains_string(&v, "42CFRPart2")
    {
        return None;
    }
    v.as_object()?;
    match version {
        ApiVersion::V1 => fix_stu3_contained(&mut v),
        ApiVersion::V2 => {}
        ApiVersion::V3 => {
            let shared = template::contains_string(&v, "SharedSystem");
            match (kind, shared) {
                (ClaimType::Dme, true) => to_nch(&mut v, "82", "DMERC; DMEPOS CLAIM"),
                (ClaimType::Outpatient, true) => {
                    if template::contains_string(&v, "NotFinalAction") {
                        return None;
                    }
                    to_nch(&mut v, "40", "MEDICARE OUTPATIENT CLAIM");
                }
                (_, true) => return None,
                _ => {}
            }
            match kind {
                ClaimType::Inpatient => {
                    template::recode(
                        &mut v,
                        V3_CLM_TYPE,
                        None,
                        "60",
                        Some("MEDICARE INPATIENT CLAIM"),
                    );
                }
                ClaimType::Pde => {
                    template::recode(
                        &mut v,
                        V3_CLM_TYPE,
                        None,
                        "1",
                        Some("MEDICARE PART D ORIGINAL CLAIM"),
                    );
                }
                _ => {}
            }
            fix_v3_hospice(&mut v);
        }
    }
    // `created`: a placeholder in v2, a plain date in the v3 model output.
    let created = v.get("created").and_then(Value::as_str).unwrap_or("");
    if created == "IGNORED_FIELD" || created.len() == 10 {
        let day = v
            .pointer("/billablePeriod/end")
            .or_else(|| v.pointer("/billablePeriod/start"))
            .and_then(Value::as_str)
            .and_then(crate::date::parse_date_prefix)
            .map(|(d, _)| d + 14)
            .or_else(|| crate::date::parse_date_prefix(created).map(|(d, _)| d))
            .unwrap_or(0);
        let text = format!("{}T00:00:00+00:00", crate::date::date_text(day));
        if let Some(obj) = v.as_object_mut() {
            obj.insert("created".into(), Value::String(text));
        }
    }
    Some(v)
}

/// v3: a shared-system (partially adjudicated) claim as the national claims history holds it.
fn to_nch(v: &mut Value, clm_type: &str, display: &str) {
    template::recode(v, V3_SYSTEM_TYPE, None, "NationalClaimsHistory", None);
    template::recode(v, V3_FINAL_ACTION, None, "FinalAction", None);
    template::recode(v, V3_CLM_TYPE, None, clm_type, Some(display));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("outcome".into(), Value::String("complete".into()));
        if let Some(meta) = obj.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("source".into(), Value::String("NCH".into()));
        }
    }
}

/// v3 hospice (BFD's mapping output): give it the id and unique claim id a server response has,
/// and only the profile the server emits.
fn fix_v3_hospice(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    if obj.contains_key("id") {
        return;
    }
    obj.insert("id".into(), Value::String("5000000000001".into()));
    template::replace_strings(v, "NON-UNIQUE-ID-HERE", "5000000000001");
    if let Some(profiles) = v.pointer_mut("/meta/profile").and_then(Value::as_array_mut) {
        profiles.retain(|p| {
            !p.as_str()
                .unwrap_or("")
                .starts_with("https://bluebutton.cms.gov/fhir/StructureDefinition/")
        });
    }
}

/// v1 carrier and DME: contained resources get the ids `1`, `2`, … a live server gives them
/// (the test expectations mask them as `IGNORED_FIELD`), and their references point at them.
fn fix_stu3_contained(v: &mut Value) {
    let Some(contained) = v.get_mut("contained").and_then(Value::as_array_mut) else {
        return;
    };
    let mut referral = None;
    let mut observations = Vec::new();
    for (i, c) in contained.iter_mut().enumerate() {
        let id = (i + 1).to_string();
        match c.get("resourceType").and_then(Value::as_str) {
            Some("ReferralRequest") => referral = Some(id.clone()),
            Some("Observation") => observations.push(id.clone()),
            _ => {}
        }
        if let Some(obj) = c.as_object_mut()
            && obj.get("id").and_then(Value::as_str) == Some("IGNORED_FIELD")
        {
            obj.insert("id".into(), Value::String(id));
        }
    }
    if let Some(r) = v.pointer_mut("/referral/reference")
        && r.as_str() == Some("IGNORED_FIELD")
    {
        *r = Value::String(format!("#{}", referral.as_deref().unwrap_or("1")));
    }
    if let Some(items) = v.get_mut("item").and_then(Value::as_array_mut) {
        for (i, item) in items.iter_mut().enumerate() {
            let target = observations
                .get(i % observations.len().max(1))
                .cloned()
                .unwrap_or_else(|| "2".into());
            template::replace_strings(item, "IGNORED_FIELD", &format!("#{target}"));
        }
    }
}

/// The claim templates of one API version.
#[derive(Debug, Clone)]
pub(crate) struct ClaimSet {
    kinds: Vec<(ClaimType, Vec<Template>)>,
}

impl ClaimSet {
    /// Compiles the real records of `version`.
    pub(crate) fn new(version: ApiVersion) -> ClaimSet {
        let kinds = ClaimType::ALL
            .iter()
            .map(|&kind| {
                let templates = sources(version, kind)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .filter_map(|v| normalize(version, kind, v))
                    .map(|v| {
                        let id = v.get("id").and_then(Value::as_str).unwrap_or("");
                        let claim_no = match version {
                            ApiVersion::V3 => id,
                            _ => id.split_once('-').map_or(id, |(_, n)| n),
                        };
                        let bene = v
                            .pointer("/patient/reference")
                            .and_then(Value::as_str)
                            .and_then(|r| r.strip_prefix("Patient/"))
                            .unwrap_or("");
                        Template::compile(&v, claim_no, bene)
                    })
                    .collect();
                (kind, templates)
            })
            .collect();
        ClaimSet { kinds }
    }

    fn templates(&self, kind: ClaimType) -> &[Template] {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[], |(_, t)| t.as_slice())
    }
}

/// One beneficiary's claims, as a generator needs them.
pub(crate) struct BeneClaims<'a> {
    /// The beneficiary id.
    pub bene_id: &'a str,
    /// The current MBI.
    pub mbi: &'a str,
    /// First claim number for this beneficiary (claims count up from it).
    pub first_claim_no: u64,
    /// Day number of the first day of the history.
    pub first_day: i64,
    /// Years of history.
    pub years: u32,
    /// Last day a claim may start (before the export's transaction time).
    pub last_day: i64,
    /// Claims per year relative to Medicare's ([`crate::ExportConfig::claim_scale`]).
    pub claim_scale: f64,
}

/// Counts of what [`write_bene_claims`] wrote.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClaimCounts {
    pub eobs: u64,
}

/// Appends every EOB line of one beneficiary's history to `out`.
pub(crate) fn write_bene_claims(
    set: &ClaimSet,
    version: ApiVersion,
    bene: &BeneClaims<'_>,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<u8>,
) -> ClaimCounts {
    let mut counts = ClaimCounts::default();
    let mut claim_no = bene.first_claim_no;
    let mut last_updated = String::with_capacity(32);
    for year in 0..bene.years {
        let year_start = bene.first_day + i64::from(year) * 365;
        for kind in ClaimType::ALL {
            let templates = set.templates(kind);
            if templates.is_empty() {
                continue;
            }
            let (lo, hi) = kind.per_year();
            let mean = rng.random_range(lo..=hi) * bene.claim_scale;
            let mut n = mean.floor() as u32;
            if rng.random_bool(mean.fract()) {
                n += 1;
            }
            for _ in 0..n {
                let template = &templates[rng.random_range(0..templates.len())];
                let (min_items, max_items) = kind.items();
                let u: f64 = rng.random();
                let items = min_items + ((max_items - min_items + 1) as f64 * u * u) as usize;
                let anchor_day = (year_start + rng.random_range(0..365)).min(bene.last_day);
                let group = 100_000_000 + claim_no % 900_000_000;
                // About one claim in 25 was adjusted: an earlier version comes first.
                let versions = if rng.random_bool(0.04) { 2 } else { 1 };
                for version_index in 0..versions {
                    claim_no += 1;
                    let updated =
                        anchor_day + 10 + i64::from(version_index) * 21 + rng.random_range(0..30);
                    last_updated.clear();
                    last_updated.push_str(&crate::date::date_text(updated.min(bene.last_day + 13)));
                    last_updated.push_str(&format!(
                        "T{:02}:{:02}:{:02}.{:03}-05:00",
                        rng.random_range(0..24),
                        rng.random_range(0..60),
                        rng.random_range(0..60),
                        rng.random_range(0..1000)
                    ));
                    let superseded = versions == 2 && version_index == 0;
                    let draw = ClaimDraw {
                        claim_no,
                        group,
                        bene_id: bene.bene_id,
                        mbi: bene.mbi,
                        anchor_day,
                        cancelled: superseded && version != ApiVersion::V3,
                        adjusted: version == ApiVersion::V3 && versions == 2 && version_index == 1,
                        last_updated: &last_updated,
                        items,
                    };
                    template.render(out, &draw, rng);
                    out.push(b'\n');
                    counts.eobs += 1;
                }
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_version_has_every_claim_type() {
        for version in [ApiVersion::V1, ApiVersion::V2, ApiVersion::V3] {
            let set = ClaimSet::new(version);
            for kind in ClaimType::ALL {
                assert!(
                    !set.templates(kind).is_empty(),
                    "{} has no {} template",
                    version.as_str(),
                    kind.name()
                );
            }
        }
    }

    #[test]
    fn histories_have_the_fee_for_service_mix_and_no_placeholders() {
        for version in [ApiVersion::V1, ApiVersion::V2, ApiVersion::V3] {
            let set = ClaimSet::new(version);
            let mut out = Vec::new();
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let first_day = crate::date::days_from_civil(2020, 1, 1);
            let bene = BeneClaims {
                bene_id: "-10000000000001",
                mbi: "9A00A00AA00",
                first_claim_no: 1_000,
                first_day,
                years: 3,
                last_day: first_day + 3 * 365,
                claim_scale: 1.0,
            };
            let counts = write_bene_claims(&set, version, &bene, &mut rng, &mut out);
            // 3 years of 15–25 carrier, 15–40 Part D, 2–4 outpatient, 1–2 DME, a few stays.
            assert!((3 * 33..=3 * 75).contains(&counts.eobs), "{}", counts.eobs);
            let text = String::from_utf8_lossy(&out);
            assert!(!text.contains("IGNORED_FIELD"));
            assert!(!text.contains("9999-12-31"));
            let mut ids = std::collections::BTreeSet::new();
            for line in out.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).expect("valid JSON");
                assert_eq!(v["resourceType"], "ExplanationOfBenefit");
                assert_eq!(v["patient"]["reference"], "Patient/-10000000000001");
                assert!(ids.insert(v["id"].as_str().expect("id").to_owned()));
                let start = v["billablePeriod"]["start"]
                    .as_str()
                    .unwrap_or("2020-06-01");
                assert!(("2019-12-01".."2023-03-01").contains(&start), "{start}");
            }
        }
    }
}
