//! The PostgreSQL sink: one schema per output, typed tables, rows in by binary `COPY` into
//! staging tables, one transaction that applies the claim-history rule and records the run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls};

use crate::error::{Error, PgFailure};
use crate::merge::quote;
use crate::{SourceLines, TableSink};
use claimline_model::{Cell, ColumnType, RunRecord, TableSchema};

/// How a connection uses TLS, as libpq's `sslmode` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it, without checking its certificate (libpq's default).
    Prefer,
    /// Always, without checking the certificate (as libpq without a root certificate).
    Require,
    /// Always, with a certificate signed by a trusted root (`sslrootcert`, else the web's roots).
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other:?}: expected disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// A PostgreSQL database and the schema a load writes: a libpq connection URL
/// (`postgresql://user:password@host:port/db?sslmode=verify-full&sslrootcert=ca.pem`) or
/// `key=value` string. Shown (in errors, logs, reports) without its password.
///
/// ```
/// use claimline_sink::PgTarget;
/// let t = PgTarget::parse("postgresql://etl:s3cret@db.example:5433/claims?sslmode=require", "claimline")?;
/// assert_eq!(t.to_string(), "postgresql://etl@db.example:5433/claims (schema claimline)");
/// assert!(!format!("{t:?}").contains("s3cret"));
/// # Ok::<(), claimline_sink::Error>(())
/// ```
#[derive(Clone)]
pub struct PgTarget {
    config: Config,
    /// The connection string itself held a password (not `PGPASSWORD`).
    password_in_text: bool,
    ssl: SslMode,
    root_cert: Option<PathBuf>,
    schema: String,
    shown: String,
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (schema {})", self.shown, self.schema)
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({self})")
    }
}

