//! What earlier loads left in an output's database (SQLite or PostgreSQL), as a load reads it:
//! the run records, the MBIs of `bene_xref`, the service months of `_claimline_counts` and the
//! claim heads of `_claimline_claims`. One trait, [`EarlierState`], so the loader reads either
//! database the same way.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use claimline_link::{BeneIndex, Fields, RunGroup, StoredHead, VersionMode, parse_instant};
use claimline_model::{Cell, Column, ColumnType, RunRecord};
use claimline_ndjson::ApiVersion;
use claimline_sink::{PgSession, pg_column};

use crate::LoadError;
use crate::loader::sqlite_error;

/// A stored head and whether an earlier run cancelled the run's own winner, per group.
pub type Heads = Vec<(Option<StoredHead>, bool)>;

/// What earlier runs committed to the database of an output (the one that keeps the
/// claim-history state), read before and after a load's scan.
pub trait EarlierState {
    /// This very run is committed: a run of its id and its start (a run id loaded again starts
    /// at another time).
    ///
    /// # Errors
    /// A failed read.
    fn holds_run(&mut self, run: &RunRecord) -> Result<bool, claimline_sink::Error>;

    /// The records of every run, the last one last.
    ///
    /// # Errors
    /// A failed read; a record that cannot be read (the guards that read them depend on them).
    fn runs(&mut self) -> Result<Vec<RunRecord>, LoadError>;

    /// (API version, service month) of the claims earlier runs loaded.
    ///
    /// # Errors
    /// A failed read.
    fn months(&mut self) -> Result<BTreeSet<(String, String)>, LoadError>;

    /// Adds the current MBIs of `bene_xref` for beneficiaries `index` does not know.
    ///
    /// # Errors
    /// A failed read.
    fn fill_bene_index(&mut self, index: &mut BeneIndex) -> Result<(), LoadError>;

    /// The values of `columns` in the current `cclf8` row of each beneficiary, keyed by (API
    /// version, `_resource_id`), for the beneficiaries `wanted` names: what the run's `cclf8`
    /// rows carry over where their Coverage leaves a column empty
    /// ([`claimline_link::Cclf8Builder::carry`]). A column the table does not have is left out.
    ///
    /// # Errors
    /// A failed read.
    fn cclf8_values(
        &mut self,
        columns: &[Column],
        wanted: &HashSet<Bene>,
    ) -> Result<HashMap<Bene, Fields>, LoadError>;

    /// Earlier runs recorded claim events (`_claimline_claims` exists).
    fn has_claims(&self) -> bool;

    /// Per group (in order): the head earlier runs left, and whether an earlier run cancelled
    /// the run's own winner.
    ///
    /// # Errors
    /// A failed read.
    fn stored_heads(
        &mut self,
        mode: VersionMode,
        groups: &[RunGroup<'_>],
    ) -> Result<Heads, LoadError>;
}

/// A beneficiary: API version and id.
pub(crate) type Bene = (Option<ApiVersion>, String);

/// A stored value, read back as text (SQLite's TEXT, PostgreSQL's `::text`), as a cell of a
/// column of type `ty`; `None` for NULL and for a type that is not carried (only text, codes,
/// dates and integers are: the types of CCLF8's Coverage columns).
pub(crate) fn stored_cell(text: Option<&str>, ty: &ColumnType) -> Option<Cell> {
    let text = text?;
    match ty {
        ColumnType::Text | ColumnType::Code => Some(Cell::text(text)),
        ColumnType::Date => claimline_model::parse_date(text).map(Cell::Date),
        ColumnType::Integer => text.parse().ok().map(Cell::Int),
        _ => None,
    }
}

/// Rows of (version, resource id, values of `columns`) as the fields carried for each
/// beneficiary `wanted` names (a NULL value is no field). The one conversion of the SQLite,
/// PostgreSQL and Parquet readers.
pub(crate) fn carried(
    rows: impl IntoIterator<Item = (Option<ApiVersion>, String, Vec<Option<Cell>>)>,
    columns: &[&Column],
    wanted: &HashSet<Bene>,
) -> HashMap<Bene, Fields> {
    let mut out = HashMap::new();
    for (version, bene, values) in rows {
        let key = (version, bene);
        if !wanted.contains(&key) {
            continue;
        }
        let fields: Fields = columns
            .iter()
            .zip(values)
            .filter_map(|(c, v)| Some((std::sync::Arc::from(c.name.as_str()), v?)))
            .collect();
        out.insert(key, fields);
    }
    out
}

/// A stored `_api_version`.
fn version_of(text: Option<String>) -> Option<ApiVersion> {
    text.as_deref().and_then(ApiVersion::parse)
}

/// The column of `_claimline_claims` a group is keyed by.
fn key_column(mode: VersionMode) -> &'static str {
    match mode {
        VersionMode::Current => "_claim_key",
        VersionMode::All => "_resource_id",
    }
}

