//! The Markdown data dictionary of a view set (`claimline views doc`): per table, every column
//! with its CCLF field, type, FHIRPath per API version, notes, and coverage counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::LoadError;
use crate::views::ViewSource;

/// A view as the dictionary shows it.
pub struct Described {
    /// Table (the view's `name`).
    pub table: String,
    /// `v1`, `v2`, `v3`, or `all`.
    pub version: String,
    /// Where the view came from.
    pub origin: String,
    /// The view's title.
    pub title: String,
    /// Its columns in order.
    pub columns: Vec<DescribedColumn>,
}

/// A column as the dictionary shows it.
pub struct DescribedColumn {
    /// Column name.
    pub name: String,
    /// Declared type (with `ansi/type` when tagged).
    pub ty: String,
    /// FHIRPath (`{}` for a NULL column).
    pub path: String,
    /// Description.
    pub description: String,
    /// Tags as `(name, value)`.
    pub tags: Vec<(String, String)>,
}

impl DescribedColumn {
    fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Filled from the resource or by the link stage (not a NULL column).
    pub fn mapped(&self) -> bool {
        self.path.trim() != "{}" || self.tag("claimline/link").is_some()
    }

    /// The crosswalk CSVs give a path for this field and version.
    pub fn mappable(&self) -> bool {
        self.tag("source/path").is_some()
    }
}

/// Reads table, version, title and columns (with paths and tags) from each view's JSON.
///
/// # Errors
/// [`LoadError::Usage`] for a view that is not JSON.
pub fn described(sources: &[ViewSource]) -> Result<Vec<Described>, LoadError> {
    let mut out = Vec::new();
    for s in sources {
        let v: Value = serde_json::from_str(&s.text)
            .map_err(|e| LoadError::Usage(format!("{}: {e}", s.origin)))?;
        let mut columns = Vec::new();
        collect_columns(&v, &mut columns);
        out.push(Described {
            table: v["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
            version: s.api_version.map_or("all", |v| v.as_str()).to_owned(),
            origin: s.origin.clone(),
            title: v["title"].as_str().unwrap_or_default().to_owned(),
            columns,
        });
    }
    Ok(out)
}

fn collect_columns(v: &Value, out: &mut Vec<DescribedColumn>) {
    for sel in v["select"].as_array().into_iter().flatten() {
        for c in sel["column"].as_array().into_iter().flatten() {
            let tags: Vec<(String, String)> = c["tag"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let mut ty = c["type"].as_str().unwrap_or("string").to_owned();
            if let Some((_, a)) = tags.iter().find(|(n, _)| n == "ansi/type") {
                ty = format!("{ty} {a}");
            }
            out.push(DescribedColumn {
                name: c["name"].as_str().unwrap_or_default().to_owned(),
                ty,
                path: c["path"].as_str().unwrap_or_default().to_owned(),
                description: c["description"].as_str().unwrap_or_default().to_owned(),
                tags,
            });
        }
        collect_columns(sel, out);
        for u in sel["unionAll"].as_array().into_iter().flatten() {
            collect_columns(&serde_json::json!({ "select": [u] }), out);
        }
    }
}

/// Coverage of one view: (mapped, mappable, mapped among the mappable, total). When some
/// column holds a CCLF field (`cclf/field`), only those count: helper columns of the CCLF8 input
/// views (join keys, monthly values) are not fields.
pub fn coverage(v: &Described) -> (usize, usize, usize, usize) {
    let fields = v.columns.iter().any(|c| c.tag("cclf/field").is_some());
    let columns: Vec<&DescribedColumn> = v
        .columns
        .iter()
        .filter(|c| !fields || c.tag("cclf/field").is_some())
        .collect();
    let mapped = columns.iter().filter(|c| c.mapped()).count();
    let mappable = columns.iter().filter(|c| c.mappable()).count();
    let both = columns
        .iter()
        .filter(|c| c.mapped() && c.mappable())
        .count();
    (mapped, mappable, both, columns.len())
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown data dictionary of a set of views.
pub fn dictionary(views: &[Described]) -> String {
    let mut by_table: BTreeMap<&str, Vec<&Described>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for v in views {
        if !by_table.contains_key(v.table.as_str()) {
            order.push(&v.table);
        }
        by_table.entry(&v.table).or_default().push(v);
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Data dictionary\n");
    let _ = writeln!(
        md,
        "Generated by `claimline views doc`; do not edit by hand. Per table: the columns in order, \
         the CCLF field each holds, its type, the FHIRPath per BCDA API version (`{{}}`: NULL, with \
         the reason in the notes), and the notes.\n"
    );
    let _ = writeln!(
        md,
        "Coverage: **mapped** = columns with a path (including link-stage and surrogate columns); \
         **mappable** = fields the crosswalk CSVs give a path for in that version; \
         **mapped of mappable**; **total** = columns.\n"
    );
    let _ = writeln!(
        md,
        "| table | version | mapped | mappable | mapped of mappable | total |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|");
    let mut sums: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    for t in &order {
        for v in &by_table[t] {
            let (m, a, b, n) = coverage(v);
            let _ = writeln!(md, "| {t} | {} | {m} | {a} | {b} | {n} |", v.version);
            let s = sums.entry(&v.version).or_default();
            *s = (s.0 + m, s.1 + a, s.2 + b, s.3 + n);
        }
    }
    for (version, (m, a, b, n)) in &sums {
        let _ = writeln!(md, "| **all** | {version} | {m} | {a} | {b} | {n} |");
    }
    for t in &order {
        let vs = &by_table[t];
        let _ = writeln!(md, "\n## {t}\n");
        if let Some(first) = vs.first() {
            let _ = writeln!(md, "{}\n", first.title);
        }
        let _ = write!(md, "| # | column | CCLF field | type |");
        for v in vs {
            let _ = write!(md, " {} |", v.version);
        }
        let _ = writeln!(md, " notes |");
        let _ = write!(md, "|---|---|---|---|");
        for _ in vs {
            let _ = write!(md, "---|");
        }
        let _ = writeln!(md, "---|");
        let Some(first) = vs.first() else { continue };
        for (i, c) in first.columns.iter().enumerate() {
            let field = c.tag("cclf/field").unwrap_or("");
            let _ = write!(
                md,
                "| {} | {} | {} | {} |",
                i + 1,
                c.name,
                cell(field),
                cell(&c.ty)
            );
            let mut notes: Vec<(String, String)> = Vec::new();
            for v in vs {
                match v.columns.get(i) {
                    Some(vc) => {
                        let _ = write!(md, " `{}` |", cell(&vc.path));
                        let extra = vc
                            .description
                            .split_once(". ")
                            .map(|x| x.1)
                            .unwrap_or_default();
                        notes.push((v.version.clone(), extra.to_owned()));
                    }
                    None => {
                        let _ = write!(md, " |");
                    }
                }
            }
            let desc = c
                .description
                .split_once(". ")
                .map_or(c.description.as_str(), |x| x.0);
            let mut text = desc.to_owned();
            if notes.iter().all(|(_, n)| *n == notes[0].1) {
                if !notes[0].1.is_empty() {
                    text = format!("{text}. {}", notes[0].1);
                }
            } else {
                for (version, n) in notes.iter().filter(|(_, n)| !n.is_empty()) {
                    text = format!("{text} — {version}: {n}");
                }
            }
            let _ = writeln!(md, " {} |", cell(&text));
        }
    }
    md
}
