//! Checks the paths of a ViewDefinition against the FHIR release it runs on: a path that names an
//! element its type does not have (`name.famly`, `Patinet`) is refused before anything is read,
//! instead of loading a column of NULLs. The element lists come from the FHIR type definitions of
//! STU3 and R4 (`mappings/fhir/`, with their source).
//!
//! The check is deliberately partial: it follows a path's chain of elements from the view's
//! resource (or its `forEach` context) through `where(…)`, `first()`, `ofType(T)`,
//! `extension(…)`, indexes and `%resource`, and stops (accepting the rest) at anything else: an
//! operator, another function, a choice element (`value` of `valueString`), a primitive.

use std::collections::HashMap;
use std::sync::OnceLock;

use claimline_ndjson::ApiVersion;
use serde_json::Value;

/// A FHIR type: its base type and its elements' types, borrowed from the embedded JSON (its
/// strings have no escapes, so nothing is copied: every load reads the tables of its views).
#[derive(serde::Deserialize)]
struct TypeDef {
    #[serde(borrow)]
    base: Option<&'static str>,
    #[serde(borrow)]
    elements: HashMap<&'static str, &'static str>,
}

type Release = HashMap<&'static str, TypeDef>;

/// The element table of one release (empty, so that nothing is refused, if it does not parse:
/// a unit test checks that both do).
fn parse(text: &'static str) -> Release {
    serde_json::from_str(text).unwrap_or_default()
}

fn stu3() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| parse(include_str!("../../../mappings/fhir/elements-stu3.json")))
}

fn r4() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| parse(include_str!("../../../mappings/fhir/elements-r4.json")))
}

/// The releases a view runs on: its folder's API version, else both.
fn releases(version: Option<ApiVersion>) -> Vec<(&'static str, &'static Release)> {
    match version {
        Some(ApiVersion::V1) => vec![("STU3", stu3())],
        Some(_) => vec![("R4", r4())],
        None => vec![("STU3", stu3()), ("R4", r4())],
    }
}

/// The type of element `name` of `ty` (through its bases), `Ok(None)` when the check stops (a
/// choice element, an unknown type), `Err` when `ty` has no such element.
fn element(rel: &Release, ty: &str, name: &str) -> Result<Option<String>, String> {
    let mut current = Some(ty);
    let mut is_known = false;
    while let Some(t) = current {
        let Some(def) = rel.get(t) else { break };
        is_known = true;
        if let Some(e) = def.elements.get(name) {
            return Ok(Some((*e).to_owned()));
        }
        // A choice element: `value` stands for `valueString`, `valueCoding`, ….
        if def.elements.keys().any(|k| {
            k.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        }) {
            return Ok(None);
        }
        current = def.base;
    }
    if is_known {
        Err(format!("`{name}` is not an element of {ty}"))
    } else {
        Ok(None)
    }
}

/// The top-level segments of a path (`a.where(b.c = 'x').d` → `a`, `where(b.c = 'x')`, `d`), or
/// `None` when the path is more than a chain (an operator or a space outside brackets).
fn segments(path: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, false, 0usize);
    for (i, c) in path.char_indices() {
        match c {
            '\'' => quote = !quote,
            _ if quote => {}
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '.' if depth == 0 => {
                out.push(&path[start..i]);
                start = i + 1;
            }
            ' ' | '=' | '|' | '+' | '*' | '/' | '<' | '>' | '!' | '~' | '&' | '-' if depth == 0 => {
                return None;
            }
            _ => {}
        }
    }
    out.push(&path[start..]);
    Some(out)
}

/// The type a path ends in, from the context type `ctx` of resource `resource`: `Ok(None)` when
/// the check stopped, `Err` naming the first element that does not exist.
fn follow(rel: &Release, resource: &str, ctx: &str, path: &str) -> Result<Option<String>, String> {
    let Some(segs) = segments(path.trim()) else {
        return Ok(None);
    };
    let mut ty = Some(ctx.to_owned());
    for seg in segs {
        let Some(current) = ty.clone() else {
            return Ok(None);
        };
        if let Some(var) = seg.strip_prefix('%') {
            if var == "resource" || var == "rootResource" {
                ty = Some(resource.to_owned());
                continue;
            }
            return Ok(None);
        }
        let (name, call) = match seg.find(['(', '[']) {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if call.starts_with('(') {
            ty = match name {
                "where" | "first" | "last" | "single" | "distinct" | "tail" | "skip" | "take" => {
                    Some(current)
                }
                "extension" => Some("Extension".to_owned()),
                "ofType" => Some(call.trim_matches(['(', ')']).trim().to_owned()),
                _ => return Ok(None),
            };
            continue;
        }
        if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Ok(None);
        }
        match element(rel, &current, name)? {
            Some(t) if matches!(t.as_str(), "string" | "number" | "boolean" | "Resource") => {
                return Ok(None);
            }
            next => ty = next,
        }
    }
    Ok(ty)
}