/// What earlier runs left in the SQLite output.
pub(crate) struct SqliteEarlier {
    path: PathBuf,
    conn: rusqlite::Connection,
    has_xref: bool,
    has_claims: bool,
    has_counts: bool,
}

impl SqliteEarlier {
    pub(crate) fn open(path: &Path) -> Result<Self, LoadError> {
        let conn = claimline_sink::open_earlier(path)?;
        let tables = claimline_sink::table_names(&conn, path)?;
        Ok(SqliteEarlier {
            path: path.to_owned(),
            has_xref: tables.contains(claimline_link::BENE_XREF),
            has_claims: tables.contains(claimline_link::CLAIMS_TABLE),
            has_counts: tables.contains(claimline_link::COUNTS_TABLE),
            conn,
        })
    }

    /// The head earlier runs left for a group, and whether an earlier run cancelled the run's
    /// own winner.
    fn stored_head(
        &self,
        mode: VersionMode,
        g: &RunGroup<'_>,
    ) -> rusqlite::Result<(Option<StoredHead>, bool)> {
        let column = key_column(mode);
        // With every version kept, the claim key too (?3): see `RunGroup::claim_key`.
        let claim = match mode {
            VersionMode::Current => "",
            VersionMode::All => " AND _claim_key = ?3",
        };
        let conn = &self.conn;
        let version = g.api_version.map(|v| v.as_str());
        let head: Option<(String, Option<String>)> = conn
            .prepare_cached(&format!(
                "SELECT _resource_id, _last_updated FROM _claimline_claims \
                 WHERE _api_version IS ?1 AND {column} = ?2{claim} AND _action = 'version' \
                 ORDER BY _last_updated IS NULL, {} DESC, _run_id DESC LIMIT 1",
                claimline_sink::instant_micros("_last_updated")
            ))?
            .query_row(
                rusqlite::params_from_iter(
                    [version, Some(g.key)]
                        .into_iter()
                        .chain(g.claim_key.map(Some)),
                ),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        let cancelled = |id: &str| -> rusqlite::Result<bool> {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT count(*) FROM _claimline_claims WHERE _api_version IS ?1 \
                     AND {column} = ?2{claim} AND _action = 'cancel' AND _resource_id = ?4"
                ))?
                .query_row(rusqlite::params![version, g.key, g.claim_key, id], |r| {
                    r.get::<_, i64>(0)
                })?
                > 0)
        };
        let stored = match head {
            Some((id, lu)) => Some(StoredHead {
                cancelled: cancelled(&id)?,
                last_updated: lu.as_deref().and_then(parse_instant),
                resource_id: id,
            }),
            None => None,
        };
        let run_head_cancelled = match g.head {
            Some(h) => cancelled(&h.resource_id)?,
            None => false,
        };
        Ok((stored, run_head_cancelled))
    }
}

