//! Argument types several commands share: where BCDA is and how to reach it (`--env`,
//! `--base-url`, credentials), `--api`, `--endpoint`, `--format`.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use claimline_fetch::{
    ApiVersion, Client, ClientConfig, Credentials, Endpoint, FetchError, PROD_URL, SANDBOX_URL,
    Timing,
};
use claimline_load::Format;

/// Which BCDA: `--env prod|sandbox` or `--base-url`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Env {
    /// `https://api.bcda.cms.gov`
    Prod,
    /// `https://sandbox.bcda.cms.gov`
    Sandbox,
}

/// API version argument.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Api {
    /// FHIR STU3.
    V1,
    /// FHIR R4 (CARIN Blue Button).
    V2,
    /// FHIR R4 (CARIN Blue Button 2.2, CMS IDR).
    V3,
}

impl From<Api> for ApiVersion {
    fn from(api: Api) -> Self {
        match api {
            Api::V1 => ApiVersion::V1,
            Api::V2 => ApiVersion::V2,
            Api::V3 => ApiVersion::V3,
        }
    }
}

/// How to reach BCDA and who we are. Credentials come from `BCDA_CLIENT_ID` /
/// `BCDA_CLIENT_SECRET`, `--credentials FILE` or a prompt, never from arguments.
#[derive(clap::Args)]
pub struct Connection {
    /// BCDA production or BCDA's public sandbox.
    #[arg(
        long,
        value_enum,
        required_unless_present = "base_url",
        conflicts_with = "base_url"
    )]
    env: Option<Env>,
    /// Another BCDA-compatible base URL (HTTPS; plain HTTP only to a loopback sandbox).
    #[arg(long)]
    base_url: Option<String>,
    /// A file of `BCDA_CLIENT_ID=…` and `BCDA_CLIENT_SECRET=…` lines, readable by its owner only.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// Extra PEM root certificates to trust (e.g. an inspecting proxy's), besides Mozilla's.
    /// Proxies come from HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// First wait between job polls, in seconds; it grows to a minute.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    poll_interval: f64,
    /// First wait before retrying a failed request, in seconds; it doubles up to two minutes.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    retry_wait: f64,
    /// Give up waiting for a job after this many hours.
    #[arg(long, default_value_t = 6.0, value_name = "HOURS")]
    max_wait: f64,
}

impl Connection {
    /// The base URL chosen.
    pub fn base_url(&self) -> String {
        match (&self.base_url, self.env) {
            (Some(url), _) => url.clone(),
            (None, Some(Env::Sandbox)) => SANDBOX_URL.to_owned(),
            (None, _) => PROD_URL.to_owned(),
        }
    }

    /// A client with credentials from the file, the environment or a prompt.
    pub fn client(&self) -> Result<Client, FetchError> {
        let credentials = match &self.credentials {
            Some(path) => Credentials::from_file(path)?,
            None => match Credentials::from_env() {
                Some(credentials) => credentials,
                None => prompt()?,
            },
        };
        let timing = Timing::default()
            .with_waits(
                Some(self.poll_interval),
                Some(self.retry_wait),
                Some(self.max_wait),
            )
            .map_err(FetchError::Usage)?;
        let mut config = ClientConfig::new(self.base_url());
        config.ca_file = self.ca_file.clone();
        config.timing = timing;
        Client::new(config, credentials)
    }
}

/// Asks for the client id and secret on the terminal (the secret without echo).
fn prompt() -> Result<Credentials, FetchError> {
    let missing = || {
        FetchError::MissingCredentials(
            "set BCDA_CLIENT_ID and BCDA_CLIENT_SECRET, or pass --credentials FILE".to_owned(),
        )
    };
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(missing());
    }
    eprint!("BCDA client id: ");
    let _ = std::io::stderr().flush();
    let mut id = String::new();
    std::io::stdin().read_line(&mut id).map_err(|_| missing())?;
    let secret = rpassword::prompt_password("BCDA client secret: ").map_err(|_| missing())?;
    let (id, secret) = (id.trim(), secret.trim());
    if id.is_empty() || secret.is_empty() {
        return Err(missing());
    }
    Ok(Credentials::new(id, secret))
}