impl PgTarget {
    /// Reads a connection URL or `key=value` string and the schema to write. `sslmode` and
    /// `sslrootcert` are read here (verify modes included); without a password,
    /// `PGPASSWORD` gives it; without a connect timeout, 10 seconds.
    ///
    /// # Errors
    /// [`Error::Postgres`] ([`PgFailure::Usage`]) for a string that is not a connection string,
    /// an unknown `sslmode`, or a schema name PostgreSQL would fold or refuse.
    pub fn parse(url: &str, schema: &str) -> Result<Self, Error> {
        check_schema(schema, MAX_SCHEMA)?;
        let (rest, ssl, root_cert) = split_tls_params(url).map_err(usage)?;
        // The driver's own error may quote the string, password included: say only what it is.
        let mut config = Config::from_str(&rest).map_err(|_| {
            usage(
                "the PostgreSQL URL is not a connection URL or key=value string (see the README)"
                    .into(),
            )
        })?;
        let password_in_text = config.get_password().is_some();
        if !password_in_text && let Ok(p) = std::env::var("PGPASSWORD") {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.ssl_mode(match ssl {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        config.application_name("claimline");
        let shown = shown(&config);
        Ok(PgTarget {
            config,
            password_in_text,
            ssl,
            root_cert,
            schema: schema.to_owned(),
            shown,
        })
    }

    /// The connection string carries a password (a file holding it must be owner-only).
    pub fn has_password(&self) -> bool {
        self.password_in_text
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The same database with the schema a reload rebuilds beside this one, `<schema>_reload`
    /// ([`PgTarget::parse`] leaves room for it in PostgreSQL's 63 bytes).
    ///
    /// # Errors
    /// As [`PgTarget::parse`] for the schema name.
    pub fn reload_target(&self) -> Result<Self, Error> {
        let schema = format!("{}{RELOAD_SUFFIX}", self.schema);
        check_schema(&schema, MAX_NAME)?;
        Ok(PgTarget {
            schema,
            ..self.clone()
        })
    }

    /// A new connection.
    ///
    /// # Errors
    /// [`Error::Postgres`]: [`PgFailure::Auth`] when the server refuses the credentials,
    /// [`PgFailure::Connect`] when it cannot be reached or TLS fails.
    pub fn connect(&self) -> Result<Client, Error> {
        let result = match self.ssl {
            SslMode::Disable => self.config.connect(NoTls),
            _ => self.config.connect(self.tls()?),
        };
        result.map_err(|e| self.error(PgFailure::Connect)(e))
    }

    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        match self.root_cert.as_ref().filter(|_| self.verifies()) {
            Some(file) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_file_iter(file)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        self.fail(
                            PgFailure::Connect,
                            format!("sslrootcert {}: {e}", file.display()),
                        )
                    })?;
                roots.add_parsable_certificates(certs);
            }
            None => {
                roots.add_parsable_certificates(
                    webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned(),
                );
            }
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| self.fail(PgFailure::Connect, format!("TLS roots: {e}")))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.fail(PgFailure::Connect, format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                webpki,
                mode: self.ssl,
            }))
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }

    /// The certificate is checked (`verify-ca`, `verify-full`).
    fn verifies(&self) -> bool {
        matches!(self.ssl, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    fn fail(&self, failure: PgFailure, message: String) -> Error {
        Error::Postgres {
            target: self.to_string(),
            failure,
            message,
        }
    }

    /// The error of a failed call: `failure`, or [`PgFailure::Auth`] for a refusal of the
    /// credentials, with the server's message (never the connection string).
    pub fn error(&self, failure: PgFailure) -> impl Fn(postgres::Error) -> Error + '_ {
        move |e| {
            let (failure, message) = match e.as_db_error() {
                Some(db) => {
                    let code = db.code().code();
                    let failure = if code.starts_with("28") {
                        PgFailure::Auth
                    } else {
                        failure
                    };
                    (failure, format!("{} ({code})", db.message()))
                }
                None => {
                    let mut message = e.to_string();
                    let mut cause = std::error::Error::source(&e);
                    while let Some(c) = cause {
                        let text = c.to_string();
                        if !message.contains(&text) {
                            message = format!("{message}: {text}");
                        }
                        cause = c.source();
                    }
                    (failure, message)
                }
            };
            self.fail(failure, message)
        }
    }

    fn quoted_schema(&self) -> String {
        quote(&self.schema)
    }

    /// A table of the schema, quoted and qualified (`"claimline"."cclf1"`).
    pub fn table(&self, name: &str) -> String {
        format!("{}.{}", self.quoted_schema(), quote(name))
    }

    /// Drops the schema and everything in it (a rebuild a reload left, or its own).
    ///
    /// # Errors
    /// A connection failure or a failed statement.
    pub fn drop_schema(&self) -> Result<(), Error> {
        self.connect()?
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.quoted_schema()
            ))
            .map_err(self.error(PgFailure::Query))
    }
}

fn usage(message: String) -> Error {
    Error::postgres_usage(message)
}

/// A schema name that needs no quoting, that PostgreSQL does not fold, of at most `max` bytes.
fn check_schema(schema: &str, max: usize) -> Result<(), Error> {
    let plain = schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if schema.is_empty() || !plain || schema.as_bytes()[0].is_ascii_digit() {
        return Err(usage(format!(
            "schema {schema:?}: use lower-case letters, digits and _ (not first a digit)"
        )));
    }
    if schema.starts_with("pg_") {
        return Err(usage(format!(
            "schema {schema:?}: names starting pg_ are PostgreSQL's own"
        )));
    }
    // PostgreSQL's names hold 63 bytes, and `claimline reload` rebuilds beside the live schema
    // as `<schema>_reload`: a longer name could be loaded but never reloaded.
    if schema.len() > max {
        return Err(usage(format!(
            "schema {schema:?}: at most {max} characters (PostgreSQL's names hold {MAX_NAME}, \
             and reload builds beside it as <schema>{RELOAD_SUFFIX})"
        )));
    }
    Ok(())
}

/// The longest name PostgreSQL holds: `NAMEDATALEN` - 1 bytes.
const MAX_NAME: usize = 63;

/// What a reload's schema adds to the live one's name ([`PgTarget::reload_target`]).
const RELOAD_SUFFIX: &str = "_reload";

/// The longest schema name taken: room for [`RELOAD_SUFFIX`] in [`MAX_NAME`].
const MAX_SCHEMA: usize = MAX_NAME - RELOAD_SUFFIX.len();

