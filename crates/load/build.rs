//! Embeds the built-in view sets by directory: every `*.json` under `mappings/basic/` and
//! `mappings/cclf/v1|v2|v3/` becomes an `include_str!` in `builtin_views.rs`, so a view file added
//! to those folders is in the binary without a code change. Order: per folder the tables in
//! name order, then the CCLF8 link inputs (`cclf8_patient`, `cclf8_coverage`), as the views hash
//! of earlier releases had them.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    for (set, dirs) in [
        ("basic", vec!["basic"]),
        ("cclf", vec!["cclf/v1", "cclf/v2", "cclf/v3"]),
    ] {
        out.push_str(&format!(
            "/// The built-in `{set}` set.\npub const {}: &[(&str, &str)] = &[\n",
            set.to_uppercase()
        ));
        for dir in dirs {
            let path = root.join(dir);
            println!("cargo:rerun-if-changed={}", path.display());
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect();
            let rank = |n: &str| match n {
                "cclf8_patient.json" => (1, 0, String::new()),
                "cclf8_coverage.json" => (1, 1, String::new()),
                other => (0, 0, other.to_owned()),
            };
            names.sort_by_key(|n| rank(n));
            for name in names {
                let file = path.join(&name);
                out.push_str(&format!(
                    "    ({:?}, include_str!({:?})),\n",
                    format!("{dir}/{name}"),
                    file.display().to_string()
                ));
            }
        }
        out.push_str("];\n\n");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("builtin_views.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
