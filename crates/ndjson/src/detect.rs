//! The one place that tells BCDA API versions and claim types apart from a resource's shape.
//!
//! - v1 (FHIR STU3): no `meta.profile`; BFD's `https://bluebutton.cms.gov/resources/…` URLs.
//! - v2 (FHIR R4): an unversioned CARIN Blue Button profile; the same `…/resources/…` URLs, with
//!   the `eob-type` coding `https://bluebutton.cms.gov/resources/codesystem/eob-type`.
//! - v3 (FHIR R4 from CMS's IDR): profiles pinned with `|2.x.y`, and
//!   `https://bluebutton.cms.gov/fhir/…` URLs.
//!
//! A manifest's `request` URL (`/api/v2/…`) is authoritative when present; this detector is the
//! fallback for loose files. A resource that carries none of these marks (v3's merged-beneficiary
//! Patient has only `id` and `link`) is undecided and takes its file's version.

use crate::tape::{Cursor, Kind};

pub use claimline_model::ApiVersion;

const V3_PREFIX: &str = "https://bluebutton.cms.gov/fhir/";
const CCW_PREFIX: &str = "https://bluebutton.cms.gov/resources/";
const EOB_TYPE_V12: &str = "https://bluebutton.cms.gov/resources/codesystem/eob-type";
const EOB_TYPE_V3: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/EOB-TYPE";
const CLM_TYPE_CD_V3: &str = "https://bluebutton.cms.gov/fhir/CodeSystem/CLM-TYPE-CD";

/// The root members [`detect_version`] reads of a resource with a profile (`meta.profile`).
pub(crate) const PROFILED_READS: [&str; 4] = ["meta", "type", "identifier", "extension"];

/// The root members [`detect_version`] reads besides [`PROFILED_READS`] of a resource without a
/// profile (the elements only one FHIR release has).
pub(crate) const UNPROFILED_READS: [&str; 7] = [
    "class",
    "grouping",
    "insurance",
    "total",
    "totalCost",
    "outcome",
    "benefitBalance",
];

/// The resource's profiles (`meta.profile`'s strings).
fn profiles<'a>(root: Cursor<'a>) -> impl Iterator<Item = &'a str> {
    root.get("meta")
        .and_then(|m| m.get("profile"))
        .into_iter()
        .flat_map(|p| p.items())
        .filter_map(|p| p.as_str())
}

/// The resource has a profile: [`detect_version`] reads only [`PROFILED_READS`] of it.
pub(crate) fn profiled(root: Cursor<'_>) -> bool {
    profiles(root).next().is_some()
}

/// Decides the API version of one resource from its shape, or `None` when it carries no mark.
pub fn detect_version(root: Cursor<'_>) -> Option<ApiVersion> {
    let mut profiled = false;
    for p in profiles(root) {
        profiled = true;
        if p.contains('|') || p.starts_with(V3_PREFIX) {
            return Some(ApiVersion::V3);
        }
    }
    // An unpinned profile is R4, but v3's prior authorizations carry one too; the URLs in the
    // places every BFD resource fills (type codings, identifiers, extensions) settle it.
    let mut ccw = false;
    for field in ["type", "identifier", "extension"] {
        let Some(v) = root.get(field) else { continue };
        let urls = std::iter::once(v)
            .chain(v.items())
            .flat_map(|x| {
                let codings = x.get("coding").into_iter().flat_map(|c| c.items());
                std::iter::once(x).chain(codings)
            })
            .filter_map(|x| x.get("system").or_else(|| x.get("url")))
            .filter_map(|s| s.as_str());
        for url in urls {
            if url.starts_with(V3_PREFIX) {
                return Some(ApiVersion::V3);
            }
            ccw |= url.starts_with(CCW_PREFIX);
        }
    }
    if profiled {
        return Some(ApiVersion::V2);
    }
    // No profile: BFD v1 (STU3) never sets one, but R4 written by builds of 2020 did not either.
    // The FHIR release shows in elements only one of them has.
    match fhir_release(root) {
        Some(Release::R4) => Some(ApiVersion::V2),
        Some(Release::Stu3) => Some(ApiVersion::V1),
        None => ccw.then_some(ApiVersion::V1),
    }
}

/// A FHIR release, as a resource's elements show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    Stu3,
    R4,
}

const IDENTIFIER_CURRENCY: &str =
    "https://bluebutton.cms.gov/resources/codesystem/identifier-currency";