/// `sslmode` and `sslrootcert` taken out of a connection string (the driver knows neither
/// verify mode), and what is left.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<PathBuf>), String> {
    let mut ssl = SslMode::Prefer;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => ssl = value.parse()?,
            "sslrootcert" => root = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, v)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k.trim(), v.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    Ok((rest, ssl, root))
}

/// `postgresql://user@host:port/db`: where a connection goes, never its password.
fn shown(config: &Config) -> String {
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map_or(String::new(), |p| format!(":{p}"));
    let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
    let db = config.get_dbname().unwrap_or("");
    format!("postgresql://{user}{host}{port}/{db}")
}

/// The server certificate check of an `sslmode`: none for `prefer` and `require` (as libpq
/// without a root certificate), the chain for `verify-ca`, the chain and the host name for
/// `verify-full`. The handshake's signatures are checked in every mode.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    mode: SslMode,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = rustls::client::danger::ServerCertVerified::assertion;
        let checked = || {
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        };
        match self.mode {
            SslMode::VerifyFull => checked(),
            SslMode::VerifyCa => match checked() {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(verified()),
                other => other,
            },
            SslMode::Disable | SslMode::Prefer | SslMode::Require => Ok(verified()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The run's temporary staging table of `table`.
fn stage(table: &str) -> String {
    quote(&format!("stage_{table}"))
}

/// A column's name in PostgreSQL: lower case, so that unquoted SQL (`SELECT CLM_PMT_AMT FROM
/// claimline.cclf1`) finds it, as PostgreSQL folds unquoted names.
pub fn pg_column(name: &str) -> String {
    name.to_lowercase()
}

fn pg_type(ty: &ColumnType) -> String {
    match ty {
        ColumnType::Text | ColumnType::Code | ColumnType::Json => "text".into(),
        ColumnType::Integer => "bigint".into(),
        ColumnType::Boolean => "boolean".into(),
        ColumnType::Decimal { precision, scale } => format!("numeric({precision},{scale})"),
        ColumnType::Date => "date".into(),
        ColumnType::Timestamp => "timestamp with time zone".into(),
    }
}

fn copy_type(ty: &ColumnType) -> Type {
    match ty {
        ColumnType::Text | ColumnType::Code | ColumnType::Json => Type::TEXT,
        ColumnType::Integer => Type::INT8,
        ColumnType::Boolean => Type::BOOL,
        ColumnType::Decimal { .. } => Type::NUMERIC,
        ColumnType::Date => Type::DATE,
        ColumnType::Timestamp => Type::TIMESTAMPTZ,
    }
}

/// A session holding a schema's advisory lock: one load (or reload) at a time per schema, as
/// the output folder's lock does for files. Also reads what earlier loads committed. The lock
/// goes when the session is dropped (or its process dies).
pub struct PgSession {
    client: Client,
    target: PgTarget,
}

impl PgSession {
    /// Connects and takes the schema's lock without waiting.
    ///
    /// # Errors
    /// [`PgFailure::Busy`] when another session holds it; a connection failure.
    pub fn lock(target: &PgTarget) -> Result<Self, Error> {
        let mut client = target.connect()?;
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&format!("claimline:{}", target.schema)],
            )
            .map_err(target.error(PgFailure::Query))?
            .get(0);
        if !got {
            return Err(target.fail(
                PgFailure::Busy,
                "another claimline load, run or reload is writing this schema; try again when it has finished".into(),
            ));
        }
        Ok(PgSession {
            client,
            target: target.clone(),
        })
    }

    /// The target.
    pub fn target(&self) -> &PgTarget {
        &self.target
    }

    /// The connection (for reads of the committed tables).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// The tables the schema holds.
    ///
    /// # Errors
    /// A failed query.
    pub fn table_names(&mut self) -> Result<BTreeSet<String>, Error> {
        let rows = self
            .client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                &[&self.target.schema],
            )
            .map_err(self.target.error(PgFailure::Query))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The run records of `_claimline_runs`, in the order the runs started.
    ///
    /// # Errors
    /// A failed query; [`PgFailure::Corrupt`] when a record is not a run record.
    pub fn runs(&mut self) -> Result<Vec<RunRecord>, Error> {
        runs_of(&mut self.client, &self.target)
    }

    /// Replaces this session's schema by `rebuilt`'s (a schema of the same database), in one
    /// transaction: the live schema is dropped and the rebuilt one takes its name.
    ///
    /// # Errors
    /// A failed statement; the live schema is then as it was.
    pub fn replace_schema(&mut self, rebuilt: &PgTarget) -> Result<(), Error> {
        let swap = format!(
            "BEGIN; DROP SCHEMA IF EXISTS {live} CASCADE; ALTER SCHEMA {rebuilt} RENAME TO {live}; COMMIT",
            live = self.target.quoted_schema(),
            rebuilt = rebuilt.quoted_schema()
        );
        self.client
            .batch_execute(&swap)
            .map_err(self.target.error(PgFailure::Query))
    }

    /// The error of a failed query of this session.
    pub fn query_error(&self) -> impl Fn(postgres::Error) -> Error + '_ {
        self.target.error(PgFailure::Query)
    }
}