/// Checks the paths of one view (JSON text) that runs on `version`; the message names the
/// column, the path and the element that does not exist.
pub fn check(text: &str, version: Option<ApiVersion>) -> Result<(), String> {
    let Ok(view) = serde_json::from_str::<Value>(text) else {
        return Ok(());
    };
    let Some(resource) = view["resource"].as_str() else {
        return Ok(());
    };
    let mut first_error = None;
    for (release, rel) in releases(version) {
        let mut problems = Vec::new();
        check_selects(
            rel,
            resource,
            Some(resource.to_owned()),
            &view["select"],
            &mut problems,
        );
        for w in view["where"].as_array().into_iter().flatten() {
            if let Some(p) = w["path"].as_str()
                && let Err(e) = follow(rel, resource, resource, p)
            {
                problems.push(format!("where path `{p}`: {e}"));
            }
        }
        match problems.into_iter().next() {
            None => return Ok(()),
            Some(p) => {
                first_error.get_or_insert(format!("{p} (FHIR {release})"));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn check_selects(
    rel: &Release,
    resource: &str,
    ctx: Option<String>,
    selects: &Value,
    problems: &mut Vec<String>,
) {
    for s in selects.as_array().into_iter().flatten() {
        let mut here = ctx.clone();
        for key in ["forEach", "forEachOrNull"] {
            if let (Some(p), Some(c)) = (s[key].as_str(), &ctx) {
                here = match follow(rel, resource, c, p) {
                    Ok(t) => t,
                    Err(e) => {
                        problems.push(format!("{key} `{p}`: {e}"));
                        None
                    }
                };
            }
        }
        if let Some(c) = &here {
            for col in s["column"].as_array().into_iter().flatten() {
                if let Some(p) = col["path"].as_str()
                    && let Err(e) = follow(rel, resource, c, p)
                {
                    let name = col["name"].as_str().unwrap_or("?");
                    problems.push(format!("column `{name}`, path `{p}`: {e}"));
                }
            }
        }
        check_selects(rel, resource, here.clone(), &s["select"], problems);
        check_selects(rel, resource, here, &s["unionAll"], problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(resource: &str, path: &str) -> String {
        format!(
            r#"{{"resourceType":"ViewDefinition","resource":"{resource}","select":[{{"column":[{{"name":"c","path":"{path}"}}]}}]}}"#
        )
    }

    #[test]
    fn both_element_tables_parse() {
        // A table that failed to parse would be empty and refuse nothing.
        for rel in [stu3(), r4()] {
            assert!(rel.len() > 100, "{} types", rel.len());
            assert!(
                rel["ExplanationOfBenefit"]
                    .elements
                    .contains_key("billablePeriod")
            );
        }
    }

    #[test]
    fn a_misspelt_element_is_named() {
        let err = check(&view("Patient", "name.famly"), Some(ApiVersion::V2)).expect_err("typo");
        assert_eq!(
            err,
            "column `c`, path `name.famly`: `famly` is not an element of HumanName (FHIR R4)"
        );
        let err = check(&view("Patient", "nmae.family"), None).expect_err("typo");
        assert!(err.contains("`nmae` is not an element of Patient"), "{err}");
    }

    #[test]
    fn real_paths_pass() {
        for (resource, path) in [
            ("Patient", "name.family"),
            ("Patient", "name.where(use = 'official').given.first()"),
            ("Patient", "extension('http://x').valueCoding.code"),
            (
                "Patient",
                "extension.where(url = 'x').value.ofType(Coding).code",
            ),
            (
                "ExplanationOfBenefit",
                "%resource.item[%rowIndex].productOrService.coding.code",
            ),
            ("ExplanationOfBenefit", "patient.getReferenceKey(Patient)"),
            ("ExplanationOfBenefit", "getResourceKey()"),
            (
                "ExplanationOfBenefit",
                "identifier.where(system = 'a.b').value = 'x'",
            ),
            ("Coverage", "meta.lastUpdated"),
        ] {
            assert_eq!(
                check(&view(resource, path), Some(ApiVersion::V2)),
                Ok(()),
                "{path}"
            );
        }
    }

    #[test]
    fn for_each_changes_the_context() {
        let v = r#"{"resourceType":"ViewDefinition","resource":"ExplanationOfBenefit","select":[{"forEach":"item","column":[{"name":"n","path":"sequence"},{"name":"x","path":"adjudication.amount.valeu"}]}]}"#;
        let err = check(v, Some(ApiVersion::V2)).expect_err("typo");
        assert!(err.contains("`valeu` is not an element of Money"), "{err}");
    }
}
