//! BCDA API versions.

use std::fmt;

/// A BCDA API version, which fixes the FHIR version and the shape of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    /// API v1: FHIR STU3 from BFD v1 (CCW).
    V1,
    /// API v2: FHIR R4, CARIN Blue Button, from BFD v2 (CCW).
    V2,
    /// API v3: FHIR R4, CARIN Blue Button 2.x, from BFD v3 (CMS IDR).
    V3,
}

impl ApiVersion {
    /// `v1`, `v2` or `v3`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }

    /// The FHIR release this API version serves.
    pub fn fhir_version(self) -> &'static str {
        match self {
            ApiVersion::V1 => "STU3",
            ApiVersion::V2 | ApiVersion::V3 => "R4",
        }
    }

    /// Parses `v1`/`v2`/`v3` (any case).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "v1" => Some(ApiVersion::V1),
            "v2" => Some(ApiVersion::V2),
            "v3" => Some(ApiVersion::V3),
            _ => None,
        }
    }

    /// The version named by a BCDA request URL such as `https://…/api/v2/Group/all/$export`.
    pub fn from_request_url(url: &str) -> Option<Self> {
        let rest = &url[url.find("/api/")? + 5..];
        ApiVersion::parse(rest.split('/').next()?)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest resource type name [`is_resource_type_name`] takes.
const MAX_RESOURCE_TYPE_NAME: usize = 64;

/// [`is_resource_type_name`]'s rule in the words a refusal gives, beside the field it names.
pub const RESOURCE_TYPE_NAME_RULE: &str = "A-Z, then letters, at most 64";

/// Whether `name` has the form of a FHIR resource type name: an upper-case letter, then letters,
/// at most 64 in all (the longest FHIR name has 33). claimline counts resources, names files and
/// reports by type: text of any other form (an MBI, a name typed into `resourceType` or a
/// manifest's `type`) is refused where it comes in, never shown.
///
/// ```
/// use claimline_model::is_resource_type_name;
/// assert!(is_resource_type_name("ExplanationOfBenefit"));
/// assert!(!is_resource_type_name("1EG4TE5MK73"));
/// assert!(!is_resource_type_name("patient") && !is_resource_type_name(""));
/// ```
pub fn is_resource_type_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_RESOURCE_TYPE_NAME
        && b[0].is_ascii_uppercase()
        && b.iter().all(u8::is_ascii_alphabetic)
}