/// The run records in `_claimline_runs` of `client`'s database, schema of `target` (none when
/// there is no such table), in the order the runs started.
fn runs_of(client: &mut Client, target: &PgTarget) -> Result<Vec<RunRecord>, Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&target.table("_claimline_runs")],
        )
        .map_err(target.error(PgFailure::Query))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT record FROM {} ORDER BY started, run_id",
        target.table("_claimline_runs")
    );
    let rows = client
        .query(&sql, &[])
        .map_err(target.error(PgFailure::Query))?;
    rows.iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| {
                target.fail(
                    PgFailure::Corrupt,
                    format!(
                        "a record of table {}._claimline_runs is not a run record ({}); nothing was changed",
                        target.schema,
                        claimline_model::without_values(&e.to_string())
                    ),
                )
            })
        })
        .collect()
}

/// The run records of the schema of `target`, read without its lock (for a caller that only
/// looks); see [`PgSession::runs`].
///
/// # Errors
/// A connection failure, a failed query, a damaged record.
pub fn read_postgres_runs(target: &PgTarget) -> Result<Vec<RunRecord>, Error> {
    runs_of(&mut target.connect()?, target)
}

/// Writes tables into one PostgreSQL schema; see the crate docs. Open it while a
/// [`PgSession`] of the same target holds the schema's lock.
pub struct PostgresSink {
    client: Option<Client>,
    target: PgTarget,
    schemas: Vec<TableSchema>,
    types: Vec<Vec<Type>>,
    removals: BTreeMap<Vec<String>, Vec<Vec<Cell>>>,
}

impl PostgresSink {
    /// Connects, opens the transaction, creates the schema and any missing table (typed, with
    /// `COMMENT ON COLUMN` from the descriptions and indexes on `_claim_key`, `_resource_id`
    /// and the schema's indexes), checks existing ones, and makes a staging table per table.
    ///
    /// # Errors
    /// A connection failure; [`PgFailure::SchemaChanged`] when an existing table has other
    /// columns; [`PgFailure::Usage`] when two columns of a table differ only in case.
    pub fn open(target: &PgTarget, schemas: &[TableSchema]) -> Result<Self, Error> {
        let mut client = target.connect()?;
        let err = target.error(PgFailure::Query);
        client
            .batch_execute(&format!(
                "BEGIN; CREATE SCHEMA IF NOT EXISTS {}",
                target.quoted_schema()
            ))
            .map_err(&err)?;
        for s in schemas {
            let mut names = BTreeSet::new();
            for c in &s.columns {
                if !names.insert(pg_column(&c.name)) {
                    return Err(target.fail(
                        PgFailure::Usage,
                        format!(
                            "table {}: two columns are named {:?} in lower case; PostgreSQL folds unquoted names",
                            s.name,
                            pg_column(&c.name)
                        ),
                    ));
                }
            }
            check_or_create(&mut client, target, s)?;
            client
                .batch_execute(&format!(
                    "CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP",
                    stage(&s.name),
                    target.table(&s.name)
                ))
                .map_err(&err)?;
        }
        Ok(PostgresSink {
            client: Some(client),
            target: target.clone(),
            types: schemas
                .iter()
                .map(|s| s.columns.iter().map(|c| copy_type(&c.ty)).collect())
                .collect(),
            schemas: schemas.to_vec(),
            removals: BTreeMap::new(),
        })
    }