/// The release that only R4 or only STU3 elements of a BFD resource name: Coverage `class`
/// (R4) against `grouping` (STU3); an EOB's `insurance` as a list (R4) or one object (STU3),
/// `total` (R4) or `totalCost` (STU3), `outcome` a code (R4) or a CodeableConcept (STU3),
/// `benefitBalance.financial.usedMoney` (R4) or `benefitUsedMoney` (STU3); a Patient's MBI
/// currency flag on `identifier.type.coding` (R4, BFD v2) or on `identifier` (STU3, BFD v1).
fn fhir_release(root: Cursor<'_>) -> Option<Release> {
    let has = |k: &str| root.get(k).is_some();
    match root.get("resourceType").and_then(|t| t.as_str()) {
        Some("Coverage") => {
            if has("class") {
                return Some(Release::R4);
            }
            if has("grouping") {
                return Some(Release::Stu3);
            }
        }
        Some("ExplanationOfBenefit") => {
            match root.get("insurance").map(|i| i.kind()) {
                Some(Kind::Array(_)) => return Some(Release::R4),
                Some(Kind::Object(_)) => return Some(Release::Stu3),
                _ => {}
            }
            if has("total") {
                return Some(Release::R4);
            }
            if has("totalCost") {
                return Some(Release::Stu3);
            }
            match root.get("outcome").map(|o| o.kind()) {
                Some(Kind::String(_)) => return Some(Release::R4),
                Some(Kind::Object(_)) => return Some(Release::Stu3),
                _ => {}
            }
            for f in root
                .get("benefitBalance")
                .into_iter()
                .flat_map(|b| b.items())
                .flat_map(|b| b.get("financial").into_iter().flat_map(|f| f.items()))
            {
                if f.get("usedMoney").is_some() {
                    return Some(Release::R4);
                }
                if f.get("benefitUsedMoney").is_some() {
                    return Some(Release::Stu3);
                }
            }
        }
        Some("Patient") => {
            let flagged = |ext: Option<Cursor<'_>>| {
                ext.into_iter()
                    .flat_map(|e| e.items())
                    .any(|e| e.get("url").and_then(|u| u.as_str()) == Some(IDENTIFIER_CURRENCY))
            };
            for id in root.get("identifier").into_iter().flat_map(|i| i.items()) {
                if flagged(id.get("extension")) {
                    return Some(Release::Stu3);
                }
                let codings = id
                    .get("type")
                    .and_then(|t| t.get("coding"))
                    .into_iter()
                    .flat_map(|c| c.items());
                for c in codings {
                    if flagged(c.get("extension")) {
                        return Some(Release::R4);
                    }
                }
            }
        }
        _ => {}
    }
    None
}

/// The claim type of an `ExplanationOfBenefit`, as the `eob-type` coding names it (`CARRIER`,
/// `DME`, `HHA`, `HOSPICE`, `INPATIENT`, `OUTPATIENT`, `PDE`, `SNF`).
///
/// v1/v2 use `https://bluebutton.cms.gov/resources/codesystem/eob-type`; v3 uses
/// `https://bluebutton.cms.gov/fhir/CodeSystem/EOB-TYPE` and, in builds before July 2026, only
/// `CLM-TYPE-CD`, which is mapped with BFD's own table. A v3 prior authorization
/// (`use = preauthorization`) is `PRIOR_AUTH`. Anything else is `None`.
pub fn claim_type(root: Cursor<'_>) -> Option<&'static str> {
    let codings = root.get("type").and_then(|t| t.get("coding"));
    let mut from_clm_type_cd = None;
    for c in codings.iter().flat_map(|c| c.items()) {
        let system = c.get("system").and_then(|s| s.as_str());
        let code = c.get("code").and_then(|s| s.as_str());
        match (system, code) {
            (Some(EOB_TYPE_V12 | EOB_TYPE_V3), Some(code)) => return known_claim_type(code),
            (Some(CLM_TYPE_CD_V3), Some(code)) => from_clm_type_cd = clm_type_cd(code),
            _ => {}
        }
    }
    if from_clm_type_cd.is_some() {
        return from_clm_type_cd;
    }
    match root.get("use").map(|u| u.kind()) {
        Some(Kind::String("preauthorization")) => Some("PRIOR_AUTH"),
        _ => None,
    }
}

/// The claim types BFD's `eob-type` coding names: CCLF's.
pub const EOB_TYPES: [&str; 8] = [
    "CARRIER",
    "DME",
    "HHA",
    "HOSPICE",
    "INPATIENT",
    "OUTPATIENT",
    "PDE",
    "SNF",
];

/// An `eob-type` code as one of [`EOB_TYPES`] (in any case); `None` for any other text.
pub fn known_claim_type(code: &str) -> Option<&'static str> {
    EOB_TYPES.into_iter().find(|t| t.eq_ignore_ascii_case(code))
}

/// The code of an `ExplanationOfBenefit`'s `eob-type` coding (v1/v2 or v3 system), as written;
/// [`claim_type`] is what it means.
pub fn eob_type_code(root: Cursor<'_>) -> Option<&str> {
    root.get("type")
        .and_then(|t| t.get("coding"))
        .into_iter()
        .flat_map(|c| c.items())
        .find(|c| {
            c.get("system")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s == EOB_TYPE_V12 || s == EOB_TYPE_V3)
        })
        .and_then(|c| c.get("code").and_then(|s| s.as_str()))
}

