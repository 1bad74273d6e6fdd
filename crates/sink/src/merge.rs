//! The set replacement of the database sinks, as SQL: one definition of the statements that
//! replace, at commit, every key a run wrote (or removed) in every table sharing its key columns,
//! and a run id's earlier rows in the tables that are only appended to when that run id is
//! loaded again, for SQLite and PostgreSQL, each spelling names and comparisons its own way
//! ([`Dialect`]).

use std::collections::BTreeMap;

use claimline_model::TableSchema;

/// How one database spells the names and comparisons of the merge.
pub(crate) struct Dialect<'a> {
    /// A table of the output, qualified (`main."cclf1"`, `"claimline"."cclf1"`).
    pub table: &'a dyn Fn(&str) -> String,
    /// The run's staging table of a table.
    pub stage: &'a dyn Fn(&str) -> String,
    /// A column, quoted as the database names it.
    pub column: &'a dyn Fn(&str) -> String,
    /// A temporary table of the merge, as statements refer to it.
    pub temp: &'a dyn Fn(&str) -> String,
    /// The start of the statement making a temporary table from a query, `{}` its name.
    pub create_temp: &'a str,
    /// Null-safe equality (`IS`, `IS NOT DISTINCT FROM`).
    pub same: &'a str,
    /// True when the stored row `m` is newer than the staged row `s` (by `_last_updated`).
    pub newer: &'a str,
    /// The placeholder of a statement's first parameter (`?1`, `$1`).
    pub first_param: &'a str,
}

/// The statements of one replace key's tables.
pub(crate) struct GroupSql<'s> {
    /// The key columns.
    pub key: &'s [String],
    /// The temporary table of the keys to replace; the caller adds the keys the run removes
    /// (cancelled claims) between `prepare` and `apply`, in key column order.
    pub keys_table: String,
    /// Drops the staged rows older than stored ones (newest-wins tables), then makes
    /// `keys_table` from the staged keys.
    pub prepare: Vec<String>,
    /// Deletes the stored rows of every key in `keys_table`.
    pub apply: Vec<String>,
}

/// The merge of `schemas`: per replace key its statements, then the inserts of every staged
/// table into its table (which the caller runs after all groups).
pub(crate) fn statements<'s>(
    schemas: &'s [TableSchema],
    d: &Dialect<'_>,
) -> (Vec<GroupSql<'s>>, Vec<String>) {
    let mut groups: BTreeMap<&'s [String], Vec<&'s TableSchema>> = BTreeMap::new();
    for s in schemas {
        if !s.replace_key.is_empty() {
            groups.entry(&s.replace_key).or_default().push(s);
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (g, (key, tables)) in groups.into_iter().enumerate() {
        let cols = key
            .iter()
            .map(|k| (d.column)(k))
            .collect::<Vec<_>>()
            .join(", ");
        let keys_name = format!("keys_{g}");
        let mut prepare = Vec::new();
        if tables
            .iter()
            .all(|t| t.newest_wins && t.column_index("_last_updated").is_some())
        {
            // Staged rows older than the stored ones of their key do not go in (the newest
            // `_last_updated` is current, a missing one oldest), as Parquet's readers decide.
            let on = key
                .iter()
                .map(|k| format!("m.{0} {1} s.{0}", (d.column)(k), d.same))
                .collect::<Vec<_>>()
                .join(" AND ");
            let picked = key
                .iter()
                .map(|k| format!("s.{}", (d.column)(k)))
                .collect::<Vec<_>>()
                .join(", ");
            let select = tables
                .iter()
                .map(|t| {
                    format!(
                        "SELECT {picked} FROM {} s JOIN {} m ON {on} WHERE {}",
                        (d.stage)(&t.name),
                        (d.table)(&t.name),
                        d.newer
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ");
            let older = format!("older_{g}");
            prepare.push(format!(
                "{} {select}",
                d.create_temp.replace("{}", &quote(&older))
            ));
            for t in &tables {
                prepare.push(format!(
                    "DELETE FROM {} WHERE ({cols}) IN (SELECT {cols} FROM {})",
                    (d.stage)(&t.name),
                    (d.temp)(&older)
                ));
            }
        }
        let union = tables
            .iter()
            .map(|t| format!("SELECT {cols} FROM {}", (d.stage)(&t.name)))
            .collect::<Vec<_>>()
            .join(" UNION ");
        prepare.push(format!(
            "{} {union}",
            d.create_temp.replace("{}", &quote(&keys_name))
        ));
        let keys_table = (d.temp)(&keys_name);
        let apply = tables
            .iter()
            .map(|t| {
                format!(
                    "DELETE FROM {} WHERE ({cols}) IN (SELECT {cols} FROM {keys_table})",
                    (d.table)(&t.name)
                )
            })
            .collect();
        out.push(GroupSql {
            key,
            keys_table,
            prepare,
            apply,
        });
    }
    let inserts = schemas
        .iter()
        .map(|s| {
            format!(
                "INSERT INTO {} SELECT * FROM {}",
                (d.table)(&s.name),
                (d.stage)(&s.name)
            )
        })
        .collect();
    (out, inserts)
}

/// The statements that remove, from each table with no replace key and a `_run_id` column
/// (`_claimline_claims`, `_claimline_counts`: every view has a key), the rows of the run id
/// bound as the first parameter: what the caller runs before the inserts when the run id it
/// commits was loaded before. Such tables are only appended to, so without them a run id
/// loaded again would hold its rows twice, where Parquet replaces the run's partition whole.
pub(crate) fn reload_statements(schemas: &[TableSchema], d: &Dialect<'_>) -> Vec<String> {
    schemas
        .iter()
        .filter(|s| s.replace_key.is_empty() && s.column_index("_run_id").is_some())
        .map(|s| {
            format!(
                "DELETE FROM {} WHERE {} = {}",
                (d.table)(&s.name),
                (d.column)("_run_id"),
                d.first_param
            )
        })
        .collect()
}

/// A name in double quotes, as both databases quote identifiers.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