impl EarlierState for SqliteEarlier {
    fn holds_run(&mut self, run: &RunRecord) -> Result<bool, claimline_sink::Error> {
        Ok(claimline_sink::read_sqlite_runs(&self.conn, &self.path)?
            .iter()
            .any(|r| r.is_same_run(run)))
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>, LoadError> {
        Ok(claimline_sink::read_sqlite_runs(&self.conn, &self.path)?)
    }

    fn months(&mut self) -> Result<BTreeSet<(String, String)>, LoadError> {
        let mut out = BTreeSet::new();
        if !self.has_counts {
            return Ok(out);
        }
        let mut read = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare(
                "SELECT DISTINCT _api_version, SERVICE_MONTH FROM _claimline_counts WHERE _api_version IS NOT NULL",
            )?;
            for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))? {
                out.insert(row?);
            }
            Ok(())
        };
        read().map_err(sqlite_error(&self.path))?;
        Ok(out)
    }

    fn fill_bene_index(&mut self, index: &mut BeneIndex) -> Result<(), LoadError> {
        if !self.has_xref {
            return Ok(());
        }
        let mut read = || -> rusqlite::Result<()> {
            let mut stmt = self.conn.prepare(
                "SELECT _api_version, BENE_ID, MBI FROM bene_xref WHERE MBI_CURRENT = 1 ORDER BY rowid",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (version, bene, mbi) = row?;
                index.insert_if_absent(version.and_then(|v| ApiVersion::parse(&v)), bene, mbi);
            }
            Ok(())
        };
        read().map_err(sqlite_error(&self.path))
    }

    fn cclf8_values(
        &mut self,
        columns: &[Column],
        wanted: &HashSet<Bene>,
    ) -> Result<HashMap<Bene, Fields>, LoadError> {
        let table = claimline_link::CCLF8_TABLE;
        let have: HashSet<String> = self
            .conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut stmt| {
                stmt.query_map([table], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(sqlite_error(&self.path))?;
        let columns: Vec<&Column> = columns.iter().filter(|c| have.contains(&c.name)).collect();
        if !have.contains("_resource_id") || columns.is_empty() || wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT _api_version, _resource_id, {} FROM {table} WHERE _resource_id IS NOT NULL",
            columns
                .iter()
                .map(|c| format!("CAST(\"{}\" AS TEXT)", c.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let rows = self
            .conn
            .prepare(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([], |r| {
                    let values = columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            Ok(stored_cell(
                                r.get::<_, Option<String>>(i + 2)?.as_deref(),
                                &c.ty,
                            ))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((version_of(r.get(0)?), r.get(1)?, values))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sqlite_error(&self.path))?;
        Ok(carried(rows, &columns, wanted))
    }

    fn has_claims(&self) -> bool {
        self.has_claims
    }

    fn stored_heads(
        &mut self,
        mode: VersionMode,
        groups: &[RunGroup<'_>],
    ) -> Result<Heads, LoadError> {
        if !self.has_claims {
            return Ok(vec![(None, false); groups.len()]);
        }
        groups
            .iter()
            .map(|g| self.stored_head(mode, g).map_err(sqlite_error(&self.path)))
            .collect()
    }
}

/// What earlier runs left in a PostgreSQL schema, read through the session that holds the
/// schema's lock for the whole load.
pub(crate) struct PgEarlier {
    session: PgSession,
    tables: BTreeSet<String>,
}

impl PgEarlier {
    pub(crate) fn new(mut session: PgSession) -> Result<Self, LoadError> {
        let tables = session.table_names()?;
        Ok(PgEarlier { session, tables })
    }

    fn table(&self, name: &str) -> String {
        self.session.target().table(name)
    }
}

impl EarlierState for PgEarlier {
    fn holds_run(&mut self, run: &RunRecord) -> Result<bool, claimline_sink::Error> {
        Ok(self.session.runs()?.iter().any(|r| r.is_same_run(run)))
    }

    fn runs(&mut self) -> Result<Vec<RunRecord>, LoadError> {
        Ok(self.session.runs()?)
    }

    fn months(&mut self) -> Result<BTreeSet<(String, String)>, LoadError> {
        if !self.tables.contains(claimline_link::COUNTS_TABLE) {
            return Ok(BTreeSet::new());
        }
        let sql = format!(
            "SELECT DISTINCT _api_version, {} FROM {} WHERE _api_version IS NOT NULL",
            pg_column("SERVICE_MONTH"),
            self.table(claimline_link::COUNTS_TABLE)
        );
        let rows = self.session.client().query(&sql, &[]);
        let rows = rows.map_err(|e| LoadError::Sink(self.session.query_error()(e)))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn fill_bene_index(&mut self, index: &mut BeneIndex) -> Result<(), LoadError> {
        if !self.tables.contains(claimline_link::BENE_XREF) {
            return Ok(());
        }
        let sql = format!(
            "SELECT _api_version, {}, {} FROM {} WHERE {} ORDER BY _run_id, {}",
            pg_column("BENE_ID"),
            pg_column("MBI"),
            self.table(claimline_link::BENE_XREF),
            pg_column("MBI_CURRENT"),
            pg_column("BENE_ID"),
        );
        let rows = self.session.client().query(&sql, &[]);
        let rows = rows.map_err(|e| LoadError::Sink(self.session.query_error()(e)))?;
        for r in rows {
            let version: Option<String> = r.get(0);
            index.insert_if_absent(
                version.and_then(|v| ApiVersion::parse(&v)),
                r.get(1),
                r.get(2),
            );
        }
        Ok(())
    }

    fn cclf8_values(
        &mut self,
        columns: &[Column],
        wanted: &HashSet<Bene>,
    ) -> Result<HashMap<Bene, Fields>, LoadError> {
        let table = claimline_link::CCLF8_TABLE;
        if !self.tables.contains(table) || wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let schema = self.session.target().schema().to_owned();
        let rows = self.session.client().query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2",
            &[&schema, &table],
        );
        let have: HashSet<String> = rows
            .map_err(|e| LoadError::Sink(self.session.query_error()(e)))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The stored names are those `pg_column` gives.
        let columns: Vec<&Column> = columns
            .iter()
            .filter(|c| have.contains(pg_column(&c.name).trim_matches('"')))
            .collect();
        if columns.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT _api_version, {}, {} FROM {} WHERE {} IS NOT NULL",
            pg_column("_resource_id"),
            columns
                .iter()
                .map(|c| format!("{}::text", pg_column(&c.name)))
                .collect::<Vec<_>>()
                .join(", "),
            self.table(table),
            pg_column("_resource_id"),
        );
        let rows = self.session.client().query(&sql, &[]);
        let rows = rows.map_err(|e| LoadError::Sink(self.session.query_error()(e)))?;
        let rows = rows.iter().map(|r| {
            let values = columns
                .iter()
                .enumerate()
                .map(|(i, c)| stored_cell(r.get::<_, Option<&str>>(i + 2), &c.ty))
                .collect();
            (version_of(r.get(0)), r.get(1), values)
        });
        Ok(carried(rows, &columns, wanted))
    }

    fn has_claims(&self) -> bool {
        self.tables.contains(claimline_link::CLAIMS_TABLE)
    }

    /// In three statements whatever the number of groups: the run's keys go to a temporary
    /// table; one query gives each key's newest stored version and whether it was cancelled;
    /// one gives the keys' cancelled resource ids.
    fn stored_heads(
        &mut self,
        mode: VersionMode,
        groups: &[RunGroup<'_>],
    ) -> Result<Heads, LoadError> {
        if !self.has_claims() || groups.is_empty() {
            return Ok(vec![(None, false); groups.len()]);
        }
        let column = key_column(mode);
        let claims = self.table(claimline_link::CLAIMS_TABLE);
        let versions: Vec<Option<&str>> = groups
            .iter()
            .map(|g| g.api_version.map(|v| v.as_str()))
            .collect();
        let keys: Vec<&str> = groups.iter().map(|g| g.key).collect();
        // With every version kept, a group is also told by its claim key (`RunGroup::claim_key`).
        let claim_keys: Vec<Option<&str>> = groups.iter().map(|g| g.claim_key).collect();
        let (claim, claim_x) = match mode {
            VersionMode::Current => ("", ""),
            VersionMode::All => (" AND c._claim_key = k.claim", " AND x._claim_key = k.claim"),
        };
        let fail = |e: postgres::Error, s: &PgSession| LoadError::Sink(s.query_error()(e));
        let session = &mut self.session;
        // Keys as three parallel arrays: one round trip, however many groups.
        let heads = session.client().query(
            &format!(
                "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(v, key, claim)) \
                 SELECT DISTINCT ON (k.v, k.key, k.claim) k.v, k.key, k.claim, c._resource_id, \
                   (extract(epoch FROM c._last_updated) * 1000000)::bigint, \
                   EXISTS (SELECT 1 FROM {claims} x WHERE x._api_version IS NOT DISTINCT FROM k.v \
                     AND x.{column} = k.key{claim_x} AND x._action = 'cancel' AND x._resource_id = c._resource_id) \
                 FROM k JOIN {claims} c ON c._api_version IS NOT DISTINCT FROM k.v \
                   AND c.{column} = k.key{claim} AND c._action = 'version' \
                 ORDER BY k.v, k.key, k.claim, c._last_updated DESC NULLS LAST, c._run_id DESC"
            ),
            &[&versions, &keys, &claim_keys],
        );
        let heads = heads.map_err(|e| fail(e, session))?;
        let cancels = session.client().query(
            &format!(
                "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(v, key, claim)) \
                 SELECT DISTINCT k.v, k.key, k.claim, c._resource_id FROM k JOIN {claims} c \
                   ON c._api_version IS NOT DISTINCT FROM k.v AND c.{column} = k.key{claim} \
                   AND c._action = 'cancel'"
            ),
            &[&versions, &keys, &claim_keys],
        );
        let cancels = cancels.map_err(|e| fail(e, session))?;
        type Key = (Option<String>, String, Option<String>);
        let mut stored: HashMap<Key, StoredHead> = HashMap::new();
        for r in &heads {
            stored.insert(
                (r.get(0), r.get(1), r.get(2)),
                StoredHead {
                    resource_id: r.get(3),
                    last_updated: r.get(4),
                    cancelled: r.get(5),
                },
            );
        }
        let cancelled: HashSet<(Key, String)> = cancels
            .iter()
            .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
            .collect();
        Ok(groups
            .iter()
            .map(|g| {
                let key: Key = (
                    g.api_version.map(|v| v.as_str().to_owned()),
                    g.key.to_owned(),
                    g.claim_key.map(str::to_owned),
                );
                let own = g
                    .head
                    .is_some_and(|h| cancelled.contains(&(key.clone(), h.resource_id.to_string())));
                (stored.remove(&key), own)
            })
            .collect())
    }
}