/// BFD v3's `CLM-TYPE-CD` to claim type table (`bfd-v3-shapes.md`, section 3).
fn clm_type_cd(code: &str) -> Option<&'static str> {
    let n: u32 = code.parse().ok()?;
    let institutional = |tob: u32| -> Option<&'static str> {
        match tob {
            32 | 33 | 39 | 42 | 66 | 92 => Some("HHA"),
            81 | 82 | 91 | 98 | 900 => Some("HOSPICE"),
            11 | 41 | 69 => Some("INPATIENT"),
            18 | 21 => Some("SNF"),
            700 => Some("CARRIER"),
            800 => Some("DME"),
            0 | 12..=14 | 22 | 23 | 28 | 34 | 43 | 49 | 65 | 71..=79 | 83..=89 | 93..=97 | 99 => {
                Some("OUTPATIENT")
            }
            _ => None,
        }
    };
    match n {
        71 | 72 => Some("CARRIER"),
        81 | 82 => Some("DME"),
        10 => Some("HHA"),
        50 => Some("HOSPICE"),
        60..=64 => Some("INPATIENT"),
        40 => Some("OUTPATIENT"),
        1..=4 => Some("PDE"),
        20 | 30 => Some("SNF"),
        1000..=1999 => institutional(n - 1000),
        2000..=2999 => institutional(n - 2000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::LineParser;

    fn on(json: &str) -> (Option<ApiVersion>, Option<&'static str>) {
        LineParser::new()
            .parse(json.as_bytes(), |d| {
                (detect_version(d.root()), claim_type(d.root()))
            })
            .expect("test JSON parses")
    }

    #[test]
    fn versions_from_shape() {
        let v1 = r#"{"resourceType":"ExplanationOfBenefit","type":{"coding":[{"system":"https://bluebutton.cms.gov/resources/codesystem/eob-type","code":"CARRIER"}]}}"#;
        assert_eq!(on(v1), (Some(ApiVersion::V1), Some("CARRIER")));
        let v2 = r#"{"meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient"]},"resourceType":"Patient"}"#;
        assert_eq!(on(v2).0, Some(ApiVersion::V2));
        let v3 = r#"{"meta":{"profile":["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient|2.2.0"]},"resourceType":"Patient"}"#;
        assert_eq!(on(v3).0, Some(ApiVersion::V3));
        let bare = r#"{"id":"848484848","link":[],"resourceType":"Patient"}"#;
        assert_eq!(on(bare).0, None);
    }

    /// Issue 17: real R4 resources without `meta.profile` (as BFD builds of 2020 wrote them)
    /// are v2, real STU3 ones v1, by the elements only their release has.
    #[test]
    fn real_resources_without_a_profile_keep_their_version() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sample-data/real");
        let mut checked = 0;
        for (folder, want) in [("r4", ApiVersion::V2), ("stu3", ApiVersion::V1)] {
            for entry in std::fs::read_dir(root.join(folder))
                .expect("samples")
                .flatten()
            {
                let text = std::fs::read_to_string(entry.path()).expect("sample");
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let mut v: serde_json::Value = serde_json::from_str(line).expect("JSON");
                    if let Some(meta) = v.get_mut("meta").and_then(|m| m.as_object_mut()) {
                        meta.remove("profile");
                    }
                    let stripped = v.to_string();
                    if v["resourceType"] == "Patient" && folder == "stu3" {
                        // The STU3 sample Patient carries no release mark: the file decides.
                        continue;
                    }
                    assert_eq!(
                        on(&stripped).0,
                        Some(want),
                        "{} {}",
                        entry.path().display(),
                        v["id"]
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 30, "{checked} resources");
        // Coverage with `class` and nothing else BFD-specific is still R4.
        let coverage = r#"{"resourceType":"Coverage","class":[{"value":"A"}]}"#;
        assert_eq!(on(coverage).0, Some(ApiVersion::V2));
    }

    #[test]
    fn v3_claim_type_falls_back_to_clm_type_cd() {
        let eob = |code: &str| {
            format!(
                r#"{{"resourceType":"ExplanationOfBenefit","type":{{"coding":[{{"system":"{CLM_TYPE_CD_V3}","code":"{code}"}}]}}}}"#
            )
        };
        assert_eq!(on(&eob("2013")), (Some(ApiVersion::V3), Some("OUTPATIENT")));
        assert_eq!(on(&eob("1021")).1, Some("SNF"));
        assert_eq!(on(&eob("3")).1, Some("PDE"));
        assert_eq!(on(&eob("9999")).1, None);
        let pa = r#"{"resourceType":"ExplanationOfBenefit","use":"preauthorization"}"#;
        assert_eq!(on(pa).1, Some("PRIOR_AUTH"));
    }

    #[test]
    fn request_urls() {
        let u = "https://api.bcda.cms.gov/api/v2/Group/all/$export?_type=Patient";
        assert_eq!(ApiVersion::from_request_url(u), Some(ApiVersion::V2));
        assert_eq!(ApiVersion::from_request_url("http://x/nothing"), None);
    }
}