    fn live(&mut self) -> Result<&mut Client, Error> {
        self.client.as_mut().ok_or_else(|| Error::Row {
            table: String::new(),
            column: String::new(),
            message: "the sink was committed".into(),
        })
    }

    fn copy(&mut self, table: usize, rows: &[Vec<Cell>]) -> Result<(), Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let schema = &self.schemas[table];
        let stage_table = stage(&schema.name);
        // Values first (a bad cell is an error before anything is sent).
        let mut values: Vec<PgValue<'_>> = Vec::with_capacity(rows.len() * schema.columns.len());
        for row in rows {
            if row.len() != schema.columns.len() {
                return Err(Error::Row {
                    table: schema.name.clone(),
                    column: String::new(),
                    message: format!(
                        "a row of {} cells for {} columns",
                        row.len(),
                        schema.columns.len()
                    ),
                });
            }
            for (i, cell) in row.iter().enumerate() {
                values
                    .push(PgValue::of(schema, i, cell).map_err(|e| with_lineage(e, schema, row))?);
            }
        }
        let width = schema.columns.len();
        let types = &self.types[table];
        let target = &self.target;
        let client = self.client.as_mut().ok_or_else(|| Error::Row {
            table: String::new(),
            column: String::new(),
            message: "the sink was committed".into(),
        })?;
        let err = target.error(PgFailure::Query);
        let writer = client
            .copy_in(&format!("COPY {stage_table} FROM STDIN (FORMAT binary)"))
            .map_err(&err)?;
        let mut writer = BinaryCopyInWriter::new(writer, types);
        let mut refs: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(width);
        let half = values.len() / width / 2;
        for (n, row) in values.chunks(width).enumerate() {
            if n == half {
                claimline_fault::point("postgres.copy")
                    .map_err(|e| target.fail(PgFailure::Query, format!("fault point: {e}")))?;
            }
            refs.clear();
            refs.extend(row.iter().map(|v| v as &(dyn ToSql + Sync)));
            writer.write(&refs).map_err(&err)?;
        }
        writer.finish().map_err(&err)?;
        Ok(())
    }

    /// The commit's statements, in the open transaction.
    fn finish(&mut self, run: &RunRecord) -> Result<(), Error> {
        let schema = self.target.quoted_schema();
        let target = self.target.clone();
        let err = target.error(PgFailure::Query);
        let schemas = self.schemas.clone();
        let removals = std::mem::take(&mut self.removals);
        let client = self.live()?;
        let table = |name: &str| target.table(name);
        let column = |name: &str| quote(&pg_column(name));
        let dialect = crate::merge::Dialect {
            table: &table,
            stage: &stage,
            column: &column,
            temp: &quote,
            create_temp: "CREATE TEMP TABLE {} ON COMMIT DROP AS",
            same: "IS NOT DISTINCT FROM",
            newer: "coalesce(m._last_updated, '-infinity') > coalesce(s._last_updated, '-infinity')",
            first_param: "$1",
        };
        let (groups, inserts) = crate::merge::statements(&schemas, &dialect);
        for g in &groups {
            for sql in &g.prepare {
                client.batch_execute(sql).map_err(&err)?;
            }
            if let Some(removed) = removals.get(g.key) {
                let marks = (1..=g.key.len())
                    .map(|i| format!("${i}::text"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let stmt = client
                    .prepare(&format!("INSERT INTO {} VALUES ({marks})", g.keys_table))
                    .map_err(&err)?;
                for k in removed {
                    let texts: Vec<Option<String>> = k.iter().map(key_text).collect();
                    let params: Vec<&(dyn ToSql + Sync)> =
                        texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
                    client.execute(&stmt, &params).map_err(&err)?;
                }
            }
            // The planner's estimate of the keys, before the deletes join on them.
            client
                .batch_execute(&format!("ANALYZE {}", g.keys_table))
                .map_err(&err)?;
            for sql in &g.apply {
                client.batch_execute(sql).map_err(&err)?;
            }
        }
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {schema}._claimline_runs (run_id text PRIMARY KEY, \
                 started text, finished text, views_hash text, transaction_time text, \
                 rejects bigint, row_errors bigint, record text)"
            ))
            .map_err(&err)?;
        // A run id loaded again: its earlier rows leave the tables only appended to.
        let again: bool = client
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {schema}._claimline_runs WHERE run_id = $1)"
                ),
                &[&run.run_id],
            )
            .map_err(&err)?
            .get(0);
        if again {
            for sql in crate::merge::reload_statements(&schemas, &dialect) {
                client.execute(&sql, &[&run.run_id]).map_err(&err)?;
            }
        }
        for sql in &inserts {
            client.batch_execute(sql).map_err(&err)?;
        }
        let record = serde_json::to_string(run)
            .map_err(|e| target.fail(PgFailure::Query, format!("the run record: {e}")))?;
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}._claimline_runs VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (run_id) DO UPDATE SET started = EXCLUDED.started, \
                     finished = EXCLUDED.finished, views_hash = EXCLUDED.views_hash, \
                     transaction_time = EXCLUDED.transaction_time, rejects = EXCLUDED.rejects, \
                     row_errors = EXCLUDED.row_errors, record = EXCLUDED.record"
                ),
                &[
                    &run.run_id,
                    &run.started,
                    &run.finished,
                    &run.views_hash,
                    &run.transaction_time,
                    &(run.rejects as i64),
                    &(run.row_errors as i64),
                    &record,
                ],
            )
            .map_err(&err)?;
        client.batch_execute("COMMIT").map_err(&err)?;
        Ok(())
    }
}

