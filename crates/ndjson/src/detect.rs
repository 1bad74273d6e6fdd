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

/// Decides the API version of one resource from its shape, or `None` when it carries no mark.
pub fn detect_version(root: Cursor<'_>) -> Option<ApiVersion> {
    let mut profiled = false;
    if let Some(profiles) = root.get("meta").and_then(|m| m.get("profile")) {
        for p in profiles.items().filter_map(|p| p.as_str()) {
            profiled = true;
            if p.contains('|') || p.starts_with(V3_PREFIX) {
                return Some(ApiVersion::V3);
            }
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
        Some(ApiVersion::V2)
    } else {
        // BFD v1 (STU3) never sets a profile.
        ccw.then_some(ApiVersion::V1)
    }
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
            (Some(EOB_TYPE_V12 | EOB_TYPE_V3), Some(code)) => return known_type(code),
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

fn known_type(code: &str) -> Option<&'static str> {
    const TYPES: [&str; 8] = [
        "CARRIER",
        "DME",
        "HHA",
        "HOSPICE",
        "INPATIENT",
        "OUTPATIENT",
        "PDE",
        "SNF",
    ];
    TYPES.into_iter().find(|t| t.eq_ignore_ascii_case(code))
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