/// `--endpoint` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum EndpointArg {
    /// `Group/all`: the ACO's attributed beneficiaries.
    #[value(name = "group/all")]
    GroupAll,
    /// `Group/runout`: last performance year's beneficiaries.
    #[value(name = "group/runout")]
    GroupRunout,
    /// `Patient`: every attributed patient.
    #[value(name = "patient")]
    Patient,
}

impl From<EndpointArg> for Endpoint {
    fn from(arg: EndpointArg) -> Self {
        match arg {
            EndpointArg::GroupAll => Endpoint::GroupAll,
            EndpointArg::GroupRunout => Endpoint::GroupRunout,
            EndpointArg::Patient => Endpoint::Patient,
        }
    }
}

/// Where a load writes: `--format` and, for PostgreSQL, `--postgres` and `--postgres-schema`.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Outputs: sqlite, parquet, postgres, both (sqlite and parquet), or a list
    /// (parquet,postgres) [default: both]
    #[arg(long, value_name = "LIST")]
    pub format: Option<Format>,
    /// PostgreSQL connection URL (`postgresql://user:password@host:port/db?sslmode=verify-full`,
    /// libpq's form) for the postgres format; default: CLAIMLINE_POSTGRES_URL. Never printed
    /// with its password (prefer the variable: a command line is visible to other users).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The PostgreSQL schema of the tables [default: claimline]
    #[arg(long, value_name = "NAME")]
    pub postgres_schema: Option<String>,
}

impl OutputArgs {
    /// The format, and the PostgreSQL target when the format has postgres.
    ///
    /// # Errors
    /// `--postgres` without postgres in `--format`, no URL, a URL or schema that cannot be used
    /// (all exit 2).
    pub fn resolve(self) -> anyhow::Result<(Format, Option<claimline_sink::PgTarget>)> {
        let format = self.format.unwrap_or(Format::BOTH);
        let target = claimline_run::config::postgres_target(
            format,
            self.postgres,
            None,
            self.postgres_schema.as_deref(),
        )?;
        Ok((format, target))
    }
}

/// Prints a command's outcome on stdout: under `--json` (`json`) the one JSON document of
/// `report`, else the human summary `summary` writes.
pub fn print(
    json: bool,
    report: &impl serde::Serialize,
    summary: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        summary(&mut out)?;
    }
    Ok(())
}

/// A size in bytes: a whole number and a unit, `B`, `KiB`, `MiB` (the unit when none is
/// written) or `GiB` (`--history-memory 32MiB`).
pub fn size(text: &str) -> Result<usize, String> {
    let digits = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text.trim()[digits.len()..];
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "" | "MiB" => 20,
        "GiB" => 30,
        _ => {
            return Err(format!(
                "not a size: {text} (a number and B, KiB, MiB or GiB)"
            ));
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("not a size: {text} (a number and B, KiB, MiB or GiB)"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("not a size this machine holds, or none: {text}"))
}

/// `--threads N`: 0 (one per core) to [`claimline_ndjson::MAX_THREADS`].
pub fn threads(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("not a number of threads: {text}"))?;
    if n > claimline_ndjson::MAX_THREADS {
        return Err(format!(
            "at most {} threads (0: one per core)",
            claimline_ndjson::MAX_THREADS
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_their_unit_and_mebibytes_without() {
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("64"), Ok(64 << 20));
        assert_eq!(size("1B"), Ok(1));
        assert_eq!(size("512KiB"), Ok(512 << 10));
        assert_eq!(size("2GiB"), Ok(2 << 30));
        for bad in [
            "", "MiB", "0", "0B", "1.5MiB", "-1MiB", "64MB", "64 MiB", "64mib",
        ] {
            assert!(size(bad).is_err(), "{bad}");
        }
        assert!(size(&format!("{}GiB", usize::MAX)).is_err());
    }
}