/// A key cell as text (keys are text columns: `_api_version`, `_claim_key`, …).
fn key_text(cell: &Cell) -> Option<String> {
    match cell {
        Cell::Null => None,
        Cell::Text(s) => Some(s.to_string()),
        Cell::Int(n) => Some(n.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        Cell::Date(d) => Some(claimline_model::format_date(*d)),
        Cell::Timestamp(t) => Some(claimline_model::format_timestamp(*t)),
        Cell::Decimal(m) => Some(m.to_string()),
    }
}

/// Creates `schema`'s table with its comments and indexes, or checks that the existing one has
/// the same columns and types.
fn check_or_create(
    client: &mut Client,
    target: &PgTarget,
    schema: &TableSchema,
) -> Result<(), Error> {
    let err = target.error(PgFailure::Query);
    let table = target.table(&schema.name);
    let existing: Vec<(String, String)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&table],
        )
        .map_err(&err)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let wanted: Vec<(String, String)> = schema
        .columns
        .iter()
        .map(|c| (pg_column(&c.name), pg_type(&c.ty)))
        .collect();
    if !existing.is_empty() {
        if existing != wanted {
            return Err(target.fail(
                PgFailure::SchemaChanged,
                format!(
                    "table {} has other columns than the views now declare; rebuild it (claimline reload) or load into another --postgres-schema",
                    schema.name
                ),
            ));
        }
        return Ok(());
    }
    let cols = wanted
        .iter()
        .map(|(n, t)| format!("{} {t}", quote(n)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("CREATE TABLE {table} ({cols});");
    for c in &schema.columns {
        if let Some(d) = &c.description {
            sql.push_str(&format!(
                "COMMENT ON COLUMN {table}.{} IS '{}';",
                quote(&pg_column(&c.name)),
                d.replace('\'', "''")
            ));
        }
    }
    let mut indexed: Vec<&str> = schema.indexes.iter().map(String::as_str).collect();
    for lineage in ["_claim_key", "_resource_id"] {
        if schema.column_index(lineage).is_some() && !indexed.contains(&lineage) {
            indexed.push(lineage);
        }
    }
    for col in indexed {
        sql.push_str(&format!(
            "CREATE INDEX ON {table} ({});",
            quote(&pg_column(col))
        ));
    }
    client.batch_execute(&sql).map_err(&err)
}

/// `err` about a cell of `row`, naming the row's input file and line when the table has them.
fn with_lineage(err: Error, schema: &TableSchema, row: &[Cell]) -> Error {
    let cell = |name: &str| schema.column_index(name).and_then(|i| row.get(i));
    match (err, cell("_source_file"), cell("_line")) {
        (
            Error::Row {
                table,
                column,
                message,
            },
            Some(Cell::Text(file)),
            Some(Cell::Int(line)),
        ) => Error::Row {
            table,
            column,
            message: format!("{message} ({file}, line {line})"),
        },
        (err, _, _) => err,
    }
}

/// One cell bound for binary COPY, checked against its column's type.
#[derive(Debug)]
enum PgValue<'a> {
    Null,
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Numeric(rust_decimal::Decimal),
    Date(chrono::NaiveDate),
    Timestamp(chrono::DateTime<chrono::Utc>),
}

impl<'a> PgValue<'a> {
    fn of(schema: &TableSchema, i: usize, cell: &'a Cell) -> Result<Self, Error> {
        let col = &schema.columns[i];
        let bad = |what: String| Error::Row {
            table: schema.name.clone(),
            column: col.name.clone(),
            message: format!("{what} in a {:?} column", col.ty),
        };
        Ok(match (cell, &col.ty) {
            (Cell::Null, _) => PgValue::Null,
            (Cell::Text(s), ColumnType::Text | ColumnType::Code | ColumnType::Json) => {
                if s.contains('\0') {
                    return Err(bad(
                        "a text with a NUL character, which PostgreSQL cannot store,".into(),
                    ));
                }
                PgValue::Text(s)
            }
            (Cell::Int(n), ColumnType::Integer) => PgValue::Int(*n),
            (Cell::Bool(b), ColumnType::Boolean) => PgValue::Bool(*b),
            (Cell::Decimal(m), ColumnType::Decimal { scale, .. }) => {
                let scale = u32::try_from(*scale).map_err(|_| bad("a negative scale".into()))?;
                PgValue::Numeric(
                    rust_decimal::Decimal::try_from_i128_with_scale(*m, scale)
                        .map_err(|e| bad(format!("a decimal out of range ({e})")))?,
                )
            }
            (Cell::Date(d), ColumnType::Date) => PgValue::Date(
                // Day 0 is 1970-01-01, day 719,163 of the common era.
                d.checked_add(719_163)
                    .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
                    .ok_or_else(|| bad("a date out of range".into()))?,
            ),
            (Cell::Timestamp(t), ColumnType::Timestamp) => PgValue::Timestamp(
                chrono::DateTime::from_timestamp_micros(*t)
                    .ok_or_else(|| bad("an instant out of range".into()))?,
            ),
            (c, _) => return Err(bad(c.kind().to_owned())),
        })
    }
}

impl ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::Text(s) => s.to_sql(ty, out),
            PgValue::Int(n) => n.to_sql(ty, out),
            PgValue::Bool(b) => b.to_sql(ty, out),
            PgValue::Numeric(d) => d.to_sql(ty, out),
            PgValue::Date(d) => d.to_sql(ty, out),
            PgValue::Timestamp(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Each value is checked against its column's declared type in `PgValue::of`.
        true
    }

    to_sql_checked!();
}

impl TableSink for PostgresSink {
    fn write(&mut self, table: usize, rows: Vec<Vec<Cell>>) -> Result<(), Error> {
        self.copy(table, &rows)
    }

    fn write_rows(&mut self, table: usize, rows: &[Vec<Cell>]) -> Result<(), Error> {
        self.copy(table, rows)
    }

    fn drop_rows(&mut self, tables: &[usize], lines: &SourceLines) -> Result<Vec<u64>, Error> {
        let target = self.target.clone();
        let err = target.error(PgFailure::Query);
        let schemas = self.schemas.clone();
        let client = self.live()?;
        // Every (file, line) at once, joined to each table by hash: one pass over the table
        // (one per file took a load of 200 EOB files 3 s where 2 files took 0.09).
        let (files, list): (Vec<&str>, Vec<i64>) = lines
            .iter()
            .flat_map(|(file, set)| set.iter().map(move |&line| (file.as_str(), line)))
            .unzip();
        let mut removed = Vec::with_capacity(tables.len());
        for &t in tables {
            let s = &schemas[t];
            if s.column_index("_source_file").is_none() || s.column_index("_line").is_none() {
                return Err(Error::no_lineage(&s.name));
            }
            let mut n = 0;
            if !list.is_empty() {
                let sql = format!(
                    "DELETE FROM {} AS t USING unnest($1::text[], $2::bigint[]) AS d(f, l) \
                     WHERE t._source_file = d.f AND t._line = d.l",
                    stage(&s.name)
                );
                n = client.execute(&sql, &[&files, &list]).map_err(&err)?;
            }
            removed.push(n);
        }
        Ok(removed)
    }

    fn remove_keys(&mut self, replace_key: &[String], keys: Vec<Vec<Cell>>) -> Result<(), Error> {
        crate::check_key_widths(replace_key, &keys)?;
        self.removals
            .entry(replace_key.to_vec())
            .or_default()
            .extend(keys);
        Ok(())
    }

    fn replaces(&self) -> bool {
        true
    }

    fn decides(&self) -> bool {
        true
    }

    fn prepare(&mut self, _: &RunRecord, _: bool) -> Result<(), Error> {
        // Everything is in the open transaction; the commit makes it durable and visible.
        Ok(())
    }

    fn commit(mut self: Box<Self>, run: &RunRecord) -> Result<(), Error> {
        let done = self.finish(run);
        // Committed, or not: either way the connection closes (an open transaction rolls back).
        self.client.take();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_read_from_both_forms_and_the_rest_goes_to_the_driver() {
        let (rest, ssl, root) = split_tls_params(
            "postgresql://u:p@h:5433/db?sslmode=verify-full&application_name=x&sslrootcert=/ca.pem",
        )
        .expect("url");
        assert_eq!(rest, "postgresql://u:p@h:5433/db?application_name=x");
        assert_eq!(ssl, SslMode::VerifyFull);
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (rest, ssl, root) =
            split_tls_params("host=h user=u sslmode=verify-ca dbname=db").expect("key=value");
        assert_eq!(rest, "host=h user=u dbname=db");
        assert_eq!(ssl, SslMode::VerifyCa);
        assert_eq!(root, None);
        assert_eq!(
            split_tls_params("postgresql://h/db").expect("plain").1,
            SslMode::Prefer
        );
        assert!(split_tls_params("postgresql://h/db?sslmode=strict").is_err());
    }

    #[test]
    fn a_target_is_shown_without_its_password_and_bad_schemas_are_refused() {
        let t = PgTarget::parse(
            "host=db.example port=6543 user=etl password=hunter2 dbname=c",
            "s1",
        )
        .expect("target");
        assert_eq!(
            t.to_string(),
            "postgresql://etl@db.example:6543/c (schema s1)"
        );
        assert!(t.has_password());
        let bare = PgTarget::parse("host=db.example user=etl dbname=c", "s1").expect("target");
        assert!(
            !bare.has_password(),
            "PGPASSWORD, if set, is not the string's password"
        );
        let long = "s".repeat(MAX_SCHEMA + 1);
        for bad in ["", "Upper", "1st", "pg_x", "a-b", "a\"b", &long] {
            assert!(PgTarget::parse("host=h", bad).is_err(), "{bad:?}");
        }
        // The longest taken leaves room for the reload's schema beside it.
        let longest = PgTarget::parse("host=h", &"s".repeat(MAX_SCHEMA)).expect("taken");
        let beside = longest.reload_target().expect("taken");
        assert_eq!(beside.schema().len(), MAX_NAME);
        assert!(beside.schema().ends_with("_reload"));
        let err =
            PgTarget::parse("postgresql://u:hunter2@h:notaport/db", "s").expect_err("refused");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
